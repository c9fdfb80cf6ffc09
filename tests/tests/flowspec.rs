//! Blocks as BGP FlowSpec with two real gobgpd processes on loopback
//! addresses: synwall's speaker (whose API synwall drives) and a stand-in
//! router peering with it. Block by limit and by operator → the router's
//! RIB has the rules (checked field by field); unblock → gone; restart of
//! the speaker, of synwall and of the router → converges; a rule synwall
//! did not announce is never withdrawn; an IPv6 prefix; gobgpd down is
//! counted and shown.
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_tests::*;

const WAIT: Duration = Duration::from_secs(60);
/// synwall's marker community, 64512:2525, as gobgp's JSON shows it.
const MARKER: u64 = (64512 << 16) | 2525;

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// One gobgpd, stopped (killed) on drop.
struct Gobgpd {
    child: Option<Child>,
    config: PathBuf,
    api: u16,
    log: PathBuf,
}

impl Gobgpd {
    /// A speaker at `me` (AS `asn`, BGP port `port`) peering with `peer`
    /// (AS `peer_asn`, BGP port `peer_port`) for both FlowSpec families.
    #[allow(clippy::too_many_arguments)]
    fn start(
        dir: &TestDir,
        name: &str,
        me: &str,
        asn: u32,
        port: u16,
        peer: &str,
        peer_asn: u32,
        peer_port: u16,
    ) -> Gobgpd {
        let config = dir.join(&format!("{name}.toml"));
        fs::write(
            &config,
            format!(
                "[global.config]\n  as = {asn}\n  router-id = \"{me}\"\n  port = {port}\n  \
                 local-address-list = [\"{me}\"]\n\
                 [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{peer}\"\n    \
                 peer-as = {peer_asn}\n  [neighbors.transport.config]\n    local-address = \"{me}\"\n    \
                 remote-port = {peer_port}\n  [neighbors.timers.config]\n    connect-retry = 1\n  \
                 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-flowspec\"\n  \
                 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv6-flowspec\"\n"
            ),
        )
        .expect("gobgpd config");
        let mut g = Gobgpd {
            child: None,
            config,
            api: free_port(),
            log: dir.join(&format!("{name}.log")),
        };
        g.spawn();
        g
    }

    fn spawn(&mut self) {
        let child = Command::new("gobgpd")
            .arg("-f")
            .arg(&self.config)
            .arg("--api-hosts")
            .arg(format!("127.0.0.1:{}", self.api))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&self.log).expect("log"))
            .spawn()
            .expect("starting gobgpd (scripts/setup installs Debian's gobgpd)");
        self.child = Some(child);
        wait_until("gobgpd's API", WAIT, || {
            self.cli(&["global"]).ok().filter(|o| o.contains("AS:"))
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// [`Self::cli`] with the arguments in one space-separated string.
    fn cli_line(&self, args: &str) -> Result<String, String> {
        self.cli(&args.split(' ').collect::<Vec<_>>())
    }

    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("gobgp")
            .arg("-p")
            .arg(self.api.to_string())
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(text)
    }

    /// The RIB of `family` as gobgp lists it: NLRI text → first path.
    /// A failed read (a busy machine: the CLI gives up after a second) is
    /// retried; only an answer counts.
    fn rib(&self, family: &str) -> Rib {
        wait_until(&format!("a read of {family}"), WAIT, || {
            let text = self.cli(&["global", "rib", "-a", family, "-j"]).ok()?;
            match serde_json::from_str::<Value>(text.trim()) {
                Ok(Value::Object(m)) => {
                    Some(m.into_iter().map(|(k, v)| (k, v[0].clone())).collect())
                }
                _ => None,
            }
        })
    }

    /// [`Self::rib`] of both flowspec families: (IPv4, IPv6).
    fn flowspec_ribs(&self) -> (Rib, Rib) {
        (self.rib("ipv4-flowspec"), self.rib("ipv6-flowspec"))
    }
}

/// A RIB as [`Gobgpd::rib`] reads it.
type Rib = serde_json::Map<String, Value>;

/// Whether the RIBs hold acme's rules for both its prefixes
/// (10.1.0.0/16, 2001:db8:1::/48).
fn has_acme_rules(v4: &Rib, v6: &Rib) -> bool {
    v4.contains_key(&v4_rule("10.1.0.0/16")) && v6.contains_key(&v6_rule("2001:db8:1::/48"))
}

impl Drop for Gobgpd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn v4_rule(prefix: &str) -> String {
    format!("[source: {prefix}][protocol: ==tcp][destination-port: ==25][tcp-flags: =S&!=A]")
}

fn v6_rule(prefix: &str) -> String {
    format!("[source: {prefix}/0][protocol: ==tcp][destination-port: ==25][tcp-flags: =S&!=A]")
}

