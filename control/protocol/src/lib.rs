//! The control socket's wire protocol: one JSON object per line each way.
//!
//! A request names its command in `"cmd"`:
//!
//! ```text
//! {"cmd":"block","customer":"acme","duration":"2h","reason":"abuse #123"}
//! ```
//!
//! and gets exactly one reply line, `{"ok":true,...}` or
//! `{"ok":false,"error":"unknown customer 'acme'"}` — except `events`, whose
//! reply `{"ok":true,"events":"following"}` is followed by one line per
//! event until the client goes away.
//!
//! Parsing is strict and every refusal says what was wrong: an unknown
//! command, a field that does not belong to the command, JSON that does not
//! parse (with its column), bytes that are not UTF-8. Both `socat` and
//! `synwallctl` speak it; `synwallctl` builds its requests from [`Command`].
//!
//! This crate is the operator API: `synwallctl` depends on it alone, so
//! the operator's tool builds with no DPDK, Redis or Prometheus.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
pub use synwall_config::{Mode, DEFAULT_SOCKET};

/// The longest request line accepted, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

/// How many customers `customers` lists when the request does not say.
pub const DEFAULT_TOP: usize = 20;

/// The most customers one `customers` request lists.
pub const MAX_TOP: usize = 100_000;

/// The longest block an operator may set with a duration. Longer ones are
/// refused: a standing block is written without a duration. (Unbounded,
/// `18446744073709551615ms` once wrapped to a block that ended in 1970.)
pub const MAX_BLOCK_DURATION: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

/// The largest limit `set-limit` takes: 2^53 - 1, the largest integer every
/// JSON reader (and the config file's TOML integers) holds exactly. Far
/// above any SYN count a window can see.
pub const MAX_LIMIT: u64 = (1 << 53) - 1;

/// How many top customers' series a `report` chart draws when the request
/// does not say, and at most.
pub const DEFAULT_REPORT_TOP: usize = 5;
pub const MAX_REPORT_TOP: usize = 20;

/// The longest reason, in bytes.
pub const MAX_REASON: usize = 1024;

/// Every command's name, as written in `"cmd"`.
pub const COMMANDS: &[&str] = &[
    "status",
    "customers",
    "customer",
    "block",
    "unblock",
    "blocks",
    "set-limit",
    "mode",
    "reload",
    "events",
    "metrics",
    "fleet",
    "history",
    "what-if",
    "suggest",
    "report",
];

