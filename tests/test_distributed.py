# torchrun with 2 CPU processes (gloo) trains like one process and saves interchangeable checkpoints.
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
import torch

import cli
import distributed
import train
from checkpoint import checkpoint_load
from cli import Terminated, UserError, run_cli
from conftest import ROOT, train_args
from dataset import AttributesDataset
from demo import load_test_script


def torchrun_2(script, *args, env=None):
    """subprocess.run of torchrun with 2 processes of script (output captured as text, 110 s at
    most). At the limit its processes go with it: killed alone, torchrun left its workers (each in a
    session of its own), and those of a run that hung as they ended (gloo's teardown with PyTorch 2.6,
    before cli.keep_until_exit) ran on for good, holding the cores. Stopped, it stops them, and
    kills them 30 s on."""
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            out, err = process.communicate(timeout=110)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.communicate(timeout=60)
            finally:
                process.kill()  # where even that did not end it
            raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.mark.slow
def test_two_processes_train_save_once_and_agree_with_test_py(small_split, tmp_path):
    args = train_args(small_split, tmp_path, '--epochs', 1)
    result = torchrun_2(os.path.join(ROOT, 'train.py'), *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'cpu (fp32, channels_last, 2 processes of --batch-size 16: an effective batch of 32)' in result.stdout
    assert 'weights identical on all 2 processes' in result.stdout
    assert result.stdout.count('epoch   1 ') == 1  # only rank 0 reports

    run_dir = tmp_path / 'run'
    assert sorted(os.listdir(run_dir)) == ['args.json', 'best.pth', 'checkpoint-000001.pth', 'curves.png',
                                           'last.pth', 'metrics.csv']
    state = checkpoint_load(str(run_dir / 'last.pth'))
    assert not [k for k in state['model'] if k.startswith('module.')]

    with open(run_dir / 'metrics.csv', newline='') as f:
        reported = list(csv.DictReader(f))[-1]
    load_test_script().main(['--checkpoint', str(run_dir / 'last.pth'), '--val-csv', small_split['val'],
                             '--output', str(tmp_path / 'eval'), '--device', 'cpu'])
    with open(tmp_path / 'eval' / 'metrics.json') as f:
        metrics = json.load(f)
    assert metrics['val_samples'] == 24
    for key in ('gender_accuracy', 'article_accuracy', 'color_accuracy', 'color_balanced_accuracy'):
        assert abs(float(reported[key]) - metrics[key]) < 1e-5  # the CSV keeps 6 digits

    # ...and the 2-process checkpoint resumes in a single process.
    train.main(train_args(small_split, tmp_path, '--epochs', 2, '--resume', run_dir / 'last.pth'))
    assert checkpoint_load(str(run_dir / 'last.pth'))['epoch'] == 2


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_in_two_processes(small_split, tmp_path):
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1))
    args = train_args(small_split, tmp_path, '--epochs', 2, '--resume', os.path.join(run_dir, 'last.pth'))
    result = torchrun_2(os.path.join(ROOT, 'train.py'), *args)
    assert result.returncode == 0, result.stderr[-3000:]
    state = checkpoint_load(os.path.join(run_dir, 'last.pth'))
    assert state['epoch'] == 2 and [row['epoch'] for row in state['history']] == [1, 2]
    assert torch.is_tensor(state['model']['color.1.weight'])


