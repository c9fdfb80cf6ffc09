//! The fleet's lease script against a real redis-server started by the
//! test: grants never exceed what is free, expired leases are charged,
//! releases refund, buckets expire, retries change nothing, NOSCRIPT
//! recovers, and bad replies are errors.
use std::time::Duration;

use synwall_fleet::node::Node;
use synwall_fleet::script::{Call, Op, ParseReply, Reply, SharedWindow};
use synwall_tests::redis::RedisServer;
use synwall_tests::TestDir;

fn lease(customer: &str, app: &str, seq: u64, lease: u64, spent: u64, want: u64) -> Call {
    call(
        customer,
        app,
        Op::Lease {
            seq,
            lease,
            spent,
            want,
            release: false,
        },
    )
}

fn call(customer: &str, app: &str, op: Op) -> Call {
    Call {
        customer: customer.into(),
        app: app.into(),
        ttl_ms: 5_000,
        windows: vec![
            SharedWindow {
                length_ms: 60_000,
                leased: 100,
            },
            SharedWindow {
                length_ms: 3_600_000,
                leased: 1000,
            },
        ],
        op,
    }
}

fn one(node: &mut Node, c: Call) -> Reply {
    let mut r = node.round(&[c]);
    r.pop()
        .unwrap()
        .unwrap_or_else(|e| panic!("call failed: {e}"))
}

fn setup(name: &str) -> (TestDir, RedisServer, Node) {
    let dir = TestDir::new(name);
    let redis = RedisServer::start(&dir.path);
    let node = Node::new(&redis.url(), Duration::from_secs(2)).unwrap();
    (dir, redis, node)
}

#[test]
fn grants_never_exceed_what_is_free() {
    let (_dir, _redis, mut node) = setup("script-free");
    let a = one(&mut node, lease("acme", "a", 1, 0, 0, 70));
    assert_eq!((a.granted, a.spent, a.free), (70, 0, 30));
    assert!(a.lease > 0 && a.expires > a.now && a.block.is_none());
    let b = one(&mut node, lease("acme", "b", 1, 0, 0, 70));
    assert_eq!((b.granted, b.free), (30, 0), "only what A does not hold");
    assert_eq!(b.exhausted, Some((0, 100)), "the 1m window is used up");
    let c = one(&mut node, lease("acme", "c", 1, 0, 0, 5));
    assert_eq!((c.granted, c.lease), (0, 0), "nothing left: no lease");
    // A spends 20 of its 70: still held (as spent, not free).
    let a2 = one(&mut node, lease("acme", "a", 2, a.lease, 20, 10));
    assert_eq!((a2.lease, a2.granted, a2.spent), (a.lease, 70, 20));
    // Another customer is not touched.
    let other = one(&mut node, lease("other", "a", 1, 0, 0, 100));
    assert_eq!(other.granted, 100);
    // A whole pipeline of calls: their sum never exceeds the limit.
    let calls: Vec<Call> = (0..10)
        .map(|i| lease("busy", &format!("app{i}"), 1, 0, 0, 15))
        .collect();
    let granted: u64 = node
        .round(&calls)
        .into_iter()
        .map(|r| r.unwrap().granted)
        .sum();
    assert_eq!(granted, 100);
}

#[test]
fn release_refunds_the_unspent_rest() {
    let (_dir, _redis, mut node) = setup("script-release");
    let a = one(&mut node, lease("acme", "a", 1, 0, 0, 100));
    assert_eq!(a.granted, 100);
    let released = one(
        &mut node,
        call(
            "acme",
            "a",
            Op::Lease {
                seq: 2,
                lease: a.lease,
                spent: 10,
                want: 0,
                release: true,
            },
        ),
    );
    assert_eq!((released.lease, released.granted), (0, 0));
    let b = one(&mut node, lease("acme", "b", 1, 0, 0, 100));
    assert_eq!(b.granted, 90, "the 10 spent stay charged, the 90 are free");
}

#[test]
fn an_expired_lease_is_charged_as_spent() {
    let (_dir, _redis, mut node) = setup("script-expired");
    let mut c = lease("acme", "a", 1, 0, 0, 60);
    c.ttl_ms = 200;
    let a = one(&mut node, c);
    assert_eq!(a.granted, 60);
    std::thread::sleep(Duration::from_millis(300));
    let b = one(&mut node, lease("acme", "b", 1, 0, 0, 100));
    assert_eq!(b.granted, 40, "A's expired 60 count as spent");
    // A reporting late on its expired lease changes nothing and gets a
    // new lease from what is left (nothing).
    let late = one(&mut node, lease("acme", "a", 2, a.lease, 5, 10));
    assert_eq!(late.granted, 0);
    assert_ne!(late.lease, a.lease);
}

