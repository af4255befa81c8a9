/* Helpers shared by the unit tests: temporary directories, files written from
 * strings, Packages fixtures with generated pool fields, and string checks that
 * print both operands when they fail. Each test binary compiles one .c file, and
 * the helpers are static inline so that a file which uses only some of them
 * still builds under -Werror=unused-function. */
#ifndef DISTILL_TESTUTIL_H
#define DISTILL_TESTUTIL_H

#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <zlib.h>

/* Fail the running test unless needle occurs in haystack. */
#define assert_contains(haystack, needle)                                                          \
        do {                                                                                       \
                const char *tu_h_ = (haystack);                                                    \
                const char *tu_n_ = (needle);                                                      \
                if (tu_h_ == NULL || strstr(tu_h_, tu_n_) == NULL)                                 \
                        fail_msg("expected \"%s\" in: %s", tu_n_, tu_h_ ? tu_h_ : "(null)");       \
        } while (0)

/* Fail the running test unless the package name occurs in haystack as a whole
 * name: "libfoo" does not count inside "libfoo2" or "libfoo-dev". */
#define assert_contains_name(haystack, name)                                                       \
        do {                                                                                       \
                const char *tu_h_ = (haystack);                                                    \
                const char *tu_n_ = (name);                                                        \
                if (!tu_has_name(tu_h_, tu_n_))                                                    \
                        fail_msg("expected package name \"%s\" in: %s", tu_n_,                     \
                                 tu_h_ ? tu_h_ : "(null)");                                        \
        } while (0)

/* Fail the running test if needle occurs in haystack. */
#define assert_not_contains(haystack, needle)                                                      \
        do {                                                                                       \
                const char *tu_h_ = (haystack);                                                    \
                const char *tu_n_ = (needle);                                                      \
                if (tu_h_ != NULL && strstr(tu_h_, tu_n_) != NULL)                                 \
                        fail_msg("did not expect \"%s\" in: %s", tu_n_, tu_h_);                    \
        } while (0)

/* Characters a Debian package name may contain: a-z, 0-9, '+', '-' and '.'. */
static inline int tu_is_name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

/* Return whether name occurs in text with no package-name character on either
 * side. A full stop directly after the name counts as the end of a sentence. */
static inline int tu_has_name(const char *text, const char *name)
{
        if (text == NULL)
                return 0;
        size_t n = strlen(name);
        for (const char *p = strstr(text, name); p != NULL; p = strstr(p + 1, name)) {
                int starts = p == text || !tu_is_name_char(p[-1]);
                const char *after = p + n;
                if (*after == '.')
                        after++;
                if (starts && !tu_is_name_char(*after))
                        return 1;
        }
        return 0;
}

/* Growable NUL-terminated text, kept separate from the library's dl_buf so that
 * fixture construction does not depend on the code under test. */
struct tu_text {
        char *s;
        size_t len, cap;
};

static inline void tu_text_add(struct tu_text *t, const char *s, size_t n)
{
        if (t->len + n + 1 > t->cap) {
                size_t cap = t->cap ? t->cap : 256;
                while (cap < t->len + n + 1)
                        cap *= 2;
                char *p = realloc(t->s, cap);
                assert_non_null(p);
                t->s = p;
                t->cap = cap;
        }
        memcpy(t->s + t->len, s, n);
        t->len += n;
        t->s[t->len] = '\0';
}

