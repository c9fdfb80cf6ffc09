//! The history writer: a thread of its own that owns the history store
//! (`synwall_history::Store`) and writes what the control thread hands it
//! once a minute, so neither the packet path nor the tick ever waits on
//! the disk.
//!
//! The control thread sends batches through a bounded channel with
//! `try_send` (a writer that falls behind costs a counted, dropped batch,
//! never a late tick). A store that fails (a corrupt page, a full disk, a
//! file someone truncated) is reopened: [`Store::open`] checks it and sets
//! a damaged file aside, and the writer starts a new one. [`HistoryHealth`]
//! tells `status` and `/metrics`; a replaced file is also an event.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};
use serde::Serialize;
use synwall_history::{BlockRecord, Damage, MinuteCount, Store, StoreError};

/// Batches the writer may fall behind by (one a minute: an hour).
const QUEUE: usize = 64;

/// Minutes between prunes.
const PRUNE_EVERY: u64 = 60;

/// What the writer reports (shared with the control thread).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistoryHealth {
    /// The file.
    pub path: PathBuf,
    /// The last write succeeded (or none failed yet).
    pub ok: bool,
    /// Its size on disk, as of the last write.
    pub bytes: u64,
    /// Batches written, and writes that failed.
    pub written: u64,
    pub failures: u64,
    /// Batches the control thread dropped because the writer was behind.
    pub dropped: u64,
    /// Damaged files set aside and replaced by a new one, this run.
    pub replaced: u64,
    /// The last failure, while the store is not ok.
    pub last_error: Option<String>,
    /// Damage found and not yet reported as an event.
    #[serde(skip)]
    pub unreported: Vec<Damage>,
}

/// One minute's worth for the writer.
#[derive(Debug, Default)]
pub struct Batch {
    /// Unix minute (wall clock).
    pub minute: i64,
    /// Per customer: SYNs seen, forwarded.
    pub counts: Vec<(Box<str>, u64, u64)>,
    /// Blocks, unblocks and expiries since the last batch.
    pub blocks: Vec<BlockRecord>,
    /// Set on the last batch: answer when it is written.
    pub done: Option<Sender<()>>,
}

/// The control thread's handle on the writer thread.
#[derive(Debug)]
pub struct HistoryWriter {
    tx: Option<Sender<Batch>>,
    health: Arc<Mutex<HistoryHealth>>,
    thread: Option<JoinHandle<()>>,
}

impl HistoryWriter {
    /// Starts the writer thread, which opens (or creates, or replaces a
    /// damaged) `state_dir`'s history: SQLite's check of a large file
    /// takes seconds, which the start of forwarding does not wait for.
    /// Never fails: a store that cannot be opened is reported in the
    /// health, and tried again at each batch.
    pub fn start(state_dir: &Path, wall_ms: u64) -> HistoryWriter {
        let health = Arc::new(Mutex::new(HistoryHealth {
            path: state_dir.join(synwall_history::FILE_NAME),
            ok: true,
            ..HistoryHealth::default()
        }));
        let (tx, rx) = bounded(QUEUE);
        let dir = state_dir.to_owned();
        let h = health.clone();
        let thread = std::thread::Builder::new()
            .name("synwall-history".into())
            .spawn(move || {
                let store = open(&dir, wall_ms, &h);
                write_loop(dir, store, rx, h)
            })
            .map_err(|e| {
                lock(&health).last_error = Some(format!("no history writer thread: {e}"));
            })
            .ok();
        HistoryWriter {
            tx: thread.as_ref().map(|_| tx),
            health,
            thread,
        }
    }

