//! synwall-gen's command line: one clap definition that parses it and that
//! its man page and bash completion are generated from (`synwall-gen
//! --write-docs DIR`).
//!
//! Options keep their `--name` as id, so the binary reads them by the name
//! an operator types.
use clap::{Arg, ArgAction, Command};

/// What `synwall-gen --help` opens with.
const ABOUT: &str = "synwall-gen: the traffic generator bench: sends customer and background \
traffic through synwall (or any DPDK device) and measures rate, loss and latency.

Example: synwall-gen --config benches/profiles/memif-gen.toml run --rate 20000 --duration 10";

/// The modes, in the order the help lists them.
pub const MODES: [&str; 4] = ["run", "ndr", "latency", "verify"];

/// `(mode, --option, value name, help)` of every valued option; `mode` is
/// the help heading ("" for options every mode takes).
const VALUED: [(&str, &str, &str, &str); 18] = [
    (
        "",
        "--queues",
        "N",
        "Tx/rx queue pairs per port (overrides [dpdk] queues).",
    ),
    (
        "",
        "--cores",
        "LIST",
        "Generator lcores, e.g. 1,2 (overrides [dpdk] cores): one per queue pair (tx+rx) or two (tx, rx).",
    ),
    (
        "",
        "--report",
        "PATH",
        "Write a JSON report (profile, environment, every trial).",
    ),
    (
        "",
        "--out",
        "PCAP",
        "Also write the profile's trace and PCAP.expect.json (no MODE needed).",
    ),
    (
        "run",
        "--rate",
        "PPS",
        "Frames per second, or max (run; latency: the NDR, searched when absent).",
    ),
    (
        "run",
        "--duration",
        "SECS",
        "How long to send (run: 10, latency: 5).",
    ),
    ("ndr", "--trial", "SECS", "Length of one trial [default: 2]."),
    (
        "ndr",
        "--pdr-loss",
        "RATIO",
        "Loss ratio a partial-drop-rate trial may have [default: 0.001].",
    ),
    (
        "ndr",
        "--precision",
        "RATIO",
        "Stop the search when the bounds are this close [default: 0.02].",
    ),
    (
        "ndr",
        "--max-rate",
        "PPS",
        "Upper bound of the search (default: calibrated).",
    ),
    (
        "ndr",
        "--min-rate",
        "PPS",
        "Lower bound of the search [default: 1000].",
    ),
    (
        "ndr",
        "--max-trials",
        "N",
        "Give up after this many trials [default: 20].",
    ),
    (
        "latency",
        "--probe-rate",
        "PPS",
        "Latency probes per second [default: 1000].",
    ),
    (
        "verify",
        "--synwall",
        "BIN",
        "The synwall binary to start (default: beside synwall-gen).",
    ),
    (
        "verify",
        "--appliance-config",
        "FILE",
        "synwall's config (default: made from the profile).",
    ),
    (
        "verify",
        "--workdir",
        "DIR",
        "Where the appliance's files go.",
    ),
    (
        "verify",
        "--appliance-duration",
        "SECS",
        "How long synwall runs [default: 3].",
    ),
    (
        "ndr",
        "--loss-ratio",
        "RATIO",
        "Same as --pdr-loss (its old name).",
    ),
];

/// What `--hold` does, and why it exists.
const HOLD_HELP: &str = "run, ndr, latency: when done, stop polling but keep the ports \
attached until stdin closes (end of file), then exit. The line 'synwall-gen: holding the ports' \
(with the exit status to come) says it is done. For net_memif: stop the peer (synwall) \
first, then close stdin; with DPDK 22.11 a memif peer that disconnects while the other \
side polls can crash the poller.";

/// Options that older scripts pass and synwall-gen ignores.
const IGNORED: [&str; 2] = ["--seed", "--frames"];

/// The command line of synwall-gen.
pub fn command() -> Command {
    let mut cmd = Command::new("synwall-gen")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .arg(
            Arg::new("--config")
                .long("config")
                .value_name("PROFILE")
                .required(true)
                .help("The profile (TOML): ports, customers, background traffic."),
        )
        .arg(
            Arg::new("mode")
                .value_name("MODE")
                .value_parser(MODES)
                .required_unless_present("--out")
                .help("run: send at a rate; ndr: search the no-drop rate; latency: measure it; verify: check synwall's verdicts against what was sent."),
        );
    for (mode, name, value, help) in VALUED {
        let mut arg = Arg::new(name).long(&name[2..]).value_name(value).help(help);
        if !mode.is_empty() {
            arg = arg.help_heading(mode);
        }
        cmd = cmd.arg(arg);
    }
    cmd = cmd.arg(
        Arg::new("--no-calibration")
            .long("no-calibration")
            .action(ArgAction::SetTrue)
            .help_heading("ndr")
            .help("Skip measuring the generator's own top rate first."),
    );
    cmd = cmd.arg(
        Arg::new("--hold")
            .long("hold")
            .action(ArgAction::SetTrue)
            .help(HOLD_HELP),
    );
    for name in IGNORED {
        cmd = cmd.arg(Arg::new(name).long(&name[2..]).hide(true));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn out_alone_needs_no_mode() {
        let m = command()
            .try_get_matches_from(["synwall-gen", "--config", "p.toml", "--out", "x.pcap"])
            .expect("valid");
        assert!(m.get_one::<String>("mode").is_none());
        assert!(command()
            .try_get_matches_from(["synwall-gen", "--config", "p.toml"])
            .is_err());
    }
}
