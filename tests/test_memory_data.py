# The in-memory loader yields what the tutorial's DataLoader would, and shards without loss.
import argparse
import shutil

import numpy as np
import pytest
import torch

import dataset as dataset_module
from augment import prepare_batch
from dataset import HEADS, AttributesDataset, FashionDataset, keep_rows, load_image, load_into_memory, val_transform
from distributed import merge_shards
from evaluate import calculate_metrics, majority_rates, predict_all, validate
from memory_data import InMemoryLoader
from model import MultiOutputModel
from train import lr_factor


def test_validation_batches_equal_the_per_image_transforms(small_split):
    attributes = AttributesDataset(small_split['styles'])
    dataset = FashionDataset(small_split['val'], attributes, val_transform)
    images, labels, kept = load_into_memory(dataset)
    assert images.dtype == torch.uint8 and images.shape == (len(dataset), 3, 80, 60)
    assert images.is_contiguous(memory_format=torch.channels_last)  # stored as N, H, W, 3
    batches = list(InMemoryLoader(images, labels, 16, 'cpu', train=False))
    first = dataset[0]
    assert torch.allclose(batches[0]['img'][0], first['img'], atol=1e-6)
    for i in range(len(dataset)):  # each head's label, as the per-image path gives it
        assert {h: int(labels[h][i]) for h in HEADS} == {h: dataset[i]['labels'][f'{h}_labels'] for h in HEADS}, i
    for h in HEADS:  # and the batches, in order, carry them
        assert torch.equal(torch.cat([b['labels'][f'{h}_labels'] for b in batches]), labels[h])
    assert sum(len(b['img']) for b in batches) == len(dataset)
    # in the memory format asked for, whatever the cache's: --channels-last off means NCHW
    for channels_last, layout in ((False, torch.contiguous_format), (True, torch.channels_last)):
        for train in (False, True):
            loader = InMemoryLoader(images, labels, 16, 'cpu', train=train, channels_last=channels_last)
            assert next(iter(loader))['img'].is_contiguous(memory_format=layout), (channels_last, train)


def test_each_training_batch_carries_the_labels_of_its_own_images():
    # Labels equal to each image's index, and chunks smaller than an epoch: every batch must carry
    # the indices of the images the epoch's permutation put in it.
    n = 100
    images = torch.zeros(n, 3, 80, 60, dtype=torch.uint8)
    labels = {head: torch.arange(n) for head in ('gender', 'article', 'color')}
    loader = InMemoryLoader(images, labels, 16, 'cpu', train=True, seed=3, chunk_size=32)
    loader.set_epoch(2)
    batches = list(loader)
    assert [len(b['img']) for b in batches] == [16] * 6 + [4]
    for head in ('gender', 'article', 'color'):
        assert torch.equal(torch.cat([b['labels'][f'{head}_labels'] for b in batches]), loader.indices())
    assert not torch.equal(loader.indices(), torch.arange(n))  # shuffled


@pytest.mark.parametrize('workers', [0, 2])
def test_decoding_keeps_the_order_skips_broken_images_and_draws_no_random_numbers(
        small_split, tmp_path, monkeypatch, capsys, workers):
    monkeypatch.setattr(dataset_module, 'DECODE_BATCH', 4)  # several batches for several workers
    dataset = FashionDataset(small_split['val'], AttributesDataset(small_split['styles']))
    assert len(dataset) >= 2 * 4 * workers  # enough batches for every worker to start
    for i in (3, 17):  # broken after the split was made: a truncated file, and one that is not a JPEG
        broken = tmp_path / f'broken{i}.jpg'
        shutil.copy(dataset.data[i], broken)
        broken.write_bytes(broken.read_bytes()[:200] if i == 3 else b'not a picture')
        dataset.data[i] = str(broken)
    torch.manual_seed(0)
    next_draw = torch.rand(3)
    torch.manual_seed(0)
    images, labels, kept = load_into_memory(dataset, workers=workers)
    assert torch.equal(torch.rand(3), next_draw)  # the global generator, which draws the weights, is untouched
    assert (f'{small_split["val"]}: skipped 2 images that can no longer be decoded: {tmp_path / "broken3.jpg"}, '
            f'{tmp_path / "broken17.jpg"}\n') in capsys.readouterr().out
    assert kept == [i for i in range(len(dataset)) if i not in (3, 17)]
    assert images.shape == (len(dataset) - 2, 3, 80, 60)
    # made in the cache itself, which never exists twice: images[kept] was a copy of all of it
    assert images.untyped_storage().nbytes() == len(dataset) * 80 * 60 * 3
    assert images.is_contiguous(memory_format=torch.channels_last)
    for row, i in enumerate(kept):
        expected = torch.from_numpy(np.array(load_image(dataset.data[i]))).permute(2, 0, 1)
        assert torch.equal(images[row], expected)
        assert labels['article'][row] == dataset.samples[i][2]


