//! The validated, typed config the rest of synwall consumes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{parse_duration, Prefix};

/// A validated configuration. Build it with [`Config::load`] (a file, and the customers
/// file it names), [`Config::load_text`] (text for a path, reading the customers file)
/// or [`Config::from_str`] (text alone, reading nothing).
///
/// Relative paths in the file (`customers_file`, `control.socket`, `control.state_dir`,
/// `control.events`) have been resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file this was loaded from.
    pub path: PathBuf,
    /// The resolved `customers_file`, if any.
    pub customers_file: Option<PathBuf>,
    /// `[dpdk]`.
    pub dpdk: Dpdk,
    /// `[[link]]`, in file order; at least one.
    pub links: Vec<Link>,
    /// `[detect]`.
    pub detect: Detect,
    /// `[windows]`, sorted by length, shortest first; 1 to [`MAX_WINDOWS`] of them.
    /// Every [`Limits`] is indexed like this vector.
    pub windows: Vec<Window>,
    /// `[plans.NAME]`: named limit sets.
    pub plans: BTreeMap<String, Limits>,
    /// `[block]`.
    pub block: Block,
    /// `[control]`.
    pub control: Control,
    /// `[flowspec]`, when blocks are announced as BGP FlowSpec.
    pub flowspec: Option<Flowspec>,
    /// All customers: the config file's first, then the customers file's.
    /// `customers[i].id == i`. Shared: cloning a `Config` does not copy them.
    pub customers: CustomerList,
    /// `[fleet]`: `None` = this appliance enforces alone.
    pub fleet: Option<Fleet>,
}

/// `[fleet]`: several appliances enforce one limit per customer, through
/// Redis (standalone or Cluster).
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// This appliance, unique in the fleet (same rules as a customer name).
    pub name: String,
    /// Redis URLs (`redis://host:port[/db]`): one = standalone, several =
    /// Redis Cluster seed nodes. Non-empty, distinct.
    pub redis: Vec<String>,
    /// Appliances that share the limits, >= 1.
    pub appliances: u32,
    /// Share of every limit, in [0, 1), spent locally without Redis, split
    /// evenly over `appliances`.
    pub floor: f64,
    /// Lifetime of a lease on the server.
    pub lease_ttl: Duration,
    /// An appliance stops spending a lease this long (plus a tick) before
    /// the server's expiry.
    pub lease_margin: Duration,
    /// Timeout of one round of Redis calls (connect, send, reply).
    pub timeout: Duration,
    /// How much of a customer's recent rate a lease asks for (e.g. 2 s of it).
    pub lease_demand: Duration,
}

impl Fleet {
    /// This appliance's floor of `limit`: `floor × limit / appliances`,
    /// rounded down, so the floors of the fleet add up to at most
    /// `floor × limit` and Redis leases at least the rest.
    pub fn floor_of(&self, limit: u64) -> u64 {
        let share = (limit as f64 * self.floor / f64::from(self.appliances.max(1))).floor();
        (share.max(0.0) as u64).min(limit / u64::from(self.appliances.max(1)))
    }

    /// What Redis leases of `limit` to the whole fleet: the limit less every
    /// appliance's floor.
    pub fn leased_of(&self, limit: u64) -> u64 {
        limit.saturating_sub(
            self.floor_of(limit)
                .saturating_mul(u64::from(self.appliances)),
        )
    }
}

/// `[flowspec]`: where the local gobgpd's API is and how synwall marks
/// the FlowSpec rules it announces there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flowspec {
    /// The gobgpd gRPC API (`gobgp -u IP -p PORT`).
    pub gobgp: std::net::SocketAddr,
    /// The `gobgp` command.
    pub gobgp_command: PathBuf,
    /// The standard community (`ASN:VALUE`) on every rule synwall
    /// announces: the rules it may withdraw are exactly those carrying it.
    pub community: (u16, u16),
}

/// The most windows a config may define.
pub const MAX_WINDOWS: usize = 8;

