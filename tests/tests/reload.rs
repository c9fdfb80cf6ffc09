//! Hot reload (SIGHUP) of the running binary.
//!
//! `net_pcap` replays its capture once, right at start, so traffic cannot be
//! injected between two reloads of one run. These tests therefore observe a
//! reload through the state it must carry: a `monitor` customer's window
//! count taken before the reload meets its new (lower) limit after it, which
//! raises a `would_block` event with the old count and the new limit; and a
//! customer added by the reload with `blocked = true` is blocked by the
//! running appliance. Bad reloads (syntax, bad CIDR, changes that need a
//! restart) are rejected with a `reload` event and change nothing.

use std::fs;
use std::net::Ipv4Addr;
use std::time::Duration;

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_tests::fixtures::customer;
use synwall_tests::*;

const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

/// Generous: the machine may be loaded (2 CPUs, tests in parallel).
const WAIT: Duration = Duration::from_secs(30);

/// A near-limit mark at half the limit gives a synchronisation point: the
/// control plane has counted (at least 50 of) A's SYNs.
const SECTIONS: &str =
    "[windows]\n\"5m\" = 100\n\"1h\" = 100000\n\"1d\" = 100000\n\n[detect]\nnear_limit = 0.5";

/// A, in monitor mode so that a limit below its count is reported, never
/// enforced; C, which the good reload removes.
fn customers_before() -> String {
    customer("alpha", &["10.1.0.0/16"], "mode = \"monitor\"")
        + &customer("gamma", &["10.9.0.0/16"], "")
}

/// A's limit lowered to 50, C removed, B added with a standing block.
fn customers_after() -> String {
    customer(
        "alpha",
        &["10.1.0.0/16"],
        "mode = \"monitor\"\nlimits = { \"5m\" = 50 }",
    ) + &customer("beta", &["10.3.0.0/16"], "blocked = true")
}

fn syns(net: u8, n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let src = Ipv4Addr::new(10, net, (i / 250) as u8, (i % 250) as u8 + 1);
            FrameBuilder::tcp_v4(src, MX, 2000 + i as u16, 25, SYN)
                .seq(i * 7919)
                .build()
        })
        .collect()
}

/// The scenario with `customers`, running until stopped by a signal.
fn scenario(frames: &[Vec<u8>], customers: &str) -> Scenario {
    let mut s = Scenario::new(frames.to_vec(), Vec::new())
        .sections(SECTIONS)
        .control("snapshot_interval = \"200ms\"")
        .customers(customers);
    s.duration = 120.0;
    s
}

/// Alpha's 60 SYNs, and the scenario with them before any reload.
fn before_reload() -> (Vec<Vec<u8>>, Scenario) {
    let frames = syns(1, 60);
    let before = scenario(&frames, &customers_before());
    (frames, before)
}

/// `before` running in `dir`, once alpha's 60 SYNs are counted.
#[track_caller]
fn spawn_counted(before: &Scenario, dir: TestDir) -> Running<'_> {
    let mut running = before.spawn(dir, &[]);
    wait_counted(&mut running, 60);
    running
}

