"""Reproducibility: one call seeds every random number generator, one helper picks the device.

Introduced in chapter 00_introduction. Every notebook starts with ``set_seed()`` so that two runs
give the same numbers, and asks ``get_device()`` where to put its tensors. The committed outputs of
the book come from the CPU path with two threads (``set_seed(seed, threads=2)``): float sums run
in a different order with a different thread count, and the last digits of a loss can change.
The same holds for the CPU's vector instructions: ``PINNED_CPU_ENV`` makes every x86 machine with
AVX2 compute with the same kernels. That is not enough across CPU makers: an Intel Xeon and an
AMD EPYC, both pinned, trained the chapters' models to different last digits, which a few
hundred steps grow into different printed figures (measured; MKL's reproducibility modes are
guaranteed on Intel processors only). So each chapter records which maker's CPU computed its
stored outputs (``outputs_cpu``), and the test harness compares them digit for digit only on
such a CPU (``reproduces_notebook``).
"""

from __future__ import annotations

import os
import platform
import random
from collections.abc import Iterable, MutableMapping

import numpy as np
import torch

DEVICE_ENV_VAR = "LMBOOK_DEVICE"
DEVICE_NAMES = ("cpu", "cuda", "mps")

# Newer CPUs get wider kernels (AVX-512, AMX) that add floats in another order: the same notebook
# then prints a loss that differs in the last digit, and after a few hundred training steps a
# different BLEU. These settings choose the AVX2 kernels in PyTorch's own operators
# (ATEN_CPU_CAPABILITY), in MKL's matrix products (MKL_CBWR, Intel's "conditional numerical
# reproducibility") and in oneDNN (DNNL_MAX_CPU_ISA).
PINNED_CPU_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "DNNL_MAX_CPU_ISA": "AVX2"}

# Those kernels exist only on x86-64, and need AVX2 with FMA (PyTorch picks its AVX2 kernels only
# when the CPU has both). platform.machine() says "x86_64" on Linux and macOS, "AMD64" on Windows.
X86_64_MACHINES = ("x86_64", "amd64")
AVX2_FLAGS = ("avx2", "fma")


