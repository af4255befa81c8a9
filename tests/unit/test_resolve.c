/* dl_resolve on small Packages files written by each test: which packages and
 * versions the closure contains, and how an unsatisfiable request fails. Where
 * apt has an equivalent, the expected choice is the one apt 2.6 made for the same
 * archive with apt-get -s when the tests were written. */
#include "testutil.h"

#include "distill/resolve.h"

#define MAX_INDEXES 4

struct resolve_ctx {
        char *dir;
        char *paths[MAX_INDEXES];
        struct dl_index indexes[MAX_INDEXES];
        size_t n_indexes;
        struct dl_strlist packages;
        struct dl_strlist exclude;
        struct dl_resolution res;
        struct dl_error err;
        char *summary;
};

static int setup(void **state)
{
        struct resolve_ctx *c = calloc(1, sizeof *c);
        if (c == NULL)
                return -1;
        c->dir = tu_mkdtemp();
        *state = c;
        return 0;
}

static int teardown(void **state)
{
        struct resolve_ctx *c = *state;
        dl_resolution_free(&c->res);
        dl_strlist_free(&c->packages);
        dl_strlist_free(&c->exclude);
        for (size_t i = 0; i < c->n_indexes; i++)
                free(c->paths[i]);
        free(c->summary);
        tu_rm_rf(c->dir);
        free(c->dir);
        free(c);
        return 0;
}

/* Write stanzas as the next Packages file and add it to the request. */
static void add_index(struct resolve_ctx *c, const char *stanzas, int source, const char *suite)
{
        assert_true(c->n_indexes < MAX_INDEXES);
        char name[32];
        snprintf(name, sizeof name, "Packages.%zu", c->n_indexes);
        c->paths[c->n_indexes] = tu_write_packages(c->dir, name, stanzas);
        c->indexes[c->n_indexes] = (struct dl_index){
            .path = c->paths[c->n_indexes],
            .source = source,
            .suite = suite,
            .component = "main",
        };
        c->n_indexes++;
}

static void split_words(struct dl_strlist *l, const char *words)
{
        dl_strlist_free(l);
        memset(l, 0, sizeof *l);
        if (words == NULL)
                return;
        char *copy = strdup(words);
        char *save = NULL;
        for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
                dl_strlist_push(l, w);
        free(copy);
}

/* Resolve the space-separated packages for arch against the indexes added so
 * far, replacing any earlier result, and return dl_resolve's code. */
static int resolve(struct resolve_ctx *c, const char *arch, const char *packages,
                   const char *exclude)
{
        dl_resolution_free(&c->res);
        memset(&c->res, 0, sizeof c->res);
        memset(&c->err, 0, sizeof c->err);
        split_words(&c->packages, packages);
        split_words(&c->exclude, exclude);
        struct dl_resolve_request req = {
            .arch = arch,
            .indexes = c->indexes,
            .n_indexes = c->n_indexes,
            .packages = &c->packages,
            .exclude = &c->exclude,
        };
        int rc = dl_resolve(&req, &c->res, &c->err);
        if (rc != DL_OK)
                print_message("dl_resolve: %s\n", c->err.msg);
        return rc;
}

/* Return the result as "name=version ..." in the order dl_resolve returned it. */
static const char *summary(struct resolve_ctx *c)
{
        struct tu_text t = {0};
        for (size_t i = 0; i < c->res.n_packages; i++) {
                const struct dl_package *p = &c->res.packages[i];
                tu_text_printf(&t, "%s%s=%s", i ? " " : "", p->name, p->version);
        }
        free(c->summary);
        c->summary = t.s ? t.s : strdup("");
        return c->summary;
}

static const struct dl_package *find(const struct resolve_ctx *c, const char *name)
{
        for (size_t i = 0; i < c->res.n_packages; i++)
                if (strcmp(c->res.packages[i].name, name) == 0)
                        return &c->res.packages[i];
        return NULL;
}

/* Return the named package, failing the test when the result lacks it. */
static const struct dl_package *get(const struct resolve_ctx *c, const char *name)
{
        const struct dl_package *p = find(c, name);
        if (p == NULL)
                fail_msg("%s is not in the result", name);
        return p;
}

