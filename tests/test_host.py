"""``_host``: the int8 dot-product instructions read off ``/proc/cpuinfo`` text (the formulation rule's switch)."""
from hypothesis import given, strategies as st

from jaxpulp.kernels import _host

OTHER_FLAGS = ["fpu", "sse2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "vnni", "avx512_bf16",
               "amx_tile", "amx_bf16", "avx_vnni_int8"]


@given(other=st.lists(st.sampled_from(OTHER_FLAGS), max_size=10),
       dot=st.lists(st.sampled_from(_host.INT8_DOT_FLAGS), max_size=2), cores=st.integers(1, 4))
def test_the_flags_line_decides(other, dot, cores):
    """True exactly when a flags line names one of ``INT8_DOT_FLAGS`` as a whole word (not as part of another
    flag, nor on another line), whatever the flags' order and the number of processors listed."""
    flags = " ".join(other + dot)
    block = f"processor\t: 0\nmodel name\t: AMD EPYC (avx512_vnni in a name)\nflags\t\t: {flags}\nbugs\t\t: \n\n"
    assert _host.int8_dot_from_cpuinfo(block * cores) == bool(dot)


def test_no_flags_line_is_unknown():
    assert _host.int8_dot_from_cpuinfo("") is None
    assert _host.int8_dot_from_cpuinfo("processor : 0\nFeatures : fp asimd asimddp i8mm\n") is None  # aarch64
    assert _host.int8_dot_from_cpuinfo("flagship : avx512_vnni\n") is None


def test_this_host_is_answered_once():
    assert _host.int8_dot() in (True, False, None) and _host.int8_dot() is _host.int8_dot()
    assert _host.lacks_int8_dot() == (_host.int8_dot() is False)  # unknown counts as having them
