#include "distill/build.h"

#include <dirent.h>
#include <pthread.h>
#include <jansson.h>
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "distill/cache.h"
#include "distill/cleanup.h"
#include "distill/customize.h"
#include "distill/fetch.h"
#include "distill/fstree.h"
#include "distill/layer.h"
#include "distill/lock.h"
#include "distill/log.h"
#include "distill/oci.h"
#include "distill/resolve.h"
#include "distill/spec.h"
#include "distill/unpack.h"

int dl_source_date_epoch(long long *epoch, struct dl_error *err)
{
        const char *v = getenv("SOURCE_DATE_EPOCH");
        char *end;
        *epoch = -1;
        if (!v)
                return DL_OK;
        errno = 0;
        long long t = strtoll(v, &end, 10);
        if (!*v || *end || errno || t < 0 || t > 253402300799LL)
                return dl_fail(
                    err, DL_EUSAGE,
                    "SOURCE_DATE_EPOCH=\"%s\" is not a number of seconds since 1970-01-01; set it "
                    "to an integer such as $(git log -1 --format=%%ct) or unset it",
                    v);
        *epoch = t;
        return DL_OK;
}

/* Keyring paths in the spec are relative to the spec's directory. */
static void absolutize_keyrings(struct dl_spec *spec)
{
        for (size_t i = 0; i < spec->n_sources; i++) {
                char *k = spec->sources[i].keyring;
                if (k && k[0] != '/') {
                        spec->sources[i].keyring = dl_path_join(spec->dir, k);
                        free(k);
                }
        }
}

static int prepare_rootfs(const char *dir, struct dl_error *err)
{
        DIR *d = opendir(dir);
        if (!d) {
                if (errno == ENOTDIR)
                        return dl_fail(err, DL_EUSAGE,
                                       "--rootfs %s is not a directory; name a new or empty "
                                       "directory",
                                       dir);
                if (errno != ENOENT)
                        return dl_fail_errno(err, errno, "cannot open", dir);
                return dl_mkdir_p(dir, 0755, err);
        }
        struct dirent *e;
        int rc = DL_OK;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                        rc =
                            dl_fail(err, DL_EUSAGE,
                                    "--rootfs %s is not empty; name a new or empty directory", dir);
                        break;
                }
        closedir(d);
        return rc;
}

/* Merged /usr: the top-level directories that Debian moved into /usr are symlinks.
 * bin, sbin and lib always; lib32, lib64 and libx32 only where a package ships files
 * there. */
static int add_merged_usr_links(struct dl_fstree *t, bool before, struct dl_error *err)
{
        static const char *const always[] = {"bin", "sbin", "lib", NULL};
        static const char *const optional[] = {"lib32", "lib64", "libx32", NULL};
        int rc = DL_OK;
        const char *const *names = before ? always : optional;
        for (int i = 0; names[i] && rc == DL_OK; i++) {
                char *usr = dl_asprintf("usr/%s", names[i]);
                const struct dl_node *n = dl_fstree_get(t, usr);
                if (before && (!n || n->removed))
                        rc = dl_fstree_add_dir(t, usr, 0755, 0, 0, -1, err);
                if (rc == DL_OK && (before || (n && !n->removed)))
                        rc = dl_fstree_add_symlink(t, names[i], usr, -1, err);
                free(usr);
        }
        return rc;
}

/* Unpacking packages on several threads, ahead of the merge, which takes them in
 * order. Each job leaves its package's record in the cache as one file,
 * unpacked/KEY: the file contents, then the record, then a trailer. Creating
 * files costs more than writing them, hence one file. Later builds with the same
 * unpack options find the record, so a build after a change unpacks only the
 * packages that changed. */
struct unpack_job {
        const char *sha256; /* of the .deb (borrowed) */
        char *deb;
        char *what;
        uint64_t size; /* of the .deb: the largest start first */
        struct dl_deb_record rec;
        int fd; /* the data file, open for reading */
        bool cached;
        bool ready; /* the .deb is in the cache */
        int state;  /* 0 waiting, 1 running, 2 done, 3 failed */
        struct dl_error err;
};

struct unpack_pool {
        struct unpack_job *jobs;
        size_t n;
        size_t *order; /* job indexes, largest .deb first */
        size_t started;
        bool stopping;
        struct dl_unpack_options opts;
        char *options_key; /* the options, as they enter each record's key */
        const struct dl_cache *cache;
        pthread_mutex_t lock;
        pthread_cond_t work, done;
        pthread_t *threads;
        int n_threads;
};

/* The cache key of a job's record: the .deb's digest with the unpack options. */
static void record_key(const struct unpack_pool *p, const struct unpack_job *j,
                       char key[DL_SHA256_HEX])
{
        struct dl_sha256 *h = dl_sha256_new();
        dl_sha256_update(h, j->sha256, strlen(j->sha256));
        dl_sha256_update(h, p->options_key, strlen(p->options_key));
        dl_sha256_final(h, key);
}

/* The cache path of a job's record. */
static char *record_path(const struct unpack_pool *p, const struct unpack_job *j)
{
        char key[DL_SHA256_HEX];
        record_key(p, j, key);
        return dl_asprintf("%s/unpacked/%s", p->cache->dir, key);
}

/* The trailer of a record file: the record's length in bytes (u64, little-endian)
 * and this mark. */
static const char record_end[8] = "DLRECEND";
#define TRAILER 16

/* Whether every regular file of a record has the CRC-32 the record gives it. The
 * layer takes its bytes from the data file while it may copy the gzip members of
 * an earlier layer keyed by where the contents come from, so damaged contents
 * must not pass. A CRC-32 finds damage, which is what a local cache suffers; the
 * record's key binds the contents to the .deb's SHA-256. */
static bool record_contents_match(const struct dl_deb_record *rec, int fd)
{
        static __thread unsigned char block[1 << 17];
        for (size_t i = 0; i < rec->n_entries; i++) {
                const struct dl_deb_entry *en = &rec->entries[i];
                if (en->filtered || en->type != DL_NODE_FILE)
                        continue;
                uint32_t crc = 0;
                uint64_t off = en->offset, left = en->size;
                while (left > 0) {
                        ssize_t r =
                            pread(fd, block, left < sizeof block ? (size_t)left : sizeof block,
                                  (off_t)off);
                        if (r <= 0)
                                break;
                        crc = (uint32_t)libdeflate_crc32(crc, block, (size_t)r);
                        off += (uint64_t)r;
                        left -= (uint64_t)r;
                }
                if (left > 0 || crc != en->crc32)
                        return false;
        }
        return true;
}

