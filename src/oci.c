#include "distill/oci.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/cleanup.h"
#include "distill/log.h"

#define MT_INDEX      "application/vnd.oci.image.index.v1+json"
#define MT_MANIFEST   "application/vnd.oci.image.manifest.v1+json"
#define MT_CONFIG     "application/vnd.oci.image.config.v1+json"
#define MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"

void dl_oci_platform(const char *debian_arch, const char **arch, const char **variant)
{
        static const char *const map[][3] = {
            {"amd64", "amd64", NULL},     {"arm64", "arm64", "v8"},
            {"armhf", "arm", "v7"},       {"armel", "arm", "v5"},
            {"i386", "386", NULL},        {"ppc64el", "ppc64le", NULL},
            {"s390x", "s390x", NULL},     {"mips64el", "mips64le", NULL},
            {"riscv64", "riscv64", NULL}, {"loong64", "loong64", NULL},
        };
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
                if (strcmp(map[i][0], debian_arch) == 0) {
                        *arch = map[i][1];
                        *variant = map[i][2];
                        return;
                }
        *arch = debian_arch;
        *variant = NULL;
}

static json_t *string_array(const struct dl_strlist *l)
{
        json_t *a = json_array();
        for (size_t i = 0; i < l->n; i++)
                json_array_append_new(a, json_string(l->v[i]));
        return a;
}

static char *dump(json_t *j)
{
        /* Sorted keys and no white space: the bytes, and so the digests, depend only
         * on the content. */
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s) {
                fputs("distill: error: out of memory\n", stderr);
                abort();
        }
        return s;
}

