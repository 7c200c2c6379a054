//! Per-socket write limits: KIST's formula (docs/spec/kist.md, "KIST run" step 2, as Tor's
//! `scheduler_kist.c` computes it), KISTLite's high-water mark and Vanilla's fixed write.

use crate::socket::TcpInfo;

/// Bytes charged per cell: a link-protocol v4+ cell is 4 (circuit id) + 1 (command) + 509
/// (payload) = 514 bytes on the wire. Tor's KIST charges 514 + 29 = 543 to cover TLS framing;
/// kistrel has no TLS yet, so this is the one place to change when it does.
pub const CELL_WIRE_LEN: u32 = 514;

/// Tor's `KISTSockBufSizeFactor` default.
pub const DEFAULT_SOCK_BUF_SIZE_FACTOR: f64 = 1.0;

/// Why a channel's grant is the size it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitReason {
    /// KIST, and the congestion window was full (`unacked >= cwnd`): the grant is only the
    /// socket-buffer top-up, often 0. The network path is the bottleneck.
    CongestionWindow,
    /// KIST, and the congestion window had room: the grant is that room plus a top-up to
    /// `cwnd * mss * factor` unsent bytes, less what is already unsent or staged.
    SocketBuffer,
    /// KISTLite (or KIST on a socket whose TCP_INFO could not be read): a fixed high-water mark
    /// of staged bytes.
    HighWater,
    /// Vanilla: a fixed amount per write.
    VanillaMax,
}

impl LimitReason {
    /// Every reason, in declaration order.
    pub const ALL: [LimitReason; 4] = [
        LimitReason::CongestionWindow,
        LimitReason::SocketBuffer,
        LimitReason::HighWater,
        LimitReason::VanillaMax,
    ];

    /// Short snake_case name: the `by` label of the exported grant counters.
    pub fn label(self) -> &'static str {
        match self {
            LimitReason::CongestionWindow => "cwnd",
            LimitReason::SocketBuffer => "sock_buf",
            LimitReason::HighWater => "high_water",
            LimitReason::VanillaMax => "vanilla_max",
        }
    }
}

/// KIST's per-run write limit for one socket, in bytes:
///
/// ```text
/// tcp_space = max(0, (cwnd - unacked) * mss)
/// extra     = cwnd * mss * sock_buf_size_factor - notsent - outbuf
/// limit     = max(0, tcp_space + extra)
/// ```
///
/// `notsent` is SIOCOUTQNSD, `outbuf` the bytes staged by the relay but not yet handed to the
/// kernel. Computed in i128 (f64 product saturated), so it never panics, never goes negative
/// and saturates at `u64::MAX`. A NaN or negative factor counts as 0.
pub fn kist_limit(tcp: &TcpInfo, notsent: u32, outbuf: u32, sock_buf_size_factor: f64) -> u64 {
    kist_limit_parts(tcp, notsent, outbuf, sock_buf_size_factor).0
}

/// [`kist_limit`] and which term bound it.
#[inline]
pub fn kist_limit_with_reason(
    tcp: &TcpInfo,
    notsent: u32,
    outbuf: u32,
    sock_buf_size_factor: f64,
) -> (u64, LimitReason) {
    kist_limit_parts(tcp, notsent, outbuf, sock_buf_size_factor)
}

