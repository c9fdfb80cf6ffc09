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
use crate::verdict::Policy;

/// One customer set: its classifier, the policy it is judged by (so that a
/// reload's exempt destinations reach every worker with the same swap), and
/// one shard per worker.
#[derive(Debug)]
pub struct Generation {
    /// Increases by one per swap.
    pub number: u64,
    pub classifier: Arc<Classifier>,
    pub policy: Arc<Policy>,
    /// Indexed by worker.
    pub shards: Vec<Arc<WorkerShard>>,
    /// The NUMA node of each worker, where its shard lives (`None`: wherever
    /// the allocating thread is).
    pub nodes: Vec<Option<u32>>,
}

/// The published generation, shared by the control plane (writer) and the
/// workers (readers).
pub type SharedGeneration = Arc<ArcSwap<Generation>>;

impl Generation {
    /// A generation with fresh shards for `workers` workers, placed
    /// anywhere.
    pub fn new(
        number: u64,
        classifier: Arc<Classifier>,
        policy: Arc<Policy>,
        workers: usize,
    ) -> Generation {
        Generation::on_nodes(number, classifier, policy, vec![None; workers])
    }

    /// A generation with a fresh shard for each worker, on that worker's
    /// NUMA node (`nodes[i]` for worker `i`).
    pub fn on_nodes(
        number: u64,
        classifier: Arc<Classifier>,
        policy: Arc<Policy>,
        nodes: Vec<Option<u32>>,
    ) -> Generation {
        let customers = classifier.customers();
        Generation {
            number,
            classifier,
            policy,
            shards: nodes
                .iter()
                .map(|&node| Arc::new(WorkerShard::on_node(customers, node)))
                .collect(),
            nodes,
        }
    }

    /// The generation after this one: the same workers on the same nodes,
    /// fresh shards for `classifier`'s customers, judged by `policy`.
    pub fn next(&self, classifier: Arc<Classifier>, policy: Arc<Policy>) -> Generation {
        Generation::on_nodes(self.number + 1, classifier, policy, self.nodes.clone())
    }

    /// Publishes `gen` as the first generation.
    pub fn share(gen: Generation) -> SharedGeneration {
        Arc::new(ArcSwap::from_pointee(gen))
    }
}
