#!/usr/bin/env bash
# The test command of the README: every crate's unit, property, simulation and loopback
# integration tests. Long stress runs are #[ignore]d: run them with
#   cargo test --workspace --release -- --ignored
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
