//! Prometheus metrics: what the appliance counted, in the text exposition
//! format (version 0.0.4), served over HTTP at `/metrics`.
//!
//! Three parts, each owned by one party:
//!
//! - [`MetricsSnapshot`] is plain data the control loop fills in from the
//!   workers' per-core counters, the ports' stats and the control plane.
//! - [`MetricsRegistry`] holds the last snapshot and the tick-duration
//!   histogram, and encodes them with `prometheus-client`. The counters are
//!   maintained elsewhere (by the workers and the NIC), so they are exported
//!   through a [`Collector`] that turns the snapshot into `ConstCounter`s
//!   and `ConstGauge`s on each scrape; only the histogram is a live metric.
//! - [`MetricsServer`] is one thread answering `GET /metrics`, one request
//!   at a time, with deadlines, so a slow or hostile client costs at most a
//!   few seconds of scrape latency and a fixed amount of memory.
//!
//! The control loop calls `registry.lock().update(&snapshot)` once per tick
//! or once a second and [`MetricsRegistry::observe_tick`] after each tick;
//! a scrape holds the lock only while it encodes.
//!
//! This file is the data and the registry; the HTTP server is
//! [`server`].
//!
//! Cardinality is bounded: per-customer series exist only for the customers
//! the caller passes (those currently blocked and the top N by count), and
//! the registry keeps at most `top_customers` of the unblocked ones and at
//! most [`MAX_CUSTOMER_SERIES`] customers in all, whatever it is given.
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use synwall_dataplane::shard::VerdictTotals;

use crate::hook::HookStats;
use synwall_dpdk::PortStats;
pub use synwall_engine::fleet::FleetMetrics;

pub mod server;

pub use server::{MetricsServer, MAX_REQUEST_HEAD, REQUEST_DEADLINE, RESPONSE_DEADLINE};

/// Every metric name starts with this and an underscore.
pub const PREFIX: &str = "synwall";

/// The most customers that ever get per-customer series, blocked or not,
/// whatever the caller passes: each costs a few series per window.
pub const MAX_CUSTOMER_SERIES: usize = 1000;

/// How many unblocked customers get series when the caller does not say.
pub const DEFAULT_TOP_CUSTOMERS: usize = 20;

/// Upper bounds (seconds) of the tick-duration histogram's buckets: a tick
/// should cost tens of microseconds; anything near the tick itself
/// (10 ms..10 s) is trouble and lands in the top buckets.
pub const TICK_BUCKETS: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The `Content-Type` of what [`MetricsRegistry::encode`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// One port's counters and labels (the summary's port entry).
pub use crate::summary::PortSummary as PortMetrics;

/// What the workers did with frames, summed over workers (monotonic).
pub type VerdictCounts = VerdictTotals;

/// Events of the block state machine since start, by kind (monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockEventCounts {
    /// Blocks imposed (by a limit, an operator or the config).
    pub block: u64,
    /// Blocks an operator lifted.
    pub unblock: u64,
    /// Blocks that ran out.
    pub expire: u64,
    /// Limits a `monitor` customer went over.
    pub would_block: u64,
    /// Windows that reached the near-limit fraction.
    pub near_limit: u64,
}

impl BlockEventCounts {
    /// `(kind label, count)`; the names are the event log's.
    fn labelled(&self) -> [(&'static str, u64); 5] {
        [
            ("block", self.block),
            ("unblock", self.unblock),
            ("expire", self.expire),
            ("would_block", self.would_block),
            ("near_limit", self.near_limit),
        ]
    }
}

/// One worker lcore's load.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkerLoad {
    /// The lcore id: the `lcore` label.
    pub lcore: usize,
    /// Share of poll rounds that received something, 0..=1.
    pub busy_ratio: f64,
}

/// One trailing window of a customer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerWindow {
    /// The window's config name (`"5m"`): the `window` label.
    pub window: String,
    /// Forwarded SYNs in the window now.
    pub syns: u64,
    /// The customer's limit for the window; `None` = no limit.
    pub limit: Option<u64>,
}

/// One customer's series. Only customers the caller picked (blocked, or in
/// the top N) appear; see [`MetricsRegistry::update`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerMetrics {
    /// The customer's config name: the `customer` label.
    pub name: String,
    /// A block is in force.
    pub blocked: bool,
    /// Per window, in config order.
    pub windows: Vec<CustomerWindow>,
    /// SYNs seen since start (monotonic).
    pub syn_seen: u64,
    /// SYNs forwarded since start (monotonic).
    pub syn_forwarded: u64,
}

