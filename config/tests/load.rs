//! Loading and validation through the public API.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use synwall_config::fixtures::customer;
use synwall_config::*;

const PATH: &str = "/etc/synwall/test.toml";

const BASE: &str = r#"
[dpdk]
eal_args = ["--no-huge", "--no-pci", "--vdev=net_pcap0,rx_pcap=in.pcap", "--vdev", "net_pcap1"]
cores = [1]

[[link]]
inside = "net_pcap0"
outside = "net_pcap1"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_str(text, Path::new(PATH))
}

fn ok(extra: &str) -> Config {
    let text = format!("{BASE}{extra}");
    load(&text).unwrap_or_else(|e| panic!("should load: {e}\n{text}"))
}

/// Loads `text`, expects a validation error naming the test file and `key`,
/// and containing `reason`; returns the message.
fn invalid_text(text: &str, key: &str, reason: &str) -> String {
    let err = load(text).expect_err("should fail");
    let msg = err.to_string();
    assert!(
        matches!(err, ConfigError::Invalid { .. }),
        "not a validation error: {msg}"
    );
    assert!(msg.starts_with(PATH), "file not named: {msg}");
    assert_eq!(err.key(), Some(key), "{msg}");
    assert!(msg.contains(key), "key not named: {msg}");
    assert!(msg.contains(reason), "expected {reason:?} in: {msg}");
    msg
}

fn invalid(extra: &str, key: &str, reason: &str) -> String {
    invalid_text(&format!("{BASE}{extra}"), key, reason)
}

