"""C source of the fused CPU kernels (compiled by :mod:`autospec.core.native`).

``BODY`` is written once over the value type ``V`` and index type ``I`` and instantiated four
times (float64/float32 values × int32/int64 indices) by ``MAIN``. Every kernel makes one pass over
the CSR arrays and the vectors it names; vectors are row-major ``(n, k)`` blocks, reductions
accumulate in double. ``-ffp-contract=off`` keeps each update's rounding that of the unfused torch
expression (no FMA contraction) except that a per-row division by s or δ is a product with the
reciprocal (a division per row costs as much as the memory traffic of a vector), so fused and
unfused paths agree to an ulp or two per step.
"""

BODY = r"""
/* acc[c] = sum_j val[j] * pre(src[idx[j], c0 + c]) for c < kc: row i of A times kc columns of an n x k
   row-major block (pre multiplies by `first_scale` when `first`, as the one-column kernels do). Inlined
   where kc is a constant (FOR_COLUMN_BLOCKS), so the column loop unrolls into registers: with a
   run-time kc it does not, and k columns would cost more than k one-column passes. */
static inline __attribute__((always_inline)) void FN(row_times)(const I *ptr, const I *idx, const V *val, int64_t i,
                                                                const V *src, int64_t k, int64_t c0, const int64_t kc,
                                                                int first, double first_scale, V *acc) {
    for (int64_t c = 0; c < kc; c++) acc[c] = 0;
    for (I j = ptr[i]; j < ptr[i + 1]; j++) {
        const V a = val[j], *sj = src + (int64_t)idx[j] * k + c0;
        if (first) for (int64_t c = 0; c < kc; c++) acc[c] += a * (V)(first_scale * sj[c]);
        else for (int64_t c = 0; c < kc; c++) acc[c] += a * sj[c];
    }
}

static inline __attribute__((always_inline)) void FN(spmm_row)(const I *ptr, const I *idx, const V *val, int64_t i,
                                                               double scale, const V *x, V *y, int64_t k, int64_t c0,
                                                               const int64_t kc) {
    V acc[BLOCK];
    FN(row_times)(ptr, idx, val, i, x, k, c0, kc, 0, 1.0, acc);
    for (int64_t c = 0; c < kc; c++) y[i * k + c0 + c] = (V)(acc[c] * scale);
}

/* y = scale * A x  (x, y: n x k row-major) */
void FN(spmm)(int64_t n, int64_t k, const I *ptr, const I *idx, const V *val, double scale,
              const V *x, V *y, int nt) {
    if (k == 1) {
        #pragma omp parallel for schedule(static) num_threads(nt) if(n >= PARALLEL_ROWS)
        for (int64_t i = 0; i < n; i++) {
            V s = 0;
            for (I j = ptr[i]; j < ptr[i + 1]; j++) s += val[j] * x[idx[j]];
            y[i] = (V)(s * scale);
        }
        return;
    }
    #pragma omp parallel for schedule(static) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        #define SPMM_COLUMNS(KC) FN(spmm_row)(ptr, idx, val, i, scale, x, y, k, c0_, KC)
        FOR_COLUMN_BLOCKS(k, SPMM_COLUMNS)
        #undef SPMM_COLUMNS
    }
}

/* q = scale * A p and returns p.q  (CG's product and curvature in one pass) */
double FN(spmv_dot)(int64_t n, const I *ptr, const I *idx, const V *val, double scale,
                    const V *p, V *q, int nt) {
    double dot = 0;
    #pragma omp parallel for schedule(static) reduction(+:dot) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        V s = 0;
        for (I j = ptr[i]; j < ptr[i + 1]; j++) s += val[j] * p[idx[j]];
        s = (V)(s * scale);
        q[i] = s;
        dot += (double)p[i] * s;
    }
    return dot;
}

/* three-term step (scale = s): rho -= A d / s;  dn = a d + b rho;  x = (x + dn) / final.
   first: d = c0 r, rho = r, x = d are read from r (no set-up passes); final = s on the last step */
void FN(three_term)(int64_t n, const I *ptr, const I *idx, const V *val, double scale, double a, double b,
                    int first, double c0, const V *d, V *dn, V *rho, V *x, double final, int nt) {
    const V inv_scale = (V)(1.0 / scale);  /* a product, not a division, per row: within an ulp of A d / s */
    const int last = final != 1.0;
    #pragma omp parallel for schedule(static) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        V s = 0, di, ri, xi;
        if (first) {
            for (I j = ptr[i]; j < ptr[i + 1]; j++) s += val[j] * (V)(c0 * d[idx[j]]);
            di = (V)(c0 * d[i]); ri = d[i]; xi = di;
        } else {
            for (I j = ptr[i]; j < ptr[i + 1]; j++) s += val[j] * d[idx[j]];
            di = d[i]; ri = rho[i]; xi = x[i];
        }
        V r = ri - s * inv_scale;
        rho[i] = r;
        V v = (V)(a * di) + (V)(b * r);
        dn[i] = v;
        x[i] = last ? (xi + v) / (V)final : xi + v;
    }
}

/* Chebyshev-basis step: t = (A u / s - theta u) / delta;  w = first ? t : 2 t - v_in;  v_out = w;
   y = (y + c w) / final, y read as c0 u on the first step */
void FN(cheb_basis)(int64_t n, const I *ptr, const I *idx, const V *val, double scale, double theta,
                    double delta, double c, int first, double c0, const V *u, const V *v_in, V *v_out, V *y,
                    double final, int nt) {
    const V inv_scale = (V)(1.0 / scale), inv_delta = (V)(1.0 / delta);
    const int last = final != 1.0;
    #pragma omp parallel for schedule(static) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        V s = 0;
        for (I j = ptr[i]; j < ptr[i + 1]; j++) s += val[j] * u[idx[j]];
        V t = (s * inv_scale - (V)theta * u[i]) * inv_delta;
        V w = first ? t : (V)(2 * t) - v_in[i];
        v_out[i] = w;
        V yi = first ? (V)(c0 * u[i]) : y[i];
        y[i] = last ? (yi + (V)(c * w)) / (V)final : yi + (V)(c * w);
    }
}

/* The two steps above on n x k row-major blocks: one matrix read for k columns, a row's sums in
   registers (FN(row_times)), the same per-element arithmetic. */
static inline __attribute__((always_inline)) void FN(three_term_row)(
        const I *ptr, const I *idx, const V *val, int64_t i, int64_t k, int64_t c0, const int64_t kc, V inv_scale,
        double a, double b, int first, double cf0, const V *d, V *dn, V *rho, V *x, int last, double final) {
    V acc[BLOCK];
    FN(row_times)(ptr, idx, val, i, d, k, c0, kc, first, cf0, acc);
    for (int64_t c = 0; c < kc; c++) {
        const int64_t e = i * k + c0 + c;
        V di, ri, xi;
        if (first) { di = (V)(cf0 * d[e]); ri = d[e]; xi = di; }
        else { di = d[e]; ri = rho[e]; xi = x[e]; }
        V r = ri - acc[c] * inv_scale;
        rho[e] = r;
        V v = (V)(a * di) + (V)(b * r);
        dn[e] = v;
        x[e] = last ? (xi + v) / (V)final : xi + v;
    }
}

void FN(three_term_block)(int64_t n, int64_t k, const I *ptr, const I *idx, const V *val, double scale,
                          double a, double b, int first, double c0, const V *d, V *dn, V *rho, V *x,
                          double final, int nt) {
    const V inv_scale = (V)(1.0 / scale);
    const int last = final != 1.0;
    #pragma omp parallel for schedule(static) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        #define THREE_TERM_COLUMNS(KC) \
            FN(three_term_row)(ptr, idx, val, i, k, c0_, KC, inv_scale, a, b, first, c0, d, dn, rho, x, last, final)
        FOR_COLUMN_BLOCKS(k, THREE_TERM_COLUMNS)
        #undef THREE_TERM_COLUMNS
    }
}

static inline __attribute__((always_inline)) void FN(cheb_basis_row)(
        const I *ptr, const I *idx, const V *val, int64_t i, int64_t k, int64_t c0, const int64_t kc, V inv_scale,
        V inv_delta, double theta, double cf, int first, double cf0, const V *u, const V *v_in, V *v_out, V *y,
        int last, double final) {
    V acc[BLOCK];
    FN(row_times)(ptr, idx, val, i, u, k, c0, kc, 0, 1.0, acc);
    for (int64_t c = 0; c < kc; c++) {
        const int64_t e = i * k + c0 + c;
        V t = (acc[c] * inv_scale - (V)theta * u[e]) * inv_delta;
        V w = first ? t : (V)(2 * t) - v_in[e];
        v_out[e] = w;
        V yi = first ? (V)(cf0 * u[e]) : y[e];
        y[e] = last ? (yi + (V)(cf * w)) / (V)final : yi + (V)(cf * w);
    }
}

void FN(cheb_basis_block)(int64_t n, int64_t k, const I *ptr, const I *idx, const V *val, double scale,
                          double theta, double delta, double cf, int first, double c0, const V *u, const V *v_in,
                          V *v_out, V *y, double final, int nt) {
    const V inv_scale = (V)(1.0 / scale), inv_delta = (V)(1.0 / delta);
    const int last = final != 1.0;
    #pragma omp parallel for schedule(static) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        #define CHEB_COLUMNS(KC) FN(cheb_basis_row)(ptr, idx, val, i, k, c0_, KC, inv_scale, inv_delta, theta, cf, \
                                                    first, c0, u, v_in, v_out, y, last, final)
        FOR_COLUMN_BLOCKS(k, CHEB_COLUMNS)
        #undef CHEB_COLUMNS
    }
}

/* A step of per-column Chebyshev filters on an n x k block (ChASE-style degrees), the columns'
   rescaling folded in: with stored C, P and per-column scales sc, sp (the vectors are sc_q C_q and
   sp_q P_q), writes N = 2 sc (A C - mid C)/half - sp P over P and the column maxima max_i |N_iq| into
   colmax (zeroed by the caller). */
static inline __attribute__((always_inline)) void FN(column_row)(
        const I *ptr, const I *idx, const V *val, int64_t i, int64_t k, int64_t c0, const int64_t kc, V mid,
        double inv_half, const double *sc, const double *sp, const V *C, V *P, double *colmax) {
    V acc[BLOCK];
    FN(row_times)(ptr, idx, val, i, C, k, c0, kc, 0, 1.0, acc);
    for (int64_t c = 0; c < kc; c++) {
        const int64_t e = i * k + c0 + c, q = c0 + c;
        V nv = (V)(2 * sc[q] * (acc[c] - mid * C[e]) * inv_half) - (V)(sp[q] * P[e]);
        P[e] = nv;
        double m = nv < 0 ? -(double)nv : (double)nv;
        if (m > colmax[q]) colmax[q] = m;
    }
}

void FN(column_step)(int64_t n, int64_t k, const I *ptr, const I *idx, const V *val, double mid, double half,
                     const double *sc, const double *sp, const V *C, V *P, double *colmax, int nt) {
    const double inv_half = 1.0 / half;
    #pragma omp parallel for schedule(static) reduction(max:colmax[:k]) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        #define COLUMN_COLUMNS(KC) FN(column_row)(ptr, idx, val, i, k, c0_, KC, (V)mid, inv_half, sc, sp, C, P, colmax)
        FOR_COLUMN_BLOCKS(k, COLUMN_COLUMNS)
        #undef COLUMN_COLUMNS
    }
}

/* Lanczos: q = inv qt (the previous step's division folded in), w = A q - beta qp;  returns q.w.
   q is written to qn unless it is NULL (qn may be qp: row i of qp is read before it is written). */
double FN(lanczos_step)(int64_t n, const I *ptr, const I *idx, const V *val, double inv, double beta,
                        const V *qt, V *qp, V *qn, V *w, int nt) {
    const V scale = (V)inv;
    double dot = 0;
    #pragma omp parallel for schedule(static) reduction(+:dot) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        V s = 0;
        for (I j = ptr[i]; j < ptr[i + 1]; j++) s += val[j] * qt[idx[j]];
        const V qi = qt[i] * scale;
        s = s * scale - (V)(beta * qp[i]);
        if (qn) qn[i] = qi;
        w[i] = s;
        dot += (double)qi * s;
    }
    return dot;
}
"""

