//! `dpdk-dumpcap` on a running appliance (docs/operating.md): it attaches
//! as a DPDK secondary process and captures through the ports' Rx and Tx
//! callbacks, which `rte_eth_rx_burst`/`rte_eth_tx_burst` call in the
//! worker. On the inside port it sees every frame that arrives, on the
//! outside port only what was forwarded: never a blocked customer's SYN.
//!
//! Needs root and free 2 MB hugepages (a secondary process cannot attach
//! to a `--no-huge` primary): `scripts/test` reserves them; run as root
//! without them, the test fails saying so (`scripts/hugepages 256`).

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use synwall_dataplane::craft::{arp_request, FrameBuilder};
use synwall_dataplane::parse::tcp_flags::{ACK, PSH, SYN};
use synwall_dataplane::pcap::read_pcap;
use synwall_tests::fixtures::*;
use synwall_tests::*;

/// Frames each capture stops after.
const CAPTURED: usize = 64;

/// 2 MB pages the appliance (`-m 128`) and dumpcap's own pool need.
const PAGES_NEEDED: u64 = 128;

fn free_hugepages() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `dpdk-dumpcap` in `dir` on `port` of the appliance with EAL
/// prefix `prefix` until it has `CAPTURED` frames (classic pcap in `out`).
fn dumpcap(prefix: &str, port: &str, dir: &Path, out: &Path) -> Output {
    let started = Instant::now();
    let output = Command::new("timeout")
        .args(["-s", "KILL", "30", "dpdk-dumpcap", "-q", "-P"])
        .arg(format!("--file-prefix={prefix}"))
        .args(["-i", port, "-c", &CAPTURED.to_string(), "-w"])
        .arg(out)
        .current_dir(dir)
        .output()
        .expect("running dpdk-dumpcap (scripts/setup installs dpdk-dev)");
    assert!(
        output.status.success(),
        "dpdk-dumpcap -i {port} failed after {:?} ({:?})\nstdout:\n{}\nstderr:\n{}",
        started.elapsed(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `seen` holds every frame of `want` (at least once) and no other; a
/// stray frame that is `blocked_syn` says so.
fn assert_same_frames(seen: &[Vec<u8>], want: &[Vec<u8>], what: &str, blocked_syn: &[u8]) {
    let wanted: HashSet<&[u8]> = want.iter().map(Vec::as_slice).collect();
    for f in seen {
        assert!(
            wanted.contains(f.as_slice()),
            "{what} holds a frame it should not{}: {}",
            if f == blocked_syn {
                " (the blocked SYN)"
            } else {
                ""
            },
            hex(f)
        );
    }
    for f in want {
        assert!(seen.contains(f), "{what} lacks a frame: {}", hex(f));
    }
}

#[test]
fn dumpcap_sees_every_frame_inside_and_only_the_forwarded_outside() {
    if !is_root() {
        eprintln!("skipping the capture test: not root (hugepages and DPDK's shared memory)");
        return;
    }
    let free = free_hugepages();
    assert!(
        free >= PAGES_NEEDED,
        "the capture test needs {PAGES_NEEDED} free 2 MB hugepages, the machine has {free}: \
         run scripts/hugepages 256 (scripts/test does)"
    );

    let blocked_syn = FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
        .seq(1)
        .build();
    let forwarded = vec![
        FrameBuilder::tcp_v4(BETA, MX, 40001, 25, SYN)
            .seq(2)
            .build(),
        FrameBuilder::tcp_v4(ACME, MX, 40002, 443, SYN).build(),
        FrameBuilder::tcp_v4(ACME, MX, 40003, 25, ACK | PSH)
            .seq(100)
            .ack(200)
            .payload(b"EHLO acme.example\r\n")
            .build(),
        FrameBuilder::udp_v4(BETA, MX, 5353, 53)
            .payload(b"query")
            .build(),
        arp_request(ACME, std::net::Ipv4Addr::new(198, 51, 100, 1)),
    ];
    let mut inside = vec![blocked_syn.clone()];
    inside.extend(forwarded.iter().cloned());

    // The inside capture replayed without end, to the outside's net_null:
    // frames flow while dumpcap attaches, whenever that is. On shared
    // hugepages, the captures named relative to the run's directory
    // (`Memory::Shared`), where dumpcap starts too.
    let mut scenario = Scenario::new(inside.clone(), Vec::new())
        .customers(&acme_blocked_beta_open())
        // beta sends millions of SYNs while the captures run: no limit
        // of the defaults' size may block it.
        .sections("[windows]\n\"5m\" = 1000000000000")
        .outside_device("net_null0,no-rx=1")
        .forever()
        .shared_memory(128);
    scenario.duration = 60.0;
    let dir = TestDir::new("capture");
    let prefix = dir.unique.clone();
    let mut run = scenario.spawn(dir, &[]);
    run.wait_forwarding(Duration::from_secs(20));
    let in_cap = run.dir().join("in.pcap");
    let out_cap = run.dir().join("out.pcap");
    dumpcap(&prefix, "net_pcap0", &run.dir().path, &in_cap);
    dumpcap(&prefix, "net_null0", &run.dir().path, &out_cap);
    run.signal("TERM");
    let result = run.wait(Duration::from_secs(20));
    let summary = result.summary;

    let seen_inside = read_pcap(&in_cap).expect("reading the inside capture");
    let seen_outside = read_pcap(&out_cap).expect("reading the outside capture");
    assert_eq!(seen_inside.len(), CAPTURED, "inside capture");
    assert_eq!(seen_outside.len(), CAPTURED, "outside capture");

    // Inside: every frame as it arrived, the blocked SYN among them (the
    // capture replays six frames in order, so 64 hold each of them).
    assert_same_frames(&seen_inside, &inside, "inside capture", &blocked_syn);
    // Outside: every forwarded frame and nothing else: never the blocked
    // customer's SYN.
    assert_same_frames(&seen_outside, &forwarded, "outside capture", &blocked_syn);
    let blocked = summary["verdicts"]["dropped_blocked"].as_u64().unwrap_or(0);
    assert!(
        blocked > 0,
        "the blocked SYN was dropped while the captures ran: {summary}"
    );
}
