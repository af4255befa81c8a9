#include "distill/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/log.h"

/* Groups compressed at once: enough to keep every thread busy, few enough that the
 * memory stays bounded (about twice the batch's bytes). */
#define BATCH_BYTES (8u << 20)
/* The largest group: bytes of uncompressed tar in one gzip member. */
#define GROUP_MAX (2u << 20)

struct group {
        struct dl_buf in;
        bool closed; /* no more data: ready to compress */
        void *out;
        size_t out_len;
        bool from_cache;
};

/* The sink behind libarchive: hash the tar, cut it into groups, compress the groups
 * in batches on several threads, and write the members in order. */
struct sink {
        FILE *out;
        const char *path;
        const struct dl_layer_options *opts;
        int threads;
        struct dl_sha256 *tar_hash;
        struct dl_sha256 *blob_hash;
        uint64_t tar_size, blob_size;
        struct group *batch;
        size_t n_batch, cap_batch, batch_bytes;
        size_t next; /* next group a worker takes */
        pthread_mutex_t lock;
        int error; /* errno of a failed write */
        size_t reused;
};

static int flush_batch(struct sink *s, bool final);

static void open_group(struct sink *s)
{
        if (s->n_batch == s->cap_batch) {
                s->cap_batch = s->cap_batch ? s->cap_batch * 2 : 16;
                s->batch = dl_realloc(s->batch, s->cap_batch * sizeof *s->batch);
        }
        memset(&s->batch[s->n_batch++], 0, sizeof *s->batch);
}

static la_ssize_t sink_write(struct archive *a, void *user, const void *data, size_t n)
{
        struct sink *s = user;
        const char *p = data;
        size_t left = n;
        dl_sha256_update(s->tar_hash, data, n);
        s->tar_size += n;
        while (left > 0) {
                if (s->n_batch == 0 || s->batch[s->n_batch - 1].closed)
                        open_group(s);
                struct group *g = &s->batch[s->n_batch - 1];
                /* A group is also cut every GROUP_MAX bytes from its start, which still
                 * depends only on the content, so large files compress in parallel and
                 * memory stays bounded. */
                size_t take = GROUP_MAX - g->in.len < left ? GROUP_MAX - g->in.len : left;
                dl_buf_append(&g->in, p, take);
                s->batch_bytes += take;
                p += take;
                left -= take;
                if (g->in.len == GROUP_MAX) {
                        g->closed = true;
                        if (s->batch_bytes >= BATCH_BYTES && flush_batch(s, false) != 0) {
                                archive_set_error(a, s->error ? s->error : EIO,
                                                  "cannot write the layer");
                                return -1;
                        }
                }
        }
        return (la_ssize_t)n;
}

static char *group_cache_path(const struct sink *s, const struct group *g)
{
        char hex[DL_SHA256_HEX];
        dl_sha256_hex(g->in.data, g->in.len, hex);
        /* Keyed by the uncompressed bytes and the level, so a change of level does
         * not reuse members of another. */
        return dl_asprintf("%s/gzip-%d/%s", s->opts->cache->dir, DL_LAYER_LEVEL, hex);
}

