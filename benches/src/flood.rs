//! Traffic from many active customers at once, for the benchmarks of
//! issue 11: every frame comes from a different customer than the one
//! before it, so every frame's classifier entry and counters are a cache
//! miss once the active customers outgrow the caches.
//!
//! Two shapes:
//!
//! - [`Shape::Syn`], the flood: 100 % SYNs to port 25 (MSS option, 64 B on
//!   the wire for IPv4), random source ports.
//! - [`Shape::SmtpEstablished`]: established SMTP (ACK and ACK+PSH to port
//!   25 on a few connections per customer) with a few SYNs among it, the
//!   traffic that costs a classifier lookup per frame under
//!   `[block] scope = "smtp"`.
//!
//! The `active` customers are drawn without repetition from the whole
//! table of `customers` (seeded), so they are scattered over it, not the
//! first `active`; each appears at least once when `frames >= active`.
//! 90 % of the frames are IPv4 (a host inside the customer's /28), 10 %
//! IPv6 (a host inside its /64).
use std::net::{Ipv4Addr, Ipv6Addr};

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags;

use crate::customers::{Layout, LayoutKind, MAX_CUSTOMERS};
use crate::rng::Rng;

/// Share of IPv6 frames, percent.
pub const V6_PCT: usize = 10;
/// Share of SYNs in [`Shape::SmtpEstablished`], percent.
pub const SMTP_SYN_PCT: usize = 2;

/// What the frames are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// SYNs to port 25 only.
    Syn,
    /// Established SMTP (ACK, ACK+PSH to port 25), [`SMTP_SYN_PCT`] % SYNs.
    SmtpEstablished,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct FloodSpec {
    pub shape: Shape,
    /// Number of frames.
    pub frames: usize,
    /// Distinct customers that send (at most `customers`).
    pub active: u32,
    /// Size of the customer table the frames are played against.
    pub customers: u32,
    /// PRNG seed.
    pub seed: u64,
}

/// The generated frames (Ethernet, no FCS) and where each comes from.
#[derive(Debug, Clone)]
pub struct Flood {
    pub frames: Vec<Vec<u8>>,
    /// The customer id each frame's source belongs to.
    pub sources: Vec<u32>,
    /// Which frames are IPv6.
    pub v6: Vec<bool>,
    /// Which frames are SYNs (the others are ACK or ACK+PSH).
    pub syn: Vec<bool>,
}

impl Flood {
    /// Distinct customers among the sources.
    pub fn distinct_customers(&self) -> usize {
        let mut ids = self.sources.clone();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// IPv6 frames.
    pub fn v6_frames(&self) -> usize {
        self.v6.iter().filter(|&&v| v).count()
    }

    /// SYN frames.
    pub fn syn_frames(&self) -> usize {
        self.syn.iter().filter(|&&s| s).count()
    }

    /// Consecutive frames (the replay wraps around) from the same customer.
    pub fn repeats(&self) -> usize {
        let n = self.sources.len();
        (0..n)
            .filter(|&i| n > 1 && self.sources[i] == self.sources[(i + 1) % n])
            .count()
    }

    /// One line for logs.
    pub fn describe(&self) -> String {
        let ids = self.sources.iter();
        format!(
            "{} frames from {} customers (ids {}..={}), {} IPv6, {} SYNs, {} consecutive repeats",
            self.frames.len(),
            self.distinct_customers(),
            ids.clone().min().copied().unwrap_or(0),
            ids.max().copied().unwrap_or(0),
            self.v6_frames(),
            self.syn_frames(),
            self.repeats()
        )
    }
}

/// `n` distinct ids from `0..table`, in random order (a partial
/// Fisher-Yates shuffle of the whole table).
fn draw_distinct(rng: &mut Rng, n: u32, table: u32) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..table).collect();
    for i in 0..n as usize {
        let j = i + rng.below((ids.len() - i) as u64) as usize;
        ids.swap(i, j);
    }
    ids.truncate(n as usize);
    ids
}

/// Reorders `sources` so that no two neighbours (wrapping around) are the
/// same customer where that is possible: a shuffle leaves ~frames/active
/// such pairs, each a cache hit the benchmark should not get for free.
fn spread(sources: &mut [u32]) {
    let n = sources.len();
    for i in 1..=n {
        let prev = sources[i - 1];
        let k = i % n;
        if sources[k] != prev {
            continue;
        }
        // Swap in the next frame from someone else that keeps its own
        // neighbours apart, if there is one.
        let fits = |j: usize, s: &[u32]| {
            s[j] != prev
                && s[j] != s[(k + 1) % n]
                && s[(j + n - 1) % n] != s[k]
                && s[(j + 1) % n] != s[k]
                && (k + 1) % n != j
        };
        if let Some(j) = (1..n).map(|d| (k + d) % n).find(|&j| fits(j, sources)) {
            sources.swap(k, j);
        }
    }
}

/// A public-looking IPv4 destination.
fn dst_v4(rng: &mut Rng) -> Ipv4Addr {
    Ipv4Addr::from(0x5db8_0000u32 + rng.below(1 << 16) as u32)
}

