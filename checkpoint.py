# Saving and loading checkpoints so that nothing is lost and nothing runs on load:
# written atomically (atomic.py), read with weights_only=True.
import hashlib
import io
import json
import os
import pickle
import re
import stat
import warnings
import zipfile

import torch

from atomic import absolute_path, atomic_open
from catalog import BEGINNING, ZIP_START, first_line_of_text, picture_format, text_of, zip_archive
from cli import NOT_A_REGULAR_FILE, UserError, counted, first_few, reach_problem
from dataset import HEADS, AttributesDataset, tutorial_vocab
from model import MultiOutputModel
from pickle_scan import (found_here, harmless_builtins, holds_record, pickle_in, pickle_protocol, pickled_code,
                         saved_by_old_torch, saved_by_torch)
from split_data import kept_splits, pictures_digest, rows_digest

FORMAT = 'fashion-multi-output/1'


def checkpoint_save(path, state):
    """Write state atomically: a kill or a full disk mid-write leaves the previous file intact."""
    os.makedirs(os.path.dirname(absolute_path(path)), exist_ok=True)
    # Serialised in memory first (28 MiB for the real model), then written in one go: a write that
    # fails inside torch.save's own writer (a full disk) comes out as a RuntimeError about zip
    # offsets, and only the OSError below names the file and the reason.
    data = io.BytesIO()
    torch.save(dict(state, format=FORMAT), data)
    try:
        with atomic_open(path, 'wb') as f:
            f.write(data.getbuffer())
    except OSError as error:
        raise UserError(f'could not save checkpoint {path}: {error.strerror or error}; '
                        'the previous checkpoint there, if any, is kept') from error
    return path


def first_sentence(text):
    # torch.load's messages go on with advice for the code that called it (add_safe_globals, a
    # corrupted file's possible causes): cut off at a length, they stopped mid-sentence.
    text = re.sub(r':\s*\n\s*', ': ', text.strip())  # a line that ends in a colon introduces the next
    sentence = re.split(r'(?<=\.)\s|\n', text, maxsplit=1)[0].rstrip('.')
    if len(sentence) > 300:  # no sentence ends in sight
        sentence = sentence[:300].rsplit(' ', 1)[0] + ' ...'
    return sentence


def unpickler_reason(error):
    """What torch.load's weights_only unpickler met (a blocked GLOBAL, an unsupported opcode),
    picked out of the paragraphs of advice around it in its message."""
    text = str(error).split('WeightsUnpickler error:')[-1]
    advice = ('Weights only load failed', 'Please file an issue', 'Check the documentation')
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = [line for line in lines if not line.startswith(advice)]
    return first_sentence((found or lines or [''])[0]) or type(error).__name__


def check_checkpoint_file(path):
    """That path names a file to load: before any other work (test.py's default --output is
    beside it), and named as what it is where it does not."""
    if not path:
        raise UserError("'': an empty name for a checkpoint file; give its path, such as checkpoints/RUN/last.pth")
    problem = reach_problem(path, nothing='no such checkpoint file')  # isfile's False hides why
    if problem is not None:
        raise UserError(f'{path}: {problem}')
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):  # a run's folder, say
        found = [name for name in ('last.pth', 'best.pth') if os.path.isfile(os.path.join(path, name))]
        raise UserError(f'{path}: a folder, not a checkpoint file'
                        + (f'; give one of its checkpoints, such as {os.path.join(path, found[0])}' if found else ''))
    if not stat.S_ISREG(mode):
        raise UserError(f'{path}: {NOT_A_REGULAR_FILE}: torch.load needs one')


