"""Generated files into the daemon's events folder: no file can make it crash, and the file after is handled."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from builders import Daemon, build
from fake_pagerduty import FakePagerDuty
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

POISON = [b"[" * 1000, b'{"build_number": ' + b"9" * 5000 + b"}", b'{"x": NaN}', b'{"repo": "\\ud800"}', b"\xff\xfe",
          b'{"type": ["build"]}', b'{"type": "build"}', b"[1, 2", b"{}", b"null", b'"text"', b"\x00"]
TYPES = ["build", "deploy.health", "sentry.errors", "rollback", "alertmanager", "github.workflow_run", "nope"]
fields = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                   max_size=3), max_leaves=8)
mutated = st.builds(lambda kind, extra: json.dumps({"type": kind, **extra}).encode(), st.sampled_from(TYPES),
                    st.dictionaries(st.sampled_from(["repo", "branch", "build_number", "status", "alerts", "id",
                                                     "deploy", "error_rate"]), fields, max_size=5))
contents = st.lists(st.binary(max_size=64) | st.sampled_from(POISON) | mutated, min_size=1, max_size=6)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contents)
def test_no_file_stops_the_daemon_and_the_file_after_is_handled(fake: FakePagerDuty, tmp_path: Path,
                                                                  blobs: list[bytes]) -> None:
    folder = tmp_path / "run"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    daemon = Daemon(folder, fake, PAGERDUTY_ENABLED="false")
    names = []
    for index, blob in enumerate(blobs):
        (daemon.events / f"f{index:02}.json").write_bytes(blob)
        names.append(f"f{index:02}.json")
    daemon.drop("zz-sentinel.json", [build(9)])  # the newest file: handled after all the others
    result = daemon.once()
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr
    assert (daemon.events / "processed" / "zz-sentinel.json").exists(), result.stderr
    for name in names:
        failed = daemon.events / "failed" / name
        assert (daemon.events / "processed" / name).exists() or (failed.exists() and Path(f"{failed}.error").exists())
