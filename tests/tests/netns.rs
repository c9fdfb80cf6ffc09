//! End to end on real TCP/IP stacks: `scripts/testbed` builds network
//! namespaces (customer hosts, one behind a VLAN tag, and an upstream with a
//! real SMTP server and a web server), synwall bridges them with
//! `net_af_packet`, and customers send real mail with Python's smtplib.
//!
//! Needs root and `ip netns`; skipped (with the reason printed) otherwise,
//! or when `SYNWALL_SKIP_NETNS` is set. Traffic stays inside the test bed's
//! namespaces; the test bed is torn down at the end, even after a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use synwall_tests::fixtures::customer;
use synwall_tests::*;

/// The Debian python, which has python3-aiosmtpd (`python3` on the PATH may
/// be another one).
const PY: &str = "/usr/bin/python3";
/// The test bed's state (maildir, logs): our own, not the default.
const BED_DIR: &str = "/tmp/synwall-testbed-tests";

const ACME4: &str = "198.51.100.1";
const ACME6: &str = "2001:db8:1::1";
const BETA4: &str = "192.0.2.1";
const GAMMA4: &str = "203.0.113.1";

/// The tests share one test bed (fixed namespace names): one at a time.
static BED_LOCK: Mutex<()> = Mutex::new(());

/// Why this machine cannot run the test bed, if it cannot.
fn skip_reason() -> Option<String> {
    if std::env::var_os("SYNWALL_SKIP_NETNS").is_some() {
        return Some("SYNWALL_SKIP_NETNS is set".into());
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces need root)".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "`ip netns list` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Some(format!("cannot run `ip`: {e} (install iproute2)")),
    }
    let py = Command::new(PY).args(["-c", "import aiosmtpd"]).output();
    if !py.is_ok_and(|o| o.status.success()) {
        return Some(format!(
            "{PY} cannot import aiosmtpd (run scripts/setup: python3-aiosmtpd)"
        ));
    }
    None
}

macro_rules! skip_unless_possible {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipping the namespace end-to-end test: {why}");
            return;
        }
    };
}

/// `synwall` and `synwallctl` of this test binary's profile.
fn bins() -> (&'static Path, &'static Path) {
    (synwall_bin(), synwallctl_bin())
}

fn testbed(action: &str) -> Output {
    Command::new(workspace_root().join("scripts/testbed"))
        .arg(action)
        .env("SYNWALL_TESTBED_DIR", BED_DIR)
        // The servers stop by themselves even if nothing tears them down.
        .env("SYNWALL_TESTBED_TTL", "300")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running scripts/testbed {action}: {e}"))
}

/// Runs `cmd` and kills it after `limit` (a hung helper must not hang the test).
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("wait_with_output")
}

/// A command inside namespace `ns`.
fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// The outcome of one SMTP transaction from a customer host.
#[derive(Clone)]
struct Mail {
    /// "ok", or the exception's class name (ConnectionRefusedError, TimeoutError, ...).
    result: String,
    detail: String,
    secs: f64,
}

impl Mail {
    fn ok(&self) -> bool {
        self.result == "ok"
    }
}

/// The outcomes, one a line, for failure messages.
fn show(mails: &[Mail]) -> String {
    mails
        .iter()
        .map(|m| format!("\n  {} {:?} after {:.3} s", m.result, m.detail, m.secs))
        .collect()
}

const SENDER: &str = r#"
import json, smtplib, socket, sys, time
host, n, timeout, tag = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
out = []
for i in range(n):
    t = time.monotonic()
    try:
        with smtplib.SMTP(host, 25, timeout=timeout) as s:
            s.sendmail("postmaster@customer.example", ["rcpt@upstream.example"],
                       f"Subject: {tag} {i}\r\n\r\nmessage {i} from {tag}\r\n")
        r, d = "ok", ""
    except socket.timeout as e:
        r, d = "TimeoutError", str(e)
    except Exception as e:
        r, d = type(e).__name__, str(e)
    out.append({"result": r, "detail": d, "secs": time.monotonic() - t})
print(json.dumps(out))
"#;

