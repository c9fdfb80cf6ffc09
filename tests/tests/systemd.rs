//! systemd's notify protocol with the test playing systemd: a datagram
//! socket as `NOTIFY_SOCKET`, the messages read and checked in order —
//! `READY=1` only once the dataplane forwards, `STATUS=` lines, `WATCHDOG=1`
//! while every worker polls and withheld once one stops (the
//! `SYNWALL_TEST_STOP_WORKER` hook), `STOPPING=1` last.
use std::net::Ipv4Addr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_tests::fixtures::acme_beta_10;
use synwall_tests::*;

const WAIT: Duration = Duration::from_secs(60);

fn customers() -> String {
    acme_beta_10("blocked = true")
}

fn frames() -> Vec<Vec<u8>> {
    let mx = Ipv4Addr::new(93, 184, 216, 34);
    (0..20u16)
        .map(|i| FrameBuilder::tcp_v4(Ipv4Addr::new(10, 1, 0, 1), mx, 2000 + i, 25, SYN).build())
        .collect()
}

/// The test's end of `NOTIFY_SOCKET`: every datagram, with when it came.
struct Systemd {
    sock: UnixDatagram,
    log: Vec<(Instant, String)>,
}

impl Systemd {
    fn bind(path: &Path) -> Systemd {
        let sock = UnixDatagram::bind(path).expect("binding the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        Systemd {
            sock,
            log: Vec::new(),
        }
    }

    /// The next message, waiting up to `timeout`.
    fn next(&mut self, timeout: Duration) -> Option<String> {
        let until = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.log.push((Instant::now(), m.clone()));
                    return Some(m);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the notify socket: {e}"),
            }
            if Instant::now() >= until {
                return None;
            }
        }
    }

    /// Every message for `span`.
    fn during(&mut self, span: Duration) -> Vec<String> {
        let until = Instant::now() + span;
        let mut out = Vec::new();
        while let Some(m) = self.next(until.saturating_duration_since(Instant::now())) {
            out.push(m);
        }
        out
    }

    /// Messages until one satisfies `pred` (which is returned last), within
    /// `timeout`.
    #[track_caller]
    fn until(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let until = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(m) => {
                    let done = pred(&m);
                    out.push(m);
                    if done {
                        return out;
                    }
                }
                None => panic!("no {what} within {timeout:?}; got {:?}", self.log),
            }
        }
    }
}

fn lines(msg: &str) -> Vec<&str> {
    msg.lines().collect()
}

fn status(socket: &Path) -> Value {
    control_request(socket, b"{\"cmd\":\"status\"}\n", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("status: {e}"))
}

