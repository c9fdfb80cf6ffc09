//! synwall-gen: the testpmd-style traffic generator bench.
//!
//! ```text
//! synwall-gen --config PROFILE.toml MODE [options]
//!   MODE: run | ndr | latency | verify
//!   --report PATH          JSON report (config, environment, every trial)
//!   --out PCAP             also write the profile's trace (and PCAP.expect.json)
//!   --queues N             tx/rx queue pairs per port (overrides [dpdk] queues)
//!   --cores LIST           generator lcores, e.g. 1,2 (overrides [dpdk] cores):
//!                          one per queue pair (tx+rx) or two (tx, rx)
//!   --hold                 run/ndr/latency: when done, stop polling and keep
//!                          the ports attached until stdin closes
//! run:     [--rate PPS|max] [--duration SECS]
//! ndr:     [--trial SECS] [--pdr-loss RATIO] [--precision RATIO] [--max-rate PPS]
//!          [--min-rate PPS] [--max-trials N] [--no-calibration]
//! latency: [--rate PPS (the NDR; searched when absent)] [--probe-rate PPS] [--duration SECS]
//! verify:  [--synwall BIN] [--appliance-config FILE] [--workdir DIR]
//!          [--appliance-duration SECS]
//! ```
//! Exit status: 0 success, 1 verify found a discrepancy, 2 bad usage or
//! profile, 3 a run failed.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{json, Value};
use synwall_benches::engine::{
    probe_frame, Generator, Templates, TrialResult, TrialSpec, NO_CUSTOMER,
};
use synwall_benches::ndr::{search, Device, SearchSpec, Trial};
use synwall_benches::profile::{parse_lcores, Profile};
use synwall_benches::traffic::{build, Label, Trace};
use synwall_benches::verify::{self, VerifyOptions};
use synwall_benches::{appliance, report};

enum Failure {
    Usage(String),
    Run(String),
    Verify,
}

struct Args {
    config: PathBuf,
    mode: Option<String>,
    /// Each option given, by the name typed (`--rate`); flags map to "".
    opts: BTreeMap<String, String>,
}

/// The command line, parsed by [`synwall_benches::cli::command`]: `--help`
/// and usage errors end the process there (exit 0 and 2).
fn parse_args() -> Args {
    let m = synwall_benches::cli::command().get_matches();
    let mut opts = BTreeMap::new();
    for id in m.ids().map(|id| id.as_str()) {
        if !id.starts_with("--") || id == "--config" {
            continue;
        }
        if let Ok(Some(v)) = m.try_get_one::<String>(id) {
            opts.insert(id.to_owned(), v.clone());
        } else if m.get_flag(id) {
            opts.insert(id.to_owned(), String::new());
        }
    }
    Args {
        config: PathBuf::from(m.get_one::<String>("--config").cloned().unwrap_or_default()),
        mode: m.get_one::<String>("mode").cloned(),
        opts,
    }
}

impl Args {
    fn num(&self, key: &str, default: f64) -> Result<f64, Failure> {
        match self.opts.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| Failure::Usage(format!("{key}: {v:?} is not a number >= 0"))),
        }
    }

    fn rate(&self, default: f64) -> Result<f64, Failure> {
        match self.opts.get("--rate").map(String::as_str) {
            Some("max") => Ok(0.0),
            _ => self.num("--rate", default),
        }
    }
}

fn templates(trace: &Trace) -> Arc<Templates> {
    Arc::new(Templates {
        frames: trace.frames.clone(),
        syn_of: trace
            .labels
            .iter()
            .map(|l| match l {
                Label::Syn(c) => *c as u32,
                Label::Background(_) => NO_CUSTOMER,
            })
            .collect(),
        probe: probe_frame(),
    })
}

/// What an invalid trial means, in words; empty for a valid one.
fn shortfall(r: &TrialResult) -> String {
    if r.valid {
        return String::new();
    }
    format!(
        "\n  [not a measurement at the asked rate: the generator itself offered only {:.1} % of it \
         (its lcore was preempted or too slow; 'pacer behind' counts the gaps it gave up); \
         the figures above are for what it offered]",
        r.offered_pps * 100.0 / r.spec.rate_pps.max(1e-9)
    )
}