/// Everything the metrics show but the tick histogram: plain data, built
/// by the control loop and handed to [`MetricsRegistry::update`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Every port of every link.
    pub ports: Vec<PortMetrics>,
    /// Frames per parse outcome name (`"syn_watched"`), monotonic.
    pub outcomes: BTreeMap<String, u64>,
    /// Frames by verdict, summed over workers.
    pub verdicts: VerdictCounts,
    /// Outbound SMTP SYNs of known customers, monotonic.
    pub syn_seen: u64,
    /// Of those, forwarded.
    pub syn_forwarded: u64,
    /// Of those, dropped because the customer was blocked.
    pub syn_dropped: u64,
    /// Customers with a block in force now.
    pub blocked_customers: u64,
    /// Mbufs in the packet pool, and how many are handed out now (in NIC
    /// rings, in flight): a count that creeps up means a leak, one at the
    /// size means rx is short of buffers.
    pub mempool_size: u64,
    pub mempool_in_use: u64,
    /// Block state machine events since start.
    pub block_events: BlockEventCounts,
    /// One per worker lcore.
    pub workers: Vec<WorkerLoad>,
    /// Customers currently blocked, then the top N by count, most
    /// important first: the caller bounds this list; the registry also
    /// truncates it (see [`MetricsRegistry::update`]).
    pub customers: Vec<CustomerMetrics>,
    /// The configured `control.tick`, in seconds: a tick that takes longer
    /// (`synwall_tick_duration_seconds`) makes every tick late.
    pub tick_interval_seconds: f64,
    /// Ticks that found a worker's listing of senders overflowed and
    /// scanned the whole customer table instead, since start.
    pub tick_full_scans: u64,
    /// What `control.hook` did, since start.
    pub hooks: HookStats,
    /// State snapshots written, and writes that failed, since start.
    pub snapshots_written: u64,
    pub snapshot_failures: u64,
    /// Event-log batches that could not be written (disk full, ...).
    pub event_log_write_failures: u64,
    /// Workers whose poll counter stood still at the last liveness check.
    pub workers_stalled: u64,
    /// systemd: watchdog pings sent, liveness checks that withheld one,
    /// notify messages that could not be sent.
    pub watchdog_pings: u64,
    pub watchdog_withheld: u64,
    pub notify_failures: u64,
    /// The FlowSpec speaker's figures (all 0 without `[flowspec]`).
    pub flowspec: crate::flowspec::FlowspecStatus,
    /// `[fleet]`: the Redis side.
    pub fleet: Option<FleetMetrics>,
    /// The per-customer history's writer (`None`: not kept).
    pub history: Option<crate::history::HistoryHealth>,
}

/// What the collector encodes on each scrape.
#[derive(Debug, Default)]
struct Exported {
    snapshot: MetricsSnapshot,
    /// Customers passed to `update` that got no series.
    customers_omitted: usize,
}

/// The registry's view of the snapshot. The cell is shared with
/// [`MetricsRegistry`] because `prometheus-client` owns registered
/// collectors; both sides only touch it under the caller's registry lock,
/// so this inner lock is never contended.
#[derive(Debug, Default)]
struct SnapshotCollector {
    current: Arc<Mutex<Exported>>,
}

/// The metrics, their last values and the encoder. Share it as
/// `Arc<Mutex<MetricsRegistry>>` between the control loop (which updates
/// it) and [`MetricsServer`] (which encodes it).
#[derive(Debug)]
pub struct MetricsRegistry {
    registry: Registry,
    current: Arc<Mutex<Exported>>,
    tick: Histogram,
    top_customers: usize,
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        MetricsRegistry::new(DEFAULT_TOP_CUSTOMERS)
    }
}

