//! The Environment Abstraction Layer: one per process.
use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{from_rte_errno, DpdkError, Result};

static EAL_UP: AtomicBool = AtomicBool::new(false);

/// The initialised EAL. Dropping it runs `rte_eal_cleanup`; every [`Port`],
/// [`Mempool`] and launched lcore must be gone by then.
///
/// [`Port`]: super::Port
/// [`Mempool`]: super::Mempool
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises the EAL with `args` (program name first, as in `argv`).
    ///
    /// DPDK permutes `argv` and may keep pointers into it (device arguments,
    /// the program name for logs), so the strings and the pointer array are
    /// leaked on purpose: they live as long as the process, a few hundred
    /// bytes once.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if EAL_UP.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialised);
        }
        let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
        for a in args {
            let c = CString::new(a.as_ref()).map_err(|_| {
                EAL_UP.store(false, Ordering::SeqCst);
                DpdkError::Invalid(format!("EAL argument {:?} contains a NUL byte", a.as_ref()))
            })?;
            argv.push(c.into_raw());
        }
        argv.push(std::ptr::null_mut());
        let argc = (argv.len() - 1) as c_int;
        let argv: &'static mut [*mut c_char] = Vec::leak(argv);
        // SAFETY: argv is a NULL-terminated array of `argc` valid C strings
        // that lives for the rest of the process (leaked above); the EAL is
        // initialised at most once (guarded by EAL_UP).
        let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            EAL_UP.store(false, Ordering::SeqCst);
            return Err(from_rte_errno(format!(
                "rte_eal_init({})",
                args.iter()
                    .map(|a| a.as_ref())
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
        Ok(Eal { _private: () })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: the EAL was initialised by `init`; the owner drops ports,
        // mempools and joins lcores before dropping the Eal.
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
    }
}
