//! The WeChat platform simulator: the token, ticket and customer-service APIs
//! with WeChat's semantics, a virtual clock, fault injection and a push sender.
//!
//! Not built yet: this crate is a placeholder in the workspace layout so that
//! the gateway, its tests and `wxgate dev` have one place to get their fake of
//! WeChat from (issue 3). Until then it re-exports the protocol core it will use.

pub use wxgate_proto as proto;
