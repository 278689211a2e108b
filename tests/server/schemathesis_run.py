"""Runs the schemathesis CLI over docs/openapi.yml against a live server, bounded and seeded."""

import subprocess
import sys
from pathlib import Path
from typing import List, Text

from tests.rest_client import REST_TOKEN

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO / "docs" / "openapi.yml"
# 5xx answers and answers not matching docs/openapi.yml fail the run.
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def run_schemathesis(
    url: Text, work_dir: Path, api_token: Text, admin_token: Text, session: Text, max_examples: int
) -> subprocess.CompletedProcess:
    """Runs it with the five auth schemes filled in; returns the finished process."""
    config = work_dir / "schemathesis.toml"
    config.write_text(
        f'[auth.openapi.ApiToken]\napi_key = "{api_token}"\n'
        f'[auth.openapi.ApiBearer]\nbearer = "{api_token}"\n'
        f'[auth.openapi.AdminBearer]\nbearer = "{admin_token}"\n'
        f'[auth.openapi.RestBearer]\nbearer = "{REST_TOKEN}"\n'
        f'[auth.openapi.WebChatSession]\nbearer = "{session}"\n',
        encoding="utf-8",
    )
    command: List[Text] = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run", str(OPENAPI),
        "--url", url, "--checks", CHECKS, "--max-examples", str(max_examples), "--seed", "20240611",
        "--generation-deterministic", "--phases", "examples,coverage,fuzzing", "--workers", "1",
        "--request-timeout", "60", "--no-shrink",
    ]
    return subprocess.run(command, cwd=work_dir, capture_output=True, text=True, timeout=600)
