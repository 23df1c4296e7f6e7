"""The demo's report page: one self-contained HTML file (no CDN, no web font, no external file but the stream).

Images are embedded as base64 PNG; every short sound as a base64 ``<audio>`` data URI; the stream is
embedded when under :data:`EMBED_LIMIT_BYTES`, else linked as the relative file beside ``report.html``
(the page says which). Every text from a file is escaped. It reads the folder ``soundloom demo`` writes::

    demo.json                         steps: name, title, status (ok | skipped | failed), seconds, note
    sounds/<group>/*.wav|ogg (+ .json sidecars)
    plots/*.png
    eval/sounds.json                  soundloom eval --json
    eval/transitions.json             soundloom eval-transitions --json
    stream/stream.mp3 (+ .cue.json, .timeline.png)
    loop/*.loop.json (+ the .ogg / .wav beside it)
    soundscape/*.wav|ogg|mp3 (+ .json)  when the soundscape step ran

    build_report("demo/")   # -> demo/report.html
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np

from ..core.atomic import write_text

#: Streams up to this size are embedded in the page; larger ones are linked beside it.
EMBED_LIMIT_BYTES = 5_000_000
AUDIO_SUFFIXES = {".wav": "audio/wav", ".ogg": "audio/ogg", ".mp3": "audio/mpeg", ".flac": "audio/flac"}

#: One line per number: what it measures and which way is better.
MEANINGS = {
    "accuracy": "share of sounds a classifier trained on real clips assigns to the asked-for class (higher: "
    "the label is heard)",
    "diversity": "within-class spread of generated sounds over that of real held-out ones (1 = as varied as real; "
    "near 0 = the same sound again, above 1 = noise)",
    "fd": "Frechet distance to held-out real clips in a fixed MFCC / log-mel space no model shaped (lower: closer "
    "to real; the reference row is real against real)",
    "fd_ratio": "FD of generated sounds over FD of real against real at equal sizes (1 = as close as unseen real data)",
    "precision": "share of generated sounds inside real neighbourhoods / share of real sounds covered by "
    "generated ones (the reference row: real against real)",
    "is": "inception score of the classifier's predictions (higher: confident and varied classes)",
    "ndb": "k-means bins of real sounds whose share among generated sounds differs (p < 0.05; lower is better)",
    "mse": "held-out reconstruction error over the mean-spectrogram baseline (below 1: better than predicting "
    "the mean)",
    "lsd": "log-spectral distance of held-out reconstructions (dB, lower is better)",
    "auc": "chance the model scores the true next chunk above a wrong one: other song / same song / hard "
    "negatives (0.5 = guessing)",
    "rank": "top-1 and mean reciprocal rank of the true next chunk among 100 candidates (higher is better)",
    "seams": "share of the stream's joins passing every seam gate (level jump, spectral match, click) next to "
    "the same gates at random in-song positions (what unedited music scores)",
    "seam_distance": "median change of the sound across a join: dB RMS over 64 mel bands between the quarter "
    "second before and after it (95% bootstrap interval; lower: smoother), next to random in-song positions; "
    "first choices: each test chunk joined to the chunk the model scores best, next to a random choice",
}

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:16px 24px;color:#1d232a;background:#fbfbfa}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:16px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px}td,th{border:1px solid #d5d5d5;padding:3px 8px;text-align:left}
th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;overflow-wrap:anywhere}
.card img{width:100%;display:block}.card audio{width:100%;margin-top:4px}
.small{font-size:12.5px;color:#555}.ok{color:#18794e}.skipped{color:#946200}.failed{color:#b42318}
img.plot{max-width:100%;border:1px solid #ddd;background:#fff}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:12px;align-items:start}.plots img{width:100%}
ul.meaning li{margin:2px 0}
"""


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def data_uri(path: Path) -> str:
    """``data:`` URI of a file (mime from its suffix)."""
    mime = AUDIO_SUFFIXES.get(path.suffix.lower()) or {".png": "image/png", ".svg": "image/svg+xml"}.get(
        path.suffix.lower(), "application/octet-stream"
    )
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mono(path: Path) -> tuple[np.ndarray, int]:
    from ..core.io import read_audio

    data, rate = read_audio(path)
    return data.mean(axis=0), rate


