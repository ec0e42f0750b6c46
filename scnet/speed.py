"""Speed options of a run: memory format, ``torch.compile``, and start-up timing.

* ``channels_last``: the backbone's weights and every 4-d input batch use the NHWC memory
  format, which cuDNN's tensor-core convolutions (and bf16 autocast) prefer on GPUs. Values
  are unchanged; only the layout differs.
* ``compile``: ``torch.compile`` the backbone, SC included: while TorchDynamo traces, the
  short circuit wires itself as a differentiable identity instead of tensor hooks (which
  Dynamo drops), so compiled gradients equal eager SC gradients (``scnet/sc.py``,
  ``docs/method.md``, ``tests/test_sc_compile.py``). ``sc.mode=weight_only`` is refused
  with one line: its Eq. 13 recompute runs inside backward and cannot be traced.
* :class:`FirstStepTimer`: logs the seconds from process start to the first training step,
  the orchestration latency that ``benchmarks/`` measures.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from scnet.errors import ConfigError
from scnet.sc import ShortCircuit

log = logging.getLogger("scnet")

#: Environment variable a wrapper may set to its own start time (``time.time()``).
START_ENV = "SCNET_T0"


def to_channels_last(x: Any) -> Any:
    """``x`` in NHWC memory format when it is a 4-d tensor; anything else unchanged."""
    if isinstance(x, Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def apply_channels_last(module: nn.Module) -> nn.Module:
    """Convert the 4-d parameters and buffers of ``module`` to NHWC, in place."""
    return module.to(memory_format=torch.channels_last)


def maybe_compile(
    backbone: nn.Module, enabled: bool, sc: ShortCircuit | None = None, **options: Any
) -> Any:
    """``torch.compile(backbone)`` when ``enabled``, with its short circuit ``sc`` if any.

    Returns the callable to use in ``forward`` (the backbone itself when not compiling), so
    the module tree and state-dict keys never change.

    Raises:
        ConfigError: ``sc`` cannot be compiled (``sc.mode=weight_only``), one line.
    """
    if not enabled:
        return backbone
    if sc is not None:
        try:
            sc.check_compilable()
        except ValueError as err:
            raise ConfigError(str(err)) from None
    return torch.compile(backbone, **options)


def process_start_time() -> float:
    """Wall-clock time (``time.time()`` scale) at which this process started.

    ``SCNET_T0`` wins when a wrapper set it (it then includes the interpreter's own start);
    otherwise the process age from Linux's ``/proc/self/stat`` and ``/proc/uptime``; elsewhere
    the time this module was imported.
    """
    if env := os.environ.get(START_ENV):
        try:
            return float(env)
        except ValueError:
            pass
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: ticks after boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        # Both are seconds since boot (10 ms resolution); /proc/stat's btime is whole seconds.
        return time.time() - (uptime - started)
    except (OSError, ValueError, IndexError):
        return _LOADED


_LOADED = time.time()


class FirstStepTimer(L.Callback):
    """Logs (once) how long after process start the first training batch began."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self.seconds is None:
            self.seconds = time.time() - process_start_time()
            log.info("first training step %.2fs after process start", self.seconds)
