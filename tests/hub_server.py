"""A stand-in of the Hugging Face hub on 127.0.0.1: serves files by repo and path the way huggingface_hub's
`hf_hub_download` reads them (a HEAD with the size, ETag and commit, then the GET), so the real download code runs
without a network. `short`: paths whose GET delivers fewer bytes than the HEAD announced (a cut connection)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from typing import Iterator, Mapping

COMMIT = "0" * 40


def _handler(files: Mapping[str, bytes], short: set[str], requests: list[str]):
    class Hub(http.server.BaseHTTPRequestHandler):
        def _file(self) -> tuple[str, bytes | None]:
            repo_path = self.path.split("?")[0].lstrip("/")
            repo, _, rest = repo_path.partition("/resolve/main/")
            key = f"{repo}/{rest}"
            return key, files.get(key)

        def _headers(self, body: bytes, length: int) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.end_headers()

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
            key, body = self._file()
            requests.append(f"HEAD {key}")
            if body is None:
                self.send_error(404)
            else:
                self._headers(body, len(body))

        def do_GET(self) -> None:  # noqa: N802
            key, body = self._file()
            requests.append(f"GET {key}")
            if body is None:
                self.send_error(404)
                return
            sent = body[: len(body) // 2] if key in short else body
            self._headers(body, len(sent))
            self.wfile.write(sent)

        def log_message(self, *args) -> None:
            pass

    return Hub


@contextlib.contextmanager
def serve(files: Mapping[str, bytes], short: set[str] = frozenset()) -> Iterator[tuple[str, list[str]]]:
    """(endpoint URL, the requests as "HEAD repo/path" / "GET repo/path") while the server runs."""
    requests: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(files, set(short), requests))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requests
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def hub(monkeypatch, files: Mapping[str, bytes], short: set[str] = frozenset()) -> Iterator[list[str]]:
    """`serve`, with huggingface_hub pointed at it (as HF_ENDPOINT would, read at its import)."""
    import huggingface_hub.constants as constants

    with serve(files, short) as (endpoint, requests):
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        yield requests