def spectrogram_thumbnail(path: Path, n_fft: int = 512) -> str:
    """A small dB spectrogram (Hann, hop ``n_fft // 4``, 0..Nyquist Hz) of an audio file as a PNG data URI."""
    wav, rate = _mono(path)
    hop = n_fft // 4
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop] * np.hanning(n_fft)
    db = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-5)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.0, 1.1))
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 80, vmax=db.max(),
              extent=(0, len(wav) / rate, 0, rate / 2000))  # fmt: skip
    ax.set_xlabel("s", fontsize=7, labelpad=1)
    ax.set_ylabel("kHz", fontsize=7, labelpad=1)
    ax.tick_params(labelsize=6, length=2, pad=1)
    return _png_uri(fig)


def loop_figure(path: Path, start_s: float, end_s: float) -> str:
    """Waveform of a loop file with the loop region shaded, as a PNG data URI."""
    wav, rate = _mono(path)
    step = max(1, len(wav) // 2000)
    t = np.arange(0, len(wav), step) / rate
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 1.6))
    ax.plot(t, wav[::step], lw=0.5, color="#335")
    ax.axvspan(start_s, end_s, color="#4a9", alpha=0.25, label="loop")
    ax.set_xlim(0, len(wav) / rate)
    ax.set_xlabel("s", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(loc="upper right", fontsize=7)
    return _png_uri(fig)


def _audio_tag(src: str, loop: bool = False) -> str:
    return f'<audio controls preload="metadata"{" loop" if loop else ""} src="{_esc(src)}"></audio>'


def _num(x: object, fmt: str = ".3f") -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return "-"
    return format(x, fmt) if np.isfinite(x) else "-"


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_esc(c)}</td>' if i >= numeric_from else f"<td>{_esc(c)}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _meanings(keys: list[str]) -> str:
    return (
        '<ul class="meaning small">'
        + "".join(f"<li><b>{_esc(k)}</b>: {_esc(MEANINGS[k])}</li>" for k in keys)
        + "</ul>"
    )


# ---- sections --------------------------------------------------------------------------------------
def _steps_section(manifest: dict | None) -> str:
    if not manifest:
        return "<p>No demo.json: the steps are not known.</p>"
    rows = []
    for s in manifest.get("steps", []):
        status = str(s.get("status", "?"))
        secs, cpu = s.get("seconds"), s.get("cpu_seconds")
        rows.append(
            f'<tr><td>{_esc(s.get("title", s.get("name", "")))}</td><td class="{_esc(status)}">{_esc(status)}</td>'
            f'<td class="num">{_esc(_num(secs, ".0f"))}</td><td class="num">{_esc(_num(cpu, ".0f"))}</td>'
            f'<td class="small">{_esc(s.get("note", ""))}</td></tr>'
        )
    total = manifest.get("total_seconds")
    cpu = sum(s.get("cpu_seconds") or 0.0 for s in manifest.get("steps", []))
    tail = (
        f"<p>Total {_esc(_num(total, '.0f'))} s wall clock, {_esc(_num(cpu, '.0f'))} CPU-seconds (training budgets "
        "are CPU time; the sound and stream steps run side by side, so the wall clock is less than the sum of "
        "the steps' and more than their CPU time on a busy machine).</p>"
        if total is not None
        else ""
    )
    head = "<tr><th>step</th><th>status</th><th>wall s</th><th>CPU s</th><th>note</th></tr>"
    return f"<table>{head}" + "".join(rows) + "</table>" + tail


def _sound_card(path: Path) -> str:
    side = _read_json(path.with_suffix(".json")) or {}
    bits = [f"mode {side['mode']}" if side.get("mode") else None]
    if side.get("label") is not None:
        bits.append(f"label {side['label']}")
    if side.get("seed") is not None:
        bits.append(f"seed {side['seed']}")
    params = side.get("params") or {}
    skip = {"sample_rate", "griffin_lim_iters", "level"}
    bits += [f"{k} {v}" for k, v in params.items() if k not in skip and isinstance(v, (int, float, str))][:3]
    audio = side.get("audio") or {}
    if audio.get("sample_rate"):
        bits.append(f"{audio['sample_rate']} Hz")
    summary = ", ".join(b for b in bits if b) or "no sidecar"
    return (
        f'<div class="card"><b>{_esc(path.name)}</b>'
        f'<img alt="spectrogram of {_esc(path.name)}" src="{spectrogram_thumbnail(path)}">'
        f'{_audio_tag(data_uri(path))}<div class="small">{_esc(summary)}</div></div>'
    )


