//! The `/metrics` HTTP listener: one thread, one request at a time, with
//! deadlines (see [`MetricsServer`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::{MetricsRegistry, CONTENT_TYPE};

/// How long a client may take to send its request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How long a client may take to read the response.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(5);
/// The longest request head read; longer ones get 431.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How often the server looks at its stop flag while idle or waiting on a
/// client: the bound on how long [`MetricsServer`]'s drop takes.
const STOP_POLL: Duration = Duration::from_millis(100);

/// The HTTP listener: one thread that answers `GET /metrics` (and `HEAD`)
/// with [`MetricsRegistry::encode`], 404 for any other path, 405 for other
/// methods on `/metrics`.
///
/// Requests are served one at a time, one per connection
/// (`Connection: close`), each within [`REQUEST_DEADLINE`] to read and
/// [`RESPONSE_DEADLINE`] to write, with a request head of at most
/// [`MAX_REQUEST_HEAD`] bytes: a slow or idle client delays the next scrape
/// by a few seconds at worst and never grows memory or threads. Other
/// clients wait in the kernel's accept backlog.
///
/// Dropping it stops the thread and closes the socket (within about
/// 100 ms).
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0: any free port, see
    /// [`local_addr`](Self::local_addr)) and starts serving `registry`.
    pub fn start(addr: SocketAddr, registry: Arc<Mutex<MetricsRegistry>>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("synwall-metrics".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || serve(&listener, &registry, &stop)
            })?;
        Ok(MetricsServer {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panic was already caught per request; nothing is left to
            // report here.
            let _ = thread.join();
        }
    }
}

/// The server thread: waits for connections, a poll slice at a time so it
/// sees `stop`, and answers each in turn.
fn serve(listener: &TcpListener, registry: &Mutex<MetricsRegistry>, stop: &AtomicBool) {
    let slice = PollTimeout::try_from(STOP_POLL).unwrap_or(PollTimeout::NONE);
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, slice) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => {
                // Should not happen on a valid listening socket; do not spin.
                std::thread::sleep(STOP_POLL);
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, _)) => {
                // A bug in encoding must not take the listener down with it.
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    let _ = answer(stream, registry, stop);
                }));
            }
            // WouldBlock: the client went away between poll and accept.
            // Others (EMFILE, ECONNABORTED): try again after the next poll.
            Err(_) => continue,
        }
    }
}

/// Reads one request from `stream` and writes the answer.
fn answer(
    mut stream: TcpStream,
    registry: &Mutex<MetricsRegistry>,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let response = match read_head(&mut stream, stop)? {
        Head::Complete(buf) => respond(&buf, registry),
        Head::TooLarge => plain(
            431,
            "Request Header Fields Too Large",
            "request head too large\n",
        ),
        Head::Gone => return Ok(()),
    };
    let deadline = Instant::now() + RESPONSE_DEADLINE;
    write_by(&mut stream, &response, deadline, stop)?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

/// What came in on a connection.
enum Head {
    /// The bytes up to and including the blank line.
    Complete(Vec<u8>),
    /// Over [`MAX_REQUEST_HEAD`] without a blank line.
    TooLarge,
    /// Closed, timed out or the server is stopping: nothing to answer.
    Gone,
}

/// Reads until the end of the request head, within [`REQUEST_DEADLINE`].
fn read_head(stream: &mut TcpStream, stop: &AtomicBool) -> io::Result<Head> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = vec![0u8; MAX_REQUEST_HEAD];
    let mut len = 0;
    loop {
        if let Some(end) = find_head_end(&buf[..len]) {
            buf.truncate(end);
            return Ok(Head::Complete(buf));
        }
        if len == buf.len() {
            return Ok(Head::TooLarge);
        }
        let Some(wait) = remaining(deadline, stop) else {
            return Ok(Head::Gone);
        };
        stream.set_read_timeout(Some(wait))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Ok(Head::Gone),
            Ok(n) => len += n,
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Where the head ends (after `\r\n\r\n`), if it has.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Writes all of `bytes` before `deadline`, or gives up.
fn write_by(
    stream: &mut TcpStream,
    mut bytes: &[u8],
    deadline: Instant,
    stop: &AtomicBool,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let Some(wait) = remaining(deadline, stop) else {
            return Err(io::ErrorKind::TimedOut.into());
        };
        stream.set_write_timeout(Some(wait))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The next wait: at most [`STOP_POLL`], `None` once past `deadline` or
/// stopping.
fn remaining(deadline: Instant, stop: &AtomicBool) -> Option<Duration> {
    let left = deadline.checked_duration_since(Instant::now())?;
    if stop.load(Ordering::Relaxed) || left.is_zero() {
        return None;
    }
    Some(left.min(STOP_POLL))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The response to a complete request head.
fn respond(head: &[u8], registry: &Mutex<MetricsRegistry>) -> Vec<u8> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => {
            return plain(400, "Bad Request", "malformed request\n");
        }
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return plain(400, "Bad Request", "malformed request\n");
    };
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return plain(404, "Not Found", "not found: metrics are at /metrics\n");
    }
    if method != "GET" && method != "HEAD" {
        let mut r = plain(405, "Method Not Allowed", "use GET\n");
        // Insert Allow after the status line.
        let at = r.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        r.splice(at..at, b"Allow: GET, HEAD\r\n".iter().copied());
        return r;
    }
    let body = registry
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .encode();
    let mut r = status_and_headers(200, "OK", CONTENT_TYPE, body.len());
    if method == "GET" {
        r.extend_from_slice(body.as_bytes());
    }
    r
}

/// A short plain-text response.
fn plain(code: u16, reason: &str, body: &str) -> Vec<u8> {
    let mut r = status_and_headers(code, reason, "text/plain; charset=utf-8", body.len());
    r.extend_from_slice(body.as_bytes());
    r
}

fn status_and_headers(code: u16, reason: &str, content_type: &str, len: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         Connection: close\r\nCache-Control: no-store\r\n\r\n"
    )
    .into_bytes()
}
