"""Generator API: shapes, sample rates, seeds, continuation, sidecar recall, bad model files, CLI."""

from __future__ import annotations

import inspect
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from soundloom.cli import app
from soundloom.cli.model_cmds import generate as generate_cmd
from soundloom.core.errors import ParameterError
from soundloom.sounds import Generator
from soundloom.sounds.levelfollow import FOLLOW_WINDOW_DB, PAUSE_GUARD_DB, PAUSE_REDRAWS, WINDOW_GUARD_DB
from soundloom.sounds.models import ModelFileError
from tests.sounds.cli import run_cli
from tests.sounds.models.synth_store import N_SAMPLES, SAMPLE_RATE, tone


def test_sample_shapes_labels_and_seeds(tiny_run):
    gen = Generator.from_run(tiny_run, griffin_lim_iters=4)
    sounds = gen.sample(3, label="b", temperature=0.5, seed=7)
    assert [s.audio.shape for s in sounds] == [(N_SAMPLES,)] * 3
    assert all(s.sample_rate == SAMPLE_RATE and s.label == "b" and s.latent.shape == (3,) for s in sounds)
    again = gen.sample(3, label="b", temperature=0.5, seed=7)
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(sounds, again))
    assert not np.array_equal(sounds[0].latent, gen.sample(1, label="b", temperature=0.5, seed=8)[0].latent)
    free = gen.sample(6, seed=1)
    assert {s.label for s in free} <= {"a", "b", "c"}
    means = gen.prior["prior.mean"][0].reshape(-1, 3).numpy()  # temperature 0: one of label a's component means
    assert np.abs(means - gen.sample(1, label="a", temperature=0.0)[0].latent).max(axis=1).min() < 1e-6
    with pytest.raises(ValueError, match="unknown label"):
        gen.sample(1, label="z")
    hi = Generator.from_run(tiny_run, griffin_lim_iters=4, sample_rate=16000).sample(1, label="a")[0]
    assert hi.sample_rate == 16000 and abs(len(hi.audio) - 2 * N_SAMPLES) <= 2


def test_decoding_in_blocks_gives_each_latent_what_it_decodes_to_alone(tiny_run):
    """Samples decode in fixed blocks (Generator.decode_many), sidecars one latent at a time: bit for bit the
    same, whatever a latent's slot, neighbours or how many are decoded at once."""
    from soundloom.sounds.generator import DECODE_BLOCK

    gen = Generator.from_run(tiny_run, griffin_lim_iters=2)
    n = DECODE_BLOCK + 3  # a full block and a padded one
    labels = [("a", "b", "c")[i % 3] for i in range(n)]
    latents = [gen.draw_latents(1, lab, seed=i)[0] for i, lab in enumerate(labels)]
    many = gen.decode_many(latents, labels)
    alone = np.stack([gen.decode_features(z, lab).numpy() for z, lab in zip(latents, labels)])
    assert np.array_equal(many.numpy(), alone)
    assert np.array_equal(gen.decode_many(latents[::-1], labels[::-1]).numpy()[::-1], alone)
    assert np.array_equal(gen.decode_many(latents[2:5], labels[2:5]).numpy(), alone[2:5])
    wavs = gen.render_many(latents[:4], labels[:4])
    assert all(np.array_equal(w, gen.render(z, lab)[0]) for w, z, lab in zip(wavs, latents, labels))
    with pytest.raises(ValueError, match="expects 3"):
        gen.decode_many([np.zeros(4, np.float32)], ["a"])


def test_levels(tiny_run):
    peak = Generator.from_run(tiny_run, griffin_lim_iters=4, level="peak").sample(1, label="a")[0].audio
    assert abs(20 * np.log10(np.abs(peak).max()) + 1.0) < 0.01
    with pytest.raises(ValueError):
        Generator.from_run(tiny_run, level="loud")


