//! Relay and client config files: flat TOML with Tor's torrc key names, plus `-o KEY=VALUE`
//! overrides applied before validation.
//!
//! ```toml
//! # relay.toml
//! Nickname = "guard1"
//! ORPort = "127.0.0.1:9001"
//! KeyFile = "guard1-keys.toml"        # relative to this file's folder
//! ExitPolicy = ["accept 127.0.0.0/8:*"] # absent: not an exit
//! Workers = 0                          # 0 = one per core
//! Schedulers = "KIST,KISTLite,Vanilla"
//! MaxMemInQueues = "512 MB"
//! ChannelHandshakeTimeout = "30 s"     # kistrel's: close links that do not finish VERSIONS/NETINFO
//! DoSCircuitCreationEnabled = 1        # per-channel CREATE limit (Tor's names, see below)
//! DoSCircuitCreationRate = 100         # CREATE cells per second, sustained
//! DoSCircuitCreationBurst = 2000       # CREATE cells at once
//! ```
//!
//! Every problem is a [`ConfigError`] naming the file, the line (or `-o`), the key and what
//! to do; all of them map to exit code 2.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kistrel_base::{ErrorKind, HasKind};
use kistrel_engine::relay::CircuitCreationLimit;
use kistrel_pathsel::{CbtConfig, DirError, Directory, ExitPolicy, PathConfig};
pub use kistrel_sched::SchedulerKind;

use crate::keys::{KeyError, RelayKeyFile};

mod table;
mod value;

use table::ConfTable;
pub use table::{At, Origin, Override};

/// Why a config could not be used. Every variant is a usage/config problem (exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source} (check the path given to -c)", file.display())]
    Read {
        /// The config file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML.
    #[error("{}: TOML syntax error: {message}", At(file, *origin))]
    Syntax {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The toml crate's message.
        message: String,
    },
    /// A key this kind of config does not have.
    #[error("{}: unknown key `{key}`{}", At(file, *origin), suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The key as written.
        key: String,
        /// A known key spelled alike.
        suggestion: Option<&'static str>,
    },
    /// A required key is absent.
    #[error("{}: missing required key `{key}`", file.display())]
    MissingKey {
        /// The config file.
        file: PathBuf,
        /// The key.
        key: &'static str,
    },
    /// A value of the wrong type or out of range.
    #[error("{}: key `{key}`: {problem}", At(file, *origin))]
    BadValue {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The key.
        key: String,
        /// What is wrong and what is wanted.
        problem: String,
    },
    /// A path-valued key names a file that cannot be read.
    #[error("{}: key `{key}`: cannot open {}: {source}", At(file, *origin), path.display())]
    MissingFile {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The key.
        key: &'static str,
        /// The path as resolved (relative paths are taken from the config file's folder).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `DirectoryFile` names a malformed directory.
    #[error("{}: key `DirectoryFile`: {} {source}", At(file, *origin), path.display())]
    Directory {
        /// The config file.
        file: PathBuf,
        /// Where.
        origin: Origin,
        /// The directory file.
        path: PathBuf,
        /// What is wrong in it (with its line).
        #[source]
        source: DirError,
    },
    /// `-o` text that is not `KEY=VALUE`.
    #[error("bad override {text:?}: want -o KEY=VALUE, e.g. -o Workers=2")]
    BadOverride {
        /// The text given.
        text: String,
    },
    /// A listen address is taken. The runtime returns this when `bind` fails with
    /// `EADDRINUSE`, so the user hears which key to change.
    #[error("{}: key `{key}`: address {addr} is already in use (pick another port or stop the process using it)", file.display())]
    PortInUse {
        /// The config file.
        file: PathBuf,
        /// `ORPort`, `SocksPort` or `MetricsPort`.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
    },
}

impl HasKind for ConfigError {
    /// Every config problem is the operator's to fix (a taken port included: pick another).
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadConfig
    }
}

/// Runtime backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// io_uring (Linux); the runtime falls back to `Poll` when the kernel lacks features.
    Uring,
    /// Portable readiness polling.
    Poll,
}

