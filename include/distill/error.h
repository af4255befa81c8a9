/* Error values shared by every stage: a stable code that maps to the exit status,
 * and one message that names the object and the next step. The failing call fills
 * it; callers may prefix context with dl_error_wrap; main prints it once. */
#ifndef DISTILL_ERROR_H
#define DISTILL_ERROR_H

#include <stddef.h>

enum dl_code {
        DL_OK = 0,
        DL_EINTERNAL = 1, /* out of memory, a library failed unexpectedly */
        DL_EUSAGE = 2,    /* bad command line */
        DL_ESPEC = 3,     /* the spec is invalid, or requests what the packages lack */
        DL_ENETWORK = 4,  /* a download failed after retries */
        DL_EVERIFY = 5,   /* a signature, checksum or Release field did not verify */
        DL_ERESOLVE = 6,  /* the package set cannot be satisfied */
        DL_EPACKAGE = 7,  /* a package's contents are unsafe or conflict with another */
        DL_EIO = 8,       /* reading or writing a local file failed */
        DL_ESTALE = 9,    /* the lock file is missing or does not match the spec */
};

struct dl_error {
        enum dl_code code;
        char msg[2048];
};

/* Fill err (if not NULL) and return code, so that callers can write
 * "return dl_fail(err, DL_ESPEC, ...)". */
int dl_fail(struct dl_error *err, enum dl_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix err's message with context ("fetching x: "), keeping its code. */
void dl_error_wrap(struct dl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Map an errno value to a message tail and return DL_EIO. */
int dl_fail_errno(struct dl_error *err, int errnum, const char *what, const char *path);

const char *dl_code_name(enum dl_code code);

#endif
