"""Tiny real data sets built from skimage's astronaut photo (PNG images) for the tests."""
from pathlib import Path

import cv2
import numpy as np
import skimage.data

# The astronaut's face in the 512 x 512 photo.
FACE = (170, 40, 100, 120)


def astronaut_bgr():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def write_voc(folder, name, image, objects):
    """Write images/NAME.png and annotations/NAME.xml with (class, (x0, y0, x1, y1)) objects."""
    folder = Path(folder)
    (folder / 'images').mkdir(parents=True, exist_ok=True)
    (folder / 'annotations').mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / 'images' / f'{name}.png'), image)
    height, width = image.shape[:2]
    parts = [f'<annotation><filename>{name}.png</filename><size><width>{width}</width>'
             f'<height>{height}</height><depth>3</depth></size>']
    for class_name, (x0, y0, x1, y1) in objects:
        parts.append(f'<object><name>{class_name}</name><bndbox><xmin>{x0}</xmin>'
                     f'<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>')
    parts.append('</annotation>')
    (folder / 'annotations' / f'{name}.xml').write_text(''.join(parts))


def make_tiny_voc(tmp_path):
    """Four scene images: the astronaut at three scales (+ an exact duplicate file)."""
    folder = tmp_path / 'voc'
    image = astronaut_bgr()
    x, y, w, h = FACE
    face = (x, y, x + w, y + h)
    write_voc(folder, 'a_full', image, [('without_mask', face),
                                        ('with_mask', (400, 300, 440, 345)),
                                        ('mask_weared_incorrect', (20, 400, 50, 430))])
    half = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    # xmax = width + 1: the source data set's known flaw, clipped on reading.
    write_voc(folder, 'b_half', half, [('without_mask', tuple(v // 2 for v in face)),
                                       ('with_mask', (230, 10, 257, 40))])
    quarter = cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA)
    write_voc(folder, 'c_quarter', quarter, [('without_mask', tuple(v // 4 for v in face))])
    write_voc(folder, 'd_copy', image, [('without_mask', face)])
    return folder


def make_tiny_imagefolder(tmp_path):
    """with_mask/ and without_mask/ PNGs cut from the astronaut photo (faces and non-faces)."""
    folder = tmp_path / 'folder'
    image = astronaut_bgr()
    rng = np.random.default_rng(0)
    for class_name in ('with_mask', 'without_mask'):
        (folder / class_name).mkdir(parents=True)
    x, y, w, h = FACE
    for i in range(6):
        pad = 20 + 10 * i
        crop = image[max(0, y - pad):y + h + pad, max(0, x - pad):x + w + pad]
        cv2.imwrite(str(folder / 'without_mask' / f'face{i}.png'), crop)
        # "Masked": the lower half of the face covered by a light blue surgical-mask patch.
        masked = crop.copy()
        top = min(y, pad) + h // 2
        left = min(x, pad)
        masked[top:top + h // 2, left:left + w] = (230, 200, 160)
        masked = np.clip(masked + rng.normal(0, 3, masked.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / 'with_mask' / f'masked{i}.png'), masked)
    # An exact duplicate inside a class, and one across classes (a labelling conflict).
    (folder / 'without_mask' / 'dup.png').write_bytes(
        (folder / 'without_mask' / 'face0.png').read_bytes())
    (folder / 'with_mask' / 'conflict.png').write_bytes(
        (folder / 'without_mask' / 'face1.png').read_bytes())
    # A picture without any face: the detector finds nothing, the whole image is used.
    cv2.imwrite(str(folder / 'with_mask' / 'noface.png'), image[300:420, 0:120])
    return folder
