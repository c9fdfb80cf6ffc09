//! Builds a profile's traffic as a trace: every frame (Ethernet, no FCS) in
//! the order of its time on the profile's time line, with what it is, so that
//! the expected verdicts follow from the profile alone.
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::{tcp_flags, TPID_8021AD, TPID_8021Q};

use crate::customers::{v4_host, v6_host};
use crate::profile::{FrameSize, Pattern, Profile, Sources};
use crate::rng::Rng;

/// Background kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BgKind {
    /// Established TCP to ports other than 80/443/25.
    Tcp,
    /// Established HTTP/HTTPS (80, 443).
    Http,
    /// UDP: DNS queries.
    UdpDns,
    /// Established SMTP (ACK/PSH to port 25, not a SYN).
    SmtpData,
    /// ICMP echo.
    Icmp,
    /// A damaged frame.
    Malformed,
}

impl BgKind {
    pub const ALL: [BgKind; 6] = [
        BgKind::Tcp,
        BgKind::Http,
        BgKind::UdpDns,
        BgKind::SmtpData,
        BgKind::Icmp,
        BgKind::Malformed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BgKind::Tcp => "tcp",
            BgKind::Http => "http",
            BgKind::UdpDns => "udp_dns",
            BgKind::SmtpData => "smtp_data",
            BgKind::Icmp => "icmp",
            BgKind::Malformed => "malformed",
        }
    }
}

/// What a frame of the trace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// A SYN to a watched port from the profile's customer with this index.
    Syn(usize),
    /// Background.
    Background(BgKind),
}

/// A profile's frames in time order.
#[derive(Debug, Clone)]
pub struct Trace {
    pub frames: Vec<Vec<u8>>,
    pub labels: Vec<Label>,
    /// Seconds on the profile's time line, per frame.
    pub times: Vec<f64>,
    /// Distinct (src, dst, proto, sport, dport).
    pub flows: usize,
    pub v6: usize,
    pub vlan: usize,
    pub qinq: usize,
}

impl Trace {
    /// SYNs of customer `c`.
    pub fn syns_of(&self, c: usize) -> u64 {
        self.labels.iter().filter(|&&l| l == Label::Syn(c)).count() as u64
    }

    /// Background frames of `kind`.
    pub fn background_of(&self, kind: BgKind) -> u64 {
        self.labels
            .iter()
            .filter(|&&l| l == Label::Background(kind))
            .count() as u64
    }

    /// Mean frame size on the wire (with FCS).
    pub fn mean_wire_size(&self) -> f64 {
        let total: usize = self.frames.iter().map(|f| f.len().max(60) + 4).sum();
        total as f64 / self.frames.len().max(1) as f64
    }

    /// Length of the time line, seconds.
    pub fn span(&self) -> f64 {
        self.times.last().copied().unwrap_or(0.0)
    }

    /// One line for logs.
    pub fn describe(&self, profile: &Profile) -> String {
        let mut s = format!(
            "{} frames, mean {:.1} B on the wire, {} flows, {} IPv6, {} 802.1Q, {} QinQ, {:.2} s time line;",
            self.frames.len(),
            self.mean_wire_size(),
            self.flows,
            self.v6,
            self.vlan,
            self.qinq,
            self.span()
        );
        for (i, c) in profile.customers.iter().enumerate() {
            s.push_str(&format!(" {}={} SYNs", c.name, self.syns_of(i)));
        }
        for k in BgKind::ALL {
            s.push_str(&format!(" {}={}", k.name(), self.background_of(k)));
        }
        s
    }
}

const TCP_PORTS: [u16; 6] = [22, 993, 3306, 5432, 8080, 8443];

struct Builder<'a> {
    profile: &'a Profile,
    rng: Rng,
    flows: HashSet<(IpAddr, IpAddr, u8, u16, u16)>,
    imix_at: usize,
}

