#include "distill/lock.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/log.h"

#define LOCK_VERSION 1

char *dl_lock_path(const char *spec_path)
{
        size_t n = strlen(spec_path);
        if (n > 5 && !strcmp(spec_path + n - 5, ".yaml"))
                n -= 5;
        else if (n > 4 && !strcmp(spec_path + n - 4, ".yml"))
                n -= 4;
        return dl_asprintf("%.*s.lock.json", (int)n, spec_path);
}

static json_t *strings(const struct dl_strlist *l, bool sorted)
{
        struct dl_strlist copy = {0};
        for (size_t i = 0; i < l->n; i++)
                dl_strlist_push(&copy, l->v[i]);
        if (sorted)
                dl_strlist_sort(&copy);
        json_t *a = json_array();
        for (size_t i = 0; i < copy.n; i++)
                json_array_append_new(a, json_string(copy.v[i]));
        dl_strlist_free(&copy);
        return a;
}

static json_t *inputs_object(const struct dl_spec *spec)
{
        json_t *o = json_object(), *srcs = json_array();
        for (size_t i = 0; i < spec->n_sources; i++) {
                const struct dl_source *s = &spec->sources[i];
                json_t *j = json_object();
                json_object_set_new(j, "url", json_string(s->url));
                json_object_set_new(j, "suites", strings(&s->suites, false));
                json_object_set_new(j, "components", strings(&s->components, false));
                json_array_append_new(srcs, j);
        }
        json_object_set_new(o, "sources", srcs);
        json_object_set_new(o, "architectures", strings(&spec->architectures, false));
        /* The order of packages and exclude does not change the resolution. */
        json_object_set_new(o, "packages", strings(&spec->packages, true));
        json_object_set_new(o, "exclude", strings(&spec->exclude, true));
        /* Only present when some package is limited, so older locks keep their digest. */
        if (spec->package_archs.n) {
                json_t *limits = json_object();
                for (size_t i = 0; i < spec->package_archs.n; i++)
                        json_object_set_new(limits, spec->package_archs.v[i].key,
                                            json_string(spec->package_archs.v[i].value));
                json_object_set_new(o, "package_architectures", limits);
        }
        return o;
}

char *dl_lock_inputs_json(const struct dl_spec *spec)
{
        json_t *o = inputs_object(spec);
        char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        return s;
}

void dl_lock_inputs_digest(const struct dl_spec *spec, char hex[DL_SHA256_HEX])
{
        char *s = dl_lock_inputs_json(spec);
        dl_sha256_hex(s, strlen(s), hex);
        free(s);
}

static json_t *time_or_null(long long t)
{
        char buf[32];
        if (t < 0)
                return json_null();
        dl_format_rfc3339(t, buf);
        return json_string(buf);
}

static json_t *package_json(const struct dl_spec *spec, const struct dl_package *p)
{
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(p->name));
        json_object_set_new(j, "version", json_string(p->version));
        json_object_set_new(j, "architecture", json_string(p->arch));
        json_object_set_new(j, "source", json_string(spec->sources[p->source].url));
        json_object_set_new(j, "suite", json_string(p->suite));
        json_object_set_new(j, "filename", json_string(p->filename));
        json_object_set_new(j, "size", json_integer((json_int_t)p->size));
        json_object_set_new(j, "sha256", json_string(p->sha256));
        json_object_set_new(j, "why", json_string(p->why));
        return j;
}

int dl_lock_write(const char *path, const struct dl_spec *spec,
                  const struct dl_lock_input_arch *archs, size_t n, struct dl_error *err)
{
        json_t *root = json_object(), *sources = json_array(), *by_arch = json_object();
        char digest[DL_SHA256_HEX];

        dl_lock_inputs_digest(spec, digest);
        json_object_set_new(root, "lock_version", json_integer(LOCK_VERSION));
        json_object_set_new(root, "inputs", inputs_object(spec));
        json_object_set_new(root, "inputs_sha256", json_string(digest));
        for (size_t i = 0; i < spec->n_sources; i++) {
                const struct dl_source *s = &spec->sources[i];
                json_t *j = json_object(), *rels = json_array(), *idx = json_array();
                const char *last = strrchr(s->url, '/');
                json_object_set_new(j, "url", json_string(s->url));
                json_object_set_new(j, "snapshot",
                                    s->snapshot_time >= 0 ? json_string(last + 1) : json_null());
                /* Releases are the same for every architecture; indexes are not. */
                for (size_t k = 0; n > 0 && k < archs[0].sources->n_releases; k++) {
                        const struct dl_release *r = &archs[0].sources->releases[k];
                        if (r->source != (int)i)
                                continue;
                        json_t *rj = json_object();
                        json_object_set_new(rj, "suite", json_string(r->spec_suite));
                        json_object_set_new(rj, "inrelease_sha256",
                                            json_string(r->inrelease_sha256));
                        json_object_set_new(rj, "date", time_or_null(r->date));
                        json_array_append_new(rels, rj);
                }
                for (size_t a = 0; a < n; a++)
                        for (size_t k = 0; k < archs[a].sources->n_indexes; k++) {
                                const struct dl_index *x = &archs[a].sources->indexes[k];
                                if (x->source != (int)i)
                                        continue;
                                json_t *ij = json_object();
                                json_object_set_new(ij, "architecture", json_string(archs[a].arch));
                                json_object_set_new(ij, "suite", json_string(x->suite));
                                json_object_set_new(ij, "path", json_string(x->release_path));
                                json_object_set_new(ij, "sha256", json_string(x->sha256));
                                json_array_append_new(idx, ij);
                        }
                json_object_set_new(j, "releases", rels);
                json_object_set_new(j, "indexes", idx);
                json_array_append_new(sources, j);
        }
        json_object_set_new(root, "sources", sources);
        for (size_t a = 0; a < n; a++) {
                json_t *pk = json_array();
                for (size_t k = 0; k < archs[a].res->n_packages; k++)
                        json_array_append_new(pk, package_json(spec, &archs[a].res->packages[k]));
                json_object_set_new(by_arch, archs[a].arch, pk);
        }
        json_object_set_new(root, "architectures", by_arch);
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(root);
        struct dl_buf b = {0};
        dl_buf_puts(&b, text);
        dl_buf_puts(&b, "\n");
        free(text);
        int rc = dl_write_file_atomic(path, b.data, b.len, 0644, err);
        dl_buf_free(&b);
        return rc;
}

