//! The history file: SQLite, in the state directory.
//!
//! Why SQLite: it is the embedded store with the best record for surviving
//! crashes (a write-ahead log, atomic transactions, `PRAGMA quick_check` as
//! a checker that comes with it), the operator can open the file with the
//! `sqlite3` shell, and Debian ships it. The data is small and written once
//! a minute, so an append-only format of our own would buy nothing but a
//! checker and a compactor to maintain.
//!
//! Layout (`FORMAT` 1):
//!
//! ```text
//! meta(key, value)                       format, created, minute_floor, last
//! customer(id, name UNIQUE)              the stable key: the customer's name
//! minute(customer, hour, data)           one hour of 1-minute buckets
//! hour(customer, day, data)              one day of hourly buckets
//! block(customer, at_ms, kind, until_ms, reason)   blocks, unblocks, expiries
//! ```
//!
//! `hour` and `day` are Unix hours and days; `data` is a [`crate::blob`]
//! row. Every minute count goes into both tables; [`Store::prune`] drops
//! minute rows older than [`MINUTES_KEPT`] and hour rows older than
//! [`HOURS_KEPT`], and records in `minute_floor` the first hour that still
//! has its minutes. Customers are keyed by name, never by the appliance's
//! internal index: a reload that renumbers, adds or removes customers
//! leaves every row attached to the right one, and a customer removed and
//! added back finds its history again.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::blob::{self, BlobError, Slot};
use crate::series::{Bucket, Series};
use crate::{FILE_NAME, HOURS_KEPT, MINUTES_KEPT};

/// The layout this code writes and reads.
pub const FORMAT: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS minute (customer INTEGER NOT NULL, hour INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (customer, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hour (customer INTEGER NOT NULL, day INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (customer, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS block (customer INTEGER NOT NULL, at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL, until_ms INTEGER, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS block_by_customer ON block (customer, at_ms);
";

/// A failure of the history store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused (I/O error, full disk, corrupt page, not a database).
    #[error("history {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's own words.
        source: rusqlite::Error,
    },
    /// The file is a database but not one this code reads.
    #[error("history {path}: {why}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The file does not exist (read-only open).
    #[error("no history yet at {0}")]
    Missing(PathBuf),
}

/// A damaged history that [`Store::open`] set aside and replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// Where the damaged file now is.
    pub moved_to: PathBuf,
    /// What was wrong with it.
    pub why: String,
}

/// One customer's SYNs in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCount {
    /// The customer's name (its stable key).
    pub customer: String,
    /// Unix minute.
    pub minute: i64,
    /// Watched SYNs seen.
    pub seen: u64,
    /// Of those, forwarded.
    pub forwarded: u64,
}

/// A block, unblock or expiry, as the event log has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockRecord {
    /// The customer's name.
    pub customer: String,
    /// When (Unix ms).
    pub at_ms: u64,
    /// `block`, `unblock` or `expire`.
    pub kind: String,
    /// For a block: when it ends (Unix ms; absent = indefinite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Why.
    pub reason: String,
}

/// The history file, open.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// Moves `dir`'s history (and its write-ahead log) to
/// `history.sqlite.damaged-<now_ms>`.
fn set_aside(dir: &Path, now_ms: u64, why: String) -> Result<Damage, StoreError> {
    let path = dir.join(FILE_NAME);
    let moved_to = dir.join(format!("{FILE_NAME}.damaged-{now_ms}"));
    std::fs::rename(&path, &moved_to).map_err(|io| StoreError::Damaged {
        path: path.clone(),
        why: format!("{why}; and it cannot be moved aside: {io}"),
    })?;
    for tail in ["-wal", "-shm"] {
        let side = dir.join(format!("{FILE_NAME}{tail}"));
        let _ = std::fs::rename(&side, format!("{}{tail}", moved_to.display()));
    }
    Ok(Damage { moved_to, why })
}

