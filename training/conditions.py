"""Webcam conditions: what a robot's camera does to a face that a daylight photo does not.

Each condition takes a uint8 BGR image, the face box ``(x, y, w, h)`` in it and a numpy
Generator, and returns a new image of the same size.  Training draws them at random
(``random_conditions``); evaluation applies each one to held-out faces at a fixed strength
(``CONDITIONS``, seeded) to report accuracy per condition.
"""
import cv2
import numpy as np


def _face_weight(shape_hw, box, softness=0.35):
    """Float map, 1 on an ellipse around the face, falling smoothly to 0 outside it."""
    h, w = shape_hw
    x, y, bw, bh = box
    cx, cy = x + bw / 2.0, y + bh / 2.0
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xs - cx) / max(1.0, 0.62 * bw)) ** 2 + ((ys - cy) / max(1.0, 0.7 * bh)) ** 2)
    return np.clip((1.0 + softness - r) / softness, 0.0, 1.0)


def backlight(image, box, rng, face_gain=None):
    """Light the scene from behind (a window, a lamp): background washed out, face dark."""
    gain = face_gain if face_gain is not None else rng.uniform(0.25, 0.55)
    weight = _face_weight(image.shape[:2], box)[..., None]
    img = image.astype(np.float32)
    bright = 255.0 - (255.0 - img) * rng.uniform(0.15, 0.45)
    # The camera's exposure is set by the bright background, so the face falls dark and flat.
    face = img * gain
    out = face * weight + bright * (1.0 - weight)
    # Glare bleeding over the face's edge.
    glare = cv2.GaussianBlur(np.ascontiguousarray(1.0 - weight[..., 0]), (0, 0),
                             max(1.0, 0.15 * max(box[2], box[3])))
    out += glare[..., None] * rng.uniform(10, 40)
    return np.clip(out, 0, 255).astype(np.uint8)


def darker_skin(image, box, rng, gamma=None):
    """Render the face as darker skin: a gamma curve on the face's ellipse only.

    A gamma (not a gain) darkens the mid-tones most and keeps highlights, as on darker skin, so
    lips, nostrils and eyes keep their shape while the face turns as dark as a black mask; the
    label does not change.  The data sets hold few dark-skinned unmasked faces, and the model
    learned "dark lower face = mask" from them (issue 14: hiluf_webcam).
    """
    gamma = gamma if gamma is not None else rng.uniform(1.5, 2.8)
    weight = _face_weight(image.shape[:2], box, softness=0.25)[..., None]
    img = image.astype(np.float32)
    dark = 255.0 * (img / 255.0) ** gamma
    out = dark * weight + img * (1.0 - weight)
    return np.clip(out, 0, 255).astype(np.uint8)


def low_light(image, box, rng, gain=None, noise=None):
    """Dim the room: low exposure, gamma, the sensor's noise (grain and colour speckle)."""
    gain = gain if gain is not None else rng.uniform(0.12, 0.4)
    sigma = noise if noise is not None else rng.uniform(3.0, 10.0)
    img = (image.astype(np.float32) / 255.0) ** rng.uniform(1.0, 1.3) * 255.0 * gain
    grain = rng.normal(0.0, sigma, image.shape[:2])[..., None]
    chroma = rng.normal(0.0, sigma * 0.6, image.shape)
    out = img + grain + chroma
    if rng.random() < 0.5:
        # Webcams denoise: the grain turns into blotches.
        out = cv2.GaussianBlur(out.astype(np.float32), (0, 0), rng.uniform(0.5, 1.0))
    return np.clip(out, 0, 255).astype(np.uint8)


def small_upscaled(image, box, rng, face_px=None):
    """Enlarge a low-resolution frame: the face seen at ``face_px`` pixels, then scaled up."""
    target = face_px if face_px is not None else rng.uniform(14, 36)
    factor = min(1.0, target / max(1.0, max(box[2], box[3])))
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(2, int(round(w * factor))), max(2, int(round(h * factor)))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def colour_cast(image, box, rng, gains=None):
    """Tint the image as a wrong white balance does: blue, green, orange or magenta."""
    if gains is None:
        gains = 1.0 + rng.uniform(-0.3, 0.3, 3)
    out = image.astype(np.float32) * np.asarray(gains, np.float32)[None, None, :]
    return np.clip(out, 0, 255).astype(np.uint8)


