"""Lint the protos with buf, then check for breaking changes against the previous commit.

"Previous" is HEAD when protos/ has uncommitted changes (what you are about to commit), otherwise HEAD~1 (what
CI checks on a clean clone). The check is skipped, with one line saying why, where there is no such commit or it
has no buf workspace yet.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def _baseline() -> tuple[str | None, str]:
    if _git("rev-parse", "--verify", "HEAD").returncode != 0:
        return None, "no commit yet"
    dirty = _git("status", "--porcelain", "--", "protos", "buf.yaml").stdout.strip()
    ref = "HEAD" if dirty else "HEAD~1"
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    if sha.returncode != 0:
        return None, f"{ref} is not in this clone"
    commit = sha.stdout.strip()
    if _git("cat-file", "-e", f"{commit}:buf.yaml").returncode != 0:
        return None, f"{ref} has no buf workspace"
    return commit, ref


def main() -> int:
    buf = Path(sys.executable).parent / "buf"
    if subprocess.run([str(buf), "lint"], cwd=ROOT).returncode != 0:
        print("buf lint failed")
        return 1
    print("buf lint: ok")
    commit, label = _baseline()
    if commit is None:
        print(f"buf breaking: skipped ({label})")
        return 0
    against = f".git#ref={commit}"
    if subprocess.run([str(buf), "breaking", "--against", against], cwd=ROOT).returncode != 0:
        print(f"buf breaking: the protos break compatibility with {label}")
        return 1
    print(f"buf breaking: ok against {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
