"""The package's shape: no import cycle inside ``imgbatch/`` (lazy imports included, so
none can hide one), and no module over 400 lines."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "imgbatch"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The imgbatch modules ``path`` imports, wherever the import statement sits."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(n) for node in ast.walk(tree) if _type_checking_only(node) for n in ast.walk(node)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in known else base)
    return {target for target in found if target in known and target != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_inside_the_package() -> None:
    known = modules()
    graph = {name: imports_of(path, name, set(known)) for name, path in known.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_over_400_lines() -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_run_commands_own_process_imports_no_pipeline() -> None:
    """``imgbatch run``'s own process never downloads or compresses (its workers do):
    importing the command and checking the settings leave aiohttp, Pillow and numpy out,
    about 0.3 s of a run's start (``dispatch/local_pool.py``, ``fetch/__init__.py``)."""
    probe = (
        "import sys, imgbatch.cli, imgbatch.cli.run, imgbatch.dispatch.embedded\n"
        "from imgbatch.cli.checks import settings_or_exit\n"
        "settings_or_exit()\n"
        "print(' '.join(m for m in ('aiohttp', 'PIL', 'numpy', 'simplejpeg', 'fastapi')"
        " if m in sys.modules))\n"
    )
    env = {**os.environ, "IMGBATCH_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8"}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == []


def test_a_start_on_a_migrated_database_does_not_import_alembic(tmp_path: Path) -> None:
    """Alembic (and Mako, Pygments with it: about 0.1 s) is imported only when there is a
    migration to run: ``serve`` and ``run`` migrate an embedded SQLite at every start."""
    probe = (
        "import sys\n"
        "from imgbatch.config import Settings\n"
        "from imgbatch.runtime import open_services\n"
        "open_services(Settings())\n"
        "print('alembic' in sys.modules)\n"
    )
    env = {**os.environ, "IMGBATCH_DATA_DIR": str(tmp_path)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs == [["True"], ["False"]]  # the first start migrates, the second need not


def test_processes_collect_again_after_their_imports() -> None:
    """The fork server and the command import with the cyclic collector off, then freeze
    what they imported (``dispatch/preload.py``, ``console.main``). A worker forked from
    the fork server has the pipeline imported and frozen, and collects its own garbage:
    with the collector left off, every reference cycle a chunk made would stay."""
    check = (
        "(__import__('gc').isenabled(), __import__('gc').get_freeze_count() > 0,"
        " 'imgbatch.pipeline' in __import__('sys').modules)"
    )
    probe = (
        "import sys\n"
        "from imgbatch.dispatch.local_pool import worker_context\n"
        "with worker_context().Pool(1) as pool:\n"
        f"    print(pool.apply(eval, ({check!r},)))\n"
        "from imgbatch import console\n"
        "sys.argv = ['imgbatch', '--help']\n"
        "try:\n"
        "    console.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print({check})\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    worker, command = done.stdout.splitlines()[0], done.stdout.splitlines()[-1]
    assert worker == "(True, True, True)"
    assert command == "(True, True, False)"  # the command imports no pipeline
