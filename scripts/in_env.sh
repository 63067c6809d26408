#!/usr/bin/env bash
# Run a command inside the project environment: the venv, the colcon workspace
# (install/) sourced, and the ROS variables this project relies on.
#   scripts/in_env.sh python -m training.evaluate ...
#   scripts/in_env.sh ros2 launch mask_detection video.launch.py video:=clip.mp4
# The environment is the one `make setup` built last (.venv and install link to
# .envs/<distribution>/); ROS_WHEELS=jazzy|kilted insists on one and fails if that is not
# the one built.  Variables already set by the caller (ROS_DOMAIN_ID, RMW_IMPLEMENTATION,
# FASTDDS_DEFAULT_PROFILES_FILE, ...) are kept.
set -eo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -eq 0 ]; then
  echo "usage: scripts/in_env.sh COMMAND [ARGS...]" >&2; exit 2
fi
if [ ! -L "$ROOT/install" ] || [ ! -x "$ROOT/.venv/bin/python" ] || [ ! -f "$ROOT/install/setup.bash" ]; then
  echo "in_env.sh: the environment is not built yet: run 'make setup' first" >&2; exit 1
fi
ACTIVE=$(basename "$(dirname "$(readlink "$ROOT/install")")")
if [ -n "${ROS_DISTRO:-}" ]; then
  WANT=system-$ROS_DISTRO
else
  WANT=${ROS_WHEELS:-$ACTIVE}
fi
if [ "$WANT" != "$ACTIVE" ]; then
  case $WANT in
    system-*) FIX="'make setup' in this shell (ROS 2 $ROS_DISTRO sourced, ROS_WHEELS unset)" ;;
    *) FIX="'make setup ROS_WHEELS=$WANT', or call in_env.sh without ROS_WHEELS" ;;
  esac
  echo "in_env.sh: install/ is the '$ACTIVE' environment, not '$WANT': run $FIX" >&2
  exit 1
fi
VENV=$ROOT/.envs/$ACTIVE/venv
if [ -z "${ROS_DISTRO:-}" ]; then
  # ROS 2 from PyPI wheels: the venv is the underlay.  The wheels' bootstrapper
  # re-execs python with its own LD_LIBRARY_PATH unless this guard is inherited.
  unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH
  export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# shellcheck disable=SC1091
source "$ROOT/install/setup.bash"
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# The Fast DDS profile (the caller's, from either variable, else the shipped localhost one) in
# the one variable this ROS 2 reads: FASTRTPS_DEFAULT_PROFILES_FILE for Fast DDS 2.x (Jazzy,
# Humble; rmw_fastrtps < 9), FASTDDS_DEFAULT_PROFILES_FILE for Fast DDS 3 (Kilted).  Not both:
# Kilted's RMW also loads the old name, and loading the profile twice logs XMLPARSER errors in
# every node (mask_detection/fastdds.py does the same for launch files and tests).
PROFILE=${FASTDDS_DEFAULT_PROFILES_FILE:-${FASTRTPS_DEFAULT_PROFILES_FILE:-$ROOT/install/mask_detection/share/mask_detection/config/fastdds_large_shm_localhost.xml}}
RMW_MAJOR=0
IFS=: read -r -a AMENT_PREFIXES <<< "${AMENT_PREFIX_PATH:-}"
for prefix in "${AMENT_PREFIXES[@]}"; do
  if [ -f "$prefix/share/rmw_fastrtps_cpp/package.xml" ]; then
    RMW_MAJOR=$(sed -n 's#.*<version>\([0-9]*\)\..*#\1#p' "$prefix/share/rmw_fastrtps_cpp/package.xml" | head -n 1)
    break
  fi
done
if [ "${RMW_MAJOR:-0}" -ge 9 ]; then
  export FASTDDS_DEFAULT_PROFILES_FILE=$PROFILE; unset FASTRTPS_DEFAULT_PROFILES_FILE
else
  export FASTRTPS_DEFAULT_PROFILES_FILE=$PROFILE; unset FASTDDS_DEFAULT_PROFILES_FILE
fi
export MASK_DETECTION_ROS_ENV=$ACTIVE
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
export MASK_DETECTION_ROOT=$ROOT
exec "$@"
