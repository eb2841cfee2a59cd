/*
 * genie.conf, the libconfig file of genie-launch and of the SPANK plugin
 * (format and every key: configs/genie.conf).
 *
 * The file is read whole by libconfig, then every setting is looked at by
 * name: an unknown key, a value of the wrong type or outside its range is
 * refused with the file, the line and the key, so that a typo never silently
 * falls back to a default.  Values given here are overridden by command-line
 * flags (genie-launch's launch.c applies those after loading).  Builds without libconfig
 * refuse any config file instead of ignoring it.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef GENIE_CONFIG_HAVE_LIBCONFIG
#include <libconfig.h>
#endif

#include "genie/phase_spec.h"
#include "genie/config.h"

const genie_launch_wait_info_t genie_launch_waits[GENIE_LAUNCH_N_WAITS] = {
    [GENIE_LAUNCH_WAIT_REQUEST]    = {"request_timeout_s", "GENIE_REQUEST_TIMEOUT_S", 30.0},
    [GENIE_LAUNCH_WAIT_HANDOFF]    = {"handoff_timeout_s", "GENIE_HANDOFF_TIMEOUT_S", 60.0},
    [GENIE_LAUNCH_WAIT_CHECKPOINT] = {"checkpoint_timeout_s", "GENIE_CHECKPOINT_TIMEOUT_S", 600.0},
    [GENIE_LAUNCH_WAIT_BOOTSTRAP]  = {"bootstrap_timeout_s", "GENIE_BOOTSTRAP_TIMEOUT_S", 120.0},
};

static void report_stderr(const char *msg)
{
    fprintf(stderr, "genie-launch: %s\n", msg);
}

static genie_launch_config_report_fn report_fn = report_stderr;

void genie_launch_config_set_report(genie_launch_config_report_fn fn)
{
    report_fn = fn != NULL ? fn : report_stderr;
}

/* Every message of this file goes through here: one line, control
 * characters (from a file's contents) replaced so they cannot forge lines. */
__attribute__((format(printf, 1, 2))) static void cfg_err(const char *fmt, ...)
{
    char    msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    genie_one_line(msg);
    report_fn(msg);
}

genie_status_t genie_launch_config_set(char **field_p, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL) {
        cfg_err("out of memory reading the settings");
        return GENIE_ERR_NOMEM;
    }
    free(*field_p);
    *field_p = copy;
    return GENIE_OK;
}

genie_status_t genie_launch_config_init(genie_launch_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->threads           = 0;
    cfg->arena_mb          = GENIE_LAUNCH_DEFAULT_ARENA_MB;
    cfg->memory_mb         = 0;
    for (int i = 0; i < GENIE_LAUNCH_N_WAITS; i++) {
        cfg->wait_s[i] = genie_launch_waits[i].default_s;
    }
    cfg->ucx_keepalive_ms  = GENIE_LAUNCH_DEFAULT_KEEPALIVE_MS;
    cfg->slurm_allowed     = 1;
    cfg->slurm.slices_per_gpu = 1;
    cfg->slurm.cpu_fallback   = 1;
    cfg->ckpt.every_steps     = -1;
    cfg->ckpt.every_s         = -1.0;
    cfg->ckpt.keep            = -1;
    cfg->ckpt.term_grace_s    = -1;
    if (genie_launch_config_set(&cfg->backend, GENIE_LAUNCH_DEFAULT_BACKEND) != GENIE_OK ||
        genie_launch_config_set(&cfg->kv_mode, GENIE_LAUNCH_DEFAULT_KV_MODE) != GENIE_OK ||
        genie_launch_config_set(&cfg->ucx_tls, GENIE_LAUNCH_DEFAULT_TLS) != GENIE_OK ||
        genie_launch_config_set(&cfg->slurm.rendezvous_dir, GENIE_LAUNCH_DEFAULT_RENDEZVOUS) !=
            GENIE_OK) {
        genie_launch_config_fini(cfg);
        return GENIE_ERR_NOMEM;
    }
    return GENIE_OK;
}

void genie_launch_config_fini(genie_launch_config_t *cfg)
{
    free(cfg->phases);
    free(cfg->backend);
    free(cfg->kv_mode);
    free(cfg->ucx_tls);
    free(cfg->slurm.rendezvous_dir);
    free(cfg->slurm.checkpoint_root);
    free(cfg->slurm.allowed_phases);
    free(cfg->ckpt.dir);
    free(cfg->spares.file);
    memset(cfg, 0, sizeof(*cfg));
}

uint32_t genie_launch_slices_per_gpu(const genie_launch_config_t *cfg, const char *phase)
{
    for (uint32_t i = 0; i < cfg->slurm.n_phase_spg; i++) {
        if (strcmp(cfg->slurm.phase_spg[i].name, phase) == 0) {
            return cfg->slurm.phase_spg[i].slices_per_gpu;
        }
    }
    return cfg->slurm.slices_per_gpu;
}

