//! The `kistrel` command-line tool: relay, client, local testbed, traffic generator, benchmarks.
#![forbid(unsafe_code)]
