//! A realistic inside→outside traffic mix for the benchmarks.
//!
//! By default (of the frames): about 72 % established TCP (HTTPS, HTTP and a
//! spread of other ports; 80 % from customer prefixes, 20 % from addresses no
//! customer owns), 3 % established SMTP (ACK/PSH to port 25), 10 % UDP (DNS
//! and QUIC), 5 % SYNs to port 25 from a handful of customers, a third of
//! them from the blocked customer "acme", 1 % ICMP, 1 % ARP, and a
//! configurable share of malformed frames (7 kinds, rotating). 5 % of all
//! frames are IPv6, 10 % carry one 802.1Q tag and 3 % two tags (802.1ad +
//! 802.1Q). Sources are the first `min(customers, 1000)` customers of
//! [`crate::customers`], so in the bench layout the same pcap works against
//! any table size (a billing-layout mix fits its own table only).
//!
//! [`MixSpec::syn_pct`] and [`MixSpec::mailers`] make the busier mix of
//! issue 26: 15 % SYNs to port 25 from all 1,000 source customers (the
//! blocked customer's and the unowned SYNs stay what they are in the
//! default mix, the rest of the SYNs come from the mailers).
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::{tcp_flags, TPID_8021AD, TPID_8021Q};

use crate::customers::{Layout, LayoutKind, ACME_V4, ACME_V6};
use crate::rng::Rng;

/// Frame sizes of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizes {
    /// Every frame as small as its headers allow, at least 64 B on the wire
    /// (60 B + FCS); IPv6 and tagged frames are a little longer.
    Min,
    /// Simple IMIX for data frames (TCP/UDP with payload): 7×64, 4×570,
    /// 1×1518 B on the wire; SYNs, ICMP, ARP and malformed stay small.
    Imix,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct MixSpec {
    /// Number of frames.
    pub frames: usize,
    /// Frame sizes.
    pub sizes: Sizes,
    /// Share of malformed frames, percent.
    pub malformed_pct: f64,
    /// Number of generated customers in the table the mix is played
    /// against; sources are drawn from the first `min(customers, 1000)`.
    pub customers: u32,
    /// PRNG seed.
    pub seed: u64,
    /// Share of SYNs to port 25, percent (at least the blocked customer's
    /// and the unowned ones: about 3.2 %).
    pub syn_pct: f64,
    /// Customers that send mail (SYNs and established SMTP), at most the
    /// source customers.
    pub mailers: u32,
    /// The layout of the customer table.
    pub layout: LayoutKind,
}

impl Default for MixSpec {
    fn default() -> Self {
        MixSpec {
            frames: 1024,
            sizes: Sizes::Min,
            malformed_pct: 1.0,
            customers: 1000,
            seed: 1,
            syn_pct: 5.0,
            mailers: 8,
            layout: LayoutKind::Bench,
        }
    }
}

/// The category of a generated frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Established TCP to a port other than 25.
    Tcp,
    /// Established TCP to port 25 (not a SYN).
    SmtpData,
    /// UDP (DNS, QUIC).
    Udp,
    /// SYN to port 25 from a customer that is not blocked.
    Syn25,
    /// SYN to port 25 from the blocked customer.
    Syn25Blocked,
    /// SYN to port 25 from an address no customer owns.
    Syn25Unowned,
    /// ICMP echo.
    Icmp,
    /// ARP request.
    Arp,
    /// Malformed.
    Malformed,
}

impl Kind {
    /// Every kind, for reports.
    pub const ALL: [Kind; 9] = [
        Kind::Tcp,
        Kind::SmtpData,
        Kind::Udp,
        Kind::Syn25,
        Kind::Syn25Blocked,
        Kind::Syn25Unowned,
        Kind::Icmp,
        Kind::Arp,
        Kind::Malformed,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::SmtpData => "smtp_data",
            Kind::Udp => "udp",
            Kind::Syn25 => "syn25",
            Kind::Syn25Blocked => "syn25_blocked",
            Kind::Syn25Unowned => "syn25_unowned",
            Kind::Icmp => "icmp",
            Kind::Arp => "arp",
            Kind::Malformed => "malformed",
        }
    }
}