/// `[dpdk]`: how to start the EAL and which lcores run workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dpdk {
    /// Arguments for `rte_eal_init` (no program name). When they choose no
    /// lcores (`-l`, `-c`, `--lcores`), synwall adds `-l MAIN,CORES`.
    pub eal_args: Vec<String>,
    /// Worker lcore ids: non-empty, distinct, in the EAL's lcore list when
    /// `eal_args` give one, never the main lcore.
    pub cores: Vec<usize>,
    /// The EAL main lcore, which runs the control plane: `--main-lcore` if
    /// given, else the lowest lcore of the list `eal_args` give (DPDK's
    /// rule), else 0.
    pub main_lcore: usize,
    /// The CPUs the main lcore runs on (its `--lcores` mapping, else CPU
    /// `main_lcore`): every thread of synwall but the workers runs there.
    pub main_cpus: Vec<usize>,
    /// Who chose the EAL's lcores.
    pub lcores: LcoreChoice,
    /// Mbufs in the packet pool; `None`: enough for every rx and tx ring, the
    /// bursts in flight and the per-lcore caches (computed at start).
    pub mbufs: Option<u32>,
}

/// Who chose the EAL's lcores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcoreChoice {
    /// `eal_args` give none: synwall adds `-l MAIN,CORES`.
    Synwall,
    /// `-l` or `-c` in `eal_args`: lcore N runs on CPU N.
    List,
    /// `--lcores` in `eal_args`: lcores mapped to CPUs of the operator's choice.
    Mapped,
}

/// `[[link]]`: one inline pair of ports. Frames from `inside` are inspected and
/// forwarded to `outside`; the reverse direction is forwarded without inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The given name, or `link<N>` (N = index).
    pub name: String,
    /// The customers' side: a vdev name (`net_pcap0`) or PCI address (`0000:3b:00.0`).
    pub inside: String,
    /// The upstream side, same forms as `inside`.
    pub outside: String,
    /// Rx and tx queues per port (RSS spread), 1..=64.
    pub queues: u16,
    /// Rx descriptors per queue.
    pub rx_desc: u16,
    /// Tx descriptors per queue.
    pub tx_desc: u16,
}

/// `[detect]`: what counts as a SYN to watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Detect {
    /// TCP destination ports watched: non-empty, distinct, 1..=65535.
    pub ports: Vec<u16>,
    /// What happens to frames that fail to parse.
    pub malformed: MalformedPolicy,
    /// Fraction of a limit, in (0, 1], at which a "near limit" warning is raised.
    pub near_limit: f64,
    /// Destinations (the provider's own relays, its own networks) to which
    /// TCP on the watched ports is neither counted against the customer
    /// nor blocked: a blocked customer can still send through the relay.
    /// Distinct, at most [`MAX_EXEMPT_DESTINATIONS`].
    pub exempt_destinations: Vec<Prefix>,
}

/// Most `detect.exempt_destinations` (each watched SYN is checked against
/// every one of them).
pub const MAX_EXEMPT_DESTINATIONS: usize = 64;

/// One trailing window, e.g. "5m" with a default limit of 100 SYNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The name as written in the config (`"5m"`, `"1h"`); used in events and metrics.
    pub name: String,
    /// Its length, 1 minute to 30 days.
    pub length: Duration,
    /// Limit for customers with neither a plan nor an override for this window.
    pub default_limit: u64,
}

/// Per-window limits, indexed like [`Config::windows`]: `None` = not set here, fall
/// back (override → plan → window default); `Some(0)` = the port is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Limits(Vec<Option<u64>>);

impl Limits {
    /// No limit set for any of `windows` windows.
    pub fn unset(windows: usize) -> Limits {
        Limits(vec![None; windows])
    }

    /// The limit for window `index`, if set (and `None` past the end).
    pub fn get(&self, index: usize) -> Option<u64> {
        self.0.get(index).copied().flatten()
    }

    /// Sets or clears the limit for window `index`, growing the vector if needed.
    pub fn set(&mut self, index: usize, limit: Option<u64>) {
        if index >= self.0.len() {
            self.0.resize(index + 1, None);
        }
        self.0[index] = limit;
    }

    /// One entry per window.
    pub fn as_slice(&self) -> &[Option<u64>] {
        &self.0
    }

