"""components/progress.py: progress as log lines at every tenth of the work and every so many seconds."""

from components.progress import ProgressLog


def test_a_line_at_every_tenth_and_after_a_silence():
    lines: list[str] = []
    now = [0.0]
    progress = ProgressLog(lines.append, "test set", 200, every=30.0, clock=lambda: now[0])
    for _ in range(200):
        progress(1)
    assert lines == [f"test set: {k * 20}/200 calls" for k in range(1, 11)]
    lines.clear()
    slow = ProgressLog(lines.append, "slow", 1000, every=30.0, clock=lambda: now[0])
    slow(1)
    now[0] = 31.0
    slow(1)  # not a tenth yet, but 31 s since the last line
    assert lines == ["slow: 2/1000 calls"]