/// Rewrites the running config with `text`, sends SIGHUP, and waits for the
/// `reload` event number `n` (1-based); returns its reason.
#[track_caller]
fn reload(running: &mut Running<'_>, text: &str, n: usize) -> String {
    fs::write(&running.config, text).expect("rewriting the config");
    running.signal("HUP");
    let ev = running.wait_for(&format!("reload event #{n}"), WAIT, |r| {
        r.events()
            .into_iter()
            .filter(|e| e["kind"] == "reload")
            .nth(n - 1)
    });
    assert!(ev["ts"].is_string(), "{ev}");
    assert!(ev.get("customer").is_none(), "{ev}");
    ev["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("reload event without a reason: {ev}"))
        .to_owned()
}

/// Waits until the control plane has counted all `n` of alpha's SYNs (the
/// capture is consumed at start; the periodic snapshot shows the count).
#[track_caller]
fn wait_counted(running: &mut Running<'_>, n: u64) {
    let path = running.dir().join("state").join("state.json");
    running.wait_for(&format!("a snapshot with alpha's {n} SYNs"), WAIT, |_| {
        let snap: Value = serde_json::from_str(&fs::read_to_string(&path).ok()?).ok()?;
        snap["customers"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "alpha" && c["seen"] == n)
            .map(|_| ())
    });
}

#[test]
fn reload_adds_and_removes_customers_and_changes_limits_keeping_counts() {
    let (frames, before) = before_reload();
    let mut running = before.spawn(TestDir::new("reload"), &[]);
    let near = running.wait_for_event("alpha's near_limit event", WAIT, |e| {
        e["kind"] == "near_limit" && e["customer"] == "alpha"
    });
    assert_eq!(near["limit"], 100, "{near}");
    wait_counted(&mut running, 60);

    let after = scenario(&frames, &customers_after()).config(running.dir());
    let reason = reload(&mut running, &after, 1);
    assert!(!reason.starts_with("rejected"), "{reason}");
    assert!(
        reason.contains("2 customers (1 added, 1 removed)"),
        "reload reason: {reason}"
    );
    // The count from before the reload meets the limit from after it.
    let would = running.wait_for_event("alpha's would_block after the reload", WAIT, |e| {
        e["kind"] == "would_block" && e["customer"] == "alpha"
    });
    assert_eq!(would["window"], "5m", "{would}");
    assert_eq!(
        would["count"], 60,
        "count lost or changed by the reload: {would}"
    );
    assert_eq!(would["limit"], 50, "new limit not in force: {would}");
    // beta, added by the reload, is blocked by the running appliance.
    let block = running.wait_for_event("beta's standing block", WAIT, |e| {
        e["kind"] == "block" && e["customer"] == "beta"
    });
    assert!(
        block["until"].is_null(),
        "a standing block is indefinite: {block}"
    );

    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    assert_frames_eq(&run.out_frames(), &frames, "outside tx");
    run.assert_customers(&[("alpha", 60, 60, 0)]);
    assert_eq!(run.customer_state("alpha").as_deref(), Some("open"));
    assert_eq!(run.window_count("alpha", "5m"), 60);
    assert_eq!(run.customer_state("beta").as_deref(), Some("blocked"));
    assert!(
        run.customer_state("gamma").is_none(),
        "removed customer still listed"
    );
    run.assert_consistent();
    // Exactly one reload, one would_block; no block for alpha (monitor).
    assert_eq!(run.events_of("reload", None).len(), 1);
    assert_eq!(run.events_of("would_block", Some("alpha")).len(), 1);
    assert!(run.events_of("block", Some("alpha")).is_empty());
}

#[test]
fn bad_reloads_are_rejected_and_the_running_config_stays() {
    let (frames, before) = before_reload();
    let mut running = spawn_counted(&before, TestDir::new("reload-bad"));
    let good = before.config(running.dir());

    // 1. A bad CIDR in an otherwise good config.
    let bad_cidr = scenario(
        &frames,
        &customers_after().replace("10.3.0.0/16", "10.3.0.0/33"),
    )
    .config(running.dir());
    let why = reload(&mut running, &bad_cidr, 1);
    assert!(why.starts_with("rejected: "), "{why}");
    assert!(
        why.contains("10.3.0.0/33"),
        "does not name the bad prefix: {why}"
    );

    // 2. Not TOML at all.
    let why = reload(&mut running, "[[customer]\nname = ", 2);
    assert!(why.starts_with("rejected: "), "{why}");

    // 3. A change that needs a restart: [block] action.
    let mut reset = scenario(&frames, &customers_after());
    reset.sections.push_str("[block]\naction = \"reset\"\n");
    let text = reset.config(running.dir());
    let why = reload(&mut running, &text, 3);
    assert!(why.starts_with("rejected: "), "{why}");
    assert!(why.contains("restart"), "{why}");
    assert!(why.contains("[block]"), "{why}");

    // 4. Another: the worker cores ([dpdk]).
    let mut cores = scenario(&frames, &customers_after());
    cores.cores = vec![1, 2];
    let text = cores.config(running.dir());
    let why = reload(&mut running, &text, 4);
    assert!(why.starts_with("rejected: "), "{why}");
    assert!(why.contains("[dpdk]"), "{why}");
    assert!(why.contains("restart"), "{why}");

    // Nothing of the rejected configs took effect: no would_block (the
    // limit is still 100), no beta, gamma still there.
    assert!(
        !running.exited(),
        "synwall stopped after a bad reload\n{}",
        running.output()
    );
    let events = running.events();
    assert!(
        !events
            .iter()
            .any(|e| e["kind"] == "would_block" || e["customer"] == "beta"),
        "a rejected config took effect: {events:?}"
    );

    // 5. The original config again: accepted, no change.
    let why = reload(&mut running, &good, 5);
    assert!(!why.starts_with("rejected"), "{why}");
    assert!(why.contains("2 customers (0 added, 0 removed)"), "{why}");

    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    assert_frames_eq(&run.out_frames(), &frames, "outside tx");
    run.assert_customers(&[("alpha", 60, 60, 0)]);
    assert_eq!(run.window_count("alpha", "5m"), 60);
    assert!(run.customer_state("beta").is_none());
    run.assert_consistent();
    let reloads = run.events_of("reload", None);
    assert_eq!(reloads.len(), 5, "{reloads:?}");
    assert!(run.events_of("would_block", Some("alpha")).is_empty());
    assert!(
        run.exit.stderr.contains("reload rejected"),
        "{}",
        run.exit.stderr
    );
}

/// Warnings are raised once per crossing; a reload that changes nothing for
/// a customer is no crossing.
#[test]
fn reload_without_changes_does_not_repeat_warnings() {
    let (_, before) = before_reload();
    let mut running = spawn_counted(&before, TestDir::new("reload-same"));
    let same = before.config(running.dir());
    let why = reload(&mut running, &same, 1);
    assert!(why.contains("2 customers (0 added, 0 removed)"), "{why}");
    // Give a repeated warning a few ticks to show up.
    std::thread::sleep(Duration::from_millis(500));
    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    let near = run.events_of("near_limit", Some("alpha"));
    assert_eq!(near.len(), 1, "near_limit repeated by the reload: {near:?}");
}

/// The customers live in a `customers_file`; reloads with that file broken
/// (not TOML, a bad prefix, a duplicate customer, missing) are rejected
/// naming the file, and the running customers, counts and limits stay: a
/// later reload with the file mended applies it.
#[test]
fn a_broken_customers_file_is_rejected_and_everything_stays() {
    let frames = syns(1, 60);
    let mut before = scenario(&frames, "");
    before.preamble = "customers_file = \"customers.toml\"\n".to_owned();
    let dir = TestDir::new("reload-customers-file");
    let file = dir.join("customers.toml");
    fs::write(&file, customers_before()).unwrap();
    let mut running = spawn_counted(&before, dir);
    let config = before.config(running.dir());

    let broken: [(&str, String); 4] = [
        ("not TOML", "[[customer]\nname = ".to_owned()),
        (
            "a bad prefix",
            customers_after().replace("10.3.0.0/16", "10.3.0.0/33"),
        ),
        (
            "a duplicate customer",
            customers_before() + &customer("alpha", &["10.4.0.0/16"], ""),
        ),
        ("missing", String::new()),
    ];
    for (n, (what, text)) in broken.iter().enumerate() {
        if *what == "missing" {
            fs::remove_file(&file).unwrap();
        } else {
            fs::write(&file, text).unwrap();
        }
        let why = reload(&mut running, &config, n + 1);
        assert!(why.starts_with("rejected: "), "{what}: {why}");
        assert!(
            why.contains("customers.toml"),
            "{what}: the reason does not name the customers file: {why}"
        );
    }
    assert!(!running.exited(), "{}", running.output());
    assert!(
        running.events().iter().all(|e| e["kind"] != "would_block"),
        "a rejected customers file took effect"
    );

    // Mended: the change applies (alpha's limit lowered below its count of
    // 60, which a monitor customer reports; beta added blocked, gamma gone).
    fs::write(&file, customers_after()).unwrap();
    let why = reload(&mut running, &config, 5);
    assert!(!why.starts_with("rejected"), "{why}");
    assert!(why.contains("2 customers (1 added, 1 removed)"), "{why}");
    running.wait_for_event("alpha's would_block after the mended reload", WAIT, |e| {
        e["kind"] == "would_block" && e["customer"] == "alpha"
    });

    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    assert_frames_eq(&run.out_frames(), &frames, "outside tx");
    run.assert_consistent();
    assert_eq!(run.customer_state("beta").as_deref(), Some("blocked"));
    assert!(run.customer_state("gamma").is_none());
    // One would_block, from the new limit of 50 against the count of 60
    // kept through every rejection.
    let wb = run.events_of("would_block", Some("alpha"));
    assert_eq!(wb.len(), 1, "{wb:?}");
}

/// A reload that puts the customers file in another order (and a new
/// customer first) gives every customer a new id: each count, block and
/// spent allowance stays with its customer, by name, not with its old id.
#[test]
fn reload_that_renumbers_customers_keeps_each_ones_state() {
    // alpha: 60 SYNs, monitor; gamma: 30 SYNs over a limit of 20 (blocked
    // after exactly 20); beta: a standing block, no traffic.
    let mut frames = syns(1, 60);
    frames.extend(syns(9, 30));
    let before = customer("alpha", &["10.1.0.0/16"], "mode = \"monitor\"")
        + &customer("beta", &["10.3.0.0/16"], "blocked = true")
        + &customer("gamma", &["10.9.0.0/16"], "limits = { \"5m\" = 20 }");
    let first = scenario(&frames, &before);
    let mut running = first.spawn(TestDir::new("reload-renumber"), &[]);
    wait_counted(&mut running, 60);
    running.wait_for_event("gamma's block", WAIT, |e| {
        e["kind"] == "block" && e["customer"] == "gamma"
    });

    // Reversed, with delta in front: alpha's id goes 0 -> 3, gamma's 2 -> 1.
    let after = customer("delta", &["10.5.0.0/16"], "")
        + &customer("gamma", &["10.9.0.0/16"], "limits = { \"5m\" = 20 }")
        + &customer("beta", &["10.3.0.0/16"], "blocked = true")
        + &customer(
            "alpha",
            &["10.1.0.0/16"],
            "mode = \"monitor\"\nlimits = { \"5m\" = 50 }",
        );
    let text = scenario(&frames, &after).config(running.dir());
    let reason = reload(&mut running, &text, 1);
    assert!(!reason.starts_with("rejected"), "{reason}");
    // alpha's 60 (not gamma's 30, nor nobody's 0) meets alpha's new limit.
    let would = running.wait_for_event("alpha's would_block after the reload", WAIT, |e| {
        e["kind"] == "would_block" && e["customer"] == "alpha"
    });
    assert_eq!(would["count"], 60, "alpha's count moved: {would}");
    assert_eq!(would["limit"], 50, "{would}");

    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    run.assert_customers(&[("gamma", 30, 20, 10), ("alpha", 60, 60, 0)]);
    assert_eq!(run.window_count("alpha", "5m"), 60);
    // Windows count what was forwarded: gamma's 20, its 10 dropped are not.
    assert_eq!(run.window_count("gamma", "5m"), 20);
    assert_eq!(run.customer_state("gamma").as_deref(), Some("blocked"));
    assert_eq!(run.customer_state("beta").as_deref(), Some("blocked"));
    assert_eq!(run.customer_state("alpha").as_deref(), Some("open"));
    assert_ne!(run.customer_state("delta").as_deref(), Some("blocked"));
    run.assert_consistent();
    // gamma was blocked once, before the reload; nobody else was.
    assert_eq!(run.events_of("block", Some("gamma")).len(), 1);
    assert!(run.events_of("block", Some("alpha")).is_empty());
    assert!(run.events_of("block", Some("delta")).is_empty());
}
