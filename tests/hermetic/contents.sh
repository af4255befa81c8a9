#!/usr/bin/env bash
# Hermetic tests of what distill puts into an image besides the packages' own files.
# They cover generated accounts, os-release, nsswitch.conf, the CA bundle, the time
# zone, php configuration, files copied from the spec's directory and the paths
# filter. They also cover the warnings about maintainer-script work that never runs,
# `distill inspect`, both SBOM formats, replay protection, unsigned sources,
# limits.file_size, and data.tar entries that plain ustar cannot store (long names,
# devices, FIFOs, duplicates).
#
# Builds fake Debian packages (some with data.tar written by python3 tarfile),
# lays them out as a signed apt repository for the suite bookworm, serves it with
# python3 -m http.server on 127.0.0.1, and builds images from it. The specs name
# an unreachable loopback URL and --mirror points it at the server. Nothing leaves
# the machine. Run from anywhere after build/distill-san exists:
#
#     tests/hermetic/contents.sh
#     DISTILL=build/distill tests/hermetic/contents.sh
#     CONTENTS_KEEP=1 tests/hermetic/contents.sh   (keep the work directory)
#
# The last line is "N passed, N failed"; the exit status is non-zero when any check
# failed. Everything is written below one mktemp -d directory that the EXIT trap
# removes, together with the http server and the gpg-agent it started.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/hermetic/lib.sh
source "$HERE/lib.sh"
hermetic_init CONTENTS_KEEP

# os-release falls back to the first suite's codename, and only Debian codenames
# map to a VERSION_ID, so this repository serves bookworm (Debian 12).
FX_SUITE=bookworm
# The URL every spec names. Port 1 (tcpmux) has no listener on 127.0.0.1 here, so
# any request that skips the mirror is refused at once.
UNREACHABLE=http://127.0.0.1:1/unreachable/$FX_SNAPSHOT
# Release Dates for the replay case: the lock is made from LOCKED, then the server
# offers OLDER (a replay) and later NEWER.
REPLAY_LOCKED_DATE='Fri, 02 Jan 2026 00:00:00 UTC'
REPLAY_LOCKED_RFC3339=2026-01-02T00:00:00Z
REPLAY_OLDER_DATE='Mon, 01 Dec 2025 00:00:00 UTC'
REPLAY_OLDER_RFC3339=2025-12-01T00:00:00Z
REPLAY_NEWER_DATE='Sat, 03 Jan 2026 00:00:00 UTC'
# Size of ct-big's only file: 1.5 MiB, above a 1M limit and below a 2M one.
BIG_FILE_BYTES=1572864
# Seconds one openssl, python3, node or gpg call may take before it counts as hung.
TOOL_TIMEOUT=120
# Seconds building every fixture package and the repositories may take.
FIXTURE_TIMEOUT=600

umask 022

# --- running distill ------------------------------------------------------------

# run_distill LABEL -- ARG...: run `distill ARG...` in $WORK, recording stdout,
# stderr and the exit status as $LOGS/LABEL.{out,err,rc}.
run_distill() {
        local label=$1
        shift
        split_env_args "$@"
        set_command "$RUN_TIMEOUT" TMPDIR="$WORK/tmp" "${ENV_ARGS[@]}" -- "$DISTILL" "${ARGS[@]}"
        run_command "$label" "$WORK"
}

# run_build LABEL SPEC [ARG]...: `distill build SPEC -o $OUT/LABEL/image.tar
# --cache $CACHE --mirror $MIRROR ARG...`.
run_build() {
        local label=$1 spec=$2
        shift 2
        mkdir -p "$OUT/$label"
        run_distill "$label" -- build "$spec" -o "$OUT/$label/image.tar" \
                --cache "$CACHE" --mirror "$MIRROR" "$@"
}

# anchored_line LABEL ANCHOR: the first line of run LABEL's stderr that contains
# ANCHOR, or a message naming ANCHOR and the whole stderr.
anchored_line() {
        local line
        line=$(grep -F -- "$2" "$LOGS/$1.err" | head -n 1)
        if [[ -z $line ]]; then
                printf 'no stderr line contains %q. stderr:\n' "$2"
                cat "$LOGS/$1.err"
                return 1
        fi
        printf '%s\n' "$line"
}

# stderr_line_has LABEL ANCHOR TEXT...: the stderr line containing ANCHOR also
# contains each TEXT.
stderr_line_has() {
        local line text
        line=$(anchored_line "$1" "$2") || {
                printf '%s\n' "$line"
                return 1
        }
        shift 2
        for text in "$@"; do
                if [[ $line != *"$text"* ]]; then
                        printf 'the line\n  %s\ndoes not contain %q\n' "$line" "$text"
                        return 1
                fi
        done
}

# stderr_line_lacks LABEL ANCHOR TEXT...: the stderr line containing ANCHOR
# contains no TEXT.
stderr_line_lacks() {
        local line text
        line=$(anchored_line "$1" "$2") || {
                printf '%s\n' "$line"
                return 1
        }
        shift 2
        for text in "$@"; do
                if [[ $line == *"$text"* ]]; then
                        printf 'the line\n  %s\ncontains %q\n' "$line" "$text"
                        return 1
                fi
        done
}

# expect_dumped_build LABEL: run LABEL succeeded, without a sanitizer report, and
# wrote its image, which is then dumped to $DUMPS/LABEL.
expect_dumped_build() {
        local label=$1
        expect_build "$label"
        if [[ -s $OUT/$label/image.tar ]]; then
                check "$label: image readable" tool dump "$OUT/$label/image.tar" "$DUMPS/$label"
        fi
}

# tool SUBCOMMAND ARG...: the python3 helper written by write_tool.
tool() {
        timeout "$TOOL_TIMEOUT" python3 "$WORK/ct_tool.py" "$@"
}

# --- reading a dumped layer -----------------------------------------------------
# `ct_tool.py dump` writes DIR/entries.tsv with one line per layer entry. Its fields
# are path, type (dir file symlink hardlink char block fifo), mode (4 octal digits),
# uid, gid, size, link target ("-" for none), device major and device minor. The
# dump also writes regular files' contents under DIR/root/ and the image config as
# DIR/config.json.

# entry_fields DUMP PATH: the tab-separated fields after the path of PATH's entry.
entry_fields() {
        awk -F'\t' -v p="$2" '$1 == p { sub(/^[^\t]*\t/, ""); print }' "$DUMPS/$1/entries.tsv"
}

# entry_is DUMP PATH TYPE MODE UID GID [TARGET]: the layer contains PATH exactly once,
# with these attributes (TARGET for symlinks and hard links).
entry_is() {
        local dump=$1 path=$2 type=$3 mode=$4 uid=$5 gid=$6 target=${7-}
        local lines
        lines=$(entry_fields "$dump" "$path")
        if [[ -z $lines ]]; then
                printf 'the layer has no entry %s\n' "$path"
                return 1
        fi
        if (($(printf '%s\n' "$lines" | wc -l) != 1)); then
                printf 'the layer has %s more than once:\n%s\n' "$path" "$lines"
                return 1
        fi
        local a_type a_mode a_uid a_gid a_target
        IFS=$'\t' read -r a_type a_mode a_uid a_gid _ a_target _ <<<"$lines"
        local expected="$type $mode $uid:$gid" actual="$a_type $a_mode $a_uid:$a_gid"
        if [[ $type == symlink || $type == hardlink ]]; then
                expected+=" -> $target"
                actual+=" -> $a_target"
        fi
        if [[ $actual != "$expected" ]]; then
                printf '%s: %s, expected %s\n' "$path" "$actual" "$expected"
                return 1
        fi
}

# entry_absent DUMP PATH...: the layer has no entry at any PATH.
entry_absent() {
        local dump=$1 path
        shift
        for path in "$@"; do
                if [[ -n $(entry_fields "$dump" "$path") ]]; then
                        printf 'the layer has an entry %s: %s\n' "$path" "$(entry_fields "$dump" "$path")"
                        return 1
                fi
        done
}

# content_is DUMP PATH FILE: PATH's contents in the layer equal FILE's.
content_is() {
        local got=$DUMPS/$1/root/$2
        if [[ ! -f $got ]]; then
                printf 'the layer has no regular file %s\n' "$2"
                return 1
        fi
        if ! cmp -s "$got" "$3"; then
                printf '%s differs from %s:\n' "$2" "$3"
                diff <(cat -A "$3") <(cat -A "$got") | head -n 40
                return 1
        fi
}

# text_is DUMP PATH TEXT: PATH's contents in the layer are exactly TEXT.
text_is() {
        local expected=$WORK/tmp/expected.$$
        printf '%s' "$3" >"$expected"
        content_is "$1" "$2" "$expected"
}

# file_has_line DUMP PATH LINE...: each LINE is a whole line of PATH in the layer.
file_has_line() {
        local dump=$1 path=$2 line
        shift 2
        local got=$DUMPS/$dump/root/$path
        if [[ ! -f $got ]]; then
                printf 'the layer has no regular file %s\n' "$path"
                return 1
        fi
        for line in "$@"; do
                if ! grep -qxF -- "$line" "$got"; then
                        printf '%s has no line %q. It contains:\n' "$path" "$line"
                        cat "$got"
                        return 1
                fi
        done
}

# lines_are DUMP PATH AWK-PROGRAM EXPECTED: the output of AWK-PROGRAM (run with
# -F: over PATH in the layer) joined with spaces is EXPECTED.
lines_are() {
        local got
        got=$(awk -F: "$3" "$DUMPS/$1/root/$2" | paste -sd' ')
        if [[ $got != "$4" ]]; then
                printf '%s: %s\nexpected: %s\nfile:\n' "$2" "$got" "$4"
                cat "$DUMPS/$1/root/$2"
                return 1
        fi
}

# os_release_is DUMP KEY VALUE: usr/lib/os-release sets KEY to VALUE (quotes removed).
os_release_is() {
        local got
        got=$(tool os-release "$DUMPS/$1/root/usr/lib/os-release" "$2")
        if [[ $got != "$3" ]]; then
                printf 'os-release %s=%q, expected %q. The file:\n' "$2" "$got" "$3"
                cat "$DUMPS/$1/root/usr/lib/os-release"
                return 1
        fi
}

