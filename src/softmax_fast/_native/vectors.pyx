"""Passes over parameter-sized float64 vectors, threaded, for large models: the L-BFGS solver's
passes over its pair history and its trial points (softmax_fast._lbfgs), and the objective's
penalized gradient (softmax_fast._objective).

The history ``Z`` holds R vectors of n values (the pairs' s and y), float32 or float64, in
blocks of :data:`HISTORY_BLOCK` columns: shape ``(n_blocks, R, HISTORY_BLOCK)`` with
``n_blocks = ceil(n / HISTORY_BLOCK)``, so that row r is ``Z[:, r, :].ravel()[:n]`` and a pass
over the history reads one contiguous stream (:func:`history_rows` makes one).  The gradient
``g``, the direction ``d`` and every sum are float64.  Each function is one pass over the rows
it names, reading each once (the C loops are in ``_sfvectors.h``), threaded over column ranges:
``n_threads`` contiguous ranges of whole blocks, each thread's sums added in range order
afterwards, so results depend on the inputs and the thread count only (bit-identical between
repeated calls).

No trust in the caller's shapes: every index and length is checked before the loops run.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange

from ._common cimport intp_t


cdef extern from "_sfvectors.h" nogil:
    int SF_HIST_BLOCK
    void sf_hist_dots_d(const double *Z, Py_ssize_t R, const intp_t *rows, Py_ssize_t nr,
                        const double *g, Py_ssize_t yrow, Py_ssize_t c0, Py_ssize_t c1,
                        double *out_g, double *out_y)
    void sf_hist_dots_f(const float *Z, Py_ssize_t R, const intp_t *rows, Py_ssize_t nr,
                        const double *g, Py_ssize_t yrow, Py_ssize_t c0, Py_ssize_t c1,
                        double *out_g, double *out_y)
    double sf_hist_combine_d(const double *Z, Py_ssize_t R, const intp_t *rows,
                             Py_ssize_t nr, const double *coef, double cg, const double *g,
                             double *d, Py_ssize_t c0, Py_ssize_t c1)
    double sf_hist_combine_f(const float *Z, Py_ssize_t R, const intp_t *rows,
                             Py_ssize_t nr, const double *coef, double cg, const double *g,
                             double *d, Py_ssize_t c0, Py_ssize_t c1)
    void sf_hist_pair_d(double *Z, Py_ssize_t R, Py_ssize_t srow, Py_ssize_t yrow,
                        const double *d, double step, const double *gn, double *g,
                        Py_ssize_t c0, Py_ssize_t c1, double *out)
    void sf_hist_pair_f(float *Z, Py_ssize_t R, Py_ssize_t srow, Py_ssize_t yrow,
                        const double *d, double step, const double *gn, double *g,
                        Py_ssize_t c0, Py_ssize_t c1, double *out)

    void sf_axpy_to(const double *x, const double *d, double step, double *xt, Py_ssize_t c0,
                    Py_ssize_t c1)
    double sf_penalized(const double *w, const double *dw, double alpha, double *out,
                        Py_ssize_t c0, Py_ssize_t c1)

HISTORY_BLOCK = SF_HIST_BLOCK
"""Columns of a block of the history layout."""


def history_shape(n_rows, n):
    """The shape of a history of ``n_rows`` vectors of ``n`` values."""
    return (-(-n // SF_HIST_BLOCK), n_rows, SF_HIST_BLOCK)


def history_rows(Z, n):
    """The history's rows as an (R, n) array (a copy)."""
    return np.asarray(Z).transpose(1, 0, 2).reshape(Z.shape[1], -1)[:, :n].copy()


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    # ceil(a / b) for a >= 0, b > 0 (C division truncates: no -(-a // b) here)
    return (a + b - 1) // b


cdef inline Py_ssize_t _range_start(Py_ssize_t n_blocks, Py_ssize_t n, Py_ssize_t t,
                                    Py_ssize_t n_ranges) noexcept nogil:
    # range t of n_ranges: whole blocks, the last one ending at n
    return n_blocks * t // n_ranges * SF_HIST_BLOCK if t < n_ranges else n


