#!/usr/bin/env bash
# Hermetic integration tests for distill.
#
# Builds fixture .debs, lays them out as a signed apt repository served by
# python3 -m http.server on 127.0.0.1, runs `distill build` as an unprivileged
# user against it, and checks the images and the failures. Nothing leaves the
# machine. Run from anywhere after build/distill-san exists:
#
#     tests/hermetic/run.sh            (or: make hermetic)
#     DISTILL=build/distill tests/hermetic/run.sh
#     HERMETIC_KEEP=1 tests/hermetic/run.sh   (keep the work directory for debugging)
#
# The last line is "N passed, N failed"; the exit status is non-zero when any check
# failed. Everything is written below one mktemp -d directory that the EXIT trap
# removes, together with the http server and gpg-agent it started.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/hermetic/lib.sh
source "$HERE/lib.sh"
hermetic_init HERMETIC_KEEP

TAG=distill-hermetic:test
BUILD_USER=distill-test
# The packages the main spec installs: the requested ones, fx-lib through the
# alternative, fx-pre through Pre-Depends.
MAIN_PACKAGES=(fx-app fx-base fx-lib fx-php fx-pre)
TMP_PWNED_EXISTED=0

# The EXIT trap calls this. A file distill wrote through fx-evil's symlink is
# removed only if the run created it.
script_cleanup() {
        if ((TMP_PWNED_EXISTED == 0)) && [[ -e /tmp/pwned ]]; then
                rm -f /tmp/pwned
        fi
}

# fails COMMAND...: COMMAND exits non-zero.
fails() {
        ! "$@"
}

image_check() {
        python3 "$HERE/image_check.py" "$@"
}

# --- running distill ------------------------------------------------------------

# run_distill LABEL [VAR=VALUE]... -- ARG...
# Run distill as the build user in the fresh directory $OUT/LABEL, recording stdout,
# stderr and the exit status as $LOGS/LABEL.{out,err,rc}.
run_distill() {
        local label=$1
        shift
        split_env_args "$@"
        mkdir -p "$OUT/$label"
        chown "$RUN_OWNER" "$OUT/$label"
        set_command "$RUN_TIMEOUT" HOME="$RUN_HOME" TMPDIR="$RUN_TMP" XDG_CACHE_HOME="$RUN_HOME/.cache" \
                "${ENV_ARGS[@]}" -- "$DISTILL" "${ARGS[@]}"
        run_command "$label" "$OUT/$label"
}

# build_image LABEL SPEC [ARG]...: a build that must succeed, with its basic checks.
# The image is $OUT/LABEL/image.tar; it is unpacked for image_check into $WORK/img/LABEL.
build_image() {
        local label=$1 spec=$2
        shift 2
        run_distill "$label" -- build "$spec" -o "$OUT/$label/image.tar" "$@"
        check "$label: exit status 0" exit_status "$label" 0
        check "$label: no sanitizer report" no_sanitizer_report "$label"
        check "$label: image unpacks" image_check unpack "$OUT/$label/image.tar" "$WORK/img/$label"
}

# image_ready LABEL: the image of LABEL exists and unpacked, so its checks can run.
image_ready() {
        [[ -f $WORK/img/$1/layer.tar ]]
}

# main_image_ready NAME: the main image can be checked; otherwise NAME counts as a
# failed check.
main_image_ready() {
        image_ready main && return 0
        fail_check "main: $1" "no image to check"
        return 1
}

# --- setup ----------------------------------------------------------------------

setup_workdir() {
        make_workdir
        # The build user must reach the specs, the keyrings and its own directories.
        chmod 0755 "$WORK"
        RUN_HOME=$WORK/home
        RUN_TMP=$WORK/home/tmp
        CANARY=$WORK/canary
        mkdir -p "$RUN_TMP" "$CANARY" "$WORK/img" "$WORK/specs" "$WORK/keys" "$WORK/cache"
        printf 'victim\n' >"$CANARY/victim"
        [[ -e /tmp/pwned ]] && TMP_PWNED_EXISTED=1
        return 0
}

prepare_build_user() {
        setup_build_user "$BUILD_USER"
        chown -R "$RUN_OWNER" "$OUT" "$RUN_HOME" "$CANARY" "$WORK/cache"
        require_runnable "$DISTILL"
        printf 'distill: %s, run as %s\n' "$DISTILL" "${RUN_OWNER%%:*}"
}

start_server() {
        start_http_server "$WORK/www"
        BASE_URL=$SERVER/archive
}

# repo_url NAME: the URL of repository NAME, ending in the snapshot timestamp.
repo_url() {
        printf '%s/%s/%s' "$BASE_URL" "$1" "$FX_SNAPSHOT"
}

repo_dir() {
        printf '%s/www/archive/%s/%s' "$WORK" "$1" "$FX_SNAPSHOT"
}

