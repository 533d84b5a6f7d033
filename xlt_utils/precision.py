"""Which precision training and evaluation run in: one decision, from the hardware, tested on a table.

`choose_precision` is the policy. It looks only at the hardware:

=========================================  ========  =============================================
hardware                                   choice    why
=========================================  ========  =============================================
CUDA, compute capability >= 8.0            bf16      native bf16 tensor cores (A100, L4, H100, ...)
CUDA, compute capability 7.x               fp16      T4, V100: fp16 tensor cores; bf16 is emulated
                                                     (``torch.cuda.is_bf16_supported()`` says True
                                                     there all the same), so fp16 + GradScaler
CUDA, older                                fp32      no fast half precision
CPU with AVX-512 BF16 or AMX-BF16          bf16      native bf16 matmuls (about 4x fp32)
any other CPU (AVX2, AVX-512 without BF16) fp32      bf16 is emulated there, hundreds of times slower
anything else (mps, meta, ...)             fp32
=========================================  ========  =============================================

`resolve_precision` turns what a config asks for into one of ``"bf16"``, ``"fp16"``, ``"fp32"``:

- an explicit ``"bf16"``, ``"fp16"`` or ``"fp32"`` (or the legacy ``True``/``False`` = bf16/fp32) is
  used as given;
- ``"auto"`` asks the policy, except for small models (under `SMALL_MODEL_PARAMS` parameters outside
  the embeddings, such as the toy profile's 12-layer, 128-wide BERT), which always run in fp32: autocast
  buys nothing at that size, and fp32 makes the toy profile's numbers (the stored notebook outputs)
  the same on every machine.

The environment variable ``XLT_PRECISION`` (``bf16``, ``fp16``, ``fp32`` or ``auto``) replaces the
hardware detection: it says what the policy answers, as if the machine were of that kind. Small models
stay in fp32 under ``"auto"`` even then, so ``XLT_PRECISION=bf16`` shows what a bf16 machine does with
the toy notebooks (nothing changes); to run a small model in bf16, ask for it explicitly
(``TrainConfig(precision="bf16")``).

fp16 needs loss scaling: `grad_scaler` gives a ``torch.amp.GradScaler`` that is enabled for fp16 only
(a disabled scaler passes everything through unchanged), and `autocast` the matching context.

An experiment config resolves its precision once, when it is made (`experiments.ExperimentConfig.precision`,
on the device it will run on), and runs in exactly that precision; its cache key records it unless it is
fp32, so that a record trained in bf16 or fp16 is never reused by an fp32 run (and the keys of the fp32
configs made before, such as the shipped toy grid's, are unchanged).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Mapping

import torch

from . import settings
from .settings import PRECISIONS

ENV_VAR = "XLT_PRECISION"
#: Parameters outside the embeddings below which "auto" means fp32 (the toy BERT has about 2.4 M;
#: mBERT about 85 M).
SMALL_MODEL_PARAMS = 10_000_000
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def machine_cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (from /proc/cpuinfo; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cuda_capability(device: int | str | torch.device | None = None) -> tuple[int, int] | None:
    """The compute capability of a CUDA device (default: the current one), or None without CUDA."""
    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(device))


def choose_precision(device_type: str, cuda_capability: tuple[int, int] | None = None,
                     cpu_flags: Iterable[str] | None = None) -> str:
    """The policy: "bf16", "fp16" or "fp32" for a device type and its capabilities (see the module's table).

    `cuda_capability` (major, minor) is required for "cuda"; `cpu_flags` defaults to this machine's.
    """
    if device_type == "cuda":
        if cuda_capability is None:
            raise ValueError("choose_precision('cuda') needs cuda_capability, e.g. (7, 5) for a T4")
        major = int(cuda_capability[0])
        return "bf16" if major >= 8 else "fp16" if major == 7 else "fp32"
    if device_type == "cpu":
        flags = set(machine_cpu_flags() if cpu_flags is None else cpu_flags)
        return "bf16" if any(f in flags for f in _NATIVE_BF16_CPU_FLAGS) else "fp32"
    return "fp32"


def default_device() -> torch.device:
    """Where the work runs: the (current) GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _device_type(device) -> str:
    if isinstance(device, torch.device):
        return device.type
    return str(device).split(":")[0]


def forced_precision(env: Mapping[str, str] | None = None) -> str | None:
    """What XLT_PRECISION forces the policy to answer ("bf16", "fp16", "fp32"), or None (not set, or
    "auto"): the settings in force (`settings.current().precision`), or those of the mapping `env`."""
    return (settings.current() if env is None else settings.Settings.from_env(env)).precision


def hardware_precision(device="cpu", env: Mapping[str, str] | None = None) -> str:
    """The policy's answer for this machine's `device` (or what XLT_PRECISION forces)."""
    forced = forced_precision(env)
    if forced is not None:
        return forced
    kind = _device_type(device)
    if kind == "cuda":
        cap = cuda_capability(device if isinstance(device, torch.device) and device.index is not None else None)
        return choose_precision("cuda", cap) if cap is not None else "fp32"
    return choose_precision(kind)


def count_core_params(model: torch.nn.Module) -> int:
    """Parameters outside the embedding tables (what the matmuls of a training step multiply by)."""
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def normalize(requested) -> str:
    """"auto", "bf16", "fp16" or "fp32" from a config value (True/False: bf16/fp32, as older configs say)."""
    if requested is True:
        return "bf16"
    if requested is False or requested is None:
        return "fp32"
    value = str(requested).strip().lower()
    if value not in ("auto", *PRECISIONS):
        raise ValueError(f"unknown precision {requested!r}; valid values: auto, {', '.join(PRECISIONS)} "
                         "(or True/False for bf16/fp32)")
    return value


def resolve_precision(requested="auto", device="cpu", model: torch.nn.Module | None = None,
                      env: Mapping[str, str] | None = None) -> str:
    """The precision a run uses: an explicit request as given; "auto": fp32 for a small `model`,
    else the hardware policy (`hardware_precision`, which XLT_PRECISION can force)."""
    value = normalize(requested)
    if value != "auto":
        return value
    if model is not None and count_core_params(model) < SMALL_MODEL_PARAMS:
        return "fp32"
    return hardware_precision(device, env)


def autocast(precision: str, device="cpu"):
    """torch.autocast in bf16 or fp16 for a resolved precision; a no-op context for fp32."""
    precision = normalize(precision)
    if precision == "auto":
        raise ValueError("autocast needs a resolved precision (bf16, fp16 or fp32): call resolve_precision first")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=_device_type(device), dtype=DTYPES[precision])


def grad_scaler(precision: str, device="cpu") -> torch.amp.GradScaler:
    """A GradScaler, enabled for fp16 only (bf16 and fp32 need no loss scaling: it passes through)."""
    return torch.amp.GradScaler(_device_type(device), enabled=normalize(precision) == "fp16")


def describe(precision: str) -> str:
    """How a resolved precision runs, in words (the setup line, records, benchmarks)."""
    return {"bf16": "bf16 autocast", "fp16": "fp16 autocast + GradScaler", "fp32": "fp32 (no autocast)"}[
        normalize(precision)]