impl Backend {
    /// `"uring"` or `"poll"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Poll => "poll",
        }
    }

    /// Case-insensitive inverse of [`Backend::name`].
    pub fn from_name(s: &str) -> Option<Backend> {
        [Backend::Uring, Backend::Poll]
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// Keys shared by relay and client: threads, backend, scheduling.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConf {
    /// `Workers`: worker threads; 0 = one per core (see [`RuntimeConf::effective_workers`]).
    pub workers: usize,
    /// `Backend`.
    pub backend: Backend,
    /// `Schedulers`: first usable one wins.
    pub schedulers: Vec<SchedulerKind>,
    /// `KISTSchedRunInterval` (ms; Tor's range 1-100, default 10).
    pub kist_sched_run_interval: Duration,
    /// `KISTSockBufSizeFactor` (Tor default 1.0).
    pub kist_sock_buf_size_factor: f64,
    /// `CircuitPriorityHalflife` (ms here, where Tor's torrc key is seconds); zero = plain
    /// round robin. Default 30 s (Tor's consensus `CircuitPriorityHalflifeMsec`).
    pub circuit_priority_halflife: Duration,
}

impl Default for RuntimeConf {
    fn default() -> Self {
        RuntimeConf {
            workers: 0,
            backend: Backend::Uring,
            schedulers: SchedulerKind::TOR_DEFAULT.to_vec(),
            kist_sched_run_interval: Duration::from_millis(10),
            kist_sock_buf_size_factor: 1.0,
            circuit_priority_halflife: Duration::from_secs(30),
        }
    }
}

impl RuntimeConf {
    const KEYS: [&'static str; 6] = [
        "Workers",
        "Backend",
        "Schedulers",
        "KISTSchedRunInterval",
        "KISTSockBufSizeFactor",
        "CircuitPriorityHalflife",
    ];

    /// `workers`, with 0 resolved to the number of available cores (at least 1).
    pub fn effective_workers(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    fn from_table(t: &ConfTable) -> Result<Self, ConfigError> {
        let d = RuntimeConf::default();
        let interval = t
            .get("KISTSchedRunInterval", value::millis)?
            .unwrap_or(d.kist_sched_run_interval);
        // Tor accepts 0-100 msec, 0 meaning "ask the consensus"; we have no consensus.
        if interval < Duration::from_millis(1) || interval > Duration::from_millis(100) {
            return Err(t.bad(
                "KISTSchedRunInterval",
                format!(
                    "{} ms is out of range: want 1 to 100 ms",
                    interval.as_millis()
                ),
            ));
        }
        let factor = t
            .get("KISTSockBufSizeFactor", value::float)?
            .unwrap_or(d.kist_sock_buf_size_factor);
        if factor < 0.0 {
            return Err(t.bad(
                "KISTSockBufSizeFactor",
                format!("{factor} is negative: want a factor >= 0 (Tor default 1.0)"),
            ));
        }
        Ok(RuntimeConf {
            workers: t.get("Workers", value::usize_value)?.unwrap_or(d.workers),
            backend: t.get("Backend", value::backend)?.unwrap_or(d.backend),
            schedulers: t
                .get("Schedulers", value::schedulers)?
                .unwrap_or(d.schedulers),
            kist_sched_run_interval: interval,
            kist_sock_buf_size_factor: factor,
            circuit_priority_halflife: t
                .get("CircuitPriorityHalflife", value::millis)?
                .unwrap_or(d.circuit_priority_halflife),
        })
    }
}

/// A relay's config (`kistrel relay -c FILE`).
#[derive(Debug, Clone)]
pub struct RelayConf {
    /// The config file it came from (for error messages, e.g. [`ConfigError::PortInUse`]).
    pub file: PathBuf,
    /// `Nickname` (1-19 ASCII letters/digits; default "Unnamed", as Tor).
    pub nickname: String,
    /// `ORPort`: where to listen (required).
    pub or_port: SocketAddr,
    /// `KeyFile`, resolved against the config file's folder; checked to be readable. Load
    /// it with [`crate::keys::RelayKeyFile::load`]. Default `keys.toml`.
    pub key_file: PathBuf,
    /// `ExitPolicy`; `None` = not an exit.
    pub exit_policy: Option<ExitPolicy>,
    /// `Address`: IPs announced in NETINFO; empty = the ORPort's IP.
    pub address: Vec<IpAddr>,
    /// Threads, backend, schedulers.
    pub runtime: RuntimeConf,
    /// `MaxMemInQueues`, bytes (default 512 MB).
    pub max_mem_in_queues: u64,
    /// `MaxCircuitQueueCells` (default 2500, Tor's).
    pub max_circuit_queue_cells: usize,
    /// `MetricsPort`: where to serve metrics, if anywhere.
    pub metrics_port: Option<SocketAddr>,
    /// `BandwidthRate`, bytes/s: parsed and carried; not enforced yet.
    pub bandwidth_rate: Option<u64>,
    /// `ChannelHandshakeTimeout` (kistrel's key; Tor has no knob for it): an inbound or
    /// outbound link that has not finished VERSIONS/NETINFO by then is closed, which is what
    /// ends idle (slowloris) connections. Default 30 s; 100 ms to 1 hour.
    pub channel_handshake_timeout: Duration,
    /// `DoSCircuitCreationEnabled` (0/1, default 1), `DoSCircuitCreationRate` (per second,
    /// default 100) and `DoSCircuitCreationBurst` (default 2000): Tor's names, but the limit
    /// is per channel (see `kistrel_engine::relay::CircuitCreationLimit`). `None` = disabled.
    pub circuit_creation_limit: Option<CircuitCreationLimit>,
}

impl RelayConf {
    /// Every key a relay config may hold.
    pub const KEYS: [&'static str; 19] = [
        "Nickname",
        "ORPort",
        "KeyFile",
        "ExitPolicy",
        "Address",
        "Workers",
        "Backend",
        "Schedulers",
        "KISTSchedRunInterval",
        "KISTSockBufSizeFactor",
        "CircuitPriorityHalflife",
        "MaxMemInQueues",
        "MaxCircuitQueueCells",
        "MetricsPort",
        "BandwidthRate",
        "ChannelHandshakeTimeout",
        "DoSCircuitCreationEnabled",
        "DoSCircuitCreationRate",
        "DoSCircuitCreationBurst",
    ];

