# The tutorial's train_transform, applied to a whole batch at once on the GPU (or CPU) with a
# separate random draw per image. Same steps, same order, same ranges as dataset.train_transform:
# flip, colour jitter (brightness, contrast, saturation in a random order), random affine with
# nearest sampling and white fill, then normalisation. tests/test_augment.py checks they agree.
import math

import torch
import torch.nn.functional as F

from dataset import AFFINE, FLIP_P, JITTER, MEAN, STD

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


def grayscale(x):
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def blend(x, other, factor):
    return (factor * x + (1 - factor) * other).clamp_(0, 1)


def adjust(x, op, factor):
    if op == 0:  # brightness
        return (x * factor).clamp_(0, 1)
    if op == 1:  # contrast: towards the mean grey of each image
        return blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)
    return blend(x, grayscale(x), factor)  # saturation: towards the image's own greys


def color_jitter(x, brightness, contrast, saturation, order):
    """Per-image factors (N,) and order (N, 3): a permutation of 0=brightness, 1=contrast, 2=saturation."""
    factors = torch.stack([brightness, contrast, saturation], dim=1).view(-1, 3, 1, 1, 1)
    x = x.clone()
    for step in range(3):
        for op in range(3):
            # Only the images whose step-th adjustment is op: each image is adjusted 3 times, not 9.
            idx = (order[:, step] == op).nonzero().squeeze(1)
            if idx.numel():
                x[idx] = adjust(x[idx], op, factors[idx, op])
    return x


def affine_theta(angle, tx, ty, scale):
    """Per-image inverse affine matrices (N, 2, 3), in pixels about the image centre.

    The same matrix torchvision.transforms.functional.affine builds for a tensor (shear 0):
    rotation by angle degrees, scaling, then translation by (tx, ty) pixels.
    """
    rot = angle * (math.pi / 180)
    cos, sin = torch.cos(rot) / scale, torch.sin(rot) / scale
    theta = torch.stack([cos, sin, -(cos * tx + sin * ty),
                         -sin, cos, -(-sin * tx + cos * ty)], dim=1)
    return theta.view(-1, 2, 3)


def apply_affine(x, theta):
    n, _, h, w = x.shape
    # Output pixel centres in pixels about the image centre, as torchvision's _gen_affine_grid.
    xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, w, device=x.device)
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, h, device=x.device)
    base = torch.stack([xs.expand(h, w), ys.unsqueeze(1).expand(h, w), torch.ones(h, w, device=x.device)], -1)
    scale = torch.tensor([0.5 * w, 0.5 * h], device=x.device)
    grid = (base.view(1, h * w, 3) @ theta.transpose(1, 2).to(base.dtype)) / scale
    # A fourth channel of ones marks the pixels that come from inside the picture; the rest get
    # the white fill (torchvision does the same in _apply_grid_transform).
    x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    out = F.grid_sample(x, grid.view(n, h, w, 2), mode='nearest', padding_mode='zeros', align_corners=False)
    return torch.where(out[:, 3:] < 0.5, 1.0, out[:, :3])


def draw_params(n, height, width, generator, device):
    """One random draw per image, with RandomHorizontalFlip's, ColorJitter's and RandomAffine's ranges."""
    def u(low, high):
        return torch.rand(n, generator=generator, device=device) * (high - low) + low

    max_dx, max_dy = AFFINE['translate'][0] * width, AFFINE['translate'][1] * height
    return {
        'flip': torch.rand(n, generator=generator, device=device) < FLIP_P,
        'brightness': u(1 - JITTER['brightness'], 1 + JITTER['brightness']),
        'contrast': u(1 - JITTER['contrast'], 1 + JITTER['contrast']),
        'saturation': u(1 - JITTER['saturation'], 1 + JITTER['saturation']),
        # Like ColorJitter, each image applies the three adjustments in its own random order.
        'order': torch.rand(n, 3, generator=generator, device=device).argsort(dim=1),
        'angle': u(-AFFINE['degrees'], AFFINE['degrees']),
        'tx': u(-max_dx, max_dx).round(),  # RandomAffine translates by whole pixels
        'ty': u(-max_dy, max_dy).round(),
        'scale': u(*AFFINE['scale']),
    }


def identity_params(n, device='cpu'):
    ones, zeros = torch.ones(n, device=device), torch.zeros(n, device=device)
    return {'flip': zeros.bool(), 'brightness': ones, 'contrast': ones, 'saturation': ones,
            'order': torch.arange(3, device=device).repeat(n, 1), 'angle': zeros, 'tx': zeros,
            'ty': zeros, 'scale': ones}


def apply_params(x, p):
    """Float images in [0, 1] (N, 3, H, W) -> augmented images in [0, 1]."""
    x = torch.where(p['flip'].view(-1, 1, 1, 1), x.flip(-1), x)
    x = color_jitter(x, p['brightness'], p['contrast'], p['saturation'], p['order'])
    return apply_affine(x, affine_theta(p['angle'], p['tx'], p['ty'], p['scale']))


def normalize(x):
    mean = torch.tensor(MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def augment_batch(images, generator):
    """uint8 images (N, 3, H, W) -> augmented, normalised float32 images, one draw per image."""
    x = images.float().div_(255)
    n, _, height, width = x.shape
    return normalize(apply_params(x, draw_params(n, height, width, generator, x.device)))


def prepare_batch(images):
    """uint8 images -> normalised float32 images: the val_transform, batched."""
    return normalize(images.float().div_(255))
