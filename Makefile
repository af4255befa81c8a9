# distill: build, test and install the Debian packages both need.
# `make deps` (as root) installs every package the build and the tests use.

CC      ?= cc
CFLAGS  ?= -O2 -g
PKGS    := libarchive libcurl liblzma zlib gpgme libsolv libsolvext yaml-0.1 jansson libcrypto libdeflate
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iinclude $(WARN) $(PKG_CFLAGS)

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
HDRS    := $(wildcard include/distill/*.h)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

# The normal build.
OBJ     := $(LIB_SRC:src/%.c=build/obj/%.o)
# The same code under AddressSanitizer and UndefinedBehaviorSanitizer, for the tests.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_OBJ := $(LIB_SRC:src/%.c=build/san/%.o)

DEB_PACKAGES := build-essential pkg-config git \
	libarchive-dev libcurl4-openssl-dev liblzma-dev zlib1g-dev libbz2-dev \
	libgpgme-dev libsolv-dev libsolvext-dev libyaml-dev libjansson-dev libssl-dev libcmocka-dev libdeflate-dev \
	dpkg-dev apt-utils gnupg gpgv debian-archive-keyring ca-certificates curl python3 \
	xz-utils zstd bzip2 skopeo umoci podman runc libfcgi-bin util-linux iproute2 passwd \
	mmdebstrap time lighttpd

.PHONY: all deps check unit hermetic live lock-check sbom-check image image-locked clean format

all: build/distill

build/obj/%.o: src/%.c $(HDRS) | build/obj
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -c -o $@ $<

build/san/%.o: src/%.c $(HDRS) | build/san
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

build/libdistill.a: $(OBJ)
	rm -f $@ && ar rcs $@ $^

build/libdistill-san.a: $(SAN_OBJ)
	rm -f $@ && ar rcs $@ $^

build/distill: build/obj/main.o build/libdistill.a
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

build/distill-san: build/san/main.o build/libdistill-san.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS)

build/tests/%: tests/unit/%.c tests/unit/testutil.h build/libdistill-san.a | build/tests
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -Itests/unit -o $@ $< build/libdistill-san.a $(PKG_LIBS) -lcmocka

build/obj build/san build/tests:
	mkdir -p $@

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root (it calls apt-get install)" >&2; exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEB_PACKAGES)
	@# The SBOM validator needs Node.js 20.18 or newer, which these machines ship;
	@# Debian's nodejs (18) is the fallback where none is installed.
	command -v node >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm

# Unit tests under the sanitizers; each test binary prints cmocka's summary.
unit: $(UNIT_SRC:tests/unit/%.c=build/tests/%)
	@failed=0; for t in $^; do echo "== $$t"; (cd tests/unit && ../../$$t) || failed=1; done; \
	exit $$failed

HERMETIC := tests/hermetic/run.sh tests/hermetic/sources.sh tests/hermetic/lock.sh \
	tests/hermetic/faults.sh tests/hermetic/contents.sh

hermetic: build/distill build/distill-san
	@failed=0; for t in $(HERMETIC); do $$t || failed=1; done; exit $$failed

live: build/distill
	tests/live/run.sh

# The committed locks must match their specs (offline; the live mirror drops the
# versions a lock pins once they are superseded, so builds from them are hermetic).
lock-check: build/distill
	@for s in specs/*.yaml; do build/distill lock --check $$s || exit 1; done

# The SBOM validator: the CycloneDX 1.5 schema from @cyclonedx/cyclonedx-library and
# the SPDX 2.3 rules, run on the documents the unit test writes.
SBOM_NODE := tests/sbom/node_modules/.package-lock.json
$(SBOM_NODE): tests/sbom/package.json tests/sbom/package-lock.json
	cd tests/sbom && npm ci --no-audit --no-fund

sbom-check: build/tests/test_sbom $(SBOM_NODE)
	node --test tests/sbom/validate.test.js

# Every tier, with one summary line at the end.
check: build/distill build/distill-san $(UNIT_SRC:tests/unit/%.c=build/tests/%) $(SBOM_NODE)
	tests/check.sh "$(MAKE) -s unit" "$(MAKE) -s fuzz-regress" "$(MAKE) -s sbom-check" $(HERMETIC) \
		"$(MAKE) -s lock-check" tests/live/run.sh

# Build specs/passbolt-fpm.yaml through the Debian mirror apt on this machine uses,
# resolving against the mirror's current state (image-locked uses the lock).
image: build/distill
	build/distill build specs/passbolt-fpm.yaml --no-lock -o passbolt-fpm.tar $$(tests/lib/apt-mirrors.sh)

image-locked: build/distill
	build/distill build specs/passbolt-fpm.yaml --locked -o passbolt-fpm.tar $$(tests/lib/apt-mirrors.sh)

format:
	clang-format -i src/*.c include/distill/*.h tests/unit/*.c tests/unit/*.h

clean:
	rm -rf build

include fuzz/Makefile.inc

# Benchmarks (bench/).
.PHONY: bench bench-slim

bench: build/distill
	bench/run.sh

bench-slim: build/distill
	bench/slim.sh