fn print_trial(label: &str, r: &TrialResult) {
    let secs = r.elapsed.max(1e-9);
    println!(
        "{label}: asked {} | offered {:.4} Mpps, tx {} ({:.3} Gbps), rx {} ({:.4} Mpps), loss {:.6} %, unsent {}, alloc_fail {}, pacer behind {}x{}",
        if r.spec.rate_pps > 0.0 {
            format!("{:.4} Mpps", r.spec.rate_pps / 1e6)
        } else {
            "max".to_owned()
        },
        r.offered_pps / 1e6,
        r.tx_packets,
        (r.tx_bytes + 24 * r.tx_packets) as f64 * 8.0 / secs / 1e9,
        r.rx_packets,
        r.rx_packets as f64 / secs / 1e6,
        r.loss_ratio * 100.0,
        r.tx_unsent,
        r.alloc_fail,
        r.behind,
        shortfall(r)
    );
    if r.lanes.len() > 1 {
        for l in &r.lanes {
            println!(
                "  queue {} (tx lcore {}, rx lcore {}, {} frames): offered {:.4} Mpps, tx {}, rx {}, unsent {}, alloc_fail {}, behind {}",
                l.queue,
                l.tx_lcore,
                l.rx_lcore,
                l.frames,
                (l.tx_packets + l.tx_unsent) as f64 / secs / 1e6,
                l.tx_packets,
                l.rx_packets,
                l.tx_unsent,
                l.alloc_fail,
                l.behind
            );
        }
    }
    if let Some(l) = &r.latency {
        println!(
            "  latency over {} probes: min {} ns, p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
            l.probes, l.min_ns, l.p50_ns, l.p90_ns, l.p99_ns, l.p999_ns, l.max_ns
        );
    }
}

/// What run, ndr and latency work from. The generator a mode starts
/// lives in `held`, which outlives the mode (and its errors), so that
/// `--hold` can keep the ports attached after it.
struct Job<'a> {
    args: &'a Args,
    profile: &'a Profile,
    trace: &'a Trace,
    held: &'a mut Option<Generator>,
}

/// Starts the generator into `held`.
fn start<'a>(
    held: &'a mut Option<Generator>,
    profile: &Profile,
    calibration: bool,
) -> Result<&'a mut Generator, Failure> {
    Ok(held.insert(Generator::start(profile, calibration).map_err(Failure::Run)?))
}

