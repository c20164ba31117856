//! Argument conversion that names the field on failure, so any bad value becomes an
//! `InvalidConfigError` saying which parameter is wrong (never a bare TypeError or
//! OverflowError from deep inside).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

use crate::error::Error;

pub fn u64_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        let tn = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        return Err(Error::invalid(field, format!("expected an int, got {tn}")).into());
    }
    obj.extract::<u64>().map_err(|_| {
        let r = obj.repr().map(|r| r.to_string()).unwrap_or_default();
        Error::invalid(field, format!("{r} is not in 0..=0xffffffffffffffff")).into()
    })
}

pub fn opt_u64_arg(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<u64>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => u64_arg(o, field).map(Some),
    }
}

pub fn small_arg<T: TryFrom<u64>>(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<T> {
    let v = u64_arg(obj, field)?;
    T::try_from(v).map_err(|_| Error::invalid(field, format!("{v} is too large")).into())
}

pub fn bool_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<bool> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(b.is_true());
    }
    match obj.extract::<i64>() {
        Ok(0) => Ok(false),
        Ok(1) => Ok(true),
        _ => {
            let r = obj.repr().map(|r| r.to_string()).unwrap_or_default();
            Err(Error::invalid(field, format!("expected True or False, got {r}")).into())
        }
    }
}

pub fn str_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    obj.extract::<String>().map_err(|_| {
        let r = obj.repr().map(|r| r.to_string()).unwrap_or_default();
        Error::invalid(field, format!("expected a str, got {r}")).into()
    })
}

pub fn bytes_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<u8>> {
    if let Ok(b) = obj.extract::<&[u8]>() {
        return Ok(b.to_vec());
    }
    if obj.is_instance_of::<pyo3::types::PyByteArray>() || obj.hasattr("tobytes").unwrap_or(false) {
        let b = obj.py().get_type::<pyo3::types::PyBytes>().call1((obj,))?;
        return Ok(b.extract::<&[u8]>()?.to_vec());
    }
    let tn = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(Error::invalid(field, format!("expected bytes, got {tn}")).into())
}
