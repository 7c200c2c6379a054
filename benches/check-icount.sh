#!/usr/bin/env bash
# Instruction-count regression check of kistrel's hot paths (benches/icount.rs and
# benches/icount_pure.rs, Gungraun under valgrind/callgrind), against the committed baseline
# benches/baseline/icount.txt.
#
#   bash benches/check-icount.sh               measure, compare, exit 1 on a regression
#   bash benches/check-icount.sh --update      measure and rewrite the baseline
#   bash benches/check-icount.sh --self-check  build with --features inject-slowdown (one
#                                              extra heap copy per transmitted cell) and
#                                              succeed only if the check reports a regression
#                                              (the engine's benches only: the feature does
#                                              not reach the pure crates' binary)
#
# Environment:
#   ICOUNT_TOLERANCE_PCT   allowed increase per bench, percent (default 3)
#
# Installs what it needs when missing: valgrind and jq (apt-get), gungraun-runner at the
# version pinned below, which must equal the `gungraun` dev-dependency in Cargo.toml.
set -euo pipefail

GUNGRAUN_VERSION=0.18.2
TOLERANCE_PCT=${ICOUNT_TOLERANCE_PCT:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASELINE=$ROOT/benches/baseline/icount.txt

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

mode=check
case "${1:-}" in
    "") ;;
    --update) mode=update ;;
    --self-check) mode=self-check ;;
    -h | --help) usage ;;
    *)
        echo "check-icount: unknown argument '$1'" >&2
        usage
        ;;
esac
if ! [[ $TOLERANCE_PCT =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "check-icount: ICOUNT_TOLERANCE_PCT must be a non-negative number, got '$TOLERANCE_PCT'" >&2
    exit 2
fi

apt_install() {
    echo "check-icount: installing $* with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
}

ensure_tools() {
    command -v valgrind >/dev/null || apt_install valgrind
    command -v jq >/dev/null || apt_install jq
    local runner="${CARGO_HOME:-$HOME/.cargo}/bin/gungraun-runner"
    if ! [ -x "$runner" ] || [ "$("$runner" --version 2>/dev/null)" != "gungraun-runner $GUNGRAUN_VERSION" ]; then
        echo "check-icount: installing gungraun-runner $GUNGRAUN_VERSION" >&2
        cargo install gungraun-runner --version "$GUNGRAUN_VERSION" --locked
    fi
    export GUNGRAUN_RUNNER="$runner"
}

# measure OUT [cargo args...]: runs the icount benches (both binaries unless the cargo args
# name one with --bench), writes "bench<TAB>instructions" lines.
measure() {
    local out=$1
    shift
    local json
    json=$(mktemp)
    local benches=(--bench icount --bench icount_pure)
    case " $* " in *" --bench "*) benches=() ;; esac
    # JSON summaries go to stdout, one line per bench; the human report goes to stderr.
    (cd "$ROOT" && cargo bench "${benches[@]}" "$@" -- --output-format=json) >"$json"
    jq -r '[(.function_name + "." + .id),
            (.profiles[0].summaries.total.summary.Callgrind.Ir.metrics
                | (.Left // .Both[0]) | .Int)] | @tsv' "$json" | sort >"$out"
    rm -f "$json"
    if ! [ -s "$out" ] || grep -qv $'^[a-z0-9_.]*\t[0-9][0-9]*$' "$out"; then
        echo "check-icount: could not read instruction counts from the bench output" >&2
        exit 2
    fi
}

# compare BASELINE NOW: prints the table; exit status 1 if anything regressed or is missing.
compare() {
    awk -v tol="$TOLERANCE_PCT" -F'\t' '
        FNR == NR { if ($0 !~ /^#/ && NF == 2) base[$1] = $2; next }
        { now[$1] = $2; order[++n] = $1 }
        END {
            printf "%-34s %14s %14s %7s  %s\n", "bench", "baseline", "now", "ratio", "status"
            bad = 0
            for (i = 1; i <= n; i++) {
                b = order[i]
                if (!(b in base)) {
                    printf "%-34s %14s %14d %7s  %s\n", b, "-", now[b], "-", "NEW (no baseline)"
                    bad = 1
                    continue
                }
                r = now[b] / base[b]
                if (r > 1 + tol / 100) { st = "REGRESSED"; bad = 1 }
                else if (r < 1 - tol / 100) st = "IMPROVED (update the baseline)"
                else st = "OK"
                printf "%-34s %14d %14d %7.3f  %s\n", b, base[b], now[b], r, st
            }
            for (b in base) if (!(b in now)) {
                printf "%-34s %14d %14s %7s  %s\n", b, base[b], "-", "-", "MISSING (bench gone)"
                bad = 1
            }
            printf "tolerance: +%s%% instructions per bench\n", tol
            exit bad
        }' "$1" "$2"
}

ensure_tools
now=$(mktemp)
trap 'rm -f "$now"' EXIT

case $mode in
    update)
        measure "$now"
        {
            echo "# Instruction counts (callgrind Ir) of benches/icount.rs and icount_pure.rs: bench<TAB>count."
            echo "# Written by: bash benches/check-icount.sh --update"
            echo "# $(rustc --version), gungraun $GUNGRAUN_VERSION, $(valgrind --version), $(uname -m)"
            cat "$now"
        } >"$BASELINE"
        echo "check-icount: baseline written to ${BASELINE#"$ROOT"/}:"
        cat "$BASELINE"
        ;;
    check)
        [ -f "$BASELINE" ] || {
            echo "check-icount: no baseline at $BASELINE; run with --update" >&2
            exit 2
        }
        measure "$now"
        if compare "$BASELINE" "$now"; then
            echo "check-icount: OK"
        else
            echo "check-icount: FAILED: instruction counts regressed (or benches changed)." >&2
            echo "If the change is intended: bash benches/check-icount.sh --update, and commit" >&2
            echo "benches/baseline/icount.txt with the reason." >&2
            exit 1
        fi
        ;;
    self-check)
        [ -f "$BASELINE" ] || {
            echo "check-icount: no baseline at $BASELINE; run with --update" >&2
            exit 2
        }
        # The engine's binary only, against the baseline's lines for the benches it ran:
        # the feature changes nothing in icount_pure, whose build and run would only add time.
        measure "$now" --bench icount --features inject-slowdown
        measured=$(mktemp)
        awk -F'\t' 'FNR == NR { ran[$1] = 1; next } $1 in ran' "$now" "$BASELINE" >"$measured"
        table=$(compare "$measured" "$now") && status=0 || status=$?
        rm -f "$measured"
        echo "$table"
        if [ "$status" -ne 0 ] && grep -q 'REGRESSED' <<<"$table"; then
            echo "check-icount: self-check OK: the injected slowdown was caught."
        else
            echo "check-icount: self-check FAILED: an extra copy per cell went unnoticed." >&2
            exit 1
        fi
        ;;
esac
