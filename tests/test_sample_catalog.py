import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

import demo
import runs
import sample_catalog
import split_data
from catalog import read_styles
from cli import UserError, run_cli
from conftest import ROOT, locked_by_another_process, run_script
from sample_catalog import HEADER, make_catalog


def test_same_seed_same_bytes_other_seed_other_pictures(tmp_path):
    a = make_catalog(str(tmp_path / 'a'), n_images=30, seed=5)
    b = make_catalog(str(tmp_path / 'b'), n_images=30, seed=5)
    c = make_catalog(str(tmp_path / 'c'), n_images=30, seed=6)
    read = lambda m, name: open(os.path.join(m['root'], name), 'rb').read()  # noqa: E731
    assert read(a, 'styles.csv') == read(b, 'styles.csv') != read(c, 'styles.csv')
    first = sorted(os.listdir(os.path.join(a['root'], 'images')))[0]
    assert read(a, f'images/{first}') == read(b, f'images/{first}')


def test_each_seed_draws_its_pictures_from_streams_of_its_own(tmp_path, monkeypatch):
    # A picture's pose, shading and noise come from the seed and its id: another seed's picture of
    # the same id (and labels, in a larger catalog) is another picture, not the same one again.
    streams = {}
    real_draw = sample_catalog.draw_item

    def recorded(article, gender, colour, rng):
        streams[seed].add(rng.bit_generator.state['state']['state'])
        return real_draw(article, gender, colour, rng)

    monkeypatch.setattr(sample_catalog, 'draw_item', recorded)
    for seed in (5, 6):
        streams[seed] = set()
        make_catalog(str(tmp_path / str(seed)), n_images=30, seed=seed)
    assert len(streams[5]) == len(streams[6]) == 30 and not streams[5] & streams[6]


def test_kaggle_layout_and_balanced_learnable_labels(tmp_path):
    manifest = make_catalog(str(tmp_path / 'cat'), n_images=240, seed=0)
    with open(os.path.join(manifest['root'], 'styles.csv'), newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == HEADER and all(len(row) == 10 for row in rows)
    assert len(rows) - 1 == manifest['n_rows'] == 240
    assert len(manifest['articles']) >= 10 and len(manifest['colours']) >= 8
    articles = [row[4] for row in rows[1:]]
    assert max(articles.count(a) for a in set(articles)) / len(articles) < 0.2
    for row in rows[1:6]:
        with Image.open(os.path.join(manifest['root'], 'images', f'{row[0]}.jpg')) as img:
            assert (img.size, img.mode) == ((60, 80), 'RGB')
            assert img.getpixel((0, 0)) > (235, 235, 235)  # the catalog's white background


def test_refuses_to_overwrite_a_catalog(tmp_path):
    make_catalog(str(tmp_path / 'cat'), n_images=5, seed=0)
    with pytest.raises(ValueError, match='styles.csv'):
        make_catalog(str(tmp_path / 'cat'), n_images=5, seed=0)


def test_refuses_to_draw_over_pictures_without_a_styles_csv(tmp_path):
    root = tmp_path / 'fashion-product-images'  # where `demo.py --work .` draws
    (root / 'images').mkdir(parents=True)
    (root / 'images' / '10001.jpg').write_bytes(b'a photo of the user')  # a dataset without its styles.csv
    with pytest.raises(ValueError, match='holds files already'):
        make_catalog(str(root), n_images=5, seed=0)
    with pytest.raises(UserError, match=r'holds files already \(a dataset without its styles.csv\?\); move it away '
                                        'or give another --work$'):
        demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=5))
    assert (root / 'images' / '10001.jpg').read_bytes() == b'a photo of the user'
    assert os.listdir(root) == ['images']
    os.remove(root / 'images' / '10001.jpg')
    (root / 'images' / '.DS_Store').write_bytes(b'')  # a desktop's, in an empty folder: no dataset of theirs
    assert make_catalog(str(root), n_images=5, seed=0)['n_images'] == 5
    # A sample catalog of ours that was cut short (marked, no styles.csv yet) is drawn again.
    make_catalog(str(tmp_path / 'ours'), n_images=5, seed=0)
    os.remove(tmp_path / 'ours' / 'styles.csv')
    assert make_catalog(str(tmp_path / 'ours'), n_images=6, seed=0)['n_images'] == 6


def test_the_demo_redraws_its_sample_catalog_for_another_size(tmp_path, capsys):
    args = argparse.Namespace(work=str(tmp_path), images=5)
    root, drawn = demo.sample_catalog(args)
    assert 'drew 5 sample pictures' in capsys.readouterr().out and drawn
    assert demo.sample_catalog(args) == (root, False)
    assert 'using the sample catalog already' in capsys.readouterr().out
    assert demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=8)) == (root, True)
    assert 'drew 8 sample pictures' in capsys.readouterr().out
    assert len(read_styles(os.path.join(root, 'styles.csv'))[0]) == 8
    (tmp_path / 'fashion-product-images' / 'images' / '1.jpg').write_bytes(b'a photo of the user')
    demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=3))  # fewer: the 5 others' pictures go
    assert len(os.listdir(os.path.join(root, 'images'))) == 3 + 1  # but never one that was not drawn


def test_the_demo_redraws_a_sample_catalog_drawn_with_another_seed_or_quirks(tmp_path, capsys):
    # Of its size, it was used: the demo's figures, said to be of seed 0, came from another catalog
    root = tmp_path / 'fashion-product-images'
    for flags in ({'seed': 5}, {'seed': 0, 'quirks': True}):
        make_catalog(str(root), n_images=6, overwrite=True, **flags)
        assert demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=6)) == (str(root), True)
        assert 'drew 6 sample pictures' in capsys.readouterr().out
        make_catalog(str(tmp_path / 'own'), n_images=6, seed=0, overwrite=True)  # as the demo draws it
        assert (root / 'styles.csv').read_bytes() == (tmp_path / 'own' / 'styles.csv').read_bytes()
    assert demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=6)) == (str(root), False)



def cut_short_after(pictures, monkeypatch):
    """make_catalog stopped (a Ctrl-C, a kill) once it has saved that many pictures."""
    saved, save = [], sample_catalog.save_image

    def save_until_stopped(*args):
        if len(saved) == pictures:
            raise KeyboardInterrupt
        saved.append(args[1])
        return save(*args)
    monkeypatch.setattr(sample_catalog, 'save_image', save_until_stopped)
    return monkeypatch.undo


def draw_over(folder, images, monkeypatch, capsys, cut_after=None):
    """sample_catalog.py --overwrite into folder, cut short after that many pictures if given: what it printed."""
    monkeypatch.setattr(sys, 'argv', ['sample_catalog.py', '--output', str(folder), '--images', str(images),
                                      '--overwrite'])
    if cut_after is None:
        run_cli(sample_catalog.main)
        return capsys.readouterr().out
    undo = cut_short_after(cut_after, monkeypatch)
    with pytest.raises(SystemExit):
        run_cli(sample_catalog.main)
    undo()
    return capsys.readouterr().out


NOTE = 'note: drawn over a catalog that was not a sample one: replaced '


