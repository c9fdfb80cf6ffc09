//! Per-packet cost of synwall's inside→outside path without EAL:
//! `verdict::judge` (parse + classify + count + verdict) one frame at a
//! time, and `verdict::BurstJudge` (the worker's staged bursts of 32), over
//! the benchmark mix and issue 26's busier one (15 % SYNs from 1,000
//! customers) with 1k / 100k / 1M customers in the classifier, and over a
//! spoofed SYN flood from 8k and 100k distinct customers of the largest
//! table, each table in both layouts of `synwall_benches::customers`
//! (`bench`: ids in address order, one /28 + /64 each; `billing`: a billing
//! export's order and mixed /32../27, /64../48); and the classifier
//! alone (ns per lookup, IPv4/IPv6, hit/miss; build time and resident
//! memory), also on a 100k table with mixed prefix lengths.
//!
//! `cargo bench -p synwall-benches --bench packet_path [-- QUICK]`
//! (`QUICK`, or `SYNWALL_BENCH_QUICK=1`: fewer rounds, 1k and 1M only).
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use synwall_benches::customers::{self, Layout, LayoutKind};
use synwall_benches::mix::{generate, Kind, Mix, MixSpec, Sizes};
use synwall_benches::rng::Rng;
use synwall_dataplane::classify::{Classifier, CustomerId};
use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_dataplane::parse::{parse, SrcAddr, WatchedPorts};
use synwall_dataplane::shard::WorkerShard;
use synwall_dataplane::verdict::{
    judge, BlockAction, BlockScope, BurstJudge, Frame, MalformedPolicy, Policy, Tally, Verdict,
    BURST,
};
use synwall_dpdk::tsc_now;

struct Opts {
    rounds: usize,
    round_time: Duration,
    tables: Vec<u32>,
}

/// Nanoseconds and TSC cycles per operation of one timed round.
#[derive(Clone, Copy)]
struct Sample {
    ns: f64,
    cycles: f64,
}

/// Runs `op` (which performs `per_call` operations) in rounds of about
/// `round_time`; returns the median and the best round.
fn measure(opts: &Opts, per_call: usize, mut op: impl FnMut() -> u64) -> (Sample, Sample) {
    // Warm up and size a round.
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < opts.round_time / 4 {
        black_box(op());
        calls += 1;
    }
    let calls_per_round = (calls * 4).max(1);
    let mut samples: Vec<Sample> = (0..opts.rounds)
        .map(|_| {
            let t0 = Instant::now();
            let c0 = tsc_now();
            for _ in 0..calls_per_round {
                black_box(op());
            }
            let c1 = tsc_now();
            let ns = t0.elapsed().as_nanos() as f64;
            let ops = (calls_per_round * per_call as u64) as f64;
            Sample {
                ns: ns / ops,
                cycles: (c1 - c0) as f64 / ops,
            }
        })
        .collect();
    samples.sort_by(|a, b| a.ns.total_cmp(&b.ns));
    (samples[samples.len() / 2], samples[0])
}

/// TSC ticks per nanosecond, against the monotonic clock.
fn tsc_ghz() -> f64 {
    let t0 = Instant::now();
    let c0 = tsc_now();
    std::thread::sleep(Duration::from_millis(200));
    let c1 = tsc_now();
    (c1 - c0) as f64 / t0.elapsed().as_nanos() as f64
}

fn policy() -> Policy {
    Policy {
        watched: WatchedPorts::new(&[25]),
        action: BlockAction::Drop,
        scope: BlockScope::Syn,
        malformed: MalformedPolicy::Forward,
    }
}

/// A line of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`); 0 if unreadable.
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What building a classifier cost.
#[derive(Clone, Copy)]
struct Built {
    time: Duration,
    /// Resident set growth once built, and peak growth during the build, MiB.
    rss_mib: f64,
    peak_mib: f64,
}

