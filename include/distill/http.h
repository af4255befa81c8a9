/* HTTP(S) and file:// downloads with libcurl: timeouts, bounded retries with
 * backoff on transient failures, and parallel transfers. */
#ifndef DISTILL_HTTP_H
#define DISTILL_HTTP_H

#include <stddef.h>

#include "distill/error.h"
#include "distill/util.h"

struct dl_http_options {
        int max_attempts;     /* total tries for a transient failure */
        long connect_timeout; /* seconds */
        long stall_timeout;   /* seconds without a byte before a transfer is aborted */
        int max_parallel;     /* transfers at once */
        long backoff_ms;      /* first retry delay; doubles each retry */
};

void dl_http_defaults(struct dl_http_options *o);
int dl_http_global_init(struct dl_error *err);

/* Fetch url into memory. A 404 or 410 returns DL_ENETWORK with *status set, so that
 * callers can fall back to another path; status is the last HTTP status (0 if none). */
int dl_http_get(const struct dl_http_options *o, const char *url, struct dl_buf *out, long *status,
                struct dl_error *err);

/* One file to download in a batch. The body is written to path. */
struct dl_http_job {
        const char *url;
        const char *path;
        int result; /* dl_code */
        long status;
        char *error; /* message when result != DL_OK */
        /* Called on the calling thread as soon as this job's body is complete, while
         * other jobs may still run, or NULL. */
        void (*on_done)(struct dl_http_job *job, void *user);
        void *user;
};

/* Download every job, at most o->max_parallel at once. Return DL_OK when all
 * succeeded; otherwise the first failure's code, with each job's own result set. */
int dl_http_get_many(const struct dl_http_options *o, struct dl_http_job *jobs, size_t n,
                     struct dl_error *err);

#endif
