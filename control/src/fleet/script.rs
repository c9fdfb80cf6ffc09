//! The lease script: what one call asks and what Redis answers.
//!
//! All of a customer's keys carry the hash tag `{c:NAME}`, so they live on
//! one slot (one node of a Cluster) and the script runs atomically over
//! them. See `lease.lua` for the keys and the algorithm.
use redis::Value;

use super::link::Said;

/// The Lua source.
pub const SOURCE: &str = include_str!("lease.lua");

/// The script, with its SHA1 for `EVALSHA`.
pub fn script() -> redis::Script {
    redis::Script::new(SOURCE)
}

/// The five keys of `customer`, one hash tag: window buckets, leases,
/// sequence numbers, block, and the notes of its last announcements.
pub fn keys(customer: &str) -> [String; 5] {
    ["w", "l", "q", "b", "a"].map(|k| format!("{{c:{customer}}}:{k}"))
}

/// A window as the script sees it: its length, and what Redis may lease
/// of it to the whole fleet (the limit less every appliance's floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedWindow {
    /// Length in milliseconds (buckets of a thirtieth of it, as locally).
    pub length_ms: u64,
    /// The window's limit less the fleet's floors.
    pub leased: u64,
}

/// What one call does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Report spend on a lease and ask for more (or release it).
    Lease {
        /// Increases with every lease call of this appliance for this
        /// customer, across restarts: a retry with the same number
        /// changes nothing.
        seq: u64,
        /// The lease reported on (0: none yet).
        lease: u64,
        /// SYNs spent from that lease so far (cumulative).
        spent: u64,
        /// SYNs wanted on top.
        want: u64,
        /// Give the unspent rest back and end the lease.
        release: bool,
    },
    /// Block the customer fleet-wide.
    Block {
        /// For how long; `None`: until unblocked.
        ms: Option<u64>,
        /// Why.
        reason: String,
        /// Who.
        by: String,
    },
    /// Lift a block fleet-wide and forgive the shared windows.
    Unblock,
    /// Announce an operator's new limit for one window to the fleet.
    Limit {
        /// The window's length.
        window_ms: u64,
        /// The new limit.
        value: u64,
    },
    /// Read the customer's block and notes, changing nothing.
    Notes,
}

impl Op {
    /// The script's name for it (its first argument).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Lease { .. } => "lease",
            Op::Block { .. } => "block",
            Op::Unblock => "unblock",
            Op::Limit { .. } => "limit",
            Op::Notes => "notes",
        }
    }
}

/// One script call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The customer's name.
    pub customer: String,
    /// This appliance's fleet name.
    pub app: String,
    /// Lease lifetime on the server.
    pub ttl_ms: u64,
    /// The windows, in config order.
    pub windows: Vec<SharedWindow>,
    /// What to do.
    pub op: Op,
}

impl Call {
    /// The script invocation for this call.
    pub fn invocation<'a>(&self, script: &'a redis::Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in keys(&self.customer) {
            inv.key(k);
        }
        let (seq, lease, spent, want, release, block_ms, reason, by) = match &self.op {
            Op::Lease {
                seq,
                lease,
                spent,
                want,
                release,
            } => (*seq, *lease, *spent, *want, *release, -1i64, "", ""),
            Op::Block { ms, reason, by } => (
                0,
                0,
                0,
                0,
                false,
                ms.map_or(-1, |m| m.min(i64::MAX as u64) as i64),
                reason.as_str(),
                by.as_str(),
            ),
            Op::Unblock | Op::Notes => (0, 0, 0, 0, false, -1, "", ""),
            Op::Limit { window_ms, value } => (*window_ms, 0, 0, *value, false, -1, "", ""),
        };
        inv.arg(self.op.kind())
            .arg(&self.app)
            .arg(seq)
            .arg(lease)
            .arg(spent)
            .arg(want)
            .arg(self.ttl_ms)
            .arg(if release { "1" } else { "0" })
            .arg(block_ms)
            .arg(reason)
            .arg(by)
            .arg(self.windows.len());
        for w in &self.windows {
            inv.arg(w.length_ms).arg(w.leased);
        }
        inv
    }
}

/// A block in force fleet-wide, as Redis holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBlock {
    /// End in server milliseconds; `None`: until unblocked.
    pub until: Option<u64>,
    /// Why.
    pub reason: String,
    /// Who (an operator, or `limit`).
    pub by: String,
    /// The appliance where it happened.
    pub app: String,
}