def test_overwrite_says_when_it_drew_over_a_catalog_that_was_not_a_sample(tmp_path, monkeypatch, capsys):
    users = tmp_path / 'users'
    make_catalog(str(users), n_images=5, seed=1)
    os.remove(users / 'sample_catalog.json')  # as downloaded
    (users / 'images' / 'mine.jpg').write_bytes(b'a photo of the user')
    for times in range(2):  # the second time over its own sample: nothing to say
        said = (f'{NOTE}its styles.csv and 1 of its pictures, those with the ids of drawn ones (10002.jpg); the '
                f'others are still in {users / "images"}/\n')
        assert (said in draw_over(users, 3, monkeypatch, capsys)) == (times == 0)
    assert (users / 'images' / 'mine.jpg').exists()
    # Pictures without a styles.csv: it said that a styles.csv was replaced
    pictures = tmp_path / 'pictures'
    (pictures / 'images').mkdir(parents=True)
    (pictures / 'images' / '10001.jpg').write_bytes(b'a photo of the user')
    assert draw_over(pictures, 3, monkeypatch, capsys).endswith(  # its only one: no others said to be left
        f'{NOTE}1 of its pictures, those with the ids of drawn ones (10001.jpg)\n')
    # None with a drawn id: none replaced, and said so
    others = tmp_path / 'others'
    (others / 'images').mkdir(parents=True)
    (others / 'images' / 'holiday.jpg').write_bytes(b'a photo of the user')
    assert draw_over(others, 3, monkeypatch, capsys).endswith(
        f'{NOTE}none of its files; its pictures are all still in {others / "images"}/\n')
    # A catalog of theirs without pictures: none said to be left
    (tmp_path / 'labels').mkdir()
    (tmp_path / 'labels' / 'styles.csv').write_text('id,gender\n1,Men\n')
    assert draw_over(tmp_path / 'labels', 3, monkeypatch, capsys).endswith(f'{NOTE}its styles.csv\n')


def test_drawing_over_a_catalog_not_a_sample_says_what_it_loses_before_and_after(tmp_path, monkeypatch, capsys):
    users = tmp_path / 'users'
    make_catalog(str(users), n_images=20, seed=1)
    for flags, words in [([], 'pass --overwrite to draw over it, or choose'),  # a sample: nothing of theirs
                         (['remove the mark'], 'not a sample catalog (yours?): --overwrite would replace its '
                                               'styles.csv and its pictures of the drawn ids for good')]:
        if flags:
            os.remove(users / 'sample_catalog.json')  # as downloaded
        monkeypatch.setattr(sys, 'argv', ['sample_catalog.py', '--output', str(users), '--images', '20'])
        with pytest.raises(SystemExit) as stop:
            run_cli(sample_catalog.main)
        assert stop.value.code == 2 and words in capsys.readouterr().err
    # A drawing --overwrite began over it, killed: its mark (of the user's styles.csv) is no sample's
    # ("already exists; pass --overwrite to draw over it", it said)
    sample_catalog.write_mark(str(users), 3000, 0, False, finished=False, over_theirs=True)
    with pytest.raises(SystemExit) as stop:
        run_cli(sample_catalog.main)
    assert stop.value.code == 2 and 'not a sample catalog (yours?)' in capsys.readouterr().err
    os.remove(users / 'sample_catalog.json')
    # --quirks removes the pictures of rows drawn without one: they were said to be replaced
    plan, _ = sample_catalog.planned_catalog(20, 0, True)
    missing = sorted(f'{id_}.jpg' for id_, *_, kind, _ in plan if kind == 'missing_image')
    for name in missing:
        (users / 'images' / name).write_bytes(b'a photo of the user')
    monkeypatch.setattr(sys, 'argv', ['sample_catalog.py', '--output', str(users), '--images', '20', '--quirks',
                                      '--overwrite'])
    run_cli(sample_catalog.main)
    said = capsys.readouterr().out
    assert f'; removed {len(missing)} pictures of its, those with the ids of rows drawn without one (--quirks: ' in said
    assert all(name in said.split('; removed')[1] and name not in said.split('; removed')[0] for name in missing)
    assert not any((users / 'images' / name).exists() for name in missing)


def test_overwrite_after_a_drawing_over_theirs_was_cut_short_names_their_pictures_alone(tmp_path, monkeypatch,
                                                                                        capsys):
    # Listed again, the pictures the drawing cut short had drawn were named as the user's
    others = tmp_path / 'others'
    (others / 'images').mkdir(parents=True)
    (others / 'images' / 'holiday.jpg').write_bytes(b'a photo of the user')
    (others / 'images' / '10003.jpg').write_bytes(b'a photo of the user')  # the second of 5 drawn
    draw_over(others, 5, monkeypatch, capsys, cut_after=2)
    assert f'{NOTE}1 of its pictures, those with the ids of drawn ones (10003.jpg); the others' in draw_over(
        others, 5, monkeypatch, capsys)  # the same command again
    # Cut short before it reached a picture of theirs, then another command, which does not draw it
    (others / 'sample_catalog.json').unlink()
    (others / 'images' / '10006.jpg').write_bytes(b'a photo of the user')  # the third of 5 drawn
    draw_over(others, 5, monkeypatch, capsys, cut_after=1)
    replaced, _, maybe = draw_over(others, 3, monkeypatch, capsys).partition(' more pictures of its (')
    # not said to be replaced, nor left unsaid: the one cut short may have reached it
    assert '10006.jpg' not in replaced
    assert '10006.jpg' in maybe.split(')')[0] and 'the drawing cut short before was to draw over or remove' in maybe
    assert (others / 'images' / '10006.jpg').read_bytes() == b'a photo of the user'


def test_a_drawing_stopped_says_it_is_left_unfinished_and_the_same_command_draws_it_again(tmp_path, monkeypatch,
                                                                                          capsys):
    # Its pictures are written in place: run_cli's line for a stop, that no file was left
    # half-written, was not true of them.
    root = tmp_path / 'sample'
    command = ['sample_catalog.py', '--output', str(root), '--images', '5']
    cut_short_after(2, monkeypatch)
    monkeypatch.setattr(sys, 'argv', command)
    with pytest.raises(SystemExit) as stopped:
        run_cli(sample_catalog.main)
    monkeypatch.undo()
    assert stopped.value.code == 130 and not sample_catalog.own_mark(str(root))['finished']
    assert capsys.readouterr().err == (f'\ninterrupted (Ctrl-C); the sample catalog in {root} is left unfinished, as '
                                       'its sample_catalog.json says, a picture maybe half-drawn: the same command '
                                       'draws it again\n')
    monkeypatch.setattr(sys, 'argv', command)
    run_cli(sample_catalog.main)
    assert sample_catalog.sample_catalog_size(str(root)) == 5 and len(os.listdir(root / 'images')) == 5
    # Stopped before it draws, it has written nothing: the line every script says
    monkeypatch.setattr(sample_catalog, 'planned_catalog', interrupted)
    monkeypatch.setattr(sys, 'argv', [*command[:-1], '6', '--overwrite'])
    with pytest.raises(SystemExit):
        run_cli(sample_catalog.main)
    assert capsys.readouterr().err == '\ninterrupted (Ctrl-C); no file was left half-written\n'


