import csv
import errno
import glob
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace

import pytest
from PIL import Image

import split_data
from catalog import read_styles
from cli import UserError
from conftest import ROOT, damaged_exif_jpeg, file_size_limit, locked_by_another_process, run_script
from dataset import AttributesDataset, FashionDataset, read_split
from sample_catalog import make_catalog


def read_rows(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_split_keeps_and_counts_every_quirk(quirky_catalog, tmp_path):
    q = quirky_catalog['quirks']
    result = split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path),
                              '--workers', '1'])
    # Malformed lines (unquoted comma in the name) and rows with NA season/usage are kept.
    kept = 120 + len(q['malformed']) + len(q['na_other'])
    assert result['train'] + result['val'] == kept
    assert result['train'] == round(kept * 0.8)
    assert result['skipped'] == {
        'no image file': len(q['missing_image']),
        'not 60x80': len(q['odd_size']),
        'not RGB': len(q['grayscale']),
        'baseColour is empty or NA': len(q['na_colour']),
        'gender is empty or NA': 1,
        'articleType is empty or NA': 1,
    }
    rows = read_rows(tmp_path / 'train.csv') + read_rows(tmp_path / 'val.csv')
    assert list(rows[0]) == ['image_path', 'gender', 'articleType', 'baseColour']
    ids = {os.path.basename(r['image_path'])[:-4] for r in rows}
    assert len(ids) == len(rows)  # a permutation: no image twice, none in both splits
    assert {str(i) for i in q['malformed'] + q['na_other']} <= ids
    assert all(r['baseColour'] != 'NA' for r in rows)


def test_split_is_seeded(quirky_catalog, tmp_path):
    for name in ('a', 'b'):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / name),
                         '--workers', '1'])
    assert (tmp_path / 'a' / 'train.csv').read_text() == (tmp_path / 'b' / 'train.csv').read_text()


def test_a_split_names_what_it_replaces_and_what_is_in_its_way(quirky_catalog, tmp_path, capsys):
    def split_with_seed(seed, *flags):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path), '--workers', '1',
                         '--seed', str(seed), *flags])
        return capsys.readouterr().out
    (tmp_path / 'val.csv').mkdir()
    with pytest.raises(UserError, match=f"^--output {tmp_path}: {tmp_path / 'val.csv'} is a folder, where a file "
                                        'is to be written; move it away$'):
        split_with_seed(1)
    (tmp_path / 'val.csv').rmdir()
    with pytest.raises(UserError, match='^--output : an empty name; give a folder, such as .$'):
        split_data.main(['--input', quirky_catalog['root'], '--output', ''])
    assert 'note: this replaced' not in split_with_seed(1)  # nothing there before
    assert 'note: this replaced' not in split_with_seed(1)  # the same rows again
    first = {name: (tmp_path / name).read_bytes() for name in ('train.csv', 'val.csv')}
    old = split_data.old_split_paths(str(tmp_path))
    assert (f'note: this replaced another split in {tmp_path}, kept as {old[0]} and {old[1]}: a run trained on it '
            f'cannot --resume on the new files (its validation pictures may now be in train.csv), but can with '
            f'--train-csv {old[0]} --val-csv {old[1]}\n') in split_with_seed(2)
    assert [open(path, 'rb').read() for path in old] == list(first.values())  # a split edited by hand, say
    # --no-replace: the same rows again are no other split; other rows are not written at all
    assert 'wrote' in split_with_seed(2, '--no-replace')
    kept = {name: (tmp_path / name).read_bytes() for name in ('train.csv', 'val.csv')}
    with pytest.raises(split_data.OtherSplitThere, match=f"^{tmp_path / 'train.csv'} and {tmp_path / 'val.csv'}: "
                                                         'another split is there, which --no-replace keeps;'):
        split_with_seed(3, '--no-replace')
    assert {name: (tmp_path / name).read_bytes() for name in kept} == kept
    assert [open(path, 'rb').read() for path in old] == list(first.values())  # nor the old split's copy
    assert sorted(os.listdir(tmp_path)) == sorted(['train.old.csv', 'val.old.csv', *kept])  # no temporary file left
    # A file of the user's by the name of an old split's is not replaced by one
    (tmp_path / 'val.old.csv').write_text('my,notes\n')
    with pytest.raises(UserError, match=f'^--output {tmp_path}: {old[1]} is not a split .* and would be replaced;'):
        split_with_seed(4)


def test_a_split_kept_before_is_kept_again_under_a_number(quirky_catalog, tmp_path, capsys):
    # Each split made again gave train.old.csv and val.old.csv to the one it replaced, and the one
    # kept there before was gone without a word, and with it the split a run had trained on.
    def split_with_seed(seed):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path), '--workers', '1',
                         '--seed', str(seed)])
        return capsys.readouterr().out

    def read(*names):
        return [(tmp_path / name).read_bytes() for name in names]
    splits = {}
    for seed in (1, 2, 3):
        note = split_with_seed(seed)
        splits[seed] = read('train.csv', 'val.csv')
    assert (f', kept as {tmp_path}/train.old.csv and {tmp_path}/val.old.csv (the split kept there before is now '
            f'{tmp_path}/train.old.1.csv and {tmp_path}/val.old.1.csv): a run trained on it') in note
    assert read('train.old.csv', 'val.old.csv') == splits[2] and read('train.old.1.csv', 'val.old.1.csv') == splits[1]
    split_with_seed(1)  # the third (seed 2) is kept too, under the next number
    assert read('train.old.csv', 'val.old.csv') == splits[3] and read('train.old.2.csv', 'val.old.2.csv') == splits[2]
    # The split kept before is the new one: nothing is lost without it, and no copy of it is made
    assert '(the split kept there before' not in split_with_seed(3)
    assert read('train.old.csv', 'val.old.csv') == splits[1]
    assert split_data.kept_splits(str(tmp_path)) == [split_data.old_split_paths(str(tmp_path)),
                                                     split_data.earlier_split_paths(str(tmp_path), 2),
                                                     split_data.earlier_split_paths(str(tmp_path), 1)]
    # A file of the user's by a numbered name is left as it is; the next free number is taken
    (tmp_path / 'val.old.3.csv').write_text('my,notes\n')
    assert 'before is now' in split_with_seed(2)
    assert read('train.old.4.csv', 'val.old.4.csv') == splits[1] and read('val.old.3.csv') == [b'my,notes\n']
    assert sorted(os.listdir(tmp_path)) == sorted(['train.csv', 'val.csv', 'val.old.3.csv'] + [
        f'{name}.old{number}.csv' for name in ('train', 'val') for number in ('', '.1', '.2', '.4')])


