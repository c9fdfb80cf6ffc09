//! What one cold cache line costs on this machine, in the access pattern of
//! the flood's lookups (BENCHMARKS.md §4): `LINES` distinct random 64-byte
//! lines of a 64 MiB array on 2 MB pages (the classifier's and the shards'
//! [`HugeArray`]), visited in a shuffled order that repeats, three ways:
//!
//! - `batch`: 32 prefetches, then the 32 loads (the burst judge's stages);
//! - `loads`: the same loads with no prefetch (what out-of-order execution
//!   overlaps by itself);
//! - `chase`: each line's address depends on the previous load (no
//!   overlap at all: the latency of one line).
//!
//! `cargo run --release -p synwall-benches --example cache_lines -- [LINES ...]`
//! (default `8192 100000`; `SYNWALL_BENCH_QUICK=1` for a short run). Run it
//! on an idle machine: the figure is nanoseconds a line, not a ratio.
use std::hint::black_box;
use std::time::{Duration, Instant};

use synwall_benches::rng::Rng;
use synwall_dpdk::{prefetch, HugeArray};

/// One cache line; `next` is the chase's link.
#[derive(Clone, Copy, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line {
    next: u32,
    _rest: [u32; 15],
}

const ARRAY_BYTES: usize = 64 << 20;
const BATCH: usize = 32;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or_else(|_| usage(&a)))
        .collect();
    let counts = if args.is_empty() {
        vec![8192, 100_000]
    } else {
        args
    };
    let quick = std::env::var_os("SYNWALL_BENCH_QUICK").is_some();
    let run_for = Duration::from_millis(if quick { 100 } else { 1000 });

    let total = ARRAY_BYTES / size_of::<Line>();
    let mut array = HugeArray::<Line>::zeroed(total, None);
    println!("array: {} MiB, {:?}", ARRAY_BYTES >> 20, array.backing());
    println!("| lines | working set | batch ns/line | loads ns/line | chase ns/line |");
    println!("|---:|---:|---:|---:|---:|");
    for &n in &counts {
        if n == 0 || n > total {
            usage(&n.to_string());
        }
        let order = distinct_lines(n, total, 0x5eed ^ n as u64);
        // The chase: line order[i] links to order[i + 1], the last to the first.
        for (i, &at) in order.iter().enumerate() {
            array[at as usize].next = order[(i + 1) % n];
        }
        let batch = per_line(run_for, n, || batched(&array, &order));
        let loads = per_line(run_for, n, || plain(&array, &order));
        let chase = per_line(run_for, n, || chased(&array, order[0], n));
        println!(
            "| {n} | {} KiB | {batch:.2} | {loads:.2} | {chase:.2} |",
            n * size_of::<Line>() / 1024
        );
    }
}

fn usage(bad: &str) -> ! {
    eprintln!(
        "cache_lines: `{bad}` is not a number of lines between 1 and {}",
        ARRAY_BYTES / size_of::<Line>()
    );
    std::process::exit(2)
}

/// `n` distinct line indices below `total`, in random order.
fn distinct_lines(n: usize, total: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let mut all: Vec<u32> = (0..total as u32).collect();
    rng.shuffle(&mut all);
    all.truncate(n);
    all
}

/// Nanoseconds a line of `pass` (which visits `n` lines), over passes that
/// fill `run_for` after one warm-up pass.
fn per_line(run_for: Duration, n: usize, mut pass: impl FnMut() -> u32) -> f64 {
    black_box(pass());
    let start = Instant::now();
    let mut passes = 0u64;
    while start.elapsed() < run_for {
        black_box(pass());
        passes += 1;
    }
    start.elapsed().as_nanos() as f64 / (passes as f64 * n as f64)
}

#[inline(never)]
fn batched(array: &[Line], order: &[u32]) -> u32 {
    let mut sum = 0u32;
    for chunk in order.chunks(BATCH) {
        for &i in chunk {
            if let Some(line) = array.get(i as usize) {
                prefetch(line);
            }
        }
        for &i in chunk {
            sum = sum.wrapping_add(array.get(i as usize).map_or(0, |l| l.next));
        }
    }
    sum
}

#[inline(never)]
fn plain(array: &[Line], order: &[u32]) -> u32 {
    order.iter().fold(0u32, |sum, &i| {
        sum.wrapping_add(array.get(i as usize).map_or(0, |l| l.next))
    })
}

#[inline(never)]
fn chased(array: &[Line], first: u32, n: usize) -> u32 {
    let mut at = first;
    for _ in 0..n {
        at = array.get(at as usize).map_or(0, |l| l.next);
    }
    at
}