#[test]
fn buckets_expire_with_their_window() {
    let (_dir, _redis, mut node) = setup("script-buckets");
    let short = |app: &str, seq: u64, lease: u64, spent: u64, want: u64, release: bool| Call {
        customer: "acme".into(),
        app: app.into(),
        ttl_ms: 5_000,
        // Buckets of 100 ms: the window drains 3 s (plus a bucket) after
        // the spend.
        windows: vec![SharedWindow {
            length_ms: 3_000,
            leased: 50,
        }],
        op: Op::Lease {
            seq,
            lease,
            spent,
            want,
            release,
        },
    };
    let a = one(&mut node, short("a", 1, 0, 0, 50, false));
    assert_eq!(a.granted, 50);
    one(&mut node, short("a", 2, a.lease, 50, 0, true));
    let before = one(&mut node, short("b", 1, 0, 0, 50, false));
    assert_eq!(before.granted, 0, "all 50 spent within the window");
    std::thread::sleep(Duration::from_millis(3_300));
    let after = one(&mut node, short("b", 2, 0, 0, 50, false));
    assert_eq!(after.granted, 50, "the spend has aged out");
}

#[test]
fn a_retried_sequence_number_changes_nothing() {
    let (_dir, _redis, mut node) = setup("script-dup");
    let first = one(&mut node, lease("acme", "a", 7, 0, 0, 30));
    assert!(!first.dup);
    let again = one(&mut node, lease("acme", "a", 7, 0, 0, 30));
    assert!(again.dup, "{again:?}");
    assert_eq!(
        (again.lease, again.granted, again.spent),
        (first.lease, 30, 0),
        "the server's view of the lease that call made"
    );
    let older = one(&mut node, lease("acme", "a", 3, 0, 0, 30));
    assert!(older.dup);
    let b = one(&mut node, lease("acme", "b", 1, 0, 0, 100));
    assert_eq!(b.granted, 70, "the retries granted nothing more");
    // A retried report does not charge twice.
    let r1 = one(&mut node, lease("acme", "a", 8, first.lease, 10, 0));
    let r2 = one(&mut node, lease("acme", "a", 8, first.lease, 10, 0));
    assert!(!r1.dup && r2.dup);
    assert_eq!((r2.granted, r2.spent), (30, 10));
    // Reporting more than the lease had is clamped and flagged.
    let over = one(&mut node, lease("acme", "a", 9, first.lease, 99, 0));
    assert!(over.overspent);
    assert_eq!(over.spent, 30);
}

#[test]
fn noscript_after_script_flush_recovers() {
    let (_dir, redis, mut node) = setup("script-noscript");
    let a = one(&mut node, lease("acme", "a", 1, 0, 0, 10));
    assert_eq!(a.granted, 10);
    assert_eq!(node.script_loads, 1, "a fresh server has no script");
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]).as_deref(), Some("OK"));
    let calls = [
        lease("acme", "a", 2, a.lease, 0, 10),
        lease("beta", "a", 1, 0, 0, 10),
    ];
    let replies: Vec<Reply> = node.round(&calls).into_iter().map(Result::unwrap).collect();
    assert_eq!(node.script_loads, 2);
    assert_eq!((replies[0].granted, replies[1].granted), (20, 10));
}

#[test]
fn blocks_are_in_every_reply_and_unblock_forgives() {
    let (_dir, _redis, mut node) = setup("script-block");
    let a = one(&mut node, lease("acme", "a", 1, 0, 0, 100));
    assert_eq!(a.granted, 100);
    one(&mut node, lease("acme", "a", 2, a.lease, 100, 0));
    one(
        &mut node,
        call(
            "acme",
            "a",
            Op::Block {
                ms: Some(60_000),
                reason: "limit 1m".into(),
                by: "limit".into(),
            },
        ),
    );
    let b = one(&mut node, lease("acme", "b", 1, 0, 0, 10));
    let block = b.block.expect("blocked fleet-wide");
    assert_eq!((block.app.as_str(), block.by.as_str()), ("a", "limit"));
    assert!(block.until.unwrap() > b.now);
    assert_eq!(b.granted, 0);
    one(&mut node, call("acme", "b", Op::Unblock));
    let c = one(&mut node, lease("acme", "b", 2, 0, 0, 10));
    assert!(c.block.is_none());
    assert_eq!(c.granted, 10, "the windows were forgiven");
    // An indefinite block.
    one(
        &mut node,
        call(
            "acme",
            "b",
            Op::Block {
                ms: None,
                reason: "abuse".into(),
                by: "ops".into(),
            },
        ),
    );
    let d = one(&mut node, lease("acme", "a", 3, 0, 0, 10));
    assert_eq!(d.block.unwrap().until, None);
}

