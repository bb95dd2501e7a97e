import csv
import io
import os
import resource
import signal
import struct
import subprocess
import sys
from contextlib import contextmanager

# One thread count for the tests and the scripts they start: the float sums of a resumed run
# match an unbroken one bit for bit only with the same number of threads. One thread: the tests
# run in 2 processes or more (pytest.ini), and 2 threads each on 2 cores took the suite 527 s where
# 1 thread each took 468 s, the same day on the same machine (2026-12-05).
os.environ['OMP_NUM_THREADS'] = '1'
# Idle OpenMP threads sleep instead of spinning: the tests start scripts beside themselves, and
# spinning threads of two processes on 2 cores slow both a hundredfold.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
# The tests run as in an activated virtual environment: `python` on the PATH is the one running
# them, so the commands the scripts print to go on say `python` (cli.this_python, whose own test
# sets both apart).
os.environ['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')
# Started as a script's background job (`pytest ... &`, no job control), the tests and every
# process they start would ignore SIGINT, and the tests of a Ctrl-C would fail: they get it as from
# a terminal. Python's handler here, not SIG_IGN, lets the scripts they start have the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cli import usable_cores  # noqa: E402
from sample_catalog import make_catalog  # noqa: E402
import split_data  # noqa: E402

torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))


def pytest_xdist_auto_num_workers(config):
    """The test processes for `-n auto` (pytest.ini): two even on one core, where many tests wait
    on a script they started; at most 4, each with its one thread and its own copy of the
    session's catalogs and run."""
    return min(4, max(2, usable_cores()))


def pytest_collection_modifyitems(items):
    """The modules with tests marked slow first, each module's slow tests at its head: run last,
    one such test kept one test process busy for a minute and more after the other had ended.
    A module stays together, so that its fixtures are made once in each test process."""
    first = {}  # module: index of its first test, and whether it has a slow one
    for index, item in enumerate(items):
        start, slow = first.get(item.path, (index, False))
        first[item.path] = (start, slow or item.get_closest_marker('slow') is not None)

    def place(numbered):
        index, item = numbered
        start, module_slow = first[item.path]
        return (not module_slow, start, item.get_closest_marker('slow') is None, index)

    items[:] = [item for _, item in sorted(enumerate(items), key=place)]


def run_script(script, *args, cwd=None, timeout=300, env=None):
    """Run one of the project's scripts as a user would, and return the finished process."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture(params=["this Python's", "Python 3.10's"])
def csv_module(request, monkeypatch):
    """The csv module of this Python, then one that refuses a NUL byte anywhere, as Python 3.10's
    does ("line contains NUL"; 3.11's reads it as any other character)."""
    if request.param == "this Python's":
        return
    real_reader = csv.reader

    def reader(lines, *args, **kwargs):
        def refusing_nul():
            for line in lines:
                if '\0' in line:
                    raise csv.Error('line contains NUL')
                yield line
        return real_reader(refusing_nul(), *args, **kwargs)
    monkeypatch.setattr(csv, 'reader', reader)


@contextmanager
def file_size_limit(size):
    """Writes past `size` bytes fail as on a full disk, for real (EFBIG; Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@contextmanager
def locked_by_another_process(folder):
    """folder locked for the block by another process, as by a second script writing in it."""
    holder = subprocess.Popen([sys.executable, '-c', 'import fcntl, os, sys\n'
                               'fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX)\n'
                               'print("locked", flush=True)\n'
                               'sys.stdin.read()\n', str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == 'locked\n'
        yield
    finally:
        holder.kill()
        holder.communicate()


def lockable_by_another_process(folder):
    """Whether another process could lock folder now."""
    return subprocess.run([sys.executable, '-c', 'import fcntl, os, sys\n'
                           'fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX | fcntl.LOCK_NB)\n',
                           str(folder)], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope='session')
def quirky_catalog(tmp_path_factory):
    """A small sample catalog with every quirk of the real styles.csv and images."""
    root = tmp_path_factory.mktemp('quirky') / 'fashion-product-images'
    return make_catalog(str(root), n_images=120, seed=1, quirks=True)


@pytest.fixture(scope='session')
def small_split(tmp_path_factory):
    """train.csv/val.csv over a clean sample catalog, for the training tests."""
    base = tmp_path_factory.mktemp('small')
    catalog = make_catalog(str(base / 'fashion-product-images'), n_images=120, seed=2)
    split_data.main(['--input', catalog['root'], '--output', str(base), '--workers', '1'])
    return {'base': base, 'styles': os.path.join(catalog['root'], 'styles.csv'),
            'train': str(base / 'train.csv'), 'val': str(base / 'val.csv'), 'catalog': catalog}


@pytest.fixture(scope='session')
def one_epoch_run(small_split, tmp_path_factory):
    """The run folder of one epoch of train.py on small_split, for tests that only read it."""
    import train
    return train.main(train_args(small_split, tmp_path_factory.mktemp('one-epoch'), '--epochs', 1))


def train_args(split, run_dir, *extra):
    return ['--attributes_file', split['styles'], '--train-csv', split['train'],
            '--val-csv', split['val'], '--checkpoints', str(run_dir), '--run-name', 'run',
            '--device', 'cpu', '--workers', '0', *map(str, extra)]


def overflowing(state, scale=1e30):
    """A checkpoint's state with every weight of its model scaled: finite still, as a diverged
    run's are not, but the model's answers overflow float32 to infinity and NaN."""
    model = {name: tensor * scale if tensor.is_floating_point() else tensor for name, tensor in state['model'].items()}
    return dict(state, model=model)


def damaged_exif_jpeg(source, damage='count'):
    """A JPEG whose EXIF block is damaged, its pixels whole: it says it holds 65,535 tags where it
    holds two ('count'), or its description is longer than the file ('length') or past its end
    ('place'). Pillow warns of each in its own words."""
    exif = Image.Exif()
    exif[0x0112] = 1  # orientation: upright
    exif[0x010e] = 'a product photo'  # description
    buffer = io.BytesIO()
    source.save(buffer, 'JPEG', exif=exif.tobytes(), quality=95)
    data = bytearray(buffer.getvalue())
    tiff = data.index(b'Exif\x00\x00') + 6  # the TIFF header; its first directory 8 bytes on
    order = '<' if data[tiff:tiff + 2] == b'II' else '>'
    if damage == 'count':
        struct.pack_into(order + 'H', data, tiff + 8, 0xffff)
        return bytes(data)
    for entry in range(tiff + 10, tiff + 10 + 12 * struct.unpack_from(order + 'H', data, tiff + 8)[0], 12):
        if struct.unpack_from(order + 'H', data, entry)[0] == 0x010e:  # tag, type, count, offset
            struct.pack_into(order + 'I', data, entry + {'length': 4, 'place': 8}[damage], 60000)
    return bytes(data)
