"""Held-out accuracy of the classifier, broken down the way a robot's camera varies.

Used by ``python -m training.evaluate heldout``.  On the held-out faces of every data set of the
split (training/heldout_split.json): accuracy and per-class recall per data set, per face size
(VOC sets), per VOC class (mask worn incorrectly), per face brightness, per estimated mask colour
(from the lower face's pixels: no data set labels colours), per webcam condition (each condition
of training/conditions.py applied at a fixed strength), and, reported apart because they flatter
the synthesis, per kind / colour / placement of masks drawn on the held-out unmasked faces and
per style of facial hair drawn on them (still no mask).

As on the robot, each face is cropped upright when CenterFace's landmarks (found again on the
face's context) show its head rolled (MaskClassifier's ``align_faces``); ``align_faces=False``
scores the crops as annotated.  ``per_roll`` reports accuracy by that roll.
"""
from pathlib import Path

import cv2
import numpy as np

from mask_detection.classifier import crop_square, MASK, MaskClassifier, NO_MASK
from mask_detection.faces import FaceBox
from mask_detection.mask_synthesis import (beard_face, BEARD_STYLES, COLOURS, mask_face,
                                           MASK_KINDS, MaskSpec, PLACEMENTS)
from training import calibration, conditions, data as data_lib, heldout
from training.metrics import classification_metrics

SIZE_BUCKETS = (('<24', 0, 24), ('24-48', 24, 48), ('>=48', 48, float('inf')))
BRIGHTNESS_BINS = ((f'dim (<{conditions.DIM_GREY})', 0, conditions.DIM_GREY),
                   (f'medium ({conditions.DIM_GREY}-120)', conditions.DIM_GREY, 120),
                   ('bright (>=120)', 120, 256))
# Context kept around a face when a condition is applied (box side multiples on each side),
# and the face side it is scaled down to (training sees faces of at most 96 px too).
CONDITION_CONTEXT = 1.0
CONTEXT_FACE_SIDE = 112
# Head roll bins (absolute degrees, from the landmarks found again on each face).
ROLL_BINS = (('roll <10 deg', 0, 10), ('roll 10-20 deg', 10, 20), ('roll >=20 deg', 20, 181))


def summarise(labels, probabilities, unknown_threshold=0.6):
    """Accuracy, recalls, and how many would be UNKNOWN at the pipeline's default threshold."""
    labels = np.asarray(labels, np.int64)
    probabilities = np.asarray(probabilities, np.float64).reshape(-1, 2)
    predictions = probabilities.argmax(1)
    metrics = classification_metrics(labels, predictions)
    confident = probabilities.max(1) >= unknown_threshold
    metrics['unknown'] = int((~confident).sum())
    metrics['labelled_right_unknown_wrong'] = float(
        ((predictions == labels) & confident).mean()) if len(labels) else None
    return {'n': metrics['n'], 'accuracy': metrics['accuracy'],
            'mask_recall': metrics['per_class']['mask']['recall'],
            'no_mask_recall': metrics['per_class']['no_mask']['recall'],
            'unknown': metrics['unknown'],
            'labelled_right_unknown_wrong': metrics['labelled_right_unknown_wrong'],
            'confusion': metrics['confusion_matrix']['matrix']}


def lower_face_colour(image, box):
    """Estimate the colour of what covers the lower face: dark, white/grey, blue, or other.

    Reads the middle of the box's lower third (where a mask covers the mouth); for unmasked
    faces it reads skin and beard, so it is only reported for masked faces.
    """
    x, y, w, h = box
    x0, x1 = int(x + 0.3 * w), int(x + 0.7 * w)
    y0, y1 = int(y + 0.62 * h), int(y + 0.88 * h)
    patch = image[max(0, y0):max(y0 + 1, y1), max(0, x0):max(x0 + 1, x1)]
    if patch.size == 0:
        return 'unknown'
    hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float64)
    hue, saturation, value = np.median(hsv, axis=0)
    if value < 70:
        return 'dark (black / navy / dark grey)'
    if saturation < 45:
        return 'white / light grey'
    if 85 <= hue <= 130:
        return 'blue / light blue'
    return 'coloured / patterned'


def _load_held_out(split, data_root, progress, cache_dir):
    """Return {set name: held-out samples} for the sets of the split present under data_root."""
    result, missing = {}, []
    for name in split['sets']:
        folder = Path(data_root) / name
        if not folder.is_dir():
            missing.append(name)
            continue
        samples, _ = data_lib.load_samples([folder], 'centerface', cache_dir=cache_dir,
                                           progress=progress, detector_settings={'scale': 1.0})
        _, held = heldout.partition(samples, split)
        result[name] = held
    return result, missing