/// Builds a classifier, timing it and measuring its resident memory.
/// Looks every address up (the sum of the ids keeps the lookups alive).
fn lookup_all(c: &Classifier, addrs: &[SrcAddr]) -> u64 {
    addrs
        .iter()
        .map(|&a| u64::from(c.lookup(black_box(a)).map_or(u32::MAX, CustomerId::get)))
        .sum()
}

fn build_measured(
    customers: usize,
    prefixes: impl IntoIterator<Item = (IpAddr, u8, CustomerId)>,
) -> (Classifier, Built) {
    // "5" resets VmHWM to the current RSS (Linux ≥ 4.0); if it fails the
    // peak column is the process's peak so far.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss0 = status_kib("VmRSS");
    let t = Instant::now();
    let c = Classifier::build(customers, prefixes).expect("benchmark prefixes are valid");
    let time = t.elapsed();
    let mib = |kib: u64| kib.saturating_sub(rss0) as f64 / 1024.0;
    let built = Built {
        time,
        rss_mib: mib(status_kib("VmRSS")),
        peak_mib: mib(status_kib("VmHWM")),
    };
    (c, built)
}

/// The classifier and a shard for the customers of `layout` plus the
/// blocked one (id `n`).
fn table(layout: &Layout) -> (Classifier, WorkerShard, Built) {
    let n = layout.customers();
    let (c, built) = build_measured(n as usize + 1, layout.prefixes(true));
    let shard = WorkerShard::new(n as usize + 1);
    shard.set_blocked(CustomerId::new(n), true);
    (c, shard, built)
}

/// `n` customers with mixed prefix lengths, one prefix per family each:
/// IPv4 /24, /28, /32 in turn, packed upwards from 32.0.0.0 (each aligned to
/// its size); IPv6 /48, /56, /64 in turn, customer `i` in 2400:0:i::/48.
/// An IPv6 /48 customer costs three probes (/64 and /56 miss first).
fn mixed_prefixes(n: u32) -> Vec<(IpAddr, u8, u32)> {
    let mut cursor: u32 = 0x2000_0000;
    let mut out = Vec::with_capacity(2 * n as usize);
    for i in 0..n {
        let len4 = [24u8, 28, 32][i as usize % 3];
        let size = 1u32 << (32 - len4);
        cursor = cursor.next_multiple_of(size);
        out.push((IpAddr::V4(Ipv4Addr::from(cursor)), len4, i));
        cursor += size;
        let len6 = [48u8, 56, 64][i as usize % 3];
        let net6 = (0x2400u128 << 112) | (u128::from(i) << 80);
        out.push((IpAddr::V6(Ipv6Addr::from(net6)), len6, i));
    }
    out
}

/// Random hosts inside random prefixes of one family.
fn hosts_in(prefixes: &[(IpAddr, u8, u32)], v6: bool, rng: &mut Rng, k: usize) -> Vec<SrcAddr> {
    let family: Vec<(IpAddr, u8)> = prefixes
        .iter()
        .filter(|p| p.0.is_ipv6() == v6)
        .map(|p| (p.0, p.1))
        .collect();
    (0..k)
        .map(|_| {
            let (a, len) = family[rng.below(family.len() as u64) as usize];
            let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            match a {
                IpAddr::V4(a) => {
                    let host = (r as u32).checked_shr(u32::from(len)).unwrap_or(0);
                    SrcAddr::V4(u32::from(a) | host)
                }
                IpAddr::V6(a) => {
                    let host = r.checked_shr(u32::from(len)).unwrap_or(0);
                    SrcAddr::V6(u128::from(a) | host)
                }
            }
        })
        .collect()
}

fn judge_all(
    frames: &[Vec<u8>],
    policy: &Policy,
    c: &Classifier,
    shard: &WorkerShard,
    tally: &mut Tally,
) -> u64 {
    let mut fwd = 0u64;
    for f in frames {
        if judge(black_box(f), policy, c, shard, tally) == Verdict::Forward {
            fwd += 1;
        }
    }
    fwd
}