    /// Hands a batch over without waiting; a full queue drops it (counted).
    pub fn send(&self, batch: Batch) {
        let Some(tx) = &self.tx else {
            lock(&self.health).dropped += 1;
            return;
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(batch) {
            lock(&self.health).dropped += 1;
        }
    }

    /// The health as of now.
    pub fn health(&self) -> HistoryHealth {
        lock(&self.health).clone()
    }

    /// Damage found since the last call (for events).
    pub fn take_damage(&self) -> Vec<Damage> {
        std::mem::take(&mut lock(&self.health).unreported)
    }

    /// Sends the last batch and waits (at most 10 s) until it is written
    /// and the thread has ended; returns damage not yet reported.
    pub fn finish(mut self, mut last: Batch) -> Vec<Damage> {
        let (done_tx, done_rx) = bounded(1);
        last.done = Some(done_tx);
        if let Some(tx) = self.tx.take() {
            if tx
                .send_timeout(last, std::time::Duration::from_secs(10))
                .is_ok()
            {
                let _ = done_rx.recv_timeout(std::time::Duration::from_secs(10));
            }
        }
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
        self.take_damage()
    }
}

fn lock(h: &Mutex<HistoryHealth>) -> std::sync::MutexGuard<'_, HistoryHealth> {
    h.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open(dir: &Path, wall_ms: u64, health: &Mutex<HistoryHealth>) -> Option<Store> {
    match Store::open(dir, wall_ms) {
        Ok((store, damage)) => {
            let mut h = lock(health);
            if let Some(d) = damage {
                crate::console::err(format!(
                    "synwall: history {}: {}; moved to {} and started a new one",
                    h.path.display(),
                    d.why,
                    d.moved_to.display()
                ));
                h.replaced += 1;
                h.unreported.push(d);
            }
            h.bytes = store.size_bytes();
            Some(store)
        }
        Err(e) => {
            crate::console::err(format!("synwall: {e}; history is not kept"));
            let mut h = lock(health);
            h.ok = false;
            h.last_error = Some(e.to_string());
            None
        }
    }
}

fn write_loop(
    dir: PathBuf,
    mut store: Option<Store>,
    rx: Receiver<Batch>,
    health: Arc<Mutex<HistoryHealth>>,
) {
    let mut since_prune = PRUNE_EVERY;
    for mut batch in rx {
        let wall_ms = synwall_engine::event::wall_now_ms();
        let counts: Vec<MinuteCount> = batch
            .counts
            .drain(..)
            .map(|(name, seen, forwarded)| MinuteCount {
                customer: name.into(),
                minute: batch.minute,
                seen,
                forwarded,
            })
            .collect();
        // A failed write is tried once more on a store opened afresh
        // (which sets a damaged file aside).
        for attempt in 0..2 {
            if store.is_none() {
                store = open(&dir, wall_ms, &health);
            }
            let Some(s) = store.as_mut() else { break };
            let result = s.write(&counts, &batch.blocks).and_then(|()| {
                since_prune += 1;
                if since_prune >= PRUNE_EVERY {
                    since_prune = 0;
                    s.prune(batch.minute)?;
                }
                Ok(())
            });
            let mut h = lock(&health);
            match result {
                Ok(()) => {
                    h.ok = true;
                    h.written += 1;
                    h.last_error = None;
                    h.bytes = s.size_bytes();
                    break;
                }
                Err(e) => {
                    h.failures += 1;
                    h.ok = false;
                    h.last_error = Some(e.to_string());
                    drop(h);
                    crate::console::err(format!("synwall: {e}; reopening the history"));
                    // Damage inside the file (a row that does not decode)
                    // passes SQLite's check: set it aside here.
                    if let (StoreError::Damaged { .. }, Some(old)) = (&e, store.take()) {
                        match old.replace(wall_ms, e.to_string()) {
                            Ok((new, damage)) => {
                                let mut h = lock(&health);
                                h.replaced += 1;
                                h.unreported.push(damage);
                                store = Some(new);
                            }
                            Err(e) => lock(&health).last_error = Some(e.to_string()),
                        }
                    }
                    if attempt == 1 {
                        break;
                    }
                }
            }
        }
        if let Some(done) = batch.done.take() {
            let _ = done.send(());
            return;
        }
    }
}