#[inline]
fn kist_limit_parts(tcp: &TcpInfo, notsent: u32, outbuf: u32, factor: f64) -> (u64, LimitReason) {
    // u32 * u32 < 2^64: the free space is exact in u64.
    let tcp_space = u64::from(tcp.cwnd.saturating_sub(tcp.unacked)) * u64::from(tcp.mss);
    let reason = if tcp_space == 0 {
        LimitReason::CongestionWindow
    } else {
        LimitReason::SocketBuffer
    };
    // NaN and negative factors count as 0 (NaN compares false).
    let factor = if factor > 0.0 { factor } else { 0.0 };
    // The window `cwnd * mss` as f64: IEEE multiplication rounds the exact product once, so
    // this is `(cwnd * mss) as f64` from two u32 -> f64 conversions (one instruction each)
    // instead of the longer u64 -> f64 sequence.
    let target = f64::from(tcp.cwnd) * f64::from(tcp.mss) * factor;
    let staged = u64::from(notsent) + u64::from(outbuf);
    if target < I64_RANGE {
        // The usual case (no float beyond i64 <-> f64: f64 -> i64 is one instruction where
        // f64 -> u64 is a branchy sequence, and i128 <-> f64 are library calls that cost more
        // than the rest of the grant). The sum fits in u64 unless the window is near 2^64
        // bytes; then the same sum in u128, still exact.
        let target = target as i64 as u64;
        if let Some(top) = tcp_space.checked_add(target) {
            return (top.saturating_sub(staged), reason);
        }
        let top = u128::from(tcp_space) + u128::from(target);
        let limit = top.saturating_sub(u128::from(staged));
        return (u64::try_from(limit).unwrap_or(u64::MAX), reason);
    }
    // An absurd factor: `as` from f64 to i128 saturates (infinity too), add saturating.
    let top = i128::from(tcp_space).saturating_add(target as i128);
    let limit = top.saturating_sub(i128::from(staged)).max(0);
    (u64::try_from(limit).unwrap_or(u64::MAX), reason)
}

/// 2^63 as f64: the non-negative floats that convert to i64 without saturating are those
/// below it.
const I64_RANGE: f64 = 9_223_372_036_854_775_808.0;

/// KISTLite's limit: what fits below `high_water` staged bytes.
pub fn kistlite_limit(outbuf: u32, high_water: u32) -> u64 {
    u64::from(high_water.saturating_sub(outbuf))
}

