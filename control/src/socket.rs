//! The control socket server: a Unix stream socket speaking
//! [`synwall_protocol`], served by one thread that never touches the control
//! plane itself.
//!
//! ```text
//!  clients ──► server thread ──Request──► bounded queue ──► control loop
//!          ◄── (epoll: accept,  ◄──reply── (try_send + wake, ◄── execute()
//!               read, write)                never blocks)
//! ```
//!
//! One thread serves every connection from an epoll set (level-triggered,
//! non-blocking sockets): an idle connection costs a file descriptor and
//! the bytes it sent, never a thread, so thousands of them do not keep a
//! fresh request waiting. Request clients and `events` followers are
//! counted apart ([`SocketOptions::max_clients`],
//! [`SocketOptions::max_followers`]). When every request slot is taken, the
//! connection open longest without sending a request makes room for the
//! newcomer; when all of them have asked something, the newcomer is told
//! why and closed. Each request must arrive whole within
//! [`SocketOptions::idle_timeout`] of the previous reply (or of the
//! connection): a silent client, or one that sends half a line, is told so
//! and closed.
//!
//! A connection's lines are at most 64 KiB (a longer one gets an error and
//! the connection is closed: nothing is buffered without bound); each is
//! parsed, tagged with the peer's `SO_PEERCRED` and handed to the control
//! loop through a bounded channel. Requests on one connection are answered
//! in order, one at a time: the next line is read once the reply is
//! queued. The control loop waits on that channel (it does not nap past a
//! request), only ever `try_send`s its reply, and wakes the server through
//! an eventfd: a client that is slow, silent or never reads costs the
//! loop nothing.
//!
//! `events` followers are fed from an [`EventBus`] subscription; a follower
//! that falls behind by more than the backlog is dropped and its connection
//! closed.
use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender, TryRecvError, TrySendError};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use serde_json::Value;

use synwall_engine::event::Event;
use synwall_protocol::{error, reply_line, Caller, Command, ProtocolError, MAX_LINE};

/// One request for the control loop. Answer it with [`Request::answer`].
#[derive(Debug)]
pub struct Request {
    /// What was asked (never [`Command::Events`]: the server follows those).
    pub cmd: Command,
    /// Who asked.
    pub caller: Caller,
    /// Where the reply goes (capacity 1: `try_send` never blocks).
    pub reply: Sender<Value>,
    /// The server to wake once the reply is sent, or the request dropped.
    pub(crate) wake: Option<Wake>,
}

impl Request {
    /// Sends the reply without blocking; a client that gave up is ignored.
    pub fn answer(self, reply: Value) {
        let _ = self.reply.try_send(reply);
        // Dropping `self` wakes the server.
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Some(wake) = &self.wake {
            wake.wake();
        }
    }
}

/// Wakes the server thread from its epoll wait: a reply is ready, an event
/// was published, or the server is to stop. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Wake(Arc<EventFd>);

impl Wake {
    fn new() -> nix::Result<Wake> {
        EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map(|fd| Wake(Arc::new(fd)))
    }

    /// Never blocks: a counter that is already set stays set.
    pub(crate) fn wake(&self) {
        let _ = self.0.write(1);
    }

    fn clear(&self) {
        let _ = self.0.read();
    }
}

/// Fan-out of event lines to `events` followers. Cheap to clone; the
/// control loop calls [`EventBus::publish`] with every batch it logs.
#[derive(Debug, Clone)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<Sender<String>>>>,
    backlog: usize,
    /// The socket server that feeds the followers.
    wake: Option<Wake>,
}