def test_sidecars_recall_every_mode_exactly(tiny_run, tmp_path):
    gen = Generator.from_run(tiny_run, griffin_lim_iters=4)
    x = tone(880.0, 1, 0)
    prompt_file = tmp_path / "prompt.wav"
    sf.write(prompt_file, x[:700], SAMPLE_RATE, subtype="FLOAT")
    prompt, _ = sf.read(prompt_file, dtype="float32")
    cont = gen.continue_(prompt, SAMPLE_RATE, seconds=0.2, seed=3, steps=5)
    for s in cont:
        s.sources["prompt"] = str(prompt_file)
    batches = {
        "sample": gen.sample(2, label="c", seed=5),
        "variation": gen.variation(x, SAMPLE_RATE, amount=0.5, n=2, seed=2),
        "interpolate": gen.interpolate(gen.encode(x, SAMPLE_RATE, "a"), np.zeros(3, np.float32), steps=3, label="a"),
        "continue": cont,
        "reconstruct": [gen.reconstruct(x, SAMPLE_RATE)],
    }
    for mode, sounds in batches.items():
        gen.save(sounds, tmp_path / mode, format="wav")
        for i, s in enumerate(sounds):
            record = json.loads((tmp_path / mode / f"{mode}_{i:03d}.json").read_text())
            assert record["mode"] == mode and record["model"]["kind"] == "cvae" and len(record["latent"]) == 3
            assert np.array_equal(gen.from_sidecar(record).audio, s.audio), mode


def test_sidecars_record_where_mel_inversion_started(mel_run, tiny_run):
    """New sounds record the inversion's start; a sidecar from before the key existed re-renders from the
    pseudo-inverse it was made with, and that differs from today's start. Runs of other feature kinds record none."""
    assert "mel_init" not in Generator.from_run(tiny_run).sample(1, label="b")[0].params
    gen = Generator.from_run(mel_run, griffin_lim_iters=4)
    sound = gen.sample(1, label="b", seed=7)[0]
    record = sound.sidecar(gen.model_record())
    assert record["params"]["mel_init"] == "interp"
    old = {**record, "params": {k: v for k, v in record["params"].items() if k != "mel_init"}}
    before = gen.from_sidecar(old).audio
    gen.mel_init = "pinv"
    assert np.array_equal(gen.sample(1, label="b", seed=7)[0].audio, before)
    gen.mel_init = "interp"
    assert not np.array_equal(before, sound.audio)
    assert np.array_equal(gen.from_sidecar(record).audio, sound.audio) and gen.mel_init == "interp"
    with pytest.raises(ParameterError, match="mel inversion start 'zeros'"):
        gen.from_sidecar({**record, "params": {**record["params"], "mel_init": "zeros"}})
    assert gen.mel_init == "interp" and np.array_equal(gen.sample(1, label="b", seed=7)[0].audio, sound.audio)


def test_continuation_keeps_prompt_and_rate(tiny_run):
    gen = Generator.from_run(tiny_run, griffin_lim_iters=4, level="none")
    x = tone(440.0, 0, 0)
    from soundloom.core.convert import resample

    prompt = resample(x[:800], SAMPLE_RATE, 16000)
    out = gen.continue_(prompt, 16000, seconds=0.2, n=2, seed=0, steps=5)
    assert [len(s.audio) for s in out] == [3200, 3200] and out[0].sample_rate == 16000
    assert out[0].label == "a"  # picked by best reconstruction of the prompt
    assert np.allclose(out[0].audio[50:1200], prompt[50:1200], atol=1e-3)  # resampler edges aside
    assert not np.array_equal(out[0].latent, out[1].latent)
    with pytest.raises(ValueError, match="shorter than"):
        gen.continue_(prompt, 16000, seconds=0.01)
    with pytest.raises(ValueError, match="at most"):
        gen.continue_(prompt, 16000, seconds=5.0)


def test_bad_model_files_give_clear_errors(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "samples"))
    (run / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelFileError, match="not a valid safetensors"):
        Generator.from_run(run)
    with pytest.raises(ModelFileError, match="model.json"):
        Generator.from_run(tmp_path)


