//! Faults around the appliance, with the real binary: an unusable state
//! directory (the disk full, read-only, or not a directory) must not stop
//! forwarding or enforcement; synwall reports the failed snapshots and
//! keeps retrying, and the limits still hold exactly.

use std::fs;
use std::net::Ipv4Addr;

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_tests::*;

const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

fn syns(net: u8, n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let src = Ipv4Addr::new(10, net, (i / 250) as u8, (i % 250) as u8 + 1);
            FrameBuilder::tcp_v4(src, MX, 1024 + i as u16, 25, SYN).build()
        })
        .collect()
}

#[test]
fn an_unusable_state_dir_is_reported_and_enforcement_goes_on() {
    let dir = TestDir::new("faults-state-dir");
    // `state` is a file, so neither reading nor writing snapshots can work
    // (this holds for root too, unlike permission bits).
    fs::write(dir.join("state"), b"not a directory").unwrap();
    let mut frames = syns(1, 500);
    frames.extend(syns(2, 20));
    let scenario = Scenario::new(frames, Vec::new())
        .sections("[windows]\n\"5m\" = 100\n\"1h\" = 100000\n\"1d\" = 100000")
        .control("snapshot_interval = \"200ms\"\ntick = \"50ms\"")
        .customers(
            "[[customer]]\nname = \"spammer\"\nprefixes = [\"10.1.0.0/16\"]\n\n\
             [[customer]]\nname = \"quiet\"\nprefixes = [\"10.2.0.0/16\"]\n",
        );

    // Without --fresh-state the unreadable snapshot location stops the
    // start, naming it.
    let refused = scenario.run_in(dir);
    assert!(
        !refused.exit.status.success(),
        "started with an unreadable state dir"
    );
    assert!(
        refused.exit.stderr.contains("snapshot") && refused.exit.stderr.contains("--fresh-state"),
        "stderr: {}",
        refused.exit.stderr
    );

    // With it, synwall runs: every snapshot fails and is reported, and the
    // limit is enforced exactly as ever.
    let run = scenario.run_with(refused.dir, &["--fresh-state"]);
    assert!(
        run.exit.status.success(),
        "synwall failed: {}",
        run.exit.stderr
    );
    let failures = run
        .exit
        .stderr
        .lines()
        .filter(|l| l.contains("snapshot") && l.contains("will retry"))
        .count();
    assert!(
        failures >= 2,
        "snapshots should fail, be reported and retried:\n{}",
        run.exit.stderr
    );
    run.assert_customers(&[("spammer", 500, 100, 400), ("quiet", 20, 20, 0)]);
    assert_eq!(run.customer_state("spammer").as_deref(), Some("blocked"));
    assert_eq!(run.events_of("block", Some("spammer")).len(), 1);
    run.assert_consistent();
}

/// Established traffic from `10.net.x.y` to the web: forwarded untouched.
fn background(net: u8, n: u32) -> Vec<Vec<u8>> {
    use synwall_dataplane::parse::tcp_flags::{ACK, PSH};
    (0..n)
        .map(|i| {
            let src = Ipv4Addr::new(10, net, (i / 250) as u8, (i % 250) as u8 + 1);
            FrameBuilder::tcp_v4(src, MX, 2048 + i as u16, 443, ACK | PSH).build()
        })
        .collect()
}

const SPAMMER: &str = "[[customer]]\nname = \"spammer\"\nprefixes = [\"10.1.0.0/16\"]\n\n\
     [[customer]]\nname = \"web\"\nprefixes = [\"10.3.0.0/16\"]\n";
const WINDOWS: &str = "[windows]\n\"5m\" = 100\n\"1h\" = 100000\n\"1d\" = 100000";

