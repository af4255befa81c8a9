#!/bin/bash
# Compare distill's passbolt-fpm image with the "slim" image a user would
# otherwise build: mmdebstrap --variant=minbase plus the package roots of
# specs/passbolt-fpm.yaml without Recommends. Both come from the local mirror
# of bench/mirror.sh, for amd64. `make bench-slim` runs it.
#
# Usage: bench/slim.sh
# Environment: BENCH_MIRROR, the mirror directory (default build/bench-mirror).
#
# For each image it prints the bytes of the uncompressed layer tar and the
# bytes of that tar after `gzip -6`. distill's layer is decompressed and
# compressed again, so both use the same compressor. It also prints the number
# of packages: for distill the entries of /var/lib/dpkg/status.d, for
# mmdebstrap the installed packages in /var/lib/dpkg/status. Then it prints the
# ten largest packages of distill's image from `distill inspect --sizes`. The same table goes to build/bench/slim.md.
set -euo pipefail
export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

distill=$bench_repo/build/distill
[ -x "$distill" ] || bench_die "$distill not found; run make build/distill"
for tool in mmdebstrap python3 curl gzip tar; do
        command -v "$tool" >/dev/null || bench_die "$tool not found; install it (make deps installs most tools)"
done

"$bench_repo/bench/mirror.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-slim.XXXXXX")
cleanup() {
        bench_stop_server
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_start_server "$work/http.log"
local_debian=$(bench_local_url "$bench_port" debian)
local_security=$(bench_local_url "$bench_port" debian-security)

# distill: the spec for amd64 only, otherwise unchanged (same paths filter,
# exclude list and php section), locked and built through the local mirror.
spec=$work/spec/passbolt-fpm.yaml
mkdir -p "$work/spec"
sed 's/^architectures:.*/architectures: [amd64]/' "$bench_spec" >"$spec"
grep -qx 'architectures: \[amd64\]' "$spec" || bench_die "$bench_spec has no one-line architectures: key to replace"
mapfile -t mirror_args < <(bench_mirror_args "$spec" "$bench_port")
"$distill" lock "$spec" --cache "$work/cache" -q "${mirror_args[@]}" ||
        bench_die "distill lock $spec through the local mirror failed"
start=$(date +%s.%N)
"$distill" build "$spec" --locked --cache "$work/cache" -o "$work/distill.tar" -q "${mirror_args[@]}" ||
        bench_die "distill build $spec failed"
distill_seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

# The image's only layer, through manifest.json (the Docker archive view).
python3 - "$work/distill.tar" "$work/distill-layer.tar.gz" <<'PY'
import json
import shutil
import sys
import tarfile

image, out = sys.argv[1:3]
with tarfile.open(image) as t:
    manifest = json.load(t.extractfile("manifest.json"))
    layers = manifest[0]["Layers"]
    if len(layers) != 1:
        sys.exit("expected one layer in %s, found %d" % (image, len(layers)))
    with t.extractfile(layers[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
gzip -dc "$work/distill-layer.tar.gz" >"$work/distill-layer.tar"

# mmdebstrap: minbase plus the roots, without Recommends (mmdebstrap's default
# too, stated so that a configuration elsewhere cannot change it).
roots_text=$(bench_spec_roots "$bench_spec") || bench_die "cannot read the packages of $bench_spec"
mapfile -t roots <<<"$roots_text"
if [ "$(id -u)" = 0 ]; then
        mode_note="as root (its root mode)"
else
        mode_note="not as root: mmdebstrap chooses its unshare mode, which needs unprivileged user namespaces"
fi
start=$(date +%s.%N)
mmdebstrap --variant=minbase --architectures=amd64 \
        --include="$(IFS=,; echo "${roots[*]}")" \
        --aptopt='APT::Install-Recommends "false"' \
        bookworm "$work/slim.tar" \
        "deb [signed-by=$bench_keyring] $local_debian bookworm main" \
        "deb [signed-by=$bench_keyring] $local_debian bookworm-updates main" \
        "deb [signed-by=$bench_keyring] $local_security bookworm-security main" \
        >"$work/mmdebstrap.log" 2>&1 || bench_die "mmdebstrap failed: $(tail -n 20 "$work/mmdebstrap.log")"
slim_seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
bench_stop_server

# Packages: distill writes a status.d file per package, NAME, beside its
# NAME.md5sums, which is not counted; mmdebstrap's dpkg marks each installed
# package "install ok installed".
distill_packages=$(tar -tf "$work/distill-layer.tar" | grep -E '^(\./)?var/lib/dpkg/status\.d/[^/]+$' |
        grep -vc '\.md5sums$' || true)
slim_packages=$(tar -xOf "$work/slim.tar" ./var/lib/dpkg/status | grep -c '^Status: install ok installed$' || true)
[ "$distill_packages" -gt 0 ] || bench_die "distill's layer has no /var/lib/dpkg/status.d entries"
"$distill" inspect "$work/distill.tar" --sizes >"$work/inspect.txt" || bench_die "distill inspect --sizes failed"
inspect_packages=$(sed -n 's/^ *packages (\([0-9]*\)):$/\1/p' "$work/inspect.txt" | head -n 1)
[ "$inspect_packages" = "$distill_packages" ] ||
        bench_note "warning: status.d has $distill_packages packages, distill inspect lists ${inspect_packages:-none}"
[ "$slim_packages" -gt 0 ] || bench_die "mmdebstrap's tar has no installed packages in /var/lib/dpkg/status"

distill_tar=$(stat -c %s "$work/distill-layer.tar")
slim_tar=$(stat -c %s "$work/slim.tar")
distill_gzip=$(gzip -6 -c "$work/distill-layer.tar" | wc -c)
slim_gzip=$(gzip -6 -c "$work/slim.tar" | wc -c)

ratio() {
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}
verdict() {
        awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "met" : "missed" }'
}
r_gzip=$(ratio "$distill_gzip" "$slim_gzip")
r_packages=$(ratio "$distill_packages" "$slim_packages")

# The list follows the line "installed bytes by package (largest first):".
awk '/installed bytes by package/ { inside = 1; next } inside && NF == 2 { print } inside && NF != 2 { exit }' \
        "$work/inspect.txt" | head -n 10 >"$work/top.txt"
[ -s "$work/top.txt" ] || bench_die "distill inspect --sizes printed no bytes per package"

report() {
        echo "# distill against a slim mmdebstrap image"
        echo
        echo "Run by bench/slim.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ) with $("$distill" --version), amd64,"
        echo "from the local mirror. mmdebstrap ran $mode_note. One build each:"
        echo "distill took $distill_seconds s with an empty cache, mmdebstrap $slim_seconds s."
        echo
        echo "| image | layer tar bytes | gzip -6 bytes | packages |"
        echo "| --- | ---: | ---: | ---: |"
        echo "| distill passbolt-fpm (amd64) | $distill_tar | $distill_gzip | $distill_packages |"
        echo "| mmdebstrap minbase + roots, no Recommends | $slim_tar | $slim_gzip | $slim_packages |"
        echo
        echo "| ratio distill / slim | value | target | |"
        echo "| --- | ---: | ---: | --- |"
        echo "| gzip -6 bytes | $r_gzip | <= 0.45 | $(verdict "$r_gzip" 0.45) |"
        echo "| packages | $r_packages | <= 0.60 | $(verdict "$r_packages" 0.6) |"
        echo
        echo "The ten largest packages of distill's image (distill inspect --sizes), installed bytes:"
        echo
        echo '```'
        cat "$work/top.txt"
        echo '```'
}
mkdir -p "$bench_repo/build/bench"
report | tee "$bench_repo/build/bench/slim.md"
echo "slim: wrote $bench_repo/build/bench/slim.md"