class _Scorers:
    """Logits of several models for the same faces (each face prepared once)."""

    def __init__(self, model_paths, align_faces=True):
        # One torch thread: two spin-wait against each other on a busy machine (BENCHMARKS.md).
        self.classifiers = [MaskClassifier(path, num_threads=1, align_faces=align_faces)
                            for path in model_paths]

    def logits(self, items):
        """Return one (N, 2) array of raw network outputs per model for (image, box) pairs."""
        if not items:
            return [np.zeros((0, 2)) for _ in self.classifiers]
        batches, out = {}, []
        for model in self.classifiers:
            key = repr(sorted(model.preprocessing.items()))
            if key not in batches:
                batches[key] = np.stack([model.preprocess(image, [box])[0]
                                         for image, box in items])
            out.append(model.raw_logits(batches[key]))
        return out


def _context(image, box):
    """Crop the face with context, face side at most CONTEXT_FACE_SIDE; (crop, box in it)."""
    x, y, w, h = box
    side = max(w, h)
    crop = crop_square(image, box, CONDITION_CONTEXT)
    left = np.floor(x + w / 2.0 - side * (1 + 2 * CONDITION_CONTEXT) / 2.0 + 0.5)
    top = np.floor(y + h / 2.0 - side * (1 + 2 * CONDITION_CONTEXT) / 2.0 + 0.5)
    box = (x - left, y - top, w, h)
    if side > CONTEXT_FACE_SIDE:
        scale = CONTEXT_FACE_SIDE / side
        size = max(1, int(round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        box = tuple(v * scale for v in box)
    return crop, box


def _with_landmarks(box, points, offset=(0.0, 0.0), scale=1.0):
    """Return a FaceBox of ``box`` with ``points`` (five x, y) mapped by p / scale + offset."""
    landmarks = None if points is None else tuple(
        (float(x / scale + offset[0]), float(y / scale + offset[1])) for x, y in points)
    return FaceBox(*box, 1.0, landmarks)


def evaluate_heldout(split_path, data_root, model_paths=(None,), synthetic_faces=True, seed=0,
                     progress=True, reliability_png=None, cache_dir=data_lib.DEFAULT_CACHE_DIR,
                     align_faces=True):
    """Return one breakdown dict per model (see the module docstring), same faces for all.

    ``model_paths``: model files (None = the shipped model); ``reliability_png``: diagram of the
    first model; ``align_faces``: crop rolled faces upright, as the pipeline does.
    """
    split = heldout.load_split(split_path)
    held, missing = _load_held_out(split, data_root, progress, cache_dir)
    if not held:
        raise data_lib.DataError(f"none of the split's data sets is under {data_root}")
    scorers = _Scorers(model_paths, align_faces)
    rng = np.random.default_rng(seed)
    records = []    # one per face: set, label, logits, extras
    condition_logits = {name: [] for name in conditions.CONDITIONS}
    synthetic = []  # (spec, logits)
    bearded = []    # (style, logits): facial hair drawn on held-out unmasked faces
    # Its own generator, so that adding beards left the other renderings as they were.
    beard_rng = np.random.default_rng(seed + 1)
    detector = None
    for name, samples in held.items():
        by_image = {}
        for sample in samples:
            by_image.setdefault(sample.image_path, []).append(sample)
        items = by_image.items()
        if progress:
            from tqdm import tqdm
            items = tqdm(items, desc=f'held out: {name}', leave=False, unit='img')
        for path, faces in items:
            image = data_lib.read_image(path)
            contexts, boxes = [], []
            for sample in faces:
                crop, box = _context(image, sample.box)
                points = None
                if align_faces or synthetic_faces:
                    if detector is None:
                        detector = data_lib.landmark_detector()
                    from training.synthetic import find_points
                    points = find_points(detector, crop, box)
                # The context crop is the image shifted and scaled: map its points back.
                scale = box[2] / sample.box[2]
                offset = (sample.box[0] - box[0] / scale, sample.box[1] - box[1] / scale)
                contexts.append((crop, box, _with_landmarks(box, points), points))
                boxes.append(_with_landmarks(sample.box, points, offset, scale))
            logits = np.stack(scorers.logits([(image, box) for box in boxes]), axis=1)
            for sample, box, row, (crop, crop_xywh, crop_box, points) in zip(
                    faces, boxes, logits, contexts):
                side = min(sample.box[2], sample.box[3])
                roll = box.roll_degrees()
                records.append({
                    'set': name, 'label': sample.label, 'logits': row, 'kind': sample.kind,
                    'voc_class': sample.voc_class, 'size': side,
                    'brightness': conditions.darkness(image, sample.box),
                    'colour': lower_face_colour(image, sample.box),
                    'roll': None if roll is None else abs(roll)})
                changed = [(apply(crop, crop_xywh, rng), crop_box)
                           for apply in conditions.CONDITIONS.values()]
                rows = np.stack(scorers.logits(changed), axis=1)
                for condition, row in zip(conditions.CONDITIONS, rows):
                    condition_logits[condition].append(row)
                if synthetic_faces and sample.label == NO_MASK and side >= 40 and \
                        sample.voc_class != 'mask_weared_incorrect':
                    if points is None:
                        continue
                    box = crop_box
                    specs = _synthetic_specs(rng, len(synthetic))
                    drawn = [(mask_face(crop, points, spec, rng), box) for spec in specs]
                    synthetic += list(zip(specs, np.stack(scorers.logits(drawn), axis=1)))
                    style = BEARD_STYLES[len(bearded) % len(BEARD_STYLES)]
                    hair = beard_face(crop, points, style, beard_rng)
                    bearded.append((style, np.stack(scorers.logits([(hair, box)]), axis=1)[0]))
    results = []
    for index, model in enumerate(scorers.classifiers):
        # Each record holds one row of logits per model: keep this model's.
        pick = [{**r, 'logits': r['logits'][index]} for r in records]
        results.append(_report(
            pick, {c: [row[index] for row in rows] for c, rows in condition_logits.items()},
            [(spec, row[index]) for spec, row in synthetic], model, split_path, data_root,
            missing, reliability_png if index == 0 else None,
            [(style, row[index]) for style, row in bearded]))
    return results


def _synthetic_specs(rng, counter):
    """Return one mask worn right and one worn wrong for the next face.

    Kinds x colours and both wrong placements are cycled through as the faces go by
    (``counter``: renderings made so far, two per face).
    """
    grid = [(kind, colour) for kind in MASK_KINDS for colour in COLOURS]
    face = counter // 2
    kind, colour = grid[int(rng.integers(len(grid)))]
    return [MaskSpec(*grid[face % len(grid)], 'proper'),
            MaskSpec(kind, colour, PLACEMENTS[1 + face % 2])]


def _group(records, probabilities, key, select=None):
    groups = {}
    for index, record in enumerate(records):
        if select is not None and not select(record):
            continue
        value = key(record)
        if value is None:
            continue
        groups.setdefault(value, []).append(index)
    return {value: summarise([records[i]['label'] for i in indices], probabilities[indices])
            for value, indices in sorted(groups.items())}


def _report(records, condition_logits, synthetic, model, split_path, data_root, missing,
            reliability_png, bearded=()):
    temperature = model.temperature
    logits = np.array([r['logits'] for r in records]).reshape(-1, 2)
    labels = np.array([r['label'] for r in records], np.int64)
    probabilities = calibration.probabilities(logits, temperature)
    result = {'model': str(model.model_path), 'split': str(split_path),
              'data_root': str(data_root), 'sets_missing': missing,
              'align_faces': model.align_faces,
              'temperature': temperature,
              'all_real': summarise(labels, probabilities)}
    result['per_set'] = _group(records, probabilities, lambda r: r['set'])

    def size_key(r):
        if r['kind'] != 'voc':
            return None
        for name, low, high in SIZE_BUCKETS:
            if low <= r['size'] < high:
                return f'{r["set"]} {name}'
    result['per_face_size_voc'] = _group(records, probabilities, size_key)
    result['per_voc_class'] = _group(records, probabilities,
                                     lambda r: f'{r["set"]} {r["voc_class"]}' if r['voc_class']
                                     else None)

    def brightness_key(r):
        for name, low, high in BRIGHTNESS_BINS:
            if low <= r['brightness'] < high:
                return name
    result['per_face_brightness'] = _group(records, probabilities, brightness_key)
    result['per_face_brightness_unmasked'] = _group(
        records, probabilities, brightness_key, lambda r: r['label'] == NO_MASK)

    def roll_key(r):
        if r.get('roll') is None:
            return 'roll unknown (no landmarks found)'
        for name, low, high in ROLL_BINS:
            if low <= r['roll'] < high:
                return name
    result['per_roll'] = _group(records, probabilities, roll_key)
    result['per_mask_colour_estimated'] = _group(records, probabilities, lambda r: r['colour'],
                                                 lambda r: r['label'] == MASK)
    result['per_condition'] = {'none': result['all_real']}
    for condition, rows in condition_logits.items():
        result['per_condition'][condition] = summarise(
            labels, calibration.probabilities(np.array(rows).reshape(-1, 2), temperature))
    ece_raw, _ = calibration.reliability(logits, labels, 1.0)
    ece, table = calibration.reliability(logits, labels, temperature)
    result['calibration'] = {'nll_raw': calibration.nll(logits, labels, 1.0),
                             'nll_calibrated': calibration.nll(logits, labels, temperature),
                             'ece_raw': ece_raw, 'ece_calibrated': ece, 'bins': table}
    if reliability_png:
        calibration.plot_reliability(logits, labels, temperature, reliability_png,
                                     'held-out real faces')
    if synthetic:
        syn_labels = np.array([spec.label for spec, _ in synthetic], np.int64)
        syn_probabilities = calibration.probabilities(
            np.array([row for _, row in synthetic]).reshape(-1, 2), temperature)
        syn_records = [{'label': spec.label, 'spec': spec} for spec, _ in synthetic]
        result['synthetic'] = {
            'note': 'masks drawn on held-out unmasked faces: flatters the synthesis, '
                    'reported apart',
            'all': summarise(syn_labels, syn_probabilities),
            'per_kind_worn_right': _group(syn_records, syn_probabilities,
                                          lambda r: r['spec'].kind,
                                          lambda r: r['spec'].placement == 'proper'),
            'per_colour_worn_right': _group(syn_records, syn_probabilities,
                                            lambda r: r['spec'].colour,
                                            lambda r: r['spec'].placement == 'proper'),
            'per_placement': _group(syn_records, syn_probabilities,
                                    lambda r: r['spec'].placement)}
    if bearded:
        beard_probabilities = calibration.probabilities(
            np.array([row for _, row in bearded]).reshape(-1, 2), temperature)
        beard_records = [{'label': NO_MASK, 'style': style} for style, _ in bearded]
        result['synthetic_beards'] = {
            'note': 'facial hair drawn on held-out unmasked faces (still no mask): flatters '
                    'the synthesis, reported apart',
            'all': summarise([NO_MASK] * len(bearded), beard_probabilities),
            'per_style': _group(beard_records, beard_probabilities, lambda r: r['style'])}
    return result


def _pct(value):
    return '   -  ' if value is None else f'{100 * value:5.1f}%'


def print_breakdown(result, stream=None):
    import sys
    stream = stream or sys.stdout

    def table(title, groups):
        print(f'\n{title}', file=stream)
        print(f'  {"":<52}{"n":>6} {"acc":>7} {"mask":>7} {"nomask":>7} {"unk":>5}',
              file=stream)
        for name, entry in groups.items():
            print(f'  {name:<52}{entry["n"]:>6} {_pct(entry["accuracy"]):>7} '
                  f'{_pct(entry["mask_recall"]):>7} {_pct(entry["no_mask_recall"]):>7} '
                  f'{entry["unknown"]:>5}', file=stream)
    print(f'model {result["model"]} (T = {result["temperature"]:.3f}), split {result["split"]}, '
          f'faces {"cropped upright" if result["align_faces"] else "cropped as annotated"}',
          file=stream)
    if result['sets_missing']:
        print(f'sets not found under {result["data_root"]}: {result["sets_missing"]}',
              file=stream)
    table('held-out real faces per data set',
          {'ALL': result['all_real'], **result['per_set']})
    table('per face size (VOC sets, annotated boxes)', result['per_face_size_voc'])
    table('per VOC class', result['per_voc_class'])
    table('per face brightness (mean grey of the box)', result['per_face_brightness'])
    table('unmasked faces per brightness', result['per_face_brightness_unmasked'])
    table('masked faces per estimated mask colour', result['per_mask_colour_estimated'])
    table('per head roll (landmarks found again; rolled faces are cropped upright unless '
          '--no-align)', result['per_roll'])
    table('per webcam condition (all held-out real faces)', result['per_condition'])
    c = result['calibration']
    print(f'\ncalibration on held-out real faces: NLL {c["nll_raw"]:.4f} raw -> '
          f'{c["nll_calibrated"]:.4f}; ECE {c["ece_raw"]:.4f} -> {c["ece_calibrated"]:.4f}',
          file=stream)
    if 'synthetic' in result:
        s = result['synthetic']
        table('SYNTHETIC masks on held-out unmasked faces (reported apart)', {
            'all': s['all'], **{f'kind {k}': v for k, v in s['per_kind_worn_right'].items()},
            **{f'colour {k}': v for k, v in s['per_colour_worn_right'].items()},
            **{f'placement {k}': v for k, v in s['per_placement'].items()}})
    if 'synthetic_beards' in result:
        b = result['synthetic_beards']
        table('SYNTHETIC facial hair on held-out unmasked faces, no mask (reported apart)', {
            'all': b['all'], **{f'style {k}': v for k, v in b['per_style'].items()}})
