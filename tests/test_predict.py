# predict.py on any picture (other sizes, modes and formats, EXIF rotation, broken files) gives the
# same answers as the model on load_image + val_transform, and its ONNX export gives the same
# logits as PyTorch for any batch size.
import argparse
import codecs
import csv
import errno
import gc
import io
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch
from PIL import Image

import predict
from augment import prepare_batch
from checkpoint import checkpoint_load, checkpoint_save, model_from_checkpoint
from cli import UserError, run_cli, this_python
from conftest import ROOT, damaged_exif_jpeg, overflowing, run_script
from dataset import HEADS, AttributesDataset, load_image, val_transform
from model import MultiOutputModel
from sample_catalog import make_catalog

WHITE = (255, 255, 255)
BROKEN = {'truncated.jpg': 'truncated', 'notes.jpg': 'not an image', 'pipe.jpg': 'not a regular file'}
# The tests that export: PyTorch 2.6, which requirements.txt allows, refuses (export_onnx.py).
exports = pytest.mark.skipif(torch.__version__ < (2, 7), reason='the ONNX export needs PyTorch 2.7 or newer')


@pytest.fixture(scope='module')
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp('predict') / 'fashion-product-images'
    return make_catalog(str(root), n_images=16, seed=3)


def catalog_images(catalog):
    folder = os.path.join(catalog['root'], 'images')
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))]


@pytest.fixture(scope='module')
def checkpoint(catalog, tmp_path_factory):
    attributes = AttributesDataset(os.path.join(catalog['root'], 'styles.csv'))
    torch.manual_seed(0)
    model = MultiOutputModel.for_attributes(attributes)
    # Batch-norm statistics measured on the catalog: with the initial ones (mean 0, variance 1)
    # every picture gets the same answer, and a test of which answer belongs to which picture
    # could not fail.
    images = torch.stack([val_transform(load_image(path)) for path in catalog_images(catalog)])
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.momentum = None  # a plain average over the batches seen
    with torch.no_grad():
        model.train()(images)
    path = str(tmp_path_factory.mktemp('run') / 'last.pth')
    return checkpoint_save(path, {'epoch': 1, 'model': model.state_dict(), 'attributes': attributes.to_dict(),
                                  'args': {}, 'history': [], 'best': {}})


def phone_photo(upright):
    """A JPEG stored sideways with EXIF orientation 6 ("rotate 90 degrees clockwise to view")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, 'JPEG', exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def two_colour_portrait(size=(300, 400)):
    img = Image.new('RGB', size, (220, 20, 20))  # red top half
    img.paste((20, 20, 220), (0, size[1] // 2, size[0], size[1]))  # blue bottom half
    return img


def truncated_jpeg(source):
    buffer = io.BytesIO()
    source.save(buffer, 'JPEG')
    return buffer.getvalue()[:400]


@pytest.fixture(scope='module')
def photos(catalog, tmp_path_factory):
    """A folder of every kind of picture predict.py should take, two broken files and some noise."""
    folder = tmp_path_factory.mktemp('photos')
    products = []  # a different catalog picture for each kind, so that the answers differ
    for path in catalog_images(catalog)[:8]:
        with Image.open(path) as img:
            products.append(img.convert('RGB'))
    shutil.copy(catalog_images(catalog)[8], folder / 'catalog_60x80.jpg')
    products[0].resize((1800, 2400), Image.Resampling.BICUBIC).save(folder / 'full_1800x2400.jpg', quality=90)
    products[1].resize((224, 224)).save(folder / 'crop_224.png')
    products[2].convert('L').save(folder / 'gray.jpg')
    rgba = products[3].convert('RGBA')
    rgba.putalpha(Image.eval(products[3].convert('L'), lambda v: 0 if v > 240 else 255))  # white -> clear
    rgba.save(folder / 'rgba.png')
    products[4].convert('P', palette=Image.Palette.ADAPTIVE).save(folder / 'palette.png')
    products[5].convert('CMYK').save(folder / 'cmyk.jpg')
    (folder / 'phone.jpg').write_bytes(phone_photo(two_colour_portrait()))
    (folder / 'nested' / 'deeper').mkdir(parents=True)
    products[6].save(folder / 'nested' / 'deeper' / 'SHOUT.JPG')
    (folder / 'truncated.jpg').write_bytes(truncated_jpeg(products[7]))
    (folder / 'notes.jpg').write_text('<html>404 not found</html>')
    os.mkfifo(folder / 'pipe.jpg')  # opening it to read would wait for a writer for ever
    (folder / 'readme.txt').write_text('not a picture, and not named like one')
    (folder / '._catalog_60x80.jpg').write_bytes(b'\x00\x05\x16\x07')  # macOS AppleDouble file
    readable = ['catalog_60x80.jpg', 'cmyk.jpg', 'crop_224.png', 'full_1800x2400.jpg', 'gray.jpg',
                'nested/deeper/SHOUT.JPG', 'palette.png', 'phone.jpg', 'rgba.png']
    return {'folder': str(folder), 'readable': [os.path.join(str(folder), name) for name in readable],
            'all': sorted(os.path.join(str(folder), name) for name in readable + list(BROKEN))}


@pytest.fixture(scope='module')
def reference(checkpoint, photos):
    """What the PyTorch model says on load_image + val_transform, one picture at a time."""
    model, attributes, _ = model_from_checkpoint(checkpoint)
    model.eval()
    answers = {}
    with torch.no_grad():
        for path in photos['readable']:
            output = model(val_transform(load_image(path)).unsqueeze(0))
            answers[path] = {head: (attributes.labels(head)[output[head].argmax().item()],
                                    output[head].softmax(1).max().item(), len(attributes.labels(head)))
                             for head in HEADS}
    return answers


def check_top_k(top, k, reference):
    label, prob, n_classes = reference
    labels, probs = [label for label, _ in top], [prob for _, prob in top]
    assert len(top) == len(set(labels)) == min(k, n_classes)  # a head with 2 classes shows 2
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-5 and min(probs) >= 0
    assert labels[0] == label and probs[0] == pytest.approx(prob, abs=1e-4)


def test_every_kind_of_picture_is_predicted_and_broken_ones_are_reported(checkpoint, photos, reference,
                                                                        tmp_path, capsys):
    out = tmp_path / 'results' / 'predictions.csv'
    # main as its command line runs it, in this process: a fresh interpreter took seconds to import
    # PyTorch, and predict.py as a script is started by the tests of its terminal and its warnings
    run_cli(lambda: predict.main(['--checkpoint', checkpoint, photos['folder'], '--output', str(out),
                                  '--device', 'cpu']), memory_flag='--batch-size')  # an error: SystemExit
    said = capsys.readouterr().out
    with open(out, newline='') as f:
        rows = list(csv.DictReader(f))
    assert [row['image'] for row in rows] == photos['all']  # recursive, sorted, noise skipped
    for row in rows:
        name = os.path.basename(row['image'])
        if name in BROKEN:
            assert BROKEN[name] in row['error'] and row['gender'] == row['gender_topk'] == ''
            assert f'error: {row["error"]}' in said
            continue
        assert row['error'] == ''
        for head in HEADS:
            top = [(label, float(prob)) for label, prob in
                   (item.rsplit(':', 1) for item in row[f'{head}_topk'].split(';'))]
            check_top_k(top, 3, reference[row['image']][head])
            assert (row[head], float(row[f'{head}_prob'])) == top[0]
    answers = {row['color'] + row['color_prob'] + row['article'] for row in rows if not row['error']}
    assert len(answers) > 3  # the pictures do not all get the same answer
    lines = said.splitlines()
    header = next(line for line in lines if line.startswith('image'))
    assert header.index('gender') < header.index('article type') < header.index('colour')
    # each picture's lines of the table: rank r's labels and probabilities on line r
    row = next(row for row in rows if not row['error'])
    first = next(i for i, line in enumerate(lines) if line.startswith(row['image'] + ' '))
    for rank, line in enumerate(lines[first:first + 3]):
        for head in HEADS:
            top = row[f'{head}_topk'].split(';')  # fewer than 3 where a head has fewer classes
            label, prob = top[rank].rsplit(':', 1) if rank < len(top) else ('', None)
            assert f'{label} ' in line and (prob is None or f'{float(prob):6.1%}' in line), (rank, head, line)
    assert ('9 of 12 images predicted, 3 unreadable: 1 not an image, 1 not a regular file, 1 truncated or corrupt '
            'image; wrote') in said


def test_json_output_batches_and_progress_bar(checkpoint, photos, reference, tmp_path, capsys):
    out = tmp_path / 'predictions.json'
    # Batches of 4: broken files fall inside batches and more than one batch shows the bar.
    predict.main(['--checkpoint', checkpoint, photos['folder'], '--output', str(out), '--top-k', '2',
                  '--batch-size', '4', '--device', 'cpu'])
    records = json.loads(out.read_text())
    assert [r['image'] for r in records] == photos['all']
    for record in records:
        if os.path.basename(record['image']) in BROKEN:
            assert record['error'] and all(record[head] == [] for head in HEADS)
            continue
        assert record['error'] is None
        for head in HEADS:
            top = [(item['label'], item['probability']) for item in record[head]]
            check_top_k(top, 2, reference[record['image']][head])
    assert 'predicting' in capsys.readouterr().err


def test_a_stopped_prediction_closes_its_bar_before_the_stop_is_said(tmp_path, monkeypatch, capsys):
    # Closed at the exit, the bar came after the line run_cli prints on a Ctrl-C or a SIGTERM.
    for name in 'abc':
        Image.new('RGB', (60, 80), 'red').save(tmp_path / f'{name}.jpg')
    calls = []

    def stopped_at_the_second_batch(model, images, *args):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return [{head: [] for head in HEADS}] * len(images)

    monkeypatch.setattr(predict, 'top_k', stopped_at_the_second_batch)
    args = argparse.Namespace(batch_size=1, top_k=1)
    try:
        predict.predict_all(None, None, sorted(map(str, tmp_path.iterdir())), args, torch.device('cpu'))
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
    gc.collect()
    assert calls == [1, 1]
    err = capsys.readouterr().err
    assert 'predicting' in err and err.endswith('interrupted\n'), err


def test_the_label_file_names_a_model_whose_name_is_not_utf8_as_any_json_reader_takes_it():
    # It held "m\\udce9.onnx", a lone surrogate that strict readers refuse, and no file's name.
    from export_onnx import sidecar
    vocab = {'gender': ['Men', 'Women'], 'article': ['Shirts', 'Tshirts'], 'color': ['Black', 'Blue']}
    data = sidecar(AttributesDataset(vocab=vocab), os.fsdecode(b'/models/m\xe9.onnx'))
    assert data['model'] == 'm\\xe9.onnx'
    json.dumps(data, ensure_ascii=False).encode('utf-8')  # a surrogate cannot be encoded


def test_pictures_are_fitted_with_white_padding_and_exif_rotation(tmp_path):
    wide = tmp_path / 'wide.png'
    Image.new('RGB', (120, 40), (200, 30, 30)).save(wide)
    array, error = predict.read_image(str(wide))
    assert error is None and array.shape == (80, 60, 3)
    # 120x40 fits as 60x20, centred: 30 white rows above and below.
    assert tuple(array[29, 30]) == WHITE and tuple(array[50, 30]) == WHITE
    assert tuple(array[40, 30]) == (200, 30, 30)
    thin = tmp_path / 'thin.png'
    Image.new('RGB', (1, 500), (200, 30, 30)).save(thin)  # 80 rows high it is under half a pixel wide
    array, _ = predict.read_image(str(thin))
    assert (array[:, 29] == (200, 30, 30)).all()  # one column, centred: (60 - 1) // 2
    assert (array[:, 28] == WHITE).all() and (array[:, 30] == WHITE).all()
    phone = tmp_path / 'phone.jpg'
    phone.write_bytes(phone_photo(two_colour_portrait()))
    array, _ = predict.read_image(str(phone))
    # Turned upright by its EXIF tag it fills 60x80: red at the top, blue at the bottom, no padding.
    top, bottom = array[2, 30].astype(int), array[77, 30].astype(int)
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


def test_a_large_photo_is_decoded_without_copies(tmp_path):
    # 24 megapixels, 69 MiB decoded. Copied by the EXIF rotation and the RGB conversion that had
    # nothing to do, it took 276 MiB at its peak, and 8 decoding threads multiply that.
    small, large = tmp_path / 'small.jpg', tmp_path / 'large.jpg'
    Image.new('RGB', (60, 80), (200, 30, 30)).save(small)
    Image.new('RGB', (4000, 6000), (200, 30, 30)).save(large, quality=90)
    measure = """if True:
        import resource, sys
        from dataset import load_image
        load_image(sys.argv[1])  # the decoder's own buffers, allocated once
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        load_image(sys.argv[2])
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)"""
    result = subprocess.run([sys.executable, '-c', measure, str(small), str(large)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 2 * 4000 * 6000 * 3  # 1.4 times here


def failure_of(argv, capsys):
    """The one error line that predict.py run as a script prints, as run_cli prints it there."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: predict.main(argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and 'Traceback' not in err
    errors = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1
    return errors[0]


