#include "distill/customize.h"

#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "distill/log.h"
#include "distill/postinst.h"

/* ---- accounts ---- */

static void add_account(struct dl_account **v, size_t *n, const char *name, unsigned long id,
                        unsigned long gid, const char *gecos, const char *home, const char *shell)
{
        *v = dl_realloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = (struct dl_account){dl_strdup(name),
                                           id,
                                           gid,
                                           dl_strdup(gecos ? gecos : ""),
                                           dl_strdup(home ? home : ""),
                                           dl_strdup(shell ? shell : "")};
}

static struct dl_account *find_account(struct dl_account *v, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i].name, name) == 0)
                        return &v[i];
        return NULL;
}

static void free_account(struct dl_account *a)
{
        free(a->name);
        free(a->gecos);
        free(a->home);
        free(a->shell);
}

int dl_accounts_build(const struct dl_spec *spec, struct dl_accounts *out, struct dl_error *err)
{
        memset(out, 0, sizeof *out);
        /* The defaults distroless images carry; the spec adds to them. */
        add_account(&out->groups, &out->n_groups, "root", 0, 0, NULL, NULL, NULL);
        add_account(&out->groups, &out->n_groups, "nobody", 65534, 0, NULL, NULL, NULL);
        add_account(&out->groups, &out->n_groups, "nonroot", 65532, 0, NULL, NULL, NULL);
        add_account(&out->users, &out->n_users, "root", 0, 0, "root", "/root", "/sbin/nologin");
        add_account(&out->users, &out->n_users, "nobody", 65534, 65534, "nobody", "/nonexistent",
                    "/sbin/nologin");
        add_account(&out->users, &out->n_users, "nonroot", 65532, 65532, "nonroot", "/home/nonroot",
                    "/sbin/nologin");
        for (size_t i = 0; i < spec->n_groups; i++) {
                const struct dl_group *g = &spec->groups[i];
                struct dl_account *have = find_account(out->groups, out->n_groups, g->name);
                if (have && strcmp(g->name, "root") == 0 && (unsigned long)g->gid != 0)
                        return dl_fail(err, DL_ESPEC,
                                       "accounts.groups: the group root must keep gid 0");
                for (size_t j = 0; j < i; j++)
                        if (strcmp(spec->groups[j].name, g->name) == 0)
                                return dl_fail(err, DL_ESPEC,
                                               "accounts.groups: the group %s is listed twice",
                                               g->name);
                if (have)
                        have->id = (unsigned long)g->gid;
                else
                        add_account(&out->groups, &out->n_groups, g->name, (unsigned long)g->gid, 0,
                                    NULL, NULL, NULL);
        }
        for (size_t i = 0; i < spec->n_users; i++) {
                const struct dl_user *u = &spec->users[i];
                for (size_t j = 0; j < i; j++)
                        if (strcmp(spec->users[j].name, u->name) == 0)
                                return dl_fail(err, DL_ESPEC,
                                               "accounts.users: the user %s is listed twice",
                                               u->name);
                if (strcmp(u->name, "root") == 0 && u->uid != 0)
                        return dl_fail(err, DL_ESPEC,
                                       "accounts.users: the user root must keep uid 0");
                unsigned long gid;
                if (u->gid >= 0) {
                        gid = (unsigned long)u->gid;
                } else {
                        struct dl_account *g = find_account(out->groups, out->n_groups, u->name);
                        if (!g)
                                add_account(&out->groups, &out->n_groups, u->name,
                                            (unsigned long)u->uid, 0, NULL, NULL, NULL);
                        gid = g ? g->id : (unsigned long)u->uid;
                }
                struct dl_account *have = find_account(out->users, out->n_users, u->name);
                if (have) {
                        free_account(have);
                        *have = (struct dl_account){
                            dl_strdup(u->name),
                            (unsigned long)u->uid,
                            gid,
                            dl_strdup(u->gecos ? u->gecos : u->name),
                            dl_strdup(u->home ? u->home : "/nonexistent"),
                            dl_strdup(u->shell ? u->shell : "/usr/sbin/nologin")};
                } else {
                        add_account(&out->users, &out->n_users, u->name, (unsigned long)u->uid, gid,
                                    u->gecos ? u->gecos : u->name,
                                    u->home ? u->home : "/nonexistent",
                                    u->shell ? u->shell : "/usr/sbin/nologin");
                }
        }
        return DL_OK;
}

void dl_accounts_free(struct dl_accounts *a)
{
        for (size_t i = 0; i < a->n_users; i++)
                free_account(&a->users[i]);
        for (size_t i = 0; i < a->n_groups; i++)
                free_account(&a->groups[i]);
        free(a->users);
        free(a->groups);
        memset(a, 0, sizeof *a);
}

static bool parse_number(const char *s, unsigned long *out)
{
        char *end;
        if (!isdigit((unsigned char)*s))
                return false;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (*end || errno || v > 0x7fffffffUL)
                return false;
        *out = v;
        return true;
}