/* Join all unmet entries with " | ", for messages and substring checks. */
static char *unmet_text(const struct resolve_ctx *c)
{
        struct tu_text t = {0};
        for (size_t i = 0; i < c->res.unmet.n; i++)
                tu_text_printf(&t, "%s%s", i ? " | " : "", c->res.unmet.v[i]);
        return t.s ? t.s : strdup("");
}

static void expect_resolve_error(struct resolve_ctx *c, int rc)
{
        assert_int_equal(rc, DL_ERESOLVE);
        assert_int_equal(c->err.code, DL_ERESOLVE);
        assert_true(c->err.msg[0] != '\0');
}

/* Versioned Provides ------------------------------------------------------ */

static const char gnutls_t64[] = "Package: libgnutls30t64\n"
                                 "Version: 3.8.3-1.1ubuntu4\n"
                                 "Architecture: amd64\n"
                                 "Provides: libgnutls30 (= 3.8.3-1.1ubuntu4)\n"
                                 "\n"
                                 "Package: libgnutls30t64\n"
                                 "Version: 3.8.3-1.1ubuntu3\n"
                                 "Architecture: amd64\n"
                                 "Provides: libgnutls30 (= 3.8.3-1.1ubuntu3)\n"
                                 "\n";

static void test_versioned_provides_satisfies(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
                         "Depends: libgnutls30 (>= 3.8.1)\n\n");
        tu_text_puts(&t, gnutls_t64);
        add_index(c, t.s, 0, "noble");
        tu_text_free(&t);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "libgnutls30t64=3.8.3-1.1ubuntu4 myapp=1.0");
}

static void test_versioned_provides_too_low(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
                         "Depends: libgnutls30 (>= 3.9)\n\n");
        tu_text_puts(&t, gnutls_t64);
        add_index(c, t.s, 0, "noble");
        tu_text_free(&t);

        expect_resolve_error(c, resolve(c, "amd64", "myapp", NULL));
        assert_contains_name(c->err.msg, "libgnutls30");
}

/* A real package too old for the dependency must not shadow a newer provider. */
static void test_versioned_provides_over_old_real(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
                         "Depends: libgnutls30 (>= 3.8.1)\n\n"
                         "Package: libgnutls30\nVersion: 3.7.9-2\nArchitecture: amd64\n\n");
        tu_text_puts(&t, gnutls_t64);
        add_index(c, t.s, 0, "noble");
        tu_text_free(&t);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "libgnutls30t64=3.8.3-1.1ubuntu4 myapp=1.0");
}

/* An unversioned Provides never satisfies a versioned dependency, and apt 2.6
 * rejects this case as well. */
static void test_unversioned_provides_not_versioned(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: myapp\nVersion: 1.0\nArchitecture: amd64\nDepends: foo (>= 1)\n\n"
                  "Package: bar\nVersion: 5.0\nArchitecture: amd64\nProvides: foo\n\n",
                  0, "bookworm");

        expect_resolve_error(c, resolve(c, "amd64", "myapp", NULL));
        assert_contains_name(c->err.msg, "foo");
}

static void test_unversioned_provides_unversioned(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: myapp\nVersion: 1.0\nArchitecture: amd64\nDepends: foo\n\n"
                  "Package: bar\nVersion: 5.0\nArchitecture: amd64\nProvides: foo\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "bar=5.0 myapp=1.0");
}

/* bar sorts before foo, so a resolver that takes the first provider by name
 * would pick it. */
static void test_real_preferred_over_virtual(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: myapp\nVersion: 1.0\nArchitecture: amd64\nDepends: foo\n\n"
                  "Package: bar\nVersion: 9.0\nArchitecture: amd64\nProvides: foo\n\n"
                  "Package: foo\nVersion: 1.0\nArchitecture: amd64\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "foo=1.0 myapp=1.0");
        assert_null(find(c, "bar"));
}

/* Alternatives ------------------------------------------------------------ */

static const char alt_root[] = "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
                               "Depends: libfoo2 | libfoo1 (>= 1.5)\n\n";

static void test_alternatives_first_present(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, alt_root);
        /* libfoo1 sorts first and has the higher version, but neither may decide. */
        tu_text_puts(&t, "Package: libfoo1\nVersion: 1.6\nArchitecture: amd64\n\n"
                         "Package: libfoo2\nVersion: 1.0\nArchitecture: amd64\n\n");
        add_index(c, t.s, 0, "bookworm");
        tu_text_free(&t);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "libfoo2=1.0 myapp=1.0");
}

