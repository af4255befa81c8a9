/* Messages on stderr, one format: "distill: LEVEL: text". */
#ifndef DISTILL_LOG_H
#define DISTILL_LOG_H

enum dl_log_level { DL_LOG_ERROR = 0, DL_LOG_WARN = 1, DL_LOG_INFO = 2, DL_LOG_DEBUG = 3 };

void dl_log_set_level(enum dl_log_level level);
enum dl_log_level dl_log_get_level(void);
void dl_log(enum dl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define dl_warn(...)  dl_log(DL_LOG_WARN, __VA_ARGS__)
#define dl_info(...)  dl_log(DL_LOG_INFO, __VA_ARGS__)
#define dl_debug(...) dl_log(DL_LOG_DEBUG, __VA_ARGS__)

#endif
