"""Data sets in their real on-disk layouts, written to temp dirs, with the bad files real data has."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

#: File name -> the reason kind a scan must give it.
BAD_KINDS = {
    "corrupt": "unreadable",
    "empty": "empty",
    "headeronly": "empty",
    "nan": "non-finite",
    "silent": "silent",
    "short": "too-short",
}


def tone(sr: int, seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    """A decaying harmonic tone plus a little noise, float32 ``(samples,)``, peak < 0.8."""
    t = np.arange(int(round(sr * seconds))) / sr
    x = sum((0.3 / k) * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 5)) * np.exp(-3 * t)
    x += 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (x * np.minimum(1.0, t / 0.005)).astype(np.float32)


def write(path: Path, wav: np.ndarray, sr: int, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, sr, **kw)
    return path


def write_bad_files(folder: Path, name=lambda kind: f"{kind}.wav", sr: int = 16000) -> dict[Path, str]:
    """One file of each kind in :data:`BAD_KINDS`; returns path -> expected kind."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = {kind: folder / name(kind) for kind in BAD_KINDS}
    paths["corrupt"].write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    paths["empty"].write_bytes(b"")
    write(paths["headeronly"], np.zeros(0, np.float32), sr)
    nan = tone(sr, 0.3, 300.0)
    nan[100:110] = np.nan
    write(paths["nan"], nan, sr, subtype="FLOAT")  # only float WAV can hold a NaN
    write(paths["silent"], np.zeros(int(0.3 * sr), np.float32), sr)
    write(paths["short"], tone(sr, 0.01, 300.0), sr)
    return {paths[k]: BAD_KINDS[k] for k in BAD_KINDS}


@pytest.fixture
def fsdd_dir(tmp_path: Path) -> Path:
    """``<digit>_<speaker>_<take>.wav`` at 8 kHz, speakers with hyphens, plus bad files."""
    root = tmp_path / "fsdd"
    for label in range(3):
        for speaker in ("jackson", "espeak-en-029-f2"):
            for take in range(2):
                seconds = 0.25 + 0.05 * take
                write(root / f"{label}_{speaker}_{take}.wav", tone(8000, seconds, 200.0 + 50 * label, take), 8000)
    write_bad_files(root, name=lambda kind: f"9_bad-{kind}_0.wav", sr=8000)
    return root


@pytest.fixture
def fsdd_meta_dir(fsdd_dir: Path) -> Path:
    """FSDD with a metadata.csv beside it (as /work/devdata/digits has) for some files."""
    with open(fsdd_dir / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "digit", "speaker", "engine"])
        w.writeheader()
        for label in range(3):
            for take in range(2):
                w.writerow(
                    {"file": f"{label}_jackson_{take}.wav", "digit": label, "speaker": "JACKSON", "engine": "human"}
                )
    return fsdd_dir


@pytest.fixture
def classes_dir(tmp_path: Path) -> Path:
    """``<class>/<file>.wav`` in three classes, an index.csv beside them, bad files in one class."""
    root = tmp_path / "classes"
    rows = []
    for c, name in enumerate(("kick", "snare", "hat")):
        for i in range(3):
            path = write(root / name / f"{name}{i}.wav", tone(22050, 0.4, 100.0 * (c + 1) + 10 * i, i), 22050)
            rows.append({"file": f"{name}/{path.name}", "cls": name})
    with open(root / "index.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "cls"])
        w.writeheader()
        w.writerows(rows)
    write_bad_files(root / "snare")
    return root


@pytest.fixture
def nsynth_dir(tmp_path: Path) -> Path:
    """NSynth: examples.json + audio/<note_str>.wav."""
    root = tmp_path / "nsynth"
    examples = {}
    for family, source in (("guitar", "acoustic"), ("bass", "electronic")):
        for pitch in (48, 60):
            note = f"{family}_{source}_000-{pitch:03d}-100"
            write(root / "audio" / f"{note}.wav", tone(16000, 0.5, 440 * 2 ** ((pitch - 69) / 12)), 16000)
            examples[note] = {
                "note_str": note,
                "pitch": pitch,
                "velocity": 100,
                "sample_rate": 16000,
                "instrument_family_str": family,
                "instrument_source_str": source,
                "instrument_str": f"{family}_{source}_000",
                "qualities": [0, 1],
            }
    (root / "examples.json").write_text(json.dumps(examples))
    return root


@pytest.fixture
def maestro_dir(tmp_path: Path) -> Path:
    """A metadata CSV (audio_filename + label columns) beside audio in year folders."""
    root = tmp_path / "maestro"
    rows = []
    for i, (composer, year) in enumerate((("Bach", 2004), ("Chopin", 2006), ("Liszt", 2006))):
        rel = f"{year}/perf_{i}.wav"
        write(root / rel, np.tile(tone(8000, 1.0, 220.0 + 40 * i), 31), 8000)  # long, as recitals are
        rows.append({"canonical_composer": composer, "year": year, "audio_filename": rel, "duration": 31.0})
    with open(root / "maestro-v3.0.0.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture
def songs_dir(tmp_path: Path) -> Path:
    """Long files in nested folders in four formats (wav, flac, ogg, mp3)."""
    root = tmp_path / "songs"
    sr = 8000
    for i, (sub, ext) in enumerate(
        (("album_a", "wav"), ("album_a", "flac"), ("album_b", "ogg"), ("album_b/disc2", "mp3"))
    ):
        wav = np.tile(tone(sr, 1.0, 150.0 + 30 * i, i), 31)  # 31 s: long enough to count as songs
        write(root / sub / f"track{i}.{ext}", wav, sr)
    return root


@pytest.fixture
def plain_dir(tmp_path: Path) -> Path:
    """Unlabeled files, a couple of names that happen to look like FSDD."""
    root = tmp_path / "plain"
    names = ("rain.wav", "door_slam.flac", "wind.wav", "car_horn_2.wav", "bird.ogg", "a_b_1.wav", "steps.wav")
    for i, name in enumerate(names):
        write(root / name, tone(16000, 0.3, 300.0 + 20 * i), 16000)
    return root


@pytest.fixture
def bad_kinds() -> dict[str, str]:
    return dict(BAD_KINDS)


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    """Nothing but bad files."""
    write_bad_files(tmp_path / "bad")
    return tmp_path / "bad"
