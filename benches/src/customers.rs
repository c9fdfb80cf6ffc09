//! The benchmark customer table: customer `i` owns the IPv4 /28
//! `10.0.0.0 + 16·i` and the IPv6 /64 `2001:db8:hi:lo::` (hi:lo = i), so a
//! million customers exactly fill 10.0.0.0/8. One more customer, "acme",
//! owns 198.51.100.0/24 and 2001:db8:ffff:ffff::/64 and is blocked.
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use synwall_dataplane::CustomerId;

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
}
