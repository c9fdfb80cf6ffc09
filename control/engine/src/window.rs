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

/// Ring slots: the 30 whole buckets plus the one filling.
const SLOTS: usize = BUCKETS + 1;

/// Added to every bucket index so that buckets restored from before the
/// clock's zero (a snapshot taken by an earlier process) still have a
/// non-negative index.
const SHIFT: u64 = SLOTS as u64;

/// One window's ring for one customer.
#[derive(Debug, Clone)]
struct Ring {
    /// Absolute (shifted) index of the newest bucket.
    head: u64,
    /// Sum of all slots: the window's count as of `head`.
    total: u64,
    /// Slot `i % SLOTS` holds bucket `i`, for `head - SLOTS < i <= head`.
    slots: [u64; SLOTS],
}

impl Ring {
    fn new(head: u64) -> Ring {
        Ring {
            head,
            total: 0,
            slots: [0; SLOTS],
        }
    }

    /// Moves the head to bucket `cur`, expiring the buckets that fall out.
    fn advance(&mut self, cur: u64) {
        if cur <= self.head {
            return;
        }
        if cur - self.head >= SLOTS as u64 {
            self.slots = [0; SLOTS];
            self.total = 0;
        } else {
            for i in self.head + 1..=cur {
                let slot = &mut self.slots[(i % SLOTS as u64) as usize];
                self.total -= *slot;
                *slot = 0;
            }
        }
        self.head = cur;
    }

    /// The count as it will be at bucket `cur`, without mutating.
    fn count_at(&self, cur: u64) -> u64 {
        if cur <= self.head {
            return self.total;
        }
        if cur - self.head >= SLOTS as u64 {
            return 0;
        }
        let expired: u64 = (self.head + 1..=cur)
            .map(|i| self.slots[(i % SLOTS as u64) as usize])
            .sum();
        self.total - expired
    }

    /// The value of bucket `i` as seen at bucket `cur` (0 if expired or empty).
    fn bucket_at(&self, i: u64, cur: u64) -> u64 {
        let newest = self.head.min(cur);
        if i > newest || i + SLOTS as u64 <= cur.max(self.head) {
            return 0;
        }
        self.slots[(i % SLOTS as u64) as usize]
    }
}

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

/// Trailing-window counters for every customer (sparse).
#[derive(Debug, Clone)]
pub struct Windows {
    lengths: Vec<Duration>,
    bucket_ms: Vec<u64>,
    /// Bucket index of each window at the last [`Windows::advance`]: lets
    /// `advance` return at once when no bucket boundary was crossed.
    last_cur: Vec<u64>,
    active: IdMap<Box<[Ring]>>,
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
        Windows {
            lengths: lengths.to_vec(),
            last_cur: vec![0; lengths.len()],
            bucket_ms,
            active: IdMap::default(),
        }
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

    /// Counts `n` SYNs for `customer` at time `now` in every window.
    pub fn add(&mut self, customer: CustomerId, n: u64, now: u64) {
        if n == 0 {
            return;
        }
        let curs: [u64; MAX_WINDOWS] =
            std::array::from_fn(|w| if w < self.len() { self.cur(w, now) } else { 0 });
        let windows = self.len();
        let rings = self
            .active
            .entry(customer)
            .or_insert_with(|| (0..windows).map(|w| Ring::new(curs[w])).collect());
        for (ring, &cur) in rings.iter_mut().zip(&curs) {
            ring.advance(cur);
            // A time before the head (clock skew across a restore) lands
            // in the newest bucket: counted, and expiring no earlier.
            ring.slots[(ring.head % SLOTS as u64) as usize] += n;
            ring.total += n;
        }
    }

