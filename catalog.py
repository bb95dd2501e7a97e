# Reading the Kaggle catalog as it really is: styles.csv with unquoted commas in product names,
# 'NA' labels, odd encodings and line endings, and images that are missing, broken or off-size.
# split_data.py and dataset.py both read through here, so the quirks are handled in one place.
import codecs
import csv
import errno
import io
import os
import re
import struct
import warnings
from collections import Counter, defaultdict, namedtuple
from contextlib import contextmanager

from PIL import Image

from cli import UserError, command, counted, not_a_file, reach_problem

IMAGE_SIZE = (60, 80)  # (width, height) of every picture in the small catalog
LABEL_COLUMNS = ('gender', 'articleType', 'baseColour')
REQUIRED_COLUMNS = ('id',) + LABEL_COLUMNS
SPLIT_COLUMNS = ('image_path',) + LABEL_COLUMNS  # of train.csv and val.csv
# How a catalog writes an unknown label, upper-cased: the real one's NA, and a spreadsheet's or
# pandas' na, N/A or NaN, which were learned as colours of their own.
MISSING_VALUES = {'', 'NA', 'N/A', 'NAN'}
SEASONS = {'summer', 'fall', 'winter', 'spring', 'autumn'}  # the catalog's first four, and fall's other name
TOO_MANY_FIELDS = 'with too many fields'  # a reason a row is skipped: told apart from a field left out
KAGGLE_URL = 'https://www.kaggle.com/datasets/paramaggarwal/fashion-product-images-small'

Style = namedtuple('Style', 'id gender articleType baseColour')
# Pillow warns of a picture over Image.MAX_IMAGE_PIXELS (89 megapixels) as a possible decompression
# bomb, in two lines naming its own source file, and opens it; one over twice that (179) it refuses,
# which UNREADABLE counts. A phone's 100-megapixel photo is opened, as Pillow does, without the two
# lines. Set once for the process, not around each Image.open: catch_warnings is not thread-safe,
# and predict.py decodes in threads.
warnings.filterwarnings('ignore', category=Image.DecompressionBombWarning)
# A photo whose EXIF block is damaged (cut short by an editor or an upload, a tag's length or
# place wrong) is read all the same, without the tags it cannot read, but Pillow says so in two
# lines naming its own source file, once per picture, in the table or among the bars: "Corrupt
# EXIF data", "Truncated File Read", "Tag data larger than file". Its UserWarnings are all of
# this kind (a file Pillow cannot read raises, and is counted); set once, for the same reason.
warnings.filterwarnings('ignore', category=UserWarning, module=r'PIL\.')
# The formats a picture is read in: every one Pillow reads, but EPS, which it reads by running
# Ghostscript on the file, a PostScript program; a picture from elsewhere (predict.py's) is not
# to be run as one.
Image.init()
PICTURE_FORMATS = tuple(sorted(set(Image.OPEN) - {'EPS'}))
# A damaged file can make Pillow raise any of these, depending on the format and where the damage
# is (UnidentifiedImageError is an OSError); one bad file must never stop a run. Those of the
# second line came from fuzzing: a TIFF tag of the wrong type (TypeError), DDS and BLP formats
# Pillow does not implement, a damaged AVIF (RuntimeError; ZeroDivisionError from a timescale of 0).
UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, Image.DecompressionBombError,
              TypeError, NotImplementedError, RuntimeError, ZeroDivisionError)
# The csv module refuses a field over 128 KiB: one long product name stopped the whole styles.csv,
# named as a quote left open. Lifted once for the process, for every CSV the project reads (and
# the same for each digest of a split); a quote left open is found by the lines it runs over.
csv.field_size_limit(2**31 - 1)  # the most a C long holds everywhere


# The byte-order marks of UTF-32 and UTF-16, in that order: UTF-32's little-endian one begins
# with UTF-16's (read as UTF-16, each character was followed by a NUL).
WIDE_BOMS = {codecs.BOM_UTF32_LE: 'UTF-32', codecs.BOM_UTF32_BE: 'UTF-32', codecs.BOM_UTF16_LE: 'UTF-16',
             codecs.BOM_UTF16_BE: 'UTF-16'}