/// One request. Customers are named by name or by any address inside
/// their prefixes; durations are written as in the config (`"2h"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// Version, uptime, ports, workers, tick cost (the appliance decides).
    Status,
    /// The customers with the highest count in a window.
    Customers {
        /// The window to rank by (default: the first, i.e. shortest).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<String>,
        /// How many.
        #[serde(default = "default_top")]
        top: usize,
    },
    /// Everything about one customer.
    Customer {
        /// Name or address.
        customer: String,
    },
    /// Block a customer now.
    Block {
        /// Name or address.
        customer: String,
        /// How long (`"2h"`); absent = until unblocked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<String>,
        /// Why, for the event log and `blocks`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Lift a customer's block.
    Unblock {
        /// Name or address.
        customer: String,
        /// Why, for the event log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The blocks in force.
    Blocks,
    /// Change a limit of one customer, or of every customer on a plan.
    SetLimit {
        /// Name or address (exactly one of `customer` and `plan`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<String>,
        /// A plan's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<String>,
        /// The window's name (`"5m"`, or any duration of the same length).
        window: String,
        /// The new limit in SYNs (0 closes the port).
        value: u64,
        /// Also write it to the config file, so it survives reload/restart.
        #[serde(default, skip_serializing_if = "is_false")]
        persist: bool,
    },
    /// Change a customer's mode, or the global default mode.
    Mode {
        /// Name or address; absent = the global default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<String>,
        /// `enforce`, `monitor` or `exempt` (not global).
        mode: Mode,
    },
    /// Re-read the config file.
    Reload,
    /// Follow the event stream.
    Events,
    /// The Prometheus metrics text.
    Metrics,
    /// This appliance's view of the fleet (`[fleet]`).
    Fleet,
    /// One customer's SYNs over time, from the history (`choosing`).
    History {
        /// Name or address (or the name of a customer since removed).
        customer: String,
        /// How far back (`"7d"`, the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        /// One row per step (`"1h"`, the default; whole minutes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        /// The window whose peaks and limit are shown (default: the shortest).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<String>,
    },
    /// Replays the history against other limits.
    WhatIf {
        /// One customer (name or address); with neither this nor `plan`: all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<String>,
        /// The customers on a plan.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<String>,
        /// Window name → the limit to try (windows not named keep theirs).
        #[serde(default)]
        limits: std::collections::BTreeMap<String, u64>,
        /// How far back (`"30d"`, the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
    },
    /// Peaks per window and a suggested limit.
    Suggest {
        /// The customers on a plan (default: all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<String>,
        /// How far back (`"30d"`, the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        /// The suggested limit is the 99th percentile of peaks times this
        /// (`"2"`, the default; a decimal number from 1 to 100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        headroom: Option<String>,
    },
    /// What `synwallctl report` draws, in one round trip: per plan (and
    /// for every customer), `suggest`'s answer with each customer's peak,
    /// and the series of the customers with the highest peaks.
    Report {
        /// Only this plan's chart (default: every customer's, then each
        /// plan's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<String>,
        /// How far back (`"30d"`, the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        /// As `suggest`'s (`"2"`, the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        headroom: Option<String>,
        /// How many customers' series per chart (0 to [`MAX_REPORT_TOP`]).
        #[serde(default = "default_report_top")]
        top: usize,
    },
}

fn default_report_top() -> usize {
    DEFAULT_REPORT_TOP
}

fn default_top() -> usize {
    DEFAULT_TOP
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Command {
    /// The command's name, as in `"cmd"`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Status => "status",
            Command::Customers { .. } => "customers",
            Command::Customer { .. } => "customer",
            Command::Block { .. } => "block",
            Command::Unblock { .. } => "unblock",
            Command::Blocks => "blocks",
            Command::SetLimit { .. } => "set-limit",
            Command::Mode { .. } => "mode",
            Command::Reload => "reload",
            Command::Events => "events",
            Command::Metrics => "metrics",
            Command::Fleet => "fleet",
            Command::History { .. } => "history",
            Command::WhatIf { .. } => "what-if",
            Command::Suggest { .. } => "suggest",
            Command::Report { .. } => "report",
        }
    }

    /// Whether the command changes state (and so is attributed to its caller).
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Command::Block { .. }
                | Command::Unblock { .. }
                | Command::SetLimit { .. }
                | Command::Mode { .. }
                | Command::Reload
        )
    }

    /// The request line, without the newline.
    pub fn to_line(&self) -> String {
        // Plain strings, integers and enums: cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Who sent a request, from the socket's peer credentials (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Process id.
    pub pid: i32,
}

impl Caller {
    /// How the event log names the caller: `"uid=0 pid=123"`.
    pub fn by(&self) -> String {
        format!("uid={} pid={}", self.uid, self.pid)
    }
}

