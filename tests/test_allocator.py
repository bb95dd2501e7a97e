# allocator.py: on a CPU, freed tensors' memory is kept for the next ones instead of going back to
# the kernel, whose fresh pages cost a page fault each; and the scripts that run the model set it.
import json
import os
import platform
import resource
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import allocator
import predict
import train
from allocator import keep_freed_memory, peak_resident_mib
from conftest import ROOT, train_args
from demo import load_test_script

GLIBC = sys.platform.startswith('linux') and platform.libc_ver()[0] == 'glibc'

# The page faults of each of a series of 64 MiB tensors, made, filled and freed one after the
# other: first with malloc's defaults, then kept.
FAULTS = f'''
import resource, sys
import torch
sys.path.insert(0, {ROOT!r})
from allocator import keep_freed_memory

def faults_of_new_tensors(n):
    faults = []
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(2**24).sum()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults

default = faults_of_new_tensors(4)
took = keep_freed_memory(torch.device('cpu'))
print(default, took, faults_of_new_tensors(20), sep=';')
'''


def huge_pages_always():
    """Whether the kernel backs every large mapping with 2 MiB pages (some distributions' default;
    madvise, Ubuntu's, only where asked): a 64 MiB tensor then takes 32 faults, not 16,384."""
    try:
        with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
            return '[always]' in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not GLIBC, reason='the setting is for Linux with glibc')
@pytest.mark.skipif(huge_pages_always(), reason='counted in 4 KiB pages; transparent huge pages are always on here')
def test_a_tensor_made_again_reuses_the_freed_memory_instead_of_new_pages():
    done = subprocess.run([sys.executable, '-c', FAULTS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    default, took, kept = done.stdout.strip().split(';')
    pages = 2**26 // resource.getpagesize()  # 16,384 of 4 KiB
    # Each page a fault, every time: glibc maps a block this large and unmaps it when freed
    assert min(json.loads(default)) > 0.6 * pages, done.stdout
    # Kept, most of them reuse what the ones before freed. A few still grow the heap: the first
    # ones (PyTorch asks for its blocks aligned, which takes a little more than one freed block of
    # the same size, until two freed ones lie side by side), and now and then one whose place a
    # small allocation took. In 12 runs of 20 here, at most 4 took new pages.
    new_pages = [faults for faults in json.loads(kept) if faults > 0.06 * pages]
    assert took == 'True' and len(new_pages) <= 8, done.stdout


def test_only_the_cpu_is_set():
    # A GPU's memory has PyTorch's own caching allocator; the host then allocates little.
    assert not keep_freed_memory(torch.device('cuda'))
    assert not keep_freed_memory(torch.device('meta'))


def test_train_test_and_predict_set_it_for_the_device_they_run_on(small_split, tmp_path, monkeypatch):
    test_script = load_test_script()
    devices = []
    for script in (train, test_script, predict):
        monkeypatch.setattr(script, 'keep_freed_memory', devices.append)
    run_dir = train.main(train_args(small_split, tmp_path, '--epochs', 1))
    checkpoint = os.path.join(run_dir, 'last.pth')
    test_script.main(['--checkpoint', checkpoint, '--val-csv', small_split['val'], '--device', 'cpu',
                      '--output', str(tmp_path / 'eval')])
    pictures = os.path.join(small_split['catalog']['root'], 'images')
    predict.main(['--checkpoint', checkpoint, '--device', 'cpu', pictures])
    assert devices == [torch.device('cpu')] * 3


@pytest.mark.skipif(not os.path.exists('/proc/self/status'), reason="the system's own count is Linux's")
def test_the_peak_resident_memory_is_the_systems_own_count_in_mib():
    block = bytearray(256 * 2**20)  # every page written: resident
    reported = peak_resident_mib()
    with open('/proc/self/status') as status:
        [kib] = [int(line.split()[1]) for line in status if line.startswith('VmHWM:')]
    # getrusage's peak and /proc's VmHWM are kept apart by the kernel, and may differ by a few pages
    # either way (in CI, getrusage's was 12 KiB the higher of the two, read first): not by 1,024 times
    assert len(block) / 2**20 < reported and abs(kib / 1024 - reported) < 16


def test_the_peak_resident_memory_counted_in_bytes_on_macos_is_shown_in_mib_there_too(monkeypatch):
    # getrusage gives KiB on Linux and bytes on macOS: taken for KiB there, train.py's "peak memory:
    # 1,352 MiB resident" read 1,384,448 MiB
    usage = SimpleNamespace(ru_maxrss=1352 * 2**20)
    monkeypatch.setattr(allocator, 'resource', SimpleNamespace(RUSAGE_SELF=resource.RUSAGE_SELF,
                                                               getrusage=lambda who: usage))
    monkeypatch.setattr(allocator, 'sys', SimpleNamespace(platform='darwin'))
    assert peak_resident_mib() == 1352
    monkeypatch.setattr(allocator, 'sys', SimpleNamespace(platform='linux'))
    usage.ru_maxrss = 1352 * 2**10
    assert peak_resident_mib() == 1352
