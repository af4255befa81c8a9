#include "distill/sbom.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "distill/deb822.h"
#include "distill/log.h"
#include "distill/util.h"

#define TOOL_NAME    "distill"
#define TOOL_VERSION "0.1.0"
/* The reserved .invalid top-level domain (RFC 2606): the namespace must be a URI
 * unique to the document, and no real host should be implied by it. */
#define NAMESPACE_BASE "https://distill.invalid"
#define NOASSERTION    "NOASSERTION"

/* License names ------------------------------------------------------------ */

/* SPDX License List identifiers accepted as they are (matched without regard to
 * case, written in the list's case). Any other name becomes a LicenseRef, so an
 * identifier missing here costs precision, never validity. */
/* clang-format off */
static const char *const spdx_ids[] = {
        "0BSD", "AFL-2.1", "AFL-3.0", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.0",
        "Apache-1.1", "Apache-2.0", "APSL-2.0", "Artistic-1.0", "Artistic-1.0-Perl",
        "Artistic-2.0", "Beerware", "BSD-1-Clause", "BSD-2-Clause", "BSD-3-Clause", "BSD-4-Clause",
        "BSL-1.0", "bzip2-1.0.6", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0",
        "CC0-1.0", "CDDL-1.0", "CDDL-1.1", "CNRI-Python", "CPL-1.0", "curl", "ECL-2.0", "EPL-1.0",
        "EPL-2.0", "EUPL-1.2", "FSFAP", "FSFUL", "FSFULLR", "FTL", "GFDL-1.1-only",
        "GFDL-1.1-or-later", "GFDL-1.2-only", "GFDL-1.2-or-later", "GFDL-1.3-only",
        "GFDL-1.3-or-later", "GPL-1.0-only", "GPL-1.0-or-later", "GPL-2.0-only",
        "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "HPND", "ICU", "IJG", "Info-ZIP",
        "ISC", "LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1-only", "LGPL-2.1-or-later",
        "LGPL-3.0-only", "LGPL-3.0-or-later", "Libpng", "libpng-2.0", "LPPL-1.3c", "MIT", "MIT-0",
        "MPL-1.0", "MPL-1.1", "MPL-2.0", "MS-PL", "NCSA", "NTP", "OFL-1.1", "OLDAP-2.8", "OpenSSL",
        "PHP-3.0", "PHP-3.01", "PostgreSQL", "PSF-2.0", "Python-2.0", "Ruby", "Sleepycat", "TCL",
        "Unicode-DFS-2016", "Unlicense", "UPL-1.0", "Vim", "W3C", "WTFPL", "X11", "Zlib",
        "zlib-acknowledgement", "ZPL-2.0", "ZPL-2.1",
};
/* clang-format on */

/* DEP-5 short names of the GNU licenses, which carry the "or later" choice as a
 * "+" suffix where SPDX has distinct identifiers. */
static const struct {
        const char *dep5, *only, *or_later;
} gnu_licenses[] = {
    {"GPL-1", "GPL-1.0-only", "GPL-1.0-or-later"},
    {"GPL-2", "GPL-2.0-only", "GPL-2.0-or-later"},
    {"GPL-3", "GPL-3.0-only", "GPL-3.0-or-later"},
    {"LGPL-2", "LGPL-2.0-only", "LGPL-2.0-or-later"},
    {"LGPL-2.1", "LGPL-2.1-only", "LGPL-2.1-or-later"},
    {"LGPL-3", "LGPL-3.0-only", "LGPL-3.0-or-later"},
    {"AGPL-3", "AGPL-3.0-only", "AGPL-3.0-or-later"},
    {"GFDL-1.1", "GFDL-1.1-only", "GFDL-1.1-or-later"},
    {"GFDL-1.2", "GFDL-1.2-only", "GFDL-1.2-or-later"},
    {"GFDL-1.3", "GFDL-1.3-only", "GFDL-1.3-or-later"},
};

/* Other DEP-5 short names whose SPDX identifier is spelled differently. */
static const struct {
        const char *dep5, *spdx;
} license_aliases[] = {
    {"Expat", "MIT"},
    {"Python-CNRI", "CNRI-Python"},
    {"Zope-2.0", "ZPL-2.0"},
    {"Zope-2.1", "ZPL-2.1"},
};

static const char *listed_id(const char *name)
{
        for (size_t i = 0; i < sizeof spdx_ids / sizeof spdx_ids[0]; i++)
                if (strcasecmp(spdx_ids[i], name) == 0)
                        return spdx_ids[i];
        for (size_t i = 0; i < sizeof license_aliases / sizeof license_aliases[0]; i++)
                if (strcasecmp(license_aliases[i].dep5, name) == 0)
                        return license_aliases[i].spdx;
        return NULL;
}

/* Return the SPDX identifier of a GNU license name without its "+": "GPL-2" and
 * "GPL-2.0" both name the GPL version 2. */
static const char *gnu_id(const char *base, bool or_later)
{
        size_t n = strlen(base);
        if (n > 2 && strcmp(base + n - 2, ".0") == 0)
                n -= 2;
        for (size_t i = 0; i < sizeof gnu_licenses / sizeof gnu_licenses[0]; i++)
                if (strlen(gnu_licenses[i].dep5) == n &&
                    strncasecmp(gnu_licenses[i].dep5, base, n) == 0)
                        return or_later ? gnu_licenses[i].or_later : gnu_licenses[i].only;
        return NULL;
}

/* Translate a DEP-5 name into an SPDX simple expression ("GPL-2.0-or-later",
 * "MPL-1.1+"), or return NULL when the license is not on the list. */
