/* Tests of the two unpacking steps on .deb files built here with libarchive.
 * dl_deb_read turns a package into a record and a data file. The record survives
 * dl_deb_record_save and dl_deb_record_load byte for byte, and a damaged record
 * fails to load. dl_unpack_merge puts the entries into a tree whose files read
 * back from the data file. */
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>

#include "distill/fstree.h"
#include "distill/unpack.h"

#define MTIME 1700000000LL

struct member {
        const char *name;
        char type; /* 'd' directory, 'f' file, 'l' symlink, 'h' hard link */
        unsigned mode;
        const char *text; /* file contents, or the link target */
};

/* A gzip-compressed tar of members, in memory. */
static void *make_tar(const struct member *m, size_t n, size_t *len)
{
        size_t cap = 1 << 20;
        void *buf = malloc(cap);
        assert_non_null(buf);
        struct archive *a = archive_write_new();
        archive_write_set_format_gnutar(a);
        archive_write_add_filter_gzip(a);
        assert_int_equal(archive_write_open_memory(a, buf, cap, len), ARCHIVE_OK);
        struct archive_entry *e = archive_entry_new();
        for (size_t i = 0; i < n; i++) {
                archive_entry_clear(e);
                archive_entry_set_pathname(e, m[i].name);
                archive_entry_set_mtime(e, MTIME, 0);
                size_t size = 0;
                switch (m[i].type) {
                case 'd':
                        archive_entry_set_mode(e, AE_IFDIR | m[i].mode);
                        break;
                case 'l':
                        archive_entry_set_mode(e, AE_IFLNK | 0777);
                        archive_entry_set_symlink(e, m[i].text);
                        break;
                case 'h':
                        archive_entry_set_mode(e, AE_IFREG | m[i].mode);
                        archive_entry_set_hardlink(e, m[i].text);
                        break;
                default:
                        archive_entry_set_mode(e, AE_IFREG | m[i].mode);
                        size = strlen(m[i].text);
                        archive_entry_set_size(e, (la_int64_t)size);
                }
                assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
                if (size)
                        assert_int_equal(archive_write_data(a, m[i].text, size), (la_ssize_t)size);
        }
        archive_entry_free(e);
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        return buf;
}

static void ar_member(struct archive *a, const char *name, const void *data, size_t len)
{
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_mode(e, AE_IFREG | 0644);
        archive_entry_set_size(e, (la_int64_t)len);
        archive_entry_set_mtime(e, MTIME, 0);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        assert_int_equal(archive_write_data(a, data, len), (la_ssize_t)len);
        archive_entry_free(e);
}

/* Write a .deb at path with the given control file and data members. */
static void make_deb(const char *path, const char *control, const struct member *data, size_t n)
{
        const struct member ctl[] = {{"./control", 'f', 0644, control},
                                     {"./postinst", 'f', 0755, "#!/bin/sh\nldconfig\n"}};
        size_t ctl_len, data_len;
        void *ctl_tar = make_tar(ctl, 2, &ctl_len);
        void *data_tar = make_tar(data, n, &data_len);
        struct archive *a = archive_write_new();
        archive_write_set_format_ar_svr4(a);
        assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
        ar_member(a, "debian-binary", "2.0\n", 4);
        ar_member(a, "control.tar.gz", ctl_tar, ctl_len);
        ar_member(a, "data.tar.gz", data_tar, data_len);
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        free(ctl_tar);
        free(data_tar);
}

static const struct member sample[] = {
    {"./", 'd', 0755, NULL},
    {"./bin/", 'd', 0755, NULL},
    {"./bin/tool", 'f', 04755, "#!/bin/sh\necho tool\n"},
    {"./bin/tool-again", 'h', 04755, "./bin/tool"},
    {"./usr/share/doc/sample/", 'd', 0755, NULL},
    {"./usr/share/doc/sample/copyright", 'f', 0644, "Public domain.\n"},
    {"./usr/lib/sample.so", 'l', 0777, "sample.so.1"},
    {"./usr/lib/sample.so.1", 'f', 0644, "\177ELF not really\n"},
};
#define N_SAMPLE (sizeof sample / sizeof sample[0])

