//! The Prometheus metrics: encoding, cardinality bounds and the HTTP
//! listener, scraped over real TCP on 127.0.0.1.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use synwall_control::metrics::{
    BlockEventCounts, CustomerMetrics, CustomerWindow, MetricsRegistry, MetricsServer,
    MetricsSnapshot, PortMetrics, VerdictCounts, WorkerLoad, CONTENT_TYPE, MAX_CUSTOMER_SERIES,
    REQUEST_DEADLINE,
};
use synwall_dpdk::PortStats;

fn port(name: &str, link: &str, side: &str, base: u64) -> PortMetrics {
    PortMetrics {
        name: name.into(),
        link: link.into(),
        side: side.into(),
        stats: PortStats {
            rx_packets: base,
            tx_packets: base + 1,
            rx_bytes: base * 64,
            tx_bytes: base * 64 + 1,
            rx_missed: 3,
            rx_errors: 4,
            tx_errors: 5,
            rx_nombuf: 6,
        },
    }
}

fn customer(name: &str, blocked: bool, syns_5m: u64) -> CustomerMetrics {
    CustomerMetrics {
        name: name.into(),
        blocked,
        windows: vec![
            CustomerWindow {
                window: "5m".into(),
                syns: syns_5m,
                limit: Some(40),
            },
            CustomerWindow {
                window: "1h".into(),
                syns: syns_5m * 2,
                limit: None,
            },
        ],
        syn_seen: syns_5m + 10,
        syn_forwarded: syns_5m,
    }
}

fn known_snapshot() -> MetricsSnapshot {
    MetricsSnapshot {
        ports: vec![
            port("net_pcap0", "link0", "inside", 100),
            port("net_pcap1", "link0", "outside", 200),
        ],
        outcomes: BTreeMap::from([("syn_watched".to_owned(), 7), ("not_ip".to_owned(), 2)]),
        verdicts: VerdictCounts {
            rx: 300,
            forwarded: 290,
            reverse_forwarded: 150,
            dropped_blocked: 8,
            dropped_malformed: 2,
            reset_sent: 1,
            tx_full: 0,
            syn_no_customer: 9,
        },
        syn_seen: 18,
        syn_forwarded: 10,
        syn_dropped: 8,
        blocked_customers: 1,
        mempool_size: 8191,
        mempool_in_use: 1024,
        block_events: BlockEventCounts {
            block: 2,
            unblock: 1,
            expire: 0,
            would_block: 3,
            near_limit: 4,
        },
        workers: vec![
            WorkerLoad {
                lcore: 1,
                busy_ratio: 0.25,
            },
            WorkerLoad {
                lcore: 2,
                busy_ratio: 0.5,
            },
        ],
        customers: vec![customer("acme", true, 42), customer("globex", false, 3)],
        fleet: None,
        tick_interval_seconds: 0.1,
        tick_full_scans: 6,
        hooks: synwall_control::hook::HookStats {
            succeeded: 5,
            failed: 2,
            timed_out: 1,
            dropped: 0,
        },
        snapshots_written: 7,
        snapshot_failures: 3,
        event_log_write_failures: 2,
        workers_stalled: 1,
        watchdog_pings: 11,
        watchdog_withheld: 4,
        notify_failures: 2,
        flowspec: synwall_control::flowspec::FlowspecStatus {
            announced: 3,
            errors: 6,
            announcements: 4,
            withdrawals: 1,
            ..Default::default()
        },
        history: Some(synwall_control::history::HistoryHealth {
            ok: false,
            bytes: 4096,
            written: 9,
            failures: 2,
            dropped: 1,
            replaced: 1,
            ..Default::default()
        }),
    }
}

