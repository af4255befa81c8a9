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

#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"

void dl_oci_platform(const char *debian_arch, const char **arch, const char **variant)
{
        static const char *const map[][3] = {
                {"amd64", "amd64", NULL},       {"arm64", "arm64", "v8"},
                {"armhf", "arm", "v7"},         {"armel", "arm", "v5"},
                {"i386", "386", NULL},          {"ppc64el", "ppc64le", NULL},
                {"s390x", "s390x", NULL},       {"mips64el", "mips64le", NULL},
                {"riscv64", "riscv64", NULL},   {"loong64", "loong64", NULL},
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

static char *config_json(const struct dl_oci_input *in)
{
        const struct dl_image *img = &in->spec->image;
        const char *arch, *variant;
        char created[32];
        json_t *root = json_object(), *cfg = json_object(), *env = json_array();
        bool has_path = dl_keyvals_get(&img->env, "PATH") != NULL;

        dl_oci_platform(in->arch, &arch, &variant);
        dl_format_rfc3339(in->epoch, created);
        if (!has_path)
                json_array_append_new(env, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        for (size_t i = 0; i < img->env.n; i++) {
                char *kv = dl_asprintf("%s=%s", img->env.v[i].key, img->env.v[i].value);
                json_array_append_new(env, json_string(kv));
                free(kv);
        }
        for (size_t i = 0; in->extra_env && i < in->extra_env->n; i++) {
                char *kv = dl_asprintf("%s=%s", in->extra_env->v[i].key, in->extra_env->v[i].value);
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
                        char *p = strchr(img->expose.v[i], '/') ? dl_strdup(img->expose.v[i])
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
        char *diff = dl_asprintf("sha256:%s", in->layer->diff_id);
        json_array_append_new(ids, json_string(diff));
        free(diff);
        json_object_set_new(rootfs, "type", json_string("layers"));
        json_object_set_new(rootfs, "diff_ids", ids);
        json_object_set_new(root, "rootfs", rootfs);
        json_t *hist = json_array(), *h = json_object();
        char *by = dl_asprintf("distill build (%s)", in->spec->name);
        char *comment = dl_asprintf("%zu Debian packages", in->n_packages);
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
        uint64_t file_size;
};

static int compare_members(const void *a, const void *b)
{
        return strcmp(((const struct member *)a)->name, ((const struct member *)b)->name);
}

static int add_member(struct archive *a, struct archive_entry *e, const struct member *m,
                      long long epoch, struct dl_error *err)
{
        bool dir = m->name[strlen(m->name) - 1] == '/';
        archive_entry_clear(e);
        archive_entry_copy_pathname(e, m->name);
        archive_entry_set_mode(e, dir ? (AE_IFDIR | 0755) : (AE_IFREG | 0644));
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        archive_entry_set_mtime(e, (time_t)epoch, 0);
        archive_entry_set_size(e, dir ? 0 : (la_int64_t)(m->file ? m->file_size : m->len));
        if (archive_write_header(a, e) != ARCHIVE_OK)
                return dl_fail(err, DL_EIO, "cannot write %s into the image: %s", m->name,
                               archive_error_string(a));
        if (dir)
                return DL_OK;
        if (!m->file) {
                if (archive_write_data(a, m->data, m->len) != (la_ssize_t)m->len)
                        return dl_fail(err, DL_EIO, "cannot write %s into the image: %s", m->name,
                                       archive_error_string(a));
                return DL_OK;
        }
        int fd = open(m->file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return dl_fail_errno(err, errno, "cannot open", m->file);
        static char block[1 << 17];
        ssize_t r;
        int rc = DL_OK;
        while ((r = read(fd, block, sizeof block)) > 0)
                if (archive_write_data(a, block, (size_t)r) != r) {
                        rc = dl_fail(err, DL_EIO, "cannot write %s into the image: %s", m->name,
                                     archive_error_string(a));
                        break;
                }
        if (r < 0)
                rc = dl_fail_errno(err, errno, "cannot read", m->file);
        close(fd);
        return rc;
}

int dl_oci_write(const struct dl_oci_input *in, const char *output, struct dl_oci_result *out,
                 struct dl_error *err)
{
        const char *arch, *variant;
        char *config = config_json(in);
        char config_hex[DL_SHA256_HEX], manifest_hex[DL_SHA256_HEX];
        int rc = DL_OK;

        memset(out, 0, sizeof *out);
        dl_oci_platform(in->arch, &arch, &variant);
        dl_sha256_hex(config, strlen(config), config_hex);

        json_t *manifest = json_object(), *layers = json_array(), *ann = json_object();
        char created[32];
        dl_format_rfc3339(in->epoch, created);
        json_object_set_new(manifest, "schemaVersion", json_integer(2));
        json_object_set_new(manifest, "mediaType", json_string(MT_MANIFEST));
        json_object_set_new(manifest, "config", descriptor(MT_CONFIG, config_hex, strlen(config)));
        json_array_append_new(layers, descriptor(MT_LAYER_GZIP, in->layer->digest, in->layer->size));
        json_object_set_new(manifest, "layers", layers);
        json_object_set_new(ann, "org.opencontainers.image.created", json_string(created));
        json_object_set_new(manifest, "annotations", ann);
        char *manifest_s = dump(manifest);
        json_decref(manifest);
        dl_sha256_hex(manifest_s, strlen(manifest_s), manifest_hex);

        json_t *index = json_object(), *mans = json_array();
        json_t *md = descriptor(MT_MANIFEST, manifest_hex, strlen(manifest_s));
        json_t *platform = json_object(), *mann = json_object();
        json_object_set_new(platform, "architecture", json_string(arch));
        json_object_set_new(platform, "os", json_string("linux"));
        if (variant)
                json_object_set_new(platform, "variant", json_string(variant));
        json_object_set_new(md, "platform", platform);
        json_object_set_new(mann, "org.opencontainers.image.ref.name", json_string(in->ref));
        json_object_set_new(md, "annotations", mann);
        json_array_append_new(mans, md);
        json_object_set_new(index, "schemaVersion", json_integer(2));
        json_object_set_new(index, "mediaType", json_string(MT_INDEX));
        json_object_set_new(index, "manifests", mans);
        char *index_s = dump(index);
        json_decref(index);

        /* docker load reads manifest.json; its paths point at the OCI blobs. */
        json_t *docker = json_array(), *entry = json_object(), *tags = json_array(),
               *dlayers = json_array();
        char *config_path = dl_asprintf("blobs/sha256/%s", config_hex);
        char *layer_path = dl_asprintf("blobs/sha256/%s", in->layer->digest);
        json_object_set_new(entry, "Config", json_string(config_path));
        json_array_append_new(tags, json_string(in->ref));
        json_object_set_new(entry, "RepoTags", tags);
        json_array_append_new(dlayers, json_string(layer_path));
        json_object_set_new(entry, "Layers", dlayers);
        json_array_append_new(docker, entry);
        char *docker_s = dump(docker);
        json_decref(docker);

        const char *layout = "{\"imageLayoutVersion\":\"1.0.0\"}";
        char *manifest_path = dl_asprintf("blobs/sha256/%s", manifest_hex);
        struct member members[] = {
                {dl_strdup("blobs/"), NULL, 0, NULL, 0},
                {dl_strdup("blobs/sha256/"), NULL, 0, NULL, 0},
                {dl_strdup(config_path), config, strlen(config), NULL, 0},
                {dl_strdup(manifest_path), manifest_s, strlen(manifest_s), NULL, 0},
                {dl_strdup(layer_path), NULL, 0, in->layer_path, in->layer->size},
                {dl_strdup("index.json"), index_s, strlen(index_s), NULL, 0},
                {dl_strdup("manifest.json"), docker_s, strlen(docker_s), NULL, 0},
                {dl_strdup("oci-layout"), layout, strlen(layout), NULL, 0},
        };
        size_t n_members = sizeof members / sizeof members[0];
        qsort(members, n_members, sizeof members[0], compare_members);

        char *tmp = dl_asprintf("%s.tmp-XXXXXX", output);
        int fd = mkstemp(tmp);
        struct archive *a = NULL;
        struct archive_entry *e = NULL;
        if (fd < 0) {
                rc = dl_fail_errno(err, errno, "cannot create the output next to", output);
                goto out;
        }
        a = archive_write_new();
        e = archive_entry_new();
        archive_write_set_format_pax_restricted(a);
        if (archive_write_open_fd(a, fd) != ARCHIVE_OK)
                rc = dl_fail(err, DL_EIO, "cannot write %s: %s", tmp, archive_error_string(a));
        for (size_t i = 0; i < n_members && rc == DL_OK; i++)
                rc = add_member(a, e, &members[i], in->epoch, err);
        if (rc == DL_OK && archive_write_close(a) != ARCHIVE_OK)
                rc = dl_fail(err, DL_EIO, "cannot write %s: %s", tmp, archive_error_string(a));
        if (rc == DL_OK && fchmod(fd, 0644) != 0)
                rc = dl_fail_errno(err, errno, "cannot set the mode of", tmp);
        if (rc == DL_OK && fsync(fd) != 0)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        struct stat st;
        if (rc == DL_OK && fstat(fd, &st) == 0)
                out->size = (uint64_t)st.st_size;
        if (close(fd) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        if (rc == DL_OK && rename(tmp, output) != 0)
                rc = dl_fail_errno(err, errno, "cannot rename the image to", output);
        if (rc)
                unlink(tmp);
out:
        if (a)
                archive_write_free(a);
        if (e)
                archive_entry_free(e);
        for (size_t i = 0; i < n_members; i++)
                free(members[i].name);
        memcpy(out->manifest_digest, manifest_hex, sizeof manifest_hex);
        memcpy(out->config_digest, config_hex, sizeof config_hex);
        free(tmp);
        free(manifest_path);
        free(config_path);
        free(layer_path);
        free(config);
        free(manifest_s);
        free(index_s);
        free(docker_s);
        return rc;
}
