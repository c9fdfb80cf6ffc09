//! `synwall`: the inline appliance.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use synwall_config::Config;
use synwall_control::appliance::{self, ApplianceError, RunOptions};
use synwall_control::console;
use synwall_control::summary::Summary;

/// jemalloc, not glibc malloc: each reload reads the customers file and
/// builds the classifier on a thread of its own and frees the old
/// generation on another, so glibc spreads a generation's small
/// allocations over per-thread arenas and keeps what it freed (120 reloads
/// of 100k customers: 227 -> 506 or 853 MiB anonymous, growing in steps;
/// 335 MiB even with `MALLOC_ARENA_MAX=1`). jemalloc purges freed pages
/// of every arena back to the kernel after its decay time (10 s): 87 MiB
/// after the same 120 reloads (`scripts/reload-rss`; BENCHMARKS.md,
/// "Memory across reloads").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What `synwall --help` opens with: what the command does, then an example.
const ABOUT: &str = "synwall: the inline appliance: counts outbound TCP SYNs to SMTP per customer \
and blocks customers over their limits, on DPDK ports.

Example: synwall --config /etc/synwall/synwall.toml   (--check: only validate it)";

/// The command line (its help text is [`ABOUT`], not the crate's description).
#[derive(Parser, Debug)]
#[command(name = "synwall", version, about = ABOUT, long_about = None)]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration and exit (0: valid).
    #[arg(long)]
    check: bool,
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Write the final counters as JSON to this path on exit.
    #[arg(long, value_name = "PATH")]
    summary_json: Option<PathBuf>,
    /// Start with no saved state when the snapshot in state_dir is
    /// unreadable or corrupt (default: refuse to start, naming the file).
    #[arg(long)]
    fresh_state: bool,
}

fn main() -> ExitCode {
    // A hook's supervisor (synwall starts its own binary for each hook).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv
        .get(1)
        .is_some_and(|a| a == synwall_control::supervise::FLAG)
    {
        return match argv.get(2) {
            Some(program) => synwall_control::supervise::supervise(program, &argv[3..]),
            None => ExitCode::from(127),
        };
    }
    // `synwall --write-docs DIR`: the man page and completion (scripts/package).
    if let Some(code) = synwall_dist::write_if_asked(Args::command) {
        return code;
    }
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synwall: {e}");
            return ExitCode::from(2);
        }
    };
    for warning in config.warnings() {
        eprintln!("synwall: {}: warning: {warning}", config.path.display());
    }
    let problems = synwall_control::preflight::problems(&config);
    if !problems.is_empty() {
        for why in &problems {
            eprintln!("synwall: {}: {why}", config.path.display());
        }
        return ExitCode::from(2);
    }
    if args.check {
        // The classifier build is part of validation: it is what the
        // dataplane would reject.
        if let Err(e) = synwall_control::setup::classifier(&config.customers) {
            eprintln!("synwall: {}: {e}", config.path.display());
            return ExitCode::from(2);
        }
        for (what, dir) in synwall_engine::dirs::of_config(&config) {
            if let Err(e) = synwall_engine::dirs::check(what, dir) {
                eprintln!("synwall: {}: {e}", config.path.display());
                return ExitCode::from(2);
            }
        }
        println!(
            "{}: ok ({} links, {} worker cores, {} customers, {} windows)",
            config.path.display(),
            config.links.len(),
            config.dpdk.cores.len(),
            config.customers.len(),
            config.windows.len()
        );
        return ExitCode::SUCCESS;
    }
    let duration = match args.duration {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            eprintln!("synwall: --duration must be a positive number of seconds");
            return ExitCode::from(2);
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("synwall: installing the signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let reload = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()) {
        eprintln!("synwall: installing the SIGHUP handler: {e}");
        return ExitCode::FAILURE;
    }
    let opts = RunOptions {
        fresh_state: args.fresh_state,
        reload,
        duration,
        stats_interval: config.control.stats_interval,
        stop,
    };
    let code = report(&args, appliance::run(&config, opts));
    // What is still queued for stdout and stderr, unless nobody reads them.
    console::flush(EXIT_FLUSH);
    code
}

/// How long the last lines may take to be written at exit.
const EXIT_FLUSH: Duration = Duration::from_secs(2);

/// Writes the summary file and the last line (through the console queue,
/// after the run's own lines); the exit code.
fn report(args: &Args, result: Result<Summary, ApplianceError>) -> ExitCode {
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            console::err(format!("synwall: {e}"));
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.summary_json {
        let text = match serde_json::to_string_pretty(&summary) {
            Ok(t) => t,
            Err(e) => {
                console::err(format!("synwall: encoding the summary: {e}"));
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(path, text + "\n") {
            console::err(format!(
                "synwall: writing the summary to {}: {e}",
                path.display()
            ));
            return ExitCode::FAILURE;
        }
    }
    let v = summary.verdicts;
    console::out(format!(
        "synwall: stopped after {:.1}s: rx {} forwarded {} reverse {} blocked {} reset {} malformed-dropped {} tx-full {}",
        summary.elapsed_secs,
        v.rx,
        v.forwarded,
        v.reverse_forwarded,
        v.dropped_blocked,
        v.reset_sent,
        v.dropped_malformed,
        v.tx_full
    ));
    ExitCode::SUCCESS
}
