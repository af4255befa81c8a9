#include "distill/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "distill/cleanup.h"

#include "distill/deb822.h"
#include "distill/log.h"
#include "distill/resolve.h"

char *dl_control_field(const char *control, const char *field)
{
        struct dl_deb822 d;
        struct dl_error ignored;
        char *v = NULL;
        if (dl_deb822_parse(control, strlen(control), "control", &d, &ignored))
                return NULL;
        if (d.n > 0) {
                const char *s = dl_paragraph_get(&d.paragraphs[0], field);
                v = s ? dl_strdup(s) : NULL;
        }
        dl_deb822_free(&d);
        return v;
}

static bool version_satisfies(const char *have, const char *op, const char *want)
{
        int c = dl_version_compare(have, want);
        if (!strcmp(op, "<<") || !strcmp(op, "<"))
                return c < 0;
        if (!strcmp(op, "<="))
                return c <= 0;
        if (!strcmp(op, "="))
                return c == 0;
        if (!strcmp(op, ">="))
                return c >= 0;
        if (!strcmp(op, ">>") || !strcmp(op, ">"))
                return c > 0;
        return false;
}

bool dl_relation_matches(const char *field, const char *name, const char *version)
{
        char *copy = dl_strdup(field), *save = NULL;
        bool found = false;

        for (char *item = strtok_r(copy, ",", &save); item && !found;
             item = strtok_r(NULL, ",", &save)) {
                char pkg[256] = "", op[3] = "", ver[256] = "";
                char *p = item;
                while (*p == ' ' || *p == '\t' || *p == '\n')
                        p++;
                size_t n = strcspn(p, " \t\n(:");
                if (n == 0 || n >= sizeof pkg)
                        continue;
                memcpy(pkg, p, n);
                if (strcmp(pkg, name) != 0)
                        continue;
                char *paren = strchr(p, '(');
                if (!paren) {
                        found = true;
                        break;
                }
                paren++;
                while (*paren == ' ')
                        paren++;
                size_t on = strspn(paren, "<>=");
                if (on == 0 || on > 2)
                        continue;
                memcpy(op, paren, on);
                paren += on;
                while (*paren == ' ')
                        paren++;
                size_t vn = strcspn(paren, " )");
                if (vn == 0 || vn >= sizeof ver)
                        continue;
                memcpy(ver, paren, vn);
                found = version_satisfies(version, op, ver);
        }
        free(copy);
        return found;
}

/* Reading the inner tar straight out of the outer ar member. */
static la_ssize_t read_member(struct archive *inner, void *user, const void **buf)
{
        static __thread char block[65536];
        (void)inner;
        *buf = block;
        return archive_read_data((struct archive *)user, block, sizeof block);
}

static struct archive *open_inner(struct archive *outer)
{
        struct archive *a = archive_read_new();
        archive_read_support_filter_all(a);
        archive_read_support_format_gnutar(a);
        archive_read_support_format_tar(a);
        if (archive_read_open(a, outer, NULL, read_member, NULL) != ARCHIVE_OK) {
                archive_read_free(a);
                return NULL;
        }
        return a;
}

static char *read_entry_text(struct archive *a, size_t limit)
{
        struct dl_buf b = {0};
        char block[16384];
        la_ssize_t n;
        while ((n = archive_read_data(a, block, sizeof block)) > 0) {
                dl_buf_append(&b, block, (size_t)n);
                if (b.len > limit)
                        break;
        }
        char *s = dl_strdup(n < 0 || b.len > limit ? "" : dl_buf_str(&b));
        dl_buf_free(&b);
        return s;
}

static int read_control(struct archive *outer, const char *what, struct dl_deb_control *ctl,
                        struct dl_error *err)
{
        struct archive *a = open_inner(outer);
        struct archive_entry *e;
        int r, rc = DL_OK;

