//! synwallctl: the operator's command line for a running synwall, over its
//! control socket.
//!
//! Exit codes: 0 done; 1 the appliance refused (`"ok":false`); 2 usage;
//! 3 cannot reach the appliance (no socket, access denied, no answer);
//! 4 the process on the socket is not synwall's user (root, the user
//! running synwallctl, or `--server-user`): nothing was sent to it;
//! 5 `report`'s picture could not be drawn or written.
#![forbid(unsafe_code)]

mod report;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use serde_json::Value;
use synwall_protocol::{Command, Mode, DEFAULT_REPORT_TOP, DEFAULT_SOCKET, DEFAULT_TOP};

/// What `synwallctl --help` opens with: what the command does, then an example.
const ABOUT: &str = "synwallctl: the operator's command line for a running synwall: status, \
customers, blocks, block/unblock, reload, over its control socket.

Example: synwallctl customer acme   (--socket PATH for another socket than /run/synwall/control.sock)";

/// The command line (its help text is [`ABOUT`], not the crate's description).
#[derive(Debug, Parser)]
#[command(name = "synwallctl", version, about = ABOUT, long_about = None)]
struct Cli {
    /// The control socket.
    #[arg(
        long,
        env = "SYNWALL_SOCKET",
        default_value = DEFAULT_SOCKET,
        global = true
    )]
    socket: PathBuf,
    /// Print the appliance's JSON replies as they are (for scripts).
    #[arg(long, global = true)]
    json: bool,
    /// The user synwall runs as, when not root: the process on the socket
    /// must run as root, as you, or as this user (name or uid), else
    /// synwallctl sends nothing (exit 4).
    #[arg(long, env = "SYNWALL_SERVER_USER", global = true, value_name = "USER")]
    server_user: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Version, uptime, ports, workers, tick cost.
    Status,
    /// The customers with the most SYNs in a window.
    Customers {
        /// Window to rank by (default: the shortest).
        #[arg(long)]
        window: Option<String>,
        /// How many.
        #[arg(long, default_value_t = DEFAULT_TOP)]
        top: usize,
    },
    /// Everything about one customer (by name or by an address it owns).
    Customer {
        /// Name or IP address.
        customer: String,
    },
    /// Block a customer's outbound SMTP now.
    Block {
        /// Name or IP address.
        customer: String,
        /// How long, e.g. 2h (default: until unblocked).
        #[arg(long)]
        duration: Option<String>,
        /// Why (kept in the event log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a customer's block.
    Unblock {
        /// Name or IP address.
        customer: String,
        /// Why (kept in the event log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// The blocks in force.
    Blocks,
    /// Change a limit of a customer or of a plan (until reload, unless --persist).
    #[command(group = clap::ArgGroup::new("target").required(true).args(["customer", "plan"]))]
    SetLimit {
        /// The customer (name or IP address).
        #[arg(long)]
        customer: Option<String>,
        /// The plan.
        #[arg(long)]
        plan: Option<String>,
        /// The window, e.g. 5m.
        window: String,
        /// The new limit in SYNs (0 closes the port).
        value: u64,
        /// Also write it into the config file.
        #[arg(long)]
        persist: bool,
    },
    /// Set the mode of a customer, or the global default: enforce, monitor, exempt.
    Mode {
        /// `[CUSTOMER] MODE`: the customer is optional.
        #[arg(num_args = 1..=2, value_names = ["CUSTOMER", "MODE"], required = true)]
        args: Vec<String>,
    },
    /// Re-read the config file.
    Reload,
    /// Follow the event stream (blocks, unblocks, expiries, warnings).
    Events,
    /// The Prometheus metrics.
    Metrics,
    /// This appliance's view of the fleet: Redis nodes and health, leases
    /// held, customers on floors only, the last round trip.
    Fleet,
    /// A customer's SYNs over time, with its limit and blocks: a table and
    /// a chart (docs/choosing-limits.md).
    History {
        /// Name or IP address.
        customer: String,
        /// How far back, e.g. 2d (default 7d; at most 90d).
        #[arg(long)]
        since: Option<String>,
        /// One row per step, e.g. 10m (default 1h).
        #[arg(long)]
        step: Option<String>,
        /// The window whose peaks and limit are charted (default: the shortest).
        #[arg(long)]
        window: Option<String>,
    },
    /// Replays the history against other limits: who would have been
    /// blocked, when, how long, and how many SYNs dropped, beside what the
    /// current limits do.
    #[command(group = clap::ArgGroup::new("who").args(["customer", "plan", "all"]))]
    WhatIf {
        /// Only this customer (name or IP address).
        #[arg(long)]
        customer: Option<String>,
        /// Only the customers on this plan.
        #[arg(long)]
        plan: Option<String>,
        /// Every customer (the default).
        #[arg(long)]
        all: bool,
        /// How far back (default 30d).
        #[arg(long)]
        since: Option<String>,
        /// Limits to try, e.g. 5m=200 1h=800 (other windows keep theirs).
        #[arg(value_name = "WINDOW=LIMIT")]
        limits: Vec<String>,
    },
    /// Per window: customers' peaks (p50, p90, p99, max), a suggested limit
    /// and the customers it would catch.
    Suggest {
        #[command(flatten)]
        peaks: Peaks,
    },
    /// Draws the peaks per plan, with the current and suggested limits,
    /// and the top customers' series, as an SVG picture.
    ///
    /// One chart for all customers, then one per plan (or only --plan's):
    /// per window a histogram of the customers' peaks with the current and
    /// the suggested limit (as `suggest` gives them) drawn in, and the
    /// shortest window's peaks step by step of the customers with the
    /// highest peaks (as `history` gives them). See
    /// docs/choosing-limits.md.
    Report {
        /// The SVG file to write (replaced if it exists).
        #[arg(long, value_name = "FILE")]
        svg: PathBuf,
        #[command(flatten)]
        peaks: Peaks,
        /// How many customers' series per chart (0 to 20; 0: none).
        #[arg(long, default_value_t = DEFAULT_REPORT_TOP)]
        top: usize,
    },
}

/// Whose peaks `suggest` and `report` take, and how.
#[derive(Debug, clap::Args)]
struct Peaks {
    /// Only the customers on this plan.
    #[arg(long)]
    plan: Option<String>,
    /// How far back (default 30d).
    #[arg(long)]
    since: Option<String>,
    /// Suggested = p99 of peaks x this (default 2).
    #[arg(long)]
    headroom: Option<String>,
}

/// Exit codes scripts can rely on.
const REFUSED: u8 = 1;
const USAGE: u8 = 2;
const UNREACHABLE: u8 = 3;
/// The socket's server is not who synwall runs as (see [`check_server`]).
const IMPOSTOR: u8 = 4;
/// `report`'s picture could not be drawn or written.
const OUTPUT: u8 = 5;

/// Writes to stdout; a closed pipe (`synwallctl ... | head`) ends the
/// program quietly instead of panicking.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

fn main() -> ExitCode {
    // `synwallctl --write-docs DIR`: the man page and completion (scripts/package).
    if let Some(code) = synwall_dist::write_if_asked(Cli::command) {
        return code;
    }
    let cli = Cli::parse();
    let svg = match &cli.command {
        Cmd::Report { svg, .. } => Some(svg.clone()),
        _ => None,
    };
    let command = match request(cli.command) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("synwallctl: {why}");
            return ExitCode::from(USAGE);
        }
    };
    let mut conn = match Connection::open(&cli.socket) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("synwallctl: {why}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    if let Err(why) = check_server(&conn.writer, &cli.socket, cli.server_user.as_deref()) {
        eprintln!("synwallctl: {why}");
        return ExitCode::from(IMPOSTOR);
    }
    if command == Command::Events {
        return follow(&mut conn, cli.json);
    }
    let reply = match conn.ask(&command) {
        Ok(r) => r,
        Err(why) => {
            eprintln!("synwallctl: {why}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    if cli.json {
        emit(&format!("{reply}\n"));
    }
    if reply["ok"] != Value::Bool(true) {
        let why = reply["error"].as_str().unwrap_or("the appliance refused");
        eprintln!("synwallctl: {}", plain(why));
        return ExitCode::from(REFUSED);
    }
    if let Some(path) = svg {
        match write_report(&path, &reply) {
            Ok(done) if !cli.json => emit(&done),
            Ok(_) => {}
            Err(why) => {
                eprintln!("synwallctl: {why}");
                return ExitCode::from(OUTPUT);
            }
        }
        return ExitCode::SUCCESS;
    }
    if !cli.json {
        emit(&human(&command, &reply));
    }
    ExitCode::SUCCESS
}

/// Draws `report`'s reply into `path`; says what it wrote.
fn write_report(path: &Path, reply: &Value) -> Result<String, String> {
    let r: report::Report = serde_json::from_value(reply.clone())
        .map_err(|e| format!("unexpected report reply from the appliance: {e}"))?;
    let svg = report::svg(&r)?;
    std::fs::write(path, svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let titles: Vec<String> = r.charts.iter().map(report::title).collect();
    Ok(format!(
        "wrote {}: {} to {}, {}\n",
        path.display(),
        r.from,
        r.to,
        titles.join(", ")
    ))
}

/// The request for a subcommand.
fn request(cmd: Cmd) -> Result<Command, String> {
    Ok(match cmd {
        Cmd::Status => Command::Status,
        Cmd::Customers { window, top } => Command::Customers { window, top },
        Cmd::Customer { customer } => Command::Customer { customer },
        Cmd::Block {
            customer,
            duration,
            reason,
        } => Command::Block {
            customer,
            duration,
            reason,
        },
        Cmd::Unblock { customer, reason } => Command::Unblock { customer, reason },
        Cmd::Blocks => Command::Blocks,
        Cmd::SetLimit {
            customer,
            plan,
            window,
            value,
            persist,
        } => Command::SetLimit {
            customer,
            plan,
            window,
            value,
            persist,
        },
        Cmd::Mode { mut args } => {
            let mode_text = args.pop().unwrap_or_default();
            let mode: Mode = mode_text.parse().map_err(|e| format!("mode: {e}"))?;
            Command::Mode {
                customer: args.pop(),
                mode,
            }
        }
        Cmd::Reload => Command::Reload,
        Cmd::Events => Command::Events,
        Cmd::Metrics => Command::Metrics,
        Cmd::Fleet => Command::Fleet,
        Cmd::History {
            customer,
            since,
            step,
            window,
        } => Command::History {
            customer,
            since,
            step,
            window,
        },
        Cmd::WhatIf {
            customer,
            plan,
            all: _,
            since,
            limits,
        } => {
            let mut map = std::collections::BTreeMap::new();
            for l in &limits {
                let (w, v) = l
                    .split_once('=')
                    .ok_or_else(|| format!("'{l}': write WINDOW=LIMIT, e.g. 5m=200"))?;
                let v: u64 = v
                    .parse()
                    .map_err(|_| format!("'{l}': the limit is a whole number of SYNs"))?;
                if map.insert(w.to_owned(), v).is_some() {
                    return Err(format!("window {w} is given twice"));
                }
            }
            Command::WhatIf {
                customer,
                plan,
                limits: map,
                since,
            }
        }
        Cmd::Suggest {
            peaks:
                Peaks {
                    plan,
                    since,
                    headroom,
                },
        } => Command::Suggest {
            plan,
            since,
            headroom,
        },
        Cmd::Report {
            svg: _,
            peaks:
                Peaks {
                    plan,
                    since,
                    headroom,
                },
            top,
        } => Command::Report {
            plan,
            since,
            headroom,
            top,
        },
    })
}

/// A connection to the appliance.
struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Connection {
    fn open(path: &Path) -> Result<Connection, String> {
        let shown = path.display();
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => format!("is synwall running? no socket at {shown}"),
            ErrorKind::PermissionDenied => format!(
                "permission denied on {shown}: ask for membership in the socket's group{} or use sudo",
                group_of(path).map(|g| format!(" ({g})")).unwrap_or_default()
            ),
            ErrorKind::ConnectionRefused => {
                format!("nothing answers on {shown} (a stale socket): is synwall running?")
            }
            _ => format!("connecting to {shown}: {e}"),
        })?;
        let reader = stream
            .try_clone()
            .map_err(|e| format!("connecting to {shown}: {e}"))?;
        Ok(Connection {
            reader: BufReader::new(reader),
            writer: stream,
        })
    }

    /// Sends one request and reads its reply.
    fn ask(&mut self, command: &Command) -> Result<Value, String> {
        // The server answers within its own timeout: a few seconds, a few
        // minutes for a reload (reading a million customers takes a while).
        let wait = if *command == Command::Reload { 330 } else { 30 };
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(wait)));
        self.send(command)?;
        self.read_reply()?
            .ok_or_else(|| "the appliance closed the connection without answering".to_owned())
    }

    fn send(&mut self, command: &Command) -> Result<(), String> {
        let mut line = command.to_line();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| format!("sending the request: {e}"))
    }

    /// The next reply line; `None` when the appliance closed.
    fn read_reply(&mut self) -> Result<Option<Value>, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => serde_json::from_str(&line)
                .map(Some)
                .map_err(|e| format!("unreadable reply from the appliance: {e}: {line}")),
            Err(e) => Err(format!("reading the reply: {e}")),
        }
    }
}

