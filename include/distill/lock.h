/* The lock file: the resolved package set of every architecture, with the sources,
 * Release and index digests it came from, and a digest of the spec's resolution
 * inputs. JSON with sorted keys and stable formatting, written only by
 * `distill lock`, so an unchanged resolution rewrites identical bytes. */
#ifndef DISTILL_LOCK_H
#define DISTILL_LOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/error.h"
#include "distill/resolve.h"
#include "distill/sources.h"
#include "distill/spec.h"

/* Packages of one architecture, as the lock records them. */
struct dl_lock_arch {
        char *arch;
        struct dl_resolution res;
};

struct dl_lock {
        char *inputs_digest; /* sha256 hex of the canonical resolution inputs */
        char *inputs_json;   /* those inputs, to name what changed */
        struct dl_lock_arch *archs;
        size_t n_archs;
        long long newest_date; /* newest Release Date the lock was made from, -1 if none */
        /* Release Date per "URL suite", for replay checks. */
        struct dl_keyvals release_dates;
};

/* SPEC.yaml -> SPEC.lock.json beside it. Caller frees. */
char *dl_lock_path(const char *spec_path);

/* The canonical JSON of the spec's resolution inputs (sources, suites,
 * components, architectures, packages, exclude) and its sha256. */
char *dl_lock_inputs_json(const struct dl_spec *spec);
void dl_lock_inputs_digest(const struct dl_spec *spec, char hex[DL_SHA256_HEX]);

/* One architecture's resolution and the sources it was read from. */
struct dl_lock_input_arch {
        const char *arch;
        const struct dl_sources *sources;
        const struct dl_resolution *res;
};

int dl_lock_write(const char *path, const struct dl_spec *spec,
                  const struct dl_lock_input_arch *archs, size_t n, struct dl_error *err);

/* Read a lock; DL_ESTALE... is not decided here: callers compare inputs. Returns
 * DL_EIO with err when the file is missing (errno ENOENT: *missing set) and DL_ESPEC
 * when it is malformed. */
int dl_lock_read(const char *path, const struct dl_spec *spec, struct dl_lock *out, bool *missing,
                 struct dl_error *err);
void dl_lock_free(struct dl_lock *l);

/* Describe how the spec's inputs differ from the lock's, for messages. Caller frees. */
char *dl_lock_describe_drift(const struct dl_lock *l, const struct dl_spec *spec);

#endif
