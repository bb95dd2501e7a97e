# train.py end to end on a small sample catalog: what it writes, resuming, and faults.
import argparse
import codecs
import contextlib
import copy
import csv
import errno
import fcntl
import gc
import hashlib
import json
import math
import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import termios
import time
import types
from datetime import datetime
from pathlib import Path

import pytest
import torch

import dataset
import distributed
import evaluate
import resuming
import runs
import split_data
import train
import train_step
from checkpoint import (changed_since_the_run, checkpoint_load, checkpoint_save, model_from_checkpoint,
                        path_as_trained)
from cli import UserError, progress_bar, run_cli, this_python, usable_cores
from conftest import ROOT, file_size_limit, overflowing, run_script, train_args
from dataset import HEADS, AttributesDataset, read_annotations
from demo import load_test_script
from evaluate import autocast_for, validation_precision
from memory_data import InMemoryLoader
from model import MultiOutputModel

EPOCHS = 3


def metrics_rows(run_dir):
    with open(os.path.join(run_dir, 'metrics.csv'), newline='') as f:
        return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


TRAINING_ORDERS = []  # full_run's order of the training pictures, epoch by epoch


@pytest.fixture(scope='module')
def full_run(small_split, tmp_path_factory):
    """An uninterrupted run that the interrupted ones must reproduce exactly."""
    def recorded(loader, epoch):
        set_epoch(loader, epoch)
        if loader.train:
            TRAINING_ORDERS.append(loader.indices())

    with pytest.MonkeyPatch.context() as patch:
        set_epoch = InMemoryLoader.set_epoch
        patch.setattr(InMemoryLoader, 'set_epoch', recorded)
        run_dir = train.main(train_args(small_split, tmp_path_factory.mktemp('full'), '--epochs', EPOCHS,
                                        '--val-every', 1, '--save-every', 2))
    return run_dir


@pytest.mark.parametrize('flag,value,was', [('--batch-size', '8', '16'), ('--lr', '0.01', '0.001'),
                                            ('--lr', '0.0010000001', '0.001'),  # in full: 6 digits say 0.001
                                            ('--warmup-epochs', '1.5', '0'), ('--warmup-epochs', '2', '0'),
                                            ('--schedule', 'cosine', 'constant'), ('--seed', '7', '42')])
def test_a_resumed_run_refuses_another_recipe(full_run, flag, value, was):
    # Each value as typed: --warmup-epochs 2, not the 2.0 it is parsed to
    assert flag[2:].replace('-', '_') in resuming.FIXED_ON_RESUME
    with pytest.raises(UserError, match=f'^{flag} {value}: the run in .* trained with {was}, and a resumed run '
                                        'keeps it'):
        train.main(['--resume', os.path.join(full_run, 'last.pth'), '--epochs', '9', flag, value, '--device', 'cpu'])


def sgd_state(weights):
    return torch.optim.SGD(model_for(weights).parameters(), lr=0.1, momentum=0.9).state_dict()


def adam_of_the_trunk(weights):  # the state of an Adam over some of the parameters: the trunk's
    return torch.optim.Adam(model_for(weights).base_model.parameters()).state_dict()


def edited(value, change):
    value = copy.deepcopy(value)
    change(value)
    return value


def model_for(weights):
    return MultiOutputModel(**{f'n_{head}_classes': len(weights[f'{head}.1.bias']) for head in HEADS})


@pytest.mark.parametrize('key, value, problem', [
    ('args', {'lr': 0.001, 'epochs': 3}, 'its setting "batch_size" is None, where train.py saves a number'),
    ('args', {'lr': 'fast'}, 'its setting "lr" is \'fast\', where train.py saves a number'),
    ('args', {'pretrained': 'no'}, 'its setting "pretrained" is \'no\', where train.py saves on or off'),
    # edited: a ZeroDivisionError after an epoch had trained, a TypeError, or none at all
    ('args', {'val_every': 0}, 'its setting "val_every" is 0, which its flag refuses: 0 must be at least 1)'),
    ('args', {'seed': 1.5}, 'its setting "seed" is 1.5, which its flag refuses: \'1.5\' is not a whole number)'),
    ('args', {'lr': -1.0}, 'its setting "lr" is -1.0, which its flag refuses: -1.0 must be a finite number above 0)'),
    ('args', {'schedule': 'zigzag'}, 'its setting "schedule" is \'zigzag\', which its flag refuses: not one of '
                                     'constant, cosine)'),
    ('args', {'workers': -1}, 'its setting "workers" is -1, which its flag refuses: -1 must be at least 0)'),
    # True is an int to Python, and would read as the flag's 'True': named as what it is
    ('args', {'epochs': True}, 'its setting "epochs" is True, where train.py saves a number'),
    ('optimizer', sgd_state, 'its "optimizer" is not the state of an Adam optimizer'),
    ('optimizer', adam_of_the_trunk, "its optimizer or schedule is not the state of this model's Adam and "
                                     'schedule: loaded state dict contains a parameter group that '),
    ('scheduler', {'foo': 1}, "its optimizer or schedule is not the state of this model's Adam and schedule: "),
    ('optimizer', lambda state: edited(state['optimizer'], lambda o: o['state'].update(x=o['state'][0])),
     'its "optimizer" is not the state of an Adam optimizer'),  # an AttributeError
    ('optimizer', lambda state: edited(state['optimizer'], lambda o: o['param_groups'][0].update(lr='fast')),
     'its "optimizer" is not the state of an Adam optimizer'),  # a ValueError
    ('optimizer', lambda state: edited(state['optimizer'], lambda o: o['param_groups'][0].update(betas='x')),
     'its "optimizer" is not the state of an Adam optimizer'),  # a ValueError at the first step
    ('optimizer', lambda state: edited(state['optimizer'], lambda o: o['param_groups'][0].update(betas=[0.9] * 3)),
     'its "optimizer" is not the state of an Adam optimizer'),  # the same
    ('scheduler', lambda state: dict(state['scheduler'], base_lrs=[]), 'its "scheduler" is not the state of a '
                                                                        'learning-rate schedule'),
    ('scheduler', lambda state: dict(state['scheduler'], last_epoch='x'), 'its "scheduler" is not the state'),
    ('history', lambda state: [{}], 'its "history" is not a list of the epochs\' figures'),  # a KeyError, saving
    ('best', [1, 2], 'its "best" is not an epoch and its score'),
    ('history', 'x', 'its "history" is not a list of the epochs\' figures'),
    # edited: metrics.csv, rewritten from it, lost the epoch skipped, or wrote one twice
    ('history', lambda state: state['history'][::2], 'its "history" holds epoch 3 where epoch 2 should be'),
    ('history', lambda state: state['history'][:2], 'its "history" holds the figures of 2 epochs, and its "epoch" '
                                                    'says 3 are done'),
    ('epoch', -5, 'its "epoch" is -5, not a number of epochs done'),
    ('split_digests', 'abc', 'its "split_digests" are not digests of the split files'),
    ('split_row_sets', {'train_csv': 3}, 'its "split_row_sets" are not digests of the split files'),
])
def test_a_dict_of_other_contents_under_a_checkpoints_keys_is_not_resumed(full_run, tmp_path, key, value, problem):
    # Another program's dict under train.py's keys: each stopped with a traceback (a KeyError,
    # ZeroDivisionError, AttributeError ...), one of them only after an epoch had trained.
    state = checkpoint_load(os.path.join(full_run, 'last.pth'))
    if callable(value):
        value = value(state['model'] if key == 'optimizer' and value in (sgd_state, adam_of_the_trunk) else state)
    elif key == 'args' and 'epochs' not in value:  # one setting changed
        value = dict(state['args'], **value)
    path = tmp_path / 'other.pth'
    torch.save(dict(state, **{key: value}), path)
    with pytest.raises(UserError, match=f'^{re.escape(str(path))}: not a checkpoint written by train.py '
                                        f'\\({re.escape(problem)}'):
        train.main(['--resume', str(path), '--epochs', str(EPOCHS + 1), '--device', 'cpu', '--workers', '0'])
    assert os.listdir(tmp_path) == ['other.pth']


def test_a_resumed_run_refuses_pretrained_weights_and_names_other_draws(full_run, capsys):
    last = os.path.join(full_run, 'last.pth')
    resume = checkpoint_load(last)
    with pytest.raises(UserError, match=f"^--pretrained: the run in {last} started from scratch, and a resumed run "
                                        "goes on from its checkpoint's weights; leave --pretrained out$"):
        resuming.resumed_args(['--resume', last, '--epochs', '9', '--pretrained'], resume, last, train.parse_args,
                               train.build_parser())
    # another data path, or other workers drawing the DataLoader's augmentation: taken, with a word
    assert (resume['args']['data'], resume['args']['workers']) == ('memory', 0)
    for flags, data, workers, said in [
            (['--data', 'loader'], 'loader', 0, '--data loader: the run in .* trained with data memory;'),
            (['--data', 'loader', '--workers', '3'], 'loader', 3, '--data loader --workers 3: .* memory, workers 0;'),
            (['--workers', '3'], 'memory', 3, None),  # decoding only, on the in-memory path
            ([], 'memory', 0, None)]:
        args = resuming.resumed_args(['--resume', last, '--epochs', '9', *flags], resume, last, train.parse_args,
                                     train.build_parser())
        out = capsys.readouterr().out
        assert (args.data, args.workers) == (data, workers)
        if said:
            assert re.fullmatch(f'note: {said} from here on its augmentation draws are not those of an unbroken '
                                'run\n', out), out
        else:
            assert out == ''


def test_a_run_of_the_dataloader_path_resumed_in_memory_names_its_other_workers_too(full_run, capsys):
    # The run drew its augmentation in the DataLoader's workers: leaving that path, the number of
    # workers it drew with is part of what changes, and is named with --data.
    last = os.path.join(full_run, 'last.pth')
    resume = checkpoint_load(last)
    resume['args'].update(data='loader', workers=2)
    args = resuming.resumed_args(['--resume', last, '--epochs', '9', '--data', 'memory', '--workers', '3'], resume,
                                 last, train.parse_args, train.build_parser())
    assert (args.data, args.workers) == ('memory', 3)
    assert capsys.readouterr().out.startswith(f'note: --data memory --workers 3: the run in {last} trained with '
                                              'data loader, workers 2; from here on')


@pytest.mark.parametrize('epochs', [['--epochs', '3'], ['--epochs=3'], ['--epochs', '2']])
def test_epochs_the_run_has_done_already_are_named_as_the_flag_given(full_run, epochs):
    # `--epochs 3` is given as much as `--epochs=3`: the refusal names it, not "all it was to train".
    last = os.path.join(full_run, 'last.pth')
    with pytest.raises(UserError, match=f'^--epochs {epochs[-1][-1]}: the run in {re.escape(last)} has done 3 '
                                        'epochs already; give a larger --epochs'):
        resuming.resumed_args(['--resume', last, *epochs], checkpoint_load(last), last, train.parse_args,
                              train.build_parser())


def test_a_run_resumed_from_elsewhere_with_another_relative_split_saves_it_from_here(full_run, small_split, tmp_path,
                                                                                      monkeypatch):
    # The run named its split from its own folder (./train.csv); resumed from another folder with a
    # --val-csv of its own from there, the settings saved must find each file from anywhere: the
    # run's own from the run's folder, the new one from this one (not from the run's).
    last = os.path.join(full_run, 'last.pth')
    resume = checkpoint_load(last)
    resume['args'].update(workdir=str(small_split['base']), train_csv='./train.csv', val_csv='./val.csv')
    here = tmp_path / 'here'
    here.mkdir()
    shutil.copy(small_split['val'], here / 'my-val.csv')  # the same rows: the same split
    monkeypatch.chdir(here)
    args = resuming.resumed_args(['--resume', last, '--epochs', '9', '--val-csv', 'my-val.csv'], resume, last,
                                 train.parse_args, train.build_parser())
    saved = runs.saved_args(args)
    monkeypatch.chdir(tmp_path)  # and read back from a third folder
    assert os.path.samefile(path_as_trained(saved, 'train_csv')[0], small_split['train'])
    found = path_as_trained(saved, 'val_csv')[0]
    assert os.path.isfile(found) and os.path.samefile(found, here / 'my-val.csv')


def test_an_infinite_loss_is_found_as_a_nan_is():
    assert train.first_non_finite(torch.tensor([1.0, float('inf'), float('nan')])) == 1
    assert train.first_non_finite(torch.tensor([1.0, 2.0])) is None


def test_a_run_writes_checkpoints_metrics_and_curves(full_run, small_split):
    assert sorted(os.listdir(full_run)) == ['args.json', 'best.pth', 'checkpoint-000002.pth',
                                            'checkpoint-000003.pth', 'curves.png', 'last.pth', 'metrics.csv']
    rows = metrics_rows(full_run)
    assert [int(r['epoch']) for r in rows] == [1, 2, 3]
    assert len(TRAINING_ORDERS) == 3 and not any(torch.equal(a, b) for a, b in  # shuffled anew each epoch
                                               zip(TRAINING_ORDERS, TRAINING_ORDERS[1:]))
    # best.pth: the epoch of the best mean accuracy over the three heads; metrics.csv: the figures
    # the checkpoint keeps, to 6 digits
    state = checkpoint_load(os.path.join(full_run, 'last.pth'))
    means = [sum(float(r[f'{h}_accuracy']) for h in ('gender', 'article', 'color')) / 3 for r in rows]
    assert state['best']['score'] == pytest.approx(max(means), abs=1e-5)
    assert state['best']['epoch'] == 1 + means.index(max(means))
    for row, kept in zip(rows, state['history']):
        for key in ('train_loss', 'val_loss', 'lr', 'article_balanced_accuracy'):
            assert row[key] == f'{kept[key]:.6g}', key
    assert checkpoint_load(os.path.join(full_run, 'best.pth'))['epoch'] == state['best']['epoch']
    # the schedule saved where it is: a resumed run goes on from that step
    pictures = sum(1 for _ in open(small_split['train'], encoding='utf-8')) - 1
    assert state['scheduler']['last_epoch'] == EPOCHS * math.ceil(pictures / 16)
    assert all(r['gender_accuracy'] != '' for r in rows)
    state = checkpoint_load(os.path.join(full_run, 'last.pth'))
    assert state['epoch'] == EPOCHS and state['args']['epochs'] == EPOCHS
    assert state['attributes']['gender'] == sorted(small_split['catalog']['genders'])
    assert state['optimizer']['state']  # Adam's moments, for --resume
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
    with open(os.path.join(full_run, 'args.json')) as f:
        assert json.load(f)['batch_size'] == 16


def test_resume_reaches_the_same_weights_and_logs(full_run, small_split, tmp_path, capsys):
    args = train_args(small_split, tmp_path, '--val-every', 1, '--save-every', 2)
    run_dir = train.main(args + ['--epochs', '1'])
    capsys.readouterr()
    train.main(args + ['--epochs', str(EPOCHS), '--resume', os.path.join(run_dir, 'last.pth')])
    assert 'steps in' not in capsys.readouterr().out  # its schedule's place, as saved: no note of another
    assert metrics_rows(run_dir) == metrics_rows(full_run)
    assert same_weights(checkpoint_load(os.path.join(run_dir, 'last.pth'))['model'],
                        checkpoint_load(os.path.join(full_run, 'last.pth'))['model'])
    mine, unbroken = (checkpoint_load(os.path.join(d, 'best.pth')) for d in (run_dir, full_run))
    assert mine['epoch'] == unbroken['epoch'] and same_weights(mine['model'], unbroken['model'])
    assert mine['best'] == unbroken['best']


def test_a_resumed_run_keeps_its_own_validation_and_saving_schedule(small_split, tmp_path):
    # Resumed with no flags but --epochs, it validates and saves as the run was started to
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1, '--val-every', 1, '--save-every', 1))
    train.main(['--resume', os.path.join(run_dir, 'last.pth'), '--epochs', '3', '--device', 'cpu', '--workers', '0'])
    assert [row['val_loss'] != '' for row in metrics_rows(run_dir)] == [True, True, True]
    assert {'checkpoint-000001.pth', 'checkpoint-000002.pth', 'checkpoint-000003.pth'} <= set(os.listdir(run_dir))
    with open(os.path.join(run_dir, 'args.json')) as f:
        saved = json.load(f)
    assert (saved['val_every'], saved['save_every']) == (1, 1)


def test_a_tie_keeps_the_first_best_epoch(small_split, tmp_path, monkeypatch):
    # Equal accuracies at every epoch (a small split's plateau): best.pth stays the first of them,
    # not overwritten by each later epoch that only equals it.
    real_validate = train.validate

    def plateau(*args, **kwargs):
        metrics, predicted, truth = real_validate(*args, **kwargs)
        return dict(metrics, **{f'{head}_accuracy': 0.5 for head in HEADS}), predicted, truth

    monkeypatch.setattr(train, 'validate', plateau)
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 3, '--val-every', 1))
    assert checkpoint_load(os.path.join(run_dir, 'last.pth'))['best'] == {'epoch': 1, 'score': 0.5}
    assert checkpoint_load(os.path.join(run_dir, 'best.pth'))['epoch'] == 1


def slow_checkpoints(monkeypatch, seconds):
    """A disk on which every checkpoint takes `seconds` longer to write."""
    real_save = train.checkpoint_save

    def slow_save(path, state):
        time.sleep(seconds)
        return real_save(path, state)

    monkeypatch.setattr(train, 'checkpoint_save', slow_save)


def test_a_slow_disk_still_saves_each_epochs_own_state(full_run, small_split, tmp_path, monkeypatch):
    # Each epoch's files are written while the next epoch trains: with a disk slow enough that
    # epoch 2's checkpoint is still being written during epoch 3, it must hold epoch 2's weights.
    slow_checkpoints(monkeypatch, 0.5)
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS, '--val-every', 1, '--save-every', 2))
    for name in ('checkpoint-000002.pth', 'last.pth', 'best.pth'):
        mine, unbroken = (checkpoint_load(os.path.join(d, name)) for d in (run_dir, full_run))
        assert mine['epoch'] == unbroken['epoch'] and same_weights(mine['model'], unbroken['model'])
        moments = [(a['exp_avg'], b['exp_avg']) for a, b in
                   zip(mine['optimizer']['state'].values(), unbroken['optimizer']['state'].values())]
        assert len(moments) == 162 and all(torch.equal(a, b) for a, b in moments)
    assert metrics_rows(run_dir) == metrics_rows(full_run)


@pytest.mark.parametrize('stop', [KeyboardInterrupt, train.Diverged])
def test_a_run_stopped_while_its_files_are_written_waits_for_them(stop, small_split, tmp_path, monkeypatch, capsys):
    # Epoch 1's files are still being written when epoch 2 stops: the message must count them.
    slow_checkpoints(monkeypatch, 1)
    real_epoch = train.train_one_epoch

    def stops_in_epoch_2(model, loader, train_step, epoch, *args):
        if epoch == 2:
            raise stop('the loss became nan at epoch 2, step 1 of 10')
        return real_epoch(model, loader, train_step, epoch, *args)

    monkeypatch.setattr(train, 'train_one_epoch', stops_in_epoch_2)
    last = tmp_path / 'run' / 'last.pth'
    if stop is KeyboardInterrupt:
        with pytest.raises(SystemExit):
            train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS))
        assert f'epoch 1 is saved in {last}' in capsys.readouterr().out
    else:
        with pytest.raises(UserError, match=f'the last good checkpoint is {re.escape(str(last))}'):
            train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS))
    assert checkpoint_load(str(last))['epoch'] == 1


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(small_split, tmp_path, monkeypatch,
                                                                             capsys):
    real_save = torch.save

    def epoch_2_outgrows_the_limit(state, f):
        real_save(dict(state, padding=bytes(40 * 2**20)) if state['epoch'] == 2 else state, f)

    monkeypatch.setattr(torch, 'save', epoch_2_outgrows_the_limit)
    last = tmp_path / 'run' / 'last.pth'
    # Epoch 1's files are far smaller than the limit; epoch 2's checkpoint is not: its write fails.
    with file_size_limit(32 * 2**20), pytest.raises(UserError) as error:
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS))
    # and says what is kept, and how to go on
    assert re.fullmatch(f'could not save checkpoint {re.escape(str(last))}: {os.strerror(errno.EFBIG)}; the previous '
                        f'checkpoint there, if any, is kept. Epoch 1 is saved in {re.escape(str(last))}. Resume with: '
                        rf'python \S*train\.py --resume {re.escape(str(last))} --device cpu', str(error.value)), \
        str(error.value)
    assert checkpoint_load(str(last))['epoch'] == 1
    assert [int(r['epoch']) for r in metrics_rows(tmp_path / 'run')] == [1]
    printed = capsys.readouterr().out  # every epoch trained is said, also the one whose queueing found the failure
    assert [line.split()[1] for line in printed.splitlines() if line.startswith('epoch ')] == ['1', '2', '3']
    with file_size_limit(2**20), pytest.raises(UserError) as error:  # the first epoch's checkpoint fails
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS, '--run-name', 'other'))
    assert str(error.value).endswith('is kept. No epoch is saved yet'), str(error.value)
    # Another error in an epoch is told as it is: only a failed write says what is kept
    def a_picture_gone(*args):
        raise UserError('a picture gone')
    monkeypatch.setattr(train, 'train_one_epoch', a_picture_gone)
    with pytest.raises(UserError, match='^a picture gone$'):
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS, '--run-name', 'third'))


