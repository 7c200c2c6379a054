//! The documentation checked against the repository and the code:
//!
//! - every relative link in README.md, docs/ and the crate READMEs resolves to a file (and a
//!   `#heading` to a heading of it), and no source, README or doc names a `.md` file the
//!   repository does not hold;
//! - docs/configuration.md has one row per config key the relay and the client accept (the
//!   keys of the config types: `RelayConf::keys()`, `ClientConf::keys()`), and each row's
//!   default is what `--print-config` prints;
//! - the example files in docs/examples/ start three relays and a client exactly as written,
//!   and a fetch through them arrives intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kistrel::config::{ClientConf, RelayConf};
use support::{fetch, lines_of, serial, skip_without_tools, wait_exit, Http, Reaped, MIB};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (no hidden folders, no `target`).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn repo_files(ext: &[&str]) -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&root(), &mut all);
    all.retain(|p| {
        p.extension()
            .is_some_and(|e| ext.contains(&e.to_string_lossy().as_ref()))
    });
    all
}

/// The markdown documents a newcomer reads: README.md, docs/**, every crate's README.
fn documents() -> Vec<PathBuf> {
    repo_files(&["md"])
        .into_iter()
        .filter(|p| {
            let rel = p.strip_prefix(root()).unwrap();
            rel.starts_with("docs") || p.file_name().unwrap() == "README.md"
        })
        .collect()
}