static char *spdx_simple_expression(const char *name)
{
        if (strchr(name, ' '))
                return NULL; /* "GPL-2+ with OpenSSL exception" and the like */
        size_t n = strlen(name);
        bool plus = n > 1 && name[n - 1] == '+';
        char *base = dl_strndup(name, plus ? n - 1 : n);
        const char *id = gnu_id(base, plus);
        char *out = NULL;
        if (id)
                out = dl_strdup(id);
        else if ((id = listed_id(base)) != NULL)
                out = plus ? dl_asprintf("%s+", id) : dl_strdup(id);
        free(base);
        return out;
}

/* Make a LicenseRef idstring: SPDX allows only letters, digits, "." and "-".
 * The DEP-5 "+" (or any later version) is spelled out. */
static char *license_ref_id(const char *name)
{
        struct dl_buf b = {0};
        dl_buf_puts(&b, "LicenseRef-");
        size_t start = b.len;
        for (const char *p = name; *p; p++) {
                bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                          (*p >= '0' && *p <= '9') || *p == '.';
                if (ok) {
                        dl_buf_append(&b, p, 1);
                        continue;
                }
                const char *sep = *p == '+' ? "-or-later" : "-";
                if (b.len > start && b.data[b.len - 1] != '-')
                        dl_buf_puts(&b, sep);
                else if (*p == '+')
                        dl_buf_puts(&b, sep + 1);
        }
        while (b.len > start && b.data[b.len - 1] == '-')
                b.len--;
        if (b.len == start)
                dl_buf_puts(&b, "unnamed");
        char *s = dl_strdup(dl_buf_str(&b));
        dl_buf_free(&b);
        return s;
}

/* Licenses not on the SPDX list, one per distinct name and text, as the SPDX
 * document's hasExtractedLicensingInfos lists them. */
struct extracted_license {
        char *id;
        char *name;
        char *text;
};

struct extracted_licenses {
        struct extracted_license *v;
        size_t n;
};

static bool extracted_id_taken(const struct extracted_licenses *l, const char *id)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i].id, id) == 0)
                        return true;
        return false;
}

/* Return the LicenseRef for name with text, adding it when new. Two packages may
 * use one name for different texts (a "public-domain" paragraph differs from
 * package to package): the first text keeps the plain identifier, and each other
 * text gets it suffixed with part of the SHA-256 of name and text. */
static const char *extracted_add(struct extracted_licenses *l, const char *name, const char *text)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i].name, name) == 0 && strcmp(l->v[i].text, text) == 0)
                        return l->v[i].id;
        char *id = license_ref_id(name);
        if (extracted_id_taken(l, id)) {
                char *both = dl_asprintf("%s\n%s", name, text);
                char hex[DL_SHA256_HEX];
                dl_sha256_hex(both, strlen(both), hex);
                char *longer = dl_asprintf("%s-%.12s", id, hex);
                free(both);
                free(id);
                id = longer;
        }
        l->v = dl_realloc(l->v, (l->n + 1) * sizeof *l->v);
        l->v[l->n++] = (struct extracted_license){id, dl_strdup(name), dl_strdup(text)};
        return id;
}

static void extracted_free(struct extracted_licenses *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].id);
                free(l->v[i].name);
                free(l->v[i].text);
        }
        free(l->v);
        memset(l, 0, sizeof *l);
}

/* DEP-5 copyright files ---------------------------------------------------- */

/* The license of one package: an SPDX expression, or NULL for NOASSERTION. When
 * the expression is a single license, id is its identifier if it is on the SPDX
 * list and name is its DEP-5 name if it is not, because CycloneDX writes the two
 * kinds differently. */
struct declared_license {
        char *expression;
        const char *id;
        char *name;
        size_t n_terms;
};

/* Convert a License field's text to plain text. A line that is only "." stands
 * for an empty line, because deb822 continuation lines cannot be empty. */
static char *license_text(const char *value)
{
        struct dl_buf b = {0};
        for (const char *p = value; *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                if (!(n == 1 && p[0] == '.'))
                        dl_buf_append(&b, p, n);
                if (nl)
                        dl_buf_puts(&b, "\n");
                p = nl ? nl + 1 : p + n;
        }
        char *s = dl_strdup(dl_buf_str(&b));
        dl_buf_free(&b);
        return s;
}

/* Return the text after the first line of a License field, or NULL when the field
 * is only a name. */
static const char *license_body(const char *value)
{
        const char *nl = strchr(value, '\n');
        return nl && nl[1] ? nl + 1 : NULL;
}

/* Find the text of license name: in a stand-alone License paragraph (one without
 * Files, after the header), else the name itself. */
static char *standalone_text(const struct dl_deb822 *d, const char *name)
{
        for (size_t i = 1; i < d->n; i++) {
                const struct dl_paragraph *p = &d->paragraphs[i];
                const char *value = dl_paragraph_get(p, "License");
                if (!value || dl_paragraph_get(p, "Files"))
                        continue;
                size_t n = strcspn(value, "\n");
                const char *body = license_body(value);
                if (body && strlen(name) == n && strncasecmp(value, name, n) == 0)
                        return license_text(body);
        }
        return dl_strdup(name);
}

/* Translate one DEP-5 license name into an SPDX license reference, registering a
 * LicenseRef with its text when the name is not on the list. inline_body is the
 * Files paragraph's own license text, used when it has one. */
static char *license_term(struct extracted_licenses *refs, const struct dl_deb822 *d,
                          const char *name, const char *inline_body, struct declared_license *out)
{
        char *simple = spdx_simple_expression(name);
        out->n_terms++;
        free(out->name);
        out->name = NULL;
        out->id = NULL;
        if (simple) {
                out->id = listed_id(simple);
                return simple;
        }
        char *text = inline_body ? license_text(inline_body) : standalone_text(d, name);
        const char *id = extracted_add(refs, name, text);
        free(text);
        out->name = dl_strdup(name);
        return dl_strdup(id);
}

