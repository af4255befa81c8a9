#include "distill/postinst.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "distill/log.h"

static int compare_paths(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The OpenSSL subject-name hash of the first certificate in pem, or -1. */
static long subject_hash(const char *pem, size_t len)
{
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        long h = x ? (long)X509_subject_name_hash(x) : -1;
        X509_free(x);
        BIO_free(bio);
        return h;
}

int dl_postinst_ca_certificates(struct dl_fstree *t, long long epoch, bool *made,
                                struct dl_error *err)
{
        static const char prefix[] = "usr/share/ca-certificates/";
        struct dl_strlist certs = {0};
        struct dl_buf bundle = {0};
        int rc = DL_OK;

        *made = false;
        for (size_t i = 0; i < t->n_nodes; i++) {
                const struct dl_node *n = t->nodes[i];
                size_t len = strlen(n->path);
                if (!n->removed && n->type == DL_NODE_FILE &&
                    !strncmp(n->path, prefix, sizeof prefix - 1) && len > 4 &&
                    !strcmp(n->path + len - 4, ".crt"))
                        dl_strlist_push(&certs, n->path);
        }
        if (certs.n == 0)
                return DL_OK;
        qsort(certs.v, certs.n, sizeof *certs.v, compare_paths);
        /* Two certificates may share a subject hash; OpenSSL then looks for HASH.1. */
        struct dl_strlist hashes = {0};
        for (size_t i = 0; i < certs.n && rc == DL_OK; i++) {
                struct dl_buf pem = {0};
                if ((rc = dl_fstree_read(t, certs.v[i], &pem, err))) {
                        dl_buf_free(&pem);
                        break;
                }
                dl_buf_append(&bundle, pem.data, pem.len);
                if (pem.len && pem.data[pem.len - 1] != '\n')
                        dl_buf_puts(&bundle, "\n");
                const char *base = strrchr(certs.v[i], '/') + 1;
                char *stem = dl_strndup(base, strlen(base) - 4);
                char *link = dl_asprintf("etc/ssl/certs/%s.pem", stem);
                char *target = dl_asprintf("/%s", certs.v[i]);
                rc = dl_fstree_add_symlink(t, link, target, epoch, err);
                long h = subject_hash(pem.data, pem.len);
                if (rc == DL_OK && h >= 0) {
                        int k = 0;
                        char *name = NULL;
                        do {
                                free(name);
                                name = dl_asprintf("%08lx.%d", (unsigned long)h, k++);
                        } while (dl_strlist_contains(&hashes, name));
                        dl_strlist_push(&hashes, name);
                        char *hash_link = dl_asprintf("etc/ssl/certs/%s", name);
                        char *hash_target = dl_asprintf("%s.pem", stem);
                        rc = dl_fstree_add_symlink(t, hash_link, hash_target, epoch, err);
                        free(hash_link);
                        free(hash_target);
                        free(name);
                } else if (rc == DL_OK) {
                        dl_warn("ca-certificates: /%s contains no PEM certificate; it is in the "
                                "bundle but has no hash link",
                                certs.v[i]);
                }
                free(stem);
                free(link);
                free(target);
                dl_buf_free(&pem);
        }
        if (rc == DL_OK)
                rc = dl_fstree_write_file(t, "etc/ssl/certs/ca-certificates.crt", bundle.data,
                                          bundle.len, 0644, 0, 0, epoch, err);
        if (rc == DL_OK) {
                dl_info("ca-certificates: wrote /etc/ssl/certs/ca-certificates.crt with %zu "
                        "certificates",
                        certs.n);
                *made = true;
        }
        dl_strlist_free(&hashes);
        dl_strlist_free(&certs);
        dl_buf_free(&bundle);
        return rc;
}

int dl_postinst_timezone(struct dl_fstree *t, long long epoch, struct dl_error *err)
{
        const struct dl_node *utc = dl_fstree_get(t, "usr/share/zoneinfo/Etc/UTC");
        const struct dl_node *have = dl_fstree_get(t, "etc/localtime");
        int rc;

        if (!utc || utc->removed || (have && !have->removed))
                return DL_OK;
        rc = dl_fstree_add_symlink(t, "etc/localtime", "/usr/share/zoneinfo/Etc/UTC", epoch, err);
        if (rc == DL_OK)
                rc =
                    dl_fstree_write_file(t, "etc/timezone", "Etc/UTC\n", 8, 0644, 0, 0, epoch, err);
        return rc;
}

/* Debian release numbers by codename, for os-release without base-files. */
static const char *debian_version_of(const char *codename)
{
        static const char *const map[][2] = {{"buster", "10"},
                                             {"bullseye", "11"},
                                             {"bookworm", "12"},
                                             {"trixie", "13"},
                                             {"forky", "14"}};
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
                if (!strcmp(map[i][0], codename))
                        return map[i][1];
        return NULL;
}

/* The value of KEY in os-release text, without quotes. Caller frees. */
static char *os_release_value(const char *text, const char *key)
{
        size_t klen = strlen(key);
        for (const char *line = text; line && *line;) {
                const char *eol = strchr(line, '\n');
                size_t n = eol ? (size_t)(eol - line) : strlen(line);
                if (n > klen && !strncmp(line, key, klen) && line[klen] == '=') {
                        const char *v = line + klen + 1;
                        size_t vn = n - klen - 1;
                        if (vn >= 2 && (v[0] == '"' || v[0] == '\'') && v[vn - 1] == v[0]) {
                                v++;
                                vn -= 2;
                        }
                        return dl_strndup(v, vn);
                }
                line = eol ? eol + 1 : NULL;
        }
        return NULL;
}

int dl_postinst_os_release(struct dl_fstree *t, const struct dl_spec *spec, long long epoch,
                           struct dl_error *err)
{
        static const char *const keep[] = {"NAME", "VERSION_ID", "VERSION",     "VERSION_CODENAME",
                                           "ID",   "HOME_URL",   "SUPPORT_URL", "BUG_REPORT_URL",
                                           NULL};
        struct dl_buf packaged = {0}, out = {0};
        const struct dl_node *base = dl_fstree_get(t, "usr/lib/os-release");
        int rc = DL_OK;
        const char *codename = spec->sources[0].suites.v[0];
        char *dash = strchr(codename, '-');
        char *suite = dash ? dl_strndup(codename, (size_t)(dash - codename)) : dl_strdup(codename);

        if (base && !base->removed && base->type == DL_NODE_FILE)
                rc = dl_fstree_read(t, "usr/lib/os-release", &packaged, err);
        if (rc)
                goto out;
        if (packaged.len) {
                char *name = os_release_value(packaged.data, "PRETTY_NAME");
                dl_buf_printf(&out, "PRETTY_NAME=\"Distroless %s (%s)\"\n", spec->name,
                              name ? name : "Debian GNU/Linux");
                free(name);
                for (int i = 0; keep[i]; i++) {
                        char *v = os_release_value(packaged.data, keep[i]);
                        if (v)
                                dl_buf_printf(&out, "%s=\"%s\"\n", keep[i], v);
                        free(v);
                }
        } else {
                const char *version = debian_version_of(suite);
                if (version)
                        dl_buf_printf(&out,
                                      "PRETTY_NAME=\"Distroless %s (Debian GNU/Linux %s (%s))\"\n",
                                      spec->name, version, suite);
                else
                        dl_buf_printf(&out, "PRETTY_NAME=\"Distroless %s (Debian GNU/Linux %s)\"\n",
                                      spec->name, suite);
                dl_buf_puts(&out, "NAME=\"Debian GNU/Linux\"\nID=debian\n");
                if (version)
                        dl_buf_printf(&out, "VERSION_ID=\"%s\"\nVERSION=\"%s (%s)\"\n", version,
                                      version, suite);
                dl_buf_printf(&out, "VERSION_CODENAME=%s\n", suite);
                dl_buf_puts(&out, "HOME_URL=\"https://www.debian.org/\"\n");
        }
        dl_buf_printf(&out, "VARIANT=\"distroless\"\nVARIANT_ID=%s\n", spec->name);
        rc = dl_fstree_write_file(t, "usr/lib/os-release", out.data, out.len, 0644, 0, 0, epoch,
                                  err);
        const struct dl_node *link = dl_fstree_get(t, "etc/os-release");
        if (rc == DL_OK && !(link && !link->removed))
                rc =
                    dl_fstree_add_symlink(t, "etc/os-release", "../usr/lib/os-release", epoch, err);
out:
        free(suite);
        dl_buf_free(&packaged);
        dl_buf_free(&out);
        return rc;
}

int dl_postinst_nsswitch(struct dl_fstree *t, long long epoch, struct dl_error *err)
{
        static const char text[] = "# Generated by distill: the image's accounts are in files.\n"
                                   "passwd: files\n"
                                   "group: files\n"
                                   "shadow: files\n"
                                   "gshadow: files\n"
                                   "hosts: files dns\n"
                                   "networks: files\n"
                                   "protocols: files\n"
                                   "services: files\n"
                                   "ethers: files\n"
                                   "rpc: files\n";
        const struct dl_node *have = dl_fstree_get(t, "etc/nsswitch.conf");
        if (have && !have->removed)
                return DL_OK;
        return dl_fstree_write_file(t, "etc/nsswitch.conf", text, sizeof text - 1, 0644, 0, 0,
                                    epoch, err);
}

static bool live_node(const struct dl_fstree *t, const char *abs)
{
        while (*abs == '/')
                abs++;
        const struct dl_node *n = dl_fstree_get(t, abs);
        return n && !n->removed;
}

/* The word after a flag-free position n (0-based) in a shell command line. */
static char *nth_operand(const char *line, int n)
{
        char *copy = dl_strdup(line), *save = NULL, *found = NULL;
        int k = 0;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (w[0] == '-')
                        continue;
                if (k++ == n) {
                        found = dl_strdup(w);
                        break;
                }
        }
        free(copy);
        return found;
}