def decode_text(path, data, notes=True):
    # The catalog is UTF-8, but a copy saved by a spreadsheet may carry a BOM, be UTF-16 or UTF-32,
    # or be Windows-1252; labels are plain ASCII in all of them, so every one of these reads correctly.
    for bom, encoding in WIDE_BOMS.items():
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as error:  # an odd number of bytes, a lone surrogate
                raise UserError(f'{path}: starts as {encoding} but byte {error.start} is not '
                                f'({error.reason}); save it again as UTF-8') from error
    # A BOM says UTF-8, but a spreadsheet may still have appended a Windows-1252 row.
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    data = data[bom:]
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as error:
        text, other = by_line(data)
        if notes:  # the byte counted from the file's start, as an editor shows it
            print(f'note: {path} is not UTF-8 (byte {bom + error.start}); {counted(other, "line")} '
                  'read as Windows-1252, the others as UTF-8')
        return text


def by_line(data):
    """data decoded line by line: as UTF-8 where a line is, else as Windows-1252 (a row typed in by
    a spreadsheet into a UTF-8 file). The whole file read as Windows-1252 turned its UTF-8 labels
    into others (Café into CafÃ©), and their rows were skipped as of labels not in the vocabulary.
    Returns the text and how many lines were read as Windows-1252. Both encodings write \\n and \\r
    as those bytes alone, so the lines are those of the text, whatever ends them."""
    lines, other = data.splitlines(keepends=True), 0
    for i, line in enumerate(lines):
        try:
            lines[i] = line.decode('utf-8')
        except UnicodeDecodeError:
            lines[i], other = line.decode('cp1252', errors='replace'), other + 1
    return ''.join(lines), other


def without_stray_returns(text, path, notes=True):
    """In a file whose lines end in \\n or \\r\\n, a \\r alone is no line end but a stray byte in a field
    (text pasted from elsewhere): read as a space. The csv module ended the row there, and counted
    what followed as a row of its own, with too few fields. But where \\r alone ends lines (an old
    Mac's file, with a row added since in \\n, say, or a cell of two lines), all are line ends, as
    the csv module reads them: read as spaces, its 300 rows were one, "a header but no rows". Told
    by which reading gives more rows of the header's width: counting \\r against \\n cut a cell
    pasted with more \\r than a short file has lines into rows, and the header's own end missed rows
    ending in \\r under a header ending in \\n, and a \\r inside the header."""
    if '\n' not in text or not re.search(r'\r(?!\n)', text):  # one kind of line end: nothing to tell
        return text
    spaced, stray = re.subn(r'\r(?!\n)', ' ', text)
    if rows_of_header_width(text) > rows_of_header_width(spaced):
        return text
    if notes:
        print(f'note: {path}: {counted(stray, "carriage return")} inside its lines, read as spaces')
    return spaced


def names_the_comma(row):
    """Whether a CSV's first row is the line `sep=,` a spreadsheet (Excel) may start it with, to
    name its separator: the comma, as read."""
    return [field.strip() for field in row] == ['sep=', '']


def rows_of_header_width(text):
    """How many rows of the CSV text have about as many fields as its header, its first row not
    blank (as read_csv_rows finds it): at least as many as it names (its trailing empty names, a
    spreadsheet's, aside; a row's last columns may be empty), and up to 2 more up to the last one
    filled (a name with a comma, which fit_fields glues back; a spreadsheet's trailing commas
    aside). A reading that cuts rows at a stray \\r leaves shorter ones, one that glues rows ending
    in \\r together, far longer ones. Those read before a fault of the file's, where it has one."""
    width, fitting = None, 0
    try:
        for row in csv.reader(io.StringIO(nul_safe(text), newline='')):
            if is_blank(row) or (width is None and names_the_comma(row)):
                continue
            filled = max(i for i, field in enumerate(row) if field.strip()) + 1
            if width is None:
                width = filled
            else:
                fitting += len(row) >= width and filled <= width + 2
    except csv.Error:  # a field over the csv module's limit, say: read_csv_rows names it
        pass
    return fitting


