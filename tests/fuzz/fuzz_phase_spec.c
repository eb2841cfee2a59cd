/*
 * Fuzz harness for the phase-spec parser, which reads text straight from
 * users' command lines (srun --genie-phases, genie-launch --phases,
 * genie._C.parse_phases).  Each input is NUL-terminated in a buffer of exactly
 * its size, so ASan catches any read past the NUL, and is parsed with no
 * limits and with a list of allowed names plus a cap on the total.  An
 * accepted spec must satisfy every invariant of genie/phase_spec.h (1..16
 * entries, slices 1..4096 with spares 0..slices-1 among them, total = sum of
 * slices, valid distinct names, limits kept) and survive format + re-parse
 * unchanged, spares included, with the canonical text a fixed point; a refusal must return a negative
 * status, a one-line "genie: " message equal to genie_last_error(), and leave
 * the output alone.  A tiny error buffer must be cut, never overrun.
 * Anything else aborts, which is what a fuzzer reports.
 *
 * Two ways to run it:
 *   - libFuzzer: build with -DGENIE_LIBFUZZER -fsanitize=fuzzer,address,undefined;
 *   - CTest (label fuzz): main() runs a bounded, deterministic mutation loop
 *     (seeded xorshift) from a few seeds for 200,000 iterations or 20 seconds,
 *     whichever comes first, and exits 0 when nothing broke.  Optional
 *     arguments: fuzz_phase_spec [iterations] [seconds] [seed].
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "genie/phase_spec.h"

static uint64_t n_accepted, n_refused;

static void die(const char *what, const char *input)
{
    fprintf(stderr, "fuzz_phase_spec: %s (input '%s', last error: '%s')\n", what, input,
            genie_last_error());
    abort();
}

static int name_ok(const char *name)
{
    size_t n = strnlen(name, GENIE_PHASE_NAME_MAX + 1);

    if (n == 0 || n > GENIE_PHASE_NAME_MAX || name[0] < 'a' || name[0] > 'z') {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return 0;
        }
    }
    return 1;
}

static void check_spec(const genie_phase_spec_t *s, const genie_phase_limits_t *lim,
                       const char *input)
{
    genie_phase_spec_t again;
    char text[1024], text2[1024];
    uint32_t sum = 0;

    if (s->n < 1 || s->n > GENIE_PHASE_SPEC_MAX_ENTRIES) {
        die("entry count out of range", input);
    }
    for (uint32_t i = 0; i < s->n; i++) {
        if (!name_ok(s->entry[i].name)) {
            die("invalid name accepted", input);
        }
        if (s->entry[i].slices < 1 || s->entry[i].slices > GENIE_PHASE_MAX_SLICES) {
            die("slice count out of range", input);
        }
        if (s->entry[i].spares >= s->entry[i].slices) {
            die("spares leave no active slice", input);
        }
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(s->entry[i].name, s->entry[j].name) == 0) {
                die("duplicate name accepted", input);
            }
        }
        if (lim != NULL && lim->allowed != NULL) {
            int known = 0;
            for (size_t k = 0; lim->allowed[k] != NULL; k++) {
                known |= strcmp(lim->allowed[k], s->entry[i].name) == 0;
            }
            if (!known) {
                die("name outside the allowed list accepted", input);
            }
        }
        sum += s->entry[i].slices;
    }
    if (sum != s->total_slices) {
        die("total is not the sum", input);
    }
    if (lim != NULL && lim->max_slices > 0 && sum > lim->max_slices) {
        die("total above max_slices accepted", input);
    }
    if (genie_phase_spec_format(s, text, sizeof(text)) != GENIE_OK) {
        die("format of an accepted spec failed", input);
    }
    memset(&again, 0x5A, sizeof(again));
    if (genie_phase_spec_parse(text, lim, &again, NULL, 0) != GENIE_OK) {
        die("canonical text does not parse", input);
    }
    if (again.n != s->n || again.total_slices != s->total_slices) {
        die("round trip changed the spec", input);
    }
    for (uint32_t i = 0; i < s->n; i++) {
        if (strcmp(again.entry[i].name, s->entry[i].name) != 0 ||
            again.entry[i].slices != s->entry[i].slices ||
            again.entry[i].spares != s->entry[i].spares) {
            die("round trip changed an entry", input);
        }
    }
    /* "+0" and leading zeros are gone from the canonical text: formatting
     * it again gives the same bytes, and "+" appears only with spares. */
    if (genie_phase_spec_format(&again, text2, sizeof(text2)) != GENIE_OK ||
        strcmp(text, text2) != 0) {
        die("canonical text is not a fixed point", input);
    }
    {
        uint32_t with_spares = 0, plus = 0;

        for (uint32_t i = 0; i < s->n; i++) {
            with_spares += s->entry[i].spares > 0;
        }
        for (const char *c = text; *c != '\0'; c++) {
            plus += *c == '+';
        }
        if (plus != with_spares || strstr(text, "+0") != NULL) {
            die("canonical text has a '+' without spares", input);
        }
    }
}

