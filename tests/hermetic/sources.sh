#!/usr/bin/env bash
# Hermetic tests of how distill treats archive metadata: Packages index variants,
# InRelease and Release.gpg signatures, Valid-Until and snapshot sources,
# Acquire-By-Hash, Suite and Codename, pool checksums, --mirror and DISTILL_MIRROR.
#
# Builds one tiny .deb and a set of small apt repositories signed with throw-away
# gpg keys, serves them with python3 -m http.server on 127.0.0.1, and runs
# `distill build` against them. Nothing leaves the machine. Run from anywhere after
# build/distill-san exists:
#
#     tests/hermetic/sources.sh
#     DISTILL=build/distill tests/hermetic/sources.sh
#     SOURCES_KEEP=1 tests/hermetic/sources.sh   (keep the work directory for debugging)
#
# The last line is "N passed, N failed"; the exit status is non-zero when any check
# failed. Everything is written below one mktemp -d directory that the EXIT trap
# removes, together with the http server and the gpg-agent it started.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
DISTILL=$(realpath -m "${DISTILL:-$TOP/build/distill-san}")

SUITE=fixture
SNAPSHOT=20240101T000000Z
# Release Date: the day before the snapshot timestamp above.
RELEASE_DATE='Sun, 31 Dec 2023 00:00:00 UTC'
# Valid-Until of the expired repository: after the snapshot timestamp, before today.
EXPIRED_VALID_UNTIL='Sun, 07 Jan 2024 00:00:00 UTC'
# Port 1 (tcpmux) has no listener on 127.0.0.1 here, so a connection is refused at once.
UNREACHABLE=http://127.0.0.1:1/unreachable/$SNAPSHOT
UNREACHABLE_EXTRA=http://127.0.0.1:1/unreachable-extra
# Seconds one distill run may take before it counts as hung. The value is generous
# because the sanitizer build is slower than the normal one.
RUN_TIMEOUT=300
# Seconds one gpg, dpkg-deb or apt-ftparchive call may take before it counts as hung.
TOOL_TIMEOUT=120

declare -i PASSED=0 FAILED=0
FAILED_NAMES=()
SUMMARY_PRINTED=0
SERVER_PID=
WORK=

# SOURCE_DATE_EPOCH or DISTILL_MIRROR from the caller would change what is under test.
unset SOURCE_DATE_EPOCH DISTILL_MIRROR

# --- bookkeeping ----------------------------------------------------------------

print_summary() {
        if ((FAILED > 0)); then
                printf '\nfailed checks:\n'
                printf '  %s\n' "${FAILED_NAMES[@]}"
        fi
        printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
        SUMMARY_PRINTED=1
}

cleanup() {
        local status=$?
        set +e
        if [[ -n $SERVER_PID ]]; then
                kill "$SERVER_PID" 2>/dev/null
                wait "$SERVER_PID" 2>/dev/null
        fi
        if [[ -n $WORK ]]; then
                [[ -d $WORK/gnupg ]] && GNUPGHOME=$WORK/gnupg timeout 30 gpgconf --kill all 2>/dev/null
                if [[ ${SOURCES_KEEP:-0} == 1 ]]; then
                        printf 'SOURCES_KEEP=1: kept %s\n' "$WORK"
                else
                        rm -rf "$WORK"
                fi
        fi
        if ((SUMMARY_PRINTED == 0)); then
                printf 'sources.sh stopped before finishing (exit status %d); see the output above\n' "$status"
                FAILED+=1
                FAILED_NAMES+=("sources.sh finished")
                print_summary
                exit 1
        fi
}
trap cleanup EXIT

# die MESSAGE: stop the script, because no case can be trusted once a fixture is wrong.
die() {
        printf 'sources.sh: %s\n' "$1" >&2
        exit 1
}

# check NAME COMMAND...: run COMMAND, count it as passed when it exits 0, otherwise
# print its output under the name.
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

section() {
        printf '\n== %s\n' "$1"
}

# --- running distill ------------------------------------------------------------

