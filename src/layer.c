#include "distill/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
        struct dl_sha256 *key_hash; /* the member key, while the group fills */
        char key[DL_SHA256_HEX];
        void *out;
        size_t out_len, out_cap;
        bool done; /* compressed (or copied from an earlier layer) */
        bool from_cache;
        bool stored; /* one compressed file: written as stored deflate blocks */
};

/* A member of an earlier layer, by key. */
struct dl_member_ref {
        char key[DL_SHA256_HEX];
        size_t fd; /* index into dl_member_index.fds */
        uint64_t offset, length, isize;
};

/* The sink behind libarchive hashes the tar and cuts it into groups. The groups go
 * to a queue that compression threads take from in order, and this thread writes
 * the finished members in order, so the tar is made while earlier groups compress. */
struct sink {
        FILE *out;
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
        int error;       /* errno of a failed write */
        bool tee_failed; /* ... which went to the tee */
        bool storing;    /* the entry being written goes into stored groups */
        size_t reused;
        /* The digest of the entry being written and where it starts in the tar, for
         * the key of a group that opens inside it. */
        unsigned char entry_desc[32];
        uint64_t entry_start;
        struct dl_layer_member *members;
        size_t n_members, cap_members;
        /* Written groups, kept with their buffers for the next ones: allocating
         * megabytes per group cost page faults on every byte. */
        struct group *spare[MAX_INFLIGHT + 2];
        size_t n_spare;
        size_t out_cap; /* compressed bytes a full group may need */
};

static int compare_refs(const void *a, const void *b)
{
        return strcmp(((const struct dl_member_ref *)a)->key,
                      ((const struct dl_member_ref *)b)->key);
}

static const struct dl_member_ref *find_member(const struct dl_member_index *idx, const char *key)
{
        struct dl_member_ref probe;
        if (!idx || idx->n == 0)
                return NULL;
        memcpy(probe.key, key, sizeof probe.key);
        return bsearch(&probe, idx->refs, idx->n, sizeof *idx->refs, compare_refs);
}

/* Copy the member of an earlier layer with the group's key. The blob is checked
 * against its digest before the first copy from it, and each member's gzip header
 * and size after reading, so a damaged blob means compressing anew. */
