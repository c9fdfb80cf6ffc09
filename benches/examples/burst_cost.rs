//! Instruction-count probe of the packet path on the 64 B mix (`burst`,
//! `frames`: the staged bursts or `judge` frame by frame) or a SYN flood
//! (`flood [ACTIVE [CUSTOMERS]]`, default 1000 of 1000): run under
//! `valgrind --tool=callgrind` (instructions are repeatable whatever else
//! the machine does) or `perf record`.
//!
//! `cargo build --release -p synwall-benches --example burst_cost`
//! `valgrind --tool=callgrind --toggle-collect='*judge_mix*' target/release/examples/burst_cost burst 20`
use std::hint::black_box;

use synwall_benches::customers::prefixes;
use synwall_benches::flood::{self, FloodSpec, Shape};
use synwall_benches::mix::{generate, MixSpec};
use synwall_dataplane::classify::{Classifier, CustomerId};
use synwall_dataplane::parse::WatchedPorts;
use synwall_dataplane::shard::WorkerShard;
use synwall_dataplane::verdict::{
    judge, BlockAction, BlockScope, BurstJudge, Frame, MalformedPolicy, Policy, Tally, Verdict,
    BURST,
};

#[inline(never)]
fn judge_mix_frames(frames: &[Vec<u8>], p: &Policy, c: &Classifier, s: &WorkerShard) -> u64 {
    let mut tally = Tally::default();
    frames
        .iter()
        .filter(|f| judge(black_box(f), p, c, s, &mut tally) == Verdict::Forward)
        .count() as u64
}

#[inline(never)]
fn judge_mix_bursts(
    frames: &[Vec<u8>],
    b: &mut BurstJudge,
    p: &Policy,
    c: &Classifier,
    s: &WorkerShard,
) -> u64 {
    let mut tally = Tally::default();
    let mut fwd = 0;
    for chunk in frames.chunks(BURST) {
        let chunk = chunk.iter().map(|f| Frame {
            data: black_box(f),
            wire_len: f.len(),
        });
        fwd += b
            .judge(chunk, p, c, s, &mut tally)
            .iter()
            .filter(|v| **v == Verdict::Forward)
            .count() as u64;
    }
    fwd
}

fn main() {
    let mut args = std::env::args().skip(1);
    let how = args.next().unwrap_or_else(|| "burst".into());
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let active: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let c = Classifier::build(n as usize + 1, prefixes(n, true)).expect("valid prefixes");
    let s = WorkerShard::new(n as usize + 1);
    s.set_blocked(CustomerId::new(n), true);
    let p = Policy {
        watched: WatchedPorts::new(&[25]),
        action: BlockAction::Drop,
        scope: BlockScope::Syn,
        malformed: MalformedPolicy::Forward,
    };
    let frames = if how == "flood" {
        flood::generate(&FloodSpec {
            shape: Shape::Syn,
            frames: 8192,
            active,
            customers: n,
            seed: 7,
        })
        .frames
    } else {
        generate(&MixSpec::default()).frames
    };
    let mut b = BurstJudge::default();
    let mut total = 0;
    for _ in 0..rounds {
        total += match how.as_str() {
            "frames" => judge_mix_frames(&frames, &p, &c, &s),
            _ => judge_mix_bursts(&frames, &mut b, &p, &c, &s),
        };
    }
    println!(
        "{how}: {} frames x {rounds}, {total} forwarded",
        frames.len()
    );
}
