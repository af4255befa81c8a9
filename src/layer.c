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

/* Groups handed to the compression threads and not yet written: enough to keep
 * every thread busy, few enough that memory stays bounded (each holds up to
 * GROUP_MAX bytes of tar and its compressed form). */
#define MAX_INFLIGHT 8
/* The largest group: bytes of uncompressed tar in one gzip member. */
#define GROUP_MAX (2u << 20)

struct group {
        struct dl_buf in;
        void *out;
        size_t out_len;
        bool done; /* compressed (or taken from the cache) */
        bool from_cache;
};

/* The sink behind libarchive hashes the tar and cuts it into groups. The groups go
 * to a queue that compression threads take from in order, and this thread writes
 * the finished members in order, so the tar is made while earlier groups compress. */
struct sink {
        FILE *out;
        const char *path;
        const struct dl_layer_options *opts;
        struct dl_sha256 *tar_hash;
        struct dl_sha256 *blob_hash;
        uint64_t tar_size, blob_size;
        struct group *open; /* the group being filled, or NULL */
        /* A ring of MAX_INFLIGHT slots: groups [head, tail) are queued, the next
         * worker takes the one at take. */
        struct group *ring[MAX_INFLIGHT];
        size_t head, take, tail;
        bool closing;
        pthread_mutex_t lock;
        pthread_cond_t work, finished;
        pthread_t *threads;
        int n_threads;
        int error; /* errno of a failed write */
        size_t reused;
};

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

static void compress_group(const struct sink *s, struct libdeflate_compressor *c, struct group *g)
{
        if (s->opts->cache && load_cached(s, g))
                return;
        size_t bound = libdeflate_gzip_compress_bound(c, g->in.len);
        g->out = dl_malloc(bound);
        g->out_len =
            c ? libdeflate_gzip_compress(c, g->in.data ? g->in.data : "", g->in.len, g->out, bound)
              : 0;
        /* libdeflate writes OS 255 (unknown); use 3 (Unix), as gzip -n does. The
         * header has no checksum (no FHCRC), so the byte may change. */
        if (g->out_len >= 10)
                ((unsigned char *)g->out)[9] = 3;
        if (g->out_len && s->opts->cache)
                store_cached(s, g);
}

static void *compress_worker(void *arg)
{
        struct sink *s = arg;
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(DL_LAYER_LEVEL);
        pthread_mutex_lock(&s->lock);
        for (;;) {
                while (s->take == s->tail && !s->closing)
                        pthread_cond_wait(&s->work, &s->lock);
                if (s->take == s->tail)
                        break; /* closing, and nothing left */
                struct group *g = s->ring[s->take++ % MAX_INFLIGHT];
                pthread_mutex_unlock(&s->lock);
                compress_group(s, c, g);
                pthread_mutex_lock(&s->lock);
                g->done = true;
                pthread_cond_broadcast(&s->finished);
        }
        pthread_mutex_unlock(&s->lock);
        libdeflate_free_compressor(c);
        return NULL;
}

/* Write the oldest group once it is compressed; with wait, block until it is. Returns
 * 1 when a group was written, 0 when none was ready, -1 on a write error. */
static int write_oldest(struct sink *s, bool wait)
{
        pthread_mutex_lock(&s->lock);
        if (s->head == s->tail) {
                pthread_mutex_unlock(&s->lock);
                return 0;
        }
        struct group *g = s->ring[s->head % MAX_INFLIGHT];
        while (wait && !g->done)
                pthread_cond_wait(&s->finished, &s->lock);
        bool ready = g->done;
        if (ready)
                s->head++;
        pthread_mutex_unlock(&s->lock);
        if (!ready)
                return 0;
        int rc = 1;
        if (!g->out_len) {
                s->error = s->error ? s->error : ENOMEM;
                rc = -1;
        } else if (!s->error) {
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
        free(g);
        return rc;
}

/* Queue the open group for compression, first making room in the ring. With no
 * thread running, compress it here. */
static int submit_group(struct sink *s)
{
        struct group *g = s->open;
        s->open = NULL;
        if (!g)
                return 0;
        while (s->tail - s->head == MAX_INFLIGHT)
                if (write_oldest(s, true) < 0)
                        break;
        pthread_mutex_lock(&s->lock);
        s->ring[s->tail++ % MAX_INFLIGHT] = g;
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->lock);
        if (s->n_threads == 0) {
                struct libdeflate_compressor *c = libdeflate_alloc_compressor(DL_LAYER_LEVEL);
                compress_group(s, c, g);
                libdeflate_free_compressor(c);
                g->done = true;
                s->take = s->tail;
        }
        /* Write whatever is finished already, without waiting. */
        int r;
        while ((r = write_oldest(s, false)) > 0)
                ;
        return r < 0 || s->error ? -1 : 0;
}