cdef Py_ssize_t _check(shape, Py_ssize_t n, const intp_t[::1] rows, int n_threads,
                       Py_ssize_t extra_row=-1) except -1:
    cdef Py_ssize_t r, n_rows = shape[1]
    if tuple(shape[:3]) != history_shape(n_rows, n):
        raise ValueError(
            f"Z: shape {tuple(shape[:3])}, expected {history_shape(n_rows, n)} for {n} columns"
        )
    for r in range(rows.shape[0]):
        if not 0 <= rows[r] < n_rows:
            raise ValueError(f"rows: index {rows[r]} outside [0, {n_rows})")
    if not -1 <= extra_row < n_rows:
        raise ValueError(f"row index {extra_row} outside [-1, {n_rows})")
    if n_threads < 1:
        raise ValueError(f"n_threads: must be >= 1, got {n_threads}")
    # at least one block a thread
    return max(1, min(n_threads, shape[0]))


def _same_length(n, **vectors):
    for name, v in vectors.items():
        if v.shape[0] != n:
            raise ValueError(f"{name}: length {v.shape[0]}, expected {n}")


def history_dots(const floating[:, :, ::1] Z, const intp_t[::1] rows, const double[::1] g,
                 Py_ssize_t y_row, double[::1] out_g, double[::1] out_y, int n_threads=1):
    """``out_g[r] = Z[rows[r]] . g`` and, when ``y_row >= 0``, ``out_y[r] = Z[rows[r]] .
    Z[y_row]``, in float64, in one pass over the rows.

    Parameters
    ----------
    Z : ndarray of shape history_shape(n_rows, n), float32 or float64
    rows : ndarray of shape (r,), intp
    g : ndarray of shape (n,), float64
    y_row : int
        A row of Z, or -1 (then ``out_y`` is not written).
    out_g, out_y : ndarray of shape (r,), float64
        Overwritten.
    n_threads : int
    """
    cdef Py_ssize_t n = g.shape[0], nr = rows.shape[0], t, r, c0, c1, R = Z.shape[1]
    cdef Py_ssize_t nb = Z.shape[0]
    _same_length(nr, out_g=out_g, out_y=out_y)
    cdef Py_ssize_t n_ranges = _check(Z.shape, n, rows, n_threads, y_row)
    cdef double[:, ::1] part_g = np.zeros((n_ranges, max(nr, 1)))
    cdef double[:, ::1] part_y = np.zeros((n_ranges, max(nr, 1)))
    if nr == 0 or n == 0:
        out_g[:] = 0.0
        if y_row >= 0:
            out_y[:] = 0.0
        return
    for t in prange(n_ranges, nogil=True, schedule="static", num_threads=n_ranges):
        c0 = _range_start(nb, n, t, n_ranges)
        c1 = _range_start(nb, n, t + 1, n_ranges)
        if floating is double:
            sf_hist_dots_d(&Z[0, 0, 0], R, &rows[0], nr, &g[0], y_row, c0, c1,
                           &part_g[t, 0], &part_y[t, 0])
        else:
            sf_hist_dots_f(&Z[0, 0, 0], R, &rows[0], nr, &g[0], y_row, c0, c1,
                           &part_g[t, 0], &part_y[t, 0])
    for r in range(nr):
        out_g[r] = part_g[0, r]
        for t in range(1, n_ranges):
            out_g[r] += part_g[t, r]
        if y_row >= 0:
            out_y[r] = part_y[0, r]
            for t in range(1, n_ranges):
                out_y[r] += part_y[t, r]


