/* Sources: mirror rewriting, signed Release files and the Packages indexes they
 * vouch for. */
#ifndef DISTILL_SOURCES_H
#define DISTILL_SOURCES_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/cache.h"
#include "distill/error.h"
#include "distill/http.h"
#include "distill/resolve.h"
#include "distill/spec.h"

struct dl_mirror {
        char *from;
        char *to;
};

struct dl_mirrors {
        struct dl_mirror *v;
        size_t n;
};

/* Add one "FROM=TO" pair; DL_EUSAGE when it is malformed. */
int dl_mirrors_add(struct dl_mirrors *m, const char *pair, struct dl_error *err);
/* Add the space-separated pairs of DISTILL_MIRROR (value may be NULL). */
int dl_mirrors_add_env(struct dl_mirrors *m, const char *value, struct dl_error *err);
/* The URL to fetch for a spec URL: the first pair whose FROM is a prefix of url
 * rewrites it. Caller frees. */
char *dl_mirrors_rewrite(const struct dl_mirrors *m, const char *url);
void dl_mirrors_free(struct dl_mirrors *m);

/* One entry of a Release file's SHA256 list. */
struct dl_release_file {
        char *path;
        char *sha256;
        unsigned long long size;
};

struct dl_release {
        char *origin, *suite, *codename;
        long long date;        /* -1 when absent */
        long long valid_until; /* -1 when absent */
        bool by_hash;
        bool arch_all_in_arch_indexes; /* No-Support-for-Architecture-all: Packages */
        struct dl_strlist architectures;
        struct dl_release_file *files;
        size_t n_files;
        char inrelease_sha256[DL_SHA256_HEX]; /* digest of the file that was verified */
        int source;                           /* index of the spec source it belongs to */
        char *spec_suite;                     /* the suite as the spec names it */
};

/* Parse the signed text of a Release file. */
int dl_release_parse(const char *text, size_t len, const char *what, struct dl_release *out,
                     struct dl_error *err);
const struct dl_release_file *dl_release_find(const struct dl_release *r, const char *path);
void dl_release_free(struct dl_release *r);

struct dl_sources_options {
        const struct dl_mirrors *mirrors;
        const struct dl_http_options *http;
        struct dl_cache *cache;
        long long now; /* seconds since the epoch, for Valid-Until */
};

/* Every Packages index of one architecture, verified and decompressed. */
struct dl_sources {
        struct dl_index *indexes;
        size_t n_indexes;
        struct dl_release *releases; /* one per source and suite, in spec order */
        size_t n_releases;
        long long newest_date; /* newest Release Date seen, -1 if none */
};

/* Each index's path is its verified, still compressed copy in the cache. */
int dl_sources_load(const struct dl_spec *spec, const char *arch,
                    const struct dl_sources_options *o, struct dl_sources *out,
                    struct dl_error *err);
void dl_sources_free(struct dl_sources *s);

#endif
