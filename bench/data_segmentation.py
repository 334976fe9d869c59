"""Synthetic action segmentation data with the structure of Breakfast, written in MS-TCN's format.

Structure carried over from Breakfast: long untrimmed videos (thousands of frames at 15 fps), a few
activities, each an ordered list of actions from a shared vocabulary (some actions optional, some shared by
several activities), background (SIL) at both ends, durations that vary a lot between actions and
performers, and videos named ``P<person>_<camera>_P<person>_<activity>`` with split 1 testing on the first
quarter of the people.

Features are made hard on purpose (a per-frame classifier should not be enough):
- each action has a mean vector, but actions come in confusable groups whose means differ only slightly;
- a block of dimensions carries the activity (shared by all its actions), not the action;
- per-frame noise is strong and temporally correlated (AR(1)), like features of overlapping clips;
- a slow drift (random low-frequency walk per video, e.g. lighting or camera) is added to every frame.

Run: ``python bench/data_segmentation.py --output DIR [--videos 120] [--feature-dim 64] [--seed 0]``;
prints a JSON summary including the frame accuracy of the nearest true action mean (the ambiguity).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vidpipe.outputs import staged_dir  # noqa: E402

BACKGROUND = "SIL"

# activity -> ordered actions; a trailing "?" marks an optional action (skipped with probability ``skip``).
GRAMMAR: dict[str, list[str]] = {
    "coffee": ["take_cup", "pour_coffee", "pour_milk?", "add_sugar?", "stir_coffee"],
    "tea": ["take_cup", "add_teabag", "pour_water", "add_sugar?", "stir_tea?"],
    "cereals": ["take_bowl", "pour_cereals", "pour_milk", "stir_cereals?"],
    "friedegg": ["pour_oil", "butter_pan?", "crack_egg", "fry_egg", "add_saltnpepper?", "put_egg2plate"],
    "sandwich": ["cut_bun", "smear_butter", "put_toppingOnTop", "put_bunTogether?"],
    "juice": ["cut_orange", "squeeze_orange", "take_glass?", "pour_juice"],
}

# actions that look alike (their mean features differ only slightly)
CONFUSABLE = [
    ["pour_coffee", "pour_milk", "pour_water", "pour_juice", "pour_oil", "pour_cereals"],
    ["stir_coffee", "stir_tea", "stir_cereals"],
    ["take_cup", "take_bowl", "take_glass"],
    ["cut_bun", "cut_orange"],
]


@dataclass
class SyntheticSegmentationConfig:
    videos: int = 120
    people: int = 24
    feature_dim: int = 64
    activity_dims: int = 8
    fps: float = 15.0
    mean_action_frames: float = 240.0
    duration_spread: float = 0.6
    background_frames: tuple[int, int] = (30, 200)
    skip: float = 0.3
    class_separation: float = 1.0
    confusable_separation: float = 0.35
    activity_strength: float = 1.0
    noise: float = 2.6
    noise_correlation: float = 0.9
    drift: float = 0.8
    drift_frames: float = 600.0
    seed: int = 0
    activities: dict[str, list[str]] = field(default_factory=lambda: dict(GRAMMAR))


def action_vocabulary(activities: dict[str, list[str]]) -> list[str]:
    """SIL first, then every action in order of first appearance."""
    names = [BACKGROUND]
    for actions in activities.values():
        for action in actions:
            name = action.rstrip("?")
            if name not in names:
                names.append(name)
    return names


def class_means(cfg: SyntheticSegmentationConfig, names: list[str], rng: np.random.Generator) -> np.ndarray:
    """[C, D] action means: confusable groups share a base vector plus a small individual offset."""
    action_dims = cfg.feature_dim - cfg.activity_dims
    means = rng.normal(0.0, cfg.class_separation, size=(len(names), action_dims))
    for group in CONFUSABLE:
        members = [names.index(name) for name in group if name in names]
        if members:
            base = rng.normal(0.0, cfg.class_separation, size=action_dims)
            means[members] = base + rng.normal(0.0, cfg.confusable_separation, size=(len(members), action_dims))
    return means


def sample_video(cfg: SyntheticSegmentationConfig, activity: str, names: list[str], means: np.ndarray,
                 activity_vector: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """-> (features float32 [D, T], frame labels [T]) of one video of ``activity``."""
    actions = [a.rstrip("?") for a in cfg.activities[activity] if not (a.endswith("?") and rng.random() < cfg.skip)]
    pace = rng.lognormal(0.0, 0.25)
    durations = [int(rng.integers(*cfg.background_frames))]
    durations += [max(8, int(rng.lognormal(np.log(cfg.mean_action_frames * pace), cfg.duration_spread)))
                  for _ in actions]
    durations.append(int(rng.integers(*cfg.background_frames)))
    labels = [BACKGROUND] * durations[0]
    for action, duration in zip(actions, durations[1:-1]):
        labels += [action] * duration
    labels += [BACKGROUND] * durations[-1]
    ids = np.asarray([names.index(label) for label in labels])
    frames = len(labels)
    action_part = means[ids]
    in_activity = (ids != 0).astype(np.float64)[:, None]
    activity_part = in_activity * activity_vector[None, :]
    signal = np.concatenate([action_part, activity_part], axis=1)
    noise = np.empty((frames, cfg.feature_dim))
    innovation = rng.normal(0.0, cfg.noise * np.sqrt(1 - cfg.noise_correlation ** 2), size=(frames, cfg.feature_dim))
    noise[0] = rng.normal(0.0, cfg.noise, size=cfg.feature_dim)
    for t in range(1, frames):
        noise[t] = cfg.noise_correlation * noise[t - 1] + innovation[t]
    knots = max(2, int(frames / cfg.drift_frames) + 2)
    anchors = rng.normal(0.0, cfg.drift, size=(knots, cfg.feature_dim))
    positions = np.linspace(0, knots - 1, frames)
    drift = np.stack([np.interp(positions, np.arange(knots), anchors[:, d]) for d in range(cfg.feature_dim)], axis=1)
    features = (signal + noise + drift).astype(np.float32)
    return np.ascontiguousarray(features.T), labels


def write_synthetic_breakfast(output: str, cfg: SyntheticSegmentationConfig | None = None) -> dict:
    """Writes ``output`` (features/, groundTruth/, mapping.txt, splits/) atomically; returns a summary."""
    cfg = cfg or SyntheticSegmentationConfig()
    if cfg.activity_dims >= cfg.feature_dim:
        raise ValueError(f"activity_dims ({cfg.activity_dims}) must be below feature_dim ({cfg.feature_dim})")
    rng = np.random.default_rng(cfg.seed)
    names = action_vocabulary(cfg.activities)
    means = class_means(cfg, names, rng)
    activity_vectors = {activity: rng.normal(0.0, cfg.activity_strength, size=cfg.activity_dims)
                        for activity in cfg.activities}
    activities = list(cfg.activities)
    used_people = min(cfg.people, -(-cfg.videos // len(activities)))
    test_people = max(1, used_people // 4)
    train, test, lengths = [], [], []
    nearest_correct = 0
    full_means = {}
    for activity, vector in activity_vectors.items():
        activity_part = np.tile(vector, (len(names), 1))
        activity_part[0] = 0.0
        full_means[activity] = np.concatenate([means, activity_part], axis=1)
    with staged_dir(output, "synthetic-segmentation") as folder:
        for sub in ("features", "groundTruth", "splits"):
            os.makedirs(os.path.join(folder, sub))
        for index in range(cfg.videos):
            activity = activities[index % len(activities)]
            person_index = (index // len(activities)) % cfg.people
            person = 3 + person_index
            camera = f"cam{1 + (index // (cfg.people * len(activities))) % 3:02d}"
            video = f"P{person:02d}_{camera}_P{person:02d}_{activity}"
            features, labels = sample_video(cfg, activity, names, means, activity_vectors[activity], rng)
            np.save(os.path.join(folder, "features", f"{video}.npy"), features)
            with open(os.path.join(folder, "groundTruth", f"{video}.txt"), "w") as handle:
                handle.write("\n".join(labels) + "\n")
            (test if person_index < test_people else train).append(f"{video}.txt")
            lengths.append(len(labels))
            truth_ids = np.asarray([names.index(label) for label in labels])
            distances = ((features.T[:, None, :] - full_means[activity][None]) ** 2).sum(axis=-1)
            nearest_correct += int(np.sum(distances.argmin(axis=1) == truth_ids))
        with open(os.path.join(folder, "mapping.txt"), "w") as handle:
            handle.write("".join(f"{index} {name}\n" for index, name in enumerate(names)))
        for split, entries in (("train", train), ("test", test)):
            with open(os.path.join(folder, "splits", f"{split}.split1.bundle"), "w") as handle:
                handle.write("".join(f"{entry}\n" for entry in entries))
    return {
        "output": os.path.abspath(output), "videos": cfg.videos, "train_videos": len(train), "test_videos": len(test),
        "classes": len(names), "activities": len(activities), "feature_dim": cfg.feature_dim,
        "frames_total": int(sum(lengths)), "frames_min": int(min(lengths)), "frames_mean": float(np.mean(lengths)),
        "frames_max": int(max(lengths)), "fps": cfg.fps,
        "nearest_true_mean_frame_accuracy": 100.0 * nearest_correct / sum(lengths),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="data set folder to write (MS-TCN layout)")
    parser.add_argument("--videos", type=int, default=120)
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--feature-dim", type=int, default=64)
    parser.add_argument("--mean-action-frames", type=float, default=240.0)
    parser.add_argument("--noise", type=float, default=2.6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = SyntheticSegmentationConfig(videos=args.videos, people=args.people, feature_dim=args.feature_dim,
                                      mean_action_frames=args.mean_action_frames, noise=args.noise, seed=args.seed)
    print(json.dumps(write_synthetic_breakfast(args.output, cfg), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