/// The generated frames (Ethernet, no FCS) and what each one is.
#[derive(Debug, Clone)]
pub struct Mix {
    pub frames: Vec<Vec<u8>>,
    pub kinds: Vec<Kind>,
    /// IPv6 frames.
    pub v6: usize,
    /// Frames with one VLAN tag, and with two.
    pub vlan: usize,
    pub qinq: usize,
    /// Distinct (src, dst, proto, sport, dport) flows.
    pub flows: usize,
}

impl Mix {
    /// Frames of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.kinds.iter().filter(|&&k| k == kind).count()
    }

    /// Mean frame size on the wire (with FCS), bytes.
    pub fn mean_wire_size(&self) -> f64 {
        let total: usize = self.frames.iter().map(|f| f.len().max(60) + 4).sum();
        total as f64 / self.frames.len().max(1) as f64
    }

    /// A one-paragraph description for logs.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} frames, mean {:.1} B on the wire, {} flows, {} IPv6, {} 802.1Q, {} QinQ;",
            self.frames.len(),
            self.mean_wire_size(),
            self.flows,
            self.v6,
            self.vlan,
            self.qinq
        );
        for k in Kind::ALL {
            s.push_str(&format!(" {}={}", k.name(), self.count(k)));
        }
        s
    }
}

/// Ports of established TCP, weighted by repetition.
const TCP_PORTS: [u16; 16] = [
    443, 443, 443, 443, 443, 443, 443, 443, 80, 80, 80, 80, 8080, 22, 993, 3306,
];
/// Public DNS resolvers.
const RESOLVERS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(8, 8, 8, 8),
    Ipv4Addr::new(1, 1, 1, 1),
    Ipv4Addr::new(9, 9, 9, 9),
];

/// Where a frame comes from.
#[derive(Clone, Copy)]
enum Src {
    Customer(u32),
    Acme,
    Unowned,
}

struct Gen {
    rng: Rng,
    layout: Layout,
    source_customers: u32,
    sizes: Sizes,
    flows: HashSet<(IpAddr, IpAddr, u8, u16, u16)>,
}

impl Gen {
    fn src_v4(&mut self, src: Src) -> Ipv4Addr {
        let h = 1 + self.rng.below(14) as u32;
        match src {
            Src::Customer(i) => self.layout.v4_host(i, h),
            Src::Acme => Ipv4Addr::from(u32::from(ACME_V4) + 1 + self.rng.below(254) as u32),
            Src::Unowned => {
                // TEST-NET-1/3: owned by no generated customer.
                let base = if self.rng.below(2) == 0 {
                    0xc000_0200u32
                } else {
                    0xcb00_7100
                };
                Ipv4Addr::from(base + 1 + self.rng.below(254) as u32)
            }
        }
    }

    fn src_v6(&mut self, src: Src) -> Ipv6Addr {
        let h = 1 + self.rng.below(0xffff);
        match src {
            Src::Customer(i) => self.layout.v6_host(i, h),
            Src::Acme => Ipv6Addr::from(u128::from(ACME_V6) | u128::from(h)),
            Src::Unowned => Ipv6Addr::new(0x2001, 0xdb9, 0, 0, 0, 0, 0, h as u16),
        }
    }

    fn dst_v4(&mut self) -> Ipv4Addr {
        // A spread of public-looking destinations.
        Ipv4Addr::from(0x5db8_0000u32 + self.rng.below(1 << 16) as u32)
    }

    fn dst_v6(&mut self) -> Ipv6Addr {
        Ipv6Addr::new(
            0x2606,
            0x4700,
            0,
            0,
            0,
            0,
            0,
            self.rng.below(1 << 16) as u16,
        )
    }

    fn customer(&mut self) -> Src {
        Src::Customer(self.rng.below(u64::from(self.source_customers)) as u32)
    }