def test_a_batch_too_large_for_memory_names_the_flag_that_needs_less(checkpoint, catalog):
    # 3,000 pictures at --batch-size 100000 peaked at 4.3 GiB: on a smaller machine the forward pass
    # runs out, as PyTorch's allocator says it (here raised where the batch becomes a tensor)
    pytorchs = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                'tried to allocate 5898240000 bytes. Error code 12 (Cannot allocate memory)')
    code = ('import runpy, sys, torch\n'
            'def allocates(*_):\n'
            f'    raise RuntimeError({pytorchs!r})\n'
            'torch.from_numpy = allocates\n'
            f'sys.argv = ["predict.py", "--checkpoint", {checkpoint!r}, {catalog_images(catalog)[0]!r}]\n'
            f'runpy.run_path({os.path.join(ROOT, "predict.py")!r}, run_name="__main__")\n')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 2 and done.stderr == (
        "error: out of memory: DefaultCPUAllocator: can't allocate memory: you tried to allocate 5898240000 bytes. "
        'Error code 12 (Cannot allocate memory); a smaller --batch-size needs less\n'), done.stderr


def test_nothing_to_predict_is_one_clear_error(checkpoint, catalog, tmp_path, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'readme.txt').write_text('no pictures here')
    (empty / '.hidden').mkdir()  # a folder of hidden ones: passed over, and said so
    shutil.copy(catalog_images(catalog)[0], empty / '.hidden' / 'a.jpg')
    shutil.copy(catalog_images(catalog)[0], empty / '.b.jpg')
    line = failure_of(['--checkpoint', checkpoint, str(empty)], capsys)
    assert line == (f"error: no image files ({', '.join(predict.IMAGE_EXTENSIONS)}) found in {empty} (names that "
                    "start with '.' are passed over)")
    missing = tmp_path / 'no-such-folder'
    line = failure_of(['--checkpoint', checkpoint, str(missing)], capsys)
    assert 'no such file or folder' in line and str(missing) in line
    line = failure_of(['--checkpoint', checkpoint, str(empty), '--output', 'out.txt'], capsys)
    assert '.csv or .json' in line


def test_files_from_a_list_predicts_each_named_path_in_order(checkpoint, catalog, photos, reference,
                                                           tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    images = catalog_images(catalog)
    shutil.copy(images[0], tmp_path / b'caf\xe9.jpg'.decode('utf-8', 'surrogateescape'))  # a Latin-1 name
    shutil.copytree(os.path.join(photos['folder'], 'nested'), tmp_path / 'nested')
    # As a list made on Windows may be: a UTF-8 mark, CRLF line ends, blank lines; relative paths
    # from the current folder, a folder, a picture gone since, and one named twice.
    for n in range(12):  # empty folders: noted, ten by name
        (tmp_path / f'empty{n:02}').mkdir()
    listed = [photos['readable'][1].encode(), b'caf\xe9.jpg', b'nested', b'gone.jpg', images[1].encode(),
              photos['readable'][1].encode(), b'./gone.jpg', *(f'empty{n:02}'.encode() for n in range(12)),
              b'empty00', b'./empty01']  # noted once each
    (tmp_path / 'files.txt').write_bytes(codecs.BOM_UTF8 + b'\r\n'.join(listed[:3]) + b'\r\n\r\n'
                                         + b'\n'.join(listed[3:]) + b'\n\n')
    out = tmp_path / 'p.csv'
    predict.main(['--checkpoint', checkpoint, photos['readable'][0], '--files-from', 'files.txt',
                  '--output', str(out), '--device', 'cpu', '--top-k', '1'])
    printed = capsys.readouterr().out
    assert "note: 1 path in files.txt is not there (gone.jpg); its row says so" in printed  # once, as its row
    assert [line for line in printed.splitlines() if 'without image' in line or 'no image' in line] == [
        *(f'note: no image files in empty{n:02}' for n in range(10)), 'note: and 2 more folders without image files']
    with open(out, newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [row['image'] for row in rows] == [photos['readable'][0], photos['readable'][1], 'caf\\xe9.jpg',
                                              os.path.join('nested', 'deeper', 'SHOUT.JPG'), 'gone.jpg', images[1]]
    assert rows[4]['error'] == 'no such file' and rows[4]['gender'] == ''
    for row, path in zip(rows[:2], photos['readable']):
        assert row['error'] == '' and row['article'] == reference[path]['article'][0]
    assert all(row['error'] == '' and row['gender'] for row in rows[2:4] + rows[5:])
    assert printed.rstrip().endswith('5 of 6 images predicted, 1 unreadable: 1 no such file; wrote ' + str(out))

    # '-' reads the list from the standard input; a list in UTF-16, as Windows PowerShell 5.1's `>`
    # writes it, with old Mac line ends; a missing name with a terminal's escape sequence in it.
    monkeypatch.setattr('sys.stdin', io.TextIOWrapper(io.BytesIO(images[2].encode() + b'\n')))
    predict.main(['--checkpoint', checkpoint, '--files-from', '-', '--output', str(out), '--device', 'cpu'])
    with open(out, newline='', encoding='utf-8') as f:
        assert [row['image'] for row in csv.DictReader(f)] == [images[2]]
    (tmp_path / 'utf16.txt').write_bytes(f'{images[3]}\r\x1b[31mred.jpg\r{images[4]}'.encode('utf-16'))
    capsys.readouterr()
    predict.main(['--checkpoint', checkpoint, '--files-from', 'utf16.txt', '--output', str(out), '--device', 'cpu'])
    assert 'note: 1 path in utf16.txt is not there (\\x1b[31mred.jpg); its row says so' in capsys.readouterr().out
    with open(out, newline='', encoding='utf-8') as f:
        assert [row['image'] for row in csv.DictReader(f)] == [images[3], '\x1b[31mred.jpg', images[4]]
    # and big-endian, with its byte-order mark
    (tmp_path / 'utf16be.txt').write_bytes(codecs.BOM_UTF16_BE + f'{images[3]}\r\n{images[4]}'.encode('utf-16-be'))
    assert predict.read_list('utf16be.txt') == [images[3], images[4]]


def test_a_list_from_windows_with_backslashes_and_a_broken_link_are_said_as_they_are(checkpoint, catalog, tmp_path,
                                                                                      monkeypatch, capsys):
    # PowerShell's `Get-ChildItem -Recurse -Name` writes sub\a.jpg: each such path was "not there";
    # a link that leads nowhere was "no such file or folder", on the command line or in the list.
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'sub').mkdir()
    shutil.copy(catalog_images(catalog)[0], tmp_path / 'sub' / 'a.jpg')
    shutil.copy(catalog_images(catalog)[1], tmp_path / 'b\\c.jpg')  # a Linux name with a backslash: as it is
    os.symlink('gone.jpg', tmp_path / 'link.jpg')
    (tmp_path / 'files.txt').write_bytes(b'sub\\a.jpg\r\nb\\c.jpg\r\nlink.jpg\r\nno\\such.jpg\r\n')
    predict.main(['--checkpoint', checkpoint, '--files-from', 'files.txt', '--device', 'cpu', '--top-k', '1',
                  '--output', 'p.csv'])
    out = capsys.readouterr().out
    assert 'note: 2 paths in files.txt are not there (link.jpg, no\\such.jpg); their rows say so' in out
    assert out.rstrip().endswith('2 of 4 images predicted, 2 unreadable: 1 a link that leads to no file, '
                                 '1 no such file; wrote p.csv')
    with open('p.csv', newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [(row['image'], row['error']) for row in rows] == [
        ('sub/a.jpg', ''), ('b\\c.jpg', ''), ('link.jpg', 'a link that leads to no file (gone.jpg)'),
        ('no\\such.jpg', 'no such file')]
    assert failure_of(['--checkpoint', checkpoint, 'link.jpg'], capsys) == (
        'error: cannot predict link.jpg (a link that leads to no file: gone.jpg)')


def test_a_list_that_names_no_pictures_is_one_clear_error(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'moved.txt').write_bytes(b'a.jpg\nb/c.jpg\n')  # made in another folder, say
    assert failure_of(['--checkpoint', checkpoint, '--files-from', 'moved.txt'], capsys) == (
        f'error: --files-from moved.txt: none of its 2 paths is there, e.g. a.jpg (no such file or folder); '
        f'relative paths are taken from the current folder, {tmp_path}')
    picture = tmp_path / 'a.jpg'
    Image.new('RGB', (60, 80), 'red').save(picture)  # given instead of the list
    # A line that ends in a space: said to be missing as a.jpg, which `ls` shows
    (tmp_path / 'spaced.txt').write_bytes(b'a.jpg \n')
    assert failure_of(['--checkpoint', checkpoint, '--files-from', 'spaced.txt'], capsys) == (
        "error: --files-from spaced.txt: none of its 1 path is there, e.g. 'a.jpg ' (no such file or folder; a.jpg, "
        f'without the spaces, is there); relative paths are taken from the current folder, {tmp_path}')
    assert failure_of(['--checkpoint', checkpoint, '--files-from', str(picture)], capsys).startswith(
        f'error: --files-from {picture}: holds NUL bytes, so it is no list of paths')
    # /dev/zero, read without end before: refused from its first bytes (a timeout, should it not be)
    zeros = run_script('predict.py', '--checkpoint', checkpoint, '--files-from', '/dev/zero', timeout=60)
    assert zeros.returncode == 2 and 'holds NUL bytes' in zeros.stderr
    # With a picture on the command line, a list of pictures that are all gone is a note and their rows.
    (tmp_path / 'gone.txt').write_text('b/c.jpg\n')
    predict.main(['--checkpoint', checkpoint, str(picture), '--files-from', 'gone.txt', '--device', 'cpu'])
    out = capsys.readouterr().out
    assert 'note: 1 path in gone.txt is not there (b/c.jpg); its row says so\n' in out
    (tmp_path / 'gone.txt').write_text('b/c.jpg\n a.jpg\n')  # with the picture given, a list of spaced names
    predict.main(['--checkpoint', checkpoint, str(picture), '--files-from', 'gone.txt', '--device', 'cpu'])
    assert ("note: 2 paths in gone.txt are not there (b/c.jpg, ' a.jpg'); their rows say so; 1 of them names a file "
            'that is there without the spaces around them\n') in capsys.readouterr().out
    assert '1 of 2 images predicted, 1 unreadable: 1 no such file\n' in out
    (tmp_path / 'blank.txt').write_text('\n  \n')
    assert failure_of(['--checkpoint', checkpoint, '--files-from', 'blank.txt'], capsys) == (
        'error: --files-from blank.txt: names no images or folders (it is empty)')
    assert failure_of(['--checkpoint', checkpoint, '--files-from', 'nothing.txt'], capsys) == (
        'error: --files-from nothing.txt: could not read it (No such file or directory)')
    (tmp_path / 'empty').mkdir()
    typed = io.TextIOWrapper(io.BytesIO(b'empty\n'))
    typed.isatty = lambda: True  # typed at a terminal, where the script would seem to hang
    monkeypatch.setattr('sys.stdin', typed)
    with pytest.raises(SystemExit):
        run_cli(lambda: predict.main(['--checkpoint', checkpoint, '--files-from', '-']))
    assert capsys.readouterr().err.splitlines() == [
        'reading the paths from the terminal, one a line; end the list with Ctrl-D',
        f"error: no image files ({', '.join(predict.IMAGE_EXTENSIONS)}) found in the 1 folder in the standard "
        "input (names that start with '.' are passed over)"]
    monkeypatch.setattr('sys.stdin', None)  # started with it closed: `<&-`
    assert failure_of(['--checkpoint', checkpoint, '--files-from', '-'], capsys) == (
        'error: --files-from -: there is no standard input to read the list from')
    noise = bytes(byte for byte in range(1, 256) if byte not in b'\r\n') * 8  # no NUL, no line break
    (tmp_path / 'noise.bin').write_bytes(noise)
    line = failure_of(['--checkpoint', checkpoint, '--files-from', 'noise.bin'], capsys)
    assert line.startswith('error: --files-from noise.bin: none of its 1 path is there, e.g. \\x01\\x02')
    example = line.split('e.g. ', 1)[1].split(' (no such file', 1)[0]
    assert len(example) == 100 and example.endswith('...')  # of a line of 2,016 bytes
    with pytest.raises(SystemExit):
        predict.parse_args(['--checkpoint', checkpoint, '--files-from', ''])
    assert "--files-from '': no file name" in capsys.readouterr().err
    # Given twice, the second list replaced the first, whose pictures were left out without a word
    with pytest.raises(SystemExit) as refused:
        predict.parse_args(['--checkpoint', checkpoint, '--files-from', 'a.txt', 'b.jpg', '--files-from', 'my list'])
    assert refused.value.code == 2 and capsys.readouterr().err.endswith(
        ": error: --files-from given twice: one list is read, and a.txt would be left out for 'my list'; "
        "give one list (cat a.txt 'my list' > both.txt)\n")
    with pytest.raises(SystemExit):  # a terminal's escape sequence in a name: named, not run
        predict.parse_args(['--checkpoint', checkpoint, '--files-from', 'a.txt', '--files-from', 'b\x1b[2J.txt'])
    assert "(cat a.txt $'b\\x1b[2J.txt' > both.txt)" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys):
    picture = tmp_path / 'a.jpg'
    Image.new('RGB', (60, 80), 'red').save(picture)
    unread = str(tmp_path / 'no-such-checkpoint.pth')  # the model is never loaded: these fail first
    line = failure_of(['--checkpoint', unread, str(picture), '--output', str(picture / 'out' / 'p.csv')], capsys)
    assert line == f'error: --output {picture / "out" / "p.csv"}: {picture} is a file, not a folder'
    line = failure_of(['--checkpoint', unread, str(picture), '--export', str(tmp_path / 'm.onnx'),
                       '--output', str(tmp_path / 'm.json')], capsys)
    assert line.startswith(f'error: --output {tmp_path / "m.json"}: --export {tmp_path / "m.onnx"} writes its label')
    long = 'p' * 247 + '.csv'  # 251 bytes: its temporary file keeps its last 239 (atomic.kept_end)
    for name, left in [('p.csv', '.tmp-2147483646-p.csv'), (long, '.tmp-2147483646-' + long[-239:])]:
        (tmp_path / left).write_text('image,gender')  # a predict.py killed while writing it: removed first
        failure_of(['--checkpoint', unread, str(picture), '--output', str(tmp_path / name)], capsys)
        assert not (tmp_path / left).exists(), name
    # `--output "$OUT"` with OUT unset, and a name that is only the extension: refused, not ignored
    for empty in ('', str(tmp_path / '.csv')):
        line = failure_of(['--checkpoint', unread, str(picture), '--output', empty], capsys)
        assert line == f"error: --output {shlex.quote(empty)}: no file name; give one such as predictions.csv"
    assert os.listdir(tmp_path) == ['a.jpg']


def test_a_checkpoint_whose_answers_overflow_is_refused_not_printed_as_nan(checkpoint, photos, tmp_path):
    # "Women nan%  Sunglasses nan%  Pink nan%"
    path = checkpoint_save(str(tmp_path / 'huge.pth'), overflowing(checkpoint_load(checkpoint)))
    out = tmp_path / 'out.csv'
    with pytest.raises(UserError, match=f'^{re.escape(path)}: its model answers NaN or infinity for '
                                        f'{re.escape(photos["readable"][0])}: its weights, though finite'):
        predict.main(['--checkpoint', path, *photos['readable'], '--output', str(out), '--device', 'cpu'])
    assert not out.exists()


def test_only_broken_images_fail_naming_each(checkpoint, tmp_path, capsys):
    (tmp_path / 'truncated.jpg').write_bytes(truncated_jpeg(Image.new('RGB', (60, 80), 'red')))
    (tmp_path / 'notes.jpg').write_text('<html>404 not found</html>')
    (tmp_path / 'zero.png').write_bytes(b'')
    (tmp_path / 'bad\nname\x1b[31m.jpg').write_text('')  # on one line, no colour: escaped as in the table
    line = failure_of(['--checkpoint', checkpoint, str(tmp_path), '--device', 'cpu'], capsys)
    assert 'none of the image files could be read (4 files)' in line
    for name, why in [('truncated.jpg', 'truncated'), ('notes.jpg', 'not an image'), ('zero.png', 'empty'),
                      ('bad\\nname\\x1b[31m.jpg', 'empty')]:
        assert f'{tmp_path / name} ({why}' in line



def test_a_file_name_with_a_line_break_or_an_escape_sequence_stays_on_its_line_of_the_table(checkpoint, tmp_path,
                                                                                           capsys):
    names = ['two\nlines.png', 'red\x1b[31m.png']  # Linux allows both; a terminal would obey the second
    for name in names:
        Image.new('RGB', (60, 80), 'red').save(tmp_path / name, format='PNG')
    predict.main(['--checkpoint', checkpoint, str(tmp_path), '--device', 'cpu', '--top-k', '1',
                  '--output', str(tmp_path / 'p.json')])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and '\x1b' not in ''.join(lines)  # device, header, a line each, the summary
    assert lines[2].startswith(str(tmp_path / 'red\\x1b[31m.png'))
    assert lines[3].startswith(str(tmp_path / 'two\\nlines.png'))
    with open(tmp_path / 'p.json') as f:  # the output file keeps the names as they are
        assert sorted(row['image'] for row in json.load(f)) == sorted(str(tmp_path / name) for name in names)

def test_names_with_wide_or_combining_characters_keep_the_table_aligned(checkpoint, tmp_path, capsys):
    # 日本 takes four columns of a terminal, not two; the e and its accent written apart, one.
    names = {'a.png': 5, '日本.png': 8, 'cafe\u0301.png': 8}  # and the terminal columns each takes
    for name in names:
        Image.new('RGB', (60, 80), 'red').save(tmp_path / name, format='PNG')
    predict.main(['--checkpoint', checkpoint, str(tmp_path), '--device', 'cpu', '--top-k', '1'])
    lines = capsys.readouterr().out.splitlines()[1:-1]  # the header and a line each
    assert len(lines) == 4
    starts = set()  # the terminal column where the gender column starts, on each line
    widths = {'image': 5, **{str(tmp_path / name): len(str(tmp_path)) + 1 + width for name, width in names.items()}}
    for line, name in zip(lines, ['image', *sorted(str(tmp_path / name) for name in names)]):
        rest = line.removeprefix(name)
        starts.add(widths[name] + len(rest) - len(rest.lstrip(' ')))
    assert len(starts) == 1, lines


@pytest.mark.parametrize('encoding, shown_as', [('utf-8', 'thé.jpg'), ('ascii', 'th\\xe9.jpg')])
def test_the_table_pads_each_name_as_the_terminal_shows_it(monkeypatch, encoding, shown_as):
    monkeypatch.setattr(sys, 'stdout', io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors='shown'))
    answer = {head: [('X', 0.5)] for head in HEADS}
    lines = predict.format_table([{'image': 'thé.jpg', 'error': '', **answer}, {'image': 'b.jpg', 'error': '', **answer}])
    assert lines[1].startswith(shown_as) and lines[1].index('X') == lines[2].index('X') == len(shown_as) + 2