# run_build LABEL SPEC [VAR=VALUE]... -- [ARG]...
# Run `distill build SPEC -o $OUT/LABEL/image.tar --cache $CACHE/LABEL ARG...` with
# the VAR=VALUE environment, recording stdout, stderr and the exit status as
# $LOGS/LABEL.{out,err,rc}. Each label gets its own empty cache, so that an index
# fetched by an earlier case cannot stand in for the one under test.
run_build() {
        local label=$1 spec=$2
        shift 2
        local env_vars=()
        while (($# > 0)) && [[ $1 != -- ]]; do
                env_vars+=("$1")
                shift
        done
        (($# > 0)) && shift
        mkdir -p "$OUT/$label"
        local status=0
        timeout "$RUN_TIMEOUT" env \
                -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY \
                -u all_proxy -u ALL_PROXY \
                no_proxy=127.0.0.1 NO_PROXY=127.0.0.1 TMPDIR="$WORK/tmp" \
                UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
                "${env_vars[@]}" "$DISTILL" build "$spec" -o "$OUT/$label/image.tar" \
                --cache "$CACHE/$label" "$@" \
                >"$LOGS/$label.out" 2>"$LOGS/$label.err" </dev/null || status=$?
        printf '%d\n' "$status" >"$LOGS/$label.rc"
        printf '     %s -> exit %d\n' "$label" "$status"
}

# exit_status LABEL EXPECTED: distill's exit status for run LABEL was EXPECTED.
exit_status() {
        local label=$1 expected=$2 actual
        actual=$(cat "$LOGS/$label.rc")
        if [[ $actual != "$expected" ]]; then
                printf 'distill exited %s, expected %s. stderr (last 30 lines):\n' "$actual" "$expected"
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

# no_sanitizer_report LABEL: AddressSanitizer, LeakSanitizer and UBSan stayed quiet.
no_sanitizer_report() {
        if grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' \
                "$LOGS/$1.err"; then
                return 1
        fi
}

# output_dir_empty LABEL: a failed build left nothing where -o pointed, neither the
# image nor a temporary file beside it.
output_dir_empty() {
        local left
        left=$(find "$OUT/$1" -mindepth 1 -printf '%P\n')
        if [[ -n $left ]]; then
                printf 'left behind in the output directory:\n%s\n' "$left"
                return 1
        fi
}

# json_members_lack IMAGE TEXT...: no JSON member of the image tar (index.json,
# manifest.json, oci-layout, the manifest and config blobs) contains any TEXT.
json_members_lack() {
        python3 - "$@" <<'EOF'
import json, sys, tarfile

image, forbidden = sys.argv[1], sys.argv[2:]
found_json = 0
bad = []
with tarfile.open(image) as tar:
    for member in tar.getmembers():
        if not member.isfile():
            continue
        data = tar.extractfile(member).read()
        if not data.lstrip()[:1] in (b"{", b"["):
            continue
        try:
            json.loads(data)
        except ValueError:
            continue
        found_json += 1
        text = data.decode("utf-8", "replace")
        for needle in forbidden:
            if needle in text:
                bad.append(f"{member.name} contains {needle!r}: {text[:400]}")
if found_json < 3:
    bad.append(f"only {found_json} JSON members found; expected index.json, manifest.json and a config")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}

# expect_build LABEL [TEXT]...: run LABEL succeeded and wrote an image whose JSON
# members contain no TEXT (the mirror URLs the build was fetched from).
expect_build() {
        local label=$1
        shift
        check "$label: exit status 0" exit_status "$label" 0
        check "$label: no sanitizer report" no_sanitizer_report "$label"
        check "$label: image written" test -s "$OUT/$label/image.tar"
        if (($# > 0)) && [[ -s $OUT/$label/image.tar ]]; then
                check "$label: no mirror URL in the JSON members" \
                        json_members_lack "$OUT/$label/image.tar" "$@"
        fi
}

# expect_failure LABEL STATUS TEXT...: run LABEL exited with STATUS, named each TEXT
# on stderr and left no output behind.
expect_failure() {
        local label=$1 status=$2
        shift 2
        check "$label: exit status $status" exit_status "$label" "$status"
        check "$label: message" stderr_has "$label" "$@"
        check "$label: no output left" output_dir_empty "$label"
        check "$label: no sanitizer report" no_sanitizer_report "$label"
}

# --- fixtures -------------------------------------------------------------------

setup_workdir() {
        WORK=$(mktemp -d "${TMPDIR:-/tmp}/distill-sources.XXXXXX")
        LOGS=$WORK/logs
        OUT=$WORK/out
        CACHE=$WORK/cache
        WWW=$WORK/www
        mkdir -p "$LOGS" "$OUT" "$CACHE" "$WWW" "$WORK/tmp" "$WORK/debs" "$WORK/keys" "$WORK/specs"
}

# make_key NAME: a passphrase-less ed25519 signing key in $WORK/gnupg whose public
# part goes to $WORK/keys/NAME.gpg (binary, as a spec keyring). Prints the fingerprint.
make_key() {
        local name=$1
        mkdir -p "$WORK/gnupg"
        chmod 0700 "$WORK/gnupg"
        GNUPGHOME=$WORK/gnupg timeout "$TOOL_TIMEOUT" gpg --batch --quiet --passphrase '' \
                --quick-gen-key "$name <$name@example.invalid>" ed25519 sign never 2>/dev/null
        local fpr
        fpr=$(GNUPGHOME=$WORK/gnupg timeout "$TOOL_TIMEOUT" gpg --batch --with-colons \
                --list-keys "$name@example.invalid" 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }')
        [[ -n $fpr ]] || die "gpg did not create the key $name"
        GNUPGHOME=$WORK/gnupg timeout "$TOOL_TIMEOUT" gpg --batch --export "$fpr" >"$WORK/keys/$name.gpg"
        printf '%s\n' "$fpr"
}

# make_deb NAME VERSION TEXT [OUT.deb]: a .deb shipping /usr/share/NAME/marker with
# TEXT, written to OUT.deb or to $WORK/debs/NAME_VERSION_amd64.deb.
make_deb() {
        local name=$1 version=$2 text=$3
        local out=${4:-$WORK/debs/${name}_${version}_amd64.deb}
        local dir=$WORK/debsrc/${name}_$version
        rm -rf "$dir"
        mkdir -p "$dir/DEBIAN" "$dir/usr/share/$name"
        printf '%s\n' "$text" >"$dir/usr/share/$name/marker"
        cat >"$dir/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: amd64
Maintainer: Distill Hermetic Tests <hermetic@example.invalid>
Installed-Size: 1
Section: misc
Priority: optional
Description: $name fixture for the distill archive metadata tests
 This package exists only to be installed by tests/hermetic/sources.sh.
EOF
        SOURCE_DATE_EPOCH=1704067200 timeout "$TOOL_TIMEOUT" dpkg-deb --root-owner-group -Zxz \
                --build "$dir" "$out" >/dev/null
}

# new_repo NAME [DEB]...: $WWW/NAME with the DEBs (default fx-tiny) in its pool and
# dists/$SUITE/main/binary-amd64/Packages, but no compressed index and no Release yet.
new_repo() {
        local repo=$WWW/$1
        shift
        (($# > 0)) || set -- "$WORK/debs/fx-tiny_1.0_amd64.deb"
        local deb name
        for deb in "$@"; do
                name=$(dpkg-deb -f "$deb" Package)
                mkdir -p "$repo/pool/main/${name:0:1}/$name"
                cp "$deb" "$repo/pool/main/${name:0:1}/$name/"
        done
        mkdir -p "$repo/dists/$SUITE/main/binary-amd64"
        (cd "$repo" && timeout "$TOOL_TIMEOUT" apt-ftparchive packages pool) \
                >"$repo/dists/$SUITE/main/binary-amd64/Packages" 2>/dev/null
        grep -q '^Package: ' "$repo/dists/$SUITE/main/binary-amd64/Packages" ||
                die "apt-ftparchive wrote an empty Packages for $repo"
}

# compress INDEXDIR: Packages.gz and Packages.xz next to Packages.
compress() {
        gzip -9nc "$1/Packages" >"$1/Packages.gz"
        xz -9c "$1/Packages" >"$1/Packages.xz"
}

# write_release DISTDIR SUITE [APT-FTPARCHIVE-OPTION]...: DISTDIR/Release listing
# the indexes below DISTDIR, for suite and codename SUITE unless an option overrides.
write_release() {
        local dist=$1 suite=$2
        shift 2
        local options=()
        local option
        for option in "$@"; do
                options+=(-o "$option")
        done
        (
                cd "$dist"
                timeout "$TOOL_TIMEOUT" apt-ftparchive \
                        -o APT::FTPArchive::Release::Origin=distill-sources \
                        -o APT::FTPArchive::Release::Label=distill-sources \
                        -o APT::FTPArchive::Release::Suite="$suite" \
                        -o APT::FTPArchive::Release::Codename="$suite" \
                        -o APT::FTPArchive::Release::Date="$RELEASE_DATE" \
                        -o APT::FTPArchive::Release::Architectures=amd64 \
                        -o APT::FTPArchive::Release::Components=main \
                        "${options[@]}" \
                        release . >../Release.new
        )
        mv "$dist/../Release.new" "$dist/Release"
}

# sign DISTDIR FPR...: InRelease clearsigned by every FPR, Release.gpg (detached,
# armored) by the first.
sign() {
        local dist=$1
        shift
        local users=() fpr
        for fpr in "$@"; do
                users+=(--local-user "$fpr")
        done
        rm -f "$dist/InRelease" "$dist/Release.gpg"
        GNUPGHOME=$WORK/gnupg timeout "$TOOL_TIMEOUT" gpg --batch --quiet "${users[@]}" \
                --digest-algo SHA512 --clearsign -o "$dist/InRelease" "$dist/Release"
        GNUPGHOME=$WORK/gnupg timeout "$TOOL_TIMEOUT" gpg --batch --quiet --local-user "$1" \
                --digest-algo SHA512 --armor --detach-sign -o "$dist/Release.gpg" "$dist/Release"
}

# add_by_hash DISTDIR: copy each index that DISTDIR/Release lists under SHA256 to
# <its directory>/by-hash/SHA256/<digest>, the layout Acquire-By-Hash clients fetch.
add_by_hash() {
        local dist=$1 digest file
        release_sha256_lines "$dist/Release" | while read -r digest _ file; do
                [[ -f $dist/$file ]] || continue
                mkdir -p "$dist/$(dirname "$file")/by-hash/SHA256"
                cp "$dist/$file" "$dist/$(dirname "$file")/by-hash/SHA256/$digest"
        done
}

# release_sha256_lines RELEASE: the "digest size path" lines of its SHA256 field.
release_sha256_lines() {
        awk '/^[A-Za-z0-9-]+:/ { in_sha256 = ($1 == "SHA256:"); next }
             in_sha256 && /^ / && NF == 3 { print $1, $2, $3 }' "$1"
}

# release_digest RELEASE PATH: the SHA256 that RELEASE lists for PATH.
release_digest() {
        release_sha256_lines "$1" | awk -v path="$2" '$3 == path { print $1 }'
}

# release_lists_exactly RELEASE PATH...: RELEASE lists exactly the PATHs under SHA256,
# or the script stops.
release_lists_exactly() {
        local release=$1
        shift
        local listed expected
        listed=$(release_sha256_lines "$release" | awk '{ print $3 }' | LC_ALL=C sort)
        expected=$(printf '%s\n' "$@" | LC_ALL=C sort)
        [[ $listed == "$expected" ]] || die "$release lists $(tr '\n' ' ' <<<"$listed")instead of $*"
}

# write_spec NAME URL [KEYRING [SUITE]]: $WORK/specs/NAME.yaml, one source that
# installs fx-tiny.
write_spec() {
        local name=$1 url=$2 keyring=${3:-$WORK/keys/trusted.gpg} suite=${4:-$SUITE}
        cat >"$WORK/specs/$name.yaml" <<EOF
name: sources-$name
sources:
  - url: $url
    suites: [$suite]
    components: [main]
    keyring: $keyring
architectures: [amd64]
packages: [fx-tiny]
EOF
}

start_server() {
        python3 -u -m http.server --bind 127.0.0.1 --directory "$WWW" 0 \
                >"$WORK/http.out" 2>"$WORK/http.log" &
        SERVER_PID=$!
        local _
        for _ in $(seq 1 100); do
                PORT=$(sed -n 's/^Serving HTTP on 127\.0\.0\.1 port \([0-9]*\) .*/\1/p' "$WORK/http.out")
                if [[ -n $PORT ]] && curl -sf --noproxy '*' --max-time 5 -o /dev/null \
                        "http://127.0.0.1:$PORT/"; then
                        SERVER=http://127.0.0.1:$PORT
                        printf 'http.server on 127.0.0.1:%s\n' "$PORT"
                        return 0
                fi
                sleep 0.1
        done
        cat "$WORK/http.out" "$WORK/http.log" >&2
        die "http.server did not answer"
}

# Index variants: which compressed Packages files a Release lists.
make_index_repos() {
        local name variant index
        for variant in xz gz plain; do
                name=index-$variant
                new_repo "$name"
                index=$WWW/$name/dists/$SUITE/main/binary-amd64
                case $variant in
                xz) xz -9 "$index/Packages" ;;
                gz) gzip -9n "$index/Packages" ;;
                plain) ;;
                esac
                write_release "$WWW/$name/dists/$SUITE" "$SUITE"
                case $variant in
                xz) release_lists_exactly "$WWW/$name/dists/$SUITE/Release" main/binary-amd64/Packages.xz ;;
                gz) release_lists_exactly "$WWW/$name/dists/$SUITE/Release" main/binary-amd64/Packages.gz ;;
                plain) release_lists_exactly "$WWW/$name/dists/$SUITE/Release" main/binary-amd64/Packages ;;
                esac
                sign "$WWW/$name/dists/$SUITE" "$TRUSTED"
        done

        # binary-arm64 listed in the Release, its files gone from the server.
        name=arm64-absent
        new_repo "$name"
        index=$WWW/$name/dists/$SUITE/main
        compress "$index/binary-amd64"
        mkdir -p "$index/binary-arm64"
        : >"$index/binary-arm64/Packages"
        compress "$index/binary-arm64"
        write_release "$WWW/$name/dists/$SUITE" "$SUITE" APT::FTPArchive::Release::Architectures='amd64 arm64'
        grep -q ' main/binary-arm64/Packages.xz$' "$WWW/$name/dists/$SUITE/Release" ||
                die "the arm64-absent Release does not list binary-arm64"
        rm -r "$index/binary-arm64"
        sign "$WWW/$name/dists/$SUITE" "$TRUSTED"
}

# A complete repository: every compression, signed, no Valid-Until, no by-hash.
make_base_repo() {
        local name=$1
        shift
        new_repo "$name" "$@"
        compress "$WWW/$name/dists/$SUITE/main/binary-amd64"
        write_release "$WWW/$name/dists/$SUITE" "$SUITE"
        sign "$WWW/$name/dists/$SUITE" "$TRUSTED"
}

make_signature_repos() {
        local dist

        # No InRelease: Release and its detached signature only.
        make_base_repo detached
        rm "$WWW/detached/dists/$SUITE/InRelease"

        # Neither InRelease nor Release.gpg.
        make_base_repo unsigned
        rm "$WWW/unsigned/dists/$SUITE/InRelease" "$WWW/unsigned/dists/$SUITE/Release.gpg"

        # Signed by the untrusted key only.
        make_base_repo unknown-key
        sign "$WWW/unknown-key/dists/$SUITE" "$UNTRUSTED"

        # Two signatures in one InRelease: the untrusted key's and the trusted key's.
        make_base_repo two-signatures
        sign "$WWW/two-signatures/dists/$SUITE" "$UNTRUSTED" "$TRUSTED"
        [[ $(grep -c '^-----BEGIN PGP SIGNATURE-----$' "$WWW/two-signatures/dists/$SUITE/InRelease") == 1 ]] ||
                die "two-signatures: expected one signature block"

        # One hex digit of the first SHA256 line changed after signing.
        make_base_repo tampered
        dist=$WWW/tampered/dists/$SUITE
        cp "$dist/InRelease" "$WORK/tampered-InRelease.signed"
        python3 - "$dist/InRelease" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
match = re.search(r"^SHA256:\n ([0-9a-f])", text, re.M)
position = match.start(1)
digit = "1" if text[position] == "0" else "0"
open(path, "w").write(text[:position] + digit + text[position + 1:])
EOF
        cmp -s "$dist/InRelease" "$WORK/tampered-InRelease.signed" && die "tampered: InRelease was not changed"
        return 0
}

# The expired Release is served twice: under a snapshot URL and under a plain one.
make_expiry_repos() {
        local repo=expired/$SNAPSHOT
        new_repo "$repo"
        local dist=$WWW/$repo/dists/$SUITE
        compress "$dist/main/binary-amd64"
        write_release "$dist" "$SUITE"
        # apt-ftparchive has no option for Valid-Until, so the line goes in by hand,
        # after Date as the Debian archive orders its fields.
        sed -i "/^Date: /a Valid-Until: $EXPIRED_VALID_UNTIL" "$dist/Release"
        grep -q "^Valid-Until: $EXPIRED_VALID_UNTIL\$" "$dist/Release" || die "expired: no Valid-Until"
        sign "$dist" "$TRUSTED"
        ln -s "$repo" "$WWW/expired-live"
}

# Acquire-By-Hash: yes, with three ways the canonical and by-hash copies can differ.
make_by_hash_repos() {
        local name dist index wrong
        # A different, valid index: fx-tiny plus one more stanza.
        wrong=$WORK/wrong-Packages
        {
                cat "$WWW/index-plain/dists/$SUITE/main/binary-amd64/Packages"
                printf 'Package: fx-unrelated\nVersion: 9.9\nArchitecture: amd64\n'
                printf 'Filename: pool/main/f/fx-unrelated/fx-unrelated_9.9_amd64.deb\n'
                printf 'Size: 1\nSHA256: %064d\nDescription: not in the signed Release\n' 0
        } >"$wrong"
        xz -9c "$wrong" >"$wrong.xz"

        for name in by-hash-canonical-wrong by-hash-missing by-hash-both-wrong; do
                new_repo "$name"
                dist=$WWW/$name/dists/$SUITE
                index=$dist/main/binary-amd64
                compress "$index"
                write_release "$dist" "$SUITE" APT::FTPArchive::Release::Acquire-By-Hash=yes
                grep -q '^Acquire-By-Hash: yes$' "$dist/Release" || die "$name: no Acquire-By-Hash field"
                sign "$dist" "$TRUSTED"
                case $name in
                by-hash-canonical-wrong)
                        add_by_hash "$dist"
                        cp "$wrong.xz" "$index/Packages.xz"
                        ;;
                by-hash-missing) ;;
                by-hash-both-wrong)
                        add_by_hash "$dist"
                        cp "$wrong.xz" "$index/Packages.xz"
                        cp "$wrong.xz" "$index/by-hash/SHA256/$(release_digest "$dist/Release" main/binary-amd64/Packages.xz)"
                        ;;
                esac
        done
}