    /// Read `file`, apply `overrides`, validate.
    pub fn load(file: &Path, overrides: &[Override]) -> Result<Self, ConfigError> {
        let text = read(file)?;
        Self::parse(file, &text, overrides)
    }

    /// As [`RelayConf::load`] with the text given (`file` names it in errors and anchors
    /// relative paths).
    pub fn parse(file: &Path, text: &str, overrides: &[Override]) -> Result<Self, ConfigError> {
        let mut t = ConfTable::parse(file, text)?;
        t.apply(overrides);
        t.check_known(&Self::KEYS)?;
        let nickname = t
            .get("Nickname", value::string)?
            .unwrap_or_else(|| "Unnamed".into());
        if !(1..=19).contains(&nickname.len())
            || !nickname.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(t.bad(
                "Nickname",
                format!("bad nickname {nickname:?}: want 1-19 ASCII letters or digits"),
            ));
        }
        let key_file = t
            .get("KeyFile", value::string)?
            .unwrap_or_else(|| "keys.toml".into());
        let key_file = existing_file(&t, file, "KeyFile", &key_file)?;
        let d = kistrel_engine::relay::RelayConfig::default();
        Ok(RelayConf {
            file: file.to_path_buf(),
            nickname,
            or_port: t.require("ORPort", value::socket_addr)?,
            key_file,
            exit_policy: t.get("ExitPolicy", value::exit_policy)?,
            address: t.get("Address", value::ip_list)?.unwrap_or_default(),
            runtime: RuntimeConf::from_table(&t)?,
            max_mem_in_queues: t
                .get("MaxMemInQueues", value::bytes)?
                .unwrap_or(d.max_mem_in_queues as u64),
            max_circuit_queue_cells: t
                .get("MaxCircuitQueueCells", value::usize_value)?
                .unwrap_or(d.max_circuit_queue_cells),
            metrics_port: t.get("MetricsPort", value::socket_addr)?,
            bandwidth_rate: t.get("BandwidthRate", value::byte_rate)?,
            channel_handshake_timeout: handshake_timeout(&t, d.handshake_timeout)?,
            circuit_creation_limit: circuit_creation_limit(&t)?,
        })
    }

