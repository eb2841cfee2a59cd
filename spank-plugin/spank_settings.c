/*
 * What a --genie-phases step runs under: the arguments on the plugstack.conf
 * line, the admin's genie.conf (config=), the user's --genie-config, and the
 * phase spec checked against the site's limits.  The plugstack arguments win
 * over the admin's file, which wins over the built-in defaults; a user's file
 * may change how Genie runs (backend, threads, UCX, ...) but not the site's
 * policy (the slurm group is refused there).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genie_spank.h"

#define MAX_ALLOWED GENIE_PHASE_SPEC_MAX_ENTRIES

static void report(const char *msg)
{
    genie_spank_err("%s", msg);
}

static int set_str(char **field_p, const char *v)
{
    char *copy = strdup(v);

    if (copy == NULL) {
        genie_spank_err("out of memory");
        return -1;
    }
    free(*field_p);
    *field_p = copy;
    return 0;
}

/* "prefill,decode" into names (NULL-terminated); 0, or -1 with a message. */
static int split_allowed(const char *list, char names[][GENIE_PHASE_NAME_MAX + 1],
                         const char *ptrs[], const char *where)
{
    const char *p = list;
    int         n = 0;

    while (*p != '\0') {
        size_t len = strcspn(p, ",");

        if (len == 0 || len > GENIE_PHASE_NAME_MAX || n == MAX_ALLOWED) {
            genie_spank_err("%s: allowed_phases='%s' is not a comma-separated list of at most %d "
                            "phase names", where, list, MAX_ALLOWED);
            return -1;
        }
        snprintf(names[n], GENIE_PHASE_NAME_MAX + 1, "%.*s", (int)len, p);
        ptrs[n] = names[n];
        n++;
        p += len + (p[len] == ',');
        if (p[-1] == ',' && *p == '\0') {
            genie_spank_err("%s: allowed_phases='%s' ends with a comma", where, list);
            return -1;
        }
    }
    if (n == 0) {
        genie_spank_err("%s: allowed_phases is empty; name at least one phase", where);
        return -1;
    }
    ptrs[n] = NULL;
    return 0;
}

int genie_spank_parse_args(int ac, char **av)
{
    genie_spank_state_t *s = &genie_spank;
    const char          *where = "plugstack.conf (genie_spank.so)";

    for (int i = 0; i < ac; i++) {
        const char *a  = av[i];
        const char *eq = strchr(a, '=');
        const char *v  = eq != NULL ? eq + 1 : "";
        size_t      k  = eq != NULL ? (size_t)(eq - a) : strlen(a);

        if (eq != NULL && k == 6 && strncmp(a, "config", 6) == 0 && v[0] == '/') {
            if (set_str(&s->admin_config, v) != 0) {
                return -1;
            }
        } else if (eq != NULL && k == 15 && strncmp(a, "checkpoint_root", 15) == 0 &&
                   v[0] == '/') {
            if (set_str(&s->checkpoint_root, v) != 0) {
                return -1;
            }
        } else if (eq != NULL && k == 10 && strncmp(a, "max_slices", 10) == 0) {
            if (!genie_launch_parse_int(v, 0,
                                        (int64_t)GENIE_PHASE_SPEC_MAX_ENTRIES *
                                            GENIE_PHASE_MAX_SLICES, &s->max_slices)) {
                genie_spank_err("%s: max_slices='%s' is not a whole number 0..%d (0: no limit)",
                                where, v, GENIE_PHASE_SPEC_MAX_ENTRIES * GENIE_PHASE_MAX_SLICES);
                return -1;
            }
        } else if (eq != NULL && k == 14 && strncmp(a, "allowed_phases", 14) == 0) {
            char        names[MAX_ALLOWED + 1][GENIE_PHASE_NAME_MAX + 1];
            const char *ptrs[MAX_ALLOWED + 1];

            if (split_allowed(v, names, ptrs, where) != 0 || set_str(&s->allowed_phases, v) != 0) {
                return -1;
            }
        } else if (eq != NULL && ((k == 6 && strncmp(a, "config", 6) == 0) ||
                                  (k == 15 && strncmp(a, "checkpoint_root", 15) == 0))) {
            genie_spank_err("%s: %.*s='%s' must be an absolute path", where, (int)k, a, v);
            return -1;
        } else {
            genie_spank_err("%s: unknown argument '%s'; known: config=FILE, checkpoint_root=DIR, "
                            "max_slices=N, allowed_phases=NAME[,NAME...]", where, a);
            return -1;
        }
    }
    return 0;
}

