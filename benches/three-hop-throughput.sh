#!/usr/bin/env bash
# Issue #17's throughput measurement, reproducible: 8 x 64 MiB downloads through `kistrel net`
# (3 relays + client on this machine, plain links unless LINKS=tls), curl writing to files,
# SHA-256 of every file checked after the transfer. Backends alternate per round (io_uring,
# poll, io_uring, ...), so each round gives one paired ratio.
#
#   bash benches/three-hop-throughput.sh EXE [ROUNDS]        (EXE: a release `kistrel`)
#
# Both backends run the same scheduler (KIST by default: the poll backend reads TCP_INFO on
# Linux since session 12; before, its runs fell back to KISTLite, benches/BASELINE.md).
# NET_ARGS adds options to `kistrel net` (e.g. NET_ARGS="--scheduler vanilla").
# PERF_DIR=DIR samples the whole machine during each transfer (`perf record -e cpu-clock -a
# -g`, a software clock: this VM has no hardware counters) into DIR/BACKEND-ROUND.data; read
# them with `perf report -i FILE --sort comm,dso` or `--sort sym`. PERF_CALLS="--call-graph
# dwarf" gives call chains through kistrel's own code (built without frame pointers; -g is
# the default; PERF_CALLS=" " samples without chains). PERF_EVENT (default cpu-clock; e.g.
# cpu-clock:u for user space only) and PERF_HZ (default 499) set the sampling. The sampling
# costs CPU, so
# throughput figures from such runs are not comparable with runs without it.
#
# Prints one line per run (MiB/s; CPU-s per GiB of each node, user time in brackets, and the
# busiest worker's share of the node's worker CPU; the machine's idle share during the
# transfer) and a summary: median [min, max] MiB/s per backend, the io_uring/poll ratio per
# round, and each node's CPU-s/GiB as median [min, max] per backend.
#
# CRYPTO=1 (the default) also runs `engine/examples/crypto_per_node.rs` (built from this
# checkout) before the first round and after the last: each node's tor1 crypto per GiB
# alone in memory, on this host at this hour. The summary then gives each node's rest: its
# median CPU-s/GiB minus the mean of the two crypto measurements, that is the kernel, the
# runtime and kistrel's per-cell logic. The guests this is measured on change speed by a
# quarter within a session, and SHA-1 is most of the exit's and the client's CPU: the rest
# is the part that code in the relay can change. CRYPTO=0 skips it.
#
# The HTTP server is python's ThreadingHTTPServer with a listen backlog of 128: `python3 -m
# http.server` listens with a backlog of 5, and 8 simultaneous connects then overflow it now
# and then (TcpExtListenOverflows): one download waits for a SYN retransmit (1 s) and the
# run loses ~20%. Runs measured before this script (sessions 4-6) carry that stall in some
# runs.
set -euo pipefail
EXE=${1:?usage: three-hop-throughput.sh EXE [ROUNDS]}
ROUNDS=${2:-3}
LINKS=${LINKS:-plain}
SIZE_MIB=64
N=8
HZ=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/kistrel-3hop.XXXXXX)
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
head -c $((SIZE_MIB << 20)) /dev/urandom >"$work/blob"
want=$(sha256sum <"$work/blob" | cut -d' ' -f1)
port=$((20000 + RANDOM % 20000))
python3 - "$work" "$port" >/dev/null 2>&1 <<'EOF' &
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
Server(("127.0.0.1", int(sys.argv[2])), functools.partial(Quiet, directory=sys.argv[1])).serve_forever()
EOF
# Each node's crypto alone: its "CPU-s/GiB: relay3=... client=..." line.
crypto_alone() {
    [ "${CRYPTO:-1}" = 0 ] && return 0
    local repo
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    # A failure here costs only the reference, never the measurement.
    if ! (cd "$repo" && cargo build --release -q -p kistrel-engine --example crypto_per_node); then
        echo "crypto alone skipped: crypto_per_node did not build" >&2
        return 0
    fi
    "$repo/target/release/examples/crypto_per_node" | grep 'CPU-s/GiB' || true
}
crypto_before=$(crypto_alone)
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/blob" --max-filesize 1 -r 0-0 && break; sleep 0.1; done

