"""FCDFNLoss and its terms: known answers, scikit-image's SSIM as reference, batch and gradient properties."""
import numpy as np
import pytest
import torch
from basicsr.losses import build_loss
from basicsr.utils.registry import LOSS_REGISTRY
from skimage.metrics import structural_similarity

from fcdfn_plugin.losses import FCDFNGradientLoss, FCDFNLoss, FCDFNSSIMLoss, gradient_loss, ssim


def _pair(batch=2, channels=3, height=24, width=29, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(batch, channels, height, width, generator=generator, dtype=dtype)
    noise = 0.1 * torch.randn(batch, channels, height, width, generator=generator, dtype=dtype)
    return (target + noise).clamp(0, 1), target


def test_ssim_of_image_with_itself_is_one():
    img, _ = _pair(dtype=torch.float32)
    assert torch.allclose(ssim(img, img), torch.tensor(1.0), atol=1e-6)
    assert torch.allclose(ssim(img, img, reduction='none'), torch.ones(2), atol=1e-6)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('size', [(11, 11), (24, 29), (40, 33)])
def test_ssim_matches_scikit_image(dtype, size):
    pred, target = _pair(batch=3, height=size[0], width=size[1], seed=sum(size), dtype=dtype)
    ours = ssim(pred, target, reduction='none')
    for index in range(pred.shape[0]):
        reference = structural_similarity(
            pred[index].double().numpy(), target[index].double().numpy(), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0, channel_axis=0)
        assert abs(ours[index].item() - reference) < 1e-4, (index, ours[index].item(), reference)
    assert torch.allclose(ssim(pred, target), ours.mean())


def test_ssim_single_channel_and_unrelated_images_are_low():
    generator = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 1, 1, 32, 32, generator=generator, dtype=torch.float64)
    reference = structural_similarity(a[0, 0].numpy(), b[0, 0].numpy(), gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1.0)
    assert abs(ssim(a, b).item() - reference) < 1e-6
    assert ssim(a, b).item() < 0.1


def test_ssim_rejects_bad_input():
    img = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match='smaller than the 11x11 window'):
        ssim(img[..., :10, :], img[..., :10, :])
    with pytest.raises(ValueError, match='shapes differ'):
        ssim(img, img[..., :15])
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        ssim(img[0], img[0])
    with pytest.raises(ValueError, match='reduction'):
        ssim(img, img, reduction='sum')
    with pytest.raises(ValueError, match='odd'):
        FCDFNSSIMLoss(window_size=10)


def test_gradient_loss_hand_computed():
    pred = torch.tensor([[[[0., 1., 3.], [2., 2., 2.]]]])  # (1, 1, 2, 3)
    target = torch.zeros_like(pred)
    # dx rows: [1, 2] and [0, 0] -> mean 3/4; dy columns: [2, 1, -1] -> mean |.| 4/3
    assert torch.allclose(gradient_loss(pred, target), torch.tensor(3 / 4 + 4 / 3))
    # Swapping the arguments does not change an absolute difference.
    assert torch.allclose(gradient_loss(target, pred), torch.tensor(3 / 4 + 4 / 3))


def test_gradient_loss_matches_slow_loops():
    pred, target = _pair(batch=1, channels=2, height=5, width=6)
    p, t = pred[0].numpy(), target[0].numpy()
    dx_terms = [abs((p[c, i, j + 1] - p[c, i, j]) - (t[c, i, j + 1] - t[c, i, j]))
                for c in range(2) for i in range(5) for j in range(5)]
    dy_terms = [abs((p[c, i + 1, j] - p[c, i, j]) - (t[c, i + 1, j] - t[c, i, j]))
                for c in range(2) for i in range(4) for j in range(6)]
    expected = np.mean(dx_terms) + np.mean(dy_terms)
    assert abs(gradient_loss(pred, target).item() - expected) < 1e-12