static bool is_word(const char *w, size_t n, const char *op)
{
        return strlen(op) == n && strncasecmp(w, op, n) == 0;
}

/* Whether expr has an OR outside parentheses, so that AND would bind into it. */
static bool has_top_level_or(const char *expr)
{
        int depth = 0;
        for (const char *p = expr; *p; p++) {
                if (*p == '(')
                        depth++;
                else if (*p == ')')
                        depth--;
                else if (depth == 0 && strncmp(p, " OR ", 4) == 0)
                        return true;
        }
        return false;
}

/* Return expr in parentheses when its top level is OR, so that it can be an
 * operand of AND. Takes expr. */
static char *wrap_or(char *expr)
{
        if (!has_top_level_or(expr))
                return expr;
        char *wrapped = dl_asprintf("(%s)", expr);
        free(expr);
        return wrapped;
}

/* Join expressions with AND. A single expression is returned unchanged. */
static char *join_and(const struct dl_strlist *parts)
{
        if (parts->n == 1)
                return dl_strdup(parts->v[0]);
        struct dl_buf b = {0};
        for (size_t i = 0; i < parts->n; i++) {
                char *operand = wrap_or(dl_strdup(parts->v[i]));
                dl_buf_printf(&b, "%s%s", i ? " AND " : "", operand);
                free(operand);
        }
        char *s = dl_strdup(dl_buf_str(&b));
        dl_buf_free(&b);
        return s;
}

/* Translate the first line of a License field into an SPDX expression. DEP-5
 * joins names with "or" and "and", where "and" binds tighter unless a comma
 * precedes it: "A or B, and C" is "(A OR B) AND C" and "A, and B or C" is
 * "A AND (B OR C)". SPDX gives AND the same precedence as DEP-5, so the line is
 * split into groups at ", and" and only the groups need parentheses. "with ...
 * exception" stays part of the name. */
static char *dep5_expression(struct extracted_licenses *refs, const struct dl_deb822 *d,
                             const char *value, struct declared_license *out)
{
        const char *p = value, *end = value + strcspn(value, "\n");
        struct dl_buf group = {0}, term = {0};
        struct dl_strlist groups = {0};
        bool comma = false;

        while (p < end) {
                p += strspn(p, " \t");
                size_t n = strcspn(p, " \t\n");
                if (p + n > end)
                        n = (size_t)(end - p);
                if (n == 0)
                        break;
                if (n == 1 && p[0] == ',') { /* "GPL-2+ , and BSD" */
                        comma = true;
                        p += n;
                        continue;
                }
                bool op_or = is_word(p, n, "or"), op_and = is_word(p, n, "and");
                if ((op_or || op_and) && term.len) {
                        char *t = license_term(refs, d, dl_buf_str(&term), NULL, out);
                        dl_buf_puts(&group, t);
                        free(t);
                        term.len = 0;
                        if (comma && op_and) {
                                dl_strlist_push(&groups, dl_buf_str(&group));
                                group.len = 0;
                        } else {
                                dl_buf_puts(&group, op_or ? " OR " : " AND ");
                        }
                } else {
                        comma = p[n - 1] == ',';
                        if (term.len)
                                dl_buf_puts(&term, " ");
                        dl_buf_append(&term, p, comma ? n - 1 : n);
                }
                p += n;
        }
        if (term.len) {
                /* A Files paragraph may carry the text of its only license. */
                bool only = group.len == 0 && groups.n == 0;
                char *t = license_term(refs, d, dl_buf_str(&term),
                                       only ? license_body(value) : NULL, out);
                dl_buf_puts(&group, t);
                free(t);
        }
        if (group.len)
                dl_strlist_push(&groups, dl_buf_str(&group));
        char *s = groups.n ? join_and(&groups) : NULL;
        dl_strlist_free(&groups);
        dl_buf_free(&group);
        dl_buf_free(&term);
        return s;
}

static bool is_blank_line(const char *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
                        return false;
        return true;
}

/* Rewrite lines that contain only white space, which deb822 forbids but real
 * copyright files have. Before a continuation line such a line is meant as an
 * empty line of the value (" ."), elsewhere as a paragraph separator. */
static void clean_blank_lines(struct dl_buf *text)
{
        struct dl_buf out = {0};
        const char *p = text->data, *end = text->data + text->len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *next = nl ? nl + 1 : end;
                size_t n = (size_t)((nl ? nl : end) - p);
                if (n > 0 && is_blank_line(p, n)) {
                        bool inside = next < end && (*next == ' ' || *next == '\t');
                        dl_buf_puts(&out, inside ? " ." : "");
                } else {
                        dl_buf_append(&out, p, n);
                }
                if (nl)
                        dl_buf_puts(&out, "\n");
                p = next;
        }
        dl_buf_str(&out);
        dl_buf_free(text);
        *text = out;
}

/* Whether the first paragraph declares the machine-readable format: the current
 * URL names copyright-format/1.0, drafts before it named dep5. */
static bool is_dep5(const struct dl_deb822 *d)
{
        const char *format = d->n ? dl_paragraph_get(&d->paragraphs[0], "Format") : NULL;
        return format && (strstr(format, "copyright-format/1.0") || strstr(format, "dep5"));
}

/* Add the operands of expr's top-level AND to parts, each once, in order of
 * first use, so that a license named by several Files paragraphs appears once.
 * An expression whose top level is OR is one operand, kept in parentheses so
 * that equal operands compare equal whichever paragraph they came from. Takes
 * expr. */
