/* Tests of layer blobs in the cache: a plain entry, or a member of an image
 * archive that the cache links to. The archives here come from libarchive's
 * ustar writer, not from distill's own, so that the reader does not only
 * understand the writer it was made with. */
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/statfs.h>

#include "distill/cache.h"

static void add_entry(struct archive *a, const char *name, const void *data, size_t n)
{
        struct archive_entry *e = archive_entry_new();
        bool dir = name[strlen(name) - 1] == '/';
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(e, dir ? 0755 : 0644);
        archive_entry_set_size(e, dir ? 0 : (la_int64_t)n);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (!dir && n)
                assert_int_equal(archive_write_data(a, data, n), (la_ssize_t)n);
        archive_entry_free(e);
}

/* An image archive at path holding the blob (with its digest as name) after a
 * directory and another member, and a member after it. */
static void write_archive(const char *path, const unsigned char *blob, size_t n, const char *digest)
{
        struct archive *a = archive_write_new();
        assert_int_equal(archive_write_set_format_ustar(a), ARCHIVE_OK);
        assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
        char *name = tu_asprintf("blobs/sha256/%s", digest);
        add_entry(a, "blobs/", NULL, 0);
        add_entry(a, "blobs/sha256/config", "{}", 2);
        add_entry(a, name, blob, n);
        add_entry(a, "index.json", "{\"schemaVersion\":2}", 19);
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        free(name);
}

struct fixture {
        char *dir;
        struct dl_cache cache;
        unsigned char *blob;
        size_t n;
        char digest[65];
        char *archive;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof *f);
        struct dl_error err = {0};
        f->dir = tu_mkdtemp();
        char *cache_dir = tu_asprintf("%s/cache", f->dir);
        assert_int_equal(dl_cache_open(&f->cache, cache_dir, &err), DL_OK);
        free(cache_dir);
        f->n = 5000; /* not a multiple of 512: the member has padding */
        f->blob = (unsigned char *)tu_noise(f->n, 7);
        tu_sha256_hex(f->blob, f->n, f->digest);
        f->archive = tu_asprintf("%s/image.tar", f->dir);
        write_archive(f->archive, f->blob, f->n, f->digest);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        dl_cache_close(&f->cache);
        tu_rm_rf(f->dir);
        free(f->dir);
        free(f->blob);
        free(f->archive);
        free(f);
        return 0;
}

/* The bytes the blob location names, read back. */
static void assert_blob_at(const struct dl_cache_blob *b, const unsigned char *want, size_t n)
{
        assert_int_equal(b->size, n);
        FILE *fp = fopen(b->path, "rb");
        assert_non_null(fp);
        unsigned char *got = malloc(n);
        assert_int_equal(fseeko(fp, (off_t)b->offset, SEEK_SET), 0);
        assert_int_equal(fread(got, 1, n, fp), n);
        fclose(fp);
        assert_memory_equal(got, want, n);
        free(got);
}

static void test_cache_blob_plain(void **state)
{
        struct fixture *f = *state;
        char *path = dl_cache_path(&f->cache, f->digest);
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(f->blob, 1, f->n, fp), f->n);
        assert_int_equal(fclose(fp), 0);
        struct dl_cache_blob b;
        assert_true(dl_cache_blob_find(&f->cache, f->digest, &b));
        assert_string_equal(b.path, path);
        assert_int_equal(b.offset, 0);
        assert_blob_at(&b, f->blob, f->n);
        assert_true(dl_cache_blob_valid(&f->cache, f->digest));
        dl_cache_blob_free(&b);
        free(path);
}

/* On the same file system the cache links the archive: one inode, no copy. */
static void test_cache_blob_linked_archive(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        struct dl_cache_blob b;
        assert_false(dl_cache_blob_find(&f->cache, f->digest, &b));
        assert_false(dl_cache_blob_valid(&f->cache, f->digest));
        assert_int_equal(dl_cache_store_blob_of(&f->cache, f->archive, f->digest, &err), DL_OK);
        char *image = tu_asprintf("%s/images/%s.tar", f->cache.dir, f->digest);
        struct stat a, c;
        assert_int_equal(stat(f->archive, &a), 0);
        assert_int_equal(stat(image, &c), 0);
        assert_int_equal(a.st_ino, c.st_ino);
        assert_int_equal(c.st_nlink, 2);
        assert_false(dl_cache_has(&f->cache, f->digest));
        assert_true(dl_cache_blob_find(&f->cache, f->digest, &b));
        assert_string_equal(b.path, image);
        /* Three 512-byte headers and the 2 bytes of the config, padded. */
        assert_int_equal(b.offset, 4 * 512);
        assert_blob_at(&b, f->blob, f->n);
        assert_true(dl_cache_blob_valid(&f->cache, f->digest));
        /* The output may go: the cache keeps its link. */
        assert_int_equal(unlink(f->archive), 0);
        assert_true(dl_cache_blob_valid(&f->cache, f->digest));
        dl_cache_blob_free(&b);
        free(image);
}

