/* OpenPGP verification of Release files with gpgme, against one keyring file
 * imported into a private, temporary GNUPGHOME. */
#ifndef DISTILL_VERIFY_H
#define DISTILL_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "distill/error.h"
#include "distill/util.h"

struct dl_verify_options {
        const char *keyring;    /* binary or armored OpenPGP keyring file */
        bool allow_expired_key; /* accept a good signature by an expired, unrevoked key */
        const char *what;       /* names the file in messages: "source URL, suite bookworm" */
};

/* Verify a clearsigned message (InRelease) and return its signed text in plain.
 * Only a message with at least one good signature by a key from the keyring
 * verifies; plain is left empty otherwise. */
int dl_verify_clearsigned(const struct dl_verify_options *o, const void *msg, size_t len,
                          struct dl_buf *plain, struct dl_error *err);

/* Verify a detached signature (Release.gpg) over data (Release). */
int dl_verify_detached(const struct dl_verify_options *o, const void *data, size_t len,
                       const void *sig, size_t sig_len, struct dl_error *err);

#endif
