/*
 * The phase-spec parser (see genie/phase_spec.h for the grammar).  Its input
 * comes straight from a user's command line, so it trusts nothing: it reads
 * the string one byte at a time and never past the NUL, parses counts without
 * ever overflowing (digits beyond the limit only mark the count as too large),
 * and quotes user text in messages only through quote(), which bounds it and
 * replaces control bytes so that every message stays on one line.  It builds
 * the result in a local copy and stores it to *spec_p only once every rule,
 * including the caller's limits, has passed.
 */
#include "genie/phase_spec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EXAMPLE  "e.g. prefill:8,decode:1"
#define QUOTE_MAX 40   /* bytes of user text quoted in a message */

/* Record a "genie: ..." message with genie_set_error and copy it into err. */
static genie_status_t fail(char *err, size_t errlen, genie_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static genie_status_t fail(char *err, size_t errlen, genie_status_t st, const char *fmt, ...)
{
    char    msg[512];
    va_list ap;

    memcpy(msg, "genie: ", 8);
    va_start(ap, fmt);
    vsnprintf(msg + 7, sizeof(msg) - 7, fmt, ap);
    va_end(ap);
    genie_set_error(st, "%s", msg);
    if (err != NULL && errlen > 0) {
        size_t n = strlen(msg);

        if (n > errlen - 1) {
            n = errlen - 1;
        }
        memcpy(err, msg, n);
        err[n] = '\0';
    }
    return st;
}

/* Printable, bounded copy of s[0..n) into out (size QUOTE_MAX + 4): bytes
 * outside 0x20..0x7e become '?', and "..." marks a cut. */
static const char *quote(const char *s, size_t n, char out[QUOTE_MAX + 4])
{
    size_t k = n < QUOTE_MAX ? n : QUOTE_MAX;

    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (k < n) {
        memcpy(out + k, "...", 4);
    } else {
        out[k] = '\0';
    }
    return out;
}

/* One byte for a message: 'x' for printable bytes, \xNN otherwise. */
static const char *show_char(unsigned char c, char out[8])
{
    if (c >= 0x20 && c < 0x7f && c != '\'') {
        snprintf(out, 8, "'%c'", (char)c);
    } else {
        snprintf(out, 8, "\\x%02x", (unsigned)c);
    }
    return out;
}

static int is_name_start(unsigned char c) { return c >= 'a' && c <= 'z'; }
static int is_name_char(unsigned char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '_';
}

/* The allowed names as "a, b, c" into out (size outlen), bounded. */
static const char *allowed_list(const char *const *allowed, char *out, size_t outlen)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; allowed[i] != NULL; i++) {
        char q[QUOTE_MAX + 4];
        int  w = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "",
                          quote(allowed[i], strlen(allowed[i]), q));
        if (w < 0 || (size_t)w >= outlen - used) {
            break;  /* snprintf has already cut and terminated it */
        }
        used += (size_t)w;
    }
    return out;
}