def test_empty_split_files_are_no_split_to_keep_or_to_refuse(quirky_catalog, tmp_path, capsys):
    # `touch train.csv val.csv`: --no-replace refused them as another split, once every picture was
    # checked, and a split made over them kept them as an empty train.old.csv and val.old.csv, which
    # its note then offered as the split to train on.
    def split_with_seed(seed, *flags):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path), '--workers', '1',
                         '--seed', str(seed), *flags])
        return capsys.readouterr().out
    for name in ('train.csv', 'val.csv'):
        (tmp_path / name).write_bytes(b'')
    assert 'note: this replaced' not in split_with_seed(1, '--no-replace')
    assert sorted(os.listdir(tmp_path)) == ['train.csv', 'val.csv']
    assert (tmp_path / 'train.csv').stat().st_size > 0 and (tmp_path / 'val.csv').stat().st_size > 0
    # An empty train.csv beside a val.csv of rows: only that one is another split's, and kept.
    val = (tmp_path / 'val.csv').read_bytes()
    (tmp_path / 'train.csv').write_bytes(b'')
    old = split_data.old_split_paths(str(tmp_path))
    assert split_with_seed(2).endswith(f'\nnote: this replaced another split in {tmp_path}, kept as {old[1]}: a run '
                                       'trained on it cannot --resume on the new files (its validation pictures '
                                       'may now be in train.csv)\n')
    assert sorted(os.listdir(tmp_path)) == ['train.csv', 'val.csv', 'val.old.csv']
    assert (tmp_path / 'val.old.csv').read_bytes() == val


def test_the_same_split_made_into_another_folder_has_the_same_digest_other_pictures_or_labels_not(
        quirky_catalog, tmp_path):
    # The same seed into another folder names the same pictures from there (one '..' more): a
    # checkpoint takes it for the split it trained on. The digest of the lines did not.
    near, far, other = tmp_path / 'a', tmp_path / 'b' / 'c', tmp_path / 'd'
    for folder, seed in [(near, 1), (far, 1), (other, 2)]:
        split_data.main(['--input', quirky_catalog['root'], '--output', str(folder), '--workers', '1',
                         '--seed', str(seed)])
    digest = {folder: split_data.split_digest(str(folder / 'train.csv')) for folder in (near, far, other)}
    lines = (near / 'train.csv').read_bytes()
    assert lines != (far / 'train.csv').read_bytes()
    assert split_data.rows_digest(lines) != split_data.rows_digest((far / 'train.csv').read_bytes())
    assert digest[near] == digest[far] != digest[other]
    header, first, *rest = lines.decode().splitlines()
    path, gender, *labels = first.split(',')
    relabelled = '\n'.join([header, ','.join([path, 'Women' if gender == 'Men' else 'Men', *labels]), *rest])
    assert split_data.pictures_digest(relabelled.encode()) != digest[near]
    open_quote = b'image_path\n"' + b'x' * 200_000  # past the csv module's field limit: no error
    assert split_data.pictures_digest(open_quote) != split_data.pictures_digest(open_quote + b'y')


def test_a_split_of_another_catalog_with_the_same_names_is_another_split_in_its_folder(tmp_path, capsys):
    # Two copies of a catalog (the same ids and labels; one could be resized): into one folder,
    # the second split names other pictures, which --no-replace keeps out and a replace notes.
    for name in ('a', 'b'):
        make_catalog(str(tmp_path / name / 'fashion-product-images'), n_images=40, seed=5)
    argv = ['--output', str(tmp_path / 'split'), '--workers', '1']
    split_data.main(['--input', str(tmp_path / 'a' / 'fashion-product-images'), *argv])
    with pytest.raises(split_data.OtherSplitThere):
        split_data.main(['--input', str(tmp_path / 'b' / 'fashion-product-images'), *argv, '--no-replace'])
    capsys.readouterr()
    split_data.main(['--input', str(tmp_path / 'b' / 'fashion-product-images'), *argv])
    assert 'note: this replaced another split' in capsys.readouterr().out


def test_a_split_cut_short_changes_neither_csv(quirky_catalog, tmp_path, monkeypatch):
    # A new train.csv beside the old val.csv could share images with it: both or neither.
    split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    before = {name: (tmp_path / name).read_text() for name in ('train.csv', 'val.csv')}
    written = []

    def ctrl_c_after_train_csv(rows, f, folder):
        if written:
            raise KeyboardInterrupt
        written.append(real_write_rows(rows, f, folder))

    real_write_rows = split_data.write_rows
    monkeypatch.setattr(split_data, 'write_rows', ctrl_c_after_train_csv)
    with pytest.raises(KeyboardInterrupt):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path), '--workers', '1',
                         '--seed', '7'])
    assert written  # train.csv was written whole before the Ctrl-C
    assert {name: (tmp_path / name).read_text() for name in before} == before
    assert sorted(os.listdir(tmp_path)) == ['train.csv', 'val.csv']


def test_a_full_disk_changes_neither_csv_and_names_the_file(quirky_catalog, tmp_path):
    def split_into(folder, seed):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / folder),
                         '--workers', '1', '--seed', str(seed)])

    split_into('probe', 7)  # at the same depth, so with the same relative image paths
    new_train_size = os.path.getsize(tmp_path / 'probe' / 'train.csv')
    split_into('out', 1)
    before = {name: (tmp_path / 'out' / name).read_text() for name in ('train.csv', 'val.csv')}
    # train.csv is bigger than val.csv and than the buffer: its last bytes are the ones that fail.
    with file_size_limit(new_train_size - 1), pytest.raises(OSError) as error:
        split_into('out', 7)
    assert error.value.filename == os.path.join(str(tmp_path / 'out'), 'train.csv')
    assert {name: (tmp_path / 'out' / name).read_text() for name in before} == before
    assert sorted(os.listdir(tmp_path / 'out')) == ['train.csv', 'val.csv']


def test_a_split_into_a_symlinked_folder_finds_its_images(quirky_catalog, tmp_path, monkeypatch):
    # splits/ -> elsewhere/splits: the system takes splits/.. to elsewhere/, not to project/, and
    # elsewhere/ has a catalog of its own, with other pictures under the same names.
    (tmp_path / 'elsewhere' / 'splits').mkdir(parents=True)
    make_catalog(str(tmp_path / 'elsewhere' / 'fashion-product-images'), n_images=130, seed=9)
    (tmp_path / 'project').mkdir()
    (tmp_path / 'project' / 'splits').symlink_to(tmp_path / 'elsewhere' / 'splits')
    os.symlink(quirky_catalog['root'], tmp_path / 'project' / 'fashion-product-images')
    monkeypatch.chdir(tmp_path / 'project')
    split_data.main(['--input', 'fashion-product-images', '--output', 'splits', '--workers', '1'])
    attributes = AttributesDataset(os.path.join('fashion-product-images', 'styles.csv'))
    n = len(read_rows(tmp_path / 'elsewhere' / 'splits' / 'val.csv'))
    dataset = FashionDataset(os.path.join('splits', 'val.csv'), attributes)
    images = os.path.join(quirky_catalog['root'], 'images')
    assert len(dataset) == n and all(os.path.samefile(os.path.dirname(sample[0]), images) for sample in dataset.samples)
    # ...and the other way round: a split made in its real folder, read through a link to it.
    split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / 'real'), '--workers', '1'])
    (tmp_path / 'project' / 'a').mkdir()
    (tmp_path / 'project' / 'a' / 'linked').symlink_to(tmp_path / 'real')
    monkeypatch.chdir(tmp_path / 'project' / 'a')  # from where the paths, as they are, lead nowhere
    attributes = AttributesDataset(os.path.join(quirky_catalog['root'], 'styles.csv'))
    assert len(FashionDataset(os.path.join('linked', 'val.csv'), attributes)) == n


