#include "distill/sources.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/deb822.h"
#include "distill/cleanup.h"
#include "distill/log.h"
#include "distill/verify.h"

int dl_mirrors_add(struct dl_mirrors *m, const char *pair, struct dl_error *err)
{
        const char *eq = strchr(pair, '=');
        if (!eq || eq == pair || !eq[1])
                return dl_fail(err, DL_EUSAGE,
                               "invalid mirror \"%s\": expected FROM=TO, such as "
                               "https://snapshot.example/archive/debian/20261204T000000Z=http://"
                               "127.0.0.1:8000/debian",
                               pair);
        m->v = dl_realloc(m->v, (m->n + 1) * sizeof *m->v);
        m->v[m->n].from = dl_strndup(pair, (size_t)(eq - pair));
        m->v[m->n].to = dl_strdup(eq + 1);
        m->n++;
        return DL_OK;
}

int dl_mirrors_add_env(struct dl_mirrors *m, const char *value, struct dl_error *err)
{
        if (!value)
                return DL_OK;
        char *copy = dl_strdup(value), *save = NULL;
        int rc = DL_OK;
        for (char *tok = strtok_r(copy, " \t\n", &save); tok && rc == DL_OK;
             tok = strtok_r(NULL, " \t\n", &save))
                rc = dl_mirrors_add(m, tok, err);
        free(copy);
        if (rc)
                dl_error_wrap(err, "DISTILL_MIRROR");
        return rc;
}

static size_t trimmed_len(const char *s)
{
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
                n--;
        return n;
}

char *dl_mirrors_rewrite(const struct dl_mirrors *m, const char *url)
{
        for (size_t i = 0; m && i < m->n; i++) {
                size_t n = trimmed_len(m->v[i].from);
                /* The prefix must end at a path boundary: FROM .../debian must not
                 * rewrite .../debian-security. */
                if (strncmp(url, m->v[i].from, n) == 0 && (url[n] == '\0' || url[n] == '/'))
                        return dl_asprintf("%.*s%s", (int)trimmed_len(m->v[i].to), m->v[i].to,
                                           url + n);
        }
        return dl_strdup(url);
}

void dl_mirrors_free(struct dl_mirrors *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free(m->v[i].from);
                free(m->v[i].to);
        }
        free(m->v);
        memset(m, 0, sizeof *m);
}

static char *dup_or_null(const char *s)
{
        return s ? dl_strdup(s) : NULL;
}

static int parse_sha256_list(const char *list, const char *what, struct dl_release *r,
                             struct dl_error *err)
{
        char *copy = dl_strdup(list), *save = NULL;
        int rc = DL_OK;

        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char hash[65], path[4096];
                unsigned long long size;
                if (!*line)
                        continue;
                if (sscanf(line, " %64s %llu %4095s", hash, &size, path) != 3 ||
                    !dl_is_sha256_hex(hash)) {
                        rc = dl_fail(err, DL_EVERIFY, "%s: malformed SHA256 line \"%s\"", what,
                                     line);
                        break;
                }
                r->files = dl_realloc(r->files, (r->n_files + 1) * sizeof *r->files);
                r->files[r->n_files++] =
                    (struct dl_release_file){dl_strdup(path), dl_strdup(hash), size};
        }
        free(copy);
        return rc;
}

int dl_release_parse(const char *text, size_t len, const char *what, struct dl_release *out,
                     struct dl_error *err)
{
        struct dl_deb822 d;
        int rc;