static void parse_one(const char *input, const genie_phase_limits_t *lim)
{
    genie_phase_spec_t s, fill;
    char err[300], tiny[12];
    genie_status_t st;

    memset(&s, 0xA5, sizeof(s));
    memset(&fill, 0xA5, sizeof(fill));
    memset(err, 'Z', sizeof(err));
    genie_clear_error();
    st = genie_phase_spec_parse(input, lim, &s, err, sizeof(err));
    if (st == GENIE_OK) {
        n_accepted++;
        check_spec(&s, lim, input);
        return;
    }
    n_refused++;
    if (st > 0) {
        die("positive status", input);
    }
    if (memcmp(&s, &fill, sizeof(s)) != 0) {
        die("output written on failure", input);
    }
    if (memchr(err, '\0', sizeof(err)) == NULL || strncmp(err, "genie: ", 7) != 0 ||
        strchr(err, '\n') != NULL || strchr(err, '\r') != NULL) {
        die("message is not one 'genie: ' line", input);
    }
    if (strncmp(err, genie_last_error(), sizeof(err) - 1) != 0) {
        die("message differs from genie_last_error()", input);
    }
    memset(tiny, 'Z', sizeof(tiny));
    if (genie_phase_spec_parse(input, lim, &s, tiny, 8) >= 0 || strcmp(tiny, "genie: ") != 0) {
        die("tiny error buffer not cut to 'genie: '", input);
    }
    for (size_t i = 8; i < sizeof(tiny); i++) {
        if (tiny[i] != 'Z') {
            die("tiny error buffer overrun", input);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const allowed[] = { "prefill", "decode", "vision", "a", NULL };
    static const genie_phase_limits_t lim = { allowed, 9 };
    char *input = malloc(size + 1);   /* exactly size + 1: ASan sees reads past the NUL */

    if (input == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(input, data, size);
    }
    input[size] = '\0';
    parse_one(input, NULL);
    parse_one(input, &lim);
    free(input);
    return 0;
}

#ifndef GENIE_LIBFUZZER

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t below(uint64_t n)
{
    return n ? next() % n : 0;
}

/* Bytes that matter to the grammar, and some that must be refused. */
static const char interesting[] = ":,:,:,0123456789azpd_-+ \t\nPZ.x\x7f\x80\xff";

static const char *const pieces[] = {
    "prefill", "decode", "vision", ":", ",", "0", "1", "4096", "4097", "99999999999",
    "4294967297", "18446744073709551617", ",a:1", "abcdefghijklmnopqrstuvwxyz012345",
    "+", "+0", "+1", "+4095", "+4096", "+99999999999", ":2+1", "decode:1+",
};

/* Insert src[0..k) at pos; nothing happens when it would not fit. */
static void insert_bytes(uint8_t *buf, size_t *len, size_t cap, size_t pos,
                         const uint8_t *src, size_t k)
{
    size_t n = *len;

    if (pos > n || n > cap || k > cap - n) {
        return;
    }
    memmove(buf + pos + k, buf + pos, n - pos);
    memcpy(buf + pos, src, k);
    *len = n + k;
}

static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
    size_t n = *len, pos, k;

    switch (below(7)) {
    case 0:   /* flip a bit */
        if (n > 0) {
            buf[below(n)] ^= (uint8_t)(1u << below(8));
        }
        break;
    case 1:   /* truncate */
        *len = (size_t)below(n + 1);
        break;
    case 2:   /* overwrite a byte with one the grammar cares about */
        if (n > 0) {
            buf[below(n)] = (uint8_t)interesting[below(sizeof(interesting) - 1)];
        }
        break;
    case 3:   /* insert a grammar byte or a piece */
        pos = (size_t)below(n + 1);
        if (below(2)) {
            const char *p = pieces[below(sizeof(pieces) / sizeof(pieces[0]))];
            insert_bytes(buf, len, cap, pos, (const uint8_t *)p, strlen(p));
        } else {
            uint8_t c = (uint8_t)interesting[below(sizeof(interesting) - 1)];
            insert_bytes(buf, len, cap, pos, &c, 1);
        }
        break;
    case 4:   /* delete 1..8 bytes */
        if (n > 0) {
            pos = (size_t)below(n);
            k = 1 + (size_t)below(8);
            if (k > n - pos) {
                k = n - pos;
            }
            memmove(buf + pos, buf + pos + k, n - pos - k);
            *len = n - k;
        }
        break;
    case 5:   /* duplicate a chunk (more entries, duplicate names) */
        if (n > 0) {
            size_t from = (size_t)below(n);
            k = 1 + (size_t)below(16);
            if (k > n - from) {
                k = n - from;
            }
            uint8_t chunk[16];
            memcpy(chunk, buf + from, k);
            insert_bytes(buf, len, cap, (size_t)below(n + 1), chunk, k);
        }
        break;
    default:  /* a random byte anywhere, NUL included */
        if (n > 0) {
            buf[below(n)] = (uint8_t)next();
        }
        break;
    }
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    static const char *const seeds[] = {
        "prefill:8,decode:1",
        "vision:3,prefill:2,decode:1",
        "llm_prefill:4096",
        "a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1,j:1,k:1,l:1,m:1,n:1,o:1,p:1",
        "abcdefghijklmnopqrstuvwxyz01234:1",
        "prefill:99999999999",
        "prefill:1,decode:2+1",
        "a:4095+1,b:1+0,c:02+003",
        "",
    };
    enum { N_SEEDS = sizeof(seeds) / sizeof(seeds[0]), CAP = 256 };
    uint64_t iterations = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    double   seconds = argc > 2 ? strtod(argv[2], NULL) : 20.0;
    uint8_t  buf[CAP];
    size_t   len;
    double   t0 = now_s();
    uint64_t it;

    if (argc > 3) {
        rng = strtoull(argv[3], NULL, 10) | 1u;
    }
    for (size_t s = 0; s < N_SEEDS; s++) {
        LLVMFuzzerTestOneInput((const uint8_t *)seeds[s], strlen(seeds[s]));
    }
    if (n_accepted < 7) {
        die("the valid seeds were not all accepted", "(seeds)");
    }
    for (it = 0; it < iterations; it++) {
        const char *seed = seeds[below(N_SEEDS)];
        int rounds = 1 + (int)below(4);

        len = strlen(seed);
        memcpy(buf, seed, len);
        for (int r = 0; r < rounds; r++) {
            mutate(buf, &len, CAP);
        }
        LLVMFuzzerTestOneInput(buf, len);
        if ((it & 1023) == 0 && now_s() - t0 > seconds) {
            break;
        }
    }
    printf("fuzz_phase_spec: %llu iterations in %.1f s, %llu accepted, %llu refused\n",
           (unsigned long long)it, now_s() - t0, (unsigned long long)n_accepted,
           (unsigned long long)n_refused);
    return 0;
}

#endif /* GENIE_LIBFUZZER */
