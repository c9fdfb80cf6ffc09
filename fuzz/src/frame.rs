//! Fuzz entry point for the per-packet path: parse, classify, count and
//! judge one inside→outside frame, and rewrite it into a RST when the
//! verdict says so. Uses only `synwall_dataplane` so that the workspace's
//! `tests/tests/fuzz_corpus.rs` replays the corpus through this very file
//! (`#[path]`), without libFuzzer.
//!
//! Input: one policy byte, then the frame.
//! - bit 0: `block.action = reset` (else drop)
//! - bit 1: `block.scope = smtp` (else syn)
//! - bit 2: `detect.malformed = drop` (else forward)
//! - bit 3: customer 0 (198.51.100.0/24, 2001:db8:1::/48) blocked
//! - bit 4: customer 1 (192.0.2.0/24) blocked
//! - bit 5: customer 0's grant is spent (forwarded == grant)
//!
//! Besides "never panics", it checks what docs/architecture.md and the types promise:
//! one outcome per frame, offsets inside the frame, verdicts that follow the
//! policy, resets that are well-formed, and (against a small reference
//! reader written for clarity, not speed) that every well-formed SYN to a
//! watched port is seen as one and that a blocked customer's never passes.

use std::sync::OnceLock;

use synwall_dataplane::classify::{Classifier, CustomerId};
use synwall_dataplane::parse::{parse, tcp_flags, Outcome, SrcAddr, WatchedPorts};
use synwall_dataplane::reset::syn_to_rst;
use synwall_dataplane::shard::WorkerShard;
use synwall_dataplane::verdict::{
    judge, BlockAction, BlockScope, BurstJudge, Frame, MalformedPolicy, Policy, Tally, Verdict,
};

/// Watched ports of the fuzzed policy.
pub const WATCHED: [u16; 2] = [25, 587];

/// Customers: (prefix, length, id).
const PREFIXES: [(&str, u8, u32); 4] = [
    ("198.51.100.0", 24, 0),
    ("2001:db8:1::", 48, 0),
    ("192.0.2.0", 24, 1),
    ("10.0.0.0", 8, 2),
];

fn classifier() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| {
        Classifier::build(
            3,
            PREFIXES
                .iter()
                .map(|&(a, l, id)| (a.parse().expect("prefix"), l, CustomerId::new(id))),
        )
        .expect("classifier")
    })
}

