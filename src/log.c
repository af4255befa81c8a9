#include "distill/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum dl_log_level current_level = DL_LOG_INFO;
static struct timespec started;

/* Debug lines carry the seconds since the first log call, so that -v shows where
 * a build spends its time. */
__attribute__((constructor)) static void note_start(void)
{
        clock_gettime(CLOCK_MONOTONIC, &started);
}

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
        if (level == DL_LOG_DEBUG) {
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                double t = (double)(now.tv_sec - started.tv_sec) +
                           (double)(now.tv_nsec - started.tv_nsec) / 1e9;
                fprintf(stderr, "distill: %s[%.3f s] %s\n", prefix[level], t, line);
                return;
        }
        fprintf(stderr, "distill: %s%s\n", prefix[level], line);
}
