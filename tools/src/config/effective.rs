//! The effective configuration (`--print-config`): every key a config may hold, in
//! [`RelayConf::keys`] / [`ClientConf::keys`] order, with the value in force (defaults filled
//! in), as TOML that loads back to the same configuration.
//!
//! A key with no value (an optional one left out: `MetricsPort`, `ExitPolicy`, ...) is
//! printed as a comment, `# MetricsPort = (unset)`, so the output still names every key.
//! Pathsel's sections are serialized through their own serde names, so a key added there
//! shows up here without an edit.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use toml::Value;

use super::client::ClientConf;
use super::relay::RelayConf;
use super::runtime::RuntimeConf;

/// One key of the effective configuration: its torrc name and value (`None` = unset).
pub type Entry = (&'static str, Option<Value>);

/// A duration as the config files write it (`"30s"`, `"10ms"`).
fn duration(d: Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

/// A size in bytes: `"512 MB"` when it is a whole number of MiB or GiB (Tor's binary units),
/// else the integer.
fn size(bytes: u64) -> Value {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    match bytes {
        0 => Value::Integer(0),
        b if b % GIB == 0 => Value::String(format!("{} GB", b / GIB)),
        b if b % MIB == 0 => Value::String(format!("{} MB", b / MIB)),
        b => Value::Integer(i64::try_from(b).unwrap_or(i64::MAX)),
    }
}

fn int(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn string(s: impl ToString) -> Value {
    Value::String(s.to_string())
}

fn runtime(r: &RuntimeConf) -> Vec<Entry> {
    let schedulers = r.schedulers.iter().map(|s| string(s.name())).collect();
    vec![
        ("Workers", Some(int(r.workers as u64))),
        ("Backend", Some(string(r.backend.name()))),
        ("Links", Some(string(r.links.name()))),
        ("CPUAffinity", r.cpu_affinity.as_ref().map(string)),
        ("Schedulers", Some(Value::Array(schedulers))),
        (
            "KISTSchedRunInterval",
            Some(duration(r.kist_sched_run_interval)),
        ),
        (
            "KISTSockBufSizeFactor",
            Some(Value::Float(r.kist_sock_buf_size_factor)),
        ),
        (
            "CircuitPriorityHalflife",
            Some(duration(r.circuit_priority_halflife)),
        ),
    ]
}

/// The fields of a serde section under its own (torrc) names, in `keys` order.
fn section<T: Serialize>(value: &T, keys: &[&'static str]) -> Vec<Entry> {
    let table = match Value::try_from(value) {
        Ok(Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    keys.iter().map(|k| (*k, table.get(*k).cloned())).collect()
}

/// Puts `entries` in `order` (a key missing from `entries` is listed as unset, so a key
/// added to a section without an entry here is still named).
fn ordered(order: &[&'static str], entries: Vec<Entry>) -> Vec<Entry> {
    order
        .iter()
        .map(|k| {
            let v = entries
                .iter()
                .find(|(e, _)| e == k)
                .and_then(|(_, v)| v.clone());
            (*k, v)
        })
        .collect()
}

impl RelayConf {
    /// Every key with the value in force, in [`RelayConf::keys`] order.
    pub fn effective(&self) -> Vec<Entry> {
        let dos = self.circuit_creation_limit;
        let limit = dos.unwrap_or_default();
        let mut e: Vec<Entry> = vec![
            ("Nickname", Some(string(&self.nickname))),
            ("ORPort", Some(string(self.or_port))),
            ("KeyDirectory", Some(string(self.key_dir.display()))),
            ("ExitPolicy", self.exit_policy.as_ref().map(string)),
            (
                "Address",
                Some(Value::Array(self.address.iter().map(string).collect())),
            ),
            ("MaxMemInQueues", Some(size(self.max_mem_in_queues))),
            (
                "MaxCircuitQueueCells",
                Some(int(self.max_circuit_queue_cells as u64)),
            ),
            ("MetricsPort", self.metrics_port.map(string)),
            ("BandwidthRate", self.bandwidth_rate.map(int)),
            (
                "ChannelHandshakeTimeout",
                Some(duration(self.channel_handshake_timeout)),
            ),
            (
                "DoSCircuitCreationEnabled",
                Some(int(u64::from(dos.is_some()))),
            ),
            ("DoSCircuitCreationRate", Some(int(u64::from(limit.rate)))),
            ("DoSCircuitCreationBurst", Some(int(u64::from(limit.burst)))),
            ("TestingCellCost", Some(duration(self.testing_cell_cost))),
        ];
        e.extend(runtime(&self.runtime));
        ordered(&Self::keys(), e)
    }

    /// [`RelayConf::effective`] as TOML.
    pub fn effective_toml(&self) -> String {
        render(&self.file.display().to_string(), &self.effective())
    }
}

impl ClientConf {
    /// Every key with the value in force, in [`ClientConf::keys`] order.
    pub fn effective(&self) -> Vec<Entry> {
        let mut e: Vec<Entry> = vec![
            ("SocksPort", Some(string(self.socks_port))),
            ("DirectoryFile", Some(string(self.directory_file.display()))),
            ("DataDirectory", Some(string(self.data_directory.display()))),
            ("MetricsPort", self.metrics_port.map(string)),
        ];
        e.extend(runtime(&self.runtime));
        e.extend(section(
            &self.path,
            super::source::keys_of::<kistrel_pathsel::PathConfig>(),
        ));
        e.extend(section(
            &self.cbt,
            super::source::keys_of::<kistrel_pathsel::CbtConfig>(),
        ));
        ordered(&Self::keys(), e)
    }

    /// [`ClientConf::effective`] as TOML.
    pub fn effective_toml(&self) -> String {
        render(&self.file.display().to_string(), &self.effective())
    }
}

/// `Key = value` lines; unset keys as comments.
fn render(file: &str, entries: &[Entry]) -> String {
    let mut out = format!("# effective configuration of {file} (defaults filled in)\n");
    for (key, value) in entries {
        let _ = match value {
            Some(v) => writeln!(out, "{key} = {v}"),
            None => writeln!(out, "# {key} = (unset)"),
        };
    }
    out
}
