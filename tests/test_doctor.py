"""``python -m recbook doctor``: each failure becomes a line, and the verdict names it."""

from __future__ import annotations

from recbook.book import doctor


def test_a_failing_probe_becomes_a_failed_line_not_a_crash():
    def broken() -> str:
        raise ImportError("No module named 'faiss'")

    check = doctor._timed("faiss", broken)
    assert not check.ok and "ImportError: No module named 'faiss'" in check.detail


def test_verdict_names_what_failed():
    good = doctor.Check("python", True, "3.11")
    bad = doctor.Check("faiss", False, "ImportError")
    assert doctor.verdict([good]).startswith("recbook doctor: READY")
    line = doctor.verdict([good, bad])
    assert line.startswith("recbook doctor: NOT READY") and "faiss" in line


def test_too_little_disk_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "MIN_FREE_DISK_GB", 1e9)
    check = doctor._timed("disk", lambda: doctor._disk(tmp_path))
    assert not check.ok and "keep at least" in check.detail


def test_the_smoke_run_passes_here():
    check = doctor._timed("smoke run", doctor._smoke)
    assert check.ok, check.detail
    assert "EASE NDCG@10" in check.detail
