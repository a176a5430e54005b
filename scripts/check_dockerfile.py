"""Prove the Dockerfile's install steps without a Docker engine.

Replays the Dockerfile in a scratch folder: ENV, WORKDIR, COPY and RUN in order, with the image's paths
(/app, /opt/venv) mapped into the scratch folder and a fresh venv standing in for the base image's Python.
Both stages replay into the same folder, so ``COPY --from=build`` of a path to itself is already done.
Then checks what the image would hold: the product and its locked dependencies, compiled to bytecode, no
test tools, no installer (uv, pip) in the venv, no emulators or tests, the dependency layer made from the
lock alone (no README), and a working `python flows/sync.py --help`. Prints the size of the installed venv.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# user management needs root in an image, not in a replay; compiling the base image's standard library
# would write into this machine's Python
SKIP_RUN = ("useradd", "python -m compileall")
LOCK_FILES = {"pyproject.toml", "uv.lock"}
RUN_IMPORTS = ("arcgis.gis", "arcgis.features", "pandas", "arro3.core", "deltalake", "sodapy",
               "knackpy", "tasks.table.client", "tasks.agol.client", "tasks.socrata.client", "tasks.knack.offload",
               "flows.sync", "prefect.cli", "prefect.flow_engine", "prefect_aws")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def allowed_by_dockerignore(src: str) -> bool:
    """The .dockerignore here excludes everything and lets named paths back in with `!path`."""
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    return f"!{src.rstrip('/')}" in lines or f"!{src.rstrip('/')}/" in lines


def main() -> int:
    steps = instructions((ROOT / "Dockerfile").read_text())
    work = Path(tempfile.mkdtemp(prefix="image-"))
    try:
        paths = {"/app": str(work / "app"), "/opt/venv": str(work / "venv"), "/home/knack": str(work / "home")}

        def mapped(value: str) -> str:
            for image_path, local in paths.items():
                value = re.sub(rf"{re.escape(image_path)}(?=/|\b|$)", local, value)
            return value

        base = work / "base-python"
        subprocess.run([sys.executable, "-m", "venv", str(base)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_", "PYTHON"))}
        env["PATH"] = f"{base / 'bin'}:{env['PATH']}"
        env.setdefault("UV_SYSTEM_CERTS", "1")  # this machine's certificate store, as scripts/setup.sh does
        cwd = work
        synced = False  # the first `uv sync` ran (the dependency layer is made)
        for word, args in steps:
            if word == "ENV":
                for pair in shlex.split(args):
                    key, _, value = pair.partition("=")
                    env[key] = os.path.expandvars(mapped(value).replace("$PATH", env.get("PATH", "")))
            elif word == "WORKDIR":
                cwd = Path(mapped(args))
                cwd.mkdir(parents=True, exist_ok=True)
            elif word == "FROM":
                cwd = work
            elif word == "COPY" and args.startswith("--from="):
                _, *sources, dest = shlex.split(args)
                for src in sources:
                    if Path(mapped(src)) != cwd / mapped(dest) and Path(mapped(src)) != Path(mapped(dest)):
                        print(f"COPY {args}: the replay only knows copies of a build path to itself", file=sys.stderr)
                        return 1
            elif word == "COPY":
                *sources, dest = shlex.split(args)
                if not synced and not set(sources) <= LOCK_FILES:
                    print(f"COPY {' '.join(sources)}: the dependency layer would depend on more than "
                          f"{' and '.join(sorted(LOCK_FILES))}", file=sys.stderr)
                    return 1
                for src in sources:
                    if not allowed_by_dockerignore(src):
                        print(f"COPY {src}: .dockerignore leaves it out of the build context", file=sys.stderr)
                        return 1
                    target = cwd / dest
                    if (ROOT / src).is_dir():
                        shutil.copytree(ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__"))
                    else:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(ROOT / src, target)
            elif word == "RUN":
                parts = [part.strip() for part in args.split("&&")]
                parts = [part for part in parts if not part.startswith(SKIP_RUN)]
                if not parts:
                    continue
                synced = synced or "uv sync" in args
                # same commands; the replay may reuse this machine's download caches
                command = mapped(" && ".join(parts)).replace(" --no-cache-dir", "").replace(" --no-cache", "")
                print(f"+ {command}", flush=True)
                result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                noise = "is ignored: it is neither a file nor a directory"
                print("\n".join(ln for ln in result.stdout.splitlines() if noise not in ln))
                if result.returncode:
                    print(f"RUN failed ({result.returncode}): {args}", file=sys.stderr)
                    return 1

        venv_python = work / "venv" / "bin" / "python"
        leaked = [m for m in ("pytest", "moto", "ruff") if subprocess.run(
            [str(venv_python), "-c", f"import {m}"], capture_output=True).returncode == 0]
        if leaked:
            print(f"dev extras leaked into the image: {', '.join(leaked)}", file=sys.stderr)
            return 1
        installers = [m for m in ("pip", "uv") if (work / "venv" / "bin" / m).exists() or subprocess.run(
            [str(venv_python), "-c", f"import {m}"], capture_output=True).returncode == 0]
        if installers:
            print(f"the runtime venv holds an installer: {', '.join(installers)}", file=sys.stderr)
            return 1
        site = next((work / "venv" / "lib").glob("python3*/site-packages"))
        if not list((site / "prefect").glob("__pycache__/*.pyc")) or not list(site.glob("flows/__pycache__/*.pyc")):
            print("the venv is not compiled to bytecode (UV_COMPILE_BYTECODE=1)", file=sys.stderr)
            return 1
        shipped = [p for p in ("emulators", "tests", "bench", ".venv") if (cwd / p).exists()]
        if shipped:
            print(f"the image would ship {', '.join(shipped)}", file=sys.stderr)
            return 1
        subprocess.run([str(venv_python), "flows/sync.py", "--help"], cwd=cwd, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        # what the publishing runs import, each from the trimmed venv
        imports = subprocess.run([str(venv_python), "-c", f"import {', '.join(RUN_IMPORTS)}"], cwd=cwd, env=env,
                                 capture_output=True, text=True)
        if imports.returncode:
            print(f"the image cannot import what a publishing run does:\n{imports.stderr[-2000:]}", file=sys.stderr)
            return 1
        size = subprocess.run(["du", "-sm", str(work / "venv")], capture_output=True, text=True).stdout.split()[0]
        print(f"Dockerfile install steps: ok (the image's venv: {size} MB on top of the base image)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
