//! The sink: the far end of every circuit. Answers the link handshake and CREATE2 (with
//! keys of its own, which the pump names in its EXTEND2), learns each circuit's direction
//! from its start cell, then counts and drops forward data and sends backward data (see the
//! [module docs](super) and [`super::control`]).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::control::{self, emit, Ready};
use super::endpoint::{Adopt, Endpoint, LoadDriver};
use super::handshake::SinkKeys;
use super::LoadError;
use crate::config::Backend;
use crate::placement::CpuList;

/// `kistrel bench sink` options (started by `kistrel bench relay`).
#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    /// Where to listen (port 0: any free port; the `ready` line says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// CPU time to burn per data cell sent, in ns (as the pump's option).
    #[arg(long, default_value_t = 0, value_name = "NS")]
    pub burn_ns: u64,
    /// I/O backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Run on these CPUs (the whole process: its loop and its control reader).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<CpuList>,
}

/// Runs the sink until `quit` on stdin; prints `ready` (with its address and keys), then
/// `final`.
pub fn run(args: &SinkArgs) -> Result<(), LoadError> {
    if let Some(cpus) = &args.cpus {
        super::pin(cpus)?;
    }
    let commands = control::read_stdin();
    let listener = TcpListener::bind(args.listen)
        .map_err(LoadError::io(format!("binding {}", args.listen)))?;
    let addr = listener.local_addr().map_err(LoadError::io("binding"))?;
    let mut rng = ChaCha8Rng::from_os_rng();
    let keys = SinkKeys::generate(&mut rng)?;
    let ready = Ready {
        addr: Some(addr),
        identity: Some(hex::encode_upper(keys.id)),
        ntor_key: Some(base64::engine::general_purpose::STANDARD.encode(keys.ntor.public())),
        circuits: 0,
        connections: 0,
    };
    let burn = Duration::from_nanos(args.burn_ns);
    match LoadDriver::open(args.backend)? {
        #[cfg(target_os = "linux")]
        LoadDriver::Uring(ring) => sink_on(*ring, listener, keys, ready, burn, rng, &commands),
        LoadDriver::Poll(poll) => sink_on(*poll, listener, keys, ready, burn, rng, &commands),
    }
}

fn sink_on<D: Adopt>(
    driver: D,
    listener: TcpListener,
    keys: SinkKeys,
    ready: Ready,
    burn: Duration,
    rng: ChaCha8Rng,
    commands: &crossbeam_channel::Receiver<control::Command>,
) -> Result<(), LoadError> {
    let mut endpoint = Endpoint::new(driver, Some(keys), rng);
    endpoint.set_burn(burn);
    endpoint.listen(listener)?;
    emit("ready", &ready)?;
    let last = endpoint.run(commands)?;
    emit("final", &last)
}
