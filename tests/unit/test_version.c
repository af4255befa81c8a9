/* dl_version_compare against the order dpkg --compare-versions gives. Every
 * expected result below was checked with dpkg 1.21.23 when the table was
 * written, and the tests do not call dpkg. */
#include "testutil.h"

#include "distill/resolve.h"

struct version_case {
        const char *a;
        const char *b;
        int expected; /* sign of compare(a, b): -1, 0 or 1 */
};

static const struct version_case cases[] = {
    /* Epochs win over everything after them. */
    {"2:9.0.0", "8.3.2", 1},
    {"1:5.0.20-1+bionic", "3.0.31", 1},
    {"1:1.0", "2.0", 1},
    {"1:0.9", "2.0", 1},
    {"1:0.9", "1:1.0", -1},
    {"1.0", "0:1.0", 0},
    {"0:1.0-1", "1.0-1", 0},
    {"1:2.3", "1:2.3-0", 0},

    /* A tilde sorts before everything, even the end of the string. */
    {"1.0~rc1", "1.0", -1},
    {"1.0~rc1", "1.0~rc2", -1},
    {"1.2~3", "1.2", -1},
    {"1.2~3", "1.2.3", -1},
    {"1.0~", "1.0", -1},
    {"1.0~~", "1.0~", -1},
    {"1.0~~a", "1.0~~", 1},
    {"1.0~", "1.0~a", -1},
    {"1.0~", "1.0~~~", 1},
    {"0~", "0", -1},
    {"1.0~rc1-1", "1.0-1", -1},
    {"1.0~rc1-1", "1.0~rc1", 1},
    {"1.0", "1.0a~", -1},
    {"1.0a~", "1.0a", -1},

    /* Backports, security updates and binary NMUs in the revision. */
    {"2.2.14-15~bpo60+1", "2.2.14-15", -1},
    {"2.2.14-15", "2.2.14-15+deb1", -1},
    {"2.2.14-15~bpo60+1", "2.2.14-15+deb1", -1},
    {"2:1.0~rc1-1~bpo1", "2:1.0~rc1-1", -1},
    {"3.0.11-1~deb12u1", "3.0.11-1~deb12u2", -1},
    {"2.36-9+deb12u4", "2.36-9+deb12u10", -1},
    {"8.2.7-1~deb12u1", "8.2.26-1~deb12u1", -1},
    {"1.0-1", "1.0-1+b1", -1},
    {"1.0-1~", "1.0-1", -1},
    {"3.8.3-1.1ubuntu3", "3.8.3-1.1ubuntu4", -1},
    {"3.8.3-1.1ubuntu4", "3.8.1", 1},

    /* Revisions: a missing revision equals "0". */
    {"1.0-1", "1.0-1.1", -1},
    {"1.0", "1.0-0", 0},
    {"1.0", "1.0-1", -1},
    {"1.0-1", "1.0-1", 0},
    {"1:1.0-1", "1:1.0-1", 0},
    {"1.0-1ubuntu1", "1.0-1", 1},
    {"1.0-1", "1.0-1build1", -1},
    {"1.0-1build1", "1.0-1.1", -1},
    {"1.0-a", "1.0-1", 1},
    {"1.2.3-4-5", "1.2.3-4", 1}, /* the revision starts after the last hyphen */
    {"1.2.3-4-5", "1.2.3-4.5", 1},
    {"1.0-0001", "1.0-1", 0},

    /* Letters sort before non-letters, and the end before both. */
    {"1.0a", "1.0", 1},
    {"1.0", "1.0+", -1},
    {"1.0a", "1.0b", -1},
    {"1.0a", "1.0A", 1},
    {"1.0A", "1.0+", -1},
    {"1.0.", "1.0a", 1},
    {"1.0", "1.0.", -1},
    {"1.0+dfsg-1", "1.0-1", 1},
    {"1.0+dfsg1-1", "1.0+dfsg-1", 1},
    {"1.0.0", "1.0+", 1},

    /* Digit runs compare as numbers, of any length, ignoring leading zeros. */
    {"1.0", "1.00", 0},
    {"1.01", "1.1", 0},
    {"1.001", "1.1", 0},
    {"0001.0", "1.0", 0},
    /* NOTE: dpkg calls "1.0." and "1.0.0" equal; libsolv 0.7.23, whose order the
     * resolver uses, sorts "1.0." first. dl_version_compare follows the resolver,
     * so that pair is left out. */
    {"1.0.0", "1.0", 1},
    {"1.9", "1.10", -1},
    {"1.10", "1.9a", 1},
    {"10", "9", 1},
    {"3.0.31", "3.0.4", 1},
    {"1.99999999999999999999", "1.99999999999999999998", 1},
    {"1.100000000000000000000", "1.99999999999999999999", 1},
    {"0", "0", 0},
};

