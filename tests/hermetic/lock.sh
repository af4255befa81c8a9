#!/usr/bin/env bash
# Hermetic tests of lock files, reproducible image bytes, images for several
# architectures and a cache shared by concurrent builds.
#
# Builds tiny amd64, arm64 and Architecture: all packages, lays them out as one
# signed apt repository with binary-amd64 and binary-arm64 indexes, serves it with
# python3 -m http.server on 127.0.0.1, and runs `distill lock`, `distill build` and
# `distill why` against it. The specs name an unreachable loopback URL, and --mirror
# points it at the server, so the lock must name the spec's URL and never the
# mirror. Nothing leaves the machine. Run from anywhere after build/distill-san exists:
#
#     tests/hermetic/lock.sh
#     DISTILL=build/distill tests/hermetic/lock.sh
#     LOCK_KEEP=1 tests/hermetic/lock.sh   (keep the work directory for debugging)
#
# The last line is "N passed, N failed"; the exit status is non-zero when any check
# failed. Everything is written below one mktemp -d directory that the EXIT trap
# removes, together with the http server and the gpg-agent it started. As root, the
# script creates the system user distill-repro (when missing) to build as an
# unprivileged user, and leaves that user in place.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/hermetic/lib.sh
source "$HERE/lib.sh"
hermetic_init LOCK_KEEP

# The URL every spec names. Port 1 (tcpmux) has no listener on 127.0.0.1 here, so
# any request that skips the mirror is refused at once. The last path segment makes
# it a snapshot source whose timestamp is the default image time.
UNREACHABLE=http://127.0.0.1:1/unreachable/$FX_SNAPSHOT
# $FX_SNAPSHOT as RFC 3339: the created time of an image built without SOURCE_DATE_EPOCH.
SNAPSHOT_CREATED=2026-01-01T00:00:00Z
# An explicit SOURCE_DATE_EPOCH (2023-11-14T22:13:20Z), distinct from the snapshot time.
EXPLICIT_EPOCH=1700000000
EXPLICIT_CREATED=2023-11-14T22:13:20Z
REPRO_USER=distill-repro
# Seconds one python3 call may take before it counts as hung.
TOOL_TIMEOUT=120
# Seconds building every fixture package and the repository may take.
FIXTURE_TIMEOUT=600
# The umask of each run; case_reproducible changes it for some runs.
RUN_UMASK=022

# The fixture files must be readable by $REPRO_USER.
umask 022

# --- running distill ------------------------------------------------------------

# run_distill LABEL [-u VAR]... [VAR=VALUE]... -- ARG...
# Run `distill ARG...` in $WORK with the given environment changes, under
# "${RUN_AS[@]}" and umask $RUN_UMASK, recording stdout, stderr and the exit status
# as $LOGS/LABEL.{out,err,rc} and the http.server log lines written during the run
# as $LOGS/LABEL.http.
run_distill() {
        local label=$1
        shift
        split_env_args "$@"
        local before
        # http.server logs a request before it sends the response body, so every
        # request distill made is in the log once distill has exited.
        before=$(wc -l <"$WORK/http.log")
        set_command "$RUN_TIMEOUT" "${ENV_ARGS[@]}" -- "$DISTILL" "${ARGS[@]}"
        run_command "$label" "$WORK"
        tail -n +"$((before + 1))" "$WORK/http.log" >"$LOGS/$label.http"
}

# run_build LABEL SPEC CACHE [-u VAR]... [VAR=VALUE]... -- [ARG]...
# `distill build SPEC -o $OUT/LABEL/image.tar --cache CACHE --mirror $MIRROR ARG...`
# with TMPDIR=$WORK/tmp unless the environment changes set another.
run_build() {
        local label=$1 spec=$2 cache=$3
        shift 3
        split_env_args "$@"
        mkdir -p "$OUT/$label"
        run_distill "$label" TMPDIR="$WORK/tmp" "${ENV_ARGS[@]}" -- build "$spec" -o "$OUT/$label/image.tar" \
                --cache "$cache" --mirror "$MIRROR" "${ARGS[@]}"
}

# stdout_is LABEL TEXT: run LABEL printed exactly TEXT (plus a final newline).
stdout_is() {
        local actual
        actual=$(cat "$LOGS/$1.out")
        if [[ $actual != "$2" ]]; then
                printf 'stdout:\n%s\nexpected:\n%s\nstderr:\n' "$actual" "$2"
                cat "$LOGS/$1.err"
                return 1
        fi
}

# http_requests_lack LABEL PATTERN: no GET in the http.server log of run LABEL
# matches the extended regular expression PATTERN.
http_requests_lack() {
        if grep -E "\"GET [^\"]*($2)[^\"]*\"" "$LOGS/$1.http"; then
                printf 'the requests above were made during %s\n' "$1"
                return 1
        fi
}

# http_requests_have LABEL PATH...: the http.server log of run LABEL shows a
# successful GET of each PATH (below the server root).
http_requests_have() {
        local label=$1 path
        shift
        for path in "$@"; do
                if ! grep -qF "\"GET $path HTTP/1.1\" 200" "$LOGS/$label.http"; then
                        printf 'no "GET %s" with status 200 during %s. Requests:\n' "$path" "$label"
                        cat "$LOGS/$label.http"
                        return 1
                fi
        done
}

# no_http_requests LABEL: the server saw no request at all during run LABEL.
no_http_requests() {
        if [[ -s $LOGS/$1.http ]]; then
                printf 'requests during %s:\n' "$1"
                cat "$LOGS/$1.http"
                return 1
        fi
}

# image_sha256 LABEL: the sha256 of the image run LABEL wrote, or nothing.
image_sha256() {
        [[ -f $OUT/$1/image.tar ]] && sha256sum "$OUT/$1/image.tar" | cut -d' ' -f1
        return 0
}

# same_image LABEL OTHER: both runs wrote byte-identical images.
same_image() {
        local a b
        a=$(image_sha256 "$1")
        b=$(image_sha256 "$2")
        if [[ -z $a || -z $b || $a != "$b" ]]; then
                printf '%s: %s\n%s: %s\n' "$1" "${a:-no image}" "$2" "${b:-no image}"
                [[ -n $a && -n $b ]] && image_tool diff "$OUT/$1/image.tar" "$OUT/$2/image.tar"
                return 1
        fi
}

# different_image LABEL OTHER: both runs wrote images, and they differ.
different_image() {
        local a b
        a=$(image_sha256 "$1")
        b=$(image_sha256 "$2")
        if [[ -z $a || -z $b || $a == "$b" ]]; then
                printf '%s: %s\n%s: %s\n' "$1" "${a:-no image}" "$2" "${b:-no image}"
                return 1
        fi
}

# --- fixtures -------------------------------------------------------------------

setup_workdir() {
        make_workdir
        # $REPRO_USER must reach the specs, the lock and the keyring below $WORK.
        chmod 0755 "$WORK"
        CACHE=$WORK/cache
        SPECS=$WORK/specs
        mkdir -p "$CACHE" "$SPECS" "$WORK/www" "$WORK/tmp" "$WORK/keys"
}

# arch_package SRC OUTDIR NAME ARCH [FIELD-LINE]...
# Version 1.0 of NAME for ARCH, shipping /usr/share/NAME/marker and, unless ARCH is
# all, /usr/share/NAME/built-for-ARCH, so that a layer shows which variant it holds.
arch_package() {
        local src=$1 out=$2 name=$3 arch=$4
        shift 4
        local dir=$src/${name}_$arch
        new_package "$dir" "$name" 1.0 "$arch" "$@"
        mkdir -p "$dir/usr/share/$name"
        printf '%s 1.0\n' "$name" >"$dir/usr/share/$name/marker"
        [[ $arch == all ]] || printf '%s 1.0 for %s\n' "$name" "$arch" >"$dir/usr/share/$name/built-for-$arch"
        finish_package "$dir" xz "$out/${name}_1.0_$arch.deb"
}

# make_packages SRC OUTDIR: the dependency chain lk-app -> lk-lib -> lk-common for
# amd64 and arm64 (lk-common is Architecture: all), lk-tool (also needing
# lk-common) and lk-extra for the second spec, and lk-amd64only for amd64 alone.
make_packages() {
        local src=$1 out=$2 arch
        for arch in amd64 arm64; do
                arch_package "$src" "$out" lk-app "$arch" 'Depends: lk-lib (>= 1.0)'
                arch_package "$src" "$out" lk-lib "$arch" 'Depends: lk-common'
                arch_package "$src" "$out" lk-tool "$arch" 'Depends: lk-common'
        done
        arch_package "$src" "$out" lk-common all
        arch_package "$src" "$out" lk-extra all
        arch_package "$src" "$out" lk-amd64only amd64
}

