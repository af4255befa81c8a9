# Fixture .deb packages and a signed apt repository for the hermetic tests.
# Sourced by lib.sh. Every function writes only below the directories it is given.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the scripts that source this file read the FX_ settings.

FX_SUITE=fixture
FX_SNAPSHOT=20260101T000000Z
# The snapshot timestamp above in seconds since the epoch: the clamp time distill
# must use when SOURCE_DATE_EPOCH is unset.
FX_SNAPSHOT_EPOCH=1767225600
# Release Date, half a day before the snapshot, so that a build which clamps to the
# Release Date instead of the snapshot time is caught.
FX_RELEASE_DATE='Wed, 31 Dec 2025 12:00:00 UTC'
# 2030-01-01T00:00:00Z: newer than the clamp time, so distill must lower it.
FX_FUTURE_MTIME=1893456000
# 2001-01-01T00:00:00Z: older than the clamp time, so distill must keep it.
FX_OLD_MTIME=978307200

HERE_FIXTURES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# new_package DIR NAME VERSION ARCH [FIELD-LINE]...
# Start a package tree whose DEBIAN/control has the usual fields, the given extra
# lines (such as "Depends: x"), and a two-paragraph Description.
new_package() {
        local dir=$1 name=$2 version=$3 arch=$4
        shift 4
        mkdir -p "$dir/DEBIAN"
        {
                printf 'Package: %s\nVersion: %s\nArchitecture: %s\n' "$name" "$version" "$arch"
                printf 'Maintainer: Distill Hermetic Tests <hermetic@example.invalid>\n'
                printf 'Installed-Size: 1\nSection: misc\nPriority: optional\n'
                local line
                for line in "$@"; do
                        printf '%s\n' "$line"
                done
                printf 'Description: %s fixture for the distill hermetic tests\n' "$name"
                printf ' This package exists only to exercise one case of distill.\n'
                printf ' .\n It is built by tests/hermetic/fixtures.sh.\n'
        } >"$dir/DEBIAN/control"
}

# write_md5sums DIR: DEBIAN/md5sums as dh_md5sums writes it ("<md5>  <path without
# the leading slash>", sorted, conffiles left out).
write_md5sums() {
        local dir=$1
        local conffiles=/dev/null
        [[ -f $dir/DEBIAN/conffiles ]] && conffiles=$dir/DEBIAN/conffiles
        (
                cd "$dir" || exit
                find . -path ./DEBIAN -prune -o -type f -print |
                        sed 's|^\./||' |
                        { grep -vxF -f <(sed 's|^/||' "$conffiles") || true; } |
                        LC_ALL=C sort |
                        xargs -r md5sum
        ) >"$dir/DEBIAN/md5sums"
}

# finish_package DIR COMPRESSION OUT.deb [OLD-PATH]...
# Write md5sums, give every file the future mtime (OLD-PATHs, relative to DIR, the
# old one), and build OUT.deb with dpkg-deb.
finish_package() {
        local dir=$1 compression=$2 out=$3
        shift 3
        write_md5sums "$dir"
        find "$dir" -path "$dir/DEBIAN" -prune -o -exec touch -h -d "@$FX_FUTURE_MTIME" {} +
        local old
        for old in "$@"; do
                touch -h -d "@$FX_OLD_MTIME" "$dir/$old"
        done
        # dpkg-deb clamps mtimes to SOURCE_DATE_EPOCH, or to the current time when it
        # is unset. Setting it to the future mtime lets that mtime reach the .deb.
        SOURCE_DATE_EPOCH=$FX_FUTURE_MTIME timeout 120 dpkg-deb --root-owner-group -Z"$compression" \
                --build "$dir" "$out" >/dev/null
}

# marker_package SRC OUTDIR NAME VERSION ARCH COMPRESSION [FIELD-LINE]...
# A package that ships only /usr/share/NAME/marker.
marker_package() {
        local src=$1 out=$2 name=$3 version=$4 arch=$5 compression=$6
        shift 6
        local dir=$src/${name}_$version
        new_package "$dir" "$name" "$version" "$arch" "$@"
        mkdir -p "$dir/usr/share/$name"
        printf '%s %s\n' "$name" "$version" >"$dir/usr/share/$name/marker"
        finish_package "$dir" "$compression" "$out/${name}_${version}_$arch.deb"
}

