"""The crash harness's short mode: a few cycles of SIGKILLed writers (CLI
ingest, INSERT/COPY over the wire, compaction, read-model maintenance) and
the checks after each; `scripts/crash-harness --cycles 1000` is the long one."""
import crash_harness


def test_nothing_acknowledged_is_lost_and_answers_equal_a_clean_rebuild(tmp_path):
    h = crash_harness.Harness(tmp_path, seed=7, deep_every=0, log=lambda m: None)
    summary = h.run(12)
    assert summary["cycles"] == 12
    assert summary["kills"] > 0, summary
    assert summary["events_verified"] > 0, summary
    assert summary["deep_checks"] == 1, summary
