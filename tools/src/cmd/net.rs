//! `kistrel net`: a whole local network on this machine.
//!
//! Writes keys, per-relay configs and a directory into `--dir` (default: a fresh folder under
//! the temp dir, kept afterwards: it holds the logs), starts the relays and one client as
//! children of this binary (`kistrel relay -c ...`, `kistrel client -c ...`), waits for the
//! client's `ready socks=ADDR` line, then prints one line on stdout:
//!
//! ```text
//! ready socks=127.0.0.1:PORT relays=NAME:KIND@ADDR,... dir=PATH [metrics=NAME@ADDR,...]
//! ```
//!
//! where each relay is `NAME:KIND@ADDR`, e.g. `relay1:kistrel@127.0.0.1:40123`.
//!
//! With `--ctor-relays C` a private C Tor network (authorities `auth1..`, exit relays
//! `ctor1..`; see [`crate::ctor`]) starts first; once its consensus lists every C Tor relay
//! they join the client's directory and the ready line (`ctor1:ctor@ADDR`). `--path
//! GUARD,MIDDLE,EXIT` pins the client's path (EntryNodes/MiddleNodes/ExitNodes).
//!
//! It runs until SIGINT/SIGTERM, then stops every child (SIGTERM, 5 s, SIGKILL), reaps
//! them, and exits 0. A child that dies on its own is reported (which, exit status, its log)
//! and the rest are stopped; exit 1.
//!
//! With `--bottleneck RATE[,LATENCY]` (root only; see [`shaped`] and [`crate::testbed`]) the
//! relays and the client run in network namespaces behind a router with a tbf toward the
//! middle relay(s), on addresses 10.N.*.2; the ready line then reads
//!
//! ```text
//! ready socks=10.N.1.2:9050 relays=relay1:kistrel@10.N.2.2:9001,... dir=PATH netns=kt<PID>- host=10.N.0.2
//! ```
//!
//! where `host` is this machine's own address on the testbed (serve targets there: the exit
//! accepts 10.N.0.0/16). The namespaces are deleted when `kistrel net` ends, however it ends
//! (short of SIGKILL, whose leftovers the next testbed removes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use kistrel_sched::SchedulerKind;

use crate::cmd::args::scheduler_parser;
use crate::config::{Backend, ClientConf, ConfigError, LinksMode, Override, RelayConf};
use crate::keys::RelayKeyFolder;

pub mod capacity;
pub mod cpus;
mod ctor;
mod error;
pub mod layout;
pub mod shaped;
mod supervise;

pub use error::NetError;
pub use layout::{write_layout, Layout, LayoutOptions};
use shaped::{BottleneckArg, CongestionArg, Shaped, WmemArg};

/// Environment variable that replaces the child program (default: this binary). For tests
/// and wrappers: the program is run as `PROGRAM relay -c FILE [-o ..]` and
/// `PROGRAM client -c FILE`.
pub const CHILD_EXE_ENV: &str = "KISTREL_NET_CHILD_EXE";

/// `kistrel net` options.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Relays to start (the last one is the exit). Refused (exit 2) beyond what the machine
    /// can hold: (relays + 1) x workers per node must stay within 64 worker threads per core,
    /// 20 MiB per worker of available memory, and the open-file limit (`ulimit -n`).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=1000))]
    pub relays: u16,
    /// The client's SOCKS address (default: a free loopback port).
    #[arg(long, value_name = "ADDR")]
    pub socks: Option<SocketAddr>,
    /// Worker threads per node (default: the config default, one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Scheduler for every node: KIST, KISTLite or Vanilla, any case (default: KIST,
    /// falling back to KISTLite, Vanilla).
    #[arg(long, ignore_case = true, value_parser = scheduler_parser())]
    pub scheduler: Option<SchedulerKind>,
    /// Runtime backend for every node (any case).
    #[arg(long, value_enum, ignore_case = true)]
    pub backend: Option<Backend>,
    /// Links between the nodes: `tls` (the default, Tor's link protocol) or `plain`, a
    /// BENCHMARK MODE ONLY (no encryption, no TLS binding of identities; C Tor refuses it).
    #[arg(long, value_enum)]
    pub links: Option<LinksMode>,
    /// Folder for keys, configs, directory and logs (created if missing; default: a fresh
    /// folder in the temp dir, kept after exit).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Relay config override forwarded to every relay, e.g. -o MaxMemInQueues=64MB.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Give up if the client has not reported ready after this long (a duration with its
    /// unit, e.g. 60s or 2min); with --ctor-relays the C Tor network's consensus gets as
    /// long again before kistrel's relays start.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = crate::cmd::args::duration)]
    pub ready_timeout: Duration,
    /// When a relay dies after the network is ready, report it on stderr and keep the rest
    /// running (fault-injection runs); by default net stops everything and exits 1.
    #[arg(long)]
    pub keep_going: bool,
    /// Every relay and the client serve Prometheus metrics on a free port of their address;
    /// the ready line gains `metrics=relay1@ADDR,...,client@ADDR`.
    #[arg(long)]
    pub metrics: bool,
    /// The shaped testbed (network namespaces behind a bottleneck; root).
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Which CPUs the nodes run on.
    #[command(flatten)]
    pub pin: NetPinArgs,
    /// The C Tor network beside kistrel's relays.
    #[command(flatten)]
    pub ctor: CtorArgs,
    /// Pin the client's path: GUARD,MIDDLE,EXIT nicknames (or $fingerprints), written into
    /// the client config as EntryNodes, MiddleNodes and ExitNodes.
    #[arg(long, value_name = "NICK,NICK,NICK", value_parser = parse_path)]
    pub path: Option<PathPins>,
}

