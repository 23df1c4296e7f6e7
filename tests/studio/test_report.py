"""The demo report: one self-contained page with players, thumbnails, tables; nothing fetched from the web."""

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import soundfile as sf

from soundloom.studio import report as report_mod
from soundloom.studio.report import build_report

RATE = 8000


class Page(HTMLParser):
    """Collects tags with their attributes and the text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def of(self, name: str) -> list[dict]:
        return [a for t, a in self.tags if t == name]


def tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def fake_demo(root: Path, stream_bytes: int = 0) -> Path:
    """A demo folder as `soundloom demo` leaves it, with tiny files (and a hostile label to escape)."""
    for group, n in (("bell", 2), ("kick-to-snare", 3)):
        d = root / "sounds" / group
        d.mkdir(parents=True)
        for i in range(n):
            sf.write(d / f"sample_{i:03d}.wav", tone(0.5, 440 * (i + 1)), RATE)
            side = {"mode": "sample", "label": "<script>alert(1)</script>", "seed": i, "audio": {"sample_rate": RATE}}
            (d / f"sample_{i:03d}.json").write_text(json.dumps(side))
    (root / "plots").mkdir()
    _png(root / "plots" / "generated.png")
    (root / "eval").mkdir()
    (root / "eval" / "sounds.json").write_text(
        json.dumps(
            {
                "reconstruction": {
                    "items": 9,
                    "mse_ratio_to_baseline": 0.41,
                    "lsd_db": 7.5,
                    "spectral_convergence": 0.3,
                },
                "reference": {"classifier_accuracy_real": 0.97, "classifier_accuracy_phase_reconstructed": 0.93},
                "generation": [
                    {
                        "temperature": 0.8,
                        "prior": "fitted",
                        "items": 27,
                        "summary": {
                            "accuracy": 0.876,
                            "fixed_fd_ratio": 2.24,
                            "fixed_diversity_within_class": 0.61,
                            "fixed_precision": 0.8,
                            "fixed_recall": 0.5,
                            "fixed_ndb_baseline_fraction": 0.05,
                        },
                        "fixed_space": {
                            "frechet": {"fd": 9.5, "baseline": 4.25, "ratio": 2.24},
                            "ndb": {"bins": 20, "different": 4},
                            "precision_recall": {"baseline": {"precision": 0.9, "recall": 0.85}},
                        },
                        "classifier_space": {"inception_score": 6.2, "reference_inception_score": 7.1},
                    }
                ],
            }
        )
    )
    seams = {"stream": {"pass_all": 0.9}, "random_in_song": {"pass_all": 0.72}, "joins": 30}
    (root / "eval" / "transitions.json").write_text(
        json.dumps(
            {
                "test_songs": 2,
                "test_chunks": 40,
                "models": [
                    {"model": "features", "run": "features", "auc_other_song": 0.7, "top1": 0.1, "mrr": 0.2},
                    {"model": "contrastive", "run": "runs/transitions", "auc_other_song": 0.8, "seams": seams},
                ],
            }
        )
    )
    (root / "stream").mkdir()
    stream = root / "stream" / "stream.wav"
    sf.write(stream, tone(max(1.0, stream_bytes / (2 * RATE)), 220), RATE, subtype="PCM_16")
    cue = {"duration_s": 1.0, "sample_rate": RATE, "segments": [{"song": "a"}, {"song": "b"}]}
    (root / "stream" / "stream.wav.cue.json").write_text(json.dumps(cue))
    _png(root / "stream" / "stream.wav.timeline.png")
    (root / "loop").mkdir()
    sf.write(root / "loop" / "theme.ogg", tone(2.0, 330), RATE)
    loop_doc = {
        "loop_start_s": 0.5,
        "loop_end_s": 1.5,
        "loop_start_samples": 4000,
        "loop_end_samples": 12000,
        "loop_length_s": 1.0,
        "loudness": {"target": "streaming", "target_lufs": -14.0, "loudness_lufs": -14.1},
        "loop_search": {"method": "beats", "crossfade": 0, "passed": True},
    }
    (root / "loop" / "theme.loop.json").write_text(json.dumps(loop_doc))
    steps = [
        {"name": "data", "title": "built-in data", "status": "ok", "seconds": 3.2},
        {"name": "soundscape", "title": "soundscape", "status": "skipped", "note": "no `soundloom soundscape` yet"},
    ]
    (root / "demo.json").write_text(json.dumps({"steps": steps, "total_seconds": 60}))
    return root


def _png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    fig.savefig(path)
    plt.close(fig)


def parse(path: Path) -> tuple[Page, str]:
    text = path.read_text()
    page = Page()
    page.feed(text)
    return page, text


def test_report_is_self_contained_with_players_and_tables(tmp_path):
    out = build_report(fake_demo(tmp_path / "demo"))
    page, text = parse(out)
    audios = page.of("audio")
    assert len(audios) == 2 + 3 + 1 + 1  # every sound, the stream, the loop
    for a in audios:
        assert a["src"].startswith("data:audio/") or (out.parent / a["src"]).is_file()
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            assert not str(attrs.get(key, "")).lower().startswith(("http://", "https://", "//")), (tag, attrs)
    assert "<link" not in text and "@import" not in text and "url(" not in text  # no external style or font
    imgs = page.of("img")
    assert len(imgs) >= 5 + 2 + 1 and all(i["src"].startswith("data:image/png;base64,") for i in imgs)
    assert len(page.of("table")) >= 4  # steps, generation, reconstruction, transitions, loop
    words = " ".join(page.text)
    assert "0.876" in words and "0.930" in words  # generated accuracy beside the real-data reference
    assert "9.50" in words and "4.25" in words and "0.61" in words  # FD beside real-vs-real, diversity
    assert "0.90" in words and "0.72" in words  # stream seams beside random in-song positions
    assert "Frechet distance" in words and "no `soundloom soundscape` yet" in words
    assert "<script>" not in text and "&lt;script&gt;" in text  # sidecar text escaped


def test_large_stream_is_linked_beside_the_page(tmp_path, monkeypatch):
    monkeypatch.setattr(report_mod, "EMBED_LIMIT_BYTES", 10_000)
    out = build_report(fake_demo(tmp_path / "demo", stream_bytes=40_000))
    page, _ = parse(out)
    linked = [a["src"] for a in page.of("audio") if not a["src"].startswith("data:")]
    assert linked == ["stream/stream.wav"] and (out.parent / linked[0]).is_file()
    assert "beside this page" in " ".join(page.text)


def test_empty_folder_still_makes_a_page(tmp_path):
    out = build_report(tmp_path, tmp_path / "r.html")
    page, _ = parse(out)
    assert page.of("audio") == [] and "No generated sounds." in " ".join(page.text)


def test_transitions_section_says_when_one_stream_cannot_tell_models_apart():
    def report(features_ci, learned_ci):
        models = [
            {"model": name, "seams": {"stream": {"median_seam_distance_db": sum(ci) / 2, "seam_distance_db_95": ci}}}
            for name, ci in (("features", features_ci), ("fusion", learned_ci))
        ]
        return report_mod._transitions_section({"test_songs": 2, "test_chunks": 40, "models": models})

    assert "cannot tell" in report([7.9, 10.7], [8.9, 12.4])
    assert "cannot tell" not in report([5.0, 6.0], [8.9, 12.4])
    assert "8.90-12.40" in report([5.0, 6.0], [8.9, 12.4])
