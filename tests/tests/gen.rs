//! `synwall-gen verify` end to end: the generator writes a profile's traffic
//! as a capture, runs the real synwall over it on `net_pcap`, and checks the
//! verdicts per customer against the profile's limits, against synwall's
//! summary and against its control socket. It passes on a correct synwall,
//! and fails (exit 1, with the customer's row showing the difference) when
//! the profile's expectation is wrong.
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use synwall_tests::fixtures::customer;
use synwall_tests::{gen_bin, synwall_bin, write_config, TestDir, Value};

/// The customers' prefixes, the same in synwall's config and in the
/// profile.
const SPAMMER: &[&str] = &["198.51.100.0/24", "2001:db8:66::/48"];
const WEBSHOP: &[&str] = &["203.0.113.0/24"];
const MAILHOST: &[&str] = &["192.0.2.128/25", "2001:db8:25::/48"];

/// synwall's config: a 5m limit of 100 by default, one customer with an
/// override of 400.
fn synwall_config() -> String {
    let head = r#"
[dpdk]
eal_args = ["--no-huge", "-m", "256", "--log-level=*:notice"]
cores = [1]

[[link]]
inside = "net_pcap0"
outside = "net_pcap1"

[windows]
"5m" = 100
"1h" = 500
"1d" = 2000

[control]
tick = "50ms"
"#;
    [
        head,
        &customer("spammer", SPAMMER, ""),
        &customer("webshop", WEBSHOP, ""),
        &customer("mailhost", MAILHOST, "limits = { \"5m\" = 400 }"),
    ]
    .concat()
}

/// The profile: a hammer of 300 SYNs over its limit (`spammer_limit` is
/// what the profile claims), a trickle of 40 and a steady 150 under theirs,
/// and 1500 background frames of every kind.
fn profile(spammer_limit: u64) -> String {
    let head = "\n[appliance]\nconfig = \"synwall.toml\"\nmalformed = \"forward\"\n\n\
                [traffic]\nseed = 3\nsizes = \"imix\"\n";
    let background = "\n[background]\nframes = 1500\nrate = 20000\nmalformed_pct = 1\n\
                      ipv6_pct = 5\nvlan_pct = 10\nqinq_pct = 3\n";
    [
        head,
        &customer(
            "spammer",
            SPAMMER,
            &format!("pattern = \"hammer\"\nrate = 5000\nduration = 0.06\nlimit = {spammer_limit}"),
        ),
        &customer(
            "webshop",
            WEBSHOP,
            "pattern = \"trickle\"\nrate = 20\ncount = 40\nlimit = 100",
        ),
        &customer(
            "mailhost",
            MAILHOST,
            "pattern = \"steady\"\nrate = 200\ncount = 150\nlimit = 400",
        ),
        background,
    ]
    .concat()
}

struct GenRun {
    stdout: String,
    stderr: String,
    report: Value,
}

/// `synwall-gen verify` of [`profile`]`(spammer_limit)` in `dir`, which must
/// exit with `code` (0: pass, 1: fail).
#[track_caller]
fn verify(dir: &TestDir, spammer_limit: u64, code: i32) -> GenRun {
    write_config(dir, "synwall.toml", &synwall_config());
    let prof = write_config(dir, "profile.toml", &profile(spammer_limit));
    let report = dir.join("report.json");
    let out = Command::new(gen_bin())
        .arg("--config")
        .arg(&prof)
        .arg("verify")
        .arg("--synwall")
        .arg(synwall_bin())
        .arg("--workdir")
        .arg(dir.join("run"))
        .arg("--appliance-duration")
        .arg("2")
        .arg("--report")
        .arg(&report)
        .arg("--out")
        .arg(dir.join("trace.pcap"))
        .output()
        .expect("running synwall-gen");
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let run = GenRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: serde_json::from_str(&text).unwrap_or(Value::Null),
    };
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    run
}

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["result"]["verify"]["verdict"]["rows"]
        .as_array()
        .expect("rows in the report")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name}"))
}

