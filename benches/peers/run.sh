#!/usr/bin/env bash
# nanny side by side with its peers, in one command:
#
#   benches/peers/run.sh [--rounds N]      (default 5)
#
# Builds the Rust side in release, installs the npm peers from the lock file
# if they are missing, runs every system once per round (the order rotated
# each round), appends every JSON line to results/<date>.jsonl, and writes
# results/table.md and chart.svg from the medians (summarize.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "usage: $0 [--rounds N]" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin="$CARGO_TARGET_DIR/release/nanny-peers"
if [ ! -d "$here/node/node_modules/load-process-manager" ] || [ ! -d "$here/node/node_modules/piscina" ]; then
  (cd "$here/node" && npm ci --no-audit --no-fund --silent)
fi

mkdir -p "$here/results"
out="$here/results/$(date -u +%Y-%m-%dT%H%M%SZ).jsonl"
# Each entry: a label, then the command that prints its JSON lines.
systems=(
  "raw|$bin raw"
  "raw-batched|$bin raw-batched --rows bursts"
  "tokio|$bin tokio"
  "nanny|$bin nanny"
  "nanny-ct|$bin nanny-ct"
  "tonic|$bin tonic"
  "lpm|node $here/node/peers.js lpm"
  "piscina|node $here/node/peers.js piscina"
  "raw-pinned|taskset -c 0 $bin raw --rows rtt --label raw-pinned"
  "tokio-pinned|taskset -c 0 $bin tokio --rows rtt --label tokio-pinned"
  "nanny-pinned|taskset -c 0 $bin nanny --rows rtt --label nanny-pinned"
  "nanny-ct-pinned|taskset -c 0 $bin nanny-ct --rows rtt --label nanny-ct-pinned"
)
n=${#systems[@]}
for ((r = 1; r <= rounds; r++)); do
  for ((i = 0; i < n; i++)); do
    entry="${systems[$(((i + r - 1) % n))]}"
    label="${entry%%|*}"
    echo "round $r/$rounds: $label" >&2
    # shellcheck disable=SC2086 # the command is a word list on purpose
    ${entry#*|} --round "$r" | tee -a "$out"
  done
done
python3 "$here/summarize.py" "$out" --table "$here/results/table.md" --chart "$here/chart.svg"
echo "results: $out, $here/results/table.md, $here/chart.svg" >&2
