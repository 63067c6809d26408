"""Data loading for training and evaluation: ImageFolder and VOC folders, dedup, split, crops.

Every sample is one face: an image file, a box in that image's pixels and a label (MASK or
NO_MASK).  VOC folders give one sample per annotated box; ImageFolder folders (``with_mask/``,
``without_mask/``) give one sample per image, boxed by the face detector (the largest face) or,
when no face is found, by the whole image.  Exact duplicate files are removed before splitting and
the split is by image, so no image (and no crop of one) is in both train and validation.
"""
import dataclasses
from dataclasses import dataclass, field
import hashlib
import json
import math
import os
from pathlib import Path
import random
import xml.etree.ElementTree as ElementTree

import cv2
import numpy as np

from mask_detection.classifier import crop_square, MASK, NO_MASK

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
FOLDER_CLASSES = {'with_mask': MASK, 'without_mask': NO_MASK}
VOC_CLASSES = ('with_mask', 'without_mask', 'mask_weared_incorrect')
INCORRECT_CHOICES = ('no_mask', 'mask', 'skip')
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = REPO_ROOT / 'training' / 'runs' / 'cache'


class DataError(ValueError):
    """A data folder is missing or has neither the ImageFolder nor the VOC layout."""


@dataclass(frozen=True)
class Sample:
    """One face: ``box`` is (x, y, width, height) in the pixels of ``image_path``."""

    image_path: str
    box: tuple
    label: int
    group: str          # the image's content hash: the unit of the train/validation split
    source: str         # the data folder it came from
    kind: str           # 'voc' (annotated box), 'detected' (face detector) or 'whole' (fallback)
    voc_class: str = ''


@dataclass
class DataSummary:
    """What was loaded: counts per folder, duplicates removed, detector fallbacks."""

    folders: dict = field(default_factory=dict)
    duplicates_removed: int = 0
    conflicting_duplicates: int = 0

    def as_dict(self):
        return {'folders': self.folders, 'duplicates_removed': self.duplicates_removed,
                'conflicting_duplicates': self.conflicting_duplicates}


def file_hash(path):
    """Return the SHA-1 of a file's bytes (exact-duplicate detection)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def list_images(folder):
    """Image files of a folder, sorted; none when the folder does not exist."""
    if not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path):
    """Read a BGR uint8 image; DataError naming the file when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f'cannot read image {path}')
    return image