# A NUL byte in a row (a product's name, a path) should cost that row at most, on any Python: the
# csv module of 3.11 reads it as any other character, that of 3.10 refuses the whole file ("line
# contains NUL"). Read as this stand-in, a noncharacter of Unicode that no text holds, and put
# back in the fields, it is read alike on both.
NUL_STAND_IN = '\ufdd0'


def nul_safe(text):
    """text for the csv module: its NUL bytes as NUL_STAND_IN."""
    return text.replace('\0', NUL_STAND_IN)


def with_nul_bytes(rows, text):
    """The csv module's rows of nul_safe(text), with their NUL bytes back where text has any
    (else the rows themselves: a copy of each would cost a 32,000-row split 18 ms at each start)."""
    if '\0' not in text:
        return rows
    return ([field.replace(NUL_STAND_IN, '\0') for field in row] for row in rows)


def is_blank(row):
    return not any(field.strip() for field in row)


def rows_of_one_line(reader, path, what, text, required):
    """The reader's rows (of text), or a UserError naming the line where a row runs on over several
    lines, or on to the end of the file.

    The catalog and the splits have one row a line (split_data.py refuses a folder name with a
    line break), but for a cell of several lines a spreadsheet writes quoted (a product's name
    typed in two, or a label: its row is skipped by whoever reads it, as the catalog's rows with
    NA). A quoted field that goes past the end of its line otherwise means a quote left open: left
    alone, it swallows the rows after it into one field, silently."""
    end, header = reader.line_num, None
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if end > start and not closed_cells_of_lines(row, header, required):
                raise UserError(f'{path}: line {start}: a quoted field runs on to line {end}; a '
                                f'quote left open? ({what})')
            if header is None and not is_blank(row) and not names_the_comma(row):
                header = [name.strip() for name in row]
            yield row
    except csv.Error as error:
        raise UserError(f'{path}: line {end + 1}: {error}; a quote left open? ({what})') from error
    if quote_left_open_at_end(text):  # on the last line: the csv module reads it to the end without a word
        raise UserError(f'{path}: line {end}: a quoted field runs on to the end of the file; a quote left '
                        f'open? ({what})')


def closed_cells_of_lines(row, header, required):
    """Whether row runs over several lines by quoted cells of several, not by a quote left open:
    the row has all its fields, and none of those cells holds as many commas as a row has (a quote
    left open takes in a row's worth at least: the rest of its own line and the start of the one
    where a quote closes it, or whole rows between). A cell of a column the project reads (a label
    typed in two lines), only in a row of the header's width, where its column is sure."""
    if header is None or len(row) < len(header):  # a quote left open on the last line ends the file
        return False
    broken = cells_of_lines(row)
    if len(row) > len(header) and any(i < len(header) and header[i] in required for i in broken):
        return False
    return all(i < len(header) and row[i].count(',') < len(header) - 1 for i in broken)


def cells_of_lines(row):
    return [i for i, field in enumerate(row) if has_line_break(field)]


def has_line_break(text):
    return '\n' in text or '\r' in text


def quote_left_open_at_end(text):
    text = text.rstrip()
    last = text[max(text.rfind('\n'), text.rfind('\r')) + 1:]  # the last line: \n, \r\n or \r ends the one before
    try:
        for _ in csv.reader([last], strict=True):  # strict: the end of the data inside quotes is an error
            pass
    except csv.Error as error:
        return 'unexpected end of data' in str(error)
    return False


# How much of a file is looked at to say what it is (64 KiB): a split or a log of hundreds of MB
# given for another file is named from its beginning, not decoded whole.
BEGINNING = 65536


def beginning_of(path):
    """How a message says what a file of the user's that would be replaced begins with: its first
    line where it is text, else what it is (a picture, an archive), not its bytes as characters."""
    with open(path, 'rb') as f:
        data = f.read(BEGINNING)
    line = first_line_of_text(data)
    if line is not None:
        return f'its first line is {line!r}'
    if not data.strip():
        return 'it is blank' + (' in its first 64 KiB' if len(data) == BEGINNING else '')
    kind = picture_format(data)
    if kind is not None:
        return f'it is a {kind} picture'
    return 'it is a zip archive (a PyTorch checkpoint?)' if zip_archive(data) else 'it is not text'


