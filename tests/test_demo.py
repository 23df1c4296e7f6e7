"""`soundloom demo --quick`: the whole main job end to end at tiny budgets, ending in a self-contained report.html.

Slow by nature (every engine runs once: about 190 CPU-seconds); it is the one test of the README's command.
"""

import json
import subprocess
import sys
from html.parser import HTMLParser

import pytest
import soundfile as sf

from soundloom.core.loopfiles import read_smpl_loops


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


# The one end-to-end run of the README's main command: 3-4 minutes on 2 cores beside the other worker, so the
# suite's per-test hang guard (300 s) is doubled for it; the whole suite's time is what stays under 10 minutes.
@pytest.mark.timeout(600)
def test_quick_demo_makes_report_with_players(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "soundloom", "demo", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # quiet: the steps' output went to logs; the terminal has the bars and the last line only
    assert "done in" in done.stdout and f"{out / 'report.html'}" in done.stdout
    noisy = [
        w for w in ("Warning", "GPU available", "LOCAL_RANK", "Epoch ", "Traceback") if w in done.stdout + done.stderr
    ]
    assert not noisy, noisy
    record = json.loads((out / "demo.json").read_text())
    status = {s["name"]: s["status"] for s in record["steps"]}
    assert all(v == "ok" for k, v in status.items() if k != "soundscape"), status
    assert status["soundscape"] in ("ok", "skipped")
    assert (out / "logs" / "train.log").read_text().startswith("$ soundloom train")
    # the loop step wrote engine-ready files
    (loop,) = read_smpl_loops(out / "loop" / "stream-loop.wav")
    assert loop.stop > loop.start
    assert sf.info(str(out / "loop" / "stream-loop.ogg")).frames > 0
    # the report: a player for every generated sound, the stream and the loop; nothing from the web
    page = Tags()
    page.feed((out / "report.html").read_text())
    audios = [a for t, a in page.tags if t == "audio"]
    sounds = [p for p in (out / "sounds").rglob("*") if p.suffix in (".wav", ".ogg")]
    assert len(sounds) >= 12 and len(audios) >= len(sounds) + 2
    for a in audios:
        assert a["src"].startswith("data:audio/") or (out / a["src"]).is_file()
    assert not any(str(a.get(k, "")).startswith(("http:", "https:")) for _, a in page.tags for k in ("src", "href"))
    tables = [t for t, _ in page.tags if t == "table"]
    assert len(tables) >= 4


def test_lanes_run_side_by_side_and_a_failure_stops_the_rest(tmp_path):
    from rich.progress import Progress

    from soundloom.cli.demo_cmds import Step, _run_section, sections

    bad = Step("bad", "scan a folder that is not there", [["scan", str(tmp_path / "missing")]], lane="a")
    after_bad = Step("after", "never runs", [["scan", str(tmp_path)]], lane="a")
    waits = Step("waits", "needs a step that never runs", [["scan", str(tmp_path)]], lane="b", needs=("after",))
    first, last = Step("first", "alone"), Step("last", "alone")
    groups = sections([first, bad, after_bad, waits, last])
    assert [[s.name for s in g] for g in groups] == [["first"], ["bad", "after", "waits"], ["last"]]

    rows: dict = {}
    with Progress(disable=True) as bars:
        tasks = {s.name: bars.add_task(s.name, start=False) for s in groups[1]}
        _run_section(groups[1], tmp_path, bars, tasks, rows)
    assert rows["bad"]["status"] == "failed" and "scan" in rows["bad"]["note"]
    assert rows["after"]["status"] == "stopped" and rows["waits"]["status"] == "stopped"
    assert rows["bad"]["cpu_seconds"] > 0


def test_lanes_share_the_cores_and_keep_the_users_thread_settings(monkeypatch):
    from soundloom.cli.demo_cmds import THREAD_VARS, lane_threads

    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    assert lane_threads("sounds", cores=8) == {var: "4" for var in THREAD_VARS}
    assert lane_threads("streams", cores=1) == {var: "1" for var in THREAD_VARS}
    assert lane_threads("main", cores=8) == {}  # a main step runs alone: the libraries' own defaults
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert "OMP_NUM_THREADS" not in lane_threads("sounds", cores=8)
