"""The Dask dashboard of a running `daskflow run`: rendered by a real browser, naming daskflow's tasks."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"

#: Run in the page: whether BokehJS rendered a document, and every task name its data
#: sources hold (the progress bars' and the task stream's ``name`` columns).
_PAGE_STATE = r"""(() => {
  const state = {bokeh: typeof Bokeh !== 'undefined' && Boolean(Bokeh.documents), roots: 0,
                 rendered: document.querySelectorAll('[data-root-id]').length, names: [],
                 text: document.body ? document.body.innerText.slice(0, 500) : ''};
  if (state.bokeh) {
    for (const doc of Bokeh.documents) {
      state.roots += (typeof doc.roots === 'function' ? doc.roots() : doc.roots).length;
      for (const model of doc.all_models) {
        const data = model.data;
        if (data == null || typeof data !== 'object') continue;
        const names = data instanceof Map ? data.get('name') : data['name'];
        if (names) for (const name of names) state.names.push(String(name));
      }
    }
  }
  state.names = [...new Set(state.names)];
  return JSON.stringify(state);
})()"""


class _Chromium:
    """Headless Chromium driven over the DevTools protocol (tornado's websocket client)."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            ["chromium", "--headless", "--disable-gpu", "--no-sandbox", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.endpoint = ""
        assert self.process.stderr is not None
        for line in self.process.stderr:  # Chromium prints its DevTools address first
            match = re.search(r"DevTools listening on ws://([\d.]+:\d+)/", line)
            if match:
                self.endpoint = match.group(1)
                break
        assert self.endpoint, "Chromium did not start its DevTools server"
        threading.Thread(target=self.process.stderr.read, daemon=True).start()  # never block it

    async def watch(self, url: str, done: Any, timeout: float) -> dict[str, Any]:
        """Open ``url`` and read its state every half second until ``done(state)`` or ``timeout``."""
        from tornado.httpclient import AsyncHTTPClient
        from tornado.websocket import websocket_connect

        listing = await AsyncHTTPClient().fetch(f"http://{self.endpoint}/json/list")
        [page] = [t for t in json.loads(listing.body) if t["type"] == "page"]
        socket = await websocket_connect(page["webSocketDebuggerUrl"], max_message_size=1 << 26)
        ids = iter(range(1, 1 << 30))

        async def call(method: str, **params: Any) -> dict[str, Any]:
            ident = next(ids)
            await socket.write_message(json.dumps({"id": ident, "method": method, "params": params}))
            while True:
                message = json.loads(await socket.read_message())
                if message.get("id") == ident:
                    return message["result"]

        await call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            result = await call("Runtime.evaluate", expression=_PAGE_STATE, returnByValue=True)
            state = json.loads(result["result"].get("value") or "{}")
            if state and done(state):
                break
        socket.close()
        return state

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def _stderr_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str], pattern: str, seen: list[str], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    pytest.fail(f"no line matching {pattern!r} in {timeout}s:\n" + "\n".join(seen))


@pytest.mark.slow
def test_the_printed_dashboard_renders_and_names_daskflow_tasks(tiny_lake: Path, tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("needs Debian's headless chromium")
    # The quickstart with every source on the tiny lake (same table names), and enough ALS
    # iterations to look at the dashboard while it runs.
    config = yaml.safe_load(QUICKSTART.read_text())
    config["data"]["sample"] = None
    for source in config["data"]["sources"].values():
        source["uri"] = str(tiny_lake / Path(source["uri"]).name)
    quickstart = tmp_path / "quickstart.yaml"
    quickstart.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "daskflow", "run", str(quickstart), "cluster.dashboard_address=:0",
         "cluster.n_workers=1", "model.params.n_iter=5000", f"output.dir={tmp_path / 'out'}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    browser = None
    try:
        lines, seen = _stderr_lines(process), []
        link = _wait_for(lines, r"Dask dashboard: (http://\S+/status)", seen, 40).group(1)
        _wait_for(lines, r"stage train \.\.\.", seen, 40)
        browser = _Chromium(tmp_path / "chromium")
        wanted = {"als-solve-users", "als-solve-items"}
        state = asyncio.run(browser.watch(link, lambda s: wanted <= set(s["names"]), timeout=30))
        still_running = process.poll() is None
    finally:
        if browser is not None:
            browser.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the run is not needed any further
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "Dask needs bokeh" not in state["text"], state["text"]
    assert state["bokeh"] and state["roots"] >= 1 and state["rendered"] >= 1, state
    names = set(state["names"])
    # The stage that runs now by its kernels, and the blocks an earlier stage left in memory.
    assert wanted <= names, sorted(names)
    assert any(name.startswith("interactions-") for name in names), sorted(names)
    assert still_running, "the run ended before the dashboard was read\n" + "\n".join(seen)
