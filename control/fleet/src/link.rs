//! Redis I/O off the control thread: one thread per node, fed whole rounds
//! through a channel and answering through another, so a tick never waits
//! on Redis. At most one round is in flight; a round that takes longer
//! than the node's timeout is answered with errors.
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use synwall_config::Fleet;
pub use synwall_engine::fleet::lease::{Announcement, Answers, Heard, Round, Said, Tag};
use synwall_engine::fleet::lease::{Call, LeaseConnector, LeaseLink, Subscription};

use crate::cluster::Router;
use crate::node::Health;

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

impl LeaseLink for Link {
    fn busy(&self) -> bool {
        Link::busy(self)
    }

    fn send(&mut self, round: Round) -> bool {
        Link::send(self, round)
    }

    fn poll(&mut self) -> Option<Answers> {
        Link::poll(self)
    }
}

/// The fleet's links over Redis: a [`Link`] for the rounds and a
/// [`Subscriber`] for the announcements, each on threads of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redis;

impl LeaseConnector for Redis {
    fn link(&self, fleet: &Fleet, quarantine_ms: u64) -> Result<Box<dyn LeaseLink>, String> {
        Link::start(&fleet.redis, fleet.timeout, quarantine_ms)
            .map(|l| Box::new(l) as Box<dyn LeaseLink>)
            .map_err(|e| e.to_string())
    }

    fn subscribe(&self, fleet: &Fleet) -> Result<Box<dyn Subscription>, String> {
        let stop = Arc::new(AtomicBool::new(false));
        subscribe(&fleet.redis, stop.clone())
            .map(|heard| Box::new(Subscriber { heard, stop }) as Box<dyn Subscription>)
            .map_err(|e| e.to_string())
    }
}

/// The subscriber thread's end on the control thread; dropping it stops
/// the thread.
#[derive(Debug)]
pub struct Subscriber {
    heard: Receiver<Heard>,
    stop: Arc<AtomicBool>,
}

impl Subscription for Subscriber {
    fn try_next(&mut self) -> Option<Heard> {
        self.heard.try_recv().ok()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// The pub/sub channel the script announces blocks and unblocks on.
pub const CHANNEL: &str = "synwall:blocks";

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
    stop: Arc<AtomicBool>,
) -> Result<Receiver<Heard>, redis::RedisError> {
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
