//! Source address → customer id, longest prefix wins.
//!
//! IPv4 is a DIR-24-8 table (the layout of DPDK's `rte_lpm`): 2^24 entries
//! indexed by the top 24 bits of the address, each either a customer or an
//! extension group that resolves the last octet for the /24s that hold
//! prefixes longer than /24. Unlike `rte_lpm`'s fixed 256 entries, a group
//! has as many entries as its /24's longest prefix needs (16 up to /28:
//! one cache line; 256 for a /32), so a table of /28 customers holds its
//! extension groups in a sixteenth of the memory, and of the pages a flood
//! of random sources walks. A lookup is one load, or two.
//! IPv6 customers use a handful of prefix lengths (/48, /56, /64 ...), so
//! IPv6 is one exact-match hash table per configured length, probed longest
//! first: a lookup is at most one probe per distinct length. A /0 is kept
//! aside as the family's fallback rather than filled into the tables.
//!
//! Lookups allocate nothing and cannot panic: every index is in range by
//! the type it indexes (`a >> 8` into a `[u32; 1 << 24]`) or goes through
//! `get`. See BENCHMARKS.md for the
//! measurement. Only frames on the watched ports (and frames that might hide
//! one) are classified, so the lookup is off the path of most traffic.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytemuck::Zeroable;
use rustc_hash::FxBuildHasher;

use crate::parse::SrcAddr;
use synwall_memory::{prefetch, HugeArray};

/// A dense customer id: the customer's index in the configuration's
/// customer list. Its own type, so that a customer id is never mixed up
/// with the other small numbers beside it (a shard, a limit set, a count).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
#[repr(transparent)]
pub struct CustomerId(u32);

impl CustomerId {
    /// The customer at `id` in the configuration's customer list.
    #[inline(always)]
    pub const fn new(id: u32) -> CustomerId {
        CustomerId(id)
    }

    /// The id as a number (as in snapshots, events and the control socket).
    #[inline(always)]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The id as an index into a per-customer table.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Customer `index` of a list, if it fits an id.
    pub fn from_index(index: usize) -> Option<CustomerId> {
        u32::try_from(index).ok().map(CustomerId)
    }

    /// Every id of a list of `customers`, in order (the ids beyond
    /// `u32::MAX` that no classifier can hold are left out).
    pub fn all(customers: usize) -> impl DoubleEndedIterator<Item = CustomerId> + Clone {
        let n = u32::try_from(customers).unwrap_or(u32::MAX);
        (0..n).map(CustomerId)
    }
}

impl std::fmt::Display for CustomerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a classifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    /// A prefix is not a valid network (host bits set, length too long).
    #[error("prefix {addr}/{len} of customer id {customer}: {reason}")]
    BadPrefix {
        addr: IpAddr,
        len: u8,
        customer: CustomerId,
        reason: String,
    },
    /// Two customers claim the same prefix.
    #[error("prefix {addr}/{len} belongs to customer ids {first} and {second}")]
    Duplicate {
        addr: IpAddr,
        len: u8,
        first: CustomerId,
        second: CustomerId,
    },
}

/// Maps source addresses to customers.
pub struct Classifier {
    v4: V4Table,
    v6: V6Table,
    customers: usize,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (v4, v6) = self.prefixes();
        write!(
            f,
            "Classifier({v4} IPv4 + {v6} IPv6 prefixes, {} customers)",
            self.customers
        )
    }
}

/// One validated prefix waiting to be inserted: length, network address,
/// customer, and its position in the input (to report duplicates in the
/// order a one-by-one insert would have met them).
type Pending<A> = (u8, A, CustomerId, usize);

impl Classifier {
    /// Builds the table from `(address, prefix length, customer)` entries;
    /// `customers` is the number of customer ids (ids are `0..customers`).
    ///
    /// Errors are reported as a one-by-one insert in input order would
    /// meet them: the first bad prefix, or a prefix given a second time
    /// before it, whichever comes first.
    pub fn build<I>(customers: usize, prefixes: I) -> Result<Classifier, ClassifierError>
    where
        I: IntoIterator<Item = (IpAddr, u8, CustomerId)>,
    {
        Classifier::build_on(None, customers, prefixes)
    }

