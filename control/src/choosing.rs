//! The commands that help choose limits, over the history store:
//! `history` (one customer's counts over time, answered on the control
//! thread: one customer's rows), and `what-if` and `suggest` (every
//! selected customer's history: [`prepare`] resolves names and limits on
//! the control thread, [`Job::run`] reads and replays on a thread of its
//! own so ticks go on).
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use synwall_config::{format_duration, parse_duration, Config};
use synwall_history::{stats, Series, Store, StoreError};

use crate::commands::{known_plan, resolve, window, Operate};
use crate::whatif::{self, Candidate};
use synwall_engine::event::rfc3339;
use synwall_protocol::{Command, MAX_LIMIT};

/// The longest `--since`: the hourly history's retention.
pub const MAX_SINCE: Duration = Duration::from_secs(90 * 86_400);

/// The most steps a `history` reply holds.
pub const MAX_STEPS: i64 = 10_000;

/// `what-if` and `suggest` runs at once (each on its own thread).
pub const MAX_JOBS: usize = 2;

/// Those under way.
pub static JOBS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The widest `--headroom`.
pub const MAX_HEADROOM: f64 = 100.0;

type Refusal = String;

fn minutes(d: Duration) -> i64 {
    (d.as_secs().div_ceil(60)) as i64
}

/// `--since` in minutes, and whether it was given.
fn since(text: Option<&str>, default: &str) -> Result<(i64, String, bool), Refusal> {
    let given = text.is_some();
    let text = text.unwrap_or(default);
    let d = parse_duration(text).map_err(|e| format!("bad --since '{text}': {e}"))?;
    if d < Duration::from_secs(60) {
        return Err(format!(
            "--since {text} is shorter than the history's minute"
        ));
    }
    if d > MAX_SINCE {
        return Err(format!(
            "--since {text} is beyond the history, which keeps {}",
            format_duration(MAX_SINCE)
        ));
    }
    Ok((minutes(d), text.to_owned(), given))
}

fn open(config: &Config) -> Result<Store, Refusal> {
    Store::open_read_only(&config.control.state_dir).map_err(|e| match e {
        StoreError::Missing(p) => format!(
            "no history yet: synwall starts {} at its first minute",
            p.display()
        ),
        e => e.to_string(),
    })
}

/// The first minute to show: `now - since`, or the history's start when
/// `--since` was not given and reaches further back.
fn first_minute(
    store: &Store,
    now: i64,
    (span, text, given): &(i64, String, bool),
) -> Result<i64, Refusal> {
    let Some((start, _)) = store.span().map_err(|e| e.to_string())? else {
        return Err(
            "the history is empty: no customer has sent a watched SYN since it began".into(),
        );
    };
    let from = now + 1 - span;
    if from >= start {
        return Ok(from);
    }
    if *given {
        let have = format_duration(Duration::from_secs(((now + 1 - start).max(1) * 60) as u64));
        return Err(format!(
            "--since {text} reaches before the history begins ({}, {have} ago); ask for --since {have} or less",
            rfc3339(start as u64 * 60_000)
        ));
    }
    Ok(start)
}

fn now_minute(ops: &mut dyn Operate) -> i64 {
    let now = ops.now();
    synwall_history::minute_of_ms(ops.plane().wall(now).0)
}

