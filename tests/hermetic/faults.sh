#!/usr/bin/env bash
# Fault-injection tests for distill: downloads that fail, stall or lie, a full
# disk, signals during a download, concurrent builds sharing a cache, the
# limits.file_size cap, unsigned sources, and one build under valgrind.
#
# A signed fixture repository is served on 127.0.0.1 by faulty_server.py, whose
# per-path fault rules this script rewrites before each case. The server's
# request log records every attempt distill makes. Nothing leaves the machine.
# Run from anywhere after `make build/distill build/distill-san`:
#
#     tests/hermetic/faults.sh
#     DISTILL=build/distill tests/hermetic/faults.sh   (binary under test; default build/distill-san)
#     DISTILL_PLAIN=build/distill                      (binary run under valgrind; the default)
#     HERMETIC_KEEP=1 tests/hermetic/faults.sh         (keep the work directory)
#
# As root, builds run as the unprivileged user distill-test (created when missing)
# and a full disk is a small tmpfs; as any other user, builds run as that user and
# `ulimit -f` stands in for the full disk.
#
# The last line is "N passed, N failed"; the exit status is non-zero when any check
# failed. Everything is written below one mktemp -d directory that the EXIT trap
# unmounts and removes, together with the server and gpg-agent it started.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/hermetic/lib.sh
source "$HERE/lib.sh"
hermetic_init HERMETIC_KEEP

DISTILL_PLAIN=$(realpath -m "${DISTILL_PLAIN:-$TOP/build/distill}")
BUILD_USER=distill-test
# Seconds the valgrind run may take: valgrind slows distill down many times.
VALGRIND_TIMEOUT=3600
# Attempts distill makes for a download that keeps failing transiently (the first
# request and three retries).
MAX_ATTEMPTS=4
# Seconds the stall cases give distill (DISTILL_HTTP_TIMEOUT) and the server's
# silence, which is much longer, so only distill's own timeout ends the request.
STALL_TIMEOUT=2
SERVER_STALL=600
# The stall-once build runs under this test timeout in seconds. It is below the
# 60 s default stall timeout, so a build that ignored DISTILL_HTTP_TIMEOUT would be
# stopped by it. It is no measure of speed.
STALL_RUN_TIMEOUT=55
# Bytes of random (incompressible) data in fx-big and of the tmpfs that must not
# hold it.
BIG_BYTES=$((3 * 1024 * 1024))
SMALL_FS=2M
LARGE_FS=64M
# The tmpfs mount points that the EXIT trap unmounts.
MOUNTS=()

# The EXIT trap calls this before it removes the work directory.
script_cleanup() {
        local mount_point
        for mount_point in "${MOUNTS[@]}"; do
                timeout 60 umount "$mount_point" || printf 'faults.sh: cannot unmount %s\n' "$mount_point" >&2
        done
}

# --- running distill ------------------------------------------------------------

# distill_command LABEL TIMEOUT [VAR=VALUE]... -- PROGRAM ARG...
# Create $OUT/LABEL and $WORK/tmp/LABEL for the build user, and set COMMAND (see
# set_command) to run PROGRAM as that user with TMPDIR $WORK/tmp/LABEL.
distill_command() {
        local label=$1 limit=$2
        shift 2
        mkdir -p "$OUT/$label" "$WORK/tmp/$label"
        chown "$RUN_OWNER" "$OUT/$label" "$WORK/tmp/$label"
        set_command "$limit" HOME="$RUN_HOME" TMPDIR="$WORK/tmp/$label" XDG_CACHE_HOME="$RUN_HOME/.cache" "$@"
}

# run_program LABEL TIMEOUT [VAR=VALUE]... -- PROGRAM ARG...
# Run PROGRAM (see distill_command) in $OUT/LABEL, recording stdout, stderr and the
# exit status as $LOGS/LABEL.{out,err,rc}.
run_program() {
        local label=$1
        distill_command "$@"
        run_command "$label" "$OUT/$label"
}

# run_distill LABEL [VAR=VALUE]... -- ARG...: run $DISTILL with ARGs.
run_distill() {
        local label=$1
        shift
        split_env_args "$@"
        run_program "$label" "$RUN_TIMEOUT" "${ENV_ARGS[@]}" -- "$DISTILL" "${ARGS[@]}"
}

# error_line_matches LABEL TEXT REGEX: one `distill: error:` line of run LABEL
# contains TEXT and matches the extended REGEX (case-insensitive).
error_line_matches() {
        local label=$1 text=$2 regex=$3
        if ! grep -F 'distill: error:' "$LOGS/$label.err" | grep -F -- "$text" | grep -qiE -- "$regex"; then
                printf 'no error line contains %q and matches /%s/. stderr:\n' "$text" "$regex"
                cat "$LOGS/$label.err"
                return 1
        fi
}

# --- files a run leaves ---------------------------------------------------------