    /// [`Classifier::build`], its tables on NUMA `node` (that of the
    /// workers that read them).
    pub fn build_on<I>(
        node: Option<u32>,
        customers: usize,
        prefixes: I,
    ) -> Result<Classifier, ClassifierError>
    where
        I: IntoIterator<Item = (IpAddr, u8, CustomerId)>,
    {
        let mut v4: Vec<Pending<u32>> = Vec::new();
        let mut v6: Vec<Pending<u128>> = Vec::new();
        let mut bad = None;
        for (i, (addr, len, customer)) in prefixes.into_iter().enumerate() {
            let reason = match addr {
                IpAddr::V4(a) => {
                    let a = u32::from(a);
                    if len > 32 {
                        Some(format!("prefix length {len} is longer than 32"))
                    } else if a & !v4_mask(len) != 0 {
                        Some("host bits are set".to_string())
                    } else if customer.get() > V4_MAX_CUSTOMER {
                        Some(format!(
                            "customer id beyond the IPv4 table's limit of {V4_MAX_CUSTOMER}"
                        ))
                    } else {
                        v4.push((len, a, customer, i));
                        None
                    }
                }
                IpAddr::V6(a) => {
                    let a = u128::from(a);
                    if len > 128 {
                        Some(format!("prefix length {len} is longer than 128"))
                    } else if a & !v6_mask(len) != 0 {
                        Some("host bits are set".to_string())
                    } else {
                        v6.push((len, a, customer, i));
                        None
                    }
                }
            };
            if let Some(reason) = reason {
                bad = Some(ClassifierError::BadPrefix {
                    addr,
                    len,
                    customer,
                    reason,
                });
                break;
            }
        }
        // Ascending length (the order DIR-24-8 is filled in), then address,
        // then input position: duplicates end up side by side, first first.
        v4.sort_unstable_by_key(|&(len, a, _, i)| (len, a, i));
        v6.sort_unstable_by_key(|&(len, a, _, i)| (len, a, i));
        let duplicate = match (
            first_duplicate(&v4, |a| IpAddr::V4(Ipv4Addr::from(a))),
            first_duplicate(&v6, |a| IpAddr::V6(Ipv6Addr::from(a))),
        ) {
            (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        // Only prefixes before the first bad one were collected, so a
        // duplicate among them came first.
        if let Some((_, e)) = duplicate {
            return Err(e);
        }
        if let Some(e) = bad {
            return Err(e);
        }
        Ok(Classifier {
            v4: V4Table::build(&v4, node),
            v6: V6Table::build(&v6, node),
            customers,
        })
    }

    /// Number of customer ids.
    pub fn customers(&self) -> usize {
        self.customers
    }

    /// IPv4 and IPv6 prefix counts.
    pub fn prefixes(&self) -> (usize, usize) {
        (self.v4.prefixes, self.v6.prefixes)
    }

    /// The customer owning `src`, by longest matching prefix.
    #[inline]
    pub fn lookup(&self, src: SrcAddr) -> Option<CustomerId> {
        match src {
            SrcAddr::V4(a) => self.v4.lookup(a),
            SrcAddr::V6(a) => self.v6.lookup(a),
        }
    }

    /// [`Classifier::lookup`] for a burst of sources at once, in stages
    /// over the whole burst (as DPDK's `rte_lpm_lookup_bulk` does): first
    /// every first-level entry is prefetched (the DIR-24-8 `/24` entry, the
    /// IPv6 bucket of the longest length up to /64), then read and the
    /// second level prefetched (the extension group; the other IPv6
    /// lengths' buckets if the first missed), then every lookup finished. The CPU has a burst's misses
    /// in flight instead of one. `out[i]` answers `srcs[i]`; the answers
    /// are exactly [`Classifier::lookup`]'s.
    #[inline]
    pub fn lookup_burst(&self, srcs: &[SrcAddr], out: &mut [Option<CustomerId>]) {
        for &src in srcs {
            self.prefetch(src);
        }
        self.lookup_prefetched_then(srcs, out, |_| {});
    }

    /// Starts loading the first-level entry of `src`'s lookup (the
    /// DIR-24-8 `/24` entry, the IPv6 bucket) into the cache: the first
    /// stage of [`Classifier::lookup_burst`], for a caller that issues it
    /// earlier (the burst judge, as it parses each frame) and then finishes
    /// with [`Classifier::lookup_prefetched_then`].
    #[inline(always)]
    pub fn prefetch(&self, src: SrcAddr) {
        match src {
            SrcAddr::V4(a) => self.v4.prefetch(a),
            SrcAddr::V6(a) => self.v6.prefetch(a),
        }
    }

    /// The stages of [`Classifier::lookup_burst`] after the first
    /// ([`Classifier::prefetch`], which the caller issued for every source),
    /// calling `found` with each customer the moment its lookup finishes:
    /// the caller starts the next dependent load (the customer's counters)
    /// while the other lookups of the burst are still in flight.
    /// Answers exactly as [`Classifier::lookup`] whether or not it was.
    #[inline]
    pub fn lookup_prefetched_then<S: Copy + Into<SrcAddr>>(
        &self,
        srcs: &[S],
        out: &mut [Option<CustomerId>],
        mut found: impl FnMut(CustomerId),
    ) {
        self.lookup_prefetched_each(srcs, |i, answer| {
            if let Some(o) = out.get_mut(i) {
                *o = answer;
            }
            if let Some(id) = answer {
                found(id);
            }
        });
    }

    /// The stages of [`Classifier::lookup_burst`] after the first, calling
    /// `each(i, answer)` for every `srcs[i]` in order the moment its lookup
    /// finishes: a caller that decides each frame there needs no loop of
    /// its own over the answers.
    #[inline]
    pub fn lookup_prefetched_each<S: Copy + Into<SrcAddr>>(
        &self,
        srcs: &[S],
        mut each: impl FnMut(usize, Option<CustomerId>),
    ) {
        for (c, srcs) in srcs.chunks(LOOKUP_BATCH).enumerate() {
            self.lookup_batch(srcs, c * LOOKUP_BATCH, &mut each);
        }
    }

    #[inline(always)]
    fn lookup_batch<S: Copy + Into<SrcAddr>>(
        &self,
        srcs: &[S],
        at: usize,
        each: &mut impl FnMut(usize, Option<CustomerId>),
    ) {
        // IPv4: the `/24` entry; IPv6: 1 where the first probe settled
        // the answer (in `settled`), 0 where stage 3 finishes it.
        let mut first = [0u32; LOOKUP_BATCH];
        let mut settled = [None; LOOKUP_BATCH];
        for ((&src, e), o) in srcs.iter().zip(first.iter_mut()).zip(settled.iter_mut()) {
            match src.into() {
                SrcAddr::V4(a) => *e = self.v4.first_level(a),
                SrcAddr::V6(a) => {
                    if let Some(answer) = self.v6.first_probe(a) {
                        *o = answer;
                        *e = 1;
                    }
                }
            }
        }
        for (i, (&src, (&o, &e))) in srcs
            .iter()
            .zip(settled.iter().zip(first.iter()))
            .enumerate()
        {
            let answer = match src.into() {
                SrcAddr::V4(a) => self.v4.finish(e, a),
                SrcAddr::V6(_) if e != 0 => o,
                SrcAddr::V6(a) => self.v6.lookup(a),
            };
            each(at + i, answer);
        }
    }

    /// The customer owning an address (control-plane convenience).
    pub fn lookup_addr(&self, addr: IpAddr) -> Option<CustomerId> {
        match addr {
            IpAddr::V4(a) => self.lookup(SrcAddr::V4(u32::from(a))),
            IpAddr::V6(a) => self.lookup(SrcAddr::V6(u128::from(a))),
        }
    }
}

/// The earliest (by input position) prefix that repeats one before it, in a
/// list sorted by (length, address, position): position and error.
fn first_duplicate<A: Copy + Eq>(
    sorted: &[Pending<A>],
    ip: impl Fn(A) -> IpAddr,
) -> Option<(usize, ClassifierError)> {
    sorted
        .windows(2)
        .filter_map(|w| match w {
            [(l0, a0, first, _), (l1, a1, second, i)] if l0 == l1 && a0 == a1 => Some((
                *i,
                ClassifierError::Duplicate {
                    addr: ip(*a1),
                    len: *l1,
                    first: *first,
                    second: *second,
                },
            )),
            _ => None,
        })
        .min_by_key(|(i, _)| *i)
}

fn v4_mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

fn v6_mask(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

/// DIR-24-8 entry: this bit set means "extension group": bits 28..31 hold
/// the group's shift (8 − log2 of its entries) and bits 0..28 where it
/// starts in `tbl8`, in units of [`GROUP_ALIGN`] entries; otherwise 0 is "no
/// prefix of length 1..=32 covers the address" and anything else is the
/// customer id + 1.
const EXT: u32 = 1 << 31;
const GROUP_SHIFT_BITS: u32 = 28;
const GROUP_BASE: u32 = (1 << GROUP_SHIFT_BITS) - 1;
/// The smallest extension group, and the alignment of every group: 16
/// entries of 4 bytes, one cache line. 2^24 groups of 256 entries start
/// below 2^28 units of it, so the base always fits.
const GROUP_ALIGN: usize = 16;
/// The largest IPv4 customer id the entry encoding holds (id + 1 < `EXT`).
const V4_MAX_CUSTOMER: u32 = EXT - 2;
/// A `/24` entry with these bits all set is a *regular* /24 instead of an
/// extension group: one carved into 2^(8 − shift) equal pools whose owners
/// are consecutive customer ids (a provider's pool of /28s listed in
/// address order). Bits 25..28 hold the shift and bits 0..25 the first
/// pool's customer id, so the lookup computes the customer from the last
/// octet and reads no group: one cache line fewer per lookup. Group
/// entries never have all three shift bits set (their shift is 0..=4).
const REGULAR: u32 = EXT | (7 << GROUP_SHIFT_BITS);
const REGULAR_SHIFT_BITS: u32 = 25;
const REGULAR_BASE: u32 = (1 << REGULAR_SHIFT_BITS) - 1;
const TBL24_LEN: usize = 1 << 24;

/// Lookups whose loads one [`Classifier::lookup_burst`] stage issues
/// before it waits on any: an rx burst.
pub const LOOKUP_BATCH: usize = 32;

struct V4Table {
    /// Indexed by the top 24 bits of the address; `TBL24_LEN` entries.
    tbl24: HugeArray<u32>,
    /// The extension groups, one per /24 that holds a prefix longer than
    /// /24, each of 2^(8 − shift) entries indexed by the last octet shifted
    /// right by the group's shift: 0 or customer id + 1, never `EXT`.
    tbl8: HugeArray<u32>,
    /// The /0's customer.
    default: Option<CustomerId>,
    prefixes: usize,
}

impl V4Table {
    /// `sorted` must be valid (no host bits, length ≤ 32, customer ≤
    /// `V4_MAX_CUSTOMER`), without duplicates, in ascending length order:
    /// a longer prefix overwrites the part of a shorter one it covers, and
    /// every /1../24 is in `tbl24` before the first extension group copies
    /// its entry.
    fn build(sorted: &[Pending<u32>], node: Option<u32>) -> V4Table {
        // Each /24's longest prefix sizes its group (the last one wins: the
        // list is in ascending length).
        let longest: HashMap<u32, u8, FxBuildHasher> = sorted
            .iter()
            .filter(|&&(len, ..)| len > 24)
            .map(|&(len, addr, ..)| (addr >> 8, len))
            .collect();
        // Zeroed mapped memory: the /24s no prefix touches stay out of the
        // resident set.
        let mut tbl24 = HugeArray::<u32>::zeroed(TBL24_LEN, node);
        let mut tbl8: Vec<u32> = Vec::new();
        let mut default = None;
        for &(len, addr, customer, _) in sorted {
            let entry = customer.get() + 1;
            let top = (addr >> 8) as usize;
            match len {
                0 => default = Some(customer),
                1..=24 => tbl24[top..top + (1 << (24 - len))].fill(entry),
                _ => {
                    let slot = &mut tbl24[top];
                    let (base, shift) = if *slot & EXT != 0 {
                        group_of(*slot)
                    } else {
                        let bits = u32::from(longest.get(&(addr >> 8)).copied().unwrap_or(32))
                            .clamp(28, 32)
                            - 24;
                        let (base, shift) = (tbl8.len(), 8 - bits);
                        // The rest of the /24 keeps what covered it so far.
                        tbl8.resize(base + (1 << bits), *slot);
                        *slot = EXT | (shift << GROUP_SHIFT_BITS) | (base / GROUP_ALIGN) as u32;
                        (base, shift)
                    };
                    // A /len covers 2^(32 − len) addresses, 2^shift to an
                    // entry; len ≤ 24 + bits, so it covers whole entries.
                    let first = base + ((addr & 0xff) >> shift) as usize;
                    let count = 1usize << (32 - u32::from(len) - shift);
                    tbl8[first..first + count].fill(entry);
                }
            }
        }
        for &top in longest.keys() {
            let slot = &mut tbl24[top as usize];
            if let Some(regular) = regular_entry(*slot, &tbl8) {
                *slot = regular;
            }
        }
        V4Table {
            tbl24,
            tbl8: HugeArray::from_slice(&tbl8, node),
            default,
            prefixes: sorted.len(),
        }
    }

    /// The entry of `a`'s last octet in the extension group that the
    /// `/24` entry `e` (which has `EXT` set) names.
    #[inline(always)]
    fn group_entry(&self, e: u32, a: u32) -> Option<&u32> {
        let (base, shift) = group_of(e);
        self.tbl8.get(base + (usize::from(a as u8) >> shift))
    }

    /// Stage 1 of a burst lookup: start loading the `/24` entry.
    #[inline(always)]
    fn prefetch(&self, a: u32) {
        if let Some(e) = self.tbl24.get((a >> 8) as usize) {
            prefetch(e);
        }
    }

    /// Stage 2: the `/24` entry; if it names an extension group, start
    /// loading the address's entry in it.
    #[inline(always)]
    fn first_level(&self, a: u32) -> u32 {
        let e = self.tbl24.get((a >> 8) as usize).copied().unwrap_or(0);
        if e & EXT != 0 && !is_regular(e) {
            if let Some(g) = self.group_entry(e, a) {
                prefetch(g);
            }
        }
        e
    }

    /// Stage 3: the customer, from the `/24` entry `e` of `a`.
    #[inline(always)]
    fn finish(&self, mut e: u32, a: u32) -> Option<CustomerId> {
        if e & EXT != 0 {
            if is_regular(e) {
                let shift = (e >> REGULAR_SHIFT_BITS) & 7;
                return Some(CustomerId(
                    (e & REGULAR_BASE) + (u32::from(a as u8) >> shift),
                ));
            }
            e = self.group_entry(e, a).copied().unwrap_or(0);
        }
        e.checked_sub(1).map(CustomerId).or(self.default)
    }

    #[inline]
    fn lookup(&self, a: u32) -> Option<CustomerId> {
        // `a >> 8` < 2^24 = the table's length, so `get` never misses.
        let e = self.tbl24.get((a >> 8) as usize).copied().unwrap_or(0);
        self.finish(e, a)
    }
}

#[inline(always)]
fn is_regular(e: u32) -> bool {
    e & REGULAR == REGULAR
}

/// The regular `/24` entry (see [`REGULAR`]) that answers every address
/// exactly as the extension group named by `e` does, if there is one:
/// every entry of the group holds a customer, and entry `i` holds the
/// first one's id + `i`.
fn regular_entry(e: u32, tbl8: &[u32]) -> Option<u32> {
    if e & EXT == 0 {
        return None;
    }
    let (base, shift) = group_of(e);
    let group = tbl8.get(base..base + (256 >> shift))?;
    let first = group.first()?.checked_sub(1)?;
    let consecutive = group.iter().enumerate().all(|(i, &entry)| {
        u32::try_from(i).ok().and_then(|i| first.checked_add(i + 1)) == Some(entry)
    });
    (consecutive && first + (group.len() as u32 - 1) <= REGULAR_BASE)
        .then_some(REGULAR | (shift << REGULAR_SHIFT_BITS) | first)
}

/// Where the extension group of the `/24` entry `e` starts in `tbl8`, and
/// its shift.
#[inline(always)]
fn group_of(e: u32) -> (usize, u32) {
    (
        (e & GROUP_BASE) as usize * GROUP_ALIGN,
        (e & !EXT) >> GROUP_SHIFT_BITS,
    )
}

/// IPv6: one exact-match table per configured length, longest first.
/// Lengths up to /64 (every customer prefix in practice) are keyed by the
/// top 64 bits in a [`ShortTable`] whose probe reads one cache line.
struct V6Table {
    /// /65../128: the length's mask and masked address → customer (rare:
    /// not prefetched).
    long: Vec<(u128, HashMap<u128, CustomerId, FxBuildHasher>)>,
    /// /1../64, longest first.
    short: Vec<ShortTable>,
    /// The /0's customer.
    default: Option<CustomerId>,
    prefixes: usize,
}

impl V6Table {
    /// `sorted`: valid, no duplicates, ascending length.
    fn build(sorted: &[Pending<u128>], node: Option<u32>) -> V6Table {
        let mut t = V6Table {
            long: Vec::new(),
            short: Vec::new(),
            default: None,
            prefixes: sorted.len(),
        };
        let mut rest = sorted;
        while let Some(&(len, ..)) = rest.first() {
            let n = rest.iter().take_while(|p| p.0 == len).count();
            let (same_len, tail) = rest.split_at(n);
            rest = tail;
            if len == 0 {
                t.default = same_len.first().map(|p| p.2);
            } else if len <= 64 {
                t.short.push(ShortTable::build(
                    (v6_mask(len) >> 64) as u64,
                    same_len.iter().map(|&(_, a, c, _)| ((a >> 64) as u64, c)),
                    same_len.len(),
                    node,
                ));
            } else {
                let mut map = HashMap::with_capacity_and_hasher(same_len.len(), FxBuildHasher);
                map.extend(same_len.iter().map(|&(_, a, c, _)| (a, c)));
                t.long.push((v6_mask(len), map));
            }
        }
        t.long.reverse();
        t.short.reverse();
        t
    }

    /// Stage 1 of a burst lookup: start loading the bucket of the longest
    /// length up to /64 (most customers': a provider's /64s), not every
    /// length's: the others are read only when it misses (stage 2), so an
    /// address that it answers costs one line, not one a length.
    #[inline(always)]
    fn prefetch(&self, a: u128) {
        if let Some(t) = self.short.first() {
            t.prefetch((a >> 64) as u64);
        }
    }

    /// Stage 2: probes the length stage 1 prefetched. `Some` is the answer
    /// when that settles it (a hit with no /65../128 table to probe before
    /// it, or no other length to try); otherwise the other lengths'
    /// buckets start loading and [`V6Table::lookup`] finishes in stage 3.
    #[inline(always)]
    fn first_probe(&self, a: u128) -> Option<Option<CustomerId>> {
        let top = (a >> 64) as u64;
        let Some((first, rest)) = self.short.split_first() else {
            return self.long.is_empty().then_some(self.default);
        };
        if self.long.is_empty() {
            if let Some(c) = first.get(top) {
                return Some(Some(c));
            }
            if rest.is_empty() {
                return Some(self.default);
            }
        }
        for t in rest {
            t.prefetch(top);
        }
        None
    }

    #[inline]
    fn lookup(&self, a: u128) -> Option<CustomerId> {
        for (mask, map) in &self.long {
            if let Some(&c) = map.get(&(a & mask)) {
                return Some(c);
            }
        }
        let top = (a >> 64) as u64;
        for t in &self.short {
            if let Some(c) = t.get(top) {
                return Some(c);
            }
        }
        self.default
    }
}

/// Slots per [`Bucket`].
const SLOTS: usize = 5;

/// One cache line of an IPv6 exact-match table: up to five masked /64
/// keys and their customers.
#[derive(Clone, Copy, Zeroable)]
#[repr(C, align(64))]
struct Bucket {
    keys: [u64; SLOTS],
    ids: [u32; SLOTS],
    /// Slots in use, filled from 0.
    used: u32,
}

/// The prefixes of one IPv6 length up to /64: open addressing over
/// one-line buckets, at most 40 % of the slots used, linear probing from
/// bucket to bucket. Nothing is ever removed (a reload builds a new table),
/// so a key is in the run of full buckets from its home bucket to the first
/// one with a free slot, or nowhere: almost every probe reads one line.
struct ShortTable {
    /// The length's mask of the top 64 bits.
    mask: u64,
    buckets: HugeArray<Bucket>,
    /// `64 - log2(buckets)`: the home bucket is the top bits of the hash.
    shift: u32,
}

impl ShortTable {
    fn build(
        mask: u64,
        entries: impl Iterator<Item = (u64, CustomerId)>,
        count: usize,
        node: Option<u32>,
    ) -> ShortTable {
        // ≥ 2.5 slots per entry, a power of two of buckets.
        let buckets = (count * 2 / SLOTS + 1).next_power_of_two();
        let mut t = ShortTable {
            mask,
            buckets: HugeArray::zeroed(buckets, node),
            shift: 64 - buckets.trailing_zeros(),
        };
        let wrap = buckets - 1;
        for (key, id) in entries {
            let mut b = t.home(key);
            // At most 40 % of the slots are used, so a free one exists.
            while let Some(bucket) = t.buckets.get_mut(b) {
                let used = bucket.used as usize;
                if let (Some(k), Some(i)) = (bucket.keys.get_mut(used), bucket.ids.get_mut(used)) {
                    *k = key;
                    *i = id.get();
                    bucket.used += 1;
                    break;
                }
                b = (b + 1) & wrap;
            }
        }
        t
    }

    /// The home bucket of `key` (already masked).
    #[inline(always)]
    fn home(&self, key: u64) -> usize {
        // Fibonacci hashing: the top bits of the product mix every key bit.
        let h = (key ^ (key >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h.checked_shr(self.shift).unwrap_or(0) as usize
    }

    #[inline(always)]
    fn prefetch(&self, top: u64) {
        if let Some(b) = self.buckets.get(self.home(top & self.mask)) {
            prefetch(b);
        }
    }

    #[inline]
    fn get(&self, top: u64) -> Option<CustomerId> {
        let key = top & self.mask;
        let wrap = self.buckets.len() - 1;
        let mut b = self.home(key);
        for _ in 0..self.buckets.len() {
            let bucket = self.buckets.get(b)?;
            let used = (bucket.used as usize).min(SLOTS);
            if let Some(s) = bucket.keys[..used].iter().position(|&k| k == key) {
                return bucket.ids.get(s).copied().map(CustomerId);
            }
            if used < SLOTS {
                return None;
            }
            b = (b + 1) & wrap;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use std::collections::HashSet;

    fn v4(s: &str) -> SrcAddr {
        SrcAddr::V4(u32::from(s.parse::<Ipv4Addr>().unwrap()))
    }
    fn v6(s: &str) -> SrcAddr {
        SrcAddr::V6(u128::from(s.parse::<Ipv6Addr>().unwrap()))
    }

    /// [`Classifier::build`] from bare ids.
    fn build(
        customers: usize,
        prefixes: impl IntoIterator<Item = (IpAddr, u8, u32)>,
    ) -> Result<Classifier, ClassifierError> {
        let prefixes = prefixes
            .into_iter()
            .map(|(a, len, c)| (a, len, CustomerId(c)));
        Classifier::build(customers, prefixes)
    }

    /// [`Classifier::lookup`] as a bare id.
    fn lookup(c: &Classifier, src: SrcAddr) -> Option<u32> {
        c.lookup(src).map(CustomerId::get)
    }

    /// [`Classifier::lookup_burst`] as bare ids.
    fn lookup_burst(c: &Classifier, srcs: &[SrcAddr]) -> Vec<Option<u32>> {
        let mut got = vec![Some(CustomerId(u32::MAX)); srcs.len()];
        c.lookup_burst(srcs, &mut got);
        got.into_iter().map(|o| o.map(CustomerId::get)).collect()
    }

    fn table() -> Classifier {
        build(
            3,
            [
                ("198.51.100.0".parse().unwrap(), 24, 0),
                ("198.51.100.128".parse().unwrap(), 25, 1),
                ("2001:db8:1::".parse().unwrap(), 48, 0),
                ("2001:db8:1:5::".parse().unwrap(), 64, 2),
            ],
        )
        .unwrap()
    }

    #[test]
    fn v4_longest_prefix_wins() {
        let c = table();
        assert_eq!(lookup(&c, v4("198.51.100.1")), Some(0));
        assert_eq!(lookup(&c, v4("198.51.100.200")), Some(1));
        assert_eq!(lookup(&c, v4("198.51.101.1")), None);
        assert_eq!(lookup(&c, v4("0.0.0.0")), None);
    }

    #[test]
    fn v6_longest_prefix_wins() {
        let c = table();
        assert_eq!(lookup(&c, v6("2001:db8:1::1")), Some(0));
        assert_eq!(lookup(&c, v6("2001:db8:1:5::9")), Some(2));
        assert_eq!(lookup(&c, v6("2001:db8:2::1")), None);
    }

    #[test]
    fn host_bits_and_duplicates_are_errors() {
        assert!(matches!(
            build(1, [("10.0.0.1".parse().unwrap(), 24, 0)]),
            Err(ClassifierError::BadPrefix { .. })
        ));
        assert!(matches!(
            build(
                2,
                [
                    ("10.0.0.0".parse().unwrap(), 24, 0),
                    ("10.0.0.0".parse().unwrap(), 24, 1)
                ]
            ),
            Err(ClassifierError::Duplicate {
                first: CustomerId(0),
                second: CustomerId(1),
                ..
            })
        ));
    }

    #[test]
    fn lengths_out_of_range_are_errors() {
        for (addr, len) in [("10.0.0.0", 33), ("2001:db8::", 129)] {
            assert!(matches!(
                build(1, [(addr.parse().unwrap(), len, 0)]),
                Err(ClassifierError::BadPrefix { .. })
            ));
        }
    }

    #[test]
    fn errors_come_in_input_order() {
        let dup_then_bad = [
            ("10.0.0.0".parse().unwrap(), 24, 0),
            ("2001:db8::".parse().unwrap(), 32, 1),
            ("10.0.0.0".parse().unwrap(), 24, 2),
            ("10.0.0.1".parse().unwrap(), 24, 3),
            ("2001:db8::".parse().unwrap(), 32, 4),
        ];
        assert!(matches!(
            build(5, dup_then_bad),
            Err(ClassifierError::Duplicate {
                first: CustomerId(0),
                second: CustomerId(2),
                ..
            })
        ));
        let bad_then_dup = [
            ("10.0.0.0".parse().unwrap(), 24, 0),
            ("10.0.0.1".parse().unwrap(), 24, 1),
            ("10.0.0.0".parse().unwrap(), 24, 2),
        ];
        assert!(matches!(
            build(3, bad_then_dup),
            Err(ClassifierError::BadPrefix {
                customer: CustomerId(1),
                ..
            })
        ));
    }

    #[test]
    fn slash_zero_and_host_routes() {
        let c = build(
            4,
            [
                ("0.0.0.0".parse().unwrap(), 0, 0),
                ("255.255.255.255".parse().unwrap(), 32, 1),
                ("::".parse().unwrap(), 0, 2),
                (
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
                    128,
                    3,
                ),
            ],
        )
        .unwrap();
        assert_eq!(c.prefixes(), (2, 2));
        assert_eq!(lookup(&c, v4("0.0.0.0")), Some(0));
        assert_eq!(lookup(&c, v4("255.255.255.254")), Some(0));
        assert_eq!(lookup(&c, v4("255.255.255.255")), Some(1));
        assert_eq!(lookup(&c, v6("::1")), Some(2));
        assert_eq!(
            lookup(&c, v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")),
            Some(2)
        );
        assert_eq!(
            lookup(&c, v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(3)
        );
    }

    #[test]
    fn holds_a_million_prefixes() {
        // 1,000,000 customers, each a /32 out of 10.0.0.0/8 + 11.0.0.0/8.
        let n: u32 = 1_000_000;
        let c = build(
            n as usize,
            (0..n).map(|i| (IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7)), 32, i)),
        )
        .unwrap();
        assert_eq!(c.prefixes().0, n as usize);
        for i in (0..n).step_by(9973) {
            assert_eq!(lookup(&c, SrcAddr::V4(0x0a00_0000 + i * 7)), Some(i));
            assert_eq!(lookup(&c, SrcAddr::V4(0x0a00_0000 + i * 7 + 1)), None);
        }
    }

    #[test]
    fn holds_a_million_v6_prefixes() {
        // 1,000,000 customers, each a /56 and a /64 inside it.
        let n: u32 = 1_000_000;
        let net = |i: u32| (0x2001_0db8_u128 << 96) | (u128::from(i) << 72);
        let c = build(
            n as usize,
            (0..n).flat_map(|i| {
                [
                    (IpAddr::V6(Ipv6Addr::from(net(i))), 56, i),
                    (
                        IpAddr::V6(Ipv6Addr::from(net(i) | (1 << 64))),
                        64,
                        n - 1 - i,
                    ),
                ]
            }),
        )
        .unwrap();
        assert_eq!(c.prefixes(), (0, 2 * n as usize));
        for i in (0..n).step_by(9973) {
            assert_eq!(lookup(&c, SrcAddr::V6(net(i) | 7)), Some(i));
            let host = net(i) | 7;
            assert_eq!(lookup(&c, SrcAddr::V6(host | (1 << 64))), Some(n - 1 - i));
            assert_eq!(lookup(&c, SrcAddr::V6(host | (1 << 71))), Some(i));
            assert_eq!(lookup(&c, SrcAddr::V6(host ^ (1 << 100))), None);
        }
    }

    #[test]
    fn short_table_finds_every_key_through_full_buckets() {
        for count in [0usize, 1, 2, 5, 6, 64, 1000, 20_000] {
            // Keys that differ only in a few bits, and keys in a stride.
            let keys: Vec<u64> = (0..count as u64)
                .map(|i| {
                    if i % 2 == 0 {
                        i << 16
                    } else {
                        (i << 40) | 0xff00
                    }
                })
                .collect();
            let t = ShortTable::build(
                u64::MAX,
                keys.iter()
                    .enumerate()
                    .map(|(i, &k)| (k, CustomerId(i as u32))),
                count,
                None,
            );
            assert!(t.buckets.iter().map(|b| b.used as usize).sum::<usize>() == count);
            for (i, &k) in keys.iter().enumerate() {
                assert_eq!(
                    t.get(k).map(CustomerId::get),
                    Some(i as u32),
                    "{count}: key {k:#x}"
                );
            }
            for k in keys.iter().map(|k| k | 1) {
                assert_eq!(t.get(k).map(CustomerId::get), None);
            }
        }
    }

    #[test]
    fn pools_of_consecutive_ids_read_no_group() {
        // 10.1.2.0/24 as sixteen /28s owned by customers 100..116, in
        // address order; 10.1.3.0/24 the same but one pool out of order;
        // 10.1.4.0/24 with one /28 missing (under a /16 of customer 7).
        let mut prefixes: Vec<(IpAddr, u8, u32)> = Vec::new();
        let pools = |third: u8, id: &dyn Fn(u8) -> Option<u32>| {
            (0..16u8)
                .filter_map(|i| {
                    id(i).map(|c| (IpAddr::V4(Ipv4Addr::new(10, 1, third, i * 16)), 28, c))
                })
                .collect::<Vec<_>>()
        };
        prefixes.extend(pools(2, &|i| Some(100 + u32::from(i))));
        prefixes.extend(pools(3, &|i| {
            Some(200 + u32::from(if i < 2 { 1 - i } else { i }))
        }));
        prefixes.extend(pools(4, &|i| (i != 5).then(|| 300 + u32::from(i))));
        prefixes.push((IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)), 16, 7));
        let c = build(400, prefixes).unwrap();
        let entry = |third: u32| c.v4.tbl24[(0x000a_0100 | third) as usize];
        assert!(is_regular(entry(2)));
        assert!(!is_regular(entry(3)) && entry(3) & EXT != 0);
        assert!(!is_regular(entry(4)) && entry(4) & EXT != 0);
        for last in 0..=255u8 {
            let pool = u32::from(last / 16);
            assert_eq!(lookup(&c, v4(&format!("10.1.2.{last}"))), Some(100 + pool));
            let out_of_order = if pool < 2 { 1 - pool } else { pool };
            assert_eq!(
                lookup(&c, v4(&format!("10.1.3.{last}"))),
                Some(200 + out_of_order)
            );
            let want = if pool == 5 { 7 } else { 300 + pool };
            assert_eq!(lookup(&c, v4(&format!("10.1.4.{last}"))), Some(want));
        }
        assert_eq!(lookup(&c, v4("10.1.5.1")), Some(7));
    }

    /// Every address of the /24s at `tops` answers as a linear scan of
    /// `p4` does, one by one and in bursts.
    fn every_address_matches(p4: &[(u32, u8, u32)], tops: &[u32]) -> Result<(), TestCaseError> {
        let c = build(
            4096,
            p4.iter()
                .map(|&(a, len, c)| (IpAddr::V4(Ipv4Addr::from(a)), len, c)),
        )
        .unwrap();
        let queries: Vec<u32> = tops
            .iter()
            .flat_map(|&t| (0..256).map(move |l| t | l))
            .collect();
        for &q in &queries {
            let want = reference(p4, q, |a, len, q| q & v4_mask(len) == a);
            prop_assert_eq!(lookup(&c, SrcAddr::V4(q)), want, "v4 {}", Ipv4Addr::from(q));
        }
        let srcs: Vec<SrcAddr> = queries.iter().map(|&q| SrcAddr::V4(q)).collect();
        let got = lookup_burst(&c, &srcs);
        let want: Vec<Option<u32>> = srcs.iter().map(|&s| lookup(&c, s)).collect();
        prop_assert_eq!(got, want);
        Ok(())
    }

    /// The specification: the longest prefix that contains `q`.
    fn reference<A: Copy + Eq>(
        prefixes: &[(A, u8, u32)],
        q: A,
        contains: impl Fn(A, u8, A) -> bool,
    ) -> Option<u32> {
        prefixes
            .iter()
            .filter(|&&(a, len, _)| contains(a, len, q))
            .max_by_key(|p| p.1)
            .map(|p| p.2)
    }

    fn v4_len() -> impl Strategy<Value = u8> {
        prop_oneof![1 => Just(0u8), 1 => Just(32u8), 1 => 24u8..=25, 2 => 0u8..=32, 4 => 16u8..=32]
    }

    fn v6_len() -> impl Strategy<Value = u8> {
        prop_oneof![
            1 => Just(0u8),
            1 => Just(128u8),
            1 => prop::sample::select(vec![48u8, 56, 64]),
            2 => 0u8..=128,
            4 => 40u8..=72,
        ]
    }

    /// Prefixes around `base`: each keeps `base`'s bits above its own
    /// random depth and takes random ones below it, so they nest and
    /// overlap. First one wins on a repeated (address, length).
    fn nested<A: Copy + Eq + std::hash::Hash>(
        base: A,
        raw: &[(A, u8, u8, u32)],
        around: impl Fn(A, A, u8) -> A,
        mask: impl Fn(u8) -> A,
        and: impl Fn(A, A) -> A,
    ) -> Vec<(A, u8, u32)> {
        let mut seen = HashSet::new();
        raw.iter()
            .map(|&(noise, len, depth, c)| (and(around(base, noise, depth), mask(len)), len, c))
            .filter(|&(a, len, _)| seen.insert((a, len)))
            .collect()
    }

    /// Addresses worth asking about: each prefix's first and last address
    /// and their outside neighbours, and random ones near `base`.
    fn v4_queries(p: &[(u32, u8, u32)], base: u32, noise: &[u32]) -> Vec<u32> {
        let mut q: Vec<u32> = p
            .iter()
            .flat_map(|&(a, len, _)| {
                let last = a | !v4_mask(len);
                [a, last, a.wrapping_sub(1), last.wrapping_add(1)]
            })
            .collect();
        q.extend(noise.iter().flat_map(|&n| [base ^ (n >> (n % 32)), n]));
        q
    }

    fn v6_queries(p: &[(u128, u8, u32)], base: u128, noise: &[u128]) -> Vec<u128> {
        let mut q: Vec<u128> = p
            .iter()
            .flat_map(|&(a, len, _)| {
                let last = a | !v6_mask(len);
                [a, last, a.wrapping_sub(1), last.wrapping_add(1)]
            })
            .collect();
        q.extend(noise.iter().flat_map(|&n| [base ^ (n >> (n % 128)), n]));
        q
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Matches a linear longest-prefix scan on random nested prefixes
        /// of both families in one table.
        #[test]
        fn matches_a_linear_scan(
            base4 in any::<u32>(),
            raw4 in prop::collection::vec((any::<u32>(), v4_len(), 0u8..=32, 0u32..8), 0..40),
            noise4 in prop::collection::vec(any::<u32>(), 0..32),
            base6 in any::<u128>(),
            raw6 in prop::collection::vec((any::<u128>(), v6_len(), 0u8..=128, 0u32..8), 0..40),
            noise6 in prop::collection::vec(any::<u128>(), 0..32),
        ) {
            let p4 = nested(
                base4,
                &raw4,
                |b, n, d| b ^ (n & !v4_mask(d)),
                v4_mask,
                |a, m| a & m,
            );
            let p6 = nested(
                base6,
                &raw6,
                |b, n, d| b ^ (n & !v6_mask(d)),
                v6_mask,
                |a, m| a & m,
            );
            let c = build(
                8,
                p4.iter()
                    .map(|&(a, len, c)| (IpAddr::V4(Ipv4Addr::from(a)), len, c))
                    .chain(p6.iter().map(|&(a, len, c)| (IpAddr::V6(Ipv6Addr::from(a)), len, c))),
            )
            .unwrap();
            prop_assert_eq!(c.prefixes(), (p4.len(), p6.len()));
            for q in v4_queries(&p4, base4, &noise4) {
                let want = reference(&p4, q, |a, len, q| q & v4_mask(len) == a);
                prop_assert_eq!(lookup(&c, SrcAddr::V4(q)), want, "v4 {}", Ipv4Addr::from(q));
            }
            for q in v6_queries(&p6, base6, &noise6) {
                let want = reference(&p6, q, |a, len, q| q & v6_mask(len) == a);
                prop_assert_eq!(lookup(&c, SrcAddr::V6(q)), want, "v6 {}", Ipv6Addr::from(q));
            }
            // The burst lookup answers exactly as one by one, mixed
            // families included.
            let srcs: Vec<SrcAddr> = v4_queries(&p4, base4, &noise4)
                .into_iter()
                .map(SrcAddr::V4)
                .zip(v6_queries(&p6, base6, &noise6).into_iter().map(SrcAddr::V6))
                .flat_map(|(a, b)| [a, b])
                .collect();
            let got = lookup_burst(&c, &srcs);
            let want: Vec<Option<u32>> = srcs.iter().map(|&s| lookup(&c, s)).collect();
            prop_assert_eq!(got, want);
        }

        /// /24s carved into equal pools, most with consecutive owners
        /// (encoded in the /24 entry), some with a pool missing, an owner
        /// out of order or a longer prefix inside a pool (extension
        /// groups), under a random covering prefix: every address of them
        /// answers as a linear scan does, one by one and in bursts.
        #[test]
        fn pools_match_a_linear_scan(
            slash24s in prop::collection::vec(
                (0u32..4, 28u8..=32, 0u32..2000, prop::option::of(0u32..256), prop::option::of(0u32..256)),
                1..6,
            ),
            cover in prop::option::of((0u8..=24, 0u32..2000)),
        ) {
            let base = 0x0a00_0000u32;
            let mut p4: Vec<(u32, u8, u32)> = Vec::new();
            let mut tops = Vec::new();
            for (k, &(third, len, first, missing, swapped)) in slash24s.iter().enumerate() {
                let top = base | ((k as u32 * 5 + third) << 8);
                tops.push(top);
                let pools = 1u32 << (len - 24);
                let size = 256 / pools;
                for i in 0..pools {
                    if missing.is_some_and(|m| m % pools == i) {
                        continue;
                    }
                    let id = match swapped {
                        Some(s) if s % pools == i && i + 1 < pools => first + i + 1,
                        Some(s) if s % pools + 1 == i => first + i - 1,
                        _ => first + i,
                    };
                    p4.push((top | (i * size), len, id));
                }
            }
            if let Some((len, id)) = cover {
                p4.push((base & v4_mask(len), len, id));
            }
            every_address_matches(&p4, &tops)?;
        }

        /// /24s carved into aligned prefixes of mixed lengths with gaps,
        /// owned by consecutive ids in address order or with two owners
        /// swapped (a billing export's /24s, sorted or not), under a random covering
        /// prefix: every address answers as a linear scan does, one by one
        /// and in bursts.
        #[test]
        fn mixed_slash24s_match_a_linear_scan(
            slash24s in prop::collection::vec(
                (
                    prop::collection::vec((25u8..=32, 0u8..4), 1..48),
                    0u32..3000,
                    prop::option::of((0usize..64, 0usize..64)),
                ),
                1..5,
            ),
            cover in prop::option::of((0u8..=24, 0u32..3000)),
        ) {
            let base = 0x0a00_0000u32;
            let mut p4: Vec<(u32, u8, u32)> = Vec::new();
            let mut tops = Vec::new();
            for (k, (carve, first, swap)) in slash24s.iter().enumerate() {
                let top = base | ((k as u32 * 3 + 1) << 8);
                tops.push(top);
                let mut at = 0u32;
                let mut ids: Vec<(u32, u8)> = Vec::new();
                for &(len, gap) in carve {
                    let size = 1u32 << (32 - len);
                    at = at.next_multiple_of(size);
                    if at + size > 256 {
                        break;
                    }
                    // One in four a gap of the same size.
                    if gap != 0 {
                        ids.push((at, len));
                    }
                    at += size;
                }
                let mut owners: Vec<u32> = (0..ids.len() as u32).map(|i| first + i).collect();
                if let Some((x, y)) = swap {
                    if !owners.is_empty() {
                        let n = owners.len();
                        owners.swap(x % n, y % n);
                    }
                }
                for (&(at, len), &id) in ids.iter().zip(&owners) {
                    p4.push((top | at, len, id));
                }
            }
            if let Some((len, id)) = cover {
                p4.push((base & v4_mask(len), len, id));
            }
            every_address_matches(&p4, &tops)?;
        }

        /// Errors are what a one-by-one insert in input order meets first.
        #[test]
        fn reports_the_first_duplicate(
            raw in prop::collection::vec(
                (0usize..3, prop::sample::select(vec![0u8, 8, 24, 32]), any::<bool>(), 0u32..4),
                1..12,
            ),
        ) {
            let bases4 = [0x0a00_0000u32, 0x0a01_0000, 0xc633_6400];
            let bases6 = [0x2001_0db8_u128 << 96, 0x2001_0db9_u128 << 96, 1];
            let entries: Vec<(IpAddr, u8, u32)> = raw
                .iter()
                .map(|&(b, len, six, c)| {
                    if six {
                        let len = len * 4;
                        (IpAddr::V6(Ipv6Addr::from(bases6[b] & v6_mask(len))), len, c)
                    } else {
                        (IpAddr::V4(Ipv4Addr::from(bases4[b] & v4_mask(len))), len, c)
                    }
                })
                .collect();
            let mut first = HashMap::new();
            let expected = entries
                .iter()
                .find_map(|&(a, len, c)| first.insert((a, len), c).map(|f| (a, len, f, c)));
            match (build(4, entries.iter().copied()), expected) {
                (Ok(_), None) => {}
                (
                    Err(ClassifierError::Duplicate { addr, len, first, second }),
                    Some(want),
                ) => prop_assert_eq!((addr, len, first.get(), second.get()), want),
                (got, want) => prop_assert!(false, "{:?} vs {:?}", got, want),
            }
        }
    }
}
