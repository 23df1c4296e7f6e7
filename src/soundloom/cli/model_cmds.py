"""CLI commands of the model side (registered on :data:`soundloom.cli.app.app`).

soundloom train FEATURES --model cvae --out RUN [--epochs 100] [--max-minutes 15 | --cpu-minutes 15] [--resume] ...
soundloom train FEATURES --model KIND --out RUN [--KIND-OPTION VALUE ...]   (soundloom models lists them)
soundloom models
soundloom generate RUN --out DIR [--n 8] [--label 7] [--temperature 0.8] [--seed 0] [--format wav]
soundloom generate RUN --out DIR --continue prompt.wav --seconds 1.0
soundloom generate PRIOR_RUN --out DIR --label 7 --seconds 4 --top-k 32   (a prior slides past its training length)
soundloom generate RUN --out DIR --interpolate a.wav b.json --steps 8
soundloom generate RUN --out DIR --variation x.wav [--amount 0.3]
soundloom generate RUN --out DIR --from-sidecar out/sample_000.json
soundloom train-classifier FEATURES --out CLF
soundloom eval RUN --classifier CLF [--temperatures 0.7,1.0] [--json]
soundloom compare RUN [RUN ...] [--classifier CLF] [--n-per-label N] [--temperature T] [--json]

Heavy modules (torch, Lightning, the engines) are imported inside the commands, so ``--help`` is instant;
errors are raised as :class:`~soundloom.core.errors.SoundloomError` kinds and printed by ``run_app``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import ParameterError
from .app import THREADS_HELP, app, set_threads


def split_kind_options(tokens: list[str], bool_flags: set[str]) -> tuple[list[str], dict[str, str]]:
    """Split command-line tokens into positionals and ``--name value`` / ``--name=value`` / ``--[no-]flag``
    options (names returned with underscores). ``bool_flags``: option names (underscored) taking no value."""
    positionals: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            positionals.append(tok)
            i += 1
            continue
        name, eq, value = tok[2:].partition("=")
        name = name.replace("-", "_")
        if eq:
            options[name] = value
        elif name in bool_flags:
            options[name] = "true"
        elif name.startswith("no_") and name[3:] in bool_flags:
            options[name[3:]] = "false"
        elif i + 1 < len(tokens):
            options[name] = tokens[i + 1]
            i += 1
        else:
            raise ParameterError(f"option --{name.replace('_', '-')} needs a value")
        i += 1
    return positionals, options


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    features: Path = typer.Argument(..., help="Feature store (from `soundloom prepare`)."),
    out: Path = typer.Option(..., "--out", help="Run directory."),
    model: str = typer.Option(
        "auto",
        help="Model kind: auto (ddsp for pitch-labelled data, else cvae) | vae | cvae | vqvae | prior | vaegan | "
        "wave-vae | ddsp (`soundloom models` lists every kind and its own options).",
    ),
    epochs: int = typer.Option(100, help="Maximum epochs (on --resume: the run's own unless given)."),
    max_minutes: Optional[float] = typer.Option(
        None, help="Time budget; training stops (and exports) when spent (on --resume: the run's own unless given)."
    ),
    cpu_minutes: Optional[float] = typer.Option(
        None,
        help="CPU-time budget (this process, its data workers and, for a prior or vaegan, its first stage's "
        "recorded CPU time); training stops (and exports) when spent. Unlike --max-minutes, the same on a busy "
        "machine (on --resume: the run's own unless given).",
    ),
    batch_size: int = typer.Option(64),
    lr: float = typer.Option(2e-3, help="Adam(W) learning rate."),
    latent: int = typer.Option(64, help="Latent size."),
    channels: str = typer.Option("8,16,32,64,128", help="Channels of each stride-2 stage."),
    beta: float = typer.Option(0.03, help="KL weight (reconstruction is a sum of squared errors)."),
    warmup_steps: int = typer.Option(200, help="Steps over which β ramps up from 0."),
    class_weighting: bool = typer.Option(
        False,
        "--class-weighting",
        help="Label-conditioned VAEs: weight each class's reconstruction by its running error, so the classes "
        "still blurred get more of a short budget.",
    ),
    spectrum_weight: float = typer.Option(
        1.0,
        help="Spectrogram VAEs: weight of each row's time-averaged power against the item's (0 = off), so a "
        "blurred bright attack still costs what it loses from the clip's long-term spectrum.",
    ),
    seed: int = typer.Option(0),
    val_fraction: float = typer.Option(0.1, help="Share of speakers / instruments (else items) held out."),
    label_key: str = typer.Option("auto", help="Label to condition on (auto: label, instrument_family_str)."),
    accelerator: str = typer.Option("cpu", help="cpu | gpu | auto"),
    devices: int = typer.Option(1, help="Devices; > 1 trains with DDP."),
    num_workers: int = typer.Option(0, help="Data loader workers."),
    threads: int = typer.Option(1, help=THREADS_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue from RUN/checkpoints/last.ckpt."),
    checkpoint_every: int = typer.Option(200, help="Save last.ckpt every this many steps (and each epoch)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a generative model (VAE / CVAE / any registered kind); writes checkpoints, samples, plots and
    model.safetensors to RUN. A kind's own options follow as --name value (see `soundloom models`)."""
    from ..sounds.models import get_kind
    from ..sounds.training import TrainConfig, first_process
    from ..sounds.training import train as run_train

    # Unknown tokens (the kind's options) arrive in ctx.args; one written before FEATURES took its place.
    # A kind's bool flags are known only once the kind is: with "auto", FEATURES comes first in practice.
    chosen = ""
    if model == "auto":
        model, chosen = _default_model(Path(features), out, resume)
    kind = get_kind(model)
    flags = {o.name for o in kind.options if o.type is bool}
    positionals, given = split_kind_options([str(features), *ctx.args], flags)
    if len(positionals) != 1:
        raise ParameterError(f"expected one FEATURES folder, got {positionals or 'none'}")
    features = Path(positionals[0])
    settings = dict(
        features=str(features),
        model=model,
        epochs=epochs,
        max_minutes=max_minutes,
        cpu_minutes=cpu_minutes,
        batch_size=batch_size,
        lr=lr,
        latent_dim=latent,
        channels=_ints(channels, "--channels"),
        beta=beta,
        warmup_steps=warmup_steps,
        class_weighting=class_weighting,
        spectrum_weight=spectrum_weight,
        seed=seed,
        val_fraction=val_fraction,
        label_key=None if label_key == "none" else label_key,
        accelerator=accelerator,
        devices=devices,
        num_workers=num_workers,
        threads=threads or None,
        checkpoint_every=checkpoint_every,
        model_options=kind.parse_options(given),
    )
    if resume and (out / "config.yaml").exists():
        # The run's saved config, changed only where the user typed an option (not by our defaults).
        cli_names = {"latent_dim": "latent", "features": None, "model_options": None}
        typed = {key: value for key, value in settings.items() if (cli := cli_names.get(key, key)) and _typed(ctx, cli)}
        if given:
            typed["model_options"] = settings["model_options"]
        cfg = TrainConfig.for_resume(out, **typed)
    else:
        cfg = TrainConfig(**settings)
    start = time.monotonic()
    run_train(cfg, out, resume=resume, progress_bar=not quiet)
    if not first_process():  # a DDP run's other processes: the first one reports
        return
    info = out / "model.json"
    training = json.loads(info.read_text()).get("training", {}) if info.is_file() else {}
    if training.get("stopped"):
        typer.echo(training["stopped"])
    typer.echo(
        f"trained {model}{f' ({chosen}; --model chooses another)' if chosen else ''} in "
        f"{time.monotonic() - start:.0f} s ({training.get('cpu_s_total', 0):.0f} CPU-s, "
        f"{training.get('steps', 0)} steps) -> {out / 'model.safetensors'}"
    )


