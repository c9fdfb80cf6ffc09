//! The fleet's budget rules: several appliances enforce one limit per
//! customer through a shared store.
//!
//! Each appliance spends a floor of every limit (`floor × limit /
//! appliances`) with no call to the store, through the plane's own
//! windows and grants; the rest, `limit − Σ floors`, lives in the store,
//! and an appliance whose customer needs more than its floor leases part
//! of it. [`local`] is this appliance's side (floors, leases, what to ask);
//! [`lease`] is the door to the store: the calls and answers of a round
//! and the [`lease::LeaseLink`] trait the `synwall-fleet` crate implements
//! over Redis, on threads of its own, so that a slow store never stalls a
//! tick.
pub mod lease;
pub mod local;

pub use local::{FleetLocal, FleetMetrics, FleetStats, RemoteBlock};
