#!/bin/sh
# Runs every fuzz target for SECONDS each (default 60), JOBS at a time (default 1), on the
# corpus kept in fuzz/corpus/<target>/, and prints each target's last libFuzzer status line
# (executions, coverage, corpus size) and whether it found a crash. Needs nightly and
# cargo-fuzz (docs/fuzzing.md):
#
#     fuzz/run.sh 300 2        # every target for 5 minutes, two at a time
#
# New inputs that add coverage go to fuzz/corpus/<target>/ (minimize with `cargo fuzz cmin`
# before committing); crashes go to fuzz/artifacts/<target>/. Logs: fuzz/logs/<target>.log.
set -u
SECONDS_EACH=${1:-60}
JOBS=${2:-1}
TARGETS=${TARGETS:-"pastry_wire past_message link_frames link_handshake signaling_json"}
cd "$(dirname "$0")" || exit 1
mkdir -p logs
cargo +nightly fuzz build || exit 1

run() {
    mkdir -p "corpus/$1"
    # -rss_limit_mb: each input's memory is bounded; -timeout: no input may take 10 s.
    cargo +nightly fuzz run "$1" "corpus/$1" -- -max_total_time="$SECONDS_EACH" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 >"logs/$1.log" 2>&1
    echo "$?" >"logs/$1.status"
}

set -- $TARGETS
while [ $# -gt 0 ]; do
    batch=""
    i=0
    while [ $# -gt 0 ] && [ "$i" -lt "$JOBS" ]; do
        run "$1" &
        batch="$batch $1"
        shift
        i=$((i + 1))
    done
    wait
done

status=0
for t in $TARGETS; do
    last=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -n 1)
    execs=$(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}')
    if [ "$(cat "logs/$t.status")" = 0 ]; then result="no crash"; else result="CRASH (see logs/$t.log, artifacts/$t/)"; status=1; fi
    printf '%-15s %s executions; %s; %s\n' "$t" "${execs:-?}" "$last" "$result"
done
exit $status