static void add_conjuncts(struct dl_strlist *parts, char *expr)
{
        expr = wrap_or(expr);
        const char *start = expr;
        int depth = 0;
        for (const char *p = expr;; p++) {
                if (*p == '(')
                        depth++;
                else if (*p == ')')
                        depth--;
                bool at_and = depth == 0 && strncmp(p, " AND ", 5) == 0;
                if (!at_and && *p != '\0')
                        continue;
                char *operand = dl_strndup(start, (size_t)(p - start));
                if (dl_strlist_contains(parts, operand))
                        free(operand);
                else
                        dl_strlist_push_owned(parts, operand);
                if (*p == '\0')
                        break;
                start = p + 5;
                p += 4;
        }
        free(expr);
}

/* Remove parentheses around the whole of expr: "(A OR B)" is "A OR B". */
static char *unwrap(const char *expr)
{
        size_t n = strlen(expr);
        int depth = 0;
        for (size_t i = 0; expr[0] == '(' && i < n; i++) {
                if (expr[i] == '(')
                        depth++;
                else if (expr[i] == ')')
                        depth--;
                if (depth == 0)
                        return i == n - 1 ? dl_strndup(expr + 1, n - 2) : dl_strdup(expr);
        }
        return dl_strdup(expr);
}

/* Collect the licenses of the Files paragraphs. The single-license details of
 * out survive only when every paragraph names the same one license. */
static void declared_from_dep5(struct extracted_licenses *refs, const struct dl_deb822 *d,
                               struct declared_license *out)
{
        struct dl_strlist parts = {0};
        for (size_t i = 1; i < d->n; i++) {
                const struct dl_paragraph *p = &d->paragraphs[i];
                const char *value = dl_paragraph_get(p, "License");
                if (!value || !dl_paragraph_get(p, "Files"))
                        continue;
                struct declared_license one = {0};
                char *expr = dep5_expression(refs, d, value, &one);
                if (expr && parts.n == 0) {
                        out->id = one.id;
                        out->name = one.name;
                        out->n_terms = one.n_terms;
                        one.name = NULL;
                }
                if (expr)
                        add_conjuncts(&parts, expr);
                free(one.name);
        }
        if (parts.n == 1)
                out->expression = unwrap(parts.v[0]);
        else if (parts.n > 1)
                out->expression = join_and(&parts);
        if (parts.n != 1 || out->n_terms != 1) {
                out->id = NULL;
                free(out->name);
                out->name = NULL;
        }
        dl_strlist_free(&parts);
}

/* Remove ".", ".." and repeated or leading slashes from a path relative to the
 * image root. As in the kernel, ".." at the root stays at the root. */
static char *normalize_path(const char *path)
{
        struct dl_strlist parts = {0};
        char *copy = dl_strdup(path), *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (strcmp(c, ".") == 0)
                        continue;
                if (strcmp(c, "..") == 0) {
                        if (parts.n)
                                free(parts.v[--parts.n]);
                        continue;
                }
                dl_strlist_push(&parts, c);
        }
        struct dl_buf b = {0};
        for (size_t i = 0; i < parts.n; i++)
                dl_buf_printf(&b, "%s%s", i ? "/" : "", parts.v[i]);
        char *s = dl_strdup(dl_buf_str(&b));
        dl_buf_free(&b);
        dl_strlist_free(&parts);
        free(copy);
        return s;
}

/* Return path with its first symlink component replaced by the link target, or
 * NULL when no component is a symlink. */
static char *follow_one_link(const struct dl_fstree *t, const char *path)
{
        for (size_t len = strcspn(path, "/");; len += 1 + strcspn(path + len + 1, "/")) {
                char *prefix = dl_strndup(path, len);
                const struct dl_node *node = dl_fstree_get(t, prefix);
                char *next = NULL;
                if (node && !node->removed && node->type == DL_NODE_SYMLINK) {
                        char *dir = dl_dirname(prefix);
                        const char *base = node->target[0] == '/' ? "" : dir;
                        char *joined = dl_asprintf("%s/%s%s", base, node->target, path + len);
                        next = normalize_path(joined);
                        free(joined);
                        free(dir);
                }
                free(prefix);
                if (next || path[len] == '\0')
                        return next;
        }
}

/* Resolve symlinks recorded in the table as the kernel would inside the image,
 * because /usr/share/doc/PACKAGE may link to the directory of another package
 * built from the same source. Return NULL after 40 links, as Linux stops there. */
static char *resolve_in_tree(const struct dl_fstree *t, const char *path)
{
        char *cur = normalize_path(path);
        for (int hops = 0; hops < 40; hops++) {
                char *next = follow_one_link(t, cur);
                if (!next)
                        return cur;
                free(cur);
                cur = next;
        }
        free(cur);
        return NULL;
}

/* Read /usr/share/doc/PACKAGE/copyright from the tree and fill out when it is a
 * DEP-5 file. A missing or free-form file leaves NOASSERTION; only a failure to
 * read a file that the table lists is an error. */
static int declared_license(struct extracted_licenses *refs, const struct dl_fstree *tree,
                            const char *package, struct declared_license *out, struct dl_error *err)
{
        char *path = dl_asprintf("usr/share/doc/%s/copyright", package);
        char *resolved = tree ? resolve_in_tree(tree, path) : NULL;
        const struct dl_node *node = resolved ? dl_fstree_get(tree, resolved) : NULL;
        struct dl_buf text = {0};
        int rc = DL_OK;

        memset(out, 0, sizeof *out);
        if (node && !node->removed &&
            (node->type == DL_NODE_FILE || node->type == DL_NODE_HARDLINK))
                rc = dl_fstree_read(tree, resolved, &text, err);
        if (rc == DL_OK && text.len) {
                clean_blank_lines(&text);
                struct dl_deb822 d;
                struct dl_error parse_err = {0};
                if (dl_deb822_parse(text.data, text.len, path, &d, &parse_err) != DL_OK) {
                        dl_debug("/%s is not a machine-readable copyright file: %s", path,
                                 parse_err.msg);
                } else {
                        if (is_dep5(&d))
                                declared_from_dep5(refs, &d, out);
                        dl_deb822_free(&d);
                }
        }
        if (rc != DL_OK)
                dl_error_wrap(err, "reading the license of %s", package);
        dl_buf_free(&text);
        free(resolved);
        free(path);
        return rc;
}

