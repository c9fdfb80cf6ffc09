//! The operator's interfaces on a running appliance: `synwallctl` over the
//! control socket, `/metrics` over HTTP, the socket's permissions and the
//! event log's record of who did what.
//!
//! The block/unblock test needs traffic that keeps flowing while an
//! operator acts, so its inside port replays a small capture forever
//! (`net_pcap` `infinite_rx=1`, transmitting into `/dev/null`). The exact
//! metrics-versus-summary check uses a finite capture instead: once it is
//! consumed the counters stand still, so one scrape must equal the summary.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::{ACK, SYN};
use synwall_tests::fixtures::{self, acme_beta_10, MX};
use synwall_tests::*;

/// Generous: the machine may be loaded (2 CPUs, tests in parallel).
const WAIT: Duration = Duration::from_secs(60);

/// Limits no test reaches: nothing is blocked but by an operator.
const WINDOWS: &str =
    "[windows]\n\"5m\" = 1000000000000\n\"1h\" = 1000000000000\n\"1d\" = 1000000000000";

fn customers() -> String {
    acme_beta_10("")
}

fn syn_from(net: u8, i: u32) -> Vec<u8> {
    let src = Ipv4Addr::new(10, net, (i / 250) as u8, (i % 250) as u8 + 1);
    FrameBuilder::tcp_v4(src, MX, 2000 + i as u16, 25, SYN)
        .seq(i * 7919)
        .build()
}

/// `n` SYNs to port 25 from each of acme (10.1/16) and beta (10.2/16),
/// interleaved, plus an ACK of an established connection every tenth frame.
fn traffic(n: u32) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for i in 0..n {
        frames.push(syn_from(1, i));
        frames.push(syn_from(2, i));
        if i % 5 == 0 {
            let src = Ipv4Addr::new(10, 2, 0, 1);
            frames.push(FrameBuilder::tcp_v4(src, MX, 4000, 25, ACK).build());
        }
    }
    frames
}

/// Replies from the MX (the outside port's input).
fn replies(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let dst = Ipv4Addr::new(10, 2, 0, (i % 250) as u8 + 1);
            FrameBuilder::tcp_v4(MX, dst, 25, 2000 + i as u16, SYN | ACK).build()
        })
        .collect()
}

/// Builds `synwall` and `synwallctl` before anything is timed (a build
/// may wait for another cargo's lock for minutes).
fn build_binaries() {
    synwall_bin();
    synwallctl_bin();
}

/// What one `synwallctl` run did.
#[derive(Debug)]
struct Ctl {
    code: Option<i32>,
    pid: u32,
    stdout: String,
    stderr: String,
}

impl Ctl {
    /// The stdout as JSON (for `--json` runs).
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("synwallctl printed no JSON ({e}): {self:?}"))
    }
}

/// Runs `prefix... synwallctl --socket SOCKET args...` (prefix: e.g. a
/// `setpriv` command line), output into files in `dir`, killed after
/// [`WAIT`].
fn ctl_as(prefix: &[&str], dir: &TestDir, socket: &Path, args: &[&str]) -> Ctl {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out_path = dir.join(&format!("ctl.{n}.stdout"));
    let err_path = dir.join(&format!("ctl.{n}.stderr"));
    let bin = synwallctl_bin();
    let mut cmd = match prefix.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = cmd
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("SYNWALL_SOCKET")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning synwallctl {args:?}: {e}"));
    let pid = child.id();
    let status = wait_timeout(&mut child, WAIT)
        .unwrap_or_else(|| panic!("synwallctl {args:?} did not exit within {WAIT:?}"));
    Ctl {
        code: status.code(),
        pid,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn ctl(dir: &TestDir, socket: &Path, args: &[&str]) -> Ctl {
    ctl_as(&[], dir, socket, args)
}

/// `synwallctl --json args...`, which must succeed; its reply.
#[track_caller]
fn ctl_json(dir: &TestDir, socket: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let r = ctl(dir, socket, &all);
    assert_eq!(r.code, Some(0), "synwallctl {args:?}: {r:?}");
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    v
}

/// `GET /metrics` over a plain TCP connection; the body.
fn scrape(port: u16) -> Result<String, String> {
    match http_get(port, "/metrics", Duration::from_secs(20))? {
        (200, body) => Ok(body),
        (code, body) => Err(format!("not 200: {code} {body}")),
    }
}

/// Scrapes until it works (the listener is up before the EAL, the first
/// figures a second later).
#[track_caller]
fn scrape_ok(port: u16) -> String {
    wait_until("a /metrics scrape", WAIT, || scrape(port).ok())
}

/// Every sample of the family `name` as (labels, value), e.g.
/// `synwall_verdicts_total` → `{verdict="rx"}` → 12.
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l.to_owned(), v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => (String::new(), v),
                None => continue,
            },
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            out.insert(labels, v);
        }
    }
    out
}

