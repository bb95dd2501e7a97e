# What a file that torch.load refused holds, read by pickletools, which runs nothing: the Python
# objects its pickles would call (code, to refuse by name), and torch.save's own kinds of file.
import _compat_pickle
import importlib.util
import io
import pickletools
import zipfile

import torch
import torch._weights_only_unpickler

from catalog import ZIP_START


def pickle_in(data):
    """The pickle in data (a file's bytes) that the unpickler reads: torch.save's archive keeps it
    as ARCHIVE/data.pkl (where the unpickler stops at protocol 4's first FRAME), ARCHIVE the folder
    of its first record."""
    if not data.startswith(ZIP_START):
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # torch.load's: in the folder of the archive's first record (another may hold one too)
            names = archive.namelist()
            name = names[0].split('/')[0] + '/data.pkl'
            return archive.read(name) if name in names else data
    except Exception:  # noqa: BLE001 - a damaged archive: zipfile and zlib fail as they may
        return data


def saved_by_torch(data):
    """Whether the zip archive in data (a file's bytes) holds the pickle torch.save writes
    (ARCHIVE/data.pkl): one that fails to load is then a damaged checkpoint, not some other archive.
    None where zipfile cannot read its names."""
    return holds_record(data, 'data.pkl')


# The first pickle of torch.save's files before PyTorch 1.6 (torch.serialization.MAGIC_NUMBER)
OLD_TORCH_MAGIC = 0x1950a86a20f9469cfc6c


def saved_by_old_torch(data):
    """Whether data begins as torch.save's format of before PyTorch 1.6: its magic number pickled
    at any protocol (protocols 0 and 1 write it as text). Its files have no checksums."""
    head = data[:32]
    return OLD_TORCH_MAGIC.to_bytes(10, 'little') in head or head.startswith(b'L%dL\n' % OLD_TORCH_MAGIC)


def holds_record(data, record):
    """Whether the zip archive in data holds ARCHIVE/record (torch.jit.save's also holds
    constants.pkl); None where zipfile cannot read its names."""
    if not data.startswith(ZIP_START):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(name.endswith(f'/{record}') for name in archive.namelist())
    except Exception:  # noqa: BLE001 - a damaged archive, whose names zipfile cannot read: whose it is, unknown
        return None


def pickle_protocol(data):
    """The protocol a pickle's PROTO opcode names, its first from protocol 2 on; None where it has
    none (protocol 0 or 1)."""
    return data[1] if data[:1] == b'\x80' and len(data) > 1 else None


def pickled_code(data):
    """(whether data begins with a whole pickle, its STOP past its first line: 'N.' is a pickle
    of None; the Python objects it and the pickles after it would call or build, as module.name, up
    to any damage, but those torch.load's safe reader rebuilds: torch.save's format of before
    PyTorch 1.6 is several pickles, then the tensors' bytes; how many bytes of data were read, to
    the end of the opcode that stopped the reading). Read by pickletools, which runs nothing, with
    the unpickler's stack and memo emulated as pickletools.dis does. An object counts where a call
    follows it, or its pickle is whole: text read as a GLOBAL ('config' over 'value') is neither."""
    stream, names, ends = io.BytesIO(data), [], []
    while stream.tell() < len(data):
        stack, memo, pending = [[]], {}, []  # each pickle's own, as pickle.load starts each afresh
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                taken = stack_takes(stack, opcode)
                if taken is None:  # text read as opcodes: no unpickler gets past it
                    break
                pushed = arg if isinstance(arg, str) and opcode.name in PUSH_STRINGS else None
                if opcode.name == 'GLOBAL':
                    pending.append(global_named(*arg.split(' ', 1)))
                elif opcode.name == 'INST':  # a call, of the object it names
                    names.append(global_named(*arg.split(' ', 1)))
                elif opcode.name in CALLS:
                    names.extend(pending)
                    pending.clear()
                elif opcode.name == 'STACK_GLOBAL':  # its module and name: strings pushed or from the memo
                    pending.append(global_named(*taken) if all(isinstance(part, str) for part in taken)
                                   else (COMPUTED, ''))
                elif opcode.name in ('MEMOIZE', 'PUT', 'BINPUT', 'LONG_BINPUT'):  # the top object kept
                    kept = taken or stack[-1][-1:]  # MEMOIZE takes it and puts it back, PUT looks at it
                    if not kept:
                        break
                    memo[len(memo) if arg is None else arg] = pushed = kept[-1]
                elif opcode.name in ('GET', 'BINGET', 'LONG_BINGET'):
                    if arg not in memo:
                        break
                    pushed = memo[arg]
                elif opcode.name == 'DUP':
                    pushed = taken[0]
                stack_pushes(stack, opcode, pushed)
            else:  # STOP: the unpickler returns the object on top, whatever is left below it
                names.extend(pending)  # and imported what it names as it loaded
                ends.append((stream.tell(), stack == [[]]))  # a whole pickle leaves nothing
                continue
        except Exception:  # noqa: BLE001 - no pickle, or one cut short: pickletools fails as it may
            pass
        break
    line = data.find(b'\n')
    whole = bool(ends) and ends[0][1] and (ends[0][0] > line if line >= 0 else ends[0][0] == len(data))
    return whole, [f'{module}.{name}'.rstrip('.') for module, name in names if (module, name) != (None, None)
                   and not torch_saves(module, name)], stream.tell()


