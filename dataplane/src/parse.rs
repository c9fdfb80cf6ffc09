//! Frame parser: one Ethernet frame in, exactly one [`Outcome`] out.
//!
//! This runs on every packet of the inside port, so it reads the frame in
//! place (`&[u8]`, no copies, no allocation), never panics (every read goes
//! through `get()`), and decides only what the worker needs: is this a new
//! connection (`SYN && !ACK`) to a watched TCP port, other traffic to a watched
//! port, other IP traffic, non-IP traffic, something that hides its TCP flags
//! behind fragmentation, or a malformed frame (and why).

use std::net::IpAddr;

/// EtherType of IPv4.
const ETH_P_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
const ETH_P_IPV6: u16 = 0x86dd;
/// 802.1Q customer VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// 802.1ad service VLAN tag (QinQ outer tag).
pub const TPID_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ tag some switches still emit.
pub const TPID_QINQ_LEGACY: u16 = 0x9100;

/// Length of an untagged Ethernet header (no FCS: DPDK strips it).
pub const ETH_HLEN: usize = 14;
/// Length of one VLAN tag (TPID + TCI).
const VLAN_HLEN: usize = 4;
/// At most this many stacked VLAN tags (QinQ) are accepted.
const MAX_VLAN_TAGS: usize = 2;

/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

const IPV4_MIN_HLEN: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HLEN: usize = 40;
/// Length of a TCP header without options.
pub const TCP_MIN_HLEN: usize = 20;

/// IPv4 "more fragments" flag in the flags/fragment-offset word.
const IPV4_MF: u16 = 0x2000;
/// IPv4 fragment offset mask (in 8-byte units).
const IPV4_FRAG_OFFSET: u16 = 0x1fff;

/// IPv6 extension header numbers the parser walks.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_ESP: u8 = 50;
const IPV6_AUTH: u8 = 51;
const IPV6_NO_NEXT: u8 = 59;
const IPV6_DEST_OPTS: u8 = 60;
const IPV6_MOBILITY: u8 = 135;
const IPV6_HIP: u8 = 139;
const IPV6_SHIM6: u8 = 140;
/// Longest extension header chain accepted: real traffic uses two or three;
/// a long chain is an evasion attempt or a way to burn parser cycles.
const IPV6_MAX_EXT_HEADERS: usize = 8;

/// TCP flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers: opens a connection.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
}

/// What the parser watches: a set of TCP destination ports, as a
/// 65536-bit bitmap so that a lookup is one load and one shift whatever the
/// number of ports, and the destinations exempt from watching (the
/// provider's own relays), checked only for TCP to a watched port.
///
/// In front of the bitmap sits a one-word filter, bit `port % 64` of every
/// watched port: most TCP goes to ports the filter already rules out, so a
/// frame to an unwatched port reads no word of the 8 KiB bitmap (whose
/// scattered loads `perf annotate` put at a tenth of a busy mix's parse).
#[derive(Clone, PartialEq, Eq)]
pub struct WatchedPorts {
    /// Bit `p % 64` set for every watched port `p`.
    filter: u64,
    bits: [u64; 1024],
    exempt: ExemptDestinations,
}

/// Destination prefixes whose watched TCP is [`Outcome::ExemptDestination`]:
/// (network, mask) per family, host order; a handful, scanned in order.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
struct ExemptDestinations {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl ExemptDestinations {
    #[inline]
    fn v4(&self, dst: u32) -> bool {
        self.v4.iter().any(|&(net, mask)| dst & mask == net)
    }

    #[inline]
    fn v6(&self, dst: u128) -> bool {
        self.v6.iter().any(|&(net, mask)| dst & mask == net)
    }
}

impl WatchedPorts {
    /// A set holding exactly `ports` (duplicates are harmless).
    pub fn new(ports: &[u16]) -> Self {
        let mut set = Self {
            filter: 0,
            bits: [0; 1024],
            exempt: ExemptDestinations::default(),
        };
        for &port in ports {
            set.insert(port);
        }
        set
    }

    /// Adds `port` to the set.
    pub fn insert(&mut self, port: u16) {
        if let Some(word) = self.bits.get_mut(usize::from(port >> 6)) {
            *word |= 1 << (port & 63);
            self.filter |= 1 << (port & 63);
        }
    }

    /// Whether `port` is watched.
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.filter >> (port & 63) & 1 == 1
            && self
                .bits
                .get(usize::from(port >> 6))
                .is_some_and(|word| word >> (port & 63) & 1 == 1)
    }

    /// The watched ports, ascending (for display and config round trips).
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=u16::MAX).filter(move |&p| self.contains(p))
    }

    /// The same ports, with TCP to `destinations` (network address and
    /// prefix length; host bits are ignored) exempt: parsed as
    /// [`Outcome::ExemptDestination`], never counted or blocked.
    pub fn exempting(mut self, destinations: impl IntoIterator<Item = (IpAddr, u8)>) -> Self {
        for (addr, len) in destinations {
            match addr {
                IpAddr::V4(a) => {
                    let mask = u32::MAX
                        .checked_shl(32 - u32::from(len.min(32)))
                        .unwrap_or(0);
                    self.exempt.v4.push((u32::from(a) & mask, mask));
                }
                IpAddr::V6(a) => {
                    let mask = u128::MAX
                        .checked_shl(128 - u32::from(len.min(128)))
                        .unwrap_or(0);
                    self.exempt.v6.push((u128::from(a) & mask, mask));
                }
            }
        }
        self
    }

    /// Whether watched TCP from this frame's IP layer to `dst` is exempt.
    #[inline]
    fn exempts(&self, dst: SrcAddr) -> bool {
        match dst {
            SrcAddr::V4(a) => self.exempt.v4(a),
            SrcAddr::V6(a) => self.exempt.v6(a),
        }
    }

    /// `parsed` with its outcome turned into [`Outcome::ExemptDestination`]
    /// when it is watched TCP to an exempt destination.
    #[inline(always)]
    fn exempt_if(&self, mut parsed: Parsed, dst: SrcAddr) -> Parsed {
        if matches!(parsed.outcome, Outcome::WatchedSyn | Outcome::WatchedOther)
            && self.exempts(dst)
        {
            parsed.outcome = Outcome::ExemptDestination;
        }
        parsed
    }
}

impl Default for WatchedPorts {
    /// The empty set: nothing is watched.
    fn default() -> Self {
        Self::new(&[])
    }
}

impl std::fmt::Debug for WatchedPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Why a frame was judged malformed. Each reason is counted separately so an
/// operator can tell a broken NIC or tunnel from an attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than an Ethernet header, or a VLAN tag is cut off.
    TruncatedL2,
    /// More than two stacked VLAN tags.
    VlanStackTooDeep,
    /// IPv4 header: wrong version, IHL < 5, or the header runs past the frame.
    BadIpv4Header,
    /// IPv4 total length shorter than the header or longer than the frame.
    BadIpv4Length,
    /// IPv6 header: wrong version or shorter than 40 bytes.
    BadIpv6Header,
    /// IPv6 payload length longer than the frame, or a jumbogram.
    BadIpv6Length,
    /// IPv6 extension header chain too long, out of order, or past the payload.
    BadIpv6Chain,
    /// Fewer than 20 bytes of TCP in an unfragmented packet.
    TruncatedL4,
    /// TCP data offset below 5 or past the end of the segment.
    BadTcpHeader,
}

impl Malformed {
    /// Number of malformation reasons.
    pub const COUNT: usize = 9;

    /// Every reason, in index order.
    pub const fn all() -> [Malformed; Self::COUNT] {
        [
            Malformed::TruncatedL2,
            Malformed::VlanStackTooDeep,
            Malformed::BadIpv4Header,
            Malformed::BadIpv4Length,
            Malformed::BadIpv6Header,
            Malformed::BadIpv6Length,
            Malformed::BadIpv6Chain,
            Malformed::TruncatedL4,
            Malformed::BadTcpHeader,
        ]
    }

    /// Dense index in `0..COUNT`, for counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// snake_case name used in metrics and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Malformed::TruncatedL2 => "truncated_l2",
            Malformed::VlanStackTooDeep => "vlan_stack_too_deep",
            Malformed::BadIpv4Header => "bad_ipv4_header",
            Malformed::BadIpv4Length => "bad_ipv4_length",
            Malformed::BadIpv6Header => "bad_ipv6_header",
            Malformed::BadIpv6Length => "bad_ipv6_length",
            Malformed::BadIpv6Chain => "bad_ipv6_chain",
            Malformed::TruncatedL4 => "truncated_l4",
            Malformed::BadTcpHeader => "bad_tcp_header",
        }
    }
}