/// `synwall_verdicts_total` by verdict name.
fn verdict_metrics(text: &str) -> BTreeMap<String, u64> {
    samples(text, "synwall_verdicts_total")
        .into_iter()
        .map(|(labels, v)| {
            let name = labels
                .strip_prefix("verdict=\"")
                .and_then(|l| l.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unexpected verdict labels {labels}"))
                .to_owned();
            (name, v as u64)
        })
        .collect()
}

/// The user id this test runs as (the owner of a file it created).
fn my_uid(dir: &TestDir) -> u32 {
    fs::metadata(&dir.path).expect("test dir").uid()
}

/// A group's id from the group database, by name.
fn gid_of(group: &str) -> Option<u32> {
    let out = Command::new("getent")
        .args(["group", group])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':').nth(2)?.trim().parse().ok()
}

/// A synwall started by hand (the config is rewritten after the harness
/// prepares it), stopped with SIGTERM; killed if dropped while running.
struct Live {
    child: Option<Child>,
    dir: TestDir,
    socket: PathBuf,
    summary: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Live {
    /// Prepares `scenario` in `dir` and starts synwall with it.
    fn start(scenario: &Scenario, dir: TestDir) -> Live {
        let (config, summary) = scenario.prepare(&dir);
        let stdout = dir.join("synwall.stdout");
        let stderr = dir.join("synwall.stderr");
        let child = Command::new(synwall_bin())
            .arg("--config")
            .arg(&config)
            .arg("--duration")
            .arg(scenario.duration.to_string())
            .arg("--summary-json")
            .arg(&summary)
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawning synwall");
        Live {
            child: Some(child),
            socket: dir.join("control.sock"),
            dir,
            summary,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            fs::read_to_string(&self.stdout).unwrap_or_default(),
            fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Fails the test (with synwall's output) if it has exited.
    #[track_caller]
    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("child");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("synwall exited early ({status})\n{}", self.output());
        }
    }

    /// Waits until `status` says the appliance is forwarding (the socket
    /// answers from before the ports are started).
    #[track_caller]
    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            self.assert_running();
            if self.socket.exists() {
                let r = ctl(&self.dir, &self.socket, &["--json", "status"]);
                if r.code == Some(0) && r.json()["state"] == "forwarding" {
                    return;
                }
            }
            assert!(
                started.elapsed() < WAIT,
                "the control socket never answered\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, wait, and the summary.
    #[track_caller]
    fn terminate(&mut self) -> Value {
        self.assert_running();
        let mut child = self.child.take().expect("child");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
        let status = wait_timeout(&mut child, WAIT)
            .unwrap_or_else(|| panic!("synwall ignored SIGTERM\n{}", self.output()));
        assert!(status.success(), "synwall: {status}\n{}", self.output());
        let text = fs::read_to_string(&self.summary)
            .unwrap_or_else(|e| panic!("reading the summary: {e}\n{}", self.output()));
        serde_json::from_str(&text).expect("summary JSON")
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        reap(self.child.take(), || self.output());
    }
}

/// `synwallctl --json customer NAME`'s customer.
fn customer(dir: &TestDir, socket: &Path, name: &str) -> Value {
    ctl_json(dir, socket, &["customer", name])["customer"].clone()
}

fn field(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// Writes `script` as `hook.sh` in `dir`; returns the `[control]` key
/// that runs it (`sh hook.sh DIR`, 10 s timeout).
fn hook(dir: &TestDir, script: &str) -> String {
    let hook = dir.join("hook.sh");
    fs::write(&hook, script).expect("writing the hook");
    format!(
        "hook = {{ command = [\"/bin/sh\", {}, {}], timeout = \"10s\" }}",
        toml_str(&hook.display().to_string()),
        toml_str(&dir.path.display().to_string())
    )
}

#[test]
fn block_and_unblock_through_synwallctl_while_traffic_flows() {
    build_binaries();
    let port = free_port();
    let dir = TestDir::new("operator-block");
    // A hook that logs each event's kind, customer and stdin line.
    let hook_line = hook(
        &dir,
        "read -r line\nprintf '%s %s %s\\n' \"$SYNWALL_EVENT\" \"$SYNWALL_CUSTOMER\" \"$line\" >> \"$1/hooks.log\"\n",
    );
    let mut s = Scenario::new(traffic(20), Vec::new())
        .sections(WINDOWS)
        .control(&format!("metrics_listen = \"127.0.0.1:{port}\""))
        .control(&hook_line)
        .customers(&customers())
        .forever();
    s.duration = 600.0;
    let mut live = Live::start(&s, dir);
    live.wait_ready();
    let (dir, sock) = (&live.dir, live.socket.clone());

    // Traffic flows: acme's SYNs are forwarded.
    let before = wait_until("acme's SYNs forwarded", WAIT, || {
        let c = customer(dir, &sock, "acme");
        (field(&c, "forwarded") > 0).then_some(c)
    });
    assert_eq!(before["state"], "open", "{before}");
    let text = scrape_ok(port);
    assert!(
        text.contains("synwall_verdicts_total"),
        "no verdict counters in /metrics:\n{text}"
    );
    // `synwallctl metrics` prints the same exposition text, line by line
    // (not one line of escaped `\n`s).
    let metrics = ctl(dir, &sock, &["metrics"]);
    assert_eq!(metrics.code, Some(0), "{metrics:?}");
    let out = &metrics.stdout;
    assert!(
        out.lines()
            .any(|l| l.starts_with("# TYPE synwall_verdicts"))
            && out
                .lines()
                .any(|l| l.starts_with("synwall_verdicts_total{")),
        "synwallctl metrics is not the exposition text, line by line:\n{}",
        metrics.stdout
    );

    // Block: exit 0, and the block is in force.
    let block = ctl(
        dir,
        &sock,
        &["block", "acme", "--duration", "1h", "--reason", "test"],
    );
    assert_eq!(block.code, Some(0), "{block:?}");
    let blocked = wait_until("acme blocked, attempts counted", WAIT, || {
        let c = customer(dir, &sock, "acme");
        (c["state"] == "blocked" && field(&c, "attempts_while_blocked") > 0).then_some(c)
    });
    assert!(
        blocked["until"].is_string(),
        "a 1h block has an end: {blocked}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let attempts = field(&blocked, "attempts_while_blocked");
    let during = wait_until("acme's attempts to keep rising", WAIT, || {
        let c = customer(dir, &sock, "acme");
        (field(&c, "attempts_while_blocked") > attempts).then_some(c)
    });
    // Nothing of acme's gets through any more; beta is untouched.
    let beta_then = field(&customer(dir, &sock, "beta"), "forwarded");
    std::thread::sleep(Duration::from_secs(1));
    let later = customer(dir, &sock, "acme");
    assert_eq!(later["state"], "blocked", "{later}");
    assert_eq!(
        field(&later, "forwarded"),
        field(&during, "forwarded"),
        "acme's SYNs forwarded while blocked: {during} then {later}"
    );
    wait_until("beta's SYNs still forwarded", WAIT, || {
        (field(&customer(dir, &sock, "beta"), "forwarded") > beta_then).then_some(())
    });
    let blocks = ctl_json(dir, &sock, &["blocks"]);
    let list = blocks["blocks"].as_array().expect("blocks");
    assert_eq!(list.len(), 1, "{blocks}");
    assert_eq!(list[0]["customer"], "acme", "{blocks}");
    assert!(
        list[0].to_string().contains("test"),
        "the reason is listed: {blocks}"
    );
    let dropped = wait_until("dropped_blocked in /metrics", WAIT, || {
        let text = scrape(port).ok()?;
        let n = *verdict_metrics(&text).get("dropped_blocked")?;
        (n > 0).then_some(n)
    });
    assert!(dropped > 0);

    // Refusals exit 1 and say why; an unreachable socket exits 3.
    let nosuch = ctl(dir, &sock, &["block", "nosuch"]);
    assert_eq!(nosuch.code, Some(1), "{nosuch:?}");
    assert!(nosuch.stderr.contains("nosuch"), "{nosuch:?}");
    let bad = ctl(dir, &sock, &["block", "beta", "--duration", "soon"]);
    assert_eq!(bad.code, Some(1), "{bad:?}");
    let missing = ctl(dir, &dir.join("no.sock"), &["status"]);
    assert_eq!(missing.code, Some(3), "{missing:?}");
    assert!(missing.stderr.contains("no.sock"), "{missing:?}");

    // Unblock: acme's SYNs are forwarded again.
    let forwarded = field(&customer(dir, &sock, "acme"), "forwarded");
    let unblock = ctl(dir, &sock, &["unblock", "acme", "--reason", "done"]);
    assert_eq!(unblock.code, Some(0), "{unblock:?}");
    wait_until("acme forwarded again", WAIT, || {
        let c = customer(dir, &sock, "acme");
        (c["state"] == "open" && field(&c, "forwarded") > forwarded).then_some(())
    });
    let blocks = ctl_json(dir, &sock, &["blocks"]);
    assert_eq!(blocks["blocks"], serde_json::json!([]), "{blocks}");

    // The event log names the caller of each.
    let uid = my_uid(dir);
    let events = read_events(&dir.join("events.jsonl"));
    let find = |kind: &str| {
        events
            .iter()
            .find(|e| e["kind"] == kind && e["customer"] == "acme")
            .unwrap_or_else(|| panic!("no {kind} event for acme in {events:?}"))
            .clone()
    };
    let b = find("block");
    assert_eq!(
        b["by"],
        format!("uid={uid} pid={}", block.pid),
        "block event: {b}"
    );
    assert_eq!(b["reason"], "test", "{b}");
    assert!(b["until"].is_string(), "{b}");
    let u = find("unblock");
    assert_eq!(
        u["by"],
        format!("uid={uid} pid={}", unblock.pid),
        "unblock event: {u}"
    );
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "block").count(),
        1,
        "refused commands left no block event: {events:?}"
    );

    // The hook ran for both, with the event on stdin.
    let hooks = dir.join("hooks.log");
    let log = wait_until("the hook's record of the unblock", WAIT, || {
        let text = fs::read_to_string(&hooks).ok()?;
        text.contains("unblock acme ").then_some(text)
    });
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].starts_with("block acme {"), "{log}");
    assert!(lines[0].contains(r#""reason":"test""#), "{log}");
    assert!(lines[1].starts_with("unblock acme {"), "{log}");

    // The final summary is at least the last scrape: counters only grow.
    let last = verdict_metrics(&scrape_ok(port));
    let summary = live.terminate();
    for (name, scraped) in &last {
        let final_ = summary["verdicts"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("summary has no verdict {name}: {summary:#}"));
        assert!(
            final_ >= *scraped,
            "{name}: summary {final_} < scraped {scraped}"
        );
    }
    assert!(summary["verdicts"]["dropped_blocked"].as_u64() >= Some(dropped));
    // Only acme was ever blocked: its dropped SYNs are all the drops.
    let acme = summary["customers"]
        .as_array()
        .expect("customers")
        .iter()
        .find(|c| c["name"] == "acme")
        .expect("acme in the summary")
        .clone();
    assert_eq!(
        acme["syn_dropped"], summary["verdicts"]["dropped_blocked"],
        "{summary:#}"
    );
}

#[test]
fn metrics_equal_the_summary_once_the_input_is_consumed() {
    build_binaries();
    let port = free_port();
    let frames = traffic(200);
    let back = replies(30);
    let total = (frames.len() + back.len()) as u64;
    let customers = acme_beta_10("blocked = true");
    let mut s = Scenario::new(frames, back)
        .sections(WINDOWS)
        .control(&format!("metrics_listen = \"127.0.0.1:{port}\""))
        .customers(&customers);
    s.duration = 600.0;
    let mut running = s.spawn(TestDir::new("operator-metrics"), &[]);

    // Consumed: every frame received, and nothing moved for 1.5 s (the
    // registry is refreshed once a second).
    let mut last: Option<(BTreeMap<String, u64>, Instant)> = None;
    let text = running.wait_for("the input to be consumed", WAIT, |_| {
        let text = scrape(port).ok()?;
        let v = verdict_metrics(&text);
        if v.get("rx") != Some(&total) {
            return None;
        }
        match &last {
            Some((prev, since)) if *prev == v => {
                (since.elapsed() >= Duration::from_millis(1500)).then_some(text)
            }
            _ => {
                last = Some((v, Instant::now()));
                None
            }
        }
    });
    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    run.assert_consistent();

    let scraped = verdict_metrics(&text);
    let summary = &run.summary["verdicts"];
    let want: BTreeMap<String, u64> = summary
        .as_object()
        .expect("verdicts")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("verdict count")))
        .collect();
    assert_eq!(scraped, want, "/metrics verdicts vs the summary");
    assert_eq!(run.verdict("dropped_blocked"), 200, "acme's 200 SYNs");
    assert_eq!(
        run.verdict("forwarded"),
        200 + 40,
        "beta's SYNs and the ACKs"
    );
    // The frames-by-outcome family agrees too.
    let outcomes: BTreeMap<String, u64> = samples(&text, "synwall_frames_total")
        .into_iter()
        .map(|(l, v)| {
            let name = l
                .strip_prefix("outcome=\"")
                .and_then(|l| l.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unexpected outcome labels {l}"));
            (name.to_owned(), v as u64)
        })
        .collect();
    let want: BTreeMap<String, u64> = run.outcomes().into_iter().collect();
    assert_eq!(outcomes, want, "/metrics outcomes vs the summary");
    let syns_dropped = samples(&text, "synwall_syns_dropped_total");
    assert_eq!(syns_dropped.get(""), Some(&200.0), "{text}");
    // The pool: its size, and (the input consumed) every mbuf back.
    let size = samples(&text, "synwall_mempool_mbufs");
    assert_eq!(
        size.get("").copied(),
        Some(run.counter("/mempool/size") as f64),
        "{text}"
    );
    let in_use = samples(&text, "synwall_mempool_mbufs_in_use");
    assert_eq!(
        in_use.get("").copied(),
        Some(run.counter("/mempool/in_use_at_start") as f64),
        "{text}"
    );
}

#[test]
fn socket_has_the_configured_mode_and_group_and_records_the_caller() {
    build_binaries();
    let group = is_root().then(|| gid_of("nogroup")).flatten();
    let mut s = Scenario::new(traffic(5), Vec::new())
        .sections(WINDOWS)
        .control("socket_mode = 0o660")
        .customers(&customers());
    if group.is_some() {
        s = s.control("socket_group = \"nogroup\"");
    }
    s.duration = 600.0;
    let dir = TestDir::new("operator-socket");
    let socket = dir.join("control.sock");
    let mut running = s.spawn(dir, &[]);
    running.wait_for("the control socket", WAIT, |r| {
        (ctl(r.dir(), &socket, &["status"]).code == Some(0)).then_some(())
    });
    let meta = fs::metadata(&socket).expect("socket metadata");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660, "socket mode");

    let Some(gid) = group else {
        eprintln!(
            "note: not root (or no group 'nogroup'): socket group and refusal of non-members not tested"
        );
        running.signal("TERM");
        assert!(running.wait(WAIT).exit.status.success());
        return;
    };
    assert_eq!(meta.gid(), gid, "socket group");
    let setpriv = |gid: &str| {
        [
            "setpriv",
            "--reuid=nobody",
            "--regid",
            gid,
            "--clear-groups",
            "--",
        ]
        .map(str::to_owned)
    };
    let has_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_setpriv {
        eprintln!("note: no setpriv (util-linux): refusal of non-members not tested");
        running.signal("TERM");
        assert!(running.wait(WAIT).exit.status.success());
        return;
    }
    // A member of the group may, and the event log names it.
    let member = setpriv("nogroup");
    let member: Vec<&str> = member.iter().map(String::as_str).collect();
    let status = ctl_as(&member, running.dir(), &socket, &["status"]);
    if status.code == Some(127) || status.stderr.contains("failed to execute") {
        eprintln!(
            "note: user nobody cannot run {}: {status:?}",
            synwallctl_bin().display()
        );
        running.signal("TERM");
        assert!(running.wait(WAIT).exit.status.success());
        return;
    }
    assert_eq!(status.code, Some(0), "a group member is let in: {status:?}");
    let block = ctl_as(
        &member,
        running.dir(),
        &socket,
        &["block", "beta", "--reason", "by nobody"],
    );
    assert_eq!(block.code, Some(0), "{block:?}");
    let ev = running.wait_for_event("beta's block event", WAIT, |e| {
        e["kind"] == "block" && e["customer"] == "beta"
    });
    assert_eq!(ev["by"], format!("uid=65534 pid={}", block.pid), "{ev}");
    assert_eq!(ev["reason"], "by nobody", "{ev}");

    // Someone outside the group is refused: exit 3, with a hint.
    let outsider = setpriv("daemon");
    let outsider: Vec<&str> = outsider.iter().map(String::as_str).collect();
    let refused = ctl_as(&outsider, running.dir(), &socket, &["status"]);
    assert_eq!(
        refused.code,
        Some(3),
        "a non-member is refused: {refused:?}"
    );
    assert!(refused.stderr.contains("permission denied"), "{refused:?}");
    let refused = ctl_as(&outsider, running.dir(), &socket, &["unblock", "beta"]);
    assert_eq!(refused.code, Some(3), "{refused:?}");
    assert!(
        running.events().iter().all(|e| e["kind"] != "unblock"),
        "a refused caller changed nothing"
    );

    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    assert_eq!(run.customer_state("beta").as_deref(), Some("blocked"));
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// One request on a fresh connection.
fn raw_ask(socket: &Path, request: &[u8]) -> Result<Value, String> {
    control_request(socket, request, WAIT)
}

/// Abuse of a running appliance's control socket: a 100 MB line without a
/// newline, 2,000 connections at once, a client that sends thousands of
/// requests and never reads the replies, invalid UTF-8. Each abuser gets a
/// defined outcome (cut off, refused, answered with an error, or dropped);
/// synwall's memory stays bounded; an operator is served as soon as the
/// flood of connections is gone; and the traffic verdicts are exact.
#[test]
fn control_socket_abuse_leaves_the_appliance_unaffected() {
    use std::os::unix::net::UnixStream;
    build_binaries();
    let frames = traffic(200);
    let customers = acme_beta_10("blocked = true");
    let mut s = Scenario::new(frames, Vec::new())
        .sections(WINDOWS)
        .customers(&customers);
    s.duration = 600.0;
    let mut running = s.spawn(TestDir::new("operator-abuse"), &[]);
    let sock = running.dir().join("control.sock");
    let pid = running.pid();
    running.wait_for("the control socket", WAIT, |_| {
        raw_ask(&sock, b"{\"cmd\":\"status\"}\n").ok()
    });
    let rss_before = rss_kib(pid);

    // 1. 100 MB in one line: cut off after 64 KiB with an error reply; the
    // writer sees the connection close long before 100 MB are sent.
    // (Both abusers connect before the flood of connections below.)
    let streamer = {
        let mut s = UnixStream::connect(&sock).expect("connect");
        std::thread::spawn(move || {
            s.set_write_timeout(Some(WAIT)).unwrap();
            let chunk = vec![b'x'; 1 << 20];
            let mut sent = 0usize;
            while sent < 100 << 20 {
                match s.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            (sent, reply)
        })
    };

    // 2. A client that sends 5,000 requests and never reads a reply.
    let deaf = {
        let mut s = UnixStream::connect(&sock).expect("connect");
        std::thread::spawn(move || {
            s.set_write_timeout(Some(WAIT)).unwrap();
            let mut sent = 0;
            for _ in 0..5000 {
                if s.write_all(b"{\"cmd\":\"status\"}\n").is_err() {
                    break;
                }
                sent += 1;
            }
            // Hold the connection without reading for a while.
            std::thread::sleep(Duration::from_secs(2));
            sent
        })
    };

    // 3. 2,000 connections at once (the socket serves 64 at a time).
    let mut held = Vec::new();
    let mut refused_or_failed = 0;
    for _ in 0..2000 {
        match UnixStream::connect(&sock) {
            Ok(c) => held.push(c),
            Err(_) => refused_or_failed += 1,
        }
    }
    assert!(
        !held.is_empty(),
        "no connection accepted ({refused_or_failed} failed)"
    );
    let rss_flood = rss_kib(pid);
    drop(held);

    // 4. Invalid UTF-8: an error reply naming the problem.
    let bad = wait_until("an answer to invalid UTF-8", WAIT, || {
        raw_ask(&sock, b"{\"cmd\":\"st\xff\xfeatus\"}\n").ok()
    });
    assert_eq!(bad["ok"], false, "{bad}");

    let (sent, reply) = streamer.join().unwrap();
    assert!(sent < 100 << 20, "synwall read a 100 MB line to its end");
    assert!(reply.contains("line too long"), "reply: {reply:?}");
    let deaf_sent = deaf.join().unwrap();
    assert!(deaf_sent > 0);

    // The operator is served once the flood is gone, and the appliance
    // did its job: acme's SYNs dropped, the rest forwarded.
    let status = wait_until("status after the abuse", WAIT, || {
        raw_ask(&sock, b"{\"cmd\":\"status\"}\n")
            .ok()
            .filter(|v| v["ok"] == true)
    });
    assert_eq!(status["ok"], true, "{status}");
    let rss_after = rss_kib(pid);
    // Bounded: 2,000 connections and a 100 MB line may cost threads and
    // buffers for a while, never the line itself.
    assert!(
        rss_flood.max(rss_after) < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_flood} / {rss_after} KiB"
    );
    assert!(!running.exited(), "{}", running.output());
    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    run.assert_consistent();
    assert_eq!(run.verdict("dropped_blocked"), 200, "acme's 200 SYNs");
    assert_eq!(
        run.verdict("forwarded"),
        200 + 40,
        "beta's SYNs and the ACKs"
    );
}

/// set-limit, mode and reload through `synwallctl` on a running appliance:
/// each leaves an event in the log naming the synwallctl process (uid and
/// pid from the socket) with the old and the new value, and runs the hook.
#[test]
fn limit_and_mode_changes_are_logged_with_the_caller() {
    build_binaries();
    let dir = TestDir::new("operator-changes");
    let hook_line = hook(
        &dir,
        "printf '%s %s %s %s %s\\n' \"$SYNWALL_EVENT\" \"${SYNWALL_CUSTOMER:-${SYNWALL_PLAN:--}}\" \"${SYNWALL_OLD:--}\" \"${SYNWALL_NEW:--}\" \"$SYNWALL_BY\" >> \"$1/hooks.log\"\n",
    );
    let mut s = Scenario::new(Vec::new(), Vec::new())
        .sections(&format!("{WINDOWS}\n\n[plans.mailserver]\n\"5m\" = 5000\n"))
        .control(&hook_line)
        .customers(
            &(customers() + &fixtures::customer("mx", &["10.3.0.0/16"], "plan = \"mailserver\"")),
        );
    s.duration = 600.0;
    let mut live = Live::start(&s, dir);
    live.wait_ready();
    let (dir, sock) = (&live.dir, live.socket.clone());

    let run = |args: &[&str]| {
        let r = ctl(dir, &sock, args);
        assert_eq!(r.code, Some(0), "synwallctl {args:?}: {r:?}");
        r
    };
    let limit = run(&["set-limit", "--customer", "acme", "5m", "40"]);
    assert!(limit.stdout.contains("(was 1000000000000)"), "{limit:?}");
    let plan = run(&["set-limit", "--plan", "mailserver", "5m", "60"]);
    let mode = run(&["mode", "beta", "monitor"]);
    assert_eq!(
        mode.stdout, "beta: mode monitor (was enforce)\n",
        "{mode:?}"
    );
    let global = run(&["mode", "monitor"]);
    assert_eq!(customer(dir, &sock, "acme")["windows"][0]["limit"], 40);
    // (A reload puts the config's limits back: set-limit without --persist
    // lasts until then.)
    let reload = run(&["reload"]);

    let uid = my_uid(dir);
    let by = |c: &Ctl| format!("uid={uid} pid={}", c.pid);
    let events = read_events(&dir.join("events.jsonl"));
    let find = |kind: &str, key: &str, name: &str| {
        events
            .iter()
            .find(|e| e["kind"] == kind && e[key] == name)
            .unwrap_or_else(|| panic!("no {kind} event for {name} in {events:?}"))
            .clone()
    };
    let e = find("set_limit", "customer", "acme");
    assert_eq!(
        (&e["window"], &e["old"], &e["new"]),
        (&json!("5m"), &json!(1_000_000_000_000u64), &json!(40)),
        "{e}"
    );
    assert_eq!(e["by"], by(&limit), "{e}");
    let e = find("set_limit", "plan", "mailserver");
    assert_eq!((&e["old"], &e["new"]), (&json!(5000), &json!(60)), "{e}");
    assert_eq!(e["by"], by(&plan), "{e}");
    let e = find("set_mode", "customer", "beta");
    assert_eq!(
        (&e["old"], &e["new"]),
        (&json!("enforce"), &json!("monitor")),
        "{e}"
    );
    assert_eq!(e["by"], by(&mode), "{e}");
    let e = events
        .iter()
        .find(|e| e["kind"] == "set_mode" && e.get("customer").is_none())
        .unwrap_or_else(|| panic!("no global set_mode event in {events:?}"));
    assert_eq!(
        (&e["old"], &e["new"]),
        (&json!("enforce"), &json!("monitor")),
        "{e}"
    );
    assert_eq!(e["by"], by(&global), "{e}");
    let e = find("reload", "by", &by(&reload));
    assert!(
        e["reason"].as_str().unwrap_or("").contains("customers"),
        "{e}"
    );

    // The hook ran for each, in order.
    let hooks = dir.join("hooks.log");
    let log = wait_until("the hook's record of the reload", WAIT, || {
        let text = fs::read_to_string(&hooks).ok()?;
        text.contains("reload ").then_some(text)
    });
    let want = [
        format!("set_limit acme 1000000000000 40 {}", by(&limit)),
        format!("set_limit mailserver 5000 60 {}", by(&plan)),
        format!("set_mode beta enforce monitor {}", by(&mode)),
        format!("set_mode - enforce monitor {}", by(&global)),
        format!("reload - - - {}", by(&reload)),
    ];
    assert_eq!(log.lines().collect::<Vec<_>>(), want, "{log}");
    live.terminate();
}
