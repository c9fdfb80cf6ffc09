//! What the dataplane is built from a config: the policy, the classifier,
//! and where (which NUMA node) its tables go. Used at start (`appliance`)
//! and on reload (`operator`); needs no EAL.
use synwall_config::{Config, LcoreChoice};
use synwall_dataplane::classify::{Classifier, ClassifierError};
use synwall_dataplane::parse::WatchedPorts;
use synwall_dataplane::verdict::{BlockAction, BlockScope, MalformedPolicy, Policy};
pub use synwall_engine::classifier::classifier;
use synwall_engine::classifier::classifier_on;

/// The dataplane policy the config describes.
pub fn policy(config: &Config) -> Policy {
    Policy {
        watched: WatchedPorts::new(&config.detect.ports).exempting(
            config
                .detect
                .exempt_destinations
                .iter()
                .map(|p| (p.addr, p.len)),
        ),
        action: match config.block.action {
            synwall_config::BlockAction::Drop => BlockAction::Drop,
            synwall_config::BlockAction::Reset => BlockAction::Reset,
        },
        scope: match config.block.scope {
            synwall_config::BlockScope::Syn => BlockScope::Syn,
            synwall_config::BlockScope::Smtp => BlockScope::Smtp,
        },
        malformed: match config.detect.malformed {
            synwall_config::MalformedPolicy::Forward => MalformedPolicy::Forward,
            synwall_config::MalformedPolicy::Drop => MalformedPolicy::Drop,
        },
    }
}

/// The classifier of `config`'s customers, its tables on the NUMA node of
/// the workers that read them.
pub fn placed_classifier(config: &Config) -> Result<Classifier, ClassifierError> {
    classifier_on(shared_node(&worker_nodes(config)), &config.customers)
}

/// The NUMA node of each worker core, where its shard is placed: worker
/// lcore N runs on CPU N unless the EAL arguments map lcores to CPUs
/// themselves (`--lcores=`), and then the kernel places the memory.
pub fn worker_nodes(config: &Config) -> Vec<Option<u32>> {
    let mapped = config.dpdk.lcores == LcoreChoice::Mapped;
    config
        .dpdk
        .cores
        .iter()
        .map(|&c| {
            if mapped {
                None
            } else {
                synwall_dpdk::cpu_node(c as u32)
            }
        })
        .collect()
}

/// The node every worker is on, if they share one: where the classifier
/// they all read is placed.
pub fn shared_node(nodes: &[Option<u32>]) -> Option<u32> {
    let first = *nodes.first()?;
    nodes.iter().all(|&n| n == first).then_some(first)?
}
