# A built-in sample catalog in the Kaggle "Fashion Product Images (Small)" layout (styles.csv and
# images/<id>.jpg), so the demo and the tests run without the real dataset. The pictures are drawn
# product silhouettes whose article type, colour and gender can all be told from the pixels.
# With quirks=True it also writes a few rows with the real catalog's problems, listed in the
# returned manifest so tests can check exact counts.
if __name__ == '__main__':  # first: a Ctrl-C during the imports below (seconds) is one line too
    import cli
    cli.quiet_ctrl_c_while_starting()

import argparse
import contextlib
import csv
import hashlib
import io
import json
import os
import time
from collections import namedtuple

import numpy as np
from PIL import Image, ImageDraw

from atomic import (atomic_open, check_no_folder_in_the_way, check_writable_folder, folder_locked, json_object,
                    remove_left_temporaries)
from catalog import is_id, nul_safe
from cli import (UserError, add_debug_flag, command, counted, first_few, if_stopped_say, run_cli,
                 seed_number, what_is_there, whole_number)

HEADER = ['id', 'gender', 'masterCategory', 'subCategory', 'articleType', 'baseColour', 'season',
          'year', 'usage', 'productDisplayName']
WIDTH, HEIGHT = 60, 80
SS = 4  # drawn at 4x and reduced: smooth edges at 60x80
Y_FROM_CENTRE, X_FROM_CENTRE = np.mgrid[:HEIGHT, :WIDTH] - np.array([[[HEIGHT]], [[WIDTH]]]) / 2
FIRST_ID = 10000

# RGB values far enough apart to survive +-30% brightness/contrast/saturation jitter.
COLOURS = {'Black': (25, 25, 25), 'White': (242, 242, 238), 'Grey': (128, 128, 128),
           'Navy Blue': (25, 35, 100), 'Blue': (40, 110, 225), 'Red': (205, 30, 35),
           'Green': (40, 145, 60), 'Pink': (245, 135, 180), 'Yellow': (245, 210, 40),
           'Brown': (115, 68, 32)}
BRANDS = ['Roadster', 'Puma', 'Nike', 'Adidas', 'Wrangler', 'Fastrack', 'Titan', 'Baggit',
          'Peter England', 'United Colors of Benetton']
SEASONS = ['Summer', 'Winter', 'Spring', 'Fall']
USAGES = ['Casual', 'Formal', 'Sports']
SOLE, FACE, METAL = (236, 236, 230), (248, 248, 245), (205, 170, 70)

# Every quirk row is extra, on top of the n_images normal rows, and has exactly one problem.
# malformed: an unquoted comma in productDisplayName (11 fields twice, then 12), labels fine;
# na_colour: baseColour is NA; empty_label: gender empty, then articleType empty; na_other:
# season, year and usage empty or NA, labels fine; missing_image: no image file; grayscale:
# a mode L picture; odd_size: 53x80 and 60x60 RGB pictures.
QUIRK_COUNTS = {'malformed': 3, 'na_colour': 2, 'empty_label': 2, 'na_other': 3,
                'missing_image': 3, 'grayscale': 2, 'odd_size': 2}
ODD_SIZES = [(53, 80), (60, 60)]  # (width, height)
NA_OTHER = [('', '', ''), ('NA', '', 'NA'), ('', '', 'NA')]  # season, year, usage


class Pen:
    # Draws in 60x80 catalog coordinates, in the item's colour with a darker outline.
    def __init__(self, image, colour):
        self.draw = ImageDraw.Draw(image)
        self.fill = colour
        light = sum(colour) > 150
        self.dark = tuple(int(c * 0.5) for c in colour) if light else tuple(c + 55 for c in colour)
        self.edge = tuple(int(c * 0.45) for c in colour) if light else self.dark

    def poly(self, points, fill=None):
        self.draw.polygon([(x * SS, y * SS) for x, y in points], fill=fill or self.fill,
                          outline=self.edge, width=SS)

    def oval(self, box, fill=None):
        self.draw.ellipse([v * SS for v in box], fill=fill or self.fill, outline=self.edge,
                          width=SS)

    def rect(self, box, fill=None, radius=0):
        self.draw.rounded_rectangle([v * SS for v in box], radius * SS, fill=fill or self.fill,
                                    outline=self.edge, width=SS)

    def chord(self, box, start, end, fill=None):
        self.draw.chord([v * SS for v in box], start, end, fill=fill or self.fill,
                        outline=self.edge, width=SS)

    def line(self, points, width=1, fill=None):
        self.draw.line([(x * SS, y * SS) for x, y in points], fill=fill or self.dark,
                       width=int(width * SS))

    def arc(self, box, start, end, width):
        self.draw.arc([v * SS for v in box], start, end, fill=self.fill, width=width * SS)


