"""The pure parts of the CRI engine suite's helpers (tests/engines/cri_env.py): the WebSocket
frames of Exec streaming, the exit code on its error channel, CRI log lines, the CNI network and
the containerd config.  The suite itself needs root and OCIRUN_ENGINE_TESTS=1; these do not."""
from __future__ import annotations

import io
import json

import pytest

from tests.engines import cri_env


def _reader(data: bytes):
    stream = io.BytesIO(data)

    def read(n: int) -> bytes:
        chunk = stream.read(n)
        if len(chunk) < n:
            raise EOFError
        return chunk
    return read


@pytest.mark.parametrize("size", [0, 5, 125, 126, 300, 70000])
def test_ws_frame_round_trip(size):
    payload = bytes(i % 251 for i in range(size))
    frame = cri_env.ws_frame(payload, mask=b"\x01\x02\x03\x04")
    assert frame[0] == 0x82 and frame[1] & 0x80          # final binary frame, masked (client)
    assert cri_env.ws_read_frame(_reader(frame)) == (2, payload)


def test_ws_read_unmasked_server_frame():
    assert cri_env.ws_read_frame(_reader(b"\x82\x03\x01hi")) == (2, b"\x01hi")


def test_exec_exit_code():
    assert cri_env.exec_exit_code({}) == 0
    assert cri_env.exec_exit_code({cri_env.ERROR: b'{"metadata":{},"status":"Success"}'}) == 0
    failure = {"status": "Failure", "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": "4"}]}}
    assert cri_env.exec_exit_code({cri_env.ERROR: json.dumps(failure).encode()}) == 4
    with pytest.raises(AssertionError, match="exec failed"):
        cri_env.exec_exit_code({cri_env.ERROR: b'{"status":"Failure","message":"no such container"}'})


def test_parse_cri_log():
    text = ("2026-01-01T00:00:00.000000001Z stdout P xxx\n"
            "2026-01-01T00:00:00.000000002Z stdout F yy y\n"
            "2026-01-01T00:00:00.000000003Z stderr F \n")
    assert cri_env.parse_cri_log(text) == [("stdout", "P", "xxx"), ("stdout", "F", "yy y"), ("stderr", "F", "")]


def test_cni_network_changes_nothing_else_on_the_host():
    conf = cri_env.cni_conflist("n", "ocicri1", "10.1.2.0/24", "/private/ipam")
    bridge = conf["plugins"][0]
    assert (bridge["type"], bridge["bridge"], bridge["isGateway"], bridge["ipMasq"]) == \
        ("bridge", "ocicri1", False, False)
    assert bridge["ipam"]["dataDir"] == "/private/ipam"


def test_containerd_config_names_both_handlers(tmp_path):
    daemon = cri_env.CriContainerd(str(tmp_path))
    text = daemon.config_text()
    assert 'plugins."io.containerd.grpc.v1.cri"' not in json.dumps(daemon.disabled_plugins)
    for name in cri_env.HANDLERS:
        assert f'[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]' in text
        assert f'BinaryName = "{daemon.handlers[name]}"' in text
        assert f'Root = "{tmp_path}/runtime-{name}"' in text
    for line in ("netns_mounts_under_state_dir = true", "restrict_oom_score_adj = true",
                 'snapshotter = "overlayfs"', f'conf_dir = "{tmp_path}/cni/net.d"',
                 f'sandbox_image = "{cri_env.PAUSE_IMAGE}"'):
        assert line in text
    assert len(daemon.bridge) <= 15      # IFNAMSIZ - 1