def test_a_split_through_a_link_and_up_is_written_and_read_where_the_system_goes(quirky_catalog, tmp_path,
                                                                                monkeypatch):
    # ext -> far/a/b: ext/.. is far/a for the system, and project/ for a path taken by name; at
    # another depth, so that paths relative to either cannot both lead to the pictures.
    (tmp_path / 'far' / 'a' / 'b').mkdir(parents=True)
    (tmp_path / 'project').mkdir()
    (tmp_path / 'project' / 'ext').symlink_to(tmp_path / 'far' / 'a' / 'b')
    monkeypatch.chdir(tmp_path / 'project')
    result = split_data.main(['--input', quirky_catalog['root'], '--output', os.path.join('ext', '..'),
                              '--workers', '1'])
    assert sorted(os.listdir(tmp_path / 'far' / 'a')) == ['b', 'train.csv', 'val.csv'] and os.listdir('.') == ['ext']
    attributes = AttributesDataset(os.path.join(quirky_catalog['root'], 'styles.csv'))
    assert len(FashionDataset(os.path.join('ext', '..', 'val.csv'), attributes)) == result['val']
    monkeypatch.chdir(tmp_path)  # where the rows' paths, taken from here as the tutorial's were, lead nowhere
    assert len(FashionDataset(str(tmp_path / 'far' / 'a' / 'val.csv'), attributes)) == result['val']


def test_a_split_beside_a_linked_catalog_moves_with_the_project(quirky_catalog, tmp_path):
    # The usual set-up for a big dataset: a link to it in the project; then the project moves.
    (tmp_path / 'project').mkdir()
    os.symlink(quirky_catalog['root'], tmp_path / 'project' / 'fashion-product-images')
    split_data.main(['--input', str(tmp_path / 'project' / 'fashion-product-images'),
                     '--output', str(tmp_path / 'project'), '--workers', '1'])
    assert read_rows(tmp_path / 'project' / 'val.csv')[0]['image_path'].startswith('fashion-product-images/images/')
    (tmp_path / 'sub').mkdir()
    os.rename(tmp_path / 'project', tmp_path / 'sub' / 'moved')
    attributes = AttributesDataset(os.path.join(quirky_catalog['root'], 'styles.csv'))
    dataset = FashionDataset(str(tmp_path / 'sub' / 'moved' / 'val.csv'), attributes)
    assert len(dataset) == len(read_rows(tmp_path / 'sub' / 'moved' / 'val.csv'))


@pytest.mark.parametrize('line_break', ['\n', '\r'])
def test_a_catalog_whose_folder_name_a_csv_cannot_hold_is_refused_by_name_on_one_line(tmp_path, monkeypatch,
                                                                                      line_break):
    # A CSV row of its paths would run over two lines, which every reader takes for a quote left open.
    catalog = make_catalog(str(tmp_path / f'new{line_break}line' / 'fashion-product-images'), n_images=5, seed=5)
    checked = []
    monkeypatch.setattr(split_data, 'keep_usable', lambda *args: checked.append(args))
    with pytest.raises(UserError) as refused:
        split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    shown = repr(line_break)[1:-1]
    assert str(refused.value) == (f'{tmp_path}/new{shown}line/fashion-product-images/images: a folder on the way to '
                                  'the pictures has a line break in its name, which a CSV row cannot hold; rename it')
    assert sorted(os.listdir(tmp_path)) == [f'new{line_break}line'] and not checked  # before the pictures are checked
    # Into a folder still to be made, with images/ a link to pictures elsewhere: said once every
    # picture was checked (the early look followed the link to a name without the line break)
    linked = tmp_path / f'new{line_break}line' / 'linked'
    linked.mkdir()
    shutil.copytree(os.path.join(catalog['root'], 'images'), tmp_path / 'pictures')
    (linked / 'images').symlink_to(tmp_path / 'pictures')
    shutil.copy(os.path.join(catalog['root'], 'styles.csv'), linked)
    with pytest.raises(UserError, match='a folder on the way to the pictures has a line break in its name'):
        split_data.main(['--input', str(linked), '--output', str(tmp_path / 'new' / 'split'), '--workers', '1'])
    assert not checked and not (tmp_path / 'new').exists()
    # Bytes that are not UTF-8 (Latin-1's é), which Linux allows in a name and a UTF-8 CSV cannot hold.
    latin = os.path.join(str(tmp_path), b'caf\xe9'.decode('utf-8', 'surrogateescape'))
    catalog = make_catalog(os.path.join(latin, 'fashion-product-images'), n_images=5, seed=5)
    with pytest.raises(UserError) as refused:
        split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    assert str(refused.value) == (f'{tmp_path}/caf\\xe9/fashion-product-images/images: a folder on the way to the '
                                  'pictures has a name that is not valid UTF-8, which the CSVs are; rename it')
    assert not checked


def test_a_folder_name_holding_a_terminal_escape_sequence_is_printed_escaped(tmp_path, capsys):
    # `wrote 4 rows to DIR/train.csv` and the catalog's line printed the names as they were: the
    # terminal ran their sequences (\x1b[2J clears the screen, \x1b]0;...\x07 retitles the window).
    from cli import run_cli
    odd = 'clear\x1b[2J title\x1b]0;mine\x07 over\r'
    catalog = make_catalog(str(tmp_path / odd / 'fashion-product-images'), n_images=5, seed=5)
    run_cli(lambda: split_data.main(['--input', catalog['root'], '--output', str(tmp_path / odd), '--workers', '1']))
    out = capsys.readouterr().out
    assert os.path.isfile(tmp_path / odd / 'val.csv')
    assert out.isascii() and all(line.isprintable() for line in out.splitlines())
    assert f'to {tmp_path}/clear\\x1b[2J title\\x1b]0;mine\\x07 over\\r/val.csv' in out


def test_pictures_with_damaged_exif_are_kept_without_pillows_warnings(tmp_path):
    # Their size is checked as they are shown, upright by their EXIF orientation: Pillow reads the
    # EXIF it can, and warned of the rest in two lines a picture among split_data.py's.
    catalog = make_catalog(str(tmp_path / 'fashion-product-images'), n_images=20, seed=3)
    pictures = sorted(glob.glob(os.path.join(catalog['root'], 'images', '*')))
    for damage, path in zip(('count', 'length', 'place'), pictures):
        with Image.open(path) as img:
            damaged = damaged_exif_jpeg(img.convert('RGB'), damage)
        with open(path, 'wb') as f:
            f.write(damaged)
    result = run_script('split_data.py', '--input', catalog['root'], '--output', tmp_path, '--workers', '1')
    assert result.returncode == 0 and 'Warning' not in result.stderr, result.stderr  # its progress bar is there
    assert len(read_rows(tmp_path / 'train.csv')) + len(read_rows(tmp_path / 'val.csv')) == 20


