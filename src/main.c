/* distill: build distroless OCI images from Debian packages. main only parses the
 * command line, runs a command and maps its error to the exit status. */
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "distill/build.h"
#include "distill/cleanup.h"
#include "distill/inspect.h"
#include "distill/log.h"

#define DISTILL_VERSION "0.1.0"

static const char usage_text[] =
    "usage: distill build SPEC [options]\n"
    "       distill lock SPEC [--check] [options]\n"
    "       distill why SPEC PACKAGE [options]\n"
    "       distill inspect IMAGE.tar [--sizes]\n"
    "       distill --help | --version\n"
    "\n"
    "build: build an OCI image tarball from the Debian packages a spec names.\n"
    "lock:  resolve every architecture and write SPEC.lock.json beside the spec;\n"
    "       --check compares the spec with the lock without the network.\n"
    "why:   print the dependency chain that pulled PACKAGE in, per architecture.\n"
    "inspect: print an image's platforms, config, layers and packages; --sizes adds\n"
    "       each package's installed bytes, largest first.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE     write the image to FILE (default: ./NAME.tar)\n"
    "  -t, --tag NAME:TAG    image reference in index.json and manifest.json\n"
    "                        (default: the spec's name and latest)\n"
    "      --cache DIR       content-addressed download cache\n"
    "                        (default: $XDG_CACHE_HOME/distill or ~/.cache/distill)\n"
    "      --mirror FROM=TO  fetch source URLs that start with FROM from TO instead;\n"
    "                        repeatable; DISTILL_MIRROR holds more pairs, space-separated\n"
    "      --rootfs DIR      keep the staging root file system in DIR (new or empty);\n"
    "                        with several architectures, in DIR/ARCH for each\n"
    "  -j, --jobs N          parallel downloads (default: 4)\n"
    "      --locked          fail unless SPEC.lock.json exists and matches the spec\n"
    "      --offline         build from the cache and the lock alone\n"
    "      --no-lock         resolve afresh even when SPEC.lock.json matches\n"
    "      --sbom FILE       also write a software bill of materials to FILE\n"
    "      --sbom-format F   spdx (SPDX 2.3 JSON, the default) or cyclonedx (1.5 JSON)\n"
    "      --platform ARCH   the architecture manifest.json lists (default: the first)\n"
    "      --json            print the result as JSON on stdout\n"
    "  -q, --quiet           print only warnings and errors\n"
    "  -v, --verbose         print debugging messages\n"
    "\n"
    "Environment: SOURCE_DATE_EPOCH (seconds) overrides the image time;\n"
    "DISTILL_HTTP_TIMEOUT (seconds) sets how long a stalled download waits.\n"
    "\n"
    "Exit status:\n"
    "  0 success            1 internal error       2 usage error\n"
    "  3 invalid spec       4 network error        5 verification failed\n"
    "  6 unsatisfiable      7 package rejected     8 local I/O error\n"
    "  9 lock file missing or stale\n";

static int usage_error(const char *fmt, const char *arg)
{
        fputs("distill: error: ", stderr);
        fprintf(stderr, fmt, arg);
        fputs("; see distill --help\n", stderr);
        return DL_EUSAGE;
}

static void print_json(const struct dl_build_result *r)
{
        /* Paths are printed with JSON escapes for quotes and backslashes. */
        printf("{\"digest\":\"sha256:%s\",\"size\":%llu,\"packages\":%zu,\"output\":\"",
               r->manifest_digest, (unsigned long long)r->size, r->n_packages);
        for (const char *p = r->output; *p; p++) {
                if (*p == '"' || *p == '\\')
                        putchar('\\');
                if ((unsigned char)*p < 0x20)
                        printf("\\u%04x", (unsigned char)*p);
                else
                        putchar(*p);
        }
        printf("\"}\n");
}

enum command { CMD_BUILD, CMD_LOCK, CMD_WHY };

