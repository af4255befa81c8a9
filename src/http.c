#include "distill/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "distill/log.h"

void dl_http_defaults(struct dl_http_options *o)
{
        const char *t = getenv("DISTILL_HTTP_TIMEOUT");
        long stall = t && atol(t) > 0 ? atol(t) : 60;

        o->max_attempts = 4;
        o->connect_timeout = stall < 30 ? stall : 30;
        o->stall_timeout = stall;
        o->max_parallel = 4;
        o->backoff_ms = 500;
}

int dl_http_global_init(struct dl_error *err)
{
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return dl_fail(err, DL_EINTERNAL, "cannot initialize libcurl");
        return DL_OK;
}

/* One transfer in flight: the request, its sink and its retry state. */
struct transfer {
        const char *url;
        const char *path;   /* write the body here, or */
        struct dl_buf *buf; /* into memory */
        FILE *fp;
        CURL *easy;
        int attempt;
        long long not_before_ms;
        bool done;
        int result;
        int write_errno; /* errno of a failed write of the body */
        long status;
        char errbuf[CURL_ERROR_SIZE];
        char message[512];
        struct dl_http_job *job; /* for its on_done, in batches */
};

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t write_body(char *data, size_t size, size_t n, void *user)
{
        struct transfer *t = user;
        size_t len = size * n;
        if (t->buf) {
                dl_buf_append(t->buf, data, len);
                return len;
        }
        size_t written = fwrite(data, 1, len, t->fp);
        if (written != len)
                t->write_errno = errno ? errno : EIO;
        return written;
}

static bool transient_curl_error(CURLcode c)
{
        switch (c) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return true;
        default:
                return false;
        }
}

static bool transient_status(long status)
{
        return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

static int start(const struct dl_http_options *o, CURLM *multi, struct transfer *t,
                 struct dl_error *err)
{
        if (t->path) {
                t->fp = fopen(t->path, "wb");
                if (!t->fp)
                        return dl_fail_errno(err, errno, "cannot create", t->path);
        } else {
                t->buf->len = 0;
        }
        t->errbuf[0] = '\0';
        t->write_errno = 0;
        t->easy = curl_easy_init();
        if (!t->easy)
                return dl_fail(err, DL_EINTERNAL, "cannot create a libcurl handle");
        curl_easy_setopt(t->easy, CURLOPT_URL, t->url);
        curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, write_body);
        curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
        curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
        curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
        curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(t->easy, CURLOPT_MAXREDIRS, 5L);
        /* Redirects may not leave HTTP(S): a server must not send us to file://. */
        curl_easy_setopt(t->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https,file");
        curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT, o->connect_timeout);
        /* A transfer that moves less than one byte a second for stall_timeout seconds
         * counts as stalled; large files on slow links still finish. */
        curl_easy_setopt(t->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(t->easy, CURLOPT_LOW_SPEED_TIME, o->stall_timeout);
        curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "distill/0.1");
        curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
        t->attempt++;
        if (curl_multi_add_handle(multi, t->easy) != CURLM_OK)
                return dl_fail(err, DL_EINTERNAL, "cannot start the download of %s", t->url);
        return DL_OK;
}

static void finish(const struct dl_http_options *o, CURLM *multi, struct transfer *t, CURLcode code)
{
        long status = 0;
        bool transient;

        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(multi, t->easy);
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
        t->status = status;
        if (t->fp) {
                if (fclose(t->fp) != 0 && code == CURLE_OK) {
                        /* Buffered bytes that did not fit on the disk fail here. */
                        t->write_errno = errno ? errno : EIO;
                        code = CURLE_WRITE_ERROR;
                }
                t->fp = NULL;
        }
        if (code == CURLE_OK && (status == 0 || (status >= 200 && status < 300))) {
                t->done = true;
                t->result = DL_OK;
                if (t->job && t->job->on_done)
                        t->job->on_done(t->job, t->job->user);
                return;
        }
        if (code != CURLE_OK) {
                transient = transient_curl_error(code);
                snprintf(t->message, sizeof t->message, "%s",
                         t->errbuf[0] ? t->errbuf : curl_easy_strerror(code));
                if (code == CURLE_WRITE_ERROR) {
                        t->done = true;
                        t->result = DL_EIO;
                        snprintf(t->message, sizeof t->message, "cannot write %s: %s%s",
                                 t->path ? t->path : "the download",
                                 strerror(t->write_errno ? t->write_errno : EIO),
                                 t->write_errno == ENOSPC
                                     ? "; free some space and run the build again"
                                     : "");
                        return;
                }
        } else {
                transient = transient_status(status);
                snprintf(t->message, sizeof t->message, "HTTP status %ld", status);
        }
        if (transient && t->attempt < o->max_attempts) {
                long long delay = o->backoff_ms << (t->attempt - 1);
                dl_warn("download of %s failed (%s); retry %d of %d in %lld ms", t->url, t->message,
                        t->attempt, o->max_attempts - 1, delay);
                t->not_before_ms = now_ms() + delay;
                return;
        }
        t->done = true;
        t->result = DL_ENETWORK;
        if (transient)
                snprintf(t->message + strlen(t->message), sizeof t->message - strlen(t->message),
                         " after %d attempts", t->attempt);
}

