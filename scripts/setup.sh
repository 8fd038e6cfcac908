#!/usr/bin/env bash
# Installs what hawser's tests and perf scenarios need beyond what cargo fetches.
#   scripts/setup.sh          everything the perf harness uses (iperf3, sockperf, rsync, ...)
#   scripts/setup.sh --ci     only what the default test suite needs (currently nothing)
set -euo pipefail

need_ci_only=false
[[ "${1:-}" == "--ci" ]] && need_ci_only=true

if $need_ci_only; then
    exit 0
fi

missing=()
for tool in iperf3 sockperf rsync hyperfine; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}"
fi
