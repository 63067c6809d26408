"""The live view in a real browser: headless Chromium (selenium) on the real nodes.

camera_node plays the built-in demo video (real photos, moving camera) in a loop, detector_node
processes it, viewer_node serves the page.  Needs Debian's ``chromium`` and ``chromium-driver``
(.ci/run installs them); without them the tests skip, saying so.

``VIEWER_SCREENSHOT=docs/viewer.png`` also writes the page's screenshot there (the README's).
"""
import io
import os
from pathlib import Path
import re
import shutil
import time

from conftest import ros_domain_id, shipped_model_path
import cv2
from graph_utils import NodeProcess
import numpy as np
import pytest

from demo import video as demo_video
from tools.mjpeg_client import get_state

pytestmark = [pytest.mark.graph, pytest.mark.slow]

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome')
URL_PATTERN = r'live view at (http://\S+/) '
CLIP = demo_video.VideoSpec()     # the demo's 24 s clip: it opens on both faces


def _browser_paths():
    browser = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    driver = shutil.which('chromedriver')
    if browser is None or driver is None:
        pytest.skip('headless browser test: Debian packages chromium and chromium-driver are '
                    'not installed (apt-get install chromium chromium-driver; .ci/run does it)')
    return browser, driver


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    binary, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # A closed network: no first-run, sync, component or background fetches.
    for argument in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                     '--no-first-run', '--disable-background-networking',
                     '--disable-component-update', '--disable-sync',
                     '--disable-dev-shm-usage', '--window-size=1280,820',
                     f'--user-data-dir={tmp_path / "chromium-profile"}'):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def live_graph(tmp_path):
    """camera_node (demo video, looping) -> detector_node -> viewer_node; yields the URL.

    The camera starts once the detector listens, so the tracker sees the clip from its start
    (at the loop's jump, tracks keep their labels for a moment: right, but confusing).
    """
    model = shipped_model_path()  # fails, not skips, when the committed model is missing
    video = demo_video.demo_video(CLIP, cache_dir=tmp_path / 'video')
    domain = ros_domain_id()
    with NodeProcess('detector_node', domain, tmp_path, remaps={'image': 'image_raw'},
                     params={'model_path': str(model)}) as detector, \
            NodeProcess('viewer_node', domain, tmp_path, params={'port': 0}) as viewer, \
            NodeProcess('camera_node', domain, tmp_path,
                        params={'source': str(video.path), 'loop': True,
                                'wait_for_subscribers': 1}) as camera:
        assert viewer.wait_for_log(URL_PATTERN, 30), viewer.log()
        yield re.search(URL_PATTERN, viewer.log()).group(1), (detector, viewer, camera)
        for process in (detector, viewer, camera):
            assert process.running, process.log_tail()


def _wait(driver, condition, timeout, message):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        pytest.fail(f'{message} within {timeout} s')


def _stream_pixels(driver):
    png = driver.find_element('id', 'stream').screenshot_as_png
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def test_page_shows_the_stream_and_a_visitor_from_the_video(browser, live_graph, tmp_path):
    url, processes = live_graph
    logs = lambda: '\n'.join(p.log_tail(6) for p in processes)  # noqa: E731
    browser.get(url)
    assert browser.title == 'mask_detection live view'
    # The stream plays: the <img> decoded a 640x480 frame and the overlay went away.
    _wait(browser, lambda d: d.execute_script(
        'const img = document.getElementById("stream");'
        'return img.complete && img.naturalWidth === 640 && img.naturalHeight === 480 '
        '&& document.getElementById("overlay").hidden;'), 90,
        'no frame of the video appeared in the page\n' + logs())
    # The camera pans and zooms: the shown frames change.
    first = _stream_pixels(browser)
    changed = _wait(browser, lambda d: float(np.mean(cv2.absdiff(first, _stream_pixels(d))))
                    > 3.0 or None, 20, 'the stream in the page did not change')
    assert changed
    # A visitor of the video appears in the list, with its id, mask state and time present
    # (read in one script: the page re-renders the rows twice a second).
    rows = _wait(browser, lambda d: d.execute_script(
        'return Array.from(document.querySelectorAll("#visitors tr"), '
        'row => [Number(row.dataset.trackId), row.innerText]);') or None,
        60, 'no visitor appeared in the list\n' + logs())
    for _, text in rows:
        assert re.match(r'#\d+\s+(mask|no mask|unknown)\s+\d+ %\s+\d+\.\d s$', text), text
    track_ids = {track_id for track_id, _ in rows}
    state = get_state(url)
    seen = {visitor['track_id'] for visitor in state['visitors']} | {
        event['track_id'] for event in state['events']}
    assert track_ids & seen, (track_ids, state)
    _wait(browser, lambda d: 'appeared' in d.find_element('id', 'events').text, 30,
          'no visitor event listed')
    stats = browser.find_element('id', 'stats').text
    assert 'detections' in stats and 'Hz' in stats, stats
    assert browser.find_element('id', 'no-visitors').is_displayed() is False

    target = os.environ.get('VIEWER_SCREENSHOT')
    path = Path(target) if target else tmp_path / 'viewer.png'
    if target:
        # For the README: a moment with a masked and an unmasked visitor, both whole faces.
        _wait(browser, lambda d: _two_whole_visitors(get_state(url)), 90,
              'a masked and an unmasked visitor at once')
        time.sleep(0.6)      # the page renders state.json twice a second
    _save_small_png(browser.get_screenshot_as_png(), path)
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] >= 1000


def _two_whole_visitors(state):
    visitors = [v for v in state['visitors'] if v['width'] >= 80 and v['x'] >= 0
                and v['x'] + v['width'] <= state['images']['width']
                and (v['seconds_present'] or 0) >= 1.0]
    return {v['label_name'] for v in visitors} >= {'mask', 'no_mask'}


def _save_small_png(png, path):
    """Save a screenshot as a 256-colour PNG (about a third of the size: for the docs)."""
    from PIL import Image as PilImage
    image = PilImage.open(io.BytesIO(png)).convert('RGB')
    image.quantize(colors=256, method=PilImage.Quantize.MEDIANCUT,
                   dither=PilImage.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def test_page_without_images_loads_and_says_so(browser, tmp_path):
    """viewer_node alone: the page finishes loading (the empty stream does not hold it)."""
    with NodeProcess('viewer_node', ros_domain_id(), tmp_path, params={'port': 0}) as viewer:
        assert viewer.wait_for_log(URL_PATTERN, 30), viewer.log()
        browser.get(re.search(URL_PATTERN, viewer.log()).group(1))     # 30 s page-load limit
        _wait(browser, lambda d: 'no images yet' in d.find_element('id', 'overlay').text
              and d.find_element('id', 'overlay').is_displayed(), 10, 'no "no images yet"')
        _wait(browser, lambda d: 'updated' in d.find_element('id', 'status').text, 10,
              'the page did not read state.json')
        assert browser.find_element('id', 'no-visitors').text == 'nobody in view'
        assert viewer.running, viewer.log()
