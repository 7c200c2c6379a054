#!/usr/bin/env bash
# Two kistrel builds against each other on issue #17's 3-hop measurement: one round of
# benches/three-hop-throughput.sh (both backends) per build in turn, in A B B A order, so
# each pair of adjacent runs gives one paired ratio per backend.
#
#   bash benches/three-hop-ab.sh EXE_A EXE_B [PAIRS]     (PAIRS default 4)
#
# Prints each run's lines as three-hop-throughput.sh does, under "== A|B PAIR EXE", then B/A
# per pair and backend. A change to one backend's code leaves the other as the control: its
# B/A shows how far the host drifted between the runs of a pair (session 18: a change that
# touched only io_uring gave io_uring B/A median 1.07 and poll B/A median 1.11).
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
fi
a=$1
b=$2
pairs=${3:-4}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log=$(mktemp /tmp/kistrel-3hop-ab.XXXXXX)
trap 'rm -f "$log"' EXIT
for i in $(seq 1 "$pairs"); do
    if [ $((i % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
    for which in $order; do
        exe=$a
        [ "$which" = B ] && exe=$b
        echo "== $which $i $exe"
        CRYPTO=${CRYPTO:-0} bash "$here/three-hop-throughput.sh" "$exe" 1 | grep '^round'
    done
done | tee "$log"
# "round 1 uring 245.5 ..." under "== A 1 EXE": MiB/s by (backend, side, pair).
awk '/^== /{side=$2; pair=$3} /^round /{mib[$3" "side" "pair]=$4; seen[$3]=1}
END {
    for (b in seen) {
        line = ""; n = 0
        for (p = 1; ("" mib[b" A "p]) != ""; p++) {
            r[++n] = mib[b" B "p] / mib[b" A "p]; line = line sprintf(" %.2f", r[n])
        }
        # median of r[1..n] (insertion sort; n is small)
        for (i = 2; i <= n; i++) { v = r[i]; for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]; r[j + 1] = v }
        med = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
        printf "%-5s B/A per pair:%s; median %.2f\n", b, line, med
    }
}' "$log"
