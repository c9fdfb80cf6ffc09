//! Instruction-count probe of the packet path on the 64 B mix (`burst`,
//! `frames`: the staged bursts or `judge` frame by frame), issue 26's
//! busier mix (`mix15`: 8,192 frames, 15 % SYNs from 1,000 customers, in
//! bursts) or a SYN flood (`flood`), with `ACTIVE` customers (the flood's;
//! default 1000) of a table of `CUSTOMERS` (default 1000) in `LAYOUT`
//! (`bench`, default, `billing` or `billing-sorted`: `synwall_benches::customers`): run
//! under `valgrind --tool=callgrind` (instructions are repeatable whatever
//! else the machine does) or `perf record`.
//!
//! `cargo build --release -p synwall-benches --example burst_cost`
//! `valgrind --tool=callgrind --toggle-collect='*judge_mix*' target/release/examples/burst_cost burst 20`
//! `burst_cost (burst|frames|mix15|flood) [ROUNDS [ACTIVE [CUSTOMERS [LAYOUT]]]]`
//!
//! Prints the wall time a frame took (judging only): compare two builds
//! by alternating their runs (`taskset -c 1`), never against a fixed
//! number. `MIX_FRAMES` sets `mix15`'s frames (default 8,192, as the
//! appliance's bench replays; more than a branch predictor can learn by
//! heart, say 131,072, for a mix that does not repeat), `WATCHED_PORT` the
//! one port watched (default 25; another port leaves no SYN of the mix
//! watched, which weighs what the customer stages cost).
use std::hint::black_box;

use synwall_benches::customers::{Layout, LayoutKind};
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

/// The number in environment variable `name`, or `default` if unset; any
/// other value stops the probe with a message.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("burst_cost: {name}={v:?} is not a number");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let how = args.next().unwrap_or_else(|| "burst".into());
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let active: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let kind = args
        .next()
        .map(|l| LayoutKind::parse(&l).expect("LAYOUT is bench, billing or billing-sorted"))
        .unwrap_or_default();
    let layout = Layout::new(kind, n);
    let c = Classifier::build(n as usize + 1, layout.prefixes(true)).expect("valid prefixes");
    let s = WorkerShard::new(n as usize + 1);
    s.set_blocked(CustomerId::new(n), true);
    let p = Policy {
        watched: WatchedPorts::new(&[env_or("WATCHED_PORT", 25)]),
        action: BlockAction::Drop,
        scope: BlockScope::Syn,
        malformed: MalformedPolicy::Forward,
    };
    let mix = MixSpec {
        customers: n,
        layout: kind,
        ..MixSpec::default()
    };
    let frames = match how.as_str() {
        "flood" => {
            flood::generate_in(
                &FloodSpec {
                    shape: Shape::Syn,
                    // Every active customer at least once, as the
                    // appliance's flood pcaps have it.
                    frames: 8192.max(active as usize),
                    active,
                    customers: n,
                    seed: 7,
                },
                &layout,
            )
            .frames
        }
        "mix15" => {
            generate(&MixSpec {
                frames: env_or("MIX_FRAMES", 8192),
                syn_pct: 15.0,
                mailers: 1000,
                ..mix
            })
            .frames
        }
        _ => generate(&mix).frames,
    };
    let mut b = BurstJudge::default();
    let mut total = 0;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        total += match how.as_str() {
            "frames" => judge_mix_frames(&frames, &p, &c, &s),
            _ => judge_mix_bursts(&frames, &mut b, &p, &c, &s),
        };
    }
    let judged = (frames.len() * rounds) as f64;
    println!(
        "{how}: {} frames x {rounds}, {total} forwarded ({n} customers, {} layout), {:.2} ns a frame",
        frames.len(),
        kind.name(),
        started.elapsed().as_nanos() as f64 / judged,
    );
}
