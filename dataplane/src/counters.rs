//! The verdict counters, listed once ([`verdict_counters!`]): each name
//! becomes a field of the worker's atomic [`VerdictCounters`], a field of
//! the plain [`VerdictTotals`] (serde, in the list's order: the summary
//! JSON's `verdicts` objects), an entry of [`VerdictTotals::named`] at the
//! position after its `@` (the order /metrics and the telemetry command
//! list them in) and a term of [`VerdictTotals::add`]. Adding a counter is
//! one line here, plus the worker's update.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Generates the counter types from one list of documented names.
macro_rules! verdict_counters {
    ($( $(#[$doc:meta])* $name:ident @ $report:literal, )*) => {
        /// What the worker did with frames, one counter per verdict. Each
        /// frame received lands in exactly one of `forwarded`,
        /// `dropped_blocked`, `dropped_malformed`, `reset_sent`,
        /// `reverse_forwarded`: they add up to `rx`.
        #[derive(Debug, Default)]
        #[repr(align(64))]
        pub struct VerdictCounters {
            $( $(#[$doc])* pub $name: AtomicU64, )*
            /// Poll rounds, and poll rounds that received something (load).
            pub polls: AtomicU64,
            pub busy_polls: AtomicU64,
        }

        /// A plain copy of verdict counters (one worker's, or summed over
        /// all): what the summary JSON, the status reply, the metrics and
        /// the telemetry command all report.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct VerdictTotals {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl VerdictTotals {
            /// How many counters there are.
            pub const COUNT: usize = [$(stringify!($name)),*].len();

            /// Every counter with its name, each at its `@` position.
            pub fn named(&self) -> [(&'static str, u64); Self::COUNT] {
                let mut named = [("", 0); Self::COUNT];
                $( named[$report] = (stringify!($name), self.$name); )*
                named
            }

            /// Adds `other`'s counts to these.
            pub fn add(&mut self, other: &VerdictTotals) {
                $( self.$name += other.$name; )*
            }
        }

        impl VerdictCounters {
            /// The counters now.
            pub fn read(&self) -> VerdictTotals {
                VerdictTotals {
                    $( $name: self.$name.load(Relaxed), )*
                }
            }
        }
    };
}

verdict_counters! {
    /// Frames received (both directions).
    rx @ 0,
    /// Inside→outside frames forwarded.
    forwarded @ 1,
    /// Frames dropped because their customer is blocked or out of grant.
    dropped_blocked @ 3,
    /// Malformed frames dropped by policy.
    dropped_malformed @ 4,
    /// Blocked SYNs answered with a TCP RST towards the customer.
    reset_sent @ 5,
    /// Outside→inside frames forwarded without inspection.
    reverse_forwarded @ 2,
    /// Frames a tx queue did not take (ring full), freed: a subset of the
    /// forwarded/reset counts above.
    tx_full @ 6,
    /// Watched SYNs from an address no customer owns (forwarded).
    syn_no_customer @ 7,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_read_added_and_named_at_its_report_position() {
        let c = VerdictCounters::default();
        let fields: Vec<&AtomicU64> = vec![
            &c.rx,
            &c.forwarded,
            &c.dropped_blocked,
            &c.dropped_malformed,
            &c.reset_sent,
            &c.reverse_forwarded,
            &c.tx_full,
            &c.syn_no_customer,
        ];
        assert_eq!(fields.len(), VerdictTotals::COUNT);
        for (i, f) in fields.iter().enumerate() {
            f.store(1 + i as u64, Relaxed);
        }
        let mut t = c.read();
        t.add(&c.read());
        // Every counter once, at its report position, with twice its count.
        let named = t.named();
        let names: Vec<&str> = named.iter().map(|&(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "rx",
                "forwarded",
                "reverse_forwarded",
                "dropped_blocked",
                "dropped_malformed",
                "reset_sent",
                "tx_full",
                "syn_no_customer"
            ]
        );
        let fields_in_report_order = [0, 1, 5, 2, 3, 4, 6, 7];
        for ((name, n), f) in named.into_iter().zip(fields_in_report_order) {
            assert_eq!(n, 2 * (1 + f as u64), "{name}");
        }
    }
}
