#!/usr/bin/env bash
# Fuzz each TARGET with libFuzzer for SECONDS, one after another.
#
# Usage: fuzz/run.sh SECONDS "EXTRA_LIBFUZZER_ARGS" TARGET...
#
# Each target runs on build/fuzz/corpus/TARGET, which starts as a copy of
# fuzz/corpus/TARGET and keeps what libFuzzer adds across runs, so the
# committed corpus stays small. Crash, leak and timeout inputs go to
# build/fuzz/artifacts/TARGET/ and the log to build/fuzz/logs/TARGET.log.
# A target that finds something does not stop the others; the exit status is 1
# when any target did.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if (($# < 3)); then
        echo "usage: $0 SECONDS EXTRA_LIBFUZZER_ARGS TARGET..." >&2
        exit 2
fi
seconds=$1 extra=$2
shift 2

# Harness scratch directories live under build/ so that a crashed run, which
# skips their removal, leaves nothing in /tmp.
export TMPDIR=$PWD/build/fuzz/tmp
# Print a stack with each UndefinedBehaviorSanitizer report, as ASan does.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
mkdir -p "$TMPDIR" build/fuzz/logs

failed=()
for t in "$@"; do
        work=build/fuzz/corpus/$t artifacts=build/fuzz/artifacts/$t
        mkdir -p "$work" "$artifacts"
        cp fuzz/corpus/"$t"/* "$work"/
        args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
              -artifact_prefix="$artifacts"/ -print_final_stats=1)
        [[ -f fuzz/dict/$t.dict ]] && args+=(-dict=fuzz/dict/"$t".dict)
        echo "=== $t: ${seconds} s, corpus $work, artifacts $artifacts/"
        # shellcheck disable=SC2086 # extra holds several options on purpose
        build/fuzz/"$t" "${args[@]}" $extra "$work" 2>&1 | tee build/fuzz/logs/"$t".log
        if ((PIPESTATUS[0] != 0)); then
                failed+=("$t")
        fi
done

if ((${#failed[@]})); then
        echo "fuzz: ${failed[*]} failed. The crash, leak and timeout inputs are in build/fuzz/artifacts/." >&2
        exit 1
fi
echo "fuzz: no findings in $*"
