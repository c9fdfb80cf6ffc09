//! The distribution of customers' peaks in a window, and the limit
//! `synwallctl suggest` proposes from it.
use serde::Serialize;

/// Percentiles of customers' peaks in one window (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Distribution {
    /// Customers counted (those with any SYN in the span).
    pub customers: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// The nearest-rank `p`-th percentile of `sorted` (ascending, non-empty).
fn rank(sorted: &[u64], p: f64) -> u64 {
    let n = sorted.len();
    let r = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[r.clamp(1, n) - 1]
}

/// The distribution of `peaks` (any order).
pub fn distribution(peaks: &[u64]) -> Distribution {
    if peaks.is_empty() {
        return Distribution::default();
    }
    let mut sorted = peaks.to_vec();
    sorted.sort_unstable();
    Distribution {
        customers: sorted.len(),
        p50: rank(&sorted, 50.0),
        p90: rank(&sorted, 90.0),
        p99: rank(&sorted, 99.0),
        max: sorted[sorted.len() - 1],
    }
}

/// The suggested limit: the 99th percentile of peaks times `headroom`,
/// rounded up, at least 1. A customer is caught by it when its peak
/// exceeds it (the limit itself is allowed).
pub fn suggest(d: &Distribution, headroom: f64) -> u64 {
    ((d.p99 as f64 * headroom).ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let peaks: Vec<u64> = (1..=100).rev().collect();
        let d = distribution(&peaks);
        assert_eq!((d.p50, d.p90, d.p99, d.max), (50, 90, 99, 100));
        assert_eq!(d.customers, 100);
        let one = distribution(&[7]);
        assert_eq!((one.p50, one.p99, one.max), (7, 7, 7));
        assert_eq!(distribution(&[]), Distribution::default());
    }

    #[test]
    fn suggestion_is_p99_times_headroom_and_never_zero() {
        let d = distribution(&(1..=100).collect::<Vec<_>>());
        assert_eq!(suggest(&d, 2.0), 198);
        assert_eq!(suggest(&d, 1.5), 149);
        assert_eq!(suggest(&distribution(&[0, 0]), 2.0), 1);
    }
}
