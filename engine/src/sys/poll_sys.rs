//! What the portable poll backend (`engine::poll`) needs below std: poll(2) over a `pollfd`
//! array the caller keeps between calls, and a connect(2) that does not wait.
//!
//! nix wraps poll(2) too, but its `PollFd` borrows each descriptor for the duration of a
//! call, so a vector of them cannot live beside the sockets it names; the backend rebuilds
//! its array only when its set of sockets changes, hence this wrapper over raw descriptors.
//! A stale or wrong descriptor number only yields `POLLNVAL` or a wrong readiness, never
//! undefined behaviour.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{cvt, RawSockAddr};

/// What to wait for on one descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    /// Wake when bytes (or EOF, or a pending connection) can be read.
    pub read: bool,
    /// Wake when bytes can be written (or a connect finished).
    pub write: bool,
}

/// What poll(2) reported for one descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// POLLIN: readable, EOF, or a connection to accept.
    pub readable: bool,
    /// POLLOUT: writable, or a non-blocking connect finished.
    pub writable: bool,
    /// POLLERR: an error is pending on the socket.
    pub error: bool,
    /// POLLHUP: both directions are shut (or the connect failed).
    pub hangup: bool,
    /// POLLNVAL: the descriptor is not open.
    pub invalid: bool,
}

impl Readiness {
    /// Whether anything was reported.
    pub fn any(self) -> bool {
        self.readable || self.writable || self.error || self.hangup || self.invalid
    }
}

/// A `pollfd` array kept between calls. Entry `i` is the `i`-th [`PollSet::push`] since the
/// last [`PollSet::clear`].
#[derive(Debug, Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
    /// The descriptor of each entry, kept apart because a disabled entry's `fd` is -1.
    raw: Vec<RawFd>,
}

