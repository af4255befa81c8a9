/* The image layer: a tar stream of the staging tree in path order with numeric
 * owners and clamped mtimes, gzip-compressed with a header that has no name and no
 * time. The digest of the compressed blob and the diff_id of the tar are computed
 * while writing. */
#ifndef DISTILL_LAYER_H
#define DISTILL_LAYER_H

#include <pthread.h>
#include <stdint.h>

#include "distill/cache.h"
#include "distill/error.h"
#include "distill/fstree.h"
#include "distill/util.h"

/* One gzip member of a layer blob. Its key stands for the uncompressed bytes: it
 * is computed from the metadata and content digests of the entries the member
 * covers, so finding a member of an earlier layer costs no hashing of contents. */
struct dl_layer_member {
        char key[DL_SHA256_HEX];
        uint64_t offset, length; /* in the compressed blob */
        uint64_t isize;          /* uncompressed bytes */
};

struct dl_layer {
        char digest[DL_SHA256_HEX];  /* sha256 of the gzip blob */
        char diff_id[DL_SHA256_HEX]; /* sha256 of the uncompressed tar */
        uint64_t size;               /* bytes of the gzip blob */
        uint64_t tar_size;
        struct dl_layer_member *members; /* in blob order; dl_layer_free frees them */
        size_t n_members;
        size_t n_reused; /* members copied from earlier layers */
};

/* The members of earlier layers kept in a cache, to copy instead of compressing. */
struct dl_member_index {
        struct dl_member_ref *refs; /* sorted by key */
        size_t n;
        int *fds;        /* the files holding the layer blobs, open for reading */
        uint64_t *bases; /* where each blob starts in its file */
        char (*digests)[DL_SHA256_HEX];
        /* Per blob: 0 not checked yet, 1 matches its digest, -1 damaged. A blob is
         * checked when a member is first copied from it, because a member's own
         * gzip trailer cannot show damage inside its compressed data. */
        int *checked;
        size_t n_fds;
        const struct dl_cache *cache;
        pthread_mutex_t lock;
};

/* Load the member lists stored in the cache (members/DIGEST.idx) whose layer blob
 * is still there. A damaged list is removed with a warning, and nothing here fails
 * a build. */
void dl_member_index_load(const struct dl_cache *c, struct dl_member_index *idx);
void dl_member_index_free(struct dl_member_index *idx);
/* Store the member list of l, whose blob the cache holds, and remove the lists of
 * blobs that are gone, keeping at most the newest DL_LAYER_KEEP_INDEXES. */
void dl_member_index_store(const struct dl_cache *c, const struct dl_layer *l);
#define DL_LAYER_KEEP_INDEXES 16

struct dl_layer_options {
        int threads;                   /* compression threads; 0: one per online core */
        struct dl_member_index *reuse; /* may be NULL */
        /* With tee, the blob's bytes also go to tee_fd, from its position on: the
         * output file, so that nothing copies the layer once it is written. */
        bool tee;
        int tee_fd;
        const char *tee_path; /* for errors */
};

void dl_layer_free(struct dl_layer *l);

/* Write the layer of t to path. Entries newer than epoch get epoch as mtime; entries
 * without a time (mtime -1) get epoch.
 *
 * The tar stream is cut into groups. An entry whose path hashes to 0 modulo
 * DL_LAYER_GROUP_SPACING ends a group, and a group is also cut every 2 MiB from its
 * start. A regular file of 64 KiB or more whose contents start with the magic
 * number of a compressed format (gzip, xz, zstd, bzip2, PNG, JPEG) is a group of
 * its own, written as stored deflate blocks. Each group becomes one gzip member,
 * which RFC 1952 allows. Go's gzip
 * reader (docker, podman, skopeo, containerd), Python's gzip module and GNU tar
 * read the members as one stream.
 * NOTE: Python tarfile's stream mode ("r|gz") and Rust flate2's GzDecoder stop
 * after the first member.
 * The cut depends only on the entries, so the bytes do not depend on the thread
 * count, and a group compressed before is copied from an earlier layer. */
int dl_layer_write(const struct dl_fstree *t, long long epoch, const char *path,
                   struct dl_layer *out, struct dl_error *err);
/* The same with options. With tee, path may be NULL: the blob goes to tee_fd alone. */
int dl_layer_write_with(const struct dl_fstree *t, long long epoch, const char *path,
                        const struct dl_layer_options *o, struct dl_layer *out,
                        struct dl_error *err);

/* Entries per group on average; larger groups compress slightly better. */
#define DL_LAYER_GROUP_SPACING 64
/* libdeflate's level for the layer: close to gzip -6 in size, several times faster. */
#define DL_LAYER_LEVEL 6

#endif
