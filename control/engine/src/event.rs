//! Events (blocks, unblocks, expiries, warnings, reloads, operators'
//! limit and mode changes) and the JSON-lines event log.
//!
//! Each event is one JSON object on one line. Timestamps (`ts`, `until`) are
//! RFC 3339 UTC strings with milliseconds (`"2026-11-26T17:10:19.123Z"`):
//! readable in `tail -f`, sortable as text, and parsed by every log tool.
//! Optional fields are left out when they do not apply.
//!
//! The log is written a batch at a time in one `write(2)` with `O_APPEND`;
//! a batch the disk took only part of is cut off again, so the file only
//! ever holds whole lines. [`EventLog::reopen`] (on SIGHUP and `reload`)
//! opens the file anew after logrotate moved it.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};

/// A wall-clock instant in Unix milliseconds; serializes as RFC 3339 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        Timestamp(wall_now_ms())
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

/// The wall clock in Unix milliseconds (0 if the clock is before 1970).
pub fn wall_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// algorithm: exact for every representable day, no tables).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A customer was blocked (by a limit, an operator or the config).
    Block,
    /// An operator lifted a block.
    Unblock,
    /// A block ran out.
    Expire,
    /// A window's count reached the configured fraction of its limit.
    NearLimit,
    /// A `monitor` customer went over a limit: it would have been blocked.
    WouldBlock,
    /// The config was reloaded (or a reload was rejected).
    Reload,
    /// An operator changed a limit (`set-limit`): `window`, `old`, `new`,
    /// and `customer` or `plan`.
    SetLimit,
    /// An operator changed a mode (`mode`): `old`, `new`, and `customer`
    /// (absent: the global mode of customers that set none).
    SetMode,
    /// State was restored from a snapshot.
    Restore,
    /// The fleet's Redis went down, came back, or lost its state
    /// (`reason`; `by` names this appliance).
    Fleet,
    /// The per-customer history was found damaged, set aside and started
    /// anew (`reason`).
    History,
}

/// One event: one JSON line in the event log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When it happened.
    pub ts: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The customer's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// The window's name (`"5m"`), for limit-related events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// The window's count at the time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The window's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// When a block ends; absent for an indefinite block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// Why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Which operator, for operator actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The plan, for a limit change of a whole plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The setting before an operator's change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Setting>,
    /// The setting after an operator's change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Setting>,
}

/// A value an operator changes: a limit (a number in JSON) or a mode (its
/// name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Setting {
    /// A window's limit, in SYNs.
    Limit(u64),
    /// A customer's or the global mode.
    Mode(synwall_config::Mode),
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Limit(n) => write!(f, "{n}"),
            Setting::Mode(m) => f.write_str(m.as_str()),
        }
    }
}

impl Event {
    /// An event of `kind` at `ts` with every optional field empty.
    pub fn new(kind: EventKind, ts: Timestamp) -> Event {
        Event {
            ts,
            kind,
            customer: None,
            window: None,
            count: None,
            limit: None,
            until: None,
            reason: None,
            by: None,
            plan: None,
            old: None,
            new: None,
        }
    }

    /// A reload event; `reason` says what changed.
    pub fn reload(ts: Timestamp, reason: impl Into<String>) -> Event {
        Event {
            reason: Some(reason.into()),
            ..Event::new(EventKind::Reload, ts)
        }
    }

