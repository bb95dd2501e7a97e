# The optimizer that train.py records inside the CUDA graph (fused, capturable, a tensor learning
# rate) must train exactly like textbook Adam and survive a checkpoint. Its optimizer runs
# anywhere, so it is checked everywhere; the graph itself needs a GPU, and its test is skipped
# without one.
import copy
import io
import threading
import time
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch

import train_step
from model import MultiOutputModel, get_loss
from train_step import (GraphedTrainStep, TrainStep, batch_stats, load_optimizer_state, make_optimizer,
                        optimizer_state, scheduler_state, set_lr)

CPU = torch.device('cpu')


def small_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def warmup_schedule(optimizer):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 4))


def train(model, optimizer, scheduler, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        scheduler.step()


def test_batch_stats_are_the_loss_and_each_heads_correct_answers():
    output = {'gender': torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]),
              'article': torch.tensor([[0.0, 1.0, 5.0], [4.0, 0.0, 0.0], [0.0, 2.0, 1.0]]),
              'color': torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])}
    targets = {'gender_labels': torch.tensor([0, 1, 1]), 'article_labels': torch.tensor([2, 0, 1]),
               'color_labels': torch.tensor([1, 1, 1])}
    stats = batch_stats(torch.tensor(4.25, requires_grad=True), output, targets)
    assert stats.tolist() == [4.25, 2.0, 3.0, 0.0]  # loss; correct gender, article, colour
    # no part of the autograd graph: kept for every step of an epoch, each would keep its step's graph
    assert not stats.requires_grad and stats.grad_fn is None


def test_a_step_returns_its_batch_stats_before_the_update():
    model = MultiOutputModel.for_attributes(SimpleNamespace(num_genders=3, num_articles=7, num_colors=5))
    model.eval()  # no dropout, fixed batch-norm statistics: the forward pass can be repeated
    images = torch.randn(4, 3, 80, 60, generator=torch.Generator().manual_seed(0))
    targets = {'gender_labels': torch.tensor([0, 1, 2, 0]), 'article_labels': torch.tensor([6, 5, 4, 3]),
               'color_labels': torch.tensor([4, 3, 2, 1])}
    with torch.no_grad():
        expected = batch_stats(get_loss(model(images), targets)[0], model(images), targets)
    optimizer = make_optimizer(model, 1e-2, CPU, cuda_graphs=False)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    stats = TrainStep(model, optimizer, scheduler, nullcontext)(images, targets)
    assert torch.equal(stats, expected)
    assert TrainStep(model, optimizer, scheduler, nullcontext)(images, targets)[0] < stats[0]  # it learnt


def test_only_a_compiled_models_step_marks_the_start_of_a_step(monkeypatch):
    # The mark is for torch.compile's own CUDA graphs; its first call imports the compiler (2.2 s).
    marks = []
    monkeypatch.setattr(torch.compiler, 'cudagraph_mark_step_begin', lambda: marks.append(1))
    monkeypatch.setattr(torch, 'compile', lambda fn, mode: fn)  # the loss's, built below
    for compiled in (False, True):
        model = small_model()
        optimizer = make_optimizer(model, 1e-3, CPU, cuda_graphs=False)
        step = TrainStep(lambda x: {'gender': model(x), 'article': model(x), 'color': model(x)}, optimizer,
                         warmup_schedule(optimizer), nullcontext, compiled=compiled)
        labels = torch.tensor([0, 1, 2, 0])
        step(torch.randn(4, 6), {f'{head}_labels': labels for head in ('gender', 'article', 'color')})
        assert len(marks) == compiled