# dists/foo holds a Release signed for suite and codename bar.
make_wrong_suite_repo() {
        new_repo wrong-suite
        local repo=$WWW/wrong-suite
        mv "$repo/dists/$SUITE" "$repo/dists/foo"
        compress "$repo/dists/foo/main/binary-amd64"
        write_release "$repo/dists/foo" bar
        sign "$repo/dists/foo" "$TRUSTED"
}

make_pool_repos() {
        # fx-tiny rebuilt with another marker after the index was written.
        make_base_repo changed-deb
        make_deb fx-tiny 1.0 'fx-tiny 1.0, rebuilt after indexing' \
                "$WWW/changed-deb/pool/main/f/fx-tiny/fx-tiny_1.0_amd64.deb"

        # The .deb is gone from the pool.
        make_base_repo missing-deb
        rm "$WWW/missing-deb/pool/main/f/fx-tiny/fx-tiny_1.0_amd64.deb"

        # The Packages stanza of fx-tiny lacks its Filename field.
        new_repo no-filename
        local dist=$WWW/no-filename/dists/$SUITE
        sed -i '/^Filename: /d' "$dist/main/binary-amd64/Packages"
        compress "$dist/main/binary-amd64"
        write_release "$dist" "$SUITE"
        sign "$dist" "$TRUSTED"
}

