# Pictures a person looks at: training curves, confusion matrices, and the tutorial's grid of
# images with predicted and true labels. Everything is saved as PNG; windows open only on request.
import hashlib
import importlib.util
import multiprocessing
import os
import signal
import sys
import textwrap
import warnings

# matplotlib checks MPLBACKEND as it is imported, and a backend it cannot use ends the import, and
# the script, with its traceback. Jupyter and Colab set MPLBACKEND=module://matplotlib_inline.
# backend_inline in the notebook's Python, and a script started from a cell (`!.venv/bin/python
# train.py`) inherits it, where its own environment has no matplotlib-inline. Without --show every
# figure is drawn with Agg whatever it names: it is set aside for the import, and taken for --show.
ASKED_BACKEND = os.environ.pop('MPLBACKEND', None)
try:
    import matplotlib
finally:
    if ASKED_BACKEND is not None:
        os.environ['MPLBACKEND'] = ASKED_BACKEND
import numpy as np
from matplotlib.ticker import MaxNLocator
from PIL import PngImagePlugin

from atomic import atomic_path
from catalog import UNREADABLE
from cli import STOPPING, UserError, ctrl_c_held, obey_stops_again, stops_blocked
from dataset import HEADS, MEAN, STD, TITLES


# A split's path in a title, in a script its font has no glyphs for (a folder named in Chinese),
# is drawn with boxes there; matplotlib's warning of it, a line a character each time a figure is
# laid out and saved, came 16 times for one such path from test.py alone. (Worded "missing from
# current font" in matplotlib 3.6, "missing from font(s) ..." in 3.9 and later.)
warnings.filterwarnings('ignore', message=r'Glyph \d+ .* missing from (current )?font', category=UserWarning)

# matplotlib's built-in backends that only write files (backend_registry.list_builtin(BackendFilter.
# NON_INTERACTIVE) from 3.9 on; rcsetup.non_interactive_bk before, gone in 3.11).
FILE_ONLY_BACKENDS = ('agg', 'cairo', 'pdf', 'pgf', 'ps', 'svg', 'template')


def usable_backend(name):
    """Whether this matplotlib can use the backend name: one it knows (its check at the import), or
    a module://name whose module is installed (found missing only as the first figure opens)."""
    try:
        matplotlib.rcsetup.validate_backend(name)
    except ValueError:
        return False
    if not name.startswith('module://'):
        return True
    try:
        return importlib.util.find_spec(name[len('module://'):]) is not None
    except (ImportError, ValueError):  # a package on its way missing; an empty or odd name
        return False


def pyplot(show=False):
    # Without --show use the file-only backend, so the scripts run on servers with no display.
    if not show:
        matplotlib.use('Agg')
    # Text as it is: a label or a path with two $ in it ('Tee $5 & $10', 'v$$/val.csv') would be
    # laid out as TeX math, or fail to parse as it, and the figure with it.
    matplotlib.rcParams['text.parse_math'] = False
    import matplotlib.pyplot as plt
    return plt


def can_show(folder):
    """Whether --show can open windows. With no display (or no GUI toolkit) matplotlib falls back
    to a file-only backend, and plt.show() then shows nothing without a word: said here, once."""
    if ASKED_BACKEND and usable_backend(ASKED_BACKEND):
        matplotlib.rcParams['backend'] = ASKED_BACKEND  # as matplotlib's import sets it
    elif ASKED_BACKEND:
        print(f'note: --show: MPLBACKEND={ASKED_BACKEND} names no backend this matplotlib can use; '
              'it is left to matplotlib to choose one')
    backend = pyplot(show=True).get_backend().lower()
    if backend not in FILE_ONLY_BACKENDS:
        return True
    print(f'note: --show: no display to open windows on (matplotlib fell back to its file-only {backend} '
          f'backend); the figures are written to {folder} all the same')
    return False


# Written into every figure's PNG: a figure of the user's that matplotlib saved too (a copy of
# docs/demo-curves.png named predictions.png) is not one of ours to replace.
SOURCE = 'plots.py of the multi-output fashion classifier'


def save_figure(fig, path, metadata=None):
    with atomic_path(path) as tmp:  # never a half-written PNG in place of the last one
        fig.savefig(tmp, dpi=100, metadata={'Source': SOURCE, **(metadata or {})})


def laid_out_once(fig, rect=(0, 0, 1, 1)):
    """fig laid out as tight_layout lays it out, and not again as it is saved: tight_layout leaves
    the figure an engine that does nothing, and savefig laid the whole figure out again for it
    before drawing it: the same PNG, byte for byte, in less time. None is the engine of
    matplotlibrc's autolayout where it is set, which would lay it out again without rect."""
    fig.tight_layout(rect=rect)
    with matplotlib.rc_context({'figure.autolayout': False, 'figure.constrained_layout.use': False}):
        fig.set_layout_engine(None)