genie_status_t genie_phase_spec_parse(const char *spec, const genie_phase_limits_t *limits,
                                      genie_phase_spec_t *spec_p, char *err, size_t errlen)
{
    genie_phase_spec_t tmp;
    const char        *p = spec;
    char               q[QUOTE_MAX + 4], q2[QUOTE_MAX + 4], c8[8];

    if (spec_p == NULL) {
        return fail(err, errlen, GENIE_ERR_INVALID, "phase spec parser called without an output");
    }
    if (spec == NULL || spec[0] == '\0') {
        return fail(err, errlen, GENIE_ERR_INVALID,
                    "empty --genie-phases spec; expected NAME:N[,NAME:N...], " EXAMPLE);
    }
    memset(&tmp, 0, sizeof(tmp));

    for (;;) {
        const char *ent = p, *name = p, *colon, *end, *digits, *plus;
        size_t      name_len, ent_len;
        uint32_t    value = 0, spares = 0;
        int         too_large = 0;

        /* The entry runs to the next ',' or the NUL; nothing beyond is read. */
        end = ent;
        while (*end != '\0' && *end != ',') {
            end++;
        }
        ent_len = (size_t)(end - ent);
        if (ent_len == 0) {
            if (ent == spec) {
                return fail(err, errlen, GENIE_ERR_INVALID,
                            "phase spec '%s' starts with a comma; write NAME:N[,NAME:N...], " EXAMPLE,
                            quote(spec, strlen(spec), q));
            }
            if (*end == '\0') {
                return fail(err, errlen, GENIE_ERR_INVALID,
                            "phase spec '%s' ends with a comma; drop it, " EXAMPLE,
                            quote(spec, strlen(spec), q));
            }
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase spec '%s' has an empty entry (two commas in a row); " EXAMPLE,
                        quote(spec, strlen(spec), q));
        }
        if (tmp.n == GENIE_PHASE_SPEC_MAX_ENTRIES) {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase spec has more than %d entries (at '%s'); give each phase once, " EXAMPLE,
                        GENIE_PHASE_SPEC_MAX_ENTRIES, quote(ent, ent_len, q));
        }

        colon = ent;
        while (colon < end && *colon != ':') {
            colon++;
        }
        name_len = (size_t)(colon - name);

        /* Name. */
        if (name_len == 0) {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "entry '%s' has no phase name before ':'; write NAME:N, " EXAMPLE,
                        quote(ent, ent_len, q));
        }
        for (size_t i = 0; i < name_len; i++) {
            unsigned char c = (unsigned char)name[i];
            if (i == 0 ? !is_name_start(c) : !is_name_char(c)) {
                return fail(err, errlen, GENIE_ERR_INVALID,
                            "phase name '%s' has a bad character %s at position %zu; names are "
                            "lowercase letters, digits and '_', starting with a letter, " EXAMPLE,
                            quote(name, name_len, q), show_char(c, c8), i + 1);
            }
        }
        if (name_len > GENIE_PHASE_NAME_MAX) {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase name '%s' is %zu bytes long; at most %d are allowed",
                        quote(name, name_len, q), name_len, GENIE_PHASE_NAME_MAX);
        }
        quote(name, name_len, q);   /* q holds the (valid, short) name from here on */

        /* Count. */
        if (colon == end) {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase '%s' has no slice count; write %s:N", q, q);
        }
        digits = colon + 1;
        if (digits == end) {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase '%s' has nothing after ':'; write %s:N with N in 1..%d",
                        q, q, GENIE_PHASE_MAX_SLICES);
        }
        if (*digits == '-') {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase '%s' has a negative slice count '%s'; write %s:N with N in 1..%d",
                        q, quote(digits, (size_t)(end - digits), q2), q, GENIE_PHASE_MAX_SLICES);
        }
        /* "N" or "N+S": S spare slices after the N active ones. */
        plus = digits;
        while (plus < end && *plus != '+') {
            plus++;
        }
        if (plus == digits) {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase '%s' has no slice count before '+'; write %s:N+S, e.g. %s:2+1",
                        q, q, q);
        }
        if (plus < end && plus + 1 == end) {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase '%s' has nothing after '+'; write %s:N+S with S spare slices, "
                        "e.g. %s:2+1", q, q, q);
        }
        for (int part = 0; part < 2; part++) {
            const char *from = part == 0 ? digits : plus + 1, *to = part == 0 ? plus : end;
            uint32_t   *dst = part == 0 ? &value : &spares;

            if (part == 1 && plus == end) {
                break;
            }
            for (const char *d = from; d < to; d++) {
                unsigned char c = (unsigned char)*d;
                if (c < '0' || c > '9') {
                    return fail(err, errlen, GENIE_ERR_INVALID,
                                "phase '%s' has %s '%s', which is not a plain decimal number "
                                "(bad character %s); write %s:N or %s:N+S with N in 1..%d",
                                q, part == 0 ? "slice count" : "spare count",
                                quote(digits, (size_t)(end - digits), q2), show_char(c, c8), q, q,
                                GENIE_PHASE_MAX_SLICES);
                }
                /* Stop accumulating past the limit: the value can never wrap. */
                if (!too_large) {
                    *dst = *dst * 10u + (uint32_t)(c - '0');
                    if (*dst > GENIE_PHASE_MAX_SLICES) {
                        too_large = 1;
                    }
                }
            }
        }
        if (too_large || value + spares > GENIE_PHASE_MAX_SLICES) {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase '%s' asks for %s slices, which is too large; at most %d per phase "
                        "(spares included)",
                        q, quote(digits, (size_t)(end - digits), q2), GENIE_PHASE_MAX_SLICES);
        }
        if (value == 0) {
            return fail(err, errlen, GENIE_ERR_INVALID,
                        "phase '%s' has 0 slices; each phase needs at least 1, e.g. %s:1", q, q);
        }

        /* Duplicates and the caller's list of names. */
        for (uint32_t i = 0; i < tmp.n; i++) {
            if (strcmp(tmp.entry[i].name, q) == 0) {
                return fail(err, errlen, GENIE_ERR_INVALID,
                            "phase '%s' appears more than once; give each phase once with its "
                            "total, " EXAMPLE, q);
            }
        }
        if (limits != NULL && limits->allowed != NULL) {
            int known = 0;

            for (size_t i = 0; limits->allowed[i] != NULL; i++) {
                if (strcmp(limits->allowed[i], q) == 0) {
                    known = 1;
                    break;
                }
            }
            if (!known) {
                char list[256];
                return fail(err, errlen, GENIE_ERR_INVALID,
                            "unknown phase '%s'; allowed phases: %s", q,
                            allowed_list(limits->allowed, list, sizeof(list)));
            }
        }

        memcpy(tmp.entry[tmp.n].name, name, name_len);   /* rest is zero from memset */
        tmp.entry[tmp.n].slices = value + spares;     /* the total: tasks, ranks, GPUs */
        tmp.entry[tmp.n].spares = spares;
        tmp.total_slices += value + spares;   /* <= 16 * 4096: no overflow */
        tmp.n++;

        if (*end == '\0') {
            break;
        }
        p = end + 1;
    }

    if (limits != NULL && limits->max_slices > 0 && tmp.total_slices > limits->max_slices) {
        return fail(err, errlen, GENIE_ERR_INVALID,
                    "phase spec '%s' asks for %u slices in total, more than the %u available",
                    quote(spec, strlen(spec), q), tmp.total_slices, limits->max_slices);
    }
    *spec_p = tmp;
    return GENIE_OK;
}

