#include "distill/cleanup.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct dl_strlist paths;
static pthread_t watcher;
static volatile int removing; /* set by the watcher while it holds the lock */

static void *watch(void *arg)
{
        sigset_t *set = arg;
        int sig = 0;
        if (sigwait(set, &sig) != 0)
                return NULL;
        /* The lock is held until exit so no other thread registers new files. */
        pthread_mutex_lock(&lock);
        removing = 1;
        for (size_t i = paths.n; i > 0; i--)
                dl_rm_rf(paths.v[i - 1]);
        static const char msg[] = "distill: interrupted; removed temporary files\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
                /* Nothing more to do, because the exit status reports the signal. */
        }
        _exit(128 + sig);
}

int dl_cleanup_init(void)
{
        static sigset_t set;
        pthread_t thread;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
                return -1;
        if (pthread_create(&thread, NULL, watch, &set) != 0)
                return -1;
        watcher = thread;
        pthread_detach(thread);
        return 0;
}

void dl_cleanup_add(const char *path)
{
        pthread_mutex_lock(&lock);
        dl_strlist_push(&paths, path);
        pthread_mutex_unlock(&lock);
}

void dl_cleanup_forget(const char *path)
{
        /* dl_rm_rf calls this; in the watcher, which already holds the lock, the list
         * is being emptied anyway. */
        if (removing && pthread_equal(pthread_self(), watcher))
                return;
        pthread_mutex_lock(&lock);
        removing = 1;
        for (size_t i = paths.n; i > 0; i--)
                if (!strcmp(paths.v[i - 1], path)) {
                        free(paths.v[i - 1]);
                        memmove(&paths.v[i - 1], &paths.v[i], (paths.n - i) * sizeof *paths.v);
                        paths.n--;
                        break;
                }
        if (paths.n == 0)
                dl_strlist_free(&paths);
        pthread_mutex_unlock(&lock);
}