static int resolve_id(const struct dl_accounts *a, const char *name, bool group, unsigned long *id,
                      struct dl_error *err)
{
        if (parse_number(name, id))
                return DL_OK;
        struct dl_account *acc = group ? find_account(a->groups, a->n_groups, name)
                                       : find_account(a->users, a->n_users, name);
        if (!acc)
                return dl_fail(err, DL_ESPEC, "the %s %s is not defined; add it under accounts.%s",
                               group ? "group" : "user", name, group ? "groups" : "users");
        *id = acc->id;
        return DL_OK;
}

int dl_accounts_resolve_user(const struct dl_accounts *a, const char *spec_user, unsigned long *uid,
                             unsigned long *gid, struct dl_error *err)
{
        const char *colon = strchr(spec_user, ':');
        char *user =
            colon ? dl_strndup(spec_user, (size_t)(colon - spec_user)) : dl_strdup(spec_user);
        int rc = resolve_id(a, user, false, uid, err);

        if (rc == DL_OK && colon) {
                rc = resolve_id(a, colon + 1, true, gid, err);
        } else if (rc == DL_OK) {
                struct dl_account *acc = find_account(a->users, a->n_users, user);
                *gid = acc ? acc->gid : *uid;
        }
        free(user);
        return rc;
}

/* Resolve an owner/group pair of the spec; NULL means root, and a missing group
 * means the owner's primary group. */
static int resolve_owner(const struct dl_accounts *a, const char *owner, const char *group,
                         const char *path, unsigned long *uid, unsigned long *gid,
                         struct dl_error *err)
{
        int rc = DL_OK;
        *uid = *gid = 0;
        if (owner) {
                rc = dl_accounts_resolve_user(a, owner, uid, gid, err);
        }
        if (rc == DL_OK && group)
                rc = resolve_id(a, group, true, gid, err);
        if (rc)
                dl_error_wrap(err, "owner of %s", path);
        return rc;
}

/* The table path of an absolute path from the spec. */
static char *spec_rel(const struct dl_customize_input *in, const char *path, const char *what,
                      struct dl_error *err)
{
        while (*path == '/')
                path++;
        return dl_fstree_normalize(path, in->spec->merged_usr, what, err);
}

static int write_accounts(const struct dl_customize_input *in, struct dl_fstree *t,
                          struct dl_error *err)
{
        const struct dl_accounts *a = in->accounts;
        struct dl_buf passwd = {0}, group = {0}, shadow = {0};
        int rc;

        for (size_t i = 0; i < a->n_users; i++) {
                const struct dl_account *u = &a->users[i];
                dl_buf_printf(&passwd, "%s:x:%lu:%lu:%s:%s:%s\n", u->name, u->id, u->gid, u->gecos,
                              u->home, u->shell);
                /* "*": no password can match, so the account is locked. */
                dl_buf_printf(&shadow, "%s:*:%lld:0:99999:7:::\n", u->name, in->epoch / 86400);
        }
        for (size_t i = 0; i < a->n_groups; i++)
                dl_buf_printf(&group, "%s:x:%lu:\n", a->groups[i].name, a->groups[i].id);
        const struct dl_node *old = dl_fstree_get(t, "etc/passwd");
        if (old && !old->removed && old->owner >= 0)
                dl_info("generated /etc/passwd replaces the one shipped by %s",
                        in->packages[old->owner].name);
        rc = dl_fstree_write_file(t, "etc/passwd", passwd.data, passwd.len, 0644, 0, 0, in->epoch,
                                  err);
        if (rc == DL_OK)
                rc = dl_fstree_write_file(t, "etc/group", group.data, group.len, 0644, 0, 0,
                                          in->epoch, err);
        /* Debian's shadow files are root:shadow 0640; gid 42 is the shadow group. */
        if (rc == DL_OK)
                rc = dl_fstree_write_file(t, "etc/shadow", shadow.data, shadow.len, 0640, 0, 42,
                                          in->epoch, err);
        for (size_t i = 0; rc == DL_OK && i < a->n_users; i++) {
                const struct dl_account *u = &a->users[i];
                if (!u->home[0] || strcmp(u->home, "/nonexistent") == 0 || u->home[0] != '/')
                        continue;
                char *rel = spec_rel(in, u->home, "home directory", err);
                if (!rel) {
                        rc = err->code;
                        break;
                }
                const struct dl_node *have = dl_fstree_get(t, rel);
                if (!(have && !have->removed && have->owner >= 0))
                        rc = dl_fstree_add_dir(t, rel, u->id == 0 ? 0700 : 0755, u->id, u->gid,
                                               in->epoch, err);
                free(rel);
        }
        dl_buf_free(&passwd);
        dl_buf_free(&group);
        dl_buf_free(&shadow);
        return rc;
}

/* ---- spec directories, symlinks and files ---- */

static const char *owner_name(const struct dl_customize_input *in, const struct dl_node *n)
{
        return n && n->owner >= 0 ? in->packages[n->owner].name : NULL;
}

