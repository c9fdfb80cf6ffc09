//! Faults around the appliance, with the real binary: an unusable state
//! directory (the disk full, read-only, or not a directory) must not stop
//! forwarding or enforcement; synwall reports the failed snapshots and
//! keeps retrying, and the limits still hold exactly.

use std::fs;
use std::net::Ipv4Addr;

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_tests::*;

const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

fn syns(net: u8, n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let src = Ipv4Addr::new(10, net, (i / 250) as u8, (i % 250) as u8 + 1);
            FrameBuilder::tcp_v4(src, MX, 1024 + i as u16, 25, SYN).build()
        })
        .collect()
}

#[test]
fn an_unusable_state_dir_is_reported_and_enforcement_goes_on() {
    let dir = TestDir::new("faults-state-dir");
    // `state` is a file, so neither reading nor writing snapshots can work
    // (this holds for root too, unlike permission bits).
    fs::write(dir.join("state"), b"not a directory").unwrap();
    let mut frames = syns(1, 500);
    frames.extend(syns(2, 20));
    let scenario = Scenario::new(frames, Vec::new())
        .sections("[windows]\n\"5m\" = 100\n\"1h\" = 100000\n\"1d\" = 100000")
        .control("snapshot_interval = \"200ms\"\ntick = \"50ms\"")
        .customers(
            "[[customer]]\nname = \"spammer\"\nprefixes = [\"10.1.0.0/16\"]\n\n\
             [[customer]]\nname = \"quiet\"\nprefixes = [\"10.2.0.0/16\"]\n",
        );

    // Without --fresh-state the unreadable snapshot location stops the
    // start, naming it.
    let refused = scenario.run_in(dir);
    assert!(
        !refused.exit.status.success(),
        "started with an unreadable state dir"
    );
    assert!(
        refused.exit.stderr.contains("snapshot") && refused.exit.stderr.contains("--fresh-state"),
        "stderr: {}",
        refused.exit.stderr
    );

    // With it, synwall runs: every snapshot fails and is reported, and the
    // limit is enforced exactly as ever.
    let run = scenario.run_with(refused.dir, &["--fresh-state"]);
    assert!(
        run.exit.status.success(),
        "synwall failed: {}",
        run.exit.stderr
    );
    let failures = run
        .exit
        .stderr
        .lines()
        .filter(|l| l.contains("snapshot") && l.contains("will retry"))
        .count();
    assert!(
        failures >= 2,
        "snapshots should fail, be reported and retried:\n{}",
        run.exit.stderr
    );
    assert_eq!(
        run.customers(),
        vec![
            CustomerCount::new("spammer", 500, 100, 400),
            CustomerCount::new("quiet", 20, 20, 0),
        ]
    );
    assert_eq!(run.customer_state("spammer").as_deref(), Some("blocked"));
    assert_eq!(run.events_of("block", Some("spammer")).len(), 1);
    run.assert_consistent();
}
