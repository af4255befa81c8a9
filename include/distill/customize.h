/* Customization of the staged tree: the work maintainer scripts would have done,
 * as the spec states it. It covers accounts, directories, symlinks, files, php
 * extension links, the php-fpm pool, and the package database that scanners read. */
#ifndef DISTILL_CUSTOMIZE_H
#define DISTILL_CUSTOMIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/error.h"
#include "distill/fstree.h"
#include "distill/resolve.h"
#include "distill/spec.h"
#include "distill/unpack.h"

struct dl_account {
        char *name;
        unsigned long id;  /* uid or gid */
        unsigned long gid; /* users: primary group */
        char *gecos, *home, *shell;
};

/* The image's accounts: the defaults (root, nobody, nonroot) merged with the spec's. */
struct dl_accounts {
        struct dl_account *users;
        size_t n_users;
        struct dl_account *groups;
        size_t n_groups;
};

int dl_accounts_build(const struct dl_spec *spec, struct dl_accounts *out, struct dl_error *err);
void dl_accounts_free(struct dl_accounts *a);
/* Resolve "name", "uid", "name:group" or "uid:gid" to numeric ids. */
int dl_accounts_resolve_user(const struct dl_accounts *a, const char *spec_user, unsigned long *uid,
                             unsigned long *gid, struct dl_error *err);

struct dl_customize_input {
        const struct dl_spec *spec;
        const struct dl_accounts *accounts;
        const struct dl_package *packages; /* by owner index */
        const struct dl_deb_control *controls;
        size_t n_packages;
        long long epoch; /* mtime of generated files */
};

struct dl_customize_result {
        bool ca_bundle; /* /etc/ssl/certs/ca-certificates.crt was written */
};

int dl_customize(const struct dl_customize_input *in, struct dl_fstree *t,
                 struct dl_customize_result *out, struct dl_error *err);

#endif