/// What the parser concluded about a frame. Every frame gets exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// ARP, LLDP, any non-IPv4/IPv6 ethertype.
    NonIp,
    /// IP that is not TCP to a watched port: UDP, ICMP, TCP to other ports,
    /// ESP, no-next-header, non-first fragments.
    OtherIp,
    /// TCP with SYN set and ACK clear to a watched destination port
    /// (SYN+FIN and SYN+RST count here too: they still open state somewhere).
    WatchedSyn,
    /// TCP to a watched port that is not such a SYN (established traffic).
    WatchedOther,
    /// A TCP fragment that hides whether it is a SYN: a first fragment too
    /// short for a full TCP header, or an offset-8-bytes fragment that could
    /// overwrite the flags on reassembly (RFC 1858).
    FragmentEvasive,
    /// TCP to a watched port (a SYN or not) at one of the provider's exempt
    /// destinations (`detect.exempt_destinations`): forwarded, not counted
    /// against the customer, never blocked.
    ExemptDestination,
    /// The frame is malformed, for the given reason.
    Malformed(Malformed),
}

impl Outcome {
    /// Number of distinct outcomes (each malformation reason counts as one).
    pub const COUNT: usize = 6 + Malformed::COUNT;

    /// Every outcome, in index order.
    pub const fn all() -> [Outcome; Self::COUNT] {
        use Malformed::*;
        [
            Outcome::NonIp,
            Outcome::OtherIp,
            Outcome::WatchedSyn,
            Outcome::WatchedOther,
            Outcome::FragmentEvasive,
            Outcome::ExemptDestination,
            Outcome::Malformed(TruncatedL2),
            Outcome::Malformed(VlanStackTooDeep),
            Outcome::Malformed(BadIpv4Header),
            Outcome::Malformed(BadIpv4Length),
            Outcome::Malformed(BadIpv6Header),
            Outcome::Malformed(BadIpv6Length),
            Outcome::Malformed(BadIpv6Chain),
            Outcome::Malformed(TruncatedL4),
            Outcome::Malformed(BadTcpHeader),
        ]
    }

    /// Dense index in `0..COUNT`, for per-core counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        match self {
            Outcome::NonIp => 0,
            Outcome::OtherIp => 1,
            Outcome::WatchedSyn => 2,
            Outcome::WatchedOther => 3,
            Outcome::FragmentEvasive => 4,
            Outcome::ExemptDestination => 5,
            Outcome::Malformed(m) => 6 + m.index(),
        }
    }

    /// snake_case name used in metrics, JSON summaries and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::NonIp => "non_ip",
            Outcome::OtherIp => "other_ip",
            Outcome::WatchedSyn => "syn_watched",
            Outcome::WatchedOther => "watched_other",
            Outcome::FragmentEvasive => "fragment_evasive",
            Outcome::ExemptDestination => "exempt_destination",
            Outcome::Malformed(m) => match m {
                Malformed::TruncatedL2 => "malformed_truncated_l2",
                Malformed::VlanStackTooDeep => "malformed_vlan_stack_too_deep",
                Malformed::BadIpv4Header => "malformed_bad_ipv4_header",
                Malformed::BadIpv4Length => "malformed_bad_ipv4_length",
                Malformed::BadIpv6Header => "malformed_bad_ipv6_header",
                Malformed::BadIpv6Length => "malformed_bad_ipv6_length",
                Malformed::BadIpv6Chain => "malformed_bad_ipv6_chain",
                Malformed::TruncatedL4 => "malformed_truncated_l4",
                Malformed::BadTcpHeader => "malformed_bad_tcp_header",
            },
        }
    }

    /// Whether this outcome is one of the malformations.
    #[inline]
    pub const fn is_malformed(self) -> bool {
        matches!(self, Outcome::Malformed(_))
    }
}

/// Source address of an IP packet, as a host-order number so the classifier
/// can do prefix lookups without re-reading the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrcAddr {
    /// IPv4 source, host order.
    V4(u32),
    /// IPv6 source, host order.
    V6(u128),
}

impl SrcAddr {
    /// The address as a std `IpAddr` (for logs and events, not the fast path).
    pub fn to_ip(self) -> std::net::IpAddr {
        match self {
            SrcAddr::V4(a) => std::net::Ipv4Addr::from(a).into(),
            SrcAddr::V6(a) => std::net::Ipv6Addr::from(a).into(),
        }
    }
}

/// The parser's answer for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The one outcome of this frame.
    pub outcome: Outcome,
    /// The source address, set once the fixed IP header and its length field
    /// were valid (so also for `OtherIp`, `FragmentEvasive`, IPv6 chain and
    /// TCP malformations): a blocked customer's malformed SYNs are still theirs.
    pub src: Option<SrcAddr>,
    /// Offset of the IP header (after VLAN tags); 0 if the frame is too short.
    pub l3_offset: u16,
    /// Offset of the TCP/UDP/other upper-layer header, 0 if there is none in
    /// this frame (non-IP, malformed IP, non-first fragment, ESP, no-next-header)
    /// or the TCP header is truncated or malformed.
    pub l4_offset: u16,
    /// Length of the upper-layer segment as bounded by the IP length fields
    /// (excludes Ethernet padding); 0 when `l4_offset` is 0.
    pub l4_len: u16,
    /// TCP flags byte, 0 unless a complete TCP header was read.
    pub tcp_flags: u8,
    /// The packet is a first fragment whose TCP header was complete (it is
    /// classified like unfragmented TCP, but must not be answered with a RST).
    pub fragment: bool,
}

impl Parsed {
    #[inline]
    pub(crate) const fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            src: None,
            l3_offset: 0,
            l4_offset: 0,
            l4_len: 0,
            tcp_flags: 0,
            fragment: false,
        }
    }
}

/// The big-endian `u16` at `at`, if `b` holds it.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

/// The big-endian `u32` at `at`, if `b` holds it.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[inline]
fn be128(b: &[u8], at: usize) -> Option<u128> {
    let bytes: [u8; 16] = b.get(at..at.checked_add(16)?)?.try_into().ok()?;
    Some(u128::from_be_bytes(bytes))
}

/// Offsets as u16: frames are far below 64 KiB in practice; an offset that
/// does not fit is reported by the caller as a malformation.
#[inline]
fn off16(v: usize) -> Option<u16> {
    u16::try_from(v).ok()
}

/// Where the upper-layer segment sits and whether it is a fragment.
#[derive(Clone, Copy)]
enum Fragment {
    /// Not fragmented (or an atomic fragment: offset 0, no MF).
    None,
    /// First fragment (offset 0, MF set): the TCP header may be cut short.
    First,
    /// Fragment at `offset` 8-byte units: carries no upper-layer header.
    Later { offset: u16 },
}

/// Parses one Ethernet frame (without FCS) and classifies it.
///
/// Never panics and never allocates, whatever the input.
#[inline]
pub fn parse(frame: &[u8], watched: &WatchedPorts) -> Parsed {
    match fast_ipv4(frame, watched) {
        Some(v4) => v4.parsed(),
        None => parse_general(frame, 0, watched),
    }
}

/// What decides a frame's fate before its customer is known: its outcome,
/// and its source where the parser could read one. Exactly the `outcome`
/// and `src` of [`parse_chained`]'s answer (a test holds them to it over
/// every benchmark mix and mangled copies of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Triage {
    /// The one outcome of this frame.
    pub outcome: Outcome,
    /// Its source address, as in [`Parsed::src`].
    pub src: Option<SrcAddr>,
    /// `outcome.index()`, worked out where the outcome was: on the fast
    /// path a constant of each branch, not a `match` over the enum.
    index: u8,
}

impl Triage {
    #[inline(always)]
    fn new(outcome: Outcome, src: Option<SrcAddr>) -> Self {
        Triage {
            outcome,
            src,
            index: outcome.index() as u8,
        }
    }

    /// [`Outcome::index`] of the outcome.
    #[inline(always)]
    pub fn index(self) -> usize {
        usize::from(self.index)
    }
}

/// The burst judge's first look at a frame (its first segment `first`,
/// the whole frame `wire_len` bytes): [`parse_chained`] cut down to its
/// outcome and source. The common IPv4 frame builds no [`Parsed`] and
/// writes nothing to memory; every other shape takes the general parser.
#[inline(always)]
pub fn triage(first: &[u8], wire_len: usize, watched: &WatchedPorts) -> Triage {
    if wire_len <= first.len() {
        if let Some(v4) = fast_ipv4(first, watched) {
            return Triage::new(v4.outcome, Some(SrcAddr::V4(v4.src)));
        }
        if let Some(v6) = fast_ipv6(first, watched) {
            return v6;
        }
    }
    // The slow path's answer comes back through its own slot, read out
    // field by field: the fast paths' answers then stay in registers
    // rather than being stored to (and reloaded from) the slot an
    // out-of-line call returning a `Triage` writes.
    let mut slow = Triage::new(Outcome::NonIp, None);
    triage_general(first, wire_len, watched, &mut slow);
    Triage {
        outcome: slow.outcome,
        src: slow.src,
        index: slow.index,
    }
}

