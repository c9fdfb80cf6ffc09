//! `[block] action = "reset"`: a blocked customer's SYN comes back out of the
//! inside port as the RST+ACK the server would have sent (addresses, ports
//! and MACs swapped, VLAN tags kept, seq 0, ack = seq + 1 (+1 for FIN, +
//! payload), valid checksums); a SYN in a fragment is dropped instead.

use std::net::{IpAddr, Ipv4Addr};

use synwall_dataplane::checksum::{internet_checksum, l4_checksum_v4, l4_checksum_v6};
use synwall_dataplane::craft::{FrameBuilder, Ipv6Ext};
use synwall_dataplane::parse::tcp_flags::{ACK, FIN, RST, SYN};
use synwall_dataplane::parse::{parse, Outcome, SrcAddr, WatchedPorts, TPID_8021Q};
use synwall_tests::fixtures::*;
use synwall_tests::*;

const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 0x07];
const ROUTER_MAC: [u8; 6] = [0x02, 0x5e, 0, 0, 0, 0x01];

const CONFIG: &str = "[block]\naction = \"reset\"";
/// Checks `rst` on its own terms: it parses, it is a RST+ACK from `server`
/// port 25 to `client` port `cport` with ack `ack`, and its checksums verify.
fn check_rst(rst: &[u8], client: IpAddr, server: IpAddr, cport: u16, ack: u32) {
    let p = parse(rst, &WatchedPorts::new(&[cport]));
    assert_eq!(
        p.outcome,
        Outcome::WatchedOther,
        "RST parses as TCP to the client port"
    );
    assert_eq!(p.tcp_flags, RST | ACK);
    assert_eq!(p.l4_len, 20, "no options, no payload");
    let src = match server {
        IpAddr::V4(a) => SrcAddr::V4(u32::from(a)),
        IpAddr::V6(a) => SrcAddr::V6(u128::from(a)),
    };
    assert_eq!(p.src, Some(src), "comes from the server");
    let l3 = usize::from(p.l3_offset);
    let l4 = usize::from(p.l4_offset);
    let tcp = &rst[l4..l4 + 20];
    assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 25);
    assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), cport);
    assert_eq!(
        u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        0,
        "seq"
    );
    assert_eq!(
        u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
        ack,
        "ack"
    );
    match (client, server) {
        (IpAddr::V4(c), IpAddr::V4(s)) => {
            assert_eq!(
                internet_checksum(&rst[l3..l3 + 20]),
                0,
                "IPv4 header checksum"
            );
            assert_eq!(&rst[l3 + 16..l3 + 20], &c.octets(), "to the client");
            assert_eq!(
                l4_checksum_v4(s.octets(), c.octets(), 6, tcp),
                0,
                "TCP checksum"
            );
        }
        (IpAddr::V6(c), IpAddr::V6(s)) => {
            assert_eq!(&rst[l3 + 24..l3 + 40], &c.octets(), "to the client");
            assert_eq!(
                l4_checksum_v6(s.octets(), c.octets(), 6, tcp),
                0,
                "TCP checksum"
            );
        }
        _ => unreachable!(),
    }
}

