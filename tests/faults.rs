//! Fault injection over real sockets (issue 9, part 3), on both runtime backends:
//! `kistrel net --relays 5 --keep-going`, then kill -9 of the guard, a middle, or the exit of
//! running circuits (found with `ss`), a peer that resets its connection mid-cell, an exit
//! target that closes early or resets, and a relay restarted with its own config.
//!
//! What every scenario asserts: no application ever receives a corrupted byte (whatever
//! arrived is a prefix of what was sent), only the affected transfers fail, and the network
//! serves fetches again afterwards. Every wait is bounded; every process is stopped.
//!
//! Which transfers a kill affects is read from the client's log: transfers are started one
//! after the other, each waiting for its first bytes; the first uses no credentials (the
//! client's pre-built circuit, isolation tag 0) and transfer K the SOCKS username `tK`,
//! which owns tag K. So every circuit of the client carries a transfer, and after the kill
//! the client logs `circuit closed ... tag=N` for exactly the circuits that went through
//! the dead relay.
#![cfg(target_os = "linux")]

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::time::Duration;

use sha2::Digest;
use support::{
    alive, connected_to, fd_count, fetch, fetch_prefix, kill9, pid_listening_on,
    read_to_end_or_error, relays_connected_to, seeded_data, serial, skip_without_tools,
    socks_connect, strip_ansi, wait_for, Http, Net, RelayProcess, MIB,
};

/// The three roles a relay plays in a circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Guard,
    Middle,
    Exit,
}

/// One curl transfer running in a thread.
struct Transfer {
    user: String,
    handle: std::thread::JoinHandle<(bool, Vec<u8>)>,
}

/// Starts `n` rate-limited transfers of `url`, one after the other: each has received
/// bytes before the next starts. Transfer 0 has no credentials (tag 0), transfer K is user
/// `tK` (tag K).
fn start_transfers(net: &Net, url: &str, n: usize, rate: &str) -> Vec<Transfer> {
    (0..n)
        .map(|i| {
            let user = if i == 0 {
                String::new()
            } else {
                format!("t{i}")
            };
            let out = net.dir.join(format!("transfer{i}"));
            let (socks, url, u, o, rate) = (
                net.socks,
                url.to_owned(),
                user.clone(),
                out.clone(),
                rate.to_owned(),
            );
            let handle =
                std::thread::spawn(move || fetch_prefix(socks, &u, &url, &o, Some(rate.as_str())));
            assert!(
                wait_for(Duration::from_secs(30), || std::fs::metadata(&out)
                    .is_ok_and(|m| m.len() > 0)),
                "transfer {i} never started; logs in {}",
                net.dir.display()
            );
            Transfer { user, handle }
        })
        .collect()
}

/// Isolation tags the client logged `circuit closed` for in `log` text.
fn closed_tags(log: &str) -> BTreeSet<u64> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains("circuit closed"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("tag="))?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn closed_tags_reads_the_coloured_client_log() {
    let log = "\x1b[2m2026-11-23T12:08:53Z\x1b[0m \x1b[32m INFO\x1b[0m origin: circuit closed \
               \x1b[3mworker\x1b[0m\x1b[2m=\x1b[0m0 \x1b[3mtag\x1b[0m\x1b[2m=\x1b[0m12 why=Closed\n\
               x: circuit built worker=0 tag=3 build_ms=4\n\
               x: circuit closed worker=0 tag=4 why=ChannelFailed\n";
    assert_eq!(closed_tags(log), BTreeSet::from([12, 4]));
}

fn client_log(net: &Net) -> String {
    std::fs::read_to_string(net.dir.join("client.log")).unwrap_or_default()
}

/// The relay playing `role` for the running circuits: the guard is the relay the client
/// process is connected to; a middle is a non-exit relay connected to the exit.
fn find_role(net: &Net, role: Role) -> SocketAddr {
    let exit = *net.relays.last().expect("exit");
    if role == Role::Exit {
        return exit;
    }
    let client = pid_listening_on(net.socks).expect("client pid");
    let non_exits = &net.relays[..net.relays.len() - 1];
    let mut found = None;
    assert!(
        wait_for(Duration::from_secs(20), || {
            found = match role {
                Role::Guard => non_exits
                    .iter()
                    .copied()
                    .find(|r| connected_to(client, r.port())),
                _ => relays_connected_to(non_exits, exit).first().copied(),
            };
            found.is_some()
        }),
        "no {role:?} found with ss"
    );
    found.expect("found")
}

/// Fetches with fresh usernames until one arrives intact (a build through a dead relay that
/// the directory still lists may fail first: a few attempts are allowed).
fn fetch_again(net: &Net, http: &Http, size: usize, label: &str) {
    for attempt in 0..8 {
        let out = net.dir.join(format!("{label}{attempt}"));
        if let Some((sha, len)) = fetch(net.socks, &format!("{label}{attempt}"), &http.url(), &out)
        {
            assert_eq!((sha, len), (http.sha, size), "{label}: intact");
            return;
        }
    }
    panic!(
        "{label}: no fetch succeeded after the fault; logs in {}",
        net.dir.display()
    );
}

