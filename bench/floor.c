/* The floor of an image build from a set of .deb files: the work that no tool
 * which unpacks them into one gzip layer can skip. For every .deb given, it
 * decompresses the data.tar member and computes the SHA-256 of each file's
 * contents. It compresses those contents once, as distill's layer writer does:
 * libdeflate's gzip format at level FLOOR_LEVEL, in pieces of at most
 * FLOOR_GROUP bytes, because distill cuts its tar stream into gzip members no
 * larger than that. The output is discarded, and nothing is written to disk.
 *
 * Usage: floor DEB...
 * Prints one line: debs=N files=N unpacked_bytes=N compressed_bytes=N cpu_seconds=S
 * where cpu_seconds is the user plus system time of this process (getrusage),
 * measured after all the work, so it includes reading the files. It runs on one
 * thread; bench/run.sh divides the time by the number of cores.
 *
 * Build: cc -O2 -DFLOOR_LEVEL=6 -o floor floor.c -larchive -ldeflate -lcrypto */
#include <archive.h>
#include <archive_entry.h>
#include <libdeflate.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#ifndef FLOOR_LEVEL
#define FLOOR_LEVEL 6
#endif
#ifndef FLOOR_GROUP
#define FLOOR_GROUP (2u << 20)
#endif
#define BUF_SIZE (256 * 1024)

struct totals {
        unsigned long long files;
        unsigned long long unpacked;
        unsigned long long compressed;
};

static struct libdeflate_compressor *compressor;
static unsigned char *group, *group_out;
static size_t group_len, group_out_cap;

static void die(const char *subject, const char *detail)
{
        fprintf(stderr, "floor: error: %s: %s\n", subject, detail ? detail : "unknown error");
        exit(1);
}

static void compress_group(struct totals *t)
{
        size_t n = libdeflate_gzip_compress(compressor, group, group_len, group_out, group_out_cap);
        if (n == 0)
                die("libdeflate_gzip_compress", "output larger than its bound");
        t->compressed += n;
        group_len = 0;
}

/* Append len bytes to the current group, compressing each full group. */
static void compress_bytes(const unsigned char *data, size_t len, struct totals *t)
{
        while (len > 0) {
                size_t take = FLOOR_GROUP - group_len < len ? FLOOR_GROUP - group_len : len;
                memcpy(group + group_len, data, take);
                group_len += take;
                data += take;
                len -= take;
                if (group_len == FLOOR_GROUP)
                        compress_group(t);
        }
}

/* The data.tar member is read straight from the outer ar archive. */
static la_ssize_t read_member(struct archive *inner, void *outer, const void **buf)
{
        static unsigned char member[BUF_SIZE];
        (void)inner;
        *buf = member;
        return archive_read_data(outer, member, sizeof member);
}

static void unpack_data_tar(struct archive *outer, const char *deb, EVP_MD_CTX *md,
                            unsigned char *buf, struct totals *t)
{
        struct archive *tar = archive_read_new();
        struct archive_entry *entry;
        archive_read_support_filter_all(tar);
        archive_read_support_format_tar(tar);
        if (archive_read_open(tar, outer, NULL, read_member, NULL) != ARCHIVE_OK)
                die(deb, archive_error_string(tar));
        int rc;
        while ((rc = archive_read_next_header(tar, &entry)) == ARCHIVE_OK) {
                if (archive_entry_filetype(entry) != AE_IFREG)
                        continue;
                unsigned char digest[EVP_MAX_MD_SIZE];
                unsigned int digest_len;
                la_ssize_t n;
                if (!EVP_DigestInit_ex(md, EVP_sha256(), NULL))
                        die("EVP_DigestInit_ex", "failed");
                while ((n = archive_read_data(tar, buf, BUF_SIZE)) > 0) {
                        EVP_DigestUpdate(md, buf, (size_t)n);
                        compress_bytes(buf, (size_t)n, t);
                        t->unpacked += (unsigned long long)n;
                }
                if (n < 0)
                        die(deb, archive_error_string(tar));
                EVP_DigestFinal_ex(md, digest, &digest_len);
                t->files++;
        }
        if (rc != ARCHIVE_EOF)
                die(deb, archive_error_string(tar));
        archive_read_free(tar);
}

int main(int argc, char **argv)
{
        struct totals t = {0};
        unsigned char *buf = malloc(BUF_SIZE);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (argc < 2) {
                fprintf(stderr, "usage: floor DEB...\n");
                return 2;
        }
        if (!buf || !md)
                die("memory", "allocation failed");
        compressor = libdeflate_alloc_compressor(FLOOR_LEVEL);
        group = malloc(FLOOR_GROUP);
        if (!compressor || !group)
                die("libdeflate", "cannot allocate the compressor");
        group_out_cap = libdeflate_gzip_compress_bound(compressor, FLOOR_GROUP);
        if (!(group_out = malloc(group_out_cap)))
                die("memory", "allocation failed");

        for (int i = 1; i < argc; i++) {
                struct archive *ar = archive_read_new();
                struct archive_entry *entry;
                int found = 0;
                archive_read_support_format_ar(ar);
                if (archive_read_open_filename(ar, argv[i], BUF_SIZE) != ARCHIVE_OK)
                        die(argv[i], archive_error_string(ar));
                while (!found && archive_read_next_header(ar, &entry) == ARCHIVE_OK) {
                        if (strncmp(archive_entry_pathname(entry), "data.tar", 8) == 0) {
                                unpack_data_tar(ar, argv[i], md, buf, &t);
                                found = 1;
                        }
                }
                if (!found)
                        die(argv[i], "no data.tar member");
                archive_read_free(ar);
        }
        if (group_len > 0)
                compress_group(&t);

        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                     ru.ru_stime.tv_usec / 1e6;
        printf("debs=%d files=%llu unpacked_bytes=%llu compressed_bytes=%llu cpu_seconds=%.3f\n", argc - 1,
               t.files, t.unpacked, t.compressed, cpu);
        EVP_MD_CTX_free(md);
        libdeflate_free_compressor(compressor);
        free(group_out);
        free(group);
        free(buf);
        return 0;
}
