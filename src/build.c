#include "distill/build.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "distill/cache.h"
#include "distill/customize.h"
#include "distill/fetch.h"
#include "distill/fstree.h"
#include "distill/layer.h"
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
                return dl_fail(err, DL_EUSAGE, "SOURCE_DATE_EPOCH=\"%s\" is not a number of seconds since 1970-01-01; set it to an integer such as $(git log -1 --format=%%ct) or unset it",
                               v);
        *epoch = t;
        return DL_OK;
}

/* Keyring paths in the spec are relative to the spec's directory. */
static void absolutize_keyrings(struct dl_spec *spec)
{
        for (size_t i = 0; i < spec->n_sources; i++) {
                char *k = spec->sources[i].keyring;
                if (k[0] != '/') {
                        spec->sources[i].keyring = dl_path_join(spec->dir, k);
                        free(k);
                }
        }
}

static int prepare_rootfs(const char *dir, struct dl_error *err)
{
        DIR *d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return dl_fail_errno(err, errno, "cannot open", dir);
                return dl_mkdir_p(dir, 0755, err);
        }
        struct dirent *e;
        int rc = DL_OK;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                        rc = dl_fail(err, DL_EUSAGE, "--rootfs %s is not empty; name a new or empty directory",
                                     dir);
                        break;
                }
        closedir(d);
        return rc;
}

/* Merged /usr: the top-level directories that Debian moved into /usr are symlinks;
 * lib32, lib64 and libx32 only where a package ships files there. */
static int add_merged_usr_links(struct dl_fstree *t, bool before, struct dl_error *err)
{
        static const char *const always[] = {"bin", "sbin", "lib", NULL};
        static const char *const optional[] = {"lib32", "lib64", "libx32", NULL};
        int rc = DL_OK;
        const char *const *names = before ? always : optional;
        for (int i = 0; names[i] && rc == DL_OK; i++) {
                char *usr = dl_asprintf("usr/%s", names[i]);
                char *target = dl_asprintf("usr/%s", names[i]);
                const struct dl_node *n = dl_fstree_get(t, usr);
                if (before && (!n || n->removed))
                        rc = dl_fstree_add_dir(t, usr, 0755, 0, 0, -1, err);
                if (rc == DL_OK && (before || (n && !n->removed)))
                        rc = dl_fstree_add_symlink(t, names[i], target, -1, err);
                free(usr);
                free(target);
        }
        return rc;
}

static int unpack_all(const struct dl_spec *spec, struct dl_cache *cache, struct dl_fstree *t,
                      const struct dl_resolution *res, struct dl_deb_control *ctls,
                      struct dl_error *err)
{
        size_t n = res->n_packages;
        const char **names = dl_calloc(n, sizeof *names);
        const char **versions = dl_calloc(n, sizeof *versions);
        char **replaces = dl_calloc(n, sizeof *replaces);
        struct dl_unpack_context ctx = {.tree = t,
                                        .merged_usr = spec->merged_usr,
                                        .allow_overwrite = &spec->allow_overwrite,
                                        .names = names,
                                        .versions = versions,
                                        .replaces = replaces};
        int rc = DL_OK;

        for (size_t i = 0; i < n; i++) {
                names[i] = res->packages[i].name;
                versions[i] = res->packages[i].version;
        }
        for (size_t i = 0; i < n && rc == DL_OK; i++) {
                char *deb = dl_cache_path(cache, res->packages[i].sha256);
                rc = dl_unpack_deb(&ctx, (int)i, deb, &ctls[i], err);
                free(deb);
        }
        for (size_t i = 0; i < n; i++)
                free(replaces[i]);
        free(replaces);
        free(names);
        free(versions);
        return rc;
}

/* State of one build, released in one place. */
struct build {
        struct dl_spec spec;
        struct dl_cache cache;
        struct dl_sources sources;
        struct dl_resolution res;
        struct dl_deb_control *ctls;
        struct dl_fstree tree;
        struct dl_accounts accounts;
        char *workdir;
        char *rootfs;
        char *output;
        char *ref;
};

static void build_free(struct build *b)
{
        for (size_t i = 0; b->ctls && i < b->res.n_packages; i++)
                dl_deb_control_free(&b->ctls[i]);
        free(b->ctls);
        dl_fstree_free(&b->tree);
        dl_resolution_free(&b->res);
        dl_sources_free(&b->sources);
        dl_cache_close(&b->cache);
        dl_accounts_free(&b->accounts);
        dl_spec_free(&b->spec);
        if (b->workdir) {
                dl_rm_rf(b->workdir);
                free(b->workdir);
        }
        free(b->rootfs);
        free(b->output);
        free(b->ref);
}

static long long default_epoch(const struct dl_spec *spec, const struct dl_sources *src)
{
        long long newest = -1;
        for (size_t i = 0; i < spec->n_sources; i++)
                if (spec->sources[i].snapshot_time > newest)
                        newest = spec->sources[i].snapshot_time;
        if (newest >= 0)
                return newest;
        return src->newest_date >= 0 ? src->newest_date : 0;
}

int dl_build(const struct dl_build_options *o, struct dl_build_result *result,
             struct dl_error *err)
{
        struct build b;
        struct dl_http_options http;
        long long epoch;
        int rc;

