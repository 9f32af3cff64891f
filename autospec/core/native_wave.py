"""C source of the wavefront (matrix-powers) polynomial applications, compiled with
:mod:`autospec.core.native_source`'s ``BODY`` (same value/index instantiations, same conventions)."""

WAVE = r"""
/* Matrix-powers wavefront (banded A: |i - j| <= w for every entry): all D steps of a polynomial in one
   sweep. Level k runs `lag` rows behind level k-1 (lag >= block + w), so the rows it reads were written by
   level k-1 in an earlier pass, the levels of one pass touch disjoint rows (no barrier between them), and
   the matrix rows, rho and x of the D·lag-row window stay in cache: A is read from memory about once.
   The per-row arithmetic is that of BODY's one-step kernels, in the same order (identical results).
   Intermediate vectors live in rings of `cap` rows (a power of two > 3·lag): level k's ring is
   ring + (k-1)·cap. */
/* The sweep: pass P runs level k (first_level <= k < first_level + levels) on rows [lo, hi) =
   [P - (k - first_level)·lag, + block) ∩ [0, n); the levels of one pass are shared among the threads. */
#define WAVE_SWEEP(levels, first_level, ...)                                                         \
    for (int64_t P = 0; P < n + ((levels) - 1) * lag; P += block) {                                 \
        _Pragma("omp for schedule(static)")                                                         \
        for (int64_t k = (first_level); k < (levels) + (first_level); k++) {                        \
            const int64_t start = P - (k - (first_level)) * lag;                                    \
            const int64_t lo = start < 0 ? 0 : start, hi = start + block > n ? n : start + block;   \
            if (lo < hi) { __VA_ARGS__ }                                                            \
        }                                                                                           \
    }

/* three-term application (steps k = 0..D-1 of FN(three_term)): x = p(A/s) r / s; rho is workspace */
void FN(three_term_wave)(int64_t n, const I *ptr, const I *idx, const V *val, double scale, int64_t D,
                         const double *a, const double *b, double c0, const V *r, V *rho, V *x, V *ring,
                         int64_t cap, int64_t lag, int64_t block, int nt) {
    const V inv_scale = (V)(1.0 / scale);
    const int64_t mask = cap - 1;
    #pragma omp parallel num_threads(nt) if(n >= PARALLEL_ROWS)
    WAVE_SWEEP(D, 0, {
        const double ak = a[k], bk = b[k];
        V *out = k < D - 1 ? ring + k * cap : NULL;
        const int last = k == D - 1;
        if (k == 0) {
            for (int64_t i = lo; i < hi; i++) {
                V s = 0;
                for (I j = ptr[i]; j < ptr[i + 1]; j++) s += val[j] * (V)(c0 * r[idx[j]]);
                V di = (V)(c0 * r[i]), rr = r[i] - s * inv_scale;
                rho[i] = rr;
                V v = (V)(ak * di) + (V)(bk * rr);
                if (out) out[i & mask] = v;
                x[i] = last ? (di + v) / (V)scale : di + v;
            }
        } else {
            const V *d = ring + (k - 1) * cap;
            for (int64_t i = lo; i < hi; i++) {
                V s = 0;
                for (I j = ptr[i]; j < ptr[i + 1]; j++) s += val[j] * d[idx[j] & mask];
                V rr = rho[i] - s * inv_scale;
                rho[i] = rr;
                V v = (V)(ak * d[i & mask]) + (V)(bk * rr);
                if (out) out[i & mask] = v;
                x[i] = last ? (x[i] + v) / (V)scale : x[i] + v;
            }
        }
    })
}

/* Chebyshev-basis application (steps k = 1..D of FN(cheb_basis)): y = sum_k c_k W_k(A/s) z / s, with
   W_0 = z, W_1 = t, W_k = 2t - W_{k-2}, t = (A W_{k-1} / s - theta W_{k-1}) / delta; W_k in ring k-1 */
void FN(cheb_basis_wave)(int64_t n, const I *ptr, const I *idx, const V *val, double scale, double theta,
                         double delta, int64_t D, const double *c, const V *z, V *y, V *ring, int64_t cap,
                         int64_t lag, int64_t block, int nt) {
    const V inv_scale = (V)(1.0 / scale), inv_delta = (V)(1.0 / delta);
    const int64_t mask = cap - 1;
    #pragma omp parallel num_threads(nt) if(n >= PARALLEL_ROWS)
    WAVE_SWEEP(D, 1, {
        const int64_t mu = k == 1 ? -1 : mask, mv = k == 2 ? -1 : mask;  /* z is whole, rings wrap */
        const V *u = k == 1 ? z : ring + (k - 2) * cap, *v = k == 2 ? z : ring + (k - 3) * cap;
        V *out = k < D ? ring + (k - 1) * cap : NULL;
        const double ck = c[k];
        const int last = k == D;
        for (int64_t i = lo; i < hi; i++) {
            V s = 0;
            for (I j = ptr[i]; j < ptr[i + 1]; j++) s += val[j] * u[idx[j] & mu];
            V ui = u[i & mu];
            V t = (s * inv_scale - (V)theta * ui) * inv_delta;
            V w = k == 1 ? t : (V)(2 * t) - v[i & mv];
            if (out) out[i & mask] = w;
            V yi = k == 1 ? (V)(c[0] * ui) : y[i];
            y[i] = last ? (yi + (V)(ck * w)) / (V)scale : yi + (V)(ck * w);
        }
    })
}

/* max |i - j| over the stored entries (the wavefront's lag) */
int64_t FN(bandwidth)(int64_t n, const I *ptr, const I *idx) {
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++)
        for (I j = ptr[i]; j < ptr[i + 1]; j++) {
            int64_t d = (int64_t)idx[j] - i;
            if (d < 0) d = -d;
            if (d > w) w = d;
        }
    return w;
}

"""
