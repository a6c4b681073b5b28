"""train/outputs.py: which files are rnnedge's, and a Staging that is all or nothing."""

from __future__ import annotations

import json
import os

import pytest

from rnnedge.train import outputs
from rnnedge.train.outputs import MANIFEST, MANIFEST_PENDING, Folder, OutputFolderError, Staging


def staged(folder, command=outputs.EXPORT, files=None, **kwargs):
    with Staging(folder, command, **kwargs) as stage:
        for name, text in (files or {"a.txt": "a", "sub/b.txt": "b"}).items():
            (stage.dir / name).parent.mkdir(parents=True, exist_ok=True)
            (stage.dir / name).write_text(text)
    return stage


def test_a_committed_staging_lists_every_file_with_its_sha256_and_leaves_no_temporary_folder(tmp_path):
    staged(tmp_path / "out", source="x")
    record = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert record["files"] == {name: {**entry, "by": outputs.EXPORT}
                               for name, entry in outputs.describe_files(tmp_path / "out").items() if name != MANIFEST}
    assert record["sources"] == {outputs.EXPORT: "x"} and outputs.read_sources(tmp_path / "out") == record["sources"]
    assert os.listdir(tmp_path) == ["out"]
    assert Folder.scan(tmp_path / "out").foreign == []


def test_an_exception_inside_the_staging_leaves_the_folder_as_it_was_and_removes_folders_it_made(tmp_path):
    staged(tmp_path / "out")
    before = {n: (tmp_path / "out" / n).read_bytes() for n in ("a.txt", "sub/b.txt", MANIFEST)}
    with pytest.raises(RuntimeError), Staging(tmp_path / "out", outputs.EXPORT) as stage:
        (stage.dir / "a.txt").write_text("half")
        raise RuntimeError("fails")
    assert {n: (tmp_path / "out" / n).read_bytes() for n in before} == before
    with pytest.raises(RuntimeError), Staging(tmp_path / "new" / "deeper" / "out", outputs.EXPORT):
        raise RuntimeError("fails")
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_stale_files_of_a_replaced_command_go_and_other_commands_files_stay(tmp_path):
    staged(tmp_path / "out", outputs.TRAIN, files={"model.pt": "trained"})
    staged(tmp_path / "out", files={"a.txt": "a", "firmware/int8/c.c": "c"})
    stage = staged(tmp_path / "out", files={"a.txt": "a2"})
    assert stage.folder.joinpath("model.pt").read_text() == "trained"
    assert not (tmp_path / "out" / "firmware").exists()
    assert set(json.loads((tmp_path / "out" / MANIFEST).read_text())["files"]) == {"model.pt", "a.txt"}
    staged(tmp_path / "out", outputs.TRAIN, files={"model.pt": "retrained"})  # a new model: the export is stale
    assert sorted(os.listdir(tmp_path / "out")) == sorted([MANIFEST, "model.pt"])


def test_a_crafted_manifest_cannot_make_rnnedge_remove_a_file_outside_its_folder(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "out").mkdir()
    entry = {"bytes": 7, "sha256": outputs.sha256_file(victim), "by": outputs.EXPORT}
    (tmp_path / "out" / MANIFEST).write_text(json.dumps({
        "format": outputs.MANIFEST_FORMAT, "version": outputs.MANIFEST_VERSION,
        "files": {"../victim.txt": entry, str(victim): entry}}))
    staged(tmp_path / "out")
    assert victim.read_text() == "keep me"


def test_files_listed_by_a_pending_manifest_are_rnnedges(tmp_path):
    """A run cut short between the moves: its new files are recognised by the pending manifest."""
    staged(tmp_path / "out")
    (tmp_path / "out" / "a.txt").write_text("new a")
    record = json.loads((tmp_path / "out" / MANIFEST).read_text())
    record["files"]["a.txt"] = {"bytes": 5, "sha256": outputs.sha256_file(tmp_path / "out" / "a.txt"),
                                "by": outputs.EXPORT}
    (tmp_path / "out" / MANIFEST_PENDING).write_text(json.dumps(record))
    assert Folder.scan(tmp_path / "out").foreign == []
    staged(tmp_path / "out", files={"a.txt": "a"})
    assert sorted(os.listdir(tmp_path / "out")) == sorted([MANIFEST, "a.txt"])


def test_links_and_unreadable_manifests_are_foreign_and_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("theirs")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(outside)
    (tmp_path / "out" / MANIFEST).write_text("{not json")
    assert sorted(Folder.scan(tmp_path / "out").foreign) == ["link", MANIFEST]
    with pytest.raises(OutputFolderError, match="not rnnedge's"):
        outputs.check_folder(tmp_path / "out", outputs.EXPORT, writes=[MANIFEST], force=True)
    with pytest.raises(OutputFolderError, match="holds files rnnedge did not write: link"):
        outputs.check_folder(tmp_path / "out", outputs.EXPORT)


def test_the_default_folder_is_reused_by_its_source_and_numbered_for_another(tmp_path):
    root = tmp_path / "rnnedge-out"
    first = outputs.default_folder("Net", outputs.EXPORT, "module a:Net", root)
    assert first == root / "Net"
    staged(first, source="module a:Net")
    assert outputs.default_folder("Net", outputs.EXPORT, "module a:Net", root) == first
    assert outputs.default_folder("Net", outputs.EXPORT, "module b:Net", root) == root / "Net-2"
    assert outputs.default_folder("my model?", outputs.EXPORT, "x", root) == root / "my_model"


def test_a_file_where_the_folder_should_be_is_refused(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        outputs.check_folder(tmp_path / "out", outputs.EXPORT)
    with pytest.raises(OutputFolderError, match="is a file, not a folder"), Staging(tmp_path / "out", outputs.EXPORT):
        pass


def test_a_run_cut_short_while_moving_into_place_is_named_and_the_next_run_recognises_every_file(tmp_path,
                                                                                                 monkeypatch):
    staged(tmp_path / "out")
    replace, calls = os.replace, []

    def fails_on_the_third_move(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # the pending manifest and one file are in place
            raise OSError(28, "No space left on device")
        replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", fails_on_the_third_move)
    with pytest.raises(outputs.CommitError, match="failed midway .*No space left on device.*run the command again"):
        staged(tmp_path / "out", files={"a.txt": "new a", "sub/b.txt": "new b"})
    monkeypatch.setattr(outputs.os, "replace", replace)
    assert Folder.scan(tmp_path / "out").foreign == []
    staged(tmp_path / "out", files={"a.txt": "a3", "sub/b.txt": "b3"})
    assert (tmp_path / "out" / "a.txt").read_text() == "a3" and not (tmp_path / "out" / MANIFEST_PENDING).exists()
