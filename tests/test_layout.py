"""The package's layout holds what docs/layout.md promises (tests/layout_measures.py): no import
cycle, short modules and functions, repository paths in keras_parity/paths.py only, exit codes
chosen where the errors are caught, run records read through attributes. Each measure is first
shown to catch its fault in a small package written for the test."""

import textwrap
from pathlib import Path

import layout_measures as measures
import pytest

# Modules that read `__file__` for something other than a repository path, and why.
FILE_READS_ALLOWED = {
    # its own source is hashed into the weight cache's key: a change to how weights are drawn
    # invalidates the cached ones
    "keras_parity.run.weights": 1,
}
MAX_LONG_FUNCTIONS = 2


def _package(root: Path, files: dict[str, str]) -> Path:
    """A package `keras_parity` under `root` holding `files` (relative path -> source)."""
    package = root / "keras_parity"
    for rel, source in {"__init__.py": "", **files}.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(source))
    return package


def _function(name: str, body_lines: int) -> str:
    return f"def {name}():\n" + "".join(f"    x{i} = {i}\n" for i in range(body_lines))


def test_the_measures_catch_their_faults(tmp_path):
    package = _package(
        tmp_path,
        {
            "a.py": "from keras_parity import b\n",
            "b.py": "def f():\n    from keras_parity.sub import c\n",  # a function-level import counts
            "sub/c.py": "import keras_parity.a\n",
            "long.py": "x = 1\n" * (measures.MAX_MODULE_LINES + 1),
            "funcs.py": _function("short", measures.MAX_FUNCTION_LINES - 1) + _function("long", 60),
            "where.py": "from pathlib import Path\nHERE = Path(__file__).parent\n",
            "paths.py": "from pathlib import Path\nROOT = Path(__file__).parents[1]\n",
            "exits.py": """\
                def check(x):
                    if not x:
                        raise SystemExit(2)
                    usage_error("no")
                def main():
                    raise SystemExit(0)
            """,
            "reads.py": """\
                def f(run, meta):
                    return run.meta, meta["backend"], meta.get("device"), run.meta.get("x")
                def g(recorded, meta):
                    meta["written"] = 1
                    return recorded["backend"]
            """,
        },
    )
    assert measures.import_cycles(package) == [["keras_parity.a", "keras_parity.b", "keras_parity.sub.c"]]
    assert measures.long_modules(package) == {"keras_parity.long": measures.MAX_MODULE_LINES + 1}
    assert measures.long_functions(package) == {"keras_parity.funcs:long": 61}
    assert measures.file_paths(package) == {"keras_parity.where": 1}
    assert [(m, what) for m, _, what in measures.exit_code_sites(package)] == [
        ("keras_parity.exits", "SystemExit"),
        ("keras_parity.exits", "usage_error"),
    ]
    assert measures.meta_reads(package) == {"keras_parity.reads": 4}


def test_no_import_cycle():
    assert measures.import_cycles() == []


def test_no_long_module():
    assert measures.long_modules() == {}


def test_few_long_functions():
    found = measures.long_functions()
    assert len(found) <= MAX_LONG_FUNCTIONS, f"functions over {measures.MAX_FUNCTION_LINES} lines: {found}"


def test_repository_paths_come_from_paths_module():
    assert measures.file_paths() == FILE_READS_ALLOWED


@pytest.mark.parametrize("what", ["SystemExit", "usage_error"])
def test_no_exit_outside_main(what):
    """Errors carry their exit code (keras_parity/errors.py); only main() turns them into one."""
    assert [site for site in measures.exit_code_sites() if site[2] == what] == []


def test_run_records_read_by_attribute():
    """A run is a typed record (keras_parity/run/record.py), never a dict read by key."""
    assert measures.meta_reads() == {}


def test_the_wheel_lists_every_subpackage():
    """pyproject.toml names the wheel's packages one by one (two of them live outside keras_parity/),
    so a new folder of the package must be added there too, or the installed command cannot import it."""
    import tomllib

    listed = set(
        tomllib.loads((measures.PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(init.parent.relative_to(measures.PACKAGE.parent).parts)
        for init in measures.PACKAGE.rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
