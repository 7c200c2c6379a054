//! The line protocol between `kistrel bench relay` and its load processes (pump, sink):
//! commands on the process's stdin, answers on its stdout, one JSON object per answer.
//!
//! ```text
//!   process -> bench   ready {"addr": .., "identity": .., "ntor_key": .., "circuits": ..}
//!   bench -> process   snap      process -> bench   counters {"data_sent": .., ..}
//!   bench -> process   stop      (no new data; acks and data in flight go on)
//!   bench -> process   quit      process -> bench   final {..}; exit 0
//! ```
//!
//! stdin closing counts as `quit`, so a load process never outlives its bench.

use std::io::{BufRead, Write};

use crossbeam_channel::Receiver;
use serde::{Deserialize, Serialize};

use super::LoadError;

/// What a load process has done so far (cumulative since it started; cells are 514 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Data cells this process sent (pump: forward; sink: backward).
    pub data_sent: u64,
    /// Data cells this process received (pump: backward; sink: forward).
    pub data_received: u64,
    /// Ack cells sent.
    pub acks_sent: u64,
    /// Ack cells received.
    pub acks_received: u64,
    /// Circuits carrying data (sink: those whose start cell arrived).
    pub circuits: u64,
    /// Connections open.
    pub connections: u64,
}

impl Counters {
    /// Every relay cell this process received (data and acks).
    pub fn cells_received(&self) -> u64 {
        self.data_received + self.acks_received
    }

    /// Every relay cell this process sent (data and acks).
    pub fn cells_sent(&self) -> u64 {
        self.data_sent + self.acks_sent
    }
}

/// A load process's first line: it is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Sink: the address it listens on.
    pub addr: Option<std::net::SocketAddr>,
    /// Sink: its identity (40 hex digits), for the pump's EXTEND2 / CREATE2.
    pub identity: Option<String>,
    /// Sink: its ntor onion key (base64).
    pub ntor_key: Option<String>,
    /// Pump: circuits built (each carrying data one way).
    pub circuits: u64,
    /// Pump: connections open.
    pub connections: u64,
}

/// A command from the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Print the counters.
    Snap,
    /// Send no new data (acks, and data already queued, still go out).
    Stop,
    /// Print the final counters and exit.
    Quit,
}

impl Command {
    /// The command a line names.
    pub fn parse(line: &str) -> Option<Command> {
        match line.trim() {
            "snap" => Some(Command::Snap),
            "stop" => Some(Command::Stop),
            "quit" => Some(Command::Quit),
            _ => None,
        }
    }

    /// The line that names it (without the newline).
    pub fn word(self) -> &'static str {
        match self {
            Command::Snap => "snap",
            Command::Stop => "stop",
            Command::Quit => "quit",
        }
    }
}

/// Reads commands from stdin on a thread of its own; the end of stdin (or an unreadable
/// line) arrives as [`Command::Quit`]. Unknown lines are logged and skipped.
pub(super) fn read_stdin() -> Receiver<Command> {
    let (tx, rx) = crossbeam_channel::bounded(64);
    let spawned = std::thread::Builder::new()
        .name("kistrel-load-ctl".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                match Command::parse(&line) {
                    Some(cmd) => {
                        if tx.send(cmd).is_err() {
                            return;
                        }
                    }
                    None => tracing::warn!(line, "unknown control line"),
                }
            }
            let _ = tx.send(Command::Quit);
        });
    if let Err(e) = spawned {
        // Without a reader there is no way to be told to stop: quit at once.
        tracing::error!("cannot start the control reader: {e}");
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = tx.send(Command::Quit);
        return rx;
    }
    rx
}

/// Prints `word {json}` on stdout and flushes.
pub(super) fn emit(word: &str, value: &impl Serialize) -> Result<(), LoadError> {
    let json = serde_json::to_string(value).map_err(|e| LoadError::Control(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{word} {json}")
        .and_then(|()| out.flush())
        .map_err(|e| LoadError::Control(e.to_string()))
}

/// Splits an answer line into its word and JSON (`None` for any other line).
pub fn parse_answer(line: &str) -> Option<(&str, &str)> {
    let (word, json) = line.trim_end().split_once(' ')?;
    matches!(word, "ready" | "counters" | "final").then_some((word, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_answers_round_trip() {
        for c in [Command::Snap, Command::Stop, Command::Quit] {
            assert_eq!(Command::parse(&format!("{}\n", c.word())), Some(c));
        }
        assert_eq!(Command::parse("snapshot"), None);
        let c = Counters {
            data_sent: 1200,
            acks_received: 11,
            ..Counters::default()
        };
        let line = format!("counters {}", serde_json::to_string(&c).unwrap());
        let (word, json) = parse_answer(&line).unwrap();
        assert_eq!(word, "counters");
        assert_eq!(serde_json::from_str::<Counters>(json).unwrap(), c);
        assert_eq!(c.cells_sent(), 1200);
        assert_eq!(c.cells_received(), 11);
        assert_eq!(parse_answer("2026-12-05 WARN something"), None);
    }
}
