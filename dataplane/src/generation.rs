//! The customer set the workers classify against, swapped RCU-style.
//!
//! A reload that changes customers builds a new [`Generation`] (classifier
//! and per-core shards sized for the new set) and publishes it with one
//! atomic pointer swap. Each worker picks it up at the start of its next
//! poll round and records the generation number it finished a round with in
//! its `WorkerStats::generation`; once every worker has passed the new
//! number, no worker touches the old generation any more and the control
//! plane reads its final counters and retires it. No frame is lost or
//! stalled: workers never wait for the control plane.
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::classify::Classifier;
use crate::shard::WorkerShard;

/// One customer set: its classifier and one shard per worker.
#[derive(Debug)]
pub struct Generation {
    /// Increases by one per swap.
    pub number: u64,
    pub classifier: Arc<Classifier>,
    /// Indexed by worker.
    pub shards: Vec<Arc<WorkerShard>>,
}

/// The published generation, shared by the control plane (writer) and the
/// workers (readers).
pub type SharedGeneration = Arc<ArcSwap<Generation>>;

impl Generation {
    /// A generation with fresh shards for `workers` workers.
    pub fn new(number: u64, classifier: Arc<Classifier>, workers: usize) -> Generation {
        let customers = classifier.customers();
        Generation {
            number,
            classifier,
            shards: (0..workers)
                .map(|_| Arc::new(WorkerShard::new(customers)))
                .collect(),
        }
    }

    /// Publishes `gen` as the first generation.
    pub fn share(gen: Generation) -> SharedGeneration {
        Arc::new(ArcSwap::from_pointee(gen))
    }
}
