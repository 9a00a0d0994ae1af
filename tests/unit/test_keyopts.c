/*
 * test_keyopts.c - the per-key restrictions of ferryd's keys file
 * (src/shared/keyopts.c): what parses into what, what is refused and why,
 * and which addresses from= lets in (IPv4, IPv6, IPv4-mapped, prefixes that
 * end inside a byte).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "keyopts.h"

static struct keyopts opts;   /* big (PATH_MAX): not on the stack */

static void parses(const char *text)
{
    char why[256] = "";
    int r = keyopts_parse(text, &opts, why, sizeof why);

    if (r != 0)
        print_message("'%s': %s\n", text, why);
    assert_int_equal(r, 0);
}

static void refused(const char *text, const char *reason)
{
    char why[256] = "";

    assert_int_equal(keyopts_parse(text, &opts, why, sizeof why), -EINVAL);
    if (!strstr(why, reason))
        print_message("'%s': '%s' lacks '%s'\n", text, why, reason);
    assert_non_null(strstr(why, reason));
}

static void test_parse_each_option(void **state)
{
    (void)state;
    parses("");
    assert_false(keyopts_any(&opts));
    parses("files-only");
    assert_int_equal(opts.flags, KEYOPT_FILES_ONLY);
    parses("read-only,files-only");
    assert_int_equal(opts.flags, KEYOPT_FILES_ONLY | KEYOPT_READ_ONLY);
    parses("command=\"make -C \\\"/srv/app\\\" deploy \\\\ x\",from=127.0.0.0/8");
    assert_string_equal(opts.command, "make -C \"/srv/app\" deploy \\ x");
    assert_int_equal(opts.nfrom, 1);
    assert_int_equal(opts.from[0].prefix, 8);
    parses("command=uptime");
    assert_string_equal(opts.command, "uptime");
    parses("root=/srv/backup");
    assert_string_equal(opts.root, "/srv/backup");
    parses("from=\"127.0.0.2/32,::1/128,10.1.0.0/16,fe80::/10,192.0.2.7\"");
    assert_int_equal(opts.nfrom, 5);
    assert_int_equal(opts.from[1].family, AF_INET6);
    assert_int_equal(opts.from[4].prefix, 32);
    assert_true(keyopts_any(&opts));
}

static void test_parse_refusals(void **state)
{
    (void)state;
    refused("no-pty", "unknown option 'no-pty'");
    refused("Files-only", "option name expected");
    refused("files-only,", "end of the line expected");
    refused(",files-only", "option name expected");
    refused("files-only,,read-only", "option name expected");
    refused("files-only files-only", "end of the line expected");
    refused("read-only,read-only", "given twice");
    refused("command=a,command=b", "given twice");
    refused("from=::1,from=::1", "given twice");
    refused("files-only=1", "takes no value");
    refused("root", "needs a value");
    refused("command=\"\"", "empty");
    refused("command=\"open", "not closed");
    refused("command=a b", "quote it");
    refused("command=\"a\tb\"", "control character");
    refused("root=relative/dir", "not an absolute path");
    refused("from=127.0.0.1/8", "'127.0.0.1/8'");
    refused("from=127.0.0.0/33", "'127.0.0.0/33'");
    refused("from=::/129", "'::/129'");
    refused("from=127.0.0.0/08", "'127.0.0.0/08'");
    refused("from=127.0.0.0/", "'127.0.0.0/'");
    refused("from=localhost", "'localhost'");
    refused("from=\"127.0.0.1,\"", "empty");
    refused("from=\"1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6,7.7.7.7,8.8.8.8,"
            "9.9.9.9,10.10.10.10,11.11.11.11,12.12.12.12,13.13.13.13,14.14.14.14,"
            "15.15.15.15,16.16.16.16,17.17.17.17\"", "more than 16");
}

static int from4(const char *addr)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };

    assert_int_equal(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
    return keyopts_from_ok(&opts, (struct sockaddr *)&sin);
}

static int from6(const char *addr)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

    assert_int_equal(inet_pton(AF_INET6, addr, &sin6.sin6_addr), 1);
    return keyopts_from_ok(&opts, (struct sockaddr *)&sin6);
}

static void test_from_matches(void **state)
{
    (void)state;
    parses("");
    assert_true(keyopts_from_ok(&opts, NULL));   /* no from=: from anywhere */
    parses("from=\"127.0.0.2,10.64.0.0/10,2001:db8::/33\"");
    assert_false(keyopts_from_ok(&opts, NULL));  /* unknown counts as elsewhere */
    assert_true(from4("127.0.0.2"));
    assert_false(from4("127.0.0.1"));
    assert_true(from4("10.64.0.1"));
    assert_true(from4("10.127.255.255"));
    assert_false(from4("10.128.0.0"));
    assert_false(from4("10.63.255.255"));
    assert_true(from6("::ffff:127.0.0.2"));      /* a v4 client on a dual-stack socket */
    assert_false(from6("::ffff:127.0.0.1"));
    assert_true(from6("2001:db8:7fff::1"));
    assert_false(from6("2001:db8:8000::1"));
    assert_false(from6("::1"));
    parses("from=0.0.0.0/0");
    assert_true(from4("203.0.113.9"));
    assert_false(from6("::1"));                  /* a v4 network holds no v6 address */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_each_option),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_from_matches),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
