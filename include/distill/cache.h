/* A content-addressed cache: DIR/sha256/<hex> is a file whose SHA-256 is <hex>.
 * Entries are written under DIR/tmp and renamed into place after their digest is
 * checked, so concurrent builds sharing DIR never see a partial file. */
#ifndef DISTILL_CACHE_H
#define DISTILL_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "distill/error.h"

struct dl_cache {
        char *dir;
};

/* dir NULL: $XDG_CACHE_HOME/distill, or $HOME/.cache/distill. */
int dl_cache_open(struct dl_cache *c, const char *dir, struct dl_error *err);
void dl_cache_close(struct dl_cache *c);
/* The path an entry has (whether or not it exists). Caller frees. */
char *dl_cache_path(const struct dl_cache *c, const char *sha256);
bool dl_cache_has(const struct dl_cache *c, const char *sha256);
/* Whether the entry exists and its contents still match its name. A corrupt entry
 * is reported, removed, and counts as missing. */
bool dl_cache_valid(const struct dl_cache *c, const char *sha256);
/* A new temporary path inside the cache, on the same file system as the entries. */
char *dl_cache_tmp_path(const struct dl_cache *c);
/* Check tmp against sha256 (and size unless it is UINT64_MAX), then rename it into
 * place. On a mismatch tmp is removed and DL_EVERIFY returned naming what. */
int dl_cache_commit(const struct dl_cache *c, const char *tmp, const char *sha256, uint64_t size,
                    const char *what, struct dl_error *err);
/* Rename tmp into place as sha256 without reading it: for a file whose digest the
 * caller computed while writing it. */
int dl_cache_adopt(const struct dl_cache *c, const char *tmp, const char *sha256,
                   struct dl_error *err);

/* Layer blobs ----------------------------------------------------------------
 * A layer blob is a plain entry (sha256/DIGEST), or the member
 * blobs/sha256/DIGEST of an image archive a build wrote. images/DIGEST.tar is a
 * hard link to that archive, so the layer's bytes are on disk once for the output
 * and the cache. */
struct dl_cache_blob {
        char *path;
        uint64_t offset; /* where the blob starts in path */
        uint64_t size;
};

/* Where the blob digest is: false when the cache has it in neither form. */
bool dl_cache_blob_find(const struct dl_cache *c, const char *digest, struct dl_cache_blob *b);
void dl_cache_blob_free(struct dl_cache_blob *b);
/* Whether the blob exists and its bytes match digest. A blob that does not is
 * reported and removed, and counts as missing. */
bool dl_cache_blob_valid(const struct dl_cache *c, const char *digest);
/* Store the blob digest, which the finished image archive contains as its member
 * blobs/sha256/DIGEST. The archive is linked into images/, or where that fails
 * (another file system), the blob alone is copied to sha256/DIGEST. The archive
 * must not change afterwards. */
int dl_cache_store_blob_of(const struct dl_cache *c, const char *archive, const char *digest,
                           struct dl_error *err);

#endif