def detect_layout(folder):
    """Return 'voc' or 'imagefolder' for a data folder; DataError otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f'data folder {folder} does not exist')
    if voc_annotation_dir(folder) is not None:
        return 'voc'
    # One class folder is enough: single-class sets (real-world-masks' vyivanov_mask_types,
    # mdmufid_webcam_nomask) are shipped without the empty other folder.
    if any((folder / name).is_dir() for name in FOLDER_CLASSES):
        return 'imagefolder'
    raise DataError(f'{folder} is neither an ImageFolder (with_mask/, without_mask/) nor a VOC '
                    'folder (annotations/ or Annotations/ with .xml files, plus images)')


def voc_annotation_dir(folder):
    for name in ('annotations', 'Annotations'):
        if (Path(folder) / name).is_dir():
            return Path(folder) / name
    return None


def _voc_image_path(folder, xml_path, filename):
    candidates = []
    for images in ('images', 'JPEGImages', 'Images', '.'):
        base = Path(folder) / images
        if filename:
            candidates.append(base / filename)
        candidates += [base / (xml_path.stem + suffix) for suffix in IMAGE_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple  # (x, y, width, height), clipped to the image


@dataclass(frozen=True)
class VocImage:
    image_path: Path
    width: int
    height: int
    objects: tuple


def read_voc_folder(folder):
    """Return the VocImage list of a VOC folder (boxes clipped to the image, empties dropped)."""
    folder = Path(folder)
    annotations = voc_annotation_dir(folder)
    if annotations is None:
        raise DataError(f'{folder} has no annotations/ or Annotations/ folder')
    images = []
    for xml_path in sorted(annotations.glob('*.xml')):
        try:
            root = ElementTree.parse(xml_path).getroot()
        except ElementTree.ParseError as error:
            raise DataError(f'cannot parse {xml_path}: {error}') from None
        image_path = _voc_image_path(folder, xml_path, root.findtext('filename', '').strip())
        if image_path is None:
            raise DataError(f'no image found for {xml_path} in {folder}')
        width = int(float(root.findtext('size/width', '0') or 0))
        height = int(float(root.findtext('size/height', '0') or 0))
        if width <= 0 or height <= 0:
            height, width = read_image(image_path).shape[:2]
        objects = []
        for obj in root.iter('object'):
            name = obj.findtext('name', '').strip()
            bndbox = obj.find('bndbox')
            if bndbox is None:
                continue
            coords = [float(bndbox.findtext(k, 'nan')) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
            x0, y0 = max(0.0, coords[0]), max(0.0, coords[1])
            # Known flaw of the source set: xmax = width + 1; clip to the image.
            x1, y1 = min(float(width), coords[2]), min(float(height), coords[3])
            if not (x1 > x0 and y1 > y0):
                continue
            objects.append(VocObject(name, (int(round(x0)), int(round(y0)),
                                            max(1, int(round(x1 - x0))),
                                            max(1, int(round(y1 - y0))))))
        images.append(VocImage(image_path, width, height, tuple(objects)))
    if not images:
        raise DataError(f'{annotations} holds no .xml annotation')
    return images


def voc_label(name, incorrect_as='no_mask'):
    """Map a VOC class name to MASK / NO_MASK, or None to skip it."""
    if name == 'with_mask':
        return MASK
    if name == 'without_mask':
        return NO_MASK
    if name == 'mask_weared_incorrect':
        if incorrect_as not in INCORRECT_CHOICES:
            raise ValueError(f'incorrect_as must be one of {INCORRECT_CHOICES}')
        return {'no_mask': NO_MASK, 'mask': MASK, 'skip': None}[incorrect_as]
    return None


class FaceBoxCache:
    """Face detector results per image content hash, kept in a JSON file between runs."""

    def __init__(self, detector_name, cache_dir=DEFAULT_CACHE_DIR, detector=None,
                 settings=None):
        self.detector_name = detector_name
        self.settings = dict(settings or {})
        tag = '_'.join(f'{k}{v}' for k, v in sorted(self.settings.items()))
        tag += f'_max{self.MAX_SIDE}'
        name = f'faces_{detector_name}_{tag.lstrip("_")}.json'
        self.path = Path(cache_dir) / name if cache_dir else None
        self._detector = detector
        self.entries = {}
        if self.path is not None and self.path.is_file():
            self.entries = json.loads(self.path.read_text())

    @property
    def detector(self):
        if self._detector is None:
            from mask_detection.faces import create_face_detector
            self._detector = create_face_detector(self.detector_name, **self.settings)
        return self._detector

    # Larger images are shrunk to this longest side before detection (the real-world-masks
    # crops are twice the face: their faces stay >= 80 px), then padded (black, right and
    # bottom) to multiples of PAD_MULTIPLE: a CenterFace net is built per input size, and
    # photos of a hundred sizes rebuilt one per image (seconds each on a loaded machine).
    MAX_SIDE = 320
    PAD_MULTIPLE = 160

    def boxes(self, digest, image):
        """Return [[x, y, w, h, score], ...] of the faces found in ``image``."""
        if digest not in self.entries:
            height, width = image.shape[:2]
            factor = min(1.0, self.MAX_SIDE / max(height, width))
            if factor < 1.0:
                image = cv2.resize(image, (max(1, round(width * factor)),
                                           max(1, round(height * factor))),
                                   interpolation=cv2.INTER_AREA)
            step = self.PAD_MULTIPLE
            small_h, small_w = image.shape[:2]
            padded = cv2.copyMakeBorder(image, 0, -small_h % step, 0, -small_w % step,
                                        cv2.BORDER_CONSTANT, value=(0, 0, 0))
            entries = []
            for f in self.detector.detect(padded):
                x0, y0 = f.x / factor, f.y / factor
                x1 = min((f.x + f.width) / factor, width)
                y1 = min((f.y + f.height) / factor, height)
                if x1 - x0 >= 1 and y1 - y0 >= 1:
                    entries.append([int(round(x0)), int(round(y0)), int(round(x1 - x0)),
                                    int(round(y1 - y0)), float(f.score)])
            self.entries[digest] = entries
        return self.entries[digest]

    def save(self):
        """Write the entries, merged with what another run wrote meanwhile (atomic replace)."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_file():
                try:
                    self.entries = {**json.loads(self.path.read_text()), **self.entries}
                except ValueError:
                    pass
            tmp = self.path.with_name(f'{self.path.name}.{os.getpid()}.tmp')
            tmp.write_text(json.dumps(self.entries))
            tmp.replace(self.path)