static inline void tu_text_puts(struct tu_text *t, const char *s)
{
        tu_text_add(t, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static inline void tu_text_printf(struct tu_text *t,
                                                                        const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        char *tmp = malloc((size_t)n + 1);
        assert_non_null(tmp);
        va_start(ap, fmt);
        vsnprintf(tmp, (size_t)n + 1, fmt, ap);
        va_end(ap);
        tu_text_add(t, tmp, (size_t)n);
        free(tmp);
}

static inline void tu_text_free(struct tu_text *t)
{
        free(t->s);
        t->s = NULL;
        t->len = t->cap = 0;
}

/* Return a malloc'd copy of the formatted string. */
__attribute__((format(printf, 1, 2))) static inline char *tu_asprintf(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *s = NULL;
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        return s;
}

/* Create a fresh directory under $TMPDIR (or /tmp) and return its malloc'd path. */
/* size bytes of xorshift32 output from a seed: data that compresses poorly and in
 * which a changed byte shows. The caller frees it. */
static inline char *tu_noise(size_t size, unsigned seed)
{
        char *p = malloc(size ? size : 1);
        assert_non_null(p);
        uint32_t x = 2463534242u ^ seed;
        for (size_t i = 0; i < size; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p[i] = (char)x;
        }
        return p;
}

static inline char *tu_mkdtemp(void)
{
        const char *base = getenv("TMPDIR");
        if (base == NULL || base[0] == '\0')
                base = "/tmp";
        char *path = tu_asprintf("%s/distill-unit-XXXXXX", base);
        if (mkdtemp(path) == NULL) {
                free(path);
                fail_msg("mkdtemp under %s failed", base);
        }
        return path;
}

static inline int tu_rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        (void)st;
        (void)type;
        (void)ftw;
        return remove(path);
}

/* Remove dir and everything below it without following symbolic links. */
static inline void tu_rm_rf(const char *dir)
{
        if (dir != NULL)
                nftw(dir, tu_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write text to dir/name and return the malloc'd path. */
static inline char *tu_write_file(const char *dir, const char *name, const char *text)
{
        char *path = tu_asprintf("%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        if (f == NULL) {
                free(path);
                fail_msg("cannot create %s/%s", dir, name);
        }
        size_t n = strlen(text);
        size_t written = fwrite(text, 1, n, f);
        int closed = fclose(f);
        assert_int_equal(written, n);
        assert_int_equal(closed, 0);
        return path;
}

/* Derive 64 lowercase hex digits from seed with FNV-1a, so that each fixture
 * package gets a distinct, well-formed SHA256 field. */
static inline void tu_fake_sha256(const char *seed, char out[65])
{
        static const char hex[] = "0123456789abcdef";
        uint64_t h = 0xcbf29ce484222325ULL;
        for (const char *p = seed; *p; p++) {
                h ^= (unsigned char)*p;
                h *= 0x100000001b3ULL;
        }
        for (int i = 0; i < 64; i++) {
                h ^= (uint64_t)i;
                h *= 0x100000001b3ULL;
                out[i] = hex[(h >> 29) & 0xf];
        }
        out[64] = '\0';
}

/* Copy the value of field (such as "Package") out of one stanza, or return NULL. */
static inline char *tu_stanza_field(const char *stanza, size_t len, const char *field)
{
        size_t flen = strlen(field);
        const char *end = stanza + len;
        const char *line = stanza;
        while (line < end) {
                const char *eol = memchr(line, '\n', (size_t)(end - line));
                if (eol == NULL)
                        eol = end;
                if ((size_t)(eol - line) > flen && strncmp(line, field, flen) == 0 &&
                    line[flen] == ':') {
                        const char *v = line + flen + 1;
                        while (v < eol && (*v == ' ' || *v == '\t'))
                                v++;
                        return strndup(v, (size_t)(eol - v));
                }
                line = eol + 1;
        }
        return NULL;
}

/* Append Filename, Size and SHA256 for a stanza, derived from its Package,
 * Version and Architecture. Filename follows the archive's layout,
 * pool/main/P/NAME/NAME_VERSION_ARCH.deb, with the epoch dropped. */
static inline void tu_add_pool_fields(struct tu_text *out, const char *stanza, size_t len)
{
        char *name = tu_stanza_field(stanza, len, "Package");
        char *version = tu_stanza_field(stanza, len, "Version");
        char *arch = tu_stanza_field(stanza, len, "Architecture");
        assert_non_null(name);
        assert_non_null(version);
        assert_non_null(arch);

        const char *upstream = strchr(version, ':');
        upstream = upstream ? upstream + 1 : version;
        char *seed = tu_asprintf("%s_%s_%s", name, version, arch);
        char sha[65];
        tu_fake_sha256(seed, sha);

        tu_text_printf(out, "Filename: pool/main/%c/%s/%s_%s_%s.deb\n", name[0], name, name,
                       upstream, arch);
        tu_text_printf(out, "Size: %zu\n", 1000 + strlen(seed));
        tu_text_printf(out, "SHA256: %s\n", sha);
        free(seed);
        free(name);
        free(version);
        free(arch);
}

/* Write a Packages file to dir/name from stanzas separated by blank lines, and
 * return the malloc'd path. Each stanza needs Package, Version and Architecture.
 * Filename, Size and SHA256 are appended unless the stanza has a Filename. */
static inline char *tu_write_packages(const char *dir, const char *name, const char *stanzas)
{
        struct tu_text out = {0};
        const char *p = stanzas;
        while (*p) {
                while (*p == '\n')
                        p++;
                if (*p == '\0')
                        break;
                const char *end = strstr(p, "\n\n");
                size_t len = end ? (size_t)(end - p) + 1 : strlen(p);
                tu_text_add(&out, p, len);
                if (out.s[out.len - 1] != '\n')
                        tu_text_puts(&out, "\n");
                char *filename = tu_stanza_field(p, len, "Filename");
                if (filename == NULL)
                        tu_add_pool_fields(&out, p, len);
                free(filename);
                tu_text_puts(&out, "\n");
                p += len;
        }
        char *path = tu_write_file(dir, name, out.s ? out.s : "");
        tu_text_free(&out);
        return path;
}

/* Read the whole file at path into a malloc'd buffer with a NUL after the last
 * byte, and store its length in *len. */
static inline unsigned char *tu_read_file(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        if (f == NULL)
                fail_msg("cannot open %s", path);
        size_t cap = 65536, n = 0;
        unsigned char *data = malloc(cap);
        assert_non_null(data);
        for (;;) {
                if (n + 1 >= cap) {
                        cap *= 2;
                        data = realloc(data, cap);
                        assert_non_null(data);
                }
                size_t r = fread(data + n, 1, cap - n - 1, f);
                n += r;
                if (r == 0)
                        break;
        }
        int read_error = ferror(f);
        fclose(f);
        if (read_error)
                fail_msg("cannot read %s", path);
        data[n] = '\0';
        *len = n;
        return data;
}

/* Write the SHA-256 of data as 64 lowercase hex digits plus NUL, computed with
 * OpenSSL directly so that checks do not rely on the library's own hashing. */
static inline void tu_sha256_hex(const void *data, size_t len, char out[65])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL), 1);
        assert_int_equal(md_len, 32);
        for (unsigned i = 0; i < 32; i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 0xf];
        }
        out[64] = '\0';
}

