/* Fuzz target for Packages indexes and relationship fields.
 *
 * The input, written to a file, is the only index that dl_resolve reads for
 * amd64, so libsolv's Packages parser and the resolver both see it. The package
 * named by the first "Package:" line is requested and the one named by the second
 * is excluded, so that the closure walk and the stubs for excluded packages both
 * run. An input without a "Package:" line is resolved with no request.
 *
 * The input split at its first two NUL bytes is also passed to
 * dl_relation_matches as field, package name and version ("1.0" when there is no
 * second NUL), as unpack.c passes a Replaces field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distill/log.h"
#include "distill/resolve.h"
#include "distill/unpack.h"
#include "distill/util.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Return a copy of the value of the n-th (0-based) line that starts with
 * "Package:", up to the first blank, or NULL when there is no such line or its
 * value is empty. */
static char *package_line(const char *text, size_t size, int n)
{
        static const char key[] = "Package:";
        const size_t key_len = sizeof key - 1;
        const char *end = text + size;

        for (const char *line = text; line < end;) {
                const char *eol = memchr(line, '\n', (size_t)(end - line));
                if (eol == NULL)
                        eol = end;
                if ((size_t)(eol - line) >= key_len && memcmp(line, key, key_len) == 0 &&
                    n-- == 0) {
                        const char *v = line + key_len;
                        while (v < eol && (*v == ' ' || *v == '\t'))
                                v++;
                        size_t len = 0;
                        while (v + len < eol && !memchr(" \t\r", v[len], 3) && v[len] != '\0')
                                len++;
                        return len ? dl_strndup(v, len) : NULL;
                }
                line = eol + 1;
        }
        return NULL;
}

static void fuzz_resolve(const uint8_t *data, size_t size)
{
        char *path = dl_path_join(fuzz_scratch_dir(), "Packages");
        fuzz_write_file(path, data, size);

        struct dl_strlist packages = {0}, exclude = {0};
        char *root = package_line((const char *)data, size, 0);
        char *excluded = package_line((const char *)data, size, 1);
        if (root != NULL)
                dl_strlist_push(&packages, root);
        if (excluded != NULL && (root == NULL || strcmp(root, excluded) != 0))
                dl_strlist_push(&exclude, excluded);

        struct dl_index index = {
            .path = path,
            .source = 0,
            .suite = "bookworm",
            .component = "main",
            .release_path = "main/binary-amd64/Packages",
            .sha256 = "0000000000000000000000000000000000000000000000000000000000000000",
        };
        struct dl_resolve_request req = {
            .arch = "amd64",
            .indexes = &index,
            .n_indexes = 1,
            .packages = &packages,
            .exclude = &exclude,
        };
        struct dl_resolution res;
        struct dl_error err;
        /* build.c frees a resolution only when dl_resolve succeeded, so a failed
         * call must leave nothing allocated, which LeakSanitizer checks. */
        if (dl_resolve(&req, &res, &err) == DL_OK)
                dl_resolution_free(&res);

        dl_strlist_free(&packages);
        dl_strlist_free(&exclude);
        free(root);
        free(excluded);
        free(path);
}

static void fuzz_relation(const uint8_t *data, size_t size)
{
        const uint8_t *nul = memchr(data, '\0', size);
        if (nul == NULL)
                return;
        char *field = dl_strndup((const char *)data, (size_t)(nul - data));
        const uint8_t *rest = nul + 1;
        size_t rest_len = size - (size_t)(rest - data);
        const uint8_t *nul2 = memchr(rest, '\0', rest_len);
        char *name = dl_strndup((const char *)rest, nul2 ? (size_t)(nul2 - rest) : rest_len);
        char *version = nul2 ? dl_strndup((const char *)nul2 + 1, rest_len - (size_t)(nul2 + 1 - rest))
                             : dl_strdup("1.0");
        (void)dl_relation_matches(field, name, version);
        free(field);
        free(name);
        free(version);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* Warnings about the input are expected, and printing them slows the run. */
        dl_log_set_level(DL_LOG_ERROR);
        int fd_before = fuzz_lowest_free_fd();
        fuzz_resolve(data, size);
        fuzz_relation(data, size);
        fuzz_check_fds(fd_before, "dl_resolve");
        return 0;
}