/// `kistrel net`'s shaped-testbed options.
#[derive(Debug, Clone, Args)]
pub struct ShapeArgs {
    /// Run every node in its own network namespace behind a router whose tbf shapes the
    /// traffic toward the middle relay(s): RATE (kbit, mbit, gbit) and the queue limit as a
    /// wait time (ms, s; default 50ms), e.g. 25mbit,42ms. Needs root, `ip` and `tc`.
    #[arg(long, value_name = "RATE[,LATENCY]", value_parser = shaped::parse_bottleneck)]
    pub bottleneck: Option<BottleneckArg>,
    /// With --bottleneck: net.ipv4.tcp_wmem in every namespace, e.g. 4MiB,4MiB,4MiB
    /// (default: the kernel's autotuning).
    #[arg(long, value_name = "MIN,DEF,MAX|default", requires = "bottleneck", value_parser = shaped::parse_wmem)]
    pub tcp_wmem: Option<WmemArg>,
    /// With --bottleneck: TCP congestion control in every namespace (default: cubic).
    #[arg(long, value_enum, requires = "bottleneck")]
    pub congestion: Option<CongestionArg>,
}

/// `kistrel net`'s placement options.
#[derive(Debug, Clone, Args)]
pub struct NetPinArgs {
    /// The CPUs the nodes may run on, e.g. 0-7 or 2,4-6 (default: every CPU this process may
    /// use). Each node gets its own CPUs when there are at least as many as nodes; otherwise
    /// nothing is pinned. Either way one line on stderr says which.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<crate::placement::CpuList>,
    /// Pin nothing (the kernel places every node's threads).
    #[arg(long, conflicts_with = "cpus")]
    pub no_pin: bool,
}

/// `kistrel net`'s C Tor options.
#[derive(Debug, Clone, Args)]
pub struct CtorArgs {
    /// Also start a private C Tor network of this many exit relays (and its authorities,
    /// see --ctor-authorities) on 127.0.0.1, from the system's `tor` and `tor-gencert`; the
    /// client's directory lists them beside kistrel's relays (nicknames ctor1.., auth1..).
    #[arg(long, value_name = "C", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub ctor_relays: u16,
    /// With --ctor-relays: directory authorities of the C Tor network (they are relays too).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub ctor_authorities: u8,
}

/// `--path`: one relay per position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPins(pub [String; 3]);

fn parse_path(s: &str) -> Result<PathPins, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [g, m, e] = parts.as_slice() else {
        return Err(format!(
            "{s:?}: want three relays GUARD,MIDDLE,EXIT, e.g. relay1,ctor1,relay3"
        ));
    };
    for p in [g, m, e] {
        kistrel_pathsel::NodeSpec::parse(p).map_err(|e| e.to_string())?;
    }
    Ok(PathPins([g.to_string(), m.to_string(), e.to_string()]))
}

/// Check that every generated config loads (and the `-o` overrides with it), so a bad
/// override is a config error (exit 2) before anything starts. With `client_directory`
/// false the client's directory is not checked yet (C Tor relays join it later).
pub fn check_layout(
    layout: &Layout,
    overrides: &[Override],
    client_directory: bool,
) -> Result<(), ConfigError> {
    for r in &layout.relays {
        RelayConf::load(&r.config, overrides)?;
    }
    let client = ClientConf::load(&layout.client_config, &[])?;
    if client_directory {
        client.load_directory()?;
    }
    Ok(())
}

