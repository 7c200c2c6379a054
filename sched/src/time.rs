//! The time type (defined in `kistrel-base`).

pub use kistrel_base::time::Instant;
