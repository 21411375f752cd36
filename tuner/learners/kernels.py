"""How a learner holding numba-compiled kernels crosses a process boundary.

numba pickles a compiled function by value, and a process that unpickles it compiles it again even when the
same function is cached on disk (about a second per kernel, measured). The main job's forked workers send their
learners back to the parent, so such a learner is pickled without its kernels and binds them again by import
when unpickled, as a plain function travels by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


class CompiledKernels(ABC):
    """A learner whose ``_KERNELS`` attributes hold compiled kernels, set by :meth:`_bind_kernels`."""

    _KERNELS: ClassVar[tuple[str, ...]]

    @abstractmethod
    def _bind_kernels(self) -> None:
        """Set every ``_KERNELS`` attribute (importing the kernel module: numba loads in about half a second, so
        only a process that builds or receives such a learner pays it)."""

    def __getstate__(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if name not in self._KERNELS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_kernels()
