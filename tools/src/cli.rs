//! Command-line syntax (clap derive) and dispatch to the subcommands in [`crate::cmd`].

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::cmd;
use crate::config::{ClientConf, ConfigError, Override, RelayConf};
use crate::error::CliError;

/// kistrel: a relay forwarding engine for onion-routing networks (Tor's cell protocol).
#[derive(Debug, Parser)]
#[command(name = "kistrel", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a relay (guard, middle or exit, by config).
    Relay(ConfArgs),
    /// Run a client: builds circuits, serves SOCKS5.
    Client(ConfArgs),
    /// Run a whole local network: relays and a client on 127.0.0.1.
    Net(cmd::net::NetArgs),
    /// Circuit build timeout tools.
    Cbt(cmd::cbt::CbtArgs),
    /// Path selection tools.
    Path(cmd::path::PathArgs),
    /// Write a fresh relay key file.
    Keygen(cmd::keygen::KeygenArgs),
    /// Bring up a network, drive it with traffic, report.
    Bench(Box<cmd::bench::BenchArgs>),
    /// Traffic generator: a server of seeded data and a client that fetches by models.
    Tgen(cmd::tgen::TgenArgs),
}

/// `-c FILE [-o KEY=VALUE]...`.
#[derive(Debug, Clone, Args)]
pub struct ConfArgs {
    /// TOML config file (torrc key names).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Override a config key, e.g. -o Workers=2 -o ORPort=127.0.0.1:9001.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Serve Prometheus metrics on ADDR (`-o MetricsPort=ADDR`; port 0 picks one and prints
    /// `metrics addr=ADDR` on stdout).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Print the effective configuration (every key, defaults filled in, as TOML that loads
    /// back to the same configuration) and exit without starting anything.
    #[arg(long)]
    pub print_config: bool,
    /// Run on these CPUs, e.g. 0,2-3 (`-o CPUAffinity=LIST`): the process is confined to them
    /// and worker i pinned to the i-th. Default: nothing pinned.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<crate::placement::CpuList>,
}

impl ConfArgs {
    /// The overrides, parsed (`--metrics` and `--cpus` last, so they win).
    pub fn parsed_overrides(&self) -> Result<Vec<Override>, ConfigError> {
        let mut all: Vec<Override> = self
            .overrides
            .iter()
            .map(|o| Override::parse(o))
            .collect::<Result<_, _>>()?;
        if let Some(addr) = self.metrics {
            all.push(Override::parse(&format!("MetricsPort={addr}"))?);
        }
        if let Some(cpus) = &self.cpus {
            all.push(Override::parse(&format!("CPUAffinity={cpus}"))?);
        }
        Ok(all)
    }
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Relay(args) => {
            crate::parent::exit_with_parent();
            let conf = RelayConf::load(&args.config, &args.parsed_overrides()?)?;
            if args.print_config {
                print!("{}", conf.effective_toml());
                return Ok(());
            }
            cmd::relay::run(conf)
        }
        Command::Client(args) => {
            crate::parent::exit_with_parent();
            let conf = ClientConf::load(&args.config, &args.parsed_overrides()?)?;
            if args.print_config {
                print!("{}", conf.effective_toml());
                return Ok(());
            }
            cmd::client::run(conf)
        }
        Command::Net(args) => Ok(cmd::net::run(args, cli.verbose)?),
        Command::Cbt(args) => Ok(cmd::cbt::run(args)?),
        Command::Path(args) => Ok(cmd::path::run(args)?),
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Bench(args) => cmd::bench::run(*args),
        Command::Tgen(args) => cmd::tgen::run(args),
    }
}