def checkpoint_load(path):
    """The checkpoint's dict, loaded on the CPU. Pickled code in the file is refused, not run."""
    check_checkpoint_file(path)
    check_not_long_text(path)
    data = read_whole(path)  # once: the bytes checked are the bytes loaded
    damaged = damaged_entry(data)
    if damaged is not None:
        raise UserError(f'{path}: damaged: {damaged} in it does not match the checksum or the name torch.save wrote '
                        'with it (a disk or a copy changed its bytes); use another checkpoint of the run')
    try:
        with warnings.catch_warnings():
            # A plain pickle file (not torch.save's) draws a warning about its pickle protocol,
            # which would stand above the one-line error below.
            warnings.filterwarnings('ignore', message='Detected pickle protocol')
            # A sparse tensor (refused below: no model has one) draws one about checking it.
            warnings.filterwarnings('ignore', message='Validating sparse tensor invariants')
            # A TorchScript model (named below) draws one that says it is handed to torch.jit.load:
            # with weights_only, it is not.
            warnings.filterwarnings('ignore', message='.*looks like a TorchScript archive')
            state = torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        check_not_other_kind(path, data)
        reason = unpickler_reason(error)
        pickled = pickle_in(data)  # the archive's data.pkl read once
        whole = check_not_code_or_text(path, data, pickled, error, reason)
        if 'GLOBAL' in reason:  # one pickletools could not name: refused all the same
            refuse_code(path, reason, error)
        protocol = pickle_protocol(pickled)
        if protocol != 2 and 'Unsupported operand' in reason and whole and saved_by_torch(data):
            # Whole, without code, and its records' checksums right: torch.load's safe reader reads
            # torch.save's default protocol, 2, and not all of the others' opcodes (protocol 3's bytes)
            raise UserError(f'{path}: a checkpoint pickled with protocol {protocol or "0 or 1"} (torch.save\'s '
                            f'pickle_protocol), whose opcodes torch.load\'s safe reader does not read ({reason}); '
                            'save it again with torch.save\'s default protocol, in a Python where you trust the '
                            'file') from error
        if protocol != 2 and 'Unsupported operand' in reason and whole and saved_by_old_torch(data):
            # No checksums say it is whole: said as what it is, and what to do where it is
            raise UserError(f'{path}: a checkpoint in torch.save\'s format of before PyTorch 1.6, pickled with '
                            f'protocol {protocol or "0 or 1"}, whose opcodes torch.load\'s safe reader does not read '
                            f'({reason}); if you trust the file, load it and save it again with torch.save\'s '
                            'defaults') from error
        raise UserError(f'{path}: not a PyTorch checkpoint ({reason})') from error
    except Exception as error:  # noqa: BLE001 - the unpickler meets any bytes, and fails as it may
        # (RuntimeError, EOFError, KeyError, IndexError, ... on text, truncated or foreign files)
        check_not_other_kind(path, data)
        check_not_code_or_text(path, data, pickle_in(data), error)
        said = first_sentence(str(error))  # nothing, from an EOFError
        reason = type(error).__name__ + (f': {said}' if said else '')
        raise UserError(f'{path}: not a PyTorch checkpoint, or a truncated one ({reason})') from error
    if isinstance(state, dict) and (newer := newer_format(state.get('format'))):
        # before anything else: a later format may keep its contents under other names or meanings
        raise UserError(f'{path}: written by a newer version of this project (its format is {newer}; this code '
                        f'reads {FORMAT}): update the code (git pull) to load it')
    if isinstance(state, dict) and 'model' in state and 'attributes' in state:
        return check_contents(state, path)
    key, bare = bare_weights(state)
    if bare is not None:
        # The original tutorial saved a bare state_dict, without the label vocabularies.
        problem = weights_problem(bare)
        if problem:
            raise UserError(f'{path}: not a state_dict of the model ({problem})')
        weights = without_wrappers(bare)
        if all(size is None for size in head_sizes(weights).values()):  # a ResNet's: no label names would help
            heads = ', '.join(f'{head}.1.bias' for head in HEADS)
            raise UserError(f'{path}: a state_dict of another network, not this model: it has none of the heads '
                            f'{heads} (its weights: {first_few(list(weights))})')
        return {'model': weights, 'attributes': None, 'epoch': None, 'args': {}, 'weights_key': key, 'bare': True}
    raise UserError(f'{path}: not a checkpoint written by train.py (no model weights and '
                    'label vocabularies in it)')


# Where forks of the tutorial keep the weights, beside their optimizer's and epoch: PyTorch's
# recipe for a checkpoint names them model_state_dict.
WEIGHT_KEYS = ('model_state_dict', 'state_dict', 'model', 'net')


def bare_weights(state):
    """(None, the weights) of a bare state_dict (the tutorial's), or (the key, the weights) of a
    dict of a fork's that holds them under one of WEIGHT_KEYS, without label names either; else
    (None, None)."""
    if is_state_dict(state):
        return None, state
    key = next((key for key in WEIGHT_KEYS if is_state_dict(state.get(key))), None) if isinstance(state, dict) else None
    return key, state[key] if key else None


def is_state_dict(state):
    return isinstance(state, dict) and len(state) > 0 and all(isinstance(name, str) and torch.is_tensor(tensor)
                                                              for name, tensor in state.items())


def bare_kind(state):
    """What holds the weights of a checkpoint without label names, for a message."""
    if not state.get('bare'):  # train.py's keys, its label names None (edited, a fork's): not "a bare state_dict"
        return 'a checkpoint whose "attributes" is None'
    key = state.get('weights_key')
    return f'a fork\'s checkpoint, its weights under "{key}"' if key else 'a bare state_dict (the original tutorial ' \
        'saved one)'


RUN_CHECKPOINTS = "a run's best.pth or last.pth"


