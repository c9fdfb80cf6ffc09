//! Persistent state: window buckets, blocks, offences and history per
//! customer, so that a restart neither forgives a blocked spammer nor forgets
//! the last day's counts.
//!
//! The snapshot is JSON with a format version. Customers are keyed by
//! **name** (ids are renumbered whenever the customer list changes) and all
//! times are wall-clock Unix milliseconds: on restore they are mapped onto
//! the new process's monotonic clock, so a restart after ten minutes expires
//! ten minutes' worth of buckets and blocks.
//!
//! Files in the state directory: `state.json` (current), `state.json.prev`
//! (the one before), `state.json.tmp` (being written). `state.json` is
//! replaced by an atomic rename after the new content is fsynced, so it is
//! always either the old or the new snapshot, never a mix.
//!
//! A snapshot must be true as well as well-formed: since version 2 it
//! carries a CRC-32 of its bytes (a flipped bit in a count parses), and
//! every snapshot read is checked for what cannot be ([`validate`]: a
//! block that ends before it starts or after 100 years, no windows,
//! timestamps far from when it was saved, saved in the future). One that
//! fails is corrupt, like a truncated one. The files are opened without
//! following symbolic links, the temp file is created exclusively, and
//! reads are bounded ([`MAX_STATE_BYTES`]).
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use synwall_dataplane::CustomerId;

use crate::event::{EventKind, Timestamp};
use crate::plane::{BlockState, Change, ControlPlane, Reason, Record};
use crate::window::RingExport;

/// The snapshot format this build writes. Version 2 added the checksum
/// ([`Snapshot::crc32`]); the bump makes an older synwall refuse a newer
/// file by its version ("has format version 2") rather than by an unknown
/// field.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this build reads: version 1, without a checksum
/// (the semantic checks still apply).
pub const OLDEST_VERSION: u32 = 1;
/// The most of a snapshot file that is read: a million customers with
/// state in every window take well under 1 GiB.
pub const MAX_STATE_BYTES: u64 = 2 << 30;

/// The current snapshot's file name.
pub const STATE_FILE: &str = "state.json";
/// The previous snapshot's file name.
pub const PREV_FILE: &str = "state.json.prev";
/// The file being written.
pub const TMP_FILE: &str = "state.json.tmp";

/// Everything the control plane persists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// [`FORMAT_VERSION`] when written.
    pub version: u32,
    /// Version 2 on: the CRC-32 (IEEE) of the file's bytes after this
    /// field, 8 hex digits ([`encode`] writes it right after `version`).
    /// `None` in a snapshot in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    /// When it was taken (Unix ms).
    pub saved_at_ms: u64,
    /// The windows at the time, in config order; [`SnapCustomer::windows`]
    /// is indexed like this.
    pub windows: Vec<SnapWindow>,
    /// Customers with any state.
    pub customers: Vec<SnapCustomer>,
}

/// A window of the snapshot's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapWindow {
    /// Name (`"5m"`).
    pub name: String,
    /// Length in ms: windows are matched by length on restore, then name.
    pub length_ms: u64,
}

/// One customer's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapCustomer {
    /// The key.
    pub name: String,
    /// Buckets per window (empty: all windows empty).
    #[serde(default)]
    pub windows: Vec<SnapRing>,
    /// The block in force.
    #[serde(default)]
    pub block: Option<SnapBlock>,
    /// Limit blocks so far.
    #[serde(default)]
    pub offences: u32,
    /// Last state changes, oldest first.
    #[serde(default)]
    pub history: Vec<SnapChange>,
    /// Totals.
    #[serde(default)]
    pub seen: u64,
    /// Totals.
    #[serde(default)]
    pub forwarded: u64,
    /// Totals.
    #[serde(default)]
    pub attempts_while_blocked: u64,
    /// Totals (absent in snapshots before it was counted).
    #[serde(default)]
    pub dropped_at_limit: u64,
    /// Windows (by name) already at the near-limit mark: warned once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near_warned: Vec<String>,
    /// Windows (by name) a monitor customer is over: `would_block` said once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub over_warned: Vec<String>,
}

/// One window's buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapRing {
    /// Start of the newest bucket, Unix ms.
    pub newest_start_ms: i64,
    /// Bucket length, ms.
    pub bucket_ms: u64,
    /// Counts, newest first.
    pub buckets: Vec<u64>,
}