def strong_colour_cast(image, box, rng, gains=None):
    """Tint the image as a badly white-balanced webcam does: channel ratios up to 3x.

    A dim room's webcam can render skin bluer than it is red (hiluf_webcam's unmasked faces:
    mean blue / red 1.5, against about 0.65 in daylight photos), far outside colour_cast's
    +-30 %: without such faces in training, a blue-tinted face passes for a navy mask.
    """
    if gains is None:
        gains = np.exp(rng.uniform(-0.55, 0.55, 3))
    return colour_cast(image, box, rng, gains)


def motion_blur(image, box, rng, length=None, angle=None):
    """Blur along a line, as a head or camera moving during the exposure does."""
    size = length if length is not None else rng.uniform(0.04, 0.12) * max(box[2], box[3])
    size = max(3, int(round(size)) | 1)
    angle = angle if angle is not None else rng.uniform(0, 180)
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (size, size))
    kernel /= max(1e-6, kernel.sum())
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def codec(image, box, rng, quality=None):
    """Add video-codec artefacts: halved chroma resolution, coarse 8x8 block quantisation."""
    quality = int(quality if quality is not None else rng.integers(8, 35))
    ycc = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    h, w = image.shape[:2]
    for channel in (1, 2):
        half = cv2.resize(ycc[..., channel], (max(1, w // 2), max(1, h // 2)),
                          interpolation=cv2.INTER_AREA)
        ycc[..., channel] = cv2.resize(half, (w, h), interpolation=cv2.INTER_NEAREST)
    out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)
    ok, encoded = cv2.imencode('.jpg', out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else out


# Fixed strengths for evaluation: a condition at a typical severity, same for every model.
CONDITIONS = {
    'backlight': lambda image, box, rng: backlight(image, box, rng, face_gain=0.35),
    'low light + noise': lambda image, box, rng: low_light(image, box, rng, gain=0.22, noise=7.0),
    'small frame upscaled': lambda image, box, rng: small_upscaled(image, box, rng, face_px=20),
    'colour cast': lambda image, box, rng: colour_cast(
        image, box, rng, gains=(1.25, 0.95, 0.75) if rng.random() < 0.5 else (0.75, 1.0, 1.25)),
    'strong blue cast': lambda image, box, rng: strong_colour_cast(
        image, box, rng, gains=(1.6, 1.0, 0.65)),
    'motion blur': lambda image, box, rng: motion_blur(
        image, box, rng, length=0.09 * max(box[2], box[3]), angle=rng.uniform(0, 180)),
    'codec artefacts': lambda image, box, rng: codec(image, box, rng, quality=15),
    'darker skin (gamma 2.2)': lambda image, box, rng: darker_skin(image, box, rng, gamma=2.2),
}

RANDOM_CONDITIONS = (backlight, low_light, small_upscaled, colour_cast, motion_blur, codec)


def random_conditions(image, box, rng, max_conditions=2):
    """Apply one or two conditions, drawn at random, at random strengths."""
    count = 1 + int(rng.random() < 0.5) if max_conditions > 1 else 1
    order = rng.permutation(len(RANDOM_CONDITIONS))[:count]
    # Lighting first, then optics, then the encoder: the order a camera applies them.
    for index in sorted(order):
        image = RANDOM_CONDITIONS[index](image, box, rng)
    return image


# A face box whose mean grey is below this is 'dim' (evaluation bins, training weights).
DIM_GREY = 60


def darkness(image, box):
    """Mean grey level of the face box (0-255): a measure of how dim a face is."""
    x, y, w, h = (int(round(v)) for v in box)
    patch = image[max(0, y):max(0, y) + max(1, h), max(0, x):max(0, x) + max(1, w)]
    if patch.size == 0:
        return float('nan')
    return float(cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).mean())
