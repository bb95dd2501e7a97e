# test.py draws its four figures in forked processes on Linux: the same files as drawing them one
# after another, a figure that fails is reported, not lost, and a Ctrl-C is reported once. It
# replaces its own files, never a file of the user's of the same name.
import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import plots
from cli import UserError
from conftest import ROOT, file_size_limit, run_script
from dataset import HEADS, AttributesDataset
from plots import draw_figures, plot_confusion_matrix, visualize_grid

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='figures are forked on Linux only')


class Names:
    def labels(self, head):
        return {'gender': ['Men', 'Women'], 'article': ['Shirts', 'Jeans', 'Watches'],
                'color': ['Black', 'White']}[head]


def figures(folder):
    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    labels = {h: rng.integers(0, len(Names().labels(h)), 4) for h in ('gender', 'article', 'color')}
    return [(plot_confusion_matrix, (truth, predicted, ['Shirts', 'Jeans', 'Watches'], 'Article type',
                                     os.path.join(folder, 'confusion.png'))),
            (visualize_grid, (rng.standard_normal((4, 3, 80, 60)).astype(np.float32), labels, labels, Names(),
                              os.path.join(folder, 'grid.png')))]


def test_forked_figures_are_the_ones_drawn_here(tmp_path):
    (tmp_path / 'here').mkdir()
    (tmp_path / 'forked').mkdir()
    draw_figures(figures(tmp_path / 'here'), parallel=False)
    draw_figures(figures(tmp_path / 'forked'), parallel=True)
    for name in ('confusion.png', 'grid.png'):
        assert (tmp_path / 'forked' / name).read_bytes() == (tmp_path / 'here' / name).read_bytes()
    assert sorted(os.listdir(tmp_path / 'forked')) == ['confusion.png', 'grid.png']  # no temporaries


def test_a_figure_that_fails_in_its_process_is_reported(tmp_path, capfd):
    jobs = figures(tmp_path)
    function, args = jobs[0]
    missing = os.path.join(tmp_path, 'no such folder', 'confusion.png')
    jobs[0] = (function, args[:4] + (missing,))
    with pytest.raises(UserError) as error:
        draw_figures(jobs, parallel=True)
    assert str(error.value) == f'1 of 2 figures could not be drawn: {missing}: No such file or directory'
    assert os.path.exists(tmp_path / 'grid.png')  # the other one is still drawn
    assert 'Traceback' not in capfd.readouterr().err


def test_a_full_disk_is_named_in_one_line_for_every_figure_it_stopped(tmp_path, capfd):
    with file_size_limit(2000):  # the drawing processes inherit it: each PNG's write fails
        with pytest.raises(UserError) as error:
            draw_figures(figures(tmp_path), parallel=True)
    assert str(error.value) == (f'2 of 2 figures could not be drawn: {tmp_path}/confusion.png: File too large; '
                                f'{tmp_path}/grid.png: File too large')
    assert os.listdir(tmp_path) == []  # nothing half-written
    assert 'Traceback' not in capfd.readouterr().err


def broken(path):
    raise ValueError('a bug, not the disk')


def test_a_bug_in_a_figure_keeps_its_traceback(tmp_path, capfd):
    jobs = [(broken, (tmp_path / 'confusion.png',)), figures(tmp_path)[1]]
    with pytest.raises(RuntimeError, match=r'1 of 2 figures could not be drawn \(the errors are printed above\)'):
        draw_figures(jobs, parallel=True)
    assert 'ValueError: a bug, not the disk' in capfd.readouterr().err


def interrupted(path):
    raise KeyboardInterrupt


def test_a_ctrl_c_stops_the_drawing_processes_without_a_traceback_from_each(tmp_path, capfd):
    # A terminal's Ctrl-C reaches all of test.py's processes; test.py itself reports it, once.
    jobs = [(interrupted, (tmp_path / 'confusion.png',)), (interrupted, (tmp_path / 'grid.png',))]
    with pytest.raises(RuntimeError, match='2 of 2 figures could not be drawn'):
        draw_figures(jobs, parallel=True)
    assert 'Traceback' not in capfd.readouterr().err


def interrupted_then_terminated(path):
    # As a Ctrl-C to the terminal's group lands during the drawing: this process stops on it, and
    # test.py, stopped too, ends its drawing processes with terminate(), a SIGTERM that may reach
    # this one as it exits, in multiprocessing's exit handlers (their finalizers run there).
    multiprocessing.util.Finalize(None, os.kill, (os.getpid(), signal.SIGTERM), exitpriority=100)
    raise KeyboardInterrupt


def test_a_ctrl_c_then_the_parents_terminate_as_a_drawing_process_exits_prints_no_traceback(tmp_path, capfd):
    # It printed "Process ForkProcess-3:" and three chained tracebacks ending in cli.Terminated: 15,
    # seen once in a few Ctrl-Cs to demo.py at step 4.
    jobs = [(interrupted_then_terminated, (tmp_path / 'confusion.png',)),
            (interrupted_then_terminated, (tmp_path / 'grid.png',))]
    with pytest.raises(RuntimeError, match='2 of 2 figures could not be drawn'):
        draw_figures(jobs, parallel=True)
    err = capfd.readouterr().err
    assert 'Traceback' not in err and 'Process ' not in err, err


def slow_figure(path):
    time.sleep(30)
    with open(path, 'w') as f:
        f.write('drawn')


@pytest.mark.parametrize('under_run_cli', [False, True])
def test_a_ctrl_c_as_the_drawing_processes_start_stops_them_all(tmp_path, monkeypatch, under_run_cli):
    # One landing in a fork's handlers was lost (test.py then ended in tracebacks, status 1), and one
    # between two starts left the processes started to draw on: held until all have started, it
    # stops them all, their figures not written. Under run_cli (test.py's), a SIGTERM is a stop too,
    # held back while the processes start: a process just forked held back terminate()'s SIGTERM
    # until it obeyed stops again, and each drew its figure to the end (30 s here) while test.py waited.
    from cli import stopping_signals_as_ctrl_c
    start = multiprocessing.context.ForkProcess.start

    sent = []

    def start_and_ctrl_c(process):
        start(process)
        # One Ctrl-C, between the two starts. One after each: under pytest-xdist a thread of its own
        # may take a signal late, and the second, raised as the first stopped the processes, cut
        # that short and left them drawing (a person's second Ctrl-C may do that too).
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))

    monkeypatch.setattr(multiprocessing.context.ForkProcess, 'start', start_and_ctrl_c)
    began = time.monotonic()
    with stopping_signals_as_ctrl_c() if under_run_cli else contextlib.nullcontext(), pytest.raises(KeyboardInterrupt):
        draw_figures([(slow_figure, (tmp_path / 'a.png',)), (slow_figure, (tmp_path / 'b.png',))], parallel=True)
    # Under 20 s: far from the 30 s of a figure drawn to its end, with room for slow forks on a busy machine.
    assert multiprocessing.active_children() == [] and time.monotonic() - began < 20
    assert os.listdir(tmp_path) == []