def sym(left):
    # A left half traced from the top centre down, completed by its mirror image.
    return left + [(WIDTH - x, y) for x, y in reversed(left)]


def pair(pen, left, fill=None):
    # A part that comes in two, such as sleeves or lenses, drawn on both sides.
    pen.poly(left, fill)
    pen.poly([(WIDTH - x, y) for x, y in left], fill)


# Gender shows in the cut: men's tops are boxy with broad shoulders, women's fitted at the
# waist; men's trousers straight, women's tapered; men's watches and glasses bigger and squarer.
def draw_tshirt(pen, women):
    if women:
        pen.poly(sym([(23, 11), (16, 13), (8, 22), (13, 28), (17, 25), (20, 43), (15, 70)]))
        pen.poly([(23, 11), (30, 23), (37, 11)], fill=pen.dark)
    else:
        pen.poly(sym([(21, 10), (12, 13), (2, 27), (9, 34), (14, 30), (14, 72)]))
        pen.chord((21, 4, 39, 16), 0, 180, fill=pen.dark)


def draw_shirt(pen, women):
    if women:
        pair(pen, [(18, 13), (11, 18), (6, 50), (13, 52), (18, 28)])
        pen.poly(sym([(18, 12), (21, 40), (16, 72)]))
    else:
        pair(pen, [(14, 13), (7, 18), (3, 66), (10, 67), (14, 30)])
        pen.poly(sym([(14, 12), (14, 74)]))
        pen.rect((35, 24, 42, 33))
    pen.line([(30, 16), (30, 72)])
    for y in range(25, 70, 10):
        pen.oval((29, y - 1, 31, y + 1), fill=pen.dark)
    pair(pen, [(22, 8), (30, 16), (24, 21), (19, 12)])


def draw_top(pen, women):
    # A striped tank top: shorter than a dress, with no sleeves, unlike a T-shirt.
    pair(pen, [(19, 8), (22, 8), (22, 22), (19, 22)])
    pen.poly(sym([(30, 26), (18, 19), (16, 28), (19, 44), (15, 66)]))
    for y, half_width in ((36, 11.5), (46, 10.5), (56, 12)):
        pen.line([(30 - half_width, y), (30 + half_width, y)], width=2.5)


def draw_dress(pen, women):
    pair(pen, [(21, 2), (24, 2), (24, 14), (21, 14)])
    pen.poly(sym([(30, 17), (20, 11), (18, 20), (22, 34), (5, 77)]))
    pen.rect((21, 32, 39, 36), fill=pen.dark)


def draw_trousers(pen, women):
    if women:
        pen.poly(sym([(30, 8), (18, 8), (15, 26), (21, 77), (27, 77), (30, 30)]))
        pen.rect((18, 3, 42, 8))
    else:
        pen.poly(sym([(30, 9), (14, 9), (12, 77), (27, 77), (30, 26)]))
        pen.rect((14, 3, 46, 9))
    pen.line([(30, 9), (30, 22)])


def draw_shorts(pen, women):
    if women:
        pen.poly(sym([(30, 29), (17, 29), (12, 52), (28, 54), (30, 42)]))
        pen.rect((17, 23, 43, 29))
    else:
        pen.poly(sym([(30, 23), (12, 23), (9, 62), (28, 64), (30, 40)]))
        pen.rect((12, 16, 48, 23))
    pen.line([(30, 29), (30, 38)])


def draw_casual_shoes(pen, women):
    if women:
        # A low-cut pump on a block heel; the men's shoe is a laced sneaker on a thick sole.
        pen.poly([(9, 49), (16, 52), (15, 64), (9, 64)], fill=pen.dark)
        pen.poly([(5, 36), (16, 42), (30, 45), (40, 42), (50, 46), (58, 54), (54, 58), (36, 58),
                  (17, 53), (8, 50)])
        pen.line([(6, 37), (16, 42), (30, 45)], width=2)
    else:
        pen.rect((3, 52, 57, 61), fill=SOLE, radius=2)
        pen.poly([(4, 53), (5, 33), (20, 31), (27, 26), (33, 27), (46, 39), (56, 45), (57, 53)])
        pen.poly([(7, 34), (20, 33), (22, 37), (9, 38)], fill=pen.dark)
        for x, y in ((32, 31), (36, 34), (40, 37)):  # laces, across the sloping tongue
            pen.line([(x + 1.5, y - 2), (x - 1.5, y + 2)], width=1.2)


