#!/bin/bash
# Time distill against mmdebstrap and against the floor of the work, on the
# larger package set (bench_larger_set in bench/lib.sh), from the local mirror
# of bench/mirror.sh served on 127.0.0.1. `make bench` runs it.
#
# Usage: bench/run.sh
# Environment:
#   BENCH_RUNS     rounds of measurements (default 5); the table shows medians
#   BENCH_MIRROR   the mirror directory (default build/bench-mirror)
#
# Measurements, all of the same locked package set, amd64 only, taken in rounds
# in this order: cold, warm, one change, mmdebstrap, floor.
#   1. distill cold: `distill build --locked` with an empty --cache, to its gzip image;
#   2. mmdebstrap --variant=extract of the same NAME=VERSION list to a plain tar;
#   3. distill warm: the same build with the full cache and the unchanged lock;
#   4. distill one change: the lock points one package at another version in the
#      mirror (bench-alternate.tsv), whose .deb is not in the cache;
#   5. the floor: the CPU time bench/floor.c spends decompressing every data.tar
#      member, hashing the contents with SHA-256 and compressing them once with
#      the layer writer's compressor and level, divided by the number of cores.
# Before each measurement, sync(1) writes back the files the earlier ones left.
# Wall times come from /usr/bin/time (or python3's resource module where it is
# missing), as does the peak RSS of each distill run.
#
# The figures depend on the machine and on whatever else runs on it; nothing
# here isolates the benchmark from other load. Output: the table on stdout and
# as markdown in build/bench/results.md.
set -euo pipefail
# Byte order for sort, so that its lists compare equal to Python's sorted().
export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs=${BENCH_RUNS:-5}
case $runs in
'' | *[!0-9]* | 0) bench_die "BENCH_RUNS=$runs: expected a positive integer" ;;
esac
distill=$bench_repo/build/distill
out_dir=$bench_repo/build/bench
[ -x "$distill" ] || bench_die "$distill not found; run make build/distill"
for tool in mmdebstrap python3 curl cc; do
        command -v "$tool" >/dev/null || bench_die "$tool not found; install it (make deps installs most tools)"
done
cores=$(nproc)

"$bench_repo/bench/mirror.sh"
mirror=$(cd "$bench_mirror" && pwd)
mkdir -p "$out_dir"

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-run.XXXXXX")
cleanup() {
        bench_stop_server
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -x /usr/bin/time ]; then
        timer=/usr/bin/time
else
        timer=python3
        bench_note "warning: /usr/bin/time is missing (Debian package time); measuring with python3's resource.getrusage instead"
fi

# Run a command and append "WALL_S CPU_S PEAK_RSS_KB" to RESULT_FILE. The
# command's stderr goes to LOG, shown when the command fails.
measure() {
        local result=$1 log=$2
        shift 2
        # Write back what the measurements before left dirty (mmdebstrap's tar, the
        # deleted caches), so that the kernel's writeback of it does not run on the
        # cores during this one.
        sync
        if [ "$timer" = /usr/bin/time ]; then
                /usr/bin/time -f '%e %U %S %M' -o "$work/time.out" "$@" >"$log" 2>&1 ||
                        bench_die "$* failed: $(tail -n 20 "$log")"
        else
                python3 - "$work/time.out" "$@" >"$log" 2>&1 <<'PY' || bench_die "$* failed: $(tail -n 20 "$log")"
import resource
import subprocess
import sys
import time

start = time.monotonic()
status = subprocess.call(sys.argv[2:])
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    # ru_maxrss is in KiB on Linux, as /usr/bin/time's %M is.
    f.write("%.2f %.2f %.2f %d\n" % (wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss))
sys.exit(status)
PY
        fi
        awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$work/time.out" >>"$result"
}

# Median wall seconds, median CPU seconds and the largest peak RSS in MiB of a result file.
summarize() {
        local wall cpu rss
        wall=$(cut -d' ' -f1 "$1" | bench_median)
        cpu=$(cut -d' ' -f2 "$1" | bench_median)
        rss=$(cut -d' ' -f3 "$1" | sort -g | tail -n 1 | awk '{ printf "%.0f", $1 / 1024 }')
        echo "$wall $cpu $rss"
}

# Check distill's "packages: N downloaded, M from the cache" message, so that a
# cold run really starts empty and a warm one really downloads nothing. A build
# that reuses its finished layer from the cache prints no such line, which
# counts as 0.
expect_downloads() {
        local got
        got=$(sed -n 's/^distill: packages: \([0-9]*\) downloaded.*/\1/p' "$1")
        [ "${got:-0}" = "$2" ] || bench_die "$1: distill downloaded ${got:-0} packages, expected $2"
}