/// [`triage`] of every shape the fast paths leave: out of the loop's way.
#[inline(never)]
fn triage_general(first: &[u8], wire_len: usize, watched: &WatchedPorts, out: &mut Triage) {
    let beyond = wire_len.saturating_sub(first.len());
    let parsed = parse_general(first, beyond, watched);
    *out = Triage::new(parsed.outcome, parsed.src);
}

/// The general parser alone, for every frame shape (what [`parse`] falls
/// back to): the reference the fast paths are tested against.
pub fn parse_reference(first: &[u8], wire_len: usize, watched: &WatchedPorts) -> Parsed {
    parse_general(first, wire_len.saturating_sub(first.len()), watched)
}

/// Parses a frame held in a chain of buffers (a jumbo frame received into
/// several mbufs): `first` is the first segment, which holds the headers,
/// and `wire_len` the whole frame's length. Length fields are checked
/// against `wire_len`; headers must lie within `first` (a header split
/// across segments is `truncated_l4`, still attributed to its source).
/// Offsets and `l4_len` in the result stay within `first`.
pub fn parse_chained(first: &[u8], wire_len: usize, watched: &WatchedPorts) -> Parsed {
    match wire_len.checked_sub(first.len()) {
        None | Some(0) => parse(first, watched),
        Some(beyond) => parse_general(first, beyond, watched),
    }
}

/// The common case in one pass: an IPv4 frame, untagged, behind one
/// 802.1Q tag (an inside port that is a trunk tags every frame) or behind
/// an 802.1ad service tag and an 802.1Q one (QinQ), with a
/// 20-byte header, not a fragment, carrying TCP (with a sane data offset)
/// or anything else. Reads one fixed 40-byte window after the Ethernet
/// header, so the compiler checks bounds once. Returns `None` for
/// everything else, which [`parse_general`] handles; where it answers, it
/// answers exactly as `parse_general` would (a property test holds them
/// to it).
#[inline(always)]
fn fast_ipv4(frame: &[u8], watched: &WatchedPorts) -> Option<FastV4> {
    // Ethertype IPv4, behind no tag, one customer tag or a service tag
    // and a customer tag: each with its header's offset a constant, so
    // each checks bounds once.
    match frame.get(12..18)? {
        [0x08, 0x00, ..] => fast_ipv4_at::<ETH_HLEN>(frame, watched),
        [0x81, 0x00, _, _, 0x08, 0x00] => fast_ipv4_at::<{ ETH_HLEN + VLAN_HLEN }>(frame, watched),
        [0x88, 0xa8, _, _, 0x81, 0x00] => match frame.get(20..22)? {
            [0x08, 0x00] => fast_ipv4_at::<{ ETH_HLEN + 2 * VLAN_HLEN }>(frame, watched),
            _ => None,
        },
        _ => None,
    }
}

/// [`triage`]'s fast path for IPv6, in the same shapes as [`fast_ipv4`]
/// (untagged, one 802.1Q tag, 802.1ad + 802.1Q): a frame whose first next
/// header is the upper layer (no extension header) in one buffer, with a
/// whole TCP header if it is TCP. Everything else (extension headers, bad
/// lengths, malformed TCP) is `None`, left to [`parse_general`]; where it
/// answers, it answers as `parse_general` does.
#[inline(always)]
fn fast_ipv6(frame: &[u8], watched: &WatchedPorts) -> Option<Triage> {
    match frame.get(12..18)? {
        [0x86, 0xdd, ..] => fast_ipv6_at::<ETH_HLEN>(frame, watched),
        [0x81, 0x00, _, _, 0x86, 0xdd] => fast_ipv6_at::<{ ETH_HLEN + VLAN_HLEN }>(frame, watched),
        [0x88, 0xa8, _, _, 0x81, 0x00] => match frame.get(20..22)? {
            [0x86, 0xdd] => fast_ipv6_at::<{ ETH_HLEN + 2 * VLAN_HLEN }>(frame, watched),
            _ => None,
        },
        _ => None,
    }
}

/// [`fast_ipv6`] for an IPv6 header at `L3`.
#[inline(always)]
fn fast_ipv6_at<const L3: usize>(frame: &[u8], watched: &WatchedPorts) -> Option<Triage> {
    let h: &[u8; IPV6_HLEN] = frame.get(L3..L3 + IPV6_HLEN)?.try_into().ok()?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let payload = frame.get(L3 + IPV6_HLEN..L3 + IPV6_HLEN + payload_len)?;
    let addr = |at: usize| -> Option<u128> {
        let bytes: [u8; 16] = h.get(at..at + 16)?.try_into().ok()?;
        Some(u128::from_be_bytes(bytes))
    };
    let src = addr(8)?;
    let outcome = match h[6] {
        IPPROTO_TCP => {
            let t: &[u8; TCP_MIN_HLEN] = payload.get(..TCP_MIN_HLEN)?.try_into().ok()?;
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < TCP_MIN_HLEN || doff > payload.len() {
                return None;
            }
            let flags = t[13];
            if !watched.contains(u16::from_be_bytes([t[2], t[3]])) {
                Outcome::OtherIp
            } else if watched.exempt.v6(addr(24)?) {
                Outcome::ExemptDestination
            } else if flags & tcp_flags::SYN != 0 && flags & tcp_flags::ACK == 0 {
                Outcome::WatchedSyn
            } else {
                Outcome::WatchedOther
            }
        }
        // The chain walker's: extension headers, ESP, no next header.
        IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_ESP | IPV6_AUTH | IPV6_NO_NEXT
        | IPV6_DEST_OPTS | IPV6_MOBILITY | IPV6_HIP | IPV6_SHIM6 => return None,
        _ => Outcome::OtherIp,
    };
    Some(Triage::new(outcome, Some(SrcAddr::V6(src))))
}

/// What [`fast_ipv4`] read of a frame: a [`Parsed`] without the fields
/// that are constants of the path. [`triage`] keeps the outcome and the
/// source of it, in registers; [`parse`] builds the whole answer.
#[derive(Clone, Copy)]
struct FastV4 {
    outcome: Outcome,
    src: u32,
    l3: u16,
    l4_len: u16,
    tcp_flags: u8,
}

impl FastV4 {
    #[inline(always)]
    fn parsed(self) -> Parsed {
        Parsed {
            outcome: self.outcome,
            src: Some(SrcAddr::V4(self.src)),
            l3_offset: self.l3,
            l4_offset: self.l3 + IPV4_MIN_HLEN as u16,
            l4_len: self.l4_len,
            tcp_flags: self.tcp_flags,
            fragment: false,
        }
    }
}

/// [`fast_ipv4`] for an IPv4 header at `L3`.
#[inline(always)]
fn fast_ipv4_at<const L3: usize>(frame: &[u8], watched: &WatchedPorts) -> Option<FastV4> {
    let h: &[u8; 40] = frame.get(L3..L3 + 40)?.try_into().ok()?;
    // Version 4 with IHL 5.
    if h[0] != 0x45 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total < IPV4_MIN_HLEN || total > frame.len() - L3 {
        return None;
    }
    // MF set or a fragment offset: the general path judges fragments.
    if u16::from_be_bytes([h[6], h[7]]) & (IPV4_MF | IPV4_FRAG_OFFSET) != 0 {
        return None;
    }
    let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let l4_len = (total - IPV4_MIN_HLEN) as u16;
    let (outcome, tcp_flags) = if h[9] == IPPROTO_TCP {
        let doff = usize::from(h[32] >> 4) * 4;
        if doff < TCP_MIN_HLEN || doff > total - IPV4_MIN_HLEN {
            return None;
        }
        let flags = h[33];
        let outcome = if !watched.contains(u16::from_be_bytes([h[22], h[23]])) {
            Outcome::OtherIp
        } else if watched
            .exempt
            .v4(u32::from_be_bytes([h[16], h[17], h[18], h[19]]))
        {
            Outcome::ExemptDestination
        } else if flags & tcp_flags::SYN != 0 && flags & tcp_flags::ACK == 0 {
            Outcome::WatchedSyn
        } else {
            Outcome::WatchedOther
        };
        (outcome, flags)
    } else {
        (Outcome::OtherIp, 0)
    };
    Some(FastV4 {
        outcome,
        src,
        l3: L3 as u16,
        l4_len,
        tcp_flags,
    })
}

