#!/usr/bin/env bash
# Fuzzes the CBOR decoder with libFuzzer for N seconds (default 60).
#
#   Tools/Fuzz/run.sh [seconds]
#
# Compiles Tools/Fuzz/FuzzDecoder.swift together with Sources/CBORCoding/*.swift
# (swiftc -sanitize=fuzzer,address: `swift build -Xswiftc -sanitize=fuzzer` does not
# link here), seeds the corpus from Fixtures/CBOR and Tools/Fuzz/Seeds (inputs of the
# classes that once crashed the decoder: bignum and non-finite dates, integers at the
# edges of Double and Decimal), and runs. Everything goes to
# .build-fuzz/ at the repository root. Exits nonzero if the fuzzer finds a crash,
# a sanitizer error or a failed check; the input that caused it is saved in
# .build-fuzz/artifacts/.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.build-fuzz"
swiftc="${SWIFTC:-}"
if [[ -z "$swiftc" ]]; then
    if command -v swiftc >/dev/null 2>&1; then swiftc="swiftc"; else swiftc="/opt/swift/usr/bin/swiftc"; fi
fi

source "$root/Tools/Fuzz/libfuzzer.sh"
mkdir -p "$out/corpus" "$out/artifacts" "$out/module-cache"

echo "Compiling the fuzz target..."
"$swiftc" -sanitize=fuzzer,address -parse-as-library -O \
    -module-name CBORFuzz -module-cache-path "$out/module-cache" \
    "$root"/Sources/CBORCoding/*.swift "$root/Tools/Fuzz/FuzzDecoder.swift" \
    -o "$out/fuzz-decoder" 2> >(grep -v "Cannot export local symbol" >&2)

echo "Seeding the corpus from Fixtures/CBOR and Tools/Fuzz/Seeds..."
for file in "$root"/Fixtures/CBOR/malformed/*.hex "$root"/Fixtures/CBOR/wellformed/*.hex "$root"/Tools/Fuzz/Seeds/*.hex; do
    name="$(basename "$(dirname "$file")")-$(basename "$file" .hex)"
    { grep -v '^#' "$file" || true; } | tr -d ' \n\r\t' | perl -ne 'print pack("H*", $_)' > "$out/corpus/$name"
done

echo "Fuzzing for ${seconds}s..."
run_libfuzzer "$out/fuzz-decoder" "$out" -max_total_time="$seconds"
echo "No crash in ${seconds}s. Full log: $out/last-run.log"
