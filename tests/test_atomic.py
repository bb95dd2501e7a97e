# Every file the scripts write goes through atomic.py: a write cut short (Ctrl-C, a kill, a full
# disk) keeps the previous file and leaves no temporary one; a finished write replaces it.
import errno
import os
import shutil
import signal

import pytest

from atomic import (absolute_path, all_or_none, atomic_open, atomic_path, check_writable_file, check_writable_folder,
                    folder_locked, folder_made, kept_aside, kept_end, name_pattern, put_back_left_asides,
                    remove_left_temporaries, renamed_together, through_link)
from cli import UserError, what_is_there
from conftest import file_size_limit, lockable_by_another_process, locked_by_another_process


def test_a_write_cut_short_keeps_the_old_file_and_a_finished_one_replaces_it(tmp_path):
    path = tmp_path / 'metrics.json'
    path.write_text('old')
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(path) as f:
            f.write('new, but only half of it')
            raise KeyboardInterrupt
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['metrics.json']
    with atomic_open(path) as f:
        f.write('new')
    assert path.read_text() == 'new'
    assert os.listdir(tmp_path) == ['metrics.json']


def test_a_file_replaced_keeps_its_permissions_and_a_new_one_gets_the_default(tmp_path):
    # A file kept private (600) was replaced by one that everyone could read (644).
    private, new = tmp_path / 'predictions.csv', tmp_path / 'new.csv'
    private.write_text('old')
    private.chmod(0o600)
    with atomic_open(private) as f:
        f.write('new')
    with atomic_open(new) as f:
        f.write('new')
    mask = os.umask(0)
    os.umask(mask)
    assert (os.stat(private).st_mode & 0o777, os.stat(new).st_mode & 0o777) == (0o600, 0o666 & ~mask)
    with renamed_together() as group, atomic_open(private, together=group) as f:
        f.write('newer')
    assert private.read_text() == 'newer' and os.stat(private).st_mode & 0o777 == 0o600


def test_a_read_only_file_is_refused_before_any_work(tmp_path):
    # It was replaced without a word, which no shell's `>` does; root writes over its mode.
    path = tmp_path / 'predictions.csv'
    path.write_text('kept')
    check_writable_file(str(path), '--output p.csv')
    path.chmod(0o444)
    with pytest.raises(UserError, match=f'^--output p.csv: {path} is read-only, and would be replaced; make it '
                                        r'writable \(chmod u\+w\) or give another name$'):
        check_writable_file(str(path), '--output p.csv')


def test_the_temporary_file_is_hidden_beside_the_target_and_keeps_its_extension(tmp_path):
    # matplotlib picks the image format from the name it is given.
    with atomic_path(tmp_path / 'curves.png') as tmp:
        folder, name = os.path.split(tmp)
        assert folder == str(tmp_path) and name.startswith('.') and name.endswith('curves.png')
        open(tmp, 'wb').close()
    assert os.listdir(tmp_path) == ['curves.png']


@pytest.mark.parametrize('name', ['p' * 251 + '.png', 'é' * 125 + '.png'])  # 255 bytes, the most a name may have
def test_a_name_as_long_as_the_system_allows_is_written_too(tmp_path, name):
    with atomic_path(tmp_path / name) as tmp:
        assert tmp.endswith('.png') and len(os.fsencode(os.path.basename(tmp))) <= 255
        open(tmp, 'wb').close()
    assert os.listdir(tmp_path) == [name]


def test_an_error_names_the_file_asked_for_not_the_temporary_one(tmp_path):
    path = tmp_path / 'no-such-folder' / 'metrics.json'
    with pytest.raises(FileNotFoundError) as error:
        with atomic_open(path):
            pass
    assert error.value.filename == str(path)


def test_a_write_that_finds_the_disk_full_names_the_file(tmp_path):
    path = tmp_path / 'metrics.json'
    path.write_text('old')
    with file_size_limit(1000), pytest.raises(OSError) as error:  # a failed write names no file itself
        with atomic_open(path) as f:
            f.write('x' * 5000)
    assert (error.value.errno, error.value.filename) == (errno.EFBIG, str(path))
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['metrics.json']


