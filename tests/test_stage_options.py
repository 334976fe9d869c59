"""A stage option is given once: the stages refuse repeats and prefixes, the DAG passes only Beam options on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidpipe.apps import orchestration
from vidpipe.cli_args import RepeatedOptionError, StageArgumentParser

REPO_ROOT = Path(__file__).resolve().parents[1]


def _parser() -> StageArgumentParser:
    parser = StageArgumentParser(prog="stage")
    parser.add_argument("--output", required=True)
    parser.add_argument("--labels")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--transform-dir")
    group.add_argument("--pca-dir")
    return parser


@pytest.mark.parametrize("arguments, repeated", [
    (["--output", "a", "--output=/etc"], "--output"),
    (["--output=a", "--labels", "l.csv", "--output", "b"], "--output"),
    (["--output", "a", "--transform-dir", "t", "--runner=DirectRunner", "--transform-dir=/x"], "--transform-dir"),
])
def test_an_option_given_twice_is_one_clear_error(arguments, repeated):
    with pytest.raises(RepeatedOptionError, match=f"^{repeated} given twice"):
        _parser().parse_known_args(arguments)


def test_prefixes_are_not_taken_for_stage_options_and_other_options_pass_on():
    args, rest = _parser().parse_known_args(
        ["--output", "mine", "--out=/elsewhere", "--direct_num_workers=2", "--", "--output=x"])
    assert args.output == "mine"
    assert rest == ["--out=/elsewhere", "--direct_num_workers=2", "--", "--output=x"]


def test_ingest_and_label_stats_refuse_a_repeated_output():
    from beam_pipelines import ingest, label_stats_pipeline

    with pytest.raises(RepeatedOptionError, match="^--output given twice"):
        ingest.parse_args(["--input", "in", "--output", "run/data/train", "--output=/home/user"])
    with pytest.raises(RepeatedOptionError, match="^--pca-dir given twice"):
        ingest.parse_args(["--input", "in", "--output", "o", "--pca-dir", "a", "--pca-dir", "b"])
    args, beam_args = ingest.parse_args(["--input", "in", "--output", "o", "--outp=/x", "--runner=DirectRunner"])
    assert args.output == "o" and beam_args == ["--outp=/x", "--runner=DirectRunner"]
    with pytest.raises(RepeatedOptionError, match="^--output given twice"):
        label_stats_pipeline.run(["--data", "d", "--output", "o", "--output=/home/user"])
    with pytest.raises(RepeatedOptionError, match="^--data given twice"):
        label_stats_pipeline.run(["--data", "d", "--data=/home/user"])


def test_the_ingest_entry_point_exits_2_with_one_line_for_a_repeated_option(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-m", "beam_pipelines.ingest", "--input", str(tmp_path), "--output",
                             str(tmp_path / "out"), f"--output={victim}"], cwd=REPO_ROOT, env=environment,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = ("vidpipe: error: --output given twice; a stage option may be given once (it cannot be overridden "
                "through Beam options)")
    assert [line for line in result.stderr.splitlines() if line.startswith("vidpipe:")] == [expected]
    assert sorted(os.listdir(victim)) == ["keep.txt"] and not (tmp_path / "out").exists()


def test_beam_options_that_tune_the_runner_pass_through():
    assert orchestration.beam_options("--direct_num_workers=2 --direct_running_mode=multi_processing") == [
        "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    allowed = ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west1", "--num_workers=4",
               "--temp_location=gs://bucket/tmp", "--experiments=use_runner_v2", "--no_use_public_ips",
               "--machine_type=n1-standard-4", "--job_name=vidpipe-run-7", "--temp_location=/scratch/beam"]
    assert orchestration.beam_options(allowed) == allowed
    assert orchestration.beam_options([]) == [] and orchestration.beam_options(None) == []


def test_the_dag_refuses_a_bad_parameter_as_input_that_fails_without_retries(tmp_path):
    """StageRefused: the DAG turns it into AirflowFailException (dags/vidpipe_pipeline.py's _run)."""
    with pytest.raises(orchestration.StageRefused, match="beam_options: --output is a stage option"):
        orchestration.run_beam_options({"beam_options": ["--direct_num_workers=2", "--output=/home/user"]})
    assert orchestration.run_beam_options({"beam_options": "--direct_num_workers=2"}) == ["--direct_num_workers=2"]
    with pytest.raises(orchestration.StageRefused, match="corpus_dir 'corpus': not an absolute path"):
        orchestration.corpus_dir({"corpus_dir": "corpus"})
    with pytest.raises(orchestration.StageRefused, match="not a directory"):
        orchestration.corpus_dir({"corpus_dir": str(tmp_path / "missing")})
    assert orchestration.corpus_dir({"corpus_dir": str(tmp_path)}) == tmp_path.resolve()


def test_the_dag_writes_its_own_reports_atomically(tmp_path):
    from vidpipe import outputs

    report = tmp_path / "gate.json"
    orchestration.write_run_file(report, '{"blessed": true}')
    orchestration.write_run_file(report, '{"blessed": false}')
    assert report.read_text() == '{"blessed": false}'
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gate.json.lock", "gate.json"]
    (tmp_path / "run.json").mkdir()
    with pytest.raises(outputs.OutputError, match="is a folder"):
        orchestration.write_run_file(tmp_path / "run.json", "{}")
