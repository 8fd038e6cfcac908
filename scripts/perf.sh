#!/usr/bin/env bash
# Runs hawser's perf scenarios and writes their reports (issue 6).
#   scripts/perf.sh SCENARIO [hawser-perf scenario options...]
#   scripts/perf.sh all      [options...]
#   scripts/perf.sh loopback-bulk --runs 3
# Scenarios: loopback-bulk loopback-rpc local-transports replicate lfn-10g-50ms lfn-loss lfn-1g-100ms
# hostile tls messaging (the lfn ones need root: they bring up the link emulator; tls measures its
# linkem rows only as root, HAWSER_TLS_SKIP_LINK=1 leaves them out, HAWSER_TLS_LFN_PUSH_MIB,
# HAWSER_TLS_SSH_MIB and HAWSER_TLS_HANDSHAKES shrink it; messaging builds its ZeroMQ/RabbitMQ/
# NATS clients from perf/peers/messaging, HAWSER_MESSAGING_SYSTEMS=hawser,zmq runs a subset).
# Builds the release binaries (hawser, hawser-perf), installs the baselines through
# scripts/setup.sh when missing, runs each scenario and prints where its reports are:
# perf/results/<scenario>.json, .md, *.svg (PERF_OUT to write elsewhere). PERF_NOTE="..." adds
# a sentence to each report's notes (e.g. what else the machine was doing).
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIOS=(loopback-bulk loopback-rpc local-transports replicate lfn-10g-50ms lfn-loss lfn-1g-100ms hostile tls messaging)
scenario=${1:-}
if [[ -z $scenario ]]; then
    sed -n '2,14p' "$0"
    exit 2
fi
shift
if [[ $scenario == all ]]; then
    selected=("${SCENARIOS[@]}")
else
    selected=("$scenario")
fi

out=${PERF_OUT:-perf/results}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p hawser-perf -p hawser
scripts/setup.sh
# The messaging scenario's baseline clients: their own workspace (heavy client libraries kept
# out of hawser's build); the scenario builds them too, this shows the first build's errors early.
if [[ " ${selected[*]} " == *" messaging "* ]]; then
    cargo build --release -q --manifest-path perf/peers/messaging/Cargo.toml ||
        echo "perf.sh: building perf/peers/messaging failed (see above)" >&2
fi

failed=()
for name in "${selected[@]}"; do
    echo "== $name ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
    # The reports quote this as the command that reproduces them.
    note=()
    [[ -n ${PERF_NOTE:-} ]] && note=(--note "$PERF_NOTE")
    args=""
    if (($#)); then args=$(printf ' %q' "$@"); fi
    if HAWSER_PERF_COMMAND="scripts/perf.sh $name$args" \
        HAWSER_BIN="$target/release/hawser" \
        "$target/release/hawser-perf" scenario "$name" --out "$out" "${note[@]}" "$@"; then
        :
    else
        failed+=("$name")
    fi
done
echo "reports in $out/: $(for n in "${selected[@]}"; do printf '%s.md ' "$n"; done)"
if ((${#failed[@]})); then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
