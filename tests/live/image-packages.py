#!/usr/bin/env python3
"""Print the packages of an image, from its status.d or from `distill inspect`.

Usage:
  image-packages.py status DIR        "NAME VERSION ARCH" of each stanza in the
                                      status.d directory DIR (*.md5sums skipped)
  image-packages.py inspect ARCH FILE "NAME VERSION ARCH" of the "packages (N):"
                                      list of platform linux/ARCH in FILE, the
                                      output of `distill inspect IMAGE.tar`
  image-packages.py sizes ARCH FILE   "NAME" of each entry of the "installed
                                      bytes by package" list of platform
                                      linux/ARCH in FILE, the output of
                                      `distill inspect IMAGE.tar --sizes`

Output is sorted, one line a package. Exit status: 0 on success; 1 when the
input lacks the list, a list's count differs from its lines, or a sizes entry
has no byte count; 2 on a usage error.
"""

import os
import re
import sys


def fail(message, status=1):
    print("image-packages.py: " + message, file=sys.stderr)
    sys.exit(status)


def status_packages(directory):
    packages = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".md5sums"):
            continue
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            stanzas = f.read().split("\n\n")
        for stanza in stanzas:
            fields = {}
            for line in stanza.splitlines():
                match = re.match(r"([A-Za-z0-9-]+):\s*(.*)$", line)
                if match:
                    fields[match.group(1)] = match.group(2).strip()
            if not fields:
                continue
            missing = [k for k in ("Package", "Version", "Architecture") if k not in fields]
            if missing:
                fail("%s/%s: stanza lacks %s" % (directory, name, ", ".join(missing)))
            packages.append("%s %s %s" % (fields["Package"], fields["Version"],
                                          fields["Architecture"]))
    return packages


def platform_lines(path, arch):
    """Return the lines of the section "platform linux/ARCH[/VARIANT]"."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    section = None
    for line in lines:
        match = re.match(r"platform ([^/\s]+)/([^/\s]+)", line)
        if match:
            if section is not None:
                break
            if match.group(1) == "linux" and match.group(2) == arch:
                section = []
            continue
        if section is not None:
            section.append(line)
    if section is None:
        fail("%s has no section for platform linux/%s" % (path, arch))
    return section


def list_after(section, header_pattern, path):
    """Return the header's match and the four-space-indented lines after it."""
    for i, line in enumerate(section):
        match = re.fullmatch(header_pattern, line)
        if not match:
            continue
        items = []
        for item in section[i + 1:]:
            if not item.startswith("    "):
                break
            items.append(item[4:])
        return match, items
    fail("%s has no line matching %r" % (path, header_pattern))


def inspect_packages(arch, path):
    match, items = list_after(platform_lines(path, arch), r"  packages \((\d+)\):", path)
    if int(match.group(1)) != len(items):
        fail("%s: platform linux/%s announces %s packages but lists %d"
             % (path, arch, match.group(1), len(items)))
    return items


def sized_packages(arch, path):
    _, items = list_after(platform_lines(path, arch),
                          r"  installed bytes by package \(largest first\):", path)
    names = []
    for i, item in enumerate(items):
        match = re.fullmatch(r"\s*(\d+)  (\S.*)", item)
        if not match:
            fail("%s: platform linux/%s: size entry without a byte count: %r"
                 % (path, arch, item))
        name = match.group(2)
        # The list ends with the bytes of unowned files, "(files ...)", and
        # the "total" line.
        if name.startswith("(") or (name == "total" and i == len(items) - 1):
            continue
        names.append(name)
    return names


def main(argv):
    if len(argv) == 2 and argv[0] == "status":
        result = status_packages(argv[1])
    elif len(argv) == 3 and argv[0] == "inspect":
        result = inspect_packages(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "sizes":
        result = sized_packages(argv[1], argv[2])
    else:
        fail("usage: image-packages.py status DIR | inspect ARCH FILE | sizes ARCH FILE", 2)
    for line in sorted(result):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
