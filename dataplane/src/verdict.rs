//! The per-packet decision for inside→outside frames: parse, classify,
//! count, verdict. Plain Rust over a byte slice and the worker's shard, so
//! it is tested and benchmarked without EAL.
use crate::classify::Classifier;
use crate::parse::{parse, parse_chained, Outcome, Parsed, WatchedPorts};
use crate::shard::{add, bump, WorkerShard, WorkerStats};

/// What to do with a blocked customer's SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAction {
    /// Drop it silently.
    Drop,
    /// Answer it with a TCP RST so the customer's mailer fails fast.
    Reset,
}

/// Which of a blocked customer's traffic is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockScope {
    /// New connections only (SYNs to watched ports).
    Syn,
    /// All TCP to watched ports, established sessions included.
    Smtp,
}

/// What happens to malformed frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedPolicy {
    Forward,
    Drop,
}

/// The dataplane's fixed policy (from the config).
#[derive(Debug, Clone)]
pub struct Policy {
    pub watched: WatchedPorts,
    pub action: BlockAction,
    pub scope: BlockScope,
    pub malformed: MalformedPolicy,
}

/// The fate of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it on to the paired port.
    Forward,
    /// Free it: its customer is blocked (or out of grant).
    DropBlocked,
    /// Free it: malformed, and the policy drops malformed frames.
    DropMalformed,
    /// Rewrite it into a RST and send it back where it came from.
    Reset(Parsed),
}

/// A burst's counts, kept in registers and added to the worker's shared
/// counters once per burst ([`Tally::publish`]).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub outcomes: [u64; Outcome::COUNT],
    pub forwarded: u64,
    pub dropped_blocked: u64,
    pub dropped_malformed: u64,
    pub reset_sent: u64,
    pub syn_no_customer: u64,
}

impl Tally {
    /// Adds the burst's counts to the worker's counters (single writer).
    #[inline]
    pub fn publish(&self, stats: &WorkerStats) {
        for (c, n) in stats.outcomes.iter().zip(self.outcomes) {
            if n != 0 {
                add(c, n);
            }
        }
        let v = &stats.verdicts;
        for (c, n) in [
            (&v.forwarded, self.forwarded),
            (&v.dropped_blocked, self.dropped_blocked),
            (&v.dropped_malformed, self.dropped_malformed),
            (&v.reset_sent, self.reset_sent),
            (&v.syn_no_customer, self.syn_no_customer),
        ] {
            if n != 0 {
                add(c, n);
            }
        }
    }
}

/// Decides one inside→outside frame and counts it: its parse outcome, and
/// for watched SYNs the customer's seen/forwarded counters. The caller
/// counts what it did (forwarded, dropped, reset) once the frame is gone.
#[inline]
pub fn judge(
    frame: &[u8],
    policy: &Policy,
    classifier: &Classifier,
    shard: &WorkerShard,
    tally: &mut Tally,
) -> Verdict {
    decide(
        parse(frame, &policy.watched),
        policy,
        classifier,
        shard,
        tally,
    )
}

/// [`judge`] for a frame held in a chain of buffers: `first` is the first
/// segment, `wire_len` the whole frame's length (see
/// [`crate::parse::parse_chained`]).
#[cold]
pub fn judge_chained(
    first: &[u8],
    wire_len: usize,
    policy: &Policy,
    classifier: &Classifier,
    shard: &WorkerShard,
    tally: &mut Tally,
) -> Verdict {
    decide(
        parse_chained(first, wire_len, &policy.watched),
        policy,
        classifier,
        shard,
        tally,
    )
}

