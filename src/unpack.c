#include "distill/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <libdeflate.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Open the member (control.tar or data.tar, named by member) as a tar archive;
 * NULL with err filled, naming what, when it is not one. */
static struct archive *open_inner(struct archive *outer, const char *what, const char *member,
                                  struct dl_error *err)
{
        struct archive *a = archive_read_new();
        archive_read_support_filter_all(a);
        archive_read_support_format_gnutar(a);
        archive_read_support_format_tar(a);
        if (archive_read_open(a, outer, NULL, read_member, NULL) != ARCHIVE_OK) {
                const char *why = archive_error_string(a);
                dl_fail(err, DL_EPACKAGE, "%s: cannot read %s: %s", what, member,
                        why ? why : "not a tar archive");
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
        struct archive *a = open_inner(outer, what, "control.tar", err);
        struct archive_entry *e;
        int r, rc = DL_OK;

        if (!a)
                return err->code;
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

/* Reading one package --------------------------------------------------------- */

struct reader {
        const struct dl_unpack_options *o;
        const char *what;
        int fd;
        struct dl_deb_record *rec;
        size_t cap;
};

static struct dl_deb_entry *new_entry(struct reader *r)
{
        struct dl_deb_record *rec = r->rec;
        if (rec->n_entries == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 64;
                rec->entries = dl_realloc(rec->entries, r->cap * sizeof *rec->entries);
        }
        struct dl_deb_entry *en = &rec->entries[rec->n_entries++];
        memset(en, 0, sizeof *en);
        return en;
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
static bool filtered_out(const struct dl_unpack_options *o, const char *path)
{
        if (!o->paths_exclude || o->paths_exclude->n == 0)
                return false;
        char *abs = dl_asprintf("/%s", path);
        bool drop = matches_any(o->paths_exclude, abs) && !matches_any(o->paths_include, abs);
        free(abs);
        return drop;
}

static void read_xattrs(struct archive_entry *e, struct dl_deb_entry *en)
{
        const char *name;
        const void *value;
        size_t size;

        archive_entry_xattr_reset(e);
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                en->xattrs = dl_realloc(en->xattrs, (en->n_xattrs + 1) * sizeof *en->xattrs);
                void *copy = dl_malloc(size ? size : 1);
                memcpy(copy, value, size);
                en->xattrs[en->n_xattrs++] = (struct dl_xattr){dl_strdup(name), copy, size};
        }
}

/* One regular file being copied to the data file. */
struct file_copy {
        struct reader *r;
        struct dl_deb_entry *en;
        uint32_t crc;
        EVP_MD_CTX *md5;
        uint64_t total;
};

/* Store n more bytes of the file, adding them to its CRC-32. */
static int consume(struct file_copy *fc, const void *data, size_t n, struct dl_error *err)
{
        unsigned long long limit = fc->r->o->max_file_size;
        fc->total += n;
        /* Checked while streaming: the header's size may lie. */
        if (limit && fc->total > limit)
                return dl_fail(err, DL_EPACKAGE,
                               "%s: /%s is larger than %llu bytes, the limit for one file (a "
                               "decompression bomb?); raise limits.file_size in the spec if the "
                               "package is trusted",
                               fc->r->what, fc->en->path, limit);
        fc->crc = (uint32_t)libdeflate_crc32(fc->crc, data, n);
        if (fc->md5)
                EVP_DigestUpdate(fc->md5, data, n);
        if (dl_write_all(fc->r->fd, data, n) != 0)
                return dl_fail_errno(err, errno, "cannot store the unpacked contents of",
                                     fc->r->what);
        return DL_OK;
}

/* Zeros up to offset: the holes of a sparse file. */
static int fill_to(struct file_copy *fc, uint64_t offset, struct dl_error *err)
{
        static const char zeros[1 << 16];
        int rc = DL_OK;
        while (rc == DL_OK && fc->total < offset) {
                uint64_t gap = offset - fc->total;
                rc = consume(fc, zeros, gap < sizeof zeros ? (size_t)gap : sizeof zeros, err);
        }
        return rc;
}

/* Stream a regular file's data to the data file, with its CRC-32. The blocks come
 * straight from libarchive's buffer, without a copy. */
static int read_file_data(struct reader *r, struct archive *a, struct dl_deb_entry *en,
                          uint64_t declared, bool want_md5, struct dl_error *err)
{
        struct file_copy fc = {r, en, 0, want_md5 ? EVP_MD_CTX_new() : NULL, 0};
        const void *block;
        size_t n;
        la_int64_t offset;
        int ar, rc = DL_OK;

        if (fc.md5)
                EVP_DigestInit_ex(fc.md5, EVP_md5(), NULL);
        en->offset = r->rec->data_size;
        while (rc == DL_OK &&
               (ar = archive_read_data_block(a, &block, &n, &offset)) == ARCHIVE_OK) {
                if (offset < 0 || (uint64_t)offset < fc.total)
                        rc = dl_fail(err, DL_EPACKAGE, "%s: data.tar is damaged at /%s", r->what,
                                     en->path);
                else if ((rc = fill_to(&fc, (uint64_t)offset, err)) == DL_OK && n)
                        rc = consume(&fc, block, n, err);
        }
        if (rc == DL_OK && ar != ARCHIVE_EOF)
                rc = dl_fail(err, DL_EPACKAGE, "%s: data.tar is damaged or truncated at /%s: %s",
                             r->what, en->path, archive_error_string(a));
        /* A sparse file may end in a hole. */
        if (rc == DL_OK)
                rc = fill_to(&fc, declared, err);
        en->crc32 = fc.crc;
        if (fc.md5) {
                unsigned char md[EVP_MAX_MD_SIZE];
                unsigned len = 0;
                EVP_DigestFinal_ex(fc.md5, md, &len);
                for (unsigned i = 0; i < len; i++)
                        snprintf(en->md5 + 2 * i, 3, "%02x", md[i]);
                EVP_MD_CTX_free(fc.md5);
        }
        en->size = fc.total;
        r->rec->data_size += fc.total;
        return rc;
}

static int read_entry(struct reader *r, struct archive *a, struct archive_entry *e, bool want_md5,
                      struct dl_error *err)
{
        const char *what = r->what;
        char *path = dl_fstree_normalize(archive_entry_pathname(e), r->o->merged_usr, what, err);
        if (!path)
                return err->code;
        if (!*path) {
                free(path); /* the root directory itself */
                return DL_OK;
        }
        if (is_whiteout(path)) {
                int rc = dl_fail(err, DL_EPACKAGE,
                                 "%s: /%s has a name that container runtimes read as a whiteout "
                                 "(.wh.), which would delete files from the image; exclude the "
                                 "package",
                                 what, path);
                free(path);
                return rc;
        }
        struct dl_deb_entry *en = new_entry(r);
        en->path = path;
        if (filtered_out(r->o, path)) {
                /* Never written: the data is skipped with the next header. */
                en->filtered = true;
                return DL_OK;
        }
        en->mode = (unsigned)archive_entry_perm(e) & 07777;
        en->uid = (unsigned long)archive_entry_uid(e);
        en->gid = (unsigned long)archive_entry_gid(e);
        en->mtime = (long long)archive_entry_mtime(e);
        read_xattrs(e, en);
        if (archive_entry_hardlink(e)) {
                en->type = DL_NODE_HARDLINK;
                en->target =
                    dl_fstree_normalize(archive_entry_hardlink(e), r->o->merged_usr, what, err);
                if (!en->target) {
                        dl_error_wrap(err, "hard link /%s", path);
                        return err->code;
                }
                return DL_OK;
        }
        switch (archive_entry_filetype(e)) {
        case AE_IFDIR:
                en->type = DL_NODE_DIR;
                return DL_OK;
        case AE_IFREG:
                en->type = DL_NODE_FILE;
                if (r->o->max_file_size && archive_entry_size(e) > (la_int64_t)r->o->max_file_size)
                        return dl_fail(err, DL_EPACKAGE,
                                       "%s: /%s declares %lld bytes, more than %llu, the limit for "
                                       "one file; raise limits.file_size in the spec if the "
                                       "package is trusted",
                                       what, path, (long long)archive_entry_size(e),
                                       r->o->max_file_size);
                return read_file_data(r, a, en, (uint64_t)archive_entry_size(e), want_md5, err);
        case AE_IFLNK: {
                const char *target = archive_entry_symlink(e);
                if (!target || !*target)
                        return dl_fail(err, DL_EPACKAGE, "%s: the symlink /%s has no target", what,
                                       path);
                en->type = DL_NODE_SYMLINK;
                en->target = dl_strdup(target);
                en->mode = 0777;
                return DL_OK;
        }
        case AE_IFCHR:
        case AE_IFBLK:
        case AE_IFIFO: {
                unsigned ft = archive_entry_filetype(e);
                en->type = ft == AE_IFCHR   ? DL_NODE_CHAR
                           : ft == AE_IFBLK ? DL_NODE_BLOCK
                                            : DL_NODE_FIFO;
                en->dev_major = (unsigned)archive_entry_rdevmajor(e);
                en->dev_minor = (unsigned)archive_entry_rdevminor(e);
                return DL_OK;
        }
        default:
                return dl_fail(err, DL_EPACKAGE, "%s: /%s has an unsupported file type", what,
                               path);
        }
}

static int read_data(struct reader *r, struct archive *outer, bool want_md5, struct dl_error *err)
{
        struct archive *a = open_inner(outer, r->what, "data.tar", err);
        struct archive_entry *e;
        int ar = ARCHIVE_OK, rc = DL_OK;

        if (!a)
                return err->code;
        while (rc == DL_OK && (ar = archive_read_next_header(a, &e)) == ARCHIVE_OK)
                rc = read_entry(r, a, e, want_md5, err);
        if (rc == DL_OK && ar != ARCHIVE_EOF)
                rc = dl_fail(err, DL_EPACKAGE, "%s: data.tar is damaged or ends early: %s", r->what,
                             archive_error_string(a));
        archive_read_free(a);
        return rc;
}

int dl_deb_read(const char *deb_path, const char *what, const struct dl_unpack_options *o,
                int data_fd, struct dl_deb_record *rec, struct dl_error *err)
{
        struct archive *a = archive_read_new();
        struct archive_entry *e;
        struct reader r = {o, what, data_fd, rec, 0};
        struct dl_deb_control *ctl = &rec->ctl;
        bool seen_binary = false, seen_control = false, seen_data = false;
        int ar, rc = DL_OK;

        memset(rec, 0, sizeof *rec);
        archive_read_support_format_ar(a);
        if (archive_read_open_filename(a, deb_path, 1 << 16) != ARCHIVE_OK) {
                rc = dl_fail(err, DL_EPACKAGE, "%s: %s is not a .deb archive: %s", what, deb_path,
                             archive_error_string(a));
                goto out;
        }
        while (rc == DL_OK && (ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
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
                        seen_control = true;
                } else if (!strncmp(name, "data.tar", 8)) {
                        if (!seen_control)
                                rc = dl_fail(err, DL_EPACKAGE,
                                             "%s: control.tar must come before data.tar in a .deb",
                                             what);
                        else
                                rc = read_data(&r, a, ctl->md5sums == NULL, err);
                        seen_data = true;
                }
        }
        if (rc == DL_OK && !seen_data)
                rc = dl_fail(err, DL_EPACKAGE, "%s: %s has no data.tar member", what, deb_path);
out:
        archive_read_free(a);
        return rc;
}

static void free_xattrs(struct dl_xattr *x, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(x[i].name);
                free(x[i].value);
        }
        free(x);
}

void dl_deb_record_free(struct dl_deb_record *rec)
{
        for (size_t i = 0; i < rec->n_entries; i++) {
                free(rec->entries[i].path);
                free(rec->entries[i].target);
                free_xattrs(rec->entries[i].xattrs, rec->entries[i].n_xattrs);
        }
        free(rec->entries);
        dl_deb_control_free(&rec->ctl);
        memset(rec, 0, sizeof *rec);
}

/* Records as bytes --------------------------------------------------------------
 * Integers are little-endian. A string is its length (u32) and its bytes, or
 * 0xffffffff for none. The last 32 bytes are the SHA-256 of everything before. */

static const char record_magic[8] = "DLREC02\n";
#define NO_STRING 0xffffffffu

static void put_u64(struct dl_buf *b, uint64_t v)
{
        unsigned char x[8];
        for (int i = 0; i < 8; i++)
                x[i] = (unsigned char)(v >> (8 * i));
        dl_buf_append(b, x, 8);
}

static void put_u32(struct dl_buf *b, uint32_t v)
{
        unsigned char x[4];
        for (int i = 0; i < 4; i++)
                x[i] = (unsigned char)(v >> (8 * i));
        dl_buf_append(b, x, 4);
}

static void put_bytes(struct dl_buf *b, const void *data, size_t n)
{
        put_u32(b, (uint32_t)n);
        dl_buf_append(b, data, n);
}

static void put_str(struct dl_buf *b, const char *s)
{
        if (s)
                put_bytes(b, s, strlen(s));
        else
                put_u32(b, NO_STRING);
}

void dl_deb_record_save(const struct dl_deb_record *rec, struct dl_buf *out)
{
        const struct dl_deb_control *c = &rec->ctl;
        dl_buf_append(out, record_magic, sizeof record_magic);
        put_u64(out, rec->data_size);
        put_str(out, c->control);
        put_str(out, c->md5sums);
        put_str(out, c->conffiles);
        put_str(out, c->postinst);
        put_u32(out, (uint32_t)c->scripts.n);
        for (size_t i = 0; i < c->scripts.n; i++)
                put_str(out, c->scripts.v[i]);
        put_u64(out, rec->n_entries);
        for (size_t i = 0; i < rec->n_entries; i++) {
                const struct dl_deb_entry *en = &rec->entries[i];
                put_str(out, en->path);
                put_u32(out, (uint32_t)en->type | (en->filtered ? 0x100u : 0));
                put_u32(out, en->mode);
                put_u64(out, en->uid);
                put_u64(out, en->gid);
                put_u64(out, (uint64_t)en->mtime);
                put_u64(out, en->size);
                put_u64(out, en->offset);
                put_str(out, en->target);
                put_u32(out, en->crc32);
                put_str(out, en->md5);
                put_u32(out, en->dev_major);
                put_u32(out, en->dev_minor);
                put_u32(out, (uint32_t)en->n_xattrs);
                for (size_t k = 0; k < en->n_xattrs; k++) {
                        put_str(out, en->xattrs[k].name);
                        put_bytes(out, en->xattrs[k].value, en->xattrs[k].size);
                }
        }
        unsigned char digest[32];
        dl_sha256_raw(out->data, out->len, digest);
        dl_buf_append(out, digest, sizeof digest);
}

struct cursor {
        const unsigned char *p, *end;
        bool bad;
};

/* A little-endian integer of n bytes. */
static uint64_t get_le(struct cursor *c, int n)
{
        uint64_t v = 0;
        if (c->end - c->p < n) {
                c->bad = true;
                return 0;
        }
        for (int i = 0; i < n; i++)
                v |= (uint64_t)c->p[i] << (8 * i);
        c->p += n;
        return v;
}

static uint64_t get_u64(struct cursor *c)
{
        return get_le(c, 8);
}

static uint32_t get_u32(struct cursor *c)
{
        return (uint32_t)get_le(c, 4);
}

/* A string (NULL for none), or a byte string when size is not NULL. */
static char *get_bytes(struct cursor *c, size_t *size)
{
        uint32_t n = get_u32(c);
        if (c->bad || n == NO_STRING)
                return NULL;
        if ((size_t)(c->end - c->p) < n) {
                c->bad = true;
                return NULL;
        }
        char *s = dl_malloc((size_t)n + 1);
        memcpy(s, c->p, n);
        s[n] = '\0';
        c->p += n;
        if (size)
                *size = n;
        else if (strlen(s) != n)
                c->bad = true; /* a NUL inside a string */
        return s;
}

static void get_fixed(struct cursor *c, char *out, size_t cap)
{
        char *s = get_bytes(c, NULL);
        if (s && strlen(s) < cap)
                memcpy(out, s, strlen(s) + 1);
        else
                c->bad = true;
        free(s);
}

int dl_deb_record_load(const void *data, size_t len, struct dl_deb_record *rec,
                       struct dl_error *err)
{
        unsigned char digest[32];
        memset(rec, 0, sizeof *rec);
        if (len < sizeof record_magic + 32 || memcmp(data, record_magic, sizeof record_magic))
                return dl_fail(err, DL_EIO, "not an unpacked record of this version");
        dl_sha256_raw(data, len - 32, digest);
        if (memcmp(digest, (const unsigned char *)data + len - 32, 32))
                return dl_fail(err, DL_EIO, "the record is damaged (its checksum differs)");
        struct cursor c = {(const unsigned char *)data + sizeof record_magic,
                           (const unsigned char *)data + len - 32, false};
        struct dl_deb_control *ctl = &rec->ctl;
        rec->data_size = get_u64(&c);
        ctl->control = get_bytes(&c, NULL);
        ctl->md5sums = get_bytes(&c, NULL);
        ctl->conffiles = get_bytes(&c, NULL);
        ctl->postinst = get_bytes(&c, NULL);
        uint32_t n_scripts = get_u32(&c);
        for (uint32_t i = 0; i < n_scripts && !c.bad; i++) {
                char *s = get_bytes(&c, NULL);
                if (s)
                        dl_strlist_push_owned(&ctl->scripts, s);
                else
                        c.bad = true;
        }
        uint64_t n = get_u64(&c);
        /* Each entry takes more than 64 bytes, which bounds a damaged count. */
        if (n > (uint64_t)(c.end - c.p) / 64)
                c.bad = true;
        if (!c.bad && n)
                rec->entries = dl_calloc((size_t)n, sizeof *rec->entries);
        for (uint64_t i = 0; i < n && !c.bad; i++) {
                struct dl_deb_entry *en = &rec->entries[rec->n_entries++];
                en->path = get_bytes(&c, NULL);
                uint32_t type = get_u32(&c);
                en->type = (enum dl_node_type)(type & 0xff);
                en->filtered = (type & 0x100u) != 0;
                en->mode = get_u32(&c);
                en->uid = (unsigned long)get_u64(&c);
                en->gid = (unsigned long)get_u64(&c);
                en->mtime = (long long)get_u64(&c);
                en->size = get_u64(&c);
                en->offset = get_u64(&c);
                en->target = get_bytes(&c, NULL);
                en->crc32 = get_u32(&c);
                get_fixed(&c, en->md5, sizeof en->md5);
                en->dev_major = get_u32(&c);
                en->dev_minor = get_u32(&c);
                uint32_t nx = get_u32(&c);
                for (uint32_t k = 0; k < nx && !c.bad; k++) {
                        size_t size = 0;
                        char *name = get_bytes(&c, NULL);
                        char *value = get_bytes(&c, &size);
                        en->xattrs =
                            dl_realloc(en->xattrs, (en->n_xattrs + 1) * sizeof *en->xattrs);
                        en->xattrs[en->n_xattrs++] = (struct dl_xattr){name, value, size};
                        if (!name || !value)
                                c.bad = true;
                }
                if (!en->path || (type & 0xffu) > DL_NODE_FIFO || (type & ~0x1ffu) != 0 ||
                    (en->type == DL_NODE_FILE && en->offset + en->size > rec->data_size))
                        c.bad = true;
        }
        if (!c.bad && (c.p != c.end || !ctl->control))
                c.bad = true;
        if (c.bad) {
                dl_deb_record_free(rec);
                return dl_fail(err, DL_EIO, "the record does not parse");
        }
        return DL_OK;
}

/* Merging into the tree ---------------------------------------------------------- */

static void set_meta(struct dl_node *n, const struct dl_deb_entry *en, int owner)
{
        n->mode = en->mode;
        n->uid = en->uid;
        n->gid = en->gid;
        n->mtime = en->mtime;
        n->owner = owner;
        n->removed = false;
        free_xattrs(n->xattrs, n->n_xattrs);
        n->xattrs = en->n_xattrs ? dl_calloc(en->n_xattrs, sizeof *n->xattrs) : NULL;
        n->n_xattrs = en->n_xattrs;
        for (size_t i = 0; i < en->n_xattrs; i++) {
                void *copy = dl_malloc(en->xattrs[i].size ? en->xattrs[i].size : 1);
                memcpy(copy, en->xattrs[i].value, en->xattrs[i].size);
                n->xattrs[i] =
                    (struct dl_xattr){dl_strdup(en->xattrs[i].name), copy, en->xattrs[i].size};
        }
}

/* The content identity of a package's regular file (see dl_node.content_id). */
static void content_id(const struct dl_deb_record *rec, const struct dl_deb_entry *en,
                       char out[DL_SHA256_HEX])
{
        char *text = dl_asprintf("%s %llu %llu %08x", rec->id, (unsigned long long)en->offset,
                                 (unsigned long long)en->size, en->crc32);
        dl_sha256_hex(text, strlen(text), out);
        free(text);
}

/* Whether the regular file n (or the file the hard link n names) has the
 * contents size bytes at offset of blob have. The CRC-32 and size rule most
 * files out; the bytes decide. */
static bool same_contents(const struct dl_fstree *t, const struct dl_node *n, unsigned blob,
                          uint64_t offset, uint64_t size, uint32_t crc32)
{
        if (n->type == DL_NODE_HARDLINK)
                n = dl_fstree_get(t, n->target);
        if (!n || n->type != DL_NODE_FILE || n->size != size || n->crc32 != crc32)
                return false;
        return (n->blob == blob && n->offset == offset) ||
               dl_fstree_same_bytes(t, n->blob, n->offset, blob, offset, size);
}

static int merge_file(struct dl_unpack_context *ctx, int owner, const struct dl_deb_record *rec,
                      const struct dl_deb_entry *en, unsigned blob, const char *what,
                      struct dl_error *err)
{
        struct dl_fstree *t = ctx->tree;
        const char *path = en->path;
        struct dl_node *existing = dl_fstree_get(t, path);

