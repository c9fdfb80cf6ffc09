//! The burst judge's fast path (`parse::triage` and its outcome masks)
//! against the general path (`parse::parse_reference`, and `judge` frame
//! by frame), over every frame the benchmarks replay: the default mix and
//! the busy mix at 64 B and IMIX in both table layouts, the SYN flood and
//! established SMTP, and mangled copies of all of them (cut short at every
//! length the headers span, as whole frames and as the first segment of a
//! chained one, and with header bytes overwritten). The two must agree on
//! every frame, or the fast path changed a verdict or a counter.
use std::net::{IpAddr, Ipv4Addr};

use synwall_benches::customers::{Layout, LayoutKind};
use synwall_benches::flood::{self, FloodSpec, Shape};
use synwall_benches::mix::{generate, MixSpec, Sizes};
use synwall_dataplane::classify::{Classifier, CustomerId};
use synwall_dataplane::parse::{parse, parse_reference, triage, WatchedPorts};
use synwall_dataplane::shard::WorkerShard;
use synwall_dataplane::verdict::{judge, BurstJudge, Frame, Policy, Tally, BURST};

/// Customers in the tables the mixes are played against.
const CUSTOMERS: u32 = 1000;

/// Every mix the benchmarks generate, with its table layout.
fn mixes() -> Vec<(LayoutKind, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for layout in [LayoutKind::Bench, LayoutKind::Billing] {
        for sizes in [Sizes::Min, Sizes::Imix] {
            let default = MixSpec {
                sizes,
                layout,
                ..MixSpec::default()
            };
            let busy = MixSpec {
                frames: 8192,
                syn_pct: 15.0,
                mailers: 1000,
                ..default.clone()
            };
            out.push((layout, generate(&default).frames));
            out.push((layout, generate(&busy).frames));
        }
        let table = Layout::new(layout, CUSTOMERS);
        for shape in [Shape::Syn, Shape::SmtpEstablished] {
            let spec = FloodSpec {
                shape,
                frames: 2048,
                active: 500,
                customers: CUSTOMERS,
                seed: 7,
            };
            out.push((layout, flood::generate_in(&spec, &table).frames));
        }
    }
    out
}

/// `frame` and mangled copies: cut at every length up to the end of the
/// headers, and each header byte overwritten with values that flip
/// versions, lengths, flags, ports and tags.
fn mangled(frame: &[u8]) -> Vec<Vec<u8>> {
    let span = frame.len().min(80);
    let mut out: Vec<Vec<u8>> = (0..span).map(|cut| frame[..cut].to_vec()).collect();
    for at in (12..span).step_by(3) {
        for v in [0x00, 0x06, 0x45, 0x81, 0xff] {
            let mut f = frame.to_vec();
            f[at] = v;
            out.push(f);
        }
    }
    out
}

/// The watched-port sets the corpus is parsed under: SMTP alone; a set
/// that watches the mix's busiest other ports (so its established HTTPS
/// and DNS frames are watched too); and SMTP with the mix's destinations
/// exempt.
fn watched_sets() -> [WatchedPorts; 3] {
    [
        WatchedPorts::new(&[25]),
        WatchedPorts::new(&[25, 53, 80, 443, 587]),
        WatchedPorts::new(&[25]).exempting([
            (IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)), 1),
            (IpAddr::V6("2001:db8::".parse().expect("address")), 32),
        ]),
    ]
}

#[test]
fn triage_answers_as_the_general_parser_on_every_bench_frame() {
    let mut checked = 0usize;
    for (_, frames) in mixes() {
        for (i, frame) in frames.iter().enumerate() {
            // Every frame, and mangled copies of every 4th.
            let extra = if i % 4 == 0 {
                mangled(frame)
            } else {
                Vec::new()
            };
            for f in std::iter::once(frame.clone()).chain(extra) {
                for watched in &watched_sets() {
                    // The whole frame in one buffer, and its first
                    // segment of a chained frame (the headers' 54..80
                    // bytes, then the rest elsewhere).
                    for first in [f.len(), f.len().min(54), f.len().min(80)] {
                        let head = &f[..first];
                        let want = parse_reference(head, f.len(), watched);
                        let got = triage(head, f.len(), watched);
                        assert_eq!(
                            (got.outcome, got.src, got.index()),
                            (want.outcome, want.src, want.outcome.index()),
                            "frame {f:02x?} (first {first} bytes)"
                        );
                        checked += 1;
                    }
                    assert_eq!(parse(&f, watched), parse_reference(&f, f.len(), watched));
                }
            }
        }
    }
    assert!(checked > 1_000_000, "{checked} frames checked");
}

/// The burst judge (triage, masks, staged lookups) decides and counts
/// every bench frame, and mangled ones, exactly as `judge` does frame by
/// frame, under every policy, with blocked customers and grants that run
/// out part way.
#[test]
fn burst_judge_equals_frame_by_frame_on_every_bench_frame() {
    for (layout, frames) in mixes() {
        let table = Layout::new(layout, CUSTOMERS);
        let c = Classifier::build(CUSTOMERS as usize + 1, table.prefixes(true)).expect("prefixes");
        let corpus: Vec<Vec<u8>> = frames
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                // Every frame, and mangled copies of every 16th.
                let extra = if i % 16 == 0 { mangled(f) } else { Vec::new() };
                std::iter::once(f.clone()).chain(extra)
            })
            .collect();
        for knobs in 0u8..8 {
            for watched in watched_sets() {
                let policy = Policy::from_knobs(watched, knobs);
                let shard = || {
                    let s = WorkerShard::new(CUSTOMERS as usize + 1);
                    for id in (0..=CUSTOMERS).step_by(7) {
                        s.set_blocked(CustomerId::new(id), true);
                    }
                    for id in (3..CUSTOMERS).step_by(11) {
                        s.set_grant(CustomerId::new(id), 2);
                    }
                    s
                };
                let one = shard();
                let mut one_tally = Tally::default();
                let want: Vec<_> = corpus
                    .iter()
                    .map(|f| judge(f, &policy, &c, &one, &mut one_tally))
                    .collect();

                let many = shard();
                let mut many_tally = Tally::default();
                let mut burst = BurstJudge::default();
                let mut got = Vec::with_capacity(corpus.len());
                for chunk in corpus.chunks(BURST) {
                    let frames = chunk.iter().map(|f| Frame {
                        data: f,
                        wire_len: f.len(),
                    });
                    got.extend_from_slice(burst.judge(frames, &policy, &c, &many, &mut many_tally));
                }
                assert!(got == want, "verdicts differ (knobs {knobs})");
                assert_eq!(many_tally.outcomes, one_tally.outcomes, "knobs {knobs}");
                assert_eq!(many_tally.syn_no_customer, one_tally.syn_no_customer);
                for id in 0..=CUSTOMERS {
                    let id = CustomerId::new(id);
                    assert_eq!(many.read(id), one.read(id));
                }
            }
        }
    }
}
