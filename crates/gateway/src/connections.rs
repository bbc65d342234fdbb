//! The accept loop behind [`crate::Gateway::serve`]: at most
//! `server.max_connections` connections at once, a request's headers read
//! within `server.header_read_timeout_ms`, connections idle for
//! `server.idle_timeout_secs` closed, and a shutdown that waits only for
//! requests under way.
//!
//! A connection is *idle* while no request is being served on it: between
//! keep-alive requests, and while a request's headers are still arriving
//! (a half-sent request is not under way). A request's body must arrive
//! within the idle timeout too. When every slot is taken, the
//! connection idle the longest is closed to make room, as nginx reuses
//! keep-alive connections; when none is idle, the new connection is closed at
//! once. Either way the process holds at most one socket more than the cap,
//! which the configuration keeps below the open-file limit.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::metrics::Metrics;

/// The connection settings of `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time for a request's headers to arrive in full.
    pub header_read_timeout: Duration,
    /// Time a connection may stay idle before it is closed.
    pub idle_timeout: Duration,
    /// On shutdown, time requests under way get to finish (those whose body
    /// is still arriving are cut at once).
    pub grace: Duration,
}

/// Serves `router` on `listener` until `stop` completes; then stops
/// accepting, closes idle connections at once, lets requests under way
/// finish for up to `limits.grace`, and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let closing = CancellationToken::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors or similar: let some close first.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Some(slot) = make_room(limits.max_connections, &slots, &registry, &metrics).await
        else {
            metrics.connections_refused.inc();
            tracing::debug!(%peer, "connection refused: every connection is busy");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (id, conn) = registry.open(closing.child_token());
        let connection = Connection {
            peer,
            conn,
            router: router.clone(),
            builder: builder.clone(),
            idle_timeout: limits.idle_timeout,
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            connection.run(stream).await;
            registry.forget(id);
            drop(slot);
        });
    }
    drop(listener);
    closing.cancel();
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = limits.grace.as_secs(),
            "requests still in flight at the shutdown deadline; exiting anyway"
        );
    }
}

/// A slot for a new connection: a free one, or one freed by closing the
/// connections idle the longest. `None` when all are busy.
async fn make_room(
    max: usize,
    slots: &Arc<Semaphore>,
    registry: &Registry,
    metrics: &Metrics,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    // A few at a time (as nginx does), so a flood does not pay a scan and a
    // wait for every connection it opens.
    let closed = registry.close_idlest((max / 64).clamp(1, 32));
    if closed == 0 {
        return None;
    }
    metrics.connections_evicted.inc_by(closed as u64);
    // A closed connection's task gives its slot back as soon as it runs.
    let freed = tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned());
    freed.await.ok()?.ok()
}

/// Errors that concern one connection only (it went away before it was accepted).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Every open connection, by id.
#[derive(Debug)]
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl Registry {
    fn open(&self, close: CancellationToken) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            epoch: self.epoch,
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(millis_since(self.epoch)),
            close,
        });
        let mut open = self.open.lock().expect("registry lock");
        open.insert(id, conn.clone());
        (id, conn)
    }

    fn forget(&self, id: u64) {
        self.open.lock().expect("registry lock").remove(&id);
    }

    /// Asks the `count` connections idle the longest to close; how many it asked.
    fn close_idlest(&self, count: usize) -> usize {
        let open = self.open.lock().expect("registry lock");
        let mut idle: Vec<(u64, &Arc<Conn>)> = open
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0 && !c.close.is_cancelled())
            .map(|c| (c.idle_since_ms.load(Ordering::Acquire), c))
            .collect();
        let count = count.min(idle.len());
        if count < idle.len() {
            idle.select_nth_unstable_by_key(count, |(since, _)| *since);
        }
        for (_, conn) in &idle[..count] {
            conn.close.cancel();
        }
        count
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One open connection's state.
#[derive(Debug)]
struct Conn {
    epoch: Instant,
    /// Requests being served on it; 0 when idle.
    busy: AtomicUsize,
    /// When it last became idle, milliseconds after `epoch`.
    idle_since_ms: AtomicU64,
    /// Cancelled to close it: at once when idle, after its request otherwise.
    close: CancellationToken,
}

