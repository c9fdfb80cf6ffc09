//! Packet buffers and bursts of them, with ownership in the types: an
//! [`Mbuf`] is never `Clone`, handing it to a NIC consumes it, and what a
//! burst still holds is freed exactly once, in bulk.
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use super::mempool::Mempool;

/// Packets per rx/tx burst.
pub const BURST: usize = 32;

/// One packet buffer, owned. Dropping it returns it to its pool.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an mbuf owned by this handle is referenced by no one else; moving
// it to another thread moves the ownership with it (mempools are MT-safe).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes a fresh mbuf from `pool`; `None` when the pool is exhausted.
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: the pool is valid while borrowed; a non-null result is a
        // fresh mbuf we now own.
        NonNull::new(unsafe { dpdk_sys::rte_pktmbuf_alloc(pool.as_ptr()) }).map(Mbuf)
    }

    #[inline]
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: the pointer is a valid mbuf owned by self.
        unsafe { self.0.as_ref() }
    }

    /// The first segment's bytes: all of a packet's headers are in it.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off points at data_len initialised bytes
        // inside the mbuf's buffer, which self owns.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// The first segment's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and &mut self means no one else looks at it.
        unsafe {
            let m = self.0.as_mut();
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// Length of the whole packet (all segments).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// Number of segments.
    #[inline]
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Room in the first segment from the data start to the buffer's end.
    pub fn capacity(&self) -> usize {
        let m = self.raw();
        (m.buf_len as usize).saturating_sub(m.data_off as usize)
    }

    /// Sets the length of a single-segment packet, up to [`capacity`];
    /// returns false (and changes nothing) otherwise.
    ///
    /// [`capacity`]: Mbuf::capacity
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        if self.segments() != 1 || len > self.capacity() || len > u16::MAX as usize {
            return false;
        }
        // SAFETY: single segment, and len fits the buffer (checked above).
        let m = unsafe { self.0.as_mut() };
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }

    /// Hints the CPU to fetch the packet's first cache line.
    #[inline]
    pub fn prefetch(&self) {
        let m = self.raw();
        // SAFETY: prefetch never faults, whatever the address.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(m.buf_addr.cast::<i8>().add(m.data_off as usize));
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf; it is freed once, here.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// Up to [`BURST`] owned mbufs: what an rx burst filled, or what is
/// gathered for a tx burst or a bulk free. The slots `0..len` are owned.
pub struct MbufBurst {
    slots: [MaybeUninit<Mbuf>; BURST],
    len: usize,
}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MbufBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MbufBurst({} mbufs)", self.len)
    }
}

impl MbufBurst {
    /// An empty burst.
    pub const fn new() -> Self {
        MbufBurst {
            slots: [const { MaybeUninit::uninit() }; BURST],
            len: 0,
        }
    }

    /// Mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free slots.
    #[inline]
    pub fn room(&self) -> usize {
        BURST - self.len
    }

