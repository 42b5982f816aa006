"""Every command the README and docs/ show is checked here, so a doc that drifts from the code fails the suite:
make targets by a dry run, distil commands by the command's own parser, papermill commands by their notebook,
params file and keys, benchmark scripts by their --help, Python snippets by compiling them and finding the names
they use."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import distil
from distil.cli import parser
from distil.params import NOTEBOOK_PARAMS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md",
         ROOT / "outputs" / "README.md"]
PLACEHOLDER_PARAMS = {"params/mydata.yaml": "params/custom.yaml",  # the docs' copy of the template, and its baseline
                      "params/mydata-baseline.yaml": "params/demo-baseline.yaml"}


def blocks(page: Path) -> list[tuple[str, str]]:
    return re.findall(r"```(\w*)\n(.*?)```", page.read_text(), re.S)


def commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for language, body in blocks(page):
            if language not in ("bash", "sh"):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = re.split(r"\s{2,}#|\s#\s", line)[0].strip()
                if line and not line.startswith("#"):
                    found.append((page.relative_to(ROOT).as_posix(), line))
    return found


def snippets() -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), body) for page in PAGES for language, body in blocks(page)
            if language == "python"]


def check_make(words: list[str]) -> None:
    run = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def check_distil(words: list[str]) -> None:
    try:
        args = parser().parse_args(words[1:])
    except SystemExit as stop:  # --help
        assert stop.code == 0
        return
    params = getattr(args, "params", None)
    if params:
        assert (ROOT / PLACEHOLDER_PARAMS.get(params, params)).exists(), params


def check_papermill(words: list[str]) -> None:
    notebook = Path(words[1])
    assert (ROOT / notebook).exists() and notebook.stem in NOTEBOOK_PARAMS, notebook
    params_class = NOTEBOOK_PARAMS[notebook.stem]
    options = words[3:]
    for flag, *rest in zip(options, options[1:], options[2:]):
        if flag == "-f":
            assert (ROOT / PLACEHOLDER_PARAMS.get(rest[0], rest[0])).exists(), rest[0]
        if flag == "-p":
            assert params_class.takes(rest[0]), f"{notebook.stem} does not read {rest[0]}"


def check_script(words: list[str]) -> None:
    script = ROOT / words[1]
    assert script.exists(), script
    if script.suffix == ".py":
        helped = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True)
        assert helped.returncode == 0, helped.stderr[-2000:]
        for flag in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert flag in helped.stdout, f"{script.name} has no {flag}"


@pytest.mark.parametrize("page, command", commands(), ids=lambda v: v if "/" not in v or " " in v else v)
def test_every_command_in_the_docs_works_as_written(page, command):
    words = shlex.split(command)
    if words[0] == "make":
        check_make(words)
    elif words[0] == "distil":
        check_distil(words)
    elif words[0] == "papermill":
        check_papermill(words)
    elif words[0] in ("python", "bash") and len(words) > 1 and words[1].startswith("benchmarks/"):
        check_script(words)
    elif words[0] == "pip":
        extras = re.search(r"\[(\w+)\]", command)
        assert extras is None or f"\n{extras[1]} = [" in (ROOT / "pyproject.toml").read_text()
    elif words[0] in ("conda", ".", "source"):
        assert (ROOT / words[-1]).exists() or words[-1].endswith("activate")
    else:
        pytest.fail(f"{page}: no check for {command!r}: add one, or show it otherwise")


@pytest.mark.parametrize("page, code", snippets(), ids=lambda v: v if len(v) < 40 else None)
def test_every_python_snippet_in_the_docs_compiles_and_names_what_exists(page, code):
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "distil":
            assert hasattr(distil, node.attr), f"{page}: distil.{node.attr}"
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("distil"):
            module = __import__(node.module, fromlist=[a.name for a in node.names])
            for alias in node.names:
                assert hasattr(module, alias.name), f"{page}: from {node.module} import {alias.name}"


@pytest.mark.parametrize("page, text", [(page.relative_to(ROOT).as_posix(), body) for page in PAGES
                                        for language, body in blocks(page) if language == "yaml"])
def test_every_params_snippet_in_the_docs_holds_known_keys_that_load(page, text, tmp_path):
    values = yaml.safe_load(text)
    unknown = set(values) - distil.TeacherParams.known_keys()
    assert not unknown, f"{page}: {unknown}"
    # the teacher's keys as the teacher's notebook reads them, on the demo's architecture
    distil.TeacherParams.load({"teacher_model": "rtdetr-demo.yaml", "outputs": str(tmp_path), **values})


def test_the_readme_is_short_and_links_only_to_pages_that_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link
