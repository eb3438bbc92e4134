"""unlearnbench: a PyTorch Lightning benchmark harness for LLM unlearning."""

from unlearnbench.numerics import pin_cpu_numerics as _pin

# Before anything imports torch: CPU kernels pinned to code paths every x86-64 CPU runs
# (see unlearnbench.numerics), so a grid gives the same floats on another machine.
_pin()

__version__ = "0.1.0"
