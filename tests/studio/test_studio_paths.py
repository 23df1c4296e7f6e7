"""Root confinement: each way out of the root is refused (4xx over HTTP); any string is inside or refused."""

from __future__ import annotations

import os
import string

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soundloom.core.errors import ParameterError
from soundloom.studio.paths import relative_to_root, resolve_in_root
from soundloom.studio.studio import create_studio


@pytest.fixture
def tree(tmp_path):
    """root/ with a file, a sub-folder, a link inside and links out; a secret beside the root."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "secret.wav").write_bytes(b"TOP-SECRET-BYTES")
    (tmp_path / "outside").mkdir()
    os.symlink(root / "sub", root / "inside-link")
    os.symlink(tmp_path / "secret.wav", root / "file-out.wav")
    os.symlink(tmp_path / "outside", root / "dir-out")
    os.symlink("../../outside", root / "sub" / "relative-out")
    return root


def test_paths_inside_resolve(tree):
    assert resolve_in_root(tree, "") == tree.resolve()
    assert resolve_in_root(tree, ".") == tree.resolve()
    assert resolve_in_root(tree, "sub/a.wav") == tree.resolve() / "sub" / "a.wav"
    assert resolve_in_root(tree, "./sub//a.wav") == tree.resolve() / "sub" / "a.wav"
    assert resolve_in_root(tree, "inside-link/a.wav") == tree.resolve() / "sub" / "a.wav"  # a link that stays in
    assert resolve_in_root(tree, "sub%2Fa.wav") == tree.resolve() / "sub" / "a.wav"  # decoded
    assert resolve_in_root(tree, "not/yet/there") == tree.resolve() / "not" / "yet" / "there"
    assert relative_to_root(tree, tree / "sub" / "a.wav") == "sub/a.wav"
    assert relative_to_root(tree, tree.parent / "secret.wav") is None


@pytest.mark.parametrize(
    "bad, why",
    [
        ("..", "'..'"),
        ("../secret.wav", "'..'"),
        ("sub/../../secret.wav", "'..'"),
        ("sub/..", "'..'"),
        ("/etc/passwd", "absolute"),
        ("//etc/passwd", "absolute"),
        ("\\etc\\passwd", "absolute"),
        ("C:/Windows", "absolute"),
        ("sub\\..\\..\\secret.wav", "'..'"),
        ("%2e%2e/secret.wav", "'..'"),
        ("%2E%2E%2Fsecret.wav", "'..'"),
        ("%252e%252e%252fsecret.wav", "'..'"),  # encoded twice
        ("%2fetc%2fpasswd", "absolute"),
        ("sub/a.wav\x00.png", "NUL"),
        ("sub/a.wav%00.png", "NUL"),
        ("file-out.wav", "outside the root"),
        ("dir-out", "outside the root"),
        ("dir-out/x.wav", "outside the root"),
        ("sub/relative-out", "outside the root"),
        ("%25252525252e", "too many times"),
        ("%ff%fe", "UTF-8"),
        ("a" * 2000, "characters"),
    ],
)
def test_ways_out_are_refused(tree, bad, why):
    with pytest.raises(ParameterError, match=why):
        resolve_in_root(tree, bad)


def test_link_loop_is_refused_not_hung(tree):
    os.symlink(tree / "loop-b", tree / "loop-a")
    os.symlink(tree / "loop-a", tree / "loop-b")
    with pytest.raises(ParameterError):
        resolve_in_root(tree, "loop-a/x.wav")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.text(max_size=60),
        st.text(alphabet=string.ascii_letters + "./%\\\x00~:", max_size=40),
        st.lists(st.sampled_from(["..", ".", "sub", "dir-out", "file-out.wav", "%2e", "%2f", "/", "inside-link"])).map(
            "/".join
        ),
    )
)
def test_any_string_is_inside_the_root_or_refused(tree, text):
    base = tree.resolve()
    try:
        got = resolve_in_root(tree, text)
    except ParameterError:
        return
    assert got == base or base in got.parents
    real = got
    while not real.exists() and real != base:  # the existing part, links followed, is inside too
        real = real.parent
    assert real.resolve() == base or base in real.resolve().parents


@pytest.mark.parametrize(
    "query",
    [
        "path=..",
        "path=../secret.wav",
        "path=%2e%2e/secret.wav",  # one decoding by the server
        "path=%252e%252e%252fsecret.wav",  # two
        "path=/etc/passwd",
        "path=%2Fetc%2Fpasswd",
        "path=file-out.wav",
        "path=dir-out",
        "path=sub%2Fa.wav%2500",
    ],
)
def test_the_api_answers_4xx_for_every_way_out(tree, query):
    client = TestClient(create_studio(tree))
    for route in ("/api/files", "/api/audio", "/api/thumb"):
        resp = client.get(f"{route}?{query}")
        assert 400 <= resp.status_code < 500, (route, query, resp.status_code)
        assert b"TOP-SECRET-BYTES" not in resp.content
    resp = client.post("/api/scan", json={"path": query.removeprefix("path=")})
    assert 400 <= resp.status_code < 500
    assert client.get("/api/files?path=sub").status_code == 200  # and the way in still works


def test_missing_paths_are_404_and_bodies_are_bounded(tree):
    client = TestClient(create_studio(tree))
    resp = client.get("/api/audio?path=sub/none.wav")
    assert resp.status_code == 404 and resp.json()["error"] == "NotFound" and "sub/none.wav" in resp.json()["detail"]
    assert str(tree) not in resp.json()["detail"]  # the page's names, not the server's paths
    big = {"path": "x" * 70_000}
    assert client.post("/api/scan", json=big).status_code == 413
    chunked = client.post("/api/scan", content=iter([b'{"path": "', b"x" * 70_000, b'"}']))
    assert chunked.status_code == 413
