/*
 * Running a job: the private job directory and its secret, the environment
 * every rank inherits, the runner (mpirun or srun) in its own process group,
 * and the wait for it.
 *
 * Signals are handled synchronously: SIGINT, SIGTERM, SIGHUP and SIGCHLD are
 * blocked before the job directory exists and read from a signalfd in the
 * wait loop, so no signal can arrive at a moment where the directory
 * would be left behind, and no async handler is needed.  The runner gets
 * its own process group so that a Ctrl-C at the terminal reaches us alone,
 * and we decide where it goes (wait_runner).
 *
 * The job ends when the runner exits.  The driver's end is the job's end:
 * when the driver's status file appears, the executors get
 * GENIE_LAUNCH_DRIVER_GRACE_S to finish on their own, then the group gets
 * SIGTERM and, GENIE_LAUNCH_KILL_AFTER_S later, SIGKILL (wait_runner).
 *
 * Open MPI puts every rank in a process group of its own, so kill(-pgid)
 * reaches mpirun only; mpirun, once signalled, takes its ranks down itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "launch.h"

genie_status_t genie_launch_job_template(genie_launch_t *L)
{
    const char *tmp = getenv("TMPDIR");
    size_t      n;
    int         w;

    if (tmp == NULL || tmp[0] == '\0') {
        tmp = "/tmp";
    }
    n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') {
        n--;
    }
    /* Room is left for "/multi-prog.conf" and friends below PATH_MAX. */
    w = snprintf(L->job_dir, sizeof(L->job_dir), "%.*s/genie-%ld-XXXXXX", (int)n, tmp,
                 (long)getpid());
    if (w < 0 || (size_t)w + 32 >= sizeof(L->job_dir)) {
        genie_launch_err("TMPDIR '%s' is too long for the job directory; set TMPDIR to a shorter "
                         "directory", tmp);
        return GENIE_ERR_INVALID;
    }
    return GENIE_OK;
}

/* Secret: GENIE_LAUNCH_SECRET_BYTES from getrandom() as lowercase hex + "\n",
 * in a file that did not exist before (O_EXCL) and only we can read. */
static genie_status_t write_secret(const char *path)
{
    unsigned char  raw[GENIE_LAUNCH_SECRET_BYTES];
    char           text[2 * GENIE_LAUNCH_SECRET_BYTES + 1];
    size_t         got = 0;
    int            fd;
    ssize_t        n;
    genie_status_t rc = GENIE_OK;

    while (got < sizeof(raw)) {
        n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            genie_launch_err("cannot make the job secret: getrandom: %s", strerror(errno));
            return GENIE_ERR_IO;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        static const char hex[] = "0123456789abcdef";

        text[2 * i]     = hex[raw[i] >> 4];
        text[2 * i + 1] = hex[raw[i] & 15];
    }
    text[sizeof(text) - 1] = '\n';

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        genie_launch_err("cannot create the job secret %s: %s", path, strerror(errno));
        rc = GENIE_ERR_IO;
        goto out;
    }
    /* 0600 exactly, whatever the umask. */
    if (fchmod(fd, 0600) != 0 || (n = write(fd, text, sizeof(text))) != (ssize_t)sizeof(text)) {
        genie_launch_err("cannot write the job secret %s: %s", path, strerror(errno));
        rc = GENIE_ERR_IO;
    }
    if (close(fd) != 0 && rc == GENIE_OK) {
        genie_launch_err("cannot write the job secret %s: %s", path, strerror(errno));
        rc = GENIE_ERR_IO;
    }
out:
    explicit_bzero(raw, sizeof(raw));
    explicit_bzero(text, sizeof(text));
    return rc;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path) != 0 ? -1 : 0;
}

/* rm -rf of the job directory; ranks may have left files of their own in it.
 * FTW_PHYS: symbolic links are removed, never followed. */
static void remove_job_dir(const char *dir)
{
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0 && errno != ENOENT) {
        genie_launch_err("could not remove the job directory %s: %s", dir, strerror(errno));
    }
}

