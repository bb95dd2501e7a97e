# Checkpoints lose nothing and run nothing: atomic writes, weights_only loads, clear refusals.
import argparse
import errno
import io
import json
import os
import pickle
import re
import struct
import sys
import warnings
import zipfile

import pytest
import torch
import torch.utils.collect_env

import catalog
import checkpoint
import pickle_scan
from checkpoint import checkpoint_load, checkpoint_save, model_from_checkpoint, path_as_trained
from cli import UserError
from conftest import file_size_limit
from dataset import HEADS, AttributesDataset
from model import MultiOutputModel

VOCAB = {'gender': ['Men', 'Women'], 'article': ['Shirts', 'Tshirts', 'Watches'], 'color': ['Black', 'Blue']}


def make_state(epoch=1):
    torch.manual_seed(epoch)
    model = MultiOutputModel(n_color_classes=2, n_gender_classes=2, n_article_classes=3)
    optimizer = torch.optim.Adam(model.parameters())
    return {'epoch': epoch, 'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
            'attributes': VOCAB, 'args': {'lr': 0.001, 'train_csv': './train.csv'},
            'history': [epoch_row(done) for done in range(1, epoch + 1)], 'best': {'epoch': 0, 'score': -1.0}}


def epoch_row(epoch):
    return {'epoch': epoch, 'train_loss': 1.0, **{f'train_{head}_accuracy': 0.5 for head in HEADS}}


def test_round_trip_rebuilds_the_model_from_the_file_alone(tmp_path):
    state = make_state()
    path = checkpoint_save(str(tmp_path / 'last.pth'), state)
    model, attributes, loaded = model_from_checkpoint(path)
    assert attributes.to_dict() == VOCAB and loaded['epoch'] == 1 and loaded['args']['lr'] == 0.001
    for key, value in state['model'].items():
        assert torch.equal(model.state_dict()[key], value)
    assert os.listdir(tmp_path) == ['last.pth']  # no temporary file left behind


def test_a_write_that_dies_midway_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / 'last.pth')
    checkpoint_save(path, make_state(1))

    def dies_halfway(fd):
        os.ftruncate(fd, 1000)  # what a kill or a crash mid-write leaves behind
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'fsync', dies_halfway)  # the last step before the rename
    with pytest.raises(KeyboardInterrupt):
        checkpoint_save(path, make_state(2))
    monkeypatch.undo()
    assert checkpoint_load(path)['epoch'] == 1
    assert os.listdir(tmp_path) == ['last.pth']


@pytest.mark.parametrize('short', [100, 100_000])
def test_a_full_disk_is_reported_and_the_previous_checkpoint_kept(tmp_path, short):
    path = str(tmp_path / 'last.pth')
    checkpoint_save(path, make_state(1))
    size = os.path.getsize(path)
    # 100 KB short, a write fails inside torch.save's zip writer, which reported it as a
    # RuntimeError about zip offsets ('unexpected pos'), without the file or the reason.
    with file_size_limit(size - short), pytest.raises(UserError) as error:
        checkpoint_save(path, make_state(2))
    assert str(error.value) == (f'could not save checkpoint {path}: {os.strerror(errno.EFBIG)}; '
                                'the previous checkpoint there, if any, is kept')
    assert checkpoint_load(path)['epoch'] == 1
    assert os.listdir(tmp_path) == ['last.pth']


class Payload:
    def __reduce__(self):
        return (os.system, (f'touch {MARKER}',))


MARKER = '/tmp/fashion-checkpoint-payload-ran'


def test_a_pickled_payload_is_refused_and_never_runs(tmp_path):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    path = tmp_path / 'evil.pth'
    state = make_state()
    state['args'] = Payload()
    torch.save(state, path)  # a checkpoint "from the internet", written by plain pickle
    with pytest.raises(UserError, match='refused to load.*could run code.*GLOBAL posix.system'):
        checkpoint_load(str(path))
    assert not os.path.exists(MARKER)
    with open(path, 'rb') as f:  # the proof that the file really carries the payload
        assert b'system' in f.read()
    # In pickle's protocol 0, whose opcodes are text, not named a text file; and where the unpickler
    # stops before the code (at protocol 0's list or dict; at protocol 4's frame), the code named
    # all the same ('not a PyTorch checkpoint (Unsupported operand 108)' before)
    # its module's name fetched from the pickle's memo (protocol 4 pushes each string once), or cut
    # short (what comes before the end runs all the same)
    for held in (Payload(), [1, Payload()], {'model': Payload()}, {'a': 'posix', 'torch.b': Payload()}):
        for protocol in (0, 4, 5):
            for data in (pickle.dumps(held, protocol=protocol), pickle.dumps(held, protocol=protocol)[:-1]):
                path.write_bytes(data)
                with pytest.raises(UserError, match=r'refused to load.*could run code.*posix.system'):
                    checkpoint_load(str(path))
    # torch's own module, from which protocol 4 reaches os by a dotted name: torch.os.system is os.system
    command = f'touch {MARKER}'.encode()
    for module, name in (('torch', 'os.system'), ('torch.serialization', 'os.system')):
        path.write_bytes(b'\x80\x04' + b''.join(b'\x8c' + bytes([len(s)]) + s for s in (module.encode(), name.encode()))
                         + b'\x93\x8c' + bytes([len(command)]) + command + b'\x85R.')  # STACK_GLOBAL, REDUCE
        with pytest.raises(UserError, match=rf'refused to load.*could run code when unpickled \({module}.os.system\)'):
            checkpoint_load(str(path))
    for protocol in (4, 5):  # in torch.save's archive, where the unpickler stops at the first FRAME (operand 149)
        torch.save(state, path, pickle_protocol=protocol)
        with pytest.raises(UserError, match=r'refused to load.*could run code when unpickled \(posix.system\)'):
            checkpoint_load(str(path))
    legacy = {'model': {'w': torch.zeros(2)}, 'args': Payload()}  # torch.save's format of before 1.6
    torch.save(legacy, path, _use_new_zipfile_serialization=False, pickle_protocol=0)
    with pytest.raises(UserError, match=r'refused to load.*could run code when unpickled \(posix.system\)'):
        checkpoint_load(str(path))
    # an object left below the one STOP returns (the unpickler leaves it), a zip archive after the pickle
    # (torch.load reads an archive only where the file begins with one): the code named all the same
    saved, appended = path.read_bytes(), tmp_path / 'appended.zip'
    with zipfile.ZipFile(appended, 'w') as archive:  # one zipfile reads: its data.pkl has no code
        archive.writestr('x/data.pkl', pickle.dumps(1))
    for data in (b'I0\n' + saved, saved + appended.read_bytes(),
                 pickle.dumps([1, Payload()], protocol=0) + stored_record('x/data.pkl', b'abc', flags=1)):
        path.write_bytes(data)
        with pytest.raises(UserError, match=r'refused to load.*could run code when unpickled \(posix.system\)'):
            checkpoint_load(str(path))
    # protocol 0's own text, with the Python 2 name of builtins that the unpickler maps
    for data in (b"c__builtin__\neval\n(S'1'\ntR.", b"cos\nsystem\n(S'true'\ntR."):
        path.write_bytes(data)
        with pytest.raises(UserError, match='refused to load.*could run code when unpickled'):
            checkpoint_load(str(path))
    assert not os.path.exists(MARKER)


class EvalPayload:
    def __reduce__(self):  # a builtin, but one that runs code
        return (eval, (f'open({MARKER!r}, "w")',))


@pytest.mark.parametrize('held,said', [
    (frozenset({1}), 'a frozenset (builtins.frozenset), a Python builtin that runs no code'),
    (slice(1, 2), 'a slice (builtins.slice), a Python builtin that runs no code'),
    (range(3), 'a range (builtins.range), a Python builtin that runs no code'),
    ([frozenset(), ..., slice(3)], 'a frozenset, Ellipsis and a slice (builtins.frozenset, builtins.Ellipsis, '
                                   'builtins.slice), Python builtins that run no code')])
