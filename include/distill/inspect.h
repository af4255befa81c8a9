/* Reading a built image tarball back: its platforms, configs, layers and the
 * packages that status.d records. */
#ifndef DISTILL_INSPECT_H
#define DISTILL_INSPECT_H

#include <stdbool.h>
#include <stdio.h>

#include "distill/error.h"

/* Print the image at path to out. With sizes, also each package's installed bytes
 * in the image, largest first, and the bytes no package's md5sums lists. */
int dl_inspect(const char *path, bool sizes, FILE *out, struct dl_error *err);

#endif
