/* Tests of dl_layer_write on a staging tree built with the fstree API. The blob
 * must not depend on the order in which paths were added, and the gzip header has
 * no name and no time. The digests must match the bytes. Read back with
 * libarchive, the tar has sorted entries, numeric owners, clamped mtimes and
 * every kind of node. */
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <locale.h>

#include "distill/fstree.h"
#include "distill/layer.h"

/* 2026-12-04T00:00:00Z, in seconds since the Unix epoch. */
#define EPOCH 1796342400LL
/* Thirty days before EPOCH: an mtime the layer must keep. */
#define OLD_MTIME (EPOCH - 30 * 86400LL)
/* One hour after EPOCH: an mtime the layer must clamp to EPOCH. */
#define NEW_MTIME (EPOCH + 3600LL)

#define UNICODE_PATH                                                                               \
        "usr/share/doc/caf\xc3\xa9/\xc3\xbc"                                                       \
        "ber.txt"
#define LONG_PATH_LEN 300

enum kind { K_DIR, K_FILE, K_SYMLINK, K_HARDLINK, K_CHAR };

struct entry {
        enum kind kind;
        const char *path; /* NULL: the 300-byte path built at run time */
        unsigned mode;
        unsigned long uid, gid;
        long long mtime;
        const char *text; /* file contents, or the symlink or hardlink target */
        unsigned dev_major, dev_minor;
};

static const struct entry entries[] = {
    {K_DIR, "etc", 0755, 0, 0, OLD_MTIME, NULL, 0, 0},
    {K_FILE, "etc/passwd", 0644, 0, 0, NEW_MTIME, "root:x:0:0:root:/root:/bin/sh\n", 0, 0},
    {K_FILE, "etc/hostname", 0644, 0, 0, -1, "distill\n", 0, 0},
    /* "etc.old" sorts between "etc" and "etc/passwd" because '.' < '/'. */
    {K_FILE, "etc.old/passwd", 0600, 0, 0, OLD_MTIME, "old\n", 0, 0},
    {K_FILE, "usr/bin/perl", 0755, 0, 0, OLD_MTIME, "#!perl one\n", 0, 0},
    {K_HARDLINK, "usr/bin/perl5.36", 0755, 0, 0, OLD_MTIME, "usr/bin/perl", 0, 0},
    {K_FILE, "usr/bin/su", 04755, 0, 0, OLD_MTIME, "setuid binary\n", 0, 0},
    {K_SYMLINK, "usr/bin/sh", 0777, 0, 0, OLD_MTIME, "dash", 0, 0},
    {K_SYMLINK, "bin", 0777, 0, 0, OLD_MTIME, "usr/bin", 0, 0},
    {K_CHAR, "dev/console", 0600, 0, 5, OLD_MTIME, NULL, 5, 1},
    {K_DIR, "tmp", 01777, 0, 0, OLD_MTIME, NULL, 0, 0},
    {K_DIR, "var/www", 0750, 33, 33, OLD_MTIME, NULL, 0, 0},
    {K_FILE, "var/www/index.php", 0640, 33, 33, OLD_MTIME, "<?php echo 1;\n", 0, 0},
    {K_FILE, UNICODE_PATH, 0644, 0, 0, OLD_MTIME, "non-ASCII name\n", 0, 0},
    {K_FILE, NULL, 0644, 0, 0, OLD_MTIME, "long name\n", 0, 0},
};
#define N_ENTRIES (sizeof entries / sizeof entries[0])

/* Two insertion orders, neither sorted, so that the layer must sort. */
static const size_t order_a[N_ENTRIES] = {12, 4, 14, 1, 9, 6, 0, 13, 5, 10, 3, 8, 11, 7, 2};
static const size_t order_b[N_ENTRIES] = {7, 13, 2, 11, 5, 3, 14, 8, 0, 10, 6, 12, 1, 9, 4};

static char long_path[LONG_PATH_LEN + 1];

/* Build "usr/share/long/" + 100 'a' + "/" + 100 'b' + "/" + 79 'c' + ".txt", 300
 * bytes. That is more than the ustar name (100) and prefix (155) fields hold, and
 * every component is under NAME_MAX so that the file can be staged on disk. */
