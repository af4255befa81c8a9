#include "distill/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int dl_fail(struct dl_error *err, enum dl_code code, const char *fmt, ...)
{
        if (err) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err->msg, sizeof err->msg, fmt, ap);
                va_end(ap);
                err->code = code;
        }
        return code;
}

void dl_error_wrap(struct dl_error *err, const char *fmt, ...)
{
        char prefix[1024];
        char old[sizeof err->msg];
        va_list ap;

        if (!err)
                return;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        /* A message longer than the buffer is cut; the prefix matters most. */
        size_t n = strlen(prefix);
        if (n > sizeof err->msg - 3)
                n = sizeof err->msg - 3;
        memcpy(err->msg, prefix, n);
        memcpy(err->msg + n, ": ", 2);
        size_t room = sizeof err->msg - n - 3;
        size_t m = strnlen(old, room);
        memcpy(err->msg + n + 2, old, m);
        err->msg[n + 2 + m] = '\0';
}

int dl_fail_errno(struct dl_error *err, int errnum, const char *what, const char *path)
{
        const char *hint = "";

        if (errnum == ENOSPC || errnum == EDQUOT)
                hint = "; free some space and run the build again";
        else if (errnum == EACCES || errnum == EPERM || errnum == EROFS)
                hint = "; check the permissions of that path";
        return dl_fail(err, DL_EIO, "%s %s: %s%s", what, path, strerror(errnum), hint);
}

const char *dl_code_name(enum dl_code code)
{
        switch (code) {
        case DL_OK:
                return "ok";
        case DL_EINTERNAL:
                return "internal error";
        case DL_EUSAGE:
                return "usage error";
        case DL_ESPEC:
                return "invalid spec";
        case DL_ENETWORK:
                return "network error";
        case DL_EVERIFY:
                return "verification failed";
        case DL_ERESOLVE:
                return "unsatisfiable package set";
        case DL_EPACKAGE:
                return "package contents rejected";
        case DL_EIO:
                return "input/output error";
        case DL_ESTALE:
                return "lock file missing or stale";
        }
        return "unknown error";
}
