//! Header shapes through the real appliance: VLAN and QinQ tags, IPv6 with
//! extension headers, IPv4 and IPv6 fragments. A blocked customer's SYNs are
//! dropped whatever they hide behind; fragments that could hide a SYN are
//! dropped for the blocked customer only; later fragments pass.

use synwall_dataplane::craft::{FrameBuilder, Ipv6Ext};
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_dataplane::parse::{TPID_8021AD, TPID_8021Q, TPID_QINQ_LEGACY};
use synwall_tests::fixtures::*;
use synwall_tests::*;

fn hbh_dst() -> [Ipv6Ext; 2] {
    [Ipv6Ext::hop_by_hop(), Ipv6Ext::destination_options()]
}

#[test]
fn vlan_qinq_ipv6_ext_headers_and_fragments() {
    // (frame, forwarded?)
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "acme 802.1Q SYN",
            FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
                .vlan(TPID_8021Q, 100)
                .build(),
            false,
        ),
        (
            "acme QinQ 802.1ad+802.1Q SYN",
            FrameBuilder::tcp_v4(ACME, MX, 40001, 25, SYN)
                .vlan(TPID_8021AD, 10)
                .vlan(TPID_8021Q, 0x2000 | 200)
                .build(),
            false,
        ),
        (
            "acme legacy QinQ 0x9100+802.1Q SYN",
            FrameBuilder::tcp_v4(ACME, MX, 40002, 25, SYN)
                .vlan(TPID_QINQ_LEGACY, 11)
                .vlan(TPID_8021Q, 201)
                .build(),
            false,
        ),
        (
            "beta 802.1Q SYN",
            FrameBuilder::tcp_v4(BETA, MX, 40003, 25, SYN)
                .vlan(TPID_8021Q, 100)
                .build(),
            true,
        ),
        (
            "beta QinQ SYN",
            FrameBuilder::tcp_v4(BETA, MX, 40004, 25, SYN)
                .vlan(TPID_8021AD, 10)
                .vlan(TPID_8021Q, 200)
                .build(),
            true,
        ),
        (
            "acme IPv6 SYN",
            FrameBuilder::tcp_v6(ACME6, MX6, 40005, 25, SYN).build(),
            false,
        ),
        (
            "acme IPv6 HBH+dstopts SYN",
            FrameBuilder::tcp_v6(ACME6, MX6, 40006, 25, SYN)
                .ipv6_ext_headers(hbh_dst())
                .build(),
            false,
        ),
        (
            "acme IPv6 HBH+dstopts SYN in QinQ",
            FrameBuilder::tcp_v6(ACME6, MX6, 40007, 25, SYN)
                .ipv6_ext_headers(hbh_dst())
                .vlan(TPID_8021AD, 10)
                .vlan(TPID_8021Q, 300)
                .build(),
            false,
        ),
        (
            "beta IPv6 HBH+dstopts SYN",
            FrameBuilder::tcp_v6(BETA6, MX6, 40008, 25, SYN)
                .ipv6_ext_headers(hbh_dst())
                .build(),
            true,
        ),
        (
            "acme IPv6 HBH+dstopts to 443",
            FrameBuilder::tcp_v6(ACME6, MX6, 40009, 443, SYN)
                .ipv6_ext_headers(hbh_dst())
                .build(),
            true,
        ),
        (
            "acme IPv4 tiny first fragment (8 bytes of TCP)",
            FrameBuilder::tcp_v4(ACME, MX, 40010, 25, SYN)
                .ipv4_fragment(0, true)
                .truncate_l4(8)
                .build(),
            false,
        ),
        (
            "beta IPv4 tiny first fragment",
            FrameBuilder::tcp_v4(BETA, MX, 40011, 25, SYN)
                .ipv4_fragment(0, true)
                .truncate_l4(8)
                .build(),
            true,
        ),
        (
            "acme IPv4 later fragment (offset 24 bytes)",
            FrameBuilder::tcp_v4(ACME, MX, 40012, 25, SYN)
                .payload(&[0x55; 64])
                .ipv4_fragment(3, false)
                .build(),
            true,
        ),
        (
            "acme IPv4 overlapping fragment at offset 8 (RFC 1858)",
            FrameBuilder::tcp_v4(ACME, MX, 40013, 25, SYN)
                .payload(&[0x55; 16])
                .ipv4_fragment(1, false)
                .build(),
            false,
        ),
        (
            "acme IPv4 first fragment with a whole TCP header",
            FrameBuilder::tcp_v4(ACME, MX, 40014, 25, SYN)
                .payload(&[0x55; 64])
                .ipv4_fragment(0, true)
                .truncate_l4(40)
                .build(),
            false,
        ),
        (
            "acme IPv6 later fragment",
            FrameBuilder::tcp_v6(ACME6, MX6, 40015, 25, SYN)
                .payload(&[0x55; 64])
                .ipv6_fragment(4, false)
                .build(),
            true,
        ),
        (
            "acme IPv6 tiny first fragment behind HBH",
            FrameBuilder::tcp_v6(ACME6, MX6, 40016, 25, SYN)
                .ipv6_ext_headers([Ipv6Ext::hop_by_hop(), Ipv6Ext::fragment(0, true, 7)])
                .truncate_l4(8)
                .build(),
            false,
        ),
    ];
    let inside: Vec<Vec<u8>> = cases.iter().map(|(_, f, _)| f.clone()).collect();
    let expected: Vec<Vec<u8>> = cases
        .iter()
        .filter(|(_, _, fwd)| *fwd)
        .map(|(_, f, _)| f.clone())
        .collect();
    let run = Scenario::new(inside, Vec::new())
        .customers(&acme_blocked_beta_open())
        .run("shapes");

    let out = run.out_frames();
    let names: Vec<&str> = cases
        .iter()
        .filter(|(_, f, _)| out.contains(f))
        .map(|(n, _, _)| *n)
        .collect();
    let want_names: Vec<&str> = cases
        .iter()
        .filter(|(_, _, fwd)| *fwd)
        .map(|(n, _, _)| *n)
        .collect();
    assert_eq!(names, want_names, "which frames were forwarded");
    assert_frames_eq(&out, &expected, "outside tx");
    assert!(run.back_frames().is_empty(), "nothing goes back inside");

    run.assert_verdicts(&Verdicts {
        rx: 17,
        forwarded: 7,
        dropped_blocked: 10,
        ..Verdicts::default()
    });
    run.assert_outcomes(&[
        // 3 acme v4 tagged, 2 beta tagged, 3 acme v6, 1 beta v6, acme v4
        // first fragment with a whole header.
        ("syn_watched", 10),
        // v6 to 443, two later fragments.
        ("other_ip", 3),
        // two tiny first fragments (v4 acme, beta), offset-8 overlap, v6
        // tiny first fragment.
        ("fragment_evasive", 4),
    ]);
    run.assert_customers(&[("acme", 7, 0, 7), ("beta", 3, 3, 0)]);
    run.assert_consistent();
}
