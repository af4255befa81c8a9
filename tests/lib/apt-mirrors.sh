#!/bin/bash
# Print the `--mirror FROM=TO` arguments that send a spec's source URLs to the
# Debian mirror apt on this machine uses, one pair per line, for use as
# `distill build SPEC $(tests/lib/apt-mirrors.sh SPEC)`.
#
# Usage: tests/lib/apt-mirrors.sh [--pairs | --inrelease] [SPEC]
#   SPEC         default: specs/passbolt-fpm.yaml in this repository
#   --pairs      print FROM=TO only, the format of DISTILL_MIRROR
#   --inrelease  print the mirrored URL of each suite's InRelease, one a line
#
# FROM is each source URL exactly as the spec writes it (without a trailing
# slash). TO is the apt URI whose suites contain the first suite of that source
# and whose components contain all of the source's components, so a
# third-party repository (other suite or component names) is never chosen.
# When apt has downloaded the candidate's InRelease, its Origin must be
# Debian. Otherwise the URI's last path segment must equal the archive name in
# the spec URL (debian, debian-security), because third-party repositories
# such as a PHP backports archive also publish bookworm/main. Among the
# remaining candidates, a matching path segment wins, then apt's order.
#
# apt's sources are read from APT_ETC (default: apt-config's Dir::Etc, else
# /etc/apt): sources.list and sources.list.d/*.list in the one-line format,
# sources.list.d/*.sources in the deb822 format. Other file names (such as
# *.list.disabled) are ignored, as apt ignores them. apt's downloaded lists
# are read from APT_LISTS (default: apt-config's Dir::State::lists).
#
# Exit status: 0 with every spec source mapped; 1 when apt has no matching
# Debian mirror for some source; 2 on a usage error or an unreadable spec.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=args
spec=
for arg in "$@"; do
        case $arg in
        --pairs) mode=pairs ;;
        --inrelease) mode=inrelease ;;
        -h | --help)
                awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
                exit 0
                ;;
        -*)
                echo "apt-mirrors.sh: unknown option: $arg" >&2
                exit 2
                ;;
        *)
                if [ -n "$spec" ]; then
                        echo "apt-mirrors.sh: more than one spec given: $spec, $arg" >&2
                        exit 2
                fi
                spec=$arg
                ;;
        esac
done
spec=${spec:-$here/../../specs/passbolt-fpm.yaml}

if [ -z "${APT_ETC:-}" ]; then
        APT_ETC=/etc/apt
        if command -v apt-config >/dev/null 2>&1; then
                # apt-config prints ETC='/etc/apt/' for the d (directory) modifier.
                eval "$(apt-config shell APT_ETC Dir::Etc/d)"
        fi
fi
lists=${APT_LISTS:-}
if [ -z "$lists" ]; then
        lists=/var/lib/apt/lists
        if command -v apt-config >/dev/null 2>&1; then
                eval "$(apt-config shell lists Dir::State::lists/d)"
        fi
fi

exec python3 - "$mode" "$spec" "$APT_ETC" "$lists" <<'PY'
import glob
import os
import re
import signal
import sys

# Exit quietly when the reader of stdout goes away (as with `| head -n 1`).
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

mode, spec_path, apt_etc, lists_dir = sys.argv[1:5]


def fail(status, message):
    print("apt-mirrors.sh: " + message, file=sys.stderr)
    sys.exit(status)


def strip_comment(value):
    # YAML comments start at a '#' preceded by white space.
    return re.sub(r"(^|\s)#.*$", "", value).strip()


def unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_list(value, following):
    """Return a YAML sequence given as [a, b] on the key's line or as '- a' lines."""
    value = strip_comment(value)
    if value.startswith("["):
        inner = value.strip("[]")
        return [unquote(x) for x in inner.split(",") if x.strip()]
    if value:
        return [unquote(value)]
    items = []
    for line in following:
        text = strip_comment(line)
        if not text:
            continue
        match = re.match(r"-\s+(.*)$", text)
        if not match:
            break
        items.append(unquote(match.group(1)))
    return items