def test_builtins_weights_only_refuses_are_named_as_what_they_are_not_as_code(tmp_path, held, said):
    # 'refused to load: it holds Python objects that could run code when unpickled (Unsupported
    # global: GLOBAL frozenset ...)', it said of a frozenset, a slice or a range
    path = tmp_path / 'x.pth'
    torch.save({'model': {'w': torch.zeros(2)}, 'extra': held}, path)
    with pytest.raises(UserError) as error:
        checkpoint_load(str(path))
    assert str(error.value) == (f"{path}: not a checkpoint this project wrote: it holds {said} but that torch.load's "
                                'weights_only loading does not accept. If you trust the file, load it with '
                                'weights_only=False and save it again with a list, a tuple or None in '
                                + ('their' if ' and ' in said else 'its') + ' place')
    torch.save({'extra': slice(1, 2)}, path, pickle_protocol=4)  # a STACK_GLOBAL of Python 3's names
    with pytest.raises(UserError, match=re.escape(f'{path}: not a checkpoint this project wrote: it holds a slice')):
        checkpoint_load(str(path))


@pytest.mark.parametrize('held', [[frozenset({1}), Payload()], [EvalPayload()], [range(2), EvalPayload()],
                                  [argparse.Namespace(lr=0.1), slice(1)]],
                         ids=['os.system', 'eval', 'range-eval', 'namespace'])
def test_builtins_beside_other_objects_are_still_refused_as_code(tmp_path, held):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    path = tmp_path / 'x.pth'
    torch.save({'model': {'w': torch.zeros(2)}, 'extra': held}, path)
    with pytest.raises(UserError, match=f'^{re.escape(str(path))}: refused to load: it holds Python objects that '
                                        'could run code when unpickled'):
        checkpoint_load(str(path))
    assert not os.path.exists(MARKER)


def shadowed_archive(protocol):
    """torch.save's archive of a payload, with a harmless data.pkl in a folder of its own: torch.load
    reads ARCHIVE/data.pkl, ARCHIVE the folder of the first record. At protocol 2, an INT and a POP
    first stop torch's safe reader before it meets the payload's GLOBAL."""
    saved, shadowed = io.BytesIO(), io.BytesIO()
    torch.save({'model': Payload()}, saved, pickle_protocol=protocol)
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(shadowed, 'w') as archive:
        archive.writestr('archive/version', source.read('archive/version'))
        archive.writestr('archive/x/data.pkl', pickle.dumps({'a': 1}, protocol))
        for name in source.namelist():
            data = source.read(name)
            if name == 'archive/data.pkl' and protocol == 2:
                data = data[:2] + b'I0\n0' + data[2:]
            if name != 'archive/version':
                archive.writestr(name, data)
    return shadowed.getvalue()


COMMAND = f'touch {MARKER}'.encode()


class TorchPayload:
    def __reduce__(self):  # one of torch's own that runs a command
        return (torch.utils.collect_env.run, (COMMAND.decode(),))


def torch_payload(protocol, archive):
    saved = io.BytesIO()
    torch.save({'model': TorchPayload()}, saved, pickle_protocol=protocol, _use_new_zipfile_serialization=archive)
    return saved.getvalue()


@pytest.mark.parametrize('data,named', [
    # text to a first look, each ('h\xc3\x93' is a BINGET and a STACK_GLOBAL): a STACK_GLOBAL of strings
    # of the memo and a DUP; of a name computed by a call (torch.typename's answer, a string)
    (b'Vos\n20Vsystem\np195\n0h\xc3\x93(V' + COMMAND + b'\ntR.', '(os.system)'),
    (b'ctorch\ntypename\n(I1\ntRVsystem\np195\n0h\xc3\x93(V' + COMMAND + b'\ntR.', 'GLOBAL torch.typename'),
    # binary after 5,000 bytes of text: a module not installed here, and __main__ (its spec None in a script)
    (b'V' + b'a' * 5000 + b'\n0\x80\x04cnomodulehere\nrun\n(Vx\ntR.', '(nomodulehere.run)'),
    (b'V' + b'a' * 5000 + b'\n0\x80\x04c__main__\n__builtins__.exec\n(Vimport os\ntR.', '__main__.__builtins__.exec'),
    # os.environ's __setitem__ is putenv's: cut short after it, it ran all the same
    (b"cos\nenviron\nS'NAME'\nS'value'\ns", 'os.environ'),
    (shadowed_archive(2), '(posix.system)'), (shadowed_archive(4), '(posix.system)'),
    # torch's own objects other than those its safe reader rebuilds run code as any: in protocol 0's text
    # (named text), in protocol 4 (named a checkpoint to save again), in a dict of protocol 0
    (b"ctorch.utils.collect_env\nrun\n(S'" + COMMAND + b"'\ntR.", 'torch.utils.collect_env.run'),
    (torch_payload(4, True), 'torch.utils.collect_env.run'), (torch_payload(4, False), 'torch.utils.collect_env.run'),
    (pickle.dumps({'a': TorchPayload()}, protocol=0), 'torch.utils.collect_env.run')],
    ids=['dup', 'computed', 'after-text', 'main', 'setitem', 'archive-2', 'archive-4', 'torch-text', 'torch-4',
         'torch-4-before-1.6', 'torch-dict-0'])
def test_code_a_first_look_would_miss_is_refused_as_code(tmp_path, data, named):
    # Each was named a text file, not a checkpoint, or (protocol 4) a checkpoint to save again
    if os.path.exists(MARKER):
        os.remove(MARKER)
    path = tmp_path / 'x.pth'
    path.write_bytes(data)
    with pytest.raises(UserError, match=f'^{re.escape(str(path))}: refused to load: it holds Python objects that '
                                        f'could run code when unpickled .*{re.escape(named)}'):
        checkpoint_load(str(path))
    assert not os.path.exists(MARKER)


def test_torch_saves_only_what_its_safe_reader_rebuilds():
    saves = pickle_scan.torch_saves
    assert saves('torch._utils', '_rebuild_tensor_v2') and saves('torch', 'FloatStorage')
    assert saves('collections', 'OrderedDict') and saves('__builtin__', 'set')
    assert not saves('torch.utils.collect_env', 'run') and not saves('torch', 'os.system')
    assert not saves('torch', 'load')


def test_a_loaded_module_without_a_spec_counts_as_there(monkeypatch):
    # A script's __main__: find_spec raises ValueError ('__main__.__spec__ is None')
    monkeypatch.setattr(sys.modules['__main__'], '__spec__', None)
    assert pickle_scan.found_here('__main__.x') and pickle_scan.found_here('__builtin__.eval')
    assert not pickle_scan.found_here('heckpoints.logs')


def test_torch_saves_format_of_before_pytorch_1_6_in_protocol_0_is_not_named_a_text_file(tmp_path):
    path = tmp_path / 'old.pth'
    # A model's worth of tensors: the storages' bytes, NULs among them, come after 4 KiB of text
    weights = {f'layer{i}.weight': torch.zeros(2) for i in range(100)}
    torch.save(weights, path, _use_new_zipfile_serialization=False, pickle_protocol=0)
    assert b'\0' not in path.read_bytes()[:4096] and path.read_bytes().startswith(b'L119547037146038801333356L')
    with pytest.raises(UserError, match=r"old.pth: a checkpoint in torch.save's format of before PyTorch 1.6, pickled "
                                        r'with protocol 0 or 1, whose .* \(Unsupported operand 76\); if you trust'):
        checkpoint_load(str(path))  # weights_only's unpickler reads none of that format's protocol 0