static int apply_directories(const struct dl_customize_input *in, struct dl_fstree *t,
                             struct dl_error *err)
{
        const struct dl_spec *spec = in->spec;
        for (size_t i = 0; i < spec->n_directories; i++) {
                const struct dl_dir *d = &spec->directories[i];
                unsigned long uid, gid;
                int rc = resolve_owner(in->accounts, d->owner, d->group, d->path, &uid, &gid, err);
                char *rel = rc ? NULL : spec_rel(in, d->path, "directories", err);
                if (!rel)
                        return err->code;
                rc = dl_fstree_add_dir(t, rel, d->mode >= 0 ? (unsigned)d->mode : 0755, uid, gid,
                                       in->epoch, err);
                free(rel);
                if (rc)
                        return rc;
        }
        return DL_OK;
}

static int apply_symlinks(const struct dl_customize_input *in, struct dl_fstree *t,
                          struct dl_error *err)
{
        const struct dl_spec *spec = in->spec;
        for (size_t i = 0; i < spec->n_symlinks; i++) {
                const struct dl_symlink *l = &spec->symlinks[i];
                char *rel = spec_rel(in, l->path, "symlinks", err);
                if (!rel)
                        return err->code;
                const struct dl_node *old = dl_fstree_get(t, rel);
                if (old && !old->removed && owner_name(in, old))
                        dl_info("symlink %s from the spec replaces the one shipped by %s", l->path,
                                owner_name(in, old));
                int rc = dl_fstree_add_symlink(t, rel, l->target, in->epoch, err);
                free(rel);
                if (rc)
                        return rc;
        }
        return DL_OK;
}

static int copy_source(const struct dl_customize_input *in, struct dl_fstree *t,
                       const struct dl_file *f, const char *local, const char *rel,
                       unsigned long uid, unsigned long gid, int depth, struct dl_error *err);

/* Copy a local directory tree, entries in name order so the layer does not depend on
 * the order readdir returns. */
static int copy_tree(const struct dl_customize_input *in, struct dl_fstree *t,
                     const struct dl_file *f, const char *local, const char *rel, unsigned long uid,
                     unsigned long gid, int depth, struct dl_error *err)
{
        struct dl_strlist names = {0};
        DIR *d = opendir(local);
        int rc;
        if (!d)
                return dl_fail_errno(err, errno, "cannot read the directory", local);
        for (struct dirent *e; (e = readdir(d));)
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        dl_strlist_push(&names, e->d_name);
        closedir(d);
        dl_strlist_sort(&names);
        rc = dl_fstree_add_dir(t, rel, 0755, uid, gid, in->epoch, err);
        for (size_t i = 0; i < names.n && rc == DL_OK; i++) {
                char *child_local = dl_path_join(local, names.v[i]);
                char *child_rel = dl_asprintf("%s/%s", rel, names.v[i]);
                rc = copy_source(in, t, f, child_local, child_rel, uid, gid, depth + 1, err);
                free(child_local);
                free(child_rel);
        }
        dl_strlist_free(&names);
        return rc;
}

static int copy_source(const struct dl_customize_input *in, struct dl_fstree *t,
                       const struct dl_file *f, const char *local, const char *rel,
                       unsigned long uid, unsigned long gid, int depth, struct dl_error *err)
{
        struct stat st;
        int rc;
        if (depth > 64)
                return dl_fail(err, DL_ESPEC,
                               "files entry %s: the source tree is deeper than 64 levels", f->path);
        if (lstat(local, &st) != 0)
                return dl_fail(err, DL_ESPEC,
                               "files entry %s: cannot read the source %s: %s; check the path "
                               "(relative paths start at the spec's directory)",
                               f->path, local, strerror(errno));
        if (S_ISDIR(st.st_mode))
                return copy_tree(in, t, f, local, rel, uid, gid, depth, err);
        if (S_ISLNK(st.st_mode)) {
                char target[4096];
                ssize_t n = readlink(local, target, sizeof target - 1);
                if (n < 0)
                        return dl_fail_errno(err, errno, "cannot read the symlink", local);
                target[n] = '\0';
                rc = dl_fstree_add_symlink(t, rel, target, in->epoch, err);
                if (rc == DL_OK) {
                        struct dl_node *node = dl_fstree_get(t, rel);
                        node->uid = uid;
                        node->gid = gid;
                }
                return rc;
        }
        if (!S_ISREG(st.st_mode))
                return dl_fail(err, DL_ESPEC,
                               "files entry %s: %s is neither a file, a directory nor a symlink",
                               f->path, local);
        struct dl_buf data = {0};
        if ((rc = dl_read_file(local, &data, err)))
                return rc;
        unsigned mode = f->mode >= 0 ? (unsigned)f->mode : (st.st_mode & 0111) ? 0755 : 0644;
        rc = dl_fstree_write_file(t, rel, data.data ? data.data : "", data.len, mode, uid, gid,
                                  in->epoch, err);
        dl_buf_free(&data);
        return rc;
}