    fn ephemeral(&mut self) -> u16 {
        32768 + self.rng.below(28232) as u16
    }

    /// The builder for a TCP or UDP frame, v4 or v6, from `src`.
    fn l4(
        &mut self,
        src: Src,
        v6: bool,
        tcp: Option<u8>,
        sport: u16,
        dport: u16,
        dst4: Option<Ipv4Addr>,
    ) -> FrameBuilder {
        let (s, d): (IpAddr, IpAddr) = if v6 {
            (self.src_v6(src).into(), self.dst_v6().into())
        } else {
            let d = dst4.unwrap_or_else(|| self.dst_v4());
            (self.src_v4(src).into(), d.into())
        };
        let proto = if tcp.is_some() { 6 } else { 17 };
        self.flows.insert((s, d, proto, sport, dport));
        match (s, d, tcp) {
            (IpAddr::V4(s), IpAddr::V4(d), Some(f)) => FrameBuilder::tcp_v4(s, d, sport, dport, f),
            (IpAddr::V4(s), IpAddr::V4(d), None) => FrameBuilder::udp_v4(s, d, sport, dport),
            (IpAddr::V6(s), IpAddr::V6(d), Some(f)) => FrameBuilder::tcp_v6(s, d, sport, dport, f),
            (IpAddr::V6(s), IpAddr::V6(d), None) => FrameBuilder::udp_v6(s, d, sport, dport),
            _ => unreachable!("address families match"),
        }
    }

    /// Fills a data frame to its IMIX size (`wire` bytes with FCS).
    fn sized(&self, b: FrameBuilder, wire: usize) -> Vec<u8> {
        let bare = b.build();
        let target = wire - 4;
        if self.sizes == Sizes::Imix && bare.len() < target {
            let payload: Vec<u8> = (0..target - bare.len()).map(|i| i as u8).collect();
            b.payload(&payload).pad_to(60).build()
        } else {
            b.pad_to(60).build()
        }
    }
}

fn tag(b: FrameBuilder, tags: u8, vid: u16) -> FrameBuilder {
    match tags {
        1 => b.vlan(TPID_8021Q, vid),
        2 => b.vlan(TPID_8021AD, 100 + vid % 8).vlan(TPID_8021Q, vid),
        _ => b,
    }
}

