//! IP prefixes (`198.51.100.0/24`, `2001:db8:1::/48`) that say which addresses a
//! customer owns.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 prefix: a network address and a prefix length.
///
/// Values made by [`FromStr`] or [`Prefix::new`] have no host bits set, so two
/// prefixes are equal exactly when they cover the same addresses. The fields are
/// public for cheap reading by the classifier; [`Prefix::contains`] masks anyway,
/// so a hand-built value with host bits still answers correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Prefix {
    /// The network address (host bits clear).
    pub addr: IpAddr,
    /// The prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub len: u8,
}

/// Why a prefix was rejected. The message shows the text and, for host bits, the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Not an address, or not `address/length`.
    #[error("{0:?} is not an IP prefix; write an address and a length, e.g. \"198.51.100.0/24\" or \"2001:db8:1::/48\"")]
    Syntax(String),
    /// The length is larger than the address family allows.
    #[error("{text:?} has prefix length {len}, but an {family} prefix is at most /{max}")]
    LengthOutOfRange {
        /// The text as given.
        text: String,
        /// The length as given.
        len: u32,
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// 32 or 128.
        max: u8,
    },
    /// An IPv4-mapped IPv6 prefix (`::ffff:198.51.100.0/120`): frames carry
    /// IPv4 addresses in IPv4 headers, so it would never match.
    #[error("{given} is an IPv4-mapped IPv6 prefix, which never matches (IPv4 traffic carries IPv4 addresses); write it as {suggested}")]
    Ipv4Mapped {
        /// The text as given.
        given: String,
        /// The same addresses, spelled as IPv4.
        suggested: Prefix,
    },
    /// Address bits beyond the prefix length are set.
    #[error("{given} has host bits set; did you mean {suggested}?")]
    HostBitsSet {
        /// The text as given.
        given: String,
        /// The same prefix with the host bits cleared.
        suggested: Prefix,
    },
}

impl Prefix {
    /// Makes a prefix, rejecting a length beyond the family's maximum and set host bits.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        let max = max_len(addr);
        if len > max {
            return Err(PrefixError::LengthOutOfRange {
                text: format!("{addr}/{len}"),
                len: len.into(),
                family: family(addr),
                max,
            });
        }
        if let Some(suggested) = ipv4_spelling(addr, len) {
            return Err(PrefixError::Ipv4Mapped {
                given: format!("{addr}/{len}"),
                suggested,
            });
        }
        let network = mask(addr, len);
        if network != addr {
            return Err(PrefixError::HostBitsSet {
                given: format!("{addr}/{len}"),
                suggested: Prefix { addr: network, len },
            });
        }
        Ok(Prefix { addr, len })
    }

    /// A single-address prefix: /32 for IPv4, /128 for IPv6.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: max_len(addr),
        }
    }

    /// Whether `ip` lies inside this prefix. Addresses of the other family never do
    /// (an IPv4-mapped IPv6 address is not an IPv4 address here).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(self.addr, self.len) == mask(ip, self.len)
            }
            _ => false,
        }
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// Parses `address/length`, or a bare address as a /32 or /128.
    fn from_str(text: &str) -> Result<Prefix, PrefixError> {
        let syntax = || PrefixError::Syntax(text.to_owned());
        let Some((addr_text, len_text)) = text.split_once('/') else {
            let addr: IpAddr = text.parse().map_err(|_| syntax())?;
            return Prefix::new(addr, max_len(addr)).map_err(|e| e.given_as(text));
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| syntax())?;
        // u32::from_str accepts a leading '+'; a prefix length is digits only.
        if len_text.is_empty()
            || len_text.len() > 3
            || !len_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(syntax());
        }
        let len: u32 = len_text.parse().map_err(|_| syntax())?;
        let max = max_len(addr);
        if len > u32::from(max) {
            return Err(PrefixError::LengthOutOfRange {
                text: text.to_owned(),
                len,
                family: family(addr),
                max,
            });
        }
        // In range, so it fits a u8.
        let len = len as u8;
        Prefix::new(addr, len).map_err(|e| e.given_as(text))
    }
}

impl PrefixError {
    /// The same error, quoting `text` as the operator wrote it.
    fn given_as(self, text: &str) -> PrefixError {
        let given = text.to_owned();
        match self {
            PrefixError::HostBitsSet { suggested, .. } => {
                PrefixError::HostBitsSet { given, suggested }
            }
            PrefixError::Ipv4Mapped { suggested, .. } => {
                PrefixError::Ipv4Mapped { given, suggested }
            }
            other => other,
        }
    }
}

