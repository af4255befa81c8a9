#!/usr/bin/env python3
"""Checks on one image tarball written by `distill build`, one subcommand per check.

First `image_check.py unpack IMAGE.tar DIR` extracts the OCI layout into DIR and
writes DIR/layer.tar (the single layer, decompressed). Every other subcommand takes
DIR and exits 0 when its check holds, or 1 with a message naming the offending value,
so that run.sh counts each call as one check.

Layer paths are written without the leading "./" or "/" and without a trailing "/".
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

TYPE_NAMES = {
    tarfile.REGTYPE: "reg",
    tarfile.AREGTYPE: "reg",
    tarfile.LNKTYPE: "lnk",
    tarfile.SYMTYPE: "sym",
    tarfile.DIRTYPE: "dir",
    tarfile.CHRTYPE: "chr",
    tarfile.BLKTYPE: "blk",
    tarfile.FIFOTYPE: "fifo",
}


class CheckFailed(Exception):
    pass


def fail(message):
    raise CheckFailed(message)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def normalize(name):
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name == "." else name


# --- the unpacked image ---------------------------------------------------------


def blob_path(root, digest):
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        fail(f"digest {digest!r} is not sha256:<64 hex digits>")
    return os.path.join(root, "blobs", "sha256", hexdigest)


def read_json(path):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        fail(f"{path} is missing")
    except json.JSONDecodeError as e:
        fail(f"{path} is not valid JSON: {e}")


class Image:
    """The OCI layout extracted by `unpack`, with its single manifest."""

    def __init__(self, directory):
        self.dir = directory
        self.root = os.path.join(directory, "image")
        self.index = read_json(os.path.join(self.root, "index.json"))
        manifests = self.index.get("manifests") or []
        if len(manifests) != 1:
            fail(f"index.json lists {len(manifests)} manifests, expected 1")
        self.descriptor = manifests[0]
        self.manifest_path = blob_path(self.root, self.descriptor["digest"])
        self.manifest = read_json(self.manifest_path)
        self.config_path = blob_path(self.root, self.manifest["config"]["digest"])
        self.config = read_json(self.config_path)
        layers = self.manifest.get("layers") or []
        if len(layers) != 1:
            fail(f"the manifest lists {len(layers)} layers, expected 1")
        self.layer_descriptor = layers[0]
        self.layer_blob = blob_path(self.root, layers[0]["digest"])
        self.layer_tar = os.path.join(directory, "layer.tar")
        self._members = None

    def members(self):
        """The layer's entries in archive order."""
        if self._members is None:
            with tarfile.open(self.layer_tar, "r:") as archive:
                self._members = archive.getmembers()
        return self._members

    def find(self, path):
        path = normalize(path)
        found = [m for m in self.members() if normalize(m.name) == path]
        if not found:
            fail(f"/{path} is not in the layer")
        if len(found) > 1:
            fail(f"/{path} appears {len(found)} times in the layer")
        return found[0]

    def read(self, path):
        """The contents of a regular file or hard link in the layer."""
        with tarfile.open(self.layer_tar, "r:") as archive:
            member = [m for m in archive.getmembers() if normalize(m.name) == normalize(path)]
            if not member:
                fail(f"/{normalize(path)} is not in the layer")
            if not (member[0].isreg() or member[0].islnk()):
                fail(f"/{normalize(path)} is a {TYPE_NAMES.get(member[0].type, member[0].type)}, not a file")
            return archive.extractfile(member[0]).read()


def extract_layout(image, root):
    """Extract the image tarball into root. An OCI layout contains only directories and
    regular files, so any other entry, an absolute name or a ".." fails the check.
    (TarFile.extractall's filter argument would do this, but Debian 12's Python 3.11.2
    predates it.)"""
    with tarfile.open(image, "r:") as archive:
        for member in archive.getmembers():
            name = normalize(member.name)
            if member.name.startswith("/") or ".." in name.split("/"):
                fail(f"{image}: unsafe entry name {member.name!r}")
            target = os.path.join(root, name)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
            elif member.isreg():
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with archive.extractfile(member) as src, open(target, "wb") as dst:
                    dst.write(src.read())
            else:
                fail(f"{image}: entry {member.name!r} is a {TYPE_NAMES.get(member.type, member.type)}; "
                     "an OCI layout contains only directories and regular files")