/// `history CUSTOMER [--since 7d] [--step 1h] [--window W]`.
pub fn history(
    ops: &mut dyn Operate,
    customer: &str,
    since_text: Option<&str>,
    step_text: Option<&str>,
    window_name: Option<&str>,
) -> Result<Value, Refusal> {
    let span = since(since_text, "7d")?;
    let step_text = step_text.unwrap_or("1h");
    let step = parse_duration(step_text).map_err(|e| format!("bad --step '{step_text}': {e}"))?;
    if step < Duration::from_secs(60) || step.as_millis() % 60_000 != 0 {
        return Err(format!(
            "--step {step_text}: a step is a whole number of minutes (the history's resolution)"
        ));
    }
    let step = minutes(step);
    let w = match window_name {
        Some(name) => window(ops, name)?,
        None => 0,
    };
    let store = open(ops.config())?;
    // A customer of the config, by name or address; or one the config no
    // longer has, by the name its history is kept under.
    let (name, limits) = match resolve(ops, customer) {
        Ok(id) => {
            let plane = ops.plane();
            let name = plane.name(id).unwrap_or_default().to_owned();
            (name, plane.limits(id).map(<[u64]>::to_vec))
        }
        Err(e) => {
            let known = store.series(customer, 0, 1).map_err(|e| e.to_string())?;
            match known {
                Some(_) => (customer.to_owned(), None),
                None => return Err(e),
            }
        }
    };
    let now = now_minute(ops);
    let from = first_minute(&store, now, &span)?;
    let to = now + 1;
    if (to - from) / step > MAX_STEPS {
        return Err(format!(
            "--since {} by --step {step_text} is {} steps; at most {MAX_STEPS}: take a longer step",
            span.1,
            (to - from) / step
        ));
    }
    let windows = ops.plane().windows().to_vec();
    let wlen = minutes(windows[w].length).max(1);
    let (series, steps) = steps(&store, &name, (from, to), step, wlen)?;
    let blocks = store
        .blocks(&name, from as u64 * 60_000)
        .map_err(|e| e.to_string())?;
    let blocks: Vec<Value> = blocks
        .into_iter()
        .map(|b| {
            json!({
                "at": rfc3339(b.at_ms),
                "kind": b.kind,
                "until": b.until_ms.map(rfc3339),
                "reason": b.reason,
            })
        })
        .collect();
    let shown = Series {
        buckets: series
            .buckets
            .iter()
            .filter(|b| b.start >= from)
            .copied()
            .collect(),
    };
    Ok(json!({
        "customer": name,
        "from": rfc3339(from as u64 * 60_000),
        "to": rfc3339(to as u64 * 60_000),
        "step_minutes": step,
        "window": windows[w].name,
        "limit": limits.as_ref().map(|l| l[w]),
        "limits": limits.as_ref().map(|l| windows.iter().zip(l).map(|(m, l)| json!({"window": m.name, "limit": l})).collect::<Vec<_>>()),
        "seen": shown.seen(),
        "forwarded": shown.buckets.iter().map(|b| b.forwarded).sum::<u64>(),
        "hourly": shown.has_hourly(),
        "steps": steps,
        "blocks": blocks,
    }))
}

/// `name`'s series from `from` (and the `wlen` minutes before it, which
/// the first steps' trailing peaks count) to `to`, and its rows of `step`
/// minutes: what `history` shows, and `report` draws.
fn steps(
    store: &Store,
    name: &str,
    (from, to): (i64, i64),
    step: i64,
    wlen: i64,
) -> Result<(Series, Vec<Value>), Refusal> {
    let series = store
        .series(name, from - wlen, to)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let rows = series
        .steps(from, to, step, wlen)
        .into_iter()
        .map(|s| {
            json!({
                "start": rfc3339(s.start as u64 * 60_000),
                "seen": s.seen,
                "forwarded": s.forwarded,
                "peak": s.peak,
            })
        })
        .collect();
    Ok((series, rows))
}

/// How many points a `report` series has at most: its step is the span
/// over this, in whole minutes.
pub const REPORT_POINTS: i64 = 120;

/// A `what-if`, `suggest` or `report` ready to run off the control thread.
#[derive(Debug)]
pub struct Job {
    config: Config,
    who: Vec<Candidate>,
    current: Vec<Vec<u64>>,
    span: (i64, String, bool),
    now: i64,
    kind: JobKind,
}

#[derive(Debug)]
enum JobKind {
    WhatIf {
        asked: BTreeMap<String, u64>,
    },
    Suggest {
        plan: Option<String>,
        headroom: f64,
    },
    Report {
        plan: Option<String>,
        headroom: f64,
        top: usize,
    },
}

