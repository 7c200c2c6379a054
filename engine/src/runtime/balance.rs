//! Spreading accepted connections (channels at relays, SOCKS clients at clients) over a
//! process's workers.
//!
//! Every worker accepts on its own SO_REUSEPORT listener, and the kernel picks the listener
//! by a hash of the connection's addresses: with two workers, two channels land on one worker
//! half of the time, and since a circuit lives on the worker of its inbound channel (its
//! outbound channel is opened there), one core then carries the relay while the other idles.
//! Measured on the 3-hop network (benches/three-hop-throughput.sh, session 13): rounds whose
//! relays had their channels on both workers ran ~20% faster than rounds with one busy worker.
//!
//! A client's SOCKS listener is the same: a stream is carried by a circuit of the worker
//! that accepted its SOCKS connection.
//!
//! So an accepted connection is held (nothing read, `Driver::hold_accepted`) until
//! its worker decides: it keeps it unless a sibling has fewer channels, and otherwise hands
//! the socket ([`Handoff`]) to the sibling with the fewest through a queue of its own. The
//! receiving worker adopts it unconditionally, so a connection moves at most once. Loads are
//! published as relaxed atomics (a hint read once per accept, never on the data path); two
//! workers deciding at the same moment may both keep or both hand off, and the next accept
//! evens it out.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Accepted connections waiting in one worker's queue, at most.
const HANDOFF_QUEUE: usize = 256;

/// An accepted connection handed to a sibling worker: nothing was read from it.
#[derive(Debug)]
pub struct Handoff {
    /// The connected socket.
    pub stream: TcpStream,
    /// Its peer, as the accepting driver saw it.
    pub peer: SocketAddr,
    /// Which listener accepted it.
    pub kind: Accepted,
}

/// What an accepted connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// A channel, from the OR listener.
    Channel,
    /// A SOCKS client, from the SOCKS listener.
    Socks,
}

/// One worker's view of its siblings: everyone's load (channels plus edges), its own queue of handed
/// connections, and the queues of the others.
#[derive(Debug)]
pub struct Siblings {
    index: usize,
    loads: Arc<[AtomicU32]>,
    inbox: Receiver<Handoff>,
    outboxes: Vec<Sender<Handoff>>,
    /// The load this worker published last.
    published: u32,
}

/// One [`Siblings`] per worker of a process, in worker order.
pub fn siblings(workers: usize) -> Vec<Siblings> {
    let loads: Arc<[AtomicU32]> = (0..workers).map(|_| AtomicU32::new(0)).collect();
    let (outboxes, inboxes): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| crossbeam_channel::bounded(HANDOFF_QUEUE))
        .unzip();
    inboxes
        .into_iter()
        .enumerate()
        .map(|(index, inbox)| Siblings {
            index,
            loads: Arc::clone(&loads),
            inbox,
            outboxes: outboxes.clone(),
            published: 0,
        })
        .collect()
}

impl Siblings {
    /// Whether there is anyone to hand connections to.
    pub fn has_peers(&self) -> bool {
        self.loads.len() > 1
    }

    /// Publishes this worker's load: its channels plus its edges (a store only when it
    /// changed).
    pub fn publish(&mut self, load: usize) {
        let load = u32::try_from(load).unwrap_or(u32::MAX);
        if load != self.published {
            self.published = load;
            if let Some(slot) = self.loads.get(self.index) {
                slot.store(load, Ordering::Relaxed);
            }
        }
    }

    /// The sibling to hand a new connection to: the one with the least load, if that is
    /// less than this worker's (lowest index among equals); `None` keeps it here.
    pub fn target(&self) -> Option<usize> {
        pick_target(
            self.index,
            self.loads.iter().map(|l| l.load(Ordering::Relaxed)),
        )
    }

