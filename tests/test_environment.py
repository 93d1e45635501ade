"""The three descriptions of the environment must agree, pin for pin."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str], where: str) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = PIN.match(line.strip())
        if not match:
            raise AssertionError(f"{where}: {line!r} is not an exact pin 'name==version'")
        pins[_name(match.group(1))] = match.group(2)
    return pins


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [
        dep for group in project["optional-dependencies"].values() for dep in group
    ]
    return _pins(lines, "pyproject.toml")


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    lines = [line for line in pip_sections[0] if not line.startswith("-e")]
    return _pins(lines, "environment.yml")


def lock_pins() -> dict[str, str]:
    lines = [
        line
        for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return _pins(lines, "requirements-lock.txt")


def test_pins_parse_strictly():
    with pytest.raises(AssertionError, match="not an exact pin"):
        _pins(["torch>=2.0"], "example")


def test_environment_yml_matches_pyproject():
    assert environment_pins() == pyproject_pins()


def test_lock_file_contains_every_direct_pin():
    lock = lock_pins()
    mismatched = {
        name: (version, lock.get(name))
        for name, version in pyproject_pins().items()
        if lock.get(name) != version
    }
    assert not mismatched, f"pyproject pin vs requirements-lock.txt: {mismatched}"


def test_torch_is_the_cpu_build_on_disk():
    # Any other pin pulls several GB of CUDA wheels on the book's CI machines.
    assert pyproject_pins()["torch"] == "2.13.0"


def test_notebooks_run_with_the_pinned_cpu_numerics():
    # The stored outputs are compared digit for digit: nbval's kernels inherit this process'
    # environment (set in conftest.py), and Jupyter's "python3" kernel, installed by `make env`
    # for `make lab` and `make book`, must carry the same settings.
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from lmbook_utils.repro import PINNED_CPU_ENV, reproduces_stored_outputs

    reproduces, why = reproduces_stored_outputs()
    if not reproduces:  # conftest.py leaves the kernels alone there and masks the digits
        pytest.skip(why)
    differ = {k: (v, os.environ.get(k)) for k, v in PINNED_CPU_ENV.items() if os.environ.get(k) != v}
    assert not differ, f"the test process does not pin the CPU numerics (wanted, found): {differ}"
    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no Jupyter kernel named python3 (make env installs it)")
    if not Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve()):
        pytest.skip(f"the python3 kernel at {spec.resource_dir} is not this environment's")
    missing = {k: v for k, v in PINNED_CPU_ENV.items() if spec.env.get(k) != v}
    assert not missing, f"kernel {spec.resource_dir} lacks {missing}: rerun `make env`"
