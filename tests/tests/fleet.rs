//! Several real synwall processes on virtual devices share one customer's
//! limit through a real redis-server: one customer's SYNs replay forever
//! (`infinite_rx`) into every appliance, and the fleet-wide forwarded
//! total, from the appliances' own summaries, must equal the limit exactly.
//! The same checker catches a deliberately wrong floor split, and with no
//! Redis at all every appliance falls back to exactly its floor.
use std::fs;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_tests::redis::{free_port, RedisServer};
use synwall_tests::*;

const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
const LIMIT: u64 = 1000;
/// How long each appliance runs: long enough for a few lease rounds.
const RUN_SECS: f64 = 8.0;
/// See `RUN_FOR`.
const STEPS_SECS: f64 = 20.0;

fn frames() -> Vec<Vec<u8>> {
    (0..64u32)
        .map(|i| {
            let src = Ipv4Addr::new(10, 1, 0, (i % 250) as u8 + 1);
            FrameBuilder::tcp_v4(src, MX, 2000 + i as u16, 25, SYN)
                .seq(i * 7919)
                .build()
        })
        .collect()
}

/// One appliance of the fleet, as configured.
struct Appliance {
    name: &'static str,
    /// `fleet.appliances` in its config (the negative control lies here).
    appliances: u32,
}

/// Runs the appliances at once against `redis` (the TOML list's
/// contents: quoted URLs) and returns each one's
/// forwarded SYNs of `acme` and its summary.
fn run_fleet(test: &str, redis: &str, fleet: &[Appliance]) -> Vec<(u64, Value)> {
    run_fleet_with(test, redis, fleet, "", "", |_, _| {}).0
}

/// [`run_fleet`] with its own `[windows]` (empty: a 5m limit of
/// [`LIMIT`]), extra config sections, and `during` called with the
/// appliances' directories while they run; also returns each one's events.
fn run_fleet_with(
    test: &str,
    redis: &str,
    fleet: &[Appliance],
    windows: &str,
    extra: &str,
    during: impl FnOnce(&[&TestDir], &[u32]),
) -> (Vec<(u64, Value)>, Vec<Vec<Value>>) {
    synwall_bin();
    let mut running: Vec<(TestDir, Child)> = Vec::new();
    for a in fleet {
        let dir = TestDir::new(&format!("{test}-{}", a.name));
        let mut s = Scenario::new(frames(), Vec::new())
            .sections(&if windows.is_empty() {
                format!(
                    "[windows]\n\"5m\" = {LIMIT}\n\"1h\" = {}\n\"1d\" = {}\n",
                    LIMIT * 10,
                    LIMIT * 100
                )
            } else {
                windows.to_owned()
            })
            .sections(&format!(
                "[fleet]\nname = \"{}\"\nredis = [{redis}]\nappliances = {}\nfloor = 0.2\n\
                 lease_ttl = \"3s\"\nlease_margin = \"500ms\"\ntimeout = \"300ms\"\n",
                a.name, a.appliances
            ))
            .sections(extra)
            .control("tick = \"50ms\"")
            .control(&format!("metrics_listen = \"127.0.0.1:{}\"", free_port()))
            .customers("[[customer]]\nname = \"acme\"\nprefixes = [\"10.1.0.0/16\"]\n")
            .forever();
        let secs = RUN_FOR.with(std::cell::Cell::get);
        s.duration = secs;
        let (config, summary) = s.prepare(&dir);
        let mut text = s.config(&dir);
        if let Some(state) = STATE_DIR.with(|d| d.borrow().clone()) {
            // The snapshot directory of an earlier run: a restart.
            let own = toml_str(&format!("{}/state", dir.path.display()));
            text = text.replace(&own, &toml_str(&state.display().to_string()));
        }
        fs::write(&config, text).expect("config");
        let child = Command::new(synwall_bin())
            .arg("--config")
            .arg(&config)
            .arg("--duration")
            .arg(secs.to_string())
            .arg("--summary-json")
            .arg(&summary)
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("stdout")).unwrap())
            .stderr(fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("spawning synwall");
        running.push((dir, child));
    }
    during(
        &running.iter().map(|r| &r.0).collect::<Vec<_>>(),
        &running.iter().map(|r| r.1.id()).collect::<Vec<_>>(),
    );
    let mut out = Vec::new();
    let mut events = Vec::new();
    for (dir, mut child) in running {
        let status = wait_timeout(&mut child, Duration::from_secs(120))
            .unwrap_or_else(|| panic!("synwall in {} did not stop", dir.path.display()));
        let log = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        if std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
            // Killed by the test: no summary.
            out.push((0, Value::Null));
            events.push(read_events(&dir.join("events.jsonl")));
            continue;
        }
        assert!(status.success(), "synwall: {status}\n{log}");
        let summary: Value =
            serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        let acme = summary["customers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "acme"))
            .cloned()
            .unwrap_or_else(|| panic!("acme not in the summary: {summary:#}"));
        let fwd = acme["syn_forwarded"].as_u64().unwrap();
        let seen = acme["syn_seen"].as_u64().unwrap();
        assert!(
            seen > LIMIT,
            "every appliance had demand beyond the limit: {acme}"
        );
        out.push((fwd, acme));
        events.push(read_events(&dir.join("events.jsonl")));
    }
    (out, events)
}

