"""Container log wrappers: CRI and Docker json-file lines unwrapped, partial lines joined per file and stream.

The line shapes follow kubelet's own parser tests (pkg/kubelet/kuberuntime/logs) and what
containerd and Docker's json-file driver write; the lines themselves are ours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slaprobe.probes import wrappers
from slaprobe.probes.parsers import parse_iso_time, parse_jsonl, parse_nginx_combined
from slaprobe.probes.tailer import Tailer
from slaprobe.probes.wrappers import (
    WRAPPERS,
    Unwrapper,
    kubernetes_fields,
    log_name,
    parse_unwrapped,
    split_cri,
    split_docker,
)

TS = b"2016-10-20T18:39:20.57606443Z"
NGINX = b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /cart HTTP/1.1" 503 12 "-" "kube-probe/1.30" 0.250'


def cri(stream: str, tag: str, text: bytes, ts: bytes = TS) -> bytes:
    """A line as containerd writes it into /var/log/pods/.../N.log (without its newline)."""
    return ts + b" " + stream.encode() + b" " + tag.encode() + b" " + text


def docker(text: str, stream: str = "stdout", ts: str = TS.decode()) -> bytes:
    """A line as Docker's json-file driver writes it."""
    return json.dumps({"log": text, "stream": stream, "time": ts}, separators=(",", ":")).encode()


def lines_of(unwrapped: tuple[Any, ...]) -> list[bytes]:
    return list(unwrapped[0])


# ---------------------------------------------------------------------------- one line


def test_a_cri_line_gives_its_time_stream_tag_and_text() -> None:
    assert split_cri(cri("stdout", "F", b"cri stdout test log")) == (TS, b"stdout", False, b"cri stdout test log")
    assert split_cri(cri("stderr", "P", b"cri stderr partial")) == (TS, b"stderr", True, b"cri stderr partial")


def test_a_cri_line_may_be_empty_carry_more_tags_or_end_in_cr() -> None:
    assert split_cri(TS + b" stdout F") == (TS, b"stdout", False, b"")
    assert split_cri(TS + b" stdout F ") == (TS, b"stdout", False, b"")
    assert split_cri(cri("stdout", "F:x", b"text")) == (TS, b"stdout", False, b"text")
    assert split_cri(cri("stdout", "F", b"two  spaces\r")) == (TS, b"stdout", False, b"two  spaces")


@pytest.mark.parametrize(
    "line",
    [
        b"unsupported log format test log",
        TS + b" stdout",
        TS + b" stdin F text",
        TS + b" stdout X text",
        b"2016-10-20 stdout F text",
        docker("text\n"),
        b"",
    ],
)
def test_lines_that_are_not_cri_give_none(line: bytes) -> None:
    assert split_cri(line) is None


def test_a_docker_line_gives_its_time_stream_and_text_partial_when_no_newline_ends_it() -> None:
    assert split_docker(docker("docker stdout test log\n")) == (TS, b"stdout", False, b"docker stdout test log")
    assert split_docker(docker("part one", "stderr")) == (TS, b"stderr", True, b"part one")
    assert split_docker(docker("windows\r\n")) == (TS, b"stdout", False, b"windows")
    assert split_docker(docker("caf\u00e9 \ud800\n"))[3] == "caf\u00e9 \ud800".encode("utf-8", "surrogatepass")  # type: ignore[index]


@pytest.mark.parametrize(
    "line",
    [
        b'{"log":"x\\n","stream":"stdin","time":"t"}',
        b'{"log":1,"stream":"stdout"}',
        b'{"msg":"x","stream":"stdout"}',
        b'{"log":"x\\n","stream":"stdout","time":null}',
        b"[1, 2]",
        b'{"log":"unterminated',
        b'{"log":"\xff\\n","stream":"stdout"}',
    ],
)
def test_lines_that_are_not_docker_json_file_give_none(line: bytes) -> None:
    assert split_docker(line) is None


def test_a_rotated_kubelet_or_docker_file_names_the_same_log() -> None:
    assert log_name("/var/log/pods/shop_web-7d9_0a1b/nginx/0.log.20240102-150405") == (
        "/var/log/pods/shop_web-7d9_0a1b/nginx/0.log"
    )
    assert log_name("/var/lib/docker/containers/ab/ab-json.log.1") == "/var/lib/docker/containers/ab/ab-json.log"
    assert log_name("/var/log/pods/shop_web-7d9_0a1b/nginx/1.log") == "/var/log/pods/shop_web-7d9_0a1b/nginx/1.log"