static void test_alternatives_second_too_old(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, alt_root);
        tu_text_puts(&t, "Package: libfoo1\nVersion: 1.4\nArchitecture: amd64\n\n");
        add_index(c, t.s, 0, "bookworm");
        tu_text_free(&t);

        expect_resolve_error(c, resolve(c, "amd64", "myapp", NULL));
        assert_contains_name(c->err.msg, "libfoo1");
}

static void test_alternatives_second_used(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, alt_root);
        tu_text_puts(&t, "Package: libfoo1\nVersion: 1.6\nArchitecture: amd64\n\n");
        add_index(c, t.s, 0, "bookworm");
        tu_text_free(&t);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "libfoo1=1.6 myapp=1.0");
}

/* The first alternative exists but at a version that does not satisfy it. */
static void test_alternatives_first_too_old(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
                  "Depends: libfoo2 (>= 2.0) | libfoo1\n\n"
                  "Package: libfoo2\nVersion: 1.0\nArchitecture: amd64\n\n"
                  "Package: libfoo1\nVersion: 1.6\nArchitecture: amd64\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "libfoo1=1.6 myapp=1.0");
}

/* The first alternative exists, but its own dependency cannot be met, so apt
 * 2.6 installs the second. */
static void test_alternatives_first_uninstallable(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: myapp\nVersion: 1.0\nArchitecture: amd64\nDepends: a | b\n\n"
                  "Package: a\nVersion: 1.0\nArchitecture: amd64\nDepends: missing-lib\n\n"
                  "Package: b\nVersion: 1.0\nArchitecture: amd64\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "b=1.0 myapp=1.0");
}

/* aaa-mail provides pinentry and sorts first. apt installs the first
 * alternative, pinentry-curses, and nothing else. */
static void test_alternatives_pinentry_trap(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: aaa-mail\nVersion: 9.9\nArchitecture: amd64\n"
                  "Provides: pinentry\n\n"
                  "Package: gnupg-agent\nVersion: 2.2.40-1.1\nArchitecture: all\n"
                  "Depends: pinentry-curses | pinentry\n\n"
                  "Package: pinentry-curses\nVersion: 1.2.1-1\nArchitecture: amd64\n"
                  "Provides: pinentry\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "gnupg-agent", NULL), DL_OK);
        assert_string_equal(summary(c), "gnupg-agent=2.2.40-1.1 pinentry-curses=1.2.1-1");
        assert_null(find(c, "aaa-mail"));
}

/* Several suites ---------------------------------------------------------- */

static const char suite_a[] =
    "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
    "Depends: libssl3 (>= 3.0.0)\n\n"
    "Package: libssl3\nVersion: 3.0.11-1~deb12u1\nArchitecture: amd64\n\n";
static const char suite_b[] =
    "Package: libssl3\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\n\n";

static void expect_libssl3_from_b(struct resolve_ctx *c)
{
        assert_string_equal(summary(c), "libssl3=3.0.11-1~deb12u2 myapp=1.0");
        size_t count = 0;
        for (size_t i = 0; i < c->res.n_packages; i++)
                count += strcmp(c->res.packages[i].name, "libssl3") == 0;
        assert_int_equal(count, 1);
        const struct dl_package *ssl = get(c, "libssl3");
        assert_int_equal(ssl->source, 1);
        assert_non_null(ssl->suite);
        assert_string_equal(ssl->suite, "bookworm-security");
        assert_contains(ssl->filename, "libssl3_3.0.11-1~deb12u2_amd64.deb");
        const struct dl_package *app = get(c, "myapp");
        assert_int_equal(app->source, 0);
        assert_string_equal(app->suite, "bookworm");
}

static void test_highest_version_across_suites(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c, suite_a, 0, "bookworm");
        add_index(c, suite_b, 1, "bookworm-security");

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        expect_libssl3_from_b(c);

        /* The same indexes listed in the other order. */
        struct dl_index first = c->indexes[0];
        c->indexes[0] = c->indexes[1];
        c->indexes[1] = first;
        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        expect_libssl3_from_b(c);
}