def test_a_disk_that_fills_up_during_an_epochs_files_leaves_the_checkpoint_resume_needs(small_split, tmp_path,
                                                                                         monkeypatch):
    import checkpoint
    real_open, opened = checkpoint.atomic_open, []

    def room_for_one_file(path, *args, **kwargs):
        if opened:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, 'atomic_open', room_for_one_file)
    with pytest.raises(UserError) as error:  # epoch 1 improves on nothing: best.pth too
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS, '--val-every', 1))
    run = tmp_path / 'run'
    assert str(error.value).startswith(f'could not save checkpoint {run / "best.pth"}: {os.strerror(errno.ENOSPC)}; '
                                       'the previous checkpoint there, if any, is kept. Epoch 1 is saved in '
                                       f'{run / "last.pth"}. Resume with: '), str(error.value)
    assert opened == [str(run / 'last.pth')] and checkpoint_load(str(run / 'last.pth'))['epoch'] == 1


def test_a_new_run_never_writes_over_another(full_run, small_split):
    with pytest.raises(UserError, match='holds a run already; carry it on with --resume'):
        train.main(train_args(small_split, os.path.dirname(full_run), '--epochs', 1))
    # nor does going on from an earlier checkpoint of it, which would write over epoch 3
    with pytest.raises(UserError, match='holds the run up to epoch 3 .* write over; to branch off, copy'):
        train.main(train_args(small_split, os.path.dirname(full_run), '--epochs', EPOCHS + 1,
                              '--resume', os.path.join(full_run, 'checkpoint-000002.pth')))
    # ...said as such where its epochs are all done too: "give a larger --epochs", which then met the above
    with pytest.raises(UserError, match='holds the run up to epoch 3 .* write over; to branch off, copy'):
        train.main(['--resume', os.path.join(full_run, 'checkpoint-000002.pth'), '--epochs', '2', '--device', 'cpu'])
    assert [int(r['epoch']) for r in metrics_rows(full_run)] == [1, 2, 3]
    assert checkpoint_load(os.path.join(full_run, 'last.pth'))['epoch'] == EPOCHS


def test_a_folder_named_last_pth_is_named_as_in_the_way_not_as_a_run_to_resume(small_split, tmp_path):
    # It was taken for a run's checkpoint: "carry it on with --resume run/last.pth", which then
    # refused it as a folder.
    (tmp_path / 'run' / 'last.pth').mkdir(parents=True)
    with pytest.raises(UserError, match=f"^--checkpoints {tmp_path} --run-name run: {tmp_path / 'run' / 'last.pth'} "
                                        'is a folder, where a file is to be written; move it away$'):
        train.main(train_args(small_split, tmp_path, '--epochs', 1))


def test_a_run_goes_on_where_the_folder_it_started_in_is_deleted(small_split, tmp_path, monkeypatch, capsys):
    # Its paths all absolute, it needs nothing there. The checkpoint's settings read the folder
    # every epoch: the run stopped after its first ("the working folder ...: deleted"), unsaid.
    started_in = tmp_path / 'gone'
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    one_epoch = train.train_one_epoch

    def deleting_it(*args, **kwargs):
        if started_in.exists():
            started_in.rmdir()
        return one_epoch(*args, **kwargs)

    monkeypatch.setattr(train, 'train_one_epoch', deleting_it)
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 2))
    assert checkpoint_load(os.path.join(run_dir, 'last.pth'))['args']['workdir'] == str(started_in)
    assert f"evaluate with: {this_python()} {ROOT}/test.py --checkpoint {run_dir}/last.pth" in capsys.readouterr().out


def test_the_commands_said_take_paths_that_start_with_a_dash(small_split, tmp_path, monkeypatch, capsys):
    # `test.py --checkpoint -ck/RUN/last.pth`, pasted as said, was read as a flag without its value.
    monkeypatch.chdir(tmp_path)
    argv = train_args(small_split, tmp_path, '--epochs', 1)
    argv[argv.index('--checkpoints'):argv.index('--checkpoints') + 2] = ['--checkpoints=-ck']
    train.main(argv)
    said = capsys.readouterr().out.splitlines()[-1]
    assert said == f'evaluate with: {this_python()} {ROOT}/test.py --checkpoint ./-ck/run/last.pth'
    load_test_script().main([*shlex.split(said)[4:], '--device', 'cpu'])  # as said, after the script
    assert (tmp_path / '-ck' / 'run' / 'eval-last' / 'metrics.json').is_file()
    catalog = small_split['catalog']['root']
    for seed in (1, 2):  # a split made anew names the one it kept
        split_data.main(['--input', catalog, '--output=-split', '--workers', '1', '--seed', str(seed)])
    assert '--train-csv ./-split/train.old.csv --val-csv ./-split/val.old.csv' in capsys.readouterr().out


def test_a_run_that_would_write_over_anothers_epochs_is_refused_before_the_pictures_are_loaded(full_run, small_split,
                                                                                               monkeypatch):
    # Refused only once the folder is claimed, the user waited for the pictures to load (minutes
    # on the real catalog) to be told what the command line already said.
    def the_work(*args, **kwargs):
        raise AssertionError('the pictures were loaded')

    monkeypatch.setattr(train, 'labels_of_the_run', the_work)
    with pytest.raises(UserError, match='holds a run already; carry it on with --resume'):
        train.main(train_args(small_split, os.path.dirname(full_run), '--epochs', 1))
    with pytest.raises(UserError, match='holds the run up to epoch 3 .* write over; to branch off, copy'):
        train.main(['--resume', os.path.join(full_run, 'checkpoint-000002.pth'), '--epochs', str(EPOCHS + 1),
                    '--device', 'cpu'])


def test_a_checkpoint_resumed_beside_another_runs_files_writes_over_none_of_them(full_run, small_split, tmp_path):
    # Its last.pth copied into a folder of another run's files (or the user's): going on replaced
    # that run's best.pth, its numbered checkpoints and metrics.csv, and the user's args.json, silently.
    other = train.main(train_args(small_split, tmp_path / 'other', '--epochs', 1, '--lr', 0.003, '--save-every', 1))
    folder = tmp_path / 'copied'
    folder.mkdir()
    shutil.copy(os.path.join(full_run, 'checkpoint-000002.pth'), folder / 'last.pth')
    resume = ['--resume', str(folder / 'last.pth'), '--epochs', str(EPOCHS)]
    refusal = f'^--resume {re.escape(str(folder / "last.pth"))}: its folder holds '
    for name, what in [('best.pth', 'best.pth, epoch 1 of another run'),
                       ('checkpoint-000001.pth', None),  # not written again: an epoch behind the checkpoint's
                       ('metrics.csv', 'metrics.csv, with the figures of another run')]:
        shutil.copy(os.path.join(other, name), folder / name)
        if what:
            with pytest.raises(UserError, match=refusal + f'{what}, which going on would write over; copy the '
                                                          'checkpoint into a folder of its own and resume from there$'):
                train.main(resume)
            os.remove(folder / name)
    shutil.copy(os.path.join(full_run, 'last.pth'), folder / 'checkpoint-000003.pth')  # this run's, further on
    with pytest.raises(UserError, match=refusal + 'checkpoint-000003.pth, epoch 3 of this run, a later one, '):
        train.main(resume)
    os.remove(folder / 'checkpoint-000003.pth')
    for name, text, what in [('metrics.csv', 'my own metrics\n', "metrics.csv, which is not a train.py run's"),
                             ('args.json', '{"mine": true}', 'args.json, which holds no settings of a train.py run'),
                             ('curves.png', 'a picture of mine', 'curves.png, but no metrics.csv of the run')]:
        (folder / name).write_text(text)
        with pytest.raises(UserError, match=refusal + re.escape(what)):
            train.main(resume)
        assert (folder / name).read_text() == text
        os.remove(folder / name)
    # The run's own files, as far as they go, are its own: it goes on over them
    shutil.copy(os.path.join(full_run, 'checkpoint-000002.pth'), folder / 'best.pth')  # an epoch of its own
    rows = open(os.path.join(full_run, 'metrics.csv')).read().splitlines()
    (folder / 'metrics.csv').write_text('\n'.join(rows[:2]) + '\n')  # epoch 1: its epoch 2 not written yet
    train.main(resume)
    assert checkpoint_load(str(folder / 'last.pth'))['epoch'] == EPOCHS


def test_a_run_whose_metrics_csv_was_removed_resumes_and_writes_it_again(full_run, tmp_path):
    # Its curves.png, without a metrics.csv beside it, was taken for another's: refused, though the
    # run writes the files of the epoch it resumed that were removed since
    from plots import plot_curves
    run = tmp_path / 'run'
    shutil.copytree(full_run, run)
    shutil.copy(run / 'checkpoint-000002.pth', run / 'last.pth')  # stopped after epoch 2, say
    for name in ('metrics.csv', 'best.pth', 'checkpoint-000003.pth'):
        os.remove(run / name)
    # curves of epoch 3, past the checkpoint's: of a run further on than it, kept
    with pytest.raises(UserError, match=r'its folder holds curves.png, but no metrics.csv of the run, which going on'):
        train.main(['--resume', str(run / 'last.pth'), '--device', 'cpu'])
    history = checkpoint_load(str(run / 'last.pth'))['history']
    other = [dict(history[0], train_loss=history[0]['train_loss'] + 0.1), history[1]]
    plot_curves(other, str(run / 'curves.png'))  # another run's of as many epochs, copied in: kept too
    with pytest.raises(UserError, match=r'its folder holds curves.png, but no metrics.csv of the run, which going on'):
        train.main(['--resume', str(run / 'last.pth'), '--device', 'cpu'])
    plot_curves(history, str(run / 'curves.png'))  # the run's own, of epoch 2
    train.main(['--resume', str(run / 'last.pth'), '--device', 'cpu'])
    assert metrics_rows(str(run)) == metrics_rows(full_run)
    assert same_weights(checkpoint_load(str(run / 'last.pth'))['model'],
                        checkpoint_load(os.path.join(full_run, 'last.pth'))['model'])


def test_another_runs_checkpoint_copied_into_a_run_folder_does_not_go_on_over_that_run(full_run, small_split,
                                                                                        tmp_path):
    # A 1-epoch run with other settings: the full run's epoch 2 copied beside it would have replaced
    # its last.pth, metrics.csv and args.json with the full run's, silently.
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1, '--lr', 0.003))
    shutil.copy(os.path.join(full_run, 'checkpoint-000002.pth'), os.path.join(run_dir, 'from_full.pth'))
    kept = open(os.path.join(run_dir, 'metrics.csv')).read()
    with pytest.raises(UserError, match=r'from_full.pth: its folder holds another run \(last.pth, epoch 1, '):
        train.main(['--resume', os.path.join(run_dir, 'from_full.pth'), '--epochs', str(EPOCHS)])
    assert open(os.path.join(run_dir, 'metrics.csv')).read() == kept
    # A checkpoint of the same run, behind or at its last.pth, goes on as before
    shutil.copy(os.path.join(run_dir, 'last.pth'), os.path.join(run_dir, 'copy.pth'))
    train.main(['--resume', os.path.join(run_dir, 'copy.pth'), '--epochs', '2'])
    assert checkpoint_load(os.path.join(run_dir, 'last.pth'))['epoch'] == 2
    # ...and so does one further on than the folder's last.pth (an older last.pth put back from a
    # copy, say): last.pth's epochs are the first of the checkpoint's, not all of them.
    behind = tmp_path / 'behind'
    shutil.copytree(full_run, behind)
    shutil.copy(behind / 'checkpoint-000002.pth', behind / 'last.pth')
    shutil.copy(os.path.join(full_run, 'last.pth'), behind / 'epoch3.pth')
    train.main(['--resume', str(behind / 'epoch3.pth'), '--epochs', str(EPOCHS + 1)])
    assert [row['epoch'] for row in checkpoint_load(str(behind / 'last.pth'))['history']] == list(range(1, EPOCHS + 2))



@pytest.mark.parametrize('kept', ['best.pth', 'metrics.csv', 'checkpoint-000002.pth', 'curves.png'])
def test_a_new_run_never_writes_over_the_epochs_of_one_without_its_last_checkpoint(full_run, small_split,
                                                                                  tmp_path, kept):
    (tmp_path / 'run').mkdir()
    shutil.copy(os.path.join(full_run, kept), tmp_path / 'run' / kept)
    before = (tmp_path / 'run' / kept).read_bytes()
    with pytest.raises(UserError, match=f'run holds a run already \\({re.escape(kept)}, but no last.pth to resume '
                                        'from\\); give another --run-name, or move those files away$'):
        train.main(train_args(small_split, tmp_path, '--epochs', 1))
    assert (tmp_path / 'run' / kept).read_bytes() == before
    assert sorted(os.listdir(tmp_path / 'run')) == [kept]


def test_a_new_run_replaces_only_an_args_json_of_train_pys_and_writes_only_in_its_folder(full_run, small_split,
                                                                                        tmp_path, capsys):
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'args.json').write_text('{"my": "settings"}')  # the user's, by chance of that name
    with pytest.raises(UserError, match=f'^{re.escape(str(tmp_path / "run" / "args.json"))}: holds no settings of '
                                        'a train.py run, and would be replaced; give another --run-name, or move it'):
        train.main(train_args(small_split, tmp_path, '--epochs', 1))
    assert (tmp_path / 'run' / 'args.json').read_text() == '{"my": "settings"}'
    # one train.py wrote, all a run killed in its first epoch leaves: the new run goes on there
    shutil.copy(os.path.join(full_run, 'args.json'), tmp_path / 'run' / 'args.json')
    train.main(train_args(small_split, tmp_path, '--epochs', 1))
    assert checkpoint_load(str(tmp_path / 'run' / 'last.pth'))['epoch'] == 1
    # a run's name is a folder's name: '..' and a path wrote the run's files outside --checkpoints
    capsys.readouterr()
    (tmp_path / 'runs').mkdir()
    for name in ('..', '.', str(tmp_path / 'elsewhere'), 'a/../..'):
        with pytest.raises(SystemExit) as error:
            train.main(train_args(small_split, tmp_path / 'runs', '--epochs', 1, '--run-name', name))  # the last one
        assert error.value.code == 2
        assert f"--run-name: {name!r}: give one folder's name, without / and not . or .." in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['run', 'runs'] and os.listdir(tmp_path / 'runs') == []


def test_a_resume_overtaken_by_another_since_it_loaded_never_writes_over_its_epochs(full_run, small_split,
                                                                                   tmp_path, monkeypatch):
    # Two `--resume last.pth` at once: the second loads its pictures while the first trains, and
    # claims the folder when the first has ended, one epoch further on.
    run_dir = tmp_path / 'run'
    shutil.copytree(full_run, run_dir)
    later = [name for name in os.listdir(full_run) if name not in ('args.json', 'checkpoint-000002.pth')]
    for name in later:  # the folder at epoch 2, as the second found it
        os.remove(run_dir / name)
    for name in ('last.pth', 'best.pth'):
        shutil.copy(os.path.join(full_run, 'checkpoint-000002.pth'), run_dir / name)
    (run_dir / 'metrics.csv').write_text(''.join(open(os.path.join(full_run, 'metrics.csv')).readlines()[:3]))
    claim = runs.claim_run_folder

    def claimed_after_the_other_ended(folder, resume):
        for name in later:  # its epoch 3
            shutil.copy(os.path.join(full_run, name), run_dir / name)
        return claim(folder, resume)

    monkeypatch.setattr(runs, 'claim_run_folder', claimed_after_the_other_ended)
    with pytest.raises(UserError, match='another train.py carried the run on to epoch 3 since this one loaded it '
                                        'at epoch 2; run the command again to go on from there$'):
        train.main(['--resume', str(run_dir / 'last.pth'), '--epochs', str(EPOCHS + 1)])
    assert same_weights(checkpoint_load(str(run_dir / 'last.pth'))['model'],
                        checkpoint_load(os.path.join(full_run, 'last.pth'))['model'])
    assert metrics_rows(run_dir) == metrics_rows(full_run)


def test_a_new_run_looks_again_once_it_holds_the_folder(full_run, small_split, tmp_path, monkeypatch):
    # A run that ended in the folder since the new one first looked (before its pictures were
    # loaded) keeps its epochs: the look under the lock finds them.
    run_dir = tmp_path / 'run'
    claim = runs.claim_run_folder

    def claimed_after_another_ran_there(folder, resume):
        os.makedirs(folder, exist_ok=True)
        for name in ('last.pth', 'metrics.csv'):
            shutil.copy(os.path.join(full_run, name), run_dir / name)
        return claim(folder, resume)

    monkeypatch.setattr(runs, 'claim_run_folder', claimed_after_another_ran_there)
    with pytest.raises(UserError, match='holds a run already; carry it on with --resume'):
        train.main(train_args(small_split, tmp_path, '--epochs', 1))
    for name in ('last.pth', 'metrics.csv'):
        assert (run_dir / name).read_bytes() == open(os.path.join(full_run, name), 'rb').read(), name


def test_metrics_csv_of_more_epochs_than_the_checkpoint_resumed_is_refused(full_run, small_split, tmp_path):
    # Resuming an earlier checkpoint in a folder whose metrics.csv went further: going on would
    # write it again from the shorter history, its later epochs' rows gone.
    run_dir = tmp_path / 'run'
    shutil.copytree(full_run, run_dir)
    for name in ('last.pth', 'checkpoint-000003.pth', 'best.pth'):
        os.remove(run_dir / name)
    metrics = (run_dir / 'metrics.csv').read_bytes()
    with pytest.raises(UserError, match="metrics.csv, of 3 epochs, more than the checkpoint's 2"):
        train.main(['--resume', str(run_dir / 'checkpoint-000002.pth'), '--epochs', '4'])
    assert (run_dir / 'metrics.csv').read_bytes() == metrics


def test_more_loader_workers_than_cores_is_one_note_not_pytorchs_warning_twice(small_split, tmp_path):
    # PyTorch's UserWarning, naming its own source line, came at each epoch's workers.
    cores = usable_cores()
    result = run_script('train.py', *train_args(small_split, tmp_path, '--epochs', 2, '--data', 'loader',
                                                 '--workers', cores + 1))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(f'note: --workers {cores + 1}: more decoding processes than the ') == 1
    assert 'This DataLoader will create' not in result.stderr


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity') or usable_cores() < 2,
                    reason='holds this process to one of two or more cores (Linux)')
def test_the_default_workers_count_the_cores_this_process_may_use_and_draw_no_note(capsys):
    # As `taskset`, a container's cpuset or a cluster's job hold a run to some of the machine's
    # cores: the defaults counted all of them, and train.py's note (which counts the usable ones)
    # then said the user's run had more decoding processes than cores, though the user chose none.
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        workers = train.parse_args([]).workers
        checkers = split_data.parse_args([]).workers
        scorers = load_test_script().parse_args(['--checkpoint', 'last.pth']).workers
        train.note_more_workers_than_cores(workers)
        quiet = capsys.readouterr().out
        train.note_more_workers_than_cores(2)
        noted = capsys.readouterr().out
    finally:
        os.sched_setaffinity(0, cores)
    assert (workers, checkers, scorers) == (1, 1, 1)
    assert quiet == ''
    assert noted.startswith('note: --workers 2: more decoding processes than the 1 core this run may use')
    assert min(8, len(cores)) == train.parse_args([]).workers == dataset.decoding_workers()


def test_a_folder_named_by_the_clock_is_one_not_there_yet(tmp_path):
    stamp = str(tmp_path / '2026-12-01_10-05-03')
    assert runs.unused_folder(stamp) == stamp
    os.mkdir(stamp)
    assert runs.unused_folder(stamp) == stamp + '_2'
    os.mkdir(stamp + '_2')
    assert runs.unused_folder(stamp + '_2') == runs.unused_folder(stamp) == stamp + '_3'
    # ten runs in one second: the next one is _11, not a number added to _10's
    for number in range(3, 11):
        os.mkdir(f'{stamp}_{number}')
    assert runs.unused_folder(stamp + '_10') == stamp + '_11'


class ThatSecond(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 12, 1, 10, 5, 3)


