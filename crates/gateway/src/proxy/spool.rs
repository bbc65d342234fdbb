//! A request body held so that it can be sent twice: in memory when small,
//! in an anonymous temporary file when large, so memory stays flat whatever
//! the upload size. The file is unlinked from the moment it exists (O_TMPFILE
//! where the kernel has it), so a crash or `kill -9` leaves nothing in
//! `$TMPDIR`. Each send reads it at its own offset (`pread`): the first
//! attempt's body may still be draining when the retry starts.
//!
//! The bytes on disk across all requests are bounded by a [`SpoolBudget`]
//! (`proxy.max_spool_bytes`), and those of one caller by its share of it
//! (`proxy.max_spool_bytes_per_caller`): a body that would pass either is
//! refused before more is written, and its bytes come back when the request
//! ends. Only a caller already known (its client key or token checked) is
//! given a share: see [`SpoolBudget::for_caller`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::AsyncWriteExt;

/// Bodies up to this size stay in memory.
pub const IN_MEMORY: usize = 64 * 1024;
/// Read size when sending a spooled file.
const CHUNK: usize = 64 * 1024;

/// Why a body could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Larger than the configured limit.
    #[error("request body over {limit} bytes")]
    TooLarge {
        /// The limit, bytes.
        limit: u64,
    },
    /// Spooling it would pass `proxy.max_spool_bytes` across requests in flight.
    #[error("too many large request bodies in flight: spooling this one would pass {limit} bytes")]
    Full {
        /// `proxy.max_spool_bytes`.
        limit: u64,
    },
    /// Spooling it would pass the caller's share, `proxy.max_spool_bytes_per_caller`.
    #[error("this caller's large request bodies in flight hold its share: spooling this one would pass {share} bytes")]
    CallerFull {
        /// `proxy.max_spool_bytes_per_caller`.
        share: u64,
    },
    /// The client's body broke off.
    #[error("reading the request body failed: {0}")]
    Read(String),
    /// The temporary file could not be written.
    #[error("spooling the request body failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The bytes all spooled bodies may hold at once, shared by every request,
/// and by each caller at most its share.
#[derive(Debug, Clone)]
pub struct SpoolBudget {
    inner: Arc<BudgetInner>,
    /// Whose bodies these are (see [`SpoolBudget::for_caller`]).
    caller: Arc<str>,
}

#[derive(Debug)]
struct BudgetInner {
    limit: u64,
    /// Most one caller may hold.
    share: u64,
    used: AtomicU64,
    /// Bytes held by each caller holding any.
    by_caller: Mutex<HashMap<Arc<str>, u64>>,
    /// `wxgate_proxy_spool_bytes`.
    gauge: Gauge,
}

impl SpoolBudget {
    /// A budget of `limit` bytes, mirrored in `gauge`, each caller's share
    /// the whole of it (see [`SpoolBudget::with_share`]).
    pub fn new(limit: u64, gauge: Gauge) -> Self {
        Self::with_share(limit, limit, gauge)
    }

    /// A budget of `limit` bytes of which one caller may hold `share`.
    pub fn with_share(limit: u64, share: u64, gauge: Gauge) -> Self {
        Self {
            inner: Arc::new(BudgetInner {
                limit,
                share,
                used: AtomicU64::new(0),
                by_caller: Mutex::new(HashMap::new()),
                gauge,
            }),
            caller: Arc::from(""),
        }
    }

    /// The same budget, for the bodies of `caller` (a client's name, an
    /// appid): together they hold at most the share. Call it only once the
    /// caller is known, before the body is read.
    pub fn for_caller(&self, caller: &str) -> Self {
        Self {
            inner: self.inner.clone(),
            caller: Arc::from(caller),
        }
    }

    /// Bytes held by spooled bodies now.
    pub fn in_use(&self) -> u64 {
        self.inner.used.load(Ordering::Acquire)
    }

    /// The budget, bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Takes `bytes` from the budget, or refuses if that would pass it.
    fn reserve(&self, bytes: u64) -> Result<Reservation, SpoolError> {
        let mut reservation = Reservation {
            budget: self.clone(),
            bytes: 0,
        };
        reservation.grow(bytes)?;
        Ok(reservation)
    }
}

/// Bytes taken from a [`SpoolBudget`], given back when dropped.
#[derive(Debug)]
struct Reservation {
    budget: SpoolBudget,
    bytes: u64,
}