def check_not_other_kind(path, data):
    """A file the user may well give for a checkpoint, named as what it is: an export of the model,
    its label file, a picture, where torch.load's unpickler says 'Unsupported operand 8'."""
    if holds_record(data, 'constants.pkl'):  # whose classes torch.load's safe reader refuses as code
        raise UserError(f'{path}: a TorchScript model (torch.jit.save\'s), not a checkpoint: give the .pth it was '
                        f'made from ({RUN_CHECKPOINTS})')
    if path.lower().endswith('.onnx') and data.startswith(b'\x08') or re.match(rb'\x08[\x01-\x7f]\x12', data):
        # ONNX's first field, its IR version (no pickle's opcode), then the name of its producer: also renamed .pt
        raise UserError(f'{path}: an ONNX model, not a PyTorch checkpoint: give the .pth it was exported from '
                        f'({RUN_CHECKPOINTS}); onnxruntime runs the ONNX model')
    if exported_labels(data):
        raise UserError(f'{path}: the label file of an exported ONNX model, not a PyTorch checkpoint: give the .pth '
                        f'the model was exported from ({RUN_CHECKPOINTS})')
    kind = picture_format(data)
    if kind is not None:
        raise UserError(f'{path}: a {kind} picture, not a checkpoint: give {RUN_CHECKPOINTS} (with predict.py, '
                        'the pictures come after its flags)')
    if other_archive(data):  # torch.save's own files are zip archives too; an empty one, the unpickler's operand 80
        raise UserError(f'{path}: a zip archive, but not one torch.save wrote')
    check_not_cut_short(path, data)


def check_not_cut_short(path, data):
    """A file cut short (a copy or a download that stopped) named so: torch.load's reason was its
    reader's, as far as it got, 'EOFError' of an empty file; of a checkpoint's first bytes 'Unsupported
    operand 80' (2 or 3 of them), 'not a ZIP archive' (up to 21), then 'failed finding central
    directory', or 'negative seek value -831' (4 to 68 KiB: zip's end looked for before the start)."""
    if not data:
        raise UserError(f'{path}: empty (0 bytes), not a checkpoint: a copy or a save that did not finish? '
                        f'Give {RUN_CHECKPOINTS}')
    if zip_archive(data) and not zip_end_found(data):
        raise UserError(f'{path}: cut short, or damaged at its end: it begins as a zip archive, as torch.save\'s '
                        f'checkpoints do, but its {counted(len(data), "byte")} end before the list of what it holds '
                        '(a copy or a download that stopped?); copy it again, or use another checkpoint of the run')


# A zip archive's last record, which ends the list of what it holds: within 64 KiB (the longest
# comment it may have) and 22 bytes (its own) of the end, where zipfile looks for it.
ZIP_END = b'PK\x05\x06'


def zip_end_found(data):
    """Whether data (a file's bytes) holds a zip archive's last record, whole, where zipfile looks for
    it: an archive whose directory is damaged, not missing, has one (zipfile then names what it meets)."""
    end = data.rfind(ZIP_END, max(0, len(data) - 65536 - 22))
    return end >= 0 and len(data) - end >= 22


def check_not_code_or_text(path, data, pickled, error, reason=''):
    """Whether the pickle (pickled: pickle_in's) in a file torch.load could not load (its bytes:
    data) is whole, where it holds no code and is no text; the file named where it holds code or
    is text (a split, args.json, a log given for a checkpoint: the unpickler said 'Unsupported
    operand 105'). The unpickler reads text as opcodes too ('color,count' as a GLOBAL): text that
    is no whole pickle, or whose objects name no module installed here, is named as the text it
    is. A pickle, or one cut short (what comes before its end runs all the same), may hold code the
    unpickler did not reach (protocol 0's lists and dicts, protocol 4's frames stop it first): that
    code named, as the unpickler's reason names a GLOBAL where it met one."""
    whole, code, _ = pickled_code(pickled)
    line = first_line_of_text(data)
    # Text throughout its beginning (all of a file of up to 64 KiB) whose objects name no module
    # installed here ('checkpoints' over 'logs', a .gitignore's, is heckpoints.logs) is text, also where
    # the unpickler's reason names that GLOBAL. Its beginning only: a split of 300 MB given for a
    # checkpoint, decoded whole, took 12 s and 1.5 GB to be named.
    as_text = line is not None and not any(map(found_here, set(code))) and text_of(data[:BEGINNING]) is not None
    if code and not as_text:
        check_not_only_builtins(path, code, reason, error)
        refuse_code(path, reason if 'GLOBAL' in reason else ', '.join(code[:3]), error)
    if line is not None and (not whole or as_text and (code or 'GLOBAL' in reason)):
        raise text_file(path, line)
    return whole


def check_not_long_text(path):
    """A text file longer than its beginning (a split, a log of hundreds of MB given for a
    checkpoint) named from its first 64 KiB, not read whole: a split of 300 MB took 12 s and 1.5 GB.
    Only where that beginning is text in which pickletools, reading as the unpickler does, met no
    whole pickle and no code, and stopped inside it: what follows would change nothing said of the
    file. Any other file, a pickle of protocol 0 (text) among them, is read whole and looked at below."""
    head = read_whole(path, BEGINNING + 1)
    if len(head) <= BEGINNING:  # all of it: read again whole below, 64 KiB at most
        return
    head = head[:BEGINNING]
    line = first_line_of_text(head)
    if line is None or text_of(head) is None:
        return
    whole, code, read = pickled_code(head)
    if whole or code or read >= len(head):  # where it ran to the end, the rest of the file may go on
        return
    check_not_other_kind(path, head)  # a picture written as text (XPM)
    raise text_file(path, line)


