//! Tests of the control plane: limits, grants, the block state machine,
//! snapshots and reloads. Workers are simulated on real `WorkerShard`s with
//! exactly the worker's SYN logic.
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synwall_config::fixtures::{customer, NET_NULL_HEAD};
use synwall_config::{Config, Mode};
use synwall_dataplane::shard::WorkerShard;

use super::*;
use crate::event::EventKind;
use crate::snapshot;

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
const WALL0: u64 = 1_800_000_000_000;

/// The sections after [`NET_NULL_HEAD`]: two windows, the `mailserver`
/// plan, escalating blocks.
const SECTIONS: &str = r#"
[detect]
near_limit = 0.8

[windows]
"5m" = 100
"1h" = 500

[plans.mailserver]
"5m" = 20000
"1h" = 100000

[block]
duration = "1h"
escalation = 2.0
max_duration = "3h"
"#;

/// The customers of [`config`], one per case the plane handles: ids
/// [`PLAIN`] to [`SUSPENDED`].
fn customers() -> String {
    let plan = "plan = \"mailserver\"";
    let ten = "limits = { \"5m\" = 10 }";
    [
        customer("plain", &["10.0.0.0/24"], ""),
        customer("mx", &["10.0.1.0/24"], plan),
        customer("small", &["10.0.2.0/24"], &format!("{plan}\n{ten}")),
        customer("closed", &["10.0.3.0/24"], "limits = { \"1h\" = 0 }"),
        customer(
            "watch",
            &["10.0.4.0/24"],
            &format!("{ten}\nmode = \"monitor\""),
        ),
        customer(
            "free",
            &["10.0.5.0/24"],
            &format!("{ten}\nmode = \"exempt\""),
        ),
        customer("suspended", &["10.0.6.0/24"], "blocked = true"),
    ]
    .concat()
}

const PLAIN: CustomerId = CustomerId::new(0);
const MX: CustomerId = CustomerId::new(1);
const SMALL: CustomerId = CustomerId::new(2);
const CLOSED: CustomerId = CustomerId::new(3);
const WATCH: CustomerId = CustomerId::new(4);
const FREE: CustomerId = CustomerId::new(5);
const SUSPENDED: CustomerId = CustomerId::new(6);

fn config_with(customers: &str) -> Config {
    Config::from_str(
        &format!("{NET_NULL_HEAD}{SECTIONS}{customers}"),
        Path::new("/tmp/synwall-test.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn config() -> Config {
    config_with(&customers())
}

fn shards(k: usize, customers: usize) -> Vec<Arc<WorkerShard>> {
    (0..k)
        .map(|_| Arc::new(WorkerShard::new(customers)))
        .collect()
}

/// A plane for [`config`] on `k` fresh shards, after its first tick at 0.
fn started(k: usize) -> (ControlPlane, Vec<Arc<WorkerShard>>) {
    let cfg = config();
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    let sh = shards(k, cfg.customers.len());
    plane.tick(0, &sh);
    (plane, sh)
}

/// One SYN of customer `c` through `shard`, through the worker's own
/// method: counted, then forwarded only if not blocked and within the grant.
fn send(shard: &WorkerShard, c: CustomerId) -> bool {
    shard.try_forward(c)
}

fn send_n(shard: &WorkerShard, c: CustomerId, n: u64) -> u64 {
    (0..n).filter(|_| send(shard, c)).count() as u64
}

fn forwarded(shards: &[Arc<WorkerShard>], c: CustomerId) -> u64 {
    shards.iter().map(|s| s.read(c).forwarded).sum()
}

fn kinds(events: &[Event]) -> Vec<(EventKind, String)> {
    events
        .iter()
        .map(|e| (e.kind, e.customer.clone().unwrap_or_default()))
        .collect()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn limits_resolve_default_plan_override_and_zero() {
    let plane = ControlPlane::new(&config(), 0, WALL0);
    assert_eq!(plane.limits(PLAIN), Some(&[100, 500][..]));
    assert_eq!(plane.limits(MX), Some(&[20_000, 100_000][..]));
    assert_eq!(
        plane.limits(SMALL),
        Some(&[10, 100_000][..]),
        "override beats plan"
    );
    assert_eq!(plane.limits(CLOSED), Some(&[100, 0][..]));
    assert_eq!(plane.mode(WATCH), Some(Mode::Monitor));
    assert_eq!(plane.mode(FREE), Some(Mode::Exempt));
    assert_eq!(plane.mode(PLAIN), Some(Mode::Enforce));
    assert_eq!(plane.limits(CustomerId::new(99)), None);
}

#[test]
fn first_tick_sets_grants_and_config_blocks() {
    let cfg = config();
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    let sh = shards(3, cfg.customers.len());
    let events = plane.tick(0, &sh);
    assert_eq!(kinds(&events), vec![(EventKind::Block, "suspended".into())]);
    assert_eq!(events[0].until, None, "standing block is indefinite");
    for s in &sh {
        assert!(s.is_blocked(SUSPENDED) && !s.is_blocked(PLAIN));
        assert_eq!(s.grant(WATCH), u64::MAX);
        assert_eq!(s.grant(FREE), u64::MAX);
        assert_eq!(s.grant(CLOSED), 0);
    }
    // 100 split over 3 cores, remainder to the first.
    let g: Vec<u64> = sh.iter().map(|s| s.grant(PLAIN)).collect();
    assert_eq!(g, vec![34, 33, 33]);
    assert!(plane.is_blocked(SUSPENDED));
}

/// Hammering customer: bursts far larger than the budget on random cores
/// between ticks. Blocks are lifted at once so that only the grants stand
/// between the customer and the wire; the forwards in any trailing 5
/// minutes never exceed 100, and the first 5 minutes forward exactly 100.
#[test]
fn grants_are_exact_under_random_bursts() {
    let cfg = config();
    for k in 2..=4 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ k as u64);
        let mut plane = ControlPlane::new(&cfg, 0, WALL0);
        let sh = shards(k, cfg.customers.len());
        let mut now = 0;
        plane.tick(now, &sh);
        // Workers racing the tick: between the plane's read of PLAIN's
        // counters and its grant write, a core spends what it holds.
        let raced = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
        let clock = Arc::new(AtomicU64::new(0));
        {
            let (sh, raced, clock) = (sh.clone(), raced.clone(), clock.clone());
            let mut rng = Rng(0x5151 + k as u64);
            plane.race = Some(RaceHook(Box::new(move |c| {
                if c == PLAIN && rng.below(2) == 0 {
                    let s = rng.below(sh.len() as u64) as usize;
                    let n = send_n(&sh[s], PLAIN, rng.below(40));
                    let t = clock.load(Relaxed);
                    raced.lock().unwrap().extend((0..n).map(|_| t));
                }
            })));
        }
        let mut times = Vec::new();
        while now < 25 * MIN {
            // Between ticks: a few bursts on random cores.
            for b in 0..rng.below(4) {
                let s = rng.below(k as u64) as usize;
                let burst = rng.below(60);
                for _ in 0..send_n(&sh[s], PLAIN, burst) {
                    times.push(now + 10 * (b + 1));
                }
            }
            now += 100 + rng.below(50); // ticks are not exactly periodic
            clock.store(now, Relaxed);
            plane.tick(now, &sh);
            times.append(&mut raced.lock().unwrap());
            if plane.is_blocked(PLAIN) {
                // Lifted without forgiving the windows: the limit must
                // still hold.
                plane.lift(PLAIN, "test", "t", now).unwrap();
            }
        }
        assert_eq!(times.len() as u64, forwarded(&sh, PLAIN));
        times.sort_unstable();
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi] - times[lo] >= 5 * MIN {
                lo += 1;
            }
            assert!(
                hi - lo < 100,
                "{k} cores: {} forwarded within 5 min",
                hi - lo + 1
            );
        }
        let first = times.iter().filter(|&&t| t < 5 * MIN).count();
        assert_eq!(first, 100, "{k} cores: the budget is used up exactly");
        // The 1h window (500) holds too, and the 5m budget keeps coming back.
        assert!(times.len() >= 400 && times.len() <= 500, "{}", times.len());
    }
}