def interrupted(*args):
    raise KeyboardInterrupt


def test_a_drawing_cut_short_is_never_taken_for_a_catalog_nor_deletes_the_users_pictures(tmp_path, monkeypatch,
                                                                                         capsys):
    # The earlier catalog's styles.csv beside the new pictures was taken for a catalog of the new
    # size, its labels those of other pictures; over a user's catalog (--overwrite), its pictures
    # went at the next drawing.
    args = argparse.Namespace(work=str(tmp_path), images=5)
    root, _ = demo.sample_catalog(args)
    args.images = 8
    resume_drawing = cut_short_after(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        demo.sample_catalog(args)
    resume_drawing()
    # Nor by split_data.py, which said the dataset was not downloaded (the styles.csv gone first)
    with pytest.raises(UserError, match=f'^--input {root}: a sample catalog whose drawing was cut short '
                                        f'\\({root}/sample_catalog.json says unfinished\\); draw it again: .*'
                                        f'sample_catalog.py --output={root} --images 8 --seed 0$'):
        split_data.main(['--input', root, '--output', str(tmp_path / 'split')])
    # Nor by demo.py given it as --data, which said it "holds no styles.csv"
    with pytest.raises(UserError, match=f'^--data {root}: a sample catalog whose drawing was cut short .* draw it '
                                        f'again: .*sample_catalog.py --output={root} --images 8 --seed 0$'):
        demo.main(['--data', root, '--work', str(tmp_path / 'w'), '--device', 'cpu'])
    assert demo.sample_catalog(args) == (root, True) and 'drew 8 sample pictures' in capsys.readouterr().out
    styles, _ = read_styles(os.path.join(root, 'styles.csv'))
    assert sorted(f'{s.id}.jpg' for s in styles) == sorted(os.listdir(os.path.join(root, 'images')))
    # --overwrite over a user's catalog, cut short: it stays the user's, its pictures not drawn over kept
    users = tmp_path / 'u' / 'fashion-product-images'
    make_catalog(str(users), n_images=5, seed=1)
    os.remove(users / 'sample_catalog.json')  # as downloaded
    (users / 'images' / '1.jpg').write_bytes(b'a photo of the user')
    resume_drawing = cut_short_after(1, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        make_catalog(str(users), n_images=300, seed=0, overwrite=True)
    resume_drawing()
    # split_data.py split it, some of the user's labels given to drawn pictures
    with pytest.raises(UserError, match=f"^--input {users}: a sample catalog's drawing over files there was cut short "
                                        '.* some of its pictures may be drawn ones: put them back and remove .*; or '
                                        'draw the sample again: .* --images 300 --seed 0 --overwrite$'):
        split_data.main(['--input', str(users), '--output', str(tmp_path / 'split')])
    assert not (tmp_path / 'split').exists()
    with pytest.raises(UserError, match="holds a styles.csv beside a sample catalog's drawing that was cut short"):
        demo.sample_catalog(argparse.Namespace(work=str(tmp_path / 'u'), images=5))
    # Given as --data too: it was taken for a sample catalog, and the demo trained on one of its own;
    # then told to remove its styles.csv "to draw the sample again", which the demo does not in a --data
    with pytest.raises(UserError, match=f"^--data {users}: a sample catalog's drawing over files there was cut short "
                                        '.* put them back and remove .*; or draw the sample again: .* --images 300 '
                                        '--seed 0 --overwrite$'):
        demo.main(['--data', str(users), '--work', str(tmp_path / 'w'), '--device', 'cpu'])
    assert not (tmp_path / 'w').exists()
    os.remove(users / 'sample_catalog.json')  # as the message says, where the user has put the pictures back
    assert demo.has_real_dataset(str(users))
    with pytest.raises(UserError, match='holds a catalog that is not a sample one'):
        demo.sample_catalog(argparse.Namespace(work=str(tmp_path / 'u'), images=5))
    make_catalog(str(users), n_images=3, seed=0, overwrite=True)
    assert (users / 'images' / '1.jpg').read_bytes() == b'a photo of the user'


@pytest.mark.parametrize('over', ['nothing', 'a sample catalog'])
def test_a_drawing_cut_short_leaves_no_picture_behind_once_drawn_again(tmp_path, monkeypatch, over):
    # Its pictures past the next drawing's were left without a row, to be taken by predict.py on
    # the folder, or as the picture of a row without one in a dataset unpacked over them.
    args = argparse.Namespace(work=str(tmp_path), images=5)
    if over == 'a sample catalog':
        demo.sample_catalog(args)
    resume_drawing = cut_short_after(30, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=200))
    resume_drawing()
    root, _ = demo.sample_catalog(args)
    styles, _ = read_styles(os.path.join(root, 'styles.csv'))
    assert sorted(f'{s.id}.jpg' for s in styles) == sorted(os.listdir(os.path.join(root, 'images')))


def test_a_drawing_cut_short_while_it_removes_the_earlier_pictures_leaves_none_behind(tmp_path, monkeypatch):
    args = argparse.Namespace(work=str(tmp_path), images=50)
    root, _ = demo.sample_catalog(args)
    remove = sample_catalog.remove_pictures

    def stopped_after_five(images, ids):
        remove(images, list(ids)[:5])
        raise KeyboardInterrupt
    monkeypatch.setattr(sample_catalog, 'remove_pictures', stopped_after_five)
    with pytest.raises(KeyboardInterrupt):
        demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=10))
    monkeypatch.undo()
    demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=10))
    styles, _ = read_styles(os.path.join(root, 'styles.csv'))
    assert sorted(f'{s.id}.jpg' for s in styles) == sorted(os.listdir(os.path.join(root, 'images')))


def test_a_drawing_stopped_once_its_styles_csv_is_written_is_a_sample_catalog(tmp_path, monkeypatch, capsys):
    # Its mark still said unfinished, with the digest of no styles.csv: taken for the real data.
    write_mark = sample_catalog.write_mark

    def stopped_before_the_last_mark(*args, finished, **more):
        if finished:
            raise KeyboardInterrupt
        write_mark(*args, finished=finished, **more)
    monkeypatch.setattr(sample_catalog, 'write_mark', stopped_before_the_last_mark)
    args = argparse.Namespace(work=str(tmp_path), images=5)
    with pytest.raises(KeyboardInterrupt):
        demo.sample_catalog(args)
    monkeypatch.undo()
    root = tmp_path / 'fashion-product-images'
    assert sample_catalog.is_sample_catalog(str(root)) and not demo.has_real_dataset(str(root))
    assert demo.sample_catalog(args) == (str(root), False)
    assert 'using the sample catalog already' in capsys.readouterr().out


def test_what_a_killed_drawing_left_half_written_is_removed(tmp_path, capsys):
    root = tmp_path / 'cat'
    make_catalog(str(root), n_images=5, seed=0)
    gone = 2**31 - 2  # above any process id Linux hands out: a process that was killed
    for name in ('styles.csv', 'sample_catalog.json'):
        (root / f'.tmp-{gone}-{name}').write_text('half')
    (root / f'.tmp-{gone}-notes.txt').write_text('not ours')
    make_catalog(str(root), n_images=6, seed=0, overwrite=True)
    assert sorted(os.listdir(root)) == [f'.tmp-{gone}-notes.txt', 'images', 'sample_catalog.json', 'styles.csv']
    assert 'left half-written by a sample_catalog.py that was killed' in capsys.readouterr().out


