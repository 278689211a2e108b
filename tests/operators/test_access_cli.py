"""`python -m lepton_components.operators.access.accounts`: accounts made in the shell log in to the console."""

import io
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_components.operators.access import cli
from tests.operators.access_harness import AGENT_PASSWORD, account_store, database_file, serve_console

REPO = Path(__file__).resolve().parents[2]


def endpoints_file(tmp_path: Path) -> Path:
    """The endpoints.yml of a bot whose conversations live in the console's test database."""
    path = tmp_path / "endpoints.yml"
    path.write_text(f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {database_file(tmp_path)}\n")
    return path


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *arguments: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return cli.main([*arguments, "--endpoints", str(endpoints_file(tmp_path))])


@pytest.mark.asyncio
async def test_an_agent_added_in_the_shell_logs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    status = run(tmp_path, monkeypatch, "add", "alice", "--queues", "support,billing", "returns", "--password-stdin",
                 stdin=AGENT_PASSWORD + "\n")
    assert status == 0
    assert "Created agent alice (support, billing, returns)." in capsys.readouterr().out
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        assert (await browser.login("alice", AGENT_PASSWORD)).status == 303
        me = (await browser.get("/probe", html=False)).json()
        assert (me["role"], me["queues"]) == ("agent", ["support", "billing", "returns"])
        # Disabling her in the shell ends her session at once.
        assert run(tmp_path, monkeypatch, "disable", "alice") == 0
        assert (await browser.get("/probe", html=False)).status == 401
        assert (await console.browser().login("alice", AGENT_PASSWORD)).status == 401
        assert run(tmp_path, monkeypatch, "enable", "alice") == 0
        assert (await console.browser().login("alice", AGENT_PASSWORD)).status == 303


def test_the_password_is_asked_twice_on_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    answers = iter([AGENT_PASSWORD, AGENT_PASSWORD + "typo"])
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: next(answers))
    assert run(tmp_path, monkeypatch, "add", "alice", "--role", "admin") == 2
    assert "The two passwords differ" in capsys.readouterr().err
    answers = iter([AGENT_PASSWORD, AGENT_PASSWORD])
    assert run(tmp_path, monkeypatch, "add", "alice", "--role", "admin") == 0
    assert account_store(tmp_path).authenticate("alice", AGENT_PASSWORD).role == "admin"
    new_password = "another long password"
    answers = iter([new_password, new_password])
    assert run(tmp_path, monkeypatch, "password", "alice") == 0
    assert account_store(tmp_path).authenticate("alice", new_password) is not None


def test_list_shows_the_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert run(tmp_path, monkeypatch, "list") == 0
    assert "No accounts yet" in capsys.readouterr().out
    account_store(tmp_path).create("bob", AGENT_PASSWORD, "agent", ["billing"])
    account_store(tmp_path).set_disabled("bob", True)
    assert run(tmp_path, monkeypatch, "list") == 0
    assert "bob" in (out := capsys.readouterr().out) and "disabled" in out and "billing" in out
    assert AGENT_PASSWORD not in out and "argon2" not in out


@pytest.mark.parametrize(
    "arguments, stdin, message",
    [
        (["add", "alice", "--password-stdin"], "short\n", "at least 12 characters"),
        (["add", "alice", "--password-stdin"], "", "read no password"),
        (["add", "Alice", "--password-stdin"], AGENT_PASSWORD, "lower case"),
        (["add", "alice", "--queues", "Bad Queue", "--password-stdin"], AGENT_PASSWORD, "Queue names"),
        (["password", "nobody", "--password-stdin"], AGENT_PASSWORD, "no account named 'nobody'"),
        (["disable", "nobody"], "", "no account named 'nobody'"),
    ],
)
def test_mistakes_exit_2_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, arguments: list, stdin: str, message: str
) -> None:
    assert run(tmp_path, monkeypatch, *arguments, stdin=stdin) == 2
    assert message in capsys.readouterr().err


def test_a_taken_username_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    account_store(tmp_path).create("alice", AGENT_PASSWORD)
    assert run(tmp_path, monkeypatch, "add", "alice", "--password-stdin", stdin=AGENT_PASSWORD) == 2
    assert "already is an account named 'alice'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "endpoints, message",
    [
        (None, "There is no endpoints file"),
        ("action_endpoint:\n  url: http://localhost:5055/webhook\n", "no `tracker_store` section"),
        ("tracker_store:\n  type: nosuch.module.Store\n", "fix `tracker_store.type`"),
        ("tracker_store:\n  type: redis\n  url: 127.0.0.1\n  port: 1\n", "Cannot open the tracker store"),
    ],
)
def test_a_tracker_store_the_console_cannot_use_exits_2_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, endpoints: str, message: str
) -> None:
    path = tmp_path / "endpoints.yml"
    if endpoints is not None:
        path.write_text(endpoints)
    assert cli.main(["list", "--endpoints", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_it_runs_as_a_module(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "lepton_components.operators.access.accounts", "add", "carol", "--role", "admin",
               "--endpoints", str(endpoints_file(tmp_path)), "--password-stdin"]
    done = subprocess.run(command, input=AGENT_PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Created admin carol (every queue)." in done.stdout
    assert account_store(tmp_path).authenticate("carol", AGENT_PASSWORD).role == "admin"