def test_a_picture_over_pillows_limit_is_predicted_without_its_warning_and_one_over_twice_refused(checkpoint,
                                                                                                  tmp_path):
    # Pillow warns of a picture over Image.MAX_IMAGE_PIXELS (89 megapixels) in two lines naming its own source,
    # and refuses one over twice that. Here the limit is lowered to 10,000 pixels, as the script runs, so that
    # the pictures stay small: 120x100 is in the band it only warns of, 200x150 over twice the limit.
    Image.new('RGB', (60, 80), 'red').save(tmp_path / 'small.png')
    Image.new('RGB', (120, 100), 'red').save(tmp_path / 'over.png')
    Image.new('RGB', (200, 150), 'red').save(tmp_path / 'over-twice.png')
    argv = ['predict.py', '--checkpoint', checkpoint, str(tmp_path), '--device', 'cpu']
    code = (f'import runpy, sys; from PIL import Image; Image.MAX_IMAGE_PIXELS = 10_000; sys.argv = {argv!r}; '
            f'runpy.run_path({os.path.join(ROOT, "predict.py")!r}, run_name="__main__")')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == '', result.stderr
    rows = {line.split(' ', 1)[0]: line for line in result.stdout.splitlines()}
    assert 'error' not in rows[str(tmp_path / 'over.png')]
    assert rows[str(tmp_path / 'over-twice.png')].endswith(
        "error: too large to open safely (more than 0 megapixels, Pillow's limit against decompression bombs); "
        'scale it down first')
    assert '2 of 3 images predicted, 1 unreadable: 1 too large to open safely\n' in result.stdout


def test_a_photo_with_damaged_exif_is_predicted_without_pillows_warning(checkpoint, catalog, tmp_path):
    # Pillow read the picture all the same, and printed two lines naming its own source file: "UserWarning:
    # Corrupt EXIF data. Expecting to read 12 bytes but only got 2.", "Tag data larger than file. Skipping
    # tag 270", "Truncated File Read" (train.py --data loader too). As a script: pytest sets the warning
    # filters of each test itself.
    damages = ('count', 'length', 'place')
    with Image.open(catalog_images(catalog)[0]) as img:
        for damage in damages:
            (tmp_path / f'{damage}.jpg').write_bytes(damaged_exif_jpeg(img.convert('RGB'), damage))
        img.convert('RGB').save(tmp_path / 'clean.jpg', quality=95)
    result = run_script('predict.py', '--checkpoint', checkpoint, tmp_path / 'clean.jpg',
                        *(tmp_path / f'{damage}.jpg' for damage in damages),
                        '--output', tmp_path / 'p.csv', '--device', 'cpu')
    assert result.returncode == 0 and result.stderr == '', result.stderr
    with open(tmp_path / 'p.csv') as f:
        clean, *damaged = [row[1:] for row in csv.reader(f)][1:]
    assert damaged == [clean] * len(damages) and not clean[-1]  # the same answers, and no error


def test_a_stop_drops_the_decodes_queued_ahead_instead_of_waiting_for_them(monkeypatch):
    # A Ctrl-C or a kill while the model runs: the next batch's decodes, queued (a batch of
    # full-size photos, tens of seconds), all ran before the stop came through.
    started = []

    def slow_read(path):
        started.append(path)
        time.sleep(0.02)
        return np.full((80, 60, 3), 255, np.uint8), None

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, 'read_image', slow_read)
    monkeypatch.setattr(predict, 'top_k', interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict.predict_all(None, None, [f'{i}.jpg' for i in range(200)],
                            argparse.Namespace(batch_size=40, top_k=1), torch.device('cpu'))
    assert len(started) < 40 + 30  # the first batch, and of the 40 queued ahead only those under way (8 at most)


def test_an_output_that_fails_during_the_run_still_prints_the_predictions(checkpoint, catalog, tmp_path,
                                                                       monkeypatch, capsys):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(predict, 'atomic_open', full_disk)  # the folder passed the early check
    out, picture = tmp_path / 'predictions.csv', catalog_images(catalog)[0]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: predict.main(['--checkpoint', checkpoint, picture, '--output', str(out),
                                      '--device', 'cpu']))
    printed = capsys.readouterr()
    assert exit_info.value.code == 2 and 'Traceback' not in printed.err
    assert f'error: --output {out}: could not write it (No space left on device)' in printed.err
    assert any(line.startswith(picture + ' ') for line in printed.out.splitlines())  # its table row
    assert '1 of 1 image predicted\n' in printed.out and not out.exists()


@exports
def test_onnx_export_matches_pytorch_for_any_batch_size(checkpoint, catalog, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    onnx_path = tmp_path / 'serving' / 'model.onnx'
    predict.main(['--checkpoint', checkpoint, '--export', str(onnx_path)])
    from export_onnx import check_export
    check_export(str(onnx_path))  # both files taken as its own: a new export may replace them
    assert sorted(os.listdir(onnx_path.parent)) == ['model.json', 'model.onnx']  # the weights inside, no .data
    sidecar = json.loads((tmp_path / 'serving' / 'model.json').read_text())
    model, attributes, _ = model_from_checkpoint(checkpoint)
    model.eval()
    assert sidecar['labels'] == attributes.to_dict() and sidecar['outputs'] == list(HEADS)
    prep = sidecar['preprocessing']
    assert (prep['height'], prep['width'], prep['channel_order']) == (80, 60, 'RGB')
    assert prep['value_range'] == [0, 1]
    assert prep['mean'] == [0.485, 0.456, 0.406] and prep['std'] == [0.229, 0.224, 0.225]
    assert prep['resize']['keep_aspect_ratio'] and prep['resize']['pad_value'] == list(WHITE)

    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == [sidecar['input']['name']] == ['image']
    assert sidecar['input']['shape'] == ['batch', 3, 80, 60] and session.get_inputs()[0].shape[1:] == [3, 80, 60]
    assert [o.name for o in session.get_outputs()] == ['gender', 'article', 'color']
    # what else the label file says of the model: its name beside it, its input's type, its opset
    import onnx
    assert sidecar['model'] == 'model.onnx' and sidecar['input']['dtype'] == 'float32'
    assert session.get_inputs()[0].type == 'tensor(float)'
    assert sidecar['opset'] == next(o.version for o in onnx.load(str(onnx_path)).opset_import if o.domain == '')
    # ...and the model itself, for a serving stack that keeps it alone
    kept = session.get_modelmeta().custom_metadata_map
    assert {key: json.loads(text) if key not in ('format', 'model', 'output_kind') else text
            for key, text in kept.items()} == sidecar
    arrays = [predict.read_image(path)[0] for path in catalog_images(catalog)[:5]]
    batch = prepare_batch(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2))
    for images in (batch, batch[:1]):
        with torch.no_grad():
            expected = model(images)
        got = session.run(None, {'image': images.numpy()})
        for head, logits in zip(HEADS, got):
            assert logits.shape == tuple(expected[head].shape)
            np.testing.assert_allclose(logits, expected[head].numpy(), rtol=0, atol=1e-4)


