#include "distill/verify.h"

#include <gpgme.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "distill/log.h"

/* A context bound to a temporary GNUPGHOME that contains only the keyring's keys, so a
 * good signature can only come from a key of that keyring. */
struct session {
        gpgme_ctx_t ctx;
        char *home;
};

static int session_open(struct session *s, const struct dl_verify_options *o, struct dl_error *err)
{
        struct dl_buf keys = {0};
        gpgme_data_t data = NULL;
        gpgme_error_t e;
        int rc;

        memset(s, 0, sizeof *s);
        if (!gpgme_check_version(NULL))
                return dl_fail(err, DL_EINTERNAL, "gpgme is not usable");
        e = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP);
        if (e)
                return dl_fail(err, DL_EINTERNAL,
                               "the OpenPGP engine (gpg) is missing: %s; install gnupg",
                               gpgme_strerror(e));
        if ((rc = dl_read_file(o->keyring, &keys, err))) {
                dl_error_wrap(err, "keyring of %s", o->what);
                err->code = DL_ESPEC;
                return DL_ESPEC;
        }
        s->home = dl_mkdtemp("gnupg", err);
        if (!s->home) {
                dl_buf_free(&keys);
                return DL_EIO;
        }
        if ((e = gpgme_new(&s->ctx)) ||
            (e = gpgme_ctx_set_engine_info(s->ctx, GPGME_PROTOCOL_OpenPGP, NULL, s->home)) ||
            (e = gpgme_data_new_from_mem(&data, keys.data, keys.len, 0))) {
                rc = dl_fail(err, DL_EINTERNAL, "cannot set up gpgme: %s", gpgme_strerror(e));
                goto out;
        }
        e = gpgme_op_import(s->ctx, data);
        gpgme_import_result_t imp = e ? NULL : gpgme_op_import_result(s->ctx);
        if (e || !imp || imp->imported + imp->unchanged == 0) {
                rc = dl_fail(err, DL_ESPEC,
                             "keyring %s of %s holds no usable OpenPGP key%s%s; name a keyring "
                             "file such as /usr/share/keyrings/debian-archive-keyring.gpg",
                             o->keyring, o->what, e ? ": " : "", e ? gpgme_strerror(e) : "");
                goto out;
        }
        rc = DL_OK;
out:
        gpgme_data_release(data);
        dl_buf_free(&keys);
        return rc;
}

static void session_close(struct session *s)
{
        if (s->ctx)
                gpgme_release(s->ctx);
        if (s->home) {
                dl_rm_rf(s->home);
                free(s->home);
        }
}