static bool load_cached(const struct sink *s, struct group *g)
{
        struct dl_buf b = {0};
        struct dl_error ignored;
        char *p = group_cache_path(s, g);
        bool ok = dl_read_file(p, &b, &ignored) == DL_OK && b.len >= 18;
        free(p);
        if (!ok) {
                dl_buf_free(&b);
                return false;
        }
        /* The gzip trailer records the size of the uncompressed data. A mismatch means
         * a damaged entry, which is compressed again. */
        const unsigned char *t = (const unsigned char *)b.data + b.len - 4;
        uint32_t isize =
            (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
        if (isize != (uint32_t)g->in.len) {
                dl_buf_free(&b);
                return false;
        }
        g->out = b.data;
        g->out_len = b.len;
        g->from_cache = true;
        return true;
}

static void store_cached(const struct sink *s, const struct group *g)
{
        struct dl_error ignored;
        char *p = group_cache_path(s, g);
        char *dir = dl_dirname(p);
        if (dl_mkdir_p(dir, 0755, &ignored) == DL_OK)
                dl_write_file_unsynced(p, g->out, g->out_len, 0644, &ignored);
        free(dir);
        free(p);
}

static void *compress_worker(void *arg)
{
        struct sink *s = arg;
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(DL_LAYER_LEVEL);
        for (;;) {
                pthread_mutex_lock(&s->lock);
                size_t i = s->next++;
                pthread_mutex_unlock(&s->lock);
                if (i >= s->n_batch)
                        break;
                struct group *g = &s->batch[i];
                if (s->opts->cache && load_cached(s, g))
                        continue;
                size_t bound = libdeflate_gzip_compress_bound(c, g->in.len);
                g->out = dl_malloc(bound);
                g->out_len = c ? libdeflate_gzip_compress(c, g->in.data ? g->in.data : "",
                                                          g->in.len, g->out, bound)
                               : 0;
                /* libdeflate writes OS 255 (unknown); use 3 (Unix), as gzip -n does. The
                 * header has no checksum (no FHCRC), so the byte may change. */
                if (g->out_len >= 10)
                        ((unsigned char *)g->out)[9] = 3;
                if (g->out_len && s->opts->cache)
                        store_cached(s, g);
        }
        libdeflate_free_compressor(c);
        return NULL;
}

/* Compress every closed group of the batch, write them in order, and keep an open
 * group for more data. At the end (final) the open group is closed too. */
static int flush_batch(struct sink *s, bool final)
{
        size_t n = s->n_batch;
        struct group open = {0};
        if (n > 0 && !s->batch[n - 1].closed) {
                if (final) {
                        s->batch[n - 1].closed = true;
                } else {
                        open = s->batch[n - 1]; /* still growing */
                        n--;
                }
        }
        s->n_batch = n;
        s->next = 0;
        int threads = s->threads < (int)n ? s->threads : (int)n;
        pthread_t *tids = dl_calloc((size_t)(threads > 0 ? threads : 1), sizeof *tids);
        int started = 0;
        for (int i = 1; i < threads; i++)
                if (pthread_create(&tids[i], NULL, compress_worker, s) == 0)
                        started++;
        compress_worker(s);
        for (int i = 1; i <= started; i++)
                pthread_join(tids[i], NULL);
        free(tids);
        int rc = 0;
        for (size_t i = 0; i < n; i++) {
                struct group *g = &s->batch[i];
                if (rc == 0 && !g->out_len)
                        rc = -1;
                if (rc == 0) {
                        dl_sha256_update(s->blob_hash, g->out, g->out_len);
                        if (fwrite(g->out, 1, g->out_len, s->out) != g->out_len) {
                                s->error = errno ? errno : EIO;
                                rc = -1;
                        }
                        s->blob_size += g->out_len;
                        s->reused += g->from_cache;
                }
                dl_buf_free(&g->in);
                free(g->out);
        }
        s->n_batch = 0;
        s->batch_bytes = 0;
        if (open.in.len) {
                s->batch[s->n_batch++] = open;
                s->batch_bytes = open.in.len;
        }
        return rc;
}

/* End the open group after this entry when its path hash is a boundary. */
static int end_entry(struct sink *s, const char *path)
{
        size_t h = 1469598103934665603ULL;
        for (const char *p = path; *p; p++)
                h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        if (h % DL_LAYER_GROUP_SPACING != 0 || s->n_batch == 0)
                return 0;
        s->batch[s->n_batch - 1].closed = true;
        if (s->batch_bytes >= BATCH_BYTES)
                return flush_batch(s, false);
        return 0;
}

static unsigned type_bits(enum dl_node_type t)
{
        switch (t) {
        case DL_NODE_DIR:
                return AE_IFDIR;
        case DL_NODE_SYMLINK:
                return AE_IFLNK;
        case DL_NODE_CHAR:
                return AE_IFCHR;
        case DL_NODE_BLOCK:
                return AE_IFBLK;
        case DL_NODE_FIFO:
                return AE_IFIFO;
        default:
                return AE_IFREG;
        }
}

/* Pass staged contents on to the tar writer. */
static int archive_sink(void *user, const void *data, size_t n)
{
        struct archive *a = user;
        return archive_write_data(a, data, n) == (la_ssize_t)n ? DL_OK : DL_EIO;
}

static int write_entry(struct archive *a, struct archive_entry *e, const struct dl_fstree *t,
                       const struct dl_node *n, long long epoch, struct dl_error *err)
{
        long long mtime = n->mtime < 0 || n->mtime > epoch ? epoch : n->mtime;
        int rc = DL_OK;

        archive_entry_clear(e);
        if (n->type == DL_NODE_DIR) {
                char *name = dl_asprintf("%s/", n->path);
                archive_entry_copy_pathname(e, name);
                free(name);
        } else {
                archive_entry_copy_pathname(e, n->path);
        }
        archive_entry_set_mode(e, type_bits(n->type) | (n->mode & 07777));
        archive_entry_set_uid(e, (la_int64_t)n->uid);
        archive_entry_set_gid(e, (la_int64_t)n->gid);
        archive_entry_set_mtime(e, (time_t)mtime, 0);
        archive_entry_set_size(e, 0);
        for (size_t i = 0; i < n->n_xattrs; i++)
                archive_entry_xattr_add_entry(e, n->xattrs[i].name, n->xattrs[i].value,
                                              n->xattrs[i].size);
        switch (n->type) {
        case DL_NODE_FILE:
                archive_entry_set_size(e, (la_int64_t)n->size);
                break;
        case DL_NODE_HARDLINK:
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_copy_hardlink(e, n->target);
                break;
        case DL_NODE_SYMLINK:
                archive_entry_copy_symlink(e, n->target);
                break;
        case DL_NODE_CHAR:
        case DL_NODE_BLOCK:
                archive_entry_set_rdevmajor(e, n->dev_major);
                archive_entry_set_rdevminor(e, n->dev_minor);
                break;
        default:
                break;
        }
        if (archive_write_header(a, e) != ARCHIVE_OK)
                return dl_fail(err, DL_EIO, "cannot write the layer entry /%s: %s", n->path,
                               archive_error_string(a));
        if (n->type != DL_NODE_FILE)
                return DL_OK;
        if (n->in_blob)
                return dl_fstree_blob_copy(t, n->offset, n->size, archive_sink, a, err);
        int fd = dl_fstree_open_read(t, n->path, err);
        if (fd < 0)
                return err->code;
        static __thread char block[1 << 17];
        uint64_t left = n->size;
        while (left > 0) {
                ssize_t r = read(fd, block, left < sizeof block ? (size_t)left : sizeof block);
                if (r <= 0) {
                        rc = dl_fail(err, DL_EIO,
                                     "the staged file /%s changed size while writing the layer",
                                     n->path);
                        break;
                }
                if (archive_write_data(a, block, (size_t)r) != r) {
                        rc = dl_fail(err, DL_EIO, "cannot write the layer: %s",
                                     archive_error_string(a));
                        break;
                }
                left -= (uint64_t)r;
        }
        close(fd);
        return rc;
}

static int default_threads(void)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n < 1)
                return 1;
        if (n > 32)
                return 32;
        return (int)n;
}

