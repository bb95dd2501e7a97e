# Bad input gets one clear line naming the file and the problem, and a non-zero exit; bad rows
# are skipped and counted by reason.
import contextlib
import csv
import errno
import gc
import io
import json
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import PIL
from PIL import Image, ImageOps
from torch.utils.data import DataLoader

import catalog
import dataset
import predict
import split_data
import train
from catalog import UNREADABLE, Style, image_problem, read_styles
from checkpoint import checkpoint_load, checkpoint_save
from cli import (Terminated, UserError, ctrl_c_held, leave_stops_to_the_main_process, pick_device, run_cli,
                 stopping_signals_as_ctrl_c)
from conftest import ROOT, locked_by_another_process, run_script, train_args
from dataset import (AttributesDataset, FashionDataset, fitted_size, load_image, load_into_memory, missing_image,
                     to_rgb)
from sample_catalog import make_catalog

HEADER = 'id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName'
ROW = '{},Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Roadster Men Blue Tshirts'


def write(path, text, encoding='utf-8', newline='\n'):
    path.write_bytes(text.replace('\n', newline).encode(encoding))
    return str(path)


def assert_clean_failure(result, *words):
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith('error: ')
    for word in words:
        assert word in line, line


def python_c(code, *args, cwd=None):
    """`python -c CODE ARGS` in a process of its own: its status, its stdout and its stderr."""
    result = subprocess.run([sys.executable, '-c', code, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout, result.stderr


def test_a_product_name_over_the_csv_modules_field_limit_is_read_not_taken_for_a_quote_left_open(tmp_path):
    # 200,000 characters in one name (no quote anywhere) stopped the whole file: "line 3: field larger
    # than field limit (131072); a quote left open?"
    long_name = ROW.format(2) + 'x' * 200_000
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', '\n'.join([HEADER, ROW.format(1), long_name,
                                                                            ROW.format(3)]) + '\n'))
    assert [s.id for s in styles] == ['1', '2', '3'] and not skipped


@pytest.mark.parametrize('content,problem', [
    (None, 'no such file'),
    ('', 'empty'),
    ('\ufeff', 'empty'),  # only the byte-order mark a spreadsheet writes
    # A quote left open is named on its own line: where the row ends, after swallowing others (the
    # end of the file, line 142; line 5), is further on.
    (HEADER + '\n' + ROW.format(1) + '\n2,Men,"' + ('x' * 1000 + '\n') * 140,
     'line 3: a quoted field runs on to line 142'),
    ('\n'.join([HEADER, ROW.format(1), ROW.format(2).replace('Roadster', '"Roadster'), ROW.format(3), ROW.format(4) + ' 5" wide']),
     'line 3: a quoted field runs on to line 5'),
    ('\n'.join([HEADER, ROW.format(1), ROW.format(2).replace('Roadster', '"Roadster')]) + '\n',  # the last line's
     'line 3: a quoted field runs on to the end of the file'),
    ('\n'.join([HEADER, ROW.format(1), ROW.format(2).replace('Topwear', '"Topwear')]),  # and no line end after it
     'line 3: a quoted field runs on to the end of the file'),
    ('\r'.join([HEADER, ROW.format(1), ROW.format(2).replace('Roadster', '"Roadster')]) + '\r',  # an old Mac's lines
     'line 3: a quoted field runs on to the end of the file'),
    (HEADER + '\n', 'no rows'),
    (HEADER.replace('baseColour,', '') + '\n' + '1,Men,Apparel,Topwear,Tshirts,S,2012,C,N\n',
     'missing column(s) baseColour'),
    (b'\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01', 'not a CSV file: its first line holds NUL bytes'),  # a JPEG named
    (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\r\x8f\xff', 'not a CSV file but a PNG picture'),  # a note of its \r first
    (HEADER.replace('masterCategory', 'gender') + '\n' + ROW.format(1) + '\n',  # the first one was used
     'the column gender is named more than once in the header (columns 2 and 3); give each column its own name'),
])
def test_unusable_styles_csv_is_one_clear_error(tmp_path, content, problem):
    images = tmp_path / 'images'
    images.mkdir()
    if isinstance(content, bytes):
        (tmp_path / 'styles.csv').write_bytes(content)
    elif content is not None:
        write(tmp_path / 'styles.csv', content)
    result = run_script('split_data.py', '--input', tmp_path, '--output', tmp_path)
    assert_clean_failure(result, str(tmp_path / 'styles.csv'), problem)
    assert 'note:' not in result.stdout  # nothing read as Windows-1252 first



CAPITALISED = 'ID,Gender,MasterCategory,SubCategory,ArticleType,BaseColour,Season,Year,Usage,ProductDisplayName'


@pytest.mark.parametrize('header,hint', [
    # a spreadsheet's CSV in a language whose decimal mark is the comma, and its 'text' format
    (HEADER.replace(',', ';'), '; its columns are separated by semicolons: save it with commas'),
    (HEADER.replace(',', '\t'), '; its columns are separated by tabs: save it with commas'),
    (HEADER.replace('baseColour', 'BaseColour').replace('gender', 'Gender'),
     '; the names are read in their case: rename Gender to gender, BaseColour to baseColour'),
    (HEADER.replace('baseColour', 'colour'), ''),
    # Both: the case was said only once the file was saved with commas, and neither before
    (CAPITALISED.replace(',', ';'), '; its columns are separated by semicolons, and the names are read in their case: '
                                    'save it with commas, and rename ID to id, Gender to gender, ArticleType to '
                                    'articleType, BaseColour to baseColour'),
    (HEADER.replace('gender', 'Gender').replace(',', '\t'), '; its columns are separated by tabs, and the names are '
                                                           'read in their case: save it with commas, and rename Gender '
                                                           'to gender'),
    (CAPITALISED.replace(',', ';').replace('BaseColour', 'Colour'), ''),  # no baseColour in any case: nothing to say
    ('sep=;\n' + HEADER.replace(',', ';'), "; its first line, 'sep=;', names the separator of its columns: save it "
                                          'with commas'),  # a spreadsheet's note of it
])
def test_a_header_with_other_separators_or_names_in_another_case_says_so(tmp_path, header, hint):
    path = write(tmp_path / 'styles.csv', header + '\n' + ROW.format(1).replace(',', header[2]) + '\n')
    with pytest.raises(UserError) as refused:
        read_styles(path)
    assert str(refused.value).endswith(' but needs id,gender,articleType,baseColour' + hint)


@pytest.mark.parametrize('separator,name', [(';', 'semicolons'), ('\t', 'tabs')])
def test_a_header_with_other_separators_and_quoted_names_says_so(tmp_path, separator, name):
    # LibreOffice's "quote all text cells": "id";"gender";..., read with commas as 'id;"gender";...';
    # the hint to save it with commas was left out
    def line(text):
        return separator.join(field if field.isdigit() else f'"{field}"' for field in text.split(','))
    path = write(tmp_path / 'styles.csv', line(HEADER) + '\n' + line(ROW.format(1)) + '\n')
    with pytest.raises(UserError) as refused:
        read_styles(path)
    assert str(refused.value).endswith(f' but needs id,gender,articleType,baseColour; its columns are separated by '
                                       f'{name}: save it with commas')


def test_a_header_of_semicolons_with_quoted_names_in_another_case_says_both(tmp_path):
    # "Id";"Gender";..., a spreadsheet's that quotes its text cells, read with commas as 'Id;"Gender";...'
    header = ';'.join(f'"{name}"' for name in CAPITALISED.replace('ID', 'Id').split(','))
    path = write(tmp_path / 'styles.csv', header + '\n' + ROW.format(1).replace(',', ';') + '\n')
    with pytest.raises(UserError) as refused:
        read_styles(path)
    assert str(refused.value).endswith('; its columns are separated by semicolons, and the names are read in their '
                                       'case: save it with commas, and rename Id to id, Gender to gender, ArticleType '
                                       'to articleType, BaseColour to baseColour')


@pytest.mark.parametrize('line_end', ['\n', '\r\n'])
def test_a_first_line_that_names_the_comma_as_separator_is_passed_over(tmp_path, line_end):
    # Excel's `sep=,`: "missing column(s) id, gender, articleType, baseColour; the header is 'sep='"
    text = line_end.join(['sep=,', HEADER, ROW.format(1), '', ROW.format(2).replace('Blue', 'NA')]) + line_end
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == ['1'] and skipped == {'baseColour is empty or NA': 1}
    left_open = text.replace('Roadster', '"Roadster', 1).removesuffix('Tshirts' + line_end) + 'Tshirts"' + line_end
    with pytest.raises(UserError, match=r'styles\.csv: line 3: a quoted field runs on to line 5; a quote left'):
        read_styles(write(tmp_path / 'styles.csv', left_open))  # lines counted
    # A stray \r in a name is told from a line end by the rows of the header's width: the header's, not `sep=,`'s
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text.replace('Roadster Men', 'Roadster\rMen', 1)))
    assert [s.id for s in styles] == ['1'] and skipped == {'baseColour is empty or NA': 1}


def test_a_catalog_folder_that_is_not_there_is_named(tmp_path):
    # It was named through its styles.csv: "nope/styles.csv: no such file"
    with pytest.raises(UserError, match=f'^--input {tmp_path / "nope"}: no such folder. Download the "Fashion '
                                        f'Product Images \\(Small\\)" dataset .* {tmp_path / "nope" / "styles.csv"} '):
        split_data.main(['--input', str(tmp_path / 'nope'), '--output', str(tmp_path)])


def test_a_header_of_a_file_that_is_no_csv_is_shown_in_part(tmp_path):
    # Random bytes with no NUL byte in their first line: an error line of 6,000 characters
    path = write(tmp_path / 'styles.csv', 'x' * 6000 + '\n' + ROW.format(1) + '\n')
    with pytest.raises(UserError, match=f"^{path}: missing column\\(s\\) id, gender, articleType, baseColour; the "
                                        f"header is '{'x' * 117}...' but needs id,gender,articleType,baseColour$"):
        read_styles(path)


@pytest.mark.parametrize('line_end', ['\n', '\r\n', '\r'])
def test_a_nul_byte_in_a_row_is_read_alike_whatever_ends_the_lines(tmp_path, line_end, csv_module):
    # Split at \n only, a file of \r line ends was one line, refused as holding NUL bytes.
    text = line_end.join([HEADER, ROW.format(1), ROW.format(2).replace('Roadster', 'Road\0ster')]) + line_end
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == ['1', '2'] and not skipped


@pytest.mark.parametrize('line_end', ['\n', '\r\n'])
def test_a_carriage_return_inside_a_line_is_read_as_a_space_not_as_a_line_end(tmp_path, capsys, line_end):
    # The row was cut there, and what followed counted as a row of its own: 4 rows read, 2 skipped
    text = line_end.join([HEADER, ROW.format(1).replace('Roadster Men', 'Roadster\rMen'),
                          ROW.format(2).replace('Blue', 'Navy\rBlue', 1), ROW.format(3)]) + line_end
    path = write(tmp_path / 'styles.csv', text)
    styles, skipped = read_styles(path)
    assert [(s.id, s.baseColour) for s in styles] == [('1', 'Blue'), ('2', 'Navy Blue'), ('3', 'Blue')]
    assert not skipped
    assert capsys.readouterr().out == f'note: {path}: 2 carriage returns inside its lines, read as spaces\n'


@pytest.mark.parametrize('added', ['a row in \\n', 'a row in \\n after the last \\r', 'a cell of two lines'])
def test_an_old_macs_file_with_a_line_feed_somewhere_is_read_by_its_returns(tmp_path, capsys, added):
    # One \n anywhere made every \r a space: its rows were one, "a header but no rows"
    rows = [ROW.format(i) for i in range(1, 5)]
    if added == 'a cell of two lines':  # a spreadsheet's: a name typed on two lines, quoted
        rows[1] = rows[1].replace('Roadster Men Blue Tshirts', '"Roadster Men\nBlue Tshirts"')
    text = '\r'.join([HEADER, *rows])
    if added.startswith('a row in'):  # as many \r as \n in the second: told by the header's end, not by counts
        text, rows = text + ('\r' if added == 'a row in \\n' else '\n') + ROW.format(5) + '\n', rows + [ROW.format(5)]
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == [str(i) for i in range(1, len(rows) + 1)]
    assert not skipped and capsys.readouterr().out == ''


@pytest.mark.parametrize('text', [
    HEADER + '\n' + ''.join(ROW.format(i) + '\r' for i in range(1, 6)),  # a header typed since, in \n
    ',,,,\n' + '\r'.join([HEADER] + [ROW.format(i) for i in range(1, 6)]) + '\r',  # a spreadsheet's blank row first
    '  \r\n' + '\r'.join([HEADER] + [ROW.format(i) for i in range(1, 6)]) + '\r'])
def test_rows_ending_in_carriage_returns_are_rows_whatever_ends_the_header(tmp_path, capsys, text):
    # Told by the header's end, four of five rows were glued into the first's fields, neither read
    # nor counted; after a blank line of spaces or commas, none was read
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == ['1', '2', '3', '4', '5'] and not skipped
    assert capsys.readouterr().out == ''


def ended_as(ends, header=HEADER, pad=''):
    """A styles.csv of rows 1, 2, ... each ended as `ends` says, in turn, after header (ended as the first)."""
    return header + ends[0] + ''.join(ROW.format(i) + pad + end for i, end in enumerate(ends[1:], 1))


@pytest.mark.parametrize('text', [
    ended_as(['\n'] * 3 + ['\r'] * 3 + ['\n'] * 2, header=HEADER + ',,'),  # a spreadsheet's trailing commas
    ended_as(['\n'] * 3 + ['\r'] * 3 + ['\n'] * 2, pad=',,'),
    ended_as(['\r'] * 7 + ['\n'], header=HEADER + ',,'),  # an old Mac's, a row added since in \n
    ended_as(['\r'] * 7 + ['\n'], pad=',,')])
def test_rows_ending_in_carriage_returns_are_rows_beside_a_spreadsheets_trailing_commas(tmp_path, capsys, text):
    # Their fields counted against the header's, trailing commas and all, no reading fitted: read
    # as spaces, the rows ending in \r were glued into one, neither read nor counted
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == [str(i) for i in range(1, 8)] and not skipped


@pytest.mark.parametrize('ends', [['\n'] * 3 + ['\r'] * 3 + ['\n'], ['\r'] * 3 + ['\n']])
def test_rows_ending_in_carriage_returns_with_their_last_columns_empty_are_rows(tmp_path, ends):
    # Counted up to their last field filled, they fitted the header in neither reading: glued
    # together as spaces, uncounted, or "a header but no rows"
    text = ended_as(ends).replace(',Casual,Roadster Men Blue Tshirts', ',,')
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == [str(i) for i in range(1, len(ends))] and not skipped


def test_stray_carriage_returns_in_names_with_a_comma_are_spaces(tmp_path, capsys):
    # 'Rock\rBlack, Grey Shoe': cut there, the row was as wide as the header, and glued back (11
    # fields) it was not counted as fitting: the \r were taken for line ends, and a row was lost
    rows = [ROW.format(i) for i in range(1, 9)]
    rows[1] = rows[1].replace('Roadster Men Blue Tshirts', 'Puma Men Rock\rBlack, Grey Shoe')
    rows[3] = rows[3].replace('Roadster Men Blue Tshirts', 'Puma Men Rock\rBlack, Grey Shoe')
    rows[5] = rows[5].replace('Blue', 'Navy\rBlue', 1)
    path = write(tmp_path / 'styles.csv', '\n'.join([HEADER, *rows]) + '\n')
    styles, skipped = read_styles(path)
    assert [s.id for s in styles] == [str(i) for i in range(1, 9)] and not skipped
    assert styles[5].baseColour == 'Navy Blue'
    assert capsys.readouterr().out == f'note: {path}: 3 carriage returns inside its lines, read as spaces\n'


def test_a_carriage_return_inside_the_header_is_a_space(tmp_path, capsys):
    # Taken for the header's end, it cut the header: "missing column(s) gender, articleType, baseColour"
    path = write(tmp_path / 'styles.csv', '\n'.join([HEADER.replace(',gender', ',\rgender'), ROW.format(1)]) + '\n')
    assert [s.id for s in read_styles(path)[0]] == ['1']
    assert capsys.readouterr().out == f'note: {path}: 1 carriage return inside its lines, read as spaces\n'


def test_a_cell_pasted_with_more_carriage_returns_than_the_file_has_lines_is_one_cell(tmp_path, capsys):
    # Counted against the \n, its 7 made the \r the line ends: the row cut into 8, all skipped
    text = '\n'.join([HEADER, ROW.format(1).replace('Roadster Men', 'pasted\rfrom\ra\rMac\rnote\rof\reight\rlines'),
                      ROW.format(2)]) + '\n'
    path = write(tmp_path / 'styles.csv', text)
    styles, skipped = read_styles(path)
    assert [s.id for s in styles] == ['1', '2'] and not skipped
    assert capsys.readouterr().out == f'note: {path}: 7 carriage returns inside its lines, read as spaces\n'


def test_a_folder_or_a_device_given_as_a_csv_is_named_as_what_it_is(small_split, tmp_path):
    # The catalog's folder for its styles.csv is an easy slip; /dev/null or a pipe is no file a
    # checkpoint can name again.
    catalog = small_split['catalog']['root']
    with pytest.raises(UserError, match=f'^{catalog}: a folder, not a CSV file \\(the catalog labels, styles.csv\\); '
                                        f'{os.path.join(catalog, "styles.csv")}, maybe$'):
        train.main(train_args(small_split, tmp_path, '--attributes_file', catalog))
    with pytest.raises(UserError, match=f'^{tmp_path}: a folder, not a CSV file \\(a split'):
        train.main(train_args(small_split, tmp_path, '--train-csv', tmp_path))
    with pytest.raises(UserError, match='^/dev/null: not a regular file \\(a split .*\\)$'):
        train.main(train_args(small_split, tmp_path, '--val-csv', '/dev/null'))
    assert os.listdir(tmp_path) == []

def test_missing_dataset_says_where_to_get_it_and_how_to_run_the_demo(tmp_path):
    for script in ('split_data.py', 'train.py'):
        result = run_script(script, cwd=str(tmp_path))  # not the project's folder: the demo named by its path
        assert_clean_failure(result, 'kaggle.com', f'python {shlex.quote(os.path.join(ROOT, "demo.py"))}` to try')


@pytest.mark.parametrize('train_csv,val_csv', [('splits/train.csv', 'splits/val.csv'),
                                               ('my splits/t.csv', 'my splits/v.csv')])
def test_the_advice_for_a_missing_split_followed_as_written_makes_it(small_split, tmp_path, monkeypatch,
                                                                     train_csv, val_csv):
    monkeypatch.chdir(tmp_path)
    os.symlink(small_split['catalog']['root'], 'fashion-product-images')  # the default catalog
    argv = ['--train-csv', train_csv, '--val-csv', val_csv]
    with pytest.raises(UserError) as error:
        train.check_inputs(train.parse_args(argv), None)
    command, *then = re.fullmatch(r'.*: no such file; run `(.*)` to make train.csv and val.csv'
                                  r'(?:, and pass them as (.*))?', str(error.value)).groups()
    words = shlex.split(command)
    assert words[0] == 'python' and os.path.samefile(words[1], os.path.join(ROOT, 'split_data.py'))  # from here
    split_data.main(words[2:] + ['--workers', '1'])
    if then[0]:
        argv = shlex.split(then[0])
    train.check_inputs(train.parse_args(argv), None)  # no error now
    args = train.parse_args(argv)
    assert os.path.isfile(args.train_csv) and os.path.isfile(args.val_csv)


def test_a_slip_in_the_name_of_a_split_names_the_one_there_not_how_to_make_another(small_split, tmp_path):
    # Followed, the advice to split again would have replaced the train.csv beside the slip.
    split = os.path.dirname(small_split['train'])
    typo = os.path.join(split, 'trian.csv')
    args = train.parse_args(['--attributes_file', small_split['styles'], '--train-csv', typo])
    with pytest.raises(UserError, match=f'^{re.escape(typo)}: no such file; {re.escape(small_split["train"])} is '
                                        f'there: --train-csv {re.escape(small_split["train"])}\\?$'):
        train.check_inputs(args, None)


