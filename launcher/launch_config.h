/*
 * genie-launch's settings and the libconfig file they may come from
 * (configs/genie.conf documents every key).  Precedence: command-line flags
 * over the file over the defaults below.  Every value is checked here, when
 * it is read, so that a bad file is refused with its name, line and key
 * before anything is created or started.
 */
#ifndef GENIE_LAUNCH_CONFIG_H
#define GENIE_LAUNCH_CONFIG_H

#include <stdint.h>

#include "genie/status.h"

#define GENIE_LAUNCH_DEFAULT_BACKEND      "auto"
#define GENIE_LAUNCH_DEFAULT_KV_MODE      "colocated"
#define GENIE_LAUNCH_DEFAULT_ARENA_MB     1024
#define GENIE_LAUNCH_DEFAULT_TLS          "self,posix,cma,tcp"
#define GENIE_LAUNCH_DEFAULT_KEEPALIVE_MS 1000

/* Ranges, also quoted in the error messages and in configs/genie.conf. */
#define GENIE_LAUNCH_MAX_THREADS      4096
#define GENIE_LAUNCH_MAX_ARENA_MB     (1 << 20)        /* 1 TiB per executor */
#define GENIE_LAUNCH_MAX_TIMEOUT_S    1e9
#define GENIE_LAUNCH_MAX_KEEPALIVE_MS 86400000         /* one day */
#define GENIE_LAUNCH_MAX_TLS_LEN      255

typedef struct genie_launch_config {
    char   *phases;            /* NULL: not given; else a spec the parser accepted */
    char   *backend;           /* "cpu" | "cuda" | "auto"                          */
    int64_t threads;           /* 0..MAX_THREADS, 0 = one share of the cores       */
    char   *kv_mode;           /* "colocated" | "blind"                            */
    int64_t arena_mb;          /* 1..MAX_ARENA_MB                                  */
    double  request_timeout_s; /* 0..MAX_TIMEOUT_S, 0 = no timeout                 */
    char   *ucx_tls;           /* UCX_TLS value                                    */
    int64_t ucx_keepalive_ms;  /* 1..MAX_KEEPALIVE_MS                              */
} genie_launch_config_t;

/* Defaults into *cfg (strings are owned by cfg; free with _fini). */
genie_status_t genie_launch_config_init(genie_launch_config_t *cfg);
void           genie_launch_config_fini(genie_launch_config_t *cfg);

/* Read the libconfig file `path` over the values in *cfg.  On error prints one
 * "genie-launch: FILE:LINE: ..." line and returns a negative status; *cfg then
 * holds a mix of old and new values and should only be freed. */
genie_status_t genie_launch_config_load(genie_launch_config_t *cfg, const char *path);

/* Replace a string setting (strdup); GENIE_ERR_NOMEM, printed, on failure. */
genie_status_t genie_launch_config_set(char **field_p, const char *value);

/* Value checks shared by the file and the command line: 1 if acceptable. */
int genie_launch_backend_ok(const char *v);
int genie_launch_kv_mode_ok(const char *v);

/* Whole decimal number in [lo, hi] with nothing else around it. */
int genie_launch_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *value_p);

#endif