/// `--headroom`, as `suggest` and `report` take it.
fn headroom(text: Option<&str>) -> Result<f64, Refusal> {
    let text = text.unwrap_or("2");
    let headroom: f64 = text
        .parse()
        .map_err(|_| format!("bad --headroom '{text}': a number such as 2 or 1.5"))?;
    if !(1.0..=MAX_HEADROOM).contains(&headroom) {
        return Err(format!(
            "--headroom {text}: between 1 (the busiest customer's peak) and {MAX_HEADROOM}"
        ));
    }
    Ok(headroom)
}

/// The customers a `--customer C | --plan P | --all` names.
fn select(
    ops: &mut dyn Operate,
    customer: Option<&str>,
    plan: Option<&str>,
) -> Result<Vec<synwall_dataplane::CustomerId>, Refusal> {
    if customer.is_some() && plan.is_some() {
        return Err("name a customer or a plan, not both".into());
    }
    if let Some(c) = customer {
        return Ok(vec![resolve(ops, c)?]);
    }
    let config = ops.config();
    if let Some(p) = plan {
        known_plan(config, p)?;
    }
    Ok(config
        .customers
        .iter()
        .filter(|c| plan.is_none() || c.plan.as_deref() == plan)
        .map(|c| synwall_dataplane::CustomerId::new(c.id))
        .collect())
}

/// Resolves a `what-if` or `suggest` request on the control thread.
pub fn prepare(cmd: &Command, ops: &mut dyn Operate) -> Result<Job, Refusal> {
    let (ids, span, kind) = match cmd {
        Command::WhatIf {
            customer,
            plan,
            limits,
            since: s,
        } => {
            let ids = select(ops, customer.as_deref(), plan.as_deref())?;
            let mut asked = BTreeMap::new();
            for (name, &value) in limits {
                let w = window(ops, name)?;
                if value == 0 {
                    return Err(format!(
                        "{name}=0: a what-if limit is at least 1 (0 closes the port: nothing would be forwarded)"
                    ));
                }
                if value > MAX_LIMIT {
                    return Err(format!("{name}={value} is too large; at most {MAX_LIMIT}"));
                }
                asked.insert(ops.plane().windows()[w].name.clone(), value);
            }
            (ids, since(s.as_deref(), "30d")?, JobKind::WhatIf { asked })
        }
        Command::Suggest {
            plan,
            since: s,
            headroom: h,
        } => {
            let ids = select(ops, None, plan.as_deref())?;
            let kind = JobKind::Suggest {
                plan: plan.clone(),
                headroom: headroom(h.as_deref())?,
            };
            (ids, since(s.as_deref(), "30d")?, kind)
        }
        Command::Report {
            plan,
            since: s,
            headroom: h,
            top,
        } => {
            let ids = select(ops, None, plan.as_deref())?;
            let kind = JobKind::Report {
                plan: plan.clone(),
                headroom: headroom(h.as_deref())?,
                top: *top,
            };
            (ids, since(s.as_deref(), "30d")?, kind)
        }
        other => return Err(format!("'{}' is not a history job", other.name())),
    };
    let plane = ops.plane();
    let mut who = Vec::with_capacity(ids.len());
    let mut current = Vec::with_capacity(ids.len());
    let windows = plane.windows().to_vec();
    for id in ids {
        let limits = plane.limits(id).map(<[u64]>::to_vec).unwrap_or_default();
        let mut asked_limits = limits.clone();
        if let JobKind::WhatIf { asked } = &kind {
            for (w, m) in windows.iter().enumerate() {
                if let Some(&v) = asked.get(&m.name) {
                    asked_limits[w] = v;
                }
            }
        }
        who.push(Candidate {
            name: plane.name(id).unwrap_or_default().to_owned(),
            limits: asked_limits,
        });
        current.push(limits);
    }
    let now = now_minute(ops);
    Ok(Job {
        config: ops.config().clone(),
        who,
        current,
        span,
        now,
        kind,
    })
}