impl Reservation {
    fn grow(&mut self, bytes: u64) -> Result<(), SpoolError> {
        let inner = &self.budget.inner;
        let mut by_caller = inner.by_caller.lock().expect("spool lock");
        let held = by_caller.get(&self.budget.caller).copied().unwrap_or(0);
        inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&total| total <= inner.limit)
            })
            .map_err(|_| SpoolError::Full { limit: inner.limit })?;
        if held.saturating_add(bytes) > inner.share {
            inner.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(SpoolError::CallerFull { share: inner.share });
        }
        by_caller.insert(self.budget.caller.clone(), held + bytes);
        self.bytes += bytes;
        inner.gauge.inc_by(bytes as i64);
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let inner = &self.budget.inner;
        let mut by_caller = inner.by_caller.lock().expect("spool lock");
        if let Some(held) = by_caller.get_mut(&self.budget.caller) {
            *held = held.saturating_sub(self.bytes);
            if *held == 0 {
                by_caller.remove(&self.budget.caller);
            }
        }
        inner.used.fetch_sub(self.bytes, Ordering::AcqRel);
        inner.gauge.dec_by(self.bytes as i64);
    }
}

/// A request body, replayable.
#[derive(Debug)]
pub enum Spooled {
    /// Small: kept in memory.
    Memory(Bytes),
    /// Large: in an anonymous temporary file, gone when this is dropped.
    File(SpoolFile),
}

/// A body in an anonymous temporary file, with its share of the budget.
#[derive(Debug)]
pub struct SpoolFile {
    file: Arc<std::fs::File>,
    len: u64,
    _reserved: Reservation,
}