# ---------------------------------------------------------------------------- joining


def test_partial_cri_lines_are_joined_up_to_the_full_one() -> None:
    unwrapper = Unwrapper("cri")
    lines, times = unwrapper.unwrap(
        [cri("stdout", "P", b"cri stdout "), cri("stdout", "P", b"partial "), cri("stdout", "F", b"test log")]
    )
    assert list(lines) == [b"cri stdout partial test log"]
    assert times == [TS]


def test_a_partial_line_split_across_reads_is_completed_by_the_next_read() -> None:
    unwrapper = Unwrapper("cri")
    assert lines_of(unwrapper.unwrap([cri("stdout", "F", b"one"), cri("stdout", "P", b"tw")])) == [b"one"]
    assert unwrapper.pending() == (1, 2)
    assert lines_of(unwrapper.unwrap([cri("stdout", "F", b"o")])) == [b"two"]
    assert unwrapper.pending() == (0, 0)


def test_stdout_and_stderr_are_joined_each_on_their_own() -> None:
    unwrapper = Unwrapper("cri")
    lines = unwrapper.unwrap(
        [
            cri("stdout", "P", b"GET /a "),
            cri("stderr", "F", b"warning: slow upstream"),
            cri("stderr", "P", b"error: "),
            cri("stdout", "F", b"200"),
            cri("stderr", "F", b"timeout"),
        ]
    )
    assert lines_of(lines) == [b"warning: slow upstream", b"GET /a 200", b"error: timeout"]


def test_a_partial_line_never_joins_a_line_of_another_file() -> None:
    unwrapper = Unwrapper("cri")
    a, b = "/var/log/pods/shop_a_1/web/0.log", "/var/log/pods/shop_b_2/web/0.log"
    batch = [cri("stdout", "P", b"from a "), cri("stdout", "F", b"from b")]
    assert lines_of(unwrapper.unwrap_files(batch, [(a, 1), (b, 2)])) == [b"from b"]
    assert lines_of(unwrapper.unwrap_files([cri("stdout", "F", b"end")], [(a, 1)])) == [b"from a end"]


def test_partial_docker_lines_are_joined_until_one_ends_in_a_newline() -> None:
    unwrapper = Unwrapper("docker")
    lines, times = unwrapper.unwrap(
        [docker("GET /a ", ts="2024-01-01T00:00:00.1Z"), docker("err\n", "stderr"), docker("200\n")]
    )
    assert list(lines) == [b"err", b"GET /a 200"]
    assert times == [TS, b"2024-01-01T00:00:00.1Z"]


def test_a_line_longer_than_the_bound_is_dropped_and_counted_and_the_next_one_is_read() -> None:
    unwrapper = Unwrapper("cri", max_line_bytes=10)
    chunks = [cri("stdout", "P", b"123456"), cri("stdout", "P", b"789012"), cri("stdout", "P", b"34")]
    assert lines_of(unwrapper.unwrap(chunks)) == []
    assert lines_of(unwrapper.unwrap([cri("stdout", "F", b"end"), cri("stdout", "F", b"next")])) == [b"next"]
    assert unwrapper.too_long == 1
    assert unwrapper.pending() == (0, 0)


def test_unfinished_lines_held_across_polls_are_bounded_in_number_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wrappers, "MAX_PENDING", 3)
    monkeypatch.setattr(wrappers, "MAX_PENDING_BYTES", 10)
    unwrapper = Unwrapper("cri")
    for i in range(5):
        unwrapper.unwrap([cri("stdout", "P", b"ab")], f"/var/log/pods/p{i}/c/0.log")
    assert unwrapper.pending() == (3, 6)
    assert unwrapper.malformed == 2  # the two that waited longest
    unwrapper.unwrap([cri("stderr", "P", b"123456")], "/var/log/pods/p4/c/0.log")
    assert unwrapper.pending() == (3, 10)  # a fourth line: one more dropped, the bytes fit again
    assert unwrapper.malformed == 3
    assert lines_of(unwrapper.unwrap([cri("stdout", "F", b"cd")], "/var/log/pods/p4/c/0.log")) == [b"abcd"]
    assert lines_of(unwrapper.unwrap([cri("stdout", "F", b"cd")], "/var/log/pods/p0/c/0.log")) == [b"cd"]


