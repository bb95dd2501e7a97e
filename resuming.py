# What a resumed run (`train.py --resume PATH`) takes from its checkpoint, and what it refuses: the
# settings the command line leaves out, the run's own data files wherever the project has moved,
# the same split, the same run folder and the same schedule.
import argparse
import os
import sys

from checkpoint import changed_since_the_run, check_same_vocab, kept_as_old, path_as_trained, same_rows
from cli import UserError, counted, not_an_option, quoted_path, shell_quoted
from dataset import AttributesDataset
from runs import checkpoint_folder, left_unwritten, run_folder
from split_data import split_digest

# What a resumed run takes from its checkpoint where the command line does not give it: its recipe
# and its data, and how the data is fed (the tutorial's DataLoader draws each batch's augmentation
# in the worker that loads it, so the number of workers shapes the draws too). The rest (device,
# precision, ...) is about this machine, and comes from the command line and the defaults as in a
# new run.
RESUMED_SETTINGS = ('epochs', 'batch_size', 'lr', 'warmup_epochs', 'schedule', 'seed', 'pretrained',
                    'val_every', 'save_every', 'train_csv', 'val_csv', 'attributes_file', 'data', 'workers')
# Of those, the files: a relative path is from the folder the run started in.
DATA_FILES = ('train_csv', 'val_csv', 'attributes_file')
SPLIT_FILES = ('train_csv', 'val_csv')  # whose digests the checkpoint keeps
# Of those, what the run's learning-rate schedule and random draws were computed from.
FIXED_ON_RESUME = ('batch_size', 'lr', 'warmup_epochs', 'schedule', 'seed')
# Of those, what a resumed run may be given anew (the run's own files, from where they are now), by its flag.
GIVEN_ANEW_ON_RESUME = {'epochs': '--epochs', 'val_every': '--val-every', 'save_every': '--save-every',
                        'data': '--data', 'workers': '--workers', 'train_csv': '--train-csv',
                        'val_csv': '--val-csv', 'attributes_file': '--attributes_file'}


def finished_but_for_its_files(args, resume, path):
    """Whether the run, resumed with its own --epochs (given again or not), has done them all but a
    stop in the last one, after its last.pth, left that epoch's other files unwritten: it goes on
    to write them, and no epoch more (train.complete_resumed_epoch). Else its --resume was refused
    as done, for good."""
    if not args.epochs == resume['epoch'] == resume['args'].get('epochs'):
        return False
    left = left_unwritten(checkpoint_folder(path), resume, path)
    if left:
        print(f'note: the run in {path} has done all its {counted(args.epochs, "epoch")}, but a stop in the last one '
              'left some of its files unwritten: they are written, and no epoch more')
    return bool(left)


def resumed_args(argv, resume, path, parse_args, parser):
    """The settings of a run resumed from `resume`, the checkpoint at `path`; parse_args is
    train.py's, which reads argv with the run's `saved` settings standing in for those not given,
    and parser the one it builds (whose flags check the saved settings as they check the given)."""
    check_saved_settings(resume['args'], path, parser)
    default_checkpoints = parser.get_default('checkpoints')
    saved, gone = dict(resume['args']), {}
    for key in DATA_FILES:  # as the run had them, wherever this command runs
        if key in saved:
            saved[key], gone[key] = path_as_trained(resume['args'], key)
    args = parse_args(argv, saved)
    if not given(argv, '--logs') and isinstance(resume['args'].get('logs'), str):
        # TensorBoard's log goes on in the run's own (`--logs` of a new run is ./logs, from here: a run
        # started with another, or from another folder, went on in a log of its own there)
        args.logs, _ = path_as_trained(resume['args'], 'logs')
    take_the_runs_files(args, resume['args'], saved, gone, path)
    check_same_split(args, resume, path)
    saved['checkpoints'], saved['run_name'] = the_runs_names(resume['args'], path, default_checkpoints)
    check_same_folder(args, saved, path, default_checkpoints)
    if args.run_name is None or args.checkpoints == default_checkpoints:
        # Not both named: the run's as first named (those named lead to its folder, checked above), so
        # that the original command may still repeat them
        args.run_name, args.checkpoints = saved['run_name'], saved['checkpoints']
    for key in FIXED_ON_RESUME:
        if key in saved and getattr(args, key) != saved[key]:
            raise UserError(f'--{key.replace("_", "-")} {as_typed(getattr(args, key))}: the run in {path} trained '
                            f'with {as_typed(saved[key])}, and a resumed run keeps it; start a new run to change it')
    if args.pretrained and not saved.get('pretrained'):
        raise UserError(f'--pretrained: the run in {path} started from scratch, and a resumed run goes on from '
                        "its checkpoint's weights; leave --pretrained out")
    if args.epochs <= resume['epoch'] and not finished_but_for_its_files(args, resume, path):
        # First, a folder that holds later epochs of the run: no --epochs goes on from this one there
        run_folder(args, resume)
        done = f'the run in {path} has done {counted(resume["epoch"], "epoch")}'
        raise UserError((f'--epochs {args.epochs}: {done} already' if given(argv, '--epochs')
                         else f'{done}, all it was to train') + '; give a larger --epochs to train it further')
    note_other_draws(args, saved, path)
    return args


