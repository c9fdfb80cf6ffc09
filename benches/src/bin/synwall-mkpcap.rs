//! Writes the benchmark traffic mix, or a flood from many customers, as a
//! pcap, and optionally a matching `customers_file`.
//!
//! ```text
//! synwall-mkpcap --out mix.pcap [--frames 1024] [--sizes 64|imix]
//!                [--malformed-pct 1] [--seed 1] [--customers 1000]
//!                [--syn-pct 5] [--mailers 8] [--layout bench|billing]
//!                [--customers-file customers.toml [--no-v6-prefixes]]
//! synwall-mkpcap --out flood.pcap (--flood N | --smtp-established N)
//!                [--frames max(8192, N)] [--seed 1] [--customers 1000000]
//!                [--layout bench|billing]
//! ```
//!
//! `--layout billing` lays the customer table out as a provider's billing
//! export has it (mixed /32../27 and /64../48, ids in no address order;
//! `synwall_benches::customers`); the pcap and the customers file must be
//! written with the same `--layout` and `--customers`.
//! `--syn-pct 15 --mailers 1000` is issue 26's busier mix.
//!
//! `--flood N`: SYNs to port 25 only, from N distinct customers drawn from
//! the whole `--customers` table; `--smtp-established N`: established SMTP
//! (ACK, ACK+PSH to port 25, 2 % SYNs) from N customers (`synwall_benches::flood`).
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use synwall_benches::customers::{Layout, LayoutKind, MAX_CUSTOMERS};
use synwall_benches::flood::{self, FloodSpec, Shape};
use synwall_benches::mix::{generate, MixSpec, Sizes};

/// What `synwall-mkpcap --help` opens with: what the command does, an
/// example, then [`USAGE`].
const ABOUT: &str = "synwall-mkpcap: writes synwall's benchmark traffic (the mix, or a flood \
from many customers) as a pcap, and optionally a matching customers file.

Example: synwall-mkpcap --out mix.pcap --frames 8192 --sizes imix
";

const USAGE: &str = "usage: synwall-mkpcap [--out FILE.pcap] [--frames N] [--sizes 64|imix] \
[--malformed-pct P] [--seed S] [--customers N] [--syn-pct P] [--mailers N] \
[--layout bench|billing] [--customers-file FILE.toml] [--no-v6-prefixes] \
[--flood ACTIVE | --smtp-established ACTIVE]";

/// Frames of a flood pcap when `--frames` is not given: at least this
/// many, and at least one per active customer.
const FLOOD_MIN_FRAMES: usize = 8192;

struct Args {
    out: Option<String>,
    spec: MixSpec,
    customers_file: Option<String>,
    v6_prefixes: bool,
    /// `--flood` / `--smtp-established`: the shape and the active customers.
    flood: Option<(Shape, u32)>,
    frames_given: bool,
    customers_given: bool,
}