def draw_watch(pen, women):
    half, radius = (4, 9) if women else (7, 14)
    pen.rect((30 - half, 4, 30 + half, 76), radius=2)
    pen.rect((30 + radius, 38, 33 + radius, 42))
    pen.oval((30 - radius, 40 - radius, 30 + radius, 40 + radius))
    inner = radius - 3
    pen.oval((30 - inner, 40 - inner, 30 + inner, 40 + inner), fill=FACE)
    pen.line([(30, 40), (30, 40 - inner + 2)], width=1.2)
    pen.line([(30, 40), (30 + inner * 0.6, 40 + 1)], width=1.2)


def draw_handbag(pen, women):
    pen.arc((17, 12, 43, 52), 180, 360, width=4)
    pen.poly([(10, 32), (50, 32), (56, 72), (4, 72)])
    pen.poly([(10, 32), (50, 32), (48, 46), (30, 52), (12, 46)])
    pen.rect((27, 48, 33, 54), fill=METAL)


def draw_backpack(pen, women):
    pen.rect((7, 18, 13, 62), fill=pen.dark, radius=2)
    pen.rect((47, 18, 53, 62), fill=pen.dark, radius=2)
    pen.arc((24, 3, 36, 17), 180, 360, width=2)
    pen.rect((12, 9, 48, 75), radius=10)
    pen.rect((17, 44, 43, 70), radius=5)
    pen.line([(17, 22), (43, 22)])
    pen.line([(20, 50), (40, 50)])


def draw_cap(pen, women):
    pen.poly([(38, 46), (57, 48), (58, 53), (36, 52)], fill=pen.dark)
    pen.chord((6, 24, 50, 76), 180, 360)
    pen.rect((6, 47, 50, 53))
    pen.line([(28, 24), (20, 47)])
    pen.line([(28, 24), (37, 47)])
    pen.oval((25, 21, 31, 26))


def draw_sunglasses(pen, women):
    # The lenses are tinted with the frame's colour, so the colour shows on more of the picture.
    tint = tuple(int(c * 0.45 + 12) for c in pen.fill)
    pen.rect((27, 34, 33, 38))
    if women:
        for x in (4, 31):
            pen.oval((x, 28, x + 25, 53))
            pen.oval((x + 4, 32, x + 21, 49), fill=tint)
    else:
        pair(pen, [(6, 31), (29, 31), (27, 49), (9, 51)])
        pair(pen, [(9, 35), (26, 35), (24, 46), (11, 47)], fill=tint)


Article = namedtuple('Article', 'master sub genders draw')
ARTICLES = {
    'Tshirts': Article('Apparel', 'Topwear', ('Men', 'Women'), draw_tshirt),
    'Shirts': Article('Apparel', 'Topwear', ('Men', 'Women'), draw_shirt),
    'Tops': Article('Apparel', 'Topwear', ('Women',), draw_top),
    'Dresses': Article('Apparel', 'Dress', ('Women',), draw_dress),
    'Trousers': Article('Apparel', 'Bottomwear', ('Men', 'Women'), draw_trousers),
    'Shorts': Article('Apparel', 'Bottomwear', ('Men', 'Women'), draw_shorts),
    'Casual Shoes': Article('Footwear', 'Shoes', ('Men', 'Women'), draw_casual_shoes),
    'Watches': Article('Accessories', 'Watches', ('Men', 'Women'), draw_watch),
    'Handbags': Article('Accessories', 'Bags', ('Women',), draw_handbag),
    'Backpacks': Article('Accessories', 'Bags', ('Men',), draw_backpack),
    'Caps': Article('Accessories', 'Headwear', ('Men',), draw_cap),
    'Sunglasses': Article('Accessories', 'Eyewear', ('Men', 'Women'), draw_sunglasses),
}


def random_pose(rng):
    # Output pixel -> drawing pixel: a few degrees of rotation, +-10% size, a few pixels' shift.
    angle, scale = np.radians(rng.uniform(-6, 6)), rng.uniform(0.9, 1.1)
    shift_x, shift_y = rng.uniform(-3, 3, size=2) * 2
    cx, cy = WIDTH, HEIGHT  # the centre of the picture at twice its size
    a, b = np.cos(angle) / scale, np.sin(angle) / scale
    return (a, b, cx - a * (cx + shift_x) - b * (cy + shift_y),
            -b, a, cy + b * (cx + shift_x) - a * (cy + shift_y))


def shading(rng):
    # A soft light from one side, as on a photographed product.
    direction, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0.06, 0.16)
    along = (X_FROM_CENTRE * np.cos(direction) + Y_FROM_CENTRE * np.sin(direction)) / (HEIGHT / 2)
    return 1 + strength * along


