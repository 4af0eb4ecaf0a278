"""``rtnb record`` and ``rtnb replay`` as a user runs them: real processes against a real hub."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from rtnb.cli import main
from rtnb.cli.token import mint_token
from rtnb.client import AsyncClient, connect
from rtnb.core.message import Message
from rtnb.record import Recorder, frame_from_messages, load, save
from rtnb.server.auth import AccessControl
from rtnb.testing import running_hub

ThreadedHub = Any  # the fixture's type, defined in conftest.py


class RunningCommand:
    """An ``rtnb`` child process whose stderr lines are collected as they come."""

    def __init__(self, *arguments: str, token: str | None = None) -> None:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        environment.pop("RTNB_TOKEN", None)
        if token is not None:
            environment["RTNB_TOKEN"] = token
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rtnb", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=environment,
        )
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()

    def wait_for_line(self, text: str, timeout: float = 20.0) -> str:
        with self._new_line:
            found = self._new_line.wait_for(lambda: any(text in line for line in self.lines), timeout)
        assert found, f"no line with {text!r} in {self.lines}"
        return next(line for line in self.lines if text in line)

    def finish(self, timeout: float = 30.0) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        return code


def test_record_command_writes_parquet_with_a_progress_line(threaded_hub: ThreadedHub, tmp_path: Path) -> None:
    output = tmp_path / "cli.parquet"
    command = RunningCommand("record", "cli/#", "-o", str(output), "--max-rows", "30", "--url", threaded_hub.url)
    command.wait_for_line("rows/s")  # subscribed and reporting
    with connect(threaded_hub.url) as publisher:
        offsets = [publisher.publish("cli/x", {"i": index, "name": f"é{index}"}) for index in range(30)]
    assert command.finish() == 0, command.lines
    assert "recorded 30 rows" in command.wait_for_line("->")
    frame = load(output)
    assert frame["offset"].tolist() == offsets and frame["i"].tolist() == list(range(30))
    assert not (tmp_path / "cli.parquet.parts").exists()


def test_record_command_stops_after_duration_and_writes_csv(threaded_hub: ThreadedHub, tmp_path: Path) -> None:
    output = tmp_path / "quiet.csv"
    command = RunningCommand("record", "nothing/#", "-o", str(output), "--duration", "0.3", "--url", threaded_hub.url)
    assert command.finish() == 0, command.lines
    assert len(load(output)) == 0


def test_replay_command_publishes_a_file(threaded_hub: ThreadedHub, tmp_path: Path) -> None:
    frame = frame_from_messages(
        Message("old/x", index + 1, 1, 1_790_000_000 + index * 0.01, {"i": index}) for index in range(40)
    )
    path = save(frame, tmp_path / "session.parquet")
    recorder = Recorder(threaded_hub.url, "new/#").start()
    command = RunningCommand(
        "replay", str(path), "--speed", "20", "--topic-map", "old/x=new/x", "--url", threaded_hub.url
    )
    assert command.finish() == 0, command.lines
    assert recorder.wait(rows=40, timeout=10).stop().to_frame()["i"].tolist() == list(range(40))
    assert command.wait_for_line("replayed 40 messages")


def test_commands_report_bad_input_with_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "a/#", "-o", str(tmp_path / "out.txt")]) == 2
    assert "suffix" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.parquet"), "--url", "http://127.0.0.1:9"]) == 2
    assert "No recording" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.parquet"), "--topic-map", "nonsense"]) == 2
    assert "OLD=NEW" in capsys.readouterr().err


def test_import_rtnb_does_not_import_pandas() -> None:
    check = (
        "import sys, rtnb\n"
        "assert 'pandas' not in sys.modules and 'pyarrow' not in sys.modules, 'imported too early'\n"
        "assert rtnb.Recorder.__name__ == 'Recorder' and callable(rtnb.load) and callable(rtnb.replay)\n"
        "assert 'pandas' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- a hub with --auth jwt ------------------------------------------------------------------------

SECRET = "record-tests-secret-long-enough-for-hs256"


def recorder_token() -> str:
    return mint_token(SECRET, "recorder", publish=("secure/#",), subscribe=("secure/#",), ttl=600)


async def test_record_and_replay_commands_with_a_token(tmp_path: Path) -> None:
    """--token for record, $RTNB_TOKEN for replay: both work against a hub that requires JWTs."""
    token = recorder_token()
    async with running_hub(authenticator=AccessControl.jwt(secret=SECRET)) as server:
        output = tmp_path / "secure.parquet"
        command = RunningCommand(
            "record", "secure/#", "-o", str(output), "--max-rows", "5", "--url", server.url, "--token", token
        )
        await asyncio.to_thread(command.wait_for_line, "rows/s")  # subscribed: the hub took the token
        async with AsyncClient(server.url, token=token) as publisher:
            for index in range(5):
                await publisher.publish("secure/a", {"i": index})
            assert await asyncio.to_thread(command.finish) == 0, command.lines
            assert load(output)["i"].tolist() == list(range(5))

            subscription = await publisher.subscribe("secure/b")
            replayed = RunningCommand(
                "replay",
                str(output),
                "--fast",
                "--topic-map",
                "secure/a=secure/b",
                "--url",
                server.url,
                "--quiet",
                token=token,
            )
            assert await asyncio.to_thread(replayed.finish) == 0, replayed.lines
            received = [await asyncio.wait_for(subscription.__anext__(), 5) for _ in range(5)]
            assert [item.data["i"] for item in received] == list(range(5))


async def test_record_and_replay_commands_without_a_token_fail_clearly(tmp_path: Path) -> None:
    messages = (Message("secure/a", index + 1, 1, 1_790_000_000 + index, {"i": index}) for index in range(3))
    path = save(frame_from_messages(messages), tmp_path / "session.parquet")
    async with running_hub(authenticator=AccessControl.jwt(secret=SECRET)) as server:
        command = RunningCommand("record", "secure/#", "-o", str(tmp_path / "out.parquet"), "--url", server.url)
        assert await asyncio.to_thread(command.finish) == 1
        line = await asyncio.to_thread(command.wait_for_line, "rtnb record:")
        assert "requires a token" in line and "--token" in line and "RTNB_TOKEN" in line
        assert not (tmp_path / "out.parquet").exists()

        replayed = RunningCommand("replay", str(path), "--fast", "--quiet", "--url", server.url)
        assert await asyncio.to_thread(replayed.finish) == 1
        line = await asyncio.to_thread(replayed.wait_for_line, "rtnb replay:")
        assert "requires a token" in line and "--token" in line
        assert server.hub.stats.messages_in == 0  # the hub took nothing from the anonymous replay
        assert server.hub.stats.errors["unauthorized"] >= 2
