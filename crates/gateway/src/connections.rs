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
//! The header timeout runs from the accept for a connection's first
//! request, and from a request's first bytes after that: a keep-alive
//! connection waiting for its next request is idle, not late (hyper's own
//! header timer, not used, starts as soon as the last answer is sent, so
//! it would close keep-alives at the header timeout). Both timeouts are
//! checked by one sweep of every connection, a twentieth of the shorter
//! timeout apart, on a coarse clock the sweep advances: no request reads
//! the clock, or arms a timer, for them. A connection is never cut before
//! its timeout, and within a tenth of it after.
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
use hyper_util::rt::TokioIo;
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
    // No timer for hyper: the header and idle timeouts are the sweep's.
    let mut builder = http1::Builder::new();
    builder.header_read_timeout(None);
    // hyper's `writev` stays on: off, each answer's body is copied into the
    // connection's write buffer, which then keeps its largest size for the
    // connection's life (anyone could make every idle connection hold the
    // largest answer; 500 instructions less per request were not worth it,
    // `bench/RESULTS.md`).
    let builder = Arc::new(builder);
    tokio::spawn(keep_sweeping(
        registry.clone(),
        limits,
        metrics.clone(),
        closing.clone(),
    ));
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

/// Milliseconds since the server started, as of the last sweep: what the
/// per-request bookkeeping reads (one atomic load, no clock), within a
/// sweep's tick of the true time and never ahead of it.
#[derive(Debug)]
struct CoarseClock {
    epoch: Instant,
    now_ms: AtomicU64,
}

impl CoarseClock {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            now_ms: AtomicU64::new(0),
        }
    }

    /// The time of the last [`CoarseClock::read`].
    fn coarse_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }

    /// Reads the clock, and makes it the coarse time.
    fn read(&self) -> u64 {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.now_ms.fetch_max(now, Ordering::Relaxed);
        now
    }
}

/// Every open connection, by id.
#[derive(Debug)]
struct Registry {
    clock: Arc<CoarseClock>,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            clock: Arc::new(CoarseClock::new()),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl Registry {
    fn open(&self, close: CancellationToken) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.read();
        let conn = Arc::new(Conn {
            clock: self.clock.clone(),
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(now),
            // Its first request is due at once (its header timeout runs).
            head_since_ms: AtomicU64::new(now),
            body_deadline_ms: AtomicU64::new(NEVER),
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
        let now = self.clock.read();
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
                    (deadline != NEVER).then_some((1, deadline))?
                };
                Some((rank, c))
            });
        close_first(candidates.collect(), count)
    }

    /// Advances the coarse clock and closes the connections that were idle
    /// for `limits.idle_timeout`, or whose request's headers began arriving
    /// `limits.header_read_timeout` ago and are not in. The times read are
    /// up to `tick` behind, so a connection is given `tick` more: it is
    /// never cut early, and cut within two ticks of its due time. Returns
    /// how many were cut for their headers.
    fn sweep(&self, limits: &Limits, tick: Duration) -> u64 {
        let now = self.clock.read();
        let ms = |d: Duration| u64::try_from((d + tick).as_millis()).unwrap_or(u64::MAX);
        let (idle_limit, head_limit) = (ms(limits.idle_timeout), ms(limits.header_read_timeout));
        let mut late_heads = 0;
        let open = self.open.lock().expect("registry lock");
        for conn in open.values() {
            if conn.busy.load(Ordering::Acquire) > 0 || conn.close.is_cancelled() {
                continue;
            }
            let idle_since = conn.idle_since_ms.load(Ordering::Acquire);
            let head_since = conn.head_since_ms.load(Ordering::Acquire);
            let late_head = head_since != NEVER && now.saturating_sub(head_since) >= head_limit;
            if late_head || now.saturating_sub(idle_since) >= idle_limit {
                late_heads += u64::from(late_head);
                conn.close.cancel();
            }
        }
        late_heads
    }
}

