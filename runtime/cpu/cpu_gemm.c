/*
 * One sgemm entry point for every kernel, parallelised with our own OpenMP
 * threads around single-threaded OpenBLAS calls.
 *
 * Why not OpenBLAS's threads: the pthread build of OpenBLAS keeps a second
 * thread pool whose workers busy-wait after each call, while our OpenMP
 * workers busy-wait after each elementwise kernel; on a transformer layer
 * (bias copy, GEMM, activation, GEMM, ...) the two pools steal cores from each
 * other and a layer ran about twice as slow as with one pool (measured on the
 * 2-core development VM: 4 x (768x3072 + 3072x768) GEMMs with elementwise work
 * in between, M = 1/16/128: 14/17/62 ms with OpenBLAS threads vs 6/9/32 ms with
 * this scheme).  So the backend sets OpenBLAS to one thread at creation and
 * splits each product here: along N (columns of C; each thread streams its
 * own slice of the weight, which also serves decode's M = 1) when N is wide
 * enough, else along M.  Slices are multiples of 16 columns so every thread's
 * stores stay vector- and cache-line aligned.
 */
#include "cpu_internal.h"

#include <cblas.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many multiply-adds a product stays on one thread. */
#define GEMM_PAR_MIN (1 << 17)

/* C (1, N) = alpha * a (1, K) op(B) + beta * C as a matrix-vector product:
 * decode's M = 1 products are weight-streaming, and sgemv reads B once where
 * sgemm would first pack it. */
static void gemv_row(int trans_a, int trans_b, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                     float *C)
{
    int incx = trans_a ? (int)lda : 1;

    if (trans_b) {          /* B stored (N, K): C = B_stored a */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, alpha, B, (int)ldb, A, incx,
                    beta, C, 1);
    } else {                /* B stored (K, N): C = B_stored^T a */
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)N, alpha, B, (int)ldb, A, incx,
                    beta, C, 1);
    }
}

void genie_cpu_sgemm(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                     float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                     float beta, float *C, int64_t ldc)
{
    CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    int nt = n_threads;
    int split_n;

    if (M <= 0 || N <= 0) {
        return;
    }
    if (M * N * K < GEMM_PAR_MIN) {
        nt = 1;
    }
    /* Prefer column slices (weights stream once per thread); fall back to
     * row slices for narrow outputs such as attention's P V. */
    split_n = N >= 16 * (int64_t)nt && (N >= 64 * (int64_t)nt || M < nt);
    if (M == 1 && K > 0) {
        if (nt <= 1 || N < 16 * (int64_t)nt) {
            gemv_row(trans_a, trans_b, N, K, alpha, A, lda, B, ldb, beta, C);
            return;
        }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), n = omp_get_num_threads();
            int64_t chunk = ((N + n - 1) / n + 15) / 16 * 16;
            int64_t n0 = t * chunk, n1 = n0 + chunk < N ? n0 + chunk : N;
            if (n1 > n0) {
                gemv_row(trans_a, trans_b, n1 - n0, K, alpha, A, lda,
                         trans_b ? B + n0 * ldb : B + n0, ldb, beta, C + n0);
            }
        }
#else
        gemv_row(trans_a, trans_b, N, K, alpha, A, lda, B, ldb, beta, C);
#endif
        return;
    }
    if (nt <= 1 || (!split_n && M < nt)) {
        cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, alpha, A, (int)lda, B,
                    (int)ldb, beta, C, (int)ldc);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        if (split_n) {
            int64_t chunk = ((N + n - 1) / n + 15) / 16 * 16;
            int64_t n0 = t * chunk, n1 = n0 + chunk < N ? n0 + chunk : N;
            if (n1 > n0) {
                /* Columns n0..n1 of op(B): B + n0 (NoTrans) or rows of B (Trans). */
                const float *Bs = trans_b ? B + n0 * ldb : B + n0;
                cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)(n1 - n0), (int)K, alpha, A,
                            (int)lda, Bs, (int)ldb, beta, C + n0, (int)ldc);
            }
        } else {
            int64_t chunk = (M + n - 1) / n;
            int64_t m0 = t * chunk, m1 = m0 + chunk < M ? m0 + chunk : M;
            if (m1 > m0) {
                const float *As = trans_a ? A + m0 : A + m0 * lda;
                cblas_sgemm(CblasRowMajor, ta, tb, (int)(m1 - m0), (int)N, (int)K, alpha, As,
                            (int)lda, B, (int)ldb, beta, C + m0 * ldc, (int)ldc);
            }
        }
    }
#else
    cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb,
                beta, C, (int)ldc);
#endif
}
