"""tools/gemm_precision.py: TF32 rounding (known answers) and the emulated GEMM errors' orders of magnitude."""
import numpy as np

from conftest import load_tool

gemm = load_tool('gemm_precision')


def test_tf32_keeps_ten_mantissa_bits_rounding_to_nearest_even():
    values = np.array([1 + 2.0 ** -10, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1 + 2.0 ** -12, -3.0], np.float32)
    expected = np.array([1 + 2.0 ** -10, 1.0, 1 + 2 * 2.0 ** -10, 1.0, -3.0], np.float32)  # ties go to even
    np.testing.assert_array_equal(gemm.tf32(values), expected)


def test_tf32x3_is_as_accurate_as_float32_and_tf32_is_not():
    errors = gemm.relative_errors(trials=2, shape=(16, 90, 16))
    assert errors['ieee'] < 1e-6 and errors['tf32x3'] < 1e-6
    assert 1e-5 < errors['tf32'] < 1e-3  # 2^-11 per rounded operand
