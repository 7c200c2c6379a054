//! Finding `tor` and `tor-gencert`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::CtorError;

/// Names the `tor` program explicitly (default: `tor` on PATH, then /usr/sbin/tor).
pub const TOR_ENV: &str = "KISTREL_TOR";
/// Names the `tor-gencert` program explicitly.
pub const GENCERT_ENV: &str = "KISTREL_TOR_GENCERT";

/// Folders searched after PATH: Debian installs tor in /usr/sbin, which a non-root PATH
/// often lacks.
const EXTRA_DIRS: [&str; 2] = ["/usr/sbin", "/usr/bin"];

/// The two programs a C Tor network needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programs {
    /// `tor`.
    pub tor: PathBuf,
    /// `tor-gencert` (authority keys).
    pub gencert: PathBuf,
}

impl Programs {
    /// Find both, or say which is missing and how to install it.
    pub fn find() -> Result<Programs, CtorError> {
        Ok(Programs {
            tor: find("tor", TOR_ENV)?,
            gencert: find("tor-gencert", GENCERT_ENV)?,
        })
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find(program: &'static str, env: &'static str) -> Result<PathBuf, CtorError> {
    let missing = CtorError::MissingProgram { program, env };
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(missing)
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
        .ok_or(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_program_that_is_not_there_is_missing() {
        // The variable wins over PATH; a file that is not executable does not count.
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("tor");
        std::fs::write(&plain, "").unwrap();
        assert!(!is_executable(&plain));
        assert!(!is_executable(&tmp.path().join("absent")));
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(is_executable(&plain));
        let e = CtorError::MissingProgram {
            program: "tor-gencert",
            env: GENCERT_ENV,
        };
        assert!(e.to_string().contains("install the tor package"), "{e}");
        assert_eq!(
            kistrel_base::HasKind::kind(&e),
            kistrel_base::ErrorKind::Unsupported
        );
    }
}
