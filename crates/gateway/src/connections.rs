//! The accept loop behind [`crate::Gateway::serve`]: at most
//! `server.max_connections` connections at once, a request's headers read
//! within `server.header_read_timeout_ms`, a request's body arriving at
//! `server.body_min_bytes_per_sec` at least, connections idle for
//! `server.idle_timeout_secs` closed, and a shutdown that waits only for
//! requests under way.
//!
//! A connection is *idle* while no request is being served on it: between
//! keep-alive requests, and while a request's headers are still arriving
//! (a half-sent request is not under way). A request's body must keep
//! arriving: it gets `server.body_read_timeout_ms`, plus one second for
//! every `server.body_min_bytes_per_sec` bytes received (the rule of
//! Apache's `mod_reqtimeout`), and never more than the idle timeout in all.
//! So a body that stalls, or trickles in below the floor rate, is cut; a
//! large upload at any honest speed is not.
//!
//! When every slot is taken, the connection idle the longest is closed to
//! make room, as nginx reuses keep-alive connections; when none is idle, the
//! one whose request body is furthest behind (the earliest body deadline,
//! so a body that stalled or trickles goes before one arriving briskly) is
//! cut; a new connection is closed at once only when every connection is
//! serving a request whose body is in. So connections that hold a body open
//! cannot keep WeChat's pushes or business servers out. The accept loop
//! does not wait for the closed connections' slots: up to [`MAX_WAITING`]
//! new connections wait for them in their own tasks, so the loop keeps
//! accepting through a flood that reconnects as fast as it is closed. So the
//! process holds at most that many sockets more than the cap, which the
//! configuration keeps below the open-file limit less [`FD_MARGIN`].

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
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The connection settings of `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time for a request's headers to arrive in full.
    pub header_read_timeout: Duration,
    /// Time a connection may stay idle before it is closed; also the most
    /// a request's body may take in all.
    pub idle_timeout: Duration,
    /// Time a request's body gets before its first byte, and beyond what
    /// the bytes received so far have earned at `body_min_rate`.
    pub body_read_timeout: Duration,
    /// Bytes a second a request's body must arrive at, on average (each
    /// such many bytes received earn the body one more second).
    pub body_min_rate: u64,
    /// On shutdown, time requests under way get to finish (those whose body
    /// is still arriving are cut at once).
    pub grace: Duration,
}

/// What answers the requests of every connection.
pub trait Answer: Send + Sync + 'static {
    /// The answer to `request` (whose body is cut if it arrives too
    /// slowly, see the module doc) from `peer`.
    fn answer(
        &self,
        request: Request<Body>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// Serves `app` on `listener` until `stop` completes; then stops
/// accepting, closes idle connections at once, lets requests under way
/// finish for up to `limits.grace`, and returns.
pub(crate) async fn serve<A: Answer>(
    listener: TcpListener,
    app: Arc<A>,
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
    let mut room = RoomMaker {
        batch: (limits.max_connections / 64).clamp(1, MAX_WAITING),
        owed: 0,
    };
    let waiting = Arc::new(AtomicUsize::new(0));
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
        let slot = match room.make(&slots, &registry, &metrics) {
            Room::Free(slot) => Some(slot),
            // Backpressure: enough accepted connections wait for a slot already.
            Room::Freeing if waiting.load(Ordering::Acquire) >= MAX_WAITING => {
                match freed_slot(&slots).await {
                    Some(slot) => Some(slot),
                    None => {
                        refuse(&metrics, peer);
                        continue;
                    }
                }
            }
            Room::Freeing => None,
            Room::Full => {
                refuse(&metrics, peer);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let waits = slot.is_none().then(|| Waiting::start(&waiting));
        let (slots, registry, metrics) = (slots.clone(), registry.clone(), metrics.clone());
        let (app, builder, closing) = (app.clone(), builder.clone(), closing.child_token());
        tokio::spawn(async move {
            let slot = match slot {
                Some(slot) => slot,
                None => {
                    let slot = freed_slot(&slots).await;
                    drop(waits);
                    let Some(slot) = slot else {
                        return refuse(&metrics, peer);
                    };
                    slot
                }
            };
            let (id, conn) = registry.open(closing);
            let connection = Connection {
                peer,
                conn,
                app,
                builder,
                limits,
            };
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

/// Connections accepted that may wait for a slot being freed at once; past
/// this many, the accept loop itself waits (so the process holds at most
/// this many sockets more than `max_connections`, within [`FD_MARGIN`]).
/// Not waiting in the accept loop keeps it accepting while evicted
/// connections close, so the kernel's accept queue does not overflow (a
/// dropped connect costs its client a 1 s SYN retransmission).
const MAX_WAITING: usize = 32;

/// What there is for a new connection.
enum Room {
    /// A free slot.
    Free(OwnedSemaphorePermit),
    /// A slot being freed: connections were asked to close.
    Freeing,
    /// None: every connection is serving a request whose body is in.
    Full,
}

/// Makes room for new connections, closing a few at a time (as nginx does),
/// so a flood does not pay a scan for every connection it opens.
struct RoomMaker {
    /// Connections closed at once when there is no room.
    batch: usize,
    /// Connections asked to close whose slot no new connection claimed yet.
    owed: usize,
}

impl RoomMaker {
    /// A free slot, or else one freed by closing the connections idle the
    /// longest, else those whose request body is furthest behind.
    fn make(&mut self, slots: &Arc<Semaphore>, registry: &Registry, metrics: &Metrics) -> Room {
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            self.owed = self.owed.saturating_sub(1);
            return Room::Free(slot);
        }
        if self.owed == 0 {
            let closed = registry.close_for_room(self.batch);
            if closed == 0 {
                return Room::Full;
            }
            metrics.connections_evicted.inc_by(closed as u64);
            self.owed = closed;
        }
        self.owed -= 1;
        Room::Freeing
    }
}

/// The slot a closed connection gives back (its task gives it back as soon
/// as it runs); `None` if none is freed within a second.
async fn freed_slot(slots: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    let freed = tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned());
    freed.await.ok()?.ok()
}

fn refuse(metrics: &Metrics, peer: SocketAddr) {
    metrics.connections_refused.inc();
    tracing::debug!(%peer, "connection refused: every connection is busy");
}

/// Counts a connection waiting for a slot, until dropped.
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn start(waiting: &Arc<AtomicUsize>) -> Self {
        waiting.fetch_add(1, Ordering::AcqRel);
        Self(waiting.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
            body_deadline_ms: AtomicU64::new(NO_BODY),
            close,
        });
        let mut open = self.open.lock().expect("registry lock");
        open.insert(id, conn.clone());
        (id, conn)
    }

    fn forget(&self, id: u64) {
        self.open.lock().expect("registry lock").remove(&id);
    }

    /// Asks `count` connections to close, to make room, in this order: the
    /// ones idle the longest; then the ones whose request body has the
    /// earliest deadline (it stalled or trickles); last, the ones that
    /// became idle under [`FRESH`] ago (just accepted, their request not
    /// read yet). A request whose body is in is never cut. Returns how many
    /// it asked.
    fn close_for_room(&self, count: usize) -> usize {
        let now = millis_since(self.epoch);
        let fresh = u64::try_from(FRESH.as_millis()).unwrap_or(u64::MAX);
        let open = self.open.lock().expect("registry lock");
        let candidates = open
            .values()
            .filter(|c| !c.close.is_cancelled())
            .filter_map(|c| {
                let rank = if c.busy.load(Ordering::Acquire) == 0 {
                    let since = c.idle_since_ms.load(Ordering::Acquire);
                    (u8::from(now.saturating_sub(since) < fresh) * 2, since)
                } else {
                    let deadline = c.body_deadline_ms.load(Ordering::Acquire);
                    (deadline != NO_BODY).then_some((1, deadline))?
                };
                Some((rank, c))
            });
        close_first(candidates.collect(), count)
    }
}

/// A connection idle for less than this is closed to make room only when
/// nothing else can be: it may be one just accepted, whose request is on
/// its way.
const FRESH: Duration = Duration::from_secs(1);

/// Closes the `count` connections with the lowest ranks; how many it closed.
fn close_first(mut candidates: Vec<((u8, u64), &Arc<Conn>)>, count: usize) -> usize {
    let count = count.min(candidates.len());
    if count < candidates.len() {
        candidates.select_nth_unstable_by_key(count, |(rank, _)| *rank);
    }
    for (_, conn) in &candidates[..count] {
        conn.close.cancel();
    }
    count
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
    /// While a request's body is arriving, when it will be cut unless more
    /// arrives, milliseconds after `epoch`; [`NO_BODY`] otherwise.
    body_deadline_ms: AtomicU64,
    /// Cancelled to close it: at once when idle or while its request's body
    /// is arriving, after its request otherwise.
    close: CancellationToken,
}

/// [`Conn::body_deadline_ms`] when no request body is arriving.
const NO_BODY: u64 = u64::MAX;

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

/// A request's body, which must keep arriving (see the module doc), and is
/// cut when its connection is closed to make room or the server shuts down:
/// a request is not idle, so without this a body sent a byte at a time would
/// hold its connection, and shutdown, for ever.
struct Deadline {
    body: Incoming,
    conn: Arc<Conn>,
    /// When the request arrived.
    started: Instant,
    /// Bytes of the body received so far.
    received: u64,
    limits: Limits,
    /// The timer and the close signal, made the first time the body is
    /// not ready (most bodies arrive with their headers, and need neither).
    waiting: Option<BodyWait>,
}

struct BodyWait {
    timer: Pin<Box<tokio::time::Sleep>>,
    closing: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl Deadline {
    fn new(body: Incoming, conn: Arc<Conn>, limits: Limits) -> Self {
        let arriving = !http_body::Body::is_end_stream(&body);
        let deadline = Self {
            body,
            // Without a body (a GET) there is no deadline: no clock read.
            started: if arriving { Instant::now() } else { conn.epoch },
            conn,
            received: 0,
            limits,
            waiting: None,
        };
        if arriving {
            deadline.publish();
        }
        deadline
    }

    /// When the body is cut unless more arrives: the read timeout plus a
    /// second per `body_min_rate` bytes received, within the idle timeout.
    fn deadline(&self) -> Instant {
        let earned = self.limits.body_read_timeout
            + Duration::from_millis(
                self.received.saturating_mul(1000) / self.limits.body_min_rate.max(1),
            );
        self.started + earned.min(self.limits.idle_timeout)
    }

    /// Shows the deadline to the accept loop, which cuts the earliest first.
    fn publish(&self) {
        let ms = self.deadline().saturating_duration_since(self.conn.epoch);
        let ms = u64::try_from(ms.as_millis()).unwrap_or(NO_BODY - 1);
        self.conn.body_deadline_ms.store(ms, Ordering::Release);
    }

    /// The body is in (or failed): nothing left to cut.
    fn finished(&self) {
        self.conn.body_deadline_ms.store(NO_BODY, Ordering::Release);
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.finished();
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            match &frame {
                Some(Ok(frame)) if !http_body::Body::is_end_stream(&this.body) => {
                    let len = frame.data_ref().map_or(0, Bytes::len);
                    this.received += len as u64;
                    this.publish();
                }
                _ => this.finished(),
            }
            return Poll::Ready(frame.map(|f| f.map_err(std::io::Error::other)));
        }
        let deadline = this.deadline();
        let waiting = this.waiting.get_or_insert_with(|| BodyWait {
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            closing: Box::pin(this.conn.close.clone().cancelled_owned()),
        });
        if waiting.timer.deadline() != deadline {
            waiting.timer.as_mut().reset(deadline);
        }
        if waiting.timer.as_mut().poll(cx).is_ready() {
            this.finished();
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body arrived too slowly (server.body_read_timeout_ms, \
                 server.body_min_bytes_per_sec, server.idle_timeout_secs)",
            ))));
        }
        if waiting.closing.as_mut().poll(cx).is_ready() {
            this.finished();
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the connection was closed to make room, or the server is shutting down",
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
struct Connection<A> {
    peer: SocketAddr,
    conn: Arc<Conn>,
    app: Arc<A>,
    builder: Arc<http1::Builder>,
    limits: Limits,
}

impl<A: Answer> Connection<A> {
    /// Serves the connection until the client closes it, it stays idle too
    /// long, or it is asked to close.
    async fn run(self, stream: TcpStream) {
        let Connection {
            peer,
            conn,
            app,
            builder,
            limits,
        } = self;
        let idle_timeout = limits.idle_timeout;
        let service = hyper::service::service_fn({
            let conn = conn.clone();
            move |request: Request<Incoming>| {
                let busy = Busy::start(conn.clone());
                let app = app.clone();
                let request =
                    request.map(|body| Body::new(Deadline::new(body, conn.clone(), limits)));
                async move {
                    let response = app.answer(request, peer).await;
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
                    // A body still arriving is cut: closed at once, unanswered,
                    // so its slot is free for the connection that needs it.
                    let arriving = conn.body_deadline_ms.load(Ordering::Acquire) != NO_BODY;
                    if conn.idle_for().is_none() && !arriving {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry with one connection per entry: idle since `ms` after the
    /// epoch (`Some`), or busy with a body due then (`None`, `ms`), or busy
    /// with its body in (`None`, `NO_BODY`).
    fn registry(conns: &[(Option<u64>, u64)]) -> (Registry, Vec<Arc<Conn>>) {
        let registry = Registry::default();
        let opened = conns
            .iter()
            .map(|&(idle_since, body_deadline)| {
                let (_, conn) = registry.open(CancellationToken::new());
                match idle_since {
                    Some(ms) => conn.idle_since_ms.store(ms, Ordering::Release),
                    None => {
                        conn.busy.store(1, Ordering::Release);
                        conn.body_deadline_ms
                            .store(body_deadline, Ordering::Release);
                    }
                }
                conn
            })
            .collect();
        (registry, opened)
    }

    fn closed(conns: &[Arc<Conn>]) -> Vec<usize> {
        (0..conns.len())
            .filter(|&i| conns[i].close.is_cancelled())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn room_is_made_from_idle_then_stalled_bodies_then_new_connections() {
        let (registry, conns) = registry(&[
            (Some(59_500), 0), // 0: idle for 0.5 s: just accepted
            (None, 70_000),    // 1: body due in 10 s
            (None, NO_BODY),   // 2: body in, being served
            (Some(30_000), 0), // 3: idle for 30 s
            (None, 62_000),    // 4: body due in 2 s: furthest behind
            (Some(50_000), 0), // 5: idle for 10 s
        ]);
        tokio::time::advance(Duration::from_secs(60)).await;
        // Idle the longest first.
        assert_eq!(registry.close_for_room(2), 2);
        assert_eq!(closed(&conns), [3, 5]);
        // Then the body furthest behind, then the next.
        assert_eq!(registry.close_for_room(1), 1);
        assert_eq!(closed(&conns), [3, 4, 5]);
        assert_eq!(registry.close_for_room(1), 1);
        assert_eq!(closed(&conns), [1, 3, 4, 5]);
        // Last, the one just accepted; never the request being served.
        assert_eq!(registry.close_for_room(5), 1);
        assert_eq!(closed(&conns), [0, 1, 3, 4, 5]);
        assert_eq!(registry.close_for_room(1), 0);
    }
}