@pytest.mark.parametrize('protocol,operand', [(0, None), (1, None), (3, 67), (4, 149), (5, 149)])
def test_a_checkpoint_of_a_pickle_protocol_torch_cannot_read_safely_is_named_so(tmp_path, protocol, operand):
    # torch.load's safe reader reads torch.save's default protocol, 2: it stops at protocol 4's first
    # FRAME, at protocol 3's bytes; 'not a PyTorch checkpoint (Unsupported operand 149)' before
    path = tmp_path / 'x.pth'
    state = dict(make_state(), note=b'bytes')
    torch.save(state, path, pickle_protocol=protocol)
    with pytest.raises(UserError) as error:
        checkpoint_load(str(path))
    said = (f"{path}: a checkpoint pickled with protocol {protocol if operand else '0 or 1'} (torch.save's "
            "pickle_protocol), whose opcodes torch.load's safe reader does not read (Unsupported operand "
            f"{operand or ''}")
    assert str(error.value).startswith(said) and str(error.value).endswith(
        "); save it again with torch.save's default protocol, in a Python where you trust the file"), str(error.value)
    torch.save(state, path)
    assert checkpoint_load(str(path))['note'] == b'bytes'
    # cut short: nothing says it is whole
    data = path.read_bytes()
    torch.save(state, path, pickle_protocol=protocol)
    path.write_bytes(path.read_bytes()[:len(data) // 2])
    with pytest.raises(UserError, match='x.pth: cut short, or damaged at its end'):
        checkpoint_load(str(path))
    # torch's format of before 1.6, which has no checksums: said as what it is, with what to do where
    # the file is trusted ("not a PyTorch checkpoint (Unsupported operand 149)", before)
    torch.save(state, path, pickle_protocol=protocol, _use_new_zipfile_serialization=False)
    with pytest.raises(UserError, match=f"x.pth: a checkpoint in torch.save's format of before PyTorch 1.6, pickled "
                                        f"with protocol {protocol if operand else '0 or 1'}, .*Unsupported operand"):
        checkpoint_load(str(path))
    if protocol >= 4:  # its data.pkl cut short, with a checksum of what is left
        torch.save(state, path, pickle_protocol=protocol)
        cut = tmp_path / 'cut.pth'
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(cut, 'w') as archive:
            for name in source.namelist():
                archive.writestr(name, source.read(name)[:-10] if name.endswith('/data.pkl') else source.read(name))
        with pytest.raises(UserError, match=r'not a PyTorch checkpoint \(Unsupported operand 149\)$'):
            checkpoint_load(str(cut))
    # torch.save's format of before 1.6 at protocol 4 was "code (OrderedDict.LongStorage)": its
    # pickles' memos were taken for one


@pytest.mark.parametrize('text', [b'color,count\nBlue,3\n', b'cuda available: no\n', b'checkpoint: runs/r1/last.pth\n',
                                  b'0.5\n0.7\n', b'.hidden\nmore\n', b'config\nvalue\nmore\n',
                                  b'cat\ndog\nbird\n', b'cat\ndog\nRed\n', b'checkpoints\nlogs\n.venv\n',
                                  b'cd\nls\n.\n', b'cat\ndog\nVx\nRed\n', b'checkpoints/\nlogs/\n.venv/\n'])
def test_text_the_unpickler_reads_as_a_global_is_named_text_not_code(tmp_path, text):
    # 'c' is pickle's GLOBAL opcode: 'color,count' was "objects that could run code (GLOBAL olor,count.Blue,3)";
    # '0.5' a whole pickle to pickletools (POP, STOP); 'cat\ndog\nbird' a GLOBAL, then a BUILD that
    # takes two objects off a stack of one: "could run code when unpickled (at.dog)"; a .gitignore's
    # 'checkpoints', 'logs', '.venv' a GLOBAL and a STOP: "... (GLOBAL heckpoints.logs)", as no
    # module heckpoints is there to import; with slashes, torch's reason named that GLOBAL
    path = tmp_path / 'x.pth'
    path.write_bytes(text)
    with pytest.raises(UserError, match=re.escape(f"{path}: a text file, not a checkpoint (it reads "
                                                  f"{text.decode().splitlines()[0]!r})")):
        checkpoint_load(str(path))


@pytest.mark.parametrize('content,said', [
    (b'', 'empty (0 bytes), not a checkpoint'), (pickle.dumps([1, 2, 3], protocol=2), 'not a PyTorch checkpoint'),
    (pickle.dumps([1, 2, 3], protocol=4), 'not a PyTorch checkpoint'), (b'\x80\x02garbage', 'not a PyTorch checkpoint'),
    (b'\xff\xfea\x00\x00\xd8b\x00', 'not a PyTorch checkpoint'),  # UTF-16 of a lone surrogate: no text
    ('image_path,gender\r\n'.encode('utf-16'), "a text file, not a checkpoint (it reads 'image_path,gender')"),
    # Text, where the unpickler said 'Unsupported operand 110' or failed inside (a KeyError, an IndexError)
    (b'not a checkpoint at all', "a text file, not a checkpoint (it reads 'not a checkpoint at all')"),
    (b'hello', "a text file, not a checkpoint (it reads 'hello')"),
    ('\ufeff\n\nimage_path,gender,articleType,baseColour\r\nx.jpg,Men,Shirts,Blue\r\n'.encode(),
     "a text file, not a checkpoint (it reads 'image_path,gender,articleType,baseColour'): give a run's "
     "best.pth or last.pth"),
    (b'epoch,lr,seconds\n' + b'x' * 5000, "a text file, not a checkpoint (it reads 'epoch,lr,seconds')")])
def test_files_that_are_not_checkpoints_are_named(tmp_path, content, said):
    path = tmp_path / 'x.pth'
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # PyTorch's warning about the pickle protocol is not shown
        with pytest.raises(UserError, match=f'^{re.escape(f"{path}: {said}")}'):
            checkpoint_load(str(path))


def test_a_big_text_file_is_named_from_its_beginning_not_read_whole(tmp_path, monkeypatch):
    # A split of 300 MB given for a checkpoint took 12 s and 1.5 GB to be named a text file: it was
    # read whole, and decoded whole to say it is text throughout. Here 1 MiB, and how much is read.
    path = tmp_path / 'train.csv'
    row = b'images/1163.jpg,Men,Tshirts,Blue\n'
    path.write_bytes(b'image_path,gender,articleType,baseColour\n' + row * (2**20 // len(row)))
    read = []

    class Counted(io.BufferedReader):
        def read(self, size=-1):
            data = super().read(size)
            read.append(len(data))
            return data

    monkeypatch.setattr(checkpoint, 'open', lambda name, mode='r': Counted(io.FileIO(name, mode.replace('b', ''))),
                        raising=False)
    with pytest.raises(UserError, match=re.escape(f"{path}: a text file, not a checkpoint (it reads "
                                                  "'image_path,gender,articleType,baseColour')")):
        checkpoint_load(str(path))
    assert 0 < sum(read) <= catalog.BEGINNING + 1, read


def old_format_in_text():
    """torch.save's format of before 1.6 at protocol 0, its first 64 KiB text: its first pickle whole."""
    saved = io.BytesIO()
    torch.save({f'layer{i}.weight': torch.zeros(2) for i in range(1000)}, saved, _use_new_zipfile_serialization=False,
               pickle_protocol=0)
    return saved.getvalue()


@pytest.mark.parametrize('data,said', [
    (pickle.dumps([list(range(20000)), 0], protocol=0)[:-2] + b"cos\nsystem\n(S'true'\ntRa.",
     'refused to load: it holds Python objects that could run code when unpickled (os.system)'),
    (b'V' + b'a' * 70000 + b"\n0cos\nsystem\n(S'true'\ntR.", 'refused to load: it holds Python objects that could '
                                                           'run code when unpickled (os.system)'),
    (pickle.dumps(list(range(20000)), protocol=0), 'not a PyTorch checkpoint (Unsupported operand 108)'),
    (old_format_in_text(), "a checkpoint in torch.save's format of before PyTorch 1.6")],
    ids=['code-after-a-list', 'code-after-a-string', 'list', 'before-1.6'])
def test_a_pickle_of_protocol_0_longer_than_64_kib_is_read_whole(tmp_path, data, said):
    # Text in its first 64 KiB, where pickletools reads on past them or a pickle is whole: what
    # follows counts (the code), and the file is looked at as it was
    path = tmp_path / 'x.pth'
    path.write_bytes(data)
    assert len(data) > catalog.BEGINNING and catalog.text_of(data[:catalog.BEGINNING]) is not None
    with pytest.raises(UserError, match=f'^{re.escape(f"{path}: {said}")}'):
        checkpoint_load(str(path))


def broken_checkpoint(path, kind):
    if kind == 'other globals':  # a checkpoint with an object weights_only may not rebuild
        torch.save({'model': {}, 'args': argparse.Namespace(lr=0.1)}, path)
    else:
        checkpoint_save(str(path), make_state())
        path.write_bytes(path.read_bytes()[:{'truncated': 1000, 'empty': 0}[kind]])


@pytest.mark.parametrize('kind,reason', [
    ('truncated', 'but its 1,000 bytes end before the list of what it holds (a copy or a download that stopped?); copy '
                  'it again, or use another checkpoint of the run'),
    ('empty', "empty (0 bytes), not a checkpoint: a copy or a save that did not finish? Give a run's best.pth or "
              'last.pth'),
    ('other globals', 'could run code when unpickled (Unsupported global: GLOBAL argparse.Namespace was not an allowed '
                      'global by default). Only open checkpoints you trust.'),
])
def test_a_broken_checkpoint_is_named_in_whole_sentences(tmp_path, kind, reason):
    # torch.load's own messages go on with advice to programmers: its first sentence is kept, not a
    # length of it that stopped at "your checkpoint file is".
    path = tmp_path / 'x.pth'
    broken_checkpoint(path, kind)
    with pytest.raises(UserError) as error:
        checkpoint_load(str(path))
    assert str(error.value).startswith(f'{path}: ') and str(error.value).endswith(reason), str(error.value)


def test_a_checkpoint_cut_short_anywhere_is_named_so_in_plain_words(tmp_path):
    # torch.load's reason was its reader's, as far as it got: 'Unsupported operand 80' (2 or 3 bytes
    # left), 'not a ZIP archive' (up to 21), 'failed finding central directory', and from 4 KiB to
    # 68 KiB 'negative seek value -831' (7,358 bytes left), -3189 (5,000), and so on
    data = open(checkpoint_save(str(tmp_path / 'last.pth'), make_state()), 'rb').read()
    path = tmp_path / 'copy.pth'
    for length in (2, 3, 10, 1000, 5000, 7358, 60000, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:length])
        with pytest.raises(UserError) as error:
            checkpoint_load(str(path))
        assert str(error.value) == (f"{path}: cut short, or damaged at its end: it begins as a zip archive, as "
                                    f"torch.save's checkpoints do, but its {length:,} bytes end before the list of "
                                    'what it holds (a copy or a download that stopped?); copy it again, or use another '
                                    'checkpoint of the run'), length


def test_a_run_folder_given_as_the_checkpoint_is_named_as_a_folder_with_a_checkpoint_in_it(tmp_path):
    with pytest.raises(UserError, match=f'^{tmp_path}: a folder, not a checkpoint file$'):
        checkpoint_load(str(tmp_path))
    (tmp_path / 'best.pth').write_bytes(b'')
    with pytest.raises(UserError, match=f'a folder, not a checkpoint file; .* such as {tmp_path / "best.pth"}$'):
        checkpoint_load(str(tmp_path))
    (tmp_path / 'last.pth').write_bytes(b'')  # the one train.py says to evaluate
    with pytest.raises(UserError, match=f'such as {tmp_path / "last.pth"}$'):
        checkpoint_load(str(tmp_path))
    with pytest.raises(UserError, match=f'{tmp_path / "gone.pth"}: no such checkpoint file'):
        checkpoint_load(str(tmp_path / 'gone.pth'))
    # A file on the way, or a folder one may not enter (EACCES): named with the system's reason, not as none there
    with pytest.raises(UserError, match=f'^{tmp_path / "best.pth" / "x.pth"}: could not reach it \\(Not a directory\\)$'):
        checkpoint_load(str(tmp_path / 'best.pth' / 'x.pth'))
    with pytest.raises(UserError, match="^'': an empty name for a checkpoint file; give its path"):  # --checkpoint ''
        checkpoint_load('')
    with pytest.raises(UserError, match='^/dev/null: not a regular file '):  # it is there
        checkpoint_load('/dev/null')


def test_a_zip_archive_of_other_files_is_named_as_one_and_a_damaged_checkpoint_as_that(tmp_path):
    with zipfile.ZipFile(tmp_path / 'photos.zip', 'w') as archive:
        archive.writestr('a.txt', 'not a checkpoint')
    with pytest.raises(UserError, match=f'^{tmp_path / "photos.zip"}: a zip archive, but not one torch.save wrote$'):
        checkpoint_load(str(tmp_path / 'photos.zip'))
    # torch.save's own archive with a tensor's record gone: damaged, with torch's reason
    good = checkpoint_save(str(tmp_path / 'good.pth'), make_state())
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(tmp_path / 'damaged.pth', 'w') as damaged:
        for item in source.infolist():
            if not item.filename.endswith('/data/0'):
                damaged.writestr(item, source.read(item.filename))
    with pytest.raises(UserError, match='damaged.pth: not a PyTorch checkpoint, or a truncated one '
                                        r'\(RuntimeError: .*data/0'):
        checkpoint_load(str(tmp_path / 'damaged.pth'))


def test_a_checkpoint_whose_record_name_changed_in_its_header_is_named_damaged(tmp_path):
    # A UnicodeDecodeError from zipfile, as the name in a record's own header was read
    path = checkpoint_save(str(tmp_path / 'x.pth'), make_state())
    data = bytearray(open(path, 'rb').read())
    data[30] ^= 0x80  # the first record's name, after its 30-byte header
    (tmp_path / 'changed.pth').write_bytes(data)
    with pytest.raises(UserError, match='changed.pth: damaged: .* in it does not match the checksum or the name '):
        checkpoint_load(str(tmp_path / 'changed.pth'))


def test_a_checkpoint_whose_directory_changed_is_named_not_a_traceback(tmp_path):
    # zipfile's UnicodeDecodeError (a name's byte in the archive's directory) and ValueError (its
    # start moved: 'negative seek value') came out as tracebacks
    data = open(checkpoint_save(str(tmp_path / 'x.pth'), make_state()), 'rb').read()
    directory, end = data.find(b'PK\x01\x02'), data.rfind(b'PK\x06\x06')  # the first record's; zip64's end
    locator = data.rfind(b'PK\x06\x07')  # zip64's locator, whose count of disks made zipfile raise BadZipFile
    assert directory > 0 and end > 0 and locator > 0
    for offset, value, said in [(directory + 46 + 3, 0xff, 'not a PyTorch checkpoint, or a truncated one'),
                                (end + 48, data[end + 48] + 3, 'damaged: archive/data.pkl in it'),
                                (locator + 16, 2, 'not a PyTorch checkpoint, or a truncated one'),
                                (0, data[0] ^ 0xff, 'damaged: archive/data.pkl in it')]:  # no longer PK first
        changed = bytearray(data)
        changed[offset] = value
        (tmp_path / 'changed.pth').write_bytes(changed)
        with pytest.raises(UserError, match=f'^{re.escape(str(tmp_path / "changed.pth"))}: {said}'):
            checkpoint_load(str(tmp_path / 'changed.pth'))


def stored_record(name, data, flags=0, method=0):
    """A zip archive of one record, without a checksum (which zipfile would check), as bytes."""
    name = name.encode()
    header = struct.pack('<4sHHHHHIIIHH', b'PK\x03\x04', 20, flags, method, 0, 0, 0, len(data), len(data), len(name), 0)
    entry = struct.pack('<4sHHHHHHIIIHHHHHII', b'PK\x01\x02', 20, 20, flags, method, 0, 0, 0, len(data), len(data),
                        len(name), 0, 0, 0, 0, 0, 0)
    local = header + name + data
    return local + entry + name + struct.pack('<4sHHHHIIH', b'PK\x05\x06', 0, 0, 1, 1, len(entry + name), len(local), 0)


@pytest.mark.parametrize('flags,method,data', [(1, 0, b'abc'), (0, 99, b'abc'), (0, 8, b'\xff\xff')],
                         ids=['encrypted', 'unknown compression', 'bad deflate'])
def test_an_archive_zipfile_cannot_read_is_named_not_a_traceback(tmp_path, flags, method, data):
    # zipfile's RuntimeError, NotImplementedError and zlib's error came out as tracebacks
    path = tmp_path / 'x.pth'
    path.write_bytes(stored_record('x/data.pkl', data, flags, method))
    with pytest.raises(UserError, match=f'^{re.escape(str(path))}: not a PyTorch checkpoint, or a truncated one'):
        checkpoint_load(str(path))


def test_a_checkpoint_whose_bytes_changed_is_named_damaged_not_loaded(tmp_path):
    # A disk or a copy that changed a weight's bytes: torch.load took them as they were, and the
    # model answered NaN (4 bytes of 0x7f are 3.4e38) or wrongly with no sign of it.
    good = checkpoint_save(str(tmp_path / 'good.pth'), make_state())
    data = bytearray((tmp_path / 'good.pth').read_bytes())
    with zipfile.ZipFile(good) as archive:
        record = next(r for r in archive.infolist() if r.filename.endswith('/data/0'))
        # the record's bytes, after its local header (30 bytes, its name, torch's alignment padding)
        name_length, extra_length = struct.unpack('<HH', data[record.header_offset + 26:record.header_offset + 30])
        start = record.header_offset + 30 + name_length + extra_length
        assert archive.read(record)[:4] == data[start:start + 4]
    data[start:start + 4] = b'\x7f' * 4
    (tmp_path / 'changed.pth').write_bytes(data)
    with pytest.raises(UserError, match=f'^{re.escape(str(tmp_path / "changed.pth"))}: damaged: archive/data/0 '
                                        'in it does not match the checksum or the name torch.save wrote with it '):
        checkpoint_load(str(tmp_path / 'changed.pth'))
    # one saved without checksums (torch.serialization.set_crc32_options(False)) loads as before
    torch.serialization.set_crc32_options(False)
    try:
        unchecked = checkpoint_save(str(tmp_path / 'unchecked.pth'), make_state())
    finally:
        torch.serialization.set_crc32_options(True)
    with zipfile.ZipFile(unchecked) as archive:
        assert {record.CRC for record in archive.infolist()} == {0}
    assert checkpoint_load(unchecked)['epoch'] == 1


@pytest.mark.parametrize('content', [{'something': [1, 2]}, {0: torch.zeros(1)},
                                     {'conv.weight': torch.zeros(1), 1: torch.zeros(1)}])
def test_a_checkpoint_of_other_tensors_is_not_a_checkpoint(tmp_path, content):
    # A dict of tensors under numbers is no state_dict: load_state_dict failed on it with an AttributeError
    path = tmp_path / 'x.pth'
    torch.save(content, path)
    with pytest.raises(UserError, match='not a checkpoint written by train.py'):
        checkpoint_load(str(path))


@pytest.mark.parametrize('change, problem', [
    ({'attributes': {'gender_labels': ['Men', 'Women']}}, 'its "attributes" are not three lists of label names'),
    ({'attributes': [['Men', 'Women']]}, 'its "attributes" are not three lists'),
    ({'attributes': dict(VOCAB, color=['Black', 2])}, 'its "attributes" are not three lists'),
    ({'attributes': dict(VOCAB, color=['Blue', 'Black'])}, 'its label names are not each sorted and once'),
    # a class named twice: the weights of two outputs under one name, one never predicted by it
    ({'attributes': dict(VOCAB, color=['Black', 'Black', 'Blue'])}, 'its label names are not each sorted and once'),
    ({'attributes': dict(VOCAB, color=[])}, 'a head of it has no labels'),
    ({'model': torch.zeros(3)}, 'its "model" is not a state_dict of tensors'),
    ({'model': {}}, 'its "model" is not a state_dict of tensors'),
    ({'args': ['--lr', '0.1']}, 'its "args" are not a dict of settings, or its "epoch" not a number'),
    ({'epoch': 'last'}, 'its "args" are not a dict of settings, or its "epoch" not a number'),
    ({'epoch': True}, 'its "args" are not a dict of settings, or its "epoch" not a number'),  # printed "(epoch True)"
    # the settings test.py reads: a TypeError from inside it, or bf17 run as fp32 without a word
    ({'args': {'val_csv': 123}}, 'its setting "val_csv" is 123, not a path'),
    ({'args': {'workdir': ['/tmp']}}, "its setting \"workdir\" is ['/tmp'], not a path"),
    ({'args': {'precision': 'bf17'}}, 'its setting "precision" is \'bf17\', not one of auto, fp32, bf16'),
    ({'args': {'batch_size': '16'}}, 'its setting "batch_size" is \'16\', not a whole number above 0'),
    ({'args': {'batch_size': 0}}, 'its setting "batch_size" is 0, not a whole number above 0'),
    ({'precision': 'auto'}, 'its "precision" is \'auto\', not fp32 or bf16'),  # the one it validated in
    # nothing loads them: a NotImplementedError of 117 lines, or "Tensor on device meta"
    ({'model': {'color.1.bias': torch.zeros(2).to_sparse()}}, 'its weight color.1.bias is not a dense tensor of numbers'),
    ({'model': {'color.1.bias': torch.zeros(2, device='meta')}}, 'its weight color.1.bias is not a dense tensor'),
    ({'model': {'color.1.bias': torch.zeros(2, dtype=torch.complex64)}},
     'its weight color.1.bias is of torch.complex64, where the model keeps floating-point numbers'),
    ({'model': {'color.1.bias': torch.zeros(2, dtype=torch.int64)}}, 'its weight color.1.bias is of torch.int64'),
    ({'model': {'base_model.0.1.num_batches_tracked': torch.tensor(1.5)}},
     'its weight base_model.0.1.num_batches_tracked is of torch.float32, where the model keeps a count'),
    ({'attributes': dict(VOCAB, color=['Bl\nue', 'Black'])}, 'a label name of it is empty or holds a line break'),
    ({'attributes': dict(VOCAB, color=['', 'Black'])}, 'a label name of it is empty or holds a line break'),
    ({'format': 'timm/1'}, "its \"format\" is 'timm/1', not 'fashion-multi-output/1'"),
    ({'format': 'fashion-multi-output/0'}, "its \"format\" is 'fashion-multi-output/0'"),
    ({'format': 2}, "its \"format\" is 2"),
])
def test_a_dict_of_other_contents_under_a_checkpoints_keys_is_one_line_not_a_traceback(tmp_path, change,
                                                                                      problem):
    # A fork of the tutorial that saves a dict of its own: test.py and predict.py failed with a
    # KeyError or TypeError from inside; one in another order of labels would have mislabelled.
    path = tmp_path / 'fork.pth'
    torch.save(dict(make_state(), **change), path)
    with pytest.raises(UserError, match=f'^{re.escape(str(path))}: not a checkpoint written by train.py '
                                        f'\\({re.escape(problem)}'):
        model_from_checkpoint(str(path))


@pytest.mark.parametrize('later_keys', [False, True])
def test_a_checkpoint_of_a_newer_format_says_to_update_the_code(tmp_path, later_keys):
    # whatever a later format keeps, and under whatever keys: named as what it is, not as not ours
    path = tmp_path / 'new.pth'
    state = {'weights': make_state()['model'], 'labels': VOCAB} if later_keys else make_state()
    torch.save(dict(state, format='fashion-multi-output/12'), path)
    with pytest.raises(UserError, match=f'^{re.escape(str(path))}: written by a newer version of this project '
                                        r'\(its format is fashion-multi-output/12; this code reads '
                                        r'fashion-multi-output/1\): update the code \(git pull\) to load it$'):
        model_from_checkpoint(str(path))


def test_a_checkpoint_saved_here_holds_the_format_it_is_read_in(tmp_path):
    path = checkpoint_save(str(tmp_path / 'last.pth'), make_state())
    assert torch.load(path, weights_only=True)['format'] == checkpoint.FORMAT == 'fashion-multi-output/1'
    assert checkpoint_load(path)['format'] == checkpoint.FORMAT


def test_a_checkpoint_with_other_class_counts_is_refused_clearly(tmp_path):
    state = make_state()
    state['attributes'] = dict(VOCAB, color=['Black', 'Blue', 'Red'])  # 3 colours, weights for 2
    path = checkpoint_save(str(tmp_path / 'x.pth'), state)
    # Not "does not match the model (2 gender, 3 article and 3 colour classes)": made to the names
    with pytest.raises(UserError, match=r'x.pth: not a checkpoint written by train.py \(its label names and its '
                                        r'weights disagree: 3 colour labels for 2 classes\)$'):
        model_from_checkpoint(path)
    narrow = make_state()
    narrow['model']['base_model.0.0.weight'] = torch.zeros(16, 3, 3, 3)  # a narrower trunk's
    path = checkpoint_save(str(tmp_path / 'x.pth'), narrow)
    # The weights named, a few of each kind: torch's message named all, cut off at 300 characters
    with pytest.raises(UserError, match=r'x.pth: does not match the model \(2 gender, 3 article and 2 colour '
                                        r'classes\): 1 weight of another shape \(base_model.0.0.weight '
                                        r'\[16, 3, 3, 3\] for \[32, 3, 3, 3\]\)$'):
        model_from_checkpoint(path)
    del state['model']['gender.1.weight']
    state['model']['fc.bias'] = torch.zeros(3)
    state['attributes'] = VOCAB
    path = checkpoint_save(str(tmp_path / 'x.pth'), state)
    with pytest.raises(UserError, match=r"classes\): 1 weight of the model missing \(gender.1.weight\); 1 weight not "
                                        r"the model's \(fc.bias\)$"):
        model_from_checkpoint(path)


def test_another_networks_state_dict_is_named_so_not_sent_for_its_label_names(tmp_path):
    # A ResNet's weights were taken for the tutorial's bare state_dict: "pass --attributes_file",
    # then a 395-character line of torch's, cut off in a weight's name.
    import torchvision
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / 'resnet.pth')
    with pytest.raises(UserError, match=r'^\S*resnet.pth: a state_dict of another network, not this model: it has none '
                                        r'of the heads gender.1.bias, article.1.bias, color.1.bias \(its weights: '
                                        r'conv1.weight, bn1.weight, bn1.bias, ...\)$'):
        model_from_checkpoint(str(tmp_path / 'resnet.pth'), attributes_file=None)


@pytest.mark.parametrize('value, kind', [(float('inf'), 'inf'), (float('nan'), 'nan')])
def test_a_checkpoint_whose_weights_diverged_is_refused_by_name(tmp_path, value, kind):
    state = make_state()
    name = 'base_model.4.conv.0.1.running_var'  # where a too high learning rate showed it first
    state['model'][name][3] = value
    state['scheduler'] = {}  # all that --resume asks for
    path = checkpoint_save(str(tmp_path / 'x.pth'), state)
    for load in (model_from_checkpoint, checkpoint.resumable_load):  # the latter before a run loads its pictures
        with pytest.raises(UserError, match=f'x.pth: its weights hold {kind} \\({re.escape(name)}\\); the run '
                                            'that wrote it diverged. Use one of its earlier checkpoints'):
            load(path)


def test_a_bare_state_dict_of_weights_no_model_loads_is_refused_in_one_line(tmp_path):
    weights = MultiOutputModel(n_color_classes=2, n_gender_classes=2, n_article_classes=3).state_dict()
    weights['color.1.bias'] = weights['color.1.bias'].to_sparse()  # a NotImplementedError of 117 lines
    torch.save(weights, tmp_path / 'bare.pth')
    with pytest.raises(UserError, match=r'bare.pth: not a state_dict of the model \(its weight color.1.bias is not a '
                                        r'dense tensor of numbers \(torch.sparse_coo, on cpu\)\)$'):
        model_from_checkpoint(str(tmp_path / 'bare.pth'), attributes_file=None)


@pytest.mark.parametrize('below', [1e-6, 2.0])
def test_a_checkpoint_with_a_variance_below_0_is_refused(tmp_path, below):
    # Every answer was NaN: "Women nan%  Sunglasses nan%  Pink nan%", and test.py scored them
    state = make_state()
    name = 'base_model.0.1.running_var'
    state['model'][name][5] = -below  # one channel's, a little or well below 0
    state['scheduler'] = {}
    path = checkpoint_save(str(tmp_path / 'x.pth'), state)
    for load in (model_from_checkpoint, checkpoint.resumable_load):
        with pytest.raises(UserError, match=f'x.pth: its weights are not as any training leaves them '
                                            rf'\({re.escape(name)} is below 0, a variance\)'):
            load(path)


@pytest.mark.parametrize('history', [[{}], [{'epoch': 1}], [{'epoch': 1, 'train_loss': 'low'}],
                                     [{'epoch': 1, 'train_loss': 1.0, 'train_gender_accuracy': 0.5}],
                                     # a validated epoch's loss without its accuracies, which the curves draw
                                     [{'epoch': 1, 'train_loss': 1.0, 'train_gender_accuracy': 0.5,
                                       'train_article_accuracy': 0.5, 'train_color_accuracy': 0.5, 'val_loss': 1.2}]])
def test_a_history_without_the_figures_of_its_epochs_cannot_be_resumed(tmp_path, history):
    # The run trained an epoch, and then its curves stopped it with a KeyError in the saving thread
    state = dict(make_state(), history=history, scheduler={})
    path = checkpoint_save(str(tmp_path / 'x.pth'), state)
    with pytest.raises(UserError, match='its "history" is not a list of the epochs\' figures'):
        checkpoint.resumable_load(path)


@pytest.mark.parametrize('epochs,problem', [
    ([1, 2, 2], 'holds epoch 2 where epoch 3 should be'), ([2, 1, 3], 'holds epoch 2 where epoch 1 should be'),
    ([1, 2, 3, 4], 'holds the figures of 4 epochs, and its "epoch" says 3 are done'),
    ([], 'holds the figures of 0 epochs, and its "epoch" says 3 are done')])
def test_a_history_that_skips_or_repeats_epochs_cannot_be_resumed(tmp_path, epochs, problem):
    state = dict(make_state(3), history=[epoch_row(epoch) for epoch in epochs], scheduler={})
    path = checkpoint_save(str(tmp_path / 'x.pth'), state)
    with pytest.raises(UserError, match=f'^{re.escape(path)}: not a checkpoint written by train.py '
                                        f'\\(its "history" {re.escape(problem)}\\); cannot resume from it$'):
        checkpoint.resumable_load(path)
    assert checkpoint.resumable_load(checkpoint_save(path, dict(make_state(3), scheduler={})))['epoch'] == 3


def test_the_first_non_finite_tensor_is_named_and_integers_are_passed_over():
    weights = {'a': torch.zeros(3), 'steps': torch.tensor(7), 'b': torch.tensor([1.0, float('-inf')]),
               'c': torch.tensor([float('nan')])}
    assert checkpoint.non_finite_weight(weights) == ('b', 'inf')
    assert checkpoint.non_finite_weight({'a': torch.zeros(3), 'steps': torch.tensor(7)}) is None
    assert checkpoint.non_finite_weight({}) is None


def test_resuming_with_another_vocabulary_is_refused(tmp_path):
    attributes = AttributesDataset(vocab=dict(VOCAB, article=['Shirts', 'Tshirts']))
    with pytest.raises(UserError, match='trained with 3 article classes, and the attributes file gives 2; '
                                        'not in it: Watches; use'):
        checkpoint.check_same_vocab(attributes, make_state(), 'x.pth')


def test_the_original_tutorials_bare_state_dict_needs_the_attributes_file(tmp_path):
    path = tmp_path / 'tutorial.pth'
    torch.save(make_state()['model'], path)
    with pytest.raises(UserError, match='--attributes_file'):
        model_from_checkpoint(str(path))


STYLES = '''id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName
1,Men,Apparel,Topwear,Shirts,Black,Summer,2012,Casual,A shirt
2,Women,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,A t-shirt, with a comma
3,Men,Accessories,Watches,Watches,NA,Winter,2016,Casual,A watch
4,Men,Accessories,Watches,Watches,Black,Winter,2016,Casual,Another watch
'''


@pytest.mark.parametrize('colours', [['Black', 'NA', 'Red'], ['Black', 'Red']])
def test_a_bare_state_dict_gets_the_vocabulary_its_weights_were_trained_with(tmp_path, colours):
    # The tutorial's classes come from every row, 'NA' too: 'Red' is colour 2 there, 1 in ours.
    (tmp_path / 'styles.csv').write_text(STYLES)
    path = tmp_path / 'bare.pth'
    torch.save(MultiOutputModel(n_color_classes=len(colours), n_gender_classes=2, n_article_classes=3).state_dict(),
               path)
    _, attributes, _ = model_from_checkpoint(str(path), str(tmp_path / 'styles.csv'))
    assert attributes.color_labels == colours and attributes.article_labels == ['Shirts', 'Tshirts', 'Watches']


def test_a_bare_state_dict_of_other_numbers_of_classes_than_the_styles_csv_gives_names_the_styles_csv(tmp_path):
    # "does not match the model (2 gender, 3 article and 2 colour classes)", it said: the model
    # was made to the styles.csv, and the weights were of another
    (tmp_path / 'styles.csv').write_text(STYLES)
    path = tmp_path / 'bare.pth'
    torch.save(MultiOutputModel(n_color_classes=4, n_gender_classes=2, n_article_classes=3).state_dict(), path)
    with pytest.raises(UserError, match=f'^{re.escape(str(path))}: its weights have 2 gender, 3 article and 4 colour '
                                        f'classes, but {re.escape(str(tmp_path / "styles.csv"))} gives 2 gender, 3 '
                                        r"article and 2 colour classes \(2 gender, 3 article and 3 colour classes "
                                        r"read the tutorial's way\): not the styles.csv they were trained on\?$"):
        model_from_checkpoint(str(path), str(tmp_path / 'styles.csv'))


@pytest.mark.parametrize('prefix', ['module.', '_orig_mod.', 'module._orig_mod.'])
def test_a_bare_state_dict_of_a_wrapped_model_loads_under_the_models_own_names(tmp_path, prefix):
    # nn.DataParallel and DDP save their model's weights as module.*, torch.compile as _orig_mod.*
    (tmp_path / 'styles.csv').write_text(STYLES)
    weights = MultiOutputModel(n_color_classes=2, n_gender_classes=2, n_article_classes=3).state_dict()
    torch.save({prefix + name: tensor for name, tensor in weights.items()}, tmp_path / 'wrapped.pth')
    model, _, _ = model_from_checkpoint(str(tmp_path / 'wrapped.pth'), str(tmp_path / 'styles.csv'))
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in weights.items())


@pytest.mark.parametrize('prefix', ['module.', '_orig_mod.'])
def test_a_full_checkpoint_of_a_wrapped_model_loads_as_its_bare_state_dict_does(tmp_path, prefix):
    # a fork of this project that trains through nn.DataParallel: refused, 318 weights missing
    state = make_state()
    torch.save(dict(state, model={prefix + name: tensor for name, tensor in state['model'].items()}),
               tmp_path / 'wrapped.pth')
    model, attributes, _ = model_from_checkpoint(str(tmp_path / 'wrapped.pth'))
    assert attributes.to_dict() == VOCAB
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in state['model'].items())