fn mode_run(job: Job) -> Result<Value, Failure> {
    let (args, profile, trace, held) = (job.args, job.profile, job.trace, job.held);
    let rate = args.rate(0.0)?;
    let duration = args.num("--duration", 10.0)?;
    let gen = start(held, profile, false)?;
    let (tx, rx) = gen.port_names();
    let lanes = gen.lanes().to_vec();
    println!(
        "run: {tx} -> {rx}, {} for {duration} s, {} queue pair(s): {}",
        if rate > 0.0 {
            format!("{rate} pps")
        } else {
            "max rate".into()
        },
        lanes.len(),
        lanes
            .iter()
            .map(|l| if l.tx_lcore == l.rx_lcore {
                format!("q{} on lcore {}", l.queue, l.tx_lcore)
            } else {
                format!(
                    "q{} tx lcore {} rx lcore {}",
                    l.queue, l.tx_lcore, l.rx_lcore
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let before = socket_views(profile);
    let r = gen
        .trial(
            &TrialSpec {
                rate_pps: rate,
                duration,
                probe_every: 0,
                classify: true,
                print: true,
                calibration: false,
            },
            &templates(trace),
        )
        .map_err(Failure::Run)?;
    print_trial("run", &r);
    let after = socket_views(profile);
    // SYNs each customer was sent: what the tx queues took, counted by
    // the tx lcores.
    let mut rows = Vec::new();
    for (i, c) in profile.customers.iter().enumerate() {
        let sent = r.syns_tx[i];
        let seen_delta = match (&before, &after) {
            (Some(b), Some(a)) => a[i].as_ref().ok().zip(b[i].as_ref().ok()).map(|(a, b)| {
                (
                    a.seen.saturating_sub(b.seen),
                    a.forwarded.saturating_sub(b.forwarded),
                )
            }),
            _ => None,
        };
        println!(
            "  customer {:<14} SYNs sent {:>10} received {:>10}{}",
            c.name,
            sent,
            r.syns[i],
            seen_delta.map_or(String::new(), |(s, f)| format!(
                "  synwall (socket) seen +{s} forwarded +{f}"
            ))
        );
        rows.push(
            json!({"customer": c.name, "sent": sent, "received": r.syns[i],
                         "socket_seen_delta": seen_delta.map(|d| d.0),
                         "socket_forwarded_delta": seen_delta.map(|d| d.1)}),
        );
    }
    // SYNs synwall dropped by verdict are not loss: take them out.
    let verdict_drops: Option<u64> = rows
        .iter()
        .map(|r| {
            let s = r["socket_seen_delta"].as_u64()?;
            let f = r["socket_forwarded_delta"].as_u64()?;
            Some(s.saturating_sub(f))
        })
        .sum();
    if let Some(d) = verdict_drops {
        let lost = r.offered.saturating_sub(r.rx_packets).saturating_sub(d);
        println!(
            "  synwall dropped {d} SYNs by verdict (control socket); frames lost beyond verdicts: {lost} ({:.4} %)",
            lost as f64 * 100.0 / r.offered.max(1) as f64
        );
    }
    Ok(
        json!({"mode": "run", "ports": [tx, rx], "trials": [r], "customers": rows,
              "verdict_drops": verdict_drops}),
    )
}

type Views = Vec<Result<appliance::SocketView, String>>;

fn socket_views(profile: &Profile) -> Option<Views> {
    let sock = profile.appliance.socket.as_ref()?;
    Some(
        profile
            .customers
            .iter()
            .map(|c| appliance::customer_view(sock, &c.name))
            .collect(),
    )
}

struct Dut<'a> {
    gen: &'a mut Generator,
    templates: Arc<Templates>,
    trial_secs: f64,
    calibration: bool,
    all: Vec<TrialResult>,
}

impl Device for Dut<'_> {
    fn trial(&mut self, rate: f64) -> Result<Trial, String> {
        let r = self.gen.trial(
            &TrialSpec {
                rate_pps: rate,
                duration: self.trial_secs,
                probe_every: 0,
                classify: false,
                print: false,
                calibration: self.calibration,
            },
            &self.templates,
        )?;
        print_trial(
            if self.calibration {
                "  calibration trial"
            } else {
                "  trial"
            },
            &r,
        );
        let t = Trial {
            rate,
            offered: r.offered,
            received: r.rx_packets,
            valid: r.valid,
        };
        self.all.push(r);
        Ok(t)
    }
}

fn search_spec(args: &Args, max_rate: f64) -> Result<SearchSpec, Failure> {
    Ok(SearchSpec {
        max_rate,
        min_rate: args.num("--min-rate", 1000.0)?,
        precision: args.num("--precision", 0.02)?,
        pdr_loss: args
            .opts
            .get("--loss-ratio")
            .map_or(args.num("--pdr-loss", 0.001), |_| {
                args.num("--loss-ratio", 0.001)
            })?,
        max_trials: args.num("--max-trials", 20.0)? as usize,
    })
}

/// Calibration (generator looped to itself), then NDR and PDR through the
/// device under test. Returns the report part and the NDR.
fn ndr_with(
    args: &Args,
    gen: &mut Generator,
    trace: &Trace,
) -> Result<(Value, Option<f64>), Failure> {
    let trial_secs = args.num("--trial", 2.0)?;
    let tpl = templates(trace);
    let mut cal_dev = Dut {
        gen,
        templates: tpl.clone(),
        trial_secs,
        calibration: true,
        all: Vec::new(),
    };
    let calibrated = if args.opts.contains_key("--no-calibration") {
        None
    } else {
        println!(
            "calibration: the generator looped to itself ({})",
            synwall_benches::engine::CALIBRATION_PORT
        );
        let t = cal_dev.trial(0.0).map_err(Failure::Run)?;
        Some(t.offered as f64 / trial_secs)
    };
    let cal_trials = std::mem::take(&mut cal_dev.all);
    let gen = cal_dev.gen;
    let max_rate = match (args.opts.get("--max-rate"), calibrated) {
        (Some(_), _) => args.num("--max-rate", 1e6)?,
        (None, Some(c)) => c,
        (None, None) => return Err(Failure::Usage("--no-calibration needs --max-rate".into())),
    };
    let spec = search_spec(args, max_rate)?;
    let mut dut = Dut {
        gen,
        templates: tpl,
        trial_secs,
        calibration: false,
        all: Vec::new(),
    };
    println!(
        "ndr: binary search from {:.4} Mpps, {trial_secs} s trials, precision {}",
        max_rate / 1e6,
        spec.precision
    );
    let ndr = search(&mut dut, &spec, 0.0).map_err(Failure::Run)?;
    println!("pdr: loss ratio <= {}", spec.pdr_loss);
    let pdr = search(&mut dut, &spec, spec.pdr_loss).map_err(Failure::Run)?;
    let show = |name: &str, f: &synwall_benches::ndr::Found| {
        println!(
            "{name}: {}{}",
            f.rate.map_or(
                if f.trials.iter().any(|t| t.1 == "fail") {
                    "none (every valid trial lost frames)".to_owned()
                } else {
                    "none (no valid trial: the generator could not offer the rates)".to_owned()
                },
                |r| format!("{:.4} Mpps ({:.0} pps)", r / 1e6, r)
            ),
            if f.generator_bound {
                "  [bound by the generator, not the device]"
            } else {
                ""
            }
        )
    };
    if let Some(c) = calibrated {
        println!("calibration: generator max {:.4} Mpps looped", c / 1e6);
    }
    show("NDR", &ndr);
    show(&format!("PDR({})", spec.pdr_loss), &pdr);
    Ok((
        json!({
            "calibration": {"max_pps": calibrated, "trials": cal_trials},
            "search": spec,
            "ndr": ndr,
            "pdr": pdr,
            "trials": dut.all,
        }),
        ndr.rate,
    ))
}

fn mode_ndr(job: Job) -> Result<Value, Failure> {
    let (args, profile, trace, held) = (job.args, job.profile, job.trace, job.held);
    let gen = start(held, profile, !args.opts.contains_key("--no-calibration"))?;
    let (mut v, _) = ndr_with(args, gen, trace)?;
    v["mode"] = json!("ndr");
    Ok(v)
}

fn mode_latency(job: Job) -> Result<Value, Failure> {
    let (args, profile, trace, held) = (job.args, job.profile, job.trace, job.held);
    let searched = !args.opts.contains_key("--rate");
    let gen = start(
        held,
        profile,
        searched && !args.opts.contains_key("--no-calibration"),
    )?;
    let (ndr_part, base) = if searched {
        let (v, r) = ndr_with(args, gen, trace)?;
        (
            v,
            r.ok_or_else(|| Failure::Run("no NDR found to take 10/50/90 % of".into()))?,
        )
    } else {
        (Value::Null, args.num("--rate", 0.0)?)
    };
    if base <= 0.0 {
        return Err(Failure::Usage("--rate must be > 0 for latency".into()));
    }
    let probe_rate = args.num("--probe-rate", 1000.0)?.max(1.0);
    let duration = args.num("--duration", 5.0)?;
    let tpl = templates(trace);
    let mut trials = Vec::new();
    let mut table = Vec::new();
    for pct in [10.0, 50.0, 90.0] {
        let rate = base * pct / 100.0;
        let every = (rate / probe_rate).max(1.0) as u64;
        let r = gen
            .trial(
                &TrialSpec {
                    rate_pps: rate,
                    duration,
                    probe_every: every,
                    classify: false,
                    print: false,
                    calibration: false,
                },
                &tpl,
            )
            .map_err(Failure::Run)?;
        print_trial(&format!("latency at {pct} % of {:.4} Mpps", base / 1e6), &r);
        table.push(json!({"pct": pct, "rate_pps": rate, "latency": r.latency, "valid": r.valid}));
        trials.push(r);
    }
    Ok(
        json!({"mode": "latency", "base_pps": base, "ndr": ndr_part, "table": table, "trials": trials}),
    )
}

fn mode_verify(args: &Args, profile: &Profile, trace: &Trace) -> Result<(Value, bool), Failure> {
    let workdir = args
        .opts
        .get("--workdir")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("synwall-gen-verify-{}", std::process::id()))
        });
    let opts = VerifyOptions {
        workdir,
        synwall: args.opts.get("--synwall").map(PathBuf::from),
        appliance_config: args.opts.get("--appliance-config").map(PathBuf::from),
        duration: args.num("--appliance-duration", 3.0)?.max(1.0),
    };
    let run = verify::run(profile, trace, &opts).map_err(Failure::Run)?;
    print!("{}", run.verdict.table());
    println!("files: {}", run.workdir);
    let ok = run.verdict.ok;
    Ok((json!({"mode": "verify", "verify": run}), ok))
}