build_fx_base() {
        local src=$1 out=$2
        local dir=$src/fx-base_1.0
        new_package "$dir" fx-base 1.0 amd64 'Multi-Arch: foreign'
        mkdir -p "$dir/bin" "$dir/usr/bin" "$dir/etc"
        # /bin/fxsh must land in usr/bin because the spec keeps merged_usr on.
        printf '#!/bin/sh\necho fxsh\n' >"$dir/bin/fxsh"
        chmod 0755 "$dir/bin/fxsh"
        printf 'setuid fixture\n' >"$dir/usr/bin/fx-suid"
        chmod 4755 "$dir/usr/bin/fx-suid"
        printf 'one inode, two names\n' >"$dir/usr/bin/fx-a"
        chmod 0755 "$dir/usr/bin/fx-a"
        ln "$dir/usr/bin/fx-a" "$dir/usr/bin/fx-b"
        ln -s fx-a "$dir/usr/bin/fx-link"
        printf 'answer = 42\n' >"$dir/etc/fx.conf"
        printf '/etc/fx.conf\n' >"$dir/DEBIAN/conffiles"
        finish_package "$dir" xz "$out/fx-base_1.0_amd64.deb" etc/fx.conf
}

build_fx_php() {
        local src=$1 out=$2
        local dir=$src/fx-php_1.0
        local php=$dir/etc/php/8.2
        new_package "$dir" fx-php 1.0 all
        mkdir -p "$php/mods-available" "$php/fpm/pool.d" "$php/fpm/conf.d" "$php/cli/conf.d"
        printf '; configuration for php fxext module\n; priority=25\n; Depends: fxdep\nextension=fxext.so\n' \
                >"$php/mods-available/fxext.ini"
        printf '; priority=15\nextension=fxdep.so\n' >"$php/mods-available/fxdep.ini"
        printf '; configuration for php fxother module\n; priority=20\nextension=fxother.so\n' \
                >"$php/mods-available/fxother.ini"
        printf '; placeholder pool shipped by fx-php\n[www]\nlisten = /run/php/placeholder.sock\n' \
                >"$php/fpm/pool.d/www.conf"
        printf '[global]\npid = /run/php/php8.2-fpm.pid\ninclude = /etc/php/8.2/fpm/pool.d/*.conf\n' \
                >"$php/fpm/php-fpm.conf"
        printf '; placeholder php.ini shipped by fx-php\n' >"$php/cli/php.ini"
        finish_package "$dir" gzip "$out/fx-php_1.0_all.deb"
}

# The dependency chain: fx-app needs fx-lib (>= 1.0) or fx-alt, fx-excluded (which
# the spec excludes) and, before unpacking, fx-pre. fx-rec is only recommended.
build_dependency_chain() {
        local src=$1 out=$2
        local dir=$src/fx-app_2.0
        new_package "$dir" fx-app 2.0 amd64 \
                'Pre-Depends: fx-pre' \
                'Depends: fx-lib (>= 1.0) | fx-alt, fx-excluded' \
                'Recommends: fx-rec'
        mkdir -p "$dir/usr/share/fx-app"
        printf 'fx-app 2.0\n' >"$dir/usr/share/fx-app/marker"
        finish_package "$dir" zstd "$out/fx-app_2.0_amd64.deb"

        dir=$src/fx-lib_1.2
        new_package "$dir" fx-lib 1.2 amd64
        mkdir -p "$dir/usr/lib/fx"
        printf 'fx-lib 1.2\n' >"$dir/usr/lib/fx/libfx.txt"
        finish_package "$dir" none "$out/fx-lib_1.2_amd64.deb"

        # An older fx-lib in the same index: the resolver must take 1.2.
        marker_package "$src" "$out" fx-lib 0.9 amd64 xz
        marker_package "$src" "$out" fx-alt 1.0 amd64 xz
        marker_package "$src" "$out" fx-pre 1.0 amd64 xz
        marker_package "$src" "$out" fx-excluded 1.0 amd64 xz
        marker_package "$src" "$out" fx-rec 1.0 all xz
        # Depends on a package no index has, so no closure exists.
        marker_package "$src" "$out" fx-broken 1.0 amd64 xz 'Depends: fx-missing (>= 2)'
}

