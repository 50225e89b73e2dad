"""The ledger's files (transforms/delivery/ledger.py): written as answers arrive, read back at launch."""

from __future__ import annotations

import os
import threading

from transforms.delivery.ledger import LedgerWriter, key_digest, read_settled, settled_files
from transforms.rules.event_id import ledger_key


def test_a_missing_folder_has_no_settled_files(tmp_path):
    assert settled_files(str(tmp_path / "never-written")) == []
    assert read_settled([]) == set()


def test_each_key_is_in_the_file_as_soon_as_it_is_recorded_before_any_close(tmp_path):
    writer = LedgerWriter(str(tmp_path / "ledger"), "run-1")
    keys = [ledger_key(f"m-{n}") for n in range(3)]
    for count, key in enumerate(keys, start=1):
        writer.record(key)
        # What a kill -9 right now would leave: another process reads the file as it is.
        files = settled_files(str(tmp_path / "ledger"))
        assert len(files) == 1 and os.path.basename(files[0]).startswith("settled-run-1-")
        assert read_settled(files) == {key_digest(k) for k in keys[:count]}
    writer.close()
    assert os.stat(files[0]).st_mode & 0o777 == 0o600


def test_two_writers_keep_files_of_their_own_and_reading_joins_them(tmp_path):
    folder = str(tmp_path / "ledger")
    first, second = LedgerWriter(folder, "run-1"), LedgerWriter(folder, "run-2")
    first.record(ledger_key("a"))
    second.record(ledger_key("b"))
    files = settled_files(folder)
    assert len(files) == 2
    assert read_settled(files) == {key_digest(ledger_key("a")), key_digest(ledger_key("b"))}


def test_a_line_cut_short_by_a_kill_and_other_junk_are_not_keys(tmp_path):
    folder = tmp_path / "ledger"
    folder.mkdir()
    good = ledger_key("a")
    (folder / "settled-x.ids").write_text(f"{good}\n{good[:20]}\nnot-a-key-not-a-key-not-a-key-xx\n")
    (folder / "notes.txt").write_text(ledger_key("b") + "\n")  # not a ledger file
    assert read_settled(settled_files(str(folder))) == {key_digest(good)}


def test_answers_recorded_from_many_threads_all_land_on_lines_of_their_own(tmp_path):
    writer = LedgerWriter(str(tmp_path / "ledger"), "run")
    keys = [ledger_key(f"m-{n}") for n in range(4000)]

    def record(part: list[str]) -> None:
        for key in part:
            writer.record(key)

    threads = [threading.Thread(target=record, args=(keys[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    files = settled_files(str(tmp_path / "ledger"))
    assert read_settled(files) == {key_digest(key) for key in keys}
    assert sum(1 for _ in open(files[0])) == len(keys)