@exports
def test_an_export_of_a_model_whose_answers_overflow_is_refused_naming_the_heads(checkpoint, tmp_path):
    # Weights finite but 1e30 times a trained model's: the export wrote a model whose every answer
    # is NaN, with no word; predict.py refused the checkpoint only when it had pictures to predict.
    pytest.importorskip('onnxscript')
    onnx_path = tmp_path / 'model.onnx'
    old_model, old_labels = old_export(onnx_path)
    huge = checkpoint_save(str(tmp_path / 'huge.pth'), overflowing(checkpoint_load(checkpoint)))
    state = checkpoint_load(checkpoint)  # its colour head's alone: named alone
    state['model'] = dict(state['model'], **{'color.1.weight': torch.full_like(state['model']['color.1.weight'], 3e38)})
    colour = checkpoint_save(str(tmp_path / 'colour.pth'), state)
    # Untrained (batch-norm means 0): a picture of the mean colour, 0 once normalised, stays 0 through
    # the scaled batch norms, and its answers are numbers; a white or a black one's are not.
    torch.manual_seed(0)
    untrained = MultiOutputModel.for_attributes(AttributesDataset(vocab=state['attributes']))
    fresh = checkpoint_save(str(tmp_path / 'fresh.pth'), overflowing(dict(state, model=untrained.state_dict())))
    for path, outputs in [(huge, 'gender, article and colour outputs'), (colour, 'colour output'),
                          (fresh, 'gender, article and colour outputs')]:
        with pytest.raises(UserError) as raised:
            predict.main(['--checkpoint', path, '--export', str(onnx_path)])
        assert str(raised.value) == (f'{path}: its model answers NaN or infinity in its {outputs} on the pictures '
                                     f'--export {onnx_path} traces it with (a white one and a black one): its weights, '
                                     'though finite, are too large to compute with. Use another checkpoint of the run')
        assert onnx_path.read_bytes() == old_model and (tmp_path / 'model.json').read_text() == old_labels
    assert sorted(os.listdir(tmp_path)) == ['colour.pth', 'fresh.pth', 'huge.pth', 'model.json', 'model.onnx']


def writes_model(content):
    """export_onnx.write_onnx, pretended: a file of that content where the model goes."""
    return lambda model, path, described: open(path, 'wb').write(content)


@exports
def test_export_without_the_onnx_extra_says_what_to_install(checkpoint, tmp_path, monkeypatch):
    from export_onnx import export_onnx
    monkeypatch.setitem(sys.modules, 'onnxscript', None)  # as if it were not installed
    model, attributes, _ = model_from_checkpoint(checkpoint)
    pip = f'{re.escape(shlex.quote(this_python()))} -m pip install'  # into this Python, not a bare pip's
    with pytest.raises(UserError, match=f'{pip} -r requirements-onnx.txt$'):
        export_onnx(model, attributes, str(tmp_path / 'model.onnx'), checkpoint)
    assert not os.listdir(tmp_path)
    monkeypatch.chdir(tmp_path)  # from another folder than the project's: the file named by its path
    with pytest.raises(UserError, match=f'{pip} -r {re.escape(ROOT)}/requirements-onnx.txt$'):
        export_onnx(model, attributes, str(tmp_path / 'model.onnx'), checkpoint)


@exports
def test_export_with_an_onnxscript_older_than_pytorch_says_to_upgrade_before_the_checkpoint_is_loaded(
        tmp_path, monkeypatch, capsys):
    # onnxscript 0.5.0 beside PyTorch 2.14 lacks the module 2.14's exporter imports: the export
    # ended in a traceback from inside torch.onnx ('No module named onnxscript._framework_apis.torch_2_11').
    import export_onnx
    name = export_onnx.onnxscript_api_for_torch()
    if name is None:
        pytest.skip('this PyTorch does not name the onnxscript module its exporter imports where we look')
    monkeypatch.setitem(sys.modules, name, None)  # as an older onnxscript, which lacks it
    error = failure_of(['--checkpoint', str(tmp_path / 'no-such.pth'), '--export', str(tmp_path / 'model.onnx')],
                       capsys)
    assert error == (f'error: exporting to ONNX with PyTorch {torch.__version__} needs a newer onnxscript than '
                     f'{sys.modules["onnxscript"].__version__}, which lacks {name}: '
                     f'{shlex.quote(this_python())} -m pip install --upgrade onnxscript onnx')
    assert not os.listdir(tmp_path)


