//! A shaped network of Linux network namespaces for experiments (`kistrel net --bottleneck`,
//! the KIST-vs-Vanilla bench).
//!
//! ```text
//!   host "client" 10.N.1.2 ─┐                      ┌─ 10.N.3.2 host "middle"
//!                           │ h1               h3  │   (tbf: RATE, LATENCY on the
//!   host "guard"  10.N.2.2 ─┤   router (ns)        │    router's egress toward it)
//!                           │ h2  ip_forward   h4  │
//!                           └── 10.N.K.1 ... ──────┴─ 10.N.4.2 host "exit"
//!                                   │ r0 10.N.0.1
//!   root namespace (this process) ──┘ kt<PID> 10.N.0.2, route 10.N.0.0/16 via 10.N.0.1
//! ```
//!
//! Every host gets its own namespace `kt<PID>-<host>` with loopback up, one veth `eth0` with
//! `10.N.i.2/24` (i = 1-based position in [`TestbedSpec::hosts`]) and a default route via the
//! router's `10.N.i.1`. The router namespace `kt<PID>-router` forwards between them. The
//! namespace of the creating process (the root namespace, normally) is joined to the router
//! too, as `10.N.0.2`, so programs on the host (curl, a traffic generator, an HTTP server)
//! reach every host and every host reaches them. N is the first free second octet from 77 up
//! (free: no route or address of the root namespace in 10.N.0.0/16); claiming the
//! 10.N.0.0/16 route is what makes two testbeds on one machine pick different N.
//!
//! A [`Bottleneck`] is a `tbf` qdisc on the router's egress toward one host: everything sent
//! *to* that host is limited to the rate, and a packet that would wait longer than `latency`
//! in the queue is dropped (tc-tbf(8): the queue limit is given as latency). There is no
//! `netem` on this machine (see docs/perf.md), so the testbed adds **no propagation delay**: RTTs
//! are sub-millisecond plus whatever queueing the bottleneck builds.
//!
//! Per-namespace TCP settings ([`TestbedSpec::congestion`], [`TestbedSpec::tcp_wmem`]) are
//! set in every host namespace (not in the root namespace). Setting a congestion control
//! puts it on the host's `tcp_allowed_congestion_control` for the testbed's lifetime (see
//! [`sysctl`]).
//!
//! Teardown ([`Testbed::teardown`], also run by `Drop`, so on errors and panics) deletes the
//! root-namespace veth, every namespace, and undoes the allowed-list change. Creating a
//! testbed first removes the leftovers of testbeds whose owner pid is dead.
//!
//! Everything runs `ip`, `tc` and `sysctl` as child processes; each failure is a
//! [`TestbedError`] naming the command and its stderr. Root is required
//! ([`TestbedError::NeedsRoot`]).
//!
//! ```no_run
//! use kistrel::testbed::{Bottleneck, Testbed, TestbedSpec};
//! use std::time::Duration;
//! # fn main() -> Result<(), kistrel::testbed::TestbedError> {
//! let spec = TestbedSpec {
//!     hosts: vec!["a".into(), "b".into()],
//!     bottleneck: Some(Bottleneck {
//!         toward: "b".into(),
//!         rate_bit_s: 10_000_000,
//!         latency: Duration::from_millis(40),
//!     }),
//!     congestion: Some("cubic".into()),
//!     tcp_wmem: None,
//! };
//! let tb = Testbed::create(&spec)?;
//! let b = tb.addr("b")?;
//! let mut server = tb.command("b", "python3")?; // runs `ip netns exec kt<PID>-b python3`
//! server.args(["-m", "http.server", "--bind", &b.to_string(), "8000"]);
//! println!("{:?}", tb.qdisc_stats()?);
//! tb.teardown()?;
//! # Ok(()) }
//! ```

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use error::TestbedError;

mod error;
pub mod exec;
pub mod stale;
pub mod sysctl;