static int apply_files(const struct dl_customize_input *in, struct dl_fstree *t,
                       struct dl_error *err)
{
        const struct dl_spec *spec = in->spec;
        for (size_t i = 0; i < spec->n_files; i++) {
                const struct dl_file *f = &spec->files[i];
                unsigned long uid, gid;
                int rc = resolve_owner(in->accounts, f->owner, f->group, f->path, &uid, &gid, err);
                char *rel = rc ? NULL : spec_rel(in, f->path, "files", err);
                if (!rel)
                        return err->code;
                const struct dl_node *old = dl_fstree_get(t, rel);
                if (old && !old->removed && owner_name(in, old))
                        dl_info("file %s from the spec replaces the one shipped by %s", f->path,
                                owner_name(in, old));
                if (f->source) {
                        char *local = f->source[0] == '/' || !spec->dir
                                          ? dl_strdup(f->source)
                                          : dl_path_join(spec->dir, f->source);
                        rc = copy_source(in, t, f, local, rel, uid, gid, 0, err);
                        free(local);
                } else {
                        rc = dl_fstree_write_file(t, rel, f->content, f->content_len,
                                                  f->mode >= 0 ? (unsigned)f->mode : 0644, uid, gid,
                                                  in->epoch, err);
                }
                free(rel);
                if (rc)
                        return rc;
        }
        return DL_OK;
}

/* ---- php ---- */

static int php_version(const struct dl_customize_input *in, struct dl_fstree *t, char **out,
                       struct dl_error *err)
{
        if (in->spec->php.version) {
                char *dir = dl_asprintf("etc/php/%s", in->spec->php.version);
                const struct dl_node *n = dl_fstree_get(t, dir);
                free(dir);
                if (!n || n->removed || n->type != DL_NODE_DIR)
                        return dl_fail(err, DL_ESPEC,
                                       "php.version: the image has no /etc/php/%s; add the php "
                                       "packages of that version",
                                       in->spec->php.version);
                *out = dl_strdup(in->spec->php.version);
                return DL_OK;
        }
        struct dl_strlist found = {0};
        for (size_t i = 0; i < t->n_nodes; i++) {
                const struct dl_node *n = t->nodes[i];
                if (n->removed || n->type != DL_NODE_DIR || strncmp(n->path, "etc/php/", 8) != 0)
                        continue;
                const char *v = n->path + 8;
                if (*v && !strchr(v, '/') && isdigit((unsigned char)*v))
                        dl_strlist_push(&found, v);
        }
        int rc = DL_OK;
        if (found.n == 1)
                *out = dl_strdup(found.v[0]);
        else if (found.n == 0)
                rc = dl_fail(err, DL_ESPEC,
                             "php: the image has no /etc/php/VERSION directory; add a php package "
                             "such as php8.2-fpm, or remove the php section");
        else
                rc = dl_fail(err, DL_ESPEC,
                             "php: the image contains several php versions; set php.version");
        dl_strlist_free(&found);
        return rc;
}

/* The "; priority=NN" and "; Depends: a b" comments phpenmod reads from an ini
 * file. Priority defaults to 20, as in phpenmod. */
static void parse_ini_header(const char *text, char prio[8], struct dl_strlist *deps)
{
        snprintf(prio, 8, "20");
        const char *line = text;
        while (line && *line) {
                const char *eol = strchr(line, '\n');
                size_t n = eol ? (size_t)(eol - line) : strlen(line);
                char *l = dl_strndup(line, n);
                char *p = l;
                if (*p == ';') {
                        p++;
                        while (*p == ' ' || *p == '\t')
                                p++;
                        if (!strncmp(p, "priority=", 9)) {
                                char *v = p + 9;
                                size_t k = strspn(v, "0123456789");
                                if (k > 0 && k < 8)
                                        snprintf(prio, 8, "%.*s", (int)k, v);
                        } else if (!strncasecmp(p, "Depends:", 8)) {
                                char *save = NULL;
                                for (char *tok = strtok_r(p + 8, " \t,", &save); tok;
                                     tok = strtok_r(NULL, " \t,", &save))
                                        dl_strlist_push(deps, tok);
                        }
                }
                free(l);
                line = eol ? eol + 1 : NULL;
        }
}

/* A php extension's ini file available in the image: in mods-available, or where
 * Debian's php packages ship it for their postinst to install with ucf
 * (/usr/share/php8.2-intl/intl/intl.ini). */
struct php_ini {
        char *ext;
        char *path;
        int owner;
        bool available; /* already in mods-available */
};

struct php_state {
        const char *version;
        struct php_ini *inis;
        size_t n_inis;
        struct dl_strlist enabled;
        struct dl_strlist sapis;
};

static void add_ini(struct php_state *st, const char *ext, const char *path, int owner,
                    bool available)
{
        for (size_t i = 0; i < st->n_inis; i++)
                if (strcmp(st->inis[i].ext, ext) == 0) {
                        if (available && !st->inis[i].available) {
                                free(st->inis[i].path);
                                st->inis[i].path = dl_strdup(path);
                                st->inis[i].owner = owner;
                                st->inis[i].available = true;
                        }
                        return;
                }
        st->inis = dl_realloc(st->inis, (st->n_inis + 1) * sizeof *st->inis);
        st->inis[st->n_inis++] =
            (struct php_ini){dl_strdup(ext), dl_strdup(path), owner, available};
}

