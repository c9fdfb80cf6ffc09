//! The per-packet decision for inside→outside frames: parse, classify,
//! count, verdict. Plain Rust over a byte slice and the worker's shard, so
//! it is tested and benchmarked without EAL.
use crate::classify::{Classifier, CustomerId, LOOKUP_BATCH};
use crate::parse::{
    parse, parse_chained, triage, Malformed, Outcome, Parsed, SrcAddr, WatchedPorts,
};
use crate::shard::{add, WorkerShard, WorkerStats};

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

impl Policy {
    /// `watched` with the switches in the low three bits of `knobs` (1:
    /// reset, 2: scope smtp, 4: drop malformed): `0..8` is every
    /// combination, for tests and fuzz targets that try them all.
    pub fn from_knobs(watched: WatchedPorts, knobs: u8) -> Policy {
        Policy {
            watched,
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
        }
    }
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
    /// Rewrite it into a RST and send it back where it came from (the
    /// caller parses the frame again: [`parse_frame`]; RSTs are rare).
    Reset,
}

/// Frame counts kept by the worker alone (in registers or on its stack)
/// and added to its shared counters from time to time
/// ([`Tally::publish`]): once every few dozen bursts, and whenever a poll
/// round receives nothing, so a reader is never more than that behind and
/// an idle worker's counters are whole.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub outcomes: [u64; Outcome::COUNT],
    pub rx: u64,
    pub forwarded: u64,
    pub dropped_blocked: u64,
    pub dropped_malformed: u64,
    pub reset_sent: u64,
    pub reverse_forwarded: u64,
    pub syn_no_customer: u64,
    pub polls: u64,
    pub busy_polls: u64,
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
            (&v.rx, self.rx),
            (&v.forwarded, self.forwarded),
            (&v.dropped_blocked, self.dropped_blocked),
            (&v.dropped_malformed, self.dropped_malformed),
            (&v.reset_sent, self.reset_sent),
            (&v.reverse_forwarded, self.reverse_forwarded),
            (&v.syn_no_customer, self.syn_no_customer),
            (&v.polls, self.polls),
            (&v.busy_polls, self.busy_polls),
        ] {
            if n != 0 {
                add(c, n);
            }
        }
    }
}

/// One frame of a burst: its first segment's bytes and the whole frame's
/// length (more than `data.len()` for a frame chained over several
/// buffers; see [`crate::parse::parse_chained`]).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub data: &'a [u8],
    pub wire_len: usize,
}

/// The largest burst [`BurstJudge::judge`] decides at once (an rx burst).
pub const BURST: usize = LOOKUP_BATCH;

/// Up to this many frames of a burst waiting for their customer (a busy
/// mix's few watched SYNs) are decided as each lookup finishes; more (a
/// flood) have every customer's cell prefetched first and are decided in
/// a stage of their own, so the cells' misses overlap. On the busy mix
/// (4 of 32 frames on average) the judge ran 1.17 times as fast deciding
/// them at once (BENCHMARKS.md, section 16).
const FEW: usize = 8;

// A burst's fates fit one `u32` mask.
const _: () = assert!(BURST <= 32);

/// Decides a burst of inside→outside frames in stages over the whole
/// burst, the way DPDK's l3fwd and VPP's vector nodes do: parse every
/// frame, settling at once those whose fate does not depend on their
/// customer (most of ordinary traffic) and prefetching the first table
/// entry of every other frame's lookup; look up the customers of those
/// ([`Classifier::lookup_prefetched_then`]: every load of a stage issued
/// before any is waited on, each customer's cell in this core's shard
/// prefetched the moment the customer is known); only then count and
/// decide those, in order. Verdicts and counts are exactly those of
/// [`judge`] called on each frame in turn: the early stages only read the
/// (immutable) classifier, and only the frames decided last touch the
/// shard.
///
/// Holds the burst's scratch arrays, so one lives in each worker and
/// nothing is allocated per burst. Between stages only what the next stage
/// needs is kept, packed: the sources to look up, which frame each belongs
/// to and whether it is a watched SYN.
pub struct BurstJudge {
    verdicts: [Verdict; BURST],
    /// The sources whose customer decides their frame's fate.
    keys: [Key; BURST],
    /// The frame each key belongs to.
    slots: [u8; BURST],
    /// Whether that frame is a watched SYN (the others only ask "blocked?").
    syns: [bool; BURST],
    /// The customers of `keys`.
    found: [Option<CustomerId>; BURST],
    /// Frames in the last burst, and which of them are not forwarded
    /// (bit `i`: frame `i`).
    frames: usize,
    away: u32,
}