def test_the_commands_a_script_advises_run_from_the_folder_it_was_run_in(tmp_path, monkeypatch):
    from cli import command, shown_path
    monkeypatch.chdir(ROOT)
    # the paths they name: short below the working folder, whole elsewhere, as given where relative
    assert shown_path(os.path.join(ROOT, 'checkpoints', 'run', 'last.pth')) == 'checkpoints/run/last.pth'
    assert shown_path(str(tmp_path / 'last.pth')) == str(tmp_path / 'last.pth')
    assert shown_path('./checkpoints/run/last.pth') == './checkpoints/run/last.pth'
    assert command('test.py', '--checkpoint', 'runs/my run/last.pth') == "python test.py --checkpoint 'runs/my run/last.pth'"
    monkeypatch.chdir(os.path.dirname(ROOT))  # the folder above the project's: a short name
    assert command('train.py') == f'python {shlex.quote(os.path.join(os.path.basename(ROOT), "train.py"))}'
    monkeypatch.chdir(tmp_path)  # elsewhere: the whole path
    assert command('train.py', '--resume', 'last.pth') == f'python {shlex.quote(ROOT + "/train.py")} --resume last.pth'
    (tmp_path / 'gone').mkdir()
    monkeypatch.chdir(tmp_path / 'gone')
    (tmp_path / 'gone').rmdir()  # a working folder deleted under the script
    assert command('demo.py') == f'python {shlex.quote(ROOT + "/demo.py")}'
    assert shown_path(str(tmp_path / 'last.pth')) == str(tmp_path / 'last.pth')


@pytest.mark.parametrize('name', ['my run', "it's", 'a\\b', 'esc\x1b[2J', 'two\nlines\r', 'caf\udce9', 'sep\u2028',
                                  'tag\U000e0001', 'dé 😀', ''])
def test_a_command_a_script_advises_names_each_file_when_pasted_into_a_shell(name):
    # A name holding a terminal's escape sequence was quoted '...' as it was: the terminal ran it,
    # and a line break split the command. Now in $'...', where \x1b names it as the shell reads it.
    from cli import command
    said = command('test.py', '--checkpoint', name, '--output', 'out')
    assert said.isprintable()
    words = subprocess.run(['bash', '-c', "printf '%s\\0' " + said], capture_output=True, check=True).stdout
    assert [os.fsdecode(word) for word in words.split(b'\0')[2:-1]] == ['--checkpoint', name, '--output', 'out']


def test_the_commands_said_start_the_python_running_them(tmp_path, monkeypatch):
    # The README runs .venv/bin/python without activating it: `python` in an "evaluate with:" or
    # "Resume with:" line was another, without PyTorch (a traceback: No module named 'torch').
    import cli
    venv = tmp_path / '.venv' / 'bin'
    monkeypatch.setattr(sys, 'executable', str(venv / 'python3'))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shutil, 'which', lambda name: '/usr/bin/python')
    assert cli.this_python() == '.venv/bin/python3'
    assert cli.command('test.py').startswith('.venv/bin/python3 ')
    (tmp_path / 'other').mkdir()
    monkeypatch.chdir(tmp_path / 'other')  # from elsewhere: the whole path
    assert cli.this_python() == str(venv / 'python3')
    monkeypatch.setattr(shutil, 'which', lambda name: str(venv / 'python'))  # activated: `python` is it
    assert cli.this_python() == 'python'
    # torchrun's, in a run's "Resume with": the one beside this Python, where the shell finds another
    monkeypatch.chdir(tmp_path)
    assert cli.this_torchrun() == 'torchrun'  # no torchrun there (python -m torch.distributed.run): the name
    venv.mkdir(parents=True)
    (venv / 'torchrun').touch()
    monkeypatch.setattr(shutil, 'which', lambda name: f'/usr/bin/{name}' if name == 'torchrun' else None)
    assert cli.this_torchrun() == '.venv/bin/torchrun'
    monkeypatch.setattr(shutil, 'which', lambda name: str(venv / name))
    assert cli.this_torchrun() == 'torchrun'
    # run from its own folder, not `python`, which the shell looks for on its PATH: another, maybe
    monkeypatch.chdir(venv)
    monkeypatch.setattr(shutil, 'which', lambda name: f'/usr/bin/{name}')
    assert cli.this_python() == './python3' and cli.command('test.py').startswith('./python3 ')


def test_styles_csv_given_as_the_catalog_names_the_folder_to_give(tmp_path):
    import split_data
    (tmp_path / 'styles.csv').write_text(HEADER + '\n')
    with pytest.raises(UserError, match=f"--input {tmp_path / 'styles.csv'}: a file; give the catalog's folder, "
                                        f'which holds styles.csv and images/ \\({tmp_path}\\)$'):
        split_data.main(['--input', str(tmp_path / 'styles.csv'), '--output', str(tmp_path)])


def test_an_output_named_as_a_csv_file_is_refused_before_any_work(small_split, tmp_path):
    # --output train.csv, as train.py's --train-csv: "wrote 32 rows to train.csv/train.csv", a folder made of it
    import split_data
    catalog = small_split['catalog']['root']
    for output in ('train.csv', 'splits/val.CSV/'):
        folder = re.escape(str(tmp_path / os.path.dirname(output.rstrip('/'))))
        with pytest.raises(UserError, match=f'^--output {re.escape(str(tmp_path / output))}: names a CSV file, but '
                                            f'is the folder to write train.csv and val.csv to; give that folder: '
                                            f'--output {folder}$'):
            split_data.main(['--input', str(catalog), '--output', str(tmp_path / output), '--workers', '1'])
    assert os.listdir(tmp_path) == []
    (tmp_path / 'mine.csv').mkdir()  # a folder of the user's by that name: written into
    split_data.main(['--input', str(catalog), '--output', str(tmp_path / 'mine.csv'), '--workers', '1'])
    assert sorted(os.listdir(tmp_path / 'mine.csv')) == ['train.csv', 'val.csv']


@pytest.mark.parametrize('encoding,newline', [('utf-8-sig', '\r\n'), ('utf-16', '\n'), ('cp1252', '\r\n'),
                                              ('utf-32', '\n'), ('utf-32-be', '\r\n')])
def test_other_encodings_and_windows_line_endings_read_the_same(tmp_path, encoding, newline):
    text = HEADER + '\n' + ROW.format(1) + 'é\n' + ROW.format(2) + '\n'
    text = '\ufeff' + text if encoding == 'utf-32-be' else text  # as written with its byte-order mark
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text, encoding, newline))
    assert [s.id for s in styles] == ['1', '2'] and not skipped
    assert styles[0].baseColour == 'Blue'


def test_a_spreadsheets_utf8_with_a_windows_1252_row_and_blank_lines_above_the_header_read(tmp_path, capsys):
    path = tmp_path / 'styles.csv'
    data = (b'\xef\xbb\xbf\r\n\r\n' + f'{HEADER}\r\n{ROW.format(1)}\r\n'.encode()
            + ROW.format(2).encode() + b' Caf\xe9\r\n')
    path.write_bytes(data)
    styles, skipped = read_styles(str(path))
    assert [s.id for s in styles] == ['1', '2'] and not skipped
    # The byte named as an editor counts it, from the file's start, its byte-order mark too
    cafe = data.index(b'\xe9')
    assert f'{path} is not UTF-8 (byte {cafe})' in capsys.readouterr().out


def test_a_windows_1252_row_leaves_the_utf8_labels_of_the_others_as_they_are(tmp_path, capsys):
    # Read as Windows-1252 throughout, the file made Café of the UTF-8 rows CafÃ©: a label of
    # their own in styles.csv, and rows skipped as "not in the vocabulary" in a split.
    path = tmp_path / 'styles.csv'
    rows = [ROW.format(1).replace('Blue', 'Café'), ROW.format(2).replace('Blue', 'Café')]
    path.write_bytes('\r\n'.join([HEADER, *rows]).encode() + b'\r\n'
                     + ROW.format(3).replace('Blue', 'R\xf6d').encode('cp1252') + b'\r')  # an old Mac's end
    styles, skipped = read_styles(str(path))
    assert [s.baseColour for s in styles] == ['Café', 'Café', 'Röd'] and not skipped
    rod = path.read_bytes().index(b'\xf6')
    assert f'{path} is not UTF-8 (byte {rod}); 1 line read as Windows-1252, the others as UTF-8' \
           in capsys.readouterr().out


def test_utf16_that_does_not_decode_is_one_clear_error(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'styles.csv').write_bytes(f'{HEADER}\n{ROW.format(1)}\n'.encode('utf-16') + b'\n')  # odd length
    result = run_script('split_data.py', '--input', tmp_path, '--output', tmp_path)
    assert_clean_failure(result, str(tmp_path / 'styles.csv'), 'UTF-16')


def test_duplicate_ids_and_odd_rows_are_skipped_and_counted(tmp_path):
    text = '\n'.join([HEADER, ROW.format(1), ROW.format(1), ROW.format('../../etc/passwd'),
                      '3,Men,Apparel', ROW.format(4).replace('Blue,', 'NA,', 1),
                      ROW.format(5) + ', with a comma', ROW.format('²'), ROW.format('٣')])  # digits to isdigit
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == ['1', '5']
    assert skipped == {'duplicate id': 1, 'id is not a number': 3, 'with too few fields for articleType': 1,
                       'baseColour is empty or NA': 1}


def test_a_row_without_its_empty_cells_at_the_end_is_read_where_it_holds_the_labels(tmp_path):
    # Old Excel leaves a row's empty cells at its end out; the tutorial's csv.DictReader read such a row
    text = '\n'.join([HEADER, '1,Men,Apparel,Topwear,Tshirts,Navy Blue', ROW.format(2).rsplit(',', 1)[0],
                      '3,Men,Apparel,Topwear,Tshirts,Blue,Summer', '4,Men,Apparel,Topwear,Tshirts',  # no colour
                      '5,Men',
                      # subCategory left out, not the end: the labels moved on, Summer taken for a colour
                      '6,Men,Apparel,Tshirts,Blue,Summer,2012,Casual,Roadster Men Blue Tshirts',
                      '7,Men,Apparel,Tshirts,Blue,Summer,2012'])
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert styles == [Style('1', 'Men', 'Tshirts', 'Navy Blue'), Style('2', 'Men', 'Tshirts', 'Blue'),
                      Style('3', 'Men', 'Tshirts', 'Blue')]
    assert skipped == {'with too few fields for baseColour': 1, 'with too few fields for articleType': 1,
                       'with too few fields': 2}


def test_a_catalog_padded_with_spaces_is_read_as_its_ids_and_labels(tmp_path):
    # A hand-edited styles.csv: ' 1' skipped as no number, ' Blue' a colour of its own, and every
    # row of a split of it (whose reader strips) skipped as a label not in the vocabulary
    text = '\n'.join([HEADER, ' 1, Men,Apparel,Topwear, Tshirts ,Blue ,Summer,2012,Casual,x',
                      ROW.format(2).replace('Blue', ' NA')])
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert styles == [Style('1', 'Men', 'Tshirts', 'Blue')] and skipped == {'baseColour is empty or NA': 1}


def test_na_in_any_spelling_is_no_label_and_an_id_written_as_a_float_is_its_id(tmp_path):
    # na, N/A and NaN (a spreadsheet's, pandas') were learned as colours of their own; 15970.0 (pandas,
    # the ids read as numbers) skipped as no number, where images/15970.jpg is its picture
    text = '\n'.join([HEADER, *(ROW.format(i).replace('Blue', na, 1) for i, na in enumerate(['na', 'N/A', 'NaN'])),
                      ROW.format('15970.0'), ROW.format('15970'), ROW.format('7.5'), ROW.format('.0')])
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == ['15970']
    assert skipped == {'baseColour is empty or NA': 3, 'duplicate id': 1, 'id is not a number': 2}


def test_labels_apart_only_in_case_or_spacing_are_noted_by_split_data(tmp_path):
    # 'men' typed by hand is a class of its own, a sixth gender the model learns: said, and kept so
    catalog = make_catalog(str(tmp_path / 'catalog'), n_images=30, seed=1)
    styles_path = tmp_path / 'catalog' / 'styles.csv'
    rows = [line.split(',') for line in styles_path.read_text().splitlines()]  # no quoted commas in a sample
    gender = rows[1][1]
    spaced = next(row for row in rows[2:] if ' ' in row[5])
    colour = spaced[5]
    rows[1][1], spaced[5] = gender.lower(), colour.replace(' ', '  ')
    styles_path.write_text('\n'.join(map(','.join, rows)) + '\n')
    result = run_script('split_data.py', '--input', catalog['root'], '--output', tmp_path, '--workers', 1)
    assert result.returncode == 0, result.stderr
    (note,) = [line for line in result.stdout.splitlines() if line.startswith('note:')]
    said = (re.escape(f'note: {styles_path}: ') + 'labels that differ only in case or spacing, each learned as '
            r"a class of its own: gender '(\w+)' \(\d+\) and '(\w+)' \(\d+\); "
            r"baseColour '([\w ]+)' \(\d+\) and '([\w ]+)' \(\d+\); "
            'spell each one way to learn it as one')
    assert re.fullmatch(said, note), note
    assert set(re.fullmatch(said, note).groups()) == {gender, gender.lower(), colour, colour.replace(' ', '  ')}
    assert f"'{gender.lower()}' (1)" in note and f"'{colour.replace(' ', '  ')}' (1)" in note


def test_a_row_of_several_empty_labels_is_counted_under_the_first(tmp_path):
    text = '\n'.join([HEADER, ROW.format(1).replace('Men', 'NA', 1).replace('Blue', 'NA', 1), ROW.format(2)])
    assert read_styles(write(tmp_path / 'styles.csv', text))[1] == {'gender is empty or NA': 1}


def test_the_vocabularies_are_every_usable_rows_labels_sorted(tmp_path):
    # In the order of np.unique, as the tutorial's bare checkpoints number their outputs; the first
    # row's labels, used by no other, among them.
    rows = ['1,Unisex,Apparel,Topwear,Kurtas,Teal,Summer,2012,Casual,x',
            '2,Women,Accessories,Watches,Watches,Red,Summer,2012,Casual,x',
            '3,Men,Apparel,Topwear,Shirts,Black,Summer,2012,Casual,x',
            ROW.format(4).replace('Blue', 'NA')]  # no colour: its gender and article count for nothing
    attributes = AttributesDataset(write(tmp_path / 'styles.csv', '\n'.join([HEADER] + rows)))
    assert attributes.to_dict() == {'gender': ['Men', 'Unisex', 'Women'], 'article': ['Kurtas', 'Shirts', 'Watches'],
                                    'color': ['Black', 'Red', 'Teal']}
    assert attributes.gender_name_to_id == {'Men': 0, 'Unisex': 1, 'Women': 2}
    assert attributes.color_id_to_name == {0: 'Black', 1: 'Red', 2: 'Teal'}


def test_a_catalog_without_a_usable_row_is_named_as_the_reason_there_are_no_labels(tmp_path):
    text = '\n'.join([HEADER, ROW.format(1).replace('Blue', 'NA'), ROW.format('x')])
    with pytest.raises(UserError, match=r'styles.csv: no usable row, so no labels \(skipped 1 baseColour is empty or '
                                        r'NA, 1 id is not a number\)$'):
        AttributesDataset(write(tmp_path / 'styles.csv', text))


def test_a_field_too_many_is_counted_as_such_where_no_product_name_can_take_it(tmp_path):
    # A catalog cut down to the columns it needs: nothing to glue an extra field back into.
    text = '\n'.join(['id,gender,articleType,baseColour', '1,Men,Tshirts,Blue', '2,Men,Tshirts,Blue,Cotton',
                      '3,Men,Tshirts'])
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == ['1'] and skipped == {'with too many fields': 1,
                                                          'with too few fields for baseColour': 1}


def test_a_comma_in_a_label_is_not_taken_for_one_in_the_product_name(tmp_path):
    # Glued back as a product name's, the comma in 'Bags, Backpacks' would make 'Backpacks' the colour
    text = '\n'.join([HEADER, ROW.format(1) + ', with a comma, or two',
                      ROW.format(2).replace('Tshirts', 'Bags, Tshirts', 1),
                      ROW.format(3).replace('Summer', 'Summer, Fall'),  # the labels are right, but who can tell?
                      ROW.format(4).replace('2012', '', 1) + ', a comma'])
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert styles == [Style('1', 'Men', 'Tshirts', 'Blue'), Style('4', 'Men', 'Tshirts', 'Blue')]
    assert skipped == {'with too many fields': 2}


def test_a_comma_in_a_label_is_found_where_the_season_is_missing_too(tmp_path):
    # Shifted by the comma, the empty season sits in the year's column, and the year in the next
    text = '\n'.join([HEADER, ROW.format(1).replace('Tshirts', 'Bags, Tshirts', 1).replace('Summer', 'NA'),
                      ROW.format(2).replace('Summer', '').replace('2012', 'NA') + ', a comma',
                      ROW.format(3).replace('Tshirts', 'Bags, Tshirts', 1).replace('Roadster Men Blue Tshirts', '')])
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert styles == [Style('2', 'Men', 'Tshirts', 'Blue')] and skipped == {'with too many fields': 2}


def test_a_comma_in_a_label_is_found_where_the_season_and_the_year_are_missing(tmp_path):
    # Shifted by the comma, a label's words sit in the season's column: `Navy, Blue` was kept as
    # the colour Navy, a class of its own.
    no_season = ROW.replace('Summer,2012', ',')
    text = '\n'.join([HEADER, no_season.format(1).replace('Blue', 'Navy, Blue', 1),
                      no_season.format(2).replace('Tshirts', 'Bags, Tshirts', 1),
                      no_season.format(3) + ', with a comma',  # the labels in place: kept
                      ROW.format(4).replace('Summer', 'Autumn').replace('2012', '') + ', with a comma'])
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert styles == [Style('3', 'Men', 'Tshirts', 'Blue'), Style('4', 'Men', 'Tshirts', 'Blue')]
    assert skipped == {'with too many fields': 2}


def test_a_spreadsheets_years_written_as_decimals_still_place_the_fields(tmp_path):
    # Saved by a spreadsheet, 2012 becomes 2012.0; the year tells a comma in the product name from
    # one in a label, and where a spreadsheet's comma at the end of a row is none of its fields
    year = ROW.replace('2012', '2012.0')
    text = '\n'.join([HEADER, year.format(1) + ', with a comma', year.format(2) + ',',
                      year.format(3).replace('Tshirts', 'Bags, Tshirts', 1)])
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert styles == [Style('1', 'Men', 'Tshirts', 'Blue'), Style('2', 'Men', 'Tshirts', 'Blue')]
    assert skipped == {'with too many fields': 1}


def test_bytes_windows_1252_leaves_undefined_are_read_with_a_note_not_a_traceback(tmp_path, capsys):
    path = tmp_path / 'styles.csv'
    path.write_bytes(f'{HEADER}\n{ROW.format(1)}\n'.encode() + ROW.format(2).encode() + b' Caf\xe9 \x81\n')
    styles, skipped = read_styles(str(path))
    assert [s.id for s in styles] == ['1', '2'] and not skipped
    assert f'{path} is not UTF-8' in capsys.readouterr().out


@pytest.mark.parametrize('every_line', [False, True])
def test_a_spreadsheets_trailing_comma_loses_no_row(tmp_path, every_line):
    end = ',' if every_line else ''
    text = '\n'.join([HEADER + ',', ROW.format(1) + end, ROW.format(2) + ', with a comma' + end])
    styles, skipped = read_styles(write(tmp_path / 'styles.csv', text))
    assert [s.id for s in styles] == ['1', '2'] and not skipped


def save_cmyk_jpeg(path):
    Image.new('CMYK', (60, 80), (0, 255, 255, 0)).save(path, 'JPEG')


def save_truncated(path):
    buffer = io.BytesIO()
    Image.new('RGB', (60, 80), (200, 30, 30)).save(buffer, 'JPEG')
    path.write_bytes(buffer.getvalue()[:300])