def test_a_folder_on_a_full_disk_is_refused_before_any_work(tmp_path):
    # It took an empty file: split_data.py checked every picture, then failed to write train.csv.
    with file_size_limit(0), pytest.raises(UserError) as error:  # a full disk's writes fail alike
        check_writable_folder(str(tmp_path / 'out'), '--output out')
    assert str(error.value) == f'--output out: cannot write in {tmp_path} (File too large)'
    assert os.listdir(tmp_path) == []
    check_writable_folder(str(tmp_path / 'out'), '--output out')  # the byte written is gone with its file
    assert os.listdir(tmp_path) == []


def test_the_data_is_on_disk_before_the_rename(tmp_path, monkeypatch):
    # Files written by path (the PNGs, the ONNX model) as well as through atomic_open.
    calls = []
    real_replace = os.replace
    monkeypatch.setattr(os, 'fsync', lambda fd: calls.append('fsync'))
    monkeypatch.setattr(os, 'replace', lambda a, b: (calls.append('replace'), real_replace(a, b)))
    with atomic_path(tmp_path / 'curves.png') as tmp:
        with open(tmp, 'wb') as f:
            f.write(b'png')
    with atomic_open(tmp_path / 'metrics.json') as f:
        f.write('{}')
    assert calls == ['fsync', 'replace'] * 2
    assert (tmp_path / 'curves.png').read_bytes() == b'png' and (tmp_path / 'metrics.json').read_text() == '{}'



def write_together(folder, texts):
    with renamed_together() as together:
        for name, text in texts.items():
            with atomic_open(folder / name, together=together) as f:
                f.write(text)


@pytest.mark.parametrize('hard_links', [True, False])
@pytest.mark.parametrize('refused', ['a.txt', 'b.txt', 'c.txt'])
def test_files_renamed_together_all_change_or_none_when_a_rename_fails(tmp_path, monkeypatch, refused, hard_links):
    # A file that is a mount point (EBUSY) or immutable (chattr +i) refuses the rename onto it:
    # those renamed before it get their old files back, and b.txt, which was not there, goes.
    (tmp_path / 'a.txt').write_text('old a')
    (tmp_path / 'c.txt').write_text('old c')
    real_replace = os.replace

    def refuse(source, target):
        if str(target) == str(tmp_path / refused):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), source)
        real_replace(source, target)

    def no_hard_links(*args, **kwargs):  # some disks have none (exFAT, some network ones): a copy instead
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, 'replace', refuse)
    if not hard_links:
        monkeypatch.setattr(os, 'link', no_hard_links)
    with pytest.raises(OSError) as error:
        write_together(tmp_path, {'a.txt': 'new a', 'b.txt': 'new b', 'c.txt': 'new c'})
    assert error.value.filename == str(tmp_path / refused)
    assert sorted(os.listdir(tmp_path)) == ['a.txt', 'c.txt']
    assert [(tmp_path / name).read_text() for name in ('a.txt', 'c.txt')] == ['old a', 'old c']
    monkeypatch.setattr(os, 'replace', real_replace)
    write_together(tmp_path, {'a.txt': 'new a', 'b.txt': 'new b', 'c.txt': 'new c'})
    assert sorted(os.listdir(tmp_path)) == ['a.txt', 'b.txt', 'c.txt']
    assert (tmp_path / 'a.txt').read_text() == 'new a'


def test_a_ctrl_c_between_two_renames_puts_the_first_file_back(tmp_path, monkeypatch):
    (tmp_path / 'a.txt').write_text('old a')
    (tmp_path / 'b.txt').write_text('old b')
    real_replace = os.replace

    def ctrl_c_before_b(source, target):
        if str(target) == str(tmp_path / 'b.txt'):
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(os, 'replace', ctrl_c_before_b)
    with pytest.raises(KeyboardInterrupt):
        write_together(tmp_path, {'a.txt': 'new a', 'b.txt': 'new b'})
    assert sorted(os.listdir(tmp_path)) == ['a.txt', 'b.txt']  # no temporary file either
    assert [(tmp_path / name).read_text() for name in ('a.txt', 'b.txt')] == ['old a', 'old b']


