//! The grant protocol, control side: every write of a per-core SYN grant.
//!
//! A worker forwards a customer's SYN while its cumulative forwarded count
//! is below the cumulative grant in its shard
//! ([`WorkerShard::try_forward`]); the control plane is the grants' only
//! writer, and writes them only here: once a tick ([`regrant`], the
//! argument is in [`crate::plane`]'s module docs), unlimited for customers
//! not enforced ([`unlimit`]), and on a reload, where a new generation's
//! shards get their first grants ([`seed`]) and each core's unspent
//! allowance moves over as the core picks the generation up ([`carry`]).
//! All of them split a budget over cores with [`core_share`].
//!
//! With `[fleet]`, a grant may hold part of a Redis lease, which must not
//! be spent past the lease's deadline even if the whole process was paused
//! and the workers wake before the control thread: such customers are
//! marked ([`mark`]) before their grants first hold a lease, and every tick
//! ends by stamping the shards with the TSC until which marked grants may
//! be spent ([`stamp`]), two ticks from the tick's start. A lease counts in
//! a tick's budget only while `now < sent + ttl − margin − 2 ticks`
//! ([`crate::fleet::local`]), so no SYN is forwarded out of it after
//! `sent + ttl − margin`, whichever thread runs first after a pause.
use std::sync::Arc;

use synwall_dataplane::classify::CustomerId;
use synwall_dataplane::shard::WorkerShard;

/// Core `core`'s share of `budget` split over `cores` cores: an equal
/// part each, the remainder to core 0 (so the shares add up to `budget`).
pub fn core_share(budget: u64, cores: u64, core: usize) -> u64 {
    let cores = cores.max(1);
    budget / cores + if core == 0 { budget % cores } else { 0 }
}

/// Writes customer `c`'s grants for remaining budget `budget`, given the
/// forwarded counts `reads` just read (one per shard). Keeps
/// `Σ max(old, new) - read ≤ budget` (see [`crate::plane`]).
pub fn regrant(c: CustomerId, budget: u64, reads: &[u64], shards: &[Arc<WorkerShard>]) {
    let k = shards.len() as u64;
    // Already handed out and possibly being spent right now.
    let held: u64 = shards
        .iter()
        .zip(reads)
        .map(|(s, &r)| s.grant(c).saturating_sub(r))
        .fold(0u64, u64::saturating_add);
    let mut free = budget.saturating_sub(held);
    for (core, (shard, &r)) in shards.iter().zip(reads).enumerate() {
        let share = core_share(budget, k, core);
        let old = shard.grant(c);
        let outstanding = old.saturating_sub(r);
        let new = if share <= outstanding {
            // Lower (or keep): charged `outstanding` this tick anyway.
            r.saturating_add(share)
        } else {
            let raise = (share - outstanding).min(free);
            free -= raise;
            r.saturating_add(outstanding + raise)
        };
        if new != old {
            shard.set_grant(c, new);
        }
    }
}

/// Marks (or unmarks) customer `c`'s grants on every core as holding a
/// fleet lease: spent only before the shards' stamp. Set at the tick that
/// asks for a lease (its grant is raised with it a tick later at the
/// earliest), cleared once the grants hold no lease.
pub fn mark(c: CustomerId, marked: bool, shards: &[Arc<WorkerShard>]) {
    for shard in shards {
        if shard.expires(c) != marked {
            shard.set_expires(c, marked);
        }
    }
}

/// Stamps every shard, after a tick's grant writes: marked grants may be
/// spent until TSC `until`, computed from a TSC read before the tick read
/// its clock (a pause in between only makes the stamp earlier).
pub fn stamp(shards: &[Arc<WorkerShard>], until: u64) {
    for shard in shards {
        shard.set_grants_until(until);
    }
}

/// Lifts customer `c`'s grants on every core (not enforced).
pub fn unlimit(c: CustomerId, shards: &[Arc<WorkerShard>]) {
    for shard in shards {
        if shard.grant(c) != u64::MAX {
            shard.set_grant(c, u64::MAX);
        }
    }
}

/// The first grants of customer `c` in a new generation's `shards`, before
/// any worker uses them: `Some(budget)` (enforced) splits the budget over
/// the cores, `None` is unlimited. A customer whose allowance is carried
/// over gets `Some(0)` here and its allowance from [`carry`].
pub fn seed(c: CustomerId, budget: Option<u64>, shards: &[Arc<WorkerShard>]) {
    let k = shards.len() as u64;
    for (core, s) in shards.iter().enumerate() {
        s.set_grant(c, budget.map_or(u64::MAX, |b| core_share(b, k, core)));
    }
}

/// One customer whose allowance moves to the new generation: its id in the
/// old and the new customer set, and its remaining budget at the reload.
#[derive(Debug, Clone, Copy)]
pub struct Carried {
    pub old: CustomerId,
    pub new: CustomerId,
    pub budget: u64,
}

/// Core `core` (of `cores`) has moved to the new generation, so its old
/// shard `from` is final: hand what it had left of each carried customer's
/// allowance to its new shard `to`, never more than a tick would grant it.
/// No allowance can be spent twice: until this runs the new grant is 0.
pub fn carry(from: &WorkerShard, to: &WorkerShard, carried: &[Carried], cores: u64, core: usize) {
    for c in carried {
        if c.old.index() >= from.customers() || c.new.index() >= to.customers() {
            continue;
        }
        let cap = core_share(c.budget, cores, core);
        let left = from.grant(c.old).saturating_sub(from.read(c.old).forwarded);
        // A lease moves with its mark (set before the grant, as a tick does).
        to.set_expires(c.new, from.expires(c.old));
        to.set_grant(c.new, left.min(cap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(k: usize, n: usize) -> Vec<Arc<WorkerShard>> {
        (0..k).map(|_| Arc::new(WorkerShard::new(n))).collect()
    }

    #[test]
    fn shares_add_up() {
        for budget in [0, 1, 7, 100, u64::MAX] {
            for k in 1..5u64 {
                let sum = (0..k as usize)
                    .map(|i| core_share(budget, k, i))
                    .fold(0u64, u64::wrapping_add);
                assert_eq!(sum, budget);
            }
        }
    }

    #[test]
    fn carry_moves_what_is_left_and_no_more() {
        let (old, new) = (shards(2, 3), shards(2, 3));
        seed(CustomerId::new(1), Some(10), &old);
        // Core 0 spends 3 of its 5.
        assert_eq!(
            (0..3)
                .filter(|_| old[0].try_forward(CustomerId::new(1)))
                .count(),
            3
        );
        for s in &new {
            s.set_grant(CustomerId::new(0), 0);
        }
        let carried = [Carried {
            old: CustomerId::new(1),
            new: CustomerId::new(0),
            budget: 4,
        }];
        carry(&old[0], &new[0], &carried, 2, 0);
        carry(&old[1], &new[1], &carried, 2, 1);
        // Core 0 had 2 left (cap 2), core 1 had 5 (cap 2).
        assert_eq!(
            (
                new[0].grant(CustomerId::new(0)),
                new[1].grant(CustomerId::new(0))
            ),
            (2, 2)
        );
        // Ids out of range are skipped, not a panic.
        carry(
            &old[0],
            &new[0],
            &[Carried {
                old: CustomerId::new(9),
                new: CustomerId::new(9),
                budget: 1,
            }],
            2,
            0,
        );
    }
}
