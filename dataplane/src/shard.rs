//! Per-core state shared between one worker and the control plane.
//!
//! Every counter has exactly one writer. The worker's counters are updated
//! with a relaxed load + store (no atomic read-modify-write: about as cheap
//! as a plain increment, and never torn for a reader on another core); the
//! control plane reads them and takes deltas. The block bitmap and the SYN
//! grants are written by the control plane only and read by the worker.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::classify::CustomerId;
use crate::parse::Outcome;

/// Adds one to a counter this thread alone writes.
#[inline(always)]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

/// Adds `n` to a counter this thread alone writes.
#[inline(always)]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// One bit per customer: set = the customer's watched traffic is dropped.
/// Written by the control plane, read by one worker.
#[derive(Debug)]
pub struct BlockBitmap {
    words: Box<[AtomicU64]>,
}

impl BlockBitmap {
    /// A bitmap for `customers` ids, all clear.
    pub fn new(customers: usize) -> Self {
        BlockBitmap {
            words: (0..customers.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Whether `id`'s bit is set (false for ids out of range).
    #[inline]
    pub fn is_set(&self, id: CustomerId) -> bool {
        match self.words.get((id / 64) as usize) {
            Some(w) => w.load(Relaxed) & (1 << (id % 64)) != 0,
            None => false,
        }
    }

    /// Sets or clears `id`'s bit (control plane only).
    pub fn set(&self, id: CustomerId, blocked: bool) {
        if let Some(w) = self.words.get((id / 64) as usize) {
            let bit = 1u64 << (id % 64);
            if blocked {
                w.fetch_or(bit, Relaxed);
            } else {
                w.fetch_and(!bit, Relaxed);
            }
        }
    }
}

/// What the worker did with frames, one counter per verdict. Each frame
/// received lands in exactly one of `forwarded`, `dropped_blocked`,
/// `dropped_malformed`, `reset_sent`, `reverse_forwarded`: they add up to
/// `rx`.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct VerdictCounters {
    /// Frames received (both directions).
    pub rx: AtomicU64,
    /// Inside→outside frames forwarded.
    pub forwarded: AtomicU64,
    /// Frames dropped because their customer is blocked or out of grant.
    pub dropped_blocked: AtomicU64,
    /// Malformed frames dropped by policy.
    pub dropped_malformed: AtomicU64,
    /// Blocked SYNs answered with a TCP RST towards the customer.
    pub reset_sent: AtomicU64,
    /// Outside→inside frames forwarded without inspection.
    pub reverse_forwarded: AtomicU64,
    /// Frames a tx queue did not take (ring full), freed: a subset of the
    /// forwarded/reset counts above.
    pub tx_full: AtomicU64,
    /// Watched SYNs from an address no customer owns (forwarded).
    pub syn_no_customer: AtomicU64,
    /// Poll rounds, and poll rounds that received something (load).
    pub polls: AtomicU64,
    pub busy_polls: AtomicU64,
}

/// A plain copy of verdict counters (one worker's, or summed over all):
/// what the summary JSON, the status reply, the metrics and the telemetry
/// command all report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VerdictTotals {
    /// Frames received (both directions).
    pub rx: u64,
    /// Inside→outside frames forwarded.
    pub forwarded: u64,
    /// Frames dropped because their customer is blocked or out of grant.
    pub dropped_blocked: u64,
    /// Malformed frames dropped by policy.
    pub dropped_malformed: u64,
    /// Blocked SYNs answered with a TCP RST towards the customer.
    pub reset_sent: u64,
    /// Outside→inside frames forwarded without inspection.
    pub reverse_forwarded: u64,
    /// Frames a tx queue did not take (ring full): a subset of the
    /// forwarded/reset counts.
    pub tx_full: u64,
    /// Watched SYNs from an address no customer owns (forwarded).
    pub syn_no_customer: u64,
}

impl VerdictTotals {
    /// Every counter with its name, in a fixed order.
    pub fn named(&self) -> [(&'static str, u64); 8] {
        [
            ("rx", self.rx),
            ("forwarded", self.forwarded),
            ("reverse_forwarded", self.reverse_forwarded),
            ("dropped_blocked", self.dropped_blocked),
            ("dropped_malformed", self.dropped_malformed),
            ("reset_sent", self.reset_sent),
            ("tx_full", self.tx_full),
            ("syn_no_customer", self.syn_no_customer),
        ]
    }

    fn add(&mut self, o: &VerdictTotals) {
        self.rx += o.rx;
        self.forwarded += o.forwarded;
        self.dropped_blocked += o.dropped_blocked;
        self.dropped_malformed += o.dropped_malformed;
        self.reset_sent += o.reset_sent;
        self.reverse_forwarded += o.reverse_forwarded;
        self.tx_full += o.tx_full;
        self.syn_no_customer += o.syn_no_customer;
    }
}

impl VerdictCounters {
    /// The counters now.
    pub fn read(&self) -> VerdictTotals {
        VerdictTotals {
            rx: self.rx.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            dropped_blocked: self.dropped_blocked.load(Relaxed),
            dropped_malformed: self.dropped_malformed.load(Relaxed),
            reset_sent: self.reset_sent.load(Relaxed),
            reverse_forwarded: self.reverse_forwarded.load(Relaxed),
            tx_full: self.tx_full.load(Relaxed),
            syn_no_customer: self.syn_no_customer.load(Relaxed),
        }
    }
}

/// Verdicts and parse outcomes summed over workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameTotals {
    pub verdicts: VerdictTotals,
    /// Indexed by `Outcome::index`.
    pub outcomes: [u64; Outcome::COUNT],
}

impl FrameTotals {
    /// Sums every worker's counters.
    pub fn sum<'a>(workers: impl IntoIterator<Item = &'a WorkerStats>) -> FrameTotals {
        let mut t = FrameTotals::default();
        for w in workers {
            t.verdicts.add(&w.verdicts.read());
            for (sum, c) in t.outcomes.iter_mut().zip(&w.outcomes) {
                *sum += c.load(Relaxed);
            }
        }
        t
    }