static char *config_json(const struct dl_oci_input *in, const struct dl_oci_image *im)
{
        const struct dl_image *img = &in->spec->image;
        const char *arch, *variant;
        char created[32];
        json_t *root = json_object(), *cfg = json_object(), *env = json_array();
        bool has_path = dl_keyvals_get(&img->env, "PATH") != NULL;

        dl_oci_platform(im->arch, &arch, &variant);
        dl_format_rfc3339(in->epoch, created);
        if (!has_path)
                json_array_append_new(
                    env, json_string(
                             "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        for (size_t i = 0; i < img->env.n; i++) {
                char *kv = dl_asprintf("%s=%s", img->env.v[i].key, img->env.v[i].value);
                json_array_append_new(env, json_string(kv));
                free(kv);
        }
        for (size_t i = 0; im->extra_env && i < im->extra_env->n; i++) {
                char *kv = dl_asprintf("%s=%s", im->extra_env->v[i].key, im->extra_env->v[i].value);
                json_array_append_new(env, json_string(kv));
                free(kv);
        }
        json_object_set_new(cfg, "Env", env);
        if (img->has_entrypoint)
                json_object_set_new(cfg, "Entrypoint", string_array(&img->entrypoint));
        if (img->has_cmd)
                json_object_set_new(cfg, "Cmd", string_array(&img->cmd));
        if (img->workdir)
                json_object_set_new(cfg, "WorkingDir", json_string(img->workdir));
        if (in->user)
                json_object_set_new(cfg, "User", json_string(in->user));
        if (img->expose.n) {
                json_t *ports = json_object();
                for (size_t i = 0; i < img->expose.n; i++) {
                        char *p = strchr(img->expose.v[i], '/')
                                      ? dl_strdup(img->expose.v[i])
                                      : dl_asprintf("%s/tcp", img->expose.v[i]);
                        json_object_set_new(ports, p, json_object());
                        free(p);
                }
                json_object_set_new(cfg, "ExposedPorts", ports);
        }
        if (img->labels.n) {
                json_t *labels = json_object();
                for (size_t i = 0; i < img->labels.n; i++)
                        json_object_set_new(labels, img->labels.v[i].key,
                                            json_string(img->labels.v[i].value));
                json_object_set_new(cfg, "Labels", labels);
        }
        json_object_set_new(root, "architecture", json_string(arch));
        if (variant)
                json_object_set_new(root, "variant", json_string(variant));
        json_object_set_new(root, "os", json_string("linux"));
        json_object_set_new(root, "created", json_string(created));
        json_object_set_new(root, "config", cfg);
        json_t *rootfs = json_object(), *ids = json_array();
        char *diff = dl_asprintf("sha256:%s", im->layer->diff_id);
        json_array_append_new(ids, json_string(diff));
        free(diff);
        json_object_set_new(rootfs, "type", json_string("layers"));
        json_object_set_new(rootfs, "diff_ids", ids);
        json_object_set_new(root, "rootfs", rootfs);
        json_t *hist = json_array(), *h = json_object();
        char *by = dl_asprintf("distill build (%s)", in->spec->name);
        char *comment = dl_asprintf("%zu Debian packages", im->n_packages);
        json_object_set_new(h, "created", json_string(created));
        json_object_set_new(h, "created_by", json_string(by));
        json_object_set_new(h, "comment", json_string(comment));
        free(by);
        free(comment);
        json_array_append_new(hist, h);
        json_object_set_new(root, "history", hist);
        char *s = dump(root);
        json_decref(root);
        return s;
}

static json_t *descriptor(const char *media_type, const char *hex, uint64_t size)
{
        json_t *d = json_object();
        char *digest = dl_asprintf("sha256:%s", hex);
        json_object_set_new(d, "mediaType", json_string(media_type));
        json_object_set_new(d, "digest", json_string(digest));
        json_object_set_new(d, "size", json_integer((json_int_t)size));
        free(digest);
        return d;
}

/* One member of the output tar, from memory or from a file. */
struct member {
        char *name;
        const char *data;
        size_t len;
        const char *file;
        uint64_t file_offset; /* where the member's bytes start in file */
        uint64_t file_size;
        size_t platform; /* layers: the platform's index */
};

/* The order of the members: the two directories, the layers in platform order
 * (which a streamed output has before anything else is known), then the rest by
 * name. Every build of the same inputs writes the same bytes, streamed or not. */
static int member_rank(const struct member *m)
{
        if (!strcmp(m->name, "blobs/"))
                return 0;
        if (!strcmp(m->name, "blobs/sha256/"))
                return 1;
        return m->file ? 2 : 3;
}

static int compare_members(const void *a, const void *b)
{
        const struct member *x = a, *y = b;
        int rx = member_rank(x), ry = member_rank(y);
        if (rx != ry)
                return rx < ry ? -1 : 1;
        if (rx == 2 && x->platform != y->platform)
                return x->platform < y->platform ? -1 : 1;
        return strcmp(x->name, y->name);
}

/* A failed write into the output tarball, with the file and the system's reason. */
static int member_error(int saved, const struct member *m, const char *tmp, struct dl_error *err)
{
        return dl_fail(err, DL_EIO, "cannot write %s into %s: %s%s", m->name, tmp, strerror(saved),
                       saved == ENOSPC ? "; free some space and run the build again" : "");
}

/* A 12-byte numeric field: 11 octal digits and a NUL, or past that (8 GiB, or the
 * year 2242), the base-256 form that GNU tar, Go and libarchive read. */
static void put_number(unsigned char *field, uint64_t v)
{
        if (v <= 077777777777ULL) {
                char digits[16];
                snprintf(digits, sizeof digits, "%011llo", (unsigned long long)v);
                memcpy(field, digits, 12);
                return;
        }
        memset(field, 0, 12);
        field[0] = 0x80;
        for (int i = 0; i < 8; i++)
                field[11 - i] = (unsigned char)(v >> (8 * i));
}

/* A ustar header (POSIX.1-1988, magic "ustar" and version "00") for a member owned
 * by root. Every name here fits the 100-byte name field. */
static int ustar_header(unsigned char h[512], const char *name, bool dir, uint64_t size,
                        long long mtime)
{
        size_t len = strlen(name);
        if (len > 100)
                return -1;
        memset(h, 0, 512);
        memcpy(h, name, len);
        snprintf((char *)h + 100, 8, "%07o", dir ? 0755u : 0644u);
        snprintf((char *)h + 108, 8, "%07o", 0u);
        snprintf((char *)h + 116, 8, "%07o", 0u);
        put_number(h + 124, size);
        put_number(h + 136, (uint64_t)(mtime < 0 ? 0 : mtime));
        h[156] = dir ? '5' : '0';
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        /* The checksum counts its own field as eight spaces. */
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (int i = 0; i < 512; i++)
                sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum);
        h[155] = ' ';
        return 0;
}

