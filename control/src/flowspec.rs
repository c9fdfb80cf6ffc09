//! Blocks announced to the routers as BGP FlowSpec (RFC 8955/8956) through
//! a local gobgpd, driven with its `gobgp` command on a thread of its own.
//!
//! Why the command and not gRPC: the command is in the same Debian package
//! as the daemon and speaks its API for exactly this version; gRPC would
//! need protobuf code generation from gobgp's `.proto` files at build time
//! (protoc, tonic, a tokio runtime) for five calls a block. A call costs a
//! process start (a few ms), off the packet path and off the control tick.
//!
//! The control loop hands over the set of rules it wants ([`Desired`]) after
//! each tick; the speaker thread reconciles: it reads what gobgpd holds
//! (`global rib -a ipv4-flowspec -j`), takes the rules that carry synwall's
//! community as its own, adds what is missing and withdraws what is stale.
//! Rules without the community are never touched. It reconciles at once on
//! a change and every [`RESYNC`] regardless, so a restarted gobgpd is
//! refilled and a restarted synwall withdraws what expired while it was
//! down. A failing call is counted, shown in `status` and `/metrics`, and
//! retried; synwall's own enforcement never waits for it.
use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use synwall_config::{BlockScope, Config, Flowspec};
use synwall_dataplane::CustomerId;

/// A full reconcile at least this often, changed or not.
pub const RESYNC: Duration = Duration::from_secs(3);

/// How long one `gobgp` call may take before it is killed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failure, the next try.
const RETRY: Duration = Duration::from_secs(1);

/// One FlowSpec rule: a source prefix, TCP to the watched ports, with or
/// without the SYN-and-not-ACK flags match; action discard.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// The customer prefix, `addr/len`.
    pub source: String,
    pub v6: bool,
    /// Destination ports, sorted.
    pub ports: Vec<u16>,
    /// SYN set and ACK clear (`block.scope = "syn"`); false: every TCP
    /// packet to the ports (`"smtp"`).
    pub syn_only: bool,
}

impl Rule {
    /// The `match ...` arguments of `gobgp global rib add/del`.
    fn match_args(&self) -> Vec<String> {
        let ports = self
            .ports
            .iter()
            .map(|p| format!("=={p}"))
            .collect::<Vec<_>>()
            .join("|");
        let mut a: Vec<String> = [
            "match",
            "source",
            &self.source,
            "protocol",
            "tcp",
            "destination-port",
            &ports,
        ]
        .map(String::from)
        .to_vec();
        if self.syn_only {
            a.extend(["tcp-flags", "=S", "&!=A"].map(String::from));
        }
        a
    }

    /// How gobgp names the rule's NLRI in its RIB listing (the key of
    /// `global rib -j`), e.g.
    /// `[source: 10.1.0.0/16][protocol: ==tcp][destination-port: ==25][tcp-flags: =S&!=A]`.
    pub fn nlri_text(&self) -> String {
        let offset = if self.v6 { "/0" } else { "" };
        let ports = self
            .ports
            .iter()
            .map(|p| format!("=={p}"))
            .collect::<Vec<_>>()
            .join(" ");
        let flags = if self.syn_only {
            "[tcp-flags: =S&!=A]"
        } else {
            ""
        };
        format!(
            "[source: {}{offset}][protocol: ==tcp][destination-port: {ports}]{flags}",
            self.source
        )
    }

    /// The rule gobgp lists as `text`, if it has the shape synwall announces.
    pub fn from_nlri_text(text: &str, v6: bool) -> Option<Rule> {
        let rest = text.strip_prefix("[source: ")?;
        let (source, rest) = rest.split_once(']')?;
        let source = if v6 {
            source.strip_suffix("/0")?
        } else {
            source
        };
        let rest = rest.strip_prefix("[protocol: ==tcp][destination-port: ")?;
        let (ports, rest) = rest.split_once(']')?;
        let ports: Vec<u16> = ports
            .split(' ')
            .map(|p| p.strip_prefix("==")?.parse().ok())
            .collect::<Option<_>>()?;
        let syn_only = match rest {
            "" => false,
            "[tcp-flags: =S&!=A]" => true,
            _ => return None,
        };
        let rule = Rule {
            source: source.to_owned(),
            v6,
            ports,
            syn_only,
        };
        (rule.nlri_text() == text).then_some(rule)
    }
}

