//! `synwall --check` and start-up failures: a good config exits 0; a bad one
//! exits non-zero naming the offending key; a config naming a port that does
//! not exist fails to start with a clear message instead of hanging.

use synwall_tests::fixtures::acme;
use synwall_tests::*;

/// Writes the scenario's config (and empty captures) and runs synwall on it.
fn run_with(name: &str, config: impl FnOnce(String) -> String, args: &[&str]) -> Exit {
    let dir = TestDir::new(name);
    let scenario = Scenario::new(Vec::new(), Vec::new()).customers(&acme("blocked = true"));
    for f in ["in0.pcap", "rev0.pcap"] {
        synwall_dataplane::pcap::write_pcap(dir.join(f), &[]).unwrap();
    }
    let text = config(scenario.config(&dir));
    let path = write_config(&dir, "synwall.toml", &text);
    let mut all = vec!["--config", path.to_str().unwrap()];
    all.extend_from_slice(args);
    run_synwall(&dir, &all)
}

fn check(name: &str, config: impl FnOnce(String) -> String) -> Exit {
    run_with(name, config, &["--check"])
}

/// [`check`], which must refuse the config (`what` it holds, for the
/// failure message); returns synwall's stderr.
#[track_caller]
fn refused(name: &str, config: impl FnOnce(String) -> String, what: &str) -> String {
    let exit = check(name, config);
    assert_ne!(exit.code(), Some(0), "accepted {what}");
    exit.stderr
}

#[test]
fn good_config_checks_ok() {
    let exit = check("check-good", |c| c);
    assert_eq!(exit.code(), Some(0), "stderr: {}", exit.stderr);
    assert!(exit.stdout.contains("ok"), "stdout: {}", exit.stdout);
}

/// An edit of the scenario's config.
type Edit = fn(String) -> String;

/// A config edit `check` must refuse, and what its error must say.
struct Refusal {
    name: &'static str,
    edit: Edit,
    /// What the config then holds (for the failure message).
    holds: &'static str,
    /// The key or value the error names.
    says: fn(&str) -> bool,
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let refusals = [
        Refusal {
            name: "check-cidr",
            edit: |c| c.replace("198.51.100.0/24", "198.51.100.0/33"),
            holds: "a /33",
            says: |e| e.contains("prefixes[0]") && e.contains("198.51.100.0/33"),
        },
        Refusal {
            name: "check-cidr6",
            edit: |c| c.replace("2001:db8:1::/48", "2001:db8:1::/129"),
            holds: "a /129",
            says: |e| e.contains("prefixes[1]"),
        },
        Refusal {
            name: "check-unknown",
            edit: |c| format!("{c}\n[block]\nacton = \"drop\"\n"),
            holds: "an unknown key",
            says: |e| e.contains("acton"),
        },
        Refusal {
            name: "check-enum",
            edit: |c| format!("{c}\n[block]\naction = \"explode\"\n"),
            holds: "action = explode",
            says: |e| e.contains("action") || e.contains("explode"),
        },
    ];
    for r in refusals {
        let stderr = refused(r.name, r.edit, r.holds);
        assert!(
            (r.says)(&stderr),
            "{}: the error should name the key and the value: {stderr}",
            r.holds
        );
    }
}

#[test]
fn check_does_not_start_the_dataplane() {
    // --check must not touch the devices: the capture files it would write
    // are not created.
    let dir = TestDir::new("check-no-run");
    let scenario = Scenario::new(Vec::new(), Vec::new()).customers(&acme("blocked = true"));
    let path = write_config(&dir, "synwall.toml", &scenario.config(&dir));
    let exit = run_synwall(&dir, &["--config", path.to_str().unwrap(), "--check"]);
    assert_eq!(exit.code(), Some(0), "stderr: {}", exit.stderr);
    assert!(!dir.join("out0.pcap").exists());
    assert!(!dir.join("back0.pcap").exists());
}

/// Runs that must fail to start, naming what is wrong: a port that does
/// not exist (instead of hanging), and a zero `--duration`.
#[test]
fn bad_starts_fail_clearly() {
    let starts: [(&str, Edit, &[&str], &str); 2] = [
        (
            "missing-port",
            |c| c.replace("inside = \"net_pcap0\"", "inside = \"net_pcap7\""),
            &["--duration", "1"],
            "net_pcap7",
        ),
        ("zero-duration", |c| c, &["--duration", "0"], "--duration"),
    ];
    for (name, edit, args, names) in starts {
        let exit = run_with(name, edit, args);
        assert_ne!(exit.code(), Some(0), "{name}: started");
        assert!(
            exit.stderr.contains(names),
            "{name}: the error should name {names}: {}",
            exit.stderr
        );
    }
}

