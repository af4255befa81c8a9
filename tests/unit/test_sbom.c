/* Tests of dl_sbom_write: two platforms, each with a staging tree that contains
 * DEP-5, free-form and missing copyright files, packages from two sources of a
 * spec parsed from YAML, and both output formats read back with jansson. When
 * DISTILL_TEST_SBOM_DIR names a directory, the documents are copied there as
 * spdx.json and cyclonedx.json for tests/sbom/validate.js. */
#include "testutil.h"

#include <jansson.h>
#include <regex.h>

#include "distill/fstree.h"
#include "distill/resolve.h"
#include "distill/sbom.h"
#include "distill/spec.h"
#include "distill/unpack.h"

/* 2026-12-04T00:00:00Z, in seconds since the Unix epoch. */
#define EPOCH   1796342400LL
#define CREATED "2026-12-04T00:00:00Z"
#define REF     "demo:1.0"
#define DIGEST  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define URL0    "https://deb.example/debian"
#define URL1    "https://deb.example/debian-security"

/* The first suite is bookworm-updates, so that the purl's distro qualifier shows
 * the suffix dropped. */
static const char spec_yaml[] = "name: demo\n"
                                "sources:\n"
                                "  - url: " URL0 "\n"
                                "    suites: [bookworm-updates, bookworm]\n"
                                "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                                "  - url: " URL1 "\n"
                                "    suites: [bookworm-security]\n"
                                "    keyring: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                                "architectures: [amd64, arm64]\n"
                                "packages: [libfoo1]\n";

#define DEP5_FORMAT "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"

/* Two Files paragraphs (GPL-2+ and BSD-3-clause) and stand-alone License
 * paragraphs for both. */
static const char libfoo_copyright[] =
    DEP5_FORMAT "Upstream-Name: foo\n"
                "\n"
                "Files: *\n"
                "Copyright: 2020 Foo Authors\n"
                "License: GPL-2+\n"
                "\n"
                "Files: src/bar.c\n"
                "Copyright: 2021 Bar Authors\n"
                "License: BSD-3-clause\n"
                "\n"
                "License: BSD-3-clause\n"
                " Redistribution and use in source and binary forms are permitted.\n"
                "\n"
                "License: GPL-2+\n"
                " On Debian systems the GPL is in /usr/share/common-licenses/GPL-2.\n";

/* The same license in two Files paragraphs is declared once. */
static const char libstdcxx_copyright[] = DEP5_FORMAT "\n"
                                                      "Files: *\n"
                                                      "Copyright: 2023 GCC Authors\n"
                                                      "License: GPL-3+\n"
                                                      "\n"
                                                      "Files: libsupc++/*\n"
                                                      "Copyright: 2023 GCC Authors\n"
                                                      "License: GPL-3+\n";

static const char oldpkg_copyright[] =
    "This package was debianized by Someone in 1999.\n"
    "\n"
    "It is distributed under the terms of the Artistic license.\n";

/* A license not on the SPDX list, with its text in the Files paragraph. */
static const char tzdata_copyright[] = DEP5_FORMAT "\n"
                                                   "Files: *\n"
                                                   "Copyright: none\n"
                                                   "License: public-domain\n"
                                                   " The time zone data is in the public domain.\n";

/* A custom license with a stand-alone paragraph whose " ." line is an empty line,
 * and a choice between a listed license and one without a paragraph. Lines that
 * hold only white space, which deb822 forbids but real files contain, separate
 * paragraphs or, before a continuation line, stand for an empty line. */
static const char custom_copyright[] = DEP5_FORMAT "\n"
                                                   "Files: *\n"
                                                   "Copyright: 2024 Custom Team\n"
                                                   "License: Custom-Thing\n"
                                                   " \t\n"
                                                   "Files: lib/*\n"
                                                   "Copyright: 2024 Custom Team\n"
                                                   "License: GPL-2+ or Artistic\n"
                                                   "\n"
                                                   "License: Custom-Thing\n"
                                                   " Line one.\n"
                                                   " .\n"
                                                   " Line two.\n"
                                                   "  \n"
                                                   " Line three.\n";

/* The DEP-5 comma rule both ways, an alias (Expat is MIT), paragraphs whose
 * licenses were all named before (one of them a choice), and a second
 * public-domain text. */