/// A block in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapBlock {
    /// Start, Unix ms.
    pub since_ms: u64,
    /// End, Unix ms; `None` = indefinite.
    pub until_ms: Option<u64>,
    /// Why.
    pub reason: Reason,
}

/// A history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapChange {
    /// When, Unix ms.
    pub at_ms: u64,
    /// `block`, `unblock` or `expire`.
    pub kind: EventKind,
    /// Why.
    pub reason: Reason,
    /// End of a block, Unix ms.
    pub until_ms: Option<u64>,
}

/// Why a snapshot could not be read or written. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file exists but could not be read.
    #[error("reading snapshot {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a snapshot (truncated, edited, another format).
    #[error("snapshot {path} is corrupt or truncated: {reason}; move it aside to start from the one before it ({PREV_FILE}, used when {STATE_FILE} is missing) or start fresh")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        reason: String,
    },
    /// Written by a synwall with another format.
    #[error(
        "snapshot {path} has format version {found}; this synwall reads versions {OLDEST_VERSION} to {FORMAT_VERSION}"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// Writing, syncing or renaming failed.
    #[error("writing snapshot {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Captures `plane` at monotonic time `now` and writes it to `dir`.
pub fn save(dir: &Path, plane: &ControlPlane, now: u64) -> Result<PathBuf, SnapshotError> {
    write(dir, &plane.snapshot(now))
}

/// What [`encode`] writes before the checksum's digits.
const CRC_PREFIX: &str = "{\"version\":2,\"crc32\":\"";

/// The file's bytes for `snapshot`: compact JSON with the checksum of
/// everything after it as the second field.
pub fn encode(snapshot: &Snapshot) -> Result<Vec<u8>, serde_json::Error> {
    let text = match snapshot.crc32 {
        None => serde_json::to_vec(snapshot)?,
        Some(_) => serde_json::to_vec(&Snapshot {
            crc32: None,
            ..snapshot.clone()
        })?,
    };
    // `version` is the first field: `{"version":2,` then the rest.
    let head = format!("{{\"version\":{},", snapshot.version);
    let Some(rest) = text.strip_prefix(head.as_bytes()) else {
        return Ok(text);
    };
    let crc = crc32fast::hash(rest);
    let mut out = Vec::with_capacity(text.len() + 24);
    out.extend_from_slice(format!("{head}\"crc32\":\"{crc:08x}\",").as_bytes());
    out.extend_from_slice(rest);
    Ok(out)
}

/// Checks the checksum of a version 2 file: `Err` says what is wrong.
fn verify_crc(text: &[u8]) -> Result<(), String> {
    let Some(tail) = text.strip_prefix(CRC_PREFIX.as_bytes()) else {
        return Err("no checksum where version 2 has it (an edited file?)".to_owned());
    };
    let (digits, rest) = tail.split_at_checked(8).ok_or("a cut checksum")?;
    let rest = rest.strip_prefix(b"\",").ok_or("a malformed checksum")?;
    let want = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| u32::from_str_radix(d, 16).ok())
        .ok_or("a malformed checksum")?;
    let got = crc32fast::hash(rest);
    if got != want {
        return Err(format!(
            "checksum mismatch (crc32 {got:08x}, the file says {want:08x}): damaged or edited"
        ));
    }
    Ok(())
}