def test_constant_shift_changes_l2_but_not_gradient_term():
    _, target = _pair()
    shifted = target + 0.2
    terms = FCDFNLoss().terms(shifted, target)
    assert torch.allclose(terms['l_rec'], torch.tensor(0.04, dtype=target.dtype))
    assert terms['l_grad'].abs().item() < 1e-12


def test_fcdfn_loss_is_weighted_sum_of_terms():
    pred, target = _pair()
    loss = FCDFNLoss(loss_weight=2.0, lambda_grad=0.5, lambda_ssim=0.3)
    expected = 2.0 * (torch.mean((pred - target)**2) + 0.5 * gradient_loss(pred, target) + 0.3 *
                      (1 - ssim(pred, target)))
    assert torch.allclose(loss(pred, target), expected)
    terms = loss.terms(pred, target)
    assert set(terms) == {'l_rec', 'l_grad', 'l_ssim', 'l_total'}
    assert torch.allclose(terms['l_total'], expected)
    assert torch.allclose(terms['l_ssim'], 1 - ssim(pred, target))
    # The paper's defaults: lambda_grad = 1, lambda_ssim = 0.1.
    default = FCDFNLoss()(pred, target)
    assert torch.allclose(default, terms['l_rec'] + terms['l_grad'] + 0.1 * terms['l_ssim'])
    # The standalone modules give the same terms.
    assert torch.allclose(FCDFNSSIMLoss(loss_weight=0.3)(pred, target), 0.3 * terms['l_ssim'])
    assert torch.allclose(FCDFNGradientLoss(loss_weight=0.5)(pred, target), 0.5 * terms['l_grad'])


@pytest.mark.parametrize('loss', [FCDFNLoss(), FCDFNSSIMLoss(), FCDFNGradientLoss()], ids=lambda m: type(m).__name__)
def test_batch_of_2b_is_mean_of_two_halves(loss):
    pred, target = _pair(batch=4)
    whole = loss(pred, target)
    halves = (loss(pred[:2], target[:2]) + loss(pred[2:], target[2:])) / 2
    assert torch.allclose(whole, halves, atol=1e-12)


def test_per_image_reduction():
    pred, target = _pair(batch=3)
    per_image = FCDFNGradientLoss(reduction='none')(pred, target)
    assert per_image.shape == (3, )
    assert torch.allclose(per_image[1], gradient_loss(pred[1:2], target[1:2]))
    assert FCDFNSSIMLoss(reduction='none')(pred, target).shape == (3, )


def test_gradients_flow_and_vanish_at_the_optimum():
    pred, target = _pair(dtype=torch.float32)
    pred = pred.clone().requires_grad_(True)
    FCDFNLoss()(pred, target).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # float64 gradcheck of each term on a tiny input (the gradient term is piecewise linear: keep away from kinks).
    small_pred, small_target = _pair(batch=1, channels=1, height=11, width=12)
    small_pred = small_pred.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: ssim(p, small_target), (small_pred, ))
    assert torch.autograd.gradcheck(lambda p: gradient_loss(p, small_target), (small_pred, ))


def test_registered_and_buildable_from_options():
    for name in ('FCDFNLoss', 'FCDFNSSIMLoss', 'FCDFNGradientLoss'):
        assert name in LOSS_REGISTRY
    loss = build_loss({'type': 'FCDFNLoss', 'loss_weight': 1.0, 'lambda_grad': 1.0, 'lambda_ssim': 0.1})
    assert isinstance(loss, FCDFNLoss)
    with pytest.raises(TypeError):
        build_loss({'type': 'FCDFNLoss', 'lambda_gard': 1.0})  # a typo in the YAML is an error, not ignored
    with pytest.raises(ValueError, match='weight'):
        loss(*_pair(), weight=torch.ones(2, 1, 24, 29))
    with pytest.raises(ValueError, match='lambda_ssim'):
        FCDFNLoss(lambda_ssim=-1)