#[test]
fn verify_passes_on_a_correct_synwall() {
    let dir = TestDir::new("gen-verify-pass");
    let run = verify(&dir, 100, 0);
    assert!(run.stdout.contains("verify: PASS"), "{}", run.stdout);
    let r = &run.report;
    assert_eq!(r["pass"], true);
    // The hammer got exactly its limit through, the others everything, and
    // synwall's summary and control socket agree.
    let spam = row(r, "spammer");
    assert_eq!(spam["sent"], 300);
    assert_eq!(spam["out_forwarded"], 100);
    assert_eq!(spam["summary"], serde_json::json!([300, 100, 200]));
    assert_eq!(spam["socket"]["seen"], 300, "{spam}");
    assert_eq!(spam["socket"]["forwarded"], 100, "{spam}");
    for (name, n) in [("webshop", 40), ("mailhost", 150)] {
        let c = row(r, name);
        assert_eq!(c["out_forwarded"], n, "{c}");
        assert_eq!(c["summary"], serde_json::json!([n, n, 0]), "{c}");
    }
    let bg = r["result"]["verify"]["verdict"]["background"]
        .as_array()
        .unwrap();
    assert!(bg.iter().all(|k| k[2] == k[3]), "{bg:?}");
    let bg_sent: u64 = bg.iter().map(|k| k[1].as_u64().unwrap()).sum();
    assert_eq!(bg_sent, 1500);
    // The trace and its expectations were written as asked.
    assert!(dir.join("trace.pcap").exists());
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("trace.expect.json")).expect("expect.json"),
    )
    .unwrap();
    assert_eq!(exp["expect"]["customers"][0]["forwarded"], 100);
    assert!(r["trace"]["flows"].as_u64().unwrap() >= 254);
    assert!(r["environment"]["kernel"].is_string());
}

#[test]
fn verify_fails_when_the_expectation_is_wrong() {
    let dir = TestDir::new("gen-verify-fail");
    // The profile claims 80; synwall's config says 100.
    let run = verify(&dir, 80, 1);
    assert!(run.stdout.contains("verify: FAIL"), "{}", run.stdout);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("spammer"))
        .expect("spammer's row");
    assert!(
        line.contains("FAIL: 100 SYNs forwarded, the limit says 80"),
        "{line}"
    );
    assert!(
        line.contains("summary seen/fw/dr 300/100/200 != 300/80/220"),
        "{line}"
    );
    for name in ["webshop", "mailhost"] {
        let l = run.stdout.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(l.ends_with("| ok"), "{l}");
    }
    assert_eq!(run.report["pass"], false);
    assert!(!row(&run.report, "spammer")["problems"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// A `run` through one `net_ring` device looped to itself (what tx queue q
/// sends, rx queue q receives), with `queues` queue pairs on the lcores
/// `cores` (given on the command line; on a 2-CPU machine synwall-gen maps
/// the extra lcores onto CPU 1 itself).
fn ring_run(dir: &TestDir, queues: u16, cores: &str) -> Value {
    let prof = ring_profile(dir, queues);
    let report = dir.join(&format!("ring{queues}.json"));
    let out = Command::new(gen_bin())
        .arg("--config")
        .arg(&prof)
        .args(["run", "--rate", "max", "--duration", "1"])
        .args(["--queues", &queues.to_string(), "--cores", cores])
        .arg("--report")
        .arg(&report)
        .output()
        .expect("running synwall-gen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report).expect("report");
    serde_json::from_str(&text).expect("report is JSON")
}

/// A profile on one `net_ring` device looped to itself, `queues` queue
/// pairs.
fn ring_profile(dir: &TestDir, queues: u16) -> PathBuf {
    write_config(
        dir,
        &format!("ring{queues}.toml"),
        &format!(
            r#"
[dpdk]
eal_args = ["--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--no-telemetry",
            "--file-prefix={}q{queues}", "--log-level=*:notice", "--vdev=net_ring0"]
tx_port = "net_ring0"
rx_port = "net_ring0"

[traffic]
sizes = "64"
{}{}
[background]
frames = 1000
ipv6_pct = 5
vlan_pct = 10
"#,
            dir.unique,
            customer(
                "spammer",
                &["198.51.100.0/24"],
                "pattern = \"hammer\"\nrate = 5000\ncount = 300"
            ),
            customer(
                "webshop",
                &["203.0.113.0/24", "2001:db8:77::/48"],
                "pattern = \"trickle\"\ncount = 40"
            ),
        ),
    )
}

/// CPU time (user + system, clock ticks) that process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command's closing parenthesis; utime and stime
    // are the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').expect("stat has (comm)").1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().expect("a number"))
        .collect();
    f[0] + f[1]
}

/// `--hold`: when the run is done (report written), the generator says
/// it holds its ports with the status to come, polls nothing (uses no
/// CPU) and stays until its stdin closes; then it exits with that status.
#[test]
fn a_held_generator_polls_nothing_and_goes_when_stdin_closes() {
    let dir = TestDir::new("gen-hold");
    let prof = ring_profile(&dir, 1);
    let report = dir.join("held.json");
    let mut child = Command::new(gen_bin())
        .arg("--config")
        .arg(&prof)
        // At max rate a lane that still polled would take a CPU (a paced
        // one sleeps between bursts): the hold's CPU use tells.
        .args(["run", "--rate", "max", "--duration", "0.5", "--hold"])
        .arg("--report")
        .arg(&report)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running synwall-gen");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let held = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.starts_with("synwall-gen: holding") => break l,
            Ok(l) => seen.push(l),
            Err(e) => {
                let _ = child.kill();
                panic!("no 'holding' line ({e}); stdout:\n{}", seen.join("\n"))
            }
        }
    };
    assert_eq!(
        held,
        "synwall-gen: holding the ports (not polling) until stdin closes (--hold); exit status then: 0"
    );
    assert!(report.exists(), "the report is written before the hold");
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "exited while its stdin is open"
    );
    let used = cpu_ticks(child.id()) - before;
    assert!(used < 20, "{used} ticks of CPU in 1 s of holding: it polls");
    drop(child.stdin.take());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "still running 30 s after its stdin closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