# dir_empty DIR: DIR exists and has no entries.
dir_empty() {
        local left
        if [[ ! -d $1 ]]; then
                printf '%s does not exist\n' "$1"
                return 1
        fi
        left=$(find "$1" -mindepth 1 -printf '%P\n')
        if [[ -n $left ]]; then
                printf 'left in %s:\n%s\n' "$1" "$left"
                return 1
        fi
}

# cache_tmp_empty CACHE: no download is left in CACHE/tmp.
cache_tmp_empty() {
        dir_empty "$1/tmp"
}

# no_cache_entry CACHE SHA256: CACHE/sha256/SHA256 does not exist.
no_cache_entry() {
        if [[ -e $1/sha256/$2 ]]; then
                printf 'cache entry %s exists (%s bytes)\n' "$1/sha256/$2" "$(stat -c %s "$1/sha256/$2")"
                return 1
        fi
}

# has_cache_entry CACHE SHA256: the entry exists and its content has that SHA256.
has_cache_entry() {
        if [[ ! -f $1/sha256/$2 ]]; then
                printf 'no cache entry %s\n' "$1/sha256/$2"
                return 1
        fi
        cache_entries_intact "$1"
}

# cache_entries_intact CACHE: every file in CACHE/sha256 has the SHA256 it is named
# after, so none is a partial download.
cache_entries_intact() {
        local file actual bad=0
        [[ -d $1/sha256 ]] || return 0
        for file in "$1"/sha256/*; do
                [[ -e $file ]] || continue
                actual=$(sha256sum "$file" | cut -d' ' -f1)
                if [[ $actual != "$(basename "$file")" ]]; then
                        printf 'cache entry %s has SHA256 %s (%s bytes)\n' "$file" "$actual" "$(stat -c %s "$file")"
                        bad=1
                fi
        done
        return "$bad"
}

# no_output_file DIR NAME: DIR contains neither NAME nor NAME.tmp-*.
no_output_file() {
        local dir=$1 name=$2 left
        left=$(find "$dir" -maxdepth 1 \( -name "$name" -o -name "$name.tmp-*" \) -printf '%P\n')
        if [[ -n $left ]]; then
                printf 'left in %s:\n%s\n' "$dir" "$left"
                return 1
        fi
}

# no_temporary_outputs DIR: DIR contains no *.tmp-* file.
no_temporary_outputs() {
        local left
        left=$(find "$1" -maxdepth 1 -name '*.tmp-*' -printf '%P\n')
        if [[ -n $left ]]; then
                printf 'left in %s:\n%s\n' "$1" "$left"
                return 1
        fi
}

# tmpdir_clean LABEL: the run left nothing in its TMPDIR.
tmpdir_clean() {
        dir_empty "$WORK/tmp/$1"
}

# failed_cleanly LABEL CACHE OUTPUT-NAME: what every failed build must leave: no
# download in CACHE/tmp, no partial cache entry, no output, an empty TMPDIR.
failed_cleanly() {
        local label=$1 cache=$2 name=$3
        check "$label: CACHE/tmp is empty" cache_tmp_empty "$cache"
        check "$label: cache entries are complete" cache_entries_intact "$cache"
        check "$label: no output file" no_output_file "$OUT/$label" "$name"
        check "$label: TMPDIR is empty" tmpdir_clean "$label"
        check "$label: no sanitizer report" no_sanitizer_report "$label"
}

# --- the faulty server ----------------------------------------------------------

# set_faults JSON: replace the server's fault rules and empty its request log. The
# rules file is replaced by rename, which also resets the server's counters.
set_faults() {
        printf '%s\n' "$1" >"$WORK/rules.json.new"
        mv "$WORK/rules.json.new" "$WORK/rules.json"
        : >"$WORK/requests.log"
}

# requests_for SUFFIX: how many logged requests have a path ending in SUFFIX.
requests_for() {
        awk -F'\t' -v suffix="$1" '
                length($1) >= length(suffix) && substr($1, length($1) - length(suffix) + 1) == suffix { n++ }
                END { print n + 0 }' "$WORK/requests.log"
}

# request_count SUFFIX EXPECTED: the log has EXPECTED requests for SUFFIX.
request_count() {
        local actual
        actual=$(requests_for "$1")
        if [[ $actual != "$2" ]]; then
                printf '%s requests for *%s, expected %s. request log:\n' "$actual" "$1" "$2"
                cat "$WORK/requests.log"
                return 1
        fi
}

start_server() {
        set_faults '{}'
        python3 -u "$HERE/faulty_server.py" --directory "$WORK/www" \
                --rules "$WORK/rules.json" --log "$WORK/requests.log" \
                >"$WORK/server.out" 2>"$WORK/server.err" &
        SERVER_PID=$!
        wait_for_server faulty_server_port "$(repo_path fixture)/dists/$FX_SUITE/Release" \
                "$WORK/server.out" "$WORK/server.err"
        BASE_URL=$SERVER
        # The probe above is no request of distill's.
        : >"$WORK/requests.log"
}

# faulty_server_port: faulty_server.py prints its port as its first line.
faulty_server_port() {
        head -n 1 "$WORK/server.out"
}

# repo_path NAME: the URL path of repository NAME, ending in the snapshot timestamp.
repo_path() {
        printf '/archive/%s/%s' "$1" "$FX_SNAPSHOT"
}

repo_url() {
        printf '%s%s' "$BASE_URL" "$(repo_path "$1")"
}

repo_dir() {
        printf '%s/www%s' "$WORK" "$(repo_path "$1")"
}

# pool_path NAME VERSION ARCH: the .deb's path below the repository root.
pool_path() {
        printf 'pool/main/%s/%s/%s_%s_%s.deb' "${1:0:1}" "$1" "$1" "$2" "$3"
}

# deb_sha256 NAME VERSION ARCH: the SHA256 of the fixture .deb, which the index lists.
deb_sha256() {
        sha256sum "$(repo_dir fixture)/$(pool_path "$@")" | cut -d' ' -f1
}

# --- setup ----------------------------------------------------------------------

setup_workdir() {
        make_workdir
        # The build user must reach the specs, the keyrings and its own directories.
        chmod 0755 "$WORK"
        CACHES=$WORK/caches
        RUN_HOME=$WORK/home
        mkdir -p "$CACHES" "$RUN_HOME" "$WORK/tmp" "$WORK/specs" "$WORK/keys" "$WORK/www"
}

prepare_build_user() {
        setup_build_user "$BUILD_USER"
        chown -R "$RUN_OWNER" "$OUT" "$CACHES" "$RUN_HOME" "$WORK/tmp"
        require_runnable "$DISTILL" "$DISTILL_PLAIN"
        printf 'distill: %s, run as %s; valgrind runs %s\n' "$DISTILL" "${RUN_OWNER%%:*}" "$DISTILL_PLAIN"
}

# new_cache NAME: an empty cache directory owned by the build user; prints its path.
new_cache() {
        mkdir -p "$CACHES/$1"
        chown "$RUN_OWNER" "$CACHES/$1"
        printf '%s' "$CACHES/$1"
}

# build_fault_packages SRC DEBS BIG-BYTES: the packages only these tests need.
# fx-big ships BIG-BYTES of random data, which does not compress, so its .deb is
# bigger than the small tmpfs. fx-4k ships one file of exactly 4096 bytes.
build_fault_packages() {
        local src=$1 out=$2 big_bytes=$3
        local dir=$src/fx-big_1.0
        new_package "$dir" fx-big 1.0 amd64
        mkdir -p "$dir/usr/share/fx-big"
        head -c "$big_bytes" /dev/urandom >"$dir/usr/share/fx-big/random.bin"
        finish_package "$dir" none "$out/fx-big_1.0_amd64.deb"

        dir=$src/fx-4k_1.0
        new_package "$dir" fx-4k 1.0 amd64
        mkdir -p "$dir/usr/share/fx-4k"
        head -c 4096 /dev/zero | tr '\0' 'k' >"$dir/usr/share/fx-4k/data"
        finish_package "$dir" xz "$out/fx-4k_1.0_amd64.deb"
}

# build_packages SRC DEBS BIG-BYTES: fx-base, the fx-app dependency chain and the
# packages of build_fault_packages.
build_packages() {
        mkdir -p "$1" "$2"
        build_fx_base "$1" "$2"
        build_dependency_chain "$1" "$2"
        build_fault_packages "$1" "$2" "$3"
}

setup_fixtures() {
        in_child_bash 900 -- build_packages "$WORK/src" "$WORK/debs" "$BIG_BYTES"
        FIXTURE_FPR=$(in_child_bash 120 -- make_signing_key "$WORK/gnupg" distill-faults-fixture "$WORK/keys/fixture.gpg")
        in_child_bash 300 -- build_repository "$(repo_dir fixture)" "$WORK/debs" "$WORK/gnupg" "$FIXTURE_FPR"

        # The same archive with no signature at all, for a source marked unsigned.
        local unsigned
        unsigned=$(repo_dir unsigned)
        mkdir -p "$(dirname "$unsigned")"
        cp -a "$(repo_dir fixture)" "$unsigned"
        rm "$unsigned/dists/$FX_SUITE/InRelease" "$unsigned/dists/$FX_SUITE/Release.gpg"

        chmod -R a+rX "$WORK/www" "$WORK/keys"
}

# write_spec NAME REPO PACKAGES [EXTRA-YAML-LINE]...
# $WORK/specs/NAME/spec.yaml: one source (REPO, with the fixture keyring copied next
# to the spec) installing the comma-separated PACKAGES. REPO "unsigned" gets
# `unsigned: true` instead of a keyring.
write_spec() {
        local name=$1 repo=$2 packages=$3
        shift 3
        local dir=$WORK/specs/$name
        mkdir -p "$dir"
        cp "$WORK/keys/fixture.gpg" "$dir/fixture-keyring.gpg"
        {
                printf 'name: %s\n' "$name"
                printf 'sources:\n'
                printf '  - url: %s\n' "$(repo_url "$repo")"
                printf '    suites: [%s]\n' "$FX_SUITE"
                printf '    components: [main]\n'
                if [[ $repo == unsigned ]]; then
                        printf '    unsigned: true\n'
                else
                        printf '    keyring: fixture-keyring.gpg\n'
                fi
                printf 'architectures: [amd64]\n'
                printf 'packages: [%s]\n' "$packages"
                printf 'exclude: [fx-excluded]\n'
                local line
                for line in "$@"; do
                        printf '%s\n' "$line"
                done
        } >"$dir/spec.yaml"
        chmod -R a+rX "$dir"
}

spec() {
        printf '%s/specs/%s/spec.yaml' "$WORK" "$1"
}

write_specs() {
        write_spec basic fixture 'fx-base, fx-app'
        write_spec concurrent-a fixture 'fx-base, fx-app'
        write_spec concurrent-b fixture 'fx-app, fx-4k'
        write_spec big fixture 'fx-big'
        write_spec limit-1k fixture 'fx-4k' 'limits: {file_size: 1K}'
        write_spec limit-4k fixture 'fx-4k' 'limits: {file_size: 4K}'
        write_spec limit-64k fixture 'fx-4k' 'limits: {file_size: 64K}'
        write_spec unsigned unsigned 'fx-base'
        # fx-app pulls in fx-lib 1.2 (its first alternative) and fx-pre.
        FX_LIB=$(pool_path fx-lib 1.2 amd64)
        FX_LIB_SHA=$(deb_sha256 fx-lib 1.2 amd64)
        FX_PRE=$(pool_path fx-pre 1.0 amd64)
        FX_PRE_SHA=$(deb_sha256 fx-pre 1.0 amd64)
        FX_BIG=$(pool_path fx-big 1.0 amd64)
        FX_BIG_SHA=$(deb_sha256 fx-big 1.0 amd64)
        INRELEASE=dists/$FX_SUITE/InRelease
}

# --- download faults ------------------------------------------------------------

# build_basic LABEL CACHE [VAR=VALUE]...: build the basic spec into $OUT/LABEL/image.tar.
build_basic() {
        local label=$1 cache=$2
        shift 2
        run_distill "$label" "$@" -- build "$(spec basic)" -o "$OUT/$label/image.tar" --cache "$cache"
}

# image_written LABEL: the build wrote $OUT/LABEL/image.tar and no temporary file.
image_written() {
        if [[ ! -s $OUT/$1/image.tar ]]; then
                printf 'no image at %s\n' "$OUT/$1/image.tar"
                return 1
        fi
        no_temporary_outputs "$OUT/$1"
}

# succeeded_cleanly LABEL CACHE: the checks of every successful build.
succeeded_cleanly() {
        local label=$1 cache=$2
        check "$label: exit status 0" exit_status "$label" 0
        check "$label: image written" image_written "$label"
        check "$label: CACHE/tmp is empty" cache_tmp_empty "$cache"
        check "$label: cache entries are complete" cache_entries_intact "$cache"
        check "$label: TMPDIR is empty" tmpdir_clean "$label"
        check "$label: no sanitizer report" no_sanitizer_report "$label"
}

# expect_lib_retried LABEL CACHE REQUESTS [TEXT]...: run LABEL succeeded after
# REQUESTS requests for fx-lib, and its stderr names the fx-lib URL, each TEXT and
# the retry.
expect_lib_retried() {
        local label=$1 cache=$2 requests=$3
        shift 3
        succeeded_cleanly "$label" "$cache"
        check "$label: $requests requests for fx-lib" request_count "$FX_LIB" "$requests"
        check "$label: stderr names the URL and the retry" \
                stderr_has "$label" "$(repo_url fixture)/$FX_LIB" "$@" "retry"
}

# expect_lib_attempts_exhausted LABEL CACHE: run LABEL requested fx-lib
# $MAX_ATTEMPTS times, then failed with exit status 4 and an error naming the URL,
# and left nothing behind.
expect_lib_attempts_exhausted() {
        local label=$1 cache=$2
        check "$label: exit status 4" exit_status "$label" 4
        check "$label: the error names the URL" \
                error_line_matches "$label" "$(repo_url fixture)/$FX_LIB" .
        check "$label: $MAX_ATTEMPTS requests for fx-lib" request_count "$FX_LIB" "$MAX_ATTEMPTS"
        check "$label: no cache entry for fx-lib" no_cache_entry "$cache" "$FX_LIB_SHA"
        failed_cleanly "$label" "$cache" image.tar
}

check_503_then_ok() {
        section "503 twice on a .deb, then the file"
        local label=retry-503 cache
        cache=$(new_cache "$label")
        set_faults "{\"$FX_LIB\": {\"mode\": \"503-then-ok\", \"count\": 2}}"
        build_basic "$label" "$cache"
        expect_lib_retried "$label" "$cache" 3 503
        check "$label: fx-lib is in the cache" has_cache_entry "$cache" "$FX_LIB_SHA"
}

check_429_then_ok() {
        section "429 with Retry-After on a .deb, then the file"
        local label=retry-429 cache
        cache=$(new_cache "$label")
        set_faults "{\"$FX_LIB\": {\"mode\": \"429-then-ok\", \"count\": 1, \"retry_after\": 1}}"
        build_basic "$label" "$cache"
        expect_lib_retried "$label" "$cache" 2 429
}

check_close_mid_body() {
        section "connection reset in the middle of a .deb, on every request"
        local label=reset-always cache
        cache=$(new_cache "$label")
        set_faults "{\"$FX_LIB\": {\"mode\": \"close-mid-body\"}}"
        build_basic "$label" "$cache"
        expect_lib_attempts_exhausted "$label" "$cache"
}

check_short_body() {
        section "body shorter than Content-Length"
        local label=short-once cache
        cache=$(new_cache "$label")
        set_faults "{\"$FX_LIB\": {\"mode\": \"short-body\", \"count\": 1}}"
        build_basic "$label" "$cache"
        expect_lib_retried "$label" "$cache" 2

        label=short-always
        cache=$(new_cache "$label")
        set_faults "{\"$FX_LIB\": {\"mode\": \"short-body\"}}"
        build_basic "$label" "$cache"
        expect_lib_attempts_exhausted "$label" "$cache"
}

check_stall_once() {
        section "stall past DISTILL_HTTP_TIMEOUT=$STALL_TIMEOUT once, then the file"
        local label=stall-once cache
        cache=$(new_cache "$label")
        set_faults "{\"$FX_LIB\": {\"mode\": \"stall-then-ok\", \"count\": 1, \"seconds\": $SERVER_STALL}}"
        run_program "$label" "$STALL_RUN_TIMEOUT" DISTILL_HTTP_TIMEOUT="$STALL_TIMEOUT" -- \
                "$DISTILL" build "$(spec basic)" -o "$OUT/$label/image.tar" --cache "$cache"
        expect_lib_retried "$label" "$cache" 2
}

check_404() {
        section "404 on a .deb"
        local label=deb-404 cache
        cache=$(new_cache "$label")
        set_faults "{\"$FX_PRE\": {\"mode\": \"404\"}}"
        build_basic "$label" "$cache"
        check "$label: exit status 4" exit_status "$label" 4
        check "$label: the error names the URL and 404" \
                error_line_matches "$label" "$(repo_url fixture)/$FX_PRE" 404
        check "$label: exactly 1 request for fx-pre" request_count "$FX_PRE" 1
        check "$label: no retry message" fails_grep retry "$LOGS/$label.err"
        check "$label: no cache entry for fx-pre" no_cache_entry "$cache" "$FX_PRE_SHA"
        failed_cleanly "$label" "$cache" image.tar
}

# fails_grep PATTERN FILE: FILE has no line matching PATTERN (case-insensitive).
fails_grep() {
        if grep -i -- "$1" "$2"; then
                return 1
        fi
}

check_inrelease_503() {
        section "503 on InRelease, on every request"
        local label=inrelease-503 cache
        cache=$(new_cache "$label")
        set_faults "{\"$INRELEASE\": {\"mode\": \"503-then-ok\"}}"
        build_basic "$label" "$cache"
        check "$label: exit status 4" exit_status "$label" 4
        check "$label: the error names the InRelease URL" \
                error_line_matches "$label" "$(repo_url fixture)/$INRELEASE" 503
        check "$label: $MAX_ATTEMPTS requests for InRelease" request_count "$INRELEASE" "$MAX_ATTEMPTS"
        # Falling back to Release and Release.gpg is for an archive without InRelease
        # (404), not for a server that is failing.
        check "$label: no request for Release" request_count "dists/$FX_SUITE/Release" 0
        failed_cleanly "$label" "$cache" image.tar
}

check_wrong_content() {
        section ".deb with the right length and the wrong content"
        local label=deb-corrupt cache
        cache=$(new_cache "$label")
        set_faults "{\"$FX_LIB\": {\"mode\": \"corrupt\"}}"
        build_basic "$label" "$cache"
        check "$label: exit status 5" exit_status "$label" 5
        check "$label: the error names fx-lib and the checksum" \
                error_line_matches "$label" "fx-lib" 'sha256.*mismatch|mismatch.*sha256'
        check "$label: no cache entry for fx-lib" no_cache_entry "$cache" "$FX_LIB_SHA"
        failed_cleanly "$label" "$cache" image.tar
}

# --- full disk ------------------------------------------------------------------

# mount_tmpfs DIR SIZE: a tmpfs of SIZE bytes at DIR owned by the build user.
mount_tmpfs() {
        mkdir -p "$1"
        timeout 60 mount -t tmpfs -o "size=$2,mode=0755,uid=$(id -u "${RUN_OWNER%%:*}"),gid=$(id -g "${RUN_OWNER%%:*}")" \
                tmpfs "$1" || return 1
        MOUNTS+=("$1")
}

resize_tmpfs() {
        timeout 60 mount -o "remount,size=$2" "$1"
}

# full_disk_error LABEL DIR...: an error line names a path below one of the DIRs and
# reports that the disk is full or that space is lacking.
full_disk_error() {
        local label=$1 dir
        shift
        for dir in "$@"; do
                if grep -F 'distill: error:' "$LOGS/$label.err" | grep -F -- "$dir/" |
                        grep -qiE 'no space|disk (is )?full|space'; then
                        return 0
                fi
        done
        printf 'no error line names a path below %s and reports a full disk. stderr:\n' "$*"
        cat "$LOGS/$label.err"
        return 1
}

exit_status_one_of() {
        local label=$1 actual expected
        shift
        actual=$(cat "$LOGS/$label.rc")
        for expected in "$@"; do
                [[ $actual == "$expected" ]] && return 0
        done
        printf 'exit status %s, expected one of %s. stderr (last 30 lines):\n' "$actual" "$*"
        tail -n 30 "$LOGS/$label.err"
        return 1
}

# build_big LABEL CACHE OUTDIR [PREFIX]...: build fx-big into OUTDIR/big.tar, run
# through the PREFIX command (for ulimit) when given.
build_big() {
        local label=$1 cache=$2 outdir=$3
        shift 3
        run_program "$label" "$RUN_TIMEOUT" -- "$@" "$DISTILL" build "$(spec big)" \
                -o "$outdir/big.tar" --cache "$cache"
}

# expect_big_not_stored LABEL CACHE OUTDIR WHERE: run LABEL could store fx-big
# neither in CACHE nor as OUTDIR/big.tar. It failed with exit status 8 or 4 and an
# error that names WHERE, requested fx-big once and left nothing behind.
expect_big_not_stored() {
        local label=$1 cache=$2 outdir=$3 where=$4
        check "$label: exit status 8 or 4" exit_status_one_of "$label" 8 4
        # A full disk is no network fault, so downloading again cannot help.
        check "$label: fx-big requested once" request_count "$FX_BIG" 1
        check "$label: the error names $where" full_disk_error "$label" "$cache" "$outdir"
        check "$label: no cache entry for fx-big" no_cache_entry "$cache" "$FX_BIG_SHA"
        check "$label: no big.tar in the output directory" no_output_file "$outdir" big.tar
        failed_cleanly "$label" "$cache" big.tar
}

# expect_big_written LABEL CACHE OUTDIR: run LABEL wrote OUTDIR/big.tar and left no
# temporary file in OUTDIR or CACHE/tmp.
expect_big_written() {
        local label=$1 cache=$2 outdir=$3
        check "$label: exit status 0" exit_status "$label" 0
        check "$label: image written" test -s "$outdir/big.tar"
        check "$label: no temporary output" no_temporary_outputs "$outdir"
        check "$label: CACHE/tmp is empty" cache_tmp_empty "$cache"
}

check_full_disk() {
        section "full disk"
        local cache=$WORK/full/cache outdir=$WORK/full/out
        if ((EUID == 0)) && mount_tmpfs "$cache" "$SMALL_FS" && mount_tmpfs "$outdir" "$SMALL_FS"; then
                printf 'full disk: tmpfs of %s for the cache and for the output\n' "$SMALL_FS"
                check_full_disk_tmpfs "$cache" "$outdir"
        else
                printf 'full disk: mount is not permitted, so ulimit -f caps the file size instead\n'
                check_full_disk_ulimit
        fi
}

check_full_disk_tmpfs() {
        local cache=$1 outdir=$2 label

        label=full-cache
        set_faults '{}'
        build_big "$label" "$cache" "$outdir"
        expect_big_not_stored "$label" "$cache" "$outdir" "the cache and says it is full"

        label=full-output
        if ! resize_tmpfs "$cache" "$LARGE_FS"; then
                fail_check "$label: remount the cache bigger" "mount -o remount,size=$LARGE_FS failed"
                return 0
        fi
        build_big "$label" "$cache" "$outdir"
        check "$label: exit status 8" exit_status "$label" 8
        check "$label: the error names the output and says it is full" \
                full_disk_error "$label" "$outdir"
        check "$label: fx-big is in the cache" has_cache_entry "$cache" "$FX_BIG_SHA"
        check "$label: no big.tar in the output directory" no_output_file "$outdir" big.tar
        failed_cleanly "$label" "$cache" big.tar

        label=full-remounted
        if ! resize_tmpfs "$outdir" "$LARGE_FS"; then
                fail_check "$label: remount the output bigger" "mount -o remount,size=$LARGE_FS failed"
                return 0
        fi
        build_big "$label" "$cache" "$outdir"
        expect_big_written "$label" "$cache" "$outdir"
        check "$label: cache entries are complete" cache_entries_intact "$cache"
        check "$label: no sanitizer report" no_sanitizer_report "$label"

        # The staging root (below TMPDIR) on a disk too small for the image: the
        # contents go to the cache and the layer straight into the output, so
        # nothing large is staged and the build succeeds. A new cache on the normal
        # disk contains no finished layer of fx-big, so the layer is made anew.
        label=full-staging
        local staging=$WORK/tmp/$label
        mkdir -p "$staging"
        if ! mount_tmpfs "$staging" "$SMALL_FS"; then
                fail_check "$label: mount a small TMPDIR" "mount -t tmpfs failed"
                return 0
        fi
        cache=$(new_cache "$label")
        mkdir -p "$OUT/$label"
        build_big "$label" "$cache" "$OUT/$label"
        expect_big_written "$label" "$cache" "$OUT/$label"
        check "$label: TMPDIR is empty" tmpdir_clean "$label"
        check "$label: no sanitizer report" no_sanitizer_report "$label"
}

check_full_disk_ulimit() {
        local cache outdir=$OUT/full-ulimit-out label
        cache=$(new_cache full-ulimit)
        mkdir -p "$outdir"
        chown "$RUN_OWNER" "$outdir"
        # ulimit -f counts 1024-byte blocks. Ignoring SIGXFSZ makes a write past the
        # cap fail with EFBIG instead of killing distill.
        local limited=(bash -c 'trap "" XFSZ; ulimit -f 2048; exec "$@"' _)

        label=full-ulimit
        set_faults '{}'
        build_big "$label" "$cache" "$outdir" "${limited[@]}"
        expect_big_not_stored "$label" "$cache" "$outdir" "the cache or the output"

        label=full-ulimit-lifted
        build_big "$label" "$cache" "$outdir"
        expect_big_written "$label" "$cache" "$outdir"
}

# --- signals --------------------------------------------------------------------

# wait_until SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds; fail
# after SECONDS. The bound only keeps a broken run from hanging the tests.
wait_until() {
        local deadline=$((SECONDS + $1))
        shift
        until "$@"; do
                ((SECONDS < deadline)) || return 1
                sleep 0.2
        done
}

# stall_started SUFFIX: the server logged a stalled request for SUFFIX.
stall_started() {
        awk -F'\t' -v suffix="$1" '
                $3 == "stall-then-ok" && substr($1, length($1) - length(suffix) + 1) == suffix { found = 1 }
                END { exit !found }' "$WORK/requests.log"
}

# distill_pid LABEL: the pid of the $DISTILL process whose TMPDIR is $WORK/tmp/LABEL.
distill_pid() {
        local pid
        for pid in $(pgrep -f -- "$(spec basic)" || true); do
                [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$DISTILL" ]] || continue
                if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "TMPDIR=$WORK/tmp/$1"; then
                        printf '%s' "$pid"
                        return 0
                fi
        done
        return 1
}

# cache_download_started CACHE: a download is being written into CACHE/tmp.
cache_download_started() {
        [[ -n $(find "$1/tmp" -mindepth 1 -print -quit) ]]
}

process_gone() {
        ! kill -0 "$1" 2>/dev/null
}

# check_signal NAME NUMBER: send SIGNAME while fx-lib stalls in the middle of its
# body; distill must exit 128+NUMBER and leave no temporary file behind.
check_signal() {
        local name=$1 number=$2
        local label=signal-${name,,} cache
        cache=$(new_cache "$label")
        set_faults "{\"$FX_LIB\": {\"mode\": \"stall-then-ok\", \"seconds\": $SERVER_STALL}}"
        distill_command "$label" "$RUN_TIMEOUT" DISTILL_HTTP_TIMEOUT="$SERVER_STALL" -- \
                "$DISTILL" build "$(spec basic)" -o "$OUT/$label/image.tar" --cache "$cache"
        (cd "$OUT/$label" && exec setsid --wait "${COMMAND[@]}") >"$LOGS/$label.out" 2>"$LOGS/$label.err" &
        local job=$!

        local pid=
        if wait_until 120 stall_started "$FX_LIB" && wait_until 30 cache_download_started "$cache"; then
                pid=$(distill_pid "$label") || pid=
        fi
        if [[ -z $pid ]]; then
                kill "$job" 2>/dev/null
                wait "$job" 2>/dev/null
                fail_check "$label: download stalls before the signal" \
                        "no stalled fx-lib request or no distill process; stderr: $(tail -n 5 "$LOGS/$label.err")"
                return 0
        fi
        local ignored
        ignored=$(awk '/^SigIgn:/ { print $2 }' "/proc/$pid/status")
        kill -s "$name" "$pid"
        local status=0
        if wait_until 60 process_gone "$pid"; then
                wait "$job" || status=$?
        else
                kill -s KILL "$pid" 2>/dev/null
                wait "$job" || status=$?
                printf '     distill did not exit within 60 s of SIG%s (SigIgn %s)\n' "$name" "$ignored"
        fi
        printf '%d\n' "$status" >"$LOGS/$label.rc"
        printf '     %s: SIG%s -> exit %d\n' "$label" "$name" "$status"

        check "$label: exit status $((128 + number))" exit_status "$label" $((128 + number))
        check "$label: stderr reports the interruption" stderr_has "$label" "interrupted"
        check "$label: no distill-* directory left in TMPDIR" no_distill_dirs "$WORK/tmp/$label"
        failed_cleanly "$label" "$cache" image.tar
}

# no_distill_dirs DIR: DIR has no distill-* entry.
no_distill_dirs() {
        local left
        left=$(find "$1" -mindepth 1 -maxdepth 1 -name 'distill-*' -printf '%P\n')
        if [[ -n $left ]]; then
                printf 'left in %s:\n%s\n' "$1" "$left"
                return 1
        fi
}

check_signals() {
        section "signals during a stalled download"
        check_signal TERM 15
        check_signal INT 2
        check_signal HUP 1
}

# --- concurrent builds ----------------------------------------------------------

skopeo_inspect() {
        skopeo_cmd inspect "oci-archive:$1" >/dev/null
}

check_concurrent_builds() {
        section "two builds sharing one cache and one output directory"
        local cache outdir=$OUT/concurrent
        cache=$(new_cache concurrent)
        mkdir -p "$outdir"
        chown "$RUN_OWNER" "$outdir"
        # The server delays every .deb by a second, so both builds are downloading the
        # .debs they share (fx-app, fx-lib, fx-pre) at the same time.
        set_faults '{".deb": {"mode": "delay", "seconds": 1}}'
        run_distill concurrent-a -- build "$(spec concurrent-a)" -o "$outdir/a.tar" --cache "$cache" &
        local job_a=$!
        run_distill concurrent-b -- build "$(spec concurrent-b)" -o "$outdir/b.tar" --cache "$cache" &
        local job_b=$!
        wait "$job_a" || true
        wait "$job_b" || true

        local label
        for label in concurrent-a concurrent-b; do
                check "$label: exit status 0" exit_status "$label" 0
                check "$label: no sanitizer report" no_sanitizer_report "$label"
                check "$label: TMPDIR is empty" tmpdir_clean "$label"
        done
        check "concurrent: skopeo inspects a.tar" skopeo_inspect "$outdir/a.tar"
        check "concurrent: skopeo inspects b.tar" skopeo_inspect "$outdir/b.tar"
        check "concurrent: no temporary output" no_temporary_outputs "$outdir"
        check "concurrent: CACHE/tmp is empty" cache_tmp_empty "$cache"
        check "concurrent: cache entries are complete" cache_entries_intact "$cache"
        check "concurrent: fx-lib is in the cache" has_cache_entry "$cache" "$FX_LIB_SHA"
}

# --- limits.file_size -----------------------------------------------------------

check_file_size_limit() {
        section "limits.file_size"
        local label=limit-1k cache
        cache=$(new_cache "$label")
        set_faults '{}'
        run_distill "$label" -- build "$(spec limit-1k)" -o "$OUT/$label/image.tar" --cache "$cache"
        check "$label: exit status 7" exit_status "$label" 7
        check "$label: the error names the package and the path" \
                error_line_matches "$label" "/usr/share/fx-4k/data" 'fx-4k.*/usr/share/fx-4k/data'
        failed_cleanly "$label" "$cache" image.tar

        # The file is exactly 4K, and only a file larger than the limit is rejected.
        for label in limit-4k limit-64k; do
                cache=$(new_cache "$label")
                run_distill "$label" -- build "$(spec "$label")" -o "$OUT/$label/image.tar" --cache "$cache"
                succeeded_cleanly "$label" "$cache"
        done
}