static void declared_free(struct declared_license *l)
{
        free(l->expression);
        free(l->name);
        memset(l, 0, sizeof *l);
}

/* Identifiers and package URLs ---------------------------------------------- */

/* Percent-encode s for a package URL (purl) component: everything except the
 * RFC 3986 unreserved characters, so "+" becomes %2B and an epoch's ":" %3A. */
static void purl_encode(struct dl_buf *b, const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                             (*p >= '0' && *p <= '9') || strchr("-._~", *p);
                if (plain) {
                        dl_buf_append(b, p, 1);
                } else {
                        char esc[3] = {'%', hex[*p >> 4], hex[*p & 0xf]};
                        dl_buf_append(b, esc, 3);
                }
        }
}

/* Append s keeping only the characters an SPDXID or bom-ref may hold here:
 * letters, digits, "." and "-". */
static void id_append(struct dl_buf *b, const char *s)
{
        for (const char *p = s; *p; p++) {
                bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                          (*p >= '0' && *p <= '9') || *p == '.' || *p == '-';
                dl_buf_append(b, ok ? p : "-", 1);
        }
}

static char *buf_take(struct dl_buf *b)
{
        char *s = dl_strdup(dl_buf_str(b));
        dl_buf_free(b);
        return s;
}

/* The image's repository name for its purl: the last path segment of the ref
 * without its tag, in lower case as the oci purl type requires. */
static char *image_purl_name(const char *ref)
{
        const char *slash = strrchr(ref, '/');
        const char *start = slash ? slash + 1 : ref;
        size_t n = strcspn(start, ":@");
        char *name = dl_strndup(start, n);
        for (char *p = name; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
        return name;
}

/* The Debian release codename of the first suite of the first source:
 * "bookworm-updates" and "bookworm/updates" are both bookworm. */
static char *distro_codename(const struct dl_spec *spec)
{
        if (spec->n_sources == 0 || spec->sources[0].suites.n == 0)
                return NULL;
        const char *suite = spec->sources[0].suites.v[0];
        return dl_strndup(suite, strcspn(suite, "-/"));
}

/* An RFC 4122 version 5 UUID: the SHA-1 of the URL namespace and name. */
static void uuid_v5(const char *name, char out[37])
{
        static const unsigned char url_namespace[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad,
                                                        0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0,
                                                        0x4f, 0xd4, 0x30, 0xc8};
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
            !EVP_DigestUpdate(ctx, url_namespace, sizeof url_namespace) ||
            !EVP_DigestUpdate(ctx, name, strlen(name)) || !EVP_DigestFinal_ex(ctx, md, &md_len)) {
                fputs("distill: error: SHA-1 is not available from OpenSSL\n", stderr);
                abort();
        }
        EVP_MD_CTX_free(ctx);
        md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 */
        md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* the RFC 4122 variant */
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10],
                 md[11], md[12], md[13], md[14], md[15]);
}

/* The collected document ---------------------------------------------------- */

/* One Debian package of one platform, with everything both formats write. */
struct sbom_entry {
        const struct dl_package *pkg;
        char *ref; /* "Package-deb-NAME-ARCH-N": the SPDXID after "SPDXRef-" and the bom-ref */
        char *purl;
        char *download;         /* the spec's source URL and the pool path */
        char *maintainer_name;  /* NULL when the control file has no Maintainer */
        char *maintainer_email; /* NULL when the field has no valid one */
        struct declared_license license;
};

struct sbom_doc {
        const struct dl_sbom_input *in;
        const char *ref; /* NAME:TAG */
        char *digest;    /* "sha256:HEX" */
        char *image_purl;
        char *namespace; /* SPDX documentNamespace, also the name of the CycloneDX UUID */
        char created[32];
        struct sbom_entry *entries;
        size_t n_entries;
        struct extracted_licenses extracted;
};

/* Whether s has the form of an RFC 5322 addr-spec without quoting or comments:
 * dot-separated atoms, "@", dot-separated domain labels. Maintainer fields of
 * packages from outside Debian sometimes contain a URL between the angle
 * brackets, and neither SBOM format takes that as an email address. */
static bool is_email(const char *s)
{
        static const char atext[] = "!#$%&'*+-/=?^_`{|}~";
        const char *at = strchr(s, '@');
        if (!at || at == s || strchr(at + 1, '@') || !at[1])
                return false;
        for (const char *p = s; *p; p++) {
                bool alnum = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                             (*p >= '0' && *p <= '9');
                bool dot_ok = *p == '.' && p != s && p != at + 1 && p[-1] != '.' && p[-1] != '@' &&
                              p[1] != '.' && p[1] != '@' && p[1] != '\0';
                bool ok = alnum || dot_ok || p == at || (p < at && strchr(atext, *p)) ||
                          (p > at && *p == '-');
                if (!ok)
                        return false;
        }
        return true;
}