/* The same version in two suites is one package, read from one of them. */
static void test_same_version_two_suites(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c, suite_b, 0, "bookworm");
        add_index(c, suite_b, 1, "bookworm-security");

        assert_int_equal(resolve(c, "amd64", "libssl3", NULL), DL_OK);
        assert_string_equal(summary(c), "libssl3=3.0.11-1~deb12u2");
        const struct dl_package *ssl = get(c, "libssl3");
        assert_true(ssl->source == 0 || ssl->source == 1);
        assert_string_equal(ssl->suite, ssl->source == 0 ? "bookworm" : "bookworm-security");
}

/* Pre-Depends ------------------------------------------------------------- */

static void test_pre_depends_followed(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: coreutils\nVersion: 9.1-1\nArchitecture: amd64\n"
                  "Essential: yes\n"
                  "Pre-Depends: libacl1 (>= 2.2.23), libattr1 (>= 1:2.4.44), libc6 (>= 2.34),"
                  " libgmp10 (>= 2:6.2.1+dfsg1), libselinux1 (>= 3.1~)\n\n"
                  "Package: libacl1\nVersion: 2.3.1-3\nArchitecture: amd64\n"
                  "Depends: libc6 (>= 2.33)\n\n"
                  "Package: libattr1\nVersion: 1:2.5.1-4\nArchitecture: amd64\n"
                  "Depends: libc6 (>= 2.4)\n\n"
                  "Package: libc6\nVersion: 2.36-9+deb12u10\nArchitecture: amd64\n"
                  "Depends: libgcc-s1\n\n"
                  "Package: libgcc-s1\nVersion: 12.2.0-14\nArchitecture: amd64\n"
                  "Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)\n\n"
                  "Package: gcc-12-base\nVersion: 12.2.0-14\nArchitecture: amd64\n\n"
                  "Package: libgmp10\nVersion: 2:6.2.1+dfsg1-1.1\nArchitecture: amd64\n"
                  "Depends: libc6 (>= 2.14)\n\n"
                  "Package: libselinux1\nVersion: 3.4-1+b6\nArchitecture: amd64\n"
                  "Depends: libc6 (>= 2.34), libpcre2-8-0 (>= 10.22)\n\n"
                  "Package: libpcre2-8-0\nVersion: 10.42-1\nArchitecture: amd64\n"
                  "Pre-Depends: libc6 (>= 2.14)\n\n"
                  "Package: unrelated\nVersion: 1.0\nArchitecture: amd64\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "coreutils", NULL), DL_OK);
        assert_string_equal(summary(c), "coreutils=9.1-1 gcc-12-base=12.2.0-14 "
                                        "libacl1=2.3.1-3 libattr1=1:2.5.1-4 "
                                        "libc6=2.36-9+deb12u10 libgcc-s1=12.2.0-14 "
                                        "libgmp10=2:6.2.1+dfsg1-1.1 libpcre2-8-0=10.42-1 "
                                        "libselinux1=3.4-1+b6");
}

/* gawk sorts first and provides awk too, but apt installs the required one. */
static const char awk_index[] = "Package: gawk\nVersion: 1:5.2.1-2\nArchitecture: amd64\n"
                                "Priority: optional\nProvides: awk, nawk\n\n"
                                "Package: mawk\nVersion: 1.3.4.20200120-3.1\nArchitecture: amd64\n"
                                "Priority: required\nProvides: awk\n\n";

static void test_pre_depends_virtual_required(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
                         "Pre-Depends: awk\n\n");
        tu_text_puts(&t, awk_index);
        add_index(c, t.s, 0, "bookworm");
        tu_text_free(&t);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "mawk=1.3.4.20200120-3.1 myapp=1.0");
}

static void test_virtual_single_provider(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
                         "Depends: nawk\n\n");
        tu_text_puts(&t, awk_index);
        add_index(c, t.s, 0, "bookworm");
        tu_text_free(&t);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "gawk=1:5.2.1-2 myapp=1.0");
}

/* Architectures ----------------------------------------------------------- */

static const char arm64_index[] = "Package: coreutils\nVersion: 9.1-1\nArchitecture: arm64\n\n"
                                  "Package: ucf\nVersion: 3.0043+nmu1\nArchitecture: all\n"
                                  "Depends: coreutils (>= 5.91)\n\n";

