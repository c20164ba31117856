//! The trace's column schema: names, dtypes and the row widths derived from them.
//! The one definition Python, Arrow and the recorder read.

/// One column of a trace: its name and its numpy dtype.
pub struct ColumnSpec {
    pub name: &'static str,
    pub dtype: &'static str,
}

/// The fixed columns of every trace, in order; register columns (uint64, named by
/// register) follow them. The one definition of the trace schema.
pub const SCHEMA: [ColumnSpec; 7] = [
    ColumnSpec {
        name: "seq",
        dtype: "uint64",
    },
    ColumnSpec {
        name: "vcpu",
        dtype: "uint16",
    },
    ColumnSpec {
        name: "time_ns",
        dtype: "uint64",
    },
    ColumnSpec {
        name: "exception",
        dtype: "uint8",
    },
    ColumnSpec {
        name: "pc",
        dtype: "uint64",
    },
    ColumnSpec {
        name: "dr6",
        dtype: "uint64",
    },
    ColumnSpec {
        name: "dr7",
        dtype: "uint64",
    },
];

/// Columns a trace has only when its run used the feature, after the fixed ones:
/// `window` (a trace with windows; `NO_WINDOW` outside them).
pub const OPTIONAL_SCHEMA: [ColumnSpec; 1] = [ColumnSpec {
    name: "window",
    dtype: "int32",
}];

/// Bytes of one row of the fixed columns as a consumer sees them (every column
/// materialised, as in an Arrow table or a Parquet part): the unit a sink's
/// memory scales with.
pub const MATERIALIZED_BYTES_PER_EVENT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < SCHEMA.len() {
        n += dtype_bytes(SCHEMA[i].dtype);
        i += 1;
    }
    n
};

/// The size of a numpy dtype named in the schema.
const fn dtype_bytes(dtype: &str) -> usize {
    match dtype.as_bytes() {
        b"uint8" | b"int8" => 1,
        b"uint16" | b"int16" => 2,
        b"uint32" | b"int32" => 4,
        _ => 8,
    }
}

/// Bytes stored per event of a one-vCPU trace without registers: time_ns, exception,
/// pc and dr6 (seq, vcpu and a fixed DR7 take no per-row storage).
pub const FIXED_BYTES_PER_EVENT: usize = 8 + 1 + 8 + 8;