/* Decide from the verify result whether one good signature by a keyring key exists. */
static int judge(gpgme_ctx_t ctx, const struct dl_verify_options *o, struct dl_error *err)
{
        gpgme_verify_result_t r = gpgme_op_verify_result(ctx);
        struct dl_buf why = {0};
        int rc;

        if (!r || !r->signatures) {
                rc = dl_fail(err, DL_EVERIFY, "%s: no OpenPGP signature found", o->what);
                return rc;
        }
        for (gpgme_signature_t sig = r->signatures; sig; sig = sig->next) {
                gpgme_err_code_t code = gpgme_err_code(sig->status);
                bool expired =
                    (sig->summary & GPGME_SIGSUM_KEY_EXPIRED) || code == GPG_ERR_KEY_EXPIRED;
                if ((sig->summary & GPGME_SIGSUM_KEY_REVOKED) || code == GPG_ERR_CERT_REVOKED) {
                        dl_buf_printf(&why, "%skey %s is revoked", why.len ? "; " : "",
                                      sig->fpr ? sig->fpr : "?");
                        continue;
                }
                if (code == GPG_ERR_NO_ERROR && !expired) {
                        dl_buf_free(&why);
                        dl_debug("%s: good signature by %s", o->what, sig->fpr);
                        return DL_OK;
                }
                if (expired && (code == GPG_ERR_NO_ERROR || code == GPG_ERR_KEY_EXPIRED) &&
                    !(sig->summary & GPGME_SIGSUM_RED)) {
                        if (o->allow_expired_key) {
                                dl_warn("%s: accepting a good signature by the expired key %s "
                                        "because the source is a snapshot",
                                        o->what, sig->fpr ? sig->fpr : "?");
                                dl_buf_free(&why);
                                return DL_OK;
                        }
                        dl_buf_printf(&why, "%ssignature by the expired key %s",
                                      why.len ? "; " : "", sig->fpr ? sig->fpr : "?");
                        continue;
                }
                if (code == GPG_ERR_NO_PUBKEY)
                        dl_buf_printf(&why, "%ssigned by key %s, which is not in keyring %s",
                                      why.len ? "; " : "", sig->fpr ? sig->fpr : "?", o->keyring);
                else if (code == GPG_ERR_BAD_SIGNATURE)
                        dl_buf_printf(&why,
                                      "%sbad signature by key %s (the signed text was altered)",
                                      why.len ? "; " : "", sig->fpr ? sig->fpr : "?");
                else
                        dl_buf_printf(&why, "%ssignature by key %s: %s", why.len ? "; " : "",
                                      sig->fpr ? sig->fpr : "?", gpgme_strerror(sig->status));
        }
        rc = dl_fail(err, DL_EVERIFY, "%s: signature verification failed: %s", o->what,
                     dl_buf_str(&why));
        dl_buf_free(&why);
        return rc;
}

int dl_verify_clearsigned(const struct dl_verify_options *o, const void *msg, size_t len,
                          struct dl_buf *plain, struct dl_error *err)
{
        struct session s;
        gpgme_data_t sig = NULL, out = NULL;
        gpgme_error_t e;
        int rc = session_open(&s, o, err);

        plain->len = 0;
        if (rc) {
                session_close(&s);
                return rc;
        }
        if ((e = gpgme_data_new_from_mem(&sig, msg, len, 0)) || (e = gpgme_data_new(&out))) {
                rc = dl_fail(err, DL_EINTERNAL, "gpgme: %s", gpgme_strerror(e));
                goto out;
        }
        e = gpgme_op_verify(s.ctx, sig, NULL, out);
        if (e) {
                rc = dl_fail(err, DL_EVERIFY, "%s: not a valid clearsigned file: %s", o->what,
                             gpgme_strerror(e));
                goto out;
        }
        rc = judge(s.ctx, o, err);
        if (rc == DL_OK) {
                /* Only the text of a verified message is used, never the raw file. */
                size_t n = 0;
                char *text = gpgme_data_release_and_get_mem(out, &n);
                out = NULL;
                dl_buf_append(plain, text ? text : "", n);
                gpgme_free(text);
                dl_buf_str(plain);
        }
out:
        gpgme_data_release(sig);
        gpgme_data_release(out);
        session_close(&s);
        return rc;
}

int dl_verify_detached(const struct dl_verify_options *o, const void *data, size_t len,
                       const void *sigdata, size_t sig_len, struct dl_error *err)
{
        struct session s;
        gpgme_data_t sig = NULL, text = NULL;
        gpgme_error_t e;
        int rc = session_open(&s, o, err);

        if (rc) {
                session_close(&s);
                return rc;
        }
        if ((e = gpgme_data_new_from_mem(&sig, sigdata, sig_len, 0)) ||
            (e = gpgme_data_new_from_mem(&text, data, len, 0))) {
                rc = dl_fail(err, DL_EINTERNAL, "gpgme: %s", gpgme_strerror(e));
                goto out;
        }
        e = gpgme_op_verify(s.ctx, sig, text, NULL);
        if (e)
                rc = dl_fail(err, DL_EVERIFY, "%s: not a valid detached signature: %s", o->what,
                             gpgme_strerror(e));
        else
                rc = judge(s.ctx, o, err);
out:
        gpgme_data_release(sig);
        gpgme_data_release(text);
        session_close(&s);
        return rc;
}
