"""How a learner holding numba-compiled kernels crosses a process boundary.

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
