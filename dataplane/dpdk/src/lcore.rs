//! Launching closures on EAL worker lcores.
use std::ffi::{c_int, c_void};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::eal::{Eal, EalShare};
use super::error::{DpdkError, IntoResult, Result};

/// An EAL logical core id: one the EAL has enabled, obtained from it
/// ([`Eal::main_lcore`], [`Eal::lcore`]); never made from a bare number:
///
/// ```compile_fail
/// let lcore = synwall_dpdk::LcoreId(3);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(u32);

impl LcoreId {
    /// The lcore's number, as in the EAL's core list.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl fmt::Display for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl Eal {
    /// The lcore the EAL runs `main` (and so synwall's control plane) on.
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: reads EAL configuration; the EAL is up (self).
        LcoreId(unsafe { dpdk_sys::rte_get_main_lcore() })
    }

    /// Lcore `id`, if the EAL's core list enables it (`-l`, `-c`,
    /// `--lcores`).
    pub fn lcore(&self, id: u32) -> Result<LcoreId> {
        // SAFETY: bounds-checked inside DPDK; the EAL is up (self).
        if unsafe { dpdk_sys::rte_lcore_is_enabled(id) } == 0 {
            return Err(DpdkError::Invalid(format!(
                "{} is not an enabled worker lcore: list it in the EAL core list \
                 (-l / --lcores) and not as the main lcore",
                LcoreId(id)
            )));
        }
        Ok(LcoreId(id))
    }

    /// The NUMA node (socket) of `lcore`, if the EAL knows one.
    pub fn lcore_node(&self, lcore: LcoreId) -> Option<u32> {
        // SAFETY: reads EAL configuration (bounds-checked inside DPDK); the
        // EAL is up (self).
        let node = unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore.0) };
        // SOCKET_ID_ANY (-1) when unknown.
        (node != u32::MAX).then_some(node)
    }

    /// The TSC frequency in Hz.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: reads a value the EAL measured at init; it is up (self).
        unsafe { dpdk_sys::rte_get_tsc_hz() }
    }
}

/// A closure running on a worker lcore; [`Launched::wait`] joins it.
#[must_use = "a launched lcore must be waited for"]
#[derive(Debug)]
pub struct Launched {
    lcore: LcoreId,
    joined: bool,
    // Dropped after the lcore is joined (see Drop): the EAL outlives it.
    _eal: EalShare,
}

type Job = Box<dyn FnOnce() + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch` for exactly this call;
    // the EAL calls the function once.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind across this extern "C" frame (that aborts the
    // process): catch it and report it as the lcore's return value.
    match catch_unwind(AssertUnwindSafe(move || (*job)())) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

impl Eal {
    /// Runs `f` on the worker lcore `lcore` (not the main lcore).
    pub fn launch<F>(&self, lcore: LcoreId, f: F) -> Result<Launched>
    where
        F: FnOnce() + Send + 'static,
    {
        if lcore == self.main_lcore() {
            return Err(DpdkError::Invalid(format!(
                "{lcore} is not an enabled worker lcore: list it in the EAL core list \
                 (-l / --lcores) and not as the main lcore"
            )));
        }
        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job).cast::<c_void>();
        // SAFETY: `trampoline` takes ownership of `arg` when it runs; if the
        // launch fails it never runs and ownership is taken back below.
        let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore.0) };
        if rc < 0 {
            // SAFETY: the launch failed, so the trampoline never saw `arg`.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            rc.check(|| format!("rte_eal_remote_launch on {lcore}"))?;
        }
        Ok(Launched {
            lcore,
            joined: false,
            _eal: self.share(),
        })
    }
}

impl Launched {
    /// The lcore it runs on.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    /// Waits for the closure to return; an error if it panicked.
    pub fn wait(mut self) -> Result<()> {
        self.joined = true;
        // SAFETY: the lcore was launched by `launch` and is waited for once.
        let rc = unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore.0) };
        if rc < 0 {
            Err(DpdkError::LcorePanicked(self.lcore))
        } else {
            Ok(())
        }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if !self.joined {
            // SAFETY: as in `wait`: never leave a running lcore unjoined.
            unsafe {
                dpdk_sys::rte_eal_wait_lcore(self.lcore.0);
            }
        }
    }
}