def test_a_sample_catalogs_size_is_a_flag_in_range():
    for argv, words in [(['--images', '-1'], '-1: a catalog needs at least 3 pictures'),
                        (['--images', 'many'], "'many' is not a whole number"),
                        (['--images', str(10**12)], 'more than the')]:
        result = run_script('sample_catalog.py', '--output', 'never-made', *argv)
        error = result.stderr.splitlines()[-1]  # the usage above it names --overwrite too
        assert result.returncode == 2 and words in error and 'overwrite' not in error


@pytest.mark.parametrize('in_the_way', ['fashion-product-images', 'fashion-product-images/images'])
def test_a_file_where_the_sample_catalog_needs_a_folder_is_named(tmp_path, in_the_way):
    (tmp_path / in_the_way).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / in_the_way).write_text('a note of the user')
    with pytest.raises(UserError, match=f'^{tmp_path / in_the_way}: a file, where the sample catalog needs a folder'):
        demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=5))
    assert (tmp_path / in_the_way).read_text() == 'a note of the user'


@pytest.mark.parametrize('in_the_way', ['styles.csv', 'sample_catalog.json', 'images/10001.jpg'])
def test_a_folder_where_the_sample_catalog_writes_a_file_is_named_before_any_picture_is_drawn(tmp_path, in_the_way,
                                                                                              monkeypatch):
    # With --overwrite, the drawing stopped at that file ("Is a directory"), styles.csv the last of
    # them, its catalog left unfinished.
    make_catalog(str(tmp_path), n_images=3, seed=0)
    (tmp_path / in_the_way).unlink(missing_ok=True)
    (tmp_path / in_the_way).mkdir()
    before = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob('*'))
    monkeypatch.setattr(sample_catalog, 'draw_item', lambda *args: pytest.fail('a picture drawn'))
    with pytest.raises(UserError, match=f'^{tmp_path}: {tmp_path / in_the_way} is a folder, where a file is to be '
                                        'written; move it away$'):
        make_catalog(str(tmp_path), n_images=3, seed=0, overwrite=True)
    if in_the_way == 'styles.csv':  # without --overwrite, it was said to be there already, to pass --overwrite
        with pytest.raises(UserError, match='is a folder, where a file is to be written; move it away$'):
            make_catalog(str(tmp_path), n_images=3, seed=0)
    assert sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob('*')) == before


def test_the_demo_refuses_a_sample_too_small_to_split_before_drawing_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        demo.main(['--work', str(tmp_path / 'w'), '--images', '2'])
    assert stop.value.code == 2 and 'at least 3 pictures' in capsys.readouterr().err
    assert not (tmp_path / 'w').exists()
    assert demo.parse_args(['--images', '3']).images == 3


@pytest.mark.parametrize('images', ['0', '2'])
def test_a_catalog_too_small_to_split_is_refused_before_drawing_it(tmp_path, monkeypatch, capsys, images):
    # "wrote 0 rows and 0 images", exit 0; then split_data.py refused it
    monkeypatch.setattr(sys, 'argv', ['sample_catalog.py', '--output', str(tmp_path / 'c'), '--images', images])
    with pytest.raises(SystemExit) as stop:
        sample_catalog.main()
    assert stop.value.code == 2 and capsys.readouterr().err.endswith(
        f'error: argument --images/--size: {images}: a catalog needs at least 3 pictures, some to train on and one '
        'to validate with\n')
    assert not (tmp_path / 'c').exists()


def test_the_demo_never_takes_a_catalog_in_its_folder_for_a_sample_one(tmp_path, capsys):
    # `python proj/demo.py --work proj` from elsewhere, with the real data in proj/: the demo's
    # short sample recipe on it, said to be on a sample, would be no one's job.
    root = tmp_path / 'fashion-product-images'
    make_catalog(str(root), n_images=5, seed=0)
    os.remove(root / 'sample_catalog.json')  # as downloaded: no mark of ours
    with pytest.raises(UserError, match=f'^--work {tmp_path}: {root} holds a catalog that is not a sample one '
                                        f'\\(the real dataset\\?\\); to run the tutorial\'s job on it, pass '
                                        f'--data {root}, or give another --work$'):
        demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=5))
    assert sorted(os.listdir(root)) == ['images', 'styles.csv']


def write_mark_of_before_digests(root):
    # As make_catalog wrote it until 2026-12-03: no styles_sha256, nor 'finished' before 12-02.
    mark = root / 'sample_catalog.json'
    fields = json.loads(mark.read_text())
    mark.write_text(json.dumps({key: fields[key] for key in ('drawn by', 'n_images', 'seed', 'quirks')}))


@pytest.mark.parametrize('mark', ['today', 'before digests'])
def test_the_real_data_unpacked_over_a_sample_catalog_is_taken_for_the_real_data(tmp_path, mark):
    # The mark left beside the real styles.csv made the demo redraw for another --images, removing
    # the pictures the real styles.csv names, or train its sample recipe on the real data.
    root = tmp_path / 'fashion-product-images'  # where `demo.py --work .` draws, and the default --data
    make_catalog(str(root), n_images=5, seed=0)
    if mark == 'before digests':  # a sample drawn by an older demo.py
        write_mark_of_before_digests(root)
    make_catalog(str(tmp_path / 'real'), n_images=8, seed=1)
    for name in ['styles.csv'] + [f'images/{name}' for name in os.listdir(tmp_path / 'real' / 'images')]:
        shutil.copyfile(tmp_path / 'real' / name, root / name)  # unpacked over it
    pictures = sorted(os.listdir(root / 'images'))
    assert demo.has_real_dataset(str(root)) and not sample_catalog.is_sample_catalog(str(root))
    for images in (5, 8):
        with pytest.raises(UserError, match='holds a catalog that is not a sample one'):
            demo.sample_catalog(argparse.Namespace(work=str(tmp_path), images=images))
    assert sorted(os.listdir(root / 'images')) == pictures
    assert (root / 'styles.csv').read_bytes() == (tmp_path / 'real' / 'styles.csv').read_bytes()


@pytest.mark.parametrize('quirks', [False, True])
def test_a_sample_catalog_marked_before_digests_is_still_one(tmp_path, quirks):
    # Its styles.csv is the one its plan writes: the demo goes on using it, or redraws it.
    root = tmp_path / 'fashion-product-images'
    make_catalog(str(root), n_images=30, seed=4, quirks=quirks)
    write_mark_of_before_digests(root)
    assert sample_catalog.is_sample_catalog(str(root)) and sample_catalog.sample_catalog_size(str(root)) == 30
    assert not sample_catalog.holds_theirs(str(root))
    make_catalog(str(root), n_images=12, seed=0, overwrite=True)  # demo.py --images 12
    assert sample_catalog.sample_catalog_size(str(root)) == 12
    assert len(os.listdir(root / 'images')) == 12


