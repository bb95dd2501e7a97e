# The collection hook in conftest.py that starts the slow tests first: it must move whole modules
# (their fixtures are made once in each test process), put a module's slow tests at its head, and
# keep every other order as collected.
from pathlib import Path

from conftest import pytest_collection_modifyitems


class StandIn:
    """What the hook reads of a collected test: its module's path and its markers."""

    def __init__(self, module, name, slow=False):
        self.path = Path(module)
        self.name = name
        self.slow = slow

    def get_closest_marker(self, name):
        return object() if name == 'slow' and self.slow else None


def ordered(items):
    pytest_collection_modifyitems(items)
    return [item.name for item in items]


def test_modules_with_slow_tests_start_first_each_kept_together():
    items = [StandIn('a.py', 'a1'), StandIn('a.py', 'a2'),
             StandIn('b.py', 'b1'), StandIn('b.py', 'b2', slow=True), StandIn('b.py', 'b3'),
             StandIn('c.py', 'c1'),
             StandIn('d.py', 'd1', slow=True), StandIn('d.py', 'd2')]
    assert ordered(items) == ['b2', 'b1', 'b3', 'd1', 'd2', 'a1', 'a2', 'c1']


def test_several_slow_tests_of_a_module_keep_their_order():
    items = [StandIn('a.py', 'a1'), StandIn('a.py', 'a2', slow=True), StandIn('a.py', 'a3'),
             StandIn('a.py', 'a4', slow=True)]
    assert ordered(items) == ['a2', 'a4', 'a1', 'a3']


def test_without_slow_tests_the_order_is_as_collected():
    items = [StandIn(f'{module}.py', f'{module}{n}') for module in 'zya' for n in range(3)]
    names = [item.name for item in items]
    assert ordered(items) == names
