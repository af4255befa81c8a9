/* The image's file system as a metadata table. Owners, modes, times, device
 * numbers and link targets live here, so a build run by an ordinary user still
 * records root-owned setuid files faithfully. Package file contents live in one
 * blob file, generated files and directories in a staging directory.
 * Paths are relative ("usr/bin/php"), and the root is "". */
#ifndef DISTILL_FSTREE_H
#define DISTILL_FSTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distill/error.h"
#include "distill/util.h"

enum dl_node_type {
        DL_NODE_DIR,
        DL_NODE_FILE,
        DL_NODE_SYMLINK,
        DL_NODE_HARDLINK, /* target: the path of the regular file it links to */
        DL_NODE_CHAR,
        DL_NODE_BLOCK,
        DL_NODE_FIFO,
};

struct dl_xattr {
        char *name;
        void *value;
        size_t size;
};

struct dl_node {
        char *path;
        enum dl_node_type type;
        unsigned mode; /* permission bits including setuid, setgid and sticky */
        unsigned long uid, gid;
        long long mtime;
        uint64_t size; /* regular files */
        char *target;  /* symlink target or hardlink target path */
        char sha256[DL_SHA256_HEX];
        char md5[33];
        unsigned dev_major, dev_minor;
        int owner; /* index of the package that shipped it; -1 when generated */
        bool removed;
        bool filtered; /* dropped by the spec's path filter (removed is set too) */
        bool in_blob;  /* contents at offset in the tree's blob, not in a staged file */
        uint64_t offset;
        struct dl_xattr *xattrs;
        size_t n_xattrs;
};

struct dl_fstree {
        char *root; /* staging directory */
        int root_fd;
        /* Package file contents, appended one after another to one unlinked file in
         * the staging directory: creating one file per package file cost more than
         * anything else in a build. dl_fstree_materialize writes them out. */
        int blob_fd;
        struct dl_node **nodes;
        size_t n_nodes;
        size_t *slots; /* open-addressing hash of node index + 1 */
        size_t n_slots;
};

int dl_fstree_init(struct dl_fstree *t, const char *root, struct dl_error *err);
void dl_fstree_free(struct dl_fstree *t);

struct dl_node *dl_fstree_get(const struct dl_fstree *t, const char *path);
/* Return the node at path, creating an empty one (type DL_NODE_DIR, removed) when
 * there is none; callers fill it. */
struct dl_node *dl_fstree_put(struct dl_fstree *t, const char *path);

/* Normalize a member name from a package ("./usr/bin/x", "usr//bin/x/") into a
 * relative path. Reject absolute names and ".." components. When merged_usr is set,
 * rewrite bin/, sbin/, lib*, into usr/. Returns NULL and fills err (DL_EPACKAGE)
 * when the name is unsafe; "" stands for the root. */
char *dl_fstree_normalize(const char *name, bool merged_usr, const char *what,
                          struct dl_error *err);

/* Make every parent directory of path exist in the table and on disk, as root-owned
 * 0755 directories where the packages did not ship them. A parent that is a symlink
 * or a file in the table is an error (a write through a symlink). */
int dl_fstree_make_parents(struct dl_fstree *t, const char *path, const char *what,
                           struct dl_error *err);

/* Open path under the staging root for writing, refusing to follow symlinks at any
 * component. Returns a file descriptor or -1 with err filled. */
int dl_fstree_open_write(struct dl_fstree *t, const char *path, struct dl_error *err);
int dl_fstree_open_read(const struct dl_fstree *t, const char *path, struct dl_error *err);

/* Fill err for a failed write (errno) of path under the staging directory. */
int dl_fstree_write_error(const struct dl_fstree *t, const char *path, struct dl_error *err);

/* Write a whole regular file: contents on disk, metadata in the table. */
int dl_fstree_write_file(struct dl_fstree *t, const char *path, const void *data, size_t n,
                         unsigned mode, unsigned long uid, unsigned long gid, long long mtime,
                         struct dl_error *err);
int dl_fstree_add_symlink(struct dl_fstree *t, const char *path, const char *target,
                          long long mtime, struct dl_error *err);
int dl_fstree_add_dir(struct dl_fstree *t, const char *path, unsigned mode, unsigned long uid,
                      unsigned long gid, long long mtime, struct dl_error *err);
/* Staging-directory operations that never follow a symlink in a parent component. */
int dl_fstree_rename(struct dl_fstree *t, const char *from, const char *to, struct dl_error *err);
int dl_fstree_link(struct dl_fstree *t, const char *existing, const char *path,
                   struct dl_error *err);
void dl_fstree_unlink(struct dl_fstree *t, const char *path);

/* Mark path and everything below it removed (table and disk). */
void dl_fstree_remove(struct dl_fstree *t, const char *path);

/* Append the data of a file being unpacked to the blob; returns its offset in
 * *offset, or an error. Write with dl_fstree_blob_write, which must follow at once. */
int dl_fstree_blob_begin(struct dl_fstree *t, uint64_t *offset, struct dl_error *err);
/* Copy size bytes of the blob from offset to fd. */
int dl_fstree_blob_copy(const struct dl_fstree *t, uint64_t offset, uint64_t size,
                        int (*sink)(void *user, const void *data, size_t n), void *user,
                        struct dl_error *err);
/* Write every file kept in the blob, and every symlink (which lives in the table
 * alone), to its path in the staging directory, for --rootfs. */
int dl_fstree_materialize(struct dl_fstree *t, struct dl_error *err);

/* Read a staged regular file (following hardlinks in the table). */
int dl_fstree_read(const struct dl_fstree *t, const char *path, struct dl_buf *out,
                   struct dl_error *err);

/* The live nodes sorted by path bytes, as the layer writes them. Caller frees the
 * array (not the nodes). */
struct dl_node **dl_fstree_sorted(const struct dl_fstree *t, size_t *n);

#endif
