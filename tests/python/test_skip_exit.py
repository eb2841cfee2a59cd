"""The python tests report what they did (tests/python/conftest.py): a file in
which every test skipped exits 77, which CTest counts as a skip; a file with a
test that ran keeps pytest's status; a file with nothing to collect exits 5,
which CTest counts as a failure (tests/CMakeLists.txt).

Each case runs pytest on a small file next to a copy of the real conftest.py.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

CASES = {
    "all_skipped": ("import pytest\n"
                    "@pytest.mark.skip(reason='needs the moon')\n"
                    "def test_a(): pass\n"
                    "def test_b(): pytest.skip('no cheese')\n", 77,
                    "skipped: all 2 tests skipped: needs the moon; no cheese"),
    "module_skipped": ("import pytest\n"
                       "pytest.skip('needs X', allow_module_level=True)\n"
                       "def test_a(): pass\n", 77, "skipped: all 1 tests skipped: needs X"),
    "some_skipped": ("import pytest\n"
                     "@pytest.mark.skip(reason='needs the moon')\n"
                     "def test_a(): pass\n"
                     "def test_b(): pass\n", 0, None),
    "skip_and_fail": ("import pytest\n"
                      "@pytest.mark.skip(reason='needs the moon')\n"
                      "def test_a(): pass\n"
                      "def test_b(): assert False\n", 1, None),
    "xfail_only": ("import pytest\n"
                   "@pytest.mark.xfail(reason='known')\n"
                   "def test_a(): assert False\n", 0, None),
    "nothing": ("x = 1\n", 5, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exit_status(tmp_path, case):
    text, want, line = CASES[case]
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / f"test_{case}.py").write_text(text)
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"test_{case}.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ))
    assert p.returncode == want, p.stdout + p.stderr
    skip_lines = [l for l in p.stdout.splitlines() if l.startswith("skipped: ")]
    assert skip_lines == ([line] if line else []), p.stdout
