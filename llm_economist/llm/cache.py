"""Content-addressed SQLite store of usable replies, so reruns are free and reproducible."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .types import CacheError, ChatRequest, TokenLogprob

FORMAT = 1  # bump when the stored columns change meaning

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    logprobs TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
);
"""


def request_key(
    request: ChatRequest, *, model: str, max_tokens: int, temperature: float, seed: int, top_logprobs: int
) -> str:
    """sha256 over everything that decides a reply: model, messages, schema and sampling settings.

    `model` is the backend's model identity (the model name for OpenAI-compatible servers,
    "transformers:<file or directory name>" in process). The server address, the tag and the API
    key are not part of it, so a cache is portable between endpoints serving the same model.
    """
    payload = {
        "model": model,
        "messages": [list(m) for m in request.messages],
        "schema": request.schema,
        "logprobs": request.logprobs,
        "top_logprobs": top_logprobs if request.logprobs else 0,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,
        **({"grammar": request.grammar} if request.grammar else {}),
        **({"answer_prefix": request.answer_prefix} if request.answer_prefix else {}),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    text: str
    logprobs: tuple[TokenLogprob, ...] | None
    prompt_tokens: int
    completion_tokens: int


class ResponseCache:
    """One SQLite connection in WAL mode, shared by the client's threads under a lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        except sqlite3.Error as e:
            raise CacheError(f"response cache {self.path}: cannot open ({e})") from e
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
            if row is None:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (str(FORMAT),))
            elif row[0] != str(FORMAT):
                raise CacheError(f"response cache {self.path}: format {row[0]}, this version reads format {FORMAT}")
            self._db.execute("SELECT key, text, logprobs, prompt_tokens, completion_tokens, created FROM replies LIMIT 0")
        except sqlite3.Error as e:
            self._db.close()
            raise CacheError(
                f"response cache {self.path} is not a usable SQLite cache ({e}); delete it or set another cache_path"
            ) from e

    def get(self, key: str) -> CachedReply | None:
        with self._lock, self._errors("read"):
            row = self._db.execute(
                "SELECT text, logprobs, prompt_tokens, completion_tokens FROM replies WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        text, logprobs, prompt_tokens, completion_tokens = row
        return CachedReply(text, _load_logprobs(logprobs), int(prompt_tokens), int(completion_tokens))

    def put(self, key: str, reply: CachedReply) -> None:
        with self._lock, self._errors("write"):
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?)",
                (key, reply.text, _dump_logprobs(reply.logprobs), reply.prompt_tokens, reply.completion_tokens, time.time()),
            )

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise CacheError(f"response cache {self.path}: cannot {action} ({e})") from e

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"


def _dump_logprobs(logprobs: tuple[TokenLogprob, ...] | None) -> str | None:
    if logprobs is None:
        return None
    return json.dumps([[t.token, t.logprob, [list(a) for a in t.top]] for t in logprobs], ensure_ascii=False)


def _load_logprobs(blob: str | None) -> tuple[TokenLogprob, ...] | None:
    if blob is None:
        return None
    rows: Any = json.loads(blob)
    return tuple(TokenLogprob(token, float(lp), tuple((a, float(b)) for a, b in top)) for token, lp, top in rows)
