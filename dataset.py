# Step 2 of the tutorial: the label vocabularies (AttributesDataset), the per-image dataset
# (FashionDataset) and its transforms. The augmentation settings live here once; the batched fast
# path in augment.py reads the same numbers.
import errno
import hashlib
import os
from collections import Counter

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from atomic import absolute_path
from catalog import (HOW_TO_FETCH, IMAGE_SIZE, LABEL_COLUMNS, LINK_LOOP, LINK_TO_NOTHING, NO_PERMISSION,
                     REQUIRED_COLUMNS, SPLIT_COLUMNS, TOO_LARGE, TOO_MANY_FIELDS, UNREADABLE, format_counts,
                     has_line_break, not_an_image_file, open_picture, read_csv_rows, read_styles, turn_upright)
from cli import (UserError, command, counted, first_few, leave_stops_to_the_main_process, one_line, started,
                 usable_cores, worker_processes)

MEAN = [0.485, 0.456, 0.406]  # ImageNet statistics, as in the tutorial
STD = [0.229, 0.224, 0.225]
FILL = (255, 255, 255)  # the catalog's white background, also used for padding
UNKNOWN_LABEL = 'with a label not in the vocabulary'  # a reason a split's row is skipped
LABEL_OF_LINES = 'with a label over several lines'
FLIP_P = 0.5
JITTER = dict(brightness=0.3, contrast=0.3, saturation=0.3, hue=0)
AFFINE = dict(degrees=20, translate=(0.1, 0.1), scale=(0.8, 1.2))
HEADS = ('gender', 'article', 'color')  # model heads, in the order used everywhere
TITLES = {'gender': 'gender', 'article': 'article type', 'color': 'colour'}  # for people

train_transform = transforms.Compose([
    transforms.RandomHorizontalFlip(p=FLIP_P),
    transforms.ColorJitter(**JITTER),
    # The original's resample=False/fillcolor= became interpolation/fill in torchvision 0.9+.
    transforms.RandomAffine(**AFFINE, shear=None,
                            interpolation=transforms.InterpolationMode.NEAREST, fill=FILL),
    transforms.ToTensor(),
    transforms.Normalize(MEAN, STD),
])

val_transform = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize(MEAN, STD),
])


# Greyscale of more than 8 bits (16-bit PNGs and TIFFs, float TIFFs): Pillow's convert() would clip
# each value at 255 instead of scaling it, turning nearly every pixel white (or, from floats of 0 to
# 1, black).
WIDE_GREY_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I', 'F')


def to_8_bit_grey(img):
    # In float32 and in place: a picture of 88 megapixels (Pillow opens up to 179) took 3.4 GB in
    # float64 copies; float32 holds every 16-bit value exactly, and more than 8 bits of any other.
    values = np.array(img, dtype=np.float32)
    brightest = np.isposinf(values)  # a highlight beyond any value: as bright as the picture goes
    values[~np.isfinite(values)] = 0  # NaN and -inf black, and out of the brightest
    white = white_of(img, values)
    values[brightest] = white
    # a PNG's tRNS, a value of the wide scale: kept as alpha (LA)
    clear = values == img.info['transparency'] if 'transparency' in img.info else None
    values *= 255 / white
    grey = Image.fromarray(np.clip(np.rint(values, out=values), 0, 255, out=values).astype(np.uint8), 'L')
    if clear is not None:
        grey.putalpha(Image.fromarray(np.where(clear, 0, 255).astype(np.uint8), 'L'))
    return grey