IMAGES = {
    'truncated': (save_truncated, 'unreadable image'),
    'not_an_image': (lambda p: p.write_text('<html>404 not found</html>'), 'unreadable image'),
    'zero_bytes': (lambda p: p.write_bytes(b''), 'unreadable image'),
    'png_named_jpg': (lambda p: Image.new('RGB', (60, 80), 'red').save(p, 'PNG'), None),
    'cmyk_jpeg': (save_cmyk_jpeg, 'not RGB'),
    'grayscale': (lambda p: Image.new('L', (60, 80), 128).save(p, 'JPEG'), 'not RGB'),
    'rgba_png': (lambda p: Image.new('RGBA', (60, 80), (0, 0, 255, 0)).save(p, 'PNG'), 'not RGB'),
    'palette_png': (lambda p: Image.new('P', (60, 80), 3).save(p, 'PNG'), 'not RGB'),
    'wrong_size': (lambda p: Image.new('RGB', (224, 224), 'red').save(p, 'JPEG'), 'not 60x80'),
}


@pytest.mark.parametrize('kind', IMAGES)
def test_each_kind_of_bad_image_is_named(tmp_path, kind):
    make, problem = IMAGES[kind]
    path = tmp_path / 'x.jpg'
    make(path)
    assert image_problem(str(path)) == problem


def test_an_image_the_system_will_not_let_us_read_is_named_so(tmp_path, monkeypatch):
    # chmod 000 on images/ or on the file, pretended: the tests may run as root, who reads anyway
    path = str(tmp_path / 'x.jpg')
    IMAGES['png_named_jpg'][0](path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, 'Permission denied', path)

    for module, name in ((os, 'stat'), (catalog, 'open')):  # the folder (not even a look), the file
        with monkeypatch.context() as patch:
            patch.setattr(module, name, refuse, raising=False)  # catalog's open: the built-in one
            problem = image_problem(path)
        assert problem == 'no permission to read it', name
    assert image_problem(path) is None
    assert image_problem(str(tmp_path / 'gone.jpg')) == 'no image file'
    assert image_problem(str(tmp_path / f'{"9" * 300}.jpg')) == 'no image file'  # a name no file system takes


def test_a_folder_or_a_pipe_where_an_image_should_be_is_named_as_what_it_is(tmp_path):
    # Not "no image file", when the user finds 1163.jpg there; a pipe is not opened, which would
    # wait for a writer for good. split_data.py checks with image_problem, a split's reader with missing_image.
    folder, pipe = tmp_path / '1163.jpg', tmp_path / '1164.jpg'
    folder.mkdir()
    os.mkfifo(pipe)
    for check in (image_problem, missing_image):
        assert check(str(folder)) == 'a folder, not an image file', check
        assert check(str(pipe)) == 'not a regular file (a device, a pipe or a socket)', check


def test_a_splits_pictures_that_are_links_to_no_file_or_in_a_loop_are_named_as_such(small_split, tmp_path,
                                                                                     capsys):
    # split_data.py names them; train.py and test.py said "image missing" of pictures `ls` shows
    # (a git-annex or DVC store not fetched), sending the user looking for them.
    attributes = AttributesDataset(small_split['styles'])
    header, first, second, third, *rows = open(small_split['val']).read().splitlines()
    shutil.copytree(os.path.join(small_split['base'], 'fashion-product-images'), tmp_path / 'fashion-product-images')
    gone, loop, absent = (tmp_path / row.split(',')[0] for row in (first, second, third))
    for path in (gone, loop, absent):
        os.remove(path)
    os.symlink('../.git/annex/objects/x.jpg', gone)
    os.symlink(loop.name, loop)
    assert [missing_image(str(path)) for path in (gone, loop, absent)] == [
        'a link that leads to no file', 'a link in a loop of links', 'image missing']
    write(tmp_path / 'val.csv', '\n'.join([header, first, second, third] + rows) + '\n')
    assert len(FashionDataset(str(tmp_path / 'val.csv'), attributes)) == len(rows)
    said = capsys.readouterr().out
    assert (f'skipped 3 rows: 1 a link that leads to no file, 1 a link in a loop of links, 1 image missing; the '
            f'first picture skipped is {gone}\n' in said), said  # where it was looked for: a split moved, say
    # The same, in a split of the tutorial's paths (from the folder the run began in) kept elsewhere
    (tmp_path / 'splits').mkdir()
    write(tmp_path / 'splits' / 'val.csv', '\n'.join([header, first, second, third] + rows) + '\n')
    FashionDataset(str(tmp_path / 'splits' / 'val.csv'), attributes, pictures_from=str(tmp_path))
    assert 'skipped 3 rows: 1 a link that leads to no file, 1 a link in a loop of links' in capsys.readouterr().out
    # A split of such links alone: split again, its rows would be skipped all the same
    write(tmp_path / 'links.csv', '\n'.join([header, first, first]) + '\n')
    with pytest.raises(UserError, match=r'no usable row left .*; fetch the pictures its links lead to, as git-annex '
                                        r'and DVC leave them unfetched \(git annex get, dvc pull\), or copy in '):
        FashionDataset(str(tmp_path / 'links.csv'), attributes)


def test_a_picture_pillow_refuses_as_too_large_is_named_so_not_as_broken(tmp_path):
    # A PNG whose header says 20,000 x 10,000 pixels (200 megapixels, over Pillow's 179): refused
    # at opening, before any pixel is read, so its chunks can be empty.
    import zlib
    from dataset import TOO_BIG, DecodedImages

    def chunk(kind, data=b''):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    path = tmp_path / 'huge.jpg'
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 20_000, 10_000, 8, 2, 0, 0, 0))
                     + chunk(b'IDAT') + chunk(b'IEND'))
    assert image_problem(str(path)) == 'too large (over 179 megapixels)'
    assert DecodedImages([str(path)])[0] == TOO_BIG


@pytest.mark.parametrize('kind', ['png_named_jpg', 'cmyk_jpeg', 'grayscale', 'rgba_png', 'palette_png',
                                  'wrong_size'])
def test_other_modes_and_sizes_load_as_60x80_rgb(tmp_path, kind):
    path = tmp_path / 'x.jpg'
    IMAGES[kind][0](path)
    assert image_problem(str(path), any_size=True, any_mode=True) is None
    img = load_image(str(path))
    assert (img.mode, img.size) == ('RGB', (60, 80))
    if kind == 'rgba_png':  # fully transparent pixels become the white background
        assert img.getpixel((30, 40)) == (255, 255, 255)
    if kind == 'wrong_size':  # the square fitted 60 wide, its shape kept, centred with white above and below
        pixels = np.asarray(img).astype(int)
        assert (pixels[:9] == 255).all() and (pixels[-9:] == 255).all()
        assert (np.abs(pixels[11:69] - [254, 0, 0]) < 8).all()


# Pillow's modes I;16, I and F; a 32-bit TIFF's values of 16 bits or of its full range, floats of
# 0 to 1, 255 or 65535 (these two were all white)
@pytest.mark.parametrize('suffix, dtype, white', [('png', np.uint16, 65535), ('tiff', np.int32, 65535),
                                                  ('tiff', np.int32, 2**31 - 1), ('tiff', np.float32, 1),
                                                  ('tiff', np.float32, 255), ('tiff', np.float32, 65535)])
def test_wide_grey_is_scaled_to_8_bits_not_clipped(tmp_path, suffix, dtype, white):
    path = str(tmp_path / f'x.{suffix}')
    ramp = np.linspace(0, 65535, 60).round()  # black to white, left to right
    Image.fromarray(np.tile(ramp / 65535 * white, (80, 1)).astype(dtype)).save(path)
    assert image_problem(path) == 'not RGB'
    row = np.asarray(load_image(path))[40].astype(float)
    assert (row[:, 0] == row[:, 1]).all() and (row[:, 0] == row[:, 2]).all()
    np.testing.assert_allclose(row[:, 0], ramp / 257, atol=0.5)  # clipped, they were all 255 or all 0


def test_a_float_pictures_infinities_and_nans_are_white_and_black(tmp_path):
    path = str(tmp_path / 'x.tiff')
    values = np.full((80, 60), 0.5, np.float32)
    values[0, :3] = np.inf, -np.inf, np.nan
    Image.fromarray(values).save(path)
    row = np.asarray(load_image(path))[0, :4, 0]
    assert row.tolist() == [255, 0, 0, 128]  # 0.5 of 1: the infinity takes no part in the scale


def test_a_dark_16_bit_pgm_stays_dark(tmp_path):
    # Pillow opens it as I, as a 32-bit TIFF: taken for 8 bits, its 200 of 65535 came out light grey.
    path = str(tmp_path / 'dark.pgm')
    Image.fromarray(np.full((80, 60), 200, np.uint16)).save(path)
    assert Image.open(path).mode == 'I' and load_image(path).getpixel((30, 40)) == (1, 1, 1)


def test_an_eps_file_is_no_picture_and_ghostscript_is_never_run_on_it(tmp_path, monkeypatch):
    # Pillow reads EPS by running Ghostscript, a PostScript interpreter, on the file: a program from
    # whoever made the picture, run where Ghostscript is installed.
    from PIL import EpsImagePlugin
    runs = []
    monkeypatch.setattr(EpsImagePlugin, 'Ghostscript', lambda *args, **kwargs: runs.append(args))
    path = tmp_path / 'product.jpg'
    path.write_bytes(b'%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 60 80\nshowpage\n')
    assert image_problem(str(path)) == 'unreadable image'
    with pytest.raises(UNREADABLE):
        load_image(str(path))
    assert runs == []


@pytest.mark.parametrize('mode, clear, product', [('RGB', (0, 0, 0), (200, 30, 30)), ('L', 0, 128),
                                                   ('I;16', 0, 128 * 257)])  # 16-bit greyscale
def test_a_colour_marked_transparent_becomes_the_white_background(tmp_path, mode, clear, product):
    path = str(tmp_path / 'x.png')
    img = Image.new(mode, (60, 80), clear)
    img.paste(product, (20, 20, 40, 60))
    img.save(path, transparency=clear)  # PNG's tRNS chunk: this colour is see-through
    assert image_problem(path) == (None if mode == 'RGB' else 'not RGB')  # an RGB one passes the filter
    loaded = load_image(path)
    assert loaded.getpixel((5, 5)) == (255, 255, 255)
    assert loaded.getpixel((30, 40)) == (product if mode == 'RGB' else (128, 128, 128))  # both greys: mid-grey


@pytest.mark.parametrize('mode', ['RGBA', 'LA', 'PA', 'RGBa'])  # PA: palette with alpha; a: premultiplied
def test_every_kind_of_alpha_channel_becomes_the_white_background(mode):
    clear = Image.new('RGBA', (60, 80), (0, 0, 0, 0)).convert(mode)
    assert to_rgb(clear).getpixel((30, 40)) == (255, 255, 255)


def test_the_size_check_sees_a_picture_turned_upright_as_it_is_loaded(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view": stored 80x60, shown 60x80
    sideways, upright = str(tmp_path / 'sideways.jpg'), str(tmp_path / 'upright.jpg')
    Image.new('RGB', (80, 60), (200, 30, 30)).save(sideways, exif=exif.tobytes())
    Image.new('RGB', (60, 80), (200, 30, 30)).save(upright, exif=exif.tobytes())
    assert image_problem(sideways) is None
    loaded = load_image(sideways)
    assert loaded.size == (60, 80) and loaded.getpixel((30, 1))[1] < 100  # filled, not padded with white
    assert image_problem(upright) == 'not 60x80'  # shown 80x60: loaded, it would be shrunk to 60x45


@pytest.mark.parametrize('orientation', range(1, 9))
def test_each_exif_orientation_turns_the_picture_as_pillows_exif_transpose_does(tmp_path, orientation):
    # turn_upright keeps Pillow's table without its EXIF write-back (which raised on a damaged
    # block); a picture of four quarters, each its own colour, shows any turn or mirror.
    quarters = Image.new('RGB', (60, 80), (250, 0, 0))
    quarters.paste((0, 250, 0), (30, 0, 60, 40))
    quarters.paste((0, 0, 250), (0, 40, 30, 80))
    quarters.paste((250, 250, 0), (30, 40, 60, 80))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / 'photo.png'
    quarters.save(path, exif=exif.tobytes())
    with Image.open(path) as img:
        assert img.getexif()[0x0112] == orientation
        expected = np.asarray(ImageOps.exif_transpose(img).convert('RGB'))
    turned = np.asarray(load_image(str(path), size=expected.shape[1::-1]))
    assert turned.shape == expected.shape and np.array_equal(turned, expected)


def saved(image, kind, **options):
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return bytearray(buffer.getvalue())


def tiff_entry(data, tag):
    """Where a tag's entry is in the first directory of a little-endian TIFF (as Pillow writes them)."""
    first = struct.unpack_from('<I', data, 4)[0]
    count = struct.unpack_from('<H', data, first)[0]
    entries = range(first + 2, first + 2 + 12 * count, 12)  # of 12 bytes each, the tag's number first
    return next(at for at in entries if struct.unpack_from('<H', data, at)[0] == tag)


def damaged_picture(kind):
    """Pictures damaged so that Pillow raises errors other than OSError and ValueError (found by fuzzing)."""
    if kind == 'TIFF, an XMP tag of a number':  # TypeError, from a regular expression
        data = saved(Image.new('RGB', (16, 12)), 'TIFF')
        struct.pack_into('<HH', data, tiff_entry(data, 259), 700, 3)  # the compression's entry, as XMP
    elif kind == 'TIFF, strip offsets as a fraction':  # TypeError, IFDRational as an int
        data = saved(Image.new('L', (16, 12)), 'TIFF')
        struct.pack_into('<H', data, tiff_entry(data, 273) + 2, 5)
    elif kind == 'DDS of unknown pixel format':  # NotImplementedError
        data = saved(Image.new('RGBA', (16, 12)), 'DDS')
        data[80:84] = struct.pack('<I', 0x44000000)
    elif kind == 'BLP of unknown encoding':  # BLPFormatError, a NotImplementedError
        data = saved(Image.new('P', (16, 12)), 'BLP')
        data[8] = 0
    else:  # an animated AVIF whose timescale is 0: ZeroDivisionError
        frame = Image.linear_gradient('L').resize((16, 12)).convert('RGB')
        data = saved(frame, 'AVIF', save_all=True, append_images=[frame], duration=50)
        struct.pack_into('>I', data, data.index(b'mdhd') + 24, 0)
    return bytes(data)


@pytest.mark.parametrize('kind', ['TIFF, an XMP tag of a number', 'TIFF, strip offsets as a fraction',
                                  'DDS of unknown pixel format', 'BLP of unknown encoding', 'AVIF of timescale 0'])
def test_a_picture_on_which_pillow_raises_any_error_is_unreadable_not_a_crash(tmp_path, kind):
    # Each was a traceback in split_data.py, train.py, test.py and predict.py
    if kind.startswith('AVIF') and 'AVIF' not in Image.SAVE:
        pytest.skip('this Pillow writes no AVIF')
    path = tmp_path / 'damaged.jpg'
    path.write_bytes(damaged_picture(kind))
    assert image_problem(str(path)) == 'unreadable image'
    assert image_problem(str(path), any_size=True, any_mode=True) == 'unreadable image'
    with pytest.raises(UNREADABLE):
        load_image(str(path))


@pytest.mark.skipif(not os.path.exists('/proc/self/mem'), reason='needs Linux: a file whose first read fails')
def test_a_picture_whose_read_fails_is_unreadable_and_its_file_closed_at_once():
    # A disk's read error (EIO) on the first bytes: Pillow left the file it opened to the garbage
    # collector, a ResourceWarning under python -X dev. /proc/self/mem fails so on its first page.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert image_problem('/proc/self/mem') == 'unreadable image'
        with pytest.raises(OSError):
            load_image('/proc/self/mem')
        gc.collect()
    assert [str(w.message) for w in caught] == []


def test_a_float_picture_holding_a_signalling_nan_loads_without_a_warning(tmp_path):
    # numpy warned of an invalid value as it widened the floats: a traceback under -W error
    path = tmp_path / 'nan.jpg'
    data = saved(Image.new('F', (60, 80), 0.5), 'SPIDER')
    first = len(data) - 60 * 80 * 4  # the pixels, of 4 bytes, after the header
    data[first:first + 4] = struct.pack('<I', 0x7f800001)
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loaded = np.asarray(load_image(str(path)))
    assert loaded.shape == (80, 60, 3) and loaded.min() == 0 and np.median(loaded) == 128  # the NaN made black


@pytest.mark.parametrize('mode', ['F', 'I', 'I;16'])
def test_a_wide_greyscale_picture_is_brought_to_8_bits_in_little_more_memory_than_its_own(mode):
    # Its copies were of float64: an 88-megapixel float TIFF of 902 bytes (Pillow opens up to 179)
    # took 3.4 GB, 32 bytes a pixel beside Pillow's 4. The pixels are copied once, of float32.
    img = Image.new(mode, (1000, 2000), 300)
    tracemalloc.start()
    try:
        grey = to_rgb(img)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / (1000 * 2000) < 12, peak  # bytes a pixel
    assert grey.getpixel((0, 0)) == (1, 1, 1)  # 300 of 65535, the white of each of the three


def test_pictures_are_fitted_to_the_size_pillows_contain_gives_and_at_least_a_pixel_wide():
    # Pillow's own rule, which before 13.0 raised on a side that rounds to no pixel (1x500, say).
    from PIL import ImageOps
    sizes = [(w, h) for w in range(1, 400, 13) for h in range(1, 400, 11)] + [(60, 80), (30, 40), (600, 800)]
    for width, height in sizes:
        try:
            contained = ImageOps.contain(Image.new('1', (width, height)), (60, 80)).size
        except ValueError:  # Pillow before 13.0: a side of no pixel
            contained = (0, 0)
        assert fitted_size(width, height) == tuple(max(1, side) for side in contained) or 0 in contained, \
            (width, height)
    assert fitted_size(1, 500) == (1, 80) and fitted_size(5000, 2) == (60, 1)


def test_a_picture_whose_exif_block_cannot_be_written_again_is_still_turned_upright(tmp_path):
    # Pillow's exif_transpose writes the EXIF block back without the orientation: a text tag
    # numbered as a fraction's made that raise a TypeError in train.py, test.py and predict.py,
    # on a picture that split_data.py had kept, and that reads well.
    upright = Image.new('RGB', (60, 80), (200, 30, 30))
    upright.paste((30, 30, 200), (0, 40, 60, 80))  # red above blue, as it is shown
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 80x60: "turn 90 degrees clockwise to view"
    exif[0x0110] = 'Phone X'  # the camera's model, a text
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, 'JPEG', exif=exif.tobytes(), quality=95)
    clean, damaged = tmp_path / 'clean.jpg', tmp_path / 'damaged.jpg'
    clean.write_bytes(buffer.getvalue())
    entry = {b'MM': b'\x01\x10\x00\x02', b'II': b'\x10\x01\x02\x00'}  # the tag's number and type
    order = buffer.getvalue().split(b'Exif\x00\x00', 1)[1][:2]
    damaged.write_bytes(buffer.getvalue().replace(entry[order], entry[order].replace(b'\x10', b'\x3f'), 1))
    assert damaged.read_bytes() != clean.read_bytes()  # tag 0x013f: the white point's chromaticities
    assert image_problem(str(damaged)) is None
    loaded = np.asarray(load_image(str(damaged)))
    assert np.array_equal(loaded, np.asarray(load_image(str(clean))))
    assert loaded[5, 30, 0] > 150 > loaded[5, 30, 2] and loaded[75, 30, 2] > 150 > loaded[75, 30, 0]


def copy_catalog(catalog, tmp_path):
    root = tmp_path / 'fashion-product-images'
    shutil.copytree(catalog['root'], root)
    return root


