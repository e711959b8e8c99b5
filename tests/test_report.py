"""Log parsing and figure helpers used by the demo and the ablation runner."""
import numpy as np
import pytest

from fcdfn_plugin.utils.report import comparison_grid, final_validation, parse_train_log, read_image_bgr8

LOG = """2026-11-27 09:00:00,000 INFO: Start training from epoch: 0, iter: 0
2026-11-27 09:00:10,000 INFO: [FCDFN..][epoch:  0, iter:      20, lr:(1.000e-03,)] [eta: 0:01:00, time (data): 0.4 (0.01)] l_rec: 1.0e-02 l_total: 5.0e-02 
2026-11-27 09:00:20,000 INFO: Validation ToyFAID_test
\t # psnr: 20.5000\tBest: 20.5000 @ 20 iter
\t # ssim: 0.6000\tBest: 0.6000 @ 20 iter

2026-11-27 09:00:30,000 INFO: [FCDFN..][epoch:  0, iter:   1,040, lr:(1.000e-04,)] [eta: 0:00:00, time (data): 0.4 (0.01)] l_rec: 8.0e-03 l_total: 4.0e-02 
2026-11-27 09:00:40,000 INFO: Validation ToyFAID_test
\t # psnr: 22.2500\tBest: 22.2500 @ 1040 iter
\t # ssim: 0.7500\tBest: 0.7500 @ 1040 iter
"""


def test_parse_train_log_and_final_validation(tmp_path):
    path = tmp_path / 'train.log'
    path.write_text(LOG)
    curves = parse_train_log(path)
    assert curves['train'] == {'l_rec': [(20, 1e-2), (1040, 8e-3)], 'l_total': [(20, 5e-2), (1040, 4e-2)]}
    assert curves['val'] == {'psnr': [(20, 20.5), (1040, 22.25)], 'ssim': [(20, 0.6), (1040, 0.75)]}
    assert curves['seconds'] == [(20, 0.4), (1040, 0.4)]
    assert final_validation(path) == {'psnr': 22.25, 'ssim': 0.75}
    path.write_text(LOG.split('2026-11-27 09:00:20')[0])
    with pytest.raises(RuntimeError, match='no validation'):
        final_validation(path)


def test_comparison_grid_layout_and_16_bit_reading(tmp_path):
    import cv2
    sixteen = np.full((8, 10, 3), 65535 // 2, np.uint16)
    cv2.imwrite(str(tmp_path / 'a.png'), sixteen)
    image = read_image_bgr8(str(tmp_path / 'a.png'))
    assert image.dtype == np.uint8 and int(image[0, 0, 0]) == 127  # 32767 / 257 = 127.498 -> 127
    grid = comparison_grid([[image, image], [image, image]], ['x', 'y'], gap=4)
    assert grid.shape == (2 * (8 + 22) + 4, 2 * 10 + 4, 3)
    with pytest.raises(ValueError, match='2 images'):
        comparison_grid([[image]], ['x', 'y'])
    with pytest.raises(FileNotFoundError):
        read_image_bgr8(str(tmp_path / 'missing.png'))
