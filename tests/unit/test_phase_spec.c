/*
 * Unit tests of the phase-spec parser (genie/phase_spec.h): good specs with
 * their entries, spare slices, totals and canonical text (spares counted in
 * the slices, "+S" written only when S > 0); every kind of bad spec from a
 * table, each of which must fail with a negative status and a one-line
 * "genie: " message naming what was wrong, recorded in genie_last_error()
 * too, and must leave the output untouched (it is filled with a sentinel
 * first); messages cut safely into tiny buffers; and the formatter's refusal
 * of buffers that are too small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "genie/phase_spec.h"

#define SENTINEL 0xA5

static const char *const llm_phases[] = { "prefill", "decode", NULL };
static const genie_phase_limits_t llm_limits = { llm_phases, 0 };
static const genie_phase_limits_t max9 = { NULL, 9 };
static const genie_phase_limits_t max2 = { NULL, 2 };

/* ---- good specs ------------------------------------------------------------ */

typedef struct good_case {
    const char *spec;
    uint32_t    n;
    const char *names[4];
    uint32_t    slices[4];   /* totals, spares included */
    uint32_t    spares[4];
    uint32_t    total;
    const char *canonical;
} good_case_t;

static const good_case_t good[] = {
    { "prefill:8,decode:1", 2, { "prefill", "decode" }, { 8, 1 }, { 0, 0 }, 9,
      "prefill:8,decode:1" },
    { "llm_prefill:4096", 1, { "llm_prefill" }, { 4096 }, { 0 }, 4096, "llm_prefill:4096" },
    { "vision:3,prefill:2,decode:1", 3, { "vision", "prefill", "decode" }, { 3, 2, 1 },
      { 0, 0, 0 }, 6, "vision:3,prefill:2,decode:1" },
    { "a:1", 1, { "a" }, { 1 }, { 0 }, 1, "a:1" },
    { "decode:2+1", 1, { "decode" }, { 3 }, { 1 }, 3, "decode:2+1" },
    { "prefill:1,decode:2+1", 2, { "prefill", "decode" }, { 1, 3 }, { 0, 1 }, 4,
      "prefill:1,decode:2+1" },
    { "prefill:4+4,decode:1+2", 2, { "prefill", "decode" }, { 8, 3 }, { 4, 2 }, 11,
      "prefill:4+4,decode:1+2" },
    { "decode:1+0", 1, { "decode" }, { 1 }, { 0 }, 1, "decode:1" },    /* +0 is no spare */
    { "decode:02+003", 1, { "decode" }, { 5 }, { 3 }, 5, "decode:2+3" },
    { "decode:4095+1", 1, { "decode" }, { 4096 }, { 1 }, 4096, "decode:4095+1" },
    { "decode:1+4095", 1, { "decode" }, { 4096 }, { 4095 }, 4096, "decode:1+4095" },
    { "p2_x:007", 1, { "p2_x" }, { 7 }, { 0 }, 7, "p2_x:7" },   /* leading zeros are decimal */
    { "abcdefghijklmnopqrstuvwxyz01234:1", 1, { "abcdefghijklmnopqrstuvwxyz01234" }, { 1 },
      { 0 }, 1, "abcdefghijklmnopqrstuvwxyz01234:1" },   /* 31 bytes: the longest name */
};

static void test_good_specs(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++) {
        genie_phase_spec_t s, s2;
        char err[128] = "untouched", text[256];

        assert_int_equal(genie_phase_spec_parse(good[k].spec, NULL, &s, err, sizeof(err)), GENIE_OK);
        assert_string_equal(err, "untouched");
        assert_int_equal(s.n, good[k].n);
        assert_int_equal(s.total_slices, good[k].total);
        for (uint32_t i = 0; i < s.n; i++) {
            assert_string_equal(s.entry[i].name, good[k].names[i]);
            assert_int_equal(s.entry[i].slices, good[k].slices[i]);
            assert_int_equal(s.entry[i].spares, good[k].spares[i]);
        }
        assert_int_equal(genie_phase_spec_format(&s, text, sizeof(text)), GENIE_OK);
        assert_string_equal(text, good[k].canonical);
        assert_int_equal(genie_phase_spec_parse(text, NULL, &s2, NULL, 0), GENIE_OK);
        assert_memory_equal(&s, &s2, sizeof(s));
    }
}

