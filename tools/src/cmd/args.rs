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

/// A duration argument: a number with a unit (`500ms`, `30s`, `2min`, `1h`; see
/// [`crate::units::parse_duration`]).
pub fn duration(s: &str) -> Result<Duration, String> {
    crate::units::parse_duration(s).map_err(|e| e.to_string())
}
