//! Hostile and careless clients of a running appliance: thousands of idle
//! or slow control-socket connections and `events` followers, a script
//! that pipelines a thousand requests, a slowloris against `/metrics`, and
//! a stdout that nobody reads. Operators and Prometheus must keep getting
//! answers within a second through all of it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use synwall_tests::fixtures::acme_beta_10;
use synwall_tests::*;

/// Generous: the machine may be loaded (2 CPUs, tests in parallel).
const WAIT: Duration = Duration::from_secs(60);

/// What an operator must get an answer within while the clients below
/// misbehave.
const PROMPT: Duration = Duration::from_secs(1);

/// A long-running appliance with two customers and no traffic to speak of.
fn scenario(control: &str) -> Scenario {
    let mut s = Scenario::new(vec![Vec::new()], vec![Vec::new()])
        .sections("[windows]\n\"5m\" = 1000000\n\"1h\" = 1000000\n\"1d\" = 1000000")
        .customers(&acme_beta_10(""));
    if !control.is_empty() {
        s = s.control(control);
    }
    s.duration = 300.0;
    s
}

/// `{"cmd":"status"}` on a fresh connection, within `timeout`.
fn status(socket: &Path, timeout: Duration) -> Result<Value, String> {
    let v = control_request(socket, b"{\"cmd\":\"status\"}\n", timeout)?;
    if v["ok"] == true {
        Ok(v)
    } else {
        Err(v.to_string())
    }
}

/// Waits until `status` says the appliance is forwarding.
fn wait_ready(run: &mut Running, socket: &Path) {
    run.wait_for("the appliance to forward", WAIT, |_| {
        let v = status(socket, Duration::from_secs(5)).ok()?;
        (v["state"] == "forwarding").then_some(())
    });
}

/// Raises this process's open-file limit to at least `n` (up to the hard
/// limit), for tests that hold thousands of connections.
fn allow_open_files(n: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < n {
        assert!(
            hard >= n,
            "this test holds {n} connections; the hard open-file limit is {hard}"
        );
        setrlimit(Resource::RLIMIT_NOFILE, n, hard).expect("setrlimit");
    }
}

/// `synwallctl --json status`, timed: (exit code, stdout+stderr, elapsed).
fn timed_synwallctl_status(socket: &Path) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(synwallctl_bin())
        .arg("--socket")
        .arg(socket)
        .args(["--json", "status"])
        .env_remove("SYNWALL_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning synwallctl");
    let status = wait_timeout(&mut child, WAIT).expect("synwallctl status hung");
    let elapsed = started.elapsed();
    let mut text = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut text);
    let _ = child.stderr.take().unwrap().read_to_string(&mut text);
    (status.code(), text, elapsed)
}