/* The account command that starts at cmd, up to the shell operator or
 * parenthesis that ends it ("groupadd -g 42 shadow || (" gives "groupadd -g 42
 * shadow"). The caller frees it. */
static char *shell_command(const char *cmd)
{
        size_t n = strcspn(cmd, "|&;()<>\n");
        while (n > 0 && (cmd[n - 1] == ' ' || cmd[n - 1] == '\t'))
                n--;
        return dl_strndup(cmd, n);
}

static void report_line(const struct dl_fstree *t, const struct dl_spec *spec, const char *pkg,
                        const char *line, size_t *count)
{
        const char *p;
        if ((p = strstr(line, "update-alternatives")) && strstr(p, "--install")) {
                char *link = nth_operand(strstr(p, "--install") + 9, 0);
                char *target = nth_operand(strstr(p, "--install") + 9, 2);
                if (link && link[0] == '/' && !live_node(t, link)) {
                        dl_warn("%s: its postinst runs update-alternatives for %s -> %s, which the "
                                "image lacks; declare it under symlinks if the image needs it",
                                pkg, link, target ? target : "?");
                        (*count)++;
                }
                free(link);
                free(target);
        } else if ((p = strstr(line, "adduser ")) || (p = strstr(line, "useradd ")) ||
                   (p = strstr(line, "addgroup ")) || (p = strstr(line, "groupadd "))) {
                char *cmd = shell_command(p);
                dl_warn("%s: its maintainer scripts create accounts (%.80s); declare the ones the "
                        "image needs under accounts",
                        pkg, cmd);
                free(cmd);
                (*count)++;
        } else if ((p = strstr(line, "setcap ")) != NULL) {
                dl_warn("%s: its postinst sets file capabilities (%.80s), which the image does not "
                        "carry; run the program with the capability granted by the runtime",
                        pkg, p);
                (*count)++;
        } else if ((p = strstr(line, "mkdir ")) || (p = strstr(line, "install -d "))) {
                char *dir = NULL;
                char *copy = dl_strdup(p);
                char *save = NULL;
                /* The last absolute operand is the directory: "mkdir -m $(stat ... /usr/local)
                 * /usr/local/share/x" names the one it creates last. */
                for (char *w = strtok_r(copy, " \t;", &save); w; w = strtok_r(NULL, " \t;", &save))
                        if (w[0] == '/' && !strpbrk(w, "()$`\"'")) {
                                free(dir);
                                dir = dl_strdup(w);
                        }
                free(copy);
                if (dir && !strchr(dir, '$') && !live_node(t, dir)) {
                        bool declared = false;
                        for (size_t i = 0; i < spec->n_directories && !declared; i++)
                                declared = !strcmp(spec->directories[i].path, dir);
                        if (!declared) {
                                dl_warn("%s: its maintainer scripts create the directory %s, which "
                                        "the image lacks; declare it under directories if the "
                                        "image needs it",
                                        pkg, dir);
                                (*count)++;
                        }
                }
                free(dir);
        }
}

