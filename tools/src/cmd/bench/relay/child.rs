//! The processes of one phase as the bench drives them: started with their stdout read line
//! by line on a thread, stderr to a log file, the bench's pid in their environment (they die
//! with it), and killed when dropped.
//!
//! ```text
//!   LoadProc (pump, sink)   stdin: snap | stop | quit     stdout: ready / counters / final
//!   Target::Relay           `kistrel relay -c ..`         stdout: metrics addr=..   SIGTERM
//!   Target::Forwarder       `kistrel-forward ..`          stdout: ready / final     stdin EOF
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde::de::DeserializeOwned;

use crate::error::CliError;
use crate::load::control::{parse_answer, Command as LoadCommand};
use crate::load::Counters;
use crate::parent::PARENT_PID_ENV;

/// Longest a child may take to answer a line (setup answers: building every circuit).
pub(super) const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// A running child process of the bench.
#[derive(Debug)]
pub(super) struct ChildProc {
    /// `pump0`, `sink0`, `relay`, `forwarder`.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: PathBuf,
}

impl ChildProc {
    /// Starts `cmd` as `name`, stderr to `dir/NAME.log`.
    pub(super) fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Result<ChildProc, CliError> {
        let log = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log)
            .map_err(|e| CliError::runtime(format!("creating {}", log.display()), e))?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env(PARENT_PID_ENV, std::process::id().to_string());
        let mut child = cmd
            .spawn()
            .map_err(|e| CliError::runtime(format!("starting {name}"), e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| CliError::runtime(format!("starting {name}"), "no stdout pipe"))?;
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name(format!("bench-{name}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| CliError::runtime("starting a reader thread", e))?;
        Ok(ChildProc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            log,
        })
    }

    /// The process id.
    pub(super) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(-1)
    }

    /// An error about this child, with the end of its log.
    pub(super) fn failed(&self, what: &str) -> CliError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        CliError::runtime(
            format!("{} {what}", self.name),
            format!("log {}: {}", self.log.display(), tail.join(" | ")),
        )
    }

    /// Writes one line to the child's stdin.
    pub(super) fn send(&mut self, line: &str) -> Result<(), CliError> {
        let ok = self
            .stdin
            .as_mut()
            .is_some_and(|s| writeln!(s, "{line}").and_then(|()| s.flush()).is_ok());
        if ok {
            Ok(())
        } else {
            Err(self.failed(&format!("did not take {line:?}")))
        }
    }

    /// The next stdout line `pick` accepts (others are skipped), within `wait`.
    pub(super) fn expect<T>(
        &mut self,
        wait: Duration,
        what: &str,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, CliError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return Ok(v);
                    }
                }
                Err(_) => return Err(self.failed(&format!("gave no {what} line"))),
            }
        }
    }

    /// The next `word {json}` line, decoded.
    pub(super) fn answer<T: DeserializeOwned>(&mut self, word: &str) -> Result<T, CliError> {
        self.expect(ANSWER_WAIT, word, |line| {
            let (w, json) = parse_answer(line)?;
            (w == word).then(|| serde_json::from_str(json).ok())?
        })
    }

    /// Closes stdin (a load process or the forwarder then stops).
    pub(super) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Asks the child to stop (SIGTERM) without waiting.
    pub(super) fn terminate(&mut self) {
        #[cfg(unix)]
        {
            use nix::sys::signal::{kill, Signal};
            let _ = kill(nix::unistd::Pid::from_raw(self.pid()), Signal::SIGTERM);
        }
        #[cfg(not(unix))]
        let _ = self.child.kill();
    }

    /// Waits up to `limit` for the child to exit; kills it after that. Whether it exited on
    /// its own with status 0.
    pub(super) fn wait(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A pump or a sink, spoken to with the line protocol of [`crate::load::control`].
#[derive(Debug)]
pub(super) struct LoadProc {
    pub(super) proc: ChildProc,
}

impl LoadProc {
    /// Sends `snap` and returns the counters.
    pub(super) fn snap(&mut self) -> Result<Counters, CliError> {
        self.proc.send(LoadCommand::Snap.word())?;
        self.proc.answer("counters")
    }

    /// Sends `stop` (no answer).
    pub(super) fn stop(&mut self) -> Result<(), CliError> {
        self.proc.send(LoadCommand::Stop.word())
    }

    /// Sends `quit` and returns the final counters; the process exits.
    pub(super) fn quit(&mut self) -> Result<Counters, CliError> {
        self.proc.send(LoadCommand::Quit.word())?;
        let last = self.proc.answer("final")?;
        if !self.proc.wait(Duration::from_secs(10)) {
            return Err(self.proc.failed("did not exit cleanly"));
        }
        Ok(last)
    }
}