        memset(&b, 0, sizeof b);
        b.tree.root_fd = -1;
        memset(result, 0, sizeof *result);
        if ((rc = dl_source_date_epoch(&epoch, err)))
                return rc;
        if ((rc = dl_spec_load(o->spec_path, &b.spec, err)))
                goto out;
        absolutize_keyrings(&b.spec);
        const char *arch = b.spec.architectures.v[0];
        if (b.spec.architectures.n > 1)
                dl_warn("the spec lists %zu architectures; this version builds the first, %s",
                        b.spec.architectures.n, arch);
        b.output = o->output ? dl_strdup(o->output) : dl_asprintf("%s.tar", b.spec.name);
        if (o->tag && !strchr(o->tag, ':'))
                b.ref = dl_asprintf("%s:latest", o->tag);
        else
                b.ref = o->tag ? dl_strdup(o->tag) : dl_asprintf("%s:latest", b.spec.name);
        if ((rc = dl_accounts_build(&b.spec, &b.accounts, err)))
                goto out;
        unsigned long uid = 0, gid = 0;
        char *user = NULL;
        if (b.spec.image.user) {
                if ((rc = dl_accounts_resolve_user(&b.accounts, b.spec.image.user, &uid, &gid, err))) {
                        dl_error_wrap(err, "image.user");
                        goto out;
                }
        }
        if (!(b.workdir = dl_mkdtemp("build", err))) {
                rc = err->code;
                goto out;
        }
        if ((rc = dl_cache_open(&b.cache, o->cache_dir, err)))
                goto out;
        if ((rc = dl_http_global_init(err)))
                goto out;
        dl_http_defaults(&http);
        if (o->jobs > 0)
                http.max_parallel = o->jobs;

        struct dl_sources_options so = {.mirrors = &o->mirrors,
                                        .http = &http,
                                        .cache = &b.cache,
                                        .now = (long long)time(NULL)};
        if ((rc = dl_sources_load(&b.spec, arch, &so, b.workdir, &b.sources, err)))
                goto out;
        if (epoch < 0)
                epoch = default_epoch(&b.spec, &b.sources);

        struct dl_resolve_request req = {.arch = arch,
                                         .indexes = b.sources.indexes,
                                         .n_indexes = b.sources.n_indexes,
                                         .packages = &b.spec.packages,
                                         .exclude = &b.spec.exclude};
        if ((rc = dl_resolve(&req, &b.res, err)))
                goto out;
        dl_info("resolved %zu packages for %s", b.res.n_packages, arch);
        for (size_t i = 0; i < b.res.unmet.n; i++)
                dl_info("left unmet by exclude: %s", b.res.unmet.v[i]);

        struct dl_fetch_stats stats;
        if ((rc = dl_fetch_packages(&b.spec, &o->mirrors, &http, &b.cache, b.res.packages,
                                    b.res.n_packages, &stats, err)))
                goto out;
        dl_info("packages: %zu downloaded, %zu from the cache", stats.downloaded, stats.cached);

        b.rootfs = o->rootfs ? dl_strdup(o->rootfs) : dl_path_join(b.workdir, "rootfs");
        if ((rc = prepare_rootfs(b.rootfs, err)) || (rc = dl_fstree_init(&b.tree, b.rootfs, err)))
                goto out;
        if (b.spec.merged_usr && (rc = add_merged_usr_links(&b.tree, true, err)))
                goto out;
        b.ctls = dl_calloc(b.res.n_packages, sizeof *b.ctls);
        if ((rc = unpack_all(&b.spec, &b.cache, &b.tree, &b.res, b.ctls, err)))
                goto out;
        if (b.spec.merged_usr && (rc = add_merged_usr_links(&b.tree, false, err)))
                goto out;

        struct dl_customize_input ci = {.spec = &b.spec,
                                        .accounts = &b.accounts,
                                        .packages = b.res.packages,
                                        .controls = b.ctls,
                                        .n_packages = b.res.n_packages,
                                        .epoch = epoch};
        struct dl_customize_result cr;
        if ((rc = dl_customize(&ci, &b.tree, &cr, err)))
                goto out;
        /* OpenSSL and tools built on it find the bundle through SSL_CERT_FILE even
         * where their own default path differs. */
        struct dl_keyval ssl_env = {"SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"};
        struct dl_keyvals extra_env = {&ssl_env, 1};
        bool add_ssl_env = cr.ca_bundle && !dl_keyvals_get(&b.spec.image.env, "SSL_CERT_FILE");

        struct dl_layer layer;
        char *layer_path = dl_path_join(b.workdir, "layer.tar.gz");
        rc = dl_layer_write(&b.tree, epoch, layer_path, &layer, err);
        if (rc == DL_OK) {
                if (b.spec.image.user)
                        user = dl_asprintf("%lu:%lu", uid, gid);
                struct dl_oci_input oi = {.spec = &b.spec,
                                          .arch = arch,
                                          .ref = b.ref,
                                          .user = user,
                                          .extra_env = add_ssl_env ? &extra_env : NULL,
                                          .epoch = epoch,
                                          .layer_path = layer_path,
                                          .layer = &layer,
                                          .n_packages = b.res.n_packages};
                struct dl_oci_result or;
                rc = dl_oci_write(&oi, b.output, &or, err);
                if (rc == DL_OK) {
                        result->output = dl_strdup(b.output);
                        memcpy(result->manifest_digest, or.manifest_digest, sizeof or.manifest_digest);
                        result->size = or.size;
                        result->n_packages = b.res.n_packages;
                        dl_info("wrote %s (%s, %zu packages, %llu bytes, manifest sha256:%s)",
                                b.output, b.ref, b.res.n_packages, (unsigned long long)or.size,
                                or.manifest_digest);
                }
        }
        free(user);
        free(layer_path);
out:
        build_free(&b);
        return rc;
}

void dl_build_result_free(struct dl_build_result *res)
{
        free(res->output);
        memset(res, 0, sizeof *res);
}
