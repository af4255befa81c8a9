/* Runs LLVMFuzzerTestOneInput once on every input file named on the command
 * line. It replaces libFuzzer's main() in the regression build of the fuzz
 * targets that `make fuzz-regress` runs.
 *
 * Usage: TARGET PATH...
 * For a PATH that is a directory, its regular files are read, not recursively,
 * in byte order of their names, skipping names that start with '.' and README
 * files.
 * Each input runs in its own child process, so that a sanitizer report, an abort
 * or a leak that LeakSanitizer reports at exit fails that input alone. The child
 * gets FUZZ_REGRESS_TIMEOUT seconds (default 60), so that an input that hangs
 * fails instead of stopping `make check`. The output ends with
 * "TARGET: N passed, N failed", and the exit status is 1 when any input failed. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct paths {
        char **v;
        size_t n, cap;
};

static void paths_push(struct paths *p, char *path)
{
        if (p->n == p->cap) {
                p->cap = p->cap ? p->cap * 2 : 64;
                p->v = realloc(p->v, p->cap * sizeof *p->v);
                if (p->v == NULL) {
                        perror("realloc");
                        exit(2);
                }
        }
        p->v[p->n++] = path;
}

static int compare_paths(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add the input files of one command-line argument and return 0. Return -1
 * with a message when it is neither a readable directory nor a regular file. */
static int collect(const char *arg, struct paths *out)
{
        struct stat st;
        if (stat(arg, &st) != 0) {
                fprintf(stderr, "%s: %s\n", arg, strerror(errno));
                return -1;
        }
        if (S_ISREG(st.st_mode)) {
                paths_push(out, strdup(arg));
                return 0;
        }
        DIR *dir = opendir(arg);
        if (dir == NULL) {
                fprintf(stderr, "%s: %s\n", arg, strerror(errno));
                return -1;
        }
        size_t first = out->n;
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
                if (de->d_name[0] == '.' || strncmp(de->d_name, "README", 6) == 0)
                        continue;
                char *path = NULL;
                if (asprintf(&path, "%s/%s", arg, de->d_name) < 0) {
                        perror("asprintf");
                        exit(2);
                }
                if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
                        paths_push(out, path);
                else
                        free(path);
        }
        closedir(dir);
        qsort(out->v + first, out->n - first, sizeof *out->v, compare_paths);
        return 0;
}

/* Read the whole file into a buffer of exactly its size, so that AddressSanitizer
 * reports a read one byte past the input, as it does under libFuzzer. */
static uint8_t *read_input(const char *path, size_t *size)
{
        FILE *f = fopen(path, "rb");
        if (f == NULL || fseek(f, 0, SEEK_END) != 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                exit(2);
        }
        long len = ftell(f);
        rewind(f);
        uint8_t *data = malloc(len > 0 ? (size_t)len : 1);
        if (len < 0 || data == NULL || fread(data, 1, (size_t)len, f) != (size_t)len) {
                fprintf(stderr, "%s: cannot read the file\n", path);
                exit(2);
        }
        fclose(f);
        *size = (size_t)len;
        return data;
}

static unsigned timeout_seconds(void)
{
        const char *s = getenv("FUZZ_REGRESS_TIMEOUT");
        if (s == NULL || *s == '\0')
                return 60;
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (*end != '\0' || v > 86400) {
                fprintf(stderr, "FUZZ_REGRESS_TIMEOUT=%s: expected a number of seconds up to 86400\n",
                        s);
                exit(2);
        }
        return (unsigned)v;
}

/* Run one input in a child process; return 0 when it exited with status 0. */
static int run_one(const char *target, const char *path, unsigned timeout)
{
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                perror("fork");
                exit(2);
        }
        if (pid == 0) {
                alarm(timeout);
                size_t size;
                uint8_t *data = read_input(path, &size);
                LLVMFuzzerTestOneInput(data, size);
                free(data);
                /* exit() runs LeakSanitizer, which fails the child on a leak. */
                exit(0);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        perror("waitpid");
                        exit(2);
                }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
                fprintf(stderr, "FAIL %s %s: timed out after %u s\n", target, path, timeout);
        else if (WIFSIGNALED(status))
                fprintf(stderr, "FAIL %s %s: killed by signal %d (%s)\n", target, path,
                        WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
                fprintf(stderr, "FAIL %s %s: exit status %d\n", target, path, WEXITSTATUS(status));
        return 1;
}

int main(int argc, char **argv)
{
        const char *target = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        unsigned timeout = timeout_seconds();
        struct paths inputs = {0};
        unsigned passed = 0, failed = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s FILE_OR_DIRECTORY...\n", target);
                return 2;
        }
        for (int i = 1; i < argc; i++)
                if (collect(argv[i], &inputs) != 0)
                        failed++;
        for (size_t i = 0; i < inputs.n; i++) {
                if (run_one(target, inputs.v[i], timeout) == 0)
                        passed++;
                else
                        failed++;
                free(inputs.v[i]);
        }
        free(inputs.v);
        printf("%s: %u passed, %u failed\n", target, passed, failed);
        return failed ? 1 : 0;
}
