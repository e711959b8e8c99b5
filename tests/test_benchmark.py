"""tools/benchmark.py: the op and model workers in-process at tiny sizes, and the CUDA-only options
refused clearly on a machine without a GPU (the GPU rows themselves run in tools/gpu_check.sh)."""
import json

import pytest
import torch

from conftest import load_tool

benchmark = load_tool('benchmark')
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal without a GPU')


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize('impl', ['banded', 'naive'])
def test_op_worker_times_forward_and_backward(impl, capsys):
    benchmark.main(['op', '--worker', impl, '--size', '12', '--batch', '1', '--num-basis', '4', '--kernel', '3',
                    '--repeat', '2'])
    result = last_json(capsys)
    assert result['impl'] == impl and result['device'] == 'cpu' and len(result['all_seconds']) == 2
    assert result['seconds'] > 0


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_model_worker_trains_with_amp(amp, capsys):
    benchmark.main(['model', '--worker', 'train-FCDFNArch', '--base-channels', '4', '--depth', '2', '--num-basis', '4',
                    '--batch', '1', '--size', '16', '--repeat', '1', '--amp', amp])
    result = last_json(capsys)
    assert result['arch'] == 'FCDFNArch' and result['amp'] == amp and result['seconds'] > 0


@no_gpu
@pytest.mark.parametrize('argv,message', [
    (['op', '--device', 'cuda'], 'no CUDA GPU'),
    (['model', '--device', 'cuda', '--amp', 'bf16'], 'no CUDA GPU'),
    (['step', '-opt', 'options/fcdfn.yml', '--device', 'cuda'], 'no CUDA GPU'),
    (['op', '--impls', 'fused'], 'needs --device cuda'),
    (['model', '--filter-impl', 'fused'], 'needs --device cuda'),
])
def test_cuda_only_options_are_refused_without_a_gpu(argv, message):
    with pytest.raises(SystemExit, match=message):
        benchmark.main(argv)


def test_data_times_samples_with_and_without_the_decoded_cache(tmp_path, capsys):
    import cv2
    import numpy as np
    import yaml
    rng = np.random.default_rng(0)
    for number in range(2):
        for role in ('ambient', 'flash'):
            cv2.imwrite(str(tmp_path / f'Toys_{number:03d}_{role}.png'), rng.integers(0, 256, (72, 88, 3), np.uint8))
    options = tmp_path / 'options.yml'
    options.write_text(yaml.safe_dump({'datasets': {'train': {
        'name': 'toy', 'type': 'FlashLowLightDataset', 'dataroot': str(tmp_path), 'crop_size': 48}}}))
    benchmark.main(['data', '-opt', str(options), '--samples', '4'])
    out = capsys.readouterr().out
    assert 'decoded every read' in out and 'decoded-image cache' in out and 'cache speed-up' in out