/// Why a request line was refused. The `Display` text is the reply's
/// `"error"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Longer than [`MAX_LINE`]; the connection is closed after the reply.
    #[error("line too long (limit 64 KiB)")]
    TooLong,
    /// Not UTF-8; the 1-based position of the first bad byte.
    #[error("invalid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
    /// Not JSON.
    #[error("invalid JSON at column {column}: {message}")]
    InvalidJson {
        /// 1-based column of the fault.
        column: usize,
        /// serde_json's words.
        message: String,
    },
    /// JSON, but not an object.
    #[error("a request is a JSON object, e.g. {{\"cmd\":\"status\"}}")]
    NotAnObject,
    /// No `"cmd"` string.
    #[error("missing \"cmd\" (one of: {})", COMMANDS.join(", "))]
    MissingCmd,
    /// `"cmd"` names no command.
    #[error("unknown command '{0}' (one of: {})", COMMANDS.join(", "))]
    UnknownCommand(String),
    /// A key appears twice in one object (`{"cmd":"status","cmd":"reload"}`):
    /// which one counts is not obvious, so neither does.
    #[error("duplicate key \"{0}\" in the request; give each key once")]
    DuplicateKey(String),
    /// The command's fields are wrong.
    #[error("bad '{cmd}' request: {message}")]
    BadFields {
        /// The command.
        cmd: String,
        /// What is wrong (missing field, unknown field, wrong type).
        message: String,
    },
}

/// Parses one request line (without its newline). Surrounding whitespace
/// (and a `\r`) is ignored.
pub fn parse_line(line: &[u8]) -> Result<Command, ProtocolError> {
    if line.len() > MAX_LINE {
        return Err(ProtocolError::TooLong);
    }
    let text =
        std::str::from_utf8(line).map_err(|e| ProtocolError::InvalidUtf8(e.valid_up_to() + 1))?;
    let StrictValue(value) = serde_json::from_str(text).map_err(|e| {
        let message = strip_position(&e.to_string());
        match message.strip_prefix(DUPLICATE_KEY) {
            Some(key) => ProtocolError::DuplicateKey(key.to_owned()),
            None => ProtocolError::InvalidJson {
                column: e.column(),
                message,
            },
        }
    })?;
    let Value::Object(map) = value else {
        return Err(ProtocolError::NotAnObject);
    };
    let cmd = match map.get("cmd") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(ProtocolError::MissingCmd),
    };
    if !COMMANDS.contains(&cmd.as_str()) {
        return Err(ProtocolError::UnknownCommand(cmd));
    }
    let command: Command =
        serde_json::from_value(Value::Object(map)).map_err(|e| ProtocolError::BadFields {
            cmd: cmd.clone(),
            message: e.to_string(),
        })?;
    command
        .check()
        .map_err(|message| ProtocolError::BadFields { cmd, message })?;
    Ok(command)
}

impl Command {
    /// Bounds what the types alone do not: counts and text. Durations are
    /// checked where they are parsed ([`block_duration`]).
    fn check(&self) -> Result<(), String> {
        match self {
            Command::Customers { top, .. } if *top > MAX_TOP => {
                Err(format!("top {top} is too many; at most {MAX_TOP}"))
            }
            Command::Report { top, .. } if *top > MAX_REPORT_TOP => Err(format!(
                "top {top}: a chart draws 0 to {MAX_REPORT_TOP} customers' series"
            )),
            Command::SetLimit { value, .. } if *value > MAX_LIMIT => Err(format!(
                "limit {value} is too large; at most {MAX_LIMIT} (for no limit, set a plan or mode exempt)"
            )),
            Command::Block {
                reason: Some(r), ..
            }
            | Command::Unblock {
                reason: Some(r), ..
            } => check_reason(r),
            _ => Ok(()),
        }
    }
}

/// A reason goes into the event log, hooks' environment and `blocks`
/// tables: no control characters (a newline forges a table row, an escape
/// reaches the terminal, a NUL cuts a hook's environment), and bounded.
fn check_reason(reason: &str) -> Result<(), String> {
    if reason.len() > MAX_REASON {
        return Err(format!(
            "reason is {} bytes; at most {MAX_REASON}",
            reason.len()
        ));
    }
    match reason.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "reason contains the control character {:?}; write it on one line, in plain text",
            c
        )),
        None => Ok(()),
    }
}

