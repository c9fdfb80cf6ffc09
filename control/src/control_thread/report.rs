//! What the control thread tells operators: the `status` reply, systemd's
//! status line, the Prometheus registry's figures and the run's summary.
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{json, Value};
use synwall_dataplane::parse::Outcome;
use synwall_dataplane::shard::FrameTotals;
use synwall_dataplane::CustomerId;

use super::{ControlThread, TOP_CUSTOMERS};
use crate::metrics::{CustomerMetrics, CustomerWindow, MetricsSnapshot, WorkerLoad};
use crate::socket::Dataplane;
use crate::summary::{MempoolSummary, PortSummary, Summary};

impl ControlThread {
    /// Refreshes the Prometheus registry from the workers' counters, the
    /// ports and the control plane (blocked customers and the top senders
    /// of the shortest window only: cardinality stays bounded).
    pub fn update_metrics(&mut self) {
        let Some(registry) = self.metrics.clone() else {
            return;
        };
        let now = self.clock.now();
        let totals = FrameTotals::sum(self.stats.iter().map(|w| &**w));
        let outcomes: std::collections::BTreeMap<String, u64> = Outcome::all()
            .iter()
            .map(|&o| (o.name().to_owned(), totals.outcome(o)))
            .collect();
        let verdicts = totals.verdicts;
        let blocks = self.plane.blocks();
        let mut ids: Vec<CustomerId> = blocks.iter().map(|b| b.id).collect();
        for t in self.plane.top(TOP_CUSTOMERS, 0, now) {
            if !ids.contains(&t.id) {
                ids.push(t.id);
            }
        }
        let customers = ids
            .into_iter()
            .filter_map(|id| self.plane.customer_view(id, now))
            .map(|v| CustomerMetrics {
                name: v.name,
                blocked: v.state != "open",
                windows: v
                    .windows
                    .into_iter()
                    .map(|w| CustomerWindow {
                        window: w.name,
                        syns: w.count,
                        limit: Some(w.limit),
                    })
                    .collect(),
                syn_seen: v.seen,
                syn_forwarded: v.forwarded,
            })
            .collect();
        // Watched SYNs as the workers counted them; "dropped" is every
        // frame a block stopped (dropped or answered with a reset).
        let syn_seen = outcomes
            .get(Outcome::WatchedSyn.name())
            .copied()
            .unwrap_or(0);
        let syn_dropped = verdicts.dropped_blocked + verdicts.reset_sent;
        let snapshot = MetricsSnapshot {
            fleet: self.plane.fleet_metrics(),
            ports: self.ports.iter().map(|p| p.port.clone()).collect(),
            outcomes,
            verdicts,
            syn_seen,
            syn_forwarded: syn_seen.saturating_sub(syn_dropped),
            syn_dropped,
            blocked_customers: blocks.len() as u64,
            mempool_size: self.gauges.mempool_size.load(Relaxed),
            mempool_in_use: self.gauges.mempool_in_use.load(Relaxed),
            block_events: self.block_events,
            workers: self
                .stats
                .iter()
                .zip(&self.config.dpdk.cores)
                .map(|(s, &lcore)| WorkerLoad {
                    lcore,
                    busy_ratio: s.busy_ratio(),
                })
                .collect(),
            customers,
            tick_interval_seconds: self.config.control.tick.as_secs_f64(),
            tick_full_scans: self.plane.listing_overflows(),
            hooks: self.hooks.as_ref().map(|h| h.stats()).unwrap_or_default(),
            snapshots_written: self.snapshots_written,
            snapshot_failures: self.snapshot_failures,
            event_log_write_failures: self.events.write_failures(),
            workers_stalled: self.stalled_workers.len() as u64,
            watchdog_pings: self.notifier.pings,
            watchdog_withheld: self.notifier.withheld,
            notify_failures: self.notifier.failures,
            flowspec: self
                .flowspec
                .as_ref()
                .map(|f| f.status())
                .unwrap_or_default(),
            history: self.history_health(),
        };
        if let Ok(mut m) = registry.lock() {
            m.update(&snapshot);
        };
    }

