"""Builds alibi_attention._core, the pybind11 extension over alibi::dispatch.

No ISA flags: alibi/dispatch.hpp compiles the AVX2 and AVX-512 kernels into the one file inside target
regions and picks the widest the importing CPU supports. -O2 at least: a dispatch build mixes ISAs in one
file, which the library keeps safe only when optimised (README, "Mixing flags in one program is safe").
"""
import os
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup

here = Path(__file__).resolve().parent
# The library's headers: the checkout this directory belongs to, or ALIBI_INCLUDE_DIR.
include_dir = Path(os.environ.get("ALIBI_INCLUDE_DIR", here.parent / "include")).resolve()
if not (include_dir / "alibi" / "dispatch.hpp").is_file():
    raise RuntimeError(f"alibi headers not found in {include_dir}; set ALIBI_INCLUDE_DIR")

core = Pybind11Extension(
    "alibi_attention._core",
    # Relative to setup.py, as setuptools requires.
    ["src/binding.cpp"],
    include_dirs=[str(include_dir)],
    cxx_std=17,
    extra_compile_args=["-O2", "-g0", "-pthread"],
    extra_link_args=["-pthread"],
)

setup(ext_modules=[core])
