#include "distill/util.h"

#include "distill/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void out_of_memory(void)
{
        fputs("distill: error: out of memory\n", stderr);
        abort();
}

void *dl_malloc(size_t n)
{
        void *p = malloc(n ? n : 1);
        if (!p)
                out_of_memory();
        return p;
}

void *dl_calloc(size_t n, size_t size)
{
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                out_of_memory();
        return p;
}

void *dl_realloc(void *p, size_t n)
{
        p = realloc(p, n ? n : 1);
        if (!p)
                out_of_memory();
        return p;
}

char *dl_strdup(const char *s)
{
        return dl_strndup(s, strlen(s));
}

char *dl_strndup(const char *s, size_t n)
{
        char *p = dl_malloc(n + 1);
        memcpy(p, s, n);
        p[n] = '\0';
        return p;
}

char *dl_asprintf(const char *fmt, ...)
{
        va_list ap;
        char *s;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                out_of_memory();
        s = dl_malloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
        return s;
}

void dl_strlist_push_owned(struct dl_strlist *l, char *s)
{
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 8;
                l->v = dl_realloc(l->v, l->cap * sizeof *l->v);
        }
        l->v[l->n++] = s;
}

void dl_strlist_push(struct dl_strlist *l, const char *s)
{
        dl_strlist_push_owned(l, dl_strdup(s));
}

bool dl_strlist_contains(const struct dl_strlist *l, const char *s)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i], s) == 0)
                        return true;
        return false;
}

static int compare_strings(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

void dl_strlist_sort(struct dl_strlist *l)
{
        if (l->n > 1)
                qsort(l->v, l->n, sizeof *l->v, compare_strings);
}

void dl_strlist_free(struct dl_strlist *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        l->v = NULL;
        l->n = l->cap = 0;
}

static void buf_reserve(struct dl_buf *b, size_t extra)
{
        if (b->len + extra + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + extra + 1)
                        cap *= 2;
                b->data = dl_realloc(b->data, cap);
                b->cap = cap;
        }
}

void dl_buf_append(struct dl_buf *b, const void *data, size_t n)
{
        buf_reserve(b, n);
        if (n)
                memcpy(b->data + b->len, data, n);
        b->len += n;
        b->data[b->len] = '\0';
}

void dl_buf_puts(struct dl_buf *b, const char *s)
{
        dl_buf_append(b, s, strlen(s));
}

void dl_buf_printf(struct dl_buf *b, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                out_of_memory();
        buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

const char *dl_buf_str(struct dl_buf *b)
{
        buf_reserve(b, 0);
        b->data[b->len] = '\0';
        return b->data;
}

void dl_buf_free(struct dl_buf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

struct dl_sha256 {
        EVP_MD_CTX *ctx;
};

struct dl_sha256 *dl_sha256_new(void)
{
        struct dl_sha256 *h = dl_malloc(sizeof *h);
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
                out_of_memory();
        return h;
}

void dl_sha256_update(struct dl_sha256 *h, const void *data, size_t n)
{
        EVP_DigestUpdate(h->ctx, data, n);
}

static void to_hex(const unsigned char *md, unsigned n, char *hex)
{
        static const char digits[] = "0123456789abcdef";
        for (unsigned i = 0; i < n; i++) {
                hex[2 * i] = digits[md[i] >> 4];
                hex[2 * i + 1] = digits[md[i] & 15];
        }
        hex[2 * n] = '\0';
}

void dl_sha256_final(struct dl_sha256 *h, char hex[DL_SHA256_HEX])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        EVP_DigestFinal_ex(h->ctx, md, &n);
        to_hex(md, n, hex);
        EVP_MD_CTX_free(h->ctx);
        free(h);
}

void dl_sha256_hex(const void *data, size_t n, char hex[DL_SHA256_HEX])
{
        struct dl_sha256 *h = dl_sha256_new();
        dl_sha256_update(h, data, n);
        dl_sha256_final(h, hex);
}

void dl_sha256_raw(const void *data, size_t n, unsigned char out[32])
{
        unsigned len = 0;
        if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
                out_of_memory();
}

int dl_sha256_range(int fd, uint64_t offset, uint64_t size, char hex[DL_SHA256_HEX])
{
        static __thread char block[1 << 16];
        struct dl_sha256 *h = dl_sha256_new();
        while (size > 0) {
                ssize_t n = pread(fd, block, size < sizeof block ? (size_t)size : sizeof block,
                                  (off_t)offset);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int saved = n == 0 ? EIO : errno;
                        dl_sha256_final(h, hex);
                        errno = saved;
                        return -1;
                }
                dl_sha256_update(h, block, (size_t)n);
                offset += (uint64_t)n;
                size -= (uint64_t)n;
        }
        dl_sha256_final(h, hex);
        return 0;
}

