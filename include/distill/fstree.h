/* The image's file system as a metadata table. Owners, modes, times, device
 * numbers and link targets live here, so a build run by an ordinary user still
 * records root-owned setuid files faithfully. The contents of regular files live
 * in blob files: the tree's own, in the staging directory, contains generated files,
 * and a caller may add others (such as one per unpacked package). Nothing else
 * touches the disk until dl_fstree_materialize writes the tree out, because
 * creating a directory or a file per entry cost more than anything else in a build.
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
        /* Regular files: a SHA-256 that names the contents. For a generated file
         * it is the digest of the contents. For a package's file it is the digest
         * of where they come from (the record's id, offset, size and CRC-32):
         * the record's id contains the .deb's SHA-256, so no byte is hashed. */
        char content_id[DL_SHA256_HEX];
        uint32_t crc32; /* regular files: zlib's CRC-32 of the contents */
        char md5[33];
        unsigned dev_major, dev_minor;
        int owner; /* index of the package that shipped it; -1 when generated */
        bool removed;
        bool filtered;   /* dropped by the spec's path filter (removed is set too) */
        unsigned blob;   /* regular files: index of the blob with the contents */
        uint64_t offset; /* ... and where they start in it */
        struct dl_xattr *xattrs;
        size_t n_xattrs;
};

struct dl_fstree {
        char *root;    /* staging directory */
        int *blob_fds; /* [0]: the tree's own blob, an unlinked file in the staging
                        * directory that generated files are appended to */
        size_t n_blobs;
        uint64_t own_end; /* bytes in blob 0 */
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

/* Make every parent directory of path exist in the table, as root-owned 0755
 * directories where the packages did not ship them. A parent that is a symlink or
 * a file in the table is an error (a write through a symlink). */
int dl_fstree_make_parents(struct dl_fstree *t, const char *path, const char *what,
                           struct dl_error *err);

/* Write a whole regular file: contents to the tree's own blob, metadata in the table. */
int dl_fstree_write_file(struct dl_fstree *t, const char *path, const void *data, size_t n,
                         unsigned mode, unsigned long uid, unsigned long gid, long long mtime,
                         struct dl_error *err);
int dl_fstree_add_symlink(struct dl_fstree *t, const char *path, const char *target,
                          long long mtime, struct dl_error *err);
int dl_fstree_add_dir(struct dl_fstree *t, const char *path, unsigned mode, unsigned long uid,
                      unsigned long gid, long long mtime, struct dl_error *err);

/* Mark path and everything below it removed. */
void dl_fstree_remove(struct dl_fstree *t, const char *path);

/* Hand the tree an open, readable blob file, which the tree closes. Returns its
 * index for dl_node.blob. */
unsigned dl_fstree_add_blob(struct dl_fstree *t, int fd);
/* Pass the contents of the regular file n to sink, in pieces. */
int dl_fstree_copy_contents(const struct dl_fstree *t, const struct dl_node *n,
                            int (*sink)(void *user, const void *data, size_t n), void *user,
                            struct dl_error *err);
/* Whether size bytes at offset_a of blob_a equal those at offset_b of blob_b; false
 * also when either cannot be read. */
bool dl_fstree_same_bytes(const struct dl_fstree *t, unsigned blob_a, uint64_t offset_a,
                          unsigned blob_b, uint64_t offset_b, uint64_t size);
/* Write the tree to the staging directory, for --rootfs: directories, regular
 * files, hard links and symlinks (devices and FIFOs stay in the table). Every step
 * refuses to follow a symlink found on disk. */
int dl_fstree_materialize(struct dl_fstree *t, struct dl_error *err);

/* Read a staged regular file (following hardlinks in the table). */
int dl_fstree_read(const struct dl_fstree *t, const char *path, struct dl_buf *out,
                   struct dl_error *err);

/* The live nodes sorted by path bytes, as the layer writes them. Caller frees the
 * array (not the nodes). */
struct dl_node **dl_fstree_sorted(const struct dl_fstree *t, size_t *n);

#endif