impl MetricsRegistry {
    /// A registry that exports series for every blocked customer passed to
    /// [`update`](Self::update) and for at most `top_customers` unblocked
    /// ones; both together at most [`MAX_CUSTOMER_SERIES`].
    pub fn new(top_customers: usize) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "build",
            "synwall's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let tick = Histogram::new(TICK_BUCKETS);
        registry.register_with_unit(
            "tick_duration",
            "Time the control plane spent in one tick",
            Unit::Seconds,
            tick.clone(),
        );
        let current = Arc::new(Mutex::new(Exported::default()));
        registry.register_collector(Box::new(SnapshotCollector {
            current: Arc::clone(&current),
        }));
        MetricsRegistry {
            registry,
            current,
            tick,
            top_customers: top_customers.min(MAX_CUSTOMER_SERIES),
        }
    }

    /// The most unblocked customers that get series (after the hard cap).
    pub fn top_customers(&self) -> usize {
        self.top_customers
    }

    /// Replaces the exported values with `snapshot`'s.
    ///
    /// Of `snapshot.customers`, every blocked one is kept and the first
    /// `top_customers` unblocked ones, in the order given, then the whole
    /// list is cut at [`MAX_CUSTOMER_SERIES`] (blocked ones first in line).
    /// How many were left out is exported as
    /// `synwall_customer_series_omitted`.
    pub fn update(&mut self, snapshot: &MetricsSnapshot) {
        let given = snapshot.customers.len();
        // Field by field, so the customers beyond the bound are never copied.
        let kept = MetricsSnapshot {
            ports: snapshot.ports.clone(),
            outcomes: snapshot.outcomes.clone(),
            verdicts: snapshot.verdicts,
            syn_seen: snapshot.syn_seen,
            syn_forwarded: snapshot.syn_forwarded,
            syn_dropped: snapshot.syn_dropped,
            blocked_customers: snapshot.blocked_customers,
            mempool_size: snapshot.mempool_size,
            mempool_in_use: snapshot.mempool_in_use,
            block_events: snapshot.block_events,
            workers: snapshot.workers.clone(),
            customers: bounded_customers(&snapshot.customers, self.top_customers),
            fleet: snapshot.fleet.clone(),
            tick_interval_seconds: snapshot.tick_interval_seconds,
            tick_full_scans: snapshot.tick_full_scans,
            hooks: snapshot.hooks,
            snapshots_written: snapshot.snapshots_written,
            snapshot_failures: snapshot.snapshot_failures,
            event_log_write_failures: snapshot.event_log_write_failures,
            workers_stalled: snapshot.workers_stalled,
            watchdog_pings: snapshot.watchdog_pings,
            watchdog_withheld: snapshot.watchdog_withheld,
            notify_failures: snapshot.notify_failures,
            flowspec: snapshot.flowspec.clone(),
            history: snapshot.history.clone(),
        };
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.customers_omitted = given - kept.customers.len();
        current.snapshot = kept;
    }

    /// Records the last tick's duration in `synwall_tick_duration_seconds`.
    pub fn observe_tick(&self, duration: Duration) {
        self.tick.observe(duration.as_secs_f64());
    }

    /// All metrics in the Prometheus text format, version 0.0.4
    /// ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        // Only the writer can fail, and writing to a String never does: a
        // partial text is still the best answer there is.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// The customers that get series: blocked ones first, then unblocked up to
