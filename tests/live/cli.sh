# shellcheck shell=bash disable=SC2154 # run.sh sets work, here and the specs
# passbolt-cli part of the live tier, sourced by tests/live/run.sh, which
# defines pass, fail, the work directory and the shared image checks.
#
# The image is unpacked once. Each command runs in a new container from that
# bundle, with config.json's process.args replaced, process.terminal false
# and stdin, stdout and stderr redirected to files.

# Run one command in the passbolt-cli bundle as the image's user.
# Usage: run_cli LABEL [VAR=VALUE...] -- ARG...
# The VAR=VALUE pairs are set in the process environment, replacing the
# image's value. Output goes to $work/passbolt-cli/LABEL.out and LABEL.err,
# the exit status to cli_status.
run_cli() {
        local label=$1 dir=$work/passbolt-cli id
        local env=()
        shift
        while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
                env+=("$1")
                shift
        done
        shift
        python3 - "$dir/config.json.orig" "$dir/bundle/config.json" "${#env[@]}" "${env[@]}" "$@" <<'PY'
import json, sys
source, target, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = sys.argv[4:4 + count]
args = sys.argv[4 + count:]
config = json.load(open(source))
process = config["process"]
process["terminal"] = False
process["args"] = args
names = {pair.split("=", 1)[0] for pair in env}
process["env"] = [pair for pair in process.get("env", []) if pair.split("=", 1)[0] not in names] + env
json.dump(config, open(target, "w"), indent=2)
PY
        id=distill-live-$$-cli-$label
        containers+=("$id")
        (cd "$dir/bundle" && runc run "$id" </dev/null >"$dir/$label.out" 2>"$dir/$label.err")
        cli_status=$?
        remove_container "$id"
}

# Check line NUMBER of FILE with TEST, which is "equals VALUE" or "count" (an
# integer of at least 1), and report the result under TITLE.
# Usage: check_line FILE NUMBER TITLE TEST [VALUE]
check_line() {
        local file=$1 number=$2 title=$3 test=$4 value=${5:-} line
        line=$(sed -n "${number}p" "$file")
        case $test in
        equals) [ "$line" = "$value" ] ;;
        count) [[ $line =~ ^[0-9]+$ ]] && [ "$line" -ge 1 ] ;;
        esac
        # shellcheck disable=SC2181 # the status of the case above
        if [ $? -eq 0 ]; then
                pass "passbolt-cli: bash: $title"
        else
                fail "passbolt-cli: bash: $title; line $number is '$line'"
        fi
}