build_fixtures() {
        TRUSTED=$(make_key trusted)
        UNTRUSTED=$(make_key untrusted)
        make_deb fx-tiny 1.0 'fx-tiny 1.0'
        make_deb fx-extra 1.0 'fx-extra 1.0'
        make_index_repos
        make_base_repo base
        make_base_repo extra "$WORK/debs/fx-extra_1.0_amd64.deb"
        make_signature_repos
        make_expiry_repos
        make_by_hash_repos
        make_wrong_suite_repo
        make_pool_repos
}

# --- cases ----------------------------------------------------------------------

case_index_variants() {
        section "index variants"
        local variant
        for variant in xz gz plain; do
                write_spec "index-$variant" "$SERVER/index-$variant"
                run_build "index-$variant" "$WORK/specs/index-$variant.yaml"
                expect_build "index-$variant"
        done
        write_spec arm64-absent "$SERVER/arm64-absent"
        run_build arm64-absent "$WORK/specs/arm64-absent.yaml"
        expect_build arm64-absent
}

case_release_signatures() {
        section "InRelease, Release and Release.gpg"
        write_spec detached "$SERVER/detached"
        run_build detached "$WORK/specs/detached.yaml"
        expect_build detached
        check "detached: says it used Release and Release.gpg" \
                stderr_has detached "no InRelease; using Release and Release.gpg"

        write_spec unsigned "$SERVER/unsigned"
        run_build unsigned "$WORK/specs/unsigned.yaml"
        expect_failure unsigned 5 "neither InRelease nor Release.gpg"

        write_spec unknown-key "$SERVER/unknown-key"
        run_build unknown-key "$WORK/specs/unknown-key.yaml"
        # The last 16 hex digits are the long key id, which gpg reports in place of the
        # fingerprint when the signature carries no issuer fingerprint.
        expect_failure unknown-key 5 "${UNTRUSTED: -16}" "not in keyring $WORK/keys/trusted.gpg"

        write_spec two-signatures "$SERVER/two-signatures"
        run_build two-signatures "$WORK/specs/two-signatures.yaml"
        expect_build two-signatures

        write_spec tampered "$SERVER/tampered"
        run_build tampered "$WORK/specs/tampered.yaml"
        expect_failure tampered 5 "bad signature"
}