# config_is DUMP KEY EXPECTED-JSON: the image config's config.KEY, as
# compact JSON, is EXPECTED-JSON ("null" when missing).
config_is() {
        local got
        got=$(tool config "$DUMPS/$1/config.json" "$2")
        if [[ $got != "$3" ]]; then
                printf 'config.%s is %s, expected %s\n' "$2" "$got" "$3"
                return 1
        fi
}

# no_entry_matching DUMP ERE: no layer path matches the extended regular expression.
no_entry_matching() {
        if cut -f1 "$DUMPS/$1/entries.tsv" | grep -E -- "$2"; then
                printf 'the layer paths above match %s\n' "$2"
                return 1
        fi
}

# md5sums_are DUMP PACKAGE PATH...: status.d/PACKAGE.md5sums lists exactly PATHs.
md5sums_are() {
        local dump=$1 package=$2
        shift 2
        local list=$DUMPS/$dump/root/var/lib/dpkg/status.d/$package.md5sums got expected
        if [[ ! -f $list ]]; then
                printf 'the layer has no var/lib/dpkg/status.d/%s.md5sums\n' "$package"
                return 1
        fi
        got=$(sed 's/^[0-9a-f]*  //; s|^/||' "$list" | LC_ALL=C sort | paste -sd' ')
        expected=$(printf '%s\n' "$@" | LC_ALL=C sort | paste -sd' ')
        if [[ $got != "$expected" ]]; then
                printf '%s.md5sums lists:\n  %s\nexpected:\n  %s\n' "$package" "$got" "$expected"
                return 1
        fi
}

# --- fixtures -------------------------------------------------------------------

setup_workdir() {
        make_workdir
        CACHE=$WORK/cache
        SPECS=$WORK/specs
        DUMPS=$WORK/dumps
        EXPECT=$WORK/expect
        mkdir -p "$CACHE" "$SPECS" "$DUMPS" "$EXPECT" "$WORK/www" "$WORK/tmp" \
                "$WORK/keys" "$WORK/debs" "$WORK/debsrc"
}

# write_tool PATH: the python3 helper that builds tar-level fixtures and reads
# images. Each check subcommand exits 0 when its check holds, or 1 with a message.
write_tool() {
        cat >"$1" <<'PYTHON'
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile

TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}


def fail(message):
    print(message)
    sys.exit(1)


def normalize(name):
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


# --- fixture data.tar files ---------------------------------------------------

def long_names(prefix):
    """The paths of a long-name package: a 199-character directory, a 300-character
    file in it, a 200-character absolute symlink target and a 300-character hard link."""
    base = f"usr/share/{prefix}/"
    width = (199 - len(base) - 1) // 2
    d1 = "a" * width
    d2 = "b" * (199 - len(base) - 1 - width)
    long_dir = base + d1 + "/" + d2
    assert len(long_dir) == 199
    long_file = long_dir + "/" + "f" * 96 + ".txt"
    long_hard = long_dir + "/" + "h" * 100
    assert len(long_file) == 300
    assert len(long_hard) == 300
    return {"dirs": ["usr", "usr/share", base.rstrip("/"), base + d1, long_dir],
            "file": long_file, "hard": long_hard, "link": base + "link",
            "target": "/" + long_dir}


def add_dir(tar, name, mode=0o755):
    info = tarfile.TarInfo("./" + name + "/")
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 1700000000
    tar.addfile(info)


def add_file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo("./" + name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1700000000
    tar.addfile(info, io.BytesIO(data))


def add_link(tar, name, kind, target, mode=0o777):
    info = tarfile.TarInfo("./" + name)
    info.type = kind
    info.linkname = target if kind == tarfile.SYMTYPE else "./" + target
    info.mode = mode
    info.mtime = 1700000000
    tar.addfile(info)


def add_device(tar, name, kind, major, minor, mode, gid=0):
    info = tarfile.TarInfo("./" + name)
    info.type = kind
    info.devmajor = major
    info.devminor = minor
    info.mode = mode
    info.gid = gid
    info.mtime = 1700000000
    tar.addfile(info)


def cmd_long_data(out, fmt, prefix):
    """data.tar.xz of a package with long names, in PAX or GNU format."""
    names = long_names(prefix)
    tar_format = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT}[fmt]
    with tarfile.open(out, "w:xz", format=tar_format) as tar:
        add_dir(tar, ".")
        for d in names["dirs"]:
            add_dir(tar, d)
        add_file(tar, names["file"], f"{fmt} long file\n".encode())
        add_link(tar, names["hard"], tarfile.LNKTYPE, names["file"], 0o644)
        add_link(tar, names["link"], tarfile.SYMTYPE, names["target"])


def cmd_long_names(prefix, key):
    print(long_names(prefix)[key])


def cmd_special_data(out):
    """data.tar.xz with a char device, a block device, a FIFO and two paths that
    appear twice (file then file, file then symlink)."""
    base = "usr/share/ct-special"
    with tarfile.open(out, "w:xz", format=tarfile.PAX_FORMAT) as tar:
        add_dir(tar, ".")
        for d in ["usr", "usr/share", base]:
            add_dir(tar, d)
        add_device(tar, base + "/null", tarfile.CHRTYPE, 1, 3, 0o666)
        add_device(tar, base + "/disk", tarfile.BLKTYPE, 8, 0, 0o660, gid=6)
        add_device(tar, base + "/fifo", tarfile.FIFOTYPE, 0, 0, 0o600)
        add_file(tar, base + "/dup", b"first version\n", 0o644)
        add_file(tar, base + "/switch", b"a regular file first\n", 0o644)
        add_file(tar, base + "/dup", b"second version\n", 0o755)
        add_link(tar, base + "/switch", tarfile.SYMTYPE, "dup")


# --- reading images ---------------------------------------------------------------

def open_image(path):
    outer = tarfile.open(path)
    members = {normalize(m.name): m for m in outer.getmembers()}

    def read(name):
        m = members.get(name)
        if m is None:
            fail(f"{path} has no member {name}")
        return outer.extractfile(m).read()
    return outer, read


