//! The commands against a real plane over a fake control thread.
use super::*;

use crate::testing::{config_text, Fake};

impl Fake {
    fn run(&mut self, line: &str) -> Value {
        let cmd = synwall_protocol::parse_line(line.as_bytes()).unwrap();
        execute(cmd, &CALLER, self)
    }

    fn fails(&mut self, line: &str) -> String {
        let r = self.run(line);
        assert_eq!(r["ok"], false, "{line} → {r}");
        r["error"].as_str().unwrap().to_owned()
    }

    fn succeeds(&mut self, line: &str) -> Value {
        let r = self.run(line);
        assert_eq!(r["ok"], true, "{line} → {r}");
        r
    }
}

const CALLER: Caller = Caller {
    uid: 1000,
    gid: 1000,
    pid: 4242,
};

fn fake() -> Fake {
    Fake::new()
}

#[test]
fn status_and_metrics() {
    let mut f = fake();
    let r = f.succeeds(r#"{"cmd":"status"}"#);
    assert_eq!(r["version"], "test");
    let r = f.succeeds(r#"{"cmd":"metrics"}"#);
    assert_eq!(r["metrics"], "# TYPE synwall_up gauge\nsynwall_up 1\n");
}

#[test]
fn customers_ranks_by_window() {
    let mut f = fake();
    f.syns(0, 3);
    f.syns(1, 5);
    let r = f.succeeds(r#"{"cmd":"customers"}"#);
    assert_eq!(r["window"], "5m");
    let rows = r["customers"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["customer"], "mx");
    assert_eq!(rows[0]["count"], 5);
    assert_eq!(rows[0]["limit"], 1000);
    assert_eq!(rows[1]["customer"], "acme");
    assert_eq!(rows[1]["state"], "open");
    assert_eq!(rows[1]["mode"], "enforce");
    assert_eq!(r["total"], 3);
    let r = f.succeeds(r#"{"cmd":"customers","window":"60m","top":1}"#);
    assert_eq!(r["window"], "1h");
    assert_eq!(r["customers"].as_array().unwrap().len(), 1);
    let e = f.fails(r#"{"cmd":"customers","window":"2h"}"#);
    assert_eq!(e, "unknown window '2h' (windows: 5m, 1h)");
}

#[test]
fn customer_by_name_and_by_address() {
    let mut f = fake();
    f.syns(0, 4);
    let r = f.succeeds(r#"{"cmd":"customer","customer":"acme"}"#);
    let c = &r["customer"];
    assert_eq!(c["name"], "acme");
    assert_eq!(c["state"], "open");
    assert_eq!(c["windows"][0]["count"], 4);
    assert_eq!(c["windows"][0]["limit"], 10);
    assert_eq!(c["prefixes"][0], "198.51.100.0/24");
    for addr in ["198.51.100.7", "2001:db8:1::25"] {
        let r = f.succeeds(&format!(r#"{{"cmd":"customer","customer":"{addr}"}}"#));
        assert_eq!(r["customer"]["name"], "acme");
    }
    let r = f.succeeds(r#"{"cmd":"customer","customer":"203.0.113.10"}"#);
    assert_eq!(r["customer"]["plan"], "mailserver");
    assert_eq!(
        f.fails(r#"{"cmd":"customer","customer":"nobody"}"#),
        "unknown customer 'nobody'"
    );
    assert_eq!(
        f.fails(r#"{"cmd":"customer","customer":"192.0.2.1"}"#),
        "unknown customer '192.0.2.1': no customer owns that address"
    );
}

#[test]
fn block_and_unblock_record_the_caller() {
    let mut f = fake();
    let r =
        f.succeeds(r#"{"cmd":"block","customer":"acme","duration":"2h","reason":"abuse #123"}"#);
    assert_eq!(r["event"]["kind"], "block");
    assert_eq!(r["event"]["by"], "uid=1000 pid=4242");
    assert_eq!(r["event"]["reason"], "abuse #123");
    assert!(r["event"]["until"].is_string());
    let ev = f.emitted.last().unwrap();
    assert_eq!(ev.kind, EventKind::Block);
    assert_eq!(ev.by.as_deref(), Some("uid=1000 pid=4242"));
    f.tick();
    assert!(f.shards.iter().all(|s| s.is_blocked(CustomerId::new(0))));

    let r = f.succeeds(r#"{"cmd":"blocks"}"#);
    let blocks = r["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0]["customer"], "acme");
    assert_eq!(blocks[0]["reason"]["by"], "uid=1000 pid=4242");
    let r = f.succeeds(r#"{"cmd":"customer","customer":"acme"}"#);
    assert_eq!(r["customer"]["state"], "blocked");

    // Indefinite, by address, default reason.
    let r = f.succeeds(r#"{"cmd":"block","customer":"203.0.113.10"}"#);
    assert_eq!(r["event"]["customer"], "mx");
    assert!(r["event"].get("until").is_none());

    let r = f.succeeds(r#"{"cmd":"unblock","customer":"acme","reason":"fixed"}"#);
    assert_eq!(r["event"]["kind"], "unblock");
    assert_eq!(r["event"]["by"], "uid=1000 pid=4242");
    assert_eq!(f.emitted.last().unwrap().kind, EventKind::Unblock);
    f.tick();
    assert!(!f.shards[0].is_blocked(CustomerId::new(0)));
    assert_eq!(
        f.fails(r#"{"cmd":"unblock","customer":"acme"}"#),
        "customer 'acme' is not blocked"
    );
    assert_eq!(
        f.succeeds(r#"{"cmd":"blocks"}"#)["blocks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn block_errors_change_nothing() {
    let mut f = fake();
    let n = f.emitted.len();
    let e = f.fails(r#"{"cmd":"block","customer":"acme","duration":"2x"}"#);
    assert!(e.starts_with("bad duration '2x': "), "{e}");
    let e = f.fails(r#"{"cmd":"block","customer":"acme","duration":"0"}"#);
    assert!(e.starts_with("bad duration '0': "), "{e}");
    assert_eq!(
        f.fails(r#"{"cmd":"block","customer":"acme2"}"#),
        "unknown customer 'acme2'"
    );
    assert_eq!(
        f.fails(r#"{"cmd":"unblock","customer":"acme2"}"#),
        "unknown customer 'acme2'"
    );
    assert_eq!(f.emitted.len(), n);
    assert!(f.plane.blocks().is_empty());
}

#[test]
fn set_limit_for_a_customer_and_a_plan() {
    let mut f = fake();
    let r = f.succeeds(r#"{"cmd":"set-limit","customer":"acme","window":"5m","value":3}"#);
    assert_eq!(r["customers"], json!(["acme"]));
    assert_eq!(r["persisted"], Value::Null);
    assert_eq!(f.plane.limits(CustomerId::new(0)).unwrap(), &[3, 100]);
    // A plan: mx follows it, mx2 keeps its own 5m override.
    let r = f.succeeds(r#"{"cmd":"set-limit","plan":"mailserver","window":"5m","value":50}"#);
    assert_eq!(r["customers"], json!(["mx"]));
    assert_eq!(r["plan"], "mailserver");
    assert_eq!(f.plane.limits(CustomerId::new(1)).unwrap(), &[50, 100]);
    assert_eq!(f.plane.limits(CustomerId::new(2)).unwrap(), &[7, 100]);
    // By length.
    f.succeeds(r#"{"cmd":"set-limit","customer":"mx2","window":"60m","value":9}"#);
    assert_eq!(f.plane.limits(CustomerId::new(2)).unwrap(), &[7, 9]);

    let e = f.fails(r#"{"cmd":"set-limit","customer":"acme","window":"2h","value":3}"#);
    assert!(e.starts_with("unknown window '2h'"), "{e}");
    let e = f.fails(r#"{"cmd":"set-limit","plan":"gold","window":"5m","value":3}"#);
    assert_eq!(e, "unknown plan 'gold' (plans: mailserver)");
    let e = f.fails(r#"{"cmd":"set-limit","window":"5m","value":3}"#);
    assert!(e.contains("exactly one of"), "{e}");
    let e = f.fails(
        r#"{"cmd":"set-limit","customer":"acme","plan":"mailserver","window":"5m","value":3}"#,
    );
    assert!(e.contains("exactly one of"), "{e}");
    // Persisting to a file that is not there: refused, nothing changed.
    let e =
        f.fails(r#"{"cmd":"set-limit","customer":"acme","window":"5m","value":4,"persist":true}"#);
    assert!(e.starts_with("persisting: reading"), "{e}");
    assert_eq!(f.plane.limits(CustomerId::new(0)).unwrap(), &[3, 100]);
}

#[test]
fn set_limit_and_mode_are_events_with_the_caller_and_old_and_new_values() {
    let mut f = fake();
    let by = Some("uid=1000 pid=4242");
    let limit = |n| Some(Setting::Limit(n));
    let mode = |m| Some(Setting::Mode(m));
    let n = f.emitted.len();
    let r = f.succeeds(r#"{"cmd":"set-limit","customer":"acme","window":"5m","value":3}"#);
    assert_eq!(r["event"]["old"], 10, "{r}");
    let e = f.emitted.last().unwrap().clone();
    assert_eq!(e.kind, EventKind::SetLimit);
    assert_eq!(e.customer.as_deref(), Some("acme"));
    assert_eq!(
        (e.window.as_deref(), e.old, e.new),
        (Some("5m"), limit(10), limit(3))
    );
    assert_eq!(e.by.as_deref(), by);
    f.succeeds(r#"{"cmd":"set-limit","plan":"mailserver","window":"5m","value":50}"#);
    let e = f.emitted.last().unwrap().clone();
    assert_eq!((e.plan.as_deref(), e.customer), (Some("mailserver"), None));
    assert_eq!((e.old, e.new), (limit(1000), limit(50)));
    assert_eq!(e.reason.as_deref(), Some("1 customer follows the plan"));
    // The plan's customers had different 1h limits: no one old value.
    f.succeeds(r#"{"cmd":"set-limit","customer":"mx","window":"1h","value":9}"#);
    f.succeeds(r#"{"cmd":"set-limit","plan":"mailserver","window":"1h","value":20}"#);
    let e = f.emitted.last().unwrap().clone();
    assert_eq!((e.old, e.new), (None, limit(20)));
    assert_eq!(
        e.reason.as_deref(),
        Some("2 customers follow the plan; their limits were 9 to 100")
    );
    assert_eq!(f.emitted.len(), n + 4);
    // Refused: no event.
    f.fails(r#"{"cmd":"set-limit","customer":"zz","window":"5m","value":3}"#);
    f.fails(r#"{"cmd":"set-limit","customer":"acme","window":"2h","value":3}"#);
    f.fails(r#"{"cmd":"mode","mode":"exempt"}"#);
    assert_eq!(f.emitted.len(), n + 4);

    let r = f.succeeds(r#"{"cmd":"mode","customer":"acme","mode":"monitor"}"#);
    assert_eq!(r["event"]["new"], "monitor", "{r}");
    let e = f.emitted.last().unwrap().clone();
    assert_eq!(e.kind, EventKind::SetMode);
    assert_eq!(e.customer.as_deref(), Some("acme"));
    assert_eq!((e.old, e.new), (mode(Mode::Enforce), mode(Mode::Monitor)));
    assert_eq!(e.by.as_deref(), by);
    f.succeeds(r#"{"cmd":"mode","mode":"monitor"}"#);
    let e = f.emitted.last().unwrap().clone();
    assert_eq!((e.kind, e.customer), (EventKind::SetMode, None));
    assert_eq!((e.old, e.new), (mode(Mode::Enforce), mode(Mode::Monitor)));
    assert_eq!(e.by.as_deref(), by);

    f.succeeds(r#"{"cmd":"reload"}"#);
    let e = f.emitted.last().unwrap().clone();
    assert_eq!((e.kind, e.by.as_deref()), (EventKind::Reload, by));
}

#[test]
fn set_limit_persists_into_the_config_files() {
    let dir = std::env::temp_dir().join(format!("synwall-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("synwall.toml");
    let text = format!("# keep me\n{}", config_text());
    std::fs::write(&path, &text).unwrap();
    let mut f = Fake::with_config(&text, &path);
    f.succeeds(r#"{"cmd":"set-limit","customer":"acme","window":"1h","value":42,"persist":true}"#);
    f.succeeds(r#"{"cmd":"set-limit","customer":"mx2","window":"5m","value":8,"persist":true}"#);
    let r = f.succeeds(
        r#"{"cmd":"set-limit","plan":"mailserver","window":"1h","value":4000,"persist":true}"#,
    );
    assert_eq!(r["persisted"], path.display().to_string());
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.starts_with("# keep me\n"), "{written}");
    let again = Config::load_text(&written, &path).unwrap();
    let limits = |name: &str| again.effective_limits(again.customer(name).unwrap());
    assert_eq!(limits("acme"), vec![10, 42]);
    assert_eq!(limits("mx2"), vec![8, 4000]);
    assert_eq!(limits("mx"), vec![1000, 4000]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn modes() {
    let mut f = fake();
    let r = f.succeeds(r#"{"cmd":"mode","customer":"acme","mode":"monitor"}"#);
    assert_eq!(r["customer"], "acme");
    assert_eq!(f.plane.mode(CustomerId::new(0)), Some(Mode::Monitor));
    f.succeeds(r#"{"cmd":"mode","customer":"198.51.100.1","mode":"exempt"}"#);
    assert_eq!(f.plane.mode(CustomerId::new(0)), Some(Mode::Exempt));
    let r = f.succeeds(r#"{"cmd":"mode","mode":"monitor"}"#);
    assert_eq!(r["global"], true);
    assert_eq!(f.global, Some(Mode::Monitor));
    let e = f.fails(r#"{"cmd":"mode","mode":"exempt"}"#);
    assert!(
        e.starts_with("the global mode is enforce or monitor"),
        "{e}"
    );
    assert_eq!(
        f.fails(r#"{"cmd":"mode","customer":"zz","mode":"monitor"}"#),
        "unknown customer 'zz'"
    );
}

#[test]
fn reload_and_events() {
    let mut f = fake();
    let r = f.succeeds(r#"{"cmd":"reload"}"#);
    assert_eq!(r["message"], "reloaded: 3 customers");
    f.reload_ok = false;
    assert_eq!(f.fails(r#"{"cmd":"reload"}"#), "bad config: line 3");
    let e = f.fails(r#"{"cmd":"events"}"#);
    assert!(e.contains("stream"), "{e}");
}
