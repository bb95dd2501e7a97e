# The trained model as ONNX, for serving without this project or PyTorch; used by
#   python predict.py --checkpoint checkpoints/RUN/best.pth --export model.onnx
# model.onnx takes `image`, float32 N x 3 x 80 x 60 (any N), and gives the logits `gender`,
# `article` and `color`. model.json beside it holds what a serving stack needs besides: the label
# names of each output in class-id order, and the preprocessing that turns a picture into `image`;
# model.onnx's metadata holds them too, each of the file's keys as a text (JSON where not one).
# Needs the optional requirements-onnx.txt (onnx, onnxscript); predict.py imports this module only
# when --export is given.
if __name__ == '__main__':
    # A module, not a script: the export needs the checkpoint that predict.py loads. Said before
    # the imports below, which load PyTorch: seconds for a line of advice.
    import sys
    from cli import command
    how = ('export_onnx.py is used by predict.py; export a model with:\n  '
           + command('predict.py', '--checkpoint', 'checkpoints/RUN/best.pth', '--export', 'model.onnx'))
    if sys.argv[1:] in (['-h'], ['--help']):  # asked for, as of any script: said, and no failure
        print(how)
        sys.exit(0)
    sys.exit(how)

import copy
import importlib
import json
import os
import shlex
import sys

import torch
from torch import nn

from atomic import (absolute_path, atomic_open, atomic_path, check_writable_file, flush_to_disk, json_object,
                    name_pattern, put_back_left_asides, remove_left_temporaries, renamed_together, through_link)
from augment import prepare_batch
from catalog import IMAGE_SIZE
from checkpoint import WORDS, answers_not_numbers
from cli import PROJECT, UserError, command, shown, shown_path, this_python
from dataset import FILL, HEADS, MEAN, STD

FORMAT = 'fashion-multi-output-onnx/1'
OPSET = 18  # the dynamo exporter's own; it writes IR version 10, which onnxruntime runs from 1.18 on
INPUT_NAME = 'image'


class HeadsInOrder(nn.Module):
    # ONNX outputs are positional, and the model's dict would be flattened in its own key order
    # (color first); a tuple in HEADS order makes the output names line up.
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        output = self.model(image)
        return tuple(output[head] for head in HEADS)


def require_exporter():
    # The torch.export-based exporter (the default since PyTorch 2.9; the TorchScript one is
    # deprecated) came with PyTorch 2.6 and builds the graph with onnxscript. 2.6's fails on this
    # model with each onnxscript tried, 0.2.0 to 0.7.2 (2026-12-03: a tuple where it expects a
    # tensor, in the batch norms, or the version converter's or protobuf's errors); 2.7's exports it.
    if torch.__version__ < (2, 7):
        raise UserError(f'exporting to ONNX needs PyTorch 2.7 or newer (this is {torch.__version__}, whose '
                        f'exporter fails on this model): {pip_install("--upgrade", "torch", "torchvision")}')
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        extra = shown_path(os.path.join(PROJECT, 'requirements-onnx.txt'))  # run from another folder: its path
        raise UserError(f'exporting to ONNX needs {error.name}, which is not installed: '
                        f'{pip_install("-r", extra)}') from error
    require_onnxscript_for_this_torch()


def require_onnxscript_for_this_torch():
    # Each PyTorch's exporter calls a module of onnxscript named for it (onnxscript._framework_apis.
    # torch_2_11 for 2.11 on), which an onnxscript older than that PyTorch lacks: with 0.5.0 beside
    # 2.14, the export ended, after the checkpoint was loaded, in a traceback ('No module named
    # onnxscript._framework_apis.torch_2_11') from deep inside torch.onnx.
    import onnxscript
    name = onnxscript_api_for_torch()
    if name is None:  # a PyTorch that keeps its name elsewhere: left unchecked
        return
    try:
        importlib.import_module(name)
    except ImportError as error:
        if not (error.name and (name + '.').startswith(error.name + '.')):  # not it, but one it imports: onnx_ir
            raise exporter_import_failed(error) from error
        raise UserError(f'exporting to ONNX with PyTorch {torch.__version__} needs a newer onnxscript than '
                        f'{getattr(onnxscript, "__version__", "this one")}, which lacks {name}: '
                        f'{pip_install("--upgrade", "onnxscript", "onnx")}') from error