        if (!a)
                return dl_fail(err, DL_EPACKAGE, "%s: cannot read control.tar", what);
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                const char *name = archive_entry_pathname(e);
                if (!strncmp(name, "./", 2))
                        name += 2;
                if (archive_entry_filetype(e) != AE_IFREG)
                        continue;
                /* Control members are small; 16 MiB bounds a hostile one. A member
                 * that appears twice is an error, as in dpkg-deb. */
                char **slot = !strcmp(name, "control")     ? &ctl->control
                              : !strcmp(name, "md5sums")   ? &ctl->md5sums
                              : !strcmp(name, "conffiles") ? &ctl->conffiles
                              : !strcmp(name, "postinst")  ? &ctl->postinst
                                                           : NULL;
                bool script = !strcmp(name, "preinst") || !strcmp(name, "prerm") ||
                              !strcmp(name, "postrm") || !strcmp(name, "triggers") ||
                              !strcmp(name, "config") || !strcmp(name, "postinst");
                if ((slot && *slot) || (script && dl_strlist_contains(&ctl->scripts, name))) {
                        rc = dl_fail(err, DL_EPACKAGE, "%s: control.tar contains %s twice", what,
                                     name);
                        break;
                }
                if (slot)
                        *slot = read_entry_text(a, 16 << 20);
                if (script)
                        dl_strlist_push(&ctl->scripts, name);
        }
        if (rc == DL_OK && r != ARCHIVE_EOF)
                rc = dl_fail(err, DL_EPACKAGE, "%s: control.tar is damaged: %s", what,
                             archive_error_string(a));
        else if (rc == DL_OK && (!ctl->control || !*ctl->control))
                rc = dl_fail(err, DL_EPACKAGE, "%s: control.tar has no control file", what);
        archive_read_free(a);
        return rc;
}

static bool overwrite_allowed(const struct dl_unpack_context *ctx, const char *path)
{
        char *abs = dl_asprintf("/%s", path);
        bool ok = false;
        for (size_t i = 0; ctx->allow_overwrite && i < ctx->allow_overwrite->n && !ok; i++)
                ok = fnmatch(ctx->allow_overwrite->v[i], abs, 0) == 0;
        free(abs);
        return ok;
}

/* Decide what happens when package owner ships path that existing already has
 * with other contents: 1 to take the new one, 0 to keep the old, or minus an error
 * code. Replaces works in either unpack order, as dpkg's does in its own order. */
static int resolve_clash(const struct dl_unpack_context *ctx, int owner,
                         const struct dl_node *existing, const char *path, struct dl_error *err)
{
        if (existing->owner == owner)
                return 1; /* a later duplicate entry within one package wins */
        if (existing->owner < 0)
                return 1;
        const char *old = ctx->names[existing->owner];
        const char *replaces = ctx->replaces[owner];
        if (replaces && dl_relation_matches(replaces, old, ctx->versions[existing->owner])) {
                dl_info("%s replaces /%s from %s (Replaces: %s)", ctx->names[owner], path, old,
                        old);
                return 1;
        }
        const char *old_replaces = ctx->replaces[existing->owner];
        if (old_replaces &&
            dl_relation_matches(old_replaces, ctx->names[owner], ctx->versions[owner])) {
                dl_info("%s keeps /%s over %s (Replaces: %s)", old, path, ctx->names[owner],
                        ctx->names[owner]);
                return 0;
        }
        if (overwrite_allowed(ctx, path)) {
                dl_info("%s overwrites /%s from %s (allowed by allow_overwrite)", ctx->names[owner],
                        path, old);
                return 1;
        }
        return -dl_fail(
            err, DL_EPACKAGE,
            "packages %s and %s both ship /%s with different contents; the later one does not "
            "declare Replaces: %s. Exclude one of them, or list the path in allow_overwrite",
            old, ctx->names[owner], path, old);
}

static void copy_xattrs(struct archive_entry *e, struct dl_node *n)
{
        const char *name;
        const void *value;
        size_t size;

        for (size_t i = 0; i < n->n_xattrs; i++) {
                free(n->xattrs[i].name);
                free(n->xattrs[i].value);
        }
        free(n->xattrs);
        n->xattrs = NULL;
        n->n_xattrs = 0;
        archive_entry_xattr_reset(e);
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                n->xattrs = dl_realloc(n->xattrs, (n->n_xattrs + 1) * sizeof *n->xattrs);
                void *copy = dl_malloc(size);
                memcpy(copy, value, size);
                n->xattrs[n->n_xattrs++] = (struct dl_xattr){dl_strdup(name), copy, size};
        }
}