# make_fixtures WORK: the packages, a signing key and the repository
# WORK/www/archive with binary-amd64 and binary-arm64 indexes. Prints the key's
# fingerprint.
make_fixtures() {
        local work=$1
        make_packages "$work/debsrc" "$work/debs" >/dev/null
        local fpr
        fpr=$(make_signing_key "$work/gnupg" lock-fixture "$work/keys/fixture.gpg")
        build_repository "$work/www/archive" "$work/debs" "$work/gnupg" "$fpr" amd64 arm64 >/dev/null
        printf '%s\n' "$fpr"
}

build_fixtures() {
        mkdir -p "$WORK/debs" "$WORK/debsrc"
        local fpr
        fpr=$(in_child_bash "$FIXTURE_TIMEOUT" -- make_fixtures "$WORK") ||
                die "building the fixture packages and repository failed"
        local index=$WORK/www/archive/dists/$FX_SUITE/main
        grep -q '^Architectures: amd64 arm64$' "$WORK/www/archive/dists/$FX_SUITE/Release" ||
                die "the Release does not list amd64 and arm64"
        grep -q '^Package: lk-amd64only$' "$index/binary-amd64/Packages" ||
                die "binary-amd64 lacks lk-amd64only"
        grep -q '^Package: lk-amd64only$' "$index/binary-arm64/Packages" &&
                die "binary-arm64 lists lk-amd64only"
        grep -q '^Architecture: arm64$' "$index/binary-arm64/Packages" ||
                die "binary-arm64 lists no arm64 package"
        grep -q '^Architecture: amd64$' "$index/binary-arm64/Packages" &&
                die "binary-arm64 lists an amd64 package"
        grep -q '^Package: lk-common$' "$index/binary-arm64/Packages" ||
                die "binary-arm64 lacks the Architecture: all package lk-common"
        printf 'fixture key %s\n' "$fpr"
}

start_server() {
        start_http_server "$WORK/www"
        MIRROR=$UNREACHABLE=$SERVER/archive
}

# write_spec PATH NAME PACKAGES-YAML [ARCHITECTURES-YAML]: a spec with the one
# fixture source at $UNREACHABLE.
write_spec() {
        local path=$1 name=$2 packages=$3 architectures=${4:-[amd64, arm64]}
        mkdir -p "$(dirname "$path")"
        cat >"$path" <<SPEC
name: $name
sources:
  - url: $UNREACHABLE
    suites: [$FX_SUITE]
    components: [main]
    keyring: $WORK/keys/fixture.gpg
architectures: $architectures
packages: $packages
SPEC
}

# write_image_tool PATH: the python3 helper that inspects lock files, image
# tarballs, OCI directories and caches. Each subcommand exits 0 when its check holds,
# or 1 with a message naming the offending value.
write_image_tool() {
        cat >"$1" <<'PYTHON'
import hashlib
import io
import json
import os
import sys
import tarfile

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CREATED = "org.opencontainers.image.created"
PACKAGE_FIELDS = {"name", "version", "architecture", "source", "suite", "filename",
                  "size", "sha256", "why"}
# The platform fields the OCI image index uses for each Debian architecture.
PLATFORMS = {"amd64": ("amd64", None), "arm64": ("arm64", "v8")}


class CheckFailed(Exception):
    pass


def fail(message):
    raise CheckFailed(message)


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return sha256_bytes(f.read())


def read_stanzas(path):
    stanzas, current = [], {}
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            if current:
                stanzas.append(current)
            current = {}
        elif not line[0].isspace() and ":" in line:
            key, value = line.split(":", 1)
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def release_sha256(release_path):
    """Map each index path that the Release lists under SHA256 to its digest."""
    listed, in_sha256 = {}, False
    for line in open(release_path, encoding="utf-8"):
        if not line[0].isspace():
            in_sha256 = line.startswith("SHA256:")
        elif in_sha256:
            digest, _, path = line.split()
            listed[path] = digest
    return listed


class Blobs:
    """The blobs, index.json and manifest.json of an image tarball or OCI directory."""

    def __init__(self, path):
        self.files = {}
        if not os.path.exists(path):
            fail(f"{path} is missing")
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                for name in names:
                    full = os.path.join(root, name)
                    with open(full, "rb") as f:
                        self.files[os.path.relpath(full, path)] = f.read()
        else:
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        name = member.name
                        while name.startswith("./"):
                            name = name[2:]
                        self.files[name] = tar.extractfile(member).read()

    def file(self, name):
        if name not in self.files:
            fail(f"no {name} in the image")
        return self.files[name]

    def blob(self, digest):
        return self.file("blobs/sha256/" + digest.split(":", 1)[1])

    def json(self, digest):
        return json.loads(self.blob(digest))

    def image_index(self):
        index = json.loads(self.file("index.json"))
        entries = index.get("manifests", [])
        if len(entries) != 1 or entries[0].get("mediaType") != OCI_INDEX:
            fail(f"index.json should list one image index: {json.dumps(index)}")
        return self.json(entries[0]["digest"])

    def manifest_for(self, arch):
        """The manifest of ARCH, from the image index or, in a one-image OCI directory, the only one."""
        index = json.loads(self.file("index.json"))
        entries = index.get("manifests", [])
        if len(entries) == 1 and entries[0].get("mediaType") == OCI_MANIFEST:
            return entries[0], self.json(entries[0]["digest"])
        expected_arch, variant = PLATFORMS[arch]
        for entry in self.image_index()["manifests"]:
            platform = entry.get("platform", {})
            if platform.get("architecture") == expected_arch and platform.get("variant") == variant:
                return entry, self.json(entry["digest"])
        fail(f"the image index lists no manifest for {arch}")

    def layer_files(self, manifest):
        names = set()
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=io.BytesIO(self.blob(layer["digest"])), mode="r:*") as tar:
                for member in tar.getmembers():
                    name = member.name
                    while name.startswith("./"):
                        name = name[2:]
                    names.add(name.strip("/"))
        return names


