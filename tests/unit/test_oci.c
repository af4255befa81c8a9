/* Tests of dl_oci_write on a small layer and a spec parsed from YAML. The output
 * tar is read back with libarchive and its JSON members with jansson. Each
 * digest, size, media type and config field is checked against the blobs. */
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "distill/fstree.h"
#include "distill/layer.h"
#include "distill/oci.h"
#include "distill/spec.h"

/* 2026-12-04T00:00:00Z, in seconds since the Unix epoch. */
#define EPOCH   1796342400LL
#define CREATED "2026-12-04T00:00:00Z"
#define REF     "demo:1.0"
#define USER    "33:33"

#define MT_INDEX    "application/vnd.oci.image.index.v1+json"
#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_CONFIG   "application/vnd.oci.image.config.v1+json"
#define MT_LAYER    "application/vnd.oci.image.layer.v1.tar+gzip"

static const char spec_yaml[] = "name: demo\n"
                                "sources:\n"
                                "  - url: https://deb.example/debian\n"
                                "    suites: [bookworm]\n"
                                "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                                "architectures: [arm64]\n"
                                "packages: [base-files]\n"
                                "image:\n"
                                "  entrypoint: [/usr/bin/app, --serve]\n"
                                "  cmd: [--port, \"9000\"]\n"
                                "  env: {LANG: C.UTF-8, TZ: UTC}\n"
                                "  workdir: /srv\n"
                                "  user: www-data\n"
                                "  expose: [\"9000/tcp\"]\n"
                                "  labels: {org.opencontainers.image.title: demo}\n";

/* dl_oci_platform ----------------------------------------------------------- */

static void test_oci_platform_mapping(void **state)
{
        (void)state;
        static const struct {
                const char *debian, *arch, *variant;
        } cases[] = {
            {"amd64", "amd64", NULL}, {"arm64", "arm64", "v8"},     {"armhf", "arm", "v7"},
            {"armel", "arm", "v5"},   {"i386", "386", NULL},        {"ppc64el", "ppc64le", NULL},
            {"s390x", "s390x", NULL}, {"riscv64", "riscv64", NULL},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const char *arch = "unset", *variant = "unset";
                dl_oci_platform(cases[i].debian, &arch, &variant);
                if (arch == NULL || strcmp(arch, cases[i].arch) != 0)
                        fail_msg("%s: expected architecture %s, got %s", cases[i].debian,
                                 cases[i].arch, arch ? arch : "(null)");
                if (cases[i].variant == NULL && variant != NULL)
                        fail_msg("%s: expected no variant, got %s", cases[i].debian, variant);
                if (cases[i].variant != NULL &&
                    (variant == NULL || strcmp(variant, cases[i].variant) != 0))
                        fail_msg("%s: expected variant %s, got %s", cases[i].debian,
                                 cases[i].variant, variant ? variant : "(null)");
        }
}

/* Fixture: a layer, a spec and one dl_oci_write output, read back. ---------- */

struct member {
        char *name;
        mode_t filetype;
        long long mtime, uid, gid;
        unsigned char *data;
        size_t len;
};

struct fixture {
        char *dir;
        char *layer_path;
        struct dl_layer layer;
        struct dl_spec spec;
        struct dl_oci_input in;
        char *output;
        struct dl_oci_result result;
        unsigned char *tar;
        size_t tar_len;
        struct member *members;
        size_t n_members;
};

static void build_layer(struct fixture *f)
{
        struct dl_error err = {0};
        struct dl_fstree t;
        char *stage = tu_asprintf("%s/stage", f->dir);
        assert_int_equal(mkdir(stage, 0755), 0);
        if (dl_fstree_init(&t, stage, &err) != DL_OK)
                fail_msg("dl_fstree_init: %s", err.msg);
        const char *app = "#!/bin/sh\necho app\n";
        const char *hostname = "demo\n";
        if (dl_fstree_write_file(&t, "usr/bin/app", app, strlen(app), 0755, 0, 0, -1, &err) ||
            dl_fstree_write_file(&t, "etc/hostname", hostname, strlen(hostname), 0644, 0, 0, -1,
                                 &err) ||
            dl_fstree_add_symlink(&t, "bin", "usr/bin", -1, &err))
                fail_msg("building the staging tree: %s", err.msg);
        f->layer_path = tu_asprintf("%s/layer.tar.gz", f->dir);
        if (dl_layer_write(&t, EPOCH, f->layer_path, &f->layer, &err) != DL_OK)
                fail_msg("dl_layer_write: %s", err.msg);
        dl_fstree_free(&t);
        free(stage);
}