static void find_inis(const struct dl_fstree *t, struct php_state *st)
{
        char *mods = dl_asprintf("etc/php/%s/mods-available/", st->version);
        char *shared = dl_asprintf("usr/share/php%s-", st->version);
        for (size_t i = 0; i < t->n_nodes; i++) {
                const struct dl_node *n = t->nodes[i];
                size_t len = strlen(n->path);
                if (n->removed || len < 5 || strcmp(n->path + len - 4, ".ini") != 0 ||
                    (n->type != DL_NODE_FILE && n->type != DL_NODE_SYMLINK))
                        continue;
                const char *base = strrchr(n->path, '/');
                base = base ? base + 1 : n->path;
                char *ext = dl_strndup(base, strlen(base) - 4);
                if (!strncmp(n->path, mods, strlen(mods)) && !strchr(n->path + strlen(mods), '/'))
                        add_ini(st, ext, n->path, n->owner, true);
                else if (!strncmp(n->path, shared, strlen(shared)))
                        add_ini(st, ext, n->path, n->owner, false);
                free(ext);
        }
        free(mods);
        free(shared);
}

static struct php_ini *lookup_ini(struct php_state *st, const char *ext)
{
        for (size_t i = 0; i < st->n_inis; i++)
                if (strcmp(st->inis[i].ext, ext) == 0)
                        return &st->inis[i];
        return NULL;
}

/* Extensions that PHP's own modules require of one another (ZEND_MOD_REQUIRED in
 * php-src 8.2): phpenmod does not read these, but the extension fails to load
 * without them. */
static const char *const builtin_requirements[][3] = {
    {"pdo_mysql", "pdo", "mysqlnd"}, {"pdo_pgsql", "pdo", NULL}, {"pdo_sqlite", "pdo", NULL},
    {"pdo_odbc", "pdo", NULL},       {"pdo_dblib", "pdo", NULL}, {"pdo_firebird", "pdo", NULL},
    {"mysqli", "mysqlnd", NULL},
};

/* Collect what ext requires: "; Depends:" lines of its ini file, PHP's own module
 * requirements, and the one extension of each php package its package depends on
 * (php8.2-redis depends on php8.2-igbinary, whose igbinary its redis.so needs). */
static void requirements(const struct dl_customize_input *in, struct php_state *st,
                         const struct php_ini *ini, const char *text, char prio[8],
                         struct dl_strlist *deps)
{
        parse_ini_header(text, prio, deps);
        for (size_t i = 0; i < sizeof builtin_requirements / sizeof builtin_requirements[0]; i++)
                if (strcmp(builtin_requirements[i][0], ini->ext) == 0)
                        for (int k = 1; k < 3 && builtin_requirements[i][k]; k++)
                                if (!dl_strlist_contains(deps, builtin_requirements[i][k]))
                                        dl_strlist_push(deps, builtin_requirements[i][k]);
        if (ini->owner < 0)
                return;
        char *depends = dl_control_field(in->controls[ini->owner].control, "Depends");
        char *save = NULL;
        for (char *tok = depends ? strtok_r(depends, ",|", &save) : NULL; tok;
             tok = strtok_r(NULL, ",|", &save)) {
                while (*tok == ' ' || *tok == '\n')
                        tok++;
                size_t n = strcspn(tok, " (:\n");
                char *name = dl_strndup(tok, n);
                int owner = -1;
                for (size_t p = 0; p < in->n_packages; p++)
                        if (strcmp(in->packages[p].name, name) == 0)
                                owner = (int)p;
                const char *only = NULL;
                size_t count = 0;
                for (size_t i = 0; owner >= 0 && i < st->n_inis; i++)
                        if (st->inis[i].owner == owner) {
                                only = st->inis[i].ext;
                                count++;
                        }
                if (count == 1 && strcmp(only, ini->ext) != 0 && !dl_strlist_contains(deps, only))
                        dl_strlist_push(deps, only);
                free(name);
        }
        free(depends);
}