/// A public-looking IPv6 destination.
fn dst_v6(rng: &mut Rng) -> Ipv6Addr {
    Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, 0, rng.below(1 << 16) as u16)
}

fn ephemeral(rng: &mut Rng) -> u16 {
    32768 + rng.below(28232) as u16
}

/// One TCP segment to port 25 from `customer`, as small as its headers
/// allow (60 B + FCS for IPv4).
fn segment(
    rng: &mut Rng,
    layout: &Layout,
    customer: u32,
    v6: bool,
    flags: u8,
    sport: u16,
    host: u64,
) -> Vec<u8> {
    let b = if v6 {
        FrameBuilder::tcp_v6(
            layout.v6_host(customer, host),
            dst_v6(rng),
            sport,
            25,
            flags,
        )
    } else {
        let h = 1 + (host % 14) as u32; // not the /28's network or broadcast address
        FrameBuilder::tcp_v4(layout.v4_host(customer, h), dst_v4(rng), sport, 25, flags)
    };
    let b = b.seq(rng.next_u64() as u32);
    let b = if flags & tcp_flags::SYN != 0 {
        // MSS option, as real SYNs carry.
        b.tcp_options(&[2, 4, 0x05, 0xb4])
    } else if flags & tcp_flags::PSH != 0 {
        // The end of an SMTP dialogue; fits in a 60 B IPv4 frame.
        b.ack(rng.next_u64() as u32).payload(b"QUIT\r\n")
    } else {
        b.ack(rng.next_u64() as u32)
    };
    b.pad_to(60).build()
}

/// Generates the frames, from customers of the bench layout.
///
/// Panics if `active` is 0 or above `customers`, or `customers` above
/// [`MAX_CUSTOMERS`].
pub fn generate(spec: &FloodSpec) -> Flood {
    generate_in(spec, &Layout::new(LayoutKind::Bench, spec.customers))
}

