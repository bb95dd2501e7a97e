# test.py draws its four figures in forked processes on Linux: the same files as drawing them one
# after another, a figure that fails is reported, not lost, and a Ctrl-C is reported once.
import os
import sys

import numpy as np
import pytest

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


def test_a_figure_that_fails_in_its_process_is_reported(tmp_path):
    jobs = figures(tmp_path)
    function, args = jobs[0]
    jobs[0] = (function, args[:4] + (os.path.join(tmp_path, 'no such folder', 'confusion.png'),))
    with pytest.raises(RuntimeError, match='1 of 2 figures could not be drawn'):
        draw_figures(jobs, parallel=True)
    assert os.path.exists(tmp_path / 'grid.png')  # the other one is still drawn


def interrupted(path):
    raise KeyboardInterrupt


def test_a_ctrl_c_stops_the_drawing_processes_without_a_traceback_from_each(tmp_path, capfd):
    # A terminal's Ctrl-C reaches all of test.py's processes; test.py itself reports it, once.
    jobs = [(interrupted, (tmp_path / 'confusion.png',)), (interrupted, (tmp_path / 'grid.png',))]
    with pytest.raises(RuntimeError, match='2 of 2 figures could not be drawn'):
        draw_figures(jobs, parallel=True)
    assert 'Traceback' not in capfd.readouterr().err
