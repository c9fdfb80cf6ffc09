//! Config text that the tests of every crate share (the config crate's,
//! the control plane's, the fuzz targets', the integration tests'): one
//! definition of a `[[customer]]` table and of the `[dpdk]` head of a
//! config that starts no EAL, so a test composes its config from them
//! instead of restating the TOML.
//!
//! Behind the `fixtures` feature: test and fuzz crates turn it on, a
//! release build of the appliance never does.

/// `[dpdk]` and one `[[link]]` on two `net_null` ports: the head of every
/// config of a test that starts no EAL.
pub const NET_NULL_HEAD: &str = r#"
[dpdk]
eal_args = ["--vdev=net_null0", "--vdev=net_null1"]
cores = [1]

[[link]]
inside = "net_null0"
outside = "net_null1"
"#;

/// One `[[customer]]` table: `name`, `prefixes`, then `keys` (TOML lines
/// such as `blocked = true` or `limits = { "5m" = 3 }`, or nothing).
pub fn customer(name: &str, prefixes: &[&str], keys: &str) -> String {
    let prefixes: Vec<String> = prefixes.iter().map(|p| format!("\"{p}\"")).collect();
    let mut t = format!(
        "\n[[customer]]\nname = \"{name}\"\nprefixes = [{}]\n",
        prefixes.join(", ")
    );
    if !keys.is_empty() {
        t.push_str(keys);
        t.push('\n');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_tables_are_toml() {
        let t = customer("gamma", &["10.20.0.0/16"], "blocked = true");
        assert_eq!(
            t,
            "\n[[customer]]\nname = \"gamma\"\nprefixes = [\"10.20.0.0/16\"]\nblocked = true\n"
        );
        let two = customer("a", &["10.0.0.0/8", "2001:db8::/32"], "");
        assert_eq!(
            two,
            "\n[[customer]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n"
        );
    }
}
