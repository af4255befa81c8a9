/* dl_deb822_parse on the inputs that break naive parsers: long continuations,
 * the " ." empty-line marker, CRLF line ends, blank and white-space lines, very
 * long fields, and relation fields written without spaces. */
#include "testutil.h"

#include "distill/deb822.h"

#define WHAT "Release"

struct deb822_ctx {
        struct dl_deb822 doc;
        struct dl_error err;
        struct tu_text text;
};

static int setup(void **state)
{
        struct deb822_ctx *c = calloc(1, sizeof *c);
        if (c == NULL)
                return -1;
        *state = c;
        return 0;
}

static int teardown(void **state)
{
        struct deb822_ctx *c = *state;
        dl_deb822_free(&c->doc);
        tu_text_free(&c->text);
        free(c);
        return 0;
}

static int parse(struct deb822_ctx *c, const char *text, size_t len)
{
        dl_deb822_free(&c->doc);
        memset(&c->err, 0, sizeof c->err);
        int rc = dl_deb822_parse(text, len, WHAT, &c->doc, &c->err);
        if (rc != DL_OK)
                print_message("dl_deb822_parse: %s\n", c->err.msg);
        return rc;
}

static int parse_str(struct deb822_ctx *c, const char *text)
{
        return parse(c, text, strlen(text));
}

static const char *get(const struct deb822_ctx *c, size_t para, const char *name)
{
        assert_true(para < c->doc.n);
        const char *v = dl_paragraph_get(&c->doc.paragraphs[para], name);
        if (v == NULL)
                fail_msg("paragraph %zu has no field %s", para, name);
        return v;
}

/* Copy line index (0-based) of a '\n'-joined value into buf and return buf, or
 * return NULL when the value has fewer lines. */
static const char *value_line(const char *value, size_t index, char *buf, size_t size)
{
        const char *p = value;
        for (size_t i = 0; i < index; i++) {
                p = strchr(p, '\n');
                if (p == NULL)
                        return NULL;
                p++;
        }
        size_t n = strcspn(p, "\n");
        assert_true(n < size);
        memcpy(buf, p, n);
        buf[n] = '\0';
        return buf;
}

static size_t count_lines(const char *value)
{
        size_t n = 1;
        for (const char *p = value; *p; p++)
                n += *p == '\n';
        return n;
}

static void test_simple_paragraphs(void **state)
{
        struct deb822_ctx *c = *state;
        assert_int_equal(parse_str(c, "Origin: Debian\n"
                                      "Label:Debian\n"
                                      "Suite: stable   \n"
                                      "Filename: pool/main/a/a:b/x.deb\n"
                                      "\n"
                                      "Package: second\n"),
                         DL_OK);
        assert_int_equal(c->doc.n, 2);
        assert_int_equal(c->doc.paragraphs[0].n, 4);
        assert_string_equal(get(c, 0, "Origin"), "Debian");
        assert_string_equal(get(c, 0, "Label"), "Debian");
        assert_string_equal(get(c, 0, "Suite"), "stable"); /* trailing blanks dropped */
        assert_string_equal(get(c, 0, "Filename"), "pool/main/a/a:b/x.deb");
        assert_string_equal(get(c, 0, "origin"), "Debian"); /* names ignore case */
        assert_null(dl_paragraph_get(&c->doc.paragraphs[0], "Package"));
        assert_string_equal(get(c, 1, "Package"), "second");
        assert_int_equal(c->doc.paragraphs[0].fields[2].line, 3);
        assert_int_equal(c->doc.paragraphs[1].fields[0].line, 6);
}

/* A Release file's checksum list: an empty first line, then one file per line. */
static void test_empty_first_line_500_continuations(void **state)
{
        struct deb822_ctx *c = *state;
        tu_text_puts(&c->text, "Origin: Debian\nSHA256:\n");
        for (int i = 0; i < 500; i++)
                tu_text_printf(&c->text, " %064d %8d main/binary-amd64/Packages.%d\n", i, i * 7, i);
        tu_text_puts(&c->text, "Date: Sat, 04 Dec 2026 00:00:00 UTC\n");
        assert_int_equal(parse(c, c->text.s, c->text.len), DL_OK);

        assert_int_equal(c->doc.n, 1);
        assert_int_equal(c->doc.paragraphs[0].n, 3);
        const char *sums = get(c, 0, "SHA256");
        print_message("SHA256 starts: %.80s\n", sums);
        assert_int_equal(count_lines(sums), 500);

        char line[256], expected[256];
        snprintf(expected, sizeof expected, "%064d %8d main/binary-amd64/Packages.%d", 0, 0, 0);
        assert_string_equal(value_line(sums, 0, line, sizeof line), expected);
        snprintf(expected, sizeof expected, "%064d %8d main/binary-amd64/Packages.%d", 499, 499 * 7,
                 499);
        assert_string_equal(value_line(sums, 499, line, sizeof line), expected);

        assert_string_equal(get(c, 0, "Date"), "Sat, 04 Dec 2026 00:00:00 UTC");
        assert_int_equal(c->doc.paragraphs[0].fields[2].line, 503);
}

/* " ." marks an empty line inside a multi-line value and must not end the
 * paragraph. deb822.h does not fix whether the parser decodes the marker, so
 * that line may read "." or "". */