def largest_face(boxes, min_size=8):
    """Return the (x, y, w, h) of the largest box at least ``min_size`` px, or None."""
    boxes = [b for b in boxes if min(b[2], b[3]) >= min_size]
    if not boxes:
        return None
    x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])[:4]
    return (int(x), int(y), int(w), int(h))


def _progress(iterable, desc, total=None, enabled=True):
    if not enabled:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, desc=desc, total=total, unit='img', leave=False)


def load_samples(folders, face_detector='centerface', incorrect_as='no_mask',
                 cache_dir=DEFAULT_CACHE_DIR, detect_faces=True, progress=True, detector=None,
                 detector_settings=None):
    """Load every face of the given folders; drop exact duplicate files (first one kept).

    Returns ``(samples, DataSummary)``.  A file whose bytes appear under two different labels is
    dropped entirely.  ``detect_faces=False`` boxes ImageFolder images by the whole image.
    """
    summary = DataSummary()
    seen = {}
    records = []   # (digest, sample) before conflict removal
    cache = retry = None
    if detect_faces:
        cache = FaceBoxCache(face_detector, cache_dir, detector, detector_settings)
        if face_detector == 'centerface' and detector is None:
            # A second, more permissive pass for the images where nothing was found (mostly
            # masked faces, which CenterFace scores lower), before the whole-image fallback.
            retry = FaceBoxCache(face_detector, cache_dir, None,
                                 {**(detector_settings or {}), 'score_threshold': 0.25})
    for folder in folders:
        folder = Path(folder)
        layout = detect_layout(folder)
        counts = {'layout': layout, 'images': 0, 'duplicates': 0,
                  'samples': {'mask': 0, 'no_mask': 0}}
        if layout == 'voc':
            voc_images = read_voc_folder(folder)
            for voc in _progress(voc_images, f'reading {folder.name}', enabled=progress):
                digest = file_hash(voc.image_path)
                if digest in seen:
                    counts['duplicates'] += 1
                    continue
                seen[digest] = None
                counts['images'] += 1
                for obj in voc.objects:
                    label = voc_label(obj.name, incorrect_as)
                    if label is None:
                        continue
                    records.append((digest, Sample(str(voc.image_path), obj.box, label, digest,
                                                   str(folder), 'voc', obj.name)))
        else:
            counts['detected'] = {'mask': 0, 'no_mask': 0}
            counts['whole_image_fallback'] = {'mask': 0, 'no_mask': 0}
            for class_name, label in FOLDER_CLASSES.items():
                paths = list_images(folder / class_name)
                for path in _progress(paths, f'{folder.name}/{class_name}', enabled=progress):
                    digest = file_hash(path)
                    if digest in seen:
                        counts['duplicates'] += 1
                        if seen[digest] is not None and seen[digest] != label:
                            seen[digest] = 'conflict'
                        continue
                    seen[digest] = label
                    counts['images'] += 1
                    box, kind = None, 'whole'
                    if cache is not None:
                        image = read_image(path)
                        box = largest_face(cache.boxes(digest, image))
                        if box is None and retry is not None:
                            box = largest_face(retry.boxes(digest, image))
                        kind = 'detected' if box else 'whole'
                    if box is None:
                        height, width = _image_size(path)
                        box = (0, 0, width, height)
                    key = 'detected' if kind == 'detected' else 'whole_image_fallback'
                    counts[key]['mask' if label == MASK else 'no_mask'] += 1
                    records.append((digest, Sample(str(path), box, label, digest, str(folder),
                                                   kind, class_name)))
        summary.folders[str(folder)] = counts
        summary.duplicates_removed += counts['duplicates']
    for used in (cache, retry):
        if used is not None:
            used.save()
    conflicts = {d for d, v in seen.items() if v == 'conflict'}
    summary.conflicting_duplicates = len(conflicts)
    samples = [s for d, s in records if d not in conflicts]
    for sample in samples:
        counts = summary.folders[sample.source]['samples']
        counts['mask' if sample.label == MASK else 'no_mask'] += 1
    return samples, summary


