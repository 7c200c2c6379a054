//! The runtime: a `Worker` per core drives one [`Relay`](crate::relay::Relay) and one
//! scheduler over an I/O [`Driver`] (io_uring on Linux, the portable poll backend, or the
//! simulated network of [`crate::driver::sim`]).
//!
//! ```text
//!            control thread  <-- WorkerEvent: circuit events, stats (bounded; dropped +
//!                 |                           counted when full)
//!                 |          --> Command: circuit commands, Shutdown (bounded; polled once
//!                 |                       per loop iteration)
//!   +-------------v----------------------------------------------------------------+
//!   | Worker (one thread, pinned), one turn per iteration, `now` from its clock:   |
//!   |   IoEvent::Recv  -> channel: Link::open -> relay.handle_recv                 |
//!   |                     edge:    Edges (SOCKS, stream data)  -> EdgeAction       |
//!   |   relay events   -> connect / close / exit connects / Edges / Origins        |
//!   |   scheduler run  -> relay.write_cells    -> Link -> the connection's buffer  |
//!   |   driver.run_once(wait)         one io_uring_enter per iteration             |
//!   +------------------------------------------------------------------------------+
//! ```
//!
//! Nothing here is shared between workers: each has its own listener (SO_REUSEPORT), its own
//! channels to peers and its own circuits. Only control messages cross threads.
//!
//! - `worker` — the loop, the connection table and the glue that performs actions;
//! - `edge`, `origin` — sans-IO: SOCKS clients and exit targets; circuits per isolation key;
//! - `link` — the link layer between a channel's bytes and the cell codec (TLS or plain);
//! - `transmit` — scheduler runs and the kernel-queue sample;
//! - `resolve` — the bounded host name lookup pool of an exit;
//! - `backend` — choosing io_uring or poll (with the fallback), starting a worker;
//! - `clock`, `control` — where `now` comes from; the control-thread messages (the circuit
//!   messages of `kistrel_base::control`, keyed by the `CircuitKey` a worker hands out).

mod backend;
mod balance;
mod clock;
mod conns;
mod control;
mod edge;
mod link;
mod origin;
mod resolve;
mod transmit;
mod worker;

pub use backend::{
    run_worker, select_backend, select_with, Backend, BackendChoice, BackendError, UringUnavailable,
};
pub use balance::{siblings, Accepted, Handoff, Siblings};
pub use clock::{Clock, TimeSource};
pub use control::{
    CircuitCommand, CircuitEvent, CircuitKey, Command, EventSender, ExitTarget, WorkerEvent,
    WorkerStats,
};
pub use link::{
    Delivery, Link, LinkError, LinkKind, LinkStats, Links, RecordStats, TlsContext, TlsLink,
    TlsSetupError,
};
pub use resolve::{LookupFn, ResolverConfig};

pub use crate::sys::ktls::KtlsSupport;
pub use worker::{Listeners, Worker, WorkerConfig, WorkerError, WorkerReport};

/// The driver seam lives in [`crate::driver`]; re-exported for the runtime's users.
pub use crate::driver::{Driver, DriverStats, IoEvent};
