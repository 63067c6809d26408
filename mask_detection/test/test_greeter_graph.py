"""greeter_node on a real DDS graph: VisitorEvent messages in, greetings (text and WAV) out."""
import shutil
import subprocess
import wave

from conftest import ROOT, ros_domain_id
from graph_utils import GraphClient, NodeProcess
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
import yaml

from mask_detection.qos import visitor_events_qos
from mask_detection_msgs.msg import MaskDetection, VisitorEvent

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
# As detector_node publishes them: greeter_node subscribes transient local, which a volatile
# publisher does not serve.
EVENTS_QOS = visitor_events_qos()
PHRASES = yaml.safe_load(
    (ROOT / 'mask_detection' / 'config' / 'greetings.yaml').read_text())['languages']


def _event(track_id, kind, label):
    msg = VisitorEvent(track_id=track_id, event=kind, label=label, confidence=0.9,
                       x=10, y=20, width=80, height=100)
    msg.header.frame_id = 'camera'
    return msg


def _texts(greetings):
    return [msg.data for msg in greetings]


@pytest.mark.graph
@pytest.mark.parametrize('language', ['en', 'de'])
def test_greetings_for_appear_change_and_leave_once_each(tmp_path, language):
    phrases = PHRASES[language]
    domain = ros_domain_id()
    with GraphClient(domain) as client, NodeProcess(
            'greeter_node', domain, tmp_path,
            params={'quiet_period': 0.0, 'language': language}) as greeter:
        greetings = client.collect(String, 'greeting', RELIABLE)
        publisher = client.publisher(VisitorEvent, 'visitor_events', EVENTS_QOS)
        # Repeated until heard (discovery): the repeats themselves must not be greeted again.
        appeared = _event(1, VisitorEvent.VISITOR_APPEARED, MaskDetection.NO_MASK)
        assert client.publish_until(publisher, appeared, lambda: greetings, timeout=20), \
            greeter.log()
        steps = [
            (_event(1, VisitorEvent.MASK_STATE_CHANGED, MaskDetection.UNKNOWN), None),
            (_event(1, VisitorEvent.MASK_STATE_CHANGED, MaskDetection.MASK), 'thanks'),
            (_event(1, VisitorEvent.MASK_STATE_CHANGED, MaskDetection.MASK), None),
            (_event(2, VisitorEvent.VISITOR_APPEARED, MaskDetection.MASK), 'welcome'),
            (_event(1, VisitorEvent.VISITOR_LEFT, MaskDetection.MASK), 'goodbye'),
            (_event(3, VisitorEvent.VISITOR_APPEARED, MaskDetection.UNKNOWN), None),
            (_event(3, VisitorEvent.VISITOR_LEFT, MaskDetection.UNKNOWN), None),
        ]
        expected = [phrases['request']]
        for msg, key in steps:
            publisher.publish(msg)
            if key is not None:
                expected.append(phrases[key])
            assert client.spin_until(lambda: len(greetings) >= len(expected), timeout=10), \
                greeter.log()
        client.spin_for(1.5)        # anything more would be a repeat
        assert greeter.stop() == 0, greeter.log()
    assert _texts(greetings) == expected, greeter.log()


@pytest.mark.graph
def test_quiet_period_greets_a_flickering_visitor_once(tmp_path):
    phrases = PHRASES['en']
    domain = ros_domain_id()
    with GraphClient(domain) as client, NodeProcess(
            'greeter_node', domain, tmp_path, params={'quiet_period': 2.0}) as greeter:
        greetings = client.collect(String, 'greeting', RELIABLE)
        publisher = client.publisher(VisitorEvent, 'visitor_events', EVENTS_QOS)
        appeared = _event(5, VisitorEvent.VISITOR_APPEARED, MaskDetection.MASK)
        assert client.publish_until(publisher, appeared, lambda: greetings, timeout=20)
        for label in (MaskDetection.NO_MASK, MaskDetection.MASK, MaskDetection.NO_MASK):
            publisher.publish(_event(5, VisitorEvent.MASK_STATE_CHANGED, label))
            client.spin_for(0.2)
        assert _texts(greetings) == [phrases['welcome']], 'greeted inside the quiet period'
        # NO_MASK still holds when the quiet period ends: the request follows, once.
        assert client.spin_until(lambda: len(greetings) >= 2, timeout=10), greeter.log()
        client.spin_for(1.0)
        assert greeter.stop() == 0, greeter.log()
    assert _texts(greetings) == [phrases['welcome'], phrases['request']]


@pytest.mark.graph
def test_spoken_greetings_are_non_silent_wav_files(tmp_path):
    if shutil.which('espeak-ng') is None:
        pytest.skip('espeak-ng is not installed (apt-get install espeak-ng); .ci/run installs it')
    wav_dir = tmp_path / 'speech'
    domain = ros_domain_id()
    with GraphClient(domain) as client, NodeProcess(
            'greeter_node', domain, tmp_path,
            params={'speak': True, 'speech_wav_dir': str(wav_dir)}) as greeter:
        greetings = client.collect(String, 'greeting', RELIABLE)
        publisher = client.publisher(VisitorEvent, 'visitor_events', EVENTS_QOS)
        appeared = _event(1, VisitorEvent.VISITOR_APPEARED, MaskDetection.NO_MASK)
        assert client.publish_until(publisher, appeared, lambda: greetings, timeout=20)
        publisher.publish(_event(2, VisitorEvent.VISITOR_APPEARED, MaskDetection.MASK))
        assert client.spin_until(lambda: len(greetings) >= 2, timeout=10)
        assert greeter.wait_for_log(r'spoken to .*greeting-0002\.wav', 30), greeter.log()
        assert greeter.stop() == 0, greeter.log()
    files = sorted(wav_dir.glob('*.wav'))
    assert [f.name for f in files] == ['greeting-0001.wav', 'greeting-0002.wav']
    for path in files:
        with wave.open(str(path)) as wav:
            rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
        samples = np.frombuffer(frames, '<i2').astype(np.float64) / 32768.0
        assert len(samples) / rate > 1.0, f'{path.name}: shorter than a sentence'
        assert np.sqrt(np.mean(samples ** 2)) > 0.01, f'{path.name} is silent'
    if shutil.which('sox'):     # a second opinion on the audio, from sox
        stats = subprocess.run(['sox', str(files[0]), '-n', 'stat'], capture_output=True,
                               text=True).stderr
        rms = float(next(line.split(':')[1] for line in stats.splitlines()
                         if line.startswith('RMS     amplitude')))
        assert rms > 0.01, stats