def pin_cpu_numerics(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put ``PINNED_CPU_ENV`` into `environ` (default ``os.environ``) where not already set.

    The libraries read these variables when torch runs its first operation, and a kernel or
    subprocess inherits them, so call this before any computation: the test suite does, for the
    notebooks it checks. Returns the settings in effect; a value the caller set is kept.
    """
    if environ is None:
        environ = os.environ
    if not isinstance(environ, MutableMapping):
        raise TypeError(f"environ must be a mutable mapping such as os.environ, got {type(environ).__name__}")
    for name, value in PINNED_CPU_ENV.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in PINNED_CPU_ENV}


def _this_cpu_flags() -> frozenset[str] | None:
    """This CPU's feature flags ("avx2", "fma", ...), or None where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:  # Linux
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    # macOS and Windows: PyTorch's own CPU probe, which (unlike get_cpu_capability()) ignores
    # ATEN_CPU_CAPABILITY. Every CPU with AVX2 also has FMA.
    try:
        return frozenset(AVX2_FLAGS) if torch.cpu._is_avx2_supported() else frozenset()
    except (AttributeError, RuntimeError):
        return None


def reproduces_stored_outputs(machine: str | None = None,
                              cpu_flags: str | Iterable[str] | None = None) -> tuple[bool, str]:
    """Whether this CPU computes the book's stored outputs digit for digit, and why.

    The stored outputs come from the x86 AVX2 kernels that ``PINNED_CPU_ENV`` selects. Another CPU
    (Apple silicon, ARM Linux, an x86 CPU without AVX2) adds floats in another order, so the last
    digits differ: the test harness (conftest.py) then compares the chapters' outputs with their
    numbers masked. `machine` defaults to ``platform.machine()`` and `cpu_flags` (the CPU's
    feature flags, a list or a space-separated string such as /proc/cpuinfo's "flags" line) to
    this machine's; pass them to ask about another CPU. Returns ``(ok, reason)``, where `reason`
    is one sentence such as "this CPU (arm64) cannot reproduce the stored x86 AVX2 outputs
    digit for digit". Where an x86 CPU's flags cannot be read, AVX2 is assumed (every x86-64
    CPU sold since 2015 has it).
    """
    if machine is None:
        machine = platform.machine()
    if not isinstance(machine, str):
        raise TypeError(f"machine must be a str such as 'x86_64' or 'arm64' (platform.machine()), "
                        f"got {type(machine).__name__}")
    name = machine.strip() or "unknown machine"
    cannot = "cannot reproduce the stored x86 AVX2 outputs digit for digit"
    if name.lower() not in X86_64_MACHINES:
        return False, f"this CPU ({name}) {cannot}"
    if cpu_flags is None:
        flags = _this_cpu_flags()
        if flags is None:
            return True, (f"this CPU ({name}, flags unreadable, AVX2 assumed) reproduces the "
                          "stored outputs digit for digit")
    elif isinstance(cpu_flags, str):
        flags = frozenset(cpu_flags.split())
    elif isinstance(cpu_flags, Iterable):
        items = list(cpu_flags)
        for item in items:
            if not isinstance(item, str):
                raise TypeError("cpu_flags must be a str of space-separated flags or an iterable "
                                f"of str such as ['avx2', 'fma'], got an item of type "
                                f"{type(item).__name__}")
        flags = frozenset(items)
    else:
        raise TypeError("cpu_flags must be a str of space-separated flags or an iterable of str "
                        f"such as ['avx2', 'fma'], got {type(cpu_flags).__name__}")
    missing = [flag.upper() for flag in AVX2_FLAGS if flag not in {f.lower() for f in flags}]
    if missing:
        return False, f"this CPU ({name} without {' and '.join(missing)}) {cannot}"
    return True, f"this CPU ({name}, AVX2) reproduces the stored outputs digit for digit"


OUTPUTS_CPU_KEY = "outputs_cpu"  # in a notebook's metadata["lmbook"]: which CPUs reproduce its outputs
ANY_X86 = "any x86-64 with AVX2"  # a chapter whose outputs two CPU makers reproduced digit for digit


def cpu_vendor() -> str | None:
    """This CPU's maker as /proc/cpuinfo's vendor_id names it ("GenuineIntel", "AuthenticAMD"),
    or None where it cannot be read (not Linux, or not x86)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip() or None
    except OSError:
        pass
    return None


def reproduces_notebook(outputs_cpu: object, vendor: str | None, reproduces: bool) -> tuple[bool, str]:
    """Whether this CPU computes a chapter's stored outputs digit for digit, and why.

    `outputs_cpu` is the notebook's metadata["lmbook"]["outputs_cpu"]: ``ANY_X86`` (its outputs
    were reproduced on Intel and AMD CPUs alike) or the vendor_id of the CPU that computed them;
    `vendor` is this CPU's (``cpu_vendor()``), `reproduces` whether it runs the pinned x86 AVX2
    kernels at all (``reproduces_stored_outputs()[0]``). A notebook that records nothing, or a
    vendor that cannot be read, counts as another maker's: never a strict comparison that is
    bound to fail on the last digits."""
    if not isinstance(reproduces, bool):
        raise TypeError(f"reproduces must be a bool, got {type(reproduces).__name__}")
    if not reproduces:
        return False, "this CPU does not run the pinned x86 AVX2 kernels"
    if outputs_cpu == ANY_X86:
        return True, f"its outputs were reproduced on {ANY_X86}"
    if not isinstance(outputs_cpu, str) or not outputs_cpu.strip():
        return False, f"the notebook does not record which CPU computed its outputs ({OUTPUTS_CPU_KEY})"
    if vendor is not None and outputs_cpu.strip() == vendor:
        return True, f"its outputs were computed on a CPU by {vendor}, as this one"
    return False, f"its outputs were computed on a CPU by {outputs_cpu.strip()}, this one is by {vendor or 'an unknown maker'}"


def set_seed(seed: int = 0, threads: int | None = 2) -> None:
    """Seed `random`, numpy and torch (CUDA too), and pin torch's thread count.

    Introduced in chapter 00_introduction. ``threads=None`` leaves the thread settings alone.
    The inter-op thread pool can only be sized before torch's first parallel operation, so it
    is set when still possible and otherwise left as it is (intra-op threads, the setting that
    changes results, are always pinned).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed}")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise TypeError(f"threads must be an int >= 1 or None, got {type(threads).__name__}")
        if threads < 1:
            raise ValueError(f"threads must be an int >= 1 or None, got {threads}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if threads is not None:
        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != threads:
            try:
                torch.set_num_interop_threads(threads)
            except RuntimeError:  # "cannot set ... after parallel work has started": keep it
                pass


def _parse_device(name: str, where: str) -> torch.device:
    if not isinstance(name, str):
        raise TypeError(f"{where} must be a str such as 'cpu', got {type(name).__name__}")
    base, _, index = name.strip().lower().partition(":")
    if base not in DEVICE_NAMES or (index and (base != "cuda" or not index.isdigit())):
        raise ValueError(f"{where} must be one of {', '.join(DEVICE_NAMES)} (or 'cuda:N'), "
                         f"got {name!r}")
    if base == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{where}={name!r} asks for CUDA, but torch.cuda.is_available() "
                               "is False on this machine; use 'cpu' or unset it")
        if index and int(index) >= torch.cuda.device_count():
            raise RuntimeError(f"{where}={name!r}: only {torch.cuda.device_count()} CUDA "
                               "device(s) are visible")
    if base == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RuntimeError(f"{where}={name!r} asks for Apple MPS, which is not available here; "
                           "use 'cpu' or unset it")
    return torch.device(name.strip().lower())


def get_device(name: str | None = None) -> torch.device:
    """The device to compute on: `name`, else $LMBOOK_DEVICE, else cuda, then mps, then cpu.

    Introduced in chapter 00_introduction. A device that is asked for but missing is an error,
    not a silent fall-back, so a reader who wants the GPU knows when they are not getting it.
    """
    if name is not None:
        return _parse_device(name, "name")
    env = os.environ.get(DEVICE_ENV_VAR, "").strip()
    if env:
        return _parse_device(env, DEVICE_ENV_VAR)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
