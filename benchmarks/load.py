"""Load test: many concurrent conversations against one or two `rasa run` replicas, loopback only.

    python -m benchmarks.load --model models --replicas 1 --out docs/load_1_replica.json
    python -m benchmarks.load --model models --replicas 2 --out docs/load_2_replicas.json

Each simulated customer sends its messages one after the other over the REST channel
(`POST /webhooks/rest/webhook`), waiting for each reply, as a website would; all
customers talk at once. Requests go round-robin over the replicas, so with two replicas
consecutive messages of one conversation land on different processes (the lock store
and the shared tracker store must keep the conversation whole). One replica uses the
embedded stores of `bot/endpoints.yml` (SQLite, in-memory locks); two use PostgreSQL and
the atomic Redis lock store of `bot/endpoints.scaled.yml`, on a fresh database that is
dropped afterwards. Reported: messages per second, reply latency p50/p95/p99, errors
(non-200 answers, timeouts, replies without text), each replica's time from launch to its
first answer (the replicas start together, so on shared cores they slow each other) and
its peak resident memory.
"""

import argparse
import asyncio
import dataclasses
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Text

import numpy as np
import yaml

from benchmarks.reporting import publish

REPO = Path(__file__).resolve().parents[1]
# The replicas' REST channel credential (bot/credentials.yml reads LEPTON_REST_TOKEN).
REST_TOKEN = os.environ.get("LEPTON_REST_TOKEN") or uuid.uuid4().hex * 2
REST_AUTH = {"Authorization": f"Bearer {REST_TOKEN}"}
# One customer's side of a support chat: greeting, an order lookup through the form,
# knowledge-base questions, small talk. Cycled to the requested number of messages.
SCRIPT = [
    "hi",
    "where is my order?",
    "LP-{number}",
    "how long does shipping take?",
    "can I pay with paypal?",
    "I want to return an item",
    "what are your opening hours?",
    "thanks, that's all",
]
# The other secrets bot/credentials.yml expands (Rasa stops on an unset one).
CREDENTIAL_SECRETS = ("LEPTON_ADMIN_TOKEN", "LEPTON_WEB_CHAT_SECRET", "LEPTON_OPERATOR_PASSWORD")
REPLY_TIMEOUT_S = 600
START_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _postgres_database() -> Iterator[Text]:
    """A fresh database on the local PostgreSQL, dropped afterwards."""
    name = f"lepton_load_{uuid.uuid4().hex[:8]}"
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", name], check=False)


def _endpoints(folder: Path, replicas: int, stack: ExitStack) -> Path:
    if replicas == 1:
        return REPO / "bot" / "endpoints.yml"
    config = yaml.safe_load((REPO / "bot" / "endpoints.scaled.yml").read_text(encoding="utf-8"))
    config["tracker_store"]["db"] = stack.enter_context(_postgres_database())
    config["lock_store"].update({"db": 12, "key_prefix": f"load{uuid.uuid4().hex[:8]}"})
    path = folder / "endpoints.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _answered(status: int, body: Any) -> bool:
    """A reply counts when it is a 200 with at least one message that has text."""
    return status == 200 and any(message.get("text") for message in body or [])