def test_malformed_lines_are_counted_and_dropped_never_raised() -> None:
    unwrapper = Unwrapper("cri")
    batch = [b"garbage", cri("stdout", "F", b"ok"), docker("json\n"), TS + b" stdout"]
    assert lines_of(unwrapper.unwrap(batch)) == [b"ok"]
    assert unwrapper.malformed == 3
    docker_unwrapper = Unwrapper("docker")
    assert lines_of(docker_unwrapper.unwrap([cri("stdout", "F", b"x"), docker("ok\n")])) == [b"ok"]
    assert docker_unwrapper.malformed == 1


# ---------------------------------------------------------------------------- auto, none


def test_auto_reads_cri_docker_and_plain_lines_each_by_its_shape() -> None:
    plain = b'{"status": 200, "duration": 0.1}'
    lines, times = Unwrapper("auto").unwrap([cri("stdout", "F", b"a"), docker("b\n"), NGINX, plain])
    assert list(lines) == [b"a", b"b", NGINX, plain]
    assert times == [TS, TS, b"", b""]


def test_auto_on_a_plain_file_returns_the_lines_untouched_without_times() -> None:
    batch = [
        NGINX,
        NGINX.replace(b"10.0.0.1", b"2001:db8::1"),
        b"[2023-10-10T13:55:36.000Z] envoy",
        b'{"time": "2023-10-10T13:55:36Z", "log": "an application\'s own json", "stream": "stdout"}',
    ]
    lines, times = Unwrapper("auto").unwrap(batch)
    assert lines is batch
    assert times is None


def test_none_takes_every_line_as_written() -> None:
    batch = [cri("stdout", "P", b"x")]
    assert Unwrapper("none").unwrap(batch) == (batch, None)


def test_an_unknown_wrapper_is_refused() -> None:
    assert WRAPPERS == ("auto", "cri", "docker", "none")
    with pytest.raises(ValueError, match="wrapper must be one of auto, cri, docker, none"):
        Unwrapper("journald")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=8), st.sampled_from(WRAPPERS))
def test_no_wrapper_raises_on_arbitrary_bytes(batch: list[bytes], wrapper: str) -> None:
    noisy = [*batch, TS + b" stdout P " + (batch[0] if batch else b""), b'{"log":' + b"".join(batch)]
    unwrapper = Unwrapper(wrapper)  # type: ignore[arg-type]
    lines, times = unwrapper.unwrap(noisy, "/x/0.log")
    assert times is None or len(times) == len(lines)


# ---------------------------------------------------------------------------- parsing


def test_the_inner_line_is_parsed_and_a_line_without_a_time_takes_the_runtimes() -> None:
    lines, times = Unwrapper("cri").unwrap([cri("stdout", "F", NGINX), cri("stderr", "F", b'{"status": 500}')])
    nginx, json_line = parse_unwrapped(parse_jsonl, lines, times), parse_unwrapped(parse_nginx_combined, lines, times)
    assert [e.status for e in nginx] == [500]
    assert nginx[0].time == parse_iso_time(TS.decode())
    assert [(e.status, e.duration) for e in json_line] == [(503, 0.25)]
    assert json_line[0].time != parse_iso_time(TS.decode())  # the line's own time wins


def test_a_kubelet_log_path_names_the_namespace_pod_and_container() -> None:
    want = {"k8s_namespace": "shop", "k8s_pod": "web-7d9f8b6c5d-x2k4q", "k8s_container": "nginx"}
    uid = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    assert kubernetes_fields(f"/var/log/pods/shop_web-7d9f8b6c5d-x2k4q_{uid}/nginx/0.log") == want
    assert kubernetes_fields(f"/var/log/pods/shop_web-7d9f8b6c5d-x2k4q_{uid}/nginx/3.log.20240102-150405") == want
    container_id = "0123456789abcdef" * 4
    assert kubernetes_fields(f"/var/log/containers/web-7d9f8b6c5d-x2k4q_shop_nginx-{container_id}.log") == want
    assert kubernetes_fields("/var/log/nginx/access.log") is None
    assert kubernetes_fields("/var/log/pods/not_a_pod/x.log") is None


