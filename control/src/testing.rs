//! What the control crate's tests share: the config they run with and one
//! fake control thread ([`Fake`]: a real [`ControlPlane`] over real
//! shards, no DPDK) behind the [`Operate`] seam.
//!
//! Built for this crate's unit tests and, with the `test-support` feature,
//! for its integration tests (`control/tests/`); never part of a release
//! build.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};
use synwall_config::{Config, Mode};
use synwall_dataplane::classify::{Classifier, CustomerId};
use synwall_dataplane::shard::WorkerShard;

use crate::commands::Operate;
use synwall_engine::event::Event;
use synwall_engine::plane::ControlPlane;

use synwall_config::fixtures::{customer, NET_NULL_HEAD};

/// The limits of [`config_text`]: default 5m = 10 and 1h = 100; plan
/// `mailserver` 5m = 1000.
const LIMITS: &str = r#"
[windows]
"5m" = 10
"1h" = 100

[plans.mailserver]
"5m" = 1000
"#;

/// The config the command and socket tests run with: [`LIMITS`] and the
/// customers `acme` (198.51.100.0/24, 2001:db8:1::/48), `mx`
/// (203.0.113.10, on the plan) and `mx2` (203.0.113.11, on the plan with
/// its own 5m = 7); customer ids: acme 0, mx 1, mx2 2.
pub fn config_text() -> String {
    let on_plan = "plan = \"mailserver\"";
    format!(
        "{NET_NULL_HEAD}{LIMITS}{}{}{}",
        customer("acme", &["198.51.100.0/24", "2001:db8:1::/48"], ""),
        customer("mx", &["203.0.113.10"], on_plan),
        customer(
            "mx2",
            &["203.0.113.11"],
            &format!("{on_plan}\nlimits = {{ \"5m\" = 7 }}")
        ),
    )
}

/// Where [`Fake::new`] says its config came from (never read).
pub const CONFIG_PATH: &str = "/nonexistent/synwall.toml";

/// How a [`Fake`] tells the time.
enum FakeClock {
    /// Moved by [`Fake::tick`], 100 ms a tick.
    Stepped(u64),
    /// Milliseconds since the fake was made.
    Real(Instant),
}

/// The appliance's control thread, minus DPDK: a real plane and classifier
/// over two real shards.
pub struct Fake {
    pub config: Config,
    pub plane: ControlPlane,
    pub classifier: Classifier,
    pub shards: Vec<Arc<WorkerShard>>,
    /// Events emitted and not yet taken.
    pub emitted: Vec<Event>,
    /// Every event the commands emitted ([`Operate::emit`]), also after
    /// they are taken from `emitted`.
    pub log: Arc<Mutex<Vec<Event>>>,
    /// The last global mode set.
    pub global: Option<Mode>,
    /// Whether `reload` succeeds.
    pub reload_ok: bool,
    clock: FakeClock,
}

impl Fake {
    /// [`config_text`] on a stepped clock, ticked once.
    pub fn new() -> Fake {
        Fake::with_config(&config_text(), Path::new(CONFIG_PATH))
    }

    /// `text` (read as if from `path`) on a stepped clock, ticked once.
    pub fn with_config(text: &str, path: &Path) -> Fake {
        let config = Config::load_text(text, path).unwrap_or_else(|e| panic!("{e}"));
        let mut f = Fake::build(config, 1_700_000_000_000, FakeClock::Stepped(0));
        f.tick();
        f
    }

    /// [`config_text`] on the real clock (for a loop that serves a socket).
    pub fn real_time() -> Fake {
        let config = Config::from_str(&config_text(), Path::new(CONFIG_PATH))
            .unwrap_or_else(|e| panic!("{e}"));
        Fake::build(
            config,
            synwall_engine::event::wall_now_ms(),
            FakeClock::Real(Instant::now()),
        )
    }

    fn build(config: Config, wall: u64, clock: FakeClock) -> Fake {
        let plane = ControlPlane::new(&config, 0, wall);
        let classifier = crate::setup::classifier(&config.customers).unwrap();
        let shards = (0..2)
            .map(|_| Arc::new(WorkerShard::new(config.customers.len())))
            .collect();
        Fake {
            config,
            plane,
            classifier,
            shards,
            emitted: Vec::new(),
            log: Arc::default(),
            global: None,
            reload_ok: true,
            clock,
        }
    }

    /// One control tick (a stepped clock moves 100 ms first); its events
    /// go to `emitted` (not to `log`).
    pub fn tick(&mut self) {
        if let FakeClock::Stepped(now) = &mut self.clock {
            *now += 100;
        }
        let now = self.now();
        let events = self.plane.tick(now, &self.shards);
        self.emitted.extend(events);
    }

    /// `n` watched SYNs from customer `c` on core 0, all forwarded, then a
    /// tick.
    pub fn syns(&mut self, c: u32, n: u64) {
        let s = &self.shards[0];
        let id = CustomerId::new(c);
        let now = s.read(id);
        s.seed_counts(id, now.seen + n, now.forwarded + n);
        self.tick();
    }
}

impl Default for Fake {
    fn default() -> Self {
        Fake::new()
    }
}

impl Operate for Fake {
    fn plane(&mut self) -> &mut ControlPlane {
        &mut self.plane
    }
    fn classifier(&self) -> &Classifier {
        &self.classifier
    }
    fn config(&self) -> &Config {
        &self.config
    }
    fn now(&self) -> u64 {
        match &self.clock {
            FakeClock::Stepped(now) => *now,
            FakeClock::Real(start) => start.elapsed().as_millis() as u64,
        }
    }
    fn status(&self) -> Value {
        json!({
            "version": "test",
            "customers": self.config.customers.len(),
            "links": [{"name": "l0", "rx_pps": 0}],
        })
    }
    fn reload(&mut self, by: &str) -> Result<String, String> {
        let message = format!("reloaded: {} customers", self.config.customers.len());
        let mut ev = Event::reload(self.plane.wall(self.now()), &message);
        ev.by = Some(by.to_owned());
        self.emit(&[ev]);
        if self.reload_ok {
            Ok(message)
        } else {
            Err("bad config: line 3".into())
        }
    }
    fn emit(&mut self, events: &[Event]) {
        self.emitted.extend_from_slice(events);
        self.log.lock().unwrap().extend_from_slice(events);
    }
    fn metrics_text(&self) -> String {
        "# TYPE synwall_up gauge\nsynwall_up 1\n".into()
    }
    fn set_global_mode(&mut self, mode: Mode) -> Result<(), String> {
        self.global = Some(mode);
        Ok(())
    }
}