@exports
def test_a_module_the_exporter_imports_as_it_runs_that_is_missing_is_named_and_nothing_is_replaced(checkpoint,
                                                                                                  tmp_path):
    # torch.onnx.export imports onnx_ir (and modules of onnx and onnxscript) only as it runs, past
    # what is checked first: one missing ended in a traceback ('import of onnx_ir halted'). A fresh
    # Python, as torch.onnx keeps what it imported once; onnx_ir hidden once check_export passed.
    pytest.importorskip('onnxscript')
    onnx_path = tmp_path / 'model.onnx'
    old_model, old_labels = old_export(onnx_path)
    run_predict = ('import runpy, sys, export_onnx; export_onnx.require_exporter(); sys.modules["onnx_ir"] = None; '
                   f'sys.argv[0] = "predict.py"; runpy.run_path({os.path.join(ROOT, "predict.py")!r}, '
                   'run_name="__main__")')
    result = subprocess.run([sys.executable, '-c', run_predict, '--checkpoint', checkpoint, '--export', str(onnx_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f'error: --export {onnx_path}: exporting to ONNX with PyTorch {torch.__version__} needs onnx_ir, which is '
        f'not installed: {shlex.quote(this_python())} -m pip install --upgrade onnxscript onnx onnx_ir')
    assert onnx_path.read_bytes() == old_model and (tmp_path / 'model.json').read_text() == old_labels
    assert sorted(os.listdir(tmp_path)) == ['model.json', 'model.onnx']  # no temporary file left


@exports
@pytest.mark.parametrize('error, needs', [
    (ModuleNotFoundError("No module named 'onnxscript.nothing'", name='onnxscript.nothing'),
     'onnxscript.nothing, which the installed onnxscript {version} lacks'),
    (ImportError("cannot import name 'nothing' from 'onnx'", name='onnx'),
     "onnx, which did not import (cannot import name 'nothing' from 'onnx')"),
    (ImportError('a failure of its own'), 'a module that did not import (a failure of its own)')],
    ids=['a module an older onnxscript lacks', 'a name an older onnx lacks', 'no module named'])
def test_an_import_that_fails_inside_the_exporter_says_what_to_upgrade(checkpoint, tmp_path, monkeypatch, error,
                                                                       needs):
    onnxscript = pytest.importorskip('onnxscript')
    from export_onnx import export_onnx

    def fails(*args, **kwargs):
        raise error
    monkeypatch.setattr(torch.onnx, 'export', fails)
    model, attributes, _ = model_from_checkpoint(checkpoint)
    onnx_path = tmp_path / 'model.onnx'
    with pytest.raises(UserError) as raised:
        export_onnx(model, attributes, str(onnx_path), checkpoint)
    assert str(raised.value) == (f'--export {onnx_path}: exporting to ONNX with PyTorch {torch.__version__} needs '
                                 f'{needs.format(version=onnxscript.__version__)}: {shlex.quote(this_python())} -m '
                                 'pip install --upgrade onnxscript onnx')
    assert not os.listdir(tmp_path)


@exports
def test_a_module_that_onnxscripts_module_for_this_pytorch_imports_is_named_not_taken_for_it(tmp_path, monkeypatch,
                                                                                             capsys):
    # onnx_ir missing as onnxscript._framework_apis.torch_2_11 was checked (it imports onnx_ir) was
    # said as that module missing: 'needs a newer onnxscript than 0.7.2', the newest.
    import export_onnx
    if export_onnx.onnxscript_api_for_torch() is None:
        pytest.skip('this PyTorch does not name the onnxscript module its exporter imports where we look')

    def import_module(name):
        raise ModuleNotFoundError("No module named 'onnx_ir'", name='onnx_ir')
    monkeypatch.setattr(export_onnx, 'importlib', types.SimpleNamespace(import_module=import_module))
    error = failure_of(['--checkpoint', str(tmp_path / 'no-such.pth'), '--export', str(tmp_path / 'model.onnx')],
                       capsys)
    assert error == (f'error: exporting to ONNX with PyTorch {torch.__version__} needs onnx_ir, which is not '
                     f'installed: {shlex.quote(this_python())} -m pip install --upgrade onnxscript onnx onnx_ir')
    assert not os.listdir(tmp_path)


def test_export_on_pytorch_2_6_says_to_upgrade_before_anything_is_written(checkpoint, tmp_path, monkeypatch):
    # PyTorch 2.6 (requirements.txt's lowest) trains and predicts, but its exporter raised from
    # deep inside on this model, with any onnxscript; 2.7's exports it.
    from export_onnx import export_onnx, onnxscript_api_for_torch, require_exporter
    monkeypatch.setattr(torch, '__version__', torch.torch_version.TorchVersion('2.6.0+cu124'))
    model, attributes, _ = model_from_checkpoint(checkpoint)
    with pytest.raises(UserError, match=r'^exporting to ONNX needs PyTorch 2\.7 or newer \(this is 2\.6\.0\+cu124, '
                                        r'whose exporter fails on this model\): '
                                        f'{re.escape(shlex.quote(this_python()))} -m pip install --upgrade torch'):
        export_onnx(model, attributes, str(tmp_path / 'model.onnx'), checkpoint)
    assert not os.listdir(tmp_path)
    monkeypatch.setattr(torch, '__version__', torch.torch_version.TorchVersion('2.7.0'))
    # As if installed: beside PyTorch 2.6 they are not (their file asks for 2.7); an onnxscript with
    # the module this PyTorch's exporter imports.
    for name in ('onnx', 'onnxscript', *filter(None, [onnxscript_api_for_torch()])):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    require_exporter()  # not refused


@exports
def test_a_device_that_is_not_there_is_refused_before_the_export_is_written(checkpoint, catalog, tmp_path,
                                                                           monkeypatch):
    pytest.importorskip('onnxscript')  # else its absence is said first
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(UserError, match='^--device cuda: no CUDA GPU is available on this machine'):
        predict.main(['--checkpoint', checkpoint, '--export', str(tmp_path / 'model.onnx'), '--device', 'cuda',
                      catalog_images(catalog)[0]])
    with pytest.raises(UserError, match='^--device tpu: not a device name'):  # with no pictures to predict too
        predict.main(['--checkpoint', checkpoint, '--export', str(tmp_path / 'model.onnx'), '--device', 'tpu'])
    assert not os.listdir(tmp_path)


def test_export_onnx_run_as_a_script_says_how_to_export():
    result = run_script('export_onnx.py', 'model.pth')
    assert result.returncode == 1 and 'python predict.py --checkpoint' in result.stderr and '--export' in result.stderr
    asked = run_script('export_onnx.py', '--help')  # an answer, not a failure
    assert asked.returncode == 0 and 'python predict.py --checkpoint' in asked.stdout and not asked.stderr


@pytest.mark.parametrize('terminal, tea', [
    ({'PYTHONIOENCODING': 'utf-8'}, 'thé.jpg'),  # a terminal that takes UTF-8 only
    ({'PYTHONIOENCODING': 'ascii'}, 'th\\xe9.jpg'),  # one that takes ASCII only
    # the C locale, as Python leaves it: ASCII for the terminal, and the files' default too
    ({'LC_ALL': 'C', 'PYTHONCOERCECLOCALE': '0', 'PYTHONUTF8': '0', 'PYTHONIOENCODING': ''}, 'th\\xe9.jpg'),
])
def test_a_file_name_that_is_not_utf8_is_predicted_and_written_as_escapes(checkpoint, catalog, tmp_path, terminal,
                                                                         tea):
    folder = tmp_path / 'photos'
    folder.mkdir()
    shutil.copy(catalog_images(catalog)[0], folder / os.fsdecode(b'caf\xe9.jpg'))
    shutil.copy(catalog_images(catalog)[1], folder / 'thé.jpg')
    # --output named so too: the line saying it was written failed after writing it, and the run
    # reported an error. The file is UTF-8 whatever the locale.
    out = tmp_path / os.fsdecode(b'predictions-\xff.csv')
    result = run_script('predict.py', '--checkpoint', checkpoint, folder, '--output', out, '--device', 'cpu',
                        env=terminal)
    assert result.returncode == 0, result.stderr
    with open(out, newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [row['image'] for row in rows] == [os.path.join(str(folder), name) for name in ('caf\\xe9.jpg', 'thé.jpg')]
    assert all(row['error'] == '' and row['gender'] for row in rows)
    assert 'caf\\xe9.jpg' in result.stdout and tea in result.stdout
    assert f'2 of 2 images predicted; wrote {tmp_path}/predictions-\\xff.csv' in result.stdout


def test_the_summary_counts_a_thousand_pictures_with_a_separator(checkpoint, catalog, tmp_path, capsys):
    folder = tmp_path / 'many'
    folder.mkdir()
    picture = catalog_images(catalog)[0]
    for number in range(1001):
        shutil.copyfile(picture, folder / f'{number}.jpg')
    predict.main(['--checkpoint', checkpoint, str(folder), '--output', str(tmp_path / 'out.csv'), '--device', 'cpu'])
    assert f'1,001 of 1,001 images predicted; wrote {tmp_path / "out.csv"}\n' in capsys.readouterr().out


@pytest.mark.parametrize('case', ['after the first line', 'in the same pipe as the progress bar', 'after a note'])
def test_a_reader_that_stops_early_still_gets_the_output_file_written(checkpoint, catalog, tmp_path, case):
    # With --output the file is the run's work, as test.py's is. A reader that stopped after a note
    # (`| head -1`) or on the progress bar (`2>&1 | head -1`) stopped the run before the file was
    # written: status 1, no word said (nowhere to say it), no predictions.
    out = tmp_path / 'predictions.csv'
    images = os.path.join(catalog['root'], 'images')
    given = ['--files-from', '-'] if case == 'after a note' else [images]
    command = [sys.executable, os.path.join(ROOT, 'predict.py'), '--checkpoint', checkpoint, *given,
               '--output', str(out), '--device', 'cpu', '--batch-size', '4']
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    stderr = subprocess.STDOUT if case == 'in the same pipe as the progress bar' else subprocess.PIPE
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env) as process:
        process.stdin.write(f'{images}\n{tmp_path / "gone.jpg"}\n'.encode())
        process.stdin.close()
        first = process.stdout.readline()
        assert first.startswith(b'note:' if case == 'after a note' else b'device:'), first
        process.stdout.close()  # like `| head -1`, it stops reading
        errors = process.stderr.read().decode() if process.stderr else ''
    assert process.returncode == 0 and 'Traceback' not in errors, errors
    assert len(list(csv.DictReader(out.open(newline='')))) == 16 + (case == 'after a note')


def test_a_reader_that_stops_early_stops_a_run_without_output_files_quietly(checkpoint, catalog):
    # Nothing is lost then: the predictions of the pictures still to come would go nowhere.
    command = [sys.executable, os.path.join(ROOT, 'predict.py'), '--checkpoint', checkpoint,
               os.path.join(catalog['root'], 'images'), '--device', 'cpu', '--batch-size', '4']
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as process:
        assert process.stdout.readline().startswith(b'device:')
        process.stdout.close()
    assert process.returncode == 1


def test_a_file_under_two_spellings_is_predicted_once(catalog, tmp_path, monkeypatch):
    monkeypatch.chdir(catalog['root'])
    first = sorted(os.listdir('images'))[0]
    found = predict.find_images(['./images', f'images/{first}', 'images/', 'images/../images'])
    assert len(found) == 16 and found[0] == os.path.join('./images', first)
    # But link/../a.jpg is the a.jpg beside the folder the link points to, not this a.jpg.
    for folder, picture in (('here', 0), ('real', 1)):
        (tmp_path / folder).mkdir()
        shutil.copy(catalog_images(catalog)[picture], tmp_path / folder / 'a.jpg')
    (tmp_path / 'real' / 'sub').mkdir()
    (tmp_path / 'here' / 'link').symlink_to(tmp_path / 'real' / 'sub')
    monkeypatch.chdir(tmp_path / 'here')
    assert predict.find_images(['a.jpg', 'link/../a.jpg']) == ['a.jpg', 'link/../a.jpg']
    # Nor are two names that are links to one stored file (git-annex, DVC) one picture.
    for name in ('b.jpg', 'c.jpg'):
        os.symlink(tmp_path / 'real' / 'a.jpg', name)
    assert predict.find_images(['b.jpg', 'c.jpg']) == ['b.jpg', 'c.jpg']


def test_linked_folders_are_walked_each_real_folder_once(catalog, tmp_path, monkeypatch):
    photos, elsewhere = tmp_path / 'photos', tmp_path / 'elsewhere'
    photos.mkdir()
    elsewhere.mkdir()
    shutil.copy(catalog_images(catalog)[0], photos / 'a.jpg')
    shutil.copy(catalog_images(catalog)[1], elsewhere / 'b.jpg')
    (photos / 'more').symlink_to('../elsewhere')  # pictures kept on another disk, say
    (photos / 'again').symlink_to('../elsewhere')
    (photos / 'loop').symlink_to('..')  # a link to a folder above, which would never end
    listed, real_scandir = [], os.scandir
    monkeypatch.setattr(os, 'scandir', lambda path='.': listed.append(path) or real_scandir(path))
    assert predict.find_images([str(photos)]) == [str(photos / 'a.jpg'), str(photos / 'again' / 'b.jpg')]
    # The loop left at its first turn: os.walk went on round it until a path held 40 links (200
    # folders listed here, and the whole library again at each turn for real photos); the pictures
    # found twice were then dropped as duplicates, so only the time showed it.
    assert len(listed) < 10, listed


def locked_folder_of_pictures(catalog, tmp_path, monkeypatch):
    """tmp_path/locked, full of the catalog's pictures, which the system refuses to list: chmod 000,
    pretended, since the tests may run as root, who reads anyway."""
    locked = tmp_path / 'locked'
    shutil.copytree(os.path.join(catalog['root'], 'images'), locked)
    real_scandir = os.scandir

    def scandir(path='.'):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, 'Permission denied', os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, 'scandir', scandir)
    return locked


def test_a_folder_the_system_will_not_list_is_named(catalog, tmp_path, monkeypatch, capsys):
    locked = locked_folder_of_pictures(catalog, tmp_path, monkeypatch)
    with pytest.raises(UserError, match=f'no image files .* found in {tmp_path} .*; could not read {locked} '
                                        r'\(Permission denied\)'):
        predict.find_images([str(tmp_path)])
    shutil.copy(catalog_images(catalog)[0], tmp_path / 'a.jpg')
    assert predict.find_images([str(tmp_path)]) == [str(tmp_path / 'a.jpg')]
    assert f'note: could not read {locked} (Permission denied); its pictures are left out' in capsys.readouterr().out

    def refuse(path, **kwargs):  # a folder on the way that may not be entered
        raise PermissionError(13, 'Permission denied', path)

    monkeypatch.setattr(os, 'stat', refuse)
    with pytest.raises(UserError, match=r'cannot predict .*a.jpg \(Permission denied\)'):
        predict.find_images([str(tmp_path / 'a.jpg')])


def test_an_output_that_is_a_folder_is_refused_before_any_work(tmp_path, capsys):
    for name in ('out.csv', 'results'):  # a folder's name rarely ends in .csv: said as a folder either way
        (tmp_path / name).mkdir()
        line = failure_of(['--checkpoint', str(tmp_path / 'no-such.pth'), str(tmp_path), '--output',
                           str(tmp_path / name)], capsys)
        assert line.startswith(f'error: --output {tmp_path / name}: is a folder; name the file to write in it')


def test_an_output_name_longer_than_a_file_system_allows_is_refused_before_any_work(tmp_path, capsys):
    # Written by a rename at the end, it failed once every picture had been predicted.
    output = tmp_path / ('a' * 252 + '.csv')
    line = failure_of(['--checkpoint', str(tmp_path / 'no-such.pth'), str(tmp_path), '--output', str(output)], capsys)
    assert line == f'error: --output {output}: the name {"a" * 40}... is longer than the 255 bytes a file system allows'


def test_an_output_file_that_holds_anything_but_predictions_is_kept_and_predictions_are_replaced(
        checkpoint, catalog, tmp_path, capsys):
    # `--output val.csv` or `--output metrics.json` by mistake: the user's split or a run's figures
    # were replaced by predictions.
    split = tmp_path / 'val.csv'
    split.write_text('image_path,gender,articleType,baseColour\nimages/1.jpg,Men,Shirts,Blue\n')
    metrics = tmp_path / 'metrics.json'
    metrics.write_text('{"gender_accuracy": 0.9}')
    picture = shutil.copy(catalog_images(catalog)[0], tmp_path / 'picture.csv')
    archive = shutil.copy(checkpoint, tmp_path / 'archive.json')
    (tmp_path / 'packages.csv').write_text('PKG,version\n')  # begins as a zip archive does, and is text
    for path, said in [(split, "its first line is 'image_path,gender,articleType,baseColour'"),
                       (metrics, """its first line is '{"gender_accuracy": 0.9}'"""),
                       (picture, 'it is a JPEG picture'),  # not its bytes as characters
                       (archive, 'it is a zip archive (a PyTorch checkpoint?)'),
                       (tmp_path / 'packages.csv', "its first line is 'PKG,version'")]:
        kept = open(path, 'rb').read()
        error = failure_of(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--output', str(path)], capsys)
        assert error == (f"error: --output {path}: holds no predictions of predict.py ({said}), "
                         'and would be replaced; move it away or give another name')
        assert open(path, 'rb').read() == kept
    annotations = tmp_path / 'annotations.json'  # begins as predict.py's JSON does
    annotations.write_text('[{"image": "photos/1.jpg", "label": "cat", "bbox": [1, 2, 3, 4]}]')
    error = failure_of(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--output', str(annotations)], capsys)
    assert error.startswith(f'error: --output {annotations}: holds no predictions of predict.py')
    assert json.loads(annotations.read_text())[0]['label'] == 'cat'
    for name in ('p.csv', 'p.json'):  # its own output, and an empty file, are replaced as before
        (tmp_path / name).write_text('')
        if name == 'p.json':  # its own, saved again with a byte-order mark
            predict.main(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--output', str(tmp_path / name)])
            (tmp_path / name).write_bytes(codecs.BOM_UTF8 + (tmp_path / name).read_bytes())
        for pictures in (catalog_images(catalog)[:2], catalog_images(catalog)[2:3]):
            predict.main(['--checkpoint', checkpoint, *pictures, '--output', str(tmp_path / name), '--device', 'cpu'])
        with open(tmp_path / name) as f:
            images = ([row['image'] for row in csv.DictReader(f)] if name.endswith('.csv')
                      else [row['image'] for row in json.load(f)])
        assert images == catalog_images(catalog)[2:3]


def test_an_output_file_that_is_blank_or_a_byte_order_mark_alone_is_replaced(checkpoint, catalog, tmp_path):
    # Nothing in it to lose (an editor's new file saved as "UTF-8 with BOM"): it was refused, "it is blank"
    for name, text in [('p.csv', b' \n\n'), ('p.json', codecs.BOM_UTF8), ('q.csv', codecs.BOM_UTF8 + b'\r\n')]:
        (tmp_path / name).write_bytes(text)
        predict.main(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--output', str(tmp_path / name),
                      '--device', 'cpu'])
        assert (tmp_path / name).read_text().startswith('image,' if name.endswith('.csv') else '[')


def test_an_output_named_through_a_link_is_written_where_the_link_points_and_the_link_stays(checkpoint, catalog,
                                                                                            tmp_path):
    (tmp_path / 'kept').mkdir()
    (tmp_path / 'kept' / 'predictions.csv').write_text('')
    link = tmp_path / 'latest.csv'
    link.symlink_to(tmp_path / 'kept' / 'predictions.csv')
    predict.main(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--output', str(link), '--device', 'cpu'])
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / 'kept' / 'predictions.csv')
    with open(tmp_path / 'kept' / 'predictions.csv') as f:
        assert [row['image'] for row in csv.DictReader(f)] == catalog_images(catalog)[:1]
    assert sorted(os.listdir(tmp_path / 'kept')) == ['predictions.csv']  # no temporary file left
    # A link to a pipe (or a device: /dev/null, as root) would have a file renamed over it
    os.mkfifo(tmp_path / 'pipe')
    (tmp_path / 'to-pipe.csv').symlink_to(tmp_path / 'pipe')
    with pytest.raises(UserError, match=f'^--output {tmp_path / "to-pipe.csv"}: a link to {tmp_path / "pipe"}, '
                                        'which is no regular file'):
        predict.main(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--output', str(tmp_path / 'to-pipe.csv')])
    os.mkfifo(tmp_path / 'pipe.csv')
    with pytest.raises(UserError, match=f'^--output {tmp_path / "pipe.csv"}: it is no regular file'):
        predict.main(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--output', str(tmp_path / 'pipe.csv')])
    assert stat.S_ISFIFO(os.stat(tmp_path / 'pipe').st_mode) and stat.S_ISFIFO(os.stat(tmp_path / 'pipe.csv').st_mode)
    (tmp_path / 'loop.csv').symlink_to('loop.csv')  # named with the flag, as the others (not before)
    with pytest.raises(UserError, match=f'^--output {tmp_path / "loop.csv"}: a link in a loop of links, which leads'):
        predict.main(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--output', str(tmp_path / 'loop.csv')])


def test_jpegs_of_any_extension_are_found_and_a_styles_csv_the_checkpoint_does_not_need_is_said_unread(
        checkpoint, catalog, tmp_path, capsys):
    for name in ('a.jfif', 'b.jpe', 'c.JPEG'):  # what browsers and cameras save JPEGs as
        shutil.copy(catalog_images(catalog)[0], tmp_path / name)
    styles = os.path.join(catalog['root'], 'styles.csv')
    predict.main(['--checkpoint', checkpoint, str(tmp_path), '--device', 'cpu', '--attributes_file', styles])
    out = capsys.readouterr().out
    assert f'note: --attributes_file {styles} is not read: {checkpoint} holds the label names it was trained with' in out
    assert '3 of 3 images predicted' in out


@pytest.mark.parametrize('name', ['', 'models/.onnx'])
def test_an_export_with_no_file_name_is_refused_not_ignored(tmp_path, capsys, name):
    # `--export "$MODEL"` with MODEL unset used to predict the pictures and export nothing, silently.
    with pytest.raises(SystemExit) as exit_info:
        predict.parse_args(['--checkpoint', 'x.pth', 'a.jpg', '--export', name])
    assert exit_info.value.code == 2
    assert f"error: --export {shlex.quote(name)}: no file name; give one such as model.onnx" in capsys.readouterr().err


@exports
def test_what_an_export_needs_is_checked_before_the_checkpoint_is_loaded(tmp_path, capsys, monkeypatch):
    pytest.importorskip('onnxscript')  # else its absence is said first
    unread = str(tmp_path / 'no-such-checkpoint.pth')  # never loaded: these fail first
    (tmp_path / 'm.json').mkdir()
    line = failure_of(['--checkpoint', unread, '--export', str(tmp_path / 'm.onnx')], capsys)
    assert line == f'error: --export {tmp_path / "m.onnx"}: could not write {tmp_path / "m.json"}: it is a folder'
    export = tmp_path / ('a' * 251 + '.onnx')  # the export's seconds were spent, then its rename failed
    line = failure_of(['--checkpoint', unread, '--export', str(export)], capsys)
    assert line == f'error: --export {export}: the name {"a" * 40}... is longer than the 255 bytes a file system allows'
    monkeypatch.setitem(sys.modules, 'onnxscript', None)  # as if it were not installed
    line = failure_of(['--checkpoint', unread, '--export', str(tmp_path / 'other.onnx')], capsys)
    assert f'needs onnxscript, which is not installed: {this_python()} -m pip install -r requirements-onnx.txt' in line


def onnx_model(input_name='image', output_names=HEADS):
    """The bytes of a small ONNX model, its input and outputs named as given (by default as an
    export names them), made in milliseconds where an export takes seconds."""
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node('Identity', [input_name], [name]) for name in output_names], 'old',
                              [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, 3, 80, 60])],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in output_names])
    return helper.make_model(graph).SerializeToString()


def old_export(onnx_path):
    """The model and label file an earlier export left: (model bytes, label file text)."""
    from export_onnx import FORMAT, sidecar_path
    labels = json.dumps({'format': FORMAT, 'labels': 'the old labels'})
    with open(sidecar_path(str(onnx_path)), 'w') as f:
        f.write(labels)
    onnx_path.write_bytes(onnx_model())
    return onnx_path.read_bytes(), labels


@exports
def test_an_export_over_files_it_did_not_write_is_refused_and_its_own_are_replaced(checkpoint, tmp_path, capsys,
                                                                                  monkeypatch):
    # `--export user.onnx` beside the user's own model, or a user.json of theirs: both were replaced.
    pytest.importorskip('onnxscript')
    from export_onnx import FORMAT
    onnx_path, json_path = tmp_path / 'user.onnx', tmp_path / 'user.json'
    unread = str(tmp_path / 'no-such-checkpoint.pth')  # refused before the checkpoint is loaded
    named = "'image' and the outputs 'gender', 'article', 'color'"
    for mine in (b'notes', onnx_model('input', ['logits']), onnx_model(output_names=['x'])):
        onnx_path.write_bytes(mine)
        line = failure_of(['--checkpoint', unread, '--export', str(onnx_path)], capsys)
        assert line == (f'error: --export {onnx_path}: is no ONNX model predict.py exported (with the input {named}), '
                        'and would be replaced; move it away or give another name')
        assert onnx_path.read_bytes() == mine
    onnx_path.write_bytes(b'')  # an empty file is replaced, as predict.py --output's
    for mine in ('{"mine": 1}', '[1, 2]', 'notes'):
        json_path.write_text(mine)
        line = failure_of(['--checkpoint', unread, '--export', str(onnx_path)], capsys)
        assert line == (f'error: --export {onnx_path}: {json_path} beside it holds no label names predict.py wrote '
                        f'(no "format": "{FORMAT}"), and would be replaced; move it away or give another name')
        assert json_path.read_text() == mine
    old_export(onnx_path)  # its own are replaced: the export itself (seconds) made a plain write
    import export_onnx
    monkeypatch.setattr(export_onnx, 'write_onnx', writes_model(b'the new model'))
    predict.main(['--checkpoint', checkpoint, '--export', str(onnx_path)])
    assert onnx_path.read_bytes() == b'the new model' and json.loads(json_path.read_text())['format'] == FORMAT
    assert sorted(os.listdir(tmp_path)) == ['user.json', 'user.onnx']


@exports
def test_an_export_named_through_links_is_written_where_they_point_and_the_links_stay(checkpoint, tmp_path,
                                                                                       capsys, monkeypatch):
    # model.onnx a link to the version it serves, as --output's; model.json beside it a plain file.
    pytest.importorskip('onnxscript')
    import export_onnx
    from export_onnx import FORMAT
    (tmp_path / 'versions').mkdir()
    served = tmp_path / 'versions' / 'v3.onnx'
    old_export(served)
    link = tmp_path / 'model.onnx'
    link.symlink_to(served)
    monkeypatch.setattr(export_onnx, 'write_onnx', writes_model(b'the new model'))
    predict.main(['--checkpoint', checkpoint, '--export', str(link)])
    assert link.is_symlink() and os.readlink(link) == str(served) and served.read_bytes() == b'the new model'
    assert json.loads((tmp_path / 'model.json').read_text())['format'] == FORMAT
    assert json.loads((tmp_path / 'versions' / 'v3.json').read_text())['labels'] == 'the old labels'  # not named
    assert sorted(os.listdir(tmp_path)) == ['model.json', 'model.onnx', 'versions']  # no temporary file left
    assert sorted(os.listdir(tmp_path / 'versions')) == ['v3.json', 'v3.onnx']
    # The label file a link too, to another folder: written there.
    (tmp_path / 'model.json').unlink()
    (tmp_path / 'model.json').symlink_to(tmp_path / 'versions' / 'v3.json')
    served.write_bytes(onnx_model())  # an export's, as the one written above stands for
    monkeypatch.setattr(export_onnx, 'write_onnx', writes_model(b'a newer model'))
    predict.main(['--checkpoint', checkpoint, '--export', str(link)])
    assert (tmp_path / 'model.json').is_symlink() and served.read_bytes() == b'a newer model'
    assert json.loads((tmp_path / 'versions' / 'v3.json').read_text())['format'] == FORMAT
    # Both names links to one file, which cannot hold both
    (tmp_path / 'same.onnx').symlink_to(served)
    (tmp_path / 'same.json').symlink_to(served)
    line = failure_of(['--checkpoint', str(tmp_path / 'unread.pth'), '--export', str(tmp_path / 'same.onnx')], capsys)
    assert line == (f'error: --export {tmp_path / "same.onnx"}: it and {tmp_path / "same.json"} lead to the same file, '
                    f'{served}, which cannot hold both the model and its label names')
    # A link to a pipe would have a file renamed over it.
    os.mkfifo(tmp_path / 'pipe')
    (tmp_path / 'to-pipe.onnx').symlink_to(tmp_path / 'pipe')
    line = failure_of(['--checkpoint', str(tmp_path / 'unread.pth'), '--export', str(tmp_path / 'to-pipe.onnx')],
                      capsys)
    assert line == (f'error: --export {tmp_path / "to-pipe.onnx"}: {tmp_path / "to-pipe.onnx"} is a link to '
                    f'{tmp_path / "pipe"}, which is no regular file (a device or a pipe)')
    # A loop of links: named with the flag, and which of the two files (not before)
    (tmp_path / 'loop.onnx').symlink_to('loop.onnx')
    (tmp_path / 'to-pipe.json').symlink_to('to-pipe.json')
    for name, looped in [('loop.onnx', ''), ('to-pipe.onnx', f': {tmp_path / "to-pipe.json"}')]:
        line = failure_of(['--checkpoint', str(tmp_path / 'unread.pth'), '--export', str(tmp_path / name)], capsys)
        assert line == (f'error: --export {tmp_path / name}{looped}: a link in a loop of links, which leads to no '
                        'file; name a file')


@exports
def test_a_label_file_that_cannot_be_written_leaves_the_old_model_too(checkpoint, tmp_path, monkeypatch):
    pytest.importorskip('onnxscript')
    import atomic
    model, attributes, _ = model_from_checkpoint(checkpoint)
    onnx_path = tmp_path / 'model.onnx'
    old_model, old_labels = old_export(onnx_path)
    real_replace = os.replace

    def refuse_the_label_file(source, target):  # as with `chattr +i model.json`
        if str(target).endswith('model.json'):
            raise PermissionError(1, 'Operation not permitted', str(target))
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, 'replace', refuse_the_label_file)
    from export_onnx import export_onnx
    with pytest.raises(UserError, match=f'^--export {onnx_path}: could not write .*model.json \\(Operation not '
                                        'permitted\\)$'):
        export_onnx(model, attributes, str(onnx_path), checkpoint)
    assert onnx_path.read_bytes() == old_model and (tmp_path / 'model.json').read_text() == old_labels
    assert sorted(os.listdir(tmp_path)) == ['model.json', 'model.onnx']
    monkeypatch.setattr(atomic.os, 'replace', real_replace)
    onnx_path.unlink()
    onnx_path.mkdir()  # the other way round: a model that cannot be renamed into place
    with pytest.raises(UserError, match='could not write .*model.onnx: it is a folder'):
        export_onnx(model, attributes, str(onnx_path), checkpoint)
    assert (tmp_path / 'model.json').read_text() == old_labels
    in_a_file = tmp_path / 'model.json' / 'model.onnx'  # a file where a folder is to be made
    with pytest.raises(UserError, match=f'^--export {in_a_file}: {tmp_path / "model.json"} is a file, not a folder$'):
        export_onnx(model, attributes, str(in_a_file), checkpoint)