def test_pictures_named_in_upper_case_are_named_in_the_error(small_split, tmp_path):
    # A copy through a system that upper-cased the names: "skipped 200 no image file. ", and no more
    import split_data
    root = copy_catalog(small_split['catalog'], tmp_path)
    for name in os.listdir(root / 'images'):
        os.rename(root / 'images' / name, root / 'images' / name.replace('.jpg', '.JPG'))
    pictures = len(os.listdir(root / 'images'))
    with pytest.raises(UserError) as error:
        split_data.main(['--input', str(root), '--output', str(tmp_path), '--workers', '1'])
    found = re.fullmatch(rf'no usable image left in {re.escape(str(root))}: skipped (\d+) no image file\. images/ '
                         rf'holds the pictures of {pictures} of them under other names, such as (\d+)\.JPG for '
                         r'(\d+)\.jpg; rename them to ID\.jpg, the name they are looked for by\.', str(error.value))
    assert found and int(found[1]) == pictures and found[2] == found[3], str(error.value)
    for name in os.listdir(root / 'images'):  # as saved by some programs
        os.rename(root / 'images' / name, root / 'images' / name.replace('.JPG', '.jpeg'))
    with pytest.raises(UserError, match=rf'images/ holds the pictures of {pictures} of them under other names, such '
                                        r'as \d+\.jpeg for \d+\.jpg; rename them to ID\.jpg, the name they are '
                                        r'looked for by\.$'):
        split_data.main(['--input', str(root), '--output', str(tmp_path), '--workers', '1'])


def test_pictures_saved_as_png_are_named_in_the_error_and_read_once_renamed(small_split, tmp_path):
    # "skipped 200 no image file.", and no more: the hint named .JPG and .jpeg names only
    import split_data
    root = copy_catalog(small_split['catalog'], tmp_path)
    for name in os.listdir(root / 'images'):
        with Image.open(root / 'images' / name) as img:
            img.save(root / 'images' / name.replace('.jpg', '.png'))
        os.remove(root / 'images' / name)
    with pytest.raises(UserError, match=r'images/ holds the pictures of \d+ of them under other names, such as '
                                        r'\d+\.png for \d+\.jpg; rename them to ID\.jpg, the name they are looked '
                                        r'for by \(a picture is read by its content, whatever its name ends in\)\.$'):
        split_data.main(['--input', str(root), '--output', str(tmp_path), '--workers', '1'])
    for name in os.listdir(root / 'images'):  # as the hint says
        os.rename(root / 'images' / name, root / 'images' / name.replace('.png', '.jpg'))
    counts = split_data.main(['--input', str(root), '--output', str(tmp_path), '--workers', '1'])
    rows = sum(len(open(small_split[name]).readlines()) - 1 for name in ('train', 'val'))
    assert counts['train'] + counts['val'] == rows > 0


def test_some_pictures_named_in_upper_case_are_named_in_a_note(small_split, tmp_path, capsys):
    # Their rows were counted as "no image file" among the others, with no word of the names.
    import split_data
    root = copy_catalog(small_split['catalog'], tmp_path)
    missing = split_data.main(['--input', str(root), '--output', str(tmp_path / 'all'), '--workers', '1'])['skipped']
    assert 'names such as' not in capsys.readouterr().out
    renamed = sorted(os.listdir(root / 'images'))[:5]
    for name in renamed:
        os.rename(root / 'images' / name, root / 'images' / name.replace('.jpg', '.JPG'))
    split_data.main(['--input', str(root), '--output', str(tmp_path / 'some'), '--workers', '1'])
    notes = [line for line in capsys.readouterr().out.splitlines() if 'had no image file' in line]
    assert len(notes) == 1 and re.fullmatch(
        rf'note: {missing["no image file"] + 5} rows had no image file\. images/ holds the pictures of 5 of them '
        r'under other names, such as (\d+)\.JPG for \1\.jpg; rename them to ID\.jpg, the name they are looked for by',
        notes[0]), notes
    assert re.search(r'(\d+)\.JPG', notes[0])[1] + '.jpg' in renamed


def test_only_pictures_of_the_rows_without_one_are_taken_for_renamed_ones(small_split, tmp_path, capsys):
    # A logo.png in images/ made split_data.py say that the rows without a picture (359 in the real
    # catalog, whose pictures are nowhere) had theirs under other names, to be renamed.
    import split_data
    root = copy_catalog(small_split['catalog'], tmp_path)
    for name in sorted(os.listdir(root / 'images'))[-3:]:  # as in the real catalog, rows whose picture is nowhere
        os.remove(root / 'images' / name)
    missing = split_data.main(['--input', str(root), '--output', str(tmp_path / 'all'), '--workers', '1'])['skipped']
    assert missing['no image file'] == 3
    Image.new('RGB', (200, 50)).save(root / 'images' / 'logo.png')
    (root / 'images' / '1.jpeg').mkdir()  # a folder is no picture either
    split_data.main(['--input', str(root), '--output', str(tmp_path / 'stray'), '--workers', '1'])
    assert 'had no image file' not in capsys.readouterr().out
    # Renamed by Windows with its extensions hidden, or by a program that pads the numbers: found
    first, second, *_ = sorted(name for name in os.listdir(root / 'images') if re.fullmatch(r'\d+\.jpg', name))
    os.rename(root / 'images' / first, root / 'images' / (first + '.jpg'))
    os.rename(root / 'images' / second, root / 'images' / ('000' + second))
    split_data.main(['--input', str(root), '--output', str(tmp_path / 'renamed'), '--workers', '1'])
    notes = [line for line in capsys.readouterr().out.splitlines() if 'had no image file' in line]
    assert len(notes) == 1 and re.fullmatch(
        rf'note: {missing["no image file"] + 2} rows had no image file\. images/ holds the pictures of 2 of them '
        rf'under other names, such as ({re.escape(first)}\.jpg for {re.escape(first)}|000{re.escape(second)} for '
        rf'{re.escape(second)}); rename them to ID\.jpg, the name they are looked for by', notes[0]), notes


def test_pictures_one_folder_deeper_or_nowhere_are_said_where_they_are_looked_for(small_split, tmp_path):
    # An archive unpacked into a folder of its own name (images/images/): "skipped 200 no image file.", no more
    import split_data
    root = copy_catalog(small_split['catalog'], tmp_path)
    pictures = len(os.listdir(root / 'images'))
    os.rename(root / 'images', tmp_path / 'images')
    (root / 'images').mkdir()
    (root / 'images' / 'empty').mkdir()
    os.rename(tmp_path / 'images', root / 'images' / 'images')
    with pytest.raises(UserError, match=rf'\. images/images/ holds the pictures of {pictures} of them, one folder '
                                        r'deeper than they are looked for; move them up into images/\.$'):
        split_data.main(['--input', str(root), '--output', str(tmp_path), '--workers', '1'])
    shutil.rmtree(root / 'images' / 'images')
    with open(root / 'styles.csv', newline='') as f:
        first_id = next(csv.DictReader(f))['id']
    with pytest.raises(UserError) as error:
        split_data.main(['--input', str(root), '--output', str(tmp_path), '--workers', '1'])
    assert re.fullmatch(rf'no usable image left in {re.escape(str(root))}: skipped (\d+) no image file\. The pictures '
                        r'are looked for as images/ID\.jpg, ' + re.escape(f'{root}/images/{first_id}.jpg') +
                        r' for the first row: none of these \1 is there, under that name or another\.',
                        str(error.value)), str(error.value)