impl Store {
    /// The history in `dir` for writing, created if missing. A file that
    /// cannot be opened, fails SQLite's `quick_check`, or is of another
    /// format is renamed to `history.sqlite.damaged-<unix ms>` and a new
    /// one started; the [`Damage`] says so. Errors only when no new file
    /// can be made either (a read-only or full state directory).
    pub fn open(dir: &Path, now_ms: u64) -> Result<(Store, Option<Damage>), StoreError> {
        let path = dir.join(FILE_NAME);
        match Store::open_checked(&path, now_ms) {
            Ok(s) => Ok((s, None)),
            Err(e) => {
                let damage = set_aside(dir, now_ms, e.to_string())?;
                let store = Store::open_checked(&path, now_ms)?;
                Ok((store, Some(damage)))
            }
        }
    }

    /// Sets this file aside as damaged (`why`) and starts a new one: for
    /// damage found after opening (a row that does not decode).
    pub fn replace(self, now_ms: u64, why: String) -> Result<(Store, Damage), StoreError> {
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_owned();
        let path = self.path.clone();
        drop(self);
        let damage = set_aside(&dir, now_ms, why)?;
        Ok((Store::open_checked(&path, now_ms)?, damage))
    }

    fn open_checked(path: &Path, now_ms: u64) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(sql(path))?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        store.check()?;
        let c = &store.conn;
        let e = sql(path);
        c.busy_timeout(Duration::from_secs(5)).map_err(&e)?;
        c.pragma_update(None, "journal_mode", "WAL").map_err(&e)?;
        c.pragma_update(None, "synchronous", "NORMAL").map_err(&e)?;
        c.execute_batch(SCHEMA).map_err(&e)?;
        let minute = crate::minute_of_ms(now_ms);
        c.execute(
            "INSERT OR IGNORE INTO meta VALUES ('format', ?1), ('created', ?2), ('minute_floor', ?3)",
            params![FORMAT, minute, minute.div_euclid(60)],
        )
        .map_err(&e)?;
        store.check_format()?;
        Ok(store)
    }

    /// The history in `dir`, read-only (for queries, beside the writer).
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Err(StoreError::Missing(path));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql(&path))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql(&path))?;
        let store = Store { conn, path };
        store.check_format()?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SQLite's `quick_check`: the pages and indexes are sound.
    pub fn check(&self) -> Result<(), StoreError> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sql(&self.path))?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(self.damaged(format!("quick_check: {verdict}")))
        }
    }

    fn damaged(&self, why: String) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            why,
        }
    }

    fn check_format(&self) -> Result<(), StoreError> {
        match self.meta("format")? {
            Some(FORMAT) => Ok(()),
            Some(f) => Err(self.damaged(format!("format {f}, this synwall reads {FORMAT}"))),
            None => Err(self.damaged("no format recorded".into())),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql(&self.path))
    }

    fn blob_error(&self, table: &str, e: BlobError) -> StoreError {
        self.damaged(format!("a {table} row: {e}"))
    }

    /// Adds minute counts and block records, in one transaction.
    pub fn write(
        &mut self,
        counts: &[MinuteCount],
        blocks: &[BlockRecord],
    ) -> Result<(), StoreError> {
        // Rows touched: (customer, hour) → minute slots, (customer, day)
        // → hour slots.
        let mut minutes: BTreeMap<(&str, i64), Vec<Slot>> = BTreeMap::new();
        let mut hours: BTreeMap<(&str, i64), Vec<Slot>> = BTreeMap::new();
        let mut last = i64::MIN;
        for c in counts.iter().filter(|c| c.seen > 0) {
            last = last.max(c.minute);
            let slot = |n: i64| Slot {
                slot: n as u8,
                seen: c.seen,
                forwarded: c.forwarded.min(c.seen),
            };
            blob::merge(
                minutes
                    .entry((&c.customer, c.minute.div_euclid(60)))
                    .or_default(),
                &[slot(c.minute.rem_euclid(60))],
            );
            blob::merge(
                hours
                    .entry((&c.customer, c.minute.div_euclid(1440)))
                    .or_default(),
                &[slot(c.minute.rem_euclid(1440) / 60)],
            );
        }
        let path = self.path.clone();
        let e = sql(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        {
            let mut add_customer = tx
                .prepare_cached("INSERT OR IGNORE INTO customer (name) VALUES (?1)")
                .map_err(&e)?;
            let mut id_of = tx
                .prepare_cached("SELECT id FROM customer WHERE name = ?1")
                .map_err(&e)?;
            let mut ids: BTreeMap<&str, i64> = BTreeMap::new();
            let names = minutes
                .keys()
                .map(|k| k.0)
                .chain(blocks.iter().map(|b| b.customer.as_str()));
            for name in names {
                if ids.contains_key(name) {
                    continue;
                }
                add_customer.execute([name]).map_err(&e)?;
                let id: i64 = id_of.query_row([name], |r| r.get(0)).map_err(&e)?;
                ids.insert(name, id);
            }
            for (table, key, rows, slots) in [
                ("minute", "hour", &minutes, 60u8),
                ("hour", "day", &hours, 24u8),
            ] {
                let mut get = tx
                    .prepare_cached(&format!(
                        "SELECT data FROM {table} WHERE customer = ?1 AND {key} = ?2"
                    ))
                    .map_err(&e)?;
                let mut put = tx
                    .prepare_cached(&format!(
                        "INSERT OR REPLACE INTO {table} VALUES (?1, ?2, ?3)"
                    ))
                    .map_err(&e)?;
                for (&(name, at), new) in rows {
                    let id = ids[name];
                    let old: Option<Vec<u8>> = get
                        .query_row(params![id, at], |r| r.get(0))
                        .optional()
                        .map_err(&e)?;
                    let mut all = match old {
                        Some(bytes) => {
                            blob::decode(&bytes, slots).map_err(|b| StoreError::Damaged {
                                path: path.clone(),
                                why: format!("a {table} row: {b}"),
                            })?
                        }
                        None => Vec::new(),
                    };
                    blob::merge(&mut all, new);
                    put.execute(params![id, at, blob::encode(&all)])
                        .map_err(&e)?;
                }
            }
            let mut add_block = tx
                .prepare_cached("INSERT INTO block VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(&e)?;
            for b in blocks {
                add_block
                    .execute(params![
                        ids[b.customer.as_str()],
                        b.at_ms as i64,
                        b.kind,
                        b.until_ms.map(|u| u.min(i64::MAX as u64) as i64),
                        b.reason
                    ])
                    .map_err(&e)?;
            }
            if last > i64::MIN {
                tx.execute(
                    "INSERT INTO meta VALUES ('last', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                    [last],
                )
                .map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)
    }

    /// Drops minute rows and hour rows past their retention as of Unix
    /// minute `now`, block records as old as the oldest hour row, and
    /// customers left with nothing. Returns rows deleted.
    pub fn prune(&mut self, now: i64) -> Result<usize, StoreError> {
        let minute_floor = (now - MINUTES_KEPT).div_euclid(60);
        let day_floor = (now - HOURS_KEPT * 60).div_euclid(1440);
        let e = sql(&self.path);
        let tx = self.conn.transaction().map_err(&e)?;
        let mut n = tx
            .execute("DELETE FROM minute WHERE hour < ?1", [minute_floor])
            .map_err(&e)?;
        n += tx
            .execute("DELETE FROM hour WHERE day < ?1", [day_floor])
            .map_err(&e)?;
        n += tx
            .execute(
                "DELETE FROM block WHERE at_ms < ?1",
                [day_floor * 86_400_000],
            )
            .map_err(&e)?;
        n += tx
            .execute(
                "DELETE FROM customer WHERE
                   NOT EXISTS (SELECT 1 FROM hour WHERE hour.customer = customer.id) AND
                   NOT EXISTS (SELECT 1 FROM minute WHERE minute.customer = customer.id) AND
                   NOT EXISTS (SELECT 1 FROM block WHERE block.customer = customer.id)",
                [],
            )
            .map_err(&e)?;
        tx.execute(
            "INSERT INTO meta VALUES ('minute_floor', ?1)
             ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            [minute_floor],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(n)
    }

    /// The span the history covers, in Unix minutes: from its creation (or
    /// the oldest hour kept) to the last minute written; `None` before the
    /// first count.
    pub fn span(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let Some(last) = self.meta("last")? else {
            return Ok(None);
        };
        let created = self.meta("created")?.unwrap_or(last);
        let oldest_kept = (last - HOURS_KEPT * 60).div_euclid(1440) * 1440;
        Ok(Some((created.max(oldest_kept), last)))
    }

    /// The first Unix minute that still has 1-minute buckets.
    pub fn minute_floor(&self) -> Result<i64, StoreError> {
        Ok(self.meta("minute_floor")?.unwrap_or(0) * 60)
    }

    /// Every customer with history, by name.
    pub fn customers(&self) -> Result<Vec<String>, StoreError> {
        let e = sql(&self.path);
        let mut q = self
            .conn
            .prepare("SELECT name FROM customer ORDER BY name")
            .map_err(&e)?;
        let rows = q.query_map([], |r| r.get(0)).map_err(&e)?;
        rows.collect::<Result<_, _>>().map_err(&e)
    }

    fn id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT id FROM customer WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql(&self.path))
    }

    /// `name`'s counts for Unix minutes `[from, to)`: 1-minute buckets
    /// where they are kept, hourly ones before that (an hourly bucket cut
    /// by `from` or `to` is kept whole). `None` if the customer has no
    /// history.
    pub fn series(&self, name: &str, from: i64, to: i64) -> Result<Option<Series>, StoreError> {
        let Some(id) = self.id(name)? else {
            return Ok(None);
        };
        let floor = self.minute_floor()?.max(from.div_euclid(60) * 60);
        let mut buckets = Vec::new();
        let e = sql(&self.path);
        if from < floor {
            let mut q = self
                .conn
                .prepare_cached(
                    "SELECT day, data FROM hour WHERE customer = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day",
                )
                .map_err(&e)?;
            let rows = q
                .query_map(
                    params![id, from.div_euclid(1440), (floor - 1).div_euclid(1440)],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
                )
                .map_err(&e)?;
            for row in rows {
                let (day, data) = row.map_err(&e)?;
                for s in blob::decode(&data, 24).map_err(|b| self.blob_error("hour", b))? {
                    let start = day * 1440 + i64::from(s.slot) * 60;
                    if start + 60 > from && start < floor.min(to) {
                        buckets.push(Bucket::new(start, 60, s.seen, s.forwarded));
                    }
                }
            }
        }
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT hour, data FROM minute WHERE customer = ?1 AND hour >= ?2 AND hour <= ?3 ORDER BY hour",
            )
            .map_err(&e)?;
        let rows = q
            .query_map(
                params![id, floor.div_euclid(60), (to - 1).div_euclid(60)],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .map_err(&e)?;
        for row in rows {
            let (hour, data) = row.map_err(&e)?;
            for s in blob::decode(&data, 60).map_err(|b| self.blob_error("minute", b))? {
                let start = hour * 60 + i64::from(s.slot);
                if start >= from.max(floor) && start < to {
                    buckets.push(Bucket::new(start, 1, s.seen, s.forwarded));
                }
            }
        }
        Ok(Some(Series { buckets }))
    }

    /// `name`'s blocks, unblocks and expiries from Unix ms `from_ms` on,
    /// oldest first.
    pub fn blocks(&self, name: &str, from_ms: u64) -> Result<Vec<BlockRecord>, StoreError> {
        let Some(id) = self.id(name)? else {
            return Ok(Vec::new());
        };
        let e = sql(&self.path);
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT at_ms, kind, until_ms, reason FROM block
                 WHERE customer = ?1 AND at_ms >= ?2 ORDER BY at_ms, rowid",
            )
            .map_err(&e)?;
        let rows = q
            .query_map(params![id, from_ms.min(i64::MAX as u64) as i64], |r| {
                Ok(BlockRecord {
                    customer: name.to_owned(),
                    at_ms: r.get::<_, i64>(0)?.max(0) as u64,
                    kind: r.get(1)?,
                    until_ms: r.get::<_, Option<i64>>(2)?.map(|u| u.max(0) as u64),
                    reason: r.get(3)?,
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<_, _>>().map_err(&e)
    }

    /// Bytes on disk: the file plus its write-ahead log.
    pub fn size_bytes(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        [&self.path, &wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Folds the write-ahead log into the file (after a bulk load, before
    /// measuring its size).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .map_err(sql(&self.path))
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
