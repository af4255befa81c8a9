/* dl_spec_parse on YAML held in strings: a complete spec filled into every
 * struct field, the defaults, and one test per kind of invalid spec. Error
 * positions are 1-based line:column of the offending node, as libyaml marks it
 * (a missing key is reported at the start of the mapping that lacks it). */
#include "testutil.h"

#include "distill/spec.h"

#define SPEC_NAME "t.yaml"

/* Every key of the spec format. The first source has a trailing slash and a
 * snapshot timestamp. The second omits components and is no snapshot. */
static const char full_spec[] =
    "# A complete spec: every key the format has.\n"
    "name: passbolt-fpm\n"
    "sources:\n"
    "  - url: https://snapshot.example/archive/debian/20261204T000000Z/\n"
    "    suites: [bookworm, bookworm-updates]\n"
    "    components: [main, contrib]\n"
    "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    "  - url: https://deb.example/debian-security\n"
    "    suites:\n"
    "      - bookworm-security\n"
    "    keyring: keys/security.gpg\n"
    "architectures: [amd64]\n"
    "packages: [php8.2-fpm, php8.2-intl, ca-certificates]\n"
    "exclude: [systemd, systemd-sysv]\n"
    "merged_usr: false\n"
    "allow_overwrite: [/usr/share/foo/*, /etc/bar.conf]\n"
    "accounts:\n"
    "  groups: [{name: www-data, gid: 33}, {name: app, gid: 1000}]\n"
    "  users:\n"
    "    - {name: www-data, uid: 33, gid: 33, home: /var/www, shell: /usr/sbin/nologin}\n"
    "    - name: app\n"
    "      uid: 1000\n"
    "      home: /home/app\n"
    "      shell: /bin/sh\n"
    "      gecos: Application user\n"
    "directories:\n"
    "  - {path: /run/php, mode: \"0755\", owner: www-data, group: www-data}\n"
    "  - {path: /var/www}\n"
    "symlinks: [{path: /usr/sbin/php-fpm, target: php-fpm8.2}]\n"
    "files:\n"
    "  - {path: /etc/php/8.2/fpm/conf.d/99-app.ini, content: \"expose_php = Off\\n\","
    " mode: \"0644\", owner: root}\n"
    "  - path: /etc/motd\n"
    "    content: |\n"
    "      line one\n"
    "      line two\n"
    "    mode: 0600\n"
    "    group: adm\n"
    "php:\n"
    "  version: \"8.2\"\n"
    "  extensions: [gnupg, intl, redis, pdo_mysql]\n"
    "  fpm:\n"
    "    pool: app\n"
    "    listen: \"9000\"\n"
    "    user: www-data\n"
    "    group: www-data\n"
    "    pm: {pm: dynamic, pm.max_children: \"5\", pm.start_servers: \"2\","
    " pm.min_spare_servers: \"1\", pm.max_spare_servers: \"3\"}\n"
    "    settings: {clear_env: \"no\", catch_workers_output: \"yes\","
    " access.log: /proc/self/fd/2}\n"
    "    global: {error_log: /proc/self/fd/2, daemonize: \"no\"}\n"
    "image:\n"
    "  entrypoint: [/usr/sbin/php-fpm8.2, -F, -O]\n"
    "  cmd: []\n"
    "  env: {LANG: C.UTF-8, TZ: UTC}\n"
    "  workdir: /var/www\n"
    "  user: www-data\n"
    "  expose: [\"9000/tcp\"]\n"
    "  labels: {org.opencontainers.image.title: passbolt-fpm}\n";

/* The smallest valid spec. The error cases below are edits of it, so their
 * line numbers count from these seven lines. */
#define MINIMAL_SPEC "name: demo\n" MINIMAL_TAIL
/* MINIMAL_SPEC without its name line. */
#define MINIMAL_TAIL                                                                               \
        "sources:\n"                                                                               \
        "  - url: https://deb.example/debian\n"                                                    \
        "    suites: [bookworm]\n"                                                                 \
        "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"                            \
        "architectures: [amd64]\n"                                                                 \
        "packages: [base-files]\n"