def test_an_export_its_label_file_or_a_picture_given_for_a_checkpoint_is_named_as_what_it_is(tmp_path):
    # torch.load said "not a PyTorch checkpoint (Unsupported operand 8)", 123 and 255 for these three
    from PIL import Image

    from export_onnx import sidecar
    onnx = tmp_path / 'model.onnx'
    onnx.write_bytes(b'\x08\x08\x12\x07pytorch\x1a\x052.7.0')  # the start of an export: ir_version, producer
    labels = tmp_path / 'model.json'
    labels.write_text(json.dumps(sidecar(AttributesDataset(vocab=VOCAB), str(onnx))))
    Image.new('RGB', (60, 80)).save(tmp_path / 'shirt.jpg')
    renamed = tmp_path / 'model.pt'  # by its bytes, whatever its name ("Unsupported operand 8" for a .pt)
    renamed.write_bytes(onnx.read_bytes())
    empty_zip = tmp_path / 'empty.pth'  # "Unsupported operand 80"
    zipfile.ZipFile(empty_zip, 'w').close()
    for path, said in [(onnx, 'an ONNX model, not a PyTorch checkpoint: give the .pth it was exported from'),
                       (renamed, 'an ONNX model, not a PyTorch checkpoint: give the .pth it was exported from'),
                       (empty_zip, 'a zip archive, but not one torch.save wrote'),
                       (labels, 'the label file of an exported ONNX model, not a PyTorch checkpoint'),
                       (tmp_path / 'shirt.jpg', "a JPEG picture, not a checkpoint: give a run's best.pth or last.pth")]:
        with pytest.raises(UserError, match=f'^{re.escape(f"{path}: {said}")}'):
            checkpoint_load(str(path))
    # torch.jit.save's: "refused: it holds Python objects that could run code", below a warning of
    # torch's that it was handed to torch.jit.load (with weights_only, it is not)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch.jit's own, that it is deprecated
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 3)), str(tmp_path / 'scripted.pt'))
    with warnings.catch_warnings(record=True) as warned, pytest.raises(UserError, match=re.escape(
            "scripted.pt: a TorchScript model (torch.jit.save's), not a checkpoint: give the .pth it was made from")):
        warnings.simplefilter('always')
        checkpoint_load(str(tmp_path / 'scripted.pt'))
    assert [str(warning.message) for warning in warned] == []
    other = tmp_path / 'other.json'  # JSON of another kind: no label file
    other.write_text('{"format": "something else"}')
    with pytest.raises(UserError, match=re.escape('other.json: a text file, not a checkpoint (it reads '
                                                  '\'{"format": "something else"}\')')):
        checkpoint_load(str(other))
    deep = tmp_path / 'deep.pth'  # deeper than Python's stack: json's RecursionError; its line cut short
    deep.write_text('{"a": ' * 100_000)
    with pytest.raises(UserError, match=re.escape(f'deep.pth: a text file, not a checkpoint (it reads '
                                                  f'{deep.read_text()[:77] + "..."!r})')):
        checkpoint_load(str(deep))
    cut = tmp_path / 'cut.onnx'  # a checkpoint cut short, or an empty file, whatever its name
    checkpoint_save(str(cut), make_state())
    for data, said in ((cut.read_bytes()[:1000], 'cut short'), (b'', r'empty \(0 bytes\)')):
        cut.write_bytes(data)
        with pytest.raises(UserError, match=f'cut.onnx: {said}'):
            checkpoint_load(str(cut))
    saved_again = tmp_path / 'labels.pth'  # the label file as Notepad saves it, with a byte-order mark
    saved_again.write_bytes(b'\xef\xbb\xbf' + labels.read_bytes())
    with pytest.raises(UserError, match='labels.pth: the label file of an exported ONNX model'):
        checkpoint_load(str(saved_again))