/// Estimated time, in microseconds, that the `notsent` bytes wait in the kernel before they
/// leave: `notsent / send_rate` with `send_rate ~ cwnd * mss / rtt`. `None` when the rate is
/// unknown (zero cwnd, mss or rtt).
#[inline]
pub fn kernel_queue_time_us(tcp: &TcpInfo, notsent: u32) -> Option<u64> {
    // Each product of two u32 fits in u64, so no u128 division (a library call) is needed.
    let window = u64::from(tcp.cwnd) * u64::from(tcp.mss);
    if window == 0 || tcp.rtt_us == 0 {
        return None;
    }
    Some(u64::from(notsent) * u64::from(tcp.rtt_us) / window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tcp(cwnd: u32, unacked: u32, mss: u32) -> TcpInfo {
        TcpInfo {
            cwnd,
            unacked,
            mss,
            rtt_us: 40_000,
        }
    }

    #[test]
    fn open_window_and_empty_buffer() {
        // tcp_space = 10 * 1448, extra = 10 * 1448.
        let (limit, why) = kist_limit_with_reason(&tcp(10, 0, 1448), 0, 0, 1.0);
        assert_eq!(limit, 28_960);
        assert_eq!(why, LimitReason::SocketBuffer);
        // Half the window in flight, 2000 unsent, 514 staged:
        // 5 * 1448 + (14_480 - 2000 - 514) = 7240 + 11_966.
        assert_eq!(kist_limit(&tcp(10, 5, 1448), 2000, 514, 1.0), 19_206);
    }

    #[test]
    fn zero_cwnd_gives_zero() {
        assert_eq!(kist_limit(&tcp(0, 0, 1448), 0, 0, 1.0), 0);
        assert_eq!(kist_limit(&tcp(0, 7, 1448), 5000, 5000, 1.0), 0);
        assert_eq!(
            kist_limit_with_reason(&tcp(0, 0, 1448), 0, 0, 1.0).1,
            LimitReason::CongestionWindow
        );
    }

    #[test]
    fn unacked_above_cwnd_leaves_only_the_top_up() {
        // tcp_space clamps to 0 (not -5 * 1448); extra = 14_480 - 4000.
        let (limit, why) = kist_limit_with_reason(&tcp(10, 15, 1448), 4000, 0, 1.0);
        assert_eq!(limit, 10_480);
        assert_eq!(why, LimitReason::CongestionWindow);
    }

    #[test]
    fn notsent_above_cwnd_times_mss_eats_tcp_space() {
        // extra = 14_480 - 20_000 = -5520, tcp_space = 4 * 1448 = 5792: 272 left.
        assert_eq!(kist_limit(&tcp(10, 6, 1448), 20_000, 0, 1.0), 272);
        // A little more unsent and nothing is left; never negative.
        assert_eq!(kist_limit(&tcp(10, 6, 1448), 20_300, 0, 1.0), 0);
        assert_eq!(kist_limit(&tcp(10, 6, 1448), u32::MAX, u32::MAX, 1.0), 0);
    }

    #[test]
    fn factor_scales_the_top_up_only() {
        // tcp_space 14_480 + 2 * 14_480 target.
        assert_eq!(kist_limit(&tcp(10, 0, 1448), 0, 0, 2.0), 43_440);
        assert_eq!(kist_limit(&tcp(10, 0, 1448), 0, 0, 0.0), 14_480);
        assert_eq!(kist_limit(&tcp(10, 0, 1448), 0, 0, -3.0), 14_480);
        assert_eq!(kist_limit(&tcp(10, 0, 1448), 0, 0, f64::NAN), 14_480);
    }

    #[test]
    fn huge_values_saturate() {
        let max = tcp(u32::MAX, 0, u32::MAX);
        // (2^32-1)^2 * 2 < 2^65: above u64::MAX, so it saturates.
        assert_eq!(kist_limit(&max, 0, 0, 1.0), u64::MAX);
        assert_eq!(kist_limit(&max, 0, 0, f64::INFINITY), u64::MAX);
        assert_eq!(kist_limit(&max, 0, 0, f64::MAX), u64::MAX);
        // Huge mss with a small window is exact.
        assert_eq!(
            kist_limit(&tcp(2, 1, u32::MAX), 0, 0, 1.0),
            3 * u64::from(u32::MAX)
        );
        // Space plus target past u64::MAX (by 2^33 - 7), staged bytes bringing it back
        // below: exact, not saturated twice (space (2^32-1)^2, target 2^34 - 8 at factor
        // 2^-30, staged 2^33 - 2).
        assert_eq!(
            kist_limit(&max, u32::MAX, u32::MAX, 2f64.powi(-30)),
            u64::MAX - 4
        );
    }

    #[test]
    fn kistlite_high_water() {
        assert_eq!(kistlite_limit(0, 32 * 1024), 32_768);
        assert_eq!(kistlite_limit(30_000, 32 * 1024), 2768);
        assert_eq!(kistlite_limit(40_000, 32 * 1024), 0);
    }

    #[test]
    fn kernel_queue_time() {
        // 14_480 bytes per 40 ms: 28_960 unsent bytes wait 80 ms.
        assert_eq!(
            kernel_queue_time_us(&tcp(10, 0, 1448), 28_960),
            Some(80_000)
        );
        assert_eq!(kernel_queue_time_us(&tcp(0, 0, 1448), 100), None);
        let no_rtt = TcpInfo {
            rtt_us: 0,
            ..tcp(10, 0, 1448)
        };
        assert_eq!(kernel_queue_time_us(&no_rtt, 100), None);
        let slow = TcpInfo {
            rtt_us: u32::MAX,
            ..tcp(1, 0, 1)
        };
        assert_eq!(
            kernel_queue_time_us(&slow, u32::MAX),
            Some(u64::from(u32::MAX) * u64::from(u32::MAX))
        );
    }

    proptest! {
        #[test]
        fn limit_never_panics_and_matches_the_formula(
            cwnd: u32, unacked: u32, mss: u32, notsent: u32, outbuf: u32,
            factor in prop_oneof![0.0f64..16.0, Just(f64::NAN), Just(f64::INFINITY), any::<f64>()],
        ) {
            let t = TcpInfo { cwnd, unacked, mss, rtt_us: 1 };
            let limit = kist_limit(&t, notsent, outbuf, factor);
            // Reference in exact rational arithmetic for sane factors.
            if (0.0..16.0).contains(&factor) {
                let space = (i128::from(cwnd) - i128::from(unacked)).max(0) * i128::from(mss);
                let target = ((i128::from(cwnd) * i128::from(mss)) as f64 * factor) as i128;
                let want = (space + target - i128::from(notsent) - i128::from(outbuf))
                    .clamp(0, i128::from(u64::MAX));
                prop_assert_eq!(i128::from(limit), want);
            }
            // Staging more never raises the limit.
            prop_assert!(kist_limit(&t, notsent, outbuf.saturating_add(1), factor) <= limit);
            let _ = kernel_queue_time_us(&t, notsent);
        }
    }
}
