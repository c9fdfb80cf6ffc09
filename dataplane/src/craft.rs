//! Frame builder for tests, pcap fixtures and the traffic generator.
//!
//! Not on the fast path: it allocates freely. What it builds is well formed
//! (lengths and checksums right) unless asked otherwise; tests that need a
//! malformed frame build a good one and then break the byte they care about,
//! which keeps each test's intent visible.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use synwall_dataplane::craft::FrameBuilder;
//! use synwall_dataplane::parse::tcp_flags::SYN;
//! let frame = FrameBuilder::tcp_v4(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 7), 40000, 25, SYN)
//!     .vlan(0x8100, 100)
//!     .build();
//! assert_eq!(frame.len(), 14 + 4 + 20 + 20);
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::parse::{IPPROTO_TCP, IPPROTO_UDP};

/// One IPv6 extension header for [`FrameBuilder::ipv6_ext_headers`]. The
/// builder fills in each header's next-header byte to chain them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Ext {
    /// The header's protocol number (0, 43, 44, 51, 60, ...).
    pub kind: u8,
    /// The whole header; byte 0 (next header) is overwritten by the builder.
    pub bytes: Vec<u8>,
}

impl Ipv6Ext {
    /// A generic `(hdr_ext_len + 1) * 8`-byte header (hop-by-hop, routing,
    /// destination options, mobility, HIP, shim6), zero-filled: for options
    /// headers zeros are Pad1 options, so the header is valid.
    pub fn generic(kind: u8, hdr_ext_len: u8) -> Self {
        let mut bytes = vec![0; (usize::from(hdr_ext_len) + 1) * 8];
        bytes[1] = hdr_ext_len;
        Self { kind, bytes }
    }

    /// An 8-byte hop-by-hop options header.
    pub fn hop_by_hop() -> Self {
        Self::generic(0, 0)
    }

    /// An 8-byte routing header (type 0 fields zeroed, segments left 0).
    pub fn routing() -> Self {
        Self::generic(43, 0)
    }

    /// An 8-byte destination options header.
    pub fn destination_options() -> Self {
        Self::generic(60, 0)
    }

    /// A fragment header: offset in 8-byte units, M flag, identification.
    pub fn fragment(offset_units: u16, more_fragments: bool, id: u32) -> Self {
        let mut bytes = vec![0; 8];
        let word = (offset_units << 3) | u16::from(more_fragments);
        bytes[2..4].copy_from_slice(&word.to_be_bytes());
        bytes[4..8].copy_from_slice(&id.to_be_bytes());
        Self { kind: 44, bytes }
    }

    /// An authentication header with a 12-byte ICV: 24 bytes, payload
    /// length field 4 ((4 + 2) * 4 = 24, a multiple of 8 as IPv6 requires).
    pub fn auth() -> Self {
        let mut bytes = vec![0; 24];
        bytes[1] = 4;
        Self { kind: 51, bytes }
    }

    /// Any header, bytes as given (for malformed chains).
    pub fn raw(kind: u8, bytes: &[u8]) -> Self {
        Self {
            kind,
            bytes: bytes.to_vec(),
        }
    }
}

#[derive(Clone, Debug)]
enum Net {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
    },
    /// Not IP: the payload follows the ethertype directly.
    Other {
        ethertype: u16,
    },
}

#[derive(Clone, Debug)]
enum Transport {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// Payload only, under this IP protocol number (ICMP, ESP, ...).
    Raw {
        proto: u8,
    },
}

/// Builder of one Ethernet frame (no FCS). Setters that do not apply to the
/// frame kind (e.g. `seq` on UDP) are ignored.
#[derive(Clone, Debug)]
pub struct FrameBuilder {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    vlans: Vec<(u16, u16)>,
    net: Net,
    transport: Transport,
    ttl: u8,
    ip_id: u16,
    ipv4_options: Vec<u8>,
    ipv4_fragment: Option<(u16, bool)>,
    ext_headers: Vec<Ipv6Ext>,
    seq: u32,
    ack: u32,
    window: u16,
    tcp_options: Vec<u8>,
    payload: Vec<u8>,
    truncate_l4: Option<usize>,
    pad_to: usize,
}

