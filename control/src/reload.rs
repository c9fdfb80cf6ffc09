//! A reload in three steps, none of which stops the control loop:
//!
//! 1. **Reading** ([`prepare`]): the config and its customers file are read
//!    and the classifier built on a thread of their own (seconds at a
//!    million customers). It touches nothing of the running appliance.
//! 2. **Hand-over** ([`HandOver`]): the new generation (classifier and
//!    shards, seeded with grants and block bits) is published, and each
//!    worker picks it up at its next burst. The control loop polls the
//!    hand-over on each turn ([`HandOver::poll`]): as a worker moves, its
//!    old shard is final and what it had left of each carried customer's
//!    allowance moves to its new shard. Meanwhile requests are answered as
//!    usual; only ticks wait (the plane still speaks the old ids and the
//!    workers count on both generations), and the one that was due runs as
//!    the hand-over ends.
//! 3. **Finish** (`ControlThread`): once every worker has moved, or the
//!    [`HAND_OVER_DEADLINE`] has passed (the stragglers are reported; their
//!    new grants stay 0 until the next tick), the old shards are read to the
//!    last SYN, the plane is reconfigured onto the new shards, and the
//!    callers are answered.
//!
//! A reload asked for while one is under way runs after it ([`Asked`]), so
//! that it reads the files as they are by then.
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde_json::{json, Value};
use synwall_config::{Config, Mode};
use synwall_dataplane::classify::{Classifier, CustomerId};
use synwall_dataplane::generation::{Generation, SharedGeneration};
use synwall_dataplane::shard::WorkerStats;

use crate::setup::placed_classifier;
use crate::socket::Request;
use synwall_engine::grant::{self, Carried};
use synwall_engine::plane::ControlPlane;

/// How a reload event names a SIGHUP (the sender is not known).
pub const SIGHUP_BY: &str = "signal SIGHUP";

/// How long a hand-over waits for every worker to move to the new
/// generation before it finishes without the stragglers.
pub const HAND_OVER_DEADLINE: Duration = Duration::from_secs(2);

/// A config read and its classifier built, ready to hand over.
pub struct Prepared {
    pub config: Config,
    pub classifier: Classifier,
}

/// Drops `value` on a short-lived thread of its own (or here, if no
/// thread can be started): freeing a million customers' worth of memory
/// (the plane or the config a reload replaced) takes long enough to delay
/// a tick.
pub fn drop_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("synwall-free".into())
        .spawn(move || drop(value));
}

/// The slow half of a reload: reads the config (and its customers file)
/// and builds the classifier. Touches nothing of the running appliance.
pub fn prepare(path: &Path) -> Result<Prepared, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let classifier = placed_classifier(&config).map_err(|e| e.to_string())?;
    Ok(Prepared { config, classifier })
}

/// The socket reply to a `reload` request.
pub fn reply(result: &Result<String, String>) -> Value {
    match result {
        Ok(message) => synwall_protocol::ok(json!({ "message": message })),
        Err(why) => synwall_protocol::error(why),
    }
}

/// What a reload cannot change on a running appliance.
pub fn restart_needed(old: &Config, new: &Config) -> Option<&'static str> {
    if old.dpdk != new.dpdk {
        Some("[dpdk]")
    } else if old.links != new.links {
        Some("[[link]]")
    } else if old.detect.ports != new.detect.ports || old.detect.malformed != new.detect.malformed {
        Some("[detect] ports/malformed")
    } else if old.block.action != new.block.action || old.block.scope != new.block.scope {
        Some("[block] action/scope")
    } else if old.flowspec != new.flowspec {
        Some("[flowspec]")
    } else if old.control.state_dir != new.control.state_dir
        || old.control.events != new.control.events
    {
        Some("[control] state_dir/events")
    } else if old.fleet != new.fleet {
        // Floors and leases in hand were sized by the old split.
        Some("[fleet]")
    } else {
        None
    }
}

/// Who asked for a reload: the `reload` requests to answer when it is
/// done, and every asker's name (callers, or the signal) for the event.
#[derive(Default)]
pub struct Asked {
    waiters: Vec<Request>,
    by: Vec<String>,
}

impl Asked {
    /// `waiter` (a `reload` request), or SIGHUP without one.
    pub fn one(waiter: Option<Request>) -> Asked {
        let by = match &waiter {
            Some(w) => w.caller.by(),
            None => SIGHUP_BY.to_owned(),
        };
        Asked {
            waiters: waiter.into_iter().collect(),
            by: vec![by],
        }
    }

    /// Asked by `by`, with no request to answer.
    pub fn by(by: &str) -> Asked {
        Asked {
            waiters: Vec::new(),
            by: vec![by.to_owned()],
        }
    }

    /// Adds `other`'s waiters, and its askers not named already.
    pub fn join(&mut self, other: Asked) {
        self.waiters.extend(other.waiters);
        for w in other.by {
            if !self.by.contains(&w) {
                self.by.push(w);
            }
        }
    }

    /// Whether anyone asked.
    pub fn any(&self) -> bool {
        !self.by.is_empty()
    }

    /// The askers, as the reload event names them.
    pub fn names(&self) -> String {
        self.by.join(", ")
    }

    /// Answers every waiter with `result`.
    pub fn answer(self, result: &Result<String, String>) {
        for w in self.waiters {
            w.answer(reply(result));
        }
    }
}

