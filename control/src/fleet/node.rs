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

use super::script::{self, BadReply, Call, Reply};

/// Why a call got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The node could not be reached or did not answer in time: nothing
    /// is known about whether the call ran.
    #[error("{url}: {message}")]
    Unreachable {
        /// The node.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The node answered with an error (the call did not run).
    #[error("{url}: {message}")]
    Refused {
        /// The node.
        url: String,
        /// Redis's error, e.g. `MOVED 1234 127.0.0.1:7001`.
        message: String,
        /// The `MOVED`/`ASK` target, if it was a redirection.
        moved: Option<String>,
    },
    /// The reply was not what the script returns.
    #[error("{url}: {source}")]
    Bad {
        /// The node.
        url: String,
        /// What was wrong with it.
        source: BadReply,
    },
}

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
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn connection(&mut self) -> Result<&mut Connection, RedisError> {
        if self.con.is_none() {
            let con = self.client.get_connection_with_timeout(self.timeout)?;
            con.set_read_timeout(Some(self.timeout))?;
            con.set_write_timeout(Some(self.timeout))?;
            self.con = Some(con);
        }
        Ok(self.con.as_mut().expect("just connected"))
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