static void test_limits_accept(void **state)
{
    genie_phase_spec_t s;

    (void)state;
    assert_int_equal(genie_phase_spec_parse("decode:1,prefill:8", &llm_limits, &s, NULL, 0), GENIE_OK);
    assert_int_equal(s.total_slices, 9);
    assert_int_equal(genie_phase_spec_parse("prefill:8,decode:1", &max9, &s, NULL, 0), GENIE_OK);
}

static void test_sixteen_entries(void **state)
{
    char spec[256] = "", text[256];
    genie_phase_spec_t s;

    (void)state;
    for (int i = 0; i < 16; i++) {
        char e[16];
        snprintf(e, sizeof(e), "%sp%d:%d", i ? "," : "", i, 4096);
        strcat(spec, e);
    }
    assert_int_equal(genie_phase_spec_parse(spec, NULL, &s, NULL, 0), GENIE_OK);
    assert_int_equal(s.n, 16);
    assert_int_equal(s.total_slices, 16 * 4096);
    assert_int_equal(genie_phase_spec_format(&s, text, sizeof(text)), GENIE_OK);
    assert_string_equal(text, spec);
}

/* The longest canonical text: 16 entries of 31-byte names with 4-digit
 * counts and spares (the formatter's own buffer is sized for exactly this). */
static void test_longest_text(void **state)
{
    char spec[1024] = "", text[1024];
    genie_phase_spec_t s;

    (void)state;
    for (int i = 0; i < 16; i++) {
        char e[64];
        snprintf(e, sizeof(e), "%sphase_with_a_long_name_numbr_%c%c:1000+1000", i ? "," : "",
                 '0' + i / 10, '0' + i % 10);
        strcat(spec, e);
    }
    assert_int_equal(strlen(spec), 16 * (31 + 1 + 9 + 1) - 1);
    assert_int_equal(genie_phase_spec_parse(spec, NULL, &s, NULL, 0), GENIE_OK);
    assert_int_equal(s.total_slices, 16 * 2000);
    assert_int_equal(genie_phase_spec_format(&s, text, sizeof(text)), GENIE_OK);
    assert_string_equal(text, spec);
}

/* ---- bad specs --------------------------------------------------------------- */

typedef struct bad_case {
    const char                 *spec;
    const genie_phase_limits_t *limits;
    const char                 *needle;   /* must appear in the message */
} bad_case_t;