static void set_meta(struct dl_node *n, struct archive_entry *e, int owner)
{
        n->mode = (unsigned)archive_entry_perm(e) & 07777;
        n->uid = (unsigned long)archive_entry_uid(e);
        n->gid = (unsigned long)archive_entry_gid(e);
        n->mtime = (long long)archive_entry_mtime(e);
        n->owner = owner;
        n->removed = false;
        copy_xattrs(e, n);
}

/* Stream a regular file's data to fd, hashing it. */
static int stream_file(const struct dl_fstree *t, struct archive *a, int fd, const char *what,
                       const char *path, unsigned long long limit, char sha256[DL_SHA256_HEX],
                       char md5[33], uint64_t *size, struct dl_error *err)
{
        static __thread char block[1 << 17];
        struct dl_sha256 *h = dl_sha256_new();
        EVP_MD_CTX *m = md5 ? EVP_MD_CTX_new() : NULL;
        uint64_t total = 0;
        la_ssize_t n;
        int rc = DL_OK;

        if (m)
                EVP_DigestInit_ex(m, EVP_md5(), NULL);
        while ((n = archive_read_data(a, block, sizeof block)) > 0) {
                dl_sha256_update(h, block, (size_t)n);
                if (m)
                        EVP_DigestUpdate(m, block, (size_t)n);
                total += (uint64_t)n;
                /* Checked while streaming: the header's size may lie. */
                if (limit && total > limit) {
                        rc = dl_fail(err, DL_EPACKAGE,
                                     "%s: /%s is larger than %llu bytes, the limit for one file (a "
                                     "decompression bomb?); raise limits.file_size in the spec if "
                                     "the package is trusted",
                                     what, path, limit);
                        break;
                }
                const char *p = block;
                size_t left = (size_t)n;
                while (left && rc == DL_OK) {
                        ssize_t w = write(fd, p, left);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                rc = dl_fstree_write_error(t, path, err);
                        else
                                p += w, left -= (size_t)w;
                }
                if (rc)
                        break;
        }
        if (rc == DL_OK && n < 0)
                rc = dl_fail(err, DL_EPACKAGE, "%s: data.tar is damaged or truncated at /%s: %s",
                             what, path, archive_error_string(a));
        dl_sha256_final(h, sha256);
        if (m) {
                unsigned char md[EVP_MAX_MD_SIZE];
                unsigned len = 0;
                EVP_DigestFinal_ex(m, md, &len);
                for (unsigned i = 0; i < len; i++)
                        snprintf(md5 + 2 * i, 3, "%02x", md[i]);
                EVP_MD_CTX_free(m);
        }
        *size = total;
        return rc;
}

static int unpack_file(struct dl_unpack_context *ctx, int owner, struct archive *a,
                       struct archive_entry *e, const char *path, const char *what, bool want_md5,
                       struct dl_error *err)
{
        struct dl_fstree *t = ctx->tree;
        struct dl_node *existing = dl_fstree_get(t, path);
        bool clash = existing && !existing->removed;
        char sha[DL_SHA256_HEX], md5[33] = "";
        uint64_t size = 0, offset = 0;
        int rc;

        if (clash && existing->type == DL_NODE_DIR)
                return dl_fail(
                    err, DL_EPACKAGE, "%s: ships /%s as a file, but %s ships it as a directory",
                    what, path, existing->owner >= 0 ? ctx->names[existing->owner] : "the spec");
        if (ctx->max_file_size && archive_entry_size(e) > (la_int64_t)ctx->max_file_size)
                return dl_fail(err, DL_EPACKAGE,
                               "%s: /%s declares %lld bytes, more than %llu, the limit for one "
                               "file; raise limits.file_size in the spec if the package is trusted",
                               what, path, (long long)archive_entry_size(e), ctx->max_file_size);
        /* The contents go to the tree's blob; a copy that loses a clash stays there
         * unused. */
        if ((rc = dl_fstree_blob_begin(t, &offset, err)))
                return rc;
        rc = stream_file(t, a, t->blob_fd, what, path, ctx->max_file_size, sha,
                         want_md5 ? md5 : NULL, &size, err);
        if (rc)
                return rc;
        if (clash) {
                bool same = existing->type == DL_NODE_FILE && strcmp(existing->sha256, sha) == 0;
                if (existing->type == DL_NODE_HARDLINK) {
                        const struct dl_node *target = dl_fstree_get(t, existing->target);
                        same = target && strcmp(target->sha256, sha) == 0;
                }
                int take = same ? 0 : resolve_clash(ctx, owner, existing, path, err);
                if (take < 0)
                        return -take;
                if (take == 0)
                        return DL_OK; /* identical contents, or the older package wins */
                /* A symlink or file staged on disk at this path is out of date now. */
                dl_fstree_unlink(t, path);
        }
        struct dl_node *n = dl_fstree_put(t, path);
        free(n->target);
        n->target = NULL;
        n->type = DL_NODE_FILE;
        n->size = size;
        n->in_blob = true;
        n->offset = offset;
        memcpy(n->sha256, sha, sizeof sha);
        memcpy(n->md5, md5, sizeof md5);
        set_meta(n, e, owner);
        return DL_OK;
}

