"""The loaded model's knowledge-base components: their answers, files and live reload.

Found as the FAQ admin channel finds them (`channels/faq_admin._loaded_retrievers`: the
components of the running model's graph with a live `state`, `reload()` and a configured
`knowledge_base`, i.e. FaqRetriever or JointNluComponent). Reloading rebuilds a retriever's index from
its file and swaps it in at once, so an edited answer is live for the next message;
embedding is CPU work, so it runs in the default thread pool. A file the retriever
refuses leaves its old answers in place (`KnowledgeBaseInvalid`).
"""

import asyncio
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Text, Tuple

from sanic.request import Request

from lepton_components.channels.faq_admin import _loaded_retrievers
from lepton_components.operators.review.knowledge_edits import restore


def loaded_retrievers(request: Request) -> List[Any]:
    return _loaded_retrievers(request)


def knowledge_base_of(retriever: Any) -> Path:
    """The file the retriever reads (relative paths are relative to where `rasa` runs)."""
    return Path(retriever.component_config["knowledge_base"])


def knowledge_bases(retrievers: Sequence[Any]) -> List[Path]:
    """The distinct files, in the graph's order."""
    paths: List[Path] = []
    for retriever in retrievers:
        path = knowledge_base_of(retriever)
        if path.resolve() not in [known.resolve() for known in paths]:
            paths.append(path)
    return paths


def answer_choices(retrievers: Sequence[Any]) -> Dict[Text, Text]:
    """Answer id → its first question, of the answers the retrievers serve now."""
    choices: Dict[Text, Text] = {}
    for retriever in retrievers:
        state = retriever.state
        for answer in state.answers if state is not None else []:
            choices.setdefault(answer.id, answer.questions[0] if answer.questions else "")
    return choices


def retriever_serving(retrievers: Sequence[Any], answer_id: Text) -> Any:
    """The first retriever whose live answers include `answer_id` (None if none does)."""
    for retriever in retrievers:
        state = retriever.state
        if state is not None and any(answer.id == answer_id for answer in state.answers):
            return retriever
    return None


async def reload_reading(retrievers: Sequence[Any], path: Path) -> List[Dict[Text, Any]]:
    """Reloads every retriever that reads `path`; their summaries. Raises KnowledgeBaseInvalid."""
    target = path.resolve()
    return [
        await asyncio.to_thread(retriever.reload) for retriever in retrievers if knowledge_base_of(retriever).resolve() == target
    ]


async def edit_and_reload(retrievers: Sequence[Any], path: Path, edit: Callable[[], Tuple[bool, Text]]) -> bool:
    """Runs `edit` (blocking: whether it changed `path`, the text before) and reloads at once.

    `edit` raises `KnowledgeBaseError` for an edit the loader refuses (the file is
    untouched). A reload the retriever refuses all the same (`KnowledgeBaseInvalid`) puts
    the old text back and re-raises; the retrievers kept their old answers meanwhile.
    Callers hold the part's knowledge lock, so edits and reloads do not interleave.
    """
    from lepton_components.retrieval.faq_retriever import KnowledgeBaseInvalid

    changed, previous = await asyncio.to_thread(edit)
    if changed:
        try:
            await reload_reading(retrievers, path)
        except KnowledgeBaseInvalid:
            await asyncio.to_thread(restore, path, previous)
            raise
    return changed


def encoder_of(retriever: Any) -> Any:
    """The component's sentence encoder (`encode(texts)` → unit vectors): the vectors its index holds."""
    return retriever._get_encoder()
