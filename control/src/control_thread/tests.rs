//! The control thread without DPDK: a real plane, event log and generation
//! over a config file in a temporary directory; workers are played by
//! setting the generation their counters say they run.
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, Receiver, Sender, TryRecvError};
use serde_json::Value;
use synwall_config::Config;
use synwall_dataplane::generation::Generation;
use synwall_dataplane::CustomerId;

use super::{ControlThread, MonoClock, Start};
use crate::notify::Notifier;
use crate::reload::HAND_OVER_DEADLINE;
use crate::setup::{placed_classifier, policy, worker_nodes};
use crate::socket::Request;
use crate::testing::config_text;
use synwall_engine::event::{wall_now_ms, EventLog};
use synwall_engine::plane::ControlPlane;
use synwall_protocol::{Caller, Command};

/// A directory of its own under the system's temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "synwall-control-thread-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The test config, with its state and events in `dir`, and `extra`
/// customers after the test's own.
fn config_file(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("synwall.toml");
    let text = format!(
        "{}{extra}\n[control]\nstate_dir = \"state\"\nevents = \"events.jsonl\"\n",
        config_text()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The control thread as the appliance builds it, on `path`'s config.
fn control_thread(path: &Path) -> ControlThread {
    let config = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    let clock = MonoClock::start();
    let classifier = Arc::new(placed_classifier(&config).unwrap());
    let generation = Generation::share(Generation::on_nodes(
        1,
        classifier.clone(),
        Arc::new(policy(&config)),
        worker_nodes(&config),
    ));
    let mut control = ControlThread::new(Start {
        plane: ControlPlane::new(&config, clock.now(), wall_now_ms()),
        events: EventLog::open(&config.control.events).unwrap(),
        clock,
        baseline: Default::default(),
        generation,
        classifier,
        hooks: None,
        notifier: Notifier::from_env(),
        flowspec: None,
        config,
    });
    control.tick_current();
    control
}

/// `cmd`, asked through `requests`; the reply comes on the receiver.
fn ask(requests: &Sender<Request>, cmd: Command) -> Receiver<Value> {
    let (reply, answer) = bounded(1);
    let caller = Caller {
        uid: 0,
        gid: 0,
        pid: 42,
    };
    requests
        .try_send(Request {
            cmd,
            caller,
            reply,
            wake: None,
        })
        .unwrap();
    answer
}

/// Serves until the workers are offered generation `number`.
fn serve_until_published(control: &mut ControlThread, requests: &Receiver<Request>, number: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while control.generation().load().number < number {
        assert!(
            Instant::now() < deadline,
            "the reload was never handed over"
        );
        control.serve(requests);
        std::thread::sleep(Duration::from_millis(1));
    }
}

const NEW_CUSTOMER: &str = r#"
[[customer]]
name = "newco"
prefixes = ["192.0.2.0/24"]
"#;

/// A control thread on a fresh config in `dir`, with a reload (adding
/// [`NEW_CUSTOMER`]) asked for and handed over to the workers, none of
/// which has moved yet (they have `deadline` to): the thread, its request
/// queue, and the reload's reply.
fn reload_under_way(
    name: &str,
    deadline: Duration,
) -> (
    PathBuf,
    ControlThread,
    Sender<Request>,
    Receiver<Request>,
    Receiver<Value>,
) {
    let dir = temp_dir(name);
    let mut control = control_thread(&config_file(&dir, ""));
    control.hand_over_deadline = deadline;
    let (requests, incoming) = bounded(16);
    config_file(&dir, NEW_CUSTOMER);
    let reloaded = ask(&requests, Command::Reload);
    serve_until_published(&mut control, &incoming, 2);
    (dir, control, requests, incoming, reloaded)
}

#[test]
fn requests_are_answered_and_ticks_wait_while_a_worker_has_not_moved() {
    let (dir, mut control, requests, incoming, reloaded) =
        reload_under_way("hand-over", HAND_OVER_DEADLINE);
    // The worker has not picked generation 2 up: the hand-over is under way, and
    // the control loop goes on answering.
    assert_eq!(control.stats()[0].generation.load(Relaxed), 0);
    let ticks = control.gauges().ticks.load(Relaxed);
    let asked = Instant::now();
    let status = ask(&requests, Command::Status);
    control.serve(&incoming);
    let status = status
        .try_recv()
        .expect("status answered during the hand-over");
    assert!(asked.elapsed() < Duration::from_millis(500));
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(reloaded.try_recv(), Err(TryRecvError::Empty));
    control.tick_current();
    assert_eq!(
        control.gauges().ticks.load(Relaxed),
        ticks,
        "a tick ran mid hand-over"
    );
    // A SYN the worker counts on its new shard meanwhile is not lost.
    let next = control.generation().load_full();
    next.shards[0].seed_counts(CustomerId::new(3), 1, 1);
    control.stats()[0].generation.store(2, Relaxed);
    control.serve(&incoming);
    let reply = reloaded
        .try_recv()
        .expect("reload answered once the worker moved");
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(
        control.gauges().ticks.load(Relaxed) > ticks,
        "the deferred tick ran"
    );
    let now = control.clock.now();
    let newco = control
        .plane
        .customer_view(CustomerId::new(3), now)
        .unwrap();
    assert_eq!((newco.name.as_str(), newco.seen), ("newco", 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_worker_that_never_moves_holds_the_reload_up_to_the_deadline_only() {
    let (dir, mut control, _requests, incoming, reloaded) =
        reload_under_way("straggler", Duration::from_millis(200));
    let published = Instant::now();
    let reply = loop {
        control.serve(&incoming);
        if let Ok(reply) = reloaded.try_recv() {
            break reply;
        }
        assert!(published.elapsed() < Duration::from_secs(5), "no reply");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(published.elapsed() >= Duration::from_millis(150));
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(control.plane.customers(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_asked_for_during_a_hand_over_runs_after_it() {
    let (dir, mut control, requests, incoming, first) =
        reload_under_way("queued", HAND_OVER_DEADLINE);
    let second = ask(&requests, Command::Reload);
    control.serve(&incoming);
    assert_eq!(second.try_recv(), Err(TryRecvError::Empty));
    control.stats()[0].generation.store(2, Relaxed);
    serve_until_published(&mut control, &incoming, 3);
    assert_eq!(first.try_recv().map(|r| r["ok"].clone()), Ok(true.into()));
    control.stats()[0].generation.store(3, Relaxed);
    control.serve(&incoming);
    assert_eq!(second.try_recv().map(|r| r["ok"].clone()), Ok(true.into()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The four customers of the renumbering test, in their first order.
const FOUR: [(&str, &str, &str); 4] = [
    ("alpha", "10.1.0.0/16", "limits = { \"5m\" = 50 }"),
    ("beta", "10.2.0.0/16", "limits = { \"5m\" = 5 }"),
    ("gamma", "10.3.0.0/16", "limits = { \"5m\" = 40 }"),
    ("delta", "10.4.0.0/16", "limits = { \"5m\" = 30 }"),
];

fn four(order: &[usize]) -> String {
    order
        .iter()
        .map(|&i| {
            let (name, prefix, extra) = FOUR[i];
            synwall_config::fixtures::customer(name, &[prefix], extra)
        })
        .collect()
}

/// A reload that reorders the customers and inserts one in front of them
/// gives every one of them a new id (and each old id to someone else, a
/// blocked customer's to an open one and the other way round):
/// counts, blocks (a limit's and an operator's) and the allowance a worker
/// had left all stay with the customer, by name, not with the id.
#[test]
fn a_reload_that_renumbers_customers_keeps_counts_blocks_and_allowances_with_each() {
    let dir = temp_dir("renumber");
    let path = config_file(&dir, &four(&[0, 1, 2, 3]));
    let mut control = control_thread(&path);
    let id = |control: &ControlThread, name: &str| control.plane.find(name).unwrap();
    let old = control.generation().load_full();
    let shard = &old.shards[0];
    let sends = [("alpha", 7), ("beta", 8), ("gamma", 13), ("delta", 2)];
    for (name, n) in sends {
        for _ in 0..n {
            shard.try_forward(id(&control, name));
        }
    }
    control.tick_current();
    let now = control.clock.now();
    let delta = id(&control, "delta");
    control
        .plane
        .block(
            delta,
            Some(Duration::from_secs(7200)),
            "abuse #26",
            "test",
            now,
        )
        .unwrap();
    control.tick_current();
    assert!(control.plane.is_blocked(id(&control, "beta")), "over its 5");
    let now = control.clock.now();
    let counted: Vec<(u64, u64, Vec<u64>)> = FOUR
        .iter()
        .map(|&(n, ..)| {
            let v = control.plane.customer_view(id(&control, n), now).unwrap();
            (
                v.seen,
                v.forwarded,
                v.windows.iter().map(|w| w.count).collect(),
            )
        })
        .collect();
    assert_eq!(counted[1].0, 8);
    // More SYNs after the tick: what alpha and gamma have left of their
    // allowance on the worker is below what the last tick granted.
    for (name, n) in [("alpha", 4), ("gamma", 6)] {
        for _ in 0..n {
            assert!(shard.try_forward(id(&control, name)));
        }
    }
    let left = |name: &str| {
        let i = id(&control, name);
        shard.grant(i).saturating_sub(shard.read(i).forwarded)
    };
    let (alpha_left, gamma_left) = (left("alpha"), left("gamma"));
    assert_eq!((alpha_left, gamma_left), (50 - 7 - 4, 40 - 13 - 6));
    let before: Vec<(String, CustomerId)> = FOUR
        .iter()
        .map(|&(n, ..)| (n.to_owned(), id(&control, n)))
        .collect();

    // Reordered, behind a newcomer: alpha 3 → 6, beta 4 → 7, gamma 5 → 4,
    // delta 6 → 5, and the newcomer gets 3.
    let (requests, incoming) = bounded(16);
    config_file(&dir, &(NEW_CUSTOMER.to_owned() + &four(&[2, 3, 0, 1])));
    let reloaded = ask(&requests, Command::Reload);
    serve_until_published(&mut control, &incoming, 2);
    let next = control.generation().load_full();
    let new_id = |name: &str| {
        let (_, prefix, _) = FOUR.iter().find(|c| c.0 == name).unwrap();
        let addr: std::net::IpAddr = prefix.split('/').next().unwrap().parse().unwrap();
        next.classifier.lookup_addr(addr).unwrap()
    };
    for (name, old_id) in &before {
        assert_ne!(new_id(name), *old_id, "{name} was not renumbered");
    }
    // The worker moves: its allowances follow the names.
    assert_eq!(next.shards[0].grant(new_id("alpha")), 0, "carried, not yet");
    control.stats()[0].generation.store(2, Relaxed);
    {
        let super::Reloading::HandingOver(h) = &mut control.reloading else {
            panic!("no hand-over under way");
        };
        assert!(h.poll(control.stats.as_slice()));
    }
    assert_eq!(next.shards[0].grant(new_id("alpha")), alpha_left);
    assert_eq!(next.shards[0].grant(new_id("gamma")), gamma_left);
    assert!(next.shards[0].is_blocked(new_id("beta")));
    assert!(next.shards[0].is_blocked(new_id("delta")));
    assert!(!next.shards[0].is_blocked(new_id("alpha")));
    assert!(!next.shards[0].is_blocked(new_id("gamma")));
    let newco = next.classifier.lookup_addr("192.0.2.1".parse().unwrap());
    assert!(!next.shards[0].is_blocked(newco.unwrap()));

    control.serve(&incoming);
    let reply = reloaded.try_recv().expect("reload answered");
    assert_eq!(reply["ok"], true, "{reply}");
    let now = control.clock.now();
    let view = |name: &str| {
        let i = control.plane.find(name).unwrap();
        assert_eq!(i, new_id(name), "the plane and the classifier agree");
        control.plane.customer_view(i, now).unwrap()
    };
    // As counted before the reload, plus the SYNs sent since.
    for (i, (name, since, blocked)) in [
        ("alpha", 4, false),
        ("beta", 0, true),
        ("gamma", 6, false),
        ("delta", 0, true),
    ]
    .into_iter()
    .enumerate()
    {
        let v = view(name);
        let (seen, forwarded, windows) = &counted[i];
        assert_eq!(
            (v.seen, v.forwarded),
            (seen + since, forwarded + since),
            "{name}"
        );
        let now: Vec<u64> = v.windows.iter().map(|w| w.count).collect();
        let want: Vec<u64> = windows.iter().map(|c| c + since).collect();
        assert_eq!(now, want, "{name}'s windows");
        assert_eq!(v.state == "blocked", blocked, "{name}");
        assert!(next.shards[0].is_blocked(v.id) == blocked, "{name}'s bit");
    }
    assert_eq!(view("beta").offences, 1);
    let delta = serde_json::to_value(view("delta").reason).unwrap();
    assert!(delta.to_string().contains("abuse #26"), "{delta}");
    assert!(view("delta").until.is_some(), "the operator's 2 h stay");
    let newco = newco.unwrap();
    assert_eq!(control.plane.find("newco"), Some(newco));
    assert_eq!(control.plane.customer_view(newco, now).unwrap().seen, 0);
    // After the reload's tick: what alpha and gamma may still send is
    // their own limit less their own count.
    let sendable = |name: &str| {
        let i = new_id(name);
        (0..100).filter(|_| next.shards[0].try_forward(i)).count() as u64
    };
    assert_eq!(sendable("alpha"), 50 - 11);
    assert_eq!(sendable("gamma"), 40 - 19);
    assert_eq!(sendable("beta"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