/// The worker's way: bursts of [`BURST`] frames decided in stages.
fn judge_bursts(
    frames: &[Vec<u8>],
    burst: &mut BurstJudge,
    policy: &Policy,
    c: &Classifier,
    shard: &WorkerShard,
    tally: &mut Tally,
) -> u64 {
    let mut fwd = 0u64;
    for chunk in frames.chunks(BURST) {
        let chunk = chunk.iter().map(|f| Frame {
            data: black_box(f),
            wire_len: f.len(),
        });
        fwd += burst
            .judge(chunk, policy, c, shard, tally)
            .iter()
            .filter(|v| **v == Verdict::Forward)
            .count() as u64;
    }
    fwd
}

/// A spoofed SYN flood: `frames` SYNs to port 25 from `active` distinct
/// customers drawn at random from the `n` of the table (every one at least
/// once), 90 % IPv4 and 10 % IPv6, in random order.
fn flood(layout: &Layout, active: usize, frames: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let n = layout.customers();
    let mx4 = Ipv4Addr::new(203, 0, 113, 25);
    let mx6 = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 25);
    let chosen: Vec<u32> = (0..active)
        .map(|_| rng.below(u64::from(n)) as u32)
        .collect();
    let mut out: Vec<Vec<u8>> = (0..frames)
        .map(|i| {
            let c = chosen[i % active];
            let sport = 1024 + rng.below(60000) as u16;
            if rng.below(10) == 0 {
                FrameBuilder::tcp_v6(layout.v6_host(c, rng.next_u64()), mx6, sport, 25, SYN).build()
            } else {
                let host = layout.v4_host(c, 1 + rng.below(15) as u32);
                FrameBuilder::tcp_v4(host, mx4, sport, 25, SYN).build()
            }
        })
        .collect();
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i as u64 + 1) as usize);
    }
    out
}

fn check_verdicts(
    mix: &Mix,
    policy: &Policy,
    c: &Classifier,
    shard: &WorkerShard,
    tally: &mut Tally,
) {
    let dropped = mix
        .frames
        .iter()
        .filter(|f| judge(f, policy, c, shard, tally) == Verdict::DropBlocked)
        .count();
    // The blocked customer's well-formed SYNs, and its malformed frames
    // whose source the parser could still read (forwarded under
    // MalformedPolicy::Forward for everybody else); nothing else.
    let watched = WatchedPorts::new(&[25]);
    let acme_malformed = mix
        .frames
        .iter()
        .zip(&mix.kinds)
        .filter(|(_, k)| **k == Kind::Malformed)
        .filter_map(|(f, _)| parse(f, &watched).src)
        .filter(|src| match *src {
            SrcAddr::V4(a) => a >> 8 == u32::from(customers::ACME_V4) >> 8,
            SrcAddr::V6(a) => a >> 64 == u128::from(customers::ACME_V6) >> 64,
        })
        .count();
    assert_eq!(
        dropped,
        mix.count(Kind::Syn25Blocked) + acme_malformed,
        "verdicts disagree with the mix"
    );
}

