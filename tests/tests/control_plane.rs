//! The control plane end to end, with the real binary on `net_pcap`:
//! exact enforcement of a burst far faster than the tick (one worker and
//! two), monitor and exempt customers, a closed port (`limit = 0`), and
//! limit resolution (override over plan over window default).
//!
//! Every capture is replayed at full speed: the whole burst reaches the
//! worker long before the control plane's second tick, so only the per-core
//! grants can hold it to the limit.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_tests::*;

const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

/// Windows with a 5-minute default limit of 100 and longer windows that
/// never bind in these tests.
const WINDOWS: &str = "[windows]\n\"5m\" = 100\n\"1h\" = 100000\n\"1d\" = 100000";

/// The `i`-th SYN to port 25 from the /16 `10.<net>.0.0`: distinct source
/// address and port for every `i` < 60,000.
fn syn_from(net: u8, i: u32) -> Vec<u8> {
    let src = Ipv4Addr::new(10, net, (i / 250) as u8, (i % 250) as u8 + 1);
    FrameBuilder::tcp_v4(src, MX, 1024 + (i % 60_000) as u16, 25, SYN)
        .seq(i.wrapping_mul(2_654_435_761))
        .build()
}

/// `n` SYNs from 10.<net>.0.0/16.
fn syns(net: u8, n: u32) -> Vec<Vec<u8>> {
    (0..n).map(|i| syn_from(net, i)).collect()
}

fn customer(name: &str, net: u8, extra: &str) -> String {
    format!("[[customer]]\nname = \"{name}\"\nprefixes = [\"10.{net}.0.0/16\"]\n{extra}\n")
}

/// How many of `frames` are in `set`; fails on a frame forwarded twice.
fn count_in(frames: &[Vec<u8>], set: &HashSet<Vec<u8>>) -> usize {
    let mut seen = HashSet::new();
    frames
        .iter()
        .filter(|f| set.contains(*f))
        .inspect(|f| assert!(seen.insert((*f).clone()), "frame forwarded twice"))
        .count()
}

/// The one `block` event of `customer`, checked against window and limit.
#[track_caller]
fn assert_one_block(run: &RunResult, customer: &str, window: &str, count: u64, limit: u64) {
    let blocks = run.events_of("block", Some(customer));
    assert_eq!(blocks.len(), 1, "block events of {customer}: {blocks:?}");
    let b = &blocks[0];
    assert_eq!(b["window"], window, "{b}");
    assert_eq!(b["count"], count, "{b}");
    assert_eq!(b["limit"], limit, "{b}");
    assert!(b["until"].is_string(), "a limit block has an end: {b}");
    assert!(b["ts"].is_string(), "{b}");
}

/// The run's verdicts (`[rx, forwarded, dropped_blocked]`, nothing else),
/// its counters consistent with each other, and `customer`'s one block
/// ([`assert_one_block`]).
#[track_caller]
fn assert_blocked_once(
    run: &RunResult,
    [rx, forwarded, dropped_blocked]: [u64; 3],
    customer: &str,
    window: &str,
    count: u64,
    limit: u64,
) {
    run.assert_verdicts(&Verdicts {
        rx,
        forwarded,
        dropped_blocked,
        ..Verdicts::default()
    });
    run.assert_consistent();
    assert_one_block(run, customer, window, count, limit);
}

/// A capture: its frames in order.
type Frames = Vec<Vec<u8>>;

/// The burst and a quiet customer interleaved: every 250th frame is one of
/// `calm`'s 40 SYNs. Returns (frames, burst set, calm frames).
fn burst_mix(burst: u32) -> (Frames, HashSet<Vec<u8>>, Frames) {
    let burst_frames = syns(1, burst);
    let calm = syns(2, 40);
    let mut frames = Vec::new();
    let mut calm_iter = calm.iter();
    for (i, f) in burst_frames.iter().enumerate() {
        if i % 250 == 0 {
            if let Some(c) = calm_iter.next() {
                frames.push(c.clone());
            }
        }
        frames.push(f.clone());
    }
    frames.extend(calm_iter.cloned());
    (frames, burst_frames.into_iter().collect(), calm)
}

