#!/usr/bin/env bash
# How a server's exchange rate grows with its shards: one `hawser bench --serve` on 1
# shard and on 2, each under CLIENTS client processes of `hawser bench --mode rpc`
# (64 B exchanges, PIPELINE in flight each, no busy polling), alternated ROUNDS times.
# Prints each run's total exchanges/s and the medians' ratio. Loopback only.
#
#   scripts/rpc-shards.sh [CLIENTS=4] [ROUNDS=3]     (DURATION=5 PIPELINE=32 in the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-4}
rounds=${2:-3}
duration=${DURATION:-5}
pipeline=${PIPELINE:-32}
bin=target/release/hawser
[ -x "$bin" ] || cargo build --release --quiet
port=18931
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# One run: the server on $1 shards, the clients at once; prints the total exchanges/s.
run() {
    "$bin" bench --serve "127.0.0.1:$port" --shards "$1" 2>"$work/serve.log" &
    server=$!
    for _ in $(seq 50); do
        grep -q "serving" "$work/serve.log" 2>/dev/null && break
        sleep 0.1
    done
    local pids=()
    for c in $(seq "$clients"); do
        "$bin" bench --mode rpc --connect "127.0.0.1:$port" --shards 1 --busy-poll-us 0 \
            --pipeline "$pipeline" --duration "$duration" --json >"$work/client-$c.json" 2>/dev/null &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    kill "$server"; wait "$server" 2>/dev/null || true
    server=
    python3 - "$work" "$clients" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
total = sum(json.load(open(f"{work}/client-{c}.json"))["exchanges_per_sec"] for c in range(1, n + 1))
print(f"{total:.0f}")
PY
}

one=(); two=()
for r in $(seq "$rounds"); do
    one+=("$(run 1)")
    two+=("$(run 2)")
    echo "round $r: 1 shard ${one[-1]}/s, 2 shards ${two[-1]}/s"
done
python3 - "${one[*]}" "${two[*]}" <<'PY'
import statistics, sys
one = [float(x) for x in sys.argv[1].split()]
two = [float(x) for x in sys.argv[2].split()]
m1, m2 = statistics.median(one), statistics.median(two)
print(f"median: 1 shard {m1:.0f}/s, 2 shards {m2:.0f}/s, ratio {m2 / m1:.2f}")
PY