# Opcodes that call an object, or a method of one (os.environ's __setitem__ is putenv's)
CALLS = {'REDUCE', 'BUILD', 'OBJ', 'NEWOBJ', 'NEWOBJ_EX', 'SETITEM', 'SETITEMS', 'APPEND', 'APPENDS', 'ADDITEMS'}
COMPUTED = 'an object named by what the pickle computes'  # a STACK_GLOBAL of other than strings pushed
MARK = pickletools.markobject
# What each opcode does to the unpickler's stack, as pickletools.dis emulates it: whether it takes
# all down to the topmost MARK; how many objects it takes (below that MARK, where it does); how
# many it pushes, 0 to 2 (None: a MARK).
STACK_EFFECTS = {opcode.name: (MARK in opcode.stack_before,
                               opcode.stack_before.index(MARK) if MARK in opcode.stack_before
                               else len(opcode.stack_before),
                               None if opcode.stack_after == [MARK] else len(opcode.stack_after))
                 for opcode in pickletools.opcodes}
# Those that push the string they carry (a module's or an object's name, for a STACK_GLOBAL)
PUSH_STRINGS = {opcode.name for opcode in pickletools.opcodes
                if [kind.name for kind in opcode.stack_after] in (['str'], ['bytes_or_str'])}


def stack_takes(stack, opcode):
    """The objects opcode takes off the unpickler's stack (below the MARK it takes, where it takes
    one), or None where the stack does not hold them: 'cat\\ndog\\nbird' reads as a GLOBAL, then a
    BUILD that takes two objects off a stack of one, which is text, not code. stack: the objects
    above each MARK, the first list those below them all; left as opcode leaves it."""
    to_mark, count, _ = STACK_EFFECTS[opcode.name]
    if to_mark or (opcode.name == 'POP' and not stack[-1] and len(stack) > 1):  # a POP of the MARK itself
        if len(stack) == 1:  # no MARK on the stack
            return None
        stack.pop()
        count = count if to_mark else 0
    top = stack[-1]
    if len(top) < count:
        return None
    taken = top[len(top) - count:]
    del top[len(top) - count:]
    return taken


def stack_pushes(stack, opcode, value):
    """stack with what opcode pushes: value (a string it carries or fetched, else None), or a MARK."""
    pushes = STACK_EFFECTS[opcode.name][2]
    if pushes is None:
        stack.append([])
    else:
        stack[-1].extend([value] * pushes)


def global_named(module, name=''):
    """(module, name) of a GLOBAL, or (None, None) where they name nothing: text the unpickler read
    as one ('color,count')."""
    if all(part.isidentifier() for part in f'{module}.{name}'.split('.')):
        return module, name
    return None, None


def python3_name(module, name):
    """(module, name) of a GLOBAL as the unpickler imports it: Python 2's __builtin__.xrange, which
    protocol 2 writes for a range, is builtins.range."""
    return _compat_pickle.NAME_MAPPING.get((module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))


def torch_saves(module, name):
    """Whether (module, name), under its Python 3 name, is one of the objects torch.load's safe
    reader rebuilds: the tensors' and storages' rebuilders, dtypes, OrderedDict. Others of torch's
    run code as any (torch.utils.collect_env.run runs a command; torch.os.system is os.system)."""
    return '.'.join(python3_name(module, name)) in SAFE_GLOBALS


# Python's builtins that build a plain value and call nothing else, which torch.load's safe reader
# refuses all the same (they are not among its allowed globals): what each builds, for a message.
HARMLESS_BUILTINS = {'frozenset': 'a frozenset', 'range': 'a range', 'slice': 'a slice',
                     'Ellipsis': 'Ellipsis', 'NotImplemented': 'NotImplemented'}


def harmless_builtins(names):
    """(what each builds, their Python 3 names) where every one of names (module.name, as
    pickled_code gives them) is one of HARMLESS_BUILTINS; else None: any other object, or one the
    pickle computes, may run code."""
    found = list(dict.fromkeys(python3_name(*name.rpartition('.')[::2]) for name in names))
    if not found or any(module != 'builtins' or name not in HARMLESS_BUILTINS for module, name in found):
        return None
    return [HARMLESS_BUILTINS[name] for _, name in found], [f'{module}.{name}' for module, name in found]


# torch's own list of them (private: where a later torch drops it, all of them count as code)
SAFE_GLOBALS = frozenset(getattr(torch._weights_only_unpickler, '_get_allowed_globals', dict)())


def found_here(name):
    """Whether the module of name (module.attribute, or COMPUTED) may be there for an unpickler to
    import: loaded, or found by its top package (under its Python 3 name, __builtin__'s builtins),
    not imported. Text read as a GLOBAL names none ('checkpoints' over 'logs': heckpoints.logs)."""
    if name == COMPUTED:
        return True
    top = _compat_pickle.IMPORT_MAPPING.get(name.rsplit('.', 1)[0], name).split('.')[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):  # loaded with a spec of None (a script's __main__): there all the same
        return True
