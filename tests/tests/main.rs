//! synwall's end-to-end tests, one binary: each module is an area, and
//! each test runs the real `synwall` / `synwallctl` / `synwall-gen` binaries
//! (on DPDK virtual devices, in network namespaces the test makes, against
//! real redis-server, gobgpd and Prometheus on loopback).
//!
//! One binary instead of one per file: on a 2-core box the suite spent a
//! large share of its time linking 29 test executables, and each binary's
//! last slow test left a core idle. Run one area with
//! `cargo test --release -p synwall-tests --test e2e -- <area>::`.
//!
//! A new file in this directory must be declared below:
//! `every_file_here_is_a_module` fails otherwise, so no test is silently
//! left out of the build.

mod adversarial;
mod affinity;
mod capture;
mod careless_input;
mod check;
mod control_plane;
mod demo;
mod docs;
mod event_log;
mod exempt;
mod faults;
mod fleet;
mod fleet_script;
mod flowspec;
mod forwarding;
mod fuzz_corpus;
mod gen;
mod history;
mod hostile_clients;
mod hostile_files;
mod malformed;
mod multi_worker;
mod netns;
mod operator;
mod persistence;
mod prometheus;
mod protocol_doc;
mod reload;
mod reset;
mod scope;
mod shapes;
mod soak;
mod systemd;

/// Cargo builds only `main.rs` here (`autotests = false`), so a test file
/// that is not declared above would never compile or run.
#[test]
fn every_file_here_is_a_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = include_str!("main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("reading tests/tests") {
        let name = entry.expect("reading tests/tests").file_name();
        let name = name.to_string_lossy();
        if let Some(module) = name.strip_suffix(".rs") {
            if module != "main" && !main.contains(&format!("\nmod {module};\n")) {
                missing.push(name.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tests/tests/main.rs does not declare {missing:?}: add `mod <name>;` for each"
    );
}
