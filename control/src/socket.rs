//! The control socket server: a Unix stream socket speaking
//! [`crate::protocol`], served by threads that never touch the control
//! plane themselves.
//!
//! ```text
//!  client ──► connection thread ──Request──► bounded queue ──► control loop
//!         ◄── (blocking write,   ◄──reply── (try_send, never  ◄── execute()
//!              write timeout)                blocks)
//! ```
//!
//! One accept thread, one thread per client (at most
//! [`SocketOptions::max_clients`]; the next gets `too many clients` and is
//! closed). A connection thread reads lines of at most 64 KiB (a longer one
//! gets an error and the connection is closed: nothing is buffered without
//! bound), parses them, tags them with the peer's `SO_PEERCRED` and hands
//! them to the control loop through a bounded channel, then waits (bounded)
//! for the reply. The control loop only ever `try_send`s: a client that is
//! slow, silent or never reads costs its own thread, never the loop's time.
//!
//! `events` is served in the connection thread from an [`EventBus`]
//! subscription; a follower that falls behind by more than the backlog is
//! dropped and its connection closed.
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};
use serde_json::Value;

use crate::event::Event;
use crate::protocol::{self, error, reply_line, Caller, Command, ProtocolError, MAX_LINE};

/// One request for the control loop. Answer it with [`Request::answer`].
#[derive(Debug)]
pub struct Request {
    /// What was asked (never [`Command::Events`]: the server follows those).
    pub cmd: Command,
    /// Who asked.
    pub caller: Caller,
    /// Where the reply goes (capacity 1: `try_send` never blocks).
    pub reply: Sender<Value>,
}

impl Request {
    /// Sends the reply without blocking; a client that gave up is ignored.
    pub fn answer(self, reply: Value) {
        let _ = self.reply.try_send(reply);
    }
}

/// Fan-out of event lines to `events` followers. Cheap to clone; the
/// control loop calls [`EventBus::publish`] with every batch it logs.
#[derive(Debug, Clone)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<Sender<String>>>>,
    backlog: usize,
}

impl EventBus {
    /// A bus whose followers may fall `backlog` lines behind before they
    /// are dropped.
    pub fn new(backlog: usize) -> EventBus {
        EventBus {
            subscribers: Arc::new(Mutex::new(Vec::new())),
            backlog: backlog.max(1),
        }
    }

    /// A new follower: every event published from now on, one JSON line
    /// each (no newline). The channel disconnects if the follower falls
    /// behind.
    pub fn subscribe(&self) -> Receiver<String> {
        let (tx, rx) = channel::bounded(self.backlog);
        self.lock().push(tx);
        rx
    }

    /// Sends `events` to every follower without blocking; followers whose
    /// queue is full (or who left) are dropped.
    pub fn publish(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut subscribers = self.lock();
        if subscribers.is_empty() {
            return;
        }
        let lines: Vec<String> = events.iter().map(Event::to_line).collect();
        subscribers.retain(|tx| lines.iter().all(|l| tx.try_send(l.clone()).is_ok()));
    }

    /// Followers right now.
    pub fn followers(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sender<String>>> {
        // A panicking follower cannot leave the list inconsistent.
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the dataplane behind the socket is doing, as `status` reports it
/// in its `dataplane` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataplane {
    /// EAL, ports or workers are still being set up: no frame is forwarded
    /// yet (a memif peer that connects now is turned away).
    Starting,
    /// Ports started and every worker polling: forwarding.
    Forwarding,
    /// The workers are stopping or stopped.
    Stopping,
}

impl Dataplane {
    /// The word `status` reports as `state`: `starting`, `forwarding`,
    /// `stopping`.
    pub fn state(self) -> &'static str {
        match self {
            Dataplane::Starting => "starting",
            Dataplane::Forwarding => "forwarding",
            Dataplane::Stopping => "stopping",
        }
    }

    /// The older word of `status`'s `dataplane` field (`ready` where
    /// `state` says `forwarding`), kept for scripts written against it.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataplane::Forwarding => "ready",
            other => other.state(),
        }
    }

    fn from_u8(v: u8) -> Dataplane {
        match v {
            0 => Dataplane::Starting,
            1 => Dataplane::Forwarding,
            _ => Dataplane::Stopping,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Dataplane::Starting => 0,
            Dataplane::Forwarding => 1,
            Dataplane::Stopping => 2,
        }
    }
}

