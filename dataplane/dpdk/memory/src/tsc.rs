//! The cycle counter, read without the EAL: the same counter `rte_rdtsc`
//! reads on x86-64 and the one `Eal::tsc_hz` measures. The workers (grant
//! deadlines) and the control thread (the tick's clock) read this one
//! function, so they can never read two different clocks.

/// The current TSC (x86-64, the only target synwall is built and packaged
/// for); 0 elsewhere.
#[inline]
pub fn tsc_now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions and touches no memory.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}
