//! One Redis node: a connection with timeouts, and one pipeline of lease
//! script calls per round.
//!
//! Calls go as `EVALSHA`; a node that answers `NOSCRIPT` (restarted, or
//! `SCRIPT FLUSH`) gets `SCRIPT LOAD` and the refused calls again, in the
//! same round. `NOSCRIPT` means the call did not run, so sending it again
//! is safe (and every lease call is idempotent by its sequence number
//! anyway).
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError, Value};

use crate::script::{self, BadReply, Call, Invoke, ParseReply, Reply};
pub use synwall_engine::fleet::lease::{CallError, Health};

/// One Redis node and its connection (opened when needed).
pub struct Node {
    url: String,
    client: Client,
    con: Option<Connection>,
    timeout: Duration,
    script: redis::Script,
    /// Times a `NOSCRIPT` was answered by loading the script.
    pub script_loads: u64,
    /// The last round trip.
    pub last_rtt: Option<Duration>,
    /// The epoch this node had when first seen (`synwall:epoch`): a
    /// different one later means it lost its state.
    epoch: Option<String>,
    /// How long a node that lost its state is quarantined (the longest
    /// window): set on the node as `synwall:quarantine`, so every
    /// appliance honours it.
    pub quarantine_ms: u64,
    /// The node's own epoch and quarantine keys (a Cluster node's carry a
    /// hash tag of one of its slots).
    epoch_key: String,
    quarantine_key: String,
}

const EPOCH_KEY: &str = "synwall:epoch";
const QUARANTINE_KEY: &str = "synwall:quarantine";

fn new_epoch() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:09}.{}",
        t.as_secs(),
        t.subsec_nanos(),
        std::process::id()
    )
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("url", &self.url)
            .field("connected", &self.con.is_some())
            .finish()
    }
}