/* Whether m is a directory: its name ends in a slash. */
static bool member_is_dir(const struct member *m)
{
        return m->name[strlen(m->name) - 1] == '/';
}

/* The bytes of m in the archive, without header and padding. */
static uint64_t member_size(const struct member *m)
{
        if (member_is_dir(m))
                return 0;
        if (m->file)
                return m->file_size;
        return m->len;
}

static int add_member(int fd, const struct member *m, long long epoch, const char *tmp,
                      uint64_t *offset, struct dl_error *err)
{
        static const char zeros[512];
        bool dir = member_is_dir(m);
        uint64_t size = member_size(m);
        unsigned char h[512];
        if (ustar_header(h, m->name, dir, size, epoch) != 0)
                return dl_fail(err, DL_EINTERNAL, "the member name %s is too long for ustar",
                               m->name);
        if (dl_write_all(fd, h, sizeof h) != 0)
                return member_error(errno, m, tmp, err);
        if (!dir && !m->file && dl_write_all(fd, m->data, m->len) != 0)
                return member_error(errno, m, tmp, err);
        if (!dir && m->file) {
                int in = open(m->file, O_RDONLY | O_CLOEXEC);
                struct stat st;
                if (in < 0)
                        return dl_fail_errno(err, errno, "cannot open", m->file);
                int rc = DL_OK;
                if (fstat(in, &st) != 0 || (uint64_t)st.st_size < m->file_offset ||
                    (uint64_t)st.st_size - m->file_offset < size)
                        rc = dl_fail(err, DL_EIO, "%s changed size while writing the image",
                                     m->file);
                else if (dl_copy_range(in, m->file_offset, fd, size) != 0)
                        rc = member_error(errno, m, tmp, err);
                close(in);
                if (rc)
                        return rc;
        }
        size_t pad = (size_t)((512 - size % 512) % 512);
        if (pad && dl_write_all(fd, zeros, pad) != 0)
                return member_error(errno, m, tmp, err);
        *offset += sizeof h + size + pad;
        return DL_OK;
}

/* The config and manifest of one platform, as blobs. */
struct platform_blobs {
        char *config;
        char config_hex[DL_SHA256_HEX];
        char *manifest;
        char manifest_hex[DL_SHA256_HEX];
};

static void make_platform(const struct dl_oci_input *in, const struct dl_oci_image *im,
                          struct platform_blobs *out)
{
        char created[32];
        out->config = config_json(in, im);
        dl_sha256_hex(out->config, strlen(out->config), out->config_hex);
        json_t *manifest = json_object(), *layers = json_array(), *ann = json_object();
        dl_format_rfc3339(in->epoch, created);
        json_object_set_new(manifest, "schemaVersion", json_integer(2));
        json_object_set_new(manifest, "mediaType", json_string(MT_MANIFEST));
        json_object_set_new(manifest, "config",
                            descriptor(MT_CONFIG, out->config_hex, strlen(out->config)));
        json_array_append_new(layers,
                              descriptor(MT_LAYER_GZIP, im->layer->digest, im->layer->size));
        json_object_set_new(manifest, "layers", layers);
        json_object_set_new(ann, "org.opencontainers.image.created", json_string(created));
        json_object_set_new(manifest, "annotations", ann);
        out->manifest = dump(manifest);
        json_decref(manifest);
        dl_sha256_hex(out->manifest, strlen(out->manifest), out->manifest_hex);
}

static json_t *manifest_descriptor(const struct dl_oci_image *im, const struct platform_blobs *b)
{
        const char *arch, *variant;
        json_t *md = descriptor(MT_MANIFEST, b->manifest_hex, strlen(b->manifest));
        json_t *platform = json_object();
        dl_oci_platform(im->arch, &arch, &variant);
        json_object_set_new(platform, "architecture", json_string(arch));
        json_object_set_new(platform, "os", json_string("linux"));
        if (variant)
                json_object_set_new(platform, "variant", json_string(variant));
        json_object_set_new(md, "platform", platform);
        return md;
}