def test_each_row_of_a_confusion_matrix_is_a_true_classs_share_of_each_prediction(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig.axes[0].images[0].get_array()))
    plot_confusion_matrix(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 1]), ['a', 'b'], 'title', str(tmp_path / 'c.png'))
    np.testing.assert_allclose(np.asarray(drawn[0]), [[1 / 3, 2 / 3], [0, 1]])


@pytest.mark.parametrize('classes', [2, 46])
def test_a_confusion_matrix_title_with_a_long_path_stays_inside_the_figure(tmp_path, monkeypatch, classes):
    # "gender: normalised confusion matrix (/tmp/probe_eval_work/split/v", cut off at the edge
    spans = []

    def measure(fig, path):
        title = fig.axes[0].title.get_window_extent(fig.canvas.get_renderer())
        spans.append((title.x0, title.x1, fig.bbox.x1, fig.axes[0].get_title()))
    monkeypatch.setattr(plots, 'save_figure', measure)
    split = '/home/someone/projects/fashion/experiments/2026-12-05/splits/val.csv'
    truth = np.arange(classes)
    plot_confusion_matrix(truth, truth, [f'class {i}' for i in truth], f'Gender: normalised confusion matrix ({split})',
                          str(tmp_path / 'c.png'))
    (left, right, width, title), = spans
    assert 0 <= left and right <= width, (left, right, width)
    assert title.replace('\n', ' ').replace(' ', '') == f'Gender:normalisedconfusionmatrix({split})'


@pytest.mark.parametrize('epochs', [1, 2, 3, 50])
def test_the_curves_mark_whole_epochs_only(tmp_path, monkeypatch, epochs):
    ticks = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: ticks.extend(
        tick for ax in fig.axes for tick in ax.get_xticks() if ax.get_xlim()[0] <= tick <= ax.get_xlim()[1]))
    row = {'train_loss': 1.0, **{f'train_{head}_accuracy': 0.5 for head in ('gender', 'article', 'color')}}
    plots.plot_curves([dict(row, epoch=epoch) for epoch in range(1, epochs + 1)], str(tmp_path / 'curves.png'))
    assert ticks and all(tick == int(tick) for tick in ticks), ticks


def test_the_grid_shows_each_picture_as_it_was():
    from PIL import Image
    from dataset import val_transform
    img = Image.new('RGB', (60, 80), (200, 30, 90))
    np.testing.assert_allclose(plots.to_picture(val_transform(img).numpy()), np.asarray(img) / 255, atol=1e-5)


def test_every_picture_is_in_the_grid_the_last_row_too(tmp_path, monkeypatch):
    from dataset import AttributesDataset
    shown = []
    monkeypatch.setattr(plots, 'save_figure',
                        lambda fig, path, **_: shown.append(sum(bool(ax.images) for ax in fig.axes)))
    labels = {head: np.zeros(12, dtype=int) for head in ('gender', 'article', 'color')}
    vocab = {'gender': ['Men', 'Women'], 'article': ['Shirts', 'Tshirts'], 'color': ['Black', 'Blue']}
    visualize_grid(np.zeros((12, 3, 80, 60), np.float32), labels, labels, AttributesDataset(vocab=vocab),
                   str(tmp_path / 'grid.png'))
    assert shown == [12]


@pytest.mark.parametrize('rows', [1, 4, 60])
def test_the_grid_title_stays_clear_of_the_first_row(tmp_path, monkeypatch, rows):
    # `test.py --grid 1000` is 125 rows, 325 inches tall: the title, 2% of that down, sat on the first row.
    from dataset import AttributesDataset
    gaps = []

    def measure(fig, path):
        renderer = fig.canvas.get_renderer()
        first_row = max(ax.title.get_window_extent(renderer).y1 for ax in fig.axes[:2])
        title, = (text.get_window_extent(renderer) for text in fig.texts)  # the suptitle
        gaps.append((title.y0 - first_row, fig.bbox.y1 - title.y1))
    monkeypatch.setattr(plots, 'save_figure', measure)
    wrong = {head: np.zeros(2 * rows, dtype=int) for head in ('gender', 'article', 'color')}  # titles of 4 lines
    vocab = {'gender': ['Men', 'Women'], 'article': ['Shirts', 'Tshirts'], 'color': ['Black', 'Blue']}
    visualize_grid(np.zeros((2 * rows, 3, 80, 60), np.float32), wrong, {h: p + 1 for h, p in wrong.items()},
                   AttributesDataset(vocab=vocab), str(tmp_path / 'grid.png'), columns=2)
    (below, above), = gaps
    assert below > 5 and 5 < above < 20  # pixels: a gap under the title, and the title at the top


def test_a_class_only_predicted_keeps_its_column_and_its_row_is_greyed_out(tmp_path, monkeypatch):
    # Half of class a called b: a matrix of the true classes only would show a as all correct.
    # b's row of zeros, drawn as it was, read as a class never recognised, though none was there.
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig.axes[0]))
    plot_confusion_matrix(np.array([0, 0]), np.array([0, 1]), ['a', 'b'], 't', str(tmp_path / 'c.png'))
    ax, = drawn
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), [[0.5, 0.5], [0, 0]])
    shown = [text.get_text() for text in ax.texts if text.get_visible()]
    assert shown == ['0.50', '0.50']  # row b's values hidden
    band, = ax.patches
    assert band.get_facecolor()[:3] == pytest.approx((0.827, 0.827, 0.827), abs=1e-3)  # lightgrey
    assert band.get_window_extent().y0 < ax.transData.transform((0, 1))[1] < band.get_window_extent().y1  # over b
    assert ax.get_title() == 't\n(grey rows: predicted only, no such picture in the set)'
    plot_confusion_matrix(np.array([0, 1]), np.array([1, 1]), ['a', 'b'], 't', str(tmp_path / 'c.png'))
    assert not drawn[1].patches and drawn[1].get_title() == 't'  # every class in the set: no band, no note