/* Load a job's record from the cache. Returns false when it is missing or damaged. */
static bool load_record(const struct unpack_pool *p, struct unpack_job *j)
{
        char *path = record_path(p, j);
        struct stat st;
        unsigned char trailer[TRAILER];
        bool ok = false;
        j->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (j->fd < 0) {
                free(path);
                return false;
        }
        if (fstat(j->fd, &st) == 0 && st.st_size >= TRAILER &&
            pread(j->fd, trailer, TRAILER, st.st_size - TRAILER) == TRAILER &&
            memcmp(trailer + 8, record_end, sizeof record_end) == 0) {
                uint64_t len = 0;
                for (int i = 0; i < 8; i++)
                        len |= (uint64_t)trailer[i] << (8 * i);
                uint64_t end = (uint64_t)st.st_size - TRAILER;
                /* A record of a gigabyte is damaged, not real. */
                char *bytes = NULL;
                if (len <= end && len < (1u << 30))
                        bytes = dl_malloc(len ? len : 1);
                struct dl_error ignored;
                ok = bytes && pread(j->fd, bytes, len, (off_t)(end - len)) == (ssize_t)len &&
                     dl_deb_record_load(bytes, len, &j->rec, &ignored) == DL_OK;
                free(bytes);
                ok = ok && j->rec.data_size == end - len && record_contents_match(&j->rec, j->fd);
        }
        if (!ok) {
                dl_warn("%s: its unpacked record in the cache (%s) is damaged; unpacking the "
                        "package again",
                        j->what, path);
                close(j->fd);
                j->fd = -1;
                dl_deb_record_free(&j->rec);
        }
        free(path);
        return ok;
}

