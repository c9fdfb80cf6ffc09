//! Careless and hostile input from an operator's side, with the real
//! binaries (issue 27, items 6, 11 and 12): `--check` refuses what cannot
//! start, durations and counts on the socket are bounded (a block is never
//! lost to an `until` that wrapped), a request with a duplicate key or a
//! reason with control characters is refused, and `synwallctl` never
//! prints the appliance's text raw to a terminal.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use synwall_tests::fixtures::{acme, acme_beta_10};
use synwall_tests::*;

const WAIT: Duration = Duration::from_secs(60);

/// `synwall --check` on the usual test config, changed by `edit`.
fn check(name: &str, edit: impl FnOnce(String, &TestDir) -> String) -> Exit {
    let dir = TestDir::new(name);
    let scenario = Scenario::new(Vec::new(), Vec::new()).customers(&acme(""));
    let text = edit(scenario.config(&dir), &dir);
    let path = write_config(&dir, "synwall.toml", &text);
    run_synwall(&dir, &["--config", path.to_str().unwrap(), "--check"])
}

#[track_caller]
fn refused(exit: &Exit, words: &[&str]) {
    assert_eq!(exit.code(), Some(2), "accepted: {}", exit.stdout);
    for w in words {
        assert!(exit.stderr.contains(w), "no {w:?} in: {}", exit.stderr);
    }
}

#[test]
fn check_refuses_configs_that_cannot_start() {
    let exit = check("check-lcore-5000", |c, _| {
        c.replace("cores = [1]", "cores = [5000]")
    });
    refused(&exit, &["dpdk.cores[0]", "lcore 5000", "RTE_MAX_LCORE"]);

    if cpus() < 100 {
        let exit = check("check-lcore-cpu", |c, _| {
            c.replace("cores = [1]", "cores = [100]")
        });
        refused(&exit, &["dpdk.cores", "CPU 100", "--lcores"]);
    }

    let exit = check("check-socket-long", |c, d| {
        let long = d.join(&"s".repeat(200));
        c.replace(
            &toml_str(&d.join("control.sock").display().to_string()),
            &toml_str(&long.display().to_string()),
        )
    });
    refused(&exit, &["control.socket", "sun_path"]);

    let exit = check("check-socket-group", |c, _| {
        c.replace(
            "[control]\n",
            "[control]\nsocket_group = \"no-such-group-27\"\n",
        )
    });
    refused(
        &exit,
        &["control.socket_group", "no-such-group-27", "groupadd"],
    );

    let exit = check("check-hook", |c, _| {
        c.replace(
            "[control]\n",
            "[control]\nhook = { command = [\"/nonexistent/synwall-hook\"] }\n",
        )
    });
    refused(
        &exit,
        &[
            "control.hook",
            "/nonexistent/synwall-hook",
            "does not exist",
        ],
    );

    // Events on a read-only filesystem (a tmpfs the test mounts read-only;
    // needs root, as mounting does).
    let dir = TestDir::new("check-events-ro");
    let ro = dir.join("ro");
    fs::create_dir_all(&ro).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
        .arg(&ro)
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let scenario = Scenario::new(Vec::new(), Vec::new()).customers(&acme(""));
        let text = scenario.config(&dir).replace(
            &toml_str(&dir.join("events.jsonl").display().to_string()),
            &toml_str(&ro.join("log/events.jsonl").display().to_string()),
        );
        let path = write_config(&dir, "synwall.toml", &text);
        let exit = run_synwall(&dir, &["--config", path.to_str().unwrap(), "--check"]);
        let _ = Command::new("umount").arg(&ro).status();
        refused(&exit, &["control.events", "cannot be created", "Read-only"]);
    } else {
        eprintln!("note: cannot mount a tmpfs (not root?): read-only events not tested");
    }
}

#[test]
fn check_refuses_mapped_prefixes_and_warns_of_catch_alls() {
    let exit = check("check-mapped", |c, _| {
        c.replace("198.51.100.0/24", "::ffff:198.51.100.0/120")
    });
    refused(&exit, &["IPv4-mapped", "write it as 198.51.100.0/24"]);

    let exit = check("check-catch-all", |c, _| {
        c.replace("198.51.100.0/24", "0.0.0.0/0")
    });
    assert_eq!(exit.code(), Some(0), "{}", exit.stderr);
    assert!(
        exit.stderr
            .contains("warning: customer \"acme\" owns 0.0.0.0/0"),
        "{}",
        exit.stderr
    );

    let exit = check("check-exempt-all", |c, _| {
        c.replace(
            "[control]\n",
            "[detect]\nexempt_destinations = [\"0.0.0.0/0\"]\n\n[control]\n",
        )
    });
    assert_eq!(exit.code(), Some(0), "{}", exit.stderr);
    assert!(
        exit.stderr.contains("enforcement is off for IPv4"),
        "{}",
        exit.stderr
    );
}

fn ask(socket: &Path, line: &str) -> Value {
    control_request(socket, format!("{line}\n").as_bytes(), WAIT).expect("a reply")
}

