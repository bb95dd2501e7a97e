# A run's folder in --checkpoints: a new one (named by --run-name or by the clock), or a resumed
# checkpoint's. Checked before the pictures are loaded, then claimed (locked for as long as the
# run lives) and checked again, so that no run ever writes over another's epochs.
import contextlib
import csv
import fcntl
import importlib.util
import json
import os
import re
from datetime import datetime

from atomic import (absolute_path, atomic_open, check_no_folder_in_the_way, check_writable_folder, json_object,
                    remove_left_temporaries)
from PIL import Image

from catalog import UNREADABLE
from checkpoint import checkpoint_load, checkpoint_save
from cli import UserError, quoted_path, shown_path
from plots import history_digest, png_text


def saved_run(path):
    """The checkpoint at path, or None where it cannot be read: nothing there to keep."""
    try:
        return checkpoint_load(path)
    except UserError:
        return None


# What a run's finished epochs leave; args.json alone is a run killed in its first epoch.
EPOCH_FILES = r'metrics\.csv|curves\.png|best\.pth|checkpoint-\d+\.pth'


class FolderTaken(UserError):
    """The run folder holds another run, or another train.py is training in it."""


def refuse_a_run_in(run_dir):
    """A new run never writes over another's epochs: its checkpoints or metrics.csv."""
    last = os.path.join(run_dir, 'last.pth')
    if os.path.exists(last) and not os.path.isdir(last):  # a folder of that name: refused as in the way
        raise FolderTaken(f'{run_dir} holds a run already; carry it on with --resume {quoted_path(last)}, '
                          'or give another --run-name')
    if not os.path.isdir(run_dir):
        return
    with os.scandir(run_dir) as entries:  # files: a folder of such a name is refused as in the way
        kept = sorted(entry.name for entry in entries if re.fullmatch(EPOCH_FILES, entry.name) and entry.is_file())
    if kept:
        raise FolderTaken(f'{run_dir} holds a run already ({", ".join(kept)}, but no last.pth to resume from); '
                          'give another --run-name, or move those files away')
    settings = os.path.join(run_dir, 'args.json')
    if os.path.isfile(settings) and not run_settings(settings):
        raise FolderTaken(f'{settings}: holds no settings of a train.py run, and would be replaced; '
                          'give another --run-name, or move it away')


def run_settings(path):
    """Whether the file at path is an args.json that train.py wrote: a new run replaces one a run
    killed in its first epoch left, but not a file of the user's of that name."""
    settings = json_object(path)
    return settings is not None and {'epochs', 'batch_size', 'workdir'} <= settings.keys()


def refuse_a_run_that_saved_no_epoch(path):
    """--resume of a run's last.pth, or of its folder, where the run saved no epoch: one killed in its
    first epoch (a kill -9, a power cut, which leave nothing to clean up after, as a Ctrl-C does:
    train.remove_unsaved_run) left its folder with its args.json alone, or one is in it still. Said
    as such, not as 'no such checkpoint file' beside the run's args.json, as if the path were mistyped."""
    if os.path.isdir(path):
        folder, what = path, 'a folder, not a checkpoint file'
    elif not os.path.lexists(path):
        folder, what = os.path.dirname(path) or os.curdir, 'no such checkpoint file'
    else:
        return
    if not (os.path.isdir(folder) and run_settings(os.path.join(folder, 'args.json'))):
        return
    with os.scandir(folder) as entries:  # an epoch's files: the folder's own messages name them
        if any(re.fullmatch(RUN_FILES, entry.name) and entry.name != 'args.json' for entry in entries):
            return
    folder = os.path.normpath(folder)
    if in_training(folder):
        raise UserError(f'{path}: {what}: the run in {folder} is still in its first epoch (another train.py is '
                        'training in it); resume it once it has saved one, if it stops')
    parent, name = os.path.split(os.path.abspath(folder))
    raise UserError(f'{path}: {what}: the run in {folder} stopped before it saved its first epoch (killed, say; its '
                    'folder holds its args.json but no checkpoint), so there is nothing to resume. Start it anew '
                    f'without --resume (its settings are in {os.path.join(folder, "args.json")}); --checkpoints '
                    f'{quoted_path(shown_path(parent))} --run-name {quoted_path(name)} starts it in that folder again')