def test_quirk_lines_have_11_and_12_fields(quirky_catalog):
    with open(os.path.join(quirky_catalog['root'], 'styles.csv'), newline='') as f:
        lengths = sorted(len(row) for row in csv.reader(f))
    assert lengths.count(11) == 2 and lengths.count(12) == 1


def test_demo_runs_the_whole_pipeline_in_one_command(tmp_path, monkeypatch, capsys):
    # A --work that starts with a dash: demo.py's own command lines to train.py and test.py read it
    # as a flag ("argument --attributes_file: expected one argument"). Run as its command line runs
    # main, in this process: a fresh interpreter took seconds to import PyTorch; demo.py as a
    # script is started by the tests of its refusals.
    monkeypatch.chdir(tmp_path)
    run_cli(lambda: demo.main(['--images', '160', '--epochs', '1', '--work=-demo']))  # an error: SystemExit
    said = capsys.readouterr().out
    for step in ('step 1/4', 'step 2/4: split_data.py', 'step 3/4: train.py', 'step 4/4: test.py'):
        assert step in said
    run_dir = tmp_path / '-demo' / 'checkpoints'
    (run,) = os.listdir(run_dir)
    for name in ('last.pth', 'metrics.csv', 'curves.png', 'eval-last/metrics.json', 'eval-last/predictions.png',
                 'eval-last/confusion_article.png'):
        assert os.path.isfile(run_dir / run / name), name
    for label in ('checkpoint:', 'training curves:', 'confusion matrices:', 'prediction grid:'):
        assert label in said
    assert f'-demo/checkpoints/{run}/eval-last/predictions.png' in said
    assert 'accuracy' in said and 'majority class' in said
    assert '--max-images' not in said  # a flag the demo's user never gave: 160 were fewer than 40,000
    # run from another folder, the guide to the real data is named by a path that leads to it
    assert f'(see {os.path.join(ROOT, "fashion-product-images", "README.md")} for the real one)' in said



@pytest.mark.parametrize('work', ['demo', 'my demo', '-demo', "it's dé mo", 'red\x1b[31m\\x1b', 'two\nlines\u2028',
                                  'caf\udce9'])
def test_each_path_the_demo_lists_at_the_end_names_its_files_when_pasted_into_a_shell(tmp_path, monkeypatch, work):
    # Printed as they were, `my demo/checkpoints/.../last.pth` pasted was two arguments, and
    # `-demo/...` a flag; train.py's `evaluate with` line, just above them, quoted its path. A
    # terminal's escape sequence in a name reached the terminal, and a line break split the line;
    # \udce9: the byte 0xe9 of a name that is not UTF-8, which Python keeps as a surrogate.
    monkeypatch.chdir(tmp_path)
    run_dir = os.path.join(work, 'checkpoints', '2026-12-07_23-14-00')
    results = os.path.join(run_dir, demo.RESULTS)
    names = [os.path.join(run_dir, name) for name in ('last.pth', 'metrics.csv', 'curves.png')]
    names += [os.path.join(results, name) for name in ('metrics.json', 'predictions.png', 'confusion_gender.png',
                                                       'confusion_article.png', 'confusion_color.png')]
    os.makedirs(results)
    for name in names:
        open(name, 'w').close()
    lines = demo.outputs_list(run_dir, results).split('\n')
    assert len(lines) == 6 and all(line.isprintable() for line in lines)
    pasted = [line.split(':', 1)[1].strip() for line in lines]
    # Each path as an argument of a command, expanded by the shell as a person's paste is.
    listed = subprocess.run(['bash', '-c', "printf '%s\\0' " + ' '.join(pasted)], capture_output=True,
                            check=True).stdout
    listed = [os.fsdecode(name) for name in listed.split(b'\0') if name]
    assert sorted(os.path.realpath(name) for name in listed) == sorted(os.path.realpath(name) for name in names)


class Trained(Exception):
    pass


def a_download_the_demo_stops_at_training_on(tmp_path, monkeypatch):
    """A catalog of 30 pictures as downloaded (no sample's mark), and a --work, for a demo.py that
    raises Trained where it would train."""
    def stop_at_training(argv):
        raise Trained()
    monkeypatch.setattr(demo.train, 'main', stop_at_training)
    real = tmp_path / 'real'
    make_catalog(str(real), n_images=30, seed=1)
    os.remove(real / 'sample_catalog.json')  # as downloaded
    return real, tmp_path / 'w'


def test_the_demo_on_the_real_data_splits_as_many_pictures_as_images_says(tmp_path, monkeypatch, capsys):
    # --images was for the sample catalog only, and on the real data left out without a word
    real, work = a_download_the_demo_stops_at_training_on(tmp_path, monkeypatch)
    # 30: all of them, the tutorial's 40,000 at most. The second writes over the first's split, the
    # demo's own: it was refused as "another split than the demo's, maybe yours".
    for images, rows in (('10', 10), (None, 30)):
        with pytest.raises(Trained):
            demo.main(['--data', str(real), '--work', str(work), '--device', 'cpu']
                      + (['--images', images] if images else []))
        said = capsys.readouterr().out
        assert (f'found the real dataset in {real}: running the tutorial\'s job (50 epochs)'
                + (' on 10 pictures of it (--images)\n' if images else '\n')) in said
        assert sum(1 for name in ('train.csv', 'val.csv') for _ in open(work / name)) == 2 + rows
    # kept as split_data.py keeps a split it replaces: a run trained on it is scored on it
    assert f'note: this replaced another split in {work}, kept as {work / "train.old.csv"}' in said
    assert sum(1 for name in ('train.old.csv', 'val.old.csv') for _ in open(work / name)) == 2 + 10
    with pytest.raises(Trained):  # nor is the demo's split of its sample, in the same --work, refused
        demo.main(['--work', str(work), '--images', '20', '--device', 'cpu'])
    with pytest.raises(Trained):
        demo.main(['--data', str(real), '--work', str(work), '--device', 'cpu'])
    assert 'found the real dataset' in capsys.readouterr().out


def test_the_demo_trains_a_sample_catalog_given_as_data(tmp_path, monkeypatch, capsys):
    # It drew another sample in its place, saying so in a line among many.
    trained = []

    def stop_at_training(argv):
        trained.append(argv)
        raise Trained()
    monkeypatch.setattr(demo.train, 'main', stop_at_training)
    given = tmp_path / 'mine'
    make_catalog(str(given), n_images=30, seed=1)
    for images, rows in (('10', 10), (None, 30)):
        with pytest.raises(Trained):
            demo.main(['--data', str(given), '--work', str(tmp_path / 'w'), '--device', 'cpu']
                      + (['--images', images] if images else []))
        assert (f'found the sample catalog in {given}: running the sample recipe (8 epochs)'
                + (' on 10 pictures of it (--images)\n' if images else '\n')) in capsys.readouterr().out
        assert sum(1 for name in ('train.csv', 'val.csv') for _ in open(tmp_path / 'w' / name)) == 2 + rows
    assert f'--attributes_file={given / "styles.csv"}' in trained[-1] and 'cosine' in trained[-1]
    assert trained[-1][trained[-1].index('--epochs') + 1] == '8'
    assert not (tmp_path / 'w' / 'fashion-product-images').exists()