static bool copy_member(const struct sink *s, struct group *g)
{
        struct dl_member_index *idx = s->opts->reuse;
        const struct dl_member_ref *r = find_member(idx, g->key);
        if (!r || r->isize != g->in.len || r->length < 18 || r->length > g->out_cap)
                return false;
        pthread_mutex_lock(&idx->lock);
        if (idx->checked[r->fd] == 0)
                idx->checked[r->fd] = dl_cache_blob_valid(idx->cache, idx->digests[r->fd]) ? 1 : -1;
        bool usable = idx->checked[r->fd] > 0;
        pthread_mutex_unlock(&idx->lock);
        if (!usable)
                return false;
        unsigned char *buf = g->out;
        ssize_t got =
            pread(idx->fds[r->fd], buf, (size_t)r->length, (off_t)(idx->bases[r->fd] + r->offset));
        const unsigned char *t = buf + r->length - 4;
        uint32_t isize =
            (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
        if (got != (ssize_t)r->length || buf[0] != 0x1f || buf[1] != 0x8b || buf[2] != 8 ||
            isize != (uint32_t)g->in.len)
                return false;
        g->out_len = (size_t)r->length;
        g->from_cache = true;
        return true;
}

/* Write g as a gzip member of stored deflate blocks (RFC 1951, 3.2.4), as many
 * of 65535 bytes as it takes. False when out has no room, which the bound of
 * libdeflate_gzip_compress_bound rules out. */
static bool store_group(struct group *g)
{
        static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
        const unsigned char *p = (const unsigned char *)g->in.data;
        size_t left = g->in.len, at = sizeof header;
        if (sizeof header + left + 5 * (left / 65535 + 1) + 8 > g->out_cap)
                return false;
        unsigned char *o = g->out;
        memcpy(o, header, sizeof header);
        do {
                size_t len = left < 65535 ? left : 65535;
                /* BFINAL on the last block, BTYPE 00, then LEN and NLEN. */
                o[at++] = len == left ? 1 : 0;
                o[at++] = (unsigned char)len;
                o[at++] = (unsigned char)(len >> 8);
                o[at++] = (unsigned char)~len;
                o[at++] = (unsigned char)(~len >> 8);
                memcpy(o + at, p, len);
                at += len;
                p += len;
                left -= len;
        } while (left > 0);
        uint32_t crc = (uint32_t)libdeflate_crc32(0, g->in.data, g->in.len);
        uint32_t isize = (uint32_t)g->in.len;
        for (int i = 0; i < 4; i++)
                o[at++] = (unsigned char)(crc >> (8 * i));
        for (int i = 0; i < 4; i++)
                o[at++] = (unsigned char)(isize >> (8 * i));
        g->out_len = at;
        return true;
}

static void compress_group(const struct sink *s, struct libdeflate_compressor *c, struct group *g)
{
        if (copy_member(s, g))
                return;
        if (g->stored && store_group(g))
                return;
        g->out_len = c ? libdeflate_gzip_compress(c, g->in.data, g->in.len, g->out, g->out_cap) : 0;
        /* libdeflate writes OS 255 (unknown); use 3 (Unix), as gzip -n does. The
         * header has no checksum (no FHCRC), so the byte may change. */
        if (g->out_len >= 10)
                ((unsigned char *)g->out)[9] = 3;
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

static void free_group(struct group *g)
{
        dl_buf_free(&g->in);
        free(g->out);
        free(g);
}

static void recycle_group(struct sink *s, struct group *g)
{
        if (s->n_spare < sizeof s->spare / sizeof s->spare[0]) {
                g->in.len = 0;
                g->out_len = 0;
                g->done = g->from_cache = g->stored = false;
                s->spare[s->n_spare++] = g;
        } else {
                free_group(g);
        }
}

/* An empty group with room for GROUP_MAX bytes and their compressed form. */
static struct group *new_group(struct sink *s)
{
        if (s->n_spare > 0)
                return s->spare[--s->n_spare];
        struct group *g = dl_calloc(1, sizeof *g);
        g->in.data = dl_malloc(GROUP_MAX + 1);
        g->in.cap = GROUP_MAX + 1;
        g->out_cap = s->out_cap;
        g->out = dl_malloc(g->out_cap);
        return g;
}

/* Write the oldest group once it is compressed, and with wait, block until it is.
 * Returns 1 when a group was written, 0 when none was ready, -1 on a write error. */
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
                if (s->out && fwrite(g->out, 1, g->out_len, s->out) != g->out_len) {
                        s->error = errno ? errno : EIO;
                        rc = -1;
                } else if (s->opts->tee && dl_write_all(s->opts->tee_fd, g->out, g->out_len) != 0) {
                        s->error = errno ? errno : EIO;
                        s->tee_failed = true;
                        rc = -1;
                }
                if (s->n_members == s->cap_members) {
                        s->cap_members = s->cap_members ? 2 * s->cap_members : 256;
                        s->members = dl_realloc(s->members, s->cap_members * sizeof *s->members);
                }
                struct dl_layer_member *m = &s->members[s->n_members++];
                memcpy(m->key, g->key, sizeof m->key);
                m->offset = s->blob_size;
                m->length = g->out_len;
                m->isize = g->in.len;
                s->blob_size += g->out_len;
                s->reused += g->from_cache;
        }
        recycle_group(s, g);
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
        char len[32];
        snprintf(len, sizeof len, "length %zu", g->in.len);
        dl_sha256_update(g->key_hash, len, strlen(len));
        dl_sha256_final(g->key_hash, g->key);
        g->key_hash = NULL;
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
        while (left > 0) {
                if (!s->open) {
                        s->open = new_group(s);
                        s->open->stored = s->storing;
                        /* The key: the tar writer and compressor with its level, the entry
                         * the group opens in, and how far into that entry's bytes it
                         * starts. Another libdeflate may compress to other bytes. */
                        char at[128];
                        snprintf(at, sizeof at, "%s libdeflate %s level %d%s\nstart %llu\n",
                                 archive_version_string(), LIBDEFLATE_VERSION_STRING,
                                 DL_LAYER_LEVEL, s->storing ? " stored" : "",
                                 (unsigned long long)(s->tar_size + (n - left) - s->entry_start));
                        s->open->key_hash = dl_sha256_new();
                        dl_sha256_update(s->open->key_hash, at, strlen(at));
                        dl_sha256_update(s->open->key_hash, s->entry_desc, sizeof s->entry_desc);
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
        s->tar_size += n;
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

/* Whether n is a regular file of at least STORE_MIN bytes whose first bytes are
 * the magic number of a compressed format: gzip, xz, zstd, bzip2, PNG or JPEG.
 * Deflate gains nothing on such data and would spend as long as on text. */
#define STORE_MIN (64u << 10)
static bool compressed_already(const struct dl_fstree *t, const struct dl_node *n)
{
        static const struct {
                const char *magic;
                size_t len;
        } formats[] = {{"\x1f\x8b\x08", 3},
                       {"\xfd"
                        "7zXZ\0",
                        6},
                       {"\x28\xb5\x2f\xfd", 4},
                       {"BZh", 3},
                       {"\x89PNG\r\n\x1a\n", 8},
                       {"\xff\xd8\xff", 3}};
        unsigned char head[8];
        if (n->type != DL_NODE_FILE || n->size < STORE_MIN || n->blob >= t->n_blobs ||
            pread(t->blob_fds[n->blob], head, sizeof head, (off_t)n->offset) !=
                (ssize_t)sizeof head)
                return false;
        for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
                if (memcmp(head, formats[i].magic, formats[i].len) == 0)
                        return true;
        return false;
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

/* Note the entry about to be written: its digest covers everything that decides its
 * bytes in the tar, and it enters the key of every group with some of those bytes. */
static void begin_entry(struct sink *s, const struct dl_node *n, long long mtime)
{
        struct dl_buf d = {0};
        dl_buf_printf(&d, "%s%c%d %o %lu %lu %lld %llu %u %u%c%s%c%s", n->path, 0, (int)n->type,
                      n->mode & 07777, n->uid, n->gid, mtime, (unsigned long long)n->size,
                      n->dev_major, n->dev_minor, 0, n->target ? n->target : "", 0,
                      n->type == DL_NODE_FILE ? n->content_id : "");
        for (size_t i = 0; i < n->n_xattrs; i++) {
                dl_buf_printf(&d, "%cxattr %s %zu:", 0, n->xattrs[i].name, n->xattrs[i].size);
                dl_buf_append(&d, n->xattrs[i].value, n->xattrs[i].size);
        }
        dl_sha256_raw(d.data, d.len, s->entry_desc);
        dl_buf_free(&d);
        s->entry_start = s->tar_size;
        if (s->open)
                dl_sha256_update(s->open->key_hash, s->entry_desc, sizeof s->entry_desc);
}

/* The end-of-archive blocks that closing the tar writes, as the last "entry". */
static void begin_end_of_archive(struct sink *s)
{
        dl_sha256_raw("end of archive", 14, s->entry_desc);
        s->entry_start = s->tar_size;
        if (s->open)
                dl_sha256_update(s->open->key_hash, s->entry_desc, sizeof s->entry_desc);
}

static int write_entry(struct archive *a, struct archive_entry *e, struct sink *s,
                       const struct dl_fstree *t, const struct dl_node *n, long long epoch,
                       struct dl_error *err)
{
        long long mtime = n->mtime < 0 || n->mtime > epoch ? epoch : n->mtime;

        begin_entry(s, n, mtime);

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
        if (!path && !(o && o->tee)) {
                free(s);
                return dl_fail(err, DL_EINTERNAL, "a layer needs a file or a tee");
        }
        s->opts = o ? o : &defaults;
        s->out = path ? fopen(path, "wb") : NULL;
        if (path && !s->out) {
                rc = dl_fail_errno(err, errno, "cannot create", path);
                free(s);
                return rc;
        }
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->work, NULL);
        pthread_cond_init(&s->finished, NULL);
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(DL_LAYER_LEVEL);
        s->out_cap = c ? libdeflate_gzip_compress_bound(c, GROUP_MAX) : GROUP_MAX * 2;
        libdeflate_free_compressor(c);
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
                /* A compressed file gets groups of its own (with its header and
                 * padding), which are stored instead of compressed. */
                bool store = compressed_already(t, nodes[i]);
                if (store && submit_group(s) != 0)
                        rc = -1;
                s->storing = store;
                if (rc == DL_OK)
                        rc = write_entry(a, e, s, t, nodes[i], epoch, err);
                if (rc == DL_OK && archive_write_finish_entry(a) != ARCHIVE_OK)
                        rc = dl_fail(err, DL_EIO, "cannot write the layer: %s",
                                     archive_error_string(a));
                s->storing = false;
                if (rc == DL_OK && (store ? submit_group(s) : end_entry(s, nodes[i]->path)) != 0)
                        rc = -1;
        }
        if (rc == DL_OK)
                begin_end_of_archive(s);
        if (rc == DL_OK && archive_write_close(a) != ARCHIVE_OK)
                rc = dl_fail(err, DL_EIO, "cannot finish the layer: %s", archive_error_string(a));
out:
        /* Always: the threads stop and every queued group is freed. */
        if (finish_groups(s) != 0 && rc == DL_OK)
                rc = -1;
        /* A failed write is the cause of whatever failed after it: name the file. */
        if (s->error)
                rc = dl_fail_errno(err, s->error, "cannot write",
                                   (s->tee_failed || !path) && s->opts->tee_path ? s->opts->tee_path
                                                                                 : path);
        else if (rc == -1)
                rc = dl_fail_errno(err, EIO, "cannot write", path ? path : s->opts->tee_path);
        archive_write_free(a);
        archive_entry_free(e);
        if (s->open) {
                /* Bytes libarchive wrote while being freed after an error. */
                char ignored[DL_SHA256_HEX];
                dl_sha256_final(s->open->key_hash, ignored);
                free_group(s->open);
        }
        for (size_t i = 0; i < s->n_spare; i++)
                free_group(s->spare[i]);
        free(nodes);
        free(s->threads);
        if (s->out && fflush(s->out) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", path);
        if (s->out && fclose(s->out) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", path);
        dl_sha256_final(s->tar_hash, out->diff_id);
        dl_sha256_final(s->blob_hash, out->digest);
        out->size = s->blob_size;
        out->tar_size = s->tar_size;
        out->members = s->members;
        out->n_members = s->n_members;
        out->n_reused = s->reused;
        s->members = NULL;
        if (rc == DL_OK && s->reused)
                dl_debug("layer: %zu of %zu gzip members copied from earlier layers", s->reused,
                         out->n_members);
        if (rc) {
                if (path)
                        unlink(path);
                dl_layer_free(out);
        }
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

void dl_layer_free(struct dl_layer *l)
{
        free(l->members);
        l->members = NULL;
        l->n_members = 0;
}

/* Member lists --------------------------------------------------------------------
 * members/DIGEST.idx: a first line "distill members 1", then one line per member
 * of the layer blob sha256/DIGEST: "KEY OFFSET LENGTH ISIZE". */

static const char index_magic[] = "distill members 1\n";

static char *index_dir(const struct dl_cache *c)
{
        return dl_path_join(c->dir, "members");
}

/* Parse one list, whose entries point at fd number fd_index. */
static bool parse_index(const char *text, uint64_t blob_size, size_t fd_index,
                        struct dl_member_index *idx)
{
        size_t before = idx->n;
        if (strncmp(text, index_magic, sizeof index_magic - 1) != 0)
                return false;
        const char *p = text + sizeof index_magic - 1;
        while (*p) {
                struct dl_member_ref r = {.fd = fd_index};
                unsigned long long off, len, isize;
                int used = 0;
                if (sscanf(p, "%64s %llu %llu %llu%n", r.key, &off, &len, &isize, &used) != 4 ||
                    !dl_is_sha256_hex(r.key) || off > blob_size || len > blob_size - off) {
                        idx->n = before;
                        return false;
                }
                r.offset = off;
                r.length = len;
                r.isize = isize;
                idx->refs = dl_realloc(idx->refs, (idx->n + 1) * sizeof *idx->refs);
                idx->refs[idx->n++] = r;
                p += used;
                while (*p == '\n')
                        p++;
        }
        return true;
}

/* The layer digest a member list's file name gives ("DIGEST.idx"), or false. */
static bool index_name(const char *name, char digest[DL_SHA256_HEX])
{
        if (strlen(name) != 64 + 4 || strcmp(name + 64, ".idx") != 0)
                return false;
        memcpy(digest, name, 64);
        digest[64] = '\0';
        return dl_is_sha256_hex(digest);
}

void dl_member_index_load(const struct dl_cache *c, struct dl_member_index *idx)
{
        memset(idx, 0, sizeof *idx);
        idx->cache = c;
        pthread_mutex_init(&idx->lock, NULL);
        char *dir = index_dir(c);
        DIR *d = opendir(dir);
        struct dirent *e;
        char digest[DL_SHA256_HEX];
        while (d && (e = readdir(d))) {
                if (!index_name(e->d_name, digest))
                        continue;
                struct dl_cache_blob blob;
                char *list = dl_path_join(dir, e->d_name);
                int fd = dl_cache_blob_find(c, digest, &blob)
                             ? open(blob.path, O_RDONLY | O_CLOEXEC)
                             : -1;
                struct dl_buf text = {0};
                struct dl_error ignored;
                if (fd >= 0 && dl_read_file(list, &text, &ignored) == DL_OK &&
                    parse_index(dl_buf_str(&text), blob.size, idx->n_fds, idx)) {
                        size_t n = idx->n_fds + 1;
                        idx->fds = dl_realloc(idx->fds, n * sizeof *idx->fds);
                        idx->bases = dl_realloc(idx->bases, n * sizeof *idx->bases);
                        idx->bases[idx->n_fds] = blob.offset;
                        idx->digests = dl_realloc(idx->digests, n * sizeof *idx->digests);
                        idx->checked = dl_realloc(idx->checked, n * sizeof *idx->checked);
                        idx->fds[idx->n_fds] = fd;
                        memcpy(idx->digests[idx->n_fds], digest, DL_SHA256_HEX);
                        idx->checked[idx->n_fds] = 0;
                        idx->n_fds = n;
                } else {
                        /* The list is damaged or its blob is gone: nothing can be
                         * copied through it. */
                        if (fd >= 0) {
                                dl_warn("the member list %s is damaged; removing it", list);
                                close(fd);
                        }
                        unlink(list);
                }
                dl_buf_free(&text);
                free(list);
                dl_cache_blob_free(&blob);
        }
        if (d)
                closedir(d);
        free(dir);
        if (idx->n)
                qsort(idx->refs, idx->n, sizeof *idx->refs, compare_refs);
}

void dl_member_index_free(struct dl_member_index *idx)
{
        for (size_t i = 0; i < idx->n_fds; i++)
                close(idx->fds[i]);
        free(idx->fds);
        free(idx->bases);
        free(idx->digests);
        free(idx->checked);
        free(idx->refs);
        pthread_mutex_destroy(&idx->lock);
        memset(idx, 0, sizeof *idx);
}

struct old_index {
        char *path;
        time_t mtime;
};

static int newest_first(const void *a, const void *b)
{
        const struct old_index *x = a, *y = b;
        if (x->mtime != y->mtime)
                return x->mtime < y->mtime ? 1 : -1;
        return strcmp(x->path, y->path);
}

void dl_member_index_store(const struct dl_cache *c, const struct dl_layer *l)
{
        struct dl_error ignored;
        char *dir = index_dir(c);
        if (dl_mkdir_p(dir, 0755, &ignored) != DL_OK) {
                free(dir);
                return;
        }
        struct dl_buf text = {0};
        dl_buf_puts(&text, index_magic);
        for (size_t i = 0; i < l->n_members; i++)
                dl_buf_printf(&text, "%s %llu %llu %llu\n", l->members[i].key,
                              (unsigned long long)l->members[i].offset,
                              (unsigned long long)l->members[i].length,
                              (unsigned long long)l->members[i].isize);
        char *name = dl_asprintf("%s/%s.idx", dir, l->digest);
        dl_write_file_unsynced(name, text.data, text.len, 0644, &ignored);
        free(name);
        dl_buf_free(&text);

        /* Prune: lists whose blob is gone, then all but the newest few. */
        struct old_index *v = NULL;
        size_t n = 0;
        DIR *d = opendir(dir);
        struct dirent *e;
        char digest[DL_SHA256_HEX];
        while (d && (e = readdir(d))) {
                if (!index_name(e->d_name, digest))
                        continue;
                char *path = dl_path_join(dir, e->d_name);
                struct stat st;
                struct dl_cache_blob blob;
                bool have = dl_cache_blob_find(c, digest, &blob);
                dl_cache_blob_free(&blob);
                if (!have || stat(path, &st) != 0) {
                        unlink(path);
                        free(path);
                        continue;
                }
                v = dl_realloc(v, (n + 1) * sizeof *v);
                v[n++] = (struct old_index){path, st.st_mtime};
        }
        if (d)
                closedir(d);
        if (n > 1)
                qsort(v, n, sizeof *v, newest_first);
        for (size_t i = 0; i < n; i++) {
                if (i >= DL_LAYER_KEEP_INDEXES)
                        unlink(v[i].path);
                free(v[i].path);
        }
        free(v);
        free(dir);
}