@pytest.mark.parametrize('length', [236, 239, 245])
def test_files_of_long_names_renamed_together_are_replaced_and_a_killed_ones_put_back(tmp_path, length, capsys):
    # From 239 bytes on, the old file's aside took the new file's temporary name: copied over it,
    # it was "written" and the old model stayed.
    long = 'm' * (length - len('.onnx')) + '.onnx'
    (tmp_path / long).write_text('old model')
    (tmp_path / 'model.json').write_text('old labels')
    write_together(tmp_path, {long: 'new model', 'model.json': 'new labels'})
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == {long: 'new model',
                                                                            'model.json': 'new labels'}
    # Killed after its rename (a kill -9): the aside the next export finds is put back under the whole name
    aside = tmp_path / kept_aside(str(tmp_path / long))
    (tmp_path / 'newer').write_text('newer model')
    os.replace(tmp_path / 'newer', tmp_path / long)  # a link to the old one, the aside stays the old one
    gone = aside.with_name(aside.name.replace(f'-{os.getpid()}-', f'-{2**31 - 2}-'))  # of a process that is gone
    aside.rename(gone)
    put_back_left_asides(str(tmp_path), name_pattern(long), 'predict.py', [long])
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == {long: 'new model',
                                                                            'model.json': 'new labels'}
    assert f'note: put back {long} in {tmp_path}' in capsys.readouterr().out


def test_a_copy_kept_aside_takes_its_name_only_once_whole(tmp_path, monkeypatch):
    # On a disk without hard links: killed (kill -9) as it copied, part of the file stayed under the
    # aside's name, and the next run put it back over the whole file.
    (tmp_path / 'a.txt').write_text('old a')
    real_copy2, copied_to = shutil.copy2, []

    def no_hard_links(*args, **kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    def copy(source, target, **kwargs):
        copied_to.append(os.path.basename(target))
        return real_copy2(source, target, **kwargs)

    monkeypatch.setattr(os, 'link', no_hard_links)
    monkeypatch.setattr(shutil, 'copy2', copy)
    aside = os.path.basename(kept_aside(str(tmp_path / 'a.txt')))
    assert copied_to and aside not in copied_to and (tmp_path / aside).read_text() == 'old a'
    assert sorted(os.listdir(tmp_path)) == sorted(['a.txt', aside])
    gone = 2**31 - 2  # a copy a killed process left: never put back
    (tmp_path / f'.tmp-{gone}-{aside}').write_text('ol')
    put_back_left_asides(str(tmp_path), r'a\.txt', 'test.py')
    assert (tmp_path / 'a.txt').read_text() == 'old a'


@pytest.mark.parametrize('after', ['a.txt', 'b.txt'])
def test_a_ctrl_c_that_lands_as_a_rename_returns_undoes_it_too(tmp_path, monkeypatch, after):
    # A real signal, taken as os.replace returns: that rename was left out of those undone, and a
    # new a.txt stayed beside the old b.txt (split_data.py: a train.csv sharing pictures with val.csv).
    (tmp_path / 'a.txt').write_text('old a')
    (tmp_path / 'b.txt').write_text('old b')
    real_replace = os.replace

    def ctrl_c_as_it_returns(source, target):
        real_replace(source, target)
        if str(target) == str(tmp_path / after):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, 'replace', ctrl_c_as_it_returns)
    with pytest.raises(KeyboardInterrupt):
        write_together(tmp_path, {'a.txt': 'new a', 'b.txt': 'new b'})
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == {'a.txt': 'old a', 'b.txt': 'old b'}


