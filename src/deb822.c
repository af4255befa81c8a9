#include "distill/deb822.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "distill/util.h"

static void add_field(struct dl_paragraph *p, char *name, char *value, size_t line)
{
        p->fields = dl_realloc(p->fields, (p->n + 1) * sizeof *p->fields);
        p->fields[p->n++] = (struct dl_field){name, value, line};
}

static bool only_space(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t')
                        return false;
        return true;
}

int dl_deb822_parse(const char *text, size_t len, const char *what, struct dl_deb822 *out,
                    struct dl_error *err)
{
        struct dl_paragraph cur = {0};
        struct dl_buf value = {0};
        char *name = NULL;
        size_t name_line = 0, lineno = 0;
        const char *p = text, *end = text + len;
        int rc = DL_OK;

        memset(out, 0, sizeof *out);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *eol = nl ? nl : end;
                size_t n = (size_t)(eol - p);
                lineno++;
                if (n && p[n - 1] == '\r')
                        n--;
                bool blank = n == 0;
                if (!blank && only_space(p, n)) {
                        rc = dl_fail(err, DL_EVERIFY,
                                     "%s:%zu: a line holding only white space inside a paragraph; "
                                     "a blank line must be empty",
                                     what, lineno);
                        goto fail;
                }
                if (blank || (p[0] != ' ' && p[0] != '\t')) {
                        if (name) {
                                add_field(&cur, name, dl_strdup(dl_buf_str(&value)), name_line);
                                name = NULL;
                                value.len = 0;
                        }
                }
                if (blank) {
                        if (cur.n) {
                                out->paragraphs = dl_realloc(
                                    out->paragraphs, (out->n + 1) * sizeof *out->paragraphs);
                                out->paragraphs[out->n++] = cur;
                                memset(&cur, 0, sizeof cur);
                        }
                } else if (p[0] == ' ' || p[0] == '\t') {
                        if (!name) {
                                rc =
                                    dl_fail(err, DL_EVERIFY,
                                            "%s:%zu: a continuation line without a field before it",
                                            what, lineno);
                                goto fail;
                        }
                        if (value.len)
                                dl_buf_append(&value, "\n", 1);
                        dl_buf_append(&value, p + 1, n - 1);
                } else if (p[0] == '#') {
                        /* Comment lines are allowed by deb822 outside of values. */
                } else {
                        const char *colon = memchr(p, ':', n);
                        if (!colon || colon == p) {
                                rc = dl_fail(err, DL_EVERIFY,
                                             "%s:%zu: expected \"Field: value\", found a line "
                                             "without a field name",
                                             what, lineno);
                                goto fail;
                        }
                        name = dl_strndup(p, (size_t)(colon - p));
                        name_line = lineno;
                        const char *v = colon + 1;
                        while (v < p + n && (*v == ' ' || *v == '\t'))
                                v++;
                        size_t vn = (size_t)(p + n - v);
                        while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                                vn--;
                        dl_buf_append(&value, v, vn);
                }
                p = nl ? nl + 1 : end;
        }
        if (name) {
                add_field(&cur, name, dl_strdup(dl_buf_str(&value)), name_line);
                name = NULL;
        }
        if (cur.n) {
                out->paragraphs =
                    dl_realloc(out->paragraphs, (out->n + 1) * sizeof *out->paragraphs);
                out->paragraphs[out->n++] = cur;
                memset(&cur, 0, sizeof cur);
        }
fail:
        free(name);
        dl_buf_free(&value);
        for (size_t i = 0; i < cur.n; i++) {
                free(cur.fields[i].name);
                free(cur.fields[i].value);
        }
        free(cur.fields);
        if (rc)
                dl_deb822_free(out);
        return rc;
}

void dl_deb822_free(struct dl_deb822 *d)
{
        for (size_t i = 0; i < d->n; i++) {
                for (size_t j = 0; j < d->paragraphs[i].n; j++) {
                        free(d->paragraphs[i].fields[j].name);
                        free(d->paragraphs[i].fields[j].value);
                }
                free(d->paragraphs[i].fields);
        }
        free(d->paragraphs);
        memset(d, 0, sizeof *d);
}

const char *dl_paragraph_get(const struct dl_paragraph *p, const char *name)
{
        for (size_t i = 0; i < p->n; i++)
                if (strcasecmp(p->fields[i].name, name) == 0)
                        return p->fields[i].value;
        return NULL;
}