@pytest.mark.skipif(not os.environ.get('FASHION_DATA'), reason='FASHION_DATA names no real dataset')
def test_the_tutorials_checkpoint_of_the_real_catalog_loads_with_its_47_colours(tmp_path):
    path = tmp_path / 'checkpoint-000050.pth'
    torch.save(MultiOutputModel(n_color_classes=47, n_gender_classes=5, n_article_classes=143).state_dict(), path)
    _, attributes, _ = model_from_checkpoint(str(path), os.path.join(os.environ['FASHION_DATA'], 'styles.csv'))
    assert len(attributes.color_labels) == 47 and attributes.color_labels[25] == 'NA'


@pytest.mark.parametrize('key', ['model_state_dict', 'state_dict', 'model'])
def test_a_forks_checkpoint_of_the_weights_under_a_key_of_its_own_loads_as_a_bare_state_dict(tmp_path, key):
    # PyTorch's recipe for a checkpoint: "not a checkpoint written by train.py (no model weights and
    # label vocabularies in it)", it said, of weights that were there
    path = tmp_path / 'fork.pth'
    weights = {f'module.{name}': tensor for name, tensor in make_state()['model'].items()}  # nn.DataParallel's
    torch.save({key: weights, 'optimizer_state_dict': {'state': {}}, 'epoch': 3}, path)
    with pytest.raises(UserError, match=f'^{re.escape(str(path))}: a fork\'s checkpoint, its weights under "{key}", '
                                        'without label names; pass --attributes_file'):
        model_from_checkpoint(str(path))
    with pytest.raises(UserError, match=f'cannot resume from it: a fork\'s checkpoint, its weights under "{key}", '
                                        'without the label names, optimizer state, schedule and history that train.py '
                                        'saves'):
        checkpoint.resumable_load(str(path))
    (tmp_path / 'styles.csv').write_text(STYLES)
    model, attributes, _ = model_from_checkpoint(str(path), str(tmp_path / 'styles.csv'))
    assert attributes.color_labels == ['Black', 'Red'] and attributes.article_labels == ['Shirts', 'Tshirts', 'Watches']
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in make_state()['model'].items())
    torch.save({key: {'conv1.weight': torch.zeros(1)}}, path)  # another network's: named as such
    with pytest.raises(UserError, match='a state_dict of another network, not this model'):
        model_from_checkpoint(str(path))


