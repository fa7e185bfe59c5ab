"""The kubelet's ``/var/log/containers`` symlinks: followed into ``/var/log/pods`` (a configured root), never elsewhere."""

from __future__ import annotations

from pathlib import Path

from slaprobe.probes.tailer import LINK_ROOTS, Tailer
from slaprobe.probes.wrappers import kubernetes_fields

UID = "0f6c2a53-5d5e-4b8a-9c1e-3f1a2b3c4d5e"
CONTAINER_ID = "a" * 64


def pod_tree(root: Path) -> tuple[Path, Path]:
    """A fake node: ``pods/<ns>_<pod>_<uid>/<container>/0.log`` and its ``containers/`` link."""
    log_dir = root / "pods" / f"shop_web-7d9f_{UID}" / "nginx"
    log_dir.mkdir(parents=True)
    log = log_dir / "0.log"
    log.write_bytes(b"")
    links = root / "containers"
    links.mkdir()
    (links / f"web-7d9f_shop_nginx-{CONTAINER_ID}.log").symlink_to(log)
    return log, links


def append(path: Path, *lines: str) -> None:
    with path.open("ab") as out:
        out.write("".join(f"{text}\n" for text in lines).encode())


def test_the_default_root_is_the_kubelets_pod_log_directory() -> None:
    assert LINK_ROOTS == ("/var/log/pods",)


def test_a_containers_symlink_is_read_as_the_pod_log_it_points_to(tmp_path: Path) -> None:
    log, links = pod_tree(tmp_path)
    tailer = Tailer("pods", str(links / "*.log"), start="beginning", link_roots=[str(tmp_path / "pods")])
    append(log, "one", "two")
    assert tailer.poll() == [b"one", b"two"]
    assert [path for path, _ in tailer.last_spans] == [str(log)]
    fields = kubernetes_fields(tailer.last_spans[0][0])
    assert fields == {"k8s_namespace": "shop", "k8s_pod": "web-7d9f", "k8s_container": "nginx"}


def test_a_file_behind_two_links_is_read_once(tmp_path: Path) -> None:
    log, links = pod_tree(tmp_path)
    (links / f"web-7d9f_shop_nginx-{'d' * 64}.log").symlink_to(log)
    tailer = Tailer("pods", str(links / "*.log"), start="beginning", link_roots=[str(tmp_path / "pods")])
    append(log, "once")
    lines = tailer.poll()
    lines += tailer.poll()
    assert lines == [b"once"]
    assert tailer.stats.files == 1


def test_a_symlink_out_of_the_roots_is_skipped(tmp_path: Path) -> None:
    _, links = pod_tree(tmp_path)
    private = tmp_path / "private"
    private.mkdir()
    (private / "secret.log").write_text("password=hunter2\n")
    (links / f"evil_shop_x-{'b' * 64}.log").symlink_to(private / "secret.log")
    # ... also through a directory link under the root that leads out of it
    (tmp_path / "pods" / "escape").symlink_to(private)
    (links / f"evil2_shop_x-{'c' * 64}.log").symlink_to(tmp_path / "pods" / "escape" / "secret.log")
    tailer = Tailer("pods", str(links / "*.log"), start="beginning", link_roots=[str(tmp_path / "pods")])
    assert tailer.poll() == []
    assert tailer.stats.files == 1  # the pod's own log, still empty


def test_without_roots_every_symlink_is_skipped_as_before(tmp_path: Path) -> None:
    log, links = pod_tree(tmp_path)
    append(log, "hidden")
    tailer = Tailer("pods", str(links / "*.log"), start="beginning", link_roots=())
    assert tailer.poll() == []


def test_a_kubelet_rotation_behind_the_link_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log, links = pod_tree(tmp_path)
    tailer = Tailer("pods", str(links / "*.log"), start="beginning", link_roots=[str(tmp_path / "pods")])
    append(log, "before-1", "before-2")
    got = tailer.poll()
    append(log, "last-of-old")
    # The kubelet renames 0.log to 0.log.<timestamp> and starts a new 0.log; the link stays.
    log.rename(log.with_name("0.log.20261204-050000"))
    append(log, "first-of-new")
    for _ in range(3):
        got += tailer.poll()
    assert got == [b"before-1", b"before-2", b"last-of-old", b"first-of-new"]
