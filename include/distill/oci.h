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
        uint64_t layer_offset; /* where the blob starts in layer_path */
};

/* A layer already written into a stream. */
struct dl_oci_stream_layer {
        char digest[DL_SHA256_HEX];
};

/* The output file, begun before the layers are written so that the layer writer
 * puts each layer's bytes straight into it instead of the build copying them
 * afterwards. It starts with the two directory entries. Each layer is its header,
 * filled in once the digest is known, its bytes and their padding. */
struct dl_oci_stream {
        char *tmp; /* the temporary output file, renamed by dl_oci_write */
        int fd;    /* positioned where the next bytes go */
        long long epoch;
        uint64_t end;          /* bytes of the finished parts */
        uint64_t layer_header; /* where the open layer's header goes */
        struct dl_oci_stream_layer *layers;
        size_t n_layers;
};

/* Create the temporary output file next to output, with the two directory entries. */
int dl_oci_stream_open(const char *output, long long epoch, struct dl_oci_stream *s,
                       struct dl_error *err);
/* Leave room for a layer's header. The layer's bytes follow at fd. */
int dl_oci_stream_begin_layer(struct dl_oci_stream *s, struct dl_error *err);
/* Finish the layer begun last: its header and padding. A layer with the digest of
 * an earlier one (a platform with only Architecture: all packages) is cut off
 * again, since the archive contains each blob once. */
int dl_oci_stream_end_layer(struct dl_oci_stream *s, const char *digest, uint64_t size,
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
        uint64_t layer_offset;              /* where it starts in layer_path */
        const struct dl_layer *layer;
        size_t n_packages;
        /* The output with every platform's layer in it already, or NULL.
         * dl_oci_write finishes it, and the stream is done with. */
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