@pytest.mark.skipif(sys.platform == 'win32', reason="needs a POSIX shell's 2>&-")
def test_a_split_started_with_stderr_closed_is_written(quirky_catalog, tmp_path):
    # `2>&-`: Python leaves sys.stderr None, and the progress bar failed on it, with the run, without
    # a word; the file opened next (here the split) would also take the closed stream's number.
    out = tmp_path / 'split'
    done = subprocess.run(['sh', '-c', '"$0" "$@" 2>&-', sys.executable, os.path.join(ROOT, 'split_data.py'),
                           '--input', quirky_catalog['root'], '--output', str(out), '--workers', '1'],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout
    assert sorted(os.listdir(out)) == ['train.csv', 'val.csv']
    assert 'wrote' in done.stdout and not done.stderr
    assert all(open(out / name).readline().startswith('image_path,') for name in ('train.csv', 'val.csv'))


@pytest.mark.parametrize('errors', ['apart', 'in the same pipe'])
def test_a_reader_that_stops_after_the_first_line_still_gets_the_split_written(quirky_catalog, tmp_path, errors):
    # `| head -1`: the second line's write failed on the closed pipe, and the script stopped there,
    # status 1, no word said (nowhere to say it) and no split written. So it did with `2>&1 | head -1`,
    # where the progress bar's write failed.
    out = tmp_path / 'split'
    command = [sys.executable, os.path.join(ROOT, 'split_data.py'), '--input', quirky_catalog['root'],
               '--output', str(out), '--workers', '1']
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    stderr = subprocess.PIPE if errors == 'apart' else subprocess.STDOUT
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env) as process:
        assert b'rows' in process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read().decode() if process.stderr else ''
    assert process.returncode == 0 and 'Traceback' not in stderr, stderr
    split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / 'read'), '--workers', '1'])
    assert all(read_rows(out / name) == read_rows(tmp_path / 'read' / name) for name in ('train.csv', 'val.csv'))


def test_split_csv_works_from_another_directory(quirky_catalog, tmp_path, monkeypatch):
    out = tmp_path / 'splits'
    result = run_script('split_data.py', '--input', quirky_catalog['root'], '--output', out,
                        cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'kept' in result.stdout and 'no image file' in result.stdout
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    attributes = AttributesDataset(os.path.join(quirky_catalog['root'], 'styles.csv'))
    dataset = FashionDataset(str(out / 'val.csv'), attributes)
    assert len(dataset) == len(read_rows(out / 'val.csv'))
    assert dataset[0]['img'].size == (60, 80)


def test_fewer_images_than_a_max_given_uses_all_and_says_so(quirky_catalog, tmp_path, capsys):
    for name, cap in (('a', []), ('b', ['--max-images', '1000'])):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / name), '--workers', '1'] + cap)
    assert (tmp_path / 'a' / 'train.csv').read_text() == (tmp_path / 'b' / 'train.csv').read_text()
    # Than the tutorial's 40,000, not said: on the demo's sample catalog it named a flag its user never gave
    a, b = capsys.readouterr().out.split('wrote ', 1)
    assert 'than --max-images' not in a and 'than --max-images (1,000); using all of them' in b


def test_max_images_caps_the_split(quirky_catalog, tmp_path):
    result = split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path),
                              '--max-images', '50', '--workers', '1'])
    assert (result['train'], result['val']) == (40, 10)
    # 50 drawn from the whole catalog, not its first 50 rows: another seed keeps others
    result = split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / 'seed-2'),
                              '--max-images', '50', '--workers', '1', '--seed', '2'])

    def kept(folder):
        return {os.path.basename(line.split(',')[0]) for name in ('train.csv', 'val.csv')
                for line in open(folder / name).read().splitlines()[1:]}
    assert len(kept(tmp_path)) == len(kept(tmp_path / 'seed-2')) == 50
    assert kept(tmp_path) != kept(tmp_path / 'seed-2')


def test_any_mode_keeps_the_pictures_that_are_not_rgb(quirky_catalog, tmp_path):
    plain = split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / 'plain'), '--workers', '1'])
    kept = split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / 'any'), '--workers', '1',
                            '--any-mode'])
    assert plain['skipped']['not RGB'] > 0 and 'not RGB' not in kept['skipped']
    assert kept['train'] + kept['val'] == plain['train'] + plain['val'] + plain['skipped']['not RGB']


@pytest.mark.parametrize('flags', [['--max-images', '1'], ['--val-fraction', '0.001']])
def test_flags_that_leave_a_side_empty_are_named(quirky_catalog, tmp_path, flags):
    with pytest.raises(UserError, match=r'--max-images .* --val-fraction .* each needs at least one'):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / 'out'), '--workers', '1',
                         *flags])
    assert not os.path.exists(tmp_path / 'out')


@pytest.mark.parametrize('images, fraction, offered, outside', [(2, '0.2', ('0.26', '0.74'), ('0.25', '0.75')),
                                                                  (5, '0.9', ('0.1', '0.89'), ('0.09', '0.9'))])
def test_a_split_that_leaves_a_side_empty_offers_the_val_fractions_that_do_not(tmp_path, images, fraction, offered,
                                                                                 outside):
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=images, seed=1)

    def split_with(fraction, name):
        return split_data.main(['--input', catalog['root'], '--output', str(tmp_path / name), '--workers', '1',
                                '--val-fraction', fraction])
    with pytest.raises(UserError, match=f'each needs at least one: give a --val-fraction from {offered[0]} to '
                                        f'{offered[1]}$') as refused:
        split_with(fraction, 'refused')
    # What it offers works, at either end, as typed from the message; the next fraction outside does not
    low, high = re.search(r'from (\S+) to (\S+)$', str(refused.value)).groups()
    for given in (low, high):
        result = split_with(given, given)
        assert result['train'] >= 1 and result['val'] >= 1 and result['train'] + result['val'] == images
    for given in outside:  # split() rounds half to even: 2 * 0.75 is 1.5, which is 2 for training
        with pytest.raises(UserError, match='each needs at least one'):
            split_with(given, given)


def test_one_picture_is_said_to_be_no_split_at_any_val_fraction(tmp_path):
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=1, seed=1)
    with pytest.raises(UserError, match=r'^1 image \(1 usable in .*each needs at least one; no --val-fraction splits '
                                        r'1 image: a split needs at least 2 usable pictures$'):
        split_data.main(['--input', catalog['root'], '--output', str(tmp_path / 'out'), '--workers', '1'])


@pytest.mark.parametrize('fraction, offered', [('0.5', 'give --max-images 2 or more'),
                                               ('0.2', 'give --max-images 2 with a --val-fraction from 0.26 to 0.74')])
