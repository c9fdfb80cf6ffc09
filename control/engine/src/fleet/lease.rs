//! The lease link: the one door between the fleet's budget logic
//! ([`super::local`]) and the store the fleet shares (Redis, in the
//! `synwall-fleet` crate). The engine says what a round asks and reads
//! what it answered; whoever implements [`LeaseLink`] carries rounds to
//! the store off the control thread, and [`Subscription`] brings the other
//! appliances' announcements in.
use std::time::Duration;

use synwall_config::Fleet;
use synwall_dataplane::CustomerId;

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

/// The control thread's end of the link to the shared store: one round in
/// flight at most, never waited on.
pub trait LeaseLink: Send + std::fmt::Debug {
    /// Whether a round is on its way.
    fn busy(&self) -> bool;
    /// Hands a round over; `false` (and nothing sent) while the last one
    /// is still in flight, or if the link is gone.
    fn send(&mut self, round: Round) -> bool;
    /// The answers to the round in flight, if they are in.
    fn poll(&mut self) -> Option<Answers>;
}

/// The other appliances' announcements as they are heard; dropping it
/// stops listening.
pub trait Subscription: Send + std::fmt::Debug {
    /// The next thing heard, if any (never waits).
    fn try_next(&mut self) -> Option<Heard>;
}

/// Opens the links of a `[fleet]`: called once, at the first tick of a
/// plane that has a fleet (a plane built and dropped by a reload opens
/// none).
pub trait LeaseConnector: Send + Sync + std::fmt::Debug {
    /// The link that carries lease rounds; `quarantine_ms` is how long a
    /// node that lost its state is distrusted (the longest window).
    fn link(&self, fleet: &Fleet, quarantine_ms: u64) -> Result<Box<dyn LeaseLink>, String>;
    /// The subscription to the fleet's announcements.
    fn subscribe(&self, fleet: &Fleet) -> Result<Box<dyn Subscription>, String>;
}

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
    /// The node lost its state, or is quarantined since it did: its
    /// answers are not trusted (floors only).
    #[error("{url}: quarantined ({left_ms} ms left): the node lost its state")]
    Quarantined {
        /// The node.
        url: String,
        /// What is left of the quarantine.
        left_ms: u64,
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

/// What a round learnt about the node itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// The node answered.
    pub up: bool,
    /// Its epoch changed since this appliance first saw it: it lost its
    /// state (restarted without persistence, or failed over to a replica
    /// that missed writes).
    pub lost_state: bool,
    /// A quarantine is in force on the node: what is left of it (ms).
    pub quarantine_ms: u64,
}

/// How one node did in a round.
#[derive(Debug, Clone, Default)]
pub struct NodeReport {
    /// The node.
    pub url: String,
    /// Its health after the round.
    pub health: Health,
    /// Its pipeline's round trip.
    pub rtt: Duration,
    /// The first error one of its calls got.
    pub error: Option<String>,
    /// Whether the round asked it (a master none of the round's customers
    /// live on is only named, so the fleet view lists every master).
    pub asked: bool,
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