def white_of(img, values):
    """The value that is white in a greyscale picture of more than 8 bits. Pillow opens 16-bit
    PNGs and TIFFs as I;16 (65535 white), but 16-bit PGMs and 32-bit integer files as I and float
    ones as F, whose files hold values of 16 bits or of their full range alike (floats of 0 to 1,
    255 or 65535): the smallest of those ranges that holds the brightest value."""
    if img.mode.startswith('I;16'):
        return 65535
    # (An I picture of 16 bits, a PGM's, is no brighter for being dark: 16 bits at the least.)
    ranges = (1, 255, 65535) if img.mode == 'F' else (65535, 2**31 - 1)
    brightest = max(values.max(), 1e-12)  # an all-black float picture: no division by 0
    return next((white for white in ranges if brightest <= white), brightest)


def to_rgb(img):
    if img.mode in WIDE_GREY_MODES:
        img = to_8_bit_grey(img)
    # Transparent pixels become the catalog's white background instead of black: an alpha channel
    # (RGBA, LA, PA, premultiplied RGBa), or one colour marked transparent (a PNG's tRNS
    # chunk, in palette, RGB and greyscale files).
    if img.getbands()[-1] in ('A', 'a') or 'transparency' in img.info:
        img = img.convert('RGBA')
        background = Image.new('RGBA', img.size, FILL + (255,))
        return Image.alpha_composite(background, img).convert('RGB')
    return img if img.mode == 'RGB' else img.convert('RGB')  # convert would copy an RGB picture