def test_a_run_named_by_the_clock_gives_way_to_one_started_in_the_same_second(small_split, tmp_path, monkeypatch):
    # Both looked before loading their pictures and found the name free; the other claimed it
    # first. There is no --run-name to give another (demo.py has none): the next free name is taken.
    stamp = tmp_path / '2026-12-01_10-05-03'
    other = []
    claim = runs.claim_run_folder

    def claimed_first_by_another(folder, resume):
        if not other:
            os.makedirs(stamp)
            other.append(os.open(stamp, os.O_RDONLY))
            fcntl.flock(other[0], fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the other train.py holds it
        return claim(folder, resume)

    monkeypatch.setattr(runs, 'datetime', ThatSecond)
    monkeypatch.setattr(runs, 'claim_run_folder', claimed_first_by_another)
    args = train_args(small_split, tmp_path, '--epochs', 1)
    del args[args.index('--run-name'):args.index('--run-name') + 2]
    try:
        run_dir = train.main(args)
    finally:
        os.close(other[0])
    assert run_dir == f'{stamp}_2'
    assert checkpoint_load(os.path.join(run_dir, 'last.pth'))['epoch'] == 1
    assert os.listdir(stamp) == []


def test_scoring_the_pictures_a_run_trained_on_says_so(small_split, one_epoch_run, tmp_path, capsys):
    # `test.py --val-csv train.csv`: a slip that flatters the model, which the figures would not show
    last = os.path.join(one_epoch_run, 'last.pth')
    load_test_script().main(['--checkpoint', last, '--val-csv', small_split['train'], '--output', str(tmp_path)])
    assert (f'note: {small_split["train"]} holds the rows {last} trained on: these figures say how well it '
            'learned them, not how it does on pictures it has not seen') in capsys.readouterr().out


@pytest.mark.parametrize('device,channels_last', [('cpu', True), ('cuda', False), ('cuda:1', False), ('mps', True)])
def test_test_py_scores_in_nchw_on_cuda_only(device, channels_last):
    # One pass over a validation set: on CUDA over before channels_last's start-up can pay
    assert evaluate.one_pass_channels_last(torch.device(device)) is channels_last


@pytest.mark.parametrize('flags,channels_last', [((), True), (('--channels-last', 'off'), False),
                                                   (('--channels-last', 'on'), True)])
def test_test_py_feeds_its_model_in_the_layout_it_chose(one_epoch_run, tmp_path, monkeypatch, capsys, flags,
                                                        channels_last):
    # The model's weights and the batches both: a convolution takes channels_last from either one
    seen, predict_all = [], evaluate.predict_all

    def spy(model, loader, device, autocast=None):
        layout = torch.channels_last if channels_last else torch.contiguous_format
        seen.append((model.base_model[0][0].weight.is_contiguous(memory_format=layout),
                     all(batch['img'].is_contiguous(memory_format=layout) for batch in loader)))
        return predict_all(model, loader, device, autocast)
    monkeypatch.setattr(evaluate, 'predict_all', spy)
    load_test_script().main(['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--output', str(tmp_path),
                             *flags])
    assert seen == [(True, True)]
    assert f'device: cpu (fp32{", channels_last" if channels_last else ""}); checkpoint ' in capsys.readouterr().out


def test_a_checkpoint_whose_answers_overflow_is_refused_not_scored(small_split, one_epoch_run, tmp_path):
    # Each answer NaN was scored as the first class: the figures of a model that says nothing
    state = overflowing(checkpoint_load(os.path.join(one_epoch_run, 'last.pth')))
    path = checkpoint_save(str(tmp_path / 'huge.pth'), state)
    with pytest.raises(UserError, match=f'^{re.escape(path)}: its model answers NaN or infinity on '
                                        f'{re.escape(small_split["val"])}: its weights, though finite, are too large'):
        load_test_script().main(['--checkpoint', path, '--output', str(tmp_path / 'eval')])
    assert not os.path.exists(tmp_path / 'eval' / 'metrics.json')


def test_a_checkpoint_whose_loss_overflows_to_infinity_is_refused_too(small_split, one_epoch_run, tmp_path):
    # Answers finite, but as far apart as float32 goes: the loss is infinite, not NaN, and the
    # figures beside it would be a model's that its training could not have scored either.
    state = checkpoint_load(os.path.join(one_epoch_run, 'last.pth'))
    far = torch.full_like(state['model']['gender.1.bias'], -3e38)
    far[0] = 3e38
    path = checkpoint_save(str(tmp_path / 'far.pth'), dict(state, model=dict(state['model'], **{'gender.1.bias': far})))
    with pytest.raises(UserError, match=f'^{re.escape(path)}: its model answers NaN or infinity on '):
        load_test_script().main(['--checkpoint', path, '--output', str(tmp_path / 'eval')])
    assert not os.path.exists(tmp_path / 'eval' / 'metrics.json')


def test_validating_on_the_pictures_a_run_trains_on_says_so(small_split, tmp_path, capsys):
    train.main(train_args(small_split, tmp_path / 'split', '--epochs', 1))
    assert ' too: validation will say' not in capsys.readouterr().out  # the split: none shared
    train.main(train_args(small_split, tmp_path / 'slip', '--epochs', 1, '--val-csv', small_split['train']))
    n = len(read_annotations(small_split['train'], AttributesDataset(small_split['styles'])))
    assert (f'note: {n} of the {n} pictures of {small_split["train"]} are in {small_split["train"]} too: validation '
            'will say how well the run learns them, not how it does on pictures it has not seen'
            ) in capsys.readouterr().out
    # the same split made again through a link to the catalog: the same pictures, by other names
    (tmp_path / 'link').symlink_to(small_split['catalog']['root'])
    split_data.main(['--input', str(tmp_path / 'link'), '--output', str(tmp_path / 'linked'), '--workers', '1'])
    linked = str(tmp_path / 'linked' / 'train.csv')
    with open(linked) as f:
        assert '../link/images/' in f.read()  # relative to the split's folder
    train.main(train_args(small_split, tmp_path / 'linked', '--epochs', 1, '--val-csv', linked))
    assert f'note: {n} of the {n} pictures of {linked} are in {small_split["train"]} too' in capsys.readouterr().out


def test_a_split_made_again_since_the_run_is_not_taken_for_the_runs_own(small_split, tmp_path, monkeypatch,
                                                                        capsys):
    # split_data.py run again into the run's folder with other settings: the same names, other
    # rows. test.py would score pictures the model trained on, and --resume go on with others.
    import split_data
    split = dict(small_split, train=str(tmp_path / 'train.csv'), val=str(tmp_path / 'val.csv'))
    split_data.main(['--input', small_split['catalog']['root'], '--output', str(tmp_path), '--workers', '1'])
    run_dir = train.main(train_args(split, tmp_path / 'runs', '--epochs', 1))
    last = os.path.join(run_dir, 'last.pth')
    # The same rows with other line endings (an editor, dos2unix, git) and a byte-order mark are
    # the same split; and older checkpoints kept the digest of the file's bytes, or of its lines.
    state = checkpoint_load(last)
    crlf = open(split['val'], 'rb').read()
    open(split['val'], 'wb').write(codecs.BOM_UTF8 + crlf.replace(b'\r\n', b'\n').rstrip(b'\n'))
    assert not changed_since_the_run(state, 'val_csv', split['val'])
    open(split['val'], 'wb').write(crlf)
    by_bytes = dict(state, split_digests={'val_csv': hashlib.sha256(crlf).hexdigest()})
    assert not changed_since_the_run(by_bytes, 'val_csv', split['val'])
    by_lines = dict(state, split_digests={'val_csv': split_data.rows_digest(crlf)})
    assert not changed_since_the_run(by_lines, 'val_csv', split['val'])
    open(split['val'], 'wb').write(codecs.BOM_UTF8 + crlf)  # an editor's mark, under either digest
    assert not changed_since_the_run(by_lines, 'val_csv', split['val'])
    assert not changed_since_the_run(state, 'val_csv', split['val'])
    # Written or edited on Windows: paths with backslashes name the same pictures
    open(split['val'], 'wb').write(crlf.replace(b'/', b'\\'))
    assert not changed_since_the_run(state, 'val_csv', split['val'])
    # Saved again by a spreadsheet or an editor as the scripts read it still: in UTF-16, with blank
    # lines, with spaces after the commas (each was "other rows"); a checkpoint that took such a
    # file's digest the earlier way still takes it for its own.
    text = crlf.decode()
    header, first, rest = text.split('\r\n', 2)
    for saved_again in (text.encode('utf-16'), f'\r\n{header}\r\n\r\n{first}\r\n ,,,\r\n{rest}'.encode(),
                        text.replace(',', ', ', 3).encode(), text.replace(',', ' , ').encode()):
        open(split['val'], 'wb').write(saved_again)
        assert split_data.split_digest(split['val']) == state['split_digests']['val_csv'], saved_again[:60]
        assert not changed_since_the_run(state, 'val_csv', split['val'])
        taken_before = dict(state, split_digests={'val_csv': split_data.pictures_digest(saved_again, legacy=True)},
                            split_row_sets={'val_csv': split_data.pictures_digest(saved_again, False, legacy=True)})
        assert not changed_since_the_run(taken_before, 'val_csv', split['val'], ordered=False)
        assert not changed_since_the_run(taken_before, 'val_csv', split['val'])
    # A row of a field too many, which the scripts skip, is another split (cut to the split's columns, it was not)
    open(split['val'], 'wb').write(f'{header}\r\n{first},Navy Blue\r\n{rest}'.encode())
    assert changed_since_the_run(state, 'val_csv', split['val'])
    open(split['val'], 'wb').write(crlf)

    split_data.main(['--input', small_split['catalog']['root'], '--output', str(tmp_path), '--workers', '1',
                     '--seed', '7'])
    assert changed_since_the_run(by_bytes, 'val_csv', split['val'])
    assert changed_since_the_run(by_lines, 'val_csv', split['val'])
    old_train, old_val = split_data.old_split_paths(str(tmp_path))  # the run's split, kept by split_data.py
    with pytest.raises(UserError, match=f"^{split['val']}: it holds other rows than when {last} was validated on "
                                        f'it .*; pass --val-csv {old_val} \\(the old one, which split_data.py kept\\) '
                                        f"to score what it was validated on, or --val-csv {split['val']} to score this "
                                        'one anyway$'):
        load_test_script().main(['--checkpoint', last])
    capsys.readouterr()
    load_test_script().main(['--checkpoint', last, '--val-csv', old_val, '--output', str(tmp_path / 'eval-old')])
    assert 'note:' not in capsys.readouterr().out  # the split it was validated on
    load_test_script().main(['--checkpoint', last, '--val-csv', split['val'], '--output', str(tmp_path / 'eval')])
    assert os.path.isfile(tmp_path / 'eval' / 'metrics.json')  # as the advice says, with a word
    assert f'note: {split["val"]} holds other rows than when {last} was validated on it' in capsys.readouterr().out
    with pytest.raises(UserError, match=f"^{split['train']}: it holds other rows than when the run in {last} began"
                                        f'.*: split_data.py kept it, so go on with --train-csv {old_train} '
                                        f'--val-csv {old_val}, or start a new run$'):
        train.main(['--resume', last, '--epochs', '2'])
    monkeypatch.chdir(tmp_path)  # the run's own files under another spelling are still its own
    with pytest.raises(UserError, match="^train.csv: it holds other rows than when the run in .* began"):
        train.main(['--resume', last, '--epochs', '2', '--train-csv', 'train.csv', '--val-csv', 'val.csv'])
    train.main(['--resume', last, '--epochs', '2', '--train-csv', old_train, '--val-csv', old_val])  # as advised
    assert checkpoint_load(last)['epoch'] == 2


def test_a_runs_split_kept_under_a_number_is_named_to_go_on_with(small_split, tmp_path, capsys):
    # Two splits made since the run: the run's own, kept first as train.old.csv, is now
    # train.old.1.csv, and test.py and --resume name those files to score it and go on with.
    import split_data
    split = dict(small_split, train=str(tmp_path / 'train.csv'), val=str(tmp_path / 'val.csv'))
    for seed in (42, 7, 8):
        split_data.main(['--input', small_split['catalog']['root'], '--output', str(tmp_path), '--workers', '1',
                         '--seed', str(seed)])
        if seed == 42:
            last = os.path.join(train.main(train_args(split, tmp_path / 'runs', '--epochs', 1)), 'last.pth')
    old_train, old_val = split_data.earlier_split_paths(str(tmp_path), 1)
    with pytest.raises(UserError, match=f'pass --val-csv {old_val} \\(the old one, which split_data.py kept\\)'):
        load_test_script().main(['--checkpoint', last])
    with pytest.raises(UserError, match=f'split_data.py kept it, so go on with --train-csv {old_train} '
                                        f'--val-csv {old_val}, or start a new run$'):
        train.main(['--resume', last, '--epochs', '2'])
    capsys.readouterr()
    train.main(['--resume', last, '--epochs', '2', '--train-csv', old_train, '--val-csv', old_val])  # as advised
    assert checkpoint_load(last)['epoch'] == 2


def test_a_split_sorted_since_the_run_holds_the_same_rows(small_split, tmp_path, capsys):
    # Sorted in a spreadsheet: it was called a split with other rows, and test.py refused it.
    import split_data
    split = dict(small_split, train=str(tmp_path / 'train.csv'), val=str(tmp_path / 'val.csv'))
    split_data.main(['--input', small_split['catalog']['root'], '--output', str(tmp_path), '--workers', '1'])
    last = os.path.join(train.main(train_args(split, tmp_path / 'runs', '--epochs', 1)), 'last.pth')
    for name in ('train', 'val'):
        header, *rows = open(split[name], newline='').read().splitlines(keepends=True)
        assert rows != sorted(rows, reverse=True)
        open(split[name], 'w', newline='').write(header + ''.join(sorted(rows, reverse=True)))
    capsys.readouterr()
    load_test_script().main(['--checkpoint', last, '--output', str(tmp_path / 'eval')])
    assert 'note:' not in capsys.readouterr().out  # the same figures in any order
    # A column added in a spreadsheet, and the columns moved: refused as other rows, which test.py
    # does not read; and a copy of train.csv with a column added was scored without its note.
    def with_a_column_added(path, to, moved):
        with open(path, newline='') as f:
            rows = [row + ['a note'] for row in csv.reader(f)]
        with open(to, 'w', newline='') as f:
            csv.writer(f).writerows([row[::-1] if moved else row for row in rows])
    with_a_column_added(split['val'], split['val'], moved=True)
    load_test_script().main(['--checkpoint', last, '--output', str(tmp_path / 'eval')])
    assert 'note:' not in capsys.readouterr().out
    with_a_column_added(split['train'], tmp_path / 'noted.csv', moved=False)
    load_test_script().main(['--checkpoint', last, '--val-csv', str(tmp_path / 'noted.csv'),
                             '--output', str(tmp_path / 'eval')])
    assert f'note: {tmp_path / "noted.csv"} holds the rows' in capsys.readouterr().out
    train.main(['--resume', last, '--epochs', '2'])
    assert (f'note: {split["train"]} holds the rows it held when the run in {last} began, in another order'
            in capsys.readouterr().out)
    assert checkpoint_load(last)['epoch'] == 2
    header, *rows = open(split['train'], newline='').read().splitlines(keepends=True)
    copy = str(tmp_path / 'copy.csv')
    open(copy, 'w', newline='').write(header + ''.join(sorted(rows)))
    open(split['train'], 'w', newline='').write(header + ''.join(rows[:-1]))  # a row fewer: another split
    with pytest.raises(UserError, match=f"^{split['train']}: it holds other rows than when the run in {last} began"):
        train.main(['--resume', last, '--epochs', '3'])
    # Its rows, sorted again, in another file named with --train-csv: said too
    train.main(['--resume', last, '--epochs', '3', '--train-csv', copy])
    assert f'note: {copy} holds the rows the run in {last} began with, in another order' in capsys.readouterr().out


@pytest.mark.slow
def test_a_resumed_run_keeps_its_settings_and_data(small_split, tmp_path, monkeypatch, capsys):
    recipe = ['--batch-size', 8, '--lr', 0.002, '--warmup-epochs', 0.5, '--schedule', 'cosine']
    full = train.main(train_args(small_split, tmp_path, '--epochs', 2, '--val-every', 1, '--save-every', 1,
                                 *recipe))
    # A branch off its first epoch, going on with only --resume: the run's own recipe, schedule,
    # number of epochs and CSVs, from the checkpoint
    os.makedirs(tmp_path / 'branch')
    last = str(tmp_path / 'branch' / 'last.pth')
    # as if started from ImageNet's weights: resumed, it takes its own, with no download; and with
    # its own epoch as the best, which no later one can beat (a mean accuracy of 1)
    state = checkpoint_load(os.path.join(full, 'checkpoint-000001.pth'))
    checkpoint_save(last, dict(state, args=dict(state['args'], pretrained=True), best={'epoch': 1, 'score': 1.0}))
    downloads = []
    real_build_model = train.build_model
    monkeypatch.setattr(train, 'build_model', lambda attributes, pretrained: (
        downloads.append(pretrained), real_build_model(attributes, pretrained))[1])
    machine = ['--device', 'cpu', '--workers', '0', '--logs', str(tmp_path / 'logs')]
    capsys.readouterr()
    train.main(['--resume', last, *machine])
    # What it wrote for its epoch is said as a branch's, not as if a stop had left it unwritten
    said = capsys.readouterr().out
    assert (f"wrote checkpoint-000001.pth, metrics.csv, curves.png of epoch 1 from {last}, as its folder held none "
            "of its epochs' files (a checkpoint copied there to branch off, a stop after its first last.pth, or the "
            "run's files removed since)\n" in said), said
    assert metrics_rows(tmp_path / 'branch') == metrics_rows(full)
    assert downloads == [False]
    assert checkpoint_load(str(tmp_path / 'branch' / 'best.pth'))['epoch'] == 1  # the branch has its best too
    # raised --epochs: the cosine curve is drawn over the new length, and the run says so
    capsys.readouterr()
    train.main(['--resume', last, '--epochs', '3', *machine])
    assert re.search(r'^note: the cosine schedule is redrawn over 3 epochs instead of 2; the learning rate goes '
                     r'on from 0\.000691 \(the run of 2 epochs: 0\)$', capsys.readouterr().out, re.M)
    assert float(metrics_rows(tmp_path / 'branch')[-1]['lr']) == pytest.approx(0.000691, rel=1e-3)
    with pytest.raises(UserError, match=r'--lr 0.5: the run in .* trained with 0.002, and a resumed run keeps it'):
        train.main(['--resume', last, '--epochs', '3', '--lr', '0.5', *machine])
    with pytest.raises(UserError, match=r'^--epochs 3: the run in .* has done 3 epochs already; give a larger'):
        train.main(['--resume', last, '--epochs=3', *machine])
    with pytest.raises(UserError, match=r'^the run in .* has done 3 epochs, all it was to train; give a larger '
                                        r'--epochs to train it further$'):
        train.main(['--resume', last, *machine])  # not '--epochs 3', which the user did not write
    with open(tmp_path / 'branch' / 'args.json') as f:
        kept = ('batch_size', 'lr', 'schedule', 'epochs', 'pretrained')
        assert {k: v for k, v in json.load(f).items() if k in kept + ('checkpoints', 'run_name')} == \
            {'batch_size': 8, 'lr': 0.002, 'schedule': 'cosine', 'epochs': 3, 'pretrained': True,
             'checkpoints': str(tmp_path), 'run_name': 'branch'}  # its own folder's, not the run's it came from
    assert checkpoint_load(last)['args']['run_name'] == 'branch'
    # and so the original command's names, which lead to the run it came from, are not taken for it
    with pytest.raises(UserError, match=r"^--run-name run --checkpoints .*: the run folder named is .*run, but a "
                                        r"resumed run goes on in its checkpoint's folder, .*branch: leave them out "
                                        r"to go on there; to branch off"):
        train.main(['--resume', last, '--epochs', '4', '--run-name', 'run', '--checkpoints', str(tmp_path),
                    *machine])


def test_a_branch_in_a_folder_of_the_runs_name_elsewhere_names_its_own_folder(one_epoch_run, tmp_path, monkeypatch):
    # other/run/ (or a run named by the clock, in a folder of any name): its args.json and checkpoints
    # named the original's --checkpoints, which lead to the run it came from, not to the branch
    state = checkpoint_load(os.path.join(one_epoch_run, 'last.pth'))
    machine = ['--device', 'cpu', '--workers', '0']

    def ctrl_c(*args):
        raise KeyboardInterrupt

    def resumed(folder, settings, *flags):
        """The names in args.json of a run stopped before it saved, and then in those of its next epoch."""
        folder.mkdir(parents=True)
        last = checkpoint_save(str(folder / 'last.pth'), dict(state, args=settings))
        with monkeypatch.context() as stopped:
            stopped.setattr(train, 'train_one_epoch', ctrl_c)
            with pytest.raises(SystemExit):
                train.main(['--resume', last, '--epochs', '3', *machine])
        names = [json.loads((folder / 'args.json').read_text())]
        assert {k: v for k, v in names[0].items() if k not in ('checkpoints', 'run_name')} == \
            {k: v for k, v in json.loads(json.dumps(settings)).items() if k not in ('checkpoints', 'run_name')}
        train.main(['--resume', last, '--epochs', '2', *machine])
        names += [json.loads((folder / 'args.json').read_text()), checkpoint_load(last)['args']]
        return [(settings['checkpoints'], settings['run_name']) for settings in names]

    original = (state['args']['checkpoints'], 'run')
    assert original[0] != str(tmp_path / 'other')
    assert resumed(tmp_path / 'other' / 'run', state['args']) == [(str(tmp_path / 'other'), 'run')] * 3
    clock = dict(state['args'], checkpoints=str(tmp_path / 'runs'), run_name=None)  # no --run-name given
    assert resumed(tmp_path / 'runs' / '2026-01-31_12-00-00', clock) == [(str(tmp_path / 'runs'), None)] * 3  # in place
    assert resumed(tmp_path / 'copied' / '2026-01-31_12-00-00', clock) == \
        [(str(tmp_path / 'copied'), '2026-01-31_12-00-00')] * 3
    # a relative --checkpoints, from the folder the run started in: in place from anywhere
    relative = dict(state['args'], checkpoints='runs', run_name='mine', workdir=str(tmp_path))
    monkeypatch.chdir(one_epoch_run)
    assert resumed(tmp_path / 'runs' / 'mine', relative) == [('runs', 'mine')] * 3


def test_a_branch_whose_best_epoch_stayed_behind_says_so(tmp_path, capsys):
    runs.keep_best_of_resumed(str(tmp_path), {'epoch': 2, 'best': {'epoch': 1, 'score': 0.5}}, 'elsewhere.pth')
    assert capsys.readouterr().out == (f'note: the best epoch so far, 1, is not in {tmp_path}; best.pth is written '
                                       'there when a later epoch beats it\n')
    assert os.listdir(tmp_path) == []


def test_a_branch_off_a_run_not_yet_validated_has_no_best_epoch_to_speak_of(tmp_path, capsys):
    # Before its first validation a run's best is epoch 0 (train.py's start): there is no best
    # epoch to copy or to say is elsewhere.
    runs.keep_best_of_resumed(str(tmp_path), {'epoch': 2, 'best': {'epoch': 0, 'score': -1.0}}, 'elsewhere.pth')
    assert capsys.readouterr().out == ''
    assert os.listdir(tmp_path) == []


def start_training(small_split, tmp_path, *extra, group=False, env=None):
    # group: in a process group of its own, as `timeout` starts a command, to signal it with its workers
    args = train_args(small_split, tmp_path, '--epochs', EPOCHS, '--val-every', 1, '--save-every', 2, *extra)
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'), *args], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=group,
                            env=dict(os.environ, PYTHONUNBUFFERED='1', **(env or {})),
                            preexec_fn=ctrl_c_as_in_a_terminal)