#[test]
fn missing_config_file_fails() {
    let dir = TestDir::new("missing-config");
    let missing = dir.join("nope.toml");
    let exit = run_synwall(&dir, &["--config", missing.to_str().unwrap(), "--check"]);
    assert_ne!(exit.code(), Some(0));
    assert!(exit.stderr.contains("nope.toml"), "stderr: {}", exit.stderr);
    assert!(!missing.exists());
}

/// An operator's own lcore options in `eal_args`, `-l 0-1 --main-lcore 1`
/// with the worker on lcore 0: synwall adds no `-l` of its own (DPDK would
/// say it ignores one), the control plane runs on lcore 1 and says so, and
/// the worker on lcore 0 forwards and drops as usual.
#[test]
fn operator_lcore_list_is_used_as_given() {
    use std::net::Ipv4Addr;
    use std::time::Duration;
    use synwall_dataplane::craft::FrameBuilder;
    use synwall_dataplane::parse::tcp_flags::SYN;

    let mx = Ipv4Addr::new(93, 184, 216, 34);
    let syn = |src: Ipv4Addr, port: u16| FrameBuilder::tcp_v4(src, mx, port, 25, SYN).build();
    // Three from no customer (forwarded), two from acme (blocked = true).
    let mut frames: Vec<Vec<u8>> = (0..3)
        .map(|i| syn(Ipv4Addr::new(192, 0, 2, 1), 1000 + i))
        .collect();
    frames.extend((0..2).map(|i| syn(Ipv4Addr::new(198, 51, 100, 7), 2000 + i)));
    let mut scenario = Scenario::new(frames, Vec::new()).customers(&acme("blocked = true"));
    scenario.cores = vec![0];
    scenario.extra_eal = ["-l", "0-1", "--main-lcore", "1"]
        .map(String::from)
        .to_vec();
    scenario.duration = 60.0;
    let mut running = scenario.spawn(TestDir::new("lcore-list"), &[]);
    let socket = running.dir().join("control.sock");
    let status = running.wait_for("the dataplane ready", Duration::from_secs(60), |_| {
        control_request(&socket, b"{\"cmd\":\"status\"}\n", Duration::from_secs(5))
            .ok()
            .filter(|v| v["ok"] == true && v["state"] == "forwarding")
    });
    assert_eq!(status["main_lcore"], 1, "{status}");
    assert_eq!(status["workers"][0]["lcore"], 0, "{status}");
    running.signal("TERM");
    let result = running.wait(Duration::from_secs(60));
    assert_eq!(result.exit.code(), Some(0), "{}", result.exit.stderr);
    assert!(
        !result.exit.stderr.contains("is ignored"),
        "DPDK saw a second lcore option: {}",
        result.exit.stderr
    );
    assert_eq!(result.out_frames().len(), 3, "{}", result.exit.stderr);
    assert_eq!(result.verdict("dropped_blocked"), 2, "{}", result.summary);
}

/// A config or customers file over the size bound (256 MiB: a million
/// customers take about 94 MB) is refused before it is read, naming the
/// file and the bound, instead of reading it all (a 1 GB file of NUL bytes
/// took 4.2 GB of memory before its TOML error).
#[test]
fn oversized_config_and_customers_files_are_refused_unread() {
    const OVER: u64 = 300 << 20;
    let sparse = |path: &std::path::Path| {
        let f = std::fs::File::create(path).unwrap();
        f.set_len(OVER).unwrap();
    };
    let dir = TestDir::new("check-huge-customers");
    let huge = dir.join("customers.toml");
    sparse(&huge);
    let text = format!(
        "customers_file = \"customers.toml\"\n{}",
        Scenario::new(Vec::new(), Vec::new()).config(&dir)
    );
    let config = write_config(&dir, "synwall.toml", &text);
    synwall_bin();
    let started = std::time::Instant::now();
    let refused = |config: &std::path::Path, huge: &std::path::Path| {
        let exit = run_synwall(&dir, &["--config", config.to_str().unwrap(), "--check"]);
        assert_ne!(exit.code(), Some(0), "{exit:?}");
        assert!(
            exit.stderr.contains(&huge.display().to_string()) && exit.stderr.contains("256 MiB"),
            "the error should name the file and the bound: {}",
            exit.stderr
        );
    };
    refused(&config, &huge);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let huge = dir.join("huge.toml");
    sparse(&huge);
    refused(&huge, &huge);
}
