#include "distill/fetch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/cleanup.h"
#include "distill/log.h"

/* One download's context, for checking it into the cache as soon as it is complete. */
struct pending {
        const struct dl_package *pkg;
        struct dl_cache *cache;
        const struct dl_fetch_notify *notify;
        int rc;
        struct dl_error err;
        bool committed;
};

static void on_done(struct dl_http_job *job, void *user)
{
        struct pending *p = user;
        char *what = dl_asprintf("package %s %s (%s)", p->pkg->name, p->pkg->version, job->url);
        p->rc = dl_cache_commit(p->cache, job->path, p->pkg->sha256,
                                p->pkg->size ? p->pkg->size : UINT64_MAX, what, &p->err);
        free(what);
        p->committed = p->rc == DL_OK;
        if (p->committed && p->notify)
                p->notify->ready(p->notify->user, p->pkg->sha256);
}

/* The largest downloads start first, so that the long transfers overlap the rest. */
static const struct dl_package *sort_pkgs;
static int by_size_desc(const void *a, const void *b)
{
        size_t x = *(const size_t *)a, y = *(const size_t *)b;
        if (sort_pkgs[x].size != sort_pkgs[y].size)
                return sort_pkgs[x].size < sort_pkgs[y].size ? 1 : -1;
        return x < y ? -1 : x > y;
}

int dl_fetch_packages(const struct dl_spec *spec, const struct dl_mirrors *mirrors,
                      const struct dl_http_options *http, struct dl_cache *cache,
                      const struct dl_package *pkgs, size_t n, bool offline,
                      const struct dl_fetch_notify *notify, struct dl_fetch_stats *stats,
                      struct dl_error *err)
{
        size_t n_missing = 0;
        struct dl_http_job *jobs = dl_calloc(n, sizeof *jobs);
        struct pending *pend = dl_calloc(n, sizeof *pend);
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
                        if (notify)
                                notify->ready(notify->user, p->sha256);
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
                which[n_jobs++] = i;
        }
        if (n_missing) {
                rc = dl_fail(err, DL_ENETWORK,
                             "--offline: the cache %s lacks the %zu package files listed above; "
                             "run the build once without --offline",
                             cache->dir, n_missing);
                goto out;
        }
        sort_pkgs = pkgs;
        qsort(which, n_jobs, sizeof *which, by_size_desc);
        for (size_t j = 0; j < n_jobs; j++) {
                const struct dl_package *p = &pkgs[which[j]];
                char *base = dl_mirrors_rewrite(mirrors, spec->sources[p->source].url);
                jobs[j].url = dl_asprintf("%s/%s", base, p->filename);
                jobs[j].path = dl_cache_tmp_path(cache);
                jobs[j].on_done = on_done;
                jobs[j].user = &pend[j];
                pend[j] = (struct pending){p, cache, notify, DL_OK, {0, ""}, false};
                free(base);
        }
        if (n_jobs)
                dl_info("fetching %zu packages (%zu in the cache)", n_jobs, stats->cached);
        rc = n_jobs ? dl_http_get_many(http, jobs, n_jobs, err) : DL_OK;
        for (size_t j = 0; j < n_jobs; j++) {
                if (pend[j].committed) {
                        stats->downloaded++;
                        stats->bytes += pend[j].pkg->size;
                } else if (rc == DL_OK && pend[j].rc) {
                        rc = pend[j].rc;
                        *err = pend[j].err;
                }
        }
out:
        for (size_t j = 0; j < n_jobs; j++) {
                if (jobs[j].path) {
                        unlink(jobs[j].path);
                        dl_cleanup_forget(jobs[j].path);
                }
                free((char *)jobs[j].url);
                free((char *)jobs[j].path);
                free(jobs[j].error);
        }
        free(jobs);
        free(pend);
        free(which);
        return rc;
}
