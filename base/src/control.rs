//! The control plane's circuit messages: what a worker asks the control thread and tells it
//! about its circuits, and what the control thread answers. One set, used as is by both
//! sides: the engine's workers (`kistrel-engine`) and path selection's decision core
//! (`kistrel-pathsel`), so nothing translates ids or time types between them.
//!
//! ```text
//!   worker                                            control thread
//!     NeedCircuit { circuit: K, target }   ──────►    path, guard, learned timeouts
//!                                          ◄──────    BuildCircuit { K, path, deadline }
//!                                                     (or NoPath { K })
//!     CircuitBuilt { K, build_time }       ──────►    estimator, guard ticket
//!     CircuitTimedOut { K }  (past deadline, still measured)
//!                                          ◄──────    CloseCircuit { K }  (close timeout)
//!     CircuitClosed { K }    (DESTROY sent, freed)
//! ```
//!
//! A [`CircuitKey`] is handed out by the worker when it asks, and names the same circuit in
//! every later message. Times are [`Instant`]s of the one clock all threads of a process
//! share.

use core::fmt;
use core::time::Duration;
use std::net::{IpAddr, SocketAddr};

use crate::time::Instant;

/// One circuit, from the worker's request to its close: the asking worker's index and that
/// worker's request counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircuitKey {
    /// The worker that asked (and builds, and owns, the circuit).
    pub worker: usize,
    /// Counts the worker's requests; never reused within a process.
    pub seq: u64,
}

impl fmt::Display for CircuitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.worker, self.seq)
    }
}

/// What the origin needs to know about one hop of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopSpec {
    /// The relay's RSA identity digest.
    pub id: [u8; 20],
    /// The relay's Ed25519 identity: the channel to it must prove it, and EXTEND2 names it
    /// (link specifier type 3).
    pub ed_id: [u8; 32],
    /// The relay's ntor onion key.
    pub ntor_key: [u8; 32],
    /// The relay's OR address.
    pub addr: SocketAddr,
}

/// Where a circuit's first stream goes; decides which exits qualify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExitTarget {
    /// Destination address, when known (a host name is resolved by the exit: `None`).
    pub addr: Option<IpAddr>,
    /// Destination port.
    pub port: u16,
}

impl ExitTarget {
    /// The target of a stream to `host:port`: the address when `host` is an IP literal.
    pub fn from_host(host: &str, port: u16) -> Self {
        ExitTarget {
            addr: host.parse().ok(),
            port,
        }
    }
}

/// What a worker tells the control thread about its circuits.
///
/// Exhaustive on purpose (as [`CircuitCommand`]): both sides match every message, so a new
/// one does not compile until both handle it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitEvent {
    /// The worker needs a circuit, for streams to `target` when known.
    NeedCircuit {
        /// The key the answer and every later message use.
        circuit: CircuitKey,
        /// Where the stream that asked goes (`None`: a circuit kept ready for any stream).
        target: Option<ExitTarget>,
    },
    /// The circuit's last hop answered, `build_time` after its first CREATE. Also sent for
    /// a circuit that passed its deadline and kept being measured.
    CircuitBuilt {
        /// Which circuit.
        circuit: CircuitKey,
        /// First CREATE to the last hop's CREATED/EXTENDED.
        build_time: Duration,
    },
    /// The circuit passed its deadline unbuilt: no stream will use it, but it is kept and
    /// measured until the control thread closes it (`CloseCircuit`) or it completes.
    CircuitTimedOut {
        /// Which circuit.
        circuit: CircuitKey,
    },
    /// The circuit failed while building, at hop `hop` (0 = the guard) when known.
    CircuitFailed {
        /// Which circuit.
        circuit: CircuitKey,
        /// The failing hop, 0-based.
        hop: Option<u8>,
    },
    /// The circuit's guard could not be reached at all.
    GuardUnreachable {
        /// Which circuit.
        circuit: CircuitKey,
    },
    /// The circuit a `CloseCircuit` named is closed: DESTROY sent, state freed (or it was
    /// only asked for, and the request is withdrawn).
    CircuitClosed {
        /// Which circuit.
        circuit: CircuitKey,
    },
}

impl CircuitEvent {
    /// The circuit the event is about.
    pub fn circuit(&self) -> CircuitKey {
        match *self {
            CircuitEvent::NeedCircuit { circuit, .. }
            | CircuitEvent::CircuitBuilt { circuit, .. }
            | CircuitEvent::CircuitTimedOut { circuit }
            | CircuitEvent::CircuitFailed { circuit, .. }
            | CircuitEvent::GuardUnreachable { circuit }
            | CircuitEvent::CircuitClosed { circuit } => circuit,
        }
    }
}

/// What the control thread tells the worker that owns a circuit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CircuitCommand {
    /// Build `path`. Past `deadline` (the learned timeout) no stream uses the circuit; the
    /// worker reports `CircuitTimedOut` and keeps building it until the control thread's
    /// close timeout, so the estimator sees the tail of the build times.
    BuildCircuit {
        /// The key of the request this answers.
        circuit: CircuitKey,
        /// The hops, guard first.
        path: Vec<HopSpec>,
        /// When the build counts as timed out.
        deadline: Instant,
    },
    /// No path (or guard) could be found for the request: fail the streams waiting on it.
    NoPath {
        /// The request.
        circuit: CircuitKey,
    },
    /// Close the circuit (DESTROY) and report `CircuitClosed`: the control thread stopped
    /// waiting for it.
    CloseCircuit {
        /// Which circuit.
        circuit: CircuitKey,
    },
}

impl CircuitCommand {
    /// The circuit the command is about; its `worker` is where the command goes.
    pub fn circuit(&self) -> CircuitKey {
        match *self {
            CircuitCommand::BuildCircuit { circuit, .. }
            | CircuitCommand::NoPath { circuit }
            | CircuitCommand::CloseCircuit { circuit } => circuit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_has_an_address_only_for_ip_literals() {
        let t = ExitTarget::from_host("10.0.0.3", 443);
        assert_eq!(t.addr, Some(IpAddr::from([10, 0, 0, 3])));
        assert_eq!(t.port, 443);
        assert_eq!(
            ExitTarget::from_host("[::1]", 80).addr,
            None,
            "brackets: not an IP"
        );
        assert_eq!(
            ExitTarget::from_host("::1", 80).addr,
            Some("::1".parse().unwrap())
        );
        assert_eq!(ExitTarget::from_host("example.com", 80).addr, None);
    }

    #[test]
    fn every_message_names_its_circuit() {
        let k = CircuitKey { worker: 3, seq: 9 };
        assert_eq!(k.to_string(), "3/9");
        let events = [
            CircuitEvent::NeedCircuit {
                circuit: k,
                target: None,
            },
            CircuitEvent::CircuitBuilt {
                circuit: k,
                build_time: Duration::from_millis(5),
            },
            CircuitEvent::CircuitTimedOut { circuit: k },
            CircuitEvent::CircuitFailed {
                circuit: k,
                hop: Some(1),
            },
            CircuitEvent::GuardUnreachable { circuit: k },
            CircuitEvent::CircuitClosed { circuit: k },
        ];
        assert!(events.iter().all(|e| e.circuit() == k));
        let commands = [
            CircuitCommand::BuildCircuit {
                circuit: k,
                path: Vec::new(),
                deadline: Instant::ZERO,
            },
            CircuitCommand::NoPath { circuit: k },
            CircuitCommand::CloseCircuit { circuit: k },
        ];
        assert!(commands.iter().all(|c| c.circuit() == k));
    }
}
