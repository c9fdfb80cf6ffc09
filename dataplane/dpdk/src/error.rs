//! DPDK errors, displayed with the operation that failed and DPDK's own
//! `rte_strerror` text.
use std::ffi::CStr;

/// A failed DPDK call or a DPDK object that could not be found or set up.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// A DPDK function returned an error code.
    #[error("{op} failed: {reason} (errno {errno})")]
    Call {
        op: String,
        errno: i32,
        reason: String,
    },
    /// The EAL was initialised twice in one process.
    #[error("the DPDK EAL is already initialised in this process")]
    EalAlreadyInitialised,
    /// A port name from the config matched no ethdev.
    #[error(
        "no DPDK port named '{0}': give the device in [dpdk] eal_args \
         (--vdev=... for a virtual device, or -a PCI for a NIC bound to vfio-pci) \
         and check `dpdk-devbind.py --status`"
    )]
    PortNotFound(String),
    /// An argument could not be passed to DPDK.
    #[error("{0}")]
    Invalid(String),
    /// A launched lcore function panicked.
    #[error("the function launched on {0:?} panicked")]
    LcorePanicked(super::LcoreId),
}

/// Result of a DPDK operation.
pub type Result<T, E = DpdkError> = std::result::Result<T, E>;

/// DPDK's text for an errno value (`rte_strerror` also knows DPDK's own
/// `E_RTE_*` codes).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string for any errno value; it is copied out at once.
    unsafe {
        let p = dpdk_sys::rte_strerror(errno);
        if p.is_null() {
            return format!("errno {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The calling thread's `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { dpdk_sys::synwall_rte_errno() }
}

/// Turns DPDK's "negative errno on failure" convention into a `Result`.
pub(crate) trait IntoResult {
    fn check(self, op: impl FnOnce() -> String) -> Result<u32>;
}

impl IntoResult for i32 {
    fn check(self, op: impl FnOnce() -> String) -> Result<u32> {
        if self >= 0 {
            Ok(self as u32)
        } else {
            let errno = -self;
            Err(DpdkError::Call {
                op: op(),
                errno,
                reason: strerror(errno),
            })
        }
    }
}

/// The error for a call that signals failure through `rte_errno`.
pub(crate) fn from_rte_errno(op: impl Into<String>) -> DpdkError {
    let errno = rte_errno();
    DpdkError::Call {
        op: op.into(),
        errno,
        reason: strerror(errno),
    }
}
