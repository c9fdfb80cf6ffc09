//! Plain forwarding through the appliance: a blocked customer's SMTP SYNs are
//! dropped, everything else (other customers, unknown sources, the blocked
//! customer's non-SMTP traffic and established sessions with scope "syn",
//! non-IP frames) is forwarded byte for byte, and the reverse direction is
//! forwarded without inspection, even frames that would be dropped outbound.

use std::net::Ipv4Addr;

use synwall_dataplane::craft::{arp_request, FrameBuilder};
use synwall_dataplane::parse::tcp_flags::{ACK, PSH, SYN};
use synwall_tests::fixtures::*;
use synwall_tests::*;

/// acme blocked, beta open, gamma (10.20.0.0/16) blocked.
fn customers() -> String {
    acme_blocked_beta_open() + &customer("gamma", &["10.20.0.0/16"], "blocked = true")
}

#[test]
fn blocked_customer_dropped_everything_else_forwarded() {
    let inside = vec![
        // 0: acme SYN to 25: dropped.
        FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
            .seq(1)
            .build(),
        // 1: beta SYN to 25: forwarded, counted for beta.
        FrameBuilder::tcp_v4(BETA, MX, 40001, 25, SYN)
            .seq(2)
            .build(),
        // 2: unknown source SYN to 25: forwarded, no customer.
        FrameBuilder::tcp_v4(UNKNOWN, MX, 40002, 25, SYN).build(),
        // 3: acme SYN to 443: not watched, forwarded.
        FrameBuilder::tcp_v4(ACME, MX, 40003, 443, SYN).build(),
        // 4: acme UDP/53: forwarded.
        FrameBuilder::udp_v4(ACME, MX, 5353, 53)
            .payload(b"query")
            .build(),
        // 5: acme established SMTP (ACK+PSH) with scope syn: forwarded.
        FrameBuilder::tcp_v4(ACME, MX, 40004, 25, ACK | PSH)
            .seq(100)
            .ack(200)
            .payload(b"EHLO acme.example\r\n")
            .build(),
        // 6: ARP: not IP, forwarded.
        arp_request(ACME, Ipv4Addr::new(198, 51, 100, 1)),
        // 7: beta, a second SYN to 25.
        FrameBuilder::tcp_v4(BETA, MX, 40005, 25, SYN)
            .seq(3)
            .build(),
        // 8: acme ICMP echo: forwarded.
        FrameBuilder::ip_v4(ACME, MX, 1)
            .payload(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0])
            .build(),
        // 9: acme again, SYN to 25 with MSS option and padding: dropped.
        FrameBuilder::tcp_v4(ACME, MX, 40006, 25, SYN)
            .tcp_options(&[2, 4, 5, 0xb4])
            .pad_to(64)
            .build(),
        // 10: beta SYN to 587: not watched by default.
        FrameBuilder::tcp_v4(BETA, MX, 40007, 587, SYN).build(),
    ];
    let outside = vec![
        // The reverse direction is not inspected: an acme-sourced SYN to 25
        // arriving from upstream is forwarded inward untouched.
        FrameBuilder::tcp_v4(ACME, MX, 41000, 25, SYN).build(),
        // A server's SYN+ACK back to beta.
        FrameBuilder::tcp_v4(MX, BETA, 25, 40001, SYN | ACK)
            .seq(9)
            .ack(3)
            .build(),
        // A garbage frame: forwarded as is.
        vec![0xff; 20],
        arp_request(MX, BETA),
    ];
    let run = Scenario::new(inside.clone(), outside.clone())
        .customers(&customers())
        .run("forwarding");

    assert_frames_eq(
        &run.out_frames(),
        &pick(&inside, &[1, 2, 3, 4, 5, 6, 7, 8, 10]),
        "outside tx",
    );
    assert_frames_eq(&run.back_frames(), &outside, "inside tx (reverse)");
    run.assert_verdicts(&Verdicts {
        rx: 15,
        forwarded: 9,
        dropped_blocked: 2,
        reverse_forwarded: 4,
        syn_no_customer: 1,
        ..Verdicts::default()
    });
    run.assert_outcomes(&[
        ("syn_watched", 5),
        ("other_ip", 4),
        ("watched_other", 1),
        ("non_ip", 1),
    ]);
    run.assert_customers(&[("acme", 2, 0, 2), ("beta", 2, 2, 0)]);
    assert_eq!(
        run.port("inside"),
        PortCount {
            name: "net_pcap0".into(),
            rx: 11,
            tx: 4,
            rx_nombuf: 0,
        }
    );
    assert_eq!(
        run.port("outside"),
        PortCount {
            name: "net_pcap1".into(),
            rx: 4,
            tx: 9,
            rx_nombuf: 0,
        }
    );
    assert_eq!(run.summary["ports"][0]["link"], "l0");
    // gamma sent nothing: if listed at all (as a blocked customer), with
    // zero counts.
    if let Some(g) = run.all_customers().iter().find(|c| c.name == "gamma") {
        assert_eq!(g, &CustomerCount::new("gamma", 0, 0, 0));
    }
    if let Some(state) = run.customer_state("acme") {
        assert_eq!(state, "blocked");
    }
    if let Some(state) = run.customer_state("beta") {
        assert_eq!(state, "open");
    }
    run.assert_consistent();
}

#[test]
fn watched_ports_are_configurable() {
    // With ports = [25, 587], the 587 SYN of a blocked customer is dropped
    // too, and port 25 stays watched.
    let inside = vec![
        FrameBuilder::tcp_v4(ACME, MX, 40000, 587, SYN).build(),
        FrameBuilder::tcp_v4(ACME, MX, 40001, 25, SYN).build(),
        FrameBuilder::tcp_v4(ACME, MX, 40002, 465, SYN).build(),
        FrameBuilder::tcp_v4(BETA, MX, 40003, 587, SYN).build(),
    ];
    let run = Scenario::new(inside.clone(), Vec::new())
        .sections("[detect]\nports = [25, 587]")
        .customers(&customers())
        .run("ports");
    assert_frames_eq(&run.out_frames(), &pick(&inside, &[2, 3]), "outside tx");
    assert!(run.back_frames().is_empty());
    run.assert_verdicts(&Verdicts {
        rx: 4,
        forwarded: 2,
        dropped_blocked: 2,
        ..Verdicts::default()
    });
    run.assert_outcomes(&[("syn_watched", 3), ("other_ip", 1)]);
    run.assert_customers(&[("acme", 2, 0, 2), ("beta", 1, 1, 0)]);
    run.assert_consistent();
}