/// kill -9 of the relay playing `role` while six transfers run.
fn kill_during_parallel_transfers(backend: &str, role: Role) {
    let _serial = serial();
    if skip_without_tools() {
        return;
    }
    let size = 24 * MIB;
    let http = Http::start(size, 31);
    let data = seeded_data(size, 31);
    let net = Net::start(backend, 5, &["--keep-going"]);
    let transfers = start_transfers(&net, &http.url(), 6, "2M");
    let victim = find_role(&net, role);
    let pid = pid_listening_on(victim).expect("victim pid");
    let log_before = client_log(&net).len();
    kill9(pid);
    let mut affected = 0;
    let mut closed = BTreeSet::new();
    let results: Vec<(String, bool, Vec<u8>)> = transfers
        .into_iter()
        .map(|t| {
            let (ok, got) = t.handle.join().expect("transfer thread");
            (t.user, ok, got)
        })
        .collect();
    // Bounded: the client logs the closes before the transfers end; give the log a moment.
    let _ = wait_for(Duration::from_secs(5), || {
        closed = closed_tags(client_log(&net).get(log_before..).unwrap_or_default());
        !closed.is_empty()
    });
    for (i, (user, ok, got)) in results.iter().enumerate() {
        assert!(
            got[..] == data[..got.len()],
            "{user}: a corrupted byte reached the application ({} bytes)",
            got.len()
        );
        let tag = i as u64;
        if closed.contains(&tag) {
            affected += 1;
            assert!(!ok, "{user}: its circuit died, yet curl reported success");
            assert!(got.len() < size, "{user}: complete through a dead relay");
        } else {
            assert!(ok, "{user}: unaffected transfer failed");
            assert_eq!(got.len(), size, "{user}: unaffected transfer short");
        }
    }
    assert!(
        affected >= 1,
        "the kill affected no transfer: closed {closed:?}"
    );
    if role != Role::Middle {
        // Every circuit has this one guard (one primary guard in use) and this one exit.
        assert_eq!(affected, results.len(), "closed {closed:?}");
    }
    println!(
        "{backend} {role:?} killed: {affected} of {} transfers affected",
        results.len()
    );
    if role == Role::Exit {
        // The only exit is dead: restart it with its own config, keys and port.
        let config = net.dir.join(format!("relay{}.toml", net.relays.len()));
        let _restarted = RelayProcess::start(&config, &net.dir.join("exit-restarted.log"), &[]);
        assert!(
            wait_for(Duration::from_secs(20), || pid_listening_on(victim)
                .is_some()),
            "restarted exit does not listen"
        );
        fetch_again(&net, &http, size, "after-restart");
        let _ = net.stop();
    } else {
        fetch_again(&net, &http, size, "after-kill");
        let _ = net.stop();
    }
}

fn killing_the_guard_fails_only_its_transfers(backend: &str) {
    kill_during_parallel_transfers(backend, Role::Guard);
}

fn killing_a_middle_fails_only_its_transfers(backend: &str) {
    kill_during_parallel_transfers(backend, Role::Middle);
}

fn killing_the_exit_then_restarting_it_serves_again(backend: &str) {
    kill_during_parallel_transfers(backend, Role::Exit);
}

/// The link handshake of a raw initiator: VERSIONS (4, 5) and an empty NETINFO.
fn hello() -> Vec<u8> {
    kistrel_engine::harness::initiator_hello()
}

/// Connects to an OR port and completes the link handshake as a client (reads the relay's
/// VERSIONS, CERTS, AUTH_CHALLENGE and NETINFO).
fn handshake_with(addr: SocketAddr) -> bool {
    use kistrel_engine::wire::{CellDecoder, ChanCmd};
    let Ok(mut s) = support::tls::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if s.write_all(&hello()).is_err() {
        return false;
    }
    let mut decoder = CellDecoder::new();
    let mut cmds = Vec::new();
    let mut buf = [0u8; 4096];
    while cmds.last() != Some(&ChanCmd::NETINFO) {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let Ok((used, cell)) = decoder.decode(rest) else {
                return false;
            };
            rest = &rest[used..];
            cmds.extend(cell.map(|c| c.cmd()));
        }
    }
    cmds == [
        ChanCmd::VERSIONS,
        ChanCmd::CERTS,
        ChanCmd::AUTH_CHALLENGE,
        ChanCmd::NETINFO,
    ]
}