static int parse(const char *text, struct dl_spec *spec, struct dl_error *err)
{
        memset(err, 0, sizeof *err);
        int rc = dl_spec_parse(SPEC_NAME, text, strlen(text), spec, err);
        if (rc != DL_OK)
                print_message("dl_spec_parse: %s\n", err->msg);
        return rc;
}

static void assert_list(const struct dl_strlist *l, const char *const *expected, size_t n)
{
        assert_int_equal(l->n, n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(l->v[i], expected[i]);
}

#define ASSERT_LIST(list, ...)                                                                     \
        do {                                                                                       \
                static const char *const expected_[] = {__VA_ARGS__};                              \
                assert_list((list), expected_, sizeof expected_ / sizeof expected_[0]);            \
        } while (0)

static void assert_keyval(const struct dl_keyvals *kv, const char *key, const char *value)
{
        const char *got = dl_keyvals_get(kv, key);
        if (got == NULL)
                fail_msg("key %s is missing", key);
        assert_string_equal(got, value);
}

/* Valid specs ------------------------------------------------------------- */

static void test_full_spec_top_level(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse(full_spec, &s, &err), DL_OK);

        assert_string_equal(s.name, "passbolt-fpm");
        ASSERT_LIST(&s.architectures, "amd64");
        ASSERT_LIST(&s.packages, "php8.2-fpm", "php8.2-intl", "ca-certificates");
        ASSERT_LIST(&s.exclude, "systemd", "systemd-sysv");
        assert_false(s.merged_usr);
        ASSERT_LIST(&s.allow_overwrite, "/usr/share/foo/*", "/etc/bar.conf");
        dl_spec_free(&s);
}

static void test_full_spec_sources(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse(full_spec, &s, &err), DL_OK);

        assert_int_equal(s.n_sources, 2);
        const struct dl_source *a = &s.sources[0];
        assert_string_equal(a->url, "https://snapshot.example/archive/debian/20261204T000000Z");
        ASSERT_LIST(&a->suites, "bookworm", "bookworm-updates");
        ASSERT_LIST(&a->components, "main", "contrib");
        assert_string_equal(a->keyring, "/usr/share/keyrings/debian-archive-keyring.gpg");
        /* 2026-12-04T00:00:00Z in seconds since the epoch (date -u -d ... +%s). */
        assert_int_equal(a->snapshot_time, 1796342400LL);

        const struct dl_source *b = &s.sources[1];
        assert_string_equal(b->url, "https://deb.example/debian-security");
        ASSERT_LIST(&b->suites, "bookworm-security");
        ASSERT_LIST(&b->components, "main");
        /* A relative keyring is relative to the spec's directory, which a spec
         * parsed from memory does not have, so only the tail is fixed. */
        assert_non_null(b->keyring);
        size_t len = strlen(b->keyring);
        assert_true(len >= strlen("keys/security.gpg"));
        assert_string_equal(b->keyring + len - strlen("keys/security.gpg"), "keys/security.gpg");
        assert_int_equal(b->snapshot_time, -1);
        dl_spec_free(&s);
}

static void test_full_spec_accounts(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse(full_spec, &s, &err), DL_OK);

        assert_int_equal(s.n_groups, 2);
        assert_string_equal(s.groups[0].name, "www-data");
        assert_int_equal(s.groups[0].gid, 33);
        assert_string_equal(s.groups[1].name, "app");
        assert_int_equal(s.groups[1].gid, 1000);

        assert_int_equal(s.n_users, 2);
        const struct dl_user *w = &s.users[0];
        assert_string_equal(w->name, "www-data");
        assert_int_equal(w->uid, 33);
        assert_int_equal(w->gid, 33);
        assert_string_equal(w->home, "/var/www");
        assert_string_equal(w->shell, "/usr/sbin/nologin");
        assert_null(w->gecos);

        const struct dl_user *app = &s.users[1];
        assert_string_equal(app->name, "app");
        assert_int_equal(app->uid, 1000);
        assert_int_equal(app->gid, -1); /* left to the group of the same name */
        assert_string_equal(app->home, "/home/app");
        assert_string_equal(app->shell, "/bin/sh");
        assert_string_equal(app->gecos, "Application user");
        dl_spec_free(&s);
}

