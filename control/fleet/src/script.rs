//! The lease script: what one call asks and what Redis answers.
//!
//! All of a customer's keys carry the hash tag `{c:NAME}`, so they live on
//! one slot (one node of a Cluster) and the script runs atomically over
//! them. See `lease.lua` for the keys and the algorithm.
use redis::Value;

pub use synwall_engine::fleet::lease::{
    BadReply, Call, Note, Op, Reply, SharedBlock, SharedWindow,
};

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

/// A call as a script invocation.
pub trait Invoke {
    /// The script invocation for this call.
    fn invocation<'a>(&self, script: &'a redis::Script) -> redis::ScriptInvocation<'a>;
}

impl Invoke for Call {
    fn invocation<'a>(&self, script: &'a redis::Script) -> redis::ScriptInvocation<'a> {
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

/// The script's answer read from Redis.
pub trait ParseReply: Sized {
    /// Parses the script's answer.
    fn parse(value: &Value) -> Result<Self, BadReply>;
}

impl ParseReply for Reply {
    fn parse(value: &Value) -> Result<Reply, BadReply> {
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