def _image_size(path):
    height, width = read_image(path).shape[:2]
    return height, width


def split_samples(samples, val_fraction=0.2, seed=0):
    """Split by image (content hash), per folder and per the image's majority label, seeded.

    Returns ``(train, val)``; no image group has samples on both sides.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    groups = {}
    for sample in samples:
        groups.setdefault(sample.group, []).append(sample)
    strata = {}
    for group, members in groups.items():
        majority = round(sum(s.label for s in members) / len(members))
        strata.setdefault((members[0].source, majority), []).append(group)
    rng = random.Random(seed)
    val_groups = set()
    for key in sorted(strata):
        keys = sorted(strata[key])
        rng.shuffle(keys)
        val_groups.update(keys[:int(round(len(keys) * val_fraction))])
    train = [s for s in samples if s.group not in val_groups]
    val = [s for s in samples if s.group in val_groups]
    return train, val


# ---- crops and augmentation ------------------------------------------------------------------

# Context cut around each training face so that jitter, rotation and the crop margin stay inside.
CONTEXT_SCALE = 2.2


@dataclass
class Region:
    """A cached context crop: uint8 BGR ``image`` and the face ``box`` in its pixels."""

    image: np.ndarray
    box: tuple
    label: int


def cut_region(bgr, box, max_box_side):
    """Cut the square context around ``box`` (black outside); shrink so box side <= max_box_side.

    Returns a Region whose box is in the region's pixels.
    """
    x, y, w, h = box
    side = max(w, h)
    margin = (CONTEXT_SCALE - 1.0) / 2.0
    region = crop_square(bgr, box, margin)
    full = region.shape[0]
    # The same arithmetic as crop_square, so the box lands on the same pixels.
    left = math.floor(x + w / 2.0 - side * (1.0 + 2.0 * margin) / 2.0 + 0.5)
    top = math.floor(y + h / 2.0 - side * (1.0 + 2.0 * margin) / 2.0 + 0.5)
    rx, ry = x - left, y - top
    scale = 1.0
    if side > max_box_side:
        scale = max_box_side / side
        size = max(1, int(round(full * scale)))
        region = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
    return Region(np.ascontiguousarray(region),
                  (rx * scale, ry * scale, w * scale, h * scale), None)


@dataclass
class AugmentConfig:
    """Training-time augmentation strengths (probabilities and ranges)."""

    flip: float = 0.5
    scale_jitter: float = 0.15      # box side multiplied by exp(U(-s, s))
    shift_jitter: float = 0.08      # box centre moved by U(-s, s) * side
    aspect_jitter: float = 0.1
    rotation_deg: float = 12.0
    rotation_p: float = 0.4
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.35
    hue_deg: float = 6.0
    colour_p: float = 0.8
    grey_p: float = 0.05
    blur_p: float = 0.2
    jpeg_p: float = 0.3
    jpeg_quality: tuple = (30, 95)
    noise_p: float = 0.15
    small_face_p: float = 0.5       # shrink the region so the face is 10-48 px, like scene faces
    small_face_range: tuple = (10, 48)
    webcam_p: float = 0.0           # webcam conditions (training/conditions.py), 1 or 2 of them
    darker_skin_p: float = 0.0      # conditions.darker_skin, before every other augmentation
    strong_cast_p: float = 0.0      # conditions.strong_colour_cast (a blue webcam, ratios to 3x)
    channel_shuffle_p: float = 0.0  # channels permuted last: hue alone cannot tell mask from skin


def augment_region(region, rng, config):
    """Return (augmented uint8 BGR image, jittered box) for one training sample."""
    image = region.image
    x, y, w, h = region.box
    if config.darker_skin_p and rng.random() < config.darker_skin_p:
        # The person before the camera: skin first, then optics and the camera's own effects.
        from training.conditions import darker_skin
        image = darker_skin(image, region.box, rng)
    cx, cy = x + w / 2.0, y + h / 2.0
    if config.small_face_p and rng.random() < config.small_face_p:
        target = rng.uniform(*config.small_face_range)
        factor = target / max(w, h)
        if factor < 1.0:
            size = max(4, int(round(image.shape[0] * factor)))
            factor = size / image.shape[0]
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            cx, cy, w, h = cx * factor, cy * factor, w * factor, h * factor
    if rng.random() < config.rotation_p and config.rotation_deg:
        angle = rng.uniform(-config.rotation_deg, config.rotation_deg)
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        image = cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < config.flip:
        image = image[:, ::-1]
        cx = image.shape[1] - cx
    scale = np.exp(rng.uniform(-config.scale_jitter, config.scale_jitter))
    aspect = np.exp(rng.uniform(-config.aspect_jitter, config.aspect_jitter))
    w, h = w * scale * aspect, h * scale / aspect
    side = max(w, h)
    cx += rng.uniform(-config.shift_jitter, config.shift_jitter) * side
    cy += rng.uniform(-config.shift_jitter, config.shift_jitter) * side
    image = _photometric(np.ascontiguousarray(image), rng, config)
    box = (cx - w / 2.0, cy - h / 2.0, w, h)
    if config.strong_cast_p and rng.random() < config.strong_cast_p:
        from training.conditions import strong_colour_cast
        image = strong_colour_cast(image, box, rng)
    if config.webcam_p and rng.random() < config.webcam_p:
        from training.conditions import random_conditions
        image = random_conditions(image, box, rng)
    if config.channel_shuffle_p and rng.random() < config.channel_shuffle_p:
        # One of the five orders other than BGR itself, so p is the share of faces recoloured.
        order = _CHANNEL_ORDERS[int(rng.integers(len(_CHANNEL_ORDERS)))]
        image = np.ascontiguousarray(image[..., order])
    return image, box


_CHANNEL_ORDERS = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def _photometric(image, rng, config):
    if rng.random() < config.colour_p:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-config.hue_deg, config.hue_deg) / 2.0) % 180
        hsv[..., 1] *= 1.0 + rng.uniform(-config.saturation, config.saturation)
        image = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
        image = image.astype(np.float32)
        contrast = 1.0 + rng.uniform(-config.contrast, config.contrast)
        brightness = 1.0 + rng.uniform(-config.brightness, config.brightness)
        mean = image.mean()
        image = (image - mean) * contrast + mean * brightness
        image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < config.grey_p:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < config.blur_p:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.4))
    if rng.random() < config.noise_p:
        noise = rng.normal(0.0, rng.uniform(2.0, 8.0), image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg_p:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return image


def build_regions(samples, max_box_side, progress=True):
    """Cut the cached training context of every sample, reading each image once."""
    by_image = {}
    for index, sample in enumerate(samples):
        by_image.setdefault(sample.image_path, []).append(index)
    regions = [None] * len(samples)
    for path, indices in _progress(by_image.items(), 'cutting crops', len(by_image), progress):
        image = read_image(path)
        for index in indices:
            region = cut_region(image, samples[index].box, max_box_side)
            region.label = samples[index].label
            regions[index] = region
    return regions


def save_regions(path, regions, specs=None, sources=None):
    """Write regions to an .npz of plain arrays (no pickle): one pixel buffer, shapes, boxes."""
    shapes = np.array([r.image.shape for r in regions], np.int32).reshape(-1, 3)
    flat = np.concatenate([r.image.reshape(-1) for r in regions]) if regions else np.zeros(
        0, np.uint8)
    np.savez(path, shapes=shapes, pixels=flat,
             boxes=np.array([r.box for r in regions], np.float64).reshape(-1, 4),
             labels=np.array([r.label for r in regions], np.int64),
             specs=np.array(specs if specs is not None else [''] * len(regions), dtype=str),
             sources=np.array(sources if sources is not None else [''] * len(regions),
                              dtype=str))


def load_regions(path):
    """Read save_regions' file; return (regions, specs, sources)."""
    with np.load(path, allow_pickle=False) as stored:
        regions, offset = [], 0
        pixels = stored['pixels']
        for shape, box, label in zip(stored['shapes'], stored['boxes'], stored['labels']):
            size = int(np.prod(shape))
            regions.append(Region(pixels[offset:offset + size].reshape(shape),
                                  tuple(float(v) for v in box), int(label)))
            offset += size
        return regions, [str(v) for v in stored['specs']], [str(v) for v in stored['sources']]


