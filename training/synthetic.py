"""Synthetic training faces: masks drawn on real unmasked faces (mask_detection.mask_synthesis).

For each unmasked training face large enough for its landmarks to be found (CenterFace's five
points, detected again on the cached context region), ``variants`` renderings are made with
random mask kinds, colours and placements: worn over nose and mouth (label mask) or under the nose
/ on the chin (label no mask).  With ``beard_p``, faces also get facial hair (full beard,
goatee, moustache or stubble): drawn under some of the masks, and alone as one more unmasked
rendering, so that dark hair on the lower face is not taken for a dark mask.  Renderings are
cached on disk (training/runs/cache, plain numpy arrays, no pickle) keyed by the faces and
settings, so a second run costs nothing.
"""
from dataclasses import dataclass
import hashlib
import json
from pathlib import Path

import numpy as np

from mask_detection.classifier import NO_MASK
from mask_detection.mask_synthesis import (beard_face, BEARD_STYLES, mask_face, MaskSpec,
                                           random_mask_spec)
from training import data as data_lib

# Bump when the rendering or the selection changes, so that cached renderings are rebuilt.
SYNTHESIS_VERSION = 1
MIN_FACE_SIDE = 40


@dataclass
class SyntheticRegion(data_lib.Region):
    """A Region with a drawn mask; ``spec`` names kind/colour/placement, ``source`` the face."""

    spec: str = ''
    source: str = ''


def _iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / max(1e-9, aw * ah + bw * bh - inter)


def find_points(detector, image, box, min_iou=0.3):
    """Return the five landmarks of the face matching ``box`` in ``image``, or None."""
    best, best_iou = None, min_iou
    for face, points in detector.detect_landmarks(image):
        iou = _iou((face.x, face.y, face.width, face.height), box)
        if iou >= best_iou:
            best, best_iou = points, iou
    return best


def _cache_key(samples, variants, wrong_p, seed, beard_p=0.0, upright=False):
    settings = [SYNTHESIS_VERSION, variants, wrong_p, seed]
    if beard_p:
        # Only when used, so that caches made before beards existed stay valid.
        settings.append(['beard', beard_p])
    if upright:
        settings.append('upright')
    digest = hashlib.sha1(json.dumps(settings + [[
        [s.group, [round(float(v), 1) for v in s.box]] for s in samples]]).encode())
    return digest.hexdigest()[:16]


def _save(path, regions):
    data_lib.save_regions(path, regions, [r.spec for r in regions],
                          [r.source for r in regions])


def _load(path):
    regions, specs, sources = data_lib.load_regions(path)
    return [SyntheticRegion(r.image, r.box, r.label, spec, source)
            for r, spec, source in zip(regions, specs, sources)]


def synthesize(samples, regions, variants=2, wrong_p=0.3, seed=0,
               cache_dir=data_lib.DEFAULT_CACHE_DIR, progress=True, detector=None, beard_p=0.0,
               upright=False):
    """Return SyntheticRegions drawn on the unmasked ``samples`` (with their cached regions).

    ``beard_p``: the probability that a rendering gets facial hair under its mask, and that a
    face gets one more rendering with facial hair and no mask (spec ``beard/<style>``).
    ``upright``: the regions were turned upright (data.upright_regions): their own cache.
    Also returns how many faces were used and skipped (too small, landmarks not found).
    """
    chosen = [(s, r) for s, r in zip(samples, regions)
              if s.label == NO_MASK and min(s.box[2], s.box[3]) >= MIN_FACE_SIDE
              and s.voc_class != 'mask_weared_incorrect']
    key = _cache_key([s for s, _ in chosen], variants, wrong_p, seed, beard_p, upright)
    path = Path(cache_dir) / f'synthetic_{key}.npz' if cache_dir else None
    if path is not None and path.is_file():
        out = _load(path)
        return out, {'faces': len({r.source for r in out}), 'cached': str(path)}
    if detector is None:
        detector = data_lib.landmark_detector()
    rng = np.random.default_rng(seed)
    out, used, skipped = [], 0, 0
    items = chosen
    if progress:
        from tqdm import tqdm
        items = tqdm(chosen, desc='drawing masks', unit='face', leave=False)
    for sample, region in items:
        points = find_points(detector, region.image, region.box)
        if points is None:
            skipped += 1
            continue
        used += 1
        source = f'{sample.image_path}#{sample.box}'
        for _ in range(variants):
            spec = random_mask_spec(rng, wrong_p)
            image, name = region.image, spec.name
            if beard_p and rng.random() < beard_p:
                style = _random_beard_style(rng)
                image, name = beard_face(image, points, style, rng), f'beard/{style}+{name}'
            image = mask_face(image, points, spec, rng)
            out.append(SyntheticRegion(image, region.box, spec.label, name, source))
        if beard_p and rng.random() < beard_p:
            style = _random_beard_style(rng)
            out.append(SyntheticRegion(beard_face(region.image, points, style, rng), region.box,
                                       NO_MASK, f'beard/{style}', source))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(path, out)
    return out, {'faces': used, 'skipped_no_landmarks': skipped,
                 'skipped_small_or_incorrect': sum(
                     1 for s in samples if s.label == NO_MASK) - len(chosen)}


def _random_beard_style(rng):
    return BEARD_STYLES[int(rng.integers(len(BEARD_STYLES)))]


def spec_of(name):
    """Return the MaskSpec of a ``[beard/<style>+]kind/colour/placement`` name; None: no mask."""
    mask = name.split('+')[-1]
    if mask.startswith('beard/'):
        return None
    kind, colour, placement = mask.split('/')
    return MaskSpec(kind, colour, placement)
