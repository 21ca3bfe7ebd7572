"""Whether a process id is running on this machine (heartbeats, temporary files)."""

from __future__ import annotations

import os


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
