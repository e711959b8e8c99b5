// Memory-bound loops of the per-pixel basis filter on CPU (see fcdfn_plugin/ops/basis_filter_native.py).
//
// Plain C++ with raw pointers, no torch headers: built with g++ -O3 -fopenmp at first use (or by `make setup`)
// and called through ctypes. Every array is contiguous, row-major:
//   padded       (B, C, Hp, Wp)  the image already padded by dilation * (K - 1) / 2 on every side
//   kernels      (B, K*K, band_h, W)  per-pixel kernels W(r, t) - bias(r) of output rows row0 .. row0 + band_h
//   bias         (B, 1, H, W) or null: added to every tap here, so the GEMM that builds the kernels does not
//                have to copy it into its output first
//   out, grad    (B, C, H, W)
//   grad_kernels (B, K*K, band_h, W)
// Tap t = ky * K + kx of output pixel (y, x) reads padded[y + ky * dilation, x + kx * dilation] (correlation).
// Loops run along image rows so the innermost loop is a contiguous, vectorisable run of W pixels; threads
// split (sample, row) pairs and each writes only its own rows, so nothing races.
#include <cstdint>
#include <vector>

namespace {

template <typename T>
void apply_forward(const T* padded, const T* kernels, const T* bias, T* out, int64_t batch, int64_t channels, int64_t height,
                   int64_t width, int64_t padded_h, int64_t padded_w, int64_t ksize, int64_t dilation, int64_t row0,
                   int64_t band_h, int nthreads) {
  const int64_t taps = ksize * ksize;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<T> acc(channels * width);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < batch * band_h; ++item) {
      const int64_t b = item / band_h, row = item % band_h, y = row0 + row;
      for (auto& value : acc) value = T(0);
      const T* __restrict b_row = bias ? bias + (b * height + y) * width : nullptr;
      for (int64_t ky = 0; ky < ksize; ++ky) {
        for (int64_t kx = 0; kx < ksize; ++kx) {
          const T* __restrict w_row = kernels + ((b * taps + ky * ksize + kx) * band_h + row) * width;
          for (int64_t c = 0; c < channels; ++c) {
            const T* __restrict x_row =
                padded + ((b * channels + c) * padded_h + y + ky * dilation) * padded_w + kx * dilation;
            T* __restrict a = acc.data() + c * width;
            if (b_row) {
#pragma omp simd
              for (int64_t x = 0; x < width; ++x) a[x] += (w_row[x] + b_row[x]) * x_row[x];
            } else {
#pragma omp simd
              for (int64_t x = 0; x < width; ++x) a[x] += w_row[x] * x_row[x];
            }
          }
        }
      }
      for (int64_t c = 0; c < channels; ++c) {
        T* __restrict o = out + ((b * channels + c) * height + y) * width;
        const T* __restrict a = acc.data() + c * width;
        for (int64_t x = 0; x < width; ++x) o[x] = a[x];
      }
    }
  }
}

// dL/dW(r, t) = sum_c g[c, r] x[c, r + shift_t] for the band's pixels, and (when grad_bias is not null) the
// bias gradient sum_t dL/dW(r, t) of the band's rows of grad_bias (B, 1, H, W).
template <typename T>
void kernel_grad(const T* padded, const T* grad, T* grad_bias, T* grad_kernels, int64_t batch, int64_t channels, int64_t height,
                 int64_t width, int64_t padded_h, int64_t padded_w, int64_t ksize, int64_t dilation, int64_t row0,
                 int64_t band_h, int nthreads) {
  const int64_t taps = ksize * ksize;
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t item = 0; item < batch * band_h; ++item) {
    const int64_t b = item / band_h, row = item % band_h, y = row0 + row;
    T* __restrict gb_row = grad_bias ? grad_bias + (b * height + y) * width : nullptr;
    if (gb_row)
      for (int64_t x = 0; x < width; ++x) gb_row[x] = T(0);
    for (int64_t ky = 0; ky < ksize; ++ky) {
      for (int64_t kx = 0; kx < ksize; ++kx) {
        T* __restrict d_row = grad_kernels + ((b * taps + ky * ksize + kx) * band_h + row) * width;
        for (int64_t c = 0; c < channels; ++c) {
          const T* __restrict x_row =
              padded + ((b * channels + c) * padded_h + y + ky * dilation) * padded_w + kx * dilation;
          const T* __restrict g_row = grad + ((b * channels + c) * height + y) * width;
          if (c == 0) {
#pragma omp simd
            for (int64_t x = 0; x < width; ++x) d_row[x] = g_row[x] * x_row[x];
          } else {
#pragma omp simd
            for (int64_t x = 0; x < width; ++x) d_row[x] += g_row[x] * x_row[x];
          }
        }
        if (gb_row) {
#pragma omp simd
          for (int64_t x = 0; x < width; ++x) gb_row[x] += d_row[x];
        }
      }
    }
  }
}

