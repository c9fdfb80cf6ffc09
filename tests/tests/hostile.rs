//! Another local user against a running synwall (issue 27): directories
//! others can write (where they plant symlinks), and a second appliance
//! on the same state directory.
//!
//! "Another user" is `nobody`: the tests run as root and hand it files and
//! directories with chown, or run a process as it.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

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

const WAIT: std::time::Duration = std::time::Duration::from_secs(60);
