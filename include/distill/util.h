/* Small helpers: allocation that aborts on exhaustion, string lists, growable
 * buffers, sha256, and files that appear whole or not at all. */
#ifndef DISTILL_UTIL_H
#define DISTILL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "distill/error.h"

void *dl_malloc(size_t n);
void *dl_calloc(size_t n, size_t size);
void *dl_realloc(void *p, size_t n);
char *dl_strdup(const char *s);
char *dl_strndup(const char *s, size_t n);
char *dl_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct dl_strlist {
        char **v;
        size_t n, cap;
};
void dl_strlist_push(struct dl_strlist *l, const char *s);
void dl_strlist_push_owned(struct dl_strlist *l, char *s);
bool dl_strlist_contains(const struct dl_strlist *l, const char *s);
void dl_strlist_sort(struct dl_strlist *l);
void dl_strlist_free(struct dl_strlist *l);

struct dl_buf {
        char *data;
        size_t len, cap;
};
void dl_buf_append(struct dl_buf *b, const void *data, size_t n);
void dl_buf_puts(struct dl_buf *b, const char *s);
void dl_buf_printf(struct dl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Return the contents as a NUL-terminated string owned by b. */
const char *dl_buf_str(struct dl_buf *b);
void dl_buf_free(struct dl_buf *b);

/* SHA-256 digests as 64 lowercase hex characters plus NUL. */
#define DL_SHA256_HEX 65
struct dl_sha256;
struct dl_sha256 *dl_sha256_new(void);
void dl_sha256_update(struct dl_sha256 *h, const void *data, size_t n);
void dl_sha256_final(struct dl_sha256 *h, char hex[DL_SHA256_HEX]); /* also frees h */
void dl_sha256_hex(const void *data, size_t n, char hex[DL_SHA256_HEX]);
/* The 32-byte digest itself. */
void dl_sha256_raw(const void *data, size_t n, unsigned char out[32]);
int dl_sha256_file(const char *path, char hex[DL_SHA256_HEX], uint64_t *size, struct dl_error *err);
bool dl_is_sha256_hex(const char *s);

int dl_read_file(const char *path, struct dl_buf *out, struct dl_error *err);
/* Write all n bytes to fd, retrying short writes. Returns 0, or -1 with errno set. */
int dl_write_all(int fd, const void *data, size_t n);
/* The SHA-256 of size bytes of fd from offset; -1 with errno when they cannot be
 * read (EIO when the file ends first). */
int dl_sha256_range(int fd, uint64_t offset, uint64_t size, char hex[DL_SHA256_HEX]);
/* Copy size bytes of in, from offset, to out at its position: in the kernel where
 * the file systems allow, else through a buffer. -1 with errno on failure. */
int dl_copy_range(int in, uint64_t offset, int out, uint64_t size);
/* Write data to path through a temporary file in the same directory, fsync, rename. */
int dl_write_file_atomic(const char *path, const void *data, size_t n, int mode,
                         struct dl_error *err);
/* The same without fsync, for cache entries that are checked on every use. */
int dl_write_file_unsynced(const char *path, const void *data, size_t n, int mode,
                           struct dl_error *err);
int dl_mkdir_p(const char *path, int mode, struct dl_error *err);
int dl_rm_rf(const char *path);
/* Create a new directory under $TMPDIR (or /tmp) named distill-PREFIX-XXXXXX. */
char *dl_mkdtemp(const char *prefix, struct dl_error *err);

char *dl_path_join(const char *a, const char *b);
/* The directory part of path ("." when it has none). */
char *dl_dirname(const char *path);

/* Parse "YYYYMMDDTHHMMSSZ"; return -1 when s is not such a timestamp. */
long long dl_parse_snapshot_time(const char *s);
/* Parse an RFC 2822 date as Release files write it; return -1 when invalid. */
long long dl_parse_rfc2822(const char *s);
/* Format seconds since the epoch as RFC 3339 UTC ("2026-12-04T00:00:00Z"). */
void dl_format_rfc3339(long long t, char out[32]);

#endif