/// How often the connections are swept for the idle and header timeouts: a
/// twentieth of the shorter, between 10 ms and a second.
fn sweep_tick(limits: &Limits) -> Duration {
    let shorter = limits.header_read_timeout.min(limits.idle_timeout);
    (shorter / 20).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Sweeps the connections (see [`Registry::sweep`]) every tick until
/// `closing` is cancelled. One timer for every connection: no request
/// arms, resets or drops one of its own.
async fn keep_sweeping(
    registry: Arc<Registry>,
    limits: Limits,
    metrics: Arc<Metrics>,
    closing: CancellationToken,
) {
    let tick = sweep_tick(&limits);
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = closing.cancelled() => return,
        }
        let late_heads = registry.sweep(&limits, tick);
        metrics.connections_header_timeouts.inc_by(late_heads);
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

/// One open connection's state. Times are milliseconds on its [`CoarseClock`].
#[derive(Debug)]
struct Conn {
    clock: Arc<CoarseClock>,
    /// Requests being served on it; 0 when idle.
    busy: AtomicUsize,
    /// When it last became idle.
    idle_since_ms: AtomicU64,
    /// While idle, when its next request's header timeout started: at the
    /// accept for the first request, at the first bytes of the next for a
    /// keep-alive one; [`NEVER`] before they arrive.
    head_since_ms: AtomicU64,
    /// While a request's body is arriving, when it will be cut unless more
    /// arrives; [`NEVER`] otherwise.
    body_deadline_ms: AtomicU64,
    /// Cancelled to close it: at once when idle or while its request's body
    /// is arriving, after its request otherwise.
    close: CancellationToken,
}

/// A time that has not come: no request's head or body is arriving.
const NEVER: u64 = u64::MAX;

impl Conn {
    /// No request is being served on it.
    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// Bytes arrived: while idle, the first ones start the header timeout.
    fn bytes_arrived(&self) {
        if self.is_idle() && self.head_since_ms.load(Ordering::Relaxed) == NEVER {
            let now = self.clock.coarse_ms();
            self.head_since_ms.store(now, Ordering::Release);
        }
    }
}

/// Marks a connection busy from a request's arrival until its answer's body
/// is sent (or dropped).
struct Busy(Arc<Conn>);

impl Busy {
    fn start(conn: Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        conn.head_since_ms.store(NEVER, Ordering::Release);
        Self(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.clock.coarse_ms();
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
    /// The deadline of `body`, which is still to arrive.
    fn new(body: Incoming, conn: Arc<Conn>, limits: Limits) -> Self {
        let deadline = Self {
            body,
            started: Instant::now(),
            conn,
            received: 0,
            limits,
            waiting: None,
        };
        deadline.publish();
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
        let ms = self
            .deadline()
            .saturating_duration_since(self.conn.clock.epoch);
        let ms = u64::try_from(ms.as_millis()).unwrap_or(NEVER - 1);
        self.conn.body_deadline_ms.store(ms, Ordering::Release);
    }

    /// The body is in (or failed): nothing left to cut.
    fn finished(&self) {
        self.conn.body_deadline_ms.store(NEVER, Ordering::Release);
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
        let service = hyper::service::service_fn({
            let conn = conn.clone();
            move |request: Request<Incoming>| {
                let busy = Busy::start(conn.clone());
                let app = app.clone();
                // Without a body (a GET) there is nothing to wait for: no
                // deadline, and an empty body is not even boxed.
                let request = request.map(|body| match http_body::Body::is_end_stream(&body) {
                    true => Body::empty(),
                    false => Body::new(Deadline::new(body, conn.clone(), limits)),
                });
                async move {
                    let response = app.answer(request, peer).await;
                    Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
                }
            }
        });
        let io = Watched {
            stream,
            conn: conn.clone(),
        };
        let http = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(http);
        // The idle and header timeouts close it through `conn.close` too
        // (the sweep, see `Registry::sweep`).
        tokio::select! {
            biased;
            _ = http.as_mut() => {}
            () = conn.close.cancelled() => {
                // A body still arriving is cut: closed at once, unanswered,
                // so its slot is free for the connection that needs it.
                let arriving = conn.body_deadline_ms.load(Ordering::Acquire) != NEVER;
                if !conn.is_idle() && !arriving {
                    // Finish the request under way, then close.
                    http.as_mut().graceful_shutdown();
                    let _ = http.as_mut().await;
                }
            }
        }
    }
}

/// A connection's socket, which tells its [`Conn`] when bytes arrive (so
/// the first bytes of a request start its header timeout).
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.bytes_arrived();
        }
        read
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
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
    /// with its body in (`None`, `NEVER`).
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
            (None, NEVER),     // 2: body in, being served
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

    fn limits(header_ms: u64, idle_secs: u64) -> Limits {
        Limits {
            max_connections: 10,
            header_read_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_secs(idle_secs),
            body_read_timeout: Duration::from_secs(10),
            body_min_rate: 1024,
            grace: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_cuts_late_headers_and_long_idles_never_early() {
        let limits = limits(10_000, 75);
        let tick = sweep_tick(&limits);
        assert_eq!(tick, Duration::from_millis(500));
        let registry = Registry::default();
        let open = |_| registry.open(CancellationToken::new()).1;
        let (fresh, keep_alive, slow_head, busy) = (open(0), open(1), open(2), open(3));
        // A new connection's first request is due at once: its header
        // timeout runs from the accept.
        assert_eq!(fresh.head_since_ms.load(Ordering::Relaxed), 0);
        // The others made a request at once (its head read, its answer sent).
        for conn in [&keep_alive, &slow_head] {
            drop(Busy::start((*conn).clone()));
            assert_eq!(conn.head_since_ms.load(Ordering::Relaxed), NEVER);
        }
        let _serving = Busy::start(busy.clone());
        let step = |ms| async move {
            tokio::time::advance(Duration::from_millis(ms)).await;
        };
        // 0.2 s on, the first bytes of a request arrive (the coarse clock
        // still says 0: the header timeout is counted from 0, plus a tick).
        step(200).await;
        slow_head.bytes_arrived();
        assert_eq!(slow_head.head_since_ms.load(Ordering::Relaxed), 0);
        step(10_000).await;
        assert_eq!(registry.sweep(&limits, tick), 0, "10.2 s: not late yet");
        slow_head.bytes_arrived(); // more bytes do not restart the timeout
        step(300).await;
        assert_eq!(registry.sweep(&limits, tick), 2, "10.5 s: late");
        assert!(slow_head.close.is_cancelled() && fresh.close.is_cancelled());
        assert!(!keep_alive.close.is_cancelled() && !busy.close.is_cancelled());
        // A keep-alive's next request: its head read ends the header
        // timeout; its end starts the idle time.
        let request = Busy::start(keep_alive.clone());
        step(1_000).await;
        registry.sweep(&limits, tick);
        drop(request);
        assert_eq!(keep_alive.idle_since_ms.load(Ordering::Relaxed), 11_500);
        step(75_000).await;
        assert_eq!(registry.sweep(&limits, tick), 0);
        assert!(
            !keep_alive.close.is_cancelled(),
            "75 s idle by the coarse clock: not yet"
        );
        step(500).await;
        assert_eq!(
            registry.sweep(&limits, tick),
            0,
            "an idle close is not a header timeout"
        );
        assert!(keep_alive.close.is_cancelled());
        // A request under way is never cut by either.
        assert!(!busy.close.is_cancelled());
    }
}
