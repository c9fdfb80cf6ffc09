//! Redis I/O off the control thread: one thread per node, fed whole rounds
//! through a channel and answering through another, so a tick never waits
//! on Redis. At most one round is in flight; a round that takes longer
//! than the node's timeout is answered with errors.
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::time::Duration;

use super::cluster::Router;
use super::node::{CallError, Health};
use super::script::{Call, Reply};

/// A round's calls, each with the caller's tag.
pub type Round = Vec<(u32, Call)>;
/// A round's answers, same tags, plus the round trip and the node's health.
pub type Answers = (Vec<(u32, Result<Reply, CallError>)>, Duration, Health);

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
                    let (tags, calls): (Vec<u32>, Vec<Call>) = round.into_iter().unzip();
                    let started = std::time::Instant::now();
                    let (replies, healths) = router.round(&calls);
                    let rtt = started.elapsed();
                    let health = healths.iter().fold(Health::default(), |a, (_, h)| Health {
                        up: a.up || h.up,
                        lost_state: a.lost_state || h.lost_state,
                        quarantine_ms: a.quarantine_ms.max(h.quarantine_ms),
                    });
                    let out = tags.into_iter().zip(replies).collect();
                    if answers.send((out, rtt, health)).is_err() {
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

/// A block or unblock announced by an appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// `true`: block; `false`: unblock.
    pub block: bool,
    /// The customer.
    pub customer: String,
    /// The appliance that made it.
    pub app: String,
}

impl Announcement {
    /// Parses `block {c:NAME}:b APP`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Announcement> {
        let mut it = text.split(' ');
        let block = match it.next()? {
            "block" => true,
            "unblock" => false,
            _ => return None,
        };
        let key = it.next()?;
        let customer = key.strip_prefix("{c:")?.strip_suffix("}:b")?.to_owned();
        let app = it.next()?.to_owned();
        Some(Announcement {
            block,
            customer,
            app,
        })
    }
}

/// Listens on [`CHANNEL`] on a thread of its own, on the first of `urls`
/// that answers (a Cluster broadcasts every publish to all its nodes),
/// trying the next every half second while none does, until `stop`.
pub fn subscribe(
    urls: &[String],
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Receiver<Announcement>, redis::RedisError> {
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
                while !stop.load(Relaxed) {
                    match ps.get_message() {
                        Ok(msg) => {
                            let text: String = msg.get_payload().unwrap_or_default();
                            if let Some(a) = Announcement::parse(&text) {
                                if tx.send(a).is_err() {
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
                block: true,
                customer: "acme".into(),
                app: "edge-a".into()
            })
        );
        assert!(!Announcement::parse("unblock {c:a.b}:b x").unwrap().block);
        for bad in [
            "",
            "block",
            "block acme x",
            "nope {c:a}:b x",
            "block {c:a}:b",
        ] {
            assert_eq!(Announcement::parse(bad), None, "{bad}");
        }
    }
}