/* Parse text against the limits known so far (plugstack arguments, and the
 * admin's file once loaded); prints the parser's one line on failure. */
static int parse_spec(const char *text, const char *allowed, int64_t max_slices,
                      genie_phase_spec_t *spec_p)
{
    char                 names[MAX_ALLOWED + 1][GENIE_PHASE_NAME_MAX + 1];
    const char          *ptrs[MAX_ALLOWED + 1];
    genie_phase_limits_t lim = { NULL, 0 };
    char                 err[512];

    if (allowed != NULL) {
        if (split_allowed(allowed, names, ptrs, "genie.conf") != 0) {
            return -1;
        }
        lim.allowed = ptrs;
    }
    lim.max_slices = max_slices > 0 ? (uint32_t)max_slices : 0;
    if (genie_phase_spec_parse(text, &lim, spec_p, err, sizeof(err)) != GENIE_OK) {
        genie_spank_err("%s", strncmp(err, "genie: ", 7) == 0 ? err + 7 : err);
        return -1;
    }
    return 0;
}

int genie_spank_check_phases(const char *text)
{
    genie_phase_spec_t spec;

    return parse_spec(text, genie_spank.allowed_phases, genie_spank.max_slices, &spec);
}

int genie_spank_settings_load(void)
{
    genie_spank_state_t  *s   = &genie_spank;
    genie_launch_config_t *cfg = &s->cfg;
    const char           *user = s->opt[GENIE_SPANK_OPT_CONFIG];
    const char           *allowed;
    int64_t               max;

    if (s->loaded) {
        return 0;
    }
    genie_launch_config_set_report(report);
    if (genie_launch_config_init(cfg) != GENIE_OK) {
        return -1;
    }
    if (s->admin_config != NULL && genie_launch_config_load(cfg, s->admin_config) != GENIE_OK) {
        goto err;
    }
    if (user != NULL) {
        cfg->slurm_allowed = 0;
        if (genie_launch_config_load(cfg, user) != GENIE_OK) {
            goto err;
        }
    }
    if (s->checkpoint_root != NULL &&
        genie_launch_config_set(&cfg->slurm.checkpoint_root, s->checkpoint_root) != GENIE_OK) {
        goto err;
    }
    allowed = s->allowed_phases != NULL ? s->allowed_phases : cfg->slurm.allowed_phases;
    max     = s->max_slices >= 0 ? s->max_slices : cfg->slurm.max_slices;
    if (parse_spec(s->opt[GENIE_SPANK_OPT_PHASES], allowed, max, &s->spec) != 0 ||
        genie_phase_spec_format(&s->spec, s->phases, sizeof(s->phases)) != GENIE_OK) {
        goto err;
    }
    memset(&s->layout, 0, sizeof(s->layout));
    s->layout.spec       = &s->spec;
    s->layout.driver_gpu = cfg->slurm.driver_gpu;
    for (uint32_t e = 0; e < s->spec.n; e++) {
        s->layout.spg[e] = genie_launch_slices_per_gpu(cfg, s->spec.entry[e].name);
    }
    s->loaded = 1;
    return 0;
err:
    genie_launch_config_fini(cfg);
    return -1;
}

void genie_spank_settings_free(void)
{
    genie_spank_state_t *s = &genie_spank;

    if (s->loaded) {
        genie_launch_config_fini(&s->cfg);
        s->loaded = 0;
    }
    for (int i = 0; i < GENIE_SPANK_N_OPTS; i++) {
        free(s->opt[i]);
        s->opt[i] = NULL;
    }
    free(s->admin_config);
    free(s->checkpoint_root);
    free(s->allowed_phases);
    s->admin_config = s->checkpoint_root = s->allowed_phases = NULL;
}
