//! The customers a worker counted since the control plane last looked: a
//! bounded single-producer (the worker), single-consumer (the control
//! thread) ring of customer ids, so a tick reads the customers that sent
//! SYNs instead of scanning the whole table.
//!
//! The ring is allocated once, with its shard; a push is two loads and two
//! stores, no allocation, no lock, no read-modify-write. A full ring does
//! not wait and does not drop silently: it raises the overflow flag, and the
//! control plane then scans the whole shard for that tick (see
//! [`crate::shard::WorkerShard::take_listed`] for the protocol and its
//! memory-ordering argument).
use std::sync::atomic::{
    AtomicU32,
    Ordering::{Acquire, Relaxed, Release},
};

use crate::classify::CustomerId;
use synwall_memory::HugeArray;

/// Most slots a ring gets (1 MiB a core). Beyond this many customers
/// listed in one tick the tick scans the whole shard instead, which
/// streams every cell through the cache the worker shares: at 65,536 slots
/// a flood from 100,000 customers made every tick such a scan.
pub const MAX_SLOTS: usize = 1 << 18;

/// One worker's listing ring. Who writes what:
/// - `tail`, `overflow`: the worker (the producer); the control thread
///   reads `tail` and swaps `overflow` back to 0;
/// - `head`: the control thread (the consumer); the worker reads it.
#[derive(Debug)]
pub struct Listing {
    slots: HugeArray<AtomicU32>,
    mask: u32,
    producer: ProducerLine,
    consumer: ConsumerLine,
}

/// The worker's side on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct ProducerLine {
    /// Ids pushed, ever (wrapping).
    tail: AtomicU32,
    /// 1: a push found the ring full since the control thread last swapped
    /// this back to 0.
    overflow: AtomicU32,
}

/// The control thread's side on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct ConsumerLine {
    /// Ids taken, ever (wrapping).
    head: AtomicU32,
}

impl Listing {
    /// A ring with room for `slots` ids, rounded up to a power of two (at
    /// least 1), its memory on NUMA `node`.
    pub fn new(slots: usize, node: Option<u32>) -> Listing {
        let slots = slots.clamp(1, 1 << 31).next_power_of_two();
        Listing {
            slots: HugeArray::zeroed(slots, node),
            mask: (slots - 1) as u32,
            producer: ProducerLine::default(),
            consumer: ConsumerLine::default(),
        }
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Producer only: appends `id`, or raises the overflow flag if the ring
    /// is full. Everything this thread stored before the push is visible to
    /// the consumer that takes the id (the `Release` on `tail`), or that
    /// sees the flag (the `Release` on `overflow`).
    #[inline]
    pub fn push(&self, id: CustomerId) {
        let tail = self.producer.tail.load(Relaxed);
        // Acquire: the consumer read the slots it freed before it moved
        // `head` past them.
        let head = self.consumer.head.load(Acquire);
        if tail.wrapping_sub(head) > self.mask {
            self.producer.overflow.store(1, Release);
            return;
        }
        if let Some(slot) = self.slots.get((tail & self.mask) as usize) {
            slot.store(id.index() as u32, Relaxed);
        }
        self.producer.tail.store(tail.wrapping_add(1), Release);
    }

    /// Consumer only: moves every id pushed so far into `out` and frees
    /// their slots. Returns whether the ring overflowed since the last
    /// take (then some listed ids are missing from `out`); the flag is
    /// swapped back to 0, so an overflow after that read is seen by the
    /// next take, never lost.
    pub fn take(&self, out: &mut Vec<CustomerId>) -> bool {
        // Acquire: pairs with the producer's Release, so the slots up to
        // `tail`, and everything the worker stored before pushing them,
        // are visible here.
        let tail = self.producer.tail.load(Acquire);
        let head = self.consumer.head.load(Relaxed);
        let mut i = head;
        while i != tail {
            if let Some(slot) = self.slots.get((i & self.mask) as usize) {
                out.push(CustomerId::new(slot.load(Relaxed)));
            }
            i = i.wrapping_add(1);
        }
        // Release: the slots were read before the producer may reuse them.
        self.consumer.head.store(tail, Release);
        // Acquire: pairs with the producer's Release on `overflow`, so the
        // counts of the customers it could not push are visible to the
        // scan the caller runs.
        self.producer.overflow.swap(0, Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[CustomerId]) -> Vec<usize> {
        v.iter().map(|c| c.index()).collect()
    }

    #[test]
    fn takes_what_was_pushed_in_order_and_flags_overflow() {
        let l = Listing::new(3, None);
        assert_eq!(l.capacity(), 4);
        let mut out = Vec::new();
        assert!(!l.take(&mut out));
        assert!(out.is_empty());
        for i in 0..4 {
            l.push(CustomerId::new(i));
        }
        assert!(!l.take(&mut out), "exactly full is not an overflow");
        assert_eq!(ids(&out), [0, 1, 2, 3]);
        out.clear();
        for i in 10..15 {
            l.push(CustomerId::new(i));
        }
        assert!(l.take(&mut out), "the fifth push overflowed");
        assert_eq!(ids(&out), [10, 11, 12, 13]);
        out.clear();
        // The flag was taken with the ids; the ring wraps on.
        for round in 0..10u32 {
            l.push(CustomerId::new(round));
            out.clear();
            assert!(!l.take(&mut out));
            assert_eq!(ids(&out), [round as usize]);
        }
    }

    #[test]
    fn concurrent_pushes_are_taken_exactly_once_or_flagged() {
        use std::sync::Arc;
        const N: u32 = 200_000;
        let l = Arc::new(Listing::new(64, None));
        let producer = {
            let l = l.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    l.push(CustomerId::new(i));
                }
            })
        };
        let mut got = Vec::new();
        let mut overflows = 0;
        let mut out = Vec::new();
        while !producer.is_finished() {
            out.clear();
            overflows += usize::from(l.take(&mut out));
            got.extend(ids(&out));
        }
        producer.join().unwrap();
        out.clear();
        overflows += usize::from(l.take(&mut out));
        got.extend(ids(&out));
        // In push order, no id twice, none invented.
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert!(got.iter().all(|&i| i < N as usize));
        if got.len() < N as usize {
            assert!(overflows > 0, "ids went missing without an overflow");
        }
    }
}