def history_combine(const floating[:, :, ::1] Z, const intp_t[::1] rows, const double[::1] coef,
                    double coef_g, const double[::1] g, double[::1] d, int n_threads=1):
    """``d = -(coef_g g + sum_r coef[r] Z[rows[r]])`` in one pass over the rows; returns
    ``g . d``.

    Parameters
    ----------
    Z : ndarray of shape history_shape(n_rows, n), float32 or float64
    rows : ndarray of shape (r,), intp
    coef : ndarray of shape (r,), float64
    coef_g : float
    g : ndarray of shape (n,), float64
    d : ndarray of shape (n,), float64
        Overwritten (must not share memory with g).
    n_threads : int

    Returns
    -------
    float
    """
    cdef Py_ssize_t n = g.shape[0], nr = rows.shape[0], t, c0, c1, R = Z.shape[1]
    cdef Py_ssize_t nb = Z.shape[0]
    _same_length(n, d=d)
    _same_length(nr, coef=coef)
    cdef Py_ssize_t n_ranges = _check(Z.shape, n, rows, n_threads)
    if n == 0:
        return 0.0
    if np.shares_memory(np.asarray(g), np.asarray(d)):
        raise ValueError("d: must not share memory with g")
    cdef double[::1] part = np.zeros(n_ranges)
    cdef const intp_t *rows_p = &rows[0] if nr else NULL
    cdef const double *coef_p = &coef[0] if nr else NULL
    cdef double total
    for t in prange(n_ranges, nogil=True, schedule="static", num_threads=n_ranges):
        c0 = _range_start(nb, n, t, n_ranges)
        c1 = _range_start(nb, n, t + 1, n_ranges)
        if floating is double:
            part[t] = sf_hist_combine_d(&Z[0, 0, 0], R, rows_p, nr, coef_p, coef_g, &g[0],
                                        &d[0], c0, c1)
        else:
            part[t] = sf_hist_combine_f(&Z[0, 0, 0], R, rows_p, nr, coef_p, coef_g, &g[0],
                                        &d[0], c0, c1)
    total = part[0]
    for t in range(1, n_ranges):
        total += part[t]
    return total


def history_store_pair(floating[:, :, ::1] Z, Py_ssize_t s_row, Py_ssize_t y_row,
                       const double[::1] d, double step, const double[::1] g_new,
                       double[::1] g, int n_threads=1):
    """Store the pair ``s = step d``, ``y = g_new - g`` (rounded to Z's dtype) in rows
    ``s_row`` and ``y_row`` of Z and copy ``g_new`` into ``g``, in one pass.

    Returns
    -------
    sy, yy, g_max : float
        ``s . y`` and ``y . y`` of the stored (rounded) vectors, and ``max |g_new|``.
    """
    cdef Py_ssize_t n = g.shape[0], t, c0, c1, R = Z.shape[1], nb = Z.shape[0]
    _same_length(n, d=d, g_new=g_new)
    cdef intp_t[::1] both = np.array([s_row, y_row], dtype=np.intp)
    cdef Py_ssize_t n_ranges = _check(Z.shape, n, both, n_threads)
    if s_row == y_row:
        raise ValueError("s_row, y_row: must differ")
    if n == 0:
        return 0.0, 0.0, 0.0
    if np.shares_memory(np.asarray(g), np.asarray(g_new)) or np.shares_memory(
        np.asarray(g), np.asarray(d)
    ):
        raise ValueError("g: must not share memory with d or g_new")
    cdef double[:, ::1] part = np.zeros((n_ranges, 3))
    for t in prange(n_ranges, nogil=True, schedule="static", num_threads=n_ranges):
        c0 = _range_start(nb, n, t, n_ranges)
        c1 = _range_start(nb, n, t + 1, n_ranges)
        if floating is double:
            sf_hist_pair_d(&Z[0, 0, 0], R, s_row, y_row, &d[0], step, &g_new[0], &g[0], c0, c1,
                           &part[t, 0])
        else:
            sf_hist_pair_f(&Z[0, 0, 0], R, s_row, y_row, &d[0], step, &g_new[0], &g[0], c0, c1,
                           &part[t, 0])
    sy, yy, g_max = part[0, 0], part[0, 1], part[0, 2]
    for t in range(1, n_ranges):
        sy += part[t, 0]
        yy += part[t, 1]
        g_max = max(g_max, part[t, 2])
    return sy, yy, g_max


def _distinct(name, a, others):
    for other in others:
        if np.shares_memory(np.asarray(a), np.asarray(other)):
            raise ValueError(f"{name}: must not share memory with the inputs")