impl Node {
    /// A node at `url` (not yet connected) whose rounds time out after
    /// `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Node, RedisError> {
        Ok(Node {
            url: url.to_owned(),
            client: Client::open(url)?,
            con: None,
            timeout,
            script: script::script(),
            script_loads: 0,
            last_rtt: None,
            epoch: None,
            quarantine_ms: 0,
            epoch_key: EPOCH_KEY.to_owned(),
            quarantine_key: QUARANTINE_KEY.to_owned(),
        })
    }

    /// Gives the node's epoch and quarantine keys the hash tag `tag` (a
    /// Cluster master: a tag of one of its own slots).
    pub fn set_health_tag(&mut self, tag: &str) {
        self.epoch_key = format!("{EPOCH_KEY}:{{{tag}}}");
        self.quarantine_key = format!("{QUARANTINE_KEY}:{{{tag}}}");
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn connection(&mut self) -> Result<&mut Connection, RedisError> {
        match &mut self.con {
            Some(con) => Ok(con),
            con @ None => {
                let fresh = self.client.get_connection_with_timeout(self.timeout)?;
                fresh.set_read_timeout(Some(self.timeout))?;
                fresh.set_write_timeout(Some(self.timeout))?;
                Ok(con.insert(fresh))
            }
        }
    }

    fn unreachable(&mut self, e: &RedisError) -> CallError {
        // A timed-out or broken connection may still deliver an old reply:
        // never read from it again.
        self.con = None;
        CallError::Unreachable {
            url: self.url.clone(),
            message: e.to_string(),
        }
    }

    /// Runs an arbitrary command on this node (tests, health checks,
    /// epoch), with the round's timeout.
    pub fn command(&mut self, cmd: &redis::Cmd) -> Result<Value, CallError> {
        let r = self.connection().and_then(|c| cmd.query::<Value>(c));
        r.map_err(|e| self.unreachable(&e))
    }

    /// Checks the node's epoch and quarantine (one pipeline of three
    /// commands; creates the epoch on a fresh node, and the quarantine on
    /// one that lost its state).
    pub fn health(&mut self) -> Health {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&self.epoch_key)
            .arg(new_epoch())
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&self.epoch_key)
            .cmd("PTTL")
            .arg(&self.quarantine_key);
        let r: Result<(Option<String>, i64), RedisError> =
            self.connection().and_then(|c| pipe.query(c));
        let (epoch, pttl) = match r {
            Ok(v) => v,
            Err(e) => {
                self.unreachable(&e);
                return Health::default();
            }
        };
        let mut h = Health {
            up: true,
            lost_state: false,
            quarantine_ms: u64::try_from(pttl).unwrap_or(0),
        };
        match (&self.epoch, epoch) {
            (None, Some(e)) => self.epoch = Some(e),
            (Some(known), Some(e)) if *known != e => {
                h.lost_state = true;
                self.epoch = Some(e);
            }
            _ => {}
        }
        if h.lost_state && self.quarantine_ms > 0 {
            let set = redis::cmd("SET")
                .arg(&self.quarantine_key)
                .arg("lost state")
                .arg("PX")
                .arg(self.quarantine_ms)
                .arg("NX")
                .to_owned();
            let _ = self.command(&set);
            h.quarantine_ms = h.quarantine_ms.max(self.quarantine_ms);
        }
        h
    }

    /// Sends `calls` as one pipeline and returns one result per call, in
    /// order. If the node cannot be reached every call gets
    /// [`CallError::Unreachable`].
    pub fn round(&mut self, calls: &[Call]) -> Vec<Result<Reply, CallError>> {
        if calls.is_empty() {
            return Vec::new();
        }
        let started = Instant::now();
        let mut out: Vec<Option<Result<Reply, CallError>>> = vec![None; calls.len()];
        let mut todo: Vec<usize> = (0..calls.len()).collect();
        // At most one reload per round: a node that keeps forgetting the
        // script gets the calls refused, not a loop.
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &i in &todo {
                let inv = calls[i].invocation(&self.script);
                pipe.invoke_script(&inv);
            }
            let results: Result<Vec<redis::RedisResult<Value>>, RedisError> =
                match self.connection() {
                    Ok(c) => pipe.query(c),
                    Err(e) => Err(e),
                };
            let results = match results {
                Ok(r) if r.len() == todo.len() => r,
                Ok(r) => {
                    let e = CallError::Bad {
                        url: self.url.clone(),
                        source: BadReply(format!("{} replies to {} calls", r.len(), todo.len())),
                    };
                    self.con = None;
                    for &i in &todo {
                        out[i] = Some(Err(e.clone()));
                    }
                    break;
                }
                Err(e) => {
                    let e = self.unreachable(&e);
                    for &i in &todo {
                        out[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            };
            let mut again = Vec::new();
            for (&i, r) in todo.iter().zip(results) {
                out[i] = Some(match r {
                    Ok(v) => Reply::parse(&v).map_err(|source| CallError::Bad {
                        url: self.url.clone(),
                        source,
                    }),
                    Err(e) if e.code() == Some("NOSCRIPT") && attempt == 0 => {
                        again.push(i);
                        continue;
                    }
                    Err(e) => Err(CallError::Refused {
                        url: self.url.clone(),
                        moved: e.redirect_node().map(|(addr, _)| addr.to_owned()),
                        message: e.to_string(),
                    }),
                });
            }
            if again.is_empty() {
                break;
            }
            let script = self.script.clone();
            let load = self.connection().and_then(|c| script.load(c));
            if let Err(e) = load {
                let e = self.unreachable(&e);
                for &i in &again {
                    out[i] = Some(Err(e.clone()));
                }
                break;
            }
            self.script_loads += 1;
            todo = again;
        }
        self.last_rtt = Some(started.elapsed());
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(CallError::Unreachable {
                        url: self.url.clone(),
                        message: "no reply".into(),
                    })
                })
            })
            .collect()
    }
}
