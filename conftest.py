"""Run every test, and every notebook kernel nbval starts, with the CPU kernels the stored outputs
were computed with (see lmbook_utils.repro.PINNED_CPU_ENV)."""

from lmbook_utils.repro import pin_cpu_numerics

pin_cpu_numerics()
