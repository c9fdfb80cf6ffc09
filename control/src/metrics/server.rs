//! The `/metrics` HTTP listener: hyper's HTTP/1 server on a one-thread
//! tokio runtime, every connection a task with deadlines (see
//! [`MetricsServer`]).
//!
//! Why hyper and not tiny_http: tiny_http 0.12 reads a request head line
//! without a bound (a 10 MB head is buffered whole; no 431), has no read
//! timeout (a silent client holds a pool thread forever, and the pool
//! grows a thread per such client), and its accept thread exits on the
//! first accept error (EMFILE under a flood would end `/metrics` for
//! good). hyper bounds the head ([`MAX_REQUEST_HEAD`], answering 431),
//! times out its reading, and costs a small task, not a thread, per
//! connection.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE as TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

use super::{MetricsRegistry, CONTENT_TYPE};

/// How long a client may take to send its request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How long a client may take to read the response.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(5);
/// The longest request head read; longer ones get 431 (hyper's smallest
/// read buffer).
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Connections served at once; more are closed on accept. Each costs a
/// descriptor and a task of a few KiB for at most the two deadlines.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long accepting pauses after accept(2) fails (out of descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The HTTP listener: answers `GET /metrics` (and `HEAD`) with
/// [`MetricsRegistry::encode`], 404 for any other path, 405 for other
/// methods on `/metrics`, 400 for what is not HTTP, 431 for a head over
/// [`MAX_REQUEST_HEAD`].
///
/// Connections are served concurrently (at most [`MAX_CONNECTIONS`]), one
/// request each (`Connection: close`): the head must arrive within
/// [`REQUEST_DEADLINE`] and the response be read within
/// [`RESPONSE_DEADLINE`]; a connection that misses either is closed
/// without an answer. Idle and slow clients therefore never delay a
/// scrape, and cost memory and descriptors only for a few seconds.
///
/// Dropping it stops the thread, closes the listener and every connection.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0: any free port, see
    /// [`local_addr`](Self::local_addr)) and starts serving `registry`.
    pub fn start(addr: SocketAddr, registry: Arc<Mutex<MetricsRegistry>>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("synwall-metrics".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            tokio::spawn(accept_loop(listener, registry));
                            // Until the handle is dropped.
                            let _ = stopped.await;
                        }
                        Err(e) => crate::console::err(format!("synwall: metrics listener: {e}")),
                    }
                });
                // Dropping the runtime cancels every task: the listener and
                // the connections close.
            })?;
        Ok(MetricsServer {
            local_addr,
            stop: Some(stop),
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
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counts a connection in while its task runs.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, registry: Arc<Mutex<MetricsRegistry>>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors and the like: the waiting clients stay
                // in the backlog; try again shortly, never give up.
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        if open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::Relaxed);
            continue; // closed on drop
        }
        let slot = Slot(open.clone());
        let registry = registry.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            serve(stream, registry).await;
            drop(slot);
        });
    }
}

/// One connection: one request, within the deadlines.
async fn serve(stream: tokio::net::TcpStream, registry: Arc<Mutex<MetricsRegistry>>) {
    let head_read = Arc::new(AtomicBool::new(false));
    let service = {
        let head_read = head_read.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            head_read.store(true, Ordering::Relaxed);
            let response = respond(&request, &registry);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REQUEST_DEADLINE)
        .max_buf_size(MAX_REQUEST_HEAD)
        .keep_alive(false);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    match tokio::time::timeout(REQUEST_DEADLINE, connection.as_mut()).await {
        Ok(_) => return,
        // No head yet (a silent client, or one too slow): dropping the
        // connection closes it without an answer.
        Err(_) if !head_read.load(Ordering::Relaxed) => return,
        Err(_) => {}
    }
    let _ = tokio::time::timeout(RESPONSE_DEADLINE, connection).await;
}

/// The response to a request head.
fn respond(
    request: &Request<Incoming>,
    registry: &Mutex<MetricsRegistry>,
) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let body = registry
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .encode();
    with_headers(StatusCode::OK, CONTENT_TYPE, body)
}

/// A short plain-text response.
fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_headers(status, "text/plain; charset=utf-8", body.to_owned())
}

fn with_headers(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let len = body.len();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
