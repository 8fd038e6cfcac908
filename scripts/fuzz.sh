#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ and engine/{replicate,dmp,dtp}/fuzz/ (or those named) for SECONDS each, one at a time, on the stable toolchain (no sanitizer), from
# its seed corpus (its fuzz crate's corpus/), and
# prints one summary line per target: runs, wall time and exec/s from libFuzzer's final
# stats. Exits non-zero if a target crashed, leaving the artifact path in the output.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# FUZZ_RUNS=N also stops each target after N executions (whichever comes first), and
# FUZZ_SCRATCH=DIR keeps the logs and the corpus units the runs find in DIR (default: a
# new directory under /tmp). New units go there, never into fuzz/corpus/: the corpora in
# git hold small, meaningful seeds only.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    targets=()
    for file in fuzz/fuzz_targets/*.rs engine/{replicate,dmp,dtp}/fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$file" .rs)")
    done
fi

# The fuzz crate holding `target`: the workspace's (decoders and the session, linking only
# wire and session) or an engine crate's own.
fuzz_dir() {
    for crate in replicate dmp dtp; do
        if [[ -f engine/$crate/fuzz/fuzz_targets/$1.rs ]]; then
            echo "engine/$crate/fuzz"
            return
        fi
    done
    echo fuzz
}

scratch=${FUZZ_SCRATCH:-$(mktemp -d /tmp/hawser-fuzz.XXXXXX)}
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
echo "fuzz: ${#targets[@]} targets, ${seconds}s each${FUZZ_RUNS:+ or $FUZZ_RUNS runs}; logs and new units in $scratch"

# Build everything first, so the time limits are spent fuzzing.
for target in "${targets[@]}"; do
    (cd "$(fuzz_dir "$target")" && cargo fuzz build -s none "$target")
done

failed=0
summary=()
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    log="$scratch/$target.log"
    dir=$(fuzz_dir "$target")
    mkdir -p "$corpus" "$dir/corpus/$target"
    args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=60)
    if [[ -n ${FUZZ_RUNS:-} ]]; then
        args+=(-runs="$FUZZ_RUNS")
    fi
    start=$(date +%s)
    status=0
    # The scratch corpus comes first: libFuzzer writes the units it finds there.
    (cd "$dir" && cargo fuzz run -s none "$target" "$corpus" "corpus/$target" -- "${args[@]}") \
        >"$log" 2>&1 || status=$?
    wall=$(($(date +%s) - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [[ -z $runs ]]; then
        # No final stats (a crash): the last "Done N runs" or status line.
        runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p; s/^#\([0-9]*\)\t.*/\1/p' "$log" | tail -n 1)
    fi
    line=$(printf '%-18s %12s runs %6ss %10s exec/s' "$target" "${runs:-?}" "$wall" "${rate:-?}")
    if [[ $status -ne 0 ]]; then
        failed=1
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        line="$line  CRASHED (exit $status): artifact ${artifact:-none}, log $log"
        tail -n 40 "$log"
    fi
    echo "$line"
    summary+=("$line")
done

echo "fuzz summary:"
printf '  %s\n' "${summary[@]}"
exit "$failed"
