/* The output: one tarball that is an OCI image layout (oci-layout, index.json,
 * blobs/sha256/...) and also a Docker archive (manifest.json pointing into
 * blobs/sha256), written under a temporary name and renamed when complete. */
#ifndef DISTILL_OCI_H
#define DISTILL_OCI_H

#include <stdint.h>

#include "distill/error.h"
#include "distill/layer.h"
#include "distill/spec.h"
#include "distill/util.h"

/* One platform's image: its layer and what its config needs. */
struct dl_oci_image {
        const char *arch; /* Debian architecture */
        const char *layer_path;
        const struct dl_layer *layer;
        size_t n_packages;
        const struct dl_keyvals *extra_env;
};

/* The output file of a single-platform build, begun before its layer is written so
 * that the layer writer puts the layer's bytes straight into it instead of the
 * build copying them afterwards. It contains the two directory entries, then room for
 * the layer's header; fd is where the layer's bytes go. */
struct dl_oci_stream {
        char *tmp; /* the temporary output file, renamed by dl_oci_write */
        int fd;
        long long epoch;
};

int dl_oci_stream_open(const char *output, long long epoch, struct dl_oci_stream *s,
                       struct dl_error *err);
/* Remove the temporary file of a stream that dl_oci_write did not finish. */
void dl_oci_stream_close(struct dl_oci_stream *s);

struct dl_oci_input {
        const struct dl_spec *spec;
        /* Several platforms: index.json points at an image index listing one manifest
         * per platform, and manifest.json lists images[docker_image]. With n_images 0
         * the single-platform fields below are used and index.json lists the manifest
         * itself. */
        const struct dl_oci_image *images;
        size_t n_images;
        size_t docker_image;
        const char *arch;                   /* Debian architecture */
        const char *ref;                    /* NAME:TAG */
        const char *user;                   /* numeric "uid:gid", or NULL */
        const struct dl_keyvals *extra_env; /* added after the spec's env, or NULL */
        long long epoch;                    /* created time */
        const char *layer_path;             /* the gzip blob */
        const struct dl_layer *layer;
        size_t n_packages;
        /* A single-platform build's output, which already holds the layer's bytes; or
         * NULL. dl_oci_write finishes it, and the stream is done with. */
        struct dl_oci_stream *stream;
};

struct dl_oci_result {
        char manifest_digest[DL_SHA256_HEX];
        char config_digest[DL_SHA256_HEX];
        uint64_t size; /* bytes of the output tarball */
};

/* OCI platform names for a Debian architecture: amd64, arm64 (variant v8), arm
 * (variant v7 for armhf, v5 for armel), 386, ppc64le, ... */
void dl_oci_platform(const char *debian_arch, const char **arch, const char **variant);

int dl_oci_write(const struct dl_oci_input *in, const char *output, struct dl_oci_result *out,
                 struct dl_error *err);

#endif