static int run(const struct dl_http_options *o, struct transfer *ts, size_t n, struct dl_error *err)
{
        CURLM *multi = curl_multi_init();
        size_t active = 0, finished = 0;
        int rc = DL_OK;

        if (!multi)
                return dl_fail(err, DL_EINTERNAL, "cannot create a libcurl multi handle");
        curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->max_parallel);
        while (finished < n && rc == DL_OK) {
                long long now = now_ms();
                for (size_t i = 0; i < n && active < (size_t)o->max_parallel && rc == DL_OK; i++) {
                        struct transfer *t = &ts[i];
                        if (t->done || t->easy || t->not_before_ms > now)
                                continue;
                        rc = start(o, multi, t, err);
                        if (rc == DL_OK)
                                active++;
                }
                int running;
                curl_multi_perform(multi, &running);
                CURLMsg *msg;
                int left;
                bool freed = false;
                while ((msg = curl_multi_info_read(multi, &left))) {
                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        struct transfer *t;
                        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
                        finish(o, multi, t, msg->data.result);
                        active--;
                        freed = true;
                        if (t->done)
                                finished++;
                }
                /* A transfer that ended left room for the next: start it at once. Waiting
                 * first would wait for the sockets of the transfers still running, or
                 * with none left, the whole timeout (in ms), once per wave of transfers. */
                if (finished < n && !freed)
                        curl_multi_poll(multi, NULL, 0, 100, NULL);
        }
        for (size_t i = 0; i < n; i++) {
                if (ts[i].easy) {
                        curl_multi_remove_handle(multi, ts[i].easy);
                        curl_easy_cleanup(ts[i].easy);
                }
                if (ts[i].fp)
                        fclose(ts[i].fp);
        }
        curl_multi_cleanup(multi);
        return rc;
}

int dl_http_get(const struct dl_http_options *o, const char *url, struct dl_buf *out, long *status,
                struct dl_error *err)
{
        struct transfer t = {.url = url, .buf = out};
        int rc = run(o, &t, 1, err);

        if (status)
                *status = t.status;
        if (rc)
                return rc;
        if (t.result)
                return dl_fail(err, t.result, "download of %s failed: %s", url, t.message);
        dl_buf_str(out);
        return DL_OK;
}

int dl_http_get_many(const struct dl_http_options *o, struct dl_http_job *jobs, size_t n,
                     struct dl_error *err)
{
        struct transfer *ts = dl_calloc(n, sizeof *ts);
        int rc, first = DL_OK;

        for (size_t i = 0; i < n; i++) {
                ts[i].url = jobs[i].url;
                ts[i].path = jobs[i].path;
                ts[i].job = &jobs[i];
        }
        rc = run(o, ts, n, err);
        for (size_t i = 0; i < n && rc == DL_OK; i++) {
                jobs[i].result = ts[i].result;
                jobs[i].status = ts[i].status;
                if (ts[i].result) {
                        jobs[i].error = dl_strdup(ts[i].message);
                        if (!first) {
                                first = ts[i].result;
                                dl_fail(err, first, "download of %s failed: %s", jobs[i].url,
                                        ts[i].message);
                        }
                }
        }
        free(ts);
        return rc ? rc : first;
}
