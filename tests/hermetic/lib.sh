# Bookkeeping shared by the hermetic test scripts: check counters and the summary,
# the work directory and the EXIT trap that removes it, the 127.0.0.1 test server,
# running distill with its output recorded, and the assertions every script makes.
# It also sources fixtures.sh, which builds the .debs and signed repositories.
#
# A script sources this file near its top and then calls hermetic_init once, so
# that every script keeps its own work directory, server and trap:
#
#     HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#     source "$HERE/lib.sh"
#     hermetic_init NAME_KEEP        (the variable that keeps the work directory)
#
# A script may define script_cleanup; the EXIT trap calls it before it removes the
# work directory.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the sourcing scripts read the variables set here.

HERMETIC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERMETIC_DIR/../.." && pwd)
# shellcheck source=tests/hermetic/fixtures.sh
source "$HERMETIC_DIR/fixtures.sh"

# The binary under test. A relative DISTILL is taken from the current directory.
DISTILL=$(realpath -m "${DISTILL:-$TOP/build/distill-san}")
# Seconds one distill run may take before it counts as hung. The value is generous
# because the sanitizer build is slower than the normal one.
RUN_TIMEOUT=600
# Seconds one skopeo, umoci or podman call may take before it counts as hung.
CONTAINER_TOOL_TIMEOUT=300

declare -gi PASSED=0 FAILED=0
FAILED_NAMES=()
SUMMARY_PRINTED=0
SERVER_PID=
WORK=
# A command prefix (runuser) for every run, and the umask of the run when set.
RUN_AS=()
RUN_UMASK=

# --- counting checks ------------------------------------------------------------

