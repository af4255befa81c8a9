#!/bin/bash
# Live tier: build specs/passbolt-fpm.yaml from the Debian mirror apt on this
# machine uses, run the image with runc, ask php-fpm over FastCGI which
# extensions it loaded, and compare the image's packages with apt's choice.
#
# Environment:
#   DISTILL     the binary to test (default: build/distill)
#   SPEC        the spec to build (default: specs/passbolt-fpm.yaml)
#   CI          when "true" and apt's mirror serves the bookworm InRelease,
#               every reason to skip is a failure
#   LIVE_KEEP   when "1", keep the work directory for inspection
#
# Without a reachable mirror the tier prints SKIP and exits 0. It needs root
# (runc), skopeo, umoci, runc, nsenter and cgi-fcgi (`make deps` installs them).
# Ends with "live: N passed, N failed"; exits 1 on any failure.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/tests/live
DISTILL=${DISTILL:-$repo/build/distill}
SPEC=${SPEC:-$repo/specs/passbolt-fpm.yaml}

passed=0
failed=0
skipped=0
strict=no
work=
container=

pass() {
        echo "PASS: $1"
        passed=$((passed + 1))
}

fail() {
        echo "FAIL: $1"
        failed=$((failed + 1))
}

finish() {
        echo "live: $passed passed, $failed failed, $skipped skipped"
        [ "$failed" -eq 0 ]
        exit $?
}

# Skip the rest of the tier, unless CI demands that it runs.
skip_rest() {
        if [ "$strict" = yes ]; then
                fail "live tier cannot run under CI=true although apt's mirror answers: $1"
        else
                echo "SKIP: live tier: $1"
                skipped=$((skipped + 1))
        fi
        finish
}

