"""The docs check: what README.md, docs/, ARCHITECTURE.md, CHANGELOG.md and the Dockerfiles name
exists. Every `make X` is a Makefile target; every flag given to a `workerprobe` command is one of
that command's; every file of the repository named in backticks is there; the Action's inputs the
README lists are action.yml's; the figures that name a setting (runs kept, the default budget, the
progress interval) are the code's. (The README's success sample is checked against a real run's
output in tests/ci/test_action.py; the wall times are measured, not asserted.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    ROOT / "ARCHITECTURE.md",
    ROOT / "CHANGELOG.md",
    ROOT / "Dockerfile",
    ROOT / "deploy" / "suite.Dockerfile",
    *sorted((ROOT / "docs").glob("*.md")),
]
TARGETS = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))


def _text() -> list[tuple[str, str]]:
    return [(p.relative_to(ROOT).as_posix(), p.read_text()) for p in DOCS]


def test_every_make_target_named_exists() -> None:
    # as a command: in backticks or at the start of a line of a code block (not the English verb)
    command = re.compile(r"(?:^|`)\s*make ([a-z][a-z0-9-]+)", re.M)
    named = {(doc, t) for doc, text in _text() for t in command.findall(text)}
    missing = sorted((doc, t) for doc, t in named if t not in TARGETS)
    assert len(named) > 10 and not missing, missing


def _flags(parser: object) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings}  # type: ignore[attr-defined]


def _command_flags() -> dict[str, set[str]]:
    from workerprobe.cli import _parser
    from workerprobe.loadkit.run import parser as load_parser

    top = _parser()
    (sub,) = [a for a in top._actions if a.__class__.__name__ == "_SubParsersAction"]
    flags = {name: _flags(p) for name, p in sub.choices.items()}  # type: ignore[attr-defined]
    flags["load"] = _flags(load_parser())
    return flags


def test_every_flag_given_to_a_workerprobe_command_is_one_of_its_own() -> None:
    known = _command_flags()
    wrong, checked = [], 0
    for doc, text in _text():
        for line in text.splitlines():
            for found in re.finditer(r"workerprobe (test|load|report|clean|emulator|gateway)\b([^`|]*)", line):
                command, rest = found.group(1), found.group(2).split(" -- ")[0]
                for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                    checked += 1
                    if flag not in known[command] and flag != "--help":
                        wrong.append((doc, command, flag))
    assert checked >= 15 and not wrong, wrong


def test_every_plugin_option_named_is_the_plugins() -> None:
    plugin = (ROOT / "src" / "workerprobe" / "suite" / "plugin.py").read_text()
    declared = set(re.findall(r'addoption\(\s*"(--[a-z-]+)"', plugin))
    named = {f for _, text in _text() for f in re.findall(r"(--workerprobe[a-z-]*)", text)}
    assert named and named <= declared, named - declared


PATH = re.compile(
    r"`((?:src|tests|bench|deploy|docs|load|openapi|action|\.ci)/[\w./-]+|"
    r"[\w-]+\.(?:yml|yaml|toml|md)|workerprobe/[\w./-]+\.(?:json|yaml|py|toml|mjs))`"
)


def test_every_repository_file_named_is_there() -> None:
    missing, named = [], 0
    for doc, text in _text():
        for name in PATH.findall(text):
            named += 1
            if "<" in name or "*" in name:
                continue
            where = ROOT / "src" / name if name.startswith("workerprobe/") else ROOT / name
            if not where.exists() and not (ROOT / doc).parent.joinpath(name).exists():
                missing.append((doc, name))
    generated = {"selftest.md", "conformance.md", "findings.md", "summary.md", "foreign.md", "compose.local.yaml"}
    missing = [(d, n) for d, n in missing if Path(n).name not in generated or "/" in n and not n.startswith("docs/")]
    assert named > 30 and not missing, missing


def test_the_actions_inputs_and_outputs_in_the_readme_are_action_ymls() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    readme = (ROOT / "README.md").read_text()
    said = re.search(r"Its inputs: (.*?); its outputs: (.*?) \(action\.yml\)", readme, re.S)
    assert said, "the README lists the Action's inputs and outputs"
    inputs = set(re.findall(r"`([a-z0-9-]+)`", said.group(1)))
    outputs = set(re.findall(r"`([a-z0-9-]+)`", said.group(2)))
    assert inputs == set(action["inputs"]) and outputs == set(action["outputs"])


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        (r"the newest (\d+) (?:are|kept)", "workerprobe.runs:KEEP_RUNS"),
        (r"spends\s+at most `--max-neurons` \(default (\d+)", "workerprobe.suite.plugin:max_neurons_default"),
        (r"progress line every (\d+) s", "workerprobe.suite.plugin:PROGRESS_EVERY_S"),
    ],
)
def test_figures_that_name_a_setting_are_the_codes(pattern: str, value: str) -> None:
    import importlib

    module, name = value.split(":")
    if name == "max_neurons_default":
        from workerprobe.cli import _parser

        (sub,) = [a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction"]
        actual = next(a.default for a in sub.choices["test"]._actions if a.dest == "max_neurons")
    else:
        actual = getattr(importlib.import_module(module), name)
    seen = [(doc, m) for doc, text in _text() for m in re.findall(pattern, text)]
    assert seen, f"no doc says {pattern!r}"
    assert all(float(m) == float(actual) for _, m in seen), (seen, actual)