/* *created_p is set once the directory exists, so that the caller removes
 * it on every later failure, and only then. */
static genie_status_t make_job_dir(genie_launch_t *L, int *created_p)
{
    char path[PATH_MAX];

    if (genie_launch_job_template(L) != GENIE_OK) {
        return GENIE_ERR_INVALID;
    }
    if (mkdtemp(L->job_dir) == NULL) {
        genie_launch_err("cannot create the job directory %s: %s; set TMPDIR to a writable "
                         "directory", L->job_dir, strerror(errno));
        return GENIE_ERR_IO;
    }
    *created_p = 1;
    if (chmod(L->job_dir, 0700) != 0) {
        genie_launch_err("cannot make the job directory %s private: %s", L->job_dir, strerror(errno));
        return GENIE_ERR_IO;
    }
    if (genie_launch_job_path(L, GENIE_LAUNCH_SECRET_FILE, path) != GENIE_OK) {
        return GENIE_ERR_INVALID;
    }
    return write_secret(path);
}

static genie_status_t export_vars(genie_launch_t *L)
{
    /* A stray GENIE_PHASE/GENIE_PHASE_RANK from the calling shell would make
     * every executor claim the same slice (genie-executor honours them, for
     * srun --genie-phases); ranks started here derive theirs from the rank. */
    unsetenv("GENIE_PHASE");
    unsetenv("GENIE_PHASE_RANK");
    for (int i = 0; i < GENIE_LAUNCH_N_VARS; i++) {
        if (L->var[i].name != NULL && !L->var[i].kept && setenv(L->var[i].name, L->var[i].value, 1) != 0) {
            genie_launch_err("cannot set %s: %s", L->var[i].name, strerror(errno));
            return GENIE_ERR_NOMEM;
        }
    }
    return GENIE_OK;
}

