//! RFC 2544 throughput search: the highest offered rate with no loss (NDR)
//! and the highest with loss at most a given ratio (PDR), by binary search
//! over trials. A trial in which the generator could not offer the asked
//! rate is invalid: it is retried once and otherwise not counted; the search
//! then treats the rate as out of reach (the result is generator-bound, and
//! says so).
use serde::Serialize;

/// One trial as the search sees it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Trial {
    /// The rate asked for, frames/s.
    pub rate: f64,
    pub offered: u64,
    pub received: u64,
    /// The generator offered what was asked.
    pub valid: bool,
}

impl Trial {
    pub fn loss_ratio(&self) -> f64 {
        if self.offered == 0 {
            return 0.0;
        }
        self.offered.saturating_sub(self.received) as f64 / self.offered as f64
    }
}

/// What the search runs trials on.
pub trait Device {
    fn trial(&mut self, rate: f64) -> Result<Trial, String>;
}

/// Search bounds and stop rule.
#[derive(Debug, Clone, Serialize)]
pub struct SearchSpec {
    /// Highest rate tried (e.g. the calibrated generator maximum).
    pub max_rate: f64,
    /// Lowest rate worth reporting.
    pub min_rate: f64,
    /// Stop when the bracket is narrower than this share of its top.
    pub precision: f64,
    /// Loss ratio a PDR trial may have.
    pub pdr_loss: f64,
    pub max_trials: usize,
}

/// One search's result.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// Highest passing rate (None: even `min_rate` lost frames).
    pub rate: Option<f64>,
    /// Loss ratio allowed.
    pub loss_allowed: f64,
    /// The top of the search was set by the generator, not the device.
    pub generator_bound: bool,
    pub trials: Vec<(Trial, &'static str)>,
}

/// Binary search for the highest rate whose loss ratio is `<= loss`.
pub fn search(dev: &mut dyn Device, spec: &SearchSpec, loss: f64) -> Result<Found, String> {
    let mut trials = Vec::new();
    let mut run =
        |rate: f64, trials: &mut Vec<(Trial, &'static str)>| -> Result<Option<bool>, String> {
            for _ in 0..2 {
                let t = dev.trial(rate)?;
                if !t.valid {
                    trials.push((t, "invalid"));
                    continue;
                }
                let pass = t.loss_ratio() <= loss;
                trials.push((t, if pass { "pass" } else { "fail" }));
                return Ok(Some(pass));
            }
            Ok(None)
        };
    let mut generator_bound = false;
    let mut lo: Option<f64> = None;
    let mut hi = spec.max_rate;
    match run(hi, &mut trials)? {
        Some(true) => {
            return Ok(Found {
                rate: Some(hi),
                loss_allowed: loss,
                generator_bound: true,
                trials,
            })
        }
        Some(false) => {}
        None => generator_bound = true,
    }
    while trials.len() < spec.max_trials {
        let bottom = lo.unwrap_or(spec.min_rate);
        if hi - bottom <= spec.precision * hi {
            break;
        }
        let mid = (bottom + hi) / 2.0;
        match run(mid, &mut trials)? {
            Some(true) => lo = Some(mid),
            Some(false) => hi = mid,
            None => {
                generator_bound = true;
                hi = mid;
            }
        }
    }
    if lo.is_none()
        && trials.len() < spec.max_trials
        && run(spec.min_rate, &mut trials)? == Some(true)
    {
        lo = Some(spec.min_rate);
    }
    Ok(Found {
        rate: lo,
        loss_allowed: loss,
        generator_bound,
        trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that forwards up to `capacity` frames/s and loses the rest,
    /// driven by a generator that can offer up to `gen_max`.
    struct Simulated {
        capacity: f64,
        gen_max: f64,
        trials: usize,
    }

    impl Device for Simulated {
        fn trial(&mut self, rate: f64) -> Result<Trial, String> {
            self.trials += 1;
            let offered_rate = rate.min(self.gen_max);
            let offered = offered_rate as u64;
            let received = offered_rate.min(self.capacity) as u64;
            Ok(Trial {
                rate,
                offered,
                received,
                valid: offered_rate >= rate * 0.995,
            })
        }
    }

    fn spec(max: f64) -> SearchSpec {
        SearchSpec {
            max_rate: max,
            min_rate: 1000.0,
            precision: 0.01,
            pdr_loss: 0.1,
            max_trials: 40,
        }
    }

    #[test]
    fn finds_the_capacity_within_precision() {
        let mut d = Simulated {
            capacity: 3_300_000.0,
            gen_max: 1e9,
            trials: 0,
        };
        let f = search(&mut d, &spec(10_000_000.0), 0.0).unwrap();
        let r = f.rate.unwrap();
        assert!((3_300_000.0 * 0.98..=3_300_000.0).contains(&r), "{r}");
        assert!(!f.generator_bound);
        assert!(d.trials < 20, "{}", d.trials);
        // PDR at 10 % loss: up to capacity / 0.9.
        let f = search(&mut d, &spec(10_000_000.0), 0.1).unwrap();
        let r = f.rate.unwrap();
        let want = 3_300_000.0 / 0.9;
        assert!((want * 0.98..=want).contains(&r), "{r} vs {want}");
    }

    #[test]
    fn a_device_faster_than_the_top_passes_at_once() {
        let mut d = Simulated {
            capacity: 1e9,
            gen_max: 1e9,
            trials: 0,
        };
        let f = search(&mut d, &spec(5e6), 0.0).unwrap();
        assert_eq!(f.rate, Some(5e6));
        assert_eq!(d.trials, 1);
    }

    #[test]
    fn invalid_trials_are_not_counted_and_mark_the_result() {
        // The generator tops out at 2 Mpps, the device would do 3.
        let mut d = Simulated {
            capacity: 3e6,
            gen_max: 2e6,
            trials: 0,
        };
        let f = search(&mut d, &spec(8e6), 0.0).unwrap();
        assert!(f.generator_bound);
        let r = f.rate.unwrap();
        assert!((1.95e6..=2e6 / 0.995).contains(&r), "{r}");
        assert!(f.trials.iter().any(|t| t.1 == "invalid"));
        assert!(f
            .trials
            .iter()
            .filter(|t| t.1 == "invalid")
            .all(|t| !t.0.valid));
    }

    #[test]
    fn a_device_that_always_loses_has_no_ndr() {
        struct Lossy;
        impl Device for Lossy {
            fn trial(&mut self, rate: f64) -> Result<Trial, String> {
                Ok(Trial {
                    rate,
                    offered: 1000,
                    received: 999,
                    valid: true,
                })
            }
        }
        let f = search(&mut Lossy, &spec(1e6), 0.0).unwrap();
        assert_eq!(f.rate, None);
        assert!(f.trials.len() <= 40);
    }
}