int genie_launch_backend_ok(const char *v)
{
    return strcmp(v, "cpu") == 0 || strcmp(v, "cuda") == 0 || strcmp(v, "auto") == 0;
}

int genie_launch_kv_mode_ok(const char *v)
{
    return strcmp(v, "colocated") == 0 || strcmp(v, "blind") == 0;
}

int genie_launch_ckpt_dir_ok(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > GENIE_LAUNCH_MAX_CKPT_DIR) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* Entry i of a spec text the parser accepted gives its own "+S". */
static int entry_has_spares(const char *spec_text, uint32_t i)
{
    const char *p = spec_text;

    for (; i > 0 && p != NULL; i--) {
        p = strchr(p, ',');
        p = p != NULL ? p + 1 : NULL;
    }
    return p != NULL && memchr(p, '+', strcspn(p, ",")) != NULL;
}

genie_status_t genie_launch_config_apply_spares(const genie_launch_config_t *cfg,
                                                const char *spec_text, genie_phase_spec_t *spec)
{
    const genie_launch_spares_t *sp = &cfg->spares;
    genie_phase_spec_t           tmp = *spec;

    for (uint32_t k = 0; k < sp->n; k++) {
        const char *name = sp->phase[k].name;
        const char *file = sp->file != NULL ? sp->file : "genie.conf";
        uint32_t    e;

        for (e = 0; e < tmp.n && strcmp(tmp.entry[e].name, name) != 0; e++) {
        }
        if (e == tmp.n) {
            cfg_err("%s:%d: spares.%s: phase '%s' is not in the phase spec '%s'; remove it from "
                    "the spares group or add the phase to --phases", file, sp->phase[k].line, name,
                    name, spec_text);
            return GENIE_ERR_INVALID;
        }
        if (entry_has_spares(spec_text, e)) {
            continue;   /* "decode:2+1" (or "+0") on the command line wins */
        }
        if (tmp.entry[e].slices + sp->phase[k].spares > GENIE_PHASE_MAX_SLICES) {
            cfg_err("%s:%d: spares.%s = %u would give phase '%s' %u slices; at most %d per phase "
                    "(spares included)", file, sp->phase[k].line, name, sp->phase[k].spares, name,
                    tmp.entry[e].slices + sp->phase[k].spares, GENIE_PHASE_MAX_SLICES);
            return GENIE_ERR_INVALID;
        }
        tmp.entry[e].slices += sp->phase[k].spares;
        tmp.entry[e].spares += sp->phase[k].spares;
        tmp.total_slices += sp->phase[k].spares;   /* <= 16 * 4096: no overflow */
    }
    *spec = tmp;
    return GENIE_OK;
}

int genie_launch_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *value_p)
{
    int64_t v = 0;

    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }
        v = v * 10 + (*p - '0');
        if (v > hi) {   /* stops before any overflow: hi is far below INT64_MAX / 10 */
            return 0;
        }
    }
    if (v < lo) {
        return 0;
    }
    *value_p = v;
    return 1;
}

#ifndef GENIE_CONFIG_HAVE_LIBCONFIG

genie_status_t genie_launch_config_load(genie_launch_config_t *cfg, const char *path)
{
    (void)cfg;
    cfg_err("%s: this genie-launch was built without libconfig, so it cannot read "
                     "config files; install libconfig-dev and rebuild, or drop --config/GENIE_CONFIG",
                     path);
    return GENIE_ERR_UNSUPPORTED;
}

#else

/* UCX transport names: letters, digits, '_' and '-', joined by ',' with an
 * optional '^' (negation) in front, as in "self,posix,cma,tcp" or "^ud". */
static int tls_ok(const char *v, char *bad_p)
{
    size_t n = strlen(v);

    if (n == 0 || n > GENIE_LAUNCH_MAX_TLS_LEN) {
        *bad_p = '\0';
        return 0;
    }
    for (const char *p = v; *p != '\0'; p++) {
        char c = *p;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == ',' || c == '^' || c == ':')) {
            *bad_p = c;
            return 0;
        }
    }
    return 1;
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:  return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:  return "an integer";
    case CONFIG_TYPE_FLOAT:  return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL:   return "a boolean";
    case CONFIG_TYPE_ARRAY:  return "an array";
    case CONFIG_TYPE_LIST:   return "a list";
    default:                 return "something else";
    }
}

/* The context every message about one setting starts with. */
typedef struct where {
    const char *file;
    int         line;
    const char *key;   /* "threads", "ucx.tls", ... */
} where_t;

static where_t where_of(const char *path, const config_setting_t *s, const char *key)
{
    where_t w;
    const char *f = config_setting_source_file(s);

    w.file = f != NULL ? f : path;
    w.line = (int)config_setting_source_line(s);
    w.key  = key;
    return w;
}

static genie_status_t wrong_type(const where_t *w, const config_setting_t *s, const char *want,
                                 const char *example)
{
    cfg_err("%s:%d: %s must be %s (e.g. %s), not %s", w->file, w->line, w->key, want,
                     example, type_name(config_setting_type(s)));
    return GENIE_ERR_INVALID;
}