fn main() -> ExitCode {
    // `synwall-gen --write-docs DIR`: the man page and completion (scripts/package).
    if let Some(code) = synwall_dist::write_if_asked(synwall_benches::cli::command) {
        return code;
    }
    let args = parse_args();
    let mut held: Option<Generator> = None;
    let result = (|| {
        let mut profile = Profile::load(&args.config).map_err(|e| Failure::Usage(e.to_string()))?;
        let cores = args
            .opts
            .get("--cores")
            .map(|c| parse_lcores(c).map_err(|e| Failure::Usage(format!("--cores: {e}"))))
            .transpose()?;
        let queues = args
            .opts
            .get("--queues")
            .map(|q| {
                q.parse::<u16>()
                    .map_err(|_| Failure::Usage(format!("--queues: {q:?} is not a number")))
            })
            .transpose()?;
        if cores.is_some() || queues.is_some() {
            profile
                .dpdk
                .set_lanes(cores, queues)
                .map_err(|e| Failure::Usage(format!("--cores/--queues: {e}")))?;
        }
        let trace = build(&profile);
        println!(
            "profile {}: {}",
            args.config.display(),
            trace.describe(&profile)
        );
        if let Some(out) = args.opts.get("--out") {
            verify::write_trace(PathBuf::from(out).as_path(), &profile, &trace)
                .map_err(Failure::Run)?;
            println!("wrote {out} and its expectations");
        }
        let Some(mode) = args.mode.as_deref() else {
            return Ok(());
        };
        let (part, ok) = match mode {
            "run" | "ndr" | "latency" => {
                let job = Job {
                    args: &args,
                    profile: &profile,
                    trace: &trace,
                    held: &mut held,
                };
                let part = match mode {
                    "run" => mode_run(job)?,
                    "ndr" => mode_ndr(job)?,
                    _ => mode_latency(job)?,
                };
                (part, true)
            }
            _ => mode_verify(&args, &profile, &trace)?,
        };
        if let Some(path) = args.opts.get("--report") {
            let full = json!({
                "profile": profile,
                "trace": {
                    "frames": trace.frames.len(),
                    "flows": trace.flows,
                    "mean_wire_bytes": trace.mean_wire_size(),
                    "describe": trace.describe(&profile),
                },
                "environment": report::environment(),
                "result": part,
                "pass": ok,
            });
            report::write(PathBuf::from(path).as_path(), &full).map_err(Failure::Run)?;
            println!("report: {path}");
        }
        if ok {
            Ok(())
        } else {
            Err(Failure::Verify)
        }
    })();
    let code = match result {
        Ok(()) => 0,
        Err(Failure::Verify) => 1,
        Err(Failure::Usage(e)) => {
            eprintln!("synwall-gen: {e}");
            2
        }
        Err(Failure::Run(e)) => {
            eprintln!("synwall-gen: {e}");
            3
        }
    };
    if let Some(gen) = held.take() {
        if args.opts.contains_key("--hold") {
            hold(code);
        }
        // Stops and closes the ports: the peer sees them go only now.
        drop(gen);
    }
    ExitCode::from(code)
}

/// `--hold`: every lcore has stopped polling (each trial joins its lanes);
/// the ports stay attached until stdin ends, so that a memif peer can be
/// stopped before this side disconnects (DPDK 22.11's memif PMD unmaps a
/// disconnected peer's rings under a poller, which then crashes).
fn hold(code: u8) {
    println!(
        "synwall-gen: holding the ports (not polling) until stdin closes (--hold); exit status then: {code}"
    );
    if let Err(e) = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink()) {
        eprintln!("synwall-gen: --hold: reading stdin: {e}; releasing the ports");
    }
}
