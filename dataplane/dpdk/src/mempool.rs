//! Packet buffer pools.
use std::ffi::CString;
use std::ptr::NonNull;

use super::eal::{Eal, EalShare};
use super::error::{from_rte_errno, DpdkError, Result};
use super::mbuf::MbufBurst;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`). Shared as
/// `Arc<Mempool>` by the ports that receive into it; freed when the last
/// holder drops it, after every port using it has been closed.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    name: String,
    size: u32,
    // Dropped after the pool is freed (Drop runs first): the EAL outlives
    // the pool, and through it every port that receives into it.
    _eal: EalShare,
}

// SAFETY: a DPDK mempool is designed for concurrent use from many lcores
// (per-lcore caches plus a lock-free ring); the handle is only a pointer.
unsafe impl Send for Mempool {}
// SAFETY: as above; all operations used through &Mempool are thread-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with a per-lcore cache of `cache`
    /// and the default data room (2 KiB + headroom) on `socket` (-1: any).
    pub fn new(eal: &Eal, name: &str, size: u32, cache: u32, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::Invalid(format!("mempool name {name:?} has a NUL")))?;
        // SAFETY: the EAL is up (eal); cname is a valid C string; sizes are
        // plain integers.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                size,
                cache,
                0,
                dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                socket,
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            from_rte_errno(format!("rte_pktmbuf_pool_create({name}, {size} mbufs)"))
        })?;
        Ok(Mempool {
            raw,
            name: name.to_owned(),
            size,
            _eal: eal.share(),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many mbufs the pool holds in all.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs currently handed out (in NIC rings, in flight, or leaked).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently available in the pool and its caches.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Appends `n` fresh, reset mbufs (one segment, no data) from this pool
    /// to `burst` with one `rte_pktmbuf_alloc_bulk`: the burst owns them from
    /// then on (they go to a NIC with a tx burst, or back to the pool when
    /// the burst frees or drops them). All or nothing: returns false, and
    /// leaves the burst as it was, when `n` exceeds the burst's free room or
    /// the pool (with this lcore's cache) has fewer than `n` free mbufs.
    /// `n == 0` succeeds without touching the pool.
    #[inline]
    #[must_use = "false means nothing was allocated"]
    pub fn alloc_bulk(&self, burst: &mut MbufBurst, n: usize) -> bool {
        let (tail, room) = burst.tail_ptr();
        if n > usize::from(room) {
            return false;
        }
        if n == 0 {
            return true;
        }
        // SAFETY: the pool is valid while self lives; `tail` points at `room`
        // (>= n) writable, unowned slots of the burst, which DPDK fills with
        // n mbuf pointers on success and leaves untouched on failure.
        let rc = unsafe { dpdk_sys::rte_pktmbuf_alloc_bulk(self.as_ptr(), tail, n as u32) };
        if rc != 0 {
            return false;
        }
        // SAFETY: rc == 0: the n slots after the burst's end now hold fresh
        // mbufs that no one else references.
        unsafe { burst.commit_rx(n) };
        true
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: ports holding this pool hold an Arc to it, so they are
        // closed by now; no mbuf of the pool is referenced anywhere.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
