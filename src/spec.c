#include "distill/spec.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Parsing state: the document and the name used in messages. */
struct parser {
        yaml_document_t doc;
        const char *name;
        struct dl_error *err;
};

static int fail_at(struct parser *p, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct parser *p, const yaml_node_t *node, const char *fmt, ...)
{
        char what[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        return dl_fail(p->err, DL_ESPEC, "%s:%zu:%zu: %s", p->name, node->start_mark.line + 1,
                       node->start_mark.column + 1, what);
}

static const char *node_kind(const yaml_node_t *n)
{
        switch (n->type) {
        case YAML_SCALAR_NODE:
                return "a scalar";
        case YAML_SEQUENCE_NODE:
                return "a list";
        case YAML_MAPPING_NODE:
                return "a mapping";
        default:
                return "nothing";
        }
}

static yaml_node_t *node(struct parser *p, int id)
{
        return yaml_document_get_node(&p->doc, id);
}

static const char *scalar(const yaml_node_t *n)
{
        return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *s = scalar(n);
        return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0;
}

static int want_string(struct parser *p, const yaml_node_t *n, const char *key, char **out)
{
        if (n->type != YAML_SCALAR_NODE || is_null(n))
                return fail_at(p, n, "%s: expected a string, found %s", key,
                               is_null(n) ? "an empty value" : node_kind(n));
        free(*out);
        *out = dl_strndup(scalar(n), n->data.scalar.length);
        if (strlen(*out) != n->data.scalar.length)
                return fail_at(p, n, "%s: the string contains a NUL byte", key);
        return DL_OK;
}

static int want_bool(struct parser *p, const yaml_node_t *n, const char *key, bool *out)
{
        if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
                if (strcmp(scalar(n), "true") == 0) {
                        *out = true;
                        return DL_OK;
                }
                if (strcmp(scalar(n), "false") == 0) {
                        *out = false;
                        return DL_OK;
                }
        }
        return fail_at(p, n, "%s: expected true or false, found %s", key,
                       n->type == YAML_SCALAR_NODE ? scalar(n) : node_kind(n));
}

/* A non-negative decimal id (uid, gid) below 2^31. */
static int want_id(struct parser *p, const yaml_node_t *n, const char *key, long *out)
{
        char *end;
        if (n->type != YAML_SCALAR_NODE || !isdigit((unsigned char)scalar(n)[0]))
                return fail_at(p, n, "%s: expected a non-negative integer, found %s", key,
                               n->type == YAML_SCALAR_NODE ? scalar(n) : node_kind(n));
        errno = 0;
        long v = strtol(scalar(n), &end, 10);
        if (*end || errno || v > 0x7fffffffL)
                return fail_at(p, n, "%s: expected a non-negative integer below 2^31, found %s",
                               key, scalar(n));
        *out = v;
        return DL_OK;
}

/* A file mode written in octal, as a string ("0755") or a plain number (0755). */
static int want_mode(struct parser *p, const yaml_node_t *n, const char *key, long *out)
{
        char *end;
        if (n->type != YAML_SCALAR_NODE || !scalar(n)[0])
                return fail_at(p, n, "%s: expected an octal mode such as \"0755\", found %s", key,
                               node_kind(n));
        long v = strtol(scalar(n), &end, 8);
        if (*end || v < 0 || v > 07777 || scalar(n)[0] == '-' || scalar(n)[0] == '+')
                return fail_at(p, n, "%s: expected an octal mode from 0000 to 7777, found %s", key,
                               scalar(n));
        *out = v;
        return DL_OK;
}

static int want_list(struct parser *p, const yaml_node_t *n, const char *key,
                     struct dl_strlist *out)
{
        if (n->type != YAML_SEQUENCE_NODE)
                return fail_at(p, n, "%s: expected a list of strings, found %s", key, node_kind(n));
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
                yaml_node_t *item = node(p, *it);
                char *s = NULL;
                int rc = want_string(p, item, key, &s);
                if (rc)
                        return rc;
                dl_strlist_push_owned(out, s);
        }
        return DL_OK;
}

static int want_keyvals(struct parser *p, const yaml_node_t *n, const char *key,
                        struct dl_keyvals *out)
{
        if (n->type != YAML_MAPPING_NODE)
                return fail_at(p, n, "%s: expected a mapping of names to strings, found %s", key,
                               node_kind(n));
        for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
             pair++) {
                yaml_node_t *k = node(p, pair->key), *v = node(p, pair->value);
                char *ks = NULL, *vs = NULL;
                int rc = want_string(p, k, key, &ks);
                if (rc == DL_OK)
                        rc = want_string(p, v, ks, &vs);
                for (size_t i = 0; rc == DL_OK && i < out->n; i++)
                        if (strcmp(out->v[i].key, ks) == 0)
                                rc = fail_at(p, k, "%s: duplicate key %s", key, ks);
                if (rc) {
                        free(ks);
                        free(vs);
                        return rc;
                }
                out->v = dl_realloc(out->v, (out->n + 1) * sizeof *out->v);
                out->v[out->n++] = (struct dl_keyval){ks, vs};
        }
        return DL_OK;
}