#[test]
fn customer_far_below_limit_never_sees_a_drop() {
    let cfg = config();
    let mut rng = Rng(7);
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    let sh = shards(4, cfg.customers.len());
    plane.tick(0, &sh);
    let mut sent = 0;
    for t in 1..=3_000u64 {
        // About 1 SYN a tick, up to 30 on one core: 3000 in 5 minutes
        // against a limit of 20,000.
        let s = rng.below(4) as usize;
        let n = if rng.below(100) == 0 {
            30
        } else {
            rng.below(2)
        };
        assert_eq!(send_n(&sh[s], MX, n), n, "false drop at tick {t}");
        sent += n;
        plane.tick(t * 100, &sh);
    }
    assert_eq!(forwarded(&sh, MX), sent);
    assert!(!plane.is_blocked(MX));
}

/// Real concurrency: worker threads hammer while the control plane ticks.
/// Merged counts equal what was sent, exactly, and the grant holds.
#[test]
fn concurrent_workers_and_ticks_count_exactly() {
    let cfg = config();
    let sh = shards(3, cfg.customers.len());
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    plane.tick(0, &sh);
    let stop = Arc::new(AtomicBool::new(false));
    let sent_total = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = sh
        .iter()
        .map(|s| {
            let (s, stop, sent_total) = (s.clone(), stop.clone(), sent_total.clone());
            std::thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(Relaxed) {
                    for _ in 0..64 {
                        send(&s, PLAIN);
                        send(&s, WATCH);
                        sent += 1;
                    }
                }
                sent_total.fetch_add(sent, Relaxed);
            })
        })
        .collect();
    let mut events = Vec::new();
    let mut now = 0;
    for _ in 0..300 {
        std::thread::sleep(Duration::from_micros(300));
        now += 100;
        events.extend(plane.tick(now, &sh));
    }
    stop.store(true, Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    events.extend(plane.tick(now + 100, &sh));
    let sent = sent_total.load(Relaxed);
    let v = plane.customer_view(PLAIN, now + 100).unwrap();
    assert_eq!(v.seen, sent, "no SYN lost or counted twice");
    assert_eq!(v.forwarded, 100, "exactly the limit forwarded");
    assert_eq!(forwarded(&sh, PLAIN), 100);
    assert_eq!(v.state, "blocked");
    let w = plane.customer_view(WATCH, now + 100).unwrap();
    assert_eq!((w.seen, w.forwarded), (sent, sent), "monitor forwards all");
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::WouldBlock && e.customer.as_deref() == Some("watch")));
}

