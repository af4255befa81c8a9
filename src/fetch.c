#include "distill/fetch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/cleanup.h"
#include "distill/log.h"

int dl_fetch_packages(const struct dl_spec *spec, const struct dl_mirrors *mirrors,
                      const struct dl_http_options *http, struct dl_cache *cache,
                      const struct dl_package *pkgs, size_t n, bool offline,
                      struct dl_fetch_stats *stats, struct dl_error *err)
{
        size_t n_missing = 0;
        struct dl_http_job *jobs = dl_calloc(n, sizeof *jobs);
        size_t *which = dl_calloc(n, sizeof *which);
        size_t n_jobs = 0;
        int rc = DL_OK;

        memset(stats, 0, sizeof *stats);
        for (size_t i = 0; i < n; i++) {
                const struct dl_package *p = &pkgs[i];
                bool dup = false;
                for (size_t k = 0; k < i && !dup; k++)
                        dup = !strcmp(pkgs[k].sha256, p->sha256);
                if (dup)
                        continue; /* an Architecture: all package of several platforms */
                if (dl_cache_valid(cache, p->sha256)) {
                        stats->cached++;
                        continue;
                }
                if (offline) {
                        /* Each on its own line: the list can outgrow one error message. */
                        dl_log(DL_LOG_ERROR, "not in the cache: %s %s (%s, sha256 %s)", p->name,
                               p->version, p->filename, p->sha256);
                        n_missing++;
                        continue;
                }
                if (p->source < 0 || (size_t)p->source >= spec->n_sources ||
                    strstr(p->filename, "..")) {
                        rc = dl_fail(err, DL_EVERIFY,
                                     "package %s: invalid pool path %s in the index", p->name,
                                     p->filename);
                        goto out;
                }
                char *base = dl_mirrors_rewrite(mirrors, spec->sources[p->source].url);
                jobs[n_jobs].url = dl_asprintf("%s/%s", base, p->filename);
                jobs[n_jobs].path = dl_cache_tmp_path(cache);
                which[n_jobs++] = i;
                free(base);
        }
        if (n_missing) {
                rc = dl_fail(err, DL_ENETWORK,
                             "--offline: the cache %s lacks the %zu package files listed above; "
                             "run the build once without --offline",
                             cache->dir, n_missing);
                goto out;
        }
        if (n_jobs)
                dl_info("fetching %zu packages (%zu in the cache)", n_jobs, stats->cached);
        rc = n_jobs ? dl_http_get_many(http, jobs, n_jobs, err) : DL_OK;
        for (size_t j = 0; j < n_jobs; j++) {
                const struct dl_package *p = &pkgs[which[j]];
                if (rc == DL_OK) {
                        char *what =
                            dl_asprintf("package %s %s (%s)", p->name, p->version, jobs[j].url);
                        rc = dl_cache_commit(cache, jobs[j].path, p->sha256,
                                             p->size ? p->size : UINT64_MAX, what, err);
                        free(what);
                        if (rc == DL_OK) {
                                stats->downloaded++;
                                stats->bytes += p->size;
                        }
                } else {
                        unlink(jobs[j].path);
                }
        }
out:
        for (size_t j = 0; j < n_jobs; j++) {
                unlink(jobs[j].path);
                dl_cleanup_forget(jobs[j].path);
                free((char *)jobs[j].url);
                free((char *)jobs[j].path);
                free(jobs[j].error);
        }
        free(jobs);
        free(which);
        return rc;
}