def test_pictures_sorted_into_several_folders_are_all_named(small_split, tmp_path):
    # A catalog sorted into folders by category: only the largest was named ("images/Apparel/ holds
    # the pictures of 17 of them"), the others found one run at a time
    import split_data
    root = copy_catalog(small_split['catalog'], tmp_path)
    names = sorted(name for name in os.listdir(root / 'images') if name.endswith('.jpg'))
    for folder, part in (('Apparel', names[:len(names) // 2 + 1]), ('Footwear', names[len(names) // 2 + 1:])):
        (root / 'images' / folder).mkdir()
        for name in part:
            os.rename(root / 'images' / name, root / 'images' / folder / name)
    with pytest.raises(UserError, match=rf'\. images/Apparel/ and images/Footwear/ hold the pictures of {len(names)} '
                                        r'of them, one folder deeper than they are looked for; move them up into '
                                        r'images/\.$'):
        split_data.main(['--input', str(root), '--output', str(tmp_path), '--workers', '1'])


def test_pictures_that_are_links_to_no_file_are_named_as_such_with_how_to_fetch_them(small_split, tmp_path, capsys):
    # A git-annex or DVC store whose contents were not fetched: `ls` shows every picture, and each
    # was "no image file"; a loop of links was "unreadable image", as if the picture were damaged.
    import split_data
    root = copy_catalog(small_split['catalog'], tmp_path)
    names = sorted(os.listdir(root / 'images'))
    for name in names:
        os.remove(root / 'images' / name)
        os.symlink(f'../.git/annex/objects/{name}', root / 'images' / name)
    with pytest.raises(UserError) as error:
        split_data.main(['--input', str(root), '--output', str(tmp_path), '--workers', '1'])
    assert re.search(rf'skipped .*\b{len(names)} a link that leads to no file\b.*\. {len(names)} pictures in images/ '
                     r'are links to no file, as git-annex and DVC leave those whose contents were not fetched: fetch '
                     r'them \(git annex get, dvc pull\), or copy in the pictures themselves\.$', str(error.value))
    for name in names[1:]:  # fetched, all but one; and one link that leads to itself
        os.remove(root / 'images' / name)
        shutil.copy(small_split['catalog']['root'] + f'/images/{name}', root / 'images' / name)
    os.remove(root / 'images' / names[1])
    os.symlink(names[1], root / 'images' / names[1])
    counts = split_data.main(['--input', str(root), '--output', str(tmp_path), '--workers', '1'])
    assert counts['skipped']['a link that leads to no file'] == counts['skipped']['a link in a loop of links'] == 1
    assert 'note: 1 picture in images/ is a link to no file, as git-annex' in capsys.readouterr().out


@pytest.mark.parametrize('instead', ['Images', 'a file', 'a link to nothing', 'a loop of links'])
def test_an_images_folder_that_is_not_there_as_such_is_named_as_what_it_is(small_split, tmp_path, instead):
    # Each was "no such folder", with the advice to download the dataset
    import split_data
    root = copy_catalog(small_split['catalog'], tmp_path)
    if instead == 'Images':  # a copy through a system that capitalised it
        os.rename(root / 'images', root / 'Images')
        expected = (f'{root / "images"}: no such folder, but {root / "Images"} is there; the pictures are looked for '
                    'in images/, in lower case: rename it')
    else:
        shutil.rmtree(root / 'images')
        if instead == 'a file':
            (root / 'images').write_text('')
        else:
            os.symlink(root / 'images' if instead == 'a loop of links' else tmp_path / 'gone', root / 'images')
        said = {'a file': 'a file', 'a link to nothing': 'a link that leads nowhere',
                'a loop of links': 'a link in a loop of links'}[instead] + ', not a folder'
        expected = f"{root / 'images'}: {said}, where the catalog's pictures are to be"
    with pytest.raises(UserError) as error:
        split_data.main(['--input', str(root), '--output', str(tmp_path / 'out')])
    assert str(error.value) == expected


def test_no_image_left_says_why_and_which_option_accepts_them(quirky_catalog, tmp_path):
    root = copy_catalog(quirky_catalog, tmp_path)
    for name in os.listdir(root / 'images'):  # a copy whose pictures were all resized
        with Image.open(root / 'images' / name) as img:
            img.convert('RGB').resize((224, 224)).save(root / 'images' / name)
    result = run_script('split_data.py', '--input', root, '--output', tmp_path)
    assert_clean_failure(result, 'no usable image', 'not 60x80', '--any-size')
    result = run_script('split_data.py', '--input', root, '--output', tmp_path, '--any-size')
    assert result.returncode == 0, result.stderr
    q = quirky_catalog['quirks']
    usable = 120 + sum(len(q[k]) for k in ('malformed', 'na_other', 'grayscale', 'odd_size'))
    assert f'kept {usable} rows' in result.stdout


def test_a_quote_left_open_in_a_split_is_named_not_taken_for_one_bad_row(small_split, tmp_path):
    lines = open(small_split['val']).readlines()
    edited = tmp_path / 'val.csv'  # edited by hand: a quote before a path, never closed
    edited.write_text(lines[0] + lines[1] + '"' + ''.join(lines[2:]))
    with pytest.raises(UserError, match=r'val.csv: line 3: a quoted field runs on to line 25'):
        FashionDataset(str(edited), AttributesDataset(small_split['styles']))


def test_a_split_with_no_usable_row_gets_advice_that_works(small_split, tmp_path):
    import split_data
    attributes = AttributesDataset(small_split['styles'])
    lines = open(small_split['val']).read().splitlines()
    another_catalogs = [line.replace(line.split(',')[2], 'Spacesuits') for line in lines[1:4]]
    pictures_moved = [line.replace('.jpg', '-moved.jpg') for line in lines[1:4]]
    path = tmp_path / 'val.csv'
    path.write_text('\n'.join([lines[0]] + another_catalogs) + '\n')
    with pytest.raises(UserError, match=r'3 with a label not in the vocabulary.*give the styles.csv of the catalog '
                                        r'it was split from \(train.py --attributes_file\), or the checkpoint of a '
                                        r'run trained on it \(test.py, --resume\)$'):
        FashionDataset(str(path), attributes)
    path.write_text('\n'.join([lines[0]] + pictures_moved) + '\n')
    with pytest.raises(UserError, match='3 image missing.*python split_data.py --input') as advised:
        FashionDataset(str(path), attributes)
    command = str(advised.value).split('split_data.py ')[1].split()
    assert split_data.parse_args(command).input == 'CATALOG_FOLDER'  # flags split_data.py has


MARKER = '/tmp/fashion-csv-path-ran'


def test_split_rows_gone_bad_since_the_split_are_skipped_and_counted(small_split, tmp_path, capsys, csv_module):
    attributes = AttributesDataset(small_split['styles'])
    lines = open(small_split['val']).read().splitlines()
    folder = os.path.dirname(small_split['val'])
    header, good, rest = lines[0], lines[1:4], lines[4:]
    bad = [
        rest[0].replace(rest[0].split(',')[2], 'Spacesuits'),  # label not in the vocabulary
        rest[1].replace('.jpg', '-deleted.jpg'),                # image gone since the split
        ',Men,Tshirts,Blue',                                   # empty field
        rest[2].rsplit(',', 1)[0] + ',',                        # empty colour
        rest[4].split(',')[0] + ',Men',                        # a row cut short
        rest[6] + ',Cotton',                                    # a field too many
        rest[5].replace('images/', 'images/\x00'),             # a NUL byte, which no path holds
        f'$(touch {MARKER}).jpg,' + ','.join(rest[3].split(',')[1:]),  # a path is only a name
    ]
    path = tmp_path / 'val.csv'
    path.write_text('\n'.join([header] + good + bad) + '\n')
    # Image paths are relative to the CSV: give the copy its catalog too.
    shutil.copytree(os.path.join(folder, 'fashion-product-images'), tmp_path / 'fashion-product-images')
    dataset = FashionDataset(str(path), attributes)
    assert len(dataset) == 3
    out = capsys.readouterr().out
    assert '3 with an empty or missing field' in out and '1 with a label not in the vocabulary' in out
    assert '1 with too many fields' in out
    assert '3 image missing' in out
    assert not os.path.exists(MARKER)
    # test.py's look for pictures the run trained on: os.path.realpath raised on the NUL byte
    from demo import load_test_script
    assert len(load_test_script().pictures_of(str(path))) == len(good + bad) - 2  # an empty path, a NUL byte


def test_pictures_found_only_from_the_working_folder_are_counted_in_a_note(small_split, tmp_path, monkeypatch,
                                                                          capsys):
    # The tutorial's split: paths from the folder it was run in, the split moved elsewhere since
    attributes = AttributesDataset(small_split['styles'])
    header, *rows = open(small_split['val']).read().splitlines()
    (tmp_path / 'splits').mkdir()
    write(tmp_path / 'splits' / 'val.csv', '\n'.join([header] + rows) + '\n')
    monkeypatch.chdir(small_split['base'])
    assert len(FashionDataset(str(tmp_path / 'splits' / 'val.csv'), attributes)) == len(rows)
    assert (f'note: {tmp_path / "splits" / "val.csv"}: {len(rows)} pictures found from the working folder, '
            'not beside the split') in capsys.readouterr().out
    # Beside the split, as split_data.py writes them: nothing to say
    assert len(FashionDataset(small_split['val'], attributes)) == len(rows)
    assert 'working folder' not in capsys.readouterr().out


def test_a_column_of_ones_own_in_a_split_is_not_read_even_where_it_is_empty(small_split, tmp_path, capsys):
    # A note added by hand to some rows, or a spreadsheet's comma at the end of every line: all kept
    attributes = AttributesDataset(small_split['styles'])
    header, *rows = open(small_split['val']).read().splitlines()
    shutil.copytree(os.path.join(small_split['base'], 'fashion-product-images'), tmp_path / 'fashion-product-images')
    for name, lines in [('noted.csv', [header + ',note', rows[0] + ',checked'] + [row + ',' for row in rows[1:]]),
                        ('commas.csv', [line + ',' for line in [header] + rows])]:
        write(tmp_path / name, '\n'.join(lines) + '\n')
        assert len(FashionDataset(str(tmp_path / name), attributes)) == len(rows)
        assert 'skipped' not in capsys.readouterr().out


def test_labels_with_spaces_around_them_in_a_hand_edited_split_are_read_as_the_labels(small_split, tmp_path,
                                                                                      capsys):
    attributes = AttributesDataset(small_split['styles'])
    header, *rows = open(small_split['val']).read().splitlines()
    shutil.copytree(os.path.join(small_split['base'], 'fashion-product-images'), tmp_path / 'fashion-product-images')
    padded = [','.join([path] + [f' {label}  ' for label in labels]) for path, *labels in
              (row.split(',') for row in rows)]
    write(tmp_path / 'padded.csv', '\n'.join([header] + padded) + '\n')
    write(tmp_path / 'plain.csv', '\n'.join([header] + rows) + '\n')
    read = [FashionDataset(str(tmp_path / name), attributes) for name in ('padded.csv', 'plain.csv')]
    assert 'skipped' not in capsys.readouterr().out
    assert read[0].samples == read[1].samples and len(read[0]) == len(rows)


def test_a_field_of_spaces_in_a_split_is_counted_as_empty_not_as_another_label(small_split, tmp_path, capsys):
    # Counted as "a label not in the vocabulary", its advice was of a run of other labels.
    attributes = AttributesDataset(small_split['styles'])
    header, first, second, *rows = open(small_split['val']).read().splitlines()
    shutil.copytree(os.path.join(small_split['base'], 'fashion-product-images'), tmp_path / 'fashion-product-images')
    blank_colour = ','.join(first.split(',')[:-1] + ['   '])
    blank_path = ','.join(['   '] + second.split(',')[1:])
    write(tmp_path / 'val.csv', '\n'.join([header, blank_colour, blank_path] + rows) + '\n')
    assert len(FashionDataset(str(tmp_path / 'val.csv'), attributes)) == len(rows)
    said = capsys.readouterr().out
    assert '2 with an empty or missing field' in said and 'vocabulary' not in said and 'image missing' not in said


def test_a_split_edited_on_windows_finds_its_pictures_by_paths_with_backslashes(small_split, tmp_path, capsys):
    # Every row was skipped as "image missing", with the advice to split the catalog again.
    attributes = AttributesDataset(small_split['styles'])
    header, *rows = open(small_split['val']).read().splitlines()
    shutil.copytree(os.path.join(small_split['base'], 'fashion-product-images'), tmp_path / 'fashion-product-images')
    windows = [row.replace('/', '\\') for row in rows]
    write(tmp_path / 'windows.csv', '\n'.join([header] + windows) + '\n', newline='\r\n')
    write(tmp_path / 'plain.csv', '\n'.join([header] + rows) + '\n')
    read = [FashionDataset(str(tmp_path / name), attributes) for name in ('windows.csv', 'plain.csv')]
    assert 'skipped' not in capsys.readouterr().out
    assert read[0].samples == read[1].samples and len(read[0]) == len(rows)


def test_a_catalog_folder_whose_name_starts_with_a_space_is_split_and_read_back(small_split, tmp_path,
                                                                             monkeypatch):
    # split_data.py writes its path as it is; the spaces a hand-edited split has around a path are
    # dropped only where the picture is not found with them.
    shutil.copytree(os.path.join(small_split['base'], 'fashion-product-images'), tmp_path / ' data')
    monkeypatch.chdir(tmp_path)
    split_data.main(['--input', ' data', '--output', '.', '--workers', '1'])
    assert open('val.csv').read().splitlines()[1].startswith(' data/images/')
    attributes = AttributesDataset(str(tmp_path / ' data' / 'styles.csv'))
    assert len(FashionDataset('val.csv', attributes)) == len(open('val.csv').read().splitlines()) - 1


def test_pictures_a_split_lists_more_than_once_are_counted_in_a_note(small_split, capsys):
    # Two splits put together: each picture is trained on as often as it is listed, without a word
    lines = open(small_split['val']).read().splitlines()
    first, second = lines[1], lines[2]
    again = './' + second  # the same picture, named otherwise
    path = small_split['base'] / 'val-twice.csv'  # beside the split: its paths are relative to it
    path.write_text('\n'.join(lines + [first, first, again]) + '\n')
    try:
        dataset = FashionDataset(str(path), AttributesDataset(small_split['styles']))
    finally:
        path.unlink()
    assert len(dataset) == len(lines) - 1 + 3
    assert capsys.readouterr().out == (f'note: {path}: 2 pictures listed more than once (3 rows more than the '
                                       'pictures); each is used as often as it is listed\n')
    FashionDataset(small_split['val'], AttributesDataset(small_split['styles']))
    assert capsys.readouterr().out == ''


def test_pictures_we_may_no_longer_read_are_counted_as_such_not_as_missing_or_broken(small_split, monkeypatch,
                                                                                   capsys, tmp_path):
    # chmod 000 since the split, pretended (the tests may run as root, who reads anyway): on the
    # folder of two pictures, which cannot then even be looked at, and on a third picture itself.
    attributes = AttributesDataset(small_split['styles'])
    paths = [line.split(',')[0] for line in open(small_split['val']).read().splitlines()[1:]]
    folder_shut, file_shut = {os.path.basename(p) for p in paths[:2]}, os.path.basename(paths[2])
    real_stat = os.stat

    def refuse(real, names):
        def call(path, *args, **kwargs):
            if os.path.basename(os.fspath(path)) in names:
                raise PermissionError(13, 'Permission denied', os.fspath(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, 'stat', refuse(real_stat, folder_shut))
    dataset = FashionDataset(small_split['val'], attributes)
    assert len(dataset) == len(paths) - 2
    assert 'skipped 2 rows: 2 no permission to read it' in capsys.readouterr().out
    # catalog.open_picture opens each file itself, with the built-in open
    monkeypatch.setattr(catalog, 'open', refuse(open, {file_shut}), raising=False)
    images, _, kept = load_into_memory(dataset, workers=0)
    assert len(kept) == len(images) == len(paths) - 3
    shut = next(p for p in dataset.data if os.path.basename(p) == file_shut)
    said = capsys.readouterr().out.strip()
    assert said == f'{small_split["val"]}: skipped 1 image that we have no permission to read: {shut}'
    monkeypatch.setattr(catalog, 'open', refuse(open, {os.path.basename(p) for p in paths}), raising=False)
    with pytest.raises(UserError, match=f'{small_split["val"]}: none of its pictures could be read '
                                        f'\\({len(dataset)} pictures\\)$'):
        load_into_memory(dataset, workers=0)
    monkeypatch.delattr(catalog, 'open')
    # Nothing usable: the hint of the reason at least half the rows share, in either order
    lines = open(small_split['val']).read().splitlines()
    folder = os.path.dirname(small_split['val'])
    shut = lines[1].split(',', 1)  # a picture we may not read, by its absolute path
    unknown = lines[2].replace(lines[2].split(',')[2], 'Spacesuits')  # a label not in the vocabulary
    rows = [os.path.join(folder, shut[0]) + ',' + shut[1], unknown]
    for order in (rows, rows[::-1]):
        (tmp_path / 'mixed.csv').write_text('\n'.join([lines[0]] + order) + '\n')
        with pytest.raises(UserError, match='; let this user read its pictures'):
            FashionDataset(str(tmp_path / 'mixed.csv'), attributes)
    monkeypatch.setattr(os, 'stat', refuse(real_stat, {os.path.basename(p) for p in paths}))
    with pytest.raises(UserError, match=f'skipped {len(paths)} no permission to read it\\); let this user read'):
        FashionDataset(small_split['val'], attributes)


def test_a_picture_that_goes_bad_during_an_epoch_of_the_dataloader_path_stops_the_run_in_one_line(
        small_split, tmp_path, monkeypatch, capsys):
    # Taken away after the first pass that skips what does not decode: found by a worker process
    # of the DataLoader, which hands on its traceback as text. The epochs finished are named, with
    # the command to go on (the line said neither); Pillow's error names the path, and its class once.
    real_load, real_summary, gone = dataset.load_image, train.summary_line, tmp_path / 'gone'

    def gone_after_epoch_1(path):
        if not gone.exists():  # a file: a worker process is a copy of this one
            return real_load(path)
        if gone.read_text() == 'permission':
            raise PermissionError(13, 'Permission denied', path)
        if gone.read_text() == 'truncated':
            raise OSError('Truncated File Read')  # Pillow's, which names no file
        with open(path, 'rb') as file:
            raise PIL.UnidentifiedImageError(f'cannot identify image file {file!r}')

    def summary_line(epoch, row, elapsed):
        gone.write_text(kind)
        return real_summary(epoch, row, elapsed)

    monkeypatch.setattr(dataset, 'load_image', gone_after_epoch_1)
    monkeypatch.setattr(train, 'summary_line', summary_line)
    for workers, kind, reason in [(0, 'permission', r"PermissionError: \[Errno 13\] Permission denied: '/.*\.jpg'"),
                                  (1, 'pillow', r'(PIL\.)?UnidentifiedImageError: cannot identify image file /.*\.jpg'),
                                  (0, 'pillow', r'UnidentifiedImageError: cannot identify image file /.*\.jpg'),
                                  (1, 'truncated', r'OSError: Truncated File Read: /.*\.jpg')]:
        with contextlib.suppress(FileNotFoundError):
            gone.unlink()
        with pytest.raises(SystemExit) as stop:
            train.main(train_args(small_split, tmp_path / f'{workers}-{kind}', '--epochs', 3, '--data', 'loader',
                                  '--workers', workers))
        said = capsys.readouterr().err.split('\n', 2)[-1]  # after the bars of epochs 1 and 2
        assert stop.value.code == 2 and said.count('\n') == 1, said
        assert re.fullmatch(f'error: .*train.csv: reading its pictures failed in epoch 2 \\({reason}\\); a new or '
                            r'resumed run checks them first and skips those it cannot read\. The run stopped in '
                            r'epoch 2; epoch 1 is saved in .*last\.pth\. Resume with: .*--resume .*\n', said), said
        assert said.count('UnidentifiedImageError') <= 1, said


@pytest.mark.parametrize('data', ['memory', 'loader'])
def test_an_image_broken_since_the_split_is_skipped_on_either_data_path(small_split, tmp_path, capsys, data):
    copy = tmp_path / 'split'
    shutil.copytree(small_split['base'], copy)
    first = open(copy / 'train.csv').read().splitlines()[1].split(',')[0]
    image = copy / first
    image.write_bytes(image.read_bytes()[:300])  # truncated
    split = dict(small_split, train=str(copy / 'train.csv'), val=str(copy / 'val.csv'))
    run_dir = train.main(train_args(split, tmp_path / 'runs', '--epochs', 1, '--data', data))
    assert f'{copy / "train.csv"}: skipped 1 image that can no longer be decoded: {image}\n' in capsys.readouterr().out
    assert os.path.exists(os.path.join(run_dir, 'last.pth'))


def test_an_output_folder_that_cannot_be_made_is_named(small_split, one_epoch_run, tmp_path):
    run_dir = one_epoch_run
    blocker = tmp_path / 'a-file'  # a folder cannot be made inside a file, even by root
    blocker.write_text('')
    blocked = str(blocker / 'out')
    for script, args in [('sample_catalog.py', ['--output', blocked, '--images', 5]),
                         ('split_data.py', ['--input', small_split['catalog']['root'], '--output', blocked]),
                         ('train.py', train_args(small_split, blocked, '--epochs', 1)),
                         ('test.py', ['--checkpoint', os.path.join(run_dir, 'last.pth'),
                                      '--val-csv', small_split['val'], '--output', blocked])]:
        assert_clean_failure(run_script(script, *args), f'{blocker} is a file, not a folder')


def test_test_py_output_named_as_a_file_is_refused_not_made_a_folder(one_epoch_run, tmp_path, monkeypatch):
    # `--output results.json` made a folder of that name, and wrote metrics.json into it.
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r'^--output results.json: names a file, but test.py writes a folder of them '
                                        r'\(metrics.json, confusion_gender.png, confusion_article.png, ...\); give a '
                                        'folder, such as results$'):
        test_script.main(['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--output', 'results.json'])
    assert os.listdir(tmp_path) == []
    os.mkdir('made.json')  # a folder of that name, made by the user: taken as asked
    test_script.check_output_folder('made.json', '--output made.json')


def test_an_empty_or_too_long_output_folder_is_refused_before_any_work(one_epoch_run):
    # `python test.py --checkpoint CKPT --output "$OUT"` with OUT unset
    from demo import load_test_script
    with pytest.raises(UserError, match="^--output '': an empty name; give a folder, such as .$"):
        load_test_script().main(['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--output', ''])
    # nor a name no file system takes, found out only when the first file was written
    with pytest.raises(UserError, match=f"^--output {'x' * 300}: the name {'x' * 40}... is longer than the 255 "
                                        'bytes a file system allows$'):
        load_test_script().main(['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--output', 'x' * 300])


@pytest.mark.parametrize('link', ['loop', 'dangling'])
def test_a_link_in_a_loop_or_to_nothing_is_named_so_not_taken_for_a_missing_file(tmp_path, link, monkeypatch):
    # Each was "no such file", with the advice to download the dataset or to run split_data.py
    monkeypatch.chdir(tmp_path)
    if link == 'loop':
        os.symlink('b', 'a')
        os.symlink('a', 'b')
        problem = re.escape('could not reach it (Too many levels of symbolic links)')
    else:
        os.symlink('nothing-here', 'a')
        problem = 'a link that leads nowhere'
    with pytest.raises(UserError, match=f'^a: {problem}$'):
        train.main(['--train-csv', 'a', '--device', 'cpu'])
    with pytest.raises(UserError, match=f'^a: {problem} \\(the catalog labels, styles.csv\\)$'):
        AttributesDataset('a')
    with pytest.raises(UserError, match=f'^--input a: {problem}$'):
        split_data.main(['--input', 'a'])
    with pytest.raises(UserError, match=f'^a: {problem}$'):
        checkpoint_load('a')


def test_a_checkpoint_that_is_not_there_is_named_before_its_default_output_folder(tmp_path):
    # A typo for last.pth, beside whose eval-lats name a file stands: the folder was named first,
    # as --output (default: ...), though the mistake is the checkpoint's.
    from demo import load_test_script
    (tmp_path / 'eval-lats').write_text('notes')
    with pytest.raises(UserError, match=f'^{tmp_path / "lats.pth"}: no such checkpoint file$'):
        load_test_script().main(['--checkpoint', str(tmp_path / 'lats.pth')])
    with pytest.raises(UserError, match=f'^{tmp_path}: a folder, not a checkpoint file$'):  # a run's folder
        load_test_script().main(['--checkpoint', str(tmp_path)])


def test_two_checkpoints_named_alike_but_their_ending_do_not_share_a_default_folder(one_epoch_run, tmp_path,
                                                                                    monkeypatch, capsys):
    # model.pt and model.pth both wrote eval-model: the second replaced the first's results, said after
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: None)  # not the question here
    first, second = (shutil.copy(os.path.join(one_epoch_run, 'last.pth'), tmp_path / name)
                     for name in ('model.pt', 'model.pth'))
    test_script.main(['--checkpoint', str(first)])
    before = (tmp_path / 'eval-model' / 'metrics.json').read_bytes()
    said = (f'--output (default: {tmp_path / "eval-model"}): holds the results of {first}, another checkpoint whose '
            'name differs only in its ending; give --output to write these elsewhere')
    with pytest.raises(UserError, match=f'^{re.escape(said)}$'):
        test_script.main(['--checkpoint', str(second)])
    assert (tmp_path / 'eval-model' / 'metrics.json').read_bytes() == before
    test_script.main(['--checkpoint', str(first)])  # its own, scored again: replaced
    copy = tmp_path / 'copy'  # a run folder copied: its results are the first's, which is still there
    shutil.copytree(tmp_path, copy, ignore=lambda folder, names: ['copy'] if folder == str(tmp_path) else [])
    capsys.readouterr()
    test_script.main(['--checkpoint', str(copy / 'model.pt')])
    assert f'note: they replace the results of {first} on ' in capsys.readouterr().out
    test_script.main(['--checkpoint', str(second), '--output', str(tmp_path / 'eval-model')])  # as asked
    capsys.readouterr()
    os.remove(first)
    os.rename(second, first)  # model.pth gone (moved): its results there are no other checkpoint's now
    test_script.main(['--checkpoint', str(first)])
    assert f'note: they replace the results of {second} on ' in capsys.readouterr().out


def test_results_replaced_are_told_apart_by_their_rows_not_their_splits_name(one_epoch_run, small_split, tmp_path,
                                                                             monkeypatch, capsys):
    # val.csv split again held other rows, and its results were replaced unsaid; the rows scored
    # before, kept as val.old.csv, were said to replace the results "on val.csv", theirs.
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: None)  # not the question here
    shutil.copytree(os.path.join(small_split['base'], 'fashion-product-images'), tmp_path / 'fashion-product-images')
    header, *rows = open(small_split['val']).read().splitlines()
    val, kept, again = tmp_path / 'val.csv', tmp_path / 'val.old.csv', tmp_path / 'again.csv'
    last = os.path.join(one_epoch_run, 'last.pth')

    def score(split):
        capsys.readouterr()
        test_script.main(['--checkpoint', last, '--output', str(tmp_path / 'eval'), '--val-csv', str(split)])
        return re.findall('^note: they replace the results of (.*); --output writes them elsewhere$',
                          capsys.readouterr().out, re.M)
    write(val, '\n'.join([header] + rows[:12]) + '\n')
    assert score(val) == []
    os.rename(val, kept)
    write(val, '\n'.join([header] + rows[12:]) + '\n')
    assert score(val) == [f'{last} on {val} there, scored when it held other rows']
    assert score(val) == []  # the same, scored again
    assert score(kept) == [f'{last} on {val} there']
    shutil.copy(kept, again)
    assert score(again) == []  # the same rows, under another name
    write(again, '\n'.join([header] + sorted(rows[:12], reverse=True)) + '\n')
    assert score(again) == []  # and in another order, as a spreadsheet sorts them
    os.remove(tmp_path / rows[0].split(',')[0])
    assert score(again) == []  # a picture gone is a row skipped, not another split


def test_what_a_killed_test_py_left_in_its_output_folder_is_removed(one_epoch_run, tmp_path):
    from demo import load_test_script
    (tmp_path / '.tmp-2147483646-confusion_article.png').write_bytes(b'half a PNG')  # its drawing process killed
    load_test_script().main(['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--output', str(tmp_path)])
    assert not [name for name in os.listdir(tmp_path) if name.startswith('.')]

def test_a_test_py_writing_where_another_is_waits_until_it_has_written_all_of_its_files(one_epoch_run, tmp_path,
                                                                                          capsys, monkeypatch):
    # Two into one --output at once left the metrics of one beside the prediction grid of the other.
    # The other lets go 1 s after this one begins to wait (a fixed 1.5 s from its start was over
    # before a busy machine's evaluation was, and nothing was waited for).
    import atomic
    from demo import load_test_script
    evaluate = ['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--output', str(tmp_path)]
    other = subprocess.Popen([sys.executable, '-c', 'import fcntl, os, sys\n'
                              'fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX)\n'
                              'print("writing", flush=True)\n'
                              'sys.stdin.read()\n', str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    real_wait, waits = atomic.wait_for_lock, []

    def wait_for_lock(*args):
        waits.append(time.monotonic())
        letting_go = threading.Timer(1.0, other.stdin.close)
        letting_go.start()
        try:
            real_wait(*args)
        finally:
            letting_go.cancel()
        waits.append(time.monotonic())

    monkeypatch.setattr(atomic, 'wait_for_lock', wait_for_lock)
    try:
        assert other.stdout.readline() == 'writing\n'
        load_test_script().main(evaluate)
        assert other.wait(timeout=10) == 0  # it let go, and then the files were written
    finally:
        other.kill()
    assert len(waits) == 2 and waits[1] - waits[0] > 0.9
    assert f'note: waiting for another process writing in {tmp_path}\n' in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == sorted(load_test_script().OUTPUT_NAMES)
    monkeypatch.setattr(atomic, 'wait_for_lock', real_wait)
    # One that holds it longer (train.py, training in a run folder given as --output): refused
    monkeypatch.setattr(atomic, 'LOCK_WAIT', 0.5)
    with locked_by_another_process(tmp_path):
        with pytest.raises(UserError, match=f'^--output {re.escape(str(tmp_path))}: another process has been '
                                            r'writing in .* for 0.5 s \(a train.py training in it\?\); give another '
                                            'folder$'):
            load_test_script().main(evaluate)


def test_an_output_folder_we_may_not_write_in_is_refused_before_any_work(small_split, one_epoch_run, tmp_path,
                                                                         monkeypatch):
    import atomic
    import demo
    import predict
    import split_data
    from demo import load_test_script
    test_script = load_test_script()
    run_dir = one_epoch_run
    shut = tmp_path / 'shut'  # chmod 555, `chattr +i` or a read-only disk, pretended: the tests may run as root
    shut.mkdir()
    real_temporary_file = atomic.tempfile.TemporaryFile

    def refuse_in_shut(*args, dir=None, **kwargs):
        if dir == str(shut):
            raise PermissionError(13, 'Permission denied')
        return real_temporary_file(*args, dir=dir, **kwargs)

    def the_work(*args, **kwargs):
        raise AssertionError('the work started')

    monkeypatch.setattr(atomic.tempfile, 'TemporaryFile', refuse_in_shut)
    (tmp_path / 'gone').symlink_to(tmp_path / 'nowhere')  # a link left behind
    with pytest.raises(UserError, match=f"^--output {tmp_path / 'gone' / 'split'}: {tmp_path / 'gone'} is a link that "
                                        'leads nowhere, not a folder$'):
        split_data.main(['--input', small_split['catalog']['root'], '--output', str(tmp_path / 'gone' / 'split')])
    for module, work in ((split_data, 'read_styles'), (test_script, 'FashionDataset'), (predict, 'find_images'),
                         (train, 'labels_of_the_run'), (demo, 'has_real_dataset')):
        monkeypatch.setattr(module, work, the_work)
    checkpoint = os.path.join(run_dir, 'last.pth')
    for main, args, flag in [
            (split_data.main, ['--input', small_split['catalog']['root'], '--output', str(shut / 'split')], '--output'),
            (test_script.main, ['--checkpoint', checkpoint, '--output', str(shut / 'eval')], '--output'),
            (predict.main, ['--checkpoint', checkpoint, 'a.jpg', '--output', str(shut / 'p.csv')], '--output'),
            (train.main, train_args(small_split, shut, '--epochs', 1), '--checkpoints'),
            (demo.main, ['--work', str(shut / 'demo'), '--device', 'cpu'], '--work')]:
        with pytest.raises(UserError, match=f'^{flag} {shut}.*: cannot write in {shut} \\(Permission denied\\)$'):
            main(args)
    # test.py's default folder, beside the checkpoint, is named as the default of --output
    shutil.copy(checkpoint, shut / 'last.pth')
    with pytest.raises(UserError, match=f'^--output \\(default: {shut / "eval-last"}\\): cannot write in {shut} '):
        test_script.main(['--checkpoint', str(shut / 'last.pth')])
    # --run-name is named where it is the one in the way
    (tmp_path / 'a-file').write_text('')
    with pytest.raises(UserError, match=f'^--checkpoints {tmp_path} --run-name a-file: {tmp_path / "a-file"} is a file'):
        train.main(train_args(small_split, tmp_path, '--run-name', 'a-file'))


def test_a_folder_named_as_an_output_file_is_refused_before_any_work(small_split, one_epoch_run, tmp_path,
                                                                      monkeypatch):
    # A rename cannot put a file in a folder's place: found out only once the work is done.
    from demo import load_test_script
    test_script = load_test_script()

    def the_work(*args, **kwargs):
        raise AssertionError('the work started')
    for module, work in ((test_script, 'FashionDataset'), (train, 'labels_of_the_run')):
        monkeypatch.setattr(module, work, the_work)
    out = tmp_path / 'eval'
    (out / 'confusion_color.png').mkdir(parents=True)
    with pytest.raises(UserError, match=f'^--output {out}: {out / "confusion_color.png"} is a folder, where a file '
                                        'is to be written; move it away$'):
        test_script.main(['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--output', str(out)])
    numbered = tmp_path / 'run' / 'checkpoint-5.pth'
    numbered.mkdir(parents=True)
    with pytest.raises(UserError, match=f'^--checkpoints {tmp_path} --run-name run: {numbered} is a folder'):
        train.main(train_args(small_split, tmp_path, '--epochs', 5))
    resumed = tmp_path / 'resumed'
    shutil.copytree(one_epoch_run, resumed)
    (resumed / 'curves.png').unlink()
    (resumed / 'curves.png').mkdir()
    with pytest.raises(UserError, match=f'^--resume {resumed / "last.pth"}: {resumed / "curves.png"} is a folder'):
        train.main(['--resume', str(resumed / 'last.pth'), '--epochs', '2'])


def test_a_link_or_a_folder_of_another_name_is_no_obstacle(tmp_path):
    from atomic import check_no_folder_in_the_way
    (tmp_path / 'elsewhere').mkdir()
    (tmp_path / 'metrics.json').symlink_to(tmp_path / 'elsewhere')  # the rename replaces the link itself
    (tmp_path / 'metrics.json.d').mkdir()
    check_no_folder_in_the_way(str(tmp_path), r'metrics\.json', '--output')
    check_no_folder_in_the_way(str(tmp_path / 'not-made-yet'), r'metrics\.json', '--output')
    (tmp_path / 'metrics.json').unlink()
    (tmp_path / 'metrics.json').mkdir()
    with pytest.raises(UserError, match='is a folder'):
        check_no_folder_in_the_way(str(tmp_path), r'metrics\.json', '--output')


def test_test_py_scores_the_split_the_checkpoint_was_validated_on_from_any_folder(small_split, tmp_path,
                                                                                  monkeypatch, capsys):
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: None)  # not the question here
    monkeypatch.chdir(small_split['base'])  # train.py given the split as val.csv, from its folder
    run_dir = train.main(train_args(dict(small_split, val='val.csv'), tmp_path / 'runs', '--epochs', 1))
    checkpoint = os.path.join(run_dir, 'last.pth')
    other = tmp_path / 'other'  # another val.csv here: not the one the checkpoint was validated on
    other.mkdir()
    (other / 'val.csv').write_text(''.join(open(small_split['val']).readlines()[:6]))
    capsys.readouterr()
    monkeypatch.chdir(other)
    test_script.main(['--checkpoint', checkpoint, '--output', str(tmp_path / 'eval')])
    assert f'24 images from {small_split["val"]}' in capsys.readouterr().out
    # The project moved (or was copied to another machine): its val.csv, from where test.py runs.
    state = checkpoint_load(checkpoint)
    moved = checkpoint_save(str(tmp_path / 'moved.pth'), dict(state, args=dict(state['args'], workdir=str(other / 'gone'))))
    monkeypatch.chdir(small_split['base'])
    test_script.main(['--checkpoint', moved, '--output', str(tmp_path / 'eval')])
    scored = capsys.readouterr().out
    assert f'note: {other / "gone" / "val.csv"}, which' in scored and '24 images from val.csv' in scored
    with open(tmp_path / 'eval' / 'metrics.json') as f:  # the file scored, found from any folder
        reported = json.load(f)['val_csv']
    assert os.path.isabs(reported) and os.path.samefile(reported, small_split['val'])
    (other / 'val.csv').unlink()
    monkeypatch.chdir(other)
    with pytest.raises(UserError, match=f'^{re.escape(str(other / "gone" / "val.csv"))}: no such file; .* was '
                                        'validated on it. Pass --val-csv$'):
        test_script.main(['--checkpoint', moved])
    (other / 'val.csv').mkdir()  # a folder of that name: said as what it is, not as nothing there
    with pytest.raises(UserError, match='^val\\.csv: a folder, not a CSV file; .* was '
                                        'validated on it. Pass --val-csv$'):
        test_script.main(['--checkpoint', moved])


def test_scoring_a_split_that_shares_some_pictures_the_run_trained_on_says_how_many(small_split, one_epoch_run,
                                                                                     tmp_path, monkeypatch, capsys):
    # A split made again with another seed, say: its figures flattered by pictures the run learned
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: None)  # not the question here
    last = os.path.join(one_epoch_run, 'last.pth')
    (tmp_path / 'link').symlink_to(small_split['catalog']['root'])  # the same pictures, named otherwise
    val, train_rows = (open(small_split[name]).read().splitlines() for name in ('val', 'train'))
    # and two rows skipped as they are read, not scored: were counted too (5 of the scored pictures)
    path, gender, article, colour = train_rows[4].split(',')
    skipped = [f'{path},{gender},Kurtas,{colour}', f'{path.replace(".jpg", "-gone.jpg")},{gender},{article},{colour}']
    mixed = write(tmp_path / 'mixed.csv',
                  '\n'.join(val + train_rows[1:4] + skipped).replace('fashion-product-images/', 'link/'))
    utf16 = tmp_path / 'utf16.csv'  # saved by a spreadsheet: read as FashionDataset reads it
    utf16.write_text(open(mixed).read(), encoding='utf-16')
    inflated = (f'are in {small_split["train"]} too, which {last} trained on: these figures are inflated by '
                'pictures it learned')
    for n, (val_csv, note) in enumerate([
            (mixed, f'note: 3 of the {len(val) + 2} pictures of {mixed} {inflated}'),
            (str(utf16), f'note: 3 of the {len(val) + 2} pictures of {utf16} {inflated}'),
            (small_split['val'], None),
            (small_split['train'], f'note: {small_split["train"]} holds the rows {last} trained on')]):
        test_script.main(['--checkpoint', last, '--val-csv', val_csv, '--output', str(tmp_path / f'eval{n}')])
        notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith('note: ')]
        assert [line[:len(note)] for line in notes] == ([note] if note else []), notes
    # a checkpoint that does not say which rows it trained on: nothing to count by
    state = checkpoint_load(last)
    bare = checkpoint_save(str(tmp_path / 'bare.pth'), dict(state, split_digests=None))
    test_script.main(['--checkpoint', bare, '--val-csv', mixed, '--output', str(tmp_path / 'eval')])
    assert 'note: ' not in capsys.readouterr().out


