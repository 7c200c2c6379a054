//! `kistrel net --bottleneck`: the network in namespaces of a [`Testbed`].
//!
//! ```text
//!   client ─┐                 ┌─ middle   (relay2 .. relayN-1; tbf toward it)
//!   guard  ─┼─ router (tbf) ──┼─ exit     (relayN, accepts 10.N.0.0/16)
//!   (relay1)│                 └─ root namespace: the user, curl, tgen, servers
//! ```
//!
//! Hosts: `client`, `guard` (relay1, the only Guard), `middle` (relays 2..N-1: with more than
//! three relays the middles share this namespace, each on its own port, so they share one
//! shaped queue), `exit` (relayN). The bottleneck is on the router's egress toward `middle`,
//! so downloads are shaped where the exit sends to the middle (as in the C Tor measurement in
//! docs/spec/kist.md, where all circuits share one congested relay-to-relay channel).

use std::net::{SocketAddr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

use clap::ValueEnum;

use super::error::NetError;
use crate::testbed::{Bottleneck, QdiscStats, Testbed, TestbedError, TestbedSpec, ROUTER};
use crate::units::{parse_bit_rate, parse_duration, parse_size};

/// Latency (queue limit) when `--bottleneck` gives only a rate.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(50);
/// First ORPort in a relay namespace (the middle namespace counts up from it).
pub const OR_PORT: u16 = 9001;
/// The client's SOCKS port in its namespace.
pub const SOCKS_PORT: u16 = 9050;
/// The host names.
pub const CLIENT: &str = "client";
/// The guard relay's host.
pub const GUARD: &str = "guard";
/// The middle relays' host (the bottleneck is toward it).
pub const MIDDLE: &str = "middle";
/// The exit relay's host.
pub const EXIT: &str = "exit";

/// The hosts in spec order (host i is 10.N.i.2; the router's veth toward it is `h<i>`).
pub const HOSTS: [&str; 4] = [CLIENT, GUARD, MIDDLE, EXIT];
/// The router's veth toward the middle namespace (third host): where the tbf sits.
pub const BOTTLENECK_DEV: &str = "h3";

/// The bottleneck counters of a running `kistrel net --bottleneck` whose ready line said
/// `netns=PREFIX` (for a harness that started it as a child).
pub fn bottleneck_stats(prefix: &str) -> Result<QdiscStats, TestbedError> {
    QdiscStats::read(&format!("{prefix}{ROUTER}"), BOTTLENECK_DEV)
}

/// `--bottleneck RATE[,LATENCY]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BottleneckArg {
    /// Bits per second.
    pub rate_bit_s: u64,
    /// tbf queue limit as a wait time.
    pub latency: Duration,
}

/// Parse `25mbit,42ms` (or `25mbit`, latency [`DEFAULT_LATENCY`]).
pub fn parse_bottleneck(value: &str) -> Result<BottleneckArg, String> {
    let (rate, latency) = match value.split_once(',') {
        Some((r, l)) => (r, Some(l)),
        None => (value, None),
    };
    let rate_bit_s = parse_bit_rate(rate).map_err(|e| format!("rate {e}"))?;
    let latency = match latency {
        Some(l) => parse_duration(l).map_err(|e| format!("latency {e}"))?,
        None => DEFAULT_LATENCY,
    };
    if latency.is_zero() {
        return Err("latency must be positive (it is tbf's queue limit)".into());
    }
    Ok(BottleneckArg {
        rate_bit_s,
        latency,
    })
}

/// `--tcp-wmem MIN,DEF,MAX|default`: `None` is the kernel default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WmemArg(pub Option<[u32; 3]>);