def cmd_unpack(args):
    root = os.path.join(args.dir, "image")
    os.makedirs(root)
    try:
        extract_layout(args.image, root)
    except (tarfile.TarError, OSError) as e:
        fail(f"cannot extract {args.image}: {e}")
    image = Image(args.dir)
    media_type = image.layer_descriptor.get("mediaType")
    if media_type != OCI_LAYER_GZIP:
        fail(f"layer mediaType is {media_type!r}, expected {OCI_LAYER_GZIP!r}")
    with gzip.open(image.layer_blob, "rb") as src, open(image.layer_tar, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    print(f"manifest {image.descriptor['digest']}, {len(image.members())} layer entries")


# --- OCI and Docker metadata ----------------------------------------------------


def check_descriptor(label, descriptor, path, media_type):
    actual = "sha256:" + sha256_file(path)
    if descriptor.get("digest") != actual:
        fail(f"{label} digest {descriptor.get('digest')} != sha256 of the blob {actual}")
    size = os.path.getsize(path)
    if descriptor.get("size") != size:
        fail(f"{label} size {descriptor.get('size')} != blob size {size}")
    if descriptor.get("mediaType") != media_type:
        fail(f"{label} mediaType {descriptor.get('mediaType')!r}, expected {media_type!r}")


def cmd_digests(args):
    image = Image(args.dir)
    layout = read_json(os.path.join(image.root, "oci-layout"))
    if layout.get("imageLayoutVersion") != "1.0.0":
        fail(f"oci-layout imageLayoutVersion is {layout.get('imageLayoutVersion')!r}")
    check_descriptor("index.json manifest", image.descriptor, image.manifest_path, OCI_MANIFEST)
    check_descriptor("manifest config", image.manifest["config"], image.config_path, OCI_CONFIG)
    check_descriptor("manifest layer", image.layer_descriptor, image.layer_blob, OCI_LAYER_GZIP)
    if image.manifest.get("schemaVersion") != 2:
        fail(f"manifest schemaVersion is {image.manifest.get('schemaVersion')!r}, expected 2")


def cmd_diff_id(args):
    image = Image(args.dir)
    diff_ids = image.config.get("rootfs", {}).get("diff_ids") or []
    expected = "sha256:" + sha256_file(image.layer_tar)
    if diff_ids != [expected]:
        fail(f"config rootfs.diff_ids is {diff_ids}, expected [{expected!r}] "
             "(sha256 of the uncompressed layer)")
    if image.config.get("rootfs", {}).get("type") != "layers":
        fail(f"config rootfs.type is {image.config.get('rootfs', {}).get('type')!r}")


def cmd_ref_name(args):
    image = Image(args.dir)
    annotations = image.descriptor.get("annotations") or {}
    if annotations.get(REF_NAME) != args.tag:
        fail(f"index.json manifest annotation {REF_NAME} is {annotations.get(REF_NAME)!r}, "
             f"expected {args.tag!r}")


def cmd_docker_manifest(args):
    image = Image(args.dir)
    entries = read_json(os.path.join(image.root, "manifest.json"))
    if not isinstance(entries, list) or len(entries) != 1:
        fail(f"manifest.json must be a list of one image, found {entries!r}")
    entry = entries[0]
    with tarfile.open(args.image, "r:") as archive:
        names = {normalize(m.name) for m in archive.getmembers() if m.isreg()}
    paths = [entry.get("Config")] + list(entry.get("Layers") or [])
    for path in paths:
        if not isinstance(path, str) or normalize(path) not in names:
            fail(f"manifest.json names {path!r}, which is not a file in {args.image}")
    if normalize(entry["Config"]) != normalize(os.path.relpath(image.config_path, image.root)):
        fail(f"manifest.json Config {entry['Config']!r} is not the OCI config blob")
    if [normalize(p) for p in entry["Layers"]] != [normalize(os.path.relpath(image.layer_blob, image.root))]:
        fail(f"manifest.json Layers {entry['Layers']!r} are not the OCI layer blob")
    if entry.get("RepoTags") != [args.tag]:
        fail(f"manifest.json RepoTags is {entry.get('RepoTags')!r}, expected [{args.tag!r}]")


def cmd_config(args):
    """The config value at the key path equals the expected JSON value (with --member:
    is a list that contains it)."""
    image = Image(args.dir)
    expected = json.loads(args.expected)
    value = image.config
    for key in args.keys:
        if not isinstance(value, dict) or key not in value:
            fail(f"config has no {'.'.join(args.keys)} (stopped at {key!r}); config: "
                 f"{json.dumps(image.config.get('config'))}")
        value = value[key]
    if args.member:
        if not isinstance(value, list) or expected not in value:
            fail(f"config {'.'.join(args.keys)} is {json.dumps(value)}, expected a list containing "
                 f"{json.dumps(expected)}")
    elif value != expected:
        fail(f"config {'.'.join(args.keys)} is {json.dumps(value)}, expected {json.dumps(expected)}")


def cmd_json_output(args):
    image = Image(args.dir)
    try:
        with open(args.json_file) as f:
            output = json.load(f)
    except json.JSONDecodeError as e:
        fail(f"--json output is not valid JSON: {e}")
    if output.get("digest") != image.descriptor["digest"]:
        fail(f"--json digest {output.get('digest')} != index.json manifest digest "
             f"{image.descriptor['digest']}")
    if output.get("size") != os.path.getsize(args.image):
        fail(f"--json size {output.get('size')} != image size {os.path.getsize(args.image)}")
    if output.get("packages") != args.packages:
        fail(f"--json packages is {output.get('packages')}, expected {args.packages}")
    if not output.get("output") or not os.path.samefile(output["output"], args.image):
        fail(f"--json output {output.get('output')!r} is not {args.image}")


# --- the layer's tar headers ----------------------------------------------------


def cmd_gzip_header(args):
    image = Image(args.dir)
    with open(image.layer_blob, "rb") as f:
        header = f.read(10)
    if header[:3] != b"\x1f\x8b\x08":
        fail(f"the layer blob does not start with a gzip deflate header: {header[:3].hex()}")
    flags = header[3]
    if flags & 0x08:
        fail("the gzip header has FNAME set, so it stores a file name")
    mtime = int.from_bytes(header[4:8], "little")
    if mtime != 0:
        fail(f"the gzip header MTIME (bytes 4-7) is {mtime}, expected 0")


def path_components(name):
    return [c.encode() for c in name.split("/")]


def cmd_sorted(args):
    """Entries sorted by path, in byte order of the whole name or component by
    component (the order of GNU tar --sort=name). Both orders are deterministic."""
    names = [normalize(m.name) for m in Image(args.dir).members()]
    if names == sorted(names, key=str.encode):
        print("order: byte order of the whole path")
        return
    if names == sorted(names, key=path_components):
        print("order: component by component")
        return
    for previous, current in zip(names, names[1:]):
        if current.encode() < previous.encode() and path_components(current) < path_components(previous):
            fail(f"/{current} comes after /{previous}")
    fail("entries are not sorted consistently by either order")


def cmd_unique(args):
    seen = set()
    for member in Image(args.dir).members():
        name = normalize(member.name)
        if name in seen:
            fail(f"/{name} appears more than once in the layer")
        seen.add(name)


def cmd_owner_names(args):
    members = Image(args.dir).members()
    for member in members:
        if member.uname or member.gname:
            fail(f"/{normalize(member.name)} has uname {member.uname!r} gname {member.gname!r}, "
                 "expected both empty")
    print(f"{len(members)} entries, all with empty uname and gname")


def cmd_mtimes(args):
    members = Image(args.dir).members()
    late = [m for m in members if m.mtime > args.max]
    if late:
        listing = ", ".join(f"/{normalize(m.name)}={m.mtime}" for m in late[:5])
        fail(f"{len(late)} entries have mtime > {args.max}: {listing}")


def cmd_entry(args):
    """One entry's type, mode, owner, link target and mtime."""
    member = Image(args.dir).find(args.path)
    label = f"/{normalize(args.path)}"
    kind = TYPE_NAMES.get(member.type, repr(member.type))
    if args.type and kind != args.type:
        fail(f"{label} is a {kind}, expected a {args.type}")
    if args.mode is not None and member.mode != int(args.mode, 8):
        fail(f"{label} has mode {member.mode:04o}, expected {args.mode}")
    if args.owner is not None and f"{member.uid}:{member.gid}" != args.owner:
        fail(f"{label} is owned by {member.uid}:{member.gid}, expected {args.owner}")
    if args.target is not None and member.linkname != args.target:
        fail(f"{label} links to {member.linkname!r}, expected {args.target!r}")
    if args.mtime is not None and member.mtime != args.mtime:
        fail(f"{label} has mtime {member.mtime}, expected {args.mtime}")


def cmd_absent(args):
    members = Image(args.dir).members()
    for path in args.paths:
        path = normalize(path)
        for member in members:
            name = normalize(member.name)
            if name == path or name.startswith(path + "/"):
                fail(f"/{name} is in the layer but must not be")


def cmd_empty_below(args):
    """PATH has no entries below it (PATH itself may exist)."""
    prefix = normalize(args.path) + "/"
    inside = [normalize(m.name) for m in Image(args.dir).members() if normalize(m.name).startswith(prefix)]
    if inside:
        fail(f"entries below /{prefix}: " + ", ".join(f"/{name}" for name in inside[:10]))


def cmd_no_name_containing(args):
    """No entry directly inside DIRECTORY whose base name contains TEXT."""
    directory = normalize(args.directory)
    for member in Image(args.dir).members():
        name = normalize(member.name)
        if os.path.dirname(name) == directory and args.text in os.path.basename(name):
            fail(f"/{name} is in the layer but must not be")


def cmd_hardlink_pair(args):
    image = Image(args.dir)
    first, second = image.find(args.first), image.find(args.second)
    kinds = sorted([TYPE_NAMES.get(first.type), TYPE_NAMES.get(second.type)])
    if kinds != ["lnk", "reg"]:
        fail(f"/{normalize(args.first)} and /{normalize(args.second)} are {kinds}, "
             "expected one regular file and one hard link")
    regular, link = (first, second) if first.isreg() else (second, first)
    if normalize(link.linkname) != normalize(regular.name):
        fail(f"hard link /{normalize(link.name)} points to {link.linkname!r}, "
             f"expected {normalize(regular.name)!r}")
    names = [normalize(m.name) for m in image.members()]
    if names.index(normalize(regular.name)) > names.index(normalize(link.name)):
        fail("the hard link comes before the file it links to")


def cmd_contains(args):
    text = Image(args.dir).read(args.path).decode(errors="replace")
    for expected in args.texts:
        if expected not in text:
            fail(f"/{normalize(args.path)} does not contain {expected!r}; it contains:\n{text}")


def cmd_lacks(args):
    text = Image(args.dir).read(args.path).decode(errors="replace")
    for unexpected in args.texts:
        if unexpected in text:
            fail(f"/{normalize(args.path)} contains {unexpected!r}; it contains:\n{text}")


def ini_pairs(text):
    """The key = value lines of an ini file (php-fpm pool syntax), whitespace trimmed."""
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith((";", "#", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        pairs.append((key.strip(), value.strip().strip('"')))
    return pairs


def cmd_ini(args):
    """Every KEY=VALUE argument is a directive of the ini file, in section [SECTION]."""
    text = Image(args.dir).read(args.path).decode(errors="replace")
    if args.section and f"[{args.section}]" not in [l.strip() for l in text.splitlines()]:
        fail(f"/{normalize(args.path)} has no [{args.section}] section; it contains:\n{text}")
    pairs = ini_pairs(text)
    for item in args.pairs:
        key, _, value = item.partition("=")
        if (key, value) not in pairs:
            fail(f"/{normalize(args.path)} lacks '{key} = {value}'; it contains:\n{text}")


def cmd_account(args):
    """The /etc/passwd or /etc/group entry NAME has the given ids, home and shell."""
    path = "etc/passwd" if args.kind == "user" else "etc/group"
    lines = Image(args.dir).read(path).decode().splitlines()
    rows = [line.split(":") for line in lines if line]
    matching = [row for row in rows if row[0] == args.name]
    if len(matching) != 1:
        fail(f"/{path} has {len(matching)} entries named {args.name!r}:\n" + "\n".join(lines))
    row = matching[0]
    width = 7 if args.kind == "user" else 4
    if len(row) != width:
        fail(f"/{path} entry {':'.join(row)!r} has {len(row)} fields, expected {width}")
    # passwd: name:password:uid:gid:gecos:home:shell; group: name:password:gid:members
    expected = {2: args.id, 3: args.gid, 5: args.home, 6: args.shell}
    for index, value in expected.items():
        if value is not None and row[index] != value:
            fail(f"/{path} entry {':'.join(row)!r} has field {index + 1} {row[index]!r}, expected {value!r}")


def cmd_group_with_id(args):
    """A group with the given gid, named one of the given names."""
    lines = Image(args.dir).read("etc/group").decode().splitlines()
    names = [line.split(":")[0] for line in lines if line.count(":") >= 2 and line.split(":")[2] == args.gid]
    if len(names) != 1 or names[0] not in args.names:
        fail(f"/etc/group has groups {names} with gid {args.gid}, expected one of {args.names}")
    print(f"gid {args.gid} is {names[0]}")


# --- /var/lib/dpkg/status.d -----------------------------------------------------


def parse_paragraph(text):
    """Fields of one deb822 paragraph, by lower-case name, continuation lines kept."""
    fields, name = {}, None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            if name is None:
                fail(f"continuation line before any field: {line!r}")
            fields[name][1].append(line.rstrip())
            continue
        key, sep, value = line.partition(":")
        if not sep:
            fail(f"line is neither a field nor a continuation: {line!r}")
        name = key.strip().lower()
        if name in fields:
            fail(f"field {key.strip()!r} appears twice")
        fields[name] = (key.strip(), [value.strip()])
    return {k: (orig, "\n".join(v)) for k, (orig, v) in fields.items()}


def deb_control(deb):
    return subprocess.run(["dpkg-deb", "-f", deb], check=True, capture_output=True, text=True).stdout


def deb_md5sums(deb):
    """The md5sums control member of DEB, or None when it has none."""
    tar_bytes = subprocess.run(["dpkg-deb", "--ctrl-tarfile", deb], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
        for member in archive.getmembers():
            if normalize(member.name) == "md5sums":
                return archive.extractfile(member).read()
    return None


def cmd_status(args):
    image = Image(args.dir)
    path = f"var/lib/dpkg/status.d/{args.package}"
    status = parse_paragraph(image.read(path).decode())
    control = parse_paragraph(deb_control(args.deb))
    for key, (name, value) in control.items():
        if key not in status:
            fail(f"/{path} lacks the {name} field of {os.path.basename(args.deb)}")
        if status[key][1] != value:
            fail(f"/{path} {name} is {status[key][1]!r}, the .deb has {value!r}")
    if status.get("status", (None, None))[1] != "install ok installed":
        fail(f"/{path} Status is {status.get('status', (None, None))[1]!r}, expected 'install ok installed'")


def cmd_md5sums(args):
    image = Image(args.dir)
    path = f"var/lib/dpkg/status.d/{args.package}.md5sums"
    expected = deb_md5sums(args.deb)
    if expected is None:
        # The .deb has no md5sums, so the image must have none either.
        cmd_absent(argparse.Namespace(dir=args.dir, paths=[path]))
        return
    # The image's md5sums lists exactly the package's files that the image holds with
    # the package's contents: a file the spec replaced (such as the php-fpm pool) drops
    # out. Paths under bin/, lib/ ... live under usr/ with merged /usr.
    with tarfile.open(image.layer_tar, "r:") as archive:
        held = {}
        for member in archive.getmembers():
            if member.isreg():
                held[normalize(member.name)] = hashlib.md5(archive.extractfile(member).read()).hexdigest()
            elif member.islnk():
                held[normalize(member.name)] = held.get(normalize(member.linkname))
    kept = []
    for line in expected.decode().splitlines(keepends=True):
        digest, _, name = line.rstrip("\n").partition("  ")
        name = normalize(name)
        if held.get(name, held.get("usr/" + name)) == digest:
            kept.append(line)
    expected = "".join(kept).encode()
    actual = image.read(path)
    if actual != expected:
        fail(f"/{path} differs from the md5sums of {os.path.basename(args.deb)}, less the files the image does not hold:\n"
             f"image:\n{actual.decode(errors='replace')}\nexpected:\n{expected.decode(errors='replace')}")


def cmd_installed(args):
    """The packages with a status.d entry are exactly the given ones."""
    prefix = "var/lib/dpkg/status.d/"
    names = set()
    for member in Image(args.dir).members():
        name = normalize(member.name)
        if name.startswith(prefix) and "/" not in name[len(prefix):] and member.isfile():
            base = name[len(prefix):]
            if not base.endswith(".md5sums"):
                names.add(base)
    if names != set(args.packages):
        fail(f"status.d lists {sorted(names)}, expected {sorted(args.packages)} "
             f"(missing {sorted(set(args.packages) - names)}, unexpected {sorted(names - set(args.packages))})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, *arguments):
        p = sub.add_parser(name)
        p.set_defaults(func=func)
        for argument in arguments:
            if isinstance(argument, tuple):
                p.add_argument(argument[0], **argument[1])
            else:
                p.add_argument(argument)
        return p

    add("unpack", cmd_unpack, "image", "dir")
    add("digests", cmd_digests, "dir")
    add("diff-id", cmd_diff_id, "dir")
    add("ref-name", cmd_ref_name, "dir", "tag")
    add("docker-manifest", cmd_docker_manifest, "dir", "image", "tag")
    add("config", cmd_config, "dir", "expected", ("keys", {"nargs": "+"}),
        ("--member", {"action": "store_true"}))
    add("json-output", cmd_json_output, "dir", "json_file", "image", ("packages", {"type": int}))
    add("gzip-header", cmd_gzip_header, "dir")
    add("sorted", cmd_sorted, "dir")
    add("unique", cmd_unique, "dir")
    add("owner-names", cmd_owner_names, "dir")
    add("mtimes", cmd_mtimes, "dir", ("max", {"type": int}))
    add("entry", cmd_entry, "dir", "path", ("--type", {}), ("--mode", {}), ("--owner", {}),
        ("--target", {}), ("--mtime", {"type": int}))
    add("absent", cmd_absent, "dir", ("paths", {"nargs": "+"}))
    add("empty-below", cmd_empty_below, "dir", "path")
    add("no-name-containing", cmd_no_name_containing, "dir", "directory", "text")
    add("hardlink-pair", cmd_hardlink_pair, "dir", "first", "second")
    add("contains", cmd_contains, "dir", "path", ("texts", {"nargs": "+"}))
    add("lacks", cmd_lacks, "dir", "path", ("texts", {"nargs": "+"}))
    add("ini", cmd_ini, "dir", "path", ("--section", {}), ("pairs", {"nargs": "+"}))
    add("account", cmd_account, "dir", ("kind", {"choices": ["user", "group"]}), "name",
        ("--id", {}), ("--gid", {}), ("--home", {}), ("--shell", {}))
    add("group-with-id", cmd_group_with_id, "dir", "gid", ("names", {"nargs": "+"}))
    add("status", cmd_status, "dir", "package", "deb")
    add("md5sums", cmd_md5sums, "dir", "package", "deb")
    add("installed", cmd_installed, "dir", ("packages", {"nargs": "+"}))

    args = parser.parse_args()
    try:
        args.func(args)
    except CheckFailed as e:
        print(e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