static void test_arch_all_for_target(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c, arm64_index, 0, "bookworm");

        assert_int_equal(resolve(c, "arm64", "ucf", NULL), DL_OK);
        assert_string_equal(summary(c), "coreutils=9.1-1 ucf=3.0043+nmu1");
        assert_string_equal(get(c, "ucf")->arch, "all");
        assert_string_equal(get(c, "coreutils")->arch, "arm64");
}

/* An amd64 index exists on disk but is not part of the arm64 request. */
static void test_arch_other_index_unused(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c, arm64_index, 0, "bookworm");
        char *amd64 = tu_write_packages(c->dir, "Packages.amd64",
                                        "Package: intel-microcode\nVersion: 3.20240813.2\n"
                                        "Architecture: amd64\n\n");

        int rc = resolve(c, "arm64", "ucf intel-microcode", NULL);
        free(amd64);
        expect_resolve_error(c, rc);
        assert_contains_name(c->err.msg, "intel-microcode");
}

/* Stanzas of another architecture inside the given index are never installable
 * for the target, even at a higher version. */
static void test_arch_foreign_stanza_ignored(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, arm64_index);
        tu_text_puts(&t, "Package: coreutils\nVersion: 9.4-3\nArchitecture: amd64\n\n"
                         "Package: intel-microcode\nVersion: 3.20240813.2\n"
                         "Architecture: amd64\n\n");
        add_index(c, t.s, 0, "bookworm");
        tu_text_free(&t);

        assert_int_equal(resolve(c, "arm64", "ucf", NULL), DL_OK);
        assert_string_equal(summary(c), "coreutils=9.1-1 ucf=3.0043+nmu1");
        assert_string_equal(get(c, "coreutils")->arch, "arm64");

        expect_resolve_error(c, resolve(c, "arm64", "intel-microcode", NULL));
        assert_contains_name(c->err.msg, "intel-microcode");
}

/* A ":any" qualifier on a Multi-Arch: allowed package, as interpreters use. */
static void test_multiarch_any_qualifier(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: myapp\nVersion: 1.0\nArchitecture: all\n"
                  "Depends: perl:any\n\n"
                  "Package: perl\nVersion: 5.36.0-7+deb12u1\nArchitecture: amd64\n"
                  "Multi-Arch: allowed\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "myapp=1.0 perl=5.36.0-7+deb12u1");
}

/* Relation fields as some archives write them, without any spaces. */
static void test_relations_without_spaces(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
                  "Depends: libfoo1(>=1.5),libbar2|libbar1,libbaz(<<2)\n\n"
                  "Package: libfoo1\nVersion: 1.6\nArchitecture: amd64\n\n"
                  "Package: libbar1\nVersion: 1.0\nArchitecture: amd64\n\n"
                  "Package: libbaz\nVersion: 2~rc1\nArchitecture: amd64\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "libbar1=1.0 libbaz=2~rc1 libfoo1=1.6 myapp=1.0");
}

/* Epochs and tildes ------------------------------------------------------- */

static const char epoch_index[] = "Package: foo\nVersion: 2.0\nArchitecture: amd64\n\n"
                                  "Package: foo\nVersion: 1:0.9\nArchitecture: amd64\n\n";

static void add_root_and(struct resolve_ctx *c, const char *depends, const char *rest)
{
        struct tu_text t = {0};
        tu_text_printf(&t, "Package: myapp\nVersion: 1.0\nArchitecture: amd64\nDepends: %s\n\n",
                       depends);
        tu_text_puts(&t, rest);
        add_index(c, t.s, 0, "bookworm");
        tu_text_free(&t);
}

/* 2.0 is 0:2.0, lower than 1:1.0, and 1:0.9 is lower too. */
static void test_epoch_unsatisfiable(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "foo (>= 1:1.0)", epoch_index);

        expect_resolve_error(c, resolve(c, "amd64", "myapp", NULL));
        assert_contains_name(c->err.msg, "foo");
}

static void test_epoch_satisfied(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "foo (>= 1:0.5)", epoch_index);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "foo=1:0.9 myapp=1.0");
}

/* Without a version constraint the highest version still wins: 1:0.9 > 2.0. */
static void test_epoch_highest_unversioned(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "foo", epoch_index);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "foo=1:0.9 myapp=1.0");
}

static const char tilde_index[] = "Package: foo\nVersion: 1.0~rc1-1\nArchitecture: amd64\n\n";