# How torch.load tells its archive from a pickle: a zip's first record. zipfile finds an archive
# by its end, which may follow a pickle.
ZIP_START = b'PK\x03\x04'


def zip_archive(data):
    """Whether data begins as a zip archive (a PyTorch checkpoint's): also one cut short to its
    first two bytes, 'PK', not a text that begins with them ('PKG,notes')."""
    return len(data) >= 2 and ZIP_START.startswith(data[:4])


def first_line_of_text(data):
    """The first line of data that holds a letter or a digit, where data begins as text (its first
    4 KiB), at most 80 characters of it; None for bytes of any other kind."""
    text = text_of(data[:4096])
    if text is None:
        return None
    lines = text.strip().splitlines()
    line = next((line.strip() for line in lines if any(c.isalnum() for c in line)), lines[0])  # JSON's '{' says little
    return line if len(line) <= 80 else line[:77] + '...'


def text_of(data):
    """data decoded, where it is printable text, in UTF-8, or UTF-16 or UTF-32 by a byte-order mark;
    None for bytes of any other kind. A character cut at the end (of a file's first bytes) waits."""
    wide = next((name for bom, name in WIDE_BOMS.items() if data.startswith(bom)), None)  # a spreadsheet's UTF-16
    if not data.strip() or (b'\0' in data and not wide) or zip_archive(data):
        return None
    try:
        text = codecs.getincrementaldecoder(wide or 'utf-8-sig')().decode(data)
    except UnicodeDecodeError:
        return None
    if not text.strip() or not all(c.isprintable() or c.isspace() for c in text):
        return None
    return text


