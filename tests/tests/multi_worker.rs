//! Two workers, two queues per port: one customer's SYNs arrive on both
//! inside queues, so two cores count them; the summary's total must equal
//! what was sent, each worker must have counted its share, and each worker
//! forwards its queue's frames on its own tx queue.

use std::net::Ipv4Addr;

use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::{ACK, SYN};
use synwall_tests::fixtures::customer;
use synwall_tests::*;

const MX: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

fn customers() -> String {
    customer("busy", &["192.0.2.0/24"], "")
        + &customer("blocked", &["198.51.100.0/24"], "blocked = true")
}

fn syn(src: Ipv4Addr, sport: u16) -> Vec<u8> {
    FrameBuilder::tcp_v4(src, MX, sport, 25, SYN)
        .seq(u32::from(sport) * 7)
        .build()
}

/// A queue's input: `busy` SYNs from 192.0.2.x, `blocked` SYNs from
/// 198.51.100.x, and `other` non-SMTP frames, interleaved. Returns the frames
/// and the ones expected out (in order).
fn queue(q: u8, busy: u16, blocked: u16, other: u16) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut frames = Vec::new();
    let mut forwarded = Vec::new();
    let n = busy.max(blocked).max(other);
    for i in 0..n {
        let sport = 10_000 + u16::from(q) * 1000 + i;
        if i < busy {
            let f = syn(Ipv4Addr::new(192, 0, 2, (i % 200) as u8 + 1), sport);
            frames.push(f.clone());
            forwarded.push(f);
        }
        if i < blocked {
            frames.push(syn(Ipv4Addr::new(198, 51, 100, (i % 200) as u8 + 1), sport));
        }
        if i < other {
            let f = FrameBuilder::tcp_v4(Ipv4Addr::new(192, 0, 2, 9), MX, sport, 443, ACK).build();
            frames.push(f.clone());
            forwarded.push(f);
        }
    }
    (frames, forwarded)
}

#[test]
fn syns_spread_over_two_workers_are_all_counted() {
    let (in0, out0) = queue(0, 40, 5, 10);
    let (in1, out1) = queue(1, 25, 7, 3);
    let rev0 =
        vec![FrameBuilder::tcp_v4(MX, Ipv4Addr::new(192, 0, 2, 1), 25, 10_000, SYN | ACK).build()];
    let rev1 = vec![
        FrameBuilder::tcp_v4(MX, Ipv4Addr::new(192, 0, 2, 2), 25, 11_000, SYN | ACK).build(),
        FrameBuilder::tcp_v4(MX, Ipv4Addr::new(192, 0, 2, 3), 25, 11_001, SYN | ACK).build(),
    ];
    // Limits far above what is sent: this test is about counting, not
    // about limits.
    let mut scenario = Scenario::new(Vec::new(), Vec::new())
        .sections("[windows]\n\"5m\" = 100000\n\"1h\" = 100000\n\"1d\" = 100000")
        .customers(&customers());
    scenario.inside = vec![in0.clone(), in1.clone()];
    scenario.outside = vec![rev0.clone(), rev1.clone()];
    scenario.cores = vec![1, 2];
    if cpus() < 3 {
        // Worker lcores 1 and 2 both on CPU 1: the machine may have only two
        // CPUs, and lcore 2 would not exist otherwise.
        scenario.extra_eal = vec!["--lcores=0@0,1@1,2@1".to_owned()];
    }
    let run = scenario.run("multi-worker");

    // Queue q is polled by worker q, which sends on tx queue q.
    assert_frames_eq(&run.out[0], &out0, "outside tx queue 0");
    assert_frames_eq(&run.out[1], &out1, "outside tx queue 1");
    assert_frames_eq(&run.back[0], &rev0, "inside tx queue 0");
    assert_frames_eq(&run.back[1], &rev1, "inside tx queue 1");

    let sent_busy = 40 + 25;
    let sent_blocked = 5 + 7;
    run.assert_customers(&[
        ("busy", sent_busy, sent_busy, 0),
        ("blocked", sent_blocked, 0, sent_blocked),
    ]);
    let workers = run.summary["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0]["lcore"], 1);
    assert_eq!(workers[1]["lcore"], 2);
    assert_eq!(workers[0]["syn_watched"], 40 + 5);
    assert_eq!(workers[1]["syn_watched"], 25 + 7);
    assert_eq!(
        workers[0]["verdicts"]["rx"],
        (in0.len() + rev0.len()) as u64
    );
    assert_eq!(
        workers[1]["verdicts"]["rx"],
        (in1.len() + rev1.len()) as u64
    );
    let rx = (in0.len() + in1.len() + rev0.len() + rev1.len()) as u64;
    run.assert_verdicts(&Verdicts {
        rx,
        forwarded: (out0.len() + out1.len()) as u64,
        dropped_blocked: sent_blocked,
        reverse_forwarded: 3,
        ..Verdicts::default()
    });
    run.assert_outcomes(&[("syn_watched", sent_busy + sent_blocked), ("other_ip", 13)]);
    run.assert_consistent();
}
