# The fast data path: every image decoded once into a uint8 tensor that stays in memory (on the
# GPU when training there), shuffled with torch.randperm and augmented a chunk at a time by
# augment.py. No DataLoader, no per-image PIL work, no worker processes in the hot loop.
import torch

from augment import augment_batch, prepare_batch
from dataset import HEADS, load_into_memory


def memory_format(channels_last):
    """The memory format of a model or a batch in channels_last or not (NCHW)."""
    return torch.channels_last if channels_last else torch.contiguous_format


class InMemoryLoader:
    """Yields the same {'img', 'labels'} batches as a DataLoader over FashionDataset.

    With world_size > 1 each process takes every world_size-th sample of the shared epoch
    permutation, like DistributedSampler, but without padding: no sample is seen twice. In
    training, the permutation's last n % world_size samples (different ones each epoch) sit the
    epoch out, so that every process takes the same number of steps.
    """

    def __init__(self, images, labels, batch_size, device, train, seed=0, channels_last=False,
                 rank=0, world_size=1, chunk_size=None):
        self.images = images.to(device)
        self.labels = {head: labels[head].to(device) for head in HEADS}
        self.batch_size, self.device, self.train = batch_size, device, train
        self.seed, self.channels_last = seed, channels_last
        self.rank, self.world_size = rank, world_size
        # On a GPU, augmenting a few thousand images per call keeps kernel launches per batch
        # low; on a CPU a few hundred keep the float copies small (about 60 KB an image).
        chunk_size = chunk_size or (4096 if torch.device(device).type == 'cuda' else 256)
        self.chunk_size = max(batch_size, chunk_size // batch_size * batch_size)
        self.epoch = 0

    @classmethod
    def from_dataset(cls, dataset, batch_size, device, train, workers=None, **kwargs):
        images, labels, kept = load_into_memory(dataset, workers)
        loader = cls(images, labels, batch_size, device, train, **kwargs)
        loader.samples_kept = [dataset.samples[i] for i in kept]  # (path, labels...): what it trains on
        return loader

    def set_epoch(self, epoch):
        self.epoch = epoch

    def indices(self):
        n = self.images.shape[0]
        if self.train:
            # Same permutation on every process for a given seed and epoch; fresh each epoch.
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(n, generator=g)
            # Every process must take the same number of steps, or DDP waits forever at the end.
            order = order[:n // self.world_size * self.world_size]
        else:
            order = torch.arange(n)
        return order[self.rank::self.world_size].to(self.device)

    def samples(self):
        """The pictures this process takes in an epoch (see indices)."""
        n = self.images.shape[0]
        return n // self.world_size if self.train else len(range(self.rank, n, self.world_size))

    def __len__(self):
        return (self.samples() + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = self.indices()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.seed * 100003 + self.epoch * 1009 + self.rank + 1)
        for chunk in order.split(self.chunk_size):
            images = self.images[chunk]
            x = augment_batch(images, generator) if self.train else prepare_batch(images)
            # The cache is stored channels-last; without channels_last the model gets NCHW, or a
            # convolution would pick channels_last from its input alone.
            x = x.contiguous(memory_format=memory_format(self.channels_last))
            # Gathered a chunk at a time, like the images: each batch is then views, no kernels.
            labels = {f'{head}_labels': self.labels[head][chunk] for head in HEADS}
            for start in range(0, len(chunk), self.batch_size):
                end = start + self.batch_size
                yield {'img': x[start:end], 'labels': {key: value[start:end] for key, value in labels.items()}}