@dataclasses.dataclass
class Replica:
    url: Text
    process: "subprocess.Popen[bytes]"
    started: float  # time.monotonic() at launch
    log: Path

    def memory_mb(self, field: Text) -> float:
        """A memory figure of the server process from /proc (Linux): VmRSS now, VmHWM the peak."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
        raise RuntimeError(f"no {field} for process {self.process.pid}")


def _start_replica(model: Path, endpoints: Path, folder: Path, stack: ExitStack) -> Replica:
    port = _free_port()
    log_path = folder / f"rasa-{port}.log"
    log = log_path.open("w")
    stack.callback(log.close)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "RASA_TELEMETRY_ENABLED": "false",
                   "LEPTON_REST_TOKEN": REST_TOKEN,
                   # bot/credentials.yml reads these; the load touches none of their routes.
                   **{name: os.environ.get(name) or uuid.uuid4().hex * 2 for name in CREDENTIAL_SECRETS}}
    started = time.monotonic()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "rasa"), "run", "--model", str(model), "--endpoints", str(endpoints),
         "--credentials", str(REPO / "bot" / "credentials.yml"), "--port", str(port), "--interface", "127.0.0.1"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=environment,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()

    stack.callback(stop)
    return Replica(f"http://127.0.0.1:{port}", process, started, log_path)


async def _first_answers(replicas: List[Replica]) -> List[float]:
    """Per replica, seconds from launching `rasa run` to the first reply with text: what a
    customer waits after a restart or a scale-up. Polled every 0.2 s."""
    import aiohttp

    deadline = time.monotonic() + START_TIMEOUT_S
    seconds = []
    async with aiohttp.ClientSession() as http:
        for replica in replicas:
            while True:
                try:
                    async with http.post(
                        f"{replica.url}/webhooks/rest/webhook",
                        json={"sender": f"warm-{uuid.uuid4().hex}", "message": "hi"},
                        headers=REST_AUTH,
                    ) as reply:
                        if _answered(reply.status, await reply.json(content_type=None)):
                            seconds.append(round(time.monotonic() - replica.started, 1))
                            break
                except aiohttp.ClientError:
                    pass
                if replica.process.poll() is not None:
                    tail = replica.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{replica.url} exited with {replica.process.returncode}:\n{tail}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{replica.url} gave no answer in {START_TIMEOUT_S} s")
                await asyncio.sleep(0.2)
    return seconds


async def _run_load(urls: List[Text], conversations: int, messages: int) -> Dict[str, Any]:
    import aiohttp

    latencies: List[float] = []
    errors: List[Text] = []
    counter = iter(range(10**9))

    async def customer(http: "aiohttp.ClientSession", index: int) -> None:
        sender = f"load-{uuid.uuid4().hex}"
        for turn in range(messages):
            text = SCRIPT[turn % len(SCRIPT)].format(number=f"{index:06d}")
            url = urls[next(counter) % len(urls)]
            started = time.perf_counter()
            try:
                async with http.post(
                    f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, headers=REST_AUTH
                ) as reply:
                    body = await reply.json(content_type=None)
                    if not _answered(reply.status, body):
                        errors.append(f"{reply.status}: {str(body)[:120]}")
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                errors.append(f"{type(error).__name__}: {error}")
            latencies.append(time.perf_counter() - started)

    timeout = aiohttp.ClientTimeout(total=REPLY_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(customer(http, index) for index in range(conversations)))
        seconds = time.perf_counter() - started
    milliseconds = np.array(latencies) * 1000
    return {
        "messages": len(latencies),
        "seconds": round(seconds, 1),
        "messages_per_second": round(len(latencies) / seconds, 1),
        "latency_p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
        "latency_p95_ms": round(float(np.percentile(milliseconds, 95)), 1),
        "latency_p99_ms": round(float(np.percentile(milliseconds, 99)), 1),
        "errors": len(errors),
        "error_examples": errors[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models", help="model archive or folder (make train)")
    parser.add_argument("--replicas", type=int, choices=[1, 2], default=1)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=20, help="messages per conversation")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not args.model.exists():
        parser.error(f"no model at {args.model}; run `make train` first")

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="lepton-load-") as workdir:
        folder = Path(workdir)
        endpoints = _endpoints(folder, args.replicas, stack)
        replicas = [_start_replica(args.model.resolve(), endpoints, folder, stack) for _ in range(args.replicas)]
        first_answers = asyncio.run(_first_answers(replicas))
        result = asyncio.run(_run_load([replica.url for replica in replicas], args.conversations, args.messages))
        result["start_to_first_answer_s"] = first_answers
        result["serving_rss_mb"] = [replica.memory_mb("VmRSS") for replica in replicas]
        result["serving_peak_rss_mb"] = [replica.memory_mb("VmHWM") for replica in replicas]
    report = {
        "command": " ".join(["python -m benchmarks.load", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "replicas": args.replicas,
        "conversations": args.conversations,
        "messages_per_conversation": args.messages,
        **result,
    }
    publish(report, args.out)


if __name__ == "__main__":
    main()
