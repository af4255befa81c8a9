#!/usr/bin/env python3
"""Print the packages apt would install for a spec, less its excluded packages.

Usage: apt-closure.py [--explain] [--arch ARCH] SPEC

apt-get simulates `install --no-install-recommends` of the spec's packages
against an empty dpkg status file, with the machine's apt lists. The
simulation ignores `exclude:`, so this script then walks Depends and
Pre-Depends from the spec's packages over apt's chosen set and keeps what it
reaches without passing through an excluded package. A dependency that an
excluded package (or a virtual package it provides) satisfies is satisfied,
as distill counts excluded packages as installed. For "a | b" the walk
follows the first alternative apt chose.

Prints one package name a line, sorted. --explain prints "PACKAGE <- PARENT"
instead, to show why each package is there. Exit status: 0 on success,
1 when apt-get or apt-cache fails or apt's choice leaves a dependency
unsatisfied, 2 on a usage error.

The spec is read without a YAML library (python3-yaml is not installed
everywhere): the top-level 'packages:' and 'exclude:' keys, each a [a, b]
list or '- a' lines.
"""

import os
import re
import subprocess
import sys
import tempfile


def fail(message, status=1):
    print("apt-closure.py: " + message, file=sys.stderr)
    sys.exit(status)


def read_top_level_list(lines, key):
    for i, line in enumerate(lines):
        match = re.match(re.escape(key) + r":\s*(.*)$", line)
        if not match:
            continue
        rest = re.sub(r"(^|\s)#.*$", "", match.group(1)).strip()
        if rest.startswith("["):
            return [x.strip().strip("'\"") for x in rest.strip("[]").split(",") if x.strip()]
        items = []
        for item_line in lines[i + 1:]:
            text = re.sub(r"(^|\s)#.*$", "", item_line).strip()
            if not text:
                continue
            if not item_line[0].isspace() and not item_line.startswith("-"):
                break
            item = re.match(r"-\s+(\S+)$", text)
            if not item:
                break
            items.append(item.group(1).strip("'\""))
        return items
    return []


def run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if proc.returncode != 0:
        fail("%s failed (exit %d): %s" % (" ".join(argv[:3]), proc.returncode,
                                          proc.stderr.strip()))
    return proc.stdout


def parse_stanzas(text):
    stanzas = []
    fields = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields, last = {}, None
            continue
        if line[0].isspace() and last:
            fields[last] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        last = key
        fields[key] = value.strip()
    if fields:
        stanzas.append(fields)
    return stanzas


def parse_relations(value):
    """Split "a (>= 1) | b:any, c" into [["a", "b"], ["c"]]."""
    groups = []
    for group in value.split(","):
        names = []
        for alternative in group.split("|"):
            name = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alternative).strip()
            name = name.split(":", 1)[0]
            if name:
                names.append(name)
        if names:
            groups.append(names)
    return groups


def provided_names(stanza):
    return [group[0] for group in parse_relations(stanza.get("Provides", ""))]


def main(argv):
    explain = False
    arch = "amd64"
    args = list(argv)
    spec_path = None
    while args:
        arg = args.pop(0)
        if arg == "--explain":
            explain = True
        elif arg == "--arch" and args:
            arch = args.pop(0)
        elif arg.startswith("-"):
            fail("unknown option: " + arg, 2)
        elif spec_path is None:
            spec_path = arg
        else:
            fail("more than one spec given", 2)
    if spec_path is None:
        fail("usage: apt-closure.py [--explain] [--arch ARCH] SPEC", 2)

    try:
        with open(spec_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        fail("cannot read spec %s: %s" % (spec_path, e.strerror), 2)
    roots = read_top_level_list(lines, "packages")
    excluded = set(read_top_level_list(lines, "exclude"))
    if not roots:
        fail("%s lists no packages" % spec_path, 2)

    with tempfile.TemporaryDirectory(prefix="apt-closure.") as tmp:
        status = os.path.join(tmp, "status")
        open(status, "w").close()
        simulation = run(["apt-get", "-s", "-q",
                          "-o", "Dir::State::status=" + status,
                          "-o", "APT::Architecture=" + arch,
                          "-o", "APT::Architectures::=" + arch,
                          "-o", "APT::Install-Recommends=false",
                          "-o", "APT::Install-Suggests=false",
                          "-o", "Debug::NoLocking=true",
                          "install", "--no-install-recommends"] + roots)

    # "Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []"
    chosen = {}
    for line in simulation.splitlines():
        match = re.match(r"Inst (\S+) (?:\[\S+\] )?\((\S+) ", line)
        if match:
            chosen[match.group(1).split(":", 1)[0]] = match.group(2)
    if not chosen:
        fail("apt-get -s chose no packages; output:\n" + simulation)

    stanzas = {}
    shown = run(["apt-cache", "show"] + ["%s=%s" % (name, version)
                                         for name, version in sorted(chosen.items())])
    for stanza in parse_stanzas(shown):
        name = stanza.get("Package")
        if name in chosen and name not in stanzas and stanza.get("Version") == chosen[name]:
            stanzas[name] = stanza

    providers = {}
    for name, stanza in stanzas.items():
        for virtual in [name] + provided_names(stanza):
            providers.setdefault(virtual, []).append(name)

    # Every version of an excluded package, because the spec does not say
    # which one distill counts as installed.
    satisfied_by_exclude = set(excluded)
    known = run(["apt-cache", "show"] + sorted(excluded)) if excluded else ""
    for stanza in parse_stanzas(known):
        satisfied_by_exclude.update(provided_names(stanza))

    parent = {}
    queue = []
    for root in roots:
        if root in excluded:
            fail("%s is both in packages and in exclude" % root)
        if root not in chosen:
            fail("apt did not choose the requested package %s" % root)
        parent[root] = "(spec)"
        queue.append(root)
    unsatisfied = []
    while queue:
        name = queue.pop(0)
        stanza = stanzas[name]
        relations = stanza.get("Pre-Depends", "") + "," + stanza.get("Depends", "")
        for group in parse_relations(relations):
            if any(alternative in satisfied_by_exclude for alternative in group):
                continue
            target = None
            for alternative in group:
                if alternative in providers:
                    target = providers[alternative][0]
                    break
            if target is None:
                unsatisfied.append("%s: %s" % (name, " | ".join(group)))
                continue
            if target not in parent:
                parent[target] = name
                queue.append(target)
    if unsatisfied:
        fail("apt's chosen set leaves these dependencies unsatisfied:\n  " +
             "\n  ".join(unsatisfied))

    for name in sorted(parent):
        print("%s <- %s" % (name, parent[name]) if explain else name)


if __name__ == "__main__":
    main(sys.argv[1:])
