//! Per-core state shared between one worker and the control plane.
//!
//! Every counter has exactly one writer. The worker's counters are updated
//! with a relaxed load + store (no atomic read-modify-write: about as cheap
//! as a plain increment, and never torn for a reader on another core); the
//! control plane reads them and takes deltas. The block flags and the SYN
//! grants are written by the control plane only and read by the worker.
//! What a worker touches for one customer is one [`CustomerCell`].
use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

use bytemuck::Zeroable;

use crate::classify::CustomerId;
use crate::listing::{Listing, MAX_SLOTS};
use crate::parse::Outcome;
use synwall_memory::{prefetch, HugeArray};

/// Adds one to a counter this thread alone writes.
#[inline(always)]
pub fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

/// Adds `n` to a counter this thread alone writes: a plain load and store,
/// no read-modify-write (the generator's lcores count this way too).
#[inline(always)]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

pub use crate::counters::{VerdictCounters, VerdictTotals};

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

/// What one worker core keeps for one customer: everything a watched SYN
/// touches, in one 32-byte cell aligned to 32 bytes, so it never straddles
/// a cache line and one SYN costs at most one miss.
///
/// Who writes what (each field has one writer):
/// - `seen`, `forwarded`: the worker (relaxed load + store); the control
///   plane reads them and takes deltas.
/// - `grant`, `flags`: the control plane (once a tick, on a change); the
///   worker reads them.
/// - `listed`: set to 1 by the worker when it lists the customer, back to 0
///   by the control plane when it takes the listing (see
///   [`WorkerShard::take_listed`]).
#[derive(Debug, Zeroable)]
#[repr(C, align(32))]
pub struct CustomerCell {
    /// Watched SYNs seen, cumulative.
    seen: AtomicU64,
    /// Watched SYNs forwarded, cumulative.
    forwarded: AtomicU64,
    /// Cumulative SYNs this core may forward: the worker forwards while
    /// `forwarded < grant`. `u64::MAX` is unlimited.
    grant: AtomicU64,
    /// [`BLOCKED`]: the customer's watched traffic is dropped;
    /// [`EXPIRES`]: the grant holds a fleet lease, spent only while the
    /// shard's grants are fresh ([`WorkerShard::set_grants_until`]).
    flags: AtomicU32,
    /// 1: the customer is in the shard's listing (or the listing
    /// overflowed) since the control plane last took it.
    listed: AtomicU32,
}

/// [`CustomerCell`] flag: blocked.
const BLOCKED: u32 = 1;
/// [`CustomerCell`] flag: the grant expires with the shard's stamp.
const EXPIRES: u32 = 2;

/// A customer's counters as the control plane read them: `forwarded` was
/// loaded before `seen`, so `seen` covers every forward in `forwarded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellRead {
    pub seen: u64,
    pub forwarded: u64,
}

/// One worker core's per-customer state, shared with the control plane.
/// Sized for one customer set: a reload that changes the customers makes a
/// new generation of shards. The worker's side is [`WorkerShard::try_forward`]
/// and [`WorkerShard::is_blocked`]; the grant protocol on the control side
/// lives in `synwall_control::grant`.
///
/// # Grants that expire (the fleet)
///
/// A grant is a count, not a time: a worker spends it whenever it runs. A
/// grant that holds part of a fleet lease must not be spent after the
/// lease's deadline, and after a whole-process pause (`SIGSTOP`, a VM
/// freeze) the workers may run before the control thread has lowered it.
/// So the control plane marks the customers whose grants hold a lease
/// ([`WorkerShard::set_expires`]) and stamps the shard, after each tick's
/// grant writes, with the TSC until which those grants may be spent
/// ([`WorkerShard::set_grants_until`]); the worker reads the TSC for a
/// marked customer's SYN and refuses it past the stamp. Unmarked grants
/// never expire and cost no TSC read.
#[derive(Debug)]
pub struct WorkerShard {
    cells: HugeArray<CustomerCell>,
    /// TSC until which marked grants may be spent (control plane writes,
    /// worker reads); `u64::MAX`: no expiry.
    grants_until: StampLine,
    /// The customers this core counted since the control plane last took
    /// them.
    listing: Listing,
}