impl Default for BurstJudge {
    fn default() -> Self {
        BurstJudge {
            verdicts: [Verdict::Forward; BURST],
            keys: [Key { addr: 0, v6: false }; BURST],
            slots: [0; BURST],
            syns: [false; BURST],
            found: [None; BURST],
            frames: 0,
            away: 0,
        }
    }
}

impl std::fmt::Debug for BurstJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BurstJudge")
    }
}

impl BurstJudge {
    /// Decides up to [`BURST`] frames (any beyond are not read) and counts
    /// them into `shard` and `tally`; `verdicts[i]` is the fate of the
    /// i-th frame.
    #[inline]
    pub fn judge<'a>(
        &mut self,
        frames: impl Iterator<Item = Frame<'a>>,
        policy: &Policy,
        classifier: &Classifier,
        shard: &WorkerShard,
        tally: &mut Tally,
    ) -> &[Verdict] {
        // Stage 1: triage; settle what needs no customer, pack the rest.
        // A frame's outcome picks its fate through two bit masks, not a
        // `match` (whose jump table the busy mix mispredicts).
        // One bit test settles the common frame (nothing to do but
        // forward); only the others ask which of the two masks they are in.
        let needs = Needs::of(policy);
        let mut n = 0;
        let mut k = 0;
        let mut away = 0u32;
        for (frame, v) in frames.zip(self.verdicts.iter_mut()) {
            let t = triage(frame.data, frame.wire_len, &policy.watched);
            let index = t.index();
            if let Some(c) = tally.outcomes.get_mut(index) {
                *c += 1;
            }
            *v = Verdict::Forward;
            if !needs.any(index) {
                // Forwarded as it came.
            } else if needs.dropped(index) {
                away |= 1 << n;
                *v = Verdict::DropMalformed;
            } else if let Some(src) = t.src {
                if let (Some(key), Some(slot), Some(syn)) = (
                    self.keys.get_mut(k),
                    self.slots.get_mut(k),
                    self.syns.get_mut(k),
                ) {
                    *key = Key::from(src);
                    // The lookup's first load, a whole parse stage
                    // before it is read.
                    classifier.prefetch(src);
                    *slot = n as u8;
                    *syn = index == Outcome::WatchedSyn.index();
                    k += 1;
                }
            }
            n += 1;
        }
        if k > FEW {
            // Stages 2 to 4: the classifier's loads, all in flight at once,
            // and each customer's cell as soon as the customer is known.
            let (keys, found) = (&self.keys[..k], &mut self.found[..k]);
            classifier.lookup_prefetched_then(keys, found, |id| shard.prefetch(id));
            // Stage 5: count and decide in order.
            for ((&slot, &syn), &customer) in self.slots[..k]
                .iter()
                .zip(&self.syns[..k])
                .zip(found.iter())
            {
                if let Some(v) = self.verdicts.get_mut(usize::from(slot)) {
                    *v = decide(syn, customer, policy, shard, tally);
                    away |= u32::from(*v != Verdict::Forward) << slot;
                }
            }
        } else if k > 0 {
            // A few: the classifier's loads in flight at once, and each
            // frame counted and decided the moment its customer is known,
            // in order (its cell read at once: a loop of its own cost more
            // than the few cells' misses it would overlap).
            let (slots, syns, verdicts) = (&self.slots, &self.syns, &mut self.verdicts);
            classifier.lookup_prefetched_each(&self.keys[..k], |i, customer| {
                if let (Some(&slot), Some(&syn)) = (slots.get(i), syns.get(i)) {
                    if let Some(v) = verdicts.get_mut(usize::from(slot)) {
                        *v = decide(syn, customer, policy, shard, tally);
                        away |= u32::from(*v != Verdict::Forward) << slot;
                    }
                }
            });
        }
        self.frames = n;
        self.away = away;
        &self.verdicts[..n]
    }

    /// The verdicts of the last burst (what [`BurstJudge::judge`] returned).
    #[inline]
    pub fn verdicts(&self) -> &[Verdict] {
        self.verdicts.get(..self.frames).unwrap_or(&[])
    }

    /// Which frames of the last burst are not to be forwarded: bit `i`
    /// for frame `i` (its verdict says where it goes). The caller visits
    /// those alone, not every verdict of the burst; 0 (the common case)
    /// lets it send the burst as it came.
    #[inline]
    pub fn away_mask(&self) -> u32 {
        self.away
    }
}

