/*
 * test_tls_cert.c - certificates on the TLS transport: host names and
 * addresses, a client without a name or with only a key, client
 * certificates (and a rogue CA's), a server taking both keys and
 * certificates.  The PKI is made at start (fix_pki).
 */
#include "fix_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "fix_io.h"
#include "fix_pki.h"
#include "fix_tls.h"

/* ---- certificates ------------------------------------------------------------------------ */


/* A client of scfg verifying `name`: 0 on success, else the client's
 * code, with both errors in cerr/serr. */
static int cert_attempt(struct ferry_tls *ccfg, const char *name, struct ferry_tls *scfg,
                        int *rs_out, char *cerr, char *serr, size_t errlen,
                        struct ferry_tls_info *cinfo, struct ferry_tls_info *sinfo)
{
    struct fix_tpair p;
    int rc, rs;
    uint8_t b;

    fix_tpair_open(&p, ccfg, name, scfg, 1, 0);
    fix_hs_drive(p.c, p.s, &rc, &rs);
    /* TLS 1.3: a client finishes before the server has judged its
     * certificate; a refusal then arrives as an alert on its first read. */
    if (rc == 0 && rs < 0) {
        ssize_t n = fix_read_nb(p.c, &b, 1);
        rc = n < 0 ? (int)n : FERRY_EPROTO;
    }
    snprintf(cerr, errlen, "%s", ferry_transport_error(p.c));
    snprintf(serr, errlen, "%s", ferry_transport_error(p.s));
    print_message("%s: client %s '%s'; server %s '%s'\n", name ? name : "(no name)",
                  ferry_err_name(rc), cerr, ferry_err_name(rs), serr);
    if (rc == 0 && rs == 0) {
        struct ferry_tls_info i;
        assert_int_equal(ferry_transport_tls_info(p.c, &i), 0);
        *cinfo = i;
        assert_int_equal(ferry_transport_tls_info(p.s, &i), 0);
        *sinfo = i;
        /* The strings die with the transports. */
        cinfo->version = sinfo->version = "";
        cinfo->cipher = sinfo->cipher = cinfo->group = sinfo->group = "";
        cinfo->psk_identity = cinfo->psk_identity ? "set" : NULL;
        sinfo->psk_identity = sinfo->psk_identity ? "set" : NULL;
        /* and the data flows */
        fix_write_all_nb(p.c, "cert", 4);
        char buf[4];
        fix_read_exact_nb(p.s, buf, 4);
        assert_memory_equal(buf, "cert", 4);
    }
    *rs_out = rs;
    fix_tpair_close(&p);
    return rc;
}

static void test_cert_server_verified(void **state)
{
    struct ferry_tls *scfg = fix_cert_server(NULL, NULL, 0), *ccfg = fix_ca_client(NULL, NULL);
    struct ferry_tls_info ci, si;
    char cerr[256], serr[256];
    int rs;
    (void)state;

    assert_int_equal(cert_attempt(ccfg, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si), 0);
    assert_int_equal(rs, 0);
    assert_int_equal(ci.peer_verified, 1);
    assert_non_null(strstr(ci.peer_subject, "CN=localhost"));
    assert_null(ci.psk_identity);
    assert_int_equal(si.peer_verified, 0);   /* no client certificate */
    assert_string_equal(si.peer_subject, "");

    /* An address literal is checked against the IP SAN. */
    assert_int_equal(cert_attempt(ccfg, "127.0.0.1", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si), 0);
    assert_int_equal(ci.peer_verified, 1);

    assert_int_equal(cert_attempt(ccfg, "wrong.example", scfg, &rs, cerr, serr, sizeof cerr, &ci,
                                  &si), FERRY_ETLS);
    assert_non_null(strstr(cerr, "hostname mismatch"));
    assert_true(rs == FERRY_ETLS || rs == FERRY_EEOF);

    assert_int_equal(cert_attempt(ccfg, "127.0.0.2", scfg, &rs, cerr, serr, sizeof cerr, &ci,
                                  &si), FERRY_ETLS);
    assert_non_null(strstr(cerr, "IP address mismatch"));
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* transport.h: "server_name NULL: no certificate check is possible, so
 * only a PSK can succeed". */
static void test_cert_client_without_name_refused(void **state)
{
    /* Without a name a certificate proves only that the CA signed it, for
     * anyone: a certificate-checking client refuses to start. */
    struct ferry_tls *ccfg = fix_ca_client(NULL, NULL);
    struct ferry_transport *t = NULL;
    int sv[2];
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_tls(sv[0], ccfg, NULL, &t), -EINVAL);
    assert_null(t);
    close(sv[0]);   /* still the caller's after a failure */
    close(sv[1]);
    ferry_tls_free(ccfg);
}

