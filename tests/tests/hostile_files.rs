//! Another local user against a running synwall (issue 27): directories
//! others can write (where they plant symlinks), a socket someone else
//! listens on, and a second appliance on the same state directory.
//!
//! "Another user" is `nobody`: the tests run as root and hand it files and
//! directories with chown, or run a process as it.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use synwall_tests::fixtures::acme_beta_10;
use synwall_tests::*;

const NOBODY: u32 = 65534;

fn scenario() -> Scenario {
    Scenario::new(Vec::new(), Vec::new()).customers(&acme_beta_10(""))
}

/// Writes the scenario's inputs and config in `dir` with `edit` applied to
/// the config text; returns the config's path.
fn config_in(dir: &TestDir, edit: impl FnOnce(String) -> String) -> PathBuf {
    let s = scenario();
    s.prepare(dir);
    write_config(dir, "synwall.toml", &edit(s.config(dir)))
}

fn run(dir: &TestDir, config: &Path, extra: &[&str]) -> Exit {
    let mut args = vec!["--config", config.to_str().unwrap(), "--duration", "1"];
    args.extend_from_slice(extra);
    run_synwall(dir, &args)
}

/// A directory `name` in `dir` owned by `uid` with `mode`.
fn hostile_dir(dir: &TestDir, name: &str, uid: u32, mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::create_dir_all(&path).unwrap();
    std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Plants `link -> target` as `nobody` would.
fn plant(link: &Path, target: &Path) {
    symlink(target, link).unwrap();
    std::os::unix::fs::lchown(link, Some(NOBODY), Some(NOBODY)).unwrap();
}

/// The refusal of a directory: exit non-zero before forwarding, an error
/// naming the directory, its owner, its mode and the fix.
#[track_caller]
fn assert_refused(exit: &Exit, dir: &Path, owner: &str, mode: &str) {
    assert_ne!(exit.code(), Some(0), "started: {exit:?}");
    let shown = dir.display().to_string();
    for needle in [shown.as_str(), owner, mode, "chmod"] {
        assert!(
            exit.stderr.contains(needle),
            "the error does not say {needle:?}:\n{}",
            exit.stderr
        );
    }
}

/// Both `--check` and a start refuse directory `bad` ([`assert_refused`]).
#[track_caller]
fn assert_check_and_start_refused(
    dir: &TestDir,
    config: &Path,
    bad: &Path,
    owner: &str,
    mode: &str,
) {
    for args in [&["--check"][..], &[]] {
        assert_refused(&run(dir, config, args), bad, owner, mode);
    }
}

#[test]
fn a_state_dir_others_can_write_is_refused_and_planted_links_are_not_followed() {
    let dir = TestDir::new("hostile-state");
    let victim = dir.join("victim");
    fs::write(&victim, b"precious").unwrap();
    // World-writable (even with the sticky bit, like /tmp): anyone may
    // plant names in it.
    let state = hostile_dir(&dir, "state", 0, 0o1777);
    plant(&state.join("state.json.tmp"), &victim);
    let config = config_in(&dir, |c| c);
    assert_check_and_start_refused(&dir, &config, &state, "root", "1777");
    assert_eq!(fs::read(&victim).unwrap(), b"precious", "written through");

    // Owned by another user: refused too.
    std::os::unix::fs::chown(&state, Some(NOBODY), None).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
    let exit = run(&dir, &config, &[]);
    assert_refused(&exit, &state, "nobody", "0755");

    // Ours again, with a link planted while it was not: not followed.
    std::os::unix::fs::chown(&state, Some(0), None).unwrap();
    let exit = run(&dir, &config, &[]);
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert_eq!(fs::read(&victim).unwrap(), b"precious", "written through");
    assert!(state.join("state.json").is_file());
}

#[test]
fn an_events_dir_of_another_user_is_refused() {
    let dir = TestDir::new("hostile-events");
    let victim = dir.join("victim");
    fs::write(&victim, b"precious").unwrap();
    let logs = hostile_dir(&dir, "logs", NOBODY, 0o755);
    plant(&logs.join("events.jsonl"), &victim);
    let d = dir.path.display().to_string();
    let config = config_in(&dir, |c| {
        c.replace(
            &format!("{d}/events.jsonl"),
            &format!("{d}/logs/events.jsonl"),
        )
    });
    assert_check_and_start_refused(&dir, &config, &logs, "nobody", "0755");
    assert_eq!(fs::read(&victim).unwrap(), b"precious", "appended through");

    // Ours, with the link still there: refused, naming the link.
    std::os::unix::fs::chown(&logs, Some(0), None).unwrap();
    let exit = run(&dir, &config, &[]);
    assert_ne!(exit.code(), Some(0), "{exit:?}");
    assert!(
        exit.stderr.contains("events.jsonl") && exit.stderr.contains("symbolic link"),
        "{}",
        exit.stderr
    );
    assert_eq!(fs::read(&victim).unwrap(), b"precious", "appended through");
}

#[test]
fn a_socket_dir_others_can_write_is_refused() {
    let dir = TestDir::new("hostile-socket");
    let run_dir = hostile_dir(&dir, "run", 0, 0o777);
    let d = dir.path.display().to_string();
    let config = config_in(&dir, |c| {
        c.replace(
            &format!("{d}/control.sock"),
            &format!("{d}/run/control.sock"),
        )
    });
    assert_check_and_start_refused(&dir, &config, &run_dir, "root", "0777");
}

/// A process as `nobody` listening on `socket` in place of synwall: it
/// answers every request line with `{"ok":true}` and notes it in `log`.
fn impostor(socket: &Path, log: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    const SERVER: &str = r#"
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o666)
s.listen(8)
while True:
    c, _ = s.accept()
    try:
        f = c.makefile("rwb")
        line = f.readline()
        with open(log, "ab") as l:
            l.write(line)
        f.write(b'{"ok":true,"message":"done","until":"2099-01-01T00:00:00.000Z"}\n')
        f.flush()
    except OSError:
        pass
    c.close()
"#;
    Command::new("/usr/bin/python3")
        .args(["-I", "-c", SERVER])
        .arg(socket)
        .arg(log)
        .uid(NOBODY)
        .gid(NOBODY)
        .current_dir("/")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting python3 as nobody")
}

