#!/usr/bin/env bash
# System calls per forwarded MiB at the middle relay:
#   benches/syscalls-per-mib.sh [KISTREL_EXE] [MIB] [BACKEND]   (defaults: target/debug/kistrel 64 uring)
# starts `kistrel net --relays 3 --path relay1,relay2,relay3`, serves a MIB-MiB file of random
# bytes with `python3 -m http.server` on 127.0.0.1, attaches `strace -c -f` to relay2 (the
# middle) once the network is ready, fetches the file once through the client with curl,
# detaches, and prints strace's table and getsockopt / ioctl / all calls per MiB. Counts, not
# times: strace slows the relay, so the figures compare builds under the same conditions.
# Needs strace, curl, python3 and ptrace rights (root). Stops everything it started, by pid.
set -euo pipefail
exe="${1:-target/debug/kistrel}"
mib="${2:-64}"
backend="${3:-uring}"
work="$(mktemp -d -t kistrel-syscalls-XXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

head -c $((mib << 20)) /dev/urandom >"$work/file"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(cd "$work" && exec python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null 2>&1) &
pids+=($!)
"$exe" net --relays 3 --path relay1,relay2,relay3 --backend "$backend" --dir "$work/net" \
    >"$work/net.out" 2>"$work/net.err" &
net=$!
pids+=("$net")
for _ in $(seq 600); do grep -q '^ready' "$work/net.out" && break; sleep 0.1; done
grep -q '^ready' "$work/net.out" || { echo "kistrel net not ready: $work/net.err"; exit 1; }
socks="$(sed -n 's/^ready socks=\([^ ]*\).*/\1/p' "$work/net.out")"
middle=""
for p in $(pgrep -P "$net"); do
    if tr '\0' ' ' <"/proc/$p/cmdline" | grep -q 'relay2'; then middle="$p"; fi
done
[ -n "$middle" ] || { echo "no relay2 child of $net"; exit 1; }

strace -c -f -p "$middle" -o "$work/strace.txt" 2>"$work/strace.err" &
strace_pid=$!
pids+=("$strace_pid")
sleep 1
got="$(curl -sS --max-time 600 --socks5-hostname "$socks" "http://127.0.0.1:$port/file" \
    -o /dev/null -w '%{size_download}')"
kill -INT "$strace_pid"
wait "$strace_pid" || true
[ "$got" = $((mib << 20)) ] || { echo "fetched $got bytes, not $((mib << 20))"; exit 1; }
cat "$work/strace.txt"
python3 - "$work/strace.txt" "$mib" <<'PY'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
calls = {}
for line in open(path):
    f = line.split()
    # "% time seconds usecs/call calls [errors] syscall"
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = int(f[3])
total = sum(calls.values())
print(f"per MiB over {mib} MiB: getsockopt {calls.get('getsockopt', 0) / mib:.1f}, "
      f"ioctl {calls.get('ioctl', 0) / mib:.1f}, all {total / mib:.1f}")
PY
echo "kept in $work"