#[test]
fn an_unreachable_node_fails_every_call_and_reconnects() {
    let (_dir, mut redis, mut node) = setup("script-down");
    one(&mut node, lease("acme", "a", 1, 0, 0, 10));
    redis.kill();
    let r = node.round(&[lease("acme", "a", 2, 0, 0, 10), lease("b", "a", 1, 0, 0, 1)]);
    assert!(r
        .iter()
        .all(|r| matches!(r, Err(synwall_fleet::node::CallError::Unreachable { .. }))));
    redis.restart_empty();
    let back = one(&mut node, lease("acme", "a", 3, 0, 0, 10));
    assert_eq!(back.granted, 10);
}

#[test]
fn malformed_replies_are_errors() {
    use redis::Value;
    assert!(Reply::parse(&Value::Int(1)).is_err());
    assert!(Reply::parse(&Value::Array(vec![Value::Int(0); 3])).is_err());
    let mut v = vec![Value::Int(0); 15];
    v[14] = Value::Array(Vec::new());
    v[2] = Value::Int(-5);
    assert!(Reply::parse(&Value::Array(v.clone())).is_err());
    v[2] = Value::Int(5);
    v[7] = Value::Int(1);
    assert!(
        Reply::parse(&Value::Array(v.clone())).is_ok(),
        "no block: text unused"
    );
    // Notes this version cannot read are skipped and counted, never fatal.
    let text = |t: &str| Value::BulkString(t.as_bytes().to_vec());
    v[14] = Value::Array(vec![
        text("block"),
        text("12 edge-a"),
        text("limit:x"),
        text("13 5 edge-a"),
        text("unblock"),
    ]);
    let r = Reply::parse(&Value::Array(v.clone())).expect("bad notes are skipped");
    assert_eq!((r.notes.len(), r.bad_notes), (1, 2), "{r:?}");
    v[14] = Value::Int(3);
    assert!(
        Reply::parse(&Value::Array(v)).is_err(),
        "notes not an array"
    );
}

#[test]
fn announcements_are_noted_with_the_servers_clock_and_read_back() {
    use synwall_fleet::link::Said;
    let (_dir, redis, mut node) = setup("script-notes");
    let notes = |node: &mut Node| {
        let mut n = one(node, call("acme", "c", Op::Notes)).notes;
        n.sort_by_key(|n| n.version);
        n
    };
    assert!(notes(&mut node).is_empty(), "nothing said yet");
    let before = one(&mut node, call("acme", "c", Op::Notes)).now;
    let block = Op::Block {
        ms: Some(60_000),
        reason: "abuse".into(),
        by: "ops".into(),
    };
    one(&mut node, call("acme", "a", block));
    one(
        &mut node,
        call(
            "acme",
            "b",
            Op::Limit {
                window_ms: 60_000,
                value: 7,
            },
        ),
    );
    let n = notes(&mut node);
    assert_eq!(n.len(), 2, "{n:?}");
    assert_eq!((n[0].said, n[0].app.as_str()), (Said::Block, "a"));
    assert_eq!(
        (n[1].said, n[1].app.as_str()),
        (
            Said::Limit {
                window_ms: 60_000,
                value: 7
            },
            "b"
        )
    );
    // Versions are the server's µs, in the order said.
    assert!(n[0].version / 1000 >= before, "{n:?} vs {before}");
    assert!(n[1].version > n[0].version, "{n:?}");
    // An unblock is noted beside the block (the block key is gone), and
    // every reply, a lease's too, carries the notes.
    one(&mut node, call("acme", "b", Op::Unblock));
    let r = one(&mut node, lease("acme", "a", 1, 0, 0, 1));
    assert!(r.block.is_none());
    let kinds: Vec<Said> = r.notes.iter().map(|n| n.said).collect();
    assert!(kinds.contains(&Said::Unblock), "{kinds:?}");
    assert!(kinds.contains(&Said::Block), "{kinds:?}");
    let unblock = r.notes.iter().find(|n| n.said == Said::Unblock).unwrap();
    assert!(unblock.version > n[1].version);
    // A later set-limit of the same window replaces the earlier note.
    one(
        &mut node,
        call(
            "acme",
            "a",
            Op::Limit {
                window_ms: 60_000,
                value: 9,
            },
        ),
    );
    let limits: Vec<_> = notes(&mut node)
        .into_iter()
        .filter(|n| matches!(n.said, Said::Limit { .. }))
        .collect();
    assert_eq!(limits.len(), 1, "{limits:?}");
    assert_eq!(
        limits[0].said,
        Said::Limit {
            window_ms: 60_000,
            value: 9
        }
    );
    // The notes live on the customer's slot and expire (7 days).
    let ttl = redis.cli(&["PTTL", "{c:acme}:a"]).unwrap();
    let ttl: i64 = ttl.trim().parse().unwrap();
    assert!(
        ttl > 6 * 86_400_000 && ttl <= 7 * 86_400_000,
        "notes ttl {ttl}"
    );
    // A read changes nothing.
    let again = notes(&mut node);
    assert_eq!(again.len(), 3);
    assert!(one(&mut node, call("other", "a", Op::Notes))
        .notes
        .is_empty());
}

