/* Dependency resolution with libsolv under Debian semantics: the closure of the
 * requested packages over Depends and Pre-Depends, without Recommends, with
 * alternatives preferred left to right as apt prefers them. */
#ifndef DISTILL_RESOLVE_H
#define DISTILL_RESOLVE_H

#include <stddef.h>

#include "distill/error.h"
#include "distill/util.h"

/* One decompressed Packages file and where it came from. */
struct dl_index {
        const char *path;
        int source; /* index into the spec's sources; copied into each package */
        const char *suite;
        const char *component;
        const char *release_path; /* as the Release lists it: main/binary-amd64/Packages.xz */
        const char *sha256;       /* of that file, from the signed Release */
};

struct dl_resolve_request {
        const char *arch; /* Debian architecture name, such as amd64 */
        const struct dl_index *indexes;
        size_t n_indexes;
        const struct dl_strlist *packages;
        const struct dl_strlist *exclude;
        /* Directory for libsolv's own format of parsed indexes, keyed by the index's
         * sha256; NULL parses every index anew. */
        const char *solv_cache;
};

struct dl_package {
        char *name;
        char *version;
        char *arch;     /* the package's own: amd64, all, ... */
        char *filename; /* pool path relative to the source URL */
        char *sha256;
        unsigned long long size;
        int source; /* from the dl_index it was read from */
        char *suite;
        char *why; /* "php8.2-fpm -> libxml2": the chain that pulled it in */
};

struct dl_resolution {
        struct dl_package *packages; /* sorted by name */
        size_t n_packages;
        /* "php8.2-fpm: Depends: systemd | systemd-standalone-sysusers (excluded)" */
        struct dl_strlist unmet;
};

int dl_resolve(const struct dl_resolve_request *req, struct dl_resolution *out,
               struct dl_error *err);
void dl_resolution_free(struct dl_resolution *res);

/* Compare two Debian versions as dpkg --compare-versions does: <0, 0, >0. */
int dl_version_compare(const char *a, const char *b);

#endif