static int want_path(struct parser *p, const yaml_node_t *n, const char *key, char **out)
{
        int rc = want_string(p, n, key, out);
        if (rc)
                return rc;
        if ((*out)[0] != '/')
                return fail_at(p, n, "%s: expected an absolute path, found %s", key, *out);
        for (const char *s = *out; *s; s++) {
                if (s[0] == '/' && s[1] == '.' && s[2] == '.' && (s[3] == '/' || !s[3]))
                        return fail_at(p, n, "%s: the path %s must not contain ..", key, *out);
        }
        return DL_OK;
}

/* Check that every key of mapping n is in allowed (NULL-terminated) and appears once;
 * return the node of each allowed key in found (0 when absent). */
static int check_mapping(struct parser *p, const yaml_node_t *n, const char *what,
                         const char *const *allowed, int *found)
{
        size_t count = 0;
        while (allowed[count])
                count++;
        memset(found, 0, count * sizeof *found);
        if (n->type != YAML_MAPPING_NODE)
                return fail_at(p, n, "%s: expected a mapping, found %s", what, node_kind(n));
        for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
             pair++) {
                yaml_node_t *k = node(p, pair->key);
                size_t i;
                if (k->type != YAML_SCALAR_NODE)
                        return fail_at(p, k, "%s: expected a key name, found %s", what,
                                       node_kind(k));
                for (i = 0; i < count; i++)
                        if (strcmp(scalar(k), allowed[i]) == 0)
                                break;
                if (i == count) {
                        struct dl_buf keys = {0};
                        for (size_t j = 0; j < count; j++)
                                dl_buf_printf(&keys, "%s%s", j ? ", " : "", allowed[j]);
                        int rc = fail_at(p, k, "unknown key %s in %s; expected one of: %s",
                                         scalar(k), what, dl_buf_str(&keys));
                        dl_buf_free(&keys);
                        return rc;
                }
                if (found[i])
                        return fail_at(p, k, "duplicate key %s in %s", scalar(k), what);
                found[i] = pair->value;
        }
        return DL_OK;
}

static int missing(struct parser *p, const yaml_node_t *map, const char *what, const char *key)
{
        return fail_at(p, map, "%s: missing required key %s", what, key);
}

static bool valid_name(const char *s)
{
        if (!(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
                return false;
        for (; *s; s++)
                if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '.' ||
                      *s == '_' || *s == '-'))
                        return false;
        return true;
}

static int parse_source(struct parser *p, const yaml_node_t *n, struct dl_source *src)
{
        static const char *const keys[] = {"url",     "suites",   "components",
                                           "keyring", "unsigned", NULL};
        int f[5];
        int rc = check_mapping(p, n, "sources entry", keys, f);

        if (rc)
                return rc;
        if (!f[0])
                return missing(p, n, "sources entry", "url");
        if (!f[1])
                return missing(p, n, "sources entry", "suites");
        if (f[4] && (rc = want_bool(p, node(p, f[4]), "unsigned", &src->unsigned_ok)))
                return rc;
        if (!f[3] && !src->unsigned_ok)
                return missing(p, n, "sources entry", "keyring");
        if (f[3] && src->unsigned_ok)
                return fail_at(p, node(p, f[4]),
                               "unsigned: true and keyring exclude each other; keep one");
        if ((rc = want_string(p, node(p, f[0]), "url", &src->url)))
                return rc;
        if (strncmp(src->url, "http://", 7) && strncmp(src->url, "https://", 8) &&
            strncmp(src->url, "file://", 7))
                return fail_at(p, node(p, f[0]),
                               "url: expected an http, https or file URL, found %s", src->url);
        size_t len = strlen(src->url);
        while (len > 1 && src->url[len - 1] == '/')
                src->url[--len] = '\0';
        const char *last = strrchr(src->url, '/');
        src->snapshot_time = dl_parse_snapshot_time(last ? last + 1 : src->url);
        if ((rc = want_list(p, node(p, f[1]), "suites", &src->suites)))
                return rc;
        if (src->suites.n == 0)
                return fail_at(p, node(p, f[1]), "suites: expected at least one suite");
        if (f[2]) {
                if ((rc = want_list(p, node(p, f[2]), "components", &src->components)))
                        return rc;
                if (src->components.n == 0)
                        return fail_at(p, node(p, f[2]), "components: expected at least one");
        } else {
                dl_strlist_push(&src->components, "main");
        }
        for (size_t i = 0; i < src->suites.n; i++)
                if (strchr(src->suites.v[i], '/') || strstr(src->suites.v[i], ".."))
                        return fail_at(p, node(p, f[1]), "suites: invalid suite name %s",
                                       src->suites.v[i]);
        if (f[3] && (rc = want_string(p, node(p, f[3]), "keyring", &src->keyring)))
                return rc;
        return DL_OK;
}

