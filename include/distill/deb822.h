/* deb822 paragraphs (Debian policy 5.1): "Name: value" fields, continuation lines
 * that start with a space or tab, paragraphs separated by blank lines. Used for
 * Release files and .deb control files; Packages files go to libsolv directly. */
#ifndef DISTILL_DEB822_H
#define DISTILL_DEB822_H

#include <stddef.h>

#include "distill/error.h"

struct dl_field {
        char *name;
        char *value; /* continuation lines joined with '\n', first-line text first */
        size_t line; /* 1-based line of the field name */
};

struct dl_paragraph {
        struct dl_field *fields;
        size_t n;
};

struct dl_deb822 {
        struct dl_paragraph *paragraphs;
        size_t n;
};

/* Parse text; what names the input in messages. CRLF line ends are accepted. A
 * line that holds only white space inside a paragraph is an error with its line
 * number (policy forbids it and it would otherwise split the paragraph). */
int dl_deb822_parse(const char *text, size_t len, const char *what, struct dl_deb822 *out,
                    struct dl_error *err);
void dl_deb822_free(struct dl_deb822 *d);

/* The value of field name (compared without regard to case), or NULL. */
const char *dl_paragraph_get(const struct dl_paragraph *p, const char *name);

#endif