# Variants of the fixture repository, each a copy with one defect.
make_tampered_repositories() {
        local good bad
        good=$(repo_dir fixture)

        # One hex digit of the first SHA256 line changed after signing.
        bad=$(repo_dir bad-inrelease)
        mkdir -p "$(dirname "$bad")" && cp -a "$good" "$bad"
        tamper_inrelease "$bad/dists/$FX_SUITE/InRelease"

        # No signature at all: Release without InRelease or Release.gpg.
        bad=$(repo_dir unsigned)
        mkdir -p "$(dirname "$bad")" && cp -a "$good" "$bad"
        rm "$bad/dists/$FX_SUITE/InRelease" "$bad/dists/$FX_SUITE/Release.gpg"

        # Packages (all compressions and by-hash copies) edited after signing. The
        # uncompressed Packages keeps its size, so only its checksum can tell.
        bad=$(repo_dir bad-packages)
        mkdir -p "$(dirname "$bad")" && cp -a "$good" "$bad"
        local index=$bad/dists/$FX_SUITE/main/binary-amd64
        sed -i 's/^Version: 1\.2$/Version: 1.3/' "$index/Packages"
        compress_packages "$index"
        local copy name
        for copy in "$index"/by-hash/*/*; do
                for name in Packages Packages.gz Packages.xz; do
                        if cmp -s "$copy" "$good/dists/$FX_SUITE/main/binary-amd64/$name"; then
                                cp "$index/$name" "$copy"
                        fi
                done
        done

        # fx-lib_1.2 with its file content changed in place: still a valid .deb of
        # the same size, but not the one whose SHA256 the index lists.
        bad=$(repo_dir bad-deb)
        mkdir -p "$(dirname "$bad")" && cp -a "$good" "$bad"
        python3 - "$bad/pool/main/f/fx-lib/fx-lib_1.2_amd64.deb" <<'EOF'
import sys
path = sys.argv[1]
data = open(path, "rb").read()
assert data.count(b"fx-lib 1.2\n") == 1, "payload not found in the uncompressed data.tar"
open(path, "wb").write(data.replace(b"fx-lib 1.2\n", b"fx-lib 6.6\n"))
EOF
        sha256sum "$bad/pool/main/f/fx-lib/fx-lib_1.2_amd64.deb" | cut -d' ' -f1 >"$WORK/tampered-deb.sha256"
        sha256sum "$good/pool/main/f/fx-lib/fx-lib_1.2_amd64.deb" | cut -d' ' -f1 >"$WORK/good-deb.sha256"

        # fx-pre's .deb deleted from the pool while the index still lists it.
        bad=$(repo_dir missing-deb)
        mkdir -p "$(dirname "$bad")" && cp -a "$good" "$bad"
        rm "$bad/pool/main/f/fx-pre/fx-pre_1.0_amd64.deb"
}

setup_fixtures() {
        build_fixture_packages "$WORK/src" "$WORK/debs" "$CANARY"
        FIXTURE_FPR=$(make_signing_key "$WORK/gnupg" distill-hermetic-fixture "$WORK/keys/fixture.gpg")
        make_signing_key "$WORK/gnupg" distill-hermetic-other "$WORK/keys/other.gpg" >/dev/null
        build_repository "$(repo_dir fixture)" "$WORK/debs" "$WORK/gnupg" "$FIXTURE_FPR"
        make_tampered_repositories
        chmod -R a+rX "$WORK/www" "$WORK/keys" "$WORK/debs"
}

# --- specs ----------------------------------------------------------------------

# write_main_spec DIR: the spec that exercises everything a good build should do.
# Its keyring path is relative, so it resolves against DIR.
write_main_spec() {
        local dir=$1
        mkdir -p "$dir"
        cp "$WORK/keys/fixture.gpg" "$dir/fixture-keyring.gpg"
        cat >"$dir/spec.yaml" <<EOF
name: fixture-image
sources:
  - url: $(repo_url fixture)
    suites: [$FX_SUITE]
    components: [main]
    keyring: fixture-keyring.gpg
architectures: [amd64]
packages: [fx-base, fx-php, fx-app]
exclude: [fx-excluded]
merged_usr: true
accounts:
  groups:
    - {name: fxgroup, gid: 1001}
  users:
    - {name: fxuser, uid: 1001, gid: 1001, home: /home/fxuser, shell: /usr/sbin/nologin}
directories:
  - {path: /run/php, mode: "0755", owner: fxuser, group: fxgroup}
symlinks:
  - {path: /usr/bin/fx-alias, target: fxsh}
files:
  - {path: /etc/fx-extra.conf, content: "extra = 1\n", mode: "0640", owner: fxuser, group: fxgroup}
php:
  version: "8.2"
  extensions: [fxext]
  fpm:
    listen: "9000"
    user: fxuser
    group: fxgroup
    pm: {pm: dynamic, pm.max_children: "5", pm.start_servers: "2", pm.min_spare_servers: "1", pm.max_spare_servers: "3"}
    settings: {clear_env: "no", catch_workers_output: "yes"}
    global: {error_log: /proc/self/fd/2, daemonize: "no"}
image:
  entrypoint: [/usr/bin/fxsh]
  cmd: [--version]
  env: {LANG: C.UTF-8}
  workdir: /home/fxuser
  user: fxuser
  expose: ["9000/tcp"]
  labels: {org.opencontainers.image.title: fixture-image}
EOF
}

# write_small_spec FILE REPO KEYRING PACKAGE... [-- EXTRA-YAML-LINE...]
# A spec with one source and the given packages and nothing else.
write_small_spec() {
        local file=$1 repo=$2 keyring=$3
        shift 3
        local packages=()
        while (($# > 0)) && [[ $1 != -- ]]; do
                packages+=("$1")
                shift
        done
        (($# > 0)) && shift
        mkdir -p "$(dirname "$file")"
        {
                printf 'name: %s\n' "$(basename "$(dirname "$file")")"
                printf 'sources:\n'
                printf '  - url: %s\n' "$(repo_url "$repo")"
                printf '    suites: [%s]\n' "$FX_SUITE"
                printf '    keyring: %s\n' "$keyring"
                printf 'architectures: [amd64]\n'
                printf 'packages: [%s]\n' "$(IFS=,; echo "${packages[*]}" | sed 's/,/, /g')"
                local line
                for line in "$@"; do
                        printf '%s\n' "$line"
                done
        } >"$file"
}

# --- check groups ---------------------------------------------------------------

# The fixture repository itself must be valid, or failures below would blame distill
# for the fixtures: gpgv accepts both signatures and apt resolves it as expected.
apt_simulate() {
        local apt=$WORK/apt
        mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d" "$apt/preferences.d"
        : >"$apt/status"
        printf 'deb [signed-by=%s] %s %s main\n' "$WORK/keys/fixture.gpg" "$(repo_url fixture)" \
                "$FX_SUITE" >"$apt/sources.list"
        local options=(
                -o Dir::Etc::sourcelist="$apt/sources.list"
                -o Dir::Etc::sourceparts="$apt/sources.list.d"
                -o Dir::Etc::preferencesparts="$apt/preferences.d"
                -o Dir::State::Lists="$apt/lists"
                -o Dir::Cache="$apt/cache"
                -o Dir::State::status="$apt/status"
                -o APT::Sandbox::User="$(id -un)"
                -o APT::Architecture=amd64 -o APT::Architectures=amd64
                -o Acquire::Languages=none
                -o Acquire::http::Proxy=DIRECT
                -o Debug::NoLocking=1
        )

        timeout 120 apt-get "${options[@]}" -q update || return 1
        timeout 120 apt-get "${options[@]}" -q -s install --no-install-recommends \
                fx-base fx-php fx-app >"$WORK/apt-simulate.txt" || return 1

        local expected
        for expected in 'Inst fx-lib (1.2' 'Inst fx-pre (1.0' 'Inst fx-excluded (1.0'; do
                grep -qF "$expected" "$WORK/apt-simulate.txt" || {
                        printf 'apt-get -s install has no %q:\n' "$expected"
                        cat "$WORK/apt-simulate.txt"
                        return 1
                }
        done

        if grep -E '^Inst (fx-alt|fx-rec) ' "$WORK/apt-simulate.txt"; then
                return 1
        fi
}

check_fixture_repository() {
        section "fixture repository"
        local dist
        dist=$(repo_dir fixture)/dists/$FX_SUITE
        check "fixture InRelease verifies with gpgv" \
                gpgv --keyring "$WORK/keys/fixture.gpg" "$dist/InRelease"
        check "fixture Release.gpg verifies with gpgv" \
                gpgv --keyring "$WORK/keys/fixture.gpg" "$dist/Release.gpg" "$dist/Release"
        check "tampered InRelease fails gpgv" \
                fails gpgv --keyring "$WORK/keys/fixture.gpg" \
                "$(repo_dir bad-inrelease)/dists/$FX_SUITE/InRelease"
        check "apt resolves the fixture repository" apt_simulate
}

build_main_image() {
        section "main image"
        write_main_spec "$WORK/specs/main"
        build_image main "$WORK/specs/main/spec.yaml" --tag "$TAG" --cache "$WORK/cache/main" --json
        check "main: build fetched .debs from the pool" grep -q '"GET [^"]*/pool/' "$WORK/http.log"
        check "main: only fx-app reported as needing fx-excluded" only_fx_app_needs_excluded main
        POOL_GETS_AFTER_MAIN=$(grep -c '"GET [^"]*/pool/' "$WORK/http.log" || true)
}