impl Conn {
    /// How long it has been idle; `None` while a request is being served.
    fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Acquire);
        Some(Duration::from_millis(
            millis_since(self.epoch).saturating_sub(since),
        ))
    }
}

/// Marks a connection busy from a request's arrival until its answer's body
/// is sent (or dropped).
struct Busy(Arc<Conn>);

impl Busy {
    fn start(conn: Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Self(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = millis_since(self.0.epoch);
        self.0.idle_since_ms.store(now, Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its connection busy until it is sent.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request's body, which must arrive in full within the idle timeout of
/// the request's start, and is cut when the server shuts down: a request is
/// not idle, so without this a body sent a byte at a time would hold its
/// connection, and shutdown, for ever.
struct Deadline {
    body: Incoming,
    deadline: Instant,
    closing: CancellationToken,
    /// The timer and the shutdown signal, made the first time the body is
    /// not ready (most bodies arrive with their headers, and need neither).
    waiting: Option<Waiting>,
}

struct Waiting {
    timer: Pin<Box<tokio::time::Sleep>>,
    closing: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(std::io::Error::other)));
        }
        let this = &mut *self;
        let waiting = this.waiting.get_or_insert_with(|| Waiting {
            timer: Box::pin(tokio::time::sleep_until(this.deadline)),
            closing: Box::pin(this.closing.clone().cancelled_owned()),
        });
        if waiting.timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive within server.idle_timeout_secs",
            ))));
        }
        if waiting.closing.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the server is shutting down",
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What a connection's task needs.
struct Connection {
    peer: SocketAddr,
    conn: Arc<Conn>,
    router: Router,
    builder: Arc<http1::Builder>,
    idle_timeout: Duration,
}

impl Connection {
    /// Serves the connection until the client closes it, it stays idle too
    /// long, or it is asked to close.
    async fn run(self, stream: TcpStream) {
        let Connection {
            peer,
            conn,
            router,
            builder,
            idle_timeout,
        } = self;
        let service = hyper::service::service_fn({
            let conn = conn.clone();
            move |mut request: Request<Incoming>| {
                let busy = Busy::start(conn.clone());
                request.extensions_mut().insert(ConnectInfo(peer));
                let mut router = router.clone();
                let deadline = Instant::now() + idle_timeout;
                let closing = conn.close.clone();
                async move {
                    let request = request.map(|body| {
                        Body::new(Deadline {
                            body,
                            deadline,
                            closing,
                            waiting: None,
                        })
                    });
                    let response = router.call(request).await?;
                    Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
                }
            }
        });
        let http = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(http);
        loop {
            let wake = conn
                .idle_for()
                .map_or(idle_timeout, |idle| idle_timeout.saturating_sub(idle));
            tokio::select! {
                _ = http.as_mut() => return,
                () = conn.close.cancelled() => {
                    if conn.idle_for().is_none() {
                        // Finish the request under way, then close.
                        http.as_mut().graceful_shutdown();
                        let _ = http.as_mut().await;
                    }
                    return;
                }
                () = tokio::time::sleep(wake) => {
                    if conn.idle_for().is_some_and(|idle| idle >= idle_timeout) {
                        return;
                    }
                }
            }
        }
    }
}

/// File descriptors kept back from `max_connections` for everything else a
/// gateway opens: its store, its calls to WeChat, webhooks, logs.
pub const FD_MARGIN: u64 = 128;

/// The open-file limit in force (`ulimit -n`), if there is one.
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raises the open-file limit to the hard limit, as far as it may be raised
/// without privilege (many systems start services at a soft 1024). Returns
/// the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "the open-file limit could not be raised");
        }
    }
    open_file_limit()
}
