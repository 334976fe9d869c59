"""Audio embedding: 128 values per video frame from the log-mel spectrogram of the audio track.

Each frame's window (one second at the default 1 fps) gives the mean and the standard deviation over time of 64
log-mel bands (25 ms Hann windows, 10 ms hop, 125-7500 Hz, VGGish's front end), standardized with fixed constants so
that the values sit inside the schema's quantization range. Fixed constants keep the embedding identical
across corpora and splits.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vidpipe import schema

NUM_MEL_BANDS = schema.AUDIO_SIZE // 2
WINDOW_SECONDS = 0.025
HOP_SECONDS = 0.010
LOWER_HZ, UPPER_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
MEAN_CENTER, MEAN_SCALE = -2.0, 2.5
STD_CENTER, STD_SCALE = 1.0, 1.0
EMBEDDING_NAME = "logmel64-mean-std-v1"


def log_mel_spectrogram(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float samples [S] -> log-mel energies [frames, 64] at a 10 ms hop."""
    window = int(round(WINDOW_SECONDS * sample_rate))
    hop = int(round(HOP_SECONDS * sample_rate))
    fft_length = 1 << (window - 1).bit_length()
    padded = np.pad(samples.astype(np.float32), (0, max(0, window - samples.size)))
    stft = tf.signal.stft(padded, frame_length=window, frame_step=hop, fft_length=fft_length)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        NUM_MEL_BANDS, fft_length // 2 + 1, sample_rate, LOWER_HZ, UPPER_HZ)
    mel = tf.matmul(tf.abs(stft), mel_matrix)
    return tf.math.log(mel + LOG_OFFSET).numpy()


def embed_audio(samples: np.ndarray | None, num_frames: int, sample_rate: int, fps: float = 1.0
                ) -> tuple[np.ndarray, bool]:
    """Audio samples -> (float32 [num_frames, 128], has_audio): frame i summarizes [i/fps, (i+1)/fps).

    Frames past the end of the audio track, and every frame when there is no track, are zeros.
    """
    embedding = np.zeros((num_frames, schema.AUDIO_SIZE), np.float32)
    if samples is None or samples.size == 0 or num_frames == 0:
        return embedding, False
    log_mel = log_mel_spectrogram(samples, sample_rate)
    hops_per_frame = max(1, int(round(1.0 / (fps * HOP_SECONDS))))
    for index in range(num_frames):
        window = log_mel[index * hops_per_frame:(index + 1) * hops_per_frame]
        if window.shape[0] == 0:
            break
        embedding[index, :NUM_MEL_BANDS] = (window.mean(axis=0) - MEAN_CENTER) / MEAN_SCALE
        embedding[index, NUM_MEL_BANDS:] = (window.std(axis=0) - STD_CENTER) / STD_SCALE
    return embedding, True
