"""Fail when git tracks what a fresh clone elsewhere cannot have.

- a symbolic link whose target leaves the repository (or does not exist): it points at this machine only;
- a tracked file that .gitignore says should not be there (a venv, a local store, caches).

Usage: python scripts/check_tree.py [REPO]   (exit 1 and one line per problem, or "tree: clean")
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def git(repo: Path, *args: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout
    return [line for line in out.split("\0") if line]


def problems(repo: Path) -> list[str]:
    repo = repo.resolve()
    found = []
    for entry in git(repo, "ls-files", "-s", "-z"):
        meta, _, path = entry.partition("\t")
        if meta.split()[0] != "120000":  # a symbolic link
            continue
        target = git(repo, "cat-file", "-p", f"{meta.split()[1]}")[0]
        resolved = Path(os.path.normpath((repo / path).parent / target))
        if not resolved.is_relative_to(repo):
            found.append(f"{path}: a tracked link to {target}, outside the repository")
        elif not resolved.exists():
            found.append(f"{path}: a tracked link to {target}, which does not exist")
    for path in git(repo, "ls-files", "-z", "--cached", "--ignored", "--exclude-standard"):
        found.append(f"{path}: tracked, but .gitignore says it should not be")
    return found


def main() -> int:
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    found = problems(repo)
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print("tree: clean")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
