/* Fuzz target for the lock reader. The input, written to a file, is read with
 * dl_lock_read against a spec with the sources, architectures and packages of
 * specs/passbolt-fpm.yaml, so package entries of a real lock name known sources.
 * A lock that reads is also compared with the spec, as `distill build --locked`
 * does when the inputs digest differs. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/lock.h"
#include "distill/log.h"
#include "distill/spec.h"
#include "distill/util.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char spec_text[] =
        "name: passbolt-fpm\n"
        "sources:\n"
        "  - url: https://snapshot.debian.org/archive/debian/20261204T000000Z\n"
        "    suites: [bookworm, bookworm-updates]\n"
        "    components: [main]\n"
        "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "  - url: https://snapshot.debian.org/archive/debian-security/20261204T000000Z\n"
        "    suites: [bookworm-security]\n"
        "    components: [main]\n"
        "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "architectures: [amd64, arm64]\n"
        "packages: [php8.2-fpm, php8.2-intl, php8.2-gnupg, gnupg, ca-certificates, tzdata]\n"
        "exclude: [systemd, procps, ucf, debconf, init-system-helpers]\n"
        "accounts:\n"
        "  groups: [{name: www-data, gid: 33}]\n"
        "  users: [{name: www-data, uid: 33, gid: 33, home: /var/www, shell: /usr/sbin/nologin}]\n"
        "php:\n"
        "  version: \"8.2\"\n"
        "  extensions: [gnupg, intl]\n"
        "image:\n"
        "  entrypoint: [/usr/sbin/php-fpm8.2, -F, -O]\n"
        "  user: www-data\n";

/* Return the embedded spec, parsed on the first call and kept for the life of
 * the process. LeakSanitizer does not report memory that a static pointer still
 * reaches. */
static struct dl_spec *spec(void)
{
        static struct dl_spec parsed;
        static bool ready;
        if (ready)
                return &parsed;
        struct dl_error err;
        if (dl_spec_parse("passbolt-fpm.yaml", spec_text, sizeof spec_text - 1, &parsed, &err) !=
            DL_OK) {
                fprintf(stderr, "fuzz harness: the embedded spec does not parse: %s\n", err.msg);
                abort();
        }
        ready = true;
        return &parsed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* Warnings about the input are expected, and printing them slows the run. */
        dl_log_set_level(DL_LOG_ERROR);
        const struct dl_spec *s = spec();
        int fd_before = fuzz_lowest_free_fd();
        char *path = dl_path_join(fuzz_scratch_dir(), "passbolt-fpm.lock.json");
        fuzz_write_file(path, data, size);

        struct dl_lock lock;
        struct dl_error err;
        bool missing;
        /* dl_lock_read frees what it allocated when it fails. */
        if (dl_lock_read(path, s, &lock, &missing, &err) == DL_OK) {
                free(dl_lock_describe_drift(&lock, s));
                dl_lock_free(&lock);
        }
        free(path);
        fuzz_check_fds(fd_before, "dl_lock_read");
        return 0;
}
