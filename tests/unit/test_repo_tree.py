"""The repository holds nothing that only this machine has: scripts/check_tree.py, on itself and on fakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check_tree.py"


def check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), str(repo)], capture_output=True, text=True)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text(".venv\n.data/\n")
    (repo / "kept.txt").write_text("kept\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "link-inside").symlink_to("../kept.txt")
    git(repo, "add", "-A")
    return repo


def test_a_clean_tree_passes(repo: Path) -> None:
    result = check(repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tree: clean"


def test_a_tracked_link_outside_the_repository_fails(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "venv-elsewhere").mkdir()
    (repo / ".venv").symlink_to(tmp_path / "venv-elsewhere")
    git(repo, "add", "-f", ".venv")
    result = check(repo)
    assert result.returncode == 1
    assert ".venv: a tracked link to" in result.stderr and "outside the repository" in result.stderr
    # .gitignore's `.venv` (no trailing slash) matches the link as well, so it is reported twice over
    assert ".venv: tracked, but .gitignore says it should not be" in result.stderr


def test_a_relative_link_that_climbs_out_fails(repo: Path) -> None:
    (repo / "up").symlink_to("../../somewhere")
    git(repo, "add", "up")
    result = check(repo)
    assert result.returncode == 1
    assert "up: a tracked link to ../../somewhere, outside the repository" in result.stderr


def test_a_dangling_link_inside_fails(repo: Path) -> None:
    (repo / "gone").symlink_to("missing.txt")
    git(repo, "add", "gone")
    result = check(repo)
    assert result.returncode == 1
    assert "gone: a tracked link to missing.txt, which does not exist" in result.stderr


def test_a_tracked_ignored_file_fails(repo: Path) -> None:
    (repo / ".data").mkdir()
    (repo / ".data" / "record.json").write_text("{}")
    git(repo, "add", "-f", ".data/record.json")
    result = check(repo)
    assert result.returncode == 1
    assert ".data/record.json: tracked, but .gitignore says it should not be" in result.stderr


def test_this_repository_is_clean() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = check(ROOT)
    assert result.returncode == 0, result.stderr
