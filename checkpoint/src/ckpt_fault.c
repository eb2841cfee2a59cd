/*
 * Fault injection for the commit protocol's tests: the writers call
 * genie_ckpt_fault_point() between every two steps of a commit, and with
 * GENIE_CKPT_CRASH_AT=N in the environment the N-th call of this process
 * (counting from 1) appends "N where" to GENIE_CKPT_CRASH_LOG (when set)
 * and kills the process with SIGKILL, the way a node loss would: no
 * cleanup, no buffered output, no atexit handlers.
 *
 * The variable is read at every call, and a new value re-arms the counter
 * (counting restarts at 1): a test driver can set it for itself in the
 * middle of a run (tests/fault/fault_app.py), and a forked child sets its
 * own.  A value that is not a plain decimal number is ignored, with one
 * line on stderr for each distinct bad value.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* The bad value shown is cut at 20 bytes on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genie/ckpt.h"
#include "genie/status.h"

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static char            armed[32];       /* the GENIE_CKPT_CRASH_AT value counted for */
static unsigned long   crash_at, count;

/* Strict decimal: digits only, no sign, no spaces, no overflow. */
static int parse_count(const char *v, unsigned long *n_p)
{
    char         *end = NULL;
    unsigned long n;

    if (v[0] < '0' || v[0] > '9') {
        return 0;
    }
    errno = 0;
    n = strtoul(v, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0') {
        return 0;
    }
    *n_p = n;
    return 1;
}

void genie_ckpt_fault_point(const char *where)
{
    const char   *v = getenv("GENIE_CKPT_CRASH_AT"), *log;
    unsigned long n = 0;
    int           die = 0;

    if (v == NULL && armed[0] == '\0') {
        return;                              /* the common case: no injection */
    }
    pthread_mutex_lock(&fault_lock);
    if (v == NULL) {
        armed[0] = '\0';
        crash_at = 0;
    } else if (strncmp(v, armed, sizeof(armed)) != 0) {
        snprintf(armed, sizeof(armed), "%s", v);
        count = 0;
        crash_at = 0;
        if (!parse_count(v, &n)) {
            char shown[24];
            snprintf(shown, sizeof(shown), "%s", v);
            genie_one_line(shown);
            fprintf(stderr, "genie: GENIE_CKPT_CRASH_AT='%s' is not a number; ignored\n", shown);
        } else {
            crash_at = n;
        }
    }
    count++;
    die = crash_at > 0 && count == crash_at;
    n = count;
    pthread_mutex_unlock(&fault_lock);
    if (!die) {
        return;
    }
    if ((log = getenv("GENIE_CKPT_CRASH_LOG")) != NULL && log[0] != '\0') {
        FILE *f = fopen(log, "a");
        if (f != NULL) {
            fprintf(f, "%lu %s\n", n, where);
            fclose(f);
        }
    }
    raise(SIGKILL);
}