VECTOR = r"""
/* x += alpha p;  r -= alpha q;  returns sum_i w2_i r_i^2 (w2 = NULL: weights 1) */
double FN(cg_update)(int64_t n, double alpha, const V *p, const V *q, V *x, V *r, const V *w2, int nt) {
    double rr = 0;
    #pragma omp parallel for schedule(static) reduction(+:rr) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        x[i] += (V)(alpha * p[i]);
        V ri = r[i] - (V)(alpha * q[i]);
        r[i] = ri;
        double rd = (double)ri * ri;
        rr += w2 ? w2[i] * rd : rd;
    }
    return rr;
}

/* p = z + beta p */
void FN(direction)(int64_t n, double beta, const V *z, V *p, int nt) {
    #pragma omp parallel for schedule(static) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) p[i] = z[i] + (V)(beta * p[i]);
}

/* w -= alpha q;  returns |w|^2 */
double FN(axpy_norm)(int64_t n, double alpha, const V *q, V *w, int nt) {
    double nn = 0;
    #pragma omp parallel for schedule(static) reduction(+:nn) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        V wi = w[i] - (V)(alpha * q[i]);
        w[i] = wi;
        nn += (double)wi * wi;
    }
    return nn;
}

/* blocks n x k (row-major): x += alpha_c p;  r -= alpha_c q;  rr_c = sum_i w2_i r_ic^2 */
void FN(cg_update_block)(int64_t n, int64_t k, const double *alpha, const V *p, const V *q, V *x, V *r,
                         const V *w2, double *rr, int nt) {
    for (int64_t c = 0; c < k; c++) rr[c] = 0;
    #pragma omp parallel for schedule(static) reduction(+:rr[:k]) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) {
        for (int64_t c = 0; c < k; c++) {
            const int64_t e = i * k + c;
            x[e] += (V)(alpha[c] * p[e]);
            V ri = r[e] - (V)(alpha[c] * q[e]);
            r[e] = ri;
            double rd = (double)ri * ri;
            rr[c] += w2 ? w2[e] * rd : rd;
        }
    }
}

/* blocks: p = z + beta_c p */
void FN(direction_block)(int64_t n, int64_t k, const double *beta, const V *z, V *p, int nt) {
    #pragma omp parallel for schedule(static) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < k; c++) p[i * k + c] = z[i * k + c] + (V)(beta[c] * p[i * k + c]);
}

/* returns u.v */
double FN(dot)(int64_t n, const V *u, const V *v, int nt) {
    double s = 0;
    #pragma omp parallel for schedule(static) reduction(+:s) num_threads(nt) if(n >= PARALLEL_ROWS)
    for (int64_t i = 0; i < n; i++) s += (double)u[i] * v[i];
    return s;
}
"""