@exports
def test_a_model_that_does_not_reach_the_disk_leaves_the_old_label_file(checkpoint, tmp_path, monkeypatch):
    # A full disk or an I/O error often shows only when the written data is flushed (fsync), after
    # the export itself succeeded: that must come before the new label file goes into place.
    pytest.importorskip('onnxscript')
    model, attributes, _ = model_from_checkpoint(checkpoint)
    onnx_path, json_path = tmp_path / 'model.onnx', tmp_path / 'model.json'
    old_model, old_labels = old_export(onnx_path)
    real_fsync = os.fsync

    def no_space_for_the_model(fd):
        if os.readlink(f'/proc/self/fd/{fd}').endswith('model.onnx'):  # our temporary model.onnx
            raise OSError(28, 'No space left on device')
        real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', no_space_for_the_model)
    import export_onnx as module  # the export itself (seconds) made a plain write: the order is what counts
    monkeypatch.setattr(module, 'write_onnx', writes_model(b'the new model'))
    from export_onnx import export_onnx
    with pytest.raises(UserError, match=f'^--export {onnx_path}: could not write it \\(No space left on device\\)$'):
        export_onnx(model, attributes, str(onnx_path), checkpoint)
    assert onnx_path.read_bytes() == old_model and json_path.read_text() == old_labels
    assert sorted(os.listdir(tmp_path)) == ['model.json', 'model.onnx']


@pytest.mark.parametrize('name', ['P.CSV', 'P.Json'])
def test_an_output_named_in_upper_case_is_written_in_the_format_its_extension_names(checkpoint, catalog, tmp_path,
                                                                                     name):
    # Windows users write PREDICTIONS.CSV as often as predictions.csv; the case picks no other format.
    out = tmp_path / name
    predict.main(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--output', str(out), '--device', 'cpu'])
    with open(out, newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f)) if name.lower().endswith('.csv') else json.load(f)
    assert [row['image'] for row in rows] == catalog_images(catalog)[:1]


def test_an_output_that_is_the_exports_label_file_under_another_spelling_is_refused(tmp_path, monkeypatch, capsys):
    # The predictions would be written over model.json, the label names the export had just put
    # beside model.onnx. Refused before the checkpoint is loaded, however the two are spelt.
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'sub').mkdir()
    unread = str(tmp_path / 'no-such-checkpoint.pth')
    for output in ('model.json', os.path.join('.', 'model.json'), os.path.join('sub', '..', 'model.json'),
                   str(tmp_path / 'model.json')):
        line = failure_of(['--checkpoint', unread, 'a.jpg', '--output', output, '--export', 'model.onnx'], capsys)
        assert line == (f'error: --output {output}: --export model.onnx writes its label names and preprocessing '
                        'there; give --output another name')
    assert sorted(os.listdir(tmp_path)) == ['sub']