/* Split a Maintainer field, "Name <email>", into its two parts. */
static void split_maintainer(const char *field, char **name, char **email)
{
        const char *lt = strchr(field, '<'), *gt = lt ? strchr(lt, '>') : NULL;
        size_t n = lt && gt ? (size_t)(lt - field) : strlen(field);
        while (n && (field[n - 1] == ' ' || field[n - 1] == '\t'))
                n--;
        *name = n ? dl_strndup(field, n) : NULL;
        *email = lt && gt && gt > lt + 1 ? dl_strndup(lt + 1, (size_t)(gt - lt - 1)) : NULL;
        if (*email && !is_email(*email)) {
                free(*email);
                *email = NULL;
        }
        if (!*name && *email)
                *name = dl_strdup(*email);
}

static char *deb_purl(const struct dl_package *p, const char *codename)
{
        struct dl_buf b = {0};
        dl_buf_puts(&b, "pkg:deb/debian/");
        purl_encode(&b, p->name);
        dl_buf_puts(&b, "@");
        purl_encode(&b, p->version);
        dl_buf_puts(&b, "?arch=");
        purl_encode(&b, p->arch);
        dl_buf_puts(&b, "&distro=debian-");
        purl_encode(&b, codename);
        return buf_take(&b);
}

static int check_package(const struct dl_sbom_input *in, const struct dl_package *p,
                         struct dl_error *err)
{
        if (!p->name || !p->version || !p->arch || !p->filename)
                return dl_fail(err, DL_EINTERNAL,
                               "SBOM: a package record is missing its name, version, architecture "
                               "or file name");
        if (p->source < 0 || (size_t)p->source >= in->spec->n_sources)
                return dl_fail(err, DL_EINTERNAL,
                               "SBOM: package %s %s names source %d, but the spec has %zu sources",
                               p->name, p->version, p->source, in->spec->n_sources);
        if (!p->sha256 || !dl_is_sha256_hex(p->sha256))
                return dl_fail(err, DL_EINTERNAL,
                               "SBOM: package %s %s has no valid SHA-256 for its .deb", p->name,
                               p->version);
        return DL_OK;
}

static int add_entry(struct sbom_doc *doc, const struct dl_sbom_platform *pl, size_t i,
                     const char *codename, struct dl_error *err)
{
        const struct dl_package *p = &pl->packages[i];
        int rc = check_package(doc->in, p, err);
        if (rc)
                return rc;
        struct sbom_entry *e = &doc->entries[doc->n_entries];
        memset(e, 0, sizeof *e);
        e->pkg = p;
        rc = declared_license(&doc->extracted, pl->tree, p->name, &e->license, err);
        if (rc)
                return rc;
        /* A running number across platforms keeps the identifier unique when an
         * Architecture: all package is part of two platforms. */
        struct dl_buf ref = {0};
        dl_buf_puts(&ref, "Package-deb-");
        id_append(&ref, p->name);
        dl_buf_puts(&ref, "-");
        id_append(&ref, p->arch);
        dl_buf_printf(&ref, "-%zu", doc->n_entries + 1);
        e->ref = buf_take(&ref);
        e->purl = deb_purl(p, codename);
        e->download = dl_asprintf("%s/%s", doc->in->spec->sources[p->source].url, p->filename);
        const char *control = pl->controls ? pl->controls[i].control : NULL;
        char *maintainer = control ? dl_control_field(control, "Maintainer") : NULL;
        if (maintainer)
                split_maintainer(maintainer, &e->maintainer_name, &e->maintainer_email);
        free(maintainer);
        doc->n_entries++;
        return DL_OK;
}

static void doc_free(struct sbom_doc *doc)
{
        for (size_t i = 0; i < doc->n_entries; i++) {
                struct sbom_entry *e = &doc->entries[i];
                free(e->ref);
                free(e->purl);
                free(e->download);
                free(e->maintainer_name);
                free(e->maintainer_email);
                declared_free(&e->license);
        }
        free(doc->entries);
        free(doc->digest);
        free(doc->image_purl);
        free(doc->namespace);
        extracted_free(&doc->extracted);
        memset(doc, 0, sizeof *doc);
}

static int check_input(const struct dl_sbom_input *in, struct dl_error *err)
{
        if (!in->spec || !in->spec->name)
                return dl_fail(err, DL_EINTERNAL, "SBOM: no spec was given");
        if (!in->digest || !dl_is_sha256_hex(in->digest))
                return dl_fail(err, DL_EINTERNAL,
                               "SBOM: the image digest \"%s\" is not 64 lowercase hex digits",
                               in->digest ? in->digest : "(none)");
        if (in->spec->n_sources == 0 || in->spec->sources[0].suites.n == 0)
                return dl_fail(err, DL_ESPEC,
                               "%s: the SBOM needs a source with a suite to name the Debian "
                               "release; add one under sources",
                               in->spec->path ? in->spec->path : in->spec->name);
        return DL_OK;
}

static int doc_collect(struct sbom_doc *doc, const struct dl_sbom_input *in, struct dl_error *err)
{
        memset(doc, 0, sizeof *doc);
        int rc = check_input(in, err);
        if (rc)
                return rc;
        doc->in = in;
        doc->ref = in->ref ? in->ref : in->spec->name;
        doc->digest = dl_asprintf("sha256:%s", in->digest);
        char *name = image_purl_name(doc->ref);
        doc->image_purl = dl_asprintf("pkg:oci/%s@sha256%%3A%s", name, in->digest);
        free(name);
        doc->namespace = dl_asprintf(NAMESPACE_BASE "/spdx/%s-%s", in->spec->name, in->digest);
        dl_format_rfc3339(in->epoch, doc->created);

        size_t total = 0;
        for (size_t p = 0; p < in->n_platforms; p++)
                total += in->platforms[p].n_packages;
        doc->entries = dl_calloc(total, sizeof *doc->entries);
        char *codename = distro_codename(in->spec);
        for (size_t p = 0; p < in->n_platforms && rc == DL_OK; p++)
                for (size_t i = 0; i < in->platforms[p].n_packages && rc == DL_OK; i++)
                        rc = add_entry(doc, &in->platforms[p], i, codename, err);
        free(codename);
        return rc;
}

