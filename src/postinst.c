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
                if (!n->removed && n->type == DL_NODE_FILE && !strncmp(n->path, prefix, sizeof prefix - 1) &&
                    len > 4 && !strcmp(n->path + len - 4, ".crt"))
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
                        dl_warn("ca-certificates: /%s holds no PEM certificate; it is in the bundle but has no hash link",
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
                dl_info("ca-certificates: wrote /etc/ssl/certs/ca-certificates.crt with %zu certificates",
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
                rc = dl_fstree_write_file(t, "etc/timezone", "Etc/UTC\n", 8, 0644, 0, 0, epoch, err);
        return rc;
}