#[test]
fn limit_block_expiry_and_escalation_with_cap() {
    let cfg = config();
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    let sh = shards(2, cfg.customers.len());
    let mut now = 0;
    plane.tick(now, &sh);
    // Escalation: 1h, 2h, then 4h capped at 3h, and 3h again.
    for (offence, hours) in [(1u32, 1u64), (2, 2), (3, 3), (4, 3)] {
        let fwd = send_n(&sh[0], SMALL, 8) + send_n(&sh[1], SMALL, 8);
        assert_eq!(fwd, 10, "exactly the 5m limit forwarded");
        now += 100;
        let events = plane.tick(now, &sh);
        let blocks: Vec<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::Block)
            .collect();
        assert_eq!(blocks.len(), 1, "{events:?}");
        let e = blocks[0];
        assert_eq!(e.customer.as_deref(), Some("small"));
        assert_eq!(
            (e.window.as_deref(), e.count, e.limit),
            (Some("5m"), Some(10), Some(10))
        );
        assert_eq!(e.until, Some(Timestamp(WALL0 + now + hours * HOUR)));
        assert!(sh.iter().all(|s| s.is_blocked(SMALL)), "bit on every core");
        let v = plane.customer_view(SMALL, now).unwrap();
        assert_eq!(v.offences, offence);
        assert!(
            matches!(v.reason, Some(Reason::Limit { ref window, count: 10, limit: 10 }) if window == "5m")
        );
        // Blocked: further SYNs dropped and counted.
        assert_eq!(send_n(&sh[1], SMALL, 5), 0);
        now += 100;
        plane.tick(now, &sh);
        assert_eq!(
            plane
                .customer_view(SMALL, now)
                .unwrap()
                .attempts_while_blocked,
            5 * offence as u64
        );
        let v = plane.customer_view(SMALL, now).unwrap();
        assert_eq!(
            v.seen,
            v.forwarded + v.attempts_while_blocked + v.dropped_at_limit,
            "every dropped SYN under a named cause: {v:?}"
        );
        // Not yet: one ms before the end.
        let end = now - 100 + hours * HOUR;
        assert!(plane.tick(end - 1, &sh).is_empty());
        assert!(plane.is_blocked(SMALL));
        let events = plane.tick(end, &sh);
        assert_eq!(kinds(&events), vec![(EventKind::Expire, "small".into())]);
        assert!(sh.iter().all(|s| !s.is_blocked(SMALL)));
        now = end;
    }
    let v = plane.customer_view(SMALL, now).unwrap();
    assert_eq!(v.history.len(), 8);
    assert_eq!(v.history[7].kind, EventKind::Expire);
}

#[test]
fn no_block_without_an_attempt_over_the_limit() {
    let (mut plane, sh) = started(1);
    assert_eq!(send_n(&sh[0], SMALL, 10), 10);
    let events = plane.tick(100, &sh);
    assert!(!plane.is_blocked(SMALL), "at the limit is allowed");
    // Near-limit warning once (8 of 10), not again while above the mark.
    assert_eq!(kinds(&events), vec![(EventKind::NearLimit, "small".into())]);
    assert_eq!(events[0].count, Some(10));
    assert!(plane.tick(200, &sh).is_empty());
    // The 11th attempt blocks.
    assert!(!send(&sh[0], SMALL));
    assert_eq!(
        kinds(&plane.tick(300, &sh)),
        vec![(EventKind::Block, "small".into())]
    );
}

#[test]
fn near_limit_rearms_after_the_count_falls() {
    let (mut plane, sh) = started(1);
    send_n(&sh[0], PLAIN, 80);
    let e = plane.tick(100, &sh);
    assert_eq!(kinds(&e), vec![(EventKind::NearLimit, "plain".into())]);
    assert_eq!(e[0].window.as_deref(), Some("5m"));
    let t = 6 * MIN;
    assert!(plane.tick(t, &sh).is_empty());
    send_n(&sh[0], PLAIN, 80);
    let e = plane.tick(t + 100, &sh);
    assert_eq!(kinds(&e), vec![(EventKind::NearLimit, "plain".into())]);
}

#[test]
fn closed_port_blocks_on_the_first_attempt() {
    let (mut plane, sh) = started(2);
    assert!(!send(&sh[1], CLOSED));
    let e = plane.tick(100, &sh);
    assert_eq!(kinds(&e), vec![(EventKind::Block, "closed".into())]);
    assert_eq!((e[0].window.as_deref(), e[0].limit), (Some("1h"), Some(0)));
    assert_eq!(forwarded(&sh, CLOSED), 0);
}

#[test]
fn monitor_reports_would_block_and_forwards_everything() {
    let (mut plane, sh) = started(2);
    assert_eq!(send_n(&sh[0], WATCH, 30) + send_n(&sh[1], WATCH, 30), 60);
    let e = plane.tick(100, &sh);
    assert_eq!(
        kinds(&e),
        vec![
            (EventKind::NearLimit, "watch".into()),
            (EventKind::WouldBlock, "watch".into())
        ]
    );
    let wb = &e[1];
    assert_eq!(
        (wb.window.as_deref(), wb.count, wb.limit),
        (Some("5m"), Some(60), Some(10))
    );
    assert_eq!(send_n(&sh[0], WATCH, 30), 30);
    assert!(plane.tick(200, &sh).is_empty(), "once per crossing");
    assert!(!plane.is_blocked(WATCH));
    assert!(sh.iter().all(|s| !s.is_blocked(WATCH)));
}

#[test]
fn exempt_is_never_limited_or_warned() {
    let (mut plane, sh) = started(2);
    assert_eq!(send_n(&sh[0], FREE, 1_000), 1_000);
    assert!(plane.tick(100, &sh).is_empty());
    assert_eq!(plane.count(FREE, 0, 100), 1_000, "still counted");
    assert!(!plane.is_blocked(FREE));
}

