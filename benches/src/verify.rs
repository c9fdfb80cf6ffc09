//! `verify`: replays a profile through synwall on `net_pcap` and checks its
//! verdicts against what the profile's limits say must happen, frame by
//! frame from the output capture, and against synwall's own counters (its
//! `--summary-json` and, while it runs, its control socket).
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use synwall_dataplane::parse::{parse, Outcome, WatchedPorts};
use synwall_dataplane::pcap::{read_pcap, write_pcap};

use crate::appliance::{customer_view, pcap_config, synwall_binary, PcapRun, SocketView};
use crate::profile::{MalformedExpect, Profile};
use crate::traffic::{BgKind, Label, Trace};

/// The expected verdicts of a trace, from the profile alone.
#[derive(Debug, Clone, Serialize)]
pub struct Expectation {
    pub customers: Vec<CustomerExpect>,
    /// Background frames per kind: sent, and expected out.
    pub background: Vec<(String, u64, u64)>,
    /// Frames expected out of the outside port in all.
    pub forwarded: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomerExpect {
    pub name: String,
    pub pattern: &'static str,
    pub limit: Option<u64>,
    pub sent: u64,
    pub forwarded: u64,
    pub dropped: u64,
}

/// What the profile's limits say synwall must do with `trace`.
pub fn expect(profile: &Profile, trace: &Trace) -> Expectation {
    let customers: Vec<CustomerExpect> = profile
        .customers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let sent = trace.syns_of(i);
            let fwd = c.expected_forwarded(sent);
            CustomerExpect {
                name: c.name.clone(),
                pattern: c.pattern.name(),
                limit: c.limit,
                sent,
                forwarded: fwd,
                dropped: sent - fwd,
            }
        })
        .collect();
    let background: Vec<(String, u64, u64)> = BgKind::ALL
        .iter()
        .map(|&k| {
            let n = trace.background_of(k);
            let out =
                if k == BgKind::Malformed && profile.appliance.malformed == MalformedExpect::Drop {
                    0
                } else {
                    n
                };
            (k.name().to_owned(), n, out)
        })
        .collect();
    let forwarded = customers.iter().map(|c| c.forwarded).sum::<u64>()
        + background.iter().map(|b| b.2).sum::<u64>();
    Expectation {
        customers,
        background,
        forwarded,
    }
}

/// Writes the trace as a capture and its expectations as JSON next to it
/// (`PCAP.expect.json`).
pub fn write_trace(path: &Path, profile: &Profile, trace: &Trace) -> Result<(), String> {
    write_pcap(path, &trace.frames).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let exp = expect(profile, trace);
    let j = path.with_extension("expect.json");
    let text = serde_json::to_string_pretty(&json!({
        "profile": profile.path.display().to_string(),
        "frames": trace.frames.len(),
        "expect": exp,
    }))
    .map_err(|e| e.to_string())?;
    std::fs::write(&j, text).map_err(|e| format!("writing {}: {e}", j.display()))
}

/// One row of the per-customer table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub pattern: &'static str,
    pub limit: Option<u64>,
    pub sent: u64,
    pub expect_forwarded: u64,
    pub expect_dropped: u64,
    /// SYNs of this customer in synwall's output capture.
    pub out_forwarded: u64,
    /// synwall's summary: seen, forwarded, dropped.
    pub summary: Option<(u64, u64, u64)>,
    /// synwall's control socket, once the input had drained.
    pub socket: Option<SocketView>,
    pub problems: Vec<String>,
}

/// The outcome of a verify run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub rows: Vec<Row>,
    /// Background: kind, sent, expected out, found out unchanged.
    pub background: Vec<(String, u64, u64, u64)>,
    /// Problems not tied to one customer.
    pub problems: Vec<String>,
    pub ok: bool,
}

impl Verdict {
    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<14} {:<8} {:>7} {:>7} | {:>9} {:>8} | {:>9} | {:>21} | {:>13} | result",
            "customer",
            "pattern",
            "limit",
            "sent",
            "expect fw",
            "expect dr",
            "out.pcap",
            "summary seen/fw/dr",
            "socket seen/fw",
        );
        for r in &self.rows {
            let summary = r
                .summary
                .map_or("-".to_owned(), |(a, b, c)| format!("{a}/{b}/{c}"));
            let socket = r
                .socket
                .as_ref()
                .map_or("-".to_owned(), |v| format!("{}/{}", v.seen, v.forwarded));
            let _ = writeln!(
                s,
                "{:<14} {:<8} {:>7} {:>7} | {:>9} {:>8} | {:>9} | {:>21} | {:>13} | {}",
                r.name,
                r.pattern,
                r.limit.map_or("-".to_owned(), |l| l.to_string()),
                r.sent,
                r.expect_forwarded,
                r.expect_dropped,
                r.out_forwarded,
                summary,
                socket,
                if r.problems.is_empty() {
                    "ok".to_owned()
                } else {
                    format!("FAIL: {}", r.problems.join("; "))
                }
            );
        }
        let _ = writeln!(s, "background: kind sent / expected out / out unchanged");
        for (k, sent, want, got) in &self.background {
            let _ = writeln!(
                s,
                "  {k:<10} {sent:>7} {want:>7} {got:>7}{}",
                if want == got { "" } else { "  FAIL" }
            );
        }
        for p in &self.problems {
            let _ = writeln!(s, "FAIL: {p}");
        }
        let _ = writeln!(s, "verify: {}", if self.ok { "PASS" } else { "FAIL" });
        s
    }
}