def cmd_dump(image, out):
    _, read = open_image(image)
    docker = json.loads(read("manifest.json"))
    if len(docker) != 1 or len(docker[0].get("Layers", [])) != 1:
        fail(f"manifest.json does not describe one image with one layer: {docker}")
    config = read(docker[0]["Config"])
    layer_name = docker[0]["Layers"][0]
    layer = read(layer_name)

    os.makedirs(os.path.join(out, "root"), exist_ok=True)
    with open(os.path.join(out, "config.json"), "wb") as f:
        f.write(config)
    with open(os.path.join(out, "layer.txt"), "w") as f:
        f.write(f"sha256:{os.path.basename(layer_name)} {len(layer)}\n")
    root = os.path.realpath(os.path.join(out, "root"))

    lines = []
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        for m in tar:
            name = normalize(m.name)
            if not name or name.startswith("/") or ".." in name.split("/"):
                fail(f"the layer has an unsafe name {m.name!r}")
            kind = TYPES.get(m.type, f"type-{m.type!r}")
            # "-" stands for no target, because bash's read collapses empty tab fields.
            target = m.linkname or "-"
            if kind == "hardlink":
                target = normalize(target)
            lines.append("\t".join([name, kind, f"{m.mode:04o}", str(m.uid), str(m.gid),
                                    str(m.size), target, str(m.devmajor), str(m.devminor)]))
            if kind == "file":
                dest = os.path.join(root, name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                if os.path.lexists(dest) and not os.path.isfile(dest):
                    fail(f"cannot store {name}: a non-file is already there")
                with open(dest, "wb") as f:
                    f.write(tar.extractfile(m).read())
    with open(os.path.join(out, "entries.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def read_entries(dump):
    entries = {}
    with open(os.path.join(dump, "entries.tsv")) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            entries.setdefault(fields[0], fields)
    return entries


def md5sums_lists(dump):
    directory = os.path.join(dump, "root", "var/lib/dpkg/status.d")
    lists = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".md5sums"):
            with open(os.path.join(directory, name)) as f:
                rows = []
                for line in f:
                    if line.strip():
                        digest, _, path = line.rstrip("\n").partition("  ")
                        rows.append((digest, path.lstrip("/")))
                lists[name[:-len(".md5sums")]] = rows
    return lists


def layer_file(entries, path):
    """The regular-file entry at path, or at usr/path (merged /usr), following a hard
    link to its target."""
    for candidate in (path, "usr/" + path):
        e = entries.get(candidate)
        if e and e[1] == "hardlink":
            candidate = e[6]
            e = entries.get(candidate)
        if e and e[1] == "file":
            return candidate, e
    return None, None


def cmd_md5sums(dump):
    """Every line of every status.d/*.md5sums names a regular file of the layer
    whose MD5 matches."""
    entries = read_entries(dump)
    problems = []
    for package, rows in md5sums_lists(dump).items():
        for digest, path in rows:
            found, _ = layer_file(entries, path)
            if not found:
                problems.append(f"{package}.md5sums lists {path}, which the layer lacks")
                continue
            with open(os.path.join(dump, "root", found), "rb") as f:
                actual = hashlib.md5(f.read()).hexdigest()
            if actual != digest:
                problems.append(f"{package}.md5sums: {path} has MD5 {actual}, the list says {digest}")
    if problems:
        fail("\n".join(problems))


def expected_sizes(dump):
    """Per package, the bytes of the regular files its md5sums lists (each file counted
    once, for the first package in name order), the bytes no list claims, the total."""
    entries = read_entries(dump)
    claimed = set()
    sizes = {}
    for package, rows in md5sums_lists(dump).items():
        total = 0
        for _, path in rows:
            found, e = layer_file(entries, path)
            if found and found not in claimed:
                claimed.add(found)
                total += int(e[5])
        sizes[package] = total
    files = {p: int(e[5]) for p, e in entries.items() if e[1] == "file"}
    other = sum(size for p, size in files.items() if p not in claimed)
    return sizes, other, sum(files.values())


def cmd_sizes(dump, inspect_output):
    sizes, other, total = expected_sizes(dump)
    text = open(inspect_output).read().splitlines()

    try:
        start = text.index("  installed bytes by package (largest first):")
    except ValueError:
        fail("inspect --sizes printed no 'installed bytes by package (largest first):' line")
    got = {}
    order = []
    got_other = got_total = None
    for line in text[start + 1:]:
        m = re.fullmatch(r"\s+(\d+)  (.+)", line)
        if not m:
            break
        size, name = int(m.group(1)), m.group(2)
        if name.startswith("(files no package lists"):
            got_other = size
        elif name == "total":
            got_total = size
        else:
            got[name] = size
            order.append(size)

    problems = []
    if got != sizes:
        problems.append(f"per package: {dict(sorted(got.items()))}\nexpected: {dict(sorted(sizes.items()))}")
    if order != sorted(order, reverse=True):
        problems.append(f"not largest first: {order}")
    if got_other != other:
        problems.append(f"files no package lists: {got_other}, expected {other}")
    if got_total != total:
        problems.append(f"total: {got_total}, expected {total}")
    if problems:
        fail("\n".join(problems))


def status_packages(dump):
    directory = os.path.join(dump, "root", "var/lib/dpkg/status.d")
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".md5sums"):
            continue
        fields = {}
        for line in open(os.path.join(directory, name)):
            if line.strip() == "":
                break
            if not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        out.append(f"{fields.get('Package')} {fields.get('Version')} {fields.get('Architecture')}")
    return sorted(out)


def cmd_status_packages(dump):
    print("\n".join(status_packages(dump)))


def cmd_inspect(dump, inspect_output, ref, digest):
    """The inspect output names the image, the platform, the config, the layer and
    every package of status.d."""
    text = open(inspect_output).read().splitlines()
    config = json.load(open(os.path.join(dump, "config.json")))
    layer_digest, layer_size = open(os.path.join(dump, "layer.txt")).read().split()

    problems = []
    if not text or text[0] != f"image {ref} ({digest})":
        problems.append(f"first line {text[:1]}, expected 'image {ref} ({digest})'")
    if "platform linux/amd64" not in text:
        problems.append("no line 'platform linux/amd64'")
    for key in ["User", "WorkingDir", "Entrypoint", "Env"]:
        if key in config["config"]:
            want = f"  {key}: " + json.dumps(config["config"][key], separators=(",", ":"), sort_keys=True)
            if want not in text:
                problems.append(f"no line {want!r}")

    want = f"  layer {layer_digest}: {layer_size} bytes"
    if not any(line.startswith(want + " ") or line == want for line in text):
        problems.append(f"no line starting {want!r}")

    packages = status_packages(dump)
    header = f"  packages ({len(packages)}):"
    if header not in text:
        problems.append(f"no line {header!r}")
    else:
        start = text.index(header) + 1
        listed = [line.strip() for line in text[start:start + len(packages)]]
        if listed != packages:
            problems.append(f"packages listed:\n  {listed}\nstatus.d holds:\n  {packages}")
        following = text[start + len(packages):start + len(packages) + 1]
        if following and following[0].startswith("    ") and len(following[0].split()) == 3:
            problems.append(f"an extra package line follows: {following[0]!r}")
    if problems:
        fail("\n".join(problems) + "\n--- inspect output:\n" + "\n".join(text))


def cmd_config(path, key):
    config = json.load(open(path))["config"]
    print(json.dumps(config.get(key), separators=(",", ":"), sort_keys=True))


def cmd_env_has(path, entry):
    env = json.load(open(path))["config"].get("Env") or []
    if entry not in env:
        fail(f"Env lacks {entry!r}: {env}")


def cmd_env_lacks(path, prefix):
    env = json.load(open(path))["config"].get("Env") or []
    hits = [e for e in env if e.startswith(prefix)]
    if hits:
        fail(f"Env has {hits}")


def cmd_os_release(path, key):
    for line in open(path):
        k, sep, v = line.rstrip("\n").partition("=")
        if sep and k == key:
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            print(v)
            return
    print("<unset>")


def cmd_sbom_names(fmt, path):
    doc = json.load(open(path))
    if fmt == "spdx":
        names = {p.get("name") for p in doc.get("packages", [])}
    else:
        names = {c.get("name") for c in doc.get("components", [])}
    print("\n".join(sorted(n for n in names if n)))


def main():
    command, args = sys.argv[1], sys.argv[2:]
    commands = {
        "long-data": cmd_long_data, "long-names": cmd_long_names,
        "special-data": cmd_special_data, "dump": cmd_dump, "md5sums": cmd_md5sums,
        "sizes": cmd_sizes, "status-packages": cmd_status_packages, "inspect": cmd_inspect,
        "config": cmd_config, "env-has": cmd_env_has, "env-lacks": cmd_env_lacks,
        "os-release": cmd_os_release, "sbom-names": cmd_sbom_names,
    }
    commands[command](*args)


main()
PYTHON
}

# python_deb SRC OUT.deb NAME VERSION ARCH SUBCOMMAND ARG...: a hand-built .deb
# whose data.tar.xz is written by `ct_tool.py SUBCOMMAND DATA ARG...`. The control
# member has no md5sums, so distill computes them.
python_deb() {
        local src=$1 out=$2 name=$3 version=$4 arch=$5
        shift 5
        hand_built_deb "$src" "$out" "$name" "$version" "$arch" write_data_tar "$@"
}

# write_data_tar DATA SUBCOMMAND ARG...: `ct_tool.py SUBCOMMAND DATA ARG...`.
write_data_tar() {
        python3 "$WORK/ct_tool.py" "$2" "$1" "${@:3}"
}

# make_certificate DIR STEM SUBJECT: DIR/STEM.crt, a self-signed P-256 certificate.
make_certificate() {
        local dir=$1 stem=$2 subject=$3
        timeout "$TOOL_TIMEOUT" openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
                -nodes -keyout "$WORK/debsrc/$stem.key" -out "$dir/$stem.crt" \
                -subj "$subject" -days 3650 2>/dev/null
}

# Fake ca-certificates: two certificates under mozilla/ and one under extra/ with the
# same subject as mozilla/Alpha_Root.crt, so that two subject-hash links collide.
build_ca_certificates() {
        local src=$1 out=$2
        local dir=$src/ca-certificates
        new_package "$dir" ca-certificates 20230311 all
        local certs=$dir/usr/share/ca-certificates
        mkdir -p "$certs/mozilla" "$certs/extra"
        make_certificate "$certs/mozilla" Alpha_Root '/O=Distill Tests/CN=CT Alpha Root'
        make_certificate "$certs/mozilla" Beta_Root '/O=Distill Tests/CN=CT Beta Root'
        make_certificate "$certs/extra" Gamma_Root '/O=Distill Tests/CN=CT Alpha Root'
        printf 'not a certificate: the bundle takes only *.crt\n' >"$certs/mozilla/README.txt"
        finish_package "$dir" xz "$out/ca-certificates_20230311_all.deb"
}

build_base_files() {
        local src=$1 out=$2
        local dir=$src/base-files
        new_package "$dir" base-files 12.4+ct1 amd64 'Essential: yes'
        mkdir -p "$dir/usr/lib"
        # VERSION_ID 77 differs from bookworm's 12, so the check shows which source
        # distill took it from.
        cat >"$dir/usr/lib/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 77 (fakeworm)"
NAME="Debian GNU/Linux"
VERSION_ID="77"
VERSION="77 (fakeworm)"
VERSION_CODENAME=fakeworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
EOF
        finish_package "$dir" xz "$out/base-files_12.4+ct1_amd64.deb"
}

build_tzdata() {
        local src=$1 out=$2
        local dir=$src/tzdata
        new_package "$dir" tzdata 2024a-0+deb12u1 all
        mkdir -p "$dir/usr/share/zoneinfo/Etc"
        printf 'TZif2 UTC fixture\n' >"$dir/usr/share/zoneinfo/Etc/UTC"
        finish_package "$dir" xz "$out/tzdata_2024a-0+deb12u1_all.deb"
}

# ct-alt: files below /bin, /sbin, /lib and /lib64 (merged into /usr), a postinst
# with work distill skips, an ld.so.conf.d file and a dangling symlink.
build_ct_alt() {
        local src=$1 out=$2
        local dir=$src/ct-alt
        new_package "$dir" ct-alt 1.0-1 amd64
        mkdir -p "$dir/bin" "$dir/sbin" "$dir/lib/ct-alt-data" "$dir/lib64" "$dir/usr/bin" \
                "$dir/usr/share/ct-alt" "$dir/usr/lib/ct-alt/private" "$dir/etc/ld.so.conf.d"
        printf '#!/bin/sh\necho ct-shell\n' >"$dir/bin/ct-shell"
        printf '#!/bin/sh\necho ct-daemon\n' >"$dir/sbin/ct-daemon"
        printf 'ct-alt data\n' >"$dir/lib/ct-alt-data/data.txt"
        printf 'not really a loader\n' >"$dir/lib64/ct-ld.so"
        printf '#!/bin/sh\necho foo\n' >"$dir/usr/bin/foo.real"
        printf '#!/bin/sh\necho bar\n' >"$dir/usr/bin/bar.real"
        chmod 0755 "$dir/bin/ct-shell" "$dir/sbin/ct-daemon" "$dir/lib64/ct-ld.so" \
                "$dir/usr/bin/foo.real" "$dir/usr/bin/bar.real"
        printf 'ct-alt 1.0-1\n' >"$dir/usr/share/ct-alt/marker"
        printf 'private library\n' >"$dir/usr/lib/ct-alt/private/libctalt.so.1"
        # The loader searches /usr/lib/x86_64-linux-gnu anyway, and /opt/ct-missing/lib
        # does not exist, so only /usr/lib/ct-alt/private deserves a warning.
        printf '# ct-alt private libraries\n/usr/lib/ct-alt/private\n/usr/lib/x86_64-linux-gnu\n/opt/ct-missing/lib\n' \
                >"$dir/etc/ld.so.conf.d/ct-alt.conf"
        ln -s /opt/nowhere/tool "$dir/usr/bin/ct-dangling"
        cat >"$dir/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    update-alternatives --install /usr/bin/foo foo /usr/bin/foo.real 10
    update-alternatives --install /usr/bin/bar bar /usr/bin/bar.real 10
    adduser --system --group --no-create-home ctsvc
    getent group ctgrp >/dev/null || groupadd -g 4242 ctgrp || (echo "no ctgrp" >&2; exit 1)
    setcap cap_net_bind_service+ep /usr/bin/foo.real
    mkdir -p /var/lib/ct-alt
    mkdir -p /usr/share/ct-alt
    install -d /var/cache/ct-declared
fi
EOF
        chmod 0755 "$dir/DEBIAN/postinst"
        finish_package "$dir" xz "$out/ct-alt_1.0-1_amd64.deb"
}

