# Writing files so that nothing the user has is lost: every file (checkpoints, splits, metrics,
# figures, predictions, exported models; not the sample catalog's pictures, which sample_catalog.py
# redraws where a drawing was cut short) is written under a temporary name beside it and renamed
# into place only once complete. A kill, a Ctrl-C or a full disk mid-write leaves the previous
# file as it was and no half-written one.
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager

from cli import UserError, ctrl_c_held, what_is_there


NAME_MAX = 255  # bytes in a file name, on the file systems of Linux, macOS and Windows


# What a temporary name puts before the end of the real one, at its longest: '.tmp-', a process
# id of up to 10 digits, '-'.
PREFIX_MAX = 16


def temporary_name(name, old=False):
    """old: of an old file kept aside (kept_aside), which never takes the new file's temporary name:
    'old-' + a long name cut to its end was that name's end alone, and the old file, copied where
    it could not be linked, went over the new one, which its rename then never put in place."""
    if old:
        return f'.tmp-{os.getpid()}-old-{kept_end(name, len("old-"))}'
    return f'.tmp-{os.getpid()}-{kept_end(name)}'


def kept_end(name, more=0):
    # A name that is legal but long would go past the limit with the prefix: its end is kept, as
    # much as the longest prefix (and `more` bytes after it) leaves, so that every process, and
    # temporaries_left, cuts it alike.
    end = os.fsencode(name)[-(NAME_MAX - PREFIX_MAX - more):]
    # From a character's first byte: half of 'é' makes a name macOS and Windows refuse.
    for _ in range(3):  # a UTF-8 character has at most 3 bytes after its first
        if end[:1] and 0x80 <= end[0] < 0xC0:
            end = end[1:]
    return os.fsdecode(end)


def name_pattern(name):
    """A regular expression of name, for temporaries_left: the name, or what a long one's
    temporary files keep of it and of its old file's name (kept_end)."""
    return '|'.join(dict.fromkeys(map(re.escape, (name, kept_end(name), kept_end(name, len('old-')),
                                                  kept_end('old-' + name)))))  # the last: as named before 2026-12-06


def temporaries_left(folder, names):
    """The temporary files in folder, of the names the regular expression `names` matches, and
    the old files kept aside by renamed_together: where nothing is being written, what a kill -9
    or a power cut left, never to be renamed into place. A name a user gives, which may be long,
    goes in as name_pattern(name)."""
    pattern = re.compile(rf'\.tmp-\d+-(?:old-)?(?:{names})')
    with os.scandir(folder) as entries:
        return sorted(entry.path for entry in entries
                      if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False))


def put_back_left_asides(folder, names, script, files=(), first=None):
    """Before any work, for files that belong together (all_or_none): where a `script` was killed
    while it replaced them (a kill -9, a power cut), the old files it kept aside are renamed back
    into place, so that the folder holds the set before it again, not some of its new files beside
    old ones. Else they were removed as half-written (remove_left_temporaries), complete as they
    are, and the folder stayed mixed for good. `names`: a regular expression of short names, or
    name_pattern of each of `files` (whose asides keep the end of a long name). `first`: the
    first file of a renamed_together group, whose aside replace_together removes first: where a
    process's is gone, all of its renames were done, and its other asides are left over, not to be
    put back beside its new first file."""
    if not os.path.isdir(folder):
        return
    pattern = re.compile(rf'\.tmp-\d+-old-({names})')
    asides = [(path, pattern.fullmatch(os.path.basename(path))) for path in temporaries_left(folder, names)]
    asides = [(path, found) for path, found in asides if found and not running_elsewhere(path)]
    if first is not None:
        pids = {process_of(path) for path, found in asides if whole_name(found.group(1), files) == first}
        asides = [(path, found) for path, found in asides if process_of(path) in pids]
    put = []
    for path, found in asides:
        own = whole_name(found.group(1), files)
        target = os.path.join(folder, own)
        if os.path.lexists(target) and os.path.samestat(os.lstat(path), os.lstat(target)):
            # A hard link to the file still in place, not yet replaced: renamed onto it, it stays (the
            # system does nothing), and was then removed as half-written, named in both notes.
            os.remove(path)
        else:
            os.replace(path, target)
            put.append(own)
    if put:
        print(f'note: put back {", ".join(put)} in {folder}, which a {script} that was killed had set aside as it '
              f'replaced {"it" if len(put) == 1 else "them"}: the files there are those of the {script} before it')


def whole_name(end, files):
    """The one of files whose old file's aside keeps `end` of its name (temporary_name), or end."""
    return next((name for name in files if end in (name, kept_end(name, len('old-')), kept_end(name))), end)