#[test]
fn operator_input_is_bounded_and_a_long_block_survives_restart() {
    synwallctl_bin();
    let mut s = Scenario::new(Vec::new(), Vec::new()).customers(&acme_beta_10(""));
    s.duration = 300.0;
    let mut running = s.spawn(TestDir::new("careless-operator"), &[]);
    let socket = running.dir().join("control.sock");
    running.wait_for("the control socket", WAIT, |_| {
        control_request(&socket, b"{\"cmd\":\"status\"}\n", WAIT).ok()
    });

    // Durations that wrapped `until` into 1970 are refused, by name.
    for long in [
        "18446744073709551615ms",
        "9223372036854775807ms",
        "213503982334601d",
        "366d",
    ] {
        let (code, _, err) = ctl(&socket, &["block", "acme", "--duration", long]);
        assert_eq!(code, Some(1), "{long}: {err}");
        assert!(
            err.contains("at most 365d; for a standing block omit the duration"),
            "{long}: {err}"
        );
    }
    let r = ask(
        &socket,
        r#"{"cmd":"set-limit","customer":"acme","window":"5m","value":18446744073709551615}"#,
    );
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("at most"), "{r}");

    // A duplicate key is refused: no reload runs.
    let r = ask(&socket, r#"{"cmd":"status","cmd":"reload"}"#);
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("duplicate key"),
        "{r}"
    );

    // Control characters in a reason are refused, a NUL included.
    for reason in ["line\\nforged row", "nul\\u0000cut", "\\u001b[31mred"] {
        let r = ask(
            &socket,
            &format!(r#"{{"cmd":"block","customer":"beta","reason":"{reason}"}}"#),
        );
        assert_eq!(r["ok"], false, "{reason}: {r}");
        assert!(
            r["error"].as_str().unwrap().contains("control character"),
            "{r}"
        );
    }
    assert!(
        running
            .events()
            .iter()
            .all(|e| e["kind"] != "reload" && e["kind"] != "block"),
        "a refused request changed something: {:?}",
        running.events()
    );

    // synwallctl escapes what it prints: an error quoting the request.
    let (code, out, err) = ctl(&socket, &["customer", "evil\x1b[2J\nforged"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        !err.contains('\x1b'),
        "raw escape reached the terminal: {err:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "a forged line: {err:?}");
    assert!(err.contains("\\u{1b}[2J\\nforged"), "{err:?}");

    // The longest block allowed: until a year from now, kept over restart.
    let (code, out, err) = ctl(&socket, &["--json", "block", "acme", "--duration", "365d"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    let until = reply["event"]["until"].as_str().unwrap().to_owned();
    assert!(until.as_str() > "2026", "until {until}");
    running.signal("TERM");
    let result = running.wait(WAIT);
    assert_eq!(result.exit.code(), Some(0), "{}", result.exit.stderr);

    let mut again = s.spawn_prepared(result.dir, &[]);
    again.wait_for("the control socket after restart", WAIT, |_| {
        control_request(&socket, b"{\"cmd\":\"status\"}\n", WAIT).ok()
    });
    let blocks = ask(&socket, r#"{"cmd":"blocks"}"#);
    let acme = blocks["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["customer"] == "acme")
        .unwrap_or_else(|| panic!("acme's block lost on restart: {blocks}"));
    assert_eq!(acme["until"].as_str(), Some(until.as_str()), "{acme}");
    again.signal("TERM");
    again.wait(WAIT);
}

/// Whether process `pid` exists (a zombie counts as gone).
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s[s.rfind(')')? + 1..].to_owned();
            after.split_whitespace().next().map(|st| st != "Z")
        })
        .unwrap_or(false)
}

/// A hook that starts a child in a session of its own (`setsid`) and
/// hangs: at its timeout the hook and that child are both killed.
#[test]
fn a_hook_child_that_calls_setsid_dies_at_the_timeout() {
    let dir = TestDir::new("careless-hook-setsid");
    let script = dir.join("hook.sh");
    fs::write(
        &script,
        "#!/bin/sh\nsetsid sh -c 'echo $$ > \"$1/escaped.pid\"; exec sleep 300' sh \"$1\" &\nsleep 300\n",
    )
    .unwrap();
    let mut s = Scenario::new(Vec::new(), Vec::new())
        .customers(&acme_beta_10(""))
        .control(&format!(
            "hook = {{ command = [\"/bin/sh\", {}, {}], timeout = \"1s\" }}",
            toml_str(&script.display().to_string()),
            toml_str(&dir.path.display().to_string())
        ));
    s.duration = 120.0;
    let mut running = s.spawn(dir, &[]);
    let socket = running.dir().join("control.sock");
    running.wait_for("the control socket", WAIT, |_| {
        control_request(&socket, b"{\"cmd\":\"status\"}\n", WAIT).ok()
    });
    let r = ask(&socket, r#"{"cmd":"block","customer":"acme"}"#);
    assert_eq!(r["ok"], true, "{r}");
    let pid_file = running.dir().join("escaped.pid");
    let pid: i32 = wait_until("the hook's setsid child", WAIT, || {
        fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    assert!(alive(pid), "the child never ran");
    // Timeout 1 s, then the supervisor's kill: well within 10 s.
    let gone = wait_until_or("the setsid child killed", Duration::from_secs(10), || {
        (!alive(pid)).then_some(())
    });
    if gone.is_none() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("the hook's setsid child {pid} outlived the hook's timeout");
    }
    running.signal("TERM");
    running.wait(WAIT);
}

/// Polls `f` until it answers or `timeout` passes (then `None`).
fn wait_until_or<T>(_what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let started = std::time::Instant::now();
    while started.elapsed() < timeout {
        if let Some(t) = f() {
            return Some(t);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
