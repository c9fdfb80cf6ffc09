//! Redis I/O off the control thread: one thread per node, fed whole rounds
//! through a channel and answering through another, so a tick never waits
//! on Redis. At most one round is in flight; a round that takes longer
//! than the node's timeout is answered with errors.
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::time::Duration;

use super::node::{CallError, Node};
use super::script::{Call, Reply};

/// A round's calls, each with the caller's tag.
pub type Round = Vec<(u32, Call)>;
/// A round's answers, same tags, plus the round trip.
pub type Answers = (Vec<(u32, Result<Reply, CallError>)>, Duration);

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
    /// Starts the thread for the node at `url`. Fails only on a URL the
    /// client cannot parse (the config validates the form).
    pub fn start(url: &str, timeout: Duration) -> Result<Link, redis::RedisError> {
        let mut node = Node::new(url, timeout)?;
        let (to, rounds) = channel::<Round>();
        let (answers, from) = channel::<Answers>();
        std::thread::Builder::new()
            .name("synwall-fleet".into())
            .spawn(move || {
                for round in rounds {
                    let (tags, calls): (Vec<u32>, Vec<Call>) = round.into_iter().unzip();
                    let started = std::time::Instant::now();
                    let replies = node.round(&calls);
                    let out = tags.into_iter().zip(replies).collect();
                    if answers.send((out, started.elapsed())).is_err() {
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
            url: url.to_owned(),
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