# hermetic_init KEEP-VARIABLE: install the EXIT trap and clear the caller's settings
# that would change what is under test. When KEEP-VARIABLE is 1 in the environment,
# the trap keeps the work directory for debugging.
hermetic_init() {
        SCRIPT_NAME=${0##*/}
        KEEP_VARIABLE=$1
        unset SOURCE_DATE_EPOCH DISTILL_MIRROR DISTILL_HTTP_TIMEOUT
        trap cleanup EXIT
        # Bash runs the EXIT trap on a signal only when the signal has a trap of its own.
        trap 'exit 130' INT
        trap 'exit 143' TERM
        # Under set -E, name the command that stopped the script.
        if shopt -qo errtrace; then
                trap 'printf "%s: command failed at line %d: %s\n" "$SCRIPT_NAME" "$LINENO" "$BASH_COMMAND" >&2' ERR
        fi
}

print_summary() {
        if ((FAILED > 0)); then
                printf '\nfailed checks:\n'
                printf '  %s\n' "${FAILED_NAMES[@]}"
        fi
        printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
        SUMMARY_PRINTED=1
}

# finish_tests: print the summary, whose last line is "N passed, N failed", and exit
# with status 1 when any check failed.
finish_tests() {
        printf '\n'
        print_summary
        if ((FAILED > 0)); then
                exit 1
        fi
        exit 0
}

# check NAME COMMAND...: run COMMAND, count it as passed when it exits 0, otherwise
# print its output under the name. COMMAND runs outside errexit, so multi-step
# predicate functions must return non-zero themselves.
check() {
        local name=$1
        shift
        local output status=0
        output=$("$@" 2>&1) || status=$?
        if ((status == 0)); then
                PASSED+=1
                printf 'ok   %s\n' "$name"
        else
                FAILED+=1
                FAILED_NAMES+=("$name")
                printf 'FAIL %s\n' "$name"
                [[ -n $output ]] && printf '%s\n' "$output" | sed 's/^/     /'
        fi
        return 0
}

# fail_check NAME MESSAGE: count a check that cannot run as failed.
fail_check() {
        FAILED+=1
        FAILED_NAMES+=("$1")
        printf 'FAIL %s\n     %s\n' "$1" "$2"
}

# skip NAME REASON: a check that cannot run here, counted neither way.
skip() {
        printf 'skip %s: %s\n' "$1" "$2"
}

section() {
        printf '\n== %s\n' "$1"
}

# die MESSAGE: stop the script, because no case can be trusted once a fixture is wrong.
die() {
        printf '%s: %s\n' "$SCRIPT_NAME" "$1" >&2
        exit 1
}

# --- work directory and cleanup -------------------------------------------------

# make_workdir: a new WORK below $TMPDIR (or /tmp) named after the script, with the
# run records in LOGS and the build outputs in OUT.
make_workdir() {
        WORK=$(mktemp -d "${TMPDIR:-/tmp}/distill-${SCRIPT_NAME%.sh}.XXXXXX")
        LOGS=$WORK/logs
        OUT=$WORK/out
        mkdir -p "$LOGS" "$OUT"
}

# stop_server: end the server, with SIGKILL when it outlives SIGTERM by 5 seconds,
# so that the EXIT trap cannot hang in wait.
stop_server() {
        kill "$SERVER_PID" 2>/dev/null
        local _
        for _ in $(seq 1 50); do
                kill -0 "$SERVER_PID" 2>/dev/null || break
                sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
}

# cleanup: the EXIT trap. It stops the server and every background job, runs the
# script's own script_cleanup, stops the gpg-agent, removes the podman images and
# removes WORK (unless a mount point is left below it). When the script stopped
# before its summary, it counts that as a failed check and prints the summary.
cleanup() {
        local status=$?
        set +e
        trap - ERR
        if [[ -n $SERVER_PID ]]; then
                stop_server
        fi
        # Background builds still running when a check aborted the script.
        local pid
        for pid in $(jobs -p); do
                kill "$pid" 2>/dev/null
        done
        if declare -F script_cleanup >/dev/null; then
                script_cleanup
        fi

        if [[ -n $WORK ]]; then
                [[ -d $WORK/gnupg ]] && GNUPGHOME=$WORK/gnupg timeout 30 gpgconf --kill all 2>/dev/null
                [[ -d $WORK/podman ]] && podman_cmd rmi -a -f >/dev/null 2>&1
                # The message goes to stderr so that stdout still ends with the summary.
                if [[ ${!KEEP_VARIABLE:-0} == 1 ]]; then
                        printf '%s=1: kept %s\n' "$KEEP_VARIABLE" "$WORK" >&2
                elif findmnt -rn -o TARGET | grep -qF "$WORK/"; then
                        printf '%s: %s still has a mount point; not removing it\n' "$SCRIPT_NAME" "$WORK" >&2
                else
                        rm -rf "$WORK"
                fi
        fi

        if ((SUMMARY_PRINTED == 0)); then
                printf '%s stopped before finishing (exit status %d); see the output above\n' \
                        "$SCRIPT_NAME" "$status"
                FAILED+=1
                FAILED_NAMES+=("$SCRIPT_NAME finished")
                print_summary
                exit 1
        fi
}

# --- the test server ------------------------------------------------------------

# start_http_server DIR: serve DIR with python3 -m http.server on a free 127.0.0.1
# port, with its access log in $WORK/http.log, and wait until it responds.
start_http_server() {
        python3 -u -m http.server --bind 127.0.0.1 --directory "$1" 0 \
                >"$WORK/http.out" 2>"$WORK/http.log" &
        SERVER_PID=$!
        wait_for_server http_server_port / "$WORK/http.out" "$WORK/http.log"
}

http_server_port() {
        sed -n 's/^Serving HTTP on 127\.0\.0\.1 port \([0-9]*\) .*/\1/p' "$WORK/http.out"
}

# wait_for_server PORT-COMMAND PATH OUTPUT...: poll up to 100 times, 0.1 s apart,
# until PORT-COMMAND prints the server's port and a GET of PATH there succeeds. Sets
# PORT and SERVER (http://127.0.0.1:PORT). When the server never responds, print its
# OUTPUT files and stop the script.
wait_for_server() {
        local port_command=$1 path=$2 attempt
        shift 2
        for attempt in $(seq 1 100); do
                PORT=$("$port_command")
                if [[ -n $PORT ]] && timeout 10 curl -sf --noproxy '*' --max-time 5 -o /dev/null \
                        "http://127.0.0.1:$PORT$path"; then
                        SERVER=http://127.0.0.1:$PORT
                        printf 'server on 127.0.0.1:%s (attempt %d)\n' "$PORT" "$attempt"
                        return 0
                fi
                sleep 0.1
        done
        cat "$@" >&2
        die "the test server did not respond on 127.0.0.1; its output is above"
}

# --- running distill ------------------------------------------------------------

# setup_build_user NAME: make builds run unprivileged, as they would for a user. As
# root they run through runuser as the system user NAME, created when missing.
# Otherwise they run as the current user. Sets RUN_AS and RUN_OWNER (user:group).
setup_build_user() {
        if ((EUID == 0)); then
                create_system_user "$1" || die "useradd $1 failed"
                RUN_AS=(runuser -u "$1" --)
                RUN_OWNER=$1:$(id -gn "$1")
        else
                RUN_AS=()
                RUN_OWNER=$(id -un):$(id -gn)
        fi
}

# create_system_user NAME: a system user without home directory or login shell,
# unless NAME exists.
create_system_user() {
        id -u "$1" >/dev/null 2>&1 && return 0
        timeout 60 useradd --system --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$1"
}

# require_runnable PROGRAM...: stop the script unless the build user can execute
# each PROGRAM.
require_runnable() {
        local program
        for program in "$@"; do
                "${RUN_AS[@]}" test -x "$program" ||
                        die "$program is missing or not executable by the build user; run make build/distill build/distill-san"
        done
}

# split_env_args [-u VAR]... [VAR=VALUE]... [-- ARG...]: set ENV_ARGS to the
# environment changes and ARGS to the words after --.
split_env_args() {
        ENV_ARGS=()
        while (($# > 0)) && [[ $1 != -- ]]; do
                ENV_ARGS+=("$1")
                shift
        done
        (($# > 0)) && shift
        ARGS=("$@")
}

# set_command TIMEOUT [-u VAR]... [VAR=VALUE]... -- PROGRAM [ARG]...
# Set COMMAND to the command line that runs PROGRAM under `timeout TIMEOUT`, behind
# the RUN_AS prefix, without proxy settings and with the VAR=VALUE settings applied
# after the defaults, so that they win. env takes its -u options before any
# VAR=VALUE. SIGINT is reset to its default action because a background job of a
# non-interactive shell starts with SIGINT ignored, and setsid does not change that.
# COMMAND_NAME is PROGRAM's file name and first argument, for progress lines.
set_command() {
        local limit=$1
        shift
        local unsets=() sets=()
        while (($# > 0)) && [[ $1 != -- ]]; do
                if [[ $1 == -u ]]; then
                        unsets+=(-u "$2")
                        shift
                else
                        sets+=("$1")
                fi
                shift
        done
        (($# > 0)) && shift
        COMMAND=("${RUN_AS[@]}" timeout "$limit" env --default-signal=INT
                -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY
                "${unsets[@]}"
                no_proxy=127.0.0.1 NO_PROXY=127.0.0.1
                UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
                "${sets[@]}" "$@")
        COMMAND_NAME="${1##*/} ${2-}"
}

# run_command LABEL DIR: run COMMAND (see set_command) in DIR, with stdin from
# /dev/null and umask $RUN_UMASK when set, recording stdout, stderr and the exit
# status as $LOGS/LABEL.{out,err,rc}.
run_command() {
        local label=$1 dir=$2 status=0
        (
                if [[ -n $RUN_UMASK ]]; then
                        umask "$RUN_UMASK"
                fi
                cd "$dir"
                exec "${COMMAND[@]}"
        ) >"$LOGS/$label.out" 2>"$LOGS/$label.err" </dev/null || status=$?
        printf '%d\n' "$status" >"$LOGS/$label.rc"
        printf '     %s: %s -> exit %d\n' "$label" "$COMMAND_NAME" "$status"
}

# --- assertions about a run -----------------------------------------------------

# exit_status LABEL EXPECTED: the exit status of run LABEL was EXPECTED.
exit_status() {
        local label=$1 expected=$2 actual
        actual=$(cat "$LOGS/$label.rc")
        if [[ $actual != "$expected" ]]; then
                printf 'exit status %s, expected %s. stderr (last 30 lines):\n' "$actual" "$expected"
                tail -n 30 "$LOGS/$label.err"
                return 1
        fi
}

# stderr_has LABEL TEXT...: each TEXT appears in run LABEL's stderr.
stderr_has() {
        local label=$1 text
        shift
        for text in "$@"; do
                if ! grep -qF -- "$text" "$LOGS/$label.err"; then
                        printf 'stderr does not contain %q. stderr:\n' "$text"
                        cat "$LOGS/$label.err"
                        return 1
                fi
        done
}

# stderr_lacks LABEL TEXT...: no TEXT appears in run LABEL's stderr.
stderr_lacks() {
        local label=$1 text
        shift
        for text in "$@"; do
                if grep -F -- "$text" "$LOGS/$label.err"; then
                        printf 'stderr contains %q in the line(s) above\n' "$text"
                        return 1
                fi
        done
}

# stderr_matches LABEL REGEX: a line of run LABEL's stderr matches the extended
# regular expression REGEX (back-references allowed, as grep -E has them).
stderr_matches() {
        if ! grep -qE -- "$2" "$LOGS/$1.err"; then
                printf 'no line of stderr matches %q. stderr:\n' "$2"
                cat "$LOGS/$1.err"
                return 1
        fi
}

# stderr_count LABEL TEXT N: exactly N lines of run LABEL's stderr contain TEXT.
stderr_count() {
        local n
        n=$(grep -cF -- "$2" "$LOGS/$1.err" || true)
        if [[ $n != "$3" ]]; then
                printf '%s lines of stderr contain %q, expected %s. stderr:\n' "$n" "$2" "$3"
                cat "$LOGS/$1.err"
                return 1
        fi
}

# no_sanitizer_report LABEL: AddressSanitizer, LeakSanitizer and UBSan stayed quiet.
no_sanitizer_report() {
        if grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' \
                "$LOGS/$1.err"; then
                return 1
        fi
}

# output_dir_empty LABEL: a failed build left nothing in $OUT/LABEL, where -o
# pointed, neither the image nor a temporary file beside it.
output_dir_empty() {
        local left
        left=$(find "$OUT/$1" -mindepth 1 -printf '%P\n')
        if [[ -n $left ]]; then
                printf 'left behind in the output directory:\n%s\n' "$left"
                return 1
        fi
}

# expect_build LABEL: run LABEL succeeded, without a sanitizer report, and wrote
# $OUT/LABEL/image.tar.
expect_build() {
        local label=$1
        check "$label: exit status 0" exit_status "$label" 0
        check "$label: no sanitizer report" no_sanitizer_report "$label"
        check "$label: image written" test -s "$OUT/$label/image.tar"
}

# expect_failure LABEL STATUS [TEXT]...: run LABEL exited with STATUS, named each
# TEXT on stderr, left nothing in $OUT/LABEL and had no sanitizer report.
expect_failure() {
        local label=$1 status=$2
        shift 2
        check "$label: exit status $status" exit_status "$label" "$status"
        if (($# > 0)); then
                check "$label: error names $*" stderr_has "$label" "$@"
        fi
        check "$label: no output left" output_dir_empty "$label"
        check "$label: no sanitizer report" no_sanitizer_report "$label"
}

# --- container tools ------------------------------------------------------------

# skopeo_cmd ARG...: skopeo with a policy that accepts every image, which the
# unsigned test images need.
skopeo_cmd() {
        [[ -f $WORK/policy.json ]] ||
                printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$WORK/policy.json"
        timeout "$CONTAINER_TOOL_TIMEOUT" skopeo --policy "$WORK/policy.json" "$@"
}

# podman_cmd ARG...: podman with its storage below $WORK/podman, which the EXIT trap
# empties.
podman_cmd() {
        timeout "$CONTAINER_TOOL_TIMEOUT" podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" \
                --storage-driver vfs --events-backend none "$@"
}

# podman_ready: succeed when podman can run here, otherwise print why and fail.
podman_ready() {
        mkdir -p "$WORK/podman"
        local error
        if ! error=$(podman_cmd info 2>&1 >/dev/null); then
                printf 'podman cannot run in this environment: %s\n' "$(tail -n 3 <<<"$error")"
                return 1
        fi
}

# --- fixtures in a child shell --------------------------------------------------

# in_child_bash SECONDS [VARIABLE]... -- FUNCTION [ARG]...
# Run the shell FUNCTION in a child bash under `timeout SECONDS`, because timeout
# runs only programs and the fixtures.sh helpers call dpkg-deb, apt-ftparchive and
# gpg. The child gets every function, the FX_* settings, HERE_FIXTURES and each
# VARIABLE. The exports happen in a subshell, so they never reach distill.
in_child_bash() {
        local seconds=$1
        shift
        local variables=()
        while (($# > 0)) && [[ $1 != -- ]]; do
                variables+=("$1")
                shift
        done
        shift
        (
                mapfile -t functions < <(compgen -A function)
                export -f "${functions[@]}"
                mapfile -t settings < <(compgen -v FX_)
                export "${settings[@]}" HERE_FIXTURES "${variables[@]}"
                # shellcheck disable=SC2016 # "$@" is expanded by the child bash.
                timeout "$seconds" bash -c 'set -euo pipefail; "$@"' _ "$@"
        )
}