case_valid_until() {
        section "Valid-Until and snapshot sources"
        write_spec expired-snapshot "$SERVER/expired/$SNAPSHOT"
        run_build expired-snapshot "$WORK/specs/expired-snapshot.yaml"
        expect_build expired-snapshot
        check "expired-snapshot: says the expiry was accepted for a snapshot" \
                stderr_has expired-snapshot "Valid-Until" "accepted because the source is a snapshot"

        write_spec expired-live "$SERVER/expired-live"
        run_build expired-live "$WORK/specs/expired-live.yaml"
        expect_failure expired-live 5 "Valid-Until" "expired on 2024-01-07"

        run_build expired-snapshot-mirror "$WORK/specs/expired-snapshot.yaml" -- \
                --mirror "$SERVER/expired/$SNAPSHOT=$SERVER/expired-live"
        expect_build expired-snapshot-mirror "$SERVER/expired-live"
        check "expired-snapshot-mirror: fetched from the mirror" \
                stderr_has expired-snapshot-mirror "fetching from $SERVER/expired-live"
        check "expired-snapshot-mirror: says the expiry was accepted for a snapshot" \
                stderr_has expired-snapshot-mirror "accepted because the source is a snapshot"

        check "base: Release has no Valid-Until" \
                bash -c "! grep -q '^Valid-Until:' '$WWW/base/dists/$SUITE/Release'"
        write_spec no-valid-until "$SERVER/base"
        run_build no-valid-until "$WORK/specs/no-valid-until.yaml"
        expect_build no-valid-until
}

