import shutil

import numpy as np
import pytest

from soundloom.core.errors import PoolError
from soundloom.core.io import read_audio
from soundloom.streams.catalog import ChunkCatalog, find_songs
from soundloom.streams.chunking import ChunkConfig


def test_incremental_add_only_new_songs(songs_dir, tmp_path):
    folder = tmp_path / "songs"
    folder.mkdir()
    files = find_songs(songs_dir)
    for f in files[:2]:
        shutil.copy(f, folder / f.name)
    cfg = ChunkConfig(method="fixed", seconds=1.0)
    with ChunkCatalog(tmp_path / "pool") as c:
        assert len(c.add_songs(find_songs(folder), cfg)) == 2
        n_chunks = len(c.chunks())
        shutil.copy(files[2], folder / files[2].name)
        added = c.add_songs(find_songs(folder), cfg)
        assert [a.path.split("/")[-1] for a in added] == [files[2].name]
        assert len(c.chunks()) == n_chunks + 6
        assert c.summary()["songs"] == 3
        with pytest.raises(ValueError, match="chunked with"):
            c.add_songs(find_songs(folder), ChunkConfig(method="fixed", seconds=2.0))


def test_chunks_are_offsets_into_source(pool):
    with ChunkCatalog(pool, create=False) as c:
        t = c.chunks()
        songs = c.song_map()
        assert len(c.songs()) == 4 and len(t) == 24
        assert np.all(t.end - t.start == 22050)
        s = songs[int(t.song_id[3])]
        wav, _ = read_audio(s.path, int(t.start[3]), int(t.end[3]))
        full, _ = read_audio(s.path)
        assert np.array_equal(wav[0], full[0, t.start[3] : t.end[3]])
        assert np.all(np.isfinite(t.loudness_lufs)) and np.all(t.loudness_lufs > -40)
        assert np.allclose(np.linalg.norm(t.head_spec, axis=1), 1, atol=1e-2)
        succ = t.successor()
        assert succ[0] == 1 and succ[5] == -1


def test_missing_pool_is_named(tmp_path):
    with pytest.raises(PoolError, match="not a pool"):
        ChunkCatalog(tmp_path / "nope", create=False)
