/* Files that the maintainer scripts of base packages generate, produced from the
 * packaged data instead: the CA bundle of ca-certificates and the local time zone of
 * tzdata. */
#ifndef DISTILL_POSTINST_H
#define DISTILL_POSTINST_H

#include <stdbool.h>

#include "distill/error.h"
#include "distill/fstree.h"
#include "distill/resolve.h"
#include "distill/spec.h"
#include "distill/unpack.h"

/* When the image has certificates under /usr/share/ca-certificates, write
 * /etc/ssl/certs/ca-certificates.crt (every certificate in path order, as
 * update-ca-certificates concatenates them), a NAME.pem symlink for each and the
 * OpenSSL subject-hash links (HASH.0) that a CApath lookup needs. Sets *made. */
int dl_postinst_ca_certificates(struct dl_fstree *t, long long epoch, bool *made,
                                struct dl_error *err);

/* When the image has /usr/share/zoneinfo/Etc/UTC, make /etc/localtime point at it and
 * write /etc/timezone, as tzdata's postinst does for a system left at UTC. */
int dl_postinst_timezone(struct dl_fstree *t, long long epoch, struct dl_error *err);

/* Write /usr/lib/os-release describing the image: the distribution fields from
 * base-files' copy when the image has one, else from the first suite's codename,
 * with PRETTY_NAME naming the image. /etc/os-release, when missing, becomes the
 * relative symlink base-files ships; an existing one is left alone. */
int dl_postinst_os_release(struct dl_fstree *t, const struct dl_spec *spec, long long epoch,
                           struct dl_error *err);

/* Write /etc/nsswitch.conf when no package ships one, so that getpwnam and host
 * lookups read the files and DNS. */
int dl_postinst_nsswitch(struct dl_fstree *t, long long epoch, struct dl_error *err);

/* Warn, per package, about what its maintainer scripts would have done that the
 * image lacks and the spec does not declare: update-alternatives links, accounts,
 * library paths that need ld.so.cache, php modules, directories and file
 * capabilities. Returns the number of warnings. */
size_t dl_postinst_report_skipped(const struct dl_fstree *t, const struct dl_spec *spec,
                                  const struct dl_package *pkgs,
                                  const struct dl_deb_control *controls, size_t n);

/* Warn about each symlink whose target is not in the image, and return how many. */
size_t dl_postinst_check_symlinks(const struct dl_fstree *t);

#endif