impl Spooled {
    /// Reads `body` in full, refusing more than `limit` bytes, and spooling
    /// what does not fit in memory within `budget`. `declared` (the
    /// Content-Length) reserves the whole body up front, so a body the budget
    /// cannot hold is refused before anything is written.
    pub async fn read(
        body: Body,
        limit: u64,
        budget: &SpoolBudget,
        declared: Option<u64>,
    ) -> Result<Self, SpoolError> {
        let mut reserved = match declared {
            Some(len) if len > IN_MEMORY as u64 => Some(budget.reserve(len.min(limit))?),
            _ => None,
        };
        let mut stream = body.into_data_stream();
        let mut memory = BytesMut::new();
        let mut spill: Option<(std::fs::File, tokio::fs::File)> = None;
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| SpoolError::Read(e.to_string()))?;
            len += chunk.len() as u64;
            if len > limit {
                return Err(SpoolError::TooLarge { limit });
            }
            if spill.is_none() && memory.len() + chunk.len() <= IN_MEMORY {
                memory.extend_from_slice(&chunk);
                continue;
            }
            // Bytes for the file: taken from the budget before they are written.
            match &mut reserved {
                Some(r) if r.bytes >= len => {}
                Some(r) => r.grow(len - r.bytes)?,
                None => reserved = Some(budget.reserve(len)?),
            }
            match &mut spill {
                None => {
                    let file = tempfile::tempfile()?;
                    let mut writer = tokio::fs::File::from_std(file.try_clone()?);
                    writer.write_all(&memory).await?;
                    writer.write_all(&chunk).await?;
                    memory = BytesMut::new();
                    spill = Some((file, writer));
                }
                Some((_, writer)) => writer.write_all(&chunk).await?,
            }
        }
        Ok(match (spill, reserved) {
            (Some((file, mut writer)), Some(reserved)) => {
                // Flushed to the OS: positional reads see it (no fsync needed for a temp file).
                writer.flush().await?;
                Spooled::File(SpoolFile {
                    file: Arc::new(file),
                    len,
                    _reserved: reserved,
                })
            }
            // Declared large but short after all: nothing on disk, nothing held.
            _ => Spooled::Memory(memory.freeze()),
        })
    }

    /// Its length, bytes.
    pub fn len(&self) -> u64 {
        match self {
            Spooled::Memory(bytes) => bytes.len() as u64,
            Spooled::File(spooled) => spooled.len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh body to send, read from the start at its own offset.
    pub fn body(&self) -> std::io::Result<reqwest::Body> {
        Ok(match self {
            Spooled::Memory(bytes) => reqwest::Body::from(bytes.clone()),
            Spooled::File(spooled) => {
                let (file, len) = (spooled.file.clone(), spooled.len);
                let chunks = futures_util::stream::try_unfold(0u64, move |offset| {
                    let file = file.clone();
                    async move {
                        if offset >= len {
                            return Ok(None);
                        }
                        let n = CHUNK.min((len - offset) as usize);
                        let chunk = tokio::task::spawn_blocking(move || read_at(&file, n, offset))
                            .await
                            .map_err(std::io::Error::other)??;
                        Ok::<_, std::io::Error>(Some((chunk, offset + n as u64)))
                    }
                });
                reqwest::Body::wrap_stream(chunks)
            }
        })
    }
}

/// `n` bytes at `offset`, without moving the file's shared position.
fn read_at(file: &std::fs::File, n: usize, offset: u64) -> std::io::Result<Bytes> {
    let mut buf = vec![0; n];
    #[cfg(unix)]
    std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, offset)?;
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < n {
            match std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            )? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                read => done += read,
            }
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_bytes(spooled: &Spooled) -> Vec<u8> {
        let body = spooled.body().unwrap();
        let mut stream = http_body_util::BodyDataStream::new(body);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    fn budget(limit: u64) -> SpoolBudget {
        SpoolBudget::new(limit, Gauge::default())
    }

    fn body_of(data: &[u8]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(10_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn small_bodies_stay_in_memory_large_ones_go_to_a_file_and_replay() {
        let budget = budget(1 << 20);
        let small = Spooled::read(Body::from(vec![7u8; 100]), 1 << 20, &budget, None)
            .await
            .unwrap();
        assert!(matches!(small, Spooled::Memory(_)));
        assert_eq!(body_bytes(&small).await, vec![7u8; 100]);

        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let large = Spooled::read(body_of(&data), 1 << 20, &budget, None)
            .await
            .unwrap();
        assert!(matches!(&large, Spooled::File(f) if f.len == 300_000));
        assert_eq!(budget.in_use(), 300_000);
        // Twice: a retry after a token refresh sends it again from the start.
        assert_eq!(body_bytes(&large).await, data);
        assert_eq!(body_bytes(&large).await, data);
        drop(large);
        assert_eq!(budget.in_use(), 0, "given back when the request ends");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_spool_file_has_no_name_from_the_start() {
        use std::os::fd::AsRawFd;
        let spooled = Spooled::read(body_of(&[1u8; 200_000]), 1 << 20, &budget(1 << 20), None)
            .await
            .unwrap();
        let Spooled::File(spooled) = &spooled else {
            panic!("spooled to a file")
        };
        let fd = spooled.file.as_raw_fd();
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(
            target.to_string_lossy().ends_with("(deleted)"),
            "{target:?} is a name a crash would leave behind"
        );
    }

    #[tokio::test]
    async fn bodies_past_the_spool_budget_are_refused_before_anything_is_written() {
        let budget = budget(250_000);
        let held = Spooled::read(body_of(&[1u8; 200_000]), 1 << 20, &budget, None)
            .await
            .unwrap();
        // Undeclared length: refused once the file would pass the budget.
        let err = Spooled::read(body_of(&[2u8; 100_000]), 1 << 20, &budget, None)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::Full { limit: 250_000 }), "{err}");
        // Declared length: refused before the body is even read.
        let polled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = polled.clone();
        let body = Body::from_stream(futures_util::stream::once(async move {
            seen.store(true, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![3u8; 100_000]))
        }));
        let err = Spooled::read(body, 1 << 20, &budget, Some(100_000))
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::Full { .. }), "{err}");
        assert!(
            !polled.load(Ordering::SeqCst),
            "nothing read, nothing written"
        );
        assert_eq!(budget.in_use(), 200_000);
        // Small bodies stay in memory and do not count.
        Spooled::read(body_of(&[4u8; 1000]), 1 << 20, &budget, None)
            .await
            .unwrap();
        drop(held);
        assert_eq!(budget.in_use(), 0);
        Spooled::read(body_of(&[2u8; 100_000]), 1 << 20, &budget, Some(100_000))
            .await
            .unwrap();
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn one_caller_holds_at_most_its_share() {
        let budget = SpoolBudget::with_share(300_000, 150_000, Gauge::default());
        let (a, b) = (budget.for_caller("a"), budget.for_caller("b"));
        let held = Spooled::read(body_of(&[1u8; 100_000]), 1 << 20, &a, Some(100_000))
            .await
            .unwrap();
        let err = Spooled::read(body_of(&[1u8; 100_000]), 1 << 20, &a, Some(100_000))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SpoolError::CallerFull { share: 150_000 }),
            "{err}"
        );
        // Undeclared: refused once it would pass the share.
        let err = Spooled::read(body_of(&[1u8; 100_000]), 1 << 20, &a, None)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::CallerFull { .. }), "{err}");
        let other = Spooled::read(body_of(&[2u8; 100_000]), 1 << 20, &b, None)
            .await
            .unwrap();
        assert_eq!(budget.in_use(), 200_000);
        drop(held);
        Spooled::read(body_of(&[1u8; 100_000]), 1 << 20, &a, Some(100_000))
            .await
            .unwrap();
        drop(other);
        assert_eq!(budget.in_use(), 0);
        assert!(budget.inner.by_caller.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let err = Spooled::read(Body::from(vec![0u8; 2000]), 1000, &budget(1 << 20), None)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge { limit: 1000 }));
    }
}