build_ct_doc() {
        local src=$1 out=$2
        local dir=$src/ct-doc
        new_package "$dir" ct-doc 2.1-3 amd64
        mkdir -p "$dir/usr/share/doc/ct-doc" "$dir/usr/share/man/man1" "$dir/usr/bin"
        printf 'ct-doc read me\n' >"$dir/usr/share/doc/ct-doc/README"
        printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: Apache-2.0\n' \
                >"$dir/usr/share/doc/ct-doc/copyright"
        printf '.TH CT-DOC-TOOL 1\n' | gzip -9n >"$dir/usr/share/man/man1/ct-doc-tool.1.gz"
        printf '#!/bin/sh\necho ct-doc-tool\n' >"$dir/usr/bin/ct-doc-tool"
        chmod 0755 "$dir/usr/bin/ct-doc-tool"
        ln -s ../share/doc/ct-doc/README "$dir/usr/bin/readme"
        finish_package "$dir" gzip "$out/ct-doc_2.1-3_amd64.deb"
}

# ct-etc ships its own /etc/os-release and /etc/nsswitch.conf, which distill must keep.
build_ct_etc() {
        local src=$1 out=$2
        local dir=$src/ct-etc
        new_package "$dir" ct-etc 1.0 all
        mkdir -p "$dir/etc"
        printf 'ID=ct-etc\nNAME="shipped by ct-etc"\n' >"$dir/etc/os-release"
        printf '# shipped by ct-etc\npasswd: compat\n' >"$dir/etc/nsswitch.conf"
        finish_package "$dir" xz "$out/ct-etc_1.0_all.deb"
}

build_ct_big() {
        local src=$1 out=$2
        local dir=$src/ct-big
        new_package "$dir" ct-big 1.0 all
        mkdir -p "$dir/usr/share/ct-big"
        head -c "$BIG_FILE_BYTES" /dev/urandom >"$dir/usr/share/ct-big/blob"
        finish_package "$dir" xz "$out/ct-big_1.0_all.deb"
}

# php8.2-common keeps pdo.ini under /usr/share for its postinst and ships the
# php.ini templates. php8.2-mysql keeps mysqlnd, mysqli and pdo_mysql there, and the
# cli and fpm packages provide the SAPI directories.
build_php() {
        local src=$1 out=$2 version=8.2.29-1~deb12u1 dir
        dir=$src/php8.2-common
        new_package "$dir" php8.2-common "$version" amd64
        mkdir -p "$dir/usr/share/php8.2-common/common" "$dir/usr/lib/php/8.2"
        printf '; configuration for php PDO module\n; priority=10\nextension=pdo.so\n' \
                >"$dir/usr/share/php8.2-common/common/pdo.ini"
        printf '[PHP]\n; php.ini-production fixture\nengine = On\n' \
                >"$dir/usr/lib/php/8.2/php.ini-production"
        printf '[PHP]\n; php.ini-production.cli fixture\nmemory_limit = -1\n' \
                >"$dir/usr/lib/php/8.2/php.ini-production.cli"
        finish_package "$dir" xz "$out/php8.2-common_${version}_amd64.deb"

        dir=$src/php8.2-mysql
        new_package "$dir" php8.2-mysql "$version" amd64 "Depends: php8.2-common (= $version)"
        local share=$dir/usr/share/php8.2-mysql/mysql
        mkdir -p "$share"
        printf '; configuration for php mysql module\n; priority=10\nextension=mysqlnd.so\n' >"$share/mysqlnd.ini"
        printf '; configuration for php mysql module\n; priority=20\nextension=mysqli.so\n' >"$share/mysqli.ini"
        printf '; configuration for php mysql module\n; priority=20\nextension=pdo_mysql.so\n' >"$share/pdo_mysql.ini"
        cat >"$dir/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "configure" ]; then
    for dsoname in mysqlnd mysqli pdo_mysql; do
        inifile=${dsoname}.ini
        ucf /usr/share/php8.2-mysql/mysql/${inifile} /etc/php/8.2/mods-available/${inifile}
        php_invoke enmod 8.2 ALL ${dsoname}
    done
fi
EOF
        chmod 0755 "$dir/DEBIAN/postinst"
        finish_package "$dir" xz "$out/php8.2-mysql_${version}_amd64.deb"

        dir=$src/php8.2-cli
        new_package "$dir" php8.2-cli "$version" amd64 "Depends: php8.2-common (= $version)"
        mkdir -p "$dir/etc/php/8.2/cli/conf.d" "$dir/usr/bin"
        printf '#!/bin/sh\necho php\n' >"$dir/usr/bin/php8.2"
        chmod 0755 "$dir/usr/bin/php8.2"
        finish_package "$dir" xz "$out/php8.2-cli_${version}_amd64.deb"

        dir=$src/php8.2-fpm
        new_package "$dir" php8.2-fpm "$version" amd64 "Depends: php8.2-common (= $version)"
        mkdir -p "$dir/etc/php/8.2/fpm/conf.d" "$dir/etc/php/8.2/fpm/pool.d" "$dir/usr/sbin"
        printf '[www]\nlisten = /run/php/php8.2-fpm.sock\n' >"$dir/etc/php/8.2/fpm/pool.d/www.conf"
        printf '#!/bin/sh\necho php-fpm\n' >"$dir/usr/sbin/php-fpm8.2"
        chmod 0755 "$dir/usr/sbin/php-fpm8.2"
        finish_package "$dir" xz "$out/php8.2-fpm_${version}_amd64.deb"
}

# make_packages SRC OUTDIR: every fixture .deb.
make_packages() {
        local src=$1 out=$2
        build_ca_certificates "$src" "$out"
        build_base_files "$src" "$out"
        build_tzdata "$src" "$out"
        build_ct_alt "$src" "$out"
        build_ct_doc "$src" "$out"
        build_ct_etc "$src" "$out"
        build_ct_big "$src" "$out"
        build_php "$src" "$out"
        python_deb "$src" "$out/ct-long-pax_1.0_amd64.deb" ct-long-pax 1.0 amd64 long-data pax ct-long-pax
        python_deb "$src" "$out/ct-long-gnu_1.0_amd64.deb" ct-long-gnu 1.0 amd64 long-data gnu ct-long-gnu
        python_deb "$src" "$out/ct-special_1.0_amd64.deb" ct-special 1.0 amd64 special-data
}

# make_fixtures WORK: the packages, a signing key, the signed repository
# WORK/www/archive, an unsigned copy WORK/www/unsigned, and WORK/www/replay (ct-doc
# and ct-etc only) whose Release is dated $REPLAY_LOCKED_DATE. Prints the key's
# fingerprint.
make_fixtures() {
        local work=$1
        make_packages "$work/debsrc" "$work/debs" >/dev/null
        local fpr
        fpr=$(make_signing_key "$work/gnupg" contents-fixture "$work/keys/fixture.gpg")
        build_repository "$work/www/archive" "$work/debs" "$work/gnupg" "$fpr" >/dev/null

        cp -a "$work/www/archive" "$work/www/unsigned"
        rm -f "$work/www/unsigned/dists/$FX_SUITE/InRelease" "$work/www/unsigned/dists/$FX_SUITE/Release.gpg"

        mkdir -p "$work/replay-debs"
        cp "$work/debs"/ct-doc_*.deb "$work/debs"/ct-etc_*.deb "$work/replay-debs/"
        FX_RELEASE_DATE=$REPLAY_LOCKED_DATE \
                build_repository "$work/www/replay" "$work/replay-debs" "$work/gnupg" "$fpr" >/dev/null
        printf '%s\n' "$fpr"
}

build_fixtures() {
        FPR=$(in_child_bash "$FIXTURE_TIMEOUT" WORK TOOL_TIMEOUT BIG_FILE_BYTES REPLAY_LOCKED_DATE -- \
                make_fixtures "$WORK") ||
                die "building the fixture packages and repositories failed"
        grep -q '^Package: ct-long-gnu$' "$WORK/www/archive/dists/$FX_SUITE/main/binary-amd64/Packages" ||
                die "the repository index lacks ct-long-gnu"
        grep -q '^Date: Fri, 02 Jan 2026' "$WORK/www/replay/dists/$FX_SUITE/Release" ||
                die "the replay Release does not carry $REPLAY_LOCKED_DATE"
        [[ -f $WORK/www/unsigned/dists/$FX_SUITE/Release && ! -e $WORK/www/unsigned/dists/$FX_SUITE/InRelease ]] ||
                die "the unsigned repository is not laid out as expected"
        printf 'fixture key %s\n' "$FPR"
}

# resign_replay DATE: rewrite the replay repository's Release with Date DATE and sign it.
resign_replay() {
        local date=$1
        in_child_bash "$FIXTURE_TIMEOUT" -- \
                redate_release "$date" "$WORK/www/replay/dists/$FX_SUITE" "$WORK/gnupg" "$FPR" ||
                die "re-signing the replay Release failed"
        grep -qF "Date: $date" "$WORK/www/replay/dists/$FX_SUITE/InRelease" ||
                die "the replay InRelease does not carry $date"
}

# redate_release DATE DISTDIR GNUPGHOME FPR: DISTDIR/Release written again with Date
# DATE and signed by FPR.
redate_release() {
        FX_RELEASE_DATE=$1 write_release "$2"
        sign_release "$3" "$2" "$4"
}

