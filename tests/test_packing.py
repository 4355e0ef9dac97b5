"""jaxpulp.packing: round trips (hypothesis), the bit layout against a byte-by-byte model written here, the
depthwise byte-plane layout, the traced lane read, and clear errors for bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxpulp import JaxpulpError, QType, packing

TYPES = ["u8", "i8", "u4", "i4", "u2", "i2"]


def _bytes_model(values, bits):
    """Byte j = sum over i of low_b(e[j*E + i]) << (b*i) (semantics.md §3.1), one Python int at a time."""
    per = 8 // bits
    vals = [int(v) & ((1 << bits) - 1) for v in values]
    vals += [0] * ((-len(vals)) % per)
    out = [sum(vals[j * per + i] << (bits * i) for i in range(per)) for j in range(len(vals) // per)]
    out += [0] * ((-len(out)) % 4)
    return out


@st.composite
def tensor(draw, min_dims=1, max_dims=4, channel_multiple=False):
    t = QType.parse(draw(st.sampled_from(TYPES)))
    shape = draw(st.lists(st.integers(1, 5), min_size=min_dims, max_size=max_dims))
    if channel_multiple:
        shape[-1] *= 8 // t.bits
    seed = draw(st.integers(0, 2**31 - 1))
    x = np.random.default_rng(seed).integers(t.lo, t.hi + 1, shape)
    return t, x


@settings(max_examples=150, deadline=None)
@given(tensor())
def test_pack_matches_byte_model_and_round_trips(tx):
    t, x = tx
    words = packing.pack(x, t)
    assert words.dtype == np.uint32 and words.shape == (packing.n_words(x.size, t.bits),)
    assert packing.words_to_bytes(words).tolist() == _bytes_model(x.reshape(-1), t.bits)
    np.testing.assert_array_equal(packing.unpack(words, t, x.size).reshape(x.shape), x)


@settings(max_examples=100, deadline=None)
@given(tensor(min_dims=3, max_dims=5, channel_multiple=True))
def test_hwc_round_trip_with_batch_axes(tx):
    t, x = tx
    words = packing.pack_hwc(x, t)
    assert words.shape[:-1] == x.shape[:-3]
    np.testing.assert_array_equal(packing.unpack_hwc(words, x.shape[-3:], t), x)
    if x.ndim == 3:
        np.testing.assert_array_equal(words, packing.pack(x, t))


@settings(max_examples=100, deadline=None)
@given(tensor(min_dims=3, max_dims=4, channel_multiple=True))
def test_byte_planes_round_trip_and_layout(tx):
    t, x = tx
    words = packing.pack_planes(x, t)
    np.testing.assert_array_equal(packing.unpack_planes(words, x.shape[-3:], t), x)
    img = x if x.ndim == 3 else x[0]
    h, w, c = img.shape
    per = 8 // t.bits
    planes = packing.words_to_bytes(words if x.ndim == 3 else words[0])
    for p in range(c // per):  # plane p, pixel (y, x): channels p*E .. p*E+E-1 of that pixel
        for y in range(h):
            for xx in range(w):
                assert planes[p * h * w + y * w + xx] == _bytes_model(img[y, xx, p * per:(p + 1) * per], t.bits)[0]


def test_eight_bit_planes_are_plain_chw():
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    b = packing.words_to_bytes(packing.pack_planes(x, "u8"))[:24]
    np.testing.assert_array_equal(b, np.transpose(x, (2, 0, 1)).reshape(-1))


def test_known_words():
    assert packing.pack([1, 2, 3, 4, 5, 6, 7, 8], "u4").tolist() == [0x87654321]
    assert packing.pack([-1, 0, 1, -2], "i2").tolist() == [0b10_01_00_11]
    assert packing.pack([-128, 127, 1], "i8").tolist() == [0x00017F80]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TYPES), st.integers(0, 2**31 - 1))
def test_extract_elements_equals_unpack_with_traced_width(name, seed):
    t = QType.parse(name)
    x = np.random.default_rng(seed).integers(t.lo, t.hi + 1, 37)
    words = jnp.asarray(packing.pack(x, t))
    f = jax.jit(lambda w, i, b, s: packing.extract_elements(w, i, b, s))
    got = f(words, jnp.arange(37), jnp.int32(t.bits), jnp.int32(t.signed))
    np.testing.assert_array_equal(np.asarray(got), x)


@pytest.mark.parametrize("call, needle", [
    (lambda: packing.pack([16], "u4"), "value 16 out of range for u4: expected [0, 15]"),
    (lambda: packing.pack([-3], "i2"), "value -3 out of range for i2"),
    (lambda: packing.pack([-1], "u8"), "value -1 out of range for u8"),
    (lambda: packing.pack(np.array([1.0]), "u8"), "dtype float64, expected an integer array"),
    (lambda: packing.pack([1], "u3"), "bits=3"),
    (lambda: packing.pack([1], "x8"), "type='x8'"),
    (lambda: packing.pack_hwc(np.zeros((2, 2, 3), int), "u4"), "C=3 channels of u4"),
    (lambda: packing.pack_hwc(np.zeros((2, 3), int), "u8"), "expected ([batch, ...,] H, W, C)"),
    (lambda: packing.pack_planes(np.zeros((2, 2, 2), int), "i2"), "multiple of 4"),
    (lambda: packing.unpack(np.zeros(1, np.uint32), "u8", 5), "fewer than count=5"),
    (lambda: packing.unpack(np.zeros(1, np.uint32), "u8", -1), "count=-1: expected an int >= 0"),
    (lambda: packing.unpack(np.zeros(1, np.uint32), "u8", 1.5), "count=1.5: expected an int >= 0"),
    (lambda: packing.unpack(np.zeros(1, np.int32), "u8", 1), "dtype int32, expected a uint32"),
    (lambda: packing.unpack_hwc(np.zeros(4, np.uint32), (2, 2), "u8"), "expected (H, W, C)"),
    (lambda: packing.bytes_to_words(np.zeros(3, np.int8)), "expected uint8"),
])
def test_bad_input_is_named(call, needle):
    with pytest.raises(JaxpulpError) as e:
        call()
    assert needle in str(e.value)