def test_the_original_tutorials_bare_state_dict_cannot_be_resumed(tmp_path):
    path = tmp_path / 'tutorial.pth'
    torch.save(make_state()['model'], path)
    with pytest.raises(UserError, match=r'tutorial.pth: cannot resume from it: a bare state_dict \(the original '
                                        r'tutorial saved one\), without label names, epoch, optimizer, scheduler, '
                                        r'history, best\. Resume from a last.pth'):
        checkpoint.resumable_load(str(path))
    written = checkpoint_save(str(tmp_path / 'last.pth'), dict(make_state(3), scheduler={'last_epoch': 3}))
    assert checkpoint.resumable_load(written)['epoch'] == 3
    no_settings = checkpoint_save(str(tmp_path / 'made.pth'), dict(make_state(3), scheduler={}, args=None))
    # Made by hand: train.py's need them. Its label names are in it: no tutorial's, no --attributes_file
    with pytest.raises(UserError, match=r'cannot resume from it: it holds the .* label names but no args, which a '
                                        r'last.pth of train.py holds. Resume from one; test.py and predict.py still '
                                        r'take this file$'):
        checkpoint.resumable_load(no_settings)


def test_a_checkpoint_whose_label_names_are_none_is_named_so_not_a_bare_state_dict(tmp_path):
    # "a bare state_dict (the original tutorial saved one), without label names", it said of train.py's
    # dict with its "attributes" None
    path = checkpoint_save(str(tmp_path / 'last.pth'), dict(make_state(), attributes=None))
    with pytest.raises(UserError) as error:
        model_from_checkpoint(path)
    assert str(error.value) == (f'{path}: a checkpoint whose "attributes" is None, without label names; pass '
                                '--attributes_file with the styles.csv it was trained on')
    with pytest.raises(UserError) as error:
        checkpoint.resumable_load(path)
    assert str(error.value) == (f'{path}: cannot resume from it: a checkpoint whose "attributes" is None, without '
                                'label names, scheduler. Resume from a last.pth written by train.py; test.py and '
                                'predict.py still take this file, with --attributes_file')
    whole = checkpoint_save(path, dict(make_state(), attributes=None, scheduler={'last_epoch': 1}))
    with pytest.raises(UserError, match=r'cannot resume from it: a checkpoint whose "attributes" is None, without '
                                        r'label names\. Resume from'):  # nothing else missing
        checkpoint.resumable_load(whole)