/// Checks, before anything is sent, that the process listening on the
/// socket (`SO_PEERCRED`) runs as root, as this user, or as
/// `server_user`: a user who could write the socket's directory could
/// otherwise listen in synwall's place and take an operator's `block`.
fn check_server(stream: &UnixStream, path: &Path, server_user: Option<&str>) -> Result<(), String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let shown = path.display();
    let cred = getsockopt(stream, PeerCredentials)
        .map_err(|e| format!("asking who listens on {shown}: {e}"))?;
    let uid = cred.uid();
    let me = nix::unistd::geteuid().as_raw();
    let expected = server_user.map(user_id).transpose()?;
    if uid == 0 || uid == me || expected == Some(uid) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("/")).display();
    Err(format!(
        "refusing to talk to {shown}: the process listening there (pid {}) runs as {}, not root or you{}, \
         so it may not be synwall (someone who can write {dir} can listen in its place); check \
         `ls -ld {dir} {shown}` and that synwall is running; if synwall runs as that user, say so \
         with --server-user (or SYNWALL_SERVER_USER)",
        cred.pid(),
        user_name(uid),
        server_user.map(|u| format!(" or {u}")).unwrap_or_default()
    ))
}

/// The uid of user `name` (or a number).
fn user_id(name: &str) -> Result<u32, String> {
    if let Ok(uid) = name.parse() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        _ => Err(format!("--server-user {name}: no such user")),
    }
}

