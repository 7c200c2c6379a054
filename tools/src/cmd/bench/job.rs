//! What every bench job shares: where its networks live, when their figures are complete,
//! how results are written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::net_child::NodeArgs;
use crate::error::CliError;

/// How long to wait before reading the nodes' figures, so the workers' once-a-second
/// reports include the end of the phase.
pub(super) const METRICS_SETTLE: Duration = Duration::from_millis(1100);

/// The folder for a job's network: `--dir`, or `net` in the job's temp folder.
pub(super) fn net_dir(nodes: &NodeArgs, tmp: &Path) -> PathBuf {
    nodes.dir.clone().unwrap_or_else(|| tmp.join("net"))
}

/// Writes `value` as pretty JSON to `path`.
pub(super) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), CliError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| CliError::runtime("encoding JSON", e))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| CliError::runtime(format!("writing {}", path.display()), e))
}
