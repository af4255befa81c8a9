/* The image layer: a tar stream of the staging tree in path order with numeric
 * owners and clamped mtimes, gzip-compressed with a header that has no name and no
 * time. The digest of the compressed blob and the diff_id of the tar are computed
 * while writing. */
#ifndef DISTILL_LAYER_H
#define DISTILL_LAYER_H

#include <stdint.h>

#include "distill/error.h"
#include "distill/fstree.h"
#include "distill/util.h"

struct dl_layer {
        char digest[DL_SHA256_HEX];  /* sha256 of the gzip blob */
        char diff_id[DL_SHA256_HEX]; /* sha256 of the uncompressed tar */
        uint64_t size;               /* bytes of the gzip blob */
        uint64_t tar_size;
};

/* Write the layer of t to path. Entries newer than epoch get epoch as mtime; entries
 * without a time (mtime -1) get epoch. */
int dl_layer_write(const struct dl_fstree *t, long long epoch, const char *path,
                   struct dl_layer *out, struct dl_error *err);

#endif
