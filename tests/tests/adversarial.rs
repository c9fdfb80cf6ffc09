//! The adversarial capture corpus through the real appliance (net_pcap):
//! frames cut at every header boundary, deep VLAN stacks, broken IPv4 and
//! IPv6 headers and lengths, tiny and overlapping fragments, long IPv6
//! extension-header chains, jumbograms, broken TCP headers, odd flag
//! combinations, runts and jumbo frames, broadcast and multicast. Almost all
//! of them are (attempts at) SYNs to port 25 from a blocked customer.
//!
//! For each frame the test states the outcome docs/architecture.md gives it and checks it twice:
//! in process against the parser (so a mismatch names the frame), and
//! through the binary, where the summary's counters must match the whole
//! corpus exactly. Then nothing that left the outside port may be a watched
//! SYN, or a fragment that could hide one, from the blocked customer.

use synwall_dataplane::craft::{FrameBuilder, Ipv6Ext};
use synwall_dataplane::parse::tcp_flags::{ACK, FIN, RST, SYN};
use synwall_dataplane::parse::{
    parse, Outcome, SrcAddr, WatchedPorts, TPID_8021AD, TPID_8021Q, TPID_QINQ_LEGACY,
};
use synwall_tests::fixtures::*;
use synwall_tests::*;

/// Whether `src` is inside acme's prefixes.
fn is_acme(src: SrcAddr) -> bool {
    match src {
        SrcAddr::V4(a) => a >> 8 == u32::from(ACME) >> 8,
        SrcAddr::V6(a) => a >> 80 == u128::from(ACME6) >> 80,
    }
}

fn syn4() -> FrameBuilder {
    FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
}
fn syn6() -> FrameBuilder {
    FrameBuilder::tcp_v6(ACME6, MX6, 40000, 25, SYN)
}

/// A frame of the corpus and the outcome docs/architecture.md gives it.
struct Case {
    name: String,
    frame: Vec<u8>,
    outcome: &'static str,
}

fn case(v: &mut Vec<Case>, name: impl Into<String>, frame: Vec<u8>, outcome: &'static str) {
    v.push(Case {
        name: name.into(),
        frame,
        outcome,
    });
}

fn set16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// `n` 8-byte destination-options headers.
fn dst_opts(n: usize) -> Vec<Ipv6Ext> {
    (0..n).map(|_| Ipv6Ext::destination_options()).collect()
}

