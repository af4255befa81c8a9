/* Fuzz target for .deb unpacking. The input, written to a file, is unpacked as
 * the only package of a fresh dl_fstree whose staging directory is removed after
 * every run. The unpack context matches build.c's for a merged-/usr spec. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "distill/fstree.h"
#include "distill/log.h"
#include "distill/unpack.h"
#include "distill/util.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bound on each staged file, in bytes, passed to dl_unpack_deb as the spec's
 * limits.file_size would be. A few hundred bytes of compressed input can expand
 * to gigabytes, and this keeps each run short and the disk free. */
#define FUZZ_MAX_FILE_SIZE (16 << 20)

/* Set RLIMIT_FSIZE to the same bound, so that the kernel raises SIGXFSZ when
 * dl_unpack_deb writes a file past max_file_size. libFuzzer reports SIGXFSZ as
 * a crash because its -handle_xfsz option is on by default. */
static void limit_file_size(void)
{
        static int done;
        if (done)
                return;
        done = 1;
        struct rlimit rl;
        if (getrlimit(RLIMIT_FSIZE, &rl) != 0)
                fuzz_die("cannot read", "RLIMIT_FSIZE");
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < FUZZ_MAX_FILE_SIZE) {
                fprintf(stderr, "fuzz harness: RLIMIT_FSIZE is below %d bytes\n",
                        FUZZ_MAX_FILE_SIZE);
                abort();
        }
        rl.rlim_cur = FUZZ_MAX_FILE_SIZE;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
                fuzz_die("cannot set", "RLIMIT_FSIZE");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* Warnings about the input are expected, and printing them slows the run. */
        dl_log_set_level(DL_LOG_ERROR);
        limit_file_size();
        const char *scratch = fuzz_scratch_dir();
        int fd_before = fuzz_lowest_free_fd();

        char *deb = dl_path_join(scratch, "input.deb");
        fuzz_write_file(deb, data, size);
        char *root = dl_path_join(scratch, "root-XXXXXX");
        if (mkdtemp(root) == NULL)
                fuzz_die("cannot create", root);

        struct dl_error err;
        struct dl_fstree tree;
        if (dl_fstree_init(&tree, root, &err) != DL_OK) {
                fprintf(stderr, "fuzz harness: %s\n", err.msg);
                abort();
        }
        const char *names[] = {"fuzz-sample"};
        const char *versions[] = {"1.0-1"};
        char *replaces[] = {NULL};
        struct dl_strlist allow_overwrite = {0};
        struct dl_unpack_context ctx = {
            .tree = &tree,
            .merged_usr = true,
            .max_file_size = FUZZ_MAX_FILE_SIZE,
            .allow_overwrite = &allow_overwrite,
            .names = names,
            .versions = versions,
            .replaces = replaces,
        };
        struct dl_deb_control ctl;
        /* build.c frees every control and Replaces value whether or not the
         * unpack succeeded, so the harness does the same. */
        (void)dl_unpack_deb(&ctx, 0, deb, &ctl, &err);
        dl_deb_control_free(&ctl);
        free(replaces[0]);
        dl_fstree_free(&tree);

        if (dl_rm_rf(root) != 0)
                fuzz_die("cannot remove", root);
        free(root);
        free(deb);
        fuzz_check_fds(fd_before, "dl_unpack_deb");
        return 0;
}
