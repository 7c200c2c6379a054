//! The `relay_state` input: a [`Scenario`] of [`Action`]s, decoded by `arbitrary`, and
//! [`encode`], its inverse, so seeds can be written as action lists.
//!
//! Byte fields are [`Bytes`] (a u16 length in front) rather than `Vec<u8>` (whose length
//! `arbitrary` takes from the end of the input): the input then reads front to back, which
//! is what makes `encode` short. `gen_seeds` checks `decode(encode(s)) == s` for every seed
//! it writes, so a change of `arbitrary`'s format is caught there.

use arbitrary::{Arbitrary, Unstructured};

/// Bytes read as a u16 length (little-endian) and then that many bytes (fewer if the input
/// ends first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Bytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u16::arbitrary(u)?).min(u.len());
        Ok(Bytes(u.bytes(len)?.to_vec()))
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A whole fuzz input.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// `MaxMemInQueues` in units of 4 cells (0: the default, 512 MiB): small, so the OOM
    /// handler runs.
    pub mem_limit: u8,
    /// `MaxCircuitQueueCells` in units of 4 cells (0: the default, 2500).
    pub queue_limit: u8,
    pub actions: Vec<Action>,
}

/// One step. Peer, circuit and stream numbers index the live ones (modulo their count).
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A new inbound connection; `hello` sends VERSIONS + NETINFO at once.
    Accept { hello: bool },
    /// Send the link handshake (VERSIONS + NETINFO) on a peer.
    Hello { peer: u8 },
    /// CREATE_FAST on circuit id `0x8000_0000 | circ`.
    CreateFast { peer: u8, circ: u8 },
    /// CREATE2 with a real ntor onion for the relay from client secret `x`; `wrong_key`
    /// names another onion key instead.
    Create2 {
        peer: u8,
        circ: u8,
        x: [u8; 32],
        wrong_key: bool,
    },
    /// A relay cell on an open circuit, with the right keys. `originate`: recognized at the
    /// relay; otherwise encrypted only, so the relay passes it on (or rejects it).
    Relay {
        circ: u8,
        early: bool,
        originate: bool,
        cmd: u8,
        stream: u16,
        data: Bytes,
    },
    /// BEGIN to `HOSTS[host]:port` on stream `stream`.
    Begin {
        circ: u8,
        stream: u16,
        host: u8,
        port: u16,
    },
    /// EXTEND2 (in RELAY_EARLY) to 127.0.0.2:port, identity `[id; 20]`, arbitrary onion.
    Extend2 {
        circ: u8,
        port: u16,
        id: u8,
        hdata: Bytes,
    },
    /// A circuit SENDME (v1): with the digest the relay expects, or a wrong one.
    Sendme {
        circ: u8,
        stream: u16,
        correct: bool,
    },
    /// DESTROY of a circuit we created.
    Destroy { circ: u8, reason: u8 },
    /// Any fixed cell on any circuit id.
    RawCell {
        peer: u8,
        circ_id: u32,
        cmd: u8,
        body: Bytes,
    },
    /// Arbitrary bytes on a channel.
    Garbage { peer: u8, bytes: Bytes },
    /// A peer stops (or resumes) reading what the relay sends: its queues grow.
    Stall { peer: u8 },
    /// The runtime answers up to `n` pending events (`fail`: connects fail).
    Events { n: u8, fail: bool },
    /// The exit's target sends `len` bytes on a stream.
    StreamData { stream: u8, len: u16 },
    /// The exit's target closes a stream.
    CloseStream { stream: u8 },
    /// A next hop answers: CREATED2 with `body` as HDATA to the oldest CREATE2 (`created`),
    /// else a cell with command `cmd` on a circuit it knows.
    NextHop {
        peer: u8,
        created: bool,
        cmd: u8,
        body: Bytes,
    },
    /// A peer's socket closes.
    CloseChannel { peer: u8 },
    /// Time passes (handshake timeouts).
    Advance { millis: u16 },
    /// Graceful shutdown: DESTROY on every circuit.
    Shutdown,
}

/// Number of `Action` variants (the derive picks variant `(tag * COUNT) >> 32`).
const ACTION_VARIANTS: u64 = 19;

/// The bytes that decode (with `arbitrary_take_rest`, as the fuzz target does) to `s`.
pub fn encode(s: &Scenario) -> Vec<u8> {
    let mut out = vec![s.mem_limit, s.queue_limit];
    for action in &s.actions {
        out.push(1); // "one more element"
        encode_action(action, &mut out);
    }
    out
}