/// Parse `4MiB,4MiB,4MiB`, `4096,16384,4194304` or `default`.
pub fn parse_wmem(value: &str) -> Result<WmemArg, String> {
    if value.trim() == "default" {
        return Ok(WmemArg(None));
    }
    let parts = value
        .split(',')
        .map(|p| {
            let bytes = parse_size(p).map_err(|e| e.to_string())?;
            u32::try_from(bytes)
                .ok()
                .filter(|b| *b > 0)
                .ok_or_else(|| format!("{p:?}: want 1 byte to 4 GiB"))
        })
        .collect::<Result<Vec<u32>, String>>()?;
    match parts[..] {
        [min, def, max] if min <= def && def <= max => Ok(WmemArg(Some([min, def, max]))),
        [_, _, _] => Err("need MIN <= DEF <= MAX".into()),
        _ => Err("expected MIN,DEF,MAX (e.g. 4MiB,4MiB,4MiB) or `default`".into()),
    }
}

/// `--congestion` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CongestionArg {
    /// CUBIC (the default with --bottleneck: the KIST papers used loss-based TCP).
    Cubic,
    /// BBR.
    Bbr,
    /// Reno.
    Reno,
    /// The kernel's default for new namespaces.
    Default,
}

impl CongestionArg {
    fn name(self) -> Option<&'static str> {
        match self {
            CongestionArg::Cubic => Some("cubic"),
            CongestionArg::Bbr => Some("bbr"),
            CongestionArg::Reno => Some("reno"),
            CongestionArg::Default => None,
        }
    }
}

/// The host of each node: `relay1` guard, last relay exit, the rest middle.
pub fn host_of(name: &str, relays: usize) -> &'static str {
    match name
        .strip_prefix("relay")
        .and_then(|k| k.parse::<usize>().ok())
    {
        Some(1) => GUARD,
        Some(k) if k == relays => EXIT,
        Some(_) => MIDDLE,
        None => CLIENT,
    }
}

/// The testbed spec: the four hosts, the bottleneck toward `middle`, cubic unless told
/// otherwise, kernel-default send buffers unless told otherwise.
pub fn spec(
    bottleneck: BottleneckArg,
    congestion: Option<CongestionArg>,
    wmem: Option<WmemArg>,
) -> TestbedSpec {
    TestbedSpec {
        hosts: HOSTS.map(String::from).to_vec(),
        bottleneck: Some(Bottleneck {
            toward: MIDDLE.into(),
            rate_bit_s: bottleneck.rate_bit_s,
            latency: bottleneck.latency,
        }),
        congestion: congestion
            .unwrap_or(CongestionArg::Cubic)
            .name()
            .map(String::from),
        tcp_wmem: wmem.and_then(|w| w.0),
    }
}

/// A built testbed with the network's addresses.
#[derive(Debug)]
pub struct Shaped {
    /// The namespaces.
    pub testbed: Testbed,
    /// One ORPort per relay, in relay order.
    pub or_ports: Vec<SocketAddr>,
    /// The client's SOCKS address.
    pub socks: SocketAddr,
    /// `accept 10.N.0.0/16:*`.
    pub exit_policy: String,
    relays: usize,
}

impl Shaped {
    /// Build the testbed for `relays` relays (at least 3).
    pub fn create(spec: &TestbedSpec, relays: usize) -> Result<Shaped, NetError> {
        let testbed = Testbed::create(spec)?;
        let mut middle_port = OR_PORT;
        let mut or_ports = Vec::with_capacity(relays);
        for k in 1..=relays {
            let host = host_of(&format!("relay{k}"), relays);
            let port = if host == MIDDLE {
                middle_port = middle_port.checked_add(1).ok_or_else(|| NetError::Layout {
                    problem: "too many middle relays for one namespace's ports".into(),
                })?;
                middle_port - 1
            } else {
                OR_PORT
            };
            or_ports.push(SocketAddr::V4(SocketAddrV4::new(testbed.addr(host)?, port)));
        }
        let socks = SocketAddr::V4(SocketAddrV4::new(testbed.addr(CLIENT)?, SOCKS_PORT));
        let (net, bits) = testbed.range();
        Ok(Shaped {
            exit_policy: format!("accept {net}/{bits}:*"),
            testbed,
            or_ports,
            socks,
            relays,
        })
    }

