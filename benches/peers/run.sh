#!/usr/bin/env bash
# nanny side by side with its peers, in one command:
#
#   benches/peers/run.sh [--rounds N]      (default 5)
#
# Builds the Rust side in release, installs the npm peers and the Node SDK's
# dependency (sdk/node) from their lock files if they are missing, finds a
# Python with msgpack for the Python SDK's workers ($NANNY_PYTHON, else
# target/sdk-venv, made as scripts/test makes it), runs every system once
# per round (the order rotated each round), appends every JSON line to
# results/<date>.jsonl, and writes results/table.md and chart.svg from the
# medians (summarize.py).
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
repo="$(cd "$here/../.." && pwd)"
if [ ! -d "$repo/sdk/node/node_modules/@msgpack/msgpack" ]; then
  (cd "$repo/sdk/node" && npm ci --no-audit --no-fund --silent)
fi
# nanny-lpm's claim is that an LPM worker.js runs under nanny with its
# require line changed: the two workers differ in that one line only.
changed="$(diff "$here/node/lpm-worker.js" "$here/node/nanny-lpm-worker.js" | grep -c '^[<>]' || true)"
if [ "$changed" != 2 ]; then
  echo "$0: node/nanny-lpm-worker.js must be node/lpm-worker.js with one changed require line" >&2
  exit 1
fi
# The Python SDK's workers: the msgpack that scripts/test pins.
msgpack_version=1.2.4
if [ -z "${NANNY_PYTHON:-}" ]; then
  venv="$repo/target/sdk-venv"
  has_msgpack="import msgpack, sys; sys.exit('.'.join(map(str, msgpack.version)) != '$msgpack_version')"
  if ! "$venv/bin/python" -c "$has_msgpack" 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "msgpack==$msgpack_version" || {
      echo "$0: nanny-python needs a Python with msgpack: python3-venv and pip to make $venv, or set NANNY_PYTHON" >&2
      exit 1
    }
  fi
  NANNY_PYTHON="$venv/bin/python"
fi
if ! "$NANNY_PYTHON" -c 'import msgpack' 2>/dev/null; then
  echo "$0: NANNY_PYTHON=$NANNY_PYTHON has no msgpack (pip install msgpack==$msgpack_version)" >&2
  exit 1
fi
export NANNY_PYTHON

mkdir -p "$here/results"
out="$here/results/$(date -u +%Y-%m-%dT%H%M%SZ).jsonl"
# Each entry: a label, then the command that prints its JSON lines.
systems=(
  "raw|$bin raw"
  "raw-batched|$bin raw-batched --rows bursts"
  "tokio|$bin tokio"
  "nanny|$bin nanny"
  "nanny-ct|$bin nanny-ct"
  "nanny-ct-spin|$bin nanny-ct-spin --rows rtt"
  "nanny-node|$bin nanny-node"
  "nanny-lpm|$bin nanny-lpm"
  "nanny-python|$bin nanny-python"
  "tonic|$bin tonic"
  "skeleton|$bin skeleton --rows dispatch"
  "skeleton-ct|$bin skeleton-ct --rows dispatch"
  "skeleton-direct|$bin skeleton-direct --rows dispatch"
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