def flags_to_repeat(args, held):
    """The flags that carry a run's settings (args) on from a checkpoint that holds the settings
    `held`: those it was given beyond them. A run resumed with a larger --epochs, say, and stopped
    before it saved an epoch, goes on from the checkpoint it resumed, which holds the smaller."""
    flags = []
    for key, flag in GIVEN_ANEW_ON_RESUME.items():
        if key not in held or getattr(args, key) == held[key]:
            continue
        value = getattr(args, key)
        if key in DATA_FILES:
            if trained_on(args, {'args': held}, key):
                continue  # the run's own file, found from here as a resume finds it
            value = not_an_option(value)
        flags += [flag, value]
    return flags


def check_saved_settings(saved, path, parser):
    """The run's settings are train.py's, each of the kind of its flag's default (a number, a name,
    on or off), and one its flag takes: else one line here, not a KeyError, a TypeError or a
    ZeroDivisionError later on (a dict another program saved under a checkpoint's keys, or edited)."""
    flags = {action.dest: action for action in parser._actions}  # argparse lists them nowhere public
    for key in RESUMED_SETTINGS:
        default, value = parser.get_default(key), saved.get(key)
        kind, what = ((bool, 'on or off') if isinstance(default, bool) else (str, 'a name') if isinstance(default, str)
                      else ((int, float), 'a number'))
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise UserError(f'{path}: not a checkpoint written by train.py (its setting "{key}" is {value!r}, '
                            f'where train.py saves {what}); cannot resume from it')
        refused = refused_by_flag(flags[key], value)
        if refused:
            raise UserError(f'{path}: not a checkpoint written by train.py (its setting "{key}" is {value!r}, '
                            f'which its flag refuses: {refused}); cannot resume from it')


def refused_by_flag(action, value):
    """What a flag says of a value as if given on the command line (0 for --val-every, say), or None."""
    if action.choices is not None and value not in action.choices:
        return f'not one of {", ".join(map(str, action.choices))}'
    if action.type is None:
        return None
    try:
        taken = action.type(str(value))
    except argparse.ArgumentTypeError as error:
        return str(error)
    return None if taken == value else f'it reads as {taken!r}'


def note(text):
    # Once under torchrun: the settings are read before the process group is joined, so the rank
    # is torchrun's variable.
    if os.environ.get('RANK', '0') == '0':
        print(f'note: {text}')


def trained_on(args, resume, key):
    """Whether the file of args' `key` is the one the resumed run trained on, as named then or from here."""
    saved = resume['args'] if resume is not None else {}
    return key in saved and getattr(args, key) in (saved[key], path_as_trained(saved, key)[0])


def labels_of_the_run(args, resume):
    """The label names the run trains with: styles.csv's, the same as a resumed run's own. Where a
    resumed run's styles.csv is gone (the catalog moved, its pictures found through the CSVs as
    they are now), those its checkpoint keeps: they are all a resume takes from it."""
    if (resume is not None and resume.get('attributes') and trained_on(args, resume, 'attributes_file')
            and not os.path.exists(args.attributes_file)):
        note(f'{args.attributes_file}, which the run in {args.resume} took its label names from, is not there; '
             'they are taken from the checkpoint')
        return AttributesDataset(vocab=resume['attributes'])
    attributes = AttributesDataset(args.attributes_file)
    if resume is not None:
        check_same_vocab(attributes, resume, args.resume)
    return attributes


