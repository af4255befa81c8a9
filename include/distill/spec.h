/* The image spec: a YAML file parsed with libyaml into plain structs. Every
 * error names FILE:LINE:COLUMN and what was expected there. */
#ifndef DISTILL_SPEC_H
#define DISTILL_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/error.h"
#include "distill/util.h"

struct dl_keyval {
        char *key;
        char *value;
};

struct dl_keyvals {
        struct dl_keyval *v;
        size_t n;
};

struct dl_source {
        char *url; /* as written in the spec, without a trailing slash */
        struct dl_strlist suites;
        struct dl_strlist components; /* [main] when the spec omits it */
        char *keyring;                /* absolute, or relative to the spec's directory */
        bool unsigned_ok;             /* unsigned: true, the only way to skip signatures */
        long long snapshot_time;      /* from the URL's last segment; -1 if not a snapshot */
};

struct dl_group {
        char *name;
        long gid;
};

struct dl_user {
        char *name;
        long uid;
        long gid; /* -1: the group of the same name, or uid when there is none */
        char *home;
        char *shell;
        char *gecos;
};

/* owner and group are names or decimal ids, resolved against the accounts at build
 * time; NULL means root. mode is -1 when the spec leaves it to the default. */
struct dl_dir {
        char *path;
        long mode;
        char *owner;
        char *group;
};

struct dl_symlink {
        char *path;
        char *target;
};

/* Exactly one of content and source is set. source is a local file or directory
 * tree, relative to the spec's directory unless absolute. */
struct dl_file {
        char *path;
        char *content;
        size_t content_len;
        char *source;
        long mode;
        char *owner;
        char *group;
};

struct dl_php_fpm {
        bool present;
        char *pool;   /* pool name, "www" by default */
        char *listen; /* "9000", "127.0.0.1:9000" or a socket path */
        char *user;
        char *group;
        struct dl_keyvals pm;       /* pm, pm.max_children, ... */
        struct dl_keyvals settings; /* any other pool directive */
        struct dl_keyvals global;   /* [global] directives, such as error_log */
};

struct dl_php {
        bool present;
        char *version; /* NULL: the only /etc/php/VERSION the packages ship */
        struct dl_strlist extensions;
        struct dl_keyvals ini; /* php.ini overrides, written as conf.d/99-distill.ini */
        struct dl_php_fpm fpm;
};

struct dl_image {
        struct dl_strlist entrypoint;
        bool has_entrypoint;
        struct dl_strlist cmd;
        bool has_cmd;
        struct dl_keyvals env;
        char *workdir;
        char *user;
        struct dl_strlist expose; /* "9000/tcp" */
        struct dl_keyvals labels;
};

/* Default for limits.file_size: larger than any file Debian ships, small enough to
 * stop a decompression bomb before it fills the disk. */
#define DL_DEFAULT_MAX_FILE_SIZE (4ULL << 30)

struct dl_spec {
        char *path; /* the spec file as given */
        char *dir;  /* its directory, for relative keyring paths */
        char *name;
        struct dl_source *sources;
        size_t n_sources;
        struct dl_strlist architectures;
        struct dl_strlist packages;
        /* packages written as {name: N, architectures: [..]}: N is built only there */
        struct dl_keyvals package_archs; /* name -> space-separated architectures */
        struct dl_strlist exclude;
        bool merged_usr;                   /* true unless the spec says false */
        unsigned long long max_file_size;  /* bytes one unpacked file may have (limits.file_size) */
        struct dl_strlist allow_overwrite; /* path globs two packages may both ship */
        struct dl_strlist paths_exclude;   /* globs of package paths never unpacked */
        struct dl_strlist paths_include;   /* exceptions to paths_exclude */
        struct dl_group *groups;
        size_t n_groups;
        struct dl_user *users;
        size_t n_users;
        struct dl_dir *directories;
        size_t n_directories;
        struct dl_symlink *symlinks;
        size_t n_symlinks;
        struct dl_file *files;
        size_t n_files;
        struct dl_php php;
        struct dl_image image;
};

/* Parse the spec at path. On failure return DL_ESPEC with err naming
 * path:line:column, and leave *out empty. */
int dl_spec_load(const char *path, struct dl_spec *out, struct dl_error *err);
/* Parse a spec from memory; name is used in messages. */
int dl_spec_parse(const char *name, const char *text, size_t len, struct dl_spec *out,
                  struct dl_error *err);
void dl_spec_free(struct dl_spec *spec);

const char *dl_keyvals_get(const struct dl_keyvals *kv, const char *key);

/* The packages to install for arch: all of packages except those limited to
 * other architectures. */
void dl_spec_packages_for(const struct dl_spec *spec, const char *arch, struct dl_strlist *out);

#endif