def with_default_start_method(method, folder):
    """The environment of a Python whose processes start by method unless told otherwise, as
    Python 3.14's start from a fork server on Linux: a sitecustomize.py in folder sets it."""
    folder.mkdir()
    (folder / 'sitecustomize.py').write_text(f'import multiprocessing\n'
                                             f'multiprocessing.set_start_method({method!r}, force=True)\n')
    return {'PYTHONPATH': os.pathsep.join([str(folder), *filter(None, [os.environ.get('PYTHONPATH')])])}


def ctrl_c_as_in_a_terminal():
    # A suite started in the background by a script (`pytest &`) inherits SIGINT ignored, and so
    # would train.py, which would then never see the Ctrl-C of the test below.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_epochs(run_dir, n, process, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(os.path.join(run_dir, 'metrics.csv')) and len(metrics_rows(run_dir)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f'training did not reach epoch {n}: {process.communicate()}')


@pytest.mark.slow
def test_sigkill_then_resume_finishes_with_the_same_weights_and_logs(full_run, small_split, tmp_path):
    process = start_training(small_split, tmp_path)
    run_dir = tmp_path / 'run'
    wait_for_epochs(run_dir, 1, process)
    time.sleep(0.7)  # somewhere inside epoch 2, maybe while a checkpoint is written
    process.send_signal(signal.SIGKILL)
    process.wait()
    last = checkpoint_load(str(run_dir / 'last.pth'))  # never a truncated file
    assert last['epoch'] >= 1
    result = run_script('train.py', *train_args(small_split, tmp_path, '--epochs', EPOCHS, '--val-every', 1,
                                                '--save-every', 2, '--resume', run_dir / 'last.pth'))
    assert result.returncode == 0, result.stderr
    assert metrics_rows(run_dir) == metrics_rows(full_run)
    assert same_weights(checkpoint_load(str(run_dir / 'last.pth'))['model'],
                        checkpoint_load(os.path.join(full_run, 'last.pth'))['model'])


@pytest.mark.parametrize('stop, status, words, to', [
    (signal.SIGINT, 130, r'interrupted \(Ctrl-C\)', 'the process'),
    (signal.SIGTERM, 143, 'stopped by SIGTERM', 'the process'),  # kill
    (signal.SIGTERM, 143, 'stopped by SIGTERM', 'its group, DataLoader workers with it'),  # timeout
    (signal.SIGHUP, 129, 'stopped by SIGHUP', 'its group, DataLoader workers with it'),  # its terminal closed
    # Python 3.14's default: tqdm's lock had started the resource tracker, which the SIGHUP killed,
    # and the one started anew at the exit printed a traceback for each lock the first had tracked
    (signal.SIGHUP, 129, 'stopped by SIGHUP', 'its group, with the fork server as the default')])
def test_ctrl_c_sigterm_or_sighup_saves_the_last_epoch_and_says_how_to_resume(small_split, tmp_path, stop, status,
                                                                              words, to):
    group = to.startswith('its group')
    env = with_default_start_method('forkserver', tmp_path / 'site') if 'fork server' in to else None
    process = start_training(small_split, tmp_path, *(['--data', 'loader', '--workers', 2] if group else []),
                             group=group, env=env)
    run_dir = tmp_path / 'run'
    wait_for_epochs(run_dir, 1, process)
    if group:  # the workers used to die of it, and the run to stop with their RuntimeError
        os.killpg(process.pid, stop)
    else:
        process.send_signal(stop)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, err  # as a shell reports it; the system's SIGTERM gave -15
    assert 'Traceback' not in err
    # named as below the folder it was started in, where the user is
    assert re.search(rf'\n{words} (in|after) epoch \d+; epoch \d+ is saved in run/last\.pth\. Resume with: python '
                     rf'\S+/train\.py --resume run/last\.pth --device cpu\n', out)
    assert checkpoint_load(str(run_dir / 'last.pth'))['epoch'] >= 1
    assert [name for name in os.listdir(run_dir) if name.startswith('.tmp-')] == []  # none left half-written


def test_a_closed_terminal_stops_the_run_with_its_epochs_saved(small_split, tmp_path):
    # An ssh connection dropped: the terminal hangs up, its processes get a SIGHUP, and a write to
    # it fails (EIO). The default ended the run where it stood (status -1, the epoch queued to be
    # saved lost); the words of the stop, unwritable, ended it with a traceback (status 1).
    terminal, its_end = pty.openpty()

    def on_the_terminal():  # its controlling terminal, as a login shell's job has it
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    args = train_args(small_split, tmp_path, '--epochs', EPOCHS, '--val-every', 1, '--data', 'loader', '--workers', 2)
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'), *args], cwd=str(tmp_path),
                               stdin=its_end, stdout=its_end, stderr=its_end, preexec_fn=on_the_terminal)
    os.close(its_end)
    run_dir, shown = tmp_path / 'run', b''
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (os.path.exists(run_dir / 'metrics.csv')
                                                   and len(metrics_rows(run_dir)) >= 1):
            if select.select([terminal], [], [], 0.05)[0]:
                shown += os.read(terminal, 65536)  # read, or the full terminal would hold the run
    finally:
        os.close(terminal)  # it hangs up
    assert process.wait(timeout=60) == 129, shown.decode(errors='replace')[-2000:]
    assert checkpoint_load(str(run_dir / 'last.pth'))['epoch'] >= 1
    assert [name for name in os.listdir(run_dir) if name.startswith('.tmp-')] == []


# train.py with a Ctrl-C in the parent's fork handlers as epoch 2's DataLoader workers start:
# Python would drop it there (in logging's, the run then hung at its next plot).
CTRL_C_AT_A_FORK = """
import os, signal, sys, train
from cli import run_cli
train_one_epoch = train.train_one_epoch
def ctrl_c_as_workers_start(model, loader, step, epoch, *rest):
    if epoch == 2:
        os.register_at_fork(after_in_parent=lambda: signal.raise_signal(signal.SIGINT))
    return train_one_epoch(model, loader, step, epoch, *rest)
train.train_one_epoch = ctrl_c_as_workers_start
run_cli(lambda: train.main(sys.argv[1:]))
"""


@pytest.mark.parametrize('default', ['fork', 'forkserver'])
def test_a_ctrl_c_as_the_dataloader_forks_its_workers_stops_the_run_too(small_split, tmp_path, default):
    # With the fork server as Python's default (3.14's on Linux) the workers are still forked: the
    # run stops as before, where it had started them from the server and ended with status 0.
    args = train_args(small_split, tmp_path, '--epochs', EPOCHS, '--data', 'loader', '--workers', 1)
    stopped = subprocess.run([sys.executable, '-c', CTRL_C_AT_A_FORK, *args], cwd=ROOT, capture_output=True,
                             text=True, timeout=300, preexec_fn=ctrl_c_as_in_a_terminal,
                             env=dict(os.environ, **with_default_start_method(default, tmp_path / 'site')))
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr  # not all 3 epochs with exit 0
    assert 'interrupted (Ctrl-C) in epoch 2; epoch 1 is saved' in stopped.stdout
    assert 'Traceback' not in stopped.stderr and 'Exception ignored' not in stopped.stderr
    assert checkpoint_load(str(tmp_path / 'run' / 'last.pth'))['epoch'] == 1


# train.py with its DataLoader worker killed in epoch 2, as the system's out-of-memory killer does.
WORKER_KILLED = """
import os, signal, sys, train
from cli import run_cli
train_one_epoch = train.train_one_epoch
def worker_killed_in_epoch_2(model, loader, step, epoch, *rest):
    if epoch == 2:  # the workers of --data loader are forked every epoch, with the dataset as it is now
        loader.dataset.__class__.__getitem__ = lambda dataset, index: os.kill(os.getpid(), signal.SIGKILL)
    return train_one_epoch(model, loader, step, epoch, *rest)
train.train_one_epoch = worker_killed_in_epoch_2
run_cli(lambda: train.main(sys.argv[1:]))
"""


def test_a_dataloader_worker_killed_stops_the_run_in_one_line_with_its_epochs_kept(small_split, tmp_path):
    # PyTorch's RuntimeError ("DataLoader worker (pid 123) is killed by signal: Killed.") ended the
    # run with a traceback from wherever the main process was, and no word of what was saved.
    args = train_args(small_split, tmp_path, '--epochs', EPOCHS, '--data', 'loader', '--workers', 1)
    result = subprocess.run([sys.executable, '-c', WORKER_KILLED, *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr
    last = str(tmp_path / 'run' / 'last.pth')
    # How PyTorch finds it ended: its SIGCHLD handler says by which signal, its wait for a batch does not
    assert re.search(r'\nerror: a DataLoader worker process \(pid \d+\) (was killed by SIGKILL|ended unexpectedly: '
                     r'killed, most often), as the system ends a process when memory runs out \(fewer --workers need '
                     r'less; 0: none\)\. The run stopped in epoch 2; '
                     rf'epoch 1 is saved in {re.escape(last)}\. Resume with: python train\.py --resume '
                     rf'{re.escape(last)} --device cpu\n$', result.stderr), result.stderr
    assert checkpoint_load(last)['epoch'] == 1


def test_a_ctrl_c_while_the_last_epoch_is_written_says_the_run_is_complete(small_split, tmp_path, monkeypatch,
                                                                           capsys):
    real_wait = train.BackgroundSaver.wait

    def ctrl_c_as_the_files_are_written(saver):
        real_wait(saver)
        raise KeyboardInterrupt

    monkeypatch.setattr(train.BackgroundSaver, 'wait', ctrl_c_as_the_files_are_written)
    monkeypatch.chdir(ROOT)  # where train.py is: `python train.py`
    with pytest.raises(SystemExit) as stop:
        train.main(train_args(small_split, tmp_path, '--epochs', 2))
    last = str(tmp_path / 'run' / 'last.pth')
    assert stop.value.code == 130 and checkpoint_load(last)['epoch'] == 2
    # not "Resume with": a resume of a finished run is refused
    assert capsys.readouterr().out.endswith(f'\ninterrupted (Ctrl-C) after the last epoch; all 2 epochs are saved in '
                                            f'{last}. Evaluate with: python test.py --checkpoint {last}\n')
    one = train.interrupted_message(1, 1, "run/last.pth", [], 1, None, 'interrupted (Ctrl-C)')  # not "all 1 epoch are"
    assert one.startswith('interrupted (Ctrl-C) after the last epoch; its one epoch is saved in run/last.pth. ')


def test_a_new_run_stopped_before_it_saved_an_epoch_leaves_no_folder_behind(small_split, tmp_path, monkeypatch,
                                                                            capsys):
    # Each Ctrl-C in the first epoch left a run folder holding its args.json alone
    def ctrl_c(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(train, 'train_one_epoch', ctrl_c)
    for name in ('first', 'first'):  # the same --run-name again: no folder in the way
        with pytest.raises(SystemExit) as stop:
            train.main(train_args(small_split, tmp_path, '--epochs', 2, '--run-name', name))
        said = capsys.readouterr().out
        assert stop.value.code == 130 and 'during the first epoch: nothing to resume from yet' in said
        assert os.listdir(tmp_path) == []
    # A folder the user made, holding a file of theirs: both stay, the run's args.json goes
    # The folders above it that it made too (they stayed, empty), as far as the first one there
    with pytest.raises(SystemExit):
        train.main(train_args(small_split, tmp_path, '--epochs', 2, '--checkpoints', tmp_path / 'new' / 'deeper'))
    assert os.listdir(tmp_path) == []
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('my notes')
    with pytest.raises(SystemExit):
        train.main(train_args(small_split, tmp_path, '--epochs', 2, '--run-name', 'mine'))
    assert os.listdir(tmp_path / 'mine') == ['notes.txt']
    (tmp_path / 'mine' / 'notes.txt').unlink()  # an empty folder the user made stays too
    with pytest.raises(SystemExit):
        train.main(train_args(small_split, tmp_path, '--epochs', 2, '--run-name', 'mine'))
    assert os.listdir(tmp_path / 'mine') == []


def test_a_new_run_stopped_before_it_saved_an_epoch_leaves_no_tensorboard_log_behind(small_split, tmp_path,
                                                                                     monkeypatch, capsys):
    # Its events file stayed: the same --run-name again was refused as mixing its logs into another run's
    class Writer:  # tensorboard's SummaryWriter, which the suite does not install: it makes its file at once
        def __init__(self, folder, purge_step=None):
            os.makedirs(folder, exist_ok=True)
            (Path(folder) / f'events.out.tfevents.{len(os.listdir(folder))}').write_bytes(b'\0' * 88)

        def close(self):
            pass

    def ctrl_c(*args):
        raise KeyboardInterrupt
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', types.SimpleNamespace(SummaryWriter=Writer))
    monkeypatch.setattr(runs, 'tensorboard_installed', lambda: True)
    monkeypatch.setattr(train, 'train_one_epoch', ctrl_c)
    logs = tmp_path / 'logs'
    for _ in range(2):  # the same --run-name again: not refused
        with pytest.raises(SystemExit) as stop:
            train.main(train_args(small_split, tmp_path / 'runs', '--epochs', 2, '--logs', logs))
        assert stop.value.code == 130 and 'nothing to resume from yet' in capsys.readouterr().out
        assert os.listdir(logs) == []
    (logs / 'run').mkdir()  # a folder the user made, with a file of theirs: both stay
    (logs / 'run' / 'notes.txt').write_text('my notes')
    with pytest.raises(SystemExit):
        train.main(train_args(small_split, tmp_path / 'runs', '--epochs', 2, '--logs', logs))
    assert os.listdir(logs / 'run') == ['notes.txt']


def test_a_resume_of_a_run_that_saved_no_epoch_says_so(one_epoch_run, tmp_path):
    # A run killed (kill -9) in its first epoch leaves its folder with its args.json alone: --resume of it
    # said "no such checkpoint file", or of the folder "a folder, not a checkpoint file", as if mistyped
    folder = tmp_path / 'checkpoints' / '2026-01-31_12-00-00'  # named by the clock: no name given
    folder.mkdir(parents=True)
    shutil.copy(os.path.join(one_epoch_run, 'args.json'), folder)
    for given, what in [(folder / 'last.pth', 'no such checkpoint file'), (folder, 'a folder, not a checkpoint file')]:
        with pytest.raises(UserError) as error:
            train.main(['--resume', str(given), '--device', 'cpu'])
        assert str(error.value) == (
            f'{given}: {what}: the run in {folder} stopped before it saved its first epoch (killed, say; its folder '
            'holds its args.json but no checkpoint), so there is nothing to resume. Start it anew without --resume '
            f'(its settings are in {folder / "args.json"}); --checkpoints {tmp_path / "checkpoints"} --run-name '
            f'2026-01-31_12-00-00 starts it in that folder again')
    # a train.py in its first epoch there, its folder locked: not said to have stopped
    claimed = runs.claim_run_folder(str(folder), None)
    try:
        with pytest.raises(UserError, match=f'^{re.escape(str(folder / "last.pth"))}: no such checkpoint file: the '
                                            f'run in {re.escape(str(folder))} is still in its first epoch \\(another '
                                            'train.py is training in it\\); resume it once it has saved one, if it '
                                            'stops$'):
            train.main(['--resume', str(folder / 'last.pth'), '--device', 'cpu'])
    finally:
        runs.release_run_folder(claimed)
    # an args.json that train.py did not write, or a folder with a checkpoint: as before
    (folder / 'args.json').write_text('{"mine": true}')
    with pytest.raises(UserError, match=f'^{re.escape(str(folder / "last.pth"))}: no such checkpoint file$'):
        train.main(['--resume', str(folder / 'last.pth'), '--device', 'cpu'])
    shutil.copy(os.path.join(one_epoch_run, 'args.json'), folder)
    shutil.copy(os.path.join(one_epoch_run, 'best.pth'), folder)
    with pytest.raises(UserError, match=f'^{re.escape(str(folder))}: a folder, not a checkpoint file; give one of its '
                                        'checkpoints, such as .*best.pth$'):
        train.main(['--resume', str(folder), '--device', 'cpu'])


def test_a_resumed_run_stopped_as_it_starts_leaves_its_args_json_as_its_checkpoint_holds_them(one_epoch_run, tmp_path,
                                                                                             monkeypatch, capsys):
    # A Ctrl-C as the resumed epoch's missing files were written said no epoch and no command, and
    # left args.json with --epochs 3, which no checkpoint held
    run_dir = shutil.copytree(one_epoch_run, tmp_path / 'run')
    os.remove(run_dir / 'curves.png')
    # the copy's folder named, not the run's it was copied from (a branch's names)
    saved = dict(json.loads((run_dir / 'args.json').read_text()), checkpoints=str(tmp_path))

    def ctrl_c(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(train, 'plot_curves', ctrl_c)
    resume = ['--resume', str(run_dir / 'last.pth'), '--epochs', '3', '--device', 'cpu']
    with pytest.raises(SystemExit) as stop:
        train.main(resume)
    said = capsys.readouterr().out
    assert stop.value.code == 130
    assert f'after epoch 1; epoch 1 is saved in {run_dir / "last.pth"}. Resume with: ' in said
    assert json.loads((run_dir / 'args.json').read_text()) == saved
    monkeypatch.setattr(runs, 'keep_best_of_resumed', ctrl_c)  # as args.json has just been written
    os.remove(run_dir / 'best.pth')
    with pytest.raises(KeyboardInterrupt):
        train.main(resume)
    assert json.loads((run_dir / 'args.json').read_text()) == saved


def test_a_ctrl_c_while_a_resumed_run_sets_up_says_how_to_go_on(one_epoch_run, small_split, tmp_path, monkeypatch,
                                                                capsys):
    # As its pictures were decoded (minutes on the real data), a stop ended in run_cli's line alone,
    # "interrupted (Ctrl-C); no file was left half-written", without the command to go on
    run_dir = shutil.copytree(one_epoch_run, tmp_path / 'run')
    last = run_dir / 'last.pth'
    said = (f'\ninterrupted (Ctrl-C); no file was left half-written, and epoch 1 is still saved in {last}. '
            f'Resume with: python train.py --resume {last} --epochs 3 --device cpu\n')

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.chdir(ROOT)  # where train.py is: `python train.py`
    resume = ['--resume', str(last), '--epochs', '3', '--device', 'cpu']
    with monkeypatch.context() as decoding:
        decoding.setattr(train, 'make_train_loader', ctrl_c)
        with pytest.raises(SystemExit) as stop:
            run_cli(lambda: train.main(resume))
        assert stop.value.code == 130 and capsys.readouterr().err == said
        # a new run's setup has nothing to go on from: run_cli's line alone, as before
        with pytest.raises(SystemExit):
            run_cli(lambda: train.main(train_args(small_split, tmp_path / 'new', '--epochs', 2)))
        assert capsys.readouterr().err == '\ninterrupted (Ctrl-C); no file was left half-written\n'
    # the last of the setup: as the run starts in its folder, copying best.pth in
    os.remove(run_dir / 'best.pth')
    monkeypatch.setattr(runs, 'keep_best_of_resumed', ctrl_c)
    with pytest.raises(SystemExit):
        run_cli(lambda: train.main(resume))
    assert capsys.readouterr().err == said


def test_the_command_to_resume_repeats_how_the_run_ran_here_and_a_resume_in_another_precision_is_said(
        small_split, tmp_path, monkeypatch, capsys):
    # "Resume with: python train.py --resume ...": followed, a run that trained in bf16 NCHW went
    # on in fp32 channels_last, without a word; and one given --device cpu on a GPU machine went on on the GPU
    real_epoch = train.train_one_epoch

    def ctrl_c_in_epoch_2(model, loader, step, epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(model, loader, step, epoch, *args)
    monkeypatch.setattr(train, 'train_one_epoch', ctrl_c_in_epoch_2)
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit):
        train.main(train_args(small_split, tmp_path, '--epochs', 3, '--precision', 'bf16', '--channels-last', 'off'))
    last = tmp_path / 'run' / 'last.pth'
    assert capsys.readouterr().out.endswith(f'Resume with: python train.py --resume {last} --device cpu --precision '
                                            'bf16 --channels-last off\n')
    with pytest.raises(SystemExit):
        train.main(['--resume', str(last), '--device', 'cpu', '--epochs', '4'])
    said = capsys.readouterr().out
    assert f'note: {last} trained in bf16; this run goes on in fp32 (--precision bf16 goes on as it was)\n' in said
    assert said.endswith(f'Resume with: python train.py --resume {last} --epochs 4 --device cpu\n')
    # the defaults, given or not, are not repeated: auto finds the same device again
    assert train.how_it_ran(train.parse_args(['--device', 'auto', '--precision', 'auto'])) == []
    assert train.how_it_ran(train.parse_args(['--device', 'cuda:1', '--compile'])) == \
        ['--device', 'cuda:1', '--compile', 'default']


def test_a_ctrl_c_just_after_an_epochs_line_keeps_that_epoch(small_split, tmp_path, monkeypatch, capsys):
    def ctrl_c_after_epoch_1s_line(*args, **kwargs):
        print(*args, **kwargs)
        if args and str(args[0]).startswith('epoch   1 '):
            raise KeyboardInterrupt

    monkeypatch.setattr(train, 'print', ctrl_c_after_epoch_1s_line, raising=False)  # train.py's own prints
    with pytest.raises(SystemExit):
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS))
    last = tmp_path / 'run' / 'last.pth'
    assert checkpoint_load(str(last))['epoch'] == 1  # the line said it was done: it is kept
    assert f'\ninterrupted (Ctrl-C) after epoch 1; epoch 1 is saved in {last}. Resume with: ' in capsys.readouterr().out


def test_a_second_ctrl_c_as_the_first_is_taken_still_says_what_is_saved(small_split, tmp_path, monkeypatch, capsys):
    # gpu_check.sh's `timeout --foreground` passes the terminal's Ctrl-C on: the second came as the
    # first was being taken, before it was held, and the run ended in run_cli's line alone.
    def ctrl_c_after_epoch_1s_line(*args, **kwargs):
        print(*args, **kwargs)
        if args and str(args[0]).startswith('epoch   1 '):
            raise KeyboardInterrupt

    real_how_stopped, calls = train.how_stopped, []

    def a_second_ctrl_c_first(stop):
        calls.append(stop)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_how_stopped(stop)

    monkeypatch.setattr(train, 'print', ctrl_c_after_epoch_1s_line, raising=False)
    monkeypatch.setattr(train, 'how_stopped', a_second_ctrl_c_first)
    with pytest.raises(SystemExit) as stop:
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS))
    assert stop.value.code == 130
    assert f'\ninterrupted (Ctrl-C) after epoch 1; epoch 1 is saved in {tmp_path / "run" / "last.pth"}. Resume with: ' \
        in capsys.readouterr().out


