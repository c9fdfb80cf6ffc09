//! The per-customer history with the real binaries (issue #24): counts and
//! blocks survive a restart that renumbers customers, `history`,
//! `what-if` and `suggest` answer from them, bad input gets clear errors
//! and exit codes, and a corrupt history file is reported (stderr,
//! status, event), set aside and replaced while forwarding goes on.
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_tests::*;

const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
const WAIT: Duration = Duration::from_secs(60);

const WINDOWS: &str = "[windows]\n\"5m\" = 100\n\"1h\" = 100000\n\"1d\" = 100000";

const CUSTOMERS: &str = "[[customer]]\nname = \"spammer\"\nprefixes = [\"10.1.0.0/16\"]\n\n\
     [[customer]]\nname = \"quiet\"\nprefixes = [\"10.2.0.0/16\"]\n";

fn syns(net: u8, n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let src = Ipv4Addr::new(10, net, (i / 250) as u8, (i % 250) as u8 + 1);
            FrameBuilder::tcp_v4(src, MX, 1024 + i as u16, 25, SYN)
                .seq(i.wrapping_mul(2_654_435_761))
                .build()
        })
        .collect()
}

#[track_caller]
fn json(socket: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = ctl(socket, &all);
    assert_eq!(code, Some(0), "synwallctl {args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[track_caller]
fn refused(socket: &Path, args: &[&str], code: i32, says: &str) {
    let (got, out, err) = ctl(socket, args);
    assert_eq!(got, Some(code), "synwallctl {args:?}: {out}{err}");
    assert!(err.contains(says), "synwallctl {args:?}: {err}");
}

#[test]
fn history_survives_restart_and_answers_history_what_if_suggest() {
    synwallctl_bin();
    // Run 1: the spammer tries 1,000 (100 forwarded, then blocked).
    let mut frames = syns(1, 1_000);
    frames.extend(syns(2, 10));
    let run1 = Scenario::new(frames, Vec::new())
        .sections(WINDOWS)
        .customers(CUSTOMERS)
        .run("history-restart");
    run1.assert_customers(&[("spammer", 1_000, 100, 900), ("quiet", 10, 10, 0)]);
    let dir = run1.dir;
    assert!(dir.join("state/history.sqlite").exists());

    // Run 2: a customer added in front renumbers both; no traffic.
    let renumbered =
        format!("[[customer]]\nname = \"newcomer\"\nprefixes = [\"10.9.0.0/16\"]\n\n{CUSTOMERS}");
    let mut s = Scenario::new(Vec::new(), Vec::new())
        .sections(WINDOWS)
        .customers(&renumbered);
    s.duration = 300.0;
    let mut running = s.spawn(dir, &[]);
    running.wait_forwarding(WAIT);
    let socket = running.dir().join("control.sock");

    let h = json(&socket, &["history", "spammer", "--step", "1m"]);
    assert_eq!(h["customer"], "spammer");
    assert_eq!(
        (h["seen"].as_u64(), h["forwarded"].as_u64()),
        (Some(1_000), Some(100)),
        "{h}"
    );
    assert_eq!(h["limit"], 100);
    let peak = h["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["peak"].as_u64().unwrap())
        .max();
    assert_eq!(peak, Some(1_000), "{h}");
    let blocks = h["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{h}");
    assert_eq!(blocks[0]["kind"], "block");
    // By address, and the table with its chart.
    let by_addr = json(&socket, &["history", "10.1.3.4", "--step", "1m"]);
    assert_eq!(by_addr["seen"], 1_000);
    let (code, table, _) = ctl(&socket, &["history", "spammer", "--step", "1m"]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("PEAK(5m)") && table.contains('|') && table.contains("block"),
        "{table}"
    );
    // What docs/choosing-limits.md shows (`--nocapture`).
    println!("$ synwallctl history spammer --step 1m\n{table}");
    for args in [&["what-if", "5m=5"][..], &["suggest", "--headroom", "1"]] {
        let (code, out, _) = ctl(&socket, args);
        assert_eq!(code, Some(0), "{args:?}");
        println!("$ synwallctl {}\n{out}", args.join(" "));
    }
    let q = json(&socket, &["history", "quiet", "--step", "1m"]);
    assert_eq!(q["seen"], 10);

    // what-if: the current limits block the spammer; 5m=5 the quiet one too.
    let w = json(&socket, &["what-if"]);
    let blocked: Vec<&str> = w["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["customer"].as_str().unwrap())
        .collect();
    assert_eq!(blocked, vec!["spammer"], "{w}");
    assert_eq!(w["current"]["dropped"], 900);
    let w = json(&socket, &["what-if", "5m=5"]);
    assert_eq!(w["what_if"]["customers_blocked"], 2, "{w}");
    assert_eq!(w["what_if"]["dropped"], 995 + 5, "{w}");
    assert_eq!(w["current"]["customers_blocked"], 1, "{w}");
    let w = json(&socket, &["what-if", "--customer", "quiet", "1h=3"]);
    assert_eq!(w["customers"], 1);
    assert_eq!(w["what_if"]["dropped"], 7);
    assert!(
        !w["estimate"].as_array().unwrap().is_empty(),
        "5m windows are an estimate: {w}"
    );

    let sg = json(&socket, &["suggest", "--headroom", "1"]);
    let five = &sg["windows"][0];
    assert_eq!(five["window"], "5m");
    assert_eq!(five["distribution"]["max"], 1_000);
    assert_eq!(five["suggested"], 1_000);

    // Bad input: clear errors, exit 1 (refused) or 2 (usage).
    refused(
        &socket,
        &["history", "nobody"],
        1,
        "unknown customer 'nobody'",
    );
    refused(
        &socket,
        &["history", "10.77.0.1"],
        1,
        "no customer owns that address",
    );
    refused(
        &socket,
        &["history", "spammer", "--since", "100d"],
        1,
        "beyond the history",
    );
    refused(
        &socket,
        &["history", "spammer", "--since", "1d"],
        1,
        "reaches before the history begins",
    );
    refused(
        &socket,
        &["history", "spammer", "--step", "30s"],
        1,
        "whole number of minutes",
    );
    refused(
        &socket,
        &["history", "spammer", "--window", "7m"],
        1,
        "unknown window '7m'",
    );
    refused(&socket, &["what-if", "7m=5"], 1, "unknown window '7m'");
    refused(&socket, &["what-if", "5m=0"], 1, "at least 1");
    refused(
        &socket,
        &["what-if", "5m=99999999999999999"],
        1,
        "too large",
    );
    refused(&socket, &["what-if", "5m=lots"], 2, "whole number");
    refused(
        &socket,
        &["what-if", "--plan", "gold"],
        1,
        "unknown plan 'gold'",
    );
    refused(
        &socket,
        &["suggest", "--headroom", "0.5"],
        1,
        "--headroom 0.5",
    );
    refused(
        &socket,
        &["suggest", "--since", "0s"],
        1,
        "shorter than the history's minute",
    );

    let st = json(&socket, &["status"]);
    assert_eq!(st["history"]["ok"], true, "{st}");
    running.signal("TERM");
    let done = running.wait(WAIT);
    assert!(done.exit.status.success(), "{:?}", done.exit);
}

#[test]
fn a_corrupt_history_is_reported_and_replaced_and_forwarding_goes_on() {
    let run1 = Scenario::new(syns(2, 10), Vec::new())
        .sections(WINDOWS)
        .customers(CUSTOMERS)
        .run("history-corrupt");
    let dir = run1.dir;
    let path = dir.join("state/history.sqlite");
    let good = fs::read(&path).unwrap();
    fs::write(&path, &good[..good.len() / 3]).unwrap();
    let _ = fs::remove_file(dir.join("state/history.sqlite-wal"));

    let frames = syns(2, 10);
    let run2 = Scenario::new(frames.clone(), Vec::new())
        .sections(WINDOWS)
        .customers(CUSTOMERS)
        .run_with(dir, &[]);
    assert!(run2.exit.status.success(), "{:?}", run2.exit);
    assert!(run2.exit.stderr.contains("history"), "{}", run2.exit.stderr);
    assert_frames_eq(&run2.out_frames(), &frames, "outside tx");
    let events = run2.events();
    let damaged: Vec<&Value> = events.iter().filter(|e| e["kind"] == "history").collect();
    assert_eq!(damaged.len(), 1, "{events:?}");
    assert!(damaged[0]["reason"].as_str().unwrap().contains("damaged"));
    let aside = fs::read_dir(run2.dir.join("state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("history.sqlite.damaged-")
        })
        .count();
    assert!(aside >= 1);
    // The new history has this run's SYNs (and only those).
    let store = synwall_history::Store::open_read_only(&run2.dir.join("state")).unwrap();
    assert_eq!(store.customers().unwrap(), vec!["quiet"]);
}
