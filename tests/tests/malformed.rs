//! Malformed frames, one per reason: by default they are forwarded and
//! counted per reason, except a blocked customer's whenever the source
//! address can be read (a shape the parser rejects may still be a SYN some
//! host accepts); with `[detect] malformed = "drop"` they are all dropped
//! and counted.

use synwall_dataplane::craft::{FrameBuilder, Ipv6Ext};
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_dataplane::parse::TPID_8021Q;
use synwall_tests::fixtures::*;
use synwall_tests::*;

fn syn4() -> Vec<u8> {
    FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN).build()
}

fn syn6() -> FrameBuilder {
    FrameBuilder::tcp_v6(ACME6, MX6, 40000, 25, SYN)
}

/// (outcome name, frame): one malformed frame per reason, all of them
/// (broken) SMTP SYNs from the blocked customer.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    v.push(("malformed_truncated_l2", syn4()[..12].to_vec()));
    let tagged = FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
        .vlan(TPID_8021Q, 5)
        .build();
    v.push(("malformed_truncated_l2", tagged[..16].to_vec()));
    v.push((
        "malformed_vlan_stack_too_deep",
        FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
            .vlan(TPID_8021Q, 1)
            .vlan(TPID_8021Q, 2)
            .vlan(TPID_8021Q, 3)
            .build(),
    ));
    let mut f = syn4();
    f[14] = 0x44; // IHL 4
    v.push(("malformed_bad_ipv4_header", f));
    let mut f = syn4();
    f[16..18].copy_from_slice(&1000u16.to_be_bytes()); // total length > frame
    v.push(("malformed_bad_ipv4_length", f));
    let mut f = syn6().build();
    f[14] = 0x50; // version 5
    v.push(("malformed_bad_ipv6_header", f));
    let mut f = syn6().build();
    f[18..20].copy_from_slice(&500u16.to_be_bytes()); // payload length > frame
    v.push(("malformed_bad_ipv6_length", f));
    v.push((
        "malformed_bad_ipv6_chain",
        syn6()
            .ipv6_ext_headers([Ipv6Ext::destination_options(), Ipv6Ext::hop_by_hop()])
            .build(),
    ));
    v.push((
        "malformed_truncated_l4",
        FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
            .truncate_l4(10)
            .build(),
    ));
    let mut f = syn4();
    f[14 + 20 + 12] = 0x40; // TCP data offset 4 words
    v.push(("malformed_bad_tcp_header", f));
    v
}

fn inputs() -> (Vec<Vec<u8>>, Vec<(&'static str, u64)>) {
    let bad = malformed();
    let mut frames: Vec<Vec<u8>> = bad.iter().map(|(_, f)| f.clone()).collect();
    // And two well-formed SYNs: beta's is forwarded, acme's dropped.
    frames.push(FrameBuilder::tcp_v4(BETA, MX, 40001, 25, SYN).build());
    frames.push(FrameBuilder::tcp_v4(ACME, MX, 40002, 25, SYN).build());
    let mut outcomes: Vec<(&'static str, u64)> = Vec::new();
    for (name, _) in &bad {
        match outcomes.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c += 1,
            None => outcomes.push((name, 1)),
        }
    }
    outcomes.push(("syn_watched", 2));
    (frames, outcomes)
}

#[test]
fn malformed_forwarded_and_counted_by_default() {
    let (inside, outcomes) = inputs();
    assert_eq!(inside.len(), 12);
    let run = Scenario::new(inside.clone(), Vec::new())
        .customers(&acme_blocked_beta_open())
        .run("malformed-fwd");
    // Only the malformed frames with no readable source pass (two cut in
    // the Ethernet header, a bad IPv4 and a bad IPv6 header), and beta's
    // SYN; acme's six attributable malformed frames and its SYN are dropped.
    let want = pick(&inside, &[0, 1, 3, 5, 10]);
    assert_frames_eq(&run.out_frames(), &want, "outside tx");
    assert!(run.back_frames().is_empty());
    run.assert_verdicts(&Verdicts {
        rx: 12,
        forwarded: 5,
        dropped_blocked: 7,
        ..Verdicts::default()
    });
    run.assert_outcomes(&outcomes);
    run.assert_customers(&[("acme", 1, 0, 1), ("beta", 1, 1, 0)]);
    run.assert_consistent();
}

#[test]
fn malformed_dropped_with_drop_policy() {
    let (inside, outcomes) = inputs();
    let run = Scenario::new(inside.clone(), Vec::new())
        .sections("[detect]\nmalformed = \"drop\"")
        .customers(&acme_blocked_beta_open())
        .run("malformed-drop");
    assert_frames_eq(&run.out_frames(), &[inside[10].clone()], "outside tx");
    assert!(run.back_frames().is_empty());
    run.assert_verdicts(&Verdicts {
        rx: 12,
        forwarded: 1,
        dropped_blocked: 1,
        dropped_malformed: 10,
        ..Verdicts::default()
    });
    run.assert_outcomes(&outcomes);
    run.assert_consistent();
}

#[test]
fn reverse_direction_malformed_not_dropped() {
    // The drop policy applies to inspected (inside→outside) frames only:
    // the reverse direction is forwarded untouched.
    let bad: Vec<Vec<u8>> = malformed().into_iter().map(|(_, f)| f).collect();
    let run = Scenario::new(Vec::new(), bad.clone())
        .sections("[detect]\nmalformed = \"drop\"")
        .customers(&acme_blocked_beta_open())
        .run("malformed-reverse");
    assert!(run.out_frames().is_empty());
    assert_frames_eq(&run.back_frames(), &bad, "inside tx");
    run.assert_verdicts(&Verdicts {
        rx: 10,
        reverse_forwarded: 10,
        ..Verdicts::default()
    });
    run.assert_outcomes(&[]);
    assert!(run.customers().is_empty());
    run.assert_consistent();
}