const BURST_CUSTOMERS: &str = "[[customer]]\nname = \"burst\"\nprefixes = [\"10.1.0.0/16\"]\n\n\
     [[customer]]\nname = \"calm\"\nprefixes = [\"10.2.0.0/16\"]\n";

#[test]
fn burst_of_10000_syns_forwards_exactly_the_limit() {
    let (frames, burst_set, calm) = burst_mix(10_000);
    let run = Scenario::new(frames.clone(), Vec::new())
        .sections(WINDOWS)
        .customers(BURST_CUSTOMERS)
        .run("burst");

    // One worker, one grant of 100 before the first frame, never refilled
    // (the 5m window is full): exactly the first 100 of the burst go out,
    // in order, byte for byte, and all of calm's.
    let burst_frames = syns(1, 10_000);
    let first: HashSet<&Vec<u8>> = burst_frames[..100].iter().collect();
    let calm_set: HashSet<&Vec<u8>> = calm.iter().collect();
    let want: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| first.contains(f) || calm_set.contains(f))
        .cloned()
        .collect();
    assert_eq!(count_in(&run.out_frames(), &burst_set), 100);
    assert_frames_eq(&run.out_frames(), &want, "outside tx");

    run.assert_customers(&[("burst", 10_000, 100, 9_900), ("calm", 40, 40, 0)]);
    assert_eq!(run.customer_state("burst").as_deref(), Some("blocked"));
    assert_eq!(run.customer_state("calm").as_deref(), Some("open"));
    assert_eq!(run.window_count("burst", "5m"), 100);
    assert_eq!(run.window_count("burst", "1h"), 100);
    assert_eq!(run.window_count("calm", "5m"), 40);
    assert_blocked_once(&run, [10_040, 140, 9_900], "burst", "5m", 100, 100);
    // calm stayed far below 80% of its limit: no event about it at all.
    let about_calm: Vec<_> = run
        .events()
        .into_iter()
        .filter(|e| e["customer"] == "calm")
        .collect();
    assert!(about_calm.is_empty(), "{about_calm:?}");
}

#[test]
fn burst_split_over_two_workers_forwards_exactly_the_limit() {
    let (frames, burst_set, calm) = burst_mix(10_000);
    // Two rx queues, alternating frames: each worker sees 5,000 of the
    // burst and 20 of calm's SYNs.
    let q0: Vec<Vec<u8>> = frames.iter().step_by(2).cloned().collect();
    let q1: Vec<Vec<u8>> = frames.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(count_in(&q0, &burst_set), 5_000);
    let mut scenario = Scenario::new(Vec::new(), Vec::new())
        .sections(WINDOWS)
        .customers(BURST_CUSTOMERS);
    scenario.inside = vec![q0.clone(), q1.clone()];
    scenario.outside = vec![Vec::new(), Vec::new()];
    scenario.cores = vec![1, 2];
    if cpus() < 3 {
        scenario.extra_eal = vec!["--lcores=0@0,1@1,2@1".to_owned()];
    }
    let run = scenario.run("burst-2w");

    assert_eq!(
        count_in(&run.out_frames(), &burst_set),
        100,
        "burst SYNs forwarded over both workers"
    );
    // Every worker forwards only frames of its own queue, in queue order,
    // and all of calm's.
    for (w, q) in [&q0, &q1].into_iter().enumerate() {
        let out = &run.out[w];
        let sent: Vec<&Vec<u8>> = q.iter().collect();
        let mut at = 0;
        for f in out {
            let pos = sent[at..].iter().position(|s| *s == f).unwrap_or_else(|| {
                panic!(
                    "worker {w} sent a frame not of its queue, or out of order: {}",
                    hex(f)
                )
            });
            at += pos + 1;
        }
    }
    let calm_out: Vec<Vec<u8>> = run
        .out_frames()
        .into_iter()
        .filter(|f| calm.contains(f))
        .collect();
    assert_frames_eq_unordered(&calm_out, &calm, "calm's SYNs");
    assert_eq!(run.out_frames().len(), 140);

    run.assert_customers(&[("burst", 10_000, 100, 9_900), ("calm", 40, 40, 0)]);
    assert_eq!(run.customer_state("burst").as_deref(), Some("blocked"));
    assert_eq!(run.window_count("burst", "5m"), 100);
    let workers = run.summary["workers"].as_array().expect("workers");
    assert_eq!(workers[0]["syn_watched"], 5_020);
    assert_eq!(workers[1]["syn_watched"], 5_020);
    assert_blocked_once(&run, [10_040, 140, 9_900], "burst", "5m", 100, 100);
}

