/* Unpacking .deb files (ar archives holding control.tar.* and data.tar.*) into the
 * staging tree with libarchive. Maintainer scripts are never run. */
#ifndef DISTILL_UNPACK_H
#define DISTILL_UNPACK_H

#include <stdbool.h>

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

/* The packages being unpacked, by owner index, so that a path shipped twice can
 * name both packages and honour Replaces. */
struct dl_unpack_context {
        struct dl_fstree *tree;
        bool merged_usr;
        unsigned long long max_file_size;         /* bytes; 0 means no limit */
        const struct dl_strlist *allow_overwrite; /* globs on absolute paths */
        const struct dl_strlist *paths_exclude;   /* never unpacked, unless ... */
        const struct dl_strlist *paths_include;   /* ... one of these matches */
        size_t n_filtered;                        /* entries dropped so far */
        /* When set, the package's data.tar is read from this file (any compression
         * libarchive reads) instead of the .deb: a copy dl_unpack_prepare_data made. */
        const char *data_tar;
        const char *const *names;
        const char *const *versions;
        char **replaces; /* each package's Replaces field, filled as packages unpack */
};

/* Unpack deb_path as package number owner. Fills ctl. */
int dl_unpack_deb(struct dl_unpack_context *ctx, int owner, const char *deb_path,
                  struct dl_deb_control *ctl, struct dl_error *err);
void dl_deb_control_free(struct dl_deb_control *ctl);

/* Decompress the data.tar member of deb_path and store it at dest compressed with
 * zstd at a fast level, through a temporary file renamed into place. Reading that
 * copy back is several times faster than decompressing xz, so it is what a build
 * unpacks, and it lets several cores decompress packages at once. */
int dl_unpack_prepare_data(const char *deb_path, const char *dest, struct dl_error *err);

/* The value of one field of a control file (first paragraph), or NULL. Caller frees. */
char *dl_control_field(const char *control, const char *field);

/* Whether a relationship field such as Replaces ("a (<< 2), b") names package name
 * at version. */
bool dl_relation_matches(const char *field, const char *name, const char *version);

#endif
