/* Removal of temporary files and directories when SIGINT, SIGTERM or SIGHUP ends a
 * run, so that an interrupted build leaves no temporary files and no half-written
 * output. A watcher thread receives the signals (they are blocked everywhere else),
 * removes every registered path, and exits with 128 + the signal number. */
#ifndef DISTILL_CLEANUP_H
#define DISTILL_CLEANUP_H

/* Block the signals and start the watcher; call before any other thread exists. */
int dl_cleanup_init(void);
/* Register a path to remove on a signal (a directory is removed recursively). */
void dl_cleanup_add(const char *path);
/* Forget a path, once it is removed or renamed into place. */
void dl_cleanup_forget(const char *path);

#endif