    /// The `status` reply: version, uptime, links and ports with rates,
    /// workers with their load, tick cost, customers.
    pub fn status_value(&self) -> Value {
        let workers: Vec<Value> = self
            .stats
            .iter()
            .zip(&self.config.dpdk.cores)
            .map(|(s, lcore)| {
                json!({
                    "lcore": lcore,
                    "rx": s.verdicts.rx.load(Relaxed),
                    "busy_ratio": s.busy_ratio(),
                    "generation": s.generation.load(Relaxed),
                })
            })
            .collect();
        let totals = FrameTotals::sum(self.stats.iter().map(|w| &**w));
        let frames: serde_json::Map<String, Value> = totals
            .verdicts
            .named()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            // The control loop answers only once ports are started and the
            // workers launched; before and after, the socket thread answers
            // `starting` / `stopping` (crate::socket::Dataplane).
            "state": Dataplane::Forwarding.state(),
            "dataplane": Dataplane::Forwarding.as_str(),
            "workers_polling": self.stalled_workers.is_empty(),
            "stalled_workers": self.stalled_workers.iter()
                .filter_map(|&w| self.config.dpdk.cores.get(w)).collect::<Vec<_>>(),
            "tick_running": !self.tick_stalled,
            "systemd": self.notifier.status_value(),
            "flowspec": self.flowspec.as_ref().map(|f| f.status_value()),
            "config": self.config.path.display().to_string(),
            "uptime_secs": self.started.elapsed().as_secs_f64(),
            "mode": self.config.control.mode.as_str(),
            "links": self.config.links.iter().map(|l| json!({
                "name": l.name, "inside": l.inside, "outside": l.outside, "queues": l.queues,
            })).collect::<Vec<_>>(),
            "ports": self.ports,
            "main_lcore": self.main_lcore,
            "workers": workers,
            "frames": frames,
            "customers": self.plane.customers(),
            "active_customers": self.plane.active(),
            "blocked_customers": self.gauges.blocked_customers.load(Relaxed),
            "tick_us": self.gauges.last_tick_us.load(Relaxed),
            "tick_full_scans": self.plane.listing_overflows(),
            "mempool": {
                "size": self.gauges.mempool_size.load(Relaxed),
                "in_use": self.gauges.mempool_in_use.load(Relaxed),
            },
            "ticks": self.gauges.ticks.load(Relaxed),
            "snapshots": {
                "dir": self.config.control.state_dir.display().to_string(),
                "written": self.snapshots_written,
                "failures": self.snapshot_failures,
                "last_error": self.snapshot_error,
            },
            "history": self.history_health(),
            "event_log": {
                "path": self.events.path().display().to_string(),
                "write_failures": self.events.write_failures(),
                "last_error": self.events.last_error(),
            },
            // Lines stdout/stderr did not take (nobody reading): dropped,
            // never waited for (crate::console).
            "stdout_dropped_lines": crate::console::dropped(),
            "fleet": self.plane.fleet_view(),
            "generation": self.generation.load().number,
        })
    }

    /// systemd's one-line status: the state, what the inside ports receive
    /// and the outside ports send, blocks, tick cost, and a wedged worker or
    /// tick.
    pub fn status_line(&self, state: &str) -> String {
        let side = |side: &str, rx: bool| -> f64 {
            self.ports
                .iter()
                .filter(|p| p.port.side == side)
                .map(|p| if rx { p.rx_pps } else { p.tx_pps })
                .sum()
        };
        let mut line = format!(
            "{state}: inside rx {} pps, outside tx {} pps; blocked {} of {} customers; tick {} us",
            side("inside", true).round(),
            side("outside", false).round(),
            self.gauges.blocked_customers.load(Relaxed),
            self.plane.customers(),
            self.gauges.last_tick_us.load(Relaxed),
        );
        if !self.stalled_workers.is_empty() {
            let lcores: Vec<String> = self
                .stalled_workers
                .iter()
                .filter_map(|&w| self.config.dpdk.cores.get(w))
                .map(|c| c.to_string())
                .collect();
            line.push_str(&format!(
                "; WORKER NOT POLLING on lcore {} (watchdog withheld)",
                lcores.join(",")
            ));
        }
        if self.tick_stalled {
            line.push_str("; TICK NOT RUNNING (watchdog withheld)");
        }
        line
    }

    /// The run's final counters: this run's share of each customer's SYNs
    /// (restored counts left out), ports, workers and the packet pool.
    pub fn summary(
        &self,
        elapsed: Duration,
        ports: Vec<PortSummary>,
        mempool: MempoolSummary,
    ) -> Summary {
        Summary::collect(
            &self.config,
            &self.plane,
            &self.baseline,
            self.clock.now(),
            elapsed,
            ports,
            &self.stats,
            mempool,
            &self.removed,
        )
    }
}