impl EventBus {
    /// A bus whose followers may fall `backlog` lines behind before they
    /// are dropped.
    pub fn new(backlog: usize) -> EventBus {
        EventBus {
            subscribers: Arc::new(Mutex::new(Vec::new())),
            backlog: backlog.max(1),
            wake: None,
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
        drop(subscribers);
        if let Some(wake) = &self.wake {
            wake.wake();
        }
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
    /// Request clients connected at once (idle ones included; `events`
    /// followers are not counted here); more are refused.
    pub max_clients: usize,
    /// `events` followers at once; more are refused.
    pub max_followers: usize,
    /// Each request must arrive whole within this long of the connection
    /// or of the previous reply; a client that sends nothing, or half a
    /// line, for longer is told so and disconnected.
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
            max_clients: 4096,
            max_followers: 64,
            idle_timeout: Duration::from_secs(10),
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
    /// The server thread could not be started.
    #[error("starting the control socket thread: {0}")]
    Spawn(std::io::Error),
    /// The server's epoll set or wake-up eventfd could not be created.
    #[error("setting up the control socket's event loop: {0}")]
    EventLoop(nix::Error),
}

/// What the server thread and the [`ControlSocket`] handle share.
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

/// The running control socket. Dropping it stops the server thread, which
/// closes every connection, and removes the socket file (if it is still
/// the one this server created).
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    /// Device and inode of the socket file we created.
    file: (u64, u64),
    shared: Arc<Shared>,
    wake: Wake,
    server: Option<JoinHandle<()>>,
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
        let server = Wake::new().and_then(|wake| {
            let shared = Arc::new(Shared {
                requests,
                events: EventBus {
                    wake: Some(wake.clone()),
                    ..EventBus::new(opts.event_backlog)
                },
                stop: AtomicBool::new(false),
                clients: AtomicUsize::new(0),
                dataplane: AtomicU8::new(opts.dataplane.to_u8()),
                opts,
            });
            let server = Server::new(listener, wake.clone(), shared.clone())?;
            Ok((server, wake, shared))
        });
        let (server, wake, shared) = match server {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(SocketError::EventLoop(e));
            }
        };
        let thread = std::thread::Builder::new()
            .name("synwall-ctl".into())
            .spawn(move || server.run());
        let thread = match thread {
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
                wake,
                server: Some(thread),
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

    /// Connections open right now: request clients and `events` followers.
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
        self.wake.wake();
        if let Some(handle) = self.server.take() {
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

/// Epoll tokens: the listener, the wake-up eventfd, then connections.
const LISTENER: u64 = 0;
const WAKER: u64 = 1;
const FIRST_CONNECTION: u64 = 2;

/// The longest the server sleeps: how often it checks deadlines and the
/// stop flag.
const SWEEP_MS: u16 = 50;

/// How long accepting pauses when accept(2) fails (out of file
/// descriptors): the listener stays readable, so retrying at once spins.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Output a connection may have waiting before the server stops reading
/// its requests (or taking its events) until the client reads.
const OUTPUT_HIGH: usize = 256 * 1024;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Connections that became readable or writable at once, per wait.
const EVENTS_PER_WAIT: usize = 256;

/// How long a `reload` request may wait for its result.
const RELOAD_REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// The server thread's state: the listener, every connection, and the
/// epoll set that says which of them can go on.
struct Server {
    listener: UnixListener,
    epoll: Epoll,
    wake: Wake,
    shared: Arc<Shared>,
    connections: HashMap<u64, Connection>,
    /// Connections waiting for the control loop or following events: what
    /// a wake-up may concern.
    busy: HashSet<u64>,
    next_token: u64,
    /// Request clients and followers open (`connections` split by kind).
    requesters: usize,
    followers: usize,
    /// Accepting is paused until then (accept failed: out of descriptors).
    accept_paused_until: Option<Instant>,
    scratch: Vec<u8>,
}

/// Where a connection is in its conversation.
enum Phase {
    /// Waiting for a request line, which must be whole by `since` plus
    /// the idle timeout.
    Reading { since: Instant },
    /// A request is with the control loop.
    Waiting {
        answer: Receiver<Value>,
        deadline: Instant,
        timeout: Duration,
    },
    /// An `events` follower; what it sends is read and dropped.
    Following(Receiver<String>),
}

/// One client connection: a non-blocking socket, what it sent that is not
/// yet a request, and what it has not yet read.
struct Connection {
    stream: UnixStream,
    caller: Caller,
    phase: Phase,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` written.
    written: usize,
    /// Since when a write has made no progress (the write deadline counts
    /// from here).
    stalled_since: Option<Instant>,
    /// The client closed its end (what it sent before is still served).
    eof: bool,
    /// Close once the output is written.
    closing: bool,
    /// Reading or writing failed: close now.
    broken: bool,
    /// Counted as a follower.
    follower: bool,
    /// When it was accepted, and whether it has sent a request since.
    accepted: Instant,
    spoke: bool,
    /// What the epoll set watches for.
    interest: EpollFlags,
}

/// What a connection asks of the server after a step.
enum Next {
    Keep,
    Close,
    /// It sent `events`: make it a follower (or refuse).
    Follow,
}

impl Server {
    fn new(listener: UnixListener, wake: Wake, shared: Arc<Shared>) -> nix::Result<Server> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(&listener, EpollEvent::new(EpollFlags::EPOLLIN, LISTENER))?;
        epoll.add(&*wake.0, EpollEvent::new(EpollFlags::EPOLLIN, WAKER))?;
        Ok(Server {
            listener,
            epoll,
            wake,
            shared,
            connections: HashMap::new(),
            busy: HashSet::new(),
            next_token: FIRST_CONNECTION,
            requesters: 0,
            followers: 0,
            accept_paused_until: None,
            scratch: vec![0; READ_CHUNK],
        })
    }

    fn run(mut self) {
        let mut events = vec![EpollEvent::empty(); EVENTS_PER_WAIT];
        let mut last_sweep = Instant::now();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let n = match self.epoll.wait(&mut events, EpollTimeout::from(SWEEP_MS)) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(_) => {
                    // Should not happen on a valid epoll set; do not spin.
                    std::thread::sleep(Duration::from_millis(SWEEP_MS.into()));
                    0
                }
            };
            let now = Instant::now();
            for ev in &events[..n] {
                match ev.data() {
                    LISTENER => self.accept(now),
                    WAKER => {
                        self.wake.clear();
                        let busy: Vec<u64> = self.busy.iter().copied().collect();
                        for token in busy {
                            self.step(token, now);
                        }
                    }
                    token => {
                        self.step(token, now);
                        // The peer is gone: what it sent was served above,
                        // and nobody can read a reply.
                        if ev
                            .events()
                            .intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
                        {
                            self.close(token);
                        }
                    }
                }
            }
            if now.duration_since(last_sweep) >= Duration::from_millis(SWEEP_MS.into()) {
                self.sweep(now);
                last_sweep = now;
            }
        }
    }

    /// Accepts every connection waiting.
    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream, now),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                    ) => {}
                Err(_) => {
                    // Out of file descriptors and the like: the waiting
                    // clients stay in the backlog; try again shortly.
                    let mut none = EpollEvent::new(EpollFlags::empty(), LISTENER);
                    let _ = self.epoll.modify(&self.listener, &mut none);
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: UnixStream, now: Instant) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        if self.requesters >= self.shared.opts.max_clients && !self.evict_a_silent_client() {
            refuse(stream, "too many clients");
            return;
        }
        let caller = match peer(&stream) {
            Ok(c) => c,
            Err(e) => {
                refuse(stream, &format!("reading peer credentials: {e}"));
                return;
            }
        };
        let token = self.next_token;
        self.next_token += 1;
        let interest = EpollFlags::EPOLLIN;
        if self
            .epoll
            .add(&stream, EpollEvent::new(interest, token))
            .is_err()
        {
            refuse(stream, "the control socket is out of resources; try again");
            return;
        }
        self.connections
            .insert(token, Connection::new(stream, caller, interest, now));
        self.requesters += 1;
        self.count();
    }

    /// Makes room for a newcomer when every slot is taken: the connection
    /// that has been open longest without sending a request is told why and
    /// closed. Clients that asked something keep their slot (until their
    /// idle timeout). False when there is no such connection.
    fn evict_a_silent_client(&mut self) -> bool {
        let silent = self
            .connections
            .iter()
            .filter(|(_, c)| !c.spoke && !c.follower && !c.closing)
            .min_by_key(|(_, c)| c.accepted)
            .map(|(&token, _)| token);
        let Some(token) = silent else {
            return false;
        };
        if let Some(conn) = self.connections.get_mut(&token) {
            conn.queue(&error(
                "the control socket is full and this connection has sent no request; closing it",
            ));
            conn.flush(Instant::now());
        }
        self.close(token);
        true
    }

    /// Moves connection `token` along as far as it can go without waiting.
    fn step(&mut self, token: u64, now: Instant) {
        let Some(conn) = self.connections.get_mut(&token) else {
            return;
        };
        let mut next = conn.step(&self.shared, &self.wake, &mut self.scratch, now);
        if matches!(next, Next::Follow) {
            if self.followers >= self.shared.opts.max_followers {
                conn.queue(&error(format!(
                    "too many event followers (limit {}); try again later",
                    self.shared.opts.max_followers
                )));
                conn.closing = true;
            } else {
                conn.phase = Phase::Following(self.shared.events.subscribe());
                conn.input = Vec::new();
                conn.follower = true;
                self.requesters -= 1;
                self.followers += 1;
                conn.queue(&serde_json::json!({"ok": true, "events": "following"}));
            }
            next = conn.step(&self.shared, &self.wake, &mut self.scratch, now);
        }
        match next {
            Next::Close => self.close(token),
            Next::Keep | Next::Follow => {
                if matches!(conn.phase, Phase::Reading { .. }) {
                    self.busy.remove(&token);
                } else {
                    self.busy.insert(token);
                }
                let interest = conn.interest();
                if interest != conn.interest {
                    let mut ev = EpollEvent::new(interest, token);
                    if self.epoll.modify(&conn.stream, &mut ev).is_err() {
                        self.close(token);
                        return;
                    }
                    conn.interest = interest;
                }
            }
        }
    }

    fn close(&mut self, token: u64) {
        let Some(conn) = self.connections.remove(&token) else {
            return;
        };
        self.busy.remove(&token);
        let _ = self.epoll.delete(&conn.stream);
        if conn.follower {
            self.followers -= 1;
        } else {
            self.requesters -= 1;
        }
        self.count();
    }

    fn count(&self) {
        self.shared
            .clients
            .store(self.requesters + self.followers, Ordering::Relaxed);
    }

    /// Deadlines: idle and slow clients, unanswered requests, clients that
    /// do not read; and accepting again after a pause.
    fn sweep(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            let mut ev = EpollEvent::new(EpollFlags::EPOLLIN, LISTENER);
            let _ = self.epoll.modify(&self.listener, &mut ev);
        }
        let opts = &self.shared.opts;
        let mut due = Vec::new();
        let mut dead = Vec::new();
        for (&token, conn) in &mut self.connections {
            if conn
                .stalled_since
                .is_some_and(|t| now.duration_since(t) >= opts.write_timeout)
            {
                dead.push(token);
                continue;
            }
            match &conn.phase {
                Phase::Reading { since }
                    if !conn.closing && now.duration_since(*since) >= opts.idle_timeout =>
                {
                    let secs = opts.idle_timeout.as_secs_f64();
                    let why = if conn.input.iter().all(u8::is_ascii_whitespace) {
                        format!("idle for {secs} s; closing the connection")
                    } else {
                        format!(
                            "idle for {secs} s in the middle of a request (a request must \
                             arrive whole within {secs} s); closing the connection"
                        )
                    };
                    conn.queue(&error(why));
                    conn.closing = true;
                    due.push(token);
                }
                Phase::Waiting { deadline, .. } if now >= *deadline => due.push(token),
                _ => {}
            }
        }
        for token in dead {
            self.close(token);
        }
        for token in due {
            self.step(token, now);
        }
    }
}

impl Connection {
    fn new(stream: UnixStream, caller: Caller, interest: EpollFlags, now: Instant) -> Connection {
        Connection {
            stream,
            caller,
            phase: Phase::Reading { since: now },
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            stalled_since: None,
            eof: false,
            closing: false,
            broken: false,
            follower: false,
            accepted: now,
            spoke: false,
            interest,
        }
    }

    /// Takes replies and events, writes what it can, and reads and hands
    /// on requests while the client keeps up with the replies.
    fn step(&mut self, shared: &Shared, wake: &Wake, scratch: &mut [u8], now: Instant) -> Next {
        self.collect(shared, now);
        self.flush(now);
        let mut next = Next::Keep;
        if !self.closing && !self.broken {
            next = self.take_requests(shared, wake, scratch, now);
            self.flush(now);
        }
        if self.broken || (self.closing && self.pending() == 0) {
            return Next::Close;
        }
        next
    }

    /// A reply from the control loop, or events for a follower, into the
    /// output.
    fn collect(&mut self, shared: &Shared, now: Instant) {
        match &self.phase {
            Phase::Reading { .. } => {}
            Phase::Waiting {
                answer,
                deadline,
                timeout,
            } => {
                let reply = match answer.try_recv() {
                    Ok(v) => v,
                    Err(TryRecvError::Empty) if now < *deadline => return,
                    Err(TryRecvError::Empty) => error(format!(
                        "the appliance did not answer within {} s",
                        timeout.as_secs_f64()
                    )),
                    Err(TryRecvError::Disconnected) => error("the appliance dropped the request"),
                };
                self.phase = Phase::Reading { since: now };
                self.queue(&reply);
            }
            Phase::Following(events) => {
                while self.pending() < OUTPUT_HIGH {
                    match events.try_recv() {
                        Ok(line) => {
                            self.output.extend_from_slice(line.as_bytes());
                            self.output.push(b'\n');
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            let why = format!(
                                "event stream fell behind by more than {} lines; reconnect",
                                shared.events.backlog
                            );
                            self.queue(&error(why));
                            self.closing = true;
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Reads and serves request lines until one has to wait for the
    /// control loop, the client has to read its replies first, or there is
    /// nothing more to read.
    fn take_requests(
        &mut self,
        shared: &Shared,
        wake: &Wake,
        scratch: &mut [u8],
        now: Instant,
    ) -> Next {
        if matches!(self.phase, Phase::Following(_)) {
            self.drain_input(scratch);
            return Next::Keep;
        }
        while matches!(self.phase, Phase::Reading { .. })
            && !self.closing
            && self.pending() < OUTPUT_HIGH
        {
            let line = match next_line(&mut self.input, MAX_LINE) {
                Some(Ok(line)) => line,
                Some(Err(e)) => {
                    self.queue(&error(e));
                    self.closing = true;
                    break;
                }
                None if self.eof => {
                    if self.input.is_empty() {
                        self.closing = true;
                        break;
                    }
                    // A last line without a newline still counts.
                    std::mem::take(&mut self.input)
                }
                None => {
                    match self.stream.read(scratch) {
                        Ok(0) => self.eof = true,
                        Ok(n) => self.input.extend_from_slice(&scratch[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => self.broken = true,
                    }
                    if self.broken {
                        break;
                    }
                    continue;
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.spoke = true;
            match synwall_protocol::parse_line(&line) {
                Err(e) => self.queue(&error(e)),
                Ok(Command::Events) => return Next::Follow,
                Ok(cmd) => match dispatch(cmd, self.caller, shared, wake) {
                    Dispatched::Now(reply) => self.queue(&reply),
                    Dispatched::Later { answer, timeout } => {
                        self.phase = Phase::Waiting {
                            answer,
                            deadline: now + timeout,
                            timeout,
                        };
                        continue;
                    }
                },
            }
            self.phase = Phase::Reading { since: now };
        }
        Next::Keep
    }

    /// A follower's input: read and dropped, to see it leave.
    fn drain_input(&mut self, scratch: &mut [u8]) {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.eof = true;
                    self.broken = true;
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
    }

    fn queue(&mut self, reply: &Value) {
        self.output.extend_from_slice(reply_line(reply).as_bytes());
    }

    fn pending(&self) -> usize {
        self.output.len() - self.written
    }

    /// Writes what the socket takes now.
    fn flush(&mut self, now: Instant) {
        while self.pending() > 0 && !self.broken {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => self.broken = true,
                Ok(n) => {
                    self.written += n;
                    self.stalled_since = None;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.stalled_since.get_or_insert(now);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
        }
        if self.pending() == 0 {
            self.output.clear();
            self.written = 0;
        } else if self.written >= OUTPUT_HIGH {
            self.output.drain(..self.written);
            self.written = 0;
        }
    }

    /// What to wait for: more input while a request is wanted (and the
    /// client reads its replies), the socket taking output while some
    /// waits.
    fn interest(&self) -> EpollFlags {
        let wants_input = match self.phase {
            Phase::Reading { .. } => {
                !self.closing
                    && !self.eof
                    && self.pending() < OUTPUT_HIGH
                    && !self.input.contains(&b'\n')
                    && self.input.len() <= MAX_LINE
            }
            Phase::Following(_) => !self.eof,
            Phase::Waiting { .. } => false,
        };
        let mut interest = EpollFlags::empty();
        if wants_input {
            interest |= EpollFlags::EPOLLIN;
        }
        if self.pending() > 0 {
            interest |= EpollFlags::EPOLLOUT;
        }
        interest
    }
}

/// Tells a client why it is turned away, without waiting on it.
fn refuse(mut stream: UnixStream, why: &str) {
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(reply_line(&error(why)).as_bytes());
}

/// The first line of `input` (without its newline), taken out of it; an
/// error once a line is longer than `cap`; `None` while no line is whole.
fn next_line(input: &mut Vec<u8>, cap: usize) -> Option<Result<Vec<u8>, ProtocolError>> {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) if i > cap => Some(Err(ProtocolError::TooLong)),
        Some(i) => {
            let mut line: Vec<u8> = input.drain(..=i).collect();
            line.pop();
            Some(Ok(line))
        }
        None if input.len() > cap => Some(Err(ProtocolError::TooLong)),
        None => None,
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

/// What became of a request.
enum Dispatched {
    /// Answered (or refused) at once.
    Now(Value),
    /// With the control loop: its reply comes on `answer`, or after
    /// `timeout` it is reported as not answered.
    Later {
        answer: Receiver<Value>,
        timeout: Duration,
    },
}

/// Hands a request to the control loop. While the dataplane is not ready
/// the loop does not run: `status` is answered here, saying so.
fn dispatch(cmd: Command, caller: Caller, shared: &Shared, wake: &Wake) -> Dispatched {
    if cmd == Command::Status {
        let state = Dataplane::from_u8(shared.dataplane.load(Ordering::Acquire));
        if state != Dataplane::Forwarding {
            return Dispatched::Now(synwall_protocol::ok(serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "state": state.state(),
                "dataplane": state.as_str(),
            })));
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
    let request = Request {
        cmd,
        caller,
        reply,
        wake: Some(wake.clone()),
    };
    match shared.requests.try_send(request) {
        Ok(()) => Dispatched::Later { answer, timeout },
        Err(TrySendError::Full(_)) => Dispatched::Now(error(
            "the appliance is busy (request queue full); try again",
        )),
        Err(TrySendError::Disconnected(_)) => {
            Dispatched::Now(error("the appliance is shutting down"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line `next_line` takes from `input`, and what stops it.
    fn lines(input: &[u8], cap: usize) -> (Vec<Vec<u8>>, Option<ProtocolError>, Vec<u8>) {
        let mut input = input.to_vec();
        let mut got = Vec::new();
        loop {
            match next_line(&mut input, cap) {
                Some(Ok(line)) => got.push(line),
                Some(Err(e)) => return (got, Some(e), input),
                None => return (got, None, input),
            }
        }
    }

    #[test]
    fn lines_are_split_and_capped() {
        let (got, err, rest) = lines(b"ab\n\ncdefg\nxyz", 8);
        assert_eq!(got, [&b"ab"[..], b"", b"cdefg"]);
        assert_eq!((err, rest), (None, b"xyz".to_vec()), "half a line waits");
        // Exactly the cap is fine; one more is not, with or without its
        // newline yet.
        assert_eq!(lines(b"12345678\n", 8).0, [b"12345678".to_vec()]);
        assert_eq!(lines(b"123456789\n", 8).1, Some(ProtocolError::TooLong));
        assert_eq!(lines(b"123456789", 8).1, Some(ProtocolError::TooLong));
        assert_eq!(lines(b"12345678", 8).1, None);
    }

    #[test]
    fn bus_drops_followers_that_fall_behind() {
        let bus = EventBus::new(2);
        let slow = bus.subscribe();
        let fast = bus.subscribe();
        let ev = Event::reload(synwall_engine::event::Timestamp(0), "x");
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