static const struct dl_deb_entry *find_entry(const struct dl_deb_record *rec, const char *path)
{
        for (size_t i = 0; i < rec->n_entries; i++)
                if (!strcmp(rec->entries[i].path, path))
                        return &rec->entries[i];
        fail_msg("the record has no entry %s", path);
        return NULL;
}

struct fixture {
        char *dir;
        char *deb;
        int data_fd;
        struct dl_deb_record rec;
        struct dl_strlist exclude;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof *f);
        assert_non_null(f);
        f->dir = tu_mkdtemp();
        f->deb = tu_asprintf("%s/sample.deb", f->dir);
        make_deb(f->deb, "Package: sample\nVersion: 1.0-1\nReplaces: old-sample\n", sample,
                 N_SAMPLE);
        char *data = tu_asprintf("%s/sample.data", f->dir);
        f->data_fd = open(data, O_RDWR | O_CREAT | O_EXCL, 0644);
        assert_true(f->data_fd >= 0);
        free(data);
        dl_strlist_push(&f->exclude, "/usr/share/doc/*");
        struct dl_unpack_options o = {.merged_usr = true, .paths_exclude = &f->exclude};
        struct dl_error err = {0};
        if (dl_deb_read(f->deb, "package sample", &o, f->data_fd, &f->rec, &err) != DL_OK)
                fail_msg("dl_deb_read: %s", err.msg);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        dl_deb_record_free(&f->rec);
        dl_strlist_free(&f->exclude);
        close(f->data_fd);
        tu_rm_rf(f->dir);
        free(f->dir);
        free(f->deb);
        free(f);
        return 0;
}

static void test_read_record(void **state)
{
        struct fixture *f = *state;
        assert_contains(f->rec.ctl.control, "Package: sample");
        assert_true(dl_strlist_contains(&f->rec.ctl.scripts, "postinst"));
        assert_null(f->rec.ctl.md5sums);

        /* Merged /usr moves bin/ under usr/, and the filter drops the copyright. */
        const struct dl_deb_entry *tool = find_entry(&f->rec, "usr/bin/tool");
        assert_int_equal(tool->type, DL_NODE_FILE);
        assert_int_equal(tool->mode, 04755);
        /* zlib's crc32 checks the CRC-32 the reader computed. */
        assert_int_equal(tool->crc32,
                         crc32(0, (const Bytef *)sample[2].text, (uInt)strlen(sample[2].text)));
        /* Without md5sums in the package, the md5 is computed for the status files. */
        assert_int_equal(strlen(tool->md5), 32);

        const struct dl_deb_entry *link = find_entry(&f->rec, "usr/bin/tool-again");
        assert_int_equal(link->type, DL_NODE_HARDLINK);
        assert_string_equal(link->target, "usr/bin/tool");
        assert_true(find_entry(&f->rec, "usr/share/doc/sample/copyright")->filtered);
        assert_string_equal(find_entry(&f->rec, "usr/lib/sample.so")->target, "sample.so.1");

        /* The data file contains exactly the unfiltered contents, at the recorded offsets. */
        struct stat st;
        assert_int_equal(fstat(f->data_fd, &st), 0);
        assert_int_equal((uint64_t)st.st_size, f->rec.data_size);
        assert_int_equal(f->rec.data_size, strlen(sample[2].text) + strlen(sample[7].text));
        const struct dl_deb_entry *so = find_entry(&f->rec, "usr/lib/sample.so.1");
        char buf[64] = {0};
        assert_int_equal(pread(f->data_fd, buf, so->size, (off_t)so->offset), (ssize_t)so->size);
        assert_string_equal(buf, sample[7].text);
}