static void make_long_path(void)
{
        char *p = long_path;
        p += sprintf(p, "usr/share/long/");
        memset(p, 'a', 100);
        p += 100;
        *p++ = '/';
        memset(p, 'b', 100);
        p += 100;
        *p++ = '/';
        memset(p, 'c', 79);
        p += 79;
        strcpy(p, ".txt");
}

static const char *entry_path(const struct entry *e)
{
        return e->path ? e->path : long_path;
}

static void add_entry(struct dl_fstree *t, const struct entry *e)
{
        struct dl_error err = {0};
        const char *path = entry_path(e);
        int rc = DL_OK;
        struct dl_node *n;

        switch (e->kind) {
        case K_DIR:
                rc = dl_fstree_add_dir(t, path, e->mode, e->uid, e->gid, e->mtime, &err);
                break;
        case K_FILE:
                rc = dl_fstree_write_file(t, path, e->text, strlen(e->text), e->mode, e->uid,
                                          e->gid, e->mtime, &err);
                break;
        case K_SYMLINK:
                rc = dl_fstree_add_symlink(t, path, e->text, e->mtime, &err);
                break;
        case K_HARDLINK:
        case K_CHAR:
                rc = dl_fstree_make_parents(t, path, "test", &err);
                if (rc != DL_OK)
                        break;
                n = dl_fstree_put(t, path);
                n->type = e->kind == K_HARDLINK ? DL_NODE_HARDLINK : DL_NODE_CHAR;
                n->mode = e->mode;
                n->uid = e->uid;
                n->gid = e->gid;
                n->mtime = e->mtime;
                free(n->target);
                n->target = e->kind == K_HARDLINK ? strdup(e->text) : NULL;
                n->dev_major = e->dev_major;
                n->dev_minor = e->dev_minor;
                n->removed = false;
                break;
        }
        if (rc != DL_OK)
                fail_msg("adding %s failed: %s", path, err.msg);
}

static void build_tree(struct dl_fstree *t, const char *stage, const size_t *order)
{
        struct dl_error err = {0};
        assert_int_equal(mkdir(stage, 0755), 0);
        if (dl_fstree_init(t, stage, &err) != DL_OK)
                fail_msg("dl_fstree_init: %s", err.msg);
        for (size_t i = 0; i < N_ENTRIES; i++)
                add_entry(t, &entries[order[i]]);
}

static void write_layer(const struct dl_fstree *t, const char *path, struct dl_layer *out)
{
        struct dl_error err = {0};
        if (dl_layer_write(t, EPOCH, path, out, &err) != DL_OK)
                fail_msg("dl_layer_write %s: %s", path, err.msg);
}

/* One tar entry as libarchive reads it back. */
struct tar_entry {
        char *path;
        mode_t filetype;
        unsigned mode;
        long long uid, gid;
        char *uname, *gname; /* NULL when the entry has none */
        long long mtime;
        long long size;
        char *hardlink, *symlink;
        unsigned dev_major, dev_minor;
        char *data;
        size_t data_len;
};

static char *dup_or_null(const char *s)
{
        return s ? strdup(s) : NULL;
}

/* Read every entry of an uncompressed tar held in memory. */
static struct tar_entry *read_tar(const unsigned char *tar, size_t len, size_t *n_out)
{
        struct archive *a = archive_read_new();
        assert_non_null(a);
        archive_read_support_format_tar(a);
        assert_int_equal(archive_read_open_memory(a, tar, len), ARCHIVE_OK);