def drawn_here(path):
    """Whether the file at path is a PNG that save_figure wrote (its Source text chunk)."""
    return png_text(path, 'Source') == SOURCE


def drawn_by_matplotlib(path):
    """Whether the file at path is a PNG that matplotlib saved, as every figure of this project is:
    one a new run may replace; any other PNG, or a file that is none, is the user's. matplotlib
    names itself in a 'Software' text chunk before the pixels, so the pixels are not decoded."""
    return png_text(path, 'Software').startswith('Matplotlib')


def png_text(path, key):
    """The text chunk `key` of the PNG at path, '' where there is none or no PNG. Read without
    Image.open's check of the size, which refuses a PNG over 179 megapixels, as it would the
    pixels of a decompression bomb: a --grid of 3,617 pictures or more is one, and test.py then
    took its own predictions.png for the user's, and refused to replace it. No pixel is decoded."""
    try:
        with PngImagePlugin.PngImageFile(path) as img:
            return str(img.info.get(key, ''))
    except UNREADABLE:
        return ''


def history_digest(history):
    """A digest of a run's history (its figures, epoch by epoch), as curves.png records it."""
    return hashlib.sha256(repr(history).encode()).hexdigest()


def plot_curves(history, path):
    plt = pyplot()
    epochs = [row['epoch'] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    # The training series get dots too: after a single epoch a line of one point draws nothing.
    ax_loss.plot(epochs, [row['train_loss'] for row in history], '.-', label='train')
    val = [row for row in history if row.get('val_loss') is not None]
    ax_loss.plot([r['epoch'] for r in val], [r['val_loss'] for r in val], 'o-', label='validation')
    ax_loss.set(xlabel='epoch', ylabel='loss (sum of the three heads)', title='Loss')
    for head in HEADS:
        line, = ax_acc.plot(epochs, [row[f'train_{head}_accuracy'] for row in history], '.-',
                            alpha=0.5, label=f'{TITLES[head]} (train)')
        ax_acc.plot([r['epoch'] for r in val], [r[f'{head}_accuracy'] for r in val], 'o-',
                    color=line.get_color(), label=f'{TITLES[head]} (validation)')
    ax_acc.set(xlabel='epoch', ylabel='accuracy', title='Accuracy', ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: 1, 2, 3, not 1.25, 1.5
        if len(epochs) == 1:  # around one point the axis spans 0.945 to 1.055: the locator found no whole number
            ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    laid_out_once(fig)
    # The last epoch drawn, in a text chunk of the file: what a resumed run reads to tell curves an
    # epoch behind (runs.left_unwritten), where the file's time said nothing after a `cp -r`; and
    # the figures drawn, to tell the run's own curves from another run's (runs.curves_of_its_epochs).
    save_figure(fig, path, metadata={'Epoch': str(epochs[-1]), 'History': history_digest(history)})
    plt.close(fig)


def plot_confusion_matrix(truth, predicted, labels, title, path, show=False):
    """Row-normalised confusion matrix over the classes that occur; readable at 143 classes."""
    from sklearn.metrics import ConfusionMatrixDisplay
    plt = pyplot(show)
    present = np.union1d(np.unique(truth), np.unique(predicted))
    n = len(present)
    size = max(6.0, 0.16 * n + 3)  # inches: about 16 px a class at 100 dpi
    fig, ax = plt.subplots(figsize=(size, size))
    with warnings.catch_warnings():
        # A head with one class in the set (a men-only val.csv, a one-row one) gets its 1x1 matrix,
        # and sklearn's two-line warning about it named its own source file, once a figure.
        warnings.filterwarnings('ignore', message='A single label was found', category=UserWarning)
        display = ConfusionMatrixDisplay.from_predictions(
            truth, predicted, labels=present, display_labels=tick_labels([labels[i] for i in present]),
            normalize='true', include_values=n <= 15, values_format='.2f', cmap='Blues', ax=ax,
            colorbar=n > 15, xticks_rotation='vertical')
    # Shades from 0 to 1, not to the largest share in this matrix: the darkest blue is a class always
    # recognised, in every figure, so two checkpoints' figures compare. The values written (up to 15
    # classes) are coloured for these shades; above, a colour bar reads them.
    display.im_.set_clim(0, 1)
    for value, text in zip(display.confusion_matrix.ravel(), np.ravel(display.text_) if n <= 15 else ()):
        text.set_color('white' if value > 0.5 else 'black')
    if n > 15:
        display.figure_.axes[-1].set_ylabel("share of the true class's pictures")
    # A class only predicted has no true pictures to share out: sklearn's row of zeros would read
    # as a class never recognised. Its row is greyed out, its values hidden.
    only_predicted = np.flatnonzero(~np.isin(present, truth))
    for row in only_predicted:
        ax.axhspan(row - 0.5, row + 0.5, color='lightgrey', zorder=2.5)  # over the image, under the text
        for text in display.text_[row] if display.text_ is not None else ():
            text.set_visible(False)
    fontsize = 10 if n <= 15 else 6
    ax.tick_params(labelsize=fontsize)
    grow_for_labels(fig, ax, size)
    # A long split path in the title (an absolute one, test.py run from another folder) ran off the
    # figure's edges: wrapped to its width, about 9 characters of the title's size an inch.
    title = textwrap.fill(title, width=int(size * 9), break_on_hyphens=False)
    ax.set_title(title + ('\n(grey rows: predicted only, no such picture in the set)' if len(only_predicted) else ''))
    laid_out_once(fig)
    save_figure(fig, path)
    if not show:  # with show, kept open: test.py shows the figures once all are written (show_figures)
        plt.close(fig)


# A class's name is shown whole in a figure up to this many characters; a longer one (a product's
# description typed into articleType) is shortened in its middle: a confusion matrix would grow
# many inches wide, and the grid's captions ran over the pictures.
LONGEST_TICK_LABEL = 40
# Inches the size of a confusion matrix's figure leaves its tick labels on each side: the real
# data's longest name, 'Face Scrub and Exfoliator', takes 1.0 at the 6 points of more than 15 classes.
LABEL_ROOM = 1.1


def short_name(label):
    """A class's name in a figure: a confusion matrix's tick label, a line of the grid's captions."""
    if len(label) <= LONGEST_TICK_LABEL:
        return label
    half = (LONGEST_TICK_LABEL - 1) // 2
    return f'{label[:half]}\u2026{label[-half:]}'


def tick_labels(names):
    """Each name as short_name shows it, but whole where two would be shown alike: names that differ
    only in the middle it leaves out, told apart nowhere else in the figure."""
    short = [short_name(name) for name in names]
    return [shown if short.count(shown) == 1 else name for shown, name in zip(short, names)]


def grow_for_labels(fig, ax, size):
    """Grows the square figure by as much as its longest tick label runs past LABEL_ROOM, so that the
    matrix keeps its room: at the size alone, a 48-character colour squeezed a 10-class matrix into
    a corner, its values run together and its title cut off (tight_layout gave up, in two lines)."""
    # Measured with the figure's own renderer, as tight_layout does: not every backend's canvas for
    # --show has a get_renderer (FigureCanvasBase has none).
    longest = max([label.get_window_extent().width for label in ax.get_yticklabels()]
                  + [label.get_window_extent().height for label in ax.get_xticklabels()]) / fig.dpi
    if longest > LABEL_ROOM:
        fig.set_size_inches(size + longest - LABEL_ROOM, size + longest - LABEL_ROOM)


def to_picture(image):
    """A normalised (3, H, W) array back to an (H, W, 3) array in [0, 1] for display."""
    image = np.asarray(image, dtype=np.float32).transpose(1, 2, 0)
    return np.clip(image * np.array(STD) + np.array(MEAN), 0, 1)


def grid_caption(pred, true, width=30):
    """A line for each head: the predicted label, and the true one in brackets after it where they
    differ ('Tops (Tshirts)'), so that each true label stands by its head's. A line too long for its
    column (about 30 characters at this size: 'Face Wash and Cleanser (Face Scrub and Exfoliator)')
    is wrapped, not run into the next picture's. A name over LONGEST_TICK_LABEL is shortened: names of
    67 characters, wrong on all three heads, made a caption of 15 lines, more than a row holds, and
    tight_layout gave up: the captions ran over the pictures above them and into each other. A
    wrong answer whose name and the true one would be shortened alike (they differ only in the
    middle left out) gives both whole, as a confusion matrix does (tick_labels)."""
    lines = [short_name(p) if p == t else '{} ({})'.format(*tick_labels([p, t])) for p, t in zip(pred, true)]
    return '\n'.join(textwrap.fill(line, width, break_on_hyphens=False) for line in lines)


# The most pictures in the prediction grid (test.py --grid): 64 rows of 8, a PNG 16,640 pixels tall.
# There was no limit: test.py --grid 2100 took 2 minutes on 2 cores, for a PNG of 1,520 x 68,380 pixels,
# a strip too thin to see whole; 3,617 pictures or more made one over 179 megapixels, which Pillow refuses.
MOST_IN_GRID = 512


def visualize_grid(images, predicted, truth, attributes, path, show=False, columns=8):
    """The tutorial's grid: each image (normalised, (N, 3, H, W)) with its predicted labels, and
    the true ones below."""
    plt = pyplot(show)
    names = {h: attributes.labels(h) for h in HEADS}
    rows = (len(images) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.9, rows * 2.6))
    for i, ax in enumerate(np.asarray(axes).reshape(-1)):
        ax.axis('off')
        if i >= len(images):
            continue
        ax.imshow(to_picture(images[i]))
        pred = [names[h][predicted[h][i]] for h in ('gender', 'article', 'color')]
        true = [names[h][truth[h][i]] for h in ('gender', 'article', 'color')]
        # At y=1, where matplotlib puts it above an axes that is off, but placed: left to matplotlib, it
        # measured the picture's hidden tick labels for each caption, as the grid was laid out and as
        # it was drawn: 45% of the time of 300 pictures, in a profile.
        ax.set_title(grid_caption(pred, true), fontsize=7, color='black' if pred == true else 'firebrick', y=1)
    # The title sits a fixed 0.1 inch below the top and the grid starts 0.35 inch down, whatever
    # the height: at suptitle's default place, 2% of the figure down, and tight_layout's own
    # margin, it ran into the first row from 6 rows (41 images) on.
    height = fig.get_figheight()
    fig.suptitle('predicted gender / article / colour (true label in brackets where wrong)', fontsize=9,
                 y=1 - 0.1 / height, va='top')
    laid_out_once(fig, rect=(0, 0, 1, 1 - 0.35 / height))
    save_figure(fig, path)
    if not show:  # with show, kept open: test.py shows the figures once all are written (show_figures)
        plt.close(fig)


def show_figures():
    """Opens a window for each figure kept open (drawn with show=True), until they are closed."""
    pyplot(show=True).show()


def draw_quietly(function, args, index, failures):
    # A Ctrl-C reaches every process of the terminal's group; the parent reports it, once, and
    # each drawing process stops without a traceback of its own. A file the system refused (a
    # full disk) goes back to the parent, which names it in its one line.
    try:
        obey_stops_again()  # forked while draw_figures held them back
        function(*args)
    except KeyboardInterrupt:
        # Deaf to the stops that follow: the parent's terminate() (its SIGTERM) landing as this one
        # exits raised in multiprocessing's exit handlers, which printed a traceback after all.
        for number in (signal.SIGINT, *STOPPING):
            signal.signal(number, signal.SIG_IGN)
        sys.exit(130)
    except OSError as error:
        failures.put((index, f'{error.filename}: {error.strerror or error}'))
        sys.exit(2)


def draw_figures(jobs, parallel=True):
    """Run each (function, args) job, each drawing and saving one figure.

    Laying out and rendering a figure takes one core a second or more (the 143-class confusion
    matrix about 3 s), so on Linux each is drawn in a process of its own, forked: it inherits the
    arguments without copying them, and uses no PyTorch. Elsewhere, and for windows (--show),
    they are drawn one after another here.
    """
    if not parallel or not sys.platform.startswith('linux') or len(jobs) < 2:
        for function, args in jobs:
            function(*args)
        return
    context = multiprocessing.get_context('fork')
    failures = context.SimpleQueue()  # a line or two from a process that failed: no pipe fills up
    processes = [context.Process(target=draw_quietly, args=(function, args, index, failures))
                 for index, (function, args) in enumerate(jobs)]
    try:
        # A Ctrl-C landing in a fork handler would be lost (cli.ctrl_c_held), and a stop reaching a
        # process just forked, terminate()'s included, too (cli.stops_blocked).
        with ctrl_c_held(), stops_blocked():
            for process in processes:
                process.start()
        for process in processes:
            process.join()
    except KeyboardInterrupt:  # they stop too, their figures left as they were, not finished
        started = [process for process in processes if process.pid is not None]
        for process in started:
            process.terminate()
        for process in started:
            process.join()
        raise
    failed = sum(process.exitcode != 0 for process in processes)
    if not failed:
        return
    refused = []
    while not failures.empty():
        refused.append(failures.get())
    text = f'{failed} of {len(jobs)} figures could not be drawn'
    if refused:
        raise UserError(f'{text}: ' + '; '.join(reason for _, reason in sorted(refused)))
    raise RuntimeError(f'{text} (the errors are printed above)')