def given(argv, flag):
    """Whether the command line names flag, as `--flag VALUE` or `--flag=VALUE`."""
    return any(word == flag or word.startswith(flag + '=') for word in (sys.argv[1:] if argv is None else argv))


def note_other_draws(args, saved, path):
    """Another data path, or another number of the DataLoader's workers (each draws the
    augmentation of the batches it loads), is taken as asked, but not without a word."""
    changed = [key for key in ('data', 'workers') if key in saved and getattr(args, key) != saved[key]]
    if 'workers' in changed and 'loader' not in (args.data, saved.get('data')):
        changed.remove('workers')  # the in-memory path draws on the device, whoever decoded
    if changed:
        given = ' '.join(f'--{key} {getattr(args, key)}' for key in changed)
        was = ', '.join(f'{key} {saved[key]}' for key in changed)
        note(f'{given}: the run in {path} trained with {was}; from here on its augmentation draws are not '
             'those of an unbroken run')


def as_typed(value):
    """A setting as a person types it: --warmup-epochs 1, not the 1.0 it is parsed to; in full
    where 6 digits would not tell it apart (--lr 0.0010000001)."""
    if isinstance(value, float) and float(f'{value:g}') == value:
        return f'{value:g}'
    return value


def take_the_runs_files(args, original, resolved, gone, path):
    """The data files of a resumed run: the run's own, where the command line names none or
    repeats the original command's (`original`), as `resolved` from here by path_as_trained, which
    found them `gone` from the run's folder where the project moved."""
    for key, there in gone.items():
        if getattr(args, key) not in (resolved[key], original[key]):
            continue  # another file, given on this command line
        setattr(args, key, resolved[key])
        if there:
            note(f'{there}, which the run in {path} used, is not there; using {resolved[key]} from here')
    # The run's own files, from another folder: the checkpoint keeps them as the run named them,
    # from its folder, so that the project may still move (path_as_trained).
    own = [key for key in gone if getattr(args, key) == resolved[key] != original[key]]
    if own and all(key in own or os.path.isabs(getattr(args, key)) for key in gone):
        args.as_saved = dict({key: original[key] for key in own}, workdir=original['workdir'])


def check_same_split(args, resume, path):
    """The run's own train.csv and val.csv: where split_data.py has written them anew since, or
    another split is named while they are there, going on would train on other pictures, and
    validate on some the run has trained on."""
    for key in SPLIT_FILES:
        name = getattr(args, key)
        if changed_since_the_run(resume, key, name):  # the run's own file, however it is spelt
            if changed_since_the_run(resume, key, name, ordered=False):
                raise UserError(f'{name}: it holds other rows than when the run in {path} began (split_data.py '
                                'run again?); a resumed run goes on with the same split: '
                                + put_back_advice(args, resume))
            note(reordered(f'{name} holds the rows it held when the run in {path} began'))
        elif in_another_order(resume, key, name):  # another file, of the run's rows
            note(reordered(f'{name} holds the rows the run in {path} began with'))
        if another_split(resume, key, name):
            flag = '--' + key.replace('_', '-')
            raise UserError(f'{flag} {name}: it holds other rows than {path_as_trained(resume["args"], key)[0]}, '
                            f'which the run in {path} began with; a resumed run goes on with the same split (on '
                            f'another, validation would score pictures it has trained on): leave {flag} out, or '
                            'start a new run')
        if moved_with_other_rows(resume, key, name):
            note(f'{name} holds other rows than the run in {path} began with; it is used as named, but '
                 'validation may now score pictures the run trained on')


def put_back_advice(args, resume):
    """Where split_data.py kept the run's split beside the new one, the flags that name it."""
    kept = [kept_as_old(resume, key, getattr(args, key)) for key in SPLIT_FILES]
    if None in kept:
        return 'put it back, or start a new run'
    return (f'split_data.py kept it, so go on with --train-csv {quoted_path(kept[0])} '
            f'--val-csv {quoted_path(kept[1])}, or start a new run')


def comparable(resume, key, name):
    """Whether name is a file to compare with the run's `key` file, whose digest the checkpoint keeps."""
    return bool((resume.get('split_digests') or {}).get(key)) and key in resume['args'] and os.path.isfile(name)


def reordered(what):
    return (f'{what}, in another order (sorted in a spreadsheet?); the run goes on with them, but its batches are '
            'not those it would have drawn')


