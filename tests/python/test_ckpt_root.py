"""Which checkpoint directories the driver writes into (docs/checkpoint-format.md,
section 1, "Who may write a directory"), through genie._checkpoint.Checkpoints:
a directory of another user, or one others may write, is refused with one
``genie:`` line; a sticky shared root gets the job's own 0700 subdirectory;
the parents Genie creates are 0700; a directory another job holds is refused
naming that job, and is free again once that job has ended.

Writing epochs into these directories, pruning and restoring are tested with
real jobs in tests/fault (ckpt_disk_test.py and fault_test.py) and in
tests/unit/test_ckpt_root.c.
"""

import os
import pwd
import stat
import subprocess
import sys

import pytest

from genie import _C
from genie._checkpoint import Checkpoints
from genie._errors import GenieError

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

pytestmark = pytest.mark.skipif(not hasattr(_C, "ckpt_open"), reason="built without HDF5")


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def one_line(e):
    text = str(e.value)
    assert text.startswith("genie: checkpoint directory ")
    assert "\n" not in text
    return text


def test_own_directory_is_used_as_is(tmp_path):
    d = tmp_path / "ck"
    c = Checkpoints()
    c.set_root(str(d))
    assert c.root == str(d)
    assert mode(d) == 0o700
    with open(d / "genie.lock") as f:
        assert f"job={c.job}\n" in f.read()


def test_parents_it_creates_are_0700(tmp_path):
    d = tmp_path / "a" / "b" / "c"
    Checkpoints().set_root(str(d))
    for p in (tmp_path / "a", tmp_path / "a" / "b", d):
        assert mode(p) == 0o700, p


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_directory_of_another_user_is_refused(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, 12345, 12345)
    with pytest.raises(GenieError) as e:
        Checkpoints().set_root(str(d))
    assert "belongs to uid 12345, not to you" in one_line(e)
    assert not os.path.exists(d / "genie.lock")


@pytest.mark.parametrize("bits,who", [(0o777, "others"), (0o707, "others"), (0o770, "its group"),
                                      (0o2775, "its group")])
def test_directory_others_may_write_is_refused(tmp_path, bits, who):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, bits)
    with pytest.raises(GenieError) as e:
        Checkpoints().set_root(str(d))
    text = one_line(e)
    assert f"is writable by {who} (mode {bits:04o}) and not sticky" in text
    assert "chmod go-w" in text
    assert os.listdir(d) == []


def test_sticky_shared_root_gets_the_jobs_own_subdirectory(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENIE_JOB_ID", "job 7/x")
    shared = tmp_path / "scratch"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    c = Checkpoints()
    c.set_root(str(shared))
    user = pwd.getpwuid(os.geteuid()).pw_name
    want = shared / f"genie-{user}-job_7_x"
    assert c.root == str(want)
    assert mode(want) == 0o700
    assert os.path.exists(want / "genie.lock")
    assert not os.path.exists(shared / "genie.lock")
    err = capsys.readouterr().err
    assert f"genie: checkpoint directory {shared} is shared" in err
    assert str(want) in err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's directory")
def test_planted_job_subdirectory_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GENIE_JOB_ID", "42")
    shared = tmp_path / "scratch"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    user = pwd.getpwuid(os.geteuid()).pw_name
    planted = shared / f"genie-{user}-42"
    planted.mkdir(mode=0o777)
    os.chown(planted, 12345, 12345)
    with pytest.raises(GenieError) as e:
        Checkpoints().set_root(str(shared))
    assert "exists and is not this job's" in one_line(e)


HOLD = """
import sys
from genie._checkpoint import Checkpoints
c = Checkpoints()
c.set_root(sys.argv[1])
print("held", c.job, flush=True)
sys.stdin.read()
"""


def test_directory_held_by_another_job_is_refused_naming_it(tmp_path):
    d = tmp_path / "ck"
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "frontend"), GENIE_JOB_ID="first-job")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().split() == ["held", "first-job"]
        with pytest.raises(GenieError) as e:
            Checkpoints().set_root(str(d))
        text = one_line(e)
        assert f"{d} is in use by job first-job (pid {holder.pid} on " in text
        assert "two jobs must not write one checkpoint directory" in text
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    # That job has ended: the directory is free for the next one (a restore
    # into the same directory, for one).
    c = Checkpoints()
    c.set_root(str(d))
    assert c.root == str(d)


def test_restore_from_a_shared_root_names_the_jobs_subdirectories(tmp_path, monkeypatch):
    monkeypatch.setenv("GENIE_JOB_ID", "77")
    shared = tmp_path / "scratch"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    c = Checkpoints()
    c.set_root(str(shared))
    with pytest.raises(GenieError) as e:
        Checkpoints().set_restore(str(shared))
    text = str(e.value)
    assert text.startswith(f"genie: restore: no complete checkpoint in {shared}; it is a shared root")
    assert os.path.basename(c.root) in text
