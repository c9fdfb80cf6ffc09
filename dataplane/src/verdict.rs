//! The per-packet decision for inside→outside frames: parse, classify,
//! count, verdict. Plain Rust over a byte slice and the worker's shard, so
//! it is tested and benchmarked without EAL.
use crate::classify::Classifier;
use crate::parse::{parse, Outcome, Parsed, WatchedPorts};
use crate::shard::{bump, WorkerShard, WorkerStats};

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

/// Decides one inside→outside frame and counts it: its parse outcome, and
/// for watched SYNs the customer's seen/forwarded counters. The caller
/// counts what it did (forwarded, dropped, reset) once the frame is gone.
#[inline]
pub fn judge(
    frame: &[u8],
    policy: &Policy,
    classifier: &Classifier,
    shard: &WorkerShard,
    stats: &WorkerStats,
) -> Verdict {
    let parsed = parse(frame, &policy.watched);
    if let Some(c) = stats.outcomes.get(parsed.outcome.index()) {
        bump(c);
    }
    match parsed.outcome {
        Outcome::WatchedSyn => {
            let Some(src) = parsed.src else {
                return Verdict::Forward;
            };
            let Some(id) = classifier.lookup(src) else {
                bump(&stats.verdicts.syn_no_customer);
                return Verdict::Forward;
            };
            let i = id as usize;
            let (Some(seen), Some(fwd), Some(grant)) =
                (shard.syn_seen.get(i), shard.syn_forwarded.get(i), shard.syn_grant.get(i))
            else {
                // A classifier newer than the shard: never drop on our own
                // inconsistency.
                return Verdict::Forward;
            };
            bump(seen);
            let forwarded = fwd.load(std::sync::atomic::Ordering::Relaxed);
            if shard.blocked.is_set(id) || forwarded >= grant.load(std::sync::atomic::Ordering::Relaxed) {
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
        Outcome::Malformed(_) if policy.malformed == MalformedPolicy::Drop => Verdict::DropMalformed,
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
