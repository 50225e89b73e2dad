"""The ledger's files (transforms/delivery/ledger.py): written as answers arrive, read back at launch."""

from __future__ import annotations

import os
import threading

import pytest

from transforms.delivery import ledger as ledger_module
from transforms.delivery.ledger import LedgerError, LedgerWriter, delivered_files, read_delivered
from transforms.rules.event_id import ledger_key

ALL_KEYS = [ledger_key("visitor", f"m-{n}") for n in range(4000)]


def keys_in(folder) -> set[bytes]:
    """What a run started now would skip, of ``ALL_KEYS`` (and nothing else is in the folder)."""
    found = read_delivered(delivered_files(str(folder)))
    skipped = {key for key in ALL_KEYS if key in found}
    assert len(found) == len(skipped)
    return skipped


def test_a_missing_folder_has_no_ledger_files(tmp_path):
    assert delivered_files(str(tmp_path / "never-written")) == []
    assert len(read_delivered([])) == 0 and ALL_KEYS[0] not in read_delivered([])


def test_each_key_is_in_the_file_as_soon_as_it_is_recorded_before_any_flush(tmp_path):
    writer = LedgerWriter(str(tmp_path / "ledger"), "run-1")
    for count, key in enumerate(ALL_KEYS[:3], start=1):
        writer.record(key)
        # What a kill -9 right now would leave: another process reads the file as it is.
        files = delivered_files(str(tmp_path / "ledger"))
        assert len(files) == 1 and os.path.basename(files[0]).startswith("delivered-run-1-")
        assert keys_in(tmp_path / "ledger") == set(ALL_KEYS[:count])
    writer.close()
    assert os.stat(files[0]).st_mode & 0o777 == 0o600


def test_the_same_id_of_two_visitors_is_two_keys_and_no_split_of_the_text_collides():
    assert ledger_key("visitor-a", "m-1") != ledger_key("visitor-b", "m-1")
    assert ledger_key("a\0b", "c") != ledger_key("a", "b\0c")
    assert ledger_key("ab", "c") != ledger_key("a", "bc") != ledger_key("1:a", "")
    assert len(ledger_key("", "")) == 16


def test_keys_whose_last_bytes_are_zero_are_found_and_no_other(tmp_path):
    folder = tmp_path / "ledger"
    writer = LedgerWriter(str(folder), "run")
    zero_ended = [bytes(15) + b"\x01", b"\x07" * 8 + bytes(8), bytes(16)]
    for key in zero_ended:
        writer.record(key)
    writer.close()
    found = read_delivered(delivered_files(str(folder)))
    assert all(key in found for key in zero_ended)
    assert b"\x07" * 8 + bytes(7) + b"\x01" not in found and bytes(15) + b"\x02" not in found


def test_two_writers_keep_files_of_their_own_and_reading_joins_them(tmp_path):
    folder = str(tmp_path / "ledger")
    first, second = LedgerWriter(folder, "run-1"), LedgerWriter(folder, "run-2")
    first.record(ALL_KEYS[0])
    second.record(ALL_KEYS[1])
    assert len(delivered_files(folder)) == 2
    assert keys_in(folder) == {ALL_KEYS[0], ALL_KEYS[1]}


def test_a_line_cut_short_by_a_kill_and_other_junk_are_not_keys(tmp_path):
    folder = tmp_path / "ledger"
    folder.mkdir()
    good = ALL_KEYS[0].hex()
    (folder / "delivered-x.keys").write_text(f"{good}\n{good[:20]}\nnot-a-key-not-a-key-not-a-key-xx\n")
    (folder / "notes.txt").write_text(ALL_KEYS[1].hex() + "\n")  # not a ledger file
    assert keys_in(folder) == {ALL_KEYS[0]}


def test_a_folder_of_the_older_ledger_format_is_refused(tmp_path):
    folder = tmp_path / "ledger"
    folder.mkdir()
    (folder / "settled-run-1-2-abc.ids").write_text(ALL_KEYS[0].hex() + "\n")
    with pytest.raises(LedgerError, match="older ledger"):
        delivered_files(str(folder))


def test_answers_recorded_from_many_threads_all_land_on_lines_of_their_own(tmp_path):
    writer = LedgerWriter(str(tmp_path / "ledger"), "run")

    def record(part: list[bytes]) -> None:
        for key in part:
            writer.record(key)

    threads = [threading.Thread(target=record, args=(ALL_KEYS[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    writer.flush()
    assert keys_in(tmp_path / "ledger") == set(ALL_KEYS)
    files = delivered_files(str(tmp_path / "ledger"))
    assert sum(1 for _ in open(files[0])) == len(ALL_KEYS)


def test_a_remote_ledger_is_written_by_its_own_thread_not_by_the_recording_one(tmp_path, monkeypatch):
    # A remote folder (gs://) is written in objects through Beam's FileSystems; here a local
    # folder is written the remote way, with a slow create standing in for a slow upload.
    uploads: list[str] = []
    slow = threading.Event()
    real_create = ledger_module.FileSystems.create

    def slow_create(path, *args, **kwargs):
        uploads.append(threading.current_thread().name)
        slow.wait(timeout=5)
        return real_create(path, *args, **kwargs)

    monkeypatch.setattr(ledger_module, "REMOTE_FLUSH_SECONDS", 0.05)
    monkeypatch.setattr(ledger_module, "is_local", lambda folder: False)
    monkeypatch.setattr(ledger_module.FileSystems, "create", slow_create)
    (tmp_path / "ledger").mkdir()
    writer = LedgerWriter(str(tmp_path / "ledger"), "run")
    for key in ALL_KEYS[:100]:
        writer.record(key)
    for _ in range(500):  # the uploader takes them within REMOTE_FLUSH_SECONDS (at most 5 s here)
        if uploads:
            break
        threading.Event().wait(0.01)
    assert uploads == ["ledger-uploader"]
    # While that upload hangs, recording goes on: the thread an answer arrives on never waits for it.
    recorder = threading.Thread(target=lambda: [writer.record(key) for key in ALL_KEYS[100:200]])
    recorder.start()
    recorder.join(timeout=2)
    assert not recorder.is_alive()
    slow.set()
    writer.close()
    assert keys_in(tmp_path / "ledger") == set(ALL_KEYS[:200])
