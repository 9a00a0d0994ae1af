/*
 * test_hostconf.c - the host configuration read once and asked per host
 * (src/ferry/hostconf.c): Host blocks with globs and negation, the first
 * value met winning, lines before the first Host, paths with ~, groups
 * (membership and members over several lines), the answers unchanged once
 * the file is gone (nothing is read again), hostconf_load the same as
 * read-then-ask, and a bad line refused whatever block it is in.  The
 * command-line side (ferry config, messages) is test_hostconf.py's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fix_tmp.h"
#include "hostconf.h"

static const char CONF[] =
    "# before any Host: every host\n"
    "KeyName everyone\n"
    "Host web* !web-test\n"
    "    Port 7272\n"
    "    KeyFile ~/keys/web.key\n"
    "Host web1\n"
    "    Address 10.0.0.5\n"
    "    Port 9999\n"              /* web* came first: 7272 wins */
    "Host WEB-TEST\n"
    "    Address=10.0.0.9\n"
    "    Plaintext \"yes\"\n"
    "Host *\n"
    "    ConnectTimeout 3\n"
    "    KeyName late\n"          /* KeyName everyone came first */
    "Group web web1 web2\n"
    "Group all web1 db1\n"
    "Group web web[3-4]\n";

struct ctx {
    char dir[256], path[300], home[300];
};

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    size_t len = strlen(text);
    int ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;

    if (fd >= 0)
        close(fd);
    return ok && chmod(path, mode) == 0 ? 0 : -1;
}

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);

    if (!c || fix_tmpdir_make(c->dir, sizeof c->dir, "test_hostconf") < 0)
        return -1;
    snprintf(c->path, sizeof c->path, "%s/config", c->dir);
    snprintf(c->home, sizeof c->home, "%s/home", c->dir);
    setenv("HOME", c->home, 1);
    *state = c;
    return write_file(c->path, CONF, 0600);
}

static int teardown(void **state)
{
    struct ctx *c = *state;

    fix_tmpdir_remove(c->dir);
    free(c);
    return 0;
}

/* a and b hold the same settings and groups. */
static void assert_same(const struct hostconf *a, const struct hostconf *b)
{
    for (int k = 0; k < HC_NKEYS; k++) {
        if (a->values[k])
            assert_string_equal(b->values[k], a->values[k]);
        else
            assert_null(b->values[k]);
    }
    assert_string_equal(b->groups, a->groups);
}

static void test_blocks_and_first_value(void **state)
{
    struct ctx *c = *state;
    struct hostconf_db *db = NULL;
    struct hostconf hc;
    char want[400];

    assert_int_equal(hostconf_db_read(c->path, &db), 0);
    assert_non_null(db);

    assert_int_equal(hostconf_db_host(db, "web1", &hc), 0);
    assert_string_equal(hc.values[HC_ADDRESS], "10.0.0.5");
    assert_string_equal(hc.values[HC_PORT], "7272");
    snprintf(want, sizeof want, "%s/keys/web.key", c->home);
    assert_string_equal(hc.values[HC_KEYFILE], want);
    assert_string_equal(hc.values[HC_KEYNAME], "everyone");
    assert_string_equal(hc.values[HC_CONNECTTIMEOUT], "3");
    assert_null(hc.values[HC_PLAINTEXT]);
    assert_string_equal(hc.groups, "web all");
    hostconf_free(&hc);

    /* Excluded from web* by !web-test; Host patterns ignore case. */
    assert_int_equal(hostconf_db_host(db, "web-test", &hc), 0);
    assert_null(hc.values[HC_PORT]);
    assert_null(hc.values[HC_KEYFILE]);
    assert_string_equal(hc.values[HC_ADDRESS], "10.0.0.9");
    assert_string_equal(hc.values[HC_PLAINTEXT], "yes");
    assert_string_equal(hc.groups, "");
    hostconf_free(&hc);

    /* A host no block names: only what applies to all. */
    assert_int_equal(hostconf_db_host(db, "db1", &hc), 0);
    assert_null(hc.values[HC_ADDRESS]);
    assert_null(hc.values[HC_PORT]);
    assert_string_equal(hc.values[HC_KEYNAME], "everyone");
    assert_string_equal(hc.groups, "all");
    hostconf_free(&hc);
    hostconf_db_free(db);
}

static void test_groups(void **state)
{
    struct ctx *c = *state;
    struct hostconf_db *db = NULL;
    char *members = NULL;

    assert_int_equal(hostconf_db_read(c->path, &db), 0);
    assert_int_equal(hostconf_db_group(db, "web", &members), 0);
    assert_string_equal(members, "web1,web2,web[3-4]");   /* both lines, in order */
    free(members);
    assert_int_equal(hostconf_db_group(db, "ALL", &members), 0);
    assert_string_equal(members, "web1,db1");
    free(members);
    assert_int_equal(hostconf_db_group(db, "nosuch", &members), 1);
    assert_null(members);
    hostconf_db_free(db);
}

/* Asked after the file is gone, the answers are the same: a fleet reads
 * the files once, not once per host. */
static void test_read_once(void **state)
{
    struct ctx *c = *state;
    struct hostconf_db *db = NULL;
    struct hostconf before, after;

    assert_int_equal(hostconf_db_read(c->path, &db), 0);
    assert_int_equal(hostconf_db_host(db, "web2", &before), 0);
    assert_int_equal(unlink(c->path), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hostconf_db_host(db, "web2", &after), 0);
        assert_same(&before, &after);
        hostconf_free(&after);
    }
    assert_string_equal(before.values[HC_PORT], "7272");
    hostconf_free(&before);
    hostconf_db_free(db);
    /* Without the file, -F's read fails; the single-host path says so too. */
    assert_int_equal(hostconf_db_read(c->path, &db), -1);
    assert_null(db);
    assert_int_equal(hostconf_load(c->path, "web2", &before), -1);
    assert_int_equal(write_file(c->path, CONF, 0600), 0);
}

/* hostconf_load (one host: read, then ask) gives what the db gives. */
static void test_load_same_as_db(void **state)
{
    struct ctx *c = *state;
    static const char *const hosts[] = { "web1", "web2", "web-test", "db1", "x" };
    struct hostconf_db *db = NULL;

    assert_int_equal(hostconf_db_read(c->path, &db), 0);
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        struct hostconf a, b;

        assert_int_equal(hostconf_load(c->path, hosts[i], &a), 0);
        assert_int_equal(hostconf_db_host(db, hosts[i], &b), 0);
        assert_same(&a, &b);
        hostconf_free(&a);
        hostconf_free(&b);
    }
    hostconf_db_free(db);
}

/* Every line is checked whether or not its block applies to anyone, and
 * a bad one fails the whole read. */
static void test_bad_lines(void **state)
{
    struct ctx *c = *state;
    static const char *const bad[] = {
        "Host nobody\n    Port 70000\n",
        "Host nobody\n    Colour blue\n",
        "Group\n",
        "Group web\n",
        "Group bad/name web1\n",
        "Host nobody\n    Keepalive -1\n",
        "Host nobody\n    Address two words\n",
        "Port\n",
    };
    struct hostconf_db *db;
    char path[320];

    snprintf(path, sizeof path, "%s/bad", c->dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(write_file(path, bad[i], 0600), 0);
        db = (struct hostconf_db *)1;
        assert_int_equal(hostconf_db_read(path, &db), -1);
        assert_null(db);
    }
    /* Others can write it: refused. */
    assert_int_equal(write_file(path, "Port 1\n", 0620), 0);
    assert_int_equal(hostconf_db_read(path, &db), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blocks_and_first_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_same_as_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
