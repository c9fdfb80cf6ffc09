//! Trailing-window SYN counters, one set per active customer.
//!
//! Each configured window (e.g. 5 minutes) is a ring of [`BUCKETS`] whole
//! buckets of `length / 30` (rounded up to a millisecond) plus the bucket
//! currently filling. A bucket expires whole, so a window's count covers the
//! last `length` **plus at most one bucket** (`length / 30`): the count never
//! misses a SYN of the last `length`, and may still include SYNs up to
//! `length / 30` older than that. That direction is deliberate: enforcement
//! built on these counts can promise "never more than the limit in any
//! trailing window of exactly `length`", at the price of releasing a
//! customer up to 1/30 of the window late.
//!
//! Storage is sparse: only customers with a non-zero count in some window
//! have an entry, so idle customers cost nothing here, and an entry is freed
//! as soon as all its windows have drained to zero.
//!
//! Time is a monotonic millisecond value passed in by the caller (no clock
//! inside), which keeps this deterministic and testable.
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use synwall_dataplane::CustomerId;

use crate::slab::SlotTable;

/// A hasher for dense `u32` customer ids: one multiply instead of SipHash.
/// Ids are not attacker-chosen (they are config indices), so no DoS
/// resistance is needed, and the tick's per-customer lookups get cheaper.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        // Fibonacci hashing: the high bits (used by the table's tags) and
        // the low bits both vary with every bit of the id.
        let h = u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

/// A map keyed by customer id.
pub type IdMap<V> = HashMap<CustomerId, V, BuildHasherDefault<IdHasher>>;

/// Whole buckets per window; the count is coarse by at most one of them.
pub const BUCKETS: usize = 30;

/// The most windows [`Windows`] supports (the config's limit).
pub const MAX_WINDOWS: usize = synwall_config::MAX_WINDOWS;

/// Buckets a window keeps besides the one filling.
const WHOLE: u64 = BUCKETS as u64;

/// Added to every bucket index so that buckets restored from before the
/// clock's zero (a snapshot taken by an earlier process) still have a
/// non-negative index.
const SHIFT: u64 = WHOLE + 1;

/// A window's buckets in a form that survives a restart: see
/// [`Windows::export`] and [`Windows::import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingExport {
    /// Start of the newest bucket, in the exporting caller's millisecond
    /// clock (may be negative after conversion between clocks).
    pub newest_start_ms: i64,
    /// Bucket length in milliseconds.
    pub bucket_ms: u64,
    /// Counts newest first; `buckets[j]` started `j` buckets before the
    /// newest. Trailing zeros are trimmed.
    pub buckets: Vec<u64>,
}

/// A cache line of counters: the unit the store is allocated in, so that a
/// customer's header never straddles two lines.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// Trailing-window counters for every active customer (sparse).
///
/// # Layout
///
/// Every active customer has a slot in two flat arrays, allocated once and
/// reused through a free list, with a customer-id-indexed table of slots in
/// front: no hashing, no allocation per customer.
///
/// - The **header**, one line for up to four windows (two for more): for
///   each window the sum of its 30 whole buckets (`whole`) and the bucket
///   filling now (`filling`). A tick's count of a sender reads and writes
///   only this line: the count is `whole + filling`.
/// - The **ring**: each window's 30 whole buckets, touched only when a
///   bucket boundary passes ([`Windows::advance`], one sequential pass over
///   the active customers) and by snapshots.
///
/// All customers share each window's head (the bucket filling now): the
/// store moves every customer's buckets together, so none carries its own.
#[derive(Debug, Clone)]
pub struct Windows {
    lengths: Vec<Duration>,
    bucket_ms: Vec<u64>,
    /// Each window's head: the (shifted) index of the bucket filling now.
    head: Vec<u64>,
    /// Whether [`Windows::advance`] moved a head since the last
    /// [`Windows::take_moved`].
    moved: bool,
    /// The first millisecond at which some head must move.
    next_boundary: u64,
    /// Lines a header takes.
    header_lines: usize,
    /// Slot of each customer id; none if idle.
    slot_of: SlotTable,
    /// The customer in each slot (meaningless for a free slot).
    owner: Vec<CustomerId>,
    /// Headers, `header_lines` lines a slot: window `w`'s whole-bucket sum
    /// at word `2w`, its filling bucket at `2w + 1`.
    headers: Vec<Line>,
    /// Whole buckets, `BUCKETS` words a window a slot: bucket `i` of window
    /// `w` at word `w * BUCKETS + i % BUCKETS`, for `head - 30 <= i < head`.
    rings: Vec<u64>,
    /// Free slots.
    free: Vec<u32>,
}

