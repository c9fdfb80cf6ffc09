//! The fuzz targets' bodies, one module per target, so that the targets in
//! `fuzz_targets/` are one line each and a crash reproduces by calling
//! `check` on the input. `frame` depends on `synwall_dataplane` only, so
//! the workspace's regression replay includes it as is.

#[path = "frame.rs"]
pub mod frame;

/// The config loader: TOML text to a validated `Config`, and what the
/// appliance builds from one (classifier, control plane).
pub mod config {
    use std::path::Path;

    use synwall_config::Config;
    use synwall_engine::classifier;
    use synwall_engine::plane::ControlPlane;

    /// A directory that does not exist (`Config::from_str` reads no file
    /// anyway: a `customers_file` is refused the same way on every
    /// machine).
    pub const PATH: &str = "/nonexistent/synwall-fuzz/synwall.toml";

    pub fn check(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(config) = Config::from_str(text, Path::new(PATH)) else {
            return;
        };
        for customer in &config.customers {
            assert_eq!(
                config.effective_limits(customer).len(),
                config.windows.len()
            );
            let _ = config.effective_mode(customer);
        }
        let _ = classifier::classifier(&config.customers);
        let plane = ControlPlane::new(&config, 0, 0);
        assert_eq!(plane.customers(), config.customers.len());
    }
}

/// The snapshot loader: bytes to a `Snapshot`, restored onto a plane built
/// from a small config, ticked, and snapshotted again.
pub mod snapshot {
    use std::path::Path;
    use std::sync::{Arc, OnceLock};

    use synwall_config::fixtures::{customer, NET_NULL_HEAD};
    use synwall_config::Config;
    use synwall_engine::plane::ControlPlane;
    use synwall_engine::snapshot;
    use synwall_dataplane::shard::WorkerShard;
    use synwall_dataplane::CustomerId;

    /// Two windows, a plan, a standing block, a monitor and an exempt
    /// customer: every branch `restore` has.
    pub fn config_text() -> String {
        let limits = "[windows]\n\"1m\" = 5\n\"1h\" = 50\n\n[plans.mailserver]\n\"1m\" = 1000\n";
        [
            NET_NULL_HEAD,
            limits,
            &customer("acme", &["198.51.100.0/24"], ""),
            &customer("beta", &["192.0.2.0/24"], "plan = \"mailserver\""),
            &customer("spam", &["203.0.113.0/24"], "blocked = true"),
            &customer("mon", &["10.0.0.0/8"], "mode = \"monitor\""),
            &customer("free", &["10.1.0.0/16"], "mode = \"exempt\""),
        ]
        .concat()
    }

    /// Monotonic and wall clocks of the fuzzed plane (ms).
    pub const NOW: u64 = 1_000_000;
    pub const WALL: u64 = 1_700_000_000_000;

    pub fn config() -> &'static Config {
        static C: OnceLock<Config> = OnceLock::new();
        C.get_or_init(|| {
            Config::from_str(&config_text(), Path::new(super::config::PATH))
                .expect("fuzz config")
        })
    }

    pub fn check(data: &[u8]) {
        let path = Path::new("/nonexistent/state.json");
        let Ok(snap) = snapshot::parse(data, path, WALL) else {
            return;
        };
        let config = config();
        let mut plane = ControlPlane::new(config, NOW, WALL);
        let restored = plane.restore(&snap, NOW);
        assert!(restored <= snap.customers.len());
        let shards = [Arc::new(WorkerShard::new(plane.customers()))];
        plane.attach_fresh(&shards);
        for step in [0, 100, 60_000, 3_600_000, 400 * 86_400_000] {
            let now = NOW + step;
            let _ = plane.tick(now, &shards);
            for c in CustomerId::all(plane.customers()) {
                let _ = plane.customer_view(c, now);
            }
            let _ = plane.blocks();
            let _ = plane.top(10, 0, now);
        }
        // What it writes back reads back.
        let again = plane.snapshot(NOW);
        let text = snapshot::encode(&again).expect("serialize");
        let reread = snapshot::parse(&text, path, WALL + NOW).expect("own snapshot reads back");
        assert_eq!(reread, again);
    }
}

/// The control protocol: one request line to a `Command`.
pub mod protocol {
    use synwall_protocol::{parse_line, MAX_LINE};

    pub fn check(data: &[u8]) {
        let Ok(cmd) = parse_line(data) else {
            return;
        };
        assert!(data.len() <= MAX_LINE);
        let _ = (cmd.name(), cmd.mutates());
        // What synwallctl sends is what the server reads.
        let line = cmd.to_line();
        assert!(!line.contains('\n'));
        assert_eq!(parse_line(line.as_bytes()).expect("round trip"), cmd);
    }
}
