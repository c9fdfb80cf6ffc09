//! The event log on a full disk and under logrotate (issue 27): every line
//! in the file is a whole event, failures show in `status`, and SIGHUP and
//! `reload` reopen the file that logrotate moved away.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use synwall_tests::fixtures::acme_beta_10;
use synwall_tests::*;

const WAIT: Duration = Duration::from_secs(60);

fn scenario() -> Scenario {
    let mut s = Scenario::new(Vec::new(), Vec::new()).customers(&acme_beta_10(""));
    s.duration = 120.0;
    s
}

fn ask(socket: &Path, request: &str) -> Value {
    control_request(
        socket,
        format!("{request}\n").as_bytes(),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{request}: {e}"))
}

/// Blocks and unblocks acme `n` times with `reason`: 2n events.
fn churn(socket: &Path, n: usize, reason: &str) {
    for _ in 0..n {
        let r = ask(
            socket,
            &format!(r#"{{"cmd":"block","customer":"acme","reason":"{reason}"}}"#),
        );
        assert_eq!(r["ok"], true, "{r}");
        let r = ask(
            socket,
            &format!(r#"{{"cmd":"unblock","customer":"acme","reason":"{reason}"}}"#),
        );
        assert_eq!(r["ok"], true, "{r}");
    }
}

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        fs::create_dir_all(&path).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .unwrap();
        assert!(ok.success(), "mounting a tmpfs on {}", path.display());
        SmallDisk(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn every_line_is_a_whole_event_on_a_full_disk() {
    let dir = TestDir::new("events-full");
    let logs = dir.join("logs");
    let disk = SmallDisk::mount(logs.clone(), "16k");
    // Three of the four pages: the log has one page before the disk is full.
    let filler = logs.join("filler");
    fs::write(&filler, vec![b'x'; 3 * 4096]).unwrap();
    let s = scenario();
    s.prepare(&dir);
    let d = dir.path.display().to_string();
    let text = s.config(&dir).replace(
        &format!("{d}/events.jsonl"),
        &format!("{d}/logs/events.jsonl"),
    );
    write_config(&dir, "synwall.toml", &text);
    let mut running = s.spawn_prepared(dir, &[]);
    let socket = running.dir().join("control.sock");
    running.wait_forwarding(WAIT);
    churn(&socket, 40, "while full");
    let status = ask(&socket, r#"{"cmd":"status"}"#);

    // Space again: the next events are written, whole.
    fs::remove_file(&filler).unwrap();
    churn(&socket, 3, "space again");
    let path = logs.join("events.jsonl");
    running.wait_for("the events after space returned", WAIT, |_| {
        fs::read_to_string(&path)
            .ok()
            .filter(|t| t.matches("space again").count() == 6)
    });
    running.signal("TERM");
    let result = running.wait(WAIT);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'), "a torn last line: {text:?}");
    for line in text.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "a torn line in the event log: {line:?}"
        );
    }
    let failures = status["event_log"]["write_failures"].as_u64();
    assert!(failures.is_some_and(|n| n > 0), "{status}");
    // Unmounted before the test directory is removed.
    drop(disk);
    drop(result);
}

#[test]
fn sighup_and_reload_reopen_a_rotated_event_log() {
    let s = scenario();
    let mut running = s.spawn(TestDir::new("events-rotate"), &[]);
    let socket = running.dir().join("control.sock");
    running.wait_forwarding(WAIT);
    let path = running.dir().join("events.jsonl");
    churn(&socket, 1, "before");
    running.wait_for_event("the first block", WAIT, |e| e["kind"] == "unblock");

    // What logrotate does: move the file, then `systemctl reload synwall`.
    fs::rename(&path, running.dir().join("events.jsonl.1")).unwrap();
    running.signal("HUP");
    running.wait_for_event("a reload event in a new events.jsonl", WAIT, |e| {
        e["kind"] == "reload"
    });
    fs::rename(&path, running.dir().join("events.jsonl.2")).unwrap();
    let r = ask(&socket, r#"{"cmd":"reload"}"#);
    assert_eq!(r["ok"], true, "{r}");
    churn(&socket, 1, "after");
    running.wait_for_event("the block after `reload`", WAIT, |e| {
        e["kind"] == "unblock" && e["reason"] == "after"
    });
    running.signal("TERM");
    let result = running.wait(WAIT);
    assert_eq!(result.exit.code(), Some(0), "{}", result.exit.stderr);
}
