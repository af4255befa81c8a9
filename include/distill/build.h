/* The commands that run the pipeline: build (spec to image tarball), lock (spec to
 * lock file) and why (the chain that pulled a package in). */
#ifndef DISTILL_BUILD_H
#define DISTILL_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "distill/error.h"
#include "distill/sbom.h"
#include "distill/sources.h"
#include "distill/util.h"

struct dl_build_options {
        const char *spec_path;
        const char *output;    /* NULL: ./NAME.tar */
        const char *tag;       /* NAME:TAG; NULL: the spec's name and latest */
        const char *cache_dir; /* NULL: the default cache */
        const char *rootfs;    /* keep the staging tree here; NULL: a temporary directory */
        const char *platform;  /* the architecture manifest.json lists; NULL: the first */
        struct dl_mirrors mirrors;
        int jobs;
        bool locked;                     /* fail unless the lock matches the spec */
        bool offline;                    /* use only the cache (needs a matching lock) */
        bool no_lock;                    /* resolve afresh even when a lock matches */
        const char *sbom;                /* --sbom FILE; NULL: none */
        enum dl_sbom_format sbom_format; /* --sbom-format; SPDX by default */
};

struct dl_build_result {
        char *output;
        char manifest_digest[DL_SHA256_HEX];
        uint64_t size;
        size_t n_packages; /* of the platform manifest.json lists */
};

int dl_build(const struct dl_build_options *o, struct dl_build_result *res, struct dl_error *err);
void dl_build_result_free(struct dl_build_result *res);

/* Resolve every architecture afresh and write the lock file beside the spec. */
int dl_lock_command(const struct dl_build_options *o, struct dl_error *err);
/* Compare the spec's resolution inputs with the lock's, without the network. */
int dl_lock_check_command(const struct dl_build_options *o, struct dl_error *err);
/* Print the chain that pulled package into each architecture's set. */
int dl_why_command(const struct dl_build_options *o, const char *package, struct dl_error *err);

/* SOURCE_DATE_EPOCH when set (an error when malformed); otherwise -1. */
int dl_source_date_epoch(long long *epoch, struct dl_error *err);

#endif