    /// `PROGRAM` for child `name` (`relayK` or `client`), inside its namespace.
    pub fn command(&self, name: &str, program: &std::path::Path) -> Result<Command, NetError> {
        Ok(self.testbed.command(host_of(name, self.relays), program)?)
    }

    /// What the ready line gains: ` netns=PREFIX host=10.N.0.2`.
    pub fn ready_suffix(&self) -> String {
        format!(
            " netns={} host={}",
            self.testbed.prefix(),
            self.testbed.host_addr()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bottleneck_values_parse() {
        assert_eq!(
            parse_bottleneck("25mbit,42ms"),
            Ok(BottleneckArg {
                rate_bit_s: 25_000_000,
                latency: Duration::from_millis(42)
            })
        );
        assert_eq!(
            parse_bottleneck("1gbit"),
            Ok(BottleneckArg {
                rate_bit_s: 1_000_000_000,
                latency: DEFAULT_LATENCY
            })
        );
        let e = parse_bottleneck("25mbps,42ms").unwrap_err();
        assert!(e.starts_with("rate \"25mbps\": unknown unit"), "{e}");
        let e = parse_bottleneck("25mbit,42").unwrap_err();
        assert!(e.starts_with("latency \"42\" has no unit"), "{e}");
        let e = parse_bottleneck("25mbit,0ms").unwrap_err();
        assert!(e.contains("latency must be positive"), "{e}");
        assert!(parse_bottleneck("").is_err());
    }

    #[test]
    fn wmem_values_parse() {
        assert_eq!(parse_wmem("default"), Ok(WmemArg(None)));
        assert_eq!(
            parse_wmem("4MiB,4MiB,4MiB"),
            Ok(WmemArg(Some([4 << 20; 3])))
        );
        assert_eq!(
            parse_wmem("4096,16384,4194304"),
            Ok(WmemArg(Some([4096, 16384, 4_194_304])))
        );
        assert!(parse_wmem("4096,16384").is_err());
        assert!(parse_wmem("8192,4096,4096").is_err());
        assert!(parse_wmem("big,4096,4096").is_err());
    }

    #[test]
    fn the_bottleneck_device_is_the_middles() {
        let i = HOSTS.iter().position(|h| *h == MIDDLE).unwrap() + 1;
        assert_eq!(BOTTLENECK_DEV, format!("h{i}"));
    }

    #[test]
    fn roles_are_fixed_by_position() {
        assert_eq!(host_of("relay1", 3), GUARD);
        assert_eq!(host_of("relay2", 3), MIDDLE);
        assert_eq!(host_of("relay3", 3), EXIT);
        assert_eq!(host_of("relay4", 5), MIDDLE);
        assert_eq!(host_of("relay5", 5), EXIT);
        assert_eq!(host_of("client", 3), CLIENT);
    }

    #[test]
    fn spec_defaults_to_cubic_and_kernel_buffers() {
        let b = parse_bottleneck("20mbit,40ms").unwrap();
        let s = spec(b, None, None);
        assert_eq!(s.hosts, ["client", "guard", "middle", "exit"]);
        assert_eq!(s.congestion.as_deref(), Some("cubic"));
        assert_eq!(s.tcp_wmem, None);
        let bn = s.bottleneck.clone().unwrap();
        assert_eq!(bn.toward, "middle");
        assert_eq!(bn.rate_bit_s, 20_000_000);
        assert_eq!(bn.latency, Duration::from_millis(40));
        s.validate().unwrap();
        let s = spec(
            b,
            Some(CongestionArg::Default),
            Some(WmemArg(Some([1, 2, 3]))),
        );
        assert_eq!(s.congestion, None);
        assert_eq!(s.tcp_wmem, Some([1, 2, 3]));
    }
}