/// 2,000 idle connections, 100 that sent half a request and 100 `events`
/// followers: a fresh `synwallctl status` is answered within a second
/// every time, and the idle ones are closed with a notice after the
/// request deadline.
#[test]
fn idle_and_slow_clients_and_followers_do_not_lock_operators_out() {
    synwall_bin();
    synwallctl_bin();
    allow_open_files(4096);
    let s = scenario("");
    let mut run = s.spawn(TestDir::new("hostile-idle"), &[]);
    let socket = run.dir().join("control.sock");
    wait_ready(&mut run, &socket);

    let connect = |what: &str| {
        UnixStream::connect(&socket).unwrap_or_else(|e| panic!("connecting {what}: {e}"))
    };
    let idle: Vec<UnixStream> = (0..2000).map(|_| connect("an idle client")).collect();
    let halves: Vec<UnixStream> = (0..100)
        .map(|_| {
            let mut c = connect("a slow client");
            c.write_all(br#"{"cmd":"sta"#).expect("half a request");
            c
        })
        .collect();
    let mut followers = Vec::new();
    let mut refused_followers = 0;
    for _ in 0..100 {
        let mut c = connect("a follower");
        c.write_all(b"{\"cmd\":\"events\"}\n").expect("events");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(c);
        let mut line = String::new();
        r.read_line(&mut line).expect("the events reply");
        let v: Value = serde_json::from_str(&line).expect("JSON");
        if v["ok"] == true {
            followers.push(r);
        } else {
            refused_followers += 1;
            assert!(
                v["error"].as_str().unwrap_or("").contains("followers"),
                "{v}"
            );
        }
    }
    assert!(!followers.is_empty(), "no follower was admitted");

    for i in 0..5 {
        let (code, text, elapsed) = timed_synwallctl_status(&socket);
        assert_eq!(
            code,
            Some(0),
            "status #{i} with 2,000 idle clients held: {text}"
        );
        assert!(
            elapsed < PROMPT,
            "status #{i} took {elapsed:?} with 2,000 idle clients held"
        );
        eprintln!("status #{i}: {elapsed:?}");
    }
    eprintln!(
        "followers: {} admitted, {refused_followers} refused",
        followers.len()
    );

    // The idle and the slow are told why and closed after the deadline;
    // the followers stay.
    let started = Instant::now();
    for mut c in idle.into_iter().step_by(100).chain(halves) {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut text = String::new();
        let _ = c.read_to_string(&mut text);
        assert!(text.contains("idle for"), "{text:?}");
    }
    let closed_after = started.elapsed();
    eprintln!("idle clients closed after {closed_after:?} more");
    assert!(closed_after < Duration::from_secs(15), "{closed_after:?}");
    let (code, text, _) = timed_synwallctl_status(&socket);
    assert_eq!(code, Some(0), "{text}");
    run.signal("TERM");
    drop(followers);
    run.wait(WAIT);
}

/// A script that writes 1,000 requests on one connection gets its 1,000
/// replies, in order, well within a second: each request wakes the
/// control loop instead of waiting for its next nap.
#[test]
fn a_thousand_pipelined_requests_are_answered_within_a_second() {
    synwall_bin();
    let s = scenario("");
    let mut run = s.spawn(TestDir::new("hostile-pipelined"), &[]);
    let socket = run.dir().join("control.sock");
    wait_ready(&mut run, &socket);

    const N: usize = 1000;
    let stream = UnixStream::connect(&socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut text = String::new();
        for i in 0..N {
            if i % 2 == 0 {
                text.push_str("{\"cmd\":\"customer\",\"customer\":\"acme\"}\n");
            } else {
                text.push_str("{\"cmd\":\"blocks\"}\n");
            }
        }
        writer.write_all(text.as_bytes()).expect("sending");
    });
    let mut reader = BufReader::new(stream);
    let mut answered = 0;
    for i in 0..N {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => panic!("closed after {i} replies"),
            Ok(_) => {}
            Err(e) => panic!("reply {i}: {e} after {:?}", started.elapsed()),
        }
        let v: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["ok"], true, "reply {i}: {v}");
        if i % 2 == 0 {
            assert_eq!(v["customer"]["name"], "acme", "reply {i} out of order: {v}");
        } else {
            assert!(v["blocks"].is_array(), "reply {i} out of order: {v}");
        }
        answered += 1;
        // Bounded on today's code too: stop waiting once it is clearly slow.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "only {answered} of {N} pipelined requests answered in {:?}",
            started.elapsed()
        );
    }
    let took = started.elapsed();
    sender.join().unwrap();
    eprintln!("{N} pipelined requests answered in {took:?}");
    assert!(took < PROMPT, "{N} pipelined requests took {took:?}");
    run.signal("TERM");
    run.wait(WAIT);
}

