//! Snapshots across restarts, with the real binary: a block and the window
//! counts survive a clean restart and a `kill -9`; a corrupt snapshot stops
//! the start (naming the file) unless `--fresh-state`.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_tests::*;

const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

const WINDOWS: &str = "[windows]\n\"5m\" = 100\n\"1h\" = 100000\n\"1d\" = 100000";

const CUSTOMERS: &str = "[[customer]]\nname = \"spammer\"\nprefixes = [\"10.1.0.0/16\"]\n\n\
     [[customer]]\nname = \"quiet\"\nprefixes = [\"10.2.0.0/16\"]\n";

/// The `i`-th SYN to port 25 from 10.<net>.0.0/16 (`seed` varies the
/// sequence number so that different runs send different frames).
fn syn_from(net: u8, i: u32, seed: u32) -> Vec<u8> {
    let src = Ipv4Addr::new(10, net, (i / 250) as u8, (i % 250) as u8 + 1);
    FrameBuilder::tcp_v4(src, MX, 1024 + i as u16, 25, SYN)
        .seq(i.wrapping_mul(2_654_435_761) ^ seed)
        .build()
}

fn syns(net: u8, n: u32, seed: u32) -> Vec<Vec<u8>> {
    (0..n).map(|i| syn_from(net, i, seed)).collect()
}

fn scenario(inside: Vec<Vec<u8>>) -> Scenario {
    Scenario::new(inside, Vec::new())
        .sections(WINDOWS)
        .customers(CUSTOMERS)
}

/// Run 1: the spammer sends 1,000 SYNs (100 forwarded, blocked), quiet 10.
fn first_run(name: &str) -> RunResult {
    let mut frames = syns(1, 1_000, 1);
    frames.extend(syns(2, 10, 1));
    let run = scenario(frames).run(name);
    run.assert_customers(&[("spammer", 1_000, 100, 900), ("quiet", 10, 10, 0)]);
    assert_eq!(run.customer_state("spammer").as_deref(), Some("blocked"));
    assert_eq!(run.events_of("block", Some("spammer")).len(), 1);
    run.assert_consistent();
    run
}

/// Run 2 input: 5 SYNs from the spammer, 3 from quiet.
fn second_input() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let spam = syns(1, 5, 2);
    let quiet = syns(2, 3, 2);
    let mut frames = spam.clone();
    frames.extend(quiet.iter().cloned());
    (frames, quiet)
}

/// Asserts run 2 found the block and the counts of run 1.
#[track_caller]
fn assert_block_kept(run: &RunResult, quiet: &[Vec<u8>], quiet_before: u64) {
    assert!(
        run.exit.stdout.contains("restored state of"),
        "no restore reported:\n{}",
        run.exit.stdout
    );
    // Only quiet's SYNs go out: every one of the spammer's is dropped.
    assert_frames_eq(&run.out_frames(), quiet, "outside tx");
    run.assert_customers(&[("spammer", 5, 0, 5), ("quiet", 3, 3, 0)]);
    assert_eq!(run.customer_state("spammer").as_deref(), Some("blocked"));
    // Window counts carried over: run 1's 100 forwarded; nothing new.
    assert_eq!(run.window_count("spammer", "5m"), 100);
    assert_eq!(run.window_count("spammer", "1d"), 100);
    assert_eq!(run.window_count("quiet", "5m"), quiet_before + 3);
    run.assert_verdicts(&Verdicts {
        rx: 8,
        forwarded: 3,
        dropped_blocked: 5,
        ..Verdicts::default()
    });
    run.assert_consistent();
    // Still the one block of run 1: restoring it is not a new block.
    assert_eq!(
        run.events_of("block", Some("spammer")).len(),
        1,
        "{:?}",
        run.events()
    );
}

fn state_file(dir: &TestDir) -> std::path::PathBuf {
    dir.join("state").join("state.json")
}

