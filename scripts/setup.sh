#!/usr/bin/env bash
# Create the project environment and build the workspace.  Idempotent: a second
# run with unchanged requirements only re-runs `colcon build` (a few seconds).
#
# - No ROS 2 sourced: ROS 2 from PyPI wheels, ROS_WHEELS=jazzy (default, LTS) or kilted,
#   pinned, plus colcon, the Python dependencies and, when the wheelhouse is there,
#   launch / launch_ros / the ros2 CLI from ../shared/ros2-tools (ROS2_TOOLS=DIR elsewhere).
# - A system ROS 2 sourced (ROS_DISTRO set, rclpy importable): a venv with
#   --system-site-packages and only the Python dependencies.
#
# Every distribution has its own environment directory, .envs/<name>/ (venv, build, install,
# log), so switching never reuses the other's; .venv and install are symbolic links to the
# one built last (scripts/in_env.sh checks that they match the distribution asked for).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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
  [ -z "${ROS_WHEELS:-}" ] || die "ROS_WHEELS=$ROS_WHEELS asks for PyPI wheels, but ROS 2 $ROS_DISTRO is sourced: use a shell without it, or drop ROS_WHEELS"
  ENV_NAME=system-$ROS_DISTRO
  log "using the sourced ROS 2 $ROS_DISTRO (environment .envs/$ENV_NAME)"
else
  # Anything inherited from another ROS or venv shell would leak into the build.
  unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH PYTHONPATH AMENT_PREFIX_PATH \
        CMAKE_PREFIX_PATH COLCON_PREFIX_PATH ROS_DISTRO VIRTUAL_ENV
  ENV_NAME=${ROS_WHEELS:-jazzy}
  case $ENV_NAME in
    jazzy|kilted) ;;
    *) die "ROS_WHEELS=$ENV_NAME: choose jazzy (default, LTS) or kilted (Humble has no PyPI wheels: source a system ROS 2 instead)" ;;
  esac
  "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
    || die "ROS 2 from PyPI wheels needs CPython 3.11 (set PYTHON=/path/to/python3.11), or source a system ROS 2 first"
  log "ROS 2 $ENV_NAME from PyPI wheels (environment .envs/$ENV_NAME; ROS_WHEELS=jazzy|kilted)"
fi
ENV_DIR=$ROOT/.envs/$ENV_NAME
VENV=$ENV_DIR/venv

# Checkouts from before .envs/ had real .venv, build and install folders (ROS 2 Kilted):
# remove them rather than let them pass for the distribution asked for.
for legacy in .venv build install; do
  if [ -d "$ROOT/$legacy" ] && [ ! -L "$ROOT/$legacy" ]; then
    log "removing $legacy/ (old layout; environments now live in .envs/<distribution>/)"
    rm -rf "${ROOT:?}/$legacy"
  fi
done

# ---- 1. venv + pinned packages (skipped when the requirement files are unchanged) ----
ROS2_TOOLS=${ROS2_TOOLS:-$ROOT/../shared/ros2-tools}
TOOLS_WHEELS=()
if [ "$SYSTEM_ROS" = 1 ]; then
  REQ_FILES="$REQ/system-ros.txt $REQ/centerface.txt"
