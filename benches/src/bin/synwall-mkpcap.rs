//! Writes the benchmark traffic mix as a pcap, and optionally a matching
//! `customers_file`.
//!
//! ```text
//! synwall-mkpcap --out mix.pcap [--frames 1024] [--sizes 64|imix]
//!                [--malformed-pct 1] [--seed 1] [--customers 1000]
//!                [--customers-file customers.toml [--no-v6-prefixes]]
//! ```
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use synwall_benches::customers::{write_customers_toml, MAX_CUSTOMERS};
use synwall_benches::mix::{generate, MixSpec, Sizes};

const USAGE: &str = "usage: synwall-mkpcap [--out FILE.pcap] [--frames N] [--sizes 64|imix] \
[--malformed-pct P] [--seed S] [--customers N] [--customers-file FILE.toml] [--no-v6-prefixes]";

struct Args {
    out: Option<String>,
    spec: MixSpec,
    customers_file: Option<String>,
    v6_prefixes: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: None,
        spec: MixSpec::default(),
        customers_file: None,
        v6_prefixes: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => args.out = Some(value()?),
            "--frames" => {
                args.spec.frames = value()?.parse().map_err(|e| format!("--frames: {e}"))?
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
            }
            "--customers-file" => args.customers_file = Some(value()?),
            "--no-v6-prefixes" => args.v6_prefixes = false,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.out.is_none() && args.customers_file.is_none() {
        return Err(format!("nothing to do\n{USAGE}"));
    }
    if args.spec.frames < 100 {
        return Err("--frames must be at least 100".into());
    }
    Ok(args)
}

fn run(args: &Args) -> Result<(), String> {
    if let Some(out) = &args.out {
        let mix = generate(&args.spec);
        synwall_dataplane::pcap::write_pcap(out, &mix.frames)
            .map_err(|e| format!("writing {out}: {e}"))?;
        println!("{out}: {}", mix.describe());
    }
    if let Some(path) = &args.customers_file {
        let file = std::fs::File::create(path).map_err(|e| format!("creating {path}: {e}"))?;
        let mut w = BufWriter::new(file);
        write_customers_toml(&mut w, args.spec.customers, args.v6_prefixes)
            .and_then(|()| w.flush())
            .map_err(|e| format!("writing {path}: {e}"))?;
        println!("{path}: {} customers", args.spec.customers);
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synwall-mkpcap: {e}");
            ExitCode::from(2)
        }
    }
}