/// Sends `n` messages, one connection each, from `ns` to the SMTP server at
/// `host`, with `timeout` seconds per connection.
fn send_mail(ns: &str, host: &str, n: usize, timeout: f64) -> Vec<Mail> {
    let limit = Duration::from_secs_f64(n as f64 * (timeout * 2.0 + 1.0) + 5.0);
    let out = run_bounded(
        &mut in_ns(
            ns,
            &[
                PY,
                "-c",
                SENDER,
                host,
                &n.to_string(),
                &timeout.to_string(),
                ns,
            ],
        ),
        limit,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "mail sender in {ns} to {host}: {e}\nstdout: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v.as_array()
        .expect("array")
        .iter()
        .map(|m| Mail {
            result: m["result"].as_str().expect("result").to_owned(),
            detail: m["detail"].as_str().unwrap_or_default().to_owned(),
            secs: m["secs"].as_f64().expect("secs"),
        })
        .collect()
}

/// Messages the SMTP server has stored so far.
fn delivered() -> usize {
    fs::read_dir(Path::new(BED_DIR).join("maildir/new")).map_or(0, |d| d.count())
}

/// Sends `n` messages that must all be delivered (and stored by the server).
#[track_caller]
fn assert_delivers(ns: &str, host: &str, n: usize, what: &str) {
    let before = delivered();
    let mails = send_mail(ns, host, n, 3.0);
    assert!(
        mails.iter().all(Mail::ok),
        "{what}: expected {n} deliveries from {ns} to {host}, got:{}",
        show(&mails)
    );
    assert_eq!(
        delivered(),
        before + n,
        "{what}: the server stored a different number of messages"
    );
}

/// Sends `n` messages that must all be refused at once (synwall's RST).
#[track_caller]
fn assert_refused(ns: &str, host: &str, n: usize, what: &str) {
    let before = delivered();
    let mails = send_mail(ns, host, n, 3.0);
    for m in &mails {
        assert!(
            m.result == "ConnectionRefusedError" && m.secs < 1.0,
            "{what}: expected a fast ConnectionRefusedError from {ns} to {host}, got:{}",
            show(&mails)
        );
    }
    assert_eq!(delivered(), before, "{what}: a message got through");
}

/// An HTTP GET from `ns`; true if the web server answered with its page.
fn http_ok(ns: &str, url: &str) -> bool {
    let out = run_bounded(
        &mut in_ns(ns, &["curl", "-sS", "--max-time", "2", url]),
        Duration::from_secs(4),
    );
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("synwall test bed")
}

/// The running appliance and the test bed; both go when this is dropped
/// (also on a panic).
struct Bed {
    synwall: Option<Child>,
    dir: Option<TestDir>,
    socket: PathBuf,
    summary: PathBuf,
    log: PathBuf,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Bed {
    /// Brings the test bed up and starts synwall on it with `block` as its
    /// `[block]` table and `customers` as its customers; waits until it
    /// forwards (HTTP from sw-cust1 gets through).
    fn start(name: &str, block: &str, customers: &str) -> Bed {
        let lock = BED_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let (synwall, _) = bins();
        let dir = TestDir::new(name);
        let mut bed = Bed {
            synwall: None,
            socket: dir.join("control.sock"),
            summary: dir.join("summary.json"),
            log: dir.join("synwall.log"),
            dir: None,
            _lock: lock,
        };
        let up = testbed("up");
        // From here on, Drop tears the test bed down.
        bed.dir = Some(dir);
        assert!(
            up.status.success(),
            "scripts/testbed up failed:\n{}{}",
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        );
        let dir = bed.dir.as_ref().expect("dir");
        let eal = [
            "--no-huge".to_string(),
            "-m".into(),
            "512".into(),
            "--no-pci".into(),
            "--no-shconf".into(),
            "--log-level=*:notice".into(),
            format!("--file-prefix={}", dir.unique),
            "--vdev=net_af_packet0,iface=swin,qpairs=1".into(),
            "--vdev=net_af_packet1,iface=swout,qpairs=1".into(),
        ]
        .iter()
        .map(|a| toml_str(a))
        .collect::<Vec<_>>()
        .join(", ");
        let config = format!(
            "[dpdk]\neal_args = [{eal}]\ncores = [1]\n\n\
             [[link]]\nname = \"testbed\"\ninside = \"net_af_packet0\"\noutside = \"net_af_packet1\"\nqueues = 1\n\n\
             [detect]\nports = [25]\n\n[windows]\n\"5m\" = 100\n\n{block}\n\n\
             [control]\nsocket = {}\nstate_dir = {}\nevents = {}\ntick = \"50ms\"\nstats_interval = \"0s\"\n\n{customers}",
            toml_str(&bed.socket.display().to_string()),
            toml_str(&dir.join("state").display().to_string()),
            toml_str(&dir.join("events.jsonl").display().to_string()),
        );
        let config = write_config(dir, "synwall.toml", &config);
        let log = fs::File::create(&bed.log).expect("log file");
        let child = Command::new(synwall)
            .arg("--config")
            .arg(&config)
            .args(["--duration", "110", "--summary-json"])
            .arg(&bed.summary)
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", synwall.display()));
        bed.synwall = Some(child);
        // Forwarding works (ARP, TCP both ways) once HTTP gets through.
        let started = Instant::now();
        loop {
            if http_ok("sw-cust1", &format!("http://{ACME4}/")) {
                break;
            }
            if let Some(status) = bed
                .synwall
                .as_mut()
                .expect("child")
                .try_wait()
                .expect("wait")
            {
                panic!("synwall exited ({status}) at start:\n{}", bed.output());
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no HTTP through synwall from sw-cust1 after 20 s\n{}",
                bed.output()
            );
        }
        eprintln!(
            "test bed up, synwall forwarding after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        bed
    }

    fn output(&self) -> String {
        format!(
            "synwall output:\n{}\ntestbed status:\n{}",
            fs::read_to_string(&self.log).unwrap_or_default(),
            String::from_utf8_lossy(&testbed("status").stdout)
        )
    }

    /// `synwallctl --json ARGS`: the reply, and whether it exited 0.
    fn ctl(&self, args: &[&str]) -> (bool, Value) {
        let (_, ctl) = bins();
        let out = run_bounded(
            Command::new(ctl)
                .arg("--socket")
                .arg(&self.socket)
                .arg("--json")
                .args(args),
            Duration::from_secs(5),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let v = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "synwallctl {args:?}: {e}\nstdout: {text}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), v)
    }

    /// `synwallctl --json ARGS`, which must succeed.
    #[track_caller]
    fn ctl_ok(&self, args: &[&str]) -> Value {
        let (ok, v) = self.ctl(args);
        assert!(ok, "synwallctl {args:?} failed: {v}");
        v
    }

    /// `synwallctl customer NAME`'s `customer` object.
    fn customer(&self, name: &str) -> Value {
        self.ctl_ok(&["customer", name])["customer"].clone()
    }

    /// Waits (up to 3 s) until `name`'s state is `state`.
    #[track_caller]
    fn wait_state(&self, name: &str, state: &str) -> Value {
        wait_until(
            &format!("customer {name} {state}"),
            Duration::from_secs(3),
            || {
                let c = self.customer(name);
                (c["state"] == state).then_some(c)
            },
        )
    }

    fn events(&self) -> Vec<Value> {
        read_events(&self.dir.as_ref().expect("dir").join("events.jsonl"))
    }

    /// Stops synwall (SIGTERM) and returns its `--summary-json`.
    fn stop(&mut self) -> Value {
        let mut child = self.synwall.take().expect("synwall running");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = wait_timeout(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("synwall ignored SIGTERM for 10 s\n{}", self.output()));
        assert!(
            status.success(),
            "synwall exited {status}\n{}",
            self.output()
        );
        let text = fs::read_to_string(&self.summary).expect("summary");
        serde_json::from_str(&text).expect("summary JSON")
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(mut child) = self.synwall.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.output());
        }
        let down = testbed("down");
        if !down.status.success() {
            eprintln!(
                "scripts/testbed down failed:\n{}",
                String::from_utf8_lossy(&down.stderr)
            );
        }
        // TestDir's own Drop keeps the files after a failure.
        self.dir.take();
    }
}

/// A summary's `verdicts` add up, and `name`'s SYN counts are as given.
fn check_summary(summary: &Value, customers: &[(&str, u64, u64)]) {
    let v = &summary["verdicts"];
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("verdicts.{k}: {v}"));
    assert_eq!(
        n("forwarded")
            + n("dropped_blocked")
            + n("dropped_malformed")
            + n("reset_sent")
            + n("reverse_forwarded"),
        n("rx"),
        "verdicts do not add up: {v}"
    );
    assert_eq!(n("tx_full"), 0, "{v}");
    assert_eq!(
        n("dropped_malformed"),
        0,
        "real stacks sent malformed frames? {summary:#}"
    );
    for &(name, seen, forwarded) in customers {
        let c = summary["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in the summary: {summary:#}"));
        assert_eq!(c["syn_forwarded"], forwarded, "{name}: {c}");
        if seen != 0 {
            assert!(
                c["syn_seen"].as_u64().expect("syn_seen") >= seen,
                "{name}: {c}"
            );
        }
    }
}