/// The rule's path as the router holds it: match and action, field by field.
#[track_caller]
fn assert_rule(path: &Value, prefix: &str) {
    let nlri = path["nlri"]["value"].as_array().expect("nlri components");
    let by_type = |t: u64| {
        nlri.iter()
            .find(|c| c["type"] == t)
            .unwrap_or_else(|| panic!("no component {t} in {path}"))
    };
    assert_eq!(
        by_type(2)["value"]["prefix"],
        prefix,
        "source prefix: {path}"
    );
    assert_eq!(
        by_type(3)["value"],
        serde_json::json!([{"op": 129, "value": 6}]),
        "protocol == tcp: {path}"
    );
    assert_eq!(
        by_type(5)["value"],
        serde_json::json!([{"op": 129, "value": 25}]),
        "destination port == 25: {path}"
    );
    // SYN set (match), and (0x40) not (0x02) match ACK, end of list.
    assert_eq!(
        by_type(9)["value"],
        serde_json::json!([{"op": 1, "value": 2}, {"op": 195, "value": 16}]),
        "tcp-flags SYN and not ACK: {path}"
    );
    let attrs = path["attrs"].as_array().expect("attrs");
    let ext = attrs
        .iter()
        .find(|a| a["type"] == 16)
        .unwrap_or_else(|| panic!("no extended communities: {path}"));
    assert_eq!(
        ext["value"],
        serde_json::json!([{"type": 128, "subtype": 6, "as": 0, "rate": 0}]),
        "traffic-rate 0 (discard): {path}"
    );
    let comm = attrs
        .iter()
        .find(|a| a["type"] == 8)
        .unwrap_or_else(|| panic!("no communities: {path}"));
    assert_eq!(comm["communities"], serde_json::json!([MARKER]), "{path}");
}

fn ask(socket: &std::path::Path, req: &str) -> Value {
    control_request(
        socket,
        format!("{req}\n").as_bytes(),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("{req}: {e}"))
}

