#!/usr/bin/env bash
# The spread of every macro figure: `benches/macro-spread.sh [RUNS] [OUT_DIR]` runs the job
# CI runs (`kistrel bench check`, 3 rounds, both comparisons) RUNS times (default 10),
# keeps each run's JSON and table in OUT_DIR, and prints each figure's per-run values (the
# median over that run's rounds) as the `runs = [...]` lines of benches/macro-baseline.toml.
# `kistrel bench check` computes the median, the MAD and the limit from those lines; nothing
# here does statistics. Run it on a quiet machine (load average well below the CPU count:
# each run's load is printed and kept in its JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
out="${2:-$(mktemp -d -t kistrel-spread-XXXX)}"
mkdir -p "$out"
cargo build --release --bin kistrel
for i in $(seq 1 "$runs"); do
    echo "run $i/$runs: $(uptime)"
    # The verdict against the committed baseline does not matter here: keep going.
    ./target/release/kistrel bench check benches/macro-baseline.toml \
        --json "$out/run-$i.json" >"$out/run-$i.txt" 2>"$out/run-$i.err" || true
    [ -s "$out/run-$i.json" ] || { echo "run $i wrote no JSON: see $out/run-$i.err"; exit 1; }
done
python3 - "$out" "$runs" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
reports = [json.load(open(f"{out}/run-{i}.json")) for i in range(1, n + 1)]
print(f"# {n} runs in {out}; 1-min load average at start of each run:")
print("#", ", ".join(f"{r['machine']['loadavg_1m'][0]:.2f}" for r in reports))
for name in ["ratio_vs_forwarders", "kist_over_vanilla", "workers_two_over_one",
             "max_relay_cpu_s_per_gib", "relays_cpu_s_per_gib",
             "max_relay_cpu_over_forwarders", "relays_cpu_over_forwarders",
             "forwarders_cpu_s_per_gib", "ratio_vs_direct",
             "throughput_mib_s", "direct_throughput_mib_s", "forwarders_throughput_mib_s"]:
    values = [r["figures"][name]["median"] for r in reports if name in r["figures"]]
    better = reports[0]["figures"][name]["better"]
    print(f"\n[figures.{name}]\nbetter = \"{better}\"")
    print("runs = [" + ", ".join(f"{v:.4f}" for v in values) + "]")
PY