static genie_status_t get_string(const where_t *w, const config_setting_t *s, const char *example,
                                 const char **value_p)
{
    const char *v = NULL;

    if (config_setting_type(s) != CONFIG_TYPE_STRING ||
        (v = config_setting_get_string(s)) == NULL) {
        return wrong_type(w, s, "a string", example);
    }
    *value_p = v;
    return GENIE_OK;
}

static genie_status_t get_int(const where_t *w, const config_setting_t *s, int64_t lo, int64_t hi,
                              const char *example, int64_t *value_p)
{
    long long v;

    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64) {
        return wrong_type(w, s, "an integer", example);
    }
    v = config_setting_get_int64(s);
    if (v < lo || v > hi) {
        cfg_err("%s:%d: %s = %lld is out of range; give %lld..%lld (e.g. %s)", w->file,
                         w->line, w->key, v, (long long)lo, (long long)hi, example);
        return GENIE_ERR_INVALID;
    }
    *value_p = (int64_t)v;
    return GENIE_OK;
}

static genie_status_t load_phases(genie_launch_config_t *cfg, const where_t *w,
                                  const config_setting_t *s)
{
    genie_phase_spec_t spec;
    const char        *v = NULL;
    char               err[512];

    if (get_string(w, s, "phases = \"prefill:1,decode:1\";", &v) != GENIE_OK) {
        return GENIE_ERR_INVALID;
    }
    if (v[0] == '\0') {
        cfg_err("%s:%d: phases is empty; write NAME:N[,NAME:N...], e.g. "
                         "phases = \"prefill:1,decode:1\";", w->file, w->line);
        return GENIE_ERR_INVALID;
    }
    if (genie_phase_spec_parse(v, NULL, &spec, err, sizeof(err)) != GENIE_OK) {
        const char *msg = strncmp(err, "genie: ", 7) == 0 ? err + 7 : err;

        cfg_err("%s:%d: phases: %s", w->file, w->line, msg);
        return GENIE_ERR_INVALID;
    }
    return genie_launch_config_set(&cfg->phases, v);
}

static genie_status_t load_ucx(genie_launch_config_t *cfg, const char *path,
                               const config_setting_t *group)
{
    where_t gw = where_of(path, group, "ucx");

    if (config_setting_type(group) != CONFIG_TYPE_GROUP) {
        return wrong_type(&gw, group, "a group", "ucx = { tls = \"self,posix,cma,tcp\"; }");
    }
    for (int i = 0; i < config_setting_length(group); i++) {
        config_setting_t *s    = config_setting_get_elem(group, (unsigned)i);
        const char       *name = config_setting_name(s);
        where_t           w;

        if (name == NULL) {
            continue;   /* groups hold only named settings; defensive */
        }
        if (strcmp(name, "tls") == 0) {
            const char *v = NULL;
            char        bad;

            w = where_of(path, s, "ucx.tls");
            if (get_string(&w, s, "tls = \"self,posix,cma,tcp\";", &v) != GENIE_OK) {
                return GENIE_ERR_INVALID;
            }
            if (!tls_ok(v, &bad)) {
                if (bad == '\0') {
                    cfg_err("%s:%d: ucx.tls must be 1..%d bytes; give a comma-separated "
                                     "list of UCX transports, e.g. tls = \"self,posix,cma,tcp\";",
                                     w.file, w.line, GENIE_LAUNCH_MAX_TLS_LEN);
                } else {
                    cfg_err("%s:%d: ucx.tls has a bad character '%c'; give a "
                                     "comma-separated list of UCX transports, e.g. "
                                     "tls = \"self,posix,cma,tcp\";", w.file, w.line, bad);
                }
                return GENIE_ERR_INVALID;
            }
            if (genie_launch_config_set(&cfg->ucx_tls, v) != GENIE_OK) {
                return GENIE_ERR_NOMEM;
            }
        } else if (strcmp(name, "keepalive_ms") == 0) {
            w = where_of(path, s, "ucx.keepalive_ms");
            if (get_int(&w, s, 1, GENIE_LAUNCH_MAX_KEEPALIVE_MS, "keepalive_ms = 1000;",
                        &cfg->ucx_keepalive_ms) != GENIE_OK) {
                return GENIE_ERR_INVALID;
            }
        } else {
            w = where_of(path, s, name);
            cfg_err("%s:%d: unknown key 'ucx.%s'; the ucx group knows tls, keepalive_ms",
                             w.file, w.line, name);
            return GENIE_ERR_INVALID;
        }
    }
    return GENIE_OK;
}

/* A comma-separated list of phase names ("prefill,decode"), each valid for
 * the phase-spec grammar: checked by parsing "name:1,..." with the parser. */
