#!/usr/bin/env bash
# Run a command inside the project environment: the .venv, the colcon workspace
# (install/) sourced, and the ROS variables this project relies on.
#   scripts/in_env.sh python -m training.evaluate ...
# Variables already set by the caller (ROS_DOMAIN_ID, RMW_IMPLEMENTATION,
# FASTDDS_DEFAULT_PROFILES_FILE, ...) are kept.
set -eo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv
if [ $# -eq 0 ]; then
  echo "usage: scripts/in_env.sh COMMAND [ARGS...]" >&2; exit 2
fi
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$ROOT/install/setup.bash" ]; then
  echo "in_env.sh: the environment is not built yet: run 'make setup' first" >&2; exit 1
fi
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
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$ROOT/install/mask_detection/share/mask_detection/config/fastdds_large_shm_localhost.xml}
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
export MASK_DETECTION_ROOT=$ROOT
exec "$@"