static const char *get_str(json_t *o, const char *key)
{
        json_t *v = json_object_get(o, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

static int source_index(const struct dl_spec *spec, const char *url)
{
        for (size_t i = 0; url && i < spec->n_sources; i++)
                if (!strcmp(spec->sources[i].url, url))
                        return (int)i;
        return -1;
}

static int read_packages(const char *path, const struct dl_spec *spec, json_t *list,
                         struct dl_resolution *res, struct dl_error *err)
{
        size_t n = json_array_size(list);
        res->packages = dl_calloc(n, sizeof *res->packages);
        for (size_t i = 0; i < n; i++) {
                json_t *p = json_array_get(list, i);
                const char *name = get_str(p, "name"), *version = get_str(p, "version"),
                           *arch = get_str(p, "architecture"), *src = get_str(p, "source"),
                           *suite = get_str(p, "suite"), *file = get_str(p, "filename"),
                           *sha = get_str(p, "sha256"), *why = get_str(p, "why");
                json_t *size = json_object_get(p, "size");
                int source = source_index(spec, src);
                if (!name || !version || !arch || !file || !sha || !dl_is_sha256_hex(sha) ||
                    !json_is_integer(size) || json_integer_value(size) < 0 || strstr(file, ".."))
                        return dl_fail(err, DL_ESPEC,
                                       "%s: package entry %zu is incomplete or invalid; run "
                                       "distill lock again",
                                       path, i + 1);
                struct dl_package *pkg = &res->packages[res->n_packages++];
                pkg->name = dl_strdup(name);
                pkg->version = dl_strdup(version);
                pkg->arch = dl_strdup(arch);
                pkg->filename = dl_strdup(file);
                pkg->sha256 = dl_strdup(sha);
                pkg->size = (unsigned long long)json_integer_value(size);
                pkg->source = source;
                pkg->suite = dl_strdup(suite ? suite : "");
                pkg->why = dl_strdup(why ? why : name);
        }
        return DL_OK;
}

int dl_lock_read(const char *path, const struct dl_spec *spec, struct dl_lock *out, bool *missing,
                 struct dl_error *err)
{
        json_error_t je;
        int rc = DL_OK;

        memset(out, 0, sizeof *out);
        out->newest_date = -1;
        *missing = false;
        if (access(path, F_OK) != 0 && errno == ENOENT) {
                *missing = true;
                return dl_fail(err, DL_ESTALE, "no lock file %s; run distill lock %s", path,
                               spec->path ? spec->path : "SPEC");
        }
        json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
        if (!root)
                return dl_fail(err, DL_ESPEC,
                               "%s:%d:%d: invalid lock file: %s; run distill lock again", path,
                               je.line, je.column, je.text);
        json_t *ver = json_object_get(root, "lock_version");
        const char *digest = get_str(root, "inputs_sha256");
        json_t *inputs = json_object_get(root, "inputs");
        json_t *archs = json_object_get(root, "architectures");
        if (!json_is_integer(ver) || json_integer_value(ver) != LOCK_VERSION || !digest ||
            !json_is_object(inputs) || !json_is_object(archs)) {
                rc = dl_fail(err, DL_ESPEC,
                             "%s: not a lock file of version %d; run distill lock again", path,
                             LOCK_VERSION);
                goto out;
        }
        out->inputs_digest = dl_strdup(digest);
        out->inputs_json = json_dumps(inputs, JSON_COMPACT | JSON_SORT_KEYS);
        const char *key;
        json_t *list;
        out->archs = dl_calloc(json_object_size(archs) + 1, sizeof *out->archs);
        json_object_foreach(archs, key, list)
        {
                if (!json_is_array(list)) {
                        rc = dl_fail(err, DL_ESPEC,
                                     "%s: architectures.%s is not a list; run distill lock again",
                                     path, key);
                        goto out;
                }
                struct dl_lock_arch *la = &out->archs[out->n_archs++];
                la->arch = dl_strdup(key);
                if ((rc = read_packages(path, spec, list, &la->res, err)))
                        goto out;
        }
        json_t *sources = json_object_get(root, "sources");
        for (size_t i = 0; i < json_array_size(sources); i++) {
                json_t *s = json_array_get(sources, i);
                json_t *rels = json_object_get(s, "releases");
                for (size_t k = 0; k < json_array_size(rels); k++) {
                        json_t *r = json_array_get(rels, k);
                        const char *date = get_str(r, "date"), *suite = get_str(r, "suite"),
                                   *url = get_str(s, "url");
                        if (!date || !suite || !url)
                                continue;
                        long long t = -1;
                        int y, mo, d, h, mi, sec;
                        if (sscanf(date, "%4d-%2d-%2dT%2d:%2d:%2dZ", &y, &mo, &d, &h, &mi, &sec) ==
                            6) {
                                char snap[17];
                                snprintf(snap, sizeof snap, "%04d%02d%02dT%02d%02d%02dZ", y, mo, d,
                                         h, mi, sec);
                                t = dl_parse_snapshot_time(snap);
                        }
                        if (t > out->newest_date)
                                out->newest_date = t;
                        out->release_dates.v =
                            dl_realloc(out->release_dates.v,
                                       (out->release_dates.n + 1) * sizeof *out->release_dates.v);
                        out->release_dates.v[out->release_dates.n++] = (struct dl_keyval){
                            dl_asprintf("%s %s", url, suite), dl_asprintf("%lld", t)};
                }
        }
out:
        json_decref(root);
        if (rc)
                dl_lock_free(out);
        return rc;
}

void dl_lock_free(struct dl_lock *l)
{
        free(l->inputs_digest);
        free(l->inputs_json);
        for (size_t i = 0; i < l->n_archs; i++) {
                free(l->archs[i].arch);
                dl_resolution_free(&l->archs[i].res);
        }
        free(l->archs);
        for (size_t i = 0; i < l->release_dates.n; i++) {
                free(l->release_dates.v[i].key);
                free(l->release_dates.v[i].value);
        }
        free(l->release_dates.v);
        memset(l, 0, sizeof *l);
}

/* Append "the spec VERB WHAT ITEM" for each item of from that to lacks. */
static void describe_missing(struct dl_buf *b, const char *verb, const char *what, json_t *from,
                             json_t *to)
{
        for (size_t i = 0; i < json_array_size(from); i++) {
                bool found = false;
                for (size_t k = 0; k < json_array_size(to) && !found; k++)
                        found = json_equal(json_array_get(from, i), json_array_get(to, k));
                if (found)
                        continue;
                char *s = json_dumps(json_array_get(from, i),
                                     JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
                dl_buf_printf(b, "%sthe spec %s %s %s", b->len ? "; " : "", verb, what, s);
                free(s);
        }
}

static void describe_list(struct dl_buf *b, const char *what, json_t *locked, json_t *now)
{
        describe_missing(b, "adds", what, now, locked);
        describe_missing(b, "drops", what, locked, now);
}

/* Name each package whose architecture limit differs between the lock and the spec. */
static void describe_limits(struct dl_buf *b, json_t *then, json_t *now)
{
        const char *key;
        json_t *v;
        json_object_foreach(now, key, v)
        {
                json_t *old = json_object_get(then, key);
                if (!old || !json_equal(old, v))
                        dl_buf_printf(b, "%sthe spec limits package %s to %s", b->len ? "; " : "",
                                      key, json_string_value(v));
        }
        json_object_foreach(then, key, v)
        {
                if (!json_object_get(now, key))
                        dl_buf_printf(b, "%sthe spec no longer limits package %s to %s",
                                      b->len ? "; " : "", key, json_string_value(v));
        }
}

char *dl_lock_describe_drift(const struct dl_lock *l, const struct dl_spec *spec)
{
        json_t *now = inputs_object(spec);
        json_t *locked = json_loads(l->inputs_json ? l->inputs_json : "{}", 0, NULL);
        struct dl_buf b = {0};
        static const char *const keys[][2] = {{"packages", "package"},
                                              {"exclude", "exclude"},
                                              {"architectures", "architecture"},
                                              {"sources", "source"}};
        for (size_t i = 0; i < 4; i++)
                describe_list(&b, keys[i][1], json_object_get(locked, keys[i][0]),
                              json_object_get(now, keys[i][0]));
        describe_limits(&b, json_object_get(locked, "package_architectures"),
                        json_object_get(now, "package_architectures"));
        if (!b.len)
                dl_buf_puts(&b, "the recorded inputs digest does not match the lock's contents");
        char *s = dl_strdup(dl_buf_str(&b));
        dl_buf_free(&b);
        json_decref(now);
        json_decref(locked);
        return s;
}