/// The corpus (without the jumbo frame, see [`jumbo_frames`]).
fn corpus() -> Vec<Case> {
    let mut v = Vec::new();

    // Cut at (and inside) every header of a QinQ-tagged SYN with IPv4 and
    // TCP options: MACs 0..12, tag 12..16, tag 16..20, ethertype 20..22, IPv4
    // 22..46 (24 bytes with options), TCP 46..70 (24 bytes with MSS). The
    // IP lengths still claim the whole packet (a cut capture).
    let full = syn4()
        .vlan(TPID_8021AD, 10)
        .vlan(TPID_8021Q, 20)
        .ipv4_options(&[0x94, 4, 0, 0]) // router alert
        .tcp_options(&[2, 4, 5, 0xb4])
        .build();
    assert_eq!(full.len(), 70);
    for (cut, outcome) in [
        (0, "malformed_truncated_l2"),
        (6, "malformed_truncated_l2"),
        (12, "malformed_truncated_l2"),
        (13, "malformed_truncated_l2"),
        (14, "malformed_truncated_l2"),    // outer TPID, no TCI
        (16, "malformed_truncated_l2"),    // outer tag, no inner TPID
        (18, "malformed_truncated_l2"),    // inner TPID, no TCI
        (20, "malformed_truncated_l2"),    // both tags, no ethertype
        (21, "malformed_truncated_l2"),    // half an ethertype
        (22, "malformed_bad_ipv4_header"), // ethertype, no IP
        (23, "malformed_bad_ipv4_header"),
        (41, "malformed_bad_ipv4_header"), // mid fixed header
        (42, "malformed_bad_ipv4_header"), // fixed header, options cut
        (45, "malformed_bad_ipv4_header"),
        (46, "malformed_bad_ipv4_length"), // IP header, no TCP
        (48, "malformed_bad_ipv4_length"), // ports only
        (60, "malformed_bad_ipv4_length"), // mid TCP
        (66, "malformed_bad_ipv4_length"), // TCP fixed header, options cut
        (69, "malformed_bad_ipv4_length"),
        (70, "syn_watched"),
    ] {
        case(
            &mut v,
            format!("qinq SYN cut at {cut}"),
            full[..cut].to_vec(),
            outcome,
        );
    }
    // The same cuts with the IP lengths following (a short segment).
    for (len, outcome) in [
        (0, "malformed_truncated_l4"),
        (8, "malformed_truncated_l4"),
        (13, "malformed_truncated_l4"), // flags byte missing
        (19, "malformed_truncated_l4"),
        (20, "malformed_bad_tcp_header"), // data offset 6 past 20 bytes
        (23, "malformed_bad_tcp_header"),
    ] {
        let f = syn4()
            .vlan(TPID_8021AD, 10)
            .vlan(TPID_8021Q, 20)
            .ipv4_options(&[0x94, 4, 0, 0])
            .tcp_options(&[2, 4, 5, 0xb4])
            .truncate_l4(len)
            .build();
        case(&mut v, format!("qinq SYN, {len}-byte segment"), f, outcome);
    }
    // Untagged (the fast path's shape) cut at its boundaries.
    let plain = syn4().build();
    for (cut, outcome) in [
        (14, "malformed_bad_ipv4_header"),
        (33, "malformed_bad_ipv4_header"),
        (34, "malformed_bad_ipv4_length"),
        (47, "malformed_bad_ipv4_length"),
        (53, "malformed_bad_ipv4_length"),
    ] {
        case(
            &mut v,
            format!("SYN cut at {cut}"),
            plain[..cut].to_vec(),
            outcome,
        );
    }
    // IPv6 cut: fixed header 14..54, TCP 54..74.
    let plain6 = syn6().build();
    for (cut, outcome) in [
        (14, "malformed_bad_ipv6_header"),
        (20, "malformed_bad_ipv6_header"),
        (53, "malformed_bad_ipv6_header"),
        (54, "malformed_bad_ipv6_length"),
        (73, "malformed_bad_ipv6_length"),
    ] {
        case(
            &mut v,
            format!("v6 SYN cut at {cut}"),
            plain6[..cut].to_vec(),
            outcome,
        );
    }

    // VLAN stacks of 3 and 4 tags, of every TPID.
    let three = syn4()
        .vlan(TPID_8021AD, 1)
        .vlan(TPID_8021Q, 2)
        .vlan(TPID_8021Q, 3)
        .build();
    case(
        &mut v,
        "3 VLAN tags",
        three,
        "malformed_vlan_stack_too_deep",
    );
    let four = syn4()
        .vlan(TPID_QINQ_LEGACY, 1)
        .vlan(TPID_8021AD, 2)
        .vlan(TPID_8021Q, 3)
        .vlan(TPID_8021Q, 4)
        .build();
    case(&mut v, "4 VLAN tags", four, "malformed_vlan_stack_too_deep");
    let three_cut = syn4()
        .vlan(TPID_8021Q, 1)
        .vlan(TPID_8021Q, 2)
        .vlan(TPID_8021Q, 3)
        .build()[..24]
        .to_vec();
    case(
        &mut v,
        "3 VLAN tags, cut",
        three_cut,
        "malformed_vlan_stack_too_deep",
    );

    // IPv4 header and length fields.
    for ihl in [0u8, 1, 4] {
        let mut f = syn4().build();
        f[14] = 0x40 | ihl;
        case(&mut v, format!("IHL {ihl}"), f, "malformed_bad_ipv4_header");
    }
    let mut f = syn4().build();
    f[14] = 0x4f; // 60-byte header in a 40-byte packet
    case(
        &mut v,
        "IHL 15 past the end",
        f,
        "malformed_bad_ipv4_header",
    );
    let mut f = syn4().ipv4_options(&[1, 1, 1, 1]).build();
    f[14] = 0x4f;
    case(
        &mut v,
        "IHL 15 past the end, options",
        f,
        "malformed_bad_ipv4_header",
    );
    let mut f = syn4().build();
    f[14] = 0x65; // version 6 in an IPv4 ethertype
    case(
        &mut v,
        "version 6 under 0x0800",
        f,
        "malformed_bad_ipv4_header",
    );
    let mut f = syn4().ipv4_options(&[7, 7, 4, 0, 0, 0, 0, 0]).build();
    set16(&mut f, 16, 20); // shorter than the 28-byte header
    case(
        &mut v,
        "total length < IHL, options",
        f,
        "malformed_bad_ipv4_length",
    );
    let mut f = syn4().ipv4_options(&[1, 1, 1, 1]).build();
    set16(&mut f, 16, 24 + 10); // header + 10 bytes of TCP
    case(
        &mut v,
        "total length cuts TCP, options",
        f,
        "malformed_truncated_l4",
    );
    let mut f = syn4().ipv4_options(&[1, 1, 1, 1]).build();
    set16(&mut f, 16, 24 + 20 + 1);
    case(
        &mut v,
        "total length 1 past frame, options",
        f,
        "malformed_bad_ipv4_length",
    );
    let mut f = syn4().build();
    set16(&mut f, 16, 0xffff);
    case(&mut v, "total length 65535", f, "malformed_bad_ipv4_length");
    let mut f = syn4().build();
    set16(&mut f, 16, 0);
    case(&mut v, "total length 0", f, "malformed_bad_ipv4_length");
    // Frame longer than the total length: Ethernet padding, still a SYN.
    let f = syn4().ipv4_options(&[1, 1, 1, 1]).pad_to(200).build();
    case(&mut v, "padded SYN with options", f, "syn_watched");
    let f = syn4()
        .ipv4_options(&[0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0]) // timestamp
        .build();
    case(&mut v, "SYN with 12 bytes of options", f, "syn_watched");
    let f = syn4().ipv4_options(&[1; 40]).build();
    case(&mut v, "SYN with 40 bytes of options", f, "syn_watched");

    // IPv4 fragments.
    for len in [0, 1, 8, 12, 13, 14, 19] {
        let f = syn4().ipv4_fragment(0, true).truncate_l4(len).build();
        case(
            &mut v,
            format!("tiny first fragment {len}"),
            f,
            "fragment_evasive",
        );
    }
    let f = syn4().ipv4_fragment(0, true).truncate_l4(20).build();
    case(
        &mut v,
        "first fragment with the whole header",
        f,
        "syn_watched",
    );
    let f = syn4()
        .ipv4_options(&[1, 1, 1, 1])
        .ipv4_fragment(0, true)
        .truncate_l4(8)
        .build();
    case(
        &mut v,
        "tiny first fragment, options",
        f,
        "fragment_evasive",
    );
    let f = syn4().payload(&[0; 32]).ipv4_fragment(1, false).build();
    case(&mut v, "offset-8 overlap", f, "fragment_evasive");
    let f = syn4().payload(&[0; 32]).ipv4_fragment(1, true).build();
    case(&mut v, "offset-8 overlap, MF", f, "fragment_evasive");
    let f = syn4().payload(&[0; 32]).ipv4_fragment(2, false).build();
    case(&mut v, "offset-16 fragment", f, "other_ip");
    // A (harmless) first fragment from beta with a tiny one: forwarded.
    let f = FrameBuilder::tcp_v4(BETA, MX, 40000, 25, SYN)
        .ipv4_fragment(0, true)
        .truncate_l4(8)
        .build();
    case(&mut v, "beta tiny first fragment", f, "fragment_evasive");

    // IPv6 chains.
    for n in [1, 7, 8] {
        let f = syn6().ipv6_ext_headers(dst_opts(n)).build();
        case(&mut v, format!("{n} dest-opts headers"), f, "syn_watched");
    }
    for n in [9, 16, 40] {
        let f = syn6().ipv6_ext_headers(dst_opts(n)).build();
        case(
            &mut v,
            format!("{n} dest-opts headers"),
            f,
            "malformed_bad_ipv6_chain",
        );
    }
    let f = syn6()
        .ipv6_ext_headers([
            Ipv6Ext::hop_by_hop(),
            Ipv6Ext::routing(),
            Ipv6Ext::hop_by_hop(),
        ])
        .build();
    case(
        &mut v,
        "hop-by-hop again (a loop)",
        f,
        "malformed_bad_ipv6_chain",
    );
    let f = syn6()
        .ipv6_ext_headers((0..12).map(|_| Ipv6Ext::routing()))
        .build();
    case(&mut v, "12 routing headers", f, "malformed_bad_ipv6_chain");
    let mut f = syn6().ipv6_ext_headers([Ipv6Ext::generic(60, 200)]).build();
    f.truncate(14 + 40 + 64);
    set16(&mut f, 18, 64); // the header claims 1608 bytes
    case(
        &mut v,
        "ext header past the payload",
        f,
        "malformed_bad_ipv6_chain",
    );
    let mut f = syn6().ipv6_ext_headers([Ipv6Ext::hop_by_hop()]).build();
    set16(&mut f, 18, 0); // jumbogram
    case(
        &mut v,
        "jumbo payload length",
        f,
        "malformed_bad_ipv6_length",
    );
    let mut f = syn6().build();
    set16(&mut f, 18, 0xffff);
    case(
        &mut v,
        "payload length 65535",
        f,
        "malformed_bad_ipv6_length",
    );
    let f = syn6().ipv6_fragment(0, true).build();
    case(&mut v, "v6 first fragment, whole header", f, "syn_watched");
    let f = syn6().ipv6_fragment(0, true).truncate_l4(8).build();
    case(&mut v, "v6 tiny first fragment", f, "fragment_evasive");
    let f = syn6().payload(&[0; 32]).ipv6_fragment(1, false).build();
    case(&mut v, "v6 offset-8 overlap", f, "fragment_evasive");
    let f = syn6()
        .payload(&[0; 32])
        .ipv6_ext_headers([Ipv6Ext::destination_options()])
        .ipv6_fragment(0, true)
        .truncate_l4(4)
        .build();
    case(
        &mut v,
        "v6 dest-opts + tiny first fragment",
        f,
        "fragment_evasive",
    );
    let f = syn6()
        .ipv6_ext_headers([Ipv6Ext::fragment(0, true, 1), Ipv6Ext::fragment(0, true, 2)])
        .truncate_l4(8)
        .build();
    case(&mut v, "v6 two fragment headers", f, "fragment_evasive");

    // TCP header and flags.
    for doff in [0u8, 1, 4] {
        let mut f = syn4().build();
        f[14 + 20 + 12] = doff << 4;
        case(
            &mut v,
            format!("data offset {doff}"),
            f,
            "malformed_bad_tcp_header",
        );
    }
    let mut f = syn4().build();
    f[14 + 20 + 12] = 0xf0;
    case(
        &mut v,
        "data offset 15 past the segment",
        f,
        "malformed_bad_tcp_header",
    );
    let mut f = syn6().build();
    f[14 + 40 + 12] = 0x40;
    case(&mut v, "v6 data offset 4", f, "malformed_bad_tcp_header");
    for (name, flags) in [
        ("SYN+FIN", SYN | FIN),
        ("SYN+RST", SYN | RST),
        ("SYN+FIN+RST+PSH+URG", SYN | FIN | RST | 0x28),
        ("SYN+ECE+CWR", SYN | 0xc0),
    ] {
        let f = FrameBuilder::tcp_v4(ACME, MX, 40000, 25, flags).build();
        case(&mut v, name, f, "syn_watched");
    }
    let f = syn4().payload(b"EHLO evil.example\r\n").build();
    case(&mut v, "SYN with payload", f, "syn_watched");
    let f = syn6().payload(&[0x55; 1000]).build();
    case(
        &mut v,
        "v6 SYN with 1000 bytes of payload",
        f,
        "syn_watched",
    );
    let f = FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN | ACK).build();
    case(&mut v, "SYN+ACK", f, "watched_other");

    // Runts, and frames for everyone.
    let mut f = syn4().build();
    f.truncate(14);
    case(&mut v, "14-byte frame", f, "malformed_bad_ipv4_header");
    let f = arp_like();
    case(&mut v, "14-byte ARP", f, "non_ip");
    for (name, mac) in [
        ("broadcast", [0xff; 6]),
        ("IPv4 multicast", [0x01, 0x00, 0x5e, 0x00, 0x00, 0x19]),
        ("IPv6 multicast", [0x33, 0x33, 0x00, 0x00, 0x00, 0x01]),
        ("zero", [0; 6]),
    ] {
        let f = syn4().macs([2, 0, 0, 0, 0, 0xc1], mac).build();
        case(&mut v, format!("SYN to {name} MAC"), f, "syn_watched");
        let f = syn6().macs([2, 0, 0, 0, 0, 0xc1], mac).build();
        case(&mut v, format!("v6 SYN to {name} MAC"), f, "syn_watched");
    }
    let f = synwall_dataplane::craft::arp_request(ACME, MX);
    case(&mut v, "ARP broadcast", f, "non_ip");

    // Beta's SYN passes: the corpus does not just drop everything.
    let f = FrameBuilder::tcp_v4(BETA, MX, 40000, 25, SYN).build();
    case(&mut v, "beta SYN", f, "syn_watched");
    v
}