# served LOG PATH STATUS: the http.server log shows a GET of PATH with response STATUS.
served() {
        grep -qF "\"GET $2 HTTP/1.1\" $3" "$1" || {
                printf 'no "GET %s" with status %s in the http.server log\n' "$2" "$3"
                return 1
        }
}

case_by_hash() {
        section "Acquire-By-Hash"
        local digest name
        for name in by-hash-canonical-wrong by-hash-missing by-hash-both-wrong; do
                write_spec "$name" "$SERVER/$name"
        done

        digest=$(release_digest "$WWW/by-hash-canonical-wrong/dists/$SUITE/Release" main/binary-amd64/Packages.xz)
        run_build by-hash-canonical-wrong "$WORK/specs/by-hash-canonical-wrong.yaml"
        expect_build by-hash-canonical-wrong
        check "by-hash-canonical-wrong: index fetched by hash" served "$WORK/http.log" \
                "/by-hash-canonical-wrong/dists/$SUITE/main/binary-amd64/by-hash/SHA256/$digest" 200

        run_build by-hash-missing "$WORK/specs/by-hash-missing.yaml"
        expect_build by-hash-missing

        digest=$(release_digest "$WWW/by-hash-both-wrong/dists/$SUITE/Release" main/binary-amd64/Packages.xz)
        run_build by-hash-both-wrong "$WORK/specs/by-hash-both-wrong.yaml"
        expect_failure by-hash-both-wrong 5 "main/binary-amd64/Packages.xz" "$digest"
}

