//! [`RunResult`]: what a finished run left (outputs per port, the
//! `--summary-json` counters, events), and the assertions over it.

use crate::{read_events, Exit, TestDir, Value};

/// What one run produced.
pub struct RunResult {
    pub exit: Exit,
    /// The `--summary-json` document (Null if the run failed).
    pub summary: Value,
    /// Frames sent by the outside port, per tx queue (= per worker).
    pub out: Vec<Vec<Vec<u8>>>,
    /// Frames sent by the inside port, per tx queue (= per worker).
    pub back: Vec<Vec<Vec<u8>>>,
    /// Kept alive until the result is dropped (removed then if no panic).
    pub dir: TestDir,
}

impl RunResult {
    /// The event log (`events.jsonl`) after the run: every line, this run's
    /// and earlier runs' in the same directory.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.dir.join("events.jsonl"))
    }

    /// The events of `kind` (`"block"`, `"reload"`, ...) about `customer`
    /// (`None`: events naming no customer).
    pub fn events_of(&self, kind: &str, customer: Option<&str>) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["kind"] == kind && e["customer"].as_str() == customer)
            .collect()
    }

    /// `customers[].windows.<window>` of the named customer.
    pub fn window_count(&self, customer: &str, window: &str) -> u64 {
        self.summary["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .find(|c| c["name"] == customer)
            .unwrap_or_else(|| {
                panic!(
                    "customer {customer} not in the summary:\n{:#}",
                    self.summary
                )
            })["windows"][window]
            .as_u64()
            .unwrap_or_else(|| {
                panic!(
                    "customer {customer} has no window {window}:\n{:#}",
                    self.summary
                )
            })
    }

    /// Everything the outside port sent, queue 0 first.
    pub fn out_frames(&self) -> Vec<Vec<u8>> {
        self.out.concat()
    }

    /// Everything the inside port sent, queue 0 first.
    pub fn back_frames(&self) -> Vec<Vec<u8>> {
        self.back.concat()
    }

    /// A summary counter by JSON pointer, e.g. `/verdicts/rx`.
    pub fn counter(&self, pointer: &str) -> u64 {
        self.summary
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("summary has no counter {pointer}:\n{:#}", self.summary))
    }

    /// `verdicts.<name>`.
    pub fn verdict(&self, name: &str) -> u64 {
        self.counter(&format!("/verdicts/{name}"))
    }

    /// All of `outcomes` as (name, count), for exact comparison.
    pub fn outcomes(&self) -> Vec<(String, u64)> {
        let map = self
            .summary
            .get("outcomes")
            .and_then(Value::as_object)
            .expect("summary.outcomes");
        map.iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("outcome count")))
            .collect()
    }

    /// Asserts every outcome counter: those named in `nonzero` have the
    /// given value, all others are zero.
    pub fn assert_outcomes(&self, nonzero: &[(&str, u64)]) {
        let got = self.outcomes();
        for (name, _) in nonzero {
            assert!(
                got.iter().any(|(k, _)| k == name),
                "summary has no outcome {name:?}: {got:?}"
            );
        }
        let want: Vec<(String, u64)> = got
            .iter()
            .map(|(k, _)| {
                let n = nonzero
                    .iter()
                    .find(|(name, _)| name == k)
                    .map_or(0, |&(_, n)| n);
                (k.clone(), n)
            })
            .collect();
        assert_eq!(got, want, "outcome counters");
    }

    /// Asserts the verdict counters exactly (all eight of them).
    pub fn assert_verdicts(&self, want: &Verdicts) {
        let got = verdicts_of(&self.summary["verdicts"]);
        assert_eq!(&got, want, "verdict counters\n{:#}", self.summary);
    }

    /// The invariants every run must keep: verdicts add up to rx, outcomes
    /// add up to the inspected frames, workers add up to the total, and the
    /// ports agree with the verdicts.
    pub fn assert_consistent(&self) {
        let v = verdicts_of(&self.summary["verdicts"]);
        assert_eq!(
            v.forwarded
                + v.dropped_blocked
                + v.dropped_malformed
                + v.reset_sent
                + v.reverse_forwarded,
            v.rx,
            "verdicts do not add up to rx: {v:?}"
        );
        let outcomes: u64 = self.outcomes().iter().map(|(_, n)| n).sum();
        assert_eq!(
            outcomes,
            v.rx - v.reverse_forwarded,
            "outcomes do not add up to the inspected frames"
        );
        let workers = self.summary["workers"].as_array().expect("workers");
        let mut sum = Verdicts::default();
        for w in workers {
            sum.add(&verdicts_of(&w["verdicts"]));
        }
        assert_eq!(sum, v, "workers' verdicts do not add up to the total");
        let syn: u64 = workers
            .iter()
            .map(|w| w["syn_watched"].as_u64().expect("syn_watched"))
            .sum();
        assert_eq!(syn, self.counter("/outcomes/syn_watched"));
        for c in self.all_customers() {
            assert_eq!(c.seen, c.forwarded + c.dropped, "customer {c:?}");
            let state = self.customer_state(&c.name);
            assert!(
                c.seen > 0 || state.as_deref().is_some_and(|s| s != "open"),
                "customer without SYNs listed while open: {c:?} {state:?}"
            );
        }
        // Every watched SYN of this run is either some customer's or
        // nobody's (customer counts are this run's, not carried over).
        // (Customers a reload removed are booked apart.)
        let removed_seen = self.counter("/removed_customers/syn_seen");
        let seen: u64 = self.all_customers().iter().map(|c| c.seen).sum::<u64>() + removed_seen;
        assert_eq!(
            removed_seen,
            self.counter("/removed_customers/syn_forwarded")
                + self.counter("/removed_customers/syn_dropped"),
            "removed customers: seen != forwarded + dropped"
        );
        assert_eq!(
            seen + v.syn_no_customer,
            self.counter("/outcomes/syn_watched"),
            "customers' syn_seen + syn_no_customer vs outcomes.syn_watched"
        );
        let inside = self.port("inside");
        let outside = self.port("outside");
        assert_eq!(
            inside.rx + outside.rx,
            v.rx,
            "ports' rx and verdicts.rx differ"
        );
        assert_eq!(outside.rx, v.reverse_forwarded);
        assert_eq!(outside.tx, v.forwarded, "outside tx vs forwarded");
        assert_eq!(
            inside.tx,
            v.reverse_forwarded + v.reset_sent,
            "inside tx vs reverse + resets"
        );
        assert_eq!(v.tx_full, 0, "tx rings overflowed");
        let size = self.counter("/mempool/size");
        let in_use = self.counter("/mempool/in_use");
        assert!(in_use <= size, "mempool in_use {in_use} > size {size}");
        assert_eq!(
            in_use,
            self.counter("/mempool/in_use_at_start"),
            "mbufs leaked: mempool in_use at the end vs at the start"
        );
    }

    /// The customers that sent SYNs, in summary order (the summary may also
    /// list customers that sent none, e.g. blocked ones: see
    /// [`Self::all_customers`]).
    pub fn customers(&self) -> Vec<CustomerCount> {
        self.all_customers()
            .into_iter()
            .filter(|c| c.seen > 0)
            .collect()
    }

    /// Asserts [`Self::customers`] exactly: `(name, seen, forwarded,
    /// dropped)` of each customer that sent SYNs, in summary order.
    pub fn assert_customers(&self, want: &[(&str, u64, u64, u64)]) {
        let want: Vec<CustomerCount> = want
            .iter()
            .map(|&(name, seen, forwarded, dropped)| {
                CustomerCount::new(name, seen, forwarded, dropped)
            })
            .collect();
        assert_eq!(self.customers(), want);
    }

    /// `customers[].state` of the named customer, if listed with a state.
    pub fn customer_state(&self, name: &str) -> Option<String> {
        self.summary["customers"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)?
            .get("state")?
            .as_str()
            .map(str::to_owned)
    }

    /// Every customer listed in the summary, in order.
    pub fn all_customers(&self) -> Vec<CustomerCount> {
        self.summary["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .map(|c| CustomerCount {
                name: c["name"].as_str().expect("name").to_owned(),
                seen: c["syn_seen"].as_u64().expect("syn_seen"),
                forwarded: c["syn_forwarded"].as_u64().expect("syn_forwarded"),
                dropped: c["syn_dropped"].as_u64().expect("syn_dropped"),
            })
            .collect()
    }

    /// The port on `side` ("inside" / "outside") of the only link.
    pub fn port(&self, side: &str) -> PortCount {
        let ports = self.summary["ports"].as_array().expect("ports");
        let p = ports
            .iter()
            .find(|p| p["side"] == side)
            .unwrap_or_else(|| panic!("no {side} port in {ports:?}"));
        PortCount {
            name: p["name"].as_str().expect("name").to_owned(),
            rx: p["rx_packets"].as_u64().expect("rx_packets"),
            tx: p["tx_packets"].as_u64().expect("tx_packets"),
            rx_nombuf: p["rx_nombuf"].as_u64().expect("rx_nombuf"),
        }
    }
}

