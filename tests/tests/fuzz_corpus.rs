//! Replays the fuzz corpora without libFuzzer: every file of
//! `fuzz/corpus/<target>/` (seeds) and `tests/data/fuzz-regressions/<target>/`
//! (inputs that once crashed or broke an invariant).
//!
//! `frame` runs in process through the fuzz target's own body
//! (`fuzz/src/frame.rs`, included below), invariants and all. This crate does
//! not depend on `synwall-config` or `synwall-control`, so the other targets
//! go through the real binary instead: `config` inputs through
//! `synwall --check`, `snapshot` inputs as the `state.json` a run restores,
//! and `protocol` inputs as request lines to a running appliance's socket.
//! Each must be refused or served, never crash the process.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use synwall_tests::fixtures::customer;
use synwall_tests::*;

#[allow(dead_code)]
#[path = "../../fuzz/src/frame.rs"]
mod frame;

/// Every input of `target`: (path, bytes), seeds first, sorted by name.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    for dir in [
        workspace_root().join("fuzz/corpus").join(target),
        workspace_root()
            .join("tests/data/fuzz-regressions")
            .join(target),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            all.push((path, bytes));
        }
    }
    all
}

/// [`inputs`] of `target`, which must have some.
#[track_caller]
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let all = inputs(target);
    assert!(!all.is_empty(), "no {target} corpus");
    all
}

/// Fails the test if any input `failed` (one line each), listing them
/// under `what`.
#[track_caller]
fn assert_none_failed(what: &str, failed: &[String]) {
    assert!(failed.is_empty(), "{what}:\n{}", failed.join("\n"));
}

/// Runs `f` on every input, and reports every input that panicked.
fn replay_in_process(target: &str, f: fn(&[u8])) {
    let all = corpus(target);
    let failed: Vec<String> = all
        .iter()
        .filter(|(_, bytes)| std::panic::catch_unwind(|| f(bytes)).is_err())
        .map(|(path, bytes)| format!("{}: {}", path.display(), hex(bytes)))
        .collect();
    assert_none_failed(&format!("{target} inputs failed"), &failed);
}

#[test]
fn frame_corpus() {
    replay_in_process("frame", frame::check);
}

/// The same bodies over frames built here: one byte of policy per bit
/// combination over a few shapes, so a change to the invariants is
/// exercised even with an empty corpus.
#[test]
fn frame_policies() {
    for (_, bytes) in inputs("frame") {
        let Some(f) = bytes.get(1..) else { continue };
        for knobs in 0u8..64 {
            let mut input = vec![knobs];
            input.extend_from_slice(f);
            frame::check(&input);
        }
    }
}

/// Exit code of a Rust panic in `main`.
const PANIC_EXIT: i32 = 101;

#[test]
fn config_corpus() {
    let all = corpus("config");
    let dir = TestDir::new("fuzz-config");
    let mut crashed = Vec::new();
    for (path, bytes) in &all {
        let config = dir.join("synwall.toml");
        fs::write(&config, bytes).expect("writing config");
        let out = Command::new(synwall_bin())
            .arg("--config")
            .arg(&config)
            .arg("--check")
            .current_dir(&dir.path)
            .output()
            .expect("running synwall --check");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // 0: valid, 2: refused with a reason.
        if !matches!(out.status.code(), Some(0 | 2)) || stderr.contains("panicked") {
            crashed.push(format!("{}: {:?} {stderr}", path.display(), out.status));
        }
    }
    assert_none_failed("synwall --check crashed", &crashed);
}

#[test]
fn snapshot_corpus() {
    let all = corpus("snapshot");
    let customers = customer("acme", &["198.51.100.0/24"], "")
        + &customer("spam", &["203.0.113.0/24"], "blocked = true");
    let mut crashed = Vec::new();
    for (path, bytes) in &all {
        let mut scenario = Scenario::new(Vec::new(), Vec::new()).customers(&customers);
        scenario.duration = 0.3;
        let dir = TestDir::new("fuzz-snapshot");
        fs::create_dir_all(dir.join("state")).expect("state dir");
        fs::write(dir.join("state/state.json"), bytes).expect("writing snapshot");
        let run = scenario.run_in(dir);
        let code = run.exit.status.code();
        // Restored (0) or refused with the file named; never a panic or a
        // signal.
        let refused_cleanly = code.is_some_and(|c| c != 0 && c != PANIC_EXIT)
            && run.exit.stderr.contains("state.json");
        if !(code == Some(0) || refused_cleanly) || run.exit.stderr.contains("panicked") {
            crashed.push(format!(
                "{}: {:?}\n{}",
                path.display(),
                run.exit.status,
                run.exit.stderr
            ));
        }
    }
    assert_none_failed("snapshot inputs", &crashed);
}

#[test]
fn protocol_corpus() {
    let all = corpus("protocol");
    let mut scenario = Scenario::new(Vec::new(), Vec::new()).customers(
        &(customer("acme", &["198.51.100.0/24"], "") + "\n[plans.mailserver]\n\"1h\" = 100\n"),
    );
    scenario.duration = 60.0;
    let mut run = scenario.spawn(TestDir::new("fuzz-protocol"), &[]);
    let socket = run.dir().join("control.sock");
    wait_until("the control socket", Duration::from_secs(20), || {
        UnixStream::connect(&socket).ok()
    });
    let mut bad = Vec::new();
    for (path, bytes) in &all {
        // One request per connection; a newline inside the input would make
        // it two requests, so it becomes a space.
        let mut line: Vec<u8> = bytes
            .iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect();
        line.push(b'\n');
        let mut stream = UnixStream::connect(&socket).expect("connecting");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(&line).expect("sending");
        let mut reply = String::new();
        let got = BufReader::new(&stream).read_line(&mut reply);
        let answered = match serde_json::from_str::<Value>(reply.trim()) {
            Ok(v) => v.get("ok").is_some(),
            Err(_) => false,
        };
        if got.is_err() || !answered {
            bad.push(format!("{}: {got:?} {reply:?}", path.display()));
        }
        assert!(!run.exited(), "synwall exited on {}", path.display());
    }
    run.signal("TERM");
    let result = run.wait(RUN_TIMEOUT);
    assert!(
        result.exit.status.success() && !result.exit.stderr.contains("panicked"),
        "{:?}\n{}",
        result.exit.status,
        result.exit.stderr
    );
    assert_none_failed("requests without a reply", &bad);
}
