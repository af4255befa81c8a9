#!/bin/bash
# Live tier: build specs/passbolt-fpm.yaml and specs/passbolt-cli.yaml from the
# Debian mirror apt on this machine uses and run both images with runc. A
# FastCGI request asks php-fpm which extensions it loaded. The cli image runs
# one-shot commands (tests/live/cli.sh). For each image the tier also compares
# the packages with apt's choice and with `distill inspect`, and checks the
# root file system (os-release, symlinks).
#
# Environment:
#   DISTILL     the binary to test (default: build/distill)
#   SPEC        the php-fpm spec to build (default: specs/passbolt-fpm.yaml)
#   CLI_SPEC    the command-line spec to build (default: specs/passbolt-cli.yaml)
#   CI          when "true" and apt's mirror serves the bookworm InRelease,
#               every reason to skip is a failure
#   LIVE_KEEP   when "1", keep the work directory for inspection
#
# Without a reachable mirror the tier prints SKIP and exits 0. It needs root
# (runc), skopeo, umoci, runc, nsenter and cgi-fcgi (`make deps` installs them).
# Ends with "live: N passed, N failed, N skipped"; exits 1 on any failure.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/tests/live
DISTILL=${DISTILL:-$repo/build/distill}
SPEC=${SPEC:-$repo/specs/passbolt-fpm.yaml}
CLI_SPEC=${CLI_SPEC:-$repo/specs/passbolt-cli.yaml}

passed=0
failed=0
skipped=0
strict=no
work=
# Ids of the runc containers that may still exist, for cleanup.
containers=()

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

# Kill and delete a container and forget its id.
remove_container() {
        local id=$1 i
        runc kill "$id" KILL >/dev/null 2>&1
        runc delete -f "$id" >/dev/null 2>&1
        for i in "${!containers[@]}"; do
                [ "${containers[$i]}" = "$id" ] && unset 'containers[i]'
        done
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
        local id
        for id in "${containers[@]}"; do
                runc kill "$id" KILL >/dev/null 2>&1
                runc delete -f "$id" >/dev/null 2>&1
        done
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
# Checks shared by both images. Each image NAME keeps its files under
# $work/NAME: image.tar, build.json, build.log, the bundle and the logs.

# Build SPEC into $work/NAME/image.tar through apt's mirror. Returns 1 when
# the build fails, as nothing else can be checked then.
# --no-lock resolves afresh: the committed lock pins versions that the live
# mirror drops once they are superseded.
build_image() {
        local name=$1 spec=$2 dir=$work/$1 mirror_args build_status
        mkdir -p "$dir"
        if ! mirror_args=$("$repo/tests/lib/apt-mirrors.sh" "$spec" 2>"$dir/apt-mirrors.err"); then
                fail "$name: apt-mirrors.sh maps the spec's sources: $(cat "$dir/apt-mirrors.err")"
                return 1
        fi
        # shellcheck disable=SC2086 # mirror_args is a list of "--mirror FROM=TO" words.
        "$DISTILL" build "$spec" --no-lock -o "$dir/image.tar" --json $mirror_args \
                >"$dir/build.json" 2>"$dir/build.log"
        build_status=$?
        if [ "$build_status" -ne 0 ]; then
                fail "$name: distill build exits 0 (exit $build_status)"
                show_log "distill stderr" "$dir/build.log"
                return 1
        fi
        pass "$name: distill build exits 0"

        if python3 - "$dir/build.json" "$dir/image.tar" >"$dir/json.err" 2>&1 <<'PY'
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
                pass "$name: build --json describes the output"
        else
                fail "$name: build --json describes the output: $(cat "$dir/json.err")"
        fi
}

# Copy the image's host platform into an OCI layout with skopeo and unpack it
# with umoci into $work/NAME/bundle. Returns 1 when either tool fails.
unpack_image() {
        local name=$1 dir=$work/$1
        if ! skopeo copy -q "oci-archive:$dir/image.tar" "oci:$dir/oci:latest" >"$dir/skopeo.log" 2>&1; then
                fail "$name: skopeo copies the oci-archive"
                show_log "skopeo" "$dir/skopeo.log"
                return 1
        fi
        pass "$name: skopeo copies the oci-archive"
        if ! umoci unpack --image "$dir/oci:latest" "$dir/bundle" >"$dir/umoci.log" 2>&1; then
                fail "$name: umoci unpacks the image"
                show_log "umoci" "$dir/umoci.log"
                return 1
        fi
        pass "$name: umoci unpacks the image"
}

# When SPEC lists arm64: copy the arm64 platform with skopeo, check that ELF
# (a path in the layer) is an AArch64 ELF file (e_machine 183), and extract the
# layer's status.d into $work/NAME/arm64-status.d for check_inspect.
check_arm64() {
        local name=$1 spec=$2 elf=$3 dir=$work/$1
        grep -q '^architectures:.*arm64' "$spec" || return 0
        if skopeo copy -q --override-arch arm64 "oci-archive:$dir/image.tar" "oci:$dir/oci-arm64:arm64" \
                >"$dir/skopeo-arm64.log" 2>&1 &&
                python3 - "$dir/oci-arm64" "$elf" "$dir/arm64-status.d" >"$dir/arm64.err" 2>&1 <<'PY'
import json, os, struct, sys, tarfile
layout, elf, status_dir = sys.argv[1:4]
def blob(digest):
    return os.path.join(layout, "blobs", *digest.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))
assert config["architecture"] == "arm64", "config architecture is %r" % config["architecture"]
os.makedirs(status_dir)
header = None
# "r:*", not the stream mode "r|*": the layer is several gzip members, which
# Python's gzip module reads as one stream and tarfile's stream mode does not.
with tarfile.open(blob(manifest["layers"][0]["digest"]), "r:*") as t:
    for member in t:
        path = member.name[2:] if member.name.startswith("./") else member.name
        if path == elf and member.isfile():
            header = t.extractfile(member).read(20)
        elif path.startswith("var/lib/dpkg/status.d/") and member.isfile():
            with open(os.path.join(status_dir, os.path.basename(path)), "wb") as f:
                f.write(t.extractfile(member).read())
assert header is not None, "%s is not a regular file in the layer" % elf
assert header[:4] == b"\x7fELF", "%s is not an ELF file" % elf
machine = struct.unpack("<H", header[18:20])[0]
assert machine == 183, "%s has e_machine %d, not 183 (AArch64)" % (elf, machine)
PY
        then
                pass "$name: arm64 image holds an AArch64 /$elf"
        else
                fail "$name: arm64 image holds an AArch64 /$elf: $(cat "$dir/skopeo-arm64.log" "$dir/arm64.err" | tail -3)"
        fi
}