fn syntax_error(text: &str, needle: &str) -> String {
    let err = load(text).expect_err("should fail");
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{msg}");
    assert!(msg.starts_with(PATH), "{msg}");
    assert!(msg.contains(needle), "expected {needle:?} in: {msg}");
    msg
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A fresh directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "synwall-config-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- defaults -------------------------------------------------------------

#[test]
fn minimal_config_gets_the_defaults() {
    let c = ok("");
    assert_eq!(c.path, Path::new(PATH));
    assert_eq!(c.customers_file, None);
    assert_eq!(c.dpdk.cores, vec![1]);
    assert_eq!(c.dpdk.eal_args[..2], ["--no-huge", "--no-pci"]);
    let link = &c.links[0];
    assert_eq!(
        (link.name.as_str(), link.queues, link.rx_desc, link.tx_desc),
        ("link0", 1, 1024, 1024)
    );
    assert_eq!(c.detect.ports, vec![25]);
    assert_eq!(c.detect.malformed, MalformedPolicy::Forward);
    assert_eq!(c.detect.near_limit, 0.8);
    let windows: Vec<_> = c
        .windows
        .iter()
        .map(|w| (w.name.as_str(), w.length.as_secs(), w.default_limit))
        .collect();
    assert_eq!(
        windows,
        vec![("5m", 300, 100), ("1h", 3600, 500), ("1d", 86_400, 2000)]
    );
    assert!(c.plans.is_empty());
    assert_eq!(c.block.action, BlockAction::Drop);
    assert_eq!(c.block.scope, BlockScope::Syn);
    assert_eq!(c.block.duration, Duration::from_secs(3600));
    assert_eq!(c.block.escalation, 2.0);
    assert_eq!(c.block.max_duration, Duration::from_secs(7 * 86_400));
    let ctl = &c.control;
    assert_eq!(ctl.socket, Path::new("/run/synwall/control.sock"));
    assert_eq!(ctl.socket_group, None);
    assert_eq!(ctl.socket_mode, 0o660);
    assert_eq!(ctl.state_dir, Path::new("/var/lib/synwall"));
    assert_eq!(ctl.events, Path::new("/var/log/synwall/events.jsonl"));
    assert_eq!(ctl.tick, Duration::from_millis(100));
    assert_eq!(ctl.snapshot_interval, Duration::from_secs(30));
    assert_eq!(ctl.mode, Mode::Enforce);
    assert_eq!(ctl.stats_interval, Some(Duration::from_secs(1)));
    assert_eq!(ctl.metrics_listen, None);
    assert_eq!(ctl.hook, None);
    assert!(c.customers.is_empty());
}

#[test]
fn design_example_loads() {
    let text = r#"
[dpdk]
eal_args = ["--no-huge", "-m", "512", "--no-pci",
            "--vdev=net_pcap0,rx_pcap=in.pcap,tx_pcap=back.pcap",
            "--vdev=net_pcap1,rx_pcap=none.pcap,tx_pcap=out.pcap"]
cores = [1]                      # worker lcores

[[link]]                         # one inline pair; several allowed
inside = "net_pcap0"             # customers' side: vdev name or PCI address
outside = "net_pcap1"            # upstream side
queues = 1                       # rx/tx queues per port = RSS spread

[detect]
ports = [25]                     # TCP destination ports watched

[windows]                        # trailing window = default limit (SYNs)
"5m" = 100
"1h" = 500
"1d" = 2000

[plans.mailserver]               # named limit sets customers can refer to
"5m" = 20000
"1d" = 500000

[block]
action = "drop"                  # drop | reset
scope = "syn"                    # syn | smtp
duration = "1h"                  # first block; repeat offenders escalate

[control]
socket = "/run/synwall/control.sock"
state_dir = "/var/lib/synwall"
events = "/var/log/synwall/events.jsonl"

[[customer]]
name = "acme"
prefixes = ["198.51.100.0/24", "2001:db8:1::/48"]
plan = "mailserver"              # optional
limits = { "5m" = 1000 }         # optional per-customer overrides
mode = "enforce"                 # enforce | monitor | exempt
blocked = false                  # start blocked (operator's standing block)
"#;
    let c = load(text).unwrap();
    let acme = &c.customers[0];
    assert_eq!(acme.id, 0);
    assert_eq!(acme.name, "acme");
    assert_eq!(acme.plan.as_deref(), Some("mailserver"));
    assert_eq!(acme.mode, Some(Mode::Enforce));
    assert!(!acme.blocked);
    assert_eq!(
        acme.prefixes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["198.51.100.0/24", "2001:db8:1::/48"]
    );
    // 5m: override; 1h: plan has none → default; 1d: plan.
    assert_eq!(c.effective_limits(acme), vec![1000, 500, 500_000]);
}

#[test]
fn every_key_can_be_set() {
    let c = ok(r#"
[detect]
ports = [25, 587, 465]
malformed = "drop"
near_limit = 1

[block]
action = "reset"
scope = "smtp"
duration = "30m"
escalation = 1
max_duration = "30m"

[control]
socket = "ctl.sock"
socket_group = "synwall"
socket_mode = "0640"
state_dir = "state"
events = "/tmp/events.jsonl"
tick = "10s"
snapshot_interval = "10s"
mode = "monitor"
stats_interval = 0
metrics_listen = "[::1]:9925"
hook = { command = ["/bin/true", "x"] }
"#);
    assert_eq!(c.detect.ports, vec![25, 587, 465]);
    assert_eq!(c.detect.malformed, MalformedPolicy::Drop);
    assert_eq!(c.detect.near_limit, 1.0);
    assert_eq!(c.block.action, BlockAction::Reset);
    assert_eq!(c.block.scope, BlockScope::Smtp);
    assert_eq!(c.block.duration, Duration::from_secs(1800));
    assert_eq!(c.block.max_duration, Duration::from_secs(1800));
    // Relative control paths are resolved against the config's directory.
    assert_eq!(c.control.socket, Path::new("/etc/synwall/ctl.sock"));
    assert_eq!(c.control.state_dir, Path::new("/etc/synwall/state"));
    assert_eq!(c.control.events, Path::new("/tmp/events.jsonl"));
    assert_eq!(c.control.socket_group.as_deref(), Some("synwall"));
    assert_eq!(c.control.socket_mode, 0o640);
    assert_eq!(c.control.tick, Duration::from_secs(10));
    assert_eq!(c.control.mode, Mode::Monitor);
    assert_eq!(c.control.stats_interval, None);
    assert_eq!(
        c.control.metrics_listen,
        Some("[::1]:9925".parse().unwrap())
    );
    let hook = c.control.hook.unwrap();
    assert_eq!(hook.command, vec!["/bin/true", "x"]);
    assert_eq!(hook.timeout, Duration::from_secs(5));
}

#[test]
fn socket_mode_forms() {
    let mode = |v: &str| {
        ok(&format!("[control]\nsocket_mode = {v}\n"))
            .control
            .socket_mode
    };
    assert_eq!(mode("0o600"), 0o600);
    assert_eq!(mode("384"), 0o600);
    assert_eq!(mode("\"0660\""), 0o660);
    assert_eq!(mode("\"660\""), 0o660);
    assert_eq!(mode("\"0o640\""), 0o640);
    invalid(
        "[control]\nsocket_mode = 660\n",
        "control.socket_mode",
        "write it in octal",
    );
    invalid(
        "[control]\nsocket_mode = \"0698\"\n",
        "control.socket_mode",
        "not a permission mode",
    );
    invalid(
        "[control]\nsocket_mode = -1\n",
        "control.socket_mode",
        "not a permission mode",
    );
}

#[test]
fn stats_interval_zero_is_off() {
    assert_eq!(
        ok("[control]\nstats_interval = \"0\"\n")
            .control
            .stats_interval,
        None
    );
    assert_eq!(
        ok("[control]\nstats_interval = \"0s\"\n")
            .control
            .stats_interval,
        None
    );
    assert_eq!(
        ok("[control]\nstats_interval = \"5s\"\n")
            .control
            .stats_interval,
        Some(Duration::from_secs(5))
    );
    invalid(
        "[control]\nstats_interval = \"50ms\"\n",
        "control.stats_interval",
        "shorter than control.tick",
    );
    syntax_error(
        &format!("{BASE}[control]\nstats_interval = 5\n"),
        "expected a duration string with a unit",
    );
}

// ---- windows and plans -------------------------------------------------------

#[test]
fn windows_are_sorted_by_length() {
    let c = ok("[windows]\n\"1d\" = 3\n\"10m\" = 1\n\"2h\" = 2\n\"7d\" = 4\n");
    let names: Vec<_> = c.windows.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, vec!["10m", "2h", "1d", "7d"]);
    assert_eq!(c.windows[3].length, Duration::from_secs(7 * 86_400));
    assert_eq!(c.window_index("2h"), Some(1));
    assert_eq!(c.window_index("120m"), Some(1));
    assert_eq!(c.window_index("3h"), None);
}

#[test]
fn window_errors() {
    invalid(
        "[windows]\n\"7x\" = 1\n",
        "windows.\"7x\"",
        "not a duration",
    );
    invalid("[windows]\n\"30s\" = 1\n", "windows.\"30s\"", "1m to 30d");
    invalid("[windows]\n\"31d\" = 1\n", "windows.\"31d\"", "1m to 30d");
    invalid("[windows]\n", "windows", "add at least one");
    invalid(
        "[windows]\n\"1h\" = 1\n\"60m\" = 2\n",
        "windows.\"60m\"",
        "as long as window \"1h\"",
    );
    invalid("[windows]\n\"1h\" = -1\n", "windows.\"1h\"", "negative");
    let nine: String = (1..=9).map(|h| format!("\"{h}h\" = 1\n")).collect();
    invalid(&format!("[windows]\n{nine}"), "windows", "at most 8");
    let eight: String = (1..=8).map(|h| format!("\"{h}h\" = 1\n")).collect();
    assert_eq!(ok(&format!("[windows]\n{eight}")).windows.len(), 8);
}

#[test]
fn plan_errors() {
    invalid(
        "[plans.big]\n\"7d\" = 1\n",
        "plans.big.\"7d\"",
        "not a window; use one of 5m, 1h, 1d",
    );
    invalid(
        "[plans.big]\n\"1h\" = 1\n\"60m\" = 2\n",
        "plans.big.\"60m\"",
        "same window",
    );
    invalid("[plans.big]\n\"1h\" = -5\n", "plans.big.\"1h\"", "negative");
    // A key of the same length as a window is accepted.
    let c = ok("[plans.big]\n\"60m\" = 7\n");
    assert_eq!(c.plans["big"].as_slice(), &[None, Some(7), None]);
}

// ---- effective limits and modes -----------------------------------------------

#[test]
fn effective_limits_resolution() {
    let c = ok(&[
        "[plans.mail]\n\"5m\" = 1000\n\"1h\" = 0\n\n[control]\nmode = \"monitor\"\n",
        &customer("default", &["10.0.0.0/24"], ""),
        &customer("planned", &["10.0.1.0/24"], "plan = \"mail\""),
        &customer(
            "override",
            &["10.0.2.0/24"],
            "plan = \"mail\"\nlimits = { \"5m\" = 7, \"1d\" = 0 }\nmode = \"exempt\"",
        ),
        &customer(
            "closed",
            &["10.0.3.0/24"],
            "limits = { \"5m\" = 0, \"1h\" = 0, \"1d\" = 0 }\nmode = \"enforce\"",
        ),
    ]
    .concat());
    let limits = |name: &str| c.effective_limits(c.customer(name).unwrap());
    assert_eq!(limits("default"), vec![100, 500, 2000]);
    assert_eq!(limits("planned"), vec![1000, 0, 2000]);
    assert_eq!(limits("override"), vec![7, 0, 0]);
    assert_eq!(limits("closed"), vec![0, 0, 0]);
    let over = c.customer("override").unwrap();
    assert_eq!(c.effective_limit(over, 0), 7);
    assert_eq!(over.overrides.get(0), Some(7));
    assert_eq!(over.overrides.get(1), None);
    assert_eq!(
        c.effective_mode(c.customer("default").unwrap()),
        Mode::Monitor
    );
    assert_eq!(c.effective_mode(over), Mode::Exempt);
    assert_eq!(
        c.effective_mode(c.customer("closed").unwrap()),
        Mode::Enforce
    );
    let ids: Vec<u32> = c.customers.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![0, 1, 2, 3]);
}