start_server() {
        start_http_server "$WORK/www"
        MIRROR=$UNREACHABLE=$SERVER/archive
}

# source_yaml [KEYRING-LINE]: the sources section naming $UNREACHABLE.
source_yaml() {
        local keyring=${1:-"keyring: $WORK/keys/fixture.gpg"}
        cat <<YAML
sources:
  - url: $UNREACHABLE
    suites: [$FX_SUITE]
    components: [main]
    $keyring
architectures: [amd64]
YAML
}

# The local files the full spec copies with files: source.
write_local_files() {
        local dir=$1
        mkdir -p "$dir/files/static/js" "$dir/files/static/bin"
        printf '#!/bin/sh\necho tool\n' >"$dir/files/tool.sh"
        chmod 0755 "$dir/files/tool.sh"
        printf 'listen = 8080\n' >"$dir/files/app.conf"
        chmod 0644 "$dir/files/app.conf"
        printf 'password = hunter2\n' >"$dir/files/secret.conf"
        chmod 0644 "$dir/files/secret.conf"
        printf '<h1>ct</h1>\n' >"$dir/files/static/index.html"
        printf 'console.log(1)\n' >"$dir/files/static/js/app.js"
        printf '#!/bin/sh\necho run\n' >"$dir/files/static/bin/run.sh"
        chmod 0644 "$dir/files/static/index.html" "$dir/files/static/js/app.js"
        chmod 0755 "$dir/files/static/bin/run.sh"
        # A private local directory mode must not leak into the image.
        chmod 0700 "$dir/files/static/js"
        ln -s index.html "$dir/files/static/current"
}

FULL_PACKAGES='[ca-certificates, base-files, tzdata, ct-alt, ct-doc, php8.2-cli, php8.2-fpm, php8.2-mysql, ct-long-pax, ct-long-gnu, ct-special]'

write_full_spec() {
        local dir=$SPECS/full
        mkdir -p "$dir"
        write_local_files "$dir"
        {
                printf 'name: ct-full\n'
                source_yaml
                cat <<YAML
packages: $FULL_PACKAGES
paths:
  exclude: [/usr/share/doc/*, /usr/share/man/*]
  include: [/usr/share/doc/*/copyright]
accounts:
  groups: [{name: www-data, gid: 33}, {name: nonroot, gid: 1500}]
  users:
    - {name: www-data, uid: 33, gid: 33, home: /var/www, shell: /usr/sbin/nologin}
    - {name: app, uid: 1001, home: /srv/app/home}
    - {name: nonroot, uid: 1500, gid: 1500, home: /home/custom, shell: /bin/sh}
directories: [{path: /var/cache/ct-declared, mode: "0750", owner: app}]
symlinks: [{path: /usr/bin/bar, target: bar.real}]
files:
  - {path: /usr/local/bin/tool, source: files/tool.sh}
  - {path: /etc/app/app.conf, source: files/app.conf, owner: app, group: www-data}
  - {path: /etc/app/secret.conf, source: files/secret.conf, mode: "0600", owner: app}
  - {path: /srv/app/static, source: files/static, owner: www-data}
php:
  version: "8.2"
  extensions: [pdo_mysql]
  ini: {memory_limit: 256M, expose_php: "Off"}
image:
  entrypoint: [/usr/local/bin/tool]
  env: {LANG: C.UTF-8}
  workdir: /srv/app
  user: app
YAML
        } >"$dir/spec.yaml"
}

# write_simple_spec NAME PACKAGES-YAML [EXTRA-YAML] [KEYRING-LINE]: $SPECS/NAME/spec.yaml.
write_simple_spec() {
        local name=$1 packages=$2 extra=${3-} keyring=${4-}
        mkdir -p "$SPECS/$name"
        {
                printf 'name: %s\n' "$name"
                source_yaml "$keyring"
                printf 'packages: %s\n' "$packages"
                if [[ -n $extra ]]; then
                        printf '%s\n' "$extra"
                fi
        } >"$SPECS/$name/spec.yaml"
}

# --- cases ----------------------------------------------------------------------

# Expected contents computed from the fixture sources, independent of distill.
prepare_expectations() {
        local certs=$WORK/debsrc/ca-certificates/usr/share/ca-certificates
        cat "$certs/extra/Gamma_Root.crt" "$certs/mozilla/Alpha_Root.crt" "$certs/mozilla/Beta_Root.crt" \
                >"$EXPECT/ca-bundle.crt"
        HASH_ALPHA=$(timeout "$TOOL_TIMEOUT" openssl x509 -noout -subject_hash -in "$certs/mozilla/Alpha_Root.crt")
        HASH_GAMMA=$(timeout "$TOOL_TIMEOUT" openssl x509 -noout -subject_hash -in "$certs/extra/Gamma_Root.crt")
        HASH_BETA=$(timeout "$TOOL_TIMEOUT" openssl x509 -noout -subject_hash -in "$certs/mozilla/Beta_Root.crt")
        [[ $HASH_ALPHA == "$HASH_GAMMA" && $HASH_ALPHA != "$HASH_BETA" ]] ||
                die "the certificate subject hashes are not as designed: $HASH_ALPHA $HASH_GAMMA $HASH_BETA"
}

case_full_build() {
        section "full image: build with an SPDX SBOM, --rootfs and --json"
        write_full_spec
        run_build full "$SPECS/full/spec.yaml" --json --rootfs "$WORK/rootfs-full" \
                --sbom "$OUT/full-sbom.spdx.json"
        expect_dumped_build full
        FULL_DIGEST=$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' "$LOGS/full.out")
        check "full: --json prints the digest" test -n "$FULL_DIGEST"
}

case_merged_usr() {
        section "merged /usr: bin, sbin, lib and lib64 are symlinks"
        local dir
        for dir in bin sbin lib lib64; do
                check "full: /$dir is a symlink to usr/$dir" entry_is full "$dir" symlink 0777 0 0 "usr/$dir"
        done
        check "full: no entry below bin/, sbin/, lib/ or lib64/" no_entry_matching full '^(bin|sbin|lib|lib64)/'
        check "full: /bin/ct-shell lands in usr/bin" entry_is full usr/bin/ct-shell file 0755 0 0
        check "full: /sbin/ct-daemon lands in usr/sbin" entry_is full usr/sbin/ct-daemon file 0755 0 0
        check "full: /lib/ct-alt-data lands in usr/lib" entry_is full usr/lib/ct-alt-data/data.txt file 0644 0 0
        check "full: /lib64/ct-ld.so lands in usr/lib64" entry_is full usr/lib64/ct-ld.so file 0755 0 0
        check "plain: /bin is a symlink to usr/bin" entry_is plain bin symlink 0777 0 0 usr/bin
        check "plain: no entry below bin/, sbin/ or lib/" no_entry_matching plain '^(bin|sbin|lib|lib64)/'
}

# shellcheck disable=SC2016 # the single-quoted arguments are awk programs.
case_accounts() {
        section "accounts: passwd, group, shadow and home directories"
        check "full: passwd mode and owner" entry_is full etc/passwd file 0644 0 0
        check "full: group mode and owner" entry_is full etc/group file 0644 0 0
        check "full: shadow is root:shadow 0640" entry_is full etc/shadow file 0640 0 42
        check "full: passwd users and ids" lines_are full etc/passwd '{ print $1 ":" $3 ":" $4 }' \
                'root:0:0 nobody:65534:65534 nonroot:1500:1500 www-data:33:33 app:1001:1001'
        check "full: passwd homes and shells of spec users" lines_are full etc/passwd \
                '$1 == "nonroot" || $1 == "www-data" || $1 == "app" { print $1 ":" $6 }' \
                'nonroot:/home/custom www-data:/var/www app:/srv/app/home'
        check "full: nonroot shell from the spec" lines_are full etc/passwd '$1 == "nonroot" { print $7 }' /bin/sh
        check "full: group names and ids" lines_are full etc/group '{ print $1 ":" $3 }' \
                'root:0 nobody:65534 nonroot:1500 www-data:33 app:1001'
        check "full: shadow names match passwd" lines_are full etc/shadow '{ print $1 }' \
                'root nobody nonroot www-data app'
        check "full: every shadow entry is locked" lines_are full etc/shadow '$2 != "*" { print $1 }' ''
        check "full: /var/www owned by www-data" entry_is full var/www dir 0755 33 33
        check "full: /srv/app/home owned by app" entry_is full srv/app/home dir 0755 1001 1001
        check "full: /srv is root-owned" entry_is full srv dir 0755 0 0
        check "full: /srv/app is root-owned" entry_is full srv/app dir 0755 0 0
        check "full: /home/custom owned by nonroot" entry_is full home/custom dir 0755 1500 1500
        check "full: replaced nonroot leaves no /home/nonroot" entry_absent full home/nonroot
        check "full: /root is root 0700" entry_is full root dir 0700 0 0
        check "full: image.user is numeric" config_is full User '"1001:1001"'

        check "plain: passwd holds the three defaults" lines_are plain etc/passwd '{ print $1 ":" $3 ":" $4 }' \
                'root:0:0 nobody:65534:65534 nonroot:65532:65532'
        check "plain: group holds the three defaults" lines_are plain etc/group '{ print $1 ":" $3 }' \
                'root:0 nobody:65534 nonroot:65532'
        check "plain: shadow entries are locked" lines_are plain etc/shadow '{ print $1 ":" $2 }' \
                'root:* nobody:* nonroot:*'
        check "plain: /home/nonroot owned by nonroot" entry_is plain home/nonroot dir 0755 65532 65532
        check "plain: no /nonexistent" entry_absent plain nonexistent
        check "plain: no image.user" config_is plain User null

        write_simple_spec bad-root '[ct-doc]' 'accounts:
  users: [{name: root, uid: 7}]'
        run_build bad-root "$SPECS/bad-root/spec.yaml"
        expect_failure bad-root 3 'root must keep uid 0'
        write_simple_spec bad-root-group '[ct-doc]' 'accounts:
  groups: [{name: root, gid: 9}]'
        run_build bad-root-group "$SPECS/bad-root-group/spec.yaml"
        expect_failure bad-root-group 3 'root must keep gid 0'
}