def axpy_to(const double[::1] x, const double[::1] d, double step, double[::1] xt,
            int n_threads=1):
    """``xt = x + step d`` in one pass (each element rounded once or twice: a fused multiply-add
    where the compiled version has one).

    ``xt`` must not share memory with ``x`` or ``d``.
    """
    cdef Py_ssize_t n = x.shape[0], t, c0, c1, n_ranges
    _same_length(n, d=d, xt=xt)
    _distinct("xt", xt, (x, d))
    cdef Py_ssize_t nb = _ceil_div(n, SF_HIST_BLOCK)
    n_ranges = max(1, min(n_threads, nb))
    if n == 0:
        return
    for t in prange(n_ranges, nogil=True, schedule="static", num_threads=n_ranges):
        c0 = _range_start(nb, n, t, n_ranges)
        c1 = _range_start(nb, n, t + 1, n_ranges)
        sf_axpy_to(&x[0], &d[0], step, &xt[0], c0, c1)


def penalized_gradient(const double[::1] w, const double[::1] dw, double alpha,
                       double[::1] out, int n_threads=1):
    """``out = dw + alpha w`` in one pass (rounded as :func:`axpy_to`); returns ``w . w``.

    ``out`` may be ``dw`` itself (in place); it must not otherwise share memory with ``w`` or
    ``dw``.
    """
    cdef Py_ssize_t n = w.shape[0], t, c0, c1, n_ranges, nb
    _same_length(n, dw=dw, out=out)
    in_place = n > 0 and <const double *>&out[0] == &dw[0]
    _distinct("out", out, (w,) if in_place else (w, dw))
    nb = _ceil_div(n, SF_HIST_BLOCK)
    n_ranges = max(1, min(n_threads, nb))
    if n == 0:
        return 0.0
    cdef double[::1] part = np.zeros(n_ranges)
    for t in prange(n_ranges, nogil=True, schedule="static", num_threads=n_ranges):
        c0 = _range_start(nb, n, t, n_ranges)
        c1 = _range_start(nb, n, t + 1, n_ranges)
        part[t] = sf_penalized(&w[0], &dw[0], alpha, &out[0], c0, c1)
    cdef double total = part[0]
    for t in range(1, n_ranges):
        total += part[t]
    return total


ctypedef fused out_floating:
    float
    double

cdef enum:
    # Side of the square tiles of ``transpose`` (64 x 64 x 8 bytes: a tile of each side in L2)
    TRANSPOSE_TILE = 64


def transpose(const floating[:, ::1] src, out_floating[:, ::1] out, int n_threads=1):
    """``out = src.T`` (rounded to ``out``'s dtype), both C-contiguous: ``src`` (r, c) and
    ``out`` (c, r), e.g. coefficients between the (K, n) and the feature-major (n, K) layout.

    Tile by tile (TRANSPOSE_TILE square), threaded over column tiles of ``src``: each element is
    read and written once, in cache-sized tiles rather than a stride of a whole row apart.
    ``out`` must not share memory with ``src``.
    """
    cdef Py_ssize_t r = src.shape[0], c = src.shape[1], n_tiles, t, i, j, ti, j0, j1, i0, i1
    if out.shape[0] != c or out.shape[1] != r:
        raise ValueError(f"out: shape {(out.shape[0], out.shape[1])}, expected {(c, r)}")
    _distinct("out", out, (src,))
    if r == 0 or c == 0:
        return
    n_tiles = _ceil_div(c, TRANSPOSE_TILE)
    cdef Py_ssize_t n_row_tiles = _ceil_div(r, TRANSPOSE_TILE)
    cdef int team = max(1, min(n_threads, n_tiles))
    for t in prange(n_tiles, nogil=True, schedule="static", num_threads=team):
        j0 = t * <Py_ssize_t>TRANSPOSE_TILE
        j1 = min(j0 + <Py_ssize_t>TRANSPOSE_TILE, c)
        for ti in range(n_row_tiles):
            i0 = ti * <Py_ssize_t>TRANSPOSE_TILE
            i1 = min(i0 + <Py_ssize_t>TRANSPOSE_TILE, r)
            for j in range(j0, j1):
                for i in range(i0, i1):
                    out[j, i] = <out_floating>src[i, j]
