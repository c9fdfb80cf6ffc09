//! Turns a blocked customer's SYN into the RST+ACK its peer would send, in
//! place, for `block.action = "reset"`: the customer's MTA fails fast with
//! "connection refused" instead of retrying a silently dropped SYN for
//! minutes. Runs on the worker's fast path: no allocation, no panics.

use crate::checksum;
use crate::parse::{
    be16, be32, tcp_flags, Outcome, Parsed, SrcAddr, IPPROTO_TCP, IPV6_HLEN, TCP_MIN_HLEN,
};

/// Minimum Ethernet frame length without FCS; shorter frames are padded.
const ETH_MIN_FRAME: usize = 60;
/// TTL / hop limit of generated resets.
const RESET_TTL: u8 = 64;
const IPV4_HLEN: usize = 20;

#[inline]
fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// What the RST needs from the SYN, read before anything is overwritten.
struct Syn {
    sport: u16,
    dport: u16,
    /// The acknowledgment number of the reset: everything the SYN occupied
    /// in sequence space (SYN, FIN, payload).
    ack: u32,
}

/// Reads the SYN's TCP header from `tcp` (the segment, bounded by the IP
/// length) and checks it is still a SYN.
#[inline]
fn read_syn(tcp: &[u8]) -> Option<Syn> {
    let (sport, dport, seq) = (be16(tcp, 0)?, be16(tcp, 2)?, be32(tcp, 4)?);
    let doff = usize::from(*tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    if doff < TCP_MIN_HLEN
        || doff > tcp.len()
        || flags & tcp_flags::SYN == 0
        || flags & tcp_flags::ACK != 0
    {
        return None;
    }
    // The segment is at most 65535 bytes, so this fits a u32.
    let payload = u32::try_from(tcp.len() - doff).ok()?;
    let fin = u32::from(flags & tcp_flags::FIN != 0);
    Some(Syn {
        sport,
        dport,
        ack: seq.wrapping_add(1).wrapping_add(fin).wrapping_add(payload),
    })
}

/// The 20-byte RST+ACK header (checksum zero) answering `syn`.
#[inline]
fn rst_header(syn: &Syn) -> [u8; TCP_MIN_HLEN] {
    let mut tcp = [0u8; TCP_MIN_HLEN];
    // Constant indices into a fixed-size array: checked at compile time.
    tcp[0..2].copy_from_slice(&syn.dport.to_be_bytes());
    tcp[2..4].copy_from_slice(&syn.sport.to_be_bytes());
    // seq (4..8) stays 0: the SYN carried no ACK to take it from (RFC 9293 3.10.7.1).
    tcp[8..12].copy_from_slice(&syn.ack.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = tcp_flags::RST | tcp_flags::ACK;
    // window, checksum and urgent pointer stay 0.
    tcp
}

#[inline]
fn put16(buf: &mut [u8], at: usize, v: u16) {
    if let Some(dst) = buf.get_mut(at..at + 2) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

/// Rewrites the `WatchedSyn` frame described by `parsed` into the TCP RST+ACK
/// the server would have answered, addressed back to the SYN's sender, and
/// returns the new frame length (the caller trims the mbuf to it).
///
/// The reset keeps the VLAN tags, swaps MACs, addresses and ports, has
/// seq 0, ack = SYN's seq + 1 (+1 for FIN) + payload length, window 0, no TCP
/// options, TTL/hop limit 64, and no IPv4 options or IPv6 extension headers
/// (a reflected routing header would be wrong, and the RST needs none). IPv4
/// gets ID 0 and DF. Checksums are recomputed. A frame shorter than 60 bytes
/// after the rewrite is zero-padded to 60 when `frame` is that long (the
/// worker passes the received frame, so a 54-byte SYN gives a 54-byte RST:
/// NICs pad short frames on the wire).
///
/// Returns `None`, leaving the frame untouched, if `parsed` is not a
/// `WatchedSyn`, is a fragment, or does not match the frame.
#[inline]
pub fn syn_to_rst(frame: &mut [u8], parsed: &Parsed) -> Option<usize> {
    if parsed.outcome != Outcome::WatchedSyn || parsed.fragment {
        return None;
    }
    let l3 = usize::from(parsed.l3_offset);
    let l4 = usize::from(parsed.l4_offset);
    if l3 < 14 || l4 <= l3 {
        return None;
    }
    // Build the new L3+L4 headers in a stack buffer first so that every
    // check happens before the frame is touched.
    let mut hdr = [0u8; IPV6_HLEN + TCP_MIN_HLEN];
    let hdr_len = match parsed.src? {
        SrcAddr::V4(_) => {
            let ip = frame.get(l3..)?;
            let vihl = *ip.first()?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            let total = usize::from(be16(ip, 2)?);
            let frag = be16(ip, 6)?;
            if vihl >> 4 != 4 || ihl < IPV4_HLEN || l3 + ihl != l4 || total < ihl + TCP_MIN_HLEN {
                return None;
            }
            // Any fragment: MF set or non-zero offset.
            if frag & 0x3fff != 0 || *ip.get(9)? != IPPROTO_TCP {
                return None;
            }
            let syn = read_syn(ip.get(ihl..total)?)?;
            let (src, dst) = (array::<4>(ip, 12)?, array::<4>(ip, 16)?);
            let (ip_hdr, tcp_hdr) = hdr.split_at_mut(IPV4_HLEN);
            ip_hdr[..12].copy_from_slice(&[
                0x45,
                0,
                0,
                (IPV4_HLEN + TCP_MIN_HLEN) as u8,
                0,
                0,
                0x40, // DF
                0,
                RESET_TTL,
                IPPROTO_TCP,
                0,
                0,
            ]);
            ip_hdr[12..16].copy_from_slice(&dst);
            ip_hdr[16..20].copy_from_slice(&src);
            let ip_check = checksum::internet_checksum(ip_hdr);
            put16(ip_hdr, 10, ip_check);
            let tcp = tcp_hdr.get_mut(..TCP_MIN_HLEN)?;
            tcp.copy_from_slice(&rst_header(&syn));
            let check = checksum::l4_checksum_v4(dst, src, IPPROTO_TCP, tcp);
            put16(tcp, 16, check);
            IPV4_HLEN + TCP_MIN_HLEN
        }
        SrcAddr::V6(_) => {
            let ip = frame.get(l3..)?;
            let payload_len = usize::from(be16(ip, 4)?);
            if *ip.first()? >> 4 != 6
                || l4 < l3 + IPV6_HLEN
                || l4 + TCP_MIN_HLEN > l3 + IPV6_HLEN + payload_len
            {
                return None;
            }
            let syn = read_syn(frame.get(l4..l3 + IPV6_HLEN + payload_len)?)?;
            let (src, dst) = (array::<16>(ip, 8)?, array::<16>(ip, 24)?);
            let (ip_hdr, tcp) = hdr.split_at_mut(IPV6_HLEN);
            ip_hdr[..8].copy_from_slice(&[
                0x60,
                0,
                0,
                0,
                0,
                TCP_MIN_HLEN as u8,
                IPPROTO_TCP,
                RESET_TTL,
            ]);
            ip_hdr[8..24].copy_from_slice(&dst);
            ip_hdr[24..40].copy_from_slice(&src);
            tcp.copy_from_slice(&rst_header(&syn));
            let check = checksum::l4_checksum_v6(dst, src, IPPROTO_TCP, tcp);
            put16(tcp, 16, check);
            IPV6_HLEN + TCP_MIN_HLEN
        }
    };
    let new_len = l3 + hdr_len;
    // Always true (the SYN had at least these headers); checked so that
    // nothing below can fail half-way.
    if new_len > frame.len() {
        return None;
    }
    if let Some(macs) = frame.get_mut(..12) {
        let (dst, src) = macs.split_at_mut(6);
        dst.swap_with_slice(src);
    }
    if let (Some(out), Some(new)) = (frame.get_mut(l3..new_len), hdr.get(..hdr_len)) {
        out.copy_from_slice(new);
    }
    // Pad runts: some NICs do not, and the IP length bounds the segment.
    let padded = new_len.max(ETH_MIN_FRAME.min(frame.len()));
    if let Some(pad) = frame.get_mut(new_len..padded) {
        pad.fill(0);
    }
    Some(padded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{internet_checksum, l4_checksum_v4, l4_checksum_v6};
    use crate::craft::{FrameBuilder, Ipv6Ext};
    use crate::parse::tcp_flags::*;
    use crate::parse::{parse, WatchedPorts, TPID_8021AD, TPID_8021Q};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x5e];

    fn watched() -> WatchedPorts {
        WatchedPorts::new(&[25])
    }

    /// Resets `frame` and checks everything a peer would check; returns
    /// the reset frame.
    fn reset_and_check(mut frame: Vec<u8>, seq: u32, expect_ack: u32) -> Vec<u8> {
        let syn = parse(&frame, &watched());
        assert_eq!(syn.outcome, Outcome::WatchedSyn);
        let original = frame.clone();
        let len = syn_to_rst(&mut frame, &syn).expect("reset");
        let rst = &frame[..len];
        assert!(len >= 60 || len == original.len());
        // Reply goes back where the SYN came from.
        assert_eq!(&rst[..6], &original[6..12]);
        assert_eq!(&rst[6..12], &original[..6]);
        let l3 = usize::from(syn.l3_offset);
        assert_eq!(&rst[12..l3], &original[12..l3], "VLAN tags kept");
        // It parses as TCP from the server's port to the client's.
        let client_port = u16::from_be_bytes([
            original[usize::from(syn.l4_offset)],
            original[usize::from(syn.l4_offset) + 1],
        ]);
        let p = parse(rst, &WatchedPorts::new(&[client_port]));
        assert_eq!(p.outcome, Outcome::WatchedOther);
        assert_eq!(p.tcp_flags, RST | ACK);
        assert_eq!(p.l4_len, 20);
        let l4 = usize::from(p.l4_offset);
        let tcp = &rst[l4..l4 + 20];
        assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 25);
        assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), client_port);
        assert_eq!(&tcp[4..8], &[0; 4], "seq 0");
        assert_eq!(
            u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
            expect_ack
        );
        assert_eq!(tcp[12], 0x50);
        assert_eq!(&tcp[14..16], &[0, 0], "window 0");
        let _ = seq;
        match p.src.unwrap() {
            SrcAddr::V4(a) => {
                assert_eq!(l4, l3 + 20);
                let ip = &rst[l3..l3 + 20];
                assert_eq!(internet_checksum(ip), 0, "IPv4 header checksum");
                assert_eq!(&ip[12..16], &original[l3 + 16..l3 + 20]);
                assert_eq!(&ip[16..20], &original[l3 + 12..l3 + 16]);
                assert_eq!(
                    a,
                    u32::from_be_bytes(original[l3 + 16..l3 + 20].try_into().unwrap())
                );
                assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 40);
                assert_eq!(&ip[4..8], &[0, 0, 0x40, 0], "ID 0, DF");
                assert_eq!(ip[8], 64);
                let (s, d) = (
                    ip[12..16].try_into().unwrap(),
                    ip[16..20].try_into().unwrap(),
                );
                assert_eq!(l4_checksum_v4(s, d, 6, tcp), 0, "TCP checksum");
            }
            SrcAddr::V6(_) => {
                assert_eq!(l4, l3 + 40);
                let ip = &rst[l3..l3 + 40];
                assert_eq!(&ip[8..24], &original[l3 + 24..l3 + 40]);
                assert_eq!(&ip[24..40], &original[l3 + 8..l3 + 24]);
                assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 20);
                assert_eq!((ip[6], ip[7]), (6, 64));
                let (s, d) = (
                    ip[8..24].try_into().unwrap(),
                    ip[24..40].try_into().unwrap(),
                );
                assert_eq!(l4_checksum_v6(s, d, 6, tcp), 0, "TCP checksum");
            }
        }
        rst.to_vec()
    }

    fn v4() -> FrameBuilder {
        FrameBuilder::tcp_v4(
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(203, 0, 113, 1),
            40001,
            25,
            SYN,
        )
        .macs(CLIENT_MAC, SERVER_MAC)
    }

    fn v6() -> FrameBuilder {
        let (s, d): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8:1::7".parse().unwrap(),
            "2001:db8:2::1".parse().unwrap(),
        );
        FrameBuilder::tcp_v6(s, d, 40001, 25, SYN).macs(CLIENT_MAC, SERVER_MAC)
    }

    #[test]
    fn v4_syn_with_options() {
        let f = v4()
            .seq(1000)
            .tcp_options(&[
                2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
            ])
            .build();
        let rst = reset_and_check(f, 1000, 1001);
        assert_eq!(
            rst.len(),
            60,
            "54-byte reset padded to the Ethernet minimum"
        );
        assert_eq!(&rst[54..], &[0; 6]);
    }

    #[test]
    fn v4_with_ip_options_vlan_fin_and_payload() {
        let f = v4()
            .seq(u32::MAX)
            .ipv4_options(&[0x94, 4, 0, 0])
            .vlan(TPID_8021Q, 42)
            .payload(b"EHLO")
            .build();
        reset_and_check(f, u32::MAX, 4); // wraps: MAX + 1 + 4
        let f = FrameBuilder::tcp_v4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            5,
            25,
            SYN | FIN,
        )
        .seq(10)
        .vlan(TPID_8021AD, 1)
        .vlan(TPID_8021Q, 2)
        .build();
        reset_and_check(f, 10, 12);
    }

    #[test]
    fn v6_syn_plain_qinq_and_with_ext_headers() {
        let rst = reset_and_check(v6().seq(7).build(), 7, 8);
        assert_eq!(rst.len(), 74);
        reset_and_check(
            v6().seq(7)
                .vlan(TPID_8021AD, 3)
                .vlan(TPID_8021Q, 4)
                .payload(&[1; 9])
                .build(),
            7,
            17,
        );
        // Extension headers are dropped from the reset.
        let f = v6()
            .seq(1)
            .ipv6_ext_headers([Ipv6Ext::hop_by_hop(), Ipv6Ext::destination_options()])
            .build();
        reset_and_check(f, 1, 2);
    }

    #[test]
    fn refuses_what_it_must_not_answer() {
        let cases = [
            v4().build_with_flags(SYN | ACK),
            FrameBuilder::tcp_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 80, SYN).build(),
            FrameBuilder::udp_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 25).build(),
            v4().payload(&[0; 40])
                .ipv4_fragment(0, true)
                .truncate_l4(24)
                .build(),
            v6().payload(&[0; 40])
                .ipv6_fragment(0, true)
                .truncate_l4(24)
                .build(),
            vec![0; 10],
        ];
        for f in cases {
            let mut copy = f.clone();
            let p = parse(&f, &watched());
            assert_eq!(syn_to_rst(&mut copy, &p), None);
            assert_eq!(copy, f, "untouched");
        }
        // A Parsed that does not match the frame.
        let f = v4().build();
        let p = parse(&f, &watched());
        let mut other = v6().build();
        let before = other.clone();
        assert_eq!(syn_to_rst(&mut other, &p), None);
        assert_eq!(other, before);
        let mut short = f[..40].to_vec();
        assert_eq!(syn_to_rst(&mut short, &p), None);
    }

    impl FrameBuilder {
        fn build_with_flags(&self, flags: u8) -> Vec<u8> {
            let mut f = self.build();
            f[34 + 13] = flags;
            f
        }
    }

    proptest! {
        #[test]
        fn random_syns_reset_correctly(
            v6_addr in any::<Option<u128>>(),
            a4 in any::<u32>(),
            sport in any::<u16>(),
            seq in any::<u32>(),
            extra in prop_oneof![Just(0u8), Just(FIN), Just(RST), Just(PSH | URG)],
            tags in proptest::collection::vec(any::<u16>(), 0..=2),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut b = match v6_addr {
                Some(a) => FrameBuilder::tcp_v6(Ipv6Addr::from(a), Ipv6Addr::LOCALHOST, sport, 25, SYN | extra),
                None => FrameBuilder::tcp_v4(Ipv4Addr::from(a4), Ipv4Addr::LOCALHOST, sport, 25, SYN | extra),
            }.macs(CLIENT_MAC, SERVER_MAC).seq(seq).payload(&payload);
            for t in tags {
                b = b.vlan(TPID_8021Q, t);
            }
            let fin = u32::from(extra & FIN != 0);
            let ack = seq.wrapping_add(1 + fin + payload.len() as u32);
            reset_and_check(b.build(), seq, ack);
        }

        #[test]
        fn mutated_frames_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            v6 in any::<bool>(),
        ) {
            let f = if v6 { super::tests::v6().build() } else { super::tests::v4().build() };
            let p = parse(&f, &watched());
            let mut m = f.clone();
            for (at, v) in edits {
                let len = m.len();
                m[at % len] = v;
            }
            // Stale parse results on a changed frame must not panic either.
            let _ = syn_to_rst(&mut m.clone(), &p);
            let p2 = parse(&m, &watched());
            if let Some(len) = syn_to_rst(&mut m, &p2) {
                prop_assert!(len <= f.len());
            }
        }
    }
}