def _sounds_section(folder: Path) -> str:
    groups = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    out = []
    for g in groups:
        files = sorted(p for p in g.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
        if files:
            out.append(f"<h3>{_esc(g.name)}</h3><div class='grid'>" + "".join(_sound_card(p) for p in files) + "</div>")
    return "".join(out) or "<p>No generated sounds.</p>"


def _plots_section(folder: Path) -> str:
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    cells = "".join(
        f"<div><h3>{_esc(p.stem)}</h3><img class='plot' alt='{_esc(p.stem)}' src='{data_uri(p)}'></div>" for p in pngs
    )
    return f"<div class='plots'>{cells}</div>" if cells else "<p>No plots.</p>"


def _dig(d: dict, *paths: str) -> object:
    """The first value found at one of the dotted ``paths`` (reports change shape; old keys still read)."""
    for path in paths:
        cur: object = d
        for key in path.split("."):
            cur = cur.get(key) if isinstance(cur, dict) else None
        if cur is not None:
            return cur
    return None


def _sound_eval_section(report: dict | None) -> str:
    if not report:
        return "<p>The model was not evaluated (no eval/sounds.json).</p>"
    ref = report.get("reference", {})
    rec = report.get("reconstruction", {})
    gens = report.get("generation", [])
    first = gens[0] if gens else {}
    base_pr = _dig(first, "fixed_space.precision_recall.baseline") or {}
    ndb_bins = _dig(first, "fixed_space.ndb.bins", "ndb_bins")
    ndb_base = _dig(first, "summary.fixed_ndb_baseline_fraction", "fixed_space.ndb.baseline_fraction")
    rows = [
        [
            "real held-out clips (reference)",
            _num(ref.get("classifier_accuracy_phase_reconstructed")),
            _num(
                _dig(first, "fixed_space.frechet.baseline", "reference_fd") or ref.get("frechet_distance_to_train"),
                ".2f",
            ),
            "1.00",
            "1.00",
            f"{_num(base_pr.get('precision'), '.2f')} / {_num(base_pr.get('recall'), '.2f')}",
            f"{_num(ndb_base * ndb_bins, '.0f')}/{ndb_bins}" if ndb_base is not None and ndb_bins else "-",
            _num(_dig(first, "classifier_space.reference_inception_score") or ref.get("inception_score"), ".2f"),
        ]
    ]
    for g in gens:
        rows.append(
            [
                f"generated, T={g.get('temperature')} ({g.get('prior', '')} prior, {g.get('items', '?')} sounds)",
                _num(_dig(g, "summary.accuracy", "conditioned_accuracy")),
                _num(_dig(g, "fixed_space.frechet.fd", "frechet_distance_to_train"), ".2f"),
                _num(_dig(g, "summary.fixed_fd_ratio", "frechet_ratio_to_reference"), ".2f"),
                _num(_dig(g, "summary.fixed_diversity_within_class", "diversity_ratio_mean"), ".2f"),
                f"{_num(_dig(g, 'summary.fixed_precision'), '.2f')} / {_num(_dig(g, 'summary.fixed_recall'), '.2f')}",
                f"{_dig(g, 'fixed_space.ndb.different', 'ndb')}/{_dig(g, 'fixed_space.ndb.bins', 'ndb_bins')}",
                _num(_dig(g, "classifier_space.inception_score", "inception_score"), ".2f"),
            ]
        )
    head = ["sounds", "accuracy", "FD", "FD ratio", "diversity", "precision / recall", "NDB", "IS"]
    gen_table = _table(head, rows)
    rec_table = _table(
        ["held-out reconstruction", "MSE ratio to mean baseline", "LSD dB", "spectral convergence"],
        [
            [
                f"{rec.get('items', '-')} clips",
                _num(rec.get("mse_ratio_to_baseline")),
                _num(rec.get("lsd_db"), ".2f"),
                _num(rec.get("spectral_convergence")),
            ]
        ],
    )
    real = _num(ref.get("classifier_accuracy_real"))
    note = (
        f"<p class='small'>The classifier scores real held-out clips {_esc(real)} straight from their features; the "
        "reference row passes the same clips through the front end and Griffin-Lim, as generated sounds are, and "
        "compares real with real at the same sizes.</p>"
    )
    warn = f"<p class='failed'>{_esc(report['warning'])}</p>" if report.get("warning") else ""
    keys = ["accuracy", "fd", "fd_ratio", "diversity", "precision", "ndb", "is", "mse", "lsd"]
    return gen_table + note + warn + rec_table + _meanings(keys)


def _transitions_section(report: dict | None) -> str:
    if not report:
        return "<p>The transition models were not evaluated (no eval/transitions.json).</p>"
    rows = []
    for m in report.get("models", []):
        seams = m.get("seams") or {}
        rows.append(
            [
                f"{m.get('model')} ({Path(str(m.get('run', ''))).name})",
                _num(m.get("auc_other_song")),
                _num(m.get("auc_same_song")),
                _num(m.get("auc_hard")),
                _num(m.get("top1")),
                _num(m.get("mrr")),
                _num((seams.get("stream") or {}).get("pass_all"), ".2f"),
                _num((seams.get("random_in_song") or {}).get("pass_all"), ".2f"),
                _distance(seams.get("stream") or {}),
                _num((seams.get("random_in_song") or {}).get("median_seam_distance_db"), ".2f"),
                _distance(m.get("first_choice") or {}),
            ]
        )
    rows.append(["random choice"] + [""] * 9 + [_distance(report.get("first_choice_random") or {})])
    head = ["model", "AUC other song", "AUC same song", "AUC hard", "top-1", "MRR", "seams pass", "random in-song pass"]
    head += ["stream seam distance (dB)", "random in-song distance", "first-choice seam distance"]
    intro = (
        f"<p>{_esc(report.get('test_songs', '?'))} test songs, {_esc(report.get('test_chunks', '?'))} chunks "
        "(songs never seen in training).</p>"
    )
    return intro + _table(head, rows) + _overlap_note(report) + _meanings(["auc", "rank", "seams", "seam_distance"])


def _overlap_note(report: dict) -> str:
    """A line saying so when the models' stream seam distances cannot be told apart (their 95% intervals meet)."""
    spans = {}
    for m in report.get("models", []):
        stream = (m.get("seams") or {}).get("stream") or {}
        lo, hi = stream.get("seam_distance_db_95", [None, None])
        if lo is not None and hi is not None:
            spans[str(m.get("model"))] = (float(lo), float(hi))
    if len(spans) < 2 or max(lo for lo, _ in spans.values()) > min(hi for _, hi in spans.values()):
        return ""
    return (
        f"<p class='small'>The stream seam distances of {_esc(', '.join(spans))} share a 95% interval: one stream "
        "cannot tell these models' joins apart (the ranking columns can).</p>"
    )


def _distance(d: dict) -> str:
    """Median seam distance with its 95% interval, or "-"."""
    if "median_seam_distance_db" not in d:
        return "-"
    lo, hi = d.get("seam_distance_db_95", [float("nan")] * 2)
    return f"{_num(d['median_seam_distance_db'], '.2f')} ({_num(lo, '.2f')}-{_num(hi, '.2f')})"


def _stream_section(folder: Path, page_dir: Path, transitions: dict | None) -> str:
    audio = next((p for p in sorted(folder.glob("stream.*")) if p.suffix.lower() in AUDIO_SUFFIXES), None)
    if audio is None:
        return "<p>No stream.</p>"
    if audio.stat().st_size <= EMBED_LIMIT_BYTES:
        src, how = data_uri(audio), f"embedded in this page ({audio.stat().st_size / 1e6:.1f} MB)"
    else:
        src = os.path.relpath(audio, page_dir).replace(os.sep, "/")
        how = f"the file {src} beside this page ({audio.stat().st_size / 1e6:.1f} MB, too large to embed)"
    cue = _read_json(audio.with_name(audio.name + ".cue.json")) or {}
    segs = cue.get("segments", [])
    facts = (
        f"{_num(cue.get('duration_s', 0) / 60, '.1f')} min, {len(segs)} segments from "
        f"{len({s.get('song') for s in segs})} songs"
        if cue
        else "no cue sheet"
    )
    out = f"<p>{_esc(facts)}; audio: {_esc(how)}.</p>{_audio_tag(src)}"
    timeline = audio.with_name(audio.name + ".timeline.png")
    if timeline.is_file():
        out += f"<h3>timeline</h3><img class='plot' alt='stream timeline' src='{data_uri(timeline)}'>"
    for m in (transitions or {}).get("models", []):
        seams = m.get("seams")
        if seams:
            out += (
                f"<p>Seam pass rate of a stream of test songs with <b>{_esc(m.get('model'))}</b> "
                f"(run {_esc(Path(str(m.get('run', ''))).name)}): "
                f"{_esc(_num(seams.get('stream', {}).get('pass_all'), '.2f'))} of {_esc(seams.get('joins', '?'))} "
                f"joins, against {_esc(_num(seams.get('random_in_song', {}).get('pass_all'), '.2f'))} at random "
                "positions inside songs.</p>"
            )
    return out


def _loop_section(folder: Path) -> str:
    docs = sorted(folder.glob("*.loop.json")) if folder.is_dir() else []
    out = []
    for doc_path in docs:
        doc = _read_json(doc_path) or {}
        stem = doc_path.name[: -len(".loop.json")]
        audio = next(
            (doc_path.with_name(stem + s) for s in (".ogg", ".wav") if doc_path.with_name(stem + s).is_file()), None
        )
        if audio is None:
            continue
        level = doc.get("loudness") or {}
        search = doc.get("loop_search") or {}
        rows = [
            ["loop start", f"{_num(doc.get('loop_start_s'))} s ({doc.get('loop_start_samples')} samples)"],
            ["loop end", f"{_num(doc.get('loop_end_s'))} s ({doc.get('loop_end_samples')} samples, exclusive)"],
            ["length", f"{_num(doc.get('loop_length_s'))} s"],
            ["found on", f"{search.get('method', '-')}; crossfade {search.get('crossfade', 0)} samples"],
            ["seam", "passes the gates" if search.get("passed") else "fails a gate"],
            [
                "loudness",
                f"{_num(level.get('loudness_lufs'), '.1f')} LUFS ({level.get('target', '-')} target "
                f"{_num(level.get('target_lufs'), '.0f')})",
            ],
        ]
        figure = loop_figure(audio, doc.get("loop_start_s", 0.0), doc.get("loop_end_s", 0.0))
        out.append(
            f"<h3>{_esc(audio.name)}</h3>{_audio_tag(data_uri(audio), loop=True)}"
            f"<img class='plot' alt='loop region' src='{figure}'>"
            + _table(["", "value"], rows, numeric_from=9)
            + "<p class='small'>The player repeats the file; a game engine reads the WAV smpl chunk, the OGG "
            "LOOPSTART/LOOPLENGTH comments or the JSON sidecar.</p>"
        )
    return "".join(out) or "<p>No loop.</p>"


def _soundscape_section(folder: Path, note: str | None) -> str:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES) if folder.is_dir() else []
    if not files:
        return f"<p>{_esc(note or 'No soundscape in this demo.')}</p>"
    out = []
    for p in files:
        src = data_uri(p) if p.stat().st_size <= EMBED_LIMIT_BYTES else os.path.relpath(p, folder.parent)
        score = _read_json(p.with_name(p.name + ".score.json")) or {}
        facts = (
            f"{_num(score.get('duration_s', 0) / 60, '.1f')} min, {len(score.get('events', []))} events placed, "
            f"layout {score.get('layout', '?')}"
            if score
            else "no score file"
        )
        out.append(f"<h3>{_esc(p.name)}</h3><p class='small'>{_esc(facts)}</p>{_audio_tag(src)}")
    return "".join(out)


