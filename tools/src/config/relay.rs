//! A relay's config (`kistrel relay -c FILE`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kistrel_engine::relay::{CircuitCreationLimit, RelayConfig};
use kistrel_pathsel::ExitPolicy;
use serde::Deserialize;

use super::error::ConfigError;
use super::runtime::{RuntimeConf, RuntimeSection};
use super::source::{keys_of, read, ConfSource, Override};
use super::value::de;
use crate::keys::{load_relay_keys, KeyError};

/// The relay's own keys as written (absent keys are `None`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RelaySection {
    #[serde(rename = "Nickname", deserialize_with = "de::string")]
    nickname: Option<String>,
    #[serde(rename = "ORPort", deserialize_with = "de::socket_addr")]
    or_port: Option<SocketAddr>,
    #[serde(rename = "KeyDirectory", deserialize_with = "de::string")]
    key_dir: Option<String>,
    #[serde(rename = "ExitPolicy", deserialize_with = "de::exit_policy")]
    exit_policy: Option<ExitPolicy>,
    #[serde(rename = "Address", deserialize_with = "de::ip_list")]
    address: Option<Vec<IpAddr>>,
    #[serde(rename = "MaxMemInQueues", deserialize_with = "de::bytes")]
    max_mem_in_queues: Option<u64>,
    #[serde(rename = "MaxCircuitQueueCells", deserialize_with = "de::usize_value")]
    max_circuit_queue_cells: Option<usize>,
    #[serde(rename = "MetricsPort", deserialize_with = "de::socket_addr")]
    metrics_port: Option<SocketAddr>,
    #[serde(rename = "BandwidthRate", deserialize_with = "de::byte_rate")]
    bandwidth_rate: Option<u64>,
    #[serde(rename = "ChannelHandshakeTimeout", deserialize_with = "de::duration")]
    channel_handshake_timeout: Option<Duration>,
    #[serde(rename = "TestingCellCost", deserialize_with = "de::duration")]
    testing_cell_cost: Option<Duration>,
}

/// Tor's `DoSCircuitCreation*` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DosSection {
    #[serde(
        rename = "DoSCircuitCreationEnabled",
        deserialize_with = "de::unsigned"
    )]
    enabled: Option<u64>,
    #[serde(rename = "DoSCircuitCreationRate", deserialize_with = "de::unsigned")]
    rate: Option<u64>,
    #[serde(rename = "DoSCircuitCreationBurst", deserialize_with = "de::unsigned")]
    burst: Option<u64>,
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
    /// `KeyDirectory` (C Tor's name): the key folder, resolved against the config file's
    /// folder; checked to exist. Load it with [`crate::keys::RelayKeyFolder::load`].
    /// Default `keys`.
    pub key_dir: PathBuf,
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
    /// `TestingCellCost` (kistrel's, testing only, as Tor's `Testing*` keys; default 0): CPU
    /// time burned for every cell the relay transmits, e.g. `"500 ns"`, at most 1 ms. It
    /// exists so that `kistrel bench check --self-check` can prove the macro check catches a
    /// slower relay.
    pub testing_cell_cost: Duration,
}

