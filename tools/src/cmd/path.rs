//! `kistrel path sample --directory FILE -n N [--seed S] [--json FILE|-]`: pick N paths from a directory
//! and compare each relay's share per position with the expected one.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kistrel_pathsel::dir::Position;
use kistrel_pathsel::sample::{sample_paths, ChiSquare, SampleReport};
use kistrel_pathsel::{DirError, Directory, NoPathCause, PathConfig, PathError, PathSelector};
use rand::{SeedableRng, TryRngCore};
use rand_chacha::ChaCha8Rng;

use kistrel_base::{ErrorKind, HasKind};

/// Version of the `--json` output object.
pub const JSON_VERSION: u32 = 1;

/// `kistrel path` options.
#[derive(Debug, Clone, Args)]
pub struct PathArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PathCommand,
}

/// `kistrel path` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum PathCommand {
    /// Sample paths and print observed vs expected shares per relay and position.
    Sample(SampleArgs),
}

/// `kistrel path sample` options.
#[derive(Debug, Clone, Args)]
pub struct SampleArgs {
    /// Directory file (as `kistrel net` writes, or hand-written; docs/directory-format.md).
    /// `--dir` is an old name of it: elsewhere `--dir` is a folder.
    #[arg(long = "directory", alias = "dir", value_name = "FILE")]
    pub dir: PathBuf,
    /// Paths to pick (at least 1).
    #[arg(short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub n: u64,
    /// RNG seed (ChaCha8); without it a random seed is drawn and printed.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Write the result as one JSON object to FILE (`-`: stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Allow two relays of one /16 in a path (EnforceDistinctSubnets = false), as on a
    /// one-machine testbed.
    #[arg(long)]
    pub allow_same_subnet: bool,
}

/// Why `kistrel path` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathCmdError {
    /// The directory file could not be read or parsed (the message has the line).
    #[error("{}: {source}", path.display())]
    Directory {
        /// The directory file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: DirError,
    },
    /// The directory does not allow a path.
    #[error("{}: cannot pick a path: {cause}", path.display())]
    NoPath {
        /// The directory file.
        path: PathBuf,
        /// Why, with what to change (as `kistrel client` says it).
        cause: NoPathCause,
    },
    /// The OS RNG failed while drawing a seed.
    #[error("cannot draw a random seed: {0} (pass --seed)")]
    Seed(#[source] rand::rand_core::OsError),
    /// The result could not be encoded as JSON (a bug).
    #[error("encoding the JSON result: {0}")]
    Json(#[source] serde_json::Error),
    /// The `--json` file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for PathCmdError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The input is at fault.
            PathCmdError::Directory { .. } | PathCmdError::NoPath { .. } => ErrorKind::BadConfig,
            PathCmdError::Seed(_) => ErrorKind::LocalIo,
            PathCmdError::Json(_) => ErrorKind::Internal,
            PathCmdError::Write { .. } => ErrorKind::LocalIo,
        }
    }
}

/// The `--json` object.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleJson<'a> {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The seed used.
    pub seed: u64,
    /// Counts and shares.
    #[serde(flatten)]
    pub report: &'a SampleReport,
    /// Chi-square per position.
    pub chi_square: ChiSquares,
}

/// Chi-square of each position.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ChiSquares {
    /// Guard position.
    pub guard: ChiSquare,
    /// Middle position.
    pub middle: ChiSquare,
    /// Exit position.
    pub exit: ChiSquare,
}

/// Sample `n` paths from `dir` with a ChaCha8 RNG seeded with `seed`.
pub fn sample(
    dir: &Directory,
    cfg: PathConfig,
    n: u64,
    seed: u64,
) -> Result<SampleReport, PathError> {
    let sel = PathSelector::new(dir, cfg);
    sample_paths(&sel, n, &mut ChaCha8Rng::seed_from_u64(seed))
}

/// Run `kistrel path`.
pub fn run(args: PathArgs) -> Result<(), PathCmdError> {
    let PathCommand::Sample(args) = args.command;
    let dir = Directory::load(&args.dir).map_err(|source| PathCmdError::Directory {
        path: args.dir.clone(),
        source,
    })?;
    let seed = match args.seed {
        Some(s) => s,
        None => rand::rngs::OsRng
            .try_next_u64()
            .map_err(PathCmdError::Seed)?,
    };
    let cfg = PathConfig {
        enforce_distinct_subnets: !args.allow_same_subnet,
        ..PathConfig::default()
    };
    let no_path = |cause| PathCmdError::NoPath {
        path: args.dir.clone(),
        cause,
    };
    if let Some(cause) = kistrel_pathsel::explain(&PathSelector::new(&dir, cfg.clone()), None, None)
    {
        return Err(no_path(cause));
    }
    let report = sample(&dir, cfg, args.n, seed).map_err(|e| no_path(NoPathCause::Conflicts(e)))?;
    let chi = ChiSquares {
        guard: report.chi_square(Position::Guard),
        middle: report.chi_square(Position::Middle),
        exit: report.chi_square(Position::Exit),
    };
    if let Some(path) = &args.json {
        let json = serde_json::to_string(&SampleJson {
            version: JSON_VERSION,
            seed,
            report: &report,
            chi_square: chi,
        })
        .map_err(PathCmdError::Json)?;
        crate::cmd::args::write_json(path, &json).map_err(|source| PathCmdError::Write {
            path: path.clone(),
            source,
        })?;
    }
    // With `--json -` the JSON is the output; with `--json FILE` the table still prints.
    if args.json.as_ref().is_none_or(|p| p.as_os_str() != "-") {
        println!("seed {seed}");
        // The report's Display ends with the chi-square lines.
        print!("{report}");
    }
    Ok(())
}