#[test]
fn global_mode_cannot_be_exempt() {
    invalid(
        "[control]\nmode = \"exempt\"\n",
        "control.mode",
        "cannot be the global mode",
    );
}

#[test]
fn enums_have_names() {
    assert_eq!(Mode::Monitor.as_str(), "monitor");
    assert_eq!("exempt".parse::<Mode>(), Ok(Mode::Exempt));
    assert!("Exempt".parse::<Mode>().is_err());
    assert_eq!(BlockAction::Reset.to_string(), "reset");
    assert_eq!(BlockScope::Smtp.as_str(), "smtp");
    assert_eq!(MalformedPolicy::Drop.as_str(), "drop");
    let err = "dorp".parse::<BlockAction>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown value \"dorp\"; expected one of: drop | reset"
    );
}

// ---- customers ------------------------------------------------------------------

#[test]
fn host_bits_error_names_key_line_and_fix() {
    let extra = format!(
        "{}{}",
        customer("a", &["10.0.0.0/8"], ""),
        customer("acme", &["2001:db8:1::/48", "198.51.100.1/24"], "")
    );
    let msg = invalid(
        &extra,
        "customer[1] (\"acme\").prefixes[1]",
        "198.51.100.1/24 has host bits set; did you mean 198.51.100.0/24?",
    );
    // BASE is 8 lines plus a blank one; acme's name is on line 15.
    assert!(msg.starts_with(&format!("{PATH}:15: ")), "{msg}");
    invalid(
        &customer("v6", &["2001:db8:1::1/48"], ""),
        "customer[0] (\"v6\").prefixes[0]",
        "did you mean 2001:db8:1::/48?",
    );
}

#[test]
fn prefix_errors() {
    invalid(
        &customer("a", &["198.51.100.0/33"], ""),
        "customer[0] (\"a\").prefixes[0]",
        "at most /32",
    );
    invalid(
        &customer("a", &["2001:db8::/129"], ""),
        "customer[0] (\"a\").prefixes[0]",
        "at most /128",
    );
    invalid(
        &customer("a", &["198.51.100/24"], ""),
        "customer[0] (\"a\").prefixes[0]",
        "not an IP prefix",
    );
    invalid(
        &customer("a", &[], ""),
        "customer[0] (\"a\").prefixes",
        "is empty",
    );
    invalid(
        &customer("a", &["10.0.0.1", "10.0.0.1/32"], ""),
        "customer[0] (\"a\").prefixes[1]",
        "listed twice",
    );
}

#[test]
fn a_prefix_owned_twice_names_both_customers() {
    let extra = format!(
        "{}{}",
        customer("acme", &["198.51.100.0/24"], ""),
        customer("beta", &["10.0.0.0/8", "198.51.100.0/24"], "")
    );
    invalid(
        &extra,
        "customer[1] (\"beta\").prefixes[1]",
        "198.51.100.0/24 is already owned by customer[0] (\"acme\")",
    );
    // Nested prefixes of different customers are fine: longest match decides.
    let extra = format!(
        "{}{}",
        customer("big", &["10.0.0.0/8"], ""),
        customer("small", &["10.1.0.0/16"], "")
    );
    assert_eq!(ok(&extra).customers.len(), 2);
}

#[test]
fn customer_name_errors() {
    let extra = format!(
        "{}{}",
        customer("acme", &["10.0.0.0/8"], ""),
        customer("acme", &["11.0.0.0/8"], "")
    );
    invalid(
        &extra,
        "customer[1] (\"acme\").name",
        "already the name of customer[0] (\"acme\")",
    );
    invalid(
        &customer("has space", &["10.0.0.0/8"], ""),
        "customer[0] (\"has space\").name",
        "not a valid name",
    );
    invalid(
        &customer("tab\\there", &["10.0.0.0/8"], ""),
        "customer[0] (\"tab\\there\").name",
        "not a valid name",
    );
    invalid(
        &customer("", &["10.0.0.0/8"], ""),
        "customer[0].name",
        "not a valid name",
    );
    let long = "x".repeat(65);
    invalid(
        &customer(&long, &["10.0.0.0/8"], ""),
        &format!("customer[0] (\"{long}\").name"),
        "1 to 64",
    );
    let fine = "A-z0.9_x@y:z+w";
    assert_eq!(
        ok(&customer(fine, &["10.0.0.0/8"], "")).customers[0].name,
        fine
    );
}

#[test]
fn customer_plan_and_limit_errors() {
    invalid(
        "[[customer]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\"]\nplan = \"gold\"\n",
        "customer[0] (\"a\").plan",
        "plan \"gold\" is not defined; add [plans.gold]",
    );
    invalid(
        "[[customer]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\"]\nlimits = { \"2h\" = 5 }\n",
        "customer[0] (\"a\").limits.\"2h\"",
        "not a window",
    );
    invalid(
        "[[customer]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\"]\nlimits = { \"1h\" = -1 }\n",
        "customer[0] (\"a\").limits.\"1h\"",
        "negative",
    );
}

#[test]
fn unknown_keys_and_bad_values_are_syntax_errors_with_lines() {
    let msg = syntax_error(&format!("{BASE}[detect]\nport = [25]\n"), "unknown field");
    assert!(msg.contains("line 10"), "{msg}");
    syntax_error(
        &format!("{BASE}[[customer]]\nname = \"a\"\nprefixes = []\nplna = \"x\"\n"),
        "unknown field `plna`",
    );
    syntax_error(&format!("{BASE}bogus = 1\n"), "unknown field");
    syntax_error(
        &format!("{BASE}[block]\naction = \"dorp\"\n"),
        "unknown variant",
    );
    syntax_error(
        &format!("{BASE}[detect]\nmalformed = \"eat\"\n"),
        "unknown variant",
    );
    let msg = syntax_error("[dpdk\ncores = [1]\n", "line 1");
    assert!(msg.contains("column"), "{msg}");
}

// ---- dpdk, links, detect, block, control ----------------------------------------------

const LINK: &str = "[[link]]\ninside = \"a\"\noutside = \"b\"\n";