else
  REQ_FILES="$REQ/ros2-$ENV_NAME.txt $REQ/python.txt $REQ/dev.txt $REQ/centerface.txt"
  if [ -f "$ROS2_TOOLS/wheelhouse/SHA256SUMS" ]; then
    ROS2_TOOLS=$(cd "$ROS2_TOOLS" && pwd)
    REQ_FILES="$REQ_FILES $REQ/ros2-tools.txt $ROS2_TOOLS/wheelhouse/SHA256SUMS"
    for whl in "$ROS2_TOOLS"/wheelhouse/*.whl; do
      case $(basename "$whl") in
        # Their pytest11 plugins break every pytest 9 run in the environment (ros2/launch
        # issues 979 and 947); the launch tests drive LaunchService and `ros2 launch` instead.
        launch_testing-*|launch_testing_ros-*|launch_pytest-*) ;;
        *) TOOLS_WHEELS+=("$whl") ;;
      esac
    done
  fi
fi
STAMP=$VENV/.mask_detection_requirements
WANT=$(cat $REQ_FILES | sha256sum | cut -d' ' -f1)-$SYSTEM_ROS-${#TOOLS_WHEELS[@]}
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  T0=$(date +%s)
  mkdir -p "$ENV_DIR"
  if [ ! -x "$VENV/bin/python" ]; then
    if [ "$SYSTEM_ROS" = 1 ]; then
      "$PY" -m venv --system-site-packages "$VENV"
    else
      "$PY" -m venv "$VENV"
    fi
  fi
  touch "$ENV_DIR/COLCON_IGNORE"
  PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
  # Some pip configurations name local index folders that do not exist: drop that noise.
  pip_install() { "${PIP[@]}" "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }; }
  if [ "$SYSTEM_ROS" = 0 ]; then
    log "installing ROS 2 $ENV_NAME wheels (pinned) ..."
    pip_install --only-binary=:all: --no-binary=empy -r "$REQ/ros2-$ENV_NAME.txt"
  fi
  log "installing Python dependencies ..."
  if [ "$SYSTEM_ROS" = 1 ]; then
    pip_install -r "$REQ/system-ros.txt"
  else
    pip_install -r "$REQ/python.txt" -r "$REQ/dev.txt"
  fi
  pip_install --no-deps -r "$REQ/centerface.txt"
  if [ ${#TOOLS_WHEELS[@]} -gt 0 ]; then
    log "installing launch, launch_ros and the ros2 CLI from $ROS2_TOOLS/wheelhouse ..."
    (cd "$ROS2_TOOLS/wheelhouse" && sha256sum --quiet -c SHA256SUMS) \
      || die "checksum mismatch in $ROS2_TOOLS/wheelhouse"
    pip_install -r "$REQ/ros2-tools.txt"
    # --no-index: `launch` on the public index is an unrelated project.  --no-deps: launch_ros
    # declares ament_index_python, which the PyPI wheels call ros-ament-index-python.
    pip_install --no-index --no-deps "${TOOLS_WHEELS[@]}"
  fi
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
if [ "$SYSTEM_ROS" = 0 ] && [ ${#TOOLS_WHEELS[@]} -eq 0 ]; then
  log "no ROS 2 launch / ros2 CLI wheelhouse at $ROS2_TOOLS/wheelhouse: 'ros2 launch' and 'ros2 ...'" \
      "are not available and the launch tests skip (set ROS2_TOOLS=DIR, or get launch from a" \
      "system ROS 2: source /opt/ros/<distro>/setup.bash before make setup)"
fi

# ---- 2. colcon build of both packages (and composition_interfaces, which launch_ros imports) ----
# shellcheck disable=SC1091
source "$VENV/bin/activate"
if [ "$SYSTEM_ROS" = 0 ]; then
  export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
fi
BASE_PATHS=("$ROOT/mask_detection_msgs" "$ROOT/mask_detection")
if [ ${#TOOLS_WHEELS[@]} -gt 0 ] && [ -d "$ROS2_TOOLS/src/composition_interfaces" ]; then
  BASE_PATHS+=("$ROS2_TOOLS/src/composition_interfaces")
fi
mkdir -p "$ENV_DIR/log"
T0=$(date +%s)
if ! colcon --log-base "$ENV_DIR/log" build --base-paths "${BASE_PATHS[@]}" \
     --build-base "$ENV_DIR/build" --install-base "$ENV_DIR/install" \
     --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
     > "$ENV_DIR/log/colcon_build.txt" 2>&1; then
  tail -n 60 "$ENV_DIR/log/colcon_build.txt" >&2
  die "colcon build failed (full log: .envs/$ENV_NAME/log/colcon_build.txt)"
fi
log "colcon build OK in $(( $(date +%s) - T0 )) s"

# ---- 3. make this the active environment (scripts/in_env.sh, install/... paths) ----
ln -sfn ".envs/$ENV_NAME/venv" "$ROOT/.venv"
ln -sfn ".envs/$ENV_NAME/install" "$ROOT/install"
log "active environment: $ENV_NAME (.venv -> .envs/$ENV_NAME/venv, install -> .envs/$ENV_NAME/install)"
