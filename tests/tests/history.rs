//! The per-customer history with the real binaries (issue #24): counts and
//! blocks survive a restart that renumbers customers, `history`,
//! `what-if` and `suggest` answer from them, `report --svg` draws what
//! `suggest` and `history` say, a reload that renames, adds, removes and
//! renumbers customers leaves each one's history with it, bad input gets
//! clear errors and exit codes, and a corrupt history file is reported (stderr, status, event),
//! set aside and replaced while forwarding goes on.
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
    let bad: [(&[&str], i32, &str); 13] = [
        (&["history", "nobody"], 1, "unknown customer 'nobody'"),
        (
            &["history", "10.77.0.1"],
            1,
            "no customer owns that address",
        ),
        (
            &["history", "spammer", "--since", "100d"],
            1,
            "beyond the history",
        ),
        (
            &["history", "spammer", "--since", "1d"],
            1,
            "reaches before the history begins",
        ),
        (
            &["history", "spammer", "--step", "30s"],
            1,
            "whole number of minutes",
        ),
        (
            &["history", "spammer", "--window", "7m"],
            1,
            "unknown window '7m'",
        ),
        (&["what-if", "7m=5"], 1, "unknown window '7m'"),
        (&["what-if", "5m=0"], 1, "at least 1"),
        (&["what-if", "5m=99999999999999999"], 1, "too large"),
        (&["what-if", "5m=lots"], 2, "whole number"),
        (&["what-if", "--plan", "gold"], 1, "unknown plan 'gold'"),
        (&["suggest", "--headroom", "0.5"], 1, "--headroom 0.5"),
        (
            &["suggest", "--since", "0s"],
            1,
            "shorter than the history's minute",
        ),
    ];
    for (args, code, says) in bad {
        refused(&socket, args, code, says);
    }

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

/// A line of the report's SVG: its label, and its points' y.
type Labelled = (String, Vec<f64>);

/// The SVG's coloured polylines (the axes are black) each directly
/// followed by its label, as (label, the points' y), in document order;
/// the list starts anew at each chart's title (`all customers ...`,
/// `plan NAME ...`).
fn svg_charts(svg: &str) -> Vec<(String, Vec<Labelled>)> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    let nodes: Vec<_> = doc
        .root_element()
        .children()
        .filter(|n| n.is_element())
        .collect();
    let text = |n: &roxmltree::Node| n.text().unwrap_or_default().trim().to_owned();
    let mut charts: Vec<(String, Vec<Labelled>)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let t = text(n);
        if n.has_tag_name("text") && (t.starts_with("all customers") || t.starts_with("plan ")) {
            charts.push((t, Vec::new()));
            continue;
        }
        let Some(next) = nodes.get(i + 1) else { break };
        if n.has_tag_name("polyline")
            && n.attribute("stroke") != Some("#000000")
            && next.has_tag_name("text")
        {
            let ys = n
                .attribute("points")
                .unwrap_or_default()
                .split_whitespace()
                .map(|xy| xy.split_once(',').unwrap().1.parse().unwrap())
                .collect();
            charts
                .last_mut()
                .expect("a line before any chart's title")
                .1
                .push((text(next), ys));
        }
    }
    charts
}

