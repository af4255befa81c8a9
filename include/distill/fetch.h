/* Fetching the resolved .deb files into the content-addressed cache, in parallel,
 * each checked against the SHA-256 and size the signed index gives. */
#ifndef DISTILL_FETCH_H
#define DISTILL_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/cache.h"
#include "distill/error.h"
#include "distill/http.h"
#include "distill/resolve.h"
#include "distill/sources.h"
#include "distill/spec.h"

struct dl_fetch_stats {
        size_t downloaded;
        size_t cached;
        unsigned long long bytes;
};

/* Called with a package's .deb digest once the file is valid in the cache, on the
 * calling thread, while other downloads may go on. */
struct dl_fetch_notify {
        void (*ready)(void *user, const char *sha256);
        void *user;
};

/* Make every package's .deb present and valid in the cache, the largest first. With
 * offline set, download nothing and fail listing every file the cache lacks.
 * notify may be NULL. */
int dl_fetch_packages(const struct dl_spec *spec, const struct dl_mirrors *mirrors,
                      const struct dl_http_options *http, struct dl_cache *cache,
                      const struct dl_package *pkgs, size_t n, bool offline,
                      const struct dl_fetch_notify *notify, struct dl_fetch_stats *stats,
                      struct dl_error *err);

#endif