// grad_padded[c, r + shift_t] += W(r, t) g[c, r], gathered per padded row: the thread that owns padded row py
// adds the contributions of every band row y = py - ky * dilation, so no two threads write the same row.
template <typename T>
void image_grad(const T* kernels, const T* bias, const T* grad, T* grad_padded, int64_t batch, int64_t channels, int64_t height,
                int64_t width, int64_t padded_h, int64_t padded_w, int64_t ksize, int64_t dilation, int64_t row0,
                int64_t band_h, int nthreads) {
  const int64_t taps = ksize * ksize;
  const int64_t rows_out = band_h + dilation * (ksize - 1);  // padded rows row0 .. row0 + rows_out
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t item = 0; item < batch * rows_out; ++item) {
    const int64_t b = item / rows_out, py = row0 + item % rows_out;
    for (int64_t ky = 0; ky < ksize; ++ky) {
      const int64_t y = py - ky * dilation;
      if (y < row0 || y >= row0 + band_h) continue;
      for (int64_t kx = 0; kx < ksize; ++kx) {
        const T* __restrict w_row = kernels + ((b * taps + ky * ksize + kx) * band_h + (y - row0)) * width;
        const T* __restrict b_row = bias ? bias + (b * height + y) * width : nullptr;
        for (int64_t c = 0; c < channels; ++c) {
          const T* __restrict g_row = grad + ((b * channels + c) * height + y) * width;
          T* __restrict p_row = grad_padded + ((b * channels + c) * padded_h + py) * padded_w + kx * dilation;
          if (b_row) {
#pragma omp simd
            for (int64_t x = 0; x < width; ++x) p_row[x] += (w_row[x] + b_row[x]) * g_row[x];
          } else {
#pragma omp simd
            for (int64_t x = 0; x < width; ++x) p_row[x] += w_row[x] * g_row[x];
          }
        }
      }
    }
  }
}

}  // namespace

#define FCDFN_EXPORT(name, T, first, second, third, fourth)                                                    \
  extern "C" void name(const T* first, const T* second, const T* third, T* fourth, int64_t batch, int64_t channels, \
                       int64_t height, int64_t width, int64_t padded_h, int64_t padded_w, int64_t ksize,          \
                       int64_t dilation, int64_t row0, int64_t band_h, int nthreads)
#define FCDFN_ARGS batch, channels, height, width, padded_h, padded_w, ksize, dilation, row0, band_h, nthreads

// Every entry point takes four arrays (the third may be null where noted) and the same sizes.
FCDFN_EXPORT(fcdfn_apply_forward_f32, float, padded, kernels, bias, out) {
  apply_forward(padded, kernels, bias, out, FCDFN_ARGS);
}
FCDFN_EXPORT(fcdfn_apply_forward_f64, double, padded, kernels, bias, out) {
  apply_forward(padded, kernels, bias, out, FCDFN_ARGS);
}
// grad_bias (third) is written, although declared const to share the signature: cast back here.
FCDFN_EXPORT(fcdfn_kernel_grad_f32, float, padded, grad, grad_bias, grad_kernels) {
  kernel_grad(padded, grad, const_cast<float*>(grad_bias), grad_kernels, FCDFN_ARGS);
}
FCDFN_EXPORT(fcdfn_kernel_grad_f64, double, padded, grad, grad_bias, grad_kernels) {
  kernel_grad(padded, grad, const_cast<double*>(grad_bias), grad_kernels, FCDFN_ARGS);
}
FCDFN_EXPORT(fcdfn_image_grad_f32, float, kernels, bias, grad, grad_padded) {
  image_grad(kernels, bias, grad, grad_padded, FCDFN_ARGS);
}
FCDFN_EXPORT(fcdfn_image_grad_f64, double, kernels, bias, grad, grad_padded) {
  image_grad(kernels, bias, grad, grad_padded, FCDFN_ARGS);
}

extern "C" int fcdfn_abi_version() { return 2; }