    /// The engine's config for one worker's `Relay`: keys from `KeyFile`, the exit policy,
    /// queue limits, and the announced addresses (`Address`, else the ORPort's IP unless it
    /// is unspecified). Call once per worker (the keys are not `Clone`).
    pub fn engine_config(&self) -> Result<kistrel_engine::relay::RelayConfig, KeyError> {
        let keys = RelayKeyFile::load(&self.key_file)?;
        let my_addrs = if !self.address.is_empty() {
            self.address.clone()
        } else if self.or_port.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![self.or_port.ip()]
        };
        Ok(kistrel_engine::relay::RelayConfig {
            keys: Some(keys.relay_keys()),
            exit_policy: self.exit_policy.clone(),
            my_addrs,
            max_circuit_queue_cells: self.max_circuit_queue_cells,
            max_mem_in_queues: usize::try_from(self.max_mem_in_queues).unwrap_or(usize::MAX),
            handshake_timeout: self.channel_handshake_timeout,
            circuit_creation_limit: self.circuit_creation_limit,
            ..kistrel_engine::relay::RelayConfig::default()
        })
    }

    /// The port-in-use error for `key` (`"ORPort"` / `"MetricsPort"`) at `addr`.
    pub fn port_in_use(&self, key: &'static str, addr: SocketAddr) -> ConfigError {
        ConfigError::PortInUse {
            file: self.file.clone(),
            key,
            addr,
        }
    }
}

/// A client's config (`kistrel client -c FILE`).
#[derive(Debug, Clone)]
pub struct ClientConf {
    /// The config file it came from.
    pub file: PathBuf,
    /// `SocksPort` (default 127.0.0.1:9050).
    pub socks_port: SocketAddr,
    /// `DirectoryFile` (required), resolved against the config file's folder; checked to be
    /// readable. Load it with [`ClientConf::load_directory`].
    pub directory_file: PathBuf,
    /// `DataDirectory`: where the guard/CBT state file lives; resolved against the config
    /// file's folder; default: that folder. Created by the runtime if missing.
    pub data_directory: PathBuf,
    /// Threads, backend, schedulers.
    pub runtime: RuntimeConf,
    /// Path and guard keys (`EnforceDistinctSubnets`, `UseEntryGuards`, `NumEntryGuards`, ...).
    pub path: PathConfig,
    /// Build-timeout keys (`LearnCircuitBuildTimeout`, `CircuitBuildTimeout`, `cbt*`).
    pub cbt: CbtConfig,
    /// `MetricsPort`: where to serve the workers' metrics, if anywhere.
    pub metrics_port: Option<SocketAddr>,
}

/// pathsel's `PathConfig` keys.
const PATH_KEYS: [&str; 11] = [
    "EnforceDistinctSubnets",
    "UseEntryGuards",
    "NumEntryGuards",
    "NumPrimaryGuardsToUse",
    "GuardFailureRule",
    "GuardFailureMargin",
    "GuardCircuitsToObserve",
    "GuardMaxSampleSize",
    "GuardMaxSampleThresholdPercent",
    "GuardLifetimeDays",
    "GuardConfirmedMinLifetimeDays",
];

/// pathsel's `CbtConfig` keys.
const CBT_KEYS: [&str; 10] = [
    "LearnCircuitBuildTimeout",
    "CircuitBuildTimeout",
    "cbtquantile",
    "cbtclosequantile",
    "cbtmincircs",
    "cbtnummodes",
    "cbtmintimeout",
    "cbtrecentcount",
    "cbtmaxtimeouts",
    "ncircuits_to_observe",
];

