//! Routing lease calls over Redis nodes: one standalone node, or the
//! masters of a Redis Cluster, found from the seed URLs with `CLUSTER
//! SLOTS` and addressed by each customer's hash slot.
//!
//! synwall routes by itself over plain connections rather than through
//! the `redis` crate's `ClusterConnection`: that client's pipelines refuse
//! `EVALSHA` and fail a whole pipeline on one node's error, where the fleet
//! needs one pipeline per node per round and a dead master to cost only
//! its own customers (they fall back to their floors).
use std::time::Duration;

use redis::Value;

use crate::node::{CallError, Node};
use crate::script::{keys, Call, Reply};
pub use synwall_engine::fleet::lease::NodeReport;

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM, the Cluster's key hash.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of `key` (its `{hash tag}` if it has a non-empty one).
pub fn slot(key: &str) -> u16 {
    let tagged = key.find('{').and_then(|s| {
        let rest = &key[s + 1..];
        rest.find('}').filter(|&e| e > 0).map(|e| &rest[..e])
    });
    crc16(tagged.unwrap_or(key).as_bytes()) % SLOTS
}

/// A master's URL and the slot ranges it serves.
type Master = (String, Vec<(u16, u16)>);

/// A round's answers, in call order, and the health of each node asked.
pub type RoundResult = (Vec<Result<Reply, CallError>>, Vec<NodeReport>);

/// One node and the slot ranges it serves.
struct Routed {
    node: Node,
    ranges: Vec<(u16, u16)>,
}

/// Where lease calls go.
pub struct Router {
    seeds: Vec<String>,
    timeout: Duration,
    quarantine_ms: u64,
    cluster: bool,
    nodes: Vec<Routed>,
    /// Re-read the topology before the next round (a redirection, a dead
    /// node, or never read yet).
    stale: bool,
    /// The last topology error.
    pub error: Option<String>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("seeds", &self.seeds)
            .field("nodes", &self.urls())
            .finish()
    }
}

impl Router {
    /// A router for `urls`: one = standalone, several = Cluster seeds.
    pub fn new(urls: &[String], timeout: Duration, quarantine_ms: u64) -> Router {
        Router {
            seeds: urls.to_vec(),
            timeout,
            quarantine_ms,
            cluster: urls.len() > 1,
            nodes: Vec::new(),
            stale: true,
            error: None,
        }
    }

    /// Whether this is a Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The nodes in use.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.node.url().to_owned()).collect()
    }

    fn node(&self, url: &str) -> Result<Node, CallError> {
        let mut n = Node::new(url, self.timeout).map_err(|e| CallError::Unreachable {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        n.quarantine_ms = self.quarantine_ms;
        Ok(n)
    }

    /// Reads the topology: the standalone node, or the masters from the
    /// first seed (or known node) that answers `CLUSTER SLOTS`.
    fn refresh(&mut self) {
        if !self.cluster {
            if self.nodes.is_empty() {
                match self.node(&self.seeds[0]) {
                    Ok(node) => self.nodes.push(Routed {
                        node,
                        ranges: vec![(0, SLOTS - 1)],
                    }),
                    Err(e) => self.error = Some(e.to_string()),
                }
            }
            self.stale = false;
            return;
        }
        let mut candidates: Vec<String> = self.urls();
        candidates.extend(self.seeds.iter().cloned());
        for url in candidates {
            let Ok(mut seed) = self.node(&url) else {
                continue;
            };
            let reply = seed.command(redis::cmd("CLUSTER").arg("SLOTS"));
            match reply
                .map_err(|e| e.to_string())
                .and_then(|v| parse_slots(&v))
            {
                Ok(masters) => {
                    let mut old: Vec<Routed> = std::mem::take(&mut self.nodes);
                    for (url, ranges) in masters {
                        // Keep a known node's connection and epoch.
                        let node = match old.iter().position(|r| r.node.url() == url) {
                            Some(i) => old.swap_remove(i).node,
                            None => match self.node(&url) {
                                Ok(n) => n,
                                Err(_) => continue,
                            },
                        };
                        let mut node = node;
                        node.set_health_tag(&tag_for(&ranges));
                        self.nodes.push(Routed { node, ranges });
                    }
                    self.stale = false;
                    self.error = None;
                    return;
                }
                Err(e) => self.error = Some(format!("{url}: CLUSTER SLOTS: {e}")),
            }
        }
    }

    /// The node serving `customer`'s keys.
    pub fn node_of(&self, customer: &str) -> Option<usize> {
        let s = slot(&keys(customer)[0]);
        self.nodes
            .iter()
            .position(|r| r.ranges.iter().any(|&(a, b)| (a..=b).contains(&s)))
    }

    /// One round: one pipeline per node, then each node's health. Calls
    /// on a node that lost its state (or is quarantined) are answered
    /// [`CallError::Quarantined`]; calls whose slot has no node, or whose
    /// node is down, fail alone. Returns the answers in order and a
    /// report on each known node (its health if it was asked).
    pub fn round(&mut self, calls: &[Call]) -> RoundResult {
        if self.stale {
            self.refresh();
        }
        let mut out: Vec<Option<Result<Reply, CallError>>> = vec![None; calls.len()];
        let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (i, c) in calls.iter().enumerate() {
            match self.node_of(&c.customer) {
                Some(n) => by_node[n].push(i),
                None => {
                    out[i] = Some(Err(CallError::Unreachable {
                        url: self.seeds.join(","),
                        message: self
                            .error
                            .clone()
                            .unwrap_or_else(|| "no node serves this slot".into()),
                    }));
                    self.stale = true;
                }
            }
        }
        let mut healths = Vec::new();
        for (n, idx) in by_node.into_iter().enumerate() {
            if idx.is_empty() {
                healths.push(NodeReport {
                    url: self.nodes[n].node.url().to_owned(),
                    ..NodeReport::default()
                });
                continue;
            }
            let these: Vec<Call> = idx.iter().map(|&i| calls[i].clone()).collect();
            let node = &mut self.nodes[n].node;
            let started = std::time::Instant::now();
            let mut replies = node.round(&these);
            let rtt = started.elapsed();
            let health = node.health();
            if health.up && (health.lost_state || health.quarantine_ms > 0) {
                for r in &mut replies {
                    *r = Err(CallError::Quarantined {
                        url: node.url().to_owned(),
                        left_ms: health.quarantine_ms,
                    });
                }
            }
            for r in &replies {
                match r {
                    Err(CallError::Refused { moved: Some(_), .. }) => self.stale = true,
                    Err(CallError::Unreachable { .. }) if self.cluster => self.stale = true,
                    _ => {}
                }
            }
            healths.push(NodeReport {
                url: node.url().to_owned(),
                health,
                rtt,
                error: replies
                    .iter()
                    .find_map(|r| r.as_ref().err().map(|e| e.to_string())),
                asked: true,
            });
            for (i, r) in idx.into_iter().zip(replies) {
                out[i] = Some(r);
            }
        }
        let out = out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(CallError::Unreachable {
                        url: String::new(),
                        message: "not sent".into(),
                    })
                })
            })
            .collect();
        (out, healths)
    }
}