int dl_layer_write_with(const struct dl_fstree *t, long long epoch, const char *path,
                        const struct dl_layer_options *o, struct dl_layer *out,
                        struct dl_error *err)
{
        struct dl_layer_options defaults = {0};
        struct sink *s = dl_calloc(1, sizeof *s);
        struct archive *a = NULL;
        struct archive_entry *e = NULL;
        struct dl_node **nodes = NULL;
        size_t n = 0;
        int rc = DL_OK;

        memset(out, 0, sizeof *out);
        s->opts = o ? o : &defaults;
        s->threads = s->opts->threads > 0 ? s->opts->threads : default_threads();
        s->path = path;
        pthread_mutex_init(&s->lock, NULL);
        s->out = fopen(path, "wb");
        if (!s->out) {
                rc = dl_fail_errno(err, errno, "cannot create", path);
                pthread_mutex_destroy(&s->lock);
                free(s);
                return rc;
        }
        s->tar_hash = dl_sha256_new();
        s->blob_hash = dl_sha256_new();
        a = archive_write_new();
        e = archive_entry_new();
        /* PAX restricted: ustar headers, with a PAX record only where a name, link target,
         * id or xattr does not fit; never a global header. No blocking, so each entry's
         * bytes reach the sink before the next entry starts. */
        archive_write_set_format_pax_restricted(a);
        archive_write_set_bytes_per_block(a, 0);
        if (archive_write_open2(a, s, NULL, sink_write, NULL, NULL) != ARCHIVE_OK) {
                rc = dl_fail(err, DL_EINTERNAL, "cannot start the layer: %s",
                             archive_error_string(a));
                goto out;
        }
        nodes = dl_fstree_sorted(t, &n);
        for (size_t i = 0; i < n && rc == DL_OK; i++) {
                rc = write_entry(a, e, t, nodes[i], epoch, err);
                if (rc == DL_OK && archive_write_finish_entry(a) != ARCHIVE_OK)
                        rc = dl_fail(err, DL_EIO, "cannot write the layer: %s",
                                     archive_error_string(a));
                if (rc == DL_OK && end_entry(s, nodes[i]->path) != 0)
                        rc = dl_fail_errno(err, s->error ? s->error : EIO, "cannot write", path);
        }
        if (rc == DL_OK && archive_write_close(a) != ARCHIVE_OK)
                rc = dl_fail(err, DL_EIO, "cannot finish the layer: %s", archive_error_string(a));
        if (rc == DL_OK && flush_batch(s, true) != 0)
                rc = dl_fail_errno(err, s->error ? s->error : EIO, "cannot write", path);
out:
        if (s->error && rc == DL_OK)
                rc = dl_fail_errno(err, s->error, "cannot write", path);
        archive_write_free(a);
        archive_entry_free(e);
        free(nodes);
        for (size_t i = 0; i < s->n_batch; i++) {
                dl_buf_free(&s->batch[i].in);
                free(s->batch[i].out);
        }
        free(s->batch);
        if (fflush(s->out) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", path);
        if (fclose(s->out) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", path);
        dl_sha256_final(s->tar_hash, out->diff_id);
        dl_sha256_final(s->blob_hash, out->digest);
        out->size = s->blob_size;
        out->tar_size = s->tar_size;
        if (rc == DL_OK && s->reused)
                dl_debug("layer: %zu compressed groups reused from the cache", s->reused);
        if (rc)
                unlink(path);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return rc;
}

int dl_layer_write(const struct dl_fstree *t, long long epoch, const char *path,
                   struct dl_layer *out, struct dl_error *err)
{
        return dl_layer_write_with(t, epoch, path, NULL, out, err);
}