def in_another_order(resume, key, name):
    """Whether name is another file than the run's own (a copy, or where the run's own is gone), and
    holds its rows in another order."""
    if not comparable(resume, key, name):
        return False
    own = path_as_trained(resume['args'], key)[0]
    if os.path.isfile(own) and os.path.samefile(name, own):
        return False  # the run's own file: changed_since_the_run says
    return (same_rows(resume, key, name, ordered=False) and not same_rows(resume, key, name)
            and not as_the_runs_own(resume, key, own, name))


def another_split(resume, key, name):
    """Whether name is another file than the run's own, which is still there, and holds other rows."""
    if not comparable(resume, key, name):
        return False
    own = path_as_trained(resume['args'], key)[0]
    if not os.path.isfile(own) or os.path.samefile(name, own) or same_rows(resume, key, name, ordered=False):
        return False
    return not as_the_runs_own(resume, key, own, name)


def as_the_runs_own(resume, key, own, name):
    """Whether name holds what the run's own file `own` holds, in the same order, where that still
    holds the run's rows. Older checkpoints kept a digest of the paths as written, in which the same
    split made into another folder differs: there the pictures count."""
    return os.path.isfile(own) and same_rows(resume, key, own) and split_digest(own) == split_digest(name)


def moved_with_other_rows(resume, key, name):
    """Whether name is given where the run's own file is gone (moved, say), and holds other rows."""
    return (comparable(resume, key, name) and not os.path.exists(path_as_trained(resume['args'], key)[0])
            and not same_rows(resume, key, name, ordered=False))


def the_runs_names(saved, path, default_checkpoints):
    """--checkpoints and --run-name of the run that goes on from the checkpoint at `path`: as the
    run was named, where they lead to the checkpoint's folder (none, a name made from the clock), or
    those of the folder a branch goes on in (a checkpoint copied into another folder: of another
    name, or other/RUN/, or of a run named by the clock), which the original names do not lead to."""
    run_dir = checkpoint_folder(path)
    checkpoints, name = saved.get('checkpoints', default_checkpoints), saved.get('run_name')
    if name in (None, os.path.basename(run_dir)) and holds_the_folder(saved, checkpoints, run_dir):
        return checkpoints, name
    return os.path.dirname(run_dir), os.path.basename(run_dir)


def holds_the_folder(saved, checkpoints, run_dir):
    """Whether the run's --checkpoints, `checkpoints`, is run_dir's parent: as the run named it, from the
    folder it ran in, or the project moved, the same name from here (checkpoint.path_as_trained)."""
    if not isinstance(checkpoints, str):  # a setting edited by hand: the folder's own names
        return False
    there, _ = path_as_trained(dict(saved, checkpoints=checkpoints), 'checkpoints')
    return os.path.isdir(there) and os.path.samefile(there, os.path.dirname(run_dir))


def check_same_folder(args, saved, path, default_checkpoints):
    """A resumed run goes on in its checkpoint's folder: --run-name and --checkpoints may repeat
    the original command's, but not name another folder, which the run would not write to."""
    run_dir = checkpoint_folder(path)
    if args.run_name is None and args.checkpoints == default_checkpoints:
        return
    if (args.run_name, args.checkpoints) == (saved.get('run_name'), saved.get('checkpoints')):
        return  # the original command's, repeated (from another folder, maybe)
    # --run-name alone names a folder beside the checkpoint's, where the run's own name was refused
    # unless its --checkpoints was repeated too: joined to the default ./checkpoints
    checkpoints = os.path.dirname(run_dir) if args.checkpoints == default_checkpoints else args.checkpoints
    named = os.path.join(checkpoints, args.run_name or os.path.basename(run_dir))
    if os.path.realpath(named) != os.path.realpath(run_dir):
        flags = [f'--run-name {shell_quoted(args.run_name)}'] if args.run_name is not None else []
        if args.checkpoints != default_checkpoints:
            flags.append(f'--checkpoints {quoted_path(args.checkpoints)}')
        raise UserError(f'{" ".join(flags)}: the run folder named is {named}, but a resumed run goes on in its '
                        f'checkpoint\'s folder, {run_dir}: leave {"them" if len(flags) > 1 else "it"} out to go on '
                        'there; to branch off, copy the checkpoint into a folder of its own and resume from there')