def picture_format(data):
    """JPEG, PNG, ... where data is a picture PIL reads, else None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # a huge picture's DecompressionBombWarning
            with Image.open(io.BytesIO(data)) as picture:
                return picture.format
    except (OSError, ValueError, Image.DecompressionBombError):  # no picture PIL knows
        return None


def not_a_csv_file(path):
    """Why path, which is not a regular file, cannot be read as a CSV file, in words for a message."""
    if os.path.isdir(path):
        return 'a folder, not a CSV file'
    if os.path.exists(path):  # /dev/null, a pipe: no file a checkpoint can name
        return 'not a regular file'
    return reach_problem(path)


def read_csv_rows(path, required, what, notes=True):
    """Header and rows of a CSV, or a UserError that names the file and what is wrong with it;
    notes=False keeps its note of an encoding to itself (for a file read twice)."""
    if not os.path.isfile(path):
        inner = os.path.join(path, 'styles.csv')  # the catalog's folder for its styles.csv, an easy slip
        hint = f'; {inner}, maybe' if 'styles.csv' in what and os.path.isfile(inner) else ''
        raise UserError(f'{path}: {not_a_csv_file(path)} ({what}){hint}')
    with open(path, 'rb') as f:
        data = f.read()
    return csv_rows(path, data, required, what, notes)


def csv_rows(path, data, required, what, notes=True):
    """read_csv_rows of the bytes data, read from path."""
    first_line = re.match(rb'[^\r\n]*', data.lstrip(b'\r\n')).group()  # \r alone ends a line too
    if b'\0' in first_line and not data.startswith(tuple(WIDE_BOMS)):
        # No header has NUL bytes: said before the file is read as Windows-1252, with a note
        raise UserError(f'{path}: not a CSV file: its first line holds NUL bytes, which no text has (a picture, '
                        f'an archive, or UTF-16 without its byte-order mark?) ({what})')
    if data.startswith(b'\x89PNG\r\n\x1a\n'):  # no NUL in its first "line": read as text, it had notes of its line ends
        raise UserError(f'{path}: not a CSV file but a PNG picture ({what})')
    text = without_stray_returns(decode_text(path, data, notes), path, notes)
    # newline='' lets the csv module handle \r\n (Windows) and \n alike.
    safe = nul_safe(text)
    reader = csv.reader(io.StringIO(safe, newline=''))
    rows = with_nul_bytes(rows_of_one_line(reader, path, what, safe, required), text)
    header = next((row for row in rows if not is_blank(row)), None)  # blank lines above it too
    if header is not None and names_the_comma(header):
        header = next((row for row in rows if not is_blank(row)), None)
    if header is None:  # nothing, or only a byte-order mark and blanks
        raise UserError(f'{path}: the file is empty ({what})')
    header = [name.strip() for name in header]
    while len(header) > 1 and not header[-1]:  # a spreadsheet's trailing comma, on the header or on every line
        header.pop()
    missing = [name for name in required if name not in header]
    if missing:
        line = ','.join(header)  # a file that is no CSV has a header of thousands of characters
        raise UserError(f'{path}: missing column(s) {", ".join(missing)}; the header is '
                        f'{line if len(line) <= 120 else line[:117] + "..."!r} but needs {",".join(required)}'
                        + columns_hint(header, missing))
    twice = [name for name in required if header.count(name) > 1]
    if twice:  # which of them holds the labels?
        places = ' and '.join(str(i + 1) for i, name in enumerate(header) if name == twice[0])
        raise UserError(f'{path}: the column {twice[0]} is named more than once in the header (columns {places}); '
                        'give each column its own name')
    rows = [without_empty_end(row, header) for row in rows if not is_blank(row)]
    if not rows:
        raise UserError(f'{path}: has a header but no rows ({what})')
    return header, rows


def columns_hint(header, missing):
    """What is wrong with a header that lacks the `missing` columns, where it can be told: another
    separator than the comma (a spreadsheet's in some languages, or its 'text' format), or the names
    in another case."""
    line = ','.join(header)
    if line.startswith('sep='):  # a spreadsheet's line naming its separator, another than the comma
        return f'; its first line, {line!r}, names the separator of its columns: save it with commas'
    for separator, name in ((';', 'semicolons'), ('\t', 'tabs')):
        # Each name without its quotes: a spreadsheet that quotes its text cells writes "id";"gender";...,
        # read with commas as 'id;"gender";...', and the hint was left out.
        renames = renames_in_case([part.strip().strip('"').strip() for part in line.split(separator)], missing)
        if renames == []:
            return f'; its columns are separated by {name}: save it with commas'
        if renames:  # ID;Gender;...: both said at once, not the case once the file is saved with commas
            return (f'; its columns are separated by {name}, and the names are read in their case: save it with '
                    'commas, and rename ' + ', '.join(renames))
    renames = renames_in_case(header, missing)
    return '; the names are read in their case: rename ' + ', '.join(renames) if renames else ''


def renames_in_case(names, missing):
    """'Gender to gender' for each of the missing columns that names holds in another case only ([]
    where it holds them all as they are), or None where it holds one in no case at all."""
    by_case = {name.lower(): name for name in names}
    if not all(column.lower() in by_case for column in missing):
        return None
    return [f'{by_case[column.lower()]} to {column}' for column in missing if column not in names]


def without_empty_end(row, header):
    # Empty fields past the header's last column are a spreadsheet's trailing commas, not data;
    # unless the year has moved out of its column: then a comma in a label moved the labels after
    # it, and one of the empty fields is the product name's, left empty.
    width = len(header)
    if len(row) > width and is_blank(row[width:]) and year_in_place(row[:width], header):
        return row[:width]
    return row


def fit_fields(row, header):
    # 22 rows of the real styles.csv have an unquoted comma in productDisplayName, the last
    # column, giving 11 or 12 fields. Their labels are fine: glue the overflow back together.
    if len(row) <= len(header) or header[-1] != 'productDisplayName':
        return row
    glued = row[:len(header) - 1] + [','.join(row[len(header) - 1:])]
    return glued if year_in_place(glued, header) else row


def year_in_place(row, header):
    """Whether a glued row's year column, after the labels, holds a year: where the comma was in a
    column before it ('Bags, Backpacks' as an article type), every label after that comma moved
    one column on ('Backpacks' as the colour), and the year holds something else."""
    if 'year' not in header or header.index('year') < max(header.index(name) for name in LABEL_COLUMNS):
        return True  # nothing to tell by: the product name, with far more commas, is taken for it
    at = header.index('year')
    year = row[at].strip()
    if not is_missing(year):
        return is_year(year)
    # No year to tell by: but where the comma was in a label, the column after holds the year
    # (and the year column the season, empty or NA here), or, where the year was missing too, the
    # season's column a label's words: the colour, or its second half (`Navy, Blue`).
    if 'season' in header and header.index('season') > max(header.index(name) for name in LABEL_COLUMNS):
        season = row[header.index('season')].strip()
        if not is_missing(season) and season.lower() not in SEASONS:
            return False
    return at + 1 >= len(header) - 1 or not is_year(row[at + 1].strip())


def is_missing(value):
    return value.upper() in MISSING_VALUES


def as_id(text):
    """text as an id where it is one: ASCII digits, or those and '.0', as pandas writes a column of
    ids read as numbers (15970.0, whose picture is 15970.jpg; all were skipped as no number). Else None."""
    text = text.removesuffix('.0')
    return text if is_id(text) else None


def is_id(text):
    """Whether text is an id: ASCII digits only (isdigit alone takes '²' and the Arabic '٣',
    another id than '3'). The id names the image file: anything else could point outside images/."""
    return text.isascii() and text.isdigit()


def is_year(text):
    return re.fullmatch(r'\d{4}(\.0)?', text) is not None  # 2012.0: a spreadsheet's


def read_styles(path):
    """The usable rows of styles.csv as Style tuples, and a Counter of skipped rows by reason."""
    header, rows = read_csv_rows(path, REQUIRED_COLUMNS, 'the catalog labels, styles.csv')
    position = {name: header.index(name) for name in REQUIRED_COLUMNS}
    styles, skipped, seen = [], Counter(), set()
    for row in rows:
        row = fit_fields(row, header)
        problem = TOO_MANY_FIELDS if len(row) > len(header) else short_row_problem(row, header, position)
        if problem:
            skipped[problem] += 1
            continue
        values = {name: row[i].strip() for name, i in position.items()}
        empty = [name for name in LABEL_COLUMNS if is_missing(values[name])]
        values['id'] = as_id(values['id'])
        broken = [name for name in LABEL_COLUMNS if has_line_break(values[name])]
        if empty:
            skipped[f'{empty[0]} is empty or NA'] += 1
        elif broken:  # 'Navy\nBlue', typed in a spreadsheet's cell: a class of its own, otherwise
            skipped[f'{broken[0]} runs over several lines'] += 1
        elif values['id'] is None:
            skipped['id is not a number'] += 1
        elif values['id'] in seen:
            skipped['duplicate id'] += 1
        else:
            seen.add(values['id'])
            styles.append(Style(**values))
    return styles, skipped


def short_row_problem(row, header, position):
    """Why a row of fewer fields than the header is skipped, or None where it is read (as one of
    the header's width is). Old Excel leaves a row's empty cells at its end out (season, year,
    usage, productDisplayName), and the tutorial's csv.DictReader read the row all the same: it is
    read where it holds every column the split needs (position: their places), and the fields it
    has are in their columns as far as they tell (a year in the year's, or a season or nothing in
    the season's): a field left out before the labels moves them, and 'Summer' became a colour."""
    lacking = [name for name in position if position[name] >= len(row)]
    if lacking:
        return f'with too few fields for {min(lacking, key=position.get)}'
    if len(row) < len(header) and not year_in_place(row + [''] * (len(header) - len(row)), header):
        return 'with too few fields'
    return None


def labels_apart_in_case(styles):
    """The labels of a column that differ only in case or spacing ('Men' and 'men'), which are learned
    as classes of their own, each with its count: ["gender 'Men' (5) and 'men' (1)", ...]."""
    found = []
    for name in LABEL_COLUMNS:
        spellings = defaultdict(Counter)
        for style in styles:
            label = getattr(style, name)
            spellings[' '.join(label.split()).casefold()][label] += 1
        found += [f'{name} ' + ' and '.join(f'{label!r} ({count:,})' for label, count in counts.most_common())
                  for counts in spellings.values() if len(counts) > 1]
    return found


EXIF_ORIENTATION = 0x0112  # the tag's number (PIL.ExifTags.Base needs Pillow 9.2 or later)
# What turns a picture upright for each EXIF orientation but 1 (upright already), as in Pillow's
# ImageOps.exif_transpose. That also writes the EXIF block back without the orientation, which
# raised on a tag damaged in a way that reading it had let pass (a text where a number goes).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def turn_upright(img):
    """Phone photos store their rotation in EXIF: the picture turned as it is shown (a new one),
    or itself where it is upright already."""
    turn = UPRIGHT.get(img.getexif().get(EXIF_ORIENTATION, 1))
    return img if turn is None else img.transpose(turn)


def shown_size(img):
    """The size of the picture as dataset.load_image loads it: turned upright by its EXIF
    orientation, which for 5 to 8 is a quarter turn, so its width and height swap."""
    turned = img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    return img.size[::-1] if turned else img.size


NO_PERMISSION = 'no permission to read it'
# A picture that is a link to a file not there: most often a git-annex or DVC store whose contents
# were not fetched, where `ls` shows every name. 'no image file' would send the user looking for
# pictures that are plainly there.
LINK_TO_NOTHING, LINK_LOOP = 'a link that leads to no file', 'a link in a loop of links'
NO_IMAGE_FILE = 'no image file'
# How such pictures are had (split_data.py's advice and a split's reader's alike)
HOW_TO_FETCH = '(git annex get, dvc pull), or copy in the pictures themselves'
# Pillow refuses to decode a picture of over twice Image.MAX_IMAGE_PIXELS (a decompression bomb's
# guard): said as such, not as damaged, since the file is sound.
TOO_LARGE = f'too large (over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels)'


@contextmanager
def open_picture(path):
    """The picture at path, opened in any of PICTURE_FORMATS; its file closed with the block.
    Opened here rather than by Pillow, which leaves the file it opened to the garbage collector
    when its first read fails (a disk's read error: a ResourceWarning under python -X dev)."""
    with open(path, 'rb') as file, Image.open(file, formats=PICTURE_FORMATS) as img:
        yield img


def not_an_image_file(path):
    """Why what stands at path cannot be a picture (a folder, a pipe, a device), or None for a
    regular file; os.stat's errors pass on. Looked at before opening it: opened, a pipe would wait for good."""
    return not_a_file(os.stat(path).st_mode, 'an image file')


def image_problem(path, size=IMAGE_SIZE, any_size=False, any_mode=False):
    """Why an image cannot be used as it is, or None when it can."""
    try:
        problem = not_an_image_file(path)
        if problem:
            return problem
        with open_picture(path) as img:
            img.load()  # decode it all: a truncated file only fails here
            mode, img_size = img.mode, shown_size(img)
    except PermissionError:  # the file's or its folder's (images/ itself, say)
        return NO_PERMISSION
    except FileNotFoundError:
        return LINK_TO_NOTHING if os.path.islink(path) else NO_IMAGE_FILE
    except Image.DecompressionBombError:
        return TOO_LARGE
    except UNREADABLE as error:
        number = getattr(error, 'errno', None)
        if number == errno.ELOOP:  # no picture at all, rather than a damaged one
            return LINK_LOOP
        return NO_IMAGE_FILE if number == errno.ENAMETOOLONG else 'unreadable image'  # an id of 300 digits
    if not any_size and img_size != tuple(size):
        return f'not {size[0]}x{size[1]}'
    if not any_mode and mode != 'RGB':
        return 'not RGB'
    return None


def resolved_folder(path):
    """path with the links among its folders resolved, and its own name kept: where the system
    finds it, under the name it was given (a picture may itself be a link into a store of
    nameless files, as git-annex and DVC keep them)."""
    # realpath, not abspath first: abspath would take 'link/..' by name, to the link's own folder.
    return os.path.join(os.path.realpath(os.path.dirname(path) or os.curdir), os.path.basename(path))


def format_counts(counts):
    return ', '.join(f'{count:,} {reason}' for reason, count in counts.most_common()) or 'none'


def describe_download(folder):
    return (f'Download the "Fashion Product Images (Small)" dataset from {KAGGLE_URL} and unpack '
            f'it so that {os.path.join(folder, "styles.csv")} and {os.path.join(folder, "images")}/ '
            f'exist, or run `{command("demo.py")}` to try the whole pipeline on a built-in sample catalog.')
