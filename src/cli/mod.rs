//! One file per subcommand.
pub mod convert;
pub mod gen_model;
