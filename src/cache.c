#include "distill/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/cleanup.h"
#include "distill/log.h"
#include "distill/util.h"

int dl_cache_open(struct dl_cache *c, const char *dir, struct dl_error *err)
{
        char *sub;
        int rc;

        memset(c, 0, sizeof *c);
        if (dir) {
                c->dir = dl_strdup(dir);
        } else {
                const char *xdg = getenv("XDG_CACHE_HOME");
                const char *home = getenv("HOME");
                if (xdg && xdg[0] == '/')
                        c->dir = dl_path_join(xdg, "distill");
                else if (home && home[0] == '/')
                        c->dir = dl_path_join(home, ".cache/distill");
                else
                        return dl_fail(err, DL_EUSAGE,
                                       "no cache directory: neither XDG_CACHE_HOME nor HOME is "
                                       "set; pass --cache DIR");
        }
        sub = dl_path_join(c->dir, "sha256");
        rc = dl_mkdir_p(sub, 0755, err);
        free(sub);
        if (rc == DL_OK) {
                sub = dl_path_join(c->dir, "tmp");
                rc = dl_mkdir_p(sub, 0755, err);
                free(sub);
        }
        if (rc) {
                dl_error_wrap(err, "cache %s", c->dir);
                dl_cache_close(c);
        }
        return rc;
}

void dl_cache_close(struct dl_cache *c)
{
        free(c->dir);
        c->dir = NULL;
}

char *dl_cache_path(const struct dl_cache *c, const char *sha256)
{
        return dl_asprintf("%s/sha256/%s", c->dir, sha256);
}

bool dl_cache_has(const struct dl_cache *c, const char *sha256)
{
        char *p = dl_cache_path(c, sha256);
        bool ok = access(p, R_OK) == 0;
        free(p);
        return ok;
}

bool dl_cache_valid(const struct dl_cache *c, const char *sha256)
{
        char *p = dl_cache_path(c, sha256);
        char got[DL_SHA256_HEX];
        struct dl_error err;
        bool ok = access(p, R_OK) == 0 && dl_sha256_file(p, got, NULL, &err) == DL_OK;
        if (ok && strcmp(got, sha256) != 0) {
                dl_warn("cache entry %s is corrupt (its SHA256 is %s); removing it, so that the "
                        "build fetches or makes it again",
                        p, got);
                unlink(p);
                ok = false;
        }
        free(p);
        return ok;
}

char *dl_cache_tmp_path(const struct dl_cache *c)
{
        static unsigned counter;
        /* pid and a counter make the name unique among builds sharing the cache; the
         * rename into sha256/ is what other builds see. */
        char *p =
            dl_asprintf("%s/tmp/%ld-%u-%lx", c->dir, (long)getpid(),
                        __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED), (unsigned long)random());
        dl_cleanup_add(p);
        return p;
}

int dl_cache_commit(const struct dl_cache *c, const char *tmp, const char *sha256, uint64_t size,
                    const char *what, struct dl_error *err)
{
        char got[DL_SHA256_HEX];
        uint64_t got_size = 0;
        int rc = dl_sha256_file(tmp, got, &got_size, err);

        if (rc) {
                unlink(tmp);
                return rc;
        }
        if (size != UINT64_MAX && got_size != size) {
                unlink(tmp);
                return dl_fail(
                    err, DL_EVERIFY,
                    "%s: size mismatch: expected %llu bytes with SHA256 %s, got %llu bytes with "
                    "SHA256 %s; the server sent a different file than the signed index names",
                    what, (unsigned long long)size, sha256, (unsigned long long)got_size, got);
        }
        if (strcmp(got, sha256) != 0) {
                unlink(tmp);
                return dl_fail(err, DL_EVERIFY,
                               "%s: SHA256 mismatch: expected %s, got %s; the file was altered or "
                               "the mirror is inconsistent",
                               what, sha256, got);
        }
        return dl_cache_adopt(c, tmp, sha256, err);
}

int dl_cache_adopt(const struct dl_cache *c, const char *tmp, const char *sha256,
                   struct dl_error *err)
{
        int rc = DL_OK;
        /* No fsync: every use checks the entry's digest again, so an entry that a
         * crash damaged is fetched anew rather than trusted. */
        chmod(tmp, 0644);
        char *dest = dl_cache_path(c, sha256);
        if (rename(tmp, dest) != 0) {
                rc = dl_fail_errno(err, errno, "cannot store the cache entry", dest);
                unlink(tmp);
        }
        dl_cleanup_forget(tmp);
        free(dest);
        return rc;
}