# Compare the packages `distill inspect` lists for linux/ARCH with the
# status.d directory STATUS, and check that `inspect --sizes` gives each of
# them a byte count.
check_inspect() {
        local name=$1 arch=$2 status=$3 dir=$work/$1 only_status only_inspect
        if [ ! -d "$status" ]; then
                fail "$name: inspect lists the $arch packages: no status.d to compare with"
                return
        fi
        if ! python3 "$here/image-packages.py" status "$status" >"$dir/status-$arch" 2>"$dir/status.err"; then
                fail "$name: status.d of $arch is readable: $(cat "$dir/status.err")"
                return
        fi
        if ! "$DISTILL" inspect "$dir/image.tar" >"$dir/inspect.out" 2>"$dir/inspect.err"; then
                fail "$name: distill inspect exits 0"
                show_log "distill inspect stderr" "$dir/inspect.err"
        elif ! python3 "$here/image-packages.py" inspect "$arch" "$dir/inspect.out" \
                >"$dir/inspect-$arch" 2>"$dir/inspect-parse.err"; then
                fail "$name: inspect lists the $arch packages: $(cat "$dir/inspect-parse.err")"
        else
                only_status=$(comm -23 "$dir/status-$arch" "$dir/inspect-$arch" | tr '\n' ',')
                only_inspect=$(comm -13 "$dir/status-$arch" "$dir/inspect-$arch" | tr '\n' ',')
                if [ -z "$only_status$only_inspect" ] && [ -s "$dir/status-$arch" ]; then
                        pass "$name: inspect lists the $arch packages of status.d"
                else
                        fail "$name: inspect lists the $arch packages of status.d; only in status.d: ${only_status:-(none)}; only in inspect: ${only_inspect:-(none)}"
                fi
        fi

        if ! "$DISTILL" inspect "$dir/image.tar" --sizes >"$dir/sizes.out" 2>"$dir/sizes.err"; then
                fail "$name: distill inspect --sizes exits 0"
                show_log "distill inspect --sizes stderr" "$dir/sizes.err"
        elif ! python3 "$here/image-packages.py" sizes "$arch" "$dir/sizes.out" \
                >"$dir/sizes-$arch" 2>"$dir/sizes-parse.err"; then
                fail "$name: inspect --sizes gives every $arch package a byte count: $(cat "$dir/sizes-parse.err")"
        else
                only_status=$(cut -d' ' -f1 "$dir/status-$arch" | comm -23 - "$dir/sizes-$arch" | tr '\n' ',')
                only_inspect=$(cut -d' ' -f1 "$dir/status-$arch" | comm -13 - "$dir/sizes-$arch" | tr '\n' ',')
                if [ -z "$only_status$only_inspect" ] && [ -s "$dir/status-$arch" ]; then
                        pass "$name: inspect --sizes gives every $arch package a byte count"
                else
                        fail "$name: inspect --sizes gives every $arch package a byte count; missing: ${only_status:-(none)}; not in status.d: ${only_inspect:-(none)}"
                fi
        fi
}