/// A block's length as an operator writes it (`"2h"`): longer than zero and
/// at most [`MAX_BLOCK_DURATION`].
pub fn block_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = |why: &str| {
        format!("bad duration '{text}': {why}; write a number and a unit (ms, s, m, h, d, w), e.g. \"2h\", or leave it out for an indefinite block")
    };
    match synwall_config::parse_duration(text) {
        Ok(d) if d.is_zero() => Err(bad("a block must last longer than 0")),
        Ok(d) if d > MAX_BLOCK_DURATION => Err(format!(
            "bad duration '{text}': a block lasts at most {}; for a standing block omit the duration",
            synwall_config::format_duration(MAX_BLOCK_DURATION)
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(bad(e.reason)),
    }
}

/// How [`StrictValue`] starts the message of a duplicate key.
const DUPLICATE_KEY: &str = "duplicate key ";

/// A JSON value that refuses a key given twice in one object, at any
/// depth (`serde_json::Value` keeps the last one silently).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let StrictValue(v) = access.next_value()?;
            if map.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "{DUPLICATE_KEY}{key}"
                )));
            }
            map.insert(key, v);
        }
        Ok(Value::Object(map))
    }
}

/// serde_json appends " at line L column C"; the column is reported apart.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A success reply: `{"ok":true}` plus `fields` (an object's members; any
/// other value is put under `"result"`).
pub fn ok(fields: Value) -> Value {
    let mut map = Map::new();
    map.insert("ok".into(), Value::Bool(true));
    match fields {
        Value::Object(m) => {
            for (k, v) in m {
                if k != "ok" {
                    map.insert(k, v);
                }
            }
        }
        Value::Null => {}
        other => {
            map.insert("result".into(), other);
        }
    }
    Value::Object(map)
}

/// A refusal: `{"ok":false,"error":message}`.
pub fn error(message: impl std::fmt::Display) -> Value {
    serde_json::json!({"ok": false, "error": message.to_string()})
}