/// A source to look up, as [`BurstJudge`] keeps it between stages. Not a
/// [`SrcAddr`]: copying one out of the parse result on the stack reads 16
/// bytes where the IPv4 fast path wrote 4, a store-forwarding stall that
/// `perf annotate` put at a fifth of a SYN flood's time.
#[derive(Clone, Copy)]
struct Key {
    addr: u128,
    v6: bool,
}

impl From<SrcAddr> for Key {
    #[inline(always)]
    fn from(src: SrcAddr) -> Key {
        match src {
            SrcAddr::V4(a) => Key {
                addr: u128::from(a),
                v6: false,
            },
            SrcAddr::V6(a) => Key { addr: a, v6: true },
        }
    }
}

impl From<Key> for SrcAddr {
    #[inline(always)]
    fn from(key: Key) -> SrcAddr {
        if key.v6 {
            SrcAddr::V6(key.addr)
        } else {
            SrcAddr::V4(key.addr as u32)
        }
    }
}

/// Parses a frame of a burst (chained over several buffers or not) as the
/// judges do: what a [`Verdict::Reset`] is built from.
#[inline(always)]
pub fn parse_frame(frame: Frame<'_>, policy: &Policy) -> Parsed {
    if frame.wire_len <= frame.data.len() {
        parse(frame.data, &policy.watched)
    } else {
        parse_chained(frame.data, frame.wire_len, &policy.watched)
    }
}

/// Decides one inside→outside frame and counts it: its parse outcome, and
/// for watched SYNs the customer's seen/forwarded counters. The caller
/// counts what it did (forwarded, dropped, reset) once the frame is gone.
/// The worker decides whole bursts with [`BurstJudge`], which answers
/// exactly as this does frame by frame.
#[inline]
pub fn judge(
    frame: &[u8],
    policy: &Policy,
    classifier: &Classifier,
    shard: &WorkerShard,
    tally: &mut Tally,
) -> Verdict {
    let parsed = parse(frame, &policy.watched);
    count(parsed.outcome, tally);
    match pending(&parsed, policy) {
        Err(settled) => settled,
        Ok(src) => decide(
            parsed.outcome == Outcome::WatchedSyn,
            classifier.lookup(src),
            policy,
            shard,
            tally,
        ),
    }
}

#[inline(always)]
fn count(outcome: Outcome, tally: &mut Tally) {
    if let Some(c) = tally.outcomes.get_mut(outcome.index()) {
        *c += 1;
    }
}

/// Which outcomes wait for their customer and which are dropped at once,
/// under a policy: bit [`Outcome::index`] of each mask. Every other
/// outcome is forwarded without a lookup (and so is a frame whose source
/// the parser could not read). [`pending`]'s rule as two masks: the burst
/// judge tests a bit where a `match` on the outcome would jump through a
/// table the busy mix mispredicts.
#[derive(Clone, Copy, Debug)]
struct Needs {
    customer: u32,
    dropped: u32,
}

const _: () = assert!(Outcome::COUNT <= 32);

impl Needs {
    const fn bit(outcome: Outcome) -> u32 {
        1 << outcome.index()
    }

    /// Every malformation's bit.
    const MALFORMED: u32 = {
        let mut bits = 0;
        let all = Malformed::all();
        let mut i = 0;
        while i < all.len() {
            bits |= Needs::bit(Outcome::Malformed(all[i]));
            i += 1;
        }
        bits
    };

    /// The rule: a watched SYN or an evasive fragment needs its customer
    /// (is it blocked, out of grant?), established mail does under
    /// `scope = "smtp"`, a malformed frame does when the policy forwards
    /// malformed frames (a blocked customer's are dropped) and is dropped
    /// at once when it drops them.
    #[inline(always)]
    fn of(policy: &Policy) -> Needs {
        let smtp = match policy.scope {
            BlockScope::Smtp => Needs::bit(Outcome::WatchedOther),
            BlockScope::Syn => 0,
        };
        let (malformed, dropped) = match policy.malformed {
            MalformedPolicy::Forward => (Needs::MALFORMED, 0),
            MalformedPolicy::Drop => (0, Needs::MALFORMED),
        };
        Needs {
            customer: Needs::bit(Outcome::WatchedSyn)
                | Needs::bit(Outcome::FragmentEvasive)
                | smtp
                | malformed,
            dropped,
        }
    }

