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
# shellcheck source=tests/hermetic/lib.sh
source "$HERE/lib.sh"
hermetic_init SOURCES_KEEP

# This script's snapshot is two years older than the fixtures.sh default, so that
# the Valid-Until below lies after it and before today.
FX_SNAPSHOT=20240101T000000Z
# Release Date: the day before the snapshot timestamp above.
FX_RELEASE_DATE='Sun, 31 Dec 2023 00:00:00 UTC'
# Valid-Until of the expired repository: after the snapshot timestamp, before today.
EXPIRED_VALID_UNTIL='Sun, 07 Jan 2024 00:00:00 UTC'
# Port 1 (tcpmux) has no listener on 127.0.0.1 here, so a connection is refused at once.
UNREACHABLE=http://127.0.0.1:1/unreachable/$FX_SNAPSHOT
UNREACHABLE_EXTRA=http://127.0.0.1:1/unreachable-extra

# --- running distill ------------------------------------------------------------

# run_build LABEL SPEC [VAR=VALUE]... -- [ARG]...
# Run `distill build SPEC -o $OUT/LABEL/image.tar --cache $CACHE/LABEL ARG...` with
# the VAR=VALUE environment, recording stdout, stderr and the exit status as
# $LOGS/LABEL.{out,err,rc}. Each label gets its own empty cache, so that an index
# fetched by an earlier case cannot stand in for the one under test.
run_build() {
        local label=$1 spec=$2
        shift 2
        split_env_args "$@"
        mkdir -p "$OUT/$label"
        set_command "$RUN_TIMEOUT" TMPDIR="$WORK/tmp" "${ENV_ARGS[@]}" -- \
                "$DISTILL" build "$spec" -o "$OUT/$label/image.tar" --cache "$CACHE/$label" "${ARGS[@]}"
        run_command "$label" "$WORK"
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

# expect_mirrored_build LABEL TEXT...: run LABEL succeeded and wrote an image whose
# JSON members contain no TEXT (the mirror URLs the build was fetched from).
expect_mirrored_build() {
        local label=$1
        shift
        expect_build "$label"
        if [[ -s $OUT/$label/image.tar ]]; then
                check "$label: no mirror URL in the JSON members" \
                        json_members_lack "$OUT/$label/image.tar" "$@"
        fi
}

# --- fixtures -------------------------------------------------------------------

setup_workdir() {
        make_workdir
        CACHE=$WORK/cache
        WWW=$WORK/www
        mkdir -p "$CACHE" "$WWW" "$WORK/tmp" "$WORK/debs" "$WORK/keys" "$WORK/specs"
}

# make_deb NAME VERSION TEXT [OUT.deb]: a .deb shipping /usr/share/NAME/marker with
# TEXT, written to OUT.deb or to $WORK/debs/NAME_VERSION_amd64.deb.
make_deb() {
        local name=$1 version=$2 text=$3
        local out=${4:-$WORK/debs/${name}_${version}_amd64.deb}
        local dir=$WORK/debsrc/${name}_$version
        rm -rf "$dir"
        new_package "$dir" "$name" "$version" amd64
        mkdir -p "$dir/usr/share/$name"
        printf '%s\n' "$text" >"$dir/usr/share/$name/marker"
        finish_package "$dir" xz "$out"
}

# new_repo NAME [DEB]...: $WWW/NAME with the DEBs (default fx-tiny) in its pool and
# dists/$FX_SUITE/main/binary-amd64/Packages, but no compressed index and no Release yet.
new_repo() {
        local repo=$WWW/$1
        shift
        (($# > 0)) || set -- "$WORK/debs/fx-tiny_1.0_amd64.deb"
        add_to_pool "$repo" "$@"
        write_packages "$repo/dists/$FX_SUITE/main/binary-amd64" "$repo"
        grep -q '^Package: ' "$repo/dists/$FX_SUITE/main/binary-amd64/Packages" ||
                die "apt-ftparchive wrote an empty Packages for $repo"
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
        local name=$1 url=$2 keyring=${3:-$WORK/keys/trusted.gpg} suite=${4:-$FX_SUITE}
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

# Index variants: which compressed Packages files a Release lists.
make_index_repos() {
        local name variant index
        for variant in xz gz plain; do
                name=index-$variant
                new_repo "$name"
                index=$WWW/$name/dists/$FX_SUITE/main/binary-amd64
                case $variant in
                xz) xz -9 "$index/Packages" ;;
                gz) gzip -9n "$index/Packages" ;;
                plain) ;;
                esac
                ftparchive_release "$WWW/$name/dists/$FX_SUITE"
                case $variant in
                xz) release_lists_exactly "$WWW/$name/dists/$FX_SUITE/Release" main/binary-amd64/Packages.xz ;;
                gz) release_lists_exactly "$WWW/$name/dists/$FX_SUITE/Release" main/binary-amd64/Packages.gz ;;
                plain) release_lists_exactly "$WWW/$name/dists/$FX_SUITE/Release" main/binary-amd64/Packages ;;
                esac
                sign_release "$WORK/gnupg" "$WWW/$name/dists/$FX_SUITE" "$TRUSTED"
        done

        # binary-arm64 listed in the Release, its files gone from the server.
        name=arm64-absent
        new_repo "$name"
        index=$WWW/$name/dists/$FX_SUITE/main
        compress_packages "$index/binary-amd64"
        mkdir -p "$index/binary-arm64"
        : >"$index/binary-arm64/Packages"
        compress_packages "$index/binary-arm64"
        ftparchive_release "$WWW/$name/dists/$FX_SUITE" APT::FTPArchive::Release::Architectures='amd64 arm64'
        grep -q ' main/binary-arm64/Packages.xz$' "$WWW/$name/dists/$FX_SUITE/Release" ||
                die "the arm64-absent Release does not list binary-arm64"
        rm -r "$index/binary-arm64"
        sign_release "$WORK/gnupg" "$WWW/$name/dists/$FX_SUITE" "$TRUSTED"
}