def remove_left_temporaries(folder, names, script, locked=False):
    """Before any work: removes what a killed `script` left half-written in folder (temporaries_left),
    which would stay for good. In a folder locked by this process, all of them; else only those of
    processes that are gone or had this one's id (in a container a killed process 1 left them):
    one still writing there keeps its own."""
    if not os.path.isdir(folder):
        return
    left = [path for path in temporaries_left(folder, names) if locked or not running_elsewhere(path)]
    for path in left:
        try:
            os.remove(path)
        except FileNotFoundError:  # its own writer removed it meanwhile
            pass
    if left:
        print(f'note: removed {", ".join(os.path.basename(p) for p in left)} from {folder}: '
              f'{"a file" if len(left) == 1 else "files"} left half-written by a {script} that was killed')


def process_of(temporary):
    """The id of the process that named the temporary file (.tmp-PID-...)."""
    return int(os.path.basename(temporary).split('-')[1])


def running_elsewhere(temporary):
    """Whether the process that named the temporary file (.tmp-PID-...) runs, and is not this one."""
    pid = process_of(temporary)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process is there
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's
        return True
    return True


def json_value(path, encoding='utf-8'):
    """The JSON value in the file at path, or None where it holds none (no JSON, no reading it):
    how a script tells a file of its own, which it may replace, from a file of the user's of the
    same name. encoding='utf-8-sig' allows a byte-order mark before it."""
    try:
        with open(path, encoding=encoding) as f:
            return json.load(f)
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def json_object(path):
    """The JSON object (a dict) in the file at path, or None where it holds none."""
    value = json_value(path)
    return value if isinstance(value, dict) else None


def absolute_path(path):
    """path made absolute, naming what the system finds there. os.path.abspath takes 'link/..' by
    name, to the link's own folder, where the system goes up from the folder the link points to:
    the two differ when the link leads to another folder or disk."""
    path = os.fspath(path)
    plain = os.path.abspath(path)
    if os.pardir not in path.split(os.sep) or os.path.realpath(path) == os.path.realpath(plain):
        return plain
    return os.path.realpath(path)


def through_link(path, named=None):
    """For an output file the user names: where path is a link, the file it points to, which a
    write then changes as a shell's `>` would, the link staying a link. (Not for the files the
    scripts name themselves: a run folder's last.pth may be a link to another run's checkpoint.)
    named: how a message names path (the flag that gave it, '--output p.csv'), else path."""
    if not os.path.islink(path):
        return path
    try:
        os.stat(path)
    except OSError as error:  # one that points to nothing yet is written through, making the file
        if error.errno == errno.ELOOP:  # realpath would give the link's own name: replaced by a file
            raise UserError(f'{named or path}: a link in a loop of links, which leads to no file; '
                            'name a file') from error
    return os.path.realpath(path)


@contextmanager
def atomic_path(path, together=None):
    """A temporary path to write to: renamed onto path when the block ends, removed if it fails.
    With `together`, a renamed_together() group, renamed with the group's other files instead."""
    folder, name = os.path.split(absolute_path(path))
    # In the same folder, as a rename is atomic only within one file system; hidden; and ending
    # in the real name, so that writers that go by the extension (matplotlib) still can.
    tmp = os.path.join(folder, temporary_name(name))
    try:
        yield tmp
        # The data is on disk before the rename makes it visible, so a power cut never leaves an
        # empty file in place of the old one.
        sync_to_disk(tmp)
        keep_mode(path, tmp)
        if together is None:
            os.replace(tmp, path)
        else:
            together.append((tmp, path))
    except OSError as error:
        # The error names the file asked for: not our temporary one, and not nothing, which a
        # failed write (a full disk: ENOSPC, EFBIG) leaves in it.
        if error.filename in (None, tmp):
            error.filename = str(path)
        raise
    finally:
        if os.path.exists(tmp) and (tmp, path) not in (together or []):
            os.remove(tmp)


def keep_mode(path, tmp):
    """The permissions of the file at path, where there is one, given to tmp, which replaces it: a
    file kept private (600) was replaced by one that everyone could read."""
    try:
        shutil.copymode(path, tmp)
    except FileNotFoundError:  # nothing replaced: the default for a new file
        pass


@contextmanager
def atomic_open(path, mode='w', together=None, **kwargs):
    """open(path, mode) for writing, atomically (see atomic_path)."""
    with atomic_path(path, together) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


@contextmanager
def renamed_together():
    """For files that change together or not at all (a model and its label names, train.csv and
    val.csv): in the block, each is written with atomic_path(path, group) or atomic_open(path,
    together=group). When the block ends, all of them are on the disk, and they are renamed into
    place one right after the other; where a rename fails (a file that is a mount point, or made
    immutable), those before it are undone. Nothing is renamed if the block fails."""
    group = []
    try:
        yield group
        replace_together(group)
    finally:
        for tmp, _ in group:
            if os.path.exists(tmp):
                os.remove(tmp)