#[test]
fn ready_status_watchdog_and_stopping_arrive_in_order_and_a_stalled_worker_stops_the_pings() {
    let dir = TestDir::new("systemd-notify");
    let notify = dir.join("notify.sock");
    let socket = dir.join("control.sock");
    let mut systemd = Systemd::bind(&notify);
    // 300 ms watchdog: synwall checks and pings every 150 ms. Worker 1 (of
    // two, on lcores 1 and 2) stops polling 3 s into forwarding.
    let mut s = Scenario::new(Vec::new(), Vec::new())
        .customers(&customers())
        .env("NOTIFY_SOCKET", notify.to_str().expect("utf-8"))
        .env("WATCHDOG_USEC", "300000")
        .env("SYNWALL_TEST_STOP_WORKER", "1:3");
    s.inside = vec![frames(), Vec::new()];
    s.outside = vec![Vec::new(), Vec::new()];
    s.cores = vec![1, 2];
    if cpus() < 3 {
        s.extra_eal = vec!["--lcores=0@0,1@1,2@1".to_owned()];
    }
    s.duration = 600.0;
    let mut running = s.spawn(dir, &[]);

    // The first message is READY=1, with the first status line.
    let first = systemd
        .next(WAIT)
        .unwrap_or_else(|| panic!("no notify message\n{}", running.output()));
    let first_lines = lines(&first);
    assert_eq!(first_lines[0], "READY=1", "{first:?}");
    let line = first_lines
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= with READY=1: {first:?}"));
    assert!(line.starts_with("forwarding: "), "{line}");
    assert!(line.contains("blocked 1 of 2 customers"), "{line}");
    // By READY=1 the control socket says forwarding too (both words).
    let st = status(&socket);
    assert_eq!(st["state"], "forwarding", "{st}");
    assert_eq!(st["dataplane"], "ready", "{st}");
    assert_eq!(st["workers_polling"], true, "{st}");
    assert_eq!(st["systemd"]["notify"], true, "{st}");
    assert_eq!(st["systemd"]["watchdog_usec"], 300000, "{st}");

    // While both workers poll: pings every ~150 ms, a status line a second.
    let healthy = systemd.during(Duration::from_millis(2000));
    let pings = healthy.iter().filter(|m| *m == "WATCHDOG=1\n").count();
    assert!(pings >= 5, "{pings} pings in 2 s: {healthy:?}");
    assert!(
        healthy.iter().any(|m| m.starts_with("STATUS=forwarding: ")),
        "{healthy:?}"
    );
    assert!(
        !healthy
            .iter()
            .any(|m| m.contains("READY=1") || m.contains("NOT POLLING")),
        "{healthy:?}"
    );

    // Worker 1 stops polling: a status line says so, and no ping after it.
    let stall = systemd.until("a stalled-worker status", Duration::from_secs(10), |m| {
        m.contains("WORKER NOT POLLING on lcore 2 (watchdog withheld)")
    });
    assert!(
        stall
            .iter()
            .all(|m| m.starts_with("STATUS=") || m == "WATCHDOG=1\n"),
        "{stall:?}"
    );
    let wedged = systemd.during(Duration::from_millis(1500));
    assert!(
        !wedged.iter().any(|m| m.contains("WATCHDOG=1")),
        "pinged with a worker stalled: {wedged:?}"
    );
    assert!(
        wedged
            .iter()
            .all(|m| m.starts_with("STATUS=") && m.contains("NOT POLLING")),
        "{wedged:?}"
    );
    let st = status(&socket);
    assert_eq!(st["state"], "forwarding", "{st}");
    assert_eq!(st["workers_polling"], false, "{st}");
    assert_eq!(st["stalled_workers"], serde_json::json!([2]), "{st}");
    assert!(
        st["systemd"]["watchdog_withheld"].as_u64() >= Some(5),
        "{st}"
    );
    assert_eq!(st["systemd"]["send_failures"], 0, "{st}");

    // SIGTERM: STOPPING=1 is the last message.
    running.signal("TERM");
    let tail = systemd.until("STOPPING=1", Duration::from_secs(20), |m| {
        m.starts_with("STOPPING=1\n")
    });
    let stopping = tail.last().expect("STOPPING=1");
    assert!(stopping.contains("STATUS=stopping: "), "{stopping:?}");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    assert_eq!(
        systemd.during(Duration::from_millis(200)),
        Vec::<String>::new(),
        "nothing after STOPPING=1"
    );
    assert_eq!(run.verdict("dropped_blocked"), 20, "acme's SYNs, blocked");
}

#[test]
fn a_notify_socket_nobody_reads_is_counted_and_forwarding_goes_on() {
    let dir = TestDir::new("systemd-nobody");
    let notify = dir.join("nobody.sock");
    let socket = dir.join("control.sock");
    let mut s = Scenario::new(frames(), Vec::new())
        .customers(&customers())
        .env("NOTIFY_SOCKET", notify.to_str().expect("utf-8"))
        .env("WATCHDOG_USEC", "200000");
    s.duration = 600.0;
    let mut running = s.spawn(dir, &[]);
    let st = running.wait_for("forwarding with failed notifications", WAIT, |_| {
        let st =
            control_request(&socket, b"{\"cmd\":\"status\"}\n", Duration::from_secs(5)).ok()?;
        (st["state"] == "forwarding" && st["systemd"]["send_failures"].as_u64() >= Some(3))
            .then_some(st)
    });
    assert_eq!(st["systemd"]["messages_sent"], 0, "{st}");
    let why = st["systemd"]["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("nobody.sock"), "{st}");
    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    assert!(
        run.exit.stderr.matches("notifying systemd").count() == 1,
        "said once, counted always: {}",
        run.exit.stderr
    );
    assert_eq!(run.verdict("dropped_blocked"), 20);
}

#[test]
fn a_bad_test_hook_value_is_refused_with_the_reason() {
    for (value, why) in [
        ("3:1", "there are 1 workers"),
        ("0", "no ':'"),
        ("0:-1", "SECS"),
    ] {
        let dir = TestDir::new("systemd-hook");
        let s = Scenario::new(Vec::new(), Vec::new()).env("SYNWALL_TEST_STOP_WORKER", value);
        let run = s.spawn(dir, &[]).wait(WAIT);
        assert!(!run.exit.status.success(), "{value}: {:?}", run.exit);
        assert!(
            run.exit.stderr.contains("SYNWALL_TEST_STOP_WORKER") && run.exit.stderr.contains(why),
            "{value}: {}",
            run.exit.stderr
        );
    }
}
