#!/usr/bin/env bash
# Runs a libFuzzer binary for both fuzz scripts of this repository (sourced, not run):
#   run_libfuzzer BINARY OUT [extra libFuzzer flags...]
# runs BINARY on OUT/corpus with the shared limits, keeps the full log in OUT/last-run.log
# (printing it without its progress lines), and exits nonzero when the fuzzer found a crash,
# a sanitizer error or a failed check (the input is saved in OUT/artifacts/).
run_libfuzzer() {
    local binary="$1" out="$2"
    shift 2
    set +e
    "$binary" "$out/corpus" "$@" \
        -max_len=4096 \
        -timeout=10 \
        -rss_limit_mb=2048 \
        -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/" 2>&1 | tee "$out/last-run.log" | grep -vE '^#[0-9]+.*(NEW|REDUCE|pulse)'
    local status=${PIPESTATUS[0]}
    set -e
    if [[ $status -ne 0 ]]; then
        echo "FUZZING FOUND A PROBLEM (exit $status); see $out/last-run.log and $out/artifacts/" >&2
        exit "$status"
    fi
}