# fx-clash-a and fx-clash-b ship one path with different contents; fx-clash-c ships
# it too but declares Replaces: fx-clash-a.
build_clash_packages() {
        local src=$1 out=$2 name replaces
        for name in fx-clash-a fx-clash-b fx-clash-c; do
                replaces=()
                [[ $name == fx-clash-c ]] && replaces=('Replaces: fx-clash-a')
                local dir=$src/${name}_1.0
                new_package "$dir" "$name" 1.0 amd64 "${replaces[@]}"
                mkdir -p "$dir/usr/share/fx-clash"
                printf 'shipped by %s\n' "$name" >"$dir/usr/share/fx-clash/data"
                finish_package "$dir" xz "$out/${name}_1.0_amd64.deb"
        done
}

# hand_built_deb SRC OUT.deb NAME VERSION ARCH WRITER [ARG]...
# Assemble a .deb by hand (ar members debian-binary, control.tar.xz, data.tar.xz in
# that order) for data.tar entries that dpkg-deb would not produce from a directory.
# `WRITER DATA.tar.xz ARG...` writes the data member, so WRITER must be one word: a
# program or a function. The control member has no md5sums.
hand_built_deb() {
        local src=$1 out=$2 name=$3 version=$4 arch=$5
        shift 5
        local dir=$src/hand-built-$name
        mkdir -p "$dir/control"
        new_package "$dir/control-tree" "$name" "$version" "$arch"
        mv "$dir/control-tree/DEBIAN/control" "$dir/control/control"
        printf '2.0\n' >"$dir/debian-binary"
        tar --owner=0 --group=0 --numeric-owner -C "$dir/control" -cJf "$dir/control.tar.xz" .
        local writer=$1
        shift
        "$writer" "$dir/data.tar.xz" "$@"
        (cd "$dir" && ar rcD "$out" debian-binary control.tar.xz data.tar.xz)
}

# raw_deb SRC OUT.deb NAME ENTRY...: a hand-built .deb whose data.tar contains the
# evil_tar.py ENTRYs.
raw_deb() {
        local src=$1 out=$2 name=$3
        shift 3
        hand_built_deb "$src" "$out" "$name" 1.0 amd64 "$HERE_FIXTURES/evil_tar.py" "$@"
}

# build_evil_packages SRC OUTDIR CANARY
# Packages whose data.tar tries to write outside the staging root: through a symlink
# to /tmp, through symlinks to CANARY (absolute and relative), with a ../ name, and
# through a hard link to CANARY/victim.
build_evil_packages() {
        local src=$1 out=$2 canary=$3
        local up=../../../../../../../../../../../../../../../../../../../..
        raw_deb "$src" "$out/fx-evil_1.0_amd64.deb" fx-evil \
                dir:./ dir:./usr/ dir:./usr/lib/ \
                sym:./usr/lib/evil:/tmp \
                file:./usr/lib/evil/pwned:pwned-by-fx-evil
        raw_deb "$src" "$out/fx-evil-abs_1.0_amd64.deb" fx-evil-abs \
                dir:./ dir:./usr/ dir:./usr/lib/ \
                "sym:./usr/lib/evil-abs:$canary" \
                file:./usr/lib/evil-abs/pwned:pwned-by-fx-evil-abs
        raw_deb "$src" "$out/fx-evil-rel_1.0_amd64.deb" fx-evil-rel \
                dir:./ dir:./usr/ dir:./usr/lib/ \
                "sym:./usr/lib/evil-rel:$up$canary" \
                file:./usr/lib/evil-rel/pwned:pwned-by-fx-evil-rel
        raw_deb "$src" "$out/fx-evil-dotdot_1.0_amd64.deb" fx-evil-dotdot \
                dir:./ dir:./usr/ \
                "file:./usr/$up$canary/dotdot-pwned:pwned-by-fx-evil-dotdot"
        raw_deb "$src" "$out/fx-evil-hardlink_1.0_amd64.deb" fx-evil-hardlink \
                dir:./ dir:./usr/ dir:./usr/lib/ \
                "hard:./usr/lib/evil-hl:$up$canary/victim" \
                file:./usr/lib/evil-hl:pwned-by-fx-evil-hardlink
}

