#!/bin/bash
# Build or reuse the local partial mirror of the Debian archive that the
# benchmarks read, in build/bench-mirror (or $BENCH_MIRROR).
#
# Usage: bench/mirror.sh
#
# The mirror keeps the archive's own layout, debian/... and debian-security/...,
# so one server on 127.0.0.1 serves both archives, and a spec source URL is
# sent there with --mirror URL=http://127.0.0.1:PORT/debian. It holds, for amd64:
#   - dists/{bookworm,bookworm-updates,bookworm-security}/InRelease, Release and
#     Release.gpg, byte for byte as the upstream mirror serves them, so their
#     signatures verify with the Debian archive keyring;
#   - main/binary-amd64/Packages.xz of each suite, also under by-hash/SHA256/;
#   - the pool files of three package closures, computed by apt-get install
#     --print-uris --no-install-recommends from an empty dpkg status against
#     the mirror's own indexes:
#       a. the roots of specs/passbolt-fpm.yaml;
#       b. the larger set of bench/run.sh (bench_larger_set in bench/lib.sh);
#       c. what mmdebstrap --variant=minbase installs with the roots of (a):
#          the Essential:yes packages of bookworm, then those plus the
#          Priority:required ones, apt and the roots, with the apt patterns
#          mmdebstrap 1.3.5 uses;
#   - one other version of one package of (b), for the one-change benchmark of
#     bench/run.sh, described in bench-alternate.tsv.
#
# The upstream mirror is the one apt on this machine uses (tests/lib/apt-mirrors.sh
# reads it from apt's sources). Files already present are kept: a rerun
# downloads nothing, unless a file is missing. Delete the directory to start
# over from the upstream mirror's current state.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

arch=amd64
dest=$bench_mirror
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-mirror.XXXXXX")
trap 'rm -rf "$work"' EXIT

downloaded_files=0
downloaded_bytes=0
upstream_debian=
upstream_security=

