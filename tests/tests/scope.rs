//! `[block] scope`: with "smtp" a blocked customer's established traffic to
//! watched ports is dropped too; with "syn" (the default) only new
//! connections are.

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use synwall_tests::fixtures::*;
use synwall_tests::*;

/// (frame, is the blocked customer's TCP to port 25 but not a SYN)
fn inside() -> Vec<(Vec<u8>, bool)> {
    vec![
        (
            FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN).build(),
            false,
        ),
        (
            FrameBuilder::tcp_v4(ACME, MX, 40001, 25, ACK | PSH)
                .seq(10)
                .ack(20)
                .payload(b"MAIL FROM:<a@acme.example>\r\n")
                .build(),
            true,
        ),
        (
            FrameBuilder::tcp_v4(ACME, MX, 40002, 25, FIN | ACK).build(),
            true,
        ),
        (
            FrameBuilder::tcp_v4(ACME, MX, 40003, 25, SYN | ACK).build(),
            true,
        ),
        (FrameBuilder::tcp_v4(ACME, MX, 40004, 25, RST).build(), true),
        (
            FrameBuilder::tcp_v6(ACME6, MX6, 40005, 25, ACK).build(),
            true,
        ),
        (
            FrameBuilder::tcp_v4(ACME, MX, 40006, 443, ACK).build(),
            false,
        ),
        (
            FrameBuilder::tcp_v4(ACME, MX, 40007, 587, ACK).build(),
            false,
        ),
        (
            FrameBuilder::tcp_v4(BETA, MX, 40008, 25, ACK).build(),
            false,
        ),
        (
            FrameBuilder::tcp_v4(UNKNOWN, MX, 40009, 25, ACK).build(),
            false,
        ),
    ]
}

fn outside() -> Vec<Vec<u8>> {
    // The server's side of acme's session: not inspected, forwarded.
    vec![FrameBuilder::tcp_v4(MX, ACME, 25, 40001, ACK | PSH)
        .payload(b"250 OK\r\n")
        .build()]
}

const OUTCOMES: [(&str, u64); 3] = [("syn_watched", 1), ("watched_other", 7), ("other_ip", 2)];

/// What both scopes agree on: outside's reply comes back untouched, acme's
/// one SYN is counted and dropped, the frames are classified alike; of the
/// 10 inside frames, `forwarded` pass and `dropped` are acme's.
fn assert_acme_blocked(run: &RunResult, forwarded: u64, dropped: u64) {
    assert_frames_eq(&run.back_frames(), &outside(), "inside tx");
    run.assert_verdicts(&Verdicts {
        rx: 11,
        forwarded,
        dropped_blocked: dropped,
        reverse_forwarded: 1,
        ..Verdicts::default()
    });
    run.assert_outcomes(&OUTCOMES);
    run.assert_customers(&[("acme", 1, 0, 1)]);
    run.assert_consistent();
}

#[test]
fn scope_smtp_drops_established_sessions() {
    let frames = inside();
    let all: Vec<Vec<u8>> = frames.iter().map(|(f, _)| f.clone()).collect();
    let run = Scenario::new(all, outside())
        .sections("[block]\nscope = \"smtp\"")
        .customers(&acme_blocked_beta_open())
        .run("scope-smtp");
    let want: Vec<Vec<u8>> = frames
        .iter()
        .skip(1)
        .filter(|(_, established)| !established)
        .map(|(f, _)| f.clone())
        .collect();
    assert_eq!(want.len(), 4);
    assert_frames_eq(&run.out_frames(), &want, "outside tx");
    assert_acme_blocked(&run, 4, 6);
}

#[test]
fn scope_syn_lets_established_sessions_through() {
    let frames = inside();
    let all: Vec<Vec<u8>> = frames.iter().map(|(f, _)| f.clone()).collect();
    let run = Scenario::new(all.clone(), outside())
        .sections("[block]\nscope = \"syn\"")
        .customers(&acme_blocked_beta_open())
        .run("scope-syn");
    assert_frames_eq(&run.out_frames(), &all[1..], "outside tx");
    assert_acme_blocked(&run, 9, 1);
}