    /// Adds an mbuf; hands it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                slot.write(m);
                self.len += 1;
                Ok(())
            }
            None => Err(m),
        }
    }

    /// The held mbufs.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots 0..len are initialised; MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The held mbufs, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Moves every held mbuf out, in order, leaving the burst empty.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let len = self.len;
        // The burst forgets them now; Drain owns 0..len until yielded.
        self.len = 0;
        Drain {
            burst: self,
            next: 0,
            end: len,
        }
    }

    /// Moves the mbufs at the positions set in `marked` (bit `i`: the
    /// `i`-th mbuf; bits at or past `len()` are ignored), in order, to
    /// `other(i, mbuf)`, and keeps the rest in their order. The work is
    /// per marked mbuf (a move of each run of stayers between two marked
    /// ones), not per mbuf: a burst where one frame in fifty leaves costs
    /// about one step, not a question of each of the 32.
    /// Should `other` panic, the mbufs not yet handled are leaked, never
    /// freed twice.
    #[inline]
    pub fn take_marked(&mut self, marked: u32, mut other: impl FnMut(usize, Mbuf)) {
        const _: () = assert!(BURST <= 32);
        let len = self.len;
        let mut rest = marked & u32::MAX.checked_shr(32 - len as u32).unwrap_or(0);
        if rest == 0 {
            return;
        }
        // The burst forgets them while they move: a panic leaks, not frees twice.
        self.len = 0;
        let p = self.slots.as_mut_ptr();
        // Everything before the first marked mbuf stays where it is.
        let mut kept = rest.trailing_zeros() as usize;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            // SAFETY: i < len <= BURST (bits at or past len were cleared):
            // slot i is initialised and owned; reading it moves ownership to
            // `other` exactly once (the slot is overwritten by a later run
            // or lies past the new length).
            other(i, unsafe { (*p.add(i)).assume_init_read() });
            let end = if rest == 0 {
                len
            } else {
                rest.trailing_zeros() as usize
            };
            let run = end - (i + 1);
            // SAFETY: slots i+1..end are initialised, owned and unmarked;
            // kept <= i, so the destination kept..kept+run lies inside the
            // array and holds nothing owned (moved out or moved on already);
            // `copy` allows the overlap.
            unsafe { std::ptr::copy(p.add(i + 1), p.add(kept), run) };
            kept += run;
        }
        self.len = kept;
    }

    /// Returns every held mbuf to its pool with one `rte_pktmbuf_free_bulk`.
    #[inline]
    pub fn free_all(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: slots 0..len hold owned mbuf pointers (Mbuf is a
        // transparent NonNull); len is reset first so they are freed once.
        unsafe {
            let n = self.len;
            self.len = 0;
            dpdk_sys::rte_pktmbuf_free_bulk(
                self.slots.as_mut_ptr().cast::<*mut dpdk_sys::rte_mbuf>(),
                n as u32,
            );
        }
    }

    /// Keeps the first `len` mbufs and returns the rest to their pool with
    /// one `rte_pktmbuf_free_bulk`; nothing happens when `len >= len()`.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let n = self.len - len;
        // The burst forgets the tail first, so it is freed exactly once.
        self.len = len;
        // SAFETY: slots len..len+n held owned mbuf pointers (Mbuf is a
        // transparent NonNull) and are no longer counted as held.
        unsafe {
            dpdk_sys::rte_pktmbuf_free_bulk(
                self.slots
                    .as_mut_ptr()
                    .add(len)
                    .cast::<*mut dpdk_sys::rte_mbuf>(),
                n as u32,
            );
        }
    }

    /// Raw pointer to the free tail, for an rx burst to fill.
    pub(crate) fn tail_ptr(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, u16) {
        // SAFETY: len <= BURST, so the offset stays inside the array.
        let p = unsafe { self.slots.as_mut_ptr().add(self.len) };
        (p.cast(), (BURST - self.len) as u16)
    }

    /// Records that an rx burst filled `n` slots after the current end.
    ///
    /// # Safety
    /// The `n` slots after `len` must now hold owned, valid mbufs.
    pub(crate) unsafe fn commit_rx(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST);
        self.len += n;
    }

    /// Raw pointer to the held mbufs, for a tx burst.
    pub(crate) fn head_ptr(&mut self) -> *mut *mut dpdk_sys::rte_mbuf {
        self.slots.as_mut_ptr().cast()
    }

    /// Records that the NIC took the first `n` mbufs: they are no longer
    /// ours, and the rest move to the front.
    ///
    /// # Safety
    /// The first `n` mbufs must have been consumed by the NIC.
    pub(crate) unsafe fn commit_tx(&mut self, n: usize) {
        let n = n.min(self.len);
        let rest = self.len - n;
        let p = self.slots.as_mut_ptr();
        std::ptr::copy(p.add(n), p, rest);
        self.len = rest;
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// Moves the mbufs out of a burst; any not taken are freed when it drops.
pub struct Drain<'a> {
    burst: &'a mut MbufBurst,
    next: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next >= self.end {
            return None;
        }
        let slot = self.burst.slots.get(self.next)?;
        self.next += 1;
        // SAFETY: slot `next` (< end = old len) is initialised and owned by
        // the Drain; reading it moves ownership to the caller exactly once.
        Some(unsafe { slot.assume_init_read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}
