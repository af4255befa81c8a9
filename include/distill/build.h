/* The build command: every stage from the spec to the image tarball. */
#ifndef DISTILL_BUILD_H
#define DISTILL_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "distill/error.h"
#include "distill/sources.h"
#include "distill/util.h"

struct dl_build_options {
        const char *spec_path;
        const char *output;    /* NULL: ./NAME.tar */
        const char *tag;       /* NAME:TAG; NULL: the spec's name and latest */
        const char *cache_dir; /* NULL: the default cache */
        const char *rootfs;    /* keep the staging tree here; NULL: a temporary directory */
        struct dl_mirrors mirrors;
        int jobs;
};

struct dl_build_result {
        char *output;
        char manifest_digest[DL_SHA256_HEX];
        uint64_t size;
        size_t n_packages;
};

int dl_build(const struct dl_build_options *o, struct dl_build_result *res, struct dl_error *err);
void dl_build_result_free(struct dl_build_result *res);

/* SOURCE_DATE_EPOCH when set (an error when malformed); otherwise -1. */
int dl_source_date_epoch(long long *epoch, struct dl_error *err);

#endif
