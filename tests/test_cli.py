"""The vidpipe command: instant help and argument errors, one-line errors without TensorFlow's log lines."""

import subprocess
import sys

import pytest

from vidpipe import cli_args, layout

SLOW_MODULES = ("tensorflow", "apache_beam", "keras", "tensorflow_transform")


def run_cli(*arguments, env_path=None, extra_env=None):
    import os

    env = dict(os.environ)
    env.pop("VIDPIPE_VERBOSE", None)
    if env_path:
        env["PYTHONPATH"] = os.pathsep.join([str(env_path), env.get("PYTHONPATH", "")])
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "vidpipe.apps.cli", *arguments], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def without_slow_modules(tmp_path_factory):
    """A PYTHONPATH entry where importing TensorFlow, Beam or Keras fails loudly."""
    root = tmp_path_factory.mktemp("no_slow_imports")
    for name in SLOW_MODULES:
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f"raise ImportError('{name} imported while parsing arguments')\n")
    return root


@pytest.mark.parametrize("command", sorted(cli_args.FAST_PARSERS))
def test_help_imports_no_slow_module(command, without_slow_modules):
    result = run_cli(command, "--help", env_path=without_slow_modules)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: vidpipe {command}")


@pytest.mark.parametrize("command", sorted(cli_args.FAST_PARSERS))
def test_argument_errors_answer_before_slow_imports(command, without_slow_modules):
    result = run_cli(command, "--no-such-option-at-all", "--output", "a", "--output", "b",
                     env_path=without_slow_modules)
    assert result.returncode == 2
    assert "imported while parsing" not in result.stderr


def test_errors_are_one_line_without_tensorflow_log_lines(tmp_path):
    result = run_cli("train", "--data", str(tmp_path / "missing"), "--train-dir", str(tmp_path / "t"),
                     "--set", "train.max_steps=-5")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["vidpipe: error: train.max_steps must be >= 1, got -5"]


def test_verbose_lets_tensorflow_speak(tmp_path):
    arguments = ("train", "--data", str(tmp_path / "missing"), "--train-dir", str(tmp_path / "t"))
    quiet, loud = run_cli(*arguments), run_cli("--verbose", *arguments)
    assert quiet.returncode == loud.returncode == 2
    assert len(quiet.stderr.strip().splitlines()) == 1
    assert len(loud.stderr.strip().splitlines()) > 1


def test_fast_parsers_know_every_model_and_backbone():
    from beam_pipelines.features import BACKBONES
    from models import registry

    assert set(registry.MODELS) == set(layout.MODEL_NAMES) | set(layout.MODEL_ALIASES)
    assert all(registry.MODELS[alias] is registry.MODELS[name] for alias, name in layout.MODEL_ALIASES.items())
    assert tuple(BACKBONES) == layout.BACKBONE_NAMES