#[test]
fn monitor_customer_loses_nothing_and_would_block_is_reported() {
    let watched = syns(3, 250);
    let enforced = syns(4, 250);
    let mut frames = Vec::new();
    for (a, b) in watched.iter().zip(&enforced) {
        frames.push(a.clone());
        frames.push(b.clone());
    }
    let run = Scenario::new(frames.clone(), Vec::new())
        .sections(WINDOWS)
        .customers(&customer("watched", 3, "mode = \"monitor\""))
        .customers(&customer("enforced", 4, ""))
        .run("monitor");

    // watched: everything forwarded, byte for byte, in order; enforced (the
    // control in the same capture): the first 100.
    let first: HashSet<&Vec<u8>> = enforced[..100].iter().collect();
    let want: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| watched.contains(f) || first.contains(f))
        .cloned()
        .collect();
    assert_frames_eq(&run.out_frames(), &want, "outside tx");
    run.assert_customers(&[("watched", 250, 250, 0), ("enforced", 250, 100, 150)]);
    assert_eq!(run.customer_state("watched").as_deref(), Some("open"));
    assert_eq!(run.customer_state("enforced").as_deref(), Some("blocked"));
    // A monitor customer's windows count what it sent: it would be over.
    assert_eq!(run.window_count("watched", "5m"), 250);
    run.assert_consistent();

    let would = run.events_of("would_block", Some("watched"));
    assert_eq!(would.len(), 1, "one would_block per crossing: {would:?}");
    assert_eq!(would[0]["window"], "5m");
    assert_eq!(would[0]["limit"], 100);
    let count = would[0]["count"].as_u64().expect("count");
    assert!((101..=250).contains(&count), "{}", would[0]);
    assert!(run.events_of("block", Some("watched")).is_empty());
    assert!(run.events_of("would_block", Some("enforced")).is_empty());
    assert_one_block(&run, "enforced", "5m", 100, 100);
}

#[test]
fn global_monitor_mode_applies_to_customers_without_a_mode() {
    let frames = syns(3, 300);
    let run = Scenario::new(frames.clone(), Vec::new())
        .sections(WINDOWS)
        .control("mode = \"monitor\"")
        .customers(&customer("watched", 3, ""))
        .customers(&customer("strict", 4, "mode = \"enforce\""))
        .run("monitor-global");
    assert_frames_eq(&run.out_frames(), &frames, "outside tx");
    run.assert_customers(&[("watched", 300, 300, 0)]);
    assert_eq!(run.events_of("would_block", Some("watched")).len(), 1);
    assert!(run.events_of("block", Some("watched")).is_empty());
    run.assert_consistent();
}

#[test]
fn exempt_customer_loses_nothing_and_raises_no_events() {
    let frames = syns(5, 1_000);
    let run = Scenario::new(frames.clone(), Vec::new())
        .sections(WINDOWS)
        .customers(&customer("vip", 5, "mode = \"exempt\""))
        .run("exempt");
    assert_frames_eq(&run.out_frames(), &frames, "outside tx");
    run.assert_customers(&[("vip", 1_000, 1_000, 0)]);
    assert_eq!(run.customer_state("vip").as_deref(), Some("open"));
    run.assert_verdicts(&Verdicts {
        rx: 1_000,
        forwarded: 1_000,
        ..Verdicts::default()
    });
    run.assert_consistent();
    let events = run.events();
    assert!(
        events.is_empty(),
        "events for an exempt customer: {events:?}"
    );
}