/// 500 connections to `/metrics` that send nothing, or a request head a
/// byte at a time: a scrape is answered within a second all the same, and
/// a 10 MB head is refused with 431.
#[test]
fn metrics_answer_during_a_slowloris() {
    synwall_bin();
    allow_open_files(2048);
    let port = free_port();
    let s = scenario(&format!("metrics_listen = \"127.0.0.1:{port}\""));
    let mut run = s.spawn(TestDir::new("hostile-slowloris"), &[]);
    let socket = run.dir().join("control.sock");
    wait_ready(&mut run, &socket);
    wait_until("a first scrape", WAIT, || {
        http_get(port, "/metrics", Duration::from_secs(5)).ok()
    });

    let mut silent = Vec::new();
    let mut slow = Vec::new();
    for i in 0..500 {
        // Bounded: a server that accepts one client at a time leaves the
        // rest to the kernel's backlog, where connect(2) waits for minutes.
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connection {i} of the slowloris: {e}"));
        if i % 2 == 0 {
            silent.push(c);
        } else {
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            slow.push(c);
        }
    }
    // A byte on every slow connection every 100 ms, for as long as the
    // scrapes below take.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for c in &mut slow {
                    let _ = c.write_all(b"X");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            slow
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut worst = Duration::ZERO;
    for i in 0..10 {
        let started = Instant::now();
        let got = http_get(port, "/metrics", Duration::from_secs(5));
        let took = started.elapsed();
        worst = worst.max(took);
        let (code, body) = got.unwrap_or_else(|e| panic!("scrape #{i} during a slowloris: {e}"));
        assert_eq!(code, 200, "scrape #{i}: {body}");
        assert!(body.contains("synwall_build_info"), "scrape #{i}: {body}");
        assert!(
            took < PROMPT,
            "scrape #{i} took {took:?} during a slowloris"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("worst scrape during a 500-connection slowloris: {worst:?}");

    // A 10 MB head: 431, promptly, and the server goes on.
    let mut big = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let writer = {
        let mut w = big.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(b"GET /metrics HTTP/1.1\r\nX-Pad: ");
            let chunk = vec![b'a'; 1 << 20];
            for _ in 0..10 {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
        })
    };
    let mut reply = Vec::new();
    let _ = big.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&reply[..reply.len().min(200)])
    );
    writer.join().unwrap();

    // The silent ones are cut off.
    let started = Instant::now();
    for mut c in silent.into_iter().step_by(50) {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
    }
    eprintln!(
        "silent connections closed after {:?} more",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(25));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(trickler.join().unwrap());
    assert_eq!(
        http_get(port, "/metrics", Duration::from_secs(5))
            .unwrap()
            .0,
        200
    );
    run.signal("TERM");
    run.wait(WAIT);
}
/// With stdout a pipe that nobody reads (a stalled journald), block and
/// unblock churn fills it within a second; the control loop goes on:
/// requests are answered, ticks run, and the lines it could not write are
/// counted in `status` and `/metrics`.
#[test]
fn a_stdout_nobody_reads_does_not_wedge_the_control_plane() {
    synwall_bin();
    let port = free_port();
    let s = scenario(&format!(
        "metrics_listen = \"127.0.0.1:{port}\"\nstats_interval = \"1s\""
    ));
    let dir = TestDir::new("hostile-stdout");
    let (config, _) = s.prepare(&dir);
    let stderr = dir.join("synwall.stderr");
    let mut child = Command::new(synwall_bin())
        .arg("--config")
        .arg(&config)
        .args(["--duration", "300"])
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("spawning synwall");
    // Held, never read: the pipe fills and stays full.
    let _stdout = child.stdout.take();
    let socket = dir.join("control.sock");
    let output = || std::fs::read_to_string(&stderr).unwrap_or_default();
    wait_until("the appliance to forward", WAIT, || {
        let v = status(&socket, Duration::from_secs(5)).ok()?;
        (v["state"] == "forwarding").then_some(())
    });

    // 2,000 events of ~450 bytes each: more than the pipe (64 KiB) and the
    // console queue (1,024 lines) hold together.
    let reason = "r".repeat(200);
    let stream = UnixStream::connect(&socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let started = Instant::now();
    let mut done = 0;
    'churn: for _ in 0..20 {
        let mut batch = String::new();
        for _ in 0..50 {
            batch.push_str(&format!(
                "{{\"cmd\":\"block\",\"customer\":\"acme\",\"reason\":\"{reason}\"}}\n\
                 {{\"cmd\":\"unblock\",\"customer\":\"acme\",\"reason\":\"{reason}\"}}\n"
            ));
        }
        writer.write_all(batch.as_bytes()).expect("sending churn");
        for _ in 0..100 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break 'churn;
            }
            let v: Value = serde_json::from_str(&line).expect("JSON");
            if v["ok"] != true {
                eprintln!("churn stopped after {done} requests: {v}");
                break 'churn;
            }
            done += 1;
        }
    }
    eprintln!("{done} churn requests in {:?}", started.elapsed());
    let first = status(&socket, Duration::from_secs(3));
    let first = first.unwrap_or_else(|e| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "status after {done} churn requests with stdout full: {e}\n{}",
            output()
        )
    });
    assert_eq!(done, 2000, "every churn request answered");
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let second = status(&socket, Duration::from_secs(3)).expect("status");
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    let ticks = |v: &Value| v["ticks"].as_u64().expect("ticks");
    assert!(
        ticks(&second) > ticks(&first),
        "ticks stopped: {first} {second}"
    );
    let dropped = second["stdout_dropped_lines"].as_u64();
    eprintln!("stdout lines dropped: {dropped:?}");
    assert!(dropped.is_some_and(|n| n > 0), "{second}");
    wait_until("dropped lines in /metrics", WAIT, || {
        let (_, text) = http_get(port, "/metrics", Duration::from_secs(5)).ok()?;
        text.lines()
            .find(|l| l.starts_with("synwall_stdout_dropped_lines_total "))
            .and_then(|l| l.split(' ').nth(1)?.parse::<f64>().ok())
            .filter(|&n| n > 0.0)
    });
    // It stops on SIGTERM, with stdout still full.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exited = wait_timeout(&mut child, Duration::from_secs(30));
    assert!(
        exited.is_some_and(|s| s.success()),
        "{exited:?}\n{}",
        output()
    );
}
