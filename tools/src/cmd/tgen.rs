//! `kistrel tgen server|client`: the traffic generator's CLI over [`crate::tgen`].
//!
//! ```text
//! kistrel tgen server --listen 127.0.0.1:0          # prints `ready addr=IP:PORT`
//! kistrel tgen client --server ADDR [--socks ADDR] --model web --flows 6 --model bulk --flows 5 \
//!     [--count N | --duration 60s] [--seed S] [--json FILE] [--hdr-log FILE]
//! ```

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::cmd::args::duration;
use crate::error::CliError;
use crate::runner;
use crate::tgen::server::Fault;
use crate::tgen::{self, Arrivals, ClientOptions, Model, ModelFlows, Server, TgenError, ThinkTime};

/// `kistrel tgen`.
#[derive(Debug, Args)]
pub struct TgenArgs {
    /// Server or client.
    #[command(subcommand)]
    pub command: TgenCommand,
}

/// The tgen roles.
#[derive(Debug, Subcommand)]
pub enum TgenCommand {
    /// Serve seeded data until SIGINT/SIGTERM; prints `ready addr=IP:PORT` on stdout.
    Server(ServerArgs),
    /// Fetch from a tgen server following traffic models; report per transfer and model.
    Client(Box<ClientArgs>),
}

/// `kistrel tgen server` options.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on (port 0: a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Test only: `tamper:OFFSET` flips a bit at OFFSET, `short:BYTES` closes BYTES early.
    #[arg(long, hide = true)]
    pub fault: Option<String>,
}

/// `kistrel tgen client` options.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The tgen server.
    #[arg(long, value_name = "ADDR")]
    pub server: SocketAddr,
    /// Go through this SOCKS5 port (one username, so one circuit, per flow); absent: direct.
    #[arg(long, value_name = "ADDR")]
    pub socks: Option<SocketAddr>,
    /// A model: web (320 KiB, think 1-60 s), bulk (5 MiB back to back), perf (OnionPerf
    /// sizes, open loop at 15/hour per flow unless --rate) or FILE.toml. Repeatable.
    #[arg(long = "model", value_name = "MODEL", required = true)]
    pub models: Vec<String>,
    /// Flows of the model given at the same position (the i-th --flows goes with the i-th
    /// --model; 1 for models without one).
    #[arg(long = "flows", value_name = "N")]
    pub flows: Vec<u32>,
    /// Stop starting transfers after this long (a duration with its unit: 90s, 5min,
    /// 500ms); running ones finish. With --count: whichever comes first. Neither: until SIGINT.
    #[arg(long, value_name = "D", value_parser = duration)]
    pub duration: Option<Duration>,
    /// Transfers per flow (overrides a model file's `count`).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the JSON report (schema kistrel.tgen/1) to FILE (`-`: stdout; the table goes
    /// to stderr either way).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write an HdrHistogram interval log of TTFB and TTLB here (µs; tags MODEL.ttfb,
    /// MODEL.ttlb).
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Interval of the HdrHistogram log.
    #[arg(long, value_name = "D", value_parser = duration, default_value = "1s")]
    pub hdr_interval: Duration,
    /// Think time of closed-loop models: const:S, uniform:LO,HI, exp:MEAN,
    /// lognormal:MU,SIGMA or pareto:SCALE,SHAPE (seconds).
    #[arg(long, value_name = "DIST", value_parser = ThinkTime::parse_cli)]
    pub think: Option<ThinkTime>,
    /// Arrivals per second per flow of open-loop models (perf).
    #[arg(long, value_name = "PER_S")]
    pub rate: Option<f64>,
    /// Exit 0 even if transfers failed.
    #[arg(long)]
    pub allow_failures: bool,
    /// A peer that sends nothing this long after a request is not a tgen server: the
    /// transfer fails as `protocol` and the report says so.
    #[arg(long, value_name = "D", value_parser = duration, default_value = "30s")]
    pub first_byte_timeout: Duration,
}

/// Runs `kistrel tgen`.
pub fn run(args: TgenArgs) -> Result<(), CliError> {
    match args.command {
        TgenCommand::Server(a) => server(a),
        TgenCommand::Client(a) => client(*a),
    }
}

