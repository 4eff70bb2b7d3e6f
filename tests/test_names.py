"""One spelling per concept (issue #20, docs/DESIGN.md "Names").

Each renamed option takes its new spelling without a warning; its old
spelling still works for one release, into the same value, with one
``warning: OLD is deprecated; use NEW`` line; the docs, the Makefile,
the demo script and the scripts' usage texts use the new spellings only.
The runtime's renamed functions are tested in ``test_onnx.py``.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    MARKDOWN_FENCE,
    ROOT,
    doc_files,
    load_script,
    run_in_process,
)

#: (script, the options it needs besides the renamed one).
NEEDS = {
    "data_prep.py": ["--data_folder", "d", "--prep_folder", "p"],
    "bench/accuracy.py": ["--prep_folder", "p", "--out", "o"],
    "bench/finetune.py": ["--prep_folder", "p", "--voices", "v"]
    + ["--model", "m", "--out", "o"],
    "bench/onnx_accuracy.py": ["--model", "m", "--prep_folder", "p"],
    "bench/inference_throughput.py": [],
    "bench/triplet_shards.py": [],
    "bench/train_throughput.py": [],
    "bench/baseline_eer.py": [],
}
#: (script, old spelling, new spelling, value given, value parsed).
RENAMED = [
    ("data_prep.py", "--save_folder", "--prep_folder", "s", "s"),
    ("data_prep.py", "--seed", "--prep_seed", "7", 7),
    ("data_prep.py", "--num_workers", "--prep_workers", "3", 3),
    ("bench/accuracy.py", "--prep", "--prep_folder", "q", Path("q")),
    ("bench/finetune.py", "--prep", "--prep_folder", "q", Path("q")),
    ("bench/onnx_accuracy.py", "--prep", "--prep_folder", "q", "q"),
    (
        "bench/inference_throughput.py",
        "--prep",
        "--prep_folder",
        "q",
        Path("q"),
    ),
    ("bench/triplet_shards.py", "--prep", "--prep_folder", "q", Path("q")),
    ("bench/triplet_shards.py", "--P", "--speakers_per_batch", "8", 8),
    ("bench/triplet_shards.py", "--K", "--n_per_speaker", "2", 2),
    ("bench/train_throughput.py", "--data", "--prep_folder", "q", Path("q")),
    ("bench/baseline_eer.py", "--corpus", "--data_folder", "c", "c"),
]


class _Parsed(Exception):
    """Raised with the namespace once a script has parsed its options."""

    def __init__(self, namespace: argparse.Namespace):
        super().__init__()
        self.namespace = namespace


def parsed(
    name: str,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> tuple[argparse.Namespace, str]:
    """What ``python <name> *argv`` parses, and what it printed to
    stderr by then: its ``main`` stops right after the parsing."""
    # load_script registers the module: the one another test file loaded
    # (and runs doctests of) comes back afterwards
    monkeypatch.delitem(sys.modules, f"_script_{Path(name).stem}", False)
    script = load_script(name)
    real = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        raise _Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    monkeypatch.setattr(sys, "argv", [name, *argv])
    capsys.readouterr()
    with pytest.raises(_Parsed) as info:
        script.main()
    return info.value.namespace, capsys.readouterr().err


def _without(argv: list[str], flag: str) -> list[str]:
    """``argv`` less ``flag`` and its value."""
    if flag not in argv:
        return argv
    i = argv.index(flag)
    return argv[:i] + argv[i + 2 :]


@pytest.mark.parametrize(
    ("name", "old", "new", "given", "value"),
    RENAMED,
    ids=[f"{n}:{o}" for n, o, *_ in RENAMED],
)
def test_new_spelling_is_silent_and_old_one_warns(
    name, old, new, given, value, monkeypatch, capsys
):
    base = _without(NEEDS[name], new)
    args, err = parsed(name, [*base, new, given], monkeypatch, capsys)
    dest = new.removeprefix("--")
    assert getattr(args, dest) == value
    assert err == ""
    args, err = parsed(name, [*base, old, given], monkeypatch, capsys)
    assert getattr(args, dest) == value
    assert err == f"warning: {old} is deprecated; use {new}\n"
    # both spellings at once: refused (which one would win?)
    with pytest.raises(SystemExit):
        parsed(name, [*base, old, given, new, given], monkeypatch, capsys)
    assert "not allowed with" in capsys.readouterr().err


def test_old_names_hidden_from_help(capsys):
    data_prep = load_script("data_prep.py")
    with pytest.raises(SystemExit):
        data_prep.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--prep_folder" in text and "--prep_seed" in text
    assert "--save_folder" not in text and "--num_workers" not in text


def test_data_prep_runs_with_the_old_spellings(tiny_corpus, tmp_path):
    """A command of the last release still prepares, with the same
    options, and says once per old option what to write instead."""
    prep = tmp_path / "prep"
    argv = ["--data_folder", str(tiny_corpus), "--save_folder", str(prep)]
    argv += ["--seed", "7", "--num_workers", "1"]
    code, err = run_in_process("data_prep.py", argv)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "deprecated" in line]
    assert warnings == [
        "warning: --save_folder is deprecated; use --prep_folder",
        "warning: --seed is deprecated; use --prep_seed",
        "warning: --num_workers is deprecated; use --prep_workers",
    ]
    options = json.loads((prep / "options.json").read_text())
    assert options["seed"] == 7


# --- the docs use the new spellings -----------------------------------

#: In a ``data_prep.py`` command: the old spellings of its options.
OLD_IN_PREP = re.compile(r"--(save_folder|seed|num_workers)\b")
#: In a ``bench/`` command; ``--P`` / ``--K`` anywhere.
OLD_IN_BENCH = re.compile(r"--(prep|data)(?![\w-])")
OLD_ANYWHERE = re.compile(
    r"--[PK]\b|\bruntime\.(embed|score)\(|\.embed\(|OnnxSpeaker\.embed\b"
)


def commands(text: str, markdown: bool) -> list[str]:
    """The commands of a document, one string each: a line of a code
    block, a shell script or a Makefile with its ``\\`` continuations
    joined, and (in Markdown) every inline code span, which may run over
    lines."""
    units: list[str] = []
    code, prose, fenced = [], [], not markdown
    for line in text.splitlines():
        if markdown and MARKDOWN_FENCE.match(line):
            fenced = not fenced
            continue
        (code if fenced else prose).append(line)
    units += "\n".join(code).replace("\\\n", " ").splitlines()
    if markdown:
        units += re.findall(r"`([^`]+)`", "\n".join(prose))
    return [" ".join(u.split()) for u in units]


def old_spellings(text: str, markdown: bool = True) -> list[str]:
    """The commands of ``text`` that use an old spelling."""
    found = []
    for unit in commands(text, markdown):
        after_prep = unit.partition("data_prep.py")[2]
        bench = re.search(r"bench/\w+\.py(.*)", unit)
        if (
            OLD_IN_PREP.search(after_prep)
            or (bench and OLD_IN_BENCH.search(bench.group(1)))
            or ("baseline_eer.py" in unit and "--corpus" in unit)
            or OLD_ANYWHERE.search(unit)
        ):
            found.append(unit)
    return found


def _names_section_removed(text: str) -> str:
    """DESIGN.md less its naming table (which lists the old names)."""
    return re.sub(r"^## Names:.*?(?=^## |\Z)", "", text, flags=re.M | re.S)


def test_finder_finds_old_spellings() -> None:
    text = (
        "```bash\npython data_prep.py --data_folder x \\\n"
        "    --save_folder y\npython verify.py --seed 1\n```\n"
        "Run `python bench/accuracy.py\n--prep p` or `--P 8`, then\n"
        "`embs = model.embed(files)`; `python data_prep.py --prep_seed 1`.\n"
    )
    assert old_spellings(text) == [
        "python data_prep.py --data_folder x --save_folder y",
        "python bench/accuracy.py --prep p",
        "--P 8",
        "embs = model.embed(files)",
    ]
    script = "python bench/train_throughput.py \\\n  --data d\n"
    assert old_spellings(script, markdown=False) == [
        "python bench/train_throughput.py --data d"
    ]


def _documents() -> list[tuple[Path, str, bool]]:
    """(path, text, is Markdown) of every document a user copies from:
    the Markdown docs, the Makefile, the demo script and the usage texts
    (module docstrings) of the scripts."""
    docs = [(p, p.read_text(encoding="utf-8"), True) for p in doc_files()]
    for name in ("Makefile", "recipes/demo/run.sh"):
        path = ROOT / name
        docs.append((path, path.read_text(encoding="utf-8"), False))
    for path in [ROOT / "data_prep.py", *sorted(ROOT.glob("bench/*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs.append((path, ast.get_docstring(tree) or "", False))
    return docs


@pytest.mark.parametrize(
    ("path", "text", "markdown"),
    _documents(),
    ids=[str(p.relative_to(ROOT)) for p, *_ in _documents()],
)
def test_docs_use_the_new_spellings(path, text, markdown) -> None:
    if path.name == "DESIGN.md":
        text = _names_section_removed(text)
    assert old_spellings(text, markdown) == []
