#!/usr/bin/env bash
# Bounded fuzzing of every kistrel fuzz target: `engine/fuzz/run.sh [SECONDS_PER_TARGET]`
# (default 30). Installs cargo-fuzz if missing (prints a SKIPPED line and exits 0 if that is
# impossible), builds all targets once, runs each for the given time on a scratch copy of
# its seed corpus, prints executions and exec/s per target, and exits 1 on any crash with
# the crash file and the command that reproduces it. See engine/fuzz/README.md.
set -uo pipefail

secs="${1:-30}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
targets=(cell_decoder relay_payloads link_auth ntor_server socks directory config relay_state)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    if ! log="$(cargo install cargo-fuzz --locked 2>&1)"; then
        why="$(printf '%s\n' "$log" | grep -m1 -i 'error' || printf '%s\n' "$log" | tail -n1)"
        echo "SKIPPED: fuzzing (cargo-fuzz unavailable: ${why:-cargo install failed})"
        exit 0
    fi
fi

# libFuzzer needs nightly flags (-Z sanitizer, -C passes=sancov). Use a nightly toolchain
# when rustup has one; else the stable compiler with RUSTC_BOOTSTRAP=1 (CI's clean machine).
# KISTREL_FUZZ_TOOLCHAIN=stable forces the second way (to test it where nightly exists).
if [ "${KISTREL_FUZZ_TOOLCHAIN:-}" != stable ] && cargo +nightly --version >/dev/null 2>&1; then
    cargo_cmd=(cargo +nightly)
    toolchain="nightly"
else
    cargo_cmd=(cargo)
    export RUSTC_BOOTSTRAP=1
    toolchain="stable with RUSTC_BOOTSTRAP=1"
fi
# -a: debug assertions on (the engine's debug_assert!s are invariants too).
fuzz_flags=(-a)
# KISTREL_FUZZ_TARGET_DIR: a separate build directory (e.g. one per toolchain).
if [ -n "${KISTREL_FUZZ_TARGET_DIR:-}" ]; then
    fuzz_flags+=(--target-dir "$KISTREL_FUZZ_TARGET_DIR")
fi
echo "fuzz: building ${#targets[@]} targets ($toolchain)"
if ! "${cargo_cmd[@]}" fuzz build "${fuzz_flags[@]}" >"$here/target-build.log" 2>&1; then
    tail -n 30 "$here/target-build.log"
    echo "fuzz: build failed (log: $here/target-build.log)"
    exit 1
fi

work="$here/work"
mkdir -p "$work"

# The committed seeds must be what the generator writes today: a target without seeds, or
# seeds of an old input format (or a deep seed that no longer reaches its depth: the
# generator asserts that), would fuzz from nothing without anyone noticing.
bin_dir="${KISTREL_FUZZ_TARGET_DIR:-$here/target}/x86_64-unknown-linux-gnu/release"
fresh="$work/seeds-check"
rm -rf "$fresh"
if ! "$bin_dir/gen_seeds" "$fresh" >"$work/gen_seeds.log" 2>&1; then
    tail -n 20 "$work/gen_seeds.log"
    echo "fuzz: the seed generator failed (log: $work/gen_seeds.log)"
    exit 1
fi
if ! stale="$(diff -rq "$fresh" "$here/corpus")"; then
    printf '%s\n' "$stale" | head -n 20
    echo "fuzz: committed seeds differ from the generator's; rewrite them:"
    echo "fuzz:   (cd $here && $bin_dir/gen_seeds corpus) and commit corpus/"
    exit 1
fi
echo "fuzz: committed seeds match the generator (${#targets[@]} targets)"

failed=0
rows=()
for t in "${targets[@]}"; do
    # New inputs go to the scratch corpus (first directory); the committed seeds stay as
    # they are.
    mkdir -p "$work/$t" "$here/artifacts/$t"
    log="$work/$t.log"
    "${cargo_cmd[@]}" fuzz run "${fuzz_flags[@]}" "$t" "$work/$t" "$here/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=10 >"$log" 2>&1
    rc=$?
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n1 | grep -o '[0-9]*$')"
    if [ -z "$runs" ]; then
        runs="$(grep -o 'Done [0-9]* runs' "$log" | tail -n1 | grep -o '[0-9]*' || true)"
    fi
    rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -n1 | grep -o '[0-9]*$')"
    if [ "$rc" -ne 0 ]; then
        failed=1
        crash="$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n1 | sed 's/Test unit written to //')"
        rows+=("$(printf '%-16s %14s %10s  CRASH' "$t" "${runs:-?}" "${rate:-?}")")
        echo "fuzz: $t FAILED (exit $rc), log: $log"
        grep -m5 -E 'panicked|ERROR: AddressSanitizer|SUMMARY' "$log" || tail -n 20 "$log"
        if [ -n "$crash" ]; then
            case "$crash" in /*) ;; *) crash="$here/${crash#./}" ;; esac
            echo "fuzz: crash file: $crash"
            echo "fuzz: reproduce: (cd $here && ${cargo_cmd[*]} fuzz run ${fuzz_flags[*]} $t $crash)"
        fi
    else
        rows+=("$(printf '%-16s %14s %10s  ok' "$t" "${runs:-?}" "${rate:-?}")")
    fi
done

echo
echo "fuzz: ${secs}s per target"
printf '%-16s %14s %10s  %s\n' target executions exec/s result
printf '%s\n' "${rows[@]}"
exit "$failed"