/// The snapshot's entry for `customer`, if the file exists and parses.
fn snapshot_customer(path: &Path, customer: &str) -> Option<Value> {
    let text = fs::read_to_string(path).ok()?;
    let snap: Value = serde_json::from_str(&text).ok()?;
    snap["customers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == customer)
        .cloned()
}

#[test]
fn restart_keeps_block_and_window_counts() {
    let run1 = first_run("restart");
    let dir = run1.dir;
    let snap = snapshot_customer(&state_file(&dir), "spammer")
        .expect("state.json with the spammer after a clean exit");
    assert!(
        !snap["block"].is_null(),
        "snapshot without the block: {snap}"
    );

    let (frames, quiet) = second_input();
    let run2 = scenario(frames).run_with(dir, &[]);
    assert!(run2.exit.status.success(), "{:?}", run2.exit);
    assert_block_kept(&run2, &quiet, 10);
}

#[test]
fn corrupt_snapshot_refuses_to_start_unless_fresh_state() {
    // Garbage, and half of a real snapshot.
    for (what, truncate) in [("garbage", false), ("truncated", true)] {
        let run1 = first_run(&format!("corrupt-{what}"));
        let dir = run1.dir;
        let path = state_file(&dir);
        let good = fs::read(&path).expect("state.json after run 1");
        let bad = if truncate {
            good[..good.len() / 2].to_vec()
        } else {
            b"\x00\x01 this is not a snapshot {{{".to_vec()
        };
        fs::write(&path, &bad).unwrap();

        let (frames, quiet) = second_input();
        let refused = scenario(frames.clone()).run_with(dir, &[]);
        assert!(
            !refused.exit.status.success(),
            "{what}: started on a corrupt snapshot\n{:?}",
            refused.exit
        );
        let path_text = path.display().to_string();
        assert!(
            refused.exit.stderr.contains(&path_text),
            "{what}: error does not name {path_text}:\n{}",
            refused.exit.stderr
        );
        assert!(
            refused.exit.stderr.contains("--fresh-state"),
            "{what}: error does not say how to start anyway:\n{}",
            refused.exit.stderr
        );
        // Refusing must not touch the file (the operator may repair it).
        assert_eq!(fs::read(&path).unwrap(), bad, "{what}: snapshot rewritten");
        assert!(refused.out_frames().is_empty());

        // --fresh-state: starts with no state, so the spammer is open again
        // and its 5 SYNs are forwarded (5 < 100).
        let dir = refused.dir;
        let fresh = scenario(frames.clone()).run_with(dir, &["--fresh-state"]);
        assert!(
            fresh.exit.status.success(),
            "{what}: --fresh-state did not start\n{:?}",
            fresh.exit
        );
        assert!(
            fresh.exit.stderr.contains(&path_text),
            "{what}: --fresh-state should still say what it ignored:\n{}",
            fresh.exit.stderr
        );
        assert_frames_eq(&fresh.out_frames(), &frames, "outside tx");
        fresh.assert_customers(&[("spammer", 5, 5, 0), ("quiet", 3, 3, 0)]);
        assert_eq!(fresh.customer_state("spammer").as_deref(), Some("open"));
        assert_eq!(fresh.window_count("spammer", "5m"), 5);
        fresh.assert_consistent();
        // ... and it wrote a good snapshot on exit.
        let snap = snapshot_customer(&state_file(&fresh.dir), "spammer")
            .expect("a readable state.json after the fresh run");
        assert!(snap["block"].is_null(), "{snap}");
        assert_eq!(fresh.out_frames().len(), 5 + quiet.len());
    }
}

#[test]
fn kill_9_after_a_snapshot_keeps_the_block() {
    let mut frames = syns(1, 1_000, 1);
    frames.extend(syns(2, 10, 1));
    let mut long = scenario(frames).control("snapshot_interval = \"1s\"");
    long.duration = 120.0;
    let dir = TestDir::new("kill9");
    let mut running = long.spawn(dir, &[]);
    let path = state_file(running.dir());
    // The block happens within a tick; the periodic snapshot (every second)
    // must then contain it.
    running.wait_for_event("the spammer's block", Duration::from_secs(30), |e| {
        e["kind"] == "block" && e["customer"] == "spammer"
    });
    let snap = running.wait_for("a snapshot with the block", Duration::from_secs(30), |_| {
        snapshot_customer(&path, "spammer").filter(|c| !c["block"].is_null())
    });
    assert!(
        !running.exited(),
        "synwall stopped early\n{}",
        running.output()
    );
    let dir = running.kill();
    assert!(snap["seen"].as_u64().is_some_and(|n| n > 0), "{snap}");

    // No clean shutdown happened: run 2 restores the periodic snapshot.
    let (frames, quiet) = second_input();
    let run2 = scenario(frames).run_with(dir, &[]);
    assert!(run2.exit.status.success(), "{:?}", run2.exit);
    assert_block_kept(&run2, &quiet, 10);
}

/// Runs `second_input` on `dir` whose snapshot was replaced by `bad`:
/// synwall must refuse it as corrupt, naming it, and leave it as it was.
#[track_caller]
fn assert_refused_as_corrupt(dir: TestDir, bad: &[u8], what: &str) -> TestDir {
    let path = state_file(&dir);
    fs::write(&path, bad).unwrap();
    let (frames, _) = second_input();
    let refused = scenario(frames).run_with(dir, &[]);
    assert!(
        !refused.exit.status.success(),
        "{what}: started on it\n{:?}",
        refused.exit
    );
    let stderr = &refused.exit.stderr;
    assert!(
        stderr.contains(&path.display().to_string())
            && stderr.contains("corrupt")
            && stderr.contains("--fresh-state"),
        "{what}: {stderr}"
    );
    assert_eq!(fs::read(&path).unwrap(), bad, "{what}: snapshot rewritten");
    refused.dir
}

/// A snapshot that parses but cannot be true is refused like a damaged
/// one: a block until the end of time (u64::MAX wraps to 1970), no
/// windows, timestamps at the edge of i64, saved in 2100; and a flipped bit
/// in a count, which only a checksum sees.
#[test]
fn a_snapshot_that_cannot_be_true_is_refused() {
    let run1 = first_run("untrue");
    let mut dir = run1.dir;
    let good = fs::read(state_file(&dir)).unwrap();
    let edits: [(&str, Edit); 5] = [
        ("until_ms = u64::MAX", |s| {
            spammer(s)["block"]["until_ms"] = u64::MAX.into();
        }),
        ("no windows", |s| s["windows"] = Value::Array(Vec::new())),
        ("newest_start_ms = i64::MAX", |s| {
            spammer(s)["windows"][0]["newest_start_ms"] = i64::MAX.into();
        }),
        ("newest_start_ms = i64::MIN", |s| {
            spammer(s)["windows"][0]["newest_start_ms"] = i64::MIN.into();
        }),
        ("saved in 2100", |s| {
            s["saved_at_ms"] = 4_102_444_800_000u64.into();
        }),
    ];
    for (what, edit) in edits {
        let mut snap: Value = serde_json::from_slice(&good).unwrap();
        edit(&mut snap);
        // As a synwall without checksums wrote it: the checks must hold
        // without one.
        snap["version"] = 1.into();
        snap.as_object_mut().unwrap().remove("crc32");
        dir = assert_refused_as_corrupt(dir, &serde_json::to_vec(&snap).unwrap(), what);
    }
    // One bit of one digit: 1000 SYNs seen becomes 1001.
    let text = String::from_utf8(good.clone()).unwrap();
    assert!(text.contains("\"seen\":1000,"), "{text}");
    let flipped = text.replacen("\"seen\":1000,", "\"seen\":1001,", 1);
    dir = assert_refused_as_corrupt(dir, flipped.as_bytes(), "a flipped bit");
    // The good one still starts.
    fs::write(state_file(&dir), &good).unwrap();
    let (frames, quiet) = second_input();
    let run2 = scenario(frames).run_with(dir, &[]);
    assert!(run2.exit.status.success(), "{:?}", run2.exit);
    assert_block_kept(&run2, &quiet, 10);
}

/// A change made to a snapshot's JSON.
type Edit = fn(&mut Value);

/// The spammer's entry of a snapshot.
fn spammer(snap: &mut Value) -> &mut Value {
    snap["customers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == "spammer")
        .expect("the spammer in the snapshot")
}

/// A crash between the two renames of a snapshot write leaves only
/// `state.json.prev`: it is used, and an event says so.
#[test]
fn only_the_previous_snapshot_is_used_and_said() {
    let run1 = first_run("prev-only");
    let dir = run1.dir;
    let state = state_file(&dir);
    fs::rename(&state, state.with_file_name("state.json.prev")).unwrap();
    let (frames, quiet) = second_input();
    let run2 = scenario(frames).run_with(dir, &[]);
    assert!(run2.exit.status.success(), "{:?}", run2.exit);
    assert_block_kept(&run2, &quiet, 10);
    let restores = run2.events_of("restore", None);
    assert!(
        restores.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("state.json.prev"))),
        "no event says the previous snapshot was used: {restores:?}"
    );
}

