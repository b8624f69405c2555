"""Packaging that pyproject.toml cannot say: the bundled scenarios go into the package.

The top-level ``scenarios/`` folder is their one source. A build maps the data-only package
``harness._scenarios`` onto it, so the wheel (and a wheel built from the sdist) holds them as
``harness/_scenarios/*.yaml``; :mod:`harness.bundled` reads them there, and from
``scenarios/`` in a checkout. pyproject.toml's ``packages.find`` cannot add a package whose
folder lies outside ``harness/``, hence this file; everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["harness", "harness.*"]), "harness._scenarios"],
    package_dir={"harness._scenarios": "scenarios"},
    package_data={"harness._scenarios": ["*.yaml"]},
)