#[inline(always)]
fn decide(
    parsed: Parsed,
    policy: &Policy,
    classifier: &Classifier,
    shard: &WorkerShard,
    tally: &mut Tally,
) -> Verdict {
    if let Some(c) = tally.outcomes.get_mut(parsed.outcome.index()) {
        *c += 1;
    }
    match parsed.outcome {
        Outcome::WatchedSyn => {
            let Some(src) = parsed.src else {
                return Verdict::Forward;
            };
            let Some(id) = classifier.lookup(src) else {
                tally.syn_no_customer += 1;
                return Verdict::Forward;
            };
            let i = id as usize;
            let (Some(seen), Some(fwd), Some(grant)) = (
                shard.syn_seen.get(i),
                shard.syn_forwarded.get(i),
                shard.syn_grant.get(i),
            ) else {
                // A classifier newer than the shard: never drop on our own
                // inconsistency.
                return Verdict::Forward;
            };
            bump(seen);
            let forwarded = fwd.load(std::sync::atomic::Ordering::Relaxed);
            if shard.blocked.is_set(id)
                || forwarded >= grant.load(std::sync::atomic::Ordering::Relaxed)
            {
                return blocked(policy, parsed);
            }
            fwd.store(forwarded + 1, std::sync::atomic::Ordering::Relaxed);
            Verdict::Forward
        }
        Outcome::WatchedOther if policy.scope == BlockScope::Smtp => {
            if is_blocked(&parsed, classifier, shard) {
                Verdict::DropBlocked
            } else {
                Verdict::Forward
            }
        }
        // Cannot tell whether it hides a SYN: a blocked customer loses it.
        Outcome::FragmentEvasive => {
            if is_blocked(&parsed, classifier, shard) {
                Verdict::DropBlocked
            } else {
                Verdict::Forward
            }
        }
        Outcome::Malformed(_) if policy.malformed == MalformedPolicy::Drop => {
            Verdict::DropMalformed
        }
        // Forwarded by policy, but never for a blocked customer: a shape
        // the parser rejects may still be a SYN some host accepts.
        Outcome::Malformed(_) => {
            if is_blocked(&parsed, classifier, shard) {
                Verdict::DropBlocked
            } else {
                Verdict::Forward
            }
        }
        _ => Verdict::Forward,
    }
}

#[inline]
fn is_blocked(parsed: &Parsed, classifier: &Classifier, shard: &WorkerShard) -> bool {
    match parsed.src.and_then(|s| classifier.lookup(s)) {
        Some(id) => shard.blocked.is_set(id),
        None => false,
    }
}

