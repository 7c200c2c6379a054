//! Exit codes, from an error's [`ErrorKind`]: one rule for every subcommand.

use kistrel_base::ErrorKind;

/// Exit code for bad usage, config or input, or an environment that cannot run what was asked
/// (clap uses 2 for its own usage errors too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure at run time.
pub const EXIT_FAILURE: u8 = 1;

/// [`EXIT_USAGE`] for what the operator fixes before running again (a bad config, argument or
/// input file: [`ErrorKind::BadConfig`]; a missing privilege, tool or kernel feature:
/// [`ErrorKind::Unsupported`]), [`EXIT_FAILURE`] for everything that failed while running.
pub fn code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::BadConfig | ErrorKind::Unsupported => EXIT_USAGE,
        _ => EXIT_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_faults_exit_2_run_time_failures_exit_1() {
        assert_eq!(code(ErrorKind::BadConfig), 2);
        assert_eq!(code(ErrorKind::Unsupported), 2);
        for k in [
            ErrorKind::LocalIo,
            ErrorKind::Network,
            ErrorKind::TimedOut,
            ErrorKind::Internal,
            ErrorKind::PeerProtocol,
        ] {
            assert_eq!(code(k), 1, "{k}");
        }
    }
}