fn parse_fault(s: &str) -> Result<Fault, TgenError> {
    let bad = || {
        TgenError::Usage(format!(
            "--fault `{s}`: expected tamper:OFFSET or short:BYTES"
        ))
    };
    let (kind, n) = s.split_once(':').ok_or_else(bad)?;
    let n: u64 = n.parse().map_err(|_| bad())?;
    match kind {
        "tamper" => Ok(Fault::Tamper { at: n }),
        "short" => Ok(Fault::Short { by: n }),
        _ => Err(bad()),
    }
}

fn server(a: ServerArgs) -> Result<(), CliError> {
    let fault = a
        .fault
        .as_deref()
        .map(parse_fault)
        .transpose()?
        .unwrap_or_default();
    let stop = runner::stop_flag()?;
    let server = Server::start_with_fault(a.listen, fault)?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready addr={}", server.addr());
        let _ = out.flush();
    }
    while !runner::stopping(&stop) {
        std::thread::sleep(runner::CONTROL_TICK);
    }
    drop(server);
    Ok(())
}

fn options(a: &ClientArgs) -> Result<ClientOptions, TgenError> {
    if a.flows.len() > a.models.len() {
        return Err(TgenError::Usage(format!(
            "{} --flows for {} --model: each --flows goes with the --model at its position",
            a.flows.len(),
            a.models.len()
        )));
    }
    if a.first_byte_timeout.is_zero() {
        return Err(TgenError::Usage("--first-byte-timeout must be > 0".into()));
    }
    if a.count == Some(0) {
        return Err(TgenError::Usage("--count must be >= 1".into()));
    }
    if let Some(r) = a.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(TgenError::Usage("--rate must be > 0".into()));
        }
    }
    let mut models = Vec::new();
    for (i, spec) in a.models.iter().enumerate() {
        let mut model = Model::from_spec(spec)?;
        match &mut model.arrivals {
            Arrivals::Closed { think } => {
                if let Some(t) = a.think {
                    *think = Some(t);
                }
            }
            Arrivals::Open { rate } => {
                if let Some(r) = a.rate {
                    *rate = r;
                }
            }
        }
        let flows = a.flows.get(i).copied().unwrap_or(1);
        models.push(ModelFlows { model, flows });
    }
    let mut opts = ClientOptions::new(a.server);
    opts.socks = a.socks;
    opts.models = models;
    opts.count = a.count;
    opts.duration = a.duration;
    opts.seed = a.seed;
    opts.hdr_log = a.hdr_log.clone();
    opts.hdr_interval = a.hdr_interval;
    opts.first_byte_timeout = a.first_byte_timeout;
    Ok(opts)
}

fn client(a: ClientArgs) -> Result<(), CliError> {
    let mut opts = options(&a)?;
    let stop = runner::stop_flag()?;
    let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    if tty {
        let total = opts
            .count
            .map(|c| c * opts.models.iter().map(|m| u64::from(m.flows)).sum::<u64>());
        let (bar, template) = match total {
            Some(n) => (
                indicatif::ProgressBar::new(n),
                "{bar:40} {pos}/{len} transfers ({per_sec}){msg}, {elapsed}",
            ),
            None => (
                indicatif::ProgressBar::new_spinner(),
                "{spinner} {pos} transfers ({per_sec}){msg}, {elapsed}",
            ),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(250));
        opts.progress = Some(bar);
    }
    let report = tgen::run_client(&opts, &stop)?;
    if let Some(bar) = &opts.progress {
        bar.finish_and_clear();
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::runtime("encoding the report", e))?;
        crate::cmd::args::write_json(path, &text).map_err(|e| TgenError::Write {
            path: path.clone(),
            source: e,
        })?;
    }
    eprint!("{}", report.table());
    if report.interrupted > 0 {
        eprintln!(
            "{} transfers interrupted by the stop signal (not recorded)",
            report.interrupted
        );
    }
    let failed = report.failed();
    if failed > 0 && !a.allow_failures {
        return Err(TgenError::Failures {
            failed,
            total: report.transfers.len() as u64,
        }
        .into());
    }
    Ok(())
}