static int unpack_symlink(struct dl_unpack_context *ctx, int owner, struct archive_entry *e,
                          const char *path, const char *what, struct dl_error *err)
{
        struct dl_fstree *t = ctx->tree;
        struct dl_node *existing = dl_fstree_get(t, path);
        const char *target = archive_entry_symlink(e);

        if (!target || !*target)
                return dl_fail(err, DL_EPACKAGE, "%s: the symlink /%s has no target", what, path);
        if (existing && !existing->removed) {
                if (existing->type == DL_NODE_SYMLINK && strcmp(existing->target, target) == 0)
                        return DL_OK;
                if (existing->type == DL_NODE_DIR)
                        return dl_fail(
                            err, DL_EPACKAGE,
                            "%s: ships /%s as a symlink, but it is a directory in the image", what,
                            path);
                int take = resolve_clash(ctx, owner, existing, path, err);
                if (take <= 0)
                        return -take;
        }
        int rc = dl_fstree_add_symlink(t, path, target, archive_entry_mtime(e), err);
        if (rc)
                return rc;
        struct dl_node *n = dl_fstree_get(t, path);
        set_meta(n, e, owner);
        n->mode = 0777;
        return DL_OK;
}

static int unpack_hardlink(struct dl_unpack_context *ctx, int owner, struct archive_entry *e,
                           const char *path, const char *what, struct dl_error *err)
{
        struct dl_fstree *t = ctx->tree;
        char *target = dl_fstree_normalize(archive_entry_hardlink(e), ctx->merged_usr, what, err);
        if (!target) {
                dl_error_wrap(err, "hard link /%s", path);
                return err->code;
        }
        const struct dl_node *tn = dl_fstree_get(t, target);
        if (tn && tn->filtered) {
                /* Its file was dropped by the path filter, so the link goes too. */
                dl_info("%s: dropping the hard link /%s because paths.exclude drops its file /%s",
                        what, path, target);
                ctx->n_filtered++;
                free(target);
                return DL_OK;
        }
        if (!tn || tn->removed || tn->type != DL_NODE_FILE || tn->owner != owner) {
                int rc = dl_fail(err, DL_EPACKAGE,
                                 "%s: the hardlink /%s points at /%s, which is not a regular file "
                                 "earlier in the same package",
                                 what, path, target);
                free(target);
                return rc;
        }
        struct dl_node *existing = dl_fstree_get(t, path);
        if (existing && !existing->removed &&
            !(existing->type == DL_NODE_FILE && strcmp(existing->sha256, tn->sha256) == 0)) {
                int take =
                    existing->type == DL_NODE_DIR
                        ? -dl_fail(
                              err, DL_EPACKAGE,
                              "%s: ships /%s as a hardlink, but it is a directory in the image",
                              what, path)
                        : resolve_clash(ctx, owner, existing, path, err);
                if (take <= 0) {
                        free(target);
                        return -take;
                }
        }
        /* The layer records the link. A staged link on disk is made here only for a
         * target on disk, and dl_fstree_materialize links targets in the blob. */
        int rc = tn->in_blob ? DL_OK : dl_fstree_link(t, target, path, err);
        if (rc) {
                free(target);
                return rc;
        }
        struct dl_node *n = dl_fstree_put(t, path);
        char sha[DL_SHA256_HEX], md5[33];
        memcpy(sha, tn->sha256, sizeof sha);
        memcpy(md5, tn->md5, sizeof md5);
        uint64_t size = tn->size;
        free(n->target);
        n->target = target;
        n->type = DL_NODE_HARDLINK;
        memcpy(n->sha256, sha, sizeof sha);
        memcpy(n->md5, md5, sizeof md5);
        n->size = size;
        set_meta(n, e, owner);
        return DL_OK;
}