#[test]
fn blocked_syn_answered_with_rst_on_the_inside_port() {
    let plain = FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
        .macs(CLIENT_MAC, ROUTER_MAC)
        .seq(0x1122_3344)
        .build();
    // Tagged, with options and 10 bytes of data, and a seq that wraps.
    let tagged = FrameBuilder::tcp_v4(ACME, MX, 40001, 25, SYN)
        .macs(CLIENT_MAC, ROUTER_MAC)
        .vlan(TPID_8021Q, 0x2000 | 42)
        .tcp_options(&[2, 4, 5, 0xb4, 4, 2])
        .payload(b"0123456789")
        .seq(0xffff_fffa)
        .build();
    let v6 = FrameBuilder::tcp_v6(ACME6, MX6, 40002, 25, SYN)
        .macs(CLIENT_MAC, ROUTER_MAC)
        .ipv6_ext_headers([Ipv6Ext::hop_by_hop(), Ipv6Ext::destination_options()])
        .seq(7)
        .build();
    let syn_fin = FrameBuilder::tcp_v4(ACME, MX, 40003, 25, SYN | FIN)
        .macs(CLIENT_MAC, ROUTER_MAC)
        .seq(1000)
        .pad_to(60)
        .build();
    let beta = FrameBuilder::tcp_v4(BETA, MX, 40004, 25, SYN).build();
    // A SYN in a first fragment is never answered (the RST could not be
    // right for the reassembled packet): dropped.
    let fragment = FrameBuilder::tcp_v4(ACME, MX, 40005, 25, SYN)
        .payload(&[1; 40])
        .ipv4_fragment(0, true)
        .truncate_l4(32)
        .build();
    let inside = vec![
        plain.clone(),
        tagged.clone(),
        v6.clone(),
        syn_fin.clone(),
        beta.clone(),
        fragment,
    ];
    let run = Scenario::new(inside, Vec::new())
        .sections(CONFIG)
        .customers(&acme_blocked_beta_open())
        .run("reset");

    assert_frames_eq(&run.out_frames(), &[beta], "outside tx");

    let rst4 = |sport: u16, ack: u32| {
        FrameBuilder::tcp_v4(MX, ACME, 25, sport, RST | ACK)
            .macs(ROUTER_MAC, CLIENT_MAC)
            .seq(0)
            .ack(ack)
            .window(0)
            .ttl(64)
            .ip_id(0)
    };
    let want = vec![
        // Same length as the 54-byte SYN (no room to pad).
        rst4(40000, 0x1122_3345).build(),
        rst4(40001, 0xffff_fffa_u32.wrapping_add(1 + 10))
            .vlan(TPID_8021Q, 0x2000 | 42)
            .pad_to(60)
            .build(),
        FrameBuilder::tcp_v6(MX6, ACME6, 25, 40002, RST | ACK)
            .macs(ROUTER_MAC, CLIENT_MAC)
            .seq(0)
            .ack(8)
            .window(0)
            .ttl(64)
            .build(),
        rst4(40003, 1002).pad_to(60).build(),
    ];
    let back = run.back_frames();
    assert_frames_eq(&back, &want, "inside tx (resets)");
    check_rst(&back[0], ACME.into(), MX.into(), 40000, 0x1122_3345);
    check_rst(&back[1], ACME.into(), MX.into(), 40001, 5);
    check_rst(&back[2], ACME6.into(), MX6.into(), 40002, 8);
    check_rst(&back[3], ACME.into(), MX.into(), 40003, 1002);
    for (rst, syn) in back.iter().zip([&plain, &tagged, &v6, &syn_fin]) {
        assert_eq!(&rst[..6], &syn[6..12], "dst MAC = SYN's src MAC");
        assert_eq!(&rst[6..12], &syn[..6], "src MAC = SYN's dst MAC");
    }

    run.assert_verdicts(&Verdicts {
        rx: 6,
        forwarded: 1,
        reset_sent: 4,
        dropped_blocked: 1,
        ..Verdicts::default()
    });
    run.assert_outcomes(&[("syn_watched", 6)]);
    run.assert_customers(&[("acme", 5, 0, 5), ("beta", 1, 1, 0)]);
    run.assert_consistent();
}

#[test]
fn reset_mode_leaves_other_traffic_alone() {
    // With action = "reset", the blocked customer's non-SYN traffic, the
    // reverse direction and unknown sources behave as with "drop".
    let inside = vec![
        FrameBuilder::tcp_v4(ACME, MX, 40000, 25, ACK)
            .seq(5)
            .ack(6)
            .build(),
        FrameBuilder::tcp_v4(ACME, MX, 40001, 443, SYN).build(),
        FrameBuilder::tcp_v4(Ipv4Addr::new(203, 0, 113, 1), MX, 40002, 25, SYN).build(),
    ];
    let outside = vec![FrameBuilder::tcp_v4(MX, ACME, 25, 40000, ACK).build()];
    let run = Scenario::new(inside.clone(), outside.clone())
        .sections(CONFIG)
        .customers(&acme_blocked_beta_open())
        .run("reset-other");
    assert_frames_eq(&run.out_frames(), &inside, "outside tx");
    assert_frames_eq(&run.back_frames(), &outside, "inside tx");
    run.assert_verdicts(&Verdicts {
        rx: 4,
        forwarded: 3,
        reverse_forwarded: 1,
        syn_no_customer: 1,
        ..Verdicts::default()
    });
    run.assert_outcomes(&[("watched_other", 1), ("other_ip", 1), ("syn_watched", 1)]);
    assert!(run.customers().is_empty());
    run.assert_consistent();
}