/// How the socket is created and how clients are treated.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Permission bits of the socket file (`0o660`).
    pub mode: u32,
    /// Group given to the socket file.
    pub group: Option<String>,
    /// Clients served at once; more are refused.
    pub max_clients: usize,
    /// A client that sends nothing for this long is disconnected.
    pub idle_timeout: Duration,
    /// How long a request waits for the control loop.
    pub reply_timeout: Duration,
    /// How long one write to a client may block.
    pub write_timeout: Duration,
    /// Requests waiting for the control loop; more get `busy`.
    pub queue: usize,
    /// Event lines an `events` follower may fall behind.
    pub event_backlog: usize,
    /// The dataplane's state when the socket opens. Until it is
    /// [`Dataplane::Forwarding`] ([`ControlSocket::set_dataplane`]) the control
    /// loop is not running, and the connection thread answers `status`
    /// itself (`"dataplane": "starting"`); other requests wait for the loop.
    pub dataplane: Dataplane,
}

impl Default for SocketOptions {
    fn default() -> SocketOptions {
        SocketOptions {
            mode: 0o660,
            group: None,
            max_clients: 64,
            idle_timeout: Duration::from_secs(60),
            reply_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            queue: 256,
            event_backlog: 1024,
            dataplane: Dataplane::Forwarding,
        }
    }
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The socket's directory could not be created.
    #[error("creating directory {dir} for the control socket: {source}")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something else lives at the path.
    #[error("control socket {0} exists and is not a socket; move it away or set [control] socket")]
    NotASocket(PathBuf),
    /// Another process answers on the socket.
    #[error("control socket {0} is in use: is another synwall running? (stop it, or set a different [control] socket)")]
    InUse(PathBuf),
    /// A stale socket file could not be removed or inspected.
    #[error("removing stale control socket {path}: {source}")]
    Stale {
        /// The socket file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// bind(2)/listen(2) failed.
    #[error("binding control socket {path}: {source}")]
    Bind {
        /// The socket file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// chmod failed.
    #[error("setting mode {mode:o} on control socket {path}: {source}")]
    Chmod {
        /// The socket file.
        path: PathBuf,
        /// The mode.
        mode: u32,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configured group does not exist.
    #[error("control socket group '{0}' does not exist; create it (groupadd {0}) or change [control] socket_group")]
    UnknownGroup(String),
    /// The group database could not be read.
    #[error("looking up control socket group '{group}': {source}")]
    GroupLookup {
        /// The group.
        group: String,
        /// The OS error.
        source: nix::Error,
    },
    /// chown failed.
    #[error("giving control socket {path} to group '{group}': {source}")]
    Chown {
        /// The socket file.
        path: PathBuf,
        /// The group.
        group: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The accept thread could not be started.
    #[error("starting the control socket thread: {0}")]
    Spawn(std::io::Error),
}

/// What the accept thread and every connection thread share.
#[derive(Debug)]
struct Shared {
    requests: Sender<Request>,
    events: EventBus,
    stop: AtomicBool,
    clients: AtomicUsize,
    /// A [`Dataplane`] (written by the control loop's thread).
    dataplane: AtomicU8,
    opts: SocketOptions,
}

/// The running control socket. Dropping it stops accepting and removes the
/// socket file (if it is still the one this server created); connections
/// already open end on their own (their next read, write or timeout).
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    /// Device and inode of the socket file we created.
    file: (u64, u64),
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl ControlSocket {
    /// Serves `path` with the default [`SocketOptions`], the file given
    /// `mode` and `group`. Returns the server and the request queue the
    /// control loop drains.
    pub fn bind(
        path: &Path,
        mode: u32,
        group: Option<&str>,
    ) -> Result<(ControlSocket, Receiver<Request>), SocketError> {
        ControlSocket::bind_with(
            path,
            SocketOptions {
                mode,
                group: group.map(str::to_owned),
                ..SocketOptions::default()
            },
        )
    }

    /// Serves `path` with `opts`. A stale socket file (a socket nobody
    /// answers on) is replaced; anything else at the path is an error.
    pub fn bind_with(
        path: &Path,
        opts: SocketOptions,
    ) -> Result<(ControlSocket, Receiver<Request>), SocketError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SocketError::CreateDir {
                dir: dir.to_owned(),
                source,
            })?;
        }
        remove_stale(path)?;
        let listener = UnixListener::bind(path).map_err(|source| SocketError::Bind {
            path: path.to_owned(),
            source,
        })?;
        // From here on, a failure takes the file away again.
        let file = match prepare(path, &listener, &opts) {
            Ok(file) => file,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        let (requests, rx) = channel::bounded(opts.queue.max(1));
        let shared = Arc::new(Shared {
            requests,
            events: EventBus::new(opts.event_backlog),
            stop: AtomicBool::new(false),
            clients: AtomicUsize::new(0),
            dataplane: AtomicU8::new(opts.dataplane.to_u8()),
            opts,
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("synwall-ctl-accept".into())
                .spawn(move || accept_loop(listener, shared))
        };
        let accept = match accept {
            Ok(handle) => handle,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(SocketError::Spawn(e));
            }
        };
        Ok((
            ControlSocket {
                path: path.to_owned(),
                file,
                shared,
                accept: Some(accept),
            },
            rx,
        ))
    }

    /// The socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bus `events` followers read; publish every event batch here.
    pub fn events(&self) -> &EventBus {
        &self.shared.events
    }

    /// Clients connected right now.
    pub fn clients(&self) -> usize {
        self.shared.clients.load(Ordering::Relaxed)
    }

    /// Says what the dataplane is doing now; `status` reports it.
    pub fn set_dataplane(&self, state: Dataplane) {
        self.shared
            .dataplane
            .store(state.to_u8(), Ordering::Release);
    }

    /// What the dataplane is doing, as last set.
    pub fn dataplane(&self) -> Dataplane {
        Dataplane::from_u8(self.shared.dataplane.load(Ordering::Acquire))
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        // Only our own file: a successor may already have bound the path.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.file {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Removes a socket file nobody answers on; refuses anything else.
fn remove_stale(path: &Path) -> Result<(), SocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SocketError::Stale {
                path: path.to_owned(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket(path.to_owned()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(SocketError::InUse(path.to_owned())),
        Err(_) => std::fs::remove_file(path).map_err(|source| SocketError::Stale {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Group, mode and non-blocking accept; returns the file's (dev, ino).
fn prepare(
    path: &Path,
    listener: &UnixListener,
    opts: &SocketOptions,
) -> Result<(u64, u64), SocketError> {
    if let Some(group) = &opts.group {
        let gid = match nix::unistd::Group::from_name(group) {
            Ok(Some(g)) => g.gid.as_raw(),
            Ok(None) => return Err(SocketError::UnknownGroup(group.clone())),
            Err(source) => {
                return Err(SocketError::GroupLookup {
                    group: group.clone(),
                    source,
                })
            }
        };
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| SocketError::Chown {
            path: path.to_owned(),
            group: group.clone(),
            source,
        })?;
    }
    let chmod = |source| SocketError::Chmod {
        path: path.to_owned(),
        mode: opts.mode,
        source,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(opts.mode)).map_err(chmod)?;
    listener
        .set_nonblocking(true)
        .map_err(|source| SocketError::Bind {
            path: path.to_owned(),
            source,
        })?;
    let meta = std::fs::symlink_metadata(path).map_err(chmod)?;
    Ok((meta.dev(), meta.ino()))
}

/// How often the accept thread looks at the stop flag.
const ACCEPT_POLL_MS: u16 = 100;

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    use nix::poll::{poll, PollFd, PollFlags};
    while !shared.stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ACCEPT_POLL_MS) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS.into()));
                continue;
            }
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        match listener.accept() {
            Ok((stream, _)) => admit(stream, &shared),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            // Out of file descriptors and the like: back off, keep serving.
            Err(_) => std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS.into())),
        }
    }
}