/// Run `kistrel net`; `verbose` is forwarded to the children as `-v`s.
pub fn run(args: NetArgs, verbose: u8) -> Result<(), NetError> {
    let overrides = args
        .overrides
        .iter()
        .map(|o| Override::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    check_args(&args, &overrides)?;
    // Before anything is made: a missing tor is a usage error naming the package.
    let (ctor_opts, programs) = ctor::options(&args.ctor, verbose)?;
    // Before anything is built, so a bad --cpus leaves nothing behind.
    let placement = cpus::placement(&args, usize::from(args.relays))?;
    if !args.pin.no_pin {
        eprintln!("kistrel net: {}", placement.describe());
    }
    // Before anything is built: a Ctrl-C from here on stops us through the normal path,
    // which tears the testbed down.
    let stop = supervise::register_signals()?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("kistrel-net-")
            .tempdir()
            .map_err(|source| NetError::Io {
                what: "creating a folder in",
                path: std::env::temp_dir(),
                source,
            })?
            .keep(),
    };
    let n = usize::from(args.relays);
    let shaped = match args.shape.bottleneck {
        Some(b) => Some(Shaped::create(
            &shaped::spec(b, args.shape.congestion, args.shape.tcp_wmem),
            n,
        )?),
        None => None,
    };
    let n_ctor = programs
        .as_ref()
        .map_or(0, |_| ctor::ports_needed(&ctor_opts));
    let (mut ports, socks) = match &shaped {
        Some(s) => (s.or_ports.clone(), s.socks),
        None => loopback_ports(n + n_ctor, args.socks)?,
    };
    let ctor_ports = ports.split_off(n.min(ports.len()));
    let now = std::time::SystemTime::now();
    let keys = (0..n)
        .map(|_| RelayKeyFolder::generate_os(now, &Default::default()))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = LayoutOptions {
        workers: args.workers,
        scheduler: args.scheduler,
        backend: args.backend,
        links: args.links,
        metrics: args.metrics,
        exit_policy: shaped.as_ref().map(|s| s.exit_policy.clone()),
        fixed_roles: shaped.is_some(),
        placement: Some(placement),
        path: args.path.clone(),
    };
    let layout = write_layout(&dir, &ports, keys, socks, &opts)?;
    check_layout(&layout, &overrides, programs.is_none())?;
    let ctor = match &programs {
        Some(p) => Some(ctor::prepare(p, &dir, &ctor_opts, &ctor_ports)?),
        None => None,
    };
    let plan = supervise::Plan {
        program: child_program()?,
        layout,
        overrides: args.overrides.clone(),
        verbose,
        ready_timeout: args.ready_timeout,
        keep_going: args.keep_going,
        metrics: args.metrics,
        shaped: shaped.as_ref(),
        ctor: ctor.as_ref(),
    };
    let result = supervise::run(&plan, &stop);
    // The children are reaped by now; then the namespaces go (also when `run` failed).
    let teardown = match shaped {
        Some(s) => s.testbed.teardown(),
        None => Ok(()),
    };
    result?;
    Ok(teardown?)
}

/// What can be refused before anything is made: options that do not go together, more
/// relays than the machine holds, a shaped network without root or tools.
fn check_args(args: &NetArgs, overrides: &[Override]) -> Result<(), NetError> {
    if args.shape.bottleneck.is_some() && args.socks.is_some() {
        return Err(NetError::SocksWithBottleneck);
    }
    if args.shape.bottleneck.is_some() && args.ctor.ctor_relays > 0 {
        return Err(NetError::CtorWithBottleneck);
    }
    capacity::check(
        u64::from(args.relays),
        workers_per_node(args, overrides),
        capacity::Machine::this(),
    )
    .map_err(NetError::TooManyRelays)?;
    if args.shape.bottleneck.is_some() {
        // Before any folder or namespace exists: without root, say so and leave nothing.
        crate::testbed::exec::check_privileges_and_tools().map_err(NetError::from)?;
    }
    Ok(())
}

/// The program run as each kistrel child: [`CHILD_EXE_ENV`], else this binary.
fn child_program() -> Result<PathBuf, NetError> {
    match std::env::var_os(CHILD_EXE_ENV) {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe().map_err(|source| NetError::Io {
            what: "finding",
            path: PathBuf::from("the kistrel executable"),
            source,
        }),
    }
}

/// `n` free loopback ORPorts and the SOCKS address (`--socks`, checked free, or one more).
fn loopback_ports(
    n: usize,
    socks: Option<SocketAddr>,
) -> Result<(Vec<SocketAddr>, SocketAddr), NetError> {
    let mut ports =
        layout::free_loopback_ports(n + usize::from(socks.is_none())).map_err(NetError::Ports)?;
    let socks = match socks {
        Some(addr) => {
            // Fail early with a usage error rather than through the client's log.
            std::net::TcpListener::bind(addr).map_err(|_| NetError::SocksInUse { addr })?;
            addr
        }
        None => ports.pop().ok_or_else(|| NetError::Layout {
            problem: "no port left for SOCKS".into(),
        })?,
    };
    Ok((ports, socks))
}

/// Worker threads per node: `-o Workers=N`, else `--workers`, else one per core (as the
/// nodes resolve `Workers = 0`).
fn workers_per_node(args: &NetArgs, overrides: &[Override]) -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let from_override = overrides
        .iter()
        .rev()
        .find(|o| o.key == "Workers")
        .and_then(|o| o.value.as_integer())
        .and_then(|n| usize::try_from(n).ok());
    match from_override.or(args.workers) {
        Some(0) | None => cores as u64,
        Some(n) => n as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_takes_three_relays() {
        let p = parse_path("relay1, ctor1,relay3").unwrap();
        assert_eq!(p.0, ["relay1", "ctor1", "relay3"]);
        for bad in ["relay1,relay2", "a,b,c,d", "a,,c", "a,{us},c"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        let e = parse_path("relay1").unwrap_err();
        assert!(e.contains("GUARD,MIDDLE,EXIT"), "{e}");
    }
}
