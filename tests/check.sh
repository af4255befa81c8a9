#!/usr/bin/env bash
# Run every test tier of `make check`, show each tier's output, and end with one
# line that adds them up: "N passed, N failed, N skipped". The exit status is
# non-zero when any tier failed or exited non-zero.
#
# Each tier is a command given as one argument. Counts are read from the tier's
# last "N passed, N failed[, N skipped]" line, or from cmocka's "[  PASSED  ] N
# test(s)" and "N FAILED TEST(S)" lines; a tier that prints neither counts as one
# test, passed or failed by its exit status.
set -uo pipefail

passed=0 failed=0 skipped=0 status=0
for tier in "$@"; do
        echo "=== $tier"
        log=$(mktemp)
        bash -c "$tier" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
        if [[ -n $line ]]; then
                p=$(sed -E 's/.*\b([0-9]+) passed.*/\1/' <<<"$line")
                f=$(sed -E 's/.*\b([0-9]+) failed.*/\1/' <<<"$line")
                s=0
                [[ $line =~ ([0-9]+)\ skipped ]] && s=${BASH_REMATCH[1]}
        elif grep -q '^\[  PASSED  \]\|FAILED TEST' "$log"; then
                p=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$log" | awk '{s += $NF} END {print s + 0}')
                f=$(grep -Eo '^ ?[0-9]+ FAILED TEST' "$log" | awk '{s += $1} END {print s + 0}')
                s=0
        else
                p=$((rc == 0 ? 1 : 0)) f=$((rc == 0 ? 0 : 1)) s=0
        fi
        if ((rc != 0 && f == 0)); then
                f=1 # a tier that failed without counting its failure
        fi
        passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
        ((rc != 0)) && status=1
        rm -f "$log"
done
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
