#include "distill/inspect.h"

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "distill/deb822.h"
#include "distill/util.h"

/* Small members (JSON) are kept in memory; a limit stops a hostile tarball. */
#define MAX_JSON_MEMBER (16u << 20)

struct member {
        char *name;
        char *data;
        size_t len;
};

struct image {
        const char *path;
        struct member *members;
        size_t n;
};

static const struct member *find(const struct image *im, const char *name)
{
        for (size_t i = 0; i < im->n; i++)
                if (!strcmp(im->members[i].name, name))
                        return &im->members[i];
        return NULL;
}

static int read_small_members(struct image *im, struct dl_error *err)
{
        struct archive *a = archive_read_new();
        struct archive_entry *e;
        int r, rc = DL_OK;
        archive_read_support_format_tar(a);
        if (archive_read_open_filename(a, im->path, 1 << 16) != ARCHIVE_OK) {
                rc = dl_fail(err, DL_EIO, "cannot open %s: %s", im->path, archive_error_string(a));
                archive_read_free(a);
                return rc;
        }
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                if (archive_entry_filetype(e) != AE_IFREG ||
                    archive_entry_size(e) > MAX_JSON_MEMBER)
                        continue;
                struct dl_buf b = {0};
                char block[65536];
                la_ssize_t n;
                while ((n = archive_read_data(a, block, sizeof block)) > 0)
                        dl_buf_append(&b, block, (size_t)n);
                im->members = dl_realloc(im->members, (im->n + 1) * sizeof *im->members);
                im->members[im->n++] = (struct member){dl_strdup(archive_entry_pathname(e)),
                                                       b.data ? b.data : dl_strdup(""), b.len};
        }
        if (r != ARCHIVE_EOF)
                rc = dl_fail(err, DL_EIO, "%s is not a readable tar file: %s", im->path,
                             archive_error_string(a));
        archive_read_free(a);
        return rc;
}

static json_t *load_blob(const struct image *im, const char *digest, struct dl_error *err)
{
        if (!digest || strncmp(digest, "sha256:", 7) != 0) {
                dl_fail(err, DL_EVERIFY, "%s: invalid digest %s", im->path,
                        digest ? digest : "(none)");
                return NULL;
        }
        char *name = dl_asprintf("blobs/sha256/%s", digest + 7);
        const struct member *m = find(im, name);
        json_t *j = NULL;
        if (!m) {
                dl_fail(err, DL_EVERIFY, "%s: the blob %s is missing", im->path, name);
        } else {
                char hex[DL_SHA256_HEX];
                dl_sha256_hex(m->data, m->len, hex);
                if (strcmp(hex, digest + 7) != 0)
                        dl_fail(err, DL_EVERIFY, "%s: the blob %s does not match its digest",
                                im->path, name);
                else if (!(j = json_loadb(m->data, m->len, 0, NULL)))
                        dl_fail(err, DL_EVERIFY, "%s: the blob %s is not JSON", im->path, name);
        }
        free(name);
        return j;
}

/* Package sizes while reading a layer: regular file sizes by path, and md5sums lists. */
struct file_size {
        char *path;
        unsigned long long size;
};

struct layer_scan {
        struct dl_strlist status; /* "name version arch" */
        struct file_size *files;
        size_t n_files;
        struct member *md5sums; /* name = package */
        size_t n_md5sums;
};

static void scan_entry(struct layer_scan *s, struct archive *a, struct archive_entry *e)
{
        const char *name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) != AE_IFREG)
                return;
        if (!archive_entry_hardlink(e)) {
                s->files = dl_realloc(s->files, (s->n_files + 1) * sizeof *s->files);
                s->files[s->n_files++] =
                    (struct file_size){dl_strdup(name), (unsigned long long)archive_entry_size(e)};
        }
        if (strncmp(name, "var/lib/dpkg/status.d/", 22) != 0 || strchr(name + 22, '/'))
                return;
        struct dl_buf b = {0};
        char block[65536];
        la_ssize_t n;
        while ((n = archive_read_data(a, block, sizeof block)) > 0 && b.len < MAX_JSON_MEMBER)
                dl_buf_append(&b, block, (size_t)n);
        const char *base = name + 22;
        size_t len = strlen(base);
        if (len > 8 && !strcmp(base + len - 8, ".md5sums")) {
                s->md5sums = dl_realloc(s->md5sums, (s->n_md5sums + 1) * sizeof *s->md5sums);
                s->md5sums[s->n_md5sums++] = (struct member){
                    dl_strndup(base, len - 8), b.data ? b.data : dl_strdup(""), b.len};
                return;
        }
        struct dl_deb822 d;
        struct dl_error ignored;
        if (b.data && dl_deb822_parse(b.data, b.len, name, &d, &ignored) == DL_OK) {
                if (d.n) {
                        const char *pkg = dl_paragraph_get(&d.paragraphs[0], "Package");
                        const char *ver = dl_paragraph_get(&d.paragraphs[0], "Version");
                        const char *arch = dl_paragraph_get(&d.paragraphs[0], "Architecture");
                        dl_strlist_push_owned(&s->status,
                                              dl_asprintf("%s %s %s", pkg ? pkg : base,
                                                          ver ? ver : "?", arch ? arch : "?"));
                }
                dl_deb822_free(&d);
        }
        dl_buf_free(&b);
}