#[test]
fn blocks_reach_the_router_as_flowspec_and_follow_unblock_and_restarts() {
    // Loopback addresses of this run's own: 127.77.N.1 speaker, .2 router.
    let n = std::process::id() % 200 + 20;
    let speaker_ip = format!("127.77.{n}.1");
    let router_ip = format!("127.77.{n}.2");
    let (sp, rp) = (free_port(), free_port());
    let gdir = TestDir::new("flowspec-bgp");
    let mut speaker = Gobgpd::start(
        &gdir,
        "speaker",
        &speaker_ip,
        65001,
        sp,
        &router_ip,
        65002,
        rp,
    );
    let mut router = Gobgpd::start(
        &gdir,
        "router",
        &router_ip,
        65002,
        rp,
        &speaker_ip,
        65001,
        sp,
    );

    wait_until("the BGP session", WAIT, || {
        speaker
            .cli(&["neighbor"])
            .ok()
            .filter(|o| o.contains("Establ"))
    });

    // A rule someone else put into the speaker (no synwall community).
    speaker
        .cli_line("global rib -a ipv4-flowspec add match destination 192.0.2.0/24 protocol tcp then discard")
        .expect("foreign rule");
    let foreign = "[destination: 192.0.2.0/24][protocol: ==tcp]";

    // acme (IPv4 and IPv6) goes over its 5m limit of 5 with 20 SYNs.
    let mx = Ipv4Addr::new(93, 184, 216, 34);
    let frames: Vec<Vec<u8>> = (0..20u16)
        .map(|i| FrameBuilder::tcp_v4(Ipv4Addr::new(10, 1, 0, 1), mx, 5000 + i, 25, SYN).build())
        .collect();
    let mut s = Scenario::new(frames, Vec::new())
        .sections("[windows]\n\"5m\" = 5\n")
        .customers(
            "[[customer]]\nname = \"acme\"\nprefixes = [\"10.1.0.0/16\", \"2001:db8:1::/48\"]\n\n\
             [[customer]]\nname = \"beta\"\nprefixes = [\"10.2.0.0/16\"]\n",
        );
    s.sections.push_str(&format!(
        "[flowspec]\ngobgp = \"127.0.0.1:{}\"\n",
        speaker.api
    ));
    let metrics_port = free_port();
    s.control = format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n");
    s.duration = 600.0;
    let dir = TestDir::new("flowspec-synwall");
    let mut running = s.spawn(dir, &[]);
    let socket = running.dir().join("control.sock");

    // Block by limit: both of acme's prefixes reach the router.
    running.wait_for_event("acme blocked", WAIT, |e| {
        e["kind"] == "block" && e["customer"] == "acme"
    });
    // synwall's part: in the speaker's RIB within 2 s (a second of slack
    // for a loaded machine); then BGP carries them to the router.
    let blocked_at = Instant::now();
    running.wait_for("acme's rules in the speaker", WAIT, |_| {
        let (v4, v6) = speaker.flowspec_ribs();
        has_acme_rules(&v4, &v6).then_some(())
    });
    let took = blocked_at.elapsed();
    assert!(took < Duration::from_secs(3), "announced after {took:?}");
    let rib = running.wait_for("acme's rules at the router", WAIT, |_| {
        let (v4, v6) = router.flowspec_ribs();
        has_acme_rules(&v4, &v6).then_some((v4, v6))
    });
    assert_rule(&rib.0[&v4_rule("10.1.0.0/16")], "10.1.0.0/16");
    assert_rule(&rib.1[&v6_rule("2001:db8:1::/48")], "2001:db8:1::/48");

    // Block by operator.
    let r = ask(
        &socket,
        r#"{"cmd":"block","customer":"beta","duration":"1h","reason":"test"}"#,
    );
    assert_eq!(r["ok"], true, "{r}");
    let t = Instant::now();
    running.wait_for("beta's rule at the router", WAIT, |_| {
        router
            .rib("ipv4-flowspec")
            .get(&v4_rule("10.2.0.0/16"))
            .map(|p| assert_rule(p, "10.2.0.0/16"))
    });
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // Unblock: gone from the router; acme's stay, and the foreign rule.
    let r = ask(&socket, r#"{"cmd":"unblock","customer":"beta"}"#);
    assert_eq!(r["ok"], true, "{r}");
    let t = Instant::now();
    running.wait_for("beta's rule withdrawn", WAIT, |_| {
        (!router
            .rib("ipv4-flowspec")
            .contains_key(&v4_rule("10.2.0.0/16")))
        .then_some(())
    });
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // A full resync has passed since: the foreign rule is still there.
    std::thread::sleep(Duration::from_secs(4));
    let v4 = router.rib("ipv4-flowspec");
    assert!(
        v4.contains_key(foreign),
        "synwall withdrew a rule it did not announce: {v4:?}"
    );
    assert!(v4.contains_key(&v4_rule("10.1.0.0/16")), "{v4:?}");
    // (On a loaded machine a gobgp call may time out and be retried: the
    // status is waited for, not sampled.)
    let st = running.wait_for("flowspec up with 2 rules in status", WAIT, |_| {
        let st = ask(&socket, r#"{"cmd":"status"}"#);
        (st["flowspec"]["up"] == true && st["flowspec"]["announced"] == 2).then_some(st)
    });
    assert_eq!(st["flowspec"]["desired"], 2, "{st}");
    assert_eq!(st["flowspec"]["withdrawals"], 1, "{st}");

    // The speaker goes down: counted and shown; back up: refilled.
    speaker.stop();
    let st = running.wait_for("flowspec down in status", WAIT, |_| {
        let st = ask(&socket, r#"{"cmd":"status"}"#);
        (st["flowspec"]["up"] == false && st["flowspec"]["errors"].as_u64() >= Some(2))
            .then_some(st)
    });
    assert!(
        st["flowspec"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("gobgp"),
        "{st}"
    );
    // /metrics says so too (refreshed once a second).
    wait_until("flowspec errors in /metrics", WAIT, || {
        let (_, text) = http_get(metrics_port, "/metrics", Duration::from_secs(5)).ok()?;
        let errors: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("synwall_flowspec_errors_total "))?
            .parse()
            .ok()?;
        (errors >= 1.0).then_some(())
    });
    speaker.spawn();
    let t = Instant::now();
    running.wait_for("acme's rules back at the router", WAIT, |_| {
        let (v4, v6) = router.flowspec_ribs();
        has_acme_rules(&v4, &v6).then_some(())
    });
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    // synwall restarts; meanwhile a rule of its own went stale (a block
    // that ended while it was down): withdrawn, acme's kept.
    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
    speaker
        .cli_line("global rib -a ipv4-flowspec add match source 10.9.0.0/16 protocol tcp destination-port ==25 tcp-flags =S &!=A then discard community 64512:2525")
        .expect("stale rule");
    wait_until("the stale rule at the router", WAIT, || {
        router
            .rib("ipv4-flowspec")
            .contains_key(&v4_rule("10.9.0.0/16"))
            .then_some(())
    });
    let dir = run.dir;
    let mut running = s.spawn(dir, &[]);
    let t = Instant::now();
    running.wait_for("the stale rule withdrawn after the restart", WAIT, |_| {
        let v4 = router.rib("ipv4-flowspec");
        (!v4.contains_key(&v4_rule("10.9.0.0/16")) && v4.contains_key(&v4_rule("10.1.0.0/16")))
            .then_some(())
    });
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    // The router restarts: BGP brings the rules back.
    router.restart();
    running.wait_for("acme's rules at the restarted router", WAIT, |_| {
        let (v4, v6) = router.flowspec_ribs();
        (has_acme_rules(&v4, &v6) && !v4.contains_key(&v4_rule("10.2.0.0/16"))).then_some(())
    });
    running.signal("TERM");
    let run = running.wait(WAIT);
    assert!(run.exit.status.success(), "{:?}", run.exit);
}