/// A snapshot write that fails takes its temp file away, and `status`
/// says that snapshots fail (not only the metrics).
#[test]
fn a_failed_snapshot_write_leaves_no_temp_file_and_shows_in_status() {
    let dir = TestDir::new("snapshot-fails");
    // A non-empty directory where state.json goes: every write fails at
    // the end, after the temp file is written.
    fs::create_dir_all(dir.join("state/state.json/x")).unwrap();
    let mut s = scenario(syns(1, 10, 1)).control("snapshot_interval = \"200ms\"");
    s.duration = 60.0;
    let mut running = s.spawn(dir, &["--fresh-state"]);
    let socket = running.dir().join("control.sock");
    let status = running.wait_for(
        "status with snapshot failures",
        Duration::from_secs(30),
        |_| {
            control_request(&socket, b"{\"cmd\":\"status\"}\n", Duration::from_secs(5))
                .ok()
                .filter(|v| v["snapshots"]["failures"].as_u64().is_some_and(|n| n >= 2))
        },
    );
    let error = status["snapshots"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("state.json"), "{status}");
    let tmp = running.dir().join("state/state.json.tmp");
    assert!(!tmp.exists(), "{} left behind", tmp.display());
    running.signal("TERM");
    let _ = running.wait(Duration::from_secs(30));
}