def test_a_checkpoint_the_system_will_not_let_us_read_is_named_as_such(tmp_path, monkeypatch):
    # chmod 000, pretended: the tests may run as root, who reads anyway.
    path = checkpoint_save(str(tmp_path / 'last.pth'), make_state())

    def refuse(f, *args, **kwargs):
        raise PermissionError(13, 'Permission denied', f)

    monkeypatch.setattr(checkpoint, 'open', refuse, raising=False)  # before the builtin, in its module
    with pytest.raises(UserError, match=r'last.pth: could not read it \(Permission denied\)$'):
        checkpoint_load(path)


def test_a_file_larger_than_memory_given_as_a_checkpoint_is_named_by_its_size(tmp_path, monkeypatch):
    # A disk image given by mistake: "out of memory: MemoryError; a smaller --batch-size needs less", it said
    path = tmp_path / 'disk.img'
    with open(path, 'wb') as f:
        f.truncate(60 * 2**30)  # sparse: takes no room on the disk

    class Unreadable(io.BytesIO):
        def read(self, *args):
            raise MemoryError  # as f.read() of 60 GiB does on a machine of less

    monkeypatch.setattr(checkpoint, 'open', lambda *args: Unreadable(), raising=False)
    with pytest.raises(UserError, match=r"disk.img: 60.0 GiB, more than this machine's memory holds: no checkpoint "
                                        r"of this model \(about 27 MB"):
        checkpoint_load(str(path))


