# The batched augmentation computes what the tutorial's per-image torchvision transforms compute.
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from augment import (affine_theta, apply_affine, apply_params, augment_batch, color_jitter, draw_params,
                     identity_params, normalize, prepare_batch)
from dataset import FILL, train_transform, val_transform


def picture(seed=0):
    """A product-like picture: a coloured block with texture on a white background."""
    rng = np.random.default_rng(seed)
    array = np.full((80, 60, 3), 255, np.uint8)
    array[15:65, 12:48] = rng.integers(0, 200, (50, 36, 3), dtype=np.uint8) // 2 + np.array([90, 20, 40], np.uint8)
    return Image.fromarray(array)


def as_uint8_batch(img):
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0)


@pytest.mark.parametrize('angle,tx,ty,scale', [(0, 0, 0, 1.0), (13.5, 3, -5, 0.9), (-20, -6, 8, 1.2)])
def test_fixed_affine_gives_torchvision_pixels(angle, tx, ty, scale):
    x = as_uint8_batch(picture()).float() / 255
    ours = apply_affine(x, affine_theta(*[torch.tensor([float(v)]) for v in (angle, tx, ty, scale)]))
    tensor_ref = TF.affine(x, angle=angle, translate=[tx, ty], scale=scale, shear=[0.0, 0.0],
                           interpolation=InterpolationMode.NEAREST, fill=[1.0, 1.0, 1.0])
    assert torch.equal(ours, tensor_ref)
    # The tutorial's PIL path rounds sample positions slightly differently at pixel borders.
    pil_ref = TF.to_tensor(TF.affine(picture(), angle=angle, translate=[tx, ty], scale=scale, shear=[0.0, 0.0],
                                     interpolation=InterpolationMode.NEAREST, fill=FILL))
    same = ((ours[0] - pil_ref).abs() < 1e-6).all(0).float().mean()
    assert same > 0.93


def test_fixed_jitter_gives_torchvision_pixels():
    x = as_uint8_batch(picture()).float() / 255
    f = torch.tensor([1.2])
    for op, ref in ((0, TF.adjust_brightness), (1, TF.adjust_contrast), (2, TF.adjust_saturation)):
        order = torch.tensor([[op, (op + 1) % 3, (op + 2) % 3]])
        one = torch.ones(1)
        factors = [f if i == op else one for i in range(3)]
        assert torch.allclose(color_jitter(x, *factors, order), ref(x, 1.2), atol=1e-5)


def test_identity_draw_leaves_the_image_unchanged():
    images = torch.stack([as_uint8_batch(picture(s))[0] for s in range(4)])
    x = images.float() / 255
    assert torch.equal(apply_params(x, identity_params(4)), x)
    assert torch.allclose(prepare_batch(images)[0], val_transform(picture(0)), atol=1e-6)


def test_each_image_gets_its_own_draw():
    params = draw_params(256, 80, 60, torch.Generator().manual_seed(0), 'cpu')
    assert 0.35 < params['flip'].float().mean() < 0.65
    assert params['angle'].min() >= -20 and params['angle'].max() <= 20
    assert set(params['tx'].tolist()) <= set(range(-6, 7)) and set(params['ty'].tolist()) <= set(range(-8, 9))
    assert params['scale'].min() >= 0.8 and params['scale'].max() <= 1.2
    assert len({tuple(o) for o in params['order'].tolist()}) == 6  # all orders of the three jitters
    assert params['brightness'].std() > 0.1


def test_batched_and_per_image_augmentation_have_the_same_distribution():
    torch.manual_seed(0)
    n = 300
    img = picture()
    reference = torch.stack([train_transform(img) for _ in range(n)])
    ours = augment_batch(as_uint8_batch(img).expand(n, -1, -1, -1), torch.Generator().manual_seed(1))
    assert ours.shape == reference.shape and ours.dtype == torch.float32
    white = normalize(torch.ones(1, 3, 1, 1))
    for stat in (lambda t: t.mean(dim=(1, 2, 3)),                       # brightness per image
                 lambda t: t.std(dim=(1, 2, 3)),                        # contrast per image
                 lambda t: (t - white).abs().sum(1).lt(1e-3).float().mean(dim=(1, 2))):  # white share
        a, b = stat(ours), stat(reference)
        assert abs(a.mean() - b.mean()) < 0.05 * (b.abs().mean() + 0.1), (a.mean(), b.mean())
        assert abs(a.std() - b.std()) < 0.25 * b.std() + 0.01, (a.std(), b.std())
    # Where pixels land on average (the affine's spread): same mean picture.
    assert (ours.mean(0) - reference.mean(0)).abs().mean() < 0.08
