"""The commit lock beside a journal: held across processes, optional when unusable."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

import pytest

from wellguard.adapters.journal._writer import CommitLock


def _locked_elsewhere(path: Path) -> bool:
    """Whether another open file description holds ``path``'s flock."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_the_lock_is_held_for_the_block_and_only_then(tmp_path: Path) -> None:
    lock = CommitLock(tmp_path / "journal.db")
    assert lock.path == tmp_path / "journal.db-commit.lock"
    with lock.held():
        # flock is per open file description: another process (or open) must wait.
        assert _locked_elsewhere(lock.path)
    assert not _locked_elsewhere(lock.path)
    with lock.held():
        pass
    lock.close()
    assert not _locked_elsewhere(lock.path)
    lock.close()  # twice is harmless


def test_a_lock_that_cannot_be_made_is_done_without(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lock = CommitLock(tmp_path / "no-such-folder" / "journal.db")
    with caplog.at_level(logging.WARNING, logger="wellguard.journal"):
        with lock.held():
            pass
        with lock.held():
            pass
    assert [r.message for r in caplog.records if "commit lock" in r.message][:1]
    assert len([r for r in caplog.records if "commit lock" in r.message]) == 1