static void test_full_spec_filesystem(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse(full_spec, &s, &err), DL_OK);

        assert_int_equal(s.n_directories, 2);
        assert_string_equal(s.directories[0].path, "/run/php");
        assert_int_equal(s.directories[0].mode, 0755);
        assert_string_equal(s.directories[0].owner, "www-data");
        assert_string_equal(s.directories[0].group, "www-data");
        assert_string_equal(s.directories[1].path, "/var/www");
        assert_int_equal(s.directories[1].mode, -1);
        assert_null(s.directories[1].owner);
        assert_null(s.directories[1].group);

        assert_int_equal(s.n_symlinks, 1);
        assert_string_equal(s.symlinks[0].path, "/usr/sbin/php-fpm");
        assert_string_equal(s.symlinks[0].target, "php-fpm8.2");

        assert_int_equal(s.n_files, 2);
        const struct dl_file *ini = &s.files[0];
        assert_string_equal(ini->path, "/etc/php/8.2/fpm/conf.d/99-app.ini");
        assert_string_equal(ini->content, "expose_php = Off\n");
        assert_int_equal(ini->content_len, strlen("expose_php = Off\n"));
        assert_int_equal(ini->mode, 0644);
        assert_string_equal(ini->owner, "root");
        assert_null(ini->group);

        const struct dl_file *motd = &s.files[1];
        assert_string_equal(motd->path, "/etc/motd");
        assert_string_equal(motd->content, "line one\nline two\n");
        assert_int_equal(motd->content_len, strlen("line one\nline two\n"));
        assert_int_equal(motd->mode, 0600); /* a plain number is read as octal too */
        assert_null(motd->owner);
        assert_string_equal(motd->group, "adm");
        dl_spec_free(&s);
}

static void test_full_spec_php(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse(full_spec, &s, &err), DL_OK);

        assert_true(s.php.present);
        assert_string_equal(s.php.version, "8.2");
        ASSERT_LIST(&s.php.extensions, "gnupg", "intl", "redis", "pdo_mysql");
        assert_true(s.php.fpm.present);
        assert_string_equal(s.php.fpm.pool, "app");
        assert_string_equal(s.php.fpm.listen, "9000");
        assert_string_equal(s.php.fpm.user, "www-data");
        assert_string_equal(s.php.fpm.group, "www-data");

        assert_int_equal(s.php.fpm.pm.n, 5);
        assert_keyval(&s.php.fpm.pm, "pm", "dynamic");
        assert_keyval(&s.php.fpm.pm, "pm.max_children", "5");
        assert_keyval(&s.php.fpm.pm, "pm.start_servers", "2");
        assert_keyval(&s.php.fpm.pm, "pm.min_spare_servers", "1");
        assert_keyval(&s.php.fpm.pm, "pm.max_spare_servers", "3");
        assert_int_equal(s.php.fpm.settings.n, 3);
        assert_keyval(&s.php.fpm.settings, "clear_env", "no");
        assert_keyval(&s.php.fpm.settings, "catch_workers_output", "yes");
        assert_keyval(&s.php.fpm.settings, "access.log", "/proc/self/fd/2");
        assert_int_equal(s.php.fpm.global.n, 2);
        assert_keyval(&s.php.fpm.global, "error_log", "/proc/self/fd/2");
        assert_keyval(&s.php.fpm.global, "daemonize", "no");
        assert_null(dl_keyvals_get(&s.php.fpm.global, "pm"));
        dl_spec_free(&s);
}