def test_a_compiled_models_step_compiles_its_loss_and_statistics_too(monkeypatch):
    # Inductor's build of them takes 20 s on 2 cores; dynamo and AOTAutograd trace the same
    # graphs here and run them eagerly, which is what the step's use of them needs.
    real_compile, compiled = torch.compile, []

    def traced(fn, mode):
        compiled.append((fn, mode))
        return real_compile(fn, backend='aot_eager')
    monkeypatch.setattr(torch, 'compile', traced)
    images = torch.randn(4, 3, 80, 60, generator=torch.Generator().manual_seed(0))
    targets = {'gender_labels': torch.tensor([0, 1, 2, 0]), 'article_labels': torch.tensor([6, 5, 4, 3]),
               'color_labels': torch.tensor([4, 3, 2, 1])}
    results = []
    torch._dynamo.reset()
    try:
        for model_compiled, compile_loss in ((False, True), (True, True), (True, False)):
            torch.manual_seed(0)
            model = MultiOutputModel.for_attributes(SimpleNamespace(num_genders=3, num_articles=7, num_colors=5))
            model.eval()  # no dropout: the steps draw nothing
            optimizer = make_optimizer(model, 1e-2, CPU, cuda_graphs=False)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
            step = TrainStep(model, optimizer, scheduler, nullcontext, model_compiled, compile_loss)
            stats = [step(images, targets) for _ in range(2)]
            results.append((torch.stack(stats), [p.detach().clone() for p in model.parameters()]))
        assert torch._dynamo.utils.counters['stats']['unique_graphs'] > 0  # they did go through dynamo
    finally:
        torch._dynamo.reset()
    assert compiled == [(train_step.loss_and_stats, 'default')]  # only with the model, and where asked
    (eager_stats, eager_weights), *others = results
    assert eager_stats[1, 0] < eager_stats[0, 0]  # it learnt
    for stats, weights in others:  # the same steps
        torch.testing.assert_close(stats, eager_stats)
        for weight, eager_weight in zip(weights, eager_weights):
            torch.testing.assert_close(weight, eager_weight)


def test_a_compiled_step_runs_a_batch_of_another_size_uncompiled_not_compiled_again(monkeypatch):
    # An epoch's last, smaller batch made torch.compile build the whole step again (56 s on 2 CPU
    # cores): now it takes the same step uncompiled, and the compiled one goes on for full batches.
    real_compile, graphs = torch.compile, []

    def counted(fn, mode):
        def backend(graph, inputs):
            graphs.append(fn)
            return graph.forward
        return real_compile(fn, backend=backend)
    monkeypatch.setattr(torch, 'compile', counted)
    generator = torch.Generator().manual_seed(0)
    batches = []
    for size in (4, 2, 4):
        targets = {f'{head}_labels': torch.randint(0, n, (size,), generator=generator)
                   for head, n in (('gender', 3), ('article', 7), ('color', 5))}
        batches.append((torch.randn(size, 3, 80, 60, generator=generator), targets))
    results = []
    torch._dynamo.reset()
    try:
        for compiled in (False, True):
            torch.manual_seed(0)
            model = MultiOutputModel.for_attributes(SimpleNamespace(num_genders=3, num_articles=7, num_colors=5))
            model.eval()  # no dropout: the steps draw nothing
            optimizer = make_optimizer(model, 1e-2, CPU, cuda_graphs=False)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
            step = TrainStep(torch.compile(model, mode='default') if compiled else model, optimizer, scheduler,
                             nullcontext, compiled)
            stats = torch.stack([step(images, targets) for images, targets in batches])
            results.append((stats, [p.detach().clone() for p in model.parameters()]))
    finally:
        torch._dynamo.reset()
    assert graphs == [model, train_step.loss_and_stats]  # each built once, at the first batch
    (eager_stats, eager_weights), (stats, weights) = results
    assert stats[1, 1:].max() <= 2  # the batch of 2's own figures
    torch.testing.assert_close(stats, eager_stats)  # the same steps
    for weight, eager_weight in zip(weights, eager_weights):
        torch.testing.assert_close(weight, eager_weight)