test_cli() {
        local name=passbolt-cli dir=$work/passbolt-cli
        local rootfs=$work/passbolt-cli/bundle/rootfs
        local cli_status interpreters_status missing_ext ext count cn
        build_image "$name" "$CLI_SPEC" || return
        check_arm64 "$name" "$CLI_SPEC" usr/bin/bash
        unpack_image "$name" || return
        check_unpacked_image "$name" "$CLI_SPEC"

        if python3 - "$dir/bundle/config.json" >"$dir/config.err" 2>&1 <<'PY'
import json, sys
process = json.load(open(sys.argv[1]))["process"]
errors = []
if process.get("args") != ["/bin/bash"]:
    errors.append("args %r" % process.get("args"))
if process.get("cwd") != "/var/www":
    errors.append("cwd %r" % process.get("cwd"))
user = process.get("user", {})
if (user.get("uid"), user.get("gid")) != (33, 33):
    errors.append("user %r" % user)
if "LANG=C.UTF-8" not in process.get("env", []):
    errors.append("env %r" % process.get("env"))
print("; ".join(errors))
sys.exit(1 if errors else 0)
PY
        then
                pass "$name: image config runs bash as www-data"
        else
                fail "$name: image config runs bash as www-data: $(cat "$dir/config.err")"
        fi
        cp "$dir/bundle/config.json" "$dir/config.json.orig"

        # A script whose interpreter is missing fails with "required file not
        # found", as /usr/bin/which would without /bin/sh. This image exists to
        # run shell commands, so a missing shell fails the check. Other
        # interpreters (perl for c_rehash) belong to Debian's essential set,
        # which the spec need not install. They are only listed.
        python3 - "$rootfs" "$dir/other-interpreters" >"$dir/interpreters" 2>&1 <<'PY'
import os, sys
rootfs, others_path = sys.argv[1], sys.argv[2]
SHELLS = {"sh", "bash", "dash"}
missing, others = [], []
for directory in ("usr/bin", "usr/sbin"):
    for name in sorted(os.listdir(os.path.join(rootfs, directory))):
        path = os.path.join(rootfs, directory, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            first = f.readline(256)
        if not first.startswith(b"#!"):
            continue
        words = first[2:].split()
        interpreter = words[0].decode("utf-8", "replace") if words else ""
        # The path is looked up in the image, so "/bin/sh" goes through the
        # bin -> usr/bin symlink of a merged /usr.
        if interpreter.startswith("/") and os.path.exists(os.path.join(rootfs, interpreter.lstrip("/"))):
            continue
        entry = "/%s/%s (%s)" % (directory, name, interpreter)
        (missing if os.path.basename(interpreter) in SHELLS else others).append(entry)
with open(others_path, "w") as f:
    f.write(", ".join(others))
print(", ".join(missing))
sys.exit(1 if missing else 0)
PY
        interpreters_status=$?
        if [ -s "$dir/other-interpreters" ]; then
                echo "live: $name: scripts whose interpreter is not a shell and is missing: $(cat "$dir/other-interpreters")"
        fi
        if [ "$interpreters_status" -eq 0 ]; then
                pass "$name: every #! shell in /usr/bin and /usr/sbin exists"
        else
                fail "$name: every #! shell in /usr/bin and /usr/sbin exists; missing for: $(cat "$dir/interpreters")"
        fi

        # php -m lists the modules by the names get_loaded_extensions() returns.
        if ! python3 "$here/php-extensions.py" "$CLI_SPEC" >"$dir/expected-extensions" 2>"$dir/ext.err"; then
                fail "$name: spec lists php extensions: $(cat "$dir/ext.err")"
        fi
        run_cli php-m -- /usr/bin/php -m
        missing_ext=
        while IFS= read -r ext; do
                grep -qxF "$ext" "$dir/php-m.out" || missing_ext="$missing_ext, $ext"
        done <"$dir/expected-extensions"
        count=$(wc -l <"$dir/expected-extensions")
        if [ "$cli_status" -eq 0 ] && [ -z "$missing_ext" ] && [ "$count" -gt 0 ]; then
                pass "$name: php -m lists all $count extensions of the spec"
        else
                fail "$name: php -m lists all $count extensions of the spec (exit $cli_status); missing: ${missing_ext#, }"
                show_log "php -m stderr" "$dir/php-m.err"
        fi
        # PHP reports an extension it cannot load at startup, on stderr.
        if grep -E 'Unable to load dynamic library|Cannot load module|PHP Startup' "$dir/php-m.err" \
                >"$dir/startup-errors"; then
                fail "$name: php starts without extension errors"
                show_log "startup errors" "$dir/startup-errors"
        else
                pass "$name: php starts without extension errors"
        fi

        # One line per command: echo, grep -c, id -u, ls, awk, which.
        run_cli bash -- /bin/bash -c \
                'echo hello; grep -c root /etc/passwd; id -u; ls /usr/bin/awk && awk "BEGIN{print 6*7}"; which php'
        check_line "$dir/bash.out" 1 "echo prints hello" equals hello
        check_line "$dir/bash.out" 2 "grep -c counts root in /etc/passwd" count
        check_line "$dir/bash.out" 3 "id -u is 33 (www-data)" equals 33
        check_line "$dir/bash.out" 4 "ls finds /usr/bin/awk" equals /usr/bin/awk
        check_line "$dir/bash.out" 5 "awk prints 6*7" equals 42
        check_line "$dir/bash.out" 6 "which php prints /usr/bin/php" equals /usr/bin/php
        if [ "$cli_status" -eq 0 ] && [ "$(wc -l <"$dir/bash.out")" -eq 6 ] && [ ! -s "$dir/bash.err" ]; then
                pass "$name: bash -c exits 0 with six lines and no stderr"
        else
                fail "$name: bash -c exits 0 with six lines and no stderr (exit $cli_status, $(wc -l <"$dir/bash.out") lines)"
                show_log "bash stderr" "$dir/bash.err"
        fi

        # OpenSSL in PHP parses the first certificate of the bundle.
        run_cli ca-bundle -- /usr/bin/php -r \
                'echo openssl_x509_parse(file_get_contents("/etc/ssl/certs/ca-certificates.crt"))["subject"]["CN"] ?? "none";'
        cn=$(cat "$dir/ca-bundle.out")
        if [ "$cli_status" -eq 0 ] && [ -n "$cn" ] && [ "$cn" != none ]; then
                pass "$name: php parses the CA bundle (first CN: $cn)"
        else
                fail "$name: php parses the CA bundle; exit $cli_status, output '$cn'"
                show_log "php stderr" "$dir/ca-bundle.err"
        fi

        # glibc reads /usr/share/zoneinfo/Europe/Paris from tzdata. Without it
        # date prints UTC times named "Europe".
        run_cli date TZ=Europe/Paris -- /usr/bin/date
        if [ "$cli_status" -eq 0 ] && grep -qE '(^| )(CET|CEST)( |$)' "$dir/date.out"; then
                pass "$name: date under TZ=Europe/Paris prints CET or CEST"
        else
                fail "$name: date under TZ=Europe/Paris prints CET or CEST; exit $cli_status, output '$(cat "$dir/date.out")'"
                show_log "date stderr" "$dir/date.err"
        fi

        run_cli ssl-cert-file -- /usr/bin/php -r 'echo getenv("SSL_CERT_FILE");'
        if [ "$cli_status" -eq 0 ] && [ "$(cat "$dir/ssl-cert-file.out")" = /etc/ssl/certs/ca-certificates.crt ]; then
                pass "$name: SSL_CERT_FILE is /etc/ssl/certs/ca-certificates.crt"
        else
                fail "$name: SSL_CERT_FILE is /etc/ssl/certs/ca-certificates.crt; exit $cli_status, php prints '$(cat "$dir/ssl-cert-file.out")'"
                show_log "php stderr" "$dir/ssl-cert-file.err"
        fi
}
