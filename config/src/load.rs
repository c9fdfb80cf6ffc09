//! Loading: TOML text → [`RawConfig`] → validated [`Config`].
//!
//! Validation stops at the first problem and reports it as a [`ConfigError`] that
//! names the file, the key and the fix. Duplicate checks use hash maps so that a
//! customers file with a million entries loads in seconds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod customers;

use crate::raw::{DurationText, FileMode, RawConfig, RawCustomersFile, RawFleet};
use crate::{
    parse_duration, Block, BlockAction, BlockScope, Config, ConfigError, Control, Detect, Dpdk,
    Fleet, Flowspec, Hook, LcoreChoice, Limits, Link, MalformedPolicy, Mode, Prefix, Window,
    MAX_EXEMPT_DESTINATIONS, MAX_WINDOWS,
};
use customers::Customers;

/// `[windows]` when the table is absent: name → default limit.
pub const DEFAULT_WINDOWS: &[(&str, u64)] = &[("5m", 100), ("1h", 500), ("1d", 2000)];
/// `detect.ports` default.
pub const DEFAULT_PORTS: &[u16] = &[25];
/// `detect.near_limit` default.
pub const DEFAULT_NEAR_LIMIT: f64 = 0.8;
/// `link.queues` default.
pub const DEFAULT_QUEUES: u16 = 1;
/// `link.rx_desc` / `link.tx_desc` default.
pub const DEFAULT_DESC: u16 = 1024;
/// Most queues per port.
pub const MAX_QUEUES: u16 = 64;
/// Most descriptors per queue.
pub const MAX_DESC: u16 = 32768;
/// Upper bound of `dpdk.mbufs` (2^26, about 150 GB of 2 KiB mbufs: a typo guard).
pub const MAX_MBUFS: u32 = 1 << 26;
/// The community on synwall's FlowSpec rules unless `flowspec.community` says
/// otherwise (64512: the first private ASN).
pub const DEFAULT_FLOWSPEC_COMMUNITY: &str = "64512:2525";

/// `block.duration` default.
pub const DEFAULT_BLOCK_DURATION: Duration = Duration::from_secs(3600);
/// `block.escalation` default.
pub const DEFAULT_ESCALATION: f64 = 2.0;
/// `block.max_duration` default.
pub const DEFAULT_MAX_BLOCK_DURATION: Duration = Duration::from_secs(7 * 86_400);
/// `control.socket` default.
pub const DEFAULT_SOCKET: &str = "/run/synwall/control.sock";
/// The longest control socket path: `sun_path` holds 108 bytes with the NUL.
pub const MAX_SOCKET_PATH: usize = 107;
/// `control.socket_mode` default.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;
/// `control.state_dir` default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/synwall";
/// `control.events` default.
pub const DEFAULT_EVENTS: &str = "/var/log/synwall/events.jsonl";
/// `control.tick` default.
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);
/// `control.snapshot_interval` default.
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(30);
/// `control.stats_interval` default.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(1);
/// `control.hook.timeout` default.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// `fleet.lease_ttl` default.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// `fleet.lease_margin` default.
pub const DEFAULT_LEASE_MARGIN: Duration = Duration::from_secs(1);
/// `fleet.timeout` default.
pub const DEFAULT_FLEET_TIMEOUT: Duration = Duration::from_millis(500);
/// `fleet.lease_demand` default.
pub const DEFAULT_LEASE_DEMAND: Duration = Duration::from_secs(2);

const MIN_WINDOW: Duration = Duration::from_secs(60);
const MAX_WINDOW: Duration = Duration::from_secs(30 * 86_400);
const MIN_TICK: Duration = Duration::from_millis(10);
const MAX_TICK: Duration = Duration::from_secs(10);
const MAX_NAME: usize = 64;
/// DPDK's `RTE_ETH_NAME_MAX_LEN` is 64 including the NUL.
const MAX_PORT_NAME: usize = 63;

