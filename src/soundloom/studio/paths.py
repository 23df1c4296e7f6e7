"""Root confinement: every path the studio's API takes is resolved inside ``--root`` or refused.

One function, :func:`resolve_in_root`, turns a user's path (relative to the root, as the page sends
it) into an absolute path inside the root. It refuses, with :class:`ParameterError` (a 4xx answer):
absolute paths, ``..`` components, NUL bytes, over-long paths, URL-encoded variants of any of those
(the text is decoded until it no longer changes, so ``%2e%2e`` and ``%252e%252e`` are ``..``), and
links whose target leaves the root. Links that stay inside the root are followed.

A consequence of decoding: a file literally named ``a%20b`` is looked up as ``a b``. Names with
``%`` are rare in sound libraries; a traversal that slips through a decoder is not.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from ..core.errors import ParameterError

#: Longest user path accepted (characters), far above any real one.
MAX_PATH_CHARS = 1024
#: Times a path is URL-decoded at most; a path still changing after that is refused.
MAX_DECODES = 4


def decode_path(text: str) -> str:
    """``text`` URL-decoded until it is stable; ParameterError when it keeps changing."""
    for _ in range(MAX_DECODES):
        once = unquote(text, errors="strict")
        if once == text:
            return text
        text = once
    raise ParameterError(f"path {text[:80]!r}: URL-encoded too many times")


def resolve_in_root(root: str | os.PathLike, user_path: str) -> Path:
    """The absolute path of ``user_path`` (relative to ``root``; ``""`` or ``"."`` is the root itself).

    The path need not exist; its existing part is resolved (links followed) and must stay inside the
    resolved root.

    Raises:
        ParameterError: absolute, ``..``, NUL, too long, not decodable, or leaving the root (by a link).
    """
    if not isinstance(user_path, str):
        raise ParameterError(f"path must be text, got {type(user_path).__name__}")
    if len(user_path) > MAX_PATH_CHARS:
        raise ParameterError(f"path of {len(user_path)} characters (at most {MAX_PATH_CHARS})")
    try:
        text = decode_path(user_path)
    except UnicodeDecodeError as exc:
        raise ParameterError(f"path {user_path[:80]!r}: not valid UTF-8 once decoded") from exc
    shown = text[:200]
    if "\x00" in text:
        raise ParameterError(f"path {shown!r}: contains a NUL byte")
    if text.startswith(("/", "\\")) or (len(text) > 1 and text[1] == ":"):
        raise ParameterError(f"path {shown!r}: absolute paths are refused; give a path relative to the root")
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ParameterError(f"path {shown!r}: '..' is refused; give a path inside the root")
    base = Path(root).resolve()
    try:
        full = base.joinpath(*parts).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a link loop
        raise ParameterError(f"path {shown!r}: cannot be resolved ({exc})") from exc
    if full != base and base not in full.parents:
        raise ParameterError(f"path {shown!r}: leads outside the root (a link?)")
    return full


def relative_to_root(root: str | os.PathLike, path: str | os.PathLike) -> str | None:
    """``path`` as the page names it (POSIX, relative to the resolved root), or None when it is outside."""
    base, full = Path(root).resolve(), Path(path).resolve()
    if full != base and base not in full.parents:
        return None
    return full.relative_to(base).as_posix() if full != base else ""
