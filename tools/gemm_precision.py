"""Accuracy of the fused kernel's GEMM precisions, emulated in NumPy (no GPU): float32 FMA, TF32, TF32x3.

    python tools/gemm_precision.py [--trials 20] [--shape 64 90 32]

The forward's kernel-building GEMM, coefficients (P x N) @ basis chunk (N x T), with float32 inputs,
computed three ways with float32 accumulation: 'ieee' (float32 products), 'tf32' (operands rounded to
TF32's 10 mantissa bits) and 'tf32x3' (Triton's split product: hi = tf32(a), lo = tf32(a - hi);
hi hi' + hi lo' + lo hi'). Prints the largest error relative to |A| |B| (elementwise), against float64.
"""
import argparse

import numpy as np


def tf32(x):
    """Round float32 values to TF32 (10 explicit mantissa bits), to nearest even."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0xFFF + ((bits >> 13) & 1)) & ~np.uint64(0x1FFF)
    return bits.astype(np.uint32).view(np.float32)


def matmul_float32(a, b):
    """a @ b with float32 products and a float32 accumulator, one k at a time (as the FMA loop does)."""
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for k in range(a.shape[1]):
        acc += a[:, k:k + 1].astype(np.float32) * b[k:k + 1, :].astype(np.float32)
    return acc


def products(a, b):
    """{precision: a @ b} for 'ieee', 'tf32' and 'tf32x3'."""
    a_hi, b_hi = tf32(a), tf32(b)
    a_lo, b_lo = tf32(a - a_hi), tf32(b - b_hi)
    return {'ieee': matmul_float32(a, b), 'tf32': matmul_float32(a_hi, b_hi),
            'tf32x3': matmul_float32(a_hi, b_lo) + matmul_float32(a_lo, b_hi) + matmul_float32(a_hi, b_hi)}


def relative_errors(trials=20, shape=(64, 90, 32), seed=0):
    """{precision: largest |result - float64| / (|A| |B|)} over random Gaussian operands."""
    rng = np.random.default_rng(seed)
    worst = {}
    for _ in range(trials):
        a = rng.standard_normal(shape[:2]).astype(np.float32)
        b = (0.1 * rng.standard_normal(shape[1:])).astype(np.float32)
        exact = a.astype(np.float64) @ b.astype(np.float64)
        scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
        for name, value in products(a, b).items():
            worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(value - exact) / scale)))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--trials', type=int, default=20)
    parser.add_argument('--shape', type=int, nargs=3, default=[64, 90, 32], metavar=('P', 'N', 'T'))
    args = parser.parse_args()
    for name, error in relative_errors(args.trials, tuple(args.shape)).items():
        print(f'{name}: largest error / (|A| |B|) = {error:.2e}')


if __name__ == '__main__':
    main()
