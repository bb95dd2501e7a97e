import hashlib
import math
import os
import re
from collections import Counter

import pytest
import torch
import torchvision
from torch.utils._python_dispatch import TorchDispatchMode

from model import IMAGENET_WEIGHTS, MultiOutputModel, get_loss

SIZES = dict(n_color_classes=7, n_gender_classes=3, n_article_classes=11)


def batch(n=8):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, 80, 60, generator=g)
    labels = {'color_labels': torch.randint(0, 7, (n,), generator=g),
              'gender_labels': torch.randint(0, 3, (n,), generator=g),
              'article_labels': torch.randint(0, 11, (n,), generator=g)}
    return images, labels


def test_three_heads_with_the_right_shapes():
    model = MultiOutputModel(**SIZES).eval()
    out = model(torch.randn(4, 3, 80, 60))
    assert {k: tuple(v.shape) for k, v in out.items()} == {'color': (4, 7), 'gender': (4, 3),
                                                          'article': (4, 11)}
    assert all(torch.isfinite(v).all() for v in out.values())


def test_each_head_is_the_tutorials_dropout_and_linear_layer_on_the_averaged_trunk():
    # The tutorial's heads: Dropout(0.2), then a linear layer, on the trunk's features averaged
    # over the picture. The other tests compare our trunk with torchvision's, not the heads.
    model = MultiOutputModel(**SIZES)
    for head, classes in (('color', 7), ('gender', 3), ('article', 11)):
        dropout, linear = getattr(model, head)
        assert type(dropout) is torch.nn.Dropout and dropout.p == 0.2
        assert type(linear) is torch.nn.Linear and (linear.in_features, linear.out_features) == (1280, classes)
    images = torch.randn(4, 3, 80, 60, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for _ in range(3):  # batch-norm statistics of these pictures: the features are not all near 0
            model(images)
        model.eval()
        out, features = model(images), model.base_model(images)
    assert features.shape[2:] == (3, 2)  # a mean over 6 places, which differ
    assert (features.amax(dim=(2, 3)) - features.mean(dim=(2, 3))).max() > 1e-3
    for head in out:
        torch.testing.assert_close(out[head], getattr(model, head)[1](features.mean(dim=(2, 3))))


def test_loss_is_the_sum_of_the_heads():
    model = MultiOutputModel(**SIZES).eval()
    images, labels = batch()
    output = model(images)
    total, parts = get_loss(output, labels)
    assert set(parts) == {'color', 'gender', 'article'}
    assert torch.allclose(total, sum(parts.values()))
    assert torch.equal(model.get_loss(output, labels)[0], total)  # the tutorial's method form
    # each head's loss is the cross-entropy averaged over the batch: with all logits equal,
    # log(number of classes), whatever the batch size
    for n in (1, 8):
        zeros = {head: torch.zeros(n, size) for head, size in (('color', 7), ('gender', 3), ('article', 11))}
        total, parts = get_loss(zeros, batch(n)[1])
        assert parts['color'].item() == pytest.approx(math.log(7))
        assert parts['article'].item() == pytest.approx(math.log(11))
        assert total.item() == pytest.approx(math.log(7 * 3 * 11))
    # and with logits that favour a class: -log of the softmax's share of the true one, nothing
    # taken off it (label smoothing left the uniform case as it was)
    logits = {'color': torch.tensor([[2.0, 0.0]]), 'gender': torch.tensor([[0.0, 1.0, 3.0]]),
              'article': torch.tensor([[1.0, 1.0]])}
    truth = {'color_labels': torch.tensor([0]), 'gender_labels': torch.tensor([1]), 'article_labels': torch.tensor([1])}
    total, parts = get_loss(logits, truth)
    expected = {'color': math.log(math.exp(2) + 1) - 2, 'gender': math.log(1 + math.e + math.exp(3)) - 1,
                'article': math.log(2)}
    assert {head: part.item() for head, part in parts.items()} == pytest.approx(expected)
    assert total.item() == pytest.approx(sum(expected.values()))


def test_every_parameter_gets_a_gradient():
    model = MultiOutputModel(**SIZES)
    images, labels = batch()
    get_loss(model(images), labels)[0].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_a_real_training_step_changes_the_weights_and_lowers_the_loss():
    torch.manual_seed(0)
    model = MultiOutputModel(**SIZES)
    images, labels = batch(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def loss_now():
        model.eval()
        with torch.no_grad():
            return get_loss(model(images), labels)[0].item()

    start = loss_now()
    model.train()
    for _ in range(5):
        optimizer.zero_grad()
        get_loss(model(images), labels)[0].backward()
        optimizer.step()
    assert loss_now() < start
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert 'color.1.weight' in changed and 'base_model.0.0.weight' in changed


def test_pretrained_trunk_loads_torchvision_weights_from_the_local_cache(tmp_path, monkeypatch):
    # What a first run with internet leaves in TORCH_HOME; here written by the test itself.
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    reference = torchvision.models.mobilenet_v2()
    cache = tmp_path / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / weights.url.rsplit('/', 1)[1])
    stands_in_for_imagenet(monkeypatch, cache / weights.url.rsplit('/', 1)[1])
    model = MultiOutputModel(**SIZES, pretrained=True)
    assert torch.equal(model.base_model[0][0].weight, reference.features[0][0].weight)


def stands_in_for_imagenet(monkeypatch, path):
    """The cached file at path taken for torchvision's ImageNet weights: the hash its name would
    have, written over, as no file of other weights can have the real one's."""
    import model
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(model, 'hash_in_name', lambda cached: digest[:8])


class Payload:
    def __reduce__(self):  # run as the file is unpickled without weights_only
        return os.system, ('touch payload-ran',)


def test_pretrained_without_internet_or_cache_is_one_clear_error(tmp_path, monkeypatch):
    import urllib.error
    import pytest
    import train
    from cli import UserError
    from dataset import AttributesDataset
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError('no network')
    monkeypatch.setattr(torch.hub, 'urlopen', offline)  # as on a machine without internet
    attributes = AttributesDataset(vocab={'gender': ['Men'], 'article': ['Shirts'], 'color': ['Blue']})
    with pytest.raises(UserError, match='--pretrained: could not get the ImageNet weights') as error:
        train.build_model(attributes, pretrained=True)
    # The file it asks for is the one torch.hub then reads
    cache = tmp_path / 'hub' / 'checkpoints'
    assert f"put torchvision's {IMAGENET_WEIGHTS.url.rsplit('/', 1)[1]} into {cache}/," in str(error.value)


@pytest.mark.parametrize('damage', ['text', 'cut short', 'empty', 'other weights', 'another model', 'a payload'])
def test_a_damaged_copy_of_the_imagenet_weights_is_named_with_what_to_do(tmp_path, monkeypatch, damage):
    # A download cut short, or a file put there by hand: one line, not torch.load's traceback. A
    # MobileNetV2's other weights under that name were trained from without a word, and a file
    # that runs code as it is unpickled ran it (torchvision reads it with weights_only=False).
    import train
    from cli import UserError
    from dataset import AttributesDataset
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cached = tmp_path / 'hub' / 'checkpoints' / IMAGENET_WEIGHTS.url.rsplit('/', 1)[1]
    cached.parent.mkdir(parents=True)
    whole = tmp_path / 'whole.pth'
    torch.save(torch.nn.Linear(3, 2).state_dict() if damage == 'another model' else
               {'x': Payload()} if damage == 'a payload' else torchvision.models.mobilenet_v2().state_dict(), whole)
    data = whole.read_bytes()
    cached.write_bytes({'text': b'garbage\n', 'cut short': data[:1000], 'empty': b''}.get(damage, data))
    if damage in ('another model', 'a payload'):  # past the hash, as a file made to match it would be
        stands_in_for_imagenet(monkeypatch, cached)
    attributes = AttributesDataset(vocab={'gender': ['Men'], 'article': ['Shirts'], 'color': ['Blue']})
    with pytest.raises(UserError, match=f'^--pretrained: {re.escape(str(cached))}: not the ImageNet weights '
                                        r'torchvision downloads, or a copy cut short \(.+\); delete it, so that '
                                        'the next run downloads them again') as error:
        train.build_model(attributes, pretrained=True)
    if damage == 'another model':  # what load_state_dict found, not only its heading
        assert 'Error(s) in loading state_dict for MobileNetV2: Missing key(s) in state_dict: ' in str(error.value)
    if damage == 'other weights':
        digest = hashlib.sha256(data).hexdigest()[:8]
        assert f'(its SHA-256 begins {digest}, not b0353104 as its name says)' in str(error.value)
    assert not (tmp_path / 'payload-ran').exists()


def test_channels_last_computes_the_same_step():
    # train.py's --channels-last changes only the speed (benchmarks/step_variants.py may pick either
    # for a GPU). The same float32 step in both layouts, against one in float64: the same loss (to
    # 1e-5: PyTorch 2.6 was 1.03e-6 off), and gradients as close to float64's as float32 gets (the
    # untrained trunk's 52 batch norms amplify rounding: measured 0.6% off for the default layout,
    # 1.2% for channels_last; weights read in the wrong layout would be wholly off).
    images, labels = batch(16)
    state = MultiOutputModel(**SIZES).state_dict()

    def step(memory_format, dtype):
        model = MultiOutputModel(**SIZES)
        model.load_state_dict(state)
        model = model.to(dtype=dtype, memory_format=memory_format)
        torch.manual_seed(0)  # the same dropout masks
        loss, _ = get_loss(model(images.to(dtype).contiguous(memory_format=memory_format)), labels)
        loss.backward()
        return loss.item(), torch.cat([p.grad.double().flatten() for p in model.parameters()])

    exact_loss, exact_grad = step(torch.contiguous_format, torch.float64)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        loss, grad = step(memory_format, torch.float32)
        assert loss == pytest.approx(exact_loss, rel=1e-5)
        assert (grad - exact_grad).norm() / exact_grad.norm() < 0.03, memory_format


def test_the_folded_model_predicts_what_the_model_does_without_batch_norms():
    model = MultiOutputModel(**SIZES).to(memory_format=torch.channels_last)
    images, _ = batch(16)
    with torch.no_grad():  # batch norms with statistics and scales of their own, not 0 and 1
        for bn in model.batch_norms:
            bn.weight.uniform_(0.5, 1.5), bn.bias.normal_(0, 0.1)
        for _ in range(3):
            model(images * 3 + 1)
        for bn in model.batch_norms[:4]:  # channels that never vary: the variance's epsilon alone divides
            bn.running_var[:3] = 0
    before = {key: value.clone() for key, value in model.state_dict().items()}
    folded = model.folded()
    assert model.training and not folded.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 52  # untouched
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())
    assert folded.base_model[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    model.eval()
    with torch.no_grad():
        expected, got = model(images), folded(images)
    for head in expected:
        torch.testing.assert_close(got[head], expected[head], rtol=1e-4, atol=1e-5)
        assert torch.equal(got[head].argmax(1), expected[head].argmax(1))


def test_evaluation_picks_cudnn_kernels_without_the_search_and_restores_it():
    from evaluate import validate
    seen = []

    class Recording(MultiOutputModel):
        def forward(self, x):
            seen.append(torch.backends.cudnn.benchmark)
            return super().forward(x)

    model = Recording(**SIZES)
    images, labels = batch()
    searched = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # as train.py sets it for training on CUDA
    try:
        metrics, _, _ = validate(model, [{'img': images, 'labels': labels}] * 2, torch.device('cpu'))
        assert seen == [False, False] and torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = False  # train.py --cudnn-benchmark off: it stays off
        validate(model, [{'img': images, 'labels': labels}], torch.device('cpu'))
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = searched
    assert metrics['val_samples'] == 16 and model.training  # validate leaves the model as it was
    validate(model.eval(), [{'img': images, 'labels': labels}], torch.device('cpu'))
    assert not model.training


class CountOps(TorchDispatchMode):
    """How many times each ATen operation runs: on a GPU nearly each one is a kernel."""

    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def test_evaluation_runs_the_model_with_its_batch_norms_folded():
    from evaluate import predict_all
    model = MultiOutputModel(**SIZES)
    images, labels = batch(8)
    with CountOps() as counted:
        predicted, _, _ = predict_all(model, [{'img': images, 'labels': labels}], torch.device('cpu'))
    assert counted.ops['conv2d'] == 52, counted.ops
    assert not [op for op in counted.ops if 'batch_norm' in op], counted.ops  # 52 operations fewer
    assert len(predicted['gender']) == 8 and model.training  # the model itself is left as it was


def test_evaluation_scores_each_head_against_its_own_labels_in_the_precision_given():
    from evaluate import autocast_for, predict_all
    model = MultiOutputModel(**SIZES)
    images, labels = batch(8)
    labels = {'color_labels': torch.arange(8) % 7, 'gender_labels': torch.arange(8) % 3,
              'article_labels': torch.arange(8) % 11}
    seen = []
    model.gender[1].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    for precision, dtype in (('bf16', torch.bfloat16), ('fp32', torch.float32)):
        seen.clear()
        predicted, truth, _ = predict_all(model, [{'img': images, 'labels': labels}], torch.device('cpu'),
                                          autocast_for(torch.device('cpu'), precision))
        assert seen == [dtype]  # a bf16 run is validated in bf16, as its checkpoint says
        for head in ('color', 'gender', 'article'):
            assert truth[head].tolist() == labels[f'{head}_labels'].tolist(), head
            assert len(predicted[head]) == 8


def test_training_computes_what_the_tutorials_model_does_with_86_fewer_operations_a_step():
    # Out of place, ReLU6 spares autograd a copy of its input (35 a step), and the 52 batch
    # counts advance in one operation; at batch 16 a GPU step is bound by its number of kernels.
    images, labels = batch(16)
    ours, tutorial = MultiOutputModel(**SIZES), MultiOutputModel(**SIZES, torchvision_layers=True)
    tutorial.load_state_dict(ours.state_dict())

    def train(model, steps=3):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for step in range(steps):
            torch.manual_seed(step)  # the same dropout masks
            with CountOps() as counted:
                optimizer.zero_grad()
                loss, _ = get_loss(model(images), labels)
                loss.backward()
            optimizer.step()
        return counted.ops, loss

    ops, loss = train(ours)
    tutorial_ops, tutorial_loss = train(tutorial)
    assert (ops['clone'], ops['add_'], ops['_foreach_add_']) == (0, 0, 1), ops
    assert (tutorial_ops['clone'], tutorial_ops['add_']) == (35, 52), tutorial_ops
    assert sum(tutorial_ops.values()) - sum(ops.values()) == 86
    assert torch.equal(loss, tutorial_loss)
    theirs = tutorial.state_dict()
    assert ours.state_dict().keys() == theirs.keys()
    assert all(torch.equal(value, theirs[key]) for key, value in ours.state_dict().items())
    assert ours.base_model[0][1].num_batches_tracked == 3
    ours.eval()
    with torch.no_grad():
        ours(images)  # evaluation counts nothing, as PyTorch's own layers
    assert all(bn.num_batches_tracked == 3 for bn in ours.batch_norms) and len(ours.batch_norms) == 52
    ours.train()
    for model in (ours, tutorial):
        for layer in model.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.momentum = None  # a plain average over the batches seen: it reads the counts
    train(ours, steps=2)
    train(tutorial, steps=2)
    assert all(torch.equal(value, tutorial.state_dict()[key]) for key, value in ours.state_dict().items())
    assert ours.base_model[0][1].num_batches_tracked == 5