#[test]
fn fleet_series_appear_only_with_a_fleet() {
    let mut registry = MetricsRegistry::new(10);
    registry.update(&known_snapshot());
    assert!(!registry.encode().contains("synwall_fleet_"));
    registry.update(&MetricsSnapshot {
        fleet: Some(synwall_control::metrics::FleetMetrics {
            leases_held: 2,
            leased_outstanding: 30,
            leased_syns: 800,
            rounds: 12,
            replies: 20,
            failures: 1,
            node: "redis://127.0.0.1:6379".into(),
            rtt_seconds: 0.001,
            redis_up: 1,
            customers_on_floors: 0,
            quarantine_ms: 0,
            subscriptions: 3,
            notes_applied: 4,
            reread_in_progress: 1,
            announcements_waiting: 5,
            announcements_lost: 6,
        }),
        ..known_snapshot()
    });
    let text = registry.encode();
    assert_lines(
        &text,
        &[
            "synwall_fleet_leases 2",
            "synwall_fleet_leased_outstanding 30",
            "synwall_fleet_leased_syns_total 800",
            "synwall_fleet_rounds_total 12",
            "synwall_fleet_replies_total 20",
            "synwall_fleet_failures_total 1",
            "synwall_fleet_round_trip_seconds{node=\"redis://127.0.0.1:6379\"} 0.001",
            "synwall_fleet_redis_up 1",
            "synwall_fleet_customers_on_floors 0",
            "synwall_fleet_quarantine_milliseconds 0",
            "synwall_fleet_subscriptions_total 3",
            "synwall_fleet_notes_applied_total 4",
            "synwall_fleet_reread_in_progress 1",
            "synwall_fleet_announcements_waiting 5",
            "synwall_fleet_announcements_lost_total 6",
        ],
    );
    // Every fleet series the shipped alert rules name is one of these (the
    // live-Prometheus test runs without a fleet, so it checks the others).
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/prometheus/synwall-rules.yml"
    ))
    .expect("the shipped rules");
    let named: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("synwall_fleet_"))
        .collect();
    assert!(named.len() >= 2, "{named:?}");
    for name in named {
        assert!(
            text.lines()
                .any(|l| l.split(['{', ' ']).next() == Some(name)),
            "{name} is in the rules but not exported"
        );
    }
}

fn registry_with_known_snapshot() -> MetricsRegistry {
    let mut registry = MetricsRegistry::new(10);
    registry.update(&known_snapshot());
    registry.observe_tick(Duration::from_micros(20));
    registry.observe_tick(Duration::from_millis(3));
    registry
}

/// Every line of `expected` appears, whole, in `text`.
fn assert_lines(text: &str, expected: &[&str]) {
    let lines: Vec<&str> = text.lines().collect();
    for want in expected {
        assert!(lines.contains(want), "missing line {want:?} in:\n{text}");
    }
}

