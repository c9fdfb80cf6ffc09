//! The soak: synwall forwarding a replayed mix at full speed for a while
//! (`net_pcap` `infinite_rx=1` into `net_null`), two workers, while the
//! operator side churns: reloads that add and remove a customer (SIGHUP and
//! the control socket in turn), operator blocks and unblocks, status
//! queries. At the end every counter must add up (verdicts, outcomes,
//! workers, ports), no mbuf may be missing from the pool, the hammering
//! customer got exactly its limit through, and every churn request was
//! answered as it should be.
//!
//! `cargo test` runs a short soak (`SOAK_SECS`, default 12 s) so the test
//! cannot rot; `scripts/soak [SECS]` runs a long one (minutes).

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::{ACK, PSH, SYN};
use synwall_tests::*;

const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
const WAIT: Duration = Duration::from_secs(60);

/// `spam` has the default limits (100 in 5m and in 1h), so it is blocked
/// by the control plane within its first replay and stays blocked; the
/// others never reach theirs.
const SECTIONS: &str = "[windows]\n\"5m\" = 100\n\"1h\" = 100\n\"1d\" = 100000\n\n\
     [plans.unlimited]\n\"5m\" = 1000000000000\n\"1h\" = 1000000000000\n\"1d\" = 1000000000000\n\n\
     [plans.big]\n\"5m\" = 8000000\n\"1h\" = 8000000\n\"1d\" = 8000000";

const CUSTOMERS: &str = "[[customer]]\nname = \"spam\"\nprefixes = [\"10.1.0.0/16\"]\n\n\
     [[customer]]\nname = \"beta\"\nprefixes = [\"10.2.0.0/16\"]\nplan = \"unlimited\"\n\n\
     [[customer]]\nname = \"big\"\nprefixes = [\"10.5.0.0/16\"]\nplan = \"big\"\n\n\
     [[customer]]\nname = \"mail\"\nprefixes = [\"10.3.0.0/16\", \"2001:db8:3::/48\"]\nplan = \"unlimited\"\n";

/// Added and removed by the reloads; its traffic is nobody's in between.
const EXTRA: &str =
    "[[customer]]\nname = \"extra\"\nprefixes = [\"10.4.0.0/16\"]\nplan = \"unlimited\"\n";

/// One queue's share of the mix: SYNs to 25 from each customer and from
/// `extra`'s prefix and from `big`, established web and SMTP traffic, DNS, IPv6, a
/// tagged frame and a malformed one.
fn mix(queue: u8) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for i in 0..200u32 {
        let host = |net: u8| Ipv4Addr::new(10, net, queue, (i % 250) as u8 + 1);
        let port = 1024 + i as u16;
        for net in [1, 2, 3, 4, 5] {
            frames.push(
                FrameBuilder::tcp_v4(host(net), MX, port, 25, SYN)
                    .seq(i * 7919)
                    .build(),
            );
        }
        for _ in 0..4 {
            frames.push(FrameBuilder::tcp_v4(host(3), MX, port, 443, ACK | PSH).build());
        }
        frames.push(FrameBuilder::tcp_v4(host(3), MX, port, 25, ACK).build());
        frames.push(FrameBuilder::udp_v4(host(2), Ipv4Addr::new(9, 9, 9, 9), port, 53).build());
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, queue.into(), i as u16 + 1);
        let mx6 = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 25);
        frames.push(FrameBuilder::tcp_v6(v6, mx6, port, 25, SYN).build());
        frames.push(
            FrameBuilder::tcp_v4(host(2), MX, port, 80, ACK)
                .vlan(0x8100, 100 + queue as u16)
                .build(),
        );
        if i % 10 == 0 {
            // Truncated in the TCP header.
            let mut f = FrameBuilder::tcp_v4(host(2), MX, port, 25, SYN).build();
            f.truncate(14 + 20 + 10);
            frames.push(f);
        }
    }
    frames
}

fn ask(socket: &Path, request: &str) -> Value {
    control_request(socket, format!("{request}\n").as_bytes(), WAIT)
        .unwrap_or_else(|e| panic!("{request}: {e}"))
}

