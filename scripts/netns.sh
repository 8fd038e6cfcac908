#!/usr/bin/env bash
# Network-namespace helper around `hawser-perf linkem` (root required).
#
#   scripts/netns.sh up [linkem options...]   start linkem in the background, wait until
#                                             the link is up (e.g. --rate 10gbit --rtt 50ms)
#   scripts/netns.sh exec a|b CMD [ARGS...]   run a command in side a (198.18.0.1) or b
#   scripts/netns.sh down                     stop linkem (SIGTERM: counters printed,
#                                             namespaces removed)
#   scripts/netns.sh status                   is linkem running; which namespaces exist
#   scripts/netns.sh cleanup                  remove leftover namespaces (after a SIGKILL)
#
# Example, the 10 Gbit/s × 50 ms measurement:
#   scripts/netns.sh up --rate 10gbit --rtt 50ms --realtime 10 --offload
#   scripts/netns.sh exec b iperf3 -s -D
#   scripts/netns.sh exec a iperf3 -c 198.18.0.2 -t 15
#   scripts/netns.sh down
#
# Environment: LINKEM_STATE_DIR (default /tmp/hawser-linkem) holds the pid, ready file
# and linkem's log; HAWSER_PERF (default: build and use the release binary in
# ${CARGO_TARGET_DIR:-target}); NS_A / NS_B for other namespace names (pass the same
# names to linkem with --ns-a/--ns-b).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR=${LINKEM_STATE_DIR:-/tmp/hawser-linkem}
NS_A=${NS_A:-hawser-a}
NS_B=${NS_B:-hawser-b}
PID_FILE=$STATE_DIR/linkem.pid
READY_FILE=$STATE_DIR/linkem.ready
LOG_FILE=$STATE_DIR/linkem.log

binary() {
    if [[ -n ${HAWSER_PERF:-} ]]; then
        echo "$HAWSER_PERF"
        return
    fi
    cargo build --release -q -p hawser-perf >&2
    echo "${CARGO_TARGET_DIR:-target}/release/hawser-perf"
}

running() {
    [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

case ${1:-} in
up)
    shift
    if running; then
        echo "linkem already running (pid $(cat "$PID_FILE"))" >&2
        exit 1
    fi
    mkdir -p "$STATE_DIR"
    rm -f "$READY_FILE"
    bin=$(binary)
    "$bin" linkem --ns-a "$NS_A" --ns-b "$NS_B" --ready-file "$READY_FILE" "$@" \
        >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 200); do
        [[ -f $READY_FILE ]] && { echo "linkem up (pid $(cat "$PID_FILE")), log $LOG_FILE"; exit 0; }
        running || break
        sleep 0.05
    done
    echo "linkem failed to come up:" >&2
    cat "$LOG_FILE" >&2
    exit 1
    ;;
exec)
    side=${2:?side a or b}
    shift 2
    case $side in
    a) ns=$NS_A ;;
    b) ns=$NS_B ;;
    *) echo "side must be a or b" >&2; exit 2 ;;
    esac
    exec ip netns exec "$ns" "$@"
    ;;
down)
    if ! running; then
        echo "linkem not running" >&2
        rm -f "$PID_FILE"
        exit 0
    fi
    pid=$(cat "$PID_FILE")
    kill -TERM "$pid"
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$PID_FILE"
    tail -n 1 "$LOG_FILE"
    ;;
status)
    if running; then echo "linkem running (pid $(cat "$PID_FILE"))"; else echo "linkem not running"; fi
    ip netns list | grep -E "^($NS_A|$NS_B)( |$)" || echo "no linkem namespaces"
    ;;
cleanup)
    "$(binary)" linkem --cleanup --ns-a "$NS_A" --ns-b "$NS_B"
    ;;
*)
    sed -n '2,21p' "$0"
    exit 2
    ;;
esac