static int enable_extension(const struct dl_customize_input *in, struct dl_fstree *t,
                            struct php_state *st, const char *ext, const char *required_by,
                            int depth, struct dl_error *err)
{
        if (dl_strlist_contains(&st->enabled, ext))
                return DL_OK;
        if (depth > 16)
                return dl_fail(err, DL_ESPEC,
                               "php extension %s: the requirements of the ini files form a cycle",
                               ext);
        struct php_ini *ini = lookup_ini(st, ext);
        char *mods = dl_asprintf("etc/php/%s/mods-available/%s.ini", st->version, ext);
        struct dl_buf text = {0};
        struct dl_strlist deps = {0};
        char prio[8];
        int rc = DL_OK;
        if (!ini) {
                if (required_by)
                        rc = dl_fail(err, DL_ESPEC,
                                     "php extension %s (required by %s): no %s.ini in /%s or "
                                     "/usr/share/php%s-*; add the package that ships it",
                                     ext, required_by, ext, mods, st->version);
                else
                        rc = dl_fail(err, DL_ESPEC,
                                     "php extension %s: no %s.ini in /%s or /usr/share/php%s-*; "
                                     "add the package that ships it (such as php%s-%s) or remove "
                                     "%s from php.extensions",
                                     ext, ext, mods, st->version, st->version, ext, ext);
                goto out;
        }
        if ((rc = dl_fstree_read(t, ini->path, &text, err)))
                goto out;
        if (!ini->available) {
                /* What the package's postinst does with ucf. */
                rc = dl_fstree_write_file(t, mods, text.data, text.len, 0644, 0, 0, in->epoch, err);
                if (rc)
                        goto out;
                dl_info("php: installed /%s from /%s", mods, ini->path);
                free(ini->path);
                ini->path = dl_strdup(mods);
                ini->available = true;
        }
        dl_strlist_push(&st->enabled, ext);
        requirements(in, st, ini, text.data, prio, &deps);
        for (size_t i = 0; i < deps.n && rc == DL_OK; i++)
                rc = enable_extension(in, t, st, deps.v[i], ext, depth + 1, err);
        for (size_t i = 0; i < st->sapis.n && rc == DL_OK; i++) {
                char *link = dl_asprintf("etc/php/%s/%s/conf.d/%s-%s.ini", st->version,
                                         st->sapis.v[i], prio, ext);
                char *target = dl_asprintf("/%s", mods);
                rc = dl_fstree_add_symlink(t, link, target, in->epoch, err);
                free(link);
                free(target);
        }
        if (rc == DL_OK)
                dl_info("php: enabled %s (priority %s)%s%s", ext, prio,
                        required_by ? ", required by " : "", required_by ? required_by : "");
out:
        free(mods);
        dl_buf_free(&text);
        dl_strlist_free(&deps);
        return rc;
}

static int write_pool(const struct dl_customize_input *in, struct dl_fstree *t, const char *version,
                      struct dl_error *err)
{
        const struct dl_php_fpm *fpm = &in->spec->php.fpm;
        char *dir = dl_asprintf("etc/php/%s/fpm", version);
        const struct dl_node *n = dl_fstree_get(t, dir);
        struct dl_buf conf = {0};
        unsigned long uid, gid;
        int rc = DL_OK;

        if (!n || n->removed || n->type != DL_NODE_DIR) {
                rc = dl_fail(err, DL_ESPEC,
                             "php.fpm: the image has no /%s; add php%s-fpm to packages", dir,
                             version);
                goto out;
        }
        if ((rc = dl_accounts_resolve_user(in->accounts, fpm->user, &uid, &gid, err)) ||
            (fpm->group && (rc = resolve_id(in->accounts, fpm->group, true, &gid, err)))) {
                dl_error_wrap(err, "php.fpm pool %s", fpm->pool);
                goto out;
        }
        dl_buf_puts(&conf, "; Generated by distill from the php.fpm section of the spec.\n");
        if (fpm->global.n) {
                /* php-fpm reads [global] in any included file, after php-fpm.conf. */
                dl_buf_puts(&conf, "[global]\n");
                for (size_t i = 0; i < fpm->global.n; i++)
                        dl_buf_printf(&conf, "%s = %s\n", fpm->global.v[i].key,
                                      fpm->global.v[i].value);
                dl_buf_puts(&conf, "\n");
        }
        dl_buf_printf(&conf, "[%s]\nuser = %s\ngroup = %s\nlisten = %s\n", fpm->pool, fpm->user,
                      fpm->group ? fpm->group : fpm->user, fpm->listen);
        if (!dl_keyvals_get(&fpm->pm, "pm"))
                dl_buf_puts(&conf, "pm = dynamic\n");
        static const char *const pm_defaults[][2] = {{"pm.max_children", "5"},
                                                     {"pm.start_servers", "2"},
                                                     {"pm.min_spare_servers", "1"},
                                                     {"pm.max_spare_servers", "3"}};
        for (size_t i = 0; i < fpm->pm.n; i++)
                dl_buf_printf(&conf, "%s = %s\n", fpm->pm.v[i].key, fpm->pm.v[i].value);
        const char *pm = dl_keyvals_get(&fpm->pm, "pm");
        if (!pm || strcmp(pm, "dynamic") == 0)
                for (size_t i = 0; i < 4; i++)
                        if (!dl_keyvals_get(&fpm->pm, pm_defaults[i][0]))
                                dl_buf_printf(&conf, "%s = %s\n", pm_defaults[i][0],
                                              pm_defaults[i][1]);
        for (size_t i = 0; i < fpm->settings.n; i++)
                dl_buf_printf(&conf, "%s = %s\n", fpm->settings.v[i].key, fpm->settings.v[i].value);
        char *www = dl_asprintf("%s/pool.d/www.conf", dir);
        char *path = dl_asprintf("%s/pool.d/%s.conf", dir, fpm->pool);
        if (strcmp(www, path) != 0) {
                const struct dl_node *w = dl_fstree_get(t, www);
                if (w && !w->removed) {
                        dl_info("php.fpm: removing the packaged pool /%s in favour of pool %s", www,
                                fpm->pool);
                        dl_fstree_remove(t, www);
                }
        }
        rc = dl_fstree_write_file(t, path, conf.data, conf.len, 0644, 0, 0, in->epoch, err);
        free(www);
        free(path);
        /* php-fpm writes its pid file in /run/php (Debian's php-fpm.conf). */
        if (rc == DL_OK && !dl_fstree_get(t, "run/php"))
                rc = dl_fstree_add_dir(t, "run/php", 0755, uid, gid, in->epoch, err);
out:
        dl_buf_free(&conf);
        free(dir);
        return rc;
}

