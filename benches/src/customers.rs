//! The benchmark customer tables, in two layouts ([`LayoutKind`]):
//!
//! - **bench** (the tidy one the flood work was measured on): customer `i`
//!   owns the IPv4 /28 `10.0.0.0 + 16·i` and the IPv6 /64
//!   `2001:db8:hi:lo::` (hi:lo = i), so a million customers exactly fill
//!   10.0.0.0/8 and ids run in address order.
//! - **billing** (as a provider's billing export has it, issue 26): 70 % of
//!   the customers one VPS /32 + /64, 15 % a /29 + /64, 10 % a /28 + /56,
//!   5 % a /27 + /48, packed densely upwards from 10.0.0.0 (each aligned to
//!   its size, so /32s sit beside /29s in one /24), and the ids (the order
//!   of the customers file) a seeded shuffle of the address order.
//!
//! In both, one more customer, "acme", owns 198.51.100.0/24 and
//! 2001:db8:ffff:ffff::/64 and is blocked. Everything is deterministic.
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use synwall_dataplane::CustomerId;

use crate::rng::Rng;

/// Largest table this layout can hold (10.0.0.0/8 in /28s).
pub const MAX_CUSTOMERS: u32 = 1 << 20;

/// IPv4 prefix length of a generated customer.
pub const V4_LEN: u8 = 28;
/// IPv6 prefix length of a generated customer.
pub const V6_LEN: u8 = 64;

/// The blocked customer's IPv4 network.
pub const ACME_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 0);
/// The blocked customer's IPv6 network (/64).
pub const ACME_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0xffff, 0, 0, 0, 0);

/// Customer `i`'s IPv4 network address.
pub fn v4_net(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + (i << 4))
}

/// Customer `i`'s IPv6 network address.
pub fn v6_net(i: u32) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 0)
}

/// Host `h` (1..15) inside customer `i`'s IPv4 /28.
pub fn v4_host(i: u32, h: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(v4_net(i)) + (h & 15))
}

/// Host `h` inside customer `i`'s IPv6 /64.
pub fn v6_host(i: u32, h: u64) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(v6_net(i)) | u128::from(h))
}

/// Every `(address, length, id)` prefix of `n` generated customers (ids
/// `0..n`), then acme's two prefixes with id `n`; with `v6`, one IPv6 /64
/// per customer besides the IPv4 /28.
pub fn prefixes(n: u32, v6: bool) -> impl Iterator<Item = (IpAddr, u8, CustomerId)> {
    assert!(n <= MAX_CUSTOMERS, "at most {MAX_CUSTOMERS} customers");
    let acme = CustomerId::new(n);
    (0..n)
        .flat_map(move |i| {
            let id = CustomerId::new(i);
            let a = (IpAddr::V4(v4_net(i)), V4_LEN, id);
            let b = v6.then_some((IpAddr::V6(v6_net(i)), V6_LEN, id));
            std::iter::once(a).chain(b)
        })
        .chain([
            (IpAddr::V4(ACME_V4), 24, acme),
            (IpAddr::V6(ACME_V6), 64, acme),
        ])
}

/// Writes a `customers_file` (TOML, `[[customer]]` entries only) with the
/// `n` generated customers (names `c0`, `c1`, …). Acme is not in it: the
/// main config names it, blocked.
pub fn write_customers_toml(out: &mut impl Write, n: u32, v6: bool) -> io::Result<()> {
    assert!(n <= MAX_CUSTOMERS, "at most {MAX_CUSTOMERS} customers");
    for i in 0..n {
        if v6 {
            writeln!(
                out,
                "[[customer]]\nname = \"c{i}\"\nprefixes = [\"{}/{V4_LEN}\", \"{}/{V6_LEN}\"]",
                v4_net(i),
                v6_net(i)
            )?;
        } else {
            writeln!(
                out,
                "[[customer]]\nname = \"c{i}\"\nprefixes = [\"{}/{V4_LEN}\"]",
                v4_net(i)
            )?;
        }
    }
    Ok(())
}

/// Which layout a table has (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayoutKind {
    /// Customer `i` owns the `i`-th /28 of 10/8 and a /64: ids in address
    /// order, one prefix size.
    #[default]
    Bench,
    /// Billing-export order, /32../27 and /64../48 mixed.
    Billing,
    /// The billing layout's prefixes with the ids in address order (an
    /// inventory exported by address): what the order of the file costs,
    /// apart from the prefix sizes.
    BillingSorted,
}

impl LayoutKind {
    /// The name on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            LayoutKind::Bench => "bench",
            LayoutKind::Billing => "billing",
            LayoutKind::BillingSorted => "billing-sorted",
        }
    }

    /// The kind named `s` (`bench`, `billing`, `billing-sorted`).
    pub fn parse(s: &str) -> Option<LayoutKind> {
        match s {
            "bench" => Some(LayoutKind::Bench),
            "billing" => Some(LayoutKind::Billing),
            "billing-sorted" => Some(LayoutKind::BillingSorted),
            _ => None,
        }
    }
}

/// Seed of the billing layout's sizes and id order.
const BILLING_SEED: u64 = 26;