fn customers() -> String {
    [
        customer(
            "acme",
            &["198.51.100.0/24", "2001:db8:1::/48"],
            "limits = { \"5m\" = 3 }",
        ),
        customer("beta", &["192.0.2.0/24"], ""),
        customer("gamma", &["203.0.113.0/24"], "limits = { \"5m\" = 2 }"),
    ]
    .concat()
}

/// `action = "reset"`: over the limit, mail fails at once; other customers
/// and other traffic are untouched; operators unblock; blocks expire.
#[test]
fn mail_over_the_limit_is_reset_inline() {
    skip_unless_possible!();
    let mut bed = Bed::start(
        "netns-reset",
        "[block]\naction = \"reset\"\nscope = \"syn\"\nduration = \"4s\"\nescalation = 1.0",
        &customers(),
    );
    let started = Instant::now();

    // acme (sw-cust1): its limit of 3, over IPv4 and IPv6, delivers...
    assert_delivers("sw-cust1", ACME4, 2, "acme below its limit (IPv4)");
    assert_delivers("sw-cust1", ACME6, 1, "acme at its limit (IPv6)");
    // ... and the next connections are reset, on both families.
    assert_refused("sw-cust1", ACME4, 2, "acme over its limit (IPv4)");
    assert_refused("sw-cust1", ACME6, 1, "acme over its limit (IPv6)");
    let acme = bed.wait_state("acme", "blocked");
    assert_eq!(acme["windows"][0]["count"], 3, "{acme}");
    assert_eq!(acme["forwarded"], 3, "{acme}");
    let blocks = bed.ctl_ok(&["blocks"]);
    assert!(blocks.to_string().contains("acme"), "{blocks}");

    // beta (sw-cust2) keeps sending mail; acme's web traffic still flows.
    assert_delivers("sw-cust2", BETA4, 2, "beta while acme is blocked");
    assert!(
        http_ok("sw-cust1", &format!("http://{ACME4}/")),
        "HTTP (IPv4) from the blocked acme"
    );
    assert!(
        http_ok("sw-cust1", &format!("http://[{ACME6}]/")),
        "HTTP (IPv6) from the blocked acme"
    );

    // gamma (sw-cust3, VLAN 100): counted under its own name, blocked on its own.
    assert_delivers("sw-cust3", GAMMA4, 2, "gamma (VLAN 100) at its limit");
    assert_refused("sw-cust3", GAMMA4, 1, "gamma (VLAN 100) over its limit");
    let gamma = bed.wait_state("gamma", "blocked");
    assert_eq!(gamma["windows"][0]["count"], 2, "{gamma}");
    assert_eq!(bed.customer("acme")["windows"][0]["count"], 3);
    assert_eq!(bed.customer("beta")["state"], "open");

    // The operator lifts acme's block (raising its limit first: its window
    // is still full, so without room it would block again at once).
    bed.ctl_ok(&["set-limit", "--customer", "acme", "5m", "10"]);
    bed.ctl_ok(&["unblock", "acme", "--reason", "netns test"]);
    bed.wait_state("acme", "open");
    assert_delivers("sw-cust1", ACME4, 1, "acme right after the unblock (IPv4)");
    assert_delivers("sw-cust1", ACME6, 1, "acme right after the unblock (IPv6)");

    // gamma's automatic block (4 s) expires by itself.
    wait_until("gamma's block to expire", Duration::from_secs(8), || {
        bed.events()
            .into_iter()
            .find(|e| e["kind"] == "expire" && e["customer"] == "gamma")
    });
    assert_ne!(bed.customer("gamma")["state"], "blocked");

    // An operator's block with a duration: beta's mail is reset, then
    // flows again when the block runs out, with nobody doing anything.
    bed.ctl_ok(&[
        "block",
        "beta",
        "--duration",
        "2s",
        "--reason",
        "netns test",
    ]);
    bed.wait_state("beta", "blocked");
    assert_refused("sw-cust2", BETA4, 1, "beta under an operator's block");
    bed.wait_state("beta", "open");
    assert_delivers("sw-cust2", BETA4, 1, "beta after its block expired");

    let events = bed.events();
    for (kind, who) in [
        ("block", "acme"),
        ("unblock", "acme"),
        ("block", "gamma"),
        ("expire", "gamma"),
        ("block", "beta"),
        ("expire", "beta"),
    ] {
        assert!(
            events
                .iter()
                .any(|e| e["kind"] == kind && e["customer"] == who),
            "no {kind} event for {who}: {events:?}"
        );
    }

    let summary = bed.stop();
    // acme: 3 + 2 after the unblock forwarded; gamma 2; beta 2 + 1.
    check_summary(&summary, &[("acme", 8, 5), ("beta", 4, 3), ("gamma", 3, 2)]);
    assert!(
        summary["verdicts"]["reset_sent"]
            .as_u64()
            .expect("reset_sent")
            >= 5,
        "{summary:#}"
    );
    eprintln!("reset test took {:.1} s", started.elapsed().as_secs_f64());
}

