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
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use synwall_config::Mode;

/// The longest request line accepted, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

/// How many customers `customers` lists when the request does not say.
pub const DEFAULT_TOP: usize = 20;

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
    let value: Value = serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson {
        column: e.column(),
        message: strip_position(&e.to_string()),
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
    serde_json::from_value(Value::Object(map)).map_err(|e| ProtocolError::BadFields {
        cmd,
        message: e.to_string(),
    })
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
        let long = vec![b' '; MAX_LINE + 1];
        assert_eq!(err(&long), "line too long (limit 64 KiB)");
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
