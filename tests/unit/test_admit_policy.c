/*
 * test_admit_policy.c - the admission decision on counts and a random
 * number: penalties, per-source caps, random early drop, eviction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "admit_policy.h"

static const struct admit_limits lim = { .full = 10, .start = 5, .rate = 30, .per_source = 4 };

static enum admit_verdict decide(int unauth, int from, int biggest, int pen, uint32_t rnd)
{
    struct admit_counts c = { .unauth = unauth, .from_source = from, .biggest = biggest,
                              .penalized = pen };
    return admit_decide(&lim, &c, rnd);
}

static void test_free_slot_accepts(void **state)
{
    (void)state;
    assert_int_equal(decide(0, 0, 0, 0, 0), ADMIT_ACCEPT);
    assert_int_equal(decide(4, 3, 3, 0, 0), ADMIT_ACCEPT);   /* below start: never dropped */
}

static void test_penalty_first(void **state)
{
    (void)state;
    assert_int_equal(decide(0, 0, 0, 1, 99), ADMIT_DROP_PENALTY);
}

static void test_per_source_cap(void **state)
{
    (void)state;
    assert_int_equal(decide(4, 4, 4, 0, 99), ADMIT_DROP_SOURCE);
    struct admit_limits nocap = lim;
    nocap.per_source = 0;
    struct admit_counts c = { .unauth = 4, .from_source = 4, .biggest = 4 };
    assert_int_equal(admit_decide(&nocap, &c, 99), ADMIT_ACCEPT);
}

static void test_early_drop_spares_new_sources(void **state)
{
    (void)state;
    /* Nothing pending from this source: every rnd accepts. */
    for (uint32_t r = 0; r < 200; r++)
        assert_int_equal(decide(9, 0, 3, 0, r), ADMIT_ACCEPT);
}

static void test_early_drop_probability(void **state)
{
    (void)state;
    int dropped = 0;

    /* At start: rate (30%) of the 100 residues drop. */
    for (uint32_t r = 0; r < 100; r++)
        dropped += decide(5, 1, 3, 0, r) == ADMIT_DROP_EARLY;
    assert_int_equal(dropped, 30);
    /* Halfway to full (unauth 7.5 -> 7 of 5..10): 30 + 70*2/5 = 58%. */
    dropped = 0;
    for (uint32_t r = 0; r < 100; r++)
        dropped += decide(7, 1, 3, 0, r) == ADMIT_DROP_EARLY;
    assert_int_equal(dropped, 58);
}

static void test_full_evicts_from_bigger_source(void **state)
{
    (void)state;
    assert_int_equal(decide(10, 0, 3, 0, 0), ADMIT_EVICT);
    assert_int_equal(decide(10, 1, 3, 0, 0), ADMIT_EVICT);
    /* Would be level with the biggest: no churn between equals. */
    assert_int_equal(decide(10, 2, 3, 0, 0), ADMIT_DROP_FULL);
    assert_int_equal(decide(10, 1, 1, 0, 0), ADMIT_DROP_FULL);
    /* Every source holds one: a source with none waiting still gets in. */
    assert_int_equal(decide(10, 0, 1, 0, 0), ADMIT_EVICT);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(admit_verdict_name(ADMIT_EVICT), "evicted");
    assert_string_equal(admit_verdict_name(ADMIT_DROP_EARLY), "early-drop");
    assert_string_equal(admit_verdict_name(ADMIT_NVERDICTS), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_slot_accepts),
        cmocka_unit_test(test_penalty_first),
        cmocka_unit_test(test_per_source_cap),
        cmocka_unit_test(test_early_drop_spares_new_sources),
        cmocka_unit_test(test_early_drop_probability),
        cmocka_unit_test(test_full_evicts_from_bigger_source),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