class RandomDraws(torch.utils.data.Dataset):
    """Each item is a random draw made in the worker process, like a random augmentation."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return torch.rand(())


def test_the_dataloader_path_draws_other_augmentations_on_each_process():
    def draws(rank, epoch):
        sampler = torch.utils.data.DistributedSampler(RandomDraws(), num_replicas=2, rank=rank, seed=42)
        loader = torch.utils.data.DataLoader(RandomDraws(), batch_size=2, sampler=sampler, num_workers=1,
                                             generator=torch.Generator())
        train.set_epoch(loader, epoch, 42, rank)
        return torch.cat(list(loader))

    assert torch.equal(draws(0, 1), draws(0, 1))  # seeded: a resumed run draws the same
    assert not torch.equal(draws(0, 1), draws(1, 1))  # but each process draws its own
    assert not torch.equal(draws(0, 1), draws(0, 2))  # and each epoch


def test_shards_merge_in_rank_order_with_their_losses_summed():
    first = ({'gender': np.array([0, 1])}, {'gender': np.array([1, 1])}, 2.0)
    second = ({'gender': np.array([2])}, {'gender': np.array([0])}, 3.0)
    predicted, truth, loss_sum = distributed.merge_shards([first, second])
    assert predicted['gender'].tolist() == [0, 1, 2] and truth['gender'].tolist() == [1, 1, 0]
    assert loss_sum == 5.0


def test_a_process_whose_weights_differ_from_rank_0s_is_found(monkeypatch):
    # Two processes, pretended: what rank 0 broadcasts (its weights), and the flag's reduction.
    model, context = torch.nn.Linear(2, 2), distributed.Context(world_size=2)
    monkeypatch.setattr(distributed.dist, 'all_reduce', lambda tensor, op=None: None)
    monkeypatch.setattr(distributed.dist, 'broadcast', lambda tensor, src: None)
    assert distributed.replicas_identical(model, context)
    monkeypatch.setattr(distributed.dist, 'broadcast', lambda tensor, src: tensor.add_(1))
    assert not distributed.replicas_identical(model, context)


def in_a_group_of_2(rank, port, out, exchanges):
    """Process `rank` of 2 real gloo processes (torch.multiprocessing.spawn's): what
    exchanges(rank, context) returns, saved for the test to read."""
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)
    context = distributed.Context(rank=rank, world_size=2)
    torch.save(exchanges(rank, context), f'{out}-{rank}')
    distributed.cleanup(context)  # as train.py leaves it: destroy_process_group alone hung at times with PyTorch 2.6


def results_of_2_processes(exchanges, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    processes = torch.multiprocessing.spawn(in_a_group_of_2, args=(port, str(tmp_path / 'rank'), exchanges), nprocs=2,
                                            join=False)
    try:  # not for good: with PyTorch 2.6 a process hung at times in gloo's teardown (before cli.keep_until_exit)
        deadline = time.monotonic() + 90
        while not processes.join(timeout=1):
            assert time.monotonic() < deadline, 'the 2 processes did not end within 90 s'
    finally:
        for process in processes.processes:
            if process.is_alive():
                process.kill()
    return [torch.load(tmp_path / f'rank-{rank}') for rank in (0, 1)]


def flag_and_buffers(rank, context):
    flag = distributed.broadcast_flag(rank == 1, context)  # seen by process 1 only
    # Process 1's NaN comes first; process 0's inf a step later; then an epoch with neither.
    first = distributed.earliest(*((2, float('nan')) if rank == 1 else (3, float('inf'))), context)
    none = distributed.earliest(None, None, context)
    tie = distributed.earliest(4, 10.0 + rank, context)  # the same step on both: process 0's
    norm = torch.nn.BatchNorm1d(2)
    norm.running_mean.fill_(rank)  # each process's own statistics, from its own shard
    distributed.sync_buffers(norm, context)
    return {'flag': flag, 'mean': norm.running_mean, 'first': first, 'none': none, 'tie': tie}


def test_one_process_flag_its_earliest_step_and_process_0s_batch_norm_statistics_reach_every_process(tmp_path):
    for rank, result in enumerate(results_of_2_processes(flag_and_buffers, tmp_path)):
        assert result['flag'] is True and torch.equal(result['mean'], torch.zeros(2)), (rank, result)
        step, loss, process = result['first']
        assert (step, process) == (2, 1) and math.isnan(loss) and result['none'] is None, (rank, result)
        assert result['tie'] == (4, 10.0, 0), (rank, result)


NAN_ON_PROCESS_1 = '''
import os, sys, time
sys.path.insert(0, {root!r})
import train, train_step
from cli import run_cli
from saver import BackgroundSaver

if os.environ['RANK'] == '1':  # 3 steps an epoch on each process: call 5 is epoch 2, step 2
    real_get_loss, calls = train_step.get_loss, [0]

    def goes_nan_in_epoch_2(output, targets):
        calls[0] += 1
        loss, parts = real_get_loss(output, targets)
        return (loss * float('nan'), parts) if calls[0] == 5 else (loss, parts)

    train_step.get_loss = goes_nan_in_epoch_2
else:  # process 0's files take their time: torchrun must not stop it before they are written
    real_close, closes = BackgroundSaver.close, [0]

    def slow_close(self):
        closes[0] += 1
        time.sleep(2 if closes[0] == 1 else 0)
        real_close(self)

    BackgroundSaver.close = slow_close
run_cli(train.main)
'''


@pytest.mark.slow
def test_a_nan_loss_on_one_process_stops_both_and_process_0_says_where_it_began(small_split, tmp_path):
    script = tmp_path / 'nan_on_process_1.py'
    script.write_text(NAN_ON_PROCESS_1.format(root=ROOT))
    result = torchrun_2(script, *train_args(small_split, tmp_path, '--epochs', 3))
    assert result.returncode != 0
    last_path = tmp_path / 'run' / 'last.pth'
    # One line, from process 0, which saves: process 1's step, not the next, where DDP's gradients
    # carried the NaN to process 0. (Once it is out, torchrun may end process 0 as process 1 exits.)
    assert re.findall(r'error: .*', result.stderr) == [
        f'error: stopped: the loss became nan at epoch 2, step 2 of 3 on process 1; the last good checkpoint is '
        f'{last_path}. Start a new run with a lower --lr (a resumed run keeps its own)'], result.stderr
    # torchrun's own traceback only (from its package, which may be in a virtual environment in ROOT)
    assert 'Diverged' not in result.stderr and not re.search(rf'File "{re.escape(ROOT)}/[^/"]+"', result.stderr)
    assert checkpoint_load(str(last_path))['epoch'] == 1
    assert not [name for name in os.listdir(tmp_path / 'run') if name.startswith('.tmp-')]  # none cut short
    with open(tmp_path / 'run' / 'metrics.csv', newline='') as f:
        assert [row['epoch'] for row in csv.DictReader(f)] == ['1']


PRETRAINED_DOWNLOADS = '''
import hashlib, os, sys, time, urllib.error
sys.path.insert(0, {root!r})
import torch, torchvision
import model, train
from cli import run_cli


def download(url, path, hash_prefix=None, progress=True):  # torch.hub's, offline: the weights' layout
    with open({log!r}, 'a') as f:
        f.write(os.environ['RANK'] + '\\n')
    time.sleep(1)  # a download takes its time: a process not made to wait starts its own
    if {fails}:
        raise urllib.error.URLError('no network')
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)


torch.hub.download_url_to_file = download
model.hash_in_name = lambda cached: hashlib.sha256(open(cached, 'rb').read()).hexdigest()[:8]
run_cli(train.main)
'''


@pytest.mark.slow
@pytest.mark.parametrize('fails', [False, True])
def test_pretrained_weights_are_downloaded_by_the_first_process_of_a_machine_alone(small_split, tmp_path, fails):
    # Each process downloaded them, 8 times the same file on a machine of 8 GPUs, and an error of
    # the download was said by each; the others, made to wait, then failed first, in gloo's words.
    script, log = tmp_path / 'pretrained.py', tmp_path / 'downloads.txt'
    script.write_text(PRETRAINED_DOWNLOADS.format(root=ROOT, log=str(log), fails=fails))
    result = torchrun_2(script, *train_args(small_split, tmp_path, '--epochs', 1, '--pretrained'),
                        env=dict(os.environ, TORCH_HOME=str(tmp_path / 'hub')))
    assert log.read_text() == '0\n'
    if not fails:
        assert result.returncode == 0, result.stderr[-3000:]
        return
    assert result.returncode != 0
    assert re.findall(r'error: .*', result.stderr) == [
        'error: --pretrained: could not get the ImageNet weights (<urlopen error no network>); connect to the '
        "internet once, put torchvision's mobilenet_v2-b0353104.pth into "
        f"{tmp_path / 'hub' / 'hub' / 'checkpoints'}/, or train from scratch without --pretrained"], result.stderr
    assert 'stopped by SIGTERM' not in result.stderr


OTHER_LABELS_ON_PROCESS_1 = '''
import os, sys
sys.path.insert(0, {root!r})
import train
from cli import run_cli
from dataset import AttributesDataset

if os.environ['RANK'] == '1':  # its machine's styles.csv has one article type more
    real_labels = train.labels_of_the_run

    def one_more(args, resume):
        vocab = real_labels(args, resume).to_dict()
        return AttributesDataset(vocab=dict(vocab, article=vocab['article'] + ['Zorbs']))

    train.labels_of_the_run = one_more
run_cli(train.main)
'''


def test_a_machine_with_other_label_names_is_said_in_one_line_naming_styles_csv(small_split, tmp_path):
    # 'Zorbs' sorts last, every other class keeps its number: DDP's traceback on a head's size; a
    # label in the middle had the split blamed.
    script = tmp_path / 'other_labels.py'
    script.write_text(OTHER_LABELS_ON_PROCESS_1.format(root=ROOT))
    result = torchrun_2(script, *train_args(small_split, tmp_path))
    assert result.returncode != 0
    count = len(AttributesDataset(small_split['styles']).article_labels)
    assert re.findall(r'error: .*', result.stderr) == [
        f"error: {small_split['styles']}: process 1 has other article labels than process 0 ({count + 1} labels "
        f'against {count}; only process 1 has Zorbs): every machine needs the same styles.csv'], result.stderr[-3000:]
    assert not re.search(rf'File "{re.escape(ROOT)}/[^/"]+"', result.stderr)  # no traceback of ours


def test_the_label_names_that_differ_are_named_on_either_side():
    args = train.parse_args(['--attributes_file', 'styles.csv'])
    vocab = {'gender': ['Men', 'Women'], 'article': ['Kurtas', 'Shirts', 'Tops'], 'color': ['Blue']}
    train.check_same_labels([vocab, vocab], args)
    other = dict(vocab, article=['Jeans', 'Shirts', 'Tops'])
    with pytest.raises(UserError, match=r'^styles.csv: process 2 has other article labels than process 0 \(3 labels '
                                        r'against 3; only process 2 has Jeans; only process 0 has Kurtas\)'):
        train.check_same_labels([vocab, vocab, other], args)


def test_what_every_process_finds_in_the_files_is_said_once(small_split, tmp_path):
    # A note (a row whose picture is gone) and an error (a validation split of no rows) that both
    # processes meet.
    with open(small_split['train'], newline='') as f:
        text = f.read()
    row = text.splitlines()[1]
    train_csv = small_split['base'] / 'train-one-gone.csv'  # beside the split: its paths are from there
    train_csv.write_text(text.replace(row, row.replace('.jpg', '-gone.jpg'), 1))
    (tmp_path / 'empty.csv').write_text(text.splitlines()[0] + '\n')
    args = train_args(dict(small_split, train=str(train_csv), val=str(tmp_path / 'empty.csv')), tmp_path)
    result = torchrun_2(os.path.join(ROOT, 'train.py'), *args)
    assert result.returncode != 0
    gone = small_split['base'] / row.split(',')[0].replace('.jpg', '-gone.jpg')
    assert re.findall(r'.*skipped.*', result.stdout) == [
        f'{train_csv}: skipped 1 row: 1 image missing; the first picture skipped is {gone}'], result.stdout
    assert re.findall(r'error: .*', result.stderr) == [
        f'error: {tmp_path / "empty.csv"}: has a header but no rows (a split made by split_data.py)'
    ], result.stderr[-3000:]
    assert 'stopped by SIGTERM' not in result.stderr  # process 1, which torchrun stops as process 0 ends


@pytest.mark.parametrize('local_rank', ['0', '1'])
def test_a_mistyped_flag_is_said_by_the_first_process_of_a_machine_alone(local_rank, monkeypatch, capsys):
    monkeypatch.setenv('WORLD_SIZE', '2')  # as torchrun sets them
    monkeypatch.setenv('LOCAL_RANK', local_rank)
    waits = []
    monkeypatch.setattr(distributed.time, 'sleep', waits.append)
    with pytest.raises(SystemExit) as stopped:
        run_cli(lambda: train.main(['--epochs', '0']))
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert ('--epochs: 0 must be at least 1' in err) == (local_rank == '0'), err
    assert err == '' or local_rank == '0'
    # The other waits for torchrun's SIGTERM: ended at once, it made torchrun stop the first one,
    # at times before that one had said it (its only line torchrun's "stopped by SIGTERM").
    assert waits == ([] if local_rank == '0' else [distributed.FIRST_PROCESS_WAIT])
    with pytest.raises(SystemExit) as stopped:
        run_cli(lambda: train.main(['--help']))
    assert stopped.value.code == 0 and len(waits) == (local_rank == '1')  # no wait for --help


def test_a_world_size_without_torchruns_other_variables_is_one_clear_error(monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', '2')  # left in the shell: a KeyError's traceback from os.environ
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('MASTER_PORT', '29500')
    with pytest.raises(UserError, match='^WORLD_SIZE=2 is set, but not RANK, MASTER_ADDR: start the '
                                        'processes with torchrun'):
        distributed.setup('cpu')


def test_what_another_process_of_a_machine_writes_goes_nowhere_without_failing(monkeypatch, capsys):
    # Python 3.10's argparse writes its usage line to sys.stderr unchecked: redirected to None,
    # the mistyped flag above ended in an AttributeError there
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('LOCAL_RANK', '1')
    with distributed.said_once_per_machine():
        sys.stderr.write('usage: train.py [-h]\n')
        sys.stdout.write('note: 3 rows skipped\n')
    assert capsys.readouterr() == ('', '')


@pytest.mark.parametrize('raised', [UserError('train.csv: no such file'),
                                    FileNotFoundError(2, 'No such file or directory', 'val.csv')])
def test_another_process_of_a_machine_leaves_an_error_to_the_first_unless_it_alone_meets_it(raised, monkeypatch,
                                                                                            capsys):
    def reading():
        print('train.csv: skipped 1 row: 1 image missing')
        raise raised

    def torchrun_stops_it(seconds):  # the first process met it too, said it and ended
        raise Terminated(signal.SIGTERM)

    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('LOCAL_RANK', '1')
    monkeypatch.setattr(distributed.time, 'sleep', torchrun_stops_it)
    with pytest.raises(SystemExit) as stopped:
        with distributed.said_once_per_machine():
            reading()
    assert stopped.value.code == 143 and capsys.readouterr() == ('', '')
    # No SIGTERM within the wait: the first process met no such error (a file this one alone cannot
    # read, say), and the error is said here, by run_cli, where nothing at all was said.
    waits = []
    monkeypatch.setattr(distributed.time, 'sleep', waits.append)
    with pytest.raises(type(raised)):
        with distributed.said_once_per_machine():
            reading()
    assert waits == [distributed.FIRST_PROCESS_WAIT] and capsys.readouterr() == ('', '')


@pytest.mark.parametrize('stop,status', [(KeyboardInterrupt(), 130), (Terminated(signal.SIGTERM), 143)])
def test_the_other_processes_of_a_machine_stop_quietly_on_a_ctrl_c(stop, status, monkeypatch, capsys):
    def reading():
        print('train.csv: skipped 1 row: 1 image missing')
        raise stop

    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('LOCAL_RANK', '1')
    with pytest.raises(SystemExit) as stopped:
        with distributed.said_once_per_machine():
            reading()
    assert stopped.value.code == status and capsys.readouterr() == ('', '')
    with pytest.raises(OSError), distributed.said_once_per_machine():  # no file named: a bug, with its traceback
        raise OSError('unnamed')


def torchrun_sets(monkeypatch, world_size, rank):
    """The variables torchrun sets that distributed.setup reads, for process `rank` of `world_size`."""
    for name, value in dict(WORLD_SIZE=world_size, RANK=rank, MASTER_ADDR='127.0.0.1', MASTER_PORT=29500).items():
        monkeypatch.setenv(name, str(value))


@pytest.mark.parametrize('local_rank', [0, 1])
def test_more_processes_than_gpus_is_said_alike_by_every_process_of_the_machine(local_rank, monkeypatch):
    monkeypatch.setattr(distributed, 'pick_device', lambda name: torch.device('cuda'))
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    torchrun_sets(monkeypatch, world_size=2, rank=local_rank)
    monkeypatch.setenv('LOCAL_RANK', str(local_rank))
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '2')
    with pytest.raises(UserError, match='^2 processes on this machine and 1 GPU: lower --nproc_per_node'):
        distributed.setup('cuda')


def test_a_gpu_named_under_torchrun_is_refused_before_any_is_touched(monkeypatch):
    # pick_device set cuda:1 as the current device in every process, which then took its own anyway.
    monkeypatch.setattr(distributed, 'pick_device', lambda name: pytest.fail('picked'))
    torchrun_sets(monkeypatch, world_size=2, rank=0)
    with pytest.raises(UserError, match=r'^--device cuda:1: under torchrun each process takes the GPU of its place '
                                        r'on the machine \(LOCAL_RANK\); give --device cuda, and pick the GPUs with '
                                        'CUDA_VISIBLE_DEVICES$'):
        distributed.setup('cuda:1')


def test_more_processes_than_gpus_is_found_where_the_launcher_gives_no_local_world_size(monkeypatch):
    # torchrun sets LOCAL_WORLD_SIZE, another launcher may not: process 1 of a machine means two
    # processes there at least, which one GPU cannot take (else CUDA's error on cuda:1, later).
    monkeypatch.setattr(distributed, 'pick_device', lambda name: torch.device('cuda'))
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda device: None)
    monkeypatch.setattr(distributed.dist, 'init_process_group', lambda backend: pytest.fail('joined on cuda:1'))
    torchrun_sets(monkeypatch, world_size=2, rank=1)
    monkeypatch.setenv('LOCAL_RANK', '1')
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    with pytest.raises(UserError, match='^2 processes on this machine and 1 GPU: lower --nproc_per_node'):
        distributed.setup('cuda')


KILLED_ON_PROCESS = '''
import os, signal, sys
sys.path.insert(0, {root!r})
import train, train_step
from cli import run_cli

if os.environ['RANK'] == {killed!r}:  # 3 steps an epoch on each process: call 5 is epoch 2, step 2, 8 epoch 3, step 2
    real_get_loss, calls = train_step.get_loss, [0]

    def killed(output, targets):
        calls[0] += 1
        if calls[0] == {call}:
            os.kill(os.getpid(), signal.SIGKILL)  # as the system's out-of-memory killer does
        return real_get_loss(output, targets)

    train_step.get_loss = killed
else:  # torchrun's SIGTERM to the process left, as it reads the checkpoint to name the epoch saved
    real_kept = train.kept_after_failure

    def terminated_meanwhile(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_kept(*args)

    train.kept_after_failure = terminated_meanwhile
run_cli(train.main)
'''


@pytest.mark.parametrize('killed', [1, 0])
def test_a_process_killed_alone_leaves_another_saying_how_to_resume(small_split, tmp_path, killed):
    # The two processes as torchrun starts them, without torchrun: its SIGTERM to the process
    # left, which takes process 0 the way a Ctrl-C does, would come first or not, by chance.
    # Process 0 killed said nothing, and process 1's line named no epoch saved.
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    script = tmp_path / f'killed_on_process_{killed}.py'
    # Process 0 in epoch 3: its saving thread has written epoch 1 at least
    script.write_text(KILLED_ON_PROCESS.format(root=ROOT, killed=str(killed), call=5 if killed else 8))
    processes = [subprocess.Popen([sys.executable, str(script), *train_args(small_split, tmp_path, '--epochs', 3)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                                           LOCAL_WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port)))
                 for rank in (0, 1)]
    left = 1 - killed
    try:
        (_, err), _ = processes[left].communicate(timeout=110), processes[killed].communicate(timeout=10)
    finally:
        for process in processes:
            process.kill()
    assert processes[killed].returncode == -signal.SIGKILL
    assert processes[left].returncode == 1, err[-3000:]
    last_path = tmp_path / 'run' / 'last.pth'
    cpu = ['--device', 'cpu']  # train_args', repeated in the command to go on
    if killed == 0:
        (line,) = re.findall(r'error: .*', err)
        epoch = checkpoint_load(str(last_path))['epoch']
        assert line == (
            'error: process 1 stopped: another process of the run ended (its own lines say why; where process 0 '
            f'said nothing, killed: Epoch {epoch} is saved in {last_path}. Resume with: '
            f'{train.resume_command(str(last_path), distributed.Context(rank=1, world_size=2), cpu)})'), err
        assert epoch in (1, 2) and 'Traceback' not in err
        return
    assert re.findall(r'error: .*', err) == [
        f'error: process 0 stopped: another process of the run ended in epoch 2; epoch 1 is saved in {last_path}. '
        f'Resume with: {train.resume_command(str(last_path), distributed.Context(rank=0, world_size=2), cpu)}'], err
    assert 'Traceback' not in err
    assert checkpoint_load(str(last_path))['epoch'] == 1


def test_the_command_a_ctrl_c_gives_to_resume_starts_the_run_as_it_was_started(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv('GROUP_WORLD_SIZE', '1')  # set by torchrun: the number of machines
    assert train.resume_command('runs/a b/last.pth', distributed.Context()) == \
        "python train.py --resume 'runs/a b/last.pth'"
    four = distributed.Context(rank=0, world_size=4)
    assert train.resume_command('runs/last.pth', four) == \
        'torchrun --standalone --nproc_per_node=4 train.py --resume runs/last.pth'
    monkeypatch.setenv('GROUP_WORLD_SIZE', '2')  # 2 machines (3 processes and 1, say): their options are the user's
    assert train.resume_command('runs/last.pth', four) == \
        "torchrun ... train.py --resume runs/last.pth on each of the 2 machines, with torchrun's options as before, " \
        'once runs/last.pth is there on each (only this machine wrote it; a shared --checkpoints folder has it on all)'
    # the environment's own torchrun, where it is not activated (cli.this_torchrun)
    monkeypatch.setattr(train, 'this_torchrun', lambda: '.venv/bin/torchrun')
    assert train.resume_command('runs/last.pth', four).startswith('.venv/bin/torchrun ... train.py --resume')
    monkeypatch.setenv('GROUP_WORLD_SIZE', '1')
    assert train.resume_command('runs/last.pth', four) == \
        '.venv/bin/torchrun --standalone --nproc_per_node=4 train.py --resume runs/last.pth'


@pytest.mark.parametrize('rank,debug', [(0, False), (0, True), (1, False), (1, True)])
def test_a_nan_loss_under_torchrun_is_said_by_process_0_before_any_process_may_exit(rank, debug, monkeypatch, capsys):
    # Two processes, pretended: the order of what process 0 says and the barrier; --debug's traceback.
    calls = []
    monkeypatch.setattr(distributed, 'barrier', lambda context: calls.append(('barrier', capsys.readouterr().err)))
    monkeypatch.setattr(distributed, 'cleanup', lambda context: calls.append('cleanup'))
    monkeypatch.setattr(train, 'debugging', lambda: debug)
    error = train.Diverged('the loss became nan at epoch 2, step 3 of 5 on process 1')
    message = ('stopped: the loss became nan at epoch 2, step 3 of 5 on process 1; the last good checkpoint is '
               'run/last.pth. Start a new run with a lower --lr (a resumed run keeps its own)')
    stops = pytest.raises(UserError, match=re.escape(message)) if rank == 0 and debug else pytest.raises(SystemExit)
    with stops as stopped:
        train.stop_on_divergence(error, 'run/last.pth', distributed.Context(rank=rank, world_size=2))
    assert calls == [('barrier', f'error: {message}\n' if rank == 0 else ''), 'cleanup']
    if not (rank == 0 and debug):
        assert stopped.value.code == 2


def test_a_process_whose_peer_ended_says_so_in_one_line_not_in_glooos_traceback(monkeypatch, capsys):
    # Process 0 refused a flag, or was killed: process 1 failed at its next exchange with it.
    def exchange():
        raise RuntimeError('[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection '
                           'closed by peer [127.0.0.1]:49388. This is typically caused by a remote worker crashing.')

    monkeypatch.setenv('WORLD_SIZE', '2')  # as torchrun sets them
    monkeypatch.setenv('RANK', '1')
    left = []
    monkeypatch.setattr(cli, 'leave_the_process_group', lambda: left.append(capsys.readouterr().err))
    with pytest.raises(SystemExit) as stopped:
        run_cli(exchange)
    assert stopped.value.code == 1
    # The group left after the line, before Python's exit: left to it, 4 runs in 40 (2 processes on
    # 2 cores, process 0 refusing its --checkpoints) aborted, "terminate called without an active exception"
    assert left == ['error: process 1 stopped: another process of the run ended (its own lines say why)\n']
    monkeypatch.setenv('WORLD_SIZE', '1')  # one process has no peer: a RuntimeError is a bug, with its traceback
    with pytest.raises(RuntimeError, match='Connection closed by peer'):
        run_cli(exchange)


@pytest.mark.parametrize('rank,local', [(1, 1), (3, 1)])  # the second GPU of the first machine, or of the second
def test_each_process_takes_its_machines_gpu_by_local_rank_and_joins_over_nccl(rank, local, monkeypatch):
    joined, chosen = [], []
    monkeypatch.setattr(distributed, 'pick_device', lambda name: torch.device('cuda'))
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)  # as many GPUs as processes: taken
    monkeypatch.setattr(torch.cuda, 'set_device', chosen.append)
    monkeypatch.setattr(distributed.dist, 'init_process_group', joined.append)
    torchrun_sets(monkeypatch, world_size=4, rank=rank)  # 2 machines of 2 processes
    monkeypatch.setenv('LOCAL_RANK', str(local))
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '2')
    context = distributed.setup('cuda')
    assert (context.rank, context.world_size, context.device) == (rank, 4, torch.device('cuda', local))
    assert chosen == [torch.device('cuda', local)] and joined == ['nccl']
    monkeypatch.setattr(distributed, 'pick_device', lambda name: torch.device('cpu'))
    assert distributed.setup('cpu').device == torch.device('cpu') and joined == ['nccl', 'gloo']


def test_an_unnamed_os_error_on_another_process_is_raised_at_once_as_a_bug(monkeypatch):
    waits = []
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('LOCAL_RANK', '1')
    monkeypatch.setattr(distributed.time, 'sleep', waits.append)
    with pytest.raises(OSError, match='unnamed'), distributed.said_once_per_machine():
        raise OSError('unnamed')
    assert waits == []  # not 10 s behind the first process, which has no such error to say


def test_debug_shows_what_every_process_of_a_machine_says(monkeypatch, capsys):
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('LOCAL_RANK', '1')
    monkeypatch.setenv('FASHION_DEBUG', '1')
    with pytest.raises(UserError), distributed.said_once_per_machine():
        print('train.csv: skipped 1 row: 1 image missing')
        raise UserError('train.csv: no such file')
    assert capsys.readouterr().out == 'train.csv: skipped 1 row: 1 image missing\n'


@pytest.mark.parametrize('error', [UserError('train.csv: the processes take 4 to 8 steps an epoch from it'),
                                   FileNotFoundError(2, 'No such file or directory', 'val.csv')])
def test_a_process_that_stops_on_an_error_leaves_the_process_group_first(error, tmp_path, capsys):
    # Left to Python's exit, gloo's threads were at times ended as it finalized: the process
    # aborted after its line ("terminate called without an active exception"), 1 run in 6.
    def fails_in_the_group():
        torch.distributed.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
        raise error

    try:
        with pytest.raises(SystemExit):
            run_cli(fails_in_the_group)
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    assert capsys.readouterr().err.startswith('error: ')


def test_cleanup_leaves_the_process_group(tmp_path):
    torch.distributed.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    try:
        distributed.cleanup(distributed.Context(world_size=2))
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@pytest.mark.parametrize('version, kept', [('2.6.0', True), ('2.7.1+cpu', True), ('2.8.0', False), ('2.14.1', False)])
def test_before_pytorch_2_8_glooos_part_of_the_group_is_kept_until_pythons_exit(version, kept, tmp_path,
                                                                                monkeypatch):
    # 2.6 and 2.7 freed it holding the GIL, and a process at times hung as it ended (cli.py)
    monkeypatch.setattr(torch, '__version__', torch.torch_version.TorchVersion(version))
    monkeypatch.setattr(cli, '_KEPT_UNTIL_EXIT', [])
    at_exit = []
    monkeypatch.setattr(cli, 'atexit', types.SimpleNamespace(register=at_exit.append))
    for group in range(2):
        torch.distributed.init_process_group('gloo', init_method=f'file://{tmp_path / str(group)}', rank=0,
                                             world_size=1)
        try:
            distributed.cleanup(distributed.Context(world_size=2))
            assert not torch.distributed.is_initialized()
        finally:  # not left to this process's later tests
            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
    backends = cli._KEPT_UNTIL_EXIT
    assert [type(backend) for backend in backends] == [torch.distributed.ProcessGroupGloo] * (2 if kept else 0)
    assert at_exit == ([cli.free_the_kept_backends] if kept else [])  # once
    cli.free_the_kept_backends()
    assert backends == []


def freed_at_exit_while_an_exchange_waits(rank, context):
    """Process 0's gloo part of the group kept past the group's end, as with PyTorch 2.6 and 2.7,
    then freed as at Python's exit, while process 1 holds back its share of an exchange for 2 s:
    how long that took, and how often another thread of process 0 ran meanwhile."""
    if rank == 1:
        time.sleep(2)
        torch.distributed.all_reduce(torch.ones(1))
        return None
    pending = torch.distributed.all_reduce(torch.ones(1), async_op=True)  # waits for process 1's share
    cli.keep_until_exit(torch.distributed.group.WORLD._get_backend(torch.device('cpu')))
    torch.distributed.destroy_process_group()
    ticks, stop = [0], threading.Event()

    def tick():
        while not stop.wait(0.01):
            ticks[0] += 1
    ticker = threading.Thread(target=tick)
    ticker.start()
    started = time.monotonic()
    cli.free_the_kept_backends()  # gloo's threads joined: once process 1's share has come
    seconds = time.monotonic() - started
    stop.set()
    ticker.join()
    return {'seconds': seconds, 'ticks': ticks[0], 'exchanged': pending.is_completed()}


def test_glooos_part_kept_until_exit_is_freed_without_the_gil(tmp_path):
    # What keeping it relies on: freed from its own Python object, the GIL is let go meanwhile (held,
    # with PyTorch 2.6 and 2.7 another thread ran twice in 3 s; let go, about 290 times).
    waited = results_of_2_processes(freed_at_exit_while_an_exchange_waits, tmp_path)[0]
    assert waited['exchanged'] and waited['seconds'] > 1 and waited['ticks'] > 20 * waited['seconds'], waited


def figures_and_weights(rank, context):
    summed = distributed.all_reduce_sum(torch.tensor([1.0 + rank, 10.0]), context)  # each process's own figures
    mine = ({'gender': np.array([rank, rank])}, {'gender': np.array([1, 0])}, 1.0 + rank)
    predicted, truth, loss_sum = distributed.gather_predictions(context)(*mine)
    model = torch.nn.Linear(2, 2)
    torch.nn.init.constant_(model.weight, 1.0 + (rank == 1))  # process 1's weights differ
    identical = distributed.replicas_identical(model, context)
    return {'summed': summed, 'predicted': predicted['gender'].tolist(), 'truth': truth['gender'].tolist(),
            'loss_sum': loss_sum, 'identical': identical,
            'everyone': distributed.on_every_process((rank, 'rows'), context)}


def test_every_process_gets_the_sums_the_merged_predictions_and_the_verdict_on_the_weights(tmp_path):
    for rank, result in enumerate(results_of_2_processes(figures_and_weights, tmp_path)):
        assert result['summed'].tolist() == [3.0, 20.0], (rank, result)
        assert result['predicted'] == [0, 0, 1, 1] and result['truth'] == [1, 0, 1, 0], (rank, result)
        assert result['loss_sum'] == 3.0 and result['identical'] is False, (rank, result)
        assert result['everyone'] == [(0, 'rows'), (1, 'rows')], (rank, result)


@pytest.mark.parametrize('data', ['memory', 'loader'])
def test_each_process_trains_on_its_own_share_and_validates_on_its_own(small_split, data, monkeypatch):
    from dataset import AttributesDataset, FashionDataset
    args = train.parse_args(train_args(small_split, '/unused', '--data', data))
    attributes = AttributesDataset(small_split['styles'])
    train_set, val_set = FashionDataset(args.train_csv, attributes), FashionDataset(args.val_csv, attributes)

    def share(loader, epoch=1):
        if isinstance(loader, train.InMemoryLoader):
            loader.set_epoch(epoch)
            return loader.indices().tolist()
        train.set_epoch(loader, epoch, args.seed, loader.sampler.rank)
        return list(loader.sampler)

    def loader_of(rank):  # DistributedSampler asks the process group for the process's place: pretended
        monkeypatch.setattr(torch.distributed, 'get_world_size', lambda: 2)
        monkeypatch.setattr(torch.distributed, 'get_rank', lambda: rank)
        return train.make_train_loader(train_set, args, contexts[rank], False)

    contexts = [distributed.Context(rank=rank, world_size=2) for rank in (0, 1)]
    shares = [share(loader_of(rank)) for rank in (0, 1)]
    assert not set(shares[0]) & set(shares[1]) and len(shares[0]) == len(shares[1]) == len(train_set) // 2
    # another order each epoch, the same on every process
    later = loader_of(0)
    assert share(later, 2) != shares[0] and share(later, 1) == shares[0]
    val = [train.make_val_loader(val_set, args, c, False).indices().tolist() for c in contexts]
    assert sorted(val[0] + val[1]) == list(range(len(val_set)))


def pretend_process_1_of_2(monkeypatch):
    """train.main as process 1 of 2 would run it, its exchanges with process 0 pretended; the
    barriers it waits at and the process group's cleanups, in a list."""
    calls = []
    monkeypatch.setattr(train.distributed, 'setup', lambda device: distributed.Context(rank=1, world_size=2))
    monkeypatch.setattr(train, 'DistributedDataParallel', lambda model, device_ids: model)
    monkeypatch.setattr(distributed, 'all_reduce_sum', lambda tensor, context: tensor)
    monkeypatch.setattr(distributed, 'on_every_process', lambda mine, context: [mine, mine])
    monkeypatch.setattr(distributed, 'gather_predictions', lambda context: lambda *mine: mine)
    monkeypatch.setattr(distributed, 'sync_buffers', lambda model, context: None)
    monkeypatch.setattr(distributed, 'replicas_identical', lambda model, context: True)
    monkeypatch.setattr(distributed, 'earliest',
                        lambda step, value, context: None if step is None else (step, value, 1))
    monkeypatch.setattr(distributed, 'barrier', lambda context: calls.append('barrier'))
    monkeypatch.setattr(distributed, 'cleanup', lambda context: calls.append('cleanup'))
    return calls


def test_a_process_other_than_0_writes_and_says_nothing_of_the_run(small_split, tmp_path, monkeypatch, capsys):
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1))  # process 0's run, alone
    before = {name: os.path.getmtime(os.path.join(run_dir, name)) for name in os.listdir(run_dir)}
    capsys.readouterr()
    calls = pretend_process_1_of_2(monkeypatch)
    # with what process 0 notes: validation on the training pictures, a batch over them, a long warm-up
    train.main(train_args(dict(small_split, val=small_split['train']), tmp_path / 'other', '--epochs', 1,
                          '--batch-size', 500, '--warmup-epochs', 3))
    assert not os.path.exists(tmp_path / 'other')
    assert calls == ['barrier', 'cleanup']  # it waits for process 0's last files, then leaves the group
    # resumed, with another number of steps an epoch (a note in process 0)
    train.main(train_args(small_split, tmp_path, '--epochs', 2, '--resume', os.path.join(run_dir, 'last.pth')))
    assert capsys.readouterr().out == ''
    assert {name: os.path.getmtime(os.path.join(run_dir, name)) for name in os.listdir(run_dir)} == before