/* JSON helpers ---------------------------------------------------------------- */

/* A JSON string for text from a package. jansson accepts only UTF-8, and older
 * copyright files and control fields are often ISO 8859-1, so text that is not
 * valid UTF-8 is read as ISO 8859-1. */
static json_t *text_json(const char *s)
{
        json_t *j = json_string(s);
        if (j)
                return j;
        struct dl_buf b = {0};
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p < 0x80) {
                        dl_buf_append(&b, p, 1);
                } else {
                        char two[2] = {(char)(0xc0 | (*p >> 6)), (char)(0x80 | (*p & 0x3f))};
                        dl_buf_append(&b, two, 2);
                }
        }
        j = json_string(dl_buf_str(&b));
        dl_buf_free(&b);
        return j;
}

static void set_text(json_t *obj, const char *key, const char *value)
{
        json_object_set_new(obj, key, text_json(value));
}

static json_t *object_of(const char *key, json_t *value)
{
        json_t *o = json_object();
        json_object_set_new(o, key, value);
        return o;
}

static json_t *array_of(json_t *value)
{
        json_t *a = json_array();
        json_array_append_new(a, value);
        return a;
}

/* SPDX 2.3 ------------------------------------------------------------------ */

static json_t *spdx_purl_ref(const char *purl)
{
        json_t *r = json_object();
        set_text(r, "referenceCategory", "PACKAGE-MANAGER");
        set_text(r, "referenceType", "purl");
        set_text(r, "referenceLocator", purl);
        return r;
}

static json_t *spdx_relationship(const char *from, const char *type, const char *to)
{
        json_t *r = json_object();
        set_text(r, "spdxElementId", from);
        set_text(r, "relationshipType", type);
        set_text(r, "relatedSpdxElement", to);
        return r;
}

static json_t *spdx_image(const struct sbom_doc *doc)
{
        json_t *p = json_object();
        set_text(p, "SPDXID", "SPDXRef-Image");
        set_text(p, "name", doc->ref);
        set_text(p, "versionInfo", doc->digest);
        set_text(p, "downloadLocation", NOASSERTION);
        set_text(p, "primaryPackagePurpose", "CONTAINER");
        json_object_set_new(p, "filesAnalyzed", json_false());
        set_text(p, "licenseConcluded", NOASSERTION);
        set_text(p, "licenseDeclared", NOASSERTION);
        set_text(p, "copyrightText", NOASSERTION);
        json_object_set_new(p, "externalRefs", array_of(spdx_purl_ref(doc->image_purl)));
        return p;
}

/* SPDX writes a supplier as "Organization: NAME (EMAIL)". */
static char *spdx_supplier(const struct sbom_entry *e)
{
        if (!e->maintainer_name)
                return dl_strdup(NOASSERTION);
        if (!e->maintainer_email)
                return dl_asprintf("Organization: %s", e->maintainer_name);
        return dl_asprintf("Organization: %s (%s)", e->maintainer_name, e->maintainer_email);
}

static json_t *spdx_package(const struct sbom_entry *e)
{
        json_t *p = json_object(), *sum = json_object();
        char *id = dl_asprintf("SPDXRef-%s", e->ref);
        char *supplier = spdx_supplier(e);
        set_text(p, "SPDXID", id);
        set_text(p, "name", e->pkg->name);
        set_text(p, "versionInfo", e->pkg->version);
        set_text(p, "supplier", supplier);
        set_text(p, "downloadLocation", e->download);
        json_object_set_new(p, "filesAnalyzed", json_false());
        set_text(sum, "algorithm", "SHA256");
        set_text(sum, "checksumValue", e->pkg->sha256);
        json_object_set_new(p, "checksums", array_of(sum));
        set_text(p, "licenseConcluded", NOASSERTION);
        set_text(p, "licenseDeclared", e->license.expression ? e->license.expression : NOASSERTION);
        set_text(p, "copyrightText", NOASSERTION);
        json_object_set_new(p, "externalRefs", array_of(spdx_purl_ref(e->purl)));
        free(supplier);
        free(id);
        return p;
}

static json_t *spdx_extracted(const struct extracted_licenses *l)
{
        json_t *a = json_array();
        for (size_t i = 0; i < l->n; i++) {
                json_t *x = json_object();
                set_text(x, "licenseId", l->v[i].id);
                set_text(x, "name", l->v[i].name);
                set_text(x, "extractedText", l->v[i].text);
                json_array_append_new(a, x);
        }
        return a;
}

static json_t *spdx_document(const struct sbom_doc *doc)
{
        json_t *root = json_object(), *info = json_object(), *packages = json_array(),
               *relationships = json_array();
        set_text(root, "spdxVersion", "SPDX-2.3");
        set_text(root, "dataLicense", "CC0-1.0");
        set_text(root, "SPDXID", "SPDXRef-DOCUMENT");
        set_text(root, "name", doc->ref);
        set_text(root, "documentNamespace", doc->namespace);
        set_text(info, "created", doc->created);
        json_object_set_new(info, "creators",
                            array_of(json_string("Tool: " TOOL_NAME "-" TOOL_VERSION)));
        json_object_set_new(root, "creationInfo", info);
        json_object_set_new(root, "documentDescribes", array_of(json_string("SPDXRef-Image")));
        json_array_append_new(packages, spdx_image(doc));
        json_array_append_new(relationships,
                              spdx_relationship("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"));
        for (size_t i = 0; i < doc->n_entries; i++) {
                char *id = dl_asprintf("SPDXRef-%s", doc->entries[i].ref);
                json_array_append_new(packages, spdx_package(&doc->entries[i]));
                json_array_append_new(relationships,
                                      spdx_relationship("SPDXRef-Image", "CONTAINS", id));
                free(id);
        }
        json_object_set_new(root, "packages", packages);
        json_object_set_new(root, "relationships", relationships);
        if (doc->extracted.n)
                json_object_set_new(root, "hasExtractedLicensingInfos",
                                    spdx_extracted(&doc->extracted));
        return root;
}