def test_a_bare_state_dict_scored_where_no_val_csv_is_names_the_flag_to_give(one_epoch_run, small_split, tmp_path,
                                                                            monkeypatch):
    # "./val.csv: no such file (a split made by split_data.py)", as the reading found it
    from demo import load_test_script
    test_script = load_test_script()
    bare = tmp_path / 'tutorial.pth'
    torch.save(checkpoint_load(os.path.join(one_epoch_run, 'last.pth'))['model'], bare)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=re.escape(f'./val.csv: no such file; {bare} names no split it was validated '
                                                  "on (the original tutorial's do not). Pass --val-csv")):
        test_script.main(['--checkpoint', str(bare), '--attributes_file', small_split['styles']])
    assert os.listdir(tmp_path) == ['tutorial.pth']  # no folder of results made


def test_a_runs_validation_split_edited_by_hand_is_said_to_share_pictures_it_trained_on_or_none(
        small_split, one_epoch_run, tmp_path, monkeypatch, capsys):
    # Only "maybe pictures it trained on", of a val.csv that had lost two rows, where the run's
    # train.csv, as it was, says which pictures it trained on.
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: None)  # not the question here
    (tmp_path / 'fashion-product-images').symlink_to(small_split['catalog']['root'])
    train_csv, val_csv = (str(shutil.copy(small_split[name], tmp_path / f'{name}.csv')) for name in ('train', 'val'))
    state = checkpoint_load(os.path.join(one_epoch_run, 'last.pth'))
    last = checkpoint_save(str(tmp_path / 'last.pth'),
                           dict(state, args=dict(state['args'], train_csv=train_csv, val_csv=val_csv)))
    val, train_rows = (open(path).read().splitlines() for path in (val_csv, train_csv))
    changed = f'{val_csv}: it holds other rows than when {last} was validated on it'
    write(tmp_path / 'val.csv', '\n'.join(val[:1] + val[3:]) + '\n')
    with pytest.raises(UserError) as refused:
        test_script.main(['--checkpoint', last])
    assert str(refused.value) == (f'{changed}, though none of its pictures is in {train_csv}, which it trained on; '
                                  'pass --val-csv to score it anyway')
    write(tmp_path / 'val.csv', '\n'.join(val + train_rows[1:4]) + '\n')
    with pytest.raises(UserError) as refused:
        test_script.main(['--checkpoint', last])
    assert str(refused.value).startswith(f'{changed}, and 3 of its pictures are in {train_csv}, which it trained on; ')
    test_script.main(['--checkpoint', last, '--val-csv', val_csv, '--output', str(tmp_path / 'eval')])
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith('note: ')] == [
        f'note: {val_csv} holds other rows than when {last} was validated on it; scoring it as --val-csv asks',
        f'note: 3 of the {len(val) + 2} pictures of {val_csv} are in {train_csv} too, which {last} trained on: these '
        'figures are inflated by pictures it learned']
    # train.csv changed too (split_data.py run again, say): which pictures it trained on, no one can tell
    write(tmp_path / 'train.csv', '\n'.join(train_rows[:1] + train_rows[2:]) + '\n')
    with pytest.raises(UserError) as refused:
        test_script.main(['--checkpoint', last])
    assert str(refused.value).startswith(f'{changed} (split_data.py run again?), maybe pictures it trained on; ')
    test_script.main(['--checkpoint', last, '--val-csv', val_csv, '--output', str(tmp_path / 'eval')])
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith('note: ')][:1] == [
        f'note: {val_csv} holds other rows than when {last} was validated on it, maybe pictures it trained on; '
        'scoring it as --val-csv asks']


def test_test_py_records_how_it_scored_and_the_rows_it_left_out(small_split, one_epoch_run, tmp_path, monkeypatch,
                                                                  capsys):
    # metrics.json said neither: figures in bf16, or over part of a split, looked like any others.
    # The labels the checkpoint never saw were not named. Its default folder, for a checkpoint
    # of two endings (the ImageNet example's checkpoint.pth.tar), was refused as a file's name.
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: None)  # not the question here
    (tmp_path / 'link').symlink_to(small_split['catalog']['root'])
    (tmp_path / 'broken.jpg').write_bytes(b'\xff\xd8 no picture')
    header, first, *rows = open(small_split['val']).read().replace('fashion-product-images/', 'link/').splitlines()
    path, gender, article, colour = first.split(',')
    val = write(tmp_path / 'val.csv', '\n'.join([header, first, *rows, f'{path},{gender},Kurtas,{colour}',
                                                 f'link/images/none.jpg,{gender},{article},{colour}',
                                                 f'broken.jpg,{gender},{article},{colour}']) + '\n')
    checkpoint = shutil.copy(os.path.join(one_epoch_run, 'last.pth'), tmp_path / 'checkpoint.pth.tar')
    test_script.main(['--checkpoint', str(checkpoint), '--val-csv', val, '--device', 'cpu'])
    said = capsys.readouterr().out
    assert f'{val}: labels not in the vocabulary: articleType Kurtas (1)\n' in said
    with open(tmp_path / 'eval-checkpoint.pth' / 'metrics.json') as f:
        report = json.load(f)
    assert report['skipped_rows'] == {'with a label not in the vocabulary': 1, 'image missing': 1,
                                      'image that could not be decoded': 1}
    assert report['val_samples'] == 24 and report['device'] == 'cpu' and report['precision'] == 'fp32'
    assert f'device: cpu (fp32{", channels_last" if report["channels_last"] else ""});' in said


def test_test_py_prints_paths_with_a_line_break_or_an_escape_sequence_on_one_line(small_split, one_epoch_run,
                                                                                  tmp_path, monkeypatch, capsys):
    # Its own lines printed them as they were: a checkpoint named run\x1b[31m.pth turned the terminal red,
    # and a split with a line break in its name split the line; its error messages escaped them.
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: None)  # not the question here
    (tmp_path / 'fashion-product-images').symlink_to(small_split['catalog']['root'])
    val = shutil.copy(small_split['val'], tmp_path / 'v\nal\x1b[0m.csv')
    checkpoint = shutil.copy(os.path.join(one_epoch_run, 'last.pth'), tmp_path / 'run\x1b[31m.pth')
    test_script.main(['--checkpoint', str(checkpoint), '--val-csv', str(val), '--device', 'cpu', '--workers', '0'])
    said = capsys.readouterr().out
    assert '\x1b' not in said
    assert f'checkpoint {tmp_path}/run\\x1b[31m.pth (epoch 1)\n' in said
    assert f'24 images from {tmp_path}/v\\nal\\x1b[0m.csv\n' in said
    assert f'predictions.png to {tmp_path}/eval-run\\x1b[31m\n' in said


def test_evaluate_py_run_as_a_script_points_to_test_py(tmp_path):
    # It ran, did nothing and exited 0: a module of train.py's and test.py's, named like a command.
    result = run_script('evaluate.py', '--checkpoint', 'last.pth', cwd=ROOT)
    assert (result.returncode, result.stdout) == (1, '')
    from cli import this_python  # python where it is the one on PATH, else its path: as every printed command
    assert result.stderr == ('evaluate.py is a module of train.py and test.py; score a checkpoint with: '
                             f'{shlex.join([this_python(), "test.py", "--checkpoint", "CHECKPOINT"])}\n')
    elsewhere = run_script('evaluate.py', cwd=tmp_path)  # from another folder: test.py by its path
    assert elsewhere.stderr.endswith(f': {shlex.join([this_python(), os.path.join(ROOT, "test.py")])} --checkpoint '
                                     'CHECKPOINT\n')
    # In a working folder since deleted: said before PyTorch is imported, which died inside MKL there
    gone = tmp_path / 'gone'
    gone.mkdir()
    result = subprocess.run(['sh', '-c', 'rmdir "$PWD" && exec "$0" "$@"', sys.executable,
                             os.path.join(ROOT, 'evaluate.py')], cwd=gone, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr == elsewhere.stderr


def test_a_split_sorted_in_a_spreadsheet_is_scored_as_the_rows_it_held(small_split, one_epoch_run, tmp_path,
                                                                         monkeypatch, capsys):
    # The order of a split's rows changes none of test.py's figures: the run's own val.csv sorted
    # since is scored without a word, by default as with --val-csv, and a sorted train.csv is still
    # the rows the run trained on.
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: None)  # not the question here
    (tmp_path / 'link').symlink_to(small_split['catalog']['root'])  # the pictures, from the copies' folder

    def sorted_copy(name):
        header, *rows = open(small_split[name]).read().replace('fashion-product-images/', 'link/').splitlines()
        assert sorted(rows, reverse=True) != rows
        return write(tmp_path / f'{name}.csv', '\n'.join([header, *sorted(rows, reverse=True)]) + '\n')

    val, train_csv = sorted_copy('val'), sorted_copy('train')
    state = checkpoint_load(os.path.join(one_epoch_run, 'last.pth'))
    last = checkpoint_save(str(tmp_path / 'last.pth'), dict(state, args=dict(state['args'], val_csv=val)))
    output = ['--output', str(tmp_path / 'eval')]
    for flags in ([], ['--val-csv', val]):
        test_script.main(['--checkpoint', last, *output, *flags])
        scored = capsys.readouterr().out
        assert f'24 images from {val}' in scored and 'note: ' not in scored, scored
    test_script.main(['--checkpoint', last, '--val-csv', train_csv, '--output', str(tmp_path / 'eval-train')])
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith('note: ')]
    assert notes == [f'note: {train_csv} holds the rows {last} trained on: these figures say how well it learned '
                     'them, not how it does on pictures it has not seen']


def interrupted():
    raise KeyboardInterrupt


def test_ctrl_c_is_one_line_and_the_shells_status_130(capsys):
    # train.py says what it saved itself; the other scripts stop with this line, not a traceback.
    with pytest.raises(SystemExit) as stopped:
        run_cli(interrupted)
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip() == 'interrupted (Ctrl-C); no file was left half-written'


def test_a_name_with_a_line_break_or_an_escape_sequence_stays_on_the_error_line(tmp_path, capsys):
    # `--output $'p\e[31m\nX.txt'`: the line was split in two and the terminal turned red
    odd = str(tmp_path / 'p\x1b[31m\nX.txt')
    for fails in (lambda: predict.main(['--checkpoint', 'x.pth', 'a.jpg', '--output', odd]),
                  lambda: open(odd), lambda: os.listdir(b'caf\xe9\n'.decode('utf-8', 'surrogateescape'))):
        with pytest.raises(SystemExit) as stopped:
            run_cli(fails)
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and '\x1b' not in err and ('\\x1b[31m\\nX.txt' in err or 'caf\\xe9\\n' in err)
    assert err == 'error: caf\\xe9\\n: No such file or directory\n'


@pytest.mark.parametrize('name, status', [('SIGTERM', 143), ('SIGHUP', 129)])
def test_a_sigterm_or_sighup_is_one_line_and_the_shells_status_and_its_handler_goes_after(name, status):
    # As `kill` or `timeout` ends a script, or a terminal that closes: as a Ctrl-C does, not where
    # it stands (status -15 or -1).
    script = ('import signal, sys\n'
              'from cli import run_cli\n'
              f'run_cli(lambda: signal.raise_signal(signal.{name}))\n')
    stopped = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (stopped.returncode, stopped.stderr.strip()) == (status, f'stopped by {name}; no file was left half-written')
    script = ('import signal\n'
              'from cli import run_cli\n'
              'run_cli(lambda: None)\n'
              f'assert signal.getsignal(signal.{name}) is signal.SIG_DFL\n'
              f'signal.signal(signal.{name}, signal.SIG_IGN)\n'
              f'run_cli(lambda: signal.raise_signal(signal.{name}))  # one ignored (nohup) stays so\n'
              f'assert signal.getsignal(signal.{name}) is signal.SIG_IGN\n')
    done = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, '')


@pytest.mark.skipif(not os.path.exists('/proc/self/fd'), reason="needs Linux: the files behind a process's numbers")
@pytest.mark.parametrize('closed', ['2>&-', '<&- 2>&-'])
def test_a_closed_stderr_is_given_dev_null_not_the_next_file_opened(closed, tmp_path):
    # The next file opened took a closed stream's number: what a library's C code writes to its
    # stderr went into it. Its stdout left open, the script says where each went.
    script = ('import os, sys\n'
              'from cli import run_cli\n'
              'def main():\n'
              '    with open(sys.argv[1], "w") as f:\n'
              '        print(os.readlink("/proc/self/fd/2"), f.fileno() > 2, sys.stderr.fileno())\n'
              '    print("a bar", file=sys.stderr)\n'
              'run_cli(main)\n')
    done = subprocess.run(['sh', '-c', f'"$0" -c "$1" "$2" {closed}', sys.executable, script, str(tmp_path / 'file')],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f'{os.devnull} True 2\n', '')


