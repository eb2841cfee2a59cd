/*
 * libFuzzer target: the option strings genie_spank.so takes from Slurm, in
 * the plugin's own code (spank-plugin/spank_settings.c): the plugstack.conf
 * arguments (genie_spank_parse_args: config=, checkpoint_root=, max_slices=,
 * allowed_phases=) and then the value of srun --genie-phases checked
 * against the limits they set (genie_spank_check_phases).
 *
 * Input: lines separated by '\n'; every line but the last is one plugstack
 * argument, the last is the --genie-phases value (each ends at its first
 * NUL, as a C string from Slurm would).  Invariants (an abort is what
 * libFuzzer reports): each call returns 0 or -1; -1 comes with exactly one
 * message, non-empty; 0 with none; ASan/UBSan/LSan find nothing (the state
 * is freed with genie_spank_settings_free after each input).
 *
 * genie_spank.c (the SPANK entry points, which need srun or slurmstepd
 * around them) is not linked: this file defines the plugin's state and its
 * message function as genie_spank.c does, minus the Slurm output.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genie_spank.h"

genie_spank_state_t genie_spank = { .max_slices = -1 };

static int n_msgs;

void genie_spank_err(const char *fmt, ...)
{
    char    msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    genie_one_line(msg);
    snprintf(genie_spank.last_err, sizeof(genie_spank.last_err), "%s", msg);
    if (msg[0] == '\0') {
        fprintf(stderr, "lf_spank_opts: an empty message\n");
        abort();
    }
    n_msgs++;
}

static void check(int rc, const char *what)
{
    if ((rc != 0 && rc != -1) || (rc == -1) != (n_msgs == 1) || n_msgs > 1) {
        fprintf(stderr, "lf_spank_opts: %s returned %d with %d messages (last '%s')\n", what, rc,
                n_msgs, genie_spank.last_err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), **av;
    int ac = 0, rc;

    if (text == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(text, data, size);
    }
    text[size] = '\0';
    av = malloc(sizeof(*av) * (size + 1));
    if (av == NULL) {
        free(text);
        return 0;
    }
    av[ac++] = text;
    for (size_t i = 0; i < size; i++) {
        if (text[i] == '\n') {
            text[i] = '\0';
            av[ac++] = &text[i + 1];
        }
    }
    /* av[0 .. ac-2]: plugstack arguments; av[ac-1]: the phases value. */
    n_msgs = 0;
    rc = genie_spank_parse_args(ac - 1, av);
    check(rc, "genie_spank_parse_args");
    if (rc == 0) {
        n_msgs = 0;
        check(genie_spank_check_phases(av[ac - 1]), "genie_spank_check_phases");
    }
    genie_spank_settings_free();
    genie_spank.max_slices = -1;
    free(av);
    free(text);
    return 0;
}