    /// Whether outcome `index` is anything but forwarded without a
    /// lookup: waits for its customer or is dropped at once.
    #[inline(always)]
    fn any(self, index: usize) -> bool {
        (self.customer | self.dropped) >> index & 1 == 1
    }

    /// Whether outcome `index` waits for its customer (the burst judge
    /// asks [`Needs::any`], then [`Needs::dropped`]: the two masks never
    /// share a bit).
    #[cfg(test)]
    #[inline(always)]
    fn customer(self, index: usize) -> bool {
        self.customer >> index & 1 == 1
    }

    /// Whether outcome `index` is dropped without a lookup.
    #[inline(always)]
    fn dropped(self, index: usize) -> bool {
        self.dropped >> index & 1 == 1
    }
}

/// The source whose customer decides the fate of `parsed`, or the fate
/// itself where the customer does not matter (or the parser could not
/// read a source). The rule as [`judge`] reads it; [`Needs`] is the same
/// rule as the burst judge reads it (a test holds them together).
#[inline(always)]
fn pending(parsed: &Parsed, policy: &Policy) -> Result<SrcAddr, Verdict> {
    let needs_customer = match parsed.outcome {
        Outcome::WatchedSyn | Outcome::FragmentEvasive => true,
        Outcome::WatchedOther => policy.scope == BlockScope::Smtp,
        Outcome::Malformed(_) => match policy.malformed {
            MalformedPolicy::Forward => true,
            MalformedPolicy::Drop => return Err(Verdict::DropMalformed),
        },
        Outcome::NonIp | Outcome::OtherIp | Outcome::ExemptDestination => false,
    };
    match parsed.src {
        Some(src) if needs_customer => Ok(src),
        _ => Err(Verdict::Forward),
    }
}

/// The decision on a frame whose fate depends on its customer (`syn`: a
/// watched SYN; otherwise established traffic under `scope = "smtp"`, an
/// evasive fragment or a malformed frame forwarded by policy); counts the
/// customer's cell for SYNs.
#[inline(always)]
fn decide(
    syn: bool,
    customer: Option<CustomerId>,
    policy: &Policy,
    shard: &WorkerShard,
    tally: &mut Tally,
) -> Verdict {
    match customer {
        None if syn => {
            tally.syn_no_customer += 1;
            Verdict::Forward
        }
        Some(id) if syn => {
            if shard.try_forward(id) {
                Verdict::Forward
            } else {
                refuse(policy)
            }
        }
        // Cannot tell whether it hides a SYN (a fragment, or a shape the
        // parser rejects that some host may accept), or established mail
        // under scope smtp: a blocked customer loses it.
        Some(id) if shard.is_blocked(id) => Verdict::DropBlocked,
        _ => Verdict::Forward,
    }
}