static la_ssize_t sink_write(struct archive *a, void *user, const void *data, size_t n)
{
        struct sink *s = user;
        const char *p = data;
        size_t left = n;
        dl_sha256_update(s->tar_hash, data, n);
        s->tar_size += n;
        while (left > 0) {
                if (!s->open) {
                        /* Sized once: a doubling buffer would hold twice the bytes. */
                        s->open = dl_calloc(1, sizeof *s->open);
                        s->open->in.data = dl_malloc(GROUP_MAX + 1);
                        s->open->in.cap = GROUP_MAX + 1;
                }
                struct group *g = s->open;
                /* A group is also cut every GROUP_MAX bytes from its start, which still
                 * depends only on the content, so large files compress in parallel and
                 * memory stays bounded. */
                size_t take = GROUP_MAX - g->in.len < left ? GROUP_MAX - g->in.len : left;
                dl_buf_append(&g->in, p, take);
                p += take;
                left -= take;
                if (g->in.len == GROUP_MAX && submit_group(s) != 0) {
                        archive_set_error(a, s->error ? s->error : EIO, "cannot write the layer");
                        return -1;
                }
        }
        return (la_ssize_t)n;
}

/* Stop the threads after the queued groups, writing every one of them. */
static int finish_groups(struct sink *s)
{
        int rc = submit_group(s);
        pthread_mutex_lock(&s->lock);
        s->closing = true;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->lock);
        int r;
        while ((r = write_oldest(s, true)) > 0)
                ;
        for (int i = 0; i < s->n_threads; i++)
                pthread_join(s->threads[i], NULL);
        s->n_threads = 0;
        return rc < 0 || r < 0 || s->error ? -1 : 0;
}

/* End the open group after this entry when its path hash is a boundary. */
static int end_entry(struct sink *s, const char *path)
{
        size_t h = 1469598103934665603ULL;
        for (const char *p = path; *p; p++)
                h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        if (h % DL_LAYER_GROUP_SPACING != 0)
                return 0;
        return submit_group(s);
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
        return dl_fstree_copy_contents(t, n, archive_sink, a, err);
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
        s->path = path;
        s->out = fopen(path, "wb");
        if (!s->out) {
                rc = dl_fail_errno(err, errno, "cannot create", path);
                free(s);
                return rc;
        }
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->work, NULL);
        pthread_cond_init(&s->finished, NULL);
        int threads = s->opts->threads > 0 ? s->opts->threads : default_threads();
        s->threads = dl_calloc((size_t)threads, sizeof *s->threads);
        for (int i = 0; i < threads; i++) {
                if (pthread_create(&s->threads[i], NULL, compress_worker, s) != 0)
                        break;
                s->n_threads++;
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
out:
        /* Always: the threads stop and every queued group is freed. */
        if (finish_groups(s) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, s->error ? s->error : EIO, "cannot write", path);
        if (s->error && rc == DL_OK)
                rc = dl_fail_errno(err, s->error, "cannot write", path);
        archive_write_free(a);
        archive_entry_free(e);
        if (s->open) {
                /* Bytes libarchive wrote while being freed after an error. */
                dl_buf_free(&s->open->in);
                free(s->open);
        }
        free(nodes);
        free(s->threads);
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
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->finished);
        free(s);
        return rc;
}

int dl_layer_write(const struct dl_fstree *t, long long epoch, const char *path,
                   struct dl_layer *out, struct dl_error *err)
{
        return dl_layer_write_with(t, epoch, path, NULL, out, err);
}