/* Read every member of the uncompressed output tar. */
static struct member *read_members(const unsigned char *tar, size_t len, size_t *n_out)
{
        struct archive *a = archive_read_new();
        assert_non_null(a);
        archive_read_support_format_tar(a);
        assert_int_equal(archive_read_open_memory(a, tar, len), ARCHIVE_OK);
        struct member *v = NULL;
        size_t n = 0;
        struct archive_entry *ae;
        int r;
        while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
                v = realloc(v, (n + 1) * sizeof *v);
                assert_non_null(v);
                struct member *m = &v[n++];
                memset(m, 0, sizeof *m);
                m->name = strdup(archive_entry_pathname(ae));
                assert_non_null(m->name);
                m->filetype = archive_entry_filetype(ae);
                m->mtime = archive_entry_mtime(ae);
                m->uid = archive_entry_uid(ae);
                m->gid = archive_entry_gid(ae);
                size_t size = (size_t)archive_entry_size(ae);
                m->data = malloc(size + 1);
                assert_non_null(m->data);
                la_ssize_t got = archive_read_data(a, m->data, size);
                assert_true(got >= 0);
                m->len = (size_t)got;
                m->data[m->len] = '\0';
        }
        if (r != ARCHIVE_EOF)
                fail_msg("reading the output tar failed: %s", archive_error_string(a));
        archive_read_free(a);
        *n_out = n;
        return v;
}