impl Builder<'_> {
    fn note(&mut self, s: IpAddr, d: IpAddr, proto: u8, sport: u16, dport: u16) {
        self.flows.insert((s, d, proto, sport, dport));
    }

    /// Wire size for a data frame.
    fn data_size(&mut self, sizes: FrameSize) -> usize {
        match sizes {
            FrameSize::Min => 64,
            FrameSize::Fixed(n) => usize::from(n),
            FrameSize::Imix => {
                self.imix_at += 1;
                [64, 570, 64, 64, 1518, 64, 570, 64, 64, 570, 64, 570][self.imix_at % 12]
            }
        }
    }

    fn sized(b: FrameBuilder, wire: usize) -> Vec<u8> {
        let bare = b.build();
        let target = wire - 4;
        if bare.len() < target {
            let payload: Vec<u8> = (0..target - bare.len()).map(|i| i as u8).collect();
            b.payload(&payload).build()
        } else {
            b.pad_to(60).build()
        }
    }

    /// A background source that belongs to none of the profile's customers.
    fn bg_source(&mut self, v6: bool) -> IpAddr {
        loop {
            let i = self.rng.below(1000) as u32;
            let ip: IpAddr = if v6 {
                v6_host(i, 1 + self.rng.below(0xffff)).into()
            } else {
                v4_host(i, 1 + self.rng.below(14) as u32).into()
            };
            if self.profile.customer_of(ip).is_none() {
                return ip;
            }
        }
    }

    fn dst(&mut self, v6: bool) -> IpAddr {
        if v6 {
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
            .into()
        } else {
            Ipv4Addr::from(0x5db8_0000u32 + self.rng.below(1 << 16) as u32).into()
        }
    }

    fn l4(s: IpAddr, d: IpAddr, tcp: Option<u8>, sport: u16, dport: u16) -> FrameBuilder {
        match (s, d, tcp) {
            (IpAddr::V4(s), IpAddr::V4(d), Some(f)) => FrameBuilder::tcp_v4(s, d, sport, dport, f),
            (IpAddr::V4(s), IpAddr::V4(d), None) => FrameBuilder::udp_v4(s, d, sport, dport),
            (IpAddr::V6(s), IpAddr::V6(d), Some(f)) => FrameBuilder::tcp_v6(s, d, sport, dport, f),
            (IpAddr::V6(s), IpAddr::V6(d), None) => FrameBuilder::udp_v6(s, d, sport, dport),
            // Families always match: both come from the same `v6` flag.
            (s, _, tcp) => Self::l4(s, s, tcp, sport, dport),
        }
    }

    fn syn(&mut self, c: usize, k: u64) -> Vec<u8> {
        let cust = &self.profile.customers[c];
        let n_pref = cust.prefixes.len() as u64;
        let (prefix, host) = match cust.pattern {
            // A few addresses of the first prefix, hammering.
            Pattern::Hammer => (cust.prefixes[0], k % 4),
            // Every SYN from another address, over all the prefixes.
            Pattern::Trickle => (cust.prefixes[(k % n_pref) as usize], k / n_pref),
            // A handful of mail servers, one per prefix in turn.
            Pattern::Steady => (cust.prefixes[(k % n_pref) as usize], (k / n_pref) % 8),
        };
        let s = prefix.source(host);
        let d = self.dst(s.is_ipv6());
        let sport = 1024 + ((k * 7919 + c as u64 * 31) % 64000) as u16;
        let port = self.profile.appliance.ports[(k as usize) % self.profile.appliance.ports.len()];
        self.note(s, d, 6, sport, port);
        let b = Self::l4(s, d, Some(tcp_flags::SYN), sport, port)
            .tcp_options(&[2, 4, 0x05, 0xb4])
            .seq(self.rng.next_u64() as u32);
        match self.profile.sizes {
            FrameSize::Fixed(n) => b.pad_to(usize::from(n) - 4).build(),
            _ => b.pad_to(60).build(),
        }
    }

    fn background(&mut self, kind: BgKind, i: u64, pool: &[BgFlow], v6: bool, tags: u8) -> Vec<u8> {
        let sizes = self.profile.background.sizes;
        let vid = 10 + (i % 200) as u16;
        let tag = |b: FrameBuilder| match tags {
            1 => b.vlan(TPID_8021Q, vid),
            2 => b.vlan(TPID_8021AD, 100 + vid % 8).vlan(TPID_8021Q, vid),
            _ => b,
        };
        match kind {
            BgKind::Tcp | BgKind::Http | BgKind::SmtpData => {
                let f = pool[self.rng.below(pool.len() as u64) as usize];
                let (s, d) = if v6 {
                    (f.src6, f.dst6)
                } else {
                    (f.src4, f.dst4)
                };
                let dport = match kind {
                    BgKind::Http => {
                        if f.pick.is_multiple_of(3) {
                            80
                        } else {
                            443
                        }
                    }
                    BgKind::SmtpData => 25,
                    _ => TCP_PORTS[(f.pick % TCP_PORTS.len() as u64) as usize],
                };
                let flags = match self.rng.below(20) {
                    0 => tcp_flags::FIN | tcp_flags::ACK,
                    1..=9 => tcp_flags::ACK,
                    _ => tcp_flags::ACK | tcp_flags::PSH,
                };
                self.note(s, d, 6, f.sport, dport);
                let b = Self::l4(s, d, Some(flags), f.sport, dport)
                    .seq(self.rng.next_u64() as u32)
                    .ack(self.rng.next_u64() as u32);
                let wire = self.data_size(sizes);
                Self::sized(tag(b), wire)
            }
            BgKind::UdpDns => {
                let s = self.bg_source(v6);
                let d: IpAddr = if v6 {
                    "2001:4860:4860::8888"
                        .parse::<Ipv6Addr>()
                        .map_or(s, IpAddr::V6)
                } else {
                    Ipv4Addr::new(8, 8, (i % 4) as u8, 8).into()
                };
                let sport = 32768 + self.rng.below(28000) as u16;
                self.note(s, d, 17, sport, 53);
                let mut q = vec![(i >> 8) as u8, i as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
                q.extend_from_slice(b"\x03www\x01a\x02io\x00\x00\x01\x00\x01");
                let b = tag(Self::l4(s, d, None, sport, 53).payload(&q));
                match sizes {
                    FrameSize::Fixed(n) => b.pad_to(usize::from(n) - 4).build(),
                    _ => b.pad_to(60).build(),
                }
            }
            BgKind::Icmp => {
                let s = match self.bg_source(false) {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(_) => Ipv4Addr::new(10, 0, 0, 1),
                };
                let d = match self.dst(false) {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(_) => Ipv4Addr::new(93, 184, 0, 1),
                };
                self.note(s.into(), d.into(), 1, 0, 0);
                let echo = [8, 0, 0xf7, 0xff, 0, 1, 0, 0];
                let b = tag(FrameBuilder::ip_v4(s, d, 1).payload(&echo));
                match sizes {
                    FrameSize::Fixed(n) => b.pad_to(usize::from(n) - 4).build(),
                    _ => b.pad_to(60).build(),
                }
            }
            BgKind::Malformed => {
                let s = match self.bg_source(false) {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(_) => Ipv4Addr::new(10, 0, 0, 1),
                };
                let d = Ipv4Addr::new(93, 184, 1, (i % 250) as u8);
                let b = FrameBuilder::tcp_v4(s, d, 40000 + (i % 1000) as u16, 443, tcp_flags::ACK);
                let l3 = 14 + 4 * usize::from(tags);
                match i % 6 {
                    0 => {
                        let mut f = b.build();
                        f.truncate(10);
                        f
                    }
                    1 => b
                        .vlan(TPID_8021AD, 7)
                        .vlan(TPID_8021Q, 8)
                        .vlan(TPID_8021Q, vid)
                        .pad_to(60)
                        .build(),
                    2 => {
                        let mut f = tag(b).pad_to(60).build();
                        f[l3] = 0x43;
                        f
                    }
                    3 => {
                        let mut f = tag(b).pad_to(60).build();
                        f[l3 + 2..l3 + 4].copy_from_slice(&1500u16.to_be_bytes());
                        f
                    }
                    4 => {
                        let mut f = tag(b).pad_to(60).build();
                        f[l3 + 20 + 12] = 0x30;
                        f
                    }
                    _ => tag(b.truncate_l4(10)).pad_to(60).build(),
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct BgFlow {
    src4: IpAddr,
    dst4: IpAddr,
    src6: IpAddr,
    dst6: IpAddr,
    sport: u16,
    pick: u64,
}

/// Builds the trace of `profile`.
pub fn build(profile: &Profile) -> Trace {
    let mut b = Builder {
        profile,
        rng: Rng::new(profile.seed),
        flows: HashSet::new(),
        imix_at: 0,
    };
    let bg = &profile.background;
    // A pool of established flows, at least 256 so that RSS has enough to
    // spread (RFC 2544 asks for 254 per direction).
    let pool: Vec<BgFlow> = (0..512)
        .map(|_| {
            let (src4, dst4) = (b.bg_source(false), b.dst(false));
            let (src6, dst6) = (b.bg_source(true), b.dst(true));
            BgFlow {
                src4,
                dst4,
                src6,
                dst6,
                sport: 32768 + b.rng.below(28000) as u16,
                pick: b.rng.next_u64(),
            }
        })
        .collect();
    let mut events: Vec<(f64, Label, Vec<u8>)> = Vec::new();
    for (c, cust) in profile.customers.iter().enumerate() {
        for k in 0..cust.count {
            let t = cust.start + k as f64 / cust.rate;
            events.push((t, Label::Syn(c), b.syn(c, k)));
        }
    }
    let weights = [
        (BgKind::Tcp, bg.tcp),
        (BgKind::Http, bg.http),
        (BgKind::UdpDns, bg.udp_dns),
        (BgKind::SmtpData, bg.smtp_data),
        (BgKind::Icmp, bg.icmp),
    ];
    let total: f64 = weights.iter().map(|w| w.1).sum();
    let (mut v6, mut vlan, mut qinq) = (0, 0, 0);
    for i in 0..bg.frames {
        let r = b.rng.next_u64() as f64 / u64::MAX as f64;
        let kind = if r * 100.0 < bg.malformed_pct {
            BgKind::Malformed
        } else {
            let mut x = b.rng.next_u64() as f64 / u64::MAX as f64 * total;
            let mut pick = BgKind::Tcp;
            for &(k, w) in &weights {
                if w > 0.0 {
                    pick = k;
                    if x < w {
                        break;
                    }
                    x -= w;
                }
            }
            pick
        };
        let is_v6 = matches!(kind, BgKind::Tcp | BgKind::Http | BgKind::UdpDns)
            && (b.rng.next_u64() as f64 / u64::MAX as f64) * 100.0 < bg.ipv6_pct;
        let t = (b.rng.next_u64() as f64 / u64::MAX as f64) * 100.0;
        let tags = if t < bg.vlan_pct {
            1
        } else if t < bg.vlan_pct + bg.qinq_pct {
            2
        } else {
            0
        };
        let frame = b.background(kind, i, &pool, is_v6, tags);
        if kind != BgKind::Malformed {
            v6 += usize::from(is_v6);
            vlan += usize::from(tags == 1);
            qinq += usize::from(tags == 2);
        }
        events.push((i as f64 / bg.rate, Label::Background(kind), frame));
    }
    // Stable: frames at the same time keep customer order, then background.
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut trace = Trace {
        frames: Vec::with_capacity(events.len()),
        labels: Vec::with_capacity(events.len()),
        times: Vec::with_capacity(events.len()),
        flows: b.flows.len(),
        v6,
        vlan,
        qinq,
    };
    for (t, l, f) in events {
        trace.times.push(t);
        trace.labels.push(l);
        trace.frames.push(f);
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use synwall_dataplane::checksum::internet_checksum;
    use synwall_dataplane::parse::{parse, Outcome, WatchedPorts};

    fn profile(extra: &str) -> Profile {
        let text = format!(
            r#"
[[customer]]
name = "spam"
prefixes = ["198.51.100.0/24", "2001:db8:1::/48"]
pattern = "hammer"
rate = 1000
count = 300
limit = 100
[[customer]]
name = "trick"
prefixes = ["203.0.113.0/28", "2001:db8:2::/48"]
pattern = "trickle"
rate = 5
count = 20
[background]
frames = 2000
ipv6_pct = 10
malformed_pct = 2
{extra}
"#
        );
        Profile::parse(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn every_frame_is_what_its_label_says() {
        let p = profile("");
        let t = build(&p);
        assert_eq!(t.frames.len(), 2320);
        assert_eq!(t.syns_of(0), 300);
        assert_eq!(t.syns_of(1), 20);
        assert!(t.flows >= 254, "{}", t.describe(&p));
        assert!(
            t.v6 > 50 && t.vlan > 100 && t.qinq > 20,
            "{}",
            t.describe(&p)
        );
        let watched = WatchedPorts::new(&[25]);
        for (f, l) in t.frames.iter().zip(&t.labels) {
            let parsed = parse(f, &watched);
            match l {
                Label::Syn(c) => {
                    assert_eq!(parsed.outcome, Outcome::WatchedSyn);
                    let src = parsed.src.unwrap().to_ip();
                    assert_eq!(p.customer_of(src), Some(*c));
                }
                Label::Background(BgKind::Malformed) => {
                    assert!(parsed.outcome.is_malformed(), "{parsed:?}")
                }
                Label::Background(BgKind::SmtpData) => {
                    assert_eq!(parsed.outcome, Outcome::WatchedOther)
                }
                Label::Background(_) => assert_eq!(parsed.outcome, Outcome::OtherIp, "{l:?}"),
            }
            if !matches!(l, Label::Background(BgKind::Malformed)) {
                assert!(f.len() >= 60);
            }
        }
        // The trickle spreads over addresses; the hammer uses a few.
        let srcs = |c: usize| {
            t.frames
                .iter()
                .zip(&t.labels)
                .filter(|(_, l)| **l == Label::Syn(c))
                .map(|(f, _)| parse(f, &watched).src.unwrap())
                .collect::<HashSet<_>>()
                .len()
        };
        assert_eq!(srcs(0), 4);
        assert_eq!(srcs(1), 20);
    }

    #[test]
    fn checksums_are_right() {
        let p = profile("");
        let t = build(&p);
        let mut checked = 0;
        for (f, l) in t.frames.iter().zip(&t.labels) {
            // Untagged IPv4 frames: header checksum sums to zero.
            if *l != Label::Background(BgKind::Malformed) && f[12..14] == [0x08, 0x00] {
                let ihl = usize::from(f[14] & 0x0f) * 4;
                assert_eq!(internet_checksum(&f[14..14 + ihl]), 0, "{l:?}");
                let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
                let proto = f[23];
                if proto == 6 || proto == 17 {
                    let seg = &f[14 + ihl..14 + total];
                    let src: [u8; 4] = f[26..30].try_into().unwrap();
                    let dst: [u8; 4] = f[30..34].try_into().unwrap();
                    let sum = synwall_dataplane::checksum::l4_checksum_v4(src, dst, proto, seg);
                    assert_eq!(sum, 0, "L4 checksum over a checksummed segment is 0: {l:?}");
                }
                checked += 1;
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn sizes_follow_the_profile() {
        let p = profile("sizes = \"imix\"");
        let t = build(&p);
        assert!(t.frames.iter().any(|f| f.len() == 1514));
        assert!(t.frames.iter().any(|f| f.len() == 566));
        let p = profile("sizes = 256");
        let t = build(&p);
        for (f, l) in t.frames.iter().zip(&t.labels) {
            if matches!(l, Label::Background(BgKind::Tcp | BgKind::Http)) {
                assert!(f.len() >= 252, "{}", f.len());
            }
        }
    }
}