# Print the last lines of a log file, indented, to explain a failure.
show_log() {
        local title=$1 file=$2
        [ -s "$file" ] || return 0
        echo "  --- $title (last 30 lines)"
        tail -n 30 "$file" | sed 's/^/  | /'
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
        if [ -n "$container" ]; then
                runc kill "$container" KILL >/dev/null 2>&1
                runc delete -f "$container" >/dev/null 2>&1
        fi
        if [ -n "$work" ] && [ -d "$work" ]; then
                if [ "${LIVE_KEEP:-}" = 1 ]; then
                        echo "live: work directory kept: $work"
                else
                        rm -rf "$work"
                fi
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# apt-mirrors.sh against apt source trees made here (no network).

check_mirror_mapping() {
        local etc out status
        etc=$(mktemp -d)
        mkdir -p "$etc/one-line/sources.list.d" "$etc/deb822/sources.list.d" \
                "$etc/foreign/sources.list.d" "$etc/empty" "$etc/lists"
        local spec=$etc/spec.yaml
        cat >"$spec" <<'EOF'
name: mapping-test
sources:
  # block-style lists and quotes, as a spec may write them
  - url: "https://snapshot.example.invalid/archive/debian/20240101T000000Z/"
    suites:
      - bookworm
      - bookworm-updates
    keyring: /usr/share/keyrings/debian-archive-keyring.gpg
  - suites: [bookworm-security]   # url after suites
    url: https://snapshot.example.invalid/archive/debian-security/20240101T000000Z
    components: [main]
    keyring: /usr/share/keyrings/debian-archive-keyring.gpg
packages: [tzdata]
EOF
        local from_main=https://snapshot.example.invalid/archive/debian/20240101T000000Z
        local from_security=https://snapshot.example.invalid/archive/debian-security/20240101T000000Z

        # One-line format with [options], a deb-src line, a third-party repository
        # with another component, and a file disabled by its name.
        cat >"$etc/one-line/sources.list" <<'EOF'
# a comment line
deb-src http://src.example.invalid/debian bookworm main
deb http://vendor.example.invalid/linux/debian bookworm stable
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://main.example.invalid/debian/ bookworm main contrib
deb [ trusted=yes ] http://security.example.invalid/debian-security bookworm-security main
EOF
        echo 'deb http://disabled.example.invalid/debian bookworm main' \
                >"$etc/one-line/sources.list.d/old.list.disabled"
        out=$(APT_ETC=$etc/one-line APT_LISTS=$etc/lists "$repo/tests/lib/apt-mirrors.sh" --pairs "$spec" 2>&1)
        if [ "$out" = "$(printf '%s\n' \
                "$from_main=http://main.example.invalid/debian" \
                "$from_security=http://security.example.invalid/debian-security")" ]; then
                pass "apt-mirrors.sh reads the one-line format"
        else
                fail "apt-mirrors.sh reads the one-line format; output: $out"
        fi

        # deb822 with several URIs in one stanza, a continuation line, a disabled
        # stanza and a third-party repository publishing bookworm/main.
        cat >"$etc/deb822/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://php.example.invalid/php
Suites: bookworm
Components: main

Types: deb deb-src
# a comment inside a stanza
URIs: http://first.example.invalid/mirror/debian/
  http://second.example.invalid/debian
Suites: bookworm bookworm-updates
Components: main non-free-firmware

Types: deb
URIs: http://off.example.invalid/debian-security
Suites: bookworm-security
Components: main
Enabled: no

Types: deb
URIs: http://on.example.invalid/debian-security
Suites: bookworm-security
Components: main
EOF
        echo 'Types: deb' >"$etc/deb822/sources.list.d/other.sources.disabled"
        out=$(APT_ETC=$etc/deb822 APT_LISTS=$etc/lists "$repo/tests/lib/apt-mirrors.sh" "$spec" 2>&1)
        if [ "$out" = "$(printf '%s\n' \
                "--mirror $from_main=http://first.example.invalid/mirror/debian" \
                "--mirror $from_security=http://on.example.invalid/debian-security")" ]; then
                pass "apt-mirrors.sh reads the deb822 format"
        else
                fail "apt-mirrors.sh reads the deb822 format; output: $out"
        fi

        # A downloaded InRelease with another Origin rules a candidate out even
        # when its path looks like Debian's.
        echo 'deb http://fake.example.invalid/debian bookworm main' >"$etc/foreign/sources.list"
        printf 'Origin: Someone Else\nSuite: bookworm\n' \
                >"$etc/lists/fake.example.invalid_debian_dists_bookworm_InRelease"
        out=$(APT_ETC=$etc/foreign APT_LISTS=$etc/lists "$repo/tests/lib/apt-mirrors.sh" "$spec" 2>&1)
        status=$?
        if [ "$status" -eq 1 ] && [[ $out == *"no Debian mirror for suite bookworm "* ]]; then
                pass "apt-mirrors.sh rejects a non-Debian origin"
        else
                fail "apt-mirrors.sh rejects a non-Debian origin; exit $status, output: $out"
        fi

        out=$(APT_ETC=$etc/empty APT_LISTS=$etc/lists "$repo/tests/lib/apt-mirrors.sh" "$spec" 2>&1)
        status=$?
        if [ "$status" -eq 1 ] && [[ $out == *"no Debian mirror"* ]]; then
                pass "apt-mirrors.sh fails without sources"
        else
                fail "apt-mirrors.sh fails without sources; exit $status, output: $out"
        fi
        rm -rf "$etc"
}

# ---------------------------------------------------------------------------
# Preconditions: apt's mirror, root, tools, the binary.

check_mirror_mapping

work=$(mktemp -d /tmp/distill-live.XXXXXX)
chmod 0755 "$work"

if ! mirror_args=$("$repo/tests/lib/apt-mirrors.sh" "$SPEC" 2>"$work/apt-mirrors.err"); then
        echo "SKIP: live tier: $(cat "$work/apt-mirrors.err")"
        skipped=$((skipped + 1))
        finish
fi

# The first InRelease is the spec's first suite (bookworm). curl's messages
# would name the mirror, so only its exit status is reported.
inrelease=$("$repo/tests/lib/apt-mirrors.sh" --inrelease "$SPEC")
inrelease=${inrelease%%$'\n'*}
if curl -fsS -o /dev/null --connect-timeout 10 --max-time 30 "$inrelease" 2>/dev/null; then
        [ "${CI:-}" = true ] && strict=yes
else
        curl_status=$?
        echo "SKIP: live tier: the first suite's InRelease through apt's mirror did not answer (curl exit $curl_status)"
        skipped=$((skipped + 1))
        finish
fi

if [ "$(id -u)" != 0 ]; then
        skip_rest "runc needs root; run as root"
fi
missing=
for tool in skopeo umoci runc nsenter cgi-fcgi python3 apt-get apt-cache curl; do
        command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
        skip_rest "missing tools:$missing (run 'make deps')"
fi
if [ ! -x "$DISTILL" ]; then
        fail "distill binary not found at $DISTILL (run 'make')"
        finish
fi

# ---------------------------------------------------------------------------
# Build. --no-lock resolves afresh: the committed lock pins versions that the
# live mirror drops once they are superseded.

image=$work/passbolt-fpm.tar
# shellcheck disable=SC2086 # mirror_args is a list of "--mirror FROM=TO" words.
"$DISTILL" build "$SPEC" --no-lock -o "$image" --json $mirror_args >"$work/build.json" 2>"$work/build.log"
build_status=$?
if [ "$build_status" -ne 0 ]; then
        fail "distill build exits 0 (exit $build_status)"
        show_log "distill stderr" "$work/build.log"
        finish
fi
pass "distill build exits 0"

if python3 - "$work/build.json" "$image" >"$work/json.err" 2>&1 <<'PY'
import json, os, re, sys
doc = json.load(open(sys.argv[1]))
errors = []
if not re.fullmatch(r"sha256:[0-9a-f]{64}", str(doc.get("digest"))):
    errors.append("digest is %r" % doc.get("digest"))
if doc.get("size") != os.path.getsize(sys.argv[2]):
    errors.append("size %r is not the file size %d" % (doc.get("size"), os.path.getsize(sys.argv[2])))
if not isinstance(doc.get("packages"), int) or doc["packages"] <= 0:
    errors.append("packages is %r" % doc.get("packages"))
if os.path.realpath(str(doc.get("output"))) != os.path.realpath(sys.argv[2]):
    errors.append("output is %r" % doc.get("output"))
print("; ".join(errors))
sys.exit(1 if errors else 0)
PY
then
        pass "build --json describes the output"
else
        fail "build --json describes the output: $(cat "$work/json.err")"
fi
json_packages=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("packages"))' "$work/build.json" 2>/dev/null)

