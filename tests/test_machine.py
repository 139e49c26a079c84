"""The CPU's name, flags and clock come from one reader of /proc/cpuinfo (fmnist.machine), on x86
and ARM alike, and nothing else in the project reads that file."""

import pytest

from fmnist import machine, models

from helpers import ROOT

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
cpu MHz\t\t: 2600.000
flags\t\t: fpu sse2 avx2 avx512f amx_bf16

processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
cpu MHz\t\t: 2100.000
flags\t\t: fpu sse2 avx2 avx512f amx_bf16
"""
ARM = """processor\t: 0
BogoMIPS\t: 2000.00
Features\t: fp asimd bf16 i8mm
CPU implementer\t: 0x41
"""


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    """Point the reader at a file of the test's own, read afresh."""
    def use(text: str | None):
        path = tmp_path / "cpuinfo"
        if text is not None:
            path.write_text(text)
        monkeypatch.setattr(machine, "CPUINFO", str(path))
        machine.cpuinfo.cache_clear()
        models.cpu_has_bfloat16.cache_clear()
    yield use
    machine.cpuinfo.cache_clear()
    models.cpu_has_bfloat16.cache_clear()


def test_an_x86_cpu_is_named_with_its_flags_and_first_clock(cpuinfo):
    cpuinfo(X86)
    assert machine.cpu_name() == "Intel(R) Xeon(R) Processor"
    assert machine.cpu_flags() == {"fpu", "sse2", "avx2", "avx512f", "amx_bf16"}
    assert machine.cpu_mhz() == 2600.0
    assert models.cpu_has_bfloat16() is True


def test_an_arm_cpu_gives_its_features_and_a_name_from_the_platform(cpuinfo, monkeypatch):
    cpuinfo(ARM)
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    assert machine.cpu_name() == "aarch64"
    assert machine.cpu_flags() == {"fp", "asimd", "bf16", "i8mm"} and models.cpu_has_bfloat16() is True
    assert machine.cpu_mhz() == 0.0


def test_without_cpuinfo_the_flags_are_unknown(cpuinfo, monkeypatch):
    cpuinfo(None)
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "")
    assert machine.cpu_name() == "unknown CPU"
    assert machine.cpu_flags() is None and models.cpu_has_bfloat16() is None
    assert machine.cpu_mhz() == 0.0


def test_only_fmnist_machine_reads_cpuinfo():
    readers = [path.relative_to(ROOT).as_posix() for folder in ("fmnist", "pages", "benchmarks") if (ROOT / folder).is_dir()
               for path in (ROOT / folder).rglob("*.py") if "/proc/cpuinfo\"" in path.read_text() or "model name\")" in path.read_text()]
    assert readers == ["fmnist/machine.py"]