case_os_release() {
        section "os-release"
        check "full: usr/lib/os-release mode and owner" entry_is full usr/lib/os-release file 0644 0 0
        check "full: PRETTY_NAME wraps base-files' name" os_release_is full PRETTY_NAME \
                'Distroless ct-full (Debian GNU/Linux 77 (fakeworm))'
        check "full: ID from base-files" os_release_is full ID debian
        check "full: VERSION_ID from base-files" os_release_is full VERSION_ID 77
        check "full: /etc/os-release links to it" entry_is full etc/os-release symlink 0777 0 0 ../usr/lib/os-release

        check "plain: PRETTY_NAME from the codename" os_release_is plain PRETTY_NAME \
                'Distroless ct-plain (Debian GNU/Linux 12 (bookworm))'
        check "plain: ID=debian" os_release_is plain ID debian
        check "plain: VERSION_ID 12 for bookworm" os_release_is plain VERSION_ID 12
        check "plain: packaged /etc/os-release kept" entry_is plain etc/os-release file 0644 0 0
        check "plain: packaged /etc/os-release content kept" text_is plain etc/os-release \
                $'ID=ct-etc\nNAME="shipped by ct-etc"\n'
}

case_nsswitch() {
        section "nsswitch.conf"
        check "full: nsswitch.conf generated" entry_is full etc/nsswitch.conf file 0644 0 0
        check "full: nsswitch.conf reads files" file_has_line full etc/nsswitch.conf \
                'passwd: files' 'group: files' 'hosts: files dns'
        check "plain: packaged nsswitch.conf kept" text_is plain etc/nsswitch.conf \
                $'# shipped by ct-etc\npasswd: compat\n'
}

case_ca_bundle() {
        section "CA bundle"
        check "full: bundle mode and owner" entry_is full etc/ssl/certs/ca-certificates.crt file 0644 0 0
        check "full: bundle is the certificates in path order" \
                content_is full etc/ssl/certs/ca-certificates.crt "$EXPECT/ca-bundle.crt"
        check "full: Alpha_Root.pem link" entry_is full etc/ssl/certs/Alpha_Root.pem symlink 0777 0 0 \
                /usr/share/ca-certificates/mozilla/Alpha_Root.crt
        check "full: Beta_Root.pem link" entry_is full etc/ssl/certs/Beta_Root.pem symlink 0777 0 0 \
                /usr/share/ca-certificates/mozilla/Beta_Root.crt
        check "full: Gamma_Root.pem link" entry_is full etc/ssl/certs/Gamma_Root.pem symlink 0777 0 0 \
                /usr/share/ca-certificates/extra/Gamma_Root.crt
        check "full: first hash link goes to the first path" entry_is full \
                "etc/ssl/certs/$HASH_GAMMA.0" symlink 0777 0 0 Gamma_Root.pem
        check "full: colliding hash link gets .1" entry_is full \
                "etc/ssl/certs/$HASH_ALPHA.1" symlink 0777 0 0 Alpha_Root.pem
        check "full: Beta hash link" entry_is full "etc/ssl/certs/$HASH_BETA.0" symlink 0777 0 0 Beta_Root.pem
        check "full: no link for a non-.crt file" entry_absent full etc/ssl/certs/README.pem etc/ssl/certs/README.txt.pem
        check "full: SSL_CERT_FILE in Env" tool env-has "$DUMPS/full/config.json" \
                SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
        check "full: spec Env kept" tool env-has "$DUMPS/full/config.json" LANG=C.UTF-8
        check "plain: no bundle without ca-certificates" entry_absent plain etc/ssl/certs/ca-certificates.crt
        check "plain: no SSL_CERT_FILE without a bundle" tool env-lacks "$DUMPS/plain/config.json" SSL_CERT_FILE=

        # A spec that sets SSL_CERT_FILE itself keeps its value, and only that one.
        write_simple_spec ca-own-env '[ca-certificates]' 'image:
  env: {SSL_CERT_FILE: /etc/ssl/own.pem}'
        run_build ca-own-env "$SPECS/ca-own-env/spec.yaml"
        expect_dumped_build ca-own-env
        if [[ -f $DUMPS/ca-own-env/config.json ]]; then
                check "ca-own-env: bundle still written" entry_is ca-own-env etc/ssl/certs/ca-certificates.crt file 0644 0 0
                check "ca-own-env: spec value kept" tool env-has "$DUMPS/ca-own-env/config.json" SSL_CERT_FILE=/etc/ssl/own.pem
                check "ca-own-env: no second SSL_CERT_FILE" tool env-lacks "$DUMPS/ca-own-env/config.json" \
                        SSL_CERT_FILE=/etc/ssl/certs/
        fi
}

case_timezone() {
        section "time zone"
        check "full: /etc/localtime links to Etc/UTC" entry_is full etc/localtime symlink 0777 0 0 \
                /usr/share/zoneinfo/Etc/UTC
        check "full: /etc/timezone" entry_is full etc/timezone file 0644 0 0
        check "full: /etc/timezone says Etc/UTC" text_is full etc/timezone $'Etc/UTC\n'
        check "plain: no /etc/localtime without tzdata" entry_absent plain etc/localtime etc/timezone
}

case_php() {
        section "php configuration"
        local sapi
        check "full: fpm php.ini from php.ini-production" content_is full etc/php/8.2/fpm/php.ini \
                "$WORK/debsrc/php8.2-common/usr/lib/php/8.2/php.ini-production"
        check "full: cli php.ini from php.ini-production.cli" content_is full etc/php/8.2/cli/php.ini \
                "$WORK/debsrc/php8.2-common/usr/lib/php/8.2/php.ini-production.cli"
        check "full: fpm php.ini mode and owner" entry_is full etc/php/8.2/fpm/php.ini file 0644 0 0
        check "full: pdo.ini installed into mods-available" content_is full \
                etc/php/8.2/mods-available/pdo.ini "$WORK/debsrc/php8.2-common/usr/share/php8.2-common/common/pdo.ini"
        check "full: mysqlnd.ini installed into mods-available" content_is full \
                etc/php/8.2/mods-available/mysqlnd.ini "$WORK/debsrc/php8.2-mysql/usr/share/php8.2-mysql/mysql/mysqlnd.ini"
        check "full: pdo_mysql.ini installed into mods-available" content_is full \
                etc/php/8.2/mods-available/pdo_mysql.ini "$WORK/debsrc/php8.2-mysql/usr/share/php8.2-mysql/mysql/pdo_mysql.ini"
        check "full: mysqli.ini not installed (not enabled)" entry_absent full etc/php/8.2/mods-available/mysqli.ini

        for sapi in cli fpm; do
                check "full: $sapi enables pdo" entry_is full "etc/php/8.2/$sapi/conf.d/10-pdo.ini" \
                        symlink 0777 0 0 /etc/php/8.2/mods-available/pdo.ini
                check "full: $sapi enables mysqlnd" entry_is full "etc/php/8.2/$sapi/conf.d/10-mysqlnd.ini" \
                        symlink 0777 0 0 /etc/php/8.2/mods-available/mysqlnd.ini
                check "full: $sapi enables pdo_mysql" entry_is full "etc/php/8.2/$sapi/conf.d/20-pdo_mysql.ini" \
                        symlink 0777 0 0 /etc/php/8.2/mods-available/pdo_mysql.ini
                check "full: $sapi leaves mysqli off" entry_absent full "etc/php/8.2/$sapi/conf.d/20-mysqli.ini"
                check "full: $sapi 99-distill.ini mode" entry_is full "etc/php/8.2/$sapi/conf.d/99-distill.ini" \
                        file 0644 0 0
                check "full: $sapi 99-distill.ini settings" file_has_line full \
                        "etc/php/8.2/$sapi/conf.d/99-distill.ini" 'memory_limit = 256M' 'expose_php = Off'
        done

        check "full: info line names the module left off" stderr_line_has full \
                'php8.2-mysql: its postinst would enable' mysqli
        check "full: info line omits enabled modules" stderr_line_lacks full \
                'php8.2-mysql: its postinst would enable' pdo_mysql mysqlnd
}

case_files_source() {
        section "files: source"
        check "full: executable source file gets 0755" entry_is full usr/local/bin/tool file 0755 0 0
        check "full: tool content" content_is full usr/local/bin/tool "$SPECS/full/files/tool.sh"
        check "full: owner and group from the entry" entry_is full etc/app/app.conf file 0644 1001 33
        check "full: app.conf content" content_is full etc/app/app.conf "$SPECS/full/files/app.conf"
        check "full: mode from the entry" entry_is full etc/app/secret.conf file 0600 1001 1001
        check "full: tree root owned by www-data" entry_is full srv/app/static dir 0755 33 33
        check "full: tree subdirectory" entry_is full srv/app/static/js dir 0755 33 33
        check "full: tree file" entry_is full srv/app/static/js/app.js file 0644 33 33
        check "full: tree executable" entry_is full srv/app/static/bin/run.sh file 0755 33 33
        check "full: tree file content" content_is full srv/app/static/index.html "$SPECS/full/files/static/index.html"
        check "full: tree symlink kept" entry_is full srv/app/static/current symlink 0777 33 33 index.html

        write_simple_spec bad-source '[ct-doc]' 'files:
  - {path: /etc/missing.conf, source: files/missing.conf}'
        run_build bad-source "$SPECS/bad-source/spec.yaml"
        expect_failure bad-source 3 'files/missing.conf'
        write_simple_spec bad-both '[ct-doc]' 'files:
  - {path: /etc/x.conf, source: x.conf, content: "x\n"}'
        run_build bad-both "$SPECS/bad-both/spec.yaml"
        expect_failure bad-both 3 'spec.yaml:'
}