def test_a_second_ctrl_c_while_the_first_ones_files_are_written_waits_for_them(small_split, tmp_path, monkeypatch,
                                                                                 capsys):
    # Ctrl-C pressed twice, or the terminal's passed on again by gpu_check.sh's `timeout --foreground`:
    # the second cut the first short, and the run ended in run_cli's line, without its own.
    def ctrl_c_after_epoch_1s_line(*args, **kwargs):
        print(*args, **kwargs)
        if args and str(args[0]).startswith('epoch   1 '):
            raise KeyboardInterrupt

    real_close, closes = train.BackgroundSaver.close, []

    def another_ctrl_c_as_the_files_are_written(saver):
        closes.append(1)
        if len(closes) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        real_close(saver)

    monkeypatch.setattr(train, 'print', ctrl_c_after_epoch_1s_line, raising=False)
    monkeypatch.setattr(train.BackgroundSaver, 'close', another_ctrl_c_as_the_files_are_written)
    with pytest.raises(SystemExit) as stop:
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS))
    last = tmp_path / 'run' / 'last.pth'
    assert stop.value.code == 130 and checkpoint_load(str(last))['epoch'] == 1
    assert f'\ninterrupted (Ctrl-C) after epoch 1; epoch 1 is saved in {last}. Resume with: ' in capsys.readouterr().out


def test_pyplot_is_imported_before_the_first_epoch(small_split, tmp_path):
    # A Ctrl-C landing in the import of pyplot's C extensions comes out as an ImportError, not a
    # KeyboardInterrupt; so the import must not wait for the first plot. A fresh process: in this
    # one other tests have imported pyplot already.
    spy = ('import sys, train\n'
           'first_epoch = train.train_one_epoch\n'
           'def spy(*args):\n'
           '    print("pyplot loaded at epoch 1:", "matplotlib.pyplot" in sys.modules)\n'
           '    train.train_one_epoch = first_epoch\n'
           '    return first_epoch(*args)\n'
           'train.train_one_epoch = spy\n'
           f'train.main({train_args(small_split, tmp_path, "--epochs", 1)!r})\n')
    done = subprocess.run([sys.executable, '-c', spy], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert 'pyplot loaded at epoch 1: True' in done.stdout


def test_an_epochs_loss_and_accuracies_weigh_each_batch_by_its_size():
    # Batches of 4, 4 and 2 images, and the batch_stats their steps return.
    stats = [torch.tensor([1.0, 4, 2, 0]), torch.tensor([2.0, 3, 1, 4]), torch.tensor([4.0, 0, 2, 1])]
    loader = [{'img': torch.zeros(n, 3, 80, 60), 'labels': {f'{h}_labels': torch.zeros(n, dtype=torch.long)
                                                             for h in ('gender', 'article', 'color')}}
              for n in (4, 4, 2)]
    steps = iter(stats)
    args = train.parse_args(['--epochs', '1'])
    model = torch.nn.Linear(1, 1)
    row = train.train_one_epoch(model, loader, lambda images, targets: next(steps), 1, args,
                                distributed.Context(), channels_last=False)
    assert row == pytest.approx({'train_loss': (4 * 1 + 4 * 2 + 2 * 4) / 10, 'train_gender_accuracy': 0.7,
                                 'train_article_accuracy': 0.5, 'train_color_accuracy': 0.5})


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(small_split, tmp_path, monkeypatch):
    calls = {'n': 0}
    real_get_loss = train_step.get_loss

    def goes_nan_in_epoch_2(output, targets):
        calls['n'] += 1
        loss, parts = real_get_loss(output, targets)
        return (loss * float('nan'), parts) if calls['n'] == 9 else (loss, parts)  # epoch 2, step 3

    monkeypatch.setattr(train_step, 'get_loss', goes_nan_in_epoch_2)
    with pytest.raises(UserError, match=r'became nan at epoch 2, step 3 of 6; the last good checkpoint is '
                                        r'.*last\.pth\. Start a new run with a lower --lr \(a resumed run keeps its own\)$'):
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS))
    assert calls['n'] == 9  # on a CPU, no step after it: checked every 50 steps, the epoch's 3 others ran
    assert checkpoint_load(str(tmp_path / 'run' / 'last.pth'))['epoch'] == 1
    assert len(metrics_rows(tmp_path / 'run')) == 1


def test_weights_that_diverge_while_every_loss_stays_finite_stop_the_run_before_they_are_saved(small_split,
                                                                                                 tmp_path):
    # A far too high learning rate: here the losses stay finite (1e14), BatchNorm's running
    # variances, which only evaluation uses, do not. Such a checkpoint would score as if nothing were
    # wrong. Where another platform's rounding takes a loss to inf first, that stop is as right; the
    # weights' own check is pinned down by the test after this one.
    with pytest.raises(UserError, match=r'^stopped: (epoch 1 ended with (inf|nan) in base_model\.\S+, though every '
                                        r'loss was finite|the loss became (inf|nan) at epoch 1, step \d+ of \d+)'
                                        r'\. Start a new run with a lower --lr'):
        train.main(train_args(small_split, tmp_path, '--epochs', 2, '--lr', '1e10'))
    assert not (tmp_path / 'run' / 'last.pth').exists()


def test_weights_made_nan_by_an_epochs_last_step_keep_the_epoch_before_as_the_last_good_one(small_split, tmp_path,
                                                                                          monkeypatch):
    real_epoch = train.train_one_epoch

    def last_step_goes_nan_in_epoch_2(model, loader, train_step, epoch, *rest):
        row = real_epoch(model, loader, train_step, epoch, *rest)
        if epoch == 2:  # as an update after the last loss would leave them
            with torch.no_grad():
                model.color[1].weight[0, 0] = float('nan')
        return row

    monkeypatch.setattr(train, 'train_one_epoch', last_step_goes_nan_in_epoch_2)
    with pytest.raises(UserError, match=r'epoch 2 ended with nan in color\.1\.weight, though every loss was finite; '
                                        r'the last good checkpoint is \S+/last\.pth\. '):
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS))
    assert checkpoint_load(str(tmp_path / 'run' / 'last.pth'))['epoch'] == 1


def test_a_nan_loss_before_a_resumed_run_saves_names_the_checkpoint_it_resumed(full_run, tmp_path, monkeypatch):
    branch = tmp_path / 'branch'  # a checkpoint copied into a folder of its own, with no last.pth yet
    branch.mkdir()
    shutil.copy(os.path.join(full_run, 'checkpoint-000002.pth'), branch)
    real_get_loss = train_step.get_loss

    def goes_nan(output, targets):
        loss, parts = real_get_loss(output, targets)
        return loss * float('nan'), parts

    monkeypatch.setattr(train_step, 'get_loss', goes_nan)
    resumed = str(branch / 'checkpoint-000002.pth')
    with pytest.raises(UserError, match=f'became nan at epoch 3, step 1 of 6; the last good checkpoint is '
                                        f'{re.escape(resumed)}\\. '):
        train.main(['--resume', resumed, '--device', 'cpu'])


def test_a_log_file_gets_each_epoch_summary_on_a_line_of_its_own(small_split, tmp_path):
    # `python train.py > train.log 2>&1`: the progress bars and the summaries share one file.
    with open(tmp_path / 'train.log', 'w') as log:
        command = [sys.executable, os.path.join(ROOT, 'train.py'), *train_args(small_split, tmp_path, '--epochs', 2)]
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=300,
                       env=dict(os.environ, PYTHONUNBUFFERED='1'))
    lines = (tmp_path / 'train.log').read_bytes().decode().split('\n')  # not read_text: keep the \r
    summaries = [line for line in lines if 'train loss' in line]
    assert [line.split()[:2] for line in summaries] == [['epoch', '1'], ['epoch', '2']], summaries
    assert not any('batch/s' in line for line in summaries)  # so `grep -v batch/s` keeps them
    # Each epoch's bar drawn as it starts and as it ends, not at tqdm's rate for a terminal (and
    # not at each loss shown): each copy stays in the file.
    draws = [len(re.findall(rf'epoch {n}/2:', '\n'.join(lines))) for n in (1, 2)]
    assert draws == [2, 2], draws


def test_a_progress_bar_is_redrawn_at_tqdms_rate_on_a_terminal_only(capsys, monkeypatch):
    def draws_of_a_second_of_steps():
        for _ in progress_bar(range(50), desc='steps'):
            time.sleep(0.02)
        return capsys.readouterr().err.count('steps:')

    assert draws_of_a_second_of_steps() == 2  # a file or a pipe (capsys): the first and the last
    with progress_bar(range(1)) as bar:  # nor tqdm's monitor thread's copy of a stale count, as steps slow
        assert bar.mininterval == bar.maxinterval == 30 and bar.miniters == 1 and not bar.dynamic_miniters
    monkeypatch.setattr(sys.stderr, 'isatty', lambda: True)
    assert draws_of_a_second_of_steps() >= 5  # tqdm's own: up to 10 a second


def test_the_stopwatch_keeps_the_first_round_apart():
    from stopwatch import Stopwatch
    watch = Stopwatch()
    watch.add('training', 5.0)  # the first epoch: the one-off costs
    watch.add('training', 1.0)
    assert (watch.first['training'], watch.seconds('training'), watch.rounds['training']) == (5.0, 6.0, 2)


def a_clock(monkeypatch, now):
    """The stopwatch's time.perf_counter, a clock that moves only as a test says: clock(seconds)."""
    import stopwatch
    reading = [now]
    monkeypatch.setattr(stopwatch, 'time', types.SimpleNamespace(perf_counter=lambda: reading[0]))

    def move_on(seconds):
        reading[0] += seconds
    return move_on


def test_a_phase_that_raises_is_timed_too_and_one_never_run_took_no_time(monkeypatch):
    from stopwatch import Stopwatch
    clock = a_clock(monkeypatch, 100.0)
    watch = Stopwatch()
    clock(2.0)
    watch.mark('setup')  # the seconds since the stopwatch was made
    with pytest.raises(KeyboardInterrupt), watch.phase('training'):
        clock(3.5)
        raise KeyboardInterrupt
    clock(0.25)
    assert (watch.seconds('setup'), watch.seconds('training'), watch.seconds('validation')) == (2.0, 3.5, 0.0)
    assert watch.elapsed() == 5.75


def test_the_time_line_names_a_first_round_only_of_a_phase_run_more_than_once(monkeypatch):
    from stopwatch import Stopwatch
    clock = a_clock(monkeypatch, 100.0)
    watch = Stopwatch()
    for name, seconds in [(None, 0.5), ('pictures', 1.0), (None, 0.5)]:
        with watch.phase(name) if name else contextlib.nullcontext():
            clock(seconds)
    watch.mark('setup')
    for name, seconds in [('training', 3.0), ('saving', 0.25), ('training', 1.0), ('validation', 0.5),
                          ('saving', 0.25), (None, 0.5)]:
        with watch.phase(name) if name else contextlib.nullcontext():
            clock(seconds)
    assert train.time_line(watch, 1.5) == (
        'time: 7.5 s after the imports: 2.0 s setting up (1.0 s loading the pictures), 4.0 s training (3.0 s of it '
        'the first epoch), 0.5 s validating, 0.5 s saving checkpoints, metrics and curves (and 1.5 s writing them '
        'beside the training), 0.5 s other')


def test_a_run_ends_saying_where_its_time_went(small_split, tmp_path, capsys):
    # The objects the tests before this one left in pytest's process are kept out of the garbage
    # collector's way: a full collection of them took 0.6 s here, in whichever phase it fell.
    gc.collect()
    gc.freeze()
    try:
        started = time.perf_counter()
        train.main(train_args(small_split, tmp_path, '--epochs', 2, '--val-every', 1))
        wall = time.perf_counter() - started
    finally:
        gc.unfreeze()
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith('time:'))
    found = re.fullmatch(r'time: (\S+) s after the imports: (\S+) s setting up \((\S+) s loading the pictures\), '
                         r'(\S+) s training \((\S+) s of it the first epoch\), (\S+) s validating '
                         r'\((\S+) s the first time\), (\S+) s saving checkpoints, metrics and curves '
                         r'\(and (\S+) s writing them beside the training\), (\S+) s other', line)
    assert found, line
    total, setup, pictures, training, first_epoch, validating, first_val, saving, beside, other = \
        map(float, found.groups())
    assert total <= wall + 0.05
    # Printed to 0.1 s: loading 120 small pictures or validating 24 can round to 0.0.
    assert 0 <= pictures <= setup and 0 < first_epoch < training and 0 <= first_val <= validating
    # Saving in the training's way is copying the state; the files are written beside it.
    assert saving > 0 and beside > 0
    # The phases cover the run: what is left is the epoch summaries and the last lines. Six
    # figures rounded to 0.1 s: the sum may be off by 0.3 s.
    assert setup + training + validating + saving + other == pytest.approx(total, abs=0.31)
    assert -0.05 <= other < 0.5


@pytest.mark.skipif(not any(shutil.which(c) for c in ('g++', 'c++', 'clang++')),
                    reason='torch.compile needs a C++ compiler on the CPU')
@pytest.mark.slow
def test_compile_trains_and_saves_the_plain_model(small_split, tmp_path, monkeypatch, capsys):
    # Inductor's C++ build of this model takes 70 s on 2 cores (69 kernels, a g++ run each), more
    # than any other test: here dynamo and AOTAutograd trace the same forward and backward graphs
    # and run them eagerly, in 7 s. What train.py adds around torch.compile (the compiled wrapper,
    # the plain model saved) is the same either way; benchmarks/step_variants.py builds with inductor.
    compile_eagerly = torch.compile
    modes, marks = [], []
    # each step tells torch.compile's own CUDA graphs that it begins (for --compile reduce-overhead)
    monkeypatch.setattr(torch.compiler, 'cudagraph_mark_step_begin', lambda: marks.append(1))

    def traced(model, mode):
        modes.append(mode)
        return compile_eagerly(model, backend='aot_eager')

    monkeypatch.setattr(torch, 'compile', traced)
    torch._dynamo.reset()
    try:
        train.main(train_args(small_split, tmp_path, '--epochs', EPOCHS, '--compile'))
        assert torch._dynamo.utils.counters['stats']['unique_graphs'] > 0  # it did go through dynamo
    finally:
        torch._dynamo.reset()
    assert modes == ['default'] * 2 and len(marks) == EPOCHS * 6  # the model, the loss; 96 pictures at batch 16
    assert 'torch.compile default' in capsys.readouterr().out
    rows = metrics_rows(tmp_path / 'run')
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
    # The bare model's names, without the compiled wrapper's '_orig_mod.' prefixes, and it loads.
    assert not [name for name in checkpoint_load(str(tmp_path / 'run' / 'last.pth'))['model'] if '_orig_mod' in name]
    _, _, state = model_from_checkpoint(str(tmp_path / 'run' / 'last.pth'))
    assert state['args']['compile'] == 'default'


@pytest.mark.parametrize('flags,device,processes,graphs', [
    ([], 'cuda', 1, True),
    ([], 'cpu', 1, False),
    ([], 'cuda', 2, False),
    (['--cuda-graphs', 'off'], 'cuda', 1, False),
    (['--compile'], 'cuda', 1, True),  # the compiled model recorded inside our graph
    (['--compile'], 'cuda', 2, False),
    (['--compile', '--cuda-graphs', 'off'], 'cuda', 1, False),
    (['--compile', 'reduce-overhead'], 'cuda', 1, False),  # it records graphs of its own
    (['--compile', '--cuda-graphs', 'on'], 'cuda', 1, True),
])
def test_when_the_whole_step_becomes_a_cuda_graph(flags, device, processes, graphs):
    context = distributed.Context(world_size=processes, device=torch.device(device))
    assert train.use_cuda_graphs(train.parse_args(flags), context) is graphs


def test_what_a_device_cannot_do_is_noted_not_claimed(capsys):
    # --cuda-graphs on, or --precision bf16 on a Mac's GPU, ran as the default does, without a word
    cpu = distributed.Context(device=torch.device('cpu'))
    assert train.use_cuda_graphs(train.parse_args(['--cuda-graphs', 'on']), cpu) is False
    assert capsys.readouterr().out == 'note: --cuda-graphs on: CUDA graphs need a CUDA GPU; on cpu each step runs eagerly\n'
    assert train.use_cuda_graphs(train.parse_args(['--compile', 'reduce-overhead']), cpu) is False
    said = capsys.readouterr().out
    assert said == ('note: --compile reduce-overhead: its CUDA graphs need a CUDA GPU; '
                    'on cpu it compiles as mode "default"\n')
    for device, mode in (('cpu', 'default'), ('cuda', 'reduce-overhead')):  # the setup line says the mode it runs
        context = distributed.Context(device=torch.device(device))
        flags = train.parse_args(['--compile', 'reduce-overhead'])
        described = train.describe_setup(flags, context, 'fp32', True, False)
        assert described == f'fp32, channels_last, torch.compile {mode}'
    train.use_cuda_graphs(train.parse_args(['--compile']), cpu)
    assert capsys.readouterr().out == ''
    train.set_cudnn_search(train.parse_args(['--cudnn-benchmark', 'on']), torch.device('cpu'))
    said = capsys.readouterr().out
    assert said == "note: --cudnn-benchmark on: cuDNN is NVIDIA's; on cpu it has no kernels to search\n"
    train.set_cudnn_search(train.parse_args([]), torch.device('cpu'))
    assert capsys.readouterr().out == ''
    assert train.choose_precision(train.parse_args(['--precision', 'bf16']), torch.device('mps')) == 'fp32'
    assert capsys.readouterr().out == 'note: --precision bf16 runs on CUDA and on the CPU; on mps this run is in fp32\n'
    assert train.choose_precision(train.parse_args(['--precision', 'bf16']), torch.device('cpu')) == 'bf16'
    # auto on a Mac's GPU is fp32 at any batch size: bf16 would be recorded, but not run
    assert train.choose_precision(train.parse_args(['--batch-size', '256']), torch.device('mps')) == 'fp32'
    assert capsys.readouterr().out == ''