/// First second octet tried for 10.N.0.0/16.
const FIRST_OCTET: u8 = 77;
/// Last second octet tried.
const LAST_OCTET: u8 = 126;
/// Hosts per testbed: 10.N.1 .. 10.N.250 (one /24 each).
pub const MAX_HOSTS: usize = 250;
/// Name of the router's host entry (reserved).
pub const ROUTER: &str = "router";
/// Name of each host's veth inside its namespace.
pub const HOST_IFACE: &str = "eth0";

/// Testbeds created by this process so far (names stay distinct within a process).
static SEQ: AtomicU32 = AtomicU32::new(0);

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestbedSpec {
    /// Host names, each becoming namespace `kt<PID>-<name>`: 1-32 of `[a-z0-9_]`, unique,
    /// not `router`. Host i (1-based) is `10.N.i.2`.
    pub hosts: Vec<String>,
    /// The shaped link, if any.
    pub bottleneck: Option<Bottleneck>,
    /// `net.ipv4.tcp_congestion_control` in every host namespace (e.g. `cubic`); `None` keeps
    /// the kernel's default for new namespaces (here: the host's, BBR).
    pub congestion: Option<String>,
    /// `net.ipv4.tcp_wmem` (min, default, max bytes) in every host namespace, e.g. 4 MiB x3
    /// for the KIST papers' large fixed buffers; `None` keeps Linux's autotuning defaults.
    pub tcp_wmem: Option<[u32; 3]>,
}

/// A `tbf` on the router's egress toward one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bottleneck {
    /// The host whose incoming traffic is shaped (for downloads exit -> middle: "middle").
    pub toward: String,
    /// Rate in bits per second.
    pub rate_bit_s: u64,
    /// Queue limit as the longest a packet may wait (tbf's `latency`); not a delay.
    pub latency: Duration,
}

impl Bottleneck {
    /// tbf's bucket size in bytes: 4 ms of the rate, at least 10 full frames (the kernel
    /// needs at least rate/HZ; larger GSO packets are split by tbf itself).
    pub fn burst_bytes(&self) -> u64 {
        (self.rate_bit_s / 8 / 250).max(10 * 1514)
    }

    /// The `tc qdisc add` arguments after `dev DEV root`.
    pub fn tbf_args(&self) -> Vec<String> {
        vec![
            "tbf".into(),
            "rate".into(),
            format!("{}bit", self.rate_bit_s),
            "burst".into(),
            self.burst_bytes().to_string(),
            "latency".into(),
            format!("{}us", self.latency.as_micros()),
        ]
    }
}

/// Counters of the bottleneck's qdisc (`tc -s qdisc show`, read as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QdiscStats {
    /// `tbf`.
    pub kind: String,
    /// Bytes sent through it since creation.
    pub bytes: u64,
    /// Packets sent.
    pub packets: u64,
    /// Packets dropped (queue over the latency limit).
    pub drops: u64,
    /// Times a packet had to wait for tokens.
    pub overlimits: u64,
    /// Requeues.
    pub requeues: u64,
    /// Bytes queued now.
    pub backlog_bytes: u64,
    /// Packets queued now.
    pub backlog_packets: u64,
}

impl QdiscStats {
    /// Read the root qdisc of `dev` in namespace `netns` (`tc -s -j -n NETNS qdisc show dev
    /// DEV`); for a testbed owned by another process, e.g. `kistrel net --bottleneck`'s (see
    /// `cmd::net::shaped::bottleneck_stats`).
    pub fn read(netns: &str, dev: &str) -> Result<QdiscStats, TestbedError> {
        let out = exec::run("tc", ["-s", "-j", "-n", netns, "qdisc", "show", "dev", dev])?;
        QdiscStats::from_tc_json(&out)
    }

