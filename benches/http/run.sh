#!/usr/bin/env bash
# The connection-balancing bench of issue 9 (figures in BENCHMARKS.md,
# section "Connection balancing (issue 9)").
#
# HTTP hello-world (examples/http_bench.rs) served three ways on
# 127.0.0.1, loaded by wrk with keep-alive and with a new connection per
# request (`Connection: close`):
#
#   balancer   nanny: the supervisor accepts, 2 axum_worker workers serve
#   reuseport  2 processes, each with its own SO_REUSEPORT socket
#   single     1 process binding the port itself
#
# Every (configuration, keep-alive mode) pair runs once per round, and the
# rounds are interleaved (the order of the configurations rotates from one
# round to the next), so noise on the host hits every configuration alike.
# Ratios are taken within a round.
#
# Usage: benches/http/run.sh            (from anywhere in the repo)
# Knobs (environment): ROUNDS=3 DURATION=10s CONNECTIONS=32 THREADS=1
#                      PORT=18080 OUT=target/http-bench/<date>
# Needs: cargo, awk, mkfifo; wrk (installed with apt-get if missing).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
PORT=${PORT:-18080}

cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/target/http-bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

if ! command -v wrk >/dev/null; then
    echo "# installing wrk (Debian package)" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get install -y wrk >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y wrk >&2; }
fi

echo "# building the examples (release)" >&2
cargo build --release --examples --quiet
BIN=$ROOT/target/release/examples/http_bench

# run <round> <mode: keepalive|close> <config> <port>
# Starts the server, waits for READY, runs wrk, stops the server by closing
# its stdin, and appends one line to $OUT/results.tsv:
#   round mode config req/s errors conns(comma-separated) busiest-share
run() {
    local round=$1 mode=$2 cfg=$3 port=$4
    local tag=$OUT/r$round-$mode-$cfg
    local fifo=$tag.stdin
    mkfifo "$fifo"
    "$BIN" "$cfg" "$port" <"$fifo" >"$tag.server" 2>"$tag.server-err" &
    local pid=$!
    exec 3>"$fifo"   # the server's stdin: closing fd 3 stops it
    local i
    for i in $(seq 200); do
        grep -q '^READY' "$tag.server" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q '^READY' "$tag.server"; then
        echo "server $cfg did not start; see $tag.server-err" >&2
        exec 3>&-; wait "$pid" || true; exit 1
    fi
    local hdr=()
    [ "$mode" = close ] && hdr=(-H 'Connection: close')
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "${hdr[@]}" \
        "http://127.0.0.1:$port/" >"$tag.wrk" 2>&1
    exec 3>&-
    wait "$pid"
    rm -f "$fifo"
    awk -v round="$round" -v mode="$mode" -v cfg="$cfg" '
        FILENAME ~ /\.wrk$/ && /^Requests\/sec:/ { rps = $2 }
        FILENAME ~ /\.wrk$/ && /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        FILENAME ~ /\.wrk$/ && /Non-2xx/ { err += $NF }
        FILENAME ~ /\.server$/ && /^CONNS/ {
            conns = conns (conns == "" ? "" : ",") $3; sum += $3; if ($3 > max) max = $3
        }
        END {
            printf "%s\t%s\t%s\t%s\t%d\t%s\t%.4f\n", round, mode, cfg, rps, err, conns, (sum ? max / sum : 0)
        }' "$tag.wrk" "$tag.server" >>"$OUT/results.tsv"
    tail -n1 "$OUT/results.tsv" >&2
}

{
    echo "# $(date -u '+%F %T UTC') $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo +changes)"
    echo "# nproc $(nproc); $(wrk --version 2>&1 | head -n1)"
    echo "# wrk -t$THREADS -c$CONNECTIONS -d$DURATION; $ROUNDS rounds"
} | tee "$OUT/header" >&2
: >"$OUT/results.tsv"

configs=(balancer reuseport single)
n=0
for round in $(seq "$ROUNDS"); do
    uptime >"$OUT/r$round.uptime"
    for mode in keepalive close; do
        for k in 0 1 2; do
            cfg=${configs[$(((k + round - 1) % 3))]}
            n=$((n + 1))
            run "$round" "$mode" "$cfg" $((PORT + n))
        done
    done
done

echo >&2
cat "$OUT/header"
awk -F'\t' -v rounds="$ROUNDS" '
    function median(list,   a, k, i, j, t) {
        k = split(list, a, " ")
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    {
        rps[$2, $3, $1] = $4; err[$2, $3] += $5; share[$2, $3, $1] = $7; conns[$2, $3, $1] = $6
    }
    END {
        split("keepalive close", modes, " "); split("balancer reuseport single", cfgs, " ")
        printf "\n%-10s %-10s %-34s %10s %7s\n", "mode", "config", "req/s per round", "median", "errors"
        for (m = 1; m <= 2; m++) for (c = 1; c <= 3; c++) {
            list = ""
            for (r = 1; r <= rounds; r++) list = list sprintf("%.0f ", rps[modes[m], cfgs[c], r])
            printf "%-10s %-10s %-34s %10.0f %7d\n", modes[m], cfgs[c], list, median(list), err[modes[m], cfgs[c]]
        }
        printf "\n%-10s %-32s %8s %-10s\n", "mode", "balancer/reuseport per round", "median", "target"
        for (m = 1; m <= 2; m++) {
            list = ""
            for (r = 1; r <= rounds; r++) list = list sprintf("%.3f ", rps[modes[m], "balancer", r] / rps[modes[m], "reuseport", r])
            target = modes[m] == "keepalive" ? 0.90 : 0.70
            med = median(list)
            printf "%-10s %-32s %8.3f >= %.2f %s\n", modes[m], list, med, target, (med >= target ? "met" : "MISSED")
        }
        printf "\n%-10s %-32s %8s\n", "mode", "balancer/single per round", "median"
        for (m = 1; m <= 2; m++) {
            list = ""
            for (r = 1; r <= rounds; r++) list = list sprintf("%.3f ", rps[modes[m], "balancer", r] / rps[modes[m], "single", r])
            printf "%-10s %-32s %8.3f\n", modes[m], list, median(list)
        }
        printf "\n%-10s %-10s %-28s %-40s\n", "mode", "config", "busiest share per round", "connections per process, per round"
        for (m = 1; m <= 2; m++) for (c = 1; c <= 2; c++) {
            list = ""; cl = ""; worst = 0
            for (r = 1; r <= rounds; r++) {
                s = share[modes[m], cfgs[c], r]; if (s > worst) worst = s
                list = list sprintf("%.1f%% ", 100 * s); cl = cl conns[modes[m], cfgs[c], r] " "
            }
            note = cfgs[c] == "balancer" ? (worst <= 0.51 ? "(<= 51 %: met)" : "(> 51 %: MISSED)") : ""
            printf "%-10s %-10s %-28s %-40s %s\n", modes[m], cfgs[c], list, cl, note
        }
    }' "$OUT/results.tsv" | tee "$OUT/summary"
echo "# raw output in $OUT" >&2