# build_fixture_packages SRC OUTDIR CANARY: every fixture .deb into OUTDIR.
build_fixture_packages() {
        local src=$1 out=$2 canary=$3
        mkdir -p "$src" "$out"
        build_fx_base "$src" "$out"
        build_fx_php "$src" "$out"
        build_dependency_chain "$src" "$out"
        build_clash_packages "$src" "$out"
        build_evil_packages "$src" "$out" "$canary"
}

# make_signing_key GNUPGHOME NAME KEYRING: a passphrase-less ed25519 key whose
# public part is exported to KEYRING (binary, as Signed-By wants it). Prints the
# fingerprint, or fails when gpg created no key.
make_signing_key() {
        local home=$1 name=$2 keyring=$3
        mkdir -p "$home"
        chmod 0700 "$home"
        GNUPGHOME=$home timeout 120 gpg --batch --quiet --gen-key 2>/dev/null <<EOF
%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Name-Real: $name
Name-Email: $name@example.invalid
Expire-Date: 0
%commit
EOF
        local fpr
        fpr=$(GNUPGHOME=$home timeout 120 gpg --batch --with-colons --list-keys "$name@example.invalid" 2>/dev/null |
                awk -F: '$1 == "fpr" { print $10; exit }')
        if [[ -z $fpr ]]; then
                printf 'gpg did not create the key %s\n' "$name" >&2
                return 1
        fi
        GNUPGHOME=$home timeout 120 gpg --batch --export "$fpr" >"$keyring"
        printf '%s\n' "$fpr"
}

# release_checksums RELEASE: one "FIELD DIGEST SIZE PATH" line for each file that
# the checksum fields of RELEASE (MD5Sum, SHA1, SHA256, SHA512) list.
release_checksums() {
        awk '/^[A-Za-z0-9-]+:/ { field = $1; sub(":$", "", field); next }
             /^ / && NF == 3 { print field, $1, $2, $3 }' "$1"
}

# release_sha256_lines RELEASE: the "digest size path" lines of its SHA256 field.
release_sha256_lines() {
        release_checksums "$1" | awk '$1 == "SHA256" { print $2, $3, $4 }'
}

# release_digest RELEASE PATH: the SHA256 that RELEASE lists for PATH.
release_digest() {
        release_sha256_lines "$1" | awk -v path="$2" '$3 == path { print $1 }'
}

# add_by_hash DISTDIR [FIELD]...: copy each index that DISTDIR/Release lists under
# a checksum FIELD (default: all of them) to <its directory>/by-hash/FIELD/<digest>,
# as Acquire-By-Hash clients expect.
add_by_hash() {
        local dist=$1
        shift
        local fields=" ${*:-MD5Sum SHA1 SHA256 SHA512} "
        local field digest file
        release_checksums "$dist/Release" |
                while read -r field digest _ file; do
                        [[ $fields == *" $field "* && -f $dist/$file ]] || continue
                        mkdir -p "$dist/$(dirname "$file")/by-hash/$field"
                        cp "$dist/$file" "$dist/$(dirname "$file")/by-hash/$field/$digest"
                done
}

# sign_release GNUPGHOME DISTDIR FPR...: InRelease (clearsigned by every FPR) and
# Release.gpg (detached, armored, by the first FPR) for DISTDIR/Release.
sign_release() {
        local home=$1 dist=$2
        shift 2
        local signers=() fpr
        for fpr in "$@"; do
                signers+=(--local-user "$fpr")
        done
        rm -f "$dist/InRelease" "$dist/Release.gpg"
        GNUPGHOME=$home timeout 120 gpg --batch --quiet "${signers[@]}" \
                --digest-algo SHA512 --clearsign -o "$dist/InRelease" "$dist/Release"
        GNUPGHOME=$home timeout 120 gpg --batch --quiet --local-user "$1" \
                --digest-algo SHA512 --armor --detach-sign -o "$dist/Release.gpg" "$dist/Release"
}

