#!/usr/bin/env bash
# Installs what hawser's tests and perf scenarios need beyond what cargo fetches.
#   scripts/setup.sh          everything the perf harness uses (iperf3, sockperf, rsync,
#                             OpenSSH client and server, openssl, ...)
#   scripts/setup.sh --ci     only what the default test suite needs (currently nothing)
set -euo pipefail

need_ci_only=false
[[ "${1:-}" == "--ci" ]] && need_ci_only=true

if $need_ci_only; then
    exit 0
fi

# TOOL:PACKAGE; sshd is looked for in /usr/sbin too (not on a non-root PATH).
missing=()
for entry in iperf3:iperf3 sockperf:sockperf rsync:rsync hyperfine:hyperfine \
    ssh:openssh-client scp:openssh-client ssh-keygen:openssh-client \
    sshd:openssh-server openssl:openssl; do
    tool=${entry%%:*} package=${entry#*:}
    if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$tool ]]; then
        [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}"
fi