int dl_copy_range(int in, uint64_t offset, int out, uint64_t size)
{
        static __thread char block[1 << 16];
        while (size > 0) {
                loff_t at = (loff_t)offset;
                ssize_t n = copy_file_range(in, &at, out, NULL,
                                            (size_t)(size < (1u << 30) ? size : (1u << 30)), 0);
                if (n > 0) {
                        offset += (uint64_t)n;
                        size -= (uint64_t)n;
                        continue;
                }
                if (n == 0 ||
                    (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP))
                        return n == 0 ? (errno = EIO, -1) : -1;
                break; /* not on these file systems: copy through user space */
        }
        while (size > 0) {
                ssize_t r = pread(in, block, size < sizeof block ? (size_t)size : sizeof block,
                                  (off_t)offset);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return r == 0 ? (errno = EIO, -1) : -1;
                if (dl_write_all(out, block, (size_t)r) != 0)
                        return -1;
                offset += (uint64_t)r;
                size -= (uint64_t)r;
        }
        return 0;
}

int dl_sha256_file(const char *path, char hex[DL_SHA256_HEX], uint64_t *size, struct dl_error *err)
{
        char block[65536];
        uint64_t total = 0;
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct dl_sha256 *h;

        if (fd < 0)
                return dl_fail_errno(err, errno, "cannot open", path);
        h = dl_sha256_new();
        while ((n = read(fd, block, sizeof block)) > 0) {
                dl_sha256_update(h, block, (size_t)n);
                total += (uint64_t)n;
        }
        int saved = errno;
        close(fd);
        dl_sha256_final(h, hex);
        if (n < 0)
                return dl_fail_errno(err, saved, "cannot read", path);
        if (size)
                *size = total;
        return DL_OK;
}

bool dl_is_sha256_hex(const char *s)
{
        size_t i;
        for (i = 0; s[i]; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return i == 64;
}

int dl_read_file(const char *path, struct dl_buf *out, struct dl_error *err)
{
        char block[65536];
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return dl_fail_errno(err, errno, "cannot open", path);
        while ((n = read(fd, block, sizeof block)) > 0)
                dl_buf_append(out, block, (size_t)n);
        int saved = errno;
        close(fd);
        if (n < 0)
                return dl_fail_errno(err, saved, "cannot read", path);
        dl_buf_str(out);
        return DL_OK;
}

int dl_write_all(int fd, const void *data, size_t n)
{
        const char *p = data;
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return -1;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

static int write_replace(const char *path, const void *data, size_t n, int mode, bool sync,
                         struct dl_error *err)
{
        char *tmp = dl_asprintf("%s.tmp-XXXXXX", path);
        int fd = mkstemp(tmp);
        int rc = DL_OK;

        if (fd < 0) {
                rc = dl_fail_errno(err, errno, "cannot create", tmp);
                free(tmp);
                return rc;
        }
        dl_cleanup_add(tmp);
        if (dl_write_all(fd, data, n) != 0)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        if (rc == DL_OK && fchmod(fd, (mode_t)mode) != 0)
                rc = dl_fail_errno(err, errno, "cannot set the mode of", tmp);
        if (rc == DL_OK && sync && fsync(fd) != 0)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        if (close(fd) != 0 && rc == DL_OK)
                rc = dl_fail_errno(err, errno, "cannot write", tmp);
        if (rc == DL_OK && rename(tmp, path) != 0)
                rc = dl_fail_errno(err, errno, "cannot rename into", path);
        if (rc != DL_OK)
                unlink(tmp);
        dl_cleanup_forget(tmp);
        free(tmp);
        return rc;
}

int dl_write_file_atomic(const char *path, const void *data, size_t n, int mode,
                         struct dl_error *err)
{
        return write_replace(path, data, n, mode, true, err);
}

int dl_write_file_unsynced(const char *path, const void *data, size_t n, int mode,
                           struct dl_error *err)
{
        return write_replace(path, data, n, mode, false, err);
}

int dl_mkdir_p(const char *path, int mode, struct dl_error *err)
{
        char *copy = dl_strdup(path);
        int rc = DL_OK;

        for (char *p = copy + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;
                *p = '\0';
                if (mkdir(copy, (mode_t)mode) != 0 && errno != EEXIST) {
                        rc = dl_fail_errno(err, errno, "cannot create directory", copy);
                        break;
                }
                *p = saved;
                if (saved == '\0')
                        break;
        }
        free(copy);
        return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        if (flag == FTW_DP || flag == FTW_D)
                return rmdir(path) == 0 || errno == ENOENT ? 0 : 0;
        unlink(path);
        return 0;
}

static int make_writable(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)ftw;
        /* Staged directories keep modes such as 0555; the owner needs write access to
         * empty them. */
        if (flag == FTW_D && (st->st_mode & 0700) != 0700)
                chmod(path, st->st_mode | 0700);
        return 0;
}

int dl_rm_rf(const char *path)
{
        struct stat st;
        dl_cleanup_forget(path);
        if (lstat(path, &st) != 0)
                return errno == ENOENT ? 0 : -1;
        nftw(path, make_writable, 32, FTW_PHYS);
        return nftw(path, remove_entry, 32, FTW_PHYS | FTW_DEPTH);
}

char *dl_mkdtemp(const char *prefix, struct dl_error *err)
{
        const char *base = getenv("TMPDIR");
        char *dir;

        if (!base || !*base)
                base = "/tmp";
        dir = dl_asprintf("%s/distill-%s-XXXXXX", base, prefix);
        if (!mkdtemp(dir)) {
                dl_fail_errno(err, errno, "cannot create a temporary directory in", base);
                free(dir);
                return NULL;
        }
        dl_cleanup_add(dir);
        return dir;
}

char *dl_path_join(const char *a, const char *b)
{
        size_t la = strlen(a);
        while (*b == '/')
                b++;
        if (la && a[la - 1] == '/')
                return dl_asprintf("%s%s", a, b);
        return dl_asprintf("%s/%s", a, b);
}

char *dl_dirname(const char *path)
{
        const char *slash = strrchr(path, '/');
        if (!slash)
                return dl_strdup(".");
        if (slash == path)
                return dl_strdup("/");
        return dl_strndup(path, (size_t)(slash - path));
}

static long long days_from_civil(long long y, unsigned m, unsigned d)
{
        /* Days since 1970-01-01 in the proleptic Gregorian calendar. */
        y -= m <= 2;
        long long era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (long long)doe - 719468;
}

static long long civil_to_epoch(int y, int mo, int d, int h, int mi, int s)
{
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 || h < 0 ||
            mi < 0 || s < 0)
                return -1;
        return days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s;
}