# ftparchive_release DISTDIR [OPTION]...: DISTDIR/Release for the indexes below
# DISTDIR, for suite and codename $FX_SUITE, dated $FX_RELEASE_DATE, with
# architecture amd64 and component main. Each OPTION (an apt-ftparchive
# configuration item NAME=VALUE) comes after those defaults, so it overrides them.
ftparchive_release() {
        local dist=$1
        shift
        local options=() option
        for option in "$@"; do
                options+=(-o "$option")
        done
        (
                cd "$dist" || exit
                timeout 120 apt-ftparchive \
                        -o APT::FTPArchive::Release::Origin=distill-hermetic \
                        -o APT::FTPArchive::Release::Label=distill-hermetic \
                        -o APT::FTPArchive::Release::Suite="$FX_SUITE" \
                        -o APT::FTPArchive::Release::Codename="$FX_SUITE" \
                        -o APT::FTPArchive::Release::Date="$FX_RELEASE_DATE" \
                        -o APT::FTPArchive::Release::Architectures=amd64 \
                        -o APT::FTPArchive::Release::Components=main \
                        -o APT::FTPArchive::Release::Description='distill hermetic fixture' \
                        "${options[@]}" \
                        release . >../Release.new
        )
        mv "$dist/../Release.new" "$dist/Release"
}

# write_release DISTDIR [OPTION]...: like ftparchive_release, with Acquire-By-Hash
# in the Release and the by-hash copies it promises.
write_release() {
        local dist=$1
        shift
        ftparchive_release "$dist" APT::FTPArchive::Release::Acquire-By-Hash=yes "$@"
        add_by_hash "$dist"
}

# compress_packages INDEXDIR: Packages.gz and Packages.xz next to Packages.
compress_packages() {
        local dir=$1
        gzip -9nc "$dir/Packages" >"$dir/Packages.gz"
        xz -9c "$dir/Packages" >"$dir/Packages.xz"
}

# add_to_pool ROOT DEB...: copy each DEB to ROOT/pool/main/<first letter>/<package>/.
add_to_pool() {
        local root=$1
        shift
        local deb name pool
        for deb in "$@"; do
                name=$(dpkg-deb -f "$deb" Package)
                pool=$root/pool/main/${name:0:1}/$name
                mkdir -p "$pool"
                cp "$deb" "$pool/"
        done
}

# write_packages INDEXDIR ROOT [APT-FTPARCHIVE-OPTION]...: INDEXDIR/Packages listing
# the .debs below ROOT/pool (with --arch ARCH, only those named *_ARCH.deb or
# *_all.deb), with Filename fields relative to ROOT.
write_packages() {
        local index=$1 root=$2
        shift 2
        mkdir -p "$index"
        (cd "$root" && timeout 120 apt-ftparchive "$@" packages pool) >"$index/Packages" 2>/dev/null
}

# build_repository ROOT DEBSDIR GNUPGHOME FPR [ARCH]...
# ROOT/pool/main/<letter>/<name>/ and ROOT/dists/$FX_SUITE/ as a signed archive with
# one main/binary-ARCH/Packages per ARCH (default amd64). Each index lists the pool
# files named *_ARCH.deb and *_all.deb (apt-ftparchive --arch), so the .deb file
# names in DEBSDIR must end in _ARCH.deb or _all.deb.
build_repository() {
        local root=$1 debs=$2 home=$3 fpr=$4
        shift 4
        (($# > 0)) || set -- amd64
        add_to_pool "$root" "$debs"/*.deb
        local dist=$root/dists/$FX_SUITE arch index
        for arch in "$@"; do
                index=$dist/main/binary-$arch
                write_packages "$index" "$root" --arch "$arch"
                compress_packages "$index"
        done
        write_release "$dist" "APT::FTPArchive::Release::Architectures=$*"
        sign_release "$home" "$dist" "$fpr"
}

# tamper_inrelease FILE: change one hex digit of the first SHA256 line of the
# InRelease FILE, so that its signature no longer verifies.
tamper_inrelease() {
        python3 - "$1" <<'PYTHON'
import re, sys
path = sys.argv[1]
text = open(path).read()
match = re.search(r"^SHA256:\n ([0-9a-f])", text, re.M)
position = match.start(1)
digit = "1" if text[position] == "0" else "0"
open(path, "w").write(text[:position] + digit + text[position + 1:])
PYTHON
}
