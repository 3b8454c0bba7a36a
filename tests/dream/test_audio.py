import numpy as np
import soundfile as sf

from nsynth_research.dream.audio import read_wav, write_wav
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, FeatureConfig
from nsynth_research.instruments.features.inverse import griffin_lim, inverse_features
from nsynth_research.instruments.features.spectrogram import librosa_features

CFG = FeatureConfig()


def test_a_dream_wav_is_4_s_of_16_khz_float_audio(tmp_path) -> None:
    t = np.arange(NUM_SAMPLES) / SAMPLE_RATE
    note = (0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-t)).astype(np.float32)
    (audio,) = griffin_lim(inverse_features(librosa_features(note, CFG), CFG)[None], CFG,
                           n_iter=8, seed=0)  # fmt: skip
    path = write_wav(tmp_path / "dream.wav", audio)
    info = sf.info(path)
    assert (info.samplerate, info.frames, info.channels) == (16_000, 64_000, 1)
    np.testing.assert_array_equal(read_wav(path), audio)  # float WAV: nothing clipped