# A complete repository: every compression, signed, no Valid-Until, no by-hash.
make_base_repo() {
        local name=$1
        shift
        new_repo "$name" "$@"
        compress_packages "$WWW/$name/dists/$FX_SUITE/main/binary-amd64"
        ftparchive_release "$WWW/$name/dists/$FX_SUITE"
        sign_release "$WORK/gnupg" "$WWW/$name/dists/$FX_SUITE" "$TRUSTED"
}

make_signature_repos() {
        local dist

        # No InRelease: Release and its detached signature only.
        make_base_repo detached
        rm "$WWW/detached/dists/$FX_SUITE/InRelease"

        # Neither InRelease nor Release.gpg.
        make_base_repo unsigned
        rm "$WWW/unsigned/dists/$FX_SUITE/InRelease" "$WWW/unsigned/dists/$FX_SUITE/Release.gpg"

        # Signed by the untrusted key only.
        make_base_repo unknown-key
        sign_release "$WORK/gnupg" "$WWW/unknown-key/dists/$FX_SUITE" "$UNTRUSTED"

        # Two signatures in one InRelease: the untrusted key's and the trusted key's.
        make_base_repo two-signatures
        sign_release "$WORK/gnupg" "$WWW/two-signatures/dists/$FX_SUITE" "$UNTRUSTED" "$TRUSTED"
        [[ $(grep -c '^-----BEGIN PGP SIGNATURE-----$' "$WWW/two-signatures/dists/$FX_SUITE/InRelease") == 1 ]] ||
                die "two-signatures: expected one signature block"

        # One hex digit of the first SHA256 line changed after signing.
        make_base_repo tampered
        dist=$WWW/tampered/dists/$FX_SUITE
        cp "$dist/InRelease" "$WORK/tampered-InRelease.signed"
        tamper_inrelease "$dist/InRelease"
        cmp -s "$dist/InRelease" "$WORK/tampered-InRelease.signed" && die "tampered: InRelease was not changed"
        return 0
}

# The expired Release is served twice: under a snapshot URL and under a plain one.
make_expiry_repos() {
        local repo=expired/$FX_SNAPSHOT
        new_repo "$repo"
        local dist=$WWW/$repo/dists/$FX_SUITE
        compress_packages "$dist/main/binary-amd64"
        ftparchive_release "$dist"
        # apt-ftparchive has no option for Valid-Until, so the line goes in by hand,
        # after Date as the Debian archive orders its fields.
        sed -i "/^Date: /a Valid-Until: $EXPIRED_VALID_UNTIL" "$dist/Release"
        grep -q "^Valid-Until: $EXPIRED_VALID_UNTIL\$" "$dist/Release" || die "expired: no Valid-Until"
        sign_release "$WORK/gnupg" "$dist" "$TRUSTED"
        ln -s "$repo" "$WWW/expired-live"
}

