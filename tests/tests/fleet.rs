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

/// Runs the appliances at once against `redis` and returns each one's
/// forwarded SYNs of `acme` and its summary.
fn run_fleet(test: &str, redis: &str, fleet: &[Appliance]) -> Vec<(u64, Value)> {
    synwall_bin();
    let mut running: Vec<(TestDir, Child)> = Vec::new();
    for a in fleet {
        let dir = TestDir::new(&format!("{test}-{}", a.name));
        let mut s = Scenario::new(frames(), Vec::new())
            .sections(&format!(
                "[windows]\n\"5m\" = {LIMIT}\n\"1h\" = {}\n\"1d\" = {}\n\n\
                 [fleet]\nname = \"{}\"\nredis = [\"{redis}\"]\nappliances = {}\nfloor = 0.2\n\
                 lease_ttl = \"3s\"\nlease_margin = \"500ms\"\ntimeout = \"300ms\"\n",
                LIMIT * 10,
                LIMIT * 100,
                a.name,
                a.appliances
            ))
            .control("tick = \"50ms\"")
            .customers("[[customer]]\nname = \"acme\"\nprefixes = [\"10.1.0.0/16\"]\n");
        s.duration = RUN_SECS;
        let (config, summary) = s.prepare(&dir);
        let text = replay_forever(&s.config(&dir), &dir, 1);
        fs::write(&config, text).expect("config");
        let child = Command::new(synwall_bin())
            .arg("--config")
            .arg(&config)
            .arg("--duration")
            .arg(RUN_SECS.to_string())
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
    let mut out = Vec::new();
    for (dir, mut child) in running {
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("synwall in {} did not stop", dir.path.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
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
    }
    out
}

/// The checker: the fleet-wide forwarded total against the limit.
fn fleet_total(runs: &[(u64, Value)]) -> u64 {
    runs.iter().map(|r| r.0).sum()
}

#[test]
fn two_appliances_forward_exactly_the_limit_and_a_wrong_floor_split_is_caught() {
    let dir = TestDir::new("fleet-exact");
    let redis = RedisServer::start(&dir.path);
    let runs = run_fleet(
        "fleet-exact",
        &redis.url(),
        &[
            Appliance {
                name: "edge-a",
                appliances: 2,
            },
            Appliance {
                name: "edge-b",
                appliances: 2,
            },
        ],
    );
    let total = fleet_total(&runs);
    eprintln!(
        "fleet split: {:?}",
        runs.iter().map(|r| r.0).collect::<Vec<_>>()
    );
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
        &redis2.url(),
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
    let total = fleet_total(&wrong);
    eprintln!(
        "wrong split: {:?}",
        wrong.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(
        total > LIMIT,
        "the checker missed a wrong split: {total} {wrong:?}"
    );
}

#[test]
fn without_redis_every_appliance_spends_exactly_its_floor() {
    // A port nobody listens on: every call fails, floors only.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let runs = run_fleet(
        "fleet-down",
        &url,
        &[
            Appliance {
                name: "edge-a",
                appliances: 2,
            },
            Appliance {
                name: "edge-b",
                appliances: 2,
            },
        ],
    );
    for (fwd, acme) in &runs {
        assert_eq!(*fwd, 100, "floor only: {acme}");
    }
    assert!(fleet_total(&runs) <= LIMIT);
}
