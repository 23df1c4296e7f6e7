"""Incremental Ogg Vorbis encoding of a live stream, block by block, for chunked HTTP.

libsndfile (through soundfile) writes into a file-like sink; what it has written after each block is
taken out and sent. A listener's stream is one Ogg bitstream from its own first block: the header
pages come first, then audio pages as the encoder fills them (4 KB pages: every 0.3-0.5 s of music at
22.05 kHz mono), so ``<audio>``, VLC and ffplay play it as it arrives.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

#: MIME type of the compressed live stream.
OGG_MIME = "audio/ogg"
#: Vorbis quality (soundfile's ``compression_level``: 0 best .. 1 smallest): 0, about 90 kb/s at 22.05 kHz mono
#: (WAV: 353 kb/s). At 0.6 (about 50 kb/s) Chromium took the stream in bursts of 3-5 s of audio (its media
#: cache fills 32 KB blocks) and its buffer ran dry a few times a minute; at 0 it holds a steady 2.3 s.
COMPRESSION = 0.0


class _Sink(io.RawIOBase):
    """Write-only sink that libsndfile takes for a seekable file: it only seeks to where it already is
    (when it opens), so ``tell`` is the count of bytes written and ``seek`` moves nowhere."""

    def __init__(self) -> None:
        super().__init__()
        self.buf = bytearray()
        self.pos = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def write(self, data) -> int:
        self.buf += data
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.pos

    def take(self) -> bytes:
        out, self.buf = bytes(self.buf), bytearray()
        return out


class OggEncoder:
    """Encodes 16-bit mono PCM blocks to one Ogg Vorbis bitstream, handing back the bytes as they come.

    Args:
        sample_rate: Hz (Vorbis takes the pool's rate as it is).
    """

    def __init__(self, sample_rate: int) -> None:
        self._sink = _Sink()
        self._file = sf.SoundFile(
            self._sink,
            "w",
            samplerate=sample_rate,
            channels=1,
            format="OGG",
            subtype="VORBIS",
            compression_level=COMPRESSION,
        )

    def encode(self, pcm: bytes | np.ndarray) -> bytes:
        """Ogg bytes ready after adding ``pcm`` (16-bit little-endian mono samples, bytes or ``(n,)`` int16);
        often empty (the encoder fills a page first)."""
        samples = np.frombuffer(pcm, "<i2") if isinstance(pcm, bytes | bytearray | memoryview) else pcm
        if len(samples):
            self._file.write(np.ascontiguousarray(samples, dtype=np.int16))
        return self._sink.take()

    def close(self) -> bytes:
        """The last pages (the end of the bitstream); the encoder is done after this."""
        if not self._file.closed:
            self._file.close()
        return self._sink.take()