genie_status_t genie_phase_spec_format(const genie_phase_spec_t *spec, char *buf, size_t len)
{
    /* Longest text: 16 entries of name(31) ':' count(4) '+' spares(4) ',', plus NUL. */
    char   out[GENIE_PHASE_SPEC_MAX_ENTRIES * (GENIE_PHASE_NAME_MAX + 11) + 1];
    size_t used = 0;

    if (spec == NULL || buf == NULL || spec->n == 0 || spec->n > GENIE_PHASE_SPEC_MAX_ENTRIES) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: phase spec to format is empty or malformed");
    }
    for (uint32_t i = 0; i < spec->n; i++) {
        const genie_phase_slices_t *e = &spec->entry[i];
        size_t nl = strnlen(e->name, sizeof(e->name));
        int    w;

        if (nl == 0 || nl > GENIE_PHASE_NAME_MAX || e->slices == 0 ||
            e->slices > GENIE_PHASE_MAX_SLICES || e->spares >= e->slices) {
            return genie_set_error(GENIE_ERR_INVALID, "genie: phase spec entry %u is malformed", i);
        }
        if (e->spares > 0) {
            w = snprintf(out + used, sizeof(out) - used, "%s%.*s:%u+%u", i ? "," : "", (int)nl,
                         e->name, e->slices - e->spares, e->spares);
        } else {
            w = snprintf(out + used, sizeof(out) - used, "%s%.*s:%u", i ? "," : "", (int)nl,
                         e->name, e->slices);
        }
        if (w < 0 || (size_t)w >= sizeof(out) - used) {
            return genie_set_error(GENIE_ERR_INVALID, "genie: phase spec does not fit its text form");
        }
        used += (size_t)w;
    }
    if (used + 1 > len) {
        return genie_set_error(GENIE_ERR_INVALID,
                               "genie: phase spec text needs %zu bytes, buffer has %zu", used + 1, len);
    }
    memcpy(buf, out, used + 1);
    return GENIE_OK;
}
