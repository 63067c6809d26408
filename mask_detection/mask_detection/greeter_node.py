"""greeter_node: visitor events in, greetings out (std_msgs/String on ``greeting``, and speech).

Subscribes ``visitor_events`` (mask_detection_msgs/VisitorEvent from detector_node).  What to
say is decided in greetings.py (plain Python): a welcome for a visitor with a mask, a polite
request to put one on for a visitor without, a thank-you when the mask goes on, a goodbye;
once per visitor and state, with a quiet period.  Phrases and language come from a YAML file
(default: share/mask_detection/config/greetings.yaml).  With ``speak: true`` each greeting is
also spoken by espeak-ng (speech.py), to the audio device or to WAV files.
"""
import os
import time

from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from mask_detection import greetings, speech
from mask_detection.node_runner import run_node
from mask_detection.qos import visitor_events_qos
from mask_detection_msgs.msg import VisitorEvent

# How often greetings held back by the quiet period are checked, s.
DUE_CHECK_PERIOD_S = 0.25


def default_greetings_file():
    """Return the installed config/greetings.yaml (the source tree's when not installed)."""
    try:
        share = get_package_share_directory('mask_detection')
        return os.path.join(share, 'config', 'greetings.yaml')
    except PackageNotFoundError:
        return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            'config', 'greetings.yaml')


class GreeterNode(Node):
    """ROS adapter around greetings.Greeter (and speech.Speaker when speaking)."""

    def __init__(self, **kwargs):
        super().__init__('greeter_node', **kwargs)

        def describe(text, low=None, high=None):
            descriptor = ParameterDescriptor(description=text, read_only=True)
            if low is not None:
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=low, to_value=high, step=0.0)]
            return descriptor
        self.declare_parameter('greetings_file', '', describe(
            'YAML file of phrases per language; empty = '
            'share/mask_detection/config/greetings.yaml.'))
        self.declare_parameter('language', '', describe(
            "Language of the phrases (a key of the file's languages, e.g. 'en'); empty = "
            "the file's default_language."))
        self.declare_parameter('quiet_period', 3.0, describe(
            'Seconds after a greeting to a visitor before a new label of that visitor is '
            'greeted (only if it still holds then).', 0.0, 3600.0))
        self.declare_parameter('speak', False, describe(
            'Also speak each greeting with espeak-ng.'))
        self.declare_parameter('speech_wav_dir', '', describe(
            'With speak: write each spoken greeting to a WAV file in this folder '
            '(greeting-0001.wav, ...) instead of playing it on the audio device.'))
        value = self._value
        path = value('greetings_file') or default_greetings_file()
        phrases = greetings.load_phrases(path, value('language'))   # GreetingsFileError
        self.greeter = greetings.Greeter(phrases, value('quiet_period'))
        self.speaker = None
        if value('speak'):
            try:
                self.speaker = speech.Speaker(
                    phrases.voice, value('speech_wav_dir'), on_error=self.get_logger().error,
                    on_spoken=self._on_spoken)
            except speech.SpeechUnavailable as error:
                # Keep greeting in text: the topic is useful without a voice.
                self.get_logger().error(f'speak: true, but no speech: {error}')

        self.greeting_pub = self.create_publisher(
            String, 'greeting', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.subscription = self.create_subscription(
            VisitorEvent, 'visitor_events', self._on_event, visitor_events_qos())
        self.create_timer(DUE_CHECK_PERIOD_S, self._on_timer)
        self.get_logger().info(
            f'greeting in {phrases.language!r} from {path}, quiet period '
            f'{self.greeter.quiet_period:g} s, speech '
            + ('off' if self.speaker is None else
               f'to {value("speech_wav_dir")}' if value('speech_wav_dir') else 'on'))

    def _value(self, name):
        return self.get_parameter(name).value

    def _on_event(self, msg):
        self._publish(self.greeter.on_event(msg.track_id, msg.event, msg.label,
                                            time.monotonic()))

    def _on_timer(self):
        self._publish(self.greeter.due(time.monotonic()))

    def _publish(self, said):
        for greeting in said:
            self.greeting_pub.publish(String(data=greeting.text))
            self.get_logger().info(
                f'visitor {greeting.track_id} ({greeting.key}): {greeting.text}')
            if self.speaker is not None:
                self.speaker.say(greeting.text)

    def _on_spoken(self, text, wav_path):
        if wav_path is not None:
            self.get_logger().info(f'spoken to {wav_path}: {text}')

    def close(self):
        """Finish the queued speech."""
        if self.speaker is not None:
            self.speaker.close()


def main(args=None):
    """Run greeter_node until SIGINT/SIGTERM; exit code 1 for a bad greetings file."""
    return run_node('greeter_node', GreeterNode,
                    (greetings.GreetingsFileError, ParameterException),
                    close=lambda node: node.close(), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