ratio() {
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

verdict() {
        awk -v r="$1" -v t="$2" 'BEGIN { if (r == "n/a") print "n/a"; else if (r <= t) print "met"; else print "missed" }'
}

# The larger set as a spec: passbolt-fpm.yaml's sources, accounts, directories,
# symlinks, files and image, for amd64, with no exclude, no paths filter and no
# php section, so that mmdebstrap can build the very same package set.
spec_dir=$work/spec
spec=$spec_dir/bench-larger.yaml
mkdir -p "$spec_dir"
{
        echo "# The larger package set of bench/run.sh, generated from specs/passbolt-fpm.yaml."
        echo "name: bench-larger"
        bench_yaml_block "$bench_spec" sources
        echo "architectures: [amd64]"
        echo "packages:"
        printf '  - %s\n' "${bench_larger_set[@]}"
        for key in accounts directories symlinks files image; do
                bench_yaml_block "$bench_spec" "$key"
        done
} >"$spec"

bench_start_server "$work/http.log"
mapfile -t mirror_args < <(bench_mirror_args "$spec" "$bench_port")
"$distill" lock "$spec" --cache "$work/lock-cache" -q "${mirror_args[@]}" ||
        bench_die "distill lock $spec through the local mirror failed"
lock=$spec_dir/bench-larger.lock.json

# The locked packages: NAME=VERSION for mmdebstrap, and the mirror path of each .deb.
python3 - "$lock" "$mirror" "$work/set.txt" "$work/debs.txt" <<'PY'
import json
import sys

lock, mirror, set_out, debs_out = sys.argv[1:5]
packages = json.load(open(lock, encoding="utf-8"))["architectures"]["amd64"]
with open(set_out, "w") as s, open(debs_out, "w") as d:
    s.writelines(sorted("%s=%s\n" % (p["name"], p["version"]) for p in packages))
    for p in packages:
        archive = "debian-security" if "/debian-security/" in p["source"] + "/" else "debian"
        d.write("%s/%s/%s\n" % (mirror, archive, p["filename"]))
PY
n_packages=$(wc -l <"$work/set.txt")
deb_bytes=$(xargs cat <"$work/debs.txt" | wc -c)
echo "bench: $n_packages locked packages, $deb_bytes bytes of .deb files, $cores cores, $runs runs each"
if [ "$(id -u)" != 0 ]; then
        echo "bench: not root, so mmdebstrap chooses its unshare mode, which needs unprivileged user namespaces"
fi

# The one-change lock: the same spec in another directory, with a lock whose
# entry for the package of bench-alternate.tsv names the other version.
change_dir=$work/change
mkdir -p "$change_dir"
cp "$spec" "$change_dir/"
alternate=$(grep -v '^#' "$mirror/bench-alternate.tsv" | head -n 1 || true)
change_label="n/a"
if [ -n "$alternate" ]; then
        IFS=$'\t' read -r alt_name alt_version _ <<<"$alternate"
        python3 - "$lock" "$change_dir/bench-larger.lock.json" "$alternate" <<'PY'
import json
import sys

src, dst, alternate = sys.argv[1:4]
name, version, archive, suite, filename, size, sha256 = alternate.split("\t")
lock = json.load(open(src, encoding="utf-8"))
urls = [s["url"] for s in lock["sources"]]
url = next(u for u in urls if ("/debian-security/" in u + "/") == (archive == "debian-security"))
entries = [p for p in lock["architectures"]["amd64"] if p["name"] == name]
if len(entries) != 1:
    sys.exit("the lock has %d entries for %s, expected 1" % (len(entries), name))
entries[0].update(version=version, filename=filename, size=int(size), sha256=sha256,
                  suite=suite, source=url)
with open(dst, "w", encoding="utf-8") as f:
    json.dump(lock, f, indent=2, sort_keys=True)
    f.write("\n")
PY
        locked_version=$(grep "^$alt_name=" "$work/set.txt" | cut -d= -f2-)
        change_label="$alt_name $locked_version -> $alt_version"
else
        bench_note "warning: the mirror has no second version of any package of the set; skipping the one-change measurement"
fi

# The floor compresses as the layer writer does, so it follows its level, and
# stops when the layer writer no longer uses libdeflate's gzip format.
grep -q libdeflate_gzip_compress "$bench_repo/src/layer.c" ||
        bench_die "src/layer.c no longer calls libdeflate_gzip_compress; make bench/floor.c use the layer's compressor"
level=$(sed -n 's/^#define DL_LAYER_LEVEL \([0-9]*\).*/\1/p' "$bench_repo/include/distill/layer.h")
[ -n "$level" ] || bench_die "include/distill/layer.h defines no DL_LAYER_LEVEL"
floor_bin=$out_dir/floor
cc -O2 -Wall -Wextra -DFLOOR_LEVEL="$level" -o "$floor_bin" "$bench_repo/bench/floor.c" -larchive -ldeflate -lcrypto ||
        bench_die "cannot compile bench/floor.c (it needs libarchive-dev, libdeflate-dev and libssl-dev)"

keyring=$bench_keyring
local_debian=$(bench_local_url "$bench_port" debian)
local_security=$(bench_local_url "$bench_port" debian-security)

# The measurements go in rounds, each taking every measurement once, so that a
# machine that runs faster or slower for a while moves the figures of one round
# together and the ratios less.
: >"$work/cold.res"
: >"$work/mmdebstrap.res"
: >"$work/warm.res"
: >"$work/change.res"
: >"$work/floor.cpu"
for i in $(seq "$runs"); do
        # distill cold.
        rm -rf "$work/cache" "$work/image.tar"
        measure "$work/cold.res" "$work/cold.log" \
                "$distill" build "$spec" --locked --cache "$work/cache" -o "$work/image.tar" "${mirror_args[@]}"
        expect_downloads "$work/cold.log" "$n_packages"
        image_bytes=$(stat -c %s "$work/image.tar")

        # distill warm: the cache of this round's cold run.
        rm -f "$work/image.tar"
        measure "$work/warm.res" "$work/warm.log" \
                "$distill" build "$spec" --locked --cache "$work/cache" -o "$work/image.tar" "${mirror_args[@]}"
        expect_downloads "$work/warm.log" 0

        # distill after one version change, from a copy of the warm cache, which
        # lacks that .deb and everything made from it (such as the finished layer).
        # Cache entries are written to a temporary name and renamed into place, never
        # changed, so a copy by hard links leaves the warm cache as it was.
        if [ -n "$alternate" ]; then
                rm -rf "$work/image.tar" "$work/cache-change"
                cp -al "$work/cache" "$work/cache-change"
                measure "$work/change.res" "$work/change.log" \
                        "$distill" build "$change_dir/bench-larger.yaml" --locked --cache "$work/cache-change" \
                        -o "$work/image.tar" "${mirror_args[@]}"
                expect_downloads "$work/change.log" 1
        fi

        # mmdebstrap, extracting the same NAME=VERSION list from the same mirror.
        # The extract hook lists the .deb files apt downloaded, to check the set.
        rm -f "$work/mmdebstrap.tar" "$work/mmdebstrap-debs.txt"
        measure "$work/mmdebstrap.res" "$work/mmdebstrap.log" \
                mmdebstrap --variant=extract --architectures=amd64 \
                --include="$(paste -sd, "$work/set.txt")" \
                --extract-hook="ls \"\$1/var/cache/apt/archives\" > '$work/mmdebstrap-debs.txt'" \
                bookworm "$work/mmdebstrap.tar" \
                "deb [signed-by=$keyring] $local_debian bookworm main" \
                "deb [signed-by=$keyring] $local_debian bookworm-updates main" \
                "deb [signed-by=$keyring] $local_security bookworm-security main"

        # The floor: bench/floor.c's CPU time.
        xargs "$floor_bin" <"$work/debs.txt" >"$work/floor.out" || bench_die "bench/floor.c failed"
        sed -n 's/.*cpu_seconds=\([0-9.]*\).*/\1/p' "$work/floor.out" >>"$work/floor.cpu"
        # Each round's figures, so that a drift of the machine shows.
        last() { tail -n 1 "$1" | cut -d' ' -f1; }
        echo "bench: round $i: cold $(last "$work/cold.res") s, warm $(last "$work/warm.res") s," \
                "one change $(last "$work/change.res") s, mmdebstrap $(last "$work/mmdebstrap.res") s," \
                "floor $(tail -n 1 "$work/floor.cpu") CPU s" >&2
done

mmdebstrap_bytes=$(stat -c %s "$work/mmdebstrap.tar")
python3 - "$work/mmdebstrap-debs.txt" >"$work/mmdebstrap-set.txt" <<'PY'
import sys
import urllib.parse

for line in open(sys.argv[1], encoding="utf-8"):
    name = urllib.parse.unquote(line.strip())
    if name.endswith(".deb"):
        package, version = name.split("_")[0:2]
        print("%s=%s" % (package, version))
PY
sort -o "$work/mmdebstrap-set.txt" "$work/mmdebstrap-set.txt"
if cmp -s "$work/set.txt" "$work/mmdebstrap-set.txt"; then
        same_set="yes, the same $n_packages NAME=VERSION pairs"
else
        same_set="NO: $(diff "$work/set.txt" "$work/mmdebstrap-set.txt" | grep '^[<>]' | tr '\n' ' ' || true)"
        bench_note "warning: mmdebstrap extracted another package set than the lock: $same_set"
fi
floor_cpu=$(bench_median <"$work/floor.cpu")
floor_wall=$(awk -v c="$floor_cpu" -v n="$cores" 'BEGIN { printf "%.2f", c / n }')
unpacked_bytes=$(sed -n 's/.*unpacked_bytes=\([0-9]*\).*/\1/p' "$work/floor.out")
bench_stop_server

read -r cold_wall cold_cpu cold_rss < <(summarize "$work/cold.res")
read -r mm_wall mm_cpu _ < <(summarize "$work/mmdebstrap.res")
read -r warm_wall warm_cpu warm_rss < <(summarize "$work/warm.res")
if [ -s "$work/change.res" ]; then
        read -r change_wall change_cpu change_rss < <(summarize "$work/change.res")
else
        change_wall=n/a change_cpu=n/a change_rss=n/a
fi

r_mm=$(ratio "$cold_wall" "$mm_wall")
r_floor=$(ratio "$cold_wall" "$floor_wall")
r_warm=$(ratio "$warm_wall" "$cold_wall")
r_change=$(ratio "$change_wall" "$cold_wall")
rss_max=$(printf '%s\n' "$cold_rss" "$warm_rss" "$change_rss" | grep -v n/a | sort -g | tail -n 1)

report() {
        echo "# distill benchmark"
        echo
        echo "Run by bench/run.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ): $("$distill" --version), $cores cores,"
        echo "$runs rounds, each taking every measurement once (medians; peak RSS is the largest of the runs)."
        echo "Other processes on the machine were not stopped, so the figures are indicative."
        echo
        echo "Package set: $n_packages packages for amd64 ($deb_bytes bytes of .deb files,"
        echo "$unpacked_bytes bytes of file contents), from bench/lib.sh's bench_larger_set,"
        echo "served from the local mirror on 127.0.0.1. Image: $image_bytes bytes;"
        echo "mmdebstrap tar: $mmdebstrap_bytes bytes. mmdebstrap extracted the locked set: $same_set."
        echo "Timer: $timer. mmdebstrap ran as user $(id -un). Both wrote their staging trees under"
        echo "${TMPDIR:-/tmp} (file system type $(stat -f -c %T "${TMPDIR:-/tmp}") as stat -f reports it), which affects the figures."
        echo
        echo "| measurement | wall s | CPU s | peak RSS MiB |"
        echo "| --- | ---: | ---: | ---: |"
        echo "| distill cold (empty cache, locked, gzip image) | $cold_wall | $cold_cpu | $cold_rss |"
        echo "| mmdebstrap --variant=extract (plain tar) | $mm_wall | $mm_cpu | |"
        echo "| distill warm (full cache, same lock) | $warm_wall | $warm_cpu | $warm_rss |"
        echo "| distill one change ($change_label) | $change_wall | $change_cpu | $change_rss |"
        echo "| floor: $floor_cpu CPU s / $cores cores | $floor_wall | $floor_cpu | |"
        echo
        echo "| ratio | value | target | |"
        echo "| --- | ---: | ---: | --- |"
        echo "| cold / mmdebstrap | $r_mm | <= 0.40 | $(verdict "$r_mm" 0.4) |"
        echo "| cold / floor | $r_floor | <= 1.25 | $(verdict "$r_floor" 1.25) |"
        echo "| warm / cold | $r_warm | <= 0.10 | $(verdict "$r_warm" 0.1) |"
        echo "| one change / cold | $r_change | <= 0.30 | $(verdict "$r_change" 0.3) |"
        echo "| peak RSS of distill, MiB | $rss_max | <= 128 | $(verdict "$rss_max" 128) |"
}
report | tee "$out_dir/results.md"
echo "bench: wrote $out_dir/results.md"