static genie_status_t check_phase_list(const where_t *w, const char *v)
{
    char               spec[GENIE_PHASE_SPEC_MAX_ENTRIES * (GENIE_PHASE_NAME_MAX + 3) + 1];
    char               err[512];
    size_t             at = 0;
    const char        *p  = v;
    genie_phase_spec_t parsed;

    while (*p != '\0') {
        size_t n = strcspn(p, ",");

        if (at + n + 4 > sizeof(spec)) {
            cfg_err("%s:%d: %s names too many phases (at most %d)", w->file, w->line, w->key,
                    GENIE_PHASE_SPEC_MAX_ENTRIES);
            return GENIE_ERR_INVALID;
        }
        memcpy(spec + at, p, n);
        memcpy(spec + at + n, ":1,", 3);
        at += n + 3;
        p += n + (p[n] == ',');
    }
    if (at == 0) {
        cfg_err("%s:%d: %s is empty; name the phases, e.g. \"prefill,decode\"", w->file, w->line,
                w->key);
        return GENIE_ERR_INVALID;
    }
    spec[at - 1] = '\0';
    if (v[strlen(v) - 1] == ',' ||
        genie_phase_spec_parse(spec, NULL, &parsed, err, sizeof(err)) != GENIE_OK) {
        cfg_err("%s:%d: %s = \"%s\" is not a comma-separated list of distinct phase names "
                "([a-z][a-z0-9_]*), e.g. \"prefill,decode\"", w->file, w->line, w->key, v);
        return GENIE_ERR_INVALID;
    }
    return GENIE_OK;
}

static genie_status_t get_bool(const where_t *w, const config_setting_t *s, const char *example,
                               int *value_p)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        return wrong_type(w, s, "true or false", example);
    }
    *value_p = config_setting_get_bool(s) ? 1 : 0;
    return GENIE_OK;
}

static genie_status_t get_abs_path(const where_t *w, const config_setting_t *s,
                                   const char *example, char **field_p)
{
    const char *v = NULL;

    if (get_string(w, s, example, &v) != GENIE_OK) {
        return GENIE_ERR_INVALID;
    }
    if (v[0] != '/' || strlen(v) > 3000) {
        cfg_err("%s:%d: %s must be an absolute path (e.g. %s)", w->file, w->line, w->key, example);
        return GENIE_ERR_INVALID;
    }
    return genie_launch_config_set(field_p, v);
}

/* slurm.slices_per_gpu: an integer for every phase, or a group of
 * phase = integer with an optional `default`. */
static genie_status_t load_slices_per_gpu(genie_launch_slurm_t *sl, const char *path,
                                          const config_setting_t *s)
{
    where_t w = where_of(path, s, "slurm.slices_per_gpu");
    int64_t v;

    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        if (get_int(&w, s, 1, GENIE_LAUNCH_MAX_SLICES_PER_GPU, "slices_per_gpu = 1;", &v) !=
            GENIE_OK) {
            return GENIE_ERR_INVALID;
        }
        sl->slices_per_gpu = (uint32_t)v;
        return GENIE_OK;
    }
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *e    = config_setting_get_elem(s, (unsigned)i);
        const char       *name = config_setting_name(e);
        char              key[96];
        where_t           ew;

        if (name == NULL) {
            continue;
        }
        snprintf(key, sizeof(key), "slurm.slices_per_gpu.%s", name);
        ew = where_of(path, e, key);
        if (get_int(&ew, e, 1, GENIE_LAUNCH_MAX_SLICES_PER_GPU, "decode = 4;", &v) != GENIE_OK) {
            return GENIE_ERR_INVALID;
        }
        if (strcmp(name, "default") == 0) {
            sl->slices_per_gpu = (uint32_t)v;
            continue;
        }
        if (check_phase_list(&ew, name) != GENIE_OK) {
            return GENIE_ERR_INVALID;
        }
        if (sl->n_phase_spg == GENIE_PHASE_SPEC_MAX_ENTRIES) {
            cfg_err("%s:%d: slurm.slices_per_gpu names more than %d phases", ew.file, ew.line,
                    GENIE_PHASE_SPEC_MAX_ENTRIES);
            return GENIE_ERR_INVALID;
        }
        snprintf(sl->phase_spg[sl->n_phase_spg].name, sizeof(sl->phase_spg[0].name), "%s", name);
        sl->phase_spg[sl->n_phase_spg++].slices_per_gpu = (uint32_t)v;
    }
    return GENIE_OK;
}