/* php.ini settings from the spec, for every SAPI, in a conf.d file that sorts after
 * the extension files. */
static int write_ini_overrides(const struct dl_customize_input *in, struct dl_fstree *t,
                               const char *version, const struct dl_strlist *sapis,
                               struct dl_error *err)
{
        const struct dl_keyvals *ini = &in->spec->php.ini;
        struct dl_buf text = {0};
        int rc = DL_OK;
        dl_buf_puts(&text, "; Generated by distill from php.ini in the spec.\n");
        for (size_t i = 0; i < ini->n; i++)
                dl_buf_printf(&text, "%s = %s\n", ini->v[i].key, ini->v[i].value);
        for (size_t i = 0; i < sapis->n && rc == DL_OK; i++) {
                char *path =
                    dl_asprintf("etc/php/%s/%s/conf.d/99-distill.ini", version, sapis->v[i]);
                rc = dl_fstree_write_file(t, path, text.data, text.len, 0644, 0, 0, in->epoch, err);
                free(path);
        }
        dl_buf_free(&text);
        return rc;
}

/* What php's postinst installs with ucf: php.ini-production as each SAPI's php.ini
 * (the cli SAPI takes php.ini-production.cli when there is one). */
static int install_php_ini(const struct dl_customize_input *in, struct dl_fstree *t,
                           const char *version, const char *sapi, struct dl_error *err)
{
        char *ini = dl_asprintf("etc/php/%s/%s/php.ini", version, sapi);
        char *cli = dl_asprintf("usr/lib/php/%s/php.ini-production.cli", version);
        char *prod = dl_asprintf("usr/lib/php/%s/php.ini-production", version);
        const struct dl_node *have = dl_fstree_get(t, ini);
        const struct dl_node *cli_node = dl_fstree_get(t, cli);
        const char *source = !strcmp(sapi, "cli") && cli_node && !cli_node->removed ? cli : prod;
        struct dl_buf text = {0};
        int rc = DL_OK;

        if (!(have && !have->removed)) {
                const struct dl_node *src = dl_fstree_get(t, source);
                if (src && !src->removed) {
                        rc = dl_fstree_read(t, source, &text, err);
                        if (rc == DL_OK)
                                rc = dl_fstree_write_file(t, ini, text.data, text.len, 0644, 0, 0,
                                                          in->epoch, err);
                        if (rc == DL_OK)
                                dl_info("php: installed /%s from /%s", ini, source);
                }
        }
        dl_buf_free(&text);
        free(ini);
        free(cli);
        free(prod);
        return rc;
}

static int apply_php(const struct dl_customize_input *in, struct dl_fstree *t, struct dl_error *err)
{
        static const char *const sapis[] = {"apache2", "cgi",    "cli", "embed",
                                            "fpm",     "phpdbg", NULL};
        const struct dl_php *php = &in->spec->php;
        struct php_state st = {0};
        char *version = NULL;
        int rc;

        if (!php->present)
                return DL_OK;
        if ((rc = php_version(in, t, &version, err)))
                return rc;
        st.version = version;
        for (int i = 0; sapis[i]; i++) {
                char *dir = dl_asprintf("etc/php/%s/%s", version, sapis[i]);
                const struct dl_node *n = dl_fstree_get(t, dir);
                if (n && !n->removed && n->type == DL_NODE_DIR)
                        dl_strlist_push(&st.sapis, sapis[i]);
                free(dir);
        }
        if (php->extensions.n && st.sapis.n == 0)
                rc = dl_fail(err, DL_ESPEC,
                             "php.extensions: the image has no php SAPI under /etc/php/%s (fpm, "
                             "cli, ...); add php%s-fpm or php%s-cli",
                             version, version, version);
        for (size_t i = 0; i < st.sapis.n && rc == DL_OK; i++)
                rc = install_php_ini(in, t, version, st.sapis.v[i], err);
        find_inis(t, &st);
        for (size_t i = 0; i < php->extensions.n && rc == DL_OK; i++)
                rc = enable_extension(in, t, &st, php->extensions.v[i], NULL, 0, err);
        if (rc == DL_OK && php->ini.n)
                rc = write_ini_overrides(in, t, version, &st.sapis, err);
        if (rc == DL_OK && php->fpm.present)
                rc = write_pool(in, t, version, err);
        for (size_t i = 0; i < st.n_inis; i++) {
                free(st.inis[i].ext);
                free(st.inis[i].path);
        }
        free(st.inis);
        dl_strlist_free(&st.enabled);
        dl_strlist_free(&st.sapis);
        free(version);
        return rc;
}

/* ---- the package database ---- */

/* The control paragraph with a Status line after Package, as dpkg's status file
 * has it, so that scanners reading status.d treat the package as installed. */
