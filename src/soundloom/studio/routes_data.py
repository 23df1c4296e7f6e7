"""Data routes: browse folders under the root, play any audio file, thumbnails, the scan report."""

from __future__ import annotations

import io
import os

import numpy as np
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from ..core.errors import AudioError, ParameterError
from ..core.io import is_audio_file
from .state import StudioState

#: Entries listed per folder at most (the page says when there were more).
MAX_ENTRIES = 2000
#: Audio read for a thumbnail at most (s): a thumbnail of a long song shows its start.
THUMB_SECONDS = 30.0
#: Thumbnail size in pixels (width, height).
THUMB_SIZE = (240, 72)
#: Colours of the spectrogram thumbnail, dark to bright (a short magma-like ramp).
RAMP = np.array(
    [[12, 10, 24], [44, 17, 86], [110, 32, 118], [182, 54, 102], [240, 105, 74], [252, 186, 100], [252, 250, 190]],
    dtype=np.float32,
)


class ScanRequest(BaseModel):
    path: str = Field("", max_length=1024, description="folder relative to the root")
    layout: str | None = Field(None, max_length=32, description="layout; detected when left out")
    min_seconds: float = Field(0.05, ge=0, le=60)


def router(state: StudioState) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["data"])

    @api.get("/files")
    def files(path: str = Query("", max_length=1024, description="folder relative to the root")) -> dict:
        """A folder's sub-folders and audio files (hidden entries left out); sizes in bytes."""
        folder = state.existing(path, "dir")
        dirs, audio, more = [], [], 0
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name.lower())
        except OSError as exc:
            raise ParameterError(f"{path or '.'}: cannot list ({exc.strerror})") from exc
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if len(dirs) + len(audio) >= MAX_ENTRIES:
                more += 1
                continue
            rel = state.rel(entry.path)
            if rel is None:  # a link out of the root: not shown
                continue
            try:
                if entry.is_dir():
                    dirs.append({"name": entry.name, "path": rel})
                elif entry.is_file() and is_audio_file(entry.name):
                    audio.append({"name": entry.name, "path": rel, "bytes": entry.stat().st_size})
            except OSError:
                continue
        parent = state.rel(folder.parent) if folder != state.root else None
        return {"path": state.rel(folder), "parent": parent, "dirs": dirs, "files": audio, "more": more}

    @api.get("/audio", response_class=FileResponse)
    def audio(path: str = Query(..., max_length=1024, description="audio file relative to the root")):
        """The file's bytes (range requests work, so players can seek)."""
        file = state.existing(path, "file")
        if not is_audio_file(file.name):
            raise ParameterError(f"{path}: not an audio file")
        return FileResponse(file, headers={"Cache-Control": "no-cache"})

    @api.get("/thumb", responses={200: {"content": {"image/png": {}}}})
    def thumb(
        path: str = Query(..., max_length=1024, description="audio file relative to the root"),
        kind: str = Query("spec", pattern="^(spec|wave)$", description="spectrogram or waveform"),
    ) -> Response:
        """A small PNG of the file's first :data:`THUMB_SECONDS`: log spectrogram or min/max waveform."""
        file = state.existing(path, "file")
        wav, rate = _read_mono(file)
        png = spectrogram_png(wav, rate) if kind == "spec" else waveform_png(wav)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=60"})

    @api.post("/scan")
    async def scan_folder(req: ScanRequest) -> dict:
        """The scan report of a folder: counts per label, durations, bad files with reasons (paths relative)."""
        from ..data.scan import scan

        folder = state.existing(req.path, "dir")
        report = await run_in_threadpool(scan, folder, req.layout, req.min_seconds, workers=1)
        out = report.to_dict()
        out["root"] = state.rel(folder)
        for bad in out["bad"]:
            bad["path"] = state.rel(bad["path"]) or os.path.basename(bad["path"])
        return out

    return api


def _read_mono(file) -> tuple[np.ndarray, int]:
    """The first :data:`THUMB_SECONDS` of ``file``, mono float32 ``(samples,)``, and its rate (Hz)."""
    from ..core.io import audio_info, read_audio

    info = audio_info(file)
    wav, rate = read_audio(file, 0, int(THUMB_SECONDS * info.sample_rate))
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=0)
    if wav.size == 0:
        raise AudioError(file.name, "empty: no samples to draw")
    return np.nan_to_num(wav), rate


def waveform_png(wav: np.ndarray, size: tuple[int, int] = THUMB_SIZE) -> bytes:
    """Min/max envelope of ``wav`` ``(samples,)`` as a PNG of ``size`` pixels."""
    from PIL import Image

    w, h = size
    cols = (
        np.array_split(wav, w) if wav.size >= w else [wav[min(i * wav.size // w, wav.size - 1) :][:1] for i in range(w)]
    )
    lo = np.array([c.min() for c in cols])
    hi = np.array([c.max() for c in cols])
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (22, 24, 30)
    mid = (h - 1) / 2
    top = np.clip(np.round(mid - hi * mid), 0, h - 1).astype(int)
    bottom = np.clip(np.round(mid - lo * mid), 0, h - 1).astype(int)
    for x in range(w):
        img[top[x] : bottom[x] + 1, x] = (94, 200, 190)
    return _png(Image.fromarray(img))


def spectrogram_png(wav: np.ndarray, rate: int, size: tuple[int, int] = THUMB_SIZE, range_db: float = 80.0) -> bytes:
    """Log-magnitude spectrogram of ``wav`` ``(samples,)`` at ``rate`` Hz, the top ``range_db`` dB, as a PNG."""
    from PIL import Image

    from ..core.spectrogram import SpectrogramConfig, power_frames, power_to_db

    n_fft = 256 if rate <= 16000 else 512
    cfg = SpectrogramConfig(sample_rate=rate, n_fft=n_fft, hop_length=max(1, min(n_fft // 4, wav.size // size[0] or 1)))
    db = power_to_db(power_frames(wav, cfg), floor_db=-120.0)  # (frames, bins)
    top = float(db.max())
    level = np.clip((db - (top - range_db)) / range_db, 0.0, 1.0).T[::-1]  # (bins, frames), low frequencies below
    idx = level * (len(RAMP) - 1)
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, len(RAMP) - 1)
    frac = (idx - lo)[..., None]
    rgb = (RAMP[lo] * (1 - frac) + RAMP[hi] * frac).astype(np.uint8)
    return _png(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
