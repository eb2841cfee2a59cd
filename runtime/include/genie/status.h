/*
 * One status type for the whole project: 0 is success, negative values are
 * errors (the UCX ucs_status_t convention).  The function that first detects an
 * error records a one-line, human-readable reason with genie_set_error(); callers
 * further up only propagate the code.  The message is thread-local so that
 * executor threads do not overwrite each other's reasons.
 */
#ifndef GENIE_STATUS_H
#define GENIE_STATUS_H

#include <stddef.h>

typedef int genie_status_t;

enum {
    GENIE_OK               = 0,
    GENIE_ERR_INVALID      = -1,  /* bad argument or malformed request      */
    GENIE_ERR_NOMEM        = -2,  /* allocation failed                       */
    GENIE_ERR_TRUNCATED    = -3,  /* buffer ends before a declared length    */
    GENIE_ERR_CORRUPT      = -4,  /* bytes do not describe a valid object    */
    GENIE_ERR_VERSION      = -5,  /* format version we do not understand     */
    GENIE_ERR_UNSUPPORTED  = -6,  /* op / dtype not implemented on a backend */
    GENIE_ERR_DTYPE        = -7,  /* wrong dtype for an op                   */
    GENIE_ERR_SHAPE        = -8,  /* shapes do not agree                     */
    GENIE_ERR_NOT_FOUND    = -9,  /* unknown weight fingerprint / object id  */
    GENIE_ERR_IO           = -10, /* read/write/fsync failure                */
    GENIE_ERR_BACKEND      = -11, /* BLAS / CUDA / library call failed       */
    GENIE_ERR_TRANSPORT    = -12, /* UCX / MPI call failed                   */
    GENIE_ERR_PEER_LOST    = -13, /* a peer process died or stopped answering */
    GENIE_ERR_DENIED       = -14, /* connection without the job secret       */
    GENIE_ERR_TIMEOUT      = -15, /* no answer within the allowed time       */
    GENIE_ERR_NO_PLAN      = -16, /* executor does not hold that cached plan */
};

/* Static name of a status code ("invalid argument", ...). */
const char *genie_status_str(genie_status_t st);

/* Record the reason for an error in this thread (printf-style, one line) and
 * return `st`, so that detection sites read `return genie_set_error(...)`. */
genie_status_t genie_set_error(genie_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The last recorded reason in this thread, or "" if none. */
const char *genie_last_error(void);

/* Make msg one printable line in place: control bytes (a newline from a
 * file or the environment could forge a second message) become '?'. */
void genie_one_line(char *msg);

/* Forget the recorded reason (called at the start of a top-level request). */
void genie_clear_error(void);

#endif
