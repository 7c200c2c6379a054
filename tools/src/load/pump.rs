//! The pump: opens links to the relay under test (or the forwarder), builds its circuits to
//! the sink, then sends data on its forward circuits and receives on its backward ones
//! until told to quit (see the [module docs](super) and [`super::control`]).

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::control::{self, emit, Ready};
use super::endpoint::{Adopt, Endpoint, LoadDriver};
use super::handshake::{start_cell, HopKeys, PumpLink};
use super::window::Direction;
use super::LoadError;
use crate::config::Backend;
use crate::placement::CpuList;

/// Which way the pump's circuits carry data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Directions {
    /// Pump to sink only.
    Forward,
    /// Sink to pump only.
    Backward,
    /// Half the circuits of every link each way.
    Both,
}

impl Directions {
    /// The direction of the `k`-th circuit of a link.
    fn of(self, k: u32) -> Direction {
        match self {
            Directions::Forward => Direction::Forward,
            Directions::Backward => Direction::Backward,
            Directions::Both if k.is_multiple_of(2) => Direction::Forward,
            Directions::Both => Direction::Backward,
        }
    }
}

/// `kistrel bench pump` options (started by `kistrel bench relay`).
#[derive(Debug, Clone, Args)]
pub struct PumpArgs {
    /// Where to open the links: the relay under test, or the forwarder.
    #[arg(long, value_name = "ADDR")]
    pub connect: SocketAddr,
    /// The first hop's identity (40 hex digits) and ntor key (base64): `HEX,BASE64`.
    #[arg(long, value_name = "ID,NTOR")]
    pub first: String,
    /// Extend every circuit to this hop (`ADDR,HEX,BASE64`): the sink, behind the relay.
    /// Without it the circuits are one hop (the forwarder baseline: the first hop is the
    /// sink).
    #[arg(long, value_name = "ADDR,ID,NTOR")]
    pub extend_to: Option<String>,
    /// Links to open.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: u32,
    /// Circuits per link.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub circuits: u32,
    /// Which way data flows.
    #[arg(long, value_enum, default_value_t = Directions::Both)]
    pub directions: Directions,
    /// CPU time to burn per data cell sent, in ns (makes the load side the bottleneck on
    /// purpose; for testing the load-limit flag).
    #[arg(long, default_value_t = 0, value_name = "NS")]
    pub burn_ns: u64,
    /// I/O backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Run on these CPUs (the whole process: its loop and its control reader).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<CpuList>,
}

/// Parses `HEX,BASE64` (an identity and an ntor key, as `kistrel keygen` prints them).
pub fn parse_keys(s: &str) -> Result<([u8; 20], [u8; 32]), LoadError> {
    let bad = |what: &str| LoadError::Usage(format!("{s:?}: {what}"));
    let (id, ntor) = s
        .split_once(',')
        .ok_or_else(|| bad("want IDENTITY_HEX,NTOR_BASE64"))?;
    let id: [u8; 20] = hex::decode(id.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("the identity is not 40 hex digits"))?;
    let ntor: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(ntor.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("the ntor key is not 32 bytes of base64"))?;
    Ok((id, ntor))
}

/// Parses `ADDR,HEX,BASE64`.
pub fn parse_hop(s: &str) -> Result<HopKeys, LoadError> {
    let (addr, keys) = s
        .split_once(',')
        .ok_or_else(|| LoadError::Usage(format!("{s:?}: want ADDR,IDENTITY_HEX,NTOR_BASE64")))?;
    let addr: SocketAddr = addr
        .trim()
        .parse()
        .map_err(|e| LoadError::Usage(format!("{addr:?}: {e}")))?;
    let (id, ntor) = parse_keys(keys)?;
    Ok(HopKeys { addr, id, ntor })
}

/// Runs the pump until `quit` on stdin; prints `ready`, then `final` (see [`control`]).
pub fn run(args: &PumpArgs) -> Result<(), LoadError> {
    let (id, ntor) = parse_keys(&args.first)?;
    let first = HopKeys {
        addr: args.connect,
        id,
        ntor,
    };
    let second = args.extend_to.as_deref().map(parse_hop).transpose()?;
    if let Some(cpus) = &args.cpus {
        super::pin(cpus)?;
    }
    let commands = control::read_stdin();
    let mut rng = ChaCha8Rng::from_os_rng();
    let mut links = Vec::new();
    for _ in 0..args.connections {
        let mut link = PumpLink::open(args.connect)?;
        let mut circuits = Vec::new();
        for k in 0..args.circuits {
            // We opened the link: our circuit ids have the top bit set.
            let circ = 0x8000_0000 | (k + 1);
            let mut layers = link.build(circ, &first, second.as_ref(), &mut rng)?;
            let dir = args.directions.of(k);
            circuits.push((circ, dir, start_cell(circ, &mut layers, dir, &mut rng)?));
        }
        links.push((link.into_stream()?, circuits));
    }
    let ready = Ready {
        addr: None,
        identity: None,
        ntor_key: None,
        circuits: u64::from(args.connections * args.circuits),
        connections: u64::from(args.connections),
    };
    let burn = Duration::from_nanos(args.burn_ns);
    match LoadDriver::open(args.backend)? {
        #[cfg(target_os = "linux")]
        LoadDriver::Uring(ring) => pump_on(*ring, links, ready, burn, rng, &commands),
        LoadDriver::Poll(poll) => pump_on(*poll, links, ready, burn, rng, &commands),
    }
}

type BuiltLinks = Vec<(
    std::net::TcpStream,
    Vec<(u32, Direction, [u8; kistrel_engine::wire::CELL_LEN])>,
)>;

fn pump_on<D: Adopt>(
    driver: D,
    links: BuiltLinks,
    ready: Ready,
    burn: Duration,
    rng: ChaCha8Rng,
    commands: &crossbeam_channel::Receiver<control::Command>,
) -> Result<(), LoadError> {
    let mut endpoint = Endpoint::new(driver, None, rng);
    endpoint.set_burn(burn);
    for (stream, circuits) in links {
        endpoint.add_link(stream, circuits)?;
    }
    emit("ready", &ready)?;
    let last = endpoint.run(commands)?;
    emit("final", &last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_strings_parse_and_bad_ones_say_why() {
        let id = "00112233445566778899AABBCCDDEEFF00112233";
        let ntor = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let hop = parse_hop(&format!("127.0.0.1:9001,{id},{ntor}")).unwrap();
        assert_eq!(hop.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(hop.id[1], 0x11);
        assert_eq!(hop.ntor, [7; 32]);
        let e = parse_keys(&format!("00ff,{ntor}")).unwrap_err();
        assert!(e.to_string().contains("40 hex digits"), "{e}");
        let e = parse_keys(&format!("{id},AAAA")).unwrap_err();
        assert!(e.to_string().contains("32 bytes"), "{e}");
        assert!(parse_hop("nowhere").is_err());
        assert_eq!(Directions::Both.of(0), Direction::Forward);
        assert_eq!(Directions::Both.of(3), Direction::Backward);
        assert_eq!(Directions::Backward.of(0), Direction::Backward);
    }
}