        struct tar_entry *v = NULL;
        size_t n = 0;
        struct archive_entry *ae;
        int r;
        while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
                v = realloc(v, (n + 1) * sizeof *v);
                assert_non_null(v);
                struct tar_entry *e = &v[n++];
                memset(e, 0, sizeof *e);
                e->path = dup_or_null(archive_entry_pathname(ae));
                assert_non_null(e->path);
                e->filetype = archive_entry_filetype(ae);
                e->mode = archive_entry_mode(ae) & 07777;
                e->uid = archive_entry_uid(ae);
                e->gid = archive_entry_gid(ae);
                e->uname = dup_or_null(archive_entry_uname(ae));
                e->gname = dup_or_null(archive_entry_gname(ae));
                e->mtime = archive_entry_mtime(ae);
                e->size = archive_entry_size(ae);
                e->hardlink = dup_or_null(archive_entry_hardlink(ae));
                e->symlink = dup_or_null(archive_entry_symlink(ae));
                e->dev_major = archive_entry_rdevmajor(ae);
                e->dev_minor = archive_entry_rdevminor(ae);
                e->data = malloc((size_t)e->size + 1);
                assert_non_null(e->data);
                la_ssize_t got = archive_read_data(a, e->data, (size_t)e->size);
                assert_true(got >= 0);
                e->data_len = (size_t)got;
                e->data[e->data_len] = '\0';
        }
        if (r != ARCHIVE_EOF)
                fail_msg("reading the layer tar failed: %s", archive_error_string(a));
        archive_read_free(a);
        *n_out = n;
        return v;
}

static void free_tar(struct tar_entry *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(v[i].path);
                free(v[i].uname);
                free(v[i].gname);
                free(v[i].hardlink);
                free(v[i].symlink);
                free(v[i].data);
        }
        free(v);
}