/// `action = "drop"`: over the limit, the mailer's connection times out;
/// the server never hears of it.
#[test]
fn mail_over_the_limit_is_dropped_inline() {
    skip_unless_possible!();
    let mut bed = Bed::start(
        "netns-drop",
        "[block]\naction = \"drop\"\nscope = \"syn\"\nduration = \"1h\"",
        &customers(),
    );
    let started = Instant::now();
    assert_delivers("sw-cust1", ACME4, 3, "acme up to its limit");
    let before = delivered();
    let mails = send_mail("sw-cust1", ACME4, 1, 2.0);
    assert!(
        mails[0].result == "TimeoutError" && mails[0].secs >= 1.9,
        "expected a connect timeout (2 s) over the limit, got:{}",
        show(&mails)
    );
    let mails = send_mail("sw-cust1", ACME6, 1, 2.0);
    assert!(
        mails[0].result == "TimeoutError",
        "expected a connect timeout over IPv6 too, got:{}",
        show(&mails)
    );
    assert_eq!(delivered(), before, "a dropped connection delivered mail");
    let acme = bed.wait_state("acme", "blocked");
    // The SYNs and their retransmissions, all counted as attempts.
    assert!(
        acme["attempts_while_blocked"].as_u64().unwrap_or(0) >= 1
            || acme["seen"].as_u64().unwrap_or(0) > 3,
        "{acme}"
    );
    assert_delivers("sw-cust2", BETA4, 1, "beta while acme is blocked");
    assert!(http_ok("sw-cust1", &format!("http://{ACME4}/")));
    // VLAN-tagged gamma is untouched by acme's block.
    assert_delivers("sw-cust3", GAMMA4, 1, "gamma (VLAN 100)");

    let summary = bed.stop();
    check_summary(&summary, &[("acme", 5, 3), ("beta", 1, 1), ("gamma", 1, 1)]);
    assert!(
        summary["verdicts"]["dropped_blocked"]
            .as_u64()
            .expect("dropped_blocked")
            >= 2,
        "{summary:#}"
    );
    assert_eq!(summary["verdicts"]["reset_sent"], 0, "{summary:#}");
    eprintln!("drop test took {:.1} s", started.elapsed().as_secs_f64());
}
