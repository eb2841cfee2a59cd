/*
 * Status codes and the thread-local "last error" line (see status.h).
 */
#include "genie/status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

const char *genie_status_str(genie_status_t st)
{
    switch (st) {
    case GENIE_OK:              return "ok";
    case GENIE_ERR_INVALID:     return "invalid argument";
    case GENIE_ERR_NOMEM:       return "out of memory";
    case GENIE_ERR_TRUNCATED:   return "truncated input";
    case GENIE_ERR_CORRUPT:     return "corrupt input";
    case GENIE_ERR_VERSION:     return "unsupported format version";
    case GENIE_ERR_UNSUPPORTED: return "unsupported operation";
    case GENIE_ERR_DTYPE:       return "wrong dtype";
    case GENIE_ERR_SHAPE:       return "shape mismatch";
    case GENIE_ERR_NOT_FOUND:   return "not found";
    case GENIE_ERR_IO:          return "I/O error";
    case GENIE_ERR_BACKEND:     return "backend failure";
    case GENIE_ERR_TRANSPORT:   return "transport failure";
    case GENIE_ERR_PEER_LOST:   return "peer lost";
    case GENIE_ERR_DENIED:      return "access denied";
    case GENIE_ERR_TIMEOUT:     return "timed out";
    case GENIE_ERR_NO_PLAN:     return "plan not cached";
    default:                    return "unknown error";
    }
}

genie_status_t genie_set_error(genie_status_t st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return st;
}

const char *genie_last_error(void)
{
    return last_error;
}

void genie_clear_error(void)
{
    last_error[0] = '\0';
}

void genie_one_line(char *msg)
{
    for (char *p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
}
