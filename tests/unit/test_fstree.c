/* Tests of the fstree guards. Member names are normalized into relative paths
 * under the merged /usr layout, and absolute names and ".." are rejected. No write
 * goes through a symlink, whether in the table or only on disk. Implicit parents
 * are root-owned 0755 directories, and the nodes sort in the order the layer
 * writes them. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>

#include "distill/fstree.h"

#define WHAT "pkg_1.0_amd64.deb"

/* dl_fstree_normalize ----------------------------------------------------- */

struct normalize_case {
        const char *name;
        bool merged_usr;
        const char *expected;
};

static const struct normalize_case normalize_cases[] = {
    {"./usr/bin/x", true, "usr/bin/x"},
    {"./usr/bin/x", false, "usr/bin/x"},
    {"usr//bin/./x/", true, "usr/bin/x"},
    {"./bin/sh", true, "usr/bin/sh"},
    {"./bin/sh", false, "bin/sh"},
    {"./sbin/ldconfig", true, "usr/sbin/ldconfig"},
    {"./lib/x86_64-linux-gnu/libc.so.6", true, "usr/lib/x86_64-linux-gnu/libc.so.6"},
    {"./lib64/ld.so", true, "usr/lib64/ld.so"},
    {"./lib64/ld.so", false, "lib64/ld.so"},
    /* Only whole first components move: "binary" is not "bin". */
    {"./binary/x", true, "binary/x"},
    {"./libexec/x", true, "libexec/x"},
    /* "bin" below another directory stays where it is. */
    {"./usr/local/bin/x", true, "usr/local/bin/x"},
    {"./bin", true, "usr/bin"},
    {"./etc/", true, "etc"},
    {"./", true, ""},
    {".", true, ""},
};

static void test_normalize_table(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof normalize_cases / sizeof normalize_cases[0]; i++) {
                const struct normalize_case *c = &normalize_cases[i];
                struct dl_error err = {0};
                char *got = dl_fstree_normalize(c->name, c->merged_usr, WHAT, &err);
                if (got == NULL)
                        fail_msg("%s (merged_usr %d) was rejected: %s", c->name, c->merged_usr,
                                 err.msg);
                if (strcmp(got, c->expected) != 0)
                        fail_msg("%s (merged_usr %d): expected \"%s\", got \"%s\"", c->name,
                                 c->merged_usr, c->expected, got);
                free(got);
        }
}

static void assert_rejected(const char *name, bool merged_usr)
{
        struct dl_error err = {0};
        char *got = dl_fstree_normalize(name, merged_usr, WHAT, &err);
        if (got != NULL)
                fail_msg("%s was accepted as \"%s\"", name, got);
        assert_int_equal(err.code, DL_EPACKAGE);
        assert_contains(err.msg, name);
        assert_contains(err.msg, WHAT);
}

static void test_normalize_rejects_absolute(void **state)
{
        (void)state;
        assert_rejected("/etc/passwd", true);
        assert_rejected("/etc/passwd", false);
}

static void test_normalize_rejects_dotdot(void **state)
{
        (void)state;
        assert_rejected("./usr/../../etc/x", true);
        assert_rejected("../etc/x", false);
        assert_rejected("usr/lib/..", true);
}

/* Fixture: an empty tree in a fresh staging directory. ------------------- */

struct fixture {
        char *stage;
        struct dl_fstree tree;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof *f);
        assert_non_null(f);
        f->stage = tu_mkdtemp();
        struct dl_error err = {0};
        if (dl_fstree_init(&f->tree, f->stage, &err) != DL_OK)
                fail_msg("dl_fstree_init: %s", err.msg);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        dl_fstree_free(&f->tree);
        tu_rm_rf(f->stage);
        free(f->stage);
        free(f);
        return 0;
}

/* Return whether path exists under the staging directory, without following a
 * symlink in its last component, and store its mode in *mode. */
static int staged_lstat(const struct fixture *f, const char *path, mode_t *mode)
{
        char *full = tu_asprintf("%s/%s", f->stage, path);
        struct stat st;
        int found = lstat(full, &st) == 0;
        if (found && mode != NULL)
                *mode = st.st_mode;
        free(full);
        return found;
}

