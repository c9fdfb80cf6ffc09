//! What each control-socket command does, on the control thread.
//!
//! [`execute`] turns one [`Command`] into its reply object. It runs on the
//! thread that owns the [`ControlPlane`] (the appliance's main loop, or a
//! test's fake), reached through [`Operate`], so it never races a tick.
//! A refused request changes nothing; every request that changes what is
//! enforced (block, unblock, set-limit, mode, reload) writes an event that
//! names the caller.
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use synwall_config::{parse_duration, Config, Mode};
use synwall_dataplane::classify::{Classifier, CustomerId};

use synwall_engine::event::{Event, EventKind, Setting};
use synwall_engine::plane::{ControlPlane, PlaneError};
use synwall_protocol::{error, ok, Caller, Command};

/// What the control thread lends [`execute`]: the plane and the few things
/// around it that only the running appliance knows.
pub trait Operate {
    /// The control plane (mutable: block, unblock, set-limit, mode).
    fn plane(&mut self) -> &mut ControlPlane;
    /// The classifier of the running generation (address → customer).
    fn classifier(&self) -> &Classifier;
    /// The config the plane was built from (prefixes, plans, file paths).
    /// Customer ids in the plane are indexes into `config().customers`.
    fn config(&self) -> &Config;
    /// The plane's monotonic clock, ms.
    fn now(&self) -> u64;
    /// The `status` reply's fields (version, uptime, links, ports, workers,
    /// tick cost): the appliance decides.
    fn status(&self) -> Value;
    /// Re-reads the config file for `by` (the caller, for the reload
    /// event); `Ok` carries a one-line summary.
    fn reload(&mut self, by: &str) -> Result<String, String>;
    /// Logs events (event log, event stream, hooks).
    fn emit(&mut self, events: &[Event]);
    /// The Prometheus text exposition.
    fn metrics_text(&self) -> String;
    /// Changes the default mode of customers that set none, until reload.
    fn set_global_mode(&mut self, mode: Mode) -> Result<(), String>;
}

/// A refusal's text.
type Refusal = String;

/// Runs `cmd` for `caller` and returns the reply object.
pub fn execute(cmd: Command, caller: &Caller, ops: &mut dyn Operate) -> Value {
    match run(cmd, caller, ops) {
        Ok(v) => ok(v),
        Err(e) => error(e),
    }
}

