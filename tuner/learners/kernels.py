"""How a learner holds numba-compiled kernels: called without numba's dispatch, and across a process boundary.

numba pickles a compiled function by value, and a process that unpickles it compiles it again even when the
same function is cached on disk (1.3 s for the structured learner's refit, measured). The main job's forked
workers send their learners back to the parent, so such a learner is pickled without its kernels and binds them
again by import when it next uses one, as a plain function travels by name (the parent, which only reads the
learners it receives, never imports numba).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar


class CompiledKernels(ABC):
    """A learner whose ``_KERNELS`` attributes hold compiled kernels, set by :meth:`_bind_kernels` (when built,
    and when first used after unpickling)."""

    _KERNELS: ClassVar[tuple[str, ...]]

    @abstractmethod
    def _bind_kernels(self) -> None:
        """Set every ``_KERNELS`` attribute (importing the kernel module: numba loads in about half a second, so
        only a process that builds or uses such a learner pays it)."""

    def __getstate__(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if name not in self._KERNELS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    if not TYPE_CHECKING:  # hidden from type checkers, which would take any attribute of a learner as valid
        def __getattr__(self, name: str) -> Any:
            """Only called for an attribute not set: a kernel not bound since unpickling is bound now."""
            if name not in type(self)._KERNELS:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            self._bind_kernels()
            return self.__dict__[name]


def entry_point(kernel: Any) -> Any:
    """``kernel``'s compiled function for its one declared signature, called without numba's dispatch.

    A call through the dispatcher first types every argument to pick an overload: with eight arguments that is about
    300 ns of a 900 ns call that does nothing else (measured on the structured learner's ``learn``), paid on every
    outcome. The overload is then known when the learner binds it, but nothing checks the arguments' layout: a
    strided view passed for a contiguous array is read as if contiguous (a wrong dtype is still refused). So only for a
    kernel whose arrays are the learner's own contiguous buffers (the structured learner's two flat buffers).
    """
    (signature,) = kernel.signatures
    return kernel.get_overload(signature)
