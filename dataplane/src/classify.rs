//! Source address → customer id, longest prefix wins.
//!
//! Backed by the tree-bitmap LPM that `ip_network_table` is built on
//! (`ip_network_table-deps-treebitmap`), used directly: its lookup returns
//! the matched prefix as plain values, so the worker's path has no
//! network-constructing `unwrap` in it. See BENCHMARKS.md for the
//! measurement. Only frames on the watched ports are classified, so the
//! lookup is off the path of most traffic.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ip_network::{Ipv4Network, Ipv6Network};
use treebitmap::IpLookupTable;

use crate::parse::SrcAddr;

/// A dense customer id: the customer's index in the configuration.
pub type CustomerId = u32;

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
    v4: IpLookupTable<Ipv4Addr, CustomerId>,
    v6: IpLookupTable<Ipv6Addr, CustomerId>,
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

impl Classifier {
    /// Builds the table from `(address, prefix length, customer)` entries;
    /// `customers` is the number of customer ids (ids are `0..customers`).
    pub fn build<I>(customers: usize, prefixes: I) -> Result<Classifier, ClassifierError>
    where
        I: IntoIterator<Item = (IpAddr, u8, CustomerId)>,
    {
        let mut v4 = IpLookupTable::new();
        let mut v6 = IpLookupTable::new();
        for (addr, len, customer) in prefixes {
            let bad = |reason: String| ClassifierError::BadPrefix {
                addr,
                len,
                customer,
                reason,
            };
            // Validate (length in range, no host bits) before inserting.
            let previous = match addr {
                IpAddr::V4(a) => {
                    Ipv4Network::new(a, len).map_err(|e| bad(e.to_string()))?;
                    v4.insert(a, u32::from(len), customer)
                }
                IpAddr::V6(a) => {
                    Ipv6Network::new(a, len).map_err(|e| bad(e.to_string()))?;
                    v6.insert(a, u32::from(len), customer)
                }
            };
            if let Some(first) = previous {
                return Err(ClassifierError::Duplicate {
                    addr,
                    len,
                    first,
                    second: customer,
                });
            }
        }
        Ok(Classifier { v4, v6, customers })
    }

    /// Number of customer ids.
    pub fn customers(&self) -> usize {
        self.customers
    }

    /// IPv4 and IPv6 prefix counts.
    pub fn prefixes(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    /// The customer owning `src`, by longest matching prefix.
    #[inline]
    pub fn lookup(&self, src: SrcAddr) -> Option<CustomerId> {
        match src {
            SrcAddr::V4(a) => self.v4.longest_match(Ipv4Addr::from(a)).map(|(_, _, c)| *c),
            SrcAddr::V6(a) => self.v6.longest_match(Ipv6Addr::from(a)).map(|(_, _, c)| *c),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> SrcAddr {
        SrcAddr::V4(u32::from(s.parse::<Ipv4Addr>().unwrap()))
    }
    fn v6(s: &str) -> SrcAddr {
        SrcAddr::V6(u128::from(s.parse::<Ipv6Addr>().unwrap()))
    }

    fn table() -> Classifier {
        Classifier::build(
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
        assert_eq!(c.lookup(v4("198.51.100.1")), Some(0));
        assert_eq!(c.lookup(v4("198.51.100.200")), Some(1));
        assert_eq!(c.lookup(v4("198.51.101.1")), None);
        assert_eq!(c.lookup(v4("0.0.0.0")), None);
    }

    #[test]
    fn v6_longest_prefix_wins() {
        let c = table();
        assert_eq!(c.lookup(v6("2001:db8:1::1")), Some(0));
        assert_eq!(c.lookup(v6("2001:db8:1:5::9")), Some(2));
        assert_eq!(c.lookup(v6("2001:db8:2::1")), None);
    }

    #[test]
    fn host_bits_and_duplicates_are_errors() {
        assert!(matches!(
            Classifier::build(1, [("10.0.0.1".parse().unwrap(), 24, 0)]),
            Err(ClassifierError::BadPrefix { .. })
        ));
        assert!(matches!(
            Classifier::build(
                2,
                [
                    ("10.0.0.0".parse().unwrap(), 24, 0),
                    ("10.0.0.0".parse().unwrap(), 24, 1)
                ]
            ),
            Err(ClassifierError::Duplicate {
                first: 0,
                second: 1,
                ..
            })
        ));
    }

    #[test]
    fn holds_a_million_prefixes() {
        // 1,000,000 customers, each a /32 out of 10.0.0.0/8 + 11.0.0.0/8.
        let n: u32 = 1_000_000;
        let c = Classifier::build(
            n as usize,
            (0..n).map(|i| (IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7)), 32, i)),
        )
        .unwrap();
        assert_eq!(c.prefixes().0, n as usize);
        for i in (0..n).step_by(9973) {
            assert_eq!(c.lookup(SrcAddr::V4(0x0a00_0000 + i * 7)), Some(i));
            assert_eq!(c.lookup(SrcAddr::V4(0x0a00_0000 + i * 7 + 1)), None);
        }
    }
}
