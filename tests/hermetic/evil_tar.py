#!/usr/bin/env python3
"""Write an xz-compressed data.tar with entries that dpkg-deb would never produce.

Usage: evil_tar.py OUT.tar.xz ENTRY...

Each ENTRY is one of
  dir:NAME              a directory, mode 0755
  file:NAME:CONTENT     a regular file, mode 0644
  sym:NAME:TARGET       a symbolic link
  hard:NAME:TARGET      a hard link to TARGET (an archive member name)
in archive order. NAME is written as given, so "./usr/lib/evil" and
"./../../x" both reach the archive unchanged. All entries are owned by 0:0 with
mtime 0, in GNU format as dpkg-deb writes it.
"""

import io
import sys
import tarfile


def add_entry(archive, spec):
    kind, _, rest = spec.partition(":")
    info = tarfile.TarInfo()
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    data = None
    if kind == "dir":
        info.name = rest
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif kind == "file":
        info.name, _, content = rest.partition(":")
        data = content.encode()
        info.type = tarfile.REGTYPE
        info.mode = 0o644
        info.size = len(data)
    elif kind in ("sym", "hard"):
        info.name, _, info.linkname = rest.partition(":")
        info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
        info.mode = 0o777 if kind == "sym" else 0o644
    else:
        sys.exit(f"evil_tar.py: unknown entry kind {kind!r} in {spec!r}")
    archive.addfile(info, io.BytesIO(data) if data is not None else None)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with tarfile.open(sys.argv[1], "w:xz", format=tarfile.GNU_FORMAT) as archive:
        for spec in sys.argv[2:]:
            add_entry(archive, spec)


if __name__ == "__main__":
    main()
