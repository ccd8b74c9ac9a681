#!/usr/bin/env bash
# Runs flowfold over every capture of a corpus (default ../shared/pcaps) and
# checks, per file: no crash and no hang (timeout), a documented exit status
# (0 ok, 3 not a capture, 4 cut short), and that every packet read is either
# accounted into flows or counted under a named skip reason:
#   packets == decoded + skipped, and the flows exported carry `decoded` packets
#   (with --tunnels both, decoded + tunnel_decapsulated: those are in two flows).
# A sanitizer build (FLOWFOLD_SANITIZE) is welcome: any AddressSanitizer or
# UndefinedBehaviorSanitizer report fails the file.
# Usage: scripts/corpus-check.sh FLOWFOLD_BIN [CORPUS_DIR]
#   CORPUS_ARGS="--tunnels inner" adds options to every run.
set -uo pipefail
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
read -r -a extra_args <<< "${CORPUS_ARGS:-}"
bin="${1:?usage: corpus-check.sh FLOWFOLD_BIN [CORPUS_DIR]}"
corpus="${2:-$(cd "$(dirname "$0")/.." && pwd)/../shared/pcaps}"
[ -d "$corpus" ] || { echo "corpus-check: no corpus at $corpus, skipped"; exit 0; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
files=0; failed=0
while IFS= read -r -d '' f; do
  files=$((files + 1))
  timeout 120 "$bin" -r "$f" --json="$work/flows.json" --log-level info "${extra_args[@]}" >/dev/null 2>"$work/err"
  rc=$?
  reason=""
  case $rc in
    0|4) ;;
    3) : ;;  # not a capture libpcap can open: reported, nothing to account
    124) reason="hung (killed after 120 s)" ;;
    *) reason="exit status $rc" ;;
  esac
  if grep -qE 'runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer' "$work/err"; then
    reason="sanitizer report"
  fi
  if [ -z "$reason" ] && [ "$rc" != 3 ]; then
    stats=$(grep -o 'stats:.*' "$work/err" | head -1 | cut -d'|' -f1)
    get() { echo "$stats" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k {print $2}'; }
    packets=$(get packets); decoded=$(get decoded); skipped=$(get skipped)
    accounted=$decoded
    case " ${extra_args[*]:-} " in
      *" --tunnels both "*|*" --tunnels=both "*) accounted=$((decoded + $(get tunnel_decapsulated | grep . || echo 0))) ;;
    esac
    exported=$(awk -F'"packets":' 'NF>1 {split($2,a,","); s+=a[1]} END {print s+0}' "$work/flows.json")
    if [ -z "$packets" ] || [ $((decoded + skipped)) -ne "$packets" ]; then
      reason="packets=$packets but decoded+skipped=$((decoded + skipped))"
    elif [ "$exported" -ne "$accounted" ]; then
      reason="decoded=$decoded (accounted $accounted) but flows carry $exported packets"
    fi
  fi
  rm -f "$work/flows.json"
  if [ -n "$reason" ]; then
    failed=$((failed + 1))
    echo "FAIL ${f#"$corpus"/}: $reason"
    sed 's/^/    /' "$work/err" | head -5
  fi
done < <(find "$corpus" -type f ! -name '*.md' ! -name '*.tsv' -print0 | sort -z)
echo "corpus-check: $((files - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