/// The rules for the blocked customers `blocked` (customer ids) of `config`.
pub fn desired(config: &Config, blocked: impl Iterator<Item = CustomerId>) -> BTreeSet<Rule> {
    let mut ports = config.detect.ports.clone();
    ports.sort_unstable();
    ports.dedup();
    let syn_only = config.block.scope == BlockScope::Syn;
    let mut out = BTreeSet::new();
    for id in blocked {
        let Some(c) = config.customers.get(id.index()) else {
            continue;
        };
        for p in &c.prefixes {
            out.insert(Rule {
                source: p.to_string(),
                v6: matches!(p.addr, IpAddr::V6(_)),
                ports: ports.clone(),
                syn_only,
            });
        }
    }
    out
}

/// What the speaker did, for `status` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowspecStatus {
    /// The last reconcile reached gobgpd and finished.
    pub up: bool,
    /// synwall's rules in gobgpd after the last reconcile.
    pub announced: u64,
    /// Rules wanted now.
    pub desired: u64,
    /// Rules added and withdrawn since start.
    pub announcements: u64,
    pub withdrawals: u64,
    /// Reconciles that failed (gobgpd down, a refused rule), since start.
    pub errors: u64,
    pub last_error: Option<String>,
    /// Reconciles that finished.
    pub syncs: u64,
    /// When the last one finished.
    pub last_sync: Option<Instant>,
}

struct Shared {
    /// The wanted rules and a change number.
    desired: Mutex<(u64, BTreeSet<Rule>)>,
    wake: Condvar,
    stop: AtomicBool,
    status: Mutex<FlowspecStatus>,
}

/// The speaker thread; stopping it (drop) leaves the announced rules in
/// gobgpd, so a restarting synwall's blocks hold at the routers meanwhile.
pub struct FlowspecSpeaker {
    shared: Arc<Shared>,
    config: Flowspec,
    thread: Option<JoinHandle<()>>,
}

impl FlowspecSpeaker {
    /// Starts the thread for `config`.
    pub fn start(config: Flowspec) -> std::io::Result<FlowspecSpeaker> {
        let shared = Arc::new(Shared {
            desired: Mutex::new((0, BTreeSet::new())),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            status: Mutex::new(FlowspecStatus::default()),
        });
        let (s, c) = (shared.clone(), config.clone());
        let thread = std::thread::Builder::new()
            .name("flowspec".into())
            .spawn(move || speak(&c, &s))?;
        Ok(FlowspecSpeaker {
            shared,
            config,
            thread: Some(thread),
        })
    }

    /// Hands over the rules wanted now; the thread reconciles at once when
    /// they differ from the last set.
    pub fn set(&self, rules: BTreeSet<Rule>) {
        let mut d = self
            .shared
            .desired
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if d.1 != rules {
            d.0 += 1;
            d.1 = rules;
            self.shared.wake.notify_one();
        }
    }