def build_report(demo: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``report.html`` (default ``demo/report.html``) from a demo folder; returns its path."""
    demo = Path(demo)
    out = Path(out) if out is not None else demo / "report.html"
    manifest = _read_json(demo / "demo.json")
    transitions = _read_json(demo / "eval" / "transitions.json")
    scape_note = next((s.get("note") for s in (manifest or {}).get("steps", []) if s.get("name") == "soundscape"), None)
    sections = [
        ("What the demo did", _steps_section(manifest)),
        ("Generated sounds", _sounds_section(demo / "sounds")),
        ("Sound model: evaluation", _sound_eval_section(_read_json(demo / "eval" / "sounds.json"))),
        ("Stream", _stream_section(demo / "stream", out.parent, transitions)),
        ("Transition models: evaluation", _transitions_section(transitions)),
        ("Loop", _loop_section(demo / "loop")),
        ("Soundscape", _soundscape_section(demo / "soundscape", scape_note)),
        ("Plots", _plots_section(demo / "plots")),
    ]
    body = "".join(f"<h2>{_esc(title)}</h2>{content}" for title, content in sections)
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>soundloom demo</title><style>{_CSS}</style></head><body>"
        "<h1>soundloom demo</h1><p class='small'>Built-in synthetic data end to end: one-shots -> features -> "
        "model -> generated sounds; songs -> chunks -> transition model -> stream -> loop. Everything on this page "
        f"is in this one file (a stream over {EMBED_LIMIT_BYTES // 1_000_000} MB is linked beside it).</p>"
        f"{body}</body></html>"
    )
    return write_text(out, page)
