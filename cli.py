# What every script shares on the command line: one-line errors instead of tracebacks, a quiet
# exit on Ctrl-C, argparse types that reject out-of-range flags, and picking the device.
import argparse
import atexit
import codecs
import contextlib
import errno
import gc
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import stat
import sys
import threading

# Windows lacks what a stop and the files rely on here (SIGHUP, forked workers, fcntl's file locks):
# said in one line, before the first of them is needed below, and not as a traceback from it.
if sys.platform == 'win32':
    sys.stderr.write('error: this project runs on Linux and macOS, not on Windows itself; on Windows, '
                     'run it in WSL (https://learn.microsoft.com/windows/wsl/install)\n')
    sys.exit(2)


class UserError(Exception):
    """A problem the user can fix (a file, a row, a flag): printed as one line, exit status 2."""


def quiet_ctrl_c_while_starting(run_as='__main__'):
    # Called by each script before its imports: PyTorch's takes 2 to 14 s, and a Ctrl-C in it
    # would print a traceback from inside Python's import machinery, since run_cli cannot catch
    # it yet. Until run_cli takes over, a Ctrl-C ends the process at once with one line: nothing
    # has been written yet. os._exit and not an exception, which the import of a C extension can
    # turn into an ImportError. A SIGTERM or a SIGHUP, which would end it without a word, says
    # so the same way. A signal the shell set to be ignored (`nohup`, `cmd &` in a script) stays
    # ignored, and --debug keeps Python's own traceback.
    if debugging():
        return
    if run_as == '__mp_main__':  # the script's __name__ in a worker started anew (spawned, as on macOS)
        leave_stops_to_the_main_process_while_starting()
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _exit_while_starting)
    for number in STOPPING:
        if signal.getsignal(number) is signal.SIG_DFL:
            signal.signal(number, _exit_while_starting)


def leave_stops_to_the_main_process_while_starting():
    # A worker started anew (spawned: macOS's way; ours are forked on Linux) runs its parent's
    # script first, as '__mp_main__', importing what it imports, and only then the work it was
    # started for: a DataLoader's or a process pool's. A Ctrl-C reaches every process of the
    # terminal's group, as `timeout`'s SIGTERM does: one that reached a worker as it imported
    # PyTorch (seconds) printed its KeyboardInterrupt traceback, or, a SIGTERM, ended it as the
    # system does, and the main process then stopped with the DataLoader's RuntimeError or a broken
    # process pool, not the stop. The main process takes the stop and ends its workers; a worker's
    # initializer then says how it takes the next one (leave_stops_to_the_main_process).
    for number in (signal.SIGINT, *STOPPING):
        if signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _left_to_the_main_process)


def _left_to_the_main_process(signum, frame):
    pass


def check_working_folder():
    """Called by each script that imports PyTorch, before it does: in a working folder deleted since
    the shell went into it (`rm -rf` of it from another shell), `import torch` dies inside Intel's
    MKL with "oneMKL FATAL ERROR: Cannot load .../libtorch_cpu.so", which names the wrong problem."""
    gone = deleted_working_folder()
    if gone:
        exit_with_error(f'{gone}: deleted since the shell went into it, and PyTorch cannot start in a deleted '
                        'folder; cd into a folder that exists')


def _exit_while_starting(signum, frame):
    words = stopped_words(signum)
    try:  # after a SIGHUP the terminal is gone, and the words with it (EIO): print_if_possible
        if os.environ.get('LOCAL_RANK', '0') == '0':  # torchrun's other processes of a machine stop quietly
            print_if_possible(f'\n{words} while starting; nothing was written', sys.stderr)
    finally:
        remove_folder_made_by_importing_pytorch()
        os._exit(128 + signum)  # the status a shell reports for the signal: 130 for a Ctrl-C


def remove_folder_made_by_importing_pytorch():
    """Before os._exit, which runs no exit handler: PyTorch 2.6 makes a folder in TMPDIR as
    torchvision imports torch.distributed.nn, and only an exit handler removes it (later versions
    make none)."""
    made = getattr(sys.modules.get('torch.distributed.nn.jit.instantiator'), '_TEMP_DIR', None)
    if made is not None:
        shutil.rmtree(made.name, ignore_errors=True)


class Terminated(KeyboardInterrupt):
    """A SIGTERM (`kill`, `timeout`, a cluster's scheduler ending the job) or a SIGHUP (the
    terminal closed: an ssh connection dropped, its window shut), once run_cli runs: it stops a
    script as a Ctrl-C does, the files being written finished or left as they were. Left to the
    system, either would end the process where it stands: train.py's last epoch, queued to be
    saved, lost, a temporary file left beside its output, and no word of either."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


STOPPING = (signal.SIGTERM, signal.SIGHUP)  # the signals that stop a script as a Ctrl-C does


# Python's import machinery, by its modules' names before `import importlib` renames them and after
IMPORT_MACHINERY = ('_frozen_importlib', '_frozen_importlib_external', 'importlib._bootstrap',
                    'importlib._bootstrap_external')


def _terminate(signum, frame):
    # Not raised inside Python's import machinery, which drops an exception raised in its callbacks
    # (`Exception ignored in: <function _get_module_lock.<locals>.cb>` and a traceback, the stop
    # lost: 1 in 30 SIGTERMs to test.py's group as its processes drew the figures, one of which drew
    # on until test.py ended it) or leaves a module half-imported: the signal is sent again a moment
    # later, by when the import is done.
    if running_in(frame, IMPORT_MACHINERY) and sent_again_shortly(signum):
        return
    raise Terminated(signum)


RETRY_STOP_SECONDS = 0.01


def running_in(frame, modules):
    """Whether a signal handler's frame, or one it was called from, runs code of one of modules."""
    while frame is not None:
        if frame.f_globals.get('__name__') in modules:
            return True
        frame = frame.f_back
    return False


