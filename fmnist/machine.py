"""What this machine's CPU is, as a run's record and the benches name it: its model name, its
instruction-set flags and its clock, read from /proc/cpuinfo once per process (Linux; elsewhere
what the platform module knows, or nothing)."""

import functools
import platform

CPUINFO = "/proc/cpuinfo"


@functools.cache
def cpuinfo() -> dict[str, str] | None:
    """/proc/cpuinfo's fields, each as the first processor that has it gives it ('model name',
    'flags', 'cpu MHz'...); None where it cannot be read."""
    fields: dict[str, str] = {}
    try:
        with open(CPUINFO) as f:
            for line in f:
                key, colon, value = line.partition(":")
                if colon:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        return None
    return fields


def cpu_name() -> str:
    """The CPU's model name as /proc/cpuinfo gives it, e.g. 'AMD EPYC 9B14' (elsewhere what platform knows)."""
    return (cpuinfo() or {}).get("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str] | None:
    """The CPU's instruction-set flags ('avx512f', 'amx_bf16'...: x86's 'flags', ARM's 'Features');
    None where /proc/cpuinfo cannot be read."""
    fields = cpuinfo()
    if fields is None:
        return None
    return set((fields.get("flags") or fields.get("Features") or "").split())


def cpu_mhz() -> float:
    """The clock /proc/cpuinfo gives ('cpu MHz'); 0.0 where it gives none."""
    try:
        return float((cpuinfo() or {}).get("cpu MHz", 0.0))
    except ValueError:
        return 0.0
