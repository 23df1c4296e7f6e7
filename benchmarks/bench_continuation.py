"""The prior's continuation, measured: a 1-second real prompt continued to 4 s (``Generator.continue_``, what
``soundloom generate RUN --continue PROMPT --seconds 4`` does), on held-out clips. Trains nothing.

    python benchmarks/bench_continuation.py runs/digits/prior --n 20 --seconds 4 --prompt-seconds 1

Prompts: ``--n`` clips of the run's held-out groups (``val_groups`` in its ``model.json``, e.g. speakers),
spread over labels, each fitted to ``--prompt-seconds`` (padded with silence when shorter, as the front end
pads training items), continued with their own label. Output with ``level="none"``, so the prompt keeps its
level, and with the Generator's level following (``--follow-level DB``, its default 3 dB; ``none``: off, each
sound at the level the prior drew it), its window following (``--follow-window DB``, default 5: two adjacent
training-length windows within that; ``none``: off) and its pause guard (``--pause-guard DB``, default 10: a
draw with a training-length window that far below the prompt's is drawn again; ``none``: off) and window guard
(``--window-guard DB``, default 5: a draw whose adjacent training-length windows from the output's start, or whole
ones half a window apart, are still that far apart after following is drawn again, within the same budget;
``none``: off). The level measures read windows of ``--window-seconds`` (default: the training length); jumps
between two windows that both lie inside the prompt are the prompt's own and left out. ``--also-windows 1.0 0.5
1.0@0.25 1.0/0.5`` adds readings of the window jump at other lengths and starts, each beside real speech's:
``1.0@0.25`` is 1-s windows beginning 0.25 s into the output (where the window guard does not look), ``1.0/0.5``
whole 1-s windows every 0.5 s (overlapping by half). Per prompt:

- **window jump**: level (RMS, dB) of each training-length window of the output against the next one's (a
  last partial window counts when it holds half a window; levels floored as below);
- **active-level window jump**: the same between the windows' active levels (their frames within 40 dB of the
  output's loudest, :mod:`soundloom.sounds.levelfollow`): how loud the sound in each window is, whatever share
  of the window is silent (the window jump reads a window holding a short digit as quieter than one holding a
  long one at the same level);
- **seam jump**: RMS of the 50 ms before against the 50 ms after each seam, where the prompt's audio ends and
  where the prior's context restarts (every ``hop`` codes once it slides), levels floored at 60 dB below the
  output's peak so a silent gap is not an infinite jump;
- **prompt error**: log-mel L1 (dB, the model's front end) of the output's frames that the prompt covers
  against the prompt's own, next to the run's reconstruction error of the same frames (the prompt encoded
  and decoded by its vqvae, with the same phase reconstruction), both also before phase reconstruction
  (the decoded features of the continuation's codes against those of the prompt's own codes).

The seam measure sees onsets as jumps: on real speech it is as large at the same positions (a word begins),
so the window jump is the one the target (no jump over 6 dB between windows) is read against.

Reference: the same level measures on real speech: ``--seconds`` worth of held-out clips of the same group
(speaker), each fitted to the prompt's length, played one after another (seams at the joins and at the same
hop positions). Prints the weakest case (largest jump, largest error ratio) and the median, then the window
jumps' distribution (quantiles, the count over 6 dB) with each continuation's largest jump sorted as
**level** (the quieter window still holds sound within 20 dB of the prompt's window) or **empty** (more than
20 dB below it: the prior made a window of near-silence, an item that ended at once or never began).

Level following (:mod:`soundloom.sounds.levelfollow`): the sounds found after the prompt, how many needed
more than the gain's bound (``bounded``: a faint sound lifted by the bound only, or a loud one cut by it), and
the gains applied. With ``--classifier DIR`` (``soundloom train-classifier``, trained on other speakers), each
training-length window after the first, of the continuation and of a real reference (the prompt, then the
same speaker saying the same label in other held-out clips, one after another), is classified: **recognised**
is the share of those windows given the prompt's label, so a gain cannot hide a content fault.

- **sounding-window jump**: the active-level jump between consecutive windows that hold sound, windows of
  silence between them left out (at windows shorter than the pause between two digits, real speech has whole
  windows of silence, which the other two measures read as jumps of 40 dB and more);
- **pause depth**: dB from the prompt's last window (RMS) down to the quietest window of the same length from
  half a window before the prompt's end on, one every 10 ms: the longest near-silence, wherever a reader's
  windows begin (the pause guard's reading; redraws and draws kept with a pause are counted).

``--draws K`` continues each prompt K times (seeds ``seed + i + k * n``): 20 prompts, one draw each, is too
few to tell two samplers apart (on the digits, one prior gave 3 of 20 over 6 dB with one seed and 8 of 50,
worst 9 dB, or 4 of 50, worst 42 dB, with 50 prompts and two seeds).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from soundloom.core import fit_length, load_audio
from soundloom.core.spectral import features
from soundloom.sounds import Generator
from soundloom.sounds.levelfollow import (
    FOLLOW_WINDOW_DB,
    PAUSE_GUARD_DB,
    SILENCE_DB,
    WINDOW_GUARD_DB,
    frame_powers,
    frame_samples,
    quietest_window_db,
)
from soundloom.sounds.runfiles import read_run_info

SEAM_S, FLOOR_DB, EMPTY_DB = 0.05, 60.0, 20.0


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def window_levels(wav: np.ndarray, window: int, peak_db: float) -> list[float]:
    """Level (RMS dB, floored ``FLOOR_DB`` below the peak) of each ``window``-sample window; a last partial
    window counts when it holds at least half a window."""
    starts = [i for i in range(0, len(wav), window) if len(wav) - i >= window // 2]
    return [max(rms_db(wav[i : i + window]), peak_db - FLOOR_DB) for i in starts]


def outside_prompt(jumps: np.ndarray, window: int, prompt: int) -> np.ndarray:
    """``jumps`` between consecutive windows less those between two windows inside the first ``prompt`` samples
    (the prompt's own, kept bit for bit; there are some only when the window is shorter than the prompt)."""
    inside = (np.arange(len(jumps)) + 2) * window <= prompt
    return jumps[~inside]


def window_jumps(wav: np.ndarray, window: int, peak_db: float, prompt: int = 0) -> np.ndarray:
    """``|dB|`` between the levels of consecutive ``window``-sample windows (:func:`window_levels`), less those
    inside the first ``prompt`` samples (:func:`outside_prompt`)."""
    return outside_prompt(np.abs(np.diff(window_levels(wav, window, peak_db))), window, prompt)


def hop_jumps(wav: np.ndarray, window: int, hop: int, peak_db: float, prompt: int = 0) -> np.ndarray:
    """``|dB|`` between the levels of whole ``window``-sample windows beginning every ``hop`` samples (overlapping
    when ``hop < window``; floored ``FLOOR_DB`` below the peak), less those whose later window ends inside the first
    ``prompt`` samples; ``[0.0]`` when no pair is left."""
    starts = list(range(0, len(wav) - window + 1, hop))
    levels = np.array([max(rms_db(wav[i : i + window]), peak_db - FLOOR_DB) for i in starts])
    jumps = np.abs(np.diff(levels))[np.array(starts[1:], dtype=int) + window > prompt] if len(starts) > 1 else []
    return np.asarray(jumps) if len(jumps) else np.zeros(1)


def active_levels(wav: np.ndarray, window: int, rate: int) -> list[float | None]:
    """Each ``window``-sample window's **active** level (dB): the mean square of its 20-ms frames within
    ``SILENCE_DB`` of the output's loudest frame; None for a window without one (a last partial window counts
    when it holds half a window)."""
    frame = frame_samples(rate)
    top = frame_powers(wav, frame).max() + 1e-20
    levels = []
    for i in range(0, len(wav), window):
        if len(wav) - i < window // 2:
            break
        p = frame_powers(wav[i : i + window], frame)
        on = p[p >= top * 10 ** (-SILENCE_DB / 10)]
        levels.append(float(10 * np.log10(on.mean())) if len(on) else None)
    return levels


def active_window_jumps(wav: np.ndarray, window: int, rate: int, prompt: int = 0) -> np.ndarray:
    """``|dB|`` between consecutive windows' active levels (:func:`active_levels`; a window without sound:
    ``FLOOR_DB`` below the output's loudest frame), so a window's share of silence does not count, only how loud
    its sound is (less the jumps inside the first ``prompt`` samples)."""
    frame = frame_samples(rate)
    floor = 10 * np.log10(frame_powers(wav, frame).max() + 1e-20) - FLOOR_DB
    levels = [floor if v is None else v for v in active_levels(wav, window, rate)]
    return outside_prompt(np.abs(np.diff(levels)), window, prompt)


def sounding_window_jumps(wav: np.ndarray, window: int, rate: int, prompt: int = 0) -> np.ndarray:
    """``|dB|`` between the active levels of consecutive windows **that hold sound** (windows of silence between
    them left out: a pause is not a level), less those of two windows inside the first ``prompt`` samples."""
    sounding = [(i, v) for i, v in enumerate(active_levels(wav, window, rate)) if v is not None]
    pairs = [(b, abs(w - v)) for (a, v), (b, w) in zip(sounding, sounding[1:])]
    return np.array([j for b, j in pairs if (b + 1) * window > prompt] or [0.0])


def pause_depth(wav: np.ndarray, window: int, rate: int, prompt: int) -> float:
    """dB from the level (RMS) of the prompt's last ``window`` samples down to the quietest window of that length
    beginning half a window before the prompt's end or later (one every 10 ms): how far the output's quietest
    stretch of that length falls below the prompt, wherever a reader's windows begin (floored as above)."""
    reference = rms_db(wav[:prompt][-window:])
    quiet = quietest_window_db(wav, prompt - window // 2, window, rate)
    floor = float(20 * np.log10(np.abs(wav).max() + 1e-12)) - FLOOR_DB
    return float(reference - max(quiet if quiet is not None else reference, floor))


def seam_jumps(wav: np.ndarray, seams: list[int], rate: int, peak_db: float) -> np.ndarray:
    """``|dB|`` between the ``SEAM_S`` before and after each seam (sample index), floored below the peak."""
    w = int(SEAM_S * rate)
    out = []
    for s in seams:
        if w <= s <= len(wav) - w:
            before = max(rms_db(wav[s - w : s]), peak_db - FLOOR_DB)
            after = max(rms_db(wav[s : s + w]), peak_db - FLOOR_DB)
            out.append(abs(after - before))
    return np.asarray(out)


def db_option(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def recognised(clf, gen: Generator, wav: np.ndarray, label: str, window: int) -> tuple[int, int]:
    """Windows after the first of ``wav`` (a last one padded with silence) given ``label``, and how many."""
    from soundloom.sounds.training.classifier import predict

    parts = []
    for i in range(window, len(wav), window):
        part = np.zeros(window, np.float32)
        chunk = wav[i : i + window]
        part[: len(chunk)] = chunk
        parts.append(part)
    if not parts:
        return 0, 0
    feat = gen.normalizer.normalize(features(torch.from_numpy(np.stack(parts)), gen.spec)).float()
    probs, _ = predict(clf, feat)
    labels = clf_labels(clf)
    return int(sum(labels[j] == label for j in probs.argmax(dim=1).tolist())), len(parts)


def clf_labels(clf) -> list[str]:
    return [str(v) for v in clf.cfg.labels]


def logmel_db(gen: Generator, wav: np.ndarray, frames: int) -> torch.Tensor:
    """The run's front end in dB ``(rows, frames)`` of ``wav`` at the model's rate."""
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    return features(x, gen.spec)[:, :frames]


def held_out_prompts(run: Path, n: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """``n`` held-out items spread over labels (round robin), and every held-out item by group."""
    info = read_run_info(run)
    store = Path(info["train"]["features"])
    items = json.loads((store / "index.json").read_text())
    gkey, lkey, val = info["group_key"], info["label_key"], set(info["val_groups"])
    held = [it for it in items if str(it["labels"].get(gkey)) in val]
    by_label: dict[str, list[dict]] = defaultdict(list)
    by_group: dict[str, list[dict]] = defaultdict(list)
    for it in held:
        by_label[str(it["labels"].get(lkey))].append(it)
        by_group[str(it["labels"].get(gkey))].append(it)
    rng = np.random.default_rng(0)
    for lst in by_label.values():
        rng.shuffle(lst)
    chosen, k = [], 0
    while len(chosen) < n and any(k < len(v) for v in by_label.values()):
        chosen += [v[k] for _, v in sorted(by_label.items()) if k < len(v)]
        k += 1
    return chosen[:n], by_group


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="A prior run.")
    p.add_argument("--n", type=int, default=20, help="Prompts.")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--prompt-seconds", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=0.5, help="As generate --continue (0.5).")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=1, help="Continuations per prompt (seeds seed + i + k * n).")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--follow-level",
        type=db_option,
        default=3.0,
        help="Generator follow_level: dB a sound may differ from the prompt's level (default 3); none: off.",
    )
    p.add_argument(
        "--follow-window",
        type=db_option,
        default=FOLLOW_WINDOW_DB,
        help=f"Generator follow_window: dB two adjacent windows may differ ({FOLLOW_WINDOW_DB:g}); none: off.",
    )
    p.add_argument(
        "--pause-guard",
        type=db_option,
        default=PAUSE_GUARD_DB,
        help=f"Generator pause_guard: a window this far below the prompt's is redrawn ({PAUSE_GUARD_DB:g}); none: off.",
    )
    p.add_argument(
        "--window-guard",
        type=db_option,
        default=WINDOW_GUARD_DB,
        help=f"Generator window_guard: adjacent windows this far apart are redrawn ({WINDOW_GUARD_DB:g}); none: off.",
    )
    p.add_argument(
        "--also-windows",
        nargs="*",
        default=[],
        metavar="SECONDS[@OFFSET][/HOP]",
        help="More readings of the window jump (e.g. 1.0 0.5 1.0@0.25 1.0/0.5: 1-s windows beginning 0.25 s in; "
        "whole 1-s windows every 0.5 s), each printed as the count over 6 dB beside real speech's.",
    )
    p.add_argument(
        "--window-seconds",
        type=float,
        default=None,
        help="Window of the level measures (default: the run's training length; recognition always uses that).",
    )
    p.add_argument("--classifier", type=Path, default=None, help="A digits classifier: recognition per window.")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = Generator.from_run(
        args.run,
        level="none",
        follow_level=args.follow_level,
        follow_window=args.follow_window,
        pause_guard=args.pause_guard,
        window_guard=args.window_guard,
    )
    readings, hops = [], {}
    for spec in args.also_windows:
        spec_body, _, hop_s = spec.partition("/")
        length, _, offset = spec_body.partition("@")
        hops[spec] = int(round(float(hop_s) * gen.spec.sample_rate)) if hop_s else None
        readings.append(
            (
                spec,
                int(round(float(length) * gen.spec.sample_rate)),
                int(round(float(offset or 0) * gen.spec.sample_rate)),
            )
        )
    clf = None
    if args.classifier is not None:
        from soundloom.sounds.evaluation.report import load_classifier

        clf = load_classifier(args.classifier)[0]
    rate, hop_samples = gen.spec.sample_rate, int(gen.spec.hop_length)
    model = gen.model
    code_samples = model.vqvae.cfg.factor * hop_samples
    prompt_n, total_n = int(round(args.prompt_seconds * rate)), int(round(args.seconds * rate))
    win = gen.n_samples if args.window_seconds is None else int(round(args.window_seconds * rate))
    prompts, by_group = held_out_prompts(args.run, args.n)
    info = read_run_info(args.run)
    lkey, gkey = info["label_key"], info["group_key"]
    rows = []
    start = time.process_time()
    runs = [(k, i, item) for k in range(max(1, args.draws)) for i, item in enumerate(prompts)]
    for k, i, item in runs:
        wav = fit_length(load_audio(item["path"], sample_rate=rate)[0], prompt_n, fade_samples=0)
        label = str(item["labels"][lkey]) if gen.labels else None
        seed = args.seed + i + k * len(prompts)
        (cont,) = gen.continue_(
            wav, rate, args.seconds, label=label, seed=seed, temperature=args.temperature, top_k=args.top_k
        )
        out = cont.audio
        peak_db = 20 * np.log10(np.abs(out).max() + 1e-12)
        levels = window_levels(out, win, peak_db)
        # Seams: the prompt's end, and each code at which the prior's context restarts (its window slides).
        slides = model.slide_points(int(cont.params["prompt_codes"]), len(cont.latent))
        seams = [prompt_n] + [c * code_samples for c in slides if c * code_samples < total_n]
        pf = int(cont.params["prompt_frames"])
        target = logmel_db(gen, wav, pf)
        cont_err = float((logmel_db(gen, out, pf) - target).abs().mean())
        rec = gen.render(gen.encode(wav, rate, label), label)[0]
        rec_err = float((logmel_db(gen, rec, pf) - target).abs().mean())
        codes = gen.encode(wav, rate, label)
        feat_target = gen.model_input(wav, rate)[:, :pf]
        dec_cont = float((gen.decode_features(cont.latent, label)[:, :pf] - feat_target).abs().mean())
        dec_rec = float((gen.decode_features(codes, label)[:, :pf] - feat_target).abs().mean())
        # Real reference: clips of the same group one after another, fitted to the prompt's length each.
        same = [it for it in by_group[str(item["labels"][gkey])] if it["id"] != item["id"]]
        chain = [wav] + [
            fit_length(load_audio(it["path"], sample_rate=rate)[0], prompt_n, fade_samples=0)
            for it in same[: int(np.ceil(total_n / prompt_n)) - 1]
        ]
        real = np.concatenate(chain)[:total_n]
        real_peak = 20 * np.log10(np.abs(real).max() + 1e-12)
        real_seams = sorted(set(seams) | set(range(prompt_n, total_n, prompt_n)))
        hits = recognised(clf, gen, out, label, gen.n_samples) if clf is not None else (0, 0)
        real_hits = (0, 0)
        if clf is not None:  # the reference for recognition: the same speaker saying the same digit again
            alike = [it for it in same if str(it["labels"][lkey]) == label][: len(chain) - 1]
            said = [fit_length(load_audio(it["path"], sample_rate=rate)[0], prompt_n, fade_samples=0) for it in alike]
            real_hits = recognised(clf, gen, np.concatenate([wav, *said])[:total_n], label, gen.n_samples)
        rows.append(
            {
                "id": item["id"],
                "label": label,
                "seed": seed,
                "window_jump_db": float(window_jumps(out, win, peak_db, prompt_n).max()),
                "window_levels_db": [round(float(v), 2) for v in levels],
                "empty_window": bool(min(levels[1:], default=levels[0]) < levels[0] - EMPTY_DB),
                "seam_jump_db": float(seam_jumps(out, seams, rate, peak_db).max()),
                "prompt_seam_jump_db": float(seam_jumps(out, seams[:1], rate, peak_db).max()),
                "real_prompt_seam_jump_db": float(seam_jumps(real, seams[:1], rate, real_peak).max()),
                "real_window_jump_db": float(window_jumps(real, win, real_peak, prompt_n).max()),
                "active_window_jump_db": float(active_window_jumps(out, win, rate, prompt_n).max()),
                "real_active_window_jump_db": float(active_window_jumps(real, win, rate, prompt_n).max()),
                "sounding_jump_db": float(sounding_window_jumps(out, win, rate, prompt_n).max()),
                "real_sounding_jump_db": float(sounding_window_jumps(real, win, rate, prompt_n).max()),
                "pause_depth_db": pause_depth(out, win, rate, prompt_n),
                "real_pause_depth_db": pause_depth(real, win, rate, prompt_n),
                "real_seam_jump_db": float(seam_jumps(real, real_seams, rate, real_peak).max()),
                "prompt_err_db": cont_err,
                "recon_err_db": rec_err,
                "err_ratio": cont_err / max(rec_err, 1e-9),
                "decoded_err": dec_cont,
                "decoded_recon_err": dec_rec,
                "decoded_ratio": dec_cont / max(dec_rec, 1e-9),
                "followed": cont.followed,
                "redraws": int(cont.params.get("pause_redraws", 0)),
                "pause_left": bool(cont.params.get("pause_left", False)),
                "window_left": bool(cont.params.get("window_left", False)),
                "readings": {
                    spec: [
                        float(window_jumps(out[o:], w, peak_db, prompt_n - o).max())
                        if hops[spec] is None
                        else float(hop_jumps(out[o:], w, hops[spec], peak_db, prompt_n - o).max()),
                        float(window_jumps(real[o:], w, real_peak, prompt_n - o).max())
                        if hops[spec] is None
                        else float(hop_jumps(real[o:], w, hops[spec], real_peak, prompt_n - o).max()),
                    ]
                    for spec, w, o in readings
                },
                "recognised": hits,
                "real_recognised": real_hits,
            }
        )
    cpu = time.process_time() - start
    skip = ("id", "label", "seed", "window_levels_db", "empty_window", "followed", "recognised", "real_recognised")
    skip += ("redraws", "pause_left", "window_left", "readings")
    keys = [k for k in rows[0] if k not in skip]
    print(
        f"{args.run}: {len(prompts)} held-out prompts of {args.prompt_seconds} s continued to {args.seconds} s "
        f"({len(rows)} continuations) "
        f"(T={args.temperature}, top_k={args.top_k}); windows of {win} samples, the prior's context "
        f"restarting at {model.slide_points(0, 4 * model.cfg.code_frames)} codes of {code_samples} samples "
        f"(from an empty prefix); level following {args.follow_level} dB, windows {args.follow_window} dB, "
        f"pause guard {args.pause_guard} dB, window guard {args.window_guard} dB; {cpu:.1f} CPU-s"
    )
    print(f"{'measure':22s} {'weakest':>8s} {'median':>8s}  weakest item")
    for k in keys:
        vals = np.array([r[k] for r in rows])
        worst = int(np.argmax(vals))
        print(f"{k:22s} {vals[worst]:8.3f} {np.median(vals):8.3f}  {rows[worst]['id']}")
    over = sum(r["window_jump_db"] > 6.0 for r in rows)
    real_over = sum(r["real_window_jump_db"] > 6.0 for r in rows)
    print(f"window jumps over 6 dB: {over} of {len(rows)} continuations; {real_over} of {len(rows)} real sequences")
    over_a = sum(r["active_window_jump_db"] > 6.0 for r in rows)
    real_over_a = sum(r["real_active_window_jump_db"] > 6.0 for r in rows)
    print(
        f"active-level window jumps (silence left out) over 6 dB: {over_a} of {len(rows)} continuations; "
        f"{real_over_a} of {len(rows)} real sequences"
    )
    over_s = sum(r["sounding_jump_db"] > 6.0 for r in rows)
    real_over_s = sum(r["real_sounding_jump_db"] > 6.0 for r in rows)
    print(
        f"active-level jumps between windows that hold sound (pauses left out) over 6 dB: {over_s} of {len(rows)} "
        f"continuations; {real_over_s} of {len(rows)} real sequences"
    )
    q = (50, 75, 90, 100)
    for name, key in (
        ("continuations", "window_jump_db"),
        ("real speech", "real_window_jump_db"),
        ("continuations", "active_window_jump_db"),
        ("real speech", "real_active_window_jump_db"),
        ("continuations", "sounding_jump_db"),
        ("real speech", "real_sounding_jump_db"),
    ):
        vals = np.array([r[key] for r in rows])
        kind = "active-level" if "active" in key else "sounding-window" if "sounding" in key else "window"
        print(
            f"  {name:13s} largest {kind} jump dB, quantiles {q}: "
            + " / ".join(f"{v:.1f}" for v in np.percentile(vals, q))
        )
    empty = ", ".join(f"{r['id']} seed {r['seed']}" for r in rows if r["empty_window"]) or "none"
    n_level = sum(r["window_jump_db"] > 6.0 and not r["empty_window"] for r in rows)
    n_empty = sum(r["window_jump_db"] > 6.0 and r["empty_window"] for r in rows)
    print(
        f"  over 6 dB by kind: {n_level} level, {n_empty} with an empty window "
        f"(> {EMPTY_DB:.0f} dB below the prompt's: {empty})"
    )
    for name, key in (("continuations", "pause_depth_db"), ("real speech", "real_pause_depth_db")):
        vals = np.array([r[key] for r in rows])
        print(
            f"  {name:13s} quietest window after the prompt, dB below the prompt's (every 10 ms): median / 90 % / "
            f"worst {' / '.join(f'{v:.1f}' for v in np.percentile(vals, (50, 90, 100)))}; over 10 dB: "
            f"{int(np.sum(vals > 10.0))} of {len(rows)}"
        )
    for spec, w, o in readings:
        vals = np.array([r["readings"][spec] for r in rows])
        print(
            f"window jumps over 6 dB, windows of {w} samples from {o}"
            + (f" every {hops[spec]} (whole ones)" if hops[spec] else "")
            + f": {int(np.sum(vals[:, 0] > 6.0))} of {len(rows)} "
            f"continuations (worst {vals[:, 0].max():.1f}); {int(np.sum(vals[:, 1] > 6.0))} of {len(rows)} real "
            f"sequences (worst {vals[:, 1].max():.1f})"
        )
    if args.pause_guard is not None or args.window_guard is not None:
        redraws = np.array([r["redraws"] for r in rows])
        print(
            f"pause guard ({args.pause_guard} dB), window guard ({args.window_guard} dB): {int(np.sum(redraws > 0))} "
            f"of {len(rows)} continuations drawn again ({int(redraws.sum())} redraws, at most {int(redraws.max())}); "
            f"{sum(r['pause_left'] for r in rows)} kept with a pause, {sum(r['window_left'] for r in rows)} with a "
            f"window jump after every try"
        )
    sounds = [f for r in rows for f in r["followed"]]
    if args.follow_level is not None:
        gains = np.array([f["gain_db"] for f in sounds]) if sounds else np.zeros(1)
        bounded = [f for f in sounds if f["bounded"]]
        n_cont = sum(any(f["bounded"] for f in r["followed"]) for r in rows)
        print(
            f"level following: {len(sounds)} sounds after the prompts "
            f"({sum(bool(f.get('carried')) for f in sounds)} the prompt's own, carried on: kept), "
            f"{int(np.sum(gains != 0))} given a gain "
            f"(cut {int(np.sum(gains < 0))}, lifted {int(np.sum(gains > 0))}); |gain| dB quantiles (50, 90, 100) "
            f"of those: "
            + (
                " / ".join(f"{v:.1f}" for v in np.percentile(np.abs(gains[gains != 0]), (50, 90, 100)))
                if np.any(gains)
                else "-"
            )
            + f"; at the bound: {len(bounded)} sounds in {n_cont} of {len(rows)} continuations"
        )
    if clf is not None:
        hit, tot = sum(r["recognised"][0] for r in rows), sum(r["recognised"][1] for r in rows)
        rhit, rtot = sum(r["real_recognised"][0] for r in rows), sum(r["real_recognised"][1] for r in rows)
        worst = min(rows, key=lambda r: r["recognised"][0] / max(r["recognised"][1], 1))
        print(
            f"recognised as the prompt's label (windows after the first): {hit} of {tot} ({hit / max(tot, 1):.3f}); "
            f"real speech of the same speaker {rhit} of {rtot} ({rhit / max(rtot, 1):.3f}); "
            f"continuations with none recognised: {sum(r['recognised'][0] == 0 for r in rows)} "
            f"(weakest {worst['id']} seed {worst['seed']}: {worst['recognised'][0]} of {worst['recognised'][1]})"
        )
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
