/*
 * genie-launch --driver-shim STATUSFILE -- CMD ARGS...   (internal)
 *
 * Rank 0 of every job: runs the user's command with GENIE_ROLE=driver,
 * forwards the usual termination signals to it, and records how it ended in
 * STATUSFILE (exit code, or 128 + signal number) before exiting with the
 * same code.  It exists because mpirun runs with --enable-recovery, after
 * which mpirun's own exit status no longer tells how rank 0 ended; the
 * launcher reads the file instead.
 *
 * The shim never calls MPI: the command (python) is the MPI process, and
 * Open MPI recognises it from the environment the shim passes on.
 *
 * The file is written as STATUSFILE.tmp, fsynced and renamed, so the
 * launcher sees either no file or the complete number.
 *
 * Before starting the command the shim also publishes "PID HOST" in
 * STATUSFILE.pid, so that genie-launch can hand Ctrl-C or SIGTERM to the
 * driver first (launch_run.c says why).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launch.h"

/* Signals passed on to the command (the rest keep their default action). */
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define N_FORWARDED ((int)(sizeof(forwarded) / sizeof(forwarded[0])))

/* Commit `text` as `path`: write path.tmp, fsync, rename. */
static genie_status_t commit_file(const char *path, const char *text, const char *what)
{
    char    tmp[PATH_MAX];
    size_t  len = strlen(text);
    int     fd, w;
    ssize_t n;

    w = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (w < 0 || (size_t)w >= sizeof(tmp)) {
        genie_launch_err("%s path '%s' is too long", what, path);
        return GENIE_ERR_INVALID;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        genie_launch_err("cannot write the %s to %s: %s", what, tmp, strerror(errno));
        return GENIE_ERR_IO;
    }
    n = write(fd, text, len);
    if (n != (ssize_t)len || fsync(fd) != 0) {
        genie_launch_err("cannot write the %s to %s: %s", what, tmp,
                         n < 0 || n == (ssize_t)len ? strerror(errno) : "short write");
        close(fd);
        unlink(tmp);
        return GENIE_ERR_IO;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        genie_launch_err("cannot commit the %s to %s: %s", what, path, strerror(errno));
        unlink(tmp);
        return GENIE_ERR_IO;
    }
    return GENIE_OK;
}

static genie_status_t write_status(const char *path, int code)
{
    char text[16];

    snprintf(text, sizeof(text), "%d\n", code);
    return commit_file(path, text, "driver status");
}

/* "PID HOST\n" in STATUSFILE.pid.  Not fatal if it fails: genie-launch then
 * passes signals to the runner instead. */
static void write_pid(const char *status_path)
{
    char path[PATH_MAX], host[256] = "", text[300];
    int  w = snprintf(path, sizeof(path), "%s.pid", status_path);

    if (w < 0 || (size_t)w >= sizeof(path)) {
        return;
    }
    gethostname(host, sizeof(host) - 1);
    snprintf(text, sizeof(text), "%ld %s\n", (long)getpid(), host);
    commit_file(path, text, "driver pid");
}

int genie_launch_shim_main(int argc, char **argv)
{
    const char     *status_path;
    sigset_t        set, old;
    pid_t           pid, parent = getpid();
    int             wstatus = 0, lost = 0, code;
    struct timespec tick = {1, 0};

    /* argv: genie-launch --driver-shim STATUSFILE -- CMD ARGS... */
    if (argc < 5 || strcmp(argv[3], "--") != 0 || argv[2][0] == '\0') {
        genie_launch_err("--driver-shim is internal; its form is --driver-shim STATUSFILE -- CMD "
                         "[ARGS...]");
        return GENIE_LAUNCH_EXIT_USAGE;
    }
    status_path = argv[2];
    if (setenv("GENIE_ROLE", "driver", 1) != 0) {
        genie_launch_err("cannot set GENIE_ROLE: %s", strerror(errno));
        return GENIE_LAUNCH_EXIT_USAGE;
    }

    /* Signals are taken synchronously with sigtimedwait: blocked from here
     * on, so none is lost between fork and wait, and no handler runs. */
    sigemptyset(&set);
    for (int i = 0; i < N_FORWARDED; i++) {
        sigaddset(&set, forwarded[i]);
    }
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    write_pid(status_path);

    pid = fork();
    if (pid < 0) {
        genie_launch_err("cannot start the driver: fork: %s", strerror(errno));
        code = 127;
        goto out;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        /* If the shim is killed outright (SIGKILL from mpirun), take the
         * driver with it rather than leave it running without a rank. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) {
            _exit(128 + SIGTERM);
        }
        execvp(argv[4], argv + 4);
        genie_launch_err("cannot run '%s': %s", argv[4], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }

    for (;;) {
        siginfo_t info;
        pid_t     w = waitpid(pid, &wstatus, WNOHANG);
        int       sig;

        if (w == pid) {
            break;
        }
        if (w < 0 && errno != EINTR) {
            genie_launch_err("cannot wait for the driver: %s", strerror(errno));
            lost = 1;
            break;
        }
        sig = sigtimedwait(&set, &info, &tick);
        if (sig > 0 && sig != SIGCHLD) {
            kill(pid, sig);
        }
    }
    if (lost) {
        code = 1;
    } else if (WIFEXITED(wstatus)) {
        code = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
        code = 128 + WTERMSIG(wstatus);
    } else {
        code = 1;
    }
    /* Whatever the command left running in the background (a shell's
     * "cmd &", a worker process) would outlive the job, since mpirun only
     * watches the shim.  Open MPI starts every rank in a process group of its
     * own, so when we are a launched rank leading our group, the group holds
     * just the command's leftovers and us; SIGTERM is blocked here, so it
     * ends only them.  Run any other way (by hand, where a shell may have
     * put a whole pipeline in our group), the shim leaves the group alone. */
    if (getpgrp() == getpid() &&
        (getenv("OMPI_COMM_WORLD_RANK") != NULL || getenv("SLURM_PROCID") != NULL)) {
        kill(0, SIGTERM);
    }
out:
    /* The mask stays: a signal still pending must not end the shim with a
     * different status than the one it records. */
    write_status(status_path, code);
    return code;
}