static genie_status_t load_slurm(genie_launch_config_t *cfg, const char *path,
                                 const config_setting_t *group)
{
    genie_launch_slurm_t *sl = &cfg->slurm;
    where_t               gw = where_of(path, group, "slurm");

    if (!cfg->slurm_allowed) {
        cfg_err("%s:%d: the slurm group is the administrator's policy and is read only from the "
                "genie.conf named on the plugstack.conf line; remove it from this file",
                gw.file, gw.line);
        return GENIE_ERR_DENIED;
    }
    if (config_setting_type(group) != CONFIG_TYPE_GROUP) {
        return wrong_type(&gw, group, "a group", "slurm = { slices_per_gpu = 1; }");
    }
    for (int i = 0; i < config_setting_length(group); i++) {
        config_setting_t *s    = config_setting_get_elem(group, (unsigned)i);
        const char       *name = config_setting_name(s);
        char              key[64];
        where_t           w;
        genie_status_t    rc;

        if (name == NULL) {
            continue;
        }
        snprintf(key, sizeof(key), "slurm.%s", name);
        w = where_of(path, s, key);
        if (strcmp(name, "slices_per_gpu") == 0) {
            rc = load_slices_per_gpu(sl, path, s);
        } else if (strcmp(name, "driver_gpu") == 0) {
            rc = get_bool(&w, s, "driver_gpu = false;", &sl->driver_gpu);
        } else if (strcmp(name, "cpu_fallback") == 0) {
            rc = get_bool(&w, s, "cpu_fallback = true;", &sl->cpu_fallback);
        } else if (strcmp(name, "rendezvous_dir") == 0) {
            rc = get_abs_path(&w, s, "rendezvous_dir = \"/tmp\";", &sl->rendezvous_dir);
        } else if (strcmp(name, "checkpoint_root") == 0) {
            rc = get_abs_path(&w, s, "checkpoint_root = \"/scratch/genie\";", &sl->checkpoint_root);
        } else if (strcmp(name, "allowed_phases") == 0) {
            const char *v = NULL;

            rc = get_string(&w, s, "allowed_phases = \"prefill,decode\";", &v);
            if (rc == GENIE_OK) {
                rc = check_phase_list(&w, v);
            }
            if (rc == GENIE_OK) {
                rc = genie_launch_config_set(&sl->allowed_phases, v);
            }
        } else if (strcmp(name, "max_slices") == 0) {
            rc = get_int(&w, s, 0, (int64_t)GENIE_PHASE_SPEC_MAX_ENTRIES * GENIE_PHASE_MAX_SLICES,
                         "max_slices = 64; or 0 for no limit", &sl->max_slices);
        } else {
            cfg_err("%s:%d: unknown key 'slurm.%s'; the slurm group knows slices_per_gpu, "
                    "driver_gpu, cpu_fallback, rendezvous_dir, checkpoint_root, allowed_phases, "
                    "max_slices", w.file, w.line, name);
            rc = GENIE_ERR_INVALID;
        }
        if (rc != GENIE_OK) {
            return rc;
        }
    }
    return GENIE_OK;
}

/* A number of seconds in [0, hi]; whole numbers are accepted too. */
static genie_status_t get_seconds(const where_t *w, const config_setting_t *s, double hi,
                                  const char *example, double *value_p)
{
    double t;

    if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
        t = config_setting_get_float(s);
    } else if (config_setting_type(s) == CONFIG_TYPE_INT ||
               config_setting_type(s) == CONFIG_TYPE_INT64) {
        t = (double)config_setting_get_int64(s);
    } else {
        return wrong_type(w, s, "a number of seconds", example);
    }
    if (!isfinite(t) || t < 0.0 || t > hi) {
        cfg_err("%s:%d: %s = %g is out of range; give 0 to %g seconds (e.g. %s)", w->file, w->line,
                w->key, t, hi, example);
        return GENIE_ERR_INVALID;
    }
    *value_p = t;
    return GENIE_OK;
}

/* One of the waits (genie_launch_waits[]): a number of seconds, float or
 * integer, in [MIN_WAIT_S, MAX_WAIT_S].  0 and below get a message of their
 * own, since "0 = forever" was once the meaning and no wait is unbounded now. */
static genie_status_t get_wait(const where_t *w, const config_setting_t *s, double default_s,
                               double *value_p)
{
    char   example[96];
    double t;

    snprintf(example, sizeof(example), "%s = %g;", w->key, default_s);
    if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
        t = config_setting_get_float(s);
    } else if (config_setting_type(s) == CONFIG_TYPE_INT ||
               config_setting_type(s) == CONFIG_TYPE_INT64) {
        t = (double)config_setting_get_int64(s);
    } else {
        return wrong_type(w, s, "a number of seconds", example);
    }
    if (isfinite(t) && t <= 0.0) {
        cfg_err("%s:%d: %s = %.10g is refused: every wait is bounded, there is no 0 for "
                "'forever'; give %g to %.10g seconds (e.g. %s)", w->file, w->line, w->key, t,
                GENIE_LAUNCH_MIN_WAIT_S, GENIE_LAUNCH_MAX_WAIT_S, example);
        return GENIE_ERR_INVALID;
    }
    if (!isfinite(t) || t < GENIE_LAUNCH_MIN_WAIT_S || t > GENIE_LAUNCH_MAX_WAIT_S) {
        cfg_err("%s:%d: %s = %.10g is out of range; give %g to %.10g seconds (e.g. %s)",
                w->file, w->line, w->key, t, GENIE_LAUNCH_MIN_WAIT_S, GENIE_LAUNCH_MAX_WAIT_S,
                example);
        return GENIE_ERR_INVALID;
    }
    *value_p = t;
    return GENIE_OK;
}