# Read the upstream mirror from apt's sources only when a file must be
# downloaded, so a complete mirror is reused without apt's sources.
find_upstream() {
        [ -n "$upstream_debian" ] && return 0
        local pairs pair from
        # APT_CONFIG names the private configuration below, not apt's own.
        pairs=$(env -u APT_CONFIG "$bench_repo/tests/lib/apt-mirrors.sh" --pairs "$bench_spec") ||
                bench_die "apt on this machine has no Debian mirror to copy from (tests/lib/apt-mirrors.sh failed)"
        while IFS= read -r pair; do
                from=${pair%%=*}
                case /$from/ in
                */debian-security/*) upstream_security=${pair#*=} ;;
                *) upstream_debian=${pair#*=} ;;
                esac
        done <<<"$pairs"
        [ -n "$upstream_debian" ] && [ -n "$upstream_security" ] ||
                bench_die "apt's sources lack a debian or a debian-security mirror for $bench_spec"
}

# Download ARCHIVE/PATH from the upstream mirror unless the mirror has it. The
# file appears whole or not at all.
fetch() {
        local archive=$1 path=$2 target=$dest/$1/$2
        [ -f "$target" ] && return 0
        local url
        find_upstream
        case $archive in
        debian) url=$upstream_debian/$path ;;
        debian-security) url=$upstream_security/$path ;;
        *) bench_die "unknown archive $archive" ;;
        esac
        mkdir -p "$(dirname "$target")"
        if ! curl -fsS --retry 3 --proto =http,https -o "$target.part" "$url"; then
                rm -f "$target.part"
                return 1
        fi
        mv "$target.part" "$target"
        downloaded_files=$((downloaded_files + 1))
        downloaded_bytes=$((downloaded_bytes + $(stat -c %s "$target")))
}

check_sha256() {
        local file=$1 expected=$2 got
        got=$(sha256sum "$file" | cut -d' ' -f1)
        if [ "$got" != "$expected" ]; then
                rm -f "$file"
                bench_die "$file: SHA256 $got, expected $expected (removed; rerun to fetch it again)"
        fi
}

# 1. The signed Release files, verified with the archive keyring.
for entry in debian:bookworm debian:bookworm-updates debian-security:bookworm-security; do
        archive=${entry%%:*}
        suite=${entry#*:}
        dir=dists/$suite
        fetch "$archive" "$dir/InRelease" || bench_die "cannot download $archive/$dir/InRelease"
        fetch "$archive" "$dir/Release" || bench_die "cannot download $archive/$dir/Release"
        fetch "$archive" "$dir/Release.gpg" || bench_die "cannot download $archive/$dir/Release.gpg"
        gpgv --keyring "$bench_keyring" "$dest/$archive/$dir/InRelease" >"$work/gpgv.log" 2>&1 ||
                bench_die "$archive/$dir/InRelease: bad signature: $(cat "$work/gpgv.log")"
        # apt and distill read InRelease whenever it exists, so a detached
        # signature that fails is kept as served and reported, not fatal.
        if ! gpgv --keyring "$bench_keyring" "$dest/$archive/$dir/Release.gpg" "$dest/$archive/$dir/Release" \
                >"$work/gpgv.log" 2>&1; then
                bench_note "warning: $archive/$dir/Release.gpg does not verify Release as the upstream mirror serves them: $(grep -m1 'BAD\|error\|No public key' "$work/gpgv.log" || tail -n 1 "$work/gpgv.log")"
        fi

        # 2. Packages.xz, through by-hash so that it matches this InRelease even
        # when the upstream mirror has moved on since.
        index=main/binary-$arch/Packages.xz
        read -r hash size < <(awk -v p="$index" '
                /^SHA256:/ { in_sha = 1; next }
                /^[^ ]/ { in_sha = 0 }
                in_sha && $3 == p { print $1, $2; exit }
        ' "$dest/$archive/$dir/InRelease") || bench_die "$archive/$dir/InRelease lists no $index"
        by_hash=$dir/main/binary-$arch/by-hash/SHA256/$hash
        if [ ! -f "$dest/$archive/$by_hash" ]; then
                if fetch "$archive" "$by_hash"; then
                        check_sha256 "$dest/$archive/$by_hash" "$hash"
                else
                        fetch "$archive" "$dir/$index" || bench_die "cannot download $archive/$dir/$index"
                        check_sha256 "$dest/$archive/$dir/$index" "$hash"
                        ln -f "$dest/$archive/$dir/$index" "$dest/$archive/$by_hash"
                fi
        fi
        ln -f "$dest/$archive/$by_hash" "$dest/$archive/$dir/$index"
        [ "$(stat -c %s "$dest/$archive/$by_hash")" = "$size" ] ||
                bench_die "$archive/$by_hash: size differs from the $size bytes InRelease lists"
done

# 3. apt with its own configuration, reading the mirror's indexes through file:
# URIs, with an empty dpkg status and amd64 only.
mkdir -p "$work/etc/apt.conf.d" "$work/etc/preferences.d" "$work/etc/sources.list.d" \
        "$work/state/lists/partial" "$work/cache/archives/partial" "$work/log"
: >"$work/status"
cat >"$work/apt.conf" <<EOF
Dir "$work/";
Dir::State "$work/state/";
Dir::State::status "$work/status";
Dir::Cache "$work/cache/";
Dir::Etc "$work/etc/";
Dir::Etc::Parts "$work/etc/apt.conf.d/";
Dir::Etc::SourceList "$work/etc/sources.list";
Dir::Etc::SourceParts "$work/etc/sources.list.d/";
Dir::Etc::Preferences "$work/etc/preferences";
Dir::Etc::PreferencesParts "$work/etc/preferences.d/";
Dir::Log "$work/log/";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Acquire::Languages "none";
Debug::NoLocking "true";
// apt prints the MD5 sum in --print-uris for some entries without this.
Acquire::ForceHash "SHA256";
EOF
# As root, apt downloads as the _apt user, which may not read this directory.
[ "$(id -u)" = 0 ] && echo 'APT::Sandbox::User "root";' >>"$work/apt.conf"
cat >"$work/etc/sources.list" <<EOF
deb [signed-by=$bench_keyring] file:$dest/debian bookworm main
deb [signed-by=$bench_keyring] file:$dest/debian bookworm-updates main
deb [signed-by=$bench_keyring] file:$dest/debian-security bookworm-security main
EOF
export APT_CONFIG=$work/apt.conf
apt-get update -qq >"$work/update.log" 2>&1 || bench_die "apt-get update on the mirror failed: $(cat "$work/update.log")"

# Print the pool files apt would download to install PACKAGES from nothing,
# one a line: archive, path, size, SHA256, NAME=VERSION (tab-separated).
closure() {
        apt-get install -qq -y --print-uris --no-install-recommends "$@" >"$work/uris" 2>"$work/uris.err" ||
                bench_die "apt-get install --print-uris $* failed: $(cat "$work/uris.err")"
        python3 - "$dest" "$work/uris" <<'PY'
import sys
import urllib.parse

dest, uris = sys.argv[1], sys.argv[2]
found = 0
with open(uris, encoding="utf-8") as f:
    for line in f:
        # 'file:/MIRROR/debian/pool/main/b/bash/bash_5.2.15-2%2bb8_amd64.deb' bash_5.2.15-2+b8_amd64.deb 1491796 SHA256:...
        if not line.startswith("'"):
            continue
        uri, name, size, digest = line.split()
        path = urllib.parse.unquote(uri.strip("'")[len("file:"):])
        if not path.startswith(dest + "/") or not digest.startswith("SHA256:"):
            sys.exit("unexpected apt output: " + line.strip())
        archive, rel = path[len(dest) + 1:].split("/", 1)
        # apt's file name is NAME_VERSION_ARCH.deb with the epoch colon escaped.
        package, version = urllib.parse.unquote(name).split("_")[0:2]
        print("\t".join([archive, rel, size, digest[len("SHA256:"):], package + "=" + version]))
        found += 1
if not found:
    sys.exit("apt resolved no package files")
PY
}

roots_text=$(bench_spec_roots "$bench_spec") || bench_die "cannot read the packages of $bench_spec"
[ -n "$roots_text" ] || bench_die "$bench_spec lists no packages"
mapfile -t spec_roots <<<"$roots_text"
# The patterns of mmdebstrap's minbase variant (mmdebstrap 1.3.5, run_download
# and run_install): Essential:yes packages of the suite first, then the
# Priority:required ones that are not essential, plus the --include packages.
narrow="?or(?archive(^bookworm\$),?codename(^bookworm\$)),?architecture($arch)"
essential="?narrow($narrow,?essential)"
required="?narrow($narrow,?and(?priority(required),?not(?essential)))"

closure "${spec_roots[@]}" >"$work/set-a.tsv"
closure "${bench_larger_set[@]}" >"$work/set-b.tsv"
closure "$essential" >"$work/set-c1.tsv"
closure "$essential" "$required" apt "${spec_roots[@]}" >"$work/set-c2.tsv"
sort -u "$work"/set-*.tsv >"$work/all.tsv"

# 4. One other version of a package of set (b): the smallest .deb among the
# versions that differ from apt's candidate, so the one-change benchmark
# downloads little and stays about the unpacking and packing.
cut -f5 "$work/set-b.tsv" | sed 's/=.*//' | sort -u >"$work/names-b"
apt-cache show $(cat "$work/names-b") >"$work/show-b" 2>/dev/null || true
apt-cache madison $(cat "$work/names-b") >"$work/madison-b" 2>/dev/null || true
python3 - "$work/set-b.tsv" "$work/show-b" "$work/madison-b" "$dest" >"$work/alternate.tsv" <<'PY'
import sys

set_b, show, madison, dest = sys.argv[1:5]
chosen = {}
for line in open(set_b, encoding="utf-8"):
    archive, rel, size, digest, name = line.rstrip("\n").split("\t")
    chosen[name.split("=")[0]] = rel

# madison: "name | version | file:/MIRROR/ARCHIVE bookworm-security/main amd64 Packages"
suites = {}
for line in open(madison, encoding="utf-8"):
    parts = [p.strip() for p in line.split("|")]
    if len(parts) != 3 or not parts[2].endswith("Packages"):
        continue
    uri, dist = parts[2].split()[0:2]
    archive = uri.rstrip("/").split("/")[-1]
    suites.setdefault((parts[0], parts[1]), []).append((archive, dist.split("/")[0]))

best = None
for stanza in open(show, encoding="utf-8").read().split("\n\n"):
    fields = {}
    for line in stanza.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    name, filename = fields.get("Package"), fields.get("Filename")
    if name not in chosen or not filename or filename == chosen[name]:
        continue
    if fields.get("Architecture") not in ("amd64", "all"):
        continue
    where = suites.get((name, fields["Version"]))
    if not where:
        continue
    key = (int(fields["Size"]), name, fields["Version"])
    if best is None or key < best[0]:
        best = (key, name, fields["Version"], where[0][0], where[0][1], filename, fields["Size"],
                fields["SHA256"])
if best is None:
    sys.exit(0)
print("\t".join(best[1:]))
PY

# 5. Download every pool file, verified against the indexes.
while IFS=$'\t' read -r archive rel size digest _; do
        if [ -f "$dest/$archive/$rel" ] && [ "$(stat -c %s "$dest/$archive/$rel")" = "$size" ]; then
                continue
        fi
        rm -f "$dest/$archive/$rel"
        fetch "$archive" "$rel" || bench_die "cannot download $archive/$rel"
        check_sha256 "$dest/$archive/$rel" "$digest"
done < <(cat "$work/all.tsv"
        awk -F'\t' '{ print $3 "\t" $5 "\t" $6 "\t" $7 "\t-" }' "$work/alternate.tsv")

# The closures as NAME=VERSION lists, for the benchmarks and for a reader.
for set in a b c1 c2; do
        cut -f5 "$work/set-$set.tsv" | sort >"$dest/bench-set-$set.txt"
done
{
        printf '# name\tversion\tarchive\tsuite\tfilename\tsize\tsha256\n'
        cat "$work/alternate.tsv"
} >"$dest/bench-alternate.tsv"

count=$(wc -l <"$work/all.tsv")
echo "mirror: $dest"
echo "mirror: set a (spec roots) $(wc -l <"$work/set-a.tsv") packages, set b (larger set) $(wc -l <"$work/set-b.tsv"),"
echo "mirror: set c (mmdebstrap minbase + spec roots) $(sort -u "$work/set-c1.tsv" "$work/set-c2.tsv" | wc -l); $count pool files in all"
if [ -s "$work/alternate.tsv" ]; then
        IFS=$'\t' read -r name version archive suite _ <"$work/alternate.tsv"
        echo "mirror: other version for the one-change benchmark: $name $version ($suite)"
else
        echo "mirror: no package of set b has a second version in the mirror's suites"
fi
echo "mirror: downloaded $downloaded_files files, $downloaded_bytes bytes"
