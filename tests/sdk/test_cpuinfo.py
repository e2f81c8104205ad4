"""CPU identity and matrix features from /proc/cpuinfo text."""
from tvreid_sdk.cpuinfo import host_cpu, parse_cpuinfo

SPR = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx2 avx512f avx512_vnni avx_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: should not be read
"""
EPYC = "vendor_id : AuthenticAMD\nmodel name : AMD EPYC 7763 64-Core Processor\nflags : fpu avx2 avx512f\n"


def test_intel_amx():
    cpu = parse_cpuinfo(SPR, logical_cpus=2)
    assert cpu.is_intel and cpu.model == "Intel(R) Xeon(R) Platinum 8480+" and cpu.logical_cpus == 2
    assert cpu.has_bf16 and cpu.has_int8_dot
    assert cpu.matrix_features[:2] == ("AMX-BF16", "AMX-INT8")
    assert {"AVX512-BF16", "AVX-512 VNNI", "AVX-VNNI"} <= set(cpu.matrix_features)
    assert cpu.describe().startswith("Intel(R) Xeon(R) Platinum 8480+, 2 logical CPUs, matrix features: AMX-BF16")


def test_amd_without_bf16():
    cpu = parse_cpuinfo(EPYC, logical_cpus=4)
    assert not cpu.is_intel and not cpu.has_bf16 and not cpu.has_int8_dot
    assert cpu.matrix_features == ("AVX-512F", "AVX2")


def test_unknown_flags_are_said_so():
    cpu = parse_cpuinfo("model name: Something\n", 1)
    assert cpu.vendor == "" and "unknown" in cpu.describe()


def test_host_cpu_is_cached_and_named():
    assert host_cpu() is host_cpu() and host_cpu().model and host_cpu().logical_cpus >= 1