static void test_cert_psk_only_client_refused(void **state)
{
    struct ferry_tls *scfg = fix_cert_server(NULL, NULL, 0);
    struct ferry_tls *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct ferry_tls_info ci, si;
    char cerr[256], serr[256];
    int rs;
    (void)state;

    /* The server cannot use the key and answers with a certificate the
     * client has no CA to check. */
    assert_int_equal(cert_attempt(ccfg, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci,
                                  &si), FERRY_ETLS);
    assert_non_null(strstr(cerr, "certificate verify failed"));
    assert_true(rs == FERRY_ETLS || rs == FERRY_EEOF);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_cert_client_certificates(void **state)
{
    struct ferry_tls *scfg = fix_cert_server(fix_pki.ca_pem, NULL, 0);
    struct ferry_tls *none = fix_ca_client(NULL, NULL);
    struct ferry_tls *good = fix_ca_client(fix_pki.client_pem, fix_pki.client_key);
    struct ferry_tls *rogue = fix_ca_client(fix_pki.rogue_client_pem, fix_pki.rogue_client_key);
    struct ferry_tls_info ci, si;
    char cerr[256], serr[256];
    int rc, rs;
    (void)state;

    rc = cert_attempt(none, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si);
    assert_int_equal(rs, FERRY_ETLS);
    assert_true(serr[0] != '\0');
    assert_true(rc == FERRY_ETLS || rc == FERRY_EEOF);

    rc = cert_attempt(good, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si);
    assert_int_equal(rc, 0);
    assert_int_equal(rs, 0);
    assert_int_equal(si.peer_verified, 1);
    assert_non_null(strstr(si.peer_subject, "CN=ferry-client"));
    assert_int_equal(ci.peer_verified, 1);
    assert_non_null(strstr(ci.peer_subject, "CN=localhost"));

    rc = cert_attempt(rogue, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si);
    assert_int_equal(rs, FERRY_ETLS);
    assert_non_null(strstr(serr, "certificate verify failed"));
    assert_true(rc == FERRY_ETLS || rc == FERRY_EEOF);
    ferry_tls_free(none);
    ferry_tls_free(good);
    ferry_tls_free(rogue);
    ferry_tls_free(scfg);
}

/* A server with both: a known key name gets the key, anyone else the
 * certificate. */
static void test_cert_and_psk_server(void **state)
{
    struct ferry_tls *scfg = fix_cert_server(NULL, NULL, 1);
    struct ferry_tls *pskc = fix_psk_client(fix_psk_key, "ferry");
    struct ferry_tls *cac = fix_ca_client(NULL, NULL);
    struct ferry_tls *stranger = fix_psk_client(fix_psk_key, "nobody");
    struct ferry_tls_info ci, si;
    char cerr[256], serr[256];
    int rs;
    (void)state;

    assert_int_equal(cert_attempt(pskc, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si), 0);
    assert_non_null(ci.psk_identity);
    assert_non_null(si.psk_identity);
    assert_int_equal(ci.peer_verified, 0);

    assert_int_equal(cert_attempt(cac, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si), 0);
    assert_null(ci.psk_identity);
    assert_null(si.psk_identity);
    assert_int_equal(ci.peer_verified, 1);

    /* An unknown name falls back to the certificate, which a PSK-only
     * client cannot check. */
    assert_int_equal(cert_attempt(stranger, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci,
                                  &si), FERRY_ETLS);
    assert_non_null(strstr(cerr, "certificate verify failed"));
    ferry_tls_free(pskc);
    ferry_tls_free(cac);
    ferry_tls_free(stranger);
    ferry_tls_free(scfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cert_server_verified, fix_sigpipe_default),
        cmocka_unit_test_setup(test_cert_client_without_name_refused, fix_sigpipe_default),
        cmocka_unit_test_setup(test_cert_psk_only_client_refused, fix_sigpipe_default),
        cmocka_unit_test_setup(test_cert_client_certificates, fix_sigpipe_default),
        cmocka_unit_test_setup(test_cert_and_psk_server, fix_sigpipe_default),
    };
    return cmocka_run_group_tests(tests, fix_pki_setup, fix_pki_teardown);
}