# --- unsigned sources -----------------------------------------------------------

check_unsigned_source() {
        section "source marked unsigned"
        local cache label
        cache=$(new_cache unsigned)
        set_faults '{}'
        # The second build finds the .debs in the cache and must still warn.
        for label in unsigned-first unsigned-cached; do
                run_distill "$label" -- build "$(spec unsigned)" -o "$OUT/$label/image.tar" --cache "$cache"
                succeeded_cleanly "$label" "$cache"
                check "$label: warning that the Release is not verified" unsigned_warning "$label"
        done
}

unsigned_warning() {
        if ! grep -F 'distill: warning:' "$LOGS/$1.err" | grep -qi 'not verified'; then
                printf 'no warning states that the Release is not verified. stderr:\n'
                cat "$LOGS/$1.err"
                return 1
        fi
}

# --- valgrind -------------------------------------------------------------------

check_valgrind() {
        section "valgrind"
        local label=valgrind cache
        cache=$(new_cache "$label")
        set_faults '{}'
        run_program "$label" "$VALGRIND_TIMEOUT" -- \
                valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
                "$DISTILL_PLAIN" build "$(spec basic)" -o "$OUT/$label/image.tar" --cache "$cache"
        check "$label: exit status 0" exit_status "$label" 0
        check "$label: image written" image_written "$label"
        check "$label: CACHE/tmp is empty" cache_tmp_empty "$cache"
        check "$label: TMPDIR is empty" tmpdir_clean "$label"
}

main() {
        setup_workdir
        prepare_build_user
        setup_fixtures
        start_server
        write_specs

        check_503_then_ok
        check_429_then_ok
        check_close_mid_body
        check_short_body
        check_stall_once
        check_404
        check_inrelease_503
        check_wrong_content
        check_full_disk
        check_signals
        check_concurrent_builds
        check_file_size_limit
        check_unsigned_source
        check_valgrind

        finish_tests
}

main "$@"