/* CycloneDX 1.5 --------------------------------------------------------------- */

static json_t *cdx_metadata(const struct sbom_doc *doc)
{
        json_t *meta = json_object(), *tool = json_object(), *image = json_object();
        set_text(meta, "timestamp", doc->created);
        set_text(tool, "type", "application");
        set_text(tool, "name", TOOL_NAME);
        set_text(tool, "version", TOOL_VERSION);
        json_object_set_new(meta, "tools", object_of("components", array_of(tool)));
        set_text(image, "type", "container");
        set_text(image, "bom-ref", doc->image_purl);
        set_text(image, "name", doc->ref);
        set_text(image, "version", doc->digest);
        set_text(image, "purl", doc->image_purl);
        json_object_set_new(meta, "component", image);
        return meta;
}

/* CycloneDX names one license by SPDX id or by name, and anything more as an
 * SPDX expression. */
static json_t *cdx_licenses(const struct declared_license *l)
{
        if (l->id)
                return array_of(object_of("license", object_of("id", json_string(l->id))));
        if (l->name)
                return array_of(object_of("license", object_of("name", text_json(l->name))));
        return array_of(object_of("expression", text_json(l->expression)));
}

static json_t *cdx_supplier(const struct sbom_entry *e)
{
        json_t *s = object_of("name", text_json(e->maintainer_name));
        if (e->maintainer_email)
                json_object_set_new(s, "contact",
                                    array_of(object_of("email", text_json(e->maintainer_email))));
        return s;
}

static json_t *cdx_component(const struct sbom_entry *e)
{
        json_t *c = json_object(), *hash = json_object(), *dist = json_object();
        set_text(c, "type", "library");
        set_text(c, "bom-ref", e->ref);
        set_text(c, "name", e->pkg->name);
        set_text(c, "version", e->pkg->version);
        set_text(c, "purl", e->purl);
        set_text(hash, "alg", "SHA-256");
        set_text(hash, "content", e->pkg->sha256);
        json_object_set_new(c, "hashes", array_of(hash));
        if (e->license.expression)
                json_object_set_new(c, "licenses", cdx_licenses(&e->license));
        if (e->maintainer_name)
                json_object_set_new(c, "supplier", cdx_supplier(e));
        set_text(dist, "type", "distribution");
        set_text(dist, "url", e->download);
        json_object_set_new(c, "externalReferences", array_of(dist));
        return c;
}

static json_t *cyclonedx_document(const struct sbom_doc *doc)
{
        json_t *root = json_object(), *components = json_array(), *depends = json_array();
        char uuid[37];
        char *name =
            dl_asprintf(NAMESPACE_BASE "/cyclonedx/%s-%s", doc->in->spec->name, doc->in->digest);
        uuid_v5(name, uuid);
        free(name);
        char *serial = dl_asprintf("urn:uuid:%s", uuid);
        set_text(root, "bomFormat", "CycloneDX");
        set_text(root, "specVersion", "1.5");
        set_text(root, "serialNumber", serial);
        json_object_set_new(root, "version", json_integer(1));
        json_object_set_new(root, "metadata", cdx_metadata(doc));
        for (size_t i = 0; i < doc->n_entries; i++) {
                json_array_append_new(components, cdx_component(&doc->entries[i]));
                json_array_append_new(depends, json_string(doc->entries[i].ref));
        }
        json_object_set_new(root, "components", components);
        json_t *image = object_of("ref", json_string(doc->image_purl));
        json_object_set_new(image, "dependsOn", depends);
        json_object_set_new(root, "dependencies", array_of(image));
        free(serial);
        return root;
}

/* Entry points ---------------------------------------------------------------- */

int dl_sbom_parse_format(const char *name, enum dl_sbom_format *out, struct dl_error *err)
{
        if (name && strcmp(name, "spdx") == 0) {
                *out = DL_SBOM_SPDX;
                return DL_OK;
        }
        if (name && strcmp(name, "cyclonedx") == 0) {
                *out = DL_SBOM_CYCLONEDX;
                return DL_OK;
        }
        return dl_fail(err, DL_EUSAGE,
                       "--sbom-format %s: unknown SBOM format; use spdx or cyclonedx",
                       name ? name : "(none)");
}

int dl_sbom_write(const struct dl_sbom_input *in, enum dl_sbom_format format, const char *path,
                  struct dl_error *err)
{
        struct sbom_doc doc;
        int rc = doc_collect(&doc, in, err);
        if (rc == DL_OK) {
                json_t *root =
                    format == DL_SBOM_SPDX ? spdx_document(&doc) : cyclonedx_document(&doc);
                /* Sorted keys: equal inputs give equal bytes. */
                char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
                json_decref(root);
                if (!text) {
                        fputs("distill: error: out of memory\n", stderr);
                        abort();
                }
                char *with_newline = dl_asprintf("%s\n", text);
                free(text);
                rc = dl_write_file_atomic(path, with_newline, strlen(with_newline), 0644, err);
                if (rc)
                        dl_error_wrap(err, "writing the SBOM");
                free(with_newline);
        }
        doc_free(&doc);
        return rc;
}