impl FrameBuilder {
    fn new(net: Net, transport: Transport) -> Self {
        Self {
            // Locally administered unicast addresses.
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            vlans: Vec::new(),
            net,
            transport,
            ttl: 64,
            ip_id: 0x1234,
            ipv4_options: Vec::new(),
            ipv4_fragment: None,
            ext_headers: Vec::new(),
            seq: 0x1000_0000,
            ack: 0,
            window: 64240,
            tcp_options: Vec::new(),
            payload: Vec::new(),
            truncate_l4: None,
            pad_to: 0,
        }
    }

    /// A TCP segment over IPv4 with the given flags (see `parse::tcp_flags`).
    pub fn tcp_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Self {
        Self::new(
            Net::V4 { src, dst },
            Transport::Tcp {
                sport,
                dport,
                flags,
            },
        )
    }

    /// A TCP segment over IPv6 with the given flags.
    pub fn tcp_v6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, flags: u8) -> Self {
        Self::new(
            Net::V6 { src, dst },
            Transport::Tcp {
                sport,
                dport,
                flags,
            },
        )
    }

    /// A UDP datagram over IPv4.
    pub fn udp_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Self {
        Self::new(Net::V4 { src, dst }, Transport::Udp { sport, dport })
    }

    /// A UDP datagram over IPv6.
    pub fn udp_v6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Self {
        Self::new(Net::V6 { src, dst }, Transport::Udp { sport, dport })
    }

    /// An IPv4 packet of any protocol carrying only the payload (ICMP, ESP...).
    pub fn ip_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Self {
        Self::new(Net::V4 { src, dst }, Transport::Raw { proto })
    }

    /// An IPv6 packet whose (last) next header is `proto`, carrying only the
    /// payload.
    pub fn ip_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8) -> Self {
        Self::new(Net::V6 { src, dst }, Transport::Raw { proto })
    }

    /// A non-IP frame: the payload follows `ethertype` (ARP is 0x0806).
    pub fn ethernet(ethertype: u16) -> Self {
        Self::new(Net::Other { ethertype }, Transport::Raw { proto: 0 })
    }

    /// Source and destination MAC addresses.
    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    /// Adds a VLAN tag; call again for QinQ (outermost first). `vid` is the
    /// whole TCI (priority bits included).
    pub fn vlan(mut self, tpid: u16, vid: u16) -> Self {
        self.vlans.push((tpid, vid));
        self
    }

    /// The upper-layer payload (after the TCP/UDP header).
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// TCP sequence number.
    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }

    /// TCP acknowledgment number.
    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }

    /// TCP window.
    pub fn window(mut self, window: u16) -> Self {
        self.window = window;
        self
    }

    /// TCP options, padded with zeros (end-of-options) to a multiple of 4.
    pub fn tcp_options(mut self, options: &[u8]) -> Self {
        self.tcp_options = options.to_vec();
        self
    }

    /// IPv4 TTL / IPv6 hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// IPv4 identification (also used for IPv6 fragment headers' id).
    pub fn ip_id(mut self, id: u16) -> Self {
        self.ip_id = id;
        self
    }

    /// IPv4 options, padded with zeros (end-of-options) to a multiple of 4.
    pub fn ipv4_options(mut self, options: &[u8]) -> Self {
        self.ipv4_options = options.to_vec();
        self
    }

    /// Makes the IPv4 packet a fragment at `offset_units` * 8 bytes of the
    /// upper-layer segment, with the MF flag as given. The frame then carries
    /// the segment from that offset on (see also [`Self::truncate_l4`]).
    pub fn ipv4_fragment(mut self, offset_units: u16, more_fragments: bool) -> Self {
        self.ipv4_fragment = Some((offset_units & 0x1fff, more_fragments));
        self
    }

    /// IPv6 extension headers, in order, before the upper layer. A fragment
    /// header with a non-zero offset makes the frame carry the segment from
    /// that offset on, as with [`Self::ipv4_fragment`].
    pub fn ipv6_ext_headers(mut self, headers: impl IntoIterator<Item = Ipv6Ext>) -> Self {
        self.ext_headers.extend(headers);
        self
    }

    /// Appends an IPv6 fragment header (shorthand for
    /// `ipv6_ext_headers([Ipv6Ext::fragment(..)])`).
    pub fn ipv6_fragment(self, offset_units: u16, more_fragments: bool) -> Self {
        let id = u32::from(self.ip_id);
        self.ipv6_ext_headers([Ipv6Ext::fragment(offset_units, more_fragments, id)])
    }

    /// Carries at most `len` bytes of the upper-layer segment (as a first
    /// fragment would); IP lengths follow, checksums stay those of the
    /// whole segment.
    pub fn truncate_l4(mut self, len: usize) -> Self {
        self.truncate_l4 = Some(len);
        self
    }

    /// Pads the frame with zeros to at least `len` bytes (Ethernet padding,
    /// not counted in IP lengths).
    pub fn pad_to(mut self, len: usize) -> Self {
        self.pad_to = len;
        self
    }

    /// The full upper-layer segment with a correct checksum.
    fn segment(&self, pseudo: impl Fn(u8, &[u8]) -> u16) -> Vec<u8> {
        match self.transport {
            Transport::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut options = self.tcp_options.clone();
                options.resize(options.len().div_ceil(4) * 4, 0);
                let hlen = 20 + options.len();
                let mut s = Vec::with_capacity(hlen + self.payload.len());
                s.extend_from_slice(&sport.to_be_bytes());
                s.extend_from_slice(&dport.to_be_bytes());
                s.extend_from_slice(&self.seq.to_be_bytes());
                s.extend_from_slice(&self.ack.to_be_bytes());
                // Data offset saturates at 15 words; longer options are a
                // caller error that the parser will flag.
                s.push(((hlen / 4).min(15) as u8) << 4);
                s.push(flags);
                s.extend_from_slice(&self.window.to_be_bytes());
                s.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
                s.extend_from_slice(&options);
                s.extend_from_slice(&self.payload);
                let check = pseudo(IPPROTO_TCP, &s);
                s[16..18].copy_from_slice(&check.to_be_bytes());
                s
            }
            Transport::Udp { sport, dport } => {
                let len = u16::try_from(8 + self.payload.len()).unwrap_or(u16::MAX);
                let mut s = Vec::with_capacity(8 + self.payload.len());
                s.extend_from_slice(&sport.to_be_bytes());
                s.extend_from_slice(&dport.to_be_bytes());
                s.extend_from_slice(&len.to_be_bytes());
                s.extend_from_slice(&[0, 0]);
                s.extend_from_slice(&self.payload);
                // A computed 0 is sent as 0xffff: 0 means "no checksum".
                let check = match pseudo(IPPROTO_UDP, &s) {
                    0 => 0xffff,
                    c => c,
                };
                s[6..8].copy_from_slice(&check.to_be_bytes());
                s
            }
            Transport::Raw { .. } => self.payload.clone(),
        }
    }

    /// The part of the segment this frame carries (fragments, truncation).
    fn carried(&self, segment: Vec<u8>, offset_units: u16) -> Vec<u8> {
        let start = (usize::from(offset_units) * 8).min(segment.len());
        let mut carried = segment[start..].to_vec();
        if let Some(len) = self.truncate_l4 {
            carried.truncate(len);
        }
        carried
    }

    fn l4_proto(&self) -> u8 {
        match self.transport {
            Transport::Tcp { .. } => IPPROTO_TCP,
            Transport::Udp { .. } => IPPROTO_UDP,
            Transport::Raw { proto } => proto,
        }
    }

    /// Builds the frame.
    pub fn build(&self) -> Vec<u8> {
        let mut frame = Vec::with_capacity(128 + self.payload.len());
        frame.extend_from_slice(&self.dst_mac);
        frame.extend_from_slice(&self.src_mac);
        for &(tpid, tci) in &self.vlans {
            frame.extend_from_slice(&tpid.to_be_bytes());
            frame.extend_from_slice(&tci.to_be_bytes());
        }
        let proto = self.l4_proto();
        match self.net {
            Net::V4 { src, dst } => {
                frame.extend_from_slice(&0x0800u16.to_be_bytes());
                let (s, d) = (src.octets(), dst.octets());
                let segment = self.segment(|p, seg| checksum::l4_checksum_v4(s, d, p, seg));
                let (offset, mf) = self.ipv4_fragment.unwrap_or((0, false));
                let l4 = self.carried(segment, offset);
                let mut options = self.ipv4_options.clone();
                options.resize(options.len().div_ceil(4) * 4, 0);
                let hlen = 20 + options.len();
                let total = u16::try_from(hlen + l4.len()).unwrap_or(u16::MAX);
                let frag_word = if self.ipv4_fragment.is_some() {
                    offset | if mf { 0x2000 } else { 0 }
                } else {
                    0x4000 // DF, as TCP stacks send with path MTU discovery
                };
                let l3 = frame.len();
                frame.push(0x40 | (hlen / 4).min(15) as u8);
                frame.push(0); // DSCP/ECN
                frame.extend_from_slice(&total.to_be_bytes());
                frame.extend_from_slice(&self.ip_id.to_be_bytes());
                frame.extend_from_slice(&frag_word.to_be_bytes());
                frame.push(self.ttl);
                frame.push(proto);
                frame.extend_from_slice(&[0, 0]);
                frame.extend_from_slice(&s);
                frame.extend_from_slice(&d);
                frame.extend_from_slice(&options);
                let check = checksum::internet_checksum(&frame[l3..]);
                frame[l3 + 10..l3 + 12].copy_from_slice(&check.to_be_bytes());
                frame.extend_from_slice(&l4);
            }
            Net::V6 { src, dst } => {
                frame.extend_from_slice(&0x86ddu16.to_be_bytes());
                let (s, d) = (src.octets(), dst.octets());
                let segment = self.segment(|p, seg| checksum::l4_checksum_v6(s, d, p, seg));
                let offset = self
                    .ext_headers
                    .iter()
                    .find(|h| h.kind == 44 && h.bytes.len() >= 4)
                    .map_or(0, |h| u16::from_be_bytes([h.bytes[2], h.bytes[3]]) >> 3);
                let l4 = self.carried(segment, offset);
                let mut chain = Vec::new();
                for (i, h) in self.ext_headers.iter().enumerate() {
                    let next = self.ext_headers.get(i + 1).map_or(proto, |n| n.kind);
                    let start = chain.len();
                    chain.extend_from_slice(&h.bytes);
                    if let Some(b) = chain.get_mut(start) {
                        *b = next;
                    }
                }
                let first = self.ext_headers.first().map_or(proto, |h| h.kind);
                let plen = u16::try_from(chain.len() + l4.len()).unwrap_or(u16::MAX);
                frame.extend_from_slice(&[0x60, 0, 0, 0]);
                frame.extend_from_slice(&plen.to_be_bytes());
                frame.push(first);
                frame.push(self.ttl);
                frame.extend_from_slice(&s);
                frame.extend_from_slice(&d);
                frame.extend_from_slice(&chain);
                frame.extend_from_slice(&l4);
            }
            Net::Other { ethertype } => {
                frame.extend_from_slice(&ethertype.to_be_bytes());
                frame.extend_from_slice(&self.payload);
            }
        }
        if frame.len() < self.pad_to {
            frame.resize(self.pad_to, 0);
        }
        frame
    }
}