        memset(out, 0, sizeof *out);
        out->date = out->valid_until = -1;
        if ((rc = dl_deb822_parse(text, len, what, &d, err)))
                return rc;
        if (d.n == 0) {
                dl_deb822_free(&d);
                return dl_fail(err, DL_EVERIFY, "%s: the Release file is empty", what);
        }
        const struct dl_paragraph *p = &d.paragraphs[0];
        const char *v;
        out->origin = dup_or_null(dl_paragraph_get(p, "Origin"));
        out->suite = dup_or_null(dl_paragraph_get(p, "Suite"));
        out->codename = dup_or_null(dl_paragraph_get(p, "Codename"));
        if ((v = dl_paragraph_get(p, "Date")) && (out->date = dl_parse_rfc2822(v)) < 0)
                rc = dl_fail(err, DL_EVERIFY, "%s: invalid Date \"%s\"", what, v);
        if (!rc && (v = dl_paragraph_get(p, "Valid-Until")) &&
            (out->valid_until = dl_parse_rfc2822(v)) < 0)
                rc = dl_fail(err, DL_EVERIFY, "%s: invalid Valid-Until \"%s\"", what, v);
        v = dl_paragraph_get(p, "Acquire-By-Hash");
        out->by_hash = v && strcmp(v, "yes") == 0;
        v = dl_paragraph_get(p, "No-Support-for-Architecture-all");
        out->arch_all_in_arch_indexes = v && strcmp(v, "Packages") == 0;
        if ((v = dl_paragraph_get(p, "Architectures"))) {
                char *copy = dl_strdup(v), *save = NULL;
                for (char *t = strtok_r(copy, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
                        dl_strlist_push(&out->architectures, t);
                free(copy);
        }
        if (!rc) {
                v = dl_paragraph_get(p, "SHA256");
                if (!v)
                        rc = dl_fail(err, DL_EVERIFY,
                                     "%s: the Release file has no SHA256 list, so its indexes "
                                     "cannot be checked",
                                     what);
                else
                        rc = parse_sha256_list(v, what, out, err);
        }
        dl_deb822_free(&d);
        if (rc)
                dl_release_free(out);
        return rc;
}

const struct dl_release_file *dl_release_find(const struct dl_release *r, const char *path)
{
        for (size_t i = 0; i < r->n_files; i++)
                if (strcmp(r->files[i].path, path) == 0)
                        return &r->files[i];
        return NULL;
}

void dl_release_free(struct dl_release *r)
{
        free(r->origin);
        free(r->suite);
        free(r->codename);
        free(r->spec_suite);
        dl_strlist_free(&r->architectures);
        for (size_t i = 0; i < r->n_files; i++) {
                free(r->files[i].path);
                free(r->files[i].sha256);
        }
        free(r->files);
        memset(r, 0, sizeof *r);
}

/* A source the spec marks unsigned: the Release (or the text of InRelease) is read
 * without any signature check, and every build warns about it. */
static int fetch_unsigned(const struct dl_source *src, const char *suite, const char *base,
                          const struct dl_sources_options *o, const char *what,
                          struct dl_buf *plain, struct dl_release *rel, struct dl_error *err)
{
        long status = 0;
        char *url = dl_asprintf("%s/dists/%s/Release", base, suite);
        int rc = dl_http_get(o->http, url, plain, &status, err);
        (void)src;
        dl_warn("%s: the spec marks this source unsigned, so its Release is NOT verified; anyone "
                "who can change the server's files or the network path controls this image",
                what);
        if (rc == DL_OK)
                dl_sha256_hex(plain->data, plain->len, rel->inrelease_sha256);
        free(url);
        return rc;
}

/* Fetch and verify dists/SUITE/InRelease, or Release plus Release.gpg when the
 * server has no InRelease. */
static int fetch_release(const struct dl_source *src, const char *suite, const char *base,
                         const struct dl_sources_options *o, struct dl_release *rel,
                         struct dl_error *err)
{
        char *what = dl_asprintf("source %s, suite %s", src->url, suite);
        char *url = dl_asprintf("%s/dists/%s/InRelease", base, suite);
        struct dl_verify_options vo = {
            .keyring = src->keyring, .allow_expired_key = src->snapshot_time >= 0, .what = what};
        struct dl_buf raw = {0}, plain = {0}, sig = {0};
        long status = 0;
        int rc;

        if (src->unsigned_ok) {
                rc = fetch_unsigned(src, suite, base, o, what, &plain, rel, err);
                goto parse;
        }
        rc = dl_http_get(o->http, url, &raw, &status, err);
        if (rc == DL_OK) {
                rc = dl_verify_clearsigned(&vo, raw.data, raw.len, &plain, err);
                if (rc == DL_OK)
                        dl_sha256_hex(raw.data, raw.len, rel->inrelease_sha256);
        } else if (status == 404 || status == 410) {
                dl_info("%s has no InRelease; using Release and Release.gpg", what);
                free(url);
                url = dl_asprintf("%s/dists/%s/Release", base, suite);
                rc = dl_http_get(o->http, url, &plain, NULL, err);
                if (rc == DL_OK) {
                        free(url);
                        url = dl_asprintf("%s/dists/%s/Release.gpg", base, suite);
                        rc = dl_http_get(o->http, url, &sig, &status, err);
                        if (rc && (status == 404 || status == 410))
                                rc = dl_fail(err, DL_EVERIFY,
                                             "%s: neither InRelease nor Release.gpg exists, so the "
                                             "Release file is unsigned; check the URL and suite",
                                             what);
                }
                if (rc == DL_OK)
                        rc = dl_verify_detached(&vo, plain.data, plain.len, sig.data, sig.len, err);
                if (rc == DL_OK)
                        dl_sha256_hex(plain.data, plain.len, rel->inrelease_sha256);
        }
parse:
        if (rc == DL_OK) {
                char sha[DL_SHA256_HEX];
                memcpy(sha, rel->inrelease_sha256, sizeof sha);
                rc = dl_release_parse(plain.data, plain.len, what, rel, err);
                memcpy(rel->inrelease_sha256, sha, sizeof sha);
        }
        if (rc == DL_OK && !(rel->suite && strcmp(rel->suite, suite) == 0) &&
            !(rel->codename && strcmp(rel->codename, suite) == 0)) {
                rc = dl_fail(err, DL_EVERIFY,
                             "%s: the signed Release is for suite %s (codename %s), not %s; a "
                             "mirror may be serving the wrong suite",
                             what, rel->suite ? rel->suite : "(none)",
                             rel->codename ? rel->codename : "(none)", suite);
                dl_release_free(rel);
        }
        if (rc == DL_OK && rel->valid_until >= 0 && rel->valid_until < o->now) {
                char when[32];
                dl_format_rfc3339(rel->valid_until, when);
                if (src->snapshot_time >= 0) {
                        dl_info("%s: Release expired on %s (Valid-Until); accepted because the "
                                "source is a snapshot",
                                what, when);
                } else {
                        rc = dl_fail(
                            err, DL_EVERIFY,
                            "%s: the Release expired on %s (Valid-Until), so it may be a stale or "
                            "replayed copy; use an up-to-date mirror or a snapshot URL",
                            what, when);
                        dl_release_free(rel);
                }
        }
        dl_buf_free(&raw);
        dl_buf_free(&plain);
        dl_buf_free(&sig);
        free(url);
        free(what);
        return rc;
}

/* Get one index into the cache (through by-hash when the Release offers it), checked
 * against the signed SHA256 list. The resolver reads it compressed, as cached. */
static int fetch_index(const char *base, const char *suite, const struct dl_release_file *f,
                       bool by_hash, const char *what, const struct dl_sources_options *o,
                       struct dl_error *err)
{
        int rc = DL_OK;

        if (!dl_cache_valid(o->cache, f->sha256)) {
                char *tmp = dl_cache_tmp_path(o->cache);
                char *dir = dl_dirname(f->path);
                char *urls[2] = {NULL, NULL};
                int n = 0;
                if (by_hash)
                        urls[n++] = dl_asprintf("%s/dists/%s/%s/by-hash/SHA256/%s", base, suite,
                                                dir, f->sha256);
                urls[n++] = dl_asprintf("%s/dists/%s/%s", base, suite, f->path);
                for (int i = 0; i < n; i++) {
                        struct dl_http_job job = {.url = urls[i], .path = tmp};
                        rc = dl_http_get_many(o->http, &job, 1, err);
                        if (rc == DL_OK)
                                rc = dl_cache_commit(o->cache, tmp, f->sha256, f->size, urls[i],
                                                     err);
                        else
                                unlink(tmp);
                        free(job.error);
                        /* A mirror may advertise by-hash without carrying the files, or
                         * carry a canonical file newer than the Release: try the other. */
                        if (rc == DL_OK)
                                break;
                        if (i + 1 == n) {
                                if (n > 1)
                                        dl_error_wrap(err, "%s (the by-hash copy failed too)",
                                                      what);
                                break;
                        }
                        dl_info("%s: %s; trying %s", what, err->msg, urls[i + 1]);
                }
                free(urls[0]);
                free(urls[1]);
                free(dir);
                unlink(tmp); /* still there only when every attempt failed */
                dl_cleanup_forget(tmp);
                free(tmp);
                if (rc)
                        return rc;
        }
        return DL_OK;
}

static void add_index(struct dl_sources *s, const char *path, int source, const char *suite,
                      const char *component, const struct dl_release_file *f)
{
        s->indexes = dl_realloc(s->indexes, (s->n_indexes + 1) * sizeof *s->indexes);
        s->indexes[s->n_indexes++] = (struct dl_index){.path = dl_strdup(path),
                                                       .source = source,
                                                       .suite = dl_strdup(suite),
                                                       .component = dl_strdup(component),
                                                       .release_path = dl_strdup(f->path),
                                                       .sha256 = dl_strdup(f->sha256)};
}

/* Load the indexes of one component: binary-ARCH, plus binary-all when the Release
 * lists "all" among its Architectures and does not say that the per-architecture
 * indexes carry those packages (No-Support-for-Architecture-all: Packages). That is
 * apt's rule. An archive that does not list "all" keeps Architecture: all packages
 * in every binary-ARCH index, and its binary-all files may be stale. */
static int load_component(const struct dl_source *src, int source_index, const char *suite,
                          const char *base, const struct dl_release *rel, const char *component,
                          const char *arch, const struct dl_sources_options *o,
                          struct dl_sources *out, struct dl_error *err)
{
        static const char *const variants[] = {"Packages.xz",  "Packages.gz", "Packages.bz2",
                                               "Packages.zst", "Packages",    NULL};
        const char *archs[2] = {arch, "all"};
        int n_archs =
            !rel->arch_all_in_arch_indexes && dl_strlist_contains(&rel->architectures, "all") ? 2
                                                                                              : 1;

        for (int a = 0; a < n_archs; a++) {
                const struct dl_release_file *f = NULL;
                for (int v = 0; variants[v] && !f; v++) {
                        char *path =
                            dl_asprintf("%s/binary-%s/%s", component, archs[a], variants[v]);
                        f = dl_release_find(rel, path);
                        free(path);
                }
                if (!f) {
                        if (a == 1)
                                continue; /* no binary-all index: nothing to add */
                        return dl_fail(err, DL_EVERIFY,
                                       "source %s, suite %s: the Release lists no Packages index "
                                       "for %s/binary-%s; check the component and the architecture "
                                       "(this suite has: %s)",
                                       src->url, suite, component, arch,
                                       rel->architectures.n ? "see its Architectures field"
                                                            : "no Architectures field");
                }
                char *what = dl_asprintf("source %s, suite %s, %s", src->url, suite, f->path);
                int rc = fetch_index(base, suite, f, rel->by_hash, what, o, err);
                if (rc == DL_OK) {
                        char *cached = dl_cache_path(o->cache, f->sha256);
                        add_index(out, cached, source_index, suite, component, f);
                        free(cached);
                }
                free(what);
                if (rc)
                        return rc;
        }
        return DL_OK;
}

int dl_sources_load(const struct dl_spec *spec, const char *arch,
                    const struct dl_sources_options *o, struct dl_sources *out,
                    struct dl_error *err)
{
        int rc = DL_OK;

        memset(out, 0, sizeof *out);
        out->newest_date = -1;
        for (size_t i = 0; i < spec->n_sources && rc == DL_OK; i++) {
                const struct dl_source *src = &spec->sources[i];
                char *base = dl_mirrors_rewrite(o->mirrors, src->url);
                if (strcmp(base, src->url) != 0)
                        dl_info("source %s: fetching from %s", src->url, base);
                for (size_t j = 0; j < src->suites.n && rc == DL_OK; j++) {
                        const char *suite = src->suites.v[j];
                        out->releases = dl_realloc(out->releases,
                                                   (out->n_releases + 1) * sizeof *out->releases);
                        struct dl_release *rel = &out->releases[out->n_releases];
                        rc = fetch_release(src, suite, base, o, rel, err);
                        if (rc)
                                break;
                        rel->source = (int)i;
                        rel->spec_suite = dl_strdup(suite);
                        out->n_releases++;
                        if (rel->date > out->newest_date)
                                out->newest_date = rel->date;
                        for (size_t k = 0; k < src->components.n && rc == DL_OK; k++)
                                rc = load_component(src, (int)i, suite, base, rel,
                                                    src->components.v[k], arch, o, out, err);
                }
                free(base);
        }
        if (rc)
                dl_sources_free(out);
        return rc;
}

void dl_sources_free(struct dl_sources *s)
{
        for (size_t i = 0; i < s->n_indexes; i++) {
                free((char *)s->indexes[i].path);
                free((char *)s->indexes[i].suite);
                free((char *)s->indexes[i].component);
                free((char *)s->indexes[i].release_path);
                free((char *)s->indexes[i].sha256);
        }
        free(s->indexes);
        for (size_t i = 0; i < s->n_releases; i++)
                dl_release_free(&s->releases[i]);
        free(s->releases);
        memset(s, 0, sizeof *s);
}
