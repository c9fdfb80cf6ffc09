//! The what-if-versus-enforce agreement test of issue #24: a synthetic
//! month of ~1,000 customers is enforced by the plane on a test clock
//! (two shards, SYNs spread over both, extra idle ticks), its history
//! recorded through `take_recent` into a real store; `what-if` from that
//! history must name exactly the blocks enforcing produced, with the
//! limits in force and with other limits.
use std::collections::BTreeSet;
use std::path::Path;

use synwall_config::fixtures::{customer, NET_NULL_HEAD};
use synwall_history::{MinuteCount, Store};

use super::*;

const DAY: i64 = 1440;
const MONTH: i64 = 30 * DAY;
const WALL0: u64 = 1_767_225_600_000; // 2026-01-01T00:00Z
const M0: i64 = (WALL0 / 60_000) as i64;
const N: usize = 1_000;

fn config(limits: [u64; 3]) -> Config {
    let mut text = format!(
        "{NET_NULL_HEAD}
[windows]
\"5m\" = {}
\"1h\" = {}
\"1d\" = {}

[block]
duration = \"1h\"
escalation = 2.0
max_duration = \"1d\"
",
        limits[0], limits[1], limits[2]
    );
    for i in 0..N {
        text.push_str(&customer(
            &format!("c{i:04}"),
            &[&format!("10.{}.{}.0/24", i / 256, i % 256)],
            "",
        ));
    }
    Config::from_str(&text, Path::new("/tmp/synwall-whatif.toml")).unwrap_or_else(|e| panic!("{e}"))
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Per minute of the month, the SYNs each customer tries: 900 quiet ones
/// (a few SYNs a day), 95 steady mailers (0-3 a minute in office hours),
/// one that ramps up over the month, two spam runs of under two hours.
fn month() -> Vec<Vec<(u32, u64)>> {
    let mut rng = Rng(0x2424_2424);
    let mut t: Vec<Vec<(u32, u64)>> = vec![Vec::new(); MONTH as usize];
    for day in 0..30 {
        for c in 0..900u32 {
            for _ in 0..rng.below(4) {
                let m = day * DAY + rng.below(DAY as u64) as i64;
                t[m as usize].push((c, 1 + rng.below(3)));
            }
        }
        for m in day * DAY + 8 * 60..day * DAY + 18 * 60 {
            for c in 900..995u32 {
                let n = rng.below(4);
                if n > 0 {
                    t[m as usize].push((c, n));
                }
            }
            // The ramp: up to 7 a minute, 8:00-18:00, over the 1d limit
            // from about day 12.
            let n = (day / 4) as u64;
            if n > 0 {
                t[m as usize].push((995, n));
            }
        }
    }
    for (c, start, len, rate) in [
        (996u32, 10 * DAY + 14 * 60, 90, 150),
        (997, 20 * DAY + 3 * 60, 100, 200),
    ] {
        for m in start..start + len {
            t[m as usize].push((c, rate));
        }
    }
    t
}

type BlockSet = BTreeSet<(String, u64, Option<u64>, String)>;

/// Enforces `cfg` over `month` on the test clock; returns its blocks and,
/// when `store` is given, records the history there.
fn enforce(cfg: &Config, month: &[Vec<(u32, u64)>], mut store: Option<&mut Store>) -> BlockSet {
    let mut plane = ControlPlane::new(cfg, 0, WALL0);
    let shards: Vec<Arc<WorkerShard>> = (0..2).map(|_| Arc::new(WorkerShard::new(N))).collect();
    let mut events = plane.tick(0, &shards);
    let mut batch = Vec::new();
    for (m, tried) in month.iter().enumerate() {
        let now = m as u64 * 60_000;
        events.extend(plane.tick(now, &shards));
        for &(c, n) in tried {
            // Spread over the two cores, as RSS would.
            for k in 0..n {
                shards[(k % 2) as usize].try_forward(CustomerId::new(c));
            }
        }
        events.extend(plane.tick(now + SETTLE_MS, &shards));
        // An idle tick mid-minute: the replay has none.
        events.extend(plane.tick(now + 30_000, &shards));
        if store.is_some() {
            batch.extend(
                plane
                    .take_recent()
                    .into_iter()
                    .map(|(name, seen, forwarded)| MinuteCount {
                        customer: name.into(),
                        minute: M0 + m as i64,
                        seen,
                        forwarded,
                    }),
            );
            if (m as i64 + 1) % DAY == 0 {
                if let Some(s) = store.as_deref_mut() {
                    s.write(&batch, &[]).unwrap();
                }
                batch.clear();
            }
        }
    }
    events
        .into_iter()
        .filter(|e| e.kind == EventKind::Block)
        .map(|e| {
            (
                e.customer.unwrap_or_default(),
                e.ts.0,
                e.until.map(|u| u.0),
                e.window.unwrap_or_default(),
            )
        })
        .collect()
}

fn what_if(cfg: &Config, store: &Store) -> BlockSet {
    let mut who = Vec::new();
    let mut series = Vec::new();
    for c in &cfg.customers {
        who.push(Candidate {
            name: c.name.clone(),
            limits: cfg.effective_limits(c),
        });
        series.push(
            store
                .series(&c.name, M0, M0 + MONTH)
                .unwrap()
                .unwrap_or_default(),
        );
    }
    replay(cfg, &who, &series, M0, M0 + MONTH)
        .into_iter()
        .flat_map(|r| {
            let name = r.customer;
            r.blocks
                .into_iter()
                .map(move |b| (name.clone(), b.at_ms, b.until_ms, b.window))
        })
        .collect()
}

fn names(blocks: &BlockSet) -> BTreeSet<&str> {
    blocks.iter().map(|b| b.0.as_str()).collect()
}

#[test]
fn what_if_names_exactly_the_blocks_enforcing_made() {
    let dir = std::env::temp_dir().join(format!("synwall-whatif-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut store, _) = Store::open(&dir, WALL0).unwrap();
    let month = month();
    let current = config([100, 500, 2000]);
    let enforced = enforce(&current, &month, Some(&mut store));
    // Not vacuous: the spammers and the ramp were blocked, the quiet and
    // steady customers were not.
    assert_eq!(
        names(&enforced),
        BTreeSet::from(["c0995", "c0996", "c0997"]),
        "{enforced:?}"
    );
    assert!(enforced.len() >= 5, "{enforced:?}");
    assert_eq!(what_if(&current, &store), enforced);

    // Other limits: the history recorded under the current ones replays
    // into exactly what enforcing the others does.
    let other = config([40, 110, 1500]);
    let enforced_other = enforce(&other, &month, None);
    assert!(names(&enforced_other).len() > names(&enforced).len());
    assert_eq!(what_if(&other, &store), enforced_other);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