static void test_tilde_below_release(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "foo (>= 1.0)", tilde_index);

        expect_resolve_error(c, resolve(c, "amd64", "myapp", NULL));
        assert_contains_name(c->err.msg, "foo");
}

static void test_tilde_satisfies_tilde_bound(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "foo (>= 1.0~)", tilde_index);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "foo=1.0~rc1-1 myapp=1.0");
}

/* Strict relations: << and >> exclude the bound itself. */
static void test_strict_relations(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "foo (<< 2.0), bar (>> 1.0)",
                     "Package: foo\nVersion: 1.9\nArchitecture: amd64\n\n"
                     "Package: bar\nVersion: 1.0+b1\nArchitecture: amd64\n\n");

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "bar=1.0+b1 foo=1.9 myapp=1.0");
}

static void test_strict_less_excludes_bound(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "foo (<< 2.0)", "Package: foo\nVersion: 2.0\nArchitecture: amd64\n\n");

        expect_resolve_error(c, resolve(c, "amd64", "myapp", NULL));
        assert_contains_name(c->err.msg, "foo");
}

static void test_strict_greater_excludes_bound(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "bar (>> 1.0)", "Package: bar\nVersion: 1.0\nArchitecture: amd64\n\n");

        expect_resolve_error(c, resolve(c, "amd64", "myapp", NULL));
        assert_contains_name(c->err.msg, "bar");
}

/* Exclude ----------------------------------------------------------------- */

static const char exclude_index[] = "Package: big\nVersion: 2.0\nArchitecture: amd64\n"
                                    "Depends: bigdep\n\n"
                                    "Package: bigdep\nVersion: 1.0\nArchitecture: amd64\n\n"
                                    "Package: small\nVersion: 1.0\nArchitecture: amd64\n\n";

static void test_exclude_dependency(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "big", exclude_index);

        assert_int_equal(resolve(c, "amd64", "myapp", "big"), DL_OK);
        assert_string_equal(summary(c), "myapp=1.0");
        assert_null(find(c, "bigdep"));

        char *unmet = unmet_text(c);
        print_message("unmet: %s\n", unmet);
        assert_true(c->res.unmet.n >= 1);
        assert_contains_name(unmet, "myapp");
        assert_contains_name(unmet, "big");
        free(unmet);
}

static void test_exclude_alternative(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "big | small", exclude_index);

        assert_int_equal(resolve(c, "amd64", "myapp", "big"), DL_OK);
        assert_string_equal(summary(c), "myapp=1.0");
        assert_null(find(c, "small"));
        assert_null(find(c, "bigdep"));

        char *unmet = unmet_text(c);
        print_message("unmet: %s\n", unmet);
        assert_true(c->res.unmet.n >= 1);
        assert_contains_name(unmet, "myapp");
        assert_contains_name(unmet, "big");
        free(unmet);
}

/* An excluded package counts as present at the archive's version only. */
static void test_exclude_version_too_low(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "big (>= 3.0)", exclude_index);

        expect_resolve_error(c, resolve(c, "amd64", "myapp", "big"));
        assert_contains_name(c->err.msg, "big");
}

/* An excluded package also satisfies dependencies on the virtual packages it
 * provides. */
static void test_exclude_virtual_provider(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "mail-transport-agent",
                     "Package: exim4-daemon-light\nVersion: 4.96-15\nArchitecture: amd64\n"
                     "Provides: mail-transport-agent\nDepends: exim4-base\n\n"
                     "Package: exim4-base\nVersion: 4.96-15\nArchitecture: amd64\n\n"
                     "Package: postfix\nVersion: 3.7.11-0+deb12u1\nArchitecture: amd64\n"
                     "Provides: mail-transport-agent\n\n");

        assert_int_equal(resolve(c, "amd64", "myapp", "exim4-daemon-light"), DL_OK);
        assert_string_equal(summary(c), "myapp=1.0");

        char *unmet = unmet_text(c);
        print_message("unmet: %s\n", unmet);
        assert_contains_name(unmet, "mail-transport-agent");
        free(unmet);
}

/* Without the exclude, the same index installs big and its dependency. */
static void test_exclude_control(void **state)
{
        struct resolve_ctx *c = *state;
        add_root_and(c, "big | small", exclude_index);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "big=2.0 bigdep=1.0 myapp=1.0");
        assert_int_equal(c->res.unmet.n, 0);
}

