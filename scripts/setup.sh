#!/usr/bin/env bash
# Create the project environment and build the workspace.  Idempotent: a second
# run with unchanged requirements only re-runs `colcon build` (a few seconds).
#
# - No ROS 2 sourced: .venv gets ROS 2 Kilted from PyPI wheels (pinned), colcon and
#   the Python dependencies.
# - A system ROS 2 sourced (ROS_DISTRO set, rclpy importable): .venv is created with
#   --system-site-packages and gets only the Python dependencies.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv
REQ=$ROOT/requirements
PY=${PYTHON:-python3}
cd "$ROOT"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

for tool in cmake g++ make; do
  command -v "$tool" >/dev/null || die "missing $tool (Debian/Ubuntu: apt-get install -y cmake g++ make)"
done

SYSTEM_ROS=0
if [ -n "${ROS_DISTRO:-}" ] && "$PY" -c 'import rclpy' 2>/dev/null; then
  SYSTEM_ROS=1
  log "using the sourced ROS 2 $ROS_DISTRO"
else
  # Anything inherited from another ROS or venv shell would leak into the build.
  unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH PYTHONPATH AMENT_PREFIX_PATH \
        CMAKE_PREFIX_PATH COLCON_PREFIX_PATH ROS_DISTRO VIRTUAL_ENV
  "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
    || die "ROS 2 from PyPI wheels needs CPython 3.11 (set PYTHON=/path/to/python3.11), or source a system ROS 2 first"
fi

# ---- 1. venv + pinned packages (skipped when the requirement files are unchanged) ----
if [ "$SYSTEM_ROS" = 1 ]; then
  REQ_FILES="$REQ/system-ros.txt $REQ/centerface.txt"
else
  REQ_FILES="$REQ/ros2-kilted.txt $REQ/python.txt $REQ/dev.txt $REQ/centerface.txt"
fi
STAMP=$VENV/.mask_detection_requirements
WANT=$(cat $REQ_FILES | sha256sum | cut -d' ' -f1)-$SYSTEM_ROS
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  T0=$(date +%s)
  if [ ! -x "$VENV/bin/python" ]; then
    if [ "$SYSTEM_ROS" = 1 ]; then
      "$PY" -m venv --system-site-packages "$VENV"
    else
      "$PY" -m venv "$VENV"
    fi
  fi
  touch "$VENV/COLCON_IGNORE"
  PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
  # Some pip configurations name local index folders that do not exist: drop that noise.
  pip_install() { "${PIP[@]}" "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }; }
  if [ "$SYSTEM_ROS" = 0 ]; then
    log "installing ROS 2 Kilted wheels (pinned) ..."
    pip_install --only-binary=:all: --no-binary=empy -r "$REQ/ros2-kilted.txt"
  fi
  log "installing Python dependencies ..."
  if [ "$SYSTEM_ROS" = 1 ]; then
    pip_install -r "$REQ/system-ros.txt"
  else
    pip_install -r "$REQ/python.txt" -r "$REQ/dev.txt"
  fi
  pip_install --no-deps -r "$REQ/centerface.txt"
  if [ "$SYSTEM_ROS" = 0 ]; then
    # The message wheels' CMake exports hard-code the wheel builder's include dirs
    # (/opt/python/cp311-cp311/...); CMake rejects imported targets whose include
    # dirs do not exist, so point them at this interpreter's.
    PYINC=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    NPINC=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
    { grep -rlZ --include='*.cmake' '/opt/python/cp' "$VENV/share" || true; } | xargs -0 -r sed -i \
      -e "s#/opt/python/cp[0-9]*-cp[0-9]*/include/python3\.[0-9]*#${PYINC}#g" \
      -e "s#/opt/python/cp[0-9]*-cp[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#${NPINC}#g"
    if grep -rq --include='*.cmake' '/opt/python/cp' "$VENV/share"; then
      die "could not rewrite the /opt/python include paths in $VENV/share"
    fi
  fi
  echo "$WANT" > "$STAMP"
  log "environment ready in $(( $(date +%s) - T0 )) s"
else
  log "environment up to date"
fi

# ---- 2. colcon build of both packages ----
# shellcheck disable=SC1091
source "$VENV/bin/activate"
if [ "$SYSTEM_ROS" = 0 ]; then
  export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
fi
mkdir -p "$ROOT/log"
T0=$(date +%s)
if ! colcon --log-base "$ROOT/log" build --base-paths "$ROOT/mask_detection_msgs" "$ROOT/mask_detection" \
     --build-base "$ROOT/build" --install-base "$ROOT/install" \
     --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
     > "$ROOT/log/colcon_build.txt" 2>&1; then
  tail -n 60 "$ROOT/log/colcon_build.txt" >&2
  die "colcon build failed (full log: log/colcon_build.txt)"
fi
log "colcon build OK in $(( $(date +%s) - T0 )) s"