static void add_ref(json_t *descriptor_json, const char *ref)
{
        json_t *ann = json_object();
        json_object_set_new(ann, "org.opencontainers.image.ref.name", json_string(ref));
        json_object_set_new(descriptor_json, "annotations", ann);
}

static json_t *index_of(json_t *manifests)
{
        json_t *index = json_object();
        json_object_set_new(index, "schemaVersion", json_integer(2));
        json_object_set_new(index, "mediaType", json_string(MT_INDEX));
        json_object_set_new(index, "manifests", manifests);
        return index;
}

static void push_member(struct member **v, size_t *n, char *name, const char *data, size_t len,
                        const char *file, uint64_t file_size)
{
        *v = dl_realloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = (struct member){name, data, len, file, 0, file_size, 0};
}

int dl_oci_stream_open(const char *output, long long epoch, struct dl_oci_stream *s,
                       struct dl_error *err)
{
        unsigned char h[1024];
        memset(s, 0, sizeof *s);
        s->fd = -1;
        s->epoch = epoch;
        s->tmp = dl_asprintf("%s.tmp-XXXXXX", output);
        s->fd = mkstemp(s->tmp);
        if (s->fd < 0) {
                int rc = dl_fail_errno(err, errno, "cannot create the output next to", output);
                free(s->tmp);
                s->tmp = NULL;
                return rc;
        }
        dl_cleanup_add(s->tmp);
        memset(h, 0, sizeof h);
        ustar_header(h, "blobs/", true, 0, epoch);
        ustar_header(h + 512, "blobs/sha256/", true, 0, epoch);
        if (dl_write_all(s->fd, h, sizeof h) != 0) {
                int rc = dl_fail_errno(err, errno, "cannot write", s->tmp);
                dl_oci_stream_close(s);
                return rc;
        }
        s->end = sizeof h;
        return DL_OK;
}

int dl_oci_stream_begin_layer(struct dl_oci_stream *s, struct dl_error *err)
{
        static const unsigned char room[512];
        s->layer_header = s->end;
        if (lseek(s->fd, (off_t)s->end, SEEK_SET) < 0 ||
            dl_write_all(s->fd, room, sizeof room) != 0)
                return dl_fail_errno(err, errno, "cannot write", s->tmp);
        return DL_OK;
}

int dl_oci_stream_end_layer(struct dl_oci_stream *s, const char *digest, uint64_t size,
                            struct dl_error *err)
{
        static const char zeros[512];
        for (size_t i = 0; i < s->n_layers; i++)
                if (!strcmp(s->layers[i].digest, digest)) {
                        if (ftruncate(s->fd, (off_t)s->end) != 0)
                                return dl_fail_errno(err, errno, "cannot write", s->tmp);
                        return DL_OK;
                }
        unsigned char h[512];
        char *name = dl_asprintf("blobs/sha256/%s", digest);
        size_t pad = (size_t)((512 - size % 512) % 512);
        uint64_t data_end = s->layer_header + sizeof h + size;
        int failed = ustar_header(h, name, false, size, s->epoch) != 0 ||
                     pwrite(s->fd, h, sizeof h, (off_t)s->layer_header) != (ssize_t)sizeof h ||
                     lseek(s->fd, (off_t)data_end, SEEK_SET) < 0 ||
                     (pad && dl_write_all(s->fd, zeros, pad) != 0);
        free(name);
        if (failed)
                return dl_fail_errno(err, errno ? errno : EIO, "cannot write", s->tmp);
        s->layers = dl_realloc(s->layers, (s->n_layers + 1) * sizeof *s->layers);
        memcpy(s->layers[s->n_layers++].digest, digest, DL_SHA256_HEX);
        s->end = data_end + pad;
        return DL_OK;
}

void dl_oci_stream_close(struct dl_oci_stream *s)
{
        if (s->fd >= 0)
                close(s->fd);
        if (s->tmp) {
                unlink(s->tmp);
                dl_cleanup_forget(s->tmp);
                free(s->tmp);
        }
        free(s->layers);
        s->layers = NULL;
        s->n_layers = 0;
        s->fd = -1;
        s->tmp = NULL;
}

