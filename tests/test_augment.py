# The batched augmentation computes what the tutorial's per-image torchvision transforms compute.
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

import augment
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


def test_fixed_jitter_gives_torchvision_pixels_for_each_image_of_a_batch():
    # Two pictures of different greys, each with its own factor: contrast blends each towards its
    # own mean grey, not the batch's.
    x = torch.cat([as_uint8_batch(picture(0)), as_uint8_batch(picture(1)) // 2]).float() / 255
    f = torch.tensor([1.2, 0.75])
    for op, ref in ((0, TF.adjust_brightness), (1, TF.adjust_contrast), (2, TF.adjust_saturation)):
        order = torch.tensor([[op, (op + 1) % 3, (op + 2) % 3]] * 2)
        factors = [f if i == op else torch.ones(2) for i in range(3)]
        expected = torch.stack([ref(x[i], float(f[i])) for i in range(2)])
        assert torch.allclose(color_jitter(x, *factors, order), expected, atol=1e-5), op


def test_jitter_adjusts_each_image_in_its_own_drawn_order():
    # ColorJitter applies brightness, contrast and saturation in a drawn order, and the order
    # changes the picture (each step clamps, and greys are taken from what the step before left):
    # row i of `order` is image i's sequence of adjustments.
    x = torch.cat([as_uint8_batch(picture(0)), as_uint8_batch(picture(1))]).float() / 255
    order = torch.tensor([[1, 2, 0], [2, 0, 1]])
    factors = (torch.tensor([1.3, 0.7]), torch.tensor([0.6, 1.4]), torch.tensor([1.5, 0.5]))
    refs = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)
    expected = []
    for i in range(2):
        image = x[i]
        for op in order[i].tolist():
            image = refs[op](image, float(factors[op][i]))
        expected.append(image)
    assert torch.allclose(color_jitter(x, *factors, order), torch.stack(expected), atol=1e-5)


def test_a_fixed_flip_mirrors_only_the_images_drawn_for_it():
    x = torch.cat([as_uint8_batch(picture(s)) for s in range(2)]).float() / 255
    assert not torch.equal(x.flip(-1), x)  # the textures are not symmetric
    params = dict(identity_params(2), flip=torch.tensor([True, False]))
    flipped = apply_params(x, params)
    assert torch.equal(flipped[0], TF.hflip(x[0])) and torch.equal(flipped[1], x[1])


def test_identity_draw_leaves_the_image_unchanged(monkeypatch):
    images = torch.stack([as_uint8_batch(picture(s))[0] for s in range(4)])
    x = images.float() / 255
    assert torch.equal(apply_params(x, identity_params(4)), x)
    assert torch.allclose(prepare_batch(images)[0], val_transform(picture(0)), atol=1e-6)
    # and the training path's entry point, drawing the identity, scales and normalises as the
    # validation path does (a division by 256 there was within the distribution test's tolerance)
    monkeypatch.setattr(augment, 'draw_params', lambda n, *_: identity_params(n))
    assert torch.allclose(augment_batch(images, torch.Generator()), prepare_batch(images), atol=1e-6)


def test_augment_batch_draws_for_its_images_height_and_width(monkeypatch):
    # Width and height swapped, a portrait picture's shifts went 8 pixels sideways and 6 up or down
    asked = []
    drawn = augment.draw_params
    monkeypatch.setattr(augment, 'draw_params', lambda *args: asked.append(args[:3]) or drawn(*args))
    augment_batch(torch.zeros(5, 3, 80, 60, dtype=torch.uint8), torch.Generator().manual_seed(0))
    assert asked == [(5, 80, 60)]


def test_the_draws_are_independent_of_each_other_and_of_the_last_call():
    # As torchvision draws them: a ty that followed tx (shifts along a diagonal only), or a draw
    # that repeated the last call's (each chunk of 256 images augmented alike), kept every range.
    generator = torch.Generator().manual_seed(0)
    first, second = (draw_params(20000, 80, 60, generator, 'cpu') for _ in range(2))
    keys = ['flip', 'brightness', 'contrast', 'saturation', 'angle', 'tx', 'ty', 'scale']
    draws = torch.stack([first[key].float() for key in keys] + [first['order'][:, 0].float()])
    correlations = torch.corrcoef(draws) - torch.eye(len(keys) + 1)
    assert correlations.abs().max() < 0.05, correlations
    for key in keys + ['order']:
        assert not torch.equal(first[key], second[key]), key


def torchvision_draws(n, height=80, width=60):
    """n draws of the tutorial's own transforms (dataset.train_transform), made by torchvision."""
    flip, jitter, affine = train_transform.transforms[:3]
    torch.manual_seed(0)
    draws = {key: [] for key in ('brightness', 'contrast', 'saturation', 'order', 'angle', 'tx', 'ty', 'scale')}
    for _ in range(n):
        order, brightness, contrast, saturation, _ = jitter.get_params(
            jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
        angle, (tx, ty), scale, _ = affine.get_params(affine.degrees, affine.translate, affine.scale,
                                                      affine.shear, [width, height])
        for key, value in (('brightness', brightness), ('contrast', contrast), ('saturation', saturation),
                           ('order', tuple(i for i in order.tolist() if i < 3)),  # hue (3) is off
                           ('angle', angle), ('tx', tx), ('ty', ty), ('scale', scale)):
            draws[key].append(value)
    return flip.p, draws


def test_the_tutorials_transforms_change_no_hue_and_shear_nothing_as_augment_py_assumes():
    # augment.py has no hue step and no shear: either set in dataset.py would be dropped there without a word.
    _, jitter, affine = train_transform.transforms[:3]
    assert (jitter.hue, affine.shear) == (None, None)


def test_the_transforms_are_the_tutorials_as_the_readme_gives_them():
    # The agreement tests above compare augment.py with dataset.py's transforms, which share their
    # constants: a range changed at the source moves both, and only this test sees it.
    flip, jitter, affine, to_tensor, norm = train_transform.transforms
    assert flip.p == 0.5
    assert (jitter.brightness, jitter.contrast, jitter.saturation) == ((0.7, 1.3),) * 3
    assert (affine.degrees, affine.translate, affine.scale) == ([-20.0, 20.0], (0.1, 0.1), (0.8, 1.2))
    assert (affine.interpolation, tuple(affine.fill)) == (InterpolationMode.NEAREST, (255, 255, 255))
    assert isinstance(to_tensor, type(val_transform.transforms[0]))
    for transform in (norm, val_transform.transforms[1]):
        assert (transform.mean, transform.std) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def test_each_image_gets_its_own_draw_from_the_tutorials_ranges():
    # Every parameter is drawn per image as torchvision draws it for the tutorial's transforms:
    # the same quantiles, so a narrower or shifted range (a rotation of 10 degrees instead of 20,
    # no scaling, no saturation) fails here, not only one outside the range.
    n = 20000
    flip_p, reference = torchvision_draws(n)
    ours = draw_params(n, 80, 60, torch.Generator().manual_seed(0), 'cpu')
    assert abs(ours['flip'].float().mean() - flip_p) < 0.02
    levels = torch.tensor([0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
    for key in ('brightness', 'contrast', 'saturation', 'angle', 'tx', 'ty', 'scale'):
        expected = torch.tensor(reference[key], dtype=torch.float32)
        spread = expected.max() - expected.min()
        assert spread > 0, key
        got = ours[key].float().quantile(levels)
        assert (got - expected.quantile(levels)).abs().max() <= 0.02 * spread, (key, got, expected.quantile(levels))
    assert set(ours['tx'].tolist()) == set(reference['tx'])  # whole pixels, as RandomAffine moves them
    assert set(ours['ty'].tolist()) == set(reference['ty'])
    # each image applies the three jitters in its own order, all six orders equally often
    orders = [tuple(o) for o in ours['order'].tolist()]
    for order in set(reference['order']):
        assert abs(orders.count(order) - reference['order'].count(order)) / n < 0.02, order
    assert len(set(orders)) == len(set(reference['order'])) == 6


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