/// One customer of the billing layout.
#[derive(Debug, Clone, Copy)]
struct Slot {
    v4: u32,
    len4: u8,
    v6: u128,
    len6: u8,
}

/// A table of `n` customers (ids `0..n`) in one layout: their prefixes and
/// hosts inside them.
#[derive(Debug, Clone)]
pub struct Layout {
    kind: LayoutKind,
    n: u32,
    /// Billing: customer id → its prefixes. Empty for the bench layout,
    /// which is arithmetic.
    slots: Vec<Slot>,
}

impl Layout {
    /// The table of `n` customers in layout `kind`.
    ///
    /// Panics if `n` is above [`MAX_CUSTOMERS`].
    pub fn new(kind: LayoutKind, n: u32) -> Layout {
        assert!(n <= MAX_CUSTOMERS, "at most {MAX_CUSTOMERS} customers");
        let slots = match kind {
            LayoutKind::Bench => Vec::new(),
            LayoutKind::Billing => billing_slots(n, true),
            LayoutKind::BillingSorted => billing_slots(n, false),
        };
        Layout { kind, n, slots }
    }

    /// The layout.
    pub fn kind(&self) -> LayoutKind {
        self.kind
    }

    /// Customers in the table (acme not counted).
    pub fn customers(&self) -> u32 {
        self.n
    }

    /// Customer `id`'s IPv4 prefix.
    pub fn v4_prefix(&self, id: u32) -> (Ipv4Addr, u8) {
        match self.slots.get(id as usize) {
            Some(s) => (Ipv4Addr::from(s.v4), s.len4),
            None => (v4_net(id), V4_LEN),
        }
    }

    /// Customer `id`'s IPv6 prefix.
    pub fn v6_prefix(&self, id: u32) -> (Ipv6Addr, u8) {
        match self.slots.get(id as usize) {
            Some(s) => (Ipv6Addr::from(s.v6), s.len6),
            None => (v6_net(id), V6_LEN),
        }
    }

    /// Host `h` inside customer `id`'s IPv4 prefix: in the bench layout
    /// [`v4_host`] (`h` 1..15), in the billing one the prefix's `h`-th
    /// usable address (a /32 has one).
    pub fn v4_host(&self, id: u32, h: u32) -> Ipv4Addr {
        match self.slots.get(id as usize) {
            Some(s) => {
                let size = 1u32 << (32 - s.len4);
                let offset = if size >= 4 { 1 + h % (size - 2) } else { 0 };
                Ipv4Addr::from(s.v4 + offset)
            }
            None => v4_host(id, h),
        }
    }

    /// Host `h` inside customer `id`'s IPv6 prefix (its low 64 bits `h`).
    pub fn v6_host(&self, id: u32, h: u64) -> Ipv6Addr {
        match self.slots.get(id as usize) {
            Some(s) => Ipv6Addr::from(s.v6 | u128::from(h)),
            None => v6_host(id, h),
        }
    }

    /// Every `(address, length, id)` prefix of the table in id order, then
    /// acme's two prefixes with id `n`; without `v6`, IPv4 only.
    pub fn prefixes(&self, v6: bool) -> Vec<(IpAddr, u8, CustomerId)> {
        let mut out = Vec::with_capacity(2 * self.n as usize + 2);
        for i in 0..self.n {
            let id = CustomerId::new(i);
            let (a, len) = self.v4_prefix(i);
            out.push((IpAddr::V4(a), len, id));
            if v6 {
                let (a, len) = self.v6_prefix(i);
                out.push((IpAddr::V6(a), len, id));
            }
        }
        let acme = CustomerId::new(self.n);
        out.push((IpAddr::V4(ACME_V4), 24, acme));
        out.push((IpAddr::V6(ACME_V6), 64, acme));
        out
    }

    /// Writes a `customers_file` (TOML, `[[customer]]` entries only) with
    /// the table's customers in id order (names `c0`, `c1`, …). Acme is not
    /// in it: the main config names it, blocked.
    pub fn write_customers_toml(&self, out: &mut impl Write, v6: bool) -> io::Result<()> {
        for i in 0..self.n {
            let (a, len) = self.v4_prefix(i);
            if v6 {
                let (a6, len6) = self.v6_prefix(i);
                writeln!(
                    out,
                    "[[customer]]\nname = \"c{i}\"\nprefixes = [\"{a}/{len}\", \"{a6}/{len6}\"]"
                )?;
            } else {
                writeln!(
                    out,
                    "[[customer]]\nname = \"c{i}\"\nprefixes = [\"{a}/{len}\"]"
                )?;
            }
        }
        Ok(())
    }
}