/* An output changed in place after the build changes the linked entry too: it
 * no longer matches, and leaves the cache. */
static void test_cache_blob_changed_in_place(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        struct dl_cache_blob b;
        assert_int_equal(dl_cache_store_blob_of(&f->cache, f->archive, f->digest, &err), DL_OK);
        assert_true(dl_cache_blob_find(&f->cache, f->digest, &b));
        FILE *fp = fopen(f->archive, "r+b");
        assert_non_null(fp);
        assert_int_equal(fseeko(fp, (off_t)(b.offset + f->n / 2), SEEK_SET), 0);
        assert_int_equal(fputc(f->blob[f->n / 2] ^ 0x55, fp), f->blob[f->n / 2] ^ 0x55);
        assert_int_equal(fclose(fp), 0);
        assert_false(dl_cache_blob_valid(&f->cache, f->digest));
        assert_int_not_equal(access(b.path, F_OK), 0);
        dl_cache_blob_free(&b);
        assert_false(dl_cache_blob_find(&f->cache, f->digest, &b));
        /* The user's file is theirs: only the cache's link goes. */
        assert_int_equal(access(f->archive, F_OK), 0);
}

/* A file under images/ that is no tar archive, or lacks the member, is not a
 * blob, and leaves the cache when checked. */
static void test_cache_blob_damaged_archive(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        struct dl_cache_blob b;
        assert_int_equal(dl_cache_store_blob_of(&f->cache, f->archive, f->digest, &err), DL_OK);
        char *image = tu_asprintf("%s/images/%s.tar", f->cache.dir, f->digest);
        assert_int_equal(truncate(image, 700), 0);
        assert_false(dl_cache_blob_find(&f->cache, f->digest, &b));
        assert_false(dl_cache_blob_valid(&f->cache, f->digest));
        assert_int_not_equal(access(image, F_OK), 0);
        free(image);
}

/* Asked for a blob the archive does not hold, the cache stores nothing. */
static void test_cache_blob_member_missing(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        char other[65];
        tu_sha256_hex("other", 5, other);
        assert_int_not_equal(dl_cache_store_blob_of(&f->cache, f->archive, other, &err), DL_OK);
        assert_contains(err.msg, f->archive);
        assert_contains(err.msg, other);
        char *image = tu_asprintf("%s/images/%s.tar", f->cache.dir, other);
        assert_int_not_equal(access(image, F_OK), 0);
        assert_false(dl_cache_has(&f->cache, other));
        free(image);
}

/* An archive on another file system cannot be linked: the blob alone is copied
 * to a plain entry. /dev/shm is a tmpfs on Debian, apart from the test's
 * directory. */
static void test_cache_blob_other_file_system(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        struct stat shm, here;
        assert_int_equal(stat("/dev/shm", &shm), 0);
        assert_int_equal(stat(f->dir, &here), 0);
        if (shm.st_dev == here.st_dev)
                fail_msg("/dev/shm and %s are one file system; run the tests with TMPDIR on "
                         "another one",
                         f->dir);
        char *away = tu_asprintf("/dev/shm/distill-test-cache-%ld.tar", (long)getpid());
        write_archive(away, f->blob, f->n, f->digest);
        int rc = dl_cache_store_blob_of(&f->cache, away, f->digest, &err);
        unlink(away);
        free(away);
        assert_int_equal(rc, DL_OK);
        char *image = tu_asprintf("%s/images/%s.tar", f->cache.dir, f->digest);
        assert_int_not_equal(access(image, F_OK), 0);
        struct dl_cache_blob b;
        assert_true(dl_cache_blob_find(&f->cache, f->digest, &b));
        assert_int_equal(b.offset, 0);
        assert_blob_at(&b, f->blob, f->n);
        assert_true(dl_cache_blob_valid(&f->cache, f->digest));
        dl_cache_blob_free(&b);
        free(image);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_cache_blob_plain, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cache_blob_linked_archive, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cache_blob_changed_in_place, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cache_blob_damaged_archive, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cache_blob_member_missing, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cache_blob_other_file_system, setup, teardown),
        };
        return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
