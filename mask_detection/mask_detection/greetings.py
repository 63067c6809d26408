"""What a greeting robot says to whom: phrases from a YAML file, chosen from visitor events.

Plain Python (no rclpy): greeter_node feeds it VisitorEvent fields and publishes the result.

- A visitor who appears with a mask is welcomed; one who appears without is asked, politely, to
  put one on; when the label changes to mask after that request, a thank-you.
- Once per visitor and state: nothing is said again while the label holds, nor for UNKNOWN
  (too small or too uncertain to say anything about).
- A goodbye when a greeted visitor leaves (an empty phrase keeps the robot silent).
- Quiet period: after speaking to a visitor, a new label of that visitor is greeted only once
  ``quiet_period`` seconds have passed and only if it still holds, so a flickering label gives
  one greeting instead of a burst.
"""
from dataclasses import dataclass
from pathlib import Path

import yaml

# VisitorEvent.event and MaskDetection.label values (mask_detection_msgs).
VISITOR_APPEARED, MASK_STATE_CHANGED, VISITOR_LEFT = 0, 1, 2
MASK, NO_MASK, UNKNOWN = 0, 1, 2

PHRASE_KEYS = ('welcome', 'request', 'thanks', 'goodbye')


class GreetingsFileError(ValueError):
    """The greetings file is missing, not YAML, or lacks the language or a phrase."""


@dataclass(frozen=True)
class Phrases:
    """The phrases of one language; ``voice`` is the espeak-ng voice that speaks them."""

    language: str
    voice: str
    welcome: str
    request: str
    thanks: str
    goodbye: str

    def text(self, key):
        return getattr(self, key)


def load_phrases(path, language=''):
    """Return the Phrases of ``language`` (empty: the file's default_language) in ``path``."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding='utf-8'))
    except OSError as error:
        raise GreetingsFileError(f'cannot read greetings file {path}: {error}') from error
    except yaml.YAMLError as error:
        raise GreetingsFileError(f'greetings file {path} is not valid YAML: {error}') from error
    if not isinstance(document, dict) or not isinstance(document.get('languages'), dict):
        raise GreetingsFileError(f'greetings file {path}: no "languages" mapping')
    languages = document['languages']
    language = language or document.get('default_language', '')
    if language not in languages:
        raise GreetingsFileError(
            f'greetings file {path} has no language {language!r} (it has: '
            f'{", ".join(sorted(map(str, languages)))})')
    entry = languages[language]
    if not isinstance(entry, dict):
        raise GreetingsFileError(f'greetings file {path}: language {language!r} is not a mapping')
    missing = [key for key in PHRASE_KEYS if not isinstance(entry.get(key), str)]
    if missing:
        raise GreetingsFileError(f'greetings file {path}, language {language!r}: missing or '
                                 f'non-text phrase(s) {", ".join(missing)}')
    return Phrases(language=language, voice=str(entry.get('voice', language)),
                   **{key: entry[key].strip() for key in PHRASE_KEYS})


def choose_phrase(event, label, greeted_label):
    """Return the phrase key for a visitor event, or None to stay quiet.

    ``greeted_label``: the label this visitor was last greeted for; None if not greeted yet.
    """
    if event == VISITOR_LEFT:
        return 'goodbye' if greeted_label is not None else None
    if label == UNKNOWN or label == greeted_label:
        return None
    if label == MASK:
        return 'thanks' if greeted_label == NO_MASK else 'welcome'
    if label == NO_MASK:
        return 'request'
    return None


@dataclass(frozen=True)
class Greeting:
    """One thing to say: to visitor ``track_id``, phrase ``key``, its ``text``."""

    track_id: int
    key: str
    text: str


@dataclass
class _Visitor:
    label: int                  # the label of the last event
    greeted_label: int = None   # the label the visitor was last greeted for
    spoke_at: float = None      # when the last greeting to this visitor was said


class Greeter:
    """Visitor events in, greetings out; remembers what was said to whom."""

    def __init__(self, phrases, quiet_period=0.0):
        if quiet_period < 0:
            raise ValueError(f'quiet_period must be >= 0 s, got {quiet_period}')
        self.phrases = phrases
        self.quiet_period = float(quiet_period)
        self._visitors = {}

    @property
    def visitors(self):
        return len(self._visitors)

    def on_event(self, track_id, event, label, now):
        """Take one visitor event at time ``now`` (s); return the greetings to say now."""
        visitor = self._visitors.get(track_id)
        if event == VISITOR_LEFT:
            self._visitors.pop(track_id, None)
            key = choose_phrase(event, label, visitor.greeted_label if visitor else None)
            return self._say(track_id, key, None, now)
        if visitor is None:
            visitor = self._visitors[track_id] = _Visitor(label)
        visitor.label = label
        return self._greet_if_due(track_id, visitor, now)

    def due(self, now):
        """Return the greetings held back by the quiet period that are due at ``now``."""
        greetings = []
        for track_id, visitor in list(self._visitors.items()):
            greetings += self._greet_if_due(track_id, visitor, now)
        return greetings

    def _greet_if_due(self, track_id, visitor, now):
        key = choose_phrase(MASK_STATE_CHANGED, visitor.label, visitor.greeted_label)
        if key is None:
            return []
        if visitor.spoke_at is not None and now - visitor.spoke_at < self.quiet_period:
            return []       # held back: due() says it later if the label still holds
        return self._say(track_id, key, visitor, now)

    def _say(self, track_id, key, visitor, now):
        if key is None:
            return []
        if visitor is not None:
            visitor.greeted_label, visitor.spoke_at = visitor.label, now
        text = self.phrases.text(key)
        return [Greeting(track_id, key, text)] if text else []