/* Whether some SAPI's conf.d links module name (PRIORITY-NAME.ini). */
static bool php_module_enabled(const struct dl_fstree *t, const char *name)
{
        size_t len = strlen(name);
        for (size_t i = 0; i < t->n_nodes; i++) {
                const struct dl_node *n = t->nodes[i];
                const char *conf = n->removed ? NULL : strstr(n->path, "/conf.d/");
                const char *dash = conf ? strchr(conf + 8, '-') : NULL;
                if (dash && !strncmp(n->path, "etc/php/", 8) && !strncmp(dash + 1, name, len) &&
                    !strcmp(dash + 1 + len, ".ini"))
                        return true;
        }
        return false;
}

/* php packages enable every module they ship from postinst ("for dsoname in a b").
 * Report the modules the image leaves disabled. */
static void report_php_modules(const struct dl_fstree *t, const char *pkg, const char *script,
                               size_t *count)
{
        const char *p = strstr(script, "for dsoname in ");
        if (!p || !strstr(script, "php_invoke enmod"))
                return;
        p += 15;
        const char *end = strstr(p, "; do");
        if (!end)
                return;
        char *list = dl_strndup(p, (size_t)(end - p)), *save = NULL;
        struct dl_buf off = {0};
        for (char *w = strtok_r(list, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
                if (!php_module_enabled(t, w))
                        dl_buf_printf(&off, "%s%s", off.len ? ", " : "", w);
        if (off.len) {
                dl_info("%s: its postinst would enable %s (phpenmod); they stay disabled because "
                        "php.extensions neither lists nor requires them",
                        pkg, off.data);
                (*count)++;
        }
        dl_buf_free(&off);
        free(list);
}

/* Whether the dynamic loader searches dir without ld.so.cache: Debian's glibc
 * searches /lib, /usr/lib and their multiarch subdirectories (x86_64-linux-gnu, ...)
 * by default. */
static bool default_library_dir(const char *dir)
{
        while (*dir == '/')
                dir++;
        if (!strncmp(dir, "usr/", 4))
                dir += 4;
        if (!strcmp(dir, "lib"))
                return true;
        return !strncmp(dir, "lib/", 4) && !strchr(dir + 4, '/') && strstr(dir + 4, "-linux-");
}

/* Library paths in ld.so.conf.d are only searched through ld.so.cache, which
 * ldconfig would have built: report those that hold something and are not searched
 * anyway. */
static size_t report_ld_conf(const struct dl_fstree *t, const char *pkg, const char *conf)
{
        struct dl_buf text = {0};
        struct dl_error ignored;
        size_t count = 0;
        if (dl_fstree_read(t, conf, &text, &ignored) == DL_OK) {
                char *save = NULL;
                for (char *l = strtok_r(text.data, "\n", &save); l;
                     l = strtok_r(NULL, "\n", &save)) {
                        while (*l == ' ' || *l == '\t')
                                l++;
                        if (*l != '/' || default_library_dir(l) || !live_node(t, l))
                                continue;
                        dl_warn(
                            "%s: /%s adds the library path %s, which needs ld.so.cache (ldconfig "
                            "does not run); set LD_LIBRARY_PATH in image.env if a program needs it",
                            pkg, conf, l);
                        count++;
                }
        }
        dl_buf_free(&text);
        return count;
}

size_t dl_postinst_report_skipped(const struct dl_fstree *t, const struct dl_spec *spec,
                                  const struct dl_package *pkgs,
                                  const struct dl_deb_control *controls, size_t n)
{
        size_t count = 0;
        for (size_t i = 0; i < n; i++) {
                const char *script = controls[i].postinst;
                if (script) {
                        report_php_modules(t, pkgs[i].name, script, &count);
                        for (const char *line = script; line && *line;) {
                                const char *eol = strchr(line, '\n');
                                char *l =
                                    eol ? dl_strndup(line, (size_t)(eol - line)) : dl_strdup(line);
                                const char *s = l;
                                while (*s == ' ' || *s == '\t')
                                        s++;
                                if (*s != '#')
                                        report_line(t, spec, pkgs[i].name, s, &count);
                                free(l);
                                line = eol ? eol + 1 : NULL;
                        }
                }
        }
        for (size_t i = 0; i < t->n_nodes; i++) {
                const struct dl_node *node = t->nodes[i];
                if (!node->removed && node->type == DL_NODE_FILE && node->owner >= 0 &&
                    (size_t)node->owner < n && !strncmp(node->path, "etc/ld.so.conf.d/", 17))
                        count += report_ld_conf(t, pkgs[node->owner].name, node->path);
        }
        return count;
}

/* Follow a symlink's target through the table: 1 when it ends at a live node. */
static bool resolves(const struct dl_fstree *t, const char *link_path, const char *target,
                     int depth)
{
        if (depth > 40)
                return false;
        struct dl_buf path = {0};
        if (target[0] != '/') {
                const char *slash = strrchr(link_path, '/');
                if (slash)
                        dl_buf_append(&path, link_path, (size_t)(slash - link_path));
        }
        /* Resolve component by component so that ".." and symlinked directories work. */
        char *copy = dl_strdup(target), *save = NULL;
        bool ok = true;
        for (char *c = strtok_r(copy, "/", &save); c && ok; c = strtok_r(NULL, "/", &save)) {
                if (!strcmp(c, "."))
                        continue;
                if (!strcmp(c, "..")) {
                        char *slash = path.len ? strrchr(dl_buf_str(&path), '/') : NULL;
                        path.len = slash ? (size_t)(slash - path.data) : 0;
                        dl_buf_str(&path);
                        continue;
                }
                if (path.len)
                        dl_buf_puts(&path, "/");
                dl_buf_puts(&path, c);
                const struct dl_node *n = dl_fstree_get(t, dl_buf_str(&path));
                if (!n || n->removed) {
                        ok = false;
                } else if (n->type == DL_NODE_SYMLINK) {
                        char *rest = save && *save ? dl_asprintf("%s/%s", n->target, save)
                                                   : dl_strdup(n->target);
                        char *here = dl_strdup(dl_buf_str(&path));
                        ok = resolves(t, here, rest, depth + 1);
                        free(rest);
                        free(here);
                        break;
                }
        }
        free(copy);
        dl_buf_free(&path);
        return ok;
}

/* Whether a dangling symlink's target, taken lexically, lies at or under a path the
 * filter dropped. */
static bool points_into_filtered(const struct dl_fstree *t, const struct dl_node *link)
{
        char *joined;
        if (link->target[0] == '/') {
                joined = dl_strdup(link->target + 1);
        } else {
                const char *slash = strrchr(link->path, '/');
                joined = slash ? dl_asprintf("%.*s/%s", (int)(slash - link->path), link->path,
                                             link->target)
                               : dl_strdup(link->target);
        }
        struct dl_error ignored;
        char *norm = dl_fstree_normalize(joined, false, "symlink", &ignored);
        bool hit = false;
        /* Drop ".." the lexical way; normalize refuses it, so resolve by hand. */
        if (!norm) {
                struct dl_buf b = {0};
                char *save = NULL;
                for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                        if (!strcmp(c, "."))
                                continue;
                        if (!strcmp(c, "..")) {
                                char *s = b.len ? strrchr(dl_buf_str(&b), '/') : NULL;
                                b.len = s ? (size_t)(s - b.data) : 0;
                                continue;
                        }
                        dl_buf_printf(&b, "%s%s", b.len ? "/" : "", c);
                }
                norm = dl_strdup(b.data ? dl_buf_str(&b) : "");
                dl_buf_free(&b);
        }
        for (char *p = norm; p && !hit;) {
                const struct dl_node *n = dl_fstree_get(t, norm);
                hit = n && n->filtered;
                char *slash = strrchr(norm, '/');
                if (!slash)
                        break;
                *slash = '\0';
                (void)p;
        }
        free(norm);
        free(joined);
        return hit;
}

size_t dl_postinst_check_symlinks(const struct dl_fstree *t)
{
        size_t n_sorted, count = 0;
        struct dl_node **sorted = dl_fstree_sorted(t, &n_sorted);
        for (size_t i = 0; i < n_sorted; i++) {
                const struct dl_node *n = sorted[i];
                if (n->type == DL_NODE_SYMLINK && !resolves(t, n->path, n->target, 0)) {
                        if (points_into_filtered(t, n))
                                dl_warn("the symlink /%s -> %s points into a path that "
                                        "paths.exclude drops",
                                        n->path, n->target);
                        else
                                dl_warn("the symlink /%s -> %s points to nothing in the image",
                                        n->path, n->target);
                        count++;
                }
        }
        free(sorted);
        return count;
}