def cached_regions(samples, max_box_side, cache_dir=DEFAULT_CACHE_DIR, progress=True):
    """build_regions, kept on disk between runs (keyed by the faces and the size)."""
    key = hashlib.sha1(json.dumps([max_box_side, [
        [s.group, s.label, [round(float(v), 2) for v in s.box]] for s in samples]]).encode())
    path = Path(cache_dir) / f'regions_{key.hexdigest()[:16]}.npz' if cache_dir else None
    if path is not None and path.is_file():
        return load_regions(path)[0]
    regions = build_regions(samples, max_box_side, progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_regions(path, regions)
    return regions


# Landmarks are looked for on the face's context scaled to this face side (as the held-out
# breakdown does): the roll does not depend on the scale, and small inputs are fast.
LANDMARK_FACE_SIDE = 112


def landmark_detector():
    """Return the CenterFace detector that finds the five points of a known face."""
    from mask_detection.faces import CenterFaceDetector, CenterFaceSettings
    return CenterFaceDetector(CenterFaceSettings(scale=1.0, score_threshold=0.3))


def upright_roll(detector, image, box):
    """Return the angle (degrees) the pipeline turns this face by (classifier.upright_angle).

    0 when the landmarks are not found, as in MaskClassifier.roll_of.
    """
    # The face's context, as training cuts it: the roll does not depend on the scale.
    region = cut_region(image, box, LANDMARK_FACE_SIDE)
    return _upright_angle(detector, region.image, region.box, min(box[2], box[3]))


def _upright_angle(detector, image, box, side):
    """classifier.upright_angle of the face at ``box`` in ``image`` (its points found again)."""
    from mask_detection.classifier import upright_angle
    from training.synthetic import find_points
    return upright_angle(find_points(detector, image, box), side)


def upright_regions(regions, detector=None, progress=True):
    """Return ``regions`` with each face turned upright about its box's centre (as at inference).

    The training side of MaskClassifier's ``align_faces``: each face is turned by
    classifier.upright_angle of its landmarks (0: kept as it is).  A region's box is in
    the photo's pixels unless it was larger than the region's limit (then it is over
    MIN_ALIGN_SIDE anyway).  Also returns how many were turned.
    """
    detector = detector or landmark_detector()
    out, turned = [], 0
    for region in _progress(regions, 'turning faces upright', len(regions), progress):
        roll = _upright_angle(detector, region.image, region.box,
                              min(region.box[2], region.box[3]))
        if not roll:
            out.append(region)
            continue
        x, y, w, h = region.box
        matrix = cv2.getRotationMatrix2D((x + w / 2.0, y + h / 2.0), roll, 1.0)
        image = cv2.warpAffine(region.image, matrix, region.image.shape[1::-1],
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        out.append(dataclasses.replace(region, image=image))
        turned += 1
    return out, turned


def eval_tensors(samples, preprocessing, progress=True, align_faces=False, detector=None):
    """Return (float32 (N, 3, S, S) inputs, int64 labels) exactly as inference computes them.

    Each image is read from disk and every face goes through preprocess_face with the model's
    preprocessing settings: the validation path is the inference path.  ``align_faces``: rolled
    faces are turned upright by their landmarks (found again, see upright_roll), as the
    pipeline does.
    """
    from mask_detection.classifier import preprocess_face
    if align_faces and detector is None:
        detector = landmark_detector()
    size = preprocessing['input_size']
    inputs = np.empty((len(samples), 3, size, size), dtype=np.float32)
    labels = np.array([s.label for s in samples], dtype=np.int64)
    by_image = {}
    for index, sample in enumerate(samples):
        by_image.setdefault(sample.image_path, []).append(index)
    for path, indices in _progress(by_image.items(), 'validation crops', len(by_image), progress):
        image = read_image(path)
        for index in indices:
            box = samples[index].box
            roll = upright_roll(detector, image, box) if align_faces else 0.0
            inputs[index] = preprocess_face(image, box, roll=roll, **preprocessing)
    return inputs, labels
