"""Which environment variable hands Fast DDS its XML profile, for the ROS 2 in use.

Fast DDS 2.x (Jazzy, Humble) reads only FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3 (Kilted)
reads FASTDDS_DEFAULT_PROFILES_FILE, and Kilted's RMW still loads FASTRTPS_DEFAULT_PROFILES_FILE
too (with a deprecation warning): with both set it loads the profile twice and every node logs
XMLPARSER errors ("There is other transport with the same id"), although the first load
applies.  So exactly one is set: the one this Fast DDS reads.
Used by the launch files, tools/ros_graph.py and the demo runner (scripts/in_env.sh does the
same in bash).
"""
import re

FASTDDS_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
FASTRTPS_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'
# rmw_fastrtps 9 (Kilted) is the first built on Fast DDS 3; Jazzy has 8.x, Humble 6.x.
FIRST_RMW_MAJOR_ON_FASTDDS_3 = 9


def rmw_fastrtps_major(package_xml_text):
    """Return the major version in the text of rmw_fastrtps_cpp's package.xml."""
    match = re.search(r'<version>\s*(\d+)\.', package_xml_text)
    if match is None:
        raise ValueError('no <version> in package.xml')
    return int(match.group(1))


def is_fastdds_3(rmw_major=None):
    """Return whether this ROS 2's Fast DDS is 3.x (Kilted on) rather than 2.x.

    ``rmw_major`` defaults to the installed rmw_fastrtps_cpp's major version (ament index).
    """
    if rmw_major is None:
        from ament_index_python.packages import get_package_share_directory
        path = get_package_share_directory('rmw_fastrtps_cpp') + '/package.xml'
        with open(path) as package_xml:
            rmw_major = rmw_fastrtps_major(package_xml.read())
    return rmw_major >= FIRST_RMW_MAJOR_ON_FASTDDS_3


def profile_variable(rmw_major=None):
    """Return (the variable Fast DDS reads, the one to leave unset) for this ROS 2."""
    if is_fastdds_3(rmw_major):
        return FASTDDS_VARIABLE, FASTRTPS_VARIABLE
    return FASTRTPS_VARIABLE, FASTDDS_VARIABLE


def set_profile(env, default, rmw_major=None):
    """Point Fast DDS at a profile in the mapping ``env``; return the profile.

    The caller's profile (either variable, FASTDDS_DEFAULT_PROFILES_FILE first) wins over
    ``default``; it is put in the variable that this ROS 2 reads and the other is removed.
    """
    read, other = profile_variable(rmw_major)
    profile = env.get(FASTDDS_VARIABLE) or env.get(FASTRTPS_VARIABLE) or str(default)
    env[read] = profile
    env.pop(other, None)
    return profile
