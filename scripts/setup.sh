#!/usr/bin/env bash
# Sets up vidpipe on a Debian machine with Python 3.11: ffmpeg (+ Debian's sample clips), the .venv, the project.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
[ -d /usr/share/doc/opencv-doc/examples/data ] || need_apt+=(opencv-doc)
# docker-compose only validates docker-compose.yaml in the tests (no engine is needed); optional.
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing ${need_apt[*]} with apt-get"
    $sudo apt-get update -qq
    required=("${need_apt[@]/docker-compose}")
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ${required[*]} >/dev/null
    if [[ " ${need_apt[*]} " == *" docker-compose "* ]]; then
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-compose >/dev/null \
        || echo "setup: docker-compose not installed; the compose CLI check in the tests will be skipped"
    fi
  elif [[ " ${need_apt[*]} " == *" ffmpeg "* ]]; then
    echo "setup: ffmpeg and ffprobe are required; install them with your package manager" >&2
    exit 1
  fi
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"vidpipe needs Python 3.11, found {sys.version.split()[0]}"'

stamp=.venv/.vidpipe-installed
fingerprint=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$fingerprint" ]; then
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  echo "setup: installing pinned Python packages into .venv (first time: a few minutes, ~3 GB)"
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
  echo "$fingerprint" > "$stamp"
fi
echo "setup: ready (.venv, $(ffmpeg -version | head -1 | cut -d' ' -f1-3))"
