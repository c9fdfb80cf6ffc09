//! synwall's own lines on stdout and stderr (events, the stats line,
//! errors), written by a thread of their own so that a stdout nobody reads
//! never blocks the thread that prints: a stalled journald or a full pipe
//! used to wedge the control loop in `println!` (ticks, requests,
//! snapshots and metrics all stopped).
//!
//! [`out`] and [`err`] queue a line and return at once; when the queue is
//! full (the writer is stuck) the line is dropped and counted
//! ([`dropped`]: `status`'s `stdout_dropped_lines`,
//! `synwall_stdout_dropped_lines_total`). One queue for both streams keeps
//! their lines in order. [`flush`] waits, bounded, for what is queued, for
//! the last lines before exit.
//!
//! Setting `O_NONBLOCK` on fds 1 and 2 instead would change them for every
//! process that shares them (a shell, journald's other clients).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Sender, TrySendError};

/// Lines that may wait for the writer; more are dropped.
pub const QUEUE: usize = 1024;

/// Lines dropped because the writer could not keep up.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The writer thread's queue; `None` when it could not be started (then
/// lines are written directly, as before).
static WRITER: OnceLock<Option<Sender<Message>>> = OnceLock::new();

enum Message {
    Out(String),
    Err(String),
    /// Answered once everything queued before it is written.
    Flush(Sender<()>),
}

/// Queues `line` (no newline) for stdout; never blocks.
pub fn out(line: impl Into<String>) {
    send(Message::Out(line.into()));
}

/// Queues `line` (no newline) for stderr; never blocks.
pub fn err(line: impl Into<String>) {
    send(Message::Err(line.into()));
}

/// Lines dropped since start because stdout or stderr did not take them.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Waits up to `timeout` for the lines queued so far to be written; false
/// if they were not (the writer is stuck).
pub fn flush(timeout: Duration) -> bool {
    let Some(Some(writer)) = WRITER.get() else {
        return true;
    };
    let deadline = Instant::now() + timeout;
    let (done, written) = channel::bounded(1);
    if writer
        .send_deadline(Message::Flush(done), deadline)
        .is_err()
    {
        return false;
    }
    written.recv_deadline(deadline).is_ok()
}

fn send(message: Message) {
    let writer = WRITER.get_or_init(|| {
        let (tx, rx) = channel::bounded::<Message>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("synwall-console".into())
            .spawn(move || {
                for message in rx {
                    write(message);
                }
            });
        spawned.ok().map(|_| tx)
    });
    match writer {
        Some(tx) => match tx.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        },
        None => write(message),
    }
}

/// Writes one message; a write error (a closed pipe) loses the line, it
/// never panics as `println!` does.
fn write(message: Message) {
    match message {
        Message::Out(line) => {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        Message::Err(line) => {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        Message::Flush(done) => {
            let _ = std::io::stdout().flush();
            let _ = done.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_and_flush_waits_for_them() {
        let before = dropped();
        out("synwall: console test line");
        err("synwall: console test line on stderr");
        assert!(flush(Duration::from_secs(5)));
        assert_eq!(dropped(), before);
    }
}