static int run_command(enum command cmd, int argc, char **argv)
{
        static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                                 {"tag", required_argument, NULL, 't'},
                                                 {"cache", required_argument, NULL, 'C'},
                                                 {"mirror", required_argument, NULL, 'M'},
                                                 {"rootfs", required_argument, NULL, 'R'},
                                                 {"jobs", required_argument, NULL, 'j'},
                                                 {"json", no_argument, NULL, 'J'},
                                                 {"quiet", no_argument, NULL, 'q'},
                                                 {"verbose", no_argument, NULL, 'v'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {"locked", no_argument, NULL, 'L'},
                                                 {"offline", no_argument, NULL, 'O'},
                                                 {"platform", required_argument, NULL, 'P'},
                                                 {"check", no_argument, NULL, 'K'},
                                                 {"no-lock", no_argument, NULL, 'N'},
                                                 {"sbom", required_argument, NULL, 'S'},
                                                 {"sbom-format", required_argument, NULL, 'F'},
                                                 {NULL, 0, NULL, 0}};
        bool check = false, sbom_format_set = false;
        struct dl_build_options o = {0};
        struct dl_error err = {0};
        bool json = false;
        int c, rc;

        while ((c = getopt_long(argc, argv, "o:t:j:qvh", longopts, NULL)) != -1) {
                switch (c) {
                case 'o':
                        o.output = optarg;
                        break;
                case 't':
                        o.tag = optarg;
                        break;
                case 'C':
                        o.cache_dir = optarg;
                        break;
                case 'M':
                        if (dl_mirrors_add(&o.mirrors, optarg, &err)) {
                                dl_log(DL_LOG_ERROR, "%s", err.msg);
                                dl_mirrors_free(&o.mirrors);
                                return DL_EUSAGE;
                        }
                        break;
                case 'R':
                        o.rootfs = optarg;
                        break;
                case 'j': {
                        char *end;
                        long n = strtol(optarg, &end, 10);
                        if (*end || n < 1 || n > 64) {
                                dl_mirrors_free(&o.mirrors);
                                return usage_error("-j %s: expected a number from 1 to 64", optarg);
                        }
                        o.jobs = (int)n;
                        break;
                }
                case 'J':
                        json = true;
                        break;
                case 'L':
                        o.locked = true;
                        break;
                case 'O':
                        o.offline = true;
                        break;
                case 'P':
                        o.platform = optarg;
                        break;
                case 'K':
                        check = true;
                        break;
                case 'N':
                        o.no_lock = true;
                        break;
                case 'S':
                        o.sbom = optarg;
                        break;
                case 'F':
                        if (dl_sbom_parse_format(optarg, &o.sbom_format, &err)) {
                                dl_log(DL_LOG_ERROR, "%s", err.msg);
                                dl_mirrors_free(&o.mirrors);
                                return DL_EUSAGE;
                        }
                        sbom_format_set = true;
                        break;
                case 'q':
                        dl_log_set_level(DL_LOG_WARN);
                        break;
                case 'v':
                        dl_log_set_level(DL_LOG_DEBUG);
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        dl_mirrors_free(&o.mirrors);
                        return 0;
                default:
                        dl_mirrors_free(&o.mirrors);
                        fputs("distill: error: invalid option; see distill --help\n", stderr);
                        return DL_EUSAGE;
                }
        }
        int want = cmd == CMD_WHY ? 2 : 1;
        if (argc - optind != want) {
                dl_mirrors_free(&o.mirrors);
                return usage_error("%s", cmd == CMD_WHY ? "why takes a spec file and a package name"
                                                        : "expected one spec file");
        }
        if (sbom_format_set && !o.sbom) {
                dl_mirrors_free(&o.mirrors);
                return usage_error("%s", "--sbom-format goes with --sbom FILE");
        }
        if (check && cmd != CMD_LOCK) {
                dl_mirrors_free(&o.mirrors);
                return usage_error("%s", "--check goes with distill lock");
        }
        o.spec_path = argv[optind];
        if (o.tag && (!*o.tag || o.tag[0] == ':' || strchr(o.tag, ' '))) {
                dl_mirrors_free(&o.mirrors);
                return usage_error("--tag %s: expected NAME:TAG, such as passbolt-fpm:1.0", o.tag);
        }
        const char *timeout = getenv("DISTILL_HTTP_TIMEOUT");
        if (timeout && (strspn(timeout, "0123456789") != strlen(timeout) || atol(timeout) < 1)) {
                dl_mirrors_free(&o.mirrors);
                return usage_error("DISTILL_HTTP_TIMEOUT=%s: expected a positive number of seconds",
                                   timeout);
        }
        if ((rc = dl_mirrors_add_env(&o.mirrors, getenv("DISTILL_MIRROR"), &err))) {
                dl_log(DL_LOG_ERROR, "%s", err.msg);
                dl_mirrors_free(&o.mirrors);
                return rc;
        }
        if (cmd != CMD_BUILD) {
                if (cmd == CMD_WHY)
                        rc = dl_why_command(&o, argv[optind + 1], &err);
                else
                        rc = check ? dl_lock_check_command(&o, &err) : dl_lock_command(&o, &err);
                dl_mirrors_free(&o.mirrors);
                if (rc)
                        dl_log(DL_LOG_ERROR, "%s", err.msg);
                return rc;
        }
        struct dl_build_result res;
        rc = dl_build(&o, &res, &err);
        dl_mirrors_free(&o.mirrors);
        if (rc) {
                dl_log(DL_LOG_ERROR, "%s", err.msg);
                return rc;
        }
        if (json)
                print_json(&res);
        dl_build_result_free(&res);
        return 0;
}

