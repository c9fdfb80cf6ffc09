//! `docs/protocol.md` against the real control socket: every example
//! request in the page is sent, in page order, to a running `synwall`, and
//! its reply must match the documented one; every command the protocol
//! accepts ([`synwall_protocol::COMMANDS`]) must have an example.
//!
//! The page's examples are fenced blocks tagged `json request` (one line,
//! as on the wire), `json reply` (the reply to the request before it,
//! pretty-printed as the page likes) and `json event` (the next line an
//! `events` follower opened earlier in the page receives). A plain `json`
//! block is refused: every JSON example in the page is checked.
//!
//! A documented reply matches when it has the same shape (objects with
//! exactly the same keys, arrays of the same length, recursively) and the
//! same values, except where the page writes a placeholder, for what
//! changes from run to run:
//!
//! - a string that is exactly `"<int>"`, `"<number>"`, `"<string>"`,
//!   `"<bool>"` or `"<timestamp>"` stands for any value of that type
//!   (`<int>`: a non-negative integer; `<timestamp>`: a string like
//!   `2026-11-26T18:19:23.750Z`);
//! - any other string with such tokens in it is a template: the reply's
//!   string must be the same text with each token replaced by digits
//!   (`<int>`), a decimal number (`<number>`), a timestamp, or any
//!   non-empty text (`<string>`).

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use synwall_dataplane::craft::FrameBuilder;
use synwall_dataplane::parse::tcp_flags::SYN;
use synwall_protocol::COMMANDS;
use synwall_tests::fixtures::{customer, MX};
use synwall_tests::*;

const WAIT: Duration = Duration::from_secs(60);

/// The limits the page's session runs with (its examples name them).
const SECTIONS: &str = "[windows]\n\"5m\" = 100\n\"1h\" = 500\n\"1d\" = 2000\n\n\
                        [plans.mailserver]\n\"5m\" = 20000\n\"1d\" = 500000\n";

/// The page, relative to the workspace root.
const PAGE: &str = "docs/protocol.md";

/// One tagged fenced block of the page.
#[derive(Debug)]
struct Block {
    /// `request`, `reply` or `event`.
    kind: String,
    text: String,
    /// 1-based line of the opening fence.
    line: usize,
}

/// The page's ```json blocks, in order. Untagged or unknown-tagged JSON
/// blocks are an error: nothing in the page goes unchecked.
fn json_blocks(page: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    let mut in_other_fence = false;
    for (i, raw) in page.lines().enumerate() {
        let line = raw.trim_end();
        if let Some(block) = open.as_mut() {
            if line == "```" {
                blocks.push(open.take().unwrap());
            } else {
                block.text.push_str(line);
                block.text.push('\n');
            }
            continue;
        }
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        if in_other_fence {
            // The fence that closes a block of another language.
            in_other_fence = false;
            continue;
        }
        let mut words = info.split_whitespace();
        if words.next() != Some("json") {
            in_other_fence = true;
            continue;
        }
        let kind = words.next().unwrap_or("").to_owned();
        assert!(
            ["request", "reply", "event"].contains(&kind.as_str()),
            "{PAGE}:{}: a json block must be tagged `json request`, `json reply` or \
             `json event` (got {info:?}): every JSON example is checked against the socket",
            i + 1
        );
        open = Some(Block {
            kind,
            text: String::new(),
            line: i + 1,
        });
    }
    assert!(open.is_none(), "{PAGE}: a json block is not closed");
    blocks
}

/// Where `got` (`source`'s JSON) differs from the documented `want`: the
/// error, which names `what` and shows `got` whole; `None` where it holds.
fn differs(want: &Value, got: &Value, kind: &str, what: &str, source: &str) -> Option<String> {
    let mut diff = Vec::new();
    compare(want, got, kind, &mut diff);
    (!diff.is_empty()).then(|| {
        format!(
            "{what} differs:\n  {}\n{source}:\n{}",
            diff.join("\n  "),
            serde_json::to_string_pretty(got).unwrap()
        )
    })
}