def text_file(path, line):
    return UserError(f'{path}: a text file, not a checkpoint (it reads {line!r}): give {RUN_CHECKPOINTS}')


def check_not_only_builtins(path, code, reason, error):
    """A pickle whose objects (code, pickled_code's, and the GLOBAL the unpickler's reason names)
    are all builtins that run no code (a frozenset, a range: HARMLESS_BUILTINS), which weights_only
    refuses all the same, named as what it holds: 'objects that could run code', it said, of a
    frozenset."""
    found = harmless_builtins(code + global_met(reason))
    if found is None:
        return
    kinds, names = found
    one = len(kinds) == 1
    held = ' and '.join(filter(None, [', '.join(kinds[:-1]), kinds[-1]]))  # a frozenset, a slice and a range
    raise UserError(f'{path}: not a checkpoint this project wrote: it holds {held} ({", ".join(names)}), '
                    + ('a Python builtin that runs' if one else 'Python builtins that run') + ' no code but that '
                    'torch.load\'s weights_only loading does not accept. If you trust the file, load it with '
                    'weights_only=False and save it again with a list, a tuple or None in '
                    + ('its place' if one else 'their place')) from error


def global_met(reason):
    """[module.name] of the GLOBAL the unpickler's reason names (torch names a builtin without its
    module: 'GLOBAL frozenset'), or [] where it names none."""
    met = re.search(r'GLOBAL (\S+)', reason)
    return [met.group(1) if '.' in met.group(1) else f'builtins.{met.group(1)}'] if met else []


def refuse_code(path, held, error):
    raise UserError(f'{path}: refused to load: it holds Python objects that could run code '
                    f'when unpickled ({held}). Only open checkpoints you trust.') from error


def exported_labels(data):
    if not data.removeprefix(b'\xef\xbb\xbf').lstrip().startswith(b'{'):  # a BOM, Notepad's
        return False
    from export_onnx import FORMAT  # the label file's own mark; needed on this path alone
    try:
        return json.loads(data).get('format') == FORMAT
    except (ValueError, RecursionError):  # not JSON (nor UTF-8), or nested deeper than Python's stack
        return False


WRAPPER_PREFIXES = ('module.', '_orig_mod.')  # DataParallel's and DDP's; torch.compile's


def without_wrappers(weights):
    """A bare state_dict saved from a wrapped model, its names prefixed by the wrappers (a fork of
    the tutorial trained with nn.DataParallel, say), with the model's own names."""
    while True:
        prefix = next((p for p in WRAPPER_PREFIXES if all(str(name).startswith(p) for name in weights)), None)
        if prefix is None:
            return weights
        weights = {name[len(prefix):]: tensor for name, tensor in weights.items()}


def check_contents(state, path):
    """A checkpoint's dict holds what test.py, predict.py and --resume read, as train.py writes it:
    else one line here, not a KeyError deep inside them (a fork of the tutorial that saves a dict
    of its own under the same keys)."""
    weights, attributes = state['model'], state['attributes']
    heads = attributes if isinstance(attributes, dict) else {}
    if state.get('format', FORMAT) != FORMAT:  # none: a fork of the tutorial's, checked below
        problem = f'its "format" is {state["format"]!r}, not {FORMAT!r}'
    elif not (isinstance(weights, dict) and weights
            and all(isinstance(name, str) and torch.is_tensor(tensor) for name, tensor in weights.items())):
        problem = 'its "model" is not a state_dict of tensors'
    elif unloadable := weights_problem(weights):
        problem = unloadable
    elif attributes is not None and not all(
            isinstance(heads.get(head), list) and all(isinstance(label, str) for label in heads[head])
            for head in HEADS):
        problem = f'its "attributes" are not three lists of label names ({", ".join(HEADS)})'
    elif attributes is not None and not all(heads[head] for head in HEADS):
        problem = 'a head of it has no labels'
    elif attributes is not None and any(not label.strip() or set(label) & set('\r\n') for head in HEADS
                                        for label in heads[head]):
        # what no styles.csv gives (its rows are skipped, its lines one a row); in predict.py's table, a
        # line of its own
        problem = 'a label name of it is empty or holds a line break'
    elif attributes is not None and any(heads[head] != sorted(set(heads[head])) for head in HEADS):
        # AttributesDataset numbers the classes in sorted order: any other would mislabel them
        problem = 'its label names are not each sorted and once, the order of the classes train.py numbers'
    elif attributes is not None and (apart := labels_apart_from_weights(without_wrappers(weights), heads)):
        problem = apart  # edited by hand: "does not match the model", it said, which is made to the names
    elif not isinstance(state.get('args') or {}, dict) or not is_count(state.get('epoch') or 0):
        problem = 'its "args" are not a dict of settings, or its "epoch" not a number'
    elif settings := settings_problem(state.get('args') or {}):
        problem = settings
    elif state.get('precision') not in (None, *PRECISIONS[1:]):  # the one it validated in: not auto
        problem = f'its "precision" is {state["precision"]!r}, not fp32 or bf16'
    elif digests := next((key for key in ('split_digests', 'split_row_sets') if not digests_in(state.get(key))), None):
        problem = f'its "{digests}" are not digests of the split files'
    else:
        # weights saved from a wrapped model (a fork's nn.DataParallel): loaded as a bare state_dict's are
        return {**state, 'model': without_wrappers(weights)}
    raise UserError(f'{path}: not a checkpoint written by train.py ({problem})')


