//! `kistrel net` as a child of the bench: started with `--metrics`, its ready line parsed,
//! its processes found, its nodes' histograms fetched, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use kistrel_sched::SchedulerKind;

use super::nodes::{self, NodeSchedMetrics};
use super::procs;
use crate::cmd::args::scheduler_parser;
use crate::config::{Backend, LinksMode};
use crate::error::CliError;
use crate::placement::CpuList;

/// The network every bench job brings up: options shared by all of them.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Worker threads per relay and client.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Scheduler for every node: KIST, KISTLite or Vanilla (any case; default: KIST,
    /// falling back as Tor does).
    #[arg(long, ignore_case = true, value_parser = scheduler_parser())]
    pub scheduler: Option<SchedulerKind>,
    /// Runtime backend for every node (any case).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Links between the nodes: `tls` (Tor's link protocol) or `plain` (a benchmark mode:
    /// no encryption; see `--compare-links`).
    #[arg(long, value_enum, default_value_t = LinksMode::Tls)]
    pub links: LinksMode,
    /// Folder for the network's files and logs (default: a fresh temp folder, kept and
    /// named when the job fails).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// The CPUs the job may use, for its nodes and its load generator (default: every CPU
    /// this process may use). Each node gets its own CPUs when there are at least as many
    /// CPUs as nodes; otherwise nothing is pinned (the report says which).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<CpuList>,
    /// Pin nothing: the kernel places every thread.
    #[arg(long, conflicts_with = "cpus")]
    pub no_pin: bool,
    /// Testing: every relay burns this much CPU per transmitted cell (`TestingCellCost`),
    /// e.g. 500ns. `bench check --self-check` sets it.
    #[arg(long, value_name = "DURATION", value_parser = crate::cmd::args::duration, hide = true)]
    pub testing_cell_cost: Option<Duration>,
}

/// The CPUs a job gives `kistrel net`'s nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum NetCpus {
    /// `kistrel net` decides over every CPU it may use.
    #[default]
    Auto,
    /// `--cpus LIST`: net places its nodes on these.
    Only(CpuList),
    /// `--no-pin`.
    NoPin,
}

/// What else a job asks of `kistrel net`.
#[derive(Debug, Clone, Default)]
pub(super) struct NetShape {
    /// Relays (at least 3).
    pub relays: u16,
    /// `--keep-going`: relays may die (the soak kills them).
    pub keep_going: bool,
    /// More `kistrel net` arguments (e.g. `--bottleneck`).
    pub extra: Vec<String>,
    /// Where its nodes run.
    pub cpus: NetCpus,
}

impl NetShape {
    /// Three relays, nothing else.
    pub(super) fn three_hops() -> Self {
        NetShape {
            relays: 3,
            ..NetShape::default()
        }
    }
}

/// `kistrel net` as a child process.
pub(super) struct NetChild {
    child: Child,
    pub(super) socks: SocketAddr,
    dir: PathBuf,
    /// Each node's MetricsPort, from the ready line.
    metrics: Vec<(String, SocketAddr)>,
    /// `host=`: the root namespace's address in a shaped network (where servers listen).
    pub(super) host: Option<std::net::Ipv4Addr>,
    /// `netns=`: the namespace prefix of a shaped network.
    pub(super) netns: Option<String>,
}

impl NetChild {
    /// Starts `kistrel net` with `nodes` and `shape` in `dir` and waits for its ready line.
    pub(super) fn start(nodes: &NodeArgs, shape: &NetShape, dir: &Path) -> Result<Self, CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::runtime("finding the kistrel executable", e))?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "net",
            "--relays",
            &shape.relays.to_string(),
            "--workers",
            &nodes.workers.to_string(),
            "--backend",
            nodes.backend.name(),
            "--links",
            nodes.links.name(),
            "--metrics",
            "--dir",
        ])
        .arg(dir);
        if let Some(s) = nodes.scheduler {
            cmd.args(["--scheduler", s.name()]);
        }
        if shape.keep_going {
            cmd.arg("--keep-going");
        }
        match &shape.cpus {
            NetCpus::Auto => {}
            NetCpus::Only(c) => {
                cmd.args(["--cpus", &c.to_string()]);
            }
            NetCpus::NoPin => {
                cmd.arg("--no-pin");
            }
        }
        if let Some(cost) = nodes.testing_cell_cost {
            cmd.args([
                "-o",
                &format!("TestingCellCost={}", humantime::format_duration(cost)),
            ]);
        }
        cmd.args(&shape.extra);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::runtime("starting kistrel net", e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| CliError::runtime("kistrel net", "no stdout"))?;
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let socks = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("socks="))
            .and_then(|a| a.parse().ok());
        let Some(socks) = socks else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CliError::runtime(
                "kistrel net",
                format!("no ready line (logs in {})", dir.display()),
            ));
        };
        let metrics = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("metrics="))
            .map(|list| {
                list.split(',')
                    .filter_map(|e| {
                        let (name, addr) = e.split_once('@')?;
                        Some((name.to_owned(), addr.parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let token = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(str::to_owned)
        };
        Ok(NetChild {
            child,
            socks,
            dir: dir.to_path_buf(),
            metrics,
            host: token("host=").and_then(|h| h.parse().ok()),
            netns: token("netns="),
        })
    }

    /// Every node's scheduler figures now; `seconds` is how long the phase ran. A node whose
    /// page cannot be read is left out with a warning (the figures are a report, not a check).
    pub(super) fn scheduler_figures(&self, seconds: f64) -> Vec<NodeSchedMetrics> {
        let mut out = Vec::new();
        for (node, addr) in &self.metrics {
            let summary = nodes::fetch(*addr)
                .map_err(|e| e.to_string())
                .and_then(|page| nodes::summarise(node, &page, seconds).map_err(|e| e.to_string()));
            match summary {
                Ok(m) => out.push(m),
                Err(e) => eprintln!("kistrel bench: metrics of {node} at {addr}: {e}"),
            }
        }
        out
    }

    /// The network's processes by role, found by their config file on the command line.
    pub(super) fn pids(&self) -> Vec<(String, i32)> {
        procs::find(&self.dir)
    }

    pub(super) fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