/// Every frame sent came back on its queue, and per customer the SYNs the
/// tx queues took equal the SYNs the rx queues counted.
fn assert_loop_exact(r: &Value, queues: usize) {
    let trial = &r["result"]["trials"][0];
    let lanes = trial["lanes"].as_array().expect("lanes");
    assert_eq!(lanes.len(), queues, "{trial}");
    let frames: u64 = lanes.iter().map(|l| l["frames"].as_u64().unwrap()).sum();
    assert_eq!(frames, r["trace"]["frames"].as_u64().unwrap());
    assert!(r["trace"]["flows"].as_u64().unwrap() >= 254);
    for l in lanes {
        let tx = l["tx_packets"].as_u64().unwrap();
        assert!(tx > 0, "queue {} sent nothing: {l}", l["queue"]);
        assert_eq!(l["rx_packets"].as_u64().unwrap(), tx, "{l}");
        assert!(l["frames"].as_u64().unwrap() > 0, "{l}");
    }
    let tx: u64 = lanes
        .iter()
        .map(|l| l["tx_packets"].as_u64().unwrap())
        .sum();
    assert_eq!(trial["tx_packets"].as_u64().unwrap(), tx);
    assert_eq!(trial["rx_packets"], trial["tx_packets"]);
    for c in r["result"]["customers"].as_array().expect("customers") {
        assert!(c["sent"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["sent"], c["received"], "{c}");
    }
}

#[test]
fn run_on_two_queues_and_two_lcores_loses_nothing() {
    let dir = TestDir::new("gen-ring-queues");
    let one = ring_run(&dir, 1, "1");
    assert_loop_exact(&one, 1);
    let two = ring_run(&dir, 2, "1,2");
    assert_loop_exact(&two, 2);
    let lanes = two["result"]["trials"][0]["lanes"].as_array().unwrap();
    assert_eq!(
        (lanes[0]["tx_lcore"].as_u64(), lanes[1]["tx_lcore"].as_u64()),
        (Some(1), Some(2))
    );
    // The flows were spread: neither queue has (nearly) all the frames.
    let f0 = lanes[0]["frames"].as_u64().unwrap() as f64;
    let f1 = lanes[1]["frames"].as_u64().unwrap() as f64;
    assert!(f0 / (f0 + f1) > 0.3 && f0 / (f0 + f1) < 0.7, "{f0} / {f1}");
}

#[test]
fn bad_lane_options_are_usage_errors() {
    let dir = TestDir::new("gen-bad-lanes");
    let prof = write_config(&dir, "p.toml", "[background]\nframes = 10\n");
    for (args, want) in [
        (vec!["--queues", "2", "--cores", "1,2,3"], "2 or 4 lcores"),
        (vec!["--cores", "0"], "main lcore"),
        (vec!["--queues", "x"], "not a number"),
        (vec!["--queues", "99"], "1..=16"),
    ] {
        let out = Command::new(gen_bin())
            .arg("--config")
            .arg(&prof)
            .arg("run")
            .args(&args)
            .output()
            .expect("running synwall-gen");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