impl Config {
    /// Reads and validates the config at `path`, and the customers file it names.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_file(path, "")?;
        Config::load_text(&text, path)
    }

    /// Validates config `text` as if read from `path`, reading the
    /// customers file it names (what [`Config::load`] does once it has
    /// read `path`; for text about to be written there).
    pub fn load_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::build(text, path, &mut |file, hint| read_file(file, hint))
    }

    /// Validates config `text` as if read from `path`, reading nothing:
    /// `path` names the file in errors, and relative paths in the config
    /// (the `[control]` paths) are resolved against its directory. A
    /// config that names a `customers_file` is refused (use
    /// [`Config::load`] or [`Config::load_text`]).
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::build(text, path, &mut |file, _| {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                line: None,
                key: "customers_file".into(),
                reason: format!(
                    "names {}, and this config was given as text, without its files; load it from its path instead",
                    file.display()
                ),
            })
        })
    }

    /// Validation, with `read` for the customers file (its path, and a
    /// hint for an I/O error).
    fn build(
        text: &str,
        path: &Path,
        read: &mut dyn FnMut(&Path, &str) -> Result<String, ConfigError>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax(path, e))?;
        let file = File { path, text };
        let base = path.parent().unwrap_or(Path::new(""));

        let dpdk = file.dpdk(&raw)?;
        let links = file.links(&raw)?;
        let detect = file.detect(&raw)?;
        let windows = file.windows(&raw)?;
        let plans = file.plans(&raw, &windows)?;
        let block = file.block(&raw)?;
        let control = file.control(&raw, base)?;
        let fleet = match &raw.fleet {
            None => None,
            Some(fleet) => Some(file.fleet(fleet, control.tick)?),
        };
        let flowspec = file.flowspec(&raw)?;

        // The customers file's text, and what toml made of it when the
        // lean reader could not read it, outlive the duplicate checks
        // that borrow names from them.
        let list_text: String;
        let list: RawCustomersFile;
        let mut customers = Customers::new(&windows, &plans);
        customers.add_raw(&file, &raw.customers)?;
        let customers_file = match &raw.customers_file {
            None => None,
            Some(name) if name.trim().is_empty() => {
                return Err(file.invalid(
                    "customers_file",
                    "is empty; name a file of [[customer]] entries or remove the key",
                ))
            }
            Some(name) => {
                let resolved = base.join(name);
                let hint = format!(
                    "; customers_file = {name:?} in {} (relative paths are resolved against that file's directory)",
                    path.display()
                );
                list_text = read(&resolved, &hint)?;
                let list_file = File {
                    path: &resolved,
                    text: &list_text,
                };
                customers.first_file_len = Some(customers.list.len());
                customers.main_path = path.to_owned();
                if customers.add_lean(&list_file, &list_text)?.is_none() {
                    // Beyond the lean reader's subset: toml reads it (and
                    // words its syntax errors), from the main file's
                    // customers on.
                    customers = Customers::new(&windows, &plans);
                    customers.add_raw(&file, &raw.customers)?;
                    customers.first_file_len = Some(customers.list.len());
                    customers.main_path = path.to_owned();
                    list = toml::from_str(&list_text).map_err(|e| syntax(&resolved, e))?;
                    customers.add_raw(&list_file, &list.customers)?;
                }
                Some(resolved)
            }
        };

        let customers = customers.list;
        // A standing block drops traffic; monitor and exempt promise not to.
        if let Some(c) = customers
            .iter()
            .find(|c| c.blocked && c.mode.unwrap_or(control.mode) != Mode::Enforce)
        {
            let mode = c.mode.unwrap_or(control.mode);
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                line: None,
                key: format!("customer \"{}\".blocked", c.name),
                reason: format!(
                    "blocked = true with mode {mode} would never drop anything; set mode = \"enforce\" for this customer or remove the standing block"
                ),
            });
        }
        Ok(Config {
            path: path.to_owned(),
            customers_file,
            dpdk,
            links,
            detect,
            windows,
            plans,
            block,
            control,
            flowspec,
            customers: customers.into(),
            fleet,
        })
    }
}

fn read_file(path: &Path, hint: &str) -> Result<String, ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
        hint: hint.to_owned(),
    };
    // Bounded, and only regular files: reading /dev/zero or a pipe would
    // never end, and a huge file would be held whole while parsed.
    let bytes = crate::read_bounded(
        path,
        crate::MAX_CONFIG_BYTES,
        crate::Links::Follow,
        "config or customers file (a million customers take about 94 MB)",
    )
    .map_err(io)?;
    String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        ))
    })
}

fn syntax(path: &Path, err: toml::de::Error) -> ConfigError {
    ConfigError::Syntax {
        path: path.to_owned(),
        message: err.to_string().trim_end().to_owned(),
    }
}

/// TOML key syntax for a map key in messages: always quoted, as in `windows."5m"`.
fn quoted(key: &str) -> String {
    format!("{key:?}")
}

/// A table name in messages: bare if TOML allows it, else quoted.
fn bare_or_quoted(key: &str) -> String {
    if !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        key.to_owned()
    } else {
        quoted(key)
    }
}

/// One file being validated: its path and text (for line numbers).
struct File<'a> {
    path: &'a Path,
    text: &'a str,
}