@pytest.mark.parametrize('stop', ['peer ended', 'ctrl-c'])
def test_a_process_other_than_0_stopped_in_training_leaves_the_words_to_process_0(stop, small_split, tmp_path,
                                                                                monkeypatch, capsys):
    def exchange(model, context):
        if stop == 'ctrl-c':
            raise KeyboardInterrupt
        raise RuntimeError('[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer')

    calls = pretend_process_1_of_2(monkeypatch)
    monkeypatch.setattr(distributed, 'sync_buffers', exchange)
    monkeypatch.setenv('WORLD_SIZE', '2')  # as torchrun sets them
    monkeypatch.setenv('RANK', '1')
    with pytest.raises(SystemExit) as stopped:
        run_cli(lambda: train.main(train_args(small_split, tmp_path, '--epochs', 2)))
    out, err = capsys.readouterr()
    assert out == ''  # process 0 says what is saved and how to resume
    assert calls == ['cleanup']  # it leaves the group before Python exits (below)
    if stop == 'peer ended':
        assert stopped.value.code == 1
        assert err == 'error: process 1 stopped: another process of the run ended (its own lines say why)\n'
    else:
        assert stopped.value.code == 130


def test_a_resumed_process_1_whose_peer_ended_names_the_checkpoint_it_resumed(small_split, tmp_path, monkeypatch,
                                                                            capsys):
    # Resumed from a checkpoint in a folder with no last.pth (a copy, or only this one copied to
    # process 1's machine): where process 0 was killed saying nothing, the checkpoint resumed is
    # what there is to go on from, and process 1 writes nothing (its line named no epoch).
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1))  # process 0's run, alone
    kept = tmp_path / 'copied' / 'epoch-1.pth'
    kept.parent.mkdir()
    kept.write_bytes(open(os.path.join(run_dir, 'last.pth'), 'rb').read())
    capsys.readouterr()

    def exchange(model, context):
        raise RuntimeError('[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer')

    pretend_process_1_of_2(monkeypatch)
    monkeypatch.setattr(distributed, 'sync_buffers', exchange)
    monkeypatch.setenv('WORLD_SIZE', '2')  # as torchrun sets them
    monkeypatch.setenv('RANK', '1')
    with pytest.raises(SystemExit) as stopped:
        run_cli(lambda: train.main(['--device', 'cpu', '--workers', '0', '--epochs', '2', '--resume', str(kept)]))
    assert stopped.value.code == 1
    assert capsys.readouterr().err == (
        'error: process 1 stopped: another process of the run ended (its own lines say why; where process 0 said '
        f'nothing, killed: Epoch 1 is saved in {kept}. Resume with: '
        f'{train.resume_command(str(kept), distributed.Context(rank=1, world_size=2))} --epochs 2 --device cpu)\n')
    assert os.listdir(kept.parent) == ['epoch-1.pth']


