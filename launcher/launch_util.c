/*
 * Small helpers of genie-launch: its one-line messages, argument vectors,
 * shell quoting for --dry-run, and the lookup of programs on $PATH.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launch.h"

void genie_launch_err(const char *fmt, ...)
{
    char    msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    genie_one_line(msg);
    fprintf(stderr, "genie-launch: %s\n", msg);
    fflush(stderr);
}

genie_status_t genie_launch_argv_push(genie_launch_argv_t *a, const char *s)
{
    char *copy;

    if (a->n + 2 > a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 32;
        char **v   = realloc(a->v, cap * sizeof(*v));

        if (v == NULL) {
            genie_launch_err("out of memory building a command line");
            return GENIE_ERR_NOMEM;
        }
        a->v   = v;
        a->cap = cap;
    }
    copy = strdup(s);
    if (copy == NULL) {
        genie_launch_err("out of memory building a command line");
        return GENIE_ERR_NOMEM;
    }
    a->v[a->n++] = copy;
    a->v[a->n]   = NULL;
    return GENIE_OK;
}

genie_status_t genie_launch_argv_pushf(genie_launch_argv_t *a, const char *fmt, ...)
{
    char    buf[PATH_MAX + 64];
    va_list ap;
    int     w;

    va_start(ap, fmt);
    w = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= sizeof(buf)) {
        genie_launch_err("a command-line argument is longer than %zu bytes", sizeof(buf) - 1);
        return GENIE_ERR_INVALID;
    }
    return genie_launch_argv_push(a, buf);
}

void genie_launch_argv_free(genie_launch_argv_t *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i]);
    }
    free(a->v);
    a->v   = NULL;
    a->n   = 0;
    a->cap = 0;
}

static int is_shell_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("_@%+=:,./-", c) != NULL;
}

void genie_launch_shell_quote(FILE *out, const char *s)
{
    const unsigned char *p;
    int                  safe = s[0] != '\0', control = 0;

    for (p = (const unsigned char *)s; *p != '\0'; p++) {
        safe    = safe && is_shell_safe(*p);
        control = control || *p < 0x20 || *p == 0x7f;
    }
    if (safe) {
        fputs(s, out);
    } else if (control) {
        /* Keeps --dry-run's command on one line; $'...' is bash, not POSIX. */
        fputs("$'", out);
        for (p = (const unsigned char *)s; *p != '\0'; p++) {
            if (*p < 0x20 || *p == 0x7f || *p == '\'' || *p == '\\') {
                fprintf(out, "\\x%02x", *p);
            } else {
                fputc(*p, out);
            }
        }
        fputc('\'', out);
    } else {
        fputc('\'', out);
        for (p = (const unsigned char *)s; *p != '\0'; p++) {
            if (*p == '\'') {
                fputs("'\\''", out);
            } else {
                fputc(*p, out);
            }
        }
        fputc('\'', out);
    }
}

int genie_launch_is_executable(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

genie_status_t genie_launch_find_in_path(const char *name, char *out)
{
    const char *path = getenv("PATH");
    const char *p;

    if (strchr(name, '/') != NULL) {
        if (!genie_launch_is_executable(name) || strlen(name) >= PATH_MAX) {
            return GENIE_ERR_NOT_FOUND;
        }
        strcpy(out, name);
        return GENIE_OK;
    }
    if (path == NULL || path[0] == '\0') {
        path = "/usr/local/bin:/usr/bin:/bin";
    }
    for (p = path;;) {
        const char *end = strchr(p, ':');
        size_t      dir_len = end != NULL ? (size_t)(end - p) : strlen(p);
        char        cand[PATH_MAX];
        int         w;

        /* An empty PATH entry means the current directory. */
        w = dir_len == 0 ? snprintf(cand, sizeof(cand), "./%s", name)
                         : snprintf(cand, sizeof(cand), "%.*s/%s", (int)dir_len, p, name);
        /* Not realpath(): /usr/bin/mpirun is a symlink to orterun, and the
         * name the user knows is the one to show and run. */
        if (w > 0 && (size_t)w < sizeof(cand) && genie_launch_is_executable(cand)) {
            memcpy(out, cand, (size_t)w + 1);
            return GENIE_OK;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return GENIE_ERR_NOT_FOUND;
}

genie_status_t genie_launch_job_path(const genie_launch_t *L, const char *name, char *out)
{
    int w = snprintf(out, PATH_MAX, "%s/%s", L->job_dir, name);

    if (w < 0 || w >= PATH_MAX) {
        genie_launch_err("job directory path '%s' is too long; set TMPDIR to a shorter directory",
                         L->job_dir);
        return GENIE_ERR_INVALID;
    }
    return GENIE_OK;
}