/// Runs one input; panics on any broken invariant.
pub fn check(data: &[u8]) {
    let Some((&knobs, frame)) = data.split_first() else {
        return;
    };
    let policy = Policy {
        watched: WatchedPorts::new(&WATCHED),
        action: if knobs & 1 != 0 {
            BlockAction::Reset
        } else {
            BlockAction::Drop
        },
        scope: if knobs & 2 != 0 {
            BlockScope::Smtp
        } else {
            BlockScope::Syn
        },
        malformed: if knobs & 4 != 0 {
            MalformedPolicy::Drop
        } else {
            MalformedPolicy::Forward
        },
    };
    let classifier = classifier();
    let fresh_shard = || {
        let shard = WorkerShard::new(3);
        shard.set_blocked(CustomerId::new(0), knobs & 8 != 0);
        shard.set_blocked(CustomerId::new(1), knobs & 16 != 0);
        if knobs & 32 != 0 {
            shard.set_grant(CustomerId::new(0), 0);
        }
        shard
    };
    let shard = fresh_shard();
    let mut tally = Tally::default();
    let verdict = judge(frame, &policy, classifier, &shard, &mut tally);
    let parsed = parse(frame, &policy.watched);

    // The worker's staged burst path answers and counts exactly the same.
    let twin = fresh_shard();
    let mut burst_tally = Tally::default();
    let mut burst = BurstJudge::default();
    let one = Frame {
        data: frame,
        wire_len: frame.len(),
    };
    let verdicts = burst.judge(
        std::iter::once(one),
        &policy,
        classifier,
        &twin,
        &mut burst_tally,
    );
    assert_eq!(verdicts, [verdict], "burst vs one frame");
    assert_eq!(burst_tally.outcomes, tally.outcomes);
    assert_eq!(burst_tally.syn_no_customer, tally.syn_no_customer);
    for c in CustomerId::all(3) {
        assert_eq!(twin.read(c), shard.read(c));
    }

    // One outcome, counted once, in range.
    assert!(parsed.outcome.index() < Outcome::COUNT);
    assert_eq!(tally.outcomes.iter().sum::<u64>(), 1, "{parsed:?}");
    assert_eq!(tally.outcomes[parsed.outcome.index()], 1, "{parsed:?}");
    // Offsets stay inside the frame.
    let (l3, l4, l4_len) = (
        usize::from(parsed.l3_offset),
        usize::from(parsed.l4_offset),
        usize::from(parsed.l4_len),
    );
    assert!(l3 <= frame.len(), "{parsed:?}");
    if l4 != 0 {
        assert!(l4 > l3, "{parsed:?}");
        assert!(l4 + l4_len <= frame.len(), "{parsed:?} len {}", frame.len());
    } else {
        assert_eq!(l4_len, 0, "{parsed:?}");
    }
    if matches!(parsed.outcome, Outcome::WatchedSyn | Outcome::WatchedOther) {
        assert!(l4 != 0 && l4_len >= 20, "{parsed:?}");
        assert!(parsed.src.is_some(), "{parsed:?}");
    }
    if parsed.outcome == Outcome::WatchedSyn {
        assert!(parsed.tcp_flags & tcp_flags::SYN != 0 && parsed.tcp_flags & tcp_flags::ACK == 0);
    }

    // The verdict follows the policy.
    let customer = parsed.src.and_then(|s| classifier.lookup(s));
    let blocked = customer.is_some_and(|c| shard.is_blocked(c));
    match verdict {
        Verdict::Forward => {
            if parsed.outcome == Outcome::WatchedSyn {
                assert!(!blocked, "blocked customer's SYN forwarded: {parsed:?}");
                assert!(
                    customer != Some(CustomerId::new(0)) || knobs & 32 == 0,
                    "SYN past a spent grant"
                );
            }
            if parsed.outcome == Outcome::FragmentEvasive {
                assert!(!blocked, "blocked customer's evasive fragment forwarded");
            }
            if parsed.outcome.is_malformed() {
                assert_eq!(policy.malformed, MalformedPolicy::Forward);
                assert!(!blocked, "blocked customer's malformed frame forwarded");
            }
        }
        Verdict::DropBlocked => {
            assert!(
                matches!(
                    parsed.outcome,
                    Outcome::WatchedSyn | Outcome::WatchedOther | Outcome::FragmentEvasive
                ) || parsed.outcome.is_malformed(),
                "{parsed:?}"
            );
            assert!(customer.is_some(), "{parsed:?}");
        }
        Verdict::DropMalformed => {
            assert!(parsed.outcome.is_malformed());
            assert_eq!(policy.malformed, MalformedPolicy::Drop);
        }
        Verdict::Reset => {
            assert_eq!(policy.action, BlockAction::Reset);
            assert_eq!(parsed.outcome, Outcome::WatchedSyn);
            check_reset(frame, &parsed);
        }
    }
    let seen: u64 = shard.seen_counts().sum();
    let want_seen = u64::from(parsed.outcome == Outcome::WatchedSyn && customer.is_some());
    assert_eq!(seen, want_seen);
    assert_eq!(
        tally.syn_no_customer,
        u64::from(parsed.outcome == Outcome::WatchedSyn && customer.is_none())
    );

    // Against the reference reader.
    if let Some(syn) = reference_syn(frame) {
        assert_eq!(parsed.outcome, Outcome::WatchedSyn, "reference: {syn:?}");
        assert_eq!(parsed.src, Some(syn.src), "reference: {syn:?}");
        assert_eq!(
            (l4, usize::from(parsed.tcp_flags)),
            (syn.l4, usize::from(syn.flags))
        );
        if blocked {
            assert!(!matches!(verdict, Verdict::Forward));
        }
    }
}