static void write_output(struct fixture *f, const char *path, struct dl_oci_result *result)
{
        struct dl_error err = {0};
        if (dl_oci_write(&f->in, path, result, &err) != DL_OK)
                fail_msg("dl_oci_write %s: %s", path, err.msg);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof *f);
        assert_non_null(f);
        f->dir = tu_mkdtemp();
        build_layer(f);

        struct dl_error err = {0};
        if (dl_spec_parse("demo.yaml", spec_yaml, strlen(spec_yaml), &f->spec, &err) != DL_OK)
                fail_msg("dl_spec_parse: %s", err.msg);
        f->in = (struct dl_oci_input){
            .spec = &f->spec,
            .arch = "arm64",
            .ref = REF,
            .user = USER,
            .epoch = EPOCH,
            .layer_path = f->layer_path,
            .layer = &f->layer,
            .n_packages = 3,
        };
        f->output = tu_asprintf("%s/demo.tar", f->dir);
        write_output(f, f->output, &f->result);
        f->tar = tu_read_file(f->output, &f->tar_len);
        f->members = read_members(f->tar, f->tar_len, &f->n_members);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        for (size_t i = 0; i < f->n_members; i++) {
                free(f->members[i].name);
                free(f->members[i].data);
        }
        free(f->members);
        free(f->tar);
        free(f->output);
        dl_spec_free(&f->spec);
        free(f->layer_path);
        dl_layer_free(&f->layer);
        tu_rm_rf(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

static const struct member *find_member(const struct fixture *f, const char *name)
{
        for (size_t i = 0; i < f->n_members; i++)
                if (strcmp(f->members[i].name, name) == 0)
                        return &f->members[i];
        return NULL;
}

static const struct member *get_member(const struct fixture *f, const char *name)
{
        const struct member *m = find_member(f, name);
        if (m == NULL)
                fail_msg("the output has no member %s", name);
        return m;
}

/* Parse a JSON member into a new reference that the caller releases. */
static json_t *member_json(const struct fixture *f, const char *name)
{
        const struct member *m = get_member(f, name);
        json_error_t jerr;
        json_t *j = json_loadb((const char *)m->data, m->len, 0, &jerr);
        if (j == NULL)
                fail_msg("%s is not valid JSON: %s at line %d", name, jerr.text, jerr.line);
        return j;
}

/* Return the string at key in object, failing the test when it is not a string. */
static const char *json_str(const json_t *object, const char *key)
{
        const char *s = json_string_value(json_object_get(object, key));
        if (s == NULL)
                fail_msg("JSON key %s is missing or not a string", key);
        return s;
}

/* The blob member name for a "sha256:HEX" digest. */
static char *blob_name(const char *digest)
{
        if (strncmp(digest, "sha256:", 7) != 0)
                fail_msg("digest %s does not start with sha256:", digest);
        return tu_asprintf("blobs/sha256/%s", digest + 7);
}

static char *manifest_blob_name(const struct fixture *f)
{
        json_t *index = member_json(f, "index.json");
        json_t *desc = json_array_get(json_object_get(index, "manifests"), 0);
        assert_non_null(desc);
        char *name = blob_name(json_str(desc, "digest"));
        json_decref(index);
        return name;
}

/* Validator ------------------------------------------------------------------ */

/* Check that the manifest's config and layer descriptors match the blobs' sha256
 * and length, and that the config's diff_ids are the sha256 of the uncompressed
 * layers. Return NULL when everything matches, else a malloc'd description of
 * the first mismatch. */
static char *validate_image(const char *manifest_text, const char *config_text,
                            const unsigned char *layer, size_t layer_len)
{
        json_error_t jerr;
        json_t *manifest = json_loads(manifest_text, 0, &jerr);
        json_t *config = json_loads(config_text, 0, &jerr);
        char *problem = NULL;
        char hex[65];

        if (manifest == NULL || config == NULL) {
                problem = tu_asprintf("invalid JSON: %s", jerr.text);
                goto out;
        }
        json_t *cdesc = json_object_get(manifest, "config");
        const char *cdigest = json_string_value(json_object_get(cdesc, "digest"));
        json_int_t csize = json_integer_value(json_object_get(cdesc, "size"));
        tu_sha256_hex(config_text, strlen(config_text), hex);
        if (cdigest == NULL || strncmp(cdigest, "sha256:", 7) != 0 || strcmp(cdigest + 7, hex)) {
                problem = tu_asprintf("config digest %s, blob has sha256:%s",
                                      cdigest ? cdigest : "(missing)", hex);
                goto out;
        }
        if (csize != (json_int_t)strlen(config_text)) {
                problem = tu_asprintf("config size %lld, blob has %zu", (long long)csize,
                                      strlen(config_text));
                goto out;
        }

        json_t *layers = json_object_get(manifest, "layers");
        json_t *diff_ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
        if (json_array_size(layers) != 1 || json_array_size(diff_ids) != 1) {
                problem = tu_asprintf("%zu layers and %zu diff_ids, expected one each",
                                      json_array_size(layers), json_array_size(diff_ids));
                goto out;
        }
        json_t *ldesc = json_array_get(layers, 0);
        const char *ldigest = json_string_value(json_object_get(ldesc, "digest"));
        json_int_t lsize = json_integer_value(json_object_get(ldesc, "size"));
        tu_sha256_hex(layer, layer_len, hex);
        if (ldigest == NULL || strncmp(ldigest, "sha256:", 7) != 0 || strcmp(ldigest + 7, hex)) {
                problem = tu_asprintf("layer digest %s, blob has sha256:%s",
                                      ldigest ? ldigest : "(missing)", hex);
                goto out;
        }
        if (lsize != (json_int_t)layer_len) {
                problem = tu_asprintf("layer size %lld, blob has %zu", (long long)lsize, layer_len);
                goto out;
        }

        size_t tar_len;
        unsigned char *tar = tu_gunzip(layer, layer_len, &tar_len);
        tu_sha256_hex(tar, tar_len, hex);
        free(tar);
        const char *diff_id = json_string_value(json_array_get(diff_ids, 0));
        if (diff_id == NULL || strncmp(diff_id, "sha256:", 7) != 0 || strcmp(diff_id + 7, hex))
                problem = tu_asprintf("diff_id %s, uncompressed layer has sha256:%s",
                                      diff_id ? diff_id : "(missing)", hex);
out:
        json_decref(manifest);
        json_decref(config);
        return problem;
}

/* Members ---------------------------------------------------------------------- */

static void test_oci_member_set(void **state)
{
        struct fixture *f = *state;
        char *manifest = manifest_blob_name(f);
        char *config = tu_asprintf("blobs/sha256/%s", f->result.config_digest);
        char *layer = tu_asprintf("blobs/sha256/%s", f->layer.digest);
        const char *expected[] = {"blobs/", "blobs/sha256/", config,          manifest,
                                  layer,    "index.json",    "manifest.json", "oci-layout"};
        size_t n_expected = sizeof expected / sizeof expected[0];

        for (size_t i = 0; i < n_expected; i++)
                get_member(f, expected[i]);
        assert_int_equal(f->n_members, n_expected);
        for (size_t i = 0; i < f->n_members; i++) {
                const struct member *m = &f->members[i];
                size_t n = strlen(m->name);
                assert_int_equal(m->filetype, m->name[n - 1] == '/' ? AE_IFDIR : AE_IFREG);
                assert_int_equal(m->mtime, EPOCH);
                assert_int_equal(m->uid, 0);
                assert_int_equal(m->gid, 0);
        }
        assert_int_equal(tu_tar_count_typeflag(f->tar, f->tar_len, 'g'), 0);
        free(manifest);
        free(config);
        free(layer);
}

static void test_oci_layout_member(void **state)
{
        struct fixture *f = *state;
        json_t *layout = member_json(f, "oci-layout");
        assert_string_equal(json_str(layout, "imageLayoutVersion"), "1.0.0");
        assert_int_equal(json_object_size(layout), 1);
        json_decref(layout);
}

static void test_oci_index(void **state)
{
        struct fixture *f = *state;
        json_t *index = member_json(f, "index.json");
        assert_int_equal(json_integer_value(json_object_get(index, "schemaVersion")), 2);
        assert_string_equal(json_str(index, "mediaType"), MT_INDEX);
        json_t *manifests = json_object_get(index, "manifests");
        assert_int_equal(json_array_size(manifests), 1);

        json_t *desc = json_array_get(manifests, 0);
        assert_string_equal(json_str(desc, "mediaType"), MT_MANIFEST);
        char *name = blob_name(json_str(desc, "digest"));
        const struct member *blob = get_member(f, name);
        char hex[65];
        tu_sha256_hex(blob->data, blob->len, hex);
        assert_string_equal(json_str(desc, "digest") + 7, hex);
        assert_string_equal(f->result.manifest_digest, hex);
        assert_int_equal(json_integer_value(json_object_get(desc, "size")), blob->len);

        json_t *platform = json_object_get(desc, "platform");
        assert_non_null(platform);
        assert_string_equal(json_str(platform, "architecture"), "arm64");
        assert_string_equal(json_str(platform, "os"), "linux");
        assert_string_equal(json_str(platform, "variant"), "v8");
        json_t *ann = json_object_get(desc, "annotations");
        assert_string_equal(json_str(ann, "org.opencontainers.image.ref.name"), REF);
        free(name);
        json_decref(index);
}

static void test_oci_docker_manifest(void **state)
{
        struct fixture *f = *state;
        json_t *docker = member_json(f, "manifest.json");
        assert_true(json_is_array(docker));
        assert_int_equal(json_array_size(docker), 1);
        json_t *entry = json_array_get(docker, 0);

        const char *config = json_str(entry, "Config");
        get_member(f, config);
        char *expected_config = tu_asprintf("blobs/sha256/%s", f->result.config_digest);
        assert_string_equal(config, expected_config);

        json_t *layers = json_object_get(entry, "Layers");
        assert_int_equal(json_array_size(layers), 1);
        const char *layer = json_string_value(json_array_get(layers, 0));
        assert_non_null(layer);
        get_member(f, layer);
        char *expected_layer = tu_asprintf("blobs/sha256/%s", f->layer.digest);
        assert_string_equal(layer, expected_layer);

        json_t *tags = json_object_get(entry, "RepoTags");
        assert_int_equal(json_array_size(tags), 1);
        assert_string_equal(json_string_value(json_array_get(tags, 0)), REF);
        free(expected_config);
        free(expected_layer);
        json_decref(docker);
}

static void test_oci_manifest_blob(void **state)
{
        struct fixture *f = *state;
        char *name = manifest_blob_name(f);
        json_t *manifest = member_json(f, name);
        /* OCI media types only: a Docker media type here makes OCI tools reject
         * the image. */
        assert_not_contains((const char *)get_member(f, name)->data, "vnd.docker");
        assert_int_equal(json_integer_value(json_object_get(manifest, "schemaVersion")), 2);
        assert_string_equal(json_str(manifest, "mediaType"), MT_MANIFEST);

        json_t *cdesc = json_object_get(manifest, "config");
        assert_string_equal(json_str(cdesc, "mediaType"), MT_CONFIG);
        char *cname = blob_name(json_str(cdesc, "digest"));
        const struct member *cblob = get_member(f, cname);
        char hex[65];
        tu_sha256_hex(cblob->data, cblob->len, hex);
        assert_string_equal(json_str(cdesc, "digest") + 7, hex);
        assert_string_equal(f->result.config_digest, hex);
        assert_int_equal(json_integer_value(json_object_get(cdesc, "size")), cblob->len);

        json_t *layers = json_object_get(manifest, "layers");
        assert_int_equal(json_array_size(layers), 1);
        json_t *ldesc = json_array_get(layers, 0);
        assert_string_equal(json_str(ldesc, "mediaType"), MT_LAYER);
        char *lname = blob_name(json_str(ldesc, "digest"));
        const struct member *lblob = get_member(f, lname);
        tu_sha256_hex(lblob->data, lblob->len, hex);
        assert_string_equal(json_str(ldesc, "digest") + 7, hex);
        assert_string_equal(f->layer.digest, hex);
        assert_int_equal(json_integer_value(json_object_get(ldesc, "size")), lblob->len);
        assert_int_equal(lblob->len, f->layer.size);

        /* The layer blob is the file dl_layer_write produced, byte for byte. */
        size_t len;
        unsigned char *layer = tu_read_file(f->layer_path, &len);
        assert_int_equal(len, lblob->len);
        assert_memory_equal(layer, lblob->data, len);
        free(layer);
        free(cname);
        free(lname);
        free(name);
        json_decref(manifest);
}

static int env_has(const json_t *env, const char *entry, int prefix_only)
{
        size_t i;
        json_t *v;
        json_array_foreach(env, i, v)
        {
                const char *s = json_string_value(v);
                if (s == NULL)
                        continue;
                if (prefix_only ? strncmp(s, entry, strlen(entry)) == 0 : strcmp(s, entry) == 0)
                        return 1;
        }
        return 0;
}

static void test_oci_config_blob(void **state)
{
        struct fixture *f = *state;
        char *name = tu_asprintf("blobs/sha256/%s", f->result.config_digest);
        json_t *config = member_json(f, name);

        assert_string_equal(json_str(config, "architecture"), "arm64");
        assert_string_equal(json_str(config, "variant"), "v8");
        assert_string_equal(json_str(config, "os"), "linux");
        assert_string_equal(json_str(config, "created"), CREATED);

        json_t *rootfs = json_object_get(config, "rootfs");
        assert_string_equal(json_str(rootfs, "type"), "layers");
        json_t *diff_ids = json_object_get(rootfs, "diff_ids");
        assert_int_equal(json_array_size(diff_ids), 1);
        char *diff_id = tu_asprintf("sha256:%s", f->layer.diff_id);
        assert_string_equal(json_string_value(json_array_get(diff_ids, 0)), diff_id);

        json_t *cfg = json_object_get(config, "config");
        assert_non_null(cfg);
        json_t *ep = json_object_get(cfg, "Entrypoint");
        assert_int_equal(json_array_size(ep), 2);
        assert_string_equal(json_string_value(json_array_get(ep, 0)), "/usr/bin/app");
        assert_string_equal(json_string_value(json_array_get(ep, 1)), "--serve");
        json_t *cmd = json_object_get(cfg, "Cmd");
        assert_int_equal(json_array_size(cmd), 2);
        assert_string_equal(json_string_value(json_array_get(cmd, 0)), "--port");
        assert_string_equal(json_string_value(json_array_get(cmd, 1)), "9000");

        json_t *env = json_object_get(cfg, "Env");
        assert_true(json_is_array(env));
        assert_true(env_has(env, "PATH=", 1));
        assert_true(env_has(env, "LANG=C.UTF-8", 0));
        assert_true(env_has(env, "TZ=UTC", 0));

        /* The numeric user passed in, not the spec's name. */
        assert_string_equal(json_str(cfg, "User"), USER);
        assert_string_equal(json_str(cfg, "WorkingDir"), "/srv");
        json_t *ports = json_object_get(cfg, "ExposedPorts");
        assert_int_equal(json_object_size(ports), 1);
        assert_true(json_is_object(json_object_get(ports, "9000/tcp")));
        json_t *labels = json_object_get(cfg, "Labels");
        assert_string_equal(json_str(labels, "org.opencontainers.image.title"), "demo");

        free(diff_id);
        free(name);
        json_decref(config);
}

static void test_oci_result_fields(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(f->result.size, f->tar_len);
        assert_true(tu_is_sha256_hex(f->result.config_digest));
        assert_true(tu_is_sha256_hex(f->result.manifest_digest));
}

/* The validator, both ways ------------------------------------------------------ */

struct image_texts {
        char *manifest;
        char *config;
        const struct member *layer;
};

static struct image_texts image_texts(const struct fixture *f)
{
        struct image_texts t;
        char *mname = manifest_blob_name(f);
        char *cname = tu_asprintf("blobs/sha256/%s", f->result.config_digest);
        char *lname = tu_asprintf("blobs/sha256/%s", f->layer.digest);
        t.manifest = strdup((const char *)get_member(f, mname)->data);
        t.config = strdup((const char *)get_member(f, cname)->data);
        t.layer = get_member(f, lname);
        free(mname);
        free(cname);
        free(lname);
        return t;
}

static void test_oci_validator_accepts_output(void **state)
{
        struct fixture *f = *state;
        struct image_texts t = image_texts(f);
        char *problem = validate_image(t.manifest, t.config, t.layer->data, t.layer->len);
        if (problem != NULL)
                fail_msg("the output does not validate: %s", problem);
        free(t.manifest);
        free(t.config);
}

/* A config whose diff_id is the compressed digest (the classic mix-up), with the
 * manifest's config descriptor updated to match, so that only the diff_id is
 * wrong. */
static void test_oci_validator_detects_swapped_diff_id(void **state)
{
        struct fixture *f = *state;
        struct image_texts t = image_texts(f);

        json_t *config = json_loads(t.config, 0, NULL);
        assert_non_null(config);
        json_t *diff_ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
        char *digest = tu_asprintf("sha256:%s", f->layer.digest);
        assert_int_equal(json_array_set_new(diff_ids, 0, json_string(digest)), 0);
        char *bad_config = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
        assert_non_null(bad_config);

        json_t *manifest = json_loads(t.manifest, 0, NULL);
        assert_non_null(manifest);
        char hex[65];
        tu_sha256_hex(bad_config, strlen(bad_config), hex);
        char *cdigest = tu_asprintf("sha256:%s", hex);
        json_t *cdesc = json_object_get(manifest, "config");
        json_object_set_new(cdesc, "digest", json_string(cdigest));
        json_object_set_new(cdesc, "size", json_integer((json_int_t)strlen(bad_config)));
        char *bad_manifest = json_dumps(manifest, JSON_COMPACT | JSON_SORT_KEYS);
        assert_non_null(bad_manifest);

        char *problem = validate_image(bad_manifest, bad_config, t.layer->data, t.layer->len);
        if (problem == NULL)
                fail_msg("a config with the layer digest as diff_id validated");
        assert_contains(problem, "diff_id");

        free(problem);
        free(bad_manifest);
        free(cdigest);
        json_decref(manifest);
        free(bad_config);
        free(digest);
        json_decref(config);
        free(t.manifest);
        free(t.config);
}

/* The other direction: the manifest names the layer by its diff_id. */
static void test_oci_validator_detects_swapped_digest(void **state)
{
        struct fixture *f = *state;
        struct image_texts t = image_texts(f);

        json_t *manifest = json_loads(t.manifest, 0, NULL);
        assert_non_null(manifest);
        json_t *ldesc = json_array_get(json_object_get(manifest, "layers"), 0);
        char *diff_id = tu_asprintf("sha256:%s", f->layer.diff_id);
        json_object_set_new(ldesc, "digest", json_string(diff_id));
        char *bad_manifest = json_dumps(manifest, JSON_COMPACT | JSON_SORT_KEYS);
        assert_non_null(bad_manifest);

        char *problem = validate_image(bad_manifest, t.config, t.layer->data, t.layer->len);
        if (problem == NULL)
                fail_msg("a manifest with the diff_id as layer digest validated");
        assert_contains(problem, "layer digest");

        free(problem);
        free(bad_manifest);
        free(diff_id);
        json_decref(manifest);
        free(t.manifest);
        free(t.config);
}

/* Reproducibility and failures ---------------------------------------------------- */

static void test_oci_output_reproducible(void **state)
{
        struct fixture *f = *state;
        char *again = tu_asprintf("%s/demo-again.tar", f->dir);
        struct dl_oci_result result;
        write_output(f, again, &result);

        size_t len;
        unsigned char *data = tu_read_file(again, &len);
        assert_int_equal(len, f->tar_len);
        assert_memory_equal(data, f->tar, len);
        assert_string_equal(result.manifest_digest, f->result.manifest_digest);
        assert_string_equal(result.config_digest, f->result.config_digest);
        free(data);
        free(again);
}

static void test_oci_missing_directory_eio(void **state)
{
        struct fixture *f = *state;
        size_t before = tu_count_dir_entries(f->dir, NULL);
        char *missing = tu_asprintf("%s/no-such-dir", f->dir);
        char *output = tu_asprintf("%s/out.tar", missing);
        struct dl_oci_result result;
        struct dl_error err = {0};

        int rc = dl_oci_write(&f->in, output, &result, &err);
        assert_int_equal(rc, DL_EIO);
        assert_int_equal(err.code, DL_EIO);
        assert_contains(err.msg, "no-such-dir");
        assert_int_equal(access(missing, F_OK), -1);
        assert_int_equal(tu_count_dir_entries(f->dir, NULL), before);
        assert_int_equal(tu_count_dir_entries(f->dir, ".tmp"), 0);
        free(output);
        free(missing);
}

/* The temporary file is created next to the output and then the rename fails,
 * because a directory is in the way: the temporary file must be removed. */
static void test_oci_output_is_directory(void **state)
{
        struct fixture *f = *state;
        char *output = tu_asprintf("%s/taken", f->dir);
        assert_int_equal(mkdir(output, 0755), 0);
        size_t before = tu_count_dir_entries(f->dir, NULL);
        struct dl_oci_result result;
        struct dl_error err = {0};

        int rc = dl_oci_write(&f->in, output, &result, &err);
        assert_int_equal(rc, DL_EIO);
        assert_int_equal(err.code, DL_EIO);
        assert_int_equal(tu_count_dir_entries(f->dir, NULL), before);
        assert_int_equal(tu_count_dir_entries(f->dir, ".tmp"), 0);
        assert_int_equal(tu_count_dir_entries(output, NULL), 0);
        free(output);
}

static void test_oci_missing_layer_no_output(void **state)
{
        struct fixture *f = *state;
        struct dl_oci_input in = f->in;
        char *missing_layer = tu_asprintf("%s/no-such-layer.tar.gz", f->dir);
        in.layer_path = missing_layer;
        char *output = tu_asprintf("%s/never.tar", f->dir);
        size_t before = tu_count_dir_entries(f->dir, NULL);
        struct dl_oci_result result;
        struct dl_error err = {0};

        int rc = dl_oci_write(&in, output, &result, &err);
        assert_int_equal(rc, DL_EIO);
        assert_contains(err.msg, "no-such-layer.tar.gz");
        assert_int_equal(access(output, F_OK), -1);
        assert_int_equal(tu_count_dir_entries(f->dir, NULL), before);
        free(output);
        free(missing_layer);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_oci_platform_mapping),
            cmocka_unit_test_setup_teardown(test_oci_member_set, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_layout_member, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_index, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_docker_manifest, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_manifest_blob, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_config_blob, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_result_fields, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_validator_accepts_output, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_validator_detects_swapped_diff_id, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_validator_detects_swapped_digest, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_output_reproducible, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_missing_directory_eio, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_output_is_directory, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_missing_layer_no_output, setup, teardown),
        };
        return cmocka_run_group_tests_name("oci", tests, NULL, NULL);
}
