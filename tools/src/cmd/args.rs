//! Value parsers shared by several subcommands' arguments.

use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use kistrel_sched::SchedulerKind;

/// `--scheduler`: the torrc names (KIST, KISTLite, Vanilla), any case (with
/// `ignore_case = true` on the argument), as [`SchedulerKind`].
pub fn scheduler_parser() -> impl TypedValueParser<Value = SchedulerKind> {
    PossibleValuesParser::new(SchedulerKind::TOR_DEFAULT.map(SchedulerKind::name))
        .try_map(|s| s.parse::<SchedulerKind>())
}

/// Writes a `--json FILE` result: to stdout when FILE is `-` (every command's `--json`
/// takes a FILE, `-` for stdout, as curl's `-o -`).
pub fn write_json(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()
    } else {
        std::fs::write(path, format!("{text}\n"))
    }
}

/// A duration argument: a number with a unit (`500ms`, `30s`, `2min`, `1h`; see
/// [`crate::units::parse_duration`]).
pub fn duration(s: &str) -> Result<Duration, String> {
    crate::units::parse_duration(s).map_err(|e| e.to_string())
}