/// A minimal ARP request (who-has `target` tell `sender`), for non-IP tests.
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut arp = vec![0, 1, 0x08, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    arp.extend_from_slice(&sender.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&target.octets());
    FrameBuilder::ethernet(0x0806)
        .macs([0x02, 0, 0, 0, 0, 0x01], [0xff; 6])
        .payload(&arp)
        .pad_to(60)
        .build()
}

#[cfg(test)]
mod tests {
    use super::checksum::*;
    use super::*;
    use crate::parse::tcp_flags::*;

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 section 3 example: sum 0xddf2, checksum its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), !0xddf2);
        // Odd length pads with zero.
        assert_eq!(internet_checksum(&[0xff]), !0xff00);
        assert_eq!(internet_checksum(&[]), 0xffff);
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = FrameBuilder::tcp_v4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            1,
            25,
            SYN,
        )
        .ipv4_options(&[1, 1, 1])
        .build();
        assert_eq!(f[14], 0x46);
        assert_eq!(internet_checksum(&f[14..38]), 0);
    }

    #[test]
    fn tcp_and_udp_checksums_verify() {
        let (s4, d4) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(203, 0, 113, 9));
        let f = FrameBuilder::tcp_v4(s4, d4, 1234, 25, SYN)
            .payload(b"hello")
            .build();
        assert_eq!(l4_checksum_v4(s4.octets(), d4.octets(), 6, &f[34..]), 0);
        let f = FrameBuilder::udp_v4(s4, d4, 53, 53).payload(b"abc").build();
        assert_eq!(l4_checksum_v4(s4.octets(), d4.octets(), 17, &f[34..]), 0);
        let (s6, d6): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let f = FrameBuilder::tcp_v6(s6, d6, 1, 25, SYN)
            .tcp_options(&[2, 4, 5, 0xb4])
            .build();
        assert_eq!(l4_checksum_v6(s6.octets(), d6.octets(), 6, &f[54..]), 0);
        let f = FrameBuilder::udp_v6(s6, d6, 1, 2).payload(b"x").build();
        assert_eq!(l4_checksum_v6(s6.octets(), d6.octets(), 17, &f[54..]), 0);
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        let mut data = vec![
            0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let check = internet_checksum(&data);
        data[8] = 63; // TTL 64 -> 63 changes the word at 8..10
        let updated = update16(
            check,
            u16::from_be_bytes([64, 6]),
            u16::from_be_bytes([63, 6]),
        );
        assert_eq!(updated, internet_checksum(&data));
    }

    #[test]
    fn vlan_tags_outermost_first() {
        let f = FrameBuilder::udp_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 2)
            .vlan(0x88a8, 10)
            .vlan(0x8100, 20)
            .build();
        assert_eq!(
            &f[12..22],
            &[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]
        );
    }

    #[test]
    fn fragments_carry_the_right_slice() {
        let (s, d) = (Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2));
        let f = FrameBuilder::tcp_v4(s, d, 1, 25, SYN)
            .payload(&[7; 40])
            .ipv4_fragment(2, false)
            .build();
        // 60-byte segment, starting at byte 16.
        assert_eq!(f.len(), 34 + 44);
        assert_eq!(u16::from_be_bytes([f[20], f[21]]), 2);
        let f = FrameBuilder::tcp_v4(s, d, 1, 25, SYN)
            .ipv4_fragment(0, true)
            .truncate_l4(8)
            .build();
        assert_eq!(f.len(), 34 + 8);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 28);
        assert_eq!(u16::from_be_bytes([f[20], f[21]]), 0x2000);
    }

    #[test]
    fn ipv6_chain_links_next_headers() {
        let f = FrameBuilder::tcp_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, 1, 25, SYN)
            .ipv6_ext_headers([
                Ipv6Ext::hop_by_hop(),
                Ipv6Ext::destination_options(),
                Ipv6Ext::auth(),
            ])
            .build();
        assert_eq!(f[20], 0); // fixed header -> HBH
        assert_eq!(f[54], 60); // HBH -> dstopts
        assert_eq!(f[62], 51); // dstopts -> AH
        assert_eq!(f[70], 6); // AH -> TCP
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 8 + 8 + 24 + 20);
    }

    #[test]
    fn padding_and_arp() {
        let f = arp_request(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
    }
}