def test_a_cap_of_one_picture_offers_a_cap_that_splits(tmp_path, fraction, offered):
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=2, seed=1)
    with pytest.raises(UserError, match=r'^1 image \(2 usable in .*, --max-images 1\) .*; no --val-fraction splits '
                                        f'1 image: {offered}$'):
        split_data.main(['--input', catalog['root'], '--output', str(tmp_path / 'out'), '--workers', '1',
                         '--max-images', '1', '--val-fraction', fraction])
    result = split_data.main(['--input', catalog['root'], '--output', str(tmp_path / 'out'), '--workers', '1',
                              '--max-images', '2', '--val-fraction', '0.5' if fraction == '0.5' else '0.26'])
    assert (result['train'], result['val']) == (1, 1)


def test_a_catalog_row_saved_without_its_empty_cells_at_the_end_is_split(tmp_path, capsys):
    # Old Excel: '10002,Men,Apparel,Bottomwear,Trousers,Navy Blue', its season, year, usage and name left out
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=5, seed=1)
    styles = tmp_path / 'catalog' / 'styles.csv'
    lines = styles.read_text().splitlines()
    short = ','.join(lines[1].split(',')[:6])
    styles.write_text('\n'.join([lines[0], short] + lines[2:]) + '\n')
    result = split_data.main(['--input', catalog['root'], '--output', str(tmp_path / 'out'), '--workers', '1'])
    assert (result['train'], result['val']) == (4, 1) and not result['skipped']
    assert 'styles.csv: 5 rows, 5 with usable labels' in capsys.readouterr().out
    rows = read_rows(tmp_path / 'out' / 'train.csv') + read_rows(tmp_path / 'out' / 'val.csv')
    id_, gender, _, _, article, colour = short.split(',')
    assert {'image_path': f'../catalog/images/{id_}.jpg', 'gender': gender, 'articleType': article,
            'baseColour': colour} in rows


@pytest.mark.parametrize('fraction', ['0', '1'])
def test_a_val_fraction_at_either_end_is_refused_as_out_of_range(fraction, capsys):
    # 0 and 1 themselves are refused: "between 0 and 1" read as if they were allowed.
    with pytest.raises(SystemExit):
        split_data.parse_args(['--val-fraction', fraction])
    assert f'--val-fraction {float(fraction)} must be above 0 and below 1' in capsys.readouterr().err


def test_counts_of_one_are_in_the_singular(tmp_path, capsys):
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=2, seed=1)
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1', '--val-fraction', '0.5'])
    out = capsys.readouterr().out
    assert 'kept 2 rows;' in out
    assert f'wrote 1 row to {tmp_path / "train.csv"} and 1 row to {tmp_path / "val.csv"}\n' in out
    with pytest.raises(UserError, match=r'^1 image \(2 usable in .*: 1 for training and 0 for validation;'):
        split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1', '--max-images', '1'])


@pytest.mark.skipif(not os.environ.get('FASHION_DATA'), reason='FASHION_DATA names no real dataset')
def test_real_catalog_counts(tmp_path, capsys):
    root = os.environ['FASHION_DATA']
    styles, skipped = read_styles(os.path.join(root, 'styles.csv'))
    assert len(styles) + sum(skipped.values()) == 44446
    assert skipped == {'baseColour is empty or NA': 15}
    assert len(styles) == 44431  # the 22 malformed lines are among them
    by_id = {s.id: s for s in styles}
    assert by_id['44065'].articleType == 'Perfume and Body Mist'  # file line 6044, 11 fields

    result = split_data.main(['--input', root, '--output', str(tmp_path)])
    assert (result['train'], result['val']) == (32000, 8000)
    assert result['skipped'] == {'no image file': 359, 'not 60x80': 23,
                                 'baseColour is empty or NA': 15}
    said = capsys.readouterr().out.splitlines()
    assert said[:2] == [f'{os.path.join(root, "styles.csv")}: 44,446 rows, 44,431 with usable labels',
                        'kept 44,049 rows; skipped 397: 359 no image file, 23 not 60x80, 15 baseColour is empty or NA']
    train, val = read_rows(tmp_path / 'train.csv'), read_rows(tmp_path / 'val.csv')
    assert not {r['image_path'] for r in train} & {r['image_path'] for r in val}


def test_split_data_loads_no_pytorch():
    # It starts in a tenth of a second, and its spawned image-checking processes (macOS, Windows)
    # do not each load PyTorch either.
    code = 'import sys, split_data; print(sorted(m for m in sys.modules if m.split(".")[0] == "torch"))'
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]'


def test_train_csv_is_on_the_disk_before_either_csv_is_renamed(tmp_path, monkeypatch):
    # A full disk or a quota may show only at the flush (delayed allocation, NFS): train.csv's must
    # come before val.csv goes into place, or a new val.csv could stand beside the old train.csv.
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=20, seed=1)
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(('fsync', os.readlink(f'/proc/self/fd/{fd}')))
        real_fsync(fd)

    def replace(source, target):
        events.append(('replace', str(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, 'fsync', fsync)
    monkeypatch.setattr(os, 'replace', replace)
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    first_rename = next(i for i, (kind, _) in enumerate(events) if kind == 'replace')
    assert any(kind == 'fsync' and name.endswith('train.csv') for kind, name in events[:first_rename]), events


@pytest.mark.parametrize('refused', ['train.csv', 'val.csv'])
def test_a_csv_that_cannot_be_renamed_into_place_leaves_the_old_split(tmp_path, monkeypatch, refused):
    # One bind-mounted into a container (EBUSY), or made immutable: the other is left as it was.
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=20, seed=1)
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    before = {name: (tmp_path / name).read_bytes() for name in ('train.csv', 'val.csv')}
    real_replace = os.replace

    def refuse(source, target):
        if str(target) == str(tmp_path / refused):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), source)
        real_replace(source, target)

    monkeypatch.setattr(os, 'replace', refuse)
    with pytest.raises(OSError, match='Device or resource busy') as error:
        split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1', '--seed', '7'])
    assert error.value.filename == str(tmp_path / refused)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    # and kept as train.old.csv and val.old.csv, as it is before the new split is renamed in
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path) if name != 'catalog'} == {
        **before, 'train.old.csv': before['train.csv'], 'val.old.csv': before['val.csv']}


def test_a_nul_byte_is_read_in_a_split_as_on_python_3_11_whatever_the_csv_module(tmp_path, csv_module):
    # Python 3.10's csv module refuses it: a file with one was read line by line for its digest
    # (another digest than on 3.11), and one in the way of a split ended in a traceback.
    data = b'image_path,gender\nimages/\x001.jpg,Men\nimages/2.jpg,Women\n'
    assert split_data.named_rows(data) == [['image_path', 'gender'], ['\x001.jpg', 'Men'], ['2.jpg', 'Women']]
    (tmp_path / 'train.csv').write_bytes(b'\x00\x01,\x02\n')  # no split, with NUL bytes from its start
    assert split_data.first_row(str(tmp_path / 'train.csv')) == ['\x00\x01', '\x02']
    with pytest.raises(UserError, match=r"train.csv is not a split \(it is not text\), and would be replaced"):
        split_data.check_only_splits_replaced(str(tmp_path))