def test_dollar_signs_in_labels_and_paths_are_drawn_as_they_are(tmp_path):
    # Taken for TeX math, they failed the figure ('$\\foo{$' does not parse) or changed its text.
    labels = ['Tee $5 & $10', 'Women $\\foo{$']
    draw_figures([(plot_confusion_matrix, (np.array([0, 1]), np.array([1, 1]), labels, 'v$$/val.csv',
                                           str(tmp_path / 'confusion.png')))], parallel=False)
    grid = {head: np.array([0, 1]) for head in ('gender', 'article', 'color')}
    dollars = AttributesDataset(vocab={'gender': labels, 'article': ['$a', 'b$'], 'color': ['$x$', '$$']})
    visualize_grid(np.zeros((2, 3, 80, 60), np.float32), grid, grid, dollars, str(tmp_path / 'grid.png'))
    assert sorted(os.listdir(tmp_path)) == ['confusion.png', 'grid.png']


def test_a_title_in_a_script_the_font_lacks_is_drawn_without_a_warning_a_character(tmp_path):
    # In a script of its own: pytest's own record of warnings would set the project's filter aside.
    draw = ('import numpy as np, sys\nfrom plots import plot_confusion_matrix\n'
            "plot_confusion_matrix(np.array([0, 1]), np.array([1, 1]), ['a', 'b'], '演示/val.csv', sys.argv[1])")
    result = subprocess.run([sys.executable, '-c', draw, str(tmp_path / 'c.png')], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == '' and (tmp_path / 'c.png').is_file(), result.stderr


def test_a_head_with_one_class_in_the_set_is_drawn_without_sklearns_warning(tmp_path, monkeypatch, recwarn):
    # A one-row val.csv, or one of men only: sklearn warned in two lines naming its own file.
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig.axes[0].images[0].get_array()))
    plot_confusion_matrix(np.array([1, 1]), np.array([1, 1]), ['a', 'b'], 't', str(tmp_path / 'c.png'))
    np.testing.assert_allclose(np.asarray(drawn[0]), [[1.0]])
    assert [str(w.message) for w in recwarn] == []


def killed(path):
    os.kill(os.getpid(), 9)  # SIGKILL, as the out-of-memory killer sends it, in the drawing process


def test_a_drawing_process_killed_by_a_signal_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match='2 of 2 figures could not be drawn'):
        draw_figures([(killed, (tmp_path / 'a.png',)), (killed, (tmp_path / 'b.png',))], parallel=True)


def untrained_checkpoint(small_split, folder):
    import torch
    from checkpoint import checkpoint_save
    from dataset import AttributesDataset
    from model import MultiOutputModel
    attributes = AttributesDataset(small_split['styles'])
    with torch.random.fork_rng():  # its weights are drawn without moving the other tests' random numbers on
        model = MultiOutputModel.for_attributes(attributes)
    return checkpoint_save(str(folder / 'last.pth'), {'model': model.state_dict(), 'epoch': 1,
                                                      'attributes': attributes.to_dict()})


def test_show_without_a_display_says_so_and_writes_the_figures(small_split, tmp_path, capsys):
    # Where no window can open, matplotlib falls back to a file-only backend: test.py --show then
    # showed nothing, without a word. The backend such a machine gets, chosen here.
    from demo import load_test_script
    plots.pyplot()  # agg
    checkpoint = untrained_checkpoint(small_split, tmp_path)
    out = tmp_path / 'eval'
    load_test_script().main(['--checkpoint', checkpoint, '--val-csv', small_split['val'], '--output', str(out),
                             '--device', 'cpu', '--show'])
    printed = capsys.readouterr().out
    assert printed.startswith(f'note: --show: no display to open windows on (matplotlib fell back to its file-only '
                              f'agg backend); the figures are written to {out} all the same\n'), printed
    assert printed.count('note: --show') == 1
    assert sorted(os.listdir(out)) == ['confusion_article.png', 'confusion_color.png', 'confusion_gender.png',
                                       'metrics.json', 'predictions.png']


def test_a_backend_matplotlib_cannot_use_in_mplbackend_stops_no_script(small_split, tmp_path):
    # Jupyter and Colab set MPLBACKEND for the notebook's Python; a script started from a cell in an
    # environment without that backend ended at `import matplotlib`, with its traceback.
    checkpoint = untrained_checkpoint(small_split, tmp_path)
    out = tmp_path / 'eval'
    done = run_script('test.py', '--checkpoint', checkpoint, '--val-csv', small_split['val'], '--output', out,
                      '--device', 'cpu', env={'MPLBACKEND': 'no-such-backend'})
    assert done.returncode == 0, done.stderr
    assert 'MPLBACKEND' not in done.stdout + done.stderr  # not --show: figures are drawn with Agg
    assert sorted(os.listdir(out)) == ['confusion_article.png', 'confusion_color.png', 'confusion_gender.png',
                                       'metrics.json', 'predictions.png']


@pytest.mark.parametrize('asked, note', [
    ('svg', ''),  # taken as matplotlib's import takes it: the file-only backend --show then names
    ('no-such-backend', 'no-such-backend'),
    ('module://no_such_module_here.backend', 'module://no_such_module_here.backend'),  # failed as a figure opened
])
def test_show_takes_the_backend_in_mplbackend_where_matplotlib_can_use_it(asked, note):
    shown = ('import os, plots; print(plots.can_show("figures")); '
             'print(plots.pyplot(show=True).get_backend(), os.environ["MPLBACKEND"])')
    done = subprocess.run([sys.executable, '-c', shown], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, MPLBACKEND=asked, DISPLAY='', WAYLAND_DISPLAY=''))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    if note:
        assert lines.pop(0) == (f'note: --show: MPLBACKEND={note} names no backend this matplotlib can use; it is '
                                'left to matplotlib to choose one')
    backend = 'svg' if asked == 'svg' else 'agg'  # matplotlib's own choice where no display is
    assert lines == [f'note: --show: no display to open windows on (matplotlib fell back to its file-only {backend} '
                     'backend); the figures are written to figures all the same', 'False', f'{backend} {asked}']


