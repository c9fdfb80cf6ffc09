//! `scripts/demo` end to end, with the binaries of this build
//! (`SYNWALL_BIN_DIR`): it passes when the run shows what it should, and
//! fails (exit 1, saying why) when the generator is missing or sends too
//! little to get the hammer blocked. Traffic goes over net_memif only.
//! Also: each binary's `--help` opens with a line about itself.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use synwall_tests::*;

/// A demo that has not finished by then fails the test.
const DEMO_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory with synwall, synwallctl, synwall-gen and synwall-mkpcap
/// of this build.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_bins(&[
            ("synwall-control", "synwall"),
            ("synwallctl", "synwallctl"),
            ("synwall-benches", "synwall-gen"),
            ("synwall-benches", "synwall-mkpcap"),
        ])
    })
}

/// One demo at a time: each runs two busy-polling processes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Demo {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `scripts/demo --no-huge ARGS` in `dir` with `env`, killing its
/// process group (the trap tears down synwall and the generator) if it
/// outlives [`DEMO_TIMEOUT`].
fn demo(dir: &TestDir, args: &[&str], env: &[(&str, &str)]) -> Demo {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let workspace = workspace_root();
    let out_path = dir.join("demo.stdout");
    let err_path = dir.join("demo.stderr");
    let mut child = Command::new(workspace.join("scripts/demo"))
        .arg("--no-huge")
        .args(args)
        .env("SYNWALL_BIN_DIR", bin_dir())
        .env("SYNWALL_DEMO_DIR", dir.join("demo"))
        .envs(env.iter().copied())
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .process_group(0)
        .spawn()
        .expect("running scripts/demo");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the demo") {
            break status;
        }
        if started.elapsed() > DEMO_TIMEOUT {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            std::thread::sleep(Duration::from_secs(3));
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            panic!(
                "the demo did not finish within {DEMO_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Demo {
        code: status.code(),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        took: started.elapsed(),
    }
}

#[test]
fn the_demo_shows_the_hammer_blocked_and_checks_it() {
    let dir = TestDir::new("demo-pass");
    let d = demo(&dir, &["--seconds", "6"], &[]);
    let all = format!("stdout:\n{}\nstderr:\n{}", d.stdout, d.stderr);
    assert_eq!(d.code, Some(0), "{all}");
    assert!(
        d.stdout.contains("synwall is forwarding"),
        "waited for the dataplane: {all}"
    );
    assert!(
        d.stdout
            .contains("ok    hammer: blocked at its 1m limit: 300 SYNs forwarded"),
        "{all}"
    );
    assert!(
        d.stdout.contains("dropped while blocked")
            && d.stdout.contains("at the limit before the block"),
        "every dropped SYN under a named cause: {all}"
    );
    assert!(d.stdout.contains("ok    quiet:"), "{all}");
    assert!(d.stdout.contains("ok    mx.example:"), "{all}");
    // It ends on the hammer's history chart: the table with PEAK(1m),
    // a bar past the limit (`|`, then `#`), and the block with its reason.
    let chart = d
        .stdout
        .split_once("The hammer's history (synwallctl history hammer")
        .map(|(_, c)| c)
        .unwrap_or_else(|| panic!("no history chart: {all}"));
    assert!(
        chart.contains("\nhammer: ") && chart.contains("PEAK(1m)"),
        "{all}"
    );
    assert!(
        chart.lines().any(|l| l.contains("|#")),
        "a peak past the limit of 300: {all}"
    );
    assert!(
        chart
            .lines()
            .any(|l| l.contains(" block ") && l.contains("limit: ")),
        "the hammer's block: {all}"
    );
    assert!(d.stdout.contains("Done: 'hammer' was blocked"), "{all}");
    assert!(!d.stdout.contains("FAIL"), "{all}");
    // `--check` says what memif ports risk (docs/testing.md).
    assert!(
        d.stderr
            .contains("warning: net_memif0, net_memif1 are net_memif: for tests and demos only"),
        "{all}"
    );
    eprintln!("demo passed in {:?}", d.took);
}

#[test]
fn the_demo_fails_when_the_generator_cannot_run() {
    let dir = TestDir::new("demo-no-gen");
    let missing = dir.join("no-such-synwall-gen");
    let d = demo(
        &dir,
        &["--seconds", "2"],
        &[("SYNWALL_GEN", missing.to_str().expect("utf-8 path"))],
    );
    let all = format!("stdout:\n{}\nstderr:\n{}", d.stdout, d.stderr);
    assert_eq!(d.code, Some(1), "{all}");
    assert!(
        d.stderr.contains("demo: FAILED: synwall-gen") && d.stderr.contains("no-such-synwall-gen"),
        "{all}"
    );
    assert!(!d.stdout.contains("Done:"), "{all}");
}

#[test]
fn the_demo_fails_when_the_hammer_is_not_blocked() {
    let dir = TestDir::new("demo-slow");
    // 20 frames/s for 2 s: the hammer cannot reach its limit of 300.
    let d = demo(&dir, &["--seconds", "2", "--rate", "20"], &[]);
    let all = format!("stdout:\n{}\nstderr:\n{}", d.stdout, d.stderr);
    assert_eq!(d.code, Some(1), "{all}");
    assert!(d.stdout.contains("FAIL  hammer is not blocked"), "{all}");
    assert!(
        d.stderr
            .contains("demo: FAILED: the run did not show what the demo expects"),
        "{all}"
    );
    assert!(!d.stdout.contains("Done:"), "{all}");
}

/// `--help` of every binary opens with `NAME: what it does`, then (after
/// a blank line) an example.
#[test]
fn help_opens_with_what_the_command_does() {
    let want = [
        (
            "synwall",
            "synwall: the inline appliance: counts outbound TCP SYNs",
        ),
        (
            "synwallctl",
            "synwallctl: the operator's command line for a running synwall",
        ),
        ("synwall-gen", "synwall-gen: the traffic generator bench"),
        (
            "synwall-mkpcap",
            "synwall-mkpcap: writes synwall's benchmark traffic",
        ),
    ];
    for (bin, first) in want {
        let out = Command::new(bin_dir().join(bin))
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("running {bin} --help: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{bin} --help: {out:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.first().is_some_and(|l| l.starts_with(first)),
            "{bin} --help opens with:\n{text}"
        );
        let example = lines.iter().position(|l| l.starts_with("Example: "));
        assert!(
            example.is_some_and(|i| i <= 3),
            "{bin} --help has no example near the top:\n{text}"
        );
    }
}