# ---------------------------------------------------------------------------
# Unpack with the standard OCI tools.

if ! skopeo copy -q "oci-archive:$image" "oci:$work/oci:latest" >"$work/skopeo.log" 2>&1; then
        fail "skopeo copies the oci-archive"
        show_log "skopeo" "$work/skopeo.log"
        finish
fi
pass "skopeo copies the oci-archive"

# The arm64 platform: its php-fpm must be an AArch64 ELF file (e_machine 183).
if grep -q '^architectures:.*arm64' "$SPEC"; then
        if skopeo copy -q --override-arch arm64 "oci-archive:$image" "oci:$work/oci-arm64:arm64" >"$work/skopeo-arm64.log" 2>&1 &&
                python3 - "$work/oci-arm64" >"$work/arm64.err" 2>&1 <<'PY'
import json, os, struct, sys, tarfile
layout = sys.argv[1]
def blob(digest):
    return os.path.join(layout, "blobs", *digest.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))
assert config["architecture"] == "arm64", "config architecture is %r" % config["architecture"]
with tarfile.open(blob(manifest["layers"][0]["digest"])) as t:
    data = t.extractfile("usr/sbin/php-fpm8.2").read(20)
assert data[:4] == b"\x7fELF", "usr/sbin/php-fpm8.2 is not an ELF file"
machine = struct.unpack("<H", data[18:20])[0]
assert machine == 183, "usr/sbin/php-fpm8.2 has e_machine %d, not 183 (AArch64)" % machine
PY
        then
                pass "arm64 image holds an AArch64 php-fpm"
        else
                fail "arm64 image holds an AArch64 php-fpm: $(cat "$work/skopeo-arm64.log" "$work/arm64.err" | tail -3)"
        fi
fi

bundle=$work/bundle
if ! umoci unpack --image "$work/oci:latest" "$bundle" >"$work/umoci.log" 2>&1; then
        fail "umoci unpacks the image"
        show_log "umoci" "$work/umoci.log"
        finish
fi
pass "umoci unpacks the image"
rootfs=$bundle/rootfs

# ---------------------------------------------------------------------------
# The file system and the runtime configuration.

shells=$(cd "$rootfs" && for f in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash; do
        [ -e "$f" ] || [ -L "$f" ] && echo "/$f"
done)
if [ -z "$shells" ]; then
        pass "image contains no shell"
else
        fail "image contains no shell; found: $(echo "$shells" | tr '\n' ' ')"
fi

