/* Software bills of materials for a built image: SPDX 2.3 JSON or CycloneDX 1.5
 * JSON, one package element per Debian package and platform. */
#ifndef DISTILL_SBOM_H
#define DISTILL_SBOM_H

#include <stddef.h>

#include "distill/error.h"
#include "distill/fstree.h"
#include "distill/resolve.h"
#include "distill/spec.h"
#include "distill/unpack.h"

enum dl_sbom_format { DL_SBOM_SPDX, DL_SBOM_CYCLONEDX };

/* One platform of the image: its packages (by owner index, as unpacked), their
 * control files, and its tree, from which licences are read
 * (/usr/share/doc/PACKAGE/copyright). */
struct dl_sbom_platform {
        const char *arch; /* Debian architecture */
        const struct dl_package *packages;
        const struct dl_deb_control *controls;
        size_t n_packages;
        const struct dl_fstree *tree;
};

struct dl_sbom_input {
        const struct dl_spec *spec; /* names, and the source URLs for download locations */
        const char *ref;            /* NAME:TAG of the image */
        const char *digest;         /* sha256 hex of what index.json points at */
        long long epoch;            /* creation time of the document */
        const struct dl_sbom_platform *platforms;
        size_t n_platforms;
};

/* Parse "spdx" or "cyclonedx"; DL_EUSAGE otherwise. */
int dl_sbom_parse_format(const char *name, enum dl_sbom_format *out, struct dl_error *err);

/* Write the document to path, whole or not at all. Equal inputs give equal bytes:
 * no wall-clock time and no random identifiers (UUIDs and SPDX namespaces derive
 * from the digest). */
int dl_sbom_write(const struct dl_sbom_input *in, enum dl_sbom_format format, const char *path,
                  struct dl_error *err);

#endif