def read_spec_sources(path):
    """Read the url, suites and components of each entry of the top-level 'sources:'.

    This reads the block style the project's specs use (entries start with '- ',
    keys one a line, lists as [a, b] or '- a' lines) without a YAML library,
    because python3-yaml is not installed everywhere."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        fail(2, "cannot read spec %s: %s" % (path, e.strerror))

    start = None
    for i, line in enumerate(lines):
        if re.match(r"sources:\s*(#.*)?$", line):
            start = i + 1
            break
    if start is None:
        fail(2, "%s has no top-level 'sources:' block" % path)
    block = []
    for line in lines[start:]:
        if line.strip() and not line[0].isspace() and not line.startswith("#"):
            break
        block.append(line)

    entries = []
    for i, line in enumerate(block):
        match = re.match(r"(\s*)(-\s+)?(url|suites|components):\s*(.*)$", line)
        if not match:
            continue
        if match.group(2) or not entries:
            entries.append({})
        key = match.group(3)
        if key == "url":
            entries[-1]["url"] = unquote(strip_comment(match.group(4))).rstrip("/")
        else:
            entries[-1][key] = parse_list(match.group(4), block[i + 1:])
    sources = []
    for entry in entries:
        if "url" not in entry or not entry.get("suites"):
            fail(2, "%s: a sources entry lacks url or suites" % path)
        entry.setdefault("components", ["main"])
        sources.append(entry)
    if not sources:
        fail(2, "%s: 'sources:' has no entries" % path)
    return sources


def read_one_line_file(path):
    entries = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            # Options in brackets may contain spaces: "deb [ arch=amd64 ] URI ...".
            line = re.sub(r"\[[^\]]*\]", " ", line, count=1)
            words = line.split()
            if len(words) < 3 or words[0] != "deb":
                continue
            entries.append({"uris": [words[1]], "suites": [words[2]],
                            "components": words[3:]})
    return entries


def read_deb822_file(path):
    entries = []
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        last = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and last:
                fields[last] += " " + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                continue
            last = key.strip().lower()
            fields[last] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() in ("no", "false", "0"):
            continue
        entries.append({"uris": fields.get("uris", "").split(),
                        "suites": fields.get("suites", "").split(),
                        "components": fields.get("components", "").split()})
    return entries


def read_apt_sources(etc):
    files = []
    main_list = os.path.join(etc, "sources.list")
    if os.path.isfile(main_list):
        files.append(main_list)
    parts = os.path.join(etc, "sources.list.d")
    files += sorted(glob.glob(os.path.join(parts, "*.list")))
    files += sorted(glob.glob(os.path.join(parts, "*.sources")))
    entries = []
    for path in files:
        try:
            if path.endswith(".sources"):
                entries += read_deb822_file(path)
            else:
                entries += read_one_line_file(path)
        except OSError as e:
            print("apt-mirrors.sh: warning: cannot read %s: %s" % (path, e.strerror),
                  file=sys.stderr)
    return files, entries


def list_file_prefix(uri):
    # apt names a list file after the URI without its scheme, '/' turned to '_'.
    body = re.sub(r"^[a-z0-9+]+://", "", uri.rstrip("/"))
    return os.path.join(lists_dir, body.replace("/", "_"))


def release_origin(uri, suite):
    for name in ("InRelease", "Release"):
        path = "%s_dists_%s_%s" % (list_file_prefix(uri), suite.replace("/", "_"), name)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("Origin:"):
                        return line.split(":", 1)[1].strip()
                    if not line.strip():
                        break
        except OSError:
            continue
    return None


def choose_mirror(source, entries):
    suite = source["suites"][0]
    archive = source["url"].rstrip("/").split("/")
    # For https://host/archive/debian/20261204T000000Z the archive name is the
    # segment before the snapshot time; for a plain mirror URL it is the last one.
    if re.fullmatch(r"\d{8}T\d{6}Z", archive[-1]) and len(archive) > 1:
        archive_name = archive[-2]
    else:
        archive_name = archive[-1]
    candidates = []
    for entry in entries:
        if suite not in entry["suites"]:
            continue
        if not set(source["components"]) <= set(entry["components"]):
            continue
        for uri in entry["uris"]:
            uri = uri.rstrip("/")
            origin = release_origin(uri, suite)
            if origin is None:
                # No downloaded InRelease to ask: trust the path instead.
                if uri.split("/")[-1] == archive_name:
                    candidates.append((0, uri))
            elif origin == "Debian":
                rank = 0 if uri.split("/")[-1] == archive_name else 1
                candidates.append((rank, uri))
    if not candidates:
        return None
    # sorted() is stable, so apt's order decides between equal ranks.
    return sorted(candidates, key=lambda c: c[0])[0][1]


sources = read_spec_sources(spec_path)
files, entries = read_apt_sources(apt_etc)
missing = []
pairs = []
for source in sources:
    mirror = choose_mirror(source, entries)
    if mirror is None:
        missing.append(source)
        continue
    pairs.append((source, mirror))
if missing:
    searched = ", ".join(files) if files else "no source files under " + apt_etc
    for source in missing:
        print("apt-mirrors.sh: apt has no Debian mirror for suite %s with components %s "
              "(needed by %s); searched %s" % (source["suites"][0],
                                              " ".join(source["components"]),
                                              source["url"], searched), file=sys.stderr)
    sys.exit(1)

for source, mirror in pairs:
    if mode == "pairs":
        print("%s=%s" % (source["url"], mirror))
    elif mode == "inrelease":
        for suite in source["suites"]:
            print("%s/dists/%s/InRelease" % (mirror, suite))
    else:
        print("--mirror %s=%s" % (source["url"], mirror))
PY