static size_t count_occurrences(const char *haystack, const char *needle)
{
        size_t n = 0;
        for (const char *p = strstr(haystack, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

/* dl_fstree_make_parents --------------------------------------------------- */

static void test_make_parents_rejects_symlink_parent(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        assert_int_equal(dl_fstree_add_symlink(&f->tree, "usr/lib/alt", "../share/alt", -1, &err),
                         DL_OK);

        memset(&err, 0, sizeof err);
        int rc = dl_fstree_make_parents(&f->tree, "usr/lib/alt/file", WHAT, &err);
        assert_int_equal(rc, DL_EPACKAGE);
        assert_int_equal(err.code, DL_EPACKAGE);
        assert_contains(err.msg, "usr/lib/alt/file");
        /* The symlink is named on its own, not only as a prefix of the path. */
        if (count_occurrences(err.msg, "usr/lib/alt") < 2)
                fail_msg("expected the symlink usr/lib/alt named apart from the path in: %s",
                         err.msg);

        /* Deeper below the symlink too, and nothing is created through it. */
        memset(&err, 0, sizeof err);
        rc = dl_fstree_make_parents(&f->tree, "usr/lib/alt/sub/file", WHAT, &err);
        assert_int_equal(rc, DL_EPACKAGE);
        assert_null(dl_fstree_get(&f->tree, "usr/lib/alt/sub"));
        /* Symlinks reach the staging directory when the tree is written out. */
        memset(&err, 0, sizeof err);
        assert_int_equal(dl_fstree_materialize(&f->tree, &err), DL_OK);
        mode_t mode = 0;
        assert_true(staged_lstat(f, "usr/lib/alt", &mode));
        assert_true(S_ISLNK(mode));
}

static void test_make_parents_rejects_file_parent(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        assert_int_equal(
            dl_fstree_write_file(&f->tree, "etc/motd", "hi\n", 3, 0644, 0, 0, -1, &err), DL_OK);
        memset(&err, 0, sizeof err);
        assert_int_equal(dl_fstree_make_parents(&f->tree, "etc/motd/x", WHAT, &err), DL_EPACKAGE);
        assert_contains(err.msg, "etc/motd/x");
}

static void test_make_parents_creates_root_dirs(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        assert_int_equal(dl_fstree_make_parents(&f->tree, "opt/app/bin/tool", WHAT, &err), DL_OK);

        static const char *const parents[] = {"opt", "opt/app", "opt/app/bin"};
        for (size_t i = 0; i < sizeof parents / sizeof parents[0]; i++) {
                const struct dl_node *n = dl_fstree_get(&f->tree, parents[i]);
                if (n == NULL)
                        fail_msg("parent %s is missing from the table", parents[i]);
                assert_false(n->removed);
                assert_int_equal(n->type, DL_NODE_DIR);
                assert_int_equal(n->mode, 0755);
                assert_int_equal(n->uid, 0);
                assert_int_equal(n->gid, 0);
                /* The table alone until the tree is written out. */
                if (staged_lstat(f, parents[i], NULL))
                        fail_msg("parent %s is on disk before dl_fstree_materialize", parents[i]);
        }
        /* The path itself is left to the caller. */
        assert_null(dl_fstree_get(&f->tree, "opt/app/bin/tool"));
        assert_int_equal(dl_fstree_materialize(&f->tree, &err), DL_OK);
        for (size_t i = 0; i < sizeof parents / sizeof parents[0]; i++) {
                mode_t mode = 0;
                if (!staged_lstat(f, parents[i], &mode))
                        fail_msg("parent %s is missing on disk after dl_fstree_materialize",
                                 parents[i]);
                assert_true(S_ISDIR(mode));
        }
        assert_false(staged_lstat(f, "opt/app/bin/tool", NULL));
}

static void test_make_parents_keeps_shipped_dir(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        assert_int_equal(dl_fstree_add_dir(&f->tree, "var/www", 0750, 33, 33, 100, &err), DL_OK);
        assert_int_equal(dl_fstree_make_parents(&f->tree, "var/www/html/index.php", WHAT, &err),
                         DL_OK);
        const struct dl_node *n = dl_fstree_get(&f->tree, "var/www");
        assert_non_null(n);
        assert_int_equal(n->mode, 0750);
        assert_int_equal(n->uid, 33);
        assert_int_equal(n->gid, 33);
}

/* dl_fstree_write_file ------------------------------------------------------ */

static void test_write_file_over_directory(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        assert_int_equal(dl_fstree_add_dir(&f->tree, "etc/conf.d", 0755, 0, 0, -1, &err), DL_OK);

        memset(&err, 0, sizeof err);
        int rc = dl_fstree_write_file(&f->tree, "etc/conf.d", "x\n", 2, 0644, 0, 0, -1, &err);
        assert_int_not_equal(rc, DL_OK);
        assert_int_equal(err.code, rc);
        assert_contains(err.msg, "etc/conf.d");

        const struct dl_node *n = dl_fstree_get(&f->tree, "etc/conf.d");
        assert_non_null(n);
        assert_int_equal(n->type, DL_NODE_DIR);
        memset(&err, 0, sizeof err);
        assert_int_equal(dl_fstree_materialize(&f->tree, &err), DL_OK);
        mode_t mode = 0;
        assert_true(staged_lstat(f, "etc/conf.d", &mode));
        assert_true(S_ISDIR(mode));
}

static void test_write_file_contents_and_metadata(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        const char *text = "expose_php = Off\n";
        assert_int_equal(dl_fstree_write_file(&f->tree, "etc/php/app.ini", text, strlen(text), 0640,
                                              33, 34, 1234, &err),
                         DL_OK);
        const struct dl_node *n = dl_fstree_get(&f->tree, "etc/php/app.ini");
        assert_non_null(n);
        assert_int_equal(n->type, DL_NODE_FILE);
        assert_int_equal(n->mode, 0640);
        assert_int_equal(n->uid, 33);
        assert_int_equal(n->gid, 34);
        assert_int_equal(n->mtime, 1234);
        assert_int_equal(n->size, strlen(text));
        char hex[65];
        tu_sha256_hex(text, strlen(text), hex);
        assert_string_equal(n->content_id, hex);
        assert_int_equal(n->crc32, crc32(0, (const Bytef *)text, (uInt)strlen(text)));

        /* Read back from the table's blob, then from disk once written out. */
        struct dl_buf back = {0};
        assert_int_equal(dl_fstree_read(&f->tree, "etc/php/app.ini", &back, &err), DL_OK);
        assert_int_equal(back.len, strlen(text));
        assert_memory_equal(back.data, text, back.len);
        dl_buf_free(&back);
        assert_false(staged_lstat(f, "etc/php/app.ini", NULL));
        assert_int_equal(dl_fstree_materialize(&f->tree, &err), DL_OK);
        char *full = tu_asprintf("%s/etc/php/app.ini", f->stage);
        size_t len;
        unsigned char *data = tu_read_file(full, &len);
        assert_int_equal(len, strlen(text));
        assert_memory_equal(data, text, len);
        free(data);
        free(full);
}

/* A symlink to a directory outside the staging root must never be followed: the
 * canary directory stays empty whichever way the write is attempted. */
static void test_write_through_table_symlink(void **state)
{
        struct fixture *f = *state;
        char *canary = tu_mkdtemp();
        struct dl_error err = {0};
        assert_int_equal(dl_fstree_add_symlink(&f->tree, "usr/lib/x", canary, -1, &err), DL_OK);

        memset(&err, 0, sizeof err);
        int rc =
            dl_fstree_write_file(&f->tree, "usr/lib/x/evil", "pwned\n", 6, 0644, 0, 0, -1, &err);
        assert_int_not_equal(rc, DL_OK);
        assert_int_equal(tu_count_dir_entries(canary, NULL), 0);
        const struct dl_node *n = dl_fstree_get(&f->tree, "usr/lib/x/evil");
        assert_true(n == NULL || n->removed);

        tu_rm_rf(canary);
        free(canary);
}

/* Plant usr/lib/NAME -> target in the staging directory, behind the table's back,
 * as a stale or tampered staging directory would have it. */
static void plant_symlink(const struct fixture *f, const char *name, const char *target)
{
        char *usr = tu_asprintf("%s/usr", f->stage);
        char *usr_lib = tu_asprintf("%s/usr/lib", f->stage);
        char *link = tu_asprintf("%s/usr/lib/%s", f->stage, name);
        assert_true(mkdir(usr, 0755) == 0 || errno == EEXIST);
        assert_true(mkdir(usr_lib, 0755) == 0 || errno == EEXIST);
        assert_int_equal(symlink(target, link), 0);
        free(link);
        free(usr_lib);
        free(usr);
}

/* The table has a directory at usr/lib/y where the disk has a symlink: only the
 * no-follow walk keeps the file out of the canary, and writing the tree fails. */
static void test_write_through_disk_symlink(void **state)
{
        struct fixture *f = *state;
        char *canary = tu_mkdtemp();
        struct dl_error err = {0};
        plant_symlink(f, "y", canary);
        assert_int_equal(
            dl_fstree_write_file(&f->tree, "usr/lib/y/evil", "pwned\n", 6, 0644, 0, 0, -1, &err),
            DL_OK);
        memset(&err, 0, sizeof err);
        int rc = dl_fstree_materialize(&f->tree, &err);
        assert_int_not_equal(rc, DL_OK);
        assert_contains(err.msg, "usr/lib/y");
        assert_int_equal(tu_count_dir_entries(canary, NULL), 0);
        tu_rm_rf(canary);
        free(canary);
}

/* A symlink on disk at the path of a file is replaced, not followed: the file
 * lands in the staging directory and the file the symlink named stays absent. */
static void test_write_over_disk_symlink(void **state)
{
        struct fixture *f = *state;
        char *canary = tu_mkdtemp();
        struct dl_error err = {0};
        char *target = tu_asprintf("%s/target", canary);
        plant_symlink(f, "z", target);
        assert_int_equal(
            dl_fstree_write_file(&f->tree, "usr/lib/z", "data\n", 5, 0644, 0, 0, -1, &err), DL_OK);
        int rc = dl_fstree_materialize(&f->tree, &err);
        if (rc != DL_OK)
                fail_msg("writing over the symlink usr/lib/z failed: %s", err.msg);
        assert_int_equal(tu_count_dir_entries(canary, NULL), 0);
        mode_t mode = 0;
        assert_true(staged_lstat(f, "usr/lib/z", &mode));
        assert_true(S_ISREG(mode));
        free(target);
        tu_rm_rf(canary);
        free(canary);
}

/* dl_fstree_sorted ---------------------------------------------------------- */

static void test_sorted_order(void **state)
{
        struct fixture *f = *state;
        /* Table nodes only, without parents, inserted out of order. */
        static const char *const inserted[] = {"zeta", "a/b/c", "\xc3\xa9t\xc3\xa9", "a0", "a", "B",
                                               "a/b",  "a-b"};
        /* strcmp order of the bytes: 'B' (0x42) < 'a', '-' (0x2d) < '/' (0x2f) < '0'
         * (0x30), and the UTF-8 lead byte 0xc3 after every ASCII byte. */
        static const char *const expected[] = {"B",     "a",  "a-b",  "a/b",
                                               "a/b/c", "a0", "zeta", "\xc3\xa9t\xc3\xa9"};
        for (size_t i = 0; i < sizeof inserted / sizeof inserted[0]; i++) {
                struct dl_node *n = dl_fstree_put(&f->tree, inserted[i]);
                n->type = DL_NODE_FILE;
                n->mode = 0644;
                n->removed = false;
        }
        /* A removed node is left out. */
        struct dl_node *gone = dl_fstree_put(&f->tree, "a/gone");
        gone->type = DL_NODE_FILE;
        gone->removed = true;

        size_t n = 0;
        struct dl_node **v = dl_fstree_sorted(&f->tree, &n);
        assert_non_null(v);
        assert_int_equal(n, sizeof expected / sizeof expected[0]);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(v[i]->path, expected[i]);
        free(v);
}

static void test_sorted_skips_removed_subtree(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        assert_int_equal(dl_fstree_write_file(&f->tree, "usr/share/doc/a/copyright", "c", 1, 0644,
                                              0, 0, -1, &err),
                         DL_OK);
        assert_int_equal(
            dl_fstree_write_file(&f->tree, "usr/share/docs", "d", 1, 0644, 0, 0, -1, &err), DL_OK);
        dl_fstree_remove(&f->tree, "usr/share/doc");

        size_t n = 0;
        struct dl_node **v = dl_fstree_sorted(&f->tree, &n);
        static const char *const expected[] = {"usr", "usr/share", "usr/share/docs"};
        assert_int_equal(n, sizeof expected / sizeof expected[0]);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(v[i]->path, expected[i]);
        free(v);
        assert_false(staged_lstat(f, "usr/share/doc/a/copyright", NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_normalize_table),
            cmocka_unit_test(test_normalize_rejects_absolute),
            cmocka_unit_test(test_normalize_rejects_dotdot),
            cmocka_unit_test_setup_teardown(test_make_parents_rejects_symlink_parent, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_make_parents_rejects_file_parent, setup, teardown),
            cmocka_unit_test_setup_teardown(test_make_parents_creates_root_dirs, setup, teardown),
            cmocka_unit_test_setup_teardown(test_make_parents_keeps_shipped_dir, setup, teardown),
            cmocka_unit_test_setup_teardown(test_write_file_over_directory, setup, teardown),
            cmocka_unit_test_setup_teardown(test_write_file_contents_and_metadata, setup, teardown),
            cmocka_unit_test_setup_teardown(test_write_through_table_symlink, setup, teardown),
            cmocka_unit_test_setup_teardown(test_write_through_disk_symlink, setup, teardown),
            cmocka_unit_test_setup_teardown(test_write_over_disk_symlink, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sorted_order, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sorted_skips_removed_subtree, setup, teardown),
        };
        return cmocka_run_group_tests_name("fstree", tests, NULL, NULL);
}
