//! The TSC without the EAL (the pure packet path's builds: fuzzing, tests
//! without DPDK): the same counter `rte_rdtsc` reads on x86-64.

/// The current TSC (x86-64); 0 elsewhere, where only the EAL's own
/// `tsc_now` (feature `eal`) reads a cycle counter.
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
