/* Fuzz target for the deb822 parser and the Release parser built on it. The
 * input is the text of a Release file (signature removed), a Packages stanza or
 * a .deb control file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distill/deb822.h"
#include "distill/log.h"
#include "distill/sources.h"
#include "distill/unpack.h"
#include "distill/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* Warnings about the input are expected, and printing them slows the run. */
        dl_log_set_level(DL_LOG_ERROR);
        const char *text = (const char *)data;
        struct dl_error err;

        /* The parsers take a length, so they get the input without a terminating
         * NUL and AddressSanitizer detects any read past its end. */
        struct dl_deb822 d;
        if (dl_deb822_parse(text, size, "fuzz-input", &d, &err) == DL_OK) {
                for (size_t i = 0; i < d.n; i++)
                        (void)dl_paragraph_get(&d.paragraphs[i], "Package");
                dl_deb822_free(&d);
        }

        /* On failure dl_release_parse frees what it allocated, as sources.c
         * relies on, so only a successful parse is freed here. */
        struct dl_release rel;
        if (dl_release_parse(text, size, "fuzz-input", &rel, &err) == DL_OK) {
                (void)dl_release_find(&rel, "main/binary-amd64/Packages.xz");
                dl_release_free(&rel);
        }

        /* dl_control_field reads a NUL-terminated control file, as unpack.c
         * passes it after reading control.tar. */
        char *control = dl_malloc(size + 1);
        memcpy(control, data, size);
        control[size] = '\0';
        free(dl_control_field(control, "Replaces"));
        free(control);
        return 0;
}