def test_bf16_on_the_cpu_computes_in_bf16():
    # --precision bf16 on the CPU is taken (above), and so must run in it, not quietly in fp32.
    layer = torch.nn.Linear(4, 4)
    with autocast_for(torch.device('cpu'), 'bf16'):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast_for(torch.device('cpu'), 'fp32'):
        assert layer(torch.ones(1, 4)).dtype == torch.float32


def test_a_cuda_graph_under_ddp_is_refused():
    context = distributed.Context(world_size=2, device=torch.device('cuda'))
    with pytest.raises(UserError, match='--cuda-graphs on: not with several processes'):
        train.use_cuda_graphs(train.parse_args(['--cuda-graphs', 'on']), context)


@pytest.mark.parametrize('flags,device,before,after', [
    ([], 'cuda', True, False),  # off unless asked for: on an H200 the search cost seconds and gained nothing
    (['--cudnn-benchmark', 'on'], 'cuda', False, True),
    ([], 'cpu', True, True),  # no cuDNN there: the setting is left as it was
    (['--cudnn-benchmark', 'on'], 'cpu', False, False),
])
def test_whether_cudnn_searches_for_the_training_kernels(flags, device, before, after):
    saved = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = before
        train.set_cudnn_search(train.parse_args(flags), torch.device(device))
        assert torch.backends.cudnn.benchmark is after
    finally:
        torch.backends.cudnn.benchmark = saved
    context = distributed.Context(device=torch.device(device))
    described = train.describe_setup(train.parse_args(flags), context, 'fp32', True, False)
    assert ("cuDNN's kernel search" in described) is (device == 'cuda' and after)


@pytest.mark.parametrize('flags,device,channels_last', [
    ([], 'cuda', False),  # the tutorial's batch 16: NCHW runs the step as fast and starts sooner
    (['--batch-size', '17'], 'cuda', True),
    (['--batch-size', '256'], 'cuda', True),
    ([], 'cpu', True),  # 1.1 to 1.35x faster on 2 cores at any batch
    ([], 'mps', True),
    (['--channels-last', 'on'], 'cuda', True),
    (['--channels-last', 'off', '--batch-size', '256'], 'cuda', False),
    (['--channels-last', 'off'], 'cpu', False),
])
def test_which_memory_format_a_run_trains_in(flags, device, channels_last):
    assert train.choose_channels_last(train.parse_args(flags), torch.device(device)) is channels_last


@pytest.mark.parametrize('flags,device,precision', [
    ([], 'cuda', 'fp32'),  # the tutorial's batch 16: bf16's weight casts cost more than they save
    (['--batch-size', '256'], 'cuda', 'bf16'),
    (['--batch-size', '256'], 'cpu', 'fp32'),
    (['--precision', 'bf16'], 'cuda', 'bf16'),
    (['--precision', 'fp32', '--batch-size', '256'], 'cuda', 'fp32'),
    (['--compile'], 'cuda', 'bf16'),  # compiled, the casts fuse: 1.18x fp32's rate at batch 16
    (['--compile', '--precision', 'fp32'], 'cuda', 'fp32'),
    (['--compile'], 'cpu', 'fp32'),
])
def test_which_precision_a_run_trains_in(flags, device, precision):
    args = train.parse_args(flags)
    assert train.choose_precision(args, torch.device(device)) == precision
    # and validates in; test.py scores its checkpoint the same way, as it says, or where it does not
    # (one from before it did), from the arguments saved in it, by the rule of then: compiled or
    # not, fp32 at batch 16
    saved = runs.saved_args(args)
    assert validation_precision({'args': saved, 'precision': precision}, torch.device(device)) == precision
    compiled_auto = args.compile and args.precision == 'auto'
    before = 'fp32' if compiled_auto else precision
    assert validation_precision({'args': saved}, torch.device(device)) == before
    assert validation_precision({}, torch.device(device)) == 'fp32'  # the tutorial's bare state_dict
    # a run validated on the CPU in fp32 at batch 256, scored on a GPU: fp32 still, not the GPU's bf16
    cpu_run = {'args': runs.saved_args(train.parse_args(['--batch-size', '256'])), 'precision': 'fp32'}
    assert validation_precision(cpu_run, torch.device('cuda')) == 'fp32'


def test_each_epoch_of_the_tutorials_path_draws_its_own_order_augmentations_and_dropout(small_split, tmp_path,
                                                                                        monkeypatch):
    # A seed without the epoch in it trained every epoch on the same order and draws, and resumed
    # exactly all the same: nothing else shows it. (The in-memory path's, test_memory_data.py.)
    seeds, orders, real_set_epoch, real_getitem = [], [], train.set_epoch, dataset.FashionDataset.__getitem__

    def set_epoch(loader, *args):
        seeds.append(torch.initial_seed())  # the global generator's: the augmentations' and dropout's
        orders.append([])
        real_set_epoch(loader, *args)

    def getitem(self, index):
        if orders:  # not the check of every picture before the first epoch
            orders[-1].append(index)
        return real_getitem(self, index)

    monkeypatch.setattr(train, 'set_epoch', set_epoch)
    monkeypatch.setattr(dataset.FashionDataset, '__getitem__', getitem)
    train.main(train_args(small_split, tmp_path, '--epochs', 2, '--data', 'loader'))
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(len(orders[0]))) and orders[0] != orders[1]


@pytest.mark.slow
def test_the_tutorials_dataloader_path_resumes_exactly_too(small_split, tmp_path):
    # With a worker process: its random draws (the augmentation) must restart with each epoch's
    # seed, as they do in a resumed run, whose first epoch starts fresh workers.
    args = train_args(small_split, tmp_path, '--data', 'loader', '--workers', 1, '--val-every', 1)
    full = train.main(args + ['--epochs', '2', '--run-name', 'full'])
    run_dir = train.main(args + ['--epochs', '1'])
    # As the Ctrl-C message says to resume: the data path and its one worker come from the checkpoint.
    train.main(['--resume', os.path.join(run_dir, 'last.pth'), '--epochs', '2', '--device', 'cpu'])
    assert metrics_rows(run_dir) == metrics_rows(full)
    assert same_weights(checkpoint_load(os.path.join(run_dir, 'last.pth'))['model'],
                        checkpoint_load(os.path.join(full, 'last.pth'))['model'])


def test_a_run_folder_in_use_by_another_run_is_refused(small_split, tmp_path):
    # The same --run-name started twice: the first has saved no epoch yet, but holds the folder.
    claimed = runs.claim_run_folder(str(tmp_path / 'run'), None)
    try:
        with pytest.raises(UserError, match='run: another train.py is training in it'):
            train.main(train_args(small_split, tmp_path, '--epochs', 1))
    finally:
        runs.release_run_folder(claimed)
    assert os.listdir(tmp_path / 'run') == []
    train.main(train_args(small_split, tmp_path, '--epochs', 1))  # free again


def test_a_run_folder_in_use_says_what_to_do_for_a_new_run_and_for_a_resumed_one(tmp_path):
    # A new run can take another name; a resumed one goes on in its own folder, so it waits.
    claimed = runs.claim_run_folder(str(tmp_path / 'run'), None)
    try:
        with pytest.raises(UserError, match='run: another train.py is training in it; give another --run-name$'):
            runs.claim_run_folder(str(tmp_path / 'run'), None)
        with pytest.raises(UserError, match='run: another train.py is training in it; wait for it to end$'):
            runs.claim_run_folder(str(tmp_path / 'run'), {'epoch': 1})
    finally:
        runs.release_run_folder(claimed)


def test_a_log_folder_that_cannot_be_made_frees_the_run_folder(small_split, tmp_path, monkeypatch):
    # TensorBoard's log (with tensorboard installed) is opened after the run folder is claimed:
    # when it fails, the claim goes too, and the same run started again in this process trains.
    def no_permission(args, run_name, resume):
        raise PermissionError(errno.EACCES, 'Permission denied', os.path.join(args.logs, run_name))

    monkeypatch.setattr(runs, 'tensorboard_writer', no_permission)
    with pytest.raises(PermissionError):
        train.main(train_args(small_split, tmp_path, '--epochs', 1))
    runs.release_run_folder(runs.claim_run_folder(str(tmp_path / 'run'), None))  # not 'in use by another run'


def test_a_log_folder_that_is_a_file_is_refused_before_the_pictures_are_loaded(small_split, tmp_path, monkeypatch):
    monkeypatch.setattr(runs, 'tensorboard_installed', lambda: True)  # only then is --logs written in
    monkeypatch.setattr(train, 'FashionDataset', None)  # not reached: loading 32,000 pictures takes a while
    (tmp_path / 'logs').write_text('')
    with pytest.raises(UserError, match=f'^--logs {tmp_path / "logs"}: {tmp_path / "logs"} is a file, not a folder$'):
        train.main(train_args(small_split, tmp_path, '--epochs', 1, '--logs', tmp_path / 'logs'))
    assert not (tmp_path / 'run').exists()


def test_a_log_folder_with_another_runs_logs_is_refused_for_a_new_run_not_for_a_resumed_one(small_split, tmp_path,
                                                                                            monkeypatch):
    # The same --run-name in other --checkpoints: its TensorBoard logs went beside the other run's,
    # and TensorBoard drew the two as one run.
    monkeypatch.setattr(runs, 'tensorboard_installed', lambda: True)
    monkeypatch.setattr(runs, 'tensorboard_writer', lambda *args: None)  # tensorboard may not be installed
    logs = tmp_path / 'logs'
    (logs / 'run').mkdir(parents=True)
    (logs / 'run' / 'notes.txt').write_text('not a log')  # no event file: no run's logs
    run_dir = train.main(train_args(small_split, tmp_path / 'first', '--epochs', 1, '--logs', logs))
    (logs / 'run' / 'events.out.tfevents.1796542156.vm.348.0').write_bytes(b'')
    with pytest.raises(UserError, match=f'^--logs {logs}: {logs / "run"} holds the TensorBoard logs of another run '
                                        'by that name, which this one would be mixed into; give another --run-name'):
        train.main(train_args(small_split, tmp_path / 'second', '--epochs', 1, '--logs', logs))
    assert not (tmp_path / 'second').exists()
    train.main(['--resume', os.path.join(run_dir, 'last.pth'), '--epochs', '2', '--logs', str(logs)])
    assert checkpoint_load(os.path.join(run_dir, 'last.pth'))['epoch'] == 2


# The C++ builder's module, imported as torch.compile builds the first kernels on a CPU
CUDA_HOME_WARNED = """
import sys, torch
import train
if sys.argv[1] == 'checked':
    try:
        train.check_cpu_compiler(train.parse_args(['--compile']), torch.device('cpu'))
    except train.UserError:  # no C++ compiler: --compile is refused, nothing to warn of
        sys.exit(3)
torch._logging._init_logs()  # as torch.compile sets up its logging
import torch.utils.cpp_extension
"""


def test_compile_on_a_cpu_leaves_out_the_c_builders_word_on_cuda(tmp_path):
    # "No CUDA runtime is found, using CUDA_HOME='/usr/local'" in the progress bar of a run on a CPU
    said = {}
    for how in ('checked', 'as PyTorch has it'):
        result = subprocess.run([sys.executable, '-c', CUDA_HOME_WARNED, how], cwd=ROOT, capture_output=True,
                                text=True, timeout=120, env=dict(os.environ, CUDA_HOME=str(tmp_path)))
        if result.returncode == 3:
            pytest.skip('no C++ compiler here')
        assert result.returncode == 0, result.stderr
        said[how] = 'No CUDA runtime is found' in result.stderr
    assert said == {'checked': False, 'as PyTorch has it': True}


def test_a_file_system_without_locks_still_trains(small_split, tmp_path, monkeypatch, capsys):
    def no_locks(fd, operation):  # NFS without lockd, Lustre without -o flock
        raise OSError(errno.ENOLCK, 'No locks available')

    monkeypatch.setattr(runs.fcntl, 'flock', no_locks)
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1))
    assert f'note: {run_dir} cannot be locked (No locks available)' in capsys.readouterr().out
    assert checkpoint_load(os.path.join(run_dir, 'last.pth'))['epoch'] == 1


def test_a_run_folder_is_rid_of_what_a_killed_train_py_left_half_written(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    # process 1's too: in a container the killed run and this one may both have been process 1
    left = ['.tmp-1-best.pth', '.tmp-4242-checkpoint-000025.pth', '.tmp-4242-last.pth', '.tmp-77-metrics.csv']
    others = ['.tmp-4242-predictions.csv', 'last.pth']  # not a killed train.py's
    for name in left + others:
        (run_dir / name).write_text('')
    (run_dir / '.tmp-5-args.json').mkdir()  # not a file: not one of ours either
    (run_dir / '.tmp-6-curves.png').symlink_to(run_dir / 'last.pth')
    others += ['.tmp-5-args.json', '.tmp-6-curves.png']
    runs.release_run_folder(runs.claim_run_folder(str(run_dir), None))
    assert sorted(os.listdir(run_dir)) == sorted(others)
    assert capsys.readouterr().out == (f'note: removed {", ".join(left)} from {run_dir}: files left half-written '
                                       'by a train.py that was killed\n')
    # Without a lock another train.py may be writing them: they stay.
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, 'No locks available')

    (run_dir / left[2]).write_text('')
    monkeypatch.setattr(runs.fcntl, 'flock', no_locks)
    runs.release_run_folder(runs.claim_run_folder(str(run_dir), None))
    assert left[2] in os.listdir(run_dir)


def test_a_ctrl_c_while_starting_is_not_taken_for_one_in_training(small_split, tmp_path, monkeypatch, capsys):
    # Before the first epoch: the scripts' own one line (cli.run_cli), not a word about epochs.
    def ctrl_c():
        raise KeyboardInterrupt

    monkeypatch.setattr(train, 'pyplot', ctrl_c)
    with pytest.raises(KeyboardInterrupt):  # not train.py's SystemExit(130) after an epoch's message
        train.main(train_args(small_split, tmp_path, '--epochs', 1))
    assert 'interrupted' not in capsys.readouterr().out


def test_a_resumed_run_refuses_a_run_name_or_folder_it_would_not_write_to(full_run, small_split, tmp_path):
    last = os.path.join(full_run, 'last.pth')
    for flags in (['--run-name', 'branch'], ['--checkpoints', str(tmp_path)]):
        with pytest.raises(UserError, match=f'^{re.escape(shlex.join(flags))}: the run folder named is .*, but a '
                                            f'resumed run goes on in its checkpoint\'s folder, {full_run}: leave '
                                            'it out to go on there;'):
            train.main(['--resume', last, '--epochs', str(EPOCHS + 1), *flags])  # only the flag given
    with pytest.raises(SystemExit) as refused:  # an empty name: refused as one, before the checkpoint is read
        train.main(['--resume', last, '--epochs', str(EPOCHS + 1), '--run-name', ''])
    assert refused.value.code == 2
    # The run's own name alone, its --checkpoints left out: it was taken in ./checkpoints, and refused
    saved = checkpoint_load(last)['args']
    args = train.parse_args(['--resume', last, '--run-name', os.path.basename(full_run)])
    resuming.check_same_folder(args, dict(saved, run_name='other', checkpoints='elsewhere'), last, args.checkpoints)


@pytest.mark.slow
def test_the_original_command_resumes_from_another_folder_too(small_split, tmp_path, monkeypatch, capsys):
    # --checkpoints and --run-name as first given name ./runs/run here, but the run is where it was.
    for folder in ('first', 'second'):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / 'first')
    command = train_args(small_split, 'runs', '--epochs', 1)
    run_dir = os.path.abspath(train.main(command))
    monkeypatch.chdir(tmp_path / 'second')
    last = os.path.join(run_dir, 'last.pth')
    capsys.readouterr()
    train.main(command + ['--epochs', '2', '--resume', last])
    assert checkpoint_load(last)['epoch'] == 2 and not os.listdir(tmp_path / 'second')
    # test.py is not in this folder: the advice names it by its path
    test_py = shlex.quote(os.path.join(ROOT, 'test.py'))
    python = this_python()
    assert capsys.readouterr().out.endswith(f'evaluate with: {python} {test_py} --checkpoint {last}\n')
    # resumed once with --resume alone, the run still knows the folder names it was first given;
    # from the folder it was started in, its lines name its files below that folder, as it did then
    monkeypatch.chdir(tmp_path / 'first')
    train.main(['--resume', last, '--epochs', '3', '--device', 'cpu', '--workers', '0'])
    out = capsys.readouterr().out
    assert 'curves.png are in runs/run\n' in out and out.endswith(' --checkpoint runs/run/last.pth\n')
    monkeypatch.chdir(tmp_path / 'second')
    train.main(command + ['--epochs', '4', '--resume', last])
    assert checkpoint_load(last)['epoch'] == 4 and not os.listdir(tmp_path / 'second')
    # A link to the checkpoint, elsewhere: the run goes on in its own folder, not the link's.
    (tmp_path / 'links').mkdir()
    (tmp_path / 'links' / 'latest.pth').symlink_to(last)
    assert train.main(['--resume', str(tmp_path / 'links' / 'latest.pth'), '--epochs', '5', '--device', 'cpu',
                       '--workers', '0']) == run_dir
    assert checkpoint_load(last)['epoch'] == 5 and os.listdir(tmp_path / 'links') == ['latest.pth']
    # A link to another of its checkpoints stands in for a copy: the run goes on beside the link
    (tmp_path / 'branch').mkdir()
    (tmp_path / 'branch' / 'seed.pth').symlink_to(os.path.join(run_dir, 'checkpoint-000005.pth'))
    branch = train.main(['--resume', str(tmp_path / 'branch' / 'seed.pth'), '--epochs', '6', '--device', 'cpu',
                         '--workers', '0'])
    assert os.path.samefile(branch, tmp_path / 'branch') and checkpoint_load(last)['epoch'] == 5
    assert checkpoint_load(os.path.join(branch, 'last.pth'))['epoch'] == 6
    # where the run's folder cannot be written in, copying the checkpoint is the way on
    def read_only(folder, named):
        raise UserError(f'{named}: cannot write in {folder} (Read-only file system)')

    monkeypatch.setattr(runs, 'check_writable_folder', read_only)
    with pytest.raises(UserError, match=f'^--resume {last}: cannot write in {run_dir} \\(Read-only file system\\); '
                                        'to go on elsewhere, copy the checkpoint into a folder of its own'):
        train.main(['--resume', last, '--epochs', '7', '--device', 'cpu', '--workers', '0'])


def test_a_run_resumed_naming_only_its_checkpoints_folder_keeps_its_run_name(full_run, tmp_path, monkeypatch):
    # Resumed once with its --checkpoints alone, a run saved no --run-name: the original command,
    # `--checkpoints runs --run-name run`, was refused from then on from any other folder.
    first, second = tmp_path / 'first', tmp_path / 'second'
    (first / 'runs' / 'run').mkdir(parents=True)
    second.mkdir()
    state = checkpoint_load(os.path.join(full_run, 'last.pth'))
    state['args'].update(checkpoints='runs', run_name='run', workdir=str(first))
    last = checkpoint_save(str(first / 'runs' / 'run' / 'last.pth'), state)

    def resumed(resume, *flags):
        return resuming.resumed_args(['--resume', last, *flags], resume, last, train.parse_args, train.build_parser())

    monkeypatch.chdir(first)
    saved = runs.saved_args(resumed(state, '--epochs', '5', '--checkpoints', 'runs'))
    assert (saved['checkpoints'], saved['run_name']) == ('runs', 'run')
    monkeypatch.chdir(second)
    args = resumed(dict(state, args=saved), '--epochs', '6', '--checkpoints', 'runs', '--run-name', 'run')
    assert (args.checkpoints, args.run_name) == ('runs', 'run')


def test_a_split_of_the_tutorials_paths_is_scored_and_resumed_from_another_folder(small_split, tmp_path,
                                                                                  monkeypatch, capsys):
    # The tutorial's split names its pictures from the folder the run started in, not from its own:
    # test.py and --resume from elsewhere found none, and said to split again, which replaces the
    # run's split with one it can neither be scored nor resumed on.
    from demo import load_test_script
    project, elsewhere = tmp_path / 'project', tmp_path / 'elsewhere'
    (project / 'tut').mkdir(parents=True)
    elsewhere.mkdir()
    (project / 'fashion-product-images').symlink_to(small_split['catalog']['root'])
    for name in ('train', 'val'):  # fashion-product-images/images/ID.jpg, from the project's folder
        shutil.copy(small_split[name], project / 'tut' / f'{name}.csv')
    monkeypatch.chdir(project)
    last = os.path.join(train.main(['--train-csv', 'tut/train.csv', '--val-csv', 'tut/val.csv', '--epochs', '1',
                                    '--run-name', 'run', '--device', 'cpu', '--workers', '0']), 'last.pth')
    assert 'note: tut/train.csv: 96 pictures found from the working folder' in capsys.readouterr().out
    monkeypatch.chdir(elsewhere)
    last = str(project / last)
    load_test_script().main(['--checkpoint', last, '--output', str(tmp_path / 'eval'), '--device', 'cpu'])
    assert f'24 images from {project / "tut" / "val.csv"}' in capsys.readouterr().out
    monkeypatch.chdir(project / 'tut')  # its own val.csv, named from its folder: none of its pictures was found
    load_test_script().main(['--checkpoint', last, '--val-csv', 'val.csv', '--output', str(tmp_path / 'own'),
                             '--device', 'cpu'])
    assert '24 images from val.csv' in capsys.readouterr().out
    monkeypatch.chdir(elsewhere)
    header, *trained = open(project / 'tut' / 'train.csv').read().splitlines()
    (elsewhere / 'mixed.csv').write_text('\n'.join([header] + [f'{project}/{row}' for row in trained[:5]]) + '\n')
    load_test_script().main(['--checkpoint', last, '--val-csv', 'mixed.csv', '--output', str(tmp_path / 'mixed'),
                             '--device', 'cpu'])
    assert 'note: 5 of the 5 pictures of mixed.csv are in' in capsys.readouterr().out  # those it trained on, found
    train.main(['--resume', last, '--epochs', '2'])
    resumed = checkpoint_load(last)
    assert resumed['epoch'] == 2 and resumed['history'][-1]['val_samples'] == 24
    assert (resumed['args']['workdir'], resumed['args']['train_csv']) == (str(project), 'tut/train.csv')
    assert 'found from the working folder' not in capsys.readouterr().out