/// A hash tag whose slot is in `ranges`, for the node's own epoch and
/// quarantine keys.
fn tag_for(ranges: &[(u16, u16)]) -> String {
    (0u32..)
        .map(|i| format!("n{i}"))
        .find(|t| {
            let s = slot(t);
            ranges.iter().any(|&(a, b)| (a..=b).contains(&s))
        })
        .unwrap_or_default()
}

/// The masters and their slot ranges from a `CLUSTER SLOTS` reply.
fn parse_slots(v: &Value) -> Result<Vec<Master>, String> {
    let Value::Array(entries) = v else {
        return Err(format!("not an array: {v:?}"));
    };
    let mut masters: Vec<Master> = Vec::new();
    for e in entries {
        let Value::Array(f) = e else {
            return Err(format!("entry not an array: {e:?}"));
        };
        let (Some(Value::Int(a)), Some(Value::Int(b)), Some(Value::Array(m))) =
            (f.first(), f.get(1), f.get(2))
        else {
            return Err(format!("bad entry: {e:?}"));
        };
        let host = match m.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            other => return Err(format!("bad host: {other:?}")),
        };
        let Some(Value::Int(port)) = m.get(1) else {
            return Err(format!("bad port: {m:?}"));
        };
        let (Ok(a), Ok(b)) = (u16::try_from(*a), u16::try_from(*b)) else {
            return Err(format!("bad slots: {a} {b}"));
        };
        if a > b || b >= SLOTS {
            return Err(format!("bad slots: {a} {b}"));
        }
        let url = format!("redis://{host}:{port}");
        match masters.iter_mut().find(|(u, _)| *u == url) {
            Some((_, r)) => r.push((a, b)),
            None => masters.push((url, vec![(a, b)])),
        }
    }
    if masters.is_empty() {
        return Err("no slots served".into());
    }
    Ok(masters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // The Cluster spec's check value, and slots redis-cli reports.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        let k = keys("acme");
        assert!(k.iter().all(|key| slot(key) == slot(&k[0])));
    }

    #[test]
    fn bad_slot_replies_are_errors() {
        assert!(parse_slots(&Value::Int(1)).is_err());
        assert!(parse_slots(&Value::Array(vec![])).is_err());
        assert!(parse_slots(&Value::Array(vec![Value::Array(vec![
            Value::Int(5),
            Value::Int(1),
            Value::Array(vec![Value::BulkString(b"h".to_vec()), Value::Int(1)])
        ])]))
        .is_err());
    }
}