/* checkpoint = { dir = "..."; every_steps = 32; every_seconds = 0; keep = 2;
 *                term_grace_s = 60; } */
static genie_status_t load_checkpoint(genie_launch_config_t *cfg, const char *path,
                                      const config_setting_t *group)
{
    where_t gw = where_of(path, group, "checkpoint");

    if (config_setting_type(group) != CONFIG_TYPE_GROUP) {
        return wrong_type(&gw, group, "a group", "checkpoint = { every_steps = 32; }");
    }
    for (int i = 0; i < config_setting_length(group); i++) {
        config_setting_t *s    = config_setting_get_elem(group, (unsigned)i);
        const char       *name = config_setting_name(s);
        const char       *v    = NULL;
        char              key[64];
        where_t           w;
        genie_status_t    rc;

        if (name == NULL) {
            continue;
        }
        snprintf(key, sizeof(key), "checkpoint.%.40s", name);
        w = where_of(path, s, key);
        w.key = key;
        if (strcmp(name, "dir") == 0) {
            if (get_string(&w, s, "dir = \"/scratch/ckpt\";", &v) != GENIE_OK) {
                return GENIE_ERR_INVALID;
            }
            if (!genie_launch_ckpt_dir_ok(v)) {
                cfg_err("%s:%d: checkpoint.dir must be a directory name of 1..%d bytes without "
                        "control characters (e.g. dir = \"/scratch/ckpt\";)", w.file, w.line,
                        GENIE_LAUNCH_MAX_CKPT_DIR);
                return GENIE_ERR_INVALID;
            }
            rc = genie_launch_config_set(&cfg->ckpt.dir, v);
        } else if (strcmp(name, "every_steps") == 0) {
            rc = get_int(&w, s, 0, GENIE_LAUNCH_MAX_CKPT_STEPS, "every_steps = 32; or 0 for never",
                         &cfg->ckpt.every_steps);
        } else if (strcmp(name, "every_seconds") == 0) {
            rc = get_seconds(&w, s, GENIE_LAUNCH_MAX_TIMEOUT_S, "every_seconds = 600;",
                             &cfg->ckpt.every_s);
        } else if (strcmp(name, "keep") == 0) {
            rc = get_int(&w, s, 1, GENIE_LAUNCH_MAX_CKPT_KEEP, "keep = 2;", &cfg->ckpt.keep);
        } else if (strcmp(name, "term_grace_s") == 0) {
            rc = get_int(&w, s, 1, GENIE_LAUNCH_MAX_GRACE_S, "term_grace_s = 60;",
                         &cfg->ckpt.term_grace_s);
        } else {
            cfg_err("%s:%d: unknown key 'checkpoint.%s'; the checkpoint group knows dir, "
                    "every_steps, every_seconds, keep, term_grace_s", w.file, w.line, name);
            return GENIE_ERR_INVALID;
        }
        if (rc != GENIE_OK) {
            return rc;
        }
    }
    return GENIE_OK;
}

/* spares = { decode = 1; }: phase name = spare slices (genie/config.h). */
static genie_status_t load_spares(genie_launch_config_t *cfg, const char *path,
                                  const config_setting_t *group)
{
    genie_launch_spares_t *sp = &cfg->spares;
    where_t                gw = where_of(path, group, "spares");
    genie_status_t         rc;

    if (config_setting_type(group) != CONFIG_TYPE_GROUP) {
        return wrong_type(&gw, group, "a group", "spares = { decode = 1; }");
    }
    rc = genie_launch_config_set(&sp->file, gw.file);
    if (rc != GENIE_OK) {
        return rc;
    }
    sp->n = 0;
    for (int i = 0; i < config_setting_length(group); i++) {
        config_setting_t  *s    = config_setting_get_elem(group, (unsigned)i);
        const char        *name = config_setting_name(s);
        char               key[64], one[GENIE_PHASE_NAME_MAX + 8];
        genie_phase_spec_t parsed;
        int64_t            v;
        where_t            w;

        if (name == NULL) {
            continue;
        }
        snprintf(key, sizeof(key), "spares.%.40s", name);
        w = where_of(path, s, key);
        /* A phase name exactly as the spec grammar has it: "NAME:1" parses
         * (a name cut at 32 bytes is still too long for it). */
        snprintf(one, sizeof(one), "%.*s:1", GENIE_PHASE_NAME_MAX + 1, name);
        if (genie_phase_spec_parse(one, NULL, &parsed, NULL, 0) != GENIE_OK) {
            cfg_err("%s:%d: %s: '%s' is not a phase name ([a-z][a-z0-9_]*, at most %d bytes), "
                    "e.g. spares = { decode = 1; };", w.file, w.line, key, name,
                    GENIE_PHASE_NAME_MAX);
            return GENIE_ERR_INVALID;
        }
        if (get_int(&w, s, 0, GENIE_PHASE_MAX_SLICES, "decode = 1;", &v) != GENIE_OK) {
            return GENIE_ERR_INVALID;
        }
        if (sp->n == GENIE_PHASE_SPEC_MAX_ENTRIES) {
            cfg_err("%s:%d: the spares group names more than %d phases", w.file, w.line,
                    GENIE_PHASE_SPEC_MAX_ENTRIES);
            return GENIE_ERR_INVALID;
        }
        snprintf(sp->phase[sp->n].name, sizeof(sp->phase[0].name), "%s", name);
        sp->phase[sp->n].spares = (uint32_t)v;
        sp->phase[sp->n].line   = w.line;
        sp->n++;
    }
    return GENIE_OK;
}

