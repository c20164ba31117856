//! Trace columns to numpy and back: zero-copy read-only views over the Rust
//! vectors, the columns derived on first access, and checked copies of numpy
//! columns (`Trace.from_columns`).

use std::sync::OnceLock;

use numpy::npyffi::{self, npy_intp, NPY_ARRAY_CARRAY_RO, PY_ARRAY_API};
use numpy::{Element, PyArray1, PyArrayDescrMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::Error;
use crate::kvm::regs::Gp;
use crate::py::trace::PyTrace;
use crate::recorder::{Columns, Runs, Seq, Vcpus};

/// Full columns made from what the trace stores once (seq, vcpu) or as runs (dr7),
/// on first access; they never change afterwards, so numpy views can borrow them.
#[derive(Default)]
pub struct Materialized {
    seq: OnceLock<Vec<u64>>,
    vcpu: OnceLock<Vec<u16>>,
    dr7: OnceLock<Vec<u64>>,
    window: OnceLock<Vec<i32>>,
}

impl Materialized {
    pub fn heap_bytes(&self) -> usize {
        self.seq.get().map_or(0, |v| v.capacity() * 8)
            + self.vcpu.get().map_or(0, |v| v.capacity() * 2)
            + self.dr7.get().map_or(0, |v| v.capacity() * 8)
            + self.window.get().map_or(0, |v| v.capacity() * 4)
    }

    pub fn seq(&self, c: &Columns) -> &[u64] {
        self.seq.get_or_init(|| c.seq_vec())
    }
    pub fn vcpu(&self, c: &Columns) -> &[u16] {
        self.vcpu.get_or_init(|| c.vcpu_vec())
    }
    pub fn dr7(&self, c: &Columns) -> &[u64] {
        self.dr7.get_or_init(|| c.dr7.to_vec())
    }
    pub fn window(&self, c: &Columns) -> &[i32] {
        self.window.get_or_init(|| c.window_vec())
    }
}

/// A read-only 1-D numpy array over `v`, whose base object is the trace `slf`.
pub fn view<'py, T: Element>(
    slf: &Bound<'py, PyTrace>,
    v: &[T],
) -> PyResult<Bound<'py, PyArray1<T>>> {
    let py = slf.py();
    let mut dims = [v.len() as npy_intp];
    let mut strides = [std::mem::size_of::<T>() as npy_intp];
    // SAFETY: `v` lives inside the frozen `PyTrace` behind `slf`, which is never
    // mutated after construction; the array is created without NPY_ARRAY_WRITEABLE
    // (numpy then refuses to make it writeable, since it does not own the data and
    // its base is not writeable), and it holds a reference to `slf` as its base
    // object (SetBaseObject steals the reference `into_ptr` gives), so the memory
    // outlives the array. dims/strides describe exactly `v.len()` elements of T.
    unsafe {
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            T::get_dtype(py).into_dtype_ptr(),
            1,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
            v.as_ptr() as *mut std::ffi::c_void,
            NPY_ARRAY_CARRAY_RO,
            std::ptr::null_mut(),
        );
        if ptr.is_null() {
            return Err(PyErr::fetch(py));
        }
        if PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            ptr as *mut npyffi::PyArrayObject,
            slf.clone().into_any().into_ptr(),
        ) != 0
        {
            pyo3::ffi::Py_DECREF(ptr);
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, ptr).cast_into_unchecked())
    }
}

pub fn copy_col<T: Element + Copy>(
    d: &Bound<'_, PyDict>,
    name: &str,
    n: Option<usize>,
) -> PyResult<Vec<T>> {
    let Some(a) = d.get_item(name)? else {
        return Err(Error::invalid(name, format!("column {name:?} is missing")).into());
    };
    let a: PyReadonlyArray1<'_, T> = a.extract().map_err(|_| {
        Error::invalid(
            name,
            format!(
                "column {name:?} must be a 1-D numpy array of {}",
                std::any::type_name::<T>()
            ),
        )
    })?;
    let v = a.as_array().to_vec();
    if let Some(n) = n.filter(|&n| v.len() != n) {
        return Err(Error::invalid(
            name,
            format!("column {name:?} has {} rows, pc has {n}", v.len()),
        )
        .into());
    }
    Ok(v)
}

/// `name` from `columns` if present, else `default(len)`.
pub fn copy_or<T: Element + Copy>(
    columns: &Bound<'_, PyDict>,
    name: &str,
    n: usize,
    default: impl FnOnce(usize) -> Vec<T>,
) -> PyResult<Vec<T>> {
    if columns.contains(name)? {
        copy_col(columns, name, Some(n))
    } else {
        Ok(default(n))
    }
}

/// `Trace.from_columns`: numpy columns copied into trace columns (stored compactly,
/// as a recorded trace is: seq/vcpu derived, dr7 and window as runs).
pub fn columns_from_numpy(
    py: Python<'_>,
    columns: &Bound<'_, PyDict>,
    registers: Option<&Bound<'_, PyDict>>,
) -> PyResult<Columns> {
    let pc: Vec<u64> = copy_col(columns, "pc", None)?;
    let n = pc.len();
    // Stored compactly, as a recorded trace is (seq/vcpu derived, dr7 as runs).
    let seq: Vec<u64> = copy_or(columns, "seq", n, |n| (0..n as u64).collect())?;
    let vcpu: Vec<u16> = copy_or(columns, "vcpu", n, |n| vec![0; n])?;
    let dr7: Vec<u64> = copy_col(columns, "dr7", Some(n))?;
    let window = if columns.contains("window")? {
        let w: Vec<i32> = copy_col(columns, "window", Some(n))?;
        Some(Runs::from_slice(&w))
    } else {
        None
    };
    let mut cols = Columns {
        seq: Seq::from_slice(&seq),
        vcpu: Vcpus::from_slice(&vcpu),
        time_ns: copy_or(columns, "time_ns", n, |n| vec![0; n])?,
        exception: copy_col(columns, "exception", Some(n))?,
        dr6: copy_col(columns, "dr6", Some(n))?,
        dr7: Runs::from_slice(&dr7),
        pc,
        window,
        ..Default::default()
    };
    if let Some(regs) = registers {
        for (k, v) in regs.iter() {
            let name: String = k.extract()?;
            let g = Gp::parse(&name)?;
            let d = PyDict::new(py);
            d.set_item(&name, v)?;
            cols.regs.push(copy_col(&d, &name, Some(n))?);
            cols.reg_names.push(g);
        }
    }
    Ok(cols)
}