    /// Whether no window has a limit set.
    pub fn is_unset(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

impl From<Vec<Option<u64>>> for Limits {
    fn from(limits: Vec<Option<u64>>) -> Limits {
        Limits(limits)
    }
}

/// `[block]`: what a block does and how long it lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Drop the frames, or answer SYNs with a TCP reset.
    pub action: BlockAction,
    /// Which of a blocked customer's frames are blocked.
    pub scope: BlockScope,
    /// Length of a first block.
    pub duration: Duration,
    /// Each repeat block lasts the previous one times this (>= 1.0).
    pub escalation: f64,
    /// Ceiling for escalated blocks (>= `duration`).
    pub max_duration: Duration,
}

/// `[control]`: the control plane's files, socket and timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// Unix socket for `synwallctl`.
    pub socket: PathBuf,
    /// Group given to the socket, if any.
    pub socket_group: Option<String>,
    /// Permission bits of the socket (<= 0o777).
    pub socket_mode: u32,
    /// Where snapshots live.
    pub state_dir: PathBuf,
    /// Event log (JSON lines).
    pub events: PathBuf,
    /// Control-plane tick, 10ms..=10s.
    pub tick: Duration,
    /// How often state is snapshotted (>= tick).
    pub snapshot_interval: Duration,
    /// Mode of customers that do not set one (never `Exempt`).
    pub mode: Mode,
    /// How often stats are logged; `None` = off.
    pub stats_interval: Option<Duration>,
    /// Prometheus metrics listen address.
    pub metrics_listen: Option<SocketAddr>,
    /// Command run on block events.
    pub hook: Option<Hook>,
}

/// An external command run on events (block, unblock, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Program and arguments; non-empty.
    pub command: Vec<String>,
    /// Kill it after this long.
    pub timeout: Duration,
}

/// A customer: a name, its address space and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Dense id = index in [`Config::customers`].
    pub id: u32,
    /// Unique name, 1 to 64 of `A-Z a-z 0-9 . _ - @ : +`.
    pub name: String,
    /// Non-empty; no prefix is owned by two customers (a more specific prefix may
    /// sit inside another customer's larger one: longest match wins).
    pub prefixes: Vec<Prefix>,
    /// A key of [`Config::plans`].
    pub plan: Option<String>,
    /// Per-window overrides.
    pub overrides: Limits,
    /// Own mode; `None` = the global [`Control::mode`].
    pub mode: Option<Mode>,
    /// Start blocked (an operator's standing block).
    pub blocked: bool,
}

/// Every customer of a [`Config`], in id order, behind a shared pointer:
/// a `Config` is cloned where it is handed over (the control thread keeps
/// one, a reload prepares another), and at a million customers a copy of
/// the list took a second and a couple of hundred MB. Reads as a slice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerList(Arc<Vec<Customer>>);

impl Deref for CustomerList {
    type Target = [Customer];

    fn deref(&self) -> &[Customer] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a CustomerList {
    type Item = &'a Customer;
    type IntoIter = std::slice::Iter<'a, Customer>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Customer> for CustomerList {
    fn from_iter<I: IntoIterator<Item = Customer>>(customers: I) -> CustomerList {
        CustomerList(Arc::new(customers.into_iter().collect()))
    }
}

impl From<Vec<Customer>> for CustomerList {
    fn from(customers: Vec<Customer>) -> CustomerList {
        CustomerList(Arc::new(customers))
    }
}

impl Config {
    /// What is valid but almost certainly not meant: a customer owning
    /// every address of a family (`0.0.0.0/0`, `::/0`), or an exempt
    /// destination that covers every address (enforcement off for that
    /// family), or a link on `net_memif` ports (a crash risk of DPDK
    /// 22.11's memif driver when the peer goes first). `--check` and the
    /// start print them.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let memif: Vec<&str> = self
            .links
            .iter()
            .flat_map(|l| [l.inside.as_str(), l.outside.as_str()])
            .filter(|p| p.starts_with("net_memif") || p.starts_with("eth_memif"))
            .collect();
        if !memif.is_empty() {
            out.push(format!(
                "{} {} net_memif: for tests and demos only; DPDK 22.11's memif driver unmaps a disconnected peer's rings under the polling worker, so a memif peer that goes while synwall runs can crash synwall: stop synwall before its memif peers",
                memif.join(", "),
                if memif.len() == 1 { "is" } else { "are" }
            ));
        }
        for c in &self.customers {
            for p in c.prefixes.iter().filter(|p| p.len == 0) {
                out.push(format!(
                    "customer {:?} owns {p}: every {} address no other customer owns is counted as {:?}'s; give it its own prefixes",
                    c.name,
                    if p.is_ipv4() { "IPv4" } else { "IPv6" },
                    c.name
                ));
            }
        }
        for p in self
            .detect
            .exempt_destinations
            .iter()
            .filter(|p| p.len == 0)
        {
            let family = if p.is_ipv4() { "IPv4" } else { "IPv6" };
            out.push(format!(
                "detect.exempt_destinations has {p}: no {family} SYN is ever counted or blocked (enforcement is off for {family}); list the provider's own relays instead"
            ));
        }
        out
    }