fn run(cmd: Command, caller: &Caller, ops: &mut dyn Operate) -> Result<Value, Refusal> {
    match cmd {
        Command::Status => Ok(ops.status()),
        Command::Customers { window, top } => customers(ops, window.as_deref(), top),
        Command::Customer { customer } => {
            let id = resolve(ops, &customer)?;
            let now = ops.now();
            let view = ops
                .plane()
                .customer_view(id, now)
                .ok_or_else(|| unknown_customer(&customer))?;
            let mut v = serde_json::to_value(view).map_err(|e| e.to_string())?;
            let prefixes: Vec<String> = ops
                .config()
                .customers
                .get(id.index())
                .map(|c| c.prefixes.iter().map(|p| p.to_string()).collect())
                .unwrap_or_default();
            let plan = ops
                .config()
                .customers
                .get(id.index())
                .and_then(|c| c.plan.clone());
            if let Value::Object(m) = &mut v {
                m.insert("prefixes".into(), json!(prefixes));
                m.insert("plan".into(), json!(plan));
            }
            Ok(json!({ "customer": v }))
        }
        Command::Block {
            customer,
            duration,
            reason,
        } => {
            let id = resolve(ops, &customer)?;
            let duration = match duration.as_deref() {
                None => None,
                Some(text) => Some(synwall_protocol::block_duration(text)?),
            };
            let reason = reason.unwrap_or_else(|| "operator block".to_owned());
            let now = ops.now();
            let event = ops
                .plane()
                .block(id, duration, &reason, &caller.by(), now)
                .map_err(|e| plane_error(ops, e))?;
            ops.emit(std::slice::from_ref(&event));
            Ok(json!({ "event": event }))
        }
        Command::Unblock { customer, reason } => {
            let id = resolve(ops, &customer)?;
            let reason = reason.unwrap_or_else(|| "operator unblock".to_owned());
            let now = ops.now();
            let event = ops
                .plane()
                .unblock(id, &reason, &caller.by(), now)
                .map_err(|e| plane_error(ops, e))?;
            ops.emit(std::slice::from_ref(&event));
            Ok(json!({ "event": event }))
        }
        Command::Blocks => Ok(json!({ "blocks": ops.plane().blocks() })),
        Command::SetLimit {
            customer,
            plan,
            window,
            value,
            persist,
        } => set_limit(ops, caller, customer, plan, &window, value, persist),
        Command::Mode { customer, mode } => match customer {
            Some(name) => {
                let id = resolve(ops, &name)?;
                let old = ops
                    .plane()
                    .mode(id)
                    .ok_or_else(|| unknown_customer(&name))?;
                ops.plane()
                    .set_mode(id, mode)
                    .map_err(|e| plane_error(ops, e))?;
                let name = ops.plane().name(id).unwrap_or_default().to_owned();
                let mut event = change(ops, caller, EventKind::SetMode);
                event.customer = Some(name.clone());
                event.old = Some(Setting::Mode(old));
                event.new = Some(Setting::Mode(mode));
                ops.emit(std::slice::from_ref(&event));
                Ok(json!({ "customer": name, "mode": mode, "event": event }))
            }
            None => {
                if mode == Mode::Exempt {
                    return Err("the global mode is enforce or monitor; exempt is for single customers (mode CUSTOMER exempt)".into());
                }
                let old = ops.config().control.mode;
                ops.set_global_mode(mode)?;
                let mut event = change(ops, caller, EventKind::SetMode);
                event.old = Some(Setting::Mode(old));
                event.new = Some(Setting::Mode(mode));
                event.reason =
                    Some("global mode, for customers without a mode of their own".into());
                ops.emit(std::slice::from_ref(&event));
                Ok(json!({ "global": true, "mode": mode, "event": event }))
            }
        },
        Command::Reload => ops
            .reload(&caller.by())
            .map(|message| json!({ "message": message })),
        Command::Events => {
            Err("'events' is a stream: the socket server follows it, not the control loop".into())
        }
        Command::Metrics => Ok(json!({ "metrics": ops.metrics_text() })),
        Command::Fleet => Ok(json!({ "fleet": ops.plane().fleet_view() })),
        Command::History {
            customer,
            since,
            step,
            window,
        } => crate::choosing::history(
            ops,
            &customer,
            since.as_deref(),
            step.as_deref(),
            window.as_deref(),
        ),
        Command::WhatIf { .. } | Command::Suggest { .. } | Command::Report { .. } => {
            crate::choosing::prepare(&cmd, ops)?.run()
        }
    }
}

/// An event of `kind` now, by `caller`: an operator's change.
fn change(ops: &mut dyn Operate, caller: &Caller, kind: EventKind) -> Event {
    let now = ops.now();
    let mut event = Event::new(kind, ops.plane().wall(now));
    event.by = Some(caller.by());
    event
}

fn unknown_customer(name: &str) -> Refusal {
    format!("unknown customer '{name}'")
}