/// Writes `snapshot` to `dir/state.json`: to `state.json.tmp` first
/// (created anew, exclusively, never through a link), fsync, then the
/// current file becomes `state.json.prev` and the new one takes its place
/// by rename. `state.json` exists at every instant once written (the
/// previous one is hard-linked aside before the rename, not moved). A
/// write that fails takes its temp file away.
pub fn write(dir: &Path, snapshot: &Snapshot) -> Result<PathBuf, SnapshotError> {
    fs::create_dir_all(dir).map_err(write_err(dir))?;
    let tmp = dir.join(TMP_FILE);
    let text = encode(snapshot).map_err(|e| SnapshotError::Write {
        path: tmp.clone(),
        source: e.into(),
    })?;
    let written = write_new(&tmp, &text).and_then(|()| replace(dir, &tmp));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError {
    let path = path.to_owned();
    move |source| SnapshotError::Write { path, source }
}

/// Writes `text` to a new file `path`, fsynced: a stale file (or a link
/// someone planted) there is removed first, and the new one is created
/// with `O_EXCL | O_NOFOLLOW`, so nothing is ever written through a link.
fn write_new(path: &Path, text: &[u8]) -> Result<(), SnapshotError> {
    let mut f = crate::dirs::create_new(path, 0o644).map_err(write_err(path))?;
    f.write_all(text).map_err(write_err(path))?;
    f.sync_all().map_err(write_err(path))
}

/// The renames of [`write`]: `state.json` to `state.json.prev` (by a
/// hard link, or a copy where links fail), `tmp` to `state.json`.
fn replace(dir: &Path, tmp: &Path) -> Result<PathBuf, SnapshotError> {
    let state = dir.join(STATE_FILE);
    let prev = dir.join(PREV_FILE);
    if fs::symlink_metadata(&state).is_ok() {
        let prev_tmp = dir.join("state.json.prev.tmp");
        let _ = fs::remove_file(&prev_tmp);
        if fs::hard_link(&state, &prev_tmp).is_err() {
            let old = read(&state)?;
            write_new(&prev_tmp, &old)?;
        }
        fs::rename(&prev_tmp, &prev).map_err(write_err(&prev))?;
    }
    fs::rename(tmp, &state).map_err(write_err(&state))?;
    // Make the renames durable too.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(state)
}

/// The bytes of snapshot file `path`: a regular file, not a link, of at
/// most [`MAX_STATE_BYTES`].
fn read(path: &Path) -> Result<Vec<u8>, SnapshotError> {
    synwall_config::read_bounded(
        path,
        MAX_STATE_BYTES,
        synwall_config::Links::Refuse,
        "snapshot",
    )
    .map_err(|source| SnapshotError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads `dir/state.json`: `Ok(None)` if there is none (first start).
/// `now_wall` (Unix ms) is what "saved in the future" is measured by.
pub fn load(dir: &Path, now_wall: u64) -> Result<Option<Snapshot>, SnapshotError> {
    let path = dir.join(STATE_FILE);
    let text = match read(&path) {
        Ok(t) => t,
        Err(SnapshotError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    parse(&text, &path, now_wall).map(Some)
}

/// A snapshot found at start, and which file it came from.
#[derive(Debug)]
pub struct Found {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Its file.
    pub path: PathBuf,
    /// It is `state.json.prev`: `state.json` was missing (a crash between
    /// a write's two renames, or an operator moved a damaged one aside).
    pub previous: bool,
}

/// What to restore at start: `state.json`, or `state.json.prev` when only
/// that one exists; `Ok(None)` when neither does. A `state.json` that
/// cannot be read or is corrupt is an error (the operator chooses: move
/// it aside, then the previous one is used, or `--fresh-state`).
pub fn load_latest(dir: &Path, now_wall: u64) -> Result<Option<Found>, SnapshotError> {
    if let Some(snapshot) = load(dir, now_wall)? {
        return Ok(Some(Found {
            snapshot,
            path: dir.join(STATE_FILE),
            previous: false,
        }));
    }
    let path = dir.join(PREV_FILE);
    match read(&path) {
        Ok(text) => Ok(Some(Found {
            snapshot: parse(&text, &path, now_wall)?,
            path,
            previous: true,
        })),
        Err(SnapshotError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Parses and checks snapshot bytes; `path` names the file in errors,
/// `now_wall` (Unix ms) is the present for [`validate`].
pub fn parse(text: &[u8], path: &Path, now_wall: u64) -> Result<Snapshot, SnapshotError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let corrupt = |reason: String| SnapshotError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let known = OLDEST_VERSION..=FORMAT_VERSION;
    let mut snap = match serde_json::from_slice::<Snapshot>(text) {
        Ok(s) if known.contains(&s.version) => s,
        Ok(s) => {
            return Err(SnapshotError::Version {
                path: path.to_owned(),
                found: s.version,
            })
        }
        Err(e) => {
            return Err(match serde_json::from_slice::<VersionOnly>(text) {
                Ok(v) if !known.contains(&v.version) => SnapshotError::Version {
                    path: path.to_owned(),
                    found: v.version,
                },
                _ => corrupt(e.to_string()),
            })
        }
    };
    if snap.version >= 2 {
        verify_crc(text).map_err(corrupt)?;
    }
    snap.crc32 = None;
    validate(&snap, now_wall).map_err(corrupt)?;
    Ok(snap)
}

/// How far in the future of the reader's clock a snapshot may have been
/// saved (clocks of a restarted machine disagree a little).
const CLOCK_SKEW_MS: u64 = 86_400_000;
/// The longest a saved block may run past its snapshot.
const MAX_BLOCK_MS: u64 = 100 * 365 * 86_400_000;
/// The longest window a snapshot may hold.
const MAX_WINDOW_MS: u64 = 400 * 86_400_000;
/// The most buckets a window's ring exports.
const MAX_RING_BUCKETS: usize = crate::window::BUCKETS + 1;

/// What cannot be true of a snapshot read at `now_wall` (Unix ms): the
/// first such thing, in words, naming the customer.
pub fn validate(snap: &Snapshot, now_wall: u64) -> Result<(), String> {
    let saved = snap.saved_at_ms;
    let latest = now_wall.saturating_add(CLOCK_SKEW_MS);
    if saved > latest {
        return Err(format!(
            "saved_at_ms {saved} is in the future (now {now_wall})"
        ));
    }
    // Anything the running appliance stamped happened before the save.
    let not_after_save = saved.saturating_add(CLOCK_SKEW_MS);
    if snap.windows.is_empty() || snap.windows.len() > synwall_config::MAX_WINDOWS {
        return Err(format!(
            "{} windows (a config has 1 to {})",
            snap.windows.len(),
            synwall_config::MAX_WINDOWS
        ));
    }
    for w in &snap.windows {
        if w.name.is_empty() || !(1..=MAX_WINDOW_MS).contains(&w.length_ms) {
            return Err(format!("window {:?} of {} ms", w.name, w.length_ms));
        }
    }
    let mut names = HashSet::with_capacity(snap.customers.len());
    for c in &snap.customers {
        let bad = |what: String| Err(format!("customer {:?}: {what}", c.name));
        if c.name.is_empty() || !names.insert(c.name.as_str()) {
            return bad("an empty or repeated name".to_owned());
        }
        if c.windows.len() > snap.windows.len() {
            return bad(format!(
                "{} windows of counts for {} windows",
                c.windows.len(),
                snap.windows.len()
            ));
        }
        for (ring, w) in c.windows.iter().zip(&snap.windows) {
            let oldest = saved as i64 - (MAX_WINDOW_MS as i64);
            if ring.newest_start_ms < oldest || ring.newest_start_ms > not_after_save as i64 {
                return bad(format!(
                    "window {} starts at {}, far from the save at {saved}",
                    w.name, ring.newest_start_ms
                ));
            }
            if ring.bucket_ms == 0 || ring.bucket_ms > w.length_ms {
                return bad(format!(
                    "window {} has buckets of {} ms",
                    w.name, ring.bucket_ms
                ));
            }
            if ring.buckets.len() > MAX_RING_BUCKETS {
                return bad(format!(
                    "window {} has {} buckets",
                    w.name,
                    ring.buckets.len()
                ));
            }
            if ring
                .buckets
                .iter()
                .try_fold(0u64, |a, &b| a.checked_add(b))
                .is_none()
            {
                return bad(format!("window {}'s counts overflow", w.name));
            }
        }
        if let Some(b) = &c.block {
            if b.since_ms > not_after_save {
                return bad(format!("a block since {}, after the save", b.since_ms));
            }
            if let Some(u) = b.until_ms {
                if u < b.since_ms || u > saved.saturating_add(MAX_BLOCK_MS) {
                    return bad(format!(
                        "a block from {} until {u}, which cannot be (at most 100 years)",
                        b.since_ms
                    ));
                }
            }
        }
        for h in &c.history {
            if h.at_ms > not_after_save
                || h.until_ms
                    .is_some_and(|u| u > saved.saturating_add(MAX_BLOCK_MS))
            {
                return bad(format!(
                    "a history entry at {} until {:?}",
                    h.at_ms, h.until_ms
                ));
            }
        }
    }
    Ok(())
}

impl ControlPlane {
    /// After a restart: the fleet's floor windows were not saved, so every
    /// SYN the restored windows count is taken as spent from the floor
    /// (it may have been leased: then the floor is charged twice, which
    /// only shrinks the budget). Without it a restarted appliance could
    /// spend its floor a second time within a window.
    pub fn restored_counts_are_floor_spend(&mut self, now: u64) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        for c in self.windows.customers() {
            if let Some(rings) = self.windows.export(c, now) {
                f.charge_floor(c, &rings, now);
            }
        }
    }

    /// The names of the windows whose bits are set in `bits`.
    fn window_names(&self, bits: u16) -> Vec<String> {
        self.windows_meta
            .iter()
            .enumerate()
            .filter(|(w, _)| bits & (1 << w) != 0)
            .map(|(_, m)| m.name.clone())
            .collect()
    }

    /// The bits of the windows named in `names` (unknown names ignored).
    fn window_bits(&self, names: &[String]) -> u16 {
        names
            .iter()
            .filter_map(|n| self.windows_meta.iter().position(|m| &m.name == n))
            .fold(0, |bits, w| bits | (1 << w))
    }

    /// The plane's persistent state at monotonic time `now`.
    pub fn snapshot(&self, now: u64) -> Snapshot {
        let wall = |mono: i64| mono - self.wall_mapping.mono_of_wall(0);
        let mut ids: Vec<CustomerId> = self
            .records
            .keys()
            .copied()
            .chain(self.windows.customers())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let customers = ids
            .into_iter()
            .map(|c| {
                let rec = self.records.get(&c).cloned().unwrap_or_default();
                let windows = self
                    .windows
                    .export(c, now)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| SnapRing {
                        newest_start_ms: wall(r.newest_start_ms),
                        bucket_ms: r.bucket_ms,
                        buckets: r.buckets,
                    })
                    .collect();
                SnapCustomer {
                    name: self.names[c.index()].to_string(),
                    windows,
                    block: rec.block.map(|b| SnapBlock {
                        since_ms: b.since.0,
                        until_ms: b.until.map(|u| self.wall_mapping.wall(u).0),
                        reason: b.reason,
                    }),
                    offences: rec.offences,
                    history: rec
                        .history
                        .into_iter()
                        .map(|h| SnapChange {
                            at_ms: h.at.0,
                            kind: h.kind,
                            reason: h.reason,
                            until_ms: h.until.map(|u| u.0),
                        })
                        .collect(),
                    seen: rec.seen,
                    forwarded: rec.forwarded,
                    attempts_while_blocked: rec.attempts_while_blocked,
                    dropped_at_limit: rec.dropped_at_limit,
                    near_warned: self.window_names(rec.near),
                    over_warned: self.window_names(rec.over),
                }
            })
            .collect();
        Snapshot {
            version: FORMAT_VERSION,
            crc32: None,
            saved_at_ms: self.wall_mapping.wall(now).0,
            windows: self
                .windows_meta
                .iter()
                .map(|w| SnapWindow {
                    name: w.name.clone(),
                    length_ms: w.length.as_millis() as u64,
                })
                .collect(),
            customers,
        }
    }

    /// Applies `snapshot` at monotonic time `now` to the customers that
    /// still exist (by name), replacing their state; returns how many.
    ///
    /// Windows are matched by length, else by name; a window new to the
    /// config starts empty. Blocks whose end has passed expire (with an
    /// event) at the next tick. A standing config block (`blocked = true`)
    /// stays in force whatever the snapshot says (lift it in the config),
    /// and a config block the config no longer asks for is dropped.
    pub fn restore(&mut self, snapshot: &Snapshot, now: u64) -> usize {
        let index = crate::plane::ids_by_name(&self.names);
        let window_map: Vec<Option<usize>> = snapshot
            .windows
            .iter()
            .map(|sw| {
                self.windows_meta
                    .iter()
                    .position(|w| w.length.as_millis() as u64 == sw.length_ms)
                    .or_else(|| self.windows_meta.iter().position(|w| w.name == sw.name))
            })
            .collect();
        let mut restored = 0;
        let mut dirty = Vec::new();
        for sc in &snapshot.customers {
            let Some(&c) = index.get(sc.name.as_str()) else {
                continue;
            };
            restored += 1;
            self.windows.remove(c);
            for (sw, ring) in sc.windows.iter().enumerate() {
                if let Some(Some(w)) = window_map.get(sw) {
                    let export = RingExport {
                        newest_start_ms: self.wall_mapping.mono_of_wall(ring.newest_start_ms),
                        bucket_ms: ring.bucket_ms,
                        buckets: ring.buckets.clone(),
                    };
                    self.windows.import(c, *w, &export, now);
                }
            }
            let config_blocked = self.dense[c.index()].config_blocked;
            let block = sc
                .block
                .as_ref()
                .filter(|b| b.reason != Reason::Config || config_blocked)
                .map(|b| BlockState {
                    since: Timestamp(b.since_ms),
                    until: b
                        .until_ms
                        .map(|u| self.wall_mapping.mono_of_wall(u as i64).max(0) as u64),
                    reason: b.reason.clone(),
                });
            let mut rec = Record {
                block,
                offences: sc.offences,
                history: sc
                    .history
                    .iter()
                    .map(|h| Change {
                        at: Timestamp(h.at_ms),
                        kind: h.kind,
                        reason: h.reason.clone(),
                        until: h.until_ms.map(Timestamp),
                    })
                    .collect(),
                seen: sc.seen,
                forwarded: sc.forwarded,
                attempts_while_blocked: sc.attempts_while_blocked,
                dropped_at_limit: sc.dropped_at_limit,
                near: self.window_bits(&sc.near_warned),
                over: self.window_bits(&sc.over_warned),
            };
            while rec.history.len() > crate::plane::HISTORY {
                rec.history.pop_front();
            }
            if rec.block.is_some() {
                self.blocked.insert(c);
            } else {
                self.blocked.remove(&c);
            }
            self.records.insert(c, rec);
            dirty.push(c);
        }
        drop(index);
        for c in dirty {
            self.mark_dirty(c);
        }
        self.reapply_config_blocks(now);
        restored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn snap() -> Snapshot {
        Snapshot {
            version: FORMAT_VERSION,
            crc32: None,
            saved_at_ms: NOW,
            windows: vec![SnapWindow {
                name: "5m".into(),
                length_ms: 300_000,
            }],
            customers: vec![SnapCustomer {
                name: "acme".into(),
                windows: vec![SnapRing {
                    newest_start_ms: NOW as i64 - 5_000,
                    bucket_ms: 10_000,
                    buckets: vec![3, 4],
                }],
                block: Some(SnapBlock {
                    since_ms: NOW - 1_000,
                    until_ms: Some(NOW + 3_600_000),
                    reason: Reason::Config,
                }),
                offences: 1,
                history: Vec::new(),
                seen: 1000,
                forwarded: 100,
                attempts_while_blocked: 900,
                dropped_at_limit: 0,
                near_warned: Vec::new(),
                over_warned: Vec::new(),
            }],
        }
    }

    #[test]
    fn the_checksum_reads_back_and_catches_a_flipped_bit() {
        let path = Path::new("/x/state.json");
        let text = encode(&snap()).unwrap();
        assert!(text.starts_with(CRC_PREFIX.as_bytes()), "{text:?}");
        assert_eq!(parse(&text, path, NOW).unwrap(), snap());
        let at = text.windows(4).position(|w| w == b"1000").unwrap();
        let mut flipped = text.clone();
        flipped[at + 3] ^= 1;
        let err = parse(&flipped, path, NOW).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        // Version 1 has no checksum and still reads.
        let mut v1 = snap();
        v1.version = 1;
        let text = serde_json::to_vec(&v1).unwrap();
        assert_eq!(parse(&text, path, NOW).unwrap(), v1);
    }

    #[test]
    fn what_cannot_be_true_is_corrupt() {
        let edits: [fn(&mut Snapshot); 6] = [
            |s| s.customers[0].block.as_mut().unwrap().until_ms = Some(u64::MAX),
            |s| s.windows.clear(),
            |s| s.customers[0].windows[0].newest_start_ms = i64::MAX,
            |s| s.customers[0].windows[0].newest_start_ms = i64::MIN,
            |s| s.saved_at_ms = 4_102_444_800_000,
            |s| s.customers[0].windows[0].bucket_ms = 0,
        ];
        for edit in edits {
            let mut s = snap();
            edit(&mut s);
            let err = parse(&encode(&s).unwrap(), Path::new("/x"), NOW).unwrap_err();
            assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
        }
    }
}