/// Whether `doc` (the page's value, with placeholders) matches `got` (the
/// socket's); what differs goes to `errors`, each with its path.
fn compare(doc: &Value, got: &Value, path: &str, errors: &mut Vec<String>) {
    match doc {
        Value::String(s) if is_placeholder(s) => {
            let ok = match s.as_str() {
                "<int>" => got.is_u64(),
                "<number>" => got.is_number(),
                "<bool>" => got.is_boolean(),
                "<string>" => got.is_string(),
                "<timestamp>" => got.as_str().is_some_and(is_timestamp),
                _ => unreachable!(),
            };
            if !ok {
                errors.push(format!("{path}: expected {s}, got {got}"));
            }
        }
        Value::String(s) if TOKENS.iter().any(|t| s.contains(t)) => {
            if !got.as_str().is_some_and(|g| template_matches(s, g)) {
                errors.push(format!("{path}: expected text like {s:?}, got {got}"));
            }
        }
        Value::Object(d) => {
            let Some(g) = got.as_object() else {
                errors.push(format!("{path}: expected an object, got {got}"));
                return;
            };
            for k in d.keys().filter(|k| !g.contains_key(*k)) {
                errors.push(format!("{path}.{k}: documented, not in the reply"));
            }
            for k in g.keys().filter(|k| !d.contains_key(*k)) {
                errors.push(format!(
                    "{path}.{k}: in the reply ({}), not documented",
                    g[k]
                ));
            }
            for (k, v) in d {
                if let Some(gv) = g.get(k) {
                    compare(v, gv, &format!("{path}.{k}"), errors);
                }
            }
        }
        Value::Array(d) => {
            let Some(g) = got.as_array() else {
                errors.push(format!("{path}: expected an array, got {got}"));
                return;
            };
            if d.len() != g.len() {
                errors.push(format!(
                    "{path}: documented {} elements, the reply has {}: {got}",
                    d.len(),
                    g.len()
                ));
                return;
            }
            for (i, (dv, gv)) in d.iter().zip(g).enumerate() {
                compare(dv, gv, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {
            // Numbers compare by value: 1 and 1.0 are the same number.
            let same = match (doc.as_f64(), got.as_f64()) {
                (Some(a), Some(b)) if doc.is_number() && got.is_number() => a == b,
                _ => doc == got,
            };
            if !same {
                errors.push(format!("{path}: documented {doc}, got {got}"));
            }
        }
    }
}

const TOKENS: [&str; 5] = ["<int>", "<number>", "<string>", "<bool>", "<timestamp>"];

fn is_placeholder(s: &str) -> bool {
    TOKENS.contains(&s)
}

/// `2026-11-26T18:19:23.750Z`.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Whether `text` is `template` with each token replaced by what it
/// stands for (backtracking over the token's length).
fn template_matches(template: &str, text: &str) -> bool {
    let next = TOKENS
        .iter()
        .filter_map(|t| template.find(t).map(|i| (i, *t)))
        .min();
    let Some((at, token)) = next else {
        return template == text;
    };
    let (lit, rest) = (&template[..at], &template[at + token.len()..]);
    let Some(text) = text.strip_prefix(lit) else {
        return false;
    };
    (1..=text.len())
        .filter(|&n| text.is_char_boundary(n))
        .any(|n| {
            let (head, tail) = text.split_at(n);
            let fits = match token {
                "<int>" => head.bytes().all(|c| c.is_ascii_digit()),
                "<number>" => head.parse::<f64>().is_ok() && !head.contains(['e', 'E', 'i', 'n']),
                "<bool>" => head == "true" || head == "false",
                "<timestamp>" => is_timestamp(head),
                _ => true,
            };
            fits && template_matches(rest, tail)
        })
}

/// Sends `line` on a fresh connection; the reply.
fn ask(socket: &Path, line: &str) -> Value {
    control_request(socket, format!("{line}\n").as_bytes(), WAIT)
        .unwrap_or_else(|e| panic!("no reply to {line}: {e}"))
}

/// An `events` follower: the connection and what it reads.
struct Follower(BufReader<UnixStream>);

impl Follower {
    fn open(socket: &Path, line: &str) -> (Follower, Value) {
        let mut s = UnixStream::connect(socket).expect("connect for events");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut f = Follower(BufReader::new(s));
        let reply = f.next();
        (f, reply)
    }

    fn next(&mut self) -> Value {
        let mut line = String::new();
        self.0
            .read_line(&mut line)
            .expect("reading the events stream");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

/// Checks `page` against the socket; the list of what differs.
fn check_page(page: &str, socket: &Path) -> Vec<String> {
    let blocks = json_blocks(page);
    let mut errors = Vec::new();
    let mut follower: Option<Follower> = None;
    let mut reply: Option<(Value, &Block, String)> = None;
    let mut documented = Vec::new();
    for block in &blocks {
        let at = format!("{PAGE}:{}", block.line);
        // A request may be broken on purpose (the page shows the errors);
        // what comes back must be JSON.
        let value: Value = match serde_json::from_str(&block.text) {
            Ok(v) => v,
            Err(_) if block.kind == "request" => Value::Null,
            Err(e) => panic!("{at}: not JSON: {e}\n{}", block.text),
        };
        match block.kind.as_str() {
            "request" => {
                if let Some((_, req, _)) = reply.take() {
                    errors.push(format!("{PAGE}:{}: request without a reply", req.line));
                }
                let line = block.text.trim();
                assert!(
                    !line.contains('\n'),
                    "{at}: a request is one line, as on the wire"
                );
                if let Some(cmd) = value["cmd"].as_str() {
                    documented.push(cmd.to_owned());
                }
                let got = if value["cmd"] == "events" {
                    let (f, got) = Follower::open(socket, line);
                    follower = Some(f);
                    got
                } else {
                    ask(socket, line)
                };
                reply = Some((got, block, line.to_owned()));
            }
            "reply" => {
                let Some((got, _, line)) = reply.take() else {
                    errors.push(format!("{at}: reply without a request before it"));
                    continue;
                };
                errors.extend(differs(
                    &value,
                    &got,
                    "reply",
                    &format!("{at}: the reply to {line}"),
                    "the socket's reply",
                ));
            }
            "event" => {
                let Some(f) = follower.as_mut() else {
                    errors.push(format!("{at}: an event before any events request"));
                    continue;
                };
                let got = f.next();
                errors.extend(differs(
                    &value,
                    &got,
                    "event",
                    &format!("{at}: the event"),
                    "the stream's line",
                ));
            }
            _ => unreachable!(),
        }
    }
    if let Some((_, req, _)) = reply {
        errors.push(format!("{PAGE}:{}: request without a reply", req.line));
    }
    for cmd in COMMANDS {
        if !documented.iter().any(|d| d == cmd) {
            errors.push(format!(
                "command '{cmd}' has no example request in {PAGE}: add a `json request` \
                 block and its `json reply`"
            ));
        }
    }
    errors
}

#[test]
fn every_documented_example_gets_the_documented_reply() {
    synwall_bin();
    let page = std::fs::read_to_string(workspace_root().join(PAGE)).expect("reading the page");
    // Three new mail connections from acme and one from beta, so that
    // `customers` and `customer` have counts to show.
    let syn = |src: [u8; 4], port: u16| {
        FrameBuilder::tcp_v4(Ipv4Addr::from(src), MX, port, 25, SYN).build()
    };
    let inside = vec![
        syn([10, 1, 0, 7], 40001),
        syn([10, 1, 0, 7], 40002),
        syn([10, 2, 0, 7], 40003),
        syn([10, 1, 0, 8], 40004),
    ];
    let mut s = Scenario::new(inside, Vec::new())
        .sections(SECTIONS)
        .control(&format!("metrics_listen = \"127.0.0.1:{}\"", free_port()))
        .customers(
            &(customer("acme", &["10.1.0.0/16"], "")
                + &customer("beta", &["10.2.0.0/16"], "plan = \"mailserver\"")),
        );
    s.duration = 300.0;
    let mut running = s.spawn(TestDir::new("protocol-doc"), &[]);
    running.wait_forwarding(WAIT);
    let socket = running.dir().join("control.sock");
    // The page's session starts once the tick has counted every SYN.
    running.wait_for("the SYNs counted", WAIT, |_| {
        let r = control_request(&socket, b"{\"cmd\":\"customers\"}\n", WAIT).ok()?;
        (r["active"] == 2 && r["customers"][0]["count"] == 3).then_some(())
    });
    let errors = check_page(&page, &socket);
    running.signal("TERM");
    running.wait(WAIT);
    assert!(
        errors.is_empty(),
        "{PAGE} does not match the socket:\n{}",
        errors.join("\n\n")
    );
}

#[test]
fn the_matcher_is_strict() {
    let m = |doc: &str, got: &str| {
        let mut e = Vec::new();
        compare(
            &serde_json::from_str(doc).unwrap(),
            &serde_json::from_str(got).unwrap(),
            "r",
            &mut e,
        );
        e.is_empty()
    };
    assert!(m(r#"{"ok":true,"n":"<int>"}"#, r#"{"ok":true,"n":7}"#));
    assert!(!m(r#"{"ok":true,"n":"<int>"}"#, r#"{"ok":true,"n":"7"}"#));
    assert!(!m(r#"{"ok":true,"n":"<int>"}"#, r#"{"ok":true,"n":-1}"#));
    assert!(!m(r#"{"ok":true}"#, r#"{"ok":true,"extra":1}"#));
    assert!(!m(r#"{"ok":true,"gone":1}"#, r#"{"ok":true}"#));
    assert!(!m(r#"{"ok":true}"#, r#"{"ok":false}"#));
    assert!(!m(r#"[1,2]"#, r#"[1]"#));
    assert!(m(r#""uid=<int> pid=<int>""#, r#""uid=0 pid=4242""#));
    assert!(!m(r#""uid=<int> pid=<int>""#, r#""uid=0 pid=""#));
    assert!(m(r#""<timestamp>""#, r#""2026-11-26T18:19:23.750Z""#));
    assert!(!m(r#""<timestamp>""#, r#""2026-11-26 18:19:23""#));
    assert!(m(
        r#""block until <timestamp> (<string>)""#,
        r#""block until 2026-11-26T18:19:23.750Z (abuse #1)""#
    ));
    assert!(!m(r#""exact""#, r#""exactly""#));
}
