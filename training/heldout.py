"""The held-out test split: faces that no shipped model is trained, tuned or calibrated on.

``training/heldout_split.json`` (committed) lists, per data set under ../shared/data, the files
held out, or ``"all"`` for a set held out whole (the webcam sets: one person each, so a split by
person is the whole folder).  Paths are relative to the set's folder, so the split means the same
on any clone.  Build it again (same result) with

    scripts/in_env.sh python -m training.heldout --out training/heldout_split.json

Rules: facemask-classification and facemask-detection-dev keep the old model's validation images
(seed 0, 20 %, by content hash), so old and new models are compared on faces neither trained on;
the other real-world-masks sets hold out 30 % of their images per class, chosen by content hash;
the webcam sets show one person each, so they are split by person: hiluf_webcam and
collins_webcam are held out whole, mdmufid_webcam_nomask (unmasked only) is trained on whole.
"""
import argparse
import hashlib
import json
import os
from pathlib import Path
import sys

from training import data as data_lib

DEFAULT_SPLIT = data_lib.REPO_ROOT / 'training' / 'heldout_split.json'
WHOLE_SETS = ('real-world-masks/hiluf_webcam', 'real-world-masks/collins_webcam')
OLD_VALIDATION_SETS = ('facemask-classification', 'facemask-detection-dev')
HASHED_SETS = ('real-world-masks/covid_face_mask_prithwirajmitra',
               'real-world-masks/vyivanov_mask_types', 'real-world-masks/masksplease_scraped',
               'real-world-masks/zulhamf11_field_photos', 'real-world-masks/rwmfd_part1_voc')
# One person, unmasked only: split by person means all or nothing; it trains (webcam frames of
# an unmasked face), hiluf_webcam and collins_webcam test.
TRAINED_WHOLE_SETS = ('real-world-masks/mdmufid_webcam_nomask',)
HASHED_FRACTION = 0.3


def default_data_root():
    """../shared/data next to the checkout, or $MASK_DETECTION_SHARED_DATA."""
    return Path(os.environ.get('MASK_DETECTION_SHARED_DATA',
                               data_lib.REPO_ROOT.parent / 'shared' / 'data'))


def _relative(path, folder):
    return Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()


def _hashed_choice(folder, fraction):
    """Hold out ``fraction`` of each class's images: those with the smallest content hash."""
    folder = Path(folder)
    if data_lib.detect_layout(folder) == 'voc':
        groups = [[Path(v.image_path) for v in data_lib.read_voc_folder(folder)]]
    else:
        groups = [data_lib.list_images(folder / name) for name in data_lib.FOLDER_CLASSES]
    chosen = []
    for paths in groups:
        ranked = sorted(paths, key=lambda p: hashlib.sha1(p.read_bytes()).hexdigest())
        chosen += [_relative(p, folder) for p in ranked[:int(round(len(ranked) * fraction))]]
    return sorted(chosen)


def build_split(data_root):
    """Return the held-out split dict for the data sets under ``data_root``."""
    data_root = Path(data_root)
    sets = {}
    old_folders = [data_root / name for name in OLD_VALIDATION_SETS]
    samples, _ = data_lib.load_samples(old_folders, detect_faces=False, progress=False)
    _, validation = data_lib.split_samples(samples, 0.2, 0)
    for name, folder in zip(OLD_VALIDATION_SETS, old_folders):
        files = sorted({_relative(s.image_path, folder) for s in validation
                        if Path(s.source) == folder})
        sets[name] = {'rule': 'the validation images of the previous shipped model '
                              '(training.data.split_samples, seed 0, 20 %, by content hash)',
                      'files': files}
    for name in HASHED_SETS:
        sets[name] = {'rule': f'{HASHED_FRACTION:.0%} of each class, smallest SHA-1 of the file',
                      'files': _hashed_choice(data_root / name, HASHED_FRACTION)}
    for name in WHOLE_SETS:
        sets[name] = {'rule': 'whole set (one person: split by person)', 'files': 'all'}
    for name in TRAINED_WHOLE_SETS:
        sets[name] = {'rule': 'nothing held out: one person, trained on whole', 'files': []}
    return {'description': 'faces held out from training, validation and calibration; paths '
                           'relative to each set folder under ../shared/data',
            'sets': dict(sorted(sets.items()))}


def load_split(path=DEFAULT_SPLIT):
    split = json.loads(Path(path).read_text())
    if not isinstance(split, dict) or not isinstance(split.get('sets'), dict):
        raise data_lib.DataError(f'{path}: not a held-out split (no "sets" object)')
    return split


def set_name(folder, split):
    """Return the split's name for a data folder (matched on its trailing path parts), or None."""
    parts = Path(folder).resolve().parts
    for name in split['sets']:
        tail = tuple(name.split('/'))
        if parts[-len(tail):] == tail:
            return name
    return None


def is_held_out(sample, split):
    """Return True when the sample's image is in the held-out part of its data set."""
    name = set_name(sample.source, split)
    if name is None:
        return False
    files = split['sets'][name]['files']
    if files == 'all':
        return True
    return _relative(sample.image_path, sample.source) in set(files)


def partition(samples, split):
    """Return ``(kept for training/validation, held out)``."""
    cache = {}
    kept, held = [], []
    for sample in samples:
        name = set_name(sample.source, split)
        if name not in cache:
            files = split['sets'][name]['files'] if name else []
            cache[name] = files if files == 'all' else set(files)
        files = cache[name]
        out = files == 'all' or _relative(sample.image_path, sample.source) in files
        (held if out else kept).append(sample)
    return kept, held


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default=str(default_data_root()))
    parser.add_argument('--out', default=str(DEFAULT_SPLIT))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        split = build_split(args.data_root)
    except data_lib.DataError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps(split, indent=0) + '\n')
    for name, entry in split['sets'].items():
        count = entry['files'] if entry['files'] == 'all' else len(entry['files'])
        print(f'{name}: {count}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