static void test_full_spec_image(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse(full_spec, &s, &err), DL_OK);

        assert_true(s.image.has_entrypoint);
        ASSERT_LIST(&s.image.entrypoint, "/usr/sbin/php-fpm8.2", "-F", "-O");
        /* "cmd: []" is an explicit empty command, unlike an absent cmd. */
        assert_true(s.image.has_cmd);
        assert_int_equal(s.image.cmd.n, 0);
        assert_int_equal(s.image.env.n, 2);
        assert_keyval(&s.image.env, "LANG", "C.UTF-8");
        assert_keyval(&s.image.env, "TZ", "UTC");
        assert_string_equal(s.image.workdir, "/var/www");
        assert_string_equal(s.image.user, "www-data");
        ASSERT_LIST(&s.image.expose, "9000/tcp");
        assert_int_equal(s.image.labels.n, 1);
        assert_keyval(&s.image.labels, "org.opencontainers.image.title", "passbolt-fpm");
        dl_spec_free(&s);
}

static void test_minimal_spec_defaults(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse(MINIMAL_SPEC, &s, &err), DL_OK);

        assert_string_equal(s.name, "demo");
        assert_int_equal(s.n_sources, 1);
        assert_string_equal(s.sources[0].url, "https://deb.example/debian");
        ASSERT_LIST(&s.sources[0].components, "main");
        assert_int_equal(s.sources[0].snapshot_time, -1);
        assert_true(s.merged_usr);
        assert_int_equal(s.exclude.n, 0);
        assert_int_equal(s.allow_overwrite.n, 0);
        assert_int_equal(s.n_groups, 0);
        assert_int_equal(s.n_users, 0);
        assert_int_equal(s.n_directories, 0);
        assert_int_equal(s.n_symlinks, 0);
        assert_int_equal(s.n_files, 0);
        assert_false(s.php.present);
        assert_false(s.php.fpm.present);
        assert_false(s.image.has_entrypoint);
        assert_false(s.image.has_cmd);
        assert_null(s.image.workdir);
        assert_null(s.image.user);
        dl_spec_free(&s);
}

static void test_fpm_pool_default(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse(MINIMAL_SPEC "php:\n"
                                            "  fpm:\n"
                                            "    listen: /run/php/fpm.sock\n"
                                            "    user: www-data\n",
                               &s, &err),
                         DL_OK);
        assert_true(s.php.present);
        assert_null(s.php.version);
        assert_true(s.php.fpm.present);
        assert_string_equal(s.php.fpm.pool, "www");
        assert_string_equal(s.php.fpm.listen, "/run/php/fpm.sock");
        dl_spec_free(&s);
}

static void test_merged_usr_true(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse(MINIMAL_SPEC "merged_usr: true\n", &s, &err), DL_OK);
        assert_true(s.merged_usr);
        dl_spec_free(&s);
}

/* The snapshot time comes only from a YYYYMMDDTHHMMSSZ last path segment. */
static void test_snapshot_time_from_url(void **state)
{
        (void)state;
        static const struct {
                const char *url;
                long long expected;
        } cases[] = {
            {"https://snapshot.example/archive/debian/20240229T123456Z", 1709210096LL},
            {"https://snapshot.example/archive/debian/20240229T123456Z//", 1709210096LL},
            {"https://snapshot.example/archive/debian/20240229T123456", -1},
            {"https://snapshot.example/archive/debian/2024-02-29", -1},
            {"https://snapshot.example/20240229T123456Z/debian", -1},
            {"http://127.0.0.1:8080/debian", -1},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *text = tu_asprintf("name: demo\n"
                                         "sources:\n"
                                         "  - url: %s\n"
                                         "    suites: [bookworm]\n"
                                         "    keyring: /k.gpg\n"
                                         "architectures: [amd64]\n"
                                         "packages: [base-files]\n",
                                         cases[i].url);
                struct dl_spec s;
                struct dl_error err;
                int rc = parse(text, &s, &err);
                free(text);
                print_message("url %s\n", cases[i].url);
                assert_int_equal(rc, DL_OK);
                assert_int_equal(s.sources[0].snapshot_time, cases[i].expected);
                dl_spec_free(&s);
        }
}