def test_process_0_whose_peer_ended_leaves_the_group_before_python_exits(small_split, tmp_path, monkeypatch,
                                                                         capsys):
    # Left to Python's exit, the broken group's gloo threads could still be releasing the failed
    # step's exchanges as the interpreter finalized: process 0 aborted after its line (SIGABRT,
    # "terminate called without an active exception"), once in the test of a process killed alone.
    def exchange(model, context):
        raise RuntimeError('[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer')

    calls = pretend_process_1_of_2(monkeypatch)
    monkeypatch.setattr(train.distributed, 'setup', lambda device: distributed.Context(rank=0, world_size=2))
    monkeypatch.setattr(distributed, 'sync_buffers', exchange)
    monkeypatch.setenv('WORLD_SIZE', '2')  # as torchrun sets them
    monkeypatch.setenv('RANK', '0')
    with pytest.raises(SystemExit) as stopped:
        run_cli(lambda: train.main(train_args(small_split, tmp_path, '--epochs', 2)))
    assert stopped.value.code == 1 and calls == ['cleanup']
    assert re.findall(r'error: .*', capsys.readouterr().err) == [
        'error: process 0 stopped: another process of the run ended during the first epoch: nothing to resume from yet']


@pytest.mark.parametrize('rank', [0, 1])
def test_processes_holding_different_weights_stop_the_run_said_once_by_process_0(rank, small_split, tmp_path,
                                                                                  monkeypatch, capsys):
    # Said by every process, it was two lines; and a process 0 slower to close its files said only
    # "stopped by SIGTERM", torchrun's, after process 1 had exited.
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1))  # epoch 1, as the processes agreed
    calls = pretend_process_1_of_2(monkeypatch)
    if rank == 0:
        monkeypatch.setattr(train.distributed, 'setup', lambda device: distributed.Context(rank=0, world_size=2))
        monkeypatch.setattr(distributed, 'barrier', lambda context: calls.append(('barrier', capsys.readouterr().err)))
    monkeypatch.setattr(distributed, 'replicas_identical', lambda model, context: False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        train.main(train_args(small_split, tmp_path, '--epochs', 2, '--resume', os.path.join(run_dir, 'last.pth')))
    said = (f'error: stopped: epoch 2: the processes hold different weights; the last good checkpoint is '
            f'{os.path.join(run_dir, "last.pth")}. Check that every process runs the same code and data\n')
    assert stopped.value.code == 2 and capsys.readouterr().err == ''
    if rank == 0:  # said before any process may go, after the epoch's progress bar
        (barrier, err), cleanup = calls
        assert (barrier, cleanup) == ('barrier', 'cleanup') and err.endswith('\n' + said)
        assert err.count('error:') == 1
    else:
        assert calls == ['barrier', 'cleanup']
    assert checkpoint_load(os.path.join(run_dir, 'last.pth'))['epoch'] == 1  # not the epoch whose weights differ


def test_each_process_draws_its_own_dropout_in_an_epoch(small_split, tmp_path, monkeypatch):
    # As the DataLoader's augmentations (above): one mask for all would drop the same units of every shard.
    draws = []

    def first_draw(*args):
        draws.append(torch.rand(()))
        raise KeyboardInterrupt

    def epoch_of(process):
        with pytest.raises(SystemExit):
            train.main(train_args(small_split, tmp_path / f'{process}-{len(draws)}', '--epochs', 1))

    monkeypatch.setattr(train, 'train_one_epoch', first_draw)
    epoch_of(0)
    pretend_process_1_of_2(monkeypatch)
    epoch_of(1)
    epoch_of(1)
    assert draws[0] != draws[1] and draws[1] == draws[2]  # and the same again in a resumed run


ALONE = '''
import sys
sys.path.insert(0, {root!r})
import distributed, train
from cli import run_cli
distributed.WAIT_BEFORE_A_NOTE = 0.5
run_cli(train.main)
'''


@pytest.mark.parametrize('stop', [signal.SIGINT, signal.SIGTERM])
def test_a_process_whose_peers_never_join_says_so_and_a_stop_ends_it(small_split, tmp_path, stop):
    # Started alone (a launcher of one's own, or the other machine's process ended at its start): it
    # waited in init_process_group for 30 minutes, silent, a Ctrl-C and a SIGTERM caught but never acted on.
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    script = tmp_path / 'alone.py'
    script.write_text(ALONE.format(root=ROOT))
    env = dict(os.environ, RANK='0', WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    process = subprocess.Popen([sys.executable, str(script), *train_args(small_split, tmp_path, '--epochs', 1)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        process.send_signal(stop)
        process.wait(timeout=20)
    finally:  # one still waiting fails the test, not hangs it
        process.kill()
        process.communicate()
    assert line == (f'note: waiting at 127.0.0.1:{port} for the other processes of the run (2 in all) to join; '
                    'one that ended, or was never started, keeps this one waiting until PyTorch gives up (30 '
                    'minutes): Ctrl-C stops it\n')
    assert process.returncode == -stop
    assert not (tmp_path / 'run').exists()