/// Every frame shape: VLAN tags, IPv4 options and fragments, IPv6 chains.
/// `beyond` is how many bytes of the frame follow `frame` in further
/// segments (0 for a frame in one buffer).
#[inline]
fn parse_general(frame: &[u8], beyond: usize, watched: &WatchedPorts) -> Parsed {
    let (ethertype, l3) = match ethernet(frame) {
        Ok(v) => v,
        Err(Malformed::VlanStackTooDeep) => return too_many_tags(frame, beyond, watched),
        Err(m) => return Parsed::new(Outcome::Malformed(m)),
    };
    // l3 is at most 14 + 2*4 = 22 bytes: always fits.
    let l3_offset = off16(l3).unwrap_or(0);
    let ip = frame.get(l3..).unwrap_or(&[]);
    let mut parsed = match ethertype {
        ETH_P_IPV4 => ipv4(ip, beyond, watched),
        ETH_P_IPV6 => ipv6(ip, beyond, watched),
        _ => Parsed::new(Outcome::NonIp),
    };
    parsed.l3_offset = l3_offset;
    if parsed.l4_offset != 0 {
        // l4_offset was relative to the IP header so far.
        match off16(l3 + usize::from(parsed.l4_offset)) {
            Some(off) => parsed.l4_offset = off,
            None => {
                parsed.outcome = Outcome::Malformed(Malformed::BadIpv6Chain);
                parsed.l4_offset = 0;
                parsed.l4_len = 0;
                parsed.tcp_flags = 0;
            }
        }
    }
    parsed
}

/// A frame with more than two VLAN tags is malformed, but its source still
/// counts: look past up to [`MAX_TAGS_SKIPPED`] tags for an IP header and
/// report its source, so a blocked customer's frame is not anonymous.
#[cold]
fn too_many_tags(frame: &[u8], beyond: usize, watched: &WatchedPorts) -> Parsed {
    let mut parsed = Parsed::new(Outcome::Malformed(Malformed::VlanStackTooDeep));
    let mut off = ETH_HLEN;
    let mut ethertype = be16(frame, 12);
    for _ in 0..MAX_TAGS_SKIPPED {
        match ethertype {
            Some(TPID_8021Q | TPID_8021AD | TPID_QINQ_LEGACY) => {
                ethertype = be16(frame, off + 2);
                off += VLAN_HLEN;
            }
            _ => break,
        }
    }
    let ip = frame.get(off..).unwrap_or(&[]);
    parsed.src = match ethertype {
        Some(ETH_P_IPV4) => ipv4(ip, beyond, watched).src,
        Some(ETH_P_IPV6) => ipv6(ip, beyond, watched).src,
        _ => None,
    };
    parsed
}

/// How many VLAN tags [`too_many_tags`] looks past for a source address.
const MAX_TAGS_SKIPPED: usize = 16;

/// Returns the ethertype after at most two VLAN tags and the L3 offset.
#[inline]
fn ethernet(frame: &[u8]) -> Result<(u16, usize), Malformed> {
    let mut ethertype = be16(frame, 12).ok_or(Malformed::TruncatedL2)?;
    let mut off = ETH_HLEN;
    let mut tags = 0;
    while matches!(ethertype, TPID_8021Q | TPID_8021AD | TPID_QINQ_LEGACY) {
        if tags == MAX_VLAN_TAGS {
            return Err(Malformed::VlanStackTooDeep);
        }
        // The tag is TCI (2 bytes) then the next ethertype (2 bytes); the
        // TPID we just read was the previous "ethertype".
        ethertype = be16(frame, off + 2).ok_or(Malformed::TruncatedL2)?;
        off += VLAN_HLEN;
        tags += 1;
    }
    Ok((ethertype, off))
}

/// Parses an IPv4 packet starting at `ip[0]`. Offsets in the result are
/// relative to the IP header.
#[inline]
fn ipv4(ip: &[u8], beyond: usize, watched: &WatchedPorts) -> Parsed {
    let bad = |m| Parsed::new(Outcome::Malformed(m));
    let Some(&vihl) = ip.first() else {
        return bad(Malformed::BadIpv4Header);
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < IPV4_MIN_HLEN || ihl > ip.len() {
        return bad(Malformed::BadIpv4Header);
    }
    // ihl >= 20 and within ip, so these reads succeed; fall back to "bad
    // header" rather than unwrap anyway.
    let (Some(total), Some(frag), Some(&proto), Some(src), Some(dst)) = (
        be16(ip, 2),
        be16(ip, 6),
        ip.get(9),
        be32(ip, 12),
        be32(ip, 16),
    ) else {
        return bad(Malformed::BadIpv4Header);
    };
    let total = usize::from(total);
    // Bytes past `total` are Ethernet padding (a 60-byte minimum frame).
    if total < ihl || total > ip.len() + beyond {
        return Parsed {
            src: Some(SrcAddr::V4(src)),
            ..bad(Malformed::BadIpv4Length)
        };
    }
    let l4 = ip.get(ihl..total.min(ip.len())).unwrap_or(&[]);
    let offset = frag & IPV4_FRAG_OFFSET;
    let fragment = if offset != 0 {
        Fragment::Later { offset }
    } else if frag & IPV4_MF != 0 {
        Fragment::First
    } else {
        Fragment::None
    };
    let mut parsed = watched.exempt_if(upper_layer(proto, l4, fragment, watched), SrcAddr::V4(dst));
    parsed.src = Some(SrcAddr::V4(src));
    if parsed.l4_offset != 0 {
        parsed.l4_offset = off16(ihl).unwrap_or(0);
    }
    parsed
}

/// Parses an IPv6 packet starting at `ip[0]`, walking its extension header
/// chain. Offsets in the result are relative to the IP header.
#[inline]
fn ipv6(ip: &[u8], beyond: usize, watched: &WatchedPorts) -> Parsed {
    let bad = |m| Parsed::new(Outcome::Malformed(m));
    let (Some(&v), Some(payload_len), Some(&first_next), Some(src), Some(dst)) = (
        ip.first(),
        be16(ip, 4),
        ip.get(6),
        be128(ip, 8),
        be128(ip, 24),
    ) else {
        return bad(Malformed::BadIpv6Header);
    };
    if v >> 4 != 6 || ip.len() < IPV6_HLEN {
        return bad(Malformed::BadIpv6Header);
    }
    let src = Some(SrcAddr::V6(src));
    let payload_len = usize::from(payload_len);
    // A zero payload length with a hop-by-hop header is a jumbogram (RFC
    // 2675): its real length hides in an option; no Ethernet frame needs one.
    if IPV6_HLEN + payload_len > ip.len() + beyond
        || (payload_len == 0 && first_next == IPV6_HOP_BY_HOP)
    {
        return Parsed {
            src,
            ..bad(Malformed::BadIpv6Length)
        };
    }
    let payload = ip
        .get(IPV6_HLEN..(IPV6_HLEN + payload_len).min(ip.len()))
        .unwrap_or(&[]);
    let mut parsed = ipv6_chain(first_next, payload, watched, dst);
    parsed.src = src;
    parsed
}

/// Walks the extension header chain of an IPv6 payload and classifies the
/// upper layer. Offsets in the result are relative to the IPv6 header.
#[inline]
fn ipv6_chain(mut next: u8, payload: &[u8], watched: &WatchedPorts, dst: u128) -> Parsed {
    let chain_error = Parsed::new(Outcome::Malformed(Malformed::BadIpv6Chain));
    // A routing header sends the packet on past `dst`: never exempt.
    let mut routed = false;
    let mut pos = 0usize;
    let mut headers = 0usize;
    let mut fragment = Fragment::None;
    loop {
        let len = match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS | IPV6_MOBILITY | IPV6_HIP
            | IPV6_SHIM6 => match payload.get(pos + 1) {
                Some(&l) => (usize::from(l) + 1) * 8,
                None => return chain_error,
            },
            IPV6_AUTH => match payload.get(pos + 1) {
                Some(&l) => (usize::from(l) + 2) * 4,
                None => return chain_error,
            },
            IPV6_FRAGMENT => 8,
            // ESP hides everything after it; no-next-header carries nothing.
            IPV6_ESP | IPV6_NO_NEXT => return Parsed::new(Outcome::OtherIp),
            // The upper layer (TCP, UDP, ICMPv6, anything unknown).
            proto => {
                let l4 = payload.get(pos..).unwrap_or(&[]);
                let mut parsed = upper_layer(proto, l4, fragment, watched);
                if !routed {
                    parsed = watched.exempt_if(parsed, SrcAddr::V6(dst));
                }
                if parsed.l4_offset != 0 {
                    parsed.l4_offset = off16(IPV6_HLEN + pos).unwrap_or(0);
                    if parsed.l4_offset == 0 {
                        return chain_error;
                    }
                }
                return parsed;
            }
        };
        headers += 1;
        routed |= next == IPV6_ROUTING;
        // Hop-by-hop options must come first (RFC 8200 4.1).
        if headers > IPV6_MAX_EXT_HEADERS || (next == IPV6_HOP_BY_HOP && headers != 1) {
            return chain_error;
        }
        let Some(header) = payload.get(pos..pos + len) else {
            return chain_error;
        };
        let Some(&header_next) = header.first() else {
            return chain_error;
        };
        if next == IPV6_FRAGMENT {
            let Some(word) = be16(header, 2) else {
                return chain_error;
            };
            let offset = word >> 3;
            if offset != 0 {
                // A later fragment carries no upper-layer header; judge it
                // by what the first fragment starts with.
                return later_fragment(header_next, offset);
            }
            if word & 1 != 0 {
                fragment = Fragment::First;
            }
        }
        next = header_next;
        pos += len;
    }
}