impl fmt::Display for Prefix {
    /// Always `address/length`, also for single addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The IPv4 prefix an IPv4-mapped IPv6 prefix (`::ffff:a.b.c.d/96+`) means,
/// host bits cleared; `None` for any other prefix.
fn ipv4_spelling(addr: IpAddr, len: u8) -> Option<Prefix> {
    let IpAddr::V6(v6) = addr else { return None };
    let v4 = v6.to_ipv4_mapped()?;
    let len = len.checked_sub(96)?;
    let network = mask(IpAddr::V4(v4), len);
    Some(Prefix { addr: network, len })
}

fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn family(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// Clears the bits of `addr` past the first `len` (clamped to the family's width).
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let keep = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & keep))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let keep = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & keep))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_v4_and_v6() {
        let p: Prefix = "198.51.100.0/24".parse().unwrap();
        assert_eq!(p.addr, ip("198.51.100.0"));
        assert_eq!(p.len, 24);
        assert!(p.is_ipv4());
        let p: Prefix = "2001:db8:1::/48".parse().unwrap();
        assert_eq!(p.len, 48);
        assert_eq!(p.to_string(), "2001:db8:1::/48");
        assert!(!p.is_ipv4());
        assert_eq!("0.0.0.0/0".parse::<Prefix>().unwrap().len, 0);
        assert_eq!("::/0".parse::<Prefix>().unwrap().len, 0);
    }

    #[test]
    fn ipv4_mapped_prefixes_are_refused_with_the_ipv4_spelling() {
        let e = "::ffff:198.51.100.0/120".parse::<Prefix>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "::ffff:198.51.100.0/120 is an IPv4-mapped IPv6 prefix, which never matches (IPv4 traffic carries IPv4 addresses); write it as 198.51.100.0/24"
        );
        let e = "::ffff:198.51.100.7".parse::<Prefix>().unwrap_err();
        assert!(
            e.to_string().ends_with("write it as 198.51.100.7/32"),
            "{e}"
        );
        // Covering more than the mapped range (::/0) is not a mapped prefix.
        assert!("::/0".parse::<Prefix>().is_ok());
        assert!("::fffe:0:0/96".parse::<Prefix>().is_ok());
    }

    #[test]
    fn bare_address_is_a_host_prefix() {
        assert_eq!(
            "192.0.2.7".parse::<Prefix>().unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            "2001:db8::1".parse::<Prefix>().unwrap().to_string(),
            "2001:db8::1/128"
        );
    }

    #[test]
    fn host_bits_are_rejected_with_a_suggestion() {
        let err = "198.51.100.1/24".parse::<Prefix>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "198.51.100.1/24 has host bits set; did you mean 198.51.100.0/24?"
        );
        let err = "2001:db8:1::1/48".parse::<Prefix>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "2001:db8:1::1/48 has host bits set; did you mean 2001:db8:1::/48?"
        );
    }

    #[test]
    fn bad_syntax_and_lengths() {
        for bad in [
            "",
            "/24",
            "198.51.100.0/",
            "198.51.100.0/+24",
            "198.51.100/24",
            "x/1",
            "198.51.100.0/24/1",
            "198.51.100.0/ 24",
            "198.51.100.0/1000",
        ] {
            assert!(
                matches!(bad.parse::<Prefix>(), Err(PrefixError::Syntax(_))),
                "{bad}"
            );
        }
        let err = "198.51.100.0/33".parse::<Prefix>().unwrap_err();
        assert!(err.to_string().contains("at most /32"), "{err}");
        let err = "2001:db8::/129".parse::<Prefix>().unwrap_err();
        assert!(err.to_string().contains("at most /128"), "{err}");
        assert!(Prefix::new(ip("10.0.0.0"), 33).is_err());
    }

    #[test]
    fn containment() {
        let p: Prefix = "198.51.100.0/24".parse().unwrap();
        assert!(p.contains(ip("198.51.100.0")));
        assert!(p.contains(ip("198.51.100.255")));
        assert!(!p.contains(ip("198.51.101.0")));
        assert!(!p.contains(ip("::ffff:198.51.100.1")));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert!(!all.contains(ip("::1")));
        let p6: Prefix = "2001:db8:1::/48".parse().unwrap();
        assert!(p6.contains(ip("2001:db8:1:ffff::1")));
        assert!(!p6.contains(ip("2001:db8:2::1")));
        assert!(!p6.contains(ip("198.51.100.1")));
        let host: Prefix = "2001:db8::1".parse().unwrap();
        assert!(host.contains(ip("2001:db8::1")));
        assert!(!host.contains(ip("2001:db8::2")));
        // A hand-built value with host bits still answers by its network.
        let loose = Prefix {
            addr: ip("10.1.2.3"),
            len: 8,
        };
        assert!(loose.contains(ip("10.200.0.1")));
    }
}