static bool is_whiteout(const char *path)
{
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        return strncmp(base, ".wh.", 4) == 0;
}

static bool matches_any(const struct dl_strlist *globs, const char *abs)
{
        for (size_t i = 0; globs && i < globs->n; i++)
                if (fnmatch(globs->v[i], abs, 0) == 0)
                        return true;
        return false;
}

/* Whether the spec's path filter drops path: it matches an exclude glob and no
 * include glob. */
static bool filtered_out(const struct dl_unpack_context *ctx, const char *path)
{
        if (!ctx->paths_exclude || ctx->paths_exclude->n == 0)
                return false;
        char *abs = dl_asprintf("/%s", path);
        bool drop = matches_any(ctx->paths_exclude, abs) && !matches_any(ctx->paths_include, abs);
        free(abs);
        return drop;
}

static int unpack_entry(struct dl_unpack_context *ctx, int owner, struct archive *a,
                        struct archive_entry *e, const char *what, bool want_md5,
                        struct dl_error *err)
{
        struct dl_fstree *t = ctx->tree;
        char *path = dl_fstree_normalize(archive_entry_pathname(e), ctx->merged_usr, what, err);
        int rc = DL_OK;

        if (!path)
                return err->code;
        if (!*path)
                goto out; /* the root directory itself */
        if (is_whiteout(path)) {
                rc = dl_fail(err, DL_EPACKAGE,
                             "%s: /%s has a name that container runtimes read as a whiteout "
                             "(.wh.), which would delete files from the image; exclude the package",
                             what, path);
                goto out;
        }
        if (filtered_out(ctx, path)) {
                /* Never written: the data is skipped with the next header. Recorded so
                 * that symlinks into it can be reported. */
                struct dl_node *n = dl_fstree_get(t, path);
                if (!n) {
                        n = dl_fstree_put(t, path);
                        n->filtered = true;
                        n->owner = owner;
                }
                ctx->n_filtered++;
                goto out;
        }
        if ((rc = dl_fstree_make_parents(t, path, what, err)))
                goto out;
        if (archive_entry_hardlink(e)) {
                rc = unpack_hardlink(ctx, owner, e, path, what, err);
                goto out;
        }
        struct dl_node *existing = dl_fstree_get(t, path);
        bool live = existing && !existing->removed;
        switch (archive_entry_filetype(e)) {
        case AE_IFDIR:
                if (live && existing->type == DL_NODE_DIR)
                        break; /* shared directories keep the first package's metadata */
                if (live) {
                        rc = dl_fail(
                            err, DL_EPACKAGE,
                            "%s: ships /%s as a directory, but %s ships it as a %s", what, path,
                            existing->owner >= 0 ? ctx->names[existing->owner] : "the image",
                            existing->type == DL_NODE_SYMLINK ? "symlink" : "file");
                        break;
                }
                if ((rc = dl_fstree_add_dir(t, path, 0755, 0, 0, 0, err)))
                        break;
                set_meta(dl_fstree_get(t, path), e, owner);
                break;
        case AE_IFREG:
                rc = unpack_file(ctx, owner, a, e, path, what, want_md5, err);
                break;
        case AE_IFLNK:
                rc = unpack_symlink(ctx, owner, e, path, what, err);
                break;
        case AE_IFCHR:
        case AE_IFBLK:
        case AE_IFIFO: {
                /* Recorded for the layer only; never created on disk. */
                if (live && existing->type == DL_NODE_DIR) {
                        rc =
                            dl_fail(err, DL_EPACKAGE,
                                    "%s: ships /%s as a device, but it is a directory in the image",
                                    what, path);
                        break;
                }
                struct dl_node *n = dl_fstree_put(t, path);
                unsigned ft = archive_entry_filetype(e);
                n->type = ft == AE_IFCHR   ? DL_NODE_CHAR
                          : ft == AE_IFBLK ? DL_NODE_BLOCK
                                           : DL_NODE_FIFO;
                n->dev_major = (unsigned)archive_entry_rdevmajor(e);
                n->dev_minor = (unsigned)archive_entry_rdevminor(e);
                free(n->target);
                n->target = NULL;
                set_meta(n, e, owner);
                break;
        }
        default:
                rc = dl_fail(err, DL_EPACKAGE, "%s: /%s has an unsupported file type", what, path);
        }
out:
        free(path);
        return rc;
}