def sent_again_shortly(signum):
    """Sends signum to this process again in a moment, from a thread; False where none can start
    (Python ending)."""
    try:
        threading.Timer(RETRY_STOP_SECONDS, os.kill, (os.getpid(), signum)).start()
    except RuntimeError:
        return False
    return True


def how_stopped(stop):
    """A Ctrl-C's, a SIGTERM's or a SIGHUP's words for the user, and the exit status a shell
    reports for it (128 and the signal's number)."""
    signum = stop.signum if isinstance(stop, Terminated) else signal.SIGINT
    return stopped_words(signum), 128 + signum


def stopped_words(signum):
    """What stopped a script, as every one says it: 'interrupted (Ctrl-C)', 'stopped by SIGTERM'."""
    return 'interrupted (Ctrl-C)' if signum == signal.SIGINT else f'stopped by {signal.Signals(signum).name}'


@contextlib.contextmanager
def stopping_signals_as_ctrl_c():
    # Not in another thread (where signal handlers cannot be set), nor for a signal that already
    # has a handler or is ignored (`nohup` ignores SIGHUP); the default is put back after.
    taken = []
    if threading.current_thread() is threading.main_thread():
        taken = [number for number in STOPPING if signal.getsignal(number) is signal.SIG_DFL]
    for number in taken:
        signal.signal(number, _terminate)
    try:
        yield
    finally:
        for number in taken:
            signal.signal(number, signal.SIG_DFL)


@contextlib.contextmanager
def stops_not_lost_in_callbacks():
    """Python drops an exception raised where nothing can catch it, in a weakref's callback or an
    object's __del__ (the garbage collector freeing a figure, a thread pool ending its threads),
    with "Exception ignored in" and a traceback: a Ctrl-C or a SIGTERM that landed there was lost,
    and train.py went on to its next epoch and ended with status 0 (5 of 11 stops sent 0.2 to 0.5 s
    after an epoch's last step). The signal is sent again a moment later (sent now, it would be
    raised in this hook, and dropped too), to land in the code that runs next; where the block ends
    first, the stop is raised as it ends, not sent after it to a script that has put back the
    system's handlers (or to the tests that ran it)."""
    passed_on, lock, pending = sys.unraisablehook, threading.Lock(), []

    def send_again(stop):
        with lock:
            sending = stop in pending
            if sending:
                pending.remove(stop)
        if sending:  # not under the lock: raised while the hook waits for it, it would be dropped there
            os.kill(os.getpid(), stop.signum if isinstance(stop, Terminated) else signal.SIGINT)

    def resent_if_a_stop(unraisable):
        stop = unraisable.exc_value
        if not isinstance(stop, KeyboardInterrupt):
            passed_on(unraisable)
            return
        with lock:
            pending.append(stop)
        try:
            threading.Timer(RETRY_STOP_SECONDS, send_again, (stop,)).start()
        except RuntimeError:  # Python ending: no thread starts; raised as the block ends
            pass

    sys.unraisablehook = resent_if_a_stop
    try:
        yield
    finally:
        sys.unraisablehook = passed_on
        with lock:
            left = pending[:1]
            pending.clear()
        if left:
            raise left[0]