    /// Frames with `outcome`.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(outcome.index()).copied().unwrap_or(0)
    }
}

impl WorkerStats {
    /// Share of poll rounds that received something, 0..=1.
    pub fn busy_ratio(&self) -> f64 {
        self.verdicts.busy_polls.load(Relaxed) as f64
            / self.verdicts.polls.load(Relaxed).max(1) as f64
    }
}

/// What one worker core counted about frames. Lives as long as the worker:
/// it is not replaced when the customer set changes on reload.
#[derive(Debug)]
pub struct WorkerStats {
    /// Frames per parse outcome (index: `Outcome::index`).
    pub outcomes: [AtomicU64; Outcome::COUNT],
    /// Verdict totals.
    pub verdicts: VerdictCounters,
    /// The customer generation this worker last finished a poll round with
    /// (the control plane waits for every worker to pass a new generation
    /// before it retires the old one).
    pub generation: AtomicU64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            verdicts: VerdictCounters::default(),
            generation: AtomicU64::new(0),
        }
    }
}

/// One worker core's per-customer state, shared with the control plane.
/// Sized for one customer set: a reload that changes the customers makes a
/// new generation of shards.
#[derive(Debug)]
pub struct WorkerShard {
    /// Watched SYNs seen per customer (worker writes).
    pub syn_seen: Box<[AtomicU64]>,
    /// Watched SYNs forwarded per customer (worker writes).
    pub syn_forwarded: Box<[AtomicU64]>,
    /// Cumulative SYNs this core may forward per customer (control writes;
    /// the worker forwards while `syn_forwarded < syn_grant`). Starts
    /// unlimited.
    pub syn_grant: Box<[AtomicU64]>,
    /// Customers whose watched traffic is dropped (control writes).
    pub blocked: BlockBitmap,
}

impl WorkerShard {
    /// A shard for `customers` customer ids, all counters zero, nothing
    /// blocked, grants unlimited.
    pub fn new(customers: usize) -> Self {
        let zeros = || {
            (0..customers)
                .map(|_| AtomicU64::new(0))
                .collect::<Box<[_]>>()
        };
        WorkerShard {
            syn_seen: zeros(),
            syn_forwarded: zeros(),
            syn_grant: (0..customers).map(|_| AtomicU64::new(u64::MAX)).collect(),
            blocked: BlockBitmap::new(customers),
        }
    }

    /// Customer ids this shard has room for.
    pub fn customers(&self) -> usize {
        self.syn_seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn bitmap_set_and_clear() {
        let b = BlockBitmap::new(130);
        assert!(!b.is_set(129));
        b.set(129, true);
        b.set(3, true);
        assert!(b.is_set(129) && b.is_set(3) && !b.is_set(4));
        b.set(129, false);
        assert!(!b.is_set(129));
        assert!(!b.is_set(100_000));
        b.set(100_000, true); // out of range: ignored, no panic
    }

    #[test]
    fn single_writer_counts_are_exact_under_concurrent_reads() {
        let shard = Arc::new(WorkerShard::new(4));
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let shard = shard.clone();
            std::thread::spawn(move || {
                for i in 0..1_000_000u64 {
                    bump(&shard.syn_seen[(i % 4) as usize]);
                }
            })
        };
        let reader = {
            let (shard, done) = (shard.clone(), done.clone());
            std::thread::spawn(move || {
                // Deltas read while writing: monotonic, and they sum up.
                let mut last = [0u64; 4];
                let mut total = 0u64;
                while !done.load(Relaxed) {
                    for (i, l) in last.iter_mut().enumerate() {
                        let now = shard.syn_seen[i].load(Relaxed);
                        assert!(now >= *l);
                        total += now - *l;
                        *l = now;
                    }
                }
                for (i, l) in last.iter_mut().enumerate() {
                    total += shard.syn_seen[i].load(Relaxed) - *l;
                }
                total
            })
        };
        writer.join().unwrap();
        done.store(true, Relaxed);
        assert_eq!(reader.join().unwrap(), 1_000_000);
    }
}