def test_a_run_on_the_tutorials_relative_paths_resumes_from_another_folder_and_a_moved_project(
        small_split, tmp_path, monkeypatch, capsys):
    # ./train.csv, ./val.csv and ./fashion-product-images/styles.csv, the defaults, from the split's folder
    here = ['--checkpoints', str(tmp_path / 'runs'), '--run-name', 'run', '--device', 'cpu', '--workers', '0']
    monkeypatch.chdir(small_split['base'])
    last = os.path.join(train.main(here + ['--epochs', '1']), 'last.pth')
    (tmp_path / 'elsewhere').mkdir()
    monkeypatch.chdir(tmp_path / 'elsewhere')
    train.main(here + ['--train-csv', './train.csv', '--resume', last, '--epochs', '2'])  # the original, repeated
    resumed = checkpoint_load(last)
    assert resumed['epoch'] == 2 and resumed['history'][-1]['val_samples'] == 24
    # kept as the run named them, from its folder, so that the project may still move
    assert resumed['args']['workdir'] == str(small_split['base'])
    assert (resumed['args']['train_csv'], resumed['args']['val_csv']) == ('./train.csv', './val.csv')
    assert 'as_saved' not in resumed['args']  # train.py's settings and its folder, not how they were worked out
    # The project moved (or was copied to another machine): the same names, from where it is now
    moved = dict(resumed, args=dict(resumed['args'], workdir=str(tmp_path / 'gone'), train_csv='./train.csv'))
    checkpoint_save(last, moved)
    monkeypatch.chdir(small_split['base'])
    capsys.readouterr()
    train.main(['--resume', last, '--epochs', '3'])
    assert f'note: {tmp_path / "gone" / "train.csv"}, which the run in {last} used, is not there; ' \
           'using ./train.csv from here' in capsys.readouterr().out
    assert checkpoint_load(last)['epoch'] == 3


def test_a_resumed_run_whose_catalog_moved_takes_its_label_names_from_the_checkpoint(full_run, small_split, tmp_path,
                                                                                     capsys):
    # Its pictures found through its split as it is now, its styles.csv gone: a resume was refused
    # for want of it, where the checkpoint keeps the label names, all a resume reads it for.
    (tmp_path / 'branch').mkdir()
    state = checkpoint_load(os.path.join(full_run, 'last.pth'))
    gone = str(tmp_path / 'catalog-moved-away' / 'styles.csv')
    state['args'].update(attributes_file=gone)
    last = str(tmp_path / 'branch' / 'last.pth')
    checkpoint_save(last, state)
    resume = ['--resume', last, '--epochs', str(state['epoch'] + 1), '--device', 'cpu']
    with pytest.raises(UserError, match=r'typo\.csv: no such file'):  # another file named: read, as ever
        train.main(resume + ['--attributes_file', str(tmp_path / 'typo.csv')])
    with open(small_split['styles']) as f:
        (tmp_path / 'fewer.csv').write_text(''.join(f.readlines()[:3]))
    with pytest.raises(UserError, match='classes, and the attributes file gives .*; use the same styles.csv'):
        train.main(resume + ['--attributes_file', str(tmp_path / 'fewer.csv')])  # and checked against the run's
    capsys.readouterr()
    train.main(resume)
    assert (f'note: {gone}, which the run in {last} took its label names from, is not there; they are taken from the '
            'checkpoint\n') in capsys.readouterr().out
    assert checkpoint_load(last)['epoch'] == state['epoch'] + 1


def test_a_resumed_run_whose_split_was_moved_is_told_to_name_it_not_to_split_again(full_run, small_split, tmp_path,
                                                                                    capsys):
    # A new split at the old place would be refused unless it held the same rows: naming the moved
    # files is what works.
    (tmp_path / 'branch').mkdir()
    state = checkpoint_load(os.path.join(full_run, 'last.pth'))
    gone = tmp_path / 'split-moved-away'
    state['args'].update(train_csv=str(gone / 'train.csv'), val_csv=str(gone / 'val.csv'))
    checkpoint_save(str(tmp_path / 'branch' / 'last.pth'), state)
    resume = ['--resume', str(tmp_path / 'branch' / 'last.pth'), '--epochs', '9', '--device', 'cpu']
    with pytest.raises(UserError, match=f'^{re.escape(str(gone / "train.csv"))}: no such file, and the run in .* '
                                        'trained on it. Where it was moved, pass --train-csv and --val-csv as they '
                                        r'are now \(a split made anew in its place is refused unless it holds the same '
                                        r'rows\)$'):
        train.main(resume)
    with pytest.raises(UserError, match=r'typo\.csv: no such file; run `python .*split_data\.py'):  # another file
        train.main(resume + ['--train-csv', str(tmp_path / 'typo.csv')])
    # Its val.csv alone moved: said as of train.csv ("val.csv: no such file (a split made by
    # split_data.py)", as the reading found it, before)
    (tmp_path / 'moved').mkdir()
    shutil.copy(small_split['train'], tmp_path / 'moved' / 'train.csv')
    with pytest.raises(UserError, match=f'^{re.escape(str(gone / "val.csv"))}: no such file, and the run in .* '
                                        'validated on it. Where it was moved, pass --train-csv and --val-csv'):
        train.main(resume + ['--train-csv', str(tmp_path / 'moved' / 'train.csv')])
    shutil.copy(small_split['val'], tmp_path / 'moved' / 'val.csv')  # a slip of the name
    with pytest.raises(UserError, match=f'^{re.escape(str(tmp_path / "moved" / "va.csv"))}: no such file; '
                                        f'{re.escape(str(tmp_path / "moved" / "val.csv"))} is there: --val-csv '):
        train.main(resume + ['--train-csv', str(tmp_path / 'moved' / 'train.csv'),
                             '--val-csv', str(tmp_path / 'moved' / 'va.csv')])
    shutil.rmtree(tmp_path / 'moved')

    # Named where they are now: the moved files go on quietly, a split with other rows with a word.
    (tmp_path / 'moved').mkdir()
    for key in ('train', 'val'):
        shutil.copy(small_split[key], tmp_path / 'moved')
    with open(small_split['val']) as f:
        lines = f.readlines()
    with open(tmp_path / 'moved' / 'other-val.csv', 'w') as f:
        f.writelines(lines[:-1])
    import split_data  # the same seed into a folder one deeper: the same pictures, named from there
    split_data.main(['--input', small_split['catalog']['root'], '--output', str(tmp_path / 'moved' / 'again'),
                     '--workers', '1'])
    capsys.readouterr()
    for val, said in [('val.csv', ''), ('again/val.csv', ''),
                      ('other-val.csv', f'note: {tmp_path / "moved" / "other-val.csv"} holds '
                                                         f'other rows than the run in X began with; it is used as '
                                                         'named, but validation may now score pictures the run '
                                                         'trained on\n')]:
        named = argparse.Namespace(train_csv=str(tmp_path / 'moved' / 'train.csv'),
                                   val_csv=str(tmp_path / 'moved' / val))
        resuming.check_same_split(named, state, 'X')
        assert capsys.readouterr().out == said


def test_a_resumed_run_refuses_another_split_while_its_own_is_there(full_run, small_split, tmp_path, capsys):
    # Another seed into another folder: its val.csv holds pictures the run has trained on.
    import split_data
    split_data.main(['--input', small_split['catalog']['root'], '--output', str(tmp_path / 'other'),
                     '--workers', '1', '--seed', '7'])
    last = os.path.join(full_run, 'last.pth')
    for flag, key in [('--train-csv', 'train'), ('--val-csv', 'val')]:
        other = str(tmp_path / 'other' / f'{key}.csv')
        with pytest.raises(UserError, match=f'^{flag} {re.escape(other)}: it holds other rows than '
                                            f'{re.escape(small_split[key])}, which the run in {re.escape(last)} began '
                                            'with; a resumed run goes on with the same split .*: leave '
                                            f'{flag} out, or start a new run$'):
            train.main(['--resume', last, '--epochs', '9', '--device', 'cpu', flag, other])
    # A copy of its own split, or the same seed into another folder, is the same split.
    state = checkpoint_load(last)
    shutil.copy(small_split['val'], tmp_path / 'val-copy.csv')
    split_data.main(['--input', small_split['catalog']['root'], '--output', str(tmp_path / 'again'), '--workers', '1'])
    capsys.readouterr()
    # Checkpoints of before 2026-12-01 kept a digest of the lines, their paths as written.
    older = dict(state, split_digests={key: split_data.rows_digest(Path(small_split[name]).read_bytes())
                                       for key, name in [('train_csv', 'train'), ('val_csv', 'val')]})
    for train_csv, val_csv in [(small_split['train'], tmp_path / 'val-copy.csv'),
                               (tmp_path / 'again' / 'train.csv', tmp_path / 'again' / 'val.csv')]:
        for checkpoint in (state, older):
            resuming.check_same_split(argparse.Namespace(train_csv=str(train_csv), val_csv=str(val_csv)),
                                      checkpoint, last)
    assert capsys.readouterr().out == ''
    with pytest.raises(UserError, match='^--train-csv .*other/train.csv: it holds other rows than'):
        other = tmp_path / 'other'
        resuming.check_same_split(argparse.Namespace(train_csv=str(other / 'train.csv'),
                                                     val_csv=str(other / 'val.csv')), older, last)


def test_a_ctrl_c_before_a_resumed_run_saves_names_the_checkpoint_it_resumed(full_run, tmp_path, monkeypatch,
                                                                             capsys):
    # A branch: a checkpoint copied into a folder of its own, with no last.pth yet.
    branch = tmp_path / 'branch'
    branch.mkdir()
    shutil.copy(os.path.join(full_run, 'checkpoint-000002.pth'), branch)

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, 'train_one_epoch', ctrl_c)
    monkeypatch.chdir(ROOT)  # where train.py is: `python train.py`
    with pytest.raises(SystemExit):
        train.main(['--resume', str(branch / 'checkpoint-000002.pth'), '--device', 'cpu'])
    assert f'epoch 2 is saved in {branch / "checkpoint-000002.pth"}. Resume with: python train.py --resume ' \
        f'{branch / "checkpoint-000002.pth"}' in capsys.readouterr().out


def test_a_resumed_run_stopped_before_it_saves_repeats_the_flags_it_was_given(full_run, tmp_path, monkeypatch,
                                                                              capsys):
    # The checkpoint named holds the run's own settings: "--resume" alone went on to its 3 epochs
    # (or was refused, a finished run's), not to the 5 this run was given.
    branch = tmp_path / 'branch'
    branch.mkdir()
    resumed = branch / 'checkpoint-000002.pth'
    shutil.copy(os.path.join(full_run, 'checkpoint-000002.pth'), resumed)

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, 'train_one_epoch', ctrl_c)
    monkeypatch.chdir(ROOT)
    given = ['--epochs', '5', '--val-every', '2', '--data', 'loader', '--workers', '1']
    for argv, repeated in [([], ''), (['--val-every', '1', '--epochs', '3'], ''), (given, ' ' + ' '.join(given))]:
        with pytest.raises(SystemExit):
            train.main(['--resume', str(resumed), '--device', 'cpu', *argv])
        advice = capsys.readouterr().out.splitlines()[-1]
        assert advice.endswith(f'Resume with: python train.py --resume {resumed}{repeated} --device cpu'), advice
    with pytest.raises(SystemExit):  # as advised: the same run, stopped again
        train.main(shlex.split(advice.split('Resume with: ')[1])[2:])
    assert capsys.readouterr().out.splitlines()[-1] == advice
    # args.json beside it, as the checkpoint holds them: it said 5 epochs, and a plain --resume did 3
    # (the branch's folder named, not the run's it came from)
    with open(branch / 'args.json') as f:
        assert json.load(f) == json.loads(json.dumps(dict(checkpoint_load(str(resumed))['args'],
                                                          checkpoints=str(tmp_path), run_name='branch')))


def test_the_flags_repeated_leave_out_the_runs_own_files_as_a_resume_finds_them(tmp_path, monkeypatch):
    (tmp_path / 'project').mkdir()
    (tmp_path / 'project' / 'train.csv').write_text('')
    held = {'train_csv': 'train.csv', 'workdir': str(tmp_path / 'project'), 'epochs': 3}
    monkeypatch.chdir(tmp_path)  # not the run's folder: its train.csv is found there, by the checkpoint alone
    found = str(tmp_path / 'project' / 'train.csv')
    assert resuming.flags_to_repeat(argparse.Namespace(train_csv=found, epochs=3), held) == []
    assert resuming.flags_to_repeat(argparse.Namespace(train_csv='train.csv', epochs=4), held) == ['--epochs', 4]
    assert resuming.flags_to_repeat(argparse.Namespace(train_csv='moved.csv', epochs=3), held) == \
        ['--train-csv', 'moved.csv']


def test_a_resumed_run_whose_first_save_fails_repeats_the_flags_it_was_given(full_run, tmp_path, monkeypatch):
    import checkpoint
    branch = tmp_path / 'branch'
    branch.mkdir()
    resumed = branch / 'checkpoint-000002.pth'
    shutil.copy(os.path.join(full_run, 'checkpoint-000002.pth'), resumed)

    real_open = checkpoint.atomic_open

    def full_after_best(path, *args, **kwargs):  # best.pth, copied beside the checkpoint as the run starts
        if not path.endswith('best.pth'):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, 'atomic_open', full_after_best)
    monkeypatch.chdir(ROOT)
    with pytest.raises(UserError) as error:
        train.main(['--resume', str(resumed), '--device', 'cpu', '--epochs', '4', '--save-every', '1'])
    assert str(error.value).endswith(f'Epoch 2 is saved in {resumed}. Resume with: python train.py --resume '
                                     f'{resumed} --epochs 4 --save-every 1 --device cpu'), str(error.value)


def test_fewer_training_pictures_than_processes_is_one_clear_error(small_split, tmp_path, monkeypatch):
    header, row = open(small_split['train']).readlines()[:2]
    image, labels = row.split(',', 1)
    one = tmp_path / 'one.csv'  # one picture, by its full path
    one.write_text(header + os.path.join(os.path.dirname(small_split['train']), image) + ',' + labels)
    monkeypatch.setattr(train.distributed, 'setup', lambda device: distributed.Context(rank=0, world_size=2))
    monkeypatch.setattr(distributed, 'on_every_process', lambda mine, context: [mine, mine])
    with pytest.raises(UserError, match='one.csv: fewer usable pictures than the 2 processes'):
        train.main(train_args(dict(small_split, train=str(one)), tmp_path, '--epochs', 1))


@pytest.mark.parametrize('split, theirs, said', [
    ('train', lambda rows: (rows[0] - 1, rows[1]), '95 of its rows, process 0 96'),  # a picture missing there
    ('val', lambda rows: (rows[0], 'another digest'), 'other rows than process 0'),  # a split of its own
])
def test_processes_over_other_rows_of_the_split_stop_before_training(small_split, tmp_path, monkeypatch, split,
                                                                       theirs, said):
    # Each process takes its share of an epoch by place in its own list of rows: a machine lacking one
    # picture trained 58 of 240 twice an epoch and 59 never, and scored 30 of the 60 validation pictures
    # twice, 30 never. Counting steps found nothing: both took 8.
    monkeypatch.setattr(train.distributed, 'setup', lambda device: distributed.Context(rank=0, world_size=2))
    index = ('train', 'val').index(split)
    monkeypatch.setattr(distributed, 'on_every_process', lambda mine, context: [  # the label names alike
        mine, tuple(theirs(rows) if i == index else rows for i, rows in enumerate(mine)) if isinstance(mine, tuple)
        else mine])
    monkeypatch.setattr(train, 'train_one_epoch', lambda *args: pytest.fail('trained'))
    with pytest.raises(UserError, match=f"^{re.escape(small_split[split])}: process 1 keeps {said}: every machine "
                                        'needs the same split and the same pictures'):
        train.main(train_args(small_split, tmp_path, '--epochs', 1, '--batch-size', 32))


def test_the_rows_a_process_keeps_are_told_by_picture_names_and_labels_not_by_where_they_are(small_split):
    from dataset import AttributesDataset, FashionDataset, rows_digest
    attributes = AttributesDataset(small_split['styles'])
    loaders = [train.make_train_loader(FashionDataset(small_split['train'], attributes),
                                       train.parse_args(train_args(small_split, '/unused', '--data', data)),
                                       distributed.Context(), False) for data in ('memory', 'loader')]
    rows = FashionDataset(small_split['train'], attributes).samples
    assert train.kept_rows(loaders[0]) == train.kept_rows(loaders[1]) == rows_digest(rows)
    assert rows_digest(rows)[0] == 96
    elsewhere = [(os.path.join('/another/machine', os.path.basename(path)), *labels) for path, *labels in rows]
    assert rows_digest(elsewhere) == rows_digest(rows)  # the same pictures in another folder
    relabelled = [rows[0][:1] + (rows[0][1] + 1,) + rows[0][2:]] + rows[1:]
    assert rows_digest(rows[1:])[0] == 95 and rows_digest(relabelled)[1] != rows_digest(rows)[1]


def test_a_run_resumed_on_another_number_of_processes_keeps_to_its_schedule_by_epochs(capsys):
    # 10 steps an epoch in one process, 5 in each of two: after 2 of 4 epochs the cosine is half-way.
    args = train.parse_args(['--epochs', '4', '--schedule', 'cosine', '--warmup-epochs', '1'])
    optimizer = torch.optim.Adam(torch.nn.Linear(1, 1).parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: train.lr_factor(s, 10, args))
    for _ in range(20):
        optimizer.step()
        scheduler.step()
    before = optimizer.param_groups[0]['lr']
    train.go_on_by_epochs(scheduler, optimizer, 2, 10, args, distributed.Context())  # the same processes
    assert (scheduler.last_epoch, optimizer.param_groups[0]['lr']) == (20, before)
    train.go_on_by_epochs(scheduler, optimizer, 2, 5, args, distributed.Context(rank=0, world_size=2), 1)
    assert capsys.readouterr().out == (
        'note: 5 steps an epoch now, 10 before (another number of processes or of pictures); the learning-rate '
        'schedule goes on from the end of epoch 2; the effective batch is 32 (2 x --batch-size 16), where the run '
        'trained at 16 in 1, with the same --lr 0.001\n')
    assert scheduler.last_epoch == 10
    assert optimizer.param_groups[0]['lr'] == pytest.approx(args.lr * 0.5 * (1 + math.cos(math.pi / 3)))
    assert optimizer.param_groups[0]['lr'] == pytest.approx(before)  # the same point of the curve
    for _ in range(5):  # epoch 3 in two processes, then on in one: 25 steps were said to be 15 in 3 epochs
        optimizer.step()
        scheduler.step()
    train.go_on_by_epochs(scheduler, optimizer, 3, 10, args, distributed.Context(), 2)
    assert capsys.readouterr().out.startswith('note: 10 steps an epoch now, 5 before (')


def test_a_warm_up_longer_than_the_run_is_noted_with_the_highest_rate_it_reaches(small_split, tmp_path, capsys):
    # --warmup-epochs 5 --epochs 2: the rate rose to 2/5 of --lr at most, without a word
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1, '--warmup-epochs', 3))
    assert 'note: --warmup-epochs 3 is longer than the run\'s 1 epoch: the learning rate rises to ' in capsys.readouterr().out
    # ...and a resumed run, which may end sooner than it would have (here it began so)
    train.main(train_args(small_split, tmp_path, '--epochs', 2, '--resume', os.path.join(run_dir, 'last.pth')))
    assert 'note: --warmup-epochs 3 is longer than the run\'s 2 epochs: the learning rate rises to ' in capsys.readouterr().out
    args = train.parse_args(['--epochs', '2', '--warmup-epochs', '5'])
    train.note_unfinished_warmup(args, 10)
    assert capsys.readouterr().out == ('note: --warmup-epochs 5 is longer than the run\'s 2 epochs: the learning rate '
                                       'rises to 0.0004 at most, not --lr 0.001\n')
    train.note_unfinished_warmup(train.parse_args(['--epochs', '2', '--warmup-epochs', '2']), 10)  # it ends: --lr
    assert capsys.readouterr().out == ''