/// The socket file's group name, for the permission-denied hint.
fn group_of(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(path).ok()?.gid();
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// Prints event lines until the appliance goes away (or stdout does).
fn follow(conn: &mut Connection, json: bool) -> ExitCode {
    if let Err(why) = conn.send(&Command::Events) {
        eprintln!("synwallctl: {why}");
        return ExitCode::from(UNREACHABLE);
    }
    let mut stdout = std::io::stdout().lock();
    let mut first = true;
    loop {
        match conn.read_reply() {
            Ok(Some(v)) => {
                if v.get("ok") == Some(&Value::Bool(false)) {
                    let why = plain(v["error"].as_str().unwrap_or("the appliance refused"));
                    eprintln!("synwallctl: {why}");
                    return ExitCode::from(REFUSED);
                }
                let line = if first && !json {
                    // The acknowledgement: only scripts want it.
                    None
                } else if json {
                    Some(v.to_string())
                } else {
                    Some(event_line(&v))
                };
                first = false;
                if let Some(line) = line {
                    if writeln!(stdout, "{line}")
                        .and_then(|_| stdout.flush())
                        .is_err()
                    {
                        return ExitCode::SUCCESS;
                    }
                }
            }
            Ok(None) => {
                eprintln!("synwallctl: the appliance closed the event stream");
                return ExitCode::from(UNREACHABLE);
            }
            Err(why) => {
                eprintln!("synwallctl: {why}");
                return ExitCode::from(UNREACHABLE);
            }
        }
    }
}

/// One event as a line of words: time, kind, customer, then the rest.
fn event_line(v: &Value) -> String {
    let s = |k: &str| v.get(k).map(text).unwrap_or_default();
    let mut out = format!("{} {:<11} {}", s("ts"), s("kind"), s("customer"));
    if let Value::Object(m) = v {
        for (k, val) in m {
            if !matches!(k.as_str(), "ts" | "kind" | "customer") {
                out.push_str(&format!(" {k}={}", text(val)));
            }
        }
    }
    out.trim_end().to_owned()
}

/// A JSON value as plain text (strings unquoted, control characters
/// escaped).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => plain(s),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A multi-line text (the metrics' exposition format) as its lines, each
/// with its other control characters escaped as [`plain`] does.
fn lines(v: &Value) -> String {
    match v.as_str() {
        Some(s) => s.split('\n').map(plain).collect::<Vec<_>>().join("\n"),
        None => text(v),
    }
}

/// `s` with every control character escaped (`\n`, `\u{1b}`): text from
/// the appliance (reasons, names, errors that quote a request) never forges
/// a table row or reaches the terminal as an escape sequence.
fn plain(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The reply as an operator reads it.
fn human(command: &Command, r: &Value) -> String {
    match command {
        Command::History { .. } => history_page(r),
        Command::WhatIf { .. } => what_if_page(r),
        Command::Suggest { .. } | Command::Report { .. } => suggest_page(r),
        Command::Customers { .. } => {
            let window = text(&r["window"]);
            let mut rows = vec![vec![
                "CUSTOMER".to_owned(),
                format!("SYNS({window})"),
                "LIMIT".into(),
                "USED".into(),
                "STATE".into(),
                "MODE".into(),
            ]];
            for c in r["customers"].as_array().into_iter().flatten() {
                let count = c["count"].as_u64().unwrap_or(0);
                let limit = c["limit"].as_u64().unwrap_or(0);
                rows.push(vec![
                    text(&c["customer"]),
                    count.to_string(),
                    limit.to_string(),
                    percent(count, limit),
                    text(&c["state"]),
                    text(&c["mode"]),
                ]);
            }
            format!(
                "{}{} customers, {} active, {} blocked\n",
                table(&rows),
                r["total"],
                r["active"],
                r["blocked"]
            )
        }
        Command::Customer { .. } => customer(&r["customer"]),
        Command::Block { .. } | Command::Unblock { .. } => {
            let e = &r["event"];
            let mut out = format!("{} {}", text(&e["kind"]), text(&e["customer"]));
            match e.get("until") {
                Some(u) => out.push_str(&format!(" until {}", text(u))),
                None if e["kind"] == "block" => out.push_str(" until unblocked"),
                None => {}
            }
            if let Some(reason) = e.get("reason") {
                out.push_str(&format!(" ({})", text(reason)));
            }
            out + "\n"
        }
        Command::Blocks => {
            let mut rows = vec![vec![
                "CUSTOMER".to_owned(),
                "SINCE".into(),
                "UNTIL".into(),
                "REASON".into(),
            ]];
            for b in r["blocks"].as_array().into_iter().flatten() {
                rows.push(vec![
                    text(&b["customer"]),
                    text(&b["since"]),
                    b.get("until").map(text).unwrap_or_else(|| "-".into()),
                    reason(&b["reason"]),
                ]);
            }
            if rows.len() == 1 {
                "no blocks in force\n".to_owned()
            } else {
                table(&rows)
            }
        }
        Command::SetLimit { .. } => {
            let names: Vec<String> = r["customers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let mut out = format!("{} limit set to {}", text(&r["window"]), r["value"]);
            out.push_str(&was(r));
            if let Some(plan) = r.get("plan") {
                out.push_str(&format!(" on plan {}", text(plan)));
            }
            out.push_str(&format!(
                " for {} customer{}",
                names.len(),
                if names.len() == 1 { "" } else { "s" }
            ));
            if !names.is_empty() && names.len() <= 10 {
                out.push_str(&format!(" ({})", names.join(", ")));
            }
            match r.get("persisted").filter(|p| !p.is_null()) {
                Some(p) => out.push_str(&format!("; written to {}", text(p))),
                None => out.push_str("; until the next reload"),
            }
            out + "\n"
        }
        Command::Mode { .. } => match r.get("customer") {
            Some(c) => format!("{}: mode {}{}\n", text(c), text(&r["mode"]), was(r)),
            None => format!("default mode: {}{}\n", text(&r["mode"]), was(r)),
        },
        Command::Reload => format!("{}\n", text(&r["message"])),
        Command::Metrics => lines(&r["metrics"]),
        Command::Fleet if r["fleet"].is_null() => {
            "no [fleet] in the config: this appliance enforces alone\n".to_owned()
        }
        Command::Fleet => fleet_page(&r["fleet"]),
        Command::Status | Command::Events => {
            let mut out = String::new();
            nested(&mut out, r, 0);
            out
        }
    }
}

/// `fleet`'s reply, as a page: this appliance, then one line per Redis
/// node (per master of a Cluster) with its own health.
fn fleet_page(f: &Value) -> String {
    let health = |h: &Value| match h.as_bool() {
        Some(true) => "up",
        Some(false) => "DOWN",
        None => "not asked yet",
    };
    let ms = |v: &Value| v.as_f64().map_or("-".to_owned(), |m| format!("{m:.2} ms"));
    let mut out = format!(
        "fleet     {} (one of {} appliances, floor {})
redis     {}
",
        text(&f["name"]),
        f["appliances"],
        f["floor"],
        health(&f["healthy"]),
    );
    out.push_str(&format!(
        "{:<34} {:<14} {:>10} {:>12}  {}
",
        "node", "health", "rtt", "quarantine", "last error"
    ));
    for n in f["nodes"].as_array().into_iter().flatten() {
        let mut h = health(&n["healthy"]).to_owned();
        if n["healthy"] == false && n["up"] == true {
            h = "QUARANTINED".into();
        }
        let q = n["quarantine_left_ms"]
            .as_u64()
            .filter(|&q| q > 0)
            .map_or("-".to_owned(), |q| format!("{} s", q / 1000));
        out.push_str(&format!(
            "{:<34} {:<14} {:>10} {:>12}  {}
",
            text(&n["url"]),
            h,
            ms(&n["last_rtt_ms"]),
            q,
            text(&n["last_error"])
        ));
    }
    out.push_str(&format!(
        "leases    {} held, {} SYNs outstanding, {} leased in all\n\
         floors    {} customers on floors only, quarantine {} ms left\n\
         rounds    {} (replies {}, failures {}), last round trip {}\n\
         notes     {} subscriptions, {} missed announcements applied, {}\n         announced {} waiting for Redis, {} given up\n",
        f["leases_held"],
        f["leased_outstanding"],
        f["leased_syns"],
        f["customers_on_floors_only"],
        f["quarantine_left_ms"],
        f["rounds"],
        f["replies"],
        f["failures"],
        ms(&f["last_rtt_ms"]),
        f["subscriptions"],
        f["notes_applied"],
        if f["reread_in_progress"] == true {
            format!("re-read in progress ({} customers left)", f["reread_left"])
        } else {
            "re-read done".to_owned()
        },
        f["announcements_waiting"],
        f["announcements_lost"],
    ));
    out
}

/// ` (was OLD)` from a change's event, or nothing.
fn was(r: &Value) -> String {
    match r["event"].get("old") {
        Some(old) => format!(" (was {})", text(old)),
        None => String::new(),
    }
}

/// A block reason (`{"cause":"operator","by":..,"reason":..}`) in words.
fn reason(r: &Value) -> String {
    match r["cause"].as_str() {
        Some("limit") => format!(
            "limit: {} SYNs in {} (limit {})",
            r["count"],
            text(&r["window"]),
            r["limit"]
        ),
        Some("operator") => format!("{} ({})", text(&r["reason"]), text(&r["by"])),
        Some("config") => "standing block in the config".into(),
        Some(other) => other.to_owned(),
        None => text(r),
    }
}

fn percent(count: u64, limit: u64) -> String {
    if limit == 0 {
        "-".into()
    } else {
        format!("{:.0}%", count as f64 * 100.0 / limit as f64)
    }
}

/// `customer`'s reply, as a page.
fn customer(c: &Value) -> String {
    let mut out = format!(
        "customer  {} (id {})\nstate     {}\nmode      {}\n",
        text(&c["name"]),
        c["id"],
        text(&c["state"]),
        text(&c["mode"])
    );
    if let Some(plan) = c.get("plan").filter(|p| !p.is_null()) {
        out.push_str(&format!("plan      {}\n", text(plan)));
    }
    if let Some(since) = c.get("since") {
        out.push_str(&format!("since     {}\n", text(since)));
        out.push_str(&format!(
            "until     {}\n",
            c.get("until")
                .map(text)
                .unwrap_or_else(|| "unblocked by an operator".into())
        ));
        out.push_str(&format!("reason    {}\n", reason(&c["reason"])));
    }
    let prefixes: Vec<String> = c["prefixes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    out.push_str(&format!("prefixes  {}\n", prefixes.join(" ")));
    out.push_str(&format!(
        "syns      {} seen, {} forwarded, {} dropped while blocked, {} dropped at the limit before the block; {} limit blocks\n\n",
        c["seen"], c["forwarded"], c["attempts_while_blocked"], c["dropped_at_limit"], c["offences"]
    ));
    let mut rows = vec![vec![
        "WINDOW".to_owned(),
        "SYNS".into(),
        "LIMIT".into(),
        "USED".into(),
    ]];
    for w in c["windows"].as_array().into_iter().flatten() {
        let count = w["count"].as_u64().unwrap_or(0);
        let limit = w["limit"].as_u64().unwrap_or(0);
        rows.push(vec![
            text(&w["name"]),
            count.to_string(),
            limit.to_string(),
            percent(count, limit),
        ]);
    }
    out.push_str(&table(&rows));
    let history = c["history"].as_array().cloned().unwrap_or_default();
    if !history.is_empty() {
        out.push_str("\nhistory\n");
        for h in &history {
            out.push_str(&format!(
                "  {} {:<7} {}{}\n",
                text(&h["at"]),
                text(&h["kind"]),
                reason(&h["reason"]),
                h.get("until")
                    .map(|u| format!(", until {}", text(u)))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

/// Rows as left-aligned columns.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Any JSON object as indented `key: value` lines (for `status`).
fn nested(out: &mut String, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter().filter(|(k, _)| *k != "ok") {
                match val {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        nested(out, val, depth + 1);
                    }
                    _ => out.push_str(&format!("{pad}{k}: {}\n", text(val))),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}[{i}]\n"));
                        nested(out, item, depth + 1);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", text(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", text(other))),
    }
}

/// Width of the chart column of `history`.
const CHART: usize = 40;

/// One chart cell row: `value` as a bar on a scale of `top`, the limit as
/// a `|` (the bar past it drawn `#`).
fn bar(value: u64, limit: Option<u64>, top: u64) -> String {
    let top = top.max(1);
    let cells = |v: u64| ((v.min(top) as f64 / top as f64) * CHART as f64).round() as usize;
    let n = cells(value);
    let at = limit.map(cells);
    (0..CHART.max(at.map_or(0, |a| a + 1)))
        .map(|i| match at {
            Some(a) if i == a => '|',
            Some(a) if i < n && i > a => '#',
            _ if i < n => '=',
            _ => ' ',
        })
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// `history`: the table with a chart column, then the blocks.
fn history_page(r: &Value) -> String {
    let window = text(&r["window"]);
    let limit = r["limit"].as_u64();
    let steps = r["steps"].as_array().cloned().unwrap_or_default();
    let top = steps
        .iter()
        .filter_map(|s| s["peak"].as_u64())
        .chain(limit)
        .max()
        .unwrap_or(1);
    let mut out = format!(
        "{}: {} to {}, {}-minute steps; peak = most SYNs in any {window} window (limit {})\n",
        text(&r["customer"]),
        text(&r["from"]),
        text(&r["to"]),
        r["step_minutes"],
        limit.map_or("unknown: not in the config".into(), |l| l.to_string()),
    );
    let mut rows = vec![vec![
        "START".to_owned(),
        "SEEN".into(),
        "FORWARDED".into(),
        format!("PEAK({window})"),
        format!("0 .. {top}  (| = limit)"),
    ]];
    for s in &steps {
        let peak = s["peak"].as_u64().unwrap_or(0);
        rows.push(vec![
            text(&s["start"]),
            s["seen"].to_string(),
            s["forwarded"].to_string(),
            peak.to_string(),
            bar(peak, limit, top),
        ]);
    }
    out.push_str(&table(&rows));
    out.push_str(&format!(
        "total: {} SYNs seen, {} forwarded{}\n",
        r["seen"],
        r["forwarded"],
        if r["hourly"] == Value::Bool(true) {
            " (older than 48 h: hourly buckets)"
        } else {
            ""
        }
    ));
    let blocks = r["blocks"].as_array().cloned().unwrap_or_default();
    if blocks.is_empty() {
        out.push_str("no blocks in this span\n");
    }
    for b in &blocks {
        out.push_str(&format!(
            "{} {:<7} {}{}\n",
            text(&b["at"]),
            text(&b["kind"]),
            plain(b["reason"].as_str().unwrap_or("")),
            b["until"]
                .as_str()
                .map(|u| format!(", until {u}"))
                .unwrap_or_default()
        ));
    }
    out
}

fn notes(r: &Value) -> String {
    r["estimate"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| format!("estimate: {}\n", text(n)))
        .collect()
}

/// `what-if`: per customer, the tried limits beside the current ones.
fn what_if_page(r: &Value) -> String {
    let limits: Vec<String> = r["limits"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(w, l)| format!("{w}={l}"))
        .collect();
    let mut out = format!(
        "{} customers with history, {} to {}; trying {}\n",
        r["customers"],
        text(&r["from"]),
        text(&r["to"]),
        if limits.is_empty() {
            "the current limits".to_owned()
        } else {
            limits.join(" ")
        }
    );
    let mut rows = vec![vec![
        "CUSTOMER".to_owned(),
        "FIRST BLOCK".into(),
        "WINDOW".into(),
        "BLOCKS".into(),
        "BLOCKED MIN".into(),
        "DROPPED".into(),
        "NOW: FIRST BLOCK".into(),
        "BLOCKS".into(),
        "DROPPED".into(),
    ]];
    for c in r["blocked"].as_array().into_iter().flatten() {
        let (a, n) = (&c["what_if"], &c["current"]);
        let first = |v: &Value| v.as_str().map_or("-".to_owned(), str::to_owned);
        rows.push(vec![
            text(&c["customer"]),
            first(&a["first_block"]),
            first(&a["first_window"]),
            a["blocks"].to_string(),
            a["blocked_minutes"].to_string(),
            a["dropped"].to_string(),
            first(&n["first_block"]),
            n["blocks"].to_string(),
            n["dropped"].to_string(),
        ]);
    }
    out.push_str(&table(&rows));
    let line = |name: &str, s: &Value| {
        format!(
            "{name}: {} customers blocked, {} blocks, {} SYNs dropped\n",
            s["customers_blocked"], s["blocks"], s["dropped"]
        )
    };
    out.push_str(&line("what-if", &r["what_if"]));
    out.push_str(&line("current", &r["current"]));
    out.push_str(&notes(r));
    out
}

/// `suggest`: per window, the peaks' distribution and the suggestion.
fn suggest_page(r: &Value) -> String {
    let mut out = format!(
        "{} customers with history{}, {} to {}; suggested = p99 x {}\n",
        r["customers"],
        r["plan"]
            .as_str()
            .map(|p| format!(" on plan {p}"))
            .unwrap_or_default(),
        text(&r["from"]),
        text(&r["to"]),
        r["headroom"]
    );
    let mut rows = vec![vec![
        "WINDOW".to_owned(),
        "P50".into(),
        "P90".into(),
        "P99".into(),
        "MAX".into(),
        "CURRENT".into(),
        "SUGGESTED".into(),
        "CAUGHT".into(),
    ]];
    let mut caught = String::new();
    for w in r["windows"].as_array().into_iter().flatten() {
        let d = &w["distribution"];
        let list = w["caught"].as_array().cloned().unwrap_or_default();
        rows.push(vec![
            text(&w["window"]),
            d["p50"].to_string(),
            d["p90"].to_string(),
            d["p99"].to_string(),
            d["max"].to_string(),
            w["current"].to_string(),
            w["suggested"].to_string(),
            list.len().to_string(),
        ]);
        if !list.is_empty() {
            let names: Vec<String> = list
                .iter()
                .take(20)
                .map(|c| format!("{} ({})", text(&c["customer"]), c["peak"]))
                .collect();
            caught.push_str(&format!(
                "{} {}: {}{}\n",
                text(&w["window"]),
                w["suggested"],
                names.join(", "),
                if list.len() > 20 { ", ..." } else { "" }
            ));
        }
    }
    out.push_str(&table(&rows));
    if !caught.is_empty() {
        out.push_str("caught by the suggested limit (peak), to check against the abuse desk:\n");
        out.push_str(&caught);
    }
    out.push_str(&notes(r));
    out
}

/// `uid`'s user name and number ("nobody (uid 65534)"), or the number.
fn user_name(uid: u32) -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid));
    user.ok().flatten().map_or_else(
        || format!("uid {uid}"),
        |u| format!("{} (uid {uid})", u.name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_keep_their_lines_and_lose_other_control_characters() {
        let v = Value::String("# TYPE a counter\na 1\nb{x=\"\u{1b}[2J\"} 2\n".into());
        assert_eq!(lines(&v), "# TYPE a counter\na 1\nb{x=\"\\u{1b}[2J\"} 2\n");
    }
}