/// `[text](target)` targets of a markdown text, outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, spaces to '-', punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors_of(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut broken = Vec::new();
    let docs = documents();
    assert!(docs.len() >= 10, "found only {docs:?}");
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, frag) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(path)
            };
            let ok =
                file.exists() && (frag.is_empty() || anchors_of(&file).iter().any(|a| a == frag));
            if !ok {
                broken.push(format!("{}: {target}", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // The README links the documentation.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for page in [
        "docs/configuration.md",
        "docs/architecture.md",
        "docs/examples/",
    ] {
        assert!(link_targets(&readme).iter().any(|t| t == page), "{page}");
    }
}

/// Names of `.md` files in a text: `docs/spec/kist.md`, `../docs/design.md`, `README.md`.
fn md_names(text: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find(".md") {
        let end = i + at + 3;
        // Not a file name: `md.md.ed25519_id()` (a field of a field) or `x.md(...)`.
        let code = match (bytes.get(end), bytes.get(end + 1)) {
            (Some(b'('), _) => true,
            (Some(b'.'), Some(c)) => c.is_ascii_alphanumeric(),
            _ => false,
        };
        let after_ok = !code
            && bytes
                .get(end)
                .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'));
        let start = text[..i + at]
            .rfind(|c: char| !is_name(c))
            .map_or(0, |s| s + 1);
        let name = &text[start..end];
        let relative_ok = !name.starts_with('.') || name.starts_with("..");
        if after_ok && name.len() > 3 && relative_ok {
            out.push(name.trim_start_matches("./").to_owned());
        }
        i = end;
    }
    out
}

#[test]
fn the_checkers_find_names_and_links() {
    let text = "see [a](docs/design.md#layout), (pathsel/README.md) and `../README.md`; not foo.mdx\n```\n[b](c)\n```\n";
    assert_eq!(
        md_names(text),
        ["docs/design.md", "pathsel/README.md", "../README.md"]
    );
    assert_eq!(link_targets(text), ["docs/design.md#layout"]);
    assert_eq!(
        anchor("Documented differences from Tor"),
        "documented-differences-from-tor"
    );
}

#[test]
fn no_file_names_a_document_that_is_not_in_the_repository() {
    // Output files the tools write (not documents of the repository).
    const WRITTEN_BY_TOOLS: [&str; 1] = ["report.md"];
    let mut missing = Vec::new();
    for file in repo_files(&["rs", "md", "toml", "sh"]) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let dir = file.parent().unwrap();
        // A crate's files may name paths from the crate's folder (`src/...`, `README.md`).
        let krate = root().join(file.strip_prefix(root()).unwrap().iter().next().unwrap());
        for name in md_names(&text) {
            if WRITTEN_BY_TOOLS.contains(&name.as_str()) || name.contains("://") {
                continue;
            }
            if ![root().join(&name), dir.join(&name), krate.join(&name)]
                .iter()
                .any(|p| p.exists())
            {
                missing.push(format!("{}: {name}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these name a document the repository does not hold:\n{}",
        missing.join("\n")
    );
}

// ---- the configuration reference ----

/// Rows of docs/configuration.md's key tables: key -> (for, default).
fn reference_rows() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
        let Some(key) = cells.first().and_then(|c| c.strip_prefix("| `")) else {
            continue;
        };
        let key = key.trim_end_matches('`').to_owned();
        assert!(cells.len() >= 5, "row of {key} has too few cells: {line}");
        let default = cells[3].trim_matches('`').to_owned();
        let old = rows.insert(key.clone(), (cells[1].to_owned(), default));
        assert!(old.is_none(), "{key} has two rows");
    }
    rows
}

/// `--print-config` of a config file holding only `text`, as key -> printed value
/// (`(unset)` for an unset key; the temp folder's path taken out of paths).
fn printed(kind: &str, text: &str) -> BTreeMap<String, String> {
    let tmp = tempfile::tempdir().unwrap();
    // The default `KeyDirectory` must exist (its keys are read when the relay starts).
    std::fs::create_dir(tmp.path().join("keys")).unwrap();
    std::fs::copy(
        root().join("docs/examples/directory.toml"),
        tmp.path().join("directory.toml"),
    )
    .unwrap();
    let file = tmp.path().join(format!("{kind}.toml"));
    std::fs::write(&file, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kistrel"))
        .args([kind, "--print-config", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let prefix = format!("{}/", tmp.path().display());
    let mut out = BTreeMap::new();
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        if let Some(unset) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" = (unset)"))
        {
            out.insert(unset.to_owned(), "(unset)".to_owned());
        } else if let Some((k, v)) = line.split_once(" = ") {
            out.insert(k.to_owned(), v.replace(&prefix, ""));
        }
    }
    out
}

fn check_reference(kind: &str, keys: &[&str], minimal: &str, required: &[&str]) -> Vec<String> {
    let rows = reference_rows();
    let values = printed(kind, minimal);
    let mut problems = Vec::new();
    for key in keys {
        let Some((who, default)) = rows.get(*key) else {
            problems.push(format!(
                "{kind} key {key} has no row in docs/configuration.md"
            ));
            continue;
        };
        if who != kind && who != "both" {
            problems.push(format!(
                "{key}: row says for {who:?}, but the {kind} takes it"
            ));
        }
        let want = if required.contains(key) {
            "(required)".to_owned()
        } else {
            match values.get(*key) {
                Some(v) => v.clone(),
                None => {
                    problems.push(format!("--print-config of a {kind} does not print {key}"));
                    continue;
                }
            }
        };
        if *default != want {
            problems.push(format!(
                "{key}: docs/configuration.md says default {default}, --print-config says {want}"
            ));
        }
    }
    for (key, (who, _)) in &rows {
        if (who == kind || who == "both") && !keys.contains(&key.as_str()) {
            problems.push(format!(
                "docs/configuration.md has {key} for {who}: the {kind} refuses it"
            ));
        }
    }
    problems
}

#[test]
fn configuration_reference_has_every_key_with_its_default() {
    let mut problems = check_reference(
        "relay",
        &RelayConf::keys(),
        "ORPort = \"127.0.0.1:9001\"\n",
        &["ORPort"],
    );
    problems.extend(check_reference(
        "client",
        &ClientConf::keys(),
        "DirectoryFile = \"directory.toml\"\n",
        &["DirectoryFile"],
    ));
    let rows = reference_rows();
    for who in rows.values().map(|(w, _)| w) {
        assert!(["relay", "client", "both"].contains(&who.as_str()), "{who}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- the example files ----

/// Starts `kistrel ARGS` in `dir` and waits for its `ready` line. Its stderr goes to a file
/// in `dir`, shown if no ready line comes (one CI run saw the client exit before it).
fn start_ready(dir: &Path, args: &[&str]) -> (Reaped, String) {
    let err_path = dir.join(format!("{}.stderr", args.join("_")));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kistrel"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let child = Reaped(child);
    let line = lines.recv_timeout(Duration::from_secs(60));
    match line {
        Ok(l) if l.starts_with("ready ") => (child, l),
        other => panic!(
            "kistrel {args:?}: no ready line, got {other:?}; its stderr:\n{}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        ),
    }
}

#[test]
fn example_files_start_a_network_as_written_and_fetch_through_it() {
    let _serial = serial();
    if skip_without_tools() {
        return;
    }
    // A copy, so the client's state lands in a temp folder; the files are byte for byte
    // those of docs/examples.
    let tmp = tempfile::tempdir().unwrap();
    let examples = root().join("docs/examples");
    let mut files = Vec::new();
    files_under(&examples, &mut files);
    for f in &files {
        let to = tmp.path().join(f.strip_prefix(&examples).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(f, &to).unwrap();
    }
    let mut relays = Vec::new();
    for (file, addr) in [
        ("relay.toml", "127.0.0.1:39101"),
        ("middle.toml", "127.0.0.1:39102"),
        ("exit.toml", "127.0.0.1:39103"),
    ] {
        let (child, line) = start_ready(tmp.path(), &["relay", "-c", file]);
        assert_eq!(line, format!("ready or={addr}"));
        relays.push(child);
    }
    let (mut client, line) = start_ready(tmp.path(), &["client", "-c", "client.toml"]);
    assert_eq!(line, "ready socks=127.0.0.1:39150");
    let http = Http::start(4 * MIB, 16);
    let out = tmp.path().join("got");
    let (sha, len) = fetch("127.0.0.1:39150".parse().unwrap(), "a", &http.url(), &out)
        .expect("curl through the example network");
    assert_eq!((sha, len), (http.sha, 4 * MIB));
    // SIGTERM: each exits 0, and the client saved its state where client.toml says.
    let pid = nix::unistd::Pid::from_raw(client.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(wait_exit(&mut client.0, Duration::from_secs(20), "client").success());
    assert!(tmp.path().join("client-data/state").is_file());
    for mut r in relays {
        let pid = nix::unistd::Pid::from_raw(r.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(wait_exit(&mut r.0, Duration::from_secs(20), "relay").success());
    }
}
