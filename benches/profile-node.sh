#!/usr/bin/env bash
# One node of issue #17's 3-hop network profiled alone, with DWARF call chains:
#
#   bash benches/profile-node.sh EXE NODE [OUT]     (NODE: relay1|relay2|relay3|client)
#
# starts `kistrel net --relays 3 --path relay1,relay2,relay3` (LINKS=plain|tls, default
# plain; BACKEND=uring|poll, default uring), 8 downloads of 64 MiB through it, and samples
# NODE's process only for SECONDS_SAMPLED (default 0.8) seconds after the downloads began: `perf record -e
# cpu-clock -F 1999 --call-graph dwarf,16384 -p PID`. Writes OUT (default
# /tmp/kistrel-NODE.perf.data) and prints the shares by object and the top symbols; read
# call chains with `perf report -i OUT --no-children -S SYMBOL -g caller`, and the shares of
# user space, kernel work, backend mechanism, switches and faults with
# `python3 benches/cpu-classes.py OUT [MORE_OUT...]`.
#
# Why one process, not `perf record -a` (three-hop-throughput.sh's PERF_DIR): on the KVM
# guests of sessions 18-19, machine-wide sampling of the software clock attributed
# erratically (AES at 10% of a node's samples in one run and absent in the next, the kernel
# nearly absent); one process with DWARF unwinding gave consistent pictures. kistrel is
# built without frame pointers, so `-g` alone yields no chains. The sampling costs CPU:
# figures from such runs are shares, not throughput.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
fi
exe=$1
node=$2
out=${3:-/tmp/kistrel-$node.perf.data}
work=$(mktemp -d /tmp/kistrel-profile.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
head -c $((64 << 20)) /dev/urandom >"$work/blob"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$work" && exec python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null 2>&1) &
pids+=($!)
"$exe" net --relays 3 --path relay1,relay2,relay3 --links "${LINKS:-plain}" \
    --backend "${BACKEND:-uring}" --dir "$work/net" >"$work/net.out" 2>"$work/net.err" &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready' "$work/net.out" && break; sleep 0.1; done
grep -q '^ready' "$work/net.out" || { echo "kistrel net not ready: $(tail -3 "$work/net.err")" >&2; exit 1; }
socks=$(sed -n 's/^ready socks=\([^ ]*\).*/\1/p' "$work/net.out")
pid=$(pgrep -f -- "$work/net/$node.toml" | head -1)
[ -n "$pid" ] || { echo "no process for $node" >&2; exit 1; }
for _ in $(seq 100); do curl -s -o /dev/null -r 0-0 "http://127.0.0.1:$port/blob" && break; sleep 0.1; done
curls=()
for _ in $(seq 8); do
    curl -s --max-time 120 --socks5-hostname "$socks" -o /dev/null "http://127.0.0.1:$port/blob" &
    curls+=($!)
done
sleep 0.3
perf record -q -e cpu-clock -F 1999 --call-graph dwarf,16384 -p "$pid" -o "$out" \
    -- sleep "${SECONDS_SAMPLED:-0.8}" >/dev/null 2>&1
wait "${curls[@]}"
perf report -i "$out" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -6
perf report -i "$out" --no-children --sort sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25
echo "kept $out"