/// The reply as one line, newline included.
pub fn reply_line(reply: &Value) -> String {
    let mut s = serde_json::to_string(reply).unwrap_or_else(|_| {
        r#"{"ok":false,"error":"internal error: unserializable reply"}"#.to_owned()
    });
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses_and_round_trips() {
        let lines = [
            r#"{"cmd":"status"}"#,
            r#"{"cmd":"customers"}"#,
            r#"{"cmd":"customers","window":"1h","top":5}"#,
            r#"{"cmd":"customer","customer":"acme"}"#,
            r#"{"cmd":"block","customer":"acme","duration":"2h","reason":"abuse #123"}"#,
            r#"{"cmd":"block","customer":"198.51.100.7"}"#,
            r#"{"cmd":"unblock","customer":"acme","reason":"fixed"}"#,
            r#"{"cmd":"blocks"}"#,
            r#"{"cmd":"set-limit","customer":"acme","window":"5m","value":10,"persist":true}"#,
            r#"{"cmd":"set-limit","plan":"mailserver","window":"5m","value":10}"#,
            r#"{"cmd":"mode","mode":"monitor"}"#,
            r#"{"cmd":"mode","customer":"acme","mode":"exempt"}"#,
            r#"{"cmd":"reload"}"#,
            r#"{"cmd":"events"}"#,
            r#"{"cmd":"metrics"}"#,
            r#"{"cmd":"report","plan":"gold","since":"7d","top":3}"#,
        ];
        for line in lines {
            let cmd = parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(line.contains(&format!("\"{}\"", cmd.name())));
            assert_eq!(parse_line(cmd.to_line().as_bytes()).unwrap(), cmd, "{line}");
        }
        assert_eq!(
            parse_line(br#"{"cmd":"customers"}"#).unwrap(),
            Command::Customers {
                window: None,
                top: DEFAULT_TOP
            }
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |line: &[u8]| parse_line(line).unwrap_err().to_string();
        assert!(err(br#"{"cmd":"frobnicate"}"#).starts_with("unknown command 'frobnicate'"));
        assert!(err(br#"{"cmd":"status""#).starts_with("invalid JSON at column 15"));
        assert!(err(b"hello").starts_with("invalid JSON at column 1"));
        assert_eq!(err(b"{\"cmd\":\"st\xffatus\"}"), "invalid UTF-8 at byte 11");
        assert!(err(b"[1]").starts_with("a request is a JSON object"));
        assert!(err(br#"{"customer":"acme"}"#).starts_with("missing \"cmd\""));
        assert!(err(br#"{"cmd":5}"#).starts_with("missing \"cmd\""));
        let e = err(br#"{"cmd":"block"}"#);
        assert!(
            e.contains("bad 'block' request") && e.contains("customer"),
            "{e}"
        );
        let e = err(br#"{"cmd":"block","customer":"a","durration":"2h"}"#);
        assert!(e.contains("unknown field `durration`"), "{e}");
        let e = err(br#"{"cmd":"mode","mode":"off"}"#);
        assert!(e.contains("off") && e.contains("enforce"), "{e}");
        let e = err(br#"{"cmd":"set-limit","window":"5m","value":-1}"#);
        assert!(e.contains("bad 'set-limit' request"), "{e}");
        let e = err(br#"{"cmd":"status","cmd":"reload"}"#);
        assert_eq!(
            e,
            "duplicate key \"cmd\" in the request; give each key once"
        );
        let e = err(br#"{"cmd":"block","customer":"a","reason":"x","reason":"y"}"#);
        assert!(e.starts_with("duplicate key \"reason\""), "{e}");
        let e = err(br#"{"cmd":"status","x":{"a":1,"a":2}}"#);
        assert!(e.starts_with("duplicate key \"a\""), "{e}");
        let e = err(br#"{"cmd":"block","customer":"a","reason":"a\nb"}"#);
        assert!(e.contains("control character"), "{e}");
        let e = err(br#"{"cmd":"unblock","customer":"a","reason":"a\u0000b"}"#);
        assert!(e.contains("control character"), "{e}");
        let e = err(br#"{"cmd":"block","customer":"a","reason":"\u001b[31mred"}"#);
        assert!(e.contains("control character"), "{e}");
        let e = err(
            br#"{"cmd":"set-limit","customer":"a","window":"5m","value":18446744073709551615}"#,
        );
        assert!(e.contains("at most 9007199254740991"), "{e}");
        let e = err(br#"{"cmd":"customers","top":18446744073709551615}"#);
        assert!(e.contains("at most 100000"), "{e}");
        let e = err(br#"{"cmd":"report","top":21}"#);
        assert!(e.contains("0 to 20"), "{e}");
        let long = vec![b' '; MAX_LINE + 1];
        assert_eq!(err(&long), "line too long (limit 64 KiB)");
    }

    #[test]
    fn block_durations_are_bounded() {
        assert_eq!(
            block_duration("2h"),
            Ok(std::time::Duration::from_secs(7200))
        );
        assert_eq!(block_duration("365d"), Ok(MAX_BLOCK_DURATION));
        for long in [
            "18446744073709551615ms",
            "9223372036854775807ms",
            "213503982334601d",
            "366d",
        ] {
            let e = block_duration(long).unwrap_err();
            assert!(
                e.contains("at most 365d; for a standing block omit"),
                "{long}: {e}"
            );
        }
        assert!(block_duration("0s").unwrap_err().contains("longer than 0"));
        assert!(block_duration("2x").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn replies() {
        let r = ok(serde_json::json!({"a": 1, "ok": false}));
        assert_eq!(r, serde_json::json!({"ok": true, "a": 1}));
        let line = reply_line(&error("no"));
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, serde_json::json!({"ok": false, "error": "no"}));
        assert_eq!(
            Caller {
                uid: 0,
                gid: 0,
                pid: 123
            }
            .by(),
            "uid=0 pid=123"
        );
    }
}
