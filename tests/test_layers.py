"""Import contracts of the layers (docs/development.md, "Layers"), checked on the source."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "daskflow"
LIBRARY = ("io", "sample", "features", "models", "evaluation", "prediction", "cluster", "tuning",
           "reporting", "analytics")
#: Per-block math without Dask: every ``*_kernels.py`` module, found by name (docs/development.md).
KERNELS = tuple(sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*_kernels.py")))


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", LIBRARY)
def test_library_layers_never_read_the_config(layer: str) -> None:
    for path in (PACKAGE / layer).rglob("*.py"):
        bad = {n for n in imports(path) if n.startswith(("daskflow.config", "daskflow.experiment",
                                                           "daskflow.cli"))}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_modules_do_not_import_dask(kernel: str) -> None:
    bad = {n for n in imports(PACKAGE / kernel) if n.split(".")[0] in ("dask", "distributed")}
    assert not bad, f"{kernel} imports {bad}"


def test_only_the_cluster_package_creates_a_client() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "cluster":
            continue
        text = path.read_text()
        assert "Client(" not in text and "LocalCluster(" not in text, path.relative_to(PACKAGE)


def _lazy_packages() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("__init__.py") if "attach(__name__" in p.read_text())


@pytest.mark.parametrize("init", _lazy_packages(), ids=lambda p: str(p.parent.relative_to(PACKAGE.parent)))
def test_lazy_names_are_declared_once_and_import(init: Path) -> None:
    """What a package's attach() call maps is what type checkers see, and each name imports."""
    import importlib

    tree = ast.parse(init.read_text())
    checked = next(node for node in tree.body if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING")
    typed = {alias.asname or alias.name for node in ast.walk(checked) if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "attach")
    mapped = {name for names in ast.literal_eval(call.args[1]).values() for name in names}
    assert typed == mapped
    package = importlib.import_module(".".join(init.parent.relative_to(PACKAGE.parent).parts))
    assert mapped <= set(package.__all__) and mapped <= set(dir(package))
    for name in sorted(mapped):
        assert getattr(package, name) is not None


def test_import_contracts_are_kept() -> None:
    """The layer contract in pyproject.toml ([tool.importlinter]), checked by import-linter."""
    lint_imports = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint_imports).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run([lint_imports, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    result = subprocess.run([ruff, "check", str(PACKAGE), str(PACKAGE.parent / "tests")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_blocked_fit_tasks_stay_light_on_workers() -> None:
    """What a worker imports to run ALS tasks: no dask.dataframe, no scikit-learn (~150 MB)."""
    code = ("import sys, daskflow.models.als._block_kernels, daskflow.models.als._checkpoint, "
            "daskflow.features.interactions._interaction_kernels; "
            "print(sorted({'dask.dataframe', 'sklearn'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_streamed_fit_tasks_import_neither_pandas_nor_pyarrow() -> None:
    """A worker of a streamed ALS fit, or one unpickling a persisted ``Block``, imports NumPy,
    SciPy, Numba and fsspec only (pandas and pyarrow alone add ~74 MB to a worker whose
    memory_limit is a few hundred MB)."""
    code = ("import sys, daskflow.models.als._block_kernels, daskflow.features.interactions._block_files, "
            "daskflow.features.interactions._block; "
            "print(sorted({'dask.dataframe', 'sklearn', 'pandas', 'pyarrow'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_unpickling_a_block_imports_neither_pandas_nor_pyarrow() -> None:
    """Persisted interaction blocks travel to ALS tasks pickled; their class module is light."""
    import pickle

    import numpy as np
    import scipy.sparse as sp

    from daskflow.features import Block

    block = Block(sp.csr_matrix(np.eye(3, dtype=np.float32)), np.zeros(3, dtype=np.int64), 0)
    code = ("import pickle, sys; block = pickle.loads(sys.stdin.buffer.read()); "
            "print(block.nnz, sorted({'dask.dataframe', 'pandas', 'pyarrow'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(block), capture_output=True,
                            check=True)
    assert result.stdout.decode().strip() == "3 []"