static const char comma_copyright[] = DEP5_FORMAT "\n"
                                                  "Files: *\n"
                                                  "Copyright: 2024 Comma Authors\n"
                                                  "License: GPL-2+ or Artistic, and Zlib\n"
                                                  "\n"
                                                  "Files: contrib/*\n"
                                                  "Copyright: 2024 Comma Authors\n"
                                                  "License: Expat\n"
                                                  "\n"
                                                  "Files: tests/*\n"
                                                  "Copyright: 2024 Comma Authors\n"
                                                  "License: Zlib and Expat\n"
                                                  "\n"
                                                  "Files: extra/*\n"
                                                  "Copyright: 2024 Comma Authors\n"
                                                  "License: GPL-2+ or Artistic\n"
                                                  "\n"
                                                  "Files: build/*\n"
                                                  "Copyright: 2024 Comma Authors\n"
                                                  "License: Zlib, and Expat or GPL-2+\n"
                                                  "\n"
                                                  "Files: doc/*\n"
                                                  "Copyright: none\n"
                                                  "License: public-domain\n"
                                                  " The documentation is in the public domain.\n";

#define TZDATA_TEXT "The time zone data is in the public domain."
#define COMMA_PD    "The documentation is in the public domain."
#define CUSTOM_TEXT "Line one.\n\nLine two.\n\nLine three."

/* What one package element must contain. license is the SPDX expression, NULL
 * for NOASSERTION. cdx_kind names how CycloneDX writes it: "id", "name",
 * "expression", or NULL for no licenses. */
struct expected {
        const char *spdxid;
        const char *name, *version, *arch, *filename;
        int source;
        const char *maintainer; /* the control file's field, NULL for none */
        const char *supplier;   /* SPDX form */
        const char *supplier_name, *supplier_email;
        const char *license;
        const char *cdx_kind;
        const char *purl;
};

/* Filled by setup with the suffixed LicenseRef of the second public-domain text. */
static char comma_pd_ref[64];
static char comma_license[256];

/* libcustom0's Maintainer field has a URL in place of an email address, so its
 * supplier has no email. */
static struct expected expected[] = {
    {"SPDXRef-Package-deb-libfoo1-amd64-1", "libfoo1", "1:2.3+dfsg-1~deb12u1", "amd64",
     "pool/main/libf/libfoo/libfoo1_2.3+dfsg-1~deb12u1_amd64.deb", 0,
     "Foo Maintainers <foo@example.org>", "Organization: Foo Maintainers (foo@example.org)",
     "Foo Maintainers", "foo@example.org", "GPL-2.0-or-later AND BSD-3-Clause", "expression",
     "pkg:deb/debian/libfoo1@1%3A2.3%2Bdfsg-1~deb12u1?arch=amd64&distro=debian-bookworm"},
    {"SPDXRef-Package-deb-libstdc--6-amd64-2", "libstdc++6", "12.2.0-14", "amd64",
     "pool/main/g/gcc-12/libstdc++6_12.2.0-14_amd64.deb", 1, "GCC Maintainers <gcc@example.org>",
     "Organization: GCC Maintainers (gcc@example.org)", "GCC Maintainers", "gcc@example.org",
     "GPL-3.0-or-later", "id",
     "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-bookworm"},
    {"SPDXRef-Package-deb-oldpkg-amd64-3", "oldpkg", "0.9-3", "amd64",
     "pool/main/o/oldpkg/oldpkg_0.9-3_amd64.deb", 0, NULL, "NOASSERTION", NULL, NULL, NULL, NULL,
     "pkg:deb/debian/oldpkg@0.9-3?arch=amd64&distro=debian-bookworm"},
    {"SPDXRef-Package-deb-tzdata-all-4", "tzdata", "2024a-0+deb12u1", "all",
     "pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb", 0, "J\xf6rg Example <tz@example.org>",
     "Organization: J\xc3\xb6rg Example (tz@example.org)", "J\xc3\xb6rg Example", "tz@example.org",
     "LicenseRef-public-domain", "name",
     "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-bookworm"},
    {"SPDXRef-Package-deb-libcustom0-arm64-5", "libcustom0", "1.0-1", "arm64",
     "pool/main/libc/libcustom/libcustom0_1.0-1_arm64.deb", 0,
     "Custom Team <https://custom.example/>", "Organization: Custom Team", "Custom Team", NULL,
     "LicenseRef-Custom-Thing AND (GPL-2.0-or-later OR LicenseRef-Artistic)", "expression",
     "pkg:deb/debian/libcustom0@1.0-1?arch=arm64&distro=debian-bookworm"},
    {"SPDXRef-Package-deb-libcomma1-arm64-6", "libcomma1", "2.0-1", "arm64",
     "pool/main/libc/libcomma/libcomma1_2.0-1_arm64.deb", 0, "Comma Team <comma@example.org>",
     "Organization: Comma Team (comma@example.org)", "Comma Team", "comma@example.org",
     comma_license, "expression",
     "pkg:deb/debian/libcomma1@2.0-1?arch=arm64&distro=debian-bookworm"},
    {"SPDXRef-Package-deb-tzdata-all-7", "tzdata", "2024a-0+deb12u1", "all",
     "pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb", 0, "J\xf6rg Example <tz@example.org>",
     "Organization: J\xc3\xb6rg Example (tz@example.org)", "J\xc3\xb6rg Example", "tz@example.org",
     NULL, NULL, "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-bookworm"},
};

