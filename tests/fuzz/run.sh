#!/usr/bin/env bash
# Runs each fuzz target for SECONDS seconds, one after the other, and fails
# if any of them finds a crash (or a leak, an uncaught exception, a timeout).
#
#   tests/fuzz/run.sh SECONDS [TARGET...]
#
# BUILD_DIR (default ./build-fuzz) is a build configured with
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DFLOWFOLD_FUZZ=ON -DFLOWFOLD_SANITIZE=ON
# and the fuzzers are built first (cmake --build BUILD_DIR --target fuzzers,
# JOBS parallel jobs, default 1). Seeds come from make_seeds.sh (generated into
# BUILD_DIR/fuzz-seeds once); the growing corpus is kept in
# BUILD_DIR/fuzz-corpus/TARGET and crash inputs go to BUILD_DIR/fuzz-artifacts.
# Before fuzzing, each target replays tests/fuzz/regressions/TARGET (inputs of
# bugs found and fixed). One process per target, no -jobs/-workers: the
# machine's other work is left alone.
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [TARGET...]" >&2
  exit 2
fi
seconds="$1"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(realpath -m "${BUILD_DIR:-build-fuzz}")"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(fuzz_decoder fuzz_config fuzz_netflow9_roundtrip fuzz_ipfix_roundtrip fuzz_flowcache fuzz_biflow_pairer fuzz_ring_files fuzz_filter_paths fuzz_dpi)
fi

cmake --build "$build" -j"${JOBS:-1}" --target fuzzers
[[ -d "$build/fuzz-seeds" ]] || bash "$here/make_seeds.sh" "$build/fuzz-seeds"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

failed=()
summary=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  corpus="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  extra=()
  [[ -f "$here/$t.dict" ]] && extra+=("-dict=$here/$t.dict")

  if [[ -d "$here/regressions/$t" ]] && compgen -G "$here/regressions/$t/*" >/dev/null; then
    echo "== $t: regression inputs"
    if ! "$bin" -runs=1 "$here/regressions/$t"/* >"$artifacts/regressions.log" 2>&1; then
      tail -n 40 "$artifacts/regressions.log"
      failed+=("$t (regression input)")
      continue
    fi
  fi

  echo "== $t: fuzzing for ${seconds}s"
  log="$artifacts/fuzz.log"
  status=0
  "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${extra[@]}" "$corpus" "$build/fuzz-seeds/$t" >"$log" 2>&1 || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  cov="$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)"
  summary+=("$(printf '%-26s %10s execs  %s  exit %d' "$t" "${execs:-?}" "$cov" "$status")")
  if [[ $status -ne 0 ]]; then
    tail -n 60 "$log"
    failed+=("$t")
  fi
done

echo
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAILED: ${failed[*]} (inputs and logs in $build/fuzz-artifacts)" >&2
  exit 1
fi
echo "all fuzz targets ran ${seconds}s without a crash"