def test_graph_optimizer_has_what_capture_needs():
    optimizer = make_optimizer(small_model(), 1e-3, CPU, cuda_graphs=True)
    group = optimizer.param_groups[0]
    assert group['capturable'] and group['fused']
    assert torch.is_tensor(group['lr']) and group['lr'].item() == pytest.approx(1e-3)
    # a new learning rate goes into the same tensor, the one a recorded graph reads
    lr = group['lr']
    set_lr(optimizer, 5e-4)
    assert group['lr'] is lr and lr.item() == pytest.approx(5e-4)


def test_both_optimizers_take_the_textbook_adam_steps_and_follow_the_schedule():
    # train.py's optimizers are fused (one pass for all parameters): the same steps as Adam's
    # reference implementation, one parameter at a time, up to float rounding.
    reference_model = small_model()
    reference = torch.optim.Adam(reference_model.parameters(), lr=1e-2, foreach=False)
    assert not reference.param_groups[0]['fused']
    train(reference_model, reference, warmup_schedule(reference), 6)
    assert not torch.equal(reference_model[0].weight, small_model()[0].weight)  # it did train
    for cuda_graphs in (False, True):
        model = small_model()
        optimizer = make_optimizer(model, 1e-2, CPU, cuda_graphs=cuda_graphs)
        assert optimizer.param_groups[0]['fused']
        lr = optimizer.param_groups[0]['lr']
        train(model, optimizer, warmup_schedule(optimizer), 6)
        assert optimizer.param_groups[0]['lr'] == pytest.approx(reference.param_groups[0]['lr'])
        if cuda_graphs:
            # The schedule changes the captured tensor in place: a replayed graph reads the new rate.
            assert optimizer.param_groups[0]['lr'] is lr
        for a, b in zip(reference_model.parameters(), model.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_steps_in_a_row_take_the_reference_adam_steps_on_the_schedule():
    # Each call of TrainStep: a gradient of its own batch (not added to the last one's), one Adam
    # step and one step of the schedule, as the textbook loop does them.
    torch.manual_seed(0)
    model = MultiOutputModel.for_attributes(SimpleNamespace(num_genders=3, num_articles=7, num_colors=5)).eval()
    reference_model = copy.deepcopy(model)
    optimizer = make_optimizer(model, 1e-2, CPU, cuda_graphs=False)
    step = TrainStep(model, optimizer, warmup_schedule(optimizer), nullcontext)
    reference = torch.optim.Adam(reference_model.parameters(), lr=1e-2, foreach=False)
    reference_schedule = warmup_schedule(reference)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        images = torch.randn(4, 3, 80, 60, generator=g)
        targets = {f'{head}_labels': torch.randint(0, n, (4,), generator=g)
                   for head, n in (('gender', 3), ('article', 7), ('color', 5))}
        step(images, targets)
        reference.zero_grad()
        get_loss(reference_model(images), targets)[0].backward()
        reference.step()
        reference_schedule.step()
    assert optimizer.param_groups[0]['lr'] == pytest.approx(reference.param_groups[0]['lr']) == pytest.approx(1e-2)
    for a, b in zip(reference_model.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def trained_and_saved(cuda_graphs):
    """A model trained 6 steps with train.py's optimizer, and its checkpoint after step 3 as read
    back from a file."""
    model = small_model()
    optimizer = make_optimizer(model, 1e-2, CPU, cuda_graphs=cuda_graphs)
    schedule = warmup_schedule(optimizer)
    train(model, optimizer, schedule, 3)
    buffer = io.BytesIO()
    torch.save({'model': model.state_dict(), 'optimizer': optimizer_state(optimizer),
                'scheduler': schedule.state_dict()}, buffer)
    train(model, optimizer, schedule, 3, seed=2)
    buffer.seek(0)
    return model, torch.load(buffer, weights_only=True)


def resumed_from(saved, cuda_graphs):
    """A new model and optimizer, as train.py --resume makes them, that trained the last 3 steps."""
    model = small_model(seed=5)
    model.load_state_dict(saved['model'])
    optimizer = make_optimizer(model, 1e-2, CPU, cuda_graphs=cuda_graphs)
    schedule = warmup_schedule(optimizer)
    load_optimizer_state(optimizer, saved['optimizer'])
    schedule.load_state_dict(saved['scheduler'])
    group = dict(optimizer.param_groups[0])  # as loaded, before training on
    train(model, optimizer, schedule, 3, seed=2)
    return model, group, optimizer


def test_graph_optimizer_state_round_trip_resumes_exactly():
    unbroken, saved = trained_and_saved(cuda_graphs=True)
    assert all(isinstance(g['lr'], float) for g in saved['optimizer']['param_groups'])
    resumed, group, _ = resumed_from(saved, cuda_graphs=True)
    assert torch.is_tensor(group['lr'])  # still capturable after loading
    for a, b in zip(unbroken.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize('saved_with_graphs,resumed_with_graphs', [(False, True), (True, False)])
def test_a_saved_optimizer_resumes_in_the_other_configuration(saved_with_graphs, resumed_with_graphs):
    # A run saved on the CPU, by several GPUs or with --cuda-graphs off, resumed on one GPU, where
    # the step is captured (which refuses an optimizer with capturable off), and the other way.
    unbroken, saved = trained_and_saved(cuda_graphs=saved_with_graphs)
    resumed, group, optimizer = resumed_from(saved, cuda_graphs=resumed_with_graphs)
    assert group['capturable'] == resumed_with_graphs and group['fused']  # this run's, not the file's
    assert torch.is_tensor(group['lr']) == resumed_with_graphs
    assert all(optimizer.state[p]['step'].dtype == torch.float32 for p in group['params'])
    for a, b in zip(unbroken.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # the same Adam, run another way


@pytest.mark.parametrize('saved_layout,resumed_layout', [(torch.channels_last, torch.contiguous_format),
                                                          (torch.contiguous_format, torch.channels_last)])
def test_a_saved_optimizer_resumes_with_the_other_memory_format_as_with_its_own(saved_layout, resumed_layout):
    # --channels-last on, resumed with it off, or the other way: the first convolution's weight lies
    # in the other layout, and fused Adam took its moments by memory order, scrambled.
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 3).to(memory_format=saved_layout)
    optimizer = make_optimizer(model, 1e-3, CPU, cuda_graphs=False)
    model(torch.randn(2, 3, 6, 5)).square().mean().backward()
    optimizer.step()
    saved = copy.deepcopy(optimizer_state(optimizer))
    gradient = torch.randn_like(model.weight)
    stepped = {}
    for layout in (saved_layout, resumed_layout):
        resumed = copy.deepcopy(model).to(memory_format=layout)
        optimizer = make_optimizer(resumed, 1e-3, CPU, cuda_graphs=False)
        load_optimizer_state(optimizer, copy.deepcopy(saved))
        assert optimizer.state[resumed.weight]['exp_avg'].stride() == resumed.weight.stride()
        # as backward lays it out: like its parameter
        resumed.weight.grad = torch.empty_like(resumed.weight).copy_(gradient)
        resumed.bias.grad = torch.zeros_like(resumed.bias)
        optimizer.step()
        stepped[layout] = resumed.weight.detach()
    torch.testing.assert_close(stepped[resumed_layout], stepped[saved_layout], rtol=0, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a CUDA GPU')
def test_graphed_step_records_while_another_thread_pins_memory():
    # train.py --data loader: the DataLoader's pin-memory thread allocates pinned memory while the
    # step is recorded. A fresh block each time (all are kept) means a real cudaHostAlloc each time.
    device = torch.device('cuda')
    torch.manual_seed(0)
    attributes = SimpleNamespace(num_genders=3, num_articles=7, num_colors=5)
    model = MultiOutputModel.for_attributes(attributes).to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, 1e-3, device, cuda_graphs=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    step = GraphedTrainStep(model, optimizer, scheduler, nullcontext, batch_size=8)  # fp32
    images = torch.randn(8, 3, 80, 60, device=device).contiguous(memory_format=torch.channels_last)
    targets = {f'{head}_labels': torch.randint(0, n, (8,), device=device)
               for head, n in (('gender', 3), ('article', 7), ('color', 5))}
    losses = [step(images, targets)[0].item() for _ in range(GraphedTrainStep.WARMUP_STEPS)]

    pinned, errors, stop = [], [], threading.Event()

    def pin():
        try:
            while not stop.is_set() and len(pinned) < 100_000:  # at most 400 MiB
                pinned.append(torch.empty(4096, dtype=torch.uint8).pin_memory())
        except Exception as error:  # a refused allocation: the capture's mode was wrong
            errors.append(error)

    thread = threading.Thread(target=pin)
    thread.start()
    while len(pinned) < 100 and thread.is_alive():
        time.sleep(0.001)  # recording starts while the other thread is busy allocating
    try:
        losses += [step(images, targets)[0].item() for _ in range(10)]
    finally:
        stop.set()
        thread.join()
    assert not errors and step.graph is not None
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]  # the replayed step trains: one batch, learnt


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a CUDA GPU')
def test_replayed_step_returns_what_the_eager_step_does():
    # The loss and the correct answers are counted inside the recorded graph: each replay must
    # return its own batch's figures, as the eager step does, not the recorded batch's; and the
    # schedule, here a rate that falls at every step, moves on after each replay as after each
    # eager step (a replay is the recorded step's kernels: the schedule's step is not among them).
    device = torch.device('cuda')
    attributes = SimpleNamespace(num_genders=3, num_articles=7, num_colors=5)
    steps, optimizers = {}, {}
    for graphed in (False, True):
        torch.manual_seed(0)
        model = MultiOutputModel.for_attributes(attributes).to(device).eval()  # no dropout draws
        optimizers[graphed] = optimizer = make_optimizer(model, 1e-3, device, cuda_graphs=graphed)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 / (s + 1))
        steps[graphed] = (GraphedTrainStep(model, optimizer, scheduler, nullcontext, batch_size=8) if graphed
                          else TrainStep(model, optimizer, scheduler, nullcontext))
    g = torch.Generator(device=device).manual_seed(1)
    for _ in range(GraphedTrainStep.WARMUP_STEPS + 5):
        images = torch.randn(8, 3, 80, 60, device=device, generator=g)
        targets = {f'{head}_labels': torch.randint(0, n, (8,), device=device, generator=g)
                   for head, n in (('gender', 3), ('article', 7), ('color', 5))}
        eager, replayed = steps[False](images, targets), steps[True](images, targets)
        torch.testing.assert_close(replayed, eager, rtol=1e-4, atol=1e-4)
        rates = [float(optimizers[graphed].param_groups[0]['lr']) for graphed in (False, True)]
        assert rates[1] == pytest.approx(rates[0], rel=1e-6)
    assert steps[True].graph is not None and rates[0] == pytest.approx(1e-3 / (GraphedTrainStep.WARMUP_STEPS + 6))


def test_a_saved_schedule_holds_plain_numbers_as_a_saved_optimizer_does():
    # With --cuda-graphs the learning rate is a tensor on the GPU, and the schedule's last rates are
    # too: saved as they are, the checkpoint would hold GPU tensors where numbers belong.
    model = small_model()
    optimizer = make_optimizer(model, 1e-3, CPU, cuda_graphs=True)
    schedule = warmup_schedule(optimizer)
    train(model, optimizer, schedule, 2)
    saved = scheduler_state(schedule)
    assert all(type(v) is float for key in ('base_lrs', '_last_lr') for v in saved[key]), saved
    assert saved['_last_lr'] == [pytest.approx(1e-3 * 3 / 4)]