# Compare the image's packages with apt's choice for the same spec, and with
# the count in build --json.
check_package_set() {
        local name=$1 spec=$2 dir=$work/$1 rootfs=$work/$1/bundle/rootfs json_packages only_apt only_image f
        if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
                echo "live: apt has no package lists; running apt-get update"
                apt-get update -q >"$work/apt-update.log" 2>&1 || show_log "apt-get update" "$work/apt-update.log"
        fi
        if ! python3 "$here/apt-closure.py" --arch "$host_arch" "$spec" >"$dir/apt-set" 2>"$dir/apt-closure.err"; then
                fail "$name: apt computes the package set"
                show_log "apt-closure.py" "$dir/apt-closure.err"
                return
        fi

        for f in "$rootfs"/var/lib/dpkg/status.d/*; do
                case $f in *.md5sums) continue ;; esac
                sed -n 's/^Package: //p' "$f"
        done | sort -u >"$dir/image-set"
        only_apt=$(comm -23 "$dir/apt-set" "$dir/image-set" | tr '\n' ' ')
        only_image=$(comm -13 "$dir/apt-set" "$dir/image-set" | tr '\n' ' ')
        echo "live: $name: apt's set has $(wc -l <"$dir/apt-set") packages, the image $(wc -l <"$dir/image-set")"
        echo "live: $name: only in apt's set: ${only_apt:-(none)}"
        echo "live: $name: only in the image: ${only_image:-(none)}"
        if [ -z "$only_apt" ] && [ -z "$only_image" ]; then
                pass "$name: image packages match apt's choice"
        else
                fail "$name: image packages match apt's choice"
        fi

        json_packages=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("packages"))' "$dir/build.json" 2>/dev/null)
        if [ "$json_packages" = "$(wc -l <"$dir/image-set")" ]; then
                pass "$name: build --json counts the image's packages"
        else
                fail "$name: build --json counts the image's packages: json $json_packages, status.d $(wc -l <"$dir/image-set")"
        fi
}

# Print the value of KEY in the os-release file FILE, without its quotes.
os_release_value() {
        sed -n "s/^$2=//p" "$1" 2>/dev/null | sed -E 's/^"(.*)"$/\1/; s/^'"'"'(.*)'"'"'$/\1/' | head -n 1
}

# os-release, which distill writes (from base-files' copy when the image has
# it), and nsswitch.conf.
check_system_files() {
        local name=$1 rootfs=$work/$1/bundle/rootfs os_release id version_id pretty
        os_release=$rootfs/usr/lib/os-release
        # os-release(5) values may be quoted: ID=debian and ID="debian" are equal.
        id=$(os_release_value "$os_release" ID)
        version_id=$(os_release_value "$os_release" VERSION_ID)
        if [ -f "$os_release" ] && [ ! -L "$os_release" ] && [ "$id" = debian ] && [ "$version_id" = 12 ]; then
                pass "$name: /usr/lib/os-release has ID=debian and VERSION_ID=\"12\""
        else
                fail "$name: /usr/lib/os-release has ID=debian and VERSION_ID=\"12\"; found: $(tr '\n' ' ' <"$os_release" 2>&1)"
        fi
        # Debian's base-files writes "Debian GNU/Linux 12 (bookworm)".
        pretty=$(os_release_value "$os_release" PRETTY_NAME)
        if [[ $pretty == *"Debian GNU/Linux 12"* ]] && [[ $pretty != *" )"* ]]; then
                pass "$name: os-release PRETTY_NAME names Debian GNU/Linux 12"
        else
                fail "$name: os-release PRETTY_NAME names Debian GNU/Linux 12 without a space before ')'; found: $pretty"
        fi
        if [ -L "$rootfs/etc/os-release" ] && [ "$(readlink "$rootfs/etc/os-release")" = ../usr/lib/os-release ]; then
                pass "$name: /etc/os-release -> ../usr/lib/os-release"
        else
                fail "$name: /etc/os-release -> ../usr/lib/os-release; found: $(ls -ld "$rootfs/etc/os-release" 2>&1)"
        fi
        # glibc reads nsswitch.conf for every user, group and host lookup.
        if [ -f "$rootfs/etc/nsswitch.conf" ] && [ -s "$rootfs/etc/nsswitch.conf" ]; then
                pass "$name: /etc/nsswitch.conf exists"
        else
                fail "$name: /etc/nsswitch.conf exists; found: $(ls -ld "$rootfs/etc/nsswitch.conf" 2>&1)"
        fi
}

# Every symlink must resolve inside the rootfs. distill warns about the ones
# that do not ("the symlink /PATH -> TARGET points to nothing in the image"),
# so only those missing from the build log are failures.
check_symlinks() {
        local name=$1 dir=$work/$1 line path target unwarned=
        python3 "$here/dangling-symlinks.py" "$dir/bundle/rootfs" >"$dir/dangling" 2>"$dir/dangling.err"
        if [ -s "$dir/dangling.err" ]; then
                fail "$name: dangling-symlinks.py runs: $(cat "$dir/dangling.err")"
                return
        fi
        while IFS= read -r line; do
                path=${line%% -> *}
                target=${line#* -> }
                if grep -qF "the symlink $path -> $target points to nothing in the image" "$dir/build.log"; then
                        echo "live: $name: dangling symlink that distill warned about: $line"
                else
                        unwarned="$unwarned, $line"
                fi
        done <"$dir/dangling"
        if [ -z "$unwarned" ]; then
                pass "$name: every symlink resolves in the rootfs or has a build warning"
        else
                fail "$name: every symlink resolves in the rootfs or has a build warning; dangling without a warning: ${unwarned#, }"
        fi
}

# The accounts, directories, symlinks and CA bundle that both specs declare
# or that ca-certificates' postinst would make.
check_accounts_and_files() {
        local name=$1 rootfs=$work/$1/bundle/rootfs link path target entry uid gid mode found
        for link in /usr/sbin/php-fpm:php-fpm8.2 /usr/bin/php:php8.2; do
                path=${link%%:*}
                target=${link#*:}
                if [ "$(readlink "$rootfs$path")" = "$target" ] && [ -x "$rootfs$path" ]; then
                        pass "$name: symlink $path -> $target"
                else
                        fail "$name: symlink $path -> $target; found '$(readlink "$rootfs$path")'"
                fi
        done

        for entry in /run/php:33:33:755 /var/www:33:33:755 /tmp:0:0:1777; do
                IFS=: read -r path uid gid mode <<<"$entry"
                found=$(stat -c '%u:%g:%a' "$rootfs$path" 2>&1)
                if [ "$found" = "$uid:$gid:$mode" ]; then
                        pass "$name: directory $path is $uid:$gid mode $mode"
                else
                        fail "$name: directory $path is $uid:$gid mode $mode; found $found"
                fi
        done

        # update-ca-certificates builds this bundle in ca-certificates' postinst.
        # libcurl and OpenSSL in Debian read it.
        if grep -q 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt" 2>/dev/null; then
                pass "$name: image has the CA bundle"
        else
                fail "$name: image has the CA bundle /etc/ssl/certs/ca-certificates.crt"
        fi

        if grep -qx 'www-data:x:33:33:[^:]*:/var/www:/usr/sbin/nologin' "$rootfs/etc/passwd" &&
                grep -q '^www-data:x:33:' "$rootfs/etc/group"; then
                pass "$name: www-data account is 33:33"
        else
                fail "$name: www-data account is 33:33; /etc/passwd has: $(grep www-data "$rootfs/etc/passwd" 2>&1)"
        fi
}

# The image checks that need no container, for an unpacked image NAME.
check_unpacked_image() {
        local name=$1 spec=$2
        check_accounts_and_files "$name"
        check_system_files "$name"
        check_symlinks "$name"
        check_inspect "$name" "$host_arch" "$work/$name/bundle/rootfs/var/lib/dpkg/status.d"
        if [ -d "$work/$name/arm64-status.d" ]; then
                check_inspect "$name" arm64 "$work/$name/arm64-status.d"
        fi
        check_package_set "$name" "$spec"
}

# ---------------------------------------------------------------------------
# passbolt-fpm: run php-fpm and ask it over FastCGI for its extensions.

test_fpm() {
        local name=passbolt-fpm dir=$work/passbolt-fpm
        local bundle=$dir/bundle rootfs=$dir/bundle/rootfs
        local shells container pid listening run_status request_status cli_status sapi missing_ext count ext
        build_image "$name" "$SPEC" || return
        check_arm64 "$name" "$SPEC" usr/sbin/php-fpm8.2
        unpack_image "$name" || return
        check_unpacked_image "$name" "$SPEC"

        shells=$(cd "$rootfs" && for f in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash; do
                [ -e "$f" ] || [ -L "$f" ] && echo "/$f"
        done)
        if [ -z "$shells" ]; then
                pass "$name: image contains no shell"
        else
                fail "$name: image contains no shell; found: $(echo "$shells" | tr '\n' ' ')"
        fi

        if python3 - "$bundle/config.json" >"$dir/config.err" 2>&1 <<'PY'
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
                pass "$name: image config runs php-fpm as www-data"
        else
                fail "$name: image config runs php-fpm as www-data: $(cat "$dir/config.err")"
        fi

        mkdir -m 0755 "$dir/www"
        cat >"$dir/www/info.php" <<'PHP'
<?php
echo "sapi=", php_sapi_name(), "\n";
echo "ini=", var_export(php_ini_loaded_file(), true), "\n";
echo implode("\n", get_loaded_extensions()), "\n";
echo implode("\n", get_loaded_extensions(true)), "\n";
PHP
        chmod 0644 "$dir/www/info.php"

        python3 - "$bundle/config.json" "$dir/www" <<'PY'
import json, sys
path, www = sys.argv[1], sys.argv[2]
config = json.load(open(path))
config["process"]["terminal"] = False
config["mounts"].append({"destination": "/var/www/live-test", "type": "bind",
                         "source": www, "options": ["rbind", "ro"]})
json.dump(config, open(path, "w"), indent=2)
PY

        container=distill-live-$$-fpm
        containers+=("$container")
        (cd "$bundle" && runc run -d --pid-file "$dir/container.pid" "$container" \
                >"$dir/container.out" 2>"$dir/container.err" </dev/null)
        run_status=$?
        if [ "$run_status" -ne 0 ]; then
                fail "$name: runc starts the container (exit $run_status)"
                show_log "container stderr" "$dir/container.err"
                remove_container "$container"
                return
        fi
        pid=$(cat "$dir/container.pid")
        pass "$name: runc starts the container"

        # Poll with a bounded number of attempts: a request that connects means
        # php-fpm listens. The request names no script, so php-fpm returns 404,
        # which is fine.
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
                pass "$name: php-fpm listens on 127.0.0.1:9000"
        else
                fail "$name: php-fpm listens on 127.0.0.1:9000"
                show_log "container stderr" "$dir/container.err"
                remove_container "$container"
                return
        fi

        env -i SCRIPT_FILENAME=/var/www/live-test/info.php SCRIPT_NAME=/live-test/info.php \
                REQUEST_METHOD=GET QUERY_STRING= SERVER_PROTOCOL=HTTP/1.1 \
                /usr/bin/nsenter --net="/proc/$pid/ns/net" \
                "$(command -v cgi-fcgi)" -bind -connect 127.0.0.1:9000 </dev/null >"$dir/response" 2>&1
        request_status=$?
        # The body follows the first empty line of the CGI response (CRLF line ends).
        tr -d '\r' <"$dir/response" | sed '1,/^$/d' >"$dir/fpm-extensions"
        if [ "$request_status" -eq 0 ] && grep -qx 'sapi=fpm-fcgi' "$dir/fpm-extensions"; then
                pass "$name: info.php runs under the fpm-fcgi SAPI"
        else
                fail "$name: info.php runs under the fpm-fcgi SAPI (cgi-fcgi exit $request_status)"
                show_log "FastCGI response" "$dir/response"
                show_log "container stderr" "$dir/container.err"
        fi

        # Debian's postinst installs php.ini-production as fpm/php.ini. Without
        # it PHP falls back to built-in defaults, which show errors in page output.
        if grep -qE "^ini='/etc/php/[0-9.]+/fpm/php.ini'$" "$dir/fpm-extensions"; then
                pass "$name: php-fpm loads fpm/php.ini"
        else
                fail "$name: php-fpm loads fpm/php.ini; info.php reports: $(grep '^ini=' "$dir/fpm-extensions")"
        fi

        # The spec's conf.d file sets expose_php = Off.
        if ! grep -qx 'sapi=fpm-fcgi' "$dir/fpm-extensions"; then
                fail "$name: response has no X-Powered-By header: no response to inspect"
        elif grep -qi '^X-Powered-By:' "$dir/response"; then
                fail "$name: response has no X-Powered-By header"
        else
                pass "$name: response has no X-Powered-By header"
        fi

        if ! python3 "$here/php-extensions.py" "$SPEC" >"$dir/expected-extensions" 2>"$dir/ext.err"; then
                fail "$name: spec lists php extensions: $(cat "$dir/ext.err")"
        fi

        # The same extensions must be on for the CLI SAPI, which runs passbolt's
        # bin/cake commands.
        runc exec "$container" /usr/bin/php -r \
                'echo implode("\n", get_loaded_extensions()), "\n", implode("\n", get_loaded_extensions(true)), "\n";' \
                >"$dir/cli-extensions" 2>"$dir/cli.err"
        cli_status=$?
        if [ "$cli_status" -ne 0 ]; then
                fail "$name: php CLI runs in the container (exit $cli_status)"
                show_log "php CLI stderr" "$dir/cli.err"
        fi

        for sapi in fpm cli; do
                missing_ext=
                while IFS= read -r ext; do
                        grep -qxF "$ext" "$dir/$sapi-extensions" || missing_ext="$missing_ext, $ext"
                done <"$dir/expected-extensions"
                count=$(wc -l <"$dir/expected-extensions")
                if [ -z "$missing_ext" ] && [ "$count" -gt 0 ]; then
                        pass "$name: $sapi loads all $count extensions of the spec"
                else
                        fail "$name: $sapi loads all $count extensions of the spec; missing: ${missing_ext#, }"
                fi
        done

        # PHP reports an extension it cannot load at startup, on stderr.
        if grep -E 'Unable to load dynamic library|Cannot load module|PHP Startup' \
                "$dir/container.err" "$dir/cli.err" >"$dir/startup-errors"; then
                fail "$name: php starts without extension errors"
                show_log "startup errors" "$dir/startup-errors"
        else
                pass "$name: php starts without extension errors"
        fi
        remove_container "$container"
}

# shellcheck source=tests/live/cli.sh
. "$here/cli.sh"

# ---------------------------------------------------------------------------
# Preconditions: apt's mirror, root, tools, the binary.

check_mirror_mapping

work=$(mktemp -d /tmp/distill-live.XXXXXX)
chmod 0755 "$work"

if ! "$repo/tests/lib/apt-mirrors.sh" "$SPEC" >/dev/null 2>"$work/apt-mirrors.err"; then
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
for tool in skopeo umoci runc nsenter cgi-fcgi python3 apt-get apt-cache dpkg curl; do
        command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
        skip_rest "missing tools:$missing (run 'make deps')"
fi
if [ ! -x "$DISTILL" ]; then
        fail "distill binary not found at $DISTILL (run 'make')"
        finish
fi
# skopeo unpacks the image for the machine's platform, and apt-closure.py
# resolves for the same architecture.
host_arch=$(dpkg --print-architecture)

test_fpm
test_cli
finish