static int parse_sources(struct parser *p, const yaml_node_t *n, struct dl_spec *spec)
{
        if (n->type != YAML_SEQUENCE_NODE)
                return fail_at(p, n, "sources: expected a list of sources, found %s", node_kind(n));
        size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (count == 0)
                return fail_at(p, n, "sources: expected at least one source");
        spec->sources = dl_calloc(count, sizeof *spec->sources);
        for (size_t i = 0; i < count; i++) {
                spec->n_sources++;
                int rc =
                    parse_source(p, node(p, n->data.sequence.items.start[i]), &spec->sources[i]);
                if (rc)
                        return rc;
        }
        return DL_OK;
}

static int parse_owner(struct parser *p, const yaml_node_t *n, const char *key, char **out)
{
        /* Owners are names or numeric ids; both arrive as scalars. */
        return want_string(p, n, key, out);
}

static int parse_accounts(struct parser *p, const yaml_node_t *n, struct dl_spec *spec)
{
        static const char *const keys[] = {"users", "groups", NULL};
        static const char *const gkeys[] = {"name", "gid", NULL};
        static const char *const ukeys[] = {"name", "uid", "gid", "home", "shell", "gecos", NULL};
        int f[2];
        int rc = check_mapping(p, n, "accounts", keys, f);

        if (rc)
                return rc;
        if (f[1]) {
                yaml_node_t *list = node(p, f[1]);
                if (list->type != YAML_SEQUENCE_NODE)
                        return fail_at(p, list, "accounts.groups: expected a list, found %s",
                                       node_kind(list));
                size_t count =
                    (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
                spec->groups = dl_calloc(count, sizeof *spec->groups);
                for (size_t i = 0; i < count; i++) {
                        yaml_node_t *g = node(p, list->data.sequence.items.start[i]);
                        struct dl_group *grp = &spec->groups[spec->n_groups++];
                        int gf[2];
                        if ((rc = check_mapping(p, g, "accounts.groups entry", gkeys, gf)))
                                return rc;
                        if (!gf[0])
                                return missing(p, g, "accounts.groups entry", "name");
                        if (!gf[1])
                                return missing(p, g, "accounts.groups entry", "gid");
                        if ((rc = want_string(p, node(p, gf[0]), "name", &grp->name)) ||
                            (rc = want_id(p, node(p, gf[1]), "gid", &grp->gid)))
                                return rc;
                }
        }
        if (f[0]) {
                yaml_node_t *list = node(p, f[0]);
                if (list->type != YAML_SEQUENCE_NODE)
                        return fail_at(p, list, "accounts.users: expected a list, found %s",
                                       node_kind(list));
                size_t count =
                    (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
                spec->users = dl_calloc(count, sizeof *spec->users);
                for (size_t i = 0; i < count; i++) {
                        yaml_node_t *u = node(p, list->data.sequence.items.start[i]);
                        struct dl_user *usr = &spec->users[spec->n_users++];
                        int uf[6];
                        usr->gid = -1;
                        if ((rc = check_mapping(p, u, "accounts.users entry", ukeys, uf)))
                                return rc;
                        if (!uf[0])
                                return missing(p, u, "accounts.users entry", "name");
                        if (!uf[1])
                                return missing(p, u, "accounts.users entry", "uid");
                        if ((rc = want_string(p, node(p, uf[0]), "name", &usr->name)) ||
                            (rc = want_id(p, node(p, uf[1]), "uid", &usr->uid)) ||
                            (uf[2] && (rc = want_id(p, node(p, uf[2]), "gid", &usr->gid))) ||
                            (uf[3] && (rc = want_path(p, node(p, uf[3]), "home", &usr->home))) ||
                            (uf[4] && (rc = want_path(p, node(p, uf[4]), "shell", &usr->shell))) ||
                            (uf[5] && (rc = want_string(p, node(p, uf[5]), "gecos", &usr->gecos))))
                                return rc;
                        if (strchr(usr->name, ':') || strchr(usr->name, '\n') ||
                            (usr->gecos && (strchr(usr->gecos, ':') || strchr(usr->gecos, '\n'))))
                                return fail_at(p, u,
                                               "accounts.users entry: name and gecos must not "
                                               "contain ':' or a newline");
                }
        }
        for (size_t i = 0; i < spec->n_groups; i++)
                if (strchr(spec->groups[i].name, ':') || strchr(spec->groups[i].name, '\n'))
                        return fail_at(
                            p, node(p, f[1]),
                            "accounts.groups: the name %s must not contain ':' or a newline",
                            spec->groups[i].name);
        return DL_OK;
}

static size_t seq_count(const yaml_node_t *n)
{
        return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static int parse_directories(struct parser *p, const yaml_node_t *n, struct dl_spec *spec)
{
        static const char *const keys[] = {"path", "mode", "owner", "group", NULL};
        if (n->type != YAML_SEQUENCE_NODE)
                return fail_at(p, n, "directories: expected a list, found %s", node_kind(n));
        spec->directories = dl_calloc(seq_count(n), sizeof *spec->directories);
        for (size_t i = 0; i < seq_count(n); i++) {
                yaml_node_t *e = node(p, n->data.sequence.items.start[i]);
                struct dl_dir *d = &spec->directories[spec->n_directories++];
                int f[4], rc;
                d->mode = -1;
                if ((rc = check_mapping(p, e, "directories entry", keys, f)))
                        return rc;
                if (!f[0])
                        return missing(p, e, "directories entry", "path");
                if ((rc = want_path(p, node(p, f[0]), "path", &d->path)) ||
                    (f[1] && (rc = want_mode(p, node(p, f[1]), "mode", &d->mode))) ||
                    (f[2] && (rc = parse_owner(p, node(p, f[2]), "owner", &d->owner))) ||
                    (f[3] && (rc = parse_owner(p, node(p, f[3]), "group", &d->group))))
                        return rc;
        }
        return DL_OK;
}

static int parse_symlinks(struct parser *p, const yaml_node_t *n, struct dl_spec *spec)
{
        static const char *const keys[] = {"path", "target", NULL};
        if (n->type != YAML_SEQUENCE_NODE)
                return fail_at(p, n, "symlinks: expected a list, found %s", node_kind(n));
        spec->symlinks = dl_calloc(seq_count(n), sizeof *spec->symlinks);
        for (size_t i = 0; i < seq_count(n); i++) {
                yaml_node_t *e = node(p, n->data.sequence.items.start[i]);
                struct dl_symlink *l = &spec->symlinks[spec->n_symlinks++];
                int f[2], rc;
                if ((rc = check_mapping(p, e, "symlinks entry", keys, f)))
                        return rc;
                if (!f[0])
                        return missing(p, e, "symlinks entry", "path");
                if (!f[1])
                        return missing(p, e, "symlinks entry", "target");
                if ((rc = want_path(p, node(p, f[0]), "path", &l->path)) ||
                    (rc = want_string(p, node(p, f[1]), "target", &l->target)))
                        return rc;
        }
        return DL_OK;
}

static int parse_files(struct parser *p, const yaml_node_t *n, struct dl_spec *spec)
{
        static const char *const keys[] = {"path",  "content", "mode", "owner",
                                           "group", "source",  NULL};
        if (n->type != YAML_SEQUENCE_NODE)
                return fail_at(p, n, "files: expected a list, found %s", node_kind(n));
        spec->files = dl_calloc(seq_count(n), sizeof *spec->files);
        for (size_t i = 0; i < seq_count(n); i++) {
                yaml_node_t *e = node(p, n->data.sequence.items.start[i]);
                struct dl_file *file = &spec->files[spec->n_files++];
                int f[6], rc;
                file->mode = -1;
                if ((rc = check_mapping(p, e, "files entry", keys, f)))
                        return rc;
                if (!f[0])
                        return missing(p, e, "files entry", "path");
                if (!f[1] && !f[5])
                        return fail_at(p, e,
                                       "files entry: expected content (inline text) or source (a "
                                       "local file or directory)");
                if (f[1] && f[5])
                        return fail_at(
                            p, e, "files entry: content and source exclude each other; keep one");
                if (f[1]) {
                        yaml_node_t *c = node(p, f[1]);
                        if (c->type != YAML_SCALAR_NODE)
                                return fail_at(p, c, "content: expected a string, found %s",
                                               node_kind(c));
                        file->content = dl_strndup(scalar(c), c->data.scalar.length);
                        file->content_len = c->data.scalar.length;
                } else if ((rc = want_string(p, node(p, f[5]), "source", &file->source))) {
                        return rc;
                }
                if ((rc = want_path(p, node(p, f[0]), "path", &file->path)) ||
                    (f[2] && (rc = want_mode(p, node(p, f[2]), "mode", &file->mode))) ||
                    (f[3] && (rc = parse_owner(p, node(p, f[3]), "owner", &file->owner))) ||
                    (f[4] && (rc = parse_owner(p, node(p, f[4]), "group", &file->group))))
                        return rc;
        }
        return DL_OK;
}

static int parse_php(struct parser *p, const yaml_node_t *n, struct dl_php *php)
{
        static const char *const keys[] = {"version", "extensions", "fpm", "ini", NULL};
        static const char *const fkeys[] = {"pool", "listen",   "user",   "group",
                                            "pm",   "settings", "global", NULL};
        int f[4], ff[7], rc;

        if ((rc = check_mapping(p, n, "php", keys, f)))
                return rc;
        php->present = true;
        if (f[0] && (rc = want_string(p, node(p, f[0]), "php.version", &php->version)))
                return rc;
        if (f[1] && (rc = want_list(p, node(p, f[1]), "php.extensions", &php->extensions)))
                return rc;
        if (f[3] && (rc = want_keyvals(p, node(p, f[3]), "php.ini", &php->ini)))
                return rc;
        for (size_t i = 0; i < php->extensions.n; i++)
                if (strchr(php->extensions.v[i], '/') || !php->extensions.v[i][0])
                        return fail_at(p, node(p, f[1]),
                                       "php.extensions: invalid extension name %s",
                                       php->extensions.v[i]);
        if (!f[2])
                return DL_OK;
        yaml_node_t *fpm = node(p, f[2]);
        if ((rc = check_mapping(p, fpm, "php.fpm", fkeys, ff)))
                return rc;
        php->fpm.present = true;
        if (!ff[1])
                return missing(p, fpm, "php.fpm", "listen");
        if (!ff[2])
                return missing(p, fpm, "php.fpm", "user");
        if ((ff[0] && (rc = want_string(p, node(p, ff[0]), "php.fpm.pool", &php->fpm.pool))) ||
            (rc = want_string(p, node(p, ff[1]), "php.fpm.listen", &php->fpm.listen)) ||
            (rc = want_string(p, node(p, ff[2]), "php.fpm.user", &php->fpm.user)) ||
            (ff[3] && (rc = want_string(p, node(p, ff[3]), "php.fpm.group", &php->fpm.group))) ||
            (ff[4] && (rc = want_keyvals(p, node(p, ff[4]), "php.fpm.pm", &php->fpm.pm))) ||
            (ff[5] &&
             (rc = want_keyvals(p, node(p, ff[5]), "php.fpm.settings", &php->fpm.settings))) ||
            (ff[6] && (rc = want_keyvals(p, node(p, ff[6]), "php.fpm.global", &php->fpm.global))))
                return rc;
        if (!php->fpm.pool)
                php->fpm.pool = dl_strdup("www");
        if (!valid_name(php->fpm.pool))
                return fail_at(p, node(p, ff[0]),
                               "php.fpm.pool: invalid pool name %s; use lower-case letters, "
                               "digits, '.', '_' and '-'",
                               php->fpm.pool);
        if (strcmp(php->fpm.user, "root") == 0 || strcmp(php->fpm.user, "0") == 0)
                return fail_at(p, node(p, ff[2]),
                               "php.fpm.user: php-fpm refuses to run a pool as root; name an "
                               "unprivileged user such as www-data");
        return DL_OK;
}

static int parse_image(struct parser *p, const yaml_node_t *n, struct dl_image *img)
{
        static const char *const keys[] = {"entrypoint", "cmd",    "env",    "workdir",
                                           "user",       "expose", "labels", NULL};
        int f[7], rc;

        if ((rc = check_mapping(p, n, "image", keys, f)))
                return rc;
        if (f[0]) {
                img->has_entrypoint = true;
                if ((rc = want_list(p, node(p, f[0]), "image.entrypoint", &img->entrypoint)))
                        return rc;
        }
        if (f[1]) {
                img->has_cmd = true;
                if ((rc = want_list(p, node(p, f[1]), "image.cmd", &img->cmd)))
                        return rc;
        }
        if ((f[2] && (rc = want_keyvals(p, node(p, f[2]), "image.env", &img->env))) ||
            (f[3] && (rc = want_path(p, node(p, f[3]), "image.workdir", &img->workdir))) ||
            (f[4] && (rc = want_string(p, node(p, f[4]), "image.user", &img->user))) ||
            (f[5] && (rc = want_list(p, node(p, f[5]), "image.expose", &img->expose))) ||
            (f[6] && (rc = want_keyvals(p, node(p, f[6]), "image.labels", &img->labels))))
                return rc;
        for (size_t i = 0; i < img->env.n; i++)
                if (strchr(img->env.v[i].key, '=') || !img->env.v[i].key[0])
                        return fail_at(p, node(p, f[2]), "image.env: invalid variable name %s",
                                       img->env.v[i].key);
        for (size_t i = 0; i < img->expose.n; i++) {
                char *end;
                const char *s = img->expose.v[i];
                long port = strtol(s, &end, 10);
                if (port < 1 || port > 65535 || end == s ||
                    (*end && strcmp(end, "/tcp") && strcmp(end, "/udp") && strcmp(end, "/sctp")))
                        return fail_at(p, node(p, f[5]),
                                       "image.expose: expected PORT or PORT/tcp, PORT/udp, "
                                       "PORT/sctp, found %s",
                                       s);
        }
        return DL_OK;
}

/* Entries are names, or {name: N, architectures: [..]} for a package that only
 * some architectures have. */
static int parse_packages(struct parser *p, const yaml_node_t *n, struct dl_spec *spec)
{
        static const char *const keys[] = {"name", "architectures", NULL};
        if (n->type != YAML_SEQUENCE_NODE)
                return fail_at(p, n, "packages: expected a list of package names, found %s",
                               node_kind(n));
        for (size_t i = 0; i < seq_count(n); i++) {
                yaml_node_t *e = node(p, n->data.sequence.items.start[i]);
                char *name = NULL;
                int f[2], rc;
                if (e->type != YAML_MAPPING_NODE) {
                        if ((rc = want_string(p, e, "packages", &name)))
                                return rc;
                        dl_strlist_push_owned(&spec->packages, name);
                        continue;
                }
                if ((rc = check_mapping(p, e, "packages entry", keys, f)))
                        return rc;
                if (!f[0])
                        return missing(p, e, "packages entry", "name");
                if (!f[1])
                        return missing(p, e, "packages entry", "architectures");
                struct dl_strlist archs = {0};
                if ((rc = want_string(p, node(p, f[0]), "name", &name)) ||
                    (rc = want_list(p, node(p, f[1]), "architectures", &archs))) {
                        free(name);
                        dl_strlist_free(&archs);
                        return rc;
                }
                struct dl_buf joined = {0};
                for (size_t k = 0; k < archs.n; k++)
                        dl_buf_printf(&joined, "%s%s", k ? " " : "", archs.v[k]);
                spec->package_archs.v =
                    dl_realloc(spec->package_archs.v,
                               (spec->package_archs.n + 1) * sizeof *spec->package_archs.v);
                spec->package_archs.v[spec->package_archs.n++] =
                    (struct dl_keyval){dl_strdup(name), dl_strdup(dl_buf_str(&joined))};
                dl_strlist_push_owned(&spec->packages, name);
                dl_buf_free(&joined);
                dl_strlist_free(&archs);
        }
        return DL_OK;
}

void dl_spec_packages_for(const struct dl_spec *spec, const char *arch, struct dl_strlist *out)
{
        for (size_t i = 0; i < spec->packages.n; i++) {
                const char *limit = dl_keyvals_get(&spec->package_archs, spec->packages.v[i]);
                bool ok = !limit;
                if (limit) {
                        char *copy = dl_strdup(limit), *save = NULL;
                        for (char *t = strtok_r(copy, " ", &save); t && !ok;
                             t = strtok_r(NULL, " ", &save))
                                ok = !strcmp(t, arch);
                        free(copy);
                }
                if (ok)
                        dl_strlist_push(out, spec->packages.v[i]);
        }
}

static void keyvals_free(struct dl_keyvals *kv);

/* A byte count: digits with an optional binary suffix K, M, G or T. */
static int want_size(struct parser *p, const yaml_node_t *n, const char *key,
                     unsigned long long *out)
{
        char *end;
        if (n->type != YAML_SCALAR_NODE || !isdigit((unsigned char)scalar(n)[0]))
                return fail_at(p, n, "%s: expected a size such as 512M or 2G, found %s", key,
                               n->type == YAML_SCALAR_NODE ? scalar(n) : node_kind(n));
        errno = 0;
        unsigned long long v = strtoull(scalar(n), &end, 10);
        int shift = 0;
        if (*end == 'K' || *end == 'k')
                shift = 10;
        else if (*end == 'M')
                shift = 20;
        else if (*end == 'G')
                shift = 30;
        else if (*end == 'T')
                shift = 40;
        if (shift)
                end++;
        if (*end || errno || v == 0 || v > (~0ULL >> shift))
                return fail_at(p, n, "%s: expected a size such as 512M or 2G, found %s", key,
                               scalar(n));
        *out = v << shift;
        return DL_OK;
}

static int parse_limits(struct parser *p, const yaml_node_t *n, struct dl_spec *spec)
{
        static const char *const keys[] = {"file_size", NULL};
        int f[1], rc;
        if ((rc = check_mapping(p, n, "limits", keys, f)))
                return rc;
        if (f[0] && (rc = want_size(p, node(p, f[0]), "limits.file_size", &spec->max_file_size)))
                return rc;
        return DL_OK;
}

/* paths: {exclude: [globs], include: [globs]} on absolute paths, where * also
 * matches '/'. */
static int parse_paths(struct parser *p, const yaml_node_t *n, struct dl_spec *spec)
{
        static const char *const keys[] = {"exclude", "include", NULL};
        int f[2], rc;
        if ((rc = check_mapping(p, n, "paths", keys, f)))
                return rc;
        if ((f[0] && (rc = want_list(p, node(p, f[0]), "paths.exclude", &spec->paths_exclude))) ||
            (f[1] && (rc = want_list(p, node(p, f[1]), "paths.include", &spec->paths_include))))
                return rc;
        for (size_t i = 0; i < spec->paths_exclude.n; i++)
                if (spec->paths_exclude.v[i][0] != '/')
                        return fail_at(p, node(p, f[0]),
                                       "paths.exclude: %s is not an absolute path glob such as "
                                       "/usr/share/doc/*",
                                       spec->paths_exclude.v[i]);
        for (size_t i = 0; i < spec->paths_include.n; i++)
                if (spec->paths_include.v[i][0] != '/')
                        return fail_at(p, node(p, f[1]),
                                       "paths.include: %s is not an absolute path glob such as "
                                       "/usr/share/doc/*/copyright",
                                       spec->paths_include.v[i]);
        return DL_OK;
}

static int parse_root(struct parser *p, const yaml_node_t *root, struct dl_spec *spec)
{
        static const char *const keys[] = {
            "name",        "sources",    "architectures",   "packages",
            "exclude",     "merged_usr", "allow_overwrite", "accounts",
            "directories", "symlinks",   "files",           "php",
            "image",       "limits",     "paths",           NULL};
        enum {
                NAME,
                SOURCES,
                ARCHS,
                PACKAGES,
                EXCLUDE,
                MERGED,
                OVERWRITE,
                ACCOUNTS,
                DIRS,
                LINKS,
                FILES,
                PHP,
                IMAGE,
                LIMITS,
                PATHS
        };
        int f[15], rc;

        if ((rc = check_mapping(p, root, "the spec", keys, f)))
                return rc;
        if (!f[NAME])
                return missing(p, root, "the spec", "name");
        if (!f[SOURCES])
                return missing(p, root, "the spec", "sources");
        if (!f[ARCHS])
                return missing(p, root, "the spec", "architectures");
        if (!f[PACKAGES])
                return missing(p, root, "the spec", "packages");
        if ((rc = want_string(p, node(p, f[NAME]), "name", &spec->name)))
                return rc;
        if (!valid_name(spec->name))
                return fail_at(p, node(p, f[NAME]),
                               "name: invalid image name %s; use lower-case letters, digits, '.', "
                               "'_' and '-', starting with a letter or digit",
                               spec->name);
        if ((rc = parse_sources(p, node(p, f[SOURCES]), spec)))
                return rc;
        if ((rc = want_list(p, node(p, f[ARCHS]), "architectures", &spec->architectures)))
                return rc;
        if (spec->architectures.n == 0)
                return fail_at(p, node(p, f[ARCHS]),
                               "architectures: expected at least one architecture");
        for (size_t i = 0; i < spec->architectures.n; i++)
                if (!valid_name(spec->architectures.v[i]))
                        return fail_at(p, node(p, f[ARCHS]),
                                       "architectures: invalid architecture %s",
                                       spec->architectures.v[i]);
        if ((rc = parse_packages(p, node(p, f[PACKAGES]), spec)))
                return rc;
        if (spec->packages.n == 0)
                return fail_at(p, node(p, f[PACKAGES]), "packages: expected at least one package");
        if (f[EXCLUDE] && (rc = want_list(p, node(p, f[EXCLUDE]), "exclude", &spec->exclude)))
                return rc;
        for (size_t i = 0; i < spec->exclude.n; i++)
                if (dl_strlist_contains(&spec->packages, spec->exclude.v[i]))
                        return fail_at(
                            p, node(p, f[EXCLUDE]),
                            "exclude: %s is also listed in packages; remove it from one of the two",
                            spec->exclude.v[i]);
        spec->merged_usr = true;
        spec->max_file_size = DL_DEFAULT_MAX_FILE_SIZE;
        if (f[LIMITS] && (rc = parse_limits(p, node(p, f[LIMITS]), spec)))
                return rc;
        if (f[PATHS] && (rc = parse_paths(p, node(p, f[PATHS]), spec)))
                return rc;
        if (f[MERGED] && (rc = want_bool(p, node(p, f[MERGED]), "merged_usr", &spec->merged_usr)))
                return rc;
        if (f[OVERWRITE] &&
            (rc = want_list(p, node(p, f[OVERWRITE]), "allow_overwrite", &spec->allow_overwrite)))
                return rc;
        if ((f[ACCOUNTS] && (rc = parse_accounts(p, node(p, f[ACCOUNTS]), spec))) ||
            (f[DIRS] && (rc = parse_directories(p, node(p, f[DIRS]), spec))) ||
            (f[LINKS] && (rc = parse_symlinks(p, node(p, f[LINKS]), spec))) ||
            (f[FILES] && (rc = parse_files(p, node(p, f[FILES]), spec))) ||
            (f[PHP] && (rc = parse_php(p, node(p, f[PHP]), &spec->php))) ||
            (f[IMAGE] && (rc = parse_image(p, node(p, f[IMAGE]), &spec->image))))
                return rc;
        return DL_OK;
}

int dl_spec_parse(const char *name, const char *text, size_t len, struct dl_spec *out,
                  struct dl_error *err)
{
        yaml_parser_t parser;
        struct parser p = {.name = name, .err = err};
        int rc;

        memset(out, 0, sizeof *out);
        if (!yaml_parser_initialize(&parser))
                return dl_fail(err, DL_EINTERNAL, "cannot initialize the YAML parser");
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        if (!yaml_parser_load(&parser, &p.doc)) {
                rc = dl_fail(err, DL_ESPEC, "%s:%zu:%zu: invalid YAML: %s%s%s", name,
                             parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                             parser.problem ? parser.problem : "syntax error",
                             parser.context ? " " : "", parser.context ? parser.context : "");
                yaml_parser_delete(&parser);
                return rc;
        }
        yaml_node_t *root = yaml_document_get_root_node(&p.doc);
        if (!root)
                rc = dl_fail(err, DL_ESPEC,
                             "%s:1:1: the spec is empty; expected a mapping with name, sources, "
                             "architectures and packages",
                             name);
        else
                rc = parse_root(&p, root, out);
        yaml_document_delete(&p.doc);
        yaml_parser_delete(&parser);
        if (rc)
                dl_spec_free(out);
        return rc;
}

int dl_spec_load(const char *path, struct dl_spec *out, struct dl_error *err)
{
        struct dl_buf text = {0};
        int rc = dl_read_file(path, &text, err);

        memset(out, 0, sizeof *out);
        if (rc) {
                err->code = DL_ESPEC;
                dl_buf_free(&text);
                return DL_ESPEC;
        }
        rc = dl_spec_parse(path, text.data, text.len, out, err);
        dl_buf_free(&text);
        if (rc)
                return rc;
        out->path = dl_strdup(path);
        out->dir = dl_dirname(path);
        return DL_OK;
}

static void keyvals_free(struct dl_keyvals *kv)
{
        for (size_t i = 0; i < kv->n; i++) {
                free(kv->v[i].key);
                free(kv->v[i].value);
        }
        free(kv->v);
}

const char *dl_keyvals_get(const struct dl_keyvals *kv, const char *key)
{
        for (size_t i = 0; i < kv->n; i++)
                if (strcmp(kv->v[i].key, key) == 0)
                        return kv->v[i].value;
        return NULL;
}

void dl_spec_free(struct dl_spec *spec)
{
        free(spec->path);
        free(spec->dir);
        free(spec->name);
        for (size_t i = 0; i < spec->n_sources; i++) {
                free(spec->sources[i].url);
                dl_strlist_free(&spec->sources[i].suites);
                dl_strlist_free(&spec->sources[i].components);
                free(spec->sources[i].keyring);
        }
        free(spec->sources);
        dl_strlist_free(&spec->architectures);
        dl_strlist_free(&spec->packages);
        keyvals_free(&spec->package_archs);
        dl_strlist_free(&spec->exclude);
        dl_strlist_free(&spec->allow_overwrite);
        dl_strlist_free(&spec->paths_exclude);
        dl_strlist_free(&spec->paths_include);
        for (size_t i = 0; i < spec->n_groups; i++)
                free(spec->groups[i].name);
        free(spec->groups);
        for (size_t i = 0; i < spec->n_users; i++) {
                free(spec->users[i].name);
                free(spec->users[i].home);
                free(spec->users[i].shell);
                free(spec->users[i].gecos);
        }
        free(spec->users);
        for (size_t i = 0; i < spec->n_directories; i++) {
                free(spec->directories[i].path);
                free(spec->directories[i].owner);
                free(spec->directories[i].group);
        }
        free(spec->directories);
        for (size_t i = 0; i < spec->n_symlinks; i++) {
                free(spec->symlinks[i].path);
                free(spec->symlinks[i].target);
        }
        free(spec->symlinks);
        for (size_t i = 0; i < spec->n_files; i++) {
                free(spec->files[i].path);
                free(spec->files[i].content);
                free(spec->files[i].source);
                free(spec->files[i].owner);
                free(spec->files[i].group);
        }
        free(spec->files);
        free(spec->php.version);
        dl_strlist_free(&spec->php.extensions);
        keyvals_free(&spec->php.ini);
        free(spec->php.fpm.pool);
        free(spec->php.fpm.listen);
        free(spec->php.fpm.user);
        free(spec->php.fpm.group);
        keyvals_free(&spec->php.fpm.pm);
        keyvals_free(&spec->php.fpm.settings);
        keyvals_free(&spec->php.fpm.global);
        dl_strlist_free(&spec->image.entrypoint);
        dl_strlist_free(&spec->image.cmd);
        keyvals_free(&spec->image.env);
        free(spec->image.workdir);
        free(spec->image.user);
        dl_strlist_free(&spec->image.expose);
        keyvals_free(&spec->image.labels);
        memset(spec, 0, sizeof *spec);
}