def in_training(run_dir):
    """Whether a train.py holds run_dir locked, as it does for as long as it runs (claim_run_folder)."""
    try:
        folder = os.open(run_dir, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(folder, fcntl.LOCK_SH | fcntl.LOCK_NB)  # let go of at once, with the descriptor
    except BlockingIOError:
        return True
    except OSError:  # a file system without locks (NFS without lockd, say): no run can be told to be there
        return False
    finally:
        os.close(folder)
    return False


def refuse_later_epochs(run_dir, args, resume):
    """Going on from the checkpoint never writes over later epochs of the run in its folder."""
    last = os.path.join(run_dir, 'last.pth')
    state = saved_run(last) if os.path.exists(last) else None
    later = (state['epoch'] or 0) if state else 0
    if later <= resume['epoch']:
        if state and not of_the_same_run(state, resume):  # another run's checkpoint copied in, say
            raise UserError(f'--resume {args.resume}: its folder holds another run (last.pth, epoch {later}, with '
                            'other figures), which going on from it would write over; copy the checkpoint into a '
                            'folder of its own and resume from there')
        return
    if os.path.samefile(last, args.resume):
        raise UserError(f'--resume {args.resume}: another train.py carried the run on to epoch {later} '
                        f'since this one loaded it at epoch {resume["epoch"]}; run the command again to go on '
                        'from there')
    raise UserError(f'--resume {args.resume}: its folder holds the run up to epoch {later} (last.pth), '
                    f'which going on from epoch {resume["epoch"]} would write over; to branch off, '
                    'copy the checkpoint into a folder of its own and resume from there')


def refuse_files_of_another_run(run_dir, args, resume):
    """Going on in the checkpoint's folder writes best.pth, the numbered checkpoints of later
    epochs, metrics.csv and curves.png anew: those there must be the run's own, not another run's
    that the checkpoint was copied in beside, nor the user's. A file that cannot be read as a
    checkpoint holds nothing to keep; curves.png counts as the run's beside its metrics.csv, or where
    it shows the checkpoint's own figures, of its epochs at most (curves_of_its_epochs)."""
    def refuse(name, what):
        raise UserError(f'--resume {args.resume}: its folder holds {name}, {what}, which going on would write '
                        'over; copy the checkpoint into a folder of its own and resume from there')

    with os.scandir(run_dir) as entries:
        names = sorted(entry.name for entry in entries if entry.is_file())
    for name in names:
        numbered = re.fullmatch(r'checkpoint-(\d+)\.pth', name)
        if name == 'best.pth' or numbered and int(numbered[1]) > resume['epoch']:
            state = saved_run(os.path.join(run_dir, name))
            if state and not of_the_same_run(state, resume):
                later = of_the_same_run(resume, state)  # the run's history goes on in it
                refuse(name, f'epoch {state["epoch"] or 0} of {"this run, a later one" if later else "another run"}')
    problem = 'metrics.csv' in names and metrics_problem(os.path.join(run_dir, 'metrics.csv'), resume['history'])
    if problem:
        refuse('metrics.csv', problem)
    if 'curves.png' in names and 'metrics.csv' not in names and not curves_of_its_epochs(run_dir, resume):
        refuse('curves.png', 'but no metrics.csv of the run')
    settings = os.path.join(run_dir, 'args.json')
    if 'args.json' in names and not run_settings(settings):
        refuse('args.json', 'which holds no settings of a train.py run')


def curves_of_its_epochs(run_dir, resume):
    """Whether the run folder's curves.png is the run's own, of no epoch past the checkpoint's (its
    metrics.csv removed since, say, which the resumed run writes again: refused, it could not): the
    digest of the figures it drew is that of the checkpoint's first epochs. Another run's of as
    many epochs, copied in beside the checkpoint, or one drawn before the digest, is not."""
    path = os.path.join(run_dir, 'curves.png')
    epoch = curves_epoch(path)
    return epoch is not None and epoch <= resume['epoch'] and \
        png_text(path, 'History') == history_digest(resume['history'][:epoch])


def metric_text(value):
    """A figure of a run's history as metrics.csv holds it."""
    if value is None:  # as the csv module writes it
        return ''
    return f'{value:.6g}' if isinstance(value, float) else str(value)


def metrics_problem(path, history):
    """Why the metrics.csv at path is not train.py's of the first epochs of history (or of all), in
    words for a message; None where it is."""
    rows, columns = metric_rows(path)
    if rows is None or not {'epoch', 'train_loss'} <= set(columns):
        return 'which is not a train.py run\'s'
    if len(rows) > len(history):
        return f'of {len(rows)} epochs, more than the checkpoint\'s {len(history)}'
    if any(row[key] != metric_text(value) for row, epoch in zip(rows, history) for key, value in epoch.items()
           if key in row):
        return 'with the figures of another run'
    return None


def of_the_same_run(state, resume):
    """Whether a run's epochs in state are those resume began with: the figures of each epoch are
    the same floats only in checkpoints of one run. Compared as text, where a NaN is one."""
    history = state.get('history')
    return isinstance(history, list) and repr(history) == repr(resume['history'][:len(history)])


def run_folder(args, resume):
    """The run's folder: the resumed checkpoint's, or a new one in --checkpoints. Never one whose
    later epochs the run would write over."""
    if resume is None and not args.run_name:
        return unused_folder(os.path.join(args.checkpoints, datetime.now().strftime('%Y-%m-%d_%H-%M-%S')))
    if resume is None:
        run_dir = os.path.join(args.checkpoints, args.run_name)
        refuse_a_run_in(run_dir)
        return run_dir
    run_dir = checkpoint_folder(args.resume)
    last = os.path.join(run_dir, 'last.pth')
    if not (os.path.exists(last) and os.path.samefile(last, args.resume)):  # that one was just loaded
        refuse_later_epochs(run_dir, args, resume)
    refuse_files_of_another_run(run_dir, args, resume)
    return run_dir


def unused_folder(path):
    """A folder named by the clock (no --run-name): path, or where a run started in the same
    second has it, the first of path_2, path_3, ... that is not there yet."""
    path, number = re.sub(r'_\d+$', '', path), 1  # the clock's name ends in _HH-MM-SS
    candidate = path
    while os.path.lexists(candidate):
        number += 1
        candidate = f'{path}_{number}'
    return candidate


def checkpoint_folder(path):
    """The folder a resumed run goes on in: its checkpoint's. A link to a run's last.pth (say
    latest.pth, elsewhere) leads to that run, which goes on; a link to any other checkpoint stands
    in for a copy of it (of a checkpoint on a disk of a team's, say), and the run goes on beside it."""
    if os.path.islink(path) and os.path.basename(os.path.realpath(path)) == 'last.pth':
        return os.path.dirname(os.path.realpath(path))
    return os.path.dirname(absolute_path(path))


def check_run_folder(run_dir, args, resume, named=None):
    """The run folder can be written in, or the flags that named it are named (or `named`: demo.py's
    --work, which gives train.py its --checkpoints)."""
    if resume is None:
        named = named or f'--checkpoints {args.checkpoints}' + (f' --run-name {args.run_name}' if args.run_name else '')
        check_writable_folder(run_dir, named)
        check_no_folder_in_the_way(run_dir, RUN_FILES, named)
        return
    try:
        check_writable_folder(run_dir, f'--resume {args.resume}')
        check_no_folder_in_the_way(run_dir, RUN_FILES, f'--resume {args.resume}')
    except UserError as error:  # a run on a read-only disk, say, or of another user's
        raise UserError(f'{error}; to go on elsewhere, copy the checkpoint into a folder of its own and resume '
                        'from there') from error


def claim_run_folder(run_dir, resume):
    """Makes the run folder and locks it for as long as this process lives, however it ends: a
    second train.py writing into it (the same --run-name started twice, before the first has
    saved an epoch) is refused. Returns what release_run_folder takes."""
    os.makedirs(run_dir, exist_ok=True)
    folder = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(folder)
        raise FolderTaken(f'{run_dir}: another train.py is training in it; '
                          + ('wait for it to end' if resume else 'give another --run-name')) from None
    except OSError as error:  # a file system without locks (NFS without lockd, say): run unlocked
        print(f'note: {run_dir} cannot be locked ({error.strerror}); two runs started in it at once '
              'would not be told apart')
        return folder
    remove_half_written(run_dir)
    return folder


# The files train.py writes in a run folder, each atomically (atomic.py).
RUN_FILES = r'args\.json|metrics\.csv|curves\.png|last\.pth|best\.pth|checkpoint-\d+\.pth'


def remove_half_written(run_dir):
    """With the folder locked no other train.py writes in it, and this one has not begun to: a
    temporary file of one there was left half-written by a kill -9 or a power cut, and would stay
    (a checkpoint: 28 MiB) for good."""
    remove_left_temporaries(run_dir, RUN_FILES, 'train.py', locked=True)


def start_in_folder(run_dir, args, resume, settings):
    """Claims the run folder, writes what the run starts with there (args.json: `settings`, as
    saved_args gives them, the same as in every checkpoint) and opens its TensorBoard
    log; returns the folder, the claim and the log's writer (None without tensorboard). A folder
    named by the clock that a run started in the same second took meanwhile gives way to the next
    free name: the user named none, and cannot give another."""
    while True:
        try:
            return run_dir, *started_in(run_dir, args, resume, settings)
        except FolderTaken:
            if args.run_name or resume is not None:
                raise
            run_dir = unused_folder(run_dir)


def started_in(run_dir, args, resume, settings):
    claimed, wrote = claim_run_folder(run_dir, resume), False
    try:
        # Again, with the folder locked: a run that ended since the first look (minutes ago,
        # before the pictures were loaded) left its epochs, a new one or one resumed meanwhile.
        if resume is None:
            refuse_a_run_in(run_dir)
        else:
            refuse_later_epochs(run_dir, args, resume)
            refuse_files_of_another_run(run_dir, args, resume)
        with atomic_open(os.path.join(run_dir, 'args.json'), encoding='utf-8') as f:
            json.dump(settings, f, indent=2)
        wrote = True
        if resume is not None:
            keep_best_of_resumed(run_dir, resume, args.resume)
        return claimed, tensorboard_writer(args, run_dir, resume)
    except BaseException:
        if wrote and resume is not None:  # a Ctrl-C as it copied best.pth, say: the folder still held
            put_back_settings(run_dir, resume, settings)
        release_run_folder(claimed)  # for a caller in this process that tries again
        raise


def put_back_settings(run_dir, resume, settings):
    """A resumed run that ended before it saved an epoch (a Ctrl-C, an error): its folder's args.json
    as the checkpoint it resumed holds them. It kept those given anew (--epochs 8 of a run of 4),
    which no checkpoint held, and a plain --resume then refused the run as done. The folder's names
    are the run's, `settings` (saved_args): a branch's own, not those of the run it came from."""
    with atomic_open(os.path.join(run_dir, 'args.json'), encoding='utf-8') as f:
        json.dump(dict(resume['args'], checkpoints=settings['checkpoints'], run_name=settings['run_name']), f,
                  indent=2)


def release_run_folder(folder):
    if folder is not None:  # None: a process other than the main one, which claims nothing
        os.close(folder)  # the lock goes with it


def keep_best_of_resumed(run_dir, resume, path):
    """A run resumed in a folder without its best.pth (a branch copied into a folder of its own):
    the resumed checkpoint is the best so far when its own epoch was, else the best is elsewhere.
    (One an epoch behind: train.complete_resumed_epoch.)"""
    best_path, best_epoch = os.path.join(run_dir, 'best.pth'), resume['best'].get('epoch', 0)
    if os.path.exists(best_path) or not best_epoch:
        return
    if best_epoch == resume['epoch']:
        checkpoint_save(best_path, resume)
        print(f'copied {path} to {best_path}: its epoch {best_epoch} is the best so far')
    else:
        print(f'note: the best epoch so far, {best_epoch}, is not in {run_dir}; best.pth is written there '
              'when a later epoch beats it')


def left_unwritten(run_dir, resume, path):
    """The files of the epoch of the run's last.pth, resumed from path, that are not in run_dir as
    its run writes them. last.pth is written first (train.save_epoch): a stop after it (a kill -9, a
    power cut) left best.pth at an earlier epoch, the epoch's numbered checkpoint unwritten,
    metrics.csv a row short, or curves.png an epoch behind. The next epoch writes the last two
    again, but not the first two; and a run so stopped in its last epoch has no next one. (A branch,
    another checkpoint copied into a folder of its own, is no stopped run: keep_best_of_resumed.)"""
    last = os.path.join(run_dir, 'last.pth')
    if not (os.path.exists(last) and os.path.samefile(last, path)):
        return []
    epoch, settings = resume['epoch'], resume['args']
    left = []
    best = os.path.join(run_dir, 'best.pth')
    if resume['best'].get('epoch') == epoch and os.path.exists(best):
        state = saved_run(best)  # refuse_files_of_another_run: one of this run, or nothing to keep
        if state is None or state.get('epoch') != epoch:
            left.append('best.pth')
    if epoch % settings.get('save_every', 25) == 0 or epoch == settings.get('epochs'):
        numbered = f'checkpoint-{epoch:06d}.pth'
        if not os.path.exists(os.path.join(run_dir, numbered)):
            left.append(numbered)
    if len(metric_rows(os.path.join(run_dir, 'metrics.csv'))[0] or ()) < len(resume['history']):
        left.append('metrics.csv')
    curves = os.path.join(run_dir, 'curves.png')
    plotted = resume['history'][-1].get('val_loss') is not None or epoch == settings.get('epochs')  # train.plot_now
    if plotted and (not os.path.exists(curves) or curves_epoch(curves) not in (epoch, None)):
        left.append('curves.png')
    return left


def curves_epoch(path):
    """The last epoch the curves at path show, as plots.plot_curves writes it into the file; None
    where the file says none (drawn before it did) or cannot be read."""
    try:
        with Image.open(path, formats=['PNG']) as img:
            return int(img.info['Epoch'])
    except (*UNREADABLE, KeyError):
        return None


def metric_rows(path):
    """The rows of the metrics.csv at path and its columns; (None, ()) where it cannot be read."""
    try:
        with open(path, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f)
            return list(reader), reader.fieldnames or ()
    except (OSError, UnicodeDecodeError, csv.Error):
        return None, ()


def tensorboard_installed():
    # train.py writes in --logs only then (tensorboard_writer): without it, a file there is in no one's way
    return importlib.util.find_spec('tensorboard') is not None


def check_log_folder(args, run_dir, resume, named=None):
    """Before the pictures are loaded: TensorBoard's folder, where it will be written, can be, and
    for a new run holds no other run's logs: by the same --run-name in other --checkpoints, or
    after its folder was removed, the new run's were written beside them, and TensorBoard showed
    the two as one run, two values an epoch. A resumed run adds to its own."""
    if not tensorboard_installed():
        return
    named = named or f'--logs {args.logs}'
    check_writable_folder(args.logs, named)
    logs = os.path.join(args.logs, os.path.basename(run_dir))
    if resume is None and os.path.isdir(logs) and any(name.startswith('events.out.tfevents')
                                                      for name in os.listdir(logs)):
        raise UserError(f'{named}: {logs} holds the TensorBoard logs of another run by that name, which '
                        'this one would be mixed into; give another --run-name or --logs, or move them away')
    owner = log_owner(logs)
    if resume is not None and owner is not None and owner != os.path.realpath(run_dir) and os.path.isdir(owner):
        # A branch, its checkpoint copied into a folder of the run's name: it logs its history anew
        # (purge_step), which hid the run's own figures in TensorBoard. A run moved goes on in its log.
        raise UserError(f'{named}: {logs} holds the TensorBoard logs of the run in {owner}, which this one, in '
                        f'{run_dir}, would hide under its own; give it --logs of its own')


LOG_OWNER = 'run_folder.txt'  # in a run's TensorBoard folder, which reads only its events files


def log_owner(logs):
    """The run folder (its real path) whose TensorBoard log is in logs, as it wrote it, or None."""
    try:
        with open(os.path.join(logs, LOG_OWNER), encoding='utf-8') as f:
            return f.read().strip() or None
    except (OSError, UnicodeDecodeError):  # none there, a log of before it was written
        return None


def tensorboard_writer(args, run_dir, resume=None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional, as in the original
        return None
    folder = os.path.join(args.logs, os.path.basename(run_dir))
    if resume is None:
        before = set(os.listdir(folder)) if os.path.isdir(folder) else None  # None: the writer makes it
        writer = SummaryWriter(folder)
        writer.started_over = folder, before  # for remove_unsaved_log
        write_log_owner(folder, run_dir)
        return writer
    # A resumed run's log is its history, logged anew: the one before may lack the epochs of its last
    # two minutes (the writer writes them out that often, and a kill -9 lost them), or hold an epoch
    # twice (logged before its last.pth was written, and again by the resumed run). TensorBoard hides
    # whatever was logged before purge_step at that step or later.
    writer = SummaryWriter(folder, purge_step=1)
    write_log_owner(folder, run_dir)  # a run moved: its new folder
    for row in resume['history']:
        log_epoch(writer, row)
    return writer


def write_log_owner(folder, run_dir):
    os.makedirs(folder, exist_ok=True)  # as SummaryWriter makes it
    with atomic_open(os.path.join(folder, LOG_OWNER), encoding='utf-8') as f:
        f.write(os.path.realpath(run_dir) + '\n')


def remove_unsaved_log(writer):
    """A new run's TensorBoard log, where the run saved no epoch (train.remove_unsaved_run): left,
    it had the run's name taken again refused as another run's, whose logs it would mix into. The
    files the writer made go, and its folder where it made it."""
    if writer is None:
        return
    folder, before = writer.started_over
    with contextlib.suppress(OSError):
        for name in set(os.listdir(folder)) - (before or set()):
            os.remove(os.path.join(folder, name))
        if before is None:
            os.rmdir(folder)


def log_epoch(writer, row):
    for key, value in row.items():
        if value is not None:  # a figure of an epoch not validated, as a checkpoint's history may hold it
            writer.add_scalar(key, value, row['epoch'])


def saved_args(args):
    # With the folder train.py runs in: the CSV paths are as given, maybe relative to it, and
    # --resume and test.py find them from wherever they are run (checkpoint.path_as_trained).
    settings = {k: v for k, v in vars(args).items() if k not in ('debug', 'as_saved')}
    return {**settings, 'workdir': os.getcwd(), **getattr(args, 'as_saved', {})}