/// The shard's stamp on a cache line of its own: the control plane's
/// store once a tick does not evict the worker's copy of `cells`.
#[derive(Debug)]
#[repr(align(64))]
struct StampLine(AtomicU64);

impl WorkerShard {
    /// A shard for `customers` customer ids, all counters zero, nothing
    /// blocked, grants unlimited.
    pub fn new(customers: usize) -> Self {
        WorkerShard::on_node(customers, None)
    }

    /// [`WorkerShard::new`], its memory on NUMA `node` (that of the worker
    /// that writes it).
    pub fn on_node(customers: usize, node: Option<u32>) -> Self {
        WorkerShard::with_listing(customers, node, customers.min(MAX_SLOTS))
    }

    /// [`WorkerShard::on_node`] with a listing ring of `slots` ids (rounded
    /// up to a power of two). A ring of at least `customers` slots never
    /// overflows (a customer is in it at most once); tests give a tiny one
    /// to force the overflow path.
    pub fn with_listing(customers: usize, node: Option<u32>, slots: usize) -> Self {
        let cells = HugeArray::<CustomerCell>::zeroed(customers, node);
        for c in cells.iter() {
            c.grant.store(u64::MAX, Relaxed);
        }
        WorkerShard {
            cells,
            grants_until: StampLine(AtomicU64::new(u64::MAX)),
            listing: Listing::new(slots, node),
        }
    }

    /// Slots in the listing ring.
    pub fn listing_capacity(&self) -> usize {
        self.listing.capacity()
    }

    /// Customer ids this shard has room for.
    pub fn customers(&self) -> usize {
        self.cells.len()
    }

    // --- the worker's side -------------------------------------------

    /// Starts loading `id`'s cell into the cache (a burst prefetches every
    /// classified customer's cell before it decides any frame).
    #[inline(always)]
    pub fn prefetch(&self, id: CustomerId) {
        if let Some(c) = self.cells.get(id.index()) {
            prefetch(c);
        }
    }

    /// One watched SYN of `id`: counts it as seen, and forwards it (counts
    /// it as forwarded, returns true) unless the customer is blocked or this
    /// core has spent its grant. An id beyond the shard (a classifier newer
    /// than the shard) is forwarded uncounted: never drop on our own
    /// inconsistency.
    ///
    /// A grant marked as holding a lease is spent only before the shard's
    /// stamp (see the type's docs): checked here, per SYN, just before the
    /// forward is counted, so a pause anywhere else in the loop cannot
    /// carry a stale decision across it.
    #[inline(always)]
    pub fn try_forward(&self, id: CustomerId) -> bool {
        let Some(c) = self.cells.get(id.index()) else {
            return true;
        };
        bump(&c.seen);
        if c.listed.load(Relaxed) == 0 {
            self.list(c, id);
        }
        let forwarded = c.forwarded.load(Relaxed);
        let flags = c.flags.load(Acquire);
        if flags & BLOCKED != 0 || forwarded >= c.grant.load(Relaxed) {
            return false;
        }
        if flags & EXPIRES != 0 && self.stale() {
            return false;
        }
        c.forwarded.store(forwarded + 1, Relaxed);
        true
    }

    /// Lists `id` (its first SYN on this core since the control plane last
    /// took it): marks the cell, then pushes the id (see
    /// [`WorkerShard::take_listed`]). Inline, on a cold path: as an
    /// out-of-line call it cost a watched SYN about 2 instructions more
    /// (callgrind), the loop keeping values safe across the call.
    #[inline(always)]
    fn list(&self, c: &CustomerCell, id: CustomerId) {
        std::hint::cold_path();
        c.listed.store(1, Relaxed);
        self.listing.push(id);
    }