fn soak(secs: u64) {
    let mut s = Scenario::new(mix(0), Vec::new())
        .sections(SECTIONS)
        .customers(CUSTOMERS)
        .control("tick = \"50ms\"\nsnapshot_interval = \"1s\"")
        .outside_device("net_null0,no-rx=1")
        .forever();
    s.inside.push(mix(1));
    s.outside.push(Vec::new());
    s.cores = vec![1, 2];
    if cpus() < 3 {
        s.extra_eal = vec!["--lcores=0@0,1@1,2@1".to_owned()];
    }
    s.duration = (secs + 120) as f64;
    let dir = TestDir::new("soak");
    let base = s.config(&dir);
    let with_extra = format!("{base}\n{EXTRA}");
    let mut running = s.spawn(dir, &[]);
    let sock = running.dir().join("control.sock");
    running.wait_for("the control socket", WAIT, |_| {
        UnixStream::connect(&sock).ok().map(|_| ())
    });

    let started = Instant::now();
    let (mut reloads, mut blocks, mut unblocks, mut statuses) = (0usize, 0, 0, 0);
    let mut round = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        assert!(!running.exited(), "synwall stopped\n{}", running.output());
        match round % 4 {
            // Reload, adding or removing `extra`: by SIGHUP, or through the
            // socket, in turn.
            0 => {
                let text = if reloads % 2 == 0 { &with_extra } else { &base };
                fs::write(&running.config, text).unwrap();
                if reloads % 4 < 2 {
                    running.signal("HUP");
                } else {
                    let r = ask(&sock, r#"{"cmd":"reload"}"#);
                    assert_eq!(r["ok"], true, "reload: {r}");
                }
                reloads += 1;
                let n = reloads;
                running.wait_for(&format!("reload event #{n}"), WAIT, |r| {
                    (r.events().iter().filter(|e| e["kind"] == "reload").count() >= n).then_some(())
                });
            }
            1 => {
                let r = ask(
                    &sock,
                    r#"{"cmd":"block","customer":"beta","duration":"1h","reason":"soak"}"#,
                );
                assert_eq!(r["ok"], true, "block: {r}");
                blocks += 1;
            }
            2 => {
                let r = ask(&sock, r#"{"cmd":"unblock","customer":"beta"}"#);
                assert_eq!(r["ok"], true, "unblock: {r}");
                unblocks += 1;
            }
            _ => {
                let r = ask(&sock, r#"{"cmd":"status"}"#);
                assert_eq!(r["ok"], true, "status: {r}");
                statuses += 1;
            }
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    eprintln!(
        "soak: {secs} s, {reloads} reloads, {blocks} blocks, {unblocks} unblocks, {statuses} status; verdicts {}; mempool {}",
        run.summary["verdicts"], run.summary["mempool"]
    );

    // Every counter adds up, and no mbuf is missing from the pool.
    run.assert_consistent();
    assert!(
        run.verdict("rx") > 100_000,
        "hardly any traffic: {}",
        run.summary["verdicts"]
    );
    // Reloads: all accepted, none lost.
    let events = run.events_of("reload", None);
    assert_eq!(events.len(), reloads, "{events:?}");
    for e in &events {
        let why = e["reason"].as_str().unwrap_or_default();
        assert!(!why.starts_with("rejected"), "{e}");
    }
    // The hammer got exactly its limit through, across every reload.
    let customers = run.all_customers();
    let get = |name: &str| customers.iter().find(|c| c.name == name).cloned();
    let spam = get("spam").expect("spam counted");
    assert_eq!(spam.forwarded, 100, "{spam:?}");
    assert!(spam.dropped > 0, "{spam:?}");
    assert_eq!(run.customer_state("spam").as_deref(), Some("blocked"));
    // The operator's blocks of beta dropped some of its SYNs, the unblocks
    // let the rest through.
    if blocks > 0 && unblocks > 0 {
        let beta = get("beta").expect("beta counted");
        assert!(beta.forwarded > 0 && beta.dropped > 0, "{beta:?}");
    }
    // `mail` is far below its limits. A reload hands each core's allowance
    // to the new generation the moment that core moves over; in the few
    // microseconds before the control thread sees the move, that core's
    // new allowance is still 0 (so that nothing is ever forwarded twice on
    // one allowance). This replay sends millions of mail SYNs a second, so
    // each reload costs it a few dozen; before the hand-over it was the
    // whole reload (~0.1-0.3 % of mail's SYNs here).
    // `big` reaches its limit of 8 M after some seconds here, across
    // reloads whose hand-over carried its allowances: exactly the limit.
    // (On a slow machine a short soak may not get there: then it must not
    // have lost a SYN either.)
    let big = get("big").expect("big counted");
    eprintln!("soak: {big:?}, {:?}", get("mail"));
    if big.seen > 8_000_000 {
        assert_eq!(big.forwarded, 8_000_000, "{big:?}");
        assert_eq!(run.customer_state("big").as_deref(), Some("blocked"));
    } else {
        assert!(big.dropped * 100 <= big.seen, "{big:?}");
    }
    // The share of its SYNs it loses is the share of the run its new
    // allowance waited for the hand-over: `SOAK_FALSE_DROP_PPM` bounds it
    // (default 5000 ppm, loose enough for a loaded CI machine; scripts/soak
    // asks for 1000; a grant left at 0 until the next tick would cost
    // ~5 % here).
    let ppm: u64 = std::env::var("SOAK_FALSE_DROP_PPM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let mail = get("mail").expect("mail counted");
    assert!(
        mail.dropped * 1_000_000 <= mail.seen * ppm,
        "false drops of a customer far below its limits (> {ppm} ppm): {mail:?}"
    );
}

#[test]
fn short_soak() {
    let secs = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    soak(secs);
}
