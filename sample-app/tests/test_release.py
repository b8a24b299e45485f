"""Release identity: read from .ayna-release.json in the release root that the
code itself lives in (symlinks resolved), not from the working directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from core import release


def test_release_root_is_the_app_root(app_root: Path) -> None:
    assert release.RELEASE_ROOT == Path(os.path.realpath(app_root))


def test_read_release(tmp_path: Path) -> None:
    (tmp_path / ".ayna-release.json").write_text(json.dumps({"release": "v3", "sha": "abc123"}))
    assert release.read_release(tmp_path) == {"release": "v3", "sha": "abc123"}


def test_missing_release_file_is_unknown(tmp_path: Path) -> None:
    assert release.read_release(tmp_path) == {"release": "unknown", "sha": "unknown"}


def test_malformed_release_file_is_unknown(tmp_path: Path) -> None:
    (tmp_path / ".ayna-release.json").write_text("{not json")
    assert release.read_release(tmp_path) == {"release": "unknown", "sha": "unknown"}
    (tmp_path / ".ayna-release.json").write_text(json.dumps({"release": 3}))
    assert release.read_release(tmp_path) == {"release": "unknown", "sha": "unknown"}


def test_release_root_resolves_symlinks(tmp_path: Path) -> None:
    v3 = tmp_path / "releases" / "v3"
    (v3 / "core").mkdir(parents=True)
    (v3 / "core" / "release.py").touch()
    (tmp_path / "releases" / "current").symlink_to("v3")
    found = release.release_root_for(tmp_path / "releases" / "current" / "core" / "release.py")
    assert found == v3.resolve()


def _make_release(releases: Path, name: str, app_root: Path) -> Path:
    root = releases / name
    for pkg in ("core", "api"):
        shutil.copytree(app_root / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".ayna-release.json").write_text(json.dumps({"release": name, "sha": f"sha-of-{name}"}))
    return root


_PROBE = """
import json, sys
from fastapi.testclient import TestClient
import api.main
r = TestClient(api.main.app).get("/health")
print(json.dumps({"code": r.status_code, "body": r.json(), "file": api.main.__file__}))
"""


def _probe(releases: Path, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SAMPLE_FAIL_HEALTH"}
    # Imported through the `current` symlink, run from an unrelated directory.
    env["PYTHONPATH"] = str(releases / "current")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_process_reports_the_release_it_loaded_through_current(tmp_path: Path, app_root: Path) -> None:
    releases = tmp_path / "releases"
    _make_release(releases, "v7", app_root)
    v8 = _make_release(releases, "v8", app_root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The working directory has a release file of its own: it must be ignored.
    (elsewhere / ".ayna-release.json").write_text(json.dumps({"release": "cwd", "sha": "cwd"}))

    (releases / "current").symlink_to("v7")
    got = _probe(releases, elsewhere)
    assert got["code"] == 200
    assert got["body"] == {"status": "ok", "service": "api", "release": "v7", "sha": "sha-of-v7"}

    (releases / "current").unlink()
    (releases / "current").symlink_to("v8")
    assert _probe(releases, elsewhere)["body"]["release"] == "v8"

    # A bad release: FAIL_HEALTH in its root makes /health fail.
    (v8 / "FAIL_HEALTH").touch()
    got = _probe(releases, elsewhere)
    assert got["code"] == 500
    assert got["body"]["release"] == "v8"
    assert got["body"]["status"] == "failing"


def test_fail_file_listing_ports_fails_only_those_ports(tmp_path):
    from core import release

    (tmp_path / "FAIL_HEALTH").write_text("8150\n")
    assert release.failure_reason(tmp_path, port=8150) == "FAIL_HEALTH lists port 8150"
    assert release.failure_reason(tmp_path, port=8155) is None
    (tmp_path / "FAIL_HEALTH").write_text("")
    assert release.failure_reason(tmp_path, port=8155) == "FAIL_HEALTH exists in the release directory"


def test_own_unit_reads_the_service_from_the_cgroup(tmp_path):
    cg = tmp_path / "cgroup"
    cg.write_text("0::/system.slice/demoapp-web.service\n")
    assert release.own_unit(str(cg)) == "demoapp-web.service"
    cg.write_text("0::/user.slice/user-0.slice/session-3.scope\n")
    assert release.own_unit(str(cg)) is None


def test_crash_switch_arms_only_for_the_named_unit_and_exits_the_process(tmp_path, app_root):
    import time

    (tmp_path / "CRASH_AFTER").write_text("0.2 demoapp-web.service\n")
    assert release.arm_crash_switch(tmp_path, unit="demoapp-web-candidate.service") is None
    assert release.arm_crash_switch(tmp_path / "nowhere", unit="demoapp-web.service") is None
    # In a child process: the exit takes the whole process down, with status 3.
    code = (
        "import time, sys\n"
        "from core import release\n"
        f"release.arm_crash_switch({str(tmp_path)!r}, unit='demoapp-web.service')\n"
        "time.sleep(5)\n"
        "sys.exit(0)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], cwd=app_root, timeout=30)
    assert done.returncode == 3
    assert time.monotonic() - started < 4