impl File<'_> {
    fn invalid(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: None,
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn invalid_at(
        &self,
        offset: usize,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> ConfigError {
        let line = self
            .text
            .get(..offset)
            .map(|before| before.bytes().filter(|&b| b == b'\n').count() + 1);
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn duration(
        &self,
        key: &str,
        value: Option<&DurationText>,
        default: Duration,
        min: Duration,
        max: Option<Duration>,
    ) -> Result<Duration, ConfigError> {
        let Some(DurationText(text)) = value else {
            return Ok(default);
        };
        let d = parse_duration(text).map_err(|e| self.invalid(key, e.to_string()))?;
        if d < min || max.is_some_and(|max| d > max) {
            let range = match max {
                Some(max) => format!(
                    "between {} and {}",
                    crate::format_duration(min),
                    crate::format_duration(max)
                ),
                None => format!("at least {}", crate::format_duration(min)),
            };
            return Err(self.invalid(
                key,
                format!("{text:?} is out of range; use a duration {range}"),
            ));
        }
        Ok(d)
    }

    fn dpdk(&self, raw: &RawConfig) -> Result<Dpdk, ConfigError> {
        let Some(dpdk) = &raw.dpdk else {
            return Err(self.invalid(
                "dpdk",
                "missing; add a [dpdk] table with eal_args and cores (the worker lcores), e.g. cores = [1]",
            ));
        };
        for (i, arg) in dpdk.eal_args.iter().enumerate() {
            if arg.trim().is_empty() {
                return Err(self.invalid(format!("dpdk.eal_args[{i}]"), "is empty; remove it"));
            }
        }
        let eal = crate::lcores::scan(&dpdk.eal_args)
            .map_err(|(i, why)| self.invalid(format!("dpdk.eal_args[{i}]"), why))?;
        let main = eal.main_lcore();
        // Where the main lcore comes from, for messages.
        let main_why = match (&eal.main, &eal.list) {
            (Some((_, i)), _) => format!("set by --main-lcore in dpdk.eal_args[{i}]"),
            (None, Some(l)) => format!(
                "the lowest lcore of {} in dpdk.eal_args[{}]",
                l.given, l.arg
            ),
            (None, None) => {
                "eal_args choose no lcores, so synwall runs the EAL with main lcore 0".to_owned()
            }
        };
        if let (Some((_, i)), Some(l)) = (&eal.main, &eal.list) {
            if !l.lcores.contains(&main) {
                return Err(self.invalid(
                    format!("dpdk.eal_args[{i}]"),
                    format!(
                        "--main-lcore {main} is not in the lcore list {} (dpdk.eal_args[{}]); add it to the list",
                        l.given, l.arg
                    ),
                ));
            }
        }
        if dpdk.cores.is_empty() {
            return Err(self.invalid(
                "dpdk.cores",
                format!("no worker lcores; list at least one, e.g. cores = [{}] (lcore {main} is the main lcore and runs the control plane)", main + 1),
            ));
        }
        let mut seen = HashSet::new();
        let mut cores = Vec::with_capacity(dpdk.cores.len());
        for (i, &core) in dpdk.cores.iter().enumerate() {
            let key = format!("dpdk.cores[{i}]");
            let Ok(core) = usize::try_from(core) else {
                return Err(self.invalid(key, format!("{core} is not an lcore id; use 0 or more")));
            };
            if core >= crate::lcores::MAX_LCORE {
                return Err(self.invalid(
                    key,
                    format!(
                        "lcore {core} is beyond DPDK's RTE_MAX_LCORE; lcore ids are 0 to {}",
                        crate::lcores::MAX_LCORE - 1
                    ),
                ));
            }
            if core == main {
                return Err(self.invalid(
                    key,
                    format!("lcore {core} is the EAL main lcore ({main_why}), which runs the control plane; workers need other lcores"),
                ));
            }
            if let Some(l) = &eal.list {
                if !l.lcores.contains(&core) {
                    return Err(self.invalid(
                        key,
                        format!(
                            "worker lcore {core} is not in the EAL lcore list {} (dpdk.eal_args[{}]); add it there or remove it here",
                            l.given, l.arg
                        ),
                    ));
                }
            }
            if !seen.insert(core) {
                return Err(self.invalid(
                    key,
                    format!("lcore {core} is listed twice; list each worker lcore once"),
                ));
            }
            cores.push(core);
        }
        let mbufs = match dpdk.mbufs {
            None => None,
            Some(n) => Some(
                u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_MBUFS).contains(n))
                    .ok_or_else(|| {
                        self.invalid(
                            "dpdk.mbufs",
                            format!("{n} is out of range; use 1 to {MAX_MBUFS}, or leave it out to size the pool from the links"),
                        )
                    })?,
            ),
        };
        Ok(Dpdk {
            eal_args: dpdk.eal_args.clone(),
            cores,
            main_lcore: main,
            main_cpus: eal.cpus_of(main).into_iter().collect(),
            lcores: match &eal.list {
                None => LcoreChoice::Synwall,
                Some(l) if l.mapped => LcoreChoice::Mapped,
                Some(_) => LcoreChoice::List,
            },
            mbufs,
        })
    }

    fn links(&self, raw: &RawConfig) -> Result<Vec<Link>, ConfigError> {
        if raw.links.is_empty() {
            return Err(self.invalid(
                "link",
                "no links; add a [[link]] table with inside = \"<port>\" and outside = \"<port>\" (vdev name or PCI address)",
            ));
        }
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut ports: HashMap<String, String> = HashMap::new();
        let mut links = Vec::with_capacity(raw.links.len());
        for (i, link) in raw.links.iter().enumerate() {
            let key = |field: &str| format!("link[{i}].{field}");
            let name = link.name.clone().unwrap_or_else(|| format!("link{i}"));
            if name.trim().is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.invalid(
                    key("name"),
                    format!("{name:?} is not a usable name; use letters, digits and - _ . only"),
                ));
            }
            if let Some(other) = names.insert(name.clone(), i) {
                return Err(self.invalid(
                    key("name"),
                    format!(
                        "{name:?} is also the name of link[{other}]; give each link its own name"
                    ),
                ));
            }
            for (field, port) in [("inside", &link.inside), ("outside", &link.outside)] {
                check_port_name(port).map_err(|why| self.invalid(key(field), why))?;
                if let Some(dpdk) = &raw.dpdk {
                    if !vdev_declared(port, &dpdk.eal_args) {
                        return Err(self.invalid(
                            key(field),
                            format!("{port:?} is a virtual device name, but no --vdev={port},... in dpdk.eal_args declares it"),
                        ));
                    }
                }
                let here = key(field);
                if let Some(other) = ports.insert(normalize_port(port), here.clone()) {
                    return Err(self.invalid(
                        here,
                        format!("port {port:?} is already used as {other}; each port belongs to one link side only"),
                    ));
                }
            }
            let queues = link.queues.unwrap_or(DEFAULT_QUEUES.into());
            if !(1..=i64::from(MAX_QUEUES)).contains(&queues) {
                return Err(self.invalid(
                    key("queues"),
                    format!("{queues} is out of range; use 1 to {MAX_QUEUES}"),
                ));
            }
            let desc = |field: &str, value: Option<i64>| -> Result<u16, ConfigError> {
                let value = value.unwrap_or(DEFAULT_DESC.into());
                u16::try_from(value)
                    .ok()
                    .filter(|v| (1..=MAX_DESC).contains(v))
                    .ok_or_else(|| self.invalid(key(field), format!("{value} is out of range; use 1 to {MAX_DESC} (default {DEFAULT_DESC})")))
            };
            links.push(Link {
                name,
                inside: link.inside.clone(),
                outside: link.outside.clone(),
                // Checked against MAX_QUEUES above.
                queues: queues as u16,
                rx_desc: desc("rx_desc", link.rx_desc)?,
                tx_desc: desc("tx_desc", link.tx_desc)?,
            });
        }
        Ok(links)
    }

    fn detect(&self, raw: &RawConfig) -> Result<Detect, ConfigError> {
        let detect = raw.detect.clone().unwrap_or_default();
        let ports = match &detect.ports {
            None => DEFAULT_PORTS.to_vec(),
            Some(list) if list.is_empty() => {
                return Err(self.invalid(
                    "detect.ports",
                    "is empty; list the TCP destination ports to watch, e.g. ports = [25]",
                ))
            }
            Some(list) => {
                let mut ports = Vec::with_capacity(list.len());
                for (i, &port) in list.iter().enumerate() {
                    let key = format!("detect.ports[{i}]");
                    let Some(port) = u16::try_from(port).ok().filter(|&p| p != 0) else {
                        return Err(
                            self.invalid(key, format!("{port} is not a TCP port; use 1 to 65535"))
                        );
                    };
                    if ports.contains(&port) {
                        return Err(self.invalid(
                            key,
                            format!("port {port} is listed twice; list each port once"),
                        ));
                    }
                    ports.push(port);
                }
                ports
            }
        };
        let near_limit = detect.near_limit.unwrap_or(DEFAULT_NEAR_LIMIT);
        if !(near_limit > 0.0 && near_limit <= 1.0) {
            return Err(self.invalid(
                "detect.near_limit",
                format!("{near_limit} is out of range; use a fraction of the limit above 0 and at most 1, e.g. 0.8"),
            ));
        }
        let exempt = detect.exempt_destinations.as_deref().unwrap_or(&[]);
        if exempt.len() > MAX_EXEMPT_DESTINATIONS {
            return Err(self.invalid(
                "detect.exempt_destinations",
                format!(
                    "lists {} destinations; at most {MAX_EXEMPT_DESTINATIONS} (list the relays' networks, not every host)",
                    exempt.len()
                ),
            ));
        }
        let mut exempt_destinations: Vec<Prefix> = Vec::with_capacity(exempt.len());
        for (i, text) in exempt.iter().enumerate() {
            let key = format!("detect.exempt_destinations[{i}]");
            let prefix: Prefix = text
                .parse()
                .map_err(|e: crate::PrefixError| self.invalid(&key, e.to_string()))?;
            if exempt_destinations.contains(&prefix) {
                return Err(self.invalid(
                    key,
                    format!("{prefix} is listed twice; list each destination once"),
                ));
            }
            exempt_destinations.push(prefix);
        }
        Ok(Detect {
            ports,
            malformed: detect.malformed.unwrap_or(MalformedPolicy::Forward),
            near_limit,
            exempt_destinations,
        })
    }

    fn windows(&self, raw: &RawConfig) -> Result<Vec<Window>, ConfigError> {
        let Some(table) = &raw.windows else {
            return Ok(DEFAULT_WINDOWS
                .iter()
                .map(|&(name, limit)| Window {
                    name: name.to_owned(),
                    // The defaults are valid durations.
                    length: parse_duration(name).unwrap_or_default(),
                    default_limit: limit,
                })
                .collect());
        };
        if table.is_empty() {
            return Err(self.invalid(
                "windows",
                "no windows; add at least one, e.g. \"5m\" = 100, or remove [windows] for the defaults (5m = 100, 1h = 500, 1d = 2000)",
            ));
        }
        if table.len() > MAX_WINDOWS {
            return Err(self.invalid(
                "windows",
                format!(
                    "{} windows defined; at most {MAX_WINDOWS} are allowed, remove some",
                    table.len()
                ),
            ));
        }
        let mut windows: Vec<Window> = Vec::with_capacity(table.len());
        for (name, &limit) in table {
            let key = format!("windows.{}", quoted(name));
            let length = parse_duration(name).map_err(|e| {
                self.invalid(&key, format!("{e} (a window is named by its length)"))
            })?;
            if !(MIN_WINDOW..=MAX_WINDOW).contains(&length) {
                return Err(self.invalid(
                    key,
                    format!("{name:?} is out of range; a window is 1m to 30d long"),
                ));
            }
            if let Some(other) = windows.iter().find(|w| w.length == length) {
                return Err(self.invalid(
                    key,
                    format!(
                        "{name:?} is as long as window {:?}; each window needs its own length",
                        other.name
                    ),
                ));
            }
            let default_limit = non_negative(limit).map_err(|why| self.invalid(key, why))?;
            windows.push(Window {
                name: name.clone(),
                length,
                default_limit,
            });
        }
        windows.sort_by_key(|w| w.length);
        Ok(windows)
    }

    fn plans(
        &self,
        raw: &RawConfig,
        windows: &[Window],
    ) -> Result<BTreeMap<String, Limits>, ConfigError> {
        let mut plans = BTreeMap::new();
        for (name, table) in &raw.plans {
            let key = format!("plans.{}", bare_or_quoted(name));
            if name.trim().is_empty() {
                return Err(self.invalid(key, "a plan needs a name, e.g. [plans.mailserver]"));
            }
            let limits = limits(windows, table)
                .map_err(|(k, why)| self.invalid(format!("{key}.{k}"), why))?;
            plans.insert(name.clone(), limits);
        }
        Ok(plans)
    }

    fn flowspec(&self, raw: &RawConfig) -> Result<Option<Flowspec>, ConfigError> {
        let Some(f) = &raw.flowspec else {
            return Ok(None);
        };
        let Some(api) = &f.gobgp else {
            return Err(self.invalid(
                "flowspec.gobgp",
                "is missing; give the local gobgpd's API address, e.g. gobgp = \"127.0.0.1:50051\", or remove [flowspec]",
            ));
        };
        let gobgp: SocketAddr = api.trim().parse().map_err(|_| {
            self.invalid(
                "flowspec.gobgp",
                format!("{api:?} is not IP:PORT (e.g. \"127.0.0.1:50051\", \"[::1]:50051\")"),
            )
        })?;
        let gobgp_command = match &f.gobgp_command {
            None => PathBuf::from("gobgp"),
            Some(c) if c.trim().is_empty() => {
                return Err(self.invalid(
                    "flowspec.gobgp_command",
                    "is empty; name the gobgp command or remove the key",
                ))
            }
            Some(c) => PathBuf::from(c),
        };
        let text = f.community.as_deref().unwrap_or(DEFAULT_FLOWSPEC_COMMUNITY);
        let community = text
            .split_once(':')
            .and_then(|(a, v)| Some((a.trim().parse().ok()?, v.trim().parse().ok()?)))
            .ok_or_else(|| {
                self.invalid(
                    "flowspec.community",
                    format!("{text:?} is not ASN:VALUE with both parts 0..=65535"),
                )
            })?;
        if community == (65535, 666) || community.0 == 0 || community.0 == 65535 {
            return Err(self.invalid(
                "flowspec.community",
                format!("{text:?} is reserved (65535:666 is BLACKHOLE, 0:x and 65535:x are well-known); use one of your own, e.g. \"{DEFAULT_FLOWSPEC_COMMUNITY}\""),
            ));
        }
        Ok(Some(Flowspec {
            gobgp,
            gobgp_command,
            community,
        }))
    }

    fn block(&self, raw: &RawConfig) -> Result<Block, ConfigError> {
        let block = raw.block.clone().unwrap_or_default();
        let duration = self.duration(
            "block.duration",
            block.duration.as_ref(),
            DEFAULT_BLOCK_DURATION,
            Duration::from_secs(1),
            None,
        )?;
        let escalation = block.escalation.unwrap_or(DEFAULT_ESCALATION);
        if !(escalation.is_finite() && escalation >= 1.0) {
            return Err(self.invalid(
                "block.escalation",
                format!("{escalation} is out of range; use a factor of at least 1.0 (1.0 = repeat blocks do not grow)"),
            ));
        }
        let max_duration = self.duration(
            "block.max_duration",
            block.max_duration.as_ref(),
            DEFAULT_MAX_BLOCK_DURATION.max(duration),
            Duration::from_secs(1),
            None,
        )?;
        if max_duration < duration {
            return Err(self.invalid(
                "block.max_duration",
                format!(
                    "{} is shorter than block.duration ({}); make it at least as long",
                    crate::format_duration(max_duration),
                    crate::format_duration(duration)
                ),
            ));
        }
        Ok(Block {
            action: block.action.unwrap_or(BlockAction::Drop),
            scope: block.scope.unwrap_or(BlockScope::Syn),
            duration,
            escalation,
            max_duration,
        })
    }

    fn control(&self, raw: &RawConfig, base: &Path) -> Result<Control, ConfigError> {
        let control = raw.control.clone().unwrap_or_default();
        let path = |key: &str,
                    value: &Option<String>,
                    default: &str|
         -> Result<PathBuf, ConfigError> {
            match value {
                Some(v) if v.trim().is_empty() => Err(self.invalid(
                    key,
                    format!("is empty; give a path or remove the key for the default {default:?}"),
                )),
                Some(v) => Ok(base.join(v)),
                None => Ok(PathBuf::from(default)),
            }
        };
        let socket = path("control.socket", &control.socket, DEFAULT_SOCKET)?;
        let socket_len = socket.as_os_str().len();
        if socket_len > MAX_SOCKET_PATH {
            return Err(self.invalid(
                "control.socket",
                format!("the path is {socket_len} bytes; a Unix socket's path is at most {MAX_SOCKET_PATH} (sun_path); choose a shorter one, e.g. {DEFAULT_SOCKET:?}"),
            ));
        }
        let state_dir = path("control.state_dir", &control.state_dir, DEFAULT_STATE_DIR)?;
        let events = path("control.events", &control.events, DEFAULT_EVENTS)?;
        if let Some(group) = &control.socket_group {
            if group.is_empty() || group.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.invalid(
                    "control.socket_group",
                    format!("{group:?} is not a group name; name a system group or remove the key"),
                ));
            }
        }
        let socket_mode = match &control.socket_mode {
            None => DEFAULT_SOCKET_MODE,
            Some(mode) => {
                file_mode(mode).map_err(|why| self.invalid("control.socket_mode", why))?
            }
        };
        let tick = self.duration(
            "control.tick",
            control.tick.as_ref(),
            DEFAULT_TICK,
            MIN_TICK,
            Some(MAX_TICK),
        )?;
        let snapshot_interval = self.duration(
            "control.snapshot_interval",
            control.snapshot_interval.as_ref(),
            DEFAULT_SNAPSHOT_INTERVAL.max(tick),
            tick,
            Some(Duration::from_secs(86_400)),
        )?;
        let mode = control.mode.unwrap_or(Mode::Enforce);
        if mode == Mode::Exempt {
            return Err(self.invalid(
                "control.mode",
                "\"exempt\" cannot be the global mode; use \"enforce\" or \"monitor\" (exempt individual customers with mode = \"exempt\")",
            ));
        }
        let stats_interval = match &control.stats_interval {
            None => Some(DEFAULT_STATS_INTERVAL),
            Some(DurationText(text)) => {
                let d = parse_duration(text).map_err(|e| {
                    self.invalid(
                        "control.stats_interval",
                        format!("{e}; \"0\" turns stats off"),
                    )
                })?;
                if d.is_zero() {
                    None
                } else if d < tick {
                    return Err(self.invalid(
                        "control.stats_interval",
                        format!("{text:?} is shorter than control.tick ({}); use at least the tick, or \"0\" for off", crate::format_duration(tick)),
                    ));
                } else {
                    Some(d)
                }
            }
        };
        let metrics_listen = match &control.metrics_listen {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                self.invalid("control.metrics_listen", format!("{text:?} is not an address and port; write e.g. \"127.0.0.1:9925\" or \"[::1]:9925\""))
            })?),
        };
        let hook = match &control.hook {
            None => None,
            Some(hook) => {
                if hook.command.is_empty() || hook.command[0].trim().is_empty() {
                    return Err(self.invalid("control.hook.command", "is empty; give the program and its arguments, e.g. command = [\"/usr/local/bin/synwall-hook\", \"--notify\"]"));
                }
                let timeout = self.duration(
                    "control.hook.timeout",
                    hook.timeout.as_ref(),
                    DEFAULT_HOOK_TIMEOUT,
                    Duration::from_millis(1),
                    Some(Duration::from_secs(3600)),
                )?;
                Some(Hook {
                    command: hook.command.clone(),
                    timeout,
                })
            }
        };
        Ok(Control {
            socket,
            socket_group: control.socket_group.clone(),
            socket_mode,
            state_dir,
            events,
            tick,
            snapshot_interval,
            mode,
            stats_interval,
            metrics_listen,
            hook,
        })
    }
}

