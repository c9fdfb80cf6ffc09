//! synwall-bench: the bench driver. `scripts/bench-dataplane`,
//! `bench-million`, `bench-fleet` and `bench-gen` build and exec its
//! subcommand of the same name; `synwall-bench report` writes
//! `docs/performance.md` from the JSON results.
#![forbid(unsafe_code)]
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use synwall_benches::bench::{dataplane, fleet, gen, million, performance};

#[derive(Parser, Debug)]
#[command(
    name = "synwall-bench",
    about = "synwall's bench driver: runs the benches, writes their JSON and docs/performance.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The whole appliance on one worker core against dpdk-testpmd, back to
    /// back on net_pcap -> net_null (scripts/bench-dataplane).
    Dataplane(Box<dataplane::Args>),
    /// A million customers: start-up, memory and tick cost (scripts/bench-million).
    Million(million::Args),
    /// The fleet on loopback Redis: Redis load, and the dataplane with
    /// [fleet] off and on (scripts/bench-fleet).
    Fleet(fleet::Args),
    /// synwall-gen's benches: verify, its loop ceiling, memif, and the
    /// latency synwall adds against dpdk-testpmd (scripts/bench-gen).
    Gen(gen::Args),
    /// Writes docs/performance.md from bench results (--json).
    Report(performance::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Cmd::Dataplane(a) => dataplane::run(*a).map(|(_, ok)| ok),
        Cmd::Million(a) => million::run(a).map(|(_, ok)| ok),
        Cmd::Fleet(a) => fleet::run(a).map(|(_, ok)| ok),
        Cmd::Gen(a) => gen::run(a).map(|(_, ok)| ok),
        Cmd::Report(a) => performance::run(&a).map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("synwall-bench: {e}");
            ExitCode::from(2)
        }
    }
}
