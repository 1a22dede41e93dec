"""The compiled layer: no validation, no policy.

``softmax_fast.kernels`` (and the other Python modules) validate the arguments, apply the dtype
policy and turn status codes into exceptions; the extension modules here only compute.

Modules
-------
rowwise
    ``softmax_rows`` (softmax / log-softmax / logsumexp, chosen by ``RowwiseMode``) and
    ``cross_entropy`` (+ gradient) on a matrix of logits Z.
dense
    The fused softmax-regression ``loss_and_grad`` and ``predict`` on a dense X.
info
    Introspection: ``openmp_enabled``, ``openmp_max_threads``, ``simd_exp_dispatch``,
    ``small_gemm_available``, ``small_gemm_max_k``.
incremental
    One serial SAGA epoch over a dense or a CSR X (``saga_epoch_dense``, ``saga_epoch_csr``;
    the solver is softmax_fast._saga).
testing
    Test hooks, used by the test suite only: ``_fail_allocation``, ``vexp``, ``vlog_ge1``,
    ``openmp_team_size``.
_workspace
    Shared by the kernel modules through ``_workspace.pxd``: work-space allocation (one
    allocation-failure countdown for all of them), chunking and the ordered sums.

Declarations shared at C level: ``_common.pxd`` (types, the headers' externs, constants) and
``_rows.pxd`` (inline row and tile helpers); the C headers ``_sfmath.h`` (vectorized exp/log,
OpenMP and AddressSanitizer shims) and ``_sfgemm*.h`` (AVX2+FMA small-K GEMM micro-kernels).
"""