/// The RST made from a blocked SYN fits in the frame, goes back to the
/// sender and is a RST+ACK from the watched port.
fn check_reset(frame: &[u8], syn: &synwall_dataplane::parse::Parsed) {
    let mut copy = frame.to_vec();
    let Some(len) = syn_to_rst(&mut copy, syn) else {
        // Refused (a fragment, or a frame it cannot answer): the worker
        // drops it; the frame must be untouched.
        assert_eq!(copy, frame);
        return;
    };
    assert!(!syn.fragment);
    assert!(len <= frame.len() && len >= 54, "{len}");
    let rst = &copy[..len];
    assert_eq!(&rst[..6], &frame[6..12]);
    assert_eq!(&rst[6..12], &frame[..6]);
    let l3 = usize::from(syn.l3_offset);
    assert_eq!(&rst[12..l3], &frame[12..l3], "VLAN tags kept");
    let l4 = usize::from(syn.l4_offset);
    let sport = u16::from_be_bytes([frame[l4], frame[l4 + 1]]);
    let dport = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
    let p = parse(rst, &WatchedPorts::new(&[sport]));
    assert_eq!(p.outcome, Outcome::WatchedOther, "{p:?}");
    assert_eq!(p.tcp_flags, tcp_flags::RST | tcp_flags::ACK);
    assert_eq!(p.l4_len, 20);
    let t = usize::from(p.l4_offset);
    assert_eq!(u16::from_be_bytes([rst[t], rst[t + 1]]), dport);
}

/// A well-formed SYN to a watched port as docs/architecture.md defines it.
#[derive(Debug)]
pub struct ReferenceSyn {
    pub src: SrcAddr,
    pub l4: usize,
    pub flags: u8,
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

/// A slow, plain reading of docs/architecture.md, "How a frame is judged": Ethernet,
/// at most two VLAN tags, IPv4 (options allowed, not a fragment) or IPv6
/// (at most 8 extension headers, hop-by-hop only first, no fragment header),
/// a complete TCP header with a sane data offset, SYN without ACK, to a
/// watched port. `None` for anything else.
pub fn reference_syn(f: &[u8]) -> Option<ReferenceSyn> {
    let mut off = 12;
    let mut ethertype = be16(f, off)?;
    let mut tags = 0;
    while [0x8100, 0x88a8, 0x9100].contains(&ethertype) {
        tags += 1;
        if tags > 2 {
            return None;
        }
        off += 4;
        ethertype = be16(f, off)?;
    }
    let l3 = off + 2;
    let ip = f.get(l3..)?;
    let (src, proto, seg_start, seg_end) = match ethertype {
        0x0800 => {
            let ihl = usize::from(*ip.first()? & 15) * 4;
            let total = be16(ip, 2)?;
            if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() {
                return None;
            }
            if be16(ip, 6)? & 0x3fff != 0 {
                return None;
            }
            let src = u32::from_be_bytes(ip.get(12..16)?.try_into().ok()?);
            (SrcAddr::V4(src), *ip.get(9)?, ihl, total)
        }
        0x86dd => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return None;
            }
            let plen = be16(ip, 4)?;
            if 40 + plen > ip.len() || plen == 0 {
                return None;
            }
            let src = u128::from_be_bytes(ip.get(8..24)?.try_into().ok()?);
            let mut next = ip[6];
            let mut pos = 40;
            let mut count = 0;
            while [0u8, 43, 60].contains(&next) {
                count += 1;
                if count > 8 || (next == 0 && count != 1) {
                    return None;
                }
                let len = (usize::from(*ip.get(pos + 1)?) + 1) * 8;
                if pos + len > 40 + plen {
                    return None;
                }
                next = ip[pos];
                pos += len;
            }
            (SrcAddr::V6(src), next, pos, 40 + plen)
        }
        _ => return None,
    };
    if proto != 6 {
        return None;
    }
    let tcp = ip.get(seg_start..seg_end)?;
    if tcp.len() < 20 {
        return None;
    }
    let doff = usize::from(tcp[12] >> 4) * 4;
    let flags = tcp[13];
    let dport = be16(tcp, 2)? as u16;
    if doff < 20 || doff > tcp.len() || !WATCHED.contains(&dport) {
        return None;
    }
    if flags & tcp_flags::SYN == 0 || flags & tcp_flags::ACK != 0 {
        return None;
    }
    Some(ReferenceSyn {
        src,
        l4: l3 + seg_start,
        flags,
    })
}