def test_a_copy_kept_aside_that_fails_leaves_no_part_of_it(tmp_path, monkeypatch):
    # A disk without hard links: the old file is copied aside, and that copy finds the disk full.
    (tmp_path / 'a.txt').write_text('old a')

    def no_hard_links(*args, **kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    def half_a_copy(source, target, **kwargs):
        open(target, 'w').write('ol')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)

    monkeypatch.setattr(os, 'link', no_hard_links)
    monkeypatch.setattr(shutil, 'copy2', half_a_copy)
    with pytest.raises(OSError) as error:
        write_together(tmp_path, {'a.txt': 'new a', 'b.txt': 'new b'})
    assert error.value.filename == str(tmp_path / 'a.txt')
    assert os.listdir(tmp_path) == ['a.txt'] and (tmp_path / 'a.txt').read_text() == 'old a'



def test_what_a_killed_process_left_half_written_is_removed_but_not_what_one_still_writes(tmp_path, capsys):
    gone = 2**31 - 2  # above any process id Linux hands out
    names = [f'.tmp-{gone}-a.txt', f'.tmp-{gone}-old-a.txt',  # a kill between writing and renaming
             f'.tmp-{os.getpid()}-a.txt',  # this id: a killed process 1 in a container, before this one
             f'.tmp-{os.getppid()}-a.txt',  # a process that runs: still writing it, maybe
             f'.tmp-{gone}-b.txt', 'a.txt']  # another name; the file itself
    for name in names:
        (tmp_path / name).write_text('')
    remove_left_temporaries(str(tmp_path), r'a\.txt', 'test.py')
    assert sorted(os.listdir(tmp_path)) == sorted(names[3:])
    assert capsys.readouterr().out == (f'note: removed {", ".join(sorted(names[:3]))} from {tmp_path}: files left '
                                       'half-written by a test.py that was killed\n')  # in name order, whatever the ids
    remove_left_temporaries(str(tmp_path), r'a\.txt', 'train.py', locked=True)  # a folder no one else writes in
    assert sorted(os.listdir(tmp_path)) == sorted(names[4:])


def test_what_a_killed_process_set_aside_of_a_set_is_put_back_not_removed(tmp_path, capsys):
    # test.py killed as it replaced its files (all_or_none): the new metrics.json beside the old
    # figures, and the old metrics.json, kept aside whole, removed by the next run as half-written.
    gone = 2**31 - 2  # above any process id Linux hands out
    files = {'metrics.json': 'new', f'.tmp-{gone}-old-metrics.json': 'old', 'grid.png': 'old',
             f'.tmp-{gone}-old-grid.png': 'old', f'.tmp-{gone}-grid.png': 'half of a new one',
             f'.tmp-{os.getppid()}-old-grid.png': 'of a process still writing'}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    # grid.png, not replaced yet, kept aside as kept_aside does: a hard link, which a rename onto
    # grid.png left there, removed next as half-written, in a note after the one that put it back.
    os.remove(tmp_path / f'.tmp-{gone}-old-grid.png')
    os.link(tmp_path / 'grid.png', tmp_path / f'.tmp-{gone}-old-grid.png')
    put_back_left_asides(str(tmp_path), r'metrics\.json|grid\.png', 'test.py')
    remove_left_temporaries(str(tmp_path), r'metrics\.json|grid\.png', 'test.py')
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == {
        'metrics.json': 'old', 'grid.png': 'old', f'.tmp-{os.getppid()}-old-grid.png': 'of a process still writing'}
    assert capsys.readouterr().out == (
        f'note: put back metrics.json in {tmp_path}, which a test.py that was killed had set aside as it '
        'replaced it: the files there are those of the test.py before it\n'
        f'note: removed .tmp-{gone}-grid.png from {tmp_path}: a file left half-written by a test.py that was killed\n')


@pytest.mark.parametrize('name', ['é' * 125 + '.csv', 'é' * 124 + 'x.csv', '€' * 83 + '.csv', '€' * 82 + 'xy.csv',
                                  '😀' * 62 + '.csv'])  # cut 1 or 2 bytes into a character of 2, 3 or 4
def test_a_long_names_temporary_keeps_whole_characters(name):
    kept = kept_end(name)
    assert name.endswith(kept) and 239 - 3 <= len(kept.encode('utf-8', 'strict')) <= 239


