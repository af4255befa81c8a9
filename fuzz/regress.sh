#!/usr/bin/env bash
# Run every file of fuzz/corpus/TARGET and fuzz/regressions/TARGET through the
# regression build of each TARGET (build/fuzz-regress/TARGET, the harness with
# a plain main() instead of libFuzzer) and end with "N passed, N failed".
#
# Usage: fuzz/regress.sh TARGET...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

export TMPDIR=$PWD/build/fuzz-regress/tmp
# Print a stack with each UndefinedBehaviorSanitizer report, as ASan does.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
mkdir -p "$TMPDIR"

passed=0 failed=0
for t in "$@"; do
        dirs=(fuzz/corpus/"$t")
        [[ -d fuzz/regressions/$t ]] && dirs+=(fuzz/regressions/"$t")
        line=$(build/fuzz-regress/"$t" "${dirs[@]}" | tail -n 1)
        echo "$line"
        if [[ $line =~ ^$t:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
                passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2]))
        else
                echo "FAIL $t: the regression driver printed no summary" >&2
                failed=$((failed + 1))
        fi
done
rm -rf "$TMPDIR"
echo "$passed passed, $failed failed"
((failed == 0))