static char *status_paragraph(const char *control)
{
        struct dl_buf b = {0};
        const char *p = control;
        bool added = false;
        while (*p) {
                const char *eol = strchr(p, '\n');
                size_t n = eol ? (size_t)(eol - p + 1) : strlen(p);
                if (n == 1 && *p == '\n')
                        break; /* only the first paragraph */
                dl_buf_append(&b, p, n);
                if (!eol)
                        dl_buf_puts(&b, "\n");
                if (!added && !strncmp(p, "Package:", 8)) {
                        dl_buf_puts(&b, "Status: install ok installed\n");
                        added = true;
                }
                p += n;
        }
        char *s = dl_strdup(dl_buf_str(&b));
        dl_buf_free(&b);
        return s;
}

/* Keep the md5sums lines of files the image contains from that package, so that
 * scanners map files to packages truthfully after the path filter (or a spec file)
 * removed some. */
static void filter_md5sums(const struct dl_fstree *t, int owner, const char *md5sums,
                           struct dl_buf *out)
{
        for (const char *line = md5sums; line && *line;) {
                const char *eol = strchr(line, '\n');
                size_t n = eol ? (size_t)(eol - line) : strlen(line);
                const char *sep = memmem(line, n, "  ", 2);
                if (sep) {
                        const char *p = sep + 2;
                        while (*p == '/')
                                p++;
                        char *rel = dl_strndup(p, n - (size_t)(p - line));
                        const struct dl_node *node = dl_fstree_get(t, rel);
                        /* Paths under bin/, lib/ ... live under usr/ with merged /usr. */
                        if (!node) {
                                char *usr = dl_asprintf("usr/%s", rel);
                                node = dl_fstree_get(t, usr);
                                free(usr);
                        }
                        /* A file another package also ships with the same contents is
                         * listed by both, as dpkg lists it; one the spec wrote is not. */
                        if (node && !node->removed && (node->owner == owner || node->owner >= 0) &&
                            (node->type == DL_NODE_FILE || node->type == DL_NODE_HARDLINK)) {
                                dl_buf_append(out, line, n);
                                dl_buf_puts(out, "\n");
                        }
                        free(rel);
                }
                line = eol ? eol + 1 : NULL;
        }
}

static int write_status(const struct dl_customize_input *in, struct dl_fstree *t,
                        struct dl_error *err)
{
        size_t n_sorted;
        struct dl_node **sorted = dl_fstree_sorted(t, &n_sorted);
        int rc = dl_fstree_add_dir(t, "var/lib/dpkg/status.d", 0755, 0, 0, in->epoch, err);

        for (size_t i = 0; i < in->n_packages && rc == DL_OK; i++) {
                const struct dl_package *pkg = &in->packages[i];
                const struct dl_deb_control *ctl = &in->controls[i];
                char *path = dl_asprintf("var/lib/dpkg/status.d/%s", pkg->name);
                char *status = status_paragraph(ctl->control);
                rc = dl_fstree_write_file(t, path, status, strlen(status), 0644, 0, 0, in->epoch,
                                          err);
                free(status);
                free(path);
                if (rc)
                        break;
                path = dl_asprintf("var/lib/dpkg/status.d/%s.md5sums", pkg->name);
                if (ctl->md5sums) {
                        struct dl_buf kept = {0};
                        filter_md5sums(t, (int)i, ctl->md5sums, &kept);
                        rc = dl_fstree_write_file(t, path, kept.data ? kept.data : "", kept.len,
                                                  0644, 0, 0, in->epoch, err);
                        dl_buf_free(&kept);
                } else {
                        /* The package ships no md5sums: list its files as dh_md5sums would. */
                        struct dl_buf sums = {0};
                        for (size_t k = 0; k < n_sorted; k++) {
                                const struct dl_node *node = sorted[k];
                                if (node->owner == (int)i && node->md5[0] &&
                                    (node->type == DL_NODE_FILE || node->type == DL_NODE_HARDLINK))
                                        dl_buf_printf(&sums, "%s  %s\n", node->md5, node->path);
                        }
                        if (sums.len)
                                rc = dl_fstree_write_file(t, path, sums.data, sums.len, 0644, 0, 0,
                                                          in->epoch, err);
                        dl_buf_free(&sums);
                }
                free(path);
        }
        free(sorted);
        return rc;
}

int dl_customize(const struct dl_customize_input *in, struct dl_fstree *t,
                 struct dl_customize_result *out, struct dl_error *err)
{
        int rc;
        memset(out, 0, sizeof *out);
        if ((rc = write_accounts(in, t, err)) ||
            (rc = dl_postinst_ca_certificates(t, in->epoch, &out->ca_bundle, err)) ||
            (rc = dl_postinst_timezone(t, in->epoch, err)) ||
            (rc = dl_postinst_os_release(t, in->spec, in->epoch, err)) ||
            (rc = dl_postinst_nsswitch(t, in->epoch, err)) || (rc = apply_php(in, t, err)) ||
            (rc = apply_directories(in, t, err)) || (rc = apply_symlinks(in, t, err)) ||
            (rc = apply_files(in, t, err)) || (rc = write_status(in, t, err)))
                return rc;
        dl_postinst_report_skipped(t, in->spec, in->packages, in->controls, in->n_packages);
        dl_postinst_check_symlinks(t);
        return DL_OK;
}