#[test]
fn report_draws_what_suggest_and_history_say_per_plan() {
    synwallctl_bin();
    let customers = "[[customer]]\nname = \"spammer\"\nprefixes = [\"10.1.0.0/16\"]\n\n\
         [[customer]]\nname = \"quiet\"\nprefixes = [\"10.2.0.0/16\"]\nplan = \"gold\"\n\n\
         [[customer]]\nname = \"mid\"\nprefixes = [\"10.3.0.0/16\"]\nplan = \"gold\"\n";
    let sections = format!("{WINDOWS}\n\n[plans.gold]\n\"5m\" = 300\n");
    let mut frames = syns(1, 1_000);
    frames.extend(syns(2, 10));
    frames.extend(syns(3, 50));
    let run1 = Scenario::new(frames, Vec::new())
        .sections(&sections)
        .customers(customers)
        .run("history-report");
    run1.assert_customers(&[
        ("spammer", 1_000, 100, 900),
        ("quiet", 10, 10, 0),
        ("mid", 50, 50, 0),
    ]);
    let mut s = Scenario::new(Vec::new(), Vec::new())
        .sections(&sections)
        .customers(customers);
    s.duration = 300.0;
    let mut running = s.spawn(run1.dir, &[]);
    running.wait_forwarding(WAIT);
    let socket = running.dir().join("control.sock");
    let file = running.dir().join("report.svg");
    let path = file.to_str().unwrap();

    let (code, out, err) = ctl(&socket, &["report", "--svg", path]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with(&format!("wrote {path}")), "{out}");
    let charts = svg_charts(&std::fs::read_to_string(&file).unwrap());
    let titles: Vec<&str> = charts.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        titles.len(),
        2,
        "one chart for all customers, one per plan: {titles:?}"
    );
    assert!(
        titles[0].starts_with("all customers  (3 customers"),
        "{titles:?}"
    );
    assert!(
        titles[1].starts_with("plan gold  (2 customers"),
        "{titles:?}"
    );

    let r = json(&socket, &["report", "--svg", path]);
    let step = r["step_minutes"].as_u64().unwrap();
    for ((_, lines), (plan, tops)) in charts.iter().zip([
        (None, ["spammer", "mid", "quiet"].as_slice()),
        (Some("gold"), ["mid", "quiet"].as_slice()),
    ]) {
        let mut args = vec!["suggest"];
        args.extend(plan.iter().flat_map(|p| ["--plan", *p]));
        let sg = json(&socket, &args);
        // Per window its current and suggested limit, then the series
        // panel's (the shortest window's), then one series per customer.
        let mut want: Vec<String> = Vec::new();
        let ws = sg["windows"].as_array().unwrap();
        for w in ws.iter().chain(&ws[..1]) {
            want.push(format!("current {}", w["current"]));
            want.push(format!("suggested {}", w["suggested"]));
        }
        want.extend(tops.iter().map(|t| t.to_string()));
        let got: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(got, want, "{plan:?}: {sg}");
        // The series panel's scale, from its two limit lines.
        let series = &lines[2 * ws.len()..];
        let (current, suggested) = (
            ws[0]["current"].as_f64().unwrap(),
            ws[0]["suggested"].as_f64().unwrap(),
        );
        assert_ne!(current, suggested, "the scale needs two limits: {sg}");
        let (yc, ys) = (series[0].1[0], series[1].1[0]);
        let per_syn = (yc - ys) / (suggested - current);
        for (name, ys) in &series[2..] {
            let h = json(&socket, &["history", name, "--step", &format!("{step}m")]);
            let peaks: Vec<f64> = h["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["peak"].as_f64().unwrap())
                .collect();
            // A minute may have ended between the two requests.
            assert!(
                peaks.len() == ys.len() || peaks.len() == ys.len() + 1,
                "{name}: {} points drawn, history {h}",
                ys.len()
            );
            for (peak, y) in peaks.iter().zip(ys) {
                let want = yc - (peak - current) * per_syn;
                assert!(
                    (want - y).abs() <= 1.0,
                    "{name}: peak {peak} at y {y}, want {want}"
                );
            }
            assert!(peaks.iter().any(|&p| p > 0.0), "{name}: {h}");
        }
    }

    // --plan: that chart alone.
    let (code, out, err) = ctl(&socket, &["report", "--svg", path, "--plan", "gold"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let charts = svg_charts(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(charts.len(), 1);
    assert!(charts[0].0.starts_with("plan gold"), "{}", charts[0].0);

    // Bad input: clear errors and exit codes; the file is left alone.
    let before = std::fs::read(&file).unwrap();
    for (args, says) in [
        (["--plan", "silver"], "unknown plan 'silver'"),
        (["--since", "100d"], "beyond the history"),
        (["--since", "1d"], "reaches before the history begins"),
        (["--top", "21"], "0 to 20"),
    ] {
        let mut all = vec!["report", "--svg", path];
        all.extend(args);
        refused(&socket, &all, 1, says);
    }
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let nowhere = running.dir().join("no-such-dir/report.svg");
    refused(
        &socket,
        &["report", "--svg", nowhere.to_str().unwrap()],
        5,
        "writing",
    );
    refused(&socket, &["report"], 2, "--svg");

    running.signal("TERM");
    let done = running.wait(WAIT);
    assert!(done.exit.status.success(), "{:?}", done.exit);
}

#[test]
fn history_across_a_reload_stays_with_each_customer() {
    synwallctl_bin();
    // Limits no replay reaches: every SYN is forwarded, none blocked.
    let sections = "[windows]\n\"5m\" = 1000000000000\n\"1h\" = 1000000000000\n\
                    \"1d\" = 1000000000000";
    let cust = |name: &str, net: u8| {
        format!("[[customer]]\nname = \"{name}\"\nprefixes = [\"10.{net}.0.0/16\"]\n\n")
    };
    let before = [("alpha", 1), ("beta", 2), ("gamma", 3), ("delta", 4)];
    // newcomer added in front (renumbering all), delta moved before beta,
    // alpha renamed alpha2 (same addresses), gamma removed.
    let after = [("newcomer", 9), ("delta", 4), ("beta", 2), ("alpha2", 1)];
    let text = |cs: &[(&str, u8)]| cs.iter().map(|&(n, net)| cust(n, net)).collect::<String>();
    let mut frames = Vec::new();
    for &(_, net) in &before {
        frames.extend(syns(net, 8));
    }
    // The capture replayed without end: traffic before and after the reload.
    let mut s = Scenario::new(frames, Vec::new())
        .sections(sections)
        .customers(&text(&before))
        .forever();
    s.duration = 300.0;
    let dir = TestDir::new("history-reload");
    let forever = s.config(&dir);
    let mut running = s.spawn(dir, &[]);
    let socket = running.dir().join("control.sock");
    let seen = |socket: &Path, name: &str| -> Option<u64> {
        let (code, out, _) = ctl(socket, &["--json", "customer", name]);
        let v: Value = serde_json::from_str(&out)
            .ok()
            .filter(|_| code == Some(0))?;
        v["customer"]["seen"].as_u64()
    };
    running.wait_for("gamma's SYNs counted", WAIT, |_| {
        seen(&socket, "gamma").filter(|&n| n > 1_000)
    });

    let reloaded = forever.replace(&text(&before), &text(&after));
    assert_ne!(reloaded, forever);
    fs::write(&running.config, &reloaded).unwrap();
    running.signal("HUP");
    let ev = running.wait_for_event("the reload", WAIT, |e| e["kind"] == "reload");
    assert!(
        ev["reason"]
            .as_str()
            .unwrap()
            .contains("2 added, 2 removed"),
        "{ev}"
    );
    running.wait_for("alpha2's SYNs counted", WAIT, |_| {
        seen(&socket, "alpha2").filter(|&n| n > 1_000)
    });
    running.signal("TERM");
    let run2 = running.wait(WAIT);
    assert!(run2.exit.status.success(), "{:?}", run2.exit);
    let summary: Vec<(String, u64)> = run2
        .all_customers()
        .into_iter()
        .map(|c| (c.name, c.seen))
        .collect();
    let removed = run2.summary["removed_customers"]["syn_seen"]
        .as_u64()
        .unwrap();

    // Run 3 (the config after the reload, no traffic) answers `history`.
    let mut s3 = Scenario::new(Vec::new(), Vec::new())
        .sections(sections)
        .customers(&text(&after));
    s3.duration = 300.0;
    let mut running = s3.spawn(run2.dir, &[]);
    running.wait_forwarding(WAIT);
    let socket = running.dir().join("control.sock");
    let history = |name: &str| {
        json(&socket, &["history", name, "--step", "1h"])["seen"]
            .as_u64()
            .unwrap()
    };
    // Customers the config has: every SYN of theirs this run, under their
    // own name, whatever index they had before and after the reload.
    for (name, n) in &summary {
        assert_eq!(
            history(name),
            *n,
            "{name}: history vs the run's count ({summary:?})"
        );
    }
    let count = |name: &str| summary.iter().find(|c| c.0 == name).map(|c| c.1);
    assert!(
        count("delta") > count("alpha2").map(|n| n / 2),
        "delta counted before and after: {summary:?}"
    );
    assert_eq!(history("newcomer"), 0, "sent nothing");
    // The renamed one's SYNs before the reload stay under its old name,
    // the removed one's under its name; together the run's removed count.
    let (alpha, gamma) = (history("alpha"), history("gamma"));
    assert!(
        alpha > 1_000 && gamma > 1_000,
        "alpha {alpha}, gamma {gamma}"
    );
    assert_eq!(alpha + gamma, removed, "alpha and gamma before the reload");
    running.signal("TERM");
    let done = running.wait(WAIT);
    assert!(done.exit.status.success(), "{:?}", done.exit);
}