static genie_status_t load_setting(genie_launch_config_t *cfg, const char *path,
                                   const config_setting_t *s)
{
    const char *name = config_setting_name(s);
    where_t     w    = where_of(path, s, name);
    const char *v = NULL;

    if (strcmp(name, "phases") == 0) {
        return load_phases(cfg, &w, s);
    }
    if (strcmp(name, "backend") == 0) {
        if (get_string(&w, s, "backend = \"auto\";", &v) != GENIE_OK) {
            return GENIE_ERR_INVALID;
        }
        if (!genie_launch_backend_ok(v)) {
            cfg_err("%s:%d: backend '%s' is not one of cpu, cuda, auto", w.file, w.line, v);
            return GENIE_ERR_INVALID;
        }
        return genie_launch_config_set(&cfg->backend, v);
    }
    if (strcmp(name, "kv_mode") == 0) {
        if (get_string(&w, s, "kv_mode = \"colocated\";", &v) != GENIE_OK) {
            return GENIE_ERR_INVALID;
        }
        if (!genie_launch_kv_mode_ok(v)) {
            cfg_err("%s:%d: kv_mode '%s' is not one of colocated, blind", w.file, w.line, v);
            return GENIE_ERR_INVALID;
        }
        return genie_launch_config_set(&cfg->kv_mode, v);
    }
    if (strcmp(name, "threads") == 0) {
        return get_int(&w, s, 0, GENIE_LAUNCH_MAX_THREADS, "threads = 4; or 0 for automatic",
                       &cfg->threads);
    }
    if (strcmp(name, "arena_mb") == 0) {
        return get_int(&w, s, 1, GENIE_LAUNCH_MAX_ARENA_MB, "arena_mb = 1024;", &cfg->arena_mb);
    }
    if (strcmp(name, "memory_mb") == 0) {
        return get_int(&w, s, 0, GENIE_LAUNCH_MAX_MEMORY_MB,
                       "memory_mb = 4096; or 0 for the node's physical memory", &cfg->memory_mb);
    }
    for (int i = 0; i < GENIE_LAUNCH_N_WAITS; i++) {
        if (strcmp(name, genie_launch_waits[i].key) == 0) {
            return get_wait(&w, s, genie_launch_waits[i].default_s, &cfg->wait_s[i]);
        }
    }
    if (strcmp(name, "ucx") == 0) {
        return load_ucx(cfg, path, s);
    }
    if (strcmp(name, "slurm") == 0) {
        return load_slurm(cfg, path, s);
    }
    if (strcmp(name, "checkpoint") == 0) {
        return load_checkpoint(cfg, path, s);
    }
    if (strcmp(name, "spares") == 0) {
        return load_spares(cfg, path, s);
    }
    cfg_err("%s:%d: unknown key '%s'; known keys: phases, backend, threads, kv_mode, "
                     "arena_mb, memory_mb, request_timeout_s, handoff_timeout_s, "
                     "checkpoint_timeout_s, bootstrap_timeout_s, ucx, slurm, checkpoint, spares "
                     "(see configs/genie.conf)",
                     w.file, w.line, name);
    return GENIE_ERR_INVALID;
}

/* 1 if tok, a whole numeric token of the file, is an integer that libconfig
 * 1.5 reads wrongly: no L suffix, and outside int32 (decimal) or above
 * 0x7fffffff (hex).  Floats and 64-bit literals are read right. */
static int int_token_wraps(const char *tok)
{
    const char *d   = tok + (tok[0] == '-' || tok[0] == '+');
    int         hex = d[0] == '0' && (d[1] == 'x' || d[1] == 'X');
    uint64_t    max = (uint64_t)INT32_MAX + (tok[0] == '-' && !hex), v = 0;

    if (d[0] < '0' || d[0] > '9' || strchr(tok, 'L') != NULL ||
        (!hex && strpbrk(d, ".eE") != NULL)) {
        return 0;   /* a sign alone, a float, or a 64-bit literal */
    }
    for (d += hex ? 2 : 0; *d != '\0'; d++) {
        int digit = *d >= '0' && *d <= '9'        ? *d - '0'
                  : hex && *d >= 'a' && *d <= 'f' ? *d - 'a' + 10
                  : hex && *d >= 'A' && *d <= 'F' ? *d - 'A' + 10
                                                  : -1;

        if (digit < 0) {
            return 0;   /* not a number libconfig reads: its parser has refused it already */
        }
        v = v * (hex ? 16 : 10) + (uint64_t)digit;
        if (v > max) {
            return 1;
        }
    }
    return 0;
}