/* Whether a stream contains the member name already. */
static bool streamed(const struct dl_oci_stream *s, const char *name)
{
        if (!strcmp(name, "blobs/") || !strcmp(name, "blobs/sha256/"))
                return true;
        for (size_t i = 0; i < s->n_layers; i++)
                if (!strncmp(name, "blobs/sha256/", 13) && !strcmp(name + 13, s->layers[i].digest))
                        return true;
        return false;
}

/* Whether the file all layer members come from (an image archive in the cache) is
 * byte for byte the archive the members make. Its size, each member's header and
 * offset and every member's bytes must match, so the output can be that file. */
static bool same_archive(const struct member *members, size_t n, long long epoch,
                         const char **source, nlink_t *names)
{
        static const char zeros[512];
        unsigned char want[512], got[512];
        const char *file = NULL;
        uint64_t offset = 0;
        bool ok = true;
        int fd = -1;
        /* Every layer from one file, under whichever of its names. */
        struct stat first, st;
        *names = 0;
        for (size_t i = 0; i < n && ok; i++) {
                if (!members[i].file)
                        continue;
                ok = stat(members[i].file, file ? &st : &first) == 0 &&
                     (!file || (st.st_dev == first.st_dev && st.st_ino == first.st_ino));
                bool named = false;
                for (size_t k = 0; k < i && !named; k++)
                        named = members[k].file && !strcmp(members[k].file, members[i].file);
                *names += !named;
                file = members[i].file;
        }
        if (!ok || !file || (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
                return false;
        for (size_t i = 0; i < n && ok; i++) {
                const struct member *m = &members[i];
                bool seen = false;
                for (size_t k = 0; k < i && !seen; k++)
                        seen = !strcmp(members[k].name, m->name);
                if (seen)
                        continue;
                bool dir = member_is_dir(m);
                uint64_t size = member_size(m);
                size_t pad = (size_t)((512 - size % 512) % 512);
                ok = ustar_header(want, m->name, dir, size, epoch) == 0 &&
                     pread(fd, got, sizeof got, (off_t)offset) == (ssize_t)sizeof got &&
                     memcmp(want, got, sizeof got) == 0 &&
                     (!m->file || m->file_offset == offset + sizeof got);
                offset += sizeof got;
                /* The bytes of a member from memory, then its padding. */
                for (uint64_t done = 0; ok && !m->file && !dir && done < size;) {
                        size_t chunk =
                            size - done < sizeof got ? (size_t)(size - done) : sizeof got;
                        ok = pread(fd, got, chunk, (off_t)(offset + done)) == (ssize_t)chunk &&
                             memcmp(got, m->data + done, chunk) == 0;
                        done += chunk;
                }
                offset += size;
                ok = ok && (pad == 0 || (pread(fd, got, pad, (off_t)offset) == (ssize_t)pad &&
                                         memcmp(got, zeros, pad) == 0));
                offset += pad;
        }
        /* The end of the archive: two zero blocks, and nothing after them. */
        for (int k = 0; k < 2 && ok; k++, offset += sizeof got)
                ok = pread(fd, got, sizeof got, (off_t)offset) == (ssize_t)sizeof got &&
                     memcmp(got, zeros, sizeof got) == 0;
        ok = ok && fstat(fd, &st) == 0 && (uint64_t)st.st_size == offset;
        close(fd);
        *source = file;
        return ok;
}

/* Make output a hard link to the image archive source, unless a file outside the
 * cache is that archive too. Two outputs that are one file would change together
 * when a tool rewrites one of them in place. So the archive may have only the
 * cache's names (names), output itself (a rebuild to the same path) and the new
 * link. Counting after linking means that of two builds linking at once, each
 * sees the other's link. */
static bool link_archive(const char *source, const char *output, nlink_t names)
{
        struct stat src, out;
        if (stat(source, &src) != 0)
                return false;
        bool same_path =
            stat(output, &out) == 0 && out.st_dev == src.st_dev && out.st_ino == src.st_ino;
        char *tmp = dl_asprintf("%s.tmp-XXXXXX", output);
        int fd = mkstemp(tmp);
        bool ok = fd >= 0;
        if (fd >= 0) {
                close(fd);
                unlink(tmp);
                dl_cleanup_add(tmp);
                ok = link(source, tmp) == 0 && stat(tmp, &src) == 0 &&
                     src.st_nlink == names + 1 + (same_path ? 1 : 0) && rename(tmp, output) == 0;
                /* Also on success: when output is that file already, rename leaves
                 * both names (POSIX), and tmp would stay behind. */
                unlink(tmp);
                dl_cleanup_forget(tmp);
        }
        free(tmp);
        return ok;
}

/* Write the members to a new temporary file, or after the layers of a stream, and
 * rename the file to output. A member whose name came before is skipped: two
 * platforms can share a blob, which the archive contains once. */
static int write_tar(const char *output, struct member *members, size_t n, long long epoch,
                     struct dl_oci_stream *stream, uint64_t *size, struct dl_error *err)
{
        static const char end[1024];
        char *tmp = stream ? stream->tmp : dl_asprintf("%s.tmp-XXXXXX", output);
        int fd = stream ? stream->fd : mkstemp(tmp);
        uint64_t offset = stream ? stream->end : 0;
        int rc = DL_OK;
        if (fd < 0) {
                rc = dl_fail_errno(err, errno, "cannot create the output next to", output);
                free(tmp);
                return rc;
        }
        if (stream) {
                if (lseek(fd, (off_t)offset, SEEK_SET) < 0)
                        rc = dl_fail_errno(err, errno, "cannot write", tmp);
        } else {
                dl_cleanup_add(tmp);
        }
        for (size_t i = 0; i < n && rc == DL_OK; i++) {
                bool seen = stream && streamed(stream, members[i].name);
                for (size_t k = 0; k < i && !seen; k++)
                        seen = !strcmp(members[k].name, members[i].name);
                if (!seen)
                        rc = add_member(fd, &members[i], epoch, tmp, &offset, err);
        }
        if (stream) {
                stream->tmp = NULL;
                stream->fd = -1;
        }
        /* The end of the archive: two zero blocks. */
        if (rc == DL_OK && dl_write_all(fd, end, sizeof end) != 0)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        if (rc == DL_OK && fchmod(fd, 0644) != 0)
                rc = dl_fail_errno(err, errno, "cannot set the mode of", tmp);
        /* No fsync: every blob of the archive is checked against its digest where it
         * is loaded, so an archive that a crash damaged fails there rather than
         * being trusted, and a sync would make each build wait for the disk. The
         * rename below still means no reader sees a partly written archive. */
        *size = offset + sizeof end;
        if (close(fd) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        if (rc == DL_OK && rename(tmp, output) != 0)
                rc = dl_fail_errno(err, errno, "cannot rename the image to", output);
        if (rc)
                unlink(tmp);
        dl_cleanup_forget(tmp);
        free(tmp);
        return rc;
}

int dl_oci_write(const struct dl_oci_input *in, const char *output, struct dl_oci_result *out,
                 struct dl_error *err)
{
        struct dl_oci_image single = {in->arch,       in->layer_path, in->layer,
                                      in->n_packages, in->extra_env,  in->layer_offset};
        const struct dl_oci_image *images = in->n_images ? in->images : &single;
        size_t n_images = in->n_images ? in->n_images : 1;
        size_t docker = in->n_images ? in->docker_image : 0;
        struct platform_blobs *blobs = dl_calloc(n_images, sizeof *blobs);
        struct member *members = NULL;
        size_t n_members = 0;
        char *index_s = NULL, *nested_s = NULL, *docker_s = NULL;
        char top_hex[DL_SHA256_HEX];
        int rc = DL_OK;

        memset(out, 0, sizeof *out);
        for (size_t i = 0; i < n_images; i++) {
                make_platform(in, &images[i], &blobs[i]);
                push_member(&members, &n_members,
                            dl_asprintf("blobs/sha256/%s", blobs[i].config_hex), blobs[i].config,
                            strlen(blobs[i].config), NULL, 0);
                push_member(&members, &n_members,
                            dl_asprintf("blobs/sha256/%s", blobs[i].manifest_hex),
                            blobs[i].manifest, strlen(blobs[i].manifest), NULL, 0);
                push_member(&members, &n_members,
                            dl_asprintf("blobs/sha256/%s", images[i].layer->digest), NULL, 0,
                            images[i].layer_path, images[i].layer->size);
                members[n_members - 1].file_offset = images[i].layer_offset;
                members[n_members - 1].platform = i;
        }
        json_t *top;
        if (in->n_images == 0) {
                top = manifest_descriptor(&images[0], &blobs[0]);
                memcpy(top_hex, blobs[0].manifest_hex, sizeof top_hex);
        } else {
                json_t *mans = json_array();
                for (size_t i = 0; i < n_images; i++)
                        json_array_append_new(mans, manifest_descriptor(&images[i], &blobs[i]));
                json_t *nested = index_of(mans);
                nested_s = dump(nested);
                json_decref(nested);
                dl_sha256_hex(nested_s, strlen(nested_s), top_hex);
                top = descriptor(MT_INDEX, top_hex, strlen(nested_s));
                push_member(&members, &n_members, dl_asprintf("blobs/sha256/%s", top_hex), nested_s,
                            strlen(nested_s), NULL, 0);
        }
        add_ref(top, in->ref);
        json_t *mans = json_array();
        json_array_append_new(mans, top);
        json_t *index = index_of(mans);
        index_s = dump(index);
        json_decref(index);

        /* docker load reads manifest.json; its paths point at the OCI blobs. */
        json_t *docker_json = json_array(), *entry = json_object(), *tags = json_array(),
               *dlayers = json_array();
        char *config_path = dl_asprintf("blobs/sha256/%s", blobs[docker].config_hex);
        char *layer_path = dl_asprintf("blobs/sha256/%s", images[docker].layer->digest);
        json_object_set_new(entry, "Config", json_string(config_path));
        json_array_append_new(tags, json_string(in->ref));
        json_object_set_new(entry, "RepoTags", tags);
        json_array_append_new(dlayers, json_string(layer_path));
        json_object_set_new(entry, "Layers", dlayers);
        json_array_append_new(docker_json, entry);
        docker_s = dump(docker_json);
        json_decref(docker_json);
        free(config_path);
        free(layer_path);

        static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
        push_member(&members, &n_members, dl_strdup("blobs/"), NULL, 0, NULL, 0);
        push_member(&members, &n_members, dl_strdup("blobs/sha256/"), NULL, 0, NULL, 0);
        push_member(&members, &n_members, dl_strdup("index.json"), index_s, strlen(index_s), NULL,
                    0);
        push_member(&members, &n_members, dl_strdup("manifest.json"), docker_s, strlen(docker_s),
                    NULL, 0);
        push_member(&members, &n_members, dl_strdup("oci-layout"), layout, strlen(layout), NULL, 0);
        qsort(members, n_members, sizeof *members, compare_members);
        /* A build that reuses its layers from the cache may make the very archive the
         * cache has already: then the output is a link to it, not a copy. */
        const char *source = NULL;
        nlink_t names = 0;
        struct stat st;
        if (!in->stream && same_archive(members, n_members, in->epoch, &source, &names) &&
            link_archive(source, output, names) && stat(output, &st) == 0) {
                out->size = (uint64_t)st.st_size;
                dl_debug("the image is the archive %s in the cache; linked it", source);
        } else {
                rc = write_tar(output, members, n_members, in->epoch, in->stream, &out->size, err);
        }

        memcpy(out->manifest_digest, top_hex, sizeof top_hex);
        memcpy(out->config_digest, blobs[docker].config_hex, sizeof out->config_digest);
        for (size_t i = 0; i < n_members; i++)
                free(members[i].name);
        free(members);
        for (size_t i = 0; i < n_images; i++) {
                free(blobs[i].config);
                free(blobs[i].manifest);
        }
        free(blobs);
        free(index_s);
        free(nested_s);
        free(docker_s);
        return rc;
}