/* Unpack a job's .deb into a new record and store it in the cache. */
static int unpack_job(const struct unpack_pool *p, struct unpack_job *j)
{
        char *tmp = dl_cache_tmp_path(p->cache);
        int rc;
        j->fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (j->fd < 0) {
                rc = dl_fail_errno(&j->err, errno, "cannot create", tmp);
                free(tmp);
                return rc;
        }
        rc = dl_deb_read(j->deb, j->what, &p->opts, j->fd, &j->rec, &j->err);
        if (rc == DL_OK) {
                struct dl_buf b = {0};
                dl_deb_record_save(&j->rec, &b);
                unsigned char trailer[TRAILER];
                for (int i = 0; i < 8; i++)
                        trailer[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
                memcpy(trailer + 8, record_end, sizeof record_end);
                dl_buf_append(&b, trailer, sizeof trailer);
                char *path = record_path(p, j);
                /* A cache that cannot take the record costs only its reuse. */
                if (dl_write_all(j->fd, b.data, b.len) != 0 || rename(tmp, path) != 0)
                        unlink(tmp);
                free(path);
                dl_buf_free(&b);
        } else {
                unlink(tmp);
        }
        dl_cleanup_forget(tmp);
        free(tmp);
        return rc;
}

/* The first job whose .deb is ready and that no thread has taken, in the queue's
 * order, or NULL when there is none now. Called with the lock held. */
static struct unpack_job *next_job(struct unpack_pool *p)
{
        for (size_t k = 0; k < p->n; k++) {
                struct unpack_job *j = &p->jobs[p->order[k]];
                if (j->state == 0 && j->ready)
                        return j;
        }
        return NULL;
}

static void *unpack_worker(void *arg)
{
        struct unpack_pool *p = arg;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                struct unpack_job *j = next_job(p);
                if (!j) {
                        /* Without threads, pool_ready calls this for the jobs ready now. */
                        if (p->stopping || p->started == p->n || p->n_threads == 0)
                                break;
                        pthread_cond_wait(&p->work, &p->lock);
                        continue;
                }
                j->state = 1;
                p->started++;
                pthread_mutex_unlock(&p->lock);
                j->cached = load_record(p, j);
                int rc = j->cached ? DL_OK : unpack_job(p, j);
                if (rc == DL_OK)
                        record_key(p, j, j->rec.id);
                pthread_mutex_lock(&p->lock);
                j->state = rc ? 3 : 2;
                pthread_cond_broadcast(&p->done);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* A .deb is in the cache: its job may start. */
static void pool_ready(void *user, const char *sha256)
{
        struct unpack_pool *p = user;
        pthread_mutex_lock(&p->lock);
        for (size_t i = 0; i < p->n; i++)
                if (!strcmp(p->jobs[i].sha256, sha256))
                        p->jobs[i].ready = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
        if (p->n_threads == 0) {
                /* No thread could start: do the work here. */
                unpack_worker(p);
        }
}

/* Wait for the job of a package and return it, or NULL with err on failure. */
static const struct unpack_job *pool_wait(struct unpack_pool *p, const char *sha256,
                                          struct dl_error *err)
{
        for (size_t i = 0; i < p->n; i++) {
                if (strcmp(p->jobs[i].sha256, sha256))
                        continue;
                pthread_mutex_lock(&p->lock);
                while (p->jobs[i].state < 2)
                        pthread_cond_wait(&p->done, &p->lock);
                int state = p->jobs[i].state;
                pthread_mutex_unlock(&p->lock);
                if (state == 3) {
                        *err = p->jobs[i].err;
                        return NULL;
                }
                return &p->jobs[i];
        }
        dl_fail(err, DL_EINTERNAL, "no unpack job for %s", sha256);
        return NULL;
}

static void pool_stop(struct unpack_pool *p)
{
        pthread_mutex_lock(&p->lock);
        p->stopping = true; /* no new jobs start */
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
        for (int i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        size_t reused = 0;
        for (size_t i = 0; i < p->n; i++) {
                struct unpack_job *j = &p->jobs[i];
                reused += j->cached;
                if (j->fd >= 0)
                        close(j->fd);
                dl_deb_record_free(&j->rec);
                free(j->deb);
                free(j->what);
        }
        if (reused)
                dl_debug("unpack: %zu of %zu packages reused from the cache", reused, p->n);
        free(p->jobs);
        free(p->order);
        free(p->threads);
        free(p->options_key);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->done);
}

static struct dl_deb_control control_copy(const struct dl_deb_control *c)
{
        struct dl_deb_control out = {0};
        out.control = c->control ? dl_strdup(c->control) : NULL;
        out.md5sums = c->md5sums ? dl_strdup(c->md5sums) : NULL;
        out.conffiles = c->conffiles ? dl_strdup(c->conffiles) : NULL;
        out.postinst = c->postinst ? dl_strdup(c->postinst) : NULL;
        for (size_t i = 0; i < c->scripts.n; i++)
                dl_strlist_push(&out.scripts, c->scripts.v[i]);
        return out;
}

/* One platform of the image: its packages and the tree and layer made from them. */
struct platform {
        const char *arch;
        struct dl_sources sources;
        struct dl_resolution res;
        struct dl_deb_control *ctls;
        struct dl_fstree tree;
        bool have_tree;
        char *rootfs;
        char *layer_path;
        uint64_t layer_offset; /* where the blob starts in layer_path */
        struct dl_layer layer;
        bool ca_bundle;
        struct dl_oci_stream *stream; /* the output, when the layer goes straight into it */
};

/* State of one command, released in one place. */
struct build {
        struct dl_spec spec;
        struct dl_cache cache;
        struct dl_accounts accounts;
        struct dl_http_options http;
        struct dl_lock lock;
        bool have_lock;
        struct unpack_pool *pool;
        struct platform *platforms;
        size_t n_platforms;
        char *workdir;
        char *lock_path;
};

static void build_free(struct build *b)
{
        for (size_t p = 0; p < b->n_platforms; p++) {
                struct platform *pl = &b->platforms[p];
                for (size_t i = 0; pl->ctls && i < pl->res.n_packages; i++)
                        dl_deb_control_free(&pl->ctls[i]);
                free(pl->ctls);
                if (pl->have_tree)
                        dl_fstree_free(&pl->tree);
                dl_resolution_free(&pl->res);
                dl_sources_free(&pl->sources);
                free(pl->rootfs);
                free(pl->layer_path);
                dl_layer_free(&pl->layer);
        }
        free(b->platforms);
        if (b->have_lock)
                dl_lock_free(&b->lock);
        dl_cache_close(&b->cache);
        dl_accounts_free(&b->accounts);
        dl_spec_free(&b->spec);
        if (b->workdir) {
                dl_rm_rf(b->workdir);
                free(b->workdir);
        }
        free(b->lock_path);
}

/* Load the spec, the cache and the per-architecture platforms. */
static int build_open(struct build *b, const struct dl_build_options *o, struct dl_error *err)
{
        int rc;
        memset(b, 0, sizeof *b);
        if ((rc = dl_spec_load(o->spec_path, &b->spec, err)))
                return rc;
        absolutize_keyrings(&b->spec);
        b->lock_path = dl_lock_path(o->spec_path);
        b->n_platforms = b->spec.architectures.n;
        b->platforms = dl_calloc(b->n_platforms, sizeof *b->platforms);
        for (size_t i = 0; i < b->n_platforms; i++)
                b->platforms[i].arch = b->spec.architectures.v[i];
        if (!(b->workdir = dl_mkdtemp("build", err)))
                return err->code;
        if ((rc = dl_cache_open(&b->cache, o->cache_dir, err)) || (rc = dl_http_global_init(err)))
                return rc;
        dl_http_defaults(&b->http);
        if (o->jobs > 0)
                b->http.max_parallel = o->jobs;
        return DL_OK;
}

/* Refuse a Release older than the one the existing lock was made from: a mirror (or
 * an attacker) replaying old, validly signed metadata would roll packages back to
 * versions with known flaws. */
static int check_replay(struct build *b, const struct dl_sources *src, struct dl_error *err)
{
        struct dl_lock lock;
        bool missing;
        struct dl_error ignored;
        const struct dl_lock *l = b->have_lock ? &b->lock : NULL;
        if (!l) {
                if (dl_lock_read(b->lock_path, &b->spec, &lock, &missing, &ignored) != DL_OK)
                        return DL_OK;
                l = &lock;
        }
        int rc = DL_OK;
        for (size_t i = 0; i < src->n_releases && rc == DL_OK; i++) {
                const struct dl_release *r = &src->releases[i];
                char *key = dl_asprintf("%s %s", b->spec.sources[r->source].url, r->spec_suite);
                const char *locked = dl_keyvals_get(&l->release_dates, key);
                long long then = locked ? atoll(locked) : -1;
                if (r->date >= 0 && then >= 0 && r->date < then) {
                        char was[32], now[32];
                        dl_format_rfc3339(then, was);
                        dl_format_rfc3339(r->date, now);
                        rc = dl_fail(
                            err, DL_EVERIFY,
                            "source %s, suite %s: the Release is dated %s, older than the %s that "
                            "%s was made from; the server may be replaying old metadata. Use an "
                            "up-to-date mirror, or delete the lock to accept it",
                            b->spec.sources[r->source].url, r->spec_suite, now, was, b->lock_path);
                }
                free(key);
        }
        if (l == &lock)
                dl_lock_free(&lock);
        return rc;
}

/* Read the indexes of every architecture and resolve each on its own. A package
 * that one architecture has and another lacks is named with both. */
static int resolve_all(struct build *b, const struct dl_build_options *o, struct dl_error *err)
{
        struct dl_sources_options so = {.mirrors = &o->mirrors,
                                        .http = &b->http,
                                        .cache = &b->cache,
                                        .now = (long long)time(NULL)};
        int rc = DL_OK;
        for (size_t i = 0; i < b->n_platforms && rc == DL_OK; i++) {
                struct platform *pl = &b->platforms[i];
                rc = dl_sources_load(&b->spec, pl->arch, &so, &pl->sources, err);
                if (rc == DL_OK)
                        rc = check_replay(b, &pl->sources, err);
        }
        for (size_t i = 0; i < b->n_platforms && rc == DL_OK; i++) {
                struct platform *pl = &b->platforms[i];
                struct dl_strlist roots = {0};
                dl_spec_packages_for(&b->spec, pl->arch, &roots);
                char *solv_cache = dl_path_join(b->cache.dir, "solv");
                struct dl_resolve_request req = {.arch = pl->arch,
                                                 .solv_cache = solv_cache,
                                                 .indexes = pl->sources.indexes,
                                                 .n_indexes = pl->sources.n_indexes,
                                                 .packages = &roots,
                                                 .exclude = &b->spec.exclude};
                rc = dl_resolve(&req, &pl->res, err);
                dl_strlist_free(&roots);
                if (rc == DL_ERESOLVE && b->n_platforms > 1) {
                        /* Name the architectures that do have a missing root. */
                        char *saved = dl_strdup(err->msg);
                        for (size_t k = 0; k < b->spec.packages.n; k++) {
                                const char *name = b->spec.packages.v[k];
                                if (!strstr(saved, name) || !strstr(saved, "not found"))
                                        continue;
                                for (size_t q = 0; q < b->n_platforms; q++) {
                                        if (q == i)
                                                continue;
                                        struct dl_strlist one = {0};
                                        struct dl_resolution tmp;
                                        struct dl_error ignored;
                                        dl_strlist_push(&one, name);
                                        struct dl_resolve_request r2 = req;
                                        r2.arch = b->platforms[q].arch;
                                        r2.indexes = b->platforms[q].sources.indexes;
                                        r2.n_indexes = b->platforms[q].sources.n_indexes;
                                        r2.packages = &one;
                                        if (dl_resolve(&r2, &tmp, &ignored) == DL_OK) {
                                                dl_fail(err, DL_ERESOLVE,
                                                        "package %s: available for %s, not %s; "
                                                        "limit it with {name: %s, architectures: "
                                                        "[%s]} in packages",
                                                        name, b->platforms[q].arch, pl->arch, name,
                                                        b->platforms[q].arch);
                                                dl_resolution_free(&tmp);
                                                q = b->n_platforms;
                                                k = b->spec.packages.n;
                                        }
                                        dl_strlist_free(&one);
                                }
                        }
                        free(saved);
                }
                free(solv_cache);
                if (rc == DL_OK) {
                        dl_info("resolved %zu packages for %s", pl->res.n_packages, pl->arch);
                        for (size_t k = 0; k < pl->res.unmet.n; k++)
                                dl_info("left unmet by exclude (%s): %s", pl->arch,
                                        pl->res.unmet.v[k]);
                }
        }
        return rc;
}

/* Take each architecture's packages from the lock. */
static int use_lock(struct build *b, struct dl_error *err)
{
        for (size_t i = 0; i < b->n_platforms; i++) {
                struct platform *pl = &b->platforms[i];
                struct dl_lock_arch *la = NULL;
                for (size_t k = 0; k < b->lock.n_archs; k++)
                        if (!strcmp(b->lock.archs[k].arch, pl->arch))
                                la = &b->lock.archs[k];
                if (!la)
                        return dl_fail(err, DL_ESTALE,
                                       "%s has no packages for %s; run distill lock %s",
                                       b->lock_path, pl->arch, b->spec.path);
                for (size_t k = 0; k < la->res.n_packages; k++)
                        if (la->res.packages[k].source < 0)
                                return dl_fail(err, DL_ESTALE,
                                               "%s: package %s comes from a source the spec does "
                                               "not list; run distill lock %s",
                                               b->lock_path, la->res.packages[k].name,
                                               b->spec.path);
                pl->res = la->res;
                memset(&la->res, 0, sizeof la->res);
                dl_info("using %zu locked packages for %s from %s", pl->res.n_packages, pl->arch,
                        b->lock_path);
        }
        return DL_OK;
}

/* Decide between the lock and a fresh resolution. */
static int load_lock(struct build *b, const struct dl_build_options *o, bool *use,
                     struct dl_error *err)
{
        bool missing;
        char digest[DL_SHA256_HEX];
        int rc = dl_lock_read(b->lock_path, &b->spec, &b->lock, &missing, err);

        *use = false;
        if (o->no_lock && !o->locked && !o->offline) {
                if (rc == DL_OK)
                        dl_lock_free(&b->lock);
                dl_info("--no-lock: resolving afresh");
                return DL_OK;
        }
        if (rc && missing) {
                if (o->locked || o->offline)
                        return dl_fail(
                            err, DL_ESTALE, "%s: no lock file %s; run distill lock %s first",
                            o->locked ? "--locked" : "--offline", b->lock_path, b->spec.path);
                return DL_OK;
        }
        if (rc)
                return rc;
        b->have_lock = true;
        dl_lock_inputs_digest(&b->spec, digest);
        if (strcmp(digest, b->lock.inputs_digest) != 0) {
                char *drift = dl_lock_describe_drift(&b->lock, &b->spec);
                if (o->locked || o->offline) {
                        rc = dl_fail(err, DL_ESTALE,
                                     "%s: %s does not match %s: %s; run distill lock %s",
                                     o->locked ? "--locked" : "--offline", b->lock_path,
                                     b->spec.path, drift, b->spec.path);
                } else {
                        dl_warn("%s is stale (%s); resolving afresh without rewriting it. Run "
                                "distill lock %s to update it",
                                b->lock_path, drift, b->spec.path);
                }
                free(drift);
                return rc;
        }
        *use = true;
        return DL_OK;
}

static int unpack_platform(struct build *b, struct platform *pl, struct dl_error *err)
{
        size_t n = pl->res.n_packages;
        const char **names = dl_calloc(n, sizeof *names);
        const char **versions = dl_calloc(n, sizeof *versions);
        char **replaces = dl_calloc(n, sizeof *replaces);
        struct dl_unpack_context ctx = {.tree = &pl->tree,
                                        .merged_usr = b->spec.merged_usr,
                                        .max_file_size = b->spec.max_file_size,
                                        .paths_exclude = &b->spec.paths_exclude,
                                        .paths_include = &b->spec.paths_include,
                                        .allow_overwrite = &b->spec.allow_overwrite,
                                        .names = names,
                                        .versions = versions,
                                        .replaces = replaces};
        int rc = DL_OK;

        pl->ctls = dl_calloc(n, sizeof *pl->ctls);
        for (size_t i = 0; i < n; i++) {
                names[i] = pl->res.packages[i].name;
                versions[i] = pl->res.packages[i].version;
        }
        if (b->spec.merged_usr)
                rc = add_merged_usr_links(&pl->tree, true, err);
        for (size_t i = 0; i < n && rc == DL_OK; i++) {
                const struct unpack_job *j = pool_wait(b->pool, pl->res.packages[i].sha256, err);
                int fd = j ? dup(j->fd) : -1;
                if (!j)
                        rc = err->code;
                else if (fd < 0)
                        rc = dl_fail_errno(err, errno, "cannot open the unpacked contents of",
                                           j->what);
                if (rc)
                        break;
                pl->ctls[i] = control_copy(&j->rec.ctl);
                rc = dl_unpack_merge(&ctx, (int)i, &j->rec, dl_fstree_add_blob(&pl->tree, fd), err);
        }
        if (rc == DL_OK && b->spec.merged_usr)
                rc = add_merged_usr_links(&pl->tree, false, err);
        if (rc == DL_OK && ctx.n_filtered)
                dl_info("paths: dropped %zu package entries for %s", ctx.n_filtered, pl->arch);
        for (size_t i = 0; i < n; i++)
                free(replaces[i]);
        free(replaces);
        free(names);
        free(versions);
        return rc;
}

/* The key of a platform's finished layer: everything its bytes depend on. The
 * running binary's own digest stands for distill's version, so any change of code
 * misses. A spec that copies local files (files.source) has no key: those files
 * may change without the spec changing. */
static char *layer_key(const struct build *b, const struct platform *pl, long long epoch)
{
        static char exe[DL_SHA256_HEX];
        struct dl_error ignored;
        if (!exe[0] && dl_sha256_file("/proc/self/exe", exe, NULL, &ignored) != DL_OK)
                return NULL;
        for (size_t i = 0; i < b->spec.n_files; i++)
                if (b->spec.files[i].source)
                        return NULL;
        struct dl_buf spec_text = {0};
        if (dl_read_file(b->spec.path, &spec_text, &ignored) != DL_OK) {
                dl_buf_free(&spec_text);
                return NULL;
        }
        struct dl_sha256 *h = dl_sha256_new();
        char line[256];
        snprintf(line, sizeof line, "distill %s\narch %s\nepoch %lld\n", exe, pl->arch, epoch);
        dl_sha256_update(h, line, strlen(line));
        dl_sha256_update(h, spec_text.data, spec_text.len);
        for (size_t i = 0; i < pl->res.n_packages; i++) {
                const struct dl_package *p = &pl->res.packages[i];
                dl_sha256_update(h, p->sha256, strlen(p->sha256));
                dl_sha256_update(h, "\n", 1);
        }
        dl_buf_free(&spec_text);
        char hex[DL_SHA256_HEX];
        dl_sha256_final(h, hex);
        return dl_asprintf("%s/layers/%s.json", b->cache.dir, hex);
}

/* The check of a finished layer's record: the SHA-256 of its other fields, so that
 * a damaged diff_id or size is noticed instead of written into an image. */
static void layer_check(const struct dl_layer *l, bool ca_bundle, char hex[DL_SHA256_HEX])
{
        char *text =
            dl_asprintf("%s %s %llu %llu %d", l->digest, l->diff_id, (unsigned long long)l->size,
                        (unsigned long long)l->tar_size, ca_bundle);
        dl_sha256_hex(text, strlen(text), hex);
        free(text);
}

/* Take a platform's finished layer from the cache when its key is there. */
static bool reuse_layer(struct build *b, struct platform *pl, long long epoch)
{
        char *key = layer_key(b, pl, epoch);
        json_t *j = key ? json_load_file(key, 0, NULL) : NULL;
        const char *digest = j ? json_string_value(json_object_get(j, "digest")) : NULL;
        const char *diff = j ? json_string_value(json_object_get(j, "diff_id")) : NULL;
        const char *check = j ? json_string_value(json_object_get(j, "check")) : NULL;
        struct dl_layer l = {0};
        bool ca_bundle = json_is_true(json_object_get(j, "ca_bundle"));
        char want[DL_SHA256_HEX];
        bool ok = digest && diff && check && dl_is_sha256_hex(digest) && dl_is_sha256_hex(diff);
        if (ok) {
                memcpy(l.digest, digest, DL_SHA256_HEX);
                memcpy(l.diff_id, diff, DL_SHA256_HEX);
                l.size = (uint64_t)json_integer_value(json_object_get(j, "size"));
                l.tar_size = (uint64_t)json_integer_value(json_object_get(j, "tar_size"));
                layer_check(&l, ca_bundle, want);
                ok = strcmp(want, check) == 0;
        }
        if (j && !ok) {
                dl_warn("the finished layer record %s is damaged; removing it and building the "
                        "layer again",
                        key);
                unlink(key);
        }
        /* A damaged blob is reported by the check, naming its cache entry; a blob
         * that is gone (a cache partly cleaned) only means building again. */
        struct dl_cache_blob blob = {0};
        bool record_ok = ok;
        ok = ok && dl_cache_blob_valid(&b->cache, digest) &&
             dl_cache_blob_find(&b->cache, digest, &blob) && blob.size == l.size;
        if (record_ok && !ok)
                dl_info("the finished %s layer is no longer in the cache; building it again",
                        pl->arch);
        if (ok) {
                pl->layer = l;
                pl->ca_bundle = ca_bundle;
                pl->layer_path = blob.path;
                pl->layer_offset = blob.offset;
                blob.path = NULL;
                dl_info("reusing the finished %s layer from the cache", pl->arch);
        }
        dl_cache_blob_free(&blob);
        json_decref(j);
        free(key);
        return ok;
}

/* Keep a platform's finished layer in the cache. Its blob is in the image archive
 * output, and the cache links that file. The member list lets later builds copy
 * members, and the record under the layer's key serves the next build with the
 * same inputs. */
static int store_layer(struct build *b, struct platform *pl, long long epoch, const char *output,
                       bool reused, struct dl_error *err)
{
        if (reused) {
                /* The cache has the blob. An output on the cache's file system takes
                 * the place of the archive it links, so one file serves both. An
                 * output elsewhere is not copied again. */
                struct stat out, cache;
                if (dl_cache_has(&b->cache, pl->layer.digest) || stat(output, &out) != 0 ||
                    stat(b->cache.dir, &cache) != 0 || out.st_dev != cache.st_dev)
                        return DL_OK;
                return dl_cache_store_blob_of(&b->cache, output, pl->layer.digest, err);
        }
        int rc = dl_cache_store_blob_of(&b->cache, output, pl->layer.digest, err);
        if (rc)
                return rc;
        dl_member_index_store(&b->cache, &pl->layer);
        char *key = layer_key(b, pl, epoch);
        char *dir = key ? dl_dirname(key) : NULL;
        if (key && (rc = dl_mkdir_p(dir, 0755, err)) == DL_OK) {
                json_t *j = json_object();
                json_object_set_new(j, "digest", json_string(pl->layer.digest));
                json_object_set_new(j, "diff_id", json_string(pl->layer.diff_id));
                json_object_set_new(j, "size", json_integer((json_int_t)pl->layer.size));
                json_object_set_new(j, "tar_size", json_integer((json_int_t)pl->layer.tar_size));
                json_object_set_new(j, "ca_bundle", json_boolean(pl->ca_bundle));
                char check[DL_SHA256_HEX];
                layer_check(&pl->layer, pl->ca_bundle, check);
                json_object_set_new(j, "check", json_string(check));
                char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
                rc = dl_write_file_unsynced(key, text, strlen(text), 0644, err);
                free(text);
                json_decref(j);
        }
        free(dir);
        free(key);
        return rc;
}

/* Unpack, customize and write the layer of one platform. */
static int make_platform(struct build *b, const struct dl_build_options *o, struct platform *pl,
                         long long epoch, struct dl_error *err)
{
        int rc;
        if (o->rootfs)
                pl->rootfs = b->n_platforms > 1 ? dl_asprintf("%s/%s", o->rootfs, pl->arch)
                                                : dl_strdup(o->rootfs);
        else
                pl->rootfs = dl_asprintf("%s/rootfs-%s", b->workdir, pl->arch);
        if ((rc = prepare_rootfs(pl->rootfs, err)) ||
            (rc = dl_fstree_init(&pl->tree, pl->rootfs, err)))
                return rc;
        pl->have_tree = true;
        if ((rc = unpack_platform(b, pl, err)))
                return rc;
        dl_debug("%s: unpacked %zu packages", pl->arch, pl->res.n_packages);
        struct dl_customize_input ci = {.spec = &b->spec,
                                        .accounts = &b->accounts,
                                        .packages = pl->res.packages,
                                        .controls = pl->ctls,
                                        .n_packages = pl->res.n_packages,
                                        .epoch = epoch};
        struct dl_customize_result cr;
        if ((rc = dl_customize(&ci, &pl->tree, &cr, err)))
                return rc;
        pl->ca_bundle = cr.ca_bundle;
        dl_debug("%s: customized the tree", pl->arch);
        /* With --rootfs the tree is written out; otherwise contents stay in the blob. */
        if (o->rootfs && (rc = dl_fstree_materialize(&pl->tree, err)))
                return rc;
        /* With a stream the layer goes into the output alone. */
        pl->layer_path =
            pl->stream ? NULL : dl_asprintf("%s/layer-%s.tar.gz", b->workdir, pl->arch);
        /* Members of earlier layers in the cache are copied instead of compressed. */
        struct dl_member_index reuse;
        dl_member_index_load(&b->cache, &reuse);
        struct dl_layer_options lo = {.threads = 0,
                                      .reuse = &reuse,
                                      .tee = pl->stream != NULL,
                                      .tee_fd = pl->stream ? pl->stream->fd : -1,
                                      .tee_path = pl->stream ? pl->stream->tmp : NULL};
        if (pl->stream && (rc = dl_oci_stream_begin_layer(pl->stream, err))) {
                dl_member_index_free(&reuse);
                return rc;
        }
        rc = dl_layer_write_with(&pl->tree, epoch, pl->layer_path, &lo, &pl->layer, err);
        dl_member_index_free(&reuse);
        if (rc == DL_OK && pl->stream)
                rc = dl_oci_stream_end_layer(pl->stream, pl->layer.digest, pl->layer.size, err);
        if (rc == DL_OK)
                dl_debug("%s: wrote the layer (%llu bytes)", pl->arch,
                         (unsigned long long)pl->layer.size);
        return rc;
}

/* The order of the job queue: the largest .deb first, so that no large package is
 * left to unpack alone at the end. */
static const struct unpack_job *sort_jobs;
static int by_size_desc(const void *a, const void *b)
{
        const struct unpack_job *x = &sort_jobs[*(const size_t *)a];
        const struct unpack_job *y = &sort_jobs[*(const size_t *)b];
        if (x->size != y->size)
                return x->size < y->size ? 1 : -1;
        return strcmp(x->sha256, y->sha256);
}

/* Start unpacking every platform's packages. */
static void pool_start(struct build *b, struct unpack_pool *p)
{
        struct dl_error ignored;
        char *dir = dl_path_join(b->cache.dir, "unpacked");
        dl_mkdir_p(dir, 0755, &ignored);
        free(dir);
        memset(p, 0, sizeof *p);
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->work, NULL);
        pthread_cond_init(&p->done, NULL);
        p->cache = &b->cache;
        p->opts = (struct dl_unpack_options){b->spec.merged_usr, b->spec.max_file_size,
                                             &b->spec.paths_exclude, &b->spec.paths_include};
        /* Everything besides the .deb that changes a record. The version line changes
         * with the record's format. */
        struct dl_buf key = {0};
        dl_buf_printf(&key, "\ndistill unpacked record 2\nmerged_usr %d\nfile_size %llu\n",
                      b->spec.merged_usr, b->spec.max_file_size);
        for (size_t i = 0; i < b->spec.paths_exclude.n; i++)
                dl_buf_printf(&key, "exclude %s\n", b->spec.paths_exclude.v[i]);
        for (size_t i = 0; i < b->spec.paths_include.n; i++)
                dl_buf_printf(&key, "include %s\n", b->spec.paths_include.v[i]);
        p->options_key = dl_strdup(dl_buf_str(&key));
        dl_buf_free(&key);
        for (size_t k = 0; k < b->n_platforms; k++)
                for (size_t i = 0; i < b->platforms[k].res.n_packages; i++) {
                        const struct dl_package *pkg = &b->platforms[k].res.packages[i];
                        bool seen = false;
                        for (size_t j = 0; j < p->n && !seen; j++)
                                seen = !strcmp(p->jobs[j].sha256, pkg->sha256);
                        if (seen)
                                continue;
                        p->jobs = dl_realloc(p->jobs, (p->n + 1) * sizeof *p->jobs);
                        struct unpack_job *j = &p->jobs[p->n++];
                        memset(j, 0, sizeof *j);
                        j->sha256 = pkg->sha256;
                        j->deb = dl_cache_path(&b->cache, pkg->sha256);
                        j->what = dl_asprintf("package %s", pkg->name);
                        j->size = pkg->size;
                        j->fd = -1;
                }
        p->order = dl_calloc(p->n ? p->n : 1, sizeof *p->order);
        for (size_t i = 0; i < p->n; i++)
                p->order[i] = i;
        sort_jobs = p->jobs;
        qsort(p->order, p->n, sizeof *p->order, by_size_desc);
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        p->n_threads = (int)cores;
        if (cores < 1)
                p->n_threads = 1;
        if (cores > 16)
                p->n_threads = 16;
        p->threads = dl_calloc((size_t)p->n_threads, sizeof *p->threads);
        for (int i = 0; i < p->n_threads; i++)
                if (pthread_create(&p->threads[i], NULL, unpack_worker, p) != 0) {
                        p->n_threads = i;
                        break;
                }
}

static long long default_epoch(const struct build *b)
{
        long long newest = -1;
        for (size_t i = 0; i < b->spec.n_sources; i++)
                if (b->spec.sources[i].snapshot_time > newest)
                        newest = b->spec.sources[i].snapshot_time;
        if (newest >= 0)
                return newest;
        if (b->have_lock && b->lock.newest_date >= 0)
                return b->lock.newest_date;
        for (size_t i = 0; i < b->n_platforms; i++)
                if (b->platforms[i].sources.newest_date > newest)
                        newest = b->platforms[i].sources.newest_date;
        return newest >= 0 ? newest : 0;
}

/* Fetch every platform's packages. Each starts to unpack as soon as it is in the
 * cache. */
static int fetch_all(struct build *b, const struct dl_build_options *o, struct dl_error *err)
{
        size_t total = 0;
        for (size_t i = 0; i < b->n_platforms; i++)
                total += b->platforms[i].res.n_packages;
        struct dl_package *all = dl_calloc(total, sizeof *all);
        size_t k = 0;
        for (size_t i = 0; i < b->n_platforms; i++)
                for (size_t j = 0; j < b->platforms[i].res.n_packages; j++)
                        all[k++] = b->platforms[i].res.packages[j]; /* shallow: not freed here */
        struct dl_fetch_stats stats;
        struct dl_fetch_notify notify = {pool_ready, b->pool};
        int rc = dl_fetch_packages(&b->spec, &o->mirrors, &b->http, &b->cache, all, total,
                                   o->offline, &notify, &stats, err);
        if (rc == DL_OK)
                dl_info("packages: %zu downloaded, %zu from the cache", stats.downloaded,
                        stats.cached);
        dl_debug("fetched the packages");
        free(all);
        return rc;
}

/* Whether the directory that will hold path accepts new files. */
static int check_writable(const char *path, const char *what, struct dl_error *err)
{
        char *dir = dl_dirname(path);
        char *label = dl_asprintf("cannot write %s into", what);
        int rc = access(dir, W_OK) == 0 ? DL_OK : dl_fail_errno(err, errno, label, dir);
        free(label);
        free(dir);
        return rc;
}

int dl_build(const struct dl_build_options *o, struct dl_build_result *result, struct dl_error *err)
{
        struct build b;
        struct dl_oci_stream stream = {.tmp = NULL, .fd = -1};
        long long epoch;
        char *output = NULL, *ref = NULL, *user = NULL;
        bool locked = false;
        int rc;

        memset(result, 0, sizeof *result);
        if ((rc = dl_source_date_epoch(&epoch, err)))
                return rc;
        if ((rc = build_open(&b, o, err)))
                goto out;
        size_t docker = 0;
        if (o->platform) {
                while (docker < b.n_platforms && strcmp(b.platforms[docker].arch, o->platform))
                        docker++;
                if (docker == b.n_platforms) {
                        struct dl_buf archs = {0};
                        for (size_t i = 0; i < b.spec.architectures.n; i++)
                                dl_buf_printf(&archs, "%s%s", i ? ", " : "",
                                              b.spec.architectures.v[i]);
                        rc = dl_fail(err, DL_EUSAGE,
                                     "--platform %s: the spec builds %s; name one of those",
                                     o->platform, dl_buf_str(&archs));
                        dl_buf_free(&archs);
                        goto out;
                }
        }
        output = o->output ? dl_strdup(o->output) : dl_asprintf("%s.tar", b.spec.name);
        /* Fail before the work when the outputs cannot be written at all. */
        if ((rc = check_writable(output, "the image", err)) ||
            (o->sbom && (rc = check_writable(o->sbom, "the SBOM", err))))
                goto out;
        if (o->tag && !strchr(o->tag, ':'))
                ref = dl_asprintf("%s:latest", o->tag);
        else
                ref = o->tag ? dl_strdup(o->tag) : dl_asprintf("%s:latest", b.spec.name);
        /* Before any download: a --rootfs that cannot be used fails at once. */
        if (o->rootfs && (rc = prepare_rootfs(o->rootfs, err)))
                goto out;
        if ((rc = dl_accounts_build(&b.spec, &b.accounts, err)))
                goto out;
        unsigned long uid = 0, gid = 0;
        if (b.spec.image.user) {
                if ((rc = dl_accounts_resolve_user(&b.accounts, b.spec.image.user, &uid, &gid,
                                                   err))) {
                        dl_error_wrap(err, "image.user");
                        goto out;
                }
                user = dl_asprintf("%lu:%lu", uid, gid);
        }
        if ((rc = load_lock(&b, o, &locked, err)))
                goto out;
        rc = locked ? use_lock(&b, err) : resolve_all(&b, o, err);
        if (rc)
                goto out;
        if (epoch < 0)
                epoch = default_epoch(&b);
        /* A finished layer is reused unless the build must see the trees (an SBOM or
         * --rootfs). */
        bool all_reused = !o->sbom && !o->rootfs;
        for (size_t i = 0; i < b.n_platforms && all_reused; i++)
                all_reused = reuse_layer(&b, &b.platforms[i], epoch);
        if (!all_reused) {
                for (size_t i = 0; i < b.n_platforms; i++) {
                        free(b.platforms[i].layer_path);
                        b.platforms[i].layer_path = NULL;
                }
                /* The layers go straight into the output file. */
                if ((rc = dl_oci_stream_open(output, epoch, &stream, err)))
                        goto out;
                for (size_t i = 0; i < b.n_platforms; i++)
                        b.platforms[i].stream = &stream;
                struct unpack_pool pool;
                pool_start(&b, &pool);
                b.pool = &pool;
                rc = fetch_all(&b, o, err);
                for (size_t i = 0; i < b.n_platforms && rc == DL_OK; i++) {
                        rc = make_platform(&b, o, &b.platforms[i], epoch, err);
                }
                pool_stop(&pool);
                b.pool = NULL;
        }
        if (rc)
                goto out;

        /* OpenSSL and tools built on it find the bundle through SSL_CERT_FILE even
         * where their own default path differs. */
        struct dl_keyval ssl_env = {"SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"};
        struct dl_keyvals extra_env = {&ssl_env, 1};
        bool spec_sets_ssl = dl_keyvals_get(&b.spec.image.env, "SSL_CERT_FILE") != NULL;
        struct dl_oci_image *images = dl_calloc(b.n_platforms, sizeof *images);
        for (size_t i = 0; i < b.n_platforms; i++) {
                struct platform *pl = &b.platforms[i];
                images[i] =
                    (struct dl_oci_image){pl->arch,
                                          pl->layer_path,
                                          &pl->layer,
                                          pl->res.n_packages,
                                          pl->ca_bundle && !spec_sets_ssl ? &extra_env : NULL,
                                          pl->layer_offset};
        }
        struct dl_oci_input oi = {
            .spec = &b.spec, .ref = ref, .user = user, .epoch = epoch, .docker_image = docker};
        if (b.platforms[0].stream)
                oi.stream = b.platforms[0].stream;
        if (b.n_platforms == 1) {
                oi.arch = images[0].arch;
                oi.layer_path = images[0].layer_path;
                oi.layer_offset = images[0].layer_offset;
                oi.layer = images[0].layer;
                oi.n_packages = images[0].n_packages;
                oi.extra_env = images[0].extra_env;
        } else {
                oi.images = images;
                oi.n_images = b.n_platforms;
        }
        struct dl_oci_result or ;
        rc = dl_oci_write(&oi, output, & or, err);
        free(images);
        dl_debug("wrote the image archive");
        for (size_t i = 0; i < b.n_platforms && rc == DL_OK; i++) {
                /* The image is written, so a cache that cannot take its layer costs
                 * only the time of later builds. */
                struct dl_error store_err = {0};
                if (store_layer(&b, &b.platforms[i], epoch, output, all_reused, &store_err))
                        dl_warn("cannot keep the %s layer in the cache: %s; the image is "
                                "written, and later builds may make the layer again",
                                b.platforms[i].arch, store_err.msg);
                else
                        dl_debug("%s: stored the layer in the cache", b.platforms[i].arch);
        }
        if (rc == DL_OK && o->sbom) {
                struct dl_sbom_platform *sp = dl_calloc(b.n_platforms, sizeof *sp);
                for (size_t i = 0; i < b.n_platforms; i++)
                        sp[i] = (struct dl_sbom_platform){
                            b.platforms[i].arch, b.platforms[i].res.packages, b.platforms[i].ctls,
                            b.platforms[i].res.n_packages, &b.platforms[i].tree};
                struct dl_sbom_input si = {&b.spec, ref, or.manifest_digest,
                                           epoch,   sp,  b.n_platforms};
                rc = dl_sbom_write(&si, o->sbom_format, o->sbom, err);
                free(sp);
                /* The image and its SBOM go together: no image without the SBOM asked for. */
                if (rc)
                        unlink(output);
                else
                        dl_info("wrote the SBOM %s", o->sbom);
        }
        if (rc == DL_OK) {
                result->output = dl_strdup(output);
                memcpy(result->manifest_digest, or.manifest_digest, sizeof or.manifest_digest);
                result->size = or.size;
                result->n_packages = b.platforms[docker].res.n_packages;
                dl_info("wrote %s (%s, %s, %llu bytes, sha256:%s)", output, ref,
                        b.spec.architectures.v[0], (unsigned long long) or.size,
                        or.manifest_digest);
        }
out:
        dl_oci_stream_close(&stream);
        build_free(&b);
        free(output);
        free(ref);
        free(user);
        return rc;
}

void dl_build_result_free(struct dl_build_result *res)
{
        free(res->output);
        memset(res, 0, sizeof *res);
}

int dl_lock_command(const struct dl_build_options *o, struct dl_error *err)
{
        struct build b;
        int rc = build_open(&b, o, err);
        if (rc == DL_OK)
                rc = resolve_all(&b, o, err);
        if (rc == DL_OK) {
                struct dl_lock_input_arch *in = dl_calloc(b.n_platforms, sizeof *in);
                for (size_t i = 0; i < b.n_platforms; i++)
                        in[i] = (struct dl_lock_input_arch){
                            b.platforms[i].arch, &b.platforms[i].sources, &b.platforms[i].res};
                rc = dl_lock_write(b.lock_path, &b.spec, in, b.n_platforms, err);
                free(in);
                if (rc == DL_OK)
                        dl_info("wrote %s", b.lock_path);
        }
        build_free(&b);
        return rc;
}

int dl_lock_check_command(const struct dl_build_options *o, struct dl_error *err)
{
        struct dl_spec spec;
        struct dl_lock lock;
        bool missing;
        char digest[DL_SHA256_HEX];
        int rc = dl_spec_load(o->spec_path, &spec, err);
        if (rc)
                return rc;
        char *path = dl_lock_path(o->spec_path);
        rc = dl_lock_read(path, &spec, &lock, &missing, err);
        if (rc == DL_OK) {
                dl_lock_inputs_digest(&spec, digest);
                if (strcmp(digest, lock.inputs_digest) != 0) {
                        char *drift = dl_lock_describe_drift(&lock, &spec);
                        rc =
                            dl_fail(err, DL_ESTALE, "%s does not match %s: %s; run distill lock %s",
                                    path, o->spec_path, drift, o->spec_path);
                        free(drift);
                } else {
                        dl_info("%s matches %s", path, o->spec_path);
                }
                dl_lock_free(&lock);
        }
        free(path);
        dl_spec_free(&spec);
        return rc;
}

int dl_why_command(const struct dl_build_options *o, const char *package, struct dl_error *err)
{
        struct build b;
        bool locked = false, found = false;
        int rc = build_open(&b, o, err);
        if (rc == DL_OK)
                rc = load_lock(&b, o, &locked, err);
        if (rc == DL_OK)
                rc = locked ? use_lock(&b, err) : resolve_all(&b, o, err);
        for (size_t i = 0; rc == DL_OK && i < b.n_platforms; i++) {
                const struct platform *pl = &b.platforms[i];
                for (size_t k = 0; k < pl->res.n_packages; k++)
                        if (!strcmp(pl->res.packages[k].name, package)) {
                                printf("%s: %s\n", pl->arch, pl->res.packages[k].why);
                                found = true;
                        }
                for (size_t k = 0; k < pl->res.unmet.n; k++) {
                        const char *u = pl->res.unmet.v[k];
                        if (strstr(u, package))
                                printf("%s: excluded, wanted by %s\n", pl->arch, u);
                }
        }
        if (rc == DL_OK && !found)
                rc = dl_fail(err, DL_ERESOLVE,
                             "package %s is not in the image of %s for any architecture", package,
                             o->spec_path);
        build_free(&b);
        return rc;
}