#[test]
fn encodes_the_snapshot_exactly() {
    let text = registry_with_known_snapshot().encode();
    assert_lines(
        &text,
        &[
            "# HELP synwall_port_rx_packets_total Packets the port received.",
            "# TYPE synwall_port_rx_packets_total counter",
            r#"synwall_port_rx_packets_total{port="net_pcap0",link="link0",side="inside"} 100"#,
            r#"synwall_port_rx_packets_total{port="net_pcap1",link="link0",side="outside"} 200"#,
            r#"synwall_port_tx_packets_total{port="net_pcap0",link="link0",side="inside"} 101"#,
            r#"synwall_port_rx_bytes_total{port="net_pcap1",link="link0",side="outside"} 12800"#,
            r#"synwall_port_tx_bytes_total{port="net_pcap0",link="link0",side="inside"} 6401"#,
            r#"synwall_port_rx_missed_total{port="net_pcap0",link="link0",side="inside"} 3"#,
            r#"synwall_port_rx_errors_total{port="net_pcap0",link="link0",side="inside"} 4"#,
            r#"synwall_port_tx_errors_total{port="net_pcap0",link="link0",side="inside"} 5"#,
            r#"synwall_port_rx_nombuf_total{port="net_pcap0",link="link0",side="inside"} 6"#,
            "# TYPE synwall_frames_total counter",
            r#"synwall_frames_total{outcome="syn_watched"} 7"#,
            r#"synwall_frames_total{outcome="not_ip"} 2"#,
            "# TYPE synwall_verdicts_total counter",
            r#"synwall_verdicts_total{verdict="rx"} 300"#,
            r#"synwall_verdicts_total{verdict="forwarded"} 290"#,
            r#"synwall_verdicts_total{verdict="reverse_forwarded"} 150"#,
            r#"synwall_verdicts_total{verdict="dropped_blocked"} 8"#,
            r#"synwall_verdicts_total{verdict="dropped_malformed"} 2"#,
            r#"synwall_verdicts_total{verdict="reset_sent"} 1"#,
            r#"synwall_verdicts_total{verdict="tx_full"} 0"#,
            r#"synwall_verdicts_total{verdict="syn_no_customer"} 9"#,
            "# TYPE synwall_syns_seen_total counter",
            "synwall_syns_seen_total 18",
            "synwall_syns_forwarded_total 10",
            "synwall_syns_dropped_total 8",
            "# TYPE synwall_blocked_customers gauge",
            "synwall_blocked_customers 1",
            "# TYPE synwall_mempool_mbufs gauge",
            "synwall_mempool_mbufs 8191",
            "# HELP synwall_mempool_mbufs_in_use Mbufs of the packet pool handed out (NIC rings, bursts in flight).",
            "synwall_mempool_mbufs_in_use 1024",
            "# TYPE synwall_block_events_total counter",
            r#"synwall_block_events_total{kind="block"} 2"#,
            r#"synwall_block_events_total{kind="unblock"} 1"#,
            r#"synwall_block_events_total{kind="expire"} 0"#,
            r#"synwall_block_events_total{kind="would_block"} 3"#,
            r#"synwall_block_events_total{kind="near_limit"} 4"#,
            "# TYPE synwall_worker_busy_ratio gauge",
            r#"synwall_worker_busy_ratio{lcore="1"} 0.25"#,
            r#"synwall_worker_busy_ratio{lcore="2"} 0.5"#,
            "# TYPE synwall_customer_blocked gauge",
            r#"synwall_customer_blocked{customer="acme"} 1"#,
            r#"synwall_customer_blocked{customer="globex"} 0"#,
            "# TYPE synwall_customer_window_syns gauge",
            r#"synwall_customer_window_syns{customer="acme",window="5m"} 42"#,
            r#"synwall_customer_window_syns{customer="acme",window="1h"} 84"#,
            r#"synwall_customer_window_syns{customer="globex",window="5m"} 3"#,
            "# TYPE synwall_customer_limit gauge",
            r#"synwall_customer_limit{customer="acme",window="5m"} 40"#,
            r#"synwall_customer_syns_seen_total{customer="acme"} 52"#,
            r#"synwall_customer_syns_forwarded_total{customer="acme"} 42"#,
            "# TYPE synwall_tick_interval_seconds gauge",
            "synwall_tick_interval_seconds 0.1",
            "# TYPE synwall_tick_full_scans_total counter",
            "synwall_tick_full_scans_total 6",
            r#"synwall_hook_runs_total{result="succeeded"} 5"#,
            r#"synwall_hook_runs_total{result="failed"} 2"#,
            r#"synwall_hook_runs_total{result="timed_out"} 1"#,
            r#"synwall_hook_runs_total{result="dropped"} 0"#,
            r#"synwall_snapshot_writes_total{result="ok"} 7"#,
            r#"synwall_snapshot_writes_total{result="failed"} 3"#,
            "# TYPE synwall_history_ok gauge",
            "synwall_history_ok 0",
            "synwall_history_bytes 4096",
            r#"synwall_history_batches_total{result="written"} 9"#,
            r#"synwall_history_batches_total{result="failed"} 2"#,
            r#"synwall_history_batches_total{result="dropped"} 1"#,
            "synwall_history_replaced_total 1",
            "synwall_event_log_write_failures_total 2",
            "# TYPE synwall_workers_stalled gauge",
            "synwall_workers_stalled 1",
            "synwall_watchdog_pings_total 11",
            "synwall_watchdog_withheld_total 4",
            "synwall_systemd_notify_failures_total 2",
            "synwall_flowspec_rules 3",
            "synwall_flowspec_errors_total 6",
            "synwall_flowspec_updates_total 5",
            "synwall_customer_series_omitted 0",
            "# TYPE synwall_tick_duration_seconds histogram",
            r#"synwall_tick_duration_seconds_bucket{le="1e-05"} 0"#,
            r#"synwall_tick_duration_seconds_bucket{le="2.5e-05"} 1"#,
            r#"synwall_tick_duration_seconds_bucket{le="0.0025"} 1"#,
            r#"synwall_tick_duration_seconds_bucket{le="0.005"} 2"#,
            r#"synwall_tick_duration_seconds_bucket{le="+Inf"} 2"#,
            "synwall_tick_duration_seconds_count 2",
            concat!(
                r#"synwall_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
        ],
    );
    // A window without a limit has no limit series.
    assert!(!text.contains(r#"synwall_customer_limit{customer="acme",window="1h"}"#));
    let sum = sample_value(&text, "synwall_tick_duration_seconds_sum");
    assert!((sum - 0.003_02).abs() < 1e-9, "sum {sum}");
}

#[test]
fn update_replaces_values_and_series() {
    let mut registry = registry_with_known_snapshot();
    let mut next = known_snapshot();
    next.verdicts.forwarded = 1000;
    next.customers = vec![customer("initech", false, 5)];
    next.blocked_customers = 0;
    registry.update(&next);
    let text = registry.encode();
    assert_lines(
        &text,
        &[
            r#"synwall_verdicts_total{verdict="forwarded"} 1000"#,
            "synwall_blocked_customers 0",
            r#"synwall_customer_blocked{customer="initech"} 0"#,
        ],
    );
    // Customers no longer passed lose their series.
    assert!(!text.contains(r#"customer="acme""#), "{text}");
}

#[test]
fn an_empty_registry_encodes_validly() {
    let text = MetricsRegistry::default().encode();
    check_exposition(&text);
    assert_lines(
        &text,
        &[
            "synwall_blocked_customers 0",
            "synwall_tick_duration_seconds_count 0",
        ],
    );
}

#[test]
fn every_sample_line_parses_even_with_hostile_label_values() {
    let mut registry = MetricsRegistry::new(10);
    let mut snapshot = known_snapshot();
    snapshot
        .customers
        .push(customer("evil\"cust\\omer\nx", true, 1));
    snapshot.customers.push(customer("ünïcødé kunde", false, 1));
    registry.update(&snapshot);
    registry.observe_tick(Duration::from_secs(30));
    let text = registry.encode();
    let samples = check_exposition(&text);
    assert!(samples > 60, "only {samples} samples");
    assert_lines(
        &text,
        &[r#"synwall_customer_blocked{customer="evil\"cust\\omer\nx"} 1"#],
    );
}

#[test]
fn customer_series_are_bounded_by_top_n() {
    let mut registry = MetricsRegistry::new(50);
    let mut snapshot = known_snapshot();
    // 10,000 customers, most active first, 5 blocked ones at the end.
    snapshot.customers = (0..10_000)
        .map(|i| customer(&format!("c{i}"), i >= 9_995, 10_000 - i))
        .collect();
    registry.update(&snapshot);
    let text = registry.encode();
    check_exposition(&text);
    let names = exported_customers(&text);
    assert_eq!(names.len(), 55);
    for i in 0..50 {
        assert!(
            names.contains(&format!("c{i}")),
            "top customer c{i} missing"
        );
    }
    for i in 9_995..10_000 {
        assert!(
            names.contains(&format!("c{i}")),
            "blocked customer c{i} missing"
        );
    }
    assert_lines(&text, &["synwall_customer_series_omitted 9945"]);
}

#[test]
fn customer_series_have_a_hard_cap() {
    let mut registry = MetricsRegistry::new(1_000_000);
    assert_eq!(registry.top_customers(), MAX_CUSTOMER_SERIES);
    let mut snapshot = known_snapshot();
    // Even when every one of 10,000 is blocked.
    snapshot.customers = (0..10_000)
        .map(|i| customer(&format!("c{i}"), true, i))
        .collect();
    registry.update(&snapshot);
    let text = registry.encode();
    check_exposition(&text);
    assert_eq!(exported_customers(&text).len(), MAX_CUSTOMER_SERIES);
    assert_lines(
        &text,
        &[&format!(
            "synwall_customer_series_omitted {}",
            10_000 - MAX_CUSTOMER_SERIES
        )],
    );
}

fn exported_customers(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("synwall_customer_blocked{customer=\""))
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

// ---- HTTP ----

fn start() -> (MetricsServer, Arc<Mutex<MetricsRegistry>>) {
    let registry = Arc::new(Mutex::new(registry_with_known_snapshot()));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = MetricsServer::start(addr, Arc::clone(&registry)).unwrap();
    assert_ne!(server.local_addr().port(), 0);
    (server, registry)
}

/// Sends `request` raw and returns (status code, head, body).
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, head.to_owned(), body.to_owned())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    exchange(addr, request.as_bytes())
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn scrape_over_http() {
    let (server, registry) = start();
    let (status, head, body) = get(server.local_addr(), "/metrics");
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "Content-Type"), Some(CONTENT_TYPE));
    assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    assert_eq!(
        header(&head, "Content-Length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(body, registry.lock().unwrap().encode());
    check_exposition(&body);
    assert_lines(
        &body,
        &[
            r#"synwall_port_rx_packets_total{port="net_pcap0",link="link0",side="inside"} 100"#,
            r#"synwall_frames_total{outcome="syn_watched"} 7"#,
            r#"synwall_verdicts_total{verdict="forwarded"} 290"#,
            "synwall_blocked_customers 1",
            r#"synwall_block_events_total{kind="block"} 2"#,
            r#"synwall_worker_busy_ratio{lcore="1"} 0.25"#,
            r#"synwall_customer_window_syns{customer="acme",window="5m"} 42"#,
            r#"synwall_customer_limit{customer="acme",window="5m"} 40"#,
            r#"synwall_customer_blocked{customer="acme"} 1"#,
            "synwall_tick_duration_seconds_count 2",
        ],
    );

    // A later update shows in the next scrape; a query string is ignored.
    let mut next = known_snapshot();
    next.syn_seen = 99;
    registry.lock().unwrap().update(&next);
    registry
        .lock()
        .unwrap()
        .observe_tick(Duration::from_millis(1));
    let (status, _, body) = get(server.local_addr(), "/metrics?x=1");
    assert_eq!(status, 200);
    assert_lines(
        &body,
        &[
            "synwall_syns_seen_total 99",
            "synwall_tick_duration_seconds_count 3",
        ],
    );

    // HEAD: the headers only.
    let (status, head, body) = exchange(
        server.local_addr(),
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert_ne!(header(&head, "Content-Length"), Some("0"));
}

#[test]
fn other_paths_methods_and_garbage_are_refused() {
    let (server, _registry) = start();
    let addr = server.local_addr();
    for path in ["/", "/metricsx", "/metrics/", "/favicon.ico"] {
        let (status, _, _) = get(addr, path);
        assert_eq!(status, 404, "{path}");
    }
    let (status, head, _) = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, 405);
    assert_eq!(header(&head, "Allow"), Some("GET, HEAD"));
    let (status, _, _) = exchange(addr, b"\x01\x02 garbage\r\n\r\n");
    assert_eq!(status, 400);
    // An endless header: cut off at the bound with 431.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(&huge); // the server may close before all is sent
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    // And still serves.
    assert_eq!(get(addr, "/metrics").0, 200);
}

#[test]
fn a_silent_client_delays_but_does_not_block_scrapes() {
    let (server, _registry) = start();
    let addr = server.local_addr();
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut trickler = TcpStream::connect(addr).unwrap();
    trickler.write_all(b"GET /metr").unwrap();
    let began = Instant::now();
    let (status, _, _) = get(addr, "/metrics");
    assert_eq!(status, 200);
    // Each of the two ahead of us gets at most the request deadline.
    assert!(began.elapsed() < REQUEST_DEADLINE * 2 + Duration::from_secs(2));
    // The silent client was cut off without an answer.
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(silent.read_to_end(&mut buf).unwrap(), 0);
}

#[test]
fn the_server_stops_on_drop() {
    let (server, _registry) = start();
    let addr = server.local_addr();
    assert_eq!(get(addr, "/metrics").0, 200);
    let began = Instant::now();
    drop(server);
    assert!(began.elapsed() < Duration::from_secs(2));
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    assert!(refused.is_err(), "still listening after drop");
}

#[test]
fn drop_does_not_wait_for_a_silent_client() {
    let (server, _registry) = start();
    let _silent = TcpStream::connect(server.local_addr()).unwrap();
    std::thread::sleep(Duration::from_millis(200)); // let it be accepted
    let began = Instant::now();
    drop(server);
    assert!(began.elapsed() < Duration::from_secs(1));
}

#[test]
fn start_reports_a_busy_address() {
    let (server, registry) = start();
    assert!(MetricsServer::start(server.local_addr(), registry).is_err());
}

// ---- a checker for the text exposition format ----

/// Checks every line of `text` against the text format (0.0.4): comments are
/// `# HELP name text` or `# TYPE name type`; samples are `name{labels} value`
/// with a TYPE line for their family before them and no series twice.
/// Returns the number of samples.
fn check_exposition(text: &str) -> usize {
    assert!(text.ends_with('\n'), "no final newline");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut series = std::collections::BTreeSet::new();
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap();
            let name = parts
                .next()
                .unwrap_or_else(|| panic!("bad comment {line:?}"));
            assert!(is_metric_name(name), "bad name in {line:?}");
            match keyword {
                "HELP" => {}
                "TYPE" => {
                    let ty = parts
                        .next()
                        .unwrap_or_else(|| panic!("no type in {line:?}"));
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                        "bad type in {line:?}"
                    );
                    assert!(
                        types.insert(name.to_owned(), ty.to_owned()).is_none(),
                        "TYPE twice for {name}"
                    );
                }
                _ => panic!("bad comment {line:?}"),
            }
            continue;
        }
        assert!(!line.is_empty(), "empty line");
        let (name, labels, value) = parse_sample(line);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no TYPE before {line:?}");
        assert!(
            series.insert(format!("{name}{{{labels}}}")),
            "duplicate series {line:?}"
        );
        assert!(!value.is_nan(), "{line:?}");
        samples += 1;
    }
    samples
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Splits a sample line into name, label text and value, checking the
/// label syntax (`key="escaped value"`, comma separated) on the way.
fn parse_sample(line: &str) -> (&str, &str, f64) {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..name_end];
    assert!(is_metric_name(name), "bad name in {line:?}");
    let mut rest = &line[name_end..];
    let mut labels = "";
    if let Some(after) = rest.strip_prefix('{') {
        let bytes = after.as_bytes();
        let mut i = 0;
        loop {
            let key_end = after[i..]
                .find('=')
                .map(|k| i + k)
                .unwrap_or_else(|| panic!("{line:?}"));
            let key = &after[i..key_end];
            assert!(
                is_metric_name(key) && !key.contains(':'),
                "bad label name {key:?} in {line:?}"
            );
            assert_eq!(bytes.get(key_end + 1), Some(&b'"'), "{line:?}");
            i = key_end + 2;
            loop {
                match bytes.get(i) {
                    Some(b'\\') => {
                        assert!(
                            matches!(bytes.get(i + 1), Some(b'\\' | b'"' | b'n')),
                            "bad escape in {line:?}"
                        );
                        i += 2;
                    }
                    Some(b'"') => break,
                    Some(_) => i += 1,
                    None => panic!("unterminated label value in {line:?}"),
                }
            }
            i += 1;
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => break,
                _ => panic!("bad label list in {line:?}"),
            }
        }
        labels = &after[..i];
        rest = &after[i + 1..];
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before value in {line:?}"));
    assert!(
        !value.contains(' '),
        "timestamps are not expected: {line:?}"
    );
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    (name, labels, value)
}

fn sample_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series}"))
        .parse()
        .unwrap()
}
