//! A request body held so that it can be sent twice: in memory when small,
//! in a temporary file (removed on drop) when large, so memory stays flat
//! whatever the upload size. Each send opens the file anew, with its own
//! position: the first attempt's body may still be draining when the retry
//! starts.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// Bodies up to this size stay in memory.
const IN_MEMORY: usize = 64 * 1024;
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
    /// The client's body broke off.
    #[error("reading the request body failed: {0}")]
    Read(String),
    /// The temporary file could not be written.
    #[error("spooling the request body failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A request body, replayable.
#[derive(Debug)]
pub enum Spooled {
    /// Small: kept in memory.
    Memory(Bytes),
    /// Large: in a temporary file, removed when this is dropped.
    File {
        /// The file.
        file: tempfile::NamedTempFile,
        /// Its length, bytes.
        len: u64,
    },
}

impl Spooled {
    /// Reads `body` in full, refusing more than `limit` bytes.
    pub async fn read(body: Body, limit: u64) -> Result<Self, SpoolError> {
        let mut stream = body.into_data_stream();
        let mut memory = BytesMut::new();
        let mut spill: Option<(tempfile::NamedTempFile, tokio::fs::File)> = None;
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| SpoolError::Read(e.to_string()))?;
            len += chunk.len() as u64;
            if len > limit {
                return Err(SpoolError::TooLarge { limit });
            }
            match &mut spill {
                None if memory.len() + chunk.len() <= IN_MEMORY => memory.extend_from_slice(&chunk),
                None => {
                    let named = tempfile::NamedTempFile::new()?;
                    let mut file = tokio::fs::File::from_std(named.reopen()?);
                    file.write_all(&memory).await?;
                    file.write_all(&chunk).await?;
                    memory = BytesMut::new();
                    spill = Some((named, file));
                }
                Some((_, file)) => file.write_all(&chunk).await?,
            }
        }
        Ok(match spill {
            None => Spooled::Memory(memory.freeze()),
            Some((file, mut writer)) => {
                // Flushed to the OS: a reopened handle reads it (no fsync needed for a temp file).
                writer.flush().await?;
                Spooled::File { file, len }
            }
        })
    }

    /// Its length, bytes.
    pub fn len(&self) -> u64 {
        match self {
            Spooled::Memory(bytes) => bytes.len() as u64,
            Spooled::File { len, .. } => *len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh body to send, read from the start through its own handle.
    pub fn body(&self) -> std::io::Result<reqwest::Body> {
        Ok(match self {
            Spooled::Memory(bytes) => reqwest::Body::from(bytes.clone()),
            Spooled::File { file, .. } => {
                let file = tokio::fs::File::from_std(file.reopen()?);
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, CHUNK))
            }
        })
    }
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

    #[tokio::test]
    async fn small_bodies_stay_in_memory_large_ones_go_to_a_file_and_replay() {
        let small = Spooled::read(Body::from(vec![7u8; 100]), 1 << 20)
            .await
            .unwrap();
        assert!(matches!(small, Spooled::Memory(_)));
        assert_eq!(body_bytes(&small).await, vec![7u8; 100]);

        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(10_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let large = Spooled::read(body, 1 << 20).await.unwrap();
        assert!(matches!(large, Spooled::File { len: 300_000, .. }));
        // Twice: a retry after a token refresh sends it again from the start.
        assert_eq!(body_bytes(&large).await, data);
        assert_eq!(body_bytes(&large).await, data);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let err = Spooled::read(Body::from(vec![0u8; 2000]), 1000)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge { limit: 1000 }));
    }
}