    /// Parse the output of `tc -s -j qdisc show dev DEV`: the root qdisc's counters.
    pub fn from_tc_json(text: &str) -> Result<QdiscStats, TestbedError> {
        let bad = |problem: &str| TestbedError::TcOutput {
            problem: problem.to_owned(),
            output: text.chars().take(300).collect(),
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let list = v.as_array().ok_or_else(|| bad("not a list"))?;
        let root = list
            .iter()
            .find(|q| q.get("root").and_then(serde_json::Value::as_bool) == Some(true))
            .ok_or_else(|| bad("no root qdisc"))?;
        let num = |k: &str| {
            root.get(k)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| bad(&format!("no counter {k:?}")))
        };
        Ok(QdiscStats {
            kind: root
                .get("kind")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| bad("no kind"))?
                .to_owned(),
            bytes: num("bytes")?,
            packets: num("packets")?,
            drops: num("drops")?,
            overlimits: num("overlimits")?,
            requeues: num("requeues")?,
            backlog_bytes: num("backlog")?,
            backlog_packets: num("qlen")?,
        })
    }
}

fn valid_host_name(h: &str) -> bool {
    (1..=32).contains(&h.len())
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn valid_cc_name(c: &str) -> bool {
    (1..=15).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl TestbedSpec {
    /// Check names, counts and values before anything is created.
    pub fn validate(&self) -> Result<(), TestbedError> {
        let bad = |problem: String| Err(TestbedError::BadSpec { problem });
        if self.hosts.is_empty() || self.hosts.len() > MAX_HOSTS {
            return bad(format!(
                "{} hosts (1 to {MAX_HOSTS} allowed)",
                self.hosts.len()
            ));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if !valid_host_name(h) || h == ROUTER {
                return bad(format!(
                    "host name {h:?}: use 1-32 of a-z, 0-9, _ (and not {ROUTER:?})"
                ));
            }
            if self.hosts[..i].contains(h) {
                return bad(format!("host {h:?} is listed twice"));
            }
        }
        if let Some(b) = &self.bottleneck {
            if !self.hosts.contains(&b.toward) {
                return bad(format!("bottleneck toward {:?}: no such host", b.toward));
            }
            if b.rate_bit_s == 0 || b.latency.is_zero() {
                return bad("bottleneck rate and latency must be positive".into());
            }
        }
        if let Some(cc) = &self.congestion {
            if !valid_cc_name(cc) {
                return bad(format!("congestion control name {cc:?}"));
            }
        }
        if let Some([min, def, max]) = self.tcp_wmem {
            if min == 0 || min > def || def > max {
                return bad(format!(
                    "tcp_wmem {min} {def} {max}: need 0 < min <= default <= max"
                ));
            }
        }
        Ok(())
    }
}

/// A live testbed; dropping it tears it down.
#[derive(Debug)]
pub struct Testbed {
    /// `kt<PID>-` or `kt<PID>s<SEQ>-`.
    prefix: String,
    hosts: Vec<String>,
    /// N of 10.N.0.0/16.
    octet: u8,
    /// The root-namespace end of the router link, once created.
    root_link: Option<String>,
    /// Namespaces created, in order (router first).
    namespaces: Vec<String>,
    bottleneck: Option<Bottleneck>,
    /// The algorithm we put on the host's allowed list.
    cc_added: Option<String>,
    torn_down: bool,
}

impl Testbed {
    /// Check root and tools, remove stale testbeds, then build `spec`. On any failure what
    /// was built is torn down again.
    pub fn create(spec: &TestbedSpec) -> Result<Testbed, TestbedError> {
        exec::check_privileges_and_tools()?;
        spec.validate()?;
        stale::remove_stale()?;
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let prefix = if seq == 0 {
            format!("kt{pid}-")
        } else {
            format!("kt{pid}s{seq}-")
        };
        let mut tb = Testbed {
            prefix,
            hosts: spec.hosts.clone(),
            octet: 0,
            root_link: None,
            namespaces: Vec::new(),
            bottleneck: spec.bottleneck.clone(),
            cc_added: None,
            torn_down: false,
        };
        tb.build(spec)?; // on error, `tb` is dropped here: teardown
        Ok(tb)
    }

    fn build(&mut self, spec: &TestbedSpec) -> Result<(), TestbedError> {
        let router = self.ns_name(ROUTER);
        self.add_namespace(&router)?;
        sysctl::set_in(&router, "net.ipv4.ip_forward", "1")?;
        self.join_root()?;
        let n = self.octet;
        for (i, host) in spec.hosts.iter().enumerate() {
            let ns = self.ns_name(host);
            self.add_namespace(&ns)?;
            let k = i + 1;
            let dev = format!("h{k}");
            exec::run(
                "ip",
                [
                    "-n", &router, "link", "add", &dev, "type", "veth", "peer", "name", HOST_IFACE,
                    "netns", &ns,
                ],
            )?;
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("10.{n}.{k}.1/24"),
                "dev",
                &dev,
            ])?;
            ip(&["-n", &router, "link", "set", &dev, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.{n}.{k}.2/24"),
                "dev",
                HOST_IFACE,
            ])?;
            ip(&["-n", &ns, "link", "set", HOST_IFACE, "up"])?;
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &format!("10.{n}.{k}.1"),
            ])?;
        }
        if let Some(cc) = &spec.congestion {
            if sysctl::allow(cc, &self.prefix)? {
                self.cc_added = Some(cc.clone());
            }
            for host in &spec.hosts {
                sysctl::set_in(&self.ns_name(host), "net.ipv4.tcp_congestion_control", cc)?;
            }
        }
        if let Some([min, def, max]) = spec.tcp_wmem {
            for host in &spec.hosts {
                let v = format!("{min} {def} {max}");
                sysctl::set_in(&self.ns_name(host), "net.ipv4.tcp_wmem", &v)?;
            }
        }
        if let Some(b) = &spec.bottleneck {
            let dev = self.router_dev(&b.toward)?;
            let mut args = vec!["-n".to_owned(), router, "qdisc".into(), "add".into()];
            args.extend(["dev".into(), dev, "root".into()]);
            args.extend(b.tbf_args());
            exec::run("tc", &args)?;
        }
        tracing::info!(prefix = %self.prefix, range = %format!("10.{n}.0.0/16"), "testbed up");
        Ok(())
    }

    fn add_namespace(&mut self, ns: &str) -> Result<(), TestbedError> {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        ip(&["-n", ns, "link", "set", "lo", "up"])
    }

    /// Link our own namespace to the router on the first free 10.N.0.0/16.
    fn join_root(&mut self) -> Result<(), TestbedError> {
        let router = self.ns_name(ROUTER);
        let link = self.prefix.trim_end_matches('-').to_owned();
        // Leading newline: a range at the very start of the output is found too.
        let used = "\n".to_owned()
            + &exec::run("ip", ["-4", "route", "show", "table", "all"])?
            + &exec::run("ip", ["-4", "addr", "show"])?;
        let our_pid = std::process::id().to_string();
        for n in FIRST_OCTET..=LAST_OCTET {
            if used.contains(&format!(" 10.{n}.")) || used.contains(&format!("\n10.{n}.")) {
                continue;
            }
            let r0 = [
                "-n", &router, "link", "add", "r0", "type", "veth", "peer", "name",
            ];
            ip(&[&r0[..], &[&link, "netns", &our_pid]].concat())?;
            self.root_link = Some(link.clone());
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("10.{n}.0.1/24"),
                "dev",
                "r0",
            ])?;
            ip(&["-n", &router, "link", "set", "r0", "up"])?;
            ip(&["addr", "add", &format!("10.{n}.0.2/24"), "dev", &link])?;
            ip(&["link", "set", &link, "up"])?;
            let range = format!("10.{n}.0.0/16");
            match ip(&[
                "route",
                "add",
                &range,
                "via",
                &format!("10.{n}.0.1"),
                "dev",
                &link,
            ]) {
                Ok(()) => {
                    self.octet = n;
                    return Ok(());
                }
                // Another testbed claimed this range between our look and our claim.
                Err(TestbedError::Command { stderr, .. }) if stderr.contains("File exists") => {
                    ip(&["link", "delete", &link])?;
                    self.root_link = None;
                }
                Err(e) => return Err(e),
            }
        }
        Err(TestbedError::NoFreeRange {
            first: FIRST_OCTET,
            last: LAST_OCTET,
        })
    }

    fn ns_name(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    fn index(&self, host: &str) -> Result<usize, TestbedError> {
        self.hosts
            .iter()
            .position(|h| h == host)
            .map(|i| i + 1)
            .ok_or_else(|| TestbedError::UnknownHost {
                host: host.to_owned(),
            })
    }

    /// The router's veth toward `host` (`h<i>`, i its 1-based position in the spec): where
    /// a bottleneck toward it sits.
    pub fn router_dev(&self, host: &str) -> Result<String, TestbedError> {
        Ok(format!("h{}", self.index(host)?))
    }

    /// The router's namespace (`kt<PID>-router`).
    pub fn router_netns(&self) -> String {
        self.ns_name(ROUTER)
    }

    /// The namespace prefix, `kt<PID>-` (or `kt<PID>s<SEQ>-` for a process's later testbeds).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Host names in spec order.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The namespace of `host` (`kt<PID>-<host>`), for `ip netns exec` by hand.
    pub fn netns(&self, host: &str) -> Result<String, TestbedError> {
        self.index(host)?;
        Ok(self.ns_name(host))
    }

    /// `host`'s address, `10.N.i.2`.
    pub fn addr(&self, host: &str) -> Result<Ipv4Addr, TestbedError> {
        let i = self.index(host)?;
        let i = u8::try_from(i).map_err(|_| TestbedError::UnknownHost {
            host: host.to_owned(),
        })?;
        Ok(Ipv4Addr::new(10, self.octet, i, 2))
    }

    /// Our own (root) namespace's address on the testbed, `10.N.0.2`: bind servers here (or
    /// on 0.0.0.0) for hosts to reach them.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 2)
    }

    /// The testbed's whole range `(10.N.0.0, 16)`, e.g. for an exit policy.
    pub fn range(&self) -> (Ipv4Addr, u8) {
        (Ipv4Addr::new(10, self.octet, 0, 0), 16)
    }

    /// A command that runs `program` inside `host`'s namespace (`ip netns exec NS program`;
    /// `ip` execs the program, so the child's pid is the program's and signals reach it).
    pub fn command(
        &self,
        host: &str,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> Result<Command, TestbedError> {
        let ns = self.netns(host)?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec"]).arg(ns).arg(program);
        Ok(c)
    }

    /// A sysctl as read inside `host`'s namespace (whitespace normalised to single spaces).
    pub fn sysctl(&self, host: &str, key: &str) -> Result<String, TestbedError> {
        sysctl::get_in(&self.netns(host)?, key)
    }

    /// The bottleneck qdisc's counters.
    pub fn qdisc_stats(&self) -> Result<QdiscStats, TestbedError> {
        let b = self.bottleneck.as_ref().ok_or(TestbedError::NoBottleneck)?;
        let dev = self.router_dev(&b.toward)?;
        QdiscStats::read(&self.ns_name(ROUTER), &dev)
    }

    /// Delete the root link and every namespace, undo the allowed-list change. Every step is
    /// tried; the first error is returned.
    pub fn teardown(mut self) -> Result<(), TestbedError> {
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<(), TestbedError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut first: Option<TestbedError> = None;
        let mut note = |r: Result<(), TestbedError>| {
            if let Err(e) = r {
                tracing::warn!("testbed teardown: {e}");
                first.get_or_insert(e);
            }
        };
        // Deleting the link ourselves: namespace deletion frees veths asynchronously, and the
        // 10.N route should be gone when we return.
        if let Some(link) = self.root_link.take() {
            note(ip(&["link", "delete", &link]));
        }
        for ns in self.namespaces.drain(..).rev() {
            note(ip(&["netns", "delete", &ns]));
        }
        if let Some(cc) = self.cc_added.take() {
            note(sysctl::disallow(&cc, &self.prefix));
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Err(e) = self.teardown_inner() {
            eprintln!("kistrel: testbed {}: teardown failed: {e}", self.prefix);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), TestbedError> {
    exec::run("ip", args).map(drop)
}

#[cfg(test)]
mod tests;
