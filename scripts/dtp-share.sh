#!/usr/bin/env bash
# DTP beside one TCP stream, by hand (root): linkem at 1 Gbit/s x 100 ms with LOSS, one
# `iperf3 -C cubic` stream for TCP_SECONDS, and DELAY seconds into it a DTP push of 1 GiB
# (--mtu 64000). Prints the stream's rate alone and while DTP ran, and DTP's per second.
# TCP_SECONDS 0: DTP alone (no stream), with its steady rate (the mean of its seconds after
# the first third, as the lfn scenarios count it).
#
#   sudo scripts/dtp-share.sh [LOSS] [DELAY] [TCP_SECONDS]      (default 0 8 30)
#
# Needs release builds of hawser and hawser-perf (cargo build --release -p hawser -p
# hawser-perf) and iperf3. Everything runs in linkem's namespaces and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
loss=${1:-0}
delay=${2:-8}
tcp_seconds=${3:-30}
bin=target/release
work=$(mktemp -d /tmp/hawser-dtp-share.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
"$bin/hawser-perf" linkem --ns-a hawser-a --ns-b hawser-b --rate 1gbit --rtt 100ms \
    --loss "$loss" --realtime 10 --offload > "$work/linkem.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    ip netns exec hawser-a ping -c1 -W1 198.18.0.2 > /dev/null 2>&1 && break
    sleep 0.2
done
mkdir -p "$work/root"
head -c 1073741824 /dev/urandom > "$work/push.bin"
ip netns exec hawser-b iperf3 -s -1 > /dev/null 2>&1 &
pids+=($!)
ip netns exec hawser-b "$bin/hawser" serve --root "$work/root" --listen 198.18.0.2:8415 \
    --dtp 198.18.0.2:8416 --allow-anonymous > "$work/serve.log" 2>&1 &
pids+=($!)
sleep 1
iperf=
if [[ $tcp_seconds != 0 ]]; then
    ip netns exec hawser-a iperf3 -c 198.18.0.2 -t "$tcp_seconds" -C cubic -i 1 --json \
        > "$work/iperf.json" &
    iperf=$!
    sleep "$delay"
fi
started=$(date +%s.%N)
ip netns exec hawser-a "$bin/hawser" push --transport dtp --mtu 64000 -q \
    --json "$work/dtp.json" "$work/push.bin" 198.18.0.2:8415:x
ended=$(date +%s.%N)
[[ -n $iperf ]] && wait "$iperf"
python3 - "$delay" "$started" "$ended" "$work" "$tcp_seconds" <<'PY'
import json, sys
delay, started, ended, work = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
took = ended - started
mean = lambda xs: sum(xs) / max(len(xs), 1) / 1e6
dtp = json.load(open(f"{work}/dtp.json"))
per_second = [i["bits_per_second"] for i in dtp["intervals"]]
if sys.argv[5] != "0":
    tcp = [(i["sum"]["start"], i["sum"]["end"], i["sum"]["bits_per_second"])
           for i in json.load(open(f"{work}/iperf.json"))["intervals"]]
    alone = [b for s, e, b in tcp if s >= 2 and e <= delay]
    beside = [b for s, e, b in tcp if s >= delay + 1 and e <= delay + took]
    print(f"TCP alone {mean(alone):.0f} Mbit/s; while DTP ran {mean(beside):.0f} Mbit/s over "
          f"{len(beside)} s: {[round(b / 1e6) for b in beside]}")
print(f"DTP {dtp['size'] / 1e6:.0f} MB in {took:.1f} s; steady {mean(per_second[len(per_second) // 3:]):.0f} "
      f"Mbit/s; per second: {[round(b / 1e6) for b in per_second]}")
PY