/// `state.json` that is not a regular file (a FIFO, a link to /dev/zero)
/// or is too large fails the start at once, naming it; it is never read
/// until memory runs out.
#[test]
fn a_state_file_that_is_not_a_bounded_regular_file_fails_fast() {
    let dir = TestDir::new("state-not-file");
    let state = state_file(&dir);
    fs::create_dir_all(state.parent().unwrap()).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(&state)
        .status()
        .unwrap();
    assert!(fifo.success());
    let mut dir = dir;
    // Built before the clock starts.
    synwall_bin();
    for what in ["a FIFO", "a link to /dev/zero", "a 3 GiB sparse file"] {
        if what.contains("link") {
            fs::remove_file(&state).unwrap();
            std::os::unix::fs::symlink("/dev/zero", &state).unwrap();
        } else if what.contains("sparse") {
            fs::remove_file(&state).unwrap();
            let f = fs::File::create(&state).unwrap();
            f.set_len(3 << 30).unwrap();
        }
        let started = std::time::Instant::now();
        let (frames, _) = second_input();
        let refused = scenario(frames).run_with(dir, &[]);
        assert!(!refused.exit.status.success(), "{what}: {:?}", refused.exit);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert!(
            refused.exit.stderr.contains(&state.display().to_string()),
            "{what}: {}",
            refused.exit.stderr
        );
        dir = refused.dir;
    }
}