def test_an_output_that_links_to_the_exported_model_is_refused(tmp_path, monkeypatch, capsys):
    # p.csv -> model.onnx, a link to nothing yet: the predictions were written over the model just exported;
    # or the other way round, the model over the predictions.
    monkeypatch.chdir(tmp_path)
    for link, target in (('p.csv', 'model.onnx'), ('model.onnx', 'p.csv')):
        os.symlink(target, link)
        line = failure_of(['--checkpoint', 'unread.pth', 'a.jpg', '--output', 'p.csv', '--export', 'model.onnx'],
                          capsys)
        assert line == ('error: --output p.csv: leads to the same file as --export model.onnx, which the model is '
                        'written to; give --output another name')
        assert os.listdir(tmp_path) == [link]
        os.remove(link)
    # The model exported already (an export run again): its first line, not the link, was what it was told.
    os.symlink('model.onnx', 'p.csv')
    with open('model.onnx', 'wb') as f:
        f.write(b'\x08\x09onnx model bytes')
    line = failure_of(['--checkpoint', 'unread.pth', 'a.jpg', '--output', 'p.csv', '--export', 'model.onnx'], capsys)
    assert line.startswith('error: --output p.csv: leads to the same file as --export model.onnx')


def test_names_given_stay_on_their_line_in_every_line_said(checkpoint, catalog, tmp_path, capsys, monkeypatch):
    # A line break or a terminal's escape sequence in the checkpoint's or an output's name: escaped as
    # the table escapes the pictures', not a line split in two or the terminal turned red.
    odd = str(tmp_path / 'run\x1b[31m\nX.pth')
    shutil.copy(checkpoint, odd)
    output = str(tmp_path / 'p\x1b[32m.csv')
    predict.main(['--checkpoint', odd, catalog_images(catalog)[0], '--output', output, '--device', 'cpu'])
    out = capsys.readouterr().out
    assert '\x1b' not in out and out.count('\n') == 6  # the first line, a title, 3 ranks, the summary
    assert out.startswith(f'device: cpu; checkpoint {tmp_path}/run\\x1b[31m\\nX.pth (epoch 1); 1 image\n')
    assert out.endswith(f'1 of 1 image predicted; wrote {tmp_path}/p\\x1b[32m.csv\n')


@exports
def test_an_exports_names_stay_on_their_line(checkpoint, tmp_path, capsys, monkeypatch):
    pytest.importorskip('onnxscript')
    import export_onnx
    monkeypatch.setattr(export_onnx, 'write_onnx', writes_model(b'model'))
    predict.main(['--checkpoint', checkpoint, '--export', str(tmp_path / 'm\nodel.onnx')])
    assert capsys.readouterr().out == f'wrote {tmp_path}/m\\nodel.onnx and {tmp_path}/m\\nodel.json\n'


def test_the_table_names_each_picture_on_the_first_of_its_lines_only():
    # One line per rank: the name beside the most likely classes, blank beside the others, so that
    # the eye finds where each picture's answers begin.
    top = {'gender': [('Men', 0.7), ('Women', 0.3)], 'article': [('Shirts', 0.5), ('Tshirts', 0.3), ('Watches', 0.2)],
           'color': [('Black', 0.6), ('Blue', 0.4)]}
    lines = predict.format_table([{'image': 'a.jpg', 'error': None, **top}, {'image': 'b.jpg', 'error': None, **top}])
    assert len(lines) == 1 + 2 * 3
    assert [line.split()[0] for line in lines[1:]] == ['a.jpg', 'Women', 'Watches', 'b.jpg', 'Women', 'Watches']
    assert lines[2].startswith(' ' * len('image  ')) and lines[3].lstrip().startswith('Watches')


def test_an_output_with_nothing_to_predict_is_refused_not_left_unwritten(capsys):
    # `--export m.onnx --output p.csv` without pictures exported the model and wrote no p.csv, with
    # no word of it: a script reading p.csv next found the old one.
    with pytest.raises(SystemExit) as exit_status:
        predict.parse_args(['--checkpoint', 'last.pth', '--export', 'm.onnx', '--output', 'p.csv'])
    assert exit_status.value.code == 2
    assert '--output needs images or folders to predict' in capsys.readouterr().err


@exports
def test_what_a_killed_export_left_half_written_is_removed_by_the_next(checkpoint, tmp_path, monkeypatch, capsys):
    # A kill mid-export left .tmp-PID-model.onnx (tens of MB) and its label file's temporary beside
    # them; never renamed into place, they stayed for good where the next export did not clear them.
    pytest.importorskip('onnxscript')
    model, attributes, _ = model_from_checkpoint(checkpoint)
    gone = 2**31 - 2  # above any process id Linux hands out
    left = [f'.tmp-{gone}-model.onnx', f'.tmp-{gone}-model.json']
    for name in left:
        (tmp_path / name).write_bytes(b'half')
    import export_onnx as module  # the export itself (seconds) made a plain write: what is cleared counts
    monkeypatch.setattr(module, 'write_onnx', writes_model(b'the new model'))
    module.export_onnx(model, attributes, str(tmp_path / 'model.onnx'), checkpoint)
    assert sorted(os.listdir(tmp_path)) == ['model.json', 'model.onnx']
    printed = capsys.readouterr().out
    assert f'note: removed {", ".join(sorted(left))} from {tmp_path}' in printed, printed


@pytest.mark.parametrize('killed', ['between the renames', 'once both were in place'])
def test_a_killed_exports_old_files_are_put_back_only_as_a_pair(checkpoint, tmp_path, monkeypatch, capsys, killed):
    # Killed once both were in place, as the old files' asides were removed (the model's first): the
    # old label file was put back beside the new model, and stayed so where the next export failed.
    pytest.importorskip('onnxscript')
    model, attributes, _ = model_from_checkpoint(checkpoint)
    gone = 2**31 - 2  # above any process id Linux hands out
    files = {'model.onnx': 'new model', 'model.json': 'new labels', f'.tmp-{gone}-old-model.json': 'old labels'}
    if killed == 'between the renames':
        files.update({'model.json': 'old labels', f'.tmp-{gone}-old-model.onnx': 'old model'})
        del files[f'.tmp-{gone}-old-model.json']
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    import export_onnx as module

    def full_disk(model, path, described):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(module, 'write_onnx', full_disk)
    monkeypatch.setattr(module, 'check_export', lambda path: None)  # stand-ins of an export: taken as one
    with pytest.raises(UserError, match='No space left'):
        module.export_onnx(model, attributes, str(tmp_path / 'model.onnx'), checkpoint)
    pair = {name: (tmp_path / name).read_text() for name in os.listdir(tmp_path)}
    assert pair == ({'model.onnx': 'new model', 'model.json': 'new labels'} if killed == 'once both were in place'
                    else {'model.onnx': 'old model', 'model.json': 'old labels'})


def test_a_folders_pictures_are_predicted_under_every_ending_pillow_reads_here(catalog, tmp_path):
    # Named on the command line they were predicted; in a folder, passed over unsaid ("1 of 1"):
    # .avif and .jp2 until 2026-12-07, .apng, .avifs, .j2k, .jpx and JPEG 2000's others until later.
    from PIL import features
    assert {'.jpg', '.jpeg', '.png', '.apng', '.bmp', '.gif', '.webp', '.tif', '.tiff'} <= set(predict.IMAGE_EXTENSIONS)
    avif = Image.registered_extensions().get('.avif') == 'AVIF'
    assert ({'.avif', '.avifs'} <= set(predict.IMAGE_EXTENSIONS)) is avif
    jpeg_2000 = {'.jp2', '.j2k', '.j2c', '.jpc', '.jpf', '.jpx'}
    assert (jpeg_2000 <= set(predict.IMAGE_EXTENSIONS)) is features.check_codec('jpg_2000')
    picture = Image.open(catalog_images(catalog)[0])
    for i, ending in enumerate(predict.IMAGE_EXTENSIONS):
        picture.save(tmp_path / f'{i}{ending.upper() if i % 2 else ending}')  # each in its format, in either case
    found = predict.find_images([str(tmp_path)])
    assert found == sorted(str(path) for path in tmp_path.iterdir()) and len(found) == len(predict.IMAGE_EXTENSIONS)
    for path in found:  # each a picture, read as a named one is
        array, problem = predict.read_image(path)
        assert problem is None and array.shape == (80, 60, 3), (path, problem)


def test_hidden_folders_are_passed_over_as_hidden_files_are(catalog, tmp_path):
    # .thumbnails, .git, macOS's .Trashes: pictures in them are copies or not the user's, and a
    # folder of photos predicted each of them with the rest.
    shutil.copy(catalog_images(catalog)[0], tmp_path / 'a.jpg')
    for hidden in ('.thumbnails', '.Trashes'):
        (tmp_path / hidden).mkdir()
        shutil.copy(catalog_images(catalog)[1], tmp_path / hidden / 'b.jpg')
    assert predict.find_images([str(tmp_path)]) == [str(tmp_path / 'a.jpg')]


def test_a_folders_photos_in_a_format_pillow_does_not_read_are_counted_in_a_note(catalog, tmp_path, capsys):
    # An iPhone's photos are HEIC: a folder of them beside its PNG screenshots said '1 of 1 image
    # predicted', the HEIC ones passed over unsaid.
    heic = b'\0\0\0\x18ftypheic' + bytes(16)  # an ISO media file's beginning, as an iPhone writes it
    shutil.copy(catalog_images(catalog)[0], tmp_path / 'screenshot.png')
    (tmp_path / 'IMG_0001.HEIC').write_bytes(heic)
    (tmp_path / 'trip').mkdir()
    (tmp_path / 'trip' / 'IMG_0002.heic').write_bytes(heic)
    (tmp_path / '._IMG_0001.HEIC').write_bytes(b'macOS')  # hidden: passed over as any hidden file is
    (tmp_path / 'notes.txt').write_text('no photo')
    assert {'.heic', '.heif'} <= set(predict.UNREAD_PHOTO_EXTENSIONS)
    assert predict.find_images([str(tmp_path), str(tmp_path / 'trip')]) == [str(tmp_path / 'screenshot.png')]
    note = (f'note: passed over 2 photos in a format this Pillow does not read (2 .heic), e.g. '
            f'{tmp_path / "IMG_0001.HEIC"}; convert them to JPEG or PNG to predict them')
    assert capsys.readouterr().out.splitlines()[0] == note  # each once, its folder named twice
    os.remove(tmp_path / 'screenshot.png')  # a folder of HEIC photos alone: the error says why
    with pytest.raises(UserError, match=re.escape(note.removeprefix('note: '))):
        predict.find_images([str(tmp_path)])


def test_a_folder_named_that_the_system_will_not_list_is_said_unreadable_not_empty(catalog, tmp_path, monkeypatch,
                                                                                     capsys):
    # It may be full of pictures: "no image files in it" would send the user looking for the wrong fault.
    locked = locked_folder_of_pictures(catalog, tmp_path, monkeypatch)
    shutil.copy(catalog_images(catalog)[0], tmp_path / 'a.jpg')
    assert predict.find_images([str(locked), str(tmp_path / 'a.jpg')]) == [str(tmp_path / 'a.jpg')]
    assert capsys.readouterr().out == f'note: could not read {locked} (Permission denied); its pictures are left out\n'


def test_a_csv_of_the_users_that_begins_with_an_image_column_is_kept(tmp_path, capsys):
    # A list of pictures with the user's own labels begins as predict.py's CSV does: only its whole header is ours.
    labels = tmp_path / 'labels.csv'
    labels.write_text('image,gender\nphotos/1.jpg,Men\n')
    error = failure_of(['--checkpoint', str(tmp_path / 'no-such.pth'), 'a.jpg', '--output', str(labels)], capsys)
    assert error.startswith(f'error: --output {labels}: holds no predictions of predict.py')
    assert labels.read_text() == 'image,gender\nphotos/1.jpg,Men\n'


def test_a_picture_over_twice_pillows_limit_is_refused_naming_the_limit_in_megapixels(tmp_path, monkeypatch):
    # The limit the row names is twice Image.MAX_IMAGE_PIXELS (179 megapixels by default, README), the one Pillow
    # refuses above; here 2 megapixels, and a picture of 2.25.
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1_000_000)
    Image.new('RGB', (1500, 1500), 'red').save(tmp_path / 'huge.png')
    assert predict.read_image(str(tmp_path / 'huge.png')) == (
        None, "too large to open safely (more than 2 megapixels, Pillow's limit against decompression bombs); "
              'scale it down first')


