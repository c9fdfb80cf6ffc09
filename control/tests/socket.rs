//! The control socket over a real Unix socket, with a fake control loop
//! (a real `ControlPlane` over real shards, no DPDK), and `synwallctl`
//! against it.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use synwall_control::commands::execute;
use synwall_control::socket::{ControlSocket, Dataplane, SocketError, SocketOptions};
use synwall_control::testing::Fake;
use synwall_engine::event::Event;

/// A socket in a fresh directory and a control loop thread serving it.
struct Harness {
    dir: PathBuf,
    path: PathBuf,
    socket: Option<ControlSocket>,
    stop: Arc<AtomicBool>,
    control: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<Event>>>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn temp_dir() -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("synwall-sock-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

impl Harness {
    /// `synwallctl events` on this socket, its stdout piped; returns once
    /// the socket has `followers` event followers (this one among them), or
    /// after 10 s.
    fn synwallctl_events(&self, followers: usize) -> std::process::Child {
        let child = Process::new(synwall_tests::bins::synwallctl_bin())
            .arg("--socket")
            .arg(&self.path)
            .arg("events")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.socket.as_ref().unwrap().events().followers() < followers
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    fn new() -> Harness {
        Harness::with(|_| {}, true)
    }

    /// The default options as `set` changes them; `serve = false`: nobody
    /// drains the request queue.
    fn with(set: impl FnOnce(&mut SocketOptions), serve: bool) -> Harness {
        let mut opts = SocketOptions::default();
        set(&mut opts);
        let dir = temp_dir();
        // A directory the server must create.
        let path = dir.join("run/control.sock");
        let (socket, requests) = ControlSocket::bind_with(&path, opts).unwrap();
        let bus = socket.events().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let control = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                let mut fake = Fake::real_time();
                fake.log = log;
                while !stop.load(Ordering::Relaxed) {
                    if serve {
                        if let Ok(req) = requests.recv_timeout(Duration::from_millis(20)) {
                            let reply = execute(req.cmd.clone(), &req.caller, &mut fake);
                            req.answer(reply);
                        }
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    fake.tick();
                    bus.publish(&std::mem::take(&mut fake.emitted));
                }
                drop(requests);
            })
        };
        Harness {
            dir,
            path,
            socket: Some(socket),
            stop,
            control: Some(control),
            log,
        }
    }

    fn connect(&self) -> Client {
        Client::new(&self.path)
    }

    fn ask(&self, line: &str) -> Value {
        self.connect().ask(line)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.control.take() {
            let _ = c.join();
        }
        drop(self.socket.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn new(path: &Path) -> Client {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
            Err(e) => panic!("reading a reply: {e}"),
        }
    }

    fn ask(&mut self, line: &str) -> Value {
        self.send(format!("{line}\n").as_bytes());
        self.read().expect("a reply")
    }

    /// Whether the server closed the connection.
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

fn me() -> String {
    format!("uid={} pid={}", nix::unistd::getuid(), std::process::id())
}

fn error_of(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "{v}");
    v["error"].as_str().unwrap()
}

#[test]
fn every_command_round_trips() {
    let h = Harness::new();
    let mut c = h.connect();
    let r = c.ask(r#"{"cmd":"status"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["version"], "test");

    let r = c.ask(r#"{"cmd":"customers","window":"1h","top":5}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["window"], "1h");
    assert_eq!(r["total"], 3);

    let r = c.ask(r#"{"cmd":"customer","customer":"2001:db8:1::9"}"#);
    assert_eq!(r["customer"]["name"], "acme", "{r}");
    assert_eq!(r["customer"]["prefixes"][1], "2001:db8:1::/48");

    let r = c.ask(r#"{"cmd":"block","customer":"acme","duration":"2h","reason":"abuse #123"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["event"]["by"], me());
    let r = c.ask(r#"{"cmd":"blocks"}"#);
    assert_eq!(r["blocks"][0]["customer"], "acme", "{r}");
    assert_eq!(r["blocks"][0]["reason"]["reason"], "abuse #123");
    let r = c.ask(r#"{"cmd":"unblock","customer":"198.51.100.1","reason":"fixed"}"#);
    assert_eq!(r["event"]["kind"], "unblock", "{r}");
    assert_eq!(c.ask(r#"{"cmd":"blocks"}"#)["blocks"], json!([]));

    // The event log (here: what the loop emitted) names the caller.
    let log = h.log.lock().unwrap().clone();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|e| e.by.as_deref() == Some(me().as_str())));
    assert!(log[0].to_line().contains(&me()));

    let r = c.ask(r#"{"cmd":"set-limit","plan":"mailserver","window":"5m","value":5}"#);
    assert_eq!(r["customers"], json!(["mx"]), "{r}");
    let r = c.ask(r#"{"cmd":"mode","customer":"mx","mode":"monitor"}"#);
    assert_eq!(r["mode"], "monitor", "{r}");
    let r = c.ask(r#"{"cmd":"mode","mode":"enforce"}"#);
    assert_eq!(r["global"], true, "{r}");
    let r = c.ask(r#"{"cmd":"customer","customer":"mx"}"#);
    assert_eq!(r["customer"]["mode"], "monitor");
    assert_eq!(r["customer"]["windows"][0]["limit"], 5);
    let r = c.ask(r#"{"cmd":"reload"}"#);
    assert_eq!(r["message"], "reloaded: 3 customers", "{r}");
    let r = c.ask(r#"{"cmd":"metrics"}"#);
    assert!(
        r["metrics"].as_str().unwrap().contains("synwall_up 1"),
        "{r}"
    );
}

#[test]
fn errors_are_specific_and_the_connection_goes_on() {
    let h = Harness::new();
    let mut c = h.connect();
    let e = c.ask(r#"{"cmd":"explode"}"#);
    assert!(error_of(&e).starts_with("unknown command 'explode'"), "{e}");
    let e = c.ask(r#"{"cmd":"block","customer":"acme2"}"#);
    assert_eq!(error_of(&e), "unknown customer 'acme2'");
    let e = c.ask(r#"{"cmd":"block","customer":"acme","duration":"2x"}"#);
    assert!(error_of(&e).starts_with("bad duration '2x': "), "{e}");
    let e = c.ask(r#"{"cmd":"customers","window":"2h"}"#);
    assert!(error_of(&e).starts_with("unknown window '2h'"), "{e}");
    let e = c.ask(r#"{"cmd":"status""#);
    assert!(error_of(&e).starts_with("invalid JSON at column 15"), "{e}");
    c.send(b"{\"cmd\":\"st\xc3\x28tus\"}\n");
    let e = c.read().unwrap();
    assert_eq!(error_of(&e), "invalid UTF-8 at byte 11");
    // Blank lines are ignored; CRLF is fine (socat -t, telnet).
    c.send(b"\n  \r\n");
    let r = c.ask("{\"cmd\":\"status\"}\r");
    assert_eq!(r["ok"], true, "{r}");
    assert!(h.log.lock().unwrap().is_empty());
}

#[test]
fn an_oversized_line_is_cut_off_and_others_are_served() {
    let h = Harness::new();
    let mut big = h.connect();
    let mut other = h.connect();
    let writer = big.writer.try_clone().unwrap();
    // The server stops reading at 64 KiB, so the rest may fail to send.
    let sender = std::thread::spawn(move || {
        let mut w = writer;
        let mut line = vec![b'x'; 70 * 1024];
        line.push(b'\n');
        let _ = w.write_all(&line);
    });
    let e = big.read().expect("an error reply");
    assert_eq!(error_of(&e), "line too long (limit 64 KiB)");
    assert!(big.closed());
    sender.join().unwrap();
    assert_eq!(other.ask(r#"{"cmd":"status"}"#)["ok"], true);
    // Exactly 64 KiB (padding spaces) is still a request.
    let mut line = br#"{"cmd":"status"}"#.to_vec();
    line.resize(64 * 1024, b' ');
    line.push(b'\n');
    other.send(&line);
    assert_eq!(other.read().unwrap()["ok"], true);
}

#[test]
fn silent_clients_block_nobody_and_idle_out() {
    let h = Harness::with(|o| o.idle_timeout = Duration::from_millis(400), true);
    let mut silent = h.connect();
    // Half a line, then nothing.
    let mut half = h.connect();
    half.send(br#"{"cmd":"sta"#);
    let t = Instant::now();
    assert_eq!(h.ask(r#"{"cmd":"blocks"}"#)["ok"], true);
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    for c in [&mut silent, &mut half] {
        let e = c.read().expect("an idle notice");
        assert!(error_of(&e).starts_with("idle for 0.4 s"), "{e}");
        assert!(c.closed());
    }
}

#[test]
fn many_concurrent_clients() {
    let h = Harness::new();
    let path = h.path.clone();
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut c = Client::new(&path);
                for j in 0..20 {
                    let r = if (i + j) % 3 == 0 {
                        c.ask(r#"{"cmd":"customer","customer":"acme"}"#)
                    } else {
                        c.ask(r#"{"cmd":"status"}"#)
                    };
                    assert_eq!(r["ok"], true, "{r}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let socket = h.socket.as_ref().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while socket.clients() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(socket.clients(), 0);
}

#[test]
fn clients_beyond_the_limit_are_turned_away() {
    let h = Harness::with(|o| o.max_clients = 3, true);
    let mut held: Vec<Client> = (0..3).map(|_| h.connect()).collect();
    for c in &mut held {
        assert_eq!(c.ask(r#"{"cmd":"status"}"#)["ok"], true);
    }
    let mut extra = h.connect();
    let e = extra.read().expect("a refusal");
    assert_eq!(error_of(&e), "too many clients");
    assert!(extra.closed());
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.socket.as_ref().unwrap().clients() > 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(h.ask(r#"{"cmd":"status"}"#)["ok"], true);
}

#[test]
fn a_full_socket_makes_room_by_closing_the_longest_silent_client() {
    let h = Harness::with(|o| o.max_clients = 3, true);
    let mut oldest = h.connect();
    std::thread::sleep(Duration::from_millis(50));
    let mut asked = h.connect();
    assert_eq!(asked.ask(r#"{"cmd":"status"}"#)["ok"], true);
    let _silent = h.connect();
    // Full: the newcomer is served, the oldest silent client goes.
    let t = Instant::now();
    assert_eq!(h.ask(r#"{"cmd":"blocks"}"#)["ok"], true);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let e = oldest.read().expect("a notice");
    assert!(error_of(&e).contains("has sent no request"), "{e}");
    assert!(oldest.closed());
    // The client that asked something keeps its slot.
    assert_eq!(asked.ask(r#"{"cmd":"status"}"#)["ok"], true);
}

#[test]
fn a_control_loop_that_does_not_answer_times_out() {
    let h = Harness::with(|o| o.reply_timeout = Duration::from_millis(200), false);
    let e = h.ask(r#"{"cmd":"status"}"#);
    assert_eq!(error_of(&e), "the appliance did not answer within 0.2 s");
}

#[test]
fn events_stream_to_followers() {
    let h = Harness::new();
    let mut follower = h.connect();
    let ack = follower.ask(r#"{"cmd":"events"}"#);
    assert_eq!(ack, json!({"ok": true, "events": "following"}));
    let mut second = h.connect();
    second.ask(r#"{"cmd":"events"}"#);
    assert_eq!(h.socket.as_ref().unwrap().events().followers(), 2);
    h.ask(r#"{"cmd":"block","customer":"mx","reason":"test"}"#);
    h.ask(r#"{"cmd":"unblock","customer":"mx"}"#);
    for f in [&mut follower, &mut second] {
        let block = f.read().unwrap();
        assert_eq!(block["kind"], "block", "{block}");
        assert_eq!(block["customer"], "mx");
        assert_eq!(block["by"], me());
        assert_eq!(f.read().unwrap()["kind"], "unblock");
    }
    // A follower that leaves is noticed and dropped.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.socket.as_ref().unwrap().clients() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.socket.as_ref().unwrap().clients(), 1);
}

#[test]
fn socket_file_mode_group_and_lifecycle() {
    let dir = temp_dir();
    let path = dir.join("control.sock");
    let gid = nix::unistd::getgid();
    let group = nix::unistd::Group::from_gid(gid).unwrap().unwrap().name;
    let (socket, _rx) = ControlSocket::bind(&path, 0o660, Some(&group)).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), gid.as_raw());
    // Taken: a second server refuses, and leaves the first one's file.
    let err = ControlSocket::bind(&path, 0o660, None).unwrap_err();
    assert!(matches!(err, SocketError::InUse(_)), "{err}");
    assert!(path.exists());
    drop(socket);
    assert!(!path.exists(), "drop removes the socket file");

    // A stale socket (its server died without cleaning up) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (socket, _rx) = ControlSocket::bind(&path, 0o600, None).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    drop(socket);

    let err = ControlSocket::bind(&path, 0o660, Some("no-such-group-synwall")).unwrap_err();
    assert!(matches!(err, SocketError::UnknownGroup(_)), "{err}");
    assert!(err.to_string().contains("groupadd"), "{err}");
    assert!(!path.exists(), "a failed bind leaves no file");

    std::fs::write(&path, "not a socket").unwrap();
    let err = ControlSocket::bind(&path, 0o660, None).unwrap_err();
    assert!(matches!(err, SocketError::NotASocket(_)), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
    let _ = std::fs::remove_dir_all(&dir);
}

fn synwallctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Process::new(synwall_tests::bins::synwallctl_bin())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("SYNWALL_SOCKET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn synwallctl_against_the_socket() {
    let h = Harness::new();
    let p = &h.path;
    let (code, out, err) = synwallctl(p, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("version: test"), "{out}");

    let (code, out, err) = synwallctl(
        p,
        &[
            "block",
            "198.51.100.20",
            "--duration",
            "2h",
            "--reason",
            "abuse #9",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("block acme until "), "{out}");
    assert!(out.contains("abuse #9"), "{out}");
    let by = h.log.lock().unwrap()[0].by.clone().unwrap();
    assert!(
        by.starts_with(&format!("uid={} pid=", nix::unistd::getuid())),
        "{by}"
    );

    let (code, out, _) = synwallctl(p, &["blocks"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("CUSTOMER") && out.contains("acme"), "{out}");
    let (code, out, _) = synwallctl(p, &["--json", "blocks"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["blocks"][0]["customer"], "acme");

    let (code, out, _) = synwallctl(p, &["customer", "acme"]);
    assert_eq!(code, 0);
    assert!(out.contains("state     blocked"), "{out}");
    assert!(out.contains("WINDOW"), "{out}");
    let (code, out, _) = synwallctl(p, &["customers", "--window", "1h", "--top", "3"]);
    assert_eq!(code, 0);
    assert!(out.contains("SYNS(1h)"), "{out}");
    let (code, out, _) = synwallctl(p, &["set-limit", "--customer", "acme", "5m", "50"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("5m limit set to 50 (was 10) for 1 customer (acme)"),
        "{out}"
    );
    let (code, out, _) = synwallctl(p, &["mode", "acme", "monitor"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "acme: mode monitor (was enforce)\n")
    );
    let (code, out, _) = synwallctl(p, &["mode", "enforce"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "default mode: enforce (was enforce)\n")
    );
    let (code, out, _) = synwallctl(p, &["metrics"]);
    assert_eq!(code, 0);
    assert!(out.contains("synwall_up 1"), "{out}");
    let (code, _, _) = synwallctl(p, &["unblock", "acme", "--reason", "ok"]);
    assert_eq!(code, 0);

    // The appliance refuses: exit 1, its words on stderr.
    let (code, _, err) = synwallctl(p, &["unblock", "acme"]);
    assert_eq!(code, 1);
    assert!(err.contains("customer 'acme' is not blocked"), "{err}");
    let (code, _, err) = synwallctl(p, &["block", "acme", "--duration", "2x"]);
    assert_eq!(code, 1);
    assert!(err.contains("bad duration '2x'"), "{err}");
    // Usage: exit 2.
    let (code, _, _) = synwallctl(p, &["set-limit", "5m", "10"]);
    assert_eq!(code, 2);
    let (code, _, err) = synwallctl(p, &["mode", "acme", "sleepy"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = synwallctl(p, &["frobnicate"]);
    assert_eq!(code, 2);
    // No socket: exit 3 and a hint.
    let (code, _, err) = synwallctl(&h.dir.join("nope.sock"), &["status"]);
    assert_eq!(code, 3);
    assert!(err.contains("is synwall running? no socket at"), "{err}");
}

#[test]
fn synwallctl_follows_events() {
    let h = Harness::new();
    let mut child = h.synwallctl_events(1);
    h.ask(r#"{"cmd":"block","customer":"acme","reason":"watch"}"#);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("block") && line.contains("acme"), "{line}");
    assert!(
        line.contains(&format!("by=uid={}", nix::unistd::getuid())),
        "{line}"
    );
}

/// Every change an operator makes is an event naming the caller and the
/// old and new values: in the loop's log, and in `synwallctl events`.
#[test]
fn changes_are_events_with_the_caller_and_old_and_new_values() {
    let h = Harness::new();
    let mut follower = h.connect();
    follower.ask(r#"{"cmd":"events"}"#);
    let mut ctl = h.synwallctl_events(2);
    let mut c = h.connect();
    for line in [
        r#"{"cmd":"set-limit","customer":"acme","window":"5m","value":3}"#,
        r#"{"cmd":"set-limit","plan":"mailserver","window":"5m","value":50}"#,
        r#"{"cmd":"mode","customer":"mx","mode":"monitor"}"#,
        r#"{"cmd":"mode","mode":"monitor"}"#,
        r#"{"cmd":"reload"}"#,
    ] {
        let r = c.ask(line);
        assert_eq!(r["ok"], true, "{line}: {r}");
    }
    // A refused change leaves no event.
    error_of(&c.ask(r#"{"cmd":"set-limit","customer":"zz","window":"5m","value":3}"#));
    let got: Vec<Value> = (0..5).map(|_| follower.read().unwrap()).collect();
    let want = [
        json!({"kind": "set_limit", "customer": "acme", "window": "5m", "old": 10, "new": 3}),
        json!({"kind": "set_limit", "plan": "mailserver", "window": "5m", "old": 1000, "new": 50}),
        json!({"kind": "set_mode", "customer": "mx", "old": "enforce", "new": "monitor"}),
        json!({"kind": "set_mode", "old": "enforce", "new": "monitor"}),
        json!({"kind": "reload"}),
    ];
    for (e, w) in got.iter().zip(&want) {
        for (k, v) in w.as_object().unwrap() {
            assert_eq!(&e[k], v, "{k} of {e}");
        }
        assert_eq!(e["by"], me(), "{e}");
    }
    assert!(got[3].get("customer").is_none(), "{}", got[3]);
    assert_eq!(h.log.lock().unwrap().len(), 5);
    // synwallctl events prints them as lines of words.
    let mut out = BufReader::new(ctl.stdout.take().unwrap());
    let lines: Vec<String> = (0..5)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line
        })
        .collect();
    let _ = ctl.kill();
    let _ = ctl.wait();
    assert!(
        lines[0].contains("set_limit") && lines[0].contains("acme"),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("old=10") && lines[0].contains("new=3"),
        "{lines:?}"
    );
    assert!(lines[0].contains(&format!("by={}", me())), "{lines:?}");
    assert!(lines[1].contains("plan=mailserver"), "{lines:?}");
    assert!(lines[2].contains("new=monitor old=enforce"), "{lines:?}");
}

#[test]
fn a_follower_that_never_reads_is_dropped_without_stalling_the_loop() {
    let h = Harness::with(
        |o| {
            o.event_backlog = 64;
            o.write_timeout = Duration::from_millis(300);
        },
        true,
    );
    let mut lazy = h.connect();
    assert_eq!(lazy.ask(r#"{"cmd":"events"}"#)["ok"], true);
    let bus = h.socket.as_ref().unwrap().events().clone();
    assert_eq!(bus.followers(), 1);
    let mut ev = Event::reload(synwall_engine::event::Timestamp(0), "x".repeat(200));
    ev.customer = Some("acme".into());
    let batch = vec![ev; 100];
    let t = Instant::now();
    // ~4 MB of events: far more than the socket buffer and the backlog.
    for _ in 0..200 {
        bus.publish(&batch);
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(bus.followers(), 0);
    // Its connection is closed; everyone else is served.
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.socket.as_ref().unwrap().clients() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.socket.as_ref().unwrap().clients(), 0);
    assert_eq!(h.ask(r#"{"cmd":"status"}"#)["ok"], true);
}

#[test]
fn status_says_the_dataplane_is_starting_until_it_is_ready() {
    let h = Harness::with(|o| o.dataplane = Dataplane::Starting, true);
    // Answered by the connection thread: the loop is not consulted.
    let r = h.ask(r#"{"cmd":"status"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["state"], "starting", "{r}");
    assert_eq!(r["dataplane"], "starting", "{r}");
    assert!(r.get("links").is_none(), "{r}");
    let socket = h.socket.as_ref().expect("socket");
    socket.set_dataplane(Dataplane::Forwarding);
    assert_eq!(socket.dataplane(), Dataplane::Forwarding);
    assert_eq!(Dataplane::Forwarding.state(), "forwarding");
    assert_eq!(Dataplane::Forwarding.as_str(), "ready", "the older word");
    // Now the control loop answers.
    let r = h.ask(r#"{"cmd":"status"}"#);
    assert_eq!(r["version"], "test", "{r}");
    socket.set_dataplane(Dataplane::Stopping);
    let r = h.ask(r#"{"cmd":"status"}"#);
    assert_eq!(r["state"], "stopping", "{r}");
    assert_eq!(r["dataplane"], "stopping", "{r}");
}
