//! The customers, addresses and configs the integration tests share: one
//! definition each, so a test names `ACME` or [`acme_blocked_beta_open`]
//! instead of restating them. The config text every crate's tests share
//! ([`customer`], [`NET_NULL_HEAD`]) is `synwall_config::fixtures`,
//! re-exported here.
//!
//! Addresses are from the documentation ranges (RFC 5737, RFC 3849) except
//! `MX`, a public mail server's address that no customer owns.

use std::net::{Ipv4Addr, Ipv6Addr};

pub use synwall_config::fixtures::*;

/// A host of customer `acme` (198.51.100.0/24).
pub const ACME: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// A host of customer `acme` (2001:db8:1::/48).
pub const ACME6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
/// A host of customer `beta` (192.0.2.0/24).
pub const BETA: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);
/// A host of customer `beta` (2001:db8:2::/48).
pub const BETA6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x33);
/// A source no customer owns.
pub const UNKNOWN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
/// The mail server the customers' SYNs go to.
pub const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
/// The mail server's IPv6 address.
pub const MX6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0x25);

/// `acme`: 198.51.100.0/24 and 2001:db8:1::/48 ([`ACME`], [`ACME6`]), with
/// `keys`.
pub fn acme(keys: &str) -> String {
    customer("acme", &["198.51.100.0/24", "2001:db8:1::/48"], keys)
}

/// `beta`: 192.0.2.0/24 and 2001:db8:2::/48 ([`BETA`], [`BETA6`]), with
/// `keys`.
pub fn beta(keys: &str) -> String {
    customer("beta", &["192.0.2.0/24", "2001:db8:2::/48"], keys)
}

/// The pair most packet-path tests run with: `acme` under a standing block
/// (`blocked = true`), `beta` open.
pub fn acme_blocked_beta_open() -> String {
    acme("blocked = true") + &beta("")
}

/// Two customers for tests of the outside of the box: `acme`
/// (10.1.0.0/16) with `acme_keys` (e.g. `blocked = true` for a standing
/// block), `beta` (10.2.0.0/16) open.
pub fn acme_beta_10(acme_keys: &str) -> String {
    customer("acme", &["10.1.0.0/16"], acme_keys) + &customer("beta", &["10.2.0.0/16"], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_blocked_beta_open_is_two_tables() {
        let pair = acme_blocked_beta_open();
        assert_eq!(pair.matches("[[customer]]").count(), 2, "{pair}");
        assert_eq!(pair.matches("blocked = true").count(), 1, "{pair}");
    }
}
