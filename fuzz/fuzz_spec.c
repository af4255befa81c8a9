/* Fuzz target for the spec parser. The input is the YAML text of a spec. A spec
 * that parses is also turned into the lock's canonical inputs, as `distill lock`
 * does with it. */
#include <stdint.h>
#include <stdlib.h>

#include "distill/lock.h"
#include "distill/log.h"
#include "distill/spec.h"
#include "distill/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* Warnings about the input are expected, and printing them slows the run. */
        dl_log_set_level(DL_LOG_ERROR);
        struct dl_spec spec;
        struct dl_error err;

        /* spec.h promises an empty *out on failure, so nothing is freed then and
         * LeakSanitizer reports anything left behind. */
        if (dl_spec_parse("fuzz-input.yaml", (const char *)data, size, &spec, &err) != DL_OK)
                return 0;

        struct dl_strlist packages = {0};
        dl_spec_packages_for(&spec, "amd64", &packages);
        dl_strlist_free(&packages);
        free(dl_lock_inputs_json(&spec));
        dl_spec_free(&spec);
        return 0;
}
