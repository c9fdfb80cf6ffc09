//! A customer's counts over time, and what operators ask of them.
use serde::Serialize;

/// One bucket of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Unix minute the bucket starts.
    pub start: i64,
    /// Its length in minutes (1, or 60 for an hourly bucket).
    pub minutes: u32,
    /// Watched SYNs seen.
    pub seen: u64,
    /// Of those, forwarded.
    pub forwarded: u64,
}

impl Bucket {
    /// A bucket.
    pub fn new(start: i64, minutes: u32, seen: u64, forwarded: u64) -> Bucket {
        Bucket {
            start,
            minutes,
            seen,
            forwarded,
        }
    }
}

/// A customer's non-empty buckets, oldest first (hourly ones before the
/// minute ones: the store keeps minutes for the recent past only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    /// The buckets.
    pub buckets: Vec<Bucket>,
}

/// One step of [`Series::steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Unix minute the step starts.
    pub start: i64,
    /// SYNs seen in it.
    pub seen: u64,
    /// Of those, forwarded.
    pub forwarded: u64,
    /// The most SYNs seen in any trailing `window` ending within the step
    /// (see [`Series::steps`]).
    pub peak: u64,
}

impl Series {
    /// Total SYNs seen.
    pub fn seen(&self) -> u64 {
        self.buckets.iter().map(|b| b.seen).sum()
    }

    /// Whether any bucket is coarser than a minute.
    pub fn has_hourly(&self) -> bool {
        self.buckets.iter().any(|b| b.minutes > 1)
    }

    /// The series cut into steps of `step` minutes from `from` to `to`
    /// (Unix minutes; the last step may be short). A bucket counts in the
    /// step where it starts. `peak` is the most SYNs seen in a trailing
    /// window of `window` minutes ending in the step (0 when `window` is
    /// 0).
    pub fn steps(&self, from: i64, to: i64, step: i64, window: i64) -> Vec<Step> {
        let step = step.max(1);
        let n = (to - from).max(0).div_euclid(step) + i64::from((to - from).rem_euclid(step) > 0);
        let mut out: Vec<Step> = (0..n)
            .map(|i| Step {
                start: from + i * step,
                seen: 0,
                forwarded: 0,
                peak: 0,
            })
            .collect();
        for b in &self.buckets {
            if b.start < from || b.start >= to {
                continue;
            }
            let s = &mut out[((b.start - from) / step) as usize];
            s.seen += b.seen;
            s.forwarded += b.forwarded;
        }
        if window > 0 {
            for (end, total) in self.trailing(window) {
                if end >= from && end < to {
                    let s = &mut out[((end - from) / step) as usize];
                    s.peak = s.peak.max(total);
                }
            }
        }
        out
    }

    /// The count in the trailing `window` minutes ending at each bucket:
    /// `(bucket start, SYNs seen in [start - window + 1, start])`, a
    /// bucket counted whole at its start. With 1-minute buckets this is
    /// the exact per-minute trailing count; an hourly bucket makes it an
    /// estimate (its SYNs are taken as all sent in its first minute, which
    /// never misses a peak but may show one higher than it was).
    pub fn trailing(&self, window: i64) -> Vec<(i64, u64)> {
        let mut out = Vec::with_capacity(self.buckets.len());
        let mut tail = 0;
        let mut total = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.seen;
            while self.buckets[tail].start <= b.start - window {
                total -= self.buckets[tail].seen;
                tail += 1;
            }
            debug_assert!(tail <= i);
            out.push((b.start, total));
        }
        out
    }

    /// The most SYNs in any trailing `window` minutes (see
    /// [`Series::trailing`]).
    pub fn peak(&self, window: i64) -> u64 {
        self.trailing(window)
            .into_iter()
            .map(|(_, n)| n)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(v: &[(i64, u64)]) -> Series {
        Series {
            buckets: v.iter().map(|&(t, n)| Bucket::new(t, 1, n, n)).collect(),
        }
    }

    #[test]
    fn trailing_counts_are_exact_per_minute() {
        let s = minutes(&[(0, 5), (1, 1), (4, 10), (5, 2), (10, 7)]);
        // 5-minute window: [t-4, t].
        assert_eq!(
            s.trailing(5),
            vec![(0, 5), (1, 6), (4, 16), (5, 13), (10, 7)]
        );
        assert_eq!(s.peak(5), 16);
        assert_eq!(s.peak(1), 10);
        assert_eq!(s.peak(60), 25);
        assert_eq!(Series::default().peak(5), 0);
    }

    #[test]
    fn steps_sum_and_carry_the_peak() {
        let s = minutes(&[(0, 5), (1, 1), (4, 10), (5, 2), (10, 7)]);
        let steps = s.steps(0, 12, 5, 5);
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps
                .iter()
                .map(|x| (x.start, x.seen, x.peak))
                .collect::<Vec<_>>(),
            vec![(0, 16, 16), (5, 2, 13), (10, 7, 7)]
        );
        // Buckets outside the range are left out; an empty range is empty.
        assert_eq!(s.steps(1, 5, 60, 0)[0].seen, 11);
        assert!(s.steps(5, 5, 1, 0).is_empty());
    }

    #[test]
    fn hourly_buckets_make_an_estimate_that_never_misses_a_peak() {
        let s = Series {
            buckets: vec![Bucket::new(0, 60, 100, 100), Bucket::new(60, 1, 3, 3)],
        };
        assert!(s.has_hourly());
        assert_eq!(s.peak(5), 100);
        assert_eq!(s.peak(61), 103);
    }
}
