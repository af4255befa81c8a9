/* Unpacking .deb files (ar archives holding control.tar.* and data.tar.*) with
 * libarchive. Maintainer scripts are never run.
 *
 * Two steps, so that several packages unpack at once and a later build reuses the
 * work: dl_deb_read decompresses one package into a record (its entries and a file
 * of their contents) on any thread, and dl_unpack_merge adds records to the tree in
 * the packages' order, where clashes between packages are decided. */
#ifndef DISTILL_UNPACK_H
#define DISTILL_UNPACK_H

#include <stdbool.h>
#include <stdint.h>

#include "distill/error.h"
#include "distill/fstree.h"
#include "distill/util.h"

/* The contents of one package's control archive. */
struct dl_deb_control {
        char *control;             /* the control file, as shipped */
        char *md5sums;             /* NULL when the package ships none */
        char *conffiles;           /* NULL when none */
        struct dl_strlist scripts; /* names of maintainer scripts present (postinst, ...) */
        char *postinst;            /* its text, for reporting what was skipped */
};

/* The options that change a package's record, besides the package itself. */
struct dl_unpack_options {
        bool merged_usr;
        unsigned long long max_file_size;       /* bytes; 0 means no limit */
        const struct dl_strlist *paths_exclude; /* never unpacked, unless ... */
        const struct dl_strlist *paths_include; /* ... one of these matches */
};

/* One member of data.tar, its name normalized. */
struct dl_deb_entry {
        char *path;
        enum dl_node_type type;
        bool filtered; /* dropped by the path filter: nothing else is set */
        unsigned mode;
        unsigned long uid, gid;
        long long mtime;
        uint64_t size;   /* regular files */
        uint64_t offset; /* where a regular file's contents start in the data file */
        char *target;    /* symlink target, or the normalized path a hard link names */
        uint32_t crc32;  /* regular files: zlib's CRC-32 of the contents */
        char md5[33];    /* computed only when the package ships no md5sums */
        unsigned dev_major, dev_minor;
        struct dl_xattr *xattrs;
        size_t n_xattrs;
};

struct dl_deb_record {
        struct dl_deb_control ctl;
        struct dl_deb_entry *entries;
        size_t n_entries;
        uint64_t data_size; /* bytes in the data file */
        /* The name of where the contents come from: the digest of the .deb with the
         * unpack options. The caller sets it, and it is not saved. Files take their
         * content identity from it (see dl_node.content_id). */
        char id[DL_SHA256_HEX];
};

/* Read deb_path (named by what in errors, such as "package bash") into rec,
 * appending the contents of its regular files to data_fd from its current
 * position, which must be offset 0. Safe to call from several threads at once. */
int dl_deb_read(const char *deb_path, const char *what, const struct dl_unpack_options *o,
                int data_fd, struct dl_deb_record *rec, struct dl_error *err);
void dl_deb_record_free(struct dl_deb_record *rec);

/* A record as bytes, for the cache, and back. The bytes end in their own SHA-256,
 * so a damaged or cut file fails to load instead of giving a wrong tree. */
void dl_deb_record_save(const struct dl_deb_record *rec, struct dl_buf *out);
int dl_deb_record_load(const void *data, size_t len, struct dl_deb_record *rec,
                       struct dl_error *err);

/* The packages being merged, by owner index, so that a path shipped twice can name
 * both packages and honour Replaces. */
struct dl_unpack_context {
        struct dl_fstree *tree;
        bool merged_usr;
        unsigned long long max_file_size;
        const struct dl_strlist *allow_overwrite; /* globs on absolute paths */
        const struct dl_strlist *paths_exclude;
        const struct dl_strlist *paths_include;
        size_t n_filtered; /* entries dropped so far */
        const char *const *names;
        const char *const *versions;
        char **replaces; /* each package's Replaces field, filled as packages merge */
};

/* Add rec to the tree as package number owner. Its contents are read from blob, an
 * index that dl_fstree_add_blob returned for its data file. */
int dl_unpack_merge(struct dl_unpack_context *ctx, int owner, const struct dl_deb_record *rec,
                    unsigned blob, struct dl_error *err);

/* Both steps at once, with the contents in a new unlinked file of the staging
 * directory. Fills ctl, which the caller frees even on failure. */
int dl_unpack_deb(struct dl_unpack_context *ctx, int owner, const char *deb_path,
                  struct dl_deb_control *ctl, struct dl_error *err);
void dl_deb_control_free(struct dl_deb_control *ctl);

/* The value of one field of a control file (first paragraph), or NULL. Caller frees. */
char *dl_control_field(const char *control, const char *field);

/* Whether a relationship field such as Replaces ("a (<< 2), b") names package name
 * at version. */
bool dl_relation_matches(const char *field, const char *name, const char *version);

#endif