# Acquire-By-Hash: yes, with three ways the canonical and by-hash copies can differ.
make_by_hash_repos() {
        local name dist index wrong
        # A different, valid index: fx-tiny plus one more stanza.
        wrong=$WORK/wrong-Packages
        {
                cat "$WWW/index-plain/dists/$FX_SUITE/main/binary-amd64/Packages"
                printf 'Package: fx-unrelated\nVersion: 9.9\nArchitecture: amd64\n'
                printf 'Filename: pool/main/f/fx-unrelated/fx-unrelated_9.9_amd64.deb\n'
                printf 'Size: 1\nSHA256: %064d\nDescription: not in the signed Release\n' 0
        } >"$wrong"
        xz -9c "$wrong" >"$wrong.xz"

        for name in by-hash-canonical-wrong by-hash-missing by-hash-both-wrong; do
                new_repo "$name"
                dist=$WWW/$name/dists/$FX_SUITE
                index=$dist/main/binary-amd64
                compress_packages "$index"
                ftparchive_release "$dist" APT::FTPArchive::Release::Acquire-By-Hash=yes
                grep -q '^Acquire-By-Hash: yes$' "$dist/Release" || die "$name: no Acquire-By-Hash field"
                sign_release "$WORK/gnupg" "$dist" "$TRUSTED"
                case $name in
                by-hash-canonical-wrong)
                        add_by_hash "$dist" SHA256
                        cp "$wrong.xz" "$index/Packages.xz"
                        ;;
                by-hash-missing) ;;
                by-hash-both-wrong)
                        add_by_hash "$dist" SHA256
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
        mv "$repo/dists/$FX_SUITE" "$repo/dists/foo"
        compress_packages "$repo/dists/foo/main/binary-amd64"
        ftparchive_release "$repo/dists/foo" APT::FTPArchive::Release::Suite=bar \
                APT::FTPArchive::Release::Codename=bar
        sign_release "$WORK/gnupg" "$repo/dists/foo" "$TRUSTED"
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
        local dist=$WWW/no-filename/dists/$FX_SUITE
        sed -i '/^Filename: /d' "$dist/main/binary-amd64/Packages"
        compress_packages "$dist/main/binary-amd64"
        ftparchive_release "$dist"
        sign_release "$WORK/gnupg" "$dist" "$TRUSTED"
}