/// Classifies a non-first fragment whose fragmentable part starts with `next`.
#[inline]
fn later_fragment(next: u8, offset: u16) -> Parsed {
    // An offset of one unit (8 bytes) overlaps TCP bytes 8..15, flags
    // included: on reassembly it can turn a harmless first fragment into a
    // SYN (RFC 1858). For IPv6 the fragmentable part may start with more
    // extension headers before the TCP header, so be as suspicious of those.
    let may_hide_tcp = matches!(
        next,
        IPPROTO_TCP
            | IPV6_ROUTING
            | IPV6_DEST_OPTS
            | IPV6_AUTH
            | IPV6_MOBILITY
            | IPV6_HIP
            | IPV6_SHIM6
    );
    if offset == 1 && may_hide_tcp {
        Parsed::new(Outcome::FragmentEvasive)
    } else {
        Parsed::new(Outcome::OtherIp)
    }
}

/// Classifies the upper-layer segment `l4` of protocol `proto`. A non-zero
/// `l4_offset` in the result means "there is an L4 header here"; the caller
/// replaces it with the real offset.
#[inline]
fn upper_layer(proto: u8, l4: &[u8], fragment: Fragment, watched: &WatchedPorts) -> Parsed {
    if let Fragment::Later { offset } = fragment {
        // For IPv4 `proto` is the upper layer itself; the IPv6 walker
        // handles its own later fragments before getting here.
        return later_fragment(proto, offset);
    }
    let l4_len = off16(l4.len()).unwrap_or(u16::MAX);
    if proto != IPPROTO_TCP {
        return Parsed {
            l4_offset: 1,
            l4_len,
            ..Parsed::new(Outcome::OtherIp)
        };
    }
    let first_fragment = matches!(fragment, Fragment::First);
    if l4.len() < TCP_MIN_HLEN {
        return Parsed::new(if first_fragment {
            // The flags may sit in the next fragment: cannot tell.
            Outcome::FragmentEvasive
        } else {
            Outcome::Malformed(Malformed::TruncatedL4)
        });
    }
    let (Some(dport), Some(&doff), Some(&flags)) = (be16(l4, 2), l4.get(12), l4.get(13)) else {
        return Parsed::new(Outcome::Malformed(Malformed::TruncatedL4));
    };
    let doff = usize::from(doff >> 4) * 4;
    if doff < TCP_MIN_HLEN || doff > l4.len() {
        return Parsed::new(Outcome::Malformed(Malformed::BadTcpHeader));
    }
    let outcome = if !watched.contains(dport) {
        Outcome::OtherIp
    } else if flags & tcp_flags::SYN != 0 && flags & tcp_flags::ACK == 0 {
        Outcome::WatchedSyn
    } else {
        Outcome::WatchedOther
    };
    Parsed {
        outcome,
        src: None,
        l3_offset: 0,
        l4_offset: 1,
        l4_len,
        tcp_flags: flags,
        fragment: first_fragment,
    }
}