impl ClientConf {
    /// Every key a client config may hold.
    pub fn keys() -> Vec<&'static str> {
        let mut keys = vec!["SocksPort", "DirectoryFile", "DataDirectory", "MetricsPort"];
        keys.extend(RuntimeConf::KEYS);
        keys.extend(PATH_KEYS);
        keys.extend(CBT_KEYS);
        keys
    }

    /// Read `file`, apply `overrides`, validate.
    pub fn load(file: &Path, overrides: &[Override]) -> Result<Self, ConfigError> {
        let text = read(file)?;
        Self::parse(file, &text, overrides)
    }

    /// As [`ClientConf::load`] with the text given.
    pub fn parse(file: &Path, text: &str, overrides: &[Override]) -> Result<Self, ConfigError> {
        let mut t = ConfTable::parse(file, text)?;
        t.apply(overrides);
        t.check_known(&Self::keys())?;
        let dir_file = t.require("DirectoryFile", value::string)?;
        let directory_file = existing_file(&t, file, "DirectoryFile", &dir_file)?;
        let data_directory = match t.get("DataDirectory", value::string)? {
            Some(d) => relative_to(file, &d),
            None => relative_to(file, "."),
        };
        if data_directory.exists() && !data_directory.is_dir() {
            return Err(t.bad(
                "DataDirectory",
                format!("{} exists and is not a directory", data_directory.display()),
            ));
        }
        Ok(ClientConf {
            file: file.to_path_buf(),
            socks_port: t
                .get("SocksPort", value::socket_addr)?
                .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9050)),
            directory_file,
            data_directory,
            runtime: RuntimeConf::from_table(&t)?,
            path: t.serde_subset(&PATH_KEYS)?,
            cbt: t.serde_subset(&CBT_KEYS)?,
            metrics_port: t.get("MetricsPort", value::socket_addr)?,
        })
    }

    /// Load and parse `DirectoryFile`; a malformed one is a config error naming both files.
    pub fn load_directory(&self) -> Result<Directory, ConfigError> {
        Directory::load(&self.directory_file).map_err(|source| ConfigError::Directory {
            file: self.file.clone(),
            origin: Origin::Unknown,
            path: self.directory_file.clone(),
            source,
        })
    }

    /// The port-in-use error for `key` (`"SocksPort"` / `"MetricsPort"`) at `addr`.
    pub fn port_in_use(&self, key: &'static str, addr: SocketAddr) -> ConfigError {
        ConfigError::PortInUse {
            file: self.file.clone(),
            key,
            addr,
        }
    }
}

/// `ChannelHandshakeTimeout`: 100 ms to 1 hour (zero would close every link at once).
fn handshake_timeout(t: &ConfTable, default: Duration) -> Result<Duration, ConfigError> {
    const KEY: &str = "ChannelHandshakeTimeout";
    let d = t.get(KEY, value::millis)?.unwrap_or(default);
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(t.bad(
            KEY,
            format!(
                "{} ms is out of range: want 100 ms to 1 hour (default 30 s)",
                d.as_millis()
            ),
        ));
    }
    Ok(d)
}

/// The `DoSCircuitCreation*` keys. Tor's ranges: rate and burst 1 to 2^31-1 (dos.c's
/// consensus parameter bounds); enabled is 0 or 1 (`auto` means "ask the consensus",
/// which kistrel does not have).
fn circuit_creation_limit(t: &ConfTable) -> Result<Option<CircuitCreationLimit>, ConfigError> {
    let d = CircuitCreationLimit::default();
    let enabled = match t.get("DoSCircuitCreationEnabled", value::unsigned)? {
        None | Some(1) => true,
        Some(0) => false,
        Some(n) => return Err(t.bad("DoSCircuitCreationEnabled", format!("{n} is not 0 or 1"))),
    };
    let get = |key: &'static str, default: u32| -> Result<u32, ConfigError> {
        let n = t.get(key, value::unsigned)?.unwrap_or(u64::from(default));
        match u32::try_from(n) {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(n),
            _ => Err(t.bad(key, format!("{n} is out of range: want 1 to {}", i32::MAX))),
        }
    };
    let rate = get("DoSCircuitCreationRate", d.rate)?;
    let burst = get("DoSCircuitCreationBurst", d.burst)?;
    Ok(enabled.then_some(CircuitCreationLimit { rate, burst }))
}

fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })
}

/// `path` taken relative to the folder holding `config` (absolute paths unchanged).
pub fn relative_to(config: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match config.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

fn existing_file(
    t: &ConfTable,
    config: &Path,
    key: &'static str,
    path: &str,
) -> Result<PathBuf, ConfigError> {
    let resolved = relative_to(config, path);
    match std::fs::File::open(&resolved) {
        Ok(_) => Ok(resolved),
        Err(source) => Err(ConfigError::MissingFile {
            file: config.to_path_buf(),
            origin: t.origin(key),
            key,
            path: resolved,
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