impl Windows {
    /// Counters for windows of the given lengths (1 to [`MAX_WINDOWS`], each
    /// at least 30 ms). Panics otherwise: the config validates both.
    pub fn new(lengths: &[Duration]) -> Windows {
        assert!(
            !lengths.is_empty() && lengths.len() <= MAX_WINDOWS,
            "1 to {MAX_WINDOWS} windows"
        );
        let bucket_ms: Vec<u64> = lengths
            .iter()
            .map(|l| {
                // Round up: 30 whole buckets then cover at least `length`.
                let ms = (l.as_millis() as u64).div_ceil(BUCKETS as u64);
                assert!(ms > 0, "window {l:?} is shorter than {BUCKETS} ms");
                ms
            })
            .collect();
        let mut windows = Windows {
            lengths: lengths.to_vec(),
            head: vec![SHIFT; lengths.len()],
            moved: false,
            next_boundary: 0,
            header_lines: (2 * lengths.len()).div_ceil(8),
            bucket_ms,
            slot_of: SlotTable::default(),
            owner: Vec::new(),
            headers: Vec::new(),
            rings: Vec::new(),
            free: Vec::new(),
        };
        windows.next_boundary = windows.next_boundary();
        windows
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Always false: there is at least one window.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// The configured window lengths.
    pub fn lengths(&self) -> &[Duration] {
        &self.lengths
    }

    /// Bucket length of window `w` in milliseconds.
    pub fn bucket_ms(&self, w: usize) -> u64 {
        self.bucket_ms[w]
    }

    fn cur(&self, w: usize, now: u64) -> u64 {
        now / self.bucket_ms[w] + SHIFT
    }

    fn slot(&self, customer: CustomerId) -> Option<usize> {
        self.slot_of.get(customer)
    }

    /// Window `w`'s (whole, filling) words in `slot`'s header.
    fn header(&self, slot: usize, w: usize) -> (u64, u64) {
        let line = &self.headers[slot * self.header_lines + w / 4].0;
        (line[w % 4 * 2], line[w % 4 * 2 + 1])
    }

    fn header_mut(&mut self, slot: usize, w: usize) -> (&mut u64, &mut u64) {
        let line = &mut self.headers[slot * self.header_lines + w / 4].0;
        let (whole, filling) = line[w % 4 * 2..].split_at_mut(1);
        (&mut whole[0], &mut filling[0])
    }

    /// Where window `w`'s whole buckets in `slot` start in `rings`.
    fn ring_at(&self, slot: usize, w: usize) -> usize {
        (slot * self.len() + w) * BUCKETS
    }

    /// Window `w`'s whole buckets in `slot`.
    fn ring(&self, slot: usize, w: usize) -> &[u64] {
        let at = self.ring_at(slot, w);
        &self.rings[at..at + BUCKETS]
    }

    /// `customer`'s slot, taken from the free list (zeroed) if it has none;
    /// also says whether it was new.
    fn slot_or_new(&mut self, customer: CustomerId) -> (usize, bool) {
        if let Some(s) = self.slot(customer) {
            return (s, false);
        }
        let s = match self.free.pop() {
            Some(s) => {
                self.owner[s as usize] = customer;
                s as usize
            }
            None => {
                let s = self.owner.len();
                self.owner.push(customer);
                self.headers
                    .resize(self.headers.len() + self.header_lines, Line::default());
                self.rings
                    .resize(self.rings.len() + self.len() * BUCKETS, 0);
                s
            }
        };
        self.slot_of.set(customer, s);
        (s, true)
    }

    /// Frees `slot` (its owner becomes idle) and zeroes it for reuse.
    fn release(&mut self, slot: usize) {
        self.slot_of.clear(self.owner[slot]);
        let h = slot * self.header_lines;
        self.headers[h..h + self.header_lines].fill(Line::default());
        // Every window's ring of `slot`: up to the next slot's first.
        let rings = self.ring_at(slot, 0)..self.ring_at(slot + 1, 0);
        self.rings[rings].fill(0);
        self.free.push(slot as u32);
    }

    /// Moves every head to `now` when `now` is past some head (a no-op
    /// otherwise): the first thing every method that writes at `now` does,
    /// so a customer's buckets are always those of the shared heads.
    fn catch_up(&mut self, now: u64) {
        if now >= self.next_boundary {
            self.advance(now);
        }
    }

    /// Counts `n` SYNs for `customer` at time `now` in every window.
    pub fn add(&mut self, customer: CustomerId, n: u64, now: u64) {
        if n > 0 {
            self.add_and_count(customer, n, now);
        }
    }

    /// [`Windows::add`] then [`Windows::counts`] in one lookup; also says
    /// whether the customer had no state before (all windows had drained).
    ///
    /// A time before a head (clock skew across a restore) lands in the
    /// bucket filling now: counted, and expiring no earlier.
    pub fn add_and_count(
        &mut self,
        customer: CustomerId,
        n: u64,
        now: u64,
    ) -> ([u64; MAX_WINDOWS], bool) {
        if n == 0 {
            return match self.slot(customer) {
                Some(_) => (self.counts(customer, now), false),
                None => ([0; MAX_WINDOWS], true),
            };
        }
        self.catch_up(now);
        let (slot, fresh) = self.slot_or_new(customer);
        let mut out = [0; MAX_WINDOWS];
        for (w, o) in out.iter_mut().enumerate().take(self.len()) {
            let (whole, filling) = self.header_mut(slot, w);
            *filling += n;
            *o = *whole + *filling;
        }
        (out, fresh)
    }

    /// Starts loading `customer`'s entry in the table of slots (a tick's
    /// first look at a sender).
    pub fn prefetch_slot(&self, customer: CustomerId) {
        self.slot_of.prefetch(customer);
    }

    /// Starts loading `customer`'s header, once its slot entry is loaded
    /// ([`Windows::prefetch_slot`] a few customers earlier).
    pub fn prefetch_header(&self, customer: CustomerId) {
        if let Some(s) = self.slot(customer) {
            if let Some(line) = self.headers.get(s * self.header_lines) {
                synwall_dataplane::prefetch(line);
            }
        }
    }

    /// Window `w`'s count in `slot` at bucket `cur` (a head or later),
    /// without moving anything.
    fn count_in(&self, slot: usize, w: usize, cur: u64) -> u64 {
        let (whole, filling) = self.header(slot, w);
        let head = self.head[w];
        if cur <= head {
            return whole + filling;
        }
        let k = cur - head;
        if k > WHOLE {
            return 0;
        }
        // Buckets head - 30 .. head - 30 + k have expired by `cur`.
        let ring = self.ring(slot, w);
        let expired: u64 = (0..k).map(|j| ring[((head + j) % WHOLE) as usize]).sum();
        whole + filling - expired
    }

    /// `customer`'s count in window `w` at `now` (0 if idle).
    pub fn count(&self, customer: CustomerId, w: usize, now: u64) -> u64 {
        match self.slot(customer) {
            Some(s) => self.count_in(s, w, self.cur(w, now)),
            None => 0,
        }
    }

    /// `customer`'s count in every window at `now`, indexed like the
    /// lengths given to [`Windows::new`]; unused entries are 0.
    pub fn counts(&self, customer: CustomerId, now: u64) -> [u64; MAX_WINDOWS] {
        let mut out = [0; MAX_WINDOWS];
        if let Some(s) = self.slot(customer) {
            for (w, o) in out.iter_mut().enumerate().take(self.len()) {
                *o = self.count_in(s, w, self.cur(w, now));
            }
        }
        out
    }

    /// Expires buckets up to `now` and frees customers whose windows are all
    /// empty. Touches only active customers, in one pass in slot order, and
    /// only when some window crossed a bucket boundary since the last call.
    /// Returns how many customers were freed.
    pub fn advance(&mut self, now: u64) -> usize {
        let steps: Vec<u64> = (0..self.len())
            .map(|w| self.cur(w, now).saturating_sub(self.head[w]))
            .collect();
        if steps.iter().all(|&k| k == 0) {
            return 0;
        }
        self.moved = true;
        let mut freed = 0;
        for slot in 0..self.owner.len() {
            if !self.live(slot) {
                continue;
            }
            let mut any = false;
            for (w, &k) in steps.iter().enumerate() {
                any |= self.rotate(slot, w, k);
            }
            if !any {
                self.release(slot);
                freed += 1;
            }
        }
        for (h, k) in self.head.iter_mut().zip(&steps) {
            *h += k;
        }
        self.next_boundary = self.next_boundary();
        freed
    }

    /// The first millisecond at which some window's filling bucket ends.
    fn next_boundary(&self) -> u64 {
        (0..self.len())
            .map(|w| (self.head[w] + 1 - SHIFT).saturating_mul(self.bucket_ms[w]))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Whether `slot` holds a customer (a freed one's owner no longer
    /// points back at it).
    fn live(&self, slot: usize) -> bool {
        self.slot(self.owner[slot]) == Some(slot)
    }

    /// Moves window `w` of `slot` `k` buckets on from the shared head:
    /// each step the filling bucket becomes whole, in the place of the one
    /// that expires. Returns whether the window still counts anything.
    fn rotate(&mut self, slot: usize, w: usize, k: u64) -> bool {
        let head = self.head[w];
        let at = self.ring_at(slot, w);
        let (whole, filling) = self.header(slot, w);
        let (whole, filling) = if k == 0 {
            (whole, filling)
        } else if k > WHOLE {
            self.rings[at..at + BUCKETS].fill(0);
            (0, 0)
        } else {
            let ring = &mut self.rings[at..at + BUCKETS];
            let (mut whole, mut filling) = (whole, filling);
            for j in 0..k {
                let p = ((head + j) % WHOLE) as usize;
                whole = whole - ring[p] + filling;
                ring[p] = filling;
                filling = 0;
            }
            (whole, filling)
        };
        let (header_whole, header_filling) = self.header_mut(slot, w);
        *header_whole = whole;
        *header_filling = filling;
        whole + filling > 0
    }

    /// Whether some bucket boundary passed (a head moved) since the last
    /// call: until one does, no idle customer's counts can have changed.
    pub fn take_moved(&mut self) -> bool {
        std::mem::take(&mut self.moved)
    }

    /// Customers with state (a non-zero count in some window, as of the last
    /// advance).
    pub fn active(&self) -> usize {
        self.owner.len() - self.free.len()
    }

    /// Whether `customer` has state.
    pub fn is_active(&self, customer: CustomerId) -> bool {
        self.slot(customer).is_some()
    }

    /// The customers with state, in no particular order.
    pub fn customers(&self) -> impl Iterator<Item = CustomerId> + '_ {
        (0..self.owner.len())
            .filter(|&s| self.live(s))
            .map(|s| self.owner[s])
    }

    /// Drops `customer`'s state.
    pub fn remove(&mut self, customer: CustomerId) {
        if let Some(s) = self.slot(customer) {
            self.release(s);
        }
    }

    /// `customer`'s buckets as of `now`, one entry per window, in the
    /// caller's clock; `None` if idle.
    pub fn export(&self, customer: CustomerId, now: u64) -> Option<Vec<RingExport>> {
        let slot = self.slot(customer)?;
        Some(
            (0..self.len())
                .map(|w| {
                    let head = self.head[w];
                    let cur = self.cur(w, now).max(head);
                    let (_, filling) = self.header(slot, w);
                    let ring = self.ring(slot, w);
                    // Bucket `i` as seen at `cur`: 0 once expired.
                    let bucket = |i: u64| -> u64 {
                        if i > head || i + WHOLE < cur {
                            0
                        } else if i == head {
                            filling
                        } else {
                            ring[(i % WHOLE) as usize]
                        }
                    };
                    let mut buckets: Vec<u64> = (0..=WHOLE).map(|j| bucket(cur - j)).collect();
                    while buckets.last() == Some(&0) {
                        buckets.pop();
                    }
                    RingExport {
                        newest_start_ms: ((cur - SHIFT) * self.bucket_ms[w]) as i64,
                        bucket_ms: self.bucket_ms[w],
                        buckets,
                    }
                })
                .collect(),
        )
    }

    /// Adds exported buckets into `customer`'s window `w`, as of `now`.
    ///
    /// Each exported bucket is placed in the bucket that holds its *last*
    /// millisecond (so it never expires earlier than it would have); buckets
    /// that have expired by `now` are dropped. The exported bucket length
    /// need not match (a window renamed but of the same length still does;
    /// a different one is mapped by end time, which stays conservative).
    pub fn import(&mut self, customer: CustomerId, w: usize, export: &RingExport, now: u64) {
        self.catch_up(now);
        let head = self.head[w];
        let b = self.bucket_ms[w] as i64;
        for (j, &n) in export.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let end = export
                .newest_start_ms
                .saturating_add(export.bucket_ms as i64 * (1 - j as i64))
                - 1;
            let index = end.div_euclid(b) + SHIFT as i64;
            let index = (index.max(0) as u64).min(head);
            if index + WHOLE < head {
                continue; // expired while we were away
            }
            let (slot, _) = self.slot_or_new(customer);
            if index == head {
                *self.header_mut(slot, w).1 += n;
            } else {
                let at = self.ring_at(slot, w) + (index % WHOLE) as usize;
                self.rings[at] += n;
                *self.header_mut(slot, w).0 += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn one(len_ms: u64) -> Windows {
        Windows::new(&[Duration::from_millis(len_ms)])
    }

    #[test]
    fn counts_slide_and_expire_whole_buckets() {
        // 5 min window: 10 s buckets.
        let mut w = one(5 * MIN);
        assert_eq!(w.bucket_ms(0), 10_000);
        w.add(CustomerId::new(7), 3, 1_000); // bucket [0, 10s)
        w.add(CustomerId::new(7), 4, 15_000); // bucket [10s, 20s)
        assert_eq!(w.count(CustomerId::new(7), 0, 15_000), 7);
        // The first bucket is counted as long as any part of it is within
        // the last 5 minutes plus one bucket: until 310 s.
        assert_eq!(w.count(CustomerId::new(7), 0, 309_999), 7);
        assert_eq!(w.count(CustomerId::new(7), 0, 310_000), 4);
        assert_eq!(w.count(CustomerId::new(7), 0, 319_999), 4);
        assert_eq!(w.count(CustomerId::new(7), 0, 320_000), 0);
        assert_eq!(w.count(CustomerId::new(8), 0, 0), 0);
    }

    #[test]
    fn never_undercounts_and_overcounts_by_at_most_one_bucket() {
        // Property: for a SYN at time t and a query at q >= t, it is counted
        // whenever q - t < length (never missed) and never when
        // q - t >= length + bucket (coarse by at most 1/30).
        let len = 5 * MIN;
        let b = len / 30;
        let mut seed = 0x1234_5678_u64;
        for _ in 0..2_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let t = seed % (10 * len);
            let q = t + (seed >> 20) % (len + 2 * b);
            let mut w = one(len);
            w.add(CustomerId::new(1), 1, t);
            w.advance(q);
            let c = w.count(CustomerId::new(1), 0, q);
            if q - t < len {
                assert_eq!(c, 1, "missed SYN at {t} queried at {q}");
            }
            if q - t >= len + b {
                assert_eq!(c, 0, "kept SYN at {t} queried at {q}");
            }
        }
    }

    #[test]
    fn several_windows_and_sparse_state_is_freed() {
        let mut w = Windows::new(&[
            Duration::from_secs(60),
            Duration::from_secs(3_600),
            Duration::from_secs(86_400),
        ]);
        for t in 0..120u64 {
            w.add(CustomerId::new(42), 1, t * 1_000);
        }
        let c = w.counts(CustomerId::new(42), 120_000);
        // 1 min window: the SYNs of the last 60 s plus at most one 2 s bucket.
        assert!((60..=62).contains(&c[0]), "{c:?}");
        assert_eq!(&c[1..3], &[120, 120]);
        assert_eq!(w.active(), 1);
        w.advance(3_600_000);
        assert_eq!(w.counts(CustomerId::new(42), 3_600_000)[..3], [0, 120, 120]);
        w.advance(86_400_000 + 3 * 2_880_000);
        assert_eq!(w.active(), 0, "state freed once every window drained");
        assert!(!w.is_active(CustomerId::new(42)));
    }

    #[test]
    fn advance_is_a_no_op_within_a_bucket_and_jumps_far() {
        let mut w = one(MIN);
        w.add(CustomerId::new(1), 5, 0);
        assert_eq!(w.advance(1), 0);
        assert_eq!(w.count(CustomerId::new(1), 0, 1_000), 5);
        assert_eq!(w.advance(100 * MIN), 1);
        w.add(CustomerId::new(1), 2, 100 * MIN);
        assert_eq!(w.count(CustomerId::new(1), 0, 100 * MIN), 2);
    }

    /// The flat store against the definition, on random traffic: a SYN
    /// counted at `t` is in window `w`'s count at `q` exactly while its
    /// bucket is one of the 31 newest at `q`; removed customers start over;
    /// an export imported at the same time counts the same; freed slots
    /// are reused without carrying anything.
    #[test]
    fn counts_match_the_definition_on_random_traffic() {
        let lengths = [
            Duration::from_millis(300),
            Duration::from_millis(1_000),
            Duration::from_millis(7_777),
        ];
        let mut seed = 0x9e37_79b9_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20 {
            let mut w = Windows::new(&lengths);
            let mut sent: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 12];
            let mut now = next() % 5_000;
            for _ in 0..600 {
                // Mostly close together, sometimes across whole windows.
                now += if next() % 16 == 0 {
                    next() % 9_000
                } else {
                    next() % 120
                };
                let c = (next() % 12) as usize;
                let id = CustomerId::new(c as u32 * 7);
                match next() % 10 {
                    0 => {
                        w.remove(id);
                        sent[c].clear();
                    }
                    1 => {
                        w.advance(now);
                    }
                    _ => {
                        let n = 1 + next() % 5;
                        w.add(id, n, now);
                        sent[c].push((now, n));
                    }
                }
                for (c, events) in sent.iter().enumerate() {
                    let id = CustomerId::new(c as u32 * 7);
                    for (k, len) in lengths.iter().enumerate() {
                        let b = w.bucket_ms(k);
                        let cur = now / b;
                        let want: u64 = events
                            .iter()
                            .filter(|&&(t, _)| t / b + 31 > cur)
                            .map(|&(_, n)| n)
                            .sum();
                        assert_eq!(
                            w.count(id, k, now),
                            want,
                            "customer {c} window {len:?} at {now}"
                        );
                    }
                    if let Some(ex) = w.export(id, now) {
                        let mut copy = Windows::new(&lengths);
                        for (k, e) in ex.iter().enumerate() {
                            copy.import(id, k, e, now);
                        }
                        assert_eq!(copy.counts(id, now), w.counts(id, now));
                    }
                }
            }
        }
    }

    #[test]
    fn export_import_round_trip_across_clocks() {
        let mut a = Windows::new(&[Duration::from_secs(300), Duration::from_secs(3_600)]);
        a.add(CustomerId::new(1), 10, 1_000_000);
        a.add(CustomerId::new(1), 5, 1_200_000);
        let ex = a.export(CustomerId::new(1), 1_250_000).unwrap();
        // A new process whose clock started recently: the same wall-clock
        // instants are 1_200_000 ms earlier on its clock.
        let shift = 1_200_000i64;
        let mut b = Windows::new(&[Duration::from_secs(300), Duration::from_secs(3_600)]);
        for (w, e) in ex.iter().enumerate() {
            let moved = RingExport {
                newest_start_ms: e.newest_start_ms - shift,
                ..e.clone()
            };
            b.import(CustomerId::new(1), w, &moved, 50_000);
        }
        assert_eq!(b.count(CustomerId::new(1), 0, 50_000), 15);
        assert_eq!(b.count(CustomerId::new(1), 1, 50_000), 15);
        // The older 10 (at old 1_000_000 = new -200_000) leave the 5 min
        // window no earlier than 300 s after that.
        assert_eq!(b.count(CustomerId::new(1), 0, 99_999), 15);
        assert_eq!(
            b.count(CustomerId::new(1), 0, 300_000 - 200_000 + 10_000),
            5
        );
        // Far in the future: everything expired on import.
        let mut c = Windows::new(&[Duration::from_secs(300)]);
        c.import(CustomerId::new(1), 0, &ex[0], 10_000_000);
        assert_eq!(c.active(), 0);
    }
}