build_fixtures() {
        TRUSTED=$(make_signing_key "$WORK/gnupg" trusted "$WORK/keys/trusted.gpg")
        UNTRUSTED=$(make_signing_key "$WORK/gnupg" untrusted "$WORK/keys/untrusted.gpg")
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
        write_spec expired-snapshot "$SERVER/expired/$FX_SNAPSHOT"
        run_build expired-snapshot "$WORK/specs/expired-snapshot.yaml"
        expect_build expired-snapshot
        check "expired-snapshot: says the expiry was accepted for a snapshot" \
                stderr_has expired-snapshot "Valid-Until" "accepted because the source is a snapshot"

        write_spec expired-live "$SERVER/expired-live"
        run_build expired-live "$WORK/specs/expired-live.yaml"
        expect_failure expired-live 5 "Valid-Until" "expired on 2024-01-07"

        run_build expired-snapshot-mirror "$WORK/specs/expired-snapshot.yaml" -- \
                --mirror "$SERVER/expired/$FX_SNAPSHOT=$SERVER/expired-live"
        expect_mirrored_build expired-snapshot-mirror "$SERVER/expired-live"
        check "expired-snapshot-mirror: fetched from the mirror" \
                stderr_has expired-snapshot-mirror "fetching from $SERVER/expired-live"
        check "expired-snapshot-mirror: says the expiry was accepted for a snapshot" \
                stderr_has expired-snapshot-mirror "accepted because the source is a snapshot"

        check "base: Release has no Valid-Until" \
                bash -c "! grep -q '^Valid-Until:' '$WWW/base/dists/$FX_SUITE/Release'"
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

        digest=$(release_digest "$WWW/by-hash-canonical-wrong/dists/$FX_SUITE/Release" main/binary-amd64/Packages.xz)
        run_build by-hash-canonical-wrong "$WORK/specs/by-hash-canonical-wrong.yaml"
        expect_build by-hash-canonical-wrong
        check "by-hash-canonical-wrong: index fetched by hash" served "$WORK/http.log" \
                "/by-hash-canonical-wrong/dists/$FX_SUITE/main/binary-amd64/by-hash/SHA256/$digest" 200

        run_build by-hash-missing "$WORK/specs/by-hash-missing.yaml"
        expect_build by-hash-missing

        digest=$(release_digest "$WWW/by-hash-both-wrong/dists/$FX_SUITE/Release" main/binary-amd64/Packages.xz)
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
# sha256/<digest> of an index RELEASE lists, or libsolv's parsed copy of one
# (solv/<digest>.solv and .prio).
only_indexes_added() {
        local label=$1 before=$2 after=$3 release=$4 path digest bad=0
        while read -r path; do
                [[ -n $path ]] || continue
                digest=${path#sha256/}
                if [[ $path == solv/* ]]; then
                        digest=${path#solv/}
                        digest=${digest%.solv}
                        digest=${digest%.prio}
                fi
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
        indexed=$(awk '/^SHA256: / { print $2 }' "$WWW/changed-deb/dists/$FX_SUITE/main/binary-amd64/Packages")
        actual=$(sha256sum "$WWW/changed-deb/pool/main/f/fx-tiny/fx-tiny_1.0_amd64.deb" | cut -d' ' -f1)
        check "changed-deb: fixture differs from the index" test "$indexed" != "$actual"

        write_spec changed-deb "$SERVER/changed-deb"
        cache_listing changed-deb >"$WORK/changed-deb.before"
        run_build changed-deb "$WORK/specs/changed-deb.yaml"
        cache_listing changed-deb >"$WORK/changed-deb.after"
        expect_failure changed-deb 5 "fx-tiny" "mismatch"
        check "changed-deb: no .deb in the cache" absent_from_cache changed-deb "$indexed" "$actual"
        check "changed-deb: only indexes added to the cache" only_indexes_added changed-deb \
                "$WORK/changed-deb.before" "$WORK/changed-deb.after" "$WWW/changed-deb/dists/$FX_SUITE/Release"
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
    suites: [$FX_SUITE]
    keyring: $WORK/keys/trusted.gpg
  - url: $UNREACHABLE_EXTRA
    suites: [$FX_SUITE]
    keyring: $WORK/keys/trusted.gpg
architectures: [amd64]
packages: [fx-tiny, fx-extra]
EOF
        local pair_base="$UNREACHABLE=$SERVER/base"
        local pair_extra="$UNREACHABLE_EXTRA=$SERVER/extra"

        run_build mirror-option "$WORK/specs/mirror.yaml" -- --mirror "$pair_base" --mirror "$pair_extra"
        expect_mirrored_build mirror-option "$SERVER" "127.0.0.1:$PORT"
        check "mirror-option: says where it fetched from" \
                stderr_has mirror-option "fetching from $SERVER/base" "fetching from $SERVER/extra"

        run_build mirror-env "$WORK/specs/mirror.yaml" DISTILL_MIRROR="$pair_base $pair_extra" --
        expect_mirrored_build mirror-env "$SERVER" "127.0.0.1:$PORT"

        run_build mirror-malformed "$WORK/specs/mirror.yaml" -- --mirror "$SERVER/base"
        expect_failure mirror-malformed 2 "invalid mirror" "FROM=TO"

        run_build mirror-env-malformed "$WORK/specs/mirror.yaml" DISTILL_MIRROR="$SERVER/base" --
        expect_failure mirror-env-malformed 2 "DISTILL_MIRROR" "FROM=TO"

        # Every attempt gets connection refused. DISTILL_HTTP_TIMEOUT bounds a stalled
        # connect, and run_build's timeout turns a hang into exit status 124.
        run_build mirror-none "$WORK/specs/mirror.yaml" DISTILL_HTTP_TIMEOUT=5 --
        expect_failure mirror-none 4 "$UNREACHABLE/dists/$FX_SUITE/InRelease"
}

case_pool_errors() {
        section "pool and index errors"
        write_spec missing-deb "$SERVER/missing-deb"
        run_build missing-deb "$WORK/specs/missing-deb.yaml"
        expect_failure missing-deb 4 "$SERVER/missing-deb/pool/main/f/fx-tiny/fx-tiny_1.0_amd64.deb" "404"

        check "no-filename: fixture stanza has no Filename" \
                bash -c "! grep -q '^Filename:' '$WWW/no-filename/dists/$FX_SUITE/main/binary-amd64/Packages'"
        write_spec no-filename "$SERVER/no-filename"
        run_build no-filename "$WORK/specs/no-filename.yaml"
        expect_failure no-filename 5 "fx-tiny" "Filename"
}

# --- main -----------------------------------------------------------------------

main() {
        require_runnable "$DISTILL"
        setup_workdir
        printf 'distill: %s\nwork directory: %s\n' "$DISTILL" "$WORK"
        build_fixtures
        start_http_server "$WWW"

        case_index_variants
        case_release_signatures
        case_valid_until
        case_by_hash
        case_wrong_suite
        case_changed_deb
        case_mirror
        case_pool_errors

        finish_tests
}

main "$@"