    /// Queues `handoff` for worker `to`; gives it back when that queue is full or gone.
    ///
    /// A queued connection counts in `to`'s published load at once, before `to` adopts it
    /// and publishes its own count: otherwise every connection of a burst accepted here
    /// before `to` runs again would go to `to`, the least loaded when the burst began.
    pub fn send(&self, to: usize, handoff: Handoff) -> Result<(), Handoff> {
        let Some(tx) = self.outboxes.get(to) else {
            return Err(handoff);
        };
        tx.try_send(handoff).map_err(|e| match e {
            TrySendError::Full(h) | TrySendError::Disconnected(h) => h,
        })?;
        if let Some(load) = self.loads.get(to) {
            load.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The next connection a sibling handed to this worker.
    pub fn recv(&self) -> Option<Handoff> {
        self.inbox.try_recv().ok()
    }
}

/// [`Siblings::target`] over a snapshot of the loads.
fn pick_target(me: usize, loads: impl Iterator<Item = u32>) -> Option<usize> {
    let (mut mine, mut least) = (None, None::<(u32, usize)>);
    for (j, load) in loads.enumerate() {
        if j == me {
            mine = Some(load);
        } else if least.is_none_or(|(l, _)| load < l) {
            least = Some((load, j));
        }
    }
    let (least, j) = least?;
    (least < mine?).then_some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_goes_to_the_least_loaded_sibling_only_when_it_has_fewer() {
        assert_eq!(pick_target(0, [0, 0].into_iter()), None, "equal: keep");
        assert_eq!(pick_target(0, [1, 0].into_iter()), Some(1));
        assert_eq!(
            pick_target(1, [1, 0].into_iter()),
            None,
            "the least loaded keeps"
        );
        assert_eq!(
            pick_target(0, [3, 2, 1, 1].into_iter()),
            Some(2),
            "lowest index among equals"
        );
        assert_eq!(pick_target(2, [3, 2, 2, 1].into_iter()), Some(3));
        assert_eq!(pick_target(0, [5].into_iter()), None, "no sibling");
        assert_eq!(pick_target(4, [0, 0].into_iter()), None, "not a worker");
    }

    #[test]
    fn loads_are_shared_and_handoffs_reach_their_worker() {
        let mut s = siblings(3);
        assert!(s.iter().all(Siblings::has_peers));
        s[0].publish(2);
        s[1].publish(1);
        // Worker 0 sees 2 / 1 / 0: worker 2; worker 2 keeps.
        assert_eq!(s[0].target(), Some(2));
        assert_eq!(s[2].target(), None);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let peer = stream.local_addr().unwrap();
        s[0].send(
            2,
            Handoff {
                stream,
                peer,
                kind: Accepted::Socks,
            },
        )
        .unwrap();
        assert!(s[1].recv().is_none());
        let got = s[2].recv().expect("worker 2's queue has it");
        assert_eq!((got.peer, got.kind), (peer, Accepted::Socks));
        assert!(s[2].recv().is_none());
        assert!(!siblings(1)[0].has_peers());
    }

    /// A burst accepted by worker 0 while worker 1 does not run (it adopts and publishes
    /// nothing meanwhile) is shared, not all handed to worker 1.
    #[test]
    fn a_burst_is_shared_before_the_sibling_publishes() {
        let mut s = siblings(2);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        let (mut kept, mut handed) = (0, 0);
        for _ in 0..6 {
            match s[0].target() {
                None => {
                    kept += 1;
                    s[0].publish(kept);
                }
                Some(to) => {
                    let handoff = Handoff {
                        stream: stream.try_clone().unwrap(),
                        peer: addr,
                        kind: Accepted::Channel,
                    };
                    s[0].send(to, handoff).unwrap();
                    handed += 1;
                }
            }
        }
        assert_eq!((kept, handed), (3, 3));
        // Worker 1 adopts them and publishes its own count, which replaces the estimate.
        let adopted = std::iter::from_fn(|| s[1].recv()).count();
        assert_eq!(adopted, 3);
        s[1].publish(adopted);
        assert_eq!(s[0].target(), None, "3 and 3");
        assert_eq!(s[1].target(), None);
    }

    #[test]
    fn a_full_queue_gives_the_connection_back() {
        let s = siblings(2);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // One connection, its descriptor duplicated: the queue holds sockets, any will do.
        let stream = TcpStream::connect(addr).unwrap();
        for _ in 0..HANDOFF_QUEUE {
            let dup = stream.try_clone().unwrap();
            s[0].send(
                1,
                Handoff {
                    stream: dup,
                    peer: addr,
                    kind: Accepted::Channel,
                },
            )
            .unwrap();
        }
        let kind = Accepted::Channel;
        let back = s[0]
            .send(
                1,
                Handoff {
                    stream,
                    peer: addr,
                    kind,
                },
            )
            .unwrap_err();
        assert_eq!(back.peer, addr);
        assert!(s[0].send(7, back).is_err(), "no such worker");
    }
}
