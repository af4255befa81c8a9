#include "distill/log.h"

#include <stdarg.h>
#include <stdio.h>

static enum dl_log_level current_level = DL_LOG_INFO;

void dl_log_set_level(enum dl_log_level level)
{
        current_level = level;
}

enum dl_log_level dl_log_get_level(void)
{
        return current_level;
}

void dl_log(enum dl_log_level level, const char *fmt, ...)
{
        static const char *const prefix[] = {"error: ", "warning: ", "", "debug: "};
        char line[4096];
        va_list ap;

        if (level > current_level)
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        /* One fprintf per line keeps lines whole when worker threads log at once. */
        fprintf(stderr, "distill: %s%s\n", prefix[level], line);
}