/// The arguments; `None` for `--help`.
fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        out: None,
        spec: MixSpec::default(),
        customers_file: None,
        v6_prefixes: true,
        flood: None,
        frames_given: false,
        customers_given: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => args.out = Some(value()?),
            "--frames" => {
                args.spec.frames = value()?.parse().map_err(|e| format!("--frames: {e}"))?;
                args.frames_given = true;
            }
            "--flood" | "--smtp-established" => {
                if args.flood.is_some() {
                    return Err("--flood and --smtp-established exclude each other".into());
                }
                let shape = if flag == "--flood" {
                    Shape::Syn
                } else {
                    Shape::SmtpEstablished
                };
                let n: u32 = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
                if n == 0 {
                    return Err(format!("{flag}: at least 1 active customer"));
                }
                args.flood = Some((shape, n));
            }
            "--sizes" => {
                args.spec.sizes = match value()?.as_str() {
                    "64" | "min" => Sizes::Min,
                    "imix" => Sizes::Imix,
                    other => return Err(format!("--sizes: {other:?} is not 64 or imix")),
                }
            }
            "--malformed-pct" => {
                args.spec.malformed_pct = value()?
                    .parse()
                    .map_err(|e| format!("--malformed-pct: {e}"))?;
                if !(0.0..=20.0).contains(&args.spec.malformed_pct) {
                    return Err("--malformed-pct must be within 0..=20".into());
                }
            }
            "--seed" => args.spec.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--customers" => {
                args.spec.customers = value()?.parse().map_err(|e| format!("--customers: {e}"))?;
                if args.spec.customers == 0 || args.spec.customers > MAX_CUSTOMERS {
                    return Err(format!("--customers must be within 1..={MAX_CUSTOMERS}"));
                }
                args.customers_given = true;
            }
            "--syn-pct" => {
                args.spec.syn_pct = value()?.parse().map_err(|e| format!("--syn-pct: {e}"))?;
                if !(5.0..=50.0).contains(&args.spec.syn_pct) {
                    return Err("--syn-pct must be within 5..=50".into());
                }
            }
            "--mailers" => {
                args.spec.mailers = value()?.parse().map_err(|e| format!("--mailers: {e}"))?;
                if !(1..=1000).contains(&args.spec.mailers) {
                    return Err("--mailers must be within 1..=1000".into());
                }
            }
            "--layout" => {
                let v = value()?;
                args.spec.layout = LayoutKind::parse(&v).ok_or_else(|| {
                    format!("--layout: {v:?} is not bench, billing or billing-sorted")
                })?;
            }
            "--customers-file" => args.customers_file = Some(value()?),
            "--no-v6-prefixes" => args.v6_prefixes = false,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.out.is_none() && args.customers_file.is_none() {
        return Err(format!("nothing to do\n{USAGE}"));
    }
    if let Some((_, n)) = args.flood {
        let mix = MixSpec::default();
        if args.spec.sizes != Sizes::Min
            || args.spec.malformed_pct != mix.malformed_pct
            || args.spec.syn_pct != mix.syn_pct
            || args.spec.mailers != mix.mailers
        {
            return Err("--sizes, --malformed-pct, --syn-pct and --mailers are for the mix; a flood is 64 B frames, none malformed".into());
        }
        // A flood is played against the big table unless told otherwise.
        if !args.customers_given {
            args.spec.customers = 1_000_000;
        }
        if n > args.spec.customers {
            return Err(format!(
                "{n} active customers, but only {} in the table (--customers)",
                args.spec.customers
            ));
        }
        if !args.frames_given {
            args.spec.frames = FLOOD_MIN_FRAMES.max(n as usize);
        }
    }
    if args.spec.frames < 100 {
        return Err("--frames must be at least 100".into());
    }
    Ok(Some(args))
}

fn run(args: &Args) -> Result<(), String> {
    if let Some(out) = &args.out {
        let (frames, describe) = match args.flood {
            None => {
                let mix = generate(&args.spec);
                let d = mix.describe();
                (mix.frames, d)
            }
            Some((shape, active)) => {
                let layout = Layout::new(args.spec.layout, args.spec.customers);
                let f = flood::generate_in(
                    &FloodSpec {
                        shape,
                        frames: args.spec.frames,
                        active,
                        customers: args.spec.customers,
                        seed: args.spec.seed,
                    },
                    &layout,
                );
                let d = f.describe();
                (f.frames, d)
            }
        };
        synwall_dataplane::pcap::write_pcap(out, &frames)
            .map_err(|e| format!("writing {out}: {e}"))?;
        println!("{out}: {describe}");
    }
    if let Some(path) = &args.customers_file {
        let file = std::fs::File::create(path).map_err(|e| format!("creating {path}: {e}"))?;
        let mut w = BufWriter::new(file);
        Layout::new(args.spec.layout, args.spec.customers)
            .write_customers_toml(&mut w, args.v6_prefixes)
            .and_then(|()| w.flush())
            .map_err(|e| format!("writing {path}: {e}"))?;
        println!(
            "{path}: {} customers, {} layout",
            args.spec.customers,
            args.spec.layout.name()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{ABOUT}\n{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("synwall-mkpcap: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synwall-mkpcap: {e}");
            ExitCode::from(2)
        }
    }
}