    /// Whether marked grants are past the shard's stamp.
    #[cold]
    #[inline(never)]
    fn stale(&self) -> bool {
        synwall_memory::tsc_now() >= self.grants_until.0.load(Acquire)
    }

    /// Whether `id`'s watched traffic is dropped (false for ids out of
    /// range).
    #[inline(always)]
    pub fn is_blocked(&self, id: CustomerId) -> bool {
        self.cells
            .get(id.index())
            .is_some_and(|c| c.flags.load(Relaxed) & BLOCKED != 0)
    }

    // --- the control plane's side ------------------------------------

    /// Blocks or unblocks `id` on this core (control plane only).
    pub fn set_blocked(&self, id: CustomerId, blocked: bool) {
        self.set_flag(id, BLOCKED, blocked);
    }

    /// Marks `id`'s grant as holding a fleet lease (control plane only):
    /// set before the tick that raises the grant with a lease, cleared only
    /// once the grant holds none.
    pub fn set_expires(&self, id: CustomerId, expires: bool) {
        self.set_flag(id, EXPIRES, expires);
    }

    /// Whether `id`'s grant is marked as holding a lease.
    pub fn expires(&self, id: CustomerId) -> bool {
        self.cells
            .get(id.index())
            .is_some_and(|c| c.flags.load(Relaxed) & EXPIRES != 0)
    }

    fn set_flag(&self, id: CustomerId, flag: u32, on: bool) {
        if let Some(c) = self.cells.get(id.index()) {
            // One writer: a plain load and store.
            let old = c.flags.load(Relaxed);
            let new = if on { old | flag } else { old & !flag };
            if new != old {
                c.flags.store(new, Release);
            }
        }
    }

    /// Stamps the shard: marked grants may be spent until TSC `until`
    /// (control plane only, after a tick's grant writes; `u64::MAX`: no
    /// expiry).
    pub fn set_grants_until(&self, until: u64) {
        self.grants_until.0.store(until, Release);
    }

    /// The shard's stamp.
    pub fn grants_until(&self) -> u64 {
        self.grants_until.0.load(Relaxed)
    }

    /// `id`'s counters (zero for ids out of range).
    #[inline]
    pub fn read(&self, id: CustomerId) -> CellRead {
        match self.cells.get(id.index()) {
            Some(c) => {
                // Forwarded before seen: the worker bumps seen first.
                let forwarded = c.forwarded.load(Relaxed);
                CellRead {
                    seen: c.seen.load(Relaxed),
                    forwarded,
                }
            }
            None => CellRead {
                seen: 0,
                forwarded: 0,
            },
        }
    }