fn lookups(layout: &Layout, rng: &mut Rng, mix: &Mix) -> [(&'static str, Vec<SrcAddr>); 5] {
    let n = layout.customers();
    // The sources of the mix's watched SYNs: what `judge` actually looks up.
    let watched = WatchedPorts::new(&[25]);
    let mix_syns = mix
        .frames
        .iter()
        .map(|f| parse(f, &watched))
        .filter(|p| p.outcome == synwall_dataplane::parse::Outcome::WatchedSyn)
        .filter_map(|p| p.src)
        .collect();
    const K: usize = 4096;
    let v4_hit = (0..K)
        .map(|_| {
            SrcAddr::V4(u32::from(
                layout.v4_host(rng.below(u64::from(n)) as u32, 1 + rng.below(15) as u32),
            ))
        })
        .collect();
    // 11.0.0.0/8 and up: next to the table (either layout) but owned by nobody.
    let v4_miss = (0..K)
        .map(|_| SrcAddr::V4(0x0b00_0000 + rng.below(1 << 24) as u32))
        .collect();
    let v6_hit = (0..K)
        .map(|_| {
            SrcAddr::V6(u128::from(
                layout.v6_host(rng.below(u64::from(n)) as u32, rng.next_u64()),
            ))
        })
        .collect();
    let v6_miss = (0..K)
        .map(|_| {
            let a = Ipv6Addr::new(0x2001, 0xdb9, rng.next_u64() as u16, 0, 0, 0, 0, 1);
            SrcAddr::V6(u128::from(a))
        })
        .collect();
    [
        ("v4 hit", v4_hit),
        ("v4 miss", v4_miss),
        ("v6 hit", v6_hit),
        ("v6 miss", v6_miss),
        ("mix SYN sources", mix_syns),
    ]
}

fn human(n: u32) -> String {
    match n {
        n if n >= 1_000_000 && n / 1_000_000 * 1_000_000 == n => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n / 1000 * 1000 == n => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "QUICK") || std::env::var_os("SYNWALL_BENCH_QUICK").is_some();
    let opts = Opts {
        rounds: if quick { 5 } else { 11 },
        round_time: Duration::from_millis(if quick { 100 } else { 250 }),
        tables: if quick {
            vec![1_000, 1_000_000]
        } else {
            vec![1_000, 100_000, 1_000_000]
        },
    };
    let ghz = tsc_ghz();
    println!(
        "# synwall packet path (no EAL), TSC {ghz:.3} GHz, median of {} rounds (best in brackets)",
        opts.rounds
    );
    let mix64 = generate(&MixSpec::default());
    let imix = generate(&MixSpec {
        sizes: Sizes::Imix,
        ..MixSpec::default()
    });
    println!("# mix 64 B: {}", mix64.describe());
    println!("# mix IMIX: {}", imix.describe());
    let policy = policy();

    // Parsing alone does not depend on the table.
    let watched = policy.watched.clone();
    let (parse_med, parse_best) = measure(&opts, mix64.frames.len(), || {
        mix64
            .frames
            .iter()
            .map(|f| parse(black_box(f), &watched).l4_offset as u64)
            .sum()
    });
    println!();
    println!("| what | customers | ns/pkt | cycles/pkt | Mpps/core (1/ns) |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| parse only, 64 B mix | - | {:.1} [{:.1}] | {:.0} [{:.0}] | {:.1} |",
        parse_med.ns,
        parse_best.ns,
        parse_med.cycles,
        parse_best.cycles,
        1e3 / parse_med.ns
    );

    let mut rng = Rng::new(7);
    let mut lookup_rows = Vec::new();
    let mut build_rows = Vec::new();
    for (&n, kind) in opts
        .tables
        .iter()
        .flat_map(|n| [(n, LayoutKind::Bench), (n, LayoutKind::Billing)])
    {
        let layout = Layout::new(kind, n);
        let label = format!("{} {}", human(n), kind.name());
        let (c, shard, built) = table(&layout);
        build_rows.push((label.clone(), c.prefixes(), built));
        // The mixes' sources in this table (the bench layout's are the
        // same frames whatever its size).
        let spec = MixSpec {
            customers: n,
            layout: kind,
            ..MixSpec::default()
        };
        let mix64 = generate(&spec);
        let imix = generate(&MixSpec {
            sizes: Sizes::Imix,
            ..spec.clone()
        });
        let busy = generate(&MixSpec {
            frames: 8192,
            syn_pct: 15.0,
            mailers: 1000,
            ..spec
        });
        let mut tally = Tally::default();
        check_verdicts(&mix64, &policy, &c, &shard, &mut tally);
        check_verdicts(&busy, &policy, &c, &shard, &mut tally);
        let mut burst = BurstJudge::default();
        let floods: Vec<(String, Vec<Vec<u8>>)> = if n == *opts.tables.last().unwrap_or(&0) {
            [8_192usize, 100_000]
                .iter()
                .map(|&k| {
                    let label = format!("flood, {} active", human(k as u32));
                    (label, flood(&layout, k, k.max(8_192), &mut rng))
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut rows: Vec<(String, &[Vec<u8>])> = vec![
            ("64 B mix".into(), &mix64.frames),
            ("IMIX".into(), &imix.frames),
            ("busy 64 B mix (15 % SYNs, 1k mailers)".into(), &busy.frames),
        ];
        rows.extend(floods.iter().map(|(l, f)| (l.clone(), &f[..])));
        for (name, frames) in rows {
            let (med, best) = measure(&opts, frames.len(), || {
                judge_all(frames, &policy, &c, &shard, &mut tally)
            });
            let (bmed, bbest) = measure(&opts, frames.len(), || {
                judge_bursts(frames, &mut burst, &policy, &c, &shard, &mut tally)
            });
            for (how, med, best) in [("judge", med, best), ("burst", bmed, bbest)] {
                println!(
                    "| {how}, {name} | {label} | {:.1} [{:.1}] | {:.0} [{:.0}] | {:.1} |",
                    med.ns,
                    best.ns,
                    med.cycles,
                    best.cycles,
                    1e3 / med.ns
                );
            }
        }
        for (name, addrs) in lookups(&layout, &mut rng, &mix64) {
            let (med, best) = measure(&opts, addrs.len(), || lookup_all(&c, &addrs));
            lookup_rows.push((label.clone(), name, med, best));
        }
    }
    {
        // Mixed lengths: what per-length probing costs when one length is
        // not enough.
        let n = 100_000;
        let p = mixed_prefixes(n);
        let ids = p.iter().map(|&(a, len, c)| (a, len, CustomerId::new(c)));
        let (c, built) = build_measured(n as usize, ids);
        let label = format!("{} mixed", human(n));
        build_rows.push((label.clone(), c.prefixes(), built));
        const K: usize = 4096;
        let v6_miss: Vec<SrcAddr> = (0..K)
            .map(|_| SrcAddr::V6((0x2401u128 << 112) | u128::from(rng.next_u64())))
            .collect();
        for (name, addrs) in [
            ("v4 hit, /24 /28 /32", hosts_in(&p, false, &mut rng, K)),
            ("v6 hit, /48 /56 /64", hosts_in(&p, true, &mut rng, K)),
            ("v6 miss, 3 lengths", v6_miss),
        ] {
            let (med, best) = measure(&opts, addrs.len(), || lookup_all(&c, &addrs));
            lookup_rows.push((label.clone(), name, med, best));
        }
    }

    println!();
    println!("Classifier::lookup, random addresses over the whole table:");
    println!();
    println!("| customers | lookup | ns/lookup | cycles/lookup |");
    println!("|---:|---|---:|---:|");
    for (n, name, med, best) in &lookup_rows {
        println!(
            "| {n} | {name} | {:.1} [{:.1}] | {:.0} [{:.0}] |",
            med.ns, best.ns, med.cycles, best.cycles
        );
    }
    println!();
    println!("| customers | prefixes (v4 + v6) | build time | RSS growth (peak during build) |");
    println!("|---:|---:|---:|---:|");
    for (n, (v4, v6), built) in &build_rows {
        println!(
            "| {n} | {v4} + {v6} | {:.2} s | {:.1} MiB ({:.1} MiB) |",
            built.time.as_secs_f64(),
            built.rss_mib,
            built.peak_mib
        );
    }
    // Keep the helpers' addresses honest: the blocked customer resolves.
    let (c, _, _) = table(&Layout::new(LayoutKind::Bench, 1));
    assert_eq!(
        c.lookup_addr(customers::ACME_V4.into()),
        Some(CustomerId::new(1))
    );
    assert_eq!(c.lookup_addr(Ipv4Addr::new(11, 0, 0, 1).into()), None);
}
