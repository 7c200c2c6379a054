//! Authority keys: `tor-gencert` makes the v3 identity, signing key and certificate;
//! `tor --list-fingerprint` makes the relay keys (as chutney does), whose fingerprint the
//! `DirAuthority` line names.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::CtorError;
use super::programs::Programs;
use super::torrc::AuthorityLine;

/// Months the authority certificate stays valid.
const CERT_MONTHS: u32 = 12;

/// The `keys` folder of a DataDirectory.
pub fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

/// Run `program args`, feeding `stdin`; its stderr's last lines go into the error.
fn run(program: &Path, args: &[&str], stdin: &[u8]) -> Result<(), CtorError> {
    let spawn_err = |source| CtorError::Spawn {
        program: program.to_path_buf(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    Err(CtorError::Tool {
        program: program.to_path_buf(),
        status: out.status,
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
    })
}

/// The value of the first `KEY VALUE` line of `path`.
fn line_value(path: &Path, key: &'static str) -> Result<String, CtorError> {
    let text = std::fs::read_to_string(path).map_err(|source| CtorError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .map(|v| v.trim().to_owned())
        .ok_or(CtorError::Missing {
            what: key,
            path: path.to_path_buf(),
        })
}

/// Make an authority's keys in `data_dir` (created if missing) and return its
/// `DirAuthority` line.
pub fn make_keys(
    programs: &Programs,
    data_dir: &Path,
    nickname: &str,
    or_port: SocketAddr,
    dir_port: SocketAddr,
) -> Result<AuthorityLine, CtorError> {
    let keys = keys_dir(data_dir);
    std::fs::create_dir_all(&keys).map_err(|source| CtorError::Io {
        what: "creating",
        path: keys.clone(),
        source,
    })?;
    let p = |name: &str| keys.join(name).display().to_string();
    let (id, sk, cert) = (
        p("authority_identity_key"),
        p("authority_signing_key"),
        p("authority_certificate"),
    );
    let months = CERT_MONTHS.to_string();
    let addr = dir_port.to_string();
    // An empty passphrase on fd 0: the keys are for a throwaway test network.
    run(
        &programs.gencert,
        &[
            "--create-identity-key",
            "--passphrase-fd",
            "0",
            "-m",
            &months,
            "-a",
            &addr,
            "-i",
            &id,
            "-s",
            &sk,
            "-c",
            &cert,
        ],
        b"\n",
    )?;
    let v3ident = line_value(&keys.join("authority_certificate"), "fingerprint")?;
    let dd = data_dir.display().to_string();
    let orport = or_port.port().to_string();
    run(
        &programs.tor,
        &[
            "--list-fingerprint",
            "--DataDirectory",
            &dd,
            "--ORPort",
            &orport,
            "--Nickname",
            nickname,
            // A placeholder authority: listing a fingerprint contacts nobody.
            "--DirAuthority",
            "placeholder orport=1 no-v2 127.0.0.1:1 0000000000000000000000000000000000000000",
            "--Log",
            "err stderr",
        ],
        b"",
    )?;
    let fingerprint = fingerprint_in(&data_dir.join("fingerprint"))?;
    Ok(AuthorityLine {
        nickname: nickname.to_owned(),
        or_port,
        dir_port,
        fingerprint,
        v3ident,
    })
}

/// The hex fingerprint in the `fingerprint` file tor writes into a DataDirectory
/// (`NICK HEX40`).
pub fn fingerprint_in(path: &Path) -> Result<String, CtorError> {
    let text = std::fs::read_to_string(path).map_err(|source| CtorError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    text.split_whitespace()
        .nth(1)
        .filter(|f| f.len() == 40 && f.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .ok_or(CtorError::Missing {
            what: "fingerprint",
            path: path.to_path_buf(),
        })
}