#[test]
fn manual_block_indefinite_and_timed_and_unblock() {
    let (mut plane, sh) = started(2);
    // Indefinite, on a monitor customer: operators can block anyone.
    let e = plane.block(WATCH, None, "abuse #1", "alice", 50).unwrap();
    assert_eq!(
        (e.kind, e.by.as_deref(), e.reason.as_deref()),
        (EventKind::Block, Some("alice"), Some("abuse #1"))
    );
    assert_eq!(e.until, None);
    assert!(!sh[0].is_blocked(WATCH), "written at the next tick");
    plane.tick(100, &sh);
    assert!(sh.iter().all(|s| s.is_blocked(WATCH)));
    assert!(!send(&sh[0], WATCH));
    assert!(
        plane.tick(400 * HOUR, &sh).is_empty(),
        "indefinite never expires"
    );
    assert!(plane.is_blocked(WATCH));
    let u = plane.unblock(WATCH, "paid", "bob", 400 * HOUR).unwrap();
    assert_eq!((u.kind, u.by.as_deref()), (EventKind::Unblock, Some("bob")));
    plane.tick(400 * HOUR + 100, &sh);
    assert!(sh.iter().all(|s| !s.is_blocked(WATCH)));
    assert_eq!(
        plane.unblock(WATCH, "x", "bob", 0),
        Err(PlaneError::NotBlocked("watch".into()))
    );
    assert_eq!(
        plane
            .block(CustomerId::new(999), None, "", "", 0)
            .unwrap_err(),
        PlaneError::UnknownCustomer(CustomerId::new(999))
    );

    // Timed, and not an offence.
    let t = 500 * HOUR;
    let e = plane
        .block(PLAIN, Some(Duration::from_secs(600)), "test", "carol", t)
        .unwrap();
    assert_eq!(e.until, Some(Timestamp(WALL0 + t + 600_000)));
    plane.tick(t + 100, &sh);
    assert!(sh[1].is_blocked(PLAIN));
    assert_eq!(
        plane.blocks().len(),
        2,
        "watch is unblocked; plain, suspended"
    );
    let e = plane.tick(t + 600_000, &sh);
    assert_eq!(kinds(&e), vec![(EventKind::Expire, "plain".into())]);
    let v = plane.customer_view(PLAIN, t + 600_000).unwrap();
    assert_eq!((v.offences, v.state), (0, "open"));
    // Unblocking the standing config block works too.
    plane.unblock(SUSPENDED, "ok", "dave", t).unwrap();
    assert_eq!(plane.blocks().len(), 0);
}

#[test]
fn set_limit_and_set_mode_take_effect_at_the_next_tick() {
    let (mut plane, sh) = started(1);
    plane.set_limit(PLAIN, 0, 3).unwrap();
    assert_eq!(
        plane.set_limit(PLAIN, 5, 3),
        Err(PlaneError::UnknownWindow(5))
    );
    plane.tick(100, &sh);
    assert_eq!(send_n(&sh[0], PLAIN, 5), 3);
    plane.set_mode(PLAIN, Mode::Exempt).unwrap();
    plane.tick(200, &sh);
    assert!(!plane.is_blocked(PLAIN), "exempt now: no block");
    assert_eq!(send_n(&sh[0], PLAIN, 5), 5);
    plane.set_mode(PLAIN, Mode::Enforce).unwrap();
    plane.tick(300, &sh);
    assert_eq!(
        send_n(&sh[0], PLAIN, 5),
        0,
        "over the limit of 3: nothing more"
    );
}

