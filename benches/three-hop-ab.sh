#!/usr/bin/env bash
# Two kistrel builds against each other on issue #17's 3-hop measurement: one round of
# benches/three-hop-throughput.sh (both backends) per build in turn, in A B B A order, so
# each pair of adjacent runs gives one paired ratio per backend.
#
#   bash benches/three-hop-ab.sh EXE_A EXE_B [PAIRS]     (PAIRS default 4)
#
# Prints each run's lines as three-hop-throughput.sh does, under "== A|B PAIR EXE".
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
fi
a=$1
b=$2
pairs=${3:-4}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for i in $(seq 1 "$pairs"); do
    if [ $((i % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
    for which in $order; do
        exe=$a
        [ "$which" = B ] && exe=$b
        echo "== $which $i $exe"
        bash "$here/three-hop-throughput.sh" "$exe" 1 | grep '^round'
    done
done