def exporter_import_failed(error, path=None):
    """The error for a module the exporter needs that did not import: one that torch.onnx.export
    imports only as it runs (path: the export's), past what require_exporter checks, or one that
    onnxscript's module for this PyTorch imports as it is checked. A missing onnx_ir, or a module of
    onnx's or onnxscript's that an older release lacks, ended in a traceback from inside torch.onnx."""
    name = error.name
    top = name.split('.')[0] if name else None
    package = sys.modules.get(top) if top else None
    if not name:  # an ImportError raised by hand, which names no module
        needs = f'a module that did not import ({error})'
    elif not isinstance(error, ModuleNotFoundError):  # `from onnx_ir import x` of a release without x
        needs = f'{name}, which did not import ({error})'
    elif package is not None and name != top:
        version = getattr(package, '__version__', None)
        needs = f'{name}, which the installed {top}' + (f' {version}' if version else '') + ' lacks'
    else:
        needs = f'{name}, which is not installed'
    # --upgrade onnxscript onnx, as for an onnxscript older than PyTorch: -r requirements-onnx.txt
    # would leave in place a release that meets its lowest, and with --upgrade would upgrade PyTorch
    # too. pip installs a missing dependency (onnx_ir, onnxscript's) of a package already there.
    packages = ['onnxscript', 'onnx'] + (['onnx_ir'] if top == 'onnx_ir' else [])
    return UserError((f'--export {path}: ' if path else '') + f'exporting to ONNX with PyTorch {torch.__version__} '
                     f'needs {needs}: {pip_install("--upgrade", *packages)}')


def onnxscript_api_for_torch():
    """The onnxscript module this PyTorch's exporter imports, as torch.onnx names it (not public:
    None where it is not found there)."""
    try:
        from torch.onnx._internal import _lazy_import
    except ImportError:
        return None
    name = getattr(getattr(_lazy_import, 'onnxscript_apis', None), '_name', None)
    return name if isinstance(name, str) and name.startswith('onnxscript.') else None


def pip_install(*args):
    """The pip command that installs into this Python: a bare `pip` may be another's (the README's
    commands run .venv/bin/python without activating its environment)."""
    return shlex.join([this_python(), '-m', 'pip', 'install', *args])


def sidecar_path(path):
    return os.path.splitext(path)[0] + '.json'


def preprocessing():
    """How dataset.load_image and prepare_batch turn a picture into the model's input."""
    width, height = IMAGE_SIZE
    return {
        'height': height, 'width': width, 'layout': 'NCHW', 'channel_order': 'RGB',
        'exif_orientation': 'applied first (phone photos store their rotation in EXIF)',
        'transparency': f'composited over {list(FILL)} before dropping alpha (an alpha channel, or a colour '
                        'marked transparent); any mode becomes RGB; greyscale of more than 8 bits scaled '
                        'to 8 first: white is 65535 for 16-bit integers, and for 32-bit integers (of 65535 '
                        'or 2**31 - 1) and floats (of 1, 255 or 65535) the least of those that holds the '
                        'brightest value; NaN and -inf black, +inf white',
        'resize': {
            'rule': 'fit', 'keep_aspect_ratio': True, 'position': 'centre', 'pad_value': list(FILL),
            'interpolation': 'lanczos', 'upscale_small_images': True,
            'description': f'scale to fit inside {width}x{height} (width x height) with the aspect '
                           'ratio kept, the other side rounded to the nearest pixel (a half to the even one, '
                           'as Python\'s round: 22.5 gives 22), at least 1 (as PIL\'s '
                           f'ImageOps.contain); paste at offset (({width} - w) // 2, ({height} - h) // 2) '
                           f'on a white canvas; a picture already {width}x{height} is left as it is',
        },
        'value_range': [0, 1], 'scale': 'divide the 8-bit values by 255',
        'mean': list(MEAN), 'std': list(STD), 'normalise': '(x - mean) / std, per channel',
    }