@pytest.mark.skipif(not os.path.exists('/proc/self/fd'), reason="needs Linux: the files behind a process's numbers")
@pytest.mark.parametrize('buffered', [True, False], ids=['buffered', 'PYTHONUNBUFFERED'])
def test_an_output_that_cannot_be_written_is_named_in_one_line(buffered, tmp_path):
    # `> log` on a full disk: Python's traceback, as the OSError names no file, or where stdout is
    # buffered (Python's default), its "Exception ignored" at the exit and status 120. Here writes
    # to the file fail as on a full disk, for real (EFBIG).
    log = tmp_path / 'log'
    script = ('import resource, sys\n'
              'from cli import run_cli\n'
              'resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n'
              'run_cli(lambda: print("a line of output"))\n')
    env = dict(os.environ, PYTHONUNBUFFERED='' if buffered else '1')
    with open(log, 'w') as output:
        done = subprocess.run([sys.executable, '-c', script], cwd=ROOT, stdout=output, stderr=subprocess.PIPE,
                              text=True, timeout=60, env=env)
    assert (done.returncode, done.stderr) == (2, f'error: {os.path.realpath(log)} (the standard output): File too '
                                                 'large\n')


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='needs /dev/full, where writes fail as on a full disk')
@pytest.mark.parametrize('buffered', [True, False], ids=['buffered', 'PYTHONUNBUFFERED'])
def test_a_script_whose_output_cannot_be_written_says_so_and_stops(buffered, tmp_path):
    # Its lines, and in Python's buffer the words of a SystemExit's too (argparse's --help, which
    # argparse, where it writes them at once, leaves unsaid on an error).
    make_catalog(str(tmp_path / 'catalog'), n_images=20)
    script = [sys.executable, os.path.join(ROOT, 'split_data.py')]
    commands = [[*script, '--input', tmp_path / 'catalog', '--output', tmp_path / 'split'], [*script, '--help']]
    for command in commands[:2 if buffered else 1]:
        with open('/dev/full', 'w') as full:
            done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
                                  env=dict(os.environ, PYTHONUNBUFFERED='' if buffered else '1'))
        assert (done.returncode, done.stderr) == (2, 'error: /dev/full (the standard output): No space left on '
                                                     'device\n'), command


def test_a_scripts_objects_are_left_to_its_exit_not_to_the_garbage_collector():
    # Python's last collections took 1.2 s of the exit of every script (with PyTorch loaded, on 2
    # cores). The handler registered here runs after run_cli's, just before the modules are cleared.
    script = ('import atexit, gc, sys\n'
              f'sys.path.insert(0, {ROOT!r})\n'
              'atexit.register(lambda: print("frozen at the exit:", gc.get_freeze_count() > 0))\n'
              'from cli import UserError, run_cli\n'
              'def fails():\n'
              '    raise UserError("a.csv: no such file")\n'
              'run_cli(fails if sys.argv[1:] else lambda: None)\n')
    for argv, status in (([], 0), (['fails'], 2)):
        done = subprocess.run([sys.executable, '-c', script, *argv], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (status, 'frozen at the exit: True\n'), done.stderr


class WritesKept:
    def __init__(self):
        self.writes = []

    def write(self, text):
        self.writes.append(text)

    def flush(self):
        pass


@pytest.mark.parametrize('error,line', [
    (UserError('a.csv: no such file'), 'error: a.csv: no such file\n'),
    (PermissionError(13, 'Permission denied', 'runs/x'), 'error: runs/x: Permission denied\n'),
    (UnicodeEncodeError('utf-8', 'b\udcff.jpg', 1, 2, 'surrogates not allowed'),
     'error: b\\xff.jpg: a file or folder name here is not valid UTF-8, which the CSVs and the output are; '
     'rename it\n')])
def test_an_error_line_is_one_write_that_another_process_cannot_split(error, line, monkeypatch):
    # Under torchrun the processes share one stderr: print's separate write of the line's end let
    # another process's line in before it ("...lower --lr.error: stopped: ...").
    def fails():
        raise error

    monkeypatch.delenv('FASHION_DEBUG', raising=False)
    monkeypatch.setattr(sys, 'stderr', WritesKept())
    with pytest.raises(SystemExit) as stopped:
        run_cli(fails)
    assert stopped.value.code == 2 and sys.stderr.writes == [line]



def test_the_line_of_a_stop_is_one_write_that_another_process_cannot_split(monkeypatch):
    # torchrun passes a Ctrl-C or a SIGTERM to every process: each said its line in two writes,
    # between which another's came ("...nothing was writtenW1204 ... Sending process ...").
    import cli
    monkeypatch.delenv('FASHION_DEBUG', raising=False)
    monkeypatch.setattr(sys, 'stderr', WritesKept())
    with pytest.raises(SystemExit):
        run_cli(interrupted)

    def exits(status):
        raise SystemExit(status)
    monkeypatch.setattr(cli.os, '_exit', exits)
    with pytest.raises(SystemExit):
        cli._exit_while_starting(signal.SIGTERM, None)
    assert sys.stderr.writes == ['\ninterrupted (Ctrl-C); no file was left half-written\n',
                                 '\nstopped by SIGTERM while starting; nothing was written\n']


@pytest.mark.parametrize('handler', [signal.default_int_handler, signal.SIG_IGN])
def test_a_ctrl_c_while_workers_are_forked_is_held_back_to_the_end_of_the_block(handler):
    # Python drops an exception raised in a fork handler (os.register_at_fork): a Ctrl-C must
    # not land in one. Held back, it is raised once the block has ended; an ignored one stays so.
    previous = signal.signal(signal.SIGINT, handler)  # pytest may run with it ignored (`pytest &`)
    ended = False
    try:
        with pytest.raises(KeyboardInterrupt) if handler is signal.default_int_handler else nullcontext():
            with ctrl_c_held():
                signal.raise_signal(signal.SIGINT)  # runs the handler before it returns
                ended = True
        assert ended
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize('sender', ['another process (timeout, to the process group)',
                                    'another process (SIGHUP, the shell as the terminal closes)',
                                    'the main process (multiprocessing, at its exit)'])
def test_a_dataloader_worker_ends_quietly_on_a_sigterm_or_sighup(sender):
    # PyTorch's own handler let another process's SIGTERM kill the worker (status -15), which the
    # main process then took for a failure; ignored, it hung the main process at its exit.
    before = set(multiprocessing.active_children())
    batches = iter(DataLoader(range(64), batch_size=8, num_workers=1, worker_init_fn=leave_stops_to_the_main_process))
    next(batches)  # the worker has run its worker_init_fn
    [worker] = set(multiprocessing.active_children()) - before
    if sender.startswith('another'):
        subprocess.run(['kill', '-HUP' if 'SIGHUP' in sender else '-TERM', str(worker.pid)], check=True)
    else:
        worker.terminate()
    worker.join(10)
    assert worker.exitcode == 0  # ended, quietly
    del batches


# A worker's main thread, stopped inside multiprocessing's locks: here an Event's wait, as a
# DataLoader's worker reads its done_event every batch under the lock it shares with the main process.
STOPPED_IN_A_SHARED_LOCK = """
import multiprocessing, os, signal, sys, threading, time
sys.path.insert(0, sys.argv[1])
from cli import leave_stops_to_the_main_process
def worker(event):
    leave_stops_to_the_main_process(0)
    main = threading.main_thread().ident
    def stop_it_inside_the_wait():
        while sys._current_frames()[main].f_globals['__name__'] != 'multiprocessing.synchronize':
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)
        event.set()
    threading.Thread(target=stop_it_inside_the_wait).start()
    event.wait(30)
    time.sleep(30)
fork = multiprocessing.get_context('fork')
event = fork.Event()
worker = fork.Process(target=worker, args=(event,))
worker.start()
worker.join(20)
print(worker.exitcode, flush=True)
# Ended inside the wait, it would leave its place among the event's sleepers: set() waits for it for good
setting = threading.Thread(target=lambda: (event.clear(), event.set(), print('let go', flush=True)), daemon=True)
setting.start()
setting.join(10)
os._exit(0)
"""


def test_a_stopped_dataloader_worker_ends_only_once_it_lets_go_of_the_locks_it_shares():
    # Ended holding one, it would leave the main process waiting for it for good as it ends the workers.
    # Seen from the process that shares the lock: the worker's own print after its wait was cut
    # short now and then on a busy machine, its end coming 10 ms after it let go.
    assert python_c(STOPPED_IN_A_SHARED_LOCK, ROOT) == (0, '0\nlet go\n', '')


# A SIGTERM that comes while Python imports a module (matplotlib's, as a figure is drawn), in a
# finder's find_spec, called by the import machinery.
STOPPED_IN_AN_IMPORT = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from cli import Terminated, stopping_signals_as_ctrl_c
class StopInImport:
    def find_spec(self, name, path=None, target=None):
        if name == 'a_module_being_imported':
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
sys.meta_path.insert(0, StopInImport())
done = False
with stopping_signals_as_ctrl_c():
    try:
        try:
            import a_module_being_imported
        except ModuleNotFoundError:
            # No call, where Python would run a signal handler: the stop, sent again every 10 ms while
            # the import runs, comes at once after it (a print here was once cut off by it: 'importedstopped').
            done = True
        time.sleep(30)
    except Terminated:
        print('imported' if done else 'stopped inside the import', flush=True)
        print('stopped after it', flush=True)
"""


def test_a_sigterm_during_an_import_stops_the_script_once_the_import_is_done():
    # Raised inside the import machinery, it was dropped there in a callback of its (a traceback,
    # and the stop lost) or left the module half-imported.
    assert python_c(STOPPED_IN_AN_IMPORT, ROOT) == (0, 'imported\nstopped after it\n', '')


STOPPED_IN_A_CALLBACK = """
import os, signal, sys, time, weakref
sys.path.insert(0, sys.argv[1])
from cli import run_cli


class Figure:
    pass


def freed(reference):  # as the garbage collector frees a figure: the signal lands in its callback
    os.kill(os.getpid(), signal.Signals[sys.argv[2]])
    time.sleep(0.1)


def main():
    figure = Figure()
    reference = weakref.ref(figure, freed)
    del figure
    if sys.argv[3] == 'goes on':
        for _ in range(100):
            time.sleep(0.01)
    print('went on')


run_cli(main)
"""


@pytest.mark.parametrize('name, said', [('SIGINT', 'interrupted (Ctrl-C)'), ('SIGTERM', 'stopped by SIGTERM')])
@pytest.mark.parametrize('main', ['goes on', 'returns'])
def test_a_stop_that_lands_in_a_weakref_callback_is_not_lost(name, said, main):
    # Python dropped it there, "Exception ignored in" and a traceback: train.py went on to its next
    # epoch and ended with status 0. Sent again as the script returned, it came after run_cli had put
    # back the system's handlers: a traceback at the exit, or a SIGTERM's end without a word.
    status, out, err = python_c(STOPPED_IN_A_CALLBACK, ROOT, name, main)
    assert (status, out, err) == (128 + signal.Signals[name], '' if main == 'goes on' else 'went on\n',
                                  f'\n{said}; no file was left half-written\n')


# Processes start as on macOS: spawned, Python's default there, ours too (cli.worker_processes forks
# them on Linux). A spawned worker first runs its parent's script, as __mp_main__: as it imports
# MODULE there, a Ctrl-C, a SIGTERM and a SIGHUP reach it, as a stop to the process group does.
AS_ON_MACOS = """
import multiprocessing, os, signal, sys
sys.path.insert(0, {root!r})
import cli
multiprocessing.set_start_method('spawn', force=True)
cli.worker_processes = lambda workers: None
class StopsAsItStarts:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                os.kill(os.getpid(), number)
if '--multiprocessing-fork' in sys.argv:
    sys.meta_path.insert(0, StopsAsItStarts())
"""


@pytest.mark.parametrize('script, module', [('split_data.py', 'catalog'), ('train.py', 'dataset')])
def test_a_stop_reaching_a_spawned_worker_as_it_starts_is_left_to_the_main_process(quirky_catalog, small_split,
                                                                                    tmp_path, script, module):
    # The worker printed its KeyboardInterrupt traceback from inside the import, or a SIGTERM ended it,
    # and the main process stopped with PyTorch's RuntimeError or a broken process pool. Here only the
    # worker is sent the stop: it goes on, and the run ends as if there had been none.
    site = tmp_path / 'site'
    site.mkdir()
    (site / 'sitecustomize.py').write_text(AS_ON_MACOS.format(root=ROOT, module=module))
    if script == 'split_data.py':
        args = ['--input', quirky_catalog['root'], '--output', tmp_path / 'splits', '--workers', 1]
    else:
        args = train_args(small_split, tmp_path, '--epochs', 1, '--data', 'loader', '--workers', 1)
    result = run_script(script, *args, cwd=tmp_path, env={'PYTHONPATH': str(site)})
    assert result.returncode == 0, result.stderr
    assert 'Traceback' not in result.stderr and 'Error' not in result.stderr
    if script == 'split_data.py':
        assert os.path.exists(tmp_path / 'splits' / 'train.csv')
    else:
        assert checkpoint_load(str(tmp_path / 'run' / 'last.pth'))['epoch'] == 1


@pytest.mark.parametrize('stop', [signal.SIGTERM, signal.SIGHUP])
def test_a_sigterm_or_sighup_while_workers_are_forked_is_held_back_too(stop):
    ended = False
    with stopping_signals_as_ctrl_c():  # as run_cli sets it
        handler = signal.getsignal(stop)
        with pytest.raises(Terminated) as raised:
            with ctrl_c_held():
                signal.raise_signal(stop)
                ended = True
        assert ended and signal.getsignal(stop) is handler and raised.value.signum == stop
    assert signal.getsignal(stop) is signal.SIG_DFL

# Runs a script as `python SCRIPT ARGS`, with a Ctrl-C (a SIGINT to itself) the moment it asks
# for MODULE, inside Python's import machinery, where a real Ctrl-C in the first seconds lands.
CTRL_C_AT_IMPORT = """
import os, runpy, signal, sys
module, number, script = sys.argv[1:4]
class CtrlCAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            os.kill(os.getpid(), int(number))
sys.meta_path.insert(0, CtrlCAtImport())
sys.argv = sys.argv[3:]
runpy.run_path(script, run_name='__main__')
"""


def ctrl_c_at_import(module, script, *args, sigint=signal.SIG_DFL, number=signal.SIGINT, env=()):
    return subprocess.run([sys.executable, '-c', CTRL_C_AT_IMPORT, module, str(int(number)), os.path.join(ROOT, script),
                           *args],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, FASHION_DEBUG='', **dict(env)),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))


@pytest.mark.parametrize('pytorchs, ours', [
    # its SIGCHLD handler's, raised wherever the main process was
    ('DataLoader worker (pid 4242) is killed by signal: Killed. ',
     'a DataLoader worker process (pid 4242) was killed by SIGKILL, as the system ends a process when memory runs out'),
    ("DataLoader worker (pid 4242) is killed by signal: Bus error. It is possible that dataloader's workers are out "
     "of shared memory. Please try to raise your shared memory limit.",
     'a DataLoader worker process (pid 4242) was killed by SIGBUS: out of shared memory (/dev/shm), through which '
     'workers pass their batches (64 MB in a Docker container not started with more, --shm-size)'),
    ('DataLoader worker (pid 4242) is killed by signal: Segmentation fault. ',
     'a DataLoader worker process (pid 4242) was killed by SIGSEGV'),
    ('DataLoader worker (pid 4242) exited unexpectedly with exit code 3. Details are lost due to multiprocessing. '
     'Rerunning with num_workers=0 may give better error trace.',
     'a DataLoader worker process (pid 4242) ended unexpectedly with exit code 3'),
    # its wait for a batch's, where it finds the worker gone first
    ('DataLoader worker (pid(s) 4242, 4243) exited unexpectedly',
     'DataLoader worker processes (pids 4242, 4243) ended unexpectedly: killed, most often, as the system ends a '
     'process when memory runs out'),
])
def test_a_dataloader_worker_that_ended_is_one_line_saying_what_most_likely_ended_it(capsys, pytorchs, ours):
    # train.py's decoding workers, or test.py's: PyTorch's words, at the end of a traceback
    def a_worker_ends():
        raise RuntimeError(pytorchs)

    with pytest.raises(SystemExit) as stopped:
        run_cli(a_worker_ends)
    assert (stopped.value.code, capsys.readouterr().err) == (2, f'error: {ours}\n')
    # A script with a flag for its workers names it, where memory most likely ran out: fewer need less
    fewer = ' (fewer --jobs need less; 0: none)' if ours.endswith('memory runs out') else ''
    with pytest.raises(SystemExit) as stopped:
        run_cli(a_worker_ends, workers_flag='--jobs')
    assert (stopped.value.code, capsys.readouterr().err) == (2, f'error: {ours}{fewer}\n')


def test_running_out_of_memory_is_one_line_naming_the_allocation(capsys):
    # profile_step.py --batch-size 100000000, or a batch too large for a GPU: PyTorch's traceback
    def allocates():
        torch.empty(2**50)  # 4 PiB: more than any machine's address space, whatever it overcommits

    with pytest.raises(SystemExit) as stopped:
        run_cli(allocates)
    assert stopped.value.code == 2
    assert capsys.readouterr().err == ('error: out of memory: DefaultCPUAllocator: can\'t allocate memory: you tried to '
                                       f'allocate {4 * 2**50} bytes. Error code 12 (Cannot allocate memory); a '
                                       'smaller batch, or fewer pictures, needs less\n')
    with pytest.raises(SystemExit):  # profile_step.py's: the flag to lower named
        run_cli(allocates, memory_flag='--batch-size')
    assert capsys.readouterr().err.endswith('(Cannot allocate memory); a smaller --batch-size needs less\n')

    def in_a_worker():  # as a DataLoader raises a worker's error: its traceback as text, the line at its end
        raise RuntimeError('Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent '
                           'call last):\n  File "x.py", line 1\nRuntimeError: [enforce fail at alloc_cpu.cpp:127] '
                           'err == 0. DefaultCPUAllocator: can\'t allocate memory: you tried to allocate 96 bytes.')

    with pytest.raises(SystemExit):
        run_cli(in_a_worker)
    assert capsys.readouterr().err.startswith("error: out of memory: DefaultCPUAllocator: can't allocate memory: "
                                              "you tried to allocate 96 bytes.; ")
    def forks():  # a worker process, with no memory left to start it
        raise OSError(errno.ENOMEM, 'Cannot allocate memory')

    with pytest.raises(SystemExit):
        run_cli(forks)
    assert capsys.readouterr().err.startswith('error: out of memory: Cannot allocate memory; ')
    with pytest.raises(SystemExit):
        run_cli(lambda: np.empty(10**13))  # NumPy's MemoryError
    assert capsys.readouterr().err.startswith('error: out of memory: Unable to allocate 72.8 TiB')

    def bug():
        raise RuntimeError('mat1 and mat2 shapes cannot be multiplied')

    with pytest.raises(RuntimeError, match='shapes cannot'):  # any other: a bug, with its traceback
        run_cli(bug)

@pytest.mark.parametrize('script,module', [('train.py', 'torch'), ('test.py', 'torch'), ('predict.py', 'torch'),
                                           ('demo.py', 'torch'), ('split_data.py', 'PIL'),
                                           ('sample_catalog.py', 'numpy'), ('benchmarks/bench.py', 'torch'),
                                           ('benchmarks/step_variants.py', 'torch'),
                                           ('benchmarks/profile_step.py', 'torch'),
                                           ('benchmarks/freed_memory.py', 'torch')])
def test_ctrl_c_while_the_imports_run_is_one_line_too(script, module):
    stopped = ctrl_c_at_import(module, script)
    assert (stopped.returncode, stopped.stdout) == (130, '')
    assert stopped.stderr.strip() == 'interrupted (Ctrl-C) while starting; nothing was written'


# scikit-learn imported by the first scoring, with a Ctrl-C as it asks for scipy (1.4 s of imports)
SCORING_STOPPED = """
import os, signal, sys
import evaluate, train
print('imported with the scripts:', 'sklearn' in sys.modules)
class CtrlCAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == 'scipy':
            os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, CtrlCAtImport())
try:
    evaluate.scoring()
except KeyboardInterrupt:
    print('held until the import ended:', 'sklearn.metrics' in sys.modules)
