#!/usr/bin/env bash
# Fuzzes whole records read back through the store with libFuzzer.
#
#   Tools/RecordFuzz/run.sh [seconds] [runs]
#
# seconds: stop after this long (default 60; 0: no time limit). runs: stop after this many
# inputs (default: no limit). Tools/test.sh can call it as `Tools/RecordFuzz/run.sh 60`.
#
# Compiles Sources/CBORCoding as its own module and Sources/SessionStore together with
# Tools/RecordFuzz/FuzzRecords.swift into one executable (swiftc -sanitize=fuzzer,address,
# linking -llmdb; `swift build -Xswiftc -sanitize=fuzzer` does not link here), writes valid
# records of every fuzzed type as the seed corpus (with Date records holding the decoder's
# date seeds), and runs. Each input is planted under
# one record key with a raw mdb_put, then loaded through SessionStore as each type.
# Everything goes to .build-recordfuzz/ at the repository root (or $RECORDFUZZ_OUT). Exits nonzero if the fuzzer
# finds a crash, a sanitizer error or an unexpected error; the input that caused it is
# saved in .build-recordfuzz/artifacts/.
set -euo pipefail

seconds="${1:-60}"
runs="${2:--1}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${RECORDFUZZ_OUT:-$root/.build-recordfuzz}"
swiftc="${SWIFTC:-}"
if [[ -z "$swiftc" ]]; then
    if command -v swiftc >/dev/null 2>&1; then swiftc="swiftc"; else swiftc="/opt/swift/usr/bin/swiftc"; fi
fi

source "$root/Tools/Fuzz/libfuzzer.sh"
mkdir -p "$out/corpus" "$out/artifacts" "$out/module-cache" "$out/modules"

echo "Compiling CBORCoding..."
"$swiftc" -sanitize=fuzzer,address -parse-as-library -O \
    -module-name CBORCoding -module-cache-path "$out/module-cache" \
    -emit-module -emit-module-path "$out/modules/CBORCoding.swiftmodule" \
    -emit-library -static -o "$out/libCBORCoding.a" \
    "$root"/Sources/CBORCoding/*.swift 2> >(grep -v "Cannot export local symbol" >&2)

echo "Compiling the fuzz target..."
mapfile -t store_sources < <(find "$root/Sources/SessionStore" -name '*.swift' | sort)
"$swiftc" -sanitize=fuzzer,address -parse-as-library -O \
    -module-name RecordFuzz -package-name SessionStore -module-cache-path "$out/module-cache" \
    -I "$out/modules" -I "$root/Sources/CLMDB" \
    "${store_sources[@]}" "$root/Tools/RecordFuzz/FuzzRecords.swift" \
    "$out/libCBORCoding.a" -llmdb \
    -o "$out/fuzz-records" 2> >(grep -v "Cannot export local symbol" >&2)

echo "Writing the seed corpus (valid records)..."
RECORDFUZZ_WRITE_SEEDS="$out/corpus" "$out/fuzz-records"
# And Date records whose values are the decoder seeds that once trapped (bignum and
# non-finite dates): the record header of a Date, then the seed's CBOR item.
date_header="d953538301$(printf 'Foundation.Date' | od -An -tx1 | tr -d ' \n' | sed 's/^/6f/')"
for file in "$root"/Tools/Fuzz/Seeds/date-*.hex; do
    { echo "$date_header"; grep -v '^#' "$file" || true; } | tr -d ' \n\r\t' | perl -ne 'print pack("H*", $_)' > "$out/corpus/record-$(basename "$file" .hex)"
done

limit=()
if [[ "$seconds" != "0" ]]; then limit+=(-max_total_time="$seconds"); fi
echo "Fuzzing ($( [[ "$seconds" != "0" ]] && echo "${seconds}s" || echo "no time limit" ), runs ${runs})..."
run_libfuzzer "$out/fuzz-records" "$out" "${limit[@]}" -runs="$runs"
echo "No crash. Full log: $out/last-run.log"