/// Generates the mix.
pub fn generate(spec: &MixSpec) -> Mix {
    let n = spec.frames;
    let pct = |p: f64| ((n as f64) * p / 100.0).round() as usize;
    let malformed = pct(spec.malformed_pct);
    let syn = pct(spec.syn_pct);
    // The blocked customer sends a third of the default mix's SYNs, in
    // every mix.
    let syn_blocked = pct(5.0).div_ceil(3).min(syn);
    let syn_unowned = syn / 10;
    let smtp = pct(3.0);
    let udp = pct(10.0);
    let icmp = pct(1.0);
    let arp = pct(1.0);
    let fixed = malformed + syn + smtp + udp + icmp + arp;
    assert!(fixed <= n, "malformed share too large for {n} frames");
    let mut kinds = Vec::with_capacity(n);
    kinds.resize(kinds.len() + malformed, Kind::Malformed);
    kinds.resize(kinds.len() + syn_blocked, Kind::Syn25Blocked);
    kinds.resize(kinds.len() + syn_unowned, Kind::Syn25Unowned);
    kinds.resize(kinds.len() + syn - syn_blocked - syn_unowned, Kind::Syn25);
    kinds.resize(kinds.len() + smtp, Kind::SmtpData);
    kinds.resize(kinds.len() + udp, Kind::Udp);
    kinds.resize(kinds.len() + icmp, Kind::Icmp);
    kinds.resize(kinds.len() + arp, Kind::Arp);
    kinds.resize(kinds.len() + n - fixed, Kind::Tcp);

    let mut rng = Rng::new(spec.seed);
    rng.shuffle(&mut kinds);

    // IPv6 on 5 % of all frames, among the kinds that have a v6 form.
    let mut v6_flags = vec![false; n];
    let mut capable: Vec<usize> = (0..n)
        .filter(|&i| {
            matches!(
                kinds[i],
                Kind::Tcp | Kind::Udp | Kind::Syn25 | Kind::Syn25Blocked
            )
        })
        .collect();
    rng.shuffle(&mut capable);
    for &i in capable.iter().take(pct(5.0)) {
        v6_flags[i] = true;
    }
    // VLAN tags on 10 % (one) and 3 % (two) of the frames.
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut tags = vec![0u8; n];
    let (one, two) = (pct(10.0), pct(3.0));
    for (j, &i) in order.iter().enumerate() {
        tags[i] = if j < one {
            1
        } else if j < one + two {
            2
        } else {
            0
        };
    }
    // IMIX sizes for data frames, in a shuffled 7:4:1 pattern.
    let mut imix: Vec<usize> = (0..n)
        .map(|i| [64, 64, 64, 64, 64, 64, 64, 570, 570, 570, 570, 1518][i % 12])
        .collect();
    rng.shuffle(&mut imix);

    let source_customers = spec.customers.clamp(1, 1000);
    let mut gen = Gen {
        rng,
        layout: Layout::new(spec.layout, spec.customers),
        source_customers,
        sizes: spec.sizes,
        flows: HashSet::new(),
    };
    // A few customers send mail; established TCP reuses a pool of flows.
    // 97 is prime to 1000: up to 1000 mailers are all different.
    let mailers: Vec<u32> = (0..spec.mailers.clamp(1, source_customers))
        .map(|i| (i * 97 + 13) % source_customers)
        .collect();
    let flow_pool = (n / 3).max(300);
    let mut tcp_flows: Vec<(Src, u16, u16, Ipv4Addr, u8)> = Vec::with_capacity(flow_pool);
    for _ in 0..flow_pool {
        let src = if gen.rng.below(5) == 0 {
            Src::Unowned
        } else {
            gen.customer()
        };
        let dport = TCP_PORTS[gen.rng.below(TCP_PORTS.len() as u64) as usize];
        let sport = gen.ephemeral();
        let host = 1 + gen.rng.below(14) as u8;
        let dst = gen.dst_v4();
        tcp_flows.push((src, sport, dport, dst, host));
    }
    let mut v6 = 0;
    let mut frames = Vec::with_capacity(n);
    for i in 0..n {
        let is_v6 = v6_flags[i];
        let vid = 10 + (i % 200) as u16;
        let frame = match kinds[i] {
            Kind::Tcp => {
                let f = gen.rng.below(tcp_flows.len() as u64) as usize;
                let (src, sport, dport, dst, host) = tcp_flows[f];
                let flags = match gen.rng.below(20) {
                    0 => tcp_flags::FIN | tcp_flags::ACK,
                    1..=9 => tcp_flags::ACK,
                    _ => tcp_flags::ACK | tcp_flags::PSH,
                };
                let b = if is_v6 {
                    gen.l4(src, true, Some(flags), sport, dport, None)
                } else {
                    // Keep the flow's 5-tuple: the source host is part of it.
                    let s = match src {
                        Src::Customer(c) => gen.layout.v4_host(c, u32::from(host)),
                        _ => Ipv4Addr::new(192, 0, 2, host),
                    };
                    gen.flows.insert((s.into(), dst.into(), 6, sport, dport));
                    FrameBuilder::tcp_v4(s, dst, sport, dport, flags)
                };
                let b = b
                    .seq(gen.rng.next_u64() as u32)
                    .ack(gen.rng.next_u64() as u32);
                gen.sized(tag(b, tags[i], vid), imix[i])
            }
            Kind::SmtpData => {
                let src = Src::Customer(mailers[gen.rng.below(mailers.len() as u64) as usize]);
                let sport = gen.ephemeral();
                let b = gen.l4(
                    src,
                    false,
                    Some(tcp_flags::ACK | tcp_flags::PSH),
                    sport,
                    25,
                    None,
                );
                gen.sized(tag(b, tags[i], vid), imix[i])
            }
            Kind::Udp => {
                let src = gen.customer();
                let sport = gen.ephemeral();
                if gen.rng.below(10) < 7 {
                    let r = RESOLVERS[gen.rng.below(3) as usize];
                    let b = gen.l4(src, is_v6, None, sport, 53, Some(r));
                    // A DNS query: 12-byte header + a short name + type/class.
                    let mut q = vec![(i >> 8) as u8, i as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
                    q.extend_from_slice(b"\x03www\x01a\x02io\x00\x00\x01\x00\x01");
                    if gen.sizes == Sizes::Min && !is_v6 && tags[i] == 0 {
                        q.truncate(18); // keep the frame at 60 B
                    }
                    tag(b.payload(&q), tags[i], vid).pad_to(60).build()
                } else {
                    let b = gen.l4(src, is_v6, None, sport, 443, None);
                    gen.sized(tag(b, tags[i], vid), imix[i])
                }
            }
            k @ (Kind::Syn25 | Kind::Syn25Blocked | Kind::Syn25Unowned) => {
                let src = match k {
                    Kind::Syn25 => {
                        Src::Customer(mailers[gen.rng.below(mailers.len() as u64) as usize])
                    }
                    Kind::Syn25Blocked => Src::Acme,
                    _ => Src::Unowned,
                };
                let sport = gen.ephemeral();
                let b = gen.l4(src, is_v6, Some(tcp_flags::SYN), sport, 25, None);
                // MSS option, as real SYNs carry.
                let b = b
                    .tcp_options(&[2, 4, 0x05, 0xb4])
                    .seq(gen.rng.next_u64() as u32);
                tag(b, tags[i], vid).pad_to(60).build()
            }
            Kind::Icmp => {
                let src = gen.customer();
                let s = gen.src_v4(src);
                let d = gen.dst_v4();
                gen.flows.insert((s.into(), d.into(), 1, 0, 0));
                let echo = [8, 0, 0xf7, 0xff, 0, 1, 0, 0];
                tag(FrameBuilder::ip_v4(s, d, 1).payload(&echo), tags[i], vid)
                    .pad_to(60)
                    .build()
            }
            Kind::Arp => synwall_dataplane::craft::arp_request(
                gen.src_v4(Src::Customer(0)),
                Ipv4Addr::new(10, 0, 0, 1),
            ),
            Kind::Malformed => malformed_frame(&mut gen, i, tags[i], vid),
        };
        if is_v6 {
            v6 += 1;
        }
        frames.push(frame);
    }
    let vlan = (0..n)
        .filter(|&i| tags[i] == 1 && kinds[i] != Kind::Arp)
        .count();
    let qinq = (0..n)
        .filter(|&i| tags[i] == 2 && kinds[i] != Kind::Arp)
        .count();
    Mix {
        frames,
        kinds,
        v6,
        vlan,
        qinq,
        flows: gen.flows.len(),
    }
}

/// One malformed frame; the kind of damage rotates with `i`.
fn malformed_frame(gen: &mut Gen, i: usize, tags: u8, vid: u16) -> Vec<u8> {
    // Half of them from the blocked customer, as SYNs to port 25: the
    // malformed path must not leak a blocked customer's mail.
    let src = if i & 1 == 0 {
        Src::Acme
    } else {
        gen.customer()
    };
    let sport = gen.ephemeral();
    let syn = FrameBuilder::tcp_v4(gen.src_v4(src), gen.dst_v4(), sport, 25, tcp_flags::SYN);
    let l3 = 14 + 4 * usize::from(tags);
    match (i / 2) % 7 {
        0 => {
            // Cut inside the Ethernet header.
            let mut f = syn.build();
            f.truncate(10);
            f
        }
        1 => {
            // Three stacked tags.
            let b = syn
                .vlan(TPID_8021AD, 7)
                .vlan(TPID_8021Q, 8)
                .vlan(TPID_8021Q, vid);
            b.pad_to(60).build()
        }
        2 => {
            // IHL below 5.
            let mut f = tag(syn, tags, vid).pad_to(60).build();
            f[l3] = 0x43;
            f
        }
        3 => {
            // Total length past the frame.
            let mut f = tag(syn, tags, vid).pad_to(60).build();
            f[l3 + 2..l3 + 4].copy_from_slice(&1500u16.to_be_bytes());
            f
        }
        4 => {
            // IPv6 ethertype, IPv4 header.
            let mut f = tag(syn, tags, vid).pad_to(60).build();
            f[l3 - 2..l3].copy_from_slice(&0x86ddu16.to_be_bytes());
            f
        }
        5 => {
            // TCP data offset 3.
            let mut f = tag(syn, tags, vid).pad_to(60).build();
            f[l3 + 20 + 12] = 0x30;
            f
        }
        _ => {
            // 10 bytes of TCP in an unfragmented packet.
            tag(syn.truncate_l4(10), tags, vid).pad_to(60).build()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synwall_dataplane::parse::{parse, Outcome, WatchedPorts};

    #[test]
    fn default_mix_has_the_promised_shape() {
        let mix = generate(&MixSpec::default());
        assert_eq!(mix.frames.len(), 1024);
        assert!(mix.flows >= 254, "{}", mix.describe());
        assert_eq!(mix.v6, 51);
        let watched = WatchedPorts::new(&[25]);
        let mut syns = 0;
        for (f, k) in mix.frames.iter().zip(&mix.kinds) {
            let p = parse(f, &watched);
            match k {
                Kind::Malformed => assert!(p.outcome.is_malformed(), "{k:?} {p:?}"),
                Kind::Syn25 | Kind::Syn25Blocked | Kind::Syn25Unowned => {
                    assert_eq!(p.outcome, Outcome::WatchedSyn);
                    syns += 1;
                }
                Kind::SmtpData => assert_eq!(p.outcome, Outcome::WatchedOther),
                Kind::Arp => assert_eq!(p.outcome, Outcome::NonIp),
                _ => assert_eq!(p.outcome, Outcome::OtherIp, "{k:?}"),
            }
            assert!(f.len() >= 60 || *k == Kind::Malformed);
        }
        assert_eq!(syns, 51);
    }

    #[test]
    fn imix_sizes() {
        let mix = generate(&MixSpec {
            sizes: Sizes::Imix,
            ..MixSpec::default()
        });
        assert!(mix.frames.iter().any(|f| f.len() == 1514));
        assert!(mix.frames.iter().all(|f| f.len() <= 1514 + 8));
        let mean = mix.mean_wire_size();
        assert!((250.0..400.0).contains(&mean), "{mean}");
    }

    #[test]
    fn busy_mix_has_fifteen_percent_syns_from_a_thousand_customers() {
        let spec = MixSpec {
            frames: 8192,
            syn_pct: 15.0,
            mailers: 1000,
            layout: LayoutKind::Billing,
            ..MixSpec::default()
        };
        let mix = generate(&spec);
        let layout = Layout::new(LayoutKind::Billing, spec.customers);
        let c =
            synwall_dataplane::classify::Classifier::build(1001, layout.prefixes(true)).unwrap();
        let watched = WatchedPorts::new(&[25]);
        let mut senders = HashSet::new();
        let mut syns = 0;
        for f in &mix.frames {
            let p = parse(f, &watched);
            if p.outcome == Outcome::WatchedSyn {
                syns += 1;
                if let Some(id) = p.src.and_then(|s| c.lookup(s)) {
                    senders.insert(id);
                }
            }
        }
        assert_eq!(syns, 1229, "{}", mix.describe());
        assert!(senders.len() > 600, "{}", senders.len());
        // The default mix is what it always was.
        assert_eq!(generate(&MixSpec::default()).count(Kind::Syn25Blocked), 17);
    }
}