def test_cli_generate_and_recall(tiny_run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "generate",
            str(tiny_run),
            "--out",
            str(out),
            "--n",
            "2",
            "--label",
            "a",
            "--seed",
            "4",
            "--format",
            "flac",
            "--griffin-lim-iters",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    record = json.loads((out / "sample_001.json").read_text())
    assert record["seed"] == 5 and record["label"] == "a" and record["params"]["griffin_lim_iters"] == 4
    res = runner.invoke(
        app,
        [
            "generate",
            str(tiny_run),
            "--out",
            str(tmp_path / "again"),
            "--from-sidecar",
            str(out / "sample_001.json"),
            "--format",
            "flac",
        ],
    )
    assert res.exit_code == 0, res.output
    a, _ = sf.read(out / "sample_001.flac")
    b, _ = sf.read(tmp_path / "again" / "recalled_000.flac")
    assert np.array_equal(a, b)
    res = runner.invoke(
        app,
        [
            "generate",
            str(tiny_run),
            "--out",
            str(tmp_path / "interp"),
            "--interpolate",
            str(out / "sample_000.json"),
            str(out / "sample_001.json"),
            "--steps",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    ends = [json.loads((tmp_path / "interp" / f"interpolate_{i:03d}.json").read_text())["latent"] for i in (0, 2)]
    assert ends[0] == json.loads((out / "sample_000.json").read_text())["latent"]
    assert ends[1] == record["latent"]
    code, output = run_cli("generate", tmp_path, "--out", out)
    assert code == 2 and "model.json" in output and output.count("\n") == 1
    code, output = run_cli("generate", tiny_run, "--out", out, "--n", "0")
    assert code == 2 and output == "error: --n must be at least 1, got 0\n"
    code, output = run_cli("generate", tiny_run, "--out", out, "--label", "zz")
    assert code == 2 and "unknown label 'zz'" in output and "Traceback" not in output


def test_saved_files_keep_a_floor_below_a_16_bit_step(tiny_run, tmp_path):
    gen = Generator.from_run(tiny_run, griffin_lim_iters=4)
    [sound] = gen.sample(1, label="a", seed=3)
    t = np.arange(len(sound.audio)) / SAMPLE_RATE
    sound.audio = (0.5 * np.sin(2 * np.pi * 440 * t) * (t < 0.05) + 2e-6 * np.sin(2 * np.pi * 97 * t)).astype(
        np.float32
    )  # a tone, then a tail 108 dB below full scale: a fifth of a 16-bit step
    tail = slice(len(t) // 2, None)
    [wav] = gen.save([sound], tmp_path / "default")
    [flac] = gen.save([sound], tmp_path / "flac", format="flac")
    [wav16] = gen.save([sound], tmp_path / "16", bits=16)
    [wav32] = gen.save([sound], tmp_path / "32", bits=32)
    assert [sf.info(p).subtype for p in (wav, flac, wav16, wav32)] == ["PCM_24", "PCM_24", "PCM_16", "FLOAT"]
    for path in (wav, flac):
        back, _ = sf.read(path, dtype="float64")
        assert np.abs(back[tail] - sound.audio[tail]).max() <= 2.0**-22  # two 24-bit steps: an eighth of the tail
    lost = sf.read(wav16, dtype="float64")[0][tail] - sound.audio[tail]
    assert np.sqrt(np.mean(lost**2)) >= 0.9 * np.sqrt(np.mean(sound.audio[tail] ** 2))  # 16 bits: the tail is gone
    assert np.array_equal(sf.read(wav32, dtype="float32")[0], sound.audio)
    with pytest.raises(ParameterError, match="flac holds at most 24-bit"):
        gen.save([sound], tmp_path / "bad", format="flac", bits=32)
    code, output = run_cli("generate", tiny_run, "--out", tmp_path / "cli", "--bits", "12")
    assert code == 2 and output == "error: bits must be one of [16, 24, 32], got 12\n"
    assert not (tmp_path / "cli").exists()


def test_cli_continue_and_variation_recall_exactly(tiny_run, tmp_path):
    runner = CliRunner()
    prompt = tmp_path / "prompt.wav"
    sf.write(prompt, tone(440.0, 2, 1)[:900], SAMPLE_RATE, subtype="FLOAT")
    for flag, name in (("--continue", "continue"), ("--variation", "variation")):
        out = tmp_path / name
        res = runner.invoke(
            app,
            [
                "generate",
                str(tiny_run),
                "--out",
                str(out),
                flag,
                str(prompt),
                "--seconds",
                "0.2",
                "--n",
                "2",
                "--seed",
                "9",
                "--griffin-lim-iters",
                "3",
            ],
        )
        assert res.exit_code == 0, res.output
        for i in range(2):
            record = json.loads((out / f"{name}_{i:03d}.json").read_text())
            assert record["seed"] == 9 + i and record["sources"]
            res = runner.invoke(
                app,
                [
                    "generate",
                    str(tiny_run),
                    "--out",
                    str(tmp_path / f"re-{name}-{i}"),
                    "--from-sidecar",
                    str(out / f"{name}_{i:03d}.json"),
                ],
            )
            assert res.exit_code == 0, res.output
            a, _ = sf.read(out / f"{name}_{i:03d}.wav")
            b, _ = sf.read(tmp_path / f"re-{name}-{i}" / "recalled_000.wav")
            assert np.array_equal(a, b), name
        again = tmp_path / f"{name}-again"
        runner.invoke(
            app,
            [
                "generate",
                str(tiny_run),
                "--out",
                str(again),
                flag,
                str(prompt),
                "--seconds",
                "0.2",
                "--n",
                "2",
                "--seed",
                "9",
                "--griffin-lim-iters",
                "3",
            ],
        )
        assert np.array_equal(sf.read(out / f"{name}_001.wav")[0], sf.read(again / f"{name}_001.wav")[0])
    assert len(sf.read(tmp_path / "continue" / "continue_000.wav")[0]) == 1600


def test_cli_continue_from_the_first_part_of_a_long_prompt(tiny_run, tmp_path):
    runner = CliRunner()
    prompt = tmp_path / "long.wav"
    sf.write(prompt, tone(330.0, 2, 1)[:N_SAMPLES], SAMPLE_RATE, subtype="FLOAT")  # as long as the model's clips
    base = ["generate", str(tiny_run), "--continue", str(prompt), "--seconds", "0.2", "--griffin-lim-iters", "3"]
    code, output = run_cli(*base, "--out", tmp_path / "whole")
    assert code == 2 and "shorter" in output  # the whole file leaves nothing to continue
    res = runner.invoke(app, base + ["--prompt-seconds", "0.05", "--out", str(tmp_path / "part")])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "part" / "continue_000.json").read_text())
    assert record["sources"]["prompt_seconds"] == 0.05
    assert record["params"]["follow_level"] == 3.0  # continuations follow the prompt's level by default
    assert record["params"]["follow_window_db"] == FOLLOW_WINDOW_DB
    for flags, key, want in (
        (["--free-level"], "follow_level", None),
        (["--follow-level", "6"], "follow_level", 6.0),
        (["--free-windows"], "follow_window_db", None),
        (["--follow-window", "4"], "follow_window_db", 4.0),
    ):
        res = runner.invoke(app, base + ["--prompt-seconds", "0.05", *flags, "--out", str(tmp_path / "lv")])
        assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / "lv" / "continue_000.json").read_text())["params"][key] == want

    res = runner.invoke(
        app,
        [
            "generate",
            str(tiny_run),
            "--out",
            str(tmp_path / "re"),
            "--from-sidecar",
            str(tmp_path / "part" / "continue_000.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert np.array_equal(
        sf.read(tmp_path / "part" / "continue_000.wav")[0], sf.read(tmp_path / "re" / "recalled_000.wav")[0]
    )


def test_cli_continuation_defaults_are_the_generators():
    """The CLI spells its defaults out (so `--help` needs no torch); they must be the Generator's."""
    defaults = {k: v.default for k, v in inspect.signature(generate_cmd).parameters.items()}
    want = {
        "follow_window": FOLLOW_WINDOW_DB,
        "pause_guard": PAUSE_GUARD_DB,
        "pause_redraws": PAUSE_REDRAWS,
        "window_guard": WINDOW_GUARD_DB,
    }
    assert {k: defaults[k].default for k in want} == want


def test_api_continuation_recalls_from_its_sidecar(tiny_run, tmp_path):
    gen = Generator.from_run(tiny_run, griffin_lim_iters=3)
    prompt = tone(660.0, 1, 2)[:700]
    sounds = gen.continue_(prompt, SAMPLE_RATE, seconds=0.2, n=2, seed=4, steps=4)
    paths = gen.save(sounds, tmp_path / "api")
    assert sorted(p.name for p in (tmp_path / "api").glob("*_prompt.wav")) == ["continue_000_prompt.wav"]
    for i, path in enumerate(paths):
        record = json.loads(path.with_suffix(".json").read_text())
        assert record["sources"]["prompt"].endswith("continue_000_prompt.wav")
        assert np.array_equal(gen.from_sidecar(path.with_suffix(".json")).audio, sounds[i].audio)
    # A prompt file and its first part: the Generator names both in the sidecar.
    file = tmp_path / "long.wav"
    sf.write(file, tone(330.0, 2, 1), SAMPLE_RATE, subtype="FLOAT")
    part = gen.continue_(file, None, seconds=0.2, seed=1, steps=4, prompt_seconds=0.05)
    assert part[0].sources == {"prompt": str(file.resolve()), "prompt_seconds": 0.05}
    [saved] = gen.save(part, tmp_path / "file")
    assert np.array_equal(gen.from_sidecar(saved.with_suffix(".json")).audio, part[0].audio)
    with pytest.raises(ValueError, match="prompt_sample_rate"):
        gen.continue_(prompt, None, seconds=0.2)