/// Compares what came out (`out` frames, synwall's `summary`, the socket
/// views) with `exp`.
pub fn judge(
    profile: &Profile,
    trace: &Trace,
    exp: &Expectation,
    out: &[Vec<u8>],
    summary: Option<&Value>,
    socket: &[Option<Result<SocketView, String>>],
) -> Verdict {
    let watched = WatchedPorts::new(&profile.appliance.ports);
    // Every frame sent, by content: what label, how many copies.
    let mut sent: HashMap<&[u8], (Label, u64)> = HashMap::new();
    for (f, l) in trace.frames.iter().zip(&trace.labels) {
        sent.entry(f.as_slice()).or_insert((*l, 0)).1 += 1;
    }
    let mut out_syns = vec![0u64; profile.customers.len()];
    let mut out_bg: HashMap<BgKind, u64> = HashMap::new();
    let mut problems = Vec::new();
    let mut foreign = 0u64;
    let mut excess = 0u64;
    for f in out {
        match sent.get_mut(f.as_slice()) {
            Some((label, left)) if *left > 0 => {
                *left -= 1;
                match label {
                    Label::Syn(c) => out_syns[*c] += 1,
                    Label::Background(k) => *out_bg.entry(*k).or_insert(0) += 1,
                }
            }
            Some(_) => excess += 1,
            None => {
                // A SYN of a customer that came out changed still counts
                // for the customer, but is a problem.
                let p = parse(f, &watched);
                if p.outcome == Outcome::WatchedSyn {
                    if let Some(c) = p.src.and_then(|s| profile.customer_of(s.to_ip())) {
                        out_syns[c] += 1;
                    }
                }
                foreign += 1;
            }
        }
    }
    if foreign > 0 {
        problems.push(format!(
            "{foreign} frames out of synwall were not sent (changed or invented)"
        ));
    }
    if excess > 0 {
        problems.push(format!("{excess} frames came out more often than sent"));
    }
    let summary_customers: HashMap<String, (u64, u64, u64)> = summary
        .and_then(|s| s["customers"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    Some((
                        c["name"].as_str()?.to_owned(),
                        (
                            c["syn_seen"].as_u64()?,
                            c["syn_forwarded"].as_u64()?,
                            c["syn_dropped"].as_u64()?,
                        ),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    for (i, e) in exp.customers.iter().enumerate() {
        let mut p = Vec::new();
        if out_syns[i] != e.forwarded {
            p.push(format!(
                "{} SYNs forwarded, the limit says {}",
                out_syns[i], e.forwarded
            ));
        }
        let s = summary_customers.get(&e.name).copied();
        if summary.is_some() {
            // A customer that sent nothing may be absent from the summary.
            let got = s.unwrap_or((0, 0, 0));
            if got != (e.sent, e.forwarded, e.dropped) {
                p.push(format!(
                    "summary seen/fw/dr {}/{}/{} != {}/{}/{}",
                    got.0, got.1, got.2, e.sent, e.forwarded, e.dropped
                ));
            }
        }
        let view = match socket.get(i) {
            Some(Some(Ok(v))) => {
                if (v.seen, v.forwarded) != (e.sent, e.forwarded) {
                    p.push(format!(
                        "socket seen/fw {}/{} != {}/{}",
                        v.seen, v.forwarded, e.sent, e.forwarded
                    ));
                }
                Some(v.clone())
            }
            Some(Some(Err(err))) => {
                p.push(format!("control socket: {err}"));
                None
            }
            _ => None,
        };
        rows.push(Row {
            name: e.name.clone(),
            pattern: e.pattern,
            limit: e.limit,
            sent: e.sent,
            expect_forwarded: e.forwarded,
            expect_dropped: e.dropped,
            out_forwarded: out_syns[i],
            summary: s,
            socket: view,
            problems: p,
        });
    }
    let background: Vec<(String, u64, u64, u64)> = BgKind::ALL
        .iter()
        .zip(&exp.background)
        .map(|(k, (name, sent, want))| {
            (
                name.clone(),
                *sent,
                *want,
                out_bg.get(k).copied().unwrap_or(0),
            )
        })
        .collect();
    for (k, _, want, got) in &background {
        if want != got {
            problems.push(format!(
                "background {k}: {got} out unchanged, expected {want}"
            ));
        }
    }
    if let Some(s) = summary {
        let fwd = s.pointer("/verdicts/forwarded").and_then(Value::as_u64);
        if fwd != Some(out.len() as u64) {
            problems.push(format!(
                "summary verdicts.forwarded {fwd:?} != {} frames in the output capture",
                out.len()
            ));
        }
        let nobody = s
            .pointer("/verdicts/syn_no_customer")
            .and_then(Value::as_u64);
        if nobody.is_some_and(|n| n > 0) {
            problems.push(format!(
                "{} watched SYNs matched no synwall customer: its config lacks a profile customer's prefix",
                nobody.unwrap_or(0)
            ));
        }
        let rx = s.pointer("/verdicts/rx").and_then(Value::as_u64);
        if rx != Some(trace.frames.len() as u64) {
            problems.push(format!(
                "synwall received {rx:?} frames, {} were sent",
                trace.frames.len()
            ));
        }
    } else {
        problems.push("no summary from synwall".into());
    }
    if out.len() as u64 != exp.forwarded {
        problems.push(format!(
            "{} frames out, {} expected",
            out.len(),
            exp.forwarded
        ));
    }
    let ok = problems.is_empty() && rows.iter().all(|r| r.problems.is_empty());
    Verdict {
        rows,
        background,
        problems,
        ok,
    }
}

/// Options of a capture-driven verify run.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub workdir: std::path::PathBuf,
    pub synwall: Option<std::path::PathBuf>,
    pub appliance_config: Option<std::path::PathBuf>,
    /// synwall's `--duration`.
    pub duration: f64,
}

/// What a verify run produced, for the report.
#[derive(Debug, Serialize)]
pub struct VerifyRun {
    pub verdict: Verdict,
    pub expect: Expectation,
    pub synwall_exit: Option<i32>,
    pub synwall_stderr_tail: String,
    pub summary: Value,
    pub workdir: String,
}

/// Runs synwall over the trace and judges the result.
pub fn run(profile: &Profile, trace: &Trace, opts: &VerifyOptions) -> Result<VerifyRun, String> {
    let cfg_path = opts
        .appliance_config
        .clone()
        .or_else(|| profile.appliance.config.clone())
        .ok_or("verify needs synwall's config: [appliance] config in the profile or --appliance-config")?;
    std::fs::create_dir_all(&opts.workdir)
        .map_err(|e| format!("creating {}: {e}", opts.workdir.display()))?;
    let run = PcapRun::new(&opts.workdir);
    let _runtime_dir = crate::bench::host::RuntimeDirs::new(run.file_prefix.clone());
    write_pcap(&run.input, &trace.frames)
        .map_err(|e| format!("writing {}: {e}", run.input.display()))?;
    write_pcap(&run.reverse, &[]).map_err(|e| format!("writing {}: {e}", run.reverse.display()))?;
    for p in [&run.out, &run.back, &run.summary, &run.socket] {
        let _ = std::fs::remove_file(p);
    }
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| format!("reading {}: {e}", cfg_path.display()))?;
    let config = pcap_config(&text, &cfg_path, &run)?;
    let config_path = run.dir.join("synwall.toml");
    std::fs::write(&config_path, config)
        .map_err(|e| format!("writing {}: {e}", config_path.display()))?;
    let bin = synwall_binary(
        opts.synwall
            .as_deref()
            .or(profile.appliance.binary.as_deref()),
    );
    let stderr_path = run.dir.join("synwall.stderr");
    let stdout_path = run.dir.join("synwall.stdout");
    let mut child = Command::new(&bin)
        .arg("--config")
        .arg(&config_path)
        .arg("--duration")
        .arg(opts.duration.to_string())
        .arg("--summary-json")
        .arg(&run.summary)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    // While it runs: once the input has drained (every customer's count
    // stable and the total what was sent), read each customer's counters
    // from the control socket.
    let exp = expect(profile, trace);
    let started = Instant::now();
    let deadline = Duration::from_secs_f64((opts.duration - 0.3).max(0.3));
    let mut views: Vec<Option<Result<SocketView, String>>> = vec![None; profile.customers.len()];
    let mut last: Option<Vec<u64>> = None;
    while started.elapsed() < deadline {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
        if !run.socket.exists() {
            continue;
        }
        let now: Vec<Result<SocketView, String>> = profile
            .customers
            .iter()
            .map(|c| customer_view(&run.socket, &c.name))
            .collect();
        if now
            .iter()
            .any(|v| v.as_ref().is_err_and(|e| e.starts_with("connecting")))
        {
            continue;
        }
        let seen: Vec<u64> = now
            .iter()
            .map(|v| v.as_ref().map_or(0, |v| v.seen))
            .collect();
        let complete = seen.iter().zip(&exp.customers).all(|(s, e)| *s >= e.sent);
        let stable = last.as_ref() == Some(&seen);
        views = now.into_iter().map(Some).collect();
        if complete || stable {
            break;
        }
        last = Some(seen);
    }
    let timeout = Duration::from_secs_f64(opts.duration + 60.0);
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("synwall did not exit within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let tail: String = stderr
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    if !status.success() {
        return Err(format!(
            "{} --config {} exited with {status}; its stderr ends with:\n{tail}",
            bin.display(),
            config_path.display()
        ));
    }
    let summary: Value = std::fs::read_to_string(&run.summary)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let out = read_pcap(&run.out).map_err(|e| format!("reading {}: {e}", run.out.display()))?;
    let verdict = judge(
        profile,
        trace,
        &exp,
        &out,
        (!summary.is_null()).then_some(&summary),
        &views,
    );
    Ok(VerifyRun {
        verdict,
        expect: exp,
        synwall_exit: status.code(),
        synwall_stderr_tail: tail,
        summary,
        workdir: run.dir.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::build;

    fn setup() -> (Profile, Trace) {
        let p = Profile::parse(
            r#"
[appliance]
malformed = "forward"
[[customer]]
name = "spam"
prefixes = ["198.51.100.0/24"]
pattern = "hammer"
count = 150
limit = 100
[[customer]]
name = "calm"
prefixes = ["203.0.113.0/24"]
pattern = "steady"
count = 10
limit = 100
[background]
frames = 300
malformed_pct = 5
"#,
            Path::new("v.toml"),
        )
        .unwrap();
        let t = build(&p);
        (p, t)
    }

    /// What a correct synwall forwards: the first `limit` SYNs of each
    /// customer and everything else.
    fn correct_out(p: &Profile, t: &Trace) -> Vec<Vec<u8>> {
        let mut left: Vec<u64> = p
            .customers
            .iter()
            .map(|c| c.limit.unwrap_or(u64::MAX))
            .collect();
        t.frames
            .iter()
            .zip(&t.labels)
            .filter(|(_, l)| match l {
                Label::Syn(c) => {
                    let ok = left[*c] > 0;
                    left[*c] = left[*c].saturating_sub(1);
                    ok
                }
                _ => true,
            })
            .map(|(f, _)| f.clone())
            .collect()
    }

    fn summary_for(t: &Trace, out: usize, rows: &[(&str, u64, u64, u64)]) -> Value {
        json!({
            "verdicts": {"rx": t.frames.len(), "forwarded": out, "syn_no_customer": 0},
            "customers": rows.iter().map(|(n, s, f, d)| json!({
                "name": n, "syn_seen": s, "syn_forwarded": f, "syn_dropped": d
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn a_correct_appliance_passes() {
        let (p, t) = setup();
        let exp = expect(&p, &t);
        assert_eq!(exp.customers[0].forwarded, 100);
        assert_eq!(exp.customers[0].dropped, 50);
        let out = correct_out(&p, &t);
        let s = summary_for(
            &t,
            out.len(),
            &[("spam", 150, 100, 50), ("calm", 10, 10, 0)],
        );
        let v = judge(&p, &t, &exp, &out, Some(&s), &[]);
        assert!(v.ok, "{}", v.table());
    }

    #[test]
    fn discrepancies_fail_with_the_customer_named() {
        let (p, t) = setup();
        let exp = expect(&p, &t);
        // One SYN too many of spam forwarded.
        let mut out = correct_out(&p, &t);
        let extra = t
            .frames
            .iter()
            .zip(&t.labels)
            .filter(|(_, l)| **l == Label::Syn(0))
            .nth(120)
            .unwrap()
            .0
            .clone();
        out.push(extra);
        let s = summary_for(
            &t,
            out.len(),
            &[("spam", 150, 101, 49), ("calm", 10, 10, 0)],
        );
        let v = judge(&p, &t, &exp, &out, Some(&s), &[]);
        assert!(!v.ok);
        let table = v.table();
        assert!(
            table.contains("101 SYNs forwarded, the limit says 100"),
            "{table}"
        );
        assert!(v.rows[1].problems.is_empty(), "{table}");
        // A background frame changed on the way.
        let mut out = correct_out(&p, &t);
        let i = out.iter().position(|f| f.len() > 60).unwrap();
        out[i][59] ^= 0xff;
        let s = summary_for(
            &t,
            out.len(),
            &[("spam", 150, 100, 50), ("calm", 10, 10, 0)],
        );
        let v = judge(&p, &t, &exp, &out, Some(&s), &[]);
        assert!(!v.ok);
        assert!(
            v.table().contains("not sent (changed or invented)"),
            "{}",
            v.table()
        );
    }
}
