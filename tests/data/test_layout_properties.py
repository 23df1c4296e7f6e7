"""Property tests of the layout parsers: any file name never crashes discovery, and the labels a
name carries come back out of it (FSDD names, class folders, NSynth note names)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soundloom.core.errors import LayoutError
from soundloom.data.layouts import FSDD_PATTERN, discover

#: Characters a Linux file name may hold (no "/", no NUL; no lone surrogates, which cannot be encoded).
NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")
#: A WAV of one 8 kHz sample: the parsers never read audio, but the files must exist.
TINY_WAV = (
    b"RIFF&\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00\x02\x00\x10\x00"
    b"data\x02\x00\x00\x00\x00\x00"
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fits(name: str) -> bool:
    return 0 < len(name.encode()) <= 200 and name not in (".", "..")


def _part(min_size: int = 1) -> st.SearchStrategy[str]:
    return st.text(NAME_CHARS, min_size=min_size, max_size=30).filter(_fits)


@SETTINGS
@given(
    names=st.lists(_part(), min_size=1, max_size=8, unique=True),
    ext=st.sampled_from([".wav", ".WAV", ".flac", ".txt", ""]),
)
def test_any_file_names_never_crash_discovery(names, ext):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in names:
            (root / f"{name}{ext}").write_bytes(TINY_WAV)
        for layout in (None, "fsdd", "plain", "classes", "songs"):
            try:
                ds = discover(root, layout, with_info=False)
            except LayoutError:
                continue  # "no audio files for layout ..." is an answer, not a crash
            assert all(it.path.is_file() for it in ds.items)
            assert len({it.id for it in ds.items}) == len(ds.items)


LABEL = st.text(NAME_CHARS.filter(lambda c: c != "_"), min_size=1, max_size=12).filter(
    lambda s: not s.startswith(".") and _fits(s)
)


@SETTINGS
@given(
    entries=st.lists(
        st.tuples(LABEL, _part(), st.integers(0, 10**6)), min_size=1, max_size=6, unique_by=lambda e: (e[0], e[1], e[2])
    )
)
def test_fsdd_labels_round_trip_through_the_file_name(entries):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        expected = {}
        for label, speaker, take in entries:
            stem = f"{label}_{speaker}_{take}"
            if not _fits(stem + ".wav") or "." in speaker or not FSDD_PATTERN.match(stem):
                continue  # a dot in the speaker would turn part of it into the extension
            (root / f"{stem}.wav").write_bytes(TINY_WAV)
            expected[stem] = {"label": label, "speaker": speaker, "take": str(take)}
        if not expected:
            return
        ds = discover(root, "fsdd", with_info=False)
        assert {it.id: it.labels for it in ds.items} == expected


@SETTINGS
@given(
    classes=st.dictionaries(_part().filter(lambda s: not s.startswith(".")), st.integers(1, 3), min_size=1, max_size=4)
)
def test_class_folder_names_round_trip_as_labels(classes):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, n in classes.items():
            for i in range(n):
                path = root / name / f"clip{i}.wav"
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(TINY_WAV)
        ds = discover(root, "classes", with_info=False)
        counts: dict[str, int] = {}
        for it in ds.items:
            counts[it.labels["label"]] = counts.get(it.labels["label"], 0) + 1
        assert counts == classes


@SETTINGS
@given(
    notes=st.dictionaries(
        _part().filter(lambda s: not s.startswith(".")),
        st.fixed_dictionaries({"pitch": st.integers(0, 127), "instrument_family_str": _part()}),
        min_size=1,
        max_size=5,
    )
)
def test_nsynth_note_names_and_labels_round_trip(notes):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "audio").mkdir()
        examples = {}
        for note, labels in notes.items():
            if not _fits(note + ".wav"):
                continue
            (root / "audio" / f"{note}.wav").write_bytes(TINY_WAV)
            examples[note] = {"note_str": note, **labels}
        if not examples:
            return
        (root / "examples.json").write_text(json.dumps(examples))
        ds = discover(root, with_info=False)
        assert ds.layout == "nsynth"
        assert {it.id: it.labels for it in ds.items} == {k: {kk: v[kk] for kk in notes[k]} for k, v in examples.items()}


@pytest.mark.parametrize("name", ["x.wav", "7_jackson_0.wav"])
def test_a_folder_named_like_audio_is_not_an_item(tmp_path, name):
    (tmp_path / name).mkdir()
    (tmp_path / "1_a_0.wav").write_bytes(TINY_WAV)
    (tmp_path / "2_b_0.wav").write_bytes(TINY_WAV)
    ds = discover(tmp_path, with_info=False)
    assert [it.path.name for it in ds.items] == ["1_a_0.wav", "2_b_0.wav"]