@contextlib.contextmanager
def ctrl_c_held():
    """Holds a Ctrl-C (or a SIGTERM or SIGHUP run_cli stops on) back until the block ends, then
    raises it: for blocks that fork processes (a DataLoader's workers). Around a fork Python runs
    the handlers given to os.register_at_fork, and drops an exception raised in one with a
    warning: a Ctrl-C landing there would be lost, and in logging's, which releases a lock taken
    before the fork, it leaves that lock held for good, so the next thread to log (matplotlib,
    plotting in train.py's background saver) waits forever. The processes forked meanwhile inherit
    the holding handler: they leave a Ctrl-C to this one, which stops them. One ignored (nohup)
    stays so."""
    ours = {signal.SIGINT: signal.default_int_handler, **dict.fromkeys(STOPPING, _terminate)}
    on_main = threading.current_thread() is threading.main_thread()  # signal handlers are its alone
    raising = {number: handler for number, handler in ours.items() if on_main and signal.getsignal(number) is handler}
    held = []
    for number in raising:
        signal.signal(number, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for number, handler in raising.items():
            signal.signal(number, handler)
    if held:
        raise KeyboardInterrupt if held[0] == signal.SIGINT else Terminated(held[0])


@contextlib.contextmanager
def stops_blocked():
    """Blocks a Ctrl-C, a SIGTERM and a SIGHUP in the system while the block runs: one sent meanwhile
    waits, and is taken as the block ends. A process forked inside starts with them blocked, until
    obey_stops_again: sent to it before, it is taken then. Only held back (ctrl_c_held), one that
    reached it before Python had set it up after the fork, or then by the handler it inherited, was
    lost."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, *STOPPING))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def obey_stops_again():
    """In a process forked inside ctrl_c_held: a Ctrl-C, a SIGTERM or a SIGHUP stops it again, as
    KeyboardInterrupt, where the handler that held them back, inherited, would let it run on. One
    ignored (nohup) stays so. Forked inside stops_blocked too, one that came before is taken now."""
    for number, handler in ((signal.SIGINT, signal.default_int_handler), *((n, _terminate) for n in STOPPING)):
        if signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, *STOPPING))


def leave_stops_to_the_main_process(worker_id):
    """A DataLoader's worker_init_fn: a SIGTERM or a SIGHUP ends the worker quietly, with status 0,
    leaving the stop to the main process. PyTorch's own handler does so only for its parent's
    SIGTERM, and lets any other kill the worker: one sent to the whole process group (`timeout`
    sends it so, a cluster's scheduler may, and the shell sends a SIGHUP to each job as its
    terminal closes) made the main process stop with the worker's RuntimeError, not the stop it was
    asked for. Ignored, a SIGTERM would hang the main process at its exit, where multiprocessing
    ends a worker still running with a SIGTERM and waits. A SIGHUP ignored (`nohup`) stays so."""
    signal.signal(signal.SIGTERM, _end_worker)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _end_worker)


def _end_worker(signum, frame):
    # At once, as PyTorch's own handler ends a worker, not by raising KeyboardInterrupt as before:
    # raised as a `with` took a lock, it left the lock taken, and the worker then waited for it for
    # good. Where that was the DataLoader's done_event, whose lock the worker takes every batch, the
    # main process waited for good too as it ended the workers (5 workers stuck in 1,350 SIGTERMs
    # under load, 3 of them with the main process; none in 1,800 now). Nor is the worker ended inside
    # multiprocessing's locks, which it shares with the main process: ended holding one, it would
    # leave the same wait. The signal is sent again a moment later, by when it has let go.
    if running_in(frame, ('multiprocessing.synchronize',)) and sent_again_shortly(signum):
        return
    os._exit(0)


def started(loader):
    """iter(loader), which forks a DataLoader's workers, with a Ctrl-C held back until they run."""
    with ctrl_c_held():
        return iter(loader)


def worker_processes(workers):
    """How our worker processes start (a DataLoader's multiprocessing_context, a process pool's
    mp_context): forked on Linux, where Python up to 3.13 forked them by default; None (no
    workers, or the platform's default elsewhere). Python 3.14 starts them from a fork server
    instead, and the way a Ctrl-C, a SIGTERM or a SIGHUP stops a run is built on forked workers
    (ctrl_c_held, leave_stops_to_the_main_process); a worker started there also imports PyTorch
    anew, where a forked one has it already, and `train.py --data loader` starts new ones every
    epoch."""
    if workers == 0 or not sys.platform.startswith('linux'):
        return None
    return multiprocessing.get_context('fork')


def usable_cores():
    """The cores this process may run on: `taskset`, a container's cpuset or a cluster's job
    may hold it to fewer than the machine has, and os.cpu_count() counts them all."""
    if hasattr(os, 'sched_getaffinity'):  # Linux; macOS has no such limit to read
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


PROJECT = os.path.dirname(os.path.abspath(__file__))


def command(script, *args, runner=None):
    """`python SCRIPT ARGS` (or another runner's) as the user can paste it here, where the project's
    folder may not be the working one: the script then named by its path. Each part is quoted where
    the shell needs it."""
    path = os.path.join(PROJECT, script)
    try:
        if os.path.realpath(os.curdir) == os.path.realpath(PROJECT):
            path = script
    except FileNotFoundError:  # the working folder was deleted
        pass
    return ' '.join(map(shell_quoted, [*(runner or [this_python()]), shown_path(path), *map(str, args)]))


def this_python():
    """How the user starts the Python that runs this: `python` where that is the one (its virtual
    environment activated), else its path, `.venv/bin/python` say, as the README's commands run it
    without activating it. A plain `python` there would be another, without PyTorch."""
    return as_started('python', sys.executable)


def this_torchrun():
    """torchrun as this_python says python: the one beside this Python, which started this run."""
    beside = os.path.join(os.path.dirname(sys.executable), 'torchrun') if sys.executable else None
    return as_started('torchrun', beside if beside and os.path.exists(beside) else None)


def as_started(name, path):
    """name where the shell finds it in path's folder (or path is unknown), else path as shown."""
    if not path:
        return name
    path, on_path = os.path.abspath(path), shutil.which(name)
    if on_path and os.path.dirname(os.path.abspath(on_path)) == os.path.dirname(path):
        return name
    shown = shown_path(path)
    # 'python' alone, run from its own folder, is the one the shell finds on its PATH: maybe another
    return shown if os.sep in shown else os.path.join(os.curdir, shown)


def shown_path(path):
    """An absolute path as the user reads it best here: relative where it lies below the working
    folder, else whole. A path the user gave relative (./checkpoints/...) is shown as given."""
    if not os.path.isabs(path):
        return not_an_option(path)
    try:
        short = os.path.relpath(path)
    except (FileNotFoundError, ValueError):  # the working folder deleted; another drive (Windows)
        return path
    return path if short.startswith(os.pardir) else not_an_option(short)


def not_an_option(path):
    """A relative path as a command line takes it: one that starts with a dash (-runs/last.pth)
    would be read as a flag."""
    return os.path.join(os.curdir, path) if path.startswith('-') else path


def quoted_path(path):
    """A path in a command the user can paste: quoted where the shell needs it, never a flag."""
    return shell_quoted(not_an_option(path))


def shell_quoted(text):
    """text as one word of a command to paste, as shlex.quote has it, but where it holds a character
    no terminal shows (an escape sequence, a line break, a byte that is not UTF-8) in bash's $'...',
    which names it: \\x1b. shlex.quote's '...' passed the escape to the terminal, which ran it, and a
    `\\x1b` written in its place would name another file. zsh and ksh read $'...' too."""
    if text.isprintable():
        return shlex.quote(text)
    return "$'" + ''.join(map(_in_dollar_quotes, text)) + "'"


def _in_dollar_quotes(char):
    if char.isprintable():
        return '\\' + char if char in "\\'" else char
    if '\udc80' <= char <= '\udcff':  # a byte of a name that is not UTF-8, kept by Python as a surrogate
        return f'\\x{ord(char) - 0xdc00:02x}'
    code = ord(char)
    return f'\\x{code:02x}' if code < 0x80 else f'\\u{code:04x}' if code <= 0xffff else f'\\U{code:08x}'


def counted(count, noun):
    # '1 row', '2 rows': a count a person reads, not '1 rows' or '1 row(s)'.
    return f'{count:,} {noun}' + ('' if count == 1 else 's')


def first_few(names, sep=', '):
    """The first three names, and '...' where there are more: examples for a message (sep: between
    them, '; ' for names that hold commas)."""
    return sep.join(names[:3]) + (f'{sep}...' if len(names) > 3 else '')


LOG_REDRAW_SECONDS = 30
BARS_LOCK = threading.RLock()


def progress_bar(iterable=None, **kwargs):
    """tqdm's bar on stderr. On a terminal it is redrawn up to 10 times a second, as tqdm does;
    in a log file or a pipe (`nohup`, `> train.log 2>&1`, a cluster's job, CI) each redraw is a
    copy of the whole bar that stays in the file, so there it is redrawn every 30 s: at tqdm's own
    rate a 3-minute CPU epoch of the real data wrote 1,071 copies of train.py's bar (95 KB), now
    7. The first and the final state are drawn either way."""
    from tqdm import tqdm  # here: cli.py is imported before a Ctrl-C at start-up is caught (0.05 s)
    # Only this process draws bars, so a lock between its threads does. tqdm's own adds a
    # multiprocessing lock from Python's default context: under Python 3.14's fork server that
    # starts the resource tracker, which a SIGHUP to the process group kills, and a new one,
    # started at the exit, printed a traceback for every lock the first had tracked.
    tqdm.set_lock(BARS_LOCK)
    if not sys.stderr.isatty():
        # miniters=1: each step looks at the clock (50 ns). Left to tqdm, a bar of an iterable
        # counts steps between looks, and where the steps slow (a busy machine) its monitor thread
        # redraws the bar past maxinterval with the count of its last redraw: a log showed
        # `24/75 [00:30<01:05, 1.28s/batch]`, then `24/75 [01:03<01:05, 1.28s/batch]`.
        kwargs.setdefault('mininterval', LOG_REDRAW_SECONDS)
        kwargs.setdefault('maxinterval', LOG_REDRAW_SECONDS)
        kwargs.setdefault('miniters', 1)
    return tqdm(iterable, **kwargs)


def debugging():
    return '--debug' in sys.argv or os.environ.get('FASHION_DEBUG') == '1'


def _bytes_shown(error):
    """Codec error handler for the terminal: a name's bytes that are not UTF-8 (which Python keeps
    as surrogates) written as \\xNN, as shown() does; any other character a terminal's encoding
    lacks as \\xNN or \\uNNNN."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    odd = error.object[error.start:error.end]
    return ''.join(f'\\x{ord(char) - 0xdc00:02x}' if '\udc80' <= char <= '\udcff'
                   else char.encode('ascii', 'backslashreplace').decode() for char in odd), error.end


codecs.register_error('shown', _bytes_shown)


def as_printed(text):
    """text as print writes it to stdout, its encoding's escapes included: what a table pads to
    its columns."""
    encoding = getattr(sys.stdout, 'encoding', None) or 'utf-8'
    return text.encode(encoding, 'shown').decode(encoding)


def open_closed_standard_streams():
    # A script started with a standard stream closed (`2>&-`, `>&-`, `<&-`) gets /dev/null in its
    # place. Python leaves sys.stderr None there, on which tqdm's bar failed, and the run with it,
    # without a word (its error had nowhere to go): no split, no predictions, status 1. And a
    # closed stream's number goes to the next file opened, into which a library's C code writing
    # to its stderr (PyTorch's warnings, libtiff's) would then write: a checkpoint being saved,
    # say. sys.stdin stays None: `--files-from -` says stdin was closed.
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # takes the lowest free number: fd, those below it being open
    for fd, name in ((1, 'stdout'), (2, 'stderr')):
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, 'w', closefd=False))


class NamedOutput:
    """sys.stdout (or sys.stderr: `name`), whose failed writes name where it goes. A print to a
    full disk (`> log`, or `> /dev/full`) raised an OSError that names no file, which run_cli could
    show only as Python's traceback: now `error: log (the standard output): No space left on
    device`. The stream then goes to /dev/null: nothing more can be written to it, and Python's own
    flush at the exit would fail again on what its buffer still holds.

    files_first: the script's work is the files it writes (a split, an evaluation's results), its
    lines only a report: where their reader stops reading (`| head -1`) the rest of them go to
    /dev/null and the work goes on. Else the script stops there, quietly (run_cli)."""

    def __init__(self, stream, files_first=False, name='the standard output'):
        self.stream = stream
        self.files_first = files_first
        self.name = name

    def write(self, text):
        if self.name == 'the standard output':  # stderr's progress bars redraw with \r
            text = controls_shown(text)
        with self.named_in_errors():
            return self.stream.write(text)

    def flush(self):
        with self.named_in_errors():
            self.stream.flush()

    def __getattr__(self, name):  # the rest as the stream has it: fileno, isatty, encoding, reconfigure
        return getattr(self.stream, name)

    @contextlib.contextmanager
    def named_in_errors(self):
        try:
            yield
        except BrokenPipeError:
            if not self.files_first:
                raise  # run_cli stops quietly on it
            to_nowhere(self.stream)
        except OSError as error:
            if error.filename is None:
                target = where_it_goes(self.stream)
                error.filename = f'{target} ({self.name})' if target else self.name
                to_nowhere(self.stream)
            raise


def controls_shown(text):
    """A script's lines as the terminal is to show them: a character in a name that it would act on
    instead (an escape sequence, which can clear the screen or retitle the window; a \\r, which
    writes over the line) written as \\x1b, \\r. Line breaks and tabs are the lines' own. The
    scripts name the files they wrote in many lines (`wrote ... to DIR/val.csv`); one_line escapes
    a name in a message, this every line printed. Bytes not UTF-8 are left to the 'shown' errors."""
    if text.isprintable() or text == '\n':  # print's every line, but for a name's odd characters
        return text
    return ''.join(char if char.isprintable() or char in '\n\t' or '\udc80' <= char <= '\udcff'
                   else repr(char)[1:-1] for char in text)


def files_first_from_here():
    """run_cli's files_first from here on, for a script whose work is its files on some runs only
    (predict.py with --output): its notes and progress bar, before the files are written, could
    otherwise stop it where their reader stopped (`| head -1`, `2>&1 | head -1`). Outside run_cli
    (a test calling main) nothing changes."""
    if not isinstance(sys.stdout, NamedOutput):
        return
    sys.stdout.files_first = True
    if isinstance(sys.stderr, NamedOutput):
        sys.stderr.files_first = True
    else:  # run_cli puts the original back as it ends
        sys.stderr = NamedOutput(sys.stderr, True, 'the standard error')


def where_it_goes(stream):
    """The file a stream writes to, as the system names it (Linux); None where it has no name
    there: a pipe, a socket, another system."""
    try:
        target = os.readlink(f'/proc/self/fd/{stream.fileno()}')
    except (OSError, ValueError):  # no /proc (macOS); no file (pytest's capture)
        return None
    return shown_path(target) if os.path.isabs(target) else None  # not 'pipe:[123]'


def show_any_name_on_the_terminal():
    # Under a UTF-8 locale Python's stdout refuses those surrogates: a run that has written its
    # files would fail on the line that names them (`wrote ...`), and report an error.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, 'reconfigure'):  # a TextIOWrapper (pytest's capture is one too)
            stream.reconfigure(errors='shown')


def run_cli(main, workers_flag=None, memory_flag=None, files_first=False):
    # A traceback from deep inside PIL or PyTorch tells a user nothing; the message names the
    # file and the problem. --debug (or FASHION_DEBUG=1) shows the full traceback instead.
    # workers_flag: the script's flag for its DataLoader workers, named where one was killed;
    # memory_flag: the flag whose smaller value needs less memory, named where it ran out;
    # files_first: its files are written whether or not its lines are read to the end (NamedOutput).
    debug = debugging()
    open_closed_standard_streams()
    show_any_name_on_the_terminal()
    # At its exit a process that has loaded PyTorch spent 1.2 s (on 2 cores) in Python's last
    # garbage collections, over objects that go with the process anyway: frozen, they are left
    # out. It runs after the threads are joined and before the modules are cleared; whatever
    # is freed by its count of references (a file, a DataLoader's workers) still is.
    atexit.register(gc.freeze)
    if signal.getsignal(signal.SIGINT) is _exit_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a Ctrl-C from here on: below
    for number in STOPPING:  # as Python left them, for stopping_signals_as_ctrl_c to take
        if signal.getsignal(number) is _exit_while_starting:
            signal.signal(number, signal.SIG_DFL)
    output, errors = sys.stdout, sys.stderr
    sys.stdout = NamedOutput(sys.stdout, files_first)
    if files_first:  # its notes and progress bars as well: `2>&1 | head -1` stopped it before it wrote a file
        sys.stderr = NamedOutput(sys.stderr, files_first, 'the standard error')
    try:
        with stopping_signals_as_ctrl_c():
            run_reporting_errors(main, debug, workers_flag, memory_flag)
    finally:
        sys.stdout, sys.stderr = output, errors


def run_reporting_errors(main, debug, workers_flag, memory_flag=None):
    try:
        with stops_not_lost_in_callbacks():  # inside: a stop it raises as it ends is said below
            run_flushed(main)
    except UserError as error:
        if debug:
            raise
        leave_the_process_group()
        exit_with_error(error)
    except BrokenPipeError:
        # The program reading our output stopped (`| head`): stop quietly too, as command-line
        # tools do. stdout goes to /dev/null so that Python's own flush at exit fails no more.
        to_nowhere(sys.stdout)
        sys.exit(1)
    except OSError as error:
        # A file or folder the system refused (an output folder that cannot be made, no
        # permission, a full disk): its name and the reason, not the traceback around them.
        if not debug and out_of_memory(error):
            exit_with_error(f'out of memory: {error.strerror or error}; a smaller batch, or fewer workers, needs less')
        gone = None if debug or error.filename is not None else deleted_working_folder()
        if gone:  # os.getcwd(), for a relative path: an error that names no file
            exit_with_error(f'{gone}: {LEADS_NOWHERE}')
        if debug or error.filename is None:
            raise
        leave_the_process_group()
        exit_with_error(f'{error.filename}: {error.strerror or error}')
    except UnicodeEncodeError as error:
        # A file name that is not valid UTF-8 (Linux allows any bytes): Python keeps its odd bytes
        # as surrogates, which a UTF-8 CSV, JSON file or terminal cannot take.
        if debug or error.reason != 'surrogates not allowed':
            raise
        exit_with_error(f'{shown(error.object).strip()[:300]}: a file or folder name here is not valid UTF-8, which '
                        'the CSVs and the output are; rename it')
    except (RuntimeError, MemoryError) as error:
        if debug:
            raise
        if out_of_memory(error):  # a batch too large for the GPU or the machine, say
            exit_with_error(f'out of memory: {memory_words(error)}; '
                            + (f'a smaller {memory_flag}' if memory_flag else 'a smaller batch, or fewer pictures,')
                            + ' needs less')
        ended = worker_ended(error, workers_flag)
        if ended:
            exit_with_error(ended)
        # Under torchrun: a process whose peer ended (on an error it says, a Ctrl-C, a kill) fails
        # at its next exchange with it, in gloo's words and a traceback from inside torch.
        if not peer_ended(error):
            raise
        print_error(f'process {os.environ.get("RANK", "?")} stopped: another process of the run ended '
                    '(its own lines say why)')
        # The group left before Python's exit, as train.py leaves it where a peer ends during the
        # training (its comment says why): left to the exit, a process whose peer ended as they set
        # up (on a folder it could not use, say) at times aborted after this line, "terminate called
        # without an active exception" (4 runs in 40 on 2 cores).
        leave_the_process_group()
        sys.exit(1)
    except KeyboardInterrupt as stop:
        # Ctrl-C, SIGTERM or SIGHUP: a traceback would point at whatever line happened to be
        # running. Every file is written atomically (atomic.py), so none is left half-written, but
        # where a block said otherwise (if_stopped_say).
        if debug:
            raise
        words, status = how_stopped(stop)
        print_if_possible(f'\n{words}; {getattr(stop, "left", NOTHING_HALF_WRITTEN)}', sys.stderr)
        sys.exit(status)


def leave_the_process_group():
    """Under torchrun, at the end of a run, and before a process ends on an error met with the
    process group joined (the processes' steps an epoch that differ, say): left to Python's exit,
    gloo's threads were at times ended inside a C++ destructor as it finalized, "terminate called
    without an active exception" after the error's line, and the process aborted (SIGABRT in
    torchrun's table, not the error)."""
    dist = sys.modules.get('torch.distributed')
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    if gloo_freed_holding_the_gil(dist):
        keep_until_exit(dist.group.WORLD._get_backend(sys.modules['torch'].device('cpu')))
    dist.destroy_process_group()


# PyTorch 2.6 and 2.7 free a process group holding the GIL, and gloo's part of it joins its
# threads, one of which may still be letting go of the last exchange's tensors, for which it takes
# the GIL: the process hung as it ended, after its last line, at times on a busy machine (in
# destroy_process_group, or where DDP's reducer, which holds the group too, was freed as
# train.main returned). Gloo's part freed from its own Python object lets go of the GIL first: that
# object, kept until Python's exit, is then the last to hold it. 2.8 and later let go of the GIL
# themselves (PyTorch's pull request 154976).
def gloo_freed_holding_the_gil(dist):
    return sys.modules['torch'].__version__ < '2.8' and 'gloo' in dist.get_backend()


_KEPT_UNTIL_EXIT = []


def keep_until_exit(backend):
    if not _KEPT_UNTIL_EXIT:
        atexit.register(free_the_kept_backends)
    _KEPT_UNTIL_EXIT.append(backend)


def free_the_kept_backends():
    """At Python's exit, before it finalizes (threads can still take the GIL then)."""
    gc.collect()  # a DDP model left in a reference cycle, whose reducer holds the group
    _KEPT_UNTIL_EXIT.clear()


def deleted_working_folder():
    """'the working folder NAME' where it has been deleted (`rm -rf` of it from another shell), else None."""
    try:
        os.getcwd()
        return None
    except FileNotFoundError:
        try:
            return f"the working folder {os.readlink('/proc/self/cwd').removesuffix(' (deleted)')}"  # Linux
        except OSError:
            return 'the working folder'


LEADS_NOWHERE = 'deleted since the shell went into it, so a relative path leads nowhere; cd into a folder that exists'


def check_working_folder_for(*paths):
    """Where one of paths is relative and the working folder was deleted, said so: not that the
    path is missing (split_data.py's --input was 'no such folder', with advice to download the data)."""
    gone = None if all(os.path.isabs(path) for path in paths) else deleted_working_folder()
    if gone:
        raise UserError(f'{gone}: {LEADS_NOWHERE}')


NOTHING_HALF_WRITTEN = 'no file was left half-written'
_LEFT_IF_STOPPED = []  # the words of the if_stopped_say blocks running now, the innermost last


@contextlib.contextmanager
def if_stopped_say(words):
    """A stop in the block (a Ctrl-C, SIGTERM or SIGHUP) says words where run_cli's line says what
    it leaves: for work that writes files in place, not atomically (a sample catalog's pictures)."""
    _LEFT_IF_STOPPED.append(words)
    try:
        yield
    except KeyboardInterrupt as stop:
        if not hasattr(stop, 'left'):  # an inner block's words, where blocks nest
            stop.left = words
        raise
    finally:
        _LEFT_IF_STOPPED.pop()


def left_if_stopped_now():
    """What a stop at this moment leaves, for a signal handler that ends the process at once
    (bench.py's) rather than raising to the blocks above."""
    return _LEFT_IF_STOPPED[-1] if _LEFT_IF_STOPPED else NOTHING_HALF_WRITTEN


def run_flushed(main):
    """main, and then what stdout still buffers written out, after a SystemExit too (argparse's
    --help): here a failure to write it is reported, not in Python's "Exception ignored" at the exit."""
    try:
        main()
    except SystemExit:
        sys.stdout.flush()
        raise
    sys.stdout.flush()


PEER_ENDED = ('Connection closed by peer', 'Connection reset by peer')  # gloo's words


def out_of_memory(error):
    """An allocation that failed, in PyTorch's words (torch.OutOfMemoryError on a GPU, "can't
    allocate memory" on the CPU, also from a DataLoader's worker), Python's and NumPy's
    (MemoryError) or the system's (ENOMEM: no memory left to start a worker process)."""
    return (isinstance(error, MemoryError) or type(error).__name__ == 'OutOfMemoryError'
            or "can't allocate memory" in str(error) or getattr(error, 'errno', None) == errno.ENOMEM)


def memory_words(error):
    """The allocation that failed: the line that names it (a worker's error holds the traceback
    before it), without the C++ source it came from."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    line = next((line for line in lines if 'allocate' in line), lines[0]).strip()
    return re.sub(r'^(RuntimeError: )?\[enforce fail at [^\]]*\] [^.]*\. ', '', line)[:300]


def peer_ended(error):
    return int(os.environ.get('WORLD_SIZE', '1')) > 1 and any(words in str(error) for words in PEER_ENDED)


# Where a signal ended a worker: what most likely sent it.
MEMORY_RAN_OUT = 'as the system ends a process when memory runs out'
ENDED_BY = {'SIGKILL': f', {MEMORY_RAN_OUT}',
            'SIGBUS': ': out of shared memory (/dev/shm), through which workers pass their batches (64 MB in a '
                      'Docker container not started with more, --shm-size)'}
SIGNAL_NAMES = {signal.strsignal(number): number.name for number in signal.Signals}  # 'Killed': 'SIGKILL'


def worker_ended(error, workers_flag=None):
    """PyTorch's word that a DataLoader's worker process ended, in ours, where error is one, with what
    most likely ended it (ENDED_BY); None for another error. PyTorch raises it in the main process
    wherever that is at the time, and said no more than "DataLoader worker (pid 123) is killed by
    signal: Killed." at the end of a traceback: the out-of-memory killer's kill, most often. Where
    that is the likely cause, the script's flag for its workers (workers_flag) is named: each one
    holds a copy of the dataset's Python objects, and of the batches it has ready."""
    words, memory = ended_how(str(error))
    if words and memory and workers_flag:
        words += f' (fewer {workers_flag} need less; 0: none)'
    return words


def ended_how(text):
    """worker_ended's words for PyTorch's (None where it is not about a worker), and whether the
    likely cause is the system's want of memory."""
    if not text.startswith('DataLoader worker (pid'):
        return None, False
    pids = re.match(r'DataLoader worker \(pid(?:\(s\))? ([\d, ]+)\)', text)
    which = 'a DataLoader worker process'
    if pids:
        several = ',' in pids.group(1)
        which = f'{"DataLoader worker processes" if several else which} (pid{"s" if several else ""} {pids.group(1)})'
    killed = re.search(r'is killed by signal: ([^.]+)\.', text)
    if killed:  # by the signal's description, the system's strsignal
        name = SIGNAL_NAMES.get(killed.group(1), f'signal: {killed.group(1)}')
        return f'{which} was killed by {name}{ENDED_BY.get(name, "")}', name == 'SIGKILL'
    code = re.search(r'exit code (-?\d+)', text)
    if code:
        return f'{which} ended unexpectedly with exit code {code.group(1)}', False
    # PyTorch found it gone before its SIGCHLD handler could say how: a kill, most often
    return f'{which} ended unexpectedly: killed, most often, {MEMORY_RAN_OUT}', True


def print_if_possible(text, stream):
    """print, where the terminal may be gone: after a SIGHUP (an ssh connection dropped) a write
    to it fails (EIO). Nothing can be shown then; the stream goes to /dev/null, so that Python's
    own flush at the exit does not fail on the words still in its buffer."""
    try:
        stream.write(f'{text}\n')  # one write, as print_error's: under torchrun the processes share one stderr
        stream.flush()
    except OSError:
        to_nowhere(stream)


def to_nowhere(stream):
    with contextlib.suppress(OSError, ValueError):  # ValueError: not a file (pytest's capture)
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def print_error(message):
    # One write for the whole line: under torchrun the processes share one stderr, and print's
    # second write (the line's end) would let another process's line in between. A name in the
    # message with a line break or a terminal's escape sequence in it is escaped: one line still.
    sys.stderr.write(f'error: {one_line(str(message))}\n')
    sys.stderr.flush()


def exit_with_error(message):
    print_error(message)
    sys.exit(2)


def shown(name):
    """A file name as text that any UTF-8 file, figure or terminal takes: bytes that are not
    UTF-8, which Linux allows in names, written as \\xNN."""
    return name.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


def printable(name):
    """A file name on one line of a table or a message: a line break, or a terminal's escape
    sequence, in it written as Python writes it (\\n, \\x1b). Files written keep the name as it is."""
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def one_line(name):
    """A name given (a path, or a message naming one) as a line says it: not UTF-8 bytes as \\xNN
    (shown), a line break or a terminal's escape sequence as \\n or \\x1b (printable), so that
    `run\\x1b[31m.pth` neither splits the line nor reaches the terminal."""
    return printable(shown(name))


def add_debug_flag(parser):
    parser.add_argument('--debug', action='store_true',
                        help='show full tracebacks instead of one-line errors (default: off)')


def whole_number(text, lowest=None, below=2**63, below_text='2**63'):
    """A whole number from lowest (None: no least one) to below it, for a flag's type."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a whole number')
    if lowest is not None and value < lowest:
        raise argparse.ArgumentTypeError(f'{value} must be at least {lowest}')
    if value >= below:  # by default, what no tensor size or index takes: a traceback from inside torch
        raise argparse.ArgumentTypeError(f'{value} must be below {below_text}')
    return value


def positive_int(text):
    return whole_number(text, 1)


def non_negative_int(text):
    return whole_number(text, 0)


def _finite_number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number')
    if not abs(value) < float('inf'):  # also refuses nan
        raise argparse.ArgumentTypeError(f'{text} must be a finite number')
    return value


def positive_float(text):
    value = _finite_number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'{text} must be a finite number above 0')
    return value


def non_negative_float(text):
    value = _finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'{text} must be 0 or more')
    return value


def path_name(text):
    """A file's or folder's path. An empty one (`--val-csv "$VAL"` with VAL unset) is refused, not
    taken for the current folder or for the flag left out: a run started afresh where it was to be
    resumed, or the split the checkpoint names scored instead of the one meant."""
    if not text:
        raise argparse.ArgumentTypeError('an empty name (a variable not set?); give a path, or leave it out')
    return text


NO_SUCH_FILE = 'no such file'  # reach_problem's answer for a name that is not there
NOT_A_REGULAR_FILE = 'not a regular file (a device, a pipe or a socket)'


def not_a_file(mode, what):
    """Why what is there (its os.stat st_mode) is not the file looked for, in words for a message:
    a folder, a pipe, a device. None where it is a regular file."""
    if stat.S_ISREG(mode):
        return None
    return f'a folder, not {what}' if stat.S_ISDIR(mode) else NOT_A_REGULAR_FILE


def reach_problem(path, nothing=NO_SUCH_FILE):
    """Why there is nothing to open at path, in words for a message; None where something is.
    os.path.exists says False alike for a name that is not there and for one it cannot reach: a
    loop of links, or a folder on the way that may not be entered, which 'no such file' misnames."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return 'a link that leads nowhere' if os.path.islink(path) else nothing
    except OSError as error:
        return f'could not reach it ({error.strerror or error})'
    return None


def what_is_there(path):
    """What stands at path, which is no folder, in words: 'a file', or a link that leads to no
    folder, named as such (a loop of links was 'a link to nothing')."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return 'a link that leads nowhere'
    except OSError as error:
        return 'a link in a loop of links' if error.errno == errno.ELOOP else f'unreachable ({error.strerror or error})'
    return 'a file'


def device_name(text):
    """--device's value, checked by pick_device once PyTorch is imported; an empty one (`--device
    "$DEVICE"` with DEVICE unset) is refused here, as an empty path is, not called a wrong name."""
    if not text:
        raise argparse.ArgumentTypeError('an empty name (a variable not set?); give cpu, cuda, cuda:N or mps, '
                                         'or leave it out')
    return text


def folder_name(text):
    """A folder's own name, not a path: '..', '/abs' or 'a/../..' would put a run's files (args.json,
    checkpoints, curves.png) outside the folder that holds the runs, over what is there."""
    if not text:  # `--run-name "$NAME"` with NAME unset: refused, not taken for the flag left out
        raise argparse.ArgumentTypeError('an empty name (a variable not set?); give a name, or leave it out')
    if os.sep in text or (os.altsep and os.altsep in text) or text in (os.curdir, os.pardir):
        raise argparse.ArgumentTypeError(f"{text!r}: give one folder's name, without {os.sep} and not . or ..; "
                                         'the folder it goes in is --checkpoints')
    return text


def seed_number(text):
    # 0 to 2**32 - 1, what every random generator takes: train.py mixes a seed with the epoch and
    # the process's rank, which must stay within PyTorch's 64 bits.
    return whole_number(text, 0, 2**32, '2**32 (4294967296)')


def pick_device(name=None):
    # CUDA first, then Apple's MPS, then the CPU; an explicit --device that is not there is an
    # error here rather than a crash deep inside PyTorch on the first tensor moved to it.
    # PyTorch is imported here, not above: split_data.py needs none of it, and on macOS and Windows
    # each of its image-checking processes, started afresh, would load it again (2 s each here).
    import torch
    if name is None or name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        if getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f'--device {name}: not a device name (use cpu, cuda, cuda:N or mps)')
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserError(f'--device {name}: no CUDA GPU is available on this machine; '
                            'use --device cpu')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f'--device {name}: this machine has '
                            f'{counted(torch.cuda.device_count(), "CUDA device")}')
        if device.index is not None:
            # The current device, too: new streams and CUDA graphs go to the current one, and a
            # training step on cuda:1 recorded on cuda:0's stream would record nothing at all.
            torch.cuda.set_device(device)
    elif device.type == 'mps':
        if not (getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available()):
            raise UserError(f'--device {name}: Apple MPS is not available on this machine; '
                            'use --device cpu')
    elif device.type != 'cpu':
        raise UserError(f'--device {name}: unsupported device type (use cpu, cuda or mps)')
    return device