/* Stream the layer member out of the tarball and scan it. */
static la_ssize_t read_outer(struct archive *inner, void *user, const void **buf)
{
        static char block[1 << 16];
        (void)inner;
        *buf = block;
        return archive_read_data((struct archive *)user, block, sizeof block);
}

static int scan_layer(const char *path, const char *member, struct layer_scan *s,
                      struct dl_error *err)
{
        struct archive *outer = archive_read_new();
        struct archive_entry *e;
        int rc = DL_OK, r;
        bool found = false;
        archive_read_support_format_tar(outer);
        if (archive_read_open_filename(outer, path, 1 << 16) != ARCHIVE_OK) {
                rc = dl_fail(err, DL_EIO, "cannot open %s: %s", path, archive_error_string(outer));
                archive_read_free(outer);
                return rc;
        }
        while (!found && (r = archive_read_next_header(outer, &e)) == ARCHIVE_OK) {
                if (strcmp(archive_entry_pathname(e), member) != 0)
                        continue;
                found = true;
                struct archive *a = archive_read_new();
                archive_read_support_filter_all(a);
                archive_read_support_format_tar(a);
                if (archive_read_open(a, outer, NULL, read_outer, NULL) != ARCHIVE_OK) {
                        rc = dl_fail(err, DL_EVERIFY, "%s: the layer %s is not a tar file", path,
                                     member);
                } else {
                        struct archive_entry *le;
                        while ((r = archive_read_next_header(a, &le)) == ARCHIVE_OK)
                                scan_entry(s, a, le);
                        if (r != ARCHIVE_EOF)
                                rc = dl_fail(err, DL_EVERIFY, "%s: the layer %s is damaged: %s",
                                             path, member, archive_error_string(a));
                }
                archive_read_free(a);
        }
        if (!found && rc == DL_OK)
                rc = dl_fail(err, DL_EVERIFY, "%s: the layer %s is missing", path, member);
        archive_read_free(outer);
        return rc;
}

static int compare_desc(const void *a, const void *b)
{
        const struct file_size *x = a, *y = b;
        if (x->size != y->size)
                return x->size < y->size ? 1 : -1;
        return strcmp(x->path, y->path);
}

static int compare_paths(const void *a, const void *b)
{
        return strcmp(((const struct file_size *)a)->path, ((const struct file_size *)b)->path);
}

static void print_sizes(const struct layer_scan *s, FILE *out)
{
        /* Attribute each file to the package whose md5sums lists it; sort the files by
         * path once so each lookup is a binary search. */
        struct file_size *files = dl_calloc(s->n_files, sizeof *files);
        bool *owned = dl_calloc(s->n_files, sizeof *owned);
        memcpy(files, s->files, s->n_files * sizeof *files);
        qsort(files, s->n_files, sizeof *files, compare_paths);
        struct file_size *per = dl_calloc(s->n_md5sums + 1, sizeof *per);
        unsigned long long total = 0, other = 0;
        for (size_t i = 0; i < s->n_md5sums; i++) {
                per[i].path = s->md5sums[i].name;
                char *copy = dl_strdup(s->md5sums[i].data), *save = NULL;
                for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                        char *p = strstr(l, "  ");
                        if (!p)
                                continue;
                        p += 2;
                        while (*p == '/')
                                p++;
                        struct file_size key = {p, 0};
                        struct file_size *f =
                            bsearch(&key, files, s->n_files, sizeof *files, compare_paths);
                        if (!f) {
                                /* md5sums keep /bin, /lib ... paths; merged /usr moved them. */
                                char *usr = dl_asprintf("usr/%s", p);
                                key.path = usr;
                                f = bsearch(&key, files, s->n_files, sizeof *files, compare_paths);
                                free(usr);
                        }
                        if (f && !owned[f - files]) {
                                owned[f - files] = true;
                                per[i].size += f->size;
                        }
                }
                free(copy);
        }
        for (size_t i = 0; i < s->n_files; i++) {
                total += files[i].size;
                if (!owned[i])
                        other += files[i].size;
        }
        qsort(per, s->n_md5sums, sizeof *per, compare_desc);
        fprintf(out, "  installed bytes by package (largest first):\n");
        for (size_t i = 0; i < s->n_md5sums; i++)
                fprintf(out, "    %12llu  %s\n", per[i].size, per[i].path);
        fprintf(out, "    %12llu  (files no package lists: generated files, configuration)\n",
                other);
        fprintf(out, "    %12llu  total\n", total);
        free(per);
        free(files);
        free(owned);
}

