//! One module per subcommand.

pub(crate) mod dev;
pub(crate) mod push;
pub(crate) mod sign;
pub(crate) mod sim;
