"""Compile the fused basis-filter kernels for a GPU architecture (no GPU needed) and report their resources.

    python tools/kernel_report.py [--arch 90] [--num-basis 90] [--channels 3] [--dtypes float32 bfloat16]
                                  [--kernels forward backward_image backward_coeffs backward_basis]
                                  [--kernel-sizes 15 7 3] [--dilations 1 4] [--precision tf32x3]
                                  [--block-p 32 64] [--num-warps 4 8] [--num-stages 1 3]
                                  [--json report.json] [--fail-on-spill]

Each Triton kernel of ``fcdfn_plugin/ops/basis_filter_triton.py`` is compiled ahead of time by
``triton.compile`` for ``GPUTarget('cuda', ARCH, 32)`` with the compile-time constants the op launches
it with (``block_meta``: kernel size, dilation, BLOCK_N from N, BLOCK_C from C, tap chunk, GEMM
precision: TF32x3 for float32 on a GPU, the input dtype for 16-bit inputs) and the pointer dtypes of its
inputs (the atomically accumulated image gradient and the grad-basis partials are float32 whatever the
input dtype), at every configuration of the op's ``LAUNCH_CONFIGS`` (pixel tile, warps, pipelining
stages: each one autotuning may pick) unless ``--block-p`` / ``--num-warps`` / ``--num-stages`` list
others. For each it reports:

* registers per thread, spill stores and loads (bytes) and stack frame, from ``ptxas -v`` run on
  Triton's PTX with the flags Triton itself uses (the ptxas bundled with triton);
* shared memory (bytes) Triton allocates (``metadata.shared``);
* tensor-core instructions: ``mma`` / ``wgmma`` in the PTX, ``HMMA`` / ``HGMMA`` in the SASS (via
  cuobjdump; '-' when it is not available).

Runtime int arguments (sizes) are compiled as plain i32 (the JIT would also specialise a value of 1
and multiples of 16); pointers as 16-byte aligned, as torch allocations are. A markdown
table goes to stdout; ``--json`` also writes the rows. Exit status 1 when a kernel spills and
``--fail-on-spill`` is given.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DTYPES = {'float32': 'fp32', 'float16': 'fp16', 'bfloat16': 'bf16'}
FLOAT32_POINTERS = ('grad_padded_ptr', 'partial_ptr')  # accumulated in float32 whatever the input dtype
FIELDS = ('kernel', 'dtype', 'num_warps', 'num_stages', 'registers', 'spill_stores', 'spill_loads', 'stack_frame',
          'shared', 'mma_ptx', 'wgmma_ptx', 'mma_sass')


class CompileUnavailable(RuntimeError):
    """Triton (or its ptxas) cannot compile for the requested target on this machine."""


def unavailable_reason(arch=90):
    """Why kernels cannot be compiled for ``sm_<arch>`` here (a sentence), or None when they can."""
    if os.environ.get('TRITON_INTERPRET') == '1':
        return 'TRITON_INTERPRET=1 builds the kernels for the interpreter; unset it to compile them'
    try:
        import triton  # noqa: F401
        from triton.backends import backends
    except ImportError as error:
        return f'triton cannot be imported: {error}'
    if 'nvidia' not in backends:
        return "this triton has no NVIDIA backend ('nvidia' not in triton.backends.backends)"
    try:
        path, gpu_name = _ptxas(arch)
        subprocess.run([path, '--version'], check=True, capture_output=True, timeout=60)
    except (CompileUnavailable, OSError, subprocess.SubprocessError) as error:
        return f'the ptxas of triton cannot run: {error}'
    return None


def parse_ptxas_log(log):
    """Registers, spill stores/loads and stack frame (bytes) of the single entry function of a ``ptxas -v`` log."""
    registers = re.search(r'Used (\d+) registers', log)
    frame = re.search(r'(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads', log)
    if registers is None or frame is None:
        raise ValueError(f'no register or spill line in the ptxas log:\n{log}')
    return dict(registers=int(registers.group(1)), stack_frame=int(frame.group(1)),
                spill_stores=int(frame.group(2)), spill_loads=int(frame.group(3)))


def count_tensor_core_instructions(ptx, sass=None):
    """Counts of warp-level MMA (``mma.sync``) and Hopper ``wgmma`` in the PTX, HMMA/HGMMA in the SASS (or None)."""
    return dict(mma_ptx=len(re.findall(r'\bmma\.sync\b', ptx)),
                wgmma_ptx=len(re.findall(r'\bwgmma\.mma_async\b', ptx)),
                mma_sass=None if sass is None else len(re.findall(r'\b(?:HMMA|HGMMA)\b', sass)))


def _ptxas(arch):
    """Path of the ptxas Triton uses for ``arch`` and the ``--gpu-name`` it passes."""
    try:
        from triton import knobs
        tool = knobs.nvidia.ptxas_blackwell if arch >= 100 and hasattr(knobs.nvidia, 'ptxas_blackwell') else \
            knobs.nvidia.ptxas
        path = getattr(tool, 'path', None)
    except (ImportError, AttributeError) as error:  # an older triton without knobs
        raise CompileUnavailable(f'cannot locate the ptxas of this triton: {error}')
    if not path or not os.path.exists(path):
        raise CompileUnavailable('no ptxas found (triton bundles one under backends/nvidia/bin)')
    return path, f"sm_{arch}{'a' if arch >= 90 else ''}"


def ptxas_resources(ptx, arch):
    """``ptxas -v`` on ``ptx`` with Triton's own flags: registers, spills, stack frame."""
    path, gpu_name = _ptxas(arch)
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, 'kernel.ptx')
        with open(source, 'w') as handle:
            handle.write(ptx)
        result = subprocess.run([path, '-lineinfo', '-v', '--regAllocOptLevel=2', f'--gpu-name={gpu_name}', source,
                                 '-o', source + '.o'], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'ptxas failed ({result.returncode}): {result.stderr.strip()[-500:]}')
    return parse_ptxas_log(result.stderr + result.stdout)


