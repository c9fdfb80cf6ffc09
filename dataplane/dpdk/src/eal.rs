//! The Environment Abstraction Layer: one per process.
use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;

use super::error::{from_rte_errno, DpdkError, Result};

static EAL_UP: AtomicBool = AtomicBool::new(false);

/// The initialised EAL, and the proof of it: every function that needs the
/// EAL takes `&Eal`, so none can run before `rte_eal_init`.
///
/// `rte_eal_cleanup` runs when the `Eal` and everything made with it (each
/// [`Mempool`], and through its pool each [`Port`] and queue, each
/// [`Launched`] lcore) are gone, whatever order they are dropped in: each
/// holds a share of it. The `Eal` stays on the thread that initialised it
/// (it is neither `Send` nor `Sync`): DPDK wants lcores launched and waited
/// for, and the EAL cleaned up, from the main lcore.
///
/// Misuse does not compile: nothing that needs the EAL runs without one,
///
/// ```compile_fail
/// let pool = synwall_dpdk::Mempool::new("pool", 1023, 0, -1);
/// ```
///
/// and the `Eal` cannot leave its thread:
///
/// ```compile_fail
/// fn elsewhere(eal: synwall_dpdk::Eal) {
///     std::thread::spawn(move || drop(eal));
/// }
/// ```
///
/// [`Port`]: super::Port
/// [`Mempool`]: super::Mempool
/// [`Launched`]: super::Launched
#[derive(Debug)]
pub struct Eal {
    share: EalShare,
    _main_thread_only: PhantomData<*const ()>,
}

/// A share of the initialised EAL, held by the objects that need it alive.
#[derive(Debug, Clone)]
pub(crate) struct EalShare(#[allow(dead_code)] Arc<Cleanup>);

/// Runs `rte_eal_cleanup` when the last share goes.
#[derive(Debug)]
struct Cleanup {
    main_thread: ThreadId,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // The last share can only leave the main thread if a `Launched` was
        // forgotten (`mem::forget`) and its lcore outlived everything else:
        // cleaning up from a worker lcore is not allowed, so the EAL is left
        // to the process exit then.
        if std::thread::current().id() != self.main_thread {
            return;
        }
        // SAFETY: the EAL was initialised by `Eal::init`; this is the last
        // share, so every port, mempool and launched lcore is gone (they
        // hold shares), and this is the thread that initialised it.
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
    }
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
        Ok(Eal {
            share: EalShare(Arc::new(Cleanup {
                main_thread: std::thread::current().id(),
            })),
            _main_thread_only: PhantomData,
        })
    }

    /// A share that keeps the EAL up while its holder lives.
    pub(crate) fn share(&self) -> EalShare {
        self.share.clone()
    }
}
