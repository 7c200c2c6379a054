#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod socket;
pub mod time;

pub use socket::{SocketSnapshot, TcpInfo};
pub use time::Instant;