def test_a_ctrl_c_that_closes_the_shown_figures_keeps_the_files_written(small_split, tmp_path, monkeypatch):
    # The windows opened inside the all-or-none block: a Ctrl-C to close them took back the
    # finished evaluation's files.
    import matplotlib.pyplot as plt
    from demo import load_test_script
    plots.pyplot()  # agg, where plt.show() would return at once

    def closed_by_a_ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(plt, 'show', closed_by_a_ctrl_c)
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'can_show', lambda folder: True)  # as where there is a display
    out = tmp_path / 'eval'
    with pytest.raises(KeyboardInterrupt):
        test_script.main(['--checkpoint', untrained_checkpoint(small_split, tmp_path), '--val-csv',
                                 small_split['val'], '--output', str(out), '--device', 'cpu', '--show'])
    assert sorted(os.listdir(out)) == ['confusion_article.png', 'confusion_color.png', 'confusion_gender.png',
                                       'metrics.json', 'predictions.png']
    plt.close('all')



def test_test_py_show_keeps_its_four_figures_open_here_for_the_windows(small_split, tmp_path, monkeypatch):
    # Drawn in forked processes, they would be written, but no window would open for any.
    import matplotlib.pyplot as plt
    from demo import load_test_script
    plots.pyplot()  # agg
    plt.close('all')
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'can_show', lambda folder: True)  # as where there is a display
    shown = []

    def show_figures():  # each open figure's title; the grid's is its suptitle
        for figure in map(plt.figure, plt.get_fignums()):
            shown.append(figure.texts[0].get_text() if figure.texts else figure.axes[0].get_title())
    monkeypatch.setattr(test_script, 'show_figures', show_figures)
    try:
        test_script.main(['--checkpoint', untrained_checkpoint(small_split, tmp_path), '--val-csv', small_split['val'],
                          '--output', str(tmp_path / 'eval'), '--device', 'cpu', '--show'])
    finally:
        plt.close('all')
    assert [title.replace('\n', '').replace(' ', '') for title in shown] == [
        f'{name}:normalisedconfusionmatrix({small_split["val"]})'.replace(' ', '')
        for name in ('gender', 'articletype', 'colour')] + [
        'predictedgender/article/colour(truelabelinbracketswherewrong)']


def test_test_py_draws_each_heads_confusion_matrix_from_its_truth_and_its_answers(one_epoch_run, small_split,
                                                                                  tmp_path, monkeypatch):
    # Rows the true labels, columns the answers: the two swapped, a figure would still be drawn.
    import json
    from demo import load_test_script
    test_script = load_test_script()
    drawn = []
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: drawn.extend(jobs))
    test_script.main(['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--val-csv', small_split['val'],
                      '--output', str(tmp_path / 'eval'), '--device', 'cpu'])
    with open(tmp_path / 'eval' / 'metrics.json') as f:
        metrics = json.load(f)
    attributes = AttributesDataset(small_split['styles'])
    with open(small_split['val'], encoding='utf-8') as f:
        rows = [line.rstrip('\n').split(',') for line in f][1:]
    confusion = [args for draw, args in drawn if draw is test_script.plot_confusion_matrix]
    for head, column, (truth, predicted, names, *_) in zip(HEADS, (1, 2, 3), confusion):
        assert list(names) == attributes.labels(head)
        assert [names[i] for i in truth] == [row[column] for row in rows], head
        assert np.mean(np.asarray(truth) == np.asarray(predicted)) == pytest.approx(metrics[f'{head}_accuracy'])
    assert len(confusion) == 3


def test_test_py_replaces_its_own_files_and_no_file_of_the_users(small_split, tmp_path):
    # `test.py --output notes/` wrote metrics.json and the PNGs over the user's files of those names.
    from demo import load_test_script
    test_script = load_test_script()
    out = tmp_path / 'eval'
    out.mkdir()
    (tmp_path / 'never-loaded.pth').write_bytes(b'')  # there, but refused before it is loaded
    argv = ['--checkpoint', str(tmp_path / 'never-loaded.pth'), '--output', str(out)]
    png = 'is no figure of test.py (no PNG that it drew)'
    other_png, users_figure = tmp_path / 'other.png', tmp_path / 'users.png'
    Image.new('RGB', (4, 4)).save(other_png)  # a PNG, but not one matplotlib saved
    fig = plots.pyplot().figure()  # one matplotlib saved, as the user's own plot: it was replaced
    fig.savefig(users_figure)
    for name, mine, why in [('metrics.json', b'{"mine": 1}\n', "holds no metrics of test.py (its first line is "
                                                                 "'{\"mine\": 1}')"),
                            # not its bytes as characters ('\ufffdPNG')
                            ('metrics.json', b'\x89PNG', 'holds no metrics of test.py (it is not text)'),
                            ('metrics.json', other_png.read_bytes(), 'holds no metrics of test.py (it is a PNG '
                                                                     'picture)'),
                            # another tool's figures: a count of samples, but no checkpoint scored
                            ('metrics.json', b'{"val_samples": 40}\n', "holds no metrics of test.py (its first line "
                                                                        "is '{\"val_samples\": 40}')"),
                            ('confusion_gender.png', b'notes\n', png),
                            ('predictions.png', other_png.read_bytes(), png),
                            ('predictions.png', users_figure.read_bytes(), png)]:
        (out / name).write_bytes(mine)
        with pytest.raises(UserError) as error:
            test_script.main(argv)
        assert str(error.value) == (f'--output {out}: {out / name} {why}, and would be replaced; '
                                    'move it away or give another --output')
        assert (out / name).read_bytes() == mine
        (out / name).write_bytes(b'')  # an empty file is replaced
    checkpoint = untrained_checkpoint(small_split, tmp_path)
    argv = ['--checkpoint', checkpoint, '--val-csv', small_split['val'], '--output', str(out), '--device', 'cpu',
            '--grid', '4']
    for _ in range(2):  # the second run replaces the first one's files
        test_script.main(argv)
        assert sorted(os.listdir(out)) == ['confusion_article.png', 'confusion_color.png', 'confusion_gender.png',
                                           'metrics.json', 'predictions.png']
        assert all(plots.drawn_here(out / name) for name in os.listdir(out) if name.endswith('.png'))
    # A figure drawn before the mark, beside its metrics.json, is replaced too
    fig = plots.pyplot().figure()
    fig.savefig(out / 'predictions.png')
    test_script.main(argv)
    assert plots.drawn_here(out / 'predictions.png')