def test_lines_of_a_kubelet_log_file_carry_its_kubernetes_fields_and_keep_their_own() -> None:
    web = "/var/log/pods/shop_web-1_0a1b/nginx/0.log"
    batch = [cri("stdout", "F", b'{"status": 200, "k8s_pod": "spoofed", "path": "/a"}'), b'{"status": 201}']
    lines, times, spans = Unwrapper("auto").unwrap_files(batch, [(web, 1), ("/srv/app/access.log", 2)])
    first, second = parse_unwrapped(parse_jsonl, lines, times, spans)
    assert dict(first.fields) == {
        "k8s_namespace": "shop",
        "k8s_pod": "web-1",
        "k8s_container": "nginx",
        "status": "200",
        "path": "/a",
    }
    assert first.fields["k8s_pod"] == "web-1" and len(first.fields) == 5
    assert dict(second.fields) == {"status": "201"}


# ---------------------------------------------------------------------------- with the tailer


def pods_dir(root: Path, container: str = "web") -> Path:
    """``/var/log/pods/<namespace>_<pod>_<uid>/<container>/`` under ``root``."""
    path = root / "var" / "log" / "pods" / "shop_web-7d9f8b6c5d-x2k4q_5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b" / container
    path.mkdir(parents=True)
    return path


def read(tailer: Tailer, unwrapper: Unwrapper) -> list[bytes]:
    """One poll, unwrapped per file, committed."""
    lines = tailer.poll()
    out = lines_of(unwrapper.unwrap_files(lines, tailer.last_spans))
    tailer.commit(force=True)
    return out


def append(path: Path, *lines: bytes) -> None:
    with path.open("ab") as f:
        f.write(b"".join(line + b"\n" for line in lines))


def test_kubelet_rotation_by_rename_joins_a_line_split_across_the_old_and_new_file(tmp_path: Path) -> None:
    pod = pods_dir(tmp_path)
    log = pod / "0.log"
    append(log, cri("stdout", "F", b"first"))
    pattern = str(tmp_path / "var/log/pods/*/*/*.log")
    unwrapper = Unwrapper("auto")
    with Tailer("pods", pattern, start="beginning") as tailer:
        assert read(tailer, unwrapper) == [b"first"]
        append(log, cri("stdout", "P", b"split "), cri("stderr", "F", b"stderr line"))
        os.rename(log, pod / "0.log.20240102-150405")  # kubelet's rotation; the runtime reopens 0.log
        append(log, cri("stdout", "F", b"line"), cri("stdout", "F", b"after"))
        assert read(tailer, unwrapper) == [b"stderr line", b"split line", b"after"]
        assert tailer.stats.rotations["rename"] == 1


def test_a_copytruncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = pods_dir(tmp_path) / "0.log"
    append(log, docker("one\n"), docker("tw"))
    unwrapper = Unwrapper("auto")
    with Tailer("pods", str(log), start="beginning") as tailer:
        assert read(tailer, unwrapper) == [b"one"]
        log.write_bytes(b"")
        append(log, docker("o\n", ts="2024-01-01T00:00:00Z"), docker("three\n"))
        assert read(tailer, unwrapper) == [b"two", b"three"]


def test_two_containers_read_through_one_glob_keep_their_partial_lines_apart(tmp_path: Path) -> None:
    web, sidecar = pods_dir(tmp_path, "web"), tmp_path / "var/log/pods/shop_api_1/api"
    sidecar.mkdir(parents=True)
    append(web / "0.log", cri("stdout", "P", b"web "))
    append(sidecar / "0.log", cri("stdout", "F", b"api line"))
    unwrapper = Unwrapper("cri")
    with Tailer("pods", str(tmp_path / "var/log/pods/*/*/*.log"), start="beginning") as tailer:
        assert read(tailer, unwrapper) == [b"api line"]
        append(web / "0.log", cri("stdout", "F", b"line"))
        assert read(tailer, unwrapper) == [b"web line"]