/* Other fields ------------------------------------------------------------ */

static void test_recommends_not_installed(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: myapp\nVersion: 1.0\nArchitecture: amd64\nDepends: dep\n"
                  "Recommends: rec\nSuggests: sug\nEnhances: enh\n\n"
                  "Package: dep\nVersion: 1.0\nArchitecture: amd64\nRecommends: rec2\n\n"
                  "Package: rec\nVersion: 1.0\nArchitecture: amd64\n\n"
                  "Package: rec2\nVersion: 1.0\nArchitecture: amd64\n\n"
                  "Package: sug\nVersion: 1.0\nArchitecture: amd64\n\n"
                  "Package: enh\nVersion: 1.0\nArchitecture: amd64\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "dep=1.0 myapp=1.0");
}

static void test_several_roots_sorted(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: zlib1g\nVersion: 1:1.2.13.dfsg-1\nArchitecture: amd64\n\n"
                  "Package: ca-certificates\nVersion: 20230311\nArchitecture: all\n\n"
                  "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "zlib1g tzdata ca-certificates", NULL), DL_OK);
        assert_string_equal(
            summary(c), "ca-certificates=20230311 tzdata=2024a-0+deb12u1 zlib1g=1:1.2.13.dfsg-1");
}

/* Filename, Size and SHA256 are copied from the stanza unchanged. */
static void test_package_fields_copied(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"
                  "Maintainer: Example <tz@example.org>\n"
                  "Installed-Size: 1234\n"
                  "Filename: pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb\n"
                  "Size: 255384\n"
                  "MD5sum: 0123456789abcdef0123456789abcdef\n"
                  "SHA256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                  "Description: time zone and daylight-saving time data\n"
                  " This package contains data required for the implementation of\n"
                  " standard local time for many representative locations.\n\n",
                  2, "bookworm-updates");

        assert_int_equal(resolve(c, "amd64", "tzdata", NULL), DL_OK);
        assert_int_equal(c->res.n_packages, 1);
        const struct dl_package *p = &c->res.packages[0];
        assert_string_equal(p->name, "tzdata");
        assert_string_equal(p->version, "2024a-0+deb12u1");
        assert_string_equal(p->arch, "all");
        assert_string_equal(p->filename, "pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb");
        assert_int_equal(p->size, 255384);
        assert_string_equal(p->sha256,
                            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
        assert_int_equal(p->source, 2);
        assert_string_equal(p->suite, "bookworm-updates");
}

static void test_dependency_cycle(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: perl-base\nVersion: 5.36.0-7\nArchitecture: amd64\n"
                  "Pre-Depends: libcrypt1\nDepends: dpkg (>= 1.17.17)\n\n"
                  "Package: dpkg\nVersion: 1.21.22\nArchitecture: amd64\n"
                  "Pre-Depends: perl-base\n\n"
                  "Package: libcrypt1\nVersion: 1:4.4.33-2\nArchitecture: amd64\n\n",
                  0, "bookworm");

        assert_int_equal(resolve(c, "amd64", "dpkg", NULL), DL_OK);
        assert_string_equal(summary(c), "dpkg=1.21.22 libcrypt1=1:4.4.33-2 perl-base=5.36.0-7");
}

/* Without a SHA256 the fetch could not be verified, so resolution must not
 * hand the package on. */
static void test_missing_sha256_rejected(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c,
                  "Package: insecure\nVersion: 1.0\nArchitecture: amd64\n"
                  "Filename: pool/main/i/insecure/insecure_1.0_amd64.deb\n"
                  "Size: 1000\n"
                  "MD5sum: 0123456789abcdef0123456789abcdef\n\n",
                  0, "bookworm");

        int rc = resolve(c, "amd64", "insecure", NULL);
        assert_int_not_equal(rc, DL_OK);
        assert_int_equal(c->err.code, rc);
        assert_contains_name(c->err.msg, "insecure");
}

static void test_missing_index_file(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c, "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n\n", 0, "bookworm");
        c->indexes[0].path = "no-such-dir/Packages";

        int rc = resolve(c, "amd64", "myapp", NULL);
        assert_int_equal(rc, DL_EIO);
        assert_int_equal(c->err.code, DL_EIO);
        assert_contains(c->err.msg, "no-such-dir/Packages");
}