def a_last_evaluation(small_split, tmp_path):
    """test.py, a checkpoint, and the folder of its evaluation with each file's bytes."""
    from demo import load_test_script
    test_script = load_test_script()
    out = tmp_path / 'eval'
    checkpoint = untrained_checkpoint(small_split, tmp_path)
    test_script.main(['--checkpoint', checkpoint, '--val-csv', small_split['val'], '--output', str(out),
                      '--device', 'cpu', '--grid', '4'])
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    return test_script, checkpoint, out, before


@pytest.mark.parametrize('failure', [KeyboardInterrupt, lambda: OSError(28, 'No space left on device', 'x.png')])
def test_a_test_py_stopped_while_drawing_leaves_the_last_evaluations_files_as_they_were(small_split, tmp_path,
                                                                                         monkeypatch, failure):
    # Its new metrics.json stayed beside the last run's figures, with no sign of it.
    test_script, checkpoint, out, before = a_last_evaluation(small_split, tmp_path)
    (out / 'predictions.png').unlink()  # one the last run did not leave: none after the failed one either
    del before['predictions.png']

    def fails(*args):
        raise failure()
    monkeypatch.setattr(test_script, 'visualize_grid', fails)  # drawn in a process forked from here
    other = shutil.copy(checkpoint, str(tmp_path / 'other.pth'))  # named in metrics.json: another file
    with pytest.raises((UserError, RuntimeError), match='1 of 4 figures could not be drawn'):
        test_script.main(['--checkpoint', other, '--val-csv', small_split['val'], '--output', str(out),
                          '--device', 'cpu'])
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_a_ctrl_c_to_test_py_once_its_figures_are_drawn_leaves_the_last_evaluations_files(small_split, tmp_path,
                                                                                         monkeypatch):
    # To test.py itself, not to a drawing process: all four new figures written, and all put back.
    test_script, checkpoint, out, before = a_last_evaluation(small_split, tmp_path)
    drawn = []

    def draw_then_ctrl_c(*args, **kwargs):
        draw_figures(*args, **kwargs)
        drawn.extend(name for name in os.listdir(out) if not name.startswith('.tmp-') and name.endswith('.png'))
        raise KeyboardInterrupt
    monkeypatch.setattr(test_script, 'draw_figures', draw_then_ctrl_c)
    other = shutil.copy(checkpoint, str(tmp_path / 'other.pth'))  # named in metrics.json: another file
    with pytest.raises(KeyboardInterrupt):
        test_script.main(['--checkpoint', other, '--val-csv', small_split['val'], '--output', str(out),
                          '--device', 'cpu', '--grid', '8'])
    assert len(drawn) == 4
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_the_curves_draw_each_splits_loss_and_each_heads_accuracy(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig))

    def accuracies(prefix, gender, article, colour):
        return {f'{prefix}gender_accuracy': gender, f'{prefix}article_accuracy': article,
                f'{prefix}color_accuracy': colour}
    history = [{'epoch': 1, 'train_loss': 3.0, **accuracies('train_', 0.25, 0.3, 0.35),
                'val_loss': None},  # not validated, as a checkpoint's history may say it (checkpoint.is_epoch_row)
               {'epoch': 2, 'train_loss': 2.0, **accuracies('train_', 0.5, 0.55, 0.6),  # validated on epochs 2, 3
                'val_loss': 2.5, **accuracies('', 0.4, 0.45, 0.7)},
               {'epoch': 3, 'train_loss': 1.5, **accuracies('train_', 0.75, 0.8, 0.85),
                'val_loss': 2.25, **accuracies('', 0.375, 0.5, 0.65)}]
    plots.plot_curves(history, str(tmp_path / 'curves.png'))
    (fig,) = drawn
    loss, accuracy = fig.axes

    def lines(ax):
        return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert lines(loss) == {'train': ([1, 2, 3], [3.0, 2.0, 1.5]), 'validation': ([2, 3], [2.5, 2.25])}
    assert lines(accuracy) == {
        'gender (train)': ([1, 2, 3], [0.25, 0.5, 0.75]), 'gender (validation)': ([2, 3], [0.4, 0.375]),
        'article type (train)': ([1, 2, 3], [0.3, 0.55, 0.8]), 'article type (validation)': ([2, 3], [0.45, 0.5]),
        'colour (train)': ([1, 2, 3], [0.35, 0.6, 0.85]), 'colour (validation)': ([2, 3], [0.7, 0.65])}
    colours = [line.get_color() for line in accuracy.get_lines()]  # a head's two lines in one colour
    assert colours[0::2] == colours[1::2] and len(set(colours)) == 3
    assert (loss.get_title(), loss.get_ylabel(), accuracy.get_title(), accuracy.get_ylim()) == (
        'Loss', 'loss (sum of the three heads)', 'Accuracy', (0, 1))
    assert [text.get_text() for text in loss.get_legend().get_texts()] == ['train', 'validation']


def test_the_curves_are_saved_at_100_dpi(tmp_path):
    # 11 x 4 inches; the confusion matrices are sized for about 16 pixels a class at this resolution.
    row = {'epoch': 1, 'train_loss': 1.0, **{f'train_{head}_accuracy': 0.5 for head in HEADS}}
    plots.plot_curves([row], str(tmp_path / 'curves.png'))
    with Image.open(tmp_path / 'curves.png') as img:
        assert img.size == (1100, 400)