def test_rows_kept_in_place_are_those_indexing_would_keep():
    images = torch.arange(40).view(20, 2)
    for kept in ([], [0], [19], list(range(20)), list(range(1, 20)), list(range(19)), [0, 1, 5, 6, 7, 19],
                 [2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18]):
        assert torch.equal(keep_rows(images.clone(), kept, chunk=3), images[kept]), kept


def shard_indices(loader):
    return loader.indices().tolist()


def test_shards_cover_validation_exactly_once_and_training_evenly():
    images = torch.zeros(41, 3, 80, 60, dtype=torch.uint8)
    labels = {h: torch.arange(41) for h in ('gender', 'article', 'color')}
    val = [InMemoryLoader(images, labels, 8, 'cpu', train=False, rank=r, world_size=2) for r in (0, 1)]
    assert sorted(shard_indices(val[0]) + shard_indices(val[1])) == list(range(41))
    train = [InMemoryLoader(images, labels, 8, 'cpu', train=True, seed=1, rank=r, world_size=2) for r in (0, 1)]
    assert len(train[0]) == len(train[1]) == 3  # 20 samples each: equal step counts, or DDP hangs
    a, b = shard_indices(train[0]), shard_indices(train[1])
    assert not set(a) & set(b) and len(a) == len(b) == 20
    first_epoch = shard_indices(train[0])
    train[0].set_epoch(1)
    assert shard_indices(train[0]) != first_epoch  # reshuffled every epoch
    train[0].set_epoch(0)
    assert shard_indices(train[0]) == first_epoch  # and the same again for a resumed epoch
    left_out = set()
    for epoch in range(5):  # the odd picture out changes from epoch to epoch
        for loader in train:
            loader.set_epoch(epoch)
        left_out |= set(range(41)) - set(shard_indices(train[0]) + shard_indices(train[1]))
    assert len(left_out) > 1


def test_a_process_with_no_validation_picture_hands_on_an_empty_share():
    # One picture, two processes: rank 1's shard is empty, and validate() must still return.
    torch.manual_seed(0)
    model = MultiOutputModel(n_color_classes=2, n_gender_classes=2, n_article_classes=3).eval()
    images = torch.randint(0, 256, (1, 3, 80, 60), dtype=torch.uint8)
    labels = {h: torch.tensor([1]) for h in ('gender', 'article', 'color')}
    shards = [InMemoryLoader(images, labels, 8, 'cpu', train=False, rank=r, world_size=2) for r in (0, 1)]
    whole, _, _ = validate(model, InMemoryLoader(images, labels, 8, 'cpu', train=False), 'cpu')
    predicted, truth, loss_sum = predict_all(model, shards[1], 'cpu')
    assert loss_sum == 0 and all(len(v) == 0 and v.dtype == np.int64 for v in (*predicted.values(), *truth.values()))
    first = predict_all(model, shards[0], 'cpu')
    merged, _, _ = validate(model, shards[1], 'cpu', gather=lambda *mine: merge_shards([first, mine]))
    assert merged == whole


