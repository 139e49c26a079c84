#!/usr/bin/env bash
# Installs what Fashion-MNIST Studio needs, skipping what is already there:
# the pinned Python packages, the Fashion-MNIST dataset (Debian's package
# dataset-fashion-mnist) and, with --test, Chromium for the browser tests, axe-core for their
# accessibility audit and PostgreSQL and Ray for the cluster tests; with --cluster, Ray (requirements-cluster.txt: a head, a worker, or an app that
# sends its runs to one); with --gpu, the CUDA builds of TensorFlow and JAX for a machine with an
# NVIDIA GPU (requirements-gpu.txt).
# Uses the python3 on PATH: activate a virtual environment first to keep the packages apart.
set -euo pipefail
cd "$(dirname "$0")"

requirements=requirements.txt
apt_packages=()
if [ -z "${FMNIST_DATA:-}" ] && [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  apt_packages+=(dataset-fashion-mnist)
fi
extra_requirements=()
if [ "${1:-}" = "--test" ]; then
  requirements=requirements-dev.txt
  extra_requirements=(-r requirements-cluster.txt)
  [ -x /usr/bin/chromium ] || apt_packages+=(chromium fonts-liberation)
  # The store's tests start a PostgreSQL 15 server of their own (tests/servers.py).
  [ -x /usr/lib/postgresql/15/bin/initdb ] || apt_packages+=(postgresql)
  command -v npm >/dev/null || apt_packages+=(npm)
fi
if [ "${1:-}" = "--cluster" ]; then
  requirements=requirements-cluster.txt
fi

if [ ${#apt_packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${apt_packages[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${apt_packages[@]}"
fi

# pip takes seconds when everything is installed already. The package itself is installed
# editable (its code stays here), so a training process finds it from any folder; no build
# isolation, so nothing beyond the pinned requirements is downloaded.
pip_install=(python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore)
if [ "${1:-}" = "--gpu" ]; then
  # The CUDA builds replace tensorflow-cpu, which installs the same `tensorflow` module.
  python3 -m pip uninstall -q -y tensorflow-cpu 2>/dev/null || true
  grep -v '^tensorflow-cpu==' requirements.txt > "${TMPDIR:-/tmp}/fmnist-requirements-gpu.txt"
  "${pip_install[@]}" -r "${TMPDIR:-/tmp}/fmnist-requirements-gpu.txt" -r requirements-gpu.txt
else
  "${pip_install[@]}" -r "$requirements" "${extra_requirements[@]}"
fi
"${pip_install[@]}" --no-deps --no-build-isolation -e .

if [ "${1:-}" = "--test" ]; then
  # axe-core, the accessibility rules the browser tests inject into each page
  # (tests/test_browser_accessibility.py), pinned so that a new rule release cannot fail the suite
  # unannounced; into .cache/axe, which git ignores.
  axe_version=4.14.1
  axe_package=.cache/axe/node_modules/axe-core/package.json
  if [ "$(node -p "require('./$axe_package').version" 2>/dev/null)" != "$axe_version" ]; then
    npm install --prefix .cache/axe --no-save --no-audit --no-fund --loglevel=error "axe-core@$axe_version"
  fi
fi