case_paths_filter() {
        section "paths filter"
        check "full: README dropped" entry_absent full usr/share/doc/ct-doc/README
        check "full: man page dropped" entry_absent full usr/share/man/man1/ct-doc-tool.1.gz usr/share/man/man1
        check "full: copyright kept" entry_is full usr/share/doc/ct-doc/copyright file 0644 0 0
        check "full: readme symlink kept" entry_is full usr/bin/readme symlink 0777 0 0 ../share/doc/ct-doc/README
        check "full: ct-doc md5sums list only kept files" md5sums_are full ct-doc \
                usr/bin/ct-doc-tool usr/share/doc/ct-doc/copyright
        check "full: symlink into a dropped path warned" stderr_has full \
                'warning: the symlink /usr/bin/readme -> ../share/doc/ct-doc/README points into a path that paths.exclude drops'
        check "full: that symlink is not called dangling" stderr_lacks full \
                'the symlink /usr/bin/readme -> ../share/doc/ct-doc/README points to nothing in the image'

        check "plain: README kept without a filter" entry_is plain usr/share/doc/ct-doc/README file 0644 0 0
        check "plain: man page kept without a filter" entry_is plain usr/share/man/man1/ct-doc-tool.1.gz file 0644 0 0
        check "plain: ct-doc md5sums list every file" md5sums_are plain ct-doc usr/bin/ct-doc-tool \
                usr/share/doc/ct-doc/README usr/share/doc/ct-doc/copyright usr/share/man/man1/ct-doc-tool.1.gz
        check "plain: no warning about readme" stderr_lacks plain 'symlink /usr/bin/readme'

        write_simple_spec bad-glob '[ct-doc]' 'paths:
  exclude: [usr/share/doc/*]'
        run_build bad-glob "$SPECS/bad-glob/spec.yaml"
        expect_failure bad-glob 3 'paths.exclude' 'usr/share/doc/*'
}

case_md5sums() {
        section "status.d md5sums match the layer"
        check "full: every md5sums line matches the layer" tool md5sums "$DUMPS/full"
        check "plain: every md5sums line matches the layer" tool md5sums "$DUMPS/plain"
}

case_warnings() {
        section "warnings about skipped maintainer-script work"
        check "update-alternatives for foo" stderr_has full \
                'warning: ct-alt: its postinst runs update-alternatives for /usr/bin/foo -> /usr/bin/foo.real, which the image lacks'
        check "no update-alternatives warning for a declared symlink" stderr_lacks full \
                'update-alternatives for /usr/bin/bar'
        check "accounts warning" stderr_has full 'warning: ct-alt: its maintainer scripts create accounts ('
        check "accounts warning quotes the command" stderr_line_has full 'create accounts' 'adduser'
        check "accounts warning quotes the command alone" \
                stderr_has full 'create accounts (groupadd -g 4242 ctgrp); declare'
        check "capabilities warning" stderr_has full 'warning: ct-alt: its postinst sets file capabilities ('
        check "missing directory warning" stderr_has full \
                'warning: ct-alt: its maintainer scripts create the directory /var/lib/ct-alt, which the image lacks'
        check "no warning for an existing directory" stderr_lacks full 'create the directory /usr/share/ct-alt'
        check "no warning for a declared directory" stderr_lacks full 'create the directory /var/cache/ct-declared'
        check "ld.so.conf.d path warned" stderr_has full \
                'ct-alt: /etc/ld.so.conf.d/ct-alt.conf adds the library path /usr/lib/ct-alt/private, which needs ld.so.cache'
        check "no ld.so.cache warning for a default path" stderr_lacks full 'library path /usr/lib/x86_64-linux-gnu'
        check "no ld.so.cache warning for a missing path" stderr_lacks full 'library path /opt/ct-missing/lib'
        check "dangling symlink warned" stderr_has full \
                'warning: the symlink /usr/bin/ct-dangling -> /opt/nowhere/tool points to nothing in the image'
        check "declared directory in the layer" entry_is full var/cache/ct-declared dir 0750 1001 1001
        check "declared symlink in the layer" entry_is full usr/bin/bar symlink 0777 0 0 bar.real
}

case_long_names() {
        section "long names, devices, FIFOs and duplicate entries"
        local format name
        for format in pax gnu; do
                name=ct-long-$format
                local file hard link target
                file=$(tool long-names "$name" file)
                hard=$(tool long-names "$name" hard)
                link=$(tool long-names "$name" link)
                target=$(tool long-names "$name" target)
                check "$format: fixture lengths" test "${#file}" -eq 300 -a "${#target}" -eq 200
                check "$format: 300-character file" entry_is full "$file" file 0644 0 0
                check "$format: long file content" text_is full "$file" "$format long file"$'\n'
                check "$format: 200-character symlink target" entry_is full "$link" symlink 0777 0 0 "$target"
                check "$format: long directory" entry_is full "${target#/}" dir 0755 0 0
                check "$format: 300-character hard link" hard_link_kept full "$hard" "$file"
                check "$format: md5sums list the long file" md5sums_has full "$name" "$file"
        done
        check "char device recorded" entry_is full usr/share/ct-special/null char 0666 0 0
        check "char device numbers" entry_devices full usr/share/ct-special/null 1 3
        check "block device recorded" entry_is full usr/share/ct-special/disk block 0660 0 6
        check "block device numbers" entry_devices full usr/share/ct-special/disk 8 0
        check "FIFO recorded" entry_is full usr/share/ct-special/fifo fifo 0600 0 0
        check "no device or FIFO created on disk" no_special_files "$WORK/rootfs-full"
        check "rootfs kept" test -d "$WORK/rootfs-full/usr/share/ct-special"
        check "duplicate file: later entry wins" entry_is full usr/share/ct-special/dup file 0755 0 0
        check "duplicate file: later content" text_is full usr/share/ct-special/dup $'second version\n'
        check "file then symlink: symlink wins" entry_is full usr/share/ct-special/switch symlink 0777 0 0 dup
        check "duplicate md5sums line is the later content" md5sums_are full ct-special usr/share/ct-special/dup
        check "no entry at a path twice" no_duplicate_paths full
}

# hard_link_kept DUMP PATH TARGET: PATH is a hard link to TARGET, or a regular file
# with TARGET's contents.
hard_link_kept() {
        local fields type target
        fields=$(entry_fields "$1" "$2")
        IFS=$'\t' read -r type _ _ _ _ target _ <<<"$fields"
        case $type in
        hardlink)
                if [[ $target != "$3" ]]; then
                        printf '%s links to %s, expected %s\n' "$2" "$target" "$3"
                        return 1
                fi
                ;;
        file) content_is "$1" "$2" "$DUMPS/$1/root/$3" ;;
        *)
                printf 'the layer entry %s is %q, expected a hard link to %s\n' "$2" "$fields" "$3"
                return 1
                ;;
        esac
}

# md5sums_has DUMP PACKAGE PATH: status.d/PACKAGE.md5sums lists PATH.
md5sums_has() {
        if ! sed 's/^[0-9a-f]*  //; s|^/||' "$DUMPS/$1/root/var/lib/dpkg/status.d/$2.md5sums" | grep -qxF -- "$3"; then
                printf '%s.md5sums does not list %s\n' "$2" "$3"
                cat "$DUMPS/$1/root/var/lib/dpkg/status.d/$2.md5sums"
                return 1
        fi
}

# entry_devices DUMP PATH MAJOR MINOR: PATH's device numbers.
entry_devices() {
        local got
        got=$(entry_fields "$1" "$2" | cut -f7,8 | tr '\t' ,)
        if [[ $got != "$3,$4" ]]; then
                printf '%s has device numbers %s, expected %s,%s\n' "$2" "$got" "$3" "$4"
                return 1
        fi
}

# no_special_files DIR: DIR contains no device node, FIFO or socket.
no_special_files() {
        local found
        found=$(find "$1" \( -type c -o -type b -o -type p -o -type s \) -print)
        if [[ -n $found ]]; then
                printf 'special files on disk:\n%s\n' "$found"
                return 1
        fi
}

# no_duplicate_paths DUMP: every layer path appears once.
no_duplicate_paths() {
        local dups
        dups=$(cut -f1 "$DUMPS/$1/entries.tsv" | LC_ALL=C sort | uniq -d)
        if [[ -n $dups ]]; then
                printf 'paths written more than once:\n%s\n' "$dups"
                return 1
        fi
}

case_inspect() {
        section "distill inspect"
        run_distill inspect-full -- inspect "$OUT/full/image.tar"
        check "inspect: exit status 0" exit_status inspect-full 0
        check "inspect: no sanitizer report" no_sanitizer_report inspect-full
        check "inspect: image, platform, config, layer and packages" tool inspect "$DUMPS/full" \
                "$LOGS/inspect-full.out" ct-full:latest "$FULL_DIGEST"
        check "inspect: lists every fixture package" inspect_lists_packages inspect-full \
                'base-files 12.4+ct1 amd64' 'ca-certificates 20230311 all' 'ct-alt 1.0-1 amd64' \
                'ct-doc 2.1-3 amd64' 'ct-long-gnu 1.0 amd64' 'ct-long-pax 1.0 amd64' 'ct-special 1.0 amd64' \
                'php8.2-cli 8.2.29-1~deb12u1 amd64' 'php8.2-common 8.2.29-1~deb12u1 amd64' \
                'php8.2-fpm 8.2.29-1~deb12u1 amd64' 'php8.2-mysql 8.2.29-1~deb12u1 amd64' \
                'tzdata 2024a-0+deb12u1 all'
        check "inspect: no sizes without --sizes" stdout_lacks inspect-full 'installed bytes by package'

        run_distill inspect-sizes -- inspect "$OUT/full/image.tar" --sizes
        check "inspect --sizes: exit status 0" exit_status inspect-sizes 0
        check "inspect --sizes: no sanitizer report" no_sanitizer_report inspect-sizes
        check "inspect --sizes: sums of md5sums-listed files" tool sizes "$DUMPS/full" "$LOGS/inspect-sizes.out"
        check "inspect --sizes: lists ct-alt" grep -qE '^ +[0-9]+  ct-alt$' "$LOGS/inspect-sizes.out"

        run_distill inspect-plain -- inspect "$OUT/plain/image.tar" --sizes
        check "inspect plain: exit status 0" exit_status inspect-plain 0
        check "inspect plain: sizes" tool sizes "$DUMPS/plain" "$LOGS/inspect-plain.out"
        check "inspect plain: packages" tool inspect "$DUMPS/plain" "$LOGS/inspect-plain.out" \
                ct-plain:latest "$(tool_manifest_digest plain)"

        run_distill inspect-missing -- inspect "$WORK/no-such-image.tar"
        check "inspect missing file: exit status 8" exit_status inspect-missing 8
        check "inspect missing file: no sanitizer report" no_sanitizer_report inspect-missing
}

# tool_manifest_digest LABEL: the manifest digest in index.json of run LABEL's image.
tool_manifest_digest() {
        timeout "$TOOL_TIMEOUT" tar -xOf "$OUT/$1/image.tar" index.json |
                timeout "$TOOL_TIMEOUT" python3 -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])'
}

# inspect_lists_packages LABEL LINE...: each "name version arch" LINE is a package
# line of run LABEL's inspect output.
inspect_lists_packages() {
        local label=$1 line
        shift
        for line in "$@"; do
                if ! grep -qxF -- "    $line" "$LOGS/$label.out"; then
                        printf 'inspect does not list %q. Output:\n' "$line"
                        cat "$LOGS/$label.out"
                        return 1
                fi
        done
}

stdout_lacks() {
        if grep -F -- "$2" "$LOGS/$1.out"; then
                printf 'stdout contains %q\n' "$2"
                return 1
        fi
}

case_sbom() {
        section "SBOM"
        local validator=$TOP/tests/sbom/validate.js
        if [[ ! -d $TOP/tests/sbom/node_modules ]]; then
                (cd "$TOP/tests/sbom" && timeout 600 npm ci --no-audit --no-fund) >"$LOGS/npm-ci.log" 2>&1 ||
                        printf '     npm ci failed; see below\n%s\n' "$(tail -n 20 "$LOGS/npm-ci.log")"
        fi
        check "spdx: file written" test -s "$OUT/full-sbom.spdx.json"
        check "spdx: validate.js accepts it" timeout "$TOOL_TIMEOUT" node "$validator" spdx "$OUT/full-sbom.spdx.json"
        check "spdx: names every package" sbom_names_packages spdx "$OUT/full-sbom.spdx.json"

        run_build full-cdx "$SPECS/full/spec.yaml" --sbom "$OUT/full-sbom.cdx.json" --sbom-format cyclonedx
        check "cyclonedx build: exit status 0" exit_status full-cdx 0
        check "cyclonedx build: no sanitizer report" no_sanitizer_report full-cdx
        check "cyclonedx: file written" test -s "$OUT/full-sbom.cdx.json"
        check "cyclonedx: validate.js accepts it" timeout "$TOOL_TIMEOUT" node "$validator" cyclonedx "$OUT/full-sbom.cdx.json"
        check "cyclonedx: names every package" sbom_names_packages cyclonedx "$OUT/full-sbom.cdx.json"
        check "cyclonedx: image equals the spdx build's" cmp "$OUT/full/image.tar" "$OUT/full-cdx/image.tar"
}

# sbom_names_packages FORMAT FILE: the SBOM names every package of the full image.
sbom_names_packages() {
        local names missing=() package
        names=$(tool sbom-names "$1" "$2")
        for package in base-files ca-certificates ct-alt ct-doc ct-long-gnu ct-long-pax ct-special \
                php8.2-cli php8.2-common php8.2-fpm php8.2-mysql tzdata; do
                grep -qxF "$package" <<<"$names" || missing+=("$package")
        done
        if ((${#missing[@]} > 0)); then
                printf 'the SBOM does not name: %s\nit names:\n%s\n' "${missing[*]}" "$names"
                return 1
        fi
}

case_limits() {
        section "limits.file_size"
        write_simple_spec big-1m '[ct-big]' 'limits: {file_size: 1M}'
        run_build big-1m "$SPECS/big-1m/spec.yaml"
        expect_failure big-1m 7 'usr/share/ct-big/blob' 'limits.file_size'
        write_simple_spec big-2m '[ct-big]' 'limits: {file_size: 2M}'
        run_build big-2m "$SPECS/big-2m/spec.yaml"
        expect_dumped_build big-2m
        check "big-2m: blob in the layer" entry_size big-2m usr/share/ct-big/blob "$BIG_FILE_BYTES"
        write_simple_spec big-bad '[ct-big]' 'limits: {file_size: lots}'
        run_build big-bad "$SPECS/big-bad/spec.yaml"
        expect_failure big-bad 3 'limits.file_size'
}

# entry_size DUMP PATH BYTES: PATH's size in the layer.
entry_size() {
        local got
        got=$(entry_fields "$1" "$2" | cut -f5)
        if [[ $got != "$3" ]]; then
                printf '%s has %s bytes, expected %s\n' "$2" "${got:-no entry}" "$3"
                return 1
        fi
}

case_unsigned() {
        section "unsigned sources"
        local unsigned_mirror=$UNREACHABLE=$SERVER/unsigned
        write_simple_spec unsigned '[ct-doc]' '' 'unsigned: true'
        mkdir -p "$OUT/unsigned"
        run_distill unsigned -- build "$SPECS/unsigned/spec.yaml" -o "$OUT/unsigned/image.tar" \
                --cache "$WORK/cache-unsigned" --mirror "$unsigned_mirror"
        expect_dumped_build unsigned
        check "unsigned: warning says NOT verified" stderr_has unsigned 'NOT verified'
        check "unsigned: ct-doc installed" entry_is unsigned usr/bin/ct-doc-tool file 0755 0 0

        write_simple_spec unsigned-keyring '[ct-doc]'
        mkdir -p "$OUT/unsigned-keyring"
        run_distill unsigned-keyring -- build "$SPECS/unsigned-keyring/spec.yaml" \
                -o "$OUT/unsigned-keyring/image.tar" --cache "$WORK/cache-unsigned" --mirror "$unsigned_mirror"
        expect_failure unsigned-keyring 5 'unsigned'

        write_simple_spec unsigned-both '[ct-doc]' '' "keyring: $WORK/keys/fixture.gpg
    unsigned: true"
        run_build unsigned-both "$SPECS/unsigned-both/spec.yaml"
        expect_failure unsigned-both 3 'keyring'
}

case_replay() {
        section "replay protection"
        local replay_mirror=$UNREACHABLE=$SERVER/replay spec=$SPECS/replay/spec.yaml lock
        write_simple_spec replay '[ct-doc]'
        # The lock file name is the spec's with .yaml replaced by .lock.json.
        lock=$SPECS/replay/spec.lock.json

        run_distill replay-lock -- lock "$spec" --cache "$WORK/cache-replay" --mirror "$replay_mirror"
        check "replay: first lock succeeds" exit_status replay-lock 0
        check "replay: lock written" test -s "$lock"
        local before=
        if [[ -f $lock ]]; then
                before=$(sha256sum "$lock")
        fi

        resign_replay "$REPLAY_OLDER_DATE"
        run_distill replay-older -- lock "$spec" --cache "$WORK/cache-replay" --mirror "$replay_mirror"
        check "replay: lock from an older Release exits 5" exit_status replay-older 5
        check "replay: lock message" stderr_has replay-older replaying "$REPLAY_OLDER_RFC3339" "$REPLAY_LOCKED_RFC3339"
        check "replay: refused lock leaves the lock file" lock_unchanged "$lock" "$before"
        check "replay: lock no sanitizer report" no_sanitizer_report replay-older

        mkdir -p "$OUT/replay-build"
        run_distill replay-build -- build "$spec" --no-lock -o "$OUT/replay-build/image.tar" \
                --cache "$WORK/cache-replay" --mirror "$replay_mirror"
        expect_failure replay-build 5 replaying

        # A spec change makes the lock stale, so the build resolves afresh.
        write_simple_spec replay '[ct-doc, ct-etc]'
        mkdir -p "$OUT/replay-stale"
        run_distill replay-stale -- build "$spec" -o "$OUT/replay-stale/image.tar" \
                --cache "$WORK/cache-replay" --mirror "$replay_mirror"
        expect_failure replay-stale 5 replaying
        write_simple_spec replay '[ct-doc]'

        resign_replay "$REPLAY_NEWER_DATE"
        run_distill replay-newer -- lock "$spec" --cache "$WORK/cache-replay" --mirror "$replay_mirror"
        check "replay: lock from a newer Release succeeds" exit_status replay-newer 0
        check "replay: newer lock no sanitizer report" no_sanitizer_report replay-newer
}

# lock_unchanged FILE SHA256SUM-LINE: FILE still has that checksum.
lock_unchanged() {
        if [[ -z $2 ]]; then
                printf 'no lock file was written to compare with\n'
                return 1
        fi
        if [[ $(sha256sum "$1") != "$2" ]]; then
                printf '%s changed\n' "$1"
                return 1
        fi
}

case_plain_build() {
        section "plain image: ct-doc and ct-etc, no filter, no extras"
        write_simple_spec ct-plain '[ct-doc, ct-etc]'
        run_build plain "$SPECS/ct-plain/spec.yaml"
        expect_dumped_build plain
}

# --- main -----------------------------------------------------------------------

main() {
        require_runnable "$DISTILL"
        local tool_name
        for tool_name in dpkg-deb apt-ftparchive gpg openssl python3 curl ar xz node; do
                command -v "$tool_name" >/dev/null || die "$tool_name is not installed"
        done
        setup_workdir
        write_tool "$WORK/ct_tool.py"
        build_fixtures
        prepare_expectations
        start_server

        case_full_build
        case_plain_build
        if [[ ! -f $DUMPS/full/entries.tsv || ! -f $DUMPS/plain/entries.tsv ]]; then
                check "full and plain images readable" false
        else
                case_merged_usr
                case_accounts
                case_os_release
                case_nsswitch
                case_ca_bundle
                case_timezone
                case_php
                case_files_source
                case_paths_filter
                case_md5sums
                case_warnings
                case_long_names
                case_inspect
                case_sbom
        fi
        case_limits
        case_unsigned
        case_replay

        finish_tests
}

main "$@"