#[test]
fn dpdk_errors() {
    invalid_text(LINK, "dpdk", "missing");
    invalid_text(
        &format!("[dpdk]\ncores = []\n{LINK}"),
        "dpdk.cores",
        "no worker lcores",
    );
    invalid_text(
        &format!("[dpdk]\ncores = [1, 2, 1]\n{LINK}"),
        "dpdk.cores[2]",
        "lcore 1 is listed twice",
    );
    invalid_text(
        &format!("[dpdk]\ncores = [0, 1]\n{LINK}"),
        "dpdk.cores[0]",
        "lcore 0 is the EAL main lcore",
    );
    invalid_text(
        &format!("[dpdk]\ncores = [-3]\n{LINK}"),
        "dpdk.cores[0]",
        "not an lcore id",
    );
    invalid_text(
        &format!("[dpdk]\neal_args = [\"--no-pci\", \"\"]\ncores = [1]\n{LINK}"),
        "dpdk.eal_args[1]",
        "is empty",
    );
    // "--log-level" is not "-l".
    load(&format!(
        "[dpdk]\neal_args = [\"--log-level=8\"]\ncores = [1]\n{LINK}"
    ))
    .unwrap();
}

/// A config with these `eal_args` (TOML array items) and worker `cores`.
fn with_lcores(args: &str, cores: &str) -> String {
    format!("[dpdk]\neal_args = [{args}]\ncores = [{cores}]\n{LINK}")
}