def newer_format(saved):
    """saved (a checkpoint's "format") where it names a later version of FORMAT, else None."""
    name, version = FORMAT.rsplit('/', 1)
    found = re.fullmatch(re.escape(name) + r'/(\d+)', saved) if isinstance(saved, str) else None
    return saved if found and int(found.group(1)) > int(version) else None


def weights_problem(weights):
    """What keeps a state_dict's tensors from loading as the model's weights, or None."""
    odd = next((name for name, tensor in weights.items() if tensor.layout != torch.strided
                or tensor.device.type != 'cpu'), None)  # sparse, or "meta": nothing loads them
    if odd:
        return f'its weight {odd} is not a dense tensor of numbers ({weights[odd].layout}, on {weights[odd].device})'
    odd = next((name for name, tensor in weights.items()
                if tensor.is_floating_point() == name.endswith('num_batches_tracked')), None)
    if odd:  # load_state_dict casts without a word: integers, booleans or complex numbers as weights
        return f'its weight {odd} is of {weights[odd].dtype}, where the model keeps ' + (
            'a count' if odd.endswith('num_batches_tracked') else 'floating-point numbers')
    return None


# train.py's --precision, saved in its checkpoints, and test.py's.
PRECISIONS = ('auto', 'fp32', 'bf16')


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int to Python


def settings_problem(saved):
    """What is wrong with the saved settings that test.py reads (the split it scores, the precision
    and batch size it scores in, the folder relative paths start from), or None: a value of another
    kind was a TypeError inside it, or an unknown precision run as fp32 without a word."""
    for key in ('train_csv', 'val_csv', 'attributes_file', 'workdir'):
        if saved.get(key) is not None and not isinstance(saved[key], str):
            return f'its setting "{key}" is {saved[key]!r}, not a path'
    if saved.get('precision', 'auto') not in PRECISIONS:
        return f'its setting "precision" is {saved["precision"]!r}, not one of {", ".join(PRECISIONS)}'
    if not (is_count(saved.get('batch_size', 1)) and saved.get('batch_size', 1) > 0):
        return f'its setting "batch_size" is {saved["batch_size"]!r}, not a whole number above 0'
    return None


def read_whole(path, size=-1):
    """The file's bytes, or its first size of them."""
    try:
        with open(path, 'rb') as f:
            return f.read(size)
    except OSError as error:  # no permission to read it, a disk error: not the file's content
        raise UserError(f'{path}: could not read it ({error.strerror or error})') from error
    except MemoryError as error:  # a disk image given by mistake: "a smaller batch needs less", it said
        raise UserError(f'{path}: {os.path.getsize(path) / 2**30:,.1f} GiB, more than this machine\'s memory '
                        'holds: no checkpoint of this model (about 27 MB, with the optimizer\'s state)') from error


def other_archive(data):
    """Whether data (a file's bytes) is a zip archive (an empty one too) that is not torch.save's."""
    try:
        return data.startswith(b'PK') and zipfile.is_zipfile(io.BytesIO(data)) and saved_by_torch(data) is False
    except Exception:  # noqa: BLE001 - zipfile fails as it may ('zipfiles that span multiple disks')
        return False


def damaged_entry(data):
    """The name of the first record of torch.save's archive in data (a file's bytes) whose bytes
    do not match the checksum saved with them, or None (also for data that is no zip archive).
    torch.load does not check them: a weight changed by a disk or a copy loads as it is, and the
    model answers NaN, or wrongly with no sign of it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - no archive, a truncated one, a damaged directory: torch.load says
        return None
    with archive:
        records = archive.infolist()
        if not data.startswith(ZIP_START) and not (records and records[0].header_offset == 0):
            return None  # an archive after other bytes (a pickle's), not one whose first bytes changed
        for record in records:
            if record.CRC == 0:  # empty, or saved without checksums (torch.serialization.set_crc32_options)
                continue
            try:
                with archive.open(record) as f:  # checks the checksum once read to the end
                    while f.read(1 << 20):
                        pass
            except Exception:  # noqa: BLE001 - its bytes, its header, its name: zipfile and zlib fail as they may
                return record.filename
    return None


RESUME_KEYS = ('epoch', 'optimizer', 'scheduler', 'history', 'best', 'args')


def resumable_load(path):
    """A checkpoint that train.py --resume can carry on from: with its optimizer, schedule and
    history, which the original tutorial's bare state_dict has none of."""
    state = checkpoint_load(path)
    missing = [key for key in RESUME_KEYS if state.get(key) is None]
    if state['attributes'] is None:  # a fork's may hold an optimizer's state and an epoch: not train.py's
        held = ', '.join(['label names'] + missing) if state.get('weights_key') is None else (
            'the label names, optimizer state, schedule and history that train.py saves')
        raise UserError(f'{path}: cannot resume from it: {bare_kind(state)}, without {held}. Resume from a last.pth '
                        'written by train.py; test.py and predict.py still take this file, with --attributes_file')
    if missing:
        raise UserError(f'{path}: cannot resume from it: it holds the model\'s weights and label names but no '
                        f'{", ".join(missing)}, which a last.pth of train.py holds. Resume from one; test.py and '
                        'predict.py still take this file')
    problem = resume_problem(state)
    if problem is not None:
        raise UserError(f'{path}: not a checkpoint written by train.py ({problem}); cannot resume from it')
    check_finite(state, path)  # before the run loads its pictures
    return state


