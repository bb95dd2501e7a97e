# Step 3 of the tutorial: one MobileNetV2 trunk, three classification heads.
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import models


class MultiOutputModel(nn.Module):
    def __init__(self, n_color_classes, n_gender_classes, n_article_classes, pretrained=False):
        super().__init__()
        # As in the tutorial the trunk trains from scratch; pretrained=True starts from
        # torchvision's ImageNet weights instead (downloaded once into TORCH_HOME).
        weights = models.MobileNet_V2_Weights.IMAGENET1K_V1 if pretrained else None
        trunk = models.mobilenet_v2(weights=weights)
        self.base_model = trunk.features  # the model without its classifier
        last_channel = trunk.last_channel  # width of the layer before the classifier: 1280
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.color = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(last_channel, n_color_classes))
        self.gender = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(last_channel, n_gender_classes))
        self.article = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(last_channel, n_article_classes))

    @classmethod
    def for_attributes(cls, attributes, pretrained=False):
        """One output per label of each head of an AttributesDataset."""
        return cls(n_color_classes=attributes.num_colors, n_gender_classes=attributes.num_genders,
                   n_article_classes=attributes.num_articles, pretrained=pretrained)

    def forward(self, x):
        x = self.base_model(x)
        x = self.pool(x)
        x = torch.flatten(x, 1)  # (batch, 1280)
        return {'color': self.color(x), 'gender': self.gender(x), 'article': self.article(x)}

    def get_loss(self, net_output, ground_truth):
        return get_loss(net_output, ground_truth)  # the tutorial calls it as a method

    def num_classes(self):
        return {head: getattr(self, head)[1].out_features for head in ('gender', 'article', 'color')}


def get_loss(net_output, ground_truth):
    """Summed cross-entropy of the three heads, and each head's loss."""
    # .float(): under bf16 autocast the logits are bf16; the loss is summed in fp32.
    losses = {head: F.cross_entropy(net_output[head].float(), ground_truth[f'{head}_labels'])
              for head in ('color', 'gender', 'article')}
    return sum(losses.values()), losses
