//! `[detect] exempt_destinations`: TCP to the provider's own relays on a
//! watched port is neither counted against the customer nor blocked, IPv4
//! and IPv6, counted as an outcome of its own (`exempt_destination`), and a
//! reload that adds a destination applies it to the running dataplane.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::{ACK, PSH, SYN};
use synwall_tests::fixtures::*;
use synwall_tests::*;

const RELAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 25);

const WAIT: Duration = Duration::from_secs(30);

/// acme is blocked; beta may open 3 connections per 5 minutes.
fn customers() -> String {
    acme("blocked = true") + &beta("limits = { \"5m\" = 3 }")
}

const EXEMPT: &str = "[detect]\nexempt_destinations = [\"203.0.113.0/24\", \"2001:db8:25::/48\"]";

fn relay6() -> Ipv6Addr {
    "2001:db8:25::25".parse().unwrap()
}

fn syn(src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> Vec<u8> {
    FrameBuilder::tcp_v4(src, dst, port, 25, SYN)
        .seq(u32::from(port) * 7919)
        .build()
}

#[test]
fn a_blocked_customer_reaches_the_relay_and_nothing_else() {
    let to_relay = vec![
        syn(ACME, RELAY, 40000),
        FrameBuilder::tcp_v6(ACME6, relay6(), 40001, 25, SYN).build(),
        FrameBuilder::tcp_v4(ACME, RELAY, 40002, 25, ACK | PSH)
            .payload(b"MAIL FROM:<a@acme.example>\r\n")
            .build(),
    ];
    let elsewhere = vec![
        syn(ACME, MX, 40003),
        FrameBuilder::tcp_v6(ACME6, "2001:db8:ff::25".parse().unwrap(), 40004, 25, SYN).build(),
    ];
    let inside = [to_relay.clone(), elsewhere].concat();
    for scope in ["syn", "smtp"] {
        let run = Scenario::new(inside.clone(), Vec::new())
            .sections(&format!("{EXEMPT}\n\n[block]\nscope = \"{scope}\""))
            .customers(&customers())
            .run(&format!("exempt-blocked-{scope}"));
        assert_frames_eq(&run.out_frames(), &to_relay, "outside tx");
        run.assert_verdicts(&Verdicts {
            rx: 5,
            forwarded: 3,
            dropped_blocked: 2,
            ..Verdicts::default()
        });
        run.assert_outcomes(&[("exempt_destination", 3), ("syn_watched", 2)]);
        run.assert_customers(&[("acme", 2, 0, 2)]);
        run.assert_consistent();
    }
}

#[test]
fn syns_to_the_relay_do_not_count_against_the_limit() {
    let mut inside: Vec<Vec<u8>> = (0..10).map(|i| syn(BETA, RELAY, 41000 + i)).collect();
    inside.extend((0..2).map(|i| syn(BETA, MX, 42000 + i)));
    let run = Scenario::new(inside.clone(), Vec::new())
        .sections(EXEMPT)
        .customers(&customers())
        .run("exempt-limit");
    assert_frames_eq(&run.out_frames(), &inside, "outside tx: all forwarded");
    run.assert_outcomes(&[("exempt_destination", 10), ("syn_watched", 2)]);
    run.assert_customers(&[("beta", 2, 2, 0)]);
    assert_eq!(run.window_count("beta", "5m"), 2);
    assert!(run.events_of("block", Some("beta")).is_empty());
    assert_eq!(run.customer_state("beta").as_deref(), Some("open"));
    run.assert_consistent();

    // The same traffic without the exemption: beta crosses its limit.
    let run = Scenario::new(inside, Vec::new())
        .customers(&customers())
        .run("exempt-none");
    assert_eq!(run.verdict("forwarded"), 3, "three SYNs, then the limit");
    run.assert_consistent();
}

#[test]
fn a_reload_adds_an_exempt_destination() {
    // acme (blocked) sends SYNs to the relay forever.
    let frames: Vec<Vec<u8>> = (0..64).map(|i| syn(ACME, RELAY, 43000 + i)).collect();
    let mut s = Scenario::new(frames, Vec::new())
        .customers(&customers())
        .forever();
    s.duration = 120.0;
    let dir = TestDir::new("exempt-reload");
    let before = s.config(&dir);
    let mut running = s.spawn(dir, &[]);
    let status = |r: &Running<'_>| -> Option<serde_json::Value> {
        control_request(
            &r.dir().join("control.sock"),
            b"{\"cmd\":\"status\"}\n",
            Duration::from_secs(5),
        )
        .ok()
    };
    let verdict = |v: &serde_json::Value, name: &str| v["frames"][name].as_u64().unwrap_or(0);
    // Before: every SYN of acme's is dropped.
    let first = running.wait_for("acme's SYNs dropped", WAIT, |r| {
        status(r).filter(|v| verdict(v, "dropped_blocked") > 1000)
    });
    assert_eq!(verdict(&first, "forwarded"), 0, "{first}");

    // Add the relay's network; the next generation forwards them.
    let after = before.replacen("[detect]", &format!("{EXEMPT}\n"), 1);
    let after = if after == before {
        format!("{before}\n{EXEMPT}\n")
    } else {
        after
    };
    fs::write(&running.config, &after).expect("rewriting the config");
    running.signal("HUP");
    let ev = running.wait_for_event("the reload", WAIT, |e| e["kind"] == "reload");
    assert!(
        !ev["reason"].as_str().unwrap_or("").contains("rejected"),
        "{ev}"
    );
    let forwarded = running.wait_for("acme's SYNs to the relay forwarded", WAIT, |r| {
        status(r).filter(|v| verdict(v, "forwarded") > 1000)
    });
    let dropped = verdict(&forwarded, "dropped_blocked");
    std::thread::sleep(Duration::from_millis(300));
    let later = status(&running).expect("status");
    assert_eq!(
        verdict(&later, "dropped_blocked"),
        dropped,
        "nothing dropped after the reload: {later}"
    );
    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.counter("/outcomes/exempt_destination") > 1000);
    run.assert_consistent();
}
