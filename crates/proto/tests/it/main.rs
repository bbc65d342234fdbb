//! Integration tests of the protocol core: the shared vectors, property tests,
//! and interop with wechatpy (an independent implementation).

mod families;
mod fuzz_corpus;
mod interop;
mod messages;
mod properties;
mod vectors;

use std::path::PathBuf;

/// The repository root (two levels above this crate).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
