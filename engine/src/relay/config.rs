//! What a `Relay` is configured with: its keys and limits. Names follow torrc where Tor has
//! one.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::RngCore;

use crate::crypto::identity::{IdentityError, Lifetimes, RelayIdentity};
use crate::crypto::ntor::NtorKeypair;
use crate::crypto::RelayId;
use crate::exit::ExitPolicy;

use super::dos::CircuitCreationLimit;

/// A relay's long-term keys.
#[derive(Clone, Debug)]
pub struct RelayKeys {
    /// The RSA and Ed25519 identities and their certificates (one copy shared by every
    /// worker).
    pub identity: Arc<RelayIdentity>,
    /// ntor onion key.
    pub ntor: NtorKeypair,
}

impl RelayKeys {
    /// Fresh identities (certificates valid from `now`) and ntor key from `rng`. RSA key
    /// generation takes tens of milliseconds.
    pub fn generate<R: RngCore + ?Sized>(
        rng: &mut R,
        now: SystemTime,
    ) -> Result<Self, IdentityError> {
        let identity = RelayIdentity::generate(rng, now, &Lifetimes::default())?;
        Ok(RelayKeys {
            identity: Arc::new(identity),
            ntor: NtorKeypair::generate(rng),
        })
    }

    /// The RSA identity fingerprint (what CREATE2's ntor and EXTEND2 name us by).
    pub fn rsa_id(&self) -> RelayId {
        self.identity.rsa_id()
    }
}

/// Configuration of one `Relay`. Names follow torrc where Tor has one.
#[derive(Debug)]
pub struct RelayConfig {
    /// Keys; `None` for a client-only node, which refuses CREATE2/CREATE_FAST.
    pub keys: Option<RelayKeys>,
    /// Exit policy; `None` = not an exit (every BEGIN gets END EXITPOLICY).
    pub exit_policy: Option<ExitPolicy>,
    /// Our addresses, announced in NETINFO.
    pub my_addrs: Vec<IpAddr>,
    /// Cells one circuit may queue toward one channel before it is closed (Tor: 2500).
    pub max_circuit_queue_cells: usize,
    /// `MaxMemInQueues`: above this many queued bytes (circuit queues plus unread stream
    /// receive buffers) the OOM handler closes circuits, oldest queued byte first, until
    /// usage is below 90%.
    pub max_mem_in_queues: usize,
    /// A channel that has not finished VERSIONS/NETINFO by then is closed
    /// (`ChannelHandshakeTimeout` in the config file).
    pub handshake_timeout: Duration,
    /// Per-channel limit on CREATE/CREATE2/CREATE_FAST (`DoSCircuitCreationRate`,
    /// `DoSCircuitCreationBurst`); `None` = unlimited. Excess cells get DESTROY
    /// (RESOURCELIMIT) without a handshake.
    pub circuit_creation_limit: Option<CircuitCreationLimit>,
    /// Circuit priority (`CircuitPriorityHalflife`; halflife 0 = round robin).
    pub ewma: kistrel_sched::EwmaConfig,
    /// Testing only (`TestingCellCost` in the config file; 0 = off): iterations of
    /// [`spin`] burned for every cell transmitted, so that the macro regression check can
    /// prove it catches a slower relay (`kistrel bench check --self-check`). Off, it costs
    /// one predictable branch per cell.
    pub testing_spin_per_cell: u32,
}

/// Burns CPU for `iterations` steps of a dependent multiply-add chain (about one
/// multiply's latency each; the caller calibrates against a clock). Returns the chain's end
/// so that nothing can be optimised away.
#[inline(never)]
pub fn spin(iterations: u32) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 0..iterations {
        x = std::hint::black_box(
            x.wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(u64::from(i)),
        );
    }
    x
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            keys: None,
            exit_policy: None,
            my_addrs: Vec::new(),
            max_circuit_queue_cells: 2500,
            max_mem_in_queues: 512 << 20,
            handshake_timeout: Duration::from_secs(30),
            circuit_creation_limit: Some(CircuitCreationLimit::default()),
            ewma: kistrel_sched::EwmaConfig::default(),
            testing_spin_per_cell: 0,
        }
    }
}