def resume_problem(state):
    """What keeps a checkpoint's dict from being one train.py can go on from, or None: said here
    in one line, not as a ZeroDivisionError, or an AttributeError an epoch later."""
    epoch, best, history = state['epoch'], state['best'], state['history']
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        return f'its "epoch" is {epoch!r}, not a number of epochs done'
    if not (isinstance(history, list) and all(map(is_epoch_row, history))):
        return 'its "history" is not a list of the epochs\' figures'
    problem = epochs_problem([row['epoch'] for row in history], epoch)
    if problem is not None:
        return problem
    if not (isinstance(best, dict) and isinstance(best.get('epoch'), int)
            and isinstance(best.get('score'), (int, float))):
        return 'its "best" is not an epoch and its score'
    optimizer = state['optimizer']
    groups = optimizer.get('param_groups') if isinstance(optimizer, dict) else None
    moments = optimizer.get('state') if isinstance(optimizer, dict) else None
    if not (isinstance(groups, list) and groups and all(map(is_adam_group, groups)) and isinstance(moments, dict)
            and all(is_count(param) and isinstance(kept, dict) for param, kept in moments.items())):
        return 'its "optimizer" is not the state of an Adam optimizer'
    schedule = state['scheduler']
    rates = schedule.get('base_lrs', [0] * len(groups)) if isinstance(schedule, dict) else None  # one a group
    if not (isinstance(schedule, dict) and is_count(schedule.get('last_epoch', 0)) and isinstance(rates, list)
            and len(rates) == len(groups) and all(map(is_number, rates))):
        return 'its "scheduler" is not the state of a learning-rate schedule'
    return None


def epochs_problem(epochs, done):
    """Where the epochs of a checkpoint's history are not 1 to done, one row each and in order, as
    train.py keeps them, or None. metrics.csv and the curves are rewritten from it: a row skipped
    or repeated (an edited file) was lost or written twice there."""
    for row, found in enumerate(epochs, 1):
        if found != row:
            return f'its "history" holds epoch {found} where epoch {row} should be'
    if len(epochs) != done:
        return f'its "history" holds the figures of {len(epochs)} epochs, and its "epoch" says {done} are done'
    return None


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_adam_group(group):
    """Whether group is one of Adam's parameter groups: another optimizer's state loads into it,
    and its first step fails for want of betas; an edited one failed there too, or at the start."""
    return (isinstance(group, dict) and {'params', 'lr', 'betas', 'eps'} <= group.keys()
            and isinstance(group['params'], list) and all(map(is_count, group['params']))
            and (is_number(group['lr']) or torch.is_tensor(group['lr'])) and is_number(group['eps'])
            and isinstance(group['betas'], (tuple, list)) and len(group['betas']) == 2
            and all(is_number(beta) or torch.is_tensor(beta) for beta in group['betas']))


def is_epoch_row(row):
    """Whether row is one of train.py's history: the figures metrics.csv and the curves read."""
    if not (isinstance(row, dict) and is_count(row.get('epoch'))):
        return False
    needed = ['train_loss'] + [f'train_{head}_accuracy' for head in HEADS]
    if row.get('val_loss') is not None:
        needed += ['val_loss'] + [f'{head}_accuracy' for head in HEADS]
    return all(is_number(row.get(key)) for key in needed)


def path_as_trained(saved, key):
    """Where the file of a run's setting `key` (train_csv, val_csv, attributes_file) is, seen from
    here: a relative path was train.py's, from the folder it ran in (its `workdir`). Returns (path,
    gone): gone is that folder's path where it is not there but the same name is, from here (the
    project moved, or was copied to this machine), and path is then that name."""
    name, workdir = saved[key], saved.get('workdir')
    if not workdir or os.path.isabs(name) or os.path.realpath(workdir) == os.path.realpath(os.curdir):
        return name, None
    there = os.path.join(workdir, name)
    if os.pardir not in there.split(os.sep):  # by text, '..' would skip a link: the system's way kept
        there = os.path.normpath(there)
    if os.path.exists(there) or not os.path.exists(name):
        return there, None
    return name, there