/// The billing layout of `n` customers, by id. Sizes are drawn in address
/// order (so a /24 holds what the draw put there: VPS /32s beside a /29),
/// addresses packed upwards from 10.0.0.0 with each prefix aligned to its
/// size; IPv6 /64s from 2001:db8::/34, /56s from 2001:db8:4000::/34, /48s
/// from 2001:dba::/32, each in address order. Then, if `shuffle`, the ids
/// are a shuffle of the address order, as an export sorted by account has
/// them.
fn billing_slots(n: u32, shuffle: bool) -> Vec<Slot> {
    let mut rng = Rng::new(BILLING_SEED);
    let mut cursor: u32 = 0x0a00_0000;
    let (mut n64, mut n56, mut n48) = (0u128, 0u128, 0u128);
    let mut by_address: Vec<Slot> = (0..n)
        .map(|_| {
            let (len4, len6) = match rng.below(100) {
                0..=69 => (32u8, 64u8),
                70..=84 => (29, 64),
                85..=94 => (28, 56),
                _ => (27, 48),
            };
            let size = 1u32 << (32 - len4);
            cursor = cursor.next_multiple_of(size);
            let v4 = cursor;
            cursor += size;
            assert!(
                cursor <= 0x0b00_0000,
                "the billing layout outgrew 10.0.0.0/8"
            );
            let v6 = match len6 {
                64 => {
                    n64 += 1;
                    (0x2001_0db8u128 << 96) | ((n64 - 1) << 64)
                }
                56 => {
                    n56 += 1;
                    (0x2001_0db8_4000u128 << 80) | ((n56 - 1) << 72)
                }
                _ => {
                    n48 += 1;
                    assert!(n48 <= 1 << 16, "too many /48s for 2001:dba::/32");
                    (0x2001_0dbau128 << 96) | ((n48 - 1) << 80)
                }
            };
            Slot { v4, len4, v6, len6 }
        })
        .collect();
    assert!(n64 < 1 << 30 && n56 < 1 << 22, "IPv6 pools overflow");
    if shuffle {
        rng.shuffle(&mut by_address);
    }
    by_address
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_fills_ten_slash_eight() {
        assert_eq!(v4_net(0), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(v4_net(MAX_CUSTOMERS - 1), Ipv4Addr::new(10, 255, 255, 240));
        assert_eq!(v4_host(1, 5), Ipv4Addr::new(10, 0, 0, 21));
        assert_eq!(
            v6_net(0x1_0002),
            "2001:db8:1:2::".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn customers_toml_shape() {
        let mut out = Vec::new();
        write_customers_toml(&mut out, 2, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("name = \"c1\"\nprefixes = [\"10.0.0.16/28\", \"2001:db8:0:1::/64\"]")
        );
    }

    #[test]
    fn billing_layout_is_mixed_and_out_of_order() {
        let l = Layout::new(LayoutKind::Billing, 20_000);
        let lens: Vec<u8> = (0..20_000).map(|i| l.v4_prefix(i).1).collect();
        let share = |len| lens.iter().filter(|&&x| x == len).count() * 100 / lens.len();
        assert!((68..=72).contains(&share(32)), "{}", share(32));
        assert!((13..=17).contains(&share(29)));
        assert!((8..=12).contains(&share(28)));
        assert!((3..=7).contains(&share(27)));
        // Ids in no address order: neighbours in the file are far apart.
        let ordered = (1..20_000)
            .filter(|&i| u32::from(l.v4_prefix(i).0) > u32::from(l.v4_prefix(i - 1).0))
            .count();
        assert!((9_000..11_000).contains(&ordered), "{ordered}");
        // Every prefix valid, no overlap, each host inside its own prefix,
        // and dense: 20k customers fit in a few hundred /24s.
        let mut nets: Vec<(u32, u32)> = (0..20_000)
            .map(|i| {
                let (a, len) = l.v4_prefix(i);
                let a = u32::from(a);
                let size = 1u32 << (32 - len);
                assert_eq!(a % size, 0);
                for h in [0, 1, 7, 100] {
                    let host = u32::from(l.v4_host(i, h));
                    assert!((a..a + size).contains(&host));
                    assert!(size < 4 || (host != a && host != a + size - 1));
                }
                let (a6, len6) = l.v6_prefix(i);
                let mask = u128::MAX >> len6;
                assert_eq!(u128::from(a6) & mask, 0);
                assert_eq!(u128::from(l.v6_host(i, 5)) & !mask, u128::from(a6));
                (a, a + size)
            })
            .collect();
        nets.sort_unstable();
        assert!(nets.windows(2).all(|w| w[0].1 <= w[1].0));
        let span = nets.last().unwrap().1 - 0x0a00_0000;
        assert!(span < 700 * 256, "{} /24s", span / 256);
        // Deterministic.
        assert_eq!(
            Layout::new(LayoutKind::Billing, 20_000).v6_prefix(777),
            l.v6_prefix(777)
        );
    }

    #[test]
    fn bench_layout_matches_the_functions() {
        let l = Layout::new(LayoutKind::Bench, 100);
        assert_eq!(l.v4_prefix(3), (v4_net(3), V4_LEN));
        assert_eq!(l.v4_host(3, 5), v4_host(3, 5));
        assert_eq!(l.v6_host(3, 9), v6_host(3, 9));
        let mut a = Vec::new();
        let mut b = Vec::new();
        l.write_customers_toml(&mut a, true).unwrap();
        write_customers_toml(&mut b, 100, true).unwrap();
        assert_eq!(a, b);
        assert_eq!(l.prefixes(true), prefixes(100, true).collect::<Vec<_>>());
    }
}