def sass_of(cubin):
    """SASS of a cubin via triton's cuobjdump, or None where that is not available."""
    try:
        from triton.tools.disasm import get_sass
        return get_sass(cubin)
    except Exception:  # noqa: BLE001  (cuobjdump missing or failing: the SASS column stays empty)
        return None


def compile_kernel(name, dtype='float32', channels=3, num_basis=90, precision='tf32x3', config=None, arch=90,
                   kernel_size=15, dilation=1):
    """Compile one kernel ahead of time for ``arch`` in ``config`` (BLOCK_P, num_warps, num_stages; default:
    the op's first configuration of that launch); returns its report row (see :data:`FIELDS`)."""
    reason = unavailable_reason(arch)
    if reason is not None:
        raise CompileUnavailable(reason)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from fcdfn_plugin.ops import basis_filter_triton as fused
    kernel, flags = fused.KERNELS[name]
    if fused.interpreted():
        raise CompileUnavailable('the kernels were built by the interpreter (unset TRITON_INTERPRET)')
    config = dict(fused.LAUNCH_CONFIGS[name][0] if config is None else config)
    num_warps, num_stages = config.pop('num_warps'), config.pop('num_stages')
    constants = dict(fused.block_meta(channels, num_basis, kernel_size, dilation, precision,
                                      half=dtype != 'float32'), **flags, **config)
    signature, attrs = {}, {}
    for index, arg in enumerate(kernel.arg_names):
        if arg in constants:
            signature[arg] = 'constexpr'
        elif arg.endswith('_ptr'):
            signature[arg] = '*fp32' if arg in FLOAT32_POINTERS else '*' + DTYPES[dtype]
            attrs[(index,)] = [['tt.divisibility', 16]]
        else:
            signature[arg] = 'i32'
    compiled = triton.compile(ASTSource(kernel, signature, constants, attrs), target=GPUTarget('cuda', arch, 32),
                              options=dict(num_warps=num_warps, num_stages=num_stages))
    row = dict(kernel=name, dtype=dtype, num_warps=num_warps, num_stages=num_stages, channels=channels,
               num_basis=num_basis, kernel_size=kernel_size, dilation=dilation,
               precision='16-bit' if dtype != 'float32' else precision,
               arch=arch, **{k: v for k, v in constants.items() if k.startswith('BLOCK_')})
    row.update(ptxas_resources(compiled.asm['ptx'], arch))
    row['shared'] = int(compiled.metadata.shared)
    row.update(count_tensor_core_instructions(compiled.asm['ptx'], sass_of(compiled.asm['cubin'])))
    return row