/// Generates the frames, from customers of `layout` (of `spec.customers`
/// customers): the same customers, order and frame kinds whatever the
/// layout, only the addresses differ.
///
/// Panics as [`generate`] does, or if `layout` is of another size.
pub fn generate_in(spec: &FloodSpec, layout: &Layout) -> Flood {
    assert_eq!(layout.customers(), spec.customers, "layout of another size");
    assert!(
        spec.customers <= MAX_CUSTOMERS,
        "at most {MAX_CUSTOMERS} customers"
    );
    assert!(
        (1..=spec.customers).contains(&spec.active),
        "active customers must be within 1..={}",
        spec.customers
    );
    let n = spec.frames;
    let mut rng = Rng::new(spec.seed);
    let active = draw_distinct(&mut rng, spec.active, spec.customers);
    // Frame k is from active[k mod N] (each customer once before any
    // twice), then the order is shuffled and neighbours pulled apart.
    let mut sources: Vec<u32> = (0..n).map(|k| active[k % active.len()]).collect();
    rng.shuffle(&mut sources);
    if active.len() > 1 {
        spread(&mut sources);
    }

    let mut v6 = vec![false; n];
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    for &i in order.iter().take((n * V6_PCT).div_ceil(100)) {
        v6[i] = true;
    }
    let mut syn = vec![spec.shape == Shape::Syn; n];
    if spec.shape == Shape::SmtpEstablished {
        rng.shuffle(&mut order);
        for &i in order.iter().take((n * SMTP_SYN_PCT).div_ceil(100)) {
            syn[i] = true;
        }
    }

    // Established SMTP: a few connections per customer (source host and
    // port), one of them picked per frame.
    const CONNECTIONS: u64 = 3;
    let connection = |customer: u32, c: u64| {
        let mut r = Rng::new(spec.seed ^ (u64::from(customer) << 8) ^ c);
        (ephemeral(&mut r), r.next_u64() | 1)
    };
    let frames = (0..n)
        .map(|i| {
            let c = sources[i];
            if syn[i] {
                let sport = ephemeral(&mut rng);
                let host = rng.next_u64() | 1;
                segment(&mut rng, layout, c, v6[i], tcp_flags::SYN, sport, host)
            } else {
                let (sport, host) = connection(c, rng.below(CONNECTIONS));
                let flags = if rng.below(5) < 3 {
                    tcp_flags::ACK
                } else {
                    tcp_flags::ACK | tcp_flags::PSH
                };
                segment(&mut rng, layout, c, v6[i], flags, sport, host)
            }
        })
        .collect();
    Flood {
        frames,
        sources,
        v6,
        syn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synwall_dataplane::classify::{Classifier, CustomerId};
    use synwall_dataplane::parse::{parse, Outcome, WatchedPorts};

    fn check_frames(flood: &Flood, customers: u32) -> Vec<Outcome> {
        check_frames_in(flood, &Layout::new(LayoutKind::Bench, customers))
    }

    fn check_frames_in(flood: &Flood, layout: &Layout) -> Vec<Outcome> {
        let customers = layout.customers();
        let classifier = Classifier::build(customers as usize + 1, layout.prefixes(true))
            .expect("benchmark prefixes are valid");
        let watched = WatchedPorts::new(&[25]);
        flood
            .frames
            .iter()
            .zip(&flood.sources)
            .zip(&flood.v6)
            .map(|((f, &c), &v6)| {
                let p = parse(f, &watched);
                let src = p.src.expect("a source address");
                assert_eq!(
                    classifier.lookup(src),
                    Some(CustomerId::new(c)),
                    "{:?}",
                    src.to_ip()
                );
                assert_eq!(matches!(src.to_ip(), std::net::IpAddr::V6(_)), v6);
                if !v6 {
                    assert_eq!(f.len(), 60, "64 B on the wire");
                }
                p.outcome
            })
            .collect()
    }

    #[test]
    fn flood_is_what_was_asked() {
        let spec = FloodSpec {
            shape: Shape::Syn,
            frames: 8192,
            active: 1000,
            customers: 1_000_000,
            seed: 1,
        };
        let flood = generate(&spec);
        assert_eq!(flood.frames.len(), 8192);
        assert_eq!(flood.distinct_customers(), 1000, "{}", flood.describe());
        assert_eq!(flood.v6_frames(), 820, "10 % IPv6, rounded up");
        assert_eq!(flood.syn_frames(), 8192);
        assert_eq!(flood.repeats(), 0, "{}", flood.describe());
        // Scattered over the table, not its first 1000.
        let far = flood.sources.iter().filter(|&&c| c >= 100_000).count();
        assert!(far > 8192 * 8 / 10, "{}", flood.describe());
        let outcomes = check_frames(&flood, spec.customers);
        assert!(outcomes.iter().all(|&o| o == Outcome::WatchedSyn));
        // Deterministic from the seed.
        assert_eq!(generate(&spec).frames, flood.frames);
    }

    #[test]
    fn every_customer_appears_when_there_are_enough_frames() {
        for (frames, active) in [(1000, 1000), (1500, 1000), (300, 7), (100, 1)] {
            let flood = generate(&FloodSpec {
                shape: Shape::Syn,
                frames,
                active,
                customers: 5000,
                seed: 7,
            });
            assert_eq!(flood.distinct_customers(), active as usize);
            if active > 1 {
                assert_eq!(flood.repeats(), 0, "{}", flood.describe());
            }
        }
    }

    /// `--flood-frames`: more frames than active customers. Each customer
    /// sends frames/active of them (rounded down or up), in shuffled order,
    /// never twice in a row: what the dataplane bench's summary check
    /// (every active customer counted) and its cache misses rely on.
    #[test]
    fn more_frames_than_customers_spread_evenly() {
        // (frames, active)
        for (frames, active) in [(100_000, 8192), (100_000, 100_000), (20_000, 1000)] {
            let flood = generate(&FloodSpec {
                shape: Shape::Syn,
                frames,
                active,
                customers: 1_000_000,
                seed: 1,
            });
            let mut per_customer = std::collections::HashMap::new();
            for &c in &flood.sources {
                *per_customer.entry(c).or_insert(0usize) += 1;
            }
            assert_eq!(per_customer.len(), active as usize, "{}", flood.describe());
            let fewest = frames / active as usize;
            let most = frames.div_ceil(active as usize);
            assert!(
                per_customer.values().all(|&n| n == fewest || n == most),
                "{frames} frames from {active}: not {fewest} or {most} each"
            );
            assert_eq!(flood.repeats(), 0, "{}", flood.describe());
            // Shuffled: the first `active` frames are not each customer once.
            if fewest > 1 {
                let mut first: Vec<u32> = flood.sources[..active as usize].to_vec();
                first.sort_unstable();
                first.dedup();
                assert!(first.len() < active as usize * 9 / 10, "{}", first.len());
            }
        }
    }

    #[test]
    fn established_smtp_has_a_few_syns() {
        let spec = FloodSpec {
            shape: Shape::SmtpEstablished,
            frames: 10_000,
            active: 2000,
            customers: 50_000,
            seed: 3,
        };
        let flood = generate(&spec);
        assert_eq!(flood.distinct_customers(), 2000);
        assert_eq!(flood.v6_frames(), 1000);
        assert_eq!(flood.syn_frames(), 200);
        let outcomes = check_frames(&flood, spec.customers);
        let syns = outcomes
            .iter()
            .filter(|&&o| o == Outcome::WatchedSyn)
            .count();
        let other = outcomes
            .iter()
            .filter(|&&o| o == Outcome::WatchedOther)
            .count();
        assert_eq!((syns, other), (200, 9800));
    }

    #[test]
    fn billing_flood_has_the_same_shape() {
        let spec = FloodSpec {
            shape: Shape::Syn,
            frames: 8192,
            active: 1000,
            customers: 200_000,
            seed: 1,
        };
        let layout = Layout::new(LayoutKind::Billing, spec.customers);
        let flood = generate_in(&spec, &layout);
        let bench = generate(&spec);
        assert_eq!(flood.sources, bench.sources);
        assert_eq!(flood.v6, bench.v6);
        assert_eq!(flood.repeats(), 0);
        let outcomes = check_frames_in(&flood, &layout);
        assert!(outcomes.iter().all(|&o| o == Outcome::WatchedSyn));
    }
}