def test_a_runs_relative_path_names_from_elsewhere_the_file_it_named_where_the_run_was(tmp_path, monkeypatch):
    # proj/fpi is a link to data/fpi: from proj, fpi/../train.csv is data/train.csv, as the system
    # follows it, not proj/train.csv, as the text would say.
    (tmp_path / 'data' / 'fpi').mkdir(parents=True)
    (tmp_path / 'proj').mkdir()
    (tmp_path / 'elsewhere').mkdir()
    (tmp_path / 'proj' / 'fpi').symlink_to(tmp_path / 'data' / 'fpi')
    (tmp_path / 'data' / 'train.csv').write_text('the run\'s split')
    (tmp_path / 'proj' / 'train.csv').write_text('another split')
    saved = {'train_csv': 'fpi/../train.csv', 'val_csv': './val.csv', 'workdir': str(tmp_path / 'proj')}
    monkeypatch.chdir(tmp_path / 'elsewhere')
    path, gone = path_as_trained(saved, 'train_csv')
    assert open(path).read() == 'the run\'s split' and gone is None
    # nothing there: where the run had it, for the message that names it
    assert path_as_trained(saved, 'val_csv') == (str(tmp_path / 'proj' / 'val.csv'), None)
    monkeypatch.chdir(tmp_path / 'proj')  # from the run's own folder: the name as given
    assert path_as_trained(saved, 'train_csv') == ('fpi/../train.csv', None)


def test_resuming_with_other_class_names_of_the_same_count_is_refused():
    from checkpoint import check_same_vocab
    renamed = AttributesDataset(vocab=dict(VOCAB, color=['Black', 'Red']))  # 2 colours, not the same ones
    with pytest.raises(UserError, match='^x.pth: trained with 2 color classes, and the attributes file gives 2; '
                                        'not in it: Blue; new in it: Red; use the same styles.csv'):
        check_same_vocab(renamed, {'attributes': VOCAB}, 'x.pth')


def test_a_dict_of_some_tensors_and_other_things_is_not_a_bare_state_dict(tmp_path):
    path = tmp_path / 'x.pth'
    torch.save({'color.1.bias': torch.zeros(2), 'epoch': 3}, path)
    with pytest.raises(UserError, match='not a checkpoint written by train.py'):
        checkpoint_load(str(path))


def test_a_run_records_the_precision_it_validated_in(one_epoch_run):
    # test.py scores in it on any device: without it, a CPU run scored on a GPU took the GPU's bf16.
    assert checkpoint_load(os.path.join(one_epoch_run, 'last.pth'))['precision'] == 'fp32'


def test_a_variance_of_exactly_0_is_one_training_leaves_and_loads(tmp_path):
    # A channel whose output never varies (its input channels all dead, or its weights decayed to 0):
    # its running variance shrinks by the momentum each step, and reaches 0.0 in float32 after about
    # a thousand. Such a checkpoint is sound (the batch norm adds its eps) and must load.
    state = make_state()
    state['model']['base_model.0.1.running_var'][5] = 0.0
    state['scheduler'] = {}
    path = checkpoint_save(str(tmp_path / 'x.pth'), state)
    model, _, _ = model_from_checkpoint(path)
    assert model.state_dict()['base_model.0.1.running_var'][5] == 0.0
    checkpoint.resumable_load(path)


def test_a_checkpoint_of_no_epoch_done_cannot_be_resumed(tmp_path):
    # "epoch" counts the epochs done; train.py writes its first checkpoint after epoch 1. One of 0
    # (edited, or another program's) would resume into an epoch 1 the history has no place for.
    state = dict(make_state(), epoch=0, scheduler={})
    path = checkpoint_save(str(tmp_path / 'x.pth'), state)
    with pytest.raises(UserError, match=r'x.pth: not a checkpoint written by train.py \(its "epoch" is 0, not a '
                                        r'number of epochs done\); cannot resume from it'):
        checkpoint.resumable_load(path)


def test_a_damaged_record_after_an_empty_one_is_still_named_damaged(tmp_path):
    # An empty tensor's record holds no bytes, and its checksum is 0, as in a checkpoint saved without
    # checksums: it is passed over, but the records after it are checked all the same.
    state = {'empty': torch.zeros(0), **make_state()}  # pickled first: its record is data/0
    good = checkpoint_save(str(tmp_path / 'good.pth'), state)
    data = bytearray((tmp_path / 'good.pth').read_bytes())
    with zipfile.ZipFile(good) as archive:
        assert next(r for r in archive.infolist() if r.filename.endswith('/data/0')).CRC == 0
        record = next(r for r in archive.infolist() if r.filename.endswith('/data/1'))
        name_length, extra_length = struct.unpack('<HH', data[record.header_offset + 26:record.header_offset + 30])
        start = record.header_offset + 30 + name_length + extra_length
    data[start:start + 4] = b'\x7f' * 4
    (tmp_path / 'changed.pth').write_bytes(data)
    with pytest.raises(UserError, match='changed.pth: damaged: archive/data/1 in it does not match the checksum'):
        checkpoint_load(str(tmp_path / 'changed.pth'))