/* Return whether s is 64 lowercase hex digits, the form of a sha256 digest. */
static inline int tu_is_sha256_hex(const char *s)
{
        size_t n = 0;
        for (; s[n]; n++)
                if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
                        return 0;
        return n == 64;
}

/* Decompress one gzip member with zlib into a malloc'd buffer and store its
 * length in *out_len. Fail the test when the data is not exactly one complete
 * gzip member. */
static inline unsigned char *tu_gunzip(const unsigned char *data, size_t len, size_t *out_len)
{
        z_stream z;
        memset(&z, 0, sizeof z);
        /* 16 + MAX_WBITS accepts a gzip wrapper only. */
        assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
        size_t cap = len * 4 + 65536, n = 0;
        unsigned char *out = malloc(cap);
        assert_non_null(out);
        z.next_in = (unsigned char *)data;
        z.avail_in = (uInt)len;
        int zr;
        do {
                if (cap - n < 65536) {
                        cap *= 2;
                        out = realloc(out, cap);
                        assert_non_null(out);
                }
                z.next_out = out + n;
                z.avail_out = (uInt)(cap - n);
                zr = inflate(&z, Z_NO_FLUSH);
                n = cap - z.avail_out;
                if (zr != Z_OK && zr != Z_STREAM_END) {
                        inflateEnd(&z);
                        free(out);
                        fail_msg("gzip data is invalid: zlib returned %d", zr);
                }
        } while (zr != Z_STREAM_END);
        size_t trailing = z.avail_in;
        inflateEnd(&z);
        if (trailing != 0) {
                free(out);
                fail_msg("%zu bytes follow the gzip member", trailing);
        }
        *out_len = n;
        return out;
}

/* Parse a numeric tar header field: octal digits, or base-256 when the first
 * byte has its high bit set (the GNU extension for large values). */
static inline uint64_t tu_tar_number(const unsigned char *field, size_t width)
{
        uint64_t v = 0;
        if (field[0] & 0x80) {
                v = field[0] & 0x7f;
                for (size_t i = 1; i < width; i++)
                        v = (v << 8) | field[i];
                return v;
        }
        size_t i = 0;
        while (i < width && field[i] == ' ')
                i++;
        for (; i < width && field[i] >= '0' && field[i] <= '7'; i++)
                v = v * 8 + (uint64_t)(field[i] - '0');
        return v;
}

/* Return the next 512-byte tar header at *offset and advance *offset past the
 * header and its data, or return NULL at the end-of-archive zero block. Fail the
 * test when the stream ends early or a header checksum is wrong, so that a scan
 * cannot drift out of step with the headers. */
static inline const unsigned char *tu_tar_next_header(const unsigned char *tar, size_t len,
                                                      size_t *offset)
{
        if (*offset + 512 > len)
                fail_msg("tar stream ends at byte %zu without an end-of-archive block", *offset);
        const unsigned char *h = tar + *offset;
        int zero = 1;
        for (int i = 0; i < 512 && zero; i++)
                zero = h[i] == 0;
        if (zero)
                return NULL;
        /* The checksum is the sum of the header bytes with the checksum field
         * (bytes 148-155) counted as spaces. */
        uint64_t sum = 0;
        for (int i = 0; i < 512; i++)
                sum += (i >= 148 && i < 156) ? ' ' : h[i];
        uint64_t stored = tu_tar_number(h + 148, 8);
        if (sum != stored)
                fail_msg("tar header at byte %zu has checksum %llu, computed %llu", *offset,
                         (unsigned long long)stored, (unsigned long long)sum);
        uint64_t size = tu_tar_number(h + 124, 12);
        *offset += 512 + (size_t)((size + 511) / 512 * 512);
        return h;
}

/* Count the tar headers whose typeflag (byte 156) is flag. */
static inline size_t tu_tar_count_typeflag(const unsigned char *tar, size_t len, char flag)
{
        size_t offset = 0, count = 0;
        const unsigned char *h;
        while ((h = tu_tar_next_header(tar, len, &offset)) != NULL)
                if (h[156] == (unsigned char)flag)
                        count++;
        return count;
}

/* Count the entries of dir whose name contains needle (every entry when needle is
 * NULL), not counting "." and "..". */
static inline size_t tu_count_dir_entries(const char *dir, const char *needle)
{
        DIR *d = opendir(dir);
        if (d == NULL)
                fail_msg("cannot open directory %s", dir);
        size_t count = 0;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (needle == NULL || strstr(de->d_name, needle) != NULL)
                        count++;
        }
        closedir(d);
        return count;
}

#endif