static genie_status_t write_multiprog(genie_launch_t *L)
{
    char path[PATH_MAX];
    int  fd;
    FILE *f;

    if (genie_launch_job_path(L, GENIE_LAUNCH_MULTIPROG_FILE, path) != GENIE_OK) {
        return GENIE_ERR_INVALID;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        genie_launch_err("cannot create %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return GENIE_ERR_IO;
    }
    if (genie_launch_srun_multiprog(L, f, "") != GENIE_OK) {
        fclose(f);
        return GENIE_ERR_INVALID;
    }
    if (fclose(f) != 0) {
        genie_launch_err("cannot write %s: %s", path, strerror(errno));
        return GENIE_ERR_IO;
    }
    return GENIE_OK;
}

/* Start argv[0] in a new process group with the caller's original signal
 * mask, and stdin_fd as its stdin if >= 0.  An exec failure comes back
 * through a close-on-exec pipe, so that it is reported here, as one line,
 * instead of as an odd exit status. */
static genie_status_t spawn(char *const *argv, const sigset_t *mask, int stdin_fd, pid_t *pid_p)
{
    int   pfd[2], err = 0;
    pid_t pid;

    if (pipe2(pfd, O_CLOEXEC) != 0) {
        genie_launch_err("cannot start %s: pipe: %s", argv[0], strerror(errno));
        return GENIE_ERR_IO;
    }
    pid = fork();
    if (pid < 0) {
        genie_launch_err("cannot start %s: fork: %s", argv[0], strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return GENIE_ERR_IO;
    }
    if (pid == 0) {
        close(pfd[0]);
        setpgid(0, 0);
        sigprocmask(SIG_SETMASK, mask, NULL);
        if (stdin_fd >= 0 && dup2(stdin_fd, STDIN_FILENO) < 0) {
            err = errno;
            if (write(pfd[1], &err, sizeof(err)) < 0) {
                /* nothing left to tell it with */
            }
            _exit(127);
        }
        execv(argv[0], argv);
        err = errno;
        if (write(pfd[1], &err, sizeof(err)) < 0) {
            /* nothing left to tell it with */
        }
        _exit(127);
    }
    close(pfd[1]);
    setpgid(pid, pid);   /* also here: whichever of the two runs first */
    while (read(pfd[0], &err, sizeof(err)) < 0 && errno == EINTR) {
    }
    close(pfd[0]);
    if (err != 0) {
        waitpid(pid, NULL, 0);
        genie_launch_err("cannot run %s: %s", argv[0], strerror(err));
        return GENIE_ERR_IO;
    }
    *pid_p = pid;
    return GENIE_OK;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The driver shim as a pidfd, once its "PID HOST" file is there, or -1.
 * Only a shim on this host counts (under srun it may run elsewhere), and
 * only while its status file is absent: the shim writes that file before it
 * exits, so if the file is still missing after pidfd_open, the pidfd is the
 * shim's and not a later process that reused the number. */
static int open_driver(const char *status_path)
{
    char  path[PATH_MAX], buf[320], host[256] = "", *end;
    int   fd, pfd;
    long  pid;
    ssize_t n;

    if (snprintf(path, sizeof(path), "%s.pid", status_path) >= (int)sizeof(path) ||
        (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        return -1;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    pid = strtol(buf, &end, 10);
    gethostname(host, sizeof(host) - 1);
    if (pid <= 1 || *end != ' ' || strncmp(end + 1, host, strlen(host)) != 0 ||
        end[1 + strlen(host)] != '\n') {
        return -1;
    }
    pfd = pidfd_open((pid_t)pid, 0);
    if (pfd >= 0 && access(status_path, F_OK) == 0) {
        close(pfd);
        return -1;
    }
    return pfd;
}

/* Terminal input for the driver.  The runner is in a background process
 * group, and Open MPI's mpirun does not read a terminal it is not in the
 * foreground of, so a driver reading stdin (input(), pdb) would wait
 * forever.  When our stdin is a terminal, the runner gets a pipe instead and
 * we copy what the terminal delivers into it; mpirun passes it on to rank 0.
 * Only while we are in the terminal's foreground: reading it from the
 * background would stop us with SIGTTIN. */
typedef struct relay {
    int    out;              /* pipe to the runner's stdin, non-blocking; -1: off */
    char   buf[4096];
    size_t len;              /* bytes in buf not yet written */
} relay_t;

static void relay_close(relay_t *r)
{
    if (r->out >= 0) {
        close(r->out);
        r->out = -1;
    }
}

static int relay_wants_input(const relay_t *r)
{
    return r->out >= 0 && r->len == 0 && tcgetpgrp(STDIN_FILENO) == getpgrp();
}

static void relay_input(relay_t *r)
{
    ssize_t n = read(STDIN_FILENO, r->buf, sizeof(r->buf));

    if (n > 0) {
        r->len = (size_t)n;
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        relay_close(r);   /* end of input (Ctrl-D) or a hung-up terminal: EOF for the driver */
    }
}

static void relay_output(relay_t *r)
{
    ssize_t n = write(r->out, r->buf, r->len);

    if (n > 0) {
        memmove(r->buf, r->buf + n, r->len - (size_t)n);
        r->len -= (size_t)n;
    } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
        relay_close(r);   /* the runner has stopped reading (EPIPE) */
        r->len = 0;
    }
}

/* Wait for the runner and return its wait status.  Signals arrive through
 * sfd (a signalfd for the blocked set), terminal input through r.
 *
 * Stopping, in order:
 *  - a first SIGINT/SIGTERM/SIGHUP goes to the driver (through the shim),
 *    not to the runner: mpirun, when signalled, kills its ranks' process
 *    groups with SIGTERM and SIGKILL a moment later, which can take the shim
 *    before it has recorded the driver's status.  The driver, given the
 *    signal, stops its executors and exits like any program on Ctrl-C;
 *  - a second signal, or a first one before the driver is running, goes to
 *    the runner (SIGINT to mpirun/srun itself, which then stops the job;
 *    SIGTERM and SIGHUP as SIGTERM to its process group);
 *  - GENIE_LAUNCH_KILL_AFTER_S after a signal, or GENIE_LAUNCH_DRIVER_GRACE_S
 *    after the driver has exited, the runner's group gets SIGTERM, and
 *    GENIE_LAUNCH_KILL_AFTER_S later SIGKILL. */
static int wait_runner(pid_t pid, int sfd, relay_t *r, const char *status_path)
{
    double term_at = 0, kill_at = 0;
    int    driver_done = 0, termed = 0, signals = 0, wstatus = 0, driver = -1;
    int    term_for_driver = 0;

    for (;;) {
        struct signalfd_siginfo ssi;
        struct pollfd           pfd[3];
        siginfo_t               info;
        nfds_t                  n = 0;
        int                     in_at = -1, out_at = -1;
        double                  t;

        /* WNOWAIT: the runner stays a zombie, so its pid (our process
         * group's id) cannot be reused before the group is killed below. */
        memset(&info, 0, sizeof(info));
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
            break;
        }
        t = now_s();
        if (!driver_done && access(status_path, F_OK) == 0) {
            driver_done = 1;
            relay_close(r);
            if (term_at == 0 || t + GENIE_LAUNCH_DRIVER_GRACE_S < term_at) {
                term_at         = t + GENIE_LAUNCH_DRIVER_GRACE_S;
                term_for_driver = signals == 0;
            }
        }
        if (driver < 0 && !driver_done) {
            driver = open_driver(status_path);
        }
        if (term_at != 0 && !termed && t >= term_at) {
            if (term_for_driver) {
                genie_launch_err("the driver has exited and the job is still running %d s later; "
                                 "terminating it", GENIE_LAUNCH_DRIVER_GRACE_S);
            }
            kill(-pid, SIGTERM);
            termed = 1;
            if (kill_at == 0) {
                kill_at = t + GENIE_LAUNCH_KILL_AFTER_S;
            }
        }
        if (kill_at != 0 && t >= kill_at) {
            kill(-pid, SIGKILL);
            kill_at = t + GENIE_LAUNCH_KILL_AFTER_S;   /* again later, should it linger */
        }

        /* 100 ms at most: the status file and the deadlines are polled. */
        pfd[n].fd     = sfd;
        pfd[n].events = POLLIN;
        n++;
        if (relay_wants_input(r)) {
            in_at         = (int)n;
            pfd[n].fd     = STDIN_FILENO;
            pfd[n].events = POLLIN;
            n++;
        }
        if (r->out >= 0 && r->len > 0) {
            out_at        = (int)n;
            pfd[n].fd     = r->out;
            pfd[n].events = POLLOUT;
            n++;
        }
        if (poll(pfd, n, 100) <= 0) {
            continue;
        }
        if (in_at >= 0 && pfd[in_at].revents != 0) {
            relay_input(r);
        }
        if (out_at >= 0 && pfd[out_at].revents != 0) {
            relay_output(r);
        }
        while (read(sfd, &ssi, sizeof(ssi)) == (ssize_t)sizeof(ssi)) {
            int sig = (int)ssi.ssi_signo;

            if (sig != SIGINT && sig != SIGTERM && sig != SIGHUP) {
                continue;   /* SIGCHLD: the runner is checked at the top */
            }
            t = now_s();
            signals++;
            /* The shim may have written its pid since the last poll: look
             * again, or the signal would go to mpirun, whose teardown can
             * kill the shim before it records the driver's status. */
            if (signals == 1 && driver < 0 && !driver_done) {
                driver = open_driver(status_path);
            }
            if (signals == 1 && driver >= 0 && !driver_done &&
                pidfd_send_signal(driver, sig, NULL, 0) == 0) {
                if (term_at == 0 || t + GENIE_LAUNCH_KILL_AFTER_S < term_at) {
                    term_at         = t + GENIE_LAUNCH_KILL_AFTER_S;
                    term_for_driver = 0;
                }
                continue;
            }
            if (sig == SIGINT) {
                kill(pid, SIGINT);
            } else {
                kill(-pid, SIGTERM);
                termed = 1;
            }
            if (kill_at == 0) {
                kill_at = t + GENIE_LAUNCH_KILL_AFTER_S;
            }
        }
    }
    if (driver >= 0) {
        close(driver);
    }
    /* Whatever of the runner's group outlived it goes with it. */
    kill(-pid, SIGKILL);
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    return wstatus;
}

/* The driver's exit status from the shim's file, or -1. */
static int read_status(const char *path)
{
    char    buf[16];
    int     fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t n;
    int     v = 0, digits = 0;

    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    for (char *p = buf; *p >= '0' && *p <= '9' && digits < 4; p++, digits++) {
        v = v * 10 + (*p - '0');
    }
    if (digits == 0 || digits == 4 || buf[digits] != '\n' || v > 255) {
        return -1;
    }
    return v;
}

int genie_launch_run(genie_launch_t *L)
{
    genie_launch_argv_t argv = {0};
    sigset_t            set, block, old;
    char                status_path[PATH_MAX];
    const char         *runner = L->use_srun ? "srun" : "mpirun";
    relay_t             relay = {.out = -1};
    pid_t               pid;
    int                 wstatus, code, rc, created = 0, sfd = -1, pipe_fd[2] = {-1, -1};

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    /* SIGPIPE too, without waiting for it: a write to the relay pipe after
     * the runner has gone then fails with EPIPE instead of killing us. */
    block = set;
    sigaddset(&block, SIGPIPE);
    sigprocmask(SIG_BLOCK, &block, &old);
    sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        genie_launch_err("cannot watch for signals: signalfd: %s", strerror(errno));
        code = GENIE_LAUNCH_EXIT_USAGE;
        goto out;
    }

    if (make_job_dir(L, &created) != GENIE_OK) {
        code = GENIE_LAUNCH_EXIT_USAGE;
        goto out;
    }
    genie_launch_fill_vars(L);
    if (export_vars(L) != GENIE_OK ||
        genie_launch_job_path(L, GENIE_LAUNCH_STATUS_FILE, status_path) != GENIE_OK) {
        code = GENIE_LAUNCH_EXIT_USAGE;
        goto out;
    }
    if (L->use_srun) {
        rc = write_multiprog(L);
        if (rc == GENIE_OK) {
            rc = genie_launch_srun_argv(L, &argv);
        }
    } else {
        rc = genie_launch_mpirun_argv(L, &argv);
    }
    if (rc == GENIE_OK && isatty(STDIN_FILENO)) {
        if (pipe2(pipe_fd, O_CLOEXEC) != 0 ||
            fcntl(pipe_fd[1], F_SETFL, fcntl(pipe_fd[1], F_GETFL) | O_NONBLOCK) != 0) {
            genie_launch_err("cannot make the stdin pipe: %s", strerror(errno));
            rc = GENIE_ERR_IO;
        }
    }
    if (rc != GENIE_OK || spawn(argv.v, &old, pipe_fd[0], &pid) != GENIE_OK) {
        code = GENIE_LAUNCH_EXIT_USAGE;
        goto out;
    }
    if (pipe_fd[0] >= 0) {
        close(pipe_fd[0]);
        pipe_fd[0] = -1;
        relay.out  = pipe_fd[1];
        pipe_fd[1] = -1;
    }

    wstatus = wait_runner(pid, sfd, &relay, status_path);
    code    = read_status(status_path);
    if (code < 0) {
        int rs = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
               : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : 1;

        genie_launch_err("the driver did not report an exit status (%s exited with %d)", runner, rs);
        code = rs != 0 ? rs : 1;
    }
out:
    relay_close(&relay);
    for (int i = 0; i < 2; i++) {
        if (pipe_fd[i] >= 0) {
            close(pipe_fd[i]);
        }
    }
    if (sfd >= 0) {
        close(sfd);
    }
    genie_launch_argv_free(&argv);
    if (created) {
        remove_job_dir(L->job_dir);
    }
    /* The signal mask stays as it is: a SIGINT still pending must not turn
     * the driver's exit status into a death by signal on the way out. */
    return code;
}