/// A pool too small for one rx burst: net_pcap runs out of mbufs on
/// almost every burst. The frames it could not receive are counted per
/// port as `rx_nombuf`, everything received is judged and forwarded as
/// ever, the limit still holds, and no mbuf is lost.
#[test]
fn mempool_exhaustion_is_counted_not_fatal() {
    // Interleaved so that SYNs and background both meet empty bursts.
    let mut frames = Vec::new();
    for (s, b) in syns(1, 400).into_iter().zip(background(3, 400)) {
        frames.push(s);
        frames.push(b);
    }
    let sent = frames.len() as u64;
    let run = Scenario::new(frames, Vec::new())
        .dpdk("mbufs = 15")
        .sections(WINDOWS)
        .customers(SPAMMER)
        .run("faults-mempool");
    assert!(
        run.exit.stderr.contains("dpdk.mbufs = 15 is below"),
        "no warning about the small pool:\n{}",
        run.exit.stderr
    );
    run.assert_consistent();
    let inside = run.port("inside");
    assert!(
        inside.rx_nombuf > 0,
        "a 15-mbuf pool never ran out: {inside:?}"
    );
    assert_eq!(
        inside.rx + inside.rx_nombuf,
        sent,
        "every frame is either received or counted as rx_nombuf"
    );
    assert_eq!(run.counter("/mempool/size"), 15);
    let spammer = run
        .customers()
        .into_iter()
        .find(|c| c.name == "spammer")
        .expect("spammer counted");
    assert_eq!(spammer.forwarded, spammer.seen.min(100), "{spammer:?}");
    let out: u64 = run.out_frames().len() as u64;
    assert_eq!(out, run.verdict("forwarded"));
}

/// An outside port that takes nothing (a memif server no client ever
/// connects to: its tx burst returns 0): every frame for it is freed and
/// counted as `tx_full`; synwall runs on, judges and enforces as ever, and
/// no mbuf is lost.
#[test]
fn a_full_tx_queue_is_counted_not_fatal() {
    let dir = TestDir::new("faults-tx-full");
    let socket = dir.join("memif.sock");
    let mut frames = syns(1, 300);
    frames.extend(background(3, 500));
    let run = Scenario::new(frames, Vec::new())
        .outside_device(&format!(
            "net_memif0,role=server,socket={},socket-abstract=no",
            socket.display()
        ))
        .sections(WINDOWS)
        .customers(SPAMMER)
        .run_in(dir);
    assert!(
        run.exit.status.success(),
        "synwall failed: {}",
        run.exit.stderr
    );
    let v = verdicts_of(&run.summary["verdicts"]);
    assert_eq!(v.rx, 800);
    assert_eq!(v.forwarded, 500 + 100, "{v:?}");
    assert_eq!(v.dropped_blocked, 200, "{v:?}");
    assert_eq!(
        v.tx_full, v.forwarded,
        "every forwarded frame met a full ring: {v:?}"
    );
    assert_eq!(run.port("outside").tx, 0);
    assert_eq!(
        run.counter("/mempool/in_use"),
        run.counter("/mempool/in_use_at_start"),
        "mbufs leaked"
    );
    run.assert_customers(&[("spammer", 300, 100, 200)]);
}

/// net_pcap in `infinite_rx` mode keeps every frame of its capture in the
/// packet pool; a capture larger than the default pool (8191 mbufs for
/// one link, one queue, one worker) is refused at rx queue setup with a
/// bare EINVAL. synwall's error says why and names `dpdk.mbufs`, and the
/// size it suggests is enough.
#[test]
fn a_replayed_capture_larger_than_the_pool_names_dpdk_mbufs() {
    let frames = syns(1, 8192);
    let scenario = Scenario::new(frames, Vec::new())
        .customers("[[customer]]\nname = \"spammer\"\nprefixes = [\"10.1.0.0/16\"]\n")
        .forever();
    let dir = TestDir::new("faults-replay-pool");
    let (path, _) = scenario.prepare(&dir);
    let config = scenario.config(&dir);
    let path = path.to_str().expect("utf-8 path");
    let exit = run_synwall(&dir, &["--config", path, "--duration", "1"]);
    assert!(!exit.status.success(), "started: {}", exit.stdout);
    let err = &exit.stderr;
    assert!(
        err.contains("rte_eth_rx_queue_setup(net_pcap0, rxq0) failed")
            && err.contains("infinite_rx")
            && err.contains("in0.pcap holds 8192 frames")
            && err.contains("dpdk.mbufs"),
        "stderr: {err}"
    );
    // The suggested size starts.
    let suggested: u32 = err
        .split("e.g. dpdk.mbufs = ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no suggested dpdk.mbufs in: {err}"));
    let bigger = config.replacen("[dpdk]\n", &format!("[dpdk]\nmbufs = {suggested}\n"), 1);
    write_config(&dir, "synwall.toml", &bigger);
    let exit = run_synwall(&dir, &["--config", path, "--duration", "1"]);
    assert!(
        exit.status.success(),
        "with dpdk.mbufs = {suggested}: {}",
        exit.stderr
    );
}