def pictures_from(saved, key, path):
    """For the run's own split at path (train_csv, val_csv) found from the folder the run started in
    (path_as_trained), that folder: where a split of the tutorial's paths, which name its pictures
    from there, finds them. None (this folder) for any other file, or where the run's folder is gone.
    The file under any spelling (val.csv from its own folder, a path through a link): by name only,
    the run's own split named otherwise found none of its pictures."""
    if not saved.get(key):
        return None
    there, gone = path_as_trained(saved, key)
    return saved['workdir'] if gone is None and there != saved[key] and same_file(path, there) else None


def same_file(path, other):
    return os.path.isfile(path) and os.path.isfile(other) and os.path.samefile(path, other)


def digests_in(value):
    return value is None or (isinstance(value, dict) and all(isinstance(d, (str, type(None))) for d in value.values()))


def changed_since_the_run(state, key, path, ordered=True):
    """Whether path is the run's own train_csv or val_csv, under any spelling, and holds other rows
    than when the run began (split_data.py run again with other settings, say); ordered=False, rows
    other than in another order. A checkpoint from before split_digests has nothing to compare with."""
    if not (state.get('split_digests') or {}).get(key) or not (state.get('args') or {}).get(key):
        return False  # nothing to compare with, or no name of the run's own file (an edited checkpoint)
    own, _ = path_as_trained(state['args'], key)
    if not same_file(path, own):
        return False
    return not same_rows(state, key, path, ordered)


def same_rows(state, key, path, ordered=True):
    """Whether the file at path, under any name, holds the rows the run's train_csv or val_csv
    (key) held when it began, in the same order, or with ordered=False in any (where the checkpoint
    keeps split_row_sets: those of before 2026-12-03 do not, and are taken in order); False where
    the checkpoint does not say."""
    saved = (state.get('split_digests') or {}).get(key)
    if saved is None or not os.path.isfile(path):
        return False
    with open(path, 'rb') as f:
        data = f.read()
    in_any_order = (state.get('split_row_sets') or {}).get(key)
    # Each digest worked out only where the one before it differs: a split of 32,000 rows takes 0.1 s a reading
    if not ordered and in_any_order:
        return any(in_any_order == pictures_digest(data, ordered=False, legacy=legacy) for legacy in (False, True))
    # and the older digests: of its lines, and of the file's bytes (checkpoints of 2026-11-30)
    digests = (lambda: pictures_digest(data), lambda: pictures_digest(data, legacy=True), lambda: rows_digest(data),
               lambda: hashlib.sha256(data).hexdigest())
    return any(saved == digest() for digest in digests)


def kept_as_old(state, key, path):
    """The run's train_csv or val_csv (key) as split_data.py kept it when it wrote another split
    at path (train.old.csv, val.old.csv beside it, or an earlier train.old.N.csv, val.old.N.csv),
    where one holds the run's rows; else None."""
    olds = (dict(zip(('train_csv', 'val_csv'), pair))[key] for pair in kept_splits(os.path.dirname(path)))
    return next((old for old in olds if same_rows(state, key, old, ordered=False)), None)


def attributes_of(state, path, attributes_file=None):
    if state['attributes'] is not None:
        if attributes_file is not None:
            print(f'note: --attributes_file {attributes_file} is not read: {path} holds the label names '
                  'it was trained with')
        return AttributesDataset(vocab=state['attributes'])
    if attributes_file is None:
        raise UserError(f'{path}: {bare_kind(state)}, without label names; pass --attributes_file with the '
                        'styles.csv it was trained on')
    # The tutorial took its classes from every row of styles.csv, 'NA' included: 47 colours on the
    # real file against our 46, and every colour after 'NA' one place further on. Its weights say
    # which of the two vocabularies they were trained with.
    ours = AttributesDataset(attributes_file)
    sizes = head_sizes(state['model'])
    if sizes == head_sizes_of(ours):
        return ours
    tutorials = AttributesDataset(vocab=tutorial_vocab(attributes_file))  # styles.csv read again, only here
    if sizes == head_sizes_of(tutorials):
        print(f"note: {path} has the tutorial's classes, 'NA' labels included; reading "
              f'{attributes_file} its way')
        return tutorials
    if None not in sizes.values():  # said of the model, it sent the user looking at the weights
        raise UserError(f'{path}: its weights have {classes(sizes)}, but {attributes_file} gives '
                        f'{classes(head_sizes_of(ours))} ({classes(head_sizes_of(tutorials))} read the tutorial\'s '
                        'way): not the styles.csv they were trained on?')
    return ours  # load_weights then names the mismatch


def head_sizes(weights):
    """The number of classes of each head in a state_dict (None for a head it lacks)."""
    return {head: len(weights[f'{head}.1.bias']) if f'{head}.1.bias' in weights else None for head in HEADS}


