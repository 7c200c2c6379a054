#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod ewma;
pub mod socket;
pub mod time;

pub use ewma::{CellEwma, CircuitMux, EwmaConfig, Priority};
pub use socket::{SocketSnapshot, TcpInfo};
pub use time::Instant;