/// Counts a client in for as long as its thread runs.
struct ClientSlot(Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

fn admit(stream: UnixStream, shared: &Arc<Shared>) {
    // Accepted sockets are blocking on Linux; make sure.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(shared.opts.write_timeout));
    if shared.clients.fetch_add(1, Ordering::Relaxed) >= shared.opts.max_clients {
        shared.clients.fetch_sub(1, Ordering::Relaxed);
        refuse(stream, "too many clients");
        return;
    }
    let slot = ClientSlot(shared.clone());
    let spawned = std::thread::Builder::new()
        .name("synwall-ctl-client".into())
        .spawn(move || {
            let shared = slot.0.clone();
            serve(stream, &shared);
            drop(slot);
        });
    // On failure the closure (stream and slot) is dropped: the client sees
    // the connection close and the slot is given back.
    let _ = spawned;
}

/// Tells a client why it is turned away, without waiting on it.
fn refuse(mut stream: UnixStream, why: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(reply_line(&error(why)).as_bytes());
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
enum LineRead {
    /// A line (without its newline) is in the buffer.
    Line,
    /// The client closed.
    Eof,
    /// The line is longer than the cap; the rest was not read.
    TooLong,
}

/// Reads one line of at most `cap` bytes into `out` (cleared first).
fn read_line(r: &mut impl BufRead, out: &mut Vec<u8>, cap: usize) -> std::io::Result<LineRead> {
    out.clear();
    loop {
        let buf = match r.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            // A last line without a newline still counts.
            return Ok(if out.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if out.len() + take > cap {
            return Ok(LineRead::TooLong);
        }
        out.extend_from_slice(&buf[..take]);
        r.consume(take + usize::from(done));
        if done {
            return Ok(LineRead::Line);
        }
    }
}

fn write_reply(w: &mut UnixStream, reply: &Value) -> std::io::Result<()> {
    w.write_all(reply_line(reply).as_bytes())
}

/// Serves one client until it leaves, idles out, or breaks the protocol
/// beyond repair (an oversized line).
fn serve(stream: UnixStream, shared: &Shared) {
    let mut writer = stream;
    let caller = match peer(&writer) {
        Ok(c) => c,
        Err(e) => {
            let _ = write_reply(
                &mut writer,
                &error(format!("reading peer credentials: {e}")),
            );
            return;
        }
    };
    if writer
        .set_read_timeout(Some(shared.opts.idle_timeout))
        .is_err()
    {
        return;
    }
    let Ok(read_half) = writer.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(16 * 1024, read_half);
    let mut line = Vec::with_capacity(512);
    loop {
        match read_line(&mut reader, &mut line, MAX_LINE) {
            Ok(LineRead::Line) => {}
            Ok(LineRead::Eof) => return,
            Ok(LineRead::TooLong) => {
                let _ = write_reply(&mut writer, &error(ProtocolError::TooLong));
                return;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let secs = shared.opts.idle_timeout.as_secs_f64();
                let _ = write_reply(
                    &mut writer,
                    &error(format!("idle for {secs} s; closing the connection")),
                );
                return;
            }
            Err(_) => return,
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match protocol::parse_line(&line) {
            Err(e) => error(e),
            Ok(Command::Events) => return follow(&mut writer, shared),
            Ok(cmd) => dispatch(cmd, caller, shared),
        };
        if write_reply(&mut writer, &reply).is_err() {
            return;
        }
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// The peer's uid, gid and pid.
fn peer(stream: &UnixStream) -> nix::Result<Caller> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)?;
    Ok(Caller {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    })
}

/// Hands a request to the control loop and waits (bounded) for its reply.
/// While the dataplane is not ready the loop does not run: `status` is
/// answered here, saying so.
fn dispatch(cmd: Command, caller: Caller, shared: &Shared) -> Value {
    if cmd == Command::Status {
        let state = Dataplane::from_u8(shared.dataplane.load(Ordering::Acquire));
        if state != Dataplane::Forwarding {
            return protocol::ok(serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "state": state.state(),
                "dataplane": state.as_str(),
            }));
        }
    }
    // A reload reads the whole customers file first: at a million
    // customers that takes longer than any other request.
    let timeout = if cmd == Command::Reload {
        shared.opts.reply_timeout.max(RELOAD_REPLY_TIMEOUT)
    } else {
        shared.opts.reply_timeout
    };
    let (reply, answer) = channel::bounded(1);
    match shared.requests.try_send(Request { cmd, caller, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return error("the appliance is busy (request queue full); try again")
        }
        Err(TrySendError::Disconnected(_)) => return error("the appliance is shutting down"),
    }
    match answer.recv_timeout(timeout) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => error(format!(
            "the appliance did not answer within {} s",
            timeout.as_secs_f64()
        )),
        Err(RecvTimeoutError::Disconnected) => error("the appliance dropped the request"),
    }
}

/// How long a `reload` request may wait for its result.
const RELOAD_REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a quiet `events` follower is checked for having left.
const FOLLOW_CHECK: Duration = Duration::from_millis(500);

/// Streams event lines to the client until it leaves or falls behind.
fn follow(writer: &mut UnixStream, shared: &Shared) {
    let events = shared.events.subscribe();
    if write_reply(
        writer,
        &serde_json::json!({"ok": true, "events": "following"}),
    )
    .is_err()
    {
        return;
    }
    let mut text = String::new();
    loop {
        match events.recv_timeout(FOLLOW_CHECK) {
            Ok(line) => {
                // Whatever else is queued goes out in the same write.
                text.clear();
                text.push_str(&line);
                text.push('\n');
                while let Ok(more) = events.try_recv() {
                    text.push_str(&more);
                    text.push('\n');
                }
                if writer.write_all(text.as_bytes()).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if shared.stop.load(Ordering::Relaxed) || client_left(writer) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = write_reply(
                    writer,
                    &error(format!(
                        "event stream fell behind by more than {} lines; reconnect",
                        shared.events.backlog
                    )),
                );
                return;
            }
        }
    }
}

/// Whether a follower closed its end (input it sends is discarded).
fn client_left(stream: &mut UnixStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut buf = [0u8; 1024];
    let left = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).is_err() || left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<Result<(LineRead, Vec<u8>), ErrorKind>> {
        // A tiny buffer so lines straddle fills.
        let mut r = BufReader::with_capacity(3, input);
        let mut out = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line(&mut r, &mut out, cap) {
                Ok(LineRead::Eof) => return got,
                Ok(LineRead::TooLong) => {
                    got.push(Ok((LineRead::TooLong, out.clone())));
                    return got;
                }
                Ok(l) => got.push(Ok((l, out.clone()))),
                Err(e) => {
                    got.push(Err(e.kind()));
                    return got;
                }
            }
        }
    }

    #[test]
    fn lines_are_split_and_capped() {
        let got = lines(b"ab\n\ncdefg\nxyz", 8);
        let texts: Vec<&[u8]> = got
            .iter()
            .map(|r| r.as_ref().unwrap().1.as_slice())
            .collect();
        assert_eq!(texts, [&b"ab"[..], b"", b"cdefg", b"xyz"]);
        // Exactly the cap is fine; one more is not.
        assert_eq!(
            lines(b"12345678\n", 8)[0],
            Ok((LineRead::Line, b"12345678".to_vec()))
        );
        assert!(matches!(
            lines(b"123456789\n", 8)[0],
            Ok((LineRead::TooLong, _))
        ));
        assert!(matches!(
            lines(b"123456789", 8)[0],
            Ok((LineRead::TooLong, _))
        ));
    }

    #[test]
    fn bus_drops_followers_that_fall_behind() {
        let bus = EventBus::new(2);
        let slow = bus.subscribe();
        let fast = bus.subscribe();
        let ev = Event::reload(crate::event::Timestamp(0), "x");
        bus.publish(&[ev.clone(), ev.clone()]);
        assert_eq!(fast.try_iter().count(), 2);
        assert_eq!(bus.followers(), 2);
        bus.publish(std::slice::from_ref(&ev));
        bus.publish(std::slice::from_ref(&ev));
        // `slow` held 2 and could take no more: dropped, sees the end after
        // draining what it had.
        assert_eq!(bus.followers(), 1);
        assert_eq!(slow.iter().count(), 2);
        assert_eq!(fast.try_iter().count(), 2);
        drop(fast);
        bus.publish(&[ev]);
        assert_eq!(bus.followers(), 0);
    }
}