static void assert_same_record(const struct dl_deb_record *a, const struct dl_deb_record *b)
{
        assert_string_equal(a->ctl.control, b->ctl.control);
        assert_string_equal(a->ctl.postinst, b->ctl.postinst);
        assert_null(b->ctl.md5sums);
        assert_int_equal(a->ctl.scripts.n, b->ctl.scripts.n);
        assert_int_equal(a->data_size, b->data_size);
        assert_int_equal(a->n_entries, b->n_entries);
        for (size_t i = 0; i < a->n_entries; i++) {
                const struct dl_deb_entry *x = &a->entries[i], *y = &b->entries[i];
                assert_string_equal(x->path, y->path);
                assert_int_equal(x->type, y->type);
                assert_int_equal(x->filtered, y->filtered);
                assert_int_equal(x->mode, y->mode);
                assert_int_equal(x->mtime, y->mtime);
                assert_int_equal(x->size, y->size);
                assert_int_equal(x->offset, y->offset);
                assert_int_equal(x->crc32, y->crc32);
                assert_string_equal(x->md5, y->md5);
                if (x->target || y->target)
                        assert_string_equal(x->target, y->target);
        }
}

static void test_record_round_trip(void **state)
{
        struct fixture *f = *state;
        struct dl_buf bytes = {0};
        dl_deb_record_save(&f->rec, &bytes);
        struct dl_deb_record back;
        struct dl_error err = {0};
        if (dl_deb_record_load(bytes.data, bytes.len, &back, &err) != DL_OK)
                fail_msg("dl_deb_record_load: %s", err.msg);
        assert_same_record(&f->rec, &back);
        dl_deb_record_free(&back);

        /* Any changed byte, a cut and another format all fail to load. */
        for (size_t i = 0; i < bytes.len; i += 97) {
                bytes.data[i] ^= 0x20;
                assert_int_not_equal(dl_deb_record_load(bytes.data, bytes.len, &back, &err), DL_OK);
                bytes.data[i] ^= 0x20;
        }
        assert_int_not_equal(dl_deb_record_load(bytes.data, bytes.len / 2, &back, &err), DL_OK);
        assert_int_not_equal(dl_deb_record_load("DLREC99\n", 8, &back, &err), DL_OK);
        assert_int_not_equal(dl_deb_record_load("", 0, &back, &err), DL_OK);
        dl_buf_free(&bytes);
}

