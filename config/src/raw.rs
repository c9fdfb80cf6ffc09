//! The TOML schema as written by operators: serde structs that reject unknown keys.
//!
//! These are not validated; [`crate::Config`] is what the program consumes. Optional
//! keys are `Option`s here and get their defaults during validation (the defaults
//! are the `DEFAULT_*` constants in the crate root), so "absent" and "given" stay
//! distinguishable. Range-checked integers are `i64` so that a negative or huge
//! value gets a message naming the key rather than a bare type error.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use toml::Spanned;

use crate::{BlockAction, BlockScope, MalformedPolicy, Mode};

/// The main config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Further `[[customer]]` entries, relative to this file's directory.
    pub customers_file: Option<String>,
    /// `[dpdk]`.
    pub dpdk: Option<RawDpdk>,
    /// `[[link]]`.
    #[serde(default, rename = "link")]
    pub links: Vec<RawLink>,
    /// `[detect]`.
    pub detect: Option<RawDetect>,
    /// `[windows]`: window name (a duration) → default limit.
    pub windows: Option<BTreeMap<String, i64>>,
    /// `[plans.NAME]`: window name → limit.
    #[serde(default)]
    pub plans: BTreeMap<String, BTreeMap<String, i64>>,
    /// `[block]`.
    pub block: Option<RawBlock>,
    /// `[control]`.
    pub control: Option<RawControl>,
    /// `[fleet]`: several appliances share the limits through Redis.
    pub fleet: Option<RawFleet>,
    /// `[flowspec]`.
    pub flowspec: Option<RawFlowspec>,
    /// `[[customer]]`.
    #[serde(default, rename = "customer")]
    pub customers: Vec<RawCustomer>,
}

/// `[fleet]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// This appliance's name, unique in the fleet.
    pub name: Option<String>,
    /// Redis URLs: one = standalone, several = Redis Cluster seed nodes.
    pub redis: Option<Vec<String>>,
    /// How many appliances share the limits.
    pub appliances: Option<i64>,
    /// Share of every limit spent locally without Redis, split over `appliances`.
    pub floor: Option<f64>,
    /// How long a lease lives on the server.
    pub lease_ttl: Option<DurationText>,
    /// How long before the server's expiry an appliance stops spending a lease.
    pub lease_margin: Option<DurationText>,
    /// Timeout of one round of Redis calls.
    pub timeout: Option<DurationText>,
    /// Seconds of the customer's recent rate a lease asks for.
    pub lease_demand: Option<DurationText>,
}

/// `[flowspec]`: blocks announced as BGP FlowSpec through a local gobgpd.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlowspec {
    /// `IP:PORT` of the gobgpd gRPC API.
    pub gobgp: Option<String>,
    /// The `gobgp` command (default: `gobgp` on `PATH`).
    pub gobgp_command: Option<String>,
    /// `ASN:VALUE`, the community that marks synwall's rules.
    pub community: Option<String>,
}

/// The file named by `customers_file`: only `[[customer]]` entries.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomersFile {
    /// `[[customer]]`.
    #[serde(default, rename = "customer")]
    pub customers: Vec<RawCustomer>,
}

/// `[dpdk]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDpdk {
    /// Arguments for `rte_eal_init`, without the program name and the lcore list.
    #[serde(default)]
    pub eal_args: Vec<String>,
    /// Worker lcore ids.
    #[serde(default)]
    pub cores: Vec<i64>,
    /// Mbufs in the packet pool (default: sized from the links).
    pub mbufs: Option<i64>,
}

/// `[[link]]`: one inline port pair.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    /// A name for logs and metrics.
    pub name: Option<String>,
    /// The customers' side: vdev name or PCI address.
    pub inside: String,
    /// The upstream side: vdev name or PCI address.
    pub outside: String,
    /// Rx/tx queues per port.
    pub queues: Option<i64>,
    /// Rx descriptors per queue.
    pub rx_desc: Option<i64>,
    /// Tx descriptors per queue.
    pub tx_desc: Option<i64>,
}

/// `[detect]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetect {
    /// TCP destination ports watched.
    pub ports: Option<Vec<i64>>,
    /// What to do with frames that fail to parse.
    pub malformed: Option<MalformedPolicy>,
    /// Fraction of a limit at which a "near limit" warning is raised.
    pub near_limit: Option<f64>,
    /// Destinations (the provider's own relays and networks) whose watched
    /// TCP is neither counted nor blocked.
    pub exempt_destinations: Option<Vec<String>>,
}

/// `[block]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBlock {
    /// drop | reset.
    pub action: Option<BlockAction>,
    /// syn | smtp.
    pub scope: Option<BlockScope>,
    /// First block's length.
    pub duration: Option<DurationText>,
    /// Factor applied to each repeat block.
    pub escalation: Option<f64>,
    /// Ceiling for escalated blocks.
    pub max_duration: Option<DurationText>,
}

/// `[control]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    /// Unix control socket path.
    pub socket: Option<String>,
    /// Group that owns the socket.
    pub socket_group: Option<String>,
    /// Socket permission bits: `0o660` or `"0660"`.
    pub socket_mode: Option<FileMode>,
    /// Snapshot directory.
    pub state_dir: Option<String>,
    /// Event log (JSON lines).
    pub events: Option<String>,
    /// Control-plane tick.
    pub tick: Option<DurationText>,
    /// How often state is snapshotted.
    pub snapshot_interval: Option<DurationText>,
    /// Global mode: enforce | monitor.
    pub mode: Option<Mode>,
    /// How often stats are logged; "0" = off.
    pub stats_interval: Option<DurationText>,
    /// Prometheus listen address, e.g. "127.0.0.1:9925".
    pub metrics_listen: Option<String>,
    /// Command run on block/unblock events.
    pub hook: Option<RawHook>,
}

/// `[control] hook = { command = [...], timeout = "5s" }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Kill the hook after this long.
    pub timeout: Option<DurationText>,
}

/// `[[customer]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomer {
    /// Unique name; its span gives error messages a line number.
    pub name: Spanned<String>,
    /// Address space the customer owns.
    pub prefixes: Vec<String>,
    /// A `[plans.NAME]`.
    pub plan: Option<String>,
    /// Per-window overrides.
    pub limits: Option<BTreeMap<String, i64>>,
    /// enforce | monitor | exempt.
    pub mode: Option<Mode>,
    /// Start blocked.
    pub blocked: Option<bool>,
}

/// A duration as written (`"30s"`), parsed during validation so that errors name
/// the key. The integer `0` is read as `"0"`; other bare numbers are rejected
/// because their unit would be a guess.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DurationText(pub String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string with a unit, such as \"30s\", \"5m\" or \"100ms\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationText, E> {
                if v == 0 {
                    Ok(DurationText("0".to_owned()))
                } else {
                    Err(E::invalid_type(serde::de::Unexpected::Signed(v), &self))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationText, E> {
                if v == 0 {
                    Ok(DurationText("0".to_owned()))
                } else {
                    Err(E::invalid_type(serde::de::Unexpected::Unsigned(v), &self))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Permission bits as written: a TOML integer (`0o660`) or an octal string (`"0660"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum FileMode {
    /// An integer, taken as-is (write it as `0o660` in TOML).
    Number(i64),
    /// An octal string, `"0660"`, `"660"` or `"0o660"`.
    Text(String),
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("permission bits such as 0o660 or \"0660\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileMode, E> {
                Ok(FileMode::Text(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileMode, E> {
                Ok(FileMode::Number(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileMode, E> {
                Ok(FileMode::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