static void test_valid_names(void **state)
{
        (void)state;
        static const char *const names[] = {"a", "0", "passbolt-fpm", "php8.2_fpm", "a.b-c_d9"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                char *text = tu_asprintf("name: %s\n" MINIMAL_TAIL, names[i]);
                struct dl_spec s;
                struct dl_error err;
                int rc = parse(text, &s, &err);
                free(text);
                print_message("name %s\n", names[i]);
                assert_int_equal(rc, DL_OK);
                assert_string_equal(s.name, names[i]);
                dl_spec_free(&s);
        }
}

/* Invalid specs ----------------------------------------------------------- */

struct error_case {
        const char *name; /* test name shown by cmocka */
        const char *text;
        const char *where;  /* "t.yaml:LINE:COL" */
        const char *key;    /* the key or value the message must name */
        const char *expect; /* a word of the expectation, or NULL */
};

/* Lines of the users/uid fixtures: 8 accounts, 9 users, 10 "- name", 11 uid. */
static const struct error_case error_cases[] = {
    /* Unknown keys, at the key. */
    {"unknown top-level key", MINIMAL_SPEC "colour: blue\n", "t.yaml:8:1", "colour", NULL},
    {"unknown key in sources",
     "name: demo\n"
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    suites: [bookworm]\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "    mirror: https://deb.example/other\n"
     "architectures: [amd64]\n"
     "packages: [base-files]\n",
     "t.yaml:6:5", "mirror", NULL},
    {"unknown key in accounts.users",
     MINIMAL_SPEC "accounts:\n"
                  "  users:\n"
                  "    - name: app\n"
                  "      uid: 1000\n"
                  "      homedir: /home/app\n",
     "t.yaml:12:7", "homedir", NULL},
    {"unknown key in php.fpm",
     MINIMAL_SPEC "php:\n"
                  "  fpm:\n"
                  "    listen: \"9000\"\n"
                  "    user: www-data\n"
                  "    pools: 3\n",
     "t.yaml:12:5", "pools", NULL},
    {"unknown key in image", MINIMAL_SPEC "image:\n  entrypoints: [/bin/sh]\n", "t.yaml:9:3",
     "entrypoints", NULL},

    /* Wrong types, at the value. */
    {"string for packages list",
     "name: demo\n"
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    suites: [bookworm]\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "architectures: [amd64]\n"
     "packages: base-files\n",
     "t.yaml:7:11", "packages", "list"},
    {"string for architectures list",
     "name: demo\n"
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    suites: [bookworm]\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "architectures: amd64\n"
     "packages: [base-files]\n",
     "t.yaml:6:16", "architectures", "list"},
    {"list for accounts mapping", MINIMAL_SPEC "accounts: [www-data]\n", "t.yaml:8:11", "accounts",
     "mapping"},
    {"list for image mapping", MINIMAL_SPEC "image: [a]\n", "t.yaml:8:8", "image", "mapping"},
    {"non-integer uid", MINIMAL_SPEC "accounts:\n  users:\n    - name: app\n      uid: abc\n",
     "t.yaml:11:12", "uid", "integer"},
    {"negative uid", MINIMAL_SPEC "accounts:\n  users:\n    - name: app\n      uid: -5\n",
     "t.yaml:11:12", "uid", "integer"},
    {"fractional gid", MINIMAL_SPEC "accounts:\n  groups:\n    - {name: app, gid: 1.5}\n",
     "t.yaml:10:24", "gid", "integer"},
    {"duplicate env variable", MINIMAL_SPEC "image:\n  env: {LANG: x, LANG: y}\n", "t.yaml:9:18",
     "LANG", "duplicate"},
    {"non-octal directory mode", MINIMAL_SPEC "directories: [{path: /run/php, mode: \"0789\"}]\n",
     "t.yaml:8:38", "mode", "octal"},
    {"symbolic file mode",
     MINIMAL_SPEC "files:\n  - {path: /etc/x, content: \"\", mode: rw-r--r--}\n", "t.yaml:9:39",
     "mode", "octal"},
    {"non-boolean merged_usr", MINIMAL_SPEC "merged_usr: maybe\n", "t.yaml:8:13", "merged_usr",
     "true"},

    /* Missing required keys, at the mapping that lacks them. */
    {"missing name",
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    suites: [bookworm]\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "architectures: [amd64]\n"
     "packages: [base-files]\n",
     "t.yaml:1:1", "name", "missing"},
    {"missing sources", "name: demo\narchitectures: [amd64]\npackages: [base-files]\n",
     "t.yaml:1:1", "sources", "missing"},
    {"missing url",
     "name: demo\n"
     "sources:\n"
     "  - suites: [bookworm]\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "architectures: [amd64]\n"
     "packages: [base-files]\n",
     "t.yaml:3:5", "url", "missing"},
    {"missing keyring",
     "name: demo\n"
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    suites: [bookworm]\n"
     "architectures: [amd64]\n"
     "packages: [base-files]\n",
     "t.yaml:3:5", "keyring", "missing"},
    {"missing suites",
     "name: demo\n"
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "architectures: [amd64]\n"
     "packages: [base-files]\n",
     "t.yaml:3:5", "suites", "missing"},
    {"missing architectures",
     "name: demo\n"
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    suites: [bookworm]\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "packages: [base-files]\n",
     "t.yaml:1:1", "architectures", "missing"},
    {"missing packages",
     "name: demo\n"
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    suites: [bookworm]\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "architectures: [amd64]\n",
     "t.yaml:1:1", "packages", "missing"},

    /* Other invalid values. */
    {"empty sources list",
     "name: demo\nsources: []\narchitectures: [amd64]\npackages: [base-files]\n", "t.yaml:2:10",
     "sources", NULL},
    {"duplicate top-level key", MINIMAL_SPEC "name: other\n", "t.yaml:8:1", "name", "duplicate"},
    {"duplicate key in sources",
     "name: demo\n"
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    suites: [bookworm]\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "    suites: [trixie]\n"
     "architectures: [amd64]\n"
     "packages: [base-files]\n",
     "t.yaml:6:5", "suites", "duplicate"},
    {"unterminated flow list",
     "name: demo\n"
     "sources:\n"
     "  - url: https://deb.example/debian\n"
     "    suites: [bookworm]\n"
     "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
     "architectures: [amd64]\n"
     "packages: [base-files\n",
     "t.yaml:8:1", "YAML", NULL},
    {"mapping value in plain scalar", MINIMAL_SPEC "exclude: a: b\n", "t.yaml:8:11", "YAML", NULL},
    {"upper-case name", "name: Passbolt_FPM\n" MINIMAL_TAIL, "t.yaml:1:7", "Passbolt_FPM", NULL},
    {"name starting with hyphen", "name: -demo\n" MINIMAL_TAIL, "t.yaml:1:7", "-demo", NULL},
    {"name with slash", "name: ../demo\n" MINIMAL_TAIL, "t.yaml:1:7", "../demo", NULL},
    {"name with space", "name: my demo\n" MINIMAL_TAIL, "t.yaml:1:7", "my demo", NULL},
    {"empty quoted name", "name: \"\"\n" MINIMAL_TAIL, "t.yaml:1:7", "name", NULL},
    {"relative file path", MINIMAL_SPEC "files:\n  - path: etc/foo.ini\n    content: x\n",
     "t.yaml:9:11", "etc/foo.ini", "absolute"},
    {"relative directory path", MINIMAL_SPEC "directories:\n  - path: run/php\n", "t.yaml:9:11",
     "run/php", "absolute"},
    {"relative symlink path", MINIMAL_SPEC "symlinks:\n  - {path: usr/bin/x, target: y}\n",
     "t.yaml:9:12", "usr/bin/x", "absolute"},
    {"relative home",
     MINIMAL_SPEC "accounts:\n  users:\n    - {name: app, uid: 1000, home: home/app}\n",
     "t.yaml:10:36", "home/app", "absolute"},
    {"relative workdir", MINIMAL_SPEC "image:\n  workdir: var/www\n", "t.yaml:9:12", "var/www",
     "absolute"},
    {"top level is a list", "- name: demo\n", "t.yaml:1:1", "mapping", NULL},
};