#[cold]
fn refuse(policy: &Policy) -> Verdict {
    match policy.action {
        BlockAction::Drop => Verdict::DropBlocked,
        BlockAction::Reset => Verdict::Reset,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

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
                ("198.51.100.0".parse().unwrap(), 24, CustomerId::new(0)),
                ("192.0.2.0".parse().unwrap(), 24, CustomerId::new(1)),
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
        assert_eq!(shard.read(CustomerId::new(0)).seen, 3);
        assert_eq!(shard.read(CustomerId::new(0)).forwarded, 3);
        assert_eq!(shard.read(CustomerId::new(1)).seen, 1);
        assert_eq!(stats.syn_no_customer, 1);
        assert_eq!(stats.outcomes[Outcome::WatchedSyn.index()], 5);
        assert_eq!(stats.outcomes[Outcome::OtherIp.index()], 1);
    }

    #[test]
    fn blocked_customer_syns_are_dropped_or_reset() {
        let (p, c, shard, mut stats) =
            setup(BlockAction::Drop, BlockScope::Syn, MalformedPolicy::Forward);
        shard.set_blocked(CustomerId::new(0), true);
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
        assert_eq!(shard.read(CustomerId::new(0)).seen, 1);
        assert_eq!(shard.read(CustomerId::new(0)).forwarded, 0);

        let (p, c, shard, mut stats) = setup(
            BlockAction::Reset,
            BlockScope::Smtp,
            MalformedPolicy::Forward,
        );
        shard.set_blocked(CustomerId::new(0), true);
        assert!(matches!(
            judge(&syn(ACME, 25), &p, &c, &shard, &mut stats),
            Verdict::Reset
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
        shard.set_grant(CustomerId::new(0), 5);
        let verdicts: Vec<Verdict> = (0..8)
            .map(|_| judge(&syn(ACME, 25), &p, &c, &shard, &mut stats))
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Forward).count(),
            5
        );
        assert_eq!(verdicts[5..], [Verdict::DropBlocked; 3]);
        assert_eq!(shard.read(CustomerId::new(0)).forwarded, 5);
        assert_eq!(shard.read(CustomerId::new(0)).seen, 8);
        // A new grant lets more through.
        shard.set_grant(CustomerId::new(0), 6);
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
        shard.set_blocked(CustomerId::new(0), true);
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
        shard.set_blocked(CustomerId::new(0), true);
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

    mod burst {
        use std::net::Ipv6Addr;

        use proptest::prelude::*;

        use super::*;

        const CUSTOMERS: usize = 6;

        fn classifier() -> Classifier {
            Classifier::build(
                CUSTOMERS,
                [
                    ("198.51.100.0".parse().unwrap(), 24, CustomerId::new(0)),
                    ("198.51.100.128".parse().unwrap(), 28, CustomerId::new(1)),
                    ("192.0.2.0".parse().unwrap(), 24, CustomerId::new(2)),
                    ("2001:db8:1::".parse().unwrap(), 48, CustomerId::new(3)),
                    ("2001:db8:1:5::".parse().unwrap(), 64, CustomerId::new(4)),
                    ("10.0.0.0".parse().unwrap(), 8, CustomerId::new(5)),
                ],
            )
            .unwrap()
        }

        /// One frame from a small palette: SYNs and established traffic
        /// from customers and strangers, both families, and bytes that
        /// parse as anything.
        fn frame(kind: u8, host: u8, junk: &[u8]) -> Vec<u8> {
            let v4 = [
                Ipv4Addr::new(198, 51, 100, host),
                Ipv4Addr::new(192, 0, 2, host),
                Ipv4Addr::new(10, host, 0, 1),
                Ipv4Addr::new(203, 0, 113, host),
            ][usize::from(host % 4)];
            let v6 = [
                Ipv6Addr::new(0x2001, 0xdb8, 1, 5, 0, 0, 0, u16::from(host)),
                Ipv6Addr::new(0x2001, 0xdb8, 1, 9, 0, 0, 0, u16::from(host)),
                Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, u16::from(host)),
            ][usize::from(host % 3)];
            let mx6 = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 25);
            match kind % 7 {
                0 | 1 => FrameBuilder::tcp_v4(v4, MX, 40000, 25, SYN).build(),
                2 => FrameBuilder::tcp_v6(v6, mx6, 40000, 25, SYN).build(),
                3 => FrameBuilder::tcp_v4(v4, MX, 40000, 25, ACK).build(),
                4 => FrameBuilder::tcp_v4(v4, MX, 40000, 443, SYN).build(),
                5 => {
                    // A SYN cut short or overwritten: malformed shapes.
                    let mut f = FrameBuilder::tcp_v4(v4, MX, 40000, 25, SYN).build();
                    let cut = usize::from(host) % f.len();
                    f.truncate(cut.max(14));
                    f
                }
                _ => junk.to_vec(),
            }
        }

        fn shard(blocked: &[bool], grants: &[Option<u64>]) -> WorkerShard {
            let s = WorkerShard::new(CUSTOMERS);
            for (c, (&b, g)) in blocked.iter().zip(grants).enumerate() {
                s.set_blocked(CustomerId::new(c as u32), b);
                if let Some(g) = g {
                    s.set_grant(CustomerId::new(c as u32), *g);
                }
            }
            s
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Bursts decide and count exactly as frame-by-frame judging,
            /// grants running out in the middle of a burst included; with
            /// most frames waiting for their customer (a flood: decided in
            /// a stage of their own) or few of them (`sparse`, a busy mix:
            /// decided as each lookup finishes).
            #[test]
            fn burst_equals_frame_by_frame(
                frames in prop::collection::vec(
                    (any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..80)),
                    0..100,
                ),
                blocked in prop::collection::vec(any::<bool>(), CUSTOMERS),
                grants in prop::collection::vec(prop::option::of(0u64..6), CUSTOMERS),
                knobs in 0u8..8,
                sparse in any::<bool>(),
            ) {
                let policy = Policy::from_knobs(WatchedPorts::new(&[25]), knobs);
                let c = classifier();
                // Sparse: seven frames in eight a SYN to port 443, which
                // waits for no customer.
                let frames: Vec<Vec<u8>> = frames
                    .iter()
                    .map(|(k, h, j)| {
                        let kind = if sparse && k % 8 != 0 { 4 } else { *k };
                        frame(kind, *h, j)
                    })
                    .collect();

                let one = shard(&blocked, &grants);
                let mut one_tally = Tally::default();
                let want: Vec<Verdict> = frames
                    .iter()
                    .map(|f| judge(f, &policy, &c, &one, &mut one_tally))
                    .collect();

                let many = shard(&blocked, &grants);
                let mut many_tally = Tally::default();
                let mut judge_burst = BurstJudge::default();
                let mut got = Vec::new();
                for chunk in frames.chunks(BURST) {
                    let burst = chunk.iter().map(|f| Frame { data: f, wire_len: f.len() });
                    let verdicts = judge_burst.judge(burst, &policy, &c, &many, &mut many_tally);
                    let mask = verdicts
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| **v != Verdict::Forward)
                        .fold(0u32, |m, (i, _)| m | 1 << i);
                    got.extend_from_slice(verdicts);
                    prop_assert_eq!(judge_burst.away_mask(), mask);
                    prop_assert_eq!(judge_burst.verdicts(), &got[got.len() - chunk.len()..]);
                }
                prop_assert_eq!(got, want);
                prop_assert_eq!(many_tally.outcomes, one_tally.outcomes);
                prop_assert_eq!(many_tally.syn_no_customer, one_tally.syn_no_customer);
                for id in 0..CUSTOMERS as u32 {
                    prop_assert_eq!(many.read(CustomerId::new(id)), one.read(CustomerId::new(id)));
                }
            }
        }

        /// The burst judge's masks and the frame judge's `match` say the
        /// same of every outcome, under every policy, with a source and
        /// without: the two cannot drift apart.
        #[test]
        fn needs_says_what_pending_says() {
            let src = SrcAddr::V4(0x0a00_0001);
            for knobs in 0u8..8 {
                let policy = Policy::from_knobs(WatchedPorts::new(&[25]), knobs);
                let needs = Needs::of(&policy);
                for outcome in Outcome::all() {
                    let i = outcome.index();
                    for src in [Some(src), None] {
                        let parsed = Parsed {
                            src,
                            ..Parsed::new(outcome)
                        };
                        // The burst judge's order of questions: anything
                        // to do at all, then dropped, else its customer.
                        let masks = if !needs.any(i) {
                            Err(Verdict::Forward)
                        } else if needs.dropped(i) {
                            Err(Verdict::DropMalformed)
                        } else {
                            src.ok_or(Verdict::Forward)
                        };
                        assert!(
                            !(needs.customer(i) && needs.dropped(i)),
                            "{outcome:?} {knobs}: waits for its customer and is dropped"
                        );
                        assert_eq!(
                            masks,
                            pending(&parsed, &policy),
                            "{outcome:?} {src:?} {knobs}"
                        );
                    }
                }
            }
        }

        #[test]
        fn a_burst_reads_no_more_than_burst_frames() {
            let (p, c, shard, mut tally) =
                setup(BlockAction::Drop, BlockScope::Syn, MalformedPolicy::Forward);
            let f = syn(ACME, 25);
            let frames = (0..BURST + 5).map(|_| Frame {
                data: &f,
                wire_len: f.len(),
            });
            let mut j = BurstJudge::default();
            assert_eq!(j.judge(frames, &p, &c, &shard, &mut tally).len(), BURST);
            assert_eq!(shard.read(CustomerId::new(0)).seen, BURST as u64);
        }
    }
}