/* Failures and the dependency chain --------------------------------------- */

static void test_unknown_root(void **state)
{
        struct resolve_ctx *c = *state;
        add_index(c, "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n\n", 0, "bookworm");

        expect_resolve_error(c, resolve(c, "amd64", "myapp no-such-package", NULL));
        assert_contains_name(c->err.msg, "no-such-package");
}

static const char chain_index[] = "Package: myapp\nVersion: 1.0\nArchitecture: amd64\n"
                                  "Depends: midlib\n\n"
                                  "Package: midlib\nVersion: 1.0\nArchitecture: amd64\n"
                                  "Depends: leaflib (>= 2.0)\n\n";

static void test_deep_unsatisfiable_chain(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, chain_index);
        tu_text_puts(&t, "Package: leaflib\nVersion: 1.0\nArchitecture: amd64\n\n");
        add_index(c, t.s, 0, "bookworm");
        tu_text_free(&t);

        expect_resolve_error(c, resolve(c, "amd64", "myapp", NULL));
        assert_contains_name(c->err.msg, "myapp");
        assert_contains_name(c->err.msg, "midlib");
        assert_contains_name(c->err.msg, "leaflib");
}

static void test_why_names_chain(void **state)
{
        struct resolve_ctx *c = *state;
        struct tu_text t = {0};
        tu_text_puts(&t, chain_index);
        tu_text_puts(&t, "Package: leaflib\nVersion: 2.1\nArchitecture: amd64\n\n");
        add_index(c, t.s, 0, "bookworm");
        tu_text_free(&t);

        assert_int_equal(resolve(c, "amd64", "myapp", NULL), DL_OK);
        assert_string_equal(summary(c), "leaflib=2.1 midlib=1.0 myapp=1.0");

        const struct dl_package *leaf = get(c, "leaflib");
        assert_non_null(leaf->why);
        print_message("leaflib why: %s\n", leaf->why);
        assert_contains_name(leaf->why, "myapp");
        assert_contains_name(leaf->why, "midlib");
        assert_true(strstr(leaf->why, "myapp") < strstr(leaf->why, "midlib"));

        const struct dl_package *mid = get(c, "midlib");
        assert_non_null(mid->why);
        assert_contains_name(mid->why, "myapp");
        assert_not_contains(mid->why, "leaflib");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        const struct CMUnitTest tests[] = {
            T(test_versioned_provides_satisfies),
            T(test_versioned_provides_too_low),
            T(test_versioned_provides_over_old_real),
            T(test_unversioned_provides_not_versioned),
            T(test_unversioned_provides_unversioned),
            T(test_real_preferred_over_virtual),
            T(test_alternatives_first_present),
            T(test_alternatives_second_too_old),
            T(test_alternatives_second_used),
            T(test_alternatives_first_too_old),
            T(test_alternatives_first_uninstallable),
            T(test_alternatives_pinentry_trap),
            T(test_highest_version_across_suites),
            T(test_same_version_two_suites),
            T(test_pre_depends_followed),
            T(test_pre_depends_virtual_required),
            T(test_virtual_single_provider),
            T(test_arch_all_for_target),
            T(test_arch_other_index_unused),
            T(test_arch_foreign_stanza_ignored),
            T(test_multiarch_any_qualifier),
            T(test_relations_without_spaces),
            T(test_epoch_unsatisfiable),
            T(test_epoch_satisfied),
            T(test_epoch_highest_unversioned),
            T(test_tilde_below_release),
            T(test_tilde_satisfies_tilde_bound),
            T(test_strict_relations),
            T(test_strict_less_excludes_bound),
            T(test_strict_greater_excludes_bound),
            T(test_exclude_dependency),
            T(test_exclude_alternative),
            T(test_exclude_version_too_low),
            T(test_exclude_virtual_provider),
            T(test_exclude_control),
            T(test_recommends_not_installed),
            T(test_several_roots_sorted),
            T(test_package_fields_copied),
            T(test_dependency_cycle),
            T(test_missing_sha256_rejected),
            T(test_missing_index_file),
            T(test_unknown_root),
            T(test_deep_unsatisfiable_chain),
            T(test_why_names_chain),
        };
#undef T
        return cmocka_run_group_tests_name("resolve", tests, NULL, NULL);
}
