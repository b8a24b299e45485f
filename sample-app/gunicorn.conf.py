"""Gunicorn settings of this app, read from the working directory (the release root).

Reloads following `current` are the deployer's job: its units pass
`--chdir .../releases/current` and `PWD=.../releases/current`, so a SIGHUP
starts workers in the release `current` points to then.

1. No control socket unless GUNICORN_CONTROL_SOCKET names a path. Gunicorn >= 25.1
   otherwise creates $HOME/.gunicorn/gunicorn.ctl, which fails (and logs an
   ERROR) under ProtectSystem=strict and is shared by every gunicorn of the user.
2. Worker heartbeat files in /dev/shm (writable under ProtectSystem=strict,
   with or without PrivateTmp).
"""

import os

_control = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
if _control:
    control_socket = _control
else:
    control_socket_disable = True

if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"
