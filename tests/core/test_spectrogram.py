"""The torch-free front end (core/spectrogram.py) agrees with the torch one and with librosa/scipy."""

import subprocess
import sys

import librosa
import numpy as np
import pytest
import torch
from scipy.fft import dct

from soundloom.core import spectral
from soundloom.core.spectrogram import SpectrogramConfig, dct_matrix, features_numpy, mel_basis, stft_frames

from .conftest import harmonic_tone, noise_burst

SR = 8000
#: (n_fft, win_length, hop, samples): even and odd FFT sizes, short windows, odd hops and lengths.
SIZES = [(512, None, 128, 4000), (255, 200, 77, 1001), (64, 63, 16, 333), (400, 256, 100, 2049)]


def _clips(n: int) -> np.ndarray:
    x = np.stack([harmonic_tone(SR, 1.0)[:n], noise_burst(SR, 1.0)[:n], np.zeros(n, np.float32)])
    x[1, n // 2 :] = 0.0  # silence inside a clip reaches the dB floor
    return x


@pytest.mark.parametrize("kind", ["db", "mel", "mfcc", "magnitude", "power"])
@pytest.mark.parametrize("window", ["hann", "blackman", "hamming"])
@pytest.mark.parametrize("n_fft,win_length,hop,n", SIZES)
def test_numpy_features_equal_the_torch_path(kind, window, n_fft, win_length, hop, n):
    cfg = SpectrogramConfig(
        sample_rate=SR, n_fft=n_fft, win_length=win_length, hop_length=hop, window=window, kind=kind, n_mels=24
    )
    x = _clips(n)
    ref = spectral.features(torch.from_numpy(x), cfg).numpy()
    got = features_numpy(x, cfg)
    assert got.shape == ref.shape == (3, cfg.n_rows, cfg.n_frames(n))
    assert got.dtype == np.float32
    if kind in ("db", "mel"):
        # torch's float32 STFT rounds at ~1e-7 of the peak, so bins 100 dB below a clean tone's
        # peak differ by up to a dB: compare dB within 60 dB of each clip's peak, power everywhere.
        top = ref.max(axis=(1, 2), keepdims=True)
        loud = ref > top - 60.0
        np.testing.assert_allclose(got[loud], ref[loud], atol=5e-3)
        peak_power = 10 ** (top / 10)
        assert (np.abs(10 ** (got / 10) - 10 ** (ref / 10)) <= 1e-5 * peak_power).all()
    else:
        tol = {"magnitude": 1e-5, "power": 1e-4, "mfcc": 0.05}[kind]  # mfcc: sums of 24 dB bands
        np.testing.assert_allclose(got, ref, atol=tol, rtol=1e-5)


def test_complex_stft_equals_torch_stft_transposed():
    cfg = SpectrogramConfig(sample_rate=SR, n_fft=255, win_length=200, hop_length=77)
    x = _clips(1001)
    ref = spectral.stft(torch.from_numpy(x), cfg).numpy()
    np.testing.assert_allclose(stft_frames(x, cfg).transpose(0, 2, 1), ref, atol=2e-5)


def test_features_written_into_a_strided_out_array():
    cfg = SpectrogramConfig(sample_rate=SR, n_fft=256, hop_length=64)
    x = _clips(800)
    out = np.full((3, cfg.n_rows, cfg.n_frames(800) + 5), 7.0, np.float32)
    features_numpy(x, cfg, out=out[..., :-5])
    np.testing.assert_array_equal(out[..., :-5], features_numpy(x, cfg))
    assert (out[..., -5:] == 7.0).all()


@pytest.mark.parametrize(
    "n_fft,n_mels,fmin,fmax", [(512, 80, 0.0, None), (1024, 40, 30.0, 3000.0), (255, 13, 0.0, None)]
)
def test_mel_basis_equals_librosa(n_fft, n_mels, fmin, fmax):
    ref = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    np.testing.assert_allclose(mel_basis(SR, n_fft, n_mels, fmin, fmax), ref, rtol=1e-5, atol=1e-8)


def test_dct_matrix_equals_scipy_ortho_dct():
    np.testing.assert_allclose(dct_matrix(40, 13), dct(np.eye(40), type=2, norm="ortho", axis=0)[:13], atol=1e-6)


def test_config_round_trip_and_public_names_stay_in_spectral():
    cfg = SpectrogramConfig(n_fft=1024, win_length=1000, overlap=0.75, kind="mel")
    assert SpectrogramConfig.from_dict({**cfg.to_dict(), "unknown": 1}) == cfg
    assert spectral.SpectrogramConfig is SpectrogramConfig
    assert spectral.WINDOWS == ("hann", "blackman", "hamming")


def test_prepare_imports_no_torch_librosa_or_matplotlib():
    code = (
        "import sys, soundloom.data.prepare, soundloom.data.scan, soundloom.cli.data_cmds; "
        "print(sorted(m for m in ('torch', 'librosa', 'matplotlib', 'lightning', 'scipy.fft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
