"""Packages for the wheel: scnet plus the top-level conf/ and sweeps/ shipped as scnet.conf and
scnet.sweeps (pyproject.toml holds everything else).

Why a setup.py: pyproject's ``packages.find`` cannot also list packages that live outside the
package tree, and an explicit ``packages`` list would silently drop every new subpackage.
``conf/`` and ``sweeps/`` stay the one source of truth; scnet.shipped finds the copies.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["scnet", "scnet.*"]), "scnet.conf", "scnet.sweeps"],
    package_dir={"scnet.conf": "conf", "scnet.sweeps": "sweeps"},
)
