//! The crate's one error type. Plain Rust: `py/error.rs` maps it to the Python
//! exception hierarchy in a single place.

use thiserror::Error;

/// The error a callback returned, kept opaque so the engine stays plain Rust. The
/// bindings put the Python exception here and get it back, as itself, in `py/error.rs`.
pub type CallbackError = Box<dyn std::error::Error + Send + Sync>;

/// Which callback failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callback {
    IoHandler,
    MmioHandler,
    Sink,
}

impl Callback {
    pub fn name(self) -> &'static str {
        match self {
            Callback::IoHandler => "io_handler",
            Callback::MmioHandler => "mmio_handler",
            Callback::Sink => "sink",
        }
    }
}

/// Everything that can go wrong in the core, each with a message a user can act on.
#[derive(Debug, Error)]
pub enum Error {
    /// `/dev/kvm` does not exist.
    #[error(
        "/dev/kvm does not exist: KVM is not available on this machine. Load the module \
         (`modprobe kvm_intel` or `modprobe kvm_amd`), enable virtualization in the firmware, \
         or enable nested virtualization on the host of this VM"
    )]
    KvmMissing,

    /// `/dev/kvm` exists but cannot be opened read-write.
    #[error(
        "permission denied opening /dev/kvm: add your user to the `kvm` group \
         (`sudo usermod -aG kvm $USER`, then log in again) or `sudo chmod 666 /dev/kvm`"
    )]
    KvmPermission,

    /// A KVM capability the request needs is absent on this host.
    #[error("unsupported by this host's KVM: {what}")]
    Unsupported { what: String },

    /// A configuration value is out of range or inconsistent.
    #[error("invalid {field}: {reason}")]
    InvalidConfig { field: String, reason: String },

    /// A guest-physical access outside the VM's memory.
    #[error(
        "guest address range {addr:#x}..{end:#x} is outside guest memory (0x0..{size:#x})",
        end = addr.saturating_add(*len as u64)
    )]
    OutOfRange { addr: u64, len: usize, size: u64 },

    /// Unknown register name.
    #[error("unknown register {0:?}")]
    UnknownRegister(String),

    /// The machine was closed.
    #[error("this Machine is closed")]
    Closed,

    /// The machine is being used by another thread.
    #[error("this Machine is busy in another thread (a Machine runs one operation at a time)")]
    Busy,

    /// A KVM ioctl failed.
    #[error("{op} failed: {source}")]
    Kvm {
        op: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },

    /// A callback (port or MMIO handler, the sink) failed; `source` is its own error.
    #[error("the {} failed: {source}", what.name())]
    Callback {
        what: Callback,
        #[source]
        source: CallbackError,
    },

    /// The run was interrupted (Ctrl-C); `cause` is what the signal check raised.
    #[error("interrupted")]
    Interrupted { cause: Option<CallbackError> },

    /// A vCPU thread could not start or panicked.
    #[error("{0}")]
    Thread(String),

    /// An internal invariant broke.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Wrap a failed ioctl, naming the operation.
    pub fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
        move |source| Error::Kvm { op, source }
    }

    /// A callback failure from any error value.
    pub fn callback(what: Callback, source: impl Into<CallbackError>) -> Self {
        Error::Callback {
            what,
            source: source.into(),
        }
    }
}