    /// [`Windows::add`] then [`Windows::counts`] in one lookup; also says
    /// whether the customer had no state before (all windows had drained).
    pub fn add_and_count(
        &mut self,
        customer: CustomerId,
        n: u64,
        now: u64,
    ) -> ([u64; MAX_WINDOWS], bool) {
        let mut out = [0; MAX_WINDOWS];
        let curs: [u64; MAX_WINDOWS] =
            std::array::from_fn(|w| if w < self.len() { self.cur(w, now) } else { 0 });
        if n == 0 {
            return match self.active.get(&customer) {
                Some(rings) => {
                    for (w, ring) in rings.iter().enumerate() {
                        out[w] = ring.count_at(curs[w]);
                    }
                    (out, false)
                }
                None => (out, true),
            };
        }
        let windows = self.len();
        let mut fresh = false;
        let rings = self.active.entry(customer).or_insert_with(|| {
            fresh = true;
            (0..windows).map(|w| Ring::new(curs[w])).collect()
        });
        for (w, ring) in rings.iter_mut().enumerate() {
            ring.advance(curs[w]);
            ring.slots[(ring.head % SLOTS as u64) as usize] += n;
            ring.total += n;
            out[w] = ring.total;
        }
        (out, fresh)
    }

    /// `customer`'s count in window `w` at `now` (0 if idle).
    pub fn count(&self, customer: CustomerId, w: usize, now: u64) -> u64 {
        match self.active.get(&customer) {
            Some(rings) => rings[w].count_at(self.cur(w, now)),
            None => 0,
        }
    }

    /// `customer`'s count in every window at `now`, indexed like the
    /// lengths given to [`Windows::new`]; unused entries are 0.
    pub fn counts(&self, customer: CustomerId, now: u64) -> [u64; MAX_WINDOWS] {
        let mut out = [0; MAX_WINDOWS];
        if let Some(rings) = self.active.get(&customer) {
            for (w, ring) in rings.iter().enumerate() {
                out[w] = ring.count_at(self.cur(w, now));
            }
        }
        out
    }

    /// Expires buckets up to `now` and frees customers whose windows are all
    /// empty. Touches only active customers, and only when some window
    /// crossed a bucket boundary since the last call. Returns how many
    /// customers were freed.
    pub fn advance(&mut self, now: u64) -> usize {
        let curs: Vec<u64> = (0..self.len()).map(|w| self.cur(w, now)).collect();
        if curs == self.last_cur {
            return 0;
        }
        self.last_cur.clone_from(&curs);
        let before = self.active.len();
        self.active.retain(|_, rings| {
            let mut any = false;
            for (ring, &cur) in rings.iter_mut().zip(&curs) {
                ring.advance(cur);
                any |= ring.total > 0;
            }
            any
        });
        before - self.active.len()
    }

    /// Customers with state (a non-zero count in some window, as of the last
    /// advance).
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Whether `customer` has state.
    pub fn is_active(&self, customer: CustomerId) -> bool {
        self.active.contains_key(&customer)
    }

    /// The customers with state, in no particular order.
    pub fn customers(&self) -> impl Iterator<Item = CustomerId> + '_ {
        self.active.keys().copied()
    }

    /// Drops `customer`'s state.
    pub fn remove(&mut self, customer: CustomerId) {
        self.active.remove(&customer);
    }

    /// `customer`'s buckets as of `now`, one entry per window, in the
    /// caller's clock; `None` if idle.
    pub fn export(&self, customer: CustomerId, now: u64) -> Option<Vec<RingExport>> {
        let rings = self.active.get(&customer)?;
        Some(
            rings
                .iter()
                .enumerate()
                .map(|(w, ring)| {
                    let cur = self.cur(w, now).max(ring.head);
                    let mut buckets: Vec<u64> = (0..SLOTS as u64)
                        .map(|j| ring.bucket_at(cur - j, cur))
                        .collect();
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
        let cur = self.cur(w, now);
        let b = self.bucket_ms[w] as i64;
        let windows = self.len();
        let curs: Vec<u64> = (0..windows).map(|i| self.cur(i, now)).collect();
        for (j, &n) in export.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let end = export
                .newest_start_ms
                .saturating_add(export.bucket_ms as i64 * (1 - j as i64))
                - 1;
            let index = end.div_euclid(b) + SHIFT as i64;
            let index = (index.max(0) as u64).min(cur);
            if index + (SLOTS as u64) <= cur {
                continue; // expired while we were away
            }
            let rings = self
                .active
                .entry(customer)
                .or_insert_with(|| curs.iter().map(|&c| Ring::new(c)).collect());
            let ring = &mut rings[w];
            ring.advance(cur);
            ring.slots[(index % SLOTS as u64) as usize] += n;
            ring.total += n;
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