def _default_model(features: Path, out: Path, resume: bool) -> tuple[str, str]:
    """``--model auto``: a resumed run's own kind, else the registry's default for the store's labels; and why."""
    from ..data.store import FeatureStore
    from ..sounds.models import default_kind

    if resume and (out / "config.yaml").exists():
        from ..sounds.training import TrainConfig

        return TrainConfig.for_resume(out).model, "the run's own kind"
    return default_kind(FeatureStore.open(features).label_names())


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option ``name`` (not Typer's default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(c) for c in text.split(",")]
    except ValueError:
        raise ParameterError(f"{option}: expected comma-separated integers, got {text!r}") from None


@app.command("models")
def models_cmd() -> None:
    """List the model kinds `soundloom train --model` knows, with their own options."""
    from ..sounds.models import get_kind, kind_names

    for name in kind_names():
        kind = get_kind(name)
        typer.echo(f"{name}: {kind.help}")
        for o in kind.options:
            typer.echo(f"  --{o.flag} {o.type.__name__.upper()}  {o.help} [default: {o.default}]")


def _load_input(path: Path):
    from ..core.io import load_audio

    return load_audio(path)


def _latent_of(gen, path: Path, label: Optional[str]):
    """A latent and label from a sidecar (.json) or by encoding an audio file."""
    if path.suffix.lower() == ".json":
        import numpy as np

        try:
            record = json.loads(path.read_text())
            return np.asarray(record["latent"], dtype="float32"), record.get("label")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ParameterError(path, f"not a soundloom sidecar ({exc})") from exc
    wav, rate = _load_input(path)
    lab = gen.infer_label(label, wav, rate)
    return gen.encode(wav, rate, lab), lab


@app.command()
def generate(
    run: Path = typer.Argument(..., help="Trained run directory."),
    out: Path = typer.Option(..., "--out", help="Output folder (audio + JSON sidecars)."),
    n: int = typer.Option(4, "--n", help="Sounds to make (sampling, variation, continuation)."),
    label: Optional[str] = typer.Option(None, help="Class to condition on (cvae)."),
    pitch: Optional[int] = typer.Option(None, help="MIDI pitch (pitch-conditioned cvae)."),
    temperature: float = typer.Option(1.0, help="Scale of the latent noise."),
    prior: str = typer.Option(
        "fitted", help="fitted (Gaussian mixture of training latents per class) | standard (N(0, I))."
    ),
    cont: Optional[Path] = typer.Option(None, "--continue", help="Prompt audio file to continue."),
    seconds: Optional[float] = typer.Option(
        None,
        help="Length in seconds: of a continuation in all, prompt included (default 1.0); of each sample "
        "(default: the model's training length; longer from a prior, which slides its window).",
    ),
    top_k: int = typer.Option(0, "--top-k", help="Code models (vqvae, prior): sample only the k likeliest codes."),
    prompt_seconds: Optional[float] = typer.Option(
        None, help="Use only the first S seconds of the --continue file as the prompt (default: all of it)."
    ),
    interpolate: Optional[tuple[Path, Path]] = typer.Option(
        None, help="Two sounds, audio files or sidecar .json: --interpolate A B."
    ),
    steps: int = typer.Option(8, help="Interpolation steps."),
    variation: Optional[Path] = typer.Option(None, help="Audio file to vary."),
    amount: float = typer.Option(0.3, help="Variation size (latent noise scale)."),
    from_sidecar: Optional[Path] = typer.Option(None, help="Render a sound again from its JSON sidecar."),
    seed: int = typer.Option(0),
    format: str = typer.Option("wav", help="wav | flac | ogg | mp3"),
    bits: int = typer.Option(24, help="Bits per sample of wav and flac files: 16 | 24 | 32 (float, wav only)."),
    sample_rate: Optional[int] = typer.Option(None, help="Output sample rate (default: the model's)."),
    griffin_lim_iters: Optional[int] = typer.Option(
        None, help="Griffin-Lim iterations (default: 8 for mel features, 32 for linear ones)."
    ),
    level: str = typer.Option(
        "peak", help="peak | loudness | none (as rendered, clipped) | raw (as rendered, unclipped: float formats)"
    ),
    postfilter: bool = typer.Option(
        True, "--postfilter/--no-postfilter", help="Sharpen with the run's postfilter.json (when it has one)."
    ),
    follow_level: float = typer.Option(
        3.0, help="A continuation's sounds after the prompt are kept within this many dB of the prompt's level."
    ),
    free_level: bool = typer.Option(
        False,
        "--free-level",
        help="Leave a continuation's sounds at the level drawn: no --follow-level (so no --follow-window either) "
        "and no --window-guard; the pause guard stays (a long near-silence is content, not level).",
    ),
    follow_window: float = typer.Option(
        5.0, help="A continuation's adjacent training-length windows are kept within this many dB of each other."
    ),
    free_windows: bool = typer.Option(False, "--free-windows", help="No --follow-window."),
    pause_guard: float = typer.Option(
        10.0, help="A prior's continuation with a window this many dB below the prompt's last one is drawn again."
    ),
    no_pause_guard: bool = typer.Option(False, "--no-pause-guard", help="No --pause-guard."),
    window_guard: float = typer.Option(
        5.0,
        help="A prior's continuation whose adjacent training-length windows are still this many dB apart after "
        "following is drawn again.",
    ),
    no_window_guard: bool = typer.Option(False, "--no-window-guard", help="No --window-guard."),
    pause_redraws: int = typer.Option(
        4, help="At most this many draws again, for --pause-guard and --window-guard together."
    ),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """Sample, continue, interpolate or vary sounds; each file gets a JSON sidecar to recall it."""
    if n < 1:
        raise ParameterError(f"--n must be at least 1, got {n}")
    if griffin_lim_iters is not None and griffin_lim_iters < 0:
        raise ParameterError(f"--griffin-lim-iters must be >= 0, got {griffin_lim_iters}")
    from ..sounds import Generator
    from ..sounds.generator import sample_subtype

    sample_subtype(format, bits)  # a depth the format cannot hold fails before any rendering

    set_threads(threads)
    start = time.monotonic()
    gen = Generator.from_run(
        run,
        postfilter=postfilter,
        griffin_lim_iters=griffin_lim_iters,
        sample_rate=sample_rate,
        level=level,
        follow_level=None if free_level else follow_level,
        follow_window=None if free_windows else follow_window,
        pause_guard=None if no_pause_guard else pause_guard,
        window_guard=None if (no_window_guard or free_level) else window_guard,
        pause_redraws=pause_redraws,
    )
    if from_sidecar is not None:
        sounds, prefix = [gen.from_sidecar(from_sidecar)], "recalled"
    elif cont is not None:
        sounds = gen.continue_(
            cont,
            None,
            1.0 if seconds is None else seconds,
            n=n,
            label=label,
            pitch=pitch,
            seed=seed,
            prompt_seconds=prompt_seconds,
            top_k=top_k,
        )
        prefix = "continue"
    elif interpolate:
        za, la = _latent_of(gen, interpolate[0], label)
        zb, lb = _latent_of(gen, interpolate[1], label)
        sounds = gen.interpolate(za, zb, steps, label=la, pitch=pitch, label_b=lb)
        for s in sounds:
            s.sources.update({"a": str(interpolate[0].resolve()), "b": str(interpolate[1].resolve())})
        prefix = "interpolate"
    elif variation is not None:
        wav, rate = _load_input(variation)
        sounds = gen.variation(wav, rate, amount, n=n, seed=seed, label=label, pitch=pitch)
        for s in sounds:
            s.sources["input"] = str(variation.resolve())
        prefix = "variation"
    else:
        sounds = gen.sample(
            n, label=label, temperature=temperature, seed=seed, pitch=pitch, prior=prior, top_k=top_k, seconds=seconds
        )
        prefix = "sample"
    paths = gen.save(sounds, out, format=format, prefix=prefix, bits=bits)
    secs = sum(len(s.audio) / s.sample_rate for s in sounds)
    took = time.monotonic() - start
    for p in paths:
        typer.echo(str(p))
    typer.echo(f"{len(paths)} sounds, {secs:.2f} s of audio in {took:.2f} s")


@app.command("train-classifier")
def train_classifier_cmd(
    features: Path = typer.Argument(..., help="Feature store."),
    out: Path = typer.Option(..., "--out", help="Classifier directory."),
    epochs: int = typer.Option(20),
    max_minutes: Optional[float] = typer.Option(None),
    batch_size: int = typer.Option(64),
    lr: float = typer.Option(2e-3),
    seed: int = typer.Option(0, help="Same seed and --val-fraction as the model's run hold out the same speakers."),
    val_fraction: float = typer.Option(0.1, help="Share of groups (else items) held out; keep the run's."),
    label_key: str = typer.Option("auto"),
    group_key: str = typer.Option(
        "auto", help="Label whose groups are held out whole (auto: speaker, instrument...; none: split items)."
    ),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """Train the small evaluation classifier on all but held-out groups (speakers, instruments) when the
    data has them; prints its accuracy on the held-out groups and names them."""
    from ..core.progress import rich_progress
    from ..sounds.training.classifier import train_classifier

    set_threads(threads)
    with rich_progress(transient=True) as progress:
        record = train_classifier(
            features,
            out,
            epochs=epochs,
            max_minutes=max_minutes,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            val_fraction=val_fraction,
            label_key=label_key,
            group_key=None if group_key == "none" else group_key,
            progress=progress,
        )
    held_out = f"{record['n_val']} held-out items"
    if record["group_key"]:  # split by group (e.g. speaker): none of their items was trained on
        groups = record["val_groups"]
        held_out += f" of {len(groups)} held-out {record['group_key']} groups ({', '.join(groups)})"
    else:
        held_out += " (no group label: a random item split)"
    typer.echo(f"held-out accuracy {record['heldout_accuracy']:.3f} on {held_out} -> {out}")


def _classifier_dir(classifier: Optional[Path], run: Path) -> Optional[Path]:
    """The --classifier folder, else RUN/classifier when it exists, else None (fixed space only)."""
    if classifier is not None:
        return classifier
    default = run / "classifier"
    return default if default.is_dir() else None


@app.command("eval")
def eval_cmd(
    run: Path = typer.Argument(..., help="Trained run directory."),
    classifier: Optional[Path] = typer.Option(
        None, help="Classifier directory (default RUN/classifier if present; without one, the fixed space only)."
    ),
    features: Optional[Path] = typer.Option(None, help="Feature store (default: the one the run trained on)."),
    temperatures: str = typer.Option("1.0", help="Comma-separated sampling temperatures."),
    prior: str = typer.Option("fitted", help="fitted | standard"),
    n_per_label: Optional[int] = typer.Option(None, help="Generated per label (default: as many as held-out real)."),
    griffin_lim_iters: Optional[int] = typer.Option(
        None, help="Griffin-Lim iterations (default: 8 for mel features, 32 for linear ones)."
    ),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """Held-out reconstruction, and generated sounds judged against held-out real ones (resynthesised) in a
    fixed feature space and the classifier's: FD ratio, precision / recall, diversity, NDB, spectral floor,
    accuracy, pitch accuracy (pitched data)."""
    from ..core.progress import null_progress, rich_progress
    from ..sounds.evaluation.report import describe, evaluate_run

    set_threads(threads)
    try:
        temps = tuple(float(t) for t in temperatures.split(","))
    except ValueError:
        raise ParameterError(f"--temperatures: expected comma-separated numbers, got {temperatures!r}") from None
    clf = _classifier_dir(classifier, run)
    args = (run, clf, features and str(features), temps, prior, n_per_label, griffin_lim_iters, seed)
    if as_json:
        typer.echo(json.dumps(evaluate_run(*args, progress=null_progress), indent=1))
        return
    with rich_progress(transient=True) as progress:
        report = evaluate_run(*args, progress=progress)
    if clf is None:
        typer.echo("no classifier (RUN/classifier or --classifier): fixed-space measures only")
    for line in describe(report):
        typer.echo(line)


@app.command("compare")
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Run directories; the first one's held-out items are the reference."),
    classifier: Optional[Path] = typer.Option(
        None, help="Classifier directory (default FIRST_RUN/classifier if present) for accuracy and its space."
    ),
    n_per_label: Optional[int] = typer.Option(None, help="Generated per label (default: as many as held-out real)."),
    temperature: float = typer.Option(1.0, help="Sampling temperature for every run."),
    griffin_lim_iters: Optional[int] = typer.Option(
        None, help="Griffin-Lim iterations (default: 8 for mel features, 32 for linear ones)."
    ),
    speed_items: int = typer.Option(16, help="Sounds made (one call) to time generation speed."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """One table across runs: kind, parameters, training time, generation speed per CPU core, accuracy and
    the fixed-space (and classifier-space) FD ratio, diversity, precision / recall, spectral floor, pitch."""
    from ..core.progress import null_progress, rich_progress
    from ..sounds.evaluation.compare import compare_runs, table_lines

    set_threads(threads)
    clf = _classifier_dir(classifier, runs[0])
    args = (runs, clf, n_per_label, temperature, "fitted", griffin_lim_iters, speed_items, seed)
    if as_json:
        typer.echo(json.dumps(compare_runs(*args, progress=null_progress), indent=1))
        return
    with rich_progress(transient=True) as progress:
        result = compare_runs(*args, progress=progress)
    for line in table_lines(result):
        typer.echo(line)
