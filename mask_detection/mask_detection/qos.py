"""QoS profiles that a topic's publisher and its subscribers must agree on."""
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# A subscriber that starts a little after detector_node (a greeter, a viewer, a robot
# stack's behaviour tree, or one whose discovery lags on a loaded machine) still hears the
# first visitor's arrival; the lifespan keeps it from acting on arrivals long gone.
VISITOR_EVENTS_DEPTH = 50
VISITOR_EVENTS_LIFESPAN_S = 10.0


def visitor_events_qos():
    """Return the QoS of ``visitor_events``: reliable, transient local, 10 s lifespan.

    A volatile subscriber still matches (it gets no history); a transient-local one gets
    the events of the last 10 s that it missed.
    """
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=VISITOR_EVENTS_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
        lifespan=Duration(seconds=VISITOR_EVENTS_LIFESPAN_S))