@pytest.mark.parametrize('name', ['train.csv', 'val.csv'])
def test_a_file_that_is_no_split_is_not_replaced_by_one(tmp_path, name):
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=20, seed=1)
    (tmp_path / name).write_text('name,score\nalice,3\n')
    with pytest.raises(UserError, match=f"^--output {tmp_path}: {tmp_path / name} is not a split \\(its first line is "
                                        "'name,score', not 'image_path,gender,articleType,baseColour'\\), and would "
                                        "be replaced; move it away or give another --output$"):
        split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    assert (tmp_path / name).read_text() == 'name,score\nalice,3\n'
    (tmp_path / name).write_text('\r\n\nname,score\n')  # blank lines first, as the scripts reading a split skip
    with pytest.raises(UserError, match="is not a split \\(its first line is 'name,score', not"):
        split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    (tmp_path / name).write_text('\n' * 70_000 + 'image_path,gender,articleType,baseColour\n')  # more than read
    # kept, not taken for blank: a split may follow
    with pytest.raises(UserError, match=r"is not a split \(it is blank in its first 64 KiB\)"):
        split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    (tmp_path / name).write_text('\n\r\n')  # blank lines alone: nothing is lost
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    (tmp_path / name).write_text('')  # empty: nothing is lost
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    assert (tmp_path / name).read_text().startswith('image_path,gender,articleType,baseColour')


@pytest.mark.parametrize('header,encoding', [('image_path,gender,articleType,baseColour,my_note', 'utf-8'),
                                             ('\r\nimage_path,gender,articleType,baseColour', 'utf-8'),
                                             ('image_path,gender,articleType,baseColour', 'utf-16'),
                                             ('image_path,gender,articleType,baseColour', 'utf-32'),
                                             (' gender , image_path,baseColour,articleType,', 'utf-8')])
def test_a_split_with_columns_of_the_users_is_a_split_kept_when_replaced(tmp_path, capsys, header, encoding):
    # A column of notes added (on no row yet), a blank line first, saved as UTF-16 or UTF-32 (with a
    # byte-order mark), or a spreadsheet's reordering, spaces and trailing comma: train.py reads it
    # as a split, and split_data.py refused it as none, so it could not be kept.
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=20, seed=1)
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    rows = (tmp_path / 'train.csv').read_text().splitlines(keepends=True)[1:]
    edited = header + '\n' + ''.join(rows)
    (tmp_path / 'train.csv').write_bytes(edited.encode(encoding))
    if 'gender ,' not in header:  # its rows' fields are not reordered with it
        attributes = AttributesDataset(os.path.join(catalog['root'], 'styles.csv'))
        samples, skipped = read_split(str(tmp_path / 'train.csv'), attributes)
        assert len(samples) == len(rows) and not skipped
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1', '--seed', '9'])
    assert 'note: this replaced another split' in capsys.readouterr().out
    assert (tmp_path / 'train.old.csv').read_bytes() == edited.encode(encoding)


def test_a_split_row_of_a_label_over_lines_is_skipped_and_an_unknown_label_printed_on_one_line(tmp_path, capsys):
    # A label typed in two lines in a spreadsheet refused the whole split as of a quote left open;
    # an unknown label was printed as it is, its escape sequences reaching the terminal.
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=20, seed=1)
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    header, first, _, *rows = (tmp_path / 'train.csv').read_text().splitlines()
    path, gender, article, colour = first.split(',')
    edited = [header, f'{path},{gender},{article},"{colour}\r\n{colour}"', f'{path},{gender},\x1b[31m,{colour}', *rows]
    (tmp_path / 'train.csv').write_text('\n'.join(edited) + '\n')
    attributes = AttributesDataset(os.path.join(catalog['root'], 'styles.csv'))
    samples, skipped = read_split(str(tmp_path / 'train.csv'), attributes)
    assert len(samples) == len(rows)
    assert skipped == {'with a label over several lines': 1, 'with a label not in the vocabulary': 1}
    said = capsys.readouterr().out
    assert f'{tmp_path / "train.csv"}: labels not in the vocabulary: articleType \\x1b[31m (1)\n' in said


def test_what_a_killed_split_left_half_written_is_removed(tmp_path, capsys):
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=20, seed=1)
    (tmp_path / '.tmp-2147483646-val.csv').write_text('image_path,gender')  # a split_data.py killed mid-write
    split_data.main(['--input', catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    assert sorted(os.listdir(tmp_path)) == ['catalog', 'train.csv', 'val.csv']
    assert (f'note: removed .tmp-2147483646-val.csv from {tmp_path}: a file left half-written by a split_data.py '
            'that was killed') in capsys.readouterr().out


KILLED_AFTER_RENAMES = '''
import os, sys
import split_data
real_replace, real_remove, renamed = os.replace, os.remove, []
def replace(source, target):
    real_replace(source, target)
    if os.path.basename(target) in ('train.csv', 'val.csv'):
        renamed.append(target)
        if str(len(renamed)) == sys.argv[1]:
            os._exit(137)  # as a kill -9 there: no finally block runs
def remove(path):
    real_remove(path)
    if sys.argv[1] == 'aside' and '-old-' in os.path.basename(path):
        os._exit(137)
os.replace, os.remove = replace, remove
split_data.main(sys.argv[2:])
'''


@pytest.mark.parametrize('renames', [1, 2])
def test_a_split_killed_as_it_replaced_another_is_put_back_by_the_next_run(tmp_path, capsys, renames):
    # Killed after train.csv's rename (1), or after both, before the old files kept aside were
    # removed (2). The old train.csv kept aside was removed as half-written, and the new train.csv
    # stayed beside the old val.csv, sharing pictures with it; the next run kept that pair as
    # train.old.csv and val.old.csv, and offered it to --resume.
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=40, seed=1)
    out = tmp_path / 'split'
    args = ['--input', catalog['root'], '--output', str(out), '--workers', '1']
    split_data.main([*args, '--seed', '1'])
    old = {name: (out / name).read_bytes() for name in ('train.csv', 'val.csv')}
    killed = subprocess.run([sys.executable, '-c', KILLED_AFTER_RENAMES, str(renames), *args, '--seed', '2'],
                            cwd=ROOT, capture_output=True, timeout=120)
    assert killed.returncode == 137
    assert (out / 'train.csv').read_bytes() != old['train.csv']
    capsys.readouterr()
    split_data.main([*args, '--seed', '1', '--no-replace'])  # refused where a file of the new split stayed
    assert {path.name: path.read_bytes() for path in out.iterdir()} == {
        **old, 'train.old.csv': old['train.csv'], 'val.old.csv': old['val.csv']}  # kept before the renames
    assert f'note: put back {"train.csv" if renames == 1 else "train.csv, val.csv"} in {out}' in capsys.readouterr().out


def test_a_split_killed_once_its_files_were_in_place_leaves_them_to_the_next_run(tmp_path, capsys):
    # Killed as the old files kept aside were removed, the first gone: the next run put back the
    # old val.csv beside the new train.csv.
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=40, seed=1)
    out = tmp_path / 'split'
    args = ['--input', catalog['root'], '--output', str(out), '--workers', '1']
    split_data.main([*args, '--seed', '1'])
    old = [(out / name).read_bytes() for name in ('train.csv', 'val.csv')]
    killed = subprocess.run([sys.executable, '-c', KILLED_AFTER_RENAMES, 'aside', *args, '--seed', '2'],
                            cwd=ROOT, capture_output=True, timeout=120)
    assert killed.returncode == 137
    new = {name: (out / name).read_bytes() for name in ('train.csv', 'train.old.csv', 'val.csv', 'val.old.csv')}
    assert [new['train.old.csv'], new['val.old.csv']] == old  # kept: it was lost, only kept aside, in a kill there
    capsys.readouterr()
    split_data.main([*args, '--seed', '2', '--no-replace'])  # refused where a file of the old split came back
    assert {path.name: path.read_bytes() for path in out.iterdir()} == new
    assert 'put back' not in capsys.readouterr().out


