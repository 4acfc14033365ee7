#!/usr/bin/env bash
# Where the CPU goes in one configuration of the issue-9 bench: CPU time
# and context switches per request of each server process and of wrk,
# from `perf stat` (software counters; they work in a VM without a PMU).
#
# Usage: benches/http/cost.sh <balancer|reuseport|single> [close|keepalive] [port]
# Needs: perf, wrk, the release examples (benches/http/run.sh builds them).
set -euo pipefail

cfg=${1:?usage: cost.sh <balancer|reuseport|single> [close|keepalive] [port]}
mode=${2:-close}
port=${3:-18999}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}

cd "$(dirname "$0")/../.."
BIN=$PWD/target/release/examples/http_bench
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkfifo "$d/in"
"$BIN" "$cfg" "$port" <"$d/in" >"$d/out" 2>"$d/err" &
pid=$!
exec 3>"$d/in"
for _ in $(seq 200); do
    grep -q '^READY' "$d/out" && break
    sleep 0.05
done
grep -q '^READY' "$d/out" || { cat "$d/err" >&2; exit 1; }

# The server processes: the one started here and its children.
pids="$pid $(pgrep -P "$pid" | tr '\n' ' ' || true)"
perfs=""
for p in $pids; do
    perf stat -x, -e task-clock,context-switches -p "$p" -o "$d/stat.$p" &
    perfs="$perfs $!"
done
sleep 0.5
hdr=()
[ "$mode" = close ] && hdr=(-H 'Connection: close')
perf stat -x, -e task-clock,context-switches -o "$d/stat.wrk" \
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "${hdr[@]}" "http://127.0.0.1:$port/" >"$d/wrk"
sleep 0.2
# shellcheck disable=SC2086
kill -INT $perfs
# shellcheck disable=SC2086
wait $perfs || true
names=""
for p in $pids; do names="$names $p:$(cat /proc/"$p"/comm)"; done
exec 3>&-
wait "$pid"

n=$(awk '/requests in/ { print $1 }' "$d/wrk")
echo "$cfg $mode: $(grep Requests/sec "$d/wrk" | tr -s ' '), $n requests; $(grep -c '^CONNS' "$d/out") serving process(es)"
printf '  %-22s %12s %14s %18s\n' process "CPU s" "CPU us/req" "ctx switches/req"
for entry in $names wrk:wrk; do
    p=${entry%%:*} name=${entry#*:}
    awk -F, -v n="$n" -v who="$name ($p)" '
        /task-clock/ { tc = $1 } /context-switches/ { cs = $1 }
        END { printf "  %-22s %12.2f %14.2f %18.2f\n", who, tc / 1000, tc * 1000 / n, cs / n }' "$d/stat.$p"
done