/* libconfig 1.5 (Debian 12) reads a decimal or hex integer without an L
 * suffix with atoi/strtoul into an int, so 4294967297 silently becomes 1 and
 * `threads = 4294967297;` would pass the range check.  After a successful
 * parse the file is scanned once more, skipping strings and comments as
 * libconfig's scanner does, and an integer literal outside int32 is refused
 * with its line.  With an L suffix libconfig reads 64 bits and the key's own
 * range applies.  Files pulled in with @include are not scanned. */
static genie_status_t check_int_literals(const char *path, FILE *f)
{
    enum { CODE, STRING, LINE_COMMENT, BLOCK_COMMENT } state = CODE;
    int line = 1, prev = '\n', c;

    while ((c = getc(f)) != EOF) {
        if (state == STRING) {
            if (c == '\\') {
                c = getc(f);   /* an escaped character, '"' included */
            } else if (c == '"') {
                state = CODE;
            }
        } else if (state == LINE_COMMENT) {
            state = c == '\n' ? CODE : state;
        } else if (state == BLOCK_COMMENT) {
            if (prev == '*' && c == '/') {
                state = CODE;
                c     = ' ';   /* so that this '/' cannot open another comment */
            }
        } else if (c == '"') {
            state = STRING;
        } else if (c == '#' || (prev == '/' && c == '/')) {
            state = LINE_COMMENT;
        } else if (prev == '/' && c == '*') {
            state = BLOCK_COMMENT;
            c     = ' ';       /* so that the opener's star cannot also close it */
        } else if (((c >= '0' && c <= '9') || c == '-' || c == '+') &&
                   !((prev >= 'a' && prev <= 'z') || (prev >= 'A' && prev <= 'Z') ||
                     (prev >= '0' && prev <= '9') || prev == '_' || prev == '*' ||
                     prev == '-' || prev == '+' || prev == '.')) {
            /* A number (not the tail of a name, [A-Za-z*][-A-Za-z0-9_*]*):
             * digits, letters (x, hex digits, e, L), '.', and a sign at the
             * start or after an exponent's e.  Longer tokens are cut, which
             * keeps them over any limit. */
            char   tok[64];
            size_t n = 0;

            while (c != EOF && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                                (c >= 'A' && c <= 'Z') || c == '.' ||
                                ((c == '-' || c == '+') &&
                                 (n == 0 || tok[n - 1] == 'e' || tok[n - 1] == 'E')))) {
                if (n < sizeof(tok) - 1) {
                    tok[n++] = (char)c;
                }
                prev = c;
                c    = getc(f);
            }
            tok[n] = '\0';
            if (int_token_wraps(tok)) {
                cfg_err("%s:%d: the integer %s does not fit in 32 bits, and libconfig would read "
                        "it as another number; give a value in the key's range (an L suffix, "
                        "e.g. %sL, reads it as 64 bits)", path, line, tok, tok);
                return GENIE_ERR_INVALID;
            }
            if (c == EOF) {
                break;
            }
            ungetc(c, f);
            continue;   /* the character after the token is looked at next */
        }
        if (c == '\n') {
            line++;
        }
        prev = c;
    }
    return GENIE_OK;
}

genie_status_t genie_launch_config_load(genie_launch_config_t *cfg, const char *path)
{
    config_t          lc;
    config_setting_t *root;
    struct stat       st;
    FILE             *f;
    genie_status_t    rc = GENIE_OK;

    /* Opened here rather than by config_read_file so that a missing or
     * unreadable file is reported with its errno, not as a parse error. */
    f = fopen(path, "r");
    if (f == NULL) {
        cfg_err("%s: cannot open the config file: %s", path, strerror(errno));
        return GENIE_ERR_IO;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        cfg_err("%s: the config file is not a regular file", path);
        fclose(f);
        return GENIE_ERR_IO;
    }
    config_init(&lc);
    if (config_read(&lc, f) != CONFIG_TRUE) {
        const char *file = config_error_file(&lc);
        const char *text = config_error_text(&lc);

        cfg_err("%s:%d: %s", file != NULL ? file : path, config_error_line(&lc),
                         text != NULL ? text : "cannot parse the file");
        rc = GENIE_ERR_INVALID;
        goto out;
    }
    rewind(f);
    rc = check_int_literals(path, f);
    if (rc != GENIE_OK) {
        goto out;
    }
    root = config_root_setting(&lc);
    for (int i = 0; root != NULL && i < config_setting_length(root); i++) {
        config_setting_t *s = config_setting_get_elem(root, (unsigned)i);

        if (config_setting_name(s) == NULL) {
            continue;
        }
        rc = load_setting(cfg, path, s);
        if (rc != GENIE_OK) {
            goto out;
        }
    }
out:
    config_destroy(&lc);
    fclose(f);
    return rc;
}

#endif
