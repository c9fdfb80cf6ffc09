//! `synwall-bench`, the bench driver: what the bench scripts used to compute
//! in bash and inline Python (once-a-second rates, medians after warm-up,
//! the worker's CPU share, idle waits, A/B rounds, the tables, the JSON
//! result) written once, and the subcommands that use it. The scripts under
//! `scripts/` are thin wrappers that build and exec it.
pub mod dataplane;
pub mod fleet;
pub mod host;
pub mod inputs;
pub mod million;
pub mod performance;
pub mod rates;
pub mod result;
pub mod rounds;
pub mod sampled;
pub mod stats;