@pytest.mark.parametrize('when', ['train.csv renamed', 'val.csv renamed', 'an aside removed'])
def test_a_ctrl_c_as_a_split_is_put_in_place_is_taken_once_it_is_and_the_old_one_kept(tmp_path, monkeypatch, capsys,
                                                                                      when):
    # Taken as an aside of the renames was removed, it left the new split with the old one lost (not
    # kept as *.old.csv), and the next run put back the old val.csv beside the new train.csv.
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=40, seed=1)
    out = tmp_path / 'split'
    args = ['--input', catalog['root'], '--output', str(out), '--workers', '1']
    split_data.main([*args, '--seed', '1'])
    old = [(out / name).read_bytes() for name in ('train.csv', 'val.csv')]
    real_replace, real_remove = os.replace, os.remove

    def replace(source, target):
        real_replace(source, target)
        if when == f'{os.path.basename(target)} renamed':
            os.kill(os.getpid(), signal.SIGINT)  # taken as the call returns

    def remove(path):
        real_remove(path)
        if when == 'an aside removed' and '-old-' in os.path.basename(path):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, 'replace', replace)
    monkeypatch.setattr(os, 'remove', remove)
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        split_data.main([*args, '--seed', '2'])
    monkeypatch.undo()
    said = capsys.readouterr().out
    assert 'wrote 32 rows to' in said and 'note: this replaced another split' in said
    assert sorted(os.listdir(out)) == ['train.csv', 'train.old.csv', 'val.csv', 'val.old.csv']
    assert [(out / name).read_bytes() for name in ('train.old.csv', 'val.old.csv')] == old
    split_data.main([*args, '--seed', '2', '--no-replace'])  # the new split in place, both files of it
    assert 'put back' not in capsys.readouterr().out


@pytest.mark.parametrize('make, what', [
    (lambda path: path.mkdir(), 'a folder'),
    (lambda path: path.symlink_to(path), 'a link that leads to no file'),  # a loop of links
    (lambda path: path.symlink_to(path.parent / 'gone.csv'), 'a link that leads to no file'),
])
def test_a_styles_csv_that_is_there_but_no_file_is_named_as_such_not_to_be_downloaded(tmp_path, make, what):
    # It was "no such file", with the advice to download the dataset the user has.
    (tmp_path / 'images').mkdir()
    make(tmp_path / 'styles.csv')
    with pytest.raises(UserError, match=f"^{tmp_path / 'styles.csv'}: {what}, where the catalog's labels are to be$"):
        split_data.main(['--input', str(tmp_path), '--output', str(tmp_path / 'out')])


def test_a_sorted_split_has_the_same_digest_in_any_order_and_both_come_from_one_reading(quirky_catalog, tmp_path):
    split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path), '--workers', '1'])
    header, *rows = (tmp_path / 'train.csv').read_text().splitlines()
    (tmp_path / 'sorted.csv').write_text('\n'.join([header, *sorted(rows, reverse=True), '']))
    (tmp_path / 'fewer.csv').write_text('\n'.join([header, *sorted(rows[1:]), '']))
    own, resorted, fewer = (split_data.split_digests(str(tmp_path / name))
                            for name in ('train.csv', 'sorted.csv', 'fewer.csv'))
    assert own[0] != resorted[0] and own[1] == resorted[1]  # in order, and in any order
    assert fewer[1] != own[1]
    assert own == (split_data.split_digest(str(tmp_path / 'train.csv')),
                   split_data.split_digest(str(tmp_path / 'train.csv'), ordered=False))


@pytest.mark.parametrize('default', ['fork', 'forkserver'])
def test_the_image_checks_run_in_forked_processes_whatever_pythons_default(tmp_path, monkeypatch, default):
    # Python 3.14 starts processes from a fork server by default on Linux: its workers would import
    # this module anew, and a Ctrl-C or a stop would reach them as it does no forked one
    # (cli.worker_processes). A check replaced here in the parent reaches only forked workers.
    monkeypatch.setattr(split_data, 'image_problem', lambda path, *rest: f'checked in a fork: {os.path.basename(path)}')
    before = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(default, force=True)
    try:
        styles = [SimpleNamespace(id=n) for n in (1, 2, 3)]
        skipped = Counter()
        args = SimpleNamespace(any_size=False, any_mode=False, workers=2)
        assert split_data.keep_usable(styles, str(tmp_path), args, skipped) == ([], [])
    finally:
        multiprocessing.set_start_method(before, force=True)
    assert skipped == Counter({f'checked in a fork: {n}.jpg': 1 for n in (1, 2, 3)})


@pytest.mark.parametrize('images, started', [(3, 1), (257, 2), (2000, 6)])
def test_no_more_image_checking_processes_start_than_batches_to_send(tmp_path, monkeypatch, images, started):
    # Forked, every worker starts at once: --workers 400 started 400 processes to check 200 images.
    pools = []

    def pool(workers, **kwargs):
        pools.append(workers)
        return ProcessPoolExecutor(workers, **kwargs)
    monkeypatch.setattr(split_data, 'ProcessPoolExecutor', pool)
    monkeypatch.setattr(split_data, 'image_problem', lambda *args: None)
    styles = [SimpleNamespace(id=n) for n in range(images)]
    kept, _ = split_data.keep_usable(styles, str(tmp_path), SimpleNamespace(any_size=False, any_mode=False,
                                                                         workers=6), Counter())
    assert (pools, len(kept)) == ([started], images)


def test_a_ctrl_c_reaching_the_image_checking_processes_is_left_to_the_main_process(tmp_path, monkeypatch):
    # A Ctrl-C reaches every process of the terminal's group, as `timeout`'s SIGTERM does. Raised in a
    # worker, it could land in the pool's queue with its lock taken: the other worker, and then
    # split_data.py, waited for that lock for good (1 Ctrl-C in 10 with a batch an image, found by
    # 40 stops at random moments). A worker leaves it to the main process, which stops them.
    def checked_through_a_ctrl_c(path, *rest):
        os.kill(os.getpid(), signal.SIGINT)  # in the worker, as a Ctrl-C reaches it
        return None
    monkeypatch.setattr(split_data, 'image_problem', checked_through_a_ctrl_c)
    styles = [SimpleNamespace(id=n) for n in range(3)]
    try:
        kept, _ = split_data.keep_usable(styles, str(tmp_path), SimpleNamespace(any_size=False, any_mode=False,
                                                                                workers=2), Counter())
    except KeyboardInterrupt:
        pytest.fail('the Ctrl-C was raised in an image-checking process')
    assert len(kept) == 3