/// An Ethernet header with the ARP ethertype and nothing after it.
fn arp_like() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0xc1, 0x08, 0x06]);
    f
}

/// Whether the appliance must drop `frame` because it is acme's: a watched
/// SYN (with any flags but ACK) or a fragment that may hide one.
fn blocked_drop(frame: &[u8]) -> bool {
    let p = parse(frame, &WatchedPorts::new(&[25]));
    // Watched SYNs, evasive fragments, and (when malformed frames are
    // forwarded) any malformed frame whose source is the blocked customer.
    (matches!(p.outcome, Outcome::WatchedSyn | Outcome::FragmentEvasive)
        || p.outcome.is_malformed())
        && p.src.is_some_and(is_acme)
}

/// Checks the stated outcomes in process, naming any frame that differs.
fn check_outcomes(cases: &[Case]) {
    let watched = WatchedPorts::new(&[25]);
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let got = parse(&c.frame, &watched).outcome.name();
            (got != c.outcome).then(|| {
                format!(
                    "{}: want {}, got {got}: {}",
                    c.name,
                    c.outcome,
                    hex(&c.frame)
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "outcomes differ:\n{}", wrong.join("\n"));
}

fn outcome_totals(cases: &[Case]) -> Vec<(&'static str, u64)> {
    let mut totals: Vec<(&'static str, u64)> = Vec::new();
    for c in cases {
        match totals.iter_mut().find(|(n, _)| *n == c.outcome) {
            Some((_, n)) => *n += 1,
            None => totals.push((c.outcome, 1)),
        }
    }
    totals
}

/// Nothing that left the outside port is acme's SYN in any shape.
fn assert_no_blocked_syn_out(run: &RunResult) {
    for f in run.out_frames() {
        assert!(
            !blocked_drop(&f),
            "a blocked customer's SYN left the appliance ({} bytes): {}",
            f.len(),
            hex(&f[..f.len().min(96)])
        );
    }
}

#[test]
fn corpus_outcomes_match_the_readme() {
    check_outcomes(&corpus());
}

#[test]
fn adversarial_corpus_default_policy() {
    let cases = corpus();
    check_outcomes(&cases);
    let inside: Vec<Vec<u8>> = cases.iter().map(|c| c.frame.clone()).collect();
    let dropped = inside.iter().filter(|f| blocked_drop(f)).count() as u64;
    let want_out: Vec<Vec<u8>> = inside
        .iter()
        .filter(|f| !blocked_drop(f))
        .cloned()
        .collect();
    let run = Scenario::new(inside.clone(), Vec::new())
        .customers(&acme_blocked_beta_open())
        .run("adversarial-fwd");
    run.assert_outcomes(&outcome_totals(&cases));
    run.assert_verdicts(&Verdicts {
        rx: inside.len() as u64,
        forwarded: inside.len() as u64 - dropped,
        dropped_blocked: dropped,
        syn_no_customer: 0,
        ..Verdicts::default()
    });
    assert_frames_eq(&run.out_frames(), &want_out, "outside tx");
    assert!(run.back_frames().is_empty());
    assert_no_blocked_syn_out(&run);
    run.assert_consistent();
}

#[test]
fn adversarial_corpus_drop_malformed_and_reset() {
    // With malformed = "drop" and action = "reset": only well-formed
    // frames leave, acme's whole SYNs come back as RSTs (fragments and
    // evasive shapes are dropped, never answered).
    let cases = corpus();
    let watched = WatchedPorts::new(&[25]);
    let inside: Vec<Vec<u8>> = cases.iter().map(|c| c.frame.clone()).collect();
    let parsed: Vec<_> = inside.iter().map(|f| parse(f, &watched)).collect();
    let malformed = parsed.iter().filter(|p| p.outcome.is_malformed()).count() as u64;
    let resets = parsed
        .iter()
        .filter(|p| p.outcome == Outcome::WatchedSyn && !p.fragment && p.src.is_some_and(is_acme))
        .count() as u64;
    // Malformed frames are dropped by policy here (dropped_malformed), even
    // the blocked customer's.
    let dropped = inside
        .iter()
        .zip(&parsed)
        .filter(|(f, p)| blocked_drop(f) && !p.outcome.is_malformed())
        .count() as u64
        - resets;
    let want_out: Vec<Vec<u8>> = inside
        .iter()
        .zip(&parsed)
        .filter(|(f, p)| !blocked_drop(f) && !p.outcome.is_malformed())
        .map(|(f, _)| f.clone())
        .collect();
    let run = Scenario::new(inside.clone(), Vec::new())
        .sections("[detect]\nmalformed = \"drop\"\n\n[block]\naction = \"reset\"")
        .customers(&acme_blocked_beta_open())
        .run("adversarial-drop");
    run.assert_outcomes(&outcome_totals(&cases));
    run.assert_verdicts(&Verdicts {
        rx: inside.len() as u64,
        forwarded: want_out.len() as u64,
        dropped_blocked: dropped,
        dropped_malformed: malformed,
        reset_sent: resets,
        ..Verdicts::default()
    });
    assert_frames_eq(&run.out_frames(), &want_out, "outside tx");
    assert_no_blocked_syn_out(&run);
    // Every reset is a RST+ACK from port 25 to acme.
    let back = run.back_frames();
    assert_eq!(back.len() as u64, resets);
    for f in &back {
        let p = parse(f, &WatchedPorts::new(&[40000]));
        assert_eq!(p.outcome, Outcome::WatchedOther, "{}", hex(f));
        assert_eq!(p.tcp_flags, RST | ACK, "{}", hex(f));
    }
    run.assert_consistent();
}

/// SYNs a receiving host would take as new SMTP connections although the
/// parser calls them malformed: RFC 8200 sets no limit on the number of
/// extension headers (Linux walks any number), and a device upstream that
/// pops one tag turns a 3-tag frame into a plain QinQ SYN. Under the default
/// `malformed = "forward"` they pass for a blocked customer.
fn accepted_elsewhere() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "v6 SYN behind 9 dest-opts headers",
            syn6().ipv6_ext_headers(dst_opts(9)).build(),
        ),
        (
            "SYN behind 3 VLAN tags",
            syn4()
                .vlan(TPID_8021AD, 1)
                .vlan(TPID_8021Q, 2)
                .vlan(TPID_8021Q, 3)
                .build(),
        ),
    ]
}