static void test_merge_into_tree(void **state)
{
        struct fixture *f = *state;
        char *stage = tu_asprintf("%s/stage", f->dir);
        assert_int_equal(mkdir(stage, 0755), 0);
        struct dl_fstree t;
        struct dl_error err = {0};
        assert_int_equal(dl_fstree_init(&t, stage, &err), DL_OK);
        const char *names[] = {"sample"};
        const char *versions[] = {"1.0-1"};
        char *replaces[] = {NULL};
        struct dl_unpack_context ctx = {.tree = &t,
                                        .merged_usr = true,
                                        .paths_exclude = &f->exclude,
                                        .names = names,
                                        .versions = versions,
                                        .replaces = replaces};
        unsigned blob = dl_fstree_add_blob(&t, dup(f->data_fd));
        if (dl_unpack_merge(&ctx, 0, &f->rec, blob, &err) != DL_OK)
                fail_msg("dl_unpack_merge: %s", err.msg);
        assert_string_equal(replaces[0], "old-sample");
        /* The directory and the file below it: '*' also matches '/'. */
        assert_int_equal(ctx.n_filtered, 2);

        struct dl_buf text = {0};
        assert_int_equal(dl_fstree_read(&t, "usr/bin/tool-again", &text, &err), DL_OK);
        assert_string_equal(dl_buf_str(&text), sample[2].text);
        dl_buf_free(&text);
        const struct dl_node *n = dl_fstree_get(&t, "usr/bin/tool");
        assert_non_null(n);
        assert_int_equal(n->owner, 0);
        assert_int_equal(n->mode, 04755);
        n = dl_fstree_get(&t, "usr/share/doc/sample/copyright");
        assert_true(n != NULL && n->filtered && n->removed);

        /* A second package: the same bytes at the same path are no clash, other bytes
         * without Replaces are, and the error names both packages. The last two
         * files have the same size and CRC-32 and other bytes: still a clash. */
        const struct member same[] = {{"./usr/lib/sample.so.1", 'f', 0644, sample[7].text}};
        const struct member other[] = {{"./usr/lib/sample.so.1", 'f', 0644, "other\n"}};
        const struct member crc_a[] = {{"./usr/share/crc", 'f', 0644, "content 29685295\n"}};
        const struct member crc_b[] = {{"./usr/share/crc", 'f', 0644, "content 32060020\n"}};
        const struct member *rounds[] = {same, other, crc_a, crc_b};
        assert_int_equal(crc32(0, (const Bytef *)crc_a[0].text, 17),
                         crc32(0, (const Bytef *)crc_b[0].text, 17));
        const char *two[] = {"sample", "twin"};
        const char *two_versions[] = {"1.0-1", "2"};
        char *two_replaces[] = {NULL, NULL};
        ctx.names = two;
        ctx.versions = two_versions;
        ctx.replaces = two_replaces;
        for (int round = 0; round < 4; round++) {
                char *deb = tu_asprintf("%s/twin%d.deb", f->dir, round);
                char *data = tu_asprintf("%s/twin%d.data", f->dir, round);
                make_deb(deb, "Package: twin\nVersion: 2\n", rounds[round], 1);
                int fd = open(data, O_RDWR | O_CREAT | O_EXCL, 0644);
                assert_true(fd >= 0);
                struct dl_unpack_options o = {.merged_usr = true};
                struct dl_deb_record rec;
                assert_int_equal(dl_deb_read(deb, "package twin", &o, fd, &rec, &err), DL_OK);
                /* The third round ships as the first package, so that the fourth
                 * clashes with another package. */
                int owner = round == 2 ? 0 : 1;
                int rc = dl_unpack_merge(&ctx, owner, &rec, dl_fstree_add_blob(&t, fd), &err);
                if ((round == 0 || round == 2) && rc != DL_OK)
                        fail_msg("round %d reported as a clash: %s", round, err.msg);
                if (round == 1 || round == 3) {
                        assert_int_equal(rc, DL_EPACKAGE);
                        assert_contains(err.msg, "sample");
                        assert_contains(err.msg, "twin");
                        assert_contains(err.msg,
                                        round == 1 ? "/usr/lib/sample.so.1" : "/usr/share/crc");
                }
                dl_deb_record_free(&rec);
                free(data);
                free(deb);
        }
        free(replaces[0]);
        free(two_replaces[0]);
        free(two_replaces[1]);
        dl_fstree_free(&t);
        free(stage);
}

/* A package that ships a whiteout name fails to read, and the error names the
 * package. */
static void test_read_rejects_whiteout(void **state)
{
        struct fixture *f = *state;
        const struct member evil[] = {{"./etc/.wh.passwd", 'f', 0644, "x"}};
        char *deb = tu_asprintf("%s/evil.deb", f->dir);
        make_deb(deb, "Package: evil\nVersion: 1\n", evil, 1);
        char *data = tu_asprintf("%s/evil.data", f->dir);
        int fd = open(data, O_RDWR | O_CREAT | O_EXCL, 0644);
        assert_true(fd >= 0);
        struct dl_unpack_options o = {0};
        struct dl_deb_record rec;
        struct dl_error err = {0};
        assert_int_equal(dl_deb_read(deb, "package evil", &o, fd, &rec, &err), DL_EPACKAGE);
        assert_contains(err.msg, "package evil");
        assert_contains(err.msg, ".wh.");
        dl_deb_record_free(&rec);
        close(fd);
        free(data);
        free(deb);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_read_record, setup, teardown),
            cmocka_unit_test_setup_teardown(test_record_round_trip, setup, teardown),
            cmocka_unit_test_setup_teardown(test_merge_into_tree, setup, teardown),
            cmocka_unit_test_setup_teardown(test_read_rejects_whiteout, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