static const bad_case_t bad[] = {
    { "", NULL, "empty --genie-phases spec; expected NAME:N[,NAME:N...], e.g. prefill:8,decode:1" },
    { "prefill", NULL, "phase 'prefill' has no slice count; write prefill:N" },
    { "prefill:", NULL, "phase 'prefill' has nothing after ':'" },
    { "prefill:x", NULL, "slice count 'x', which is not a plain decimal number" },
    { "prefill:-1", NULL, "negative slice count '-1'" },
    { "prefill:+1", NULL, "phase 'prefill' has no slice count before '+'" },
    { "decode:+1", NULL, "phase 'decode' has no slice count before '+'" },
    { "decode:1+", NULL, "phase 'decode' has nothing after '+'" },
    { "decode:1+x", NULL, "spare count '1+x', which is not a plain decimal number" },
    { "decode:1+-1", NULL, "bad character '-'" },
    { "decode:1+ 1", NULL, "bad character ' '" },
    { "decode:4096+1", NULL, "which is too large; at most 4096 per phase (spares included)" },
    { "decode:2048+2049", NULL, "asks for 2048+2049 slices, which is too large" },
    { "decode:1+4097", NULL, "asks for 1+4097 slices, which is too large" },
    { "decode:1+99999999999", NULL, "too large" },
    { "decode:1+4294967297", NULL, "too large" },   /* 2^32 + 1 must not wrap to 1 */
    { "decode:99999999999+1", NULL, "too large" },
    { "decode:1+1+1", NULL, "bad character '+'" },
    { "decode:1++1", NULL, "bad character '+'" },
    { "vision:0+1", NULL, "phase 'vision' has 0 slices" },   /* spares do not replace count */
    { "decode:2+1", &max2, "asks for 3 slices in total, more than the 2 available" },
    { "prefill:0", NULL, "phase 'prefill' has 0 slices" },
    { "decode:00", NULL, "phase 'decode' has 0 slices" },
    { "prefill:4097", NULL, "asks for 4097 slices, which is too large" },
    { "prefill:99999999999", NULL, "asks for 99999999999 slices, which is too large" },
    { "prefill:4294967297", NULL, "too large" },   /* 2^32 + 1 must not wrap to 1 */
    { ":3", NULL, "entry ':3' has no phase name" },
    { "prefill:2,prefill:1", NULL, "phase 'prefill' appears more than once" },
    { "vision:1", &llm_limits, "unknown phase 'vision'; allowed phases: prefill, decode" },
    { "prefill:8,decode:2", &max9, "asks for 10 slices in total, more than the 9 available" },
    { "prefill:8,", NULL, "ends with a comma" },
    { "prefill:8,,decode:1", NULL, "empty entry (two commas in a row)" },
    { ",prefill:8", NULL, "starts with a comma" },
    { ",", NULL, "starts with a comma" },
    { "prefill: 8", NULL, "slice count ' 8'" },
    { " prefill:8", NULL, "bad character ' ' at position 1" },
    { "prefill:8 ", NULL, "slice count '8 '" },
    { "prefill :8", NULL, "bad character ' ' at position 8" },
    { "Prefill:8", NULL, "bad character 'P'" },
    { "preFill:8", NULL, "bad character 'F'" },
    { "9prefill:1", NULL, "bad character '9' at position 1" },
    { "_x:1", NULL, "bad character '_' at position 1" },
    { "pre-fill:1", NULL, "bad character '-'" },
    { "prefill:0x10", NULL, "bad character 'x'" },
    { "prefill:1.5", NULL, "bad character '.'" },
    { "prefill:2:3", NULL, "bad character ':'" },
    { "prefill:8\n", NULL, "bad character \\x0a" },
    { "prefill\t:8", NULL, "bad character \\x09" },
    { "prefill:8;decode:1", NULL, "bad character ';'" },
    { "abcdefghijklmnopqrstuvwxyz012345:1", NULL, "is 32 bytes long; at most 31" },
    { "a0:1,a1:1,a2:1,a3:1,a4:1,a5:1,a6:1,a7:1,a8:1,a9:1,b0:1,b1:1,b2:1,b3:1,b4:1,b5:1,b6:1",
      NULL, "more than 16 entries (at 'b6:1')" },
};

static void test_bad_specs(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        genie_phase_spec_t s, fill;
        char err[512];
        genie_status_t st;

        memset(&s, SENTINEL, sizeof(s));
        memset(&fill, SENTINEL, sizeof(fill));
        memset(err, 'Z', sizeof(err));
        genie_clear_error();
        st = genie_phase_spec_parse(bad[k].spec, bad[k].limits, &s, err, sizeof(err));
        if (st >= 0 || strncmp(err, "genie: ", 7) != 0 || strchr(err, '\n') != NULL ||
            strstr(err, bad[k].needle) == NULL || strcmp(err, genie_last_error()) != 0 ||
            memcmp(&s, &fill, sizeof(s)) != 0) {
            fail_msg("spec '%s': status %d, message '%s', wanted '%s'%s", bad[k].spec, st, err,
                     bad[k].needle, memcmp(&s, &fill, sizeof(s)) ? " (output written)" : "");
        }
    }
}

/* Every message is distinct: a user can tell what went wrong from it alone. */
static void test_bad_messages_distinct(void **state)
{
    static char msgs[sizeof(bad) / sizeof(bad[0])][512];
    genie_phase_spec_t s;

    (void)state;
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        assert_true(genie_phase_spec_parse(bad[k].spec, bad[k].limits, &s, msgs[k], 512) < 0);
        for (size_t j = 0; j < k; j++) {
            if (strcmp(msgs[j], msgs[k]) == 0) {
                fail_msg("'%s' and '%s' give the same message", bad[j].spec, bad[k].spec);
            }
        }
    }
}