#define N_EXPECTED (sizeof expected / sizeof expected[0])
#define N_AMD64    4

/* Fixture --------------------------------------------------------------------- */

struct fixture {
        char *dir;
        struct dl_spec spec;
        struct dl_fstree trees[2];
        struct dl_package packages[N_EXPECTED];
        struct dl_deb_control controls[N_EXPECTED];
        struct dl_sbom_platform platforms[2];
        struct dl_sbom_input in;
};

static void write_tree_file(struct dl_fstree *t, const char *path, const char *text)
{
        struct dl_error err = {0};
        if (dl_fstree_write_file(t, path, text, strlen(text), 0644, 0, 0, EPOCH, &err) != DL_OK)
                fail_msg("writing /%s into the staging tree: %s", path, err.msg);
}

static void init_tree(struct fixture *f, int i, const char *arch)
{
        struct dl_error err = {0};
        char *stage = tu_asprintf("%s/stage-%s", f->dir, arch);
        assert_int_equal(mkdir(stage, 0755), 0);
        if (dl_fstree_init(&f->trees[i], stage, &err) != DL_OK)
                fail_msg("dl_fstree_init: %s", err.msg);
        free(stage);
}

/* amd64: libfoo1, libstdc++6, oldpkg and tzdata ship copyright files. arm64:
 * libcustom0's doc directory is a symlink, and tzdata's copyright is missing. */
static void build_trees(struct fixture *f)
{
        struct dl_error err = {0};
        init_tree(f, 0, "amd64");
        init_tree(f, 1, "arm64");
        write_tree_file(&f->trees[0], "usr/share/doc/libfoo1/copyright", libfoo_copyright);
        write_tree_file(&f->trees[0], "usr/share/doc/libstdc++6/copyright", libstdcxx_copyright);
        write_tree_file(&f->trees[0], "usr/share/doc/oldpkg/copyright", oldpkg_copyright);
        write_tree_file(&f->trees[0], "usr/share/doc/tzdata/copyright", tzdata_copyright);
        write_tree_file(&f->trees[1], "usr/share/doc/custom-common/copyright", custom_copyright);
        if (dl_fstree_add_symlink(&f->trees[1], "usr/share/doc/libcustom0", "custom-common", EPOCH,
                                  &err) != DL_OK)
                fail_msg("adding the doc symlink: %s", err.msg);
        write_tree_file(&f->trees[1], "usr/share/doc/libcomma1/copyright", comma_copyright);
}

static void fill_packages(struct fixture *f)
{
        for (size_t i = 0; i < N_EXPECTED; i++) {
                const struct expected *e = &expected[i];
                struct dl_package *p = &f->packages[i];
                p->name = strdup(e->name);
                p->version = strdup(e->version);
                p->arch = strdup(e->arch);
                p->filename = strdup(e->filename);
                p->sha256 = malloc(65);
                assert_non_null(p->sha256);
                tu_fake_sha256(e->name, p->sha256);
                p->size = 1000 + i;
                p->source = e->source;
                p->suite = strdup(e->source ? "bookworm-security" : "bookworm");
                p->why = strdup(e->name);
                f->controls[i].control =
                    e->maintainer ? tu_asprintf("Package: %s\nVersion: %s\nMaintainer: %s\n",
                                                e->name, e->version, e->maintainer)
                                  : tu_asprintf("Package: %s\nVersion: %s\n", e->name, e->version);
        }
}