def sidecar(attributes, path):
    width, height = IMAGE_SIZE
    return {
        # shown: a name that is not UTF-8 as \xNN, not as JSON's lone \udcNN, which strict readers refuse
        'format': FORMAT, 'model': shown(os.path.basename(path)), 'opset': OPSET,
        'input': {'name': INPUT_NAME, 'dtype': 'float32', 'shape': ['batch', 3, height, width]},
        'outputs': list(HEADS),
        'output_kind': 'logits; a softmax over the last axis gives class probabilities',
        'labels': {head: list(attributes.labels(head)) for head in HEADS},
        'preprocessing': preprocessing(),
    }


def example_batch():
    """What the export traces the model with, and checks it on: a white picture (the padding's
    colour) and a black one, normalised as every picture. Not the mean colour, 0 once normalised,
    which an untrained model whose finite weights overflow (check_answers_finite) answers in
    numbers, its batch norms scaling 0 by 1e15 each, where it answers a white or a black one NaN. A
    batch of 2: torch.export has treated sizes of 0 and 1 as constants, which would fix the batch
    at 1 (2.14 keeps it dynamic; older releases that requirements.txt allows may not)."""
    width, height = IMAGE_SIZE
    colours = torch.tensor([FILL, (0, 0, 0)], dtype=torch.uint8)
    return prepare_batch(colours.view(2, 3, 1, 1).expand(2, 3, height, width))


def check_answers_finite(model, checkpoint, path):
    """Refused, as test.py and predict.py refuse it on their pictures, where the model (HeadsInOrder)
    answers NaN or infinity: its weights are finite, checkpoint.check_finite saw to that, but so
    large that the outputs overflow (1e30 times a trained model's), and the exported model would
    answer NaN or infinity, with no word from the export."""
    with torch.no_grad():
        outputs = model(example_batch())
    bad = [WORDS[head] for head, output in zip(HEADS, outputs) if not bool(torch.isfinite(output).all())]
    if bad:
        heads = ' and '.join(filter(None, [', '.join(bad[:-1]), bad[-1]]))
        raise answers_not_numbers(checkpoint, f'in its {heads} output{"s" if len(bad) > 1 else ""} on the '
                                              f'pictures --export {path} traces it with (a white one and a black one)')


def write_onnx(model, path, described):
    """The ONNX model at path, with `described` (its sidecar) in its metadata too: a serving stack
    that keeps the model alone (a Triton model folder) still has its label names and preprocessing,
    as onnxruntime's get_modelmeta() and Netron show them."""
    import onnx
    batch = torch.export.Dim('batch')
    with torch.no_grad():
        torch.onnx.export(model, (example_batch(),), path, input_names=[INPUT_NAME], output_names=list(HEADS),
                          dynamic_shapes={INPUT_NAME: {0: batch}}, opset_version=OPSET,
                          dynamo=True, external_data=False, verbose=False)
    exported = onnx.load(path)
    onnx.helper.set_model_props(exported, {key: value if isinstance(value, str) else json.dumps(value)
                                           for key, value in described.items()})
    onnx.save(exported, path)


def check_export(path):
    """What an export to path needs, checked before any work (predict.py calls it before it loads
    the checkpoint): the exporter, a name, and a folder to write in with no folder, and no file of
    the user's, in the way."""
    require_exporter()
    if not path.lower().endswith('.onnx'):
        raise UserError(f'--export {path}: the name must end in .onnx (its .json is written beside it)')
    json_path = sidecar_path(path)
    written = {target: through_link(target, f'--export {path}' + (f': {target}' if target == json_path else ''))
               for target in (path, json_path)}
    if written[path] == written[json_path]:  # both names links to one file
        raise UserError(f'--export {path}: it and {json_path} lead to the same file, '
                        f'{written[path]}, which cannot hold both the model and its label names')
    for target, through in written.items():
        # A folder in the way would stop a rename (below) after the export's work; a pipe or a
        # device would have a file renamed over it.
        if os.path.isdir(target):
            raise UserError(f'--export {path}: could not write {target}: it is a folder')
        if os.path.exists(through) and not os.path.isfile(through):
            raise UserError(f'--export {path}: {target} is ' + (f'a link to {through}, which is ' if through != target
                                                                else '') + 'no regular file (a device or a pipe)')
        check_writable_file(through, f'--export {path}')
    check_only_exports_replaced(path)


