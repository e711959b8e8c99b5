"""``tools/kernel_report.py``: the fused kernels compiled ahead of time for sm_90, no GPU needed.

The parsing tests run everywhere; the compiling ones are skipped (with the reason) where triton or
its bundled ptxas cannot compile for sm_90, and under ``TRITON_INTERPRET=1``.
"""
import json

import pytest

from conftest import load_tool

report = load_tool('kernel_report')
UNAVAILABLE = report.unavailable_reason(90)
needs_sm90_compiler = pytest.mark.skipif(UNAVAILABLE is not None, reason=f'cannot compile for sm_90: {UNAVAILABLE}')

PTXAS_LOG = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_forward_kernel' for 'sm_90a'
ptxas info    : Function properties for _forward_kernel
    872 bytes stack frame, 1108 bytes spill stores, 980 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers
ptxas info    : Compile time = 372.653 ms
"""


def test_parse_ptxas_log():
    assert report.parse_ptxas_log(PTXAS_LOG) == dict(registers=255, stack_frame=872, spill_stores=1108,
                                                     spill_loads=980)
    with pytest.raises(ValueError, match='no register'):
        report.parse_ptxas_log('ptxas info    : 0 bytes gmem\n')


def test_count_tensor_core_instructions():
    ptx = ('mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%f1}, ...;\n'
           'wgmma.mma_async.sync.aligned.m64n32k8.f32.tf32.tf32 ...;\n'
           'wgmma.fence.sync.aligned;\n'  # not an MMA
           'fma.rn.f32 %f2, %f3, %f4, %f5;\n')
    sass = '/*0100*/ HMMA.1688.F32.TF32 R4, R8, R12, R4 ;\n/*0110*/ HGMMA.64x32x8.F32.TF32 gdesc[UR4] ;\n FFMA R1;'
    assert report.count_tensor_core_instructions(ptx, sass) == dict(mma_ptx=1, wgmma_ptx=1, mma_sass=2)
    assert report.count_tensor_core_instructions('fma.rn.f32 ;') == dict(mma_ptx=0, wgmma_ptx=0, mma_sass=None)


def test_markdown_table_has_a_line_per_row():
    row = dict(kernel='forward', dtype='float32', precision='tf32x3', kernel_size=15, dilation=4, num_warps=8,
               num_stages=3, BLOCK_P=32, BLOCK_N=16, BLOCK_T=32, BLOCK_C=4,
               registers=174, spill_stores=0, spill_loads=0, stack_frame=0, shared=53248, mma_ptx=0, wgmma_ptx=0,
               mma_sass=None)
    lines = report.markdown_table([row, dict(row, num_warps=4)]).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith('| forward | float32 | tf32x3 | 15 / 4 | 8 | 3 | 32/16/32/4 | 174 | 0 | 0 |')
    assert lines[2].endswith('| - |')


@needs_sm90_compiler
def test_forward_kernel_compiles_for_sm90_with_plausible_resources(tmp_path, monkeypatch):
    """A small config (N=16, K=3): registers, spills, shared memory; the ieee GEMM uses no tensor cores,
    the op's TF32x3 and 16-bit GEMMs do."""
    monkeypatch.setenv('TRITON_CACHE_DIR', str(tmp_path / 'cache'))
    out = tmp_path / 'report.json'
    assert report.main(['--kernels', 'forward', '--num-basis', '16', '--channels', '1', '--kernel-sizes', '3',
                        '--dilations', '2', '--num-warps', '4', '--num-stages', '2', '--precision', 'ieee',
                        '--json', str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert set(report.FIELDS) <= set(row)
    assert (row['kernel'], row['dtype'], row['num_warps'], row['num_stages'], row['BLOCK_N'], row['BLOCK_C'],
            row['BLOCK_T'], row['kernel_size'], row['dilation']) == ('forward', 'float32', 4, 2, 16, 1, 16, 3, 2)
    assert 1 <= row['registers'] <= 255
    assert row['spill_stores'] >= 0 and row['spill_loads'] >= 0 and row['stack_frame'] >= 0
    assert 0 < row['shared'] <= 228 * 1024  # tl.dot stages its operands in shared memory; H100/H200 limit
    assert row['mma_ptx'] == 0 and row['wgmma_ptx'] == 0  # 'ieee' float32 dot: plain FMA
    from fcdfn_plugin.ops.basis_filter_triton import LAUNCH_CONFIGS
    for dtype in ('float32', 'bfloat16'):  # the op's own first configuration, its GPU precision
        row = report.compile_kernel('forward', dtype, channels=1, num_basis=16, kernel_size=3)
        assert row['mma_ptx'] + row['wgmma_ptx'] > 0, dtype  # on the tensor cores
        first = LAUNCH_CONFIGS['forward'][0]
        assert (row['BLOCK_P'], row['num_warps'], row['num_stages']) == \
            (first['BLOCK_P'], first['num_warps'], first['num_stages'])


def test_configurations_default_to_every_one_autotuning_may_pick():
    from argparse import Namespace

    from fcdfn_plugin.ops.basis_filter_triton import LAUNCH_CONFIGS
    none = Namespace(block_p=None, num_warps=None, num_stages=None)
    assert report.configurations('forward', none) == list(LAUNCH_CONFIGS['forward'])
    first = LAUNCH_CONFIGS['forward'][0]
    given = report.configurations('forward', Namespace(block_p=[32, 64], num_warps=[4], num_stages=None))
    assert given == [dict(BLOCK_P=32, num_warps=4, num_stages=first['num_stages']),
                     dict(BLOCK_P=64, num_warps=4, num_stages=first['num_stages'])]
