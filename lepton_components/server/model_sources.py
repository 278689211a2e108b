"""Let Rasa's API load models only from the server's own model folder, unless told otherwise.

A Rasa model archive is code the server runs: its graph names the classes to import,
and a custom component may unpickle whatever it stored. Rasa's `PUT /model` loads
whatever the request names: `model_file` anywhere on the disk, a `model_server` URL
(fetched by the server, so also a way to reach internal hosts), or a `remote_storage`
bucket (`rasa/server.py` `load_model`); `POST /model/test/intents?model=` does the same
for its evaluation model. An API token that leaks thus becomes code execution.

Here such requests get 403 naming the switch, before Rasa reads them:

* `model_file` (and `?model=`) must resolve, symlinks followed, to a path inside the
  model folder: `LEPTON_MODEL_DIR`, else the folder of `rasa run --model`, else `models`;
* `model_server` and `remote_storage` in the request, and `?model=` while the server
  loads its models from a model server or remote storage, need
  `LEPTON_ALLOW_REMOTE_MODELS=true`.

The model server and remote storage the operator configured (`endpoints.yml`,
`--remote-storage`) keep working: only what a request names is checked.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Text

from rasa.shared.constants import DEFAULT_MODELS_PATH
from rasa.shared.exceptions import InvalidConfigException
from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.server.api_auth import is_api_route
from lepton_components.server.failures import error_response
from lepton_components.server.rasa_internals import body_pending, startup_model_path

logger = logging.getLogger(__name__)

MODEL_DIR_ENV = "LEPTON_MODEL_DIR"
ALLOW_REMOTE_ENV = "LEPTON_ALLOW_REMOTE_MODELS"
# Longer paths are refused before resolving them: resolving walks every component.
MAX_PATH_LENGTH = 4096
_TRUE, _FALSE = ("1", "true", "yes"), ("", "0", "false", "no")
LOAD_ROUTE, EVALUATE_ROUTE = ("PUT", "model"), ("POST", "model/test/intents")


def _allow_remote(environment: Mapping[Text, Text]) -> bool:
    value = environment.get(ALLOW_REMOTE_ENV, "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise InvalidConfigException(
            f"{ALLOW_REMOTE_ENV} must be `true` or `false`, got {value!r}. Leave it unset unless every holder "
            "of the API token may make this server download and run a model from anywhere."
        )
    return value in _TRUE


def _model_folder(app: Sanic, environment: Mapping[Text, Text]) -> Path:
    configured = environment.get(MODEL_DIR_ENV, "").strip()
    if configured:
        folder = Path(configured).resolve()
        if not folder.is_dir():
            raise InvalidConfigException(
                f"{MODEL_DIR_ENV} must name an existing folder, got {configured!r} ({folder} is not a folder). "
                f"Example: {MODEL_DIR_ENV}=/srv/lepton/models"
            )
        return folder
    # `--model` names a model file or the folder of model files (`models` when not given);
    # a folder that does not exist yet is still the one models may later appear in.
    started_with = Path(startup_model_path(app) or DEFAULT_MODELS_PATH)
    is_file = started_with.is_file() or started_with.name.endswith(".tar.gz")
    return (started_with.parent if is_file else started_with).resolve()


@dataclass(frozen=True)
class ModelSources:
    """Where models named in API requests may come from; `refusal(...)` says why not."""

    folder: Path
    allow_remote: bool = False

    @classmethod
    def from_app(cls, app: Sanic, environment: Mapping[Text, Text]) -> "ModelSources":
        return cls(_model_folder(app, environment), _allow_remote(environment))

    def path_refusal(self, model_file: Text, what: Text) -> Optional[Text]:
        if len(model_file) <= MAX_PATH_LENGTH:
            try:
                resolved = Path(model_file).resolve()
            except (OSError, ValueError, RuntimeError):  # NUL bytes, symlink loops
                resolved = None
            if resolved is not None and (resolved == self.folder or self.folder in resolved.parents):
                return None
        return (
            f"{what} loads models from {self.folder} only ({MODEL_DIR_ENV}), and this one is elsewhere. "
            f"Copy the model into that folder, or start the server with {MODEL_DIR_ENV} set to the folder "
            "that holds it."
        )

    def remote_refusal(self, what: Text) -> Optional[Text]:
        if self.allow_remote:
            return None
        return (
            f"{what} may not load a model from a model server or remote storage named in the request: a model "
            "is code the server runs. Load it from the model folder, or start the server with "
            f"{ALLOW_REMOTE_ENV}=true if every holder of the API token may choose where it comes from."
        )

    def load_refusal(self, body: Any) -> Optional[Text]:
        """Why a `PUT /model` body may not be loaded (Rasa's reading of it), else None."""
        if not isinstance(body, dict):
            return None  # `api_bodies` refuses it
        if body.get("model_server") or body.get("remote_storage") is not None:
            return self.remote_refusal("PUT /model")
        model_file = body.get("model_file")
        return self.path_refusal(model_file, "PUT /model") if isinstance(model_file, str) else None

    def evaluation_refusal(self, model: Optional[Text], agent: Any) -> Optional[Text]:
        """Why `POST /model/test/intents?model=` may not load `model`, else None."""
        if not model:
            return None
        if getattr(agent, "model_server", None) is not None or getattr(agent, "remote_storage", None) is not None:
            return self.remote_refusal("POST /model/test/intents?model=")
        return self.path_refusal(model, "POST /model/test/intents?model=")


def _refusal(sources: ModelSources, request: Request) -> Optional[Text]:
    key = (request.method, request.route.path)
    if key == LOAD_ROUTE:
        return sources.load_refusal(request.json)
    if key == EVALUATE_ROUTE:
        return sources.evaluation_refusal(request.args.get("model"), getattr(request.app.ctx, "agent", None))
    return None


def install_model_sources(app: Sanic, environment: Optional[Mapping[Text, Text]] = None) -> None:
    """Read the settings (a bad one stops the server) and register the check."""
    sources = ModelSources.from_app(app, os.environ if environment is None else environment)

    async def check_model_source(request: Request) -> Optional[HTTPResponse]:
        if not is_api_route(request) or body_pending(request):
            return None  # an unread body: Sanic is answering an error (413), and no handler runs
        problem = _refusal(sources, request)
        return error_response(403, "forbidden", problem) if problem else None

    app.register_middleware(check_model_source, "request")
    logger.info(
        f"Rasa's API loads models from {sources.folder} only"
        + ("" if not sources.allow_remote else f", and from servers named in requests ({ALLOW_REMOTE_ENV})")
        + "."
    )