/// A port's packet counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCount {
    pub name: String,
    pub rx: u64,
    pub tx: u64,
    /// Frames the port could not receive for want of an mbuf.
    pub rx_nombuf: u64,
}

/// One entry of `customers[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCount {
    pub name: String,
    pub seen: u64,
    pub forwarded: u64,
    pub dropped: u64,
}

impl CustomerCount {
    pub fn new(name: &str, seen: u64, forwarded: u64, dropped: u64) -> Self {
        CustomerCount {
            name: name.to_owned(),
            seen,
            forwarded,
            dropped,
        }
    }
}

/// The summary's `verdicts` object: the appliance's own counter set.
pub use synwall_dataplane::shard::VerdictTotals as Verdicts;

/// Reads a summary's `verdicts` object (panics, naming it, if a counter
/// is missing or unknown).
pub fn verdicts_of(v: &Value) -> Verdicts {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("verdicts {v}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn outcome_and_verdict_checks_are_exact() {
        let dir = TestDir::new("helpers");
        let summary: Value = serde_json::json!({
            "outcomes": {"non_ip": 1, "other_ip": 0, "syn_watched": 2},
            "verdicts": {"rx": 4, "forwarded": 2, "dropped_blocked": 1, "dropped_malformed": 0,
                         "reset_sent": 0, "reverse_forwarded": 1, "tx_full": 0, "syn_no_customer": 0},
        });
        let run = RunResult {
            exit: Exit {
                status: Command::new("true").status().unwrap(),
                stdout: String::new(),
                stderr: String::new(),
            },
            summary,
            out: Vec::new(),
            back: Vec::new(),
            dir,
        };
        run.assert_outcomes(&[("non_ip", 1), ("syn_watched", 2)]);
        let wrong = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.assert_outcomes(&[("syn_watched", 2)])
        }));
        assert!(wrong.is_err(), "a missed non-zero outcome must fail");
        let unknown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.assert_outcomes(&[("non_ip", 1), ("syn_watched", 2), ("nope", 0)])
        }));
        assert!(unknown.is_err(), "an unknown outcome name must fail");
        run.assert_verdicts(&Verdicts {
            rx: 4,
            forwarded: 2,
            dropped_blocked: 1,
            reverse_forwarded: 1,
            ..Verdicts::default()
        });
        let wrong = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.assert_verdicts(&Verdicts {
                rx: 4,
                forwarded: 3,
                reverse_forwarded: 1,
                ..Verdicts::default()
            })
        }));
        assert!(wrong.is_err());
    }
}