fn tag(out: &mut Vec<u8>, index: u64) {
    // The smallest u32 that the derive maps to `index`.
    let t = (index << 32).div_ceil(ACTION_VARIANTS);
    out.extend((t as u32).to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, b: &Bytes) {
    let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
    out.extend(len.to_le_bytes());
    out.extend(&b[..usize::from(len)]);
}

fn encode_action(a: &Action, out: &mut Vec<u8>) {
    use Action::*;
    match a {
        Accept { .. }
        | Hello { .. }
        | RawCell { .. }
        | Garbage { .. }
        | Stall { .. }
        | CloseChannel { .. } => encode_peer_action(a, out),
        CreateFast { .. }
        | Create2 { .. }
        | Destroy { .. }
        | Relay { .. }
        | Begin { .. }
        | Extend2 { .. }
        | Sendme { .. } => encode_circuit_action(a, out),
        Events { .. }
        | StreamData { .. }
        | CloseStream { .. }
        | NextHop { .. }
        | Advance { .. }
        | Shutdown => encode_runtime_action(a, out),
    }
}

/// Actions on connections and raw bytes.
fn encode_peer_action(a: &Action, out: &mut Vec<u8>) {
    use Action::*;
    match a {
        Accept { hello } => {
            tag(out, 0);
            out.push(u8::from(*hello));
        }
        Hello { peer } => {
            tag(out, 1);
            out.push(*peer);
        }
        RawCell {
            peer,
            circ_id,
            cmd,
            body,
        } => {
            tag(out, 9);
            out.push(*peer);
            out.extend(circ_id.to_le_bytes());
            out.push(*cmd);
            bytes(out, body);
        }
        Garbage { peer, bytes: b } => {
            tag(out, 10);
            out.push(*peer);
            bytes(out, b);
        }
        Stall { peer } => {
            tag(out, 11);
            out.push(*peer);
        }
        CloseChannel { peer } => {
            tag(out, 16);
            out.push(*peer);
        }
        _ => {}
    }
}

/// Actions on circuits.
fn encode_circuit_action(a: &Action, out: &mut Vec<u8>) {
    use Action::*;
    match a {
        CreateFast { peer, circ } => {
            tag(out, 2);
            out.extend([*peer, *circ]);
        }
        Create2 {
            peer,
            circ,
            x,
            wrong_key,
        } => {
            tag(out, 3);
            out.extend([*peer, *circ]);
            out.extend(x);
            out.push(u8::from(*wrong_key));
        }
        Destroy { circ, reason } => {
            tag(out, 8);
            out.extend([*circ, *reason]);
        }
        Relay {
            circ,
            early,
            originate,
            cmd,
            stream,
            data,
        } => {
            tag(out, 4);
            out.extend([*circ, u8::from(*early), u8::from(*originate), *cmd]);
            out.extend(stream.to_le_bytes());
            bytes(out, data);
        }
        Begin {
            circ,
            stream,
            host,
            port,
        } => {
            tag(out, 5);
            out.push(*circ);
            out.extend(stream.to_le_bytes());
            out.push(*host);
            out.extend(port.to_le_bytes());
        }
        Extend2 {
            circ,
            port,
            id,
            hdata,
        } => {
            tag(out, 6);
            out.push(*circ);
            out.extend(port.to_le_bytes());
            out.push(*id);
            bytes(out, hdata);
        }
        Sendme {
            circ,
            stream,
            correct,
        } => {
            tag(out, 7);
            out.push(*circ);
            out.extend(stream.to_le_bytes());
            out.push(u8::from(*correct));
        }
        _ => {}
    }
}

/// Actions of the runtime and the clock.
fn encode_runtime_action(a: &Action, out: &mut Vec<u8>) {
    use Action::*;
    match a {
        Events { n, fail } => {
            tag(out, 12);
            out.extend([*n, u8::from(*fail)]);
        }
        StreamData { stream, len } => {
            tag(out, 13);
            out.push(*stream);
            out.extend(len.to_le_bytes());
        }
        CloseStream { stream } => {
            tag(out, 14);
            out.push(*stream);
        }
        NextHop {
            peer,
            created,
            cmd,
            body,
        } => {
            tag(out, 15);
            out.extend([*peer, u8::from(*created), *cmd]);
            bytes(out, body);
        }
        Advance { millis } => {
            tag(out, 17);
            out.extend(millis.to_le_bytes());
        }
        Shutdown => tag(out, 18),
        _ => {}
    }
}
/// Hand-written scenarios (the `relay_state` seeds). The first reaches every state in
/// `Reached`; `gen_seeds` asserts that, so a driver change that loses depth is noticed.
pub fn seed_scenarios() -> Vec<(&'static str, Scenario)> {
    let scenario = |mem_limit, queue_limit, actions| Scenario {
        mem_limit,
        queue_limit,
        actions,
    };
    vec![
        ("deep", scenario(40, 0, deep_scenario())),
        ("exit", scenario(0, 30, exit_scenario())),
        ("refused", scenario(0, 0, refused_scenario())),
        ("link", scenario(2, 2, link_scenario())),
    ]
}

const HELLO: Action = Action::Accept { hello: true };
const FAST: Action = Action::CreateFast { peer: 0, circ: 1 };
const NTOR: Action = Action::Create2 {
    peer: 0,
    circ: 2,
    x: [3; 32],
    wrong_key: false,
};
const BEGIN: Action = Action::Begin {
    circ: 0,
    stream: 1,
    host: 0,
    port: 80,
};
const CONNECT: Action = Action::Events { n: 4, fail: false };

/// Opens a circuit and a stream, floods a stalled reader into the OOM handler, extends to
/// a next hop and feeds it cells.
fn deep_scenario() -> Vec<Action> {
    use Action::*;
    let mut deep = vec![HELLO, FAST, BEGIN, CONNECT];
    deep.push(Stall { peer: 0 });
    deep.extend((0..8).map(|_| StreamData {
        stream: 0,
        len: 60_000,
    }));
    deep.extend([
        Stall { peer: 0 },
        NTOR,
        Extend2 {
            circ: 0,
            port: 9001,
            id: 9,
            hdata: Bytes(vec![1; 84]),
        },
        CONNECT,
        NextHop {
            peer: 0,
            created: true,
            cmd: 0,
            body: Bytes(vec![2; 64]),
        },
        Relay {
            circ: 1,
            early: false,
            originate: false,
            cmd: 0,
            stream: 0,
            data: Bytes(vec![9; 509]),
        },
        NextHop {
            peer: 0,
            created: false,
            cmd: 0,
            body: Bytes(vec![5; 509]),
        },
        Garbage {
            peer: 0,
            bytes: Bytes(vec![0xff; 600]),
        },
    ]);
    deep
}

/// An exit exchange: DATA both ways, right and wrong SENDMEs, close and DESTROY.
fn exit_scenario() -> Vec<Action> {
    use Action::*;
    let data = |len: usize| Relay {
        circ: 0,
        early: false,
        originate: true,
        cmd: 2, // DATA
        stream: 1,
        data: Bytes(vec![0x61; len]),
    };
    let mut exit = vec![HELLO, NTOR, BEGIN, CONNECT];
    exit.extend((0..4).map(|_| data(498)));
    exit.extend([
        Events { n: 8, fail: false },
        StreamData {
            stream: 0,
            len: 50_000,
        },
        Sendme {
            circ: 0,
            stream: 0,
            correct: true,
        },
        Sendme {
            circ: 0,
            stream: 1,
            correct: false,
        },
        CloseStream { stream: 0 },
        Destroy { circ: 0, reason: 3 },
    ]);
    exit
}

/// BEGINs the exit policy refuses, a failed connect, an EXTEND2 that cannot work.
fn refused_scenario() -> Vec<Action> {
    use Action::*;
    vec![
        HELLO,
        FAST,
        Begin {
            circ: 0,
            stream: 1,
            host: 1,
            port: 80,
        },
        Begin {
            circ: 0,
            stream: 2,
            host: 3,
            port: 443,
        },
        Events { n: 4, fail: true },
        Relay {
            circ: 0,
            early: true,
            originate: true,
            cmd: 14,
            stream: 0,
            data: Bytes(vec![0]),
        },
    ]
}

/// Link-handshake faults and timeouts, bad circuit ids, a closed channel, shutdown.
fn link_scenario() -> Vec<Action> {
    use Action::*;
    vec![
        Accept { hello: false },
        Garbage {
            peer: 0,
            bytes: Bytes(vec![0, 0, 7, 0, 2, 0, 4]),
        },
        Accept { hello: false },
        Advance { millis: 3000 },
        HELLO,
        RawCell {
            peer: 0,
            circ_id: 0x8000_0005,
            cmd: 10,
            body: Bytes(vec![0; 32]),
        },
        RawCell {
            peer: 0,
            circ_id: 5,
            cmd: 5,
            body: Bytes(vec![0; 20]),
        },
        FAST,
        CloseChannel { peer: 0 },
        Shutdown,
    ]
}