/* Versions in strictly ascending dpkg order, checked pairwise with dpkg. */
static const char *const ascending[] = {
    "0~",      "0",         "0.9",     "1.0~~", "1.0~~a",  "1.0~",        "1.0~a",
    "1.0~rc1", "1.0~rc1-1", "1.0~rc2", "1.0",   "1.0-1",   "1.0-1build1", "1.0-1ubuntu1",
    "1.0-1.1", "1.0A",      "1.0a",    "1.0b",  "1.0+",    "1.0+dfsg-1",  "1.0.0",
    "1.1",     "1.2~3",     "1.2",     "1.2.3", "1.9",     "1.9a",        "1.10",
    "2.0",     "10",        "1:0.9",   "1:1.0", "2:9.0.0",
};

static int sign(int v)
{
        return (v > 0) - (v < 0);
}

static const char *relation(int s)
{
        if (s < 0)
                return "<";
        if (s > 0)
                return ">";
        return "==";
}

/* Check every row and report all wrong rows at once, so one run shows the
 * whole pattern of a comparison bug. */
static void test_version_table(void **state)
{
        (void)state;
        int wrong = 0;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const struct version_case *c = &cases[i];
                int got = sign(dl_version_compare(c->a, c->b));
                if (got != c->expected) {
                        print_error("dl_version_compare(\"%s\", \"%s\"): got %s, dpkg says %s\n",
                                    c->a, c->b, relation(got), relation(c->expected));
                        wrong++;
                }
        }
        assert_int_equal(wrong, 0);
}

static void test_version_antisymmetric(void **state)
{
        (void)state;
        int wrong = 0;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const struct version_case *c = &cases[i];
                int got = sign(dl_version_compare(c->b, c->a));
                if (got != -c->expected) {
                        print_error("dl_version_compare(\"%s\", \"%s\"): got %s, dpkg says %s\n",
                                    c->b, c->a, relation(got), relation(-c->expected));
                        wrong++;
                }
        }
        assert_int_equal(wrong, 0);
}

static void test_version_reflexive(void **state)
{
        (void)state;
        int wrong = 0;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const char *sides[2] = {cases[i].a, cases[i].b};
                for (int k = 0; k < 2; k++) {
                        int got = dl_version_compare(sides[k], sides[k]);
                        if (got != 0) {
                                print_error("dl_version_compare(\"%s\", itself) = %d\n", sides[k],
                                            got);
                                wrong++;
                        }
                }
        }
        assert_int_equal(wrong, 0);
}

/* Every pair of the ascending list, so that the order is also transitive. */
static void test_version_total_order(void **state)
{
        (void)state;
        size_t n = sizeof ascending / sizeof ascending[0];
        int wrong = 0;
        for (size_t i = 0; i < n; i++) {
                for (size_t j = i + 1; j < n; j++) {
                        int got = sign(dl_version_compare(ascending[i], ascending[j]));
                        if (got != -1) {
                                print_error("dl_version_compare(\"%s\", \"%s\"): got %s, "
                                            "dpkg says <\n",
                                            ascending[i], ascending[j], relation(got));
                                wrong++;
                        }
                }
        }
        assert_int_equal(wrong, 0);
}

/* The pairs the resolver depends on most, one assertion each. */
static void test_version_named_pairs(void **state)
{
        (void)state;
        assert_true(dl_version_compare("2:9.0.0", "8.3.2") > 0);
        assert_true(dl_version_compare("1:5.0.20-1+bionic", "3.0.31") > 0);
        assert_true(dl_version_compare("1.0~rc1", "1.0") < 0);
        assert_true(dl_version_compare("1.0~rc1", "1.0~rc2") < 0);
        assert_true(dl_version_compare("1.2~3", "1.2") < 0);
        assert_true(dl_version_compare("1.2~3", "1.2.3") != 0);
        assert_true(dl_version_compare("2.2.14-15~bpo60+1", "2.2.14-15") < 0);
        assert_true(dl_version_compare("2.2.14-15", "2.2.14-15+deb1") < 0);
        assert_int_equal(dl_version_compare("1.0", "0:1.0"), 0);
        assert_true(dl_version_compare("1.0-1", "1.0-1.1") < 0);
        assert_true(dl_version_compare("1.0a", "1.0") > 0);
        assert_true(dl_version_compare("1.0", "1.0+") < 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_version_named_pairs),   cmocka_unit_test(test_version_table),
            cmocka_unit_test(test_version_antisymmetric), cmocka_unit_test(test_version_reflexive),
            cmocka_unit_test(test_version_total_order),
        };
        return cmocka_run_group_tests_name("version", tests, NULL, NULL);
}
