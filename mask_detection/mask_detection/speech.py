"""Text to speech with espeak-ng (Debian package ``espeak-ng``), one utterance at a time.

Plain Python (no rclpy).  ``Speaker.say()`` returns at once; a worker thread runs espeak-ng
for each queued text in order, so utterances never overlap and a ROS callback never waits for
the audio.  Output goes to the default audio device, or, with ``wav_dir``, to one WAV file per
utterance (``greeting-0001.wav``, ...): for tests and machines without a sound card.
"""
from pathlib import Path
import queue
import shutil
import subprocess
import threading

ESPEAK = 'espeak-ng'
# An utterance that takes longer than this is stuck (an audio device that blocks): give up.
UTTERANCE_TIMEOUT_S = 60.0


class SpeechUnavailable(RuntimeError):
    """espeak-ng is not installed, or the WAV folder cannot be written."""


def espeak_path():
    """Return the espeak-ng executable, or raise SpeechUnavailable saying how to get it."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise SpeechUnavailable('espeak-ng is not installed (Debian/Ubuntu: '
                                'apt-get install espeak-ng)')
    return path


class Speaker:
    """Speak texts in order on a worker thread; ``on_error(message)`` hears of failures."""

    def __init__(self, voice='en', wav_dir='', on_error=None, on_spoken=None):
        self.executable = espeak_path()
        self.voice = voice
        self.wav_dir = Path(wav_dir) if wav_dir else None
        if self.wav_dir is not None:
            try:
                self.wav_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise SpeechUnavailable(f'cannot create WAV folder {self.wav_dir}: '
                                        f'{error}') from error
        self._on_error = on_error or (lambda message: None)
        self._on_spoken = on_spoken or (lambda text, wav_path: None)
        self._queue = queue.Queue()
        self._count = 0
        self._thread = threading.Thread(target=self._run, name='speech', daemon=True)
        self._thread.start()

    def say(self, text):
        """Queue ``text``; return the WAV file it will be written to (None: audio device)."""
        self._count += 1
        wav_path = (self.wav_dir / f'greeting-{self._count:04d}.wav'
                    if self.wav_dir is not None else None)
        self._queue.put((text, wav_path))
        return wav_path

    def close(self, timeout=10.0):
        """Finish what is queued (up to ``timeout`` s) and stop the worker."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            text, wav_path = item
            command = [self.executable, '-v', self.voice, '--stdin']
            if wav_path is not None:
                command += ['-w', str(wav_path)]
            try:
                result = subprocess.run(command, input=text.encode('utf-8'),
                                        capture_output=True, timeout=UTTERANCE_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as error:
                self._on_error(f'espeak-ng failed on {text!r}: {error}')
                continue
            if result.returncode != 0:
                self._on_error(f'espeak-ng exited with code {result.returncode} on {text!r}: '
                               f'{result.stderr.decode(errors="replace").strip()}')
                continue
            self._on_spoken(text, wav_path)