@pytest.mark.parametrize('name', ['p' * 251 + '.csv', 'é' * 125 + '.csv', 'q' * 233 + '.csv'])
def test_what_a_killed_process_left_of_a_long_name_is_found_by_what_it_kept(tmp_path, name):
    # The temporary files keep the name's end only, and that of the old file's name (old-NAME) may
    # be another. They were left for good: found by the full name, which they no longer held.
    (tmp_path / name).write_text('old')
    gone = f'.tmp-{2**31 - 2}-'  # a process id of 10 digits, the longest
    with atomic_path(tmp_path / name) as tmp:
        aside = kept_aside(str(tmp_path / name))
        left = [os.path.basename(path).replace(f'.tmp-{os.getpid()}-', gone) for path in (tmp, aside)]
        os.remove(aside)
        open(tmp, 'w').close()
    for each in left:
        assert len(os.fsencode(each)) <= 255
        (tmp_path / each).write_text('half')
    remove_left_temporaries(str(tmp_path), name_pattern(name), 'predict.py')
    assert os.listdir(tmp_path) == [name]


def test_files_that_belong_together_are_all_put_back_where_the_block_fails(tmp_path):
    paths = [str(tmp_path / name) for name in ('a.json', 'b.png', 'c.png')]
    for path in paths[:2]:
        open(path, 'w').write('old')
    with pytest.raises(KeyboardInterrupt), all_or_none(paths):
        for path in paths:
            with atomic_open(path) as f:
                f.write('new')
        raise KeyboardInterrupt  # a Ctrl-C after all three were written: a.json and b.png back, c.png gone
    assert sorted(os.listdir(tmp_path)) == ['a.json', 'b.png']
    assert [open(path).read() for path in paths[:2]] == ['old', 'old']
    with all_or_none(paths):
        for path in paths:
            with atomic_open(path) as f:
                f.write('new')
    assert sorted(os.listdir(tmp_path)) == ['a.json', 'b.png', 'c.png']  # nothing kept aside left
    assert [open(path).read() for path in paths] == ['new'] * 3


def test_a_link_is_written_through_also_to_a_file_not_there_yet_but_a_loop_of_links_is_refused(tmp_path):
    (tmp_path / 'new.csv').symlink_to('made.csv')
    assert through_link(str(tmp_path / 'new.csv')) == str(tmp_path / 'made.csv')
    # A loop: realpath gave the link's own name, and the rename put a file in its place.
    (tmp_path / 'a.csv').symlink_to('b.csv')
    (tmp_path / 'b.csv').symlink_to('a.csv')
    with pytest.raises(UserError, match=f'^{tmp_path / "a.csv"}: a link in a loop of links, which leads to no file'):
        through_link(str(tmp_path / 'a.csv'))


@pytest.fixture
def ctrl_c_raises():
    # Python's own handler, which ctrl_c_held holds back (a test runner's worker may have another)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize('second_ctrl_c', [False, True])
def test_a_file_that_cannot_be_put_back_stops_none_of_the_others(tmp_path, monkeypatch, ctrl_c_raises, second_ctrl_c):
    # With a second Ctrl-C meanwhile, held until all were tried, the old copy kept went all the same.
    paths = [str(tmp_path / name) for name in ('a.json', 'b.png')]
    for path in paths:
        open(path, 'w').write('old')
    replace = os.replace

    def a_json_on_a_disk_gone_read_only(source, target):
        if target == paths[0]:
            if second_ctrl_c:
                os.kill(os.getpid(), signal.SIGINT)
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), target)
        replace(source, target)
    with pytest.raises(KeyboardInterrupt), all_or_none(paths):  # the stop, not the failed restore
        for path in paths:
            with atomic_open(path) as f:
                f.write('new')
        monkeypatch.setattr(os, 'replace', a_json_on_a_disk_gone_read_only)
        raise KeyboardInterrupt
    assert open(paths[1]).read() == 'old'  # put back, though a.json could not be
    left, = [name for name in os.listdir(tmp_path) if name.startswith('.tmp-')]
    assert left.endswith('-old-a.json') and (tmp_path / left).read_text() == 'old'  # a.json's old copy kept