/* Fixture: a tree built in order_a, its layer, the blob and the tar. */
struct fixture {
        char *dir;
        struct dl_fstree tree;
        char *blob_path;
        struct dl_layer layer;
        unsigned char *blob;
        size_t blob_len;
        unsigned char *tar;
        size_t tar_len;
        struct tar_entry *entries;
        size_t n_entries;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof *f);
        assert_non_null(f);
        f->dir = tu_mkdtemp();
        char *stage = tu_asprintf("%s/stage-a", f->dir);
        build_tree(&f->tree, stage, order_a);
        free(stage);
        f->blob_path = tu_asprintf("%s/layer-a.tar.gz", f->dir);
        write_layer(&f->tree, f->blob_path, &f->layer);
        f->blob = tu_read_file(f->blob_path, &f->blob_len);
        f->tar = tu_gunzip(f->blob, f->blob_len, &f->tar_len);
        f->entries = read_tar(f->tar, f->tar_len, &f->n_entries);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        free_tar(f->entries, f->n_entries);
        free(f->tar);
        free(f->blob);
        free(f->blob_path);
        dl_layer_free(&f->layer);
        dl_fstree_free(&f->tree);
        tu_rm_rf(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

/* Return the entry named name (directories with their trailing '/'), failing the
 * test when there is none. */
static const struct tar_entry *find(const struct fixture *f, const char *name)
{
        for (size_t i = 0; i < f->n_entries; i++)
                if (strcmp(f->entries[i].path, name) == 0)
                        return &f->entries[i];
        fail_msg("the layer has no entry %s", name);
        return NULL;
}

static void assert_same_bytes(const char *a, const char *b)
{
        size_t la, lb;
        unsigned char *da = tu_read_file(a, &la);
        unsigned char *db = tu_read_file(b, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(da, db, la);
        free(da);
        free(db);
}

/* Determinism ------------------------------------------------------------- */

static void test_layer_written_twice_identical(void **state)
{
        struct fixture *f = *state;
        char *again = tu_asprintf("%s/layer-a2.tar.gz", f->dir);
        struct dl_layer second;
        write_layer(&f->tree, again, &second);

        assert_same_bytes(f->blob_path, again);
        assert_string_equal(second.digest, f->layer.digest);
        assert_string_equal(second.diff_id, f->layer.diff_id);
        assert_int_equal(second.size, f->layer.size);
        dl_layer_free(&second);
        free(again);
}

static void test_layer_insertion_order_irrelevant(void **state)
{
        struct fixture *f = *state;
        char *stage = tu_asprintf("%s/stage-b", f->dir);
        char *path = tu_asprintf("%s/layer-b.tar.gz", f->dir);
        struct dl_fstree other;
        struct dl_layer layer;
        build_tree(&other, stage, order_b);
        write_layer(&other, path, &layer);

        assert_same_bytes(f->blob_path, path);
        assert_string_equal(layer.digest, f->layer.digest);
        assert_string_equal(layer.diff_id, f->layer.diff_id);
        dl_layer_free(&layer);
        dl_fstree_free(&other);
        free(stage);
        free(path);
}

static void test_layer_content_change_changes_digest(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        /* Same length as "#!perl one\n", so that only the bytes differ. */
        const char *text = "#!perl two\n";
        if (dl_fstree_write_file(&f->tree, "usr/bin/perl", text, strlen(text), 0755, 0, 0,
                                 OLD_MTIME, &err) != DL_OK)
                fail_msg("rewriting usr/bin/perl: %s", err.msg);
        char *path = tu_asprintf("%s/layer-changed.tar.gz", f->dir);
        struct dl_layer changed;
        write_layer(&f->tree, path, &changed);

        assert_string_not_equal(changed.digest, f->layer.digest);
        assert_string_not_equal(changed.diff_id, f->layer.diff_id);
        assert_int_equal(changed.tar_size, f->layer.tar_size);
        dl_layer_free(&changed);
        free(path);
}

/* Blob and digests -------------------------------------------------------- */

static void test_layer_gzip_header(void **state)
{
        struct fixture *f = *state;
        const unsigned char *h = f->blob;
        assert_true(f->blob_len >= 18);

        /* RFC 1952: ID1 ID2 CM FLG MTIME(4) XFL OS. */
        assert_int_equal(h[0], 0x1f);
        assert_int_equal(h[1], 0x8b);
        assert_int_equal(h[2], 8);        /* deflate */
        assert_int_equal(h[3] & 0x08, 0); /* FNAME: no file name */
        assert_int_equal(h[3] & 0x10, 0); /* FCOMMENT: no comment */
        assert_int_equal(h[4], 0);
        assert_int_equal(h[5], 0);
        assert_int_equal(h[6], 0);
        assert_int_equal(h[7], 0);
        assert_int_equal(h[9], 3); /* OS 3: Unix */
}

static void test_layer_digests_match_bytes(void **state)
{
        struct fixture *f = *state;
        char hex[65];

        tu_sha256_hex(f->tar, f->tar_len, hex);
        assert_string_equal(f->layer.diff_id, hex);
        tu_sha256_hex(f->blob, f->blob_len, hex);
        assert_string_equal(f->layer.digest, hex);
        assert_int_equal(f->layer.size, f->blob_len);
        assert_int_equal(f->layer.tar_size, f->tar_len);
}

/* Tar entries ------------------------------------------------------------- */

/* Return path without one trailing '/', as a malloc'd string. */
static char *strip_slash(const char *path)
{
        char *s = strdup(path);
        assert_non_null(s);
        size_t n = strlen(s);
        if (n > 0 && s[n - 1] == '/')
                s[n - 1] = '\0';
        return s;
}

static void test_layer_entries_sorted(void **state)
{
        struct fixture *f = *state;
        assert_true(f->n_entries > 1);
        /* The order is that of the node paths, that is the names without the
         * directory slash, compared as unsigned bytes (strcmp). */
        for (size_t i = 1; i < f->n_entries; i++) {
                char *prev = strip_slash(f->entries[i - 1].path);
                char *cur = strip_slash(f->entries[i].path);
                if (strcmp(prev, cur) >= 0)
                        fail_msg("entry %s comes before %s", f->entries[i - 1].path,
                                 f->entries[i].path);
                free(prev);
                free(cur);
        }
}

struct name_set {
        char *v[64];
        size_t n;
};

/* Add name (malloc'd, taken over) unless the set has it already. */
static void name_set_add(struct name_set *set, char *name)
{
        for (size_t i = 0; i < set->n; i++)
                if (strcmp(set->v[i], name) == 0) {
                        free(name);
                        return;
                }
        assert_true(set->n < sizeof set->v / sizeof set->v[0]);
        set->v[set->n++] = name;
}

static void test_layer_entry_set(void **state)
{
        struct fixture *f = *state;
        /* Every added path and every parent directory of one, each once. */
        struct name_set expected = {0};
        for (size_t i = 0; i < N_ENTRIES; i++) {
                const char *path = entry_path(&entries[i]);
                for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/'))
                        name_set_add(&expected, tu_asprintf("%.*s/", (int)(s - path), path));
                name_set_add(&expected,
                             tu_asprintf("%s%s", path, entries[i].kind == K_DIR ? "/" : ""));
        }
        for (size_t i = 0; i < expected.n; i++)
                find(f, expected.v[i]);
        assert_int_equal(f->n_entries, expected.n);
        for (size_t i = 0; i < expected.n; i++)
                free(expected.v[i]);
}

static void test_layer_directory_names_slash(void **state)
{
        struct fixture *f = *state;
        for (size_t i = 0; i < f->n_entries; i++) {
                const struct tar_entry *e = &f->entries[i];
                size_t n = strlen(e->path);
                int slash = n > 0 && e->path[n - 1] == '/';
                if (e->filetype == AE_IFDIR && !slash)
                        fail_msg("directory entry %s lacks a trailing '/'", e->path);
                if (e->filetype != AE_IFDIR && slash)
                        fail_msg("non-directory entry %s ends with '/'", e->path);
        }
        assert_int_equal(find(f, "etc/")->filetype, AE_IFDIR);
        assert_int_equal(find(f, "usr/share/doc/")->filetype, AE_IFDIR);
}

static void test_layer_numeric_owners(void **state)
{
        struct fixture *f = *state;
        for (size_t i = 0; i < f->n_entries; i++) {
                const struct tar_entry *e = &f->entries[i];
                if (e->uname != NULL && e->uname[0] != '\0')
                        fail_msg("entry %s has uname %s", e->path, e->uname);
                if (e->gname != NULL && e->gname[0] != '\0')
                        fail_msg("entry %s has gname %s", e->path, e->gname);
        }
        const struct tar_entry *www = find(f, "var/www/index.php");
        assert_int_equal(www->uid, 33);
        assert_int_equal(www->gid, 33);
        const struct tar_entry *console = find(f, "dev/console");
        assert_int_equal(console->uid, 0);
        assert_int_equal(console->gid, 5);
        assert_int_equal(find(f, "usr/bin/su")->uid, 0);

        /* The raw ustar uname (bytes 265-296) and gname (297-328) fields are empty,
         * and no PAX record supplies a name either. */
        size_t offset = 0;
        const unsigned char *h;
        while ((h = tu_tar_next_header(f->tar, f->tar_len, &offset)) != NULL) {
                assert_int_equal(h[265], 0);
                assert_int_equal(h[297], 0);
                if (h[156] == 'x') {
                        size_t size = (size_t)tu_tar_number(h + 124, 12);
                        char *records = strndup((const char *)h + 512, size);
                        assert_non_null(records);
                        assert_not_contains(records, " uname=");
                        assert_not_contains(records, " gname=");
                        free(records);
                }
        }
}

static void test_layer_mtime_clamp(void **state)
{
        struct fixture *f = *state;
        /* Newer than the epoch: clamped. */
        assert_int_equal(find(f, "etc/passwd")->mtime, EPOCH);
        /* No time (-1): the epoch. */
        assert_int_equal(find(f, "etc/hostname")->mtime, EPOCH);
        /* Older than the epoch: kept. */
        assert_int_equal(find(f, "usr/bin/perl")->mtime, OLD_MTIME);
        assert_int_equal(find(f, "etc/")->mtime, OLD_MTIME);
        /* Parents created implicitly have no time. */
        assert_int_equal(find(f, "usr/")->mtime, EPOCH);
        for (size_t i = 0; i < f->n_entries; i++)
                if (f->entries[i].mtime > EPOCH)
                        fail_msg("entry %s has mtime %lld, after the epoch %lld",
                                 f->entries[i].path, f->entries[i].mtime, EPOCH);
}

static void test_layer_special_modes(void **state)
{
        struct fixture *f = *state;
        const struct tar_entry *su = find(f, "usr/bin/su");
        assert_int_equal(su->filetype, AE_IFREG);
        assert_int_equal(su->mode, 04755);
        const struct tar_entry *tmp = find(f, "tmp/");
        assert_int_equal(tmp->filetype, AE_IFDIR);
        assert_int_equal(tmp->mode, 01777);
        assert_int_equal(find(f, "var/www/")->mode, 0750);
        assert_int_equal(find(f, "var/www/index.php")->mode, 0640);
        /* Implicit parents are 0755. */
        assert_int_equal(find(f, "usr/")->mode, 0755);
}

static void test_layer_hardlink_entry(void **state)
{
        struct fixture *f = *state;
        const struct tar_entry *e = find(f, "usr/bin/perl5.36");
        assert_non_null(e->hardlink);
        assert_string_equal(e->hardlink, "usr/bin/perl");
        assert_int_equal(e->size, 0);
        assert_int_equal(e->data_len, 0);
}

static void test_layer_device_entry(void **state)
{
        struct fixture *f = *state;
        const struct tar_entry *e = find(f, "dev/console");
        assert_int_equal(e->filetype, AE_IFCHR);
        assert_int_equal(e->dev_major, 5);
        assert_int_equal(e->dev_minor, 1);
        assert_int_equal(e->mode, 0600);
        assert_int_equal(e->size, 0);
}

static void test_layer_symlink_entries(void **state)
{
        struct fixture *f = *state;
        const struct tar_entry *sh = find(f, "usr/bin/sh");
        assert_int_equal(sh->filetype, AE_IFLNK);
        assert_non_null(sh->symlink);
        assert_string_equal(sh->symlink, "dash");
        const struct tar_entry *bin = find(f, "bin");
        assert_int_equal(bin->filetype, AE_IFLNK);
        assert_non_null(bin->symlink);
        assert_string_equal(bin->symlink, "usr/bin");
}

static void test_layer_file_contents(void **state)
{
        struct fixture *f = *state;
        for (size_t i = 0; i < N_ENTRIES; i++) {
                if (entries[i].kind != K_FILE)
                        continue;
                const struct tar_entry *e = find(f, entry_path(&entries[i]));
                assert_int_equal(e->filetype, AE_IFREG);
                assert_int_equal(e->size, strlen(entries[i].text));
                assert_string_equal(e->data, entries[i].text);
        }
}

static void test_layer_unicode_and_long_names(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(strlen(long_path), LONG_PATH_LEN);
        const struct tar_entry *u = find(f, UNICODE_PATH);
        assert_string_equal(u->data, "non-ASCII name\n");
        const struct tar_entry *l = find(f, long_path);
        assert_string_equal(l->data, "long name\n");
}

static void test_layer_no_global_pax_header(void **state)
{
        struct fixture *f = *state;
        /* A global PAX header ('g') changes the meaning of every later entry, so
         * the layer must have none. */
        assert_int_equal(tu_tar_count_typeflag(f->tar, f->tar_len, 'g'), 0);
        /* The scan did walk the headers: the long name needs a PAX 'x' header. */
        assert_true(tu_tar_count_typeflag(f->tar, f->tar_len, 'x') >= 1);
}

/* Stored members ------------------------------------------------------------ */

/* The tar of a layer of several gzip members, each decompressed with zlib. */
static unsigned char *gunzip_members(const unsigned char *blob, const struct dl_layer *l,
                                     size_t *len)
{
        unsigned char *tar = NULL;
        *len = 0;
        for (size_t i = 0; i < l->n_members; i++) {
                size_t n;
                unsigned char *part =
                    tu_gunzip(blob + l->members[i].offset, (size_t)l->members[i].length, &n);
                assert_int_equal(n, l->members[i].isize);
                tar = realloc(tar, *len + n);
                assert_non_null(tar);
                memcpy(tar + *len, part, n);
                *len += n;
                free(part);
        }
        return tar;
}

/* A file that starts with the magic number of a compressed format goes into
 * members of its own, stored instead of compressed: zeros after a gzip magic
 * take their full size, and the same zeros without it almost none. The tar
 * inside is the same either way. */
static void test_layer_stores_compressed_files(void **state)
{
        (void)state;
        enum { SIZE = 300 << 10 };
        char *dir = tu_mkdtemp();
        char *stage = tu_asprintf("%s/stage", dir);
        struct dl_error err = {0};
        struct dl_fstree t;
        assert_int_equal(mkdir(stage, 0755), 0);
        assert_int_equal(dl_fstree_init(&t, stage, &err), DL_OK);
        char *data = calloc(1, SIZE);
        assert_non_null(data);
        assert_int_equal(
            dl_fstree_write_file(&t, "usr/share/a.txt", "text\n", 5, 0644, 0, 0, OLD_MTIME, &err),
            DL_OK);
        assert_int_equal(
            dl_fstree_write_file(&t, "usr/share/plain", data, SIZE, 0644, 0, 0, OLD_MTIME, &err),
            DL_OK);
        memcpy(data, "\x1f\x8b\x08", 3);
        assert_int_equal(
            dl_fstree_write_file(&t, "usr/share/z.gz", data, SIZE, 0644, 0, 0, OLD_MTIME, &err),
            DL_OK);
        char *path = tu_asprintf("%s/layer.tar.gz", dir);
        struct dl_layer l;
        write_layer(&t, path, &l);
        size_t blob_len, tar_len, n_entries;
        unsigned char *blob = tu_read_file(path, &blob_len);
        /* The stored file takes its size; the zeros of usr/share/plain a few KiB. */
        if (blob_len < SIZE || blob_len > SIZE + (16u << 10))
                fail_msg("the layer has %zu bytes; expected the %d stored bytes and little "
                         "more",
                         blob_len, SIZE);
        /* Of the two members with a 300 KiB file, the one of usr/share/z.gz starts
         * with a stored block (BTYPE 00) and is longer than its contents, and the
         * one of usr/share/plain is compressed. */
        size_t stored = 0, compressed = 0;
        for (size_t i = 0; i < l.n_members; i++) {
                const unsigned char *m = blob + l.members[i].offset;
                if (l.members[i].isize < SIZE)
                        continue;
                if (l.members[i].length > l.members[i].isize) {
                        assert_int_equal(m[10] & 6, 0);
                        stored++;
                } else {
                        assert_true(l.members[i].length < l.members[i].isize / 10);
                        compressed++;
                }
        }
        assert_int_equal(stored, 1);
        assert_int_equal(compressed, 1);
        unsigned char *tar = gunzip_members(blob, &l, &tar_len);
        char hex[65];
        tu_sha256_hex(tar, tar_len, hex);
        assert_string_equal(l.diff_id, hex);
        struct tar_entry *read = read_tar(tar, tar_len, &n_entries);
        size_t seen = 0;
        for (size_t i = 0; i < n_entries; i++) {
                if (strcmp(read[i].path, "usr/share/z.gz") == 0) {
                        assert_int_equal(read[i].size, SIZE);
                        assert_memory_equal(read[i].data, data, SIZE);
                        seen++;
                }
        }
        assert_int_equal(seen, 1);
        free_tar(read, n_entries);
        free(tar);
        free(blob);
        dl_layer_free(&l);
        free(path);
        free(data);
        dl_fstree_free(&t);
        tu_rm_rf(dir);
        free(stage);
        free(dir);
}

/* Member reuse ------------------------------------------------------------ */

#define BIG (3u << 20)

static void write_big(struct dl_fstree *t, const char *path, unsigned seed)
{
        struct dl_error err = {0};
        char *data = tu_noise(BIG, seed);
        if (dl_fstree_write_file(t, path, data, BIG, 0644, 0, 0, OLD_MTIME, &err) != DL_OK)
                fail_msg("%s: %s", path, err.msg);
        free(data);
}

static void write_layer_reusing(const struct dl_fstree *t, const char *path,
                                struct dl_member_index *idx, struct dl_layer *out)
{
        struct dl_error err = {0};
        struct dl_layer_options o = {.threads = 3, .reuse = idx};
        if (dl_layer_write_with(t, EPOCH, path, &o, out, &err) != DL_OK)
                fail_msg("dl_layer_write_with %s: %s", path, err.msg);
}

/* A layer that copies the members of an earlier one where their entries did not
 * change has the bytes of one compressed from scratch. A damaged earlier blob
 * only costs the copy. */
static void test_layer_reuses_members(void **state)
{
        (void)state;
        char *dir = tu_mkdtemp();
        char *stage = tu_asprintf("%s/stage", dir);
        char *cache_dir = tu_asprintf("%s/cache", dir);
        struct dl_error err = {0};
        struct dl_fstree t;
        struct dl_cache cache;
        assert_int_equal(mkdir(stage, 0755), 0);
        assert_int_equal(dl_fstree_init(&t, stage, &err), DL_OK);
        assert_int_equal(dl_cache_open(&cache, cache_dir, &err), DL_OK);
        char name[32];
        for (unsigned i = 0; i < 4; i++) {
                snprintf(name, sizeof name, "opt/big/f%u", i);
                write_big(&t, name, i);
        }
        char *first = tu_asprintf("%s/first.tar.gz", dir);
        struct dl_layer a;
        write_layer(&t, first, &a);
        assert_true(a.n_members >= 6);
        /* The cache gets the first layer and its member list. */
        char *blob = dl_cache_path(&cache, a.digest);
        size_t len;
        unsigned char *bytes = tu_read_file(first, &len);
        FILE *fp = fopen(blob, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(bytes, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
        dl_member_index_store(&cache, &a);

        /* One file changes, and the others keep their members. */
        write_big(&t, "opt/big/f2", 99);
        char *fresh = tu_asprintf("%s/fresh.tar.gz", dir);
        char *reused = tu_asprintf("%s/reused.tar.gz", dir);
        struct dl_layer b, c;
        write_layer(&t, fresh, &b);
        struct dl_member_index idx;
        dl_member_index_load(&cache, &idx);
        assert_int_equal(idx.n, a.n_members);
        write_layer_reusing(&t, reused, &idx, &c);
        assert_same_bytes(fresh, reused);
        assert_string_equal(b.digest, c.digest);
        assert_string_equal(b.diff_id, c.diff_id);
        assert_string_not_equal(a.digest, c.digest);
        if (c.n_reused == 0 || c.n_reused + 3 < c.n_members)
                fail_msg("copied %zu of %zu members; expected all but those of one file",
                         c.n_reused, c.n_members);
        dl_member_index_free(&idx);

        /* One changed byte inside the compressed data of the cached blob, which no
         * member's header or size shows: nothing is copied from that blob, it
         * leaves the cache, and the bytes stay the same. */
        bytes[len / 2] ^= 0x55;
        fp = fopen(blob, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(bytes, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
        struct dl_layer d;
        dl_member_index_load(&cache, &idx);
        write_layer_reusing(&t, reused, &idx, &d);
        assert_same_bytes(fresh, reused);
        assert_int_equal(d.n_reused, 0);
        assert_int_not_equal(access(blob, F_OK), 0);
        dl_member_index_free(&idx);

        dl_layer_free(&a);
        dl_layer_free(&b);
        dl_layer_free(&c);
        dl_layer_free(&d);
        free(bytes);
        free(blob);
        free(first);
        free(fresh);
        free(reused);
        dl_cache_close(&cache);
        dl_fstree_free(&t);
        tu_rm_rf(dir);
        free(cache_dir);
        free(stage);
        free(dir);
}

int main(void)
{
        /* As in the binary, names are UTF-8 whatever locale the environment sets. */
        if (setlocale(LC_ALL, "C.UTF-8") == NULL)
                setlocale(LC_ALL, "C");
        make_long_path();

        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_layer_written_twice_identical, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_insertion_order_irrelevant, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_content_change_changes_digest, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_layer_gzip_header, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_digests_match_bytes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_entries_sorted, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_entry_set, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_directory_names_slash, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_numeric_owners, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_mtime_clamp, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_special_modes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_hardlink_entry, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_device_entry, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_symlink_entries, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_file_contents, setup, teardown),
            cmocka_unit_test_setup_teardown(test_layer_unicode_and_long_names, setup, teardown),
            cmocka_unit_test(test_layer_reuses_members),
            cmocka_unit_test(test_layer_stores_compressed_files),
            cmocka_unit_test_setup_teardown(test_layer_no_global_pax_header, setup, teardown),
        };
        return cmocka_run_group_tests_name("layer", tests, NULL, NULL);
}
