# .ci/run is CI: it must run exactly the README's test command, unpack the real data for it when
# ../shared/data has it, and remove the 180 MB it unpacked whether the tests pass or fail. Here
# it runs in a copy of its layout with a stand-in `python3` on PATH, which makes a `.venv` whose
# `pip` does nothing and whose `python` (the tests' run) records what it was given.
import os
import re
import shutil
import stat
import subprocess
import tarfile

import pytest

from conftest import ROOT

FAKE_PYTHON3 = '''#!/usr/bin/env bash
# Only what .ci/run asks of python3: `python3 -m venv .venv`.
[ "$1 $2 $3" = "-m venv .venv" ] || { echo "unexpected: python3 $*" >&2; exit 3; }
mkdir -p .venv/bin
printf '#!/usr/bin/env bash\\necho "pip $*" >> "$CI_RECORD"\\n' > .venv/bin/pip
cat > .venv/bin/python <<'EOF'
#!/usr/bin/env bash
echo "python $*" >> "$CI_RECORD"
echo "FASHION_DATA=${FASHION_DATA-unset}" >> "$CI_RECORD"
[ -n "${FASHION_DATA-}" ] && ls "$FASHION_DATA" >> "$CI_RECORD"
exit "$TESTS_EXIT"
EOF
chmod +x .venv/bin/pip .venv/bin/python
'''


def readme_test_command():
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        commands = re.findall(r'^python3 -m venv \.venv && .*$', f.read(), re.MULTILINE)
    return commands[1]  # the second of the two commands at the top


def ci_layout(tmp_path, with_archive):
    """<tmp>/repo/.ci/run beside <tmp>/shared/data, as CI checks it out, and a PATH whose
    python3 is the stand-in."""
    repo = tmp_path / 'repo'
    (repo / '.ci').mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, '.ci', 'run'), repo / '.ci' / 'run')
    if with_archive:
        dataset = tmp_path / 'fashion-product-images'
        (dataset / 'images').mkdir(parents=True)
        (dataset / 'styles.csv').write_text('id,gender\n')
        (tmp_path / 'shared' / 'data').mkdir(parents=True)
        with tarfile.open(tmp_path / 'shared' / 'data' / 'fashion-product-images-small.tar.gz', 'w:gz') as tar:
            tar.add(dataset, arcname='fashion-product-images')
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'python3').write_text(FAKE_PYTHON3)
    (bin_dir / 'python3').chmod(stat.S_IRWXU)
    return repo, f'{bin_dir}{os.pathsep}{os.environ["PATH"]}'


def run_ci(tmp_path, with_archive, tests_exit):
    repo, path = ci_layout(tmp_path, with_archive)
    record = tmp_path / 'record.txt'
    env = {k: v for k, v in os.environ.items() if k != 'FASHION_DATA'}
    env.update(PATH=path, CI_RECORD=str(record), TESTS_EXIT=str(tests_exit))
    done = subprocess.run(['bash', str(repo / '.ci' / 'run')], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    return done, record.read_text().splitlines()


def test_ci_runs_the_readmes_test_command_exactly():
    with open(os.path.join(ROOT, '.ci', 'run'), encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert readme_test_command() in lines


@pytest.mark.parametrize('tests_exit', [0, 1])
def test_ci_unpacks_the_data_for_the_tests_and_removes_it_passed_or_failed(tmp_path, tests_exit):
    done, record = run_ci(tmp_path, with_archive=True, tests_exit=tests_exit)
    assert done.returncode == tests_exit, done.stderr
    assert record[0] == 'pip install -q -r requirements.txt -r requirements-dev.txt'
    assert record[1] == 'python -m pytest -q tests'
    data = record[2].removeprefix('FASHION_DATA=')
    assert os.path.basename(data) == 'fashion-product-images' and record[3:] == ['images', 'styles.csv']
    assert f'real dataset unpacked to {data}' in done.stdout
    assert not os.path.exists(os.path.dirname(data))  # the whole unpacked folder, gone


def test_ci_without_the_archive_runs_the_tests_without_the_real_data(tmp_path):
    done, record = run_ci(tmp_path, with_archive=False, tests_exit=0)
    assert done.returncode == 0, done.stderr
    assert record[1:] == ['python -m pytest -q tests', 'FASHION_DATA=unset']