impl File<'_> {
    fn fleet(&self, raw: &RawFleet, tick: Duration) -> Result<Fleet, ConfigError> {
        let name =
            match &raw.name {
                None => return Err(self.invalid(
                    "fleet.name",
                    "is missing; name this appliance, unique in the fleet, e.g. name = \"edge-a\"",
                )),
                Some(n) if !valid_customer_name(n) => {
                    return Err(self.invalid(
                        "fleet.name",
                        format!(
                        "{n:?} is not a valid name; use 1 to {MAX_NAME} of A-Z a-z 0-9 . _ - @ : +"
                    ),
                    ))
                }
                Some(n) => n.clone(),
            };
        let redis = match &raw.redis {
            None => return Err(self.invalid("fleet.redis", "is missing; list the Redis URL (standalone) or the Redis Cluster seed nodes, e.g. redis = [\"redis://127.0.0.1:6379\"]")),
            Some(r) if r.is_empty() => return Err(self.invalid("fleet.redis", "is empty; list at least one Redis URL, e.g. \"redis://127.0.0.1:6379\"")),
            Some(r) => r.clone(),
        };
        let mut seen = HashSet::new();
        for (i, url) in redis.iter().enumerate() {
            let key = format!("fleet.redis[{i}]");
            let rest = url.strip_prefix("redis://").ok_or_else(|| {
                self.invalid(
                    &key,
                    format!("{url:?} is not a redis:// URL; write e.g. \"redis://127.0.0.1:6379\""),
                )
            })?;
            let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            let hostport = hostport.split('/').next().unwrap_or("");
            let port_ok = hostport.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !port_ok {
                return Err(self.invalid(
                    &key,
                    format!("{url:?} needs a host and a port, e.g. \"redis://127.0.0.1:6379\""),
                ));
            }
            if !seen.insert(url.as_str()) {
                return Err(self.invalid(&key, format!("{url:?} is listed twice")));
            }
        }
        let appliances =
            match raw.appliances {
                None => return Err(self.invalid(
                    "fleet.appliances",
                    "is missing; give how many appliances share the limits, e.g. appliances = 2",
                )),
                Some(n) if !(1..=1024).contains(&n) => {
                    return Err(self.invalid(
                        "fleet.appliances",
                        format!("{n} is out of range; use 1 to 1024"),
                    ))
                }
                Some(n) => n as u32,
            };
        let floor = match raw.floor {
            None => return Err(self.invalid("fleet.floor", "is missing; give the share of every limit spent locally without Redis, in [0, 1), e.g. floor = 0.2")),
            Some(f) if !(0.0..1.0).contains(&f) => {
                return Err(self.invalid("fleet.floor", format!("{f} is out of range; use a share in [0, 1) (1 would leave nothing to lease: run without [fleet] instead)")))
            }
            Some(f) => f,
        };
        let timeout = self.duration(
            "fleet.timeout",
            raw.timeout.as_ref(),
            DEFAULT_FLEET_TIMEOUT,
            Duration::from_millis(10),
            Some(Duration::from_secs(10)),
        )?;
        let lease_margin = self.duration(
            "fleet.lease_margin",
            raw.lease_margin.as_ref(),
            DEFAULT_LEASE_MARGIN,
            Duration::from_millis(10),
            Some(Duration::from_secs(600)),
        )?;
        let lease_ttl = self.duration(
            "fleet.lease_ttl",
            raw.lease_ttl.as_ref(),
            DEFAULT_LEASE_TTL,
            Duration::from_millis(100),
            Some(Duration::from_secs(3600)),
        )?;
        // The lease must outlive its margin, the tick that stops it and a
        // round trip, or it could never be spent.
        let least = lease_margin + 4 * tick + timeout;
        if lease_ttl < least {
            return Err(self.invalid(
                "fleet.lease_ttl",
                format!(
                    "{} is too short: a lease must outlive fleet.lease_margin + fleet.timeout + 4 ticks ({}); raise it or lower those",
                    crate::format_duration(lease_ttl),
                    crate::format_duration(least)
                ),
            ));
        }
        let lease_demand = self.duration(
            "fleet.lease_demand",
            raw.lease_demand.as_ref(),
            DEFAULT_LEASE_DEMAND,
            tick,
            Some(Duration::from_secs(3600)),
        )?;
        Ok(Fleet {
            name,
            redis,
            appliances,
            floor,
            lease_ttl,
            lease_margin,
            timeout,
            lease_demand,
        })
    }
}

