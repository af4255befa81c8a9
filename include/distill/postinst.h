/* Files that the maintainer scripts of base packages generate, produced from the
 * packaged data instead: the CA bundle of ca-certificates and the local time zone of
 * tzdata. */
#ifndef DISTILL_POSTINST_H
#define DISTILL_POSTINST_H

#include <stdbool.h>

#include "distill/error.h"
#include "distill/fstree.h"

/* When the image has certificates under /usr/share/ca-certificates, write
 * /etc/ssl/certs/ca-certificates.crt (every certificate in path order, as
 * update-ca-certificates concatenates them), a NAME.pem symlink for each and the
 * OpenSSL subject-hash links (HASH.0) that a CApath lookup needs. Sets *made. */
int dl_postinst_ca_certificates(struct dl_fstree *t, long long epoch, bool *made,
                                struct dl_error *err);

/* When the image has /usr/share/zoneinfo/Etc/UTC, make /etc/localtime point at it and
 * write /etc/timezone, as tzdata's postinst does for a system left at UTC. */
int dl_postinst_timezone(struct dl_fstree *t, long long epoch, struct dl_error *err);

#endif