/// Refuses a plan the config does not define, naming the ones it does.
pub(crate) fn known_plan(config: &Config, plan: &str) -> Result<(), Refusal> {
    if config.plans.contains_key(plan) {
        return Ok(());
    }
    let known: Vec<&str> = config.plans.keys().map(String::as_str).collect();
    Err(format!(
        "unknown plan '{plan}' (plans: {})",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

/// A customer by name, or by an address inside its prefixes.
pub(crate) fn resolve(ops: &mut dyn Operate, name: &str) -> Result<CustomerId, Refusal> {
    if let Some(id) = ops.plane().find(name) {
        return Ok(id);
    }
    if let Ok(addr) = name.parse::<IpAddr>() {
        return ops
            .classifier()
            .lookup_addr(addr)
            .ok_or_else(|| format!("unknown customer '{name}': no customer owns that address"));
    }
    Err(unknown_customer(name))
}

fn plane_error(ops: &mut dyn Operate, e: PlaneError) -> Refusal {
    match e {
        PlaneError::UnknownCustomer(id) => format!("unknown customer id {id}"),
        PlaneError::UnknownWindow(_) => unknown_window(ops, "?"),
        other => other.to_string(),
    }
}

fn unknown_window(ops: &mut dyn Operate, name: &str) -> Refusal {
    let names: Vec<String> = ops
        .plane()
        .windows()
        .iter()
        .map(|w| w.name.clone())
        .collect();
    format!("unknown window '{name}' (windows: {})", names.join(", "))
}

/// A window by name, or by length (`"60m"` finds `"1h"`).
pub(crate) fn window(ops: &mut dyn Operate, name: &str) -> Result<usize, Refusal> {
    let plane = ops.plane();
    if let Some(w) = plane.window_index(name) {
        return Ok(w);
    }
    if let Ok(length) = parse_duration(name) {
        if let Some(w) = plane.windows().iter().position(|w| w.length == length) {
            return Ok(w);
        }
    }
    Err(unknown_window(ops, name))
}

fn customers(
    ops: &mut dyn Operate,
    window_name: Option<&str>,
    top: usize,
) -> Result<Value, Refusal> {
    let w = match window_name {
        Some(name) => window(ops, name)?,
        None if ops.plane().windows().is_empty() => return Err("no windows configured".into()),
        None => 0,
    };
    let now = ops.now();
    let plane = ops.plane();
    let rows: Vec<Value> = plane
        .top(top, w, now)
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "customer": t.customer,
                "count": t.count,
                "limit": t.limit,
                "state": if plane.is_blocked(t.id) { "blocked" } else { "open" },
                "mode": plane.mode(t.id),
            })
        })
        .collect();
    Ok(json!({
        "window": plane.windows()[w].name,
        "total": plane.customers(),
        "active": plane.active(),
        "blocked": plane.blocks().len(),
        "customers": rows,
    }))
}

fn set_limit(
    ops: &mut dyn Operate,
    caller: &Caller,
    customer: Option<String>,
    plan: Option<String>,
    window_name: &str,
    value: u64,
    persist: bool,
) -> Result<Value, Refusal> {
    let w = window(ops, window_name)?;
    let window_name = ops.plane().windows()[w].name.clone();
    let (ids, target) = match (customer, plan) {
        (Some(c), None) => {
            let id = resolve(ops, &c)?;
            let name = ops.plane().name(id).unwrap_or_default().to_owned();
            (vec![id], Target::Customer(name))
        }
        (None, Some(p)) => {
            let config = ops.config();
            known_plan(config, &p)?;
            // Customers with their own override for this window keep it.
            let ids = config
                .customers
                .iter()
                .filter(|c| c.plan.as_deref() == Some(&p) && c.overrides.get(w).is_none())
                .map(|c| CustomerId::new(c.id))
                .collect();
            (ids, Target::Plan(p))
        }
        _ => return Err("set-limit needs exactly one of 'customer' and 'plan'".into()),
    };
    // Persist first: a file that cannot be written changes nothing.
    let file = if persist {
        Some(persist_limit(ops.config(), &target, &window_name, value)?)
    } else {
        None
    };
    // What was enforced before: one value, unless a plan's customers had
    // different ones (an earlier set-limit of one of them).
    let mut olds: Vec<u64> = ids
        .iter()
        .filter_map(|&id| ops.plane().limits(id).and_then(|l| l.get(w).copied()))
        .collect();
    olds.sort_unstable();
    olds.dedup();
    let old = match (&target, olds.as_slice()) {
        (_, [one]) => Some(*one),
        (Target::Plan(p), []) => ops.config().plans.get(p).and_then(|l| l.get(w)),
        _ => None,
    };
    let plane = ops.plane();
    for &id in &ids {
        plane.set_limit(id, w, value).map_err(|e| e.to_string())?;
    }
    let names: Vec<String> = ids
        .iter()
        .filter_map(|&id| plane.name(id).map(str::to_owned))
        .collect();
    let mut event = change(ops, caller, EventKind::SetLimit);
    event.window = Some(window_name.clone());
    event.old = old.map(Setting::Limit);
    event.new = Some(Setting::Limit(value));
    let mut notes = Vec::new();
    match &target {
        Target::Customer(c) => event.customer = Some(c.clone()),
        Target::Plan(p) => {
            event.plan = Some(p.clone());
            notes.push(match names.len() {
                1 => "1 customer follows the plan".to_owned(),
                n => format!("{n} customers follow the plan"),
            });
            if let (Some(lo), Some(hi), None) = (olds.first(), olds.last(), old) {
                notes.push(format!("their limits were {lo} to {hi}"));
            }
        }
    }
    if let Some(f) = &file {
        notes.push(format!("written to {}", f.display()));
    }
    if !notes.is_empty() {
        event.reason = Some(notes.join("; "));
    }
    ops.emit(std::slice::from_ref(&event));
    let mut reply = json!({
        "window": window_name,
        "value": value,
        "customers": names,
        "persisted": file.as_ref().map(|p| p.display().to_string()),
        "event": event,
    });
    if let Target::Plan(p) = &target {
        reply["plan"] = json!(p);
    }
    Ok(reply)
}