for link in /usr/sbin/php-fpm:php-fpm8.2 /usr/bin/php:php8.2; do
        path=${link%%:*}
        target=${link#*:}
        if [ "$(readlink "$rootfs$path")" = "$target" ] && [ -x "$rootfs$path" ]; then
                pass "symlink $path -> $target"
        else
                fail "symlink $path -> $target; found '$(readlink "$rootfs$path")'"
        fi
done

for entry in /run/php:33:33:755 /var/www:33:33:755 /tmp:0:0:1777; do
        IFS=: read -r path uid gid mode <<<"$entry"
        found=$(stat -c '%u:%g:%a' "$rootfs$path" 2>&1)
        if [ "$found" = "$uid:$gid:$mode" ]; then
                pass "directory $path is $uid:$gid mode $mode"
        else
                fail "directory $path is $uid:$gid mode $mode; found $found"
        fi
done

# update-ca-certificates builds this bundle in ca-certificates' postinst.
# libcurl and OpenSSL in Debian read it.
if grep -q 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt" 2>/dev/null; then
        pass "image has the CA bundle"
else
        fail "image has the CA bundle /etc/ssl/certs/ca-certificates.crt"
fi

if grep -qx 'www-data:x:33:33:[^:]*:/var/www:/usr/sbin/nologin' "$rootfs/etc/passwd" &&
        grep -q '^www-data:x:33:' "$rootfs/etc/group"; then
        pass "www-data account is 33:33"
else
        fail "www-data account is 33:33; /etc/passwd has: $(grep www-data "$rootfs/etc/passwd" 2>&1)"
fi

if python3 - "$bundle/config.json" >"$work/config.err" 2>&1 <<'PY'
import json, sys
process = json.load(open(sys.argv[1]))["process"]
errors = []
if process.get("args") != ["/usr/sbin/php-fpm8.2", "-F", "-O"]:
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
        pass "image config runs php-fpm as www-data"
else
        fail "image config runs php-fpm as www-data: $(cat "$work/config.err")"
fi

# ---------------------------------------------------------------------------
# Run php-fpm and ask it over FastCGI for its extensions.

mkdir -m 0755 "$work/www"
cat >"$work/www/info.php" <<'EOF'
<?php
echo "sapi=", php_sapi_name(), "\n";
echo "ini=", var_export(php_ini_loaded_file(), true), "\n";
echo implode("\n", get_loaded_extensions()), "\n";
echo implode("\n", get_loaded_extensions(true)), "\n";
EOF
chmod 0644 "$work/www/info.php"

python3 - "$bundle/config.json" "$work/www" <<'PY'
import json, sys
path, www = sys.argv[1], sys.argv[2]
config = json.load(open(path))
config["process"]["terminal"] = False
config["mounts"].append({"destination": "/var/www/live-test", "type": "bind",
                         "source": www, "options": ["rbind", "ro"]})
json.dump(config, open(path, "w"), indent=2)
PY

container=distill-live-$$
(cd "$bundle" && runc run -d --pid-file "$work/container.pid" "$container" \
        >"$work/container.out" 2>"$work/container.err" </dev/null)
run_status=$?
if [ "$run_status" -ne 0 ]; then
        fail "runc starts the container (exit $run_status)"
        show_log "container stderr" "$work/container.err"
        container=
        finish
fi
pid=$(cat "$work/container.pid")
pass "runc starts the container"

# Poll with a bounded number of attempts: a request that connects means php-fpm
# listens. The request names no script, so php-fpm returns 404, which is fine.
listening=no
for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
                break
        fi
        if env -i /usr/bin/nsenter --net="/proc/$pid/ns/net" \
                "$(command -v cgi-fcgi)" -bind -connect 127.0.0.1:9000 </dev/null >/dev/null 2>&1; then
                listening=yes
                break
        fi
        sleep 0.2
done
if [ "$listening" = yes ]; then
        pass "php-fpm listens on 127.0.0.1:9000"
else
        fail "php-fpm listens on 127.0.0.1:9000"
        show_log "container stderr" "$work/container.err"
        finish
fi

env -i SCRIPT_FILENAME=/var/www/live-test/info.php SCRIPT_NAME=/live-test/info.php \
        REQUEST_METHOD=GET QUERY_STRING= SERVER_PROTOCOL=HTTP/1.1 \
        /usr/bin/nsenter --net="/proc/$pid/ns/net" \
        "$(command -v cgi-fcgi)" -bind -connect 127.0.0.1:9000 </dev/null >"$work/response" 2>&1
request_status=$?
# The body follows the first empty line of the CGI response (CRLF line ends).
tr -d '\r' <"$work/response" | sed '1,/^$/d' >"$work/fpm-extensions"
if [ "$request_status" -eq 0 ] && grep -qx 'sapi=fpm-fcgi' "$work/fpm-extensions"; then
        pass "info.php runs under the fpm-fcgi SAPI"
else
        fail "info.php runs under the fpm-fcgi SAPI (cgi-fcgi exit $request_status)"
        show_log "FastCGI response" "$work/response"
        show_log "container stderr" "$work/container.err"
fi

# Debian's postinst installs php.ini-production as fpm/php.ini. Without it PHP
# falls back to built-in defaults, which show errors in page output.
if grep -qE "^ini='/etc/php/[0-9.]+/fpm/php.ini'$" "$work/fpm-extensions"; then
        pass "php-fpm loads fpm/php.ini"
else
        fail "php-fpm loads fpm/php.ini; info.php reports: $(grep '^ini=' "$work/fpm-extensions")"
fi

# The spec's conf.d file sets expose_php = Off.
if ! grep -qx 'sapi=fpm-fcgi' "$work/fpm-extensions"; then
        fail "response has no X-Powered-By header: no response to inspect"
elif grep -qi '^X-Powered-By:' "$work/response"; then
        fail "response has no X-Powered-By header"
else
        pass "response has no X-Powered-By header"
fi

if ! python3 "$here/php-extensions.py" "$SPEC" >"$work/expected-extensions" 2>"$work/ext.err"; then
        fail "spec lists php extensions: $(cat "$work/ext.err")"
fi

# The same extensions must be on for the CLI SAPI, which runs passbolt's
# bin/cake commands.
runc exec "$container" /usr/bin/php -r \
        'echo implode("\n", get_loaded_extensions()), "\n", implode("\n", get_loaded_extensions(true)), "\n";' \
        >"$work/cli-extensions" 2>"$work/cli.err"
cli_status=$?
if [ "$cli_status" -ne 0 ]; then
        fail "php CLI runs in the container (exit $cli_status)"
        show_log "php CLI stderr" "$work/cli.err"
fi

for sapi in fpm cli; do
        missing_ext=
        while IFS= read -r name; do
                grep -qxF "$name" "$work/$sapi-extensions" || missing_ext="$missing_ext, $name"
        done <"$work/expected-extensions"
        count=$(wc -l <"$work/expected-extensions")
        if [ -z "$missing_ext" ] && [ "$count" -gt 0 ]; then
                pass "$sapi loads all $count extensions of the spec"
        else
                fail "$sapi loads all $count extensions of the spec; missing: ${missing_ext#, }"
        fi
done

# PHP reports an extension it cannot load at startup, on stderr.
if grep -E 'Unable to load dynamic library|Cannot load module|PHP Startup' \
        "$work/container.err" "$work/cli.err" >"$work/startup-errors"; then
        fail "php starts without extension errors"
        show_log "startup errors" "$work/startup-errors"
else
        pass "php starts without extension errors"
fi

# ---------------------------------------------------------------------------
# Package set: the image against apt's choice for the same packages.

if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
        echo "live: apt has no package lists; running apt-get update"
        apt-get update -q >"$work/apt-update.log" 2>&1 || show_log "apt-get update" "$work/apt-update.log"
fi
if python3 "$here/apt-closure.py" "$SPEC" >"$work/apt-set" 2>"$work/apt-closure.err"; then
        for f in "$rootfs"/var/lib/dpkg/status.d/*; do
                case $f in *.md5sums) continue ;; esac
                sed -n 's/^Package: //p' "$f"
        done | sort -u >"$work/image-set"
        only_apt=$(comm -23 "$work/apt-set" "$work/image-set" | tr '\n' ' ')
        only_image=$(comm -13 "$work/apt-set" "$work/image-set" | tr '\n' ' ')
        echo "live: apt's set has $(wc -l <"$work/apt-set") packages, the image $(wc -l <"$work/image-set")"
        echo "live: only in apt's set: ${only_apt:-(none)}"
        echo "live: only in the image: ${only_image:-(none)}"
        if [ -z "$only_apt" ] && [ -z "$only_image" ]; then
                pass "image packages match apt's choice"
        else
                fail "image packages match apt's choice"
        fi
        if [ "$json_packages" = "$(wc -l <"$work/image-set")" ]; then
                pass "build --json counts the image's packages"
        else
                fail "build --json counts the image's packages: json $json_packages, status.d $(wc -l <"$work/image-set")"
        fi
else
        fail "apt computes the package set"
        show_log "apt-closure.py" "$work/apt-closure.err"
fi

finish
