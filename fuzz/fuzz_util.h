/* Helpers shared by the fuzz targets: a scratch directory for the current
 * process, whole-file writes, and a check that a run closed every file
 * descriptor it opened. Each target compiles one .c file, so the helpers are
 * static and marked unused where a target may not call them. */
#ifndef DISTILL_FUZZ_UTIL_H
#define DISTILL_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/util.h"

#define FUZZ_UNUSED __attribute__((unused))

/* Abort with a message for a failure of the harness itself, such as a full disk
 * or a missing TMPDIR. libFuzzer records the abort as a crash, and the
 * "fuzz harness:" prefix distinguishes it from a finding in the library. */
FUZZ_UNUSED static void fuzz_die(const char *action, const char *path)
{
        fprintf(stderr, "fuzz harness: %s %s: %s\n", action, path, strerror(errno));
        abort();
}

static char *fuzz_scratch;

static void fuzz_remove_scratch(void)
{
        if (fuzz_scratch != NULL)
                dl_rm_rf(fuzz_scratch);
        free(fuzz_scratch);
        fuzz_scratch = NULL;
}

/* Return a directory under $TMPDIR (or /tmp) that belongs to this process and is
 * removed when it exits normally. It is created on first use, so that the
 * regression driver's parent process, which forks one child per input, never
 * creates one. */
FUZZ_UNUSED static const char *fuzz_scratch_dir(void)
{
        if (fuzz_scratch != NULL)
                return fuzz_scratch;
        struct dl_error err;
        fuzz_scratch = dl_mkdtemp("fuzz", &err);
        if (fuzz_scratch == NULL) {
                fprintf(stderr, "fuzz harness: %s\n", err.msg);
                abort();
        }
        atexit(fuzz_remove_scratch);
        return fuzz_scratch;
}

/* Replace the file at path with size bytes of data. */
FUZZ_UNUSED static void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                fuzz_die("cannot create", path);
        while (size > 0) {
                ssize_t n = write(fd, data, size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        fuzz_die("cannot write", path);
                data += n;
                size -= (size_t)n;
        }
        if (close(fd) != 0)
                fuzz_die("cannot write", path);
}

/* Return the lowest free descriptor, the number the next open() would get. A run
 * that leaks a descriptor takes that number, so the value rises across the run. */
FUZZ_UNUSED static int fuzz_lowest_free_fd(void)
{
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                fuzz_die("cannot open", "/dev/null");
        close(fd);
        return fd;
}

/* Abort when the lowest free descriptor differs from before, the value of
 * fuzz_lowest_free_fd() at the start of the run. libFuzzer records the abort as
 * a crash with the input. A higher value means the run leaked a descriptor, and
 * a lower one means it closed a descriptor that it did not open. */
FUZZ_UNUSED static void fuzz_check_fds(int before, const char *where)
{
        int after = fuzz_lowest_free_fd();
        if (after != before) {
                fprintf(stderr,
                        "fuzz: %s leaked or closed a file descriptor: the lowest free "
                        "descriptor was %d before the run and is %d after it\n",
                        where, before, after);
                abort();
        }
}

#endif