def fit_to_size(img, size=IMAGE_SIZE):
    # Any picture is brought to the model's 60x80 input the same way: scaled to fit with its
    # aspect ratio kept, centred, and padded with white like the catalog's background.
    if img.size == tuple(size):
        return img
    img = img.resize(fitted_size(*img.size, size), Image.Resampling.LANCZOS)
    canvas = Image.new('RGB', size, FILL)
    canvas.paste(img, ((size[0] - img.size[0]) // 2, (size[1] - img.size[1]) // 2))
    return canvas


def fitted_size(width, height, size=IMAGE_SIZE):
    """The size within size, with the aspect ratio kept, that Pillow's ImageOps.contain gives, but
    at least a pixel a side: a picture thinner than 1:120 has one that rounds to none, which Pillow
    before 13.0 refused (a ValueError, so the picture was counted as damaged)."""
    if width / height > size[0] / size[1]:
        return size[0], max(1, round(height / width * size[0]))
    return max(1, round(width / height * size[1])), size[1]


def load_image(path, size=IMAGE_SIZE):
    with open_picture(path) as img:
        img.load()  # now, as the file closes with this block: a picture may be returned as it is
        return fit_to_size(to_rgb(turn_upright(img)), size)


class AttributesDataset:
    """The three label vocabularies: sorted class names and name<->id maps for each head."""

    def __init__(self, annotation_path=None, vocab=None):
        if vocab is None:
            styles, skipped = read_styles(annotation_path)
            if not styles:  # else a split of it would be blamed, its labels "not in the vocabulary"
                raise UserError(f'{annotation_path}: no usable row, so no labels (skipped {format_counts(skipped)})')
            vocab = {'gender': [s.gender for s in styles], 'article': [s.articleType for s in styles],
                     'color': [s.baseColour for s in styles]}
        self.gender_labels = sorted(set(vocab['gender']))
        self.article_labels = sorted(set(vocab['article']))
        self.color_labels = sorted(set(vocab['color']))
        self.num_genders = len(self.gender_labels)
        self.num_articles = len(self.article_labels)
        self.num_colors = len(self.color_labels)
        self.gender_id_to_name = dict(enumerate(self.gender_labels))
        self.gender_name_to_id = {name: i for i, name in enumerate(self.gender_labels)}
        self.article_id_to_name = dict(enumerate(self.article_labels))
        self.article_name_to_id = {name: i for i, name in enumerate(self.article_labels)}
        self.color_id_to_name = dict(enumerate(self.color_labels))
        self.color_name_to_id = {name: i for i, name in enumerate(self.color_labels)}

    def to_dict(self):
        # Plain lists of strings: what a weights_only checkpoint may hold.
        return {'gender': list(self.gender_labels), 'article': list(self.article_labels),
                'color': list(self.color_labels)}

    def labels(self, head):
        return {'gender': self.gender_labels, 'article': self.article_labels,
                'color': self.color_labels}[head]


def tutorial_vocab(annotation_path):
    """The label lists as the original tutorial made them, for its bare state_dicts: the labels
    of every row of styles.csv, as they are, 'NA' and malformed rows included."""
    header, rows = read_csv_rows(annotation_path, REQUIRED_COLUMNS, 'the catalog labels, styles.csv')
    columns = [header.index(name) for name in LABEL_COLUMNS]
    rows = [row for row in rows if len(row) > max(columns)]
    return {head: [row[column] for row in rows] for head, column in zip(HEADS, columns)}


def in_real_folders(paths):
    """Each path with its folder's real path (os.path.realpath, worked out once a folder: two in
    all, usually): a split made through a link to the catalog names the same pictures otherwise."""
    real, found = {}, []
    for path in paths:
        if '\0' in path:  # no file has it (os.path.realpath raises on it): a split's row gone bad
            continue
        folder, name = os.path.split(path)
        if folder not in real:
            real[folder] = os.path.realpath(folder)
        found.append(os.path.join(real[folder], name))
    return found


def resolve_image_path(path, csv_folder, pictures_from=None):
    # split_data.py writes paths relative to the CSV's folder; the original wrote them relative
    # to the working directory (pictures_from: the folder a run was started in, None for this
    # one), so those are tried next.
    if os.path.isabs(path):
        return path
    # split_data.py writes a path the system follows to the picture. Splits of before 2026-11-30
    # in a symlinked folder hold one that only works by name: tried next.
    beside_csv = os.path.join(csv_folder, path)
    candidates = (beside_csv, os.path.normpath(beside_csv), os.path.join(pictures_from or '', path))
    # A picture first; else a link that leads to none, named so by missing_image (a git-annex store
    # not fetched), not the path beside the CSV that holds nothing at all.
    for there in (os.path.exists, os.path.lexists):
        for candidate in candidates:
            if there(candidate):
                return candidate
    return beside_csv


def image_named(written, csv_folder, pictures_from=None):
    """The picture a split's image_path names: with the spaces around it dropped (a split edited by
    hand), or as written where only that is a picture (a catalog folder named ' data' by mistake,
    which split_data.py writes as it is), or with Windows' backslashes read as slashes (a split
    edited there) where only that is one."""
    path = resolve_image_path(written.strip(), csv_folder, pictures_from)
    others = {written, written.strip().replace('\\', '/')} - {written.strip()}
    if not others or not missing_image(path):
        return path
    found = (resolve_image_path(other, csv_folder, pictures_from) for other in sorted(others))
    return next((other for other in found if not missing_image(other)), path)


def missing_image(path):
    """Why there is no picture to read at path, or None; only looks, without decoding it."""
    try:
        return not_an_image_file(path)
    except PermissionError:  # a folder on its way we may not enter: images/ itself, say
        return NO_PERMISSION
    except FileNotFoundError:  # a git-annex or DVC store not fetched: `ls` shows every name
        return LINK_TO_NOTHING if os.path.islink(path) else 'image missing'
    except OSError as error:
        return LINK_LOOP if error.errno == errno.ELOOP else 'image missing'
    except ValueError:  # a NUL byte in the path
        return 'image missing'


def read_annotations(annotation_path, attributes, pictures_from=None):
    """(image path, gender id, article id, color id) for each usable row of a split CSV; a path of
    the tutorial's, from the working folder, is taken from pictures_from where given."""
    return read_split(annotation_path, attributes, pictures_from)[0]


def read_split(annotation_path, attributes, pictures_from=None):
    """read_annotations' samples, and the rows skipped by reason (a Counter)."""
    header, rows = read_csv_rows(annotation_path, SPLIT_COLUMNS, 'a split made by split_data.py')
    column = {name: header.index(name) for name in SPLIT_COLUMNS}  # any other column is not read
    folder = os.path.dirname(absolute_path(annotation_path))  # where the system finds it
    samples, skipped, unknown, first_gone = [], Counter(), Counter(), None
    vocab = ((attributes.gender_name_to_id, 'gender'), (attributes.article_name_to_id, 'articleType'),
             (attributes.color_name_to_id, 'baseColour'))
    for row in rows:
        if len(row) > len(header):  # a comma too many, in a row edited by hand, say
            skipped[TOO_MANY_FIELDS] += 1
            continue
        # short of a column of the user's only (notes added to a few rows): read, as that column is not
        if not all(column[name] < len(row) and row[column[name]].strip() for name in column):
            skipped['with an empty or missing field'] += 1
            continue
        labels = [row[column[name]].strip() for _, name in vocab]
        ids = [name_to_id.get(label) for (name_to_id, _), label in zip(vocab, labels)]
        # A cell typed in two lines is in no vocabulary (styles.csv's rows of one are skipped): looked
        # for among the unknown labels alone, not in every row of the split
        if None in ids and any(has_line_break(label) for label in labels):
            skipped[LABEL_OF_LINES] += 1
            continue
        if None in ids:
            skipped[UNKNOWN_LABEL] += 1
            unknown.update(f'{name} {one_line(label)}'
                           for (_, name), label, id_ in zip(vocab, labels, ids) if id_ is None)
            continue
        path = image_named(row[column['image_path']], folder, pictures_from)
        problem = missing_image(path)
        if problem:
            skipped[problem] += 1
            first_gone = first_gone or path
            continue
        samples.append((path, *ids))
    if skipped:  # with a picture's path, as looked for: a split whose pictures moved says where from
        print(f'{annotation_path}: skipped {counted(sum(skipped.values()), "row")}: {format_counts(skipped)}'
              + (f'; the first picture skipped is {one_line(first_gone)}' if first_gone else ''))
    if unknown:  # which: a split of another catalog, say, scored by a checkpoint that never saw its classes
        print(f'{annotation_path}: labels not in the vocabulary: '
              f'{first_few([f"{label} ({count:,})" for label, count in unknown.most_common()])}')
    note_found_from_here(annotation_path, samples)
    note_repeated_pictures(annotation_path, samples)
    if not samples:
        raise UserError(f'{annotation_path}: no usable row left (skipped {format_counts(skipped)}); '
                        f'{what_to_do(skipped)}')
    return samples, skipped


def note_found_from_here(annotation_path, samples):
    """Says how many pictures were found from the working folder, not beside the split (the
    paths of the tutorial's own split_data.py): from another folder they would be missing, or
    another catalog's under the same names."""
    found_here = sum(not os.path.isabs(path) for path, *_ in samples)  # those beside it are absolute
    if found_here:
        print(f'note: {annotation_path}: {counted(found_here, "picture")} found from the working folder, not beside '
              'the split (the tutorial\'s paths); run from this folder, or split again with split_data.py, '
              'whose paths work from any folder')


def note_repeated_pictures(annotation_path, samples):
    """Says how many pictures a split lists more than once (two splits put together, say): each
    is trained on, or scored, as often as it is listed, which split_data.py never does."""
    times = Counter(in_real_folders(path for path, *_ in samples))
    repeated = sum(1 for count in times.values() if count > 1)
    if repeated:
        print(f'note: {annotation_path}: {counted(repeated, "picture")} listed more than once '
              f'({counted(len(samples) - len(times), "row")} more than the pictures); each is used as often as '
              'it is listed')


def what_to_do(skipped):
    """The advice for a split with no usable row, by the reason at least half its rows share."""
    def most(reason):
        return 2 * skipped[reason] >= sum(skipped.values())

    if most(NO_PERMISSION):
        return 'let this user read its pictures'
    if most(LINK_TO_NOTHING):  # split again, they would be skipped all the same
        return f'fetch the pictures its links lead to, as git-annex and DVC leave them unfetched {HOW_TO_FETCH}'
    if most(UNKNOWN_LABEL):
        # A new run's labels are its --attributes_file's; test.py's and a resumed run's, the
        # checkpoint's, which --attributes_file does not change: each way named where it works.
        return ('its labels are not the ones this run knows: give the styles.csv of the catalog it was split '
                'from (train.py --attributes_file), or the checkpoint of a run trained on it (test.py, --resume)')
    return f'split the catalog its pictures are in again: {command("split_data.py", "--input", "CATALOG_FOLDER")}'


def rows_digest(samples):
    """(count, SHA-256) of a split's rows, by each picture's file name and labels: the same on every
    machine that reads the same split over the same pictures, wherever it keeps them."""
    digest = hashlib.sha256()
    for path, *labels in samples:
        digest.update(f'{os.path.basename(path)}\0{labels}\n'.encode('utf-8', 'surrogateescape'))
    return len(samples), digest.hexdigest()


class FashionDataset(Dataset):
    # pictures_from: for a run's own split read from elsewhere (test.py, --resume), the folder the
    # run was started in, from which a split of the tutorial's paths found its pictures.
    def __init__(self, annotation_path, attributes, transform=None, pictures_from=None):
        super().__init__()
        self.transform = transform
        self.attr = attributes
        self.annotation_path = annotation_path
        self.samples, self.skipped = read_split(annotation_path, attributes, pictures_from)
        self.data = [s[0] for s in self.samples]  # image paths, as the tutorial named them

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, idx):
        path, gender, article, color = self.samples[idx]
        try:
            img = load_image(path)
        except OSError as error:
            if type(error) is OSError and path not in str(error):  # Pillow's 'Truncated File Read' names no file
                raise OSError(f'{error}: {path}') from error
            raise
        if self.transform:
            img = self.transform(img)
        return {'img': img,
                'labels': {'gender_labels': gender, 'article_labels': article, 'color_labels': color}}


# What became of an image at decoding, by code (0: decoded), as the counts of skipped ones say it.
BROKEN, NOT_READ, TOO_BIG = 1, 2, 3
NOT_DECODED = {BROKEN: 'that can no longer be decoded', NOT_READ: 'that we have no permission to read',
               TOO_BIG: f'that Pillow refuses as {TOO_LARGE}'}


class DecodedImages(Dataset):
    """Each image as a uint8 array (H, W, 3), or its NOT_DECODED code where it cannot be read."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            return np.asarray(load_image(self.paths[i]), dtype=np.uint8)
        except PermissionError:  # taken away since the split was made, or a file of another user's
            return NOT_READ
        except Image.DecompressionBombError:  # replaced since by a photo of its own, full size
            return TOO_BIG
        except UNREADABLE:
            return BROKEN


def stack_decoded(arrays):
    """A batch of DecodedImages -> uint8 images (N, H, W, 3) and each one's code (0: decoded)."""
    width, height = IMAGE_SIZE
    blank = np.zeros((height, width, 3), dtype=np.uint8)
    codes = [0 if isinstance(a, np.ndarray) else a for a in arrays]
    images = np.stack([blank if code else a for a, code in zip(arrays, codes)])
    return torch.from_numpy(images), torch.tensor(codes, dtype=torch.uint8)


DECODE_BATCH = 256  # images per task handed to a decoding worker


def decoding_workers():
    """Workers that decode, by default (processes; predict.py's reading threads): the tutorial's
    num_workers = 8, or the cores this process may use where there are fewer (more would take
    turns on them, and each process holds a copy of the dataset's rows)."""
    return min(8, usable_cores())


def decoded_batches(paths, workers=None):
    """(uint8 images (N, H, W, 3), each one's stack_decoded code) for the paths, DECODE_BATCH at a time, in order."""
    # Worker processes, not threads: PIL and the array copies hold the GIL for most of the 0.2 ms
    # an image takes. On 2 cores two threads decoded 2,700 images/s, fewer than this process alone
    # (about 5,000), and two worker processes 7,900.
    workers = decoding_workers() if workers is None else workers
    # A worker takes about 0.1 s to start, as long as decoding 500 pictures here: small datasets
    # are decoded in this process. Its own generator: a DataLoader draws its workers' seed from
    # the global one, which would change the model's initial weights.
    workers = min(workers, len(paths) // (2 * DECODE_BATCH))
    return started(DataLoader(DecodedImages(paths), batch_size=DECODE_BATCH, collate_fn=stack_decoded,
                              num_workers=workers, multiprocessing_context=worker_processes(workers),
                              generator=torch.Generator(), worker_init_fn=leave_stops_to_the_main_process))


def keep_decoded(codes, source, paths):
    """The indices of the samples whose image decoded (code 0); says how many did not, why, and
    which (the first three), so that the user can mend or replace them."""
    kept = (codes == 0).nonzero().squeeze(1).tolist()
    for code, words in NOT_DECODED.items():
        which = (codes == code).nonzero().squeeze(1).tolist()
        if which:
            print(f'{source}: skipped {counted(len(which), "image")} {words}: {first_few([paths[i] for i in which])}')
    if not kept:
        raise UserError(f'{source}: none of its pictures could be read ({counted(len(codes), "picture")})')
    return kept


def skip_undecodable(dataset, workers=None):
    """Drops the samples of a FashionDataset whose image no longer decodes (broken since the split):
    the tutorial's DataLoader path would stop at the first one, in the middle of an epoch."""
    kept = keep_decoded(torch.cat([codes for _, codes in decoded_batches(dataset.data, workers)]),
                        dataset.annotation_path, dataset.data)
    dataset.samples = [dataset.samples[i] for i in kept]
    dataset.data = [dataset.data[i] for i in kept]
    return dataset


def keep_rows(images, kept, chunk=1024):
    """images[kept] for kept in increasing order, made in place: each row moved up over the
    skipped ones before it, a chunk at a time, and a view of the first len(kept) rows returned.
    images[kept] itself is a copy: with a picture broken since the split, the cache of 32,000
    existed twice (440 MiB more at the peak)."""
    # The rows before the first one skipped stay where they are: all of them where none is.
    first_moved = next((row for row, index in enumerate(kept) if index != row), len(kept))
    for start in range(first_moved, len(kept), chunk):
        rows = torch.tensor(kept[start:start + chunk])
        images[start:start + len(rows)] = images[rows]  # rows[i] >= start + i: read before written over
    return images[:len(kept)]


def load_into_memory(dataset, workers=None):
    """Decode every image of a FashionDataset once into a uint8 tensor (N, 3, 80, 60).

    The tensor is stored channels-last (N, H, W, 3 in memory, about 14 KB an image), filled in
    place so the cache never exists twice. Returns the images, a dict of label tensors and the
    kept sample indices: an image that no longer decodes is skipped and counted instead of
    crashing the run later.
    """
    width, height = IMAGE_SIZE
    images = torch.empty((len(dataset), height, width, 3), dtype=torch.uint8)
    codes = torch.empty(len(dataset), dtype=torch.uint8)
    start = 0
    for batch, batch_codes in decoded_batches(dataset.data, workers):
        images[start:start + len(batch)] = batch
        codes[start:start + len(batch)] = batch_codes
        start += len(batch)
    kept = keep_decoded(codes, dataset.annotation_path, dataset.data)
    images = keep_rows(images, kept)
    labels = torch.tensor([dataset.samples[i][1:] for i in kept], dtype=torch.long)
    labels = {head: labels[:, j].contiguous() for j, head in enumerate(HEADS)}
    return images.permute(0, 3, 1, 2), labels, kept