def test_files_renamed_together_keep_an_old_copy_that_cannot_be_put_back(tmp_path, monkeypatch):
    # Where c.csv's rename failed and a.csv's could not be undone, a.csv's old copy was removed.
    paths = [str(tmp_path / name) for name in ('a.csv', 'b.csv', 'c.csv')]
    for path in paths:
        open(path, 'w').write('old')
    replace, undoing = os.replace, []

    def c_csv_and_then_a_csv_on_a_disk_gone_read_only(source, target):
        if target == paths[2] or (target == paths[0] and undoing):
            undoing.append(target)
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), target)
        replace(source, target)
    monkeypatch.setattr(os, 'replace', c_csv_and_then_a_csv_on_a_disk_gone_read_only)
    with pytest.raises(OSError, match='Read-only') as error, renamed_together() as together:
        for path in paths:
            with atomic_open(path, together=together) as f:
                f.write('new')
    assert error.value.filename == paths[2] and undoing == paths[2:] + paths[:1]
    assert [open(path).read() for path in paths] == ['new', 'old', 'old']  # b.csv put back all the same
    left, = [name for name in os.listdir(tmp_path) if name.startswith('.tmp-')]
    assert left.endswith('-old-a.csv') and (tmp_path / left).read_text() == 'old'


def test_files_kept_aside_go_where_keeping_the_next_fails(tmp_path, monkeypatch):
    paths = [str(tmp_path / name) for name in ('a.json', 'b.png')]
    for path in paths:
        open(path, 'w').write('old')
    link = os.link

    def b_png_on_a_full_disk(source, target, **kwargs):
        if source == paths[1]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
        link(source, target, **kwargs)
    monkeypatch.setattr(os, 'link', b_png_on_a_full_disk)
    monkeypatch.setattr(shutil, 'copy2', b_png_on_a_full_disk)
    with pytest.raises(OSError, match='No space'), all_or_none(paths):
        pass
    assert sorted(os.listdir(tmp_path)) == ['a.json', 'b.png']


def test_a_path_through_a_link_and_up_goes_where_the_system_goes(tmp_path, monkeypatch):
    # ext -> other/sub: the system takes ext/.. to other/, where abspath would stay in project/.
    (tmp_path / 'other' / 'sub').mkdir(parents=True)
    (tmp_path / 'project').mkdir()
    (tmp_path / 'project' / 'ext').symlink_to(tmp_path / 'other' / 'sub')
    monkeypatch.chdir(tmp_path / 'project')
    assert absolute_path(os.path.join('ext', '..', 'a.csv')) == str(tmp_path / 'other' / 'a.csv')
    assert absolute_path(os.path.join('ext', 'b.csv')) == str(tmp_path / 'project' / 'ext' / 'b.csv')  # kept by name
    with atomic_open(os.path.join('ext', '..', 'a.csv')) as f:
        f.write('rows')
    assert (tmp_path / 'other' / 'a.csv').read_text() == 'rows' and os.listdir('.') == ['ext']
    (tmp_path / 'other' / 'ro').touch()  # not a folder, found where the system looks
    with pytest.raises(UserError, match=f'{tmp_path / "other" / "ro"} is a file, not a folder'):
        check_writable_folder(os.path.join('ext', '..', 'ro', 'new'), '--output X')
    with pytest.raises(UserError, match='--output : an empty name; give a folder, such as .'):
        check_writable_folder('', '--output ')


def test_what_stands_where_a_folder_is_needed_is_named(tmp_path):
    (tmp_path / 'notes').write_text('')
    (tmp_path / 'dangling').symlink_to(tmp_path / 'gone')
    (tmp_path / 'loop').symlink_to(tmp_path / 'loop')  # was "a link to nothing", as the dangling one
    for name, words in [('notes', 'a file'), ('dangling', 'a link that leads nowhere'),
                        ('loop', 'a link in a loop of links')]:
        assert what_is_there(str(tmp_path / name)) == words
        with pytest.raises(UserError, match=f'^--output X: {tmp_path / name} is {words}, not a folder$'):
            check_writable_folder(str(tmp_path / name / 'new'), '--output X')


