# saver.py: the copy of a training state that later steps cannot change, and the thread that
# writes an epoch's files while the next epoch trains.
import threading
import types
from collections import OrderedDict

import pytest
import torch

from cli import UserError
from model import MultiOutputModel
from saver import BackgroundSaver, detached_copy


def test_a_copied_state_stays_as_it_was_when_training_goes_on():
    model = MultiOutputModel(3, 2, 4)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 3, 80, 60))['gender'].sum().backward()
    optimizer.step()
    live = {'epoch': 1, 'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'history': [{'loss': 1.0}]}
    copied = detached_copy(live)
    before = {k: v.clone() for k, v in copied['model'].items()}
    moment = copied['optimizer']['state'][0]['exp_avg'].clone()
    model(torch.rand(2, 3, 80, 60))['gender'].sum().backward()
    optimizer.step()
    live['history'].append({'loss': 0.5})
    live['history'][0]['loss'] = 9.0
    assert all(torch.equal(before[k], v) for k, v in copied['model'].items())
    assert torch.equal(copied['optimizer']['state'][0]['exp_avg'], moment)
    assert not torch.equal(live['optimizer']['state'][0]['exp_avg'], moment)  # the live one moved on
    assert copied['history'] == [{'loss': 1.0}] and copied['epoch'] == 1
    # A state_dict stays a state_dict: its class and the module versions load_state_dict reads.
    assert type(copied['model']) is OrderedDict and copied['model']._metadata == live['model']._metadata
    MultiOutputModel(3, 2, 4).load_state_dict(copied['model'])



def test_a_copied_tuple_stays_a_tuple_and_its_tensors_are_copied_too():
    # Adam's betas are a tuple, of floats or of tensors: a list in their place is another state.
    live = {'param_groups': [{'betas': (0.9, 0.999)}], 'pair': (torch.zeros(2), 'name')}
    copied = detached_copy(live)
    live['pair'][0].add_(1)
    assert copied['param_groups'] == [{'betas': (0.9, 0.999)}]
    assert type(copied['pair']) is tuple and torch.equal(copied['pair'][0], torch.zeros(2))


def test_jobs_run_beside_the_caller_one_at_a_time_in_order():
    saver, release, order = BackgroundSaver(), threading.Event(), []
    saver.submit(1, lambda: (release.wait(5), order.append(1)))
    saver.submit(2, order.append, 2)  # returns at once, though job 1 has not ended
    assert order == [] and saver.done is None
    release.set()
    saver.wait()
    assert order == [1, 2] and saver.done == 2 and saver.seconds > 0
    saver.close()


def fail(message, when=None):
    if when is not None:
        when.wait(5)
    raise UserError(message)


def test_a_failed_job_is_raised_at_the_next_call_and_later_jobs_still_run():
    saver, order, release = BackgroundSaver(), [], threading.Event()
    saver.submit(1, fail, 'could not save checkpoint last.pth: No space left on device', release)
    saver.submit(2, order.append, 2)  # queued while job 1 still runs
    assert not saver.failed
    release.set()
    with pytest.raises(UserError, match='No space left on device'):
        saver.wait()
    saver.close()
    assert order == [2] and saver.done == 2 and saver.failed  # what train.py tells its errors apart by
    saver = BackgroundSaver()
    saver.submit(1, fail, 'disk full')
    saver.close()  # waits for it, and says nothing: the run is ending for another reason
    assert saver.done is None
    with pytest.raises(UserError, match='disk full'):
        saver.submit(2, order.append, 2)


def test_the_savers_seconds_are_its_jobs_own_time_added_up(monkeypatch):
    now = [10.0]  # the saver's time.perf_counter, moved on only by the jobs: the caller's time is not theirs
    monkeypatch.setattr('saver.time', types.SimpleNamespace(perf_counter=lambda: now[0]))

    def job(seconds):
        now[0] += seconds
    saver = BackgroundSaver()
    saver.submit(1, job, 0.25)
    saver.submit(2, job, 0.5)
    saver.wait()
    saver.close()
    assert saver.seconds == 0.75


def test_closing_the_saver_still_runs_the_jobs_queued_behind_a_running_one():
    # A stopped run closes it: the epochs queued to be saved are written, not dropped.
    saver, release, order = BackgroundSaver(), threading.Event(), []
    saver.submit(1, lambda: (release.wait(5), order.append(1)))
    saver.submit(2, order.append, 2)
    threading.Timer(0.2, release.set).start()
    saver.close()
    assert order == [1, 2] and saver.done == 2
