//! A synthetic directory for tests, benches and `kistrel path sample`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::Rng;

use super::{Directory, Flag, RelayFlags, RelayInfo};
use crate::policy::ExitPolicy;

/// `n` relays (at most 65 000) shaped roughly like Tor's network: heavy-tailed bandwidths,
/// about 35% Guard-only, 15% Exit-only, 10% Guard+Exit, the rest middles; all Running, Valid
/// and Fast. Each relay gets its own /16 (`A.B.0.1`) so subnet exclusion never binds, no
/// families, and exits accept everything (one in four only ports 80 and 443).
pub fn synthetic_directory<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Directory {
    let n = n.min(65_000);
    let web_only: ExitPolicy = "accept *:80, accept *:443, reject *:*"
        .parse()
        .unwrap_or_default();
    let mut relays = Vec::with_capacity(n);
    for i in 0..n {
        let mut identity = [0u8; 20];
        rng.fill_bytes(&mut identity);
        // Make identities unique whatever the RNG does: the index goes in the first bytes.
        identity[..4].copy_from_slice(&(i as u32).to_be_bytes());
        let mut ntor_key = [0u8; 32];
        rng.fill_bytes(&mut ntor_key);
        // Pareto-like bandwidth: 20 / u^0.8, u in (0,1]; capped to keep shares sane.
        let u: f64 = 1.0 - rng.random::<f64>();
        let bandwidth = (20.0 / u.powf(0.8)).min(200_000.0) as u32;
        let class: f64 = rng.random();
        let mut flags = RelayFlags::from_flags(&[Flag::Running, Flag::Valid, Flag::Fast]);
        let (guard, exit) = match class {
            c if c < 0.35 => (true, false),
            c if c < 0.50 => (false, true),
            c if c < 0.60 => (true, true),
            _ => (false, false),
        };
        if guard {
            flags.insert(Flag::Guard);
            flags.insert(Flag::Stable);
        }
        let exit_policy = if exit {
            flags.insert(Flag::Exit);
            if rng.random_ratio(1, 4) {
                web_only.clone()
            } else {
                ExitPolicy::accept_all()
            }
        } else {
            ExitPolicy::default()
        };
        let a = 1 + (i / 256) as u8;
        let b = (i % 256) as u8;
        relays.push(RelayInfo {
            nickname: format!("r{i}"),
            identity,
            ed25519_identity: ntor_key,
            ntor_key,
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, 0, 1)), 9001),
            bandwidth,
            flags,
            family: Vec::new(),
            exit_policy,
        });
    }
    Directory::assemble(relays, None)
}