/// What the script answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// This was a retry of a call already done: nothing changed, and the
    /// lease fields are the server's view of that call's lease now.
    pub dup: bool,
    /// The lease held after the call (0: none).
    pub lease: u64,
    /// Its cumulative grant.
    pub granted: u64,
    /// What the server has charged of it.
    pub spent: u64,
    /// Its expiry, server milliseconds (0: no lease).
    pub expires: u64,
    /// The server's clock at the call.
    pub now: u64,
    /// The customer's fleet-wide block, if one is in force.
    pub block: Option<SharedBlock>,
    /// The first window with nothing left to lease (index), and its count
    /// plus what is leased out.
    pub exhausted: Option<(usize, u64)>,
    /// What is still free after this grant.
    pub free: u64,
    /// The appliance reported more spend than the lease had: clamped.
    pub overspent: bool,
    /// The customer's last announcements of each kind, as noted in Redis.
    pub notes: Vec<Note>,
    /// Notes that could not be read (skipped).
    pub bad_notes: u64,
}

/// An announcement as Redis noted it, for appliances that missed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// What was said.
    pub said: Said,
    /// The server's clock when it was said, µs: orders the fleet's words.
    pub version: u64,
    /// The appliance that said it.
    pub app: String,
}

impl Note {
    /// Parses one field of the notes hash (`block` / `unblock` → `VER
    /// APP`, `limit:LEN` → `VER VALUE APP`); `None` for anything else.
    pub fn parse(field: &str, value: &str) -> Option<Note> {
        let (version, rest) = value.split_once(' ')?;
        let version = version.parse().ok()?;
        let (said, app) = match field {
            "block" => (Said::Block, rest),
            "unblock" => (Said::Unblock, rest),
            _ => {
                let window_ms = field.strip_prefix("limit:")?.parse().ok()?;
                let (value, app) = rest.split_once(' ')?;
                let value = value.parse().ok()?;
                (Said::Limit { window_ms, value }, app)
            }
        };
        (!app.is_empty()).then(|| Note {
            said,
            version,
            app: app.to_owned(),
        })
    }
}

/// A reply that is not what the script returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected reply from the lease script: {0}")]
pub struct BadReply(pub String);

impl Reply {
    /// Parses the script's answer.
    pub fn parse(value: &Value) -> Result<Reply, BadReply> {
        let Value::Array(items) = value else {
            return Err(BadReply(format!("not an array: {value:?}")));
        };
        if items.len() != 15 {
            return Err(BadReply(format!("{} fields, expected 15", items.len())));
        }
        let int = |i: usize| -> Result<i64, BadReply> {
            match &items[i] {
                Value::Int(n) => Ok(*n),
                other => Err(BadReply(format!("field {i} is not an integer: {other:?}"))),
            }
        };
        let uint = |i: usize| -> Result<u64, BadReply> {
            u64::try_from(int(i)?).map_err(|_| BadReply(format!("field {i} is negative")))
        };
        let text = |i: usize| -> Result<String, BadReply> {
            match &items[i] {
                Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                Value::SimpleString(s) => Ok(s.clone()),
                Value::Nil => Ok(String::new()),
                other => Err(BadReply(format!("field {i} is not text: {other:?}"))),
            }
        };
        let until = int(6)?;
        let block = match until {
            0 => None,
            -1 => Some(None),
            u if u > 0 => Some(Some(u as u64)),
            u => return Err(BadReply(format!("block until {u}"))),
        }
        .map(|until| -> Result<SharedBlock, BadReply> {
            Ok(SharedBlock {
                until,
                reason: text(7)?,
                by: text(8)?,
                app: text(9)?,
            })
        })
        .transpose()?;
        let ex_w = uint(10)?;
        let Value::Array(flat) = &items[14] else {
            return Err(BadReply(format!("notes are not an array: {:?}", items[14])));
        };
        let as_text = |v: &Value| match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        // A note this version cannot read is skipped (and counted): the
        // lease in the same reply still holds.
        let mut notes = Vec::new();
        let mut bad_notes = 0;
        for pair in flat.chunks(2) {
            let note = match pair {
                [field, value] => as_text(field)
                    .zip(as_text(value))
                    .and_then(|(f, v)| Note::parse(&f, &v)),
                _ => None,
            };
            match note {
                Some(n) => notes.push(n),
                None => bad_notes += 1,
            }
        }
        Ok(Reply {
            dup: int(0)? != 0,
            lease: uint(1)?,
            granted: uint(2)?,
            spent: uint(3)?,
            expires: uint(4)?,
            now: uint(5)?,
            block,
            exhausted: (ex_w > 0).then(|| (ex_w as usize - 1, uint(11).unwrap_or(0))),
            free: uint(12)?,
            overspent: int(13)? != 0,
            notes,
            bad_notes,
        })
    }
}
