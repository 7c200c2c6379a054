//! `kistrel net` as a child of the bench: started with `--metrics`, its ready line parsed,
//! its processes found, its nodes' metrics scraped, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::scrape::{self, NodeSchedMetrics};
use super::BenchArgs;
use crate::error::CliError;

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
    pub(super) fn start(args: &BenchArgs, dir: &Path) -> Result<Self, CliError> {
        Self::start_with(args, dir, 3, false, &[])
    }

    /// As [`NetChild::start`] with `relays` relays, `--keep-going` (relays may die) and
    /// `extra` arguments for `kistrel net` (e.g. `--bottleneck`).
    pub(super) fn start_with(
        args: &BenchArgs,
        dir: &Path,
        relays: u16,
        keep_going: bool,
        extra: &[String],
    ) -> Result<Self, CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::runtime("finding the kistrel executable", e))?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "net",
            "--relays",
            &relays.to_string(),
            "--workers",
            &args.workers.to_string(),
            "--backend",
            &args.backend,
            "--metrics",
            "--dir",
        ])
        .arg(dir);
        if let Some(s) = &args.scheduler {
            cmd.args(["--scheduler", s]);
        }
        if keep_going {
            cmd.arg("--keep-going");
        }
        cmd.args(extra);
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
    pub(super) fn scrape(&self, seconds: f64) -> Vec<NodeSchedMetrics> {
        let mut out = Vec::new();
        for (node, addr) in &self.metrics {
            match scrape::fetch(*addr) {
                Ok(text) => out.push(scrape::summarise(node, &text, seconds)),
                Err(e) => eprintln!("kistrel bench: metrics of {node} at {addr}: {e}"),
            }
        }
        out
    }

    /// The network's processes by role, found by their config file on the command line.
    pub(super) fn pids(&self) -> Vec<(String, i32)> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return found;
        };
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if !cmdline.contains(&*self.dir.to_string_lossy()) {
                continue;
            }
            // The config's file name is the role: relayK.toml or client.toml.
            let role = cmdline.split_whitespace().find_map(|arg| {
                let name = Path::new(arg)
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".toml")?;
                let relay = name
                    .strip_prefix("relay")
                    .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
                (relay || name == "client").then(|| name.to_owned())
            });
            if let Some(role) = role {
                found.push((role, pid));
            }
        }
        found.sort();
        found
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