    /// The limit of each window for `customer`, indexed like [`Config::windows`]:
    /// the customer's override, else its plan's, else the window default.
    /// 0 means the port is closed to this customer.
    pub fn effective_limits(&self, customer: &Customer) -> Vec<u64> {
        (0..self.windows.len())
            .map(|index| self.effective_limit(customer, index))
            .collect()
    }

    /// [`Config::effective_limits`] for one window. Panics if `window` is out of range.
    pub fn effective_limit(&self, customer: &Customer, window: usize) -> u64 {
        customer
            .overrides
            .get(window)
            .or_else(|| {
                customer
                    .plan
                    .as_ref()
                    .and_then(|plan| self.plans.get(plan))
                    .and_then(|limits| limits.get(window))
            })
            .unwrap_or(self.windows[window].default_limit)
    }

    /// The customer's own mode, else the global one.
    pub fn effective_mode(&self, customer: &Customer) -> Mode {
        customer.mode.unwrap_or(self.control.mode)
    }

    /// The index of the window named `name` or of the same length (`"60m"` finds
    /// `"1h"`).
    pub fn window_index(&self, name: &str) -> Option<usize> {
        if let Some(index) = self.windows.iter().position(|w| w.name == name) {
            return Some(index);
        }
        let length = parse_duration(name).ok()?;
        self.windows.iter().position(|w| w.length == length)
    }

    /// The customer called `name` (linear scan; build an index for hot paths).
    pub fn customer(&self, name: &str) -> Option<&Customer> {
        self.customers.iter().find(|c| c.name == name)
    }
}

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase name used in the config and on the control socket.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            /// Parses the lowercase name.
            fn from_str(text: &str) -> Result<$name, UnknownName> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| UnknownName {
                        given: text.to_owned(),
                        expected: $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(" | "),
                    })
            }
        }
    };
}

/// A name that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {given:?}; expected one of: {expected}")]
pub struct UnknownName {
    /// The text as given.
    pub given: String,
    /// The accepted names, `a | b | c`.
    pub expected: String,
}

named_enum! {
    /// How a customer's limits are applied.
    Mode {
        /// Exceeding a limit blocks the customer.
        Enforce = "enforce",
        /// Exceeding a limit is logged, nothing is blocked.
        Monitor = "monitor",
        /// Counted, never warned about or blocked.
        Exempt = "exempt",
    }
}

named_enum! {
    /// What a block does to a blocked frame.
    BlockAction {
        /// Drop it silently.
        Drop = "drop",
        /// Drop it and answer a SYN with a TCP RST.
        Reset = "reset",
    }
}

named_enum! {
    /// Which of a blocked customer's frames are blocked.
    BlockScope {
        /// Only the SYNs to the watched ports: running sessions finish.
        Syn = "syn",
        /// Every TCP frame to the watched ports.
        Smtp = "smtp",
    }
}

named_enum! {
    /// What happens to frames that cannot be parsed.
    MalformedPolicy {
        /// Pass them on (and count them).
        Forward = "forward",
        /// Drop them (and count them).
        Drop = "drop",
    }
}
