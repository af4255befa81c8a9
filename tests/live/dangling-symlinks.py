#!/usr/bin/env python3
"""Print the symlinks of an unpacked root file system that do not resolve in it.

Usage: dangling-symlinks.py ROOTFS

Each symlink is resolved as the kernel would inside a container whose root is
ROOTFS: an absolute target starts again at ROOTFS, ".." at the root stays at
the root, and symlinks met on the way are followed (at most 40, Linux's
MAXSYMLINKS). A symlink resolves when the path it ends at exists in ROOTFS.
Prints "/PATH -> TARGET" for each one that does not, sorted. Exit status: 0
with every symlink resolving, 1 with at least one dangling symlink, 2 on a
usage error.
"""

import os
import sys

MAX_SYMLINKS = 40


def resolve(rootfs, directory, target):
    """Return the rootfs-relative path TARGET names from DIRECTORY, or None.

    DIRECTORY is a list of path components below the root. None means a
    component is missing, is not a directory where one is needed, or the
    chain of symlinks is longer than MAX_SYMLINKS.
    """
    pending = target.split("/")
    current = [] if target.startswith("/") else list(directory)
    followed = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if current:
                current.pop()
            continue
        host_path = os.path.join(rootfs, *current, part)
        if os.path.islink(host_path):
            followed += 1
            if followed > MAX_SYMLINKS:
                return None
            link = os.readlink(host_path)
            pending = link.split("/") + pending
            if link.startswith("/"):
                current = []
            continue
        if not os.path.lexists(host_path):
            return None
        if pending and any(p not in ("", ".") for p in pending) and not os.path.isdir(host_path):
            return None
        current.append(part)
    return current


def main(argv):
    if len(argv) != 1 or not os.path.isdir(argv[0]):
        print("usage: dangling-symlinks.py ROOTFS (an existing directory)", file=sys.stderr)
        return 2
    rootfs = argv[0]
    dangling = []
    for directory, dirs, files in os.walk(rootfs):
        # os.walk lists a symlink to a directory under dirs and never enters it.
        for name in dirs + files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                continue
            relative = os.path.relpath(path, rootfs)
            parent = os.path.dirname(relative).split("/") if os.path.dirname(relative) else []
            target = os.readlink(path)
            if resolve(rootfs, parent, target) is None:
                dangling.append("/%s -> %s" % (relative, target))
    for line in sorted(dangling):
        print(line)
    return 1 if dangling else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