        if (existing && !existing->removed) {
                if (existing->type == DL_NODE_DIR)
                        return dl_fail(
                            err, DL_EPACKAGE,
                            "%s: ships /%s as a file, but %s ships it as a directory", what, path,
                            existing->owner >= 0 ? ctx->names[existing->owner] : "the spec");
                bool same = same_contents(t, existing, blob, en->offset, en->size, en->crc32);
                int take = same ? 0 : resolve_clash(ctx, owner, existing, path, err);
                if (take < 0)
                        return -take;
                if (take == 0)
                        return DL_OK; /* identical contents, or the older package wins */
        }
        struct dl_node *n = dl_fstree_put(t, path);
        free(n->target);
        n->target = NULL;
        n->type = DL_NODE_FILE;
        n->size = en->size;
        n->blob = blob;
        n->offset = en->offset;
        content_id(rec, en, n->content_id);
        n->crc32 = en->crc32;
        memcpy(n->md5, en->md5, sizeof n->md5);
        set_meta(n, en, owner);
        return DL_OK;
}

static int merge_symlink(struct dl_unpack_context *ctx, int owner, const struct dl_deb_entry *en,
                         const char *what, struct dl_error *err)
{
        struct dl_fstree *t = ctx->tree;
        const char *path = en->path;
        struct dl_node *existing = dl_fstree_get(t, path);

        if (existing && !existing->removed) {
                if (existing->type == DL_NODE_SYMLINK && strcmp(existing->target, en->target) == 0)
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
        int rc = dl_fstree_add_symlink(t, path, en->target, en->mtime, err);
        if (rc)
                return rc;
        set_meta(dl_fstree_get(t, path), en, owner);
        return DL_OK;
}

static int merge_hardlink(struct dl_unpack_context *ctx, int owner, const struct dl_deb_entry *en,
                          const char *what, struct dl_error *err)
{
        struct dl_fstree *t = ctx->tree;
        const char *path = en->path;
        const struct dl_node *tn = dl_fstree_get(t, en->target);
        if (tn && tn->filtered) {
                /* Its file was dropped by the path filter and its contents were never
                 * read, so the link goes too. */
                dl_warn("%s: dropping the hard link /%s because paths.exclude drops its file "
                        "/%s; add /%s to paths.include to keep both names",
                        what, path, en->target, en->target);
                ctx->n_filtered++;
                return DL_OK;
        }
        if (!tn || tn->removed || tn->type != DL_NODE_FILE || tn->owner != owner)
                return dl_fail(err, DL_EPACKAGE,
                               "%s: the hardlink /%s points at /%s, which is not a regular file "
                               "earlier in the same package",
                               what, path, en->target);
        struct dl_node *existing = dl_fstree_get(t, path);
        if (existing && !existing->removed &&
            !(existing->type == DL_NODE_FILE &&
              same_contents(t, existing, tn->blob, tn->offset, tn->size, tn->crc32))) {
                int take =
                    existing->type == DL_NODE_DIR
                        ? -dl_fail(
                              err, DL_EPACKAGE,
                              "%s: ships /%s as a hardlink, but it is a directory in the image",
                              what, path)
                        : resolve_clash(ctx, owner, existing, path, err);
                if (take <= 0)
                        return -take;
        }
        char id[DL_SHA256_HEX], md5[33];
        memcpy(id, tn->content_id, sizeof id);
        memcpy(md5, tn->md5, sizeof md5);
        uint64_t size = tn->size;
        uint32_t crc32 = tn->crc32;
        struct dl_node *n = dl_fstree_put(t, path);
        free(n->target);
        n->target = dl_strdup(en->target);
        n->type = DL_NODE_HARDLINK;
        memcpy(n->content_id, id, sizeof id);
        memcpy(n->md5, md5, sizeof md5);
        n->size = size;
        n->crc32 = crc32;
        set_meta(n, en, owner);
        return DL_OK;
}

static int merge_entry(struct dl_unpack_context *ctx, int owner, const struct dl_deb_record *rec,
                       const struct dl_deb_entry *en, unsigned blob, const char *what,
                       struct dl_error *err)
{
        struct dl_fstree *t = ctx->tree;
        const char *path = en->path;
        int rc;

        if (en->filtered) {
                /* Recorded so that symlinks into it can be reported. */
                struct dl_node *n = dl_fstree_get(t, path);
                if (!n) {
                        n = dl_fstree_put(t, path);
                        n->filtered = true;
                        n->owner = owner;
                }
                ctx->n_filtered++;
                return DL_OK;
        }
        if ((rc = dl_fstree_make_parents(t, path, what, err)))
                return rc;
        if (en->type == DL_NODE_HARDLINK)
                return merge_hardlink(ctx, owner, en, what, err);
        struct dl_node *existing = dl_fstree_get(t, path);
        bool live = existing && !existing->removed;
        switch (en->type) {
        case DL_NODE_DIR:
                if (live && existing->type == DL_NODE_DIR)
                        return DL_OK; /* shared directories keep the first package's metadata */
                if (live)
                        return dl_fail(
                            err, DL_EPACKAGE,
                            "%s: ships /%s as a directory, but %s ships it as a %s", what, path,
                            existing->owner >= 0 ? ctx->names[existing->owner] : "the image",
                            existing->type == DL_NODE_SYMLINK ? "symlink" : "file");
                if ((rc = dl_fstree_add_dir(t, path, 0755, 0, 0, 0, err)))
                        return rc;
                set_meta(dl_fstree_get(t, path), en, owner);
                return DL_OK;
        case DL_NODE_FILE:
                return merge_file(ctx, owner, rec, en, blob, what, err);
        case DL_NODE_SYMLINK:
                return merge_symlink(ctx, owner, en, what, err);
        case DL_NODE_CHAR:
        case DL_NODE_BLOCK:
        case DL_NODE_FIFO: {
                /* Recorded for the layer only; never created on disk. */
                if (live && existing->type == DL_NODE_DIR)
                        return dl_fail(
                            err, DL_EPACKAGE,
                            "%s: ships /%s as a device, but it is a directory in the image", what,
                            path);
                struct dl_node *n = dl_fstree_put(t, path);
                n->type = en->type;
                n->dev_major = en->dev_major;
                n->dev_minor = en->dev_minor;
                free(n->target);
                n->target = NULL;
                set_meta(n, en, owner);
                return DL_OK;
        }
        default:
                return dl_fail(err, DL_EPACKAGE, "%s: /%s has an unsupported file type", what,
                               path);
        }
}

int dl_unpack_merge(struct dl_unpack_context *ctx, int owner, const struct dl_deb_record *rec,
                    unsigned blob, struct dl_error *err)
{
        char *what = dl_asprintf("package %s", ctx->names[owner]);
        int rc = DL_OK;
        free(ctx->replaces[owner]);
        ctx->replaces[owner] = dl_control_field(rec->ctl.control, "Replaces");
        for (size_t i = 0; i < rec->n_entries && rc == DL_OK; i++)
                rc = merge_entry(ctx, owner, rec, &rec->entries[i], blob, what, err);
        free(what);
        return rc;
}

int dl_unpack_deb(struct dl_unpack_context *ctx, int owner, const char *deb_path,
                  struct dl_deb_control *ctl, struct dl_error *err)
{
        struct dl_unpack_options o = {ctx->merged_usr, ctx->max_file_size, ctx->paths_exclude,
                                      ctx->paths_include};
        struct dl_deb_record rec;
        char *what = dl_asprintf("package %s", ctx->names[owner]);
        char *tmp = dl_asprintf("%s/.distill-data-XXXXXX", ctx->tree->root);
        int fd = mkstemp(tmp);
        int rc;

        memset(ctl, 0, sizeof *ctl);
        memset(&rec, 0, sizeof rec);
        if (fd < 0) {
                rc = dl_fail_errno(err, errno, "cannot create a file in the staging directory",
                                   ctx->tree->root);
                goto out;
        }
        unlink(tmp);
        unsigned blob = dl_fstree_add_blob(ctx->tree, fd); /* the tree closes it */
        rc = dl_deb_read(deb_path, what, &o, fd, &rec, err);
        /* Without a cache key, the .deb's own digest names where contents come from:
         * the options are the same for every package of ctx. */
        if (rc == DL_OK)
                rc = dl_sha256_file(deb_path, rec.id, NULL, err);
        if (rc == DL_OK)
                rc = dl_unpack_merge(ctx, owner, &rec, blob, err);
        *ctl = rec.ctl;
        memset(&rec.ctl, 0, sizeof rec.ctl);
        dl_deb_record_free(&rec);
out:
        free(tmp);
        free(what);
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
