//! The final counters of a run, written by `--summary-json`.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use synwall_config::Config;
use synwall_dataplane::parse::Outcome;
use synwall_dataplane::shard::{FrameTotals, VerdictTotals, WorkerStats};
use synwall_dpdk::PortStats;

use synwall_engine::plane::ControlPlane;

/// One port, where it sits, and its counters: the summary's `ports`
/// entries, the `/metrics` port series and the heart of `status`'s ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PortSummary {
    /// The DPDK device name (`net_pcap0`): the `port` label.
    pub name: String,
    /// The link it belongs to: the `link` label.
    pub link: String,
    /// `inside` or `outside`: the `side` label.
    pub side: String,
    #[serde(flatten)]
    pub stats: PortStats,
}

/// What each frame's fate was (the summary's `verdicts` objects).
pub type Verdicts = VerdictTotals;

/// One worker's share.
#[derive(Debug, Serialize)]
pub struct WorkerSummary {
    pub lcore: usize,
    pub verdicts: Verdicts,
    pub syn_watched: u64,
    /// Share of poll rounds that received something.
    pub busy_ratio: f64,
}

/// A customer's SYN counts in this run (customers that sent none and are not
/// blocked are left out); `windows` and `state` include restored state.
#[derive(Debug, Serialize)]
pub struct CustomerSummary {
    pub name: String,
    pub syn_seen: u64,
    pub syn_forwarded: u64,
    pub syn_dropped: u64,
    /// "open" or "blocked" at the end of the run.
    pub state: &'static str,
    /// Forwarded SYNs in each trailing window at the end of the run.
    pub windows: BTreeMap<String, u64>,
}

/// Everything `--summary-json` writes.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub version: &'static str,
    pub elapsed_secs: f64,
    pub ports: Vec<PortSummary>,
    /// Frames per parse outcome (every frame inspected has exactly one).
    pub outcomes: BTreeMap<&'static str, u64>,
    pub verdicts: Verdicts,
    pub workers: Vec<WorkerSummary>,
    pub customers: Vec<CustomerSummary>,
    pub mempool: MempoolSummary,
    /// SYNs of customers removed by a reload during the run (they are no
    /// longer in `customers`).
    pub removed_customers: RemovedCustomers,
}

/// This run's SYNs of customers that reloads removed: with them, the
/// customers' counts plus `syn_no_customer` still equal the watched SYNs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemovedCustomers {
    /// How many removals.
    pub customers: u64,
    pub syn_seen: u64,
    pub syn_forwarded: u64,
    pub syn_dropped: u64,
}

impl RemovedCustomers {
    /// Books one removed customer's counts of this run.
    pub fn add(&mut self, seen: u64, forwarded: u64) {
        self.customers += 1;
        self.syn_seen += seen;
        self.syn_forwarded += forwarded;
        self.syn_dropped += seen.saturating_sub(forwarded);
    }
}

/// Mempool occupancy: `in_use` at the end of the run (after the workers
/// stopped, with the ports still holding their rx rings), and
/// `in_use_at_start` just before the workers started (the rx rings filled).
/// Every mbuf a worker received was sent or freed iff the two are equal.
#[derive(Debug, Serialize)]
pub struct MempoolSummary {
    pub size: u32,
    pub in_use: u32,
    pub in_use_at_start: u32,
}

impl Summary {
    /// Sums the workers' counters and reads the control plane's per-customer totals.
    #[allow(clippy::too_many_arguments)]
    pub fn collect(
        config: &Config,
        plane: &ControlPlane,
        baseline: &HashMap<String, (u64, u64)>,
        now: u64,
        elapsed: Duration,
        ports: Vec<PortSummary>,
        stats: &[Arc<WorkerStats>],
        mempool: MempoolSummary,
        removed: &RemovedCustomers,
    ) -> Summary {
        let totals = FrameTotals::sum(stats.iter().map(|s| &**s));
        let outcomes = Outcome::all()
            .iter()
            .map(|&o| (o.name(), totals.outcome(o)))
            .collect();
        let verdicts = totals.verdicts;
        let workers = stats
            .iter()
            .zip(&config.dpdk.cores)
            .map(|(s, &lcore)| WorkerSummary {
                lcore,
                verdicts: s.verdicts.read(),
                syn_watched: s.outcomes[Outcome::WatchedSyn.index()].load(Relaxed),
                busy_ratio: s.busy_ratio(),
            })
            .collect();
        let customers = plane
            .recorded()
            .into_iter()
            .filter_map(|id| plane.customer_view(id, now))
            .filter_map(|v| {
                let (seen0, fwd0) = baseline.get(&v.name).copied().unwrap_or((0, 0));
                let seen = v.seen.saturating_sub(seen0);
                let fwd = v.forwarded.saturating_sub(fwd0);
                (seen > 0 || v.state != "open").then_some((v, seen, fwd))
            })
            .map(|(v, seen, fwd)| CustomerSummary {
                name: v.name,
                syn_seen: seen,
                syn_forwarded: fwd,
                syn_dropped: seen - fwd.min(seen),
                state: v.state,
                windows: v.windows.into_iter().map(|w| (w.name, w.count)).collect(),
            })
            .collect();
        Summary {
            version: env!("CARGO_PKG_VERSION"),
            elapsed_secs: elapsed.as_secs_f64(),
            ports,
            outcomes,
            verdicts,
            workers,
            customers,
            mempool,
            removed_customers: removed.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_reads_as_it_always_did_name_place_then_counters_in_order() {
        let port = PortSummary {
            name: "net_pcap0".into(),
            link: "link0".into(),
            side: "inside".into(),
            stats: PortStats {
                rx_packets: 1,
                tx_packets: 2,
                rx_bytes: 3,
                tx_bytes: 4,
                rx_missed: 5,
                rx_errors: 6,
                tx_errors: 7,
                rx_nombuf: 8,
            },
        };
        assert_eq!(
            serde_json::to_string(&port).unwrap(),
            r#"{"name":"net_pcap0","link":"link0","side":"inside","rx_packets":1,"tx_packets":2,"rx_bytes":3,"tx_bytes":4,"rx_missed":5,"rx_errors":6,"tx_errors":7,"rx_nombuf":8}"#
        );
    }
}
