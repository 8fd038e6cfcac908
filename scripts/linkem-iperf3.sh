#!/usr/bin/env bash
# Self-test of the link emulator: iperf3 through linkem at 10 Gbit/s, 50 ms RTT (root).
#   scripts/linkem-iperf3.sh [IPERF3_ARGS] [LINKEM_ARGS]
#   scripts/linkem-iperf3.sh "" "--realtime 10 --offload"
#   scripts/linkem-iperf3.sh "-P 8" "--realtime 10 --offload"
# Prints iperf3's receiver total, iperf3's (sender-side) 1-s intervals after 5 s, linkem's
# own forwarded rate from its JSON reports, and linkem's CPU use.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${HAWSER_PERF:-} ]]; then
    cargo build --release -q -p hawser-perf
    export HAWSER_PERF=${CARGO_TARGET_DIR:-target}/release/hawser-perf
fi
command -v iperf3 >/dev/null || apt-get install -y iperf3
echo "== $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) | linkem --rate 10gbit --rtt 50ms ${2:-} | iperf3 -c 198.18.0.2 -t 15 ${1:-}"
scripts/netns.sh up --rate 10gbit --rtt 50ms --report-interval 1s --json ${2:-} >/dev/null
scripts/netns.sh exec b iperf3 -s -1 >/dev/null 2>&1 &
sleep 0.5
P=$(cat /tmp/hawser-linkem/linkem.pid)
T0=$(awk '{print $14+$15}' /proc/$P/stat)
scripts/netns.sh exec a iperf3 -c 198.18.0.2 -t 15 -f g ${1:-} > /tmp/linkem-iperf3-client.out 2>&1
T1=$(awk '{print $14+$15}' /proc/$P/stat)
grep -E "receiver" /tmp/linkem-iperf3-client.out | tail -1
if [[ "${1:-}" == *-P* ]]; then pat='^\[SUM\]'; else pat='^\[  5\]'; fi
grep -E "$pat" /tmp/linkem-iperf3-client.out | grep -v -E "sender|receiver" | awk '{for(i=1;i<=NF;i++){if($i ~ /^[0-9.]+-[0-9.]+$/){split($i,t,"-")} if($i=="Gbits/sec"){r=$(i-1)}} if (t[1]+0 >= 5) {s+=r; n++} if (r+0 >= 9.0 && !f) {first=t[1]; f=1}} END {printf "steady state (5-15 s): %.2f Gbit/s mean of %d 1-s intervals; ", s/n, n; if (f) print "first interval >= 9 Gbit/s starts at " first " s"; else print "no 1-s interval reached 9 Gbit/s"}'
echo "linkem CPU: $(( (T1-T0)*100/1500 ))% of one core"
kill %1 2>/dev/null
grep '^{"kind":"interval"' /tmp/hawser-linkem/linkem.log | python3 -c '
import sys,json
r=[json.loads(l) for l in sys.stdin]
ss=[x["a_to_b"]["interval_bits_per_sec"]/1e9 for x in r if 6<=x["elapsed_s"]<=16]
first=next((x["elapsed_s"]-0.5 for x in r if x["a_to_b"]["interval_bits_per_sec"]>=9e9),None)
print("linkem a->b forwarded, steady state (5.5-15.5 s after iperf3 start): %.2f Gbit/s mean of %d 1-s reports, min %.2f; first 1-s report >= 9 Gbit/s ends %s s after iperf3 start" % (sum(ss)/len(ss), len(ss), min(ss), "%.1f" % first if first else "never"))'
scripts/netns.sh down | sed 's/^/  /'
wait