/// `top`, in the order given; never more than [`MAX_CUSTOMER_SERIES`].
fn bounded_customers(given: &[CustomerMetrics], top: usize) -> Vec<CustomerMetrics> {
    let blocked = given.iter().filter(|c| c.blocked);
    let open = given.iter().filter(|c| !c.blocked).take(top);
    blocked
        .chain(open)
        .take(MAX_CUSTOMER_SERIES)
        .cloned()
        .collect()
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let s = &current.snapshot;
        let e = &mut encoder;

        let port_labels = |p: &PortMetrics| {
            [
                ("port", p.name.clone()),
                ("link", p.link.clone()),
                ("side", p.side.clone()),
            ]
        };
        for (i, (name, help, _)) in PortStats::default().named().into_iter().enumerate() {
            counter_family(
                e,
                &format!("port_{name}"),
                help,
                s.ports
                    .iter()
                    .map(|p| (port_labels(p), p.stats.named()[i].2)),
            )?;
        }

        counter_family(
            e,
            "frames",
            "Frames inspected, by parse outcome.",
            s.outcomes
                .iter()
                .map(|(o, n)| ([("outcome", o.as_str())], *n)),
        )?;
        counter_family(
            e,
            "verdicts",
            "Frames by the worker's verdict.",
            s.verdicts
                .named()
                .into_iter()
                .map(|(v, n)| ([("verdict", v)], n)),
        )?;
        counter(
            e,
            "syns_seen",
            "Outbound SMTP SYNs of known customers.",
            s.syn_seen,
        )?;
        counter(
            e,
            "syns_forwarded",
            "Outbound SMTP SYNs forwarded.",
            s.syn_forwarded,
        )?;
        counter(
            e,
            "syns_dropped",
            "Outbound SMTP SYNs dropped because the customer was blocked.",
            s.syn_dropped,
        )?;
        gauge(
            e,
            "blocked_customers",
            "Customers with a block in force.",
            s.blocked_customers,
        )?;
        gauge(
            e,
            "mempool_mbufs",
            "Mbufs in the packet pool.",
            s.mempool_size,
        )?;
        gauge(
            e,
            "mempool_mbufs_in_use",
            "Mbufs of the packet pool handed out (NIC rings, bursts in flight).",
            s.mempool_in_use,
        )?;
        counter_family(
            e,
            "block_events",
            "Block state machine events, by kind.",
            s.block_events
                .labelled()
                .into_iter()
                .map(|(k, n)| ([("kind", k)], n)),
        )?;
        gauge_family(
            e,
            "worker_busy_ratio",
            "Share of a worker's poll rounds that received packets.",
            s.workers
                .iter()
                .map(|w| ([("lcore", w.lcore)], w.busy_ratio)),
        )?;

        if let Some(f) = &s.fleet {
            gauge(
                e,
                "fleet_leases",
                "Redis leases this appliance holds.",
                f.leases_held,
            )?;
            gauge(
                e,
                "fleet_leased_outstanding",
                "Unspent SYNs of the leases held.",
                f.leased_outstanding,
            )?;
            counter(
                e,
                "fleet_leased_syns",
                "SYNs granted by Redis leases.",
                f.leased_syns,
            )?;
            counter(
                e,
                "fleet_rounds",
                "Rounds of lease calls sent to Redis.",
                f.rounds,
            )?;
            counter(e, "fleet_replies", "Lease calls Redis answered.", f.replies)?;
            counter(
                e,
                "fleet_failures",
                "Lease calls that got no usable answer (unreachable, refused, quarantined).",
                f.failures,
            )?;
            gauge_family(
                e,
                "fleet_round_trip_seconds",
                "The last round trip to Redis.",
                std::iter::once(([("node", f.node.as_str())], f.rtt_seconds)),
            )?;
            gauge(
                e,
                "fleet_redis_up",
                "1 while Redis answers; 0 while customers fall back to their floors.",
                f.redis_up,
            )?;
            gauge(
                e,
                "fleet_customers_on_floors",
                "Customers that wanted a lease at the last tick and could not get one.",
                f.customers_on_floors,
            )?;
            gauge(
                e,
                "fleet_quarantine_milliseconds",
                "What is left of the floors-only quarantine after Redis lost its state.",
                f.quarantine_ms,
            )?;
            counter(
                e,
                "fleet_subscriptions",
                "Subscriptions to the fleet's announcements (the first and every resubscription).",
                f.subscriptions,
            )?;
            counter(
                e,
                "fleet_notes_applied",
                "Announcements missed while unsubscribed, applied from Redis's notes.",
                f.notes_applied,
            )?;
            gauge(
                e,
                "fleet_reread_in_progress",
                "1 while every customer's notes are being re-read after a subscription.",
                f.reread_in_progress,
            )?;
            gauge(
                e,
                "fleet_announcements_waiting",
                "This appliance's blocks, unblocks and set-limits that Redis has not taken yet (kept, sent again).",
                f.announcements_waiting,
            )?;
            counter(
                e,
                "fleet_announcements_lost",
                "Announcements given up: too many waited for Redis, or Redis refused one.",
                f.announcements_lost,
            )?;
        }
        gauge_family(
            e,
            "tick_interval_seconds",
            "The configured control-plane tick interval.",
            std::iter::once((NoLabels, s.tick_interval_seconds)),
        )?;
        counter(
            e,
            "tick_full_scans",
            "Ticks that scanned every customer because a worker's listing of senders overflowed (more senders in one tick than it holds).",
            s.tick_full_scans,
        )?;
        let h = s.hooks;
        counter_family(
            e,
            "hook_runs",
            "Event hook (control.hook) runs by result; dropped: events the full queue turned away.",
            [
                ("succeeded", h.succeeded),
                ("failed", h.failed),
                ("timed_out", h.timed_out),
                ("dropped", h.dropped),
            ]
            .into_iter()
            .map(|(r, n)| ([("result", r)], n)),
        )?;
        counter_family(
            e,
            "snapshot_writes",
            "State snapshot writes by result.",
            [("ok", s.snapshots_written), ("failed", s.snapshot_failures)]
                .into_iter()
                .map(|(r, n)| ([("result", r)], n)),
        )?;
        if let Some(h) = &s.history {
            gauge(
                e,
                "history_ok",
                "1 while the per-customer history's last write succeeded (see status.history).",
                u64::from(h.ok),
            )?;
            gauge(
                e,
                "history_bytes",
                "Size of the per-customer history on disk.",
                h.bytes,
            )?;
            counter_family(
                e,
                "history_batches",
                "Minute batches of the per-customer history: written, failed, dropped (writer behind).",
                [
                    ("written", h.written),
                    ("failed", h.failures),
                    ("dropped", h.dropped),
                ]
                .into_iter()
                .map(|(r, n)| ([("result", r)], n)),
            )?;
            counter(
                e,
                "history_replaced",
                "Damaged history files set aside and replaced by a new one.",
                h.replaced,
            )?;
        }
        counter(
            e,
            "event_log_write_failures",
            "Event-log writes that failed (the events of each are left out whole; see status.event_log).",
            s.event_log_write_failures,
        )?;
        gauge(
            e,
            "workers_stalled",
            "Workers whose poll counter stood still at the last liveness check.",
            s.workers_stalled,
        )?;
        counter(
            e,
            "watchdog_pings",
            "WATCHDOG=1 messages sent to systemd.",
            s.watchdog_pings,
        )?;
        counter(
            e,
            "watchdog_withheld",
            "Liveness checks that withheld the systemd watchdog ping (a worker or the tick stood still).",
            s.watchdog_withheld,
        )?;
        counter(
            e,
            "systemd_notify_failures",
            "Messages to systemd's NOTIFY_SOCKET that could not be sent.",
            s.notify_failures,
        )?;
        // Process-wide, not part of the snapshot: every thread's lines go
        // through the one console queue.
        counter(
            e,
            "stdout_dropped_lines",
            "Lines for stdout/stderr dropped because nobody read them fast enough (the control plane never waits for them).",
            crate::console::dropped(),
        )?;

        gauge(
            e,
            "flowspec_rules",
            "FlowSpec rules synwall has announced through gobgpd (0 without [flowspec]).",
            s.flowspec.announced,
        )?;
        counter(
            e,
            "flowspec_errors",
            "FlowSpec reconciles with gobgpd that failed (gobgpd down, a rule refused); each is retried.",
            s.flowspec.errors,
        )?;
        counter(
            e,
            "flowspec_updates",
            "FlowSpec rules announced plus withdrawn.",
            s.flowspec.announcements + s.flowspec.withdrawals,
        )?;

        let customers = &s.customers;
        gauge(
            e,
            "customer_series_omitted",
            "Customers left out of the per-customer series by the cardinality bound.",
            current.customers_omitted as u64,
        )?;
        gauge_family(
            e,
            "customer_blocked",
            "1 if a block is in force for the customer (blocked and top-N customers only).",
            customers
                .iter()
                .map(|c| ([("customer", c.name.as_str())], u64::from(c.blocked))),
        )?;
        gauge_family(
            e,
            "customer_window_syns",
            "Forwarded SYNs in the trailing window (blocked and top-N customers only).",
            customers.iter().flat_map(|c| {
                c.windows.iter().map(move |w| {
                    (
                        [("customer", c.name.as_str()), ("window", w.window.as_str())],
                        w.syns,
                    )
                })
            }),
        )?;
        gauge_family(
            e,
            "customer_limit",
            "The customer's SYN limit for the window (blocked and top-N customers only).",
            customers.iter().flat_map(|c| {
                c.windows.iter().filter_map(move |w| {
                    let limit = w.limit?;
                    Some((
                        [("customer", c.name.as_str()), ("window", w.window.as_str())],
                        limit,
                    ))
                })
            }),
        )?;
        counter_family(
            e,
            "customer_syns_seen",
            "Outbound SMTP SYNs seen from the customer (blocked and top-N customers only).",
            customers
                .iter()
                .map(|c| ([("customer", c.name.as_str())], c.syn_seen)),
        )?;
        counter_family(
            e,
            "customer_syns_forwarded",
            "Outbound SMTP SYNs forwarded for the customer (blocked and top-N customers only).",
            customers
                .iter()
                .map(|c| ([("customer", c.name.as_str())], c.syn_forwarded)),
        )?;
        Ok(())
    }
}

/// The label set of an unlabelled sample in a family.
#[derive(Debug, Clone, Copy)]
struct NoLabels;

impl EncodeLabelSet for NoLabels {
    fn encode(&self, _encoder: &mut prometheus_client::encoding::LabelSetEncoder) -> fmt::Result {
        Ok(())
    }
}

/// One unlabelled counter; the encoder appends `_total`.
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// One unlabelled gauge.
fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A labelled counter family; nothing at all when `samples` is empty.
fn counter_family<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut samples = samples.peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A labelled gauge family; nothing at all when `samples` is empty.
fn gauge_family<L: EncodeLabelSet, V>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (L, V)>,
) -> fmt::Result
where
    ConstGauge<V>: EncodeMetric,
{
    let mut samples = samples.peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