    /// Every customer's seen count, in id order.
    #[inline]
    pub fn seen_counts(&self) -> impl Iterator<Item = u64> + '_ {
        self.cells.iter().map(|c| c.seen.load(Relaxed))
    }

    /// `id`'s seen count (0 out of range).
    #[inline]
    pub fn seen(&self, id: CustomerId) -> u64 {
        self.cells
            .get(id.index())
            .map_or(0, |c| c.seen.load(Relaxed))
    }

    /// Takes the customers this core listed since the last take (control
    /// plane only): appends their ids to `out` and clears their marks, so
    /// the worker lists each again at its next SYN. Returns false if the
    /// ring overflowed meanwhile: then customers with new counts may be
    /// missing from `out`, and the caller must [`WorkerShard::sweep`] the
    /// shard this tick.
    ///
    /// # Why no count is lost
    ///
    /// The worker, per watched SYN of `c`: bumps `seen`, loads `listed`;
    /// if 0, stores 1 and pushes `c` (the ring's `Release`). The control
    /// plane takes the ids (`Acquire`), clears their marks, and only then
    /// reads their counts (against baselines, so a count read late is
    /// counted late, never lost or twice). Take one SYN of `c`:
    ///
    /// - its worker loaded `listed == 0`: it pushes `c` after the bump, so
    ///   the take that gets `c` (or, if the ring was full, the overflow
    ///   flag and the sweep behind it) happens after the bump, and the
    ///   reads of that tick include it;
    /// - its worker loaded 1: that mark was set by an earlier listing (only
    ///   the worker sets it), and the control plane's clear of it, at the
    ///   take of that listing, is ordered after the set (the clear follows
    ///   the `Acquire` of the id). Either the tick that clears it reads
    ///   `seen` after the bump, or the bump raced the clear: the worker's
    ///   store and the control plane's were in flight together. That is
    ///   why the caller must look again, at the next tick, at every
    ///   customer whose mark it cleared (compare `seen` with its
    ///   baseline): a store is visible on another core well within a tick
    ///   (the assumption the grants already rest on), so the next tick
    ///   reads the bump.
    ///
    /// The mark cannot be set without the id being queued or the overflow
    /// flag raised, and it is cleared only by a take or a sweep that has
    /// seen both, so a customer is never stuck marked and unlisted.
    pub fn take_listed(&self, out: &mut Vec<CustomerId>) -> bool {
        let start = out.len();
        let overflowed = self.listing.take(out);
        for id in &out[start..] {
            if let Some(c) = self.cells.get(id.index()) {
                c.listed.store(0, Relaxed);
            }
        }
        !overflowed
    }

    /// After an overflow (control plane only, after
    /// [`WorkerShard::take_listed`] returned false): one pass over the
    /// cells that clears every mark (appending the cleared ids to
    /// `cleared`: look at them again next tick, as after a take) and calls
    /// `each` with the id and seen count of each of the first `n`
    /// customers.
    pub fn sweep(
        &self,
        n: usize,
        cleared: &mut Vec<CustomerId>,
        mut each: impl FnMut(CustomerId, u64),
    ) {
        for (id, c) in CustomerId::all(self.cells.len()).zip(self.cells.iter()) {
            if c.listed.load(Relaxed) != 0 {
                c.listed.store(0, Relaxed);
                cleared.push(id);
            }
            if id.index() < n {
                each(id, c.seen.load(Relaxed));
            }
        }
    }

    /// `id`'s cumulative grant (`u64::MAX` unlimited; 0 out of range).
    #[inline]
    pub fn grant(&self, id: CustomerId) -> u64 {
        self.cells
            .get(id.index())
            .map_or(0, |c| c.grant.load(Relaxed))
    }

    /// Sets `id`'s cumulative grant (control plane only; see
    /// `synwall_control::grant` for the protocol that keeps it exact).
    #[inline]
    pub fn set_grant(&self, id: CustomerId, grant: u64) {
        if let Some(c) = self.cells.get(id.index()) {
            c.grant.store(grant, Relaxed);
        }
    }

    /// [`WorkerShard::try_forward`] as a worker runs it when its load of
    /// `id`'s mark still reads the 1 that the control plane has just
    /// cleared (the clear reaches this core after the load): the SYN is
    /// counted, `id` is not listed again. For tests of the tick's recheck,
    /// never while a worker runs on this shard.
    #[doc(hidden)]
    pub fn forward_past_a_cleared_mark(&self, id: CustomerId) -> bool {
        let Some(c) = self.cells.get(id.index()) else {
            return true;
        };
        c.listed.store(1, Relaxed);
        let forwarded = self.try_forward(id);
        c.listed.store(0, Relaxed);
        forwarded
    }

    /// Overwrites `id`'s counters, as if its worker had counted them: for
    /// tests and tools that stand in for a worker, never while one runs on
    /// this shard.
    #[doc(hidden)]
    pub fn seed_counts(&self, id: CustomerId, seen: u64, forwarded: u64) {
        if let Some(c) = self.cells.get(id.index()) {
            c.seen.store(seen, Relaxed);
            c.forwarded.store(forwarded, Relaxed);
            if c.listed.load(Relaxed) == 0 {
                self.list(c, id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn a_cell_is_one_aligned_half_line() {
        assert_eq!(size_of::<CustomerCell>(), 32);
        assert_eq!(align_of::<CustomerCell>(), 32);
    }

    #[test]
    fn a_marked_grant_is_spent_only_before_the_stamp() {
        let s = WorkerShard::new(3);
        s.set_grant(CustomerId::new(1), 10);
        s.set_grant(CustomerId::new(2), 10);
        s.set_expires(CustomerId::new(1), true);
        // Stamped in the past (a pause outlasted it): the marked grant is
        // refused, the unmarked one is still spent.
        s.set_grants_until(synwall_memory::tsc_now().saturating_sub(1));
        assert!(
            !s.try_forward(CustomerId::new(1)),
            "stale marked grant spent"
        );
        assert!(
            s.try_forward(CustomerId::new(2)),
            "an unmarked grant never expires"
        );
        assert_eq!(
            s.read(CustomerId::new(1)),
            CellRead {
                seen: 1,
                forwarded: 0
            }
        );
        // A fresh stamp: spent again, up to the grant.
        s.set_grants_until(u64::MAX);
        assert_eq!(
            (0..20)
                .filter(|_| s.try_forward(CustomerId::new(1)))
                .count(),
            10
        );
        // Blocking keeps the mark, unmarking keeps the block.
        s.set_blocked(CustomerId::new(1), true);
        assert!(s.expires(CustomerId::new(1)) && s.is_blocked(CustomerId::new(1)));
        s.set_expires(CustomerId::new(1), false);
        assert!(!s.expires(CustomerId::new(1)) && s.is_blocked(CustomerId::new(1)));
        s.set_expires(CustomerId::new(9), true); // out of range: ignored
        assert!(!s.expires(CustomerId::new(9)));
    }

    #[test]
    fn block_grant_and_range() {
        let s = WorkerShard::new(130);
        assert!(!s.is_blocked(CustomerId::new(129)));
        s.set_blocked(CustomerId::new(129), true);
        s.set_blocked(CustomerId::new(3), true);
        assert!(
            s.is_blocked(CustomerId::new(129))
                && s.is_blocked(CustomerId::new(3))
                && !s.is_blocked(CustomerId::new(4))
        );
        assert!(!s.try_forward(CustomerId::new(3)), "blocked");
        s.set_blocked(CustomerId::new(129), false);
        assert!(!s.is_blocked(CustomerId::new(129)));
        assert!(!s.is_blocked(CustomerId::new(100_000)));
        s.set_blocked(CustomerId::new(100_000), true); // out of range: ignored, no panic
        assert!(
            s.try_forward(CustomerId::new(100_000)),
            "out of range: forwarded"
        );
        s.set_grant(CustomerId::new(5), 2);
        assert_eq!(
            (0..4).filter(|_| s.try_forward(CustomerId::new(5))).count(),
            2
        );
        assert_eq!(
            s.read(CustomerId::new(5)),
            CellRead {
                seen: 4,
                forwarded: 2
            }
        );
        assert_eq!(s.read(CustomerId::new(3)).seen, 1);
        assert_eq!(s.grant(CustomerId::new(6)), u64::MAX);
    }

    #[test]
    fn single_writer_counts_are_exact_under_concurrent_reads() {
        let shard = Arc::new(WorkerShard::new(4));
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let shard = shard.clone();
            std::thread::spawn(move || {
                for i in 0..1_000_000u32 {
                    shard.try_forward(CustomerId::new(i % 4));
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
                    for (l, now) in last.iter_mut().zip(shard.seen_counts()) {
                        assert!(now >= *l);
                        total += now - *l;
                        *l = now;
                    }
                }
                for (l, now) in last.iter_mut().zip(shard.seen_counts()) {
                    total += now - *l;
                }
                total
            })
        };
        writer.join().unwrap();
        done.store(true, Relaxed);
        assert_eq!(reader.join().unwrap(), 1_000_000);
    }
}