def test_an_image_checking_process_killed_is_one_line(tmp_path, monkeypatch):
    # By the system as memory ran out, or a kill: the pool's BrokenProcessPool, in a traceback
    monkeypatch.setattr(split_data, 'image_problem', lambda path, *rest: os.kill(os.getpid(), signal.SIGKILL))
    styles = [SimpleNamespace(id=n) for n in range(3)]
    with pytest.raises(UserError, match=r'^a process checking the images ended unexpectedly \(killed, by a kill or '
                                        r'by the system as memory ran out\); nothing was written: run split_data\.py '
                                        r'again$'):
        split_data.keep_usable(styles, str(tmp_path), SimpleNamespace(any_size=False, any_mode=False, workers=2),
                               Counter())


def test_an_image_checking_process_ignores_a_ctrl_c_and_ends_on_a_sigterm_or_sighup_at_once():
    # Its initializer (the test above forks inside ctrl_c_held, which holds a stop in the workers
    # too): a SIGTERM to the process group ends each worker where it stands, not after its batch.
    # A signal ignored as the script started (nohup's SIGHUP) stays ignored.
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {number: signal.getsignal(number) for number in stops}
    try:
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        split_data.leave_stops_to_this_process()
        assert [signal.getsignal(number) for number in stops] == [signal.SIG_IGN, signal.SIG_DFL, signal.SIG_IGN]
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def test_a_ctrl_c_as_the_old_split_is_kept_keeps_it_whole(quirky_catalog, tmp_path, monkeypatch):
    # Between the renames of train.old.csv and val.old.csv, a Ctrl-C left the old train.csv beside
    # the val.old.csv of the split before it, and the old val.csv was gone: both, or neither.
    def split(seed, folder='out'):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / folder), '--workers', '1',
                         '--seed', str(seed)])
        return [(tmp_path / folder / name).read_bytes() for name in ('train.csv', 'val.csv')]
    oldest, old, new = split(1), split(2), split(3, 'probe')  # probe: at the same depth, with the same paths
    old_paths = split_data.old_split_paths(str(tmp_path / 'out'))
    real_replace = os.replace

    def ctrl_c_after_train_old(source, target, **kwargs):
        real_replace(source, target, **kwargs)
        if os.fspath(target) == old_paths[0]:
            os.kill(os.getpid(), signal.SIGINT)  # a real one: it reaches the handler there is
    monkeypatch.setattr(os, 'replace', ctrl_c_after_train_old)
    with pytest.raises(KeyboardInterrupt):
        split(3)
    monkeypatch.undo()
    assert [open(path, 'rb').read() for path in old_paths] == old != oldest
    assert [(tmp_path / 'out' / name).read_bytes() for name in ('train.csv', 'val.csv')] == new
    assert [open(path, 'rb').read() for path in split_data.earlier_split_paths(str(tmp_path / 'out'), 1)] == oldest
    assert sorted(os.listdir(tmp_path / 'out')) == ['train.csv', 'train.old.1.csv', 'train.old.csv',
                                                    'val.csv', 'val.old.1.csv', 'val.old.csv']


def test_two_splits_into_one_folder_at_once_leave_one_split_and_the_other_kept(quirky_catalog, tmp_path, monkeypatch):
    # Between this one's renames of train.csv and val.csv another split_data.py ran into the same
    # folder: its train.csv was left beside this one's val.csv, pictures of each in the other.
    def split(seed, folder):
        split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / folder), '--workers', '1',
                         '--seed', str(seed)])
        return [(tmp_path / folder / name).read_bytes() for name in ('train.csv', 'val.csv')]
    first, second = split(1, 'first'), split(2, 'second')  # at the same depth, so with the same paths
    train = str(tmp_path / 'out' / 'train.csv')
    other, real_replace = [], os.replace

    def another_split_between_the_renames(source, target, **kwargs):
        real_replace(source, target, **kwargs)
        if os.fspath(target) == train and not other:
            other.append(subprocess.Popen(
                [sys.executable, os.path.join(ROOT, 'split_data.py'), '--input', quirky_catalog['root'], '--output',
                 str(tmp_path / 'out'), '--workers', '1', '--seed', '2'],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env=dict(os.environ, PYTHONUNBUFFERED='1')))
            for line in other[0].stdout:  # to its end, or to where it waits for this one
                if 'waiting for another process' in line:
                    break
    monkeypatch.setattr(os, 'replace', another_split_between_the_renames)
    (tmp_path / 'out').mkdir()
    split(1, 'out')
    monkeypatch.undo()
    other[0].communicate(timeout=120)
    assert other[0].returncode == 0
    assert [(tmp_path / 'out' / name).read_bytes() for name in ('train.csv', 'val.csv')] == second
    assert [open(path, 'rb').read() for path in split_data.old_split_paths(str(tmp_path / 'out'))] == first


@pytest.mark.skipif(not (shutil.which('git') and os.path.isdir(os.path.join(ROOT, '.git'))), reason='not a git clone')
def test_the_splits_it_writes_in_the_project_folder_are_left_out_of_git():
    # The README splits into the project's folder (--output .): `git add .` took the kept splits
    # train.old.1.csv and on, the user's, which .gitignore did not name.
    names = ['train.csv', 'val.csv', 'train.old.csv', 'val.old.csv', 'train.old.1.csv', 'val.old.12.csv']
    # and what the README's commands of predict.py write there: model.json beside model.onnx
    names += ['model.onnx', 'model.json', 'predictions.csv', 'predictions.json']
    # and sample_catalog.py's default folder, 3,000 pictures (`git status` listed them)
    names += ['sample-catalog/styles.csv', 'sample-catalog/images/10001.jpg']
    ignored = subprocess.run(['git', 'check-ignore', '--no-index', *names], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == names


def test_a_split_kept_waiting_too_long_names_a_demo_or_another_split_as_the_likely_cause(quirky_catalog, tmp_path,
                                                                                          monkeypatch):
    # It said "(a train.py training in it?)", test.py's likely cause, though train.py locks only its run folder.
    import atomic
    monkeypatch.setattr(atomic, 'LOCK_WAIT', 0.2)
    (tmp_path / 'out').mkdir()
    with locked_by_another_process(tmp_path / 'out'):
        with pytest.raises(UserError, match=r'for 0.2 s \(a demo.py or another split_data.py writing in it\?\); '
                                            'give another folder$'):
            split_data.main(['--input', quirky_catalog['root'], '--output', str(tmp_path / 'out'), '--workers', '1'])
    assert os.listdir(tmp_path / 'out') == []