"""


def test_scikit_learn_waits_for_the_first_scoring_and_a_ctrl_c_in_its_import_is_held_until_it_ends():
    # Its 1.4 s (on 2 cores) came before a --help or a refused input of train.py, test.py and
    # demo.py. Imported later, a Ctrl-C inside a C extension's import could be its ImportError.
    status, out, err = python_c(SCORING_STOPPED, cwd=ROOT)
    assert (status, out) == (0, 'imported with the scripts: False\nheld until the import ended: True\n'), err


@pytest.mark.parametrize('number', [signal.SIGTERM, signal.SIGHUP])
def test_a_sigterm_or_sighup_while_the_imports_run_is_one_line_too(number):
    # It ended the script without a word; once started, the script stops on it as on a Ctrl-C.
    stopped = ctrl_c_at_import('torch', 'train.py', number=number)
    assert (stopped.returncode, stopped.stdout) == (128 + number, '')
    assert stopped.stderr.strip() == f'stopped by {number.name} while starting; nothing was written'


def test_torchruns_other_processes_of_a_machine_stopped_while_starting_stop_quietly():
    # torchrun's SIGTERM to a process still importing, as the first one ended on an error it said:
    # "stopped by SIGTERM while starting" after it, from each of the others, as if that were why.
    stopped = ctrl_c_at_import('torch', 'train.py', number=signal.SIGTERM, env={'WORLD_SIZE': '2', 'LOCAL_RANK': '1'})
    assert (stopped.returncode, stopped.stdout, stopped.stderr) == (143, '', '')


def test_a_stop_while_starting_removes_the_folder_pytorch_2_6_makes_as_it_is_imported(monkeypatch, tmp_path):
    # PyTorch 2.6's torch.distributed.nn (imported by torchvision) makes a folder in TMPDIR that
    # only an exit handler removes: os._exit, on a signal while starting or in bench.py, left it.
    import types
    from cli import remove_folder_made_by_importing_pytorch
    instantiator = 'torch.distributed.nn.jit.instantiator'
    made, other = tmp_path / 'tmp1234', tmp_path / 'other'
    for folder in (made, other):
        folder.mkdir()
        (folder / '_remote_module_non_scriptable.py').write_text('')
    monkeypatch.delitem(sys.modules, instantiator, raising=False)
    remove_folder_made_by_importing_pytorch()  # not imported: nothing to remove, nothing raised
    module = types.ModuleType(instantiator)
    monkeypatch.setitem(sys.modules, instantiator, module)
    remove_folder_made_by_importing_pytorch()  # a PyTorch that makes none
    module._TEMP_DIR = types.SimpleNamespace(name=str(made))  # as tempfile.TemporaryDirectory() names it
    remove_folder_made_by_importing_pytorch()
    assert sorted(os.listdir(tmp_path)) == ['other']


def test_an_ignored_ctrl_c_stays_ignored_and_debug_keeps_the_traceback():
    # `cmd &` in a script or nohup: the signal stays ignored and the script goes on.
    ignored = ctrl_c_at_import('torch', 'train.py', '--help', sigint=signal.SIG_IGN)
    assert ignored.returncode == 0, ignored.stderr
    assert '--batch-size' in ignored.stdout
    debugged = ctrl_c_at_import('torch', 'train.py', '--debug')
    assert 'Traceback' in debugged.stderr and 'KeyboardInterrupt' in debugged.stderr


@pytest.mark.parametrize('flags,words', [
    (['--epochs', '0'], ['--epochs', 'at least 1']),
    (['--epochs', '-3'], ['--epochs']),
    (['--batch-size', '0'], ['--batch-size', 'at least 1']),
    (['--batch-size', str(10**20)], ['--batch-size', 'below 2**63']),
    (['--lr', 'fast'], ['--lr', 'not a number']),
    (['--lr', '-1'], ['--lr', 'above 0']),
    (['--lr', '0'], ['--lr', 'above 0']),
    (['--lr', 'nan'], ['--lr']),
    (['--warmup-epochs', 'inf'], ['--warmup-epochs', 'finite']),
    (['--warmup-epochs', 'nan'], ['--warmup-epochs', 'finite']),
    (['--warmup-epochs', '-1'], ['--warmup-epochs', '0 or more']),
    (['--seed', str(2**70)], ['--seed', 'below 2**32']),
    (['--seed', '-1'], ['--seed', 'at least 0']),
    (['--compile', 'fastest'], ['--compile', 'invalid choice']),
    (['--compile', 'reduce-overhead', '--cuda-graphs', 'on'], ['reduce-overhead', 'own CUDA graphs']),
])
def test_out_of_range_flags_are_refused_by_name(flags, words, capsys):
    with pytest.raises(SystemExit) as exit_status:
        train.parse_args(flags)
    assert exit_status.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    for word in words:
        assert word in err


@pytest.mark.parametrize('script, flags', [
    ('train', ['--attributes_file', '--train-csv', '--val-csv', '--checkpoints', '--logs', '--resume']),
    ('test', ['--val-csv', '--attributes_file']), ('predict', ['--attributes_file', None]),
    ('split_data', ['--input']), ('demo', ['--data'])])
def test_an_empty_path_is_refused_not_taken_for_the_default(script, flags, capsys):
    # `--resume "$CK"` with CK unset started a new run; test.py's `--val-csv ''` scored the
    # checkpoint's own split, and train.py's `--checkpoints ''` wrote the run into the current folder.
    module = __import__(script)
    for flag in flags:
        base = ['--checkpoint', 'last.pth'] if script in ('test', 'predict') else []
        with pytest.raises(SystemExit) as refused:
            module.parse_args(base + ([flag, ''] if flag else ['']))  # None: predict.py's pictures
        assert refused.value.code == 2
        err = capsys.readouterr().err.splitlines()[-1]
        assert err.endswith(f': error: argument {flag or "IMAGE_OR_FOLDER"}'
                            f'{"/--annotations" if (script, flag) == ("test", "--val-csv") else ""}: an empty name '
                            '(a variable not set?); give a path, or leave it out'), err
    if script == 'train':  # a run's folder: named by the clock, as with the flag left out
        with pytest.raises(SystemExit):
            train.parse_args(['--run-name', ''])
        assert capsys.readouterr().err.endswith(': error: argument --run-name: an empty name (a variable not set?); '
                                                'give a name, or leave it out\n')


@pytest.mark.parametrize('script', ['train', 'test', 'predict', 'demo'])
def test_an_empty_device_is_refused_as_empty_not_as_a_wrong_name(script, capsys):
    # `--device "$DEVICE"` with DEVICE unset was "--device : not a device name (use cpu, ...)"
    base = ['--checkpoint', 'last.pth'] if script in ('test', 'predict') else []
    with pytest.raises(SystemExit) as refused:
        __import__(script).parse_args(base + ['--device', ''])
    assert refused.value.code == 2
    assert capsys.readouterr().err.endswith(': error: argument --device: an empty name (a variable not set?); '
                                            'give cpu, cuda, cuda:N or mps, or leave it out\n')


@pytest.mark.skipif(__import__('torch').cuda.is_available(), reason='this machine has a GPU')
def test_device_that_is_not_there_is_named(small_split, tmp_path):
    result = run_script('train.py', '--device', 'cuda', '--train-csv', small_split['train'],
                        '--attributes_file', small_split['styles'], cwd=str(tmp_path))
    assert_clean_failure(result, '--device cuda', 'no CUDA GPU')


def test_a_folder_name_that_is_not_utf8_is_named_not_a_traceback(quirky_catalog, tmp_path):
    # Linux allows any bytes in a name; the CSVs that would hold it are UTF-8.
    odd = tmp_path / os.fsdecode(b'caf\xe9')
    shutil.copytree(quirky_catalog['root'], odd)
    result = run_script('split_data.py', '--input', odd, '--output', tmp_path / 'out',
                        env={'PYTHONIOENCODING': 'utf-8'})
    assert_clean_failure(result, 'caf\\xe9', 'not valid UTF-8', 'rename it')
    assert not os.path.exists(tmp_path / 'out' / 'train.csv')


def test_the_demo_refuses_a_device_before_any_work(tmp_path):
    result = run_script('demo.py', '--device', 'tpu', '--work', tmp_path / 'demo')
    assert_clean_failure(result, '--device tpu', 'not a device name')
    assert not os.path.exists(tmp_path / 'demo')  # no catalog drawn, nothing split


def test_a_gpu_named_by_number_becomes_the_current_one(monkeypatch):
    # Streams and CUDA graphs go to the current GPU: --device cuda:1 must make it so, or the
    # training step would be recorded on cuda:0's stream, empty. A machine of 3 GPUs, pretended.
    torch = __import__('torch')
    chosen = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 3)
    monkeypatch.setattr(torch.cuda, 'set_device', chosen.append)
    assert pick_device('cuda:1') == torch.device('cuda', 1) and chosen == [torch.device('cuda', 1)]
    assert pick_device('cuda') == torch.device('cuda') and len(chosen) == 1  # the current one stays
    with pytest.raises(UserError, match='has 3 CUDA devices$'):
        pick_device('cuda:3')
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    with pytest.raises(UserError, match='^--device cuda:1: this machine has 1 CUDA device$'):
        pick_device('cuda:1')


def test_compile_without_a_cpp_compiler_is_explained_before_any_work(small_split, tmp_path):
    # A cache of its own: with the compiled kernels cached on disk, no compiler would be needed.
    result = run_script('train.py', *train_args(small_split, tmp_path, '--epochs', 1, '--compile'),
                        env={'CXX': '/bin/false', 'TORCHINDUCTOR_CACHE_DIR': str(tmp_path / 'cache')})
    assert_clean_failure(result, '--compile', 'C++ compiler', 'without --compile')
    assert 'epoch' not in result.stdout and not (tmp_path / 'run').exists()  # said before loading or tracing


def test_a_compiler_failure_while_compiling_is_explained_too(small_split, tmp_path, monkeypatch):
    # What the check up front cannot see (a compiler that runs but cannot build; Triton on a GPU)
    # is explained where it happens, in the first step.
    def failing_backend(graph, example_inputs):
        raise RuntimeError('g++: internal compiler error')
    real_compile = torch.compile
    monkeypatch.setattr(torch, 'compile', lambda model, mode: real_compile(model, backend=failing_backend))
    with pytest.raises(UserError, match='--compile: torch.compile could not build the model .*without --compile'):
        train.main(train_args(small_split, tmp_path, '--epochs', 1, '--compile'))


def test_a_quote_closed_on_the_next_line_is_named_too(tmp_path):
    # Not only one that runs on for lines: this one would swallow row 3 into row 2's name.
    text = '\n'.join([HEADER, ROW.format(1), ROW.format(2).replace('Roadster', '"Roadster'),
                      ROW.format(3) + ' 5" wide', ROW.format(4)])
    (tmp_path / 'styles.csv').write_text(text + '\n')
    with pytest.raises(UserError, match='line 3: a quoted field runs on to line 4'):
        read_styles(str(tmp_path / 'styles.csv'))


def test_a_spreadsheets_cell_of_two_lines_is_read_but_not_in_a_label(tmp_path):
    # A product's name typed in two lines, which a spreadsheet writes quoted: the whole catalog was
    # refused as of a quote left open.
    two_lines = ROW.format(2).replace('Roadster Men Blue Tshirts', '"Roadster, Men\r\nBlue Tshirts"')
    write(tmp_path / 'styles.csv', '\n'.join([HEADER, ROW.format(1), two_lines, ROW.format(3)]) + '\n')
    styles, skipped = read_styles(str(tmp_path / 'styles.csv'))
    assert [s.id for s in styles] == ['1', '2', '3'] and not skipped
    # A label of two lines is no label: its row skipped, as one with NA (the whole catalog refused before)
    two_lines = ROW.format(2).replace('Blue,', '"Navy\r\nBlue",')
    write(tmp_path / 'styles.csv', '\n'.join([HEADER, ROW.format(1), two_lines, ROW.format(3)]) + '\n')
    styles, skipped = read_styles(str(tmp_path / 'styles.csv'))
    assert [s.id for s in styles] == ['1', '3'] and skipped == {'baseColour runs over several lines': 1}
    # Not in a row with a comma too many, where which cell is the label is not sure
    write(tmp_path / 'styles.csv', '\n'.join([HEADER, ROW.format(1), two_lines.replace('Roadster', 'Road,ster'),
                                              ROW.format(3)]) + '\n')
    with pytest.raises(UserError, match='styles.csv: line 3: a quoted field runs on to line 4; a quote left open'):
        read_styles(str(tmp_path / 'styles.csv'))


def test_the_any_mode_hint_is_given_with_any_size_on():
    import argparse
    from collections import Counter
    import split_data
    args = argparse.Namespace(input='catalog', any_size=True, any_mode=False)
    assert '--any-mode' in split_data.no_images_left(Counter({'not RGB': 3}), args)


def test_the_edges_of_the_ranges_flags_take():
    import argparse
    from cli import seed_number
    assert train.parse_args(['--warmup-epochs', '0']).warmup_epochs == 0  # the default, typed out
    assert seed_number(str(2**32 - 1)) == 2**32 - 1
    with pytest.raises(argparse.ArgumentTypeError, match='must be below 2\\*\\*32'):
        seed_number(str(2**32))


@pytest.mark.parametrize('saved', [None, {}, {'val_csv': None}])
def test_test_py_scores_a_checkpoint_without_the_name_of_its_split(one_epoch_run, small_split, tmp_path, monkeypatch,
                                                                   capsys, saved):
    # Its split's digest kept, its settings edited away: a KeyError or TypeError comparing them
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: None)
    state = checkpoint_load(os.path.join(one_epoch_run, 'last.pth'))
    edited = checkpoint_save(str(tmp_path / 'edited.pth'), dict(state, args=saved))
    test_script.main(['--checkpoint', edited, '--val-csv', small_split['val'], '--output', str(tmp_path / 'eval')])
    assert f'24 images from {small_split["val"]}' in capsys.readouterr().out


def test_test_py_stopped_while_drawing_leaves_no_empty_output_folder(one_epoch_run, small_split, tmp_path,
                                                                    monkeypatch):
    # A Ctrl-C as the figures were drawn left eval-last/ empty behind (demo.py's step 4, say).
    from demo import load_test_script
    test_script = load_test_script()
    monkeypatch.setattr(test_script, 'draw_figures', lambda jobs, parallel=True: interrupted())
    argv = ['--checkpoint', os.path.join(one_epoch_run, 'last.pth'), '--val-csv', small_split['val']]
    with pytest.raises(KeyboardInterrupt):
        test_script.main(argv + ['--output', str(tmp_path / 'new' / 'eval')])
    assert not (tmp_path / 'new').exists()  # nor the folder above it, made for it
    (tmp_path / 'mine').mkdir()  # an empty folder of the user's stays
    with pytest.raises(KeyboardInterrupt):
        test_script.main(argv + ['--output', str(tmp_path / 'mine')])
    assert os.listdir(tmp_path / 'mine') == []
    (tmp_path / 'eval').mkdir()
    (tmp_path / 'eval' / 'notes.txt').write_text('mine')
    with pytest.raises(KeyboardInterrupt):
        test_script.main(argv + ['--output', str(tmp_path / 'eval')])  # one that was there stays, with its files
    assert os.listdir(tmp_path / 'eval') == ['notes.txt']


@pytest.mark.parametrize('flags', [
    ['--epochs', '1', '--batch-size', '1', '--val-every', '1', '--save-every', '1'],  # at least 1: 1 itself
    ['--workers', '0', '--warmup-epochs', '0', '--seed', '0'],  # 0 or more: 0 itself
    ['--seed', str(2**32 - 1), '--batch-size', str(2**63 - 1)],  # below 2**32 and 2**63: the last ones below
])
def test_the_edges_of_each_flags_range_are_taken(flags):
    # `--workers 0` is how the tests and a debugger run, `--warmup-epochs 0` the default written out.
    args = train.parse_args(flags)
    for flag, value in zip(flags[::2], flags[1::2]):
        taken = getattr(args, flag[2:].replace('-', '_'))
        assert taken == type(taken)(value)


@pytest.mark.parametrize('flags,words', [(['--seed', str(2**32)], ['--seed', 'below 2**32']),
                                         (['--batch-size', str(2**63)], ['--batch-size', 'below 2**63'])])
def test_the_first_number_past_a_flags_range_is_refused(flags, words, capsys):
    # NumPy's generator takes seeds up to 2**32 - 1 only: 2**32 failed at the start, in a traceback.
    with pytest.raises(SystemExit) as exit_status:
        train.parse_args(flags)
    err = capsys.readouterr().err
    assert exit_status.value.code == 2 and 'Traceback' not in err and all(word in err for word in words)


@pytest.mark.parametrize('name', ['..', '.', 'runs/..'])
def test_a_run_name_that_leads_out_of_the_checkpoints_folder_is_refused(name, capsys):
    # --run-name .. put args.json, the checkpoints and curves.png in the folder above --checkpoints,
    # over what is there.
    with pytest.raises(SystemExit) as exit_status:
        train.parse_args(['--run-name', name])
    err = capsys.readouterr().err
    assert exit_status.value.code == 2 and "give one folder's name" in err


def test_a_device_of_a_type_we_do_not_run_on_is_refused_by_name():
    # 'meta' and 'xpu' are device names torch takes: they failed later, in a traceback from inside it.
    with pytest.raises(UserError, match=r'^--device meta: unsupported device type \(use cpu, cuda or mps\)$'):
        pick_device('meta')


def test_a_system_error_that_names_no_file_is_not_said_to_be_about_a_file_named_none(monkeypatch):
    # "error: None: Input/output error" names a file that is not there; the error goes on as it is.
    def fails():
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.delenv('FASHION_DEBUG', raising=False)
    monkeypatch.setattr(sys, 'stderr', WritesKept())
    with pytest.raises(OSError, match='Input/output error'):
        run_cli(fails)
    assert not any('None' in line for line in sys.stderr.writes)


@pytest.mark.parametrize('script, argv', [
    ('split_data.py', ['--input', '{catalog}', '--output', 'splits', '--workers', '1']),
    ('split_data.py', ['--workers', '1']),  # its relative --input was 'no such folder': download the dataset
    ('sample_catalog.py', ['--output', 'catalog', '--images', '3']),
    # PyTorch's import died in a deleted folder, inside Intel's MKL: "oneMKL FATAL ERROR: Cannot load"
    *[(script, []) for script in ('train.py', 'test.py', 'predict.py', 'demo.py', 'benchmarks/bench.py',
                                  'benchmarks/freed_memory.py', 'benchmarks/profile_step.py',
                                  'benchmarks/step_variants.py')],
])
def test_a_working_folder_since_deleted_is_one_line_for_a_relative_path_or_pytorchs_import(quirky_catalog, tmp_path,
                                                                                            script, argv):
    # `rm -rf` of the folder a shell is in, from another one: os.getcwd() then raises an OSError
    # that names no file, for any relative path made absolute, and that was a traceback.
    gone = tmp_path / 'gone'
    gone.mkdir()
    argv = [arg.format(catalog=quirky_catalog['root']) for arg in argv]
    result = subprocess.run(['sh', '-c', 'rmdir "$PWD" && exec "$0" "$@"', sys.executable, os.path.join(ROOT, script),
                             *argv], cwd=gone, capture_output=True, text=True, timeout=120)
    assert_clean_failure(result, f'the working folder {gone}: deleted', 'cd into a folder that exists')


# Each script as Windows would start it: the modules cli.py imports first (Python's own, which read
# sys.platform as they are imported), then sys.platform as Windows has it, and none of what
# Windows lacks: SIGHUP, pthread_sigmask, the fcntl and resource modules.
AS_ON_WINDOWS = """
import ast, runpy, signal, sys
with open({cli!r}) as source:
    for node in ast.parse(source.read()).body:
        if isinstance(node, ast.Import):
            [__import__(alias.name) for alias in node.names]
sys.platform = 'win32'
del signal.SIGHUP, signal.pthread_sigmask
sys.modules.update(fcntl=None, resource=None)
sys.path.insert(0, {root!r})
sys.argv = [{script!r}]
runpy.run_path({script!r}, run_name='__main__')
"""


@pytest.mark.parametrize('script', ['split_data.py', 'sample_catalog.py', 'train.py', 'test.py', 'predict.py',
                                    'demo.py', 'benchmarks/bench.py'])
def test_windows_is_named_in_one_line_with_what_to_do_instead(tmp_path, script):
    # cli.py's signal.SIGHUP, which Windows lacks, ended each script with an AttributeError's traceback
    code = AS_ON_WINDOWS.format(cli=os.path.join(ROOT, 'cli.py'), root=ROOT, script=os.path.join(ROOT, script))
    assert python_c(code, cwd=tmp_path) == (2, '', 'error: this project runs on Linux and macOS, not on Windows '
                                                   'itself; on Windows, run it in WSL '
                                                   '(https://learn.microsoft.com/windows/wsl/install)\n')
    assert os.listdir(tmp_path) == []