#[cold]
fn blocked(policy: &Policy, parsed: Parsed) -> Verdict {
    match policy.action {
        BlockAction::Drop => Verdict::DropBlocked,
        BlockAction::Reset => Verdict::Reset(parsed),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;
    use crate::craft::FrameBuilder;
    use crate::parse::tcp_flags::{ACK, SYN};

    const ACME: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const OTHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
    const NOBODY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const MX: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 25);

    fn setup(
        action: BlockAction,
        scope: BlockScope,
        malformed: MalformedPolicy,
    ) -> (Policy, Classifier, WorkerShard, Tally) {
        let policy = Policy {
            watched: WatchedPorts::new(&[25, 587]),
            action,
            scope,
            malformed,
        };
        let classifier = Classifier::build(
            2,
            [
                ("198.51.100.0".parse().unwrap(), 24, 0),
                ("192.0.2.0".parse().unwrap(), 24, 1),
            ],
        )
        .unwrap();
        (policy, classifier, WorkerShard::new(2), Tally::default())
    }

    fn syn(src: Ipv4Addr, dport: u16) -> Vec<u8> {
        FrameBuilder::tcp_v4(src, MX, 40000, dport, SYN).build()
    }

    #[test]
    fn counts_and_forwards_unblocked_syns() {
        let (p, c, shard, mut stats) =
            setup(BlockAction::Drop, BlockScope::Syn, MalformedPolicy::Forward);
        for _ in 0..3 {
            assert_eq!(
                judge(&syn(ACME, 25), &p, &c, &shard, &mut stats),
                Verdict::Forward
            );
        }
        assert_eq!(
            judge(&syn(OTHER, 587), &p, &c, &shard, &mut stats),
            Verdict::Forward
        );
        assert_eq!(
            judge(&syn(ACME, 80), &p, &c, &shard, &mut stats),
            Verdict::Forward
        );
        assert_eq!(
            judge(&syn(NOBODY, 25), &p, &c, &shard, &mut stats),
            Verdict::Forward
        );
        assert_eq!(shard.syn_seen[0].load(Relaxed), 3);
        assert_eq!(shard.syn_forwarded[0].load(Relaxed), 3);
        assert_eq!(shard.syn_seen[1].load(Relaxed), 1);
        assert_eq!(stats.syn_no_customer, 1);
        assert_eq!(stats.outcomes[Outcome::WatchedSyn.index()], 5);
        assert_eq!(stats.outcomes[Outcome::OtherIp.index()], 1);
    }

    #[test]
    fn blocked_customer_syns_are_dropped_or_reset() {
        let (p, c, shard, mut stats) =
            setup(BlockAction::Drop, BlockScope::Syn, MalformedPolicy::Forward);
        shard.blocked.set(0, true);
        assert_eq!(
            judge(&syn(ACME, 25), &p, &c, &shard, &mut stats),
            Verdict::DropBlocked
        );
        assert_eq!(
            judge(&syn(OTHER, 25), &p, &c, &shard, &mut stats),
            Verdict::Forward
        );
        // Established SMTP and other ports pass with scope = syn.
        let est = FrameBuilder::tcp_v4(ACME, MX, 40000, 25, ACK).build();
        assert_eq!(judge(&est, &p, &c, &shard, &mut stats), Verdict::Forward);
        assert_eq!(shard.syn_seen[0].load(Relaxed), 1);
        assert_eq!(shard.syn_forwarded[0].load(Relaxed), 0);

        let (p, c, shard, mut stats) = setup(
            BlockAction::Reset,
            BlockScope::Smtp,
            MalformedPolicy::Forward,
        );
        shard.blocked.set(0, true);
        assert!(matches!(
            judge(&syn(ACME, 25), &p, &c, &shard, &mut stats),
            Verdict::Reset(_)
        ));
        assert_eq!(
            judge(&est, &p, &c, &shard, &mut stats),
            Verdict::DropBlocked
        );
    }

    #[test]
    fn grant_bounds_forwarded_syns_exactly() {
        let (p, c, shard, mut stats) =
            setup(BlockAction::Drop, BlockScope::Syn, MalformedPolicy::Forward);
        shard.syn_grant[0].store(5, Relaxed);
        let verdicts: Vec<Verdict> = (0..8)
            .map(|_| judge(&syn(ACME, 25), &p, &c, &shard, &mut stats))
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Forward).count(),
            5
        );
        assert_eq!(verdicts[5..], [Verdict::DropBlocked; 3]);
        assert_eq!(shard.syn_forwarded[0].load(Relaxed), 5);
        assert_eq!(shard.syn_seen[0].load(Relaxed), 8);
        // A new grant lets more through.
        shard.syn_grant[0].store(6, Relaxed);
        assert_eq!(
            judge(&syn(ACME, 25), &p, &c, &shard, &mut stats),
            Verdict::Forward
        );
    }

    #[test]
    fn evasive_fragments_of_blocked_customers_are_dropped() {
        let (p, c, shard, mut stats) =
            setup(BlockAction::Drop, BlockScope::Syn, MalformedPolicy::Forward);
        let tiny = FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
            .ipv4_fragment(0, true)
            .truncate_l4(8)
            .build();
        assert_eq!(judge(&tiny, &p, &c, &shard, &mut stats), Verdict::Forward);
        shard.blocked.set(0, true);
        assert_eq!(
            judge(&tiny, &p, &c, &shard, &mut stats),
            Verdict::DropBlocked
        );
        assert_eq!(stats.outcomes[Outcome::FragmentEvasive.index()], 2);
    }

    #[test]
    fn a_blocked_customers_malformed_frames_are_dropped_even_when_forwarding_malformed() {
        let (p, c, shard, mut stats) =
            setup(BlockAction::Drop, BlockScope::Syn, MalformedPolicy::Forward);
        let deep = FrameBuilder::tcp_v4(ACME, MX, 40000, 25, SYN)
            .vlan(0x8100, 1)
            .vlan(0x8100, 2)
            .vlan(0x8100, 3)
            .build();
        let other = FrameBuilder::tcp_v4(OTHER, MX, 40000, 25, SYN)
            .vlan(0x8100, 1)
            .vlan(0x8100, 2)
            .vlan(0x8100, 3)
            .build();
        assert_eq!(judge(&deep, &p, &c, &shard, &mut stats), Verdict::Forward);
        shard.blocked.set(0, true);
        assert_eq!(
            judge(&deep, &p, &c, &shard, &mut stats),
            Verdict::DropBlocked
        );
        assert_eq!(judge(&other, &p, &c, &shard, &mut stats), Verdict::Forward);
    }

    #[test]
    fn malformed_policy() {
        let bad = [0u8; 10];
        let (p, c, shard, mut stats) =
            setup(BlockAction::Drop, BlockScope::Syn, MalformedPolicy::Forward);
        assert_eq!(judge(&bad, &p, &c, &shard, &mut stats), Verdict::Forward);
        let (p, c, shard, mut stats) =
            setup(BlockAction::Drop, BlockScope::Syn, MalformedPolicy::Drop);
        assert_eq!(
            judge(&bad, &p, &c, &shard, &mut stats),
            Verdict::DropMalformed
        );
        let total: u64 = stats.outcomes.iter().sum();
        assert_eq!(total, 1);
    }
}
