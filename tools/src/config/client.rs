//! A client's config (`kistrel client -c FILE`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use kistrel_pathsel::{CbtConfig, Directory, PathConfig, PathSelector};
use serde::Deserialize;

use super::error::{ConfigError, Origin};
use super::runtime::{RuntimeConf, RuntimeSection};
use super::source::{keys_of, read, relative_to, ConfSource, Override};
use super::value::de;

/// The client's own keys as written (absent keys are `None`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ClientSection {
    #[serde(rename = "SocksPort", deserialize_with = "de::socket_addr")]
    socks_port: Option<SocketAddr>,
    #[serde(rename = "DirectoryFile", deserialize_with = "de::string")]
    directory_file: Option<String>,
    #[serde(rename = "DataDirectory", deserialize_with = "de::string")]
    data_directory: Option<String>,
    #[serde(rename = "MetricsPort", deserialize_with = "de::socket_addr")]
    metrics_port: Option<SocketAddr>,
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
    /// Path and guard keys (`EnforceDistinctSubnets`, `UseEntryGuards`, `NumEntryGuards`,
    /// the pins `EntryNodes`/`MiddleNodes`/`ExitNodes`, ...).
    pub path: PathConfig,
    /// Build-timeout keys (`LearnCircuitBuildTimeout`, `CircuitBuildTimeout`, `cbt*`).
    pub cbt: CbtConfig,
    /// `MetricsPort`: where to serve the workers' metrics, if anywhere.
    pub metrics_port: Option<SocketAddr>,
}

impl ClientConf {
    /// Every key a client config may hold: its own, the runtime's, and pathsel's
    /// `PathConfig` and `CbtConfig` keys (their serde names, so they cannot drift).
    pub fn keys() -> Vec<&'static str> {
        let mut keys = keys_of::<ClientSection>().to_vec();
        keys.extend_from_slice(keys_of::<RuntimeSection>());
        keys.extend_from_slice(keys_of::<PathConfig>());
        keys.extend_from_slice(keys_of::<CbtConfig>());
        keys
    }

    /// Read `file`, apply `overrides`, validate.
    pub fn load(file: &Path, overrides: &[Override]) -> Result<Self, ConfigError> {
        let text = read(file)?;
        Self::parse(file, &text, overrides)
    }

    /// As [`ClientConf::load`] with the text given.
    pub fn parse(file: &Path, text: &str, overrides: &[Override]) -> Result<Self, ConfigError> {
        let mut src = ConfSource::new(file, text, overrides)?;
        src.check_known(&Self::keys())?;
        let s: ClientSection = src.take()?;
        let dir_file = s
            .directory_file
            .ok_or_else(|| src.missing("DirectoryFile"))?;
        let directory_file = src.existing_file("DirectoryFile", &dir_file)?;
        let data_directory = relative_to(file, s.data_directory.as_deref().unwrap_or("."));
        if data_directory.exists() && !data_directory.is_dir() {
            return Err(src.bad(
                "DataDirectory",
                format!("{} exists and is not a directory", data_directory.display()),
            ));
        }
        Ok(ClientConf {
            file: file.to_path_buf(),
            socks_port: s
                .socks_port
                .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9050)),
            directory_file,
            data_directory,
            runtime: RuntimeConf::take(&mut src)?,
            path: src.take()?,
            cbt: src.take()?,
            metrics_port: s.metrics_port,
        })
    }

    /// Load and parse `DirectoryFile`; a malformed one is a config error naming both files,
    /// and so is one that cannot fill a pinned position (`EntryNodes`, ...).
    pub fn load_directory(&self) -> Result<Directory, ConfigError> {
        let dir =
            Directory::load(&self.directory_file).map_err(|source| ConfigError::Directory {
                file: self.file.clone(),
                origin: Origin::Unknown,
                path: self.directory_file.clone(),
                source,
            })?;
        PathSelector::new(&dir, self.path.clone())
            .check_pins()
            .map_err(|source| ConfigError::Pins {
                file: self.file.clone(),
                directory: self.directory_file.clone(),
                source,
            })?;
        Ok(dir)
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