fn peer_reset_mid_cell_closes_that_channel_only(backend: &str) {
    let _serial = serial();
    if skip_without_tools() {
        return;
    }
    let size = 32 * MIB;
    let http = Http::start(size, 32);
    let net = Net::start(backend, 5, &["--keep-going"]);
    let mut transfers = start_transfers(&net, &http.url(), 1, "8M");
    let exit = *net.relays.last().expect("exit");
    let pid = pid_listening_on(exit).expect("exit pid");
    let fds_before = fd_count(pid);
    let mut s = support::tls::connect(exit).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(&hello()).expect("hello");
    // Wait for the relay's VERSIONS/NETINFO but leave it unread: closing a socket with
    // unread input makes Linux send RST instead of FIN (as SO_LINGER 0 would).
    let mut peek = [0u8; 16];
    assert!(s.peek(&mut peek).expect("relay answers") > 0);
    assert!(wait_for(Duration::from_secs(5), || fd_count(pid) > fds_before));
    // Half a CREATE2 cell, then the reset.
    let mut cell = vec![0u8; 514];
    cell[..4].copy_from_slice(&0x8000_0001u32.to_be_bytes());
    cell[4] = 10;
    s.write_all(&cell[..257]).expect("half a cell");
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    // The relay dropped that channel (its fd count is back), stays up and answers anew.
    assert!(
        wait_for(Duration::from_secs(10), || fd_count(pid) <= fds_before),
        "the reset channel's socket stays open: {} fds, {fds_before} before",
        fd_count(pid)
    );
    assert!(alive(pid), "the relay died");
    assert!(
        handshake_with(exit),
        "the relay no longer completes a handshake"
    );
    let t = transfers.pop().expect("one transfer");
    let (ok, got) = t.handle.join().expect("thread");
    assert!(ok, "{}: the concurrent transfer failed", t.user);
    assert_eq!(got.len(), size);
    assert_eq!(
        <[u8; 32]>::from(sha2::Sha256::digest(&got)),
        http.sha,
        "intact"
    );
    assert!(net.stop().success());
}

/// What the test's target server does with a connection, chosen by its first byte.
const FIN_EARLY: u8 = b'F';
const RESET: u8 = b'R';
/// Bytes the target sends before closing or resetting.
const TARGET_BYTES: usize = 300_000;

/// A target that, per connection, sends `TARGET_BYTES` seeded bytes and then either closes
/// cleanly (FIN) long before the client is done, or resets the connection (RST).
fn start_target() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let data = seeded_data(TARGET_BYTES, 77);
        for conn in listener.incoming().take(2) {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
            let mut mode = [0u8; 1];
            if c.read_exact(&mut mode).is_err() {
                continue;
            }
            let _ = c.write_all(&data);
            match mode[0] {
                FIN_EARLY => {
                    let _ = c.shutdown(Shutdown::Write);
                    // Drain what the client still sends, so the close stays a clean FIN.
                    let mut sink = [0u8; 4096];
                    while matches!(c.read(&mut sink), Ok(n) if n > 0) {}
                }
                _ => {
                    // Give the bytes time to leave, make sure the client's extra bytes sit
                    // unread, and close: Linux answers with RST.
                    std::thread::sleep(Duration::from_millis(300));
                    let mut peek = [0u8; 1];
                    let _ = c.peek(&mut peek);
                    drop(c);
                }
            }
        }
    });
    (addr, handle)
}

fn exit_target_closing_early_or_resetting_leaves_an_intact_prefix(backend: &str) {
    let _serial = serial();
    if skip_without_tools() {
        return;
    }
    let size = 16 * MIB;
    let http = Http::start(size, 33);
    let net = Net::start(backend, 5, &["--keep-going"]);
    let (target, server) = start_target();
    let data = seeded_data(TARGET_BYTES, 77);
    // Another stream on the same circuit (same isolation) runs through both faults.
    let mut other = start_transfers(&net, &http.url(), 1, "4M");
    for (mode, name) in [(FIN_EARLY, "closed early"), (RESET, "reset")] {
        let mut s = socks_connect(net.socks, "", target).expect("SOCKS connect");
        s.write_all(&[mode, 1, 2, 3, 4, 5, 6, 7]).expect("request");
        let (got, err) = read_to_end_or_error(&mut s);
        assert!(
            got[..] == data[..got.len().min(TARGET_BYTES)] && got.len() <= TARGET_BYTES,
            "{name}: {} bytes arrived, not a prefix of what the target sent",
            got.len()
        );
        if mode == FIN_EARLY {
            // Everything the target sent before its FIN arrives, then a clean end.
            assert_eq!(got.len(), TARGET_BYTES, "{name}");
            assert_eq!(err, None, "{name}: ends with EOF");
        }
        println!(
            "{backend}: target {name}: {} bytes, then {err:?}",
            got.len()
        );
    }
    server.join().expect("target thread");
    let t = other.pop().expect("transfer");
    let (ok, got) = t.handle.join().expect("thread");
    assert!(ok, "the other stream failed");
    assert_eq!(
        (got.len(), <[u8; 32]>::from(sha2::Sha256::digest(&got))),
        (size, http.sha)
    );
    assert!(net.stop().success());
}

on_both_backends!(
    killing_the_guard_fails_only_its_transfers,
    killing_a_middle_fails_only_its_transfers,
    killing_the_exit_then_restarting_it_serves_again,
    peer_reset_mid_cell_closes_that_channel_only,
    exit_target_closing_early_or_resetting_leaves_an_intact_prefix,
);
