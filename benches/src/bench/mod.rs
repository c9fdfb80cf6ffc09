//! `synwall-bench`, the bench driver: what the bench scripts used to compute
//! in bash and inline Python (once-a-second rates, medians after warm-up,
//! the worker's CPU share, idle waits, A/B rounds, the tables, the JSON
//! result) written once, and the subcommands that use it. The scripts under
//! `scripts/` are thin wrappers that build and exec it.
pub mod dataplane;
pub mod fleet;
pub mod gen;
pub mod host;
pub mod inputs;
pub mod million;
pub mod performance;
pub mod rates;
pub mod result;
pub mod rounds;
pub mod sampled;
pub mod stats;

#[cfg(test)]
mod tests {
    use super::inputs::parse_args;
    use super::{dataplane, fleet, gen, million};

    /// `argv` through the checks of `driver`'s options.
    fn checked(driver: &str, argv: &[&str]) -> Result<(), String> {
        match driver {
            "fleet" => fleet::check(&parse_args(argv)),
            "gen" => gen::check(&parse_args(argv)),
            "million" => million::check(&parse_args(argv)),
            "dataplane" => dataplane::plan(&parse_args(argv)).map(|_| ()),
            _ => Err(format!("no driver {driver}")),
        }
    }

    #[test]
    fn every_driver_checks_its_options() {
        // (driver, arguments, None: they pass, Some: the error says it)
        let cases: [(&str, &[&str], Option<&str>); 19] = [
            ("dataplane", &[], None),
            ("dataplane", &["--duration", "4"], Some("--duration")),
            ("dataplane", &["--core", "0"], Some("main lcore")),
            ("dataplane", &["--mixes", "mix64 mix99"], Some("mix99")),
            ("dataplane", &["--workers", "1 0"], Some("--workers: 0")),
            ("dataplane", &["--mix", "storm"], Some("storm")),
            ("dataplane", &["--no-ratio"], Some("nothing to run")),
            (
                "dataplane",
                &[
                    "--mix",
                    "flood",
                    "--flood-table",
                    "100",
                    "--flood-customers",
                    "1000",
                ],
                Some("--flood"),
            ),
            (
                "dataplane",
                &[
                    "--mix",
                    "flood",
                    "--flood-customers",
                    "",
                    "--smtp-customers",
                    "0",
                ],
                Some("leave nothing to run"),
            ),
            ("fleet", &[], None),
            ("fleet", &["--appliances", "0"], Some("--appliances")),
            ("fleet", &["--customers", "2000000"], Some("--customers")),
            ("gen", &["--no-latency"], None),
            (
                "gen",
                &["--duration", "0", "--no-latency"],
                Some("--duration"),
            ),
            (
                "gen",
                &["--only-latency", "--no-latency"],
                Some("nothing to run"),
            ),
            ("million", &[], None),
            ("million", &["--active", "0"], Some("--active")),
            ("million", &["--customers", "2000000"], Some("--customers")),
            ("million", &["--layout", "tidy"], Some("tidy")),
        ];
        for (driver, argv, says) in cases {
            match (checked(driver, argv), says) {
                (Ok(()), None) => {}
                (Err(e), Some(s)) => assert!(e.contains(s), "{driver} {argv:?}: {e}"),
                (got, _) => panic!("{driver} {argv:?}: {got:?}, expected {says:?}"),
            }
        }
    }
}