def test_the_preprocessing_the_label_file_describes_gives_the_input_predict_py_feeds_the_model(tmp_path):
    # A serving stack has only model.json to go by: followed word for word, it must give the model's input.
    from export_onnx import sidecar
    vocab = {'gender': ['Men', 'Women'], 'article': ['Shirts', 'Tshirts'], 'color': ['Black', 'Blue']}
    prep = sidecar(AttributesDataset(vocab=vocab), 'model.onnx')['preprocessing']
    picture = tmp_path / 'wide.png'  # noise: another filter, size or place gives other values
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(picture)
    width, height = prep['width'], prep['height']
    with Image.open(picture) as img:
        scale = min(width / img.width, height / img.height)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        fitted = img.convert(prep['channel_order']).resize(
            size, Image.Resampling[prep['resize']['interpolation'].upper()])
    canvas = Image.new('RGB', (width, height), tuple(prep['resize']['pad_value']))
    canvas.paste(fitted, ((width - size[0]) // 2, (height - size[1]) // 2))
    low, high = prep['value_range']
    x = np.asarray(canvas, np.float32) / 255 * (high - low) + low
    x = (x - np.float32(prep['mean'])) / np.float32(prep['std'])
    x = x.transpose(['HWC'.index(axis) for axis in prep['layout'][1:]])
    array, _ = predict.read_image(str(picture))
    fed = prepare_batch(torch.from_numpy(np.stack([array])).permute(0, 3, 1, 2))[0]
    np.testing.assert_allclose(x, fed.numpy(), rtol=0, atol=1e-5)


@exports
def test_an_onnx_model_of_the_users_with_the_same_outputs_but_another_input_is_kept(tmp_path, capsys):
    pytest.importorskip('onnxscript')
    onnx_path = tmp_path / 'user.onnx'
    mine = onnx_model('pixel_values')
    onnx_path.write_bytes(mine)
    line = failure_of(['--checkpoint', str(tmp_path / 'unread.pth'), '--export', str(onnx_path)], capsys)
    assert line.startswith(f'error: --export {onnx_path}: is no ONNX model predict.py exported')
    assert onnx_path.read_bytes() == mine


@exports
def test_a_label_file_of_another_format_is_kept_and_an_empty_one_replaced(checkpoint, tmp_path, capsys, monkeypatch):
    pytest.importorskip('onnxscript')
    import export_onnx
    onnx_path, json_path = tmp_path / 'model.onnx', tmp_path / 'model.json'
    json_path.write_text('{"format": "another-tool/2", "labels": []}')  # another program's label file
    line = failure_of(['--checkpoint', str(tmp_path / 'unread.pth'), '--export', str(onnx_path)], capsys)
    assert line.startswith(f'error: --export {onnx_path}: {json_path} beside it holds no label names predict.py wrote')
    assert json_path.read_text() == '{"format": "another-tool/2", "labels": []}'
    json_path.write_text('')  # as an empty model.onnx is, replaced
    monkeypatch.setattr(export_onnx, 'write_onnx', writes_model(b'the new model'))
    predict.main(['--checkpoint', checkpoint, '--export', str(onnx_path)])
    assert json.loads(json_path.read_text())['format'] == export_onnx.FORMAT
    # said in one line, naming both files
    assert capsys.readouterr().out == f'wrote {onnx_path} and {json_path}\n'


@exports
def test_the_export_runs_the_model_as_at_inference_and_leaves_the_callers_model_in_training(checkpoint, tmp_path,
                                                                                            monkeypatch):
    # Dropout and batch norms exported as they run in training would give other logits; the caller's model,
    # a training run's, stays in its own mode.
    pytest.importorskip('onnxscript')
    import export_onnx
    model, attributes, _ = model_from_checkpoint(checkpoint)
    model.train()
    training = []
    monkeypatch.setattr(export_onnx, 'write_onnx', lambda wrapped, path, described: training.append(
        any(layer.training for layer in wrapped.modules())) or open(path, 'wb').write(b'model'))
    export_onnx.export_onnx(model, attributes, str(tmp_path / 'model.onnx'), checkpoint)
    assert training == [False] and all(layer.training for layer in model.modules())


def test_the_table_columns_line_up_under_their_titles():
    # 'article type' is wider than its labels, 'Navy Blue  60.0%' than its title: each cell starts under its title.
    top = {'gender': [('Men', 0.7), ('Women', 0.3)], 'article': [('Bag', 0.75), ('Cap', 0.25)],
           'color': [('Navy Blue', 0.6), ('Red', 0.4)]}
    lines = predict.format_table([{'image': 'a.jpg', 'error': None, **top}, {'image': 'bb.jpg', 'error': None, **top}])
    starts = {head: lines[0].index(predict.TITLES[head]) for head in HEADS}
    for line in lines[1:]:
        rank = 0 if line.startswith(('a.jpg', 'bb.jpg')) else 1
        for head in HEADS:
            label, prob = top[head][rank]
            assert line[starts[head]:].startswith(label + ' '), (head, line)
        assert line.endswith(f' {top["color"][rank][1]:6.1%}')
    assert len({len(line) for line in lines[1:]}) == 1  # the probabilities right-aligned at each column's end


def test_many_unreadable_files_are_named_five_and_the_rest_counted(checkpoint, tmp_path, capsys):
    for n in range(7):
        (tmp_path / f'{n}.jpg').write_text('<html>404 not found</html>')
    line = failure_of(['--checkpoint', checkpoint, str(tmp_path), '--device', 'cpu'], capsys)
    assert line.startswith('error: none of the image files could be read (7 files): ')
    assert line.endswith(f'{tmp_path / "4.jpg"} (not an image, or a format Pillow cannot read); and 2 more')


@pytest.mark.parametrize('count, more', [(10, []), (11, ['note: and 1 more folder without image files']),
                                         (12, ['note: and 2 more folders without image files'])])
def test_ten_empty_folders_are_each_named_and_the_rest_counted(catalog, tmp_path, capsys, count, more):
    shutil.copy(catalog_images(catalog)[0], tmp_path / 'a.jpg')
    folders = [str(tmp_path / f'empty{n:02}') for n in range(count)]
    for folder in folders:
        os.mkdir(folder)
    assert predict.find_images([str(tmp_path / 'a.jpg'), *folders]) == [str(tmp_path / 'a.jpg')]
    named = [f'note: no image files in {folder}' for folder in folders[:10]]
    assert capsys.readouterr().out.splitlines() == named + more


def test_the_first_line_names_the_device_the_checkpoint_its_epoch_and_the_count(checkpoint, catalog, capsys):
    predict.main(['--checkpoint', checkpoint, *catalog_images(catalog)[:2], '--device', 'cpu'])
    assert capsys.readouterr().out.splitlines()[0] == f'device: cpu; checkpoint {checkpoint} (epoch 1); 2 images'


def test_an_export_name_that_is_not_onnx_is_refused_before_anything_is_loaded(capsys):
    # With or without the ONNX extra installed: a usage error, as a missing name is.
    with pytest.raises(SystemExit) as exit_info:
        predict.parse_args(['--checkpoint', 'x.pth', '--export', 'model.json'])
    assert exit_info.value.code == 2
    assert 'error: --export model.json: the name must end in .onnx' in capsys.readouterr().err


def test_several_listed_paths_that_are_gone_are_counted_and_named_in_one_note(catalog, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(catalog_images(catalog)[0], 'a.jpg')
    found = predict.find_images(['a.jpg'], ['gone.jpg', 'b/gone.jpg', './gone.jpg'], 'files.txt')
    assert found == ['a.jpg', 'gone.jpg', 'b/gone.jpg']  # each gets its row, once
    assert capsys.readouterr().out == ('note: 2 paths in files.txt are not there (gone.jpg, b/gone.jpg); '
                                       'their rows say so\n')


def test_the_output_files_give_each_probability_to_six_decimals(checkpoint, catalog, tmp_path):
    picture = catalog_images(catalog)[0]
    for name in ('p.csv', 'p.json'):
        predict.main(['--checkpoint', checkpoint, picture, '--output', str(tmp_path / name), '--device', 'cpu'])
    with open(tmp_path / 'p.csv', newline='') as f:
        row, = csv.DictReader(f)
    record, = json.loads((tmp_path / 'p.json').read_text())
    for head in HEADS:
        topk = [item.rsplit(':', 1) for item in row[f'{head}_topk'].split(';')]
        assert all(re.fullmatch(r'[01]\.\d{6}', prob) for _, prob in topk) and row[f'{head}_prob'] == topk[0][1]
        assert [(item['label'], f'{item["probability"]:.6f}') for item in record[head]] == [tuple(t) for t in topk]
        assert all(item['probability'] == round(item['probability'], 6) for item in record[head])


def test_the_progress_bar_shows_only_for_more_than_one_batch(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(predict, 'read_image', lambda path: (np.full((80, 60, 3), 255, np.uint8), None))
    monkeypatch.setattr(predict, 'top_k',
                        lambda model, images, *args: [{head: [('X', 1.0)] for head in HEADS}] * len(images))
    for count, shown in ((2, False), (3, True)):
        predict.predict_all(None, None, [f'{i}.jpg' for i in range(count)], argparse.Namespace(batch_size=2, top_k=1),
                            torch.device('cpu'))
        assert ('predicting' in capsys.readouterr().err) == shown, count


def test_fullwidth_letters_take_two_columns_of_the_table_as_wide_characters_do(monkeypatch):
    # 'ＡＢ' (fullwidth, as Japanese file names often are) takes four columns of a terminal, as 日本 does
    monkeypatch.setattr(sys, 'stdout', io.TextIOWrapper(io.BytesIO(), encoding='utf-8'))
    answer = {head: [('X', 0.5)] for head in HEADS}
    lines = predict.format_table([{'image': 'ＡＢ.jpg', 'error': None, **answer},
                                  {'image': 'abcd.jpg', 'error': None, **answer}])
    assert lines[1].index('X') + 2 == lines[2].index('X') == len('abcd.jpg') + 2


def test_the_table_lines_end_without_spaces_where_the_last_head_has_fewer_classes():
    top = {'gender': [('Men', 0.7), ('Women', 0.3)], 'article': [('Bag', 0.75), ('Cap', 0.25)], 'color': [('Red', 1.0)]}
    lines = predict.format_table([{'image': 'a.jpg', 'error': None, **top}])
    assert len(lines) == 3 and lines[2].split() == ['Women', '30.0%', 'Cap', '25.0%']
    assert all(line == line.rstrip() for line in lines)


def test_pictures_are_predicted_with_the_batch_norms_folded_into_the_convolutions(checkpoint, catalog, monkeypatch):
    # as evaluation runs them (tests/test_model.py): the same answers, faster
    folded, top_k = [], predict.top_k
    monkeypatch.setattr(predict, 'top_k', lambda model, *args: folded.append(
        not any(isinstance(layer, torch.nn.BatchNorm2d) for layer in model.modules())) or top_k(model, *args))
    predict.main(['--checkpoint', checkpoint, catalog_images(catalog)[0], '--device', 'cpu'])
    assert folded == [True]


@exports
def test_an_onnx_model_of_the_users_with_some_of_the_outputs_or_in_another_order_is_kept(tmp_path, capsys):
    pytest.importorskip('onnxscript')
    onnx_path = tmp_path / 'user.onnx'
    for mine in (onnx_model(output_names=['gender']), onnx_model(output_names=['color', 'article', 'gender'])):
        onnx_path.write_bytes(mine)
        line = failure_of(['--checkpoint', str(tmp_path / 'unread.pth'), '--export', str(onnx_path)], capsys)
        assert line.startswith(f'error: --export {onnx_path}: is no ONNX model predict.py exported')
        assert onnx_path.read_bytes() == mine


def test_the_json_output_is_indented_one_field_a_line():
    written = io.StringIO()
    predict.write_json([{'image': 'a.jpg', 'error': None, **{head: [('X', 0.5)] for head in HEADS}}], written)
    assert written.getvalue().startswith('[\n  {\n    "image": "a.jpg",\n    "gender": [\n      {\n')


def test_a_name_that_begins_or_ends_with_a_space_is_quoted_in_the_table():
    # Padded to the column, 'a.jpg ' looked like a.jpg: two pictures, one name in the table
    answer = {head: [('X', 0.5)] for head in HEADS}
    lines = predict.format_table([{'image': name, 'error': None, **answer} for name in ('a.jpg ', ' a.jpg', 'a.jpg')])
    assert [line[:10] for line in lines[1:]] == ["'a.jpg '  ", "' a.jpg'  ", 'a.jpg     ']


def test_a_class_of_an_empty_cell_and_a_label_with_an_escape_are_shown_so_in_the_table():
    # The tutorial's vocabulary keeps a class for an empty cell of styles.csv; it was a blank in
    # the table, and a label's escape sequence reached the terminal
    top = {'gender': [('', 0.6), ('Men', 0.4)], 'article': [('Red\x1b[31m', 1.0)], 'color': [('Blue', 1.0)]}
    lines = predict.format_table([{'image': 'a.jpg', 'error': None, **top}])
    assert lines[1].split()[1:5] == ["''", '60.0%', 'Red\\x1b[31m', '100.0%']
    assert lines[2].split()[:2] == ['Men', '40.0%'] and '\x1b' not in ''.join(lines)
    assert lines[1].index('60.0%') == lines[2].index('40.0%')  # '' padded as the label it stands for
