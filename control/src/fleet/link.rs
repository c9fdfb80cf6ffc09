//! Redis I/O off the control thread: one thread per node, fed whole rounds
//! through a channel and answering through another, so a tick never waits
//! on Redis. At most one round is in flight; a round that takes longer
//! than the node's timeout is answered with errors.
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::time::Duration;
use synwall_dataplane::CustomerId;

use super::cluster::{NodeReport, Router};
use super::node::{CallError, Health};
use super::script::{Call, Reply};

/// What a call in a round is about, so that its answer finds its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A lease call (or a peek) for this customer.
    Lease(CustomerId),
    /// A read of this customer's notes (after a resubscription).
    Notes(CustomerId),
    /// A block, unblock or set-limit this appliance announces: kept (by
    /// this id) until Redis has taken it.
    Announce(u64),
    /// A release: the answer is not needed (a lost one is charged).
    Other,
}

/// A round's calls, each with the caller's tag.
pub type Round = Vec<(Tag, Call)>;
/// A round's answers, same tags, plus the round trip, the nodes' health
/// folded into one (any up, any lost state, the longest quarantine), and
/// each node's own report.
pub type Answers = (
    Vec<(Tag, Result<Reply, CallError>)>,
    Duration,
    Health,
    Vec<NodeReport>,
);

