/*
 * The progress hook (genie_ckpt_set_progress): the rank-file writer and the
 * KV reader do their I/O in pieces and call ckpt_progress() after each; it
 * calls the hook when 10 ms or 4 MiB have passed since the hook's last
 * call.
 *
 * Why: an executor writing a rank file of several GB spends seconds inside
 * one CHECKPOINT request; the driver meanwhile probes it (PING) to tell a
 * busy executor from a stopped one.  The hook lets the executor answer
 * those probes from inside the write, at least every 100 ms of I/O.  Both
 * limits: time, because a slow disk must still give answers often; bytes,
 * so that a fast one gives a known number of calls (what the unit test
 * counts).
 *
 * The piece size: the hook can only run between two pieces, so a piece
 * must take well under 100 ms.  4 MiB does on a disk of 100 MB/s, not on a
 * slow network file system; so while a hook is set the piece size follows
 * the measured speed: halved (down to 256 KiB) while a piece takes over
 * 25 ms, doubled (up to 4 MiB) after a full piece that took under 6 ms.  It
 * starts at 256 KiB when the hook is set, reaching 4 MiB after about 1 MiB
 * on a fast disk.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "ckpt_int.h"

#define PROGRESS_NS    (10 * 1000 * 1000ull)    /* 10 ms: the hook at most this far apart (+ a piece) */
#define PROGRESS_BYTES ((uint64_t)4 << 20)      /* ... or this many bytes apart                       */
#define PIECE_SLOW_NS  (25 * 1000 * 1000ull)    /* a piece slower than this: smaller pieces           */
#define PIECE_FAST_NS  (6 * 1000 * 1000ull)     /* a full piece faster than this: larger ones          */

static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*progress_fn)(void *arg);
static void   *progress_arg;
static uint64_t progress_last_ns;      /* when the hook was last called */
static uint64_t progress_bytes;        /* bytes moved since then        */
static size_t   progress_piece = CKPT_PIECE_MAX;

uint64_t ckpt_now_ns(void)
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
    progress_last_ns = ckpt_now_ns();
    progress_bytes = 0;
    progress_piece = fn != NULL ? CKPT_PIECE_MIN : CKPT_PIECE_MAX;
    pthread_mutex_unlock(&progress_lock);
}

size_t ckpt_progress_piece(void)
{
    size_t piece;

    pthread_mutex_lock(&progress_lock);
    piece = progress_fn != NULL ? progress_piece : CKPT_PIECE_MAX;
    pthread_mutex_unlock(&progress_lock);
    return piece;
}

/* The next piece size after a piece of len bytes took io_ns (lock held). */
static void adapt(uint64_t len, uint64_t io_ns)
{
    if (len == 0) {
        return;
    }
    if (io_ns > PIECE_SLOW_NS) {
        /* the largest piece that this speed moves in PIECE_SLOW_NS */
        while (progress_piece > CKPT_PIECE_MIN && (uint64_t)progress_piece * io_ns > PIECE_SLOW_NS * len) {
            progress_piece /= 2;
        }
    } else if (io_ns < PIECE_FAST_NS && len >= progress_piece && progress_piece < CKPT_PIECE_MAX) {
        progress_piece *= 2;
    }
}

void ckpt_progress(uint64_t bytes, uint64_t len, uint64_t io_ns)
{
    void (*fn)(void *) = NULL;
    void    *arg = NULL;
    uint64_t t;

    pthread_mutex_lock(&progress_lock);
    if (progress_fn != NULL) {
        adapt(len, io_ns);
        t = ckpt_now_ns();
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