def test_a_temporary_of_a_process_of_another_user_is_kept_as_one_still_being_written(tmp_path, monkeypatch):
    # Signal 0 to another user's process is refused (EPERM), but the process is there: its file may be
    # still being written, in a folder shared with that user, and removing it would lose its work.
    other = 2**31 - 3
    (tmp_path / f'.tmp-{other}-a.txt').write_text('half')
    real_kill = os.kill

    def another_users(pid, signum):
        if pid == other:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        return real_kill(pid, signum)
    monkeypatch.setattr(os, 'kill', another_users)
    remove_left_temporaries(str(tmp_path), r'a\.txt', 'predict.py')
    assert os.listdir(tmp_path) == [f'.tmp-{other}-a.txt']


def test_a_folder_name_of_exactly_the_longest_length_is_taken_and_one_byte_more_refused(tmp_path):
    # 255 bytes is a legal name on every file system the scripts run on: refusing it stopped a run
    # whose folder could have been made.
    check_writable_folder(str(tmp_path / ('d' * 255) / 'run'), '--output X')
    with pytest.raises(UserError, match='is longer than the 255 bytes a file system allows'):
        check_writable_folder(str(tmp_path / ('d' * 256) / 'run'), '--output X')


def test_a_folder_made_for_a_block_that_fails_goes_with_those_above_it_made_for_it(tmp_path, monkeypatch):
    def fail_in(folder, write=None):
        with pytest.raises(KeyboardInterrupt):
            with folder_made(folder):
                if write:
                    (tmp_path / write).write_text('kept')
                raise KeyboardInterrupt
    monkeypatch.chdir(tmp_path)
    fail_in('a/b/c/')  # relative, with a trailing slash: all three go
    assert os.listdir(tmp_path) == []
    fail_in(str(tmp_path / 'a' / 'b' / 'c'), write='a/b/notes.txt')  # a file written above: from there up, kept
    assert sorted(os.listdir(tmp_path / 'a' / 'b')) == ['notes.txt']
    (tmp_path / 'a' / 'b' / 'notes.txt').unlink()
    with folder_made(str(tmp_path / 'a' / 'b' / 'c')):  # a block that ends well keeps them
        pass
    assert (tmp_path / 'a' / 'b' / 'c').is_dir()


def test_a_folder_locked_by_one_writer_keeps_any_other_waiting(tmp_path, monkeypatch):
    # Two test.py into one --output: a lock they could both hold (shared) let both write at once.
    import atomic
    monkeypatch.setattr(atomic, 'LOCK_WAIT', 0.3)
    with folder_locked(str(tmp_path), '--output A'):
        assert not lockable_by_another_process(tmp_path)
    assert lockable_by_another_process(tmp_path)  # free again once the first is done
    with locked_by_another_process(tmp_path):
        with pytest.raises(UserError, match=f'^--output B: another process has been writing in {tmp_path} for 0.3 s '
                                            r'\(a train.py training in it\?\); give another folder$'):
            with folder_locked(str(tmp_path), '--output B'):
                pass
        with pytest.raises(UserError, match=r' \(a test\?\); give another folder$'):
            with folder_locked(str(tmp_path), '--output C', holder='a test'):
                pass
    # Held by this process, it is not locked again, which would wait for itself (demo.py's --work,
    # where split_data.py locks it again to save the split), however it is named; and the inner
    # block's end leaves it locked.
    (tmp_path / 'link').symlink_to(tmp_path)
    with folder_locked(str(tmp_path), '--work A'):
        with folder_locked(str(tmp_path / 'link'), '--output A'):
            pass
        assert not lockable_by_another_process(tmp_path)
    assert lockable_by_another_process(tmp_path)
