use super::*;
use crate::MINUTES_KEPT;

const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const M0: i64 = (T0 / 60_000) as i64;

fn count(name: &str, minute: i64, seen: u64, forwarded: u64) -> MinuteCount {
    MinuteCount {
        customer: name.into(),
        minute,
        seen,
        forwarded,
    }
}

fn open(dir: &Path) -> Store {
    let (s, damage) = Store::open(dir, T0).unwrap();
    assert_eq!(damage, None);
    s
}

#[test]
fn counts_add_up_per_minute_and_per_hour_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    assert_eq!(s.span().unwrap(), None);
    s.write(
        &[
            count("acme", M0, 3, 3),
            count("acme", M0 + 1, 5, 2),
            count("mx", M0 + 61, 9, 9),
        ],
        &[],
    )
    .unwrap();
    // A second write into the same minute adds up.
    s.write(&[count("acme", M0 + 1, 1, 1)], &[]).unwrap();
    drop(s);
    let s = open(dir.path());
    let a = s.series("acme", M0, M0 + 120).unwrap().unwrap();
    assert_eq!(
        a.buckets,
        vec![Bucket::new(M0, 1, 3, 3), Bucket::new(M0 + 1, 1, 6, 3)]
    );
    assert_eq!(s.customers().unwrap(), vec!["acme", "mx"]);
    assert_eq!(s.span().unwrap(), Some((M0, M0 + 61)));
    assert_eq!(s.series("nobody", M0, M0 + 1).unwrap(), None);
    // The read-only view sees the same.
    let r = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(r.series("mx", M0, M0 + 120).unwrap().unwrap().seen(), 9);
}

#[test]
fn old_minutes_give_way_to_hours_and_old_hours_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    // Minute 0 and 30 of the first hour, then one SYN 3 days later.
    s.write(
        &[
            count("acme", M0, 2, 2),
            count("acme", M0 + 30, 3, 3),
            count("acme", M0 + 3 * 1440, 1, 1),
        ],
        &[],
    )
    .unwrap();
    let now = M0 + 3 * 1440;
    s.prune(now).unwrap();
    assert!(s.minute_floor().unwrap() > M0);
    assert!(s.minute_floor().unwrap() <= now - 48 * 60);
    let a = s.series("acme", M0, now + 1).unwrap().unwrap();
    // The first hour survives as one hourly bucket, the last SYN by the
    // minute.
    assert_eq!(
        a.buckets,
        vec![Bucket::new(M0, 60, 5, 5), Bucket::new(now, 1, 1, 1)]
    );
    assert!(a.has_hourly());
    // Minutes within 48 h are kept by the minute.
    let recent = now - MINUTES_KEPT + 60;
    s.write(&[count("mx", recent, 4, 4)], &[]).unwrap();
    s.prune(now).unwrap();
    let m = s.series("mx", now - 48 * 60 - 60, now).unwrap().unwrap();
    assert_eq!(m.buckets, vec![Bucket::new(recent, 1, 4, 4)]);
    // 92 days on, everything has gone, customers too.
    s.prune(now + 92 * 1440).unwrap();
    assert_eq!(s.customers().unwrap(), Vec::<String>::new());
}

#[test]
fn blocks_are_kept_by_customer_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let b = BlockRecord {
        customer: "hammer".into(),
        at_ms: T0 + 5_000,
        kind: "block".into(),
        until_ms: Some(T0 + 3_605_000),
        reason: "limit: 300 SYNs in 1m, limit 300".into(),
    };
    s.write(&[], std::slice::from_ref(&b)).unwrap();
    assert_eq!(s.blocks("hammer", T0).unwrap(), vec![b]);
    assert_eq!(s.blocks("hammer", T0 + 6_000).unwrap(), vec![]);
    assert_eq!(s.blocks("acme", 0).unwrap(), vec![]);
}

#[test]
fn a_damaged_file_is_set_aside_and_a_new_one_started() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path());
        let many: Vec<MinuteCount> = (0..2_000)
            .map(|i| count(&format!("c{i}"), M0 + i % 100, 1, 1))
            .collect();
        s.write(&many, &[]).unwrap();
        s.checkpoint().unwrap();
    }
    let path = dir.path().join(FILE_NAME);
    // Truncated to half: SQLite's check or its first read fails.
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let (s, damage) = Store::open(dir.path(), T0 + 1).unwrap();
    let damage = damage.expect("damage reported");
    assert!(damage.moved_to.exists(), "{damage:?}");
    assert_eq!(s.customers().unwrap(), Vec::<String>::new());
    drop(s);

    // Garbage: not a database at all.
    std::fs::write(&path, b"this is not a database, just words ".repeat(200)).unwrap();
    let (s, damage) = Store::open(dir.path(), T0 + 2).unwrap();
    assert!(damage.unwrap().why.contains("not a database"));
    drop(s);

    // A database of another format.
    {
        let c = Connection::open(&path).unwrap();
        c.execute("UPDATE meta SET value = 99 WHERE key = 'format'", [])
            .unwrap();
    }
    let (_, damage) = Store::open(dir.path(), T0 + 3).unwrap();
    assert!(damage.unwrap().why.contains("format 99"));
}

#[test]
fn a_corrupt_row_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    s.write(&[count("acme", M0, 1, 1)], &[]).unwrap();
    s.conn
        .execute("UPDATE minute SET data = x'00ff'", [])
        .unwrap();
    let e = s.series("acme", M0, M0 + 1).unwrap_err();
    assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
    let e = s.write(&[count("acme", M0, 1, 1)], &[]).unwrap_err();
    assert!(e.to_string().contains("minute row"), "{e}");
    // The writer then sets it aside and starts afresh.
    let (mut s, damage) = s.replace(T0 + 1, e.to_string()).unwrap();
    assert!(damage.moved_to.exists());
    s.write(&[count("acme", M0, 1, 1)], &[]).unwrap();
    assert_eq!(s.series("acme", M0, M0 + 1).unwrap().unwrap().seen(), 1);
}

#[test]
fn a_missing_file_is_missing_for_readers() {
    let dir = tempfile::tempdir().unwrap();
    let e = Store::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(e, StoreError::Missing(_)));
    // An unwritable place: a clear error, no panic.
    let e = Store::open(Path::new("/proc/no/such/dir"), T0).unwrap_err();
    assert!(!e.to_string().is_empty());
}