def check_lock_format(lock_path):
    data = open(lock_path, "rb").read()
    expected = (json.dumps(json.loads(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    if data != expected:
        offset = next(i for i, (a, b) in enumerate(zip(data + b"\0", expected + b"\1")) if a != b)
        fail("the lock file is not sorted-key JSON with a 2-space indent and a trailing newline; "
             f"first difference at byte {offset}: {data[max(0, offset - 40):offset + 40]!r}")


def check_lock_content(lock_path, url, snapshot, repo, suite, release_date, roots, expected_names, *archs):
    lock = json.load(open(lock_path))
    problems = []
    roots = roots.split(",")
    expected_names = sorted(expected_names.split(","))
    dist = os.path.join(repo, "dists", suite)

    inputs = lock.get("inputs", {})
    if inputs.get("architectures") != list(archs):
        problems.append(f"inputs.architectures {inputs.get('architectures')}, expected {list(archs)}")
    if sorted(inputs.get("packages", [])) != sorted(roots):
        problems.append(f"inputs.packages {inputs.get('packages')}, expected {roots}")
    if inputs.get("sources") != [{"url": url, "suites": [suite], "components": ["main"]}]:
        problems.append(f"inputs.sources {inputs.get('sources')}")
    digest = lock.get("inputs_sha256", "")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        problems.append(f"inputs_sha256 {digest!r} is not a sha256 in hex")

    by_arch = lock.get("architectures", {})
    if sorted(by_arch) != sorted(archs):
        problems.append(f"packages for {sorted(by_arch)}, expected {sorted(archs)}")
    for arch in archs:
        index = {s["Package"]: s for s in read_stanzas(os.path.join(dist, "main", f"binary-{arch}", "Packages"))}
        packages = by_arch.get(arch, [])
        names = [p.get("name") for p in packages]
        if sorted(names) != expected_names:
            problems.append(f"{arch}: packages {names}, expected {expected_names}")
        for p in packages:
            where = f"{arch}: {p.get('name')}"
            if set(p) != PACKAGE_FIELDS:
                problems.append(f"{where}: fields {sorted(p)}, expected {sorted(PACKAGE_FIELDS)}")
                continue
            stanza = index.get(p["name"])
            if stanza is None:
                problems.append(f"{where}: not in the binary-{arch} index")
                continue
            for field, key in (("version", "Version"), ("architecture", "Architecture"),
                               ("filename", "Filename"), ("sha256", "SHA256")):
                if p[field] != stanza[key]:
                    problems.append(f"{where}: {field} {p[field]!r}, the index has {stanza[key]!r}")
            pool = os.path.join(repo, p["filename"])
            if os.path.isfile(pool):
                if p["size"] != os.path.getsize(pool):
                    problems.append(f"{where}: size {p['size']}, the pool file has {os.path.getsize(pool)}")
                if p["sha256"] != sha256_file(pool):
                    problems.append(f"{where}: sha256 differs from the pool file")
            else:
                problems.append(f"{where}: no pool file {p['filename']}")
            if p["source"] != url:
                problems.append(f"{where}: source {p['source']!r}, expected the spec's {url!r}")
            if p["suite"] != suite:
                problems.append(f"{where}: suite {p['suite']!r}, expected {suite!r}")
            chain = p["why"].split(" -> ")
            if chain[-1] != p["name"] or chain[0] not in roots:
                problems.append(f"{where}: why {p['why']!r} does not lead from a requested package to it")

    sources = lock.get("sources", [])
    if len(sources) != 1:
        problems.append(f"{len(sources)} sources, expected 1")
    else:
        source = sources[0]
        if source.get("url") != url:
            problems.append(f"sources[0].url {source.get('url')!r}, expected {url!r}")
        if source.get("snapshot") != snapshot:
            problems.append(f"sources[0].snapshot {source.get('snapshot')!r}, expected {snapshot!r}")
        expected_release = [{"suite": suite, "date": release_date,
                             "inrelease_sha256": sha256_file(os.path.join(dist, "InRelease"))}]
        if source.get("releases") != expected_release:
            problems.append(f"sources[0].releases {source.get('releases')}, expected {expected_release}")
        listed = release_sha256(os.path.join(dist, "Release"))
        indexes = source.get("indexes", [])
        if sorted(i.get("architecture") for i in indexes) != sorted(archs):
            problems.append(f"indexes for {[i.get('architecture') for i in indexes]}, expected {list(archs)}")
        for i in indexes:
            path = i.get("path", "")
            if not path.startswith(f"main/binary-{i.get('architecture')}/Packages"):
                problems.append(f"index {path!r} is not the {i.get('architecture')} Packages index")
            if listed.get(path) != i.get("sha256") or i.get("suite") != suite:
                problems.append(f"index {i} does not match the Release, which lists {listed.get(path)}")
    if problems:
        fail("\n".join(problems))


def lock_package(lock, arch, name):
    for p in lock["architectures"][arch]:
        if p["name"] == name:
            return p
    fail(f"the lock has no {name} for {arch}")


def lock_set_sha256(lock_path, arch, name):
    """Give NAME for ARCH another sha256, keeping the lock's format."""
    lock = json.load(open(lock_path))
    p = lock_package(lock, arch, name)
    p["sha256"] = sha256_bytes(b"not the package " + p["sha256"].encode())
    with open(lock_path, "w") as f:
        f.write(json.dumps(lock, indent=2, sort_keys=True) + "\n")


def lock_print(lock_path, field, arch=None, name=None):
    lock = json.load(open(lock_path))
    if field == "sha256":
        print(lock_package(lock, arch, name)["sha256"])
    elif field == "files":
        for p in sorted({os.path.basename(p["filename"]) for ps in lock["architectures"].values() for p in ps}):
            print(p)


def check_image_index(image, *archs):
    blobs = Blobs(image)
    index = blobs.image_index()
    check_platforms(index, archs)


def check_raw_index(path, *archs):
    check_platforms(json.load(open(path)), archs)


def check_platforms(index, archs):
    if index.get("mediaType") != OCI_INDEX:
        fail(f"mediaType {index.get('mediaType')!r}, expected {OCI_INDEX}")
    platforms = [m.get("platform") for m in index.get("manifests", [])]
    expected = []
    for arch in archs:
        expected_arch, variant = PLATFORMS[arch]
        platform = {"architecture": expected_arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        expected.append(platform)
    if platforms != expected:
        fail(f"platforms {platforms}, expected {expected}")


def check_layer(path, arch, mode, *paths):
    """ARCH's config says ARCH, and its layer has (or lacks) each path."""
    blobs = Blobs(path)
    _, manifest = blobs.manifest_for(arch)
    config = blobs.json(manifest["config"]["digest"])
    expected_arch, variant = PLATFORMS[arch]
    # The config may leave the variant out, but must not name another one.
    if config.get("architecture") != expected_arch or config.get("variant", variant) != variant:
        fail(f"config architecture {config.get('architecture')!r} variant {config.get('variant')!r}, "
             f"expected {expected_arch!r} {variant!r}")
    files = blobs.layer_files(manifest)
    wrong = [p for p in paths if (p in files) != (mode == "has")]
    if wrong:
        fail(f"the {arch} layer {'lacks' if mode == 'has' else 'has'} {wrong}")


def check_docker_manifest(image, arch):
    blobs = Blobs(image)
    _, manifest = blobs.manifest_for(arch)
    docker = json.loads(blobs.file("manifest.json"))
    expected_config = "blobs/sha256/" + manifest["config"]["digest"].split(":", 1)[1]
    expected_layers = ["blobs/sha256/" + l["digest"].split(":", 1)[1] for l in manifest["layers"]]
    if len(docker) != 1:
        fail(f"manifest.json lists {len(docker)} images, expected 1")
    if docker[0].get("Config") != expected_config or docker[0].get("Layers") != expected_layers:
        fail(f"manifest.json lists {docker[0].get('Config')} with {docker[0].get('Layers')}, "
             f"expected the {arch} config {expected_config} with {expected_layers}")


def check_created(image, created, *archs):
    """Every config, history entry and created annotation carries CREATED."""
    blobs = Blobs(image)
    problems, annotations = [], []
    index = blobs.image_index()
    annotations += [("image index", index.get("annotations", {}))]
    for arch in archs:
        entry, manifest = blobs.manifest_for(arch)
        annotations += [(f"{arch} index entry", entry.get("annotations", {})),
                        (f"{arch} manifest", manifest.get("annotations", {}))]
        config = blobs.json(manifest["config"]["digest"])
        if config.get("created") != created:
            problems.append(f"{arch} config created {config.get('created')!r}")
        history = config.get("history", [])
        if not history:
            problems.append(f"{arch} config has no history")
        for entry in history:
            if entry.get("created") != created:
                problems.append(f"{arch} history entry created {entry.get('created')!r}")
    found = [(where, a[CREATED]) for where, a in annotations if CREATED in a]
    if not found:
        problems.append(f"no {CREATED} annotation")
    problems += [f"{where} annotation {value!r}" for where, value in found if value != created]
    if problems:
        fail(f"expected {created}: " + "; ".join(problems))


def diff_images(a, b):
    """Print the members of two tarballs that differ, to explain a digest change."""
    first, second = Blobs(a).files, Blobs(b).files
    for name in sorted(set(first) | set(second)):
        if first.get(name) != second.get(name):
            print(f"differs: {name}")
            for side in (first, second):
                data = side.get(name, b"")
                if data[:1] == b"{" or data[:1] == b"[":
                    print("   ", data[:600].decode("utf-8", "replace"))


def check_cache(cache):
    """Every file under CACHE/sha256 is named after its own sha256."""
    directory = os.path.join(cache, "sha256")
    names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    if not names:
        fail(f"{directory} is empty or missing")
    wrong = [n for n in names if sha256_file(os.path.join(directory, n)) != n]
    if wrong:
        fail(f"cache entries whose content does not match their name: {wrong}")
    print(f"{len(names)} entries verified")


COMMANDS = {
    "lock-format": check_lock_format,
    "lock-content": check_lock_content,
    "lock-set-sha256": lock_set_sha256,
    "lock-print": lock_print,
    "image-index": check_image_index,
    "raw-index": check_raw_index,
    "layer": check_layer,
    "docker-manifest": check_docker_manifest,
    "created": check_created,
    "diff": diff_images,
    "cache": check_cache,
}

try:
    COMMANDS[sys.argv[1]](*sys.argv[2:])
except CheckFailed as error:
    print(error)
    sys.exit(1)
PYTHON
}

image_tool() {
        timeout "$TOOL_TIMEOUT" python3 "$WORK/image_tool.py" "$@"
}

# --- lock file ------------------------------------------------------------------

# lock_lacks_mirror LOCK: the lock names no URL of the http.server, only the spec's.
lock_lacks_mirror() {
        if grep -nF -e "$SERVER" -e "127.0.0.1:$PORT" "$1"; then
                printf '%s names the mirror (lines above)\n' "$1"
                return 1
        fi
}

# copy_spec FROM-DIR TO-DIR: the spec and lock of FROM-DIR, under the same file
# names, so that TO-DIR/main.lock.json is the lock of TO-DIR/main.yaml.
copy_spec() {
        mkdir -p "$2"
        cp "$1/main.yaml" "$1/main.lock.json" "$2/"
}

# pool_paths LOCK: the server paths of every package file the lock lists.
pool_paths() {
        image_tool lock-print "$1" files | while read -r file; do
                find "$WORK/www/archive/pool" -name "$file" -printf '/archive/pool/%P\n'
        done
}

# locked_counts LABEL LOCK ARCH...: run LABEL logged that it used the lock's packages for each ARCH.
locked_counts() {
        local label=$1 lock=$2 arch count
        shift 2
        for arch in "$@"; do
                count=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["architectures"][sys.argv[2]]))' \
                        "$lock" "$arch")
                stderr_has "$label" "using $count locked packages for $arch" || return 1
        done
}

# INDEX_REQUESTS matches any request for release or index metadata.
INDEX_REQUESTS='InRelease|/Release|Packages'

case_lock_file() {
        section "lock file"
        local dir=$SPECS/main
        local spec=$dir/main.yaml lock=$dir/main.lock.json
        local release_date
        release_date=$(date -u -d "$FX_RELEASE_DATE" +%Y-%m-%dT%H:%M:%SZ)
        write_spec "$spec" lock-main '[lk-app]'

        run_distill lock-write -- lock "$spec" --cache "$CACHE/lock" --mirror "$MIRROR"
        check "lock-write: exit status 0" exit_status lock-write 0
        check "lock-write: no sanitizer report" no_sanitizer_report lock-write
        check "lock-write: lock file written" test -s "$lock"
        [[ -s $lock ]] || die "no lock file; the remaining cases need it"
        check "lock-write: fetched through the mirror" \
                http_requests_have lock-write "/archive/dists/$FX_SUITE/InRelease"
        check "lock-write: sorted keys, 2-space indent, final newline" image_tool lock-format "$lock"
        check "lock-write: packages, sources and inputs" image_tool lock-content "$lock" \
                "$UNREACHABLE" "$FX_SNAPSHOT" "$WORK/www/archive" "$FX_SUITE" "$release_date" \
                lk-app lk-app,lk-lib,lk-common amd64 arm64
        check "lock-write: names the spec URL, not the mirror" lock_lacks_mirror "$lock"

        cp "$lock" "$WORK/main.lock.first"
        run_distill lock-again -- lock "$spec" --cache "$CACHE/lock" --mirror "$MIRROR"
        check "lock-again: exit status 0" exit_status lock-again 0
        check "lock-again: byte-identical lock" cmp "$WORK/main.lock.first" "$lock"

        run_distill lock-check -- lock --check "$spec"
        check "lock-check: exit status 0" exit_status lock-check 0
        check "lock-check: no request" no_http_requests lock-check

        case_lock_stale "$dir"
        case_lock_inputs "$dir"
        case_lock_builds "$dir"
        case_lock_tampered "$dir"
        case_lock_offline "$dir"
        case_lock_why "$dir"
}

# The spec gains a package (and, in a second copy, swaps one) after it was locked.
case_lock_stale() {
        local from=$1
        local dir=$SPECS/stale
        copy_spec "$from" "$dir"
        sed -i 's/^packages: .*/packages: [lk-app, lk-extra]/' "$dir/main.yaml"
        cp "$dir/main.lock.json" "$WORK/stale.lock.before"

        run_distill stale-check -- lock --check "$dir/main.yaml"
        check "stale-check: exit status 9" exit_status stale-check 9
        check "stale-check: names the added package" stderr_has stale-check lk-extra
        check "stale-check: no request" no_http_requests stale-check

        run_build stale-locked "$dir/main.yaml" "$CACHE/stale" -- --locked
        expect_failure stale-locked 9 lk-extra
        check "stale-locked: no request" no_http_requests stale-locked

        run_build stale-build "$dir/main.yaml" "$CACHE/stale"
        expect_build stale-build
        check "stale-build: warns that the lock is stale" stderr_has stale-build "warning:" "stale"
        check "stale-build: lock unchanged" cmp "$WORK/stale.lock.before" "$dir/main.lock.json"
        check "stale-build: resolved afresh" \
                http_requests_have stale-build "/archive/dists/$FX_SUITE/InRelease"
        check "stale-build: image has the added package" \
                image_tool layer "$OUT/stale-build/image.tar" amd64 has usr/share/lk-extra/marker

        local swapped=$SPECS/swapped
        copy_spec "$from" "$swapped"
        sed -i 's/^packages: .*/packages: [lk-tool]/' "$swapped/main.yaml"
        run_distill swapped-check -- lock --check "$swapped/main.yaml"
        check "swapped-check: exit status 9" exit_status swapped-check 9
        check "swapped-check: names both packages" stderr_has swapped-check lk-tool lk-app
}

# drifted_spec FROM-DIR NAME SED-SCRIPT: $SPECS/NAME/main.yaml, FROM-DIR's spec
# edited by SED-SCRIPT, beside an unchanged copy of FROM-DIR's lock.
drifted_spec() {
        copy_spec "$1" "$SPECS/$2"
        sed -i "$3" "$SPECS/$2/main.yaml"
        cmp -s "$1/main.yaml" "$SPECS/$2/main.yaml" && die "$2: the sed script did not change the spec"
        return 0
}

# lock_check_status LABEL DIR STATUS TEXT...: `lock --check DIR/main.yaml` exits
# with STATUS and names each TEXT.
lock_check_status() {
        local label=$1 dir=$2 status=$3
        shift 3
        run_distill "$label" -- lock --check "$dir/main.yaml"
        check "$label: exit status $status" exit_status "$label" "$status"
        (($# > 0)) && check "$label: names the change" stderr_has "$label" "$@"
        return 0
}

# Every resolution input (sources, suites, components, architectures, packages with
# their architectures, exclude) makes the lock stale, and nothing else does.
case_lock_inputs() {
        local from=$1
        drifted_spec "$from" drift-arch 's/^architectures: .*/architectures: [amd64]/'
        lock_check_status drift-arch "$SPECS/drift-arch" 9 arm64
        # shellcheck disable=SC2016 # "$a" is sed's command to append after the last line.
        drifted_spec "$from" drift-exclude '$a exclude: [lk-common]'
        lock_check_status drift-exclude "$SPECS/drift-exclude" 9 lk-common
        drifted_spec "$from" drift-suite 's/suites: .*/suites: [other]/'
        lock_check_status drift-suite "$SPECS/drift-suite" 9 other
        drifted_spec "$from" drift-component 's/components: .*/components: [main, contrib]/'
        lock_check_status drift-component "$SPECS/drift-component" 9 contrib
        # The spec moves to the next day's snapshot: the lock names the old source URL.
        local next=${UNREACHABLE%/*}/20260102T000000Z
        drifted_spec "$from" drift-url "s|url: .*|url: $next|"
        lock_check_status drift-url "$SPECS/drift-url" 9 "$UNREACHABLE"
        cp "$SPECS/drift-url/main.lock.json" "$WORK/drift-url.lock.before"
        run_build drift-url-build "$SPECS/drift-url/main.yaml" "$CACHE/drift-url" -- \
                --mirror "$next=$SERVER/archive"
        expect_build drift-url-build
        check "drift-url-build: warns that the lock is stale" stderr_has drift-url-build "warning:" "stale"
        check "drift-url-build: lock unchanged" cmp "$WORK/drift-url.lock.before" "$SPECS/drift-url/main.lock.json"
        run_distill drift-url-lock -- lock "$SPECS/drift-url/main.yaml" --cache "$CACHE/drift-url" \
                --mirror "$next=$SERVER/archive"
        check "drift-url-lock: exit status 0" exit_status drift-url-lock 0
        check "drift-url-lock: lock names the new URL" grep -qF "\"source\": \"$next\"" "$SPECS/drift-url/main.lock.json"
        check "drift-url-lock: lock drops the old URL" bash -c "! grep -F '$UNREACHABLE' '$SPECS/drift-url/main.lock.json'"
        # shellcheck disable=SC2016 # "$a" is sed's command to append after the last line.
        drifted_spec "$from" drift-none 's/^name: .*/name: lock-renamed/; $a image: {labels: {org.example.unrelated: "yes"}}'
        lock_check_status drift-none "$SPECS/drift-none" 0

        # Two packages, so that one can be limited to amd64 with the names unchanged.
        local two=$SPECS/two
        write_spec "$two/main.yaml" lock-two '[lk-app, lk-tool]'
        run_distill two-lock -- lock "$two/main.yaml" --cache "$CACHE/two" --mirror "$MIRROR"
        check "two-lock: exit status 0" exit_status two-lock 0
        drifted_spec "$two" drift-order 's/^packages: .*/packages: [lk-tool, lk-app]/'
        lock_check_status drift-order "$SPECS/drift-order" 0
        drifted_spec "$two" drift-scope 's/^packages: .*/packages: [lk-app, {name: lk-tool, architectures: [amd64]}]/'
        lock_check_status drift-scope "$SPECS/drift-scope" 9 lk-tool
        run_build drift-scope-build "$SPECS/drift-scope/main.yaml" "$CACHE/two"
        expect_build drift-scope-build
        check "drift-scope-build: arm64 layer lacks lk-tool" image_tool layer \
                "$OUT/drift-scope-build/image.tar" arm64 lacks usr/share/lk-tool/marker
        check "drift-scope-build: amd64 layer has lk-tool" image_tool layer \
                "$OUT/drift-scope-build/image.tar" amd64 has usr/share/lk-tool/marker
}

# Builds from a matching lock: no index is read, and pool files come through the mirror.
case_lock_builds() {
        local dir=$1
        local lock=$dir/main.lock.json
        local paths
        mapfile -t paths < <(pool_paths "$lock")
        ((${#paths[@]} == 5)) || die "expected 5 pool files in $lock, found: ${paths[*]}"

        run_build locked "$dir/main.yaml" "$CACHE/locked" -- --locked
        expect_build locked
        check "locked: used the lock for both architectures" locked_counts locked "$lock" amd64 arm64
        check "locked: fetched no index" http_requests_lack locked "$INDEX_REQUESTS"
        check "locked: fetched pool files through the mirror" http_requests_have locked "${paths[@]}"
        check "locked: lock unchanged" cmp "$WORK/main.lock.first" "$lock"

        run_build lock-default "$dir/main.yaml" "$CACHE/lock-default"
        expect_build lock-default
        check "lock-default: used the matching lock" locked_counts lock-default "$lock" amd64 arm64
        check "lock-default: fetched no index" http_requests_lack lock-default "$INDEX_REQUESTS"
        check "lock-default: same image as --locked" same_image lock-default locked

        run_build no-lock "$dir/main.yaml" "$CACHE/no-lock" -- --no-lock
        expect_build no-lock
        check "no-lock: resolved afresh" http_requests_have no-lock "/archive/dists/$FX_SUITE/InRelease"
        check "no-lock: did not use the lock" bash -c "! grep -F 'locked packages' '$LOGS/no-lock.err'"
        check "no-lock: same image as --locked" same_image no-lock locked
}

# A lock entry whose sha256 no longer matches the package.
case_lock_tampered() {
        local dir=$SPECS/tampered
        copy_spec "$1" "$dir"
        image_tool lock-set-sha256 "$dir/main.lock.json" amd64 lk-lib
        local edited
        edited=$(image_tool lock-print "$dir/main.lock.json" sha256 amd64 lk-lib)
        [[ $edited != "$(image_tool lock-print "$1/main.lock.json" sha256 amd64 lk-lib)" ]] ||
                die "lock-set-sha256 did not change the lock"

        run_distill tampered-check -- lock --check "$dir/main.yaml"
        check "tampered-check: inputs still match" exit_status tampered-check 0

        run_build tampered "$dir/main.yaml" "$CACHE/tampered" -- --locked
        expect_failure tampered 5 lk-lib
        check "tampered: nothing cached under the edited sha256" \
                test ! -e "$CACHE/tampered/sha256/$edited"
}

case_lock_offline() {
        local dir=$1
        local files
        mapfile -t files < <(image_tool lock-print "$dir/main.lock.json" files)

        # The cache of the locked build holds every package file.
        run_build offline-warm "$dir/main.yaml" "$CACHE/locked" -- --offline
        expect_build offline-warm
        check "offline-warm: no request" no_http_requests offline-warm
        check "offline-warm: same image as the online build" same_image offline-warm locked

        run_build offline-cold "$dir/main.yaml" "$CACHE/offline-cold" -- --offline
        expect_failure offline-cold 4 "${files[@]}"
        check "offline-cold: names every package" stderr_has offline-cold lk-app lk-lib lk-common
        check "offline-cold: no request" no_http_requests offline-cold
}

case_lock_why() {
        local spec=$1/main.yaml
        run_distill why -- why "$spec" lk-common --cache "$CACHE/why" --mirror "$MIRROR"
        check "why: exit status 0" exit_status why 0
        check "why: chain on both architectures" stdout_is why \
                "$(printf 'amd64: lk-app -> lk-lib -> lk-common\narm64: lk-app -> lk-lib -> lk-common')"
        check "why: answered from the lock" no_http_requests why
        check "why: no sanitizer report" no_sanitizer_report why

        run_distill why-absent -- why "$spec" lk-amd64only --cache "$CACHE/why" --mirror "$MIRROR"
        check "why-absent: non-zero exit status" bash -c "[[ \$(cat '$LOGS/why-absent.rc') != 0 ]]"
        check "why-absent: names the package" stderr_has why-absent lk-amd64only
}

# --- reproducible bytes ---------------------------------------------------------

# setup_repro_user: as root, the unprivileged user the reproducibility case builds
# as, created when missing. Prints why the variant cannot run otherwise.
setup_repro_user() {
        if ((EUID != 0)); then
                printf 'not running as root, so there is no second user to build as\n'
                return 1
        fi
        if ! create_system_user "$REPRO_USER"; then
                printf 'useradd %s failed\n' "$REPRO_USER"
                return 1
        fi
        if ! runuser -u "$REPRO_USER" -- test -x "$DISTILL"; then
                printf '%s cannot execute %s\n' "$REPRO_USER" "$DISTILL"
                return 1
        fi
}

# flip_middle_byte FILE: change the byte in the middle of FILE, keeping its size.
flip_middle_byte() {
        python3 - "$1" <<'PY'
import sys

with open(sys.argv[1], "r+b") as f:
    f.seek(0, 2)
    middle = f.tell() // 2
    f.seek(middle)
    byte = f.read(1)[0]
    f.seek(middle)
    f.write(bytes([byte ^ 0x55]))
PY
}

# repro_same LABEL: run LABEL succeeded and wrote the same bytes as the baseline.
# only_files DIR NAME...: DIR contains exactly the files NAME...
only_files() {
        local dir=$1 got want
        shift
        got=$(cd "$dir" && ls -A | sort)
        want=$(printf '%s\n' "$@" | sort)
        if [[ $got != "$want" ]]; then
                printf '%s contains:\n%s\nexpected:\n%s\n' "$dir" "$got" "$want"
                return 1
        fi
}

# not_one_file A B: A and B are not one file (two names of one inode).
not_one_file() {
        if [[ $1 -ef $2 ]]; then
                printf '%s and %s are one file\n' "$1" "$2"
                return 1
        fi
}

# not_same_file A B: A and B differ in their bytes.
not_same_file() {
        if cmp -s "$1" "$2"; then
                printf '%s and %s have the same bytes\n' "$1" "$2"
                return 1
        fi
}

# layers_in_cache ARCHIVE CACHE FORM: each layer blob of the image archive is in
# CACHE in FORM: "linked" (images/DIGEST.tar is ARCHIVE itself, one inode, and no
# copy under sha256/) or "copied" (sha256/DIGEST, and no images/DIGEST.tar).
layers_in_cache() {
        python3 - "$@" <<'PY'
import json
import os
import sys
import tarfile

archive, cache, form = sys.argv[1:4]
with tarfile.open(archive) as t:
    manifests = json.load(t.extractfile("manifest.json"))
layers = sorted({os.path.basename(l) for m in manifests for l in m["Layers"]})
bad = []
for digest in layers:
    image = os.path.join(cache, "images", digest + ".tar")
    plain = os.path.join(cache, "sha256", digest)
    if form == "linked":
        if not os.path.exists(image) or not os.path.samefile(image, archive):
            bad.append("%s is not a link to %s" % (image, archive))
        if os.path.exists(plain):
            bad.append("%s exists: the blob was copied" % plain)
    else:
        if not os.path.isfile(plain):
            bad.append("%s is missing" % plain)
        if os.path.exists(image):
            bad.append("%s exists" % image)
if not layers:
    bad.append("%s lists no layers" % archive)
for line in bad:
    print(line)
sys.exit(1 if bad else 0)
PY
}

repro_same() {
        local label=$1
        check "$label: exit status 0" exit_status "$label" 0
        check "$label: no sanitizer report" no_sanitizer_report "$label"
        check "$label: same image as repro-cold" same_image "$label" repro-cold
}

case_reproducible() {
        section "reproducible image bytes"
        local dir=$SPECS/repro
        local spec=$dir/main.yaml
        write_spec "$spec" lock-repro '[lk-app, lk-tool, lk-extra]'
        run_distill repro-lock -- lock "$spec" --cache "$CACHE/repro-lock" --mirror "$MIRROR"
        check "repro-lock: exit status 0" exit_status repro-lock 0

        # The baseline: TZ=UTC, LC_ALL=C, umask 022, root, the default -j, a cold cache.
        local base=(TZ=UTC LC_ALL=C)
        run_build repro-cold "$spec" "$CACHE/repro" "${base[@]}" -- --locked
        expect_build repro-cold
        check "repro-cold: created is the snapshot time" \
                image_tool created "$OUT/repro-cold/image.tar" "$SNAPSHOT_CREATED" amd64 arm64

        check "repro-cold: the cache links the output, with no copy of a layer" \
                layers_in_cache "$OUT/repro-cold/image.tar" "$CACHE/repro" linked

        # An output on another file system than the cache: the layer blobs are
        # copied into the cache, and the next build reuses them.
        local shm
        shm=$(mktemp -d /dev/shm/distill-lock.XXXXXX)
        run_distill repro-shm TMPDIR="$WORK/tmp" "${base[@]}" -- build "$spec" -o "$shm/image.tar" \
                --cache "$CACHE/repro-shm" --mirror "$MIRROR" --locked
        mkdir -p "$OUT/repro-shm"
        cp "$shm/image.tar" "$OUT/repro-shm/image.tar" 2>/dev/null
        rm -rf "$shm"
        repro_same repro-shm
        check "repro-shm: the layers copied into the cache" \
                layers_in_cache "$OUT/repro-shm/image.tar" "$CACHE/repro-shm" copied
        run_build repro-shm-warm "$spec" "$CACHE/repro-shm" "${base[@]}" -- --locked
        repro_same repro-shm-warm
        check "repro-shm-warm: finished layers from the cache" \
                stderr_has repro-shm-warm "reusing the finished"

        run_build repro-warm "$spec" "$CACHE/repro" "${base[@]}" -- --locked
        repro_same repro-warm
        check "repro-warm: finished layers from the cache" stderr_has repro-warm "reusing the finished"

        # repro-cold's output still exists, so repro-warm's is a file of its own
        # (two outputs that are one file would change together), and the cache
        # links the newer one.
        check "repro-warm: not the file of repro-cold" not_one_file \
                "$OUT/repro-warm/image.tar" "$OUT/repro-cold/image.tar"
        check "repro-warm: the cache links the output" \
                layers_in_cache "$OUT/repro-warm/image.tar" "$CACHE/repro" linked

        run_build repro-again "$spec" "$CACHE/repro" "${base[@]}" -- --locked
        repro_same repro-again

        # With no other output left that is the cached archive, a warm build's
        # output is a link to it instead of a copy.
        rm -f "$OUT/repro-warm/image.tar" "$OUT/repro-again/image.tar"
        run_build repro-relinked "$spec" "$CACHE/repro" "${base[@]}" -- --locked -v
        repro_same repro-relinked
        check "repro-relinked: the output linked, not copied" \
                stderr_has repro-relinked "in the cache; linked it"
        check "repro-relinked: the cache links the output" \
                layers_in_cache "$OUT/repro-relinked/image.tar" "$CACHE/repro" linked
        # Again to the same path, which is that file already: nothing is left
        # next to it.
        run_build repro-relinked "$spec" "$CACHE/repro" "${base[@]}" -- --locked -v
        repro_same repro-relinked
        check "repro-relinked again: linked again" stderr_has repro-relinked "in the cache; linked it"
        check "repro-relinked again: no temporary file left" only_files "$OUT/repro-relinked" image.tar

        # Two warm builds at once, while no output is the cached archive: at most
        # one output may become a link to it, never both. A few rounds, since the
        # builds must meet in the moment between counting links and linking.
        local round race_a
        for round in 1 2 3 4; do
                rm -f "$OUT"/repro-race-*/image.tar "$OUT/repro-relinked/image.tar"
                run_build "repro-race-a$round" "$spec" "$CACHE/repro" "${base[@]}" -- --locked &
                race_a=$!
                run_build "repro-race-b$round" "$spec" "$CACHE/repro" "${base[@]}" -- --locked
                wait "$race_a"
                repro_same "repro-race-a$round"
                repro_same "repro-race-b$round"
                check "repro-race round $round: two files" not_one_file \
                        "$OUT/repro-race-a$round/image.tar" "$OUT/repro-race-b$round/image.tar"
        done

        # Another tag: the layers come from the cache, but the archive differs, so
        # it is written anew. The build after it writes the first bytes again.
        run_build repro-tag "$spec" "$CACHE/repro" "${base[@]}" -- --locked --tag other:1
        check "repro-tag: exit status 0" exit_status repro-tag 0
        check "repro-tag: finished layers from the cache" stderr_has repro-tag "reusing the finished"
        check "repro-tag: another archive" not_same_file "$OUT/repro-tag/image.tar" "$OUT/repro-cold/image.tar"
        run_build repro-after-tag "$spec" "$CACHE/repro" "${base[@]}" -- --locked
        repro_same repro-after-tag

        # A cache whose images/ was removed: the layers are made again, and that
        # is no damage to report.
        rm -rf "$CACHE/repro/images"
        run_build repro-images-gone "$spec" "$CACHE/repro" "${base[@]}" -- --locked
        repro_same repro-images-gone
        check "repro-images-gone: the layers made again" \
                stderr_has repro-images-gone "layer is no longer in the cache; building it again"
        check "repro-images-gone: no damage reported" stderr_lacks repro-images-gone damaged corrupt
        check "repro-images-gone: the cache links the new output" \
                layers_in_cache "$OUT/repro-images-gone/image.tar" "$CACHE/repro" linked

        # A cache that cannot take the layer (images is a file): the image is
        # written all the same, with a warning.
        mkdir -p "$CACHE/repro-nostore"
        touch "$CACHE/repro-nostore/images"
        run_build repro-nostore "$spec" "$CACHE/repro-nostore" "${base[@]}" -- --locked
        repro_same repro-nostore
        check "repro-nostore: the warning names the layer and the cache" \
                stderr_has repro-nostore "cannot keep the amd64 layer in the cache" \
                "$CACHE/repro-nostore/images is not a directory; remove it"

        # Without the finished layers, a build takes every package's unpacked record
        # and the gzip members of the earlier layers from the cache.
        rm -rf "$CACHE/repro/layers"
        run_build repro-records "$spec" "$CACHE/repro" "${base[@]}" -- --locked -v
        repro_same repro-records
        check "repro-records: every unpacked record reused" \
                stderr_matches repro-records 'unpack: ([0-9]+) of \1 packages reused from the cache'
        check "repro-records: gzip members copied" \
                stderr_has repro-records "gzip members copied from earlier layers"

        # A cut record and a record with other bytes are noticed and made again.
        local cut changed
        cut=$(find "$CACHE/repro/unpacked" -type f | sort | head -n 1)
        changed=$(find "$CACHE/repro/unpacked" -type f | sort | tail -n 1)
        [[ -n $cut && $cut != "$changed" ]] || die "fewer than two unpacked records in $CACHE/repro/unpacked"
        truncate -s 40 "$cut"
        printf 'X' | dd of="$changed" bs=1 seek=0 conv=notrunc status=none
        rm -rf "$CACHE/repro/layers"
        run_build repro-damaged "$spec" "$CACHE/repro" "${base[@]}" -- --locked
        repro_same repro-damaged
        check "repro-damaged: both damaged records reported" \
                stderr_count repro-damaged "unpacked record in the cache" 2
        run_build repro-repaired "$spec" "$CACHE/repro" "${base[@]}" -- --locked
        repro_same repro-repaired
        check "repro-repaired: the records are whole again" \
                stderr_lacks repro-repaired "unpacked record in the cache"

        # A layer blob with one changed byte inside its compressed data: no member
        # is copied from it, and the image stays the same.
        local list blob
        list=$(find "$CACHE/repro/members" -name '*.idx' | sort | head -n 1)
        [[ -n $list ]] || die "no member list in $CACHE/repro/members"
        # The blob is the member of an image archive, a link to the output of the
        # last build that wrote it.
        local digest
        digest=$(basename "$list" .idx)
        blob=$CACHE/repro/images/$digest.tar
        [[ -f $blob ]] || die "the image archive $blob of the member list $list is missing"
        python3 - "$blob" "blobs/sha256/$digest" <<'PY' || die "cannot change $blob"
import sys
import tarfile

path, name = sys.argv[1:3]
with tarfile.open(path) as t:
    member = t.getmember(name)
middle = member.offset_data + member.size // 2
with open(path, "r+b") as f:
    f.seek(middle)
    byte = f.read(1)[0]
    f.seek(middle)
    f.write(bytes([byte ^ 0x55]))
PY
        rm -rf "$CACHE/repro/layers"
        run_build repro-blob "$spec" "$CACHE/repro" "${base[@]}" -- --locked
        repro_same repro-blob
        check "repro-blob: the damaged blob reported" stderr_has repro-blob "$blob" corrupt

        # A finished-layer record with another diff_id is not trusted.
        local record
        record=$(find "$CACHE/repro/layers" -name '*.json' | sort | head -n 1)
        [[ -n $record ]] || die "no finished layer in $CACHE/repro/layers"
        python3 - "$record" <<'PY' || die "cannot change $record"
import json
import sys

path = sys.argv[1]
layer = json.load(open(path, encoding="utf-8"))
digit = layer["diff_id"][0]
layer["diff_id"] = ("1" if digit != "1" else "2") + layer["diff_id"][1:]
json.dump(layer, open(path, "w", encoding="utf-8"))
PY
        run_build repro-record "$spec" "$CACHE/repro" "${base[@]}" -- --locked
        repro_same repro-record
        check "repro-record: the damaged record reported" \
                stderr_has repro-record "finished layer record" "$record"

        mkdir -p "$WORK/other/cache" "$WORK/other/tmp"
        run_build repro-dirs "$spec" "$WORK/other/cache" "${base[@]}" TMPDIR="$WORK/other/tmp" -- --locked
        repro_same repro-dirs

        RUN_UMASK=077
        run_build repro-umask "$spec" "$CACHE/repro-umask" "${base[@]}" -- --locked
        RUN_UMASK=022
        repro_same repro-umask

        run_build repro-locale "$spec" "$CACHE/repro" TZ=Pacific/Kiritimati LC_ALL=C.UTF-8 -- --locked
        repro_same repro-locale

        run_build repro-unset "$spec" "$CACHE/repro" -u TZ -u LC_ALL -u LANG -u LANGUAGE \
                -u LC_CTYPE -u LC_COLLATE -u LC_TIME -u LC_NUMERIC -u LC_MESSAGES -- --locked
        repro_same repro-unset

        local reason
        if reason=$(setup_repro_user); then
                local home=$WORK/repro-user
                mkdir -p "$home/cache" "$home/tmp" "$OUT/repro-user"
                chown "$REPRO_USER" "$home/cache" "$home/tmp" "$OUT/repro-user"
                RUN_AS=(runuser -u "$REPRO_USER" --)
                run_build repro-user "$spec" "$home/cache" "${base[@]}" TMPDIR="$home/tmp" -- --locked
                RUN_AS=()
                repro_same repro-user
        else
                skip "repro-user: build as $REPRO_USER" "$reason"
        fi

        run_build repro-j1 "$spec" "$CACHE/repro-j1" "${base[@]}" -- --locked -j 1
        repro_same repro-j1
        run_build repro-j8 "$spec" "$CACHE/repro-j8" "${base[@]}" -- --locked -j 8
        repro_same repro-j8

        run_build repro-epoch "$spec" "$CACHE/repro" "${base[@]}" SOURCE_DATE_EPOCH="$EXPLICIT_EPOCH" -- --locked
        expect_build repro-epoch
        check "repro-epoch: differs from the snapshot-time image" different_image repro-epoch repro-cold
        check "repro-epoch: config, history and annotation carry the epoch" \
                image_tool created "$OUT/repro-epoch/image.tar" "$EXPLICIT_CREATED" amd64 arm64

        mkdir -p "$WORK/epoch/tmp"
        RUN_UMASK=077
        run_build repro-epoch-again "$spec" "$WORK/epoch/cache" TZ=Pacific/Kiritimati LC_ALL=C.UTF-8 \
                TMPDIR="$WORK/epoch/tmp" SOURCE_DATE_EPOCH="$EXPLICIT_EPOCH" -- --locked -j 1
        RUN_UMASK=022
        expect_build repro-epoch-again
        check "repro-epoch-again: same image as repro-epoch" same_image repro-epoch-again repro-epoch

        local bad
        for bad in abc 12abc; do
                run_build "repro-epoch-$bad" "$spec" "$CACHE/repro" SOURCE_DATE_EPOCH="$bad" -- --locked
                expect_failure "repro-epoch-$bad" 2 SOURCE_DATE_EPOCH
        done
}

# --- several architectures ------------------------------------------------------

# skopeo_raw_index IMAGE ARCH...: skopeo reads an image index with one platform per ARCH.
skopeo_raw_index() {
        local image=$1
        shift
        skopeo_cmd inspect --raw "oci-archive:$image" >"$WORK/raw-index.json" || return 1
        image_tool raw-index "$WORK/raw-index.json" "$@"
}

# skopeo_pick IMAGE ARCH: skopeo copies ARCH's image into an OCI directory whose
# config names ARCH and whose layer has ARCH's files and not the other architecture's.
skopeo_pick() {
        local image=$1 arch=$2 other
        [[ $arch == amd64 ]] && other=arm64 || other=amd64
        local dir=$WORK/oci-$arch
        rm -rf "$dir"
        skopeo_cmd copy --quiet --override-arch "$arch" "oci-archive:$image" "oci:$dir:x" || return 1
        image_tool layer "$dir" "$arch" has "usr/share/lk-app/built-for-$arch" \
                "usr/share/lk-lib/built-for-$arch" usr/share/lk-common/marker || return 1
        image_tool layer "$dir" "$arch" lacks "usr/share/lk-app/built-for-$other" \
                "usr/share/lk-lib/built-for-$other"
}

# podman_load IMAGE: podman loads the tarball as the image whose ID is the config
# digest that manifest.json names (the amd64 one by default).
podman_load() {
        local image=$1
        podman_cmd load -i "$image" || return 1
        local expected id
        expected=$(tar -xOf "$image" manifest.json |
                python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Config"].rsplit("/", 1)[1])') || return 1
        id=$(podman_cmd image inspect --format '{{.Id}}' lock-multi:latest) || return 1
        if [[ $id != "$expected" ]]; then
                printf 'podman image ID %s, expected the manifest.json config %s\n' "$id" "$expected"
                return 1
        fi
        podman_cmd rmi lock-multi:latest >/dev/null
}

# unique_members IMAGE: no member name appears twice in the image tarball, and
# every blob matches its name.
unique_members() {
        python3 - "$1" <<'PY'
import collections
import hashlib
import sys
import tarfile

with tarfile.open(sys.argv[1]) as tar:
    members = tar.getmembers()
    twice = [n for n, c in collections.Counter(m.name for m in members).items() if c > 1]
    if twice:
        sys.exit("members named twice: %s" % ", ".join(twice))
    for m in members:
        if m.isfile() and m.name.startswith("blobs/sha256/"):
            digest = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
            if m.name != "blobs/sha256/" + digest:
                sys.exit("%s has sha256 %s" % (m.name, digest))
PY
}

case_multiarch() {
        section "several architectures"
        local spec=$SPECS/multi/multi.yaml
        write_spec "$spec" lock-multi '[lk-app]'

        # Only an Architecture: all package: both platforms have the same layer,
        # which the archive contains once, whether it was just written or reused.
        local same=$SPECS/multi-same/multi-same.yaml
        write_spec "$same" lock-multi-same '[lk-common]'
        run_build multi-same "$same" "$CACHE/multi-same"
        expect_build multi-same
        check "multi-same: each member once, blobs match their names" \
                unique_members "$OUT/multi-same/image.tar"
        check "multi-same: skopeo reads the image index" \
                skopeo_raw_index "$OUT/multi-same/image.tar" amd64 arm64
        run_build multi-same-warm "$same" "$CACHE/multi-same"
        expect_build multi-same-warm
        check "multi-same-warm: same image as the first build" same_image multi-same-warm multi-same

        run_build multi "$spec" "$CACHE/multi"
        expect_build multi
        local image=$OUT/multi/image.tar
        check "multi: index.json points at an image index of both platforms" \
                image_tool image-index "$image" amd64 arm64
        check "multi: skopeo reads the image index" skopeo_raw_index "$image" amd64 arm64
        check "multi: skopeo picks arm64" skopeo_pick "$image" arm64
        check "multi: skopeo picks amd64" skopeo_pick "$image" amd64
        check "multi: manifest.json lists amd64" image_tool docker-manifest "$image" amd64

        run_build multi-platform "$spec" "$CACHE/multi" -- --platform arm64
        expect_build multi-platform
        check "multi-platform: manifest.json lists arm64" \
                image_tool docker-manifest "$OUT/multi-platform/image.tar" arm64
        check "multi-platform: same image index" \
                image_tool image-index "$OUT/multi-platform/image.tar" amd64 arm64

        # The message should list every architecture the spec builds, so the user can pick one.
        run_build platform-unknown "$spec" "$CACHE/multi" -- --platform riscv64
        expect_failure platform-unknown 2 riscv64 amd64 arm64

        local reason
        if reason=$(podman_ready); then
                check "multi: podman loads the image" podman_load "$image"
        else
                fail_check "multi: podman loads the image" "$reason"
        fi

        local only=$SPECS/amd64-only/amd64-only.yaml
        write_spec "$only" lock-amd64-only '[lk-app, lk-amd64only]'
        run_build amd64-only "$only" "$CACHE/multi"
        expect_failure amd64-only 6 lk-amd64only "available for amd64, not arm64"
        run_distill amd64-only-lock -- lock "$only" --cache "$CACHE/multi" --mirror "$MIRROR"
        check "amd64-only-lock: exit status 6" exit_status amd64-only-lock 6
        check "amd64-only-lock: no lock written" test ! -e "${only%.yaml}.lock.json"

        local scoped=$SPECS/amd64-scoped/amd64-scoped.yaml
        write_spec "$scoped" lock-amd64-scoped '[lk-app, {name: lk-amd64only, architectures: [amd64]}]'
        run_build amd64-scoped "$scoped" "$CACHE/multi"
        expect_build amd64-scoped
        check "amd64-scoped: amd64 layer has the package" \
                image_tool layer "$OUT/amd64-scoped/image.tar" amd64 has usr/share/lk-amd64only/marker
        check "amd64-scoped: arm64 layer lacks it" \
                image_tool layer "$OUT/amd64-scoped/image.tar" arm64 lacks usr/share/lk-amd64only/marker
        check "amd64-scoped: arm64 layer has lk-app" \
                image_tool layer "$OUT/amd64-scoped/image.tar" arm64 has usr/share/lk-app/built-for-arm64
}

# --- shared cache ---------------------------------------------------------------

# no_cache_leftovers CACHE: no file, such as a partial download, is left in CACHE
# outside CACHE/sha256.
no_cache_leftovers() {
        local left
        left=$(find "$1" -type f \( -path "$1/tmp/*" -o -name '*.tmp-*' \) -printf '%P\n')
        if [[ -n $left ]]; then
                printf 'temporary files left in the cache:\n%s\n' "$left"
                return 1
        fi
}

# index_sha256 ARCH PACKAGE: the SHA256 of PACKAGE in the fixture's ARCH index.
index_sha256() {
        awk -v name="$2" '/^Package: / { found = ($2 == name) } found && /^SHA256: / { print $2; exit }' \
                "$WORK/www/archive/dists/$FX_SUITE/main/binary-$1/Packages"
}

# entry_matches_name FILE: FILE's sha256 is its name.
entry_matches_name() {
        local actual
        actual=$(sha256sum "$1" | cut -d' ' -f1)
        if [[ $actual != "$(basename "$1")" ]]; then
                printf '%s has sha256 %s\n' "$1" "$actual"
                return 1
        fi
}

# shared_image_ok LABEL ARCH PATH...: the ARCH layer of run LABEL's image has each PATH.
shared_image_ok() {
        local label=$1 arch=$2
        shift 2
        image_tool layer "$OUT/$label/image.tar" "$arch" has "$@"
}

case_shared_cache() {
        section "cache shared by concurrent builds"
        local cache=$CACHE/shared
        local spec_a=$SPECS/share-a/share-a.yaml spec_b=$SPECS/share-b/share-b.yaml
        write_spec "$spec_a" lock-share-a '[lk-app]'
        write_spec "$spec_b" lock-share-b '[lk-tool, lk-extra]'

        run_build share-a "$spec_a" "$cache" >"$LOGS/share-a.progress" &
        local pid_a=$!
        run_build share-b "$spec_b" "$cache" >"$LOGS/share-b.progress" &
        local pid_b=$!
        wait "$pid_a" || true
        wait "$pid_b" || true
        cat "$LOGS/share-a.progress" "$LOGS/share-b.progress"

        local arch
        expect_build share-a
        expect_build share-b
        for arch in amd64 arm64; do
                check "share-a: $arch layer complete" shared_image_ok share-a "$arch" \
                        "usr/share/lk-app/built-for-$arch" "usr/share/lk-lib/built-for-$arch" \
                        usr/share/lk-common/marker
                check "share-b: $arch layer complete" shared_image_ok share-b "$arch" \
                        "usr/share/lk-tool/built-for-$arch" usr/share/lk-extra/marker \
                        usr/share/lk-common/marker
        done
        check "shared: every entry matches its name" image_tool cache "$cache"
        check "shared: no temporary file left" no_cache_leftovers "$cache"

        run_build share-a-alone "$spec_a" "$CACHE/share-a-alone"
        expect_build share-a-alone
        check "share-a: same image as a build alone" same_image share-a share-a-alone

        # A package file in the cache replaced by other bytes.
        local digest
        digest=$(index_sha256 amd64 lk-lib)
        [[ -f $cache/sha256/$digest ]] || die "the shared cache lacks lk-lib (sha256/$digest)"
        printf 'not lk-lib: overwritten by lock.sh\n' >"$cache/sha256/$digest"
        # Without the finished layers the build must read every package again.
        rm -rf "$cache/layers"
        run_build corrupt-deb "$spec_a" "$cache"
        expect_build corrupt-deb
        check "corrupt-deb: reports the corrupt entry" stderr_has corrupt-deb corrupt
        check "corrupt-deb: entry correct again" entry_matches_name "$cache/sha256/$digest"
        check "corrupt-deb: same image as before" same_image corrupt-deb share-a

        # An index in the cache replaced by other bytes.
        digest=$(release_digest "$WORK/www/archive/dists/$FX_SUITE/Release" main/binary-arm64/Packages.xz)
        [[ -f $cache/sha256/$digest ]] || die "the shared cache lacks the arm64 Packages.xz (sha256/$digest)"
        printf 'not an index: overwritten by lock.sh\n' >"$cache/sha256/$digest"
        run_build corrupt-index "$spec_a" "$cache"
        expect_build corrupt-index
        check "corrupt-index: reports the corrupt entry" stderr_has corrupt-index corrupt
        check "corrupt-index: entry correct again" entry_matches_name "$cache/sha256/$digest"
        check "corrupt-index: same image as before" same_image corrupt-index share-a
}

# --- main -----------------------------------------------------------------------

main() {
        require_runnable "$DISTILL"
        setup_workdir
        printf 'distill: %s\nwork directory: %s\n' "$DISTILL" "$WORK"
        write_image_tool "$WORK/image_tool.py"
        build_fixtures
        start_server

        case_lock_file
        case_reproducible
        case_multiarch
        case_shared_cache

        finish_tests
}

main "$@"
