//! Medians and ratios as the bench tables show them.

/// The median of the finite values, or `None` if there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The median of the values that are there.
pub fn median_of(values: &[Option<f64>]) -> Option<f64> {
    median(&values.iter().flatten().copied().collect::<Vec<_>>())
}

/// `a / b` when both are there and `b > 0`.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
        _ => None,
    }
}

/// The ratio of `a` to `b` taken round by round (the runs of one round
/// share the machine's load of the moment), then the median.
pub fn round_ratios(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    median_of(&per_round_ratios(a, b))
}

/// The ratio of `a` to `b` in each round (`None` where a round lacks one).
pub fn per_round_ratios(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<Option<f64>> {
    a.iter()
        .enumerate()
        .map(|(i, &x)| ratio(x, b.get(i).copied().flatten()))
        .collect()
}

/// The lowest and the highest of `values`, if two or more are there.
pub fn spread(values: &[Option<f64>]) -> Option<(f64, f64)> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.len() < 2 {
        return None;
    }
    let lo = present.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo, hi))
}

/// Two decimals, or `nan` where there is no value (the tables' cell).
pub fn fmt2(v: Option<f64>) -> String {
    v.map_or_else(|| "nan".to_owned(), |x| format!("{x:.2}"))
}

/// Two decimals, or `-` where there is no value.
pub fn fmt2_dash(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
}

/// `100,000`: a count with its thousands apart.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(
            median_of(&[None, Some(7.0), Some(1.0), Some(4.0)]),
            Some(4.0)
        );
    }

    #[test]
    fn spread_is_the_lowest_and_highest_present() {
        let a = [Some(10.0), Some(30.0), Some(8.0), None];
        let b = [Some(20.0), Some(20.0), None, Some(5.0)];
        assert_eq!(
            per_round_ratios(&a, &b),
            vec![Some(0.5), Some(1.5), None, None]
        );
        assert_eq!(spread(&per_round_ratios(&a, &b)), Some((0.5, 1.5)));
        // One value (or none) has no spread.
        assert_eq!(spread(&[None, Some(2.0)]), None);
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn ratios_per_round_then_median() {
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        // rounds: 10/20, 30/20, 8/- -> median of 0.5 and 1.5
        let a = [Some(10.0), Some(30.0), Some(8.0)];
        let b = [Some(20.0), Some(20.0), None];
        assert_eq!(round_ratios(&a, &b), Some(1.0));
        assert_eq!(fmt2(Some(1.0 / 3.0)), "0.33");
        assert_eq!(fmt2(None), "nan");
        assert_eq!(fmt2_dash(None), "-");
        assert_eq!(thousands(100000), "100,000");
        assert_eq!(thousands(8192), "8,192");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
    }
}