static void test_description_dot_line(void **state)
{
        struct deb822_ctx *c = *state;
        assert_int_equal(parse_str(c, "Package: tzdata\n"
                                      "Description: time zone data\n"
                                      " First paragraph.\n"
                                      " .\n"
                                      " Second paragraph.\n"
                                      "Section: localization\n"),
                         DL_OK);
        assert_int_equal(c->doc.n, 1);
        assert_int_equal(c->doc.paragraphs[0].n, 3);
        const char *d = get(c, 0, "Description");
        assert_int_equal(count_lines(d), 4);
        char line[64];
        assert_string_equal(value_line(d, 0, line, sizeof line), "time zone data");
        assert_string_equal(value_line(d, 1, line, sizeof line), "First paragraph.");
        value_line(d, 2, line, sizeof line);
        if (strcmp(line, ".") != 0 && strcmp(line, "") != 0)
                fail_msg("the \" .\" line became \"%s\"", line);
        assert_string_equal(value_line(d, 3, line, sizeof line), "Second paragraph.");
        assert_string_equal(get(c, 0, "Section"), "localization");
}

/* The deb822 parser keeps relation fields verbatim, because spacing is the
 * relation parser's concern. */
static void test_relations_without_spaces(void **state)
{
        struct deb822_ctx *c = *state;
        assert_int_equal(parse_str(c, "Package: myapp\n"
                                      "Depends: libc6(>=2.34),libfoo2|libfoo1(>=1.5),"
                                      "perl:any,libbar(<<2~)\n"),
                         DL_OK);
        assert_string_equal(get(c, 0, "Depends"),
                            "libc6(>=2.34),libfoo2|libfoo1(>=1.5),perl:any,libbar(<<2~)");
}

static void test_long_single_line(void **state)
{
        struct deb822_ctx *c = *state;
        size_t n = 20 * 1024;
        char *long_value = malloc(n + 1);
        assert_non_null(long_value);
        for (size_t i = 0; i < n; i++)
                long_value[i] = (char)('a' + i % 26);
        long_value[n] = '\0';
        tu_text_printf(&c->text, "Package: big\nProvides: %s\nVersion: 1\n", long_value);

        int rc = parse(c, c->text.s, c->text.len);
        assert_int_equal(rc, DL_OK);
        assert_int_equal(c->doc.n, 1);
        const char *v = get(c, 0, "Provides");
        assert_int_equal(strlen(v), n);
        assert_string_equal(v, long_value);
        free(long_value);
        assert_string_equal(get(c, 0, "Version"), "1");
}

static void test_crlf_line_ends(void **state)
{
        struct deb822_ctx *c = *state;
        assert_int_equal(parse_str(c, "Origin: Debian\r\n"
                                      "Description: first\r\n"
                                      " second\r\n"
                                      "\r\n"
                                      "Package: two\r\n"),
                         DL_OK);
        assert_int_equal(c->doc.n, 2);
        assert_string_equal(get(c, 0, "Origin"), "Debian");
        assert_string_equal(get(c, 0, "Description"), "first\nsecond");
        assert_string_equal(get(c, 1, "Package"), "two");
        assert_int_equal(c->doc.paragraphs[1].fields[0].line, 5);
}

static void test_trailing_blank_lines(void **state)
{
        struct deb822_ctx *c = *state;
        assert_int_equal(parse_str(c, "\n\nPackage: one\n\n\n\nPackage: two\n\n\n\n"), DL_OK);
        assert_int_equal(c->doc.n, 2);
        assert_string_equal(get(c, 0, "Package"), "one");
        assert_string_equal(get(c, 1, "Package"), "two");
        assert_int_equal(c->doc.paragraphs[0].fields[0].line, 3);
}

static void test_no_final_newline(void **state)
{
        struct deb822_ctx *c = *state;
        assert_int_equal(parse_str(c, "Package: one\nVersion: 1.0"), DL_OK);
        assert_int_equal(c->doc.n, 1);
        assert_string_equal(get(c, 0, "Version"), "1.0");
}

static void test_empty_input(void **state)
{
        struct deb822_ctx *c = *state;
        assert_int_equal(parse(c, "", 0), DL_OK);
        assert_int_equal(c->doc.n, 0);
}

/* A line of blanks would split the paragraph in a parser that trims lines, so
 * it is rejected with its line number. */
static void test_whitespace_only_line(void **state)
{
        struct deb822_ctx *c = *state;
        int rc = parse_str(c, "Package: one\nVersion: 1.0\n \t \nArchitecture: all\n");
        assert_int_not_equal(rc, DL_OK);
        assert_int_equal(c->err.code, rc);
        assert_contains(c->err.msg, WHAT ":3:");
        assert_int_equal(c->doc.n, 0);
        assert_null(c->doc.paragraphs);
}

static void test_continuation_without_field(void **state)
{
        struct deb822_ctx *c = *state;
        int rc = parse_str(c, " orphan\nPackage: one\n");
        assert_int_not_equal(rc, DL_OK);
        assert_int_equal(c->err.code, rc);
        assert_contains(c->err.msg, WHAT ":1:");
        assert_int_equal(c->doc.n, 0);
}

static void test_line_without_colon(void **state)
{
        struct deb822_ctx *c = *state;
        int rc = parse_str(c, "Package: one\n\nnot a field\n");
        assert_int_not_equal(rc, DL_OK);
        assert_int_equal(c->err.code, rc);
        assert_contains(c->err.msg, WHAT ":3:");
        assert_int_equal(c->doc.n, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        const struct CMUnitTest tests[] = {
            T(test_simple_paragraphs),
            T(test_empty_first_line_500_continuations),
            T(test_description_dot_line),
            T(test_relations_without_spaces),
            T(test_long_single_line),
            T(test_crlf_line_ends),
            T(test_trailing_blank_lines),
            T(test_no_final_newline),
            T(test_empty_input),
            T(test_whitespace_only_line),
            T(test_continuation_without_field),
            T(test_line_without_colon),
        };
#undef T
        return cmocka_run_group_tests_name("deb822", tests, NULL, NULL);
}