#[test]
fn synwallctl_refuses_to_speak_to_a_server_of_another_user() {
    let dir = TestDir::new("impostor");
    let run_dir = hostile_dir(&dir, "run", NOBODY, 0o755);
    let socket = run_dir.join("control.sock");
    let log = run_dir.join("heard");
    let mut server = impostor(&socket, &log);
    wait_until("the impostor's socket", Duration::from_secs(10), || {
        socket.exists().then_some(())
    });
    let out = Command::new(synwallctl_bin())
        .arg("--socket")
        .arg(&socket)
        .args(["block", "acme", "--reason", "abuse"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    assert!(
        stderr.contains("nobody") && stderr.contains(&socket.display().to_string()),
        "the error should name the server's user and the socket: {stderr}"
    );
    assert!(
        fs::read(&log).unwrap_or_default().is_empty(),
        "the request reached the impostor"
    );
}

#[test]
fn a_second_appliance_on_the_same_state_dir_is_refused() {
    let mut first = scenario();
    first.duration = 60.0;
    let mut running = first.spawn(TestDir::new("lock-first"), &[]);
    running.wait_forwarding(WAIT);
    let state = running.dir().join("state");
    let dir = TestDir::new("lock-second");
    let d = dir.path.display().to_string();
    let config = config_in(&dir, |c| {
        c.replace(&format!("{d}/state"), &state.display().to_string())
    });
    let exit = run(&dir, &config, &[]);
    assert_ne!(exit.code(), Some(0), "a second appliance started: {exit:?}");
    let pid = running.pid().to_string();
    assert!(
        exit.stderr.contains(&pid) && exit.stderr.contains(&state.display().to_string()),
        "the error should name the state dir and pid {pid}: {}",
        exit.stderr
    );
    running.signal("TERM");
    let result = running.wait(WAIT);
    assert_eq!(result.exit.code(), Some(0), "{}", result.exit.stderr);
}

const WAIT: Duration = Duration::from_secs(60);