/// The `synwallctl` binary next to `synwall`.
fn ctl_bin() -> std::path::PathBuf {
    build_bins(&[("synwallctl", "synwallctl")]).join("synwallctl")
}

/// Sends one control request to the appliance in `dir` and returns the reply.
fn request(dir: &TestDir, line: &str) -> Value {
    use std::io::{BufRead, BufReader, Write};
    let sock = dir.join("control.sock");
    let stream = wait_until("the control socket", Duration::from_secs(60), || {
        std::os::unix::net::UnixStream::connect(&sock).ok()
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    writeln!(w, "{line}").unwrap();
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?}: {e}"))
}

/// Waits until `dir`'s appliance answers `status` with a ready dataplane.
fn wait_ready(dir: &TestDir) {
    wait_until("appliance ready", Duration::from_secs(60), || {
        (request(dir, r#"{"cmd":"status"}"#)["dataplane"] == "ready").then_some(())
    });
}

thread_local! {
    /// How long the appliances of this test's runs live: [`RUN_SECS`], or
    /// [`STEPS_SECS`] for tests that take several steps while they run
    /// (a step waits for the appliances, which must outlive every step
    /// on a loaded machine).
    static RUN_FOR: std::cell::Cell<f64> = const { std::cell::Cell::new(RUN_SECS) };
    /// Tests that restart an appliance: the snapshot directory to use.
    static STATE_DIR: std::cell::RefCell<Option<std::path::PathBuf>> =
        const { std::cell::RefCell::new(None) };
}

/// The checker: the fleet-wide forwarded total against the limit; prints
/// each appliance's share under `label`.
fn fleet_total(label: &str, runs: &[(u64, Value)]) -> u64 {
    let split: Vec<u64> = runs.iter().map(|r| r.0).collect();
    eprintln!("{label}: {split:?}");
    split.iter().sum()
}

#[test]
fn two_appliances_forward_exactly_the_limit_and_a_wrong_floor_split_is_caught() {
    let dir = TestDir::new("fleet-exact");
    let redis = RedisServer::start(&dir.path);
    let (runs, _) = run_pair("fleet-exact", &redis.url(), "", "", |dirs, _| {
        // The operator's view while the fleet runs: `fleet` and /metrics.
        wait_ready(dirs[0]);
        wait_ready(dirs[1]);
        let views = wait_until(
            "both appliances talked to Redis",
            Duration::from_secs(30),
            || {
                let v: Vec<Value> = dirs
                    .iter()
                    .map(|d| request(d, r#"{"cmd":"fleet"}"#)["fleet"].clone())
                    .collect();
                v.iter()
                    .all(|f| f["replies"].as_u64() > Some(0))
                    .then_some(v)
            },
        );
        for v in &views {
            assert_eq!(v["nodes"][0]["healthy"], true, "{v}");
            assert_eq!(v["nodes"][0]["url"], redis.url().as_str(), "{v}");
            assert!(v["last_rtt_ms"].as_f64().is_some(), "{v}");
        }
        let status = request(dirs[0], r#"{"cmd":"status"}"#);
        assert_eq!(status["fleet"]["name"], "edge-a", "{status}");
        // /metrics is refreshed once a second.
        let m = wait_until("fleet series in /metrics", Duration::from_secs(10), || {
            let m = request(dirs[0], r#"{"cmd":"metrics"}"#)["metrics"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            m.contains("synwall_fleet_rounds_total").then_some(m)
        });
        for series in [
            "synwall_fleet_rounds_total",
            "synwall_fleet_leased_syns_total",
            "synwall_fleet_round_trip_seconds{node=",
            "synwall_fleet_redis_up 1",
        ] {
            assert!(m.contains(series), "no {series} in /metrics:\n{m}");
        }
    });
    let total = fleet_total("fleet split", &runs);
    assert_eq!(
        total, LIMIT,
        "fleet total {total} != limit {LIMIT}: {runs:?}"
    );
    for (fwd, acme) in &runs {
        // Each spent at least its own floor (0.2 × 1000 / 2).
        assert!(*fwd >= 100, "{acme}");
        // And the per-window counts say the same.
        assert_eq!(acme["windows"]["5m"].as_u64(), Some(*fwd), "{acme}");
    }

    // Negative control: edge-c believes it is alone (floor 200, not 100),
    // so the fleet's floors add up to more than the split Redis assumes.
    // The same checker must see the limit exceeded.
    let redis2 = RedisServer::start(&dir.path);
    let wrong = run_fleet(
        "fleet-wrong",
        &toml_str(&redis2.url()),
        &[
            Appliance {
                name: "edge-c",
                appliances: 1,
            },
            Appliance {
                name: "edge-d",
                appliances: 2,
            },
        ],
    );
    let total = fleet_total("wrong split", &wrong);
    assert!(
        total > LIMIT,
        "the checker missed a wrong split: {total} {wrong:?}"
    );
}

#[test]
fn without_redis_every_appliance_spends_exactly_its_floor() {
    // A port nobody listens on: every call fails, floors only.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let (runs, events) =
        run_fleet_with("fleet-down", &toml_str(&url), &pair(), "", "", |dirs, _| {
            wait_ready(dirs[0]);
            let v = wait_until("the failure is visible", Duration::from_secs(30), || {
                let v = request(dirs[0], r#"{"cmd":"fleet"}"#)["fleet"].clone();
                (v["failures"].as_u64() > Some(0)).then_some(v)
            });
            assert_eq!(v["nodes"][0]["healthy"], false, "{v}");
            wait_until("redis_up 0 in /metrics", Duration::from_secs(10), || {
                let m = request(dirs[0], r#"{"cmd":"metrics"}"#)["metrics"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                m.contains("synwall_fleet_redis_up 0").then_some(())
            });
        });
    assert_fleet_reason(&events, "unreachable");
    for (fwd, acme) in &runs {
        assert_eq!(*fwd, 100, "floor only: {acme}");
    }
    assert!(fleet_total("redis down", &runs) <= LIMIT);
}

fn pair() -> [Appliance; 2] {
    [
        Appliance {
            name: "edge-a",
            appliances: 2,
        },
        Appliance {
            name: "edge-b",
            appliances: 2,
        },
    ]
}

/// [`run_fleet_with`] for [`pair`] on the Redis at `url`.
fn run_pair(
    test: &str,
    url: &str,
    windows: &str,
    extra: &str,
    during: impl FnOnce(&[&TestDir], &[u32]),
) -> (Vec<(u64, Value)>, Vec<Vec<Value>>) {
    run_fleet_with(test, &toml_str(url), &pair(), windows, extra, during)
}

/// Short blocks that do not grow: the customer keeps asking after each,
/// so a fault that opened the budget would show as more forwards.
const SHORT_BLOCKS: &str = "[block]\nduration = \"1s\"\nescalation = 1.0\n";

fn fleet_reasons(events: &[Vec<Value>]) -> Vec<String> {
    events
        .iter()
        .flatten()
        .filter(|e| e["kind"] == "fleet")
        .map(|e| format!("{} {}", e["by"], e["reason"]))
        .collect()
}

/// Asserts that some appliance's `fleet` event gives a reason containing
/// `reason`.
#[track_caller]
fn assert_fleet_reason(events: &[Vec<Value>], reason: &str) {
    let reasons = fleet_reasons(events);
    assert!(
        reasons.iter().any(|r| r.contains(reason)),
        "no fleet event saying {reason:?}: {reasons:?}"
    );
}

#[test]
fn a_limit_block_on_one_appliance_blocks_the_customer_on_the_other() {
    let dir = TestDir::new("fleet-limit-block");
    let redis = RedisServer::start(&dir.path);
    let (runs, events) = run_pair("fleet-limit-block", &redis.url(), "", "", |_, _| {});
    assert_eq!(fleet_total("limit block", &runs), LIMIT, "{runs:?}");
    let blocks: Vec<&Value> = events
        .iter()
        .flatten()
        .filter(|e| e["kind"] == "block")
        .collect();
    // One appliance blocked by the limit, the other by the fleet's word.
    assert!(
        blocks.iter().any(|e| e["window"] == "5m"),
        "no limit block: {blocks:?}"
    );
    for (i, ev) in events.iter().enumerate() {
        assert!(
            ev.iter()
                .any(|e| e["kind"] == "block" && e["customer"] == "acme"),
            "appliance {i} never blocked acme: {ev:?}"
        );
        assert_eq!(runs[i].1["state"], "blocked", "{:?}", runs[i].1);
    }
}

/// Limits no test reaches: the customer stays under its floor (no lease
/// calls).
const HUGE_LIMITS: &str =
    "[windows]\n\"5m\" = 1000000000\n\"1h\" = 1000000000\n\"1d\" = 1000000000\n";

#[test]
fn an_operator_block_and_unblock_on_one_appliance_apply_on_the_other() {
    RUN_FOR.with(|r| r.set(STEPS_SECS));
    let dir = TestDir::new("fleet-operator");
    let redis = RedisServer::start(&dir.path);
    // Only the operator blocks, and the customer stays under its floor
    // (no lease calls): the block travels by pub/sub.
    // Built before the appliances start: a build inside their run could
    // outlast it.
    let ctl_bin = ctl_bin();
    let mut latency = None;
    let (_, events) = run_pair(
        "fleet-operator",
        &redis.url(),
        HUGE_LIMITS,
        "",
        |dirs: &[&TestDir], _: &[u32]| {
            wait_ready(dirs[0]);
            wait_ready(dirs[1]);
            let r = request(
                dirs[0],
                r#"{"cmd":"block","customer":"acme","duration":"1h","reason":"abuse #1"}"#,
            );
            assert_eq!(r["ok"], true, "{r}");
            let t0 = Instant::now();
            wait_until("edge-b blocks acme", Duration::from_secs(10), || {
                let c = request(dirs[1], r#"{"cmd":"customer","customer":"acme"}"#);
                (c["customer"]["state"] == "blocked").then_some(())
            });
            latency = Some(t0.elapsed());
            let r = request(
                dirs[0],
                r#"{"cmd":"unblock","customer":"acme","reason":"ok"}"#,
            );
            assert_eq!(r["ok"], true, "{r}");
            wait_until("edge-b unblocks acme", Duration::from_secs(10), || {
                let c = request(dirs[1], r#"{"cmd":"customer","customer":"acme"}"#);
                (c["customer"]["state"] == "open").then_some(())
            });
            // set-limit on edge-b: edge-a enforces the new limit too.
            let r = request(
                dirs[1],
                r#"{"cmd":"set-limit","customer":"acme","window":"1h","value":123456}"#,
            );
            assert_eq!(r["ok"], true, "{r}");
            wait_until(
                "edge-a takes edge-b's limit",
                Duration::from_secs(10),
                || {
                    let c = request(dirs[0], r#"{"cmd":"customer","customer":"acme"}"#);
                    let w = c["customer"]["windows"].as_array()?.clone();
                    w.iter()
                        .any(|w| w["name"] == "1h" && w["limit"] == 123456)
                        .then_some(())
                },
            );
            // `synwallctl fleet`: per-node health, as text and as JSON.
            let sock = dirs[0].join("control.sock");
            let ctl = |json: bool| {
                let mut cmd = Command::new(&ctl_bin);
                cmd.arg("--socket").arg(&sock);
                if json {
                    cmd.arg("--json");
                }
                let out = cmd.arg("fleet").output().expect("synwallctl");
                assert!(out.status.success(), "{out:?}");
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            let v: Value = serde_json::from_str(ctl(true).trim()).expect("json");
            let nodes = v["fleet"]["nodes"].as_array().expect("nodes").clone();
            assert_eq!(nodes.len(), 1, "{v}");
            assert_eq!(nodes[0]["url"], redis.url().as_str(), "{v}");
            assert_eq!(nodes[0]["healthy"], true, "{v}");
            assert!(nodes[0]["last_rtt_ms"].as_f64().is_some(), "{v}");
            let page = ctl(false);
            let line = page
                .lines()
                .find(|l| l.starts_with(redis.url().as_str()))
                .unwrap_or_else(|| panic!("no line for the node:\n{page}"));
            assert!(line.contains(" up "), "{page}");
        },
    );
    let a = &events[0];
    let set = a
        .iter()
        .find(|e| e["kind"] == "set_limit")
        .unwrap_or_else(|| panic!("edge-a logged no set-limit: {a:?}"));
    assert_eq!(set["by"], "operator on edge-b", "{set}");
    assert_eq!(set["window"], "1h", "{set}");
    assert_eq!(set["customer"], "acme", "{set}");
    eprintln!("block reached edge-b after {latency:?}");
    let b = &events[1];
    let block = b
        .iter()
        .find(|e| e["kind"] == "block")
        .unwrap_or_else(|| panic!("edge-b logged no block: {b:?}"));
    assert!(
        block["by"].as_str().unwrap_or("").ends_with("on edge-a"),
        "the event names the appliance: {block}"
    );
    assert_eq!(block["reason"], "abuse #1");
    assert!(b.iter().any(|e| e["kind"] == "unblock"), "{b:?}");
}

/// `customer acme`'s state and its 1h limit on the appliance in `dir`.
fn acme_on(dir: &TestDir) -> (String, u64) {
    let c = request(dir, r#"{"cmd":"customer","customer":"acme"}"#)["customer"].clone();
    let limit = c["windows"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["name"] == "1h"))
        .and_then(|w| w["limit"].as_u64())
        .unwrap_or(0);
    (c["state"].as_str().unwrap_or("").to_owned(), limit)
}

/// Cuts every pub/sub connection to `redis` while the appliance `pid` is
/// stopped, runs `say` (announcements it cannot hear), waits until Redis
/// holds `notes` notes for acme, and lets the appliance run again: it
/// finds its subscription gone and subscribes afresh.
fn while_cut_off(redis: &RedisServer, pid: u32, notes: usize, say: impl FnOnce()) {
    signal(pid, "-STOP");
    let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(killed.is_some_and(|n| n != "0"), "no subscription to cut");
    say();
    wait_until("the notes in Redis", Duration::from_secs(10), || {
        let n = redis.cli(&["HLEN", "{c:acme}:a"])?;
        (n.parse::<usize>().ok()? >= notes).then_some(())
    });
    signal(pid, "-CONT");
}

#[test]
fn announcements_missed_while_cut_off_are_read_after_resubscribing() {
    RUN_FOR.with(|r| r.set(STEPS_SECS));
    let dir = TestDir::new("fleet-missed");
    let redis = RedisServer::start(&dir.path);
    let mut view = Value::Null;
    let (_, events) = run_pair(
        "fleet-missed",
        &redis.url(),
        HUGE_LIMITS,
        "",
        |dirs, pids| {
            wait_ready(dirs[0]);
            wait_ready(dirs[1]);
            wait_until("edge-b subscribed", Duration::from_secs(10), || {
                let v = request(dirs[1], r#"{"cmd":"fleet"}"#)["fleet"].clone();
                (v["subscriptions"].as_u64() >= Some(1) && v["reread_in_progress"] == false)
                    .then_some(())
            });
            // acme stays under its floor on edge-b: no lease reply tells it
            // anything, only the pub/sub message it misses, and the notes.
            while_cut_off(&redis, pids[1], 2, || {
                for line in [
                    r#"{"cmd":"block","customer":"acme","duration":"1h","reason":"abuse #2"}"#,
                    r#"{"cmd":"set-limit","customer":"acme","window":"1h","value":123456}"#,
                ] {
                    let r = request(dirs[0], line);
                    assert_eq!(r["ok"], true, "{r}");
                }
            });
            wait_until(
                "edge-b applies what it missed",
                Duration::from_secs(10),
                || (acme_on(dirs[1]) == ("blocked".into(), 123456)).then_some(()),
            );
            // An unblock missed the same way lifts the block edge-b made
            // before it.
            while_cut_off(&redis, pids[1], 3, || {
                let r = request(
                    dirs[0],
                    r#"{"cmd":"unblock","customer":"acme","reason":"ok"}"#,
                );
                assert_eq!(r["ok"], true, "{r}");
            });
            wait_until("edge-b unblocks acme", Duration::from_secs(10), || {
                (acme_on(dirs[1]).0 == "open").then_some(())
            });
            view = request(dirs[1], r#"{"cmd":"fleet"}"#)["fleet"].clone();
        },
    );
    assert!(view["subscriptions"].as_u64() >= Some(3), "{view}");
    assert_eq!(view["notes_applied"], 3, "block, limit, unblock: {view}");
    let b = &events[1];
    let by = |kind: &str| {
        b.iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("edge-b logged no {kind}: {b:?}"))["by"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(by("block").ends_with("on edge-a"), "{b:?}");
    assert_eq!(by("set_limit"), "operator on edge-a", "{b:?}");
    assert_eq!(by("unblock"), "operator on edge-a", "{b:?}");
}

#[test]
fn an_operator_block_made_while_redis_is_paused_reaches_the_fleet_when_it_answers() {
    RUN_FOR.with(|r| r.set(STEPS_SECS));
    let dir = TestDir::new("fleet-kept");
    let redis = RedisServer::start(&dir.path);
    let mut view = Value::Null;
    run_pair("fleet-kept", &redis.url(), HUGE_LIMITS, "", |dirs, _| {
        wait_ready(dirs[0]);
        wait_ready(dirs[1]);
        redis.signal("STOP");
        let r = request(
            dirs[0],
            r#"{"cmd":"block","customer":"acme","duration":"1h","reason":"abuse #3"}"#,
        );
        assert_eq!(r["ok"], true, "{r}");
        // The round carrying the block fails (Redis does not answer):
        // edge-a keeps the block for Redis.
        wait_until("edge-a finds Redis down", Duration::from_secs(10), || {
            let v = request(dirs[0], r#"{"cmd":"fleet"}"#)["fleet"].clone();
            (v["healthy"] == false && v["announcements_waiting"] == 1).then_some(())
        });
        assert_eq!(
            acme_on(dirs[1]).0,
            "open",
            "edge-b heard of it while Redis was paused"
        );
        redis.signal("CONT");
        wait_until("edge-b blocks acme", Duration::from_secs(10), || {
            (acme_on(dirs[1]).0 == "blocked").then_some(())
        });
        // (The call that timed out may have run once Redis woke up:
        // edge-b can be blocked before edge-a has sent it again.)
        view = wait_until(
            "edge-a's block taken by Redis",
            Duration::from_secs(10),
            || {
                let v = request(dirs[0], r#"{"cmd":"fleet"}"#)["fleet"].clone();
                (v["announcements_waiting"] == 0).then_some(v)
            },
        );
    });
    assert_eq!(view["announcements_lost"], 0, "{view}");
}

#[test]
fn redis_paused_and_resumed_keeps_the_fleet_within_the_limit() {
    let dir = TestDir::new("fleet-pause");
    let redis = RedisServer::start(&dir.path);
    let (runs, events) = run_pair("fleet-pause", &redis.url(), "", SHORT_BLOCKS, |dirs, _| {
        wait_ready(dirs[0]);
        std::thread::sleep(Duration::from_millis(500));
        redis.signal("STOP");
        // Longer than a lease lives.
        std::thread::sleep(Duration::from_secs(4));
        redis.signal("CONT");
    });
    let total = fleet_total("paused", &runs);
    assert!(total <= LIMIT, "{total} > {LIMIT}: {runs:?}");
    assert_fleet_reason(&events, "unreachable");
}

#[test]
fn redis_restarted_without_its_state_quarantines_the_fleet_to_its_floors() {
    let dir = TestDir::new("fleet-restart");
    let mut redis = RedisServer::start(&dir.path);
    let (runs, events) = run_pair(
        "fleet-restart",
        &redis.url(),
        "",
        SHORT_BLOCKS,
        |dirs, _| {
            wait_ready(dirs[0]);
            wait_ready(dirs[1]);
            // The limit is used up within the first rounds.
            std::thread::sleep(Duration::from_secs(2));
            redis.restart_empty();
        },
    );
    let total = fleet_total("restart", &runs);
    // An empty Redis would lease the whole 800 again: the quarantine
    // keeps everyone on their (spent) floors.
    assert!(total <= LIMIT, "{total} > {LIMIT}: {runs:?}");
    assert_fleet_reason(&events, "lost its state");
}

#[test]
fn two_appliances_on_a_three_master_cluster_forward_exactly_the_limit() {
    let dir = TestDir::new("fleet-cluster");
    let cluster = synwall_tests::redis::RedisCluster::start(&dir.path, 3);
    let seeds: Vec<String> = cluster.urls().iter().map(|u| toml_str(u)).collect();
    let urls = cluster.urls();
    let (runs, _) = run_fleet_with(
        "fleet-cluster",
        &seeds.join(", "),
        &pair(),
        "",
        "",
        |dirs, _| {
            // The fleet view names every master, each with its health;
            // acme's master has answered.
            wait_ready(dirs[0]);
            let v = wait_until("every master in the view", Duration::from_secs(30), || {
                let v = request(dirs[0], r#"{"cmd":"fleet"}"#)["fleet"].clone();
                (v["nodes"].as_array()?.len() == 3
                    && v["nodes"].as_array()?.iter().any(|n| n["healthy"] == true))
                .then_some(v)
            });
            for n in v["nodes"].as_array().into_iter().flatten() {
                let url = n["url"].as_str().unwrap_or_default();
                assert!(urls.iter().any(|u| u == url), "{url} is no master: {v}");
                assert_ne!(n["healthy"], false, "{v}");
            }
        },
    );
    let total = fleet_total("cluster split", &runs);
    assert_eq!(total, LIMIT, "{runs:?}");
}

#[test]
fn three_appliances_forward_exactly_the_limit() {
    let dir = TestDir::new("fleet-three");
    let redis = RedisServer::start(&dir.path);
    let three = ["edge-a", "edge-b", "edge-c"].map(|name| Appliance {
        name,
        appliances: 3,
    });
    let (runs, _) = run_fleet_with(
        "fleet-three",
        &toml_str(&redis.url()),
        &three,
        "",
        "",
        |_, _| {},
    );
    assert_eq!(fleet_total("three", &runs), LIMIT, "{runs:?}");
    for (fwd, acme) in &runs {
        // floor 0.2 × 1000 / 3 = 66 each.
        assert!(*fwd >= 66, "{acme}");
    }
}

/// Once both appliances of `dirs` are ready: the index of one that holds
/// a lease now, and its fleet view.
fn a_lease_holder(dirs: &[&TestDir]) -> (usize, Value) {
    wait_ready(dirs[0]);
    wait_ready(dirs[1]);
    wait_until("a lease held", Duration::from_secs(30), || {
        dirs.iter().enumerate().find_map(|(i, d)| {
            let v = request(d, r#"{"cmd":"fleet"}"#)["fleet"].clone();
            (v["leases_held"].as_u64() > Some(0)).then_some((i, v))
        })
    })
}

/// `kill SIG PID`.
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn an_appliance_killed_holding_a_lease_has_it_charged_not_refunded() {
    let dir = TestDir::new("fleet-kill");
    let redis = RedisServer::start(&dir.path);
    let mut killed = None;
    let (runs, _) = run_pair(
        "fleet-kill",
        &redis.url(),
        "",
        SHORT_BLOCKS,
        |dirs, pids| {
            // Whoever holds a lease now: read what it was granted, kill -9.
            let (i, view) = a_lease_holder(dirs);
            signal(pids[i], "-9");
            killed = Some((i, view["leased_syns"].as_u64().unwrap_or(0)));
        },
    );
    let (i, leased) = killed.expect("an appliance was killed");
    assert!(runs[i].1.is_null(), "the killed one left no summary");
    let survivor = runs[1 - i].0;
    eprintln!("killed edge {i} holding {leased} leased; survivor forwarded {survivor}");
    assert!(leased > 0);
    // The dead appliance may have forwarded up to its floor (100) and its
    // leases: Redis charges what it held when the lease expires, so the
    // survivor, running on well past that, can never get it back.
    assert!(
        survivor + 100 + leased <= LIMIT,
        "survivor {survivor} + dead floor 100 + dead leases {leased} > {LIMIT}"
    );
    assert!(survivor >= 100, "the survivor still had its floor");
}

#[test]
fn a_restarted_appliance_does_not_spend_its_floor_twice() {
    // No Redis: floors only, so each run can forward only the floor (100);
    // the second run, restored from the first's snapshot within the same
    // 5m window, must find it spent.
    let dir = TestDir::new("fleet-restart-appliance");
    let state = dir.join("state");
    STATE_DIR.with(|d| *d.borrow_mut() = Some(state.clone()));
    let url = toml_str(&format!("redis://127.0.0.1:{}", free_port()));
    let one = [Appliance {
        name: "edge-a",
        appliances: 2,
    }];
    let first = run_fleet(&format!("{}-1", "fleet-restart-appliance"), &url, &one);
    let second = run_fleet(&format!("{}-2", "fleet-restart-appliance"), &url, &one);
    STATE_DIR.with(|d| *d.borrow_mut() = None);
    assert_eq!(first[0].0, 100, "{first:?}");
    assert_eq!(
        second[0].0, 0,
        "the floor was spent before the restart: {second:?}"
    );
    // The restored windows still count the first run's SYNs.
    assert_eq!(
        second[0].1["windows"]["5m"].as_u64(),
        Some(100),
        "{second:?}"
    );
}

#[test]
fn an_appliance_paused_past_its_lease_deadline_does_not_spend_it_after() {
    // SIGSTOP of the whole process (workers and control thread alike)
    // while it holds a lease, for longer than the lease lives, then
    // SIGCONT: the workers may run before the control thread, and must not
    // spend what the last tick before the pause granted out of the lease.
    let dir = TestDir::new("fleet-appliance-pause");
    let redis = RedisServer::start(&dir.path);
    let mut paused = None;
    let (runs, _) = run_pair(
        "fleet-appliance-pause",
        &redis.url(),
        "",
        SHORT_BLOCKS,
        |dirs, pids| {
            let (i, _) = a_lease_holder(dirs);
            signal(pids[i], "-STOP");
            // lease_ttl is 3 s: Redis expires (and charges) the lease.
            std::thread::sleep(Duration::from_secs(4));
            signal(pids[i], "-CONT");
            // Awake and answering again.
            let v = request(dirs[i], r#"{"cmd":"fleet"}"#);
            assert_eq!(v["ok"], true, "{v}");
            paused = Some(i);
        },
    );
    let i = paused.expect("an appliance was paused");
    let total = fleet_total(&format!("paused edge {i}"), &runs);
    // Both ran to the end (run_fleet_with asserts a clean exit and a
    // summary) and the fleet stayed within the limit.
    assert!(total <= LIMIT, "{total} > {LIMIT}: {runs:?}");
    for (fwd, acme) in &runs {
        assert_eq!(acme["windows"]["5m"].as_u64(), Some(*fwd), "{acme}");
    }
}
