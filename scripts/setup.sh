#!/usr/bin/env bash
# Installs what hawser's tests and perf scenarios need beyond what cargo fetches.
#   scripts/setup.sh          everything the perf harness uses (iperf3, sockperf, rsync,
#                             OpenSSH client and server, openssl, and for the messaging
#                             scenario nats-server, rabbitmq-server, libzmq3-dev, pkg-config;
#                             uftp and uftpd for the lfn-loss scenario's UDP peer; xrootd
#                             and xrdcp for the replicate and lfn-10g-50ms scenarios' XRootD
#                             peer)
#   scripts/setup.sh --ci     only what the default test suite needs: promtool (Debian's
#                             prometheus package), which checks `serve --metrics` output
set -euo pipefail

need_ci_only=false
[[ "${1:-}" == "--ci" ]] && need_ci_only=true

# TOOL:PACKAGE; sshd is looked for in /usr/sbin too (not on a non-root PATH).
tools=(promtool:prometheus)
if ! $need_ci_only; then
    tools+=(iperf3:iperf3 sockperf:sockperf rsync:rsync hyperfine:hyperfine
        ssh:openssh-client scp:openssh-client ssh-keygen:openssh-client
        sshd:openssh-server openssl:openssl
        nats-server:nats-server rabbitmq-server:rabbitmq-server pkg-config:pkg-config
        uftp:uftp uftpd:uftp
        xrootd:xrootd-server xrdcp:xrootd-client)
fi
missing=()
for entry in "${tools[@]}"; do
    tool=${entry%%:*} package=${entry#*:}
    if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$tool ]]; then
        [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
    fi
done
# libzmq's headers and pkg-config file: the messaging scenario's ZeroMQ client links it.
if ! $need_ci_only && ! pkg-config --exists libzmq 2>/dev/null \
    && ! dpkg -s libzmq3-dev >/dev/null 2>&1; then
    missing+=(libzmq3-dev)
fi
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""
    APT_OPTIONS=()
    # As root apt's download sandbox user (_apt) may not be able to write its partial
    # directory in a container; downloading as root avoids that.
    if [[ $(id -u) -eq 0 ]]; then
        APT_OPTIONS=(-o APT::Sandbox::User=root)
    else
        SUDO="sudo"
    fi
    $SUDO apt-get "${APT_OPTIONS[@]}" update -qq
    $SUDO apt-get "${APT_OPTIONS[@]}" install -y -qq "${missing[@]}"
fi
