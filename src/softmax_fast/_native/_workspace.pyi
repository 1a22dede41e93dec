# Typed stub of the extension softmax_fast._native._workspace (checked with mypy.stubtest).
# Its API is C-level (_workspace.pxd, cimported by the kernel modules): Python sees the
# work-space type and the capsules through which those modules reach its C functions.

from typing_extensions import Self, disjoint_base

__pyx_capi__: dict[str, object]

@disjoint_base
class _Workspace:
    def __new__(cls, n_chunks: int) -> Self: ...