    /// The JSON line, without the newline.
    pub fn to_line(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why the event log could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// The log's directory is not synwall's own, or could not be created.
    #[error(transparent)]
    Dir(#[from] crate::dirs::DirError),
    /// The log could not be opened for appending.
    #[error("opening event log {path} for appending: {source}")]
    Open {
        /// The log file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Appending failed (disk full, file removed underneath, ...); the
    /// events of the batch are not in the file (none of their bytes).
    #[error("writing to event log {path}: {source}; {lost} events not logged")]
    Write {
        /// The log file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
        /// Events of the batch left out.
        lost: usize,
    },
}

/// An append-only JSON-lines file of [`Event`]s.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    file: File,
    /// Batches that could not be written, and the last error.
    failures: u64,
    last_error: Option<String>,
}

impl EventLog {
    /// Opens `path` for appending, creating it and its parent directory,
    /// which must be synwall's own ([`crate::dirs`]); a symbolic link at
    /// `path` is refused.
    pub fn open(path: &Path) -> Result<EventLog, EventLogError> {
        Ok(EventLog {
            path: path.to_owned(),
            file: open_log(path)?,
            failures: 0,
            last_error: None,
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Batches that could not be written so far.
    pub fn write_failures(&self) -> u64 {
        self.failures
    }

    /// The last write or reopen error, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Opens the file at the path anew (logrotate moved the old one away);
    /// on failure the old file stays in use and the error is kept.
    pub fn reopen(&mut self) -> Result<(), EventLogError> {
        match open_log(&self.path) {
            Ok(f) => {
                self.file = f;
                Ok(())
            }
            Err(e) => {
                self.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Appends one line per event, in one write so that concurrent readers
    /// (`tail -f`) see whole lines. Whole or not at all: when the disk
    /// takes only part of it, the file is cut back to its length before.
    pub fn append(&mut self, events: &[Event]) -> Result<(), EventLogError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for e in events {
            text.push_str(&e.to_line());
            text.push('\n');
        }
        let result = append_whole(&mut self.file, text.as_bytes());
        result.map_err(|source| {
            self.failures += 1;
            let e = EventLogError::Write {
                path: self.path.clone(),
                source,
                lost: events.len(),
            };
            self.last_error = Some(e.to_string());
            e
        })
    }
}

/// Writes `bytes` to the end of `file` in one `write(2)`; a short write is
/// undone (the file cut back to where it ended) and is an error.
fn append_whole(file: &mut (impl Write + Truncate), bytes: &[u8]) -> std::io::Result<()> {
    let before = file.end()?;
    match file.write(bytes) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(n) => {
            file.truncate(before)?;
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("the disk took {n} of {} bytes (cut off again)", bytes.len()),
            ))
        }
        Err(e) => {
            // A failed write(2) writes nothing; cut back anyway in case
            // the file system thinks otherwise.
            let _ = file.truncate(before);
            Err(e)
        }
    }
}

/// A file that can be cut back: what [`append_whole`] needs besides
/// writing (a trait so its tests can fake a full disk).
trait Truncate {
    /// The current length.
    fn end(&mut self) -> std::io::Result<u64>;
    /// Cuts the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
}

impl Truncate for File {
    fn end(&mut self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// Opens the log for appending (`O_APPEND | O_NOFOLLOW`), after checking
/// and creating its directory.
fn open_log(path: &Path) -> Result<File, EventLogError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::dirs::prepare("events", dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| EventLogError::Open {
            path: path.to_owned(),
            source: if source.raw_os_error() == Some(nix::libc::ELOOP) {
                std::io::Error::other(
                    "it is a symbolic link, which synwall does not follow (someone may have planted it): remove it",
                )
            } else {
                source
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn optional_fields_are_left_out() {
        let mut e = Event::new(EventKind::NearLimit, Timestamp(0));
        e.customer = Some("acme".into());
        e.count = Some(80);
        assert_eq!(
            e.to_line(),
            r#"{"ts":"1970-01-01T00:00:00.000Z","kind":"near_limit","customer":"acme","count":80}"#
        );
    }

    #[test]
    fn changes_carry_old_and_new_values() {
        let mut e = Event::new(EventKind::SetLimit, Timestamp(0));
        e.plan = Some("mailserver".into());
        e.window = Some("5m".into());
        e.old = Some(Setting::Limit(1000));
        e.new = Some(Setting::Limit(50));
        e.by = Some("uid=0 pid=1".into());
        assert_eq!(
            e.to_line(),
            r#"{"ts":"1970-01-01T00:00:00.000Z","kind":"set_limit","window":"5m","by":"uid=0 pid=1","plan":"mailserver","old":1000,"new":50}"#
        );
        let mut e = Event::new(EventKind::SetMode, Timestamp(0));
        e.old = Some(Setting::Mode(synwall_config::Mode::Enforce));
        e.new = Some(Setting::Mode(synwall_config::Mode::Monitor));
        assert_eq!(
            e.to_line(),
            r#"{"ts":"1970-01-01T00:00:00.000Z","kind":"set_mode","old":"enforce","new":"monitor"}"#
        );
    }

    #[test]
    fn log_appends_lines_and_creates_the_directory() {
        let dir = std::env::temp_dir().join(format!("synwall-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/events.jsonl");
        let mut log = EventLog::open(&path).unwrap();
        log.append(&[Event::reload(Timestamp(1), "a")]).unwrap();
        drop(log);
        let mut log = EventLog::open(&path).unwrap();
        log.append(&[Event::new(EventKind::Expire, Timestamp(2))])
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains(r#""kind":"reload""#) && lines[1].contains("expire"));
        // A directory where the file should be: an error naming the path.
        let err = EventLog::open(&dir.join("sub")).unwrap_err();
        assert!(err.to_string().contains("sub"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A disk with room for `room` more bytes.
    struct Disk {
        data: Vec<u8>,
        room: usize,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.room);
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
            }
            self.room -= n;
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Truncate for Disk {
        fn end(&mut self) -> std::io::Result<u64> {
            Ok(self.data.len() as u64)
        }

        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.room += self.data.len() - len as usize;
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_batch_is_written_whole_or_not_at_all() {
        let mut disk = Disk {
            data: Vec::new(),
            room: 10,
        };
        append_whole(&mut disk, b"abcd\n").unwrap();
        let err = append_whole(&mut disk, b"efghij\n").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
        assert_eq!(disk.data, b"abcd\n");
        disk.room = 0;
        assert!(append_whole(&mut disk, b"x\n").is_err());
        disk.room = 100;
        append_whole(&mut disk, b"klm\n").unwrap();
        assert_eq!(disk.data, b"abcd\nklm\n");
    }
}