static void test_error_case(void **state)
{
        const struct error_case *c = *state;
        struct dl_spec s;
        struct dl_error err;
        memset(&s, 0xa5, sizeof s); /* the parser must clear it on failure */

        int rc = parse(c->text, &s, &err);
        assert_int_equal(rc, DL_ESPEC);
        assert_int_equal(err.code, DL_ESPEC);

        /* The location is followed by ':' so that 8:1 does not match 8:12. */
        char *where = tu_asprintf("%s:", c->where);
        int at_start = strncmp(err.msg, where, strlen(where)) == 0;
        if (!at_start)
                fail_msg("expected the message to start with \"%s\": %s", where, err.msg);
        free(where);
        assert_contains(err.msg, c->key);
        if (c->expect != NULL)
                assert_contains(err.msg, c->expect);

        assert_null(s.name);
        assert_null(s.sources);
        assert_int_equal(s.n_sources, 0);
        dl_spec_free(&s);
}

static void test_empty_spec(void **state)
{
        (void)state;
        struct dl_spec s;
        struct dl_error err;
        assert_int_equal(parse("", &s, &err), DL_ESPEC);
        assert_int_equal(err.code, DL_ESPEC);
        assert_contains(err.msg, "t.yaml:1:1");
        dl_spec_free(&s);
}