impl RelayConf {
    /// Every key a relay config may hold.
    pub fn keys() -> Vec<&'static str> {
        let mut keys = keys_of::<RelaySection>().to_vec();
        keys.extend_from_slice(keys_of::<DosSection>());
        keys.extend_from_slice(keys_of::<RuntimeSection>());
        keys
    }

    /// Read `file`, apply `overrides`, validate.
    pub fn load(file: &Path, overrides: &[Override]) -> Result<Self, ConfigError> {
        let text = read(file)?;
        Self::parse(file, &text, overrides)
    }

    /// As [`RelayConf::load`] with the text given (`file` names it in errors and anchors
    /// relative paths).
    pub fn parse(file: &Path, text: &str, overrides: &[Override]) -> Result<Self, ConfigError> {
        let mut src = ConfSource::new(file, text, overrides)?;
        src.check_known(&Self::keys())?;
        let s: RelaySection = src.take()?;
        let dos: DosSection = src.take()?;
        let nickname = s.nickname.unwrap_or_else(|| "Unnamed".into());
        if !(1..=19).contains(&nickname.len())
            || !nickname.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(src.bad(
                "Nickname",
                format!("bad nickname {nickname:?}: want 1-19 ASCII letters or digits"),
            ));
        }
        let or_port = s.or_port.ok_or_else(|| src.missing("ORPort"))?;
        let key_dir = src.existing_file("KeyDirectory", s.key_dir.as_deref().unwrap_or("keys"))?;
        let d = RelayConfig::default();
        let channel_handshake_timeout =
            handshake_timeout(&src, s.channel_handshake_timeout, d.handshake_timeout)?;
        let circuit_creation_limit = circuit_creation_limit(&src, &dos)?;
        let testing_cell_cost = s.testing_cell_cost.unwrap_or_default();
        if testing_cell_cost > Duration::from_millis(1) {
            return Err(src.bad(
                "TestingCellCost",
                format!("{testing_cell_cost:?} is too long: want at most 1 ms per cell"),
            ));
        }
        Ok(RelayConf {
            file: file.to_path_buf(),
            nickname,
            or_port,
            key_dir,
            exit_policy: s.exit_policy,
            address: s.address.unwrap_or_default(),
            runtime: RuntimeConf::take(&mut src)?,
            max_mem_in_queues: s.max_mem_in_queues.unwrap_or(d.max_mem_in_queues as u64),
            max_circuit_queue_cells: s
                .max_circuit_queue_cells
                .unwrap_or(d.max_circuit_queue_cells),
            metrics_port: s.metrics_port,
            bandwidth_rate: s.bandwidth_rate,
            channel_handshake_timeout,
            circuit_creation_limit,
            testing_cell_cost,
        })
    }

    /// The engine's config for the relay's workers: keys from `KeyDirectory` (with the
    /// type-2 and type-7 certificates made now), the exit policy, queue limits, and the
    /// announced addresses (`Address`, else the ORPort's IP unless it is unspecified).
    /// Load it once and clone it per worker: the keys are shared.
    pub fn engine_config(&self) -> Result<RelayConfig, KeyError> {
        let keys = load_relay_keys(&self.key_dir, std::time::SystemTime::now())?;
        let my_addrs = if !self.address.is_empty() {
            self.address.clone()
        } else if self.or_port.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![self.or_port.ip()]
        };
        Ok(RelayConfig {
            keys: Some(keys),
            exit_policy: self.exit_policy.clone(),
            my_addrs,
            max_circuit_queue_cells: self.max_circuit_queue_cells,
            max_mem_in_queues: usize::try_from(self.max_mem_in_queues).unwrap_or(usize::MAX),
            handshake_timeout: self.channel_handshake_timeout,
            circuit_creation_limit: self.circuit_creation_limit,
            ..RelayConfig::default()
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

/// `ChannelHandshakeTimeout`: 100 ms to 1 hour (zero would close every link at once).
fn handshake_timeout(
    src: &ConfSource,
    given: Option<Duration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let d = given.unwrap_or(default);
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(src.bad(
            "ChannelHandshakeTimeout",
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
fn circuit_creation_limit(
    src: &ConfSource,
    s: &DosSection,
) -> Result<Option<CircuitCreationLimit>, ConfigError> {
    let d = CircuitCreationLimit::default();
    let enabled = match s.enabled {
        None | Some(1) => true,
        Some(0) => false,
        Some(n) => return Err(src.bad("DoSCircuitCreationEnabled", format!("{n} is not 0 or 1"))),
    };
    let get = |key: &'static str, given: Option<u64>, default: u32| -> Result<u32, ConfigError> {
        let n = given.unwrap_or(u64::from(default));
        match u32::try_from(n) {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(n),
            _ => Err(src.bad(key, format!("{n} is out of range: want 1 to {}", i32::MAX))),
        }
    };
    let rate = get("DoSCircuitCreationRate", s.rate, d.rate)?;
    let burst = get("DoSCircuitCreationBurst", s.burst, d.burst)?;
    Ok(enabled.then_some(CircuitCreationLimit { rate, burst }))
}
