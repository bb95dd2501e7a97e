# benchmarks/step_variants.py picks the flags gpu_check.sh trains with: its list of configurations
# and its --budget must hold, though its timings are not tested (benchmarks are not tests).
import os
import sys

import torch

from conftest import ROOT, run_script

sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from step_variants import train_flags, variants  # noqa: E402


def test_each_configuration_once_with_train_pys_default_first():
    for device, default in ((torch.device('cuda'), '--precision bf16 --cuda-graphs on'),
                            (torch.device('cpu'), '--precision fp32')):
        flags = [train_flags(device, *v) for v in variants(device, skip_compile=False)]
        assert flags[0] == default
        assert len(flags) == len(set(flags))
        # train.py refuses two graph recorders at once
        assert not any('reduce-overhead' in f and '--cuda-graphs on' in f for f in flags)
    assert len(variants(torch.device('cuda'), False)) == 10
    assert all(compile_mode is None for _, compile_mode, _ in variants(torch.device('cuda'), True))


def test_budget_stops_further_start_ups_and_still_times_the_first():
    done = run_script('benchmarks/step_variants.py', '--device', 'cpu', '--skip-compile', '--budget', '0',
                      '--seconds', '0.2', '--rounds', '1', '--classes', '3,7,5')
    assert done.returncode == 0, done.stderr
    assert 'not started (over --budget 0 s): --precision bf16' in done.stdout
    assert 'fastest: --precision fp32  (' in done.stdout