case_wrong_suite() {
        section "Suite and Codename"
        write_spec wrong-suite "$SERVER/wrong-suite" "$WORK/keys/trusted.gpg" foo
        run_build wrong-suite "$WORK/specs/wrong-suite.yaml"
        expect_failure wrong-suite 5 "suite bar" "codename bar" "not foo"
}

# cache_listing LABEL: the files below the cache of LABEL, one relative path a line.
cache_listing() {
        if [[ -d $CACHE/$1 ]]; then
                find "$CACHE/$1" -type f -printf '%P\n' | LC_ALL=C sort
        fi
}

# only_indexes_added LABEL BEFORE AFTER RELEASE: every file added to the cache is
# sha256/<digest> of an index RELEASE lists.
only_indexes_added() {
        local label=$1 before=$2 after=$3 release=$4 path digest bad=0
        while read -r path; do
                [[ -n $path ]] || continue
                digest=${path#sha256/}
                if [[ $path == "$digest" ]] || ! release_sha256_lines "$release" | grep -q "^$digest "; then
                        printf 'cache of %s gained %s, which is no index of the Release\n' "$label" "$path"
                        bad=1
                fi
        done < <(LC_ALL=C comm -13 "$before" "$after")
        return "$bad"
}

# absent_from_cache LABEL DIGEST...: no sha256/DIGEST in the cache of LABEL.
absent_from_cache() {
        local label=$1 digest
        shift
        for digest in "$@"; do
                if [[ -e $CACHE/$label/sha256/$digest ]]; then
                        printf 'the cache of %s holds sha256/%s\n' "$label" "$digest"
                        return 1
                fi
        done
}

case_changed_deb() {
        section "pool file changed after indexing"
        local indexed actual
        indexed=$(awk '/^SHA256: / { print $2 }' "$WWW/changed-deb/dists/$SUITE/main/binary-amd64/Packages")
        actual=$(sha256sum "$WWW/changed-deb/pool/main/f/fx-tiny/fx-tiny_1.0_amd64.deb" | cut -d' ' -f1)
        check "changed-deb: fixture differs from the index" test "$indexed" != "$actual"

        write_spec changed-deb "$SERVER/changed-deb"
        cache_listing changed-deb >"$WORK/changed-deb.before"
        run_build changed-deb "$WORK/specs/changed-deb.yaml"
        cache_listing changed-deb >"$WORK/changed-deb.after"
        expect_failure changed-deb 5 "fx-tiny" "mismatch"
        check "changed-deb: no .deb in the cache" absent_from_cache changed-deb "$indexed" "$actual"
        check "changed-deb: only indexes added to the cache" only_indexes_added changed-deb \
                "$WORK/changed-deb.before" "$WORK/changed-deb.after" "$WWW/changed-deb/dists/$SUITE/Release"
        check "changed-deb: no temporary file left in the cache" \
                bash -c "! grep -q '^tmp/' '$WORK/changed-deb.after' || { grep '^tmp/' '$WORK/changed-deb.after'; false; }"

        # The same failure with the indexes already cached: the cache must not change.
        cp "$WORK/changed-deb.after" "$WORK/changed-deb-again.before"
        mkdir -p "$CACHE/changed-deb-again"
        cp -a "$CACHE/changed-deb/." "$CACHE/changed-deb-again/"
        run_build changed-deb-again "$WORK/specs/changed-deb.yaml"
        cache_listing changed-deb-again >"$WORK/changed-deb-again.after"
        expect_failure changed-deb-again 5 "fx-tiny" "mismatch"
        check "changed-deb-again: cache unchanged" \
                diff "$WORK/changed-deb-again.before" "$WORK/changed-deb-again.after"
}

case_mirror() {
        section "--mirror and DISTILL_MIRROR"
        cat >"$WORK/specs/mirror.yaml" <<EOF
name: sources-mirror
sources:
  - url: $UNREACHABLE
    suites: [$SUITE]
    keyring: $WORK/keys/trusted.gpg
  - url: $UNREACHABLE_EXTRA
    suites: [$SUITE]
    keyring: $WORK/keys/trusted.gpg
architectures: [amd64]
packages: [fx-tiny, fx-extra]
EOF
        local pair_base="$UNREACHABLE=$SERVER/base"
        local pair_extra="$UNREACHABLE_EXTRA=$SERVER/extra"

        run_build mirror-option "$WORK/specs/mirror.yaml" -- --mirror "$pair_base" --mirror "$pair_extra"
        expect_build mirror-option "$SERVER" "127.0.0.1:$PORT"
        check "mirror-option: says where it fetched from" \
                stderr_has mirror-option "fetching from $SERVER/base" "fetching from $SERVER/extra"

        run_build mirror-env "$WORK/specs/mirror.yaml" DISTILL_MIRROR="$pair_base $pair_extra" --
        expect_build mirror-env "$SERVER" "127.0.0.1:$PORT"

        run_build mirror-malformed "$WORK/specs/mirror.yaml" -- --mirror "$SERVER/base"
        expect_failure mirror-malformed 2 "invalid mirror" "FROM=TO"

        run_build mirror-env-malformed "$WORK/specs/mirror.yaml" DISTILL_MIRROR="$SERVER/base" --
        expect_failure mirror-env-malformed 2 "DISTILL_MIRROR" "FROM=TO"

        # Every attempt gets connection refused. DISTILL_HTTP_TIMEOUT bounds a stalled
        # connect, and run_build's timeout turns a hang into exit status 124.
        run_build mirror-none "$WORK/specs/mirror.yaml" DISTILL_HTTP_TIMEOUT=5 --
        expect_failure mirror-none 4 "$UNREACHABLE/dists/$SUITE/InRelease"
}

case_pool_errors() {
        section "pool and index errors"
        write_spec missing-deb "$SERVER/missing-deb"
        run_build missing-deb "$WORK/specs/missing-deb.yaml"
        expect_failure missing-deb 4 "$SERVER/missing-deb/pool/main/f/fx-tiny/fx-tiny_1.0_amd64.deb" "404"

        check "no-filename: fixture stanza has no Filename" \
                bash -c "! grep -q '^Filename:' '$WWW/no-filename/dists/$SUITE/main/binary-amd64/Packages'"
        write_spec no-filename "$SERVER/no-filename"
        run_build no-filename "$WORK/specs/no-filename.yaml"
        expect_failure no-filename 5 "fx-tiny" "Filename"
}

# --- main -----------------------------------------------------------------------

main() {
        [[ -x $DISTILL ]] || die "$DISTILL is missing or not executable; run make build/distill-san"
        setup_workdir
        printf 'distill: %s\nwork directory: %s\n' "$DISTILL" "$WORK"
        build_fixtures
        start_server

        case_index_variants
        case_release_signatures
        case_valid_until
        case_by_hash
        case_wrong_suite
        case_changed_deb
        case_mirror
        case_pool_errors

        printf '\n'
        print_summary
        ((FAILED == 0))
}

main "$@"
