#include "distill/resolve.h"

#include <solv/chksum.h>
#include <solv/evr.h>
#include <solv/pool.h>
#include <solv/poolarch.h>
#include <solv/repo.h>
#include <solv/repo_deb.h>
#include <solv/solver.h>
#include <solv/transaction.h>
#include <solv/solv_xfopen.h>
#include <solv/repo_solv.h>
#include <solv/repo_write.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "distill/log.h"

/* Debian priorities, most important first, as apt ranks providers of a virtual
 * package. */
static int priority_rank(const char *p)
{
        static const char *const order[] = {"required", "important", "standard", "optional",
                                            "extra"};
        for (int i = 0; p && i < 5; i++)
                if (strcmp(p, order[i]) == 0)
                        return i;
        return 5;
}

/* Priority and Size of each package version, read in a pass over the Packages files
 * because libsolv 0.7 keeps neither field from a Packages file. Keyed by
 * "name version arch". */
struct priorities {
        char **keys;
        unsigned char *ranks;
        unsigned long long *sizes;
        size_t cap, n;
};

static size_t hash_str(const char *s)
{
        size_t h = 1469598103934665603ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

static void priorities_put(struct priorities *p, char *key, int rank, unsigned long long size);

static void priorities_grow(struct priorities *p)
{
        struct priorities old = *p;
        p->cap = old.cap ? old.cap * 2 : 4096;
        p->keys = dl_calloc(p->cap, sizeof *p->keys);
        p->ranks = dl_calloc(p->cap, 1);
        p->sizes = dl_calloc(p->cap, sizeof *p->sizes);
        p->n = 0;
        for (size_t i = 0; i < old.cap; i++)
                if (old.keys[i])
                        priorities_put(p, old.keys[i], old.ranks[i], old.sizes[i]);
        free(old.keys);
        free(old.ranks);
        free(old.sizes);
}

static void priorities_put(struct priorities *p, char *key, int rank, unsigned long long size)
{
        if ((p->n + 1) * 2 > p->cap)
                priorities_grow(p);
        size_t i = hash_str(key) & (p->cap - 1);
        while (p->keys[i]) {
                if (strcmp(p->keys[i], key) == 0) {
                        free(key);
                        return;
                }
                i = (i + 1) & (p->cap - 1);
        }
        p->keys[i] = key;
        p->ranks[i] = (unsigned char)rank;
        p->sizes[i] = size;
        p->n++;
}

/* The slot of key, or -1. */
static long priorities_find(const struct priorities *p, const char *key)
{
        if (!p->cap)
                return -1;
        size_t i = hash_str(key) & (p->cap - 1);
        while (p->keys[i]) {
                if (strcmp(p->keys[i], key) == 0)
                        return (long)i;
                i = (i + 1) & (p->cap - 1);
        }
        return -1;
}

static void priorities_free(struct priorities *p)
{
        for (size_t i = 0; i < p->cap; i++)
                free(p->keys[i]);
        free(p->keys);
        free(p->ranks);
        free(p->sizes);
}

static void flush_stanza(struct priorities *p, char **name, char **version, char **arch,
                         char **prio, unsigned long long *size)
{
        if (*name && *version)
                priorities_put(p, dl_asprintf("%s %s %s", *name, *version, *arch ? *arch : ""),
                               priority_rank(*prio), *size);
        free(*name);
        free(*version);
        free(*arch);
        free(*prio);
        *name = *version = *arch = *prio = NULL;
        *size = 0;
}

static char *field_value(const char *line, size_t skip)
{
        const char *v = line + skip;
        while (*v == ' ' || *v == '\t')
                v++;
        size_t n = strlen(v);
        while (n && (v[n - 1] == '\n' || v[n - 1] == '\r' || v[n - 1] == ' '))
                n--;
        return dl_strndup(v, n);
}

static void read_priorities(struct priorities *p, FILE *fp)
{
        char *line = NULL, *name = NULL, *version = NULL, *arch = NULL, *prio = NULL;
        unsigned long long size = 0;
        size_t cap = 0;

        while (getline(&line, &cap, fp) > 0) {
                if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n'))
                        flush_stanza(p, &name, &version, &arch, &prio, &size);
                else if (!strncmp(line, "Size:", 5))
                        size = strtoull(line + 5, NULL, 10);
                else if (!strncmp(line, "Package:", 8))
                        free(name), name = field_value(line, 8);
                else if (!strncmp(line, "Version:", 8))
                        free(version), version = field_value(line, 8);
                else if (!strncmp(line, "Architecture:", 13))
                        free(arch), arch = field_value(line, 13);
                else if (!strncmp(line, "Priority:", 9))
                        free(prio), prio = field_value(line, 9);
        }
        flush_stanza(p, &name, &version, &arch, &prio, &size);
        free(line);
}

/* Resolution state shared by the steps below. */
struct resolver {
        const struct dl_resolve_request *req;
        Pool *pool;
        const struct dl_index **repo_index; /* by repo id */
        Repo *stubs;                        /* one solvable per excluded package */
        Map considered;
        Map chosen; /* the preferred closure, walked the way apt walks it */
        Id *parent; /* by solvable id: who pulled it into the walk; -1 for a root */
        struct priorities prio;
        char *first_unmet;        /* the first dependency the walk could not meet */
        unsigned char *viability; /* by solvable id: 0 unknown, 1 being checked, 2 yes, 3 no */
};

/* Open an index, decompressing on the fly as its Release name says (Packages.xz,
 * .gz, .bz2, .zst or plain). */
static FILE *open_index(const struct dl_index *idx)
{
        int fd = open(idx->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        FILE *fp = solv_xfopen_fd(idx->release_path ? idx->release_path : idx->path, fd, "r");
        if (!fp)
                close(fd);
        return fp;
}

/* The priorities of an index as cached beside its solv file: "RANK SIZE KEY" lines. */
static bool load_priorities(struct priorities *p, const char *path)
{
        FILE *fp = fopen(path, "r");
        char *line = NULL;
        size_t cap = 0;
        if (!fp)
                return false;
        while (getline(&line, &cap, fp) > 0) {
                int rank, used = 0;
                unsigned long long size;
                if (sscanf(line, "%d %llu %n", &rank, &size, &used) != 2 || used == 0)
                        continue;
                line[strcspn(line, "\n")] = '\0';
                priorities_put(p, dl_strdup(line + used), rank, size);
        }
        free(line);
        fclose(fp);
        return true;
}

static void store_priorities(const struct priorities *p, const char *path)
{
        struct dl_buf b = {0};
        struct dl_error ignored;
        for (size_t i = 0; i < p->cap; i++)
                if (p->keys[i])
                        dl_buf_printf(&b, "%d %llu %s\n", p->ranks[i], p->sizes[i], p->keys[i]);
        dl_write_file_unsynced(path, b.data ? b.data : "", b.len, 0644, &ignored);
        dl_buf_free(&b);
}

/* Load one index: from libsolv's own format when the cache has it (much faster than
 * parsing the Packages text), else parsed and then stored there. */
static int load_index(struct resolver *r, const struct dl_index *idx, Repo *repo,
                      struct priorities *prio, struct dl_error *err)
{
        char *solv = NULL, *prio_path = NULL;
        int rc = DL_OK;
        if (r->req->solv_cache && idx->sha256 && dl_is_sha256_hex(idx->sha256)) {
                solv = dl_asprintf("%s/%s.solv", r->req->solv_cache, idx->sha256);
                prio_path = dl_asprintf("%s/%s.prio", r->req->solv_cache, idx->sha256);
                FILE *fp = fopen(solv, "r");
                if (fp && repo_add_solv(repo, fp, 0) == 0 && load_priorities(prio, prio_path)) {
                        fclose(fp);
                        goto out;
                }
                if (fp)
                        fclose(fp);
                repo_empty(repo, 1);
        }
        FILE *fp = open_index(idx);
        if (!fp) {
                rc = dl_fail_errno(err, errno, "cannot open the index", idx->path);
                goto out;
        }
        if (repo_add_debpackages(repo, fp, 0) != 0) {
                rc = dl_fail(err, DL_EVERIFY, "cannot parse the Packages index %s: %s", idx->path,
                             pool_errstr(r->pool));
                fclose(fp);
                goto out;
        }
        fclose(fp);
        /* A second pass for the fields libsolv does not keep. */
        if ((fp = open_index(idx))) {
                read_priorities(prio, fp);
                fclose(fp);
        }
        if (solv) {
                struct dl_error ignored;
                char *tmp = dl_asprintf("%s.tmp-%ld", solv, (long)getpid());
                FILE *out = dl_mkdir_p(r->req->solv_cache, 0755, &ignored) == DL_OK
                                ? fopen(tmp, "w")
                                : NULL;
                bool ok = out && repo_write(repo, out) == 0;
                if (out && fclose(out) != 0)
                        ok = false;
                if (ok) {
                        store_priorities(prio, prio_path);
                        ok = rename(tmp, solv) == 0;
                }
                if (!ok)
                        unlink(tmp);
                free(tmp);
        }
out:
        free(solv);
        free(prio_path);
        return rc;
}

static int load_indexes(struct resolver *r, struct dl_error *err)
{
        Pool *pool = r->pool;

        r->repo_index = dl_calloc(r->req->n_indexes + 2, sizeof *r->repo_index);
        for (size_t i = 0; i < r->req->n_indexes; i++) {
                const struct dl_index *idx = &r->req->indexes[i];
                Repo *repo = repo_create(pool, idx->path);
                r->repo_index[repo->repoid] = idx;
                /* Each index gets its own priority map while it loads, so the cached
                 * copy contains that index alone. Then it joins the resolver's map. */
                struct priorities one = {0};
                int rc = load_index(r, idx, repo, &one, err);
                for (size_t k = 0; k < one.cap; k++)
                        if (one.keys[k]) {
                                priorities_put(&r->prio, one.keys[k], one.ranks[k], one.sizes[k]);
                                one.keys[k] = NULL;
                        }
                priorities_free(&one);
                if (rc)
                        return rc;
        }
        return DL_OK;
}

static const char *sname(const struct resolver *r, Id p)
{
        return pool_id2str(r->pool, r->pool->solvables[p].name);
}

static long stanza_slot(const struct resolver *r, Id p)
{
        Solvable *s = r->pool->solvables + p;
        char *key = dl_asprintf("%s %s %s", pool_id2str(r->pool, s->name),
                                pool_id2str(r->pool, s->evr), pool_id2str(r->pool, s->arch));
        long slot = priorities_find(&r->prio, key);
        free(key);
        return slot;
}

static int solvable_priority(const struct resolver *r, Id p)
{
        long slot = stanza_slot(r, p);
        return slot < 0 ? 5 : r->prio.ranks[slot];
}

static bool usable(const struct resolver *r, Id p)
{
        Solvable *s = r->pool->solvables + p;
        return MAPTST(&r->considered, p) && pool_installable(r->pool, s);
}

/* Whether a is a better candidate than b for a dependency on name. A package of that
 * very name beats a provider. Ties go to the higher Priority, then the name, then
 * the higher version, then the earlier index. */
static bool better(const struct resolver *r, Id name, Id a, Id b)
{
        Pool *pool = r->pool;
        Solvable *sa = pool->solvables + a, *sb = pool->solvables + b;
        bool ra = sa->name == name, rb = sb->name == name;
        if (ra != rb)
                return ra;
        if (!ra && sa->name != sb->name) {
                int pa = solvable_priority(r, a), pb = solvable_priority(r, b);
                if (pa != pb)
                        return pa < pb;
                return strcmp(pool_id2str(pool, sa->name), pool_id2str(pool, sb->name)) < 0;
        }
        int c = pool_evrcmp(pool, sa->evr, sb->evr, EVRCMP_COMPARE);
        if (c != 0)
                return c > 0;
        return sa->repo->repoid < sb->repo->repoid;
}

/* The name a dependency is about: "foo" for "foo (>= 1)" or "foo:any". */
static Id dep_name(Pool *pool, Id dep)
{
        while (ISRELDEP(dep)) {
                Reldep *rd = GETRELDEP(pool, dep);
                dep = rd->name;
        }
        return dep;
}

static void alternatives(Pool *pool, Id dep, Queue *out);

/* Whether every dependency of p has some installable provider, recursively: apt
 * passes over an alternative whose own dependencies cannot be met, so the walk
 * must too. A package still being checked counts as viable (a dependency cycle). */
static bool viable(struct resolver *r, Id p, int depth)
{
        Pool *pool = r->pool;
        if (r->viability[p] == 1 || r->viability[p] == 2 || depth > 64 ||
            pool->solvables[p].repo == r->stubs)
                return true;
        if (r->viability[p] == 3)
                return false;
        r->viability[p] = 1;
        Queue deps, alts;
        queue_init(&deps);
        queue_init(&alts);
        solvable_lookup_deparray(pool->solvables + p, SOLVABLE_REQUIRES, &deps, 0);
        bool ok = true;
        for (int d = 0; d < deps.count && ok; d++) {
                if (deps.elements[d] == SOLVABLE_PREREQMARKER)
                        continue;
                queue_empty(&alts);
                alternatives(pool, deps.elements[d], &alts);
                bool found = false;
                for (int a = 0; a < alts.count && !found; a++) {
                        Id q, qq;
                        FOR_PROVIDES(q, qq, alts.elements[a])
                        {
                                if (usable(r, q) && viable(r, q, depth + 1)) {
                                        found = true;
                                        break;
                                }
                        }
                }
                ok = found;
        }
        queue_free(&deps);
        queue_free(&alts);
        r->viability[p] = ok ? 2 : 3;
        return ok;
}

/* The best provider of dep, preferring one whose dependencies can be met. */
static Id best_provider(struct resolver *r, Id dep)
{
        Pool *pool = r->pool;
        Id p, pp, best = 0, best_viable = 0, name = dep_name(pool, dep);
        FOR_PROVIDES(p, pp, dep)
        {
                if (!usable(r, p) || pool->solvables[p].repo == r->stubs)
                        continue;
                if (!best || better(r, name, p, best))
                        best = p;
                if ((!best_viable || better(r, name, p, best_viable)) && viable(r, p, 0))
                        best_viable = p;
        }
        return best_viable ? best_viable : best;
}

static bool satisfied(const struct resolver *r, Id dep)
{
        Pool *pool = r->pool;
        Id p, pp;
        FOR_PROVIDES(p, pp, dep)
        {
                if (MAPTST(&r->chosen, p))
                        return true;
        }
        return false;
}

/* Split "a | b | c" into its alternatives, left to right. */
static void alternatives(Pool *pool, Id dep, Queue *out)
{
        if (ISRELDEP(dep)) {
                Reldep *rd = GETRELDEP(pool, dep);
                if (rd->flags == REL_OR) {
                        alternatives(pool, rd->name, out);
                        alternatives(pool, rd->evr, out);
                        return;
                }
        }
        queue_push(out, dep);
}

static char *chain(const struct resolver *r, Id p)
{
        struct dl_buf b = {0};
        Id path[256];
        int n = 0;
        for (Id q = p; q > 0 && n < 256; q = r->parent[q])
                path[n++] = q;
        for (int i = n - 1; i >= 0; i--)
                dl_buf_printf(&b, "%s%s", i == n - 1 ? "" : " -> ", sname(r, path[i]));
        char *s = dl_strdup(dl_buf_str(&b));
        dl_buf_free(&b);
        return s;
}

/* Walk the closure from the roots, taking the first alternative that has a
 * candidate, as apt does. libsolv alone would pick among alternatives by its own
 * policy (for "pinentry-curses | pinentry" it may take any provider of pinentry), so
 * the walk's choices become favor jobs for the solver. */
static void walk(struct resolver *r, Queue *roots)
{
        Pool *pool = r->pool;
        Queue todo, deps, alts;
        bool have_alternatives;

        queue_init(&todo);
        queue_init(&deps);
        queue_init(&alts);
        for (int i = 0; i < roots->count; i++) {
                Id p = roots->elements[i];
                if (!MAPTST(&r->chosen, p)) {
                        MAPSET(&r->chosen, p);
                        r->parent[p] = -1;
                        queue_push(&todo, p);
                }
        }
        for (int t = 0; t < todo.count; t++) {
                Id p = todo.elements[t];
                Solvable *s = pool->solvables + p;
                /* lookup_deparray appends to the queue. */
                queue_empty(&deps);
                solvable_lookup_deparray(s, SOLVABLE_REQUIRES, &deps, 0);
                for (int d = 0; d < deps.count; d++) {
                        Id dep = deps.elements[d];
                        if (dep == SOLVABLE_PREREQMARKER || satisfied(r, dep))
                                continue;
                        queue_empty(&alts);
                        alternatives(pool, dep, &alts);
                        Id pick = 0;
                        have_alternatives = alts.count > 1;
                        /* With alternatives, take the first whose dependencies can be
                         * met; without, the best candidate even if it fails, so that
                         * the error names it. */
                        for (int a = 0; a < alts.count && !pick; a++) {
                                pick = best_provider(r, alts.elements[a]);
                                if (pick && have_alternatives && a + 1 < alts.count &&
                                    !viable(r, pick, 0))
                                        pick = 0;
                        }
                        if (!pick && have_alternatives)
                                pick = best_provider(r, alts.elements[0]);
                        if (!pick) {
                                if (!r->first_unmet) {
                                        char *c = chain(r, p);
                                        r->first_unmet = dl_asprintf("%s -> %s: no candidate", c,
                                                                     pool_dep2str(pool, dep));
                                        free(c);
                                }
                                continue;
                        }
                        MAPSET(&r->chosen, pick);
                        r->parent[pick] = p;
                        queue_push(&todo, pick);
                }
        }
        queue_free(&todo);
        queue_free(&deps);
        queue_free(&alts);
}

static Id find_root(struct resolver *r, const char *name, struct dl_error *err)
{
        Id id = pool_str2id(r->pool, name, 0);
        Id best = id ? best_provider(r, id) : 0;
        if (!best)
                dl_fail(err, DL_ERESOLVE,
                        "package %s: not found for architecture %s in any source; check the name, "
                        "the sources' components and the architecture",
                        name, r->req->arch);
        else if (r->pool->solvables[best].name != id)
                dl_info("package %s is virtual; using %s, which provides it", name, sname(r, best));
        return best;
}

/* Hide each excluded package and install in its place a stub that provides what the
 * archive's best version provides, at that version, with no dependencies: so it
 * counts as present and nothing else is installed for it. */
static int add_stubs(struct resolver *r, Queue *stub_ids)
{
        Pool *pool = r->pool;
        const struct dl_strlist *ex = r->req->exclude;
        Queue best;

        queue_init(&best);
        for (size_t i = 0; ex && i < ex->n; i++) {
                Id name = pool_str2id(pool, ex->v[i], 0), p, pp, found = 0;
                if (name)
                        FOR_PROVIDES(p, pp, name)
                        {
                                Solvable *s = pool->solvables + p;
                                if (s->name == name && pool_installable(pool, s) &&
                                    (!found || better(r, name, p, found)))
                                        found = p;
                        }
                if (!found) {
                        dl_warn("exclude: %s is not in the sources for %s; nothing to exclude",
                                ex->v[i], r->req->arch);
                        continue;
                }
                queue_push(&best, found);
        }
        r->stubs = repo_create(pool, "distill-excluded");
        for (int i = 0; i < best.count; i++) {
                Solvable *real = pool->solvables + best.elements[i];
                Id sid = repo_add_solvable(r->stubs);
                Solvable *s = pool->solvables + sid;
                real = pool->solvables + best.elements[i]; /* the array may have moved */
                s->name = real->name;
                s->evr = real->evr;
                s->arch = real->arch;
                s->vendor = real->vendor;
                s->provides = repo_addid_dep(r->stubs, s->provides,
                                             pool_rel2id(pool, s->name, s->evr, REL_EQ, 1), 0);
                Queue prov;
                queue_init(&prov);
                solvable_lookup_deparray(real, SOLVABLE_PROVIDES, &prov, 0);
                for (int k = 0; k < prov.count; k++)
                        s->provides = repo_addid_dep(r->stubs, s->provides, prov.elements[k], 0);
                queue_free(&prov);
                queue_push(stub_ids, sid);
        }
        repo_internalize(r->stubs);
        map_init(&r->considered, pool->nsolvables);
        map_setall(&r->considered);
        for (int i = 0; i < best.count; i++) {
                Id name = pool->solvables[best.elements[i]].name;
                for (Id p = 2; p < pool->nsolvables; p++) {
                        Solvable *s = pool->solvables + p;
                        if (s->repo && s->repo != r->stubs && s->name == name)
                                MAPCLR(&r->considered, p);
                }
        }
        queue_free(&best);
        /* Like apt, consider only the candidate of each package: its highest version
         * across all sources. A dependency that only an older version meets fails. */
        Id *top = dl_calloc((size_t)pool->ss.nstrings, sizeof *top);
        for (Id p = 2; p < pool->nsolvables; p++) {
                Solvable *s = pool->solvables + p;
                if (!s->repo || s->repo == r->stubs || !MAPTST(&r->considered, p) ||
                    !pool_installable(pool, s))
                        continue;
                Id cur = top[s->name];
                if (!cur || better(r, s->name, p, cur))
                        top[s->name] = p;
        }
        for (Id p = 2; p < pool->nsolvables; p++) {
                Solvable *s = pool->solvables + p;
                if (s->repo && s->repo != r->stubs && top[s->name] != p)
                        MAPCLR(&r->considered, p);
        }
        free(top);
        pool->considered = &r->considered;
        pool_createwhatprovides(pool);
        return DL_OK;
}

static int report_problems(struct resolver *r, Solver *solv, int problems, struct dl_error *err)
{
        struct dl_buf b = {0};
        int rc;

        if (r->first_unmet)
                dl_buf_printf(&b, "%s", r->first_unmet);
        for (Id pr = 1; pr <= problems && pr <= 3; pr++)
                dl_buf_printf(&b, "%s%s", b.len ? "; " : "", solver_problem2str(solv, pr));
        rc = dl_fail(err, DL_ERESOLVE,
                     "cannot satisfy the packages for %s: %s; add a source that has the package, "
                     "pin another version, or exclude it",
                     r->req->arch, dl_buf_str(&b));
        dl_buf_free(&b);
        return rc;
}

static char *checksum_hex(Solvable *s)
{
        Id type = 0;
        const char *hex = solvable_lookup_checksum(s, SOLVABLE_CHECKSUM, &type);
        return hex && type == REPOKEY_TYPE_SHA256 ? dl_strdup(hex) : NULL;
}

static int compare_packages(const void *a, const void *b)
{
        const struct dl_package *pa = a, *pb = b;
        int c = strcmp(pa->name, pb->name);
        return c ? c : strcmp(pa->arch, pb->arch);
}

static int collect(struct resolver *r, Solver *solv, Queue *stub_ids, struct dl_resolution *out,
                   struct dl_error *err)
{
        Pool *pool = r->pool;
        Transaction *trans = solver_create_transaction(solv);
        Queue installed, deps, alts;
        Map inset;
        int rc = DL_OK;

        queue_init(&installed);
        queue_init(&deps);
        queue_init(&alts);
        for (int i = 0; i < trans->steps.count; i++) {
                Id p = trans->steps.elements[i];
                if (pool->solvables[p].repo != r->stubs)
                        queue_push(&installed, p);
        }
        transaction_free(trans);
        map_init(&inset, pool->nsolvables);
        for (int i = 0; i < installed.count; i++)
                MAPSET(&inset, installed.elements[i]);
        out->packages = dl_calloc((size_t)installed.count, sizeof *out->packages);
        for (int i = 0; i < installed.count && rc == DL_OK; i++) {
                Id p = installed.elements[i];
                Solvable *s = pool->solvables + p;
                const struct dl_index *idx = r->repo_index[s->repo->repoid];
                struct dl_package *pkg = &out->packages[out->n_packages++];
                pkg->name = dl_strdup(pool_id2str(pool, s->name));
                pkg->version = dl_strdup(pool_id2str(pool, s->evr));
                pkg->arch = dl_strdup(pool_id2str(pool, s->arch));
                const char *loc = solvable_get_location(s, NULL);
                pkg->filename = loc ? dl_strdup(loc) : NULL;
                pkg->sha256 = checksum_hex(s);
                long slot = stanza_slot(r, p);
                pkg->size = slot < 0 ? 0 : r->prio.sizes[slot];
                pkg->source = idx ? idx->source : -1;
                pkg->suite = dl_strdup(idx && idx->suite ? idx->suite : "");
                pkg->why = MAPTST(&r->chosen, p)
                               ? chain(r, p)
                               : dl_asprintf("%s (chosen by the solver)", pkg->name);
                if (!pkg->filename || !pkg->sha256)
                        rc = dl_fail(err, DL_EVERIFY,
                                     "package %s %s: the index gives no Filename or no SHA256, so "
                                     "it cannot be fetched safely",
                                     pkg->name, pkg->version);
                /* The dependencies this package keeps only through an excluded stub. */
                queue_empty(&deps);
                solvable_lookup_deparray(s, SOLVABLE_REQUIRES, &deps, 0);
                for (int d = 0; d < deps.count; d++) {
                        Id dep = deps.elements[d], q, qq;
                        bool real = false, stub = false;
                        if (dep == SOLVABLE_PREREQMARKER)
                                continue;
                        FOR_PROVIDES(q, qq, dep)
                        {
                                if (MAPTST(&inset, q))
                                        real = true;
                                else if (pool->solvables[q].repo == r->stubs)
                                        stub = true;
                        }
                        if (stub && !real)
                                dl_strlist_push_owned(
                                    &out->unmet, dl_asprintf("%s: Depends: %s (excluded)",
                                                             pkg->name, pool_dep2str(pool, dep)));
                }
        }
        (void)stub_ids;
        map_free(&inset);
        queue_free(&installed);
        queue_free(&deps);
        queue_free(&alts);
        qsort(out->packages, out->n_packages, sizeof *out->packages, compare_packages);
        dl_strlist_sort(&out->unmet);
        return rc;
}

int dl_resolve(const struct dl_resolve_request *req, struct dl_resolution *out,
               struct dl_error *err)
{
        struct resolver r = {.req = req};
        Queue roots, stub_ids, job;
        Solver *solv = NULL;
        int rc;

        memset(out, 0, sizeof *out);
        queue_init(&roots);
        queue_init(&stub_ids);
        queue_init(&job);
        r.pool = pool_create();
        pool_setdisttype(r.pool, DISTTYPE_DEB);
        pool_setarch(r.pool, req->arch);
        if ((rc = load_indexes(&r, err)))
                goto out;
        pool_addfileprovides(r.pool);
        pool_createwhatprovides(r.pool);
        add_stubs(&r, &stub_ids);
        map_init(&r.chosen, r.pool->nsolvables);
        r.parent = dl_calloc((size_t)r.pool->nsolvables, sizeof *r.parent);
        r.viability = dl_calloc((size_t)r.pool->nsolvables, 1);
        for (int i = 0; i < stub_ids.count; i++)
                MAPSET(&r.chosen, stub_ids.elements[i]);
        for (size_t i = 0; i < req->packages->n; i++) {
                Id p = find_root(&r, req->packages->v[i], err);
                if (!p) {
                        rc = DL_ERESOLVE;
                        goto out;
                }
                queue_push(&roots, p);
        }
        walk(&r, &roots);
        for (int i = 0; i < roots.count; i++) {
                Solvable *s = r.pool->solvables + roots.elements[i];
                queue_push2(&job, SOLVER_INSTALL | SOLVER_SOLVABLE_NAME, s->name);
        }
        for (int i = 0; i < stub_ids.count; i++)
                queue_push2(&job, SOLVER_INSTALL | SOLVER_SOLVABLE, stub_ids.elements[i]);
        for (Id p = 2; p < r.pool->nsolvables; p++)
                if (MAPTST(&r.chosen, p) && r.pool->solvables[p].repo != r.stubs)
                        queue_push2(&job, SOLVER_FAVOR | SOLVER_SOLVABLE, p);
        solv = solver_create(r.pool);
        solver_set_flag(solv, SOLVER_FLAG_IGNORE_RECOMMENDED, 1);
        int problems = solver_solve(solv, &job);
        if (problems)
                rc = report_problems(&r, solv, problems, err);
        else if (r.first_unmet)
                rc = dl_fail(err, DL_ERESOLVE, "cannot satisfy the packages for %s: %s", req->arch,
                             r.first_unmet);
        else
                rc = collect(&r, solv, &stub_ids, out, err);
out:
        if (solv)
                solver_free(solv);
        queue_free(&roots);
        queue_free(&stub_ids);
        queue_free(&job);
        if (r.considered.size)
                map_free(&r.considered);
        if (r.chosen.size)
                map_free(&r.chosen);
        r.pool->considered = NULL;
        free(r.parent);
        free(r.viability);
        free(r.repo_index);
        free(r.first_unmet);
        priorities_free(&r.prio);
        pool_free(r.pool);
        if (rc)
                dl_resolution_free(out);
        return rc;
}

void dl_resolution_free(struct dl_resolution *res)
{
        for (size_t i = 0; i < res->n_packages; i++) {
                struct dl_package *p = &res->packages[i];
                free(p->name);
                free(p->version);
                free(p->arch);
                free(p->filename);
                free(p->sha256);
                free(p->suite);
                free(p->why);
        }
        free(res->packages);
        dl_strlist_free(&res->unmet);
        memset(res, 0, sizeof *res);
}

int dl_version_compare(const char *a, const char *b)
{
        static Pool *pool;
        if (!pool) {
                pool = pool_create();
                pool_setdisttype(pool, DISTTYPE_DEB);
        }
        /* dpkg treats a missing revision as "0"; libsolv sorts it first. Give the
         * side without one an explicit -0 when the other has one. */
        bool ra = strchr(a, '-') != NULL, rb = strchr(b, '-') != NULL;
        char *na = ra || !rb ? dl_strdup(a) : dl_asprintf("%s-0", a);
        char *nb = rb || !ra ? dl_strdup(b) : dl_asprintf("%s-0", b);
        int c = pool_evrcmp_str(pool, na, nb, EVRCMP_COMPARE);
        free(na);
        free(nb);
        return c < 0 ? -1 : c > 0;
}