static void test_null_arguments(void **state)
{
    genie_phase_spec_t s;
    char err[128];

    (void)state;
    assert_true(genie_phase_spec_parse(NULL, NULL, &s, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "empty"));
    assert_true(genie_phase_spec_parse("prefill:1", NULL, NULL, err, sizeof(err)) < 0);
    assert_true(genie_phase_spec_parse("prefill", NULL, &s, NULL, 0) < 0);   /* no err buffer */
    assert_non_null(strstr(genie_last_error(), "no slice count"));
}

static void test_tiny_errlen(void **state)
{
    genie_phase_spec_t s;
    char err[16];

    (void)state;
    memset(err, 'Z', sizeof(err));
    assert_true(genie_phase_spec_parse("prefill:99999999999", NULL, &s, err, 8) < 0);
    assert_string_equal(err, "genie: ");
    for (size_t i = 8; i < sizeof(err); i++) {
        assert_int_equal(err[i], 'Z');
    }
    memset(err, 'Z', sizeof(err));
    assert_true(genie_phase_spec_parse("", NULL, &s, err, 1) < 0);
    assert_int_equal(err[0], '\0');
    assert_int_equal(err[1], 'Z');
    assert_true(genie_phase_spec_parse("", NULL, &s, err + 2, 0) < 0);
    assert_int_equal(err[2], 'Z');
    /* The full message is still recorded. */
    assert_non_null(strstr(genie_last_error(), "empty --genie-phases spec"));
}

/* A long allowed list and a long offending text are cut, not overrun. */
static void test_long_texts_bounded(void **state)
{
    const char *many[40];
    char names[39][32], spec[2048], err[512];
    genie_phase_limits_t lim = { many, 0 };
    genie_phase_spec_t s;

    (void)state;
    for (int i = 0; i < 39; i++) {
        /* "phase_number_NN_with_long_name" (30 bytes): digits set by hand, since
         * snprintf's %02d makes GCC warn that an int may need 11 characters. */
        memcpy(names[i], "phase_number_00_with_long_name", 31);
        names[i][13] = (char)('0' + i / 10);
        names[i][14] = (char)('0' + i % 10);
        many[i] = names[i];
    }
    many[39] = NULL;
    assert_true(genie_phase_spec_parse("zzz:1", &lim, &s, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "unknown phase 'zzz'; allowed phases: phase_number_00"));
    memset(spec, 'a', sizeof(spec) - 1);
    spec[sizeof(spec) - 1] = '\0';
    assert_true(genie_phase_spec_parse(spec, NULL, &s, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "is 2047 bytes long"));
    assert_true(strlen(err) < 200);
}

static void test_format_limits(void **state)
{
    genie_phase_spec_t s;
    char buf[32];

    (void)state;
    assert_int_equal(genie_phase_spec_parse("prefill:8,decode:1", NULL, &s, NULL, 0), GENIE_OK);
    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(genie_phase_spec_format(&s, buf, 18), GENIE_ERR_INVALID);   /* needs 19 */
    assert_int_equal(buf[0], 'Z');
    assert_int_equal(genie_phase_spec_format(&s, buf, 19), GENIE_OK);
    assert_string_equal(buf, "prefill:8,decode:1");
    assert_int_equal(genie_phase_spec_format(&s, buf, 0), GENIE_ERR_INVALID);
    s.n = 0;
    assert_int_equal(genie_phase_spec_format(&s, buf, sizeof(buf)), GENIE_ERR_INVALID);
    s.n = 17;
    assert_int_equal(genie_phase_spec_format(&s, buf, sizeof(buf)), GENIE_ERR_INVALID);
    /* Spares must leave at least one active slice. */
    assert_int_equal(genie_phase_spec_parse("decode:2+1", NULL, &s, NULL, 0), GENIE_OK);
    s.entry[0].spares = 3;
    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(genie_phase_spec_format(&s, buf, sizeof(buf)), GENIE_ERR_INVALID);
    assert_int_equal(buf[0], 'Z');
    s.entry[0].spares = 2;
    assert_int_equal(genie_phase_spec_format(&s, buf, sizeof(buf)), GENIE_OK);
    assert_string_equal(buf, "decode:1+2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_specs),
        cmocka_unit_test(test_limits_accept),
        cmocka_unit_test(test_sixteen_entries),
        cmocka_unit_test(test_longest_text),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_bad_messages_distinct),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_tiny_errlen),
        cmocka_unit_test(test_long_texts_bounded),
        cmocka_unit_test(test_format_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