/* The second public-domain text gets the plain identifier suffixed with the
 * first 12 hex digits of SHA-256("NAME\nTEXT"). */
static void compute_comma_license(void)
{
        char *both = tu_asprintf("public-domain\n%s", COMMA_PD);
        char hex[65];
        tu_sha256_hex(both, strlen(both), hex);
        free(both);
        snprintf(comma_pd_ref, sizeof comma_pd_ref, "LicenseRef-public-domain-%.12s", hex);
        snprintf(comma_license, sizeof comma_license,
                 "(GPL-2.0-or-later OR LicenseRef-Artistic) AND Zlib AND MIT AND "
                 "(MIT OR GPL-2.0-or-later) AND %s",
                 comma_pd_ref);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof *f);
        assert_non_null(f);
        struct dl_error err = {0};
        f->dir = tu_mkdtemp();
        if (dl_spec_parse("sbom-spec.yaml", spec_yaml, strlen(spec_yaml), &f->spec, &err) != DL_OK)
                fail_msg("dl_spec_parse: %s", err.msg);
        build_trees(f);
        fill_packages(f);
        compute_comma_license();
        f->platforms[0] =
            (struct dl_sbom_platform){"amd64", f->packages, f->controls, N_AMD64, &f->trees[0]};
        f->platforms[1] =
            (struct dl_sbom_platform){"arm64", f->packages + N_AMD64, f->controls + N_AMD64,
                                      N_EXPECTED - N_AMD64, &f->trees[1]};
        f->in = (struct dl_sbom_input){&f->spec, REF, DIGEST, EPOCH, f->platforms, 2};
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        for (size_t i = 0; i < N_EXPECTED; i++) {
                struct dl_package *p = &f->packages[i];
                free(p->name);
                free(p->version);
                free(p->arch);
                free(p->filename);
                free(p->sha256);
                free(p->suite);
                free(p->why);
                free(f->controls[i].control);
        }
        dl_fstree_free(&f->trees[0]);
        dl_fstree_free(&f->trees[1]);
        dl_spec_free(&f->spec);
        tu_rm_rf(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

/* Helpers for reading documents back ------------------------------------------ */

/* Write the document in format to DIR/name and return its parsed JSON. */
static json_t *write_and_load(struct fixture *f, enum dl_sbom_format format, const char *name)
{
        struct dl_error err = {0};
        char *path = tu_asprintf("%s/%s", f->dir, name);
        if (dl_sbom_write(&f->in, format, path, &err) != DL_OK)
                fail_msg("dl_sbom_write %s: %s", name, err.msg);
        json_error_t jerr;
        json_t *doc = json_load_file(path, 0, &jerr);
        if (!doc)
                fail_msg("%s is not valid JSON: %s at line %d", name, jerr.text, jerr.line);
        const char *keep = getenv("DISTILL_TEST_SBOM_DIR");
        if (keep && keep[0]) {
                size_t len;
                unsigned char *data = tu_read_file(path, &len);
                free(tu_write_file(keep, name, (const char *)data));
                free(data);
        }
        free(path);
        return doc;
}

/* Return the string at key of obj, failing the test when it is not a string. */
static const char *str_at(const json_t *obj, const char *key)
{
        const json_t *v = json_object_get(obj, key);
        if (!json_is_string(v))
                fail_msg("expected a string at \"%s\"", key);
        return json_string_value(v);
}

#define assert_str_at(obj, key, expected_value)                                                    \
        assert_string_equal(str_at((obj), (key)), (expected_value))

static const json_t *array_at(const json_t *obj, const char *key, size_t n)
{
        const json_t *v = json_object_get(obj, key);
        if (!json_is_array(v))
                fail_msg("expected an array at \"%s\"", key);
        if (json_array_size(v) != n)
                fail_msg("expected %zu elements at \"%s\", found %zu", n, key, json_array_size(v));
        return v;
}

/* Return the element of array whose key is value, failing when there is none. */
static const json_t *find_by(const json_t *array, const char *key, const char *value)
{
        size_t i;
        const json_t *el;
        json_array_foreach(array, i, el)
        {
                const json_t *v = json_object_get(el, key);
                if (json_is_string(v) && strcmp(json_string_value(v), value) == 0)
                        return el;
        }
        fail_msg("no element with %s = %s", key, value);
        return NULL;
}

static void assert_matches(const char *s, const char *pattern)
{
        regex_t re;
        assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
        int rc = regexec(&re, s, 0, NULL, 0);
        regfree(&re);
        if (rc != 0)
                fail_msg("\"%s\" does not match %s", s, pattern);
}

static char *download_url(const struct expected *e)
{
        return tu_asprintf("%s/%s", e->source ? URL1 : URL0, e->filename);
}

/* dl_sbom_parse_format ------------------------------------------------------- */

static void test_sbom_parse_format(void **state)
{
        (void)state;
        struct dl_error err = {0};
        enum dl_sbom_format fmt = DL_SBOM_CYCLONEDX;
        assert_int_equal(dl_sbom_parse_format("spdx", &fmt, &err), DL_OK);
        assert_int_equal(fmt, DL_SBOM_SPDX);
        assert_int_equal(dl_sbom_parse_format("cyclonedx", &fmt, &err), DL_OK);
        assert_int_equal(fmt, DL_SBOM_CYCLONEDX);
        assert_int_equal(dl_sbom_parse_format("xml", &fmt, &err), DL_EUSAGE);
        assert_contains(err.msg, "xml");
        assert_contains(err.msg, "spdx or cyclonedx");
        assert_int_equal(dl_sbom_parse_format("", &fmt, &err), DL_EUSAGE);
}

/* SPDX 2.3 ------------------------------------------------------------------- */

static void test_spdx_document_fields(void **state)
{
        struct fixture *f = *state;
        json_t *doc = write_and_load(f, DL_SBOM_SPDX, "spdx.json");
        assert_str_at(doc, "spdxVersion", "SPDX-2.3");
        assert_str_at(doc, "dataLicense", "CC0-1.0");
        assert_str_at(doc, "SPDXID", "SPDXRef-DOCUMENT");
        assert_str_at(doc, "name", REF);
        assert_str_at(doc, "documentNamespace", "https://distill.invalid/spdx/demo-" DIGEST);
        const json_t *info = json_object_get(doc, "creationInfo");
        assert_str_at(info, "created", CREATED);
        const json_t *creators = array_at(info, "creators", 1);
        assert_string_equal(json_string_value(json_array_get(creators, 0)), "Tool: distill-0.1.0");
        const json_t *describes = array_at(doc, "documentDescribes", 1);
        assert_string_equal(json_string_value(json_array_get(describes, 0)), "SPDXRef-Image");

        const json_t *packages = array_at(doc, "packages", 1 + N_EXPECTED);
        const json_t *image = find_by(packages, "SPDXID", "SPDXRef-Image");
        assert_str_at(image, "name", REF);
        assert_str_at(image, "versionInfo", "sha256:" DIGEST);
        assert_str_at(image, "downloadLocation", "NOASSERTION");
        assert_str_at(image, "primaryPackagePurpose", "CONTAINER");
        const json_t *ref = json_array_get(array_at(image, "externalRefs", 1), 0);
        assert_str_at(ref, "referenceCategory", "PACKAGE-MANAGER");
        assert_str_at(ref, "referenceType", "purl");
        assert_str_at(ref, "referenceLocator", "pkg:oci/demo@sha256%3A" DIGEST);
        json_decref(doc);
}

static void check_spdx_package(const json_t *p, const struct expected *e)
{
        char sha[65];
        tu_fake_sha256(e->name, sha);
        char *url = download_url(e);
        assert_str_at(p, "name", e->name);
        assert_str_at(p, "versionInfo", e->version);
        assert_str_at(p, "supplier", e->supplier);
        assert_str_at(p, "downloadLocation", url);
        assert_true(json_is_false(json_object_get(p, "filesAnalyzed")));
        const json_t *sum = json_array_get(array_at(p, "checksums", 1), 0);
        assert_str_at(sum, "algorithm", "SHA256");
        assert_str_at(sum, "checksumValue", sha);
        assert_str_at(p, "licenseConcluded", "NOASSERTION");
        assert_str_at(p, "licenseDeclared", e->license ? e->license : "NOASSERTION");
        assert_str_at(p, "copyrightText", "NOASSERTION");
        const json_t *ref = json_array_get(array_at(p, "externalRefs", 1), 0);
        assert_str_at(ref, "referenceCategory", "PACKAGE-MANAGER");
        assert_str_at(ref, "referenceType", "purl");
        assert_str_at(ref, "referenceLocator", e->purl);
        free(url);
}

static void test_spdx_packages(void **state)
{
        struct fixture *f = *state;
        json_t *doc = write_and_load(f, DL_SBOM_SPDX, "spdx.json");
        const json_t *packages = array_at(doc, "packages", 1 + N_EXPECTED);
        for (size_t i = 0; i < N_EXPECTED; i++)
                check_spdx_package(find_by(packages, "SPDXID", expected[i].spdxid), &expected[i]);

        /* Every SPDXID is unique and uses only the characters SPDX allows. */
        size_t n = json_array_size(packages);
        for (size_t i = 0; i < n; i++) {
                const char *id = str_at(json_array_get(packages, i), "SPDXID");
                assert_matches(id, "^SPDXRef-[A-Za-z0-9.-]+$");
                for (size_t j = i + 1; j < n; j++)
                        assert_string_not_equal(id, str_at(json_array_get(packages, j), "SPDXID"));
        }
        json_decref(doc);
}

static void test_spdx_relationships(void **state)
{
        struct fixture *f = *state;
        json_t *doc = write_and_load(f, DL_SBOM_SPDX, "spdx.json");
        const json_t *rels = array_at(doc, "relationships", 1 + N_EXPECTED);
        const json_t *first = json_array_get(rels, 0);
        assert_str_at(first, "spdxElementId", "SPDXRef-DOCUMENT");
        assert_str_at(first, "relationshipType", "DESCRIBES");
        assert_str_at(first, "relatedSpdxElement", "SPDXRef-Image");
        for (size_t i = 0; i < N_EXPECTED; i++) {
                const json_t *r = json_array_get(rels, i + 1);
                assert_str_at(r, "spdxElementId", "SPDXRef-Image");
                assert_str_at(r, "relationshipType", "CONTAINS");
                assert_str_at(r, "relatedSpdxElement", expected[i].spdxid);
        }
        json_decref(doc);
}

static void check_extracted(const json_t *infos, const char *id, const char *name, const char *text)
{
        const json_t *x = find_by(infos, "licenseId", id);
        assert_str_at(x, "name", name);
        assert_str_at(x, "extractedText", text);
}

/* Whether expression names id as a whole token: LicenseRef-public-domain does
 * not count inside LicenseRef-public-domain-0123. */
static int declared_uses(const char *expression, const char *id)
{
        size_t n = strlen(id);
        for (const char *p = strstr(expression, id); p; p = strstr(p + 1, id)) {
                char after = p[n];
                if (after == '\0' || after == ' ' || after == ')')
                        return 1;
        }
        return 0;
}

/* Each LicenseRef an expression uses has exactly one hasExtractedLicensingInfos
 * entry, with the license paragraph's text or, lacking one, the name. */
static void test_spdx_extracted_licenses(void **state)
{
        struct fixture *f = *state;
        json_t *doc = write_and_load(f, DL_SBOM_SPDX, "spdx.json");
        const json_t *infos = array_at(doc, "hasExtractedLicensingInfos", 4);
        check_extracted(infos, "LicenseRef-public-domain", "public-domain", TZDATA_TEXT);
        check_extracted(infos, comma_pd_ref, "public-domain", COMMA_PD);
        check_extracted(infos, "LicenseRef-Custom-Thing", "Custom-Thing", CUSTOM_TEXT);
        check_extracted(infos, "LicenseRef-Artistic", "Artistic", "Artistic");

        const json_t *packages = json_object_get(doc, "packages");
        for (size_t i = 0; i < json_array_size(infos); i++) {
                const char *id = str_at(json_array_get(infos, i), "licenseId");
                assert_matches(id, "^LicenseRef-[A-Za-z0-9.-]+$");
                size_t used = 0;
                for (size_t k = 0; k < json_array_size(packages); k++) {
                        const char *declared =
                            str_at(json_array_get(packages, k), "licenseDeclared");
                        used += declared_uses(declared, id);
                }
                if (used == 0)
                        fail_msg("%s is listed but no package declares it", id);
        }
        json_decref(doc);
}

/* CycloneDX 1.5 ---------------------------------------------------------------- */

static void test_cyclonedx_document_fields(void **state)
{
        struct fixture *f = *state;
        json_t *doc = write_and_load(f, DL_SBOM_CYCLONEDX, "cyclonedx.json");
        assert_str_at(doc, "bomFormat", "CycloneDX");
        assert_str_at(doc, "specVersion", "1.5");
        /* RFC 4122: version 5 in the third group, variant 10xx in the fourth. */
        assert_matches(
            str_at(doc, "serialNumber"),
            "^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
        assert_int_equal(json_integer_value(json_object_get(doc, "version")), 1);
        const json_t *meta = json_object_get(doc, "metadata");
        assert_str_at(meta, "timestamp", CREATED);
        const json_t *tools = json_object_get(meta, "tools");
        const json_t *tool = json_array_get(array_at(tools, "components", 1), 0);
        assert_str_at(tool, "type", "application");
        assert_str_at(tool, "name", "distill");
        assert_str_at(tool, "version", "0.1.0");
        const json_t *image = json_object_get(meta, "component");
        assert_str_at(image, "type", "container");
        assert_str_at(image, "name", REF);
        assert_str_at(image, "version", "sha256:" DIGEST);
        assert_str_at(image, "purl", "pkg:oci/demo@sha256%3A" DIGEST);
        assert_str_at(image, "bom-ref", "pkg:oci/demo@sha256%3A" DIGEST);
        json_decref(doc);
}

static void check_cdx_license(const json_t *c, const struct expected *e)
{
        const json_t *licenses = json_object_get(c, "licenses");
        if (e->cdx_kind == NULL) {
                assert_null(licenses);
                return;
        }
        const json_t *first = json_array_get(array_at(c, "licenses", 1), 0);
        if (strcmp(e->cdx_kind, "expression") == 0) {
                assert_str_at(first, "expression", e->license);
                return;
        }
        const json_t *license = json_object_get(first, "license");
        if (strcmp(e->cdx_kind, "id") == 0)
                assert_str_at(license, "id", e->license);
        else
                assert_str_at(license, "name", e->license + strlen("LicenseRef-"));
}

static void check_cdx_component(const json_t *c, const struct expected *e)
{
        char sha[65];
        tu_fake_sha256(e->name, sha);
        char *url = download_url(e);
        assert_str_at(c, "type", "library");
        assert_str_at(c, "name", e->name);
        assert_str_at(c, "version", e->version);
        assert_str_at(c, "purl", e->purl);
        const json_t *hash = json_array_get(array_at(c, "hashes", 1), 0);
        assert_str_at(hash, "alg", "SHA-256");
        assert_str_at(hash, "content", sha);
        check_cdx_license(c, e);
        const json_t *supplier = json_object_get(c, "supplier");
        if (e->supplier_name == NULL) {
                assert_null(supplier);
        } else {
                assert_str_at(supplier, "name", e->supplier_name);
                const json_t *contact = json_object_get(supplier, "contact");
                if (e->supplier_email)
                        assert_str_at(json_array_get(contact, 0), "email", e->supplier_email);
                else
                        assert_null(contact);
        }
        const json_t *dist = json_array_get(array_at(c, "externalReferences", 1), 0);
        assert_str_at(dist, "type", "distribution");
        assert_str_at(dist, "url", url);
        free(url);
}

static void test_cyclonedx_components(void **state)
{
        struct fixture *f = *state;
        json_t *doc = write_and_load(f, DL_SBOM_CYCLONEDX, "cyclonedx.json");
        const json_t *components = array_at(doc, "components", N_EXPECTED);
        for (size_t i = 0; i < N_EXPECTED; i++) {
                const char *ref = expected[i].spdxid + strlen("SPDXRef-");
                check_cdx_component(find_by(components, "bom-ref", ref), &expected[i]);
        }

        /* bom-refs are unique, the image's included. */
        const char *image_ref =
            str_at(json_object_get(json_object_get(doc, "metadata"), "component"), "bom-ref");
        size_t n = json_array_size(components);
        for (size_t i = 0; i < n; i++) {
                const char *ref = str_at(json_array_get(components, i), "bom-ref");
                assert_string_not_equal(ref, image_ref);
                for (size_t j = i + 1; j < n; j++)
                        assert_string_not_equal(ref,
                                                str_at(json_array_get(components, j), "bom-ref"));
        }

        const json_t *dep = json_array_get(array_at(doc, "dependencies", 1), 0);
        assert_str_at(dep, "ref", image_ref);
        const json_t *on = array_at(dep, "dependsOn", N_EXPECTED);
        for (size_t k = 0; k < N_EXPECTED; k++)
                assert_string_equal(json_string_value(json_array_get(on, k)),
                                    expected[k].spdxid + strlen("SPDXRef-"));
        json_decref(doc);
}

/* Determinism and failures ----------------------------------------------------- */

static void assert_same_bytes(const char *a, const char *b)
{
        size_t la, lb;
        unsigned char *da = tu_read_file(a, &la), *db = tu_read_file(b, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(da, db, la);
        free(da);
        free(db);
}

static void test_sbom_output_deterministic(void **state)
{
        struct fixture *f = *state;
        static const enum dl_sbom_format formats[] = {DL_SBOM_SPDX, DL_SBOM_CYCLONEDX};
        for (size_t i = 0; i < 2; i++) {
                struct dl_error err = {0};
                char *first = tu_asprintf("%s/first-%zu.json", f->dir, i);
                char *second = tu_asprintf("%s/second-%zu.json", f->dir, i);
                assert_int_equal(dl_sbom_write(&f->in, formats[i], first, &err), DL_OK);
                assert_int_equal(dl_sbom_write(&f->in, formats[i], second, &err), DL_OK);
                assert_same_bytes(first, second);
                free(first);
                free(second);
        }
}

/* The namespace and the serial number derive from the digest: another digest
 * gives other values, the same digest the same ones. */
static void test_sbom_identifiers_follow_digest(void **state)
{
        struct fixture *f = *state;
        json_t *spdx1 = write_and_load(f, DL_SBOM_SPDX, "spdx.json");
        json_t *cdx1 = write_and_load(f, DL_SBOM_CYCLONEDX, "cyclonedx.json");
        f->in.digest = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        json_t *spdx2 = write_and_load(f, DL_SBOM_SPDX, "other-spdx.json");
        json_t *cdx2 = write_and_load(f, DL_SBOM_CYCLONEDX, "other-cyclonedx.json");
        f->in.digest = DIGEST;
        assert_string_not_equal(str_at(spdx1, "documentNamespace"),
                                str_at(spdx2, "documentNamespace"));
        assert_string_not_equal(str_at(cdx1, "serialNumber"), str_at(cdx2, "serialNumber"));
        json_decref(spdx1);
        json_decref(cdx1);
        json_decref(spdx2);
        json_decref(cdx2);
}

static void test_sbom_missing_directory_fails(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        char *missing = tu_asprintf("%s/missing", f->dir);
        char *path = tu_asprintf("%s/sbom.json", missing);
        size_t before = tu_count_dir_entries(f->dir, NULL);
        assert_int_equal(dl_sbom_write(&f->in, DL_SBOM_SPDX, path, &err), DL_EIO);
        assert_contains(err.msg, missing);
        struct stat st;
        assert_int_not_equal(stat(missing, &st), 0);
        assert_int_equal(tu_count_dir_entries(f->dir, NULL), before);
        free(path);
        free(missing);
}

static void test_sbom_bad_source_index_fails(void **state)
{
        struct fixture *f = *state;
        struct dl_error err = {0};
        char *path = tu_asprintf("%s/bad-source.json", f->dir);
        f->packages[1].source = 7;
        int rc = dl_sbom_write(&f->in, DL_SBOM_CYCLONEDX, path, &err);
        f->packages[1].source = expected[1].source;
        assert_int_equal(rc, DL_EINTERNAL);
        assert_contains(err.msg, "libstdc++6");
        assert_contains(err.msg, "source 7");
        assert_int_equal(tu_count_dir_entries(f->dir, "bad-source"), 0);
        free(path);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sbom_parse_format),
            cmocka_unit_test_setup_teardown(test_spdx_document_fields, setup, teardown),
            cmocka_unit_test_setup_teardown(test_spdx_packages, setup, teardown),
            cmocka_unit_test_setup_teardown(test_spdx_relationships, setup, teardown),
            cmocka_unit_test_setup_teardown(test_spdx_extracted_licenses, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cyclonedx_document_fields, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cyclonedx_components, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sbom_output_deterministic, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sbom_identifiers_follow_digest, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sbom_missing_directory_fails, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sbom_bad_source_index_fails, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