impl PollSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes every entry (keeps the capacity).
    pub fn clear(&mut self) {
        self.fds.clear();
        self.raw.clear();
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether the set has no entries.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Adds `fd` with `interest`; returns its entry index.
    pub fn push(&mut self, fd: RawFd, interest: Interest) -> usize {
        self.fds.push(libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        });
        self.raw.push(fd);
        let i = self.fds.len() - 1;
        self.set_interest(i, interest);
        i
    }

    /// Changes what entry `i` waits for. An entry with no interest is left out of the wait
    /// (its `fd` becomes -1, which poll(2) skips), so a hung-up socket nobody reads or
    /// writes cannot make every wait return at once. Out-of-range indexes are ignored.
    pub fn set_interest(&mut self, i: usize, interest: Interest) {
        let (Some(pfd), Some(&fd)) = (self.fds.get_mut(i), self.raw.get(i)) else {
            return;
        };
        let mut events: libc::c_short = 0;
        if interest.read {
            events |= libc::POLLIN;
        }
        if interest.write {
            events |= libc::POLLOUT;
        }
        pfd.events = events;
        pfd.fd = if events == 0 { -1 } else { fd };
    }

    /// What the last [`PollSet::wait`] reported for entry `i` (nothing if out of range).
    pub fn readiness(&self, i: usize) -> Readiness {
        let Some(pfd) = self.fds.get(i) else {
            return Readiness::default();
        };
        let r = pfd.revents;
        Readiness {
            readable: r & libc::POLLIN != 0,
            writable: r & libc::POLLOUT != 0,
            error: r & libc::POLLERR != 0,
            hangup: r & libc::POLLHUP != 0,
            invalid: r & libc::POLLNVAL != 0,
        }
    }

    /// One poll(2): waits up to `timeout` (`None`: forever; rounded up to whole
    /// milliseconds, so a short deadline is not turned into a busy loop) for any entry to
    /// become ready. Returns how many entries have something to report; 0 on timeout or
    /// when a signal interrupted the wait.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        for pfd in &mut self.fds {
            pfd.revents = 0;
        }
        let ms: libc::c_int = match timeout {
            None => -1,
            Some(d) => {
                let ceil = d.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(ceil).unwrap_or(libc::c_int::MAX)
            }
        };
        let nfds = libc::nfds_t::try_from(self.fds.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
        // SAFETY: `self.fds` is a live, initialised array of exactly `nfds` pollfd entries,
        // borrowed mutably for the call; the kernel only writes their `revents` fields.
        let ret = unsafe { libc::poll(self.fds.as_mut_ptr(), nfds, ms) };
        match cvt(ret) {
            Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Starts connecting the non-blocking socket `fd` to `addr`. `Ok(true)`: connected already;
/// `Ok(false)`: in progress (EINPROGRESS, or EINTR, after which the connect goes on
/// asynchronously per POSIX): wait for writability, then read SO_ERROR.
pub fn connect_nonblocking(fd: RawFd, addr: &SocketAddr) -> io::Result<bool> {
    let sa = RawSockAddr::new(addr);
    // SAFETY: `sa` is a valid socket address of `sa.len()` bytes that lives across the call;
    // the kernel only reads it.
    match cvt(unsafe { libc::connect(fd, sa.as_ptr(), sa.len()) }) {
        Ok(_) => Ok(true),
        Err(e)
            if e.raw_os_error() == Some(libc::EINPROGRESS)
                || e.kind() == io::ErrorKind::Interrupted =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn reports_readable_only_after_bytes_arrive() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let mut set = PollSet::new();
        let i = set.push(
            b.as_raw_fd(),
            Interest {
                read: true,
                write: false,
            },
        );
        assert_eq!(set.wait(Some(Duration::ZERO)).unwrap(), 0);
        assert_eq!(set.readiness(i), Readiness::default());
        a.write_all(b"x").unwrap();
        assert_eq!(set.wait(Some(Duration::from_secs(5))).unwrap(), 1);
        let r = set.readiness(i);
        assert!(r.readable && !r.writable && !r.invalid);
    }

    #[test]
    fn entry_without_interest_is_skipped() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        drop(a); // b now reads EOF: readable
        let mut set = PollSet::new();
        let i = set.push(b.as_raw_fd(), Interest::default());
        assert_eq!(set.wait(Some(Duration::ZERO)).unwrap(), 0);
        set.set_interest(
            i,
            Interest {
                read: true,
                write: false,
            },
        );
        assert_eq!(set.wait(Some(Duration::from_secs(5))).unwrap(), 1);
        assert!(set.readiness(i).readable);
    }

    #[test]
    fn refused_connect_reports_the_error() {
        // Bind then drop: nothing listens on the port any more.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let fd = crate::sys::tcp_socket(&addr).unwrap();
        let err = match connect_nonblocking(fd.as_raw_fd(), &addr) {
            Err(e) => e,
            Ok(done) => {
                assert!(!done);
                let mut set = PollSet::new();
                let i = set.push(
                    fd.as_raw_fd(),
                    Interest {
                        read: false,
                        write: true,
                    },
                );
                assert_eq!(set.wait(Some(Duration::from_secs(5))).unwrap(), 1);
                let r = set.readiness(i);
                assert!(r.error || r.hangup || r.writable);
                TcpStream::from(fd).take_error().unwrap().unwrap()
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn connect_in_progress_then_writable() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let fd = crate::sys::tcp_socket(&addr).unwrap();
        let done = connect_nonblocking(fd.as_raw_fd(), &addr).unwrap();
        let mut set = PollSet::new();
        let i = set.push(
            fd.as_raw_fd(),
            Interest {
                read: false,
                write: true,
            },
        );
        if !done {
            assert_eq!(set.wait(Some(Duration::from_secs(5))).unwrap(), 1);
            assert!(set.readiness(i).writable);
        }
        let s = TcpStream::from(fd);
        assert!(s.take_error().unwrap().is_none());
        assert_eq!(s.peer_addr().unwrap(), addr);
    }
}