def replace_together(renames):
    """os.replace(tmp, path) for each pair in turn; where one fails (or a Ctrl-C comes meanwhile),
    the paths renamed before it get their old files back, or go where there were none."""
    done, asides = {}, []  # each path renamed onto, with its old file kept aside (None: there was none)
    stuck = set()
    try:
        # A Ctrl-C is held until all are renamed, then undoes them all: raised as an os.replace
        # returned, it left that rename out of `done`, never undone, so one new file stayed beside
        # the old others.
        with ctrl_c_held():
            for tmp, path in renames:
                # The last file's old one too, though a failed rename leaves it in place: killed
                # (kill -9) after the last rename, before the asides go, put_back_left_asides
                # puts back all of the old files, not all but one of them beside a new one.
                asides.append(kept_aside(path))
                os.replace(tmp, path)
                done[path] = asides[-1]
    except BaseException as error:
        try:
            put_back(dict(reversed(done.items())), stuck)  # first: a second Ctrl-C is held in it
        finally:
            for tmp, path in renames:  # named by the file asked for, not our temporary one
                if isinstance(error, OSError) and error.filename == tmp:
                    error.filename = str(path)
        raise
    finally:
        remove_asides(old for old in asides if old not in stuck)


@contextmanager
def all_or_none(paths):
    """For files each written atomically, but that belong together (test.py's metrics.json and
    its figures): where the block fails or is stopped, each is put back as it was before it, or
    removed where there was none, so that no old figure stays beside new metrics."""
    asides, stuck = {}, set()
    try:
        for path in paths:
            asides[path] = kept_aside(path)
        yield
    except BaseException:
        put_back(asides, stuck)
        raise
    finally:
        remove_asides(old for old in asides.values() if old not in stuck)


LOCK_WAIT = 60  # seconds folder_locked waits for another process's lock
_LOCKED_HERE = set()  # (device, inode) of each folder this process holds locked


@contextmanager
def folder_made(folder):
    """The folder, made for the block (with those above it where need be); where the block fails
    (a Ctrl-C, a full disk) before anything is left in it, the folder it made goes again, not
    left empty behind, nor those above it that it made (`--output new/eval`)."""
    made = folders_missing(folder)
    os.makedirs(folder, exist_ok=True)
    try:
        yield
    except BaseException:
        for path in made:  # the deepest first
            try:
                os.rmdir(path)
            except OSError:  # not empty: something of it was written, and stays, as do those above
                break
        raise


def folders_missing(folder):
    """folder and the folders above it that do not exist yet, the deepest first: those makedirs makes."""
    missing = []
    folder = folder.rstrip(os.sep) or folder
    while folder and not os.path.lexists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


@contextmanager
def folder_locked(folder, named, holder='a train.py training in it'):
    """The folder locked while the block writes files that belong together (test.py's): a second
    process writing its own there waits until the first has written all of its, so that neither
    leaves half of each (two test.py runs into one --output, the metrics of one and the grid of the
    other). A lock held longer than LOCK_WAIT (train.py holds its run folder locked for as long as
    it trains) is refused, `named` saying where the folder comes from and `holder` what most likely
    holds it so long. Unlocked where the file system has no locks. A folder this process holds
    already is not locked again: a lock of its own, taken anew, would wait for it (demo.py holds its
    --work locked, and split_data.py's saving in it locks it too)."""
    fd = os.open(folder, os.O_RDONLY)
    status = os.fstat(fd)
    key = (status.st_dev, status.st_ino)
    if key in _LOCKED_HERE:
        os.close(fd)
        yield
        return
    try:
        wait_for_lock(fd, folder, named, holder)
        _LOCKED_HERE.add(key)
        yield
    finally:
        _LOCKED_HERE.discard(key)
        os.close(fd)  # the lock goes with it


def wait_for_lock(fd, folder, named, holder):
    waited_since = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if waited_since is None:
                waited_since = time.monotonic()
                print(f'note: waiting for another process writing in {folder}')
            elif time.monotonic() - waited_since > LOCK_WAIT:
                raise UserError(f'{named}: another process has been writing in {folder} for {LOCK_WAIT} s ({holder}?); '
                                'give another folder') from None
            time.sleep(0.1)
        except OSError:  # a file system without locks (NFS without lockd, say): written unlocked
            return


