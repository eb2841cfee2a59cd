/*
 * The phase-spec parser: the one piece of C that reads "prefill:8,decode:1",
 * shared by the SPANK plugin (--genie-phases), genie-launch (--phases) and the
 * Python frontend (genie._C.parse_phases), so that all three accept and refuse
 * exactly the same specs with the same messages.
 *
 * Grammar:  spec  = entry *( "," entry )
 *           entry = name ":" count [ "+" spares ]
 *           name  = [a-z] *[a-z0-9_]      (1..GENIE_PHASE_NAME_MAX bytes)
 *           count = 1*DIGIT               (decimal, value 1..GENIE_PHASE_MAX_SLICES)
 *           spares = 1*DIGIT              (decimal, value 0..GENIE_PHASE_MAX_SLICES - 1;
 *                                          count + spares <= GENIE_PHASE_MAX_SLICES)
 * Spare slices ("decode:2+1": 3 decode slices, the last one a spare) are
 * started like the others but take no work until a slice of their phase is
 * lost (in-job recovery).  "+0" is accepted and means no spare.
 * No spaces, signs (the one '+' separates count and spares), empty entries
 * or trailing comma; each name at most once;
 * at most GENIE_PHASE_SPEC_MAX_ENTRIES entries.
 */
#ifndef GENIE_PHASE_SPEC_H
#define GENIE_PHASE_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "genie/status.h"

#define GENIE_PHASE_SPEC_MAX_ENTRIES 16
#define GENIE_PHASE_NAME_MAX         31     /* bytes, without the NUL */
#define GENIE_PHASE_MAX_SLICES       4096   /* per entry */

typedef struct genie_phase_slices {
    char     name[GENIE_PHASE_NAME_MAX + 1];  /* NUL-terminated, zero-padded */
    uint32_t slices;                          /* 1..GENIE_PHASE_MAX_SLICES, spares included */
    uint32_t spares;                          /* 0..slices-1: the last ones of the phase */
} genie_phase_slices_t;

typedef struct genie_phase_spec {
    uint32_t             n;                                   /* 1..MAX_ENTRIES */
    genie_phase_slices_t entry[GENIE_PHASE_SPEC_MAX_ENTRIES]; /* (n), in spec order */
    uint32_t             total_slices;                        /* sum of entry[].slices */
} genie_phase_spec_t;

typedef struct genie_phase_limits {
    const char *const *allowed;  /* NULL = any valid name; else NULL-terminated list */
    uint32_t           max_slices; /* 0 = no limit on the sum */
} genie_phase_limits_t;

/* Parse "NAME:N[+S][,NAME:N[+S]...]"; each entry's slices is N + S (what
 * tasks, ranks and GPUs are counted by) and its spares S ("+0" is no spare).
 * limits may be NULL; its max_slices limits the sum of those totals.  On error returns a negative
 * status and writes a one-line message starting "genie: " into err (size
 * errlen; err may be NULL or errlen 0, longer messages are truncated), also
 * recorded with genie_set_error; *spec_p is written only on success. */
genie_status_t genie_phase_spec_parse(const char *spec, const genie_phase_limits_t *limits,
                                      genie_phase_spec_t *spec_p, char *err, size_t errlen);

/* Canonical text form "prefill:8,decode:2+1" ("+S" only where S > 0) into buf (size len, NUL included);
 * GENIE_ERR_INVALID, buf untouched, if it does not fit or spec is malformed. */
genie_status_t genie_phase_spec_format(const genie_phase_spec_t *spec, char *buf, size_t len);

#endif