fn non_negative(limit: i64) -> Result<u64, String> {
    u64::try_from(limit).map_err(|_| {
        format!("{limit} is negative; a limit is a SYN count, 0 or more (0 closes the port)")
    })
}

/// A `window → limit` table as [`Limits`]. Keys match windows by length, so
/// `"60m"` sets window `"1h"`. On error returns (quoted key, reason).
fn limits(windows: &[Window], table: &BTreeMap<String, i64>) -> Result<Limits, (String, String)> {
    let mut limits = Limits::unset(windows.len());
    let mut set_by: Vec<Option<&str>> = vec![None; windows.len()];
    for (name, &limit) in table {
        let key = quoted(name);
        let index = windows.iter().position(|w| w.name == *name).or_else(|| {
            let length = parse_duration(name).ok()?;
            windows.iter().position(|w| w.length == length)
        });
        let Some(index) = index else {
            let known: Vec<&str> = windows.iter().map(|w| w.name.as_str()).collect();
            return Err((
                key,
                format!(
                    "{name:?} is not a window; use one of {} or add it to [windows]",
                    known.join(", ")
                ),
            ));
        };
        if let Some(other) = set_by[index] {
            return Err((
                key,
                format!("{name:?} and {other:?} are the same window; set it once"),
            ));
        }
        set_by[index] = Some(name);
        limits.set(
            index,
            Some(non_negative(limit).map_err(|why| (key.clone(), why))?),
        );
    }
    Ok(limits)
}