int main(void)
{
        static const struct CMUnitTest fixed[] = {
            cmocka_unit_test(test_full_spec_top_level),
            cmocka_unit_test(test_full_spec_sources),
            cmocka_unit_test(test_full_spec_accounts),
            cmocka_unit_test(test_full_spec_filesystem),
            cmocka_unit_test(test_full_spec_php),
            cmocka_unit_test(test_full_spec_image),
            cmocka_unit_test(test_minimal_spec_defaults),
            cmocka_unit_test(test_fpm_pool_default),
            cmocka_unit_test(test_merged_usr_true),
            cmocka_unit_test(test_snapshot_time_from_url),
            cmocka_unit_test(test_valid_names),
            cmocka_unit_test(test_empty_spec),
        };
        size_t n_fixed = sizeof fixed / sizeof fixed[0];
        size_t n_errors = sizeof error_cases / sizeof error_cases[0];

        /* One cmocka test per error case, named after the case. */
        struct CMUnitTest *tests = calloc(n_fixed + n_errors, sizeof *tests);
        if (tests == NULL)
                return 1;
        memcpy(tests, fixed, sizeof fixed);
        for (size_t i = 0; i < n_errors; i++) {
                tests[n_fixed + i] = (struct CMUnitTest){
                    .name = error_cases[i].name,
                    .test_func = test_error_case,
                    .initial_state = (void *)&error_cases[i],
                };
        }
        int failed = _cmocka_run_group_tests("spec", tests, n_fixed + n_errors, NULL, NULL);
        free(tests);
        return failed;
}