static int read_data(struct dl_unpack_context *ctx, int owner, struct archive *outer,
                     const char *what, bool want_md5, struct dl_error *err)
{
        struct archive *a;
        struct archive_entry *e;
        int r, rc = DL_OK;

        if (ctx->data_tar) {
                a = archive_read_new();
                archive_read_support_filter_all(a);
                archive_read_support_format_gnutar(a);
                archive_read_support_format_tar(a);
                if (archive_read_open_filename(a, ctx->data_tar, 1 << 17) != ARCHIVE_OK) {
                        rc = dl_fail(err, DL_EIO, "%s: cannot read the prepared data.tar %s: %s",
                                     what, ctx->data_tar, archive_error_string(a));
                        archive_read_free(a);
                        return rc;
                }
        } else {
                a = open_inner(outer);
        }
        if (!a)
                return dl_fail(err, DL_EPACKAGE, "%s: cannot read data.tar", what);
        while (rc == DL_OK && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK)
                rc = unpack_entry(ctx, owner, a, e, what, want_md5, err);
        if (rc == DL_OK && r != ARCHIVE_EOF)
                rc = dl_fail(err, DL_EPACKAGE, "%s: data.tar is damaged or ends early: %s", what,
                             archive_error_string(a));
        archive_read_free(a);
        return rc;
}

int dl_unpack_deb(struct dl_unpack_context *ctx, int owner, const char *deb_path,
                  struct dl_deb_control *ctl, struct dl_error *err)
{
        char *what = dl_asprintf("package %s", ctx->names[owner]);
        struct archive *a = archive_read_new();
        struct archive_entry *e;
        bool seen_binary = false, seen_control = false, seen_data = false;
        int r, rc = DL_OK;

        memset(ctl, 0, sizeof *ctl);
        archive_read_support_format_ar(a);
        if (archive_read_open_filename(a, deb_path, 1 << 16) != ARCHIVE_OK) {
                rc = dl_fail(err, DL_EPACKAGE, "%s: %s is not a .deb archive: %s", what, deb_path,
                             archive_error_string(a));
                goto out;
        }
        while (rc == DL_OK && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                const char *name = archive_entry_pathname(e);
                if (!strcmp(name, "debian-binary")) {
                        char *v = read_entry_text(a, 64);
                        if (strncmp(v, "2.", 2) != 0)
                                rc = dl_fail(err, DL_EPACKAGE,
                                             "%s: unsupported .deb format version \"%.10s\"", what,
                                             v);
                        seen_binary = true;
                        free(v);
                } else if (!strncmp(name, "control.tar", 11) && seen_control) {
                        rc = dl_fail(err, DL_EPACKAGE, "%s: %s contains two control.tar members",
                                     what, deb_path);
                } else if (!strncmp(name, "data.tar", 8) && seen_data) {
                        rc = dl_fail(err, DL_EPACKAGE, "%s: %s contains two data.tar members", what,
                                     deb_path);
                } else if (!strncmp(name, "control.tar", 11)) {
                        if (!seen_binary)
                                rc = dl_fail(err, DL_EPACKAGE,
                                             "%s: debian-binary must come first in a .deb", what);
                        else
                                rc = read_control(a, what, ctl, err);
                        if (rc == DL_OK)
                                ctx->replaces[owner] = dl_control_field(ctl->control, "Replaces");
                        seen_control = true;
                } else if (!strncmp(name, "data.tar", 8)) {
                        if (!seen_control)
                                rc = dl_fail(err, DL_EPACKAGE,
                                             "%s: control.tar must come before data.tar in a .deb",
                                             what);
                        else
                                rc = read_data(ctx, owner, a, what, ctl->md5sums == NULL, err);
                        seen_data = true;
                }
        }
        if (rc == DL_OK && !seen_data)
                rc = dl_fail(err, DL_EPACKAGE, "%s: %s has no data.tar member", what, deb_path);
out:
        archive_read_free(a);
        free(what);
        return rc;
}