def markdown_table(rows):
    """The rows as a markdown table (one line per kernel and configuration)."""
    header = ['kernel', 'dtype', 'GEMM', 'K / dilation', 'warps', 'stages', 'blocks P/N/T/C', 'registers',
              'spill stores B', 'spill loads B', 'stack B', 'shared B', 'mma (PTX)', 'wgmma (PTX)', 'HMMA/HGMMA (SASS)']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in rows:
        blocks = '/'.join(str(row[k]) for k in ('BLOCK_P', 'BLOCK_N', 'BLOCK_T', 'BLOCK_C'))
        values = [row['kernel'], row['dtype'], row.get('precision', '-'),
                  f"{row.get('kernel_size', '-')} / {row.get('dilation', '-')}", row['num_warps'], row['num_stages'],
                  blocks, row['registers'], row['spill_stores'],
                  row['spill_loads'], row['stack_frame'], row['shared'], row['mma_ptx'], row['wgmma_ptx'],
                  '-' if row['mma_sass'] is None else row['mma_sass']]
        lines.append('| ' + ' | '.join(str(v) for v in values) + ' |')
    return '\n'.join(lines)


def configurations(name, args):
    """The launch configurations to compile ``name`` at: the op's own (every one autotuning may pick), or
    the product of the --block-p / --num-warps / --num-stages given (the op's first for those not given)."""
    from fcdfn_plugin.ops.basis_filter_triton import LAUNCH_CONFIGS
    if not (args.block_p or args.num_warps or args.num_stages):
        return [dict(config) for config in LAUNCH_CONFIGS[name]]
    first = LAUNCH_CONFIGS[name][0]
    return [dict(BLOCK_P=p, num_warps=w, num_stages=s) for p in args.block_p or [first['BLOCK_P']]
            for w in args.num_warps or [first['num_warps']] for s in args.num_stages or [first['num_stages']]]


def main(argv=None):
    from fcdfn_plugin.ops.basis_filter_triton import KERNELS
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', type=int, default=90, help='compute capability as an int (90: Hopper, sm_90a)')
    parser.add_argument('--num-basis', type=int, default=90, help='N basis kernels (sets BLOCK_N; paper: 90)')
    parser.add_argument('--channels', type=int, default=3, help='image channels C (sets BLOCK_C)')
    parser.add_argument('--dtypes', nargs='+', choices=sorted(DTYPES), default=['float32'],
                        help='input dtypes (under autocast the op runs in float32; float16/bfloat16 for half inputs)')
    parser.add_argument('--kernels', nargs='+', choices=sorted(KERNELS), default=list(KERNELS))
    parser.add_argument('--block-p', type=int, nargs='+', default=None,
                        help="pixels per tile to compile at (default: the op's own LAUNCH_CONFIGS of each kernel)")
    parser.add_argument('--num-warps', type=int, nargs='+', default=None,
                        help="warps to compile at (default: the op's own LAUNCH_CONFIGS of each kernel)")
    parser.add_argument('--num-stages', type=int, nargs='+', default=None,
                        help="software-pipelining stages to compile at (default: the op's own of each kernel)")
    parser.add_argument('--precision', choices=['ieee', 'tf32', 'tf32x3'], default='tf32x3',
                        help="float32 tl.dot input precision: the op's 'tf32x3' on a GPU, 'tf32' when torch "
                             "allows TF32 matmuls, 'ieee' (plain FMA) for comparison; 16-bit inputs use their dtype")
    parser.add_argument('--kernel-sizes', type=int, nargs='+', default=[15],
                        help='kernel sizes K to compile for (compile-time constants; FCDFN: 15, 7, 3)')
    parser.add_argument('--dilations', type=int, nargs='+', default=[1],
                        help='dilations to compile for (compile-time constants; FCDFN coarse kernel: 4)')
    parser.add_argument('--json', default=None, help='also write the rows to this JSON file')
    parser.add_argument('--fail-on-spill', action='store_true', help='exit 1 when any kernel spills')
    args = parser.parse_args(argv)
    if args.num_basis < 1 or args.channels < 1:
        parser.error('--num-basis and --channels must be at least 1')
    rows = []
    try:
        for name in args.kernels:
            for dtype in args.dtypes:
                for config in configurations(name, args):
                    for size in args.kernel_sizes:
                        for dilation in args.dilations:
                            rows.append(compile_kernel(name, dtype, args.channels, args.num_basis, args.precision,
                                                       config, args.arch, size, dilation))
                            print(f'compiled {name} {dtype} K={size} dilation={dilation} {config}',
                                  file=sys.stderr, flush=True)
    except CompileUnavailable as error:
        raise SystemExit(f'error: {error}')
    print(f'sm_{args.arch}, N={args.num_basis}, C={args.channels}, precision {args.precision}\n')
    print(markdown_table(rows))
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(rows, handle, indent=1)
    if args.fail_on_spill and any(row['spill_stores'] or row['spill_loads'] for row in rows):
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
