//! What the scheduler knows about one socket at the start of a run.

/// A reading of one socket's kernel state, taken by `kistrel_engine::sys::socket_snapshot`
/// just before a scheduling run (on Linux one getsockopt(TCP_INFO) gives both fields). Fields
/// the platform cannot report are `None`; a scheduler that needs one (KIST needs both) is not
/// usable there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketSnapshot {
    /// From TCP_INFO (Linux only).
    pub tcp: Option<TcpInfo>,
    /// Bytes in the send queue not yet sent: `tcpi_notsent_bytes` (Linux 4.6+; the same
    /// `write_seq - snd_nxt` that the SIOCOUTQNSD ioctl returns).
    pub notsent: Option<u32>,
}

/// The TCP_INFO fields KIST uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// `tcpi_snd_cwnd`: congestion window, in packets.
    pub cwnd: u32,
    /// `tcpi_unacked`: packets sent and not yet acknowledged.
    pub unacked: u32,
    /// `tcpi_snd_mss`: sender maximum segment size, in bytes.
    pub mss: u32,
    /// `tcpi_rtt`: smoothed round-trip time, in microseconds.
    pub rtt_us: u32,
}