/// A reload being read on its own thread.
pub struct Reading {
    handle: std::thread::JoinHandle<Result<Prepared, String>>,
    pub asked: Asked,
}

impl Reading {
    /// Starts reading `path` on a thread of its own; gives `asked` back if
    /// no thread can be started.
    pub fn start(path: &Path, asked: Asked) -> Result<Reading, Asked> {
        let path = path.to_owned();
        match std::thread::Builder::new()
            .name("synwall-reload".into())
            .spawn(move || prepare(&path))
        {
            Ok(handle) => Ok(Reading { handle, asked }),
            Err(_) => Err(asked),
        }
    }

    /// Whether the reading is done.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// What the reading came to (waits for it).
    pub fn join(self) -> (Result<Prepared, String>, Asked) {
        let prepared = self.handle.join().unwrap_or_else(|_| {
            Err("reading the config failed unexpectedly (thread panicked)".into())
        });
        (prepared, self.asked)
    }
}

/// A published generation that the workers are moving to.
pub struct HandOver {
    pub old: Arc<Generation>,
    pub next: Arc<Generation>,
    pub config: Config,
    pub classifier: Arc<Classifier>,
    /// Enforced customers that stay enforced with the same limits: their
    /// per-core allowances move to the new shards.
    carried: Vec<Carried>,
    /// Workers (by index) that have moved and had their allowances carried.
    moved: Vec<bool>,
    deadline: Instant,
    pub asked: Asked,
}

impl HandOver {
    /// Builds the next generation for `new` from `old` (block bits and
    /// first grants in place, carried grants bounded by the old stamp) and
    /// publishes it to the workers through `generation`.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        plane: &ControlPlane,
        running: &Config,
        generation: &SharedGeneration,
        new: Prepared,
        workers: usize,
        now: u64,
        deadline: Duration,
        asked: Asked,
    ) -> HandOver {
        let Prepared {
            config: new,
            classifier,
        } = new;
        let classifier = Arc::new(classifier);
        let old = generation.load_full();
        let next = old.next(classifier.clone(), Arc::new(crate::setup::policy(&new)));
        let old_ids: FxHashMap<&str, CustomerId> = CustomerId::all(plane.customers())
            .filter_map(|id| plane.name(id).map(|n| (n, id)))
            .collect();
        let same_windows = running.windows == new.windows;
        let mut carried: Vec<Carried> = Vec::new();
        for c in &new.customers {
            let id = CustomerId::new(c.id);
            let old_id = old_ids.get(&*c.name).copied();
            let blocked = old_id.is_some_and(|id| plane.is_blocked(id)) || c.blocked;
            let enforce = new.effective_mode(c) == Mode::Enforce;
            let limits = new.effective_limits(c);
            // What a new customer may send before the first tick: its
            // smallest limit, split as a tick would (nothing else can have
            // spent any of it).
            let mut fresh_budget = 0;
            if enforce && !blocked {
                match old_id {
                    None => fresh_budget = limits.iter().copied().min().unwrap_or(0),
                    Some(old) => {
                        if same_windows && plane.enforced_limits(old) == Some(&limits[..]) {
                            let budget = (0..limits.len())
                                .map(|w| limits[w].saturating_sub(plane.count(old, w, now)))
                                .min()
                                .unwrap_or(0);
                            carried.push(Carried {
                                old,
                                new: id,
                                budget,
                            });
                        }
                    }
                }
            }
            grant::seed(id, enforce.then_some(fresh_budget), &next.shards);
            for s in &next.shards {
                s.set_blocked(id, blocked);
            }
        }
        drop(old_ids);
        // The new shards hold carried grants from the old: the old stamp
        // bounds them until the next tick stamps them.
        for (from, to) in old.shards.iter().zip(&next.shards) {
            to.set_grants_until(from.grants_until());
        }
        let next = Arc::new(next);
        generation.store(next.clone());
        HandOver {
            old,
            next,
            config: new,
            classifier,
            carried,
            moved: vec![false; workers],
            deadline: Instant::now() + deadline,
            asked,
        }
    }

    /// Carries the allowances of every worker that has moved since the last
    /// poll: its old shard is final, so what it had left of each carried
    /// customer's allowance goes to its new shard (never more than a tick
    /// would grant). Until then its new grants are 0, so no SYN is
    /// forwarded twice on one allowance. True once every worker has moved.
    pub fn poll(&mut self, stats: &[Arc<WorkerStats>]) -> bool {
        let k = self.next.shards.len() as u64;
        for (w, stats) in stats.iter().enumerate() {
            let Some(moved) = self.moved.get_mut(w) else {
                continue;
            };
            if *moved || stats.generation.load(Relaxed) < self.next.number {
                continue;
            }
            *moved = true;
            if let (Some(from), Some(to)) = (self.old.shards.get(w), self.next.shards.get(w)) {
                grant::carry(from, to, &self.carried, k, w);
            }
        }
        self.moved.iter().all(|&m| m)
    }

    /// Whether the deadline for the workers to move has passed.
    pub fn overdue(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Workers (by index) that have not moved.
    pub fn stragglers(&self) -> Vec<usize> {
        (0..self.moved.len()).filter(|&w| !self.moved[w]).collect()
    }
}