#[test]
fn views_and_top() {
    let (mut plane, sh) = started(2);
    send_n(&sh[0], PLAIN, 7);
    send_n(&sh[1], MX, 9);
    send_n(&sh[1], FREE, 3);
    plane.tick(100, &sh);
    let top = plane.top(2, 1, 100);
    assert_eq!(
        top.iter()
            .map(|t| (t.customer.as_str(), t.count))
            .collect::<Vec<_>>(),
        vec![("mx", 9), ("plain", 7)]
    );
    let v = plane.customer_view(PLAIN, 100).unwrap();
    let json = serde_json::to_string(&v).unwrap();
    assert!(
        json.contains(r#""windows":[{"name":"5m","count":7,"limit":100}"#),
        "{json}"
    );
    assert!(json.contains(r#""state":"open""#));
    assert_eq!(plane.find("mx"), Some(MX));
    assert_eq!(plane.find("nobody"), None);
}

#[test]
fn snapshot_round_trip_keeps_blocks_and_counts_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("synwall-snap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config();
    let mut plane = ControlPlane::new(&cfg, 5_000, WALL0);
    let sh = shards(2, cfg.customers.len());
    plane.tick(5_000, &sh);
    send_n(&sh[0], SMALL, 10);
    send_n(&sh[1], SMALL, 10);
    send_n(&sh[1], PLAIN, 40);
    plane.tick(5_100, &sh);
    assert!(plane.is_blocked(SMALL));
    assert_eq!(
        snapshot::load(&dir, WALL0).unwrap(),
        None,
        "missing = first start"
    );
    snapshot::save(&dir, &plane, 5_100).unwrap();
    snapshot::save(&dir, &plane, 5_200).unwrap();
    assert!(dir.join(snapshot::PREV_FILE).exists(), "previous kept");
    let snap = snapshot::load(&dir, WALL0).unwrap().unwrap();
    assert_eq!(snap, plane.snapshot(5_200));

    // A new process 10 minutes later (wall clock), its clock starting at 0.
    let wall = WALL0 + 5_200 + 10 * MIN;
    let mut after = ControlPlane::new(&cfg, 0, wall);
    assert_eq!(after.restore(&snap, 0), 3, "small, plain, suspended");
    assert!(after.is_blocked(SMALL));
    let v = after.customer_view(SMALL, 0).unwrap();
    let before = plane.customer_view(SMALL, 5_200).unwrap();
    assert_eq!(v.until, before.until, "same wall-clock end");
    assert_eq!((v.offences, v.seen, v.forwarded), (1, 20, 10));
    assert_eq!(v.history, before.history);
    // 10 minutes have passed: the 5m window is empty, the 1h one is not.
    assert_eq!(after.count(PLAIN, 0, 0), 0);
    assert_eq!(after.count(PLAIN, 1, 0), 40);
    // The block ends 1h after it began, on the new clock.
    let end = before.until.unwrap().0 - wall;
    let sh2 = shards(2, cfg.customers.len());
    after.tick(0, &sh2);
    assert!(sh2[0].is_blocked(SMALL));
    let e = after.tick(end, &sh2);
    assert!(
        kinds(&e).contains(&(EventKind::Expire, "small".into())),
        "{e:?}"
    );

    // A restart after the block's end: it expires at the first tick.
    let mut late = ControlPlane::new(&cfg, 0, WALL0 + 2 * HOUR);
    late.restore(&snap, 0);
    let e = late.tick(0, &sh2);
    assert!(
        kinds(&e).contains(&(EventKind::Expire, "small".into())),
        "{e:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_truncated_and_foreign_snapshots_are_named_errors() {
    let dir = std::env::temp_dir().join(format!("synwall-snapbad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut plane, sh) = started(1);
    send_n(&sh[0], PLAIN, 5);
    plane.tick(100, &sh);
    let path = snapshot::save(&dir, &plane, 100).unwrap();
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let err = snapshot::load(&dir, WALL0).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, snapshot::SnapshotError::Corrupt { .. }),
        "{msg}"
    );
    assert!(msg.contains("state.json") && msg.contains("EOF"), "{msg}");
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        snapshot::load(&dir, WALL0),
        Err(snapshot::SnapshotError::Corrupt { .. })
    ));
    std::fs::write(&path, br#"{"version": 99, "future": true}"#).unwrap();
    let err = snapshot::load(&dir, WALL0).unwrap_err();
    assert!(
        matches!(err, snapshot::SnapshotError::Version { found: 99, .. }),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reconfigure_keeps_state_by_name_across_renumbering() {
    let (mut plane, sh) = started(2);
    send_n(&sh[0], PLAIN, 30);
    send_n(&sh[0], SMALL, 10);
    send_n(&sh[1], SMALL, 10);
    plane.tick(100, &sh);
    assert!(plane.is_blocked(SMALL));

    // New config: a customer added in front (renumbers everyone), "mx"
    // removed, plain's 5m limit raised, suspended's standing block lifted.
    let customers = customers()
        .replace(
            "name = \"mx\"\nprefixes = [\"10.0.1.0/24\"]\nplan = \"mailserver\"",
            "name = \"mx2\"\nprefixes = [\"10.0.1.0/24\"]",
        )
        .replace("blocked = true", "")
        .replace(
            "name = \"plain\"\nprefixes = [\"10.0.0.0/24\"]",
            "name = \"plain\"\nprefixes = [\"10.0.0.0/24\"]\nlimits = { \"5m\" = 35 }",
        );
    let customers = customer("new", &["10.9.0.0/24"], "") + &customers;
    let next = config_with(&customers);
    let reload = plane.reconfigure(&next, 200);
    assert_eq!(reload.id_map[PLAIN.index()], Some(CustomerId::new(1)));
    assert_eq!(reload.id_map[SMALL.index()], Some(CustomerId::new(3)));
    assert_eq!(reload.id_map[MX.index()], None);
    assert_eq!((reload.added, reload.removed), (2, 1));
    assert_eq!(plane.find("plain"), Some(CustomerId::new(1)));
    assert_eq!(
        plane.count(CustomerId::new(1), 0, 200),
        30,
        "counts follow the name"
    );
    assert!(
        plane.is_blocked(CustomerId::new(3)),
        "blocks follow the name"
    );
    assert_eq!(
        plane
            .customer_view(CustomerId::new(3), 200)
            .unwrap()
            .offences,
        1
    );
    assert!(
        !plane.is_blocked(CustomerId::new(7)),
        "standing block lifted in the config"
    );
    assert_eq!(plane.count(CustomerId::new(0), 0, 200), 0);

    // The lead copies the counters by id map into the resized shards.
    let new_sh = shards(2, next.customers.len());
    for (old, new) in sh.iter().zip(&new_sh) {
        for (o, n) in reload.id_map.iter().enumerate() {
            if let Some(n) = n {
                let r = old.read(CustomerId::new(o as u32));
                new.seed_counts(*n, r.seen, r.forwarded);
            }
        }
    }
    plane.tick(300, &new_sh);
    assert_eq!(
        plane.customer_view(CustomerId::new(1), 300).unwrap().seen,
        30,
        "nothing counted twice"
    );
    assert!(new_sh[0].is_blocked(CustomerId::new(3)));
    // Plain may send 5 more under its new limit of 35, no more.
    assert_eq!(
        send_n(&new_sh[0], CustomerId::new(1), 10) + send_n(&new_sh[1], CustomerId::new(1), 10),
        5
    );
}

/// Times a tick at 1,000,000 customers (10,000 active) over 4 cores.
/// [`config`] with a million customers like [`PLAIN`], for the tick's
/// benches.
fn million_customers() -> Config {
    million_customers_like(PLAIN)
}

/// [`config`] with a million customers like `like`.
fn million_customers_like(like: CustomerId) -> Config {
    let mut cfg = config();
    let template = cfg.customers[like.index()].clone();
    cfg.customers = (0..1_000_000u32)
        .map(|i| synwall_config::Customer {
            id: i,
            name: format!("c{i}"),
            ..template.clone()
        })
        .collect();
    cfg
}

/// `cargo test -p synwall-engine --lib --release -- --ignored --nocapture tick_cost`
#[test]
#[ignore]
fn tick_cost_at_a_million_customers() {
    let cfg = million_customers();
    let sh = shards(4, cfg.customers.len());
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    let t = Instant::now();
    plane.tick(0, &sh);
    println!("first tick (everyone): {:?}", t.elapsed());
    let t = Instant::now();
    for r in 1..=10u64 {
        plane.tick(r, &sh);
    }
    println!(
        "tick at 1M customers, none active, 4 cores: {:?}",
        t.elapsed() / 10
    );
    let mut worst = Duration::ZERO;
    let mut total = Duration::ZERO;
    let rounds = 50u32;
    for r in 1..=rounds {
        for a in 0..10_000u32 {
            let c = a * 100;
            send(&sh[(a % 4) as usize], CustomerId::new(c));
        }
        let t = Instant::now();
        plane.tick(100 + u64::from(r) * 100, &sh);
        let dt = t.elapsed();
        worst = worst.max(dt);
        total += dt;
    }
    assert_eq!(plane.active(), 10_000);
    println!(
        "tick at 1M customers, 10k active, 4 cores: mean {:?}, worst {:?}",
        total / rounds,
        worst
    );
    // A flood's shape: 100,000 of the million send on one core, every
    // one of them every tick, for 15 s of 100 ms ticks (a 5m bucket
    // boundary falls inside), customers scattered over the table, all
    // below their limits (like MX: none is blocked on the way).
    let cfg = million_customers_like(MX);
    let one = shards(1, cfg.customers.len());
    let mut flood = ControlPlane::new(&cfg, 0, WALL0);
    flood.tick(0, &one);
    let active: Vec<CustomerId> = (0..100_000u32)
        .map(|a| CustomerId::new(a.wrapping_mul(2_654_435_761) % 1_000_000))
        .collect();
    let mut ticks: Vec<Duration> = Vec::new();
    for r in 1..=150u64 {
        for &c in &active {
            send(&one[0], c);
        }
        let t = Instant::now();
        flood.tick(r * 100, &one);
        ticks.push(t.elapsed());
    }
    let first = ticks[0];
    // The tick after a 5m bucket boundary (10 s) also moves every ring.
    let boundary = ticks[100];
    ticks.sort();
    println!(
        "tick at 1M customers, 100k active every tick, 1 core: median {:?}, worst {:?} (first {first:?}, at the 10 s boundary {boundary:?}), full scans {}",
        ticks[ticks.len() / 2],
        ticks[ticks.len() - 1],
        flood.listing_overflows()
    );
    // Once a minute the history takes what the ticks gathered.
    let t = Instant::now();
    let recent = plane.take_recent();
    println!(
        "take_recent for the history, {} customers: {:?}",
        recent.len(),
        t.elapsed()
    );
}

#[test]
fn operator_unblock_restores_a_fresh_budget_but_expiry_does_not() {
    let (mut plane, sh) = started(1);
    // Limit 3 in the 1h window.
    plane.set_limit(PLAIN, 1, 3).unwrap();
    plane.tick(100, &sh);
    assert_eq!(send_n(&sh[0], PLAIN, 5), 3);
    plane.tick(200, &sh);
    assert!(plane.is_blocked(PLAIN));
    assert_eq!(plane.count(PLAIN, 1, 200), 3);
    // The operator lifts it: the windows start over, mail flows at once.
    plane.unblock(PLAIN, "cleaned up", "bob", 300).unwrap();
    assert_eq!(plane.count(PLAIN, 1, 300), 0);
    plane.tick(400, &sh);
    assert!(!plane.is_blocked(PLAIN));
    assert_eq!(send_n(&sh[0], PLAIN, 5), 3, "a fresh budget of 3");
    plane.tick(500, &sh);
    assert!(plane.is_blocked(PLAIN), "and the limit still holds");
    // An expiry forgives nothing: a 10-minute block runs out while the 1h
    // window is still at its limit, and the next SYN is blocked again.
    plane
        .block(PLAIN, Some(Duration::from_secs(600)), "shorter", "ops", 600)
        .unwrap();
    let until = 600 + 600_000;
    let e = plane.tick(until, &sh);
    assert!(e.iter().any(|e| e.kind == EventKind::Expire));
    assert!(!plane.is_blocked(PLAIN));
    assert_eq!(plane.count(PLAIN, 1, until), 3);
    assert_eq!(send_n(&sh[0], PLAIN, 1), 0);
    plane.tick(until + 100, &sh);
    assert!(plane.is_blocked(PLAIN));
}

#[test]
fn recent_counts_for_the_history_follow_names_across_a_reload() {
    let (mut plane, sh) = started(2);
    send_n(&sh[0], PLAIN, 30);
    send_n(&sh[1], PLAIN, 5);
    // SMALL (5m = 10, split 5 + 5 over the cores): 25 tried on core 0,
    // 5 forwarded.
    send_n(&sh[0], SMALL, 25);
    plane.tick(100, &sh);
    let mut got = plane.take_recent();
    got.sort();
    assert_eq!(got, vec![("plain".into(), 35, 35), ("small".into(), 25, 5)]);
    assert!(plane.take_recent().is_empty(), "taken once");

    // Counted, then renumbered by a reload before the history takes them:
    // they stay with their customer's name.
    send_n(&sh[0], PLAIN, 4);
    plane.tick(200, &sh);
    let next = config_with(&(customer("new", &["10.9.0.0/24"], "") + &customers()));
    plane.reconfigure(&next, 300);
    assert_eq!(plane.take_recent(), vec![("plain".into(), 4, 4)]);
}

/// Many customers, limit 10 in 5 minutes (one in ten closed: limit 0 in
/// 1h), sending a few SYNs at a time on random cores across many ticks,
/// most of them starting cold (no window state, so only the workers'
/// listing brings them to a tick). Each is blocked at exactly its limit by
/// the tick after it tries for more, never forwards past it, and the
/// plane's totals equal what the workers counted. `slots` sizes each
/// core's listing ring: a tiny ring overflows every tick and the tick
/// scans instead.
fn listed_customers_are_exact(slots: usize) -> u64 {
    const N: usize = 300;
    let customers: String = (0..N)
        .map(|i| {
            let limits = if i % 10 == 0 {
                "limits = { \"1h\" = 0 }"
            } else {
                "limits = { \"5m\" = 10 }"
            };
            customer(
                &format!("c{i}"),
                &[&format!("10.{}.{}.0/24", i / 256, i % 256)],
                limits,
            )
        })
        .collect();
    let cfg = config_with(&customers);
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    let sh: Vec<Arc<WorkerShard>> = (0..2)
        .map(|_| Arc::new(WorkerShard::with_listing(N, None, slots)))
        .collect();
    plane.tick(0, &sh);
    let mut rng = Rng(0x1157 ^ slots as u64);
    let (mut sent, mut fwd) = (vec![0u64; N], vec![0u64; N]);
    // The tick at which each customer first tried past its limit.
    let mut over_at: Vec<Option<u64>> = vec![None; N];
    let mut now = 0;
    for tick in 1..=200u64 {
        // A new handful of customers wakes up each tick; the rest of the
        // awake ones keep going.
        let awake = ((tick as usize) * 3).min(N);
        for _ in 0..40 {
            let i = rng.below(awake as u64) as usize;
            let c = CustomerId::new(i as u32);
            let limit = if i.is_multiple_of(10) { 0 } else { 10 };
            for _ in 0..rng.below(4) {
                let s = rng.below(2) as usize;
                sent[i] += 1;
                if send(&sh[s], c) {
                    fwd[i] += 1;
                } else if fwd[i] >= limit && over_at[i].is_none() {
                    over_at[i] = Some(tick);
                }
            }
        }
        now += 1000;
        plane.tick(now, &sh);
        for (i, &at) in over_at.iter().enumerate() {
            if at == Some(tick) {
                assert!(
                    plane.is_blocked(CustomerId::new(i as u32)),
                    "c{i} ({slots} slots) tried past its limit at tick {tick} and is open"
                );
            }
        }
    }
    plane.tick(now + 1000, &sh);
    let mut blocked = 0;
    for i in 0..N {
        let c = CustomerId::new(i as u32);
        let limit = if i % 10 == 0 { 0 } else { 10 };
        let v = plane.customer_view(c, now + 1000).unwrap();
        assert_eq!(
            (v.seen, v.forwarded),
            (sent[i], fwd[i]),
            "c{i} ({slots} slots): counts"
        );
        assert!(fwd[i] <= limit, "c{i}: {} forwarded past {limit}", fwd[i]);
        if over_at[i].is_some() {
            blocked += 1;
            assert_eq!(fwd[i], limit, "c{i}: blocked before its limit");
            match v.reason {
                Some(Reason::Limit {
                    count, limit: l, ..
                }) => {
                    assert_eq!((count, l), (limit, limit), "c{i}: blocked at");
                }
                other => panic!("c{i} ({slots} slots): sent {} and {other:?}", sent[i]),
            }
        } else {
            assert_eq!(v.state, "open", "c{i}: blocked under its limit");
        }
    }
    assert!(blocked > N / 2, "only {blocked} reached their limit");
    plane.listing_overflows()
}

#[test]
fn listed_customers_are_blocked_at_exactly_their_limit() {
    assert_eq!(
        listed_customers_are_exact(WorkerShard::new(300).listing_capacity()),
        0
    );
}

#[test]
fn an_overflowing_listing_falls_back_to_the_scan_and_stays_exact() {
    let overflows = listed_customers_are_exact(2);
    assert!(
        overflows > 100,
        "the tiny ring overflowed only {overflows} times"
    );
}

/// Workers on their own threads count while the plane ticks, with tiny
/// listing rings so that takes, overflows and sweeps all race the workers'
/// marks: once the workers stop, every SYN is in the plane's totals.
#[test]
fn counts_racing_the_tick_are_never_lost() {
    const N: usize = 64;
    let customers: String = (0..N)
        .map(|i| customer(&format!("c{i}"), &[&format!("10.0.{i}.0/24")], ""))
        .collect();
    let cfg = config_with(&customers);
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    for slots in [4, N] {
        let sh: Vec<Arc<WorkerShard>> = (0..2)
            .map(|_| Arc::new(WorkerShard::with_listing(N, None, slots)))
            .collect();
        plane.attach_fresh(&sh);
        let before: Vec<u64> = (0..N)
            .map(|i| {
                plane
                    .customer_view(CustomerId::new(i as u32), 0)
                    .unwrap()
                    .seen
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = sh
            .iter()
            .enumerate()
            .map(|(w, s)| {
                let (s, stop) = (s.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(0xabc + w as u64);
                    let mut sent = [0u64; N];
                    while !stop.load(Relaxed) {
                        // Sparse: most customers go quiet between SYNs,
                        // so a lost listing is not covered by a later one.
                        let i = rng.below(N as u64) as usize;
                        s.try_forward(CustomerId::new(i as u32));
                        sent[i] += 1;
                        for _ in 0..rng.below(200) {
                            std::hint::spin_loop();
                        }
                    }
                    sent
                })
            })
            .collect();
        let t0 = Instant::now();
        let mut now = 0;
        while t0.elapsed() < Duration::from_millis(300) {
            now += 1;
            plane.tick(now, &sh);
        }
        stop.store(true, Relaxed);
        let mut sent = [0u64; N];
        for w in workers {
            for (t, n) in sent.iter_mut().zip(w.join().unwrap()) {
                *t += n;
            }
        }
        // Two ticks: the one after the workers stopped, and the recheck
        // of what it cleared.
        plane.tick(now + 1, &sh);
        plane.tick(now + 2, &sh);
        for i in 0..N {
            let v = plane
                .customer_view(CustomerId::new(i as u32), now + 2)
                .unwrap();
            assert_eq!(v.seen - before[i], sent[i], "c{i}, {slots} slots");
        }
    }
}

/// A customer whose windows drained (no state left, so only a listing
/// brings it back to a tick) is listed again at its next SYN, on every
/// core, each time it comes back; also when its listing overflowed a
/// one-slot ring (another customer took the slot) and the tick swept.
#[test]
fn a_customer_back_after_its_windows_drained_is_listed_again() {
    let cfg = config();
    for slots in [cfg.customers.len(), 1] {
        let mut plane = ControlPlane::new(&cfg, 0, WALL0);
        let sh: Vec<Arc<WorkerShard>> = (0..2)
            .map(|_| Arc::new(WorkerShard::with_listing(cfg.customers.len(), None, slots)))
            .collect();
        plane.tick(0, &sh);
        let mut now = 0;
        for round in 1..=3u64 {
            for s in &sh {
                assert!(send(s, MX));
                assert!(send(s, PLAIN));
            }
            now += 100;
            plane.tick(now, &sh);
            assert!(
                plane.windows.is_active(PLAIN),
                "{slots}, round {round}: not counted"
            );
            // Past the longest window (1h): the state drains.
            now += 2 * HOUR;
            plane.tick(now, &sh);
            assert!(
                !plane.windows.is_active(PLAIN),
                "round {round}: still active"
            );
            let v = plane.customer_view(PLAIN, now).unwrap();
            assert_eq!(v.seen, 2 * round, "{slots} slots, round {round}");
        }
        assert_eq!(plane.listing_overflows() > 0, slots == 1);
    }
}

/// A SYN whose worker read the listing mark just before the tick's clear
/// reached it is not listed again: the next tick's recheck of the cleared
/// customers reads it. (A customer with a limit of 1 on two cores: its
/// SYNs on the core granted 0 are dropped without a block, so it gets no
/// window state that would bring it back to the tick anyway.)
#[test]
fn a_syn_racing_the_clear_of_its_mark_is_read_by_the_next_tick() {
    let cfg = config_with(&customer(
        "one",
        &["10.0.0.0/24"],
        "limits = { \"5m\" = 1 }",
    ));
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    let sh = shards(2, 1);
    let c = CustomerId::new(0);
    plane.tick(0, &sh);
    assert_eq!((sh[0].grant(c), sh[1].grant(c)), (1, 0));
    assert!(!send(&sh[1], c), "core 1 holds no grant");
    plane.tick(100, &sh);
    assert!(!sh[1].forward_past_a_cleared_mark(c));
    plane.tick(200, &sh);
    let v = plane.customer_view(c, 200).unwrap();
    assert_eq!((v.seen, v.forwarded, v.state), (2, 0, "open"));
    assert!(!plane.windows.is_active(c));
}

/// This thread's CPU time so far, in ns (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// The tick's CPU cost at a million customers with `TICK_ACTIVE` of them
/// (default 8192, spread over the ids) sending a SYN each between ticks,
/// on `TICK_CORES` shards (default 1): CPU time of this thread, so a
/// loaded box inflates it less than wall time. Prints, asserts nothing
/// about time.
///
/// `TICK_ACTIVE=8192 cargo test -p synwall-engine --lib --release -- --ignored --nocapture tick_cpu`
#[test]
#[ignore]
fn tick_cpu_at_a_million_customers() {
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (active, cores) = (env("TICK_ACTIVE", 8192), env("TICK_CORES", 1));
    const N: u32 = 1_000_000;
    let cfg = million_customers();
    let sh = shards(cores as usize, N as usize);
    let mut plane = ControlPlane::new(&cfg, 0, WALL0);
    plane.tick(0, &sh);
    let mut now = 0;
    let mut idle = Vec::new();
    for _ in 0..20 {
        now += 100;
        let t = thread_cpu_ns();
        plane.tick(now, &sh);
        idle.push(thread_cpu_ns() - t);
    }
    let stride = N / active.max(1);
    let mut busy = Vec::new();
    for r in 0..40 {
        for a in 0..active {
            send(&sh[(a % cores) as usize], CustomerId::new(a * stride));
        }
        now += 100;
        let t = thread_cpu_ns();
        plane.tick(now, &sh);
        if r >= 5 {
            busy.push(thread_cpu_ns() - t);
        }
    }
    assert_eq!(plane.active(), active as usize);
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2] / 1000
    };
    println!(
        "tick CPU µs, 1M customers, {cores} core(s): none active {}, {active} active {} (medians)",
        median(&mut idle),
        median(&mut busy)
    );
}