@pytest.mark.parametrize('data', ['memory', 'loader'])
def test_a_batch_larger_than_the_training_set_is_noted(small_split, tmp_path, capsys, data):
    # --batch-size 500 on 96 pictures trained one step an epoch, on a batch of 96, without a word
    pictures = sum(1 for _ in open(small_split['train'], encoding='utf-8')) - 1
    train.main(train_args(small_split, tmp_path, '--epochs', 1, '--batch-size', 500, '--data', data))
    said = capsys.readouterr().out
    assert (f'note: --batch-size 500 is more than the {pictures} training pictures: each epoch is one step, '
            f'on a batch of {pictures}\n') in said
    train.main(train_args(small_split, tmp_path / 'fits', '--epochs', 1, '--batch-size', pictures, '--data', data))
    assert 'note: --batch-size' not in capsys.readouterr().out
    # each process's share under torchrun, and a CUDA graph that would never be replayed
    loader = InMemoryLoader(torch.zeros(11, 3, 4, 4, dtype=torch.uint8), {h: torch.zeros(11) for h in HEADS}, 16,
                            'cpu', True, world_size=2)  # as train.py makes it for each of 2 processes
    two = distributed.Context(world_size=2, device=torch.device('cpu'))
    train.note_batch_over_the_pictures(train.parse_args(['--batch-size', '16']), loader, two, cuda_graphs=True)
    assert capsys.readouterr().out == ('note: --batch-size 16 is more than the 5 training pictures in each of the '
                                       'processes: each epoch is one step, on a batch of 5; the CUDA graph, made '
                                       'for full batches, is not used\n')


def test_test_py_writes_beside_the_checkpoint_in_a_folder_named_after_it():
    test_script = load_test_script()
    args = argparse.Namespace(output=None, checkpoint=os.path.join('runs', 'r', 'best.pth'))
    assert test_script.output_folder(args) == os.path.abspath(os.path.join('runs', 'r', 'eval-best'))


def test_test_pys_flags_default_to_what_their_help_says(monkeypatch):
    # --help is where a user reads the defaults (STYLE.md): each plain one it states is the one taken.
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', lambda self, argv=None, namespace=None: self)
    parser = load_test_script().parse_args([])  # the parser itself, not what it parses
    stated = {}
    for action in parser._actions:
        shown = (action.help or '') % dict(vars(action), prog=parser.prog)  # '%(default)s' as --help has it
        said = re.search(r'\(default: ([\w.-]+)[,)]', shown)
        if said:
            stated[action.option_strings[0]] = said[1]
            assert said[1] == ({True: 'on', False: 'off'}.get(action.default, str(action.default))), action.help
    assert {'--batch-size', '--grid', '--device', '--precision', '--show', '--workers'} <= stated.keys()


def test_test_script_writes_metrics_and_pictures(full_run, small_split, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'eval'
    # No --val-csv, and no ./val.csv here: the split train.py validated on, as the figures below.
    # main as its command line runs it, in this process: a fresh interpreter took seconds to import
    # PyTorch, and test.py as a script is started by the tests of its kills and its backends.
    monkeypatch.chdir(tmp_path)
    run_cli(lambda: load_test_script().main(['--checkpoint', os.path.join(full_run, 'last.pth'), '--output', str(out),
                                             '--device', 'cpu']), workers_flag='--workers', files_first=True)
    said = capsys.readouterr().out
    assert f'24 images from {small_split["val"]}' in said
    assert sorted(os.listdir(out)) == ['confusion_article.png', 'confusion_color.png',
                                       'confusion_gender.png', 'metrics.json', 'predictions.png']
    with open(out / 'metrics.json') as f:
        metrics = json.load(f)
    assert metrics['val_samples'] == 24 and 0 <= metrics['gender_accuracy'] <= 1
    last = metrics_rows(full_run)[-1]
    assert metrics['gender_accuracy'] == pytest.approx(float(last['gender_accuracy']), abs=1e-5)
    assert 'balanced' in said


# test.py, where each of its decoding workers is killed as it starts on a picture
DECODING_WORKER_KILLED = """
import os, runpy, signal, sys
import dataset
dataset.DECODE_BATCH = 4  # the split's 24 pictures in 6 tasks: enough for workers to decode them
main_process = os.getpid()
decoded = dataset.DecodedImages.__getitem__
def killed_in_a_worker(images, i):
    if os.getpid() != main_process:
        os.kill(os.getpid(), signal.SIGKILL)
    return decoded(images, i)
dataset.DecodedImages.__getitem__ = killed_in_a_worker
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def test_a_decoding_worker_of_test_py_killed_is_one_line_naming_its_flag(one_epoch_run, tmp_path):
    # Its decoding took every core, and a worker the system killed for memory could not be given fewer
    killed = subprocess.run([sys.executable, '-c', DECODING_WORKER_KILLED, os.path.join(ROOT, 'test.py'),
                             '--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--device', 'cpu',
                             '--output', tmp_path, '--workers', '1'],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 2, killed.stderr
    # How PyTorch finds it ended: its SIGCHLD handler says by which signal, its wait for a batch does not
    assert re.fullmatch(r'error: a DataLoader worker process \(pid \d+\) (was killed by SIGKILL|ended unexpectedly: '
                        r'killed, most often), as the system ends a process when memory runs out \(fewer --workers '
                        r'need less; 0: none\)\n', killed.stderr), killed.stderr


# test.py killed (kill -9) once its metrics.json is written, before its figures
KILLED_AS_IT_WRITES = """
import os, runpy, signal, sys
import plots
plots.draw_figures = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def test_test_py_killed_as_it_writes_leaves_the_set_before_it_to_the_next_run(one_epoch_run, tmp_path, capsys):
    # Its new metrics.json stayed beside the old figures, and the next test.py removed the old
    # metrics.json, set aside whole, as a file left half-written: a mixed set for good.
    # Only the kill needs a process of its own: the runs before and after it are test.py's main in
    # this one, under run_cli for its exit status (each a fresh interpreter took 5 s, with torch).
    argv = ['--device', 'cpu', '--output', str(tmp_path), '--workers', '0']

    def test_py(checkpoint, *extra):
        """test.py's exit status and standard output, as its command line's."""
        status = 0
        try:
            run_cli(lambda: load_test_script().main(['--checkpoint', os.path.join(one_epoch_run, checkpoint),
                                                     *map(str, extra), *argv]), workers_flag='--workers',
                    files_first=True)
        except SystemExit as ended:
            status = ended.code
        return status, capsys.readouterr().out
    assert test_py('last.pth')[0] == 0
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    killed = subprocess.run([sys.executable, '-c', KILLED_AS_IT_WRITES, os.path.join(ROOT, 'test.py'), *argv,
                             '--checkpoint', os.path.join(one_epoch_run, 'best.pth')],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads((tmp_path / 'metrics.json').read_text())['checkpoint'].endswith('best.pth')  # mixed
    (tmp_path / 'empty.csv').write_text('')  # the next run fails before it writes: the folder is as before
    status, said = test_py('last.pth', '--val-csv', tmp_path / 'empty.csv')
    assert status == 2 and said.startswith(
        f'note: put back metrics.json in {tmp_path}, which a test.py that was killed had set aside'), said
    # The figures, not replaced yet, their asides links to them: were named as put back, then as half-written
    assert '-old-' not in said, said
    os.remove(tmp_path / 'empty.csv')
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before
    # Results of another checkpoint replaced: said (of the same one, scored again, not)
    val_csv = json.loads(before['metrics.json'])['val_csv']
    for times in range(2):
        status, said = test_py('best.pth')
        note = (f'note: they replace the results of {os.path.join(one_epoch_run, "last.pth")} on {val_csv} there; '
                '--output writes them elsewhere\n')
        assert status == 0 and said.endswith(note) == (times == 0), said


def test_test_py_with_no_workers_decodes_in_its_own_process(one_epoch_run, tmp_path, monkeypatch, capsys):
    main_process, decoded = os.getpid(), dataset.DecodedImages.__getitem__

    def here_only(images, i):
        assert os.getpid() == main_process, 'decoded by a worker process'
        return decoded(images, i)
    monkeypatch.setattr(dataset, 'DECODE_BATCH', 4)  # 24 pictures in 6 tasks: enough for 3 workers
    monkeypatch.setattr(dataset.DecodedImages, '__getitem__', here_only)
    load_test_script().main(['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--output', str(tmp_path),
                             '--workers', '0'])
    assert '24 images from' in capsys.readouterr().out


@pytest.mark.slow
def test_fast_and_tutorial_paths_reach_similar_accuracy(tmp_path):
    # The batched augmentation on in-memory images learns what the per-image DataLoader path
    # learns: 180 steps of each on the same sample catalog, same seed, same schedule.
    import split_data
    from sample_catalog import make_catalog
    catalog = make_catalog(str(tmp_path / 'fashion-product-images'), n_images=1200, seed=3)
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    split = {'styles': os.path.join(catalog['root'], 'styles.csv'), 'train': str(tmp_path / 'train.csv'),
             'val': str(tmp_path / 'val.csv')}
    accuracy = {}
    for data in ('memory', 'loader'):
        run_dir = train.main(train_args(split, tmp_path / data, '--epochs', 3, '--schedule', 'cosine',
                                        '--data', data))
        accuracy[data] = {k: float(v) for k, v in metrics_rows(run_dir)[-1].items() if k.endswith('_accuracy')
                          and not k.startswith('train') and 'balanced' not in k}
    # Each head learns on both paths: well above its majority rate (0.55, 0.10, 0.12).
    for head, floor in (('gender', 0.62), ('article', 0.25), ('color', 0.25)):
        key = f'{head}_accuracy'
        assert accuracy['memory'][key] > floor and accuracy['loader'][key] > floor, accuracy
    # And the two learn alike. After 180 steps one head's accuracy still swings with any change of
    # float rounding: over seeds 1 to 7 and 42 the paths differed by up to 0.21 on one head (colour)
    # but by at most 0.061 on the mean of the three, with no side ahead on average (+0.007).
    mean = {data: sum(values.values()) / len(values) for data, values in accuracy.items()}
    assert abs(mean['memory'] - mean['loader']) < 0.1, accuracy


def test_a_flag_cut_short_is_refused_not_taken_for_another(capsys):
    # --log run.log read as --logs, and --checkpoint (test.py's) as --checkpoints, went unnoticed.
    for flags in (['--log', 'run.log'], ['--checkpoint', 'runs/last.pth']):
        with pytest.raises(SystemExit) as stopped:
            train.parse_args(flags)
        assert stopped.value.code == 2
        assert f'unrecognized arguments: {" ".join(flags)}' in capsys.readouterr().err



def read_metrics(run):
    with open(run / 'metrics.csv', newline='') as f:
        return list(csv.DictReader(f))


# train.py killed (kill -9) in epoch N's saving, once its last.pth (written first) is in place
KILLED_AFTER_LAST_PTH = """
import os, runpy, signal, sys
import checkpoint
real_save = checkpoint.checkpoint_save
name, epoch = sys.argv.pop(1), int(sys.argv.pop(1))

def save(path, state):
    if os.path.basename(path) == name and state['epoch'] == epoch:
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(path, state)
checkpoint.checkpoint_save = save
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def test_a_run_killed_in_its_last_epoch_after_last_pth_gets_that_epochs_files_on_resume(small_split, tmp_path,
                                                                                        capsys):
    # Its metrics.csv stayed a row short, curves.png an epoch behind and checkpoint-000002.pth unwritten,
    # and every --resume was refused: "has done 2 epochs, all it was to train".
    args = train_args(small_split, tmp_path, '--epochs', 2, '--val-every', 1, '--batch-size', 32)
    killed = subprocess.run([sys.executable, '-c', KILLED_AFTER_LAST_PTH, 'checkpoint-000002.pth', '2',
                             os.path.join(ROOT, 'train.py'), *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = tmp_path / 'run'
    assert 'checkpoint-000002.pth' not in os.listdir(run) and len(read_metrics(run)) == 1
    last = checkpoint_load(str(run / 'last.pth'))
    assert last['epoch'] == 2
    train.main(['--resume', str(run / 'last.pth'), '--device', 'cpu', '--epochs', '2'])  # its own, given again
    out = capsys.readouterr().out
    left = ['checkpoint-000002.pth', 'metrics.csv', 'curves.png']
    assert out.startswith(f'note: the run in {run / "last.pth"} has done all its 2 epochs, but a stop in the last '
                          'one left some of its files unwritten: they are written, and no epoch more\n'), out
    assert f'wrote {", ".join(left)} of epoch 2 from {run / "last.pth"}: a stop after its last.pth' in out
    assert checkpoint_load(str(run / 'checkpoint-000002.pth'))['epoch'] == 2
    assert [row['epoch'] for row in read_metrics(run)] == ['1', '2']
    assert checkpoint_load(str(run / 'best.pth'))['epoch'] == last['best']['epoch']
    assert runs.curves_epoch(str(run / 'curves.png')) == 2
    with pytest.raises(UserError, match='has done 2 epochs, all it was to train'):  # complete now
        train.main(['--resume', str(run / 'last.pth'), '--device', 'cpu'])
    # Copied (cp -r: the files' times are the copy's, curves.png's older than metrics.csv's here): complete still
    shutil.copytree(run, tmp_path / 'copy', copy_function=shutil.copyfile)
    os.utime(tmp_path / 'copy' / 'curves.png', (1, 1))
    with pytest.raises(UserError, match='has done 2 epochs, all it was to train'):
        train.main(['--resume', str(tmp_path / 'copy' / 'last.pth'), '--device', 'cpu'])


def test_a_best_pth_an_epoch_behind_the_runs_record_of_its_best_is_written_on_resume(one_epoch_run, tmp_path,
                                                                                     capsys):
    # Killed after last.pth of an epoch that beat the best, before its best.pth: the run went on with
    # its record naming that epoch, no later one counted as better, and best.pth held an earlier one for good.
    shutil.copytree(one_epoch_run, tmp_path / 'run')
    run = tmp_path / 'run'
    state = checkpoint_load(str(run / 'last.pth'))
    earlier = dict(state, epoch=0)  # best.pth as an earlier epoch left it
    checkpoint_save(str(run / 'best.pth'), earlier)
    assert runs.left_unwritten(str(run), state, str(run / 'last.pth')) == ['best.pth']
    train.complete_resumed_epoch(str(run), state, str(run / 'last.pth'))
    assert checkpoint_load(str(run / 'best.pth'))['epoch'] == 1
    assert runs.left_unwritten(str(run), state, str(run / 'last.pth')) == []
    assert capsys.readouterr().out == (f'wrote best.pth of epoch 1 from {run / "last.pth"}: a stop after its last.pth '
                                       'had left it unwritten or an epoch behind, or it was removed since\n')
    # Where the record names an earlier epoch as the best, best.pth holding it is right
    checkpoint_save(str(run / 'best.pth'), earlier)  # where the record names an earlier epoch, it holds that one
    assert runs.left_unwritten(str(run), dict(state, best={'epoch': 0, 'score': 0.5}), str(run / 'last.pth')) == []
    # A branch (another checkpoint copied in beside it) is no stopped run: its folder's files are not its epoch's
    shutil.copy(run / 'last.pth', run / 'copy.pth')
    assert runs.left_unwritten(str(run), state, str(run / 'copy.pth')) == []


def test_a_resumed_runs_tensorboard_log_is_its_history_logged_anew_in_its_own_log_folder(small_split, tmp_path,
                                                                                        monkeypatch):
    # A kill -9 lost the scalars the writer still held (up to two minutes' worth) or left an epoch logged
    # twice; and a run started with --logs X, resumed without it, went on in ./logs of the folder it was resumed in.
    made = []

    class Writer:  # tensorboard's SummaryWriter, which the suite does not install
        def __init__(self, folder, purge_step=None):
            self.folder, self.purge_step, self.scalars = folder, purge_step, []
            made.append(self)

        def add_scalar(self, key, value, step):
            self.scalars.append((step, key, value))

        def close(self):
            pass
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', types.SimpleNamespace(SummaryWriter=Writer))
    monkeypatch.setattr(runs, 'tensorboard_installed', lambda: True)
    logs = tmp_path / 'elsewhere' / 'logs'
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1, '--logs', logs))
    monkeypatch.chdir(tmp_path)
    train.main(['--resume', os.path.join(run_dir, 'last.pth'), '--epochs', '2', '--device', 'cpu'])
    first, resumed = made
    assert first.folder == resumed.folder == str(logs / 'run')
    assert (first.purge_step, resumed.purge_step) == (None, 1)  # TensorBoard hides what was logged before
    history = checkpoint_load(os.path.join(run_dir, 'last.pth'))['history']
    logged = [(row['epoch'], key, value) for row in history for key, value in row.items() if value is not None]
    assert resumed.scalars == logged and first.scalars == logged[:len(first.scalars)]


def test_a_branch_in_a_folder_of_the_runs_name_does_not_log_over_the_runs_tensorboard_log(small_split, tmp_path,
                                                                                          monkeypatch):
    # A checkpoint copied to other/run/ to branch off logged its history anew into logs/run, which
    # hid the run's own figures in TensorBoard (purge_step); a run moved goes on in its log
    class Writer:  # tensorboard's SummaryWriter, which the suite does not install
        def __init__(self, folder, purge_step=None):
            os.makedirs(folder, exist_ok=True)

        def add_scalar(self, key, value, step):
            pass

        def close(self):
            pass
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', types.SimpleNamespace(SummaryWriter=Writer))
    monkeypatch.setattr(runs, 'tensorboard_installed', lambda: True)
    logs = tmp_path / 'logs'
    run_dir = train.main(train_args(small_split, tmp_path / 'checkpoints', '--epochs', 1, '--logs', logs))
    assert (logs / 'run' / 'run_folder.txt').read_text() == os.path.realpath(run_dir) + '\n'
    branch = tmp_path / 'other' / 'run'
    branch.mkdir(parents=True)
    shutil.copy(os.path.join(run_dir, 'last.pth'), branch / 'last.pth')
    with pytest.raises(UserError, match=f'^--logs {re.escape(str(logs))}: {re.escape(str(logs / "run"))} holds the '
                                        f'TensorBoard logs of the run in {re.escape(os.path.realpath(run_dir))}, which '
                                        f'this one, in {re.escape(str(branch))}, would hide under its own; give it '
                                        '--logs of its own$'):
        train.main(['--resume', str(branch / 'last.pth'), '--epochs', '2', '--device', 'cpu'])
    train.main(['--resume', str(branch / 'last.pth'), '--epochs', '2', '--device', 'cpu',
                '--logs', str(tmp_path / 'b')])
    assert (tmp_path / 'b' / 'run' / 'run_folder.txt').read_text() == os.path.realpath(branch) + '\n'
    moved = tmp_path / 'archive' / 'run'  # the run itself, moved: its log goes on, and says where it is now
    moved.parent.mkdir()
    shutil.move(run_dir, moved)
    train.main(['--resume', str(moved / 'last.pth'), '--epochs', '2', '--device', 'cpu'])
    assert (logs / 'run' / 'run_folder.txt').read_text() == os.path.realpath(moved) + '\n'


def test_the_bars_loss_is_the_epochs_mean_so_far_and_moves_with_every_step_on_a_cpu(small_split, tmp_path, capsys,
                                                                                    monkeypatch):
    # It showed one batch's loss, of the 50th step before: a CPU run's bar kept the same value for
    # minutes, and the bar that ends an epoch said its last batch's loss, not the epoch's.
    import cli
    monkeypatch.setattr(cli, 'LOG_REDRAW_SECONDS', 0)  # a copy of the bar in the log at every step
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1, '--batch-size', 40))  # 96: 40, 40, 16
    bars = dict(re.findall(r'epoch 1/1: .*?\| (\d)/3 .*?loss=(\d+\.\d+)\]', capsys.readouterr().err))
    with open(os.path.join(run_dir, 'metrics.csv')) as f:
        train_loss = float(next(csv.DictReader(f))['train_loss'])
    assert bars['3'] == f'{train_loss:.3f}' and len(set(bars.values())) == 3, bars


def test_logs_asked_for_without_tensorboard_are_said_not_to_be_written(small_split, tmp_path, capsys, monkeypatch):
    # --logs typed did nothing, without a word (tensorboard is not among the requirements)
    monkeypatch.setattr(train, 'tensorboard_installed', lambda: False)
    train.main(train_args(small_split, tmp_path, '--epochs', 1, '--logs', tmp_path / 'my-logs'))
    assert (f"note: --logs {tmp_path / 'my-logs'}: tensorboard is not installed, so no log is written there; "
            '`pip install tensorboard` writes one') in capsys.readouterr().out.splitlines()
    assert not (tmp_path / 'my-logs').exists()


def test_peak_memory_under_torchrun_is_said_for_the_run_not_process_0_alone():
    assert train.peak_memory_line([(1052.4, None)]) == 'peak memory: 1,052 MiB resident'
    assert train.peak_memory_line([(900.0, 2613.0)]) == 'peak memory: 900 MiB resident, 2,613 MiB on the GPU'
    assert train.peak_memory_line([(1016.0, None), (1052.0, None)]) == (
        'peak memory: 1,052 MiB resident in the largest of the 2 processes, 2,068 MiB in all')
    assert train.peak_memory_line([(1000.0, 2000.0), (1100.0, 2600.0)]).endswith('; 2,600 MiB on the fullest GPU')