long long dl_parse_snapshot_time(const char *s)
{
        int y, mo, d, h, mi, sec;
        if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
                return -1;
        for (int i = 0; i < 15; i++)
                if (i != 8 && (s[i] < '0' || s[i] > '9'))
                        return -1;
        if (sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &y, &mo, &d, &h, &mi, &sec) != 6)
                return -1;
        return civil_to_epoch(y, mo, d, h, mi, sec);
}

long long dl_parse_rfc2822(const char *s)
{
        static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        char mon[4] = "", zone[16] = "";
        int d, y, h, mi, sec, consumed = 0;
        const char *comma = strchr(s, ',');

        /* "Sat, 11 Jul 2026 10:16:37 UTC": the weekday is optional. */
        if (comma)
                s = comma + 1;
        if (sscanf(s, " %d %3s %d %d:%d:%d %15s%n", &d, mon, &y, &h, &mi, &sec, zone, &consumed) <
            6)
                return -1;
        for (int i = 0; i < 12; i++) {
                if (strcmp(mon, months[i]) != 0)
                        continue;
                long long t = civil_to_epoch(y, i + 1, d, h, mi, sec);
                if (t < 0)
                        return -1;
                if (zone[0] == '+' || zone[0] == '-') {
                        /* RFC 2822 zones are exactly four digits, HHMM. */
                        const char *z = zone + 1;
                        if (strlen(z) != 4 || strspn(z, "0123456789") != 4)
                                return -1;
                        long long hh = (z[0] - '0') * 10 + (z[1] - '0');
                        long long mm = (z[2] - '0') * 10 + (z[3] - '0');
                        if (hh > 23 || mm > 59)
                                return -1;
                        long long off = hh * 3600 + mm * 60;
                        t += zone[0] == '+' ? -off : off;
                } else if (zone[0] && strcmp(zone, "UTC") != 0 && strcmp(zone, "GMT") != 0 &&
                           strcmp(zone, "Z") != 0) {
                        return -1;
                }
                return t;
        }
        return -1;
}

void dl_format_rfc3339(long long t, char out[32])
{
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
