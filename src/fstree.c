#include "distill/fstree.h"

#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t hash_path(const char *s)
{
        size_t h = 1469598103934665603ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

static void rehash(struct dl_fstree *t)
{
        free(t->slots);
        t->n_slots = t->n_slots ? t->n_slots * 2 : 1024;
        t->slots = dl_calloc(t->n_slots, sizeof *t->slots);
        for (size_t i = 0; i < t->n_nodes; i++) {
                size_t s = hash_path(t->nodes[i]->path) & (t->n_slots - 1);
                while (t->slots[s])
                        s = (s + 1) & (t->n_slots - 1);
                t->slots[s] = i + 1;
        }
}

int dl_fstree_init(struct dl_fstree *t, const char *root, struct dl_error *err)
{
        memset(t, 0, sizeof *t);
        /* Unlinked at once: it never shows in the staging directory and goes away with
         * the process. */
        char *blob = dl_asprintf("%s/.distill-blob-XXXXXX", root);
        int fd = mkstemp(blob);
        int saved = errno;
        if (fd >= 0)
                unlink(blob);
        free(blob);
        if (fd < 0)
                return dl_fail_errno(err, saved, "cannot create a file in the staging directory",
                                     root);
        t->root = dl_strdup(root);
        dl_fstree_add_blob(t, fd);
        rehash(t);
        struct dl_node *n = dl_fstree_put(t, "");
        n->type = DL_NODE_DIR;
        n->mode = 0755;
        n->mtime = -1;
        return DL_OK;
}

unsigned dl_fstree_add_blob(struct dl_fstree *t, int fd)
{
        t->blob_fds = dl_realloc(t->blob_fds, (t->n_blobs + 1) * sizeof *t->blob_fds);
        t->blob_fds[t->n_blobs] = fd;
        return (unsigned)t->n_blobs++;
}

static void free_node(struct dl_node *n)
{
        free(n->path);
        free(n->target);
        for (size_t i = 0; i < n->n_xattrs; i++) {
                free(n->xattrs[i].name);
                free(n->xattrs[i].value);
        }
        free(n->xattrs);
        free(n);
}

void dl_fstree_free(struct dl_fstree *t)
{
        for (size_t i = 0; i < t->n_nodes; i++)
                free_node(t->nodes[i]);
        free(t->nodes);
        free(t->slots);
        free(t->root);
        for (size_t i = 0; i < t->n_blobs; i++)
                close(t->blob_fds[i]);
        free(t->blob_fds);
        memset(t, 0, sizeof *t);
}

struct dl_node *dl_fstree_get(const struct dl_fstree *t, const char *path)
{
        size_t s = hash_path(path) & (t->n_slots - 1);
        while (t->slots[s]) {
                struct dl_node *n = t->nodes[t->slots[s] - 1];
                if (strcmp(n->path, path) == 0)
                        return n;
                s = (s + 1) & (t->n_slots - 1);
        }
        return NULL;
}

struct dl_node *dl_fstree_put(struct dl_fstree *t, const char *path)
{
        struct dl_node *n = dl_fstree_get(t, path);
        if (n)
                return n;
        if ((t->n_nodes + 1) * 2 > t->n_slots)
                rehash(t);
        n = dl_calloc(1, sizeof *n);
        n->path = dl_strdup(path);
        n->owner = -1;
        n->mtime = -1;
        n->removed = true;
        t->nodes = dl_realloc(t->nodes, (t->n_nodes + 1) * sizeof *t->nodes);
        t->nodes[t->n_nodes++] = n;
        size_t s = hash_path(path) & (t->n_slots - 1);
        while (t->slots[s])
                s = (s + 1) & (t->n_slots - 1);
        t->slots[s] = t->n_nodes;
        return n;
}

char *dl_fstree_normalize(const char *name, bool merged_usr, const char *what, struct dl_error *err)
{
        static const char *const merged[] = {"bin",   "sbin",   "lib", "lib32",
                                             "lib64", "libx32", NULL};
        struct dl_buf out = {0};
        const char *p = name;

        if (name[0] == '/') {
                dl_fail(err, DL_EPACKAGE,
                        "%s: the member %s has an absolute name; a package may only ship relative "
                        "paths",
                        what, name);
                return NULL;
        }
        while (*p) {
                const char *slash = strchr(p, '/');
                size_t n = slash ? (size_t)(slash - p) : strlen(p);
                if (n == 2 && p[0] == '.' && p[1] == '.') {
                        dl_fail(err, DL_EPACKAGE,
                                "%s: the member %s contains a .. component, which would escape the "
                                "image root",
                                what, name);
                        dl_buf_free(&out);
                        return NULL;
                }
                if (n > 0 && !(n == 1 && p[0] == '.')) {
                        if (out.len)
                                dl_buf_append(&out, "/", 1);
                        else if (merged_usr)
                                for (int i = 0; merged[i]; i++)
                                        if (strlen(merged[i]) == n && !strncmp(p, merged[i], n)) {
                                                dl_buf_puts(&out, "usr/");
                                                break;
                                        }
                        dl_buf_append(&out, p, n);
                }
                p += n;
                while (*p == '/')
                        p++;
        }
        char *s = dl_strdup(out.data ? out.data : "");
        dl_buf_free(&out);
        return s;
}

int dl_fstree_make_parents(struct dl_fstree *t, const char *path, const char *what,
                           struct dl_error *err)
{
        char *copy = dl_strdup(path);
        int rc = DL_OK;

        for (char *s = strchr(copy, '/'); s && rc == DL_OK; s = strchr(s + 1, '/')) {
                *s = '\0';
                struct dl_node *n = dl_fstree_get(t, copy);
                if (!n || n->removed) {
                        n = dl_fstree_put(t, copy);
                        n->type = DL_NODE_DIR;
                        n->mode = 0755;
                        n->uid = n->gid = 0;
                        n->mtime = -1;
                        n->owner = -1;
                        n->removed = false;
                } else if (n->type == DL_NODE_SYMLINK) {
                        rc = dl_fail(err, DL_EPACKAGE,
                                     "%s: %s would be written through the symlink /%s -> %s; a "
                                     "package may not write through a symlink",
                                     what, path, copy, n->target);
                } else if (n->type != DL_NODE_DIR) {
                        rc = dl_fail(err, DL_EPACKAGE,
                                     "%s: %s needs /%s to be a directory, but it is a file", what,
                                     path, copy);
                }
                *s = '/';
        }
        free(copy);
        return rc;
}

/* A failed write into a blob, named by the staging directory so that the user sees
 * which file system filled up. */
static int write_error(const struct dl_fstree *t, const char *path, struct dl_error *err)
{
        int saved = errno;
        char *label = dl_asprintf("cannot stage /%s in", path);
        int rc = dl_fail_errno(err, saved, label, t->root);
        free(label);
        return rc;
}

int dl_fstree_write_file(struct dl_fstree *t, const char *path, const void *data, size_t n,
                         unsigned mode, unsigned long uid, unsigned long gid, long long mtime,
                         struct dl_error *err)
{
        int rc = dl_fstree_make_parents(t, path, "generated file", err);
        if (rc)
                return rc;
        struct dl_node *node = dl_fstree_get(t, path);
        if (node && !node->removed && node->type == DL_NODE_DIR)
                return dl_fail(err, DL_ESPEC,
                               "cannot write the file /%s: the image has a directory there", path);
        /* Appended to the tree's own blob. A file written again leaves its old
         * contents there unused. */
        if (dl_write_all(t->blob_fds[0], data, n) != 0)
                return write_error(t, path, err);
        node = dl_fstree_put(t, path);
        free(node->target);
        node->target = NULL;
        node->type = DL_NODE_FILE;
        node->mode = mode & 07777;
        node->uid = uid;
        node->gid = gid;
        node->mtime = mtime;
        node->size = n;
        node->owner = -1;
        node->removed = false;
        node->blob = 0;
        node->offset = t->own_end;
        t->own_end += n;
        dl_sha256_hex(data, n, node->content_id);
        node->crc32 = (uint32_t)libdeflate_crc32(0, data, n);
        node->md5[0] = '\0';
        return DL_OK;
}

int dl_fstree_add_symlink(struct dl_fstree *t, const char *path, const char *target,
                          long long mtime, struct dl_error *err)
{
        int rc = dl_fstree_make_parents(t, path, "generated symlink", err);
        if (rc)
                return rc;
        struct dl_node *node = dl_fstree_get(t, path);
        if (node && !node->removed && node->type == DL_NODE_DIR)
                return dl_fail(err, DL_ESPEC,
                               "cannot create the symlink /%s: the image has a directory there",
                               path);
        node = dl_fstree_put(t, path);
        free(node->target);
        node->target = dl_strdup(target);
        node->type = DL_NODE_SYMLINK;
        node->mode = 0777;
        node->uid = node->gid = 0;
        node->mtime = mtime;
        node->size = 0;
        node->owner = -1;
        node->removed = false;
        return DL_OK;
}

int dl_fstree_add_dir(struct dl_fstree *t, const char *path, unsigned mode, unsigned long uid,
                      unsigned long gid, long long mtime, struct dl_error *err)
{
        int rc = dl_fstree_make_parents(t, path, "generated directory", err);
        if (rc)
                return rc;
        struct dl_node *node = dl_fstree_get(t, path);
        if (node && !node->removed && node->type != DL_NODE_DIR)
                return dl_fail(err, DL_ESPEC,
                               "cannot create the directory /%s: the image has a %s there", path,
                               node->type == DL_NODE_SYMLINK ? "symlink" : "file");
        node = dl_fstree_put(t, path);
        node->type = DL_NODE_DIR;
        node->mode = mode & 07777;
        node->uid = uid;
        node->gid = gid;
        node->mtime = mtime;
        node->removed = false;
        return DL_OK;
}

void dl_fstree_remove(struct dl_fstree *t, const char *path)
{
        size_t len = strlen(path);
        for (size_t i = 0; i < t->n_nodes; i++) {
                struct dl_node *n = t->nodes[i];
                if (n->removed || strncmp(n->path, path, len) != 0 ||
                    (n->path[len] != '\0' && n->path[len] != '/'))
                        continue;
                n->removed = true;
        }
}

int dl_fstree_copy_contents(const struct dl_fstree *t, const struct dl_node *n,
                            int (*sink)(void *user, const void *data, size_t n), void *user,
                            struct dl_error *err)
{
        static __thread char block[1 << 17];
        uint64_t offset = n->offset, size = n->size;
        if (n->blob >= t->n_blobs)
                return dl_fail(err, DL_EINTERNAL, "/%s: no blob %u", n->path, n->blob);
        while (size > 0) {
                size_t want = size < sizeof block ? (size_t)size : sizeof block;
                ssize_t r = pread(t->blob_fds[n->blob], block, want, (off_t)offset);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return dl_fail(err, DL_EIO, "cannot read the staged contents of /%s: %s",
                                       n->path, r < 0 ? strerror(errno) : "the blob ends early");
                int rc = sink(user, block, (size_t)r);
                if (rc)
                        return dl_fail(err, rc, "cannot pass on the staged contents of /%s",
                                       n->path);
                offset += (uint64_t)r;
                size -= (uint64_t)r;
        }
        return DL_OK;
}

bool dl_fstree_same_bytes(const struct dl_fstree *t, unsigned blob_a, uint64_t offset_a,
                          unsigned blob_b, uint64_t offset_b, uint64_t size)
{
        static __thread char a[1 << 16], b[1 << 16];
        if (blob_a >= t->n_blobs || blob_b >= t->n_blobs)
                return false;
        while (size > 0) {
                size_t want = size < sizeof a ? (size_t)size : sizeof a;
                if (pread(t->blob_fds[blob_a], a, want, (off_t)offset_a) != (ssize_t)want ||
                    pread(t->blob_fds[blob_b], b, want, (off_t)offset_b) != (ssize_t)want ||
                    memcmp(a, b, want) != 0)
                        return false;
                offset_a += want;
                offset_b += want;
                size -= want;
        }
        return true;
}

static int append_to_buf(void *user, const void *data, size_t n)
{
        dl_buf_append(user, data, n);
        return DL_OK;
}

struct fd_sink {
        int fd;
        int error;
};

static int write_to_fd(void *user, const void *data, size_t n)
{
        struct fd_sink *s = user;
        if (dl_write_all(s->fd, data, n) != 0) {
                s->error = errno;
                return DL_EIO;
        }
        return DL_OK;
}

/* Open the directory that contains path's last component, walking from dirfd
 * without following a symlink at any step: a symlink planted on disk is never a
 * way out of the staging directory. Sets *base to that component. */
static int open_parent(int root_fd, const char *path, const char **base, struct dl_error *err)
{
        int fd = dup(root_fd);
        const char *p = path;

        if (fd < 0)
                return dl_fail_errno(err, errno, "cannot open the directory of", path), -1;
        for (;;) {
                const char *slash = strchr(p, '/');
                if (!slash) {
                        *base = p;
                        return fd;
                }
                char *comp = dl_strndup(p, (size_t)(slash - p));
                int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                free(comp);
                close(fd);
                if (next < 0) {
                        dl_fail_errno(err, errno, "cannot open the directory of", path);
                        return -1;
                }
                fd = next;
                p = slash + 1;
        }
}

/* Write one node under root_fd. Parents come first in path order, so they exist. */
static int materialize_node(const struct dl_fstree *t, int root_fd, const struct dl_node *node,
                            struct dl_error *err)
{
        const char *base;
        int rc = DL_OK;
        if (node->type != DL_NODE_DIR && node->type != DL_NODE_FILE &&
            node->type != DL_NODE_SYMLINK && node->type != DL_NODE_HARDLINK)
                return DL_OK; /* devices and FIFOs: recorded for the layer only */
        int dirfd = open_parent(root_fd, node->path, &base, err);
        if (dirfd < 0)
                return err->code;
        if (node->type == DL_NODE_DIR) {
                if (mkdirat(dirfd, base, 0755) != 0 && errno != EEXIST)
                        rc = dl_fail_errno(err, errno, "cannot create the directory", node->path);
        } else if (node->type == DL_NODE_SYMLINK) {
                unlinkat(dirfd, base, 0);
                if (symlinkat(node->target, dirfd, base) != 0)
                        rc = dl_fail_errno(err, errno, "cannot create the symlink", node->path);
        } else if (node->type == DL_NODE_HARDLINK) {
                const char *tbase;
                int tdir = open_parent(root_fd, node->target, &tbase, err);
                if (tdir < 0) {
                        close(dirfd);
                        return err->code;
                }
                unlinkat(dirfd, base, 0);
                if (linkat(tdir, tbase, dirfd, base, 0) != 0)
                        rc = dl_fail_errno(err, errno, "cannot create the hard link", node->path);
                close(tdir);
        } else {
                /* Whatever is at this name (a symlink, an older file) is replaced, never
                 * followed. */
                unlinkat(dirfd, base, 0);
                int fd =
                    openat(dirfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd < 0) {
                        rc = dl_fail_errno(err, errno, "cannot create the file", node->path);
                } else {
                        struct fd_sink s = {fd, 0};
                        rc = dl_fstree_copy_contents(t, node, write_to_fd, &s, err);
                        if (rc && s.error)
                                rc = dl_fail_errno(err, s.error, "cannot write the file",
                                                   node->path);
                        if (close(fd) != 0 && rc == DL_OK)
                                rc = dl_fail_errno(err, errno, "cannot write the file", node->path);
                }
        }
        close(dirfd);
        if (rc)
                dl_error_wrap(err, "writing the tree to %s", t->root);
        return rc;
}

int dl_fstree_materialize(struct dl_fstree *t, struct dl_error *err)
{
        int root_fd = open(t->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                return dl_fail_errno(err, errno, "cannot open the staging directory", t->root);
        size_t n;
        struct dl_node **v = dl_fstree_sorted(t, &n);
        int rc = DL_OK;
        /* Hard links last: their targets may sort after them. */
        for (size_t i = 0; i < n && rc == DL_OK; i++)
                if (v[i]->type != DL_NODE_HARDLINK)
                        rc = materialize_node(t, root_fd, v[i], err);
        for (size_t i = 0; i < n && rc == DL_OK; i++)
                if (v[i]->type == DL_NODE_HARDLINK)
                        rc = materialize_node(t, root_fd, v[i], err);
        free(v);
        close(root_fd);
        return rc;
}

int dl_fstree_read(const struct dl_fstree *t, const char *path, struct dl_buf *out,
                   struct dl_error *err)
{
        const struct dl_node *n = dl_fstree_get(t, path);
        if (n && !n->removed && n->type == DL_NODE_HARDLINK)
                return dl_fstree_read(t, n->target, out, err);
        if (!n || n->removed || n->type != DL_NODE_FILE)
                return dl_fail(err, DL_EIO, "/%s is not a regular file in the image", path);
        int rc = dl_fstree_copy_contents(t, n, append_to_buf, out, err);
        dl_buf_str(out);
        return rc;
}

static int compare_nodes(const void *a, const void *b)
{
        return strcmp((*(struct dl_node *const *)a)->path, (*(struct dl_node *const *)b)->path);
}

struct dl_node **dl_fstree_sorted(const struct dl_fstree *t, size_t *n)
{
        struct dl_node **v = dl_calloc(t->n_nodes, sizeof *v);
        size_t k = 0;
        for (size_t i = 0; i < t->n_nodes; i++)
                if (!t->nodes[i]->removed && t->nodes[i]->path[0])
                        v[k++] = t->nodes[i];
        qsort(v, k, sizeof *v, compare_nodes);
        *n = k;
        return v;
}
