#!/usr/bin/env bash
# Runs SessionStore's whole test suite, installing LMDB (liblmdb-dev) first when missing:
#   1. the unit and integration tests (swift test);
#   2. the concurrency tests and the crash scenarios (10 kill and 10 power-loss iterations)
#      under ThreadSanitizer;
#   3. the CBOR decoder fuzzer and the record fuzzer (hostile records loaded through the
#      store) for FUZZ_SECONDS each (default 60).
# Set SKIP_TSAN=1 or FUZZ_SECONDS=0 to leave a stage out locally.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh

echo "== swift test"
swift test

if [ "${SKIP_TSAN:-0}" != "1" ]; then
    echo "== swift test --sanitize=thread (concurrency tests)"
    swift test --sanitize=thread --scratch-path .build-tsan --filter 'ConcurrencyModelTests|CacheTests|ScopeSemanticsTests|MapGrowthTests|WriterTests|WriterLockTests|PersistenceTests'
    echo "== crash scenarios under ThreadSanitizer (10 kill and 10 power-loss iterations)"
    SESSIONSTORE_KILL_ITERATIONS=10 SESSIONSTORE_POWER_ITERATIONS=10 swift test --sanitize=thread --scratch-path .build-tsan --filter IntegrationTests
fi

if [ "${FUZZ_SECONDS:-60}" != "0" ]; then
    echo "== fuzzing the CBOR decoder for ${FUZZ_SECONDS:-60}s"
    bash Tools/Fuzz/run.sh "${FUZZ_SECONDS:-60}"
    echo "== fuzzing whole records read back through the store for ${FUZZ_SECONDS:-60}s"
    bash Tools/RecordFuzz/run.sh "${FUZZ_SECONDS:-60}"
fi
echo "== all tests passed"