def put_back(asides, stuck):
    """Each path of asides (path: the old file kept_aside kept of it, or None where there was none)
    as it was: its old file renamed back, or itself removed. Each apart, and a second Ctrl-C held
    until all are done: one that fails (a disk gone read-only) stops no other. The old files that
    could not be put back go into the set stuck, filled as it goes (the held Ctrl-C is raised at
    the end, so no return value would come back): left under their temporary names, never
    removed, the user's still."""
    with ctrl_c_held():
        for path, old in asides.items():
            try:
                if old:
                    os.replace(old, path)
                elif os.path.lexists(path):
                    os.remove(path)
            except OSError:
                if old:
                    stuck.add(old)


def remove_asides(asides):
    for old in asides:
        if old and os.path.lexists(old):
            os.remove(old)


def kept_aside(path, name=None):
    """A second name for the file at path, to put it back with (or to rename to `name`, in its
    folder): a hard link, or a copy on a disk without them. None where there is no file."""
    if not os.path.lexists(path):
        return None
    folder, own = os.path.split(path)
    aside = os.path.join(folder, temporary_name(name) if name else temporary_name(own, old=True))
    try:
        os.link(path, aside, follow_symlinks=False)  # a link is kept as the link it is
    except OSError:
        # Copied under another name first: a copy cut short by a kill -9 under the aside's own was
        # put back over the file by the next run (put_back_left_asides), the end of it lost.
        copying = os.path.join(folder, temporary_name(os.path.basename(aside)))
        try:
            shutil.copy2(path, copying, follow_symlinks=False)
            os.replace(copying, aside)
        except BaseException as error:  # a full disk, a Ctrl-C: no part of a copy stays
            if os.path.lexists(copying):
                os.remove(copying)
            if isinstance(error, OSError):
                error.filename = str(path)
            raise
    return aside


def sync_to_disk(path):
    """Have the disk keep the written file at path: a full disk or an I/O error may show only now."""
    with open(path, 'r+b') as f:
        os.fsync(f.fileno())


def flush_to_disk(f):
    """Write out what the open file f still buffers and have the disk keep it, so that a full
    disk shows now, while its path is being written, and not when it is closed."""
    f.flush()
    os.fsync(f.fileno())


def check_writable_folder(folder, named):
    """Before any work: that new files can be written in folder, made later with the folders above
    it where need be. `named` says where the folder comes from, such as '--output out'."""
    if not folder:
        raise UserError(f'{named}: an empty name; give a folder, such as .')
    existing = absolute_path(folder)
    while not os.path.lexists(existing):  # the folders still to be made: it is their parent that must be one
        check_name_fits(existing, named)
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f'{named}: {existing} is {what_is_there(existing)}, not a folder')
    try:
        # Trying is the only sure test: permissions, access lists, a read-only disk, `chattr +i`. A
        # full disk still takes an empty file, but not a byte: one is written, so that it is found
        # now, not when the first output is written (split_data.py, after checking every picture).
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(b'.')
            probe.flush()
    except OSError as error:
        raise UserError(f'{named}: cannot write in {existing} ({error.strerror or error})') from None


def check_writable_file(path, named):
    """Before any work: that a file can be written at path, a name the user gave: one that fits a
    file system (the rename at the end would fail on it, the work done) in a folder it can be written in."""
    check_name_fits(path, named)
    check_writable_folder(os.path.dirname(absolute_path(path)), named)
    # A file made read-only, which a rename would replace all the same, as no shell's `>` does;
    # by its mode too, which root may write over.
    if os.path.isfile(path) and (not os.access(path, os.W_OK) or not os.stat(path).st_mode & 0o222):
        raise UserError(f'{named}: {path} is read-only, and would be replaced; make it writable (chmod u+w) or '
                        'give another name')


def check_name_fits(path, named):
    """That the last name of path is no longer than a file system allows."""
    name = os.path.basename(path)
    if len(os.fsencode(name)) > NAME_MAX:
        raise UserError(f'{named}: the name {name[:40]}... is longer than the {NAME_MAX} bytes a file system allows')


def check_no_folder_in_the_way(folder, names, named):
    """Before any work: that no folder has the name of a file to be written in folder (`names`: a
    regular expression, or a set of the names themselves, as for the thousands of pictures a sample
    catalog draws). A rename cannot put a file in a folder's place, so the work would be lost at its
    end. A link to a folder is no obstacle: the rename replaces the link."""
    if not os.path.isdir(folder):
        return
    named_so = names.__contains__ if isinstance(names, (set, frozenset)) else re.compile(names).fullmatch
    with os.scandir(folder) as entries:  # is_dir first: the entry's type, read with its name
        in_the_way = sorted(entry.path for entry in entries
                            if entry.is_dir(follow_symlinks=False) and named_so(entry.name))
    if in_the_way:
        raise UserError(f'{named}: {in_the_way[0]} is a folder, where a file is to be written; move it away')