    /// What the speaker did so far.
    pub fn status(&self) -> FlowspecStatus {
        self.shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `status`'s `"flowspec"` object.
    pub fn status_value(&self) -> Value {
        let s = self.status();
        json!({
            "gobgp": self.config.gobgp.to_string(),
            "community": format!("{}:{}", self.config.community.0, self.config.community.1),
            "up": s.up,
            "desired": s.desired,
            "announced": s.announced,
            "announcements": s.announcements,
            "withdrawals": s.withdrawals,
            "errors": s.errors,
            "last_error": s.last_error,
            "syncs": s.syncs,
            "last_sync_secs_ago": s.last_sync.map(|t| t.elapsed().as_secs_f64()),
        })
    }
}

impl Drop for FlowspecSpeaker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: reconcile on a change, every [`RESYNC`], and [`RETRY`]
/// after a failure, until stopped.
fn speak(config: &Flowspec, shared: &Shared) {
    let mut done: Option<u64> = None;
    let mut next = Instant::now();
    loop {
        let (number, rules) = {
            let mut d = shared
                .desired
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            loop {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                if done != Some(d.0) || now >= next {
                    break;
                }
                d = shared
                    .wake
                    .wait_timeout(d, next - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            (d.0, d.1.clone())
        };
        let result = reconcile(config, &rules);
        let mut st = shared.status.lock().unwrap_or_else(PoisonError::into_inner);
        st.desired = rules.len() as u64;
        match result {
            Ok(r) => {
                st.up = true;
                st.announced = r.announced;
                st.announcements += r.added;
                st.withdrawals += r.withdrawn;
                st.syncs += 1;
                st.last_sync = Some(Instant::now());
                if r.added + r.withdrawn > 0 {
                    crate::console::out(format!(
                        "synwall: flowspec: {} rules announced ({} added, {} withdrawn)",
                        r.announced, r.added, r.withdrawn
                    ));
                }
                done = Some(number);
                next = Instant::now() + RESYNC;
            }
            Err(why) => {
                if st.up || st.last_error.as_deref() != Some(&why) {
                    crate::console::err(format!(
                        "synwall: flowspec: {why} (counted; retrying every second)"
                    ));
                }
                st.up = false;
                st.errors += 1;
                st.last_error = Some(why);
                next = Instant::now() + RETRY;
                done = None;
            }
        }
    }
}

struct Reconciled {
    announced: u64,
    added: u64,
    withdrawn: u64,
}

/// One pass: read, add the missing, withdraw the stale.
fn reconcile(config: &Flowspec, want: &BTreeSet<Rule>) -> Result<Reconciled, String> {
    let mut r = Reconciled {
        announced: 0,
        added: 0,
        withdrawn: 0,
    };
    for v6 in [false, true] {
        let family = if v6 { "ipv6-flowspec" } else { "ipv4-flowspec" };
        let ours = announced(config, family, v6)?;
        let wanted: BTreeSet<&Rule> = want.iter().filter(|w| w.v6 == v6).collect();
        for stale in ours.iter().filter(|o| !wanted.contains(o)) {
            let mut args = vec!["global", "rib", "-a", family, "del"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            args.extend(stale.match_args());
            gobgp(config, &args)?;
            r.withdrawn += 1;
        }
        for missing in wanted.iter().filter(|w| !ours.contains(w)) {
            let mut args = vec!["global", "rib", "-a", family, "add"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            args.extend(missing.match_args());
            args.extend(["then".into(), "discard".into(), "community".into()]);
            args.push(format!("{}:{}", config.community.0, config.community.1));
            gobgp(config, &args)?;
            r.added += 1;
        }
        r.announced += wanted.len() as u64;
    }
    Ok(r)
}

/// synwall's rules in gobgpd's local RIB of `family`: those carrying the
/// community. A rule with the community but another shape is reported,
/// never withdrawn.
fn announced(config: &Flowspec, family: &str, v6: bool) -> Result<BTreeSet<Rule>, String> {
    let out = gobgp(
        config,
        &["global", "rib", "-a", family, "-j"].map(String::from),
    )?;
    let rib: Value = if out.trim().is_empty() || out.trim() == "null" {
        json!({})
    } else {
        serde_json::from_str(&out).map_err(|e| format!("gobgp's {family} RIB as JSON: {e}"))?
    };
    let marker = (u64::from(config.community.0) << 16) | u64::from(config.community.1);
    let mut ours = BTreeSet::new();
    let Some(map) = rib.as_object() else {
        return Err(format!("gobgp's {family} RIB is not a JSON object: {out}"));
    };
    for (nlri, paths) in map {
        let marked = paths.as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["attrs"].as_array().is_some_and(|attrs| {
                    attrs.iter().any(|a| {
                        a["type"] == 8
                            && a["communities"]
                                .as_array()
                                .is_some_and(|cs| cs.iter().any(|c| c.as_u64() == Some(marker)))
                    })
                })
            })
        });
        if !marked {
            continue;
        }
        match Rule::from_nlri_text(nlri, v6) {
            Some(rule) => {
                ours.insert(rule);
            }
            None => crate::console::err(format!(
                "synwall: flowspec: {nlri} carries synwall's community but not the shape of its rules; left alone"
            )),
        }
    }
    Ok(ours)
}

/// Runs `gobgp -u HOST -p PORT ARGS`, bounded by [`CALL_TIMEOUT`]; its
/// stdout, or why it failed.
fn gobgp(config: &Flowspec, args: &[String]) -> Result<String, String> {
    let mut cmd = Command::new(&config.gobgp_command);
    cmd.arg("-u")
        .arg(config.gobgp.ip().to_string())
        .arg("-p")
        .arg(config.gobgp.port().to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = || format!("{} {}", config.gobgp_command.display(), args.join(" "));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("running {}: {e}", shown()))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    // Read while it runs: a large RIB would fill the pipe.
    let reader = std::thread::spawn(move || {
        let mut o = String::new();
        let mut e = String::new();
        if let Some(s) = out.as_mut() {
            let _ = s.read_to_string(&mut o);
        }
        if let Some(s) = err.as_mut() {
            let _ = s.read_to_string(&mut e);
        }
        (o, e)
    });
    let deadline = Instant::now() + CALL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} took over {CALL_TIMEOUT:?}; killed", shown()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {}: {e}", shown())),
        }
    };
    let (o, e) = reader.join().unwrap_or_default();
    if !status.success() {
        let said = format!("{} {}", o.trim(), e.trim());
        return Err(format!("{} failed ({status}): {}", shown(), said.trim()));
    }
    // gobgp says some errors on stdout with status 0.
    if let Some(why) = serde_json::from_str::<Value>(o.trim())
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
    {
        return Err(format!("{}: {why}", shown()));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_back_from_gobgp_text_as_written() {
        let v4 = Rule {
            source: "10.1.0.0/16".into(),
            v6: false,
            ports: vec![25, 587],
            syn_only: true,
        };
        let text = v4.nlri_text();
        assert_eq!(
            text,
            "[source: 10.1.0.0/16][protocol: ==tcp][destination-port: ==25 ==587][tcp-flags: =S&!=A]"
        );
        assert_eq!(Rule::from_nlri_text(&text, false), Some(v4.clone()));
        assert_eq!(
            v4.match_args().join(" "),
            "match source 10.1.0.0/16 protocol tcp destination-port ==25|==587 tcp-flags =S &!=A"
        );
        let v6 = Rule {
            source: "2001:db8:1::/48".into(),
            v6: true,
            ports: vec![25],
            syn_only: false,
        };
        assert_eq!(
            v6.nlri_text(),
            "[source: 2001:db8:1::/48/0][protocol: ==tcp][destination-port: ==25]"
        );
        assert_eq!(Rule::from_nlri_text(&v6.nlri_text(), true), Some(v6));
        for other in [
            "[source: 10.1.0.0/16][protocol: ==udp][destination-port: ==25]",
            "[destination: 10.1.0.0/16][protocol: ==tcp][destination-port: ==25]",
            "[source: 10.1.0.0/16][protocol: ==tcp][destination-port: >=25]",
            "[source: 10.1.0.0/16][protocol: ==tcp][destination-port: ==25][tcp-flags: =S]",
        ] {
            assert_eq!(Rule::from_nlri_text(other, false), None, "{other}");
        }
    }
}