# only_fx_app_needs_excluded LABEL: no message blames the excluded dependency on
# fx-lib or fx-pre, which do not declare it (only fx-app does).
only_fx_app_needs_excluded() {
        if grep -E '(fx-lib|fx-pre)[^ ]*:? *(Pre-)?Depends:[^,]*fx-excluded' "$LOGS/$1.err"; then
                echo "stderr attributes fx-app's dependency on fx-excluded to another package"
                return 1
        fi
}

# podman_load IMAGE CONFIG-DIGEST: podman loads the tarball as the image whose ID is
# the config digest, and removes it again.
podman_load() {
        local image=$1 id=${2#sha256:}
        podman_cmd load -i "$image" || return 1
        local loaded
        loaded=$(podman_cmd image inspect --format '{{.Id}}' "$id") || return 1
        if [[ $loaded != "$id" ]]; then
                printf 'podman image ID %s, expected the config digest %s\n' "$loaded" "$id"
                return 1
        fi
        podman_cmd image inspect --format '{{.RepoTags}}' "$id"
        podman_cmd rmi "$id"
}

umoci_unpack() {
        local rootless=()
        ((EUID == 0)) || rootless=(--rootless)
        skopeo_cmd copy --quiet "oci-archive:$1" "oci:$WORK/oci:hermetic" || return 1
        timeout "$CONTAINER_TOOL_TIMEOUT" umoci unpack "${rootless[@]}" --image "$WORK/oci:hermetic" "$WORK/bundle" || return 1
        local mode
        mode=$(stat -c '%a %u:%g' "$WORK/bundle/rootfs/usr/bin/fx-suid") || return 1
        if ((EUID == 0)) && [[ $mode != "4755 0:0" ]]; then
                printf 'umoci unpacked usr/bin/fx-suid as %s, expected 4755 0:0\n' "$mode"
                return 1
        fi
}

check_image_tools() {
        section "main image: container tools"
        main_image_ready "container tools" || return 0
        local image=$OUT/main/image.tar
        check "skopeo inspects the OCI archive" skopeo_cmd inspect "oci-archive:$image"
        check "skopeo inspects the Docker archive" skopeo_cmd inspect "docker-archive:$image"
        check "umoci unpacks the image" umoci_unpack "$image"

        local reason
        if ! reason=$(podman_ready); then
                fail_check "podman loads the image" "$reason"
                return 0
        fi
        # Rootless podman maps the layer's uid 1001 through /etc/subuid; without a range
        # for this user it cannot store the image at all.
        if ((EUID != 0)) && ! grep -q "^$(id -un):" /etc/subuid 2>/dev/null; then
                fail_check "podman loads the image" \
                        "podman cannot run in this environment: rootless podman needs a range for $(id -un) in /etc/subuid and /etc/subgid"
                return 0
        fi
        local config_digest
        config_digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' \
                "$(image_check_manifest_path main)")
        check "podman loads the image" podman_load "$image" "$config_digest"
}

# image_check_manifest_path LABEL: the manifest blob of an unpacked image.
image_check_manifest_path() {
        python3 - "$WORK/img/$1/image" <<'EOF'
import json, os, sys
root = sys.argv[1]
index = json.load(open(os.path.join(root, "index.json")))
print(os.path.join(root, "blobs", "sha256", index["manifests"][0]["digest"].split(":")[1]))
EOF
}

check_oci_metadata() {
        section "main image: OCI and Docker metadata"
        main_image_ready "OCI metadata" || return 0
        local dir=$WORK/img/main image=$OUT/main/image.tar
        check "digests and sizes match the blobs" image_check digests "$dir"
        check "config diff_ids[0] is the uncompressed layer" image_check diff-id "$dir"
        check "index.json ref.name is the --tag" image_check ref-name "$dir" "$TAG"
        check "manifest.json paths and RepoTags" image_check docker-manifest "$dir" "$image" "$TAG"
        check "--json output matches the image" \
                image_check json-output "$dir" "$LOGS/main.out" "$image" "${#MAIN_PACKAGES[@]}"
        check "config architecture amd64" image_check config "$dir" '"amd64"' architecture
        check "config os linux" image_check config "$dir" '"linux"' os
        check "config created is the clamp time" image_check config "$dir" '"2026-01-01T00:00:00Z"' created
        check "config User resolved to uid:gid" image_check config "$dir" '"1001:1001"' config User
        check "config Entrypoint" image_check config "$dir" '["/usr/bin/fxsh"]' config Entrypoint
        check "config Cmd" image_check config "$dir" '["--version"]' config Cmd
        check "config Env has LANG" image_check config "$dir" '"LANG=C.UTF-8"' config Env --member
        check "config WorkingDir" image_check config "$dir" '"/home/fxuser"' config WorkingDir
        check "config ExposedPorts" image_check config "$dir" '{"9000/tcp": {}}' config ExposedPorts
        check "config Labels" image_check config "$dir" '"fixture-image"' \
                config Labels org.opencontainers.image.title
}

check_layer_headers() {
        section "main image: layer tar headers"
        main_image_ready "layer headers" || return 0
        local dir=$WORK/img/main
        check "layer gzip header has no mtime or name" image_check gzip-header "$dir"
        check "layer entries sorted by path" image_check sorted "$dir"
        check "layer entries unique" image_check unique "$dir"
        check "layer uname and gname empty" image_check owner-names "$dir"
        check "fx-suid is 4755 root:root" \
                image_check entry "$dir" usr/bin/fx-suid --type reg --mode 4755 --owner 0:0
        check "fx-a and fx-b are one file and a hard link" \
                image_check hardlink-pair "$dir" usr/bin/fx-a usr/bin/fx-b
        check "fx-link is a symlink to fx-a" \
                image_check entry "$dir" usr/bin/fx-link --type sym --target fx-a
        check "bin is a symlink to usr/bin" image_check entry "$dir" bin --type sym --target usr/bin
        check "nothing under bin/" image_check empty-below "$dir" bin
        check "/bin/fxsh landed in usr/bin" image_check entry "$dir" usr/bin/fxsh --type reg --mode 0755
        check "mtimes at most the snapshot time" image_check mtimes "$dir" "$FX_SNAPSHOT_EPOCH"
        check "future mtime clamped to the snapshot time" \
                image_check entry "$dir" usr/bin/fxsh --mtime "$FX_SNAPSHOT_EPOCH"
        check "older mtime kept" image_check entry "$dir" etc/fx.conf --mtime "$FX_OLD_MTIME"
}

check_package_set() {
        section "main image: package selection"
        main_image_ready "package selection" || return 0
        local dir=$WORK/img/main
        check "status.d lists exactly the closure" image_check installed "$dir" "${MAIN_PACKAGES[@]}"
        check "fx-alt not installed" image_check absent "$dir" usr/share/fx-alt
        check "excluded fx-excluded not installed" image_check absent "$dir" usr/share/fx-excluded
        check "Recommends-only fx-rec not installed" image_check absent "$dir" usr/share/fx-rec
        check "fx-lib 1.2 installed" image_check contains "$dir" usr/lib/fx/libfx.txt "fx-lib 1.2"
        check "fx-lib 0.9 not installed" image_check absent "$dir" usr/share/fx-lib
        check "Pre-Depends fx-pre installed" image_check entry "$dir" usr/share/fx-pre/marker --type reg
}

# fpm_global_written DIR POOL-FILE: the spec's php.fpm.global directives are in
# php-fpm.conf or in the pool file, which php-fpm reads through its include.
fpm_global_written() {
        local file
        for file in etc/php/8.2/fpm/php-fpm.conf "$2"; do
                if image_check ini "$1" "$file" error_log=/proc/self/fd/2 daemonize=no >/dev/null 2>&1; then
                        return 0
                fi
        done
        echo "neither php-fpm.conf nor $2 has error_log = /proc/self/fd/2 and daemonize = no"
        return 1
}

check_php() {
        section "main image: php"
        main_image_ready "php" || return 0
        local dir=$WORK/img/main sapi ext priority
        for sapi in fpm cli; do
                for ext in 25:fxext 15:fxdep; do
                        priority=${ext%%:*}
                        ext=${ext#*:}
                        check "$sapi/conf.d/$priority-$ext.ini links to mods-available" \
                                image_check entry "$dir" "etc/php/8.2/$sapi/conf.d/$priority-$ext.ini" \
                                --type sym --target "/etc/php/8.2/mods-available/$ext.ini"
                done
                check "$sapi/conf.d has no fxother link" \
                        image_check no-name-containing "$dir" "etc/php/8.2/$sapi/conf.d" fxother
        done
        local pool=etc/php/8.2/fpm/pool.d/www.conf
        check "pool www.conf has the spec's settings" image_check ini "$dir" "$pool" --section www \
                listen=9000 user=fxuser group=fxgroup pm=dynamic pm.max_children=5 \
                pm.start_servers=2 pm.min_spare_servers=1 pm.max_spare_servers=3 \
                clear_env=no catch_workers_output=yes
        check "pool www.conf replaced the packaged one" image_check lacks "$dir" "$pool" placeholder.sock
        check "fpm global settings written" fpm_global_written "$dir" "$pool"
        check "/run/php exists" image_check entry "$dir" run/php --type dir --mode 0755 --owner 1001:1001
}

check_accounts() {
        section "main image: accounts and spec files"
        main_image_ready "accounts" || return 0
        local dir=$WORK/img/main
        check "passwd has root" image_check account "$dir" user root --id 0 --gid 0
        check "passwd has nobody" image_check account "$dir" user nobody --id 65534 --gid 65534
        check "passwd has fxuser" image_check account "$dir" user fxuser \
                --id 1001 --gid 1001 --home /home/fxuser --shell /usr/sbin/nologin
        check "group has root" image_check account "$dir" group root --id 0
        check "group has gid 65534" image_check group-with-id "$dir" 65534 nobody nogroup
        check "group has fxgroup" image_check account "$dir" group fxgroup --id 1001
        check "fxuser home owned by fxuser" \
                image_check entry "$dir" home/fxuser --type dir --owner 1001:1001
        check "spec symlink written" image_check entry "$dir" usr/bin/fx-alias --type sym --target fxsh
        check "spec file mode and owner" \
                image_check entry "$dir" etc/fx-extra.conf --type reg --mode 0640 --owner 1001:1001
        check "spec file content" image_check contains "$dir" etc/fx-extra.conf $'extra = 1\n'
}

check_status_d() {
        section "main image: /var/lib/dpkg/status.d"
        main_image_ready "status.d" || return 0
        local dir=$WORK/img/main package deb
        for package in "${MAIN_PACKAGES[@]}"; do
                # The newest version of the package, the one the resolver must pick.
                deb=$(printf '%s\n' "$WORK/debs/${package}"_*.deb | sort -V | tail -n 1)
                check "status.d/$package matches the .deb control" image_check status "$dir" "$package" "$deb"
                check "status.d/$package.md5sums matches the .deb" image_check md5sums "$dir" "$package" "$deb"
        done
}

# pool_gets_since COUNT: pool/ GET lines in the access log after the first COUNT.
pool_gets_since() {
        grep '"GET [^"]*/pool/' "$WORK/http.log" | tail -n +"$(($1 + 1))"
}

no_new_pool_gets() {
        local new
        new=$(pool_gets_since "$1")
        if [[ -n $new ]]; then
                printf 'the cached build downloaded again:\n%s\n' "$new"
                return 1
        fi
}

same_digest() {
        local first second
        first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$LOGS/$1.out") || return 1
        second=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$LOGS/$2.out") || return 1
        if [[ $first != "$second" ]]; then
                printf '%s built %s, %s built %s\n' "$1" "$first" "$2" "$second"
                return 1
        fi
}

check_cached_rebuild() {
        section "rebuild from the cache"
        local before=${POOL_GETS_AFTER_MAIN:-0}
        build_image cached "$WORK/specs/main/spec.yaml" --tag "$TAG" --cache "$WORK/cache/main" --json
        check "cached: no .deb downloaded again" no_new_pool_gets "$before"
        check "cached: same digest as the first build" same_digest main cached
        check "cached: identical image file" cmp "$OUT/main/image.tar" "$OUT/cached/image.tar"
}

check_source_date_epoch() {
        section "SOURCE_DATE_EPOCH and the default output name"
        # 2023-11-14T22:13:20Z, older than the snapshot, so it must win.
        local epoch=1700000000
        run_distill epoch SOURCE_DATE_EPOCH=$epoch -- \
                build "$WORK/specs/main/spec.yaml" --cache "$WORK/cache/main"
        check "epoch: exit status 0" exit_status epoch 0
        check "epoch: no sanitizer report" no_sanitizer_report epoch
        check "epoch: output defaults to ./NAME.tar" test -f "$OUT/epoch/fixture-image.tar"
        check "epoch: image unpacks" image_check unpack "$OUT/epoch/fixture-image.tar" "$WORK/img/epoch"
        image_ready epoch || return 0
        check "epoch: mtimes at most SOURCE_DATE_EPOCH" image_check mtimes "$WORK/img/epoch" "$epoch"
        check "epoch: future mtime clamped to SOURCE_DATE_EPOCH" \
                image_check entry "$WORK/img/epoch" usr/bin/fxsh --mtime "$epoch"
}

canaries_intact() {
        local problems=0
        if ((TMP_PWNED_EXISTED == 0)) && [[ -e /tmp/pwned ]]; then
                echo "/tmp/pwned exists: a build wrote outside its staging root"
                problems=1
        fi
        local listing
        listing=$(find "$CANARY" -mindepth 1 -printf '%P\n')
        if [[ $listing != victim ]]; then
                printf 'unexpected files in the canary directory:\n%s\n' "$listing"
                problems=1
        fi
        if [[ $(cat "$CANARY/victim") != victim ]] || [[ $(stat -c %h "$CANARY/victim") != 1 ]]; then
                echo "the canary file was written to or hard-linked"
                problems=1
        fi
        return "$problems"
}

# check_rejected LABEL CODE SPEC TEXT...: a build that must fail with CODE, name each
# TEXT on stderr and leave no output.
check_rejected() {
        local label=$1 code=$2 spec=$3
        shift 3
        run_distill "$label" -- build "$spec" -o "$OUT/$label/image.tar" --cache "$WORK/cache/$label"
        expect_failure "$label" "$code" "$@"
}

check_unsafe_packages() {
        section "unsafe package contents"
        if ((TMP_PWNED_EXISTED == 1)); then
                echo "     note: /tmp/pwned existed before the run; only the canary directory is checked"
        fi
        local keyring=$WORK/keys/fixture.gpg case package path
        for case in fx-evil:usr/lib/evil fx-evil-abs:usr/lib/evil-abs fx-evil-rel:usr/lib/evil-rel \
                fx-evil-dotdot:dotdot-pwned fx-evil-hardlink:usr/lib/evil-hl; do
                package=${case%%:*}
                path=${case#*:}
                write_small_spec "$WORK/specs/$package/spec.yaml" fixture "$keyring" "$package"
                check_rejected "$package" 7 "$WORK/specs/$package/spec.yaml" "$package" "$path"
                check "$package: nothing written outside the staging root" canaries_intact
        done
}

check_file_conflicts() {
        section "files shipped by two packages"
        local keyring=$WORK/keys/fixture.gpg
        write_small_spec "$WORK/specs/clash/spec.yaml" fixture "$keyring" fx-clash-a fx-clash-b
        check_rejected clash 7 "$WORK/specs/clash/spec.yaml" fx-clash-a fx-clash-b usr/share/fx-clash/data

        write_small_spec "$WORK/specs/replaces/spec.yaml" fixture "$keyring" fx-clash-a fx-clash-c
        build_image replaces "$WORK/specs/replaces/spec.yaml" --cache "$WORK/cache/main"
        image_ready replaces &&
                check "replaces: the replacing package's file wins" \
                        image_check contains "$WORK/img/replaces" usr/share/fx-clash/data 'shipped by fx-clash-c'

        write_small_spec "$WORK/specs/overwrite/spec.yaml" fixture "$keyring" fx-clash-a fx-clash-b \
                -- 'allow_overwrite: [/usr/share/fx-clash/*]'
        build_image overwrite "$WORK/specs/overwrite/spec.yaml" --cache "$WORK/cache/main"
        return 0
}

# no_cache_entry_for_tampered_deb CACHE: neither the index's digest nor the tampered
# file's digest is stored, under any name.
no_cache_entry_for_tampered_deb() {
        local cache=$1 good bad
        good=$(cat "$WORK/good-deb.sha256")
        bad=$(cat "$WORK/tampered-deb.sha256")
        local named
        named=$(find "$cache" -name "*$good*" -o -name "*$bad*")
        if [[ -n $named ]]; then
                printf 'cache entries for the tampered .deb:\n%s\n' "$named"
                return 1
        fi
        if [[ -d $cache ]] && find "$cache" -type f -print0 | xargs -0 -r sha256sum | grep -F "$bad"; then
                echo "a file with the tampered .deb's content is in the cache"
                return 1
        fi
}

check_verification() {
        section "signature and checksum verification"
        local keyring=$WORK/keys/fixture.gpg
        write_small_spec "$WORK/specs/bad-inrelease/spec.yaml" bad-inrelease "$keyring" fx-base
        check_rejected bad-inrelease 5 "$WORK/specs/bad-inrelease/spec.yaml" archive/bad-inrelease signature

        write_small_spec "$WORK/specs/unsigned/spec.yaml" unsigned "$keyring" fx-base
        check_rejected unsigned 5 "$WORK/specs/unsigned/spec.yaml" Release

        write_small_spec "$WORK/specs/other-key/spec.yaml" fixture "$WORK/keys/other.gpg" fx-base
        check_rejected other-key 5 "$WORK/specs/other-key/spec.yaml" other.gpg

        write_small_spec "$WORK/specs/bad-packages/spec.yaml" bad-packages "$keyring" fx-base
        check_rejected bad-packages 5 "$WORK/specs/bad-packages/spec.yaml" Packages

        write_small_spec "$WORK/specs/bad-deb/spec.yaml" bad-deb "$keyring" fx-app -- 'exclude: [fx-excluded]'
        check_rejected bad-deb 5 "$WORK/specs/bad-deb/spec.yaml" fx-lib
        check "bad-deb: no cache entry for the tampered .deb" \
                no_cache_entry_for_tampered_deb "$WORK/cache/bad-deb"
}

# key_position FILE TEXT: "LINE:COLUMN" (both counted from 1) of the first TEXT in FILE.
key_position() {
        awk -v text="$2" '{ column = index($0, text); if (column) { print NR ":" column; exit } }' "$1"
}

check_spec_errors() {
        section "spec errors"
        local keyring=$WORK/keys/fixture.gpg spec position
        spec=$WORK/specs/unknown-key/spec.yaml
        write_small_spec "$spec" fixture "$keyring" fx-base -- 'colour: blue'
        position=$(key_position "$spec" colour:)
        check_rejected unknown-key 3 "$spec" "spec.yaml:$position" colour

        spec=$WORK/specs/unknown-nested/spec.yaml
        write_small_spec "$spec" fixture "$keyring" fx-base
        sed -i 's/^    suites:/    mirror_of: elsewhere\n&/' "$spec"
        position=$(key_position "$spec" mirror_of:)
        check_rejected unknown-nested 3 "$spec" "spec.yaml:$position" mirror_of

        # A string where the spec format wants a list; the column may be the key's or
        # the value's, so only the line is required.
        spec=$WORK/specs/wrong-type/spec.yaml
        write_small_spec "$spec" fixture "$keyring" fx-base
        sed -i 's/^architectures: \[amd64\]$/architectures: amd64/' "$spec"
        position=$(key_position "$spec" architectures:)
        check_rejected wrong-type 3 "$spec" "spec.yaml:${position%%:*}:" architectures

        # A php extension with no ini file in the packages is a spec error too.
        spec=$WORK/specs/missing-ext/spec.yaml
        write_small_spec "$spec" fixture "$keyring" fx-php -- 'php:' '  extensions: [fxmissing]'
        check_rejected missing-ext 3 "$spec" fxmissing
}

check_other_failures() {
        section "usage, resolution, network and output errors"
        run_distill no-spec -- build
        check "no-spec: exit status 2" exit_status no-spec 2
        run_distill bad-option -- build "$WORK/specs/main/spec.yaml" --no-such-option
        check "bad-option: exit status 2" exit_status bad-option 2
        check "bad-option: error names the option" stderr_has bad-option --no-such-option
        run_distill version -- --version
        check "--version: exit status 0" exit_status version 0
        run_distill help -- --help
        check "--help: exit status 0" exit_status help 0

        local keyring=$WORK/keys/fixture.gpg
        write_small_spec "$WORK/specs/no-such-package/spec.yaml" fixture "$keyring" fx-nonexistent
        check_rejected no-such-package 6 "$WORK/specs/no-such-package/spec.yaml" fx-nonexistent
        write_small_spec "$WORK/specs/unsatisfiable/spec.yaml" fixture "$keyring" fx-broken
        check_rejected unsatisfiable 6 "$WORK/specs/unsatisfiable/spec.yaml" fx-broken fx-missing

        write_small_spec "$WORK/specs/no-repository/spec.yaml" no-such-repository "$keyring" fx-base
        check_rejected no-repository 4 "$WORK/specs/no-repository/spec.yaml" archive/no-such-repository
        write_small_spec "$WORK/specs/missing-deb/spec.yaml" missing-deb "$keyring" fx-app \
                -- 'exclude: [fx-excluded]'
        check_rejected missing-deb 4 "$WORK/specs/missing-deb/spec.yaml" fx-pre

        # A directory the build user cannot write to.
        mkdir -p "$WORK/read-only"
        chmod 0555 "$WORK/read-only"
        run_distill read-only-output -- build "$WORK/specs/main/spec.yaml" \
                -o "$WORK/read-only/image.tar" --cache "$WORK/cache/main"
        check "read-only-output: exit status 8" exit_status read-only-output 8
        check "read-only-output: error names the path" stderr_has read-only-output "$WORK/read-only"
        check "read-only-output: nothing written" test -z "$(ls -A "$WORK/read-only")"

        # A --rootfs that cannot be used fails before anything is downloaded: a new
        # cache stays without packages.
        mkdir -p "$WORK/rootfs-busy"
        echo keep >"$WORK/rootfs-busy/file"
        chown -R "$RUN_OWNER" "$WORK/rootfs-busy"
        run_distill rootfs-busy -- build "$WORK/specs/main/spec.yaml" -o "$OUT/rootfs-busy.tar" \
                --cache "$WORK/cache/rootfs-busy" --rootfs "$WORK/rootfs-busy"
        check "rootfs-busy: exit status 2" exit_status rootfs-busy 2
        check "rootfs-busy: error names the directory" stderr_has rootfs-busy "$WORK/rootfs-busy" "not empty"
        check "rootfs-busy: nothing downloaded" no_cached_packages "$WORK/cache/rootfs-busy"
        check "rootfs-busy: the directory is untouched" test "$(ls -A "$WORK/rootfs-busy")" = file
        # A filter that drops a file with a second name: both names go, with a warning
        # that tells how to keep them.
        local hl_spec=$WORK/specs/filtered-link/spec.yaml
        write_small_spec "$hl_spec" fixture "$keyring" fx-base -- 'paths:' '  exclude: [/usr/bin/fx-a]'
        run_distill filtered-link -- build "$hl_spec" -o "$OUT/filtered-link.tar" \
                --cache "$WORK/cache/filtered-link"
        check "filtered-link: exit status 0" exit_status filtered-link 0
        check "filtered-link: the warning names both paths and the fix" stderr_has filtered-link \
                "warning: package fx-base: dropping the hard link /usr/bin/fx-b" \
                "add /usr/bin/fx-a to paths.include"
        run_distill rootfs-file -- build "$WORK/specs/main/spec.yaml" -o "$OUT/rootfs-file.tar" \
                --cache "$WORK/cache/rootfs-file" --rootfs "$WORK/rootfs-busy/file"
        check "rootfs-file: exit status 2" exit_status rootfs-file 2
        check "rootfs-file: error says what to name" stderr_has rootfs-file "is not a directory" \
                "name a new or empty directory"
}

# no_cached_packages CACHE: the cache has no file under sha256/ (no download).
no_cached_packages() {
        local found
        found=$(find "$1/sha256" -type f 2>/dev/null | head -n 3)
        if [[ -n $found ]]; then
                printf 'files in the cache:\n%s\n' "$found"
                return 1
        fi
}

# new_gets_of PATTERN COUNT: whether the access log has more than COUNT GETs matching PATTERN.
new_gets_of() {
        local count
        count=$(grep -c -- "$1" "$WORK/http.log" || true)
        if ((count <= $2)); then
                printf 'no new GET matching %s in the access log\n' "$1"
                return 1
        fi
}

# The spec names a source on a closed port (9, discard); only the mirror rewrite
# lets the build reach the fixture server.
check_mirrors() {
        section "mirror rewriting"
        local spec=$WORK/specs/mirrored/spec.yaml
        mkdir -p "$(dirname "$spec")"
        sed "s|$BASE_URL/|http://127.0.0.1:9/archive/|" "$WORK/specs/main/spec.yaml" >"$spec"
        cp "$WORK/keys/fixture.gpg" "$(dirname "$spec")/fixture-keyring.gpg"
        local pattern="GET /archive/fixture/$FX_SNAPSHOT/dists/$FX_SUITE/InRelease" before

        before=$(grep -c -- "$pattern" "$WORK/http.log" || true)
        build_image mirror-option "$spec" --cache "$WORK/cache/main" \
                --mirror "http://127.0.0.1:9/archive/=$BASE_URL/"
        check "mirror-option: fetched through the mirror" new_gets_of "$pattern" "$before"
        image_ready mirror-option &&
                check "mirror-option: snapshot time from the spec URL" \
                        image_check entry "$WORK/img/mirror-option" usr/bin/fxsh --mtime "$FX_SNAPSHOT_EPOCH"

        before=$(grep -c -- "$pattern" "$WORK/http.log" || true)
        run_distill mirror-env "DISTILL_MIRROR=http://127.0.0.1:9/archive/=$BASE_URL/" -- \
                build "$spec" -o "$OUT/mirror-env/image.tar" --cache "$WORK/cache/main"
        check "mirror-env: exit status 0" exit_status mirror-env 0
        check "mirror-env: fetched through the mirror" new_gets_of "$pattern" "$before"
}

# Every build must remove its staging directory and stop every process it started
# (such as a gpg-agent for its keyring).
no_leftover_temp_dirs() {
        local left
        left=$(find "$RUN_TMP" -mindepth 1 -maxdepth 1 -printf '%P\n')
        if [[ -n $left ]]; then
                printf 'left in TMPDIR:\n%s\n' "$left"
                return 1
        fi
}

# Processes of the build user that mention the build's HOME, which contains its
# TMPDIR. The test's own server and gpg-agent run from elsewhere under $WORK.
no_leftover_processes() {
        local user=${RUN_OWNER%%:*} left
        left=$(pgrep -a -u "$user" -f -- "$RUN_HOME" || true)
        if [[ -n $left ]]; then
                printf 'processes still running:\n%s\n' "$left"
                return 1
        fi
}

check_leftovers() {
        section "cleanup after builds"
        check "no temporary directories left" no_leftover_temp_dirs
        check "no processes left running" no_leftover_processes
}

main() {
        setup_workdir
        prepare_build_user
        setup_fixtures
        start_server

        check_fixture_repository
        build_main_image
        check_image_tools
        check_oci_metadata
        check_layer_headers
        check_package_set
        check_php
        check_accounts
        check_status_d
        check_cached_rebuild
        check_source_date_epoch
        check_unsafe_packages
        check_file_conflicts
        check_verification
        check_spec_errors
        check_other_failures
        check_mirrors
        check_leftovers

        finish_tests
}

main "$@"
