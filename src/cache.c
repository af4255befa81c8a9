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

/* Layer blobs ------------------------------------------------------------------ */

static char *image_path(const struct dl_cache *c, const char *digest)
{
        return dl_asprintf("%s/images/%s.tar", c->dir, digest);
}

/* A ustar numeric field: octal digits (leading spaces allowed, ended by a space or
 * NUL), or the base-256 form, flagged by the high bit of the first byte. */
static bool tar_number(const unsigned char *f, size_t n, uint64_t *v)
{
        size_t i = 0;
        bool any = false;
        *v = 0;
        if (f[0] & 0x80) {
                for (i = 1; i < n; i++) {
                        if (*v >> 56)
                                return false;
                        *v = *v << 8 | f[i];
                }
                return true;
        }
        while (i < n && f[i] == ' ')
                i++;
        for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, any = true) {
                if (*v >> 61)
                        return false;
                *v = *v << 3 | (uint64_t)(f[i] - '0');
        }
        return any && (i == n || f[i] == ' ' || f[i] == '\0');
}

/* Find the regular member name (shorter than 100 bytes) in the tar archive fd: where
 * its bytes start and how many there are. The archives are dl_oci_write's, plain
 * ustar headers; any other header ends the search. */
static bool tar_find(int fd, const char *name, uint64_t *offset, uint64_t *size)
{
        size_t len = strlen(name);
        unsigned char h[512];
        uint64_t at = 0, n;
        /* Bounded: an image archive has a few members per platform. */
        for (int i = 0; i < 4096 && len < 100; i++) {
                if (pread(fd, h, sizeof h, (off_t)at) != (ssize_t)sizeof h || h[0] == '\0' ||
                    memcmp(h + 257, "ustar", 5) != 0 || !tar_number(h + 124, 12, &n) ||
                    n > UINT64_MAX / 2)
                        return false;
                if ((h[156] == '0' || h[156] == '\0') && h[345] == '\0' &&
                    memcmp(h, name, len) == 0 && h[len] == '\0') {
                        *offset = at + sizeof h;
                        *size = n;
                        return true;
                }
                at += sizeof h + (n + 511) / 512 * 512;
        }
        return false;
}

bool dl_cache_blob_find(const struct dl_cache *c, const char *digest, struct dl_cache_blob *b)
{
        struct stat st;
        memset(b, 0, sizeof *b);
        b->path = dl_cache_path(c, digest);
        if (stat(b->path, &st) == 0 && S_ISREG(st.st_mode)) {
                b->size = (uint64_t)st.st_size;
                return true;
        }
        free(b->path);
        b->path = image_path(c, digest);
        int fd = open(b->path, O_RDONLY | O_CLOEXEC);
        char *member = dl_asprintf("blobs/sha256/%s", digest);
        bool ok = fd >= 0 && fstat(fd, &st) == 0 && tar_find(fd, member, &b->offset, &b->size) &&
                  b->offset <= (uint64_t)st.st_size && b->size <= (uint64_t)st.st_size - b->offset;
        if (fd >= 0)
                close(fd);
        free(member);
        if (!ok)
                dl_cache_blob_free(b);
        return ok;
}

void dl_cache_blob_free(struct dl_cache_blob *b)
{
        free(b->path);
        memset(b, 0, sizeof *b);
}

bool dl_cache_blob_valid(const struct dl_cache *c, const char *digest)
{
        if (dl_cache_has(c, digest) && dl_cache_valid(c, digest))
                return true;
        char *image = image_path(c, digest);
        struct dl_cache_blob b;
        char got[DL_SHA256_HEX] = "";
        bool found = dl_cache_blob_find(c, digest, &b) && b.offset > 0;
        int fd = found ? open(b.path, O_RDONLY | O_CLOEXEC) : -1;
        bool ok =
            fd >= 0 && dl_sha256_range(fd, b.offset, b.size, got) == 0 && strcmp(got, digest) == 0;
        if (fd >= 0)
                close(fd);
        if (!ok && access(image, F_OK) == 0) {
                /* The entry is a link to an output, which someone may have changed in
                 * place since. */
                dl_warn("cache entry %s is corrupt: it no longer holds the layer blob %s (was "
                        "the image archive it links to changed in place?); removing it, so "
                        "that the build makes the layer again",
                        image, digest);
                unlink(image);
        }
        dl_cache_blob_free(&b);
        free(image);
        return ok;
}

int dl_cache_store_blob_of(const struct dl_cache *c, const char *archive, const char *digest,
                           struct dl_error *err)
{
        char *dir = dl_path_join(c->dir, "images");
        char *dest = image_path(c, digest);
        char *tmp = dl_cache_tmp_path(c);
        char *member = dl_asprintf("blobs/sha256/%s", digest);
        uint64_t offset = 0, size = 0;
        int in = -1, out = -1;
        int rc = dl_mkdir_p(dir, 0755, err);
        struct stat st;

        if (rc == DL_OK && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
                rc = dl_fail(err, DL_EIO,
                             "%s is not a directory; remove it, and the cache makes it again", dir);
        if (rc == DL_OK && (in = open(archive, O_RDONLY | O_CLOEXEC)) < 0)
                rc = dl_fail_errno(err, errno, "cannot open", archive);
        if (rc == DL_OK && !tar_find(in, member, &offset, &size))
                rc = dl_fail(err, DL_EINTERNAL, "%s has no member %s", archive, member);
        if (rc == DL_OK && link(archive, tmp) == 0) {
                if (rename(tmp, dest) != 0)
                        rc = dl_fail_errno(err, errno, "cannot store the cache entry", dest);
                goto out;
        }
        /* Another file system, or one without hard links: copy the blob alone. */
        if (rc == DL_OK && (out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
                rc = dl_fail_errno(err, errno, "cannot create", tmp);
        if (rc == DL_OK && dl_copy_range(in, offset, out, size) != 0)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        if (out >= 0 && close(out) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        if (rc == DL_OK)
                rc = dl_cache_adopt(c, tmp, digest, err);
out:
        if (in >= 0)
                close(in);
        unlink(tmp);
        dl_cleanup_forget(tmp);
        free(tmp);
        free(member);
        free(dest);
        free(dir);
        return rc;
}
