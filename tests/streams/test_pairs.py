import numpy as np

from soundloom.streams.catalog import ChunkCatalog
from soundloom.streams.pairs import KINDS, SongAudio, make_pairs, open_split, pair_windows, split_songs


def test_split_by_song_is_disjoint_and_complete(pool):
    with ChunkCatalog(pool, create=False) as c:
        split = open_split(c)
        ids = [s.id for s in c.songs()]
    sets = [set(split[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set().union(*sets) == set(ids)
    assert all(len(s) >= 1 for s in sets)


def test_split_is_deterministic_and_seeded(pool):
    with ChunkCatalog(pool, create=False) as c:
        songs = c.songs()
    assert split_songs(songs, seed=3) == split_songs(songs, seed=3)
    many = [split_songs(songs, seed=s)["test"] for s in range(8)]
    assert len({tuple(m) for m in many}) > 1


def test_pairs_kinds_labels_and_song_limits(pool):
    with ChunkCatalog(pool, create=False) as c:
        table, songs = c.chunks(), c.song_map()
        ids = [s.id for s in c.songs()][:2]
        p = make_pairs(table, songs, ids, c.sample_rate, seed=0)
    assert set(np.unique(p.kind)) == set(range(len(KINDS)))
    assert np.all((p.label == 1) == (p.kind == 0))
    assert set(np.unique(np.concatenate([p.a_song, p.b_song]))) <= set(ids)
    nxt = p.select(p.kind == 0)
    assert np.all(nxt.a_song == nxt.b_song) and np.all(nxt.b_start == nxt.a_end)  # fixed chunks abut
    other = p.select(p.kind == 1)
    assert np.all(other.a_song != other.b_song)
    same = p.select(p.kind == 2)
    assert np.all(same.a_song == same.b_song) and np.all(same.b_start != same.a_end)


def test_next_pair_windows_are_continuous_audio(pool):
    with ChunkCatalog(pool, create=False) as c:
        table, songs = c.chunks(), c.song_map()
        sid = c.songs()[0].id
        p = make_pairs(table, songs, [sid], c.sample_rate, kinds=("next",))
        audio = SongAudio(songs, c.sample_rate)
        tails, heads = pair_windows(audio, p, 1000, 1000)
    wav = audio[sid]
    e = int(p.a_end[0])
    assert np.array_equal(np.concatenate([tails[0], heads[0]]), wav[e - 1000 : e + 1000])