impl Job {
    /// Reads the history and answers.
    pub fn run(self) -> Result<Value, Refusal> {
        let store = open(&self.config)?;
        let from = first_minute(&store, self.now, &self.span)?;
        let to = self.now + 1;
        // Only customers with history take part.
        let mut who = Vec::new();
        let mut current = Vec::new();
        let mut series = Vec::new();
        for (c, cur) in self.who.into_iter().zip(self.current) {
            if let Some(s) = store.series(&c.name, from, to).map_err(|e| e.to_string())? {
                if s.seen() > 0 {
                    who.push(c);
                    current.push(cur);
                    series.push(s);
                }
            }
        }
        let head = json!({
            "since": self.span.1,
            "from": rfc3339(from as u64 * 60_000),
            "to": rfc3339(to as u64 * 60_000),
            "customers": who.len(),
            "estimate": whatif::estimate_notes(&self.config, &series),
        });
        let body = match self.kind {
            JobKind::WhatIf { asked } => {
                what_if(&self.config, &who, &current, &series, from, to, asked)
            }
            JobKind::Suggest { plan, headroom } => {
                suggest(&self.config, &who, &series, plan.as_deref(), headroom)
            }
            JobKind::Report {
                plan,
                headroom,
                top,
            } => {
                let picked = Picked {
                    who: &who,
                    series: &series,
                    span: (from, to),
                };
                report(&self.config, &store, &picked, plan, headroom, top)?
            }
        };
        let mut out = head;
        if let (Value::Object(o), Value::Object(b)) = (&mut out, body) {
            o.extend(b);
        }
        Ok(out)
    }
}