MAIN = r"""
#include <stdint.h>
#include <stddef.h>
#define BLOCK 8
/* below this many rows a kernel call is too short for a parallel region's fork and barriers to pay (and
   on a loaded machine a descheduled thread stalls every one of them): one thread */
#define PARALLEL_ROWS 100000
/* CALL(kc) for each chunk of at most BLOCK columns (c0_ its first), kc a compile-time constant */
#define FOR_COLUMN_BLOCKS(k, CALL)                                                   \
    for (int64_t c0_ = 0; c0_ < (k); c0_ += BLOCK) {                                 \
        const int64_t kc_ = (k) - c0_ < BLOCK ? (k) - c0_ : BLOCK;                   \
        switch (kc_) {                                                               \
            case 8: CALL(8); break;                                                  \
            case 7: CALL(7); break;                                                  \
            case 6: CALL(6); break;                                                  \
            case 5: CALL(5); break;                                                  \
            case 4: CALL(4); break;                                                  \
            case 3: CALL(3); break;                                                  \
            case 2: CALL(2); break;                                                  \
            default: CALL(1);                                                        \
        }                                                                            \
    }
#define V double
#define FN(name) name##_f64
#include "vector.h"
#undef FN
#define FN(name) name##_f64_i32
#define I int32_t
#include "body.h"
#undef FN
#undef I
#define FN(name) name##_f64_i64
#define I int64_t
#include "body.h"
#undef FN
#undef I
#undef V
#define V float
#define FN(name) name##_f32
#include "vector.h"
#undef FN
#define FN(name) name##_f32_i32
#define I int32_t
#include "body.h"
#undef FN
#undef I
#define FN(name) name##_f32_i64
#define I int64_t
#include "body.h"
"""