def test_a_confusion_matrix_names_the_classes_it_shows(tmp_path, monkeypatch):
    # Class b is neither in the set nor predicted: a and c, not the first two names.
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig.axes[0]))
    plot_confusion_matrix(np.array([0, 2]), np.array([2, 2]), ['a', 'b', 'c'], 't', str(tmp_path / 'c.png'))
    (ax,) = drawn
    assert [label.get_text() for label in ax.get_xticklabels()] == ['a', 'c']
    assert [label.get_text() for label in ax.get_yticklabels()] == ['a', 'c']


@pytest.mark.parametrize('classes, values, fontsize', [(15, 15 * 15, 10), (16, 0, 6)])
def test_a_confusion_matrix_writes_its_values_up_to_15_classes(tmp_path, monkeypatch, classes, values, fontsize):
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig.axes[0]))
    truth = np.arange(classes)
    plot_confusion_matrix(truth, truth, [f'class {i}' for i in truth], 't', str(tmp_path / 'c.png'))
    (ax,) = drawn
    assert len(ax.texts) == values
    assert {label.get_fontsize() for label in ax.get_xticklabels() + ax.get_yticklabels()} == {fontsize}


def test_a_greyed_out_row_is_grey_in_the_picture(tmp_path, monkeypatch):
    # The band lies over the matrix's colours: under them it would be drawn, and hidden.
    pixels = []

    def render(fig, path):
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())
        for cell in ((0.35, 0), (1.35, 1)):  # in a's right answers, clear of the value; in b, only predicted
            x, y = fig.axes[0].transData.transform(cell)
            pixels.append(tuple(rgba[rgba.shape[0] - int(y), int(x), :3]))
    monkeypatch.setattr(plots, 'save_figure', render)
    plot_confusion_matrix(np.array([0, 0]), np.array([0, 1]), ['a', 'b'], 't', str(tmp_path / 'c.png'))
    blue, grey = pixels
    assert grey == (211, 211, 211)  # lightgrey
    assert blue[2] > blue[0] + 40  # Blues at 0.5


def test_figures_drawn_for_show_stay_open_in_this_process_and_the_others_are_closed(tmp_path):
    # test.py --show draws its figures here, one after another, and opens a window for each.
    plt = plots.pyplot()  # agg
    plt.close('all')
    try:
        draw_figures(figures(tmp_path), parallel=False)
        assert plt.get_fignums() == []
        draw_figures([(function, args + (True,)) for function, args in figures(tmp_path)], parallel=False)
        assert len(plt.get_fignums()) == 2
    finally:
        plt.close('all')


def test_each_picture_in_the_grid_is_titled_with_its_predictions_and_the_true_labels_it_missed(tmp_path,
                                                                                                monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig))
    predicted = {'gender': np.array([0, 0]), 'article': np.array([1, 2]), 'color': np.array([0, 1])}
    truth = {'gender': np.array([0, 1]), 'article': np.array([1, 0]), 'color': np.array([0, 1])}
    visualize_grid(np.zeros((2, 3, 80, 60), np.float32), predicted, truth, Names(), str(tmp_path / 'grid.png'),
                   columns=2)
    (fig,) = drawn
    assert [(ax.get_title(), ax.title.get_color()) for ax in fig.axes] == [
        ('Men\nJeans\nBlack', 'black'), ('Men (Women)\nWatches (Shirts)\nWhite', 'firebrick')]
    assert [text.get_text() for text in fig.texts] == [
        'predicted gender / article / colour (true label in brackets where wrong)']


def test_white_and_black_pictures_are_shown_within_the_range_matplotlib_takes():
    # Undone in float32, white came back a little over 1: matplotlib clipped it with a warning.
    from dataset import val_transform
    for colour in ((255, 255, 255), (0, 0, 0)):
        picture = plots.to_picture(val_transform(Image.new('RGB', (60, 80), colour)).numpy())
        assert 0 <= picture.min() and picture.max() <= 1
        np.testing.assert_allclose(picture, np.full((80, 60, 3), colour[0] / 255), atol=1e-6)


def failing_late(path):
    time.sleep(0.5)  # after the other job's failure
    open(path, 'w')


def failing_at_once(path):
    open(path, 'w')


def test_the_figures_that_failed_are_named_in_the_order_of_the_jobs(tmp_path):
    first, second = str(tmp_path / 'z' / 'first.png'), str(tmp_path / 'a' / 'second.png')  # neither folder is there
    with pytest.raises(UserError) as error:
        draw_figures([(failing_late, (first,)), (failing_at_once, (second,))], parallel=True)
    assert str(error.value) == (f'2 of 2 figures could not be drawn: {first}: No such file or directory; '
                                f'{second}: No such file or directory')


CTRL_C_IN_A_FORK_HANDLER = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from plots import draw_figures

def ctrl_c_once():  # in the parent, as the first drawing process is forked
    if not fired:
        fired.append(1)
        signal.raise_signal(signal.SIGINT)

def slow_figure(path):
    time.sleep(20)

fired = []
os.register_at_fork(after_in_parent=ctrl_c_once)
began = time.monotonic()
try:
    draw_figures([(slow_figure, ('a.png',)), (slow_figure, ('b.png',))])
except KeyboardInterrupt:
    print(time.monotonic() - began)
