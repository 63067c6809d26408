"""greetings.py (phrase choice, the shipped phrases file) and speech.py, without ROS."""
import shutil
import wave

from conftest import ROOT
import numpy as np
import pytest

from mask_detection import greetings, speech
from mask_detection.greetings import (MASK, MASK_STATE_CHANGED, NO_MASK, UNKNOWN,
                                      VISITOR_APPEARED, VISITOR_LEFT)

SHIPPED = ROOT / 'mask_detection' / 'config' / 'greetings.yaml'


@pytest.fixture
def phrases():
    return greetings.Phrases(language='test', voice='en', welcome='W', request='R',
                             thanks='T', goodbye='G')


def keys(said):
    return [greeting.key for greeting in said]


@pytest.mark.parametrize('event, label, greeted, expected', [
    (VISITOR_APPEARED, MASK, None, 'welcome'),
    (VISITOR_APPEARED, NO_MASK, None, 'request'),
    (VISITOR_APPEARED, UNKNOWN, None, None),
    (MASK_STATE_CHANGED, MASK, NO_MASK, 'thanks'),
    (MASK_STATE_CHANGED, MASK, None, 'welcome'),          # appeared UNKNOWN, then a mask
    (MASK_STATE_CHANGED, NO_MASK, MASK, 'request'),       # took it off
    (MASK_STATE_CHANGED, UNKNOWN, MASK, None),
    (MASK_STATE_CHANGED, MASK, MASK, None),               # no repeat while the label holds
    (VISITOR_LEFT, NO_MASK, NO_MASK, 'goodbye'),
    (VISITOR_LEFT, UNKNOWN, None, None),                  # never greeted: nothing to close
])
def test_choose_phrase(event, label, greeted, expected):
    assert greetings.choose_phrase(event, label, greeted) == expected


def test_once_per_visitor_and_state(phrases):
    greeter = greetings.Greeter(phrases, quiet_period=0.0)
    assert keys(greeter.on_event(1, VISITOR_APPEARED, NO_MASK, 0.0)) == ['request']
    assert keys(greeter.on_event(2, VISITOR_APPEARED, MASK, 0.1)) == ['welcome']
    assert keys(greeter.on_event(1, MASK_STATE_CHANGED, UNKNOWN, 1.0)) == []
    assert keys(greeter.on_event(1, MASK_STATE_CHANGED, NO_MASK, 2.0)) == []   # said already
    assert keys(greeter.on_event(1, MASK_STATE_CHANGED, MASK, 3.0)) == ['thanks']
    assert keys(greeter.on_event(1, MASK_STATE_CHANGED, MASK, 4.0)) == []
    assert greeter.due(100.0) == []
    said = greeter.on_event(1, VISITOR_LEFT, MASK, 5.0)
    assert [(g.track_id, g.key, g.text) for g in said] == [(1, 'goodbye', 'G')]
    assert greeter.visitors == 1
    assert keys(greeter.on_event(1, VISITOR_LEFT, MASK, 6.0)) == []     # a duplicate LEFT


def test_quiet_period_holds_back_a_flickering_label(phrases):
    greeter = greetings.Greeter(phrases, quiet_period=3.0)
    assert keys(greeter.on_event(7, VISITOR_APPEARED, NO_MASK, 10.0)) == ['request']
    assert keys(greeter.on_event(7, MASK_STATE_CHANGED, MASK, 11.0)) == []     # too soon
    assert keys(greeter.on_event(7, MASK_STATE_CHANGED, NO_MASK, 11.5)) == []
    assert greeter.due(13.5) == []          # back to the label already greeted: nothing due
    assert keys(greeter.on_event(7, MASK_STATE_CHANGED, MASK, 14.0)) == ['thanks']
    assert keys(greeter.on_event(7, MASK_STATE_CHANGED, NO_MASK, 14.5)) == []
    assert greeter.due(16.9) == []
    assert keys(greeter.due(17.0)) == ['request']   # still without after the quiet period
    assert greeter.due(30.0) == []


def test_empty_phrase_stays_silent():
    quiet = greetings.Phrases(language='x', voice='en', welcome='W', request='R', thanks='T',
                              goodbye='')
    greeter = greetings.Greeter(quiet)
    assert keys(greeter.on_event(1, VISITOR_APPEARED, MASK, 0.0)) == ['welcome']
    assert greeter.on_event(1, VISITOR_LEFT, MASK, 1.0) == []


def test_shipped_phrases_load_in_every_language():
    english = greetings.load_phrases(SHIPPED)
    assert english.language == 'en' and 'mask' in english.welcome.lower()
    assert 'please' in english.request.lower() and 'thank' in english.thanks.lower()
    texts = {greetings.load_phrases(SHIPPED, language).welcome for language in ('en', 'de', 'fr')}
    assert len(texts) == 3


@pytest.mark.parametrize('content, language, message', [
    (None, '', 'cannot read'),
    ('languages: [unclosed', '', 'not valid YAML'),
    ('greeting: hi\n', '', 'no "languages"'),
    ('default_language: en\nlanguages:\n  en: {welcome: a, request: b, thanks: c, '
     'goodbye: d}\n', 'xx', "no language 'xx'"),
    ('default_language: en\nlanguages:\n  en: {welcome: a, request: b}\n', '',
     'thanks, goodbye'),
])
def test_bad_greetings_files_say_what_is_wrong(tmp_path, content, language, message):
    path = tmp_path / 'greetings.yaml'
    if content is not None:
        path.write_text(content)
    with pytest.raises(greetings.GreetingsFileError, match=message):
        greetings.load_phrases(path, language)


def wav_samples(path):
    """Return (sample rate, samples as float in [-1, 1]) of a 16-bit mono WAV file."""
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        frames = wav.readframes(wav.getnframes())
        return wav.getframerate(), np.frombuffer(frames, '<i2').astype(np.float64) / 32768.0


def test_speaker_writes_non_silent_wav_files_in_order(tmp_path):
    if shutil.which('espeak-ng') is None:
        pytest.skip('espeak-ng is not installed (apt-get install espeak-ng); .ci/run installs it')
    spoken, errors = [], []
    speaker = speech.Speaker('en', tmp_path / 'wav', on_error=errors.append,
                             on_spoken=lambda text, path: spoken.append((text, path)))
    first = speaker.say('Welcome! Thank you for wearing a mask.')
    second = speaker.say('Goodbye.')
    speaker.close()
    assert not errors
    assert spoken == [('Welcome! Thank you for wearing a mask.', first), ('Goodbye.', second)]
    rate, long_samples = wav_samples(first)
    _, short_samples = wav_samples(second)
    # Speech, not silence: loud enough, and a longer sentence takes longer to say.
    assert np.sqrt(np.mean(long_samples ** 2)) > 0.01
    assert len(long_samples) / rate > 1.0
    assert len(long_samples) > 1.5 * len(short_samples)


def test_speaker_without_espeak_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv('PATH', '/nonexistent')
    with pytest.raises(speech.SpeechUnavailable, match='apt-get install espeak-ng'):
        speech.Speaker('en')
