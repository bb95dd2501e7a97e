# Step 3 of the tutorial: one MobileNetV2 trunk, three classification heads.
import copy
import hashlib
import io
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision import models


class BatchNorm2d(nn.BatchNorm2d):
    """PyTorch's BatchNorm2d, the same numbers; but with a fixed momentum, which never reads it,
    the count of training batches in its state is left to MultiOutputModel, which advances all 52
    at once. Counted layer by layer, a training step spends 52 kernels on them on a GPU."""

    def counted_by_model(self):
        return self.momentum is not None and self.track_running_stats

    def forward(self, x):
        if not self.counted_by_model():
            return super().forward(x)  # a cumulative average (momentum None) reads its count
        self._check_input_dim(x)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)


# The trunk's ImageNet weights for --pretrained; torch.hub keeps their file, named in their url,
# in TORCH_HOME/hub/checkpoints (train.build_model names it where it cannot be had).
IMAGENET_WEIGHTS = models.MobileNet_V2_Weights.IMAGENET1K_V1


def cached_imagenet_weights():
    """Where torch.hub keeps the ImageNet weights once downloaded: the last part of their url."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints', IMAGENET_WEIGHTS.url.rsplit('/', 1)[-1])


def hash_in_name(path):
    """The start of the file's SHA-256 that torchvision writes into its name (b0353104 of
    mobilenet_v2-b0353104.pth)."""
    return torch.hub.HASH_REGEX.search(os.path.basename(path)).group(1)


def imagenet_state_dict():
    """The trunk's ImageNet weights, downloaded once (their hash checked) or read from torch.hub's
    cache. torch.hub checks a file already there against nothing, and torchvision read it with
    weights_only=False: any MobileNetV2 weights under that name (a copy from elsewhere, as the
    offline advice says) were trained from without a word, and a file from an untrusted mirror
    could run code. A cached file is taken only with the hash in its name, and read as weights."""
    cached = cached_imagenet_weights()
    if not os.path.isfile(cached):
        return IMAGENET_WEIGHTS.get_state_dict(progress=True, check_hash=True, weights_only=True)
    with open(cached, 'rb') as f:
        data = f.read()  # 14 MB, read once: the bytes checked are the bytes loaded
    digest, expected = hashlib.sha256(data).hexdigest(), hash_in_name(cached)
    if not digest.startswith(expected):
        raise ValueError(f'its SHA-256 begins {digest[:8]}, not {expected} as its name says')
    return torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)  # as torch.hub loads it


class MultiOutputModel(nn.Module):
    def __init__(self, n_color_classes, n_gender_classes, n_article_classes, pretrained=False,
                 torchvision_layers=False):
        super().__init__()
        # As in the tutorial the trunk trains from scratch; pretrained=True starts from
        # torchvision's ImageNet weights instead (downloaded once into TORCH_HOME).
        # torchvision_layers=True keeps the trunk's layers exactly as torchvision builds them, as
        # the tutorial had them: the same numbers, 86 more operations a training step (see below);
        # the benchmarks and tests compare the two.
        norm_layer = nn.BatchNorm2d if torchvision_layers else BatchNorm2d
        trunk = models.mobilenet_v2(norm_layer=norm_layer)
        if pretrained:
            trunk.load_state_dict(imagenet_state_dict())
        self.base_model = trunk.features  # the model without its classifier
        # torchvision's ReLU6 layers work in place, which makes autograd copy each one's input for
        # the backward pass: 35 copies a training step, each a kernel on a GPU. Out of place the
        # numbers are the same and nothing is copied (the memory is the same too: the new output
        # takes the copy's place).
        for module in self.base_model.modules():
            if isinstance(module, nn.ReLU6):
                module.inplace = torchvision_layers
        self.batch_norms = [m for m in self.base_model.modules() if isinstance(m, BatchNorm2d)]
        last_channel = trunk.last_channel  # width of the layer before the classifier: 1280
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.color = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(last_channel, n_color_classes))
        self.gender = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(last_channel, n_gender_classes))
        self.article = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(last_channel, n_article_classes))

    @classmethod
    def for_attributes(cls, attributes, pretrained=False, torchvision_layers=False):
        """One output per label of each head of an AttributesDataset."""
        return cls(n_color_classes=attributes.num_colors, n_gender_classes=attributes.num_genders,
                   n_article_classes=attributes.num_articles, pretrained=pretrained,
                   torchvision_layers=torchvision_layers)

    def forward(self, x):
        if self.training:
            # Every batch norm's num_batches_tracked, as PyTorch's own layers count: one
            # multi-tensor kernel on a GPU. Read at each call, since .to() replaces the buffers.
            counts = [bn.num_batches_tracked for bn in self.batch_norms if bn.counted_by_model()]
            if counts:
                torch._foreach_add_(counts, 1)
        x = self.base_model(x)
        x = self.pool(x)
        x = torch.flatten(x, 1)  # (batch, 1280)
        return {'color': self.color(x), 'gender': self.gender(x), 'article': self.article(x)}

    def folded(self):
        """A copy for inference, each batch norm folded into the convolution before it: its fixed
        statistics become the convolution's weights and bias. The same outputs up to float
        rounding, 52 operations fewer: 1.09x to 1.49x the images a second on 2 CPU cores (README).
        For inference only: without its batch norms it would not train as the model does."""
        inference = copy.deepcopy(self).eval()
        for block in list(inference.base_model.modules()):
            children = list(block.named_children())
            for (_, conv), (norm_name, norm) in zip(children, children[1:]):
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    # Into the copy's own convolution (fuse_conv_bn_eval would copy it once more);
                    # the new weights keep its memory format.
                    conv.weight, conv.bias = fuse_conv_bn_weights(
                        conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps,
                        norm.weight, norm.bias)
                    setattr(block, norm_name, nn.Identity())
        inference.batch_norms = []
        return inference

    def get_loss(self, net_output, ground_truth):
        return get_loss(net_output, ground_truth)  # the tutorial calls it as a method

    def num_classes(self):
        return {head: getattr(self, head)[1].out_features for head in ('gender', 'article', 'color')}


def get_loss(net_output, ground_truth):
    """Summed cross-entropy of the three heads, and each head's loss."""
    # .float(): under bf16 autocast the logits are bf16; the loss is summed in fp32.
    losses = {head: F.cross_entropy(net_output[head].float(), ground_truth[f'{head}_labels'])
              for head in ('color', 'gender', 'article')}
    # Added as the tutorial adds them: sum() would start from 0, one addition (a GPU kernel) more.
    return losses['color'] + losses['gender'] + losses['article'], losses