"""


def test_a_ctrl_c_in_a_fork_handler_as_the_drawing_processes_start_is_not_lost():
    # Raised in an os.register_at_fork handler, Python drops it with a warning: the figures were
    # drawn to the end, and test.py went on as if no Ctrl-C had come. A fresh process: such a
    # handler stays registered for good.
    done = subprocess.run([sys.executable, '-c', CTRL_C_IN_A_FORK_HANDLER.format(root=ROOT)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and 'Exception ignored' not in done.stderr, done.stderr
    assert done.stdout and float(done.stdout) < 5, done.stdout  # seconds to the KeyboardInterrupt, not 20


def test_after_one_epoch_the_training_curves_are_drawn_too(tmp_path, monkeypatch):
    # A line through one point draws nothing: after `--epochs 1` only the validation dots showed.
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig))
    row = {'epoch': 1, 'train_loss': 7.6, 'val_loss': 7.2, **{f'train_{head}_accuracy': 0.3 for head in HEADS},
           **{f'{head}_accuracy': 0.4 for head in HEADS}}
    plots.plot_curves([row], str(tmp_path / 'curves.png'))
    (fig,) = drawn
    assert all(line.get_marker() not in ('None', '', None) for ax in fig.axes for line in ax.get_lines())


@pytest.mark.parametrize('classes', [5, 30])
def test_confusion_matrix_shades_run_from_0_to_1_whatever_the_largest_share(tmp_path, monkeypatch, classes):
    # Stretched to the largest share, a class recognised 60% of the time was as dark as one always
    # recognised, and two checkpoints' figures could not be compared; above 15 classes no value said it.
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig))
    truth = np.repeat(np.arange(classes), 5)
    predicted = np.where(np.arange(len(truth)) % 5 < 3, truth, (truth + 1) % classes)  # 60% right
    plot_confusion_matrix(truth, predicted, [f'class {i}' for i in range(classes)], 't', str(tmp_path / 'c.png'))
    (fig,) = drawn
    assert fig.axes[0].images[0].get_clim() == (0, 1)
    if classes > 15:  # no values written: a colour bar reads the shades
        assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "share of the true class's pictures"
    else:  # each value legible on its shade: 0.60 on a mid blue in white, 0.40 on a light one in black
        assert len(fig.axes) == 1
        colours = {text.get_text(): text.get_color() for text in fig.axes[0].texts}
        assert (colours['0.60'], colours['0.40'], colours['0.00']) == ('white', 'black', 'black')


def test_grid_captions_with_the_real_datas_long_names_stay_in_their_column(tmp_path, monkeypatch):
    # '(Unisex, Face Scrub and Exfoliator, Fluorescent Green)' on one line ran over both neighbours.
    spans = []

    def measure(fig, path):
        renderer, column = fig.canvas.get_renderer(), fig.bbox.width / 4
        spans.extend((ax.title.get_window_extent(renderer), i * column, (i + 1) * column)
                     for i, ax in enumerate(fig.axes[:4]))
    monkeypatch.setattr(plots, 'save_figure', measure)
    vocab = {'gender': ['Unisex', 'Women'], 'article': ['Face Scrub and Exfoliator', 'Face Wash and Cleanser'],
             'color': ['Fluorescent Green', 'Turquoise Blue']}
    zeros = {head: np.zeros(4, dtype=int) for head in HEADS}
    visualize_grid(np.zeros((4, 3, 80, 60), np.float32), zeros, {head: p + 1 for head, p in zeros.items()},
                   AttributesDataset(vocab=vocab), str(tmp_path / 'grid.png'), columns=4)
    assert len(spans) == 4
    assert all(left <= extent.x0 and extent.x1 <= right for extent, left, right in spans), spans
    assert plots.grid_caption(['Unisex', 'Face Scrub and Exfoliator', 'Fluorescent Green'],
                              ['Women', 'Face Wash and Cleanser', 'Fluorescent Green']) == (
        'Unisex (Women)\nFace Scrub and Exfoliator\n(Face Wash and Cleanser)\nFluorescent Green')


@pytest.mark.parametrize('classes, fontsize', [(10, 10), (40, 6)])
def test_a_confusion_matrix_with_a_long_class_name_keeps_its_room_and_its_title(tmp_path, monkeypatch, recwarn,
                                                                                  classes, fontsize):
    # A 48-character colour squeezed a 10-class matrix into a corner, 2.5 inches of a 6-inch figure, its
    # values run together and its title cut off at the edge; tight_layout gave up with a warning.
    drawn = []

    def measure(fig, path):
        fig.canvas.draw()  # the ticks in their places, as the figure is saved
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        texts = [ax.title, *ax.get_xticklabels(), *ax.get_yticklabels()]
        drawn.append((ax.get_window_extent(renderer), [t.get_window_extent(renderer) for t in texts], fig.bbox,
                      [t.get_text() for t in ax.get_yticklabels()]))
    monkeypatch.setattr(plots, 'save_figure', measure)
    names = [f'class {i}' for i in range(classes)]
    names[3] = 'Navy Blue with a Hint of Midnight Purple Shimmer'
    names[4] = 'A ' + 'very ' * 40 + 'long description typed in as a colour'
    truth = np.arange(classes)
    plot_confusion_matrix(truth, truth, names, 'colour: normalised confusion matrix (val.csv)', str(tmp_path / 'c'))
    plot_confusion_matrix(truth, truth, [f'class {i}' for i in range(classes)], 't', str(tmp_path / 'c'))
    (matrix, texts, figure, ticks), (short_matrix, *_) = drawn
    assert matrix.width >= 0.8 * short_matrix.width, (matrix.width, short_matrix.width)
    assert all(0 <= t.x0 and t.x1 <= figure.x1 and 0 <= t.y0 and t.y1 <= figure.y1 for t in texts), (texts, figure)
    # Shortened in the middle past 40 characters, its beginning and its end kept
    assert ticks[3] == 'Navy Blue with a Hi\u2026ight Purple Shimmer'
    assert ticks[4] == 'A very very very ve\u2026yped in as a colour' and len(ticks[4]) <= 40
    assert not [w for w in recwarn if 'tight' in str(w.message).lower()]


def test_a_grid_too_large_for_pillows_check_of_a_picture_is_still_known_for_test_pys(tmp_path, monkeypatch):
    # A --grid of 3,617 pictures or more is a PNG over 179 megapixels, which Image.open refuses as a
    # possible decompression bomb: the next test.py took its own predictions.png for the user's.
    from demo import load_test_script
    test_script = load_test_script()
    fig = plots.pyplot().figure(figsize=(2, 2))
    plots.save_figure(fig, str(tmp_path / 'predictions.png'))  # 200 x 200 pixels
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)  # 200 x 200 is then over twice the limit, as Pillow's
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / 'predictions.png')
    assert plots.drawn_here(str(tmp_path / 'predictions.png'))
    test_script.check_only_outputs_replaced(str(tmp_path), '--output out')  # not refused


def test_grid_captions_with_very_long_names_stay_clear_of_the_pictures_and_the_columns(tmp_path, monkeypatch,
                                                                                        recwarn):
    # Names of 67 characters, wrong on all three heads, made captions of 15 lines: tight_layout gave up
    # with a warning, and the captions ran over the pictures above them and into the next columns.
    drawn = []

    def measure(fig, path):
        fig.canvas.draw()  # the captions in their places, as the figure is saved
        renderer, column = fig.canvas.get_renderer(), fig.bbox.width / 4
        drawn.extend((ax.title.get_window_extent(renderer), ax.get_window_extent(renderer), i % 4 * column,
                      (i % 4 + 1) * column, ax.get_title()) for i, ax in enumerate(fig.axes))
    monkeypatch.setattr(plots, 'save_figure', measure)
    name = 'Casual Shoes for Everyday Walking in the City and Countryside Alike'
    vocab = {head: [f'{name} {head} one', f'{name} {head} two'] for head in HEADS}
    zeros = {head: np.zeros(8, dtype=int) for head in HEADS}
    visualize_grid(np.zeros((8, 3, 80, 60), np.float32), zeros, {head: p + 1 for head, p in zeros.items()},
                   AttributesDataset(vocab=vocab), str(tmp_path / 'grid.png'), columns=4)
    assert len(drawn) == 8
    assert all(left <= caption.x0 and caption.x1 <= right for caption, _, left, right, _ in drawn), drawn
    for (_, picture_above, *_), (caption, *_) in zip(drawn[:4], drawn[4:]):
        assert caption.y1 <= picture_above.y0 + 1, (caption, picture_above)
    assert '\u2026' in drawn[0][-1] and drawn[0][-1].count('\n') + 1 <= 9
    # Wrong, though both names shorten alike: both whole, or the caption said one name twice
    running = name.replace('Walking', 'Running')
    assert plots.grid_caption(['M', name, 'C'], ['M', running, 'C']).replace('\n', ' ') == f'M {name} ({running}) C'
    assert not [w for w in recwarn if 'tight' in str(w.message).lower()]


def test_long_class_names_that_differ_only_in_their_middle_are_told_apart_in_a_confusion_matrix(tmp_path,
                                                                                                   monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, **_: drawn.append(fig.axes[0]))
    walking = 'Casual Shoes for Everyday Walking in the City and Countryside Alike'
    names = [walking, walking.replace('Walking', 'Running'), 'Sandals for the Beach, the Pool and the Garden Path']
    plot_confusion_matrix(np.arange(3), np.arange(3), names, 't', str(tmp_path / 'c.png'))
    (ax,) = drawn
    # Both shortened, 'Casual Shoes for Ev\u2026d Countryside Alike': whole; the third shortened still
    assert [label.get_text() for label in ax.get_yticklabels()] == [
        walking, walking.replace('Walking', 'Running'), 'Sandals for the Bea\u2026and the Garden Path']


def test_the_grid_is_laid_out_once_without_measuring_the_pictures_hidden_ticks(tmp_path, monkeypatch):
    # Each caption, placed by matplotlib, measured its picture's hidden tick labels as the grid was
    # laid out and drawn, and savefig laid the figure out once more: 13 to 14 s for 300 pictures, now 7.
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure
    calls = {'ticks measured': 0, 'figure drawn': 0}

    def counted(name, method):
        def count(*args, **kwargs):
            calls[name] += 1
            return method(*args, **kwargs)
        return count
    monkeypatch.setattr(Axis, 'get_tightbbox', counted('ticks measured', Axis.get_tightbbox))
    monkeypatch.setattr(Figure, 'draw', counted('figure drawn', Figure.draw))
    wrong = {head: np.zeros(10, dtype=int) for head in HEADS}
    visualize_grid(np.zeros((10, 3, 80, 60), np.float32), wrong, {head: p + 1 for head, p in wrong.items()},
                   Names(), str(tmp_path / 'grid.png'))
    assert calls == {'ticks measured': 0, 'figure drawn': 1}
    assert Image.open(tmp_path / 'grid.png').size == (1520, 520)  # 2 rows of 8, as before



def test_a_grid_over_the_most_draws_the_first_pictures_and_says_so_before_the_evaluation(small_split, tmp_path,
                                                                                           monkeypatch, capsys):
    # --grid 2100 drew for 106 s a PNG of 1,520 x 68,380 pixels, with no word of it.
    from demo import load_test_script
    test_script = load_test_script()
    grids = []

    def draw(figures, **kwargs):
        grids.extend(len(images) for function, (images, *_) in figures if function is visualize_grid)
        draw_figures(figures, **kwargs)
    monkeypatch.setattr(test_script, 'draw_figures', draw)
    monkeypatch.setattr(test_script, 'MOST_IN_GRID', 8)  # the small split holds 24 pictures
    checkpoint = untrained_checkpoint(small_split, tmp_path)
    argv = ['--checkpoint', checkpoint, '--val-csv', small_split['val'], '--device', 'cpu', '--grid']
    for grid, drawn in (('12', 8), ('8', 8), ('5', 5)):
        test_script.main(argv + [grid, '--output', str(tmp_path / grid)])
        assert grids.pop() == drawn
        assert Image.open(tmp_path / grid / 'predictions.png').size == (1520, 260)  # one row of 8
        assert os.path.getsize(tmp_path / grid / 'metrics.json')
    out = capsys.readouterr().out
    note = ('note: --grid 12: the prediction grid draws the first 8 of the 24 pictures (1 row of 8); '
            'metrics.json and the confusion matrices count every picture\n')
    assert out.count('note: --grid') == 1 and out.index(note) < out.index('24 images from')  # before the work
    # A --grid over the split's size draws all of it, and none is refused; where that is no more than
    # the most, nothing needs saying (it said the grid drew 512 pictures at most)
    for most in (512, 24):
        monkeypatch.setattr(test_script, 'MOST_IN_GRID', most)
        test_script.main(argv + ['30', '--output', str(tmp_path / '30')])
        assert grids.pop() == 24 and 'note: --grid' not in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        test_script.main(argv + ['0', '--output', str(tmp_path / '0')])
    assert stop.value.code == 2 and '--grid: 0 must be at least 1' in capsys.readouterr().err
    # Any larger number is capped alike: 10**20 was refused, "must be below 2**63"
    monkeypatch.setattr(test_script, 'MOST_IN_GRID', 8)
    test_script.main(argv + [str(10**20), '--output', str(tmp_path / 'huge')])
    assert grids.pop() == 8 and f'note: --grid {10**20}: the prediction grid draws the first 8 of the 24 pictures' \
        in capsys.readouterr().out