#[test]
fn blocked_syn_shapes_a_host_accepts_are_not_forwarded() {
    let cases = accepted_elsewhere();
    let inside: Vec<Vec<u8>> = cases.iter().map(|(_, f)| f.clone()).collect();
    let run = Scenario::new(inside, Vec::new())
        .customers(&acme_blocked_beta_open())
        .run("adversarial-accepted");
    let out = run.out_frames();
    let leaked: Vec<&str> = cases
        .iter()
        .filter(|(_, f)| out.contains(f))
        .map(|(n, _)| *n)
        .collect();
    assert!(
        leaked.is_empty(),
        "forwarded for a blocked customer: {leaked:?}"
    );
    run.assert_consistent();
}

/// A 9,014-byte SYN (jumbo Ethernet payload) from acme and a 9,014-byte UDP
/// frame from beta.
fn jumbo_frames() -> Vec<Vec<u8>> {
    vec![
        syn4().payload(&[0x5a; 9014 - 54]).build(),
        FrameBuilder::udp_v4(BETA, MX, 5000, 5001)
            .payload(&[0xa5; 9014 - 42])
            .build(),
    ]
}

#[test]
fn jumbo_frames_are_judged_whole() {
    // net_pcap reads a frame longer than an mbuf's data room into a chain
    // of segments (it does: both frames arrive and leave whole). The
    // headers are all in the first segment, but the IP lengths cover the
    // chain, so the verdict must be taken on the packet's length, not the
    // first segment's.
    let inside = jumbo_frames();
    assert!(inside.iter().all(|f| f.len() == 9014));
    let run = Scenario::new(inside.clone(), Vec::new())
        .customers(&acme_blocked_beta_open())
        .run("adversarial-jumbo");
    run.assert_consistent();
    assert_eq!(run.verdict("rx"), 2, "net_pcap delivers both jumbo frames");
    assert_no_blocked_syn_out(&run);
    run.assert_outcomes(&[("syn_watched", 1), ("other_ip", 1)]);
    assert_eq!(run.verdict("dropped_blocked"), 1);
    assert_frames_eq(&run.out_frames(), &inside[1..], "outside tx");
}
