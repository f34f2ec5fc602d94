"""Size of the worker's Lambda package, built exactly as `sam build` builds it.

    python bench/package_size.py                 # build into a temp dir, print sizes
    python bench/package_size.py --import-check  # also import the handler from a host build

The package is made by the top-level Makefile's `build-WorkerFunction` target (the one `sam build`
runs for template.yaml's WorkerFunction): worker/ + shared/ + the runtime dependencies as
python3.12 / aarch64 wheels. Lambda's limit is 250 MB unzipped (function plus layers; the bytes
are MiB: 262,144,000). The wheels come from PyPI, or from uv's cache with ``--offline``.

``--import-check`` builds the same set for this machine's platform and imports the function's
handler (and the dependencies) with a python3.12 and no site-packages, boto3 added separately as
the Lambda runtime provides it. It proves the excluded packages are not needed at import time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGET = "build-WorkerFunction"
LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024  # "250 MB" unzipped, function plus layers
MIB = 1024 * 1024
HANDLER_MODULE = "worker.handler"
DEPENDENCY_MODULES = (
    "numpy",
    "zarr",
    "obstore",
    "mortie",
    "healpix_geo",
    "h5coro",
    "h5coro.s3driver",
    "h5coro.webdriver",
    "pydantic",
    "yaml",
    "aws_lambda_powertools",
    "aws_lambda_powertools.utilities.batch",
)


class BuildError(RuntimeError):
    pass


def build_package(artifacts_dir: Path, *, offline: bool = False, platform_tag: str | None = None) -> None:
    """Run ``make build-WorkerFunction ARTIFACTS_DIR=...`` in the project, as ``sam build`` does."""
    env = dict(os.environ)
    if offline:
        env["UV_OFFLINE"] = "1"
    command = ["make", "--no-print-directory", "-C", str(PROJECT_ROOT), TARGET, f"ARTIFACTS_DIR={artifacts_dir}"]
    if platform_tag:
        command.append(f"LAMBDA_PLATFORM={platform_tag}")
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(file.lstat().st_size for file in path.rglob("*") if file.is_file() or file.is_symlink())


def measure(artifacts_dir: Path) -> tuple[int, list[tuple[str, int]]]:
    """Total unzipped bytes and bytes per top-level entry (largest first)."""
    parts = [(entry.name, _size(entry)) for entry in artifacts_dir.iterdir()]
    parts.sort(key=lambda item: item[1], reverse=True)
    return sum(size for _, size in parts), parts


def zipped_size(artifacts_dir: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "package.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
            for file in sorted(artifacts_dir.rglob("*")):
                if file.is_file():
                    handle.write(file, file.relative_to(artifacts_dir).as_posix())
        return archive.stat().st_size


def _find_python312() -> str | None:
    candidates = [shutil.which("python3.12")]
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
        candidates += [str(path) for path in sorted(Path(root, "versions").glob("3.12*/bin/python3.12"), reverse=True)]
    except (OSError, subprocess.CalledProcessError):
        pass
    for candidate in filter(None, candidates):  # a pyenv shim may exist but not be active: try each
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return candidate
    return None


def import_check(*, offline: bool = False) -> str:
    """Build for this machine, then import the handler with python3.12 and nothing but the package."""
    python = _find_python312()
    if python is None:
        raise BuildError("no python3.12 found (PATH or pyenv) for the import check")
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[
        platform.machine().lower()
    ]
    with tempfile.TemporaryDirectory(prefix="worker-pkg-host-") as scratch:
        package = Path(scratch) / "package"
        runtime = Path(scratch) / "runtime"  # what the Lambda runtime adds: boto3
        build_package(package, offline=offline, platform_tag=f"{machine}-manylinux_2_34")
        uv = PROJECT_ROOT / ".venv" / "bin" / "uv"
        install = [
            str(uv) if uv.exists() else "uv",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(runtime),
            "--python-version",
            "3.12",
            "boto3",
        ]
        env = dict(os.environ, **({"UV_OFFLINE": "1"} if offline else {}))
        subprocess.run(install, check=True, env=env, cwd=PROJECT_ROOT)
        handler_exists = (package / Path(*HANDLER_MODULE.split("."))).with_suffix(".py").exists()
        modules = list(DEPENDENCY_MODULES) + ([HANDLER_MODULE] if handler_exists else [])
        # The project's other modules: reported when they cannot be imported in the package (some
        # may be meant for local use only), but only the handler and the dependencies must import.
        own = sorted(
            ".".join(file.relative_to(package).with_suffix("").parts)
            for top in ("worker", "shared")
            for file in (package / top).rglob("*.py")
            if file.name not in {"__init__.py", "__main__.py"}
        )
        code = (
            "import importlib, sys\n"
            f"sys.path[:0] = [{str(package)!r}, {str(runtime)!r}]\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "failed = []\n"
            f"for name in {own!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as error:\n"
            "        failed.append(f'{name} ({type(error).__name__}: {error})')\n"
            f"print('imported', {len(modules)}, 'required modules with', sys.version.split()[0], '; project "
            "modules:',\n"
            f"      {len(own)} - len(failed), 'of', {len(own)}, ''.join('\\n  not importable: ' + f for f in failed))\n"
        )
        # -S: no site-packages, -E: ignore PYTHONPATH and friends; only the package and boto3.
        result = subprocess.run(
            [python, "-S", "-E", "-c", code],
            capture_output=True,
            text=True,
            cwd=scratch,
            env={"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-west-2"},
        )
        if result.returncode != 0:
            raise BuildError(f"import check failed:\n{result.stderr[-3000:]}")
        note = "" if handler_exists else f" ({HANDLER_MODULE} not written yet: dependencies only)"
        return result.stdout.strip() + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=12, help="how many of the largest entries to list")
    parser.add_argument("--keep", type=Path, help="build into this directory (emptied first) and keep it")
    parser.add_argument("--offline", action="store_true", help="use only wheels already in uv's cache")
    parser.add_argument("--import-check", action="store_true", help="also import the handler from a host build")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="worker-pkg-") as scratch:
        target = args.keep or Path(scratch) / "package"
        if args.keep and target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True, exist_ok=True)
        build_package(target.resolve(), offline=args.offline)
        total, parts = measure(target)
        print(
            f"worker package ({TARGET}, python3.12 arm64): {total / MIB:.1f} MiB unzipped "
            f"of {LAMBDA_LIMIT_BYTES / MIB:.0f} MiB allowed ({100 * total / LAMBDA_LIMIT_BYTES:.0f}%), "
            f"{zipped_size(target) / MIB:.1f} MiB zipped"
        )
        for name, size in parts[: args.top]:
            print(f"  {size / MIB:8.2f} MiB  {name}")
        rest = parts[args.top :]
        if rest:
            print(f"  {sum(size for _, size in rest) / MIB:8.2f} MiB  ({len(rest)} more entries)")
    if args.import_check:
        print("import check:", import_check(offline=args.offline))
    if total > LAMBDA_LIMIT_BYTES:
        print("OVER Lambda's unzipped limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