#[test]
fn customers_spread_over_a_three_master_cluster_all_work() {
    use synwall_fleet::cluster::Router;
    use synwall_fleet::node::CallError;
    use synwall_tests::redis::RedisCluster;

    let dir = TestDir::new("script-cluster");
    let mut cluster = RedisCluster::start(&dir.path, 3);
    let mut router = Router::new(&cluster.urls(), Duration::from_secs(2), 60_000);
    let names: Vec<String> = (0..30).map(|i| format!("cust{i}")).collect();
    let calls: Vec<Call> = names.iter().map(|n| lease(n, "a", 1, 0, 0, 70)).collect();
    let (replies, healths) = router.round(&calls);
    assert_eq!(
        healths.iter().filter(|r| r.asked).count(),
        3,
        "all three masters were asked: {healths:?}"
    );
    assert!(healths
        .iter()
        .all(|r| r.health.up && !r.health.lost_state && r.error.is_none()));
    for (n, r) in names.iter().zip(&replies) {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(r.granted, 70, "{n}");
    }
    // Each master holds its own customers' state: a second appliance gets
    // only the rest, wherever the customer lives.
    let calls: Vec<Call> = names.iter().map(|n| lease(n, "b", 1, 0, 0, 70)).collect();
    let (replies, _) = router.round(&calls);
    assert!(replies.iter().all(|r| r.as_ref().unwrap().granted == 30));
    let homes: std::collections::BTreeSet<usize> =
        names.iter().filter_map(|n| router.node_of(n)).collect();
    assert_eq!(homes.len(), 3, "customers on every master");

    // One master dies: only its customers' calls fail.
    let victim = router.node_of(&names[0]).unwrap();
    let victim_url = router.urls()[victim].clone();
    let server = cluster
        .servers
        .iter_mut()
        .find(|s| s.url() == victim_url)
        .expect("the victim's server");
    server.kill();
    let calls: Vec<Call> = names.iter().map(|n| lease(n, "c", 1, 0, 0, 1)).collect();
    let (replies, _) = router.round(&calls);
    for (n, r) in names.iter().zip(&replies) {
        let on_victim = router.node_of(n) == Some(victim);
        match r {
            Ok(r) => {
                assert!(!on_victim, "{n} answered by a dead master");
                assert_eq!(r.granted, 0, "{n}: nothing left");
            }
            Err(CallError::Unreachable { .. }) => assert!(on_victim, "{n} failed: {r:?}"),
            Err(e) => panic!("{n}: {e}"),
        }
    }
    // Still so once the cluster has noticed (node timeout 2 s) and the
    // router has re-read the topology.
    std::thread::sleep(Duration::from_secs(3));
    let calls: Vec<Call> = names.iter().map(|n| lease(n, "d", 1, 0, 0, 1)).collect();
    let (replies, _) = router.round(&calls);
    for (n, r) in names.iter().zip(&replies) {
        let on_victim = router
            .node_of(n)
            .is_none_or(|i| router.urls()[i] == victim_url);
        assert_eq!(r.is_err(), on_victim, "{n}: {r:?}");
    }
}
