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
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use synwall_dataplane::CustomerId;

use crate::event::{EventKind, Timestamp};
use crate::plane::{BlockState, Change, ControlPlane, Reason, Record};
use crate::window::RingExport;

/// The snapshot format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

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
    #[error("snapshot {path} is corrupt or truncated: {reason}; move it aside (the one before it is {PREV_FILE}) or start fresh")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        reason: String,
    },
    /// Written by a synwall with another format.
    #[error(
        "snapshot {path} has format version {found}; this synwall reads version {FORMAT_VERSION}"
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

/// Writes `snapshot` to `dir/state.json`: to `state.json.tmp` first, fsync,
/// then the current file becomes `state.json.prev` and the new one takes
/// its place by rename. `state.json` exists at every instant once written
/// (the previous one is hard-linked aside before the rename, not moved).
pub fn write(dir: &Path, snapshot: &Snapshot) -> Result<PathBuf, SnapshotError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| SnapshotError::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(err(dir))?;
    let tmp = dir.join(TMP_FILE);
    let state = dir.join(STATE_FILE);
    let prev = dir.join(PREV_FILE);
    let text = serde_json::to_vec(snapshot).map_err(|e| SnapshotError::Write {
        path: tmp.clone(),
        source: e.into(),
    })?;
    {
        let mut f = File::create(&tmp).map_err(err(&tmp))?;
        f.write_all(&text).map_err(err(&tmp))?;
        f.sync_all().map_err(err(&tmp))?;
    }
    if state.exists() {
        let prev_tmp = dir.join("state.json.prev.tmp");
        let _ = fs::remove_file(&prev_tmp);
        if fs::hard_link(&state, &prev_tmp).is_err() {
            fs::copy(&state, &prev_tmp).map_err(err(&prev_tmp))?;
        }
        fs::rename(&prev_tmp, &prev).map_err(err(&prev))?;
    }
    fs::rename(&tmp, &state).map_err(err(&state))?;
    // Make the renames durable too.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(state)
}

/// Reads `dir/state.json`: `Ok(None)` if there is none (first start).
pub fn load(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SnapshotError::Read { path, source }),
    };
    parse(&text, &path).map(Some)
}

/// Parses snapshot bytes; `path` names the file in errors.
pub fn parse(text: &[u8], path: &Path) -> Result<Snapshot, SnapshotError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    match serde_json::from_slice::<Snapshot>(text) {
        Ok(s) if s.version == FORMAT_VERSION => Ok(s),
        Ok(s) => Err(SnapshotError::Version {
            path: path.to_owned(),
            found: s.version,
        }),
        Err(e) => match serde_json::from_slice::<VersionOnly>(text) {
            Ok(v) if v.version != FORMAT_VERSION => Err(SnapshotError::Version {
                path: path.to_owned(),
                found: v.version,
            }),
            _ => Err(SnapshotError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        },
    }
}

impl ControlPlane {
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
