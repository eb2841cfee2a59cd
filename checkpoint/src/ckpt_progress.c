/*
 * The progress hook (genie_ckpt_set_progress): the rank-file writer and the
 * KV reader call ckpt_progress() between pieces of their I/O, and it calls
 * the hook when 10 ms or 4 MiB have passed since the hook's last call.
 *
 * Why: an executor writing a rank file of several GB spends seconds inside
 * one CHECKPOINT request; the driver meanwhile probes it (PING) to tell a
 * busy executor from a stopped one.  The hook lets the executor answer
 * those probes from inside the write.  Both limits: time, because a slow
 * disk must still give answers often; bytes, so that a fast one gives a
 * known number of calls (what the unit test counts).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "ckpt_int.h"

#define PROGRESS_NS    (10 * 1000 * 1000ull)    /* 10 ms */
#define PROGRESS_BYTES ((uint64_t)CKPT_PROGRESS_PIECE)

static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*progress_fn)(void *arg);
static void   *progress_arg;
static uint64_t progress_last_ns;      /* when the hook was last called */
static uint64_t progress_bytes;        /* bytes moved since then        */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void genie_ckpt_set_progress(void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&progress_lock);
    progress_fn = fn;
    progress_arg = arg;
    progress_last_ns = now_ns();
    progress_bytes = 0;
    pthread_mutex_unlock(&progress_lock);
}

void ckpt_progress(uint64_t bytes)
{
    void (*fn)(void *) = NULL;
    void    *arg = NULL;
    uint64_t t;

    pthread_mutex_lock(&progress_lock);
    if (progress_fn != NULL) {
        t = now_ns();
        progress_bytes += bytes;
        if (t - progress_last_ns >= PROGRESS_NS || progress_bytes >= PROGRESS_BYTES) {
            fn = progress_fn;
            arg = progress_arg;
            progress_last_ns = t;
            progress_bytes = 0;
        }
    }
    pthread_mutex_unlock(&progress_lock);
    if (fn != NULL) {
        fn(arg);                         /* outside the lock: fn may take its time */
    }
}