/// What `set-limit` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Customer(String),
    Plan(String),
}

/// Writes a limit into the config files (a customer's `limits` in the file
/// that holds its `[[customer]]`, or `[plans.P]` in the main file), keeping
/// comments and layout; returns the file written. The new text is checked
/// to still load before it replaces the file (atomically, by rename).
fn persist_limit(
    config: &Config,
    target: &Target,
    window: &str,
    value: u64,
) -> Result<PathBuf, Refusal> {
    let value = i64::try_from(value).map_err(|_| format!("{value} is too large for the config"))?;
    let candidates: Vec<&Path> = match target {
        Target::Plan(_) => vec![&config.path],
        Target::Customer(_) => std::iter::once(config.path.as_path())
            .chain(config.customers_file.as_deref())
            .collect(),
    };
    for path in candidates {
        let text = synwall_config::read_bounded(
            path,
            synwall_config::MAX_CONFIG_BYTES,
            synwall_config::Links::Follow,
            "config file",
        )
        .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
        .map_err(|e| format!("persisting: reading {}: {e}", path.display()))?;
        let mut doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e| format!("persisting: parsing {}: {e}", path.display()))?;
        let changed = match target {
            Target::Plan(plan) => {
                let plans = doc["plans"].as_table_like_mut();
                match plans
                    .and_then(|t| t.get_mut(plan))
                    .and_then(|p| p.as_table_like_mut())
                {
                    Some(t) => {
                        t.insert(window, toml_edit::value(value));
                        true
                    }
                    None => false,
                }
            }
            Target::Customer(name) => {
                let entries = doc
                    .get_mut("customer")
                    .and_then(|c| c.as_array_of_tables_mut());
                let entry = entries.and_then(|a| {
                    a.iter_mut()
                        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
                });
                match entry {
                    Some(t) => {
                        if !t.contains_key("limits") {
                            t.insert("limits", toml_edit::value(toml_edit::InlineTable::new()));
                        }
                        match t["limits"].as_table_like_mut() {
                            Some(l) => {
                                l.insert(window, toml_edit::value(value));
                                true
                            }
                            None => {
                                return Err(format!(
                                "persisting: 'limits' of customer '{name}' in {} is not a table",
                                path.display()
                            ))
                            }
                        }
                    }
                    None => false,
                }
            }
        };
        if !changed {
            continue;
        }
        let new_text = doc.to_string();
        if path == config.path {
            Config::load_text(&new_text, path)
                .map_err(|e| format!("persisting would break the config: {e}"))?;
        }
        write_atomically(path, &new_text)
            .map_err(|e| format!("persisting: writing {}: {e}", path.display()))?;
        return Ok(path.to_owned());
    }
    Err(match target {
        Target::Plan(p) => format!(
            "persisting: no [plans.{p}] table in {}",
            config.path.display()
        ),
        Target::Customer(c) => {
            format!("persisting: no [[customer]] named '{c}' in the config files")
        }
    })
}

/// Replaces `path` with `text` by writing a sibling and renaming it over,
/// keeping the file's permissions. The sibling is created anew, never
/// through a link ([`synwall_engine::dirs::create_new`]).
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".synwall-tmp");
    let tmp = PathBuf::from(tmp);
    synwall_engine::dirs::create_new(&tmp, 0o600)?.write_all(text.as_bytes())?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions())?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests;