def test_the_demo_run_from_another_folder_names_the_dataset_beside_it(tmp_path, monkeypatch):
    # The default --data is named from the working folder; the project's own then held the real data
    project = tmp_path / 'project'
    make_catalog(str(project / 'fashion-product-images'), n_images=5, seed=1)
    os.remove(project / 'fashion-product-images' / 'sample_catalog.json')  # as downloaded
    monkeypatch.setattr(demo, 'PROJECT', str(project))
    monkeypatch.chdir(tmp_path)
    assert demo.no_dataset_line('fashion-product-images') == (
        f'no dataset in {tmp_path / "fashion-product-images"}/ (the one in {project / "fashion-product-images"} is '
        f'used with --data {project / "fashion-product-images"}): using a built-in sample catalog of drawn products')
    os.remove(project / 'fashion-product-images' / 'styles.csv')  # none there either: the guide to it
    assert demo.no_dataset_line('fashion-product-images') == (
        f'no dataset in {tmp_path / "fashion-product-images"}/ (see {demo.guide()} for the real one): using a '
        'built-in sample catalog of drawn products')


def test_the_demo_names_a_dataset_half_unpacked_before_any_work(tmp_path, monkeypatch, capsys):
    # Its styles.csv alone was taken for the dataset: split_data.py failed at step 2, advising to
    # run the demo, which failed the same way.
    data = tmp_path / 'fashion-product-images'
    data.mkdir()
    (data / 'styles.csv').write_text('id,gender,masterCategory,subCategory,articleType,baseColour\n')
    monkeypatch.chdir(tmp_path)
    for argv in ([], ['--data', str(data)]):
        with pytest.raises(SystemExit) as stop:
            run_cli(lambda: demo.main(argv + ['--work', str(tmp_path / 'w'), '--device', 'cpu']))
        said = capsys.readouterr()
        assert stop.value.code == 2 and 'holds a styles.csv but no images/ folder' in said.err, said.err
        assert 'leave --data out' not in said.err  # which, for the default folder, met the same refusal
        assert 'step 1' not in said.out and not (tmp_path / 'w').exists()
    # Run from another folder, the project's own was offered as --data, to meet the refusal
    monkeypatch.setattr(demo, 'PROJECT', str(tmp_path))
    monkeypatch.chdir(tmp_path / 'fashion-product-images')
    assert '--data' not in demo.no_dataset_line('fashion-product-images')
    monkeypatch.chdir(tmp_path)
    # Images/ or a file by that name: left to split_data.py, which names it as what it is
    (data / 'Images').mkdir()
    with pytest.raises(SystemExit):
        run_cli(lambda: demo.main(['--work', str(tmp_path / 'w'), '--device', 'cpu']))
    assert 'is there; the pictures are looked for in images/, in lower case: rename it' in capsys.readouterr().err
    (data / 'Images').rmdir()
    # Its pictures without their styles.csv: the sample is trained, and the line says what was found
    (data / 'styles.csv').unlink()
    (data / 'images').mkdir()
    (data / 'images' / '.DS_Store').write_bytes(b'')  # no picture: still no dataset
    assert demo.no_dataset_line('fashion-product-images').startswith(f'no dataset in {data}/')
    (data / 'images' / '10001.jpg').write_bytes(b'a photo of the user')
    assert demo.no_dataset_line('fashion-product-images').startswith(f'pictures but no styles.csv in {data}/ (see ')



def test_the_demos_split_of_the_real_data_is_kept_when_it_then_draws_its_sample_anew(tmp_path, monkeypatch, capsys):
    # Replaced by a split of the sample it had just drawn, it was dropped as if its pictures were
    # gone, as that sample's are: a run trained on the real data could no longer be scored on it.
    real, work = a_download_the_demo_stops_at_training_on(tmp_path, monkeypatch)
    with pytest.raises(Trained):
        demo.main(['--data', str(real), '--work', str(work), '--images', '10', '--device', 'cpu'])
    theirs = {name: (work / name).read_bytes() for name in ('train.csv', 'val.csv')}
    capsys.readouterr()
    with pytest.raises(Trained):  # the sample catalog drawn in --work, for the first time
        demo.main(['--work', str(work), '--images', '20', '--device', 'cpu'])
    assert f'note: this replaced another split in {work}, kept as {work / "train.old.csv"}' in capsys.readouterr().out
    assert {name: (work / name.replace('.csv', '.old.csv')).read_bytes() for name in theirs} == theirs


def test_the_demo_writes_over_its_own_split_but_not_another(tmp_path, monkeypatch):
    def stop_at_training(argv):
        raise Trained()

    def demo_run(images):
        with pytest.raises(Trained):
            demo.main(['--work', str(tmp_path), '--images', str(images), '--device', 'cpu'])

    def split_files():
        return {name: (tmp_path / name).read_bytes() for name in ('train.csv', 'val.csv')}

    monkeypatch.setattr(demo.train, 'main', stop_at_training)
    demo_run(40)
    demo_run(40)  # the same split again
    demo_run(50)  # its own split, of a sample catalog now drawn anew, written over
    assert sum(1 for _ in open(tmp_path / 'train.csv')) == 1 + 40  # 80% of 50
    # and not kept as train.old.csv: its pictures are gone, others under their names
    assert not any(name.endswith('.old.csv') for name in os.listdir(tmp_path))
    # The user's split of the same sample catalog (other settings, runs trained on it): kept
    split_data = demo.split_data
    split_data.main(['--input', str(tmp_path / 'fashion-product-images'), '--output', str(tmp_path), '--seed', '7',
                     '--workers', '1'])
    theirs = split_files()
    with pytest.raises(UserError, match=f"^--work {tmp_path}: {tmp_path / 'train.csv'} and {tmp_path / 'val.csv'}: "
                                        "another split than the demo's is there, maybe yours,"):
        demo.main(['--work', str(tmp_path), '--images', '50', '--device', 'cpu'])
    assert split_files() == theirs
    # A split of another catalog: refused before any work, before a sample catalog is drawn here
    other = make_catalog(str(tmp_path / 'elsewhere' / 'fashion-product-images'), n_images=30, seed=1)
    split_data.main(['--input', other['root'], '--output', str(tmp_path), '--workers', '1'])
    theirs = split_files()
    shutil.rmtree(tmp_path / 'fashion-product-images')
    with pytest.raises(UserError, match=f"^--work {tmp_path}: {tmp_path / 'train.csv'}: another split than the "
                                        "demo's is there"):
        demo.main(['--work', str(tmp_path), '--images', '50', '--device', 'cpu'])
    assert split_files() == theirs and not (tmp_path / 'fashion-product-images').exists()
    # A split in the tutorial's paths of pictures where the demo draws its catalog, of a dataset since
    # moved away: refused too, where the demo drew its catalog there and wrote over it
    make_catalog(str(tmp_path / 'fashion-product-images'), n_images=30, seed=1)
    os.remove(tmp_path / 'fashion-product-images' / 'sample_catalog.json')  # as downloaded
    split_data.main(['--input', str(tmp_path / 'fashion-product-images'), '--output', str(tmp_path), '--workers', '1'])
    theirs = split_files()
    shutil.move(tmp_path / 'fashion-product-images', tmp_path / 'elsewhere' / 'moved')
    with pytest.raises(UserError, match=f"^--work {tmp_path}: {tmp_path / 'train.csv'}: another split than the "
                                        "demo's is there"):
        demo.main(['--work', str(tmp_path), '--images', '50', '--device', 'cpu'])
    assert split_files() == theirs and not (tmp_path / 'fashion-product-images').exists()


