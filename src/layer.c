#include "distill/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* The sink behind libarchive: hash the tar, deflate it, hash and write the blob. */
struct sink {
        FILE *out;
        const char *path;
        z_stream z;
        struct dl_sha256 *tar_hash;
        struct dl_sha256 *blob_hash;
        uint64_t tar_size, blob_size;
        int error; /* errno of a failed write */
        unsigned char buf[1 << 16];
};

static int drain(struct sink *s, int flush)
{
        int zr;
        do {
                s->z.next_out = s->buf;
                s->z.avail_out = sizeof s->buf;
                zr = deflate(&s->z, flush);
                if (zr == Z_STREAM_ERROR)
                        return -1;
                size_t n = sizeof s->buf - s->z.avail_out;
                if (n) {
                        dl_sha256_update(s->blob_hash, s->buf, n);
                        if (fwrite(s->buf, 1, n, s->out) != n) {
                                s->error = errno ? errno : EIO;
                                return -1;
                        }
                        s->blob_size += n;
                }
        } while (s->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
        return 0;
}

static la_ssize_t sink_write(struct archive *a, void *user, const void *data, size_t n)
{
        struct sink *s = user;
        (void)a;
        dl_sha256_update(s->tar_hash, data, n);
        s->tar_size += n;
        s->z.next_in = (unsigned char *)data;
        s->z.avail_in = (uInt)n;
        if (drain(s, Z_NO_FLUSH) != 0) {
                archive_set_error(a, s->error ? s->error : EIO, "cannot write the layer");
                return -1;
        }
        return (la_ssize_t)n;
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
        int fd = dl_fstree_open_read(t, n->path, err);
        if (fd < 0)
                return err->code;
        static __thread char block[1 << 17];
        uint64_t left = n->size;
        while (left > 0) {
                ssize_t r = read(fd, block, left < sizeof block ? (size_t)left : sizeof block);
                if (r <= 0) {
                        rc = dl_fail(err, DL_EIO, "the staged file /%s changed size while writing the layer",
                                     n->path);
                        break;
                }
                if (archive_write_data(a, block, (size_t)r) != r) {
                        rc = dl_fail(err, DL_EIO, "cannot write the layer: %s", archive_error_string(a));
                        break;
                }
                left -= (uint64_t)r;
        }
        close(fd);
        return rc;
}

int dl_layer_write(const struct dl_fstree *t, long long epoch, const char *path,
                   struct dl_layer *out, struct dl_error *err)
{
        struct sink *s = dl_calloc(1, sizeof *s);
        struct archive *a = NULL;
        struct archive_entry *e = NULL;
        struct dl_node **nodes = NULL;
        size_t n = 0;
        int rc = DL_OK;

        memset(out, 0, sizeof *out);
        s->path = path;
        s->out = fopen(path, "wb");
        if (!s->out) {
                rc = dl_fail_errno(err, errno, "cannot create", path);
                free(s);
                return rc;
        }
        /* windowBits 16+15 selects a gzip wrapper; zlib writes MTIME 0, no FNAME, and
         * OS 3 (Unix), so the header does not depend on the build. */
        if (deflateInit2(&s->z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
                fclose(s->out);
                free(s);
                return dl_fail(err, DL_EINTERNAL, "cannot initialize zlib");
        }
        s->tar_hash = dl_sha256_new();
        s->blob_hash = dl_sha256_new();
        a = archive_write_new();
        e = archive_entry_new();
        /* PAX restricted: ustar headers, with a PAX record only where a name, link target,
         * id or xattr does not fit; never a global header. */
        archive_write_set_format_pax_restricted(a);
        archive_write_set_bytes_per_block(a, 10240);
        if (archive_write_open2(a, s, NULL, sink_write, NULL, NULL) != ARCHIVE_OK) {
                rc = dl_fail(err, DL_EINTERNAL, "cannot start the layer: %s", archive_error_string(a));
                goto out;
        }
        nodes = dl_fstree_sorted(t, &n);
        for (size_t i = 0; i < n && rc == DL_OK; i++)
                rc = write_entry(a, e, t, nodes[i], epoch, err);
        if (rc == DL_OK && archive_write_close(a) != ARCHIVE_OK)
                rc = dl_fail(err, DL_EIO, "cannot finish the layer: %s", archive_error_string(a));
        if (rc == DL_OK) {
                s->z.next_in = NULL;
                s->z.avail_in = 0;
                if (drain(s, Z_FINISH) != 0)
                        rc = dl_fail_errno(err, s->error ? s->error : EIO, "cannot write", path);
        }
out:
        if (s->error && rc == DL_OK)
                rc = dl_fail_errno(err, s->error, "cannot write", path);
        archive_write_free(a);
        archive_entry_free(e);
        free(nodes);
        deflateEnd(&s->z);
        if (fflush(s->out) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", path);
        if (fclose(s->out) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", path);
        dl_sha256_final(s->tar_hash, out->diff_id);
        dl_sha256_final(s->blob_hash, out->digest);
        out->size = s->blob_size;
        out->tar_size = s->tar_size;
        if (rc)
                unlink(path);
        free(s);
        return rc;
}