#[cfg(test)]
mod tests {
    use super::tcp_flags::*;
    use super::*;
    use crate::craft::{arp_request, FrameBuilder, Ipv6Ext};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    const DST4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 25);

    fn src6() -> Ipv6Addr {
        "2001:db8:1::10".parse().unwrap()
    }
    fn dst6() -> Ipv6Addr {
        "2001:db8:ffff::25".parse().unwrap()
    }
    fn smtp() -> WatchedPorts {
        WatchedPorts::new(&[25, 587])
    }
    fn syn4() -> FrameBuilder {
        FrameBuilder::tcp_v4(SRC4, DST4, 40000, 25, SYN)
    }
    fn syn6() -> FrameBuilder {
        FrameBuilder::tcp_v6(src6(), dst6(), 40000, 25, SYN)
    }
    fn outcome(frame: &[u8]) -> Outcome {
        parse(frame, &smtp()).outcome
    }
    fn bad(m: Malformed) -> Outcome {
        Outcome::Malformed(m)
    }
    /// Sets the IPv4 header checksum right after a test broke a field (the
    /// parser does not check it, but keeps the fixture honest).
    fn fix_ipv4_checksum(f: &mut [u8], l3: usize) {
        let ihl = usize::from(f[l3] & 0x0f) * 4;
        f[l3 + 10..l3 + 12].fill(0);
        let end = (l3 + ihl).min(f.len());
        let c = crate::checksum::internet_checksum(&f[l3..end]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn watched_ports_bitmap() {
        let w = WatchedPorts::new(&[0, 25, 63, 64, 65535]);
        for p in [0, 25, 63, 64, 65535] {
            assert!(w.contains(p), "{p}");
        }
        // 89, 128 and 65471 pass the one-word filter (25, 0 and 63 mod
        // 64) and are not watched.
        for p in [1, 24, 26, 62, 65, 89, 128, 65471, 65534] {
            assert!(!w.contains(p), "{p}");
        }
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![0, 25, 63, 64, 65535]);
        assert!(!WatchedPorts::default().contains(25));
        // Every port of a few sets, against the set itself.
        for ports in [&[25u16][..], &[25, 465, 587], &[2525, 25, 1], &[]] {
            let w = WatchedPorts::new(ports);
            for p in 0..=u16::MAX {
                assert_eq!(w.contains(p), ports.contains(&p), "{ports:?} {p}");
            }
        }
    }

    #[test]
    fn outcome_indices_names_are_dense_and_unique() {
        let all = Outcome::all();
        let mut names = std::collections::HashSet::new();
        for (i, o) in all.iter().enumerate() {
            assert_eq!(o.index(), i);
            assert!(names.insert(o.name()));
            assert!(o
                .name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()));
        }
        assert_eq!(Outcome::WatchedSyn.name(), "syn_watched");
        assert_eq!(bad(Malformed::TruncatedL2).name(), "malformed_truncated_l2");
        for m in Malformed::all() {
            assert_eq!(bad(m).name(), format!("malformed_{}", m.name()));
        }
    }

    #[test]
    fn plain_v4_syn() {
        let f = syn4().tcp_options(&[2, 4, 5, 0xb4]).build();
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, Outcome::WatchedSyn);
        assert_eq!(p.src, Some(SrcAddr::V4(u32::from(SRC4))));
        assert_eq!((p.l3_offset, p.l4_offset, p.l4_len), (14, 34, 24));
        assert_eq!(p.tcp_flags, SYN);
        assert!(!p.fragment);
    }

    #[test]
    fn plain_v6_syn() {
        let f = syn6().build();
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, Outcome::WatchedSyn);
        assert_eq!(p.src, Some(SrcAddr::V6(u128::from(src6()))));
        assert_eq!((p.l3_offset, p.l4_offset, p.l4_len), (14, 54, 20));
    }

    #[test]
    fn syn_flag_combinations() {
        for (flags, want) in [
            (SYN, Outcome::WatchedSyn),
            (SYN | FIN, Outcome::WatchedSyn),
            (SYN | RST, Outcome::WatchedSyn),
            (SYN | PSH | URG, Outcome::WatchedSyn),
            (SYN | ACK, Outcome::WatchedOther),
            (ACK, Outcome::WatchedOther),
            (ACK | PSH, Outcome::WatchedOther),
            (RST, Outcome::WatchedOther),
            (0, Outcome::WatchedOther),
        ] {
            let f = FrameBuilder::tcp_v4(SRC4, DST4, 1, 587, flags).build();
            assert_eq!(outcome(&f), want, "v4 flags {flags:#x}");
            let f = FrameBuilder::tcp_v6(src6(), dst6(), 1, 587, flags).build();
            assert_eq!(outcome(&f), want, "v6 flags {flags:#x}");
        }
    }

    #[test]
    fn unwatched_port_and_other_protocols() {
        let f = FrameBuilder::tcp_v4(SRC4, DST4, 25, 443, SYN).build();
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, Outcome::OtherIp);
        assert_eq!(p.tcp_flags, SYN);
        assert_eq!(p.src, Some(SrcAddr::V4(u32::from(SRC4))));
        // The source port does not matter, only the destination.
        assert_eq!(
            outcome(&FrameBuilder::tcp_v6(src6(), dst6(), 25, 80, SYN).build()),
            Outcome::OtherIp
        );
        for f in [
            FrameBuilder::udp_v4(SRC4, DST4, 5353, 25).build(),
            FrameBuilder::udp_v6(src6(), dst6(), 5353, 25).build(),
            FrameBuilder::ip_v4(SRC4, DST4, 1)
                .payload(&[8, 0, 0, 0, 0, 0, 0, 0])
                .build(),
            FrameBuilder::ip_v6(src6(), dst6(), 58)
                .payload(&[128, 0, 0, 0])
                .build(),
        ] {
            let p = parse(&f, &smtp());
            assert_eq!(p.outcome, Outcome::OtherIp);
            assert!(p.src.is_some());
            assert!(p.l4_offset != 0);
        }
        // Nothing watched: a SYN to 25 is just IP.
        assert_eq!(
            parse(&syn4().build(), &WatchedPorts::default()).outcome,
            Outcome::OtherIp
        );
    }

    #[test]
    fn vlan_tags() {
        let f = syn4().vlan(TPID_8021Q, 100).build();
        let p = parse(&f, &smtp());
        assert_eq!(
            (p.outcome, p.l3_offset, p.l4_offset),
            (Outcome::WatchedSyn, 18, 38)
        );
        let f = syn6().vlan(TPID_8021AD, 10).vlan(TPID_8021Q, 20).build();
        let p = parse(&f, &smtp());
        assert_eq!(
            (p.outcome, p.l3_offset, p.l4_offset),
            (Outcome::WatchedSyn, 22, 62)
        );
        for (a, b) in [
            (TPID_8021Q, TPID_8021Q),
            (TPID_8021Q, TPID_8021AD),
            (TPID_QINQ_LEGACY, TPID_8021Q),
        ] {
            assert_eq!(
                outcome(&syn4().vlan(a, 1).vlan(b, 2).build()),
                Outcome::WatchedSyn
            );
        }
        let f = syn4()
            .vlan(TPID_8021AD, 1)
            .vlan(TPID_8021Q, 2)
            .vlan(TPID_8021Q, 3)
            .build();
        assert_eq!(outcome(&f), bad(Malformed::VlanStackTooDeep));
        // Truncated tags: cut inside the first and second tag.
        let f = syn4().vlan(TPID_8021Q, 1).vlan(TPID_8021Q, 2).build();
        for len in 14..22 {
            assert_eq!(outcome(&f[..len]), bad(Malformed::TruncatedL2), "len {len}");
        }
        // Tagged ARP is non-IP.
        let mut arp = arp_request(SRC4, DST4);
        arp.splice(12..12, [0x81, 0x00, 0, 5]);
        assert_eq!(outcome(&arp), Outcome::NonIp);
    }

    #[test]
    fn short_frames() {
        assert_eq!(outcome(&[]), bad(Malformed::TruncatedL2));
        assert_eq!(outcome(&[0; 13]), bad(Malformed::TruncatedL2));
        // 14 bytes: a complete Ethernet header with nothing behind it.
        let f = syn4().build();
        assert_eq!(outcome(&f[..14]), bad(Malformed::BadIpv4Header));
        let f6 = syn6().build();
        assert_eq!(outcome(&f6[..14]), bad(Malformed::BadIpv6Header));
        let mut lldp = f[..14].to_vec();
        lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
        assert_eq!(outcome(&lldp), Outcome::NonIp);
    }

    #[test]
    fn chained_frames_are_judged_by_their_wire_length() {
        let f = syn4().payload(&[0x5a; 3000]).build();
        // As a single buffer: an ordinary SYN.
        assert_eq!(outcome(&f), Outcome::WatchedSyn);
        // Its first 2048 bytes alone look truncated ...
        let first = &f[..2048];
        assert_eq!(outcome(first), bad(Malformed::BadIpv4Length));
        // ... but chained to the rest it is the same SYN.
        let p = parse_chained(first, f.len(), &smtp());
        assert_eq!(p.outcome, Outcome::WatchedSyn);
        assert_eq!(p.src, Some(SrcAddr::V4(u32::from(SRC4))));
        assert!(usize::from(p.l4_offset) + usize::from(p.l4_len) <= first.len());
        let f6 = syn6().payload(&[0x5a; 3000]).build();
        assert_eq!(
            parse_chained(&f6[..2048], f6.len(), &smtp()).outcome,
            Outcome::WatchedSyn
        );
        // A wire length beyond even the chain is still too short for the
        // IP length: malformed.
        let mut short = f.clone();
        short[16..18].copy_from_slice(&9000u16.to_be_bytes());
        assert_eq!(
            parse_chained(&short[..2048], short.len(), &smtp()).outcome,
            bad(Malformed::BadIpv4Length)
        );
    }

    #[test]
    fn too_many_vlan_tags_keep_their_source() {
        let f = syn4()
            .vlan(0x88a8, 1)
            .vlan(0x8100, 2)
            .vlan(0x8100, 3)
            .build();
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, bad(Malformed::VlanStackTooDeep));
        assert_eq!(p.src, Some(SrcAddr::V4(u32::from(SRC4))));
        let f = syn6()
            .vlan(0x8100, 1)
            .vlan(0x8100, 2)
            .vlan(0x8100, 3)
            .vlan(0x8100, 4)
            .build();
        assert_eq!(
            parse(&f, &smtp()).src,
            Some(SrcAddr::V6(u128::from(src6())))
        );
    }

    #[test]
    fn arp_is_non_ip() {
        let p = parse(&arp_request(SRC4, DST4), &smtp());
        assert_eq!(p.outcome, Outcome::NonIp);
        assert_eq!(p.src, None);
        assert_eq!(p.l4_offset, 0);
    }

    #[test]
    fn ipv4_with_options() {
        let f = syn4().ipv4_options(&[0x94, 4, 0, 0, 1]).build(); // router alert + NOP
        let p = parse(&f, &smtp());
        assert_eq!((p.outcome, p.l4_offset), (Outcome::WatchedSyn, 14 + 28));
    }

    #[test]
    fn ipv4_header_errors() {
        let good = syn4().build();
        for ihl in 0..5u8 {
            let mut f = good.clone();
            f[14] = 0x40 | ihl;
            assert_eq!(outcome(&f), bad(Malformed::BadIpv4Header), "ihl {ihl}");
        }
        let mut f = good.clone();
        f[14] = 0x65; // version 6 under ethertype IPv4
        assert_eq!(outcome(&f), bad(Malformed::BadIpv4Header));
        // IHL 15 = 60 bytes, but only 40 bytes of IP in the frame.
        let mut f = good.clone();
        f[14] = 0x4f;
        fix_ipv4_checksum(&mut f, 14);
        assert_eq!(outcome(&f), bad(Malformed::BadIpv4Header));
        // Header cut short.
        assert_eq!(outcome(&good[..14 + 19]), bad(Malformed::BadIpv4Header));
    }

    #[test]
    fn ipv4_length_errors_and_padding() {
        let good = syn4().build();
        let set_total = |t: u16| {
            let mut f = good.clone();
            f[16..18].copy_from_slice(&t.to_be_bytes());
            fix_ipv4_checksum(&mut f, 14);
            f
        };
        assert_eq!(outcome(&set_total(19)), bad(Malformed::BadIpv4Length));
        assert_eq!(outcome(&set_total(41)), bad(Malformed::BadIpv4Length));
        assert_eq!(outcome(&set_total(40)), Outcome::WatchedSyn);
        // Total length shorter than the frame but covering the header: the
        // segment is bounded by it, so TCP is cut.
        let p = parse(&set_total(30), &smtp());
        assert_eq!(p.outcome, bad(Malformed::TruncatedL4));
        assert!(p.src.is_some());
        // Frame cut shorter than total length.
        assert_eq!(
            outcome(&good[..good.len() - 1]),
            bad(Malformed::BadIpv4Length)
        );
        // Ethernet padding past the total length is fine and not in l4_len.
        let f = syn4().pad_to(60).build();
        assert_eq!(f.len(), 60);
        let p = parse(&f, &smtp());
        assert_eq!((p.outcome, p.l4_len), (Outcome::WatchedSyn, 20));
        let f = FrameBuilder::udp_v4(SRC4, DST4, 1, 2).pad_to(64).build();
        assert_eq!(outcome(&f), Outcome::OtherIp);
    }

    #[test]
    fn ipv4_fragments() {
        // Tiny first fragment: 8 bytes of TCP, flags not there.
        let f = syn4().ipv4_fragment(0, true).truncate_l4(8).build();
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, Outcome::FragmentEvasive);
        assert_eq!(p.src, Some(SrcAddr::V4(u32::from(SRC4))));
        assert_eq!(
            outcome(&syn4().ipv4_fragment(0, true).truncate_l4(19).build()),
            Outcome::FragmentEvasive
        );
        // First fragment with the whole TCP header: classified normally.
        let f = syn4()
            .payload(&[0; 64])
            .ipv4_fragment(0, true)
            .truncate_l4(24)
            .build();
        let p = parse(&f, &smtp());
        assert_eq!((p.outcome, p.fragment), (Outcome::WatchedSyn, true));
        // Offset 1 (8 bytes) overlaps the TCP flags: evasive whatever MF.
        for mf in [false, true] {
            let f = syn4().payload(&[0; 32]).ipv4_fragment(1, mf).build();
            assert_eq!(outcome(&f), Outcome::FragmentEvasive, "mf {mf}");
        }
        // Later fragments carry no header.
        for off in [2, 3, 100, 0x1fff] {
            let f = syn4().payload(&[0; 32]).ipv4_fragment(off, true).build();
            let p = parse(&f, &smtp());
            assert_eq!(
                (p.outcome, p.l4_offset),
                (Outcome::OtherIp, 0),
                "offset {off}"
            );
            assert!(p.src.is_some());
        }
        // Offset-1 UDP fragments are harmless to us.
        let f = FrameBuilder::udp_v4(SRC4, DST4, 1, 25)
            .payload(&[0; 32])
            .ipv4_fragment(1, false)
            .build();
        assert_eq!(outcome(&f), Outcome::OtherIp);
        // Unfragmented but short TCP is truncated, not evasive.
        assert_eq!(
            outcome(&syn4().truncate_l4(19).build()),
            bad(Malformed::TruncatedL4)
        );
    }

    #[test]
    fn tcp_header_errors() {
        let good = syn4().build();
        for doff in 0..5u8 {
            let mut f = good.clone();
            f[34 + 12] = doff << 4;
            assert_eq!(outcome(&f), bad(Malformed::BadTcpHeader), "doff {doff}");
        }
        let mut f = good.clone();
        f[34 + 12] = 6 << 4; // 24 bytes claimed, 20 present
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, bad(Malformed::BadTcpHeader));
        assert_eq!(p.src, Some(SrcAddr::V4(u32::from(SRC4))));
        let mut f = syn6().build();
        f[54 + 12] = 0xf0;
        assert_eq!(outcome(&f), bad(Malformed::BadTcpHeader));
        assert_eq!(
            outcome(&syn6().truncate_l4(10).build()),
            bad(Malformed::TruncatedL4)
        );
        // Data offset covering options and payload exactly is fine.
        let f = syn4().tcp_options(&[1; 40]).build();
        assert_eq!(outcome(&f), Outcome::WatchedSyn);
    }

    #[test]
    fn ipv6_header_errors() {
        let good = syn6().build();
        let mut f = good.clone();
        f[14] = 0x40;
        assert_eq!(outcome(&f), bad(Malformed::BadIpv6Header));
        assert_eq!(outcome(&good[..14 + 39]), bad(Malformed::BadIpv6Header));
        let mut f = good.clone();
        f[18..20].copy_from_slice(&21u16.to_be_bytes());
        assert_eq!(outcome(&f), bad(Malformed::BadIpv6Length));
        // Shorter payload length: TCP bounded by it.
        let mut f = good.clone();
        f[18..20].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(outcome(&f), bad(Malformed::TruncatedL4));
        // Padding after the payload is fine.
        let f = syn6().pad_to(128).build();
        assert_eq!(parse(&f, &smtp()).l4_len, 20);
        assert_eq!(outcome(&f), Outcome::WatchedSyn);
    }

    #[test]
    fn ipv6_jumbogram() {
        let mut f = syn6().ipv6_ext_headers([Ipv6Ext::hop_by_hop()]).build();
        f[18..20].fill(0);
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, bad(Malformed::BadIpv6Length));
        // Malformed, but still the customer's: a block applies to it.
        assert_eq!(p.src, Some(SrcAddr::V6(u128::from(src6()))));
        // Zero payload with no next header is a valid (empty) packet.
        let f = FrameBuilder::ip_v6(src6(), dst6(), 59).build();
        assert_eq!(outcome(&f), Outcome::OtherIp);
        // Zero payload with TCP next: TCP is missing.
        let f = syn6().truncate_l4(0).build();
        assert_eq!(outcome(&f), bad(Malformed::TruncatedL4));
    }

    #[test]
    fn ipv6_extension_chains() {
        let f = syn6()
            .ipv6_ext_headers([
                Ipv6Ext::hop_by_hop(),
                Ipv6Ext::destination_options(),
                Ipv6Ext::routing(),
                Ipv6Ext::generic(60, 2),
            ])
            .build();
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, Outcome::WatchedSyn);
        assert_eq!(usize::from(p.l4_offset), 54 + 8 + 8 + 8 + 24);
        for kind in [135, 139, 140] {
            let f = syn6().ipv6_ext_headers([Ipv6Ext::generic(kind, 1)]).build();
            assert_eq!(outcome(&f), Outcome::WatchedSyn, "ext {kind}");
        }
        // AH: (len + 2) * 4.
        let f = syn6()
            .ipv6_ext_headers([Ipv6Ext::auth(), Ipv6Ext::destination_options()])
            .build();
        let p = parse(&f, &smtp());
        assert_eq!(
            (p.outcome, usize::from(p.l4_offset)),
            (Outcome::WatchedSyn, 54 + 24 + 8)
        );
        // ESP hides the rest.
        let f = FrameBuilder::ip_v6(src6(), dst6(), 50)
            .payload(&[0; 32])
            .build();
        let p = parse(&f, &smtp());
        assert_eq!((p.outcome, p.l4_offset), (Outcome::OtherIp, 0));
        assert!(p.src.is_some());
        let f = FrameBuilder::ip_v6(src6(), dst6(), 50)
            .ipv6_ext_headers([Ipv6Ext::hop_by_hop()])
            .payload(&[0; 8])
            .build();
        assert_eq!(outcome(&f), Outcome::OtherIp);
    }

    #[test]
    fn ipv6_chain_errors() {
        // Hop-by-hop not first.
        let f = syn6()
            .ipv6_ext_headers([Ipv6Ext::destination_options(), Ipv6Ext::hop_by_hop()])
            .build();
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, bad(Malformed::BadIpv6Chain));
        assert!(p.src.is_some());
        // 8 headers pass, 9 do not.
        let eight = vec![Ipv6Ext::destination_options(); 8];
        assert_eq!(
            outcome(&syn6().ipv6_ext_headers(eight.clone()).build()),
            Outcome::WatchedSyn
        );
        let mut nine = eight;
        nine.push(Ipv6Ext::routing());
        assert_eq!(
            outcome(&syn6().ipv6_ext_headers(nine).build()),
            bad(Malformed::BadIpv6Chain)
        );
        // A header longer than the payload.
        let mut f = syn6()
            .ipv6_ext_headers([Ipv6Ext::destination_options()])
            .build();
        f[54 + 1] = 3; // claims 32 bytes; 8 + 20 present
        assert_eq!(outcome(&f), bad(Malformed::BadIpv6Chain));
        let mut f = syn6().ipv6_ext_headers([Ipv6Ext::auth()]).build();
        f[54 + 1] = 200;
        assert_eq!(outcome(&f), bad(Malformed::BadIpv6Chain));
        // Payload ends inside the chain (header length byte missing).
        let f = FrameBuilder::ip_v6(src6(), dst6(), 60)
            .payload(&[6])
            .build();
        assert_eq!(outcome(&f), bad(Malformed::BadIpv6Chain));
        let f = FrameBuilder::ip_v6(src6(), dst6(), 44)
            .payload(&[6, 0, 0, 0])
            .build();
        assert_eq!(outcome(&f), bad(Malformed::BadIpv6Chain));
    }

    #[test]
    fn ipv6_fragments() {
        // Atomic fragment (offset 0, M clear): plain TCP.
        let f = syn6().ipv6_fragment(0, false).build();
        let p = parse(&f, &smtp());
        assert_eq!(
            (p.outcome, p.fragment, usize::from(p.l4_offset)),
            (Outcome::WatchedSyn, false, 62)
        );
        // First fragment with a full TCP header.
        let f = syn6()
            .payload(&[0; 40])
            .ipv6_fragment(0, true)
            .truncate_l4(32)
            .build();
        let p = parse(&f, &smtp());
        assert_eq!((p.outcome, p.fragment), (Outcome::WatchedSyn, true));
        // Tiny first fragment.
        let f = syn6().ipv6_fragment(0, true).truncate_l4(8).build();
        let p = parse(&f, &smtp());
        assert_eq!(p.outcome, Outcome::FragmentEvasive);
        assert!(p.src.is_some());
        // Offset 1: overlap attack; also when the fragmentable part starts
        // with another extension header in front of TCP.
        let f = syn6().payload(&[0; 32]).ipv6_fragment(1, true).build();
        assert_eq!(outcome(&f), Outcome::FragmentEvasive);
        let f = syn6()
            .payload(&[0; 32])
            .ipv6_ext_headers([
                Ipv6Ext::fragment(1, false, 7),
                Ipv6Ext::destination_options(),
            ])
            .build();
        assert_eq!(outcome(&f), Outcome::FragmentEvasive);
        // Later fragments.
        let f = syn6().payload(&[0; 64]).ipv6_fragment(3, true).build();
        let p = parse(&f, &smtp());
        assert_eq!((p.outcome, p.l4_offset), (Outcome::OtherIp, 0));
        let f = FrameBuilder::udp_v6(src6(), dst6(), 1, 25)
            .payload(&[0; 32])
            .ipv6_fragment(1, false)
            .build();
        assert_eq!(outcome(&f), Outcome::OtherIp);
        // Fragment header after hop-by-hop, tiny first fragment.
        let f = syn6()
            .ipv6_ext_headers([Ipv6Ext::hop_by_hop(), Ipv6Ext::fragment(0, true, 1)])
            .truncate_l4(12)
            .build();
        assert_eq!(outcome(&f), Outcome::FragmentEvasive);
    }

    #[test]
    fn exempt_destinations_are_their_own_outcome() {
        let relay4 = Ipv4Addr::new(192, 0, 2, 25);
        let relay6: Ipv6Addr = "2001:db8:25::25".parse().unwrap();
        let w = smtp().exempting([
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)), 24),
            (IpAddr::V6("2001:db8:25::".parse().unwrap()), 48),
        ]);
        let to = |dst: Ipv4Addr, flags| FrameBuilder::tcp_v4(SRC4, dst, 40000, 25, flags).build();
        let to6 = |dst: Ipv6Addr, flags| {
            FrameBuilder::tcp_v6("2001:db8:1::7".parse().unwrap(), dst, 40000, 25, flags).build()
        };
        let cases = [
            (to(relay4, SYN), Outcome::ExemptDestination),
            (to(relay4, ACK | PSH), Outcome::ExemptDestination),
            (to(DST4, SYN), Outcome::WatchedSyn),
            (to6(relay6, SYN), Outcome::ExemptDestination),
            (to6(dst6(), SYN), Outcome::WatchedSyn),
            // Other ports to the relay are not watched at all.
            (
                FrameBuilder::tcp_v4(SRC4, relay4, 40000, 443, SYN).build(),
                Outcome::OtherIp,
            ),
            // Tagged (general path) too.
            (
                FrameBuilder::tcp_v4(SRC4, relay4, 40000, 25, SYN)
                    .vlan(TPID_8021Q, 7)
                    .build(),
                Outcome::ExemptDestination,
            ),
        ];
        for (frame, want) in cases {
            let p = parse(&frame, &w);
            assert_eq!(p.outcome, want, "{p:?}");
            assert!(p.src.is_some());
        }
        // A routing header could send it past the relay: not exempt.
        let routed = FrameBuilder::tcp_v6("2001:db8:1::7".parse().unwrap(), relay6, 1, 25, SYN)
            .ipv6_ext_headers([Ipv6Ext::routing()])
            .build();
        assert_eq!(parse(&routed, &w).outcome, Outcome::WatchedSyn);
        // Without exemptions nothing changes.
        assert_eq!(
            parse(&to(relay4, SYN), &smtp()).outcome,
            Outcome::WatchedSyn
        );
    }

    // ---- property tests ----

    fn tpid() -> impl Strategy<Value = u16> {
        prop_oneof![Just(TPID_8021Q), Just(TPID_8021AD), Just(TPID_QINQ_LEGACY)]
    }

    /// A random well-formed frame and what the parser must say about it.
    fn crafted() -> impl Strategy<Value = (Vec<u8>, Outcome, SrcAddr)> {
        (
            any::<bool>(),
            any::<u32>(),
            any::<u128>(),
            any::<u16>(),
            prop_oneof![Just(25u16), Just(587), any::<u16>()],
            any::<u8>(),
            proptest::collection::vec((tpid(), any::<u16>()), 0..=2),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<u32>(),
        )
            .prop_map(|(v6, a4, a6, sport, dport, flags, vlans, payload, seq)| {
                let mut b = if v6 {
                    FrameBuilder::tcp_v6(Ipv6Addr::from(a6), dst6(), sport, dport, flags)
                } else {
                    FrameBuilder::tcp_v4(Ipv4Addr::from(a4), DST4, sport, dport, flags)
                };
                for (t, v) in vlans {
                    b = b.vlan(t, v);
                }
                let frame = b.payload(&payload).seq(seq).build();
                let want = if !smtp().contains(dport) {
                    Outcome::OtherIp
                } else if flags & SYN != 0 && flags & ACK == 0 {
                    Outcome::WatchedSyn
                } else {
                    Outcome::WatchedOther
                };
                let src = if v6 { SrcAddr::V6(a6) } else { SrcAddr::V4(a4) };
                (frame, want, src)
            })
    }

    proptest! {
        /// Where the fast path answers, it answers as the general path;
        /// and triage (both families' fast paths) always does.
        #[test]
        fn fast_path_agrees_with_the_general_path(
            (frame, _, _) in crafted(),
            edits in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let mut f = frame;
            for (at, v) in edits {
                let len = f.len();
                f[at % len] = v;
            }
            let keep = cut % (f.len() + 1);
            // With the crafted frames' destinations exempt, and without.
            let exempt = smtp().exempting([(IpAddr::V4(DST4), 24), (IpAddr::V6(dst6()), 64)]);
            for frame in [&f[..], &f[..keep]] {
                for watched in [smtp(), exempt.clone()] {
                    let general = parse_general(frame, 0, &watched);
                    if let Some(fast) = fast_ipv4(frame, &watched) {
                        prop_assert_eq!(fast.parsed(), general);
                    }
                    let t = triage(frame, frame.len(), &watched);
                    prop_assert_eq!((t.outcome, t.src, t.index()), (general.outcome, general.src, general.outcome.index()));
                }
            }
        }

        /// An IPv4 frame untagged, behind one 802.1Q tag or behind
        /// 802.1ad + 802.1Q takes the fast path; behind other stacks, or
        /// one 802.1ad tag, the general one.
        #[test]
        fn one_customer_tag_takes_the_fast_path(
            a4 in any::<u32>(),
            dport in prop_oneof![Just(25u16), any::<u16>()],
            flags in any::<u8>(),
            vid in 0u16..4096,
        ) {
            let base = FrameBuilder::tcp_v4(Ipv4Addr::from(a4), DST4, 40000, dport, flags);
            let untagged = base.clone().build();
            let tagged = base.clone().vlan(TPID_8021Q, vid).build();
            let qinq = base.clone().vlan(TPID_8021AD, 7).vlan(TPID_8021Q, vid).build();
            let inverted = base.clone().vlan(TPID_8021Q, vid).vlan(TPID_8021AD, 7).build();
            let outer = base.vlan(TPID_8021AD, vid).build();
            for (frame, fast) in [
                (untagged, true),
                (tagged, true),
                (qinq, true),
                (inverted, false),
                (outer, false),
            ] {
                let got = fast_ipv4(&frame, &smtp()).map(FastV4::parsed);
                prop_assert_eq!(got.is_some(), fast);
                if let Some(got) = got {
                    prop_assert_eq!(got, parse_general(&frame, 0, &smtp()));
                    prop_assert_eq!(got.src, Some(SrcAddr::V4(a4)));
                }
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let p = parse(&bytes, &smtp());
            prop_assert!(p.outcome.index() < Outcome::COUNT);
        }

        #[test]
        fn random_ip_like_bytes_never_panic(
            ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100)],
            first in prop_oneof![Just(0x45u8), Just(0x60), any::<u8>()],
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.push(first);
            f.extend_from_slice(&rest);
            let p = parse(&f, &smtp());
            prop_assert!(p.outcome.index() < Outcome::COUNT);
            prop_assert!(usize::from(p.l4_offset) <= f.len());
        }

        #[test]
        fn crafted_frames_round_trip((frame, want, src) in crafted()) {
            let p = parse(&frame, &smtp());
            prop_assert_eq!(p.outcome, want);
            prop_assert_eq!(p.src, Some(src));
            prop_assert_eq!(p.tcp_flags, frame[usize::from(p.l4_offset) + 13]);
        }

        #[test]
        fn mutated_frames_never_panic(
            (frame, _, _) in crafted(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut f = frame;
            for (at, v) in edits {
                let len = f.len();
                f[at % len] = v;
            }
            let keep = cut % (f.len() + 1);
            for frame in [&f[..], &f[..keep]] {
                let p = parse(frame, &smtp());
                let i = p.outcome.index();
                prop_assert!(i < Outcome::COUNT);
                prop_assert_eq!(Outcome::all()[i], p.outcome);
                prop_assert!(usize::from(p.l4_offset) + usize::from(p.l4_len) <= frame.len());
            }
        }

        #[test]
        fn mutated_v6_chains_never_panic(
            kinds in proptest::collection::vec(prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(60), Just(135), any::<u8>()], 0..10),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        ) {
            let exts: Vec<Ipv6Ext> = kinds.iter().map(|&k| match k {
                44 => Ipv6Ext::fragment(0, false, 1),
                51 => Ipv6Ext::auth(),
                k => Ipv6Ext::generic(k, 0),
            }).collect();
            let mut f = syn6().payload(&[1; 16]).ipv6_ext_headers(exts).build();
            for (at, v) in edits {
                let i = 54 + at % (f.len() - 54);
                f[i] = v;
            }
            let p = parse(&f, &smtp());
            prop_assert!(p.outcome.index() < Outcome::COUNT);
        }
    }
}