# CPU ticks of each worker thread of process $1: "kistrel-w0=123 kistrel-w1=45".
worker_ticks() {
    local t
    for t in /proc/"$1"/task/*; do
        awk '{c = $2; gsub(/[()]/, "", c); if (c ~ /^kistrel-w/) printf "%s=%d ", c, $14 + $15}' "$t/stat" 2>/dev/null
    done
}

# "[w 97%]": the busiest worker's share of a process's worker CPU between two worker_ticks
# readings, where the process has more than one worker (SO_REUSEPORT hashes each accepted
# connection to a worker, so with 2 workers two channels share one half of the time).
busiest_share() {
    python3 - "$1" "$2" <<'PY'
import sys
parse = lambda s: dict(kv.split("=") for kv in s.split())
a, b = parse(sys.argv[1]), parse(sys.argv[2])
d = [int(b[k]) - int(a.get(k, 0)) for k in b]
if len(d) > 1 and sum(d) > 0:
    print(f"[w {100 * max(d) / sum(d):.0f}%]", end="")
PY
}

# One run: prints "MiB/s node=cpu(user)[w busiest worker's share] ... idle=x".
run() {
    local backend=$1 dir="$work/net-$1-$2"
    # shellcheck disable=SC2086 # NET_ARGS is a list of options
    "$EXE" net --relays 3 --links "$LINKS" --backend "$backend" --dir "$dir" ${NET_ARGS:-} >"$dir.ready" 2>"$dir.err" &
    local net=$!
    for _ in $(seq 1 240); do grep -q socks= "$dir.ready" 2>/dev/null && break; sleep 0.25; done
    local socks
    socks=$(grep -o 'socks=[0-9.:]*' "$dir.ready" | head -1 | cut -d= -f2)
    [ -n "$socks" ] || { echo "kistrel net did not start: $(tail -3 "$dir.err")" >&2; exit 1; }
    local pids p
    pids=$(pgrep -f -- "$dir/" | tr '\n' ' ')
    declare -A t0 u0 w0
    for p in $pids; do
        t0[$p]=$(awk '{print $14+$15}' "/proc/$p/stat")
        u0[$p]=$(awk '{print $14}' "/proc/$p/stat")
        w0[$p]=$(worker_ticks "$p")
    done
    local i0 i1 s0 s1
    i0=$(awk '/^cpu /{print $5+$6}' /proc/stat)
    s0=$(date +%s.%N)
    local perf_pid=""
    if [ -n "${PERF_DIR:-}" ]; then
        perf record -q -e ${PERF_EVENT:-cpu-clock} -F ${PERF_HZ:-499} -a ${PERF_CALLS:--g} -o "$PERF_DIR/$backend-$2.data" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    local curls=()
    for i in $(seq 1 $N); do
        curl -s --socks5-hostname "$socks" -o "$work/out$i" "http://127.0.0.1:$port/blob" &
        curls+=($!)
    done
    wait "${curls[@]}"
    s1=$(date +%s.%N)
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
    i1=$(awk '/^cpu /{print $5+$6}' /proc/stat)
    for i in $(seq 1 $N); do
        [ "$(sha256sum <"$work/out$i" | cut -d' ' -f1)" = "$want" ] || { echo "download $i corrupt" >&2; exit 1; }
    done
    local gib line name
    gib=$(python3 -c "print($N * $SIZE_MIB / 1024)")
    line=$(python3 -c "print(f'{$N * $SIZE_MIB / ($s1 - $s0):.1f}')")
    for p in $pids; do
        [ -r "/proc/$p/stat" ] || continue
        name=$(tr '\0' ' ' <"/proc/$p/cmdline" | grep -o -- '-c [^ ]*' | sed 's#.*/##; s#\.toml##') || continue
        line="$line $name=$(python3 -c "
t = ($(awk '{print $14+$15}' "/proc/$p/stat") - ${t0[$p]}) / $HZ / $gib
u = ($(awk '{print $14}' "/proc/$p/stat") - ${u0[$p]}) / $HZ / $gib
print(f'{t:.2f}({u:.2f})')")$(busiest_share "${w0[$p]}" "$(worker_ticks "$p")")"
    done
    line="$line idle=$(python3 -c "print(f'{($i1 - $i0) / $HZ / $(nproc) / ($s1 - $s0):.2f}')")"
    kill "$net" 2>/dev/null || true
    wait "$net" 2>/dev/null || true
    rm -f "$work"/out*
    echo "$line"
}

declare -a U P
for r in $(seq 1 "$ROUNDS"); do
    u=$(run uring "$r"); echo "round $r uring $u"; U+=("$u")
    p=$(run poll "$r"); echo "round $r poll  $p"; P+=("$p")
done
crypto_after=$(crypto_alone)
# Runs travel as lines "MiB/s node=cpu(user)[w ..] ... idle=x", one per run.
python3 - "$(printf '%s\n' "${U[@]}")" "$(printf '%s\n' "${P[@]}")" "$crypto_before" "$crypto_after" <<'EOF'
import re, statistics, sys
runs = [[l.split() for l in arg.splitlines() if l.strip()] for arg in sys.argv[1:3]]
crypto = [dict(re.findall(r"([\w-]+)=([\d.]+)", arg.split(":", 1)[-1])) for arg in sys.argv[3:5]]
# The reference for the rest: the mean of the measurements before and after the rounds.
alone = {n: (float(crypto[0].get(n, v)) + float(v)) / 2 for n, v in crypto[1].items()}
u, p = ([float(r[0]) for r in rs] for rs in runs)
fmt = lambda xs: f"{statistics.median(xs):.1f} [{min(xs):.1f}, {max(xs):.1f}]"
print(f"io_uring MiB/s {fmt(u)}; poll {fmt(p)}; n={len(u)} rounds")
print("io_uring/poll per round: " + ", ".join(f"{a / b:.2f}" for a, b in zip(u, p)))
# Each node's CPU-s/GiB, median [min, max] over the runs of a backend.
for label, rs in zip(("io_uring", "poll"), runs):
    cpu = {}
    for r in rs:
        for tok in r[1:]:
            m = re.match(r"([\w-]+)=([\d.]+)\(", tok)
            if m:
                cpu.setdefault(m[1], []).append(float(m[2]))
    nodes = ", ".join(
        f"{n} {statistics.median(v):.2f} [{min(v):.2f}, {max(v):.2f}]" for n, v in cpu.items()
    )
    print(f"{label} CPU-s/GiB: {nodes}")
    if alone:
        rest = ", ".join(
            f"{n} {statistics.median(v) - alone[n]:.2f}" for n, v in cpu.items() if n in alone
        )
        print(f"{label} rest (median minus crypto alone): {rest}")
if crypto[1]:
    both = ", ".join(
        f"{n} {float(crypto[0].get(n, 'nan')):.2f} -> {float(v):.2f}" for n, v in crypto[1].items()
    )
    print(f"crypto alone CPU-s/GiB (before -> after the rounds): {both}")
EOF