def check_only_exports_replaced(path):
    """A file at path or at its sidecar's is an export of ours, which the new one replaces, or
    empty. One of that name that is not is the user's, and stays."""
    if os.path.isfile(path) and not exported_model(path):
        raise UserError(f'--export {path}: is no ONNX model predict.py exported (with the input {INPUT_NAME!r} '
                        f'and the outputs {", ".join(map(repr, HEADS))}), and would be replaced; move it away '
                        'or give another name')
    json_path = sidecar_path(path)
    if os.path.isfile(json_path) and not exported_sidecar(json_path):
        raise UserError(f'--export {path}: {json_path} beside it holds no label names predict.py wrote (no '
                        f'"format": "{FORMAT}"), and would be replaced; move it away or give another name')


def exported_model(path):
    import onnx
    from google.protobuf.message import Error as ProtobufError  # onnx's own requirement
    if os.path.getsize(path) == 0:
        return True
    try:
        # The graph only: the weights of a model with external data are not ours to read.
        graph = onnx.load(path, load_external_data=False).graph
    except (ProtobufError, ValueError, OSError):  # no ONNX model, or one that cannot be read
        return False
    return [i.name for i in graph.input] == [INPUT_NAME] and [o.name for o in graph.output] == list(HEADS)


def exported_sidecar(path):
    if os.path.getsize(path) == 0:
        return True
    data = json_object(path)
    return data is not None and data.get('format') == FORMAT


def export_onnx(model, attributes, path, checkpoint):
    """Write path (ONNX) and its JSON sidecar, of the model loaded from checkpoint (a path, named
    in an error); returns the sidecar's path."""
    check_export(path)
    # A CPU copy in eval mode: the caller's model stays on its device, and dropout and batch norm
    # are exported as they run at inference.
    wrapped = HeadsInOrder(copy.deepcopy(model).cpu()).eval()
    check_answers_finite(wrapped, checkpoint, path)  # before any file is touched
    json_path = sidecar_path(path)
    # A name that is a link is written through, as a shell's `>` would, the link staying a link:
    # each of the two apart (model.onnx a link to v3.onnx: v3.onnx is written, and model.json,
    # or the file that it links to).
    written = {target: through_link(target) for target in (path, json_path)}
    folders = {}
    for target in written.values():
        folders.setdefault(os.path.dirname(absolute_path(target)), []).append(os.path.basename(target))
    for folder, files in folders.items():
        names = '|'.join(name_pattern(name) for name in files)
        # First: killed as it replaced them (replace_together). Where both are in one folder, not once
        # the model was in place: then the old label file's aside is left over, never put back beside it.
        first = os.path.basename(written[path]) if len(files) == 2 else None
        put_back_left_asides(folder, names, 'predict.py', files, first)
        remove_left_temporaries(folder, names, 'predict.py')
        os.makedirs(folder, exist_ok=True)
    # Both files change or neither (atomic.renamed_together): a failed export or label file, or
    # a full disk, leaves the old pair, never a new model beside old label names, which would
    # name its outputs wrongly.
    described = sidecar(attributes, path)
    try:
        with renamed_together() as together:
            with atomic_path(written[path], together) as model_tmp:
                write_onnx(wrapped, model_tmp, described)
            with atomic_open(written[json_path], encoding='utf-8', together=together) as f:
                json.dump(described, f, indent=2)
                flush_to_disk(f)
    except ImportError as error:  # inside torch.onnx.export: the temporary file is gone, the old pair stays
        raise exporter_import_failed(error, path) from error
    except OSError as error:
        # The flag named, as --output's failures name theirs (the file only, it said)
        failed = error.filename or path
        what = 'it' if os.path.abspath(failed) == os.path.abspath(path) else failed
        raise UserError(f'--export {path}: could not write {what} ({error.strerror or error})') from error
    return json_path