static int cmd_inspect(int argc, char **argv)
{
        const char *path = NULL;
        bool sizes = false;
        struct dl_error err = {0};
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--sizes"))
                        sizes = true;
                else if (argv[i][0] == '-' || path)
                        return usage_error("inspect takes one image file and --sizes, not %s",
                                           argv[i]);
                else
                        path = argv[i];
        }
        if (!path)
                return usage_error("%s", "inspect needs an image file");
        int rc = dl_inspect(path, sizes, stdout, &err);
        if (rc)
                dl_log(DL_LOG_ERROR, "%s", err.msg);
        return rc;
}

int main(int argc, char **argv)
{
        /* Package member names are UTF-8 bytes; libarchive converts names through the
         * locale's charset. A fixed UTF-8 locale keeps that conversion exact and the
         * output independent of the caller's LANG and LC_ALL. */
        if (!setlocale(LC_ALL, "C.UTF-8"))
                setlocale(LC_ALL, "C");
        if (dl_cleanup_init() != 0) {
                fputs("distill: error: cannot set up signal handling\n", stderr);
                return DL_EINTERNAL;
        }
        /* A build keeps each package's unpacked record open, twice with two
         * platforms. A large package set outgrows the usual soft limit of 1024
         * descriptors, so the limit is raised to the hard one. */
        struct rlimit files;
        if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
                files.rlim_cur = files.rlim_max;
                setrlimit(RLIMIT_NOFILE, &files);
        }
        if (argc < 2)
                return usage_error("missing command%s", "");
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
                fputs(usage_text, stdout);
                return 0;
        }
        if (!strcmp(argv[1], "--version")) {
                printf("distill %s\n", DISTILL_VERSION);
                return 0;
        }
        if (!strcmp(argv[1], "build"))
                return run_command(CMD_BUILD, argc - 1, argv + 1);
        if (!strcmp(argv[1], "lock"))
                return run_command(CMD_LOCK, argc - 1, argv + 1);
        if (!strcmp(argv[1], "inspect"))
                return cmd_inspect(argc - 1, argv + 1);
        if (!strcmp(argv[1], "why"))
                return run_command(CMD_WHY, argc - 1, argv + 1);
        return usage_error("unknown command %s", argv[1]);
}