fn what_if(
    config: &Config,
    who: &[Candidate],
    current: &[Vec<u64>],
    series: &[Series],
    from: i64,
    to: i64,
    asked: BTreeMap<String, u64>,
) -> Value {
    let now_who: Vec<Candidate> = who
        .iter()
        .zip(current)
        .map(|(c, l)| Candidate {
            name: c.name.clone(),
            limits: l.clone(),
        })
        .collect();
    let asked_run = whatif::replay(config, who, series, from, to);
    let now_run = whatif::replay(config, &now_who, series, from, to);
    let end_ms = to as u64 * 60_000;
    let summary = |rs: &[whatif::Replayed]| {
        let blocked = rs.iter().filter(|r| !r.blocks.is_empty()).count();
        let blocks: usize = rs.iter().map(|r| r.blocks.len()).sum();
        let dropped: u64 = rs.iter().map(|r| r.dropped).sum();
        json!({"customers_blocked": blocked, "blocks": blocks, "dropped": dropped})
    };
    let side = |r: &whatif::Replayed| {
        let blocked_ms: u64 = r
            .blocks
            .iter()
            .map(|b| {
                b.until_ms
                    .unwrap_or(end_ms)
                    .min(end_ms)
                    .saturating_sub(b.at_ms)
            })
            .sum();
        json!({
            "first_block": r.blocks.first().map(|b| rfc3339(b.at_ms)),
            "first_window": r.blocks.first().map(|b| b.window.clone()),
            "blocks": r.blocks.len(),
            "blocked_minutes": blocked_ms / 60_000,
            "dropped": r.dropped,
        })
    };
    let mut rows: Vec<(u64, Value)> = asked_run
        .iter()
        .zip(&now_run)
        .filter(|(a, n)| !a.blocks.is_empty() || !n.blocks.is_empty())
        .map(|(a, n)| {
            let first = a
                .blocks
                .first()
                .or(n.blocks.first())
                .map_or(u64::MAX, |b| b.at_ms);
            (
                first,
                json!({
                    "customer": a.customer,
                    "seen": a.seen,
                    "what_if": side(a),
                    "current": side(n),
                }),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    json!({
        "limits": asked,
        "what_if": summary(&asked_run),
        "current": summary(&now_run),
        "blocked": rows.into_iter().map(|r| r.1).collect::<Vec<_>>(),
    })
}

fn suggest(
    config: &Config,
    who: &[Candidate],
    series: &[Series],
    plan: Option<&str>,
    headroom: f64,
) -> Value {
    let windows: Vec<Value> = config
        .windows
        .iter()
        .enumerate()
        .map(|(w, m)| {
            let len = minutes(m.length).max(1);
            let peaks: Vec<u64> = series.iter().map(|s| s.peak(len)).collect();
            let d = stats::distribution(&peaks);
            let suggested = stats::suggest(&d, headroom);
            let current = plan
                .and_then(|p| config.plans.get(p))
                .and_then(|l| l.get(w))
                .unwrap_or(m.default_limit);
            let mut caught: Vec<(u64, &str)> = peaks
                .iter()
                .zip(who)
                .filter(|(&p, _)| p > suggested)
                .map(|(&p, c)| (p, c.name.as_str()))
                .collect();
            caught.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
            json!({
                "window": m.name,
                "current": current,
                "distribution": d,
                "suggested": suggested,
                "caught": caught.iter().map(|(p, n)| json!({"customer": n, "peak": p})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"plan": plan, "headroom": headroom, "windows": windows})
}

/// The customers with history in a job's span, and their series.
struct Picked<'a> {
    who: &'a [Candidate],
    series: &'a [Series],
    /// First minute, and the minute after the last.
    span: (i64, i64),
}

/// `report`: a chart for every customer (unless `plan` is given) and one
/// per plan, each `suggest`'s answer for those customers with their
/// peaks, and the series of the `top` customers with the highest peak in
/// the shortest window (the rows `history --step` gives).
fn report(
    config: &Config,
    store: &Store,
    picked: &Picked,
    plan: Option<String>,
    headroom: f64,
    top: usize,
) -> Result<Value, Refusal> {
    let (from, to) = picked.span;
    let step = ((to - from) + REPORT_POINTS - 1) / REPORT_POINTS;
    let step = step.max(1);
    let groups: Vec<Option<String>> = match plan {
        Some(p) => vec![Some(p)],
        None => std::iter::once(None)
            .chain(config.plans.keys().cloned().map(Some))
            .collect(),
    };
    let plan_of: BTreeMap<&str, Option<&str>> = config
        .customers
        .iter()
        .map(|c| (&*c.name, c.plan.as_deref()))
        .collect();
    let wlen = minutes(config.windows[0].length).max(1);
    let mut charts = Vec::with_capacity(groups.len());
    for group in &groups {
        let on = |c: &Candidate| {
            group.is_none() || plan_of.get(c.name.as_str()).copied().flatten() == group.as_deref()
        };
        let (who, series): (Vec<Candidate>, Vec<Series>) = picked
            .who
            .iter()
            .zip(picked.series)
            .filter(|(c, _)| on(c))
            .map(|(c, s)| (c.clone(), s.clone()))
            .unzip();
        let mut chart = suggest(config, &who, &series, group.as_deref(), headroom);
        if let Some(Value::Array(ws)) = chart.get_mut("windows") {
            for (w, m) in ws.iter_mut().zip(&config.windows) {
                let len = minutes(m.length).max(1);
                let mut peaks: Vec<u64> = series.iter().map(|s| s.peak(len)).collect();
                peaks.sort_unstable_by(|a, b| b.cmp(a));
                w["peaks"] = json!(peaks);
            }
        }
        let mut ranked: Vec<(u64, &str)> = who
            .iter()
            .zip(&series)
            .map(|(c, s)| (s.peak(wlen), c.name.as_str()))
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let mut tops = Vec::with_capacity(top);
        for (peak, name) in ranked.into_iter().take(top) {
            let (_, rows) = steps(store, name, (from, to), step, wlen)?;
            tops.push(json!({"customer": name, "peak": peak, "steps": rows}));
        }
        chart["customers"] = json!(who.len());
        chart["top"] = json!(tops);
        charts.push(chart);
    }
    Ok(json!({
        "step_minutes": step,
        "window": config.windows[0].name,
        "charts": charts,
    }))
}