def draw_item(article, gender, colour, rng):
    # No two items of one colour are quite alike: a little brighter or darker, a slight tint.
    factors = rng.uniform(0.92, 1.08) * rng.uniform(0.97, 1.03, 3)
    colour = tuple(int(min(c * f, 255)) for c, f in zip(colour, factors))
    layer = Image.new('RGBA', (WIDTH * SS, HEIGHT * SS), (0, 0, 0, 0))
    ARTICLES[article].draw(Pen(layer, colour), gender == 'Women')
    # Premultiplied alpha, so the resampled edges blend into white and not into black; the pose
    # is applied at twice the final size, where it costs a quarter of what it would at 4x.
    layer = layer.convert('RGBa').reduce(SS // 2)
    layer = layer.transform(layer.size, Image.Transform.AFFINE, random_pose(rng),
                            resample=Image.Resampling.BILINEAR).reduce(2)
    pixels = np.asarray(layer, dtype=np.float32)
    alpha = pixels[..., 3:] / 255
    item = pixels[..., :3] * shading(rng)[..., None] + rng.normal(0, 3, (HEIGHT, WIDTH, 3)) * alpha
    photo = item + 255 * (1 - alpha)  # the real catalog's white background
    return Image.fromarray(np.clip(photo, 0, 255).round().astype(np.uint8))


def plan_rows(n_images, quirks, rng):
    # Article types and colours are dealt out evenly, then shuffled: equal-sized classes.
    # A row's quirk is (kind, position among the rows of that kind), or (None, 0).
    kinds = [(None, 0)] * n_images
    if quirks:
        for kind, count in QUIRK_COUNTS.items():
            for position in range(count):
                kinds.insert(int(rng.integers(0, len(kinds) + 1)), (kind, position))
    total = len(kinds)
    articles = np.array(list(ARTICLES))[rng.permutation(np.arange(total) % len(ARTICLES))]
    colours = np.array(list(COLOURS))[rng.permutation(np.arange(total) % len(COLOURS))]
    ids = FIRST_ID + np.cumsum(rng.integers(1, 4, size=total)) - 1
    return [(int(ids[i]), str(rng.choice(ARTICLES[articles[i]].genders)), str(articles[i]),
             str(colours[i])) + kinds[i] for i in range(total)]


def csv_fields(id_, gender, article, colour, kind, position, rng):
    master, sub = ARTICLES[article].master, ARTICLES[article].sub
    brand, season = str(rng.choice(BRANDS)), str(rng.choice(SEASONS))
    year, usage = str(rng.integers(2011, 2019)), str(rng.choice(USAGES))
    name = f'{brand} {gender} {colour} {article}'
    # What the real styles.csv does wrong, one problem per row.
    if kind == 'malformed':
        # Written raw, unquoted: 11 fields for the first two rows, 12 for the third.
        name = (f'{brand} {gender}, {colour}, {article}' if position == 2
                else f'{brand} {gender} {colour}, {article}')
    elif kind == 'na_colour':
        colour, name = 'NA', f'{brand} {gender} {article}'
    elif kind == 'empty_label' and position == 0:
        gender, name = '', f'{brand} {colour} {article}'
    elif kind == 'empty_label':
        article, name = '', f'{brand} {gender} {colour}'
    elif kind == 'na_other':
        season, year, usage = NA_OTHER[position]
    return [str(id_), gender, master, sub, article, colour, season, year, usage, name]


def save_image(image, path, kind, position):
    if kind == 'missing_image':
        # A file left from an earlier, overwritten catalog would hide the missing image.
        if os.path.exists(path):
            os.remove(path)
        return False
    if kind == 'grayscale':
        image = image.convert('L')
    elif kind == 'odd_size':
        image = image.resize(ODD_SIZES[position], Image.Resampling.LANCZOS)
    try:
        image.save(path, quality=90)
    except OSError as error:  # a full disk: Pillow's encoder names no file, and run_cli could show only a traceback
        if error.filename is None:
            error.filename = path
        raise
    return True


# Left beside styles.csv: a catalog drawn here is never taken for the real, downloaded one (demo.py
# runs the tutorial's 50-epoch job on a folder that holds the real data).
MARK = 'sample_catalog.json'


MOST_IMAGES = 1_000_000  # 23 times the real catalog's pictures; a trillion ran out of memory
# split_data.py's default --val-fraction 0.2 keeps one of 3 pictures for validation, none of 2.
FEWEST_IMAGES = 3


def image_count(text):
    """--images: a whole number of pictures, from FEWEST_IMAGES to MOST_IMAGES. Fewer made a
    catalog, exit 0, that split_data.py then refused: too few to split (none to split, of 0)."""
    value = whole_number(text)  # -1 too is refused with the reason, not as below 0
    if value < FEWEST_IMAGES:
        raise argparse.ArgumentTypeError(f'{value}: a catalog needs at least {FEWEST_IMAGES} pictures, some to train '
                                         'on and one to validate with')
    if value > MOST_IMAGES:
        raise argparse.ArgumentTypeError(f'{value:,} is more than the {MOST_IMAGES:,} pictures a sample catalog may '
                                         'have (the real one has 44,072)')
    return value


def is_sample_catalog(root):
    return bool(own_mark(root))


def sample_catalog_size(root, mark=None):
    """How many pictures the sample catalog in root was drawn with; None where there is none, or
    its drawing was cut short (its styles.csv, if any, is then another's: an earlier catalog's,
    or a user's that --overwrite was to draw over). Marks of before 'finished' count as finished.
    mark: its own_mark, if read already."""
    mark = own_mark(root) if mark is None else mark
    return mark.get('n_images') if mark.get('finished', True) else None


def own_mark(root):
    """The mark of the sample catalog drawn in root, or {} where there is none: no mark, one that
    is not ours, or one left beside another styles.csv than the one it was written with (the real
    dataset unpacked over a sample: its pictures are the user's, never to be drawn over or removed)."""
    mark = json_object(os.path.join(root, MARK)) or {}
    if not mark:  # the real dataset's folder, say: its 4 MB styles.csv not read for nothing
        return mark
    found = styles_digest(root)
    if found is None:
        return mark
    if 'styles_sha256' not in mark:  # written before marks held it: its plan says what it wrote
        return mark if plan_in(mark) and planned_digest(mark) == found else {}
    if mark['styles_sha256'] == found:
        return mark
    if not mark.get('finished', True) and found == mark.get('ending_sha256'):
        return dict(mark, finished=True)  # stopped once its styles.csv was in place: drawn in full
    return {}


def planned_digest(mark):
    _, text = planned_catalog(mark['n_images'], mark['seed'], mark['quirks'])
    return text_digest(text)


def text_digest(text):
    """The SHA-256 of a styles.csv's text, as styles_digest reads it from the file."""
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def styles_digest(root):
    try:
        with open(os.path.join(root, 'styles.csv'), 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:  # none (a drawing cut short, before its styles.csv), or none to read
        return None


@contextlib.contextmanager
def said_unfinished(left):
    """A drawing that fails as it writes (a full disk) says, as a stop does, that it left the
    catalog unfinished (`left`): the error alone named the picture."""
    try:
        yield
    except UserError as error:  # a picture that could not be written, named
        raise UserError(f'{error}; {left}: the same command draws it again') from error
    except OSError as error:
        raise UserError(f'{error.filename or "the drawing"}: {error.strerror or error}; {left}: the same command '
                        'draws it again') from error


def write_mark(root, n_images, seed, quirks, finished, **drawing):
    """The mark, with the digest of the styles.csv there now: an earlier one's, being replaced, or
    the one just written. An unfinished drawing's says more (make_catalog): over_theirs, whether it
    was drawn (--overwrite) over files of the user's, some of which may be left; earlier_ids, an
    earlier drawing's pictures it still has to remove; ending_sha256, the digest of the styles.csv
    it is about to write."""
    with atomic_open(os.path.join(root, MARK), encoding='utf-8') as f:
        json.dump({'drawn by': 'sample_catalog.py', 'n_images': n_images, 'seed': seed, 'quirks': quirks,
                   'finished': finished, 'styles_sha256': styles_digest(root), **drawing}, f)


def holds_theirs(root, mark=None):
    """Whether root holds files of the user's: a styles.csv or pictures not drawn here, or what is
    left of them under a drawing over them that was cut short. mark: its own_mark, if read already."""
    mark = own_mark(root) if mark is None else mark
    if mark:
        return not mark.get('finished', True) and mark.get('over_theirs', True)
    return os.path.exists(os.path.join(root, 'styles.csv')) or bool(files_in(os.path.join(root, 'images')))


def files_in(folder):
    """The names in folder, but hidden ones (a desktop's .DS_Store, say, which no catalog holds); none
    where it is no folder."""
    return {name for name in os.listdir(folder) if not name.startswith('.')} if os.path.isdir(folder) else set()


def cut_short(root):
    """For a script that reads the catalog in root (split_data.py): where it is a drawing of ours
    that was cut short, what to say, else None. Its styles.csv, if any, is another's (an earlier
    sample's, or the user's that --overwrite drew over), beside pictures some of which were drawn:
    split, their rows would carry other pictures' labels."""
    mark = own_mark(root)
    if not mark or mark.get('finished', True):
        return None
    path, has_styles = os.path.join(root, MARK), os.path.exists(os.path.join(root, 'styles.csv'))
    again = command('sample_catalog.py', f'--output={root}', '--images', mark['n_images'], '--seed', mark['seed'],
                    *(['--quirks'] if mark['quirks'] else []), *(['--overwrite'] if has_styles else []))
    if holds_theirs(root, mark):
        return (f'a sample catalog\'s drawing over files there was cut short ({path} says unfinished); if it '
                f'is a dataset of yours, some of its pictures may be drawn ones: put them back and remove {path}; '
                f'or draw the sample again: {again}')
    return f'a sample catalog whose drawing was cut short ({path} says unfinished); draw it again: {again}'


# The manifest lists the ids of each quirk; n_rows counts the rows of styles.csv and n_images
# the image files written, so a test can work out exactly what a reader should keep.
def make_catalog(root, n_images=3000, seed=0, quirks=False, overwrite=False):
    if n_images < 0:
        raise ValueError(f'the number of images (--images) must be 0 or more, not {n_images}')
    images = os.path.join(root, 'images')
    for folder in (root, images):  # not a folder's "File exists" from os.makedirs
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise UserError(f'{folder}: {what_is_there(folder)}, where the sample catalog needs a folder; move it '
                            'away')
    os.makedirs(root, exist_ok=True)
    # Another drawing into root (a second demo.py in the same --work) waits for this one: it took
    # this one's unfinished drawing for one cut short, and removed its pictures as this one drew
    # them, which left a catalog marked finished with hundreds of pictures missing.
    with folder_locked(root, root, holder='another sample catalog being drawn into it'):
        return draw_catalog(root, n_images, seed, quirks, overwrite)


def draw_catalog(root, n_images, seed, quirks, overwrite):
    styles_path, images = os.path.join(root, 'styles.csv'), os.path.join(root, 'images')
    if os.path.isfile(styles_path) and not overwrite:  # a folder by that name is named below, as such
        raise ValueError(f'{styles_path} already exists')
    # Pictures without a styles.csv: the user's own, or a sample catalog of ours cut short (marked).
    mark = own_mark(root)  # read once (it hashes styles.csv): the drawing rewrites it only below
    if files_in(images) and not (overwrite or mark):
        raise ValueError(f'{images}/ holds files already (a dataset without its styles.csv?)')
    # What a drawing killed while writing them left: they would stay for good.
    remove_left_temporaries(root, r'styles\.csv|sample_catalog\.json', 'sample_catalog.py')
    earlier = drawn_ids(root, mark)  # an earlier drawing's: its pictures go, where not drawn again
    theirs = holds_theirs(root, mark)
    plan, text = planned_catalog(n_images, seed, quirks)
    # Before any picture is drawn: a folder by the name of a file to write stopped the drawing at
    # that file (styles.csv, the last), the catalog left unfinished.
    check_no_folder_in_the_way(root, r'styles\.csv|sample_catalog\.json', root)
    check_no_folder_in_the_way(images, {f'{id_}.jpg' for id_, *_ in plan}, root)
    # images/ of another user, read-only: found at its first picture, once the earlier catalog was gone
    check_writable_folder(images, root)
    going = sorted(earlier - {id_ for id_, *_ in plan})
    replaced, kept, maybe_lost = pictures_of_theirs(images, plan, mark, theirs)
    os.makedirs(os.path.join(root, 'images'), exist_ok=True)
    # Marked first, as unfinished: a drawing cut short is never taken for a catalog (an earlier
    # styles.csv beside new pictures), and its pictures, and the earlier ones still to go, are
    # known to be ours, not the user's.
    write_mark(root, n_images, seed, quirks, finished=False, over_theirs=theirs, earlier_ids=going,
               replaced=replaced + maybe_lost)  # all still to be said, should this one be cut short too
    # The pictures are written in place, not each through a temporary file and a sync to disk
    # (atomic.py): a stop says so, and how to pick up.
    left = f'the sample catalog in {root} is left unfinished, as its {MARK} says'
    with if_stopped_say(f'{left}, a picture maybe half-drawn: the same command draws it again'), \
            said_unfinished(left):
        # The earlier catalog goes now: its styles.csv would not name the new pictures. The user's
        # stays until the new one replaces it; of a drawing over theirs cut short, the pictures it
        # drew at names of none of theirs go, or they stayed among theirs, in no row.
        if earlier and not theirs and os.path.exists(styles_path):
            os.remove(styles_path)
        strays = remove_pictures(images, going)
        manifest = {'root': str(root), 'n_rows': 0, 'n_images': 0, 'over_theirs': theirs, 'replaced': replaced,
                    'kept': kept,  # the user's pictures replaced, by name, and the number left: main()'s note
                    'maybe_lost': maybe_lost, 'strays': strays if theirs else [],
                    'quirks': {kind: [] for kind in QUIRK_COUNTS}, 'articles': sorted(ARTICLES),
                    'colours': sorted(COLOURS),
                    'genders': sorted({g for article in ARTICLES.values() for g in article.genders})}
        for id_, gender, article, colour, kind, position in plan:
            image = draw_item(article, gender, COLOURS[colour], np.random.default_rng([seed, id_]))
            path = os.path.join(root, 'images', f'{id_}.jpg')
            manifest['n_images'] += save_image(image, path, kind, position)
            if kind:
                manifest['quirks'][kind].append(id_)
        manifest['n_rows'] = len(plan)
        # Stopped between the two, the drawing is known by its styles.csv to have ended.
        write_mark(root, n_images, seed, quirks, finished=False, over_theirs=theirs,
                   ending_sha256=text_digest(text))
        with atomic_open(styles_path, newline='', encoding='utf-8') as f:  # a catalog cut short has none
            f.write(text)
        write_mark(root, n_images, seed, quirks, finished=True)
        return manifest


def planned_catalog(n_images, seed, quirks):
    """The rows a drawing plans, and the text of the styles.csv it writes for them: both follow
    from these three alone, as each picture has a generator of its own (from the seed and its id)."""
    rng = np.random.default_rng(seed)
    plan = plan_rows(n_images, quirks, rng)
    rows = [(csv_fields(*row, rng), row[4]) for row in plan]  # row[4]: its quirk, if any
    return plan, styles_text(rows)


def pictures_of_theirs(images, plan, mark, theirs):
    """(replaced, kept, maybe_lost): the user's pictures that a drawing over their catalog replaces,
    those with the ids of drawn ones, the number of theirs it leaves, and those that a drawing over
    it cut short was to replace and this one does not draw (another command): that one may or may
    not have reached them; all named by main(). After a drawing cut short its pictures are not
    theirs, and those of theirs it was to replace (its mark names them) count where this one draws
    them too."""
    if not theirs or not os.path.isdir(images):
        return [], 0, []
    there, before = files_in(images), []
    if mark and not mark.get('finished', True):
        before = replaced_in(mark) or []  # none named (a mark of before they were, or edited): none said
        if plan_in(mark):
            cut_short = plan_rows(mark['n_images'], mark['quirks'], np.random.default_rng(mark['seed']))
            there -= {f'{id_}.jpg' for id_, *_ in cut_short} | {f'{id_}.jpg' for id_ in mark.get('earlier_ids', [])}
    drawn = [f'{id_}.jpg' for id_, *_ in plan]
    replaced = [name for name in drawn if name in there or name in before]
    return replaced, len(there - set(drawn)), sorted(set(before) - set(drawn))


def drawn_ids(root, mark):
    """The ids of the pictures drawn in root, and no one else's: those in the styles.csv of the
    finished sample catalog there, or the whole plan of a drawing cut short (its pictures are among
    them) with the earlier drawing's it had still to remove; over the user's catalog, less those at
    names of theirs (replaced_in), which it may not have reached. Empty where there is none. mark:
    root's own_mark."""
    styles_path = os.path.join(root, 'styles.csv')
    if not mark.get('finished', True):
        over_theirs, replaced = mark.get('over_theirs', True) is not False, replaced_in(mark)
        if not plan_in(mark) or over_theirs and replaced is None:
            return set()
        plan = plan_rows(mark['n_images'], mark['quirks'], np.random.default_rng(mark['seed']))
        theirs = {int(name[:-4]) for name in replaced or [] if is_id(name[:-4])}
        return {id_ for id_, *_ in plan} - theirs | set(mark.get('earlier_ids', []))
    if not mark or not os.path.isfile(styles_path):  # no catalog of ours: nothing drawn here
        return set()
    with open(styles_path, newline='', encoding='utf-8', errors='replace') as f:
        return {int(row[0]) for row in csv.reader(map(nul_safe, f)) if row and is_id(row[0])}


def replaced_in(mark):
    """The names of the user's pictures a drawing over them that was cut short was to replace, as
    its mark lists them; None where it lists none, or not as make_catalog writes them."""
    names = mark.get('replaced')
    return names if isinstance(names, list) and all(isinstance(name, str) for name in names) else None


def plan_in(mark):
    # What make_catalog writes, not a mark edited by hand: the plan it gives is the one drawn.
    n_images, seed, earlier = mark.get('n_images'), mark.get('seed'), mark.get('earlier_ids', [])
    return (type(n_images) is int and 0 <= n_images <= MOST_IMAGES and type(seed) is int
            and 0 <= seed < 2**32 and type(mark.get('quirks')) is bool
            and isinstance(earlier, list) and all(type(id_) is int for id_ in earlier))


def remove_pictures(images, ids):
    """Removes the pictures of those ids that are there; the names of those it removed."""
    removed = [f'{id_}.jpg' for id_ in ids if os.path.exists(os.path.join(images, f'{id_}.jpg'))]
    for name in removed:
        os.remove(os.path.join(images, name))
    return removed


def styles_text(rows):
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(HEADER)
    for fields, kind in rows:
        if kind == 'malformed':
            text.write(','.join(fields) + '\n')
        else:
            writer.writerow(fields)
    return text.getvalue()


def main():
    parser = argparse.ArgumentParser(
        description='Write a synthetic fashion catalog in the Kaggle layout.', allow_abbrev=False)
    parser.add_argument('--output', default='sample-catalog',
                        help='folder for styles.csv and images/ (default: sample-catalog)')
    # --images as in demo.py; --size, its first name, still works
    parser.add_argument('--images', '--size', dest='size', metavar='N', type=image_count, default=3000,
                        help='number of normal rows, each with a 60x80 RGB image (default: 3000)')
    parser.add_argument('--seed', type=seed_number, default=0,
                        help='random seed; the same seed and size give the same files (default: 0)')
    parser.add_argument('--quirks', action='store_true',
                        help="add a few rows with the real catalog's problems (default: off)")
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing catalog in --output (default: off)')
    add_debug_flag(parser)
    args = parser.parse_args()
    check_writable_folder(args.output, f'--output {args.output}')
    start, had_styles = time.perf_counter(), os.path.isfile(os.path.join(args.output, 'styles.csv'))
    try:
        manifest = make_catalog(args.output, args.size, args.seed, args.quirks, args.overwrite)
    except ValueError as error:  # the callers' own advice: here a flag, in demo.py another --work
        # whose: a drawing --overwrite left cut short over the user's catalog is marked, and theirs
        parser.error(f'{error}; ' + ('pass --overwrite to draw over it' if not holds_theirs(args.output) else
                                     'not a sample catalog (yours?): --overwrite would replace '
                                     + ('its styles.csv and ' if had_styles else '')
                                     + 'its pictures of the drawn ids for good, and keep no copy')
                     + ', or choose another --output')
    print(f"wrote {counted(manifest['n_rows'], 'row')} and {counted(manifest['n_images'], 'image')} to "
          f"{os.path.join(args.output, 'styles.csv')} and {os.path.join(args.output, 'images')}/ "
          f'in {time.perf_counter() - start:.1f} s')
    if args.overwrite and manifest['over_theirs']:  # asked for, but the user may not have known whose files
        # --quirks: those with the id of a row whose picture is missing on purpose are removed
        missing, lost = {f'{id_}.jpg' for id_ in manifest['quirks']['missing_image']}, manifest['maybe_lost']
        strays = manifest['strays']
        removed = [name for name in manifest['replaced'] if name in missing]
        pictures = [name for name in manifest['replaced'] if name not in missing]
        replaced = (['its styles.csv'] if had_styles else []) + (
            [f'{len(pictures):,} of its pictures, those with the ids of drawn ones ({first_few(pictures)})']
            if pictures else [])
        images = os.path.join(args.output, 'images')
        left = 'the others are' if pictures or removed or lost else 'its pictures are all'
        print(f'note: drawn over a catalog that was not a sample one: replaced '
              f'{" and ".join(replaced) or "none of its files"}'
              + (f'; removed {counted(len(removed), "picture")} of its, those with the ids of rows drawn without '
                 f'one (--quirks: {first_few(removed)})' if removed else '')
              + (f'; {counted(len(lost), "more picture")} of its ({first_few(lost)}) the drawing cut short before was '
                 'to draw over or remove, and may have reached' if lost else '')
              + (f'; removed {counted(len(strays), "picture")} the drawing cut short before had drawn, at ids of none '
                 f'of its ({first_few(strays)})' if strays else '')
              + (f'; {left} still in {images}/' if manifest['kept'] else ''))


if __name__ == '__main__':
    run_cli(main, files_first=True)