def test_each_epoch_augments_with_a_draw_of_its_own_and_the_same_again_when_repeated():
    # Eight copies of one textured picture: whatever order an epoch puts them in, its batches
    # differ from another epoch's only through the augmentation's random draws.
    picture = torch.randint(0, 256, (1, 3, 80, 60), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = picture.repeat(8, 1, 1, 1)
    labels = {h: torch.zeros(8, dtype=torch.long) for h in ('gender', 'article', 'color')}
    loader = InMemoryLoader(images, labels, 8, 'cpu', train=True, seed=5)

    def batch_of(epoch):
        loader.set_epoch(epoch)
        return next(iter(loader))['img']

    first = batch_of(1)
    assert not torch.allclose(first, prepare_batch(images), atol=1e-3)  # augmented
    assert not torch.allclose(first[0], first[1], atol=1e-3)  # a draw per picture
    assert not torch.allclose(batch_of(2), first, atol=1e-3)  # and per epoch
    assert torch.equal(batch_of(1), first)  # the same again for a resumed epoch


def test_each_chunk_and_each_process_augments_with_draws_of_its_own():
    # A generator seeded again for each chunk (256 pictures on a CPU) drew the same again for the
    # k-th picture of every chunk; one seeded without the rank, the same on every process.
    picture = torch.randint(0, 256, (1, 3, 80, 60), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = picture.repeat(16, 1, 1, 1)
    labels = {h: torch.zeros(16, dtype=torch.long) for h in ('gender', 'article', 'color')}
    chunks = [batch['img'] for batch in InMemoryLoader(images, labels, 4, 'cpu', train=True, seed=5, chunk_size=4)]
    assert len(chunks) == 4 and not torch.allclose(chunks[0], chunks[1], atol=1e-3)
    first = [next(iter(InMemoryLoader(images, labels, 4, 'cpu', train=True, seed=5, rank=rank, world_size=2)))['img']
             for rank in (0, 1)]
    assert not torch.allclose(first[0], first[1], atol=1e-3)


def test_validation_loss_is_the_mean_over_pictures_whatever_the_batches():
    # 8 pictures in batches of 5 and 3: the loss of each batch weighs by its size.
    torch.manual_seed(0)
    model = MultiOutputModel(n_color_classes=4, n_gender_classes=2, n_article_classes=3).eval()
    images = torch.randint(0, 256, (8, 3, 80, 60), dtype=torch.uint8)
    labels = {h: torch.tensor([0, 1, 1, 0, 1, 0, 0, 1]) for h in ('gender', 'article', 'color')}
    in_batches, _, _ = validate(model, InMemoryLoader(images, labels, 5, 'cpu', train=False), 'cpu')
    whole, _, _ = validate(model, InMemoryLoader(images, labels, 8, 'cpu', train=False), 'cpu')
    assert in_batches['val_loss'] == pytest.approx(whole['val_loss'], rel=1e-5)
    assert in_batches['val_samples'] == 8


def test_balanced_accuracy_averages_the_recall_of_each_true_class():
    truth = {h: np.array([0, 0, 0, 1]) for h in ('gender', 'article', 'color')}
    predicted = {h: np.array([0, 0, 0, 0]) for h in ('gender', 'article', 'color')}
    metrics = calculate_metrics(predicted, truth)
    assert metrics['gender_accuracy'] == 0.75 and metrics['gender_balanced_accuracy'] == 0.5
    truth = {'gender': np.array([0, 1, 1, 1]), 'article': np.array([2, 2, 0, 1]), 'color': np.array([3, 3, 3, 3])}
    assert majority_rates(truth) == {'gender': 0.75, 'article': 0.5, 'color': 1.0}  # the commonest class's share


def test_learning_rate_warm_up_and_cosine():
    args = argparse.Namespace(warmup_epochs=1, schedule='cosine', epochs=3)
    factors = [lr_factor(step, 10, args) for step in range(30)]
    assert factors[0] == 0.1 and factors[9] == 1.0  # linear warm-up over the first epoch
    assert factors[10] == 1.0 and abs(factors[20] - 0.5) < 1e-9 and factors[29] < 0.02
    assert all(x >= y for x, y in zip(factors[10:], factors[11:]))
    constant = argparse.Namespace(warmup_epochs=0, schedule='constant', epochs=3)
    assert {lr_factor(step, 10, constant) for step in range(30)} == {1.0}
    # A warm-up that ends between two steps (0.25 epoch of 10 steps: 2.5) never overshoots --lr.
    partial = argparse.Namespace(warmup_epochs=0.25, schedule='constant', epochs=3)
    assert [lr_factor(step, 10, partial) for step in range(4)] == [0.4, 0.8, 1.0, 1.0]


@pytest.mark.parametrize('train', [True, False])
def test_every_batch_is_full_but_the_last_and_len_counts_them(train):
    # A batch size that does not divide the chunk: train.py sizes its steps by len(loader).
    images = torch.zeros(200, 3, 80, 60, dtype=torch.uint8)
    labels = {head: torch.arange(200) for head in ('gender', 'article', 'color')}
    loader = InMemoryLoader(images, labels, 48, 'cpu', train=train, chunk_size=100)
    sizes = [len(batch['img']) for batch in loader]
    assert len(sizes) == len(loader) and all(size == 48 for size in sizes[:-1]), sizes


def test_a_path_beside_the_csv_wins_over_one_from_the_working_folder(tmp_path, monkeypatch):
    from dataset import resolve_image_path
    for where in ('split', 'cwd'):
        (tmp_path / where / 'images').mkdir(parents=True)
        (tmp_path / where / 'images' / '1.jpg').write_bytes(where.encode())
    monkeypatch.chdir(tmp_path / 'cwd')  # another catalog's images/ here, under the same names
    with open(resolve_image_path('images/1.jpg', str(tmp_path / 'split')), 'rb') as f:
        assert f.read() == b'split'


@pytest.mark.parametrize('pictures', [32, 33, 41, 47])
def test_len_of_each_training_shard_counts_the_batches_it_yields_the_same_on_every_process(pictures):
    # train.py sizes the epoch's steps by len(): a shard that yields fewer batches than it counts
    # left rows of per-step figures empty, and processes of other counts hang DDP at the end.
    images = torch.zeros(pictures, 3, 80, 60, dtype=torch.uint8)
    labels = {head: torch.arange(pictures) for head in ('gender', 'article', 'color')}
    shards = [InMemoryLoader(images, labels, 8, 'cpu', train=True, rank=r, world_size=2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(list(shards[0])) == len(list(shards[1]))


def test_len_of_each_validation_shard_counts_the_batches_it_yields():
    # 17 pictures, 2 processes, batches of 8: rank 0 takes 9 (2 batches), rank 1 takes 8 (1). Counted
    # by halving the pictures, both would say 1: a bar or a loop sized by len() would miss a batch.
    images = torch.zeros(17, 3, 80, 60, dtype=torch.uint8)
    labels = {head: torch.arange(17) for head in ('gender', 'article', 'color')}
    shards = [InMemoryLoader(images, labels, 8, 'cpu', train=False, rank=r, world_size=2) for r in (0, 1)]
    assert [len(shard) for shard in shards] == [len(list(shard)) for shard in shards] == [2, 1]