def head_sizes_of(attributes):
    return {head: len(attributes.labels(head)) for head in HEADS}


def non_finite_weight(weights):
    """(name, 'nan' or 'inf') of the first tensor of a state_dict that holds a NaN or an infinity,
    or None. One wait for the device in all, not one per tensor."""
    floats = [(name, tensor) for name, tensor in weights.items() if tensor.is_floating_point()]
    if not floats:
        return None
    bad = (~torch.stack([torch.isfinite(tensor).all() for _, tensor in floats])).nonzero()
    if not len(bad):
        return None
    name, tensor = floats[int(bad[0])]
    return name, 'nan' if torch.isnan(tensor).any() else 'inf'


def labels_apart_from_weights(weights, vocab):
    """How a checkpoint's label names and its weights' numbers of classes disagree, or None."""
    sizes = head_sizes(weights)
    apart = [f'{len(vocab[head])} {WORDS[head]} labels for {sizes[head]} classes' for head in HEADS
             if sizes[head] is not None and sizes[head] != len(vocab[head])]
    return f'its label names and its weights disagree: {", ".join(apart)}' if apart else None


WORDS = {'gender': 'gender', 'article': 'article', 'color': 'colour'}  # each head's, in a message


def classes(sizes):
    """'2 gender, 12 article and 10 colour classes', of each head's number of classes."""
    return f'{sizes["gender"]} {WORDS["gender"]}, {sizes["article"]} {WORDS["article"]} and {sizes["color"]} ' \
        f'{WORDS["color"]} classes'


def load_weights(model, state, path):
    try:
        model.load_state_dict(state['model'])
    except RuntimeError as error:
        raise UserError(f'{path}: does not match the model ({classes(model.num_classes())}): '
                        f'{mismatch(model.state_dict(), state["model"])}') from error


def mismatch(ours, weights):
    """How a state_dict differs from the model's, `ours`, a few names of each kind: torch's own
    message names every one, hundreds for another network's, on one line."""
    missing = [name for name in ours if name not in weights]
    unknown = [name for name in weights if name not in ours]
    shapes = [f'{name} {list(weights[name].shape)} for {list(tensor.shape)}' for name, tensor in ours.items()
              if name in weights and weights[name].shape != tensor.shape]
    parts = [f'{counted(len(names), "weight")} {what} ({first_few(names)})' for names, what in
             [(missing, 'of the model missing'), (unknown, "not the model's"), (shapes, 'of another shape')] if names]
    return '; '.join(parts) or 'its weights do not load'


def check_finite(state, path):
    # A run that diverged: every answer would be the same, or NaN, whatever the picture.
    bad = non_finite_weight(state['model'])
    if bad is not None:
        raise UserError(f'{path}: its weights hold {bad[1]} ({bad[0]}); the run that wrote it diverged. '
                        'Use one of its earlier checkpoints, or train again with a lower --lr')
    # No training writes a variance below 0: its square root in the batch norm is NaN, every answer too.
    negative = next((name for name, tensor in state['model'].items() if name.endswith('running_var')
                     and tensor.is_floating_point() and bool((tensor < 0).any())), None)
    if negative is not None:
        raise UserError(f'{path}: its weights are not as any training leaves them ({negative} is below 0, '
                        'a variance); use another checkpoint of the run')


def answers_not_numbers(path, where):
    """The error for a checkpoint whose model answers NaN or infinity (test.py and predict.py see
    it in the answers): its weights are finite, check_finite saw to that, but large enough to
    overflow float32 (every weight of a trained model's 1e30 times larger, say)."""
    return UserError(f'{path}: its model answers NaN or infinity {where}: its weights, though finite, are '
                     'too large to compute with. Use another checkpoint of the run')


def model_from_checkpoint(path, attributes_file=None):
    """The model and its label vocabularies, rebuilt from the checkpoint file alone."""
    state = checkpoint_load(path)
    check_finite(state, path)  # --resume's resumable_load checks its own
    attributes = attributes_of(state, path, attributes_file)
    model = MultiOutputModel.for_attributes(attributes)
    load_weights(model, state, path)
    return model, attributes, state


def check_same_vocab(attributes, state, path):
    """Resuming with a different styles.csv would silently relabel the classes: refuse it."""
    saved = AttributesDataset(vocab=state['attributes'])
    for head in HEADS:
        trained, given = saved.labels(head), attributes.labels(head)
        if trained != given:
            gone, new = [name for name in trained if name not in given], [name for name in given if name not in trained]
            raise UserError(f'{path}: trained with {len(trained)} {head} classes, and the attributes file gives '
                            f'{len(given)}' + (f'; not in it: {some(gone)}' if gone else '')
                            + (f'; new in it: {some(new)}' if new else '')
                            + '; use the same styles.csv as the original run')


def some(names, shown=3):
    return ', '.join(names[:shown]) + (f' and {len(names) - shown} more' if len(names) > shown else '')