/// The control thread's end of the Redis thread.
pub struct Link {
    url: String,
    to: Sender<Round>,
    from: Receiver<Answers>,
    in_flight: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.url)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl Link {
    /// Starts the thread for the nodes at `urls` (one: standalone; several:
    /// Cluster seeds). Fails only if the thread cannot be started.
    pub fn start(
        urls: &[String],
        timeout: Duration,
        quarantine_ms: u64,
    ) -> Result<Link, redis::RedisError> {
        let mut router = Router::new(urls, timeout, quarantine_ms);
        let (to, rounds) = channel::<Round>();
        let (answers, from) = channel::<Answers>();
        std::thread::Builder::new()
            .name("synwall-fleet".into())
            .spawn(move || {
                for round in rounds {
                    let (tags, calls): (Vec<Tag>, Vec<Call>) = round.into_iter().unzip();
                    let started = std::time::Instant::now();
                    let (replies, healths) = router.round(&calls);
                    let rtt = started.elapsed();
                    let health =
                        healths
                            .iter()
                            .filter(|r| r.asked)
                            .fold(Health::default(), |a, r| Health {
                                up: a.up || r.health.up,
                                lost_state: a.lost_state || r.health.lost_state,
                                quarantine_ms: a.quarantine_ms.max(r.health.quarantine_ms),
                            });
                    let out = tags.into_iter().zip(replies).collect();
                    if answers.send((out, rtt, health, healths)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| {
                redis::RedisError::from(std::io::Error::other(format!(
                    "starting the fleet thread: {e}"
                )))
            })?;
        Ok(Link {
            url: urls.join(","),
            to,
            from,
            in_flight: false,
        })
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether a round is on its way.
    pub fn busy(&self) -> bool {
        self.in_flight
    }

    /// Hands a round to the thread; `false` (and nothing sent) while the
    /// last one is still in flight, or if the thread is gone.
    pub fn send(&mut self, round: Round) -> bool {
        if self.in_flight || round.is_empty() {
            return false;
        }
        self.in_flight = self.to.send(round).is_ok();
        self.in_flight
    }

    /// The answers to the round in flight, if they are in.
    pub fn poll(&mut self) -> Option<Answers> {
        match self.from.try_recv() {
            Ok(a) => {
                self.in_flight = false;
                Some(a)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.in_flight = false;
                None
            }
        }
    }
}

/// The pub/sub channel the script announces blocks and unblocks on.
pub const CHANNEL: &str = "synwall:blocks";

/// What an appliance announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// A block.
    Block,
    /// An unblock (the windows are forgiven).
    Unblock,
    /// An operator's new limit for the window of this length.
    Limit {
        /// The window's length.
        window_ms: u64,
        /// The new limit.
        value: u64,
    },
}

/// A block, unblock or new limit announced by an appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// What.
    pub said: Said,
    /// The customer.
    pub customer: String,
    /// The appliance that made it.
    pub app: String,
    /// The server's clock when it was made, µs (0: not said).
    pub version: u64,
    /// Read from the customer's notes after a resubscription, not heard:
    /// it may be one this appliance missed, or one long applied.
    pub noted: bool,
}

impl Announcement {
    /// Parses `block {c:NAME}:b APP`, `unblock {c:NAME}:b APP` and
    /// `limit {c:NAME}:b APP WINDOW_MS VALUE`, each optionally followed by
    /// its version; `None` for anything else.
    pub fn parse(text: &str) -> Option<Announcement> {
        let mut it = text.split(' ');
        let verb = it.next()?;
        let key = it.next()?;
        let customer = key.strip_prefix("{c:")?.strip_suffix("}:b")?.to_owned();
        let app = it.next()?.to_owned();
        let said = match verb {
            "block" => Said::Block,
            "unblock" => Said::Unblock,
            "limit" => Said::Limit {
                window_ms: it.next()?.parse().ok()?,
                value: it.next()?.parse().ok()?,
            },
            _ => return None,
        };
        let version = match it.next() {
            Some(v) => v.parse().ok()?,
            None => 0,
        };
        if it.next().is_some() {
            return None;
        }
        Some(Announcement {
            said,
            customer,
            app,
            version,
            noted: false,
        })
    }
}

/// What the subscriber thread tells the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A (re)subscription: whatever was said while unsubscribed was
    /// missed, and is to be read from the notes.
    Subscribed,
    /// An announcement.
    Said(Announcement),
}

/// How often the subscriber pings: a connection that stops answering
/// (a stalled or unreachable Redis) is dropped and subscribed afresh.
const PING_EVERY: Duration = Duration::from_secs(1);

/// Listens on [`CHANNEL`] on a thread of its own, on the first of `urls`
/// that answers (a Cluster broadcasts every publish to all its nodes),
/// trying the next every half second while none does, until `stop`.
/// Every subscription is reported ([`Heard::Subscribed`]); a connection
/// that breaks, or does not answer a PING within half a second, is
/// dropped and subscribed afresh.
pub fn subscribe(
    urls: &[String],
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Receiver<Heard>, redis::RedisError> {
    use std::sync::atomic::Ordering::Relaxed;
    let clients = urls
        .iter()
        .map(|u| redis::Client::open(u.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let (tx, rx) = channel();
    let spawned = std::thread::Builder::new()
        .name("synwall-fleet-sub".into())
        .spawn(move || {
            let mut next = 0usize;
            while !stop.load(Relaxed) {
                let client = &clients[next % clients.len()];
                next += 1;
                let con = client.get_connection_with_timeout(Duration::from_secs(1));
                let Ok(mut con) = con else {
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                };
                let mut ps = con.as_pubsub();
                if ps.subscribe(CHANNEL).is_err()
                    || ps
                        .set_read_timeout(Some(Duration::from_millis(500)))
                        .is_err()
                {
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                if tx.send(Heard::Subscribed).is_err() {
                    return;
                }
                let mut pinged = std::time::Instant::now();
                while !stop.load(Relaxed) {
                    if pinged.elapsed() >= PING_EVERY {
                        pinged = std::time::Instant::now();
                        if ps.ping::<redis::Value>().is_err() {
                            break;
                        }
                    }
                    match ps.get_message() {
                        Ok(msg) => {
                            let text: String = msg.get_payload().unwrap_or_default();
                            if let Some(a) = Announcement::parse(&text) {
                                if tx.send(Heard::Said(a)).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) if e.is_timeout() => {}
                        Err(_) => break,
                    }
                }
            }
        });
    spawned.map_err(|e| {
        redis::RedisError::from(std::io::Error::other(format!(
            "starting the fleet subscriber: {e}"
        )))
    })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse() {
        assert_eq!(
            Announcement::parse("block {c:acme}:b edge-a"),
            Some(Announcement {
                said: Said::Block,
                customer: "acme".into(),
                app: "edge-a".into(),
                version: 0,
                noted: false,
            })
        );
        assert_eq!(
            Announcement::parse("limit {c:a}:b x 300000 50 1764670000123456")
                .unwrap()
                .version,
            1_764_670_000_123_456
        );
        assert_eq!(
            Announcement::parse("unblock {c:a.b}:b x").unwrap().said,
            Said::Unblock
        );
        assert_eq!(
            Announcement::parse("limit {c:a}:b x 300000 50")
                .unwrap()
                .said,
            Said::Limit {
                window_ms: 300_000,
                value: 50
            }
        );
        for bad in [
            "",
            "block",
            "block acme x",
            "nope {c:a}:b x",
            "block {c:a}:b",
            "limit {c:a}:b x 300000",
            "limit {c:a}:b x 5m 50",
            "block {c:a}:b x v1",
            "block {c:a}:b x 1 2",
        ] {
            assert_eq!(Announcement::parse(bad), None, "{bad}");
        }
    }
}