/* Stream the decompressed data member of an open .deb into a zstd file. */
static int copy_data_member(struct archive *outer, FILE *out, const char *deb_path,
                            struct dl_error *err)
{
        struct archive *raw = archive_read_new();
        struct archive_entry *e;
        ZSTD_CCtx *z = ZSTD_createCCtx();
        static __thread char in[1 << 17];
        size_t out_cap = ZSTD_CStreamOutSize();
        char *zout = dl_malloc(out_cap);
        int rc = DL_OK;

        /* Level 1: the copy is read back at memory speed and costs little to make. */
        ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 1);
        archive_read_support_filter_all(raw);
        archive_read_support_format_raw(raw);
        if (archive_read_open(raw, outer, NULL, read_member, NULL) != ARCHIVE_OK ||
            archive_read_next_header(raw, &e) != ARCHIVE_OK) {
                rc = dl_fail(err, DL_EPACKAGE, "%s: cannot decompress data.tar: %s", deb_path,
                             archive_error_string(raw));
                goto out;
        }
        for (;;) {
                la_ssize_t n = archive_read_data(raw, in, sizeof in);
                if (n < 0) {
                        rc = dl_fail(err, DL_EPACKAGE, "%s: data.tar is damaged: %s", deb_path,
                                     archive_error_string(raw));
                        break;
                }
                ZSTD_inBuffer ib = {in, (size_t)n, 0};
                ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_continue;
                size_t remaining;
                do {
                        ZSTD_outBuffer ob = {zout, out_cap, 0};
                        remaining = ZSTD_compressStream2(z, &ob, &ib, mode);
                        if (ZSTD_isError(remaining)) {
                                rc = dl_fail(err, DL_EINTERNAL, "zstd: %s",
                                             ZSTD_getErrorName(remaining));
                                break;
                        }
                        if (fwrite(zout, 1, ob.pos, out) != ob.pos) {
                                rc = dl_fail_errno(
                                    err, errno, "cannot write the prepared data.tar of", deb_path);
                                break;
                        }
                } while (rc == DL_OK && (mode == ZSTD_e_end ? remaining != 0 : ib.pos < ib.size));
                if (rc || n == 0)
                        break;
        }
out:
        free(zout);
        ZSTD_freeCCtx(z);
        archive_read_free(raw);
        return rc;
}

int dl_unpack_prepare_data(const char *deb_path, const char *dest, struct dl_error *err)
{
        struct archive *a = archive_read_new();
        struct archive_entry *e;
        char *tmp = dl_asprintf("%s.tmp-XXXXXX", dest);
        int fd = mkstemp(tmp);
        FILE *out = fd >= 0 ? fdopen(fd, "wb") : NULL;
        bool found = false;
        int r, rc = DL_OK;

        if (!out) {
                rc = dl_fail_errno(err, errno, "cannot create", tmp);
                if (fd >= 0)
                        close(fd);
                goto done;
        }
        dl_cleanup_add(tmp);
        archive_read_support_format_ar(a);
        if (archive_read_open_filename(a, deb_path, 1 << 16) != ARCHIVE_OK) {
                rc = dl_fail(err, DL_EPACKAGE, "%s is not a .deb archive: %s", deb_path,
                             archive_error_string(a));
        } else {
                while (!found && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK)
                        if (!strncmp(archive_entry_pathname(e), "data.tar", 8)) {
                                found = true;
                                rc = copy_data_member(a, out, deb_path, err);
                        }
                if (rc == DL_OK && !found)
                        rc = dl_fail(err, DL_EPACKAGE, "%s has no data.tar member", deb_path);
        }
        if (fclose(out) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        if (rc == DL_OK && rename(tmp, dest) != 0)
                rc = dl_fail_errno(err, errno, "cannot store", dest);
        if (rc)
                unlink(tmp);
        dl_cleanup_forget(tmp);
done:
        archive_read_free(a);
        free(tmp);
        return rc;
}

void dl_deb_control_free(struct dl_deb_control *ctl)
{
        free(ctl->control);
        free(ctl->md5sums);
        free(ctl->conffiles);
        free(ctl->postinst);
        dl_strlist_free(&ctl->scripts);
        memset(ctl, 0, sizeof *ctl);
}
