//! The wxgate server: token center, stores, the WeChat-facing endpoints, the
//! client API, the proxy and the operations surface.
//!
//! Not built yet: the token center (issue 4) and the message gateway (issue 5)
//! land here. Until then it re-exports the protocol core it will use.

pub use wxgate_proto as proto;