#[test]
fn lcore_options_that_agree_with_the_cores_are_accepted() {
    use synwall_config::LcoreChoice;
    // (eal_args, cores, main lcore, who chose the lcores)
    let cases = [
        (r#""-l", "0-3""#, "1, 2, 3", 0, LcoreChoice::List),
        (r#""-l0-3""#, "3, 1", 0, LcoreChoice::List),
        (r#""-l", "0,2-4""#, "2, 4", 0, LcoreChoice::List),
        (r#""-c", "0xf""#, "1, 2", 0, LcoreChoice::List),
        (r#""-c0x6""#, "2", 1, LcoreChoice::List),
        (r#""-c", "f""#, "3", 0, LcoreChoice::List),
        (r#""-l", "1-3""#, "2, 3", 1, LcoreChoice::List),
        (
            r#""-l", "0-3", "--main-lcore", "3""#,
            "0, 1",
            3,
            LcoreChoice::List,
        ),
        (r#""-l0-1", "--main-lcore=1""#, "0", 1, LcoreChoice::List),
        (r#""--main-lcore", "2""#, "0, 1", 2, LcoreChoice::Synwall),
        (r#""--lcores=0@0,1@1,2@1""#, "1, 2", 0, LcoreChoice::Mapped),
        (r#""--lcores", "(0-2)@0""#, "1, 2", 0, LcoreChoice::Mapped),
        (r#""--no-pci""#, "1", 0, LcoreChoice::Synwall),
    ];
    for (args, cores, main, choice) in cases {
        let c = load(&with_lcores(args, cores))
            .unwrap_or_else(|e| panic!("eal_args [{args}], cores [{cores}]: {e}"));
        assert_eq!(c.dpdk.main_lcore, main, "eal_args [{args}]");
        assert_eq!(c.dpdk.lcores, choice, "eal_args [{args}]");
    }
}

#[test]
fn lcore_options_that_disagree_with_the_cores_are_refused() {
    // (eal_args, cores, key, reason)
    let cases = [
        (
            r#""-l", "0-3""#,
            "1, 4",
            "dpdk.cores[1]",
            "worker lcore 4 is not in the EAL lcore list -l 0-3 (dpdk.eal_args[0])",
        ),
        (
            r#""-l", "0-3""#,
            "0, 1",
            "dpdk.cores[0]",
            "lcore 0 is the EAL main lcore (the lowest lcore of -l 0-3 in dpdk.eal_args[0])",
        ),
        (
            r#""-l", "1-3""#,
            "1, 2",
            "dpdk.cores[0]",
            "lcore 1 is the EAL main lcore (the lowest lcore of -l 1-3",
        ),
        (
            r#""-c", "0x6""#,
            "2, 3",
            "dpdk.cores[1]",
            "worker lcore 3 is not in the EAL lcore list -c 0x6",
        ),
        (
            r#""-l", "0-3", "--main-lcore", "2""#,
            "1, 2",
            "dpdk.cores[1]",
            "lcore 2 is the EAL main lcore (set by --main-lcore in dpdk.eal_args[2])",
        ),
        (
            r#""--main-lcore=1""#,
            "1",
            "dpdk.cores[0]",
            "lcore 1 is the EAL main lcore (set by --main-lcore",
        ),
        (
            r#""-l", "0-1", "--main-lcore", "5""#,
            "1",
            "dpdk.eal_args[2]",
            "--main-lcore 5 is not in the lcore list -l 0-1",
        ),
        (
            r#""--lcores=0@0,1@0""#,
            "1, 2",
            "dpdk.cores[1]",
            "worker lcore 2 is not in the EAL lcore list --lcores 0@0,1@0",
        ),
        (
            r#""-l", "0-1", "-c", "0x3""#,
            "1",
            "dpdk.eal_args[2]",
            "give the lcores once",
        ),
        (
            r#""-l", "0-1", "--lcores=0@0,1@0""#,
            "1",
            "dpdk.eal_args[2]",
            "give the lcores once",
        ),
        (
            r#""--no-pci", "-l""#,
            "1",
            "dpdk.eal_args[1]",
            "-l needs a value",
        ),
        (r#""-l", "3-1""#, "1", "dpdk.eal_args[0]", "runs backwards"),
        (
            r#""-l", "0,x""#,
            "1",
            "dpdk.eal_args[0]",
            "\"x\" is not an lcore id",
        ),
        (r#""-l", "0-500""#, "1", "dpdk.eal_args[0]", "out of range"),
        (
            r#""-c", "0xz""#,
            "1",
            "dpdk.eal_args[0]",
            "not a hexadecimal digit",
        ),
        (r#""-c", "0""#, "1", "dpdk.eal_args[0]", "enables no lcore"),
        (
            r#""--main-lcore", "1", "--main-lcore=2""#,
            "3",
            "dpdk.eal_args[2]",
            "given twice",
        ),
        (
            r#""--master-lcore=0""#,
            "1",
            "dpdk.eal_args[0]",
            "write --main-lcore",
        ),
    ];
    for (args, cores, key, reason) in cases {
        invalid_text(&with_lcores(args, cores), key, reason);
    }
}

#[test]
fn mbufs_is_optional_and_bounded() {
    let c = load(&format!("[dpdk]\ncores = [1]\n{LINK}")).unwrap();
    assert_eq!(c.dpdk.mbufs, None);
    let c = load(&format!("[dpdk]\ncores = [1]\nmbufs = 65535\n{LINK}")).unwrap();
    assert_eq!(c.dpdk.mbufs, Some(65535));
    for bad in ["0", "-1", "67108865", "99999999999"] {
        invalid_text(
            &format!("[dpdk]\ncores = [1]\nmbufs = {bad}\n{LINK}"),
            "dpdk.mbufs",
            "out of range",
        );
    }
}

const DPDK: &str = "[dpdk]\ncores = [1]\neal_args = [\"--vdev=net_pcap0\"]\n";

#[test]
fn link_errors() {
    invalid_text(DPDK, "link", "no links");
    invalid_text(
        &format!("{DPDK}[[link]]\ninside = \"net_pcap0\"\noutside = \"net_pcap9\"\n"),
        "link[0].outside",
        "no --vdev=net_pcap9",
    );
    invalid_text(
        &format!("{DPDK}[[link]]\ninside = \"net_pcap0\"\noutside = \"net_pcap0\"\n"),
        "link[0].outside",
        "already used as link[0].inside",
    );
    invalid_text(
        &format!("{DPDK}{LINK}[[link]]\ninside = \"c\"\noutside = \"a\"\n"),
        "link[1].outside",
        "port \"a\" is already used as link[0].inside",
    );
    invalid_text(
        &format!("{DPDK}[[link]]\ninside = \"0000:3b:00.0\"\noutside = \"3B:00.0\"\n"),
        "link[0].outside",
        "already used",
    );
    for q in ["0", "65", "-1"] {
        invalid_text(
            &format!("{DPDK}{LINK}queues = {q}\n"),
            "link[0].queues",
            "use 1 to 64",
        );
    }
    assert_eq!(
        load(&format!("{DPDK}{LINK}queues = 64\n")).unwrap().links[0].queues,
        64
    );
    invalid_text(
        &format!("{DPDK}{LINK}rx_desc = 0\n"),
        "link[0].rx_desc",
        "out of range",
    );
    invalid_text(
        &format!("{DPDK}{LINK}tx_desc = 70000\n"),
        "link[0].tx_desc",
        "out of range",
    );
    invalid_text(
        &format!("{DPDK}[[link]]\ninside = \"net_pcap0,rx_pcap=x\"\noutside = \"b\"\n"),
        "link[0].inside",
        "--vdev=NAME,ARGS",
    );
    invalid_text(
        &format!("{DPDK}[[link]]\ninside = \"\"\noutside = \"b\"\n"),
        "link[0].inside",
        "is empty",
    );
    invalid_text(
        &format!(
            "{DPDK}{LINK}name = \"x\"\n[[link]]\nname = \"x\"\ninside = \"c\"\noutside = \"d\"\n"
        ),
        "link[1].name",
        "also the name of link[0]",
    );
    let c = load(&format!(
        "{DPDK}{LINK}[[link]]\nname = \"edge\"\ninside = \"c\"\noutside = \"d\"\nqueues = 4\nrx_desc = 4096\n"
    ))
    .unwrap();
    assert_eq!(c.links[1].name, "edge");
    assert_eq!(
        (c.links[1].queues, c.links[1].rx_desc, c.links[1].tx_desc),
        (4, 4096, 1024)
    );
}

#[test]
fn detect_errors() {
    invalid("[detect]\nports = []\n", "detect.ports", "is empty");
    invalid(
        "[detect]\nports = [0]\n",
        "detect.ports[0]",
        "use 1 to 65535",
    );
    invalid(
        "[detect]\nports = [25, 70000]\n",
        "detect.ports[1]",
        "use 1 to 65535",
    );
    invalid(
        "[detect]\nports = [25, 587, 25]\n",
        "detect.ports[2]",
        "listed twice",
    );
    invalid(
        "[detect]\nnear_limit = 0\n",
        "detect.near_limit",
        "out of range",
    );
    invalid(
        "[detect]\nnear_limit = 1.5\n",
        "detect.near_limit",
        "out of range",
    );
    invalid(
        "[detect]\nnear_limit = nan\n",
        "detect.near_limit",
        "out of range",
    );
}

#[test]
fn exempt_destinations_load_and_errors() {
    let c = ok("[detect]\nexempt_destinations = [\"192.0.2.0/24\", \"2001:db8:25::/48\"]\n");
    assert_eq!(
        c.detect.exempt_destinations,
        vec![
            "192.0.2.0/24".parse::<Prefix>().unwrap(),
            "2001:db8:25::/48".parse().unwrap()
        ]
    );
    assert!(ok("").detect.exempt_destinations.is_empty());
    invalid(
        "[detect]\nexempt_destinations = [\"192.0.2.0/24\", \"relay\"]\n",
        "detect.exempt_destinations[1]",
        "is not an IP prefix",
    );
    invalid(
        "[detect]\nexempt_destinations = [\"192.0.2.1/24\"]\n",
        "detect.exempt_destinations[0]",
        "192.0.2.0/24",
    );
    invalid(
        "[detect]\nexempt_destinations = [\"192.0.2.0/24\", \"192.0.2.0/24\"]\n",
        "detect.exempt_destinations[1]",
        "listed twice",
    );
    let many: Vec<String> = (0..=MAX_EXEMPT_DESTINATIONS)
        .map(|i| format!("\"10.{i}.0.0/16\""))
        .collect();
    invalid(
        &format!("[detect]\nexempt_destinations = [{}]\n", many.join(", ")),
        "detect.exempt_destinations",
        "at most 64",
    );
}

#[test]
fn block_errors() {
    invalid(
        "[block]\nduration = \"1x\"\n",
        "block.duration",
        "not a duration",
    );
    invalid(
        "[block]\nduration = \"0s\"\n",
        "block.duration",
        "at least 1s",
    );
    invalid(
        "[block]\nescalation = 0.5\n",
        "block.escalation",
        "at least 1.0",
    );
    invalid(
        "[block]\nescalation = inf\n",
        "block.escalation",
        "at least 1.0",
    );
    invalid(
        "[block]\nduration = \"2h\"\nmax_duration = \"1h\"\n",
        "block.max_duration",
        "shorter than block.duration (2h)",
    );
    // A long first block raises the default ceiling with it.
    let c = ok("[block]\nduration = \"14d\"\n");
    assert_eq!(c.block.max_duration, Duration::from_secs(14 * 86_400));
}

#[test]
fn control_errors() {
    invalid(
        "[control]\ntick = \"5ms\"\n",
        "control.tick",
        "between 10ms and 10s",
    );
    invalid(
        "[control]\ntick = \"11s\"\n",
        "control.tick",
        "between 10ms and 10s",
    );
    invalid(
        "[control]\ntick = \"fast\"\n",
        "control.tick",
        "not a duration",
    );
    invalid(
        "[control]\ntick = \"1s\"\nsnapshot_interval = \"500ms\"\n",
        "control.snapshot_interval",
        "out of range",
    );
    invalid(
        "[control]\nmetrics_listen = \"localhost\"\n",
        "control.metrics_listen",
        "127.0.0.1:9925",
    );
    invalid(
        "[control]\nhook = { command = [] }\n",
        "control.hook.command",
        "is empty",
    );
    invalid(
        "[control]\nhook = { command = [\"/x\"], timeout = \"2h\" }\n",
        "control.hook.timeout",
        "out of range",
    );
    invalid("[control]\nsocket = \"\"\n", "control.socket", "is empty");
    invalid(
        "[control]\nsocket_group = \"a b\"\n",
        "control.socket_group",
        "not a group name",
    );
}

// ---- files ----------------------------------------------------------------------------

#[test]
fn text_alone_reads_no_customers_file_and_load_text_reads_it() {
    let dir = temp_dir("text");
    std::fs::write(
        dir.join("customers.toml"),
        "[[customer]]\nname = \"second\"\nprefixes = [\"2001:db8:2::/48\"]\n",
    )
    .unwrap();
    let main = dir.join("synwall.toml");
    let text = format!(
        "customers_file = \"customers.toml\"\n{BASE}{}",
        customer("first", &["198.51.100.0/24"], "")
    );
    // The file exists, and from_str still does not read it.
    match Config::from_str(&text, &main) {
        Err(ConfigError::Invalid { key, reason, .. }) => {
            assert_eq!(key, "customers_file");
            assert!(reason.contains("customers.toml"), "{reason}");
        }
        other => panic!("from_str read the customers file: {other:?}"),
    }
    let c = Config::load_text(&text, &main).unwrap();
    assert_eq!(c.customers_file, Some(dir.join("customers.toml")));
    let names: Vec<_> = c.customers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["first", "second"]);
    // Without a customers_file the two agree.
    let plain = format!("{BASE}{}", customer("first", &["198.51.100.0/24"], ""));
    assert_eq!(
        Config::from_str(&plain, &main).unwrap(),
        Config::load_text(&plain, &main).unwrap()
    );
}

#[test]
fn customers_file_is_resolved_relative_to_the_config() {
    let dir = temp_dir("rel");
    std::fs::create_dir_all(dir.join("lists")).unwrap();
    std::fs::write(
        dir.join("lists/customers.toml"),
        "[[customer]]\nname = \"second\"\nprefixes = [\"2001:db8:2::/48\"]\n\
         [[customer]]\nname = \"third\"\nprefixes = [\"192.0.2.1\"]\nblocked = true\n",
    )
    .unwrap();
    let main = dir.join("synwall.toml");
    std::fs::write(
        &main,
        format!(
            "customers_file = \"lists/customers.toml\"\n{BASE}{}",
            customer("first", &["198.51.100.0/24"], "")
        ),
    )
    .unwrap();
    let c = Config::load(&main).unwrap();
    assert_eq!(c.path, main);
    assert_eq!(c.customers_file, Some(dir.join("lists/customers.toml")));
    let names: Vec<_> = c
        .customers
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    assert_eq!(names, vec![(0, "first"), (1, "second"), (2, "third")]);
    assert!(c.customers[2].blocked);
    assert!(c.customers[2].prefixes[0].contains(ip("192.0.2.1")));

    // An error in the customers file names that file, and the other file for clashes.
    std::fs::write(
        dir.join("lists/customers.toml"),
        "[[customer]]\nname = \"other\"\nprefixes = [\"10.0.0.0/8\"]\n\n\
         [[customer]]\nname = \"first\"\nprefixes = [\"11.0.0.0/8\"]\n",
    )
    .unwrap();
    let msg = Config::load(&main).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:6: customer[1] (\"first\").name",
            dir.join("lists/customers.toml").display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("customer[0] (\"first\") in {}", main.display())),
        "{msg}"
    );

    // Unknown keys are rejected there too.
    std::fs::write(dir.join("lists/customers.toml"), "[windows]\n\"1h\" = 1\n").unwrap();
    let err = Config::load(&main).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert_eq!(err.path(), dir.join("lists/customers.toml"));

    // A missing customers file names the file and the key that points at it.
    std::fs::remove_file(dir.join("lists/customers.toml")).unwrap();
    let msg = Config::load(&main).unwrap_err().to_string();
    assert!(msg.contains("lists/customers.toml: cannot read"), "{msg}");
    assert!(
        msg.contains("customers_file = \"lists/customers.toml\""),
        "{msg}"
    );

    // A directory is not a customers file.
    std::fs::create_dir_all(dir.join("lists/customers.toml")).unwrap();
    let msg = Config::load(&main).unwrap_err().to_string();
    assert!(msg.contains("not a regular file"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Loads a config whose customers file holds `list` (the main file has
/// customer "main" with 192.0.2.0/24); the error's text, or the customers.
fn with_customers_file(list: &str) -> Result<Vec<Customer>, String> {
    let dir = temp_dir("list");
    std::fs::write(dir.join("customers.toml"), list).unwrap();
    let main = dir.join("synwall.toml");
    std::fs::write(
        &main,
        format!(
            "customers_file = \"customers.toml\"\n{BASE}[plans.gold]\n\"5m\" = 9\n{}",
            customer("main", &["192.0.2.0/24"], "")
        ),
    )
    .unwrap();
    let got = Config::load(&main);
    std::fs::remove_dir_all(&dir).unwrap();
    got.map(|c| c.customers.to_vec())
        .map_err(|e| e.to_string().replace(&dir.display().to_string(), "DIR"))
}

/// `list` as the lean reader would not take it (the first entry's name
/// under a quoted key, which is the same TOML): toml reads it instead.
fn beyond_the_lean_subset(list: &str) -> String {
    let forced = list.replacen("name = ", "\"name\" = ", 1);
    assert_ne!(forced, list);
    forced
}

#[test]
fn customers_file_errors_are_the_first_in_file_order() {
    let c = |name: &str, prefixes: &[&str], keys: &str| customer(name, prefixes, keys);
    for (list, expected) in [
        // A bad plan before a prefix taken from an earlier customer.
        (
            [
                c("a", &["10.0.0.0/24"], ""),
                c("b", &["10.0.1.0/24"], "plan = \"silver\""),
                c("c", &["10.0.0.0/24"], ""),
            ]
            .concat(),
            "DIR/customers.toml:7: customer[1] (\"b\").plan: plan \"silver\" is not defined",
        ),
        // A prefix taken before a bad one of the same customer.
        (
            [
                c("a", &["10.0.0.0/24"], ""),
                c("b", &["10.0.0.0/24", "10.0.0.300/32"], ""),
            ]
            .concat(),
            "DIR/customers.toml:7: customer[1] (\"b\").prefixes[0]: 10.0.0.0/24 is already owned by customer[0] (\"a\")",
        ),
        // A bad prefix before a taken one of the same customer.
        (
            [
                c("a", &["10.0.0.0/24"], ""),
                c("b", &["10.0.0.300/32", "10.0.0.0/24"], ""),
            ]
            .concat(),
            "DIR/customers.toml:7: customer[1] (\"b\").prefixes[0]: \"10.0.0.300/32\" is not an IP prefix",
        ),
        // A taken name before a prefix of the main file's customer.
        (
            [
                c("a", &["10.0.0.0/24"], ""),
                c("a", &["192.0.2.0/24"], ""),
            ]
            .concat(),
            "DIR/customers.toml:7: customer[1] (\"a\").name: \"a\" is already the name of customer[0] (\"a\")",
        ),
        // A prefix of the main file's customer, an IPv6 one twice.
        (
            [
                c("a", &["2001:db8::/48", "192.0.2.0/24"], ""),
                c("b", &["2001:db8::/48"], ""),
            ]
            .concat(),
            "DIR/customers.toml:3: customer[0] (\"a\").prefixes[1]: 192.0.2.0/24 is already owned by customer[0] (\"main\") in DIR/synwall.toml",
        ),
        (
            [
                c("a", &["2001:db8::/48"], ""),
                c("b", &["2001:db8::/48"], "limits = { \"7m\" = 1 }"),
            ]
            .concat(),
            "DIR/customers.toml:7: customer[1] (\"b\").prefixes[0]: 2001:db8::/48 is already owned by customer[0] (\"a\")",
        ),
        // The same prefix twice in one customer, then a bad limit.
        (
            c("a", &["10.0.0.1", "10.0.0.1/32"], "limits = { \"7m\" = 1 }"),
            "DIR/customers.toml:3: customer[0] (\"a\").prefixes[1]: 10.0.0.1/32 is listed twice for this customer",
        ),
        (
            c("main", &["10.0.0.1"], ""),
            "DIR/customers.toml:3: customer[0] (\"main\").name: \"main\" is already the name of customer[0] (\"main\") in DIR/synwall.toml",
        ),
    ] {
        let lean = with_customers_file(&list).expect_err(&list);
        assert!(lean.starts_with(expected), "{lean}\nexpected: {expected}\n{list}");
        let toml = with_customers_file(&beyond_the_lean_subset(&list)).expect_err(&list);
        assert_eq!(lean, toml, "{list}");
    }
}

#[test]
fn the_lean_reader_and_toml_read_customers_files_alike() {
    let list = [
        "# from provisioning\n",
        &customer("a", &["10.0.0.0/29", "2001:db8::/64"], "plan = 'gold'\nmode = \"monitor\""),
        &customer("b", &["10.0.0.8"], "limits = { \"5m\" = 0, 1h = 7 }  # closed\nblocked = true"),
        "[[customer]]\nname = \"c\"\nprefixes = [\n  \"10.0.1.0/24\",  # office\n  \"2001:db8:1::/48\",\n]\r\nmode = 'exempt'\n",
    ]
    .concat();
    let lean = with_customers_file(&list).unwrap();
    let toml = with_customers_file(&beyond_the_lean_subset(&list)).unwrap();
    assert_eq!(lean, toml);
    assert_eq!(lean.len(), 4);
    assert_eq!(lean[1].plan.as_deref(), Some("gold"));
    assert_eq!(lean[2].overrides.get(0), Some(0));
    assert_eq!(lean[2].overrides.get(1), Some(7));
    assert!(lean[2].blocked);
    assert_eq!(lean[3].prefixes.len(), 2);
    assert_eq!(lean[3].mode, Some(Mode::Exempt));
    // What toml refuses is refused with toml's words.
    let msg = with_customers_file(&format!("{list}name = \"d\"\n")).unwrap_err();
    assert!(
        msg.contains("duplicate key") || msg.contains("name"),
        "{msg}"
    );
    let msg = with_customers_file(&list.replace("1h = 7", "1h = 7_")).unwrap_err();
    assert!(
        msg.starts_with("DIR/customers.toml: TOML parse error at line"),
        "{msg}"
    );
}

#[test]
fn missing_config_file() {
    let path = temp_dir("missing").join("nope.toml");
    let err = Config::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().starts_with(&path.display().to_string()));
}

#[test]
fn examples_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let demo = Config::load(&dir.join("demo.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(demo.links[0].inside, "net_pcap0");
    assert!(demo.dpdk.eal_args.iter().any(|a| a == "--no-huge"));
    assert!(demo.customers.iter().any(|c| c.name == "hammer"));

    let prod = Config::load(&dir.join("production.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(prod.dpdk.cores.len(), 4);
    assert_eq!(prod.links[0].queues, 4);
    assert_eq!(
        prod.customers_file,
        Some(dir.join("customers.example.toml"))
    );
    // The config file's own customer first, then the customers file's.
    assert_eq!(prod.customers[0].name, "noc");
    assert!(prod.customers.len() > 3);
    let nomail = prod.customer("vps+1138").unwrap();
    assert!(prod.effective_limits(nomail).iter().all(|&l| l == 0));
}

// ---- scale ----------------------------------------------------------------------------

fn many_customers(n: u32) -> String {
    let mut text = String::with_capacity(n as usize * 64);
    for i in 0..n {
        let [_, a, b, c] = i.to_be_bytes();
        text.push_str(&format!(
            "[[customer]]\nname = \"c{i}\"\nprefixes = [\"10.{a}.{b}.{c}\"]\n"
        ));
    }
    text
}

fn load_many(n: u32) -> Duration {
    let dir = temp_dir("many");
    std::fs::write(dir.join("customers.toml"), many_customers(n)).unwrap();
    let main = dir.join("synwall.toml");
    std::fs::write(
        &main,
        format!("customers_file = \"customers.toml\"\n{BASE}"),
    )
    .unwrap();
    let start = Instant::now();
    let c = Config::load(&main).unwrap();
    let took = start.elapsed();
    assert_eq!(c.customers.len(), n as usize);
    assert_eq!(c.customers[n as usize - 1].id, n - 1);
    std::fs::remove_dir_all(&dir).unwrap();
    took
}

#[test]
fn loads_100k_customers() {
    let took = load_many(100_000);
    // Generous for debug builds on a busy machine; quadratic checks would take minutes.
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
#[ignore = "slow in debug builds; run with --release -- --ignored"]
fn loads_1m_customers() {
    let took = load_many(1_000_000);
    eprintln!("1M customers loaded in {took:?}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

// ---- robustness -------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in ".*") {
        let _ = load(&text);
    }

    #[test]
    fn mutated_configs_never_panic(
        cut in 0usize..400,
        insert in "[\\[\\]\"=,.a-z0-9/:\n -]{0,12}",
    ) {
        let full = format!("{BASE}[windows]\n\"5m\" = 1\n{}", customer("a", &["10.0.0.0/8"], ""));
        let mut at = cut.min(full.len());
        while !full.is_char_boundary(at) {
            at -= 1;
        }
        let text = format!("{}{insert}{}", &full[..at], &full[at..]);
        let _ = load(&text);
    }
}

#[test]
fn a_standing_block_needs_enforce_mode() {
    for (customer_mode, global) in [
        ("mode = \"monitor\"\n", ""),
        ("mode = \"exempt\"\n", ""),
        ("", "[control]\nmode = \"monitor\"\n"),
    ] {
        invalid_text(
            &format!("{BASE}{global}[[customer]]\nname = \"acme\"\nprefixes = [\"198.51.100.0/24\"]\nblocked = true\n{customer_mode}"),
            "customer \"acme\".blocked",
            "would never drop anything",
        );
    }
}

const FLEET: &str = r#"
[fleet]
name = "edge-a"
redis = ["redis://127.0.0.1:6379"]
appliances = 2
floor = 0.2
"#;

#[test]
fn no_fleet_table_is_no_fleet() {
    assert_eq!(ok("").fleet, None);
}

#[test]
fn fleet_loads_with_defaults() {
    let f = ok(FLEET).fleet.expect("fleet");
    assert_eq!(f.name, "edge-a");
    assert_eq!(f.redis, ["redis://127.0.0.1:6379"]);
    assert_eq!((f.appliances, f.floor), (2, 0.2));
    assert_eq!(f.lease_ttl, DEFAULT_LEASE_TTL);
    assert_eq!(f.lease_margin, DEFAULT_LEASE_MARGIN);
    assert_eq!(f.timeout, DEFAULT_FLEET_TIMEOUT);
    assert_eq!(f.lease_demand, DEFAULT_LEASE_DEMAND);
    let cluster = ok(&FLEET.replace(
        r#"redis = ["redis://127.0.0.1:6379"]"#,
        "redis = [\"redis://127.0.0.1:7000\", \"redis://10.0.0.2:7001/0\"]\nlease_ttl = \"3s\"\ntimeout = \"200ms\"",
    ))
    .fleet
    .unwrap();
    assert_eq!(cluster.redis.len(), 2);
    assert_eq!(cluster.lease_ttl, Duration::from_secs(3));
}

#[test]
fn fleet_floors_add_up_to_at_most_the_floor_share() {
    let f = ok(FLEET).fleet.unwrap();
    // 0.2 × 100 / 2 = 10 each; Redis leases the other 80.
    assert_eq!((f.floor_of(100), f.leased_of(100)), (10, 80));
    // Rounded down: 0.2 × 7 / 2 = 0.7 → 0; everything leased.
    assert_eq!((f.floor_of(7), f.leased_of(7)), (0, 7));
    for limit in [0u64, 1, 3, 99, 1000, u64::MAX / 4] {
        for appliances in [1u32, 2, 3, 7] {
            for floor in [0.0, 0.1, 0.5, 0.999] {
                let g = Fleet {
                    appliances,
                    floor,
                    ..f.clone()
                };
                let spent_locally = g.floor_of(limit) * u64::from(appliances);
                assert!(spent_locally <= limit, "{limit} {appliances} {floor}");
                assert_eq!(spent_locally + g.leased_of(limit), limit);
            }
        }
    }
}

#[test]
fn fleet_errors() {
    let without = |key: &str| {
        FLEET
            .lines()
            .filter(|l| !l.starts_with(key))
            .collect::<Vec<_>>()
            .join("\n")
    };
    invalid(&without("name"), "fleet.name", "is missing");
    invalid(&without("redis"), "fleet.redis", "is missing");
    invalid(&without("appliances"), "fleet.appliances", "is missing");
    invalid(&without("floor"), "fleet.floor", "is missing");
    invalid(
        &FLEET.replace("edge-a", "edge a"),
        "fleet.name",
        "not a valid name",
    );
    invalid(
        &FLEET.replace(r#"["redis://127.0.0.1:6379"]"#, "[]"),
        "fleet.redis",
        "is empty",
    );
    invalid(
        &FLEET.replace("redis://127.0.0.1:6379", "http://127.0.0.1:6379"),
        "fleet.redis[0]",
        "not a redis:// URL",
    );
    invalid(
        &FLEET.replace("redis://127.0.0.1:6379", "redis://127.0.0.1"),
        "fleet.redis[0]",
        "needs a host and a port",
    );
    invalid(
        &FLEET.replace(
            r#"["redis://127.0.0.1:6379"]"#,
            r#"["redis://127.0.0.1:6379", "redis://127.0.0.1:6379"]"#,
        ),
        "fleet.redis[1]",
        "listed twice",
    );
    invalid(
        &FLEET.replace("appliances = 2", "appliances = 0"),
        "fleet.appliances",
        "out of range",
    );
    invalid(
        &FLEET.replace("floor = 0.2", "floor = 1.0"),
        "fleet.floor",
        "out of range",
    );
    invalid(
        &FLEET.replace("floor = 0.2", "floor = -0.1"),
        "fleet.floor",
        "out of range",
    );
    invalid(
        &format!("{FLEET}lease_ttl = \"1s\"\n"),
        "fleet.lease_ttl",
        "too short",
    );
    invalid(
        &format!("{FLEET}lease_ttl = \"banana\"\n"),
        "fleet.lease_ttl",
        "",
    );
    syntax_error(&format!("{BASE}{FLEET}colour = 1\n"), "colour");
}

#[test]
fn flowspec_names_the_gobgpd_api_and_refuses_bad_values() {
    assert_eq!(ok("").flowspec, None);
    let c = ok("[flowspec]\ngobgp = \"127.0.0.1:50051\"\n");
    let f = c.flowspec.expect("flowspec");
    assert_eq!(f.gobgp, "127.0.0.1:50051".parse().unwrap());
    assert_eq!(f.gobgp_command, PathBuf::from("gobgp"));
    assert_eq!(f.community, (64512, 2525));
    let c = ok("[flowspec]\ngobgp = \"[::1]:50052\"\ncommunity = \"65010:25\"\ngobgp_command = \"/opt/gobgp\"\n");
    let f = c.flowspec.expect("flowspec");
    assert_eq!(f.community, (65010, 25));
    assert_eq!(f.gobgp_command, PathBuf::from("/opt/gobgp"));
    invalid("[flowspec]\n", "flowspec.gobgp", "is missing");
    invalid(
        "[flowspec]\ngobgp = \"localhost\"\n",
        "flowspec.gobgp",
        "is not IP:PORT",
    );
    invalid(
        "[flowspec]\ngobgp = \"127.0.0.1:50051\"\ncommunity = \"65535:666\"\n",
        "flowspec.community",
        "BLACKHOLE",
    );
    invalid(
        "[flowspec]\ngobgp = \"127.0.0.1:50051\"\ncommunity = \"64512:70000\"\n",
        "flowspec.community",
        "not ASN:VALUE",
    );
    syntax_error(
        "[flowspec]\ngobgp = \"127.0.0.1:50051\"\nrouters = 1\n",
        "routers",
    );
}

// ---- warnings -------------------------------------------------------------

#[test]
fn memif_links_are_warned_about_and_other_ports_are_not() {
    assert!(ok("").warnings().is_empty(), "{:?}", ok("").warnings());
    let memif = BASE
        .replace("net_pcap0,rx_pcap=in.pcap", "net_memif0,role=server")
        .replace("\"net_pcap0\"", "\"net_memif0\"");
    let warnings = load(&memif).expect("loads").warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("net_memif0 is net_memif: for tests and demos only")
            && warnings[0].contains("stop synwall before its memif peers"),
        "{warnings:?}"
    );
}