fn file_mode(mode: &FileMode) -> Result<u32, String> {
    let value = match mode {
        FileMode::Number(n) => u32::try_from(*n).ok(),
        FileMode::Text(text) => {
            let digits = text.strip_prefix("0o").unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                None
            } else {
                u32::from_str_radix(digits, 8).ok()
            }
        }
    };
    let shown = match mode {
        FileMode::Number(n) => n.to_string(),
        FileMode::Text(t) => format!("{t:?}"),
    };
    value
        .filter(|&v| v <= 0o777)
        .ok_or_else(|| format!("{shown} is not a permission mode; write it in octal, e.g. socket_mode = 0o660 or \"0660\""))
}

/// Checks a link port name: a vdev name declared in `dpdk.eal_args`, or a PCI address.
/// Whether a port named like a virtual device (`net_*`, `eth_*`) is
/// declared by a `--vdev` EAL argument; other names (PCI addresses) pass.
fn vdev_declared(port: &str, eal_args: &[String]) -> bool {
    if !(port.starts_with("net_") || port.starts_with("eth_")) {
        return true;
    }
    let declares =
        |spec: &str| spec == port || spec.strip_prefix(port).is_some_and(|r| r.starts_with(','));
    eal_args.iter().enumerate().any(|(i, a)| {
        if let Some(spec) = a.strip_prefix("--vdev=") {
            declares(spec)
        } else if a == "--vdev" {
            eal_args.get(i + 1).is_some_and(|spec| declares(spec))
        } else {
            false
        }
    })
}

fn check_port_name(port: &str) -> Result<(), String> {
    if port.is_empty() {
        return Err("is empty; name a port: a vdev name like \"net_pcap0\" or a PCI address like \"0000:3b:00.0\"".to_owned());
    }
    if port.len() > MAX_PORT_NAME {
        return Err(format!(
            "{port:?} is longer than DPDK's {MAX_PORT_NAME}-byte device name limit"
        ));
    }
    if port
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '=')
    {
        return Err(format!(
            "{port:?} is not a device name; declare the device with --vdev=NAME,ARGS in dpdk.eal_args and put only NAME here (or a PCI address)"
        ));
    }
    Ok(())
}

/// A port name for duplicate checks: `3b:00.0` and `0000:3B:00.0` are the same device.
fn normalize_port(port: &str) -> String {
    let lower = port.to_ascii_lowercase();
    let b = lower.as_bytes();
    let short_pci = b.len() == 7
        && b[2] == b':'
        && b[5] == b'.'
        && [0, 1, 3, 4, 6].iter().all(|&i| b[i].is_ascii_hexdigit());
    if short_pci {
        format!("0000:{lower}")
    } else {
        lower
    }
}

/// Whether `name` is an acceptable customer name.
fn valid_customer_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@:+".contains(&b))
}