static void free_scan(struct layer_scan *s)
{
        dl_strlist_free(&s->status);
        for (size_t i = 0; i < s->n_files; i++)
                free(s->files[i].path);
        free(s->files);
        for (size_t i = 0; i < s->n_md5sums; i++) {
                free(s->md5sums[i].name);
                free(s->md5sums[i].data);
        }
        free(s->md5sums);
}

static void print_config(json_t *config, FILE *out)
{
        json_t *c = json_object_get(config, "config");
        const char *keys[] = {"User", "WorkingDir",   "Entrypoint", "Cmd",
                              "Env",  "ExposedPorts", "Labels"};
        fprintf(out, "  created: %s\n", json_string_value(json_object_get(config, "created")));
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
                json_t *v = json_object_get(c, keys[i]);
                if (!v)
                        continue;
                char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
                fprintf(out, "  %s: %s\n", keys[i], s);
                free(s);
        }
}

static int inspect_manifest(const struct image *im, json_t *desc, bool sizes, FILE *out,
                            struct dl_error *err)
{
        json_t *manifest = load_blob(im, json_string_value(json_object_get(desc, "digest")), err);
        if (!manifest)
                return err->code;
        json_t *config = load_blob(
            im, json_string_value(json_object_get(json_object_get(manifest, "config"), "digest")),
            err);
        int rc = config ? DL_OK : err->code;
        if (rc == DL_OK) {
                const char *variant = json_string_value(json_object_get(config, "variant"));
                fprintf(out, "platform %s/%s%s%s\n",
                        json_string_value(json_object_get(config, "os")),
                        json_string_value(json_object_get(config, "architecture")),
                        variant ? "/" : "", variant ? variant : "");
                print_config(config, out);
                json_t *layers = json_object_get(manifest, "layers");
                for (size_t i = 0; i < json_array_size(layers) && rc == DL_OK; i++) {
                        json_t *l = json_array_get(layers, i);
                        const char *digest = json_string_value(json_object_get(l, "digest"));
                        fprintf(out, "  layer %s: %lld bytes (%s)\n", digest ? digest : "?",
                                (long long)json_integer_value(json_object_get(l, "size")),
                                json_string_value(json_object_get(l, "mediaType")));
                        if (!digest || strncmp(digest, "sha256:", 7))
                                continue;
                        struct layer_scan scan = {0};
                        char *member = dl_asprintf("blobs/sha256/%s", digest + 7);
                        rc = scan_layer(im->path, member, &scan, err);
                        free(member);
                        if (rc == DL_OK) {
                                dl_strlist_sort(&scan.status);
                                fprintf(out, "  packages (%zu):\n", scan.status.n);
                                for (size_t k = 0; k < scan.status.n; k++)
                                        fprintf(out, "    %s\n", scan.status.v[k]);
                                if (sizes)
                                        print_sizes(&scan, out);
                        }
                        free_scan(&scan);
                }
        }
        json_decref(config);
        json_decref(manifest);
        return rc;
}

int dl_inspect(const char *path, bool sizes, FILE *out, struct dl_error *err)
{
        struct image im = {.path = path};
        int rc = read_small_members(&im, err);
        json_t *index = NULL, *nested = NULL;
        if (rc == DL_OK) {
                const struct member *m = find(&im, "index.json");
                if (!m || !(index = json_loadb(m->data, m->len, 0, NULL)))
                        rc = dl_fail(err, DL_EVERIFY,
                                     "%s has no readable index.json; is it an OCI image tarball?",
                                     path);
        }
        json_t *mans = index ? json_object_get(index, "manifests") : NULL;
        for (size_t i = 0; rc == DL_OK && i < json_array_size(mans); i++) {
                json_t *d = json_array_get(mans, i);
                const char *ref = json_string_value(json_object_get(
                    json_object_get(d, "annotations"), "org.opencontainers.image.ref.name"));
                fprintf(out, "image %s (%s)\n", ref ? ref : "(no name)",
                        json_string_value(json_object_get(d, "digest")));
                const char *type = json_string_value(json_object_get(d, "mediaType"));
                if (type && strstr(type, "index")) {
                        nested =
                            load_blob(&im, json_string_value(json_object_get(d, "digest")), err);
                        if (!nested) {
                                rc = err->code;
                                break;
                        }
                        json_t *inner = json_object_get(nested, "manifests");
                        for (size_t k = 0; k < json_array_size(inner) && rc == DL_OK; k++)
                                rc = inspect_manifest(&im, json_array_get(inner, k), sizes, out,
                                                      err);
                        json_decref(nested);
                } else {
                        rc = inspect_manifest(&im, d, sizes, out, err);
                }
        }
        json_decref(index);
        for (size_t i = 0; i < im.n; i++) {
                free(im.members[i].name);
                free(im.members[i].data);
        }
        free(im.members);
        return rc;
}
