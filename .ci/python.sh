#!/usr/bin/env bash
# Python checks of issue 15, called by .ci/run (or on its own: `bash .ci/python.sh` from anywhere in a
# clone, as root or with sudo). Steps:
#   1. installs what is missing (Debian packages only; no pip index is used);
#   2. a venv on Debian's /usr/bin/python3 (which has python3-torch and python3-numpy) and
#      `pip install --no-build-isolation ./python`, as the README shows;
#   3. pytest python/tests against that install;
#   4. the smoke version of python/examples/train_short_test_long.py (about a minute of training);
#   5. the CMake build of the module (-DALIBI_BUILD_PYTHON=ON, strict warnings as errors) and pytest
#      against it.
# Build trees and the venv go to build/ (build/python-venv, build/python-cmake); nothing is written into
# the sources except pip's in-tree build directory python/build/ (ignored by git).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
readonly PYTHON=/usr/bin/python3  # Debian's: another python3 may come first on PATH
readonly VENV=build/python-venv

step() { printf '\n==== python: %s ====\n' "$*"; }

# --- 1. Dependencies -------------------------------------------------------------------------------------
# python3-venv: the venv; python3-pybind11 + pybind11-dev: the extension (setuptools and CMake);
# python3-torch, python3-numpy, python3-pytest, python3-matplotlib: the package, tests and example;
# fortunes: the example's text corpus; libopenblas0-pthread: a tuned BLAS for torch (Debian's torch
# otherwise links the reference BLAS, about 15x slower here); g++, cmake, make: the builds.
packages=(g++ make cmake python3 python3-dev python3-venv python3-pip python3-setuptools python3-pybind11
  pybind11-dev python3-numpy python3-torch python3-pytest python3-matplotlib fortunes libopenblas0-pthread)
# shellcheck source=packages.sh
source .ci/packages.sh
install_missing_packages "${packages[@]}"

# --- 2. venv + pip install (README, "Python") --------------------------------------------------------------
step "venv and pip install --no-build-isolation ./python"
mkdir -p build
"$PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/pip" install --no-build-isolation --no-index ./python
(cd build && "../$VENV/bin/python" -c 'import alibi_attention as a; print("alibi_attention", a.__version__, "kernel", a.isa_name())')

# --- 3. Tests ------------------------------------------------------------------------------------------------
# From build/, so that `import alibi_attention` finds the installed package, not the source directory.
step "pytest (installed package)"
(cd build && "../$VENV/bin/python" -m pytest -q -p no:cacheprovider ../python/tests)

# --- 4. The extrapolation example, smoke version -------------------------------------------------------------
step "train_short_test_long.py --smoke"
"$VENV/bin/python" python/examples/train_short_test_long.py --smoke --plot build/extrapolation_smoke.png

# --- 5. CMake build of the module, strict warnings, and the tests against it ----------------------------
step "CMake -DALIBI_BUILD_PYTHON=ON (warnings as errors) and pytest against it"
cmake -S . -B build/python-cmake -DALIBI_BUILD_PYTHON=ON -DALIBI_BUILD_TESTS=ON -DALIBI_BUILD_BENCHMARKS=OFF \
  -DALIBI_BUILD_EXAMPLES=OFF -DALIBI_INSTALL=OFF -DALIBI_WARNINGS_AS_ERRORS=ON -DPython3_EXECUTABLE="$PYTHON" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/python-cmake --target alibi_python_core
# Only the python test: the C++ suite has its own steps in .ci/run.
ctest --test-dir build/python-cmake -L python --output-on-failure

step "all python checks passed"