#[test]
fn limit_zero_closes_port_25_only() {
    let closed = Ipv4Addr::new(10, 6, 0, 9);
    let frames = vec![
        // 0: the first SYN to 25: dropped (no grant at all).
        syn_from(6, 0),
        // 1: HTTPS SYN: not watched, forwarded.
        FrameBuilder::tcp_v4(closed, MX, 40_000, 443, SYN).build(),
        // 2: DNS: forwarded.
        FrameBuilder::udp_v4(closed, MX, 5353, 53)
            .payload(b"query")
            .build(),
        // 3..: more SYNs to 25: dropped.
        syn_from(6, 1),
        syn_from(6, 2),
        // 5: an open customer's SYN: forwarded.
        syn_from(7, 0),
        // 6: submission port, not watched by default: forwarded.
        FrameBuilder::tcp_v4(closed, MX, 40_001, 587, SYN).build(),
    ];
    let run = Scenario::new(frames.clone(), Vec::new())
        .sections(WINDOWS)
        .customers(&customer("closed", 6, "limits = { \"5m\" = 0 }"))
        .customers(&customer("open", 7, ""))
        .run("limit-zero");
    assert_frames_eq(
        &run.out_frames(),
        &pick(&frames, &[1, 2, 5, 6]),
        "outside tx",
    );
    run.assert_customers(&[("closed", 3, 0, 3), ("open", 1, 1, 0)]);
    assert_eq!(run.customer_state("closed").as_deref(), Some("blocked"));
    assert_eq!(run.window_count("closed", "5m"), 0);
    assert_blocked_once(&run, [7, 4, 3], "closed", "5m", 0, 0);
}

#[test]
fn override_beats_plan_beats_window_default() {
    let plans = "[plans.small]\n\"5m\" = 50\n\n[plans.big]\n\"1h\" = 5";
    // Each customer sends 300 SYNs; limits: override 20 (over plan 50),
    // plan 50, window default 100, and plan "big" that sets only 1h = 5
    // (its 5m falls back to the default 100, the 1h limit binds).
    let names = ["overridden", "planned", "default", "hourly"];
    let mut frames = Vec::new();
    for i in 0..300 {
        for net in 0..names.len() as u8 {
            frames.push(syn_from(10 + net, i));
        }
    }
    let run = Scenario::new(frames, Vec::new())
        .sections(&format!("{WINDOWS}\n\n{plans}"))
        .customers(&customer(
            "overridden",
            10,
            "plan = \"small\"\nlimits = { \"5m\" = 20 }",
        ))
        .customers(&customer("planned", 11, "plan = \"small\""))
        .customers(&customer("default", 12, ""))
        .customers(&customer("hourly", 13, "plan = \"big\""))
        .run("plans");
    let limits = [20u64, 50, 100, 5];
    let sets: Vec<HashSet<Vec<u8>>> = (0..names.len() as u8)
        .map(|net| syns(10 + net, 300).into_iter().collect())
        .collect();
    for ((name, limit), set) in names.iter().zip(limits).zip(&sets) {
        assert_eq!(
            count_in(&run.out_frames(), set) as u64,
            limit,
            "{name}'s SYNs forwarded"
        );
        assert_eq!(
            run.customer_state(name).as_deref(),
            Some("blocked"),
            "{name}"
        );
    }
    run.assert_customers(&[
        ("overridden", 300, 20, 280),
        ("planned", 300, 50, 250),
        ("default", 300, 100, 200),
        ("hourly", 300, 5, 295),
    ]);
    run.assert_consistent();
    assert_one_block(&run, "overridden", "5m", 20, 20);
    assert_one_block(&run, "planned", "5m", 50, 50);
    assert_one_block(&run, "default", "5m", 100, 100);
    assert_one_block(&run, "hourly", "1h", 5, 5);
}