def test_the_demos_split_of_a_catalog_drawn_anew_since_is_not_kept_though_that_demo_was_stopped(tmp_path,
                                                                                                 monkeypatch):
    # Stopped after drawing 50 pictures, before splitting them: the next demo found the catalog it
    # asked for there, took its split of the 40 drawn before as one to keep, and offered it to
    # test.py as train.old.csv and val.old.csv, whose pictures were gone or others.
    def stop_at_training(argv):
        raise Trained()

    def ctrl_c(argv, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo.train, 'main', stop_at_training)
    with pytest.raises(Trained):
        demo.main(['--work', str(tmp_path), '--images', '40', '--device', 'cpu'])
    with monkeypatch.context() as stopped:
        stopped.setattr(demo.split_data, 'main', ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            demo.main(['--work', str(tmp_path), '--images', '50', '--device', 'cpu'])
    with pytest.raises(Trained):
        demo.main(['--work', str(tmp_path), '--images', '50', '--device', 'cpu'])
    assert sum(1 for _ in open(tmp_path / 'train.csv')) == 1 + 40  # 80% of 50
    assert not any(name.endswith('.old.csv') for name in os.listdir(tmp_path))
    with pytest.raises(Trained):  # its own split of this drawing, rewritten the same: nothing to keep either
        demo.main(['--work', str(tmp_path), '--images', '50', '--device', 'cpu'])
    assert not any(name.endswith('.old.csv') for name in os.listdir(tmp_path))


def test_the_ids_of_a_finished_sample_catalog_are_read_past_a_nul_byte_in_a_name(tmp_path, csv_module):
    # (one put there by hand: the drawing writes none) whatever the csv module does with it
    (tmp_path / 'styles.csv').write_text(f'{",".join(HEADER)}\n1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,'
                                         'Casual,Nul\x00Tee\n2,Women,Apparel,Topwear,Tops,Red,Fall,2011,Casual,Top\n')
    assert sample_catalog.drawn_ids(str(tmp_path), {'finished': True}) == {1, 2}


def test_a_split_that_names_a_picture_with_a_nul_byte_is_taken_for_another_not_a_traceback(tmp_path, csv_module):
    # os.path.realpath refuses the path with a ValueError, which the demo did not expect
    (tmp_path / 'train.csv').write_text('image_path,gender,articleType,baseColour\n'
                                        'fashion-product-images/images/\x001.jpg,Men,Tshirts,Blue\n')
    catalog = str(tmp_path / 'fashion-product-images')
    assert demo.split_elsewhere(str(tmp_path), catalog, real=False) == str(tmp_path / 'train.csv')


@pytest.mark.parametrize('text', ['', '\n\r\n'])
def test_an_empty_or_blank_split_in_the_demos_folder_is_no_split_but_one_of_headers_only_of_the_users_is(tmp_path,
                                                                                                         text):
    # The README: an empty train.csv (touched) is no split, written over; the demo refused it as
    # "another split than the demo's, maybe yours"
    (tmp_path / 'train.csv').write_text(text)
    catalog = str(tmp_path / 'fashion-product-images')
    assert demo.split_elsewhere(str(tmp_path), catalog, real=False) is None
    (tmp_path / 'train.csv').write_text('name,score\n')  # a file of the user's, of no rows yet
    assert demo.split_elsewhere(str(tmp_path), catalog, real=False) == str(tmp_path / 'train.csv')


@pytest.mark.parametrize('flag', ['checkpoints', 'logs'])
def test_a_file_in_the_way_of_the_demos_later_steps_is_refused_before_its_catalog_is_drawn(tmp_path, monkeypatch,
                                                                                        flag):
    # Found out before step 1, not after minutes of drawing and splitting; named by --work, which
    # holds them (it was named by train.py's --checkpoints or --logs, which the demo does not have)
    monkeypatch.setattr(runs, 'tensorboard_installed', lambda: True)  # where train.py writes its logs
    monkeypatch.setattr(demo, 'tensorboard_installed', lambda: True)  # and the demo names them
    blocker = tmp_path / flag
    blocker.write_text('')
    with pytest.raises(UserError, match=f'^--work {tmp_path}: {blocker} is a file, not a folder$'):
        demo.main(['--work', str(tmp_path), '--images', '20', '--device', 'cpu'])
    assert os.listdir(tmp_path) == [flag]  # no catalog drawn, nothing split


def test_the_demo_never_takes_a_sample_catalog_for_the_real_dataset(tmp_path):
    # `python demo.py --work .` draws its sample into ./fashion-product-images, the real data's place.
    root = tmp_path / 'fashion-product-images'
    make_catalog(str(root), n_images=10, seed=0)
    assert not demo.has_real_dataset(str(root))
    os.remove(root / 'sample_catalog.json')  # as if these files had come from Kaggle
    assert demo.has_real_dataset(str(root))
    assert not demo.has_real_dataset(str(tmp_path / 'nothing-here'))


def test_an_images_folder_it_cannot_write_in_is_found_before_the_earlier_catalog_goes(tmp_path, monkeypatch):
    # images/ of another user, read-only: "Permission denied" at its first picture, once the earlier
    # catalog's styles.csv was removed. Pretended: the tests may run as root, who writes anyway.
    root = tmp_path / 'cat'
    make_catalog(str(root), n_images=5, seed=0)
    before = {name: (root / name).read_bytes() for name in ('styles.csv', 'sample_catalog.json')}

    def read_only(folder, named):
        if folder == str(root / 'images'):
            raise UserError(f'{named}: could not write in {folder} (Permission denied)')
    monkeypatch.setattr(sample_catalog, 'check_writable_folder', read_only)
    with pytest.raises(UserError, match='Permission denied'):
        make_catalog(str(root), n_images=6, seed=0, overwrite=True)
    assert {name: (root / name).read_bytes() for name in before} == before


def test_a_full_disk_while_the_pictures_are_drawn_is_one_line_naming_the_picture(tmp_path, monkeypatch, capsys):
    # Pillow's encoder raised an OSError that named no file: a traceback, status 1, where every
    # other script names the file in one line. A picture that is a link to /dev/full fails as a
    # full disk does, for real.
    root = tmp_path / 'cat'
    make_catalog(str(root), n_images=5, seed=0)
    first = root / 'images' / sorted(os.listdir(root / 'images'))[0]
    first.unlink()
    first.symlink_to('/dev/full')
    monkeypatch.setattr(sys, 'argv', ['sample_catalog.py', '--output', str(root), '--images', '6', '--overwrite'])
    with pytest.raises(SystemExit) as stopped:
        run_cli(sample_catalog.main)
    assert stopped.value.code == 2
    # and says that it left the catalog unfinished, as a stop does
    assert capsys.readouterr().err == (f'error: {first}: No space left on device; the sample catalog in {root} is left '
                                       'unfinished, as its sample_catalog.json says: the same command draws it again\n')
    assert not sample_catalog.own_mark(str(root))['finished']  # drawn again by the next run
    first.unlink()
    run_cli(sample_catalog.main)
    assert sample_catalog.sample_catalog_size(str(root)) == 6


def test_two_drawings_into_one_folder_at_once_leave_one_whole_catalog(tmp_path, monkeypatch):
    # A second demo.py in the same --work (or sample_catalog.py --overwrite) took this one's
    # drawing for one cut short and removed its pictures as it went: the catalog this one then
    # marked finished had hundreds of them missing.
    root, other, save = tmp_path / 'cat', [], sample_catalog.save_image

    def another_drawing_meanwhile(image, path, *rest):
        if not other:
            other.append(subprocess.Popen(
                [sys.executable, os.path.join(ROOT, 'sample_catalog.py'), '--output', str(root), '--images', '3',
                 '--overwrite'],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env=dict(os.environ, PYTHONUNBUFFERED='1')))
            for line in other[0].stdout:  # to its end, or to where it waits for this one
                if 'waiting for another process' in line:
                    break
        return save(image, path, *rest)
    monkeypatch.setattr(sample_catalog, 'save_image', another_drawing_meanwhile)
    make_catalog(str(root), n_images=20, seed=0)
    monkeypatch.undo()
    other[0].communicate(timeout=120)
    assert other[0].returncode == 0
    assert sample_catalog.sample_catalog_size(str(root)) == 3
    assert sorted(os.listdir(root / 'images')) == sorted(f'{row[0]}.jpg' for row in read_styles_rows(root))


def test_a_drawing_kept_waiting_too_long_names_another_drawing_as_the_likely_cause(tmp_path, monkeypatch):
    # It said "(a train.py training in it?)", test.py's likely cause, for a sample catalog's folder.
    import atomic
    monkeypatch.setattr(atomic, 'LOCK_WAIT', 0.2)
    (tmp_path / 'cat').mkdir()
    with locked_by_another_process(tmp_path / 'cat'):
        with pytest.raises(UserError, match=r'for 0.2 s \(another sample catalog being drawn into it\?\); give '
                                            'another folder$'):
            make_catalog(str(tmp_path / 'cat'), n_images=3, seed=0)
    assert os.listdir(tmp_path / 'cat') == []


def test_a_second_demo_in_the_same_work_folder_waits_for_the_first(tmp_path, monkeypatch, capsys):
    # Two at once drew, split and trained in the same files. Kept waiting over LOCK_WAIT (the
    # first trains for minutes), it is refused, having touched nothing.
    import atomic
    monkeypatch.setattr(atomic, 'LOCK_WAIT', 0.2)
    work = tmp_path / 'w'
    work.mkdir()
    with locked_by_another_process(work):
        with pytest.raises(UserError, match=f'^--work {work}: another process has been writing in {work} for 0.2 s '
                                            r'\(another demo.py running in it\?\); give another folder$'):
            demo.main(['--work', str(work), '--images', '3', '--device', 'cpu'])
    assert os.listdir(work) == [] and f'waiting for another process writing in {work}' in capsys.readouterr().out


def read_styles_rows(root):
    with open(root / 'styles.csv', newline='') as f:
        return list(csv.reader(f))[1:]


@pytest.mark.parametrize('given, problem', [
    ('nowhere', 'no such folder'), ('cat/images', 'holds no styles.csv'), ('cat/styles.csv', 'not a folder'),
    ('odd', 'its styles.csv is not a file')])
def test_a_data_folder_given_that_holds_no_dataset_is_refused_not_taken_for_a_sample(tmp_path, given, problem):
    # `--data ~/Downloads/fashoin` (mistyped) trained the demo's sample catalog instead, saying so in
    # one line among many; left out, --data is the tutorial's folder, the sample where that is empty
    make_catalog(str(tmp_path / 'cat'), n_images=3, seed=0)
    (tmp_path / 'odd' / 'styles.csv').mkdir(parents=True)
    data = str(tmp_path / given)
    with pytest.raises(UserError, match=f"^--data {data}: {problem}; give the folder that holds the dataset's "
                                        'styles.csv and images/, or leave --data out'):
        demo.main(['--data', data, '--work', str(tmp_path / 'w'), '--device', 'cpu'])
    assert not (tmp_path / 'w').exists()


def users_catalog_cut_short(users, monkeypatch, capsys):
    """A catalog of the user's (a picture and a styles.csv) that a drawing --overwrite of 20 pictures
    over it was cut short in, after 4: the names of those it drew."""
    (users / 'images').mkdir(parents=True)
    (users / 'images' / 'holiday.jpg').write_bytes(b'a photo of the user')
    (users / 'styles.csv').write_text('id,gender\n')
    draw_over(users, 20, monkeypatch, capsys, cut_after=4)
    drawn = set(os.listdir(users / 'images')) - {'holiday.jpg'}
    assert len(drawn) == 4
    return drawn


def test_overwrite_after_a_drawing_over_theirs_was_cut_short_removes_the_pictures_that_one_drew(tmp_path, monkeypatch,
                                                                                               capsys):
    # They stayed among the user's pictures, in no row of the new styles.csv, and unsaid
    users = tmp_path / 'users'
    drawn = users_catalog_cut_short(users, monkeypatch, capsys)
    note = draw_over(users, 3, monkeypatch, capsys)
    styles, _ = read_styles(os.path.join(users, 'styles.csv'))
    new = {f'{s.id}.jpg' for s in styles}
    assert set(os.listdir(users / 'images')) == new | {'holiday.jpg'} and len(drawn - new) >= 1
    assert f'; removed {len(drawn - new)} picture' in note and 'the drawing cut short before had drawn' in note
    assert (users / 'images' / 'holiday.jpg').read_bytes() == b'a photo of the user'
    # Cut short again once it has removed them: the user's styles.csv is still there, to be put back
    users = tmp_path / 'again'
    users_catalog_cut_short(users, monkeypatch, capsys)
    draw_over(users, 3, monkeypatch, capsys, cut_after=0)
    assert (users / 'styles.csv').read_text() == 'id,gender\n' and len(os.listdir(users / 'images')) < 5


def test_overwrite_after_a_drawing_over_theirs_whose_mark_names_none_replaced_draws(tmp_path, monkeypatch, capsys):
    # A mark without the list (written before it was kept, or edited): a TypeError, the catalog not drawn
    users = tmp_path / 'users'
    (users / 'images').mkdir(parents=True)
    (users / 'images' / 'holiday.jpg').write_bytes(b'a photo of the user')
    sample_catalog.write_mark(str(users), 3000, 0, False, finished=False, over_theirs=True)
    assert NOTE in draw_over(users, 3, monkeypatch, capsys)
    assert sample_catalog.sample_catalog_size(str(users)) == 3
    assert (users / 'images' / 'holiday.jpg').read_bytes() == b'a photo of the user'
