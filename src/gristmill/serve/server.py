"""The HTTP service behind ``gristmill serve``: FastAPI routes, input limits and the micro-batcher.

A model folder is fixed at start-up (an ``FT/`` folder or ONNX export for ``POST /predict``, a pretraining
``RUN/`` folder for ``POST /fill-mask``); nothing in a request names a file. Requests wait in a queue for
at most ``max_wait_ms`` so that concurrent ones share one forward pass (:class:`MicroBatcher`); the model
runs in one worker thread so the event loop keeps accepting requests meanwhile.

Input errors are 4xx, never 500: wrong JSON types, NaN and unknown fields 422 (lone surrogates in a
text are replaced, as in batch prediction: ``classifier.clean_text``), JSON that cannot be parsed (too
deep, 5,000-digit numbers) 400, bodies over ``max_body_bytes`` or more than ``max_texts`` texts 413, a
body slower than ``read_timeout_s`` 408, a full queue 503. Connection limits, the time-out for request
heads, the Host check and the bearer token are in :mod:`gristmill.serve.guard`. ``GET /health`` reports
the model and the counters (requests, texts, micro-batches, model forward passes) that show batching.

This module must not load models itself (``gristmill.serve.commands`` hands it a loaded one), and must not
bind anything but the host it is given (``127.0.0.1`` by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from gristmill.serve.guard import (
    AcceptErrorFilter,
    Guard,
    access_warning,
    connection_budget,
    default_allowed_hosts,
    guarded_protocol,
    reply,
)

if TYPE_CHECKING:
    from gristmill.serve.classifier import Classifier
    from gristmill.serve.generate import Sampling, TextGenerator

log = logging.getLogger("gristmill.serve")


@dataclass
class Limits:
    """What one request may ask for, and how requests are batched."""

    max_body_bytes: int = 1_000_000
    max_texts: int = 64
    max_batch: int = 64
    """Texts gathered into one micro-batch before it is run (the model splits it into --batch-size passes)."""
    max_wait_ms: float = 5.0
    max_queue: int = 2048
    """Requests waiting beyond this are answered 503 at once instead of piling up."""
    max_masks: int = 32
    max_new_tokens: int = 256
    """POST /generate: tokens one prompt may ask for (more: 422)."""
    read_timeout_s: float = 30.0
    """Seconds a client may take to send a request's head (from connecting, or from its previous answer)
    and again to send its body; slower connections are closed (head) or answered 408 (body)."""
    keep_alive_s: int = 5
    """Seconds an idle kept-alive connection stays open after an answer."""
    max_connections: int | None = None
    """Open connections beyond this are answered 503 and closed; None: what the descriptor limit allows."""


@dataclass
class Access:
    """Who may ask: ``token`` (None: anyone who can connect) and the Host names answered (None: any)."""

    token: str | None = None
    allowed_hosts: tuple[str, ...] | None = None
    """``run_server`` defaults to the loopback names when it binds a loopback address (DNS rebinding)."""


# ------------------------------------------------------------------------------------------ micro-batcher


@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future


@dataclass
class BatchStats:
    requests: int = 0
    items: int = 0
    batches: int = 0
    largest_batch: int = 0


class MicroBatcher:
    """Gathers the items of concurrent requests into one call of ``run_batch``.

    The first waiting request opens a batch; requests arriving within ``max_wait_s`` (or already queued
    while the previous batch ran) join it, up to ``max_items``. ``run_batch`` runs in one worker thread,
    takes a list of items and returns one result per item, in order.
    """

    def __init__(self, run_batch: Callable[[list[Any]], Sequence[Any]], max_items: int = 64,
                 max_wait_s: float = 0.005, max_queue: int = 2048) -> None:
        self.run_batch = run_batch
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gristmill-model")
        self._task = asyncio.create_task(self._loop(), name="gristmill-microbatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(HTTPException(503, "the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, items: list[Any]) -> list[Any]:
        if self._queue is None or self._arrived is None:
            raise HTTPException(503, "the model is not ready")
        if self._queue.qsize() >= self.max_queue:
            raise HTTPException(503, "too many requests waiting; try again shortly")
        job = _Job(items, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        self._arrived.set()
        return await job.future

    async def _gather(self) -> list[_Job]:
        assert self._queue is not None and self._arrived is not None
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        count = len(batch[0].items)
        deadline = loop.time() + self.max_wait_s
        while count < self.max_items:
            self._arrived.clear()  # before draining, so an arrival after the drain is never missed
            while count < self.max_items and not self._queue.empty():
                job = self._queue.get_nowait()
                batch.append(job)
                count += len(job.items)
            remaining = deadline - loop.time()
            if count >= self.max_items or remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [job for job in await self._gather() if not job.future.done()]  # drop disconnected clients
            if not batch:
                continue
            flat = [item for job in batch for item in job.items]
            self.stats.requests += len(batch)
            self.stats.items += len(flat)
            self.stats.batches += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(flat))
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, flat)
            except Exception as exc:  # a bug in the model code: fail these requests, keep serving
                log.exception("model batch failed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in batch:
                if not job.future.done():
                    job.future.set_result(list(results[start : start + len(job.items)]))
                start += len(job.items)


# -------------------------------------------------------------------------------------------- body limit


class BodyLimit:
    """ASGI middleware: answer 413 to a body over ``max_bytes`` before any of it is parsed.

    Counts the bytes actually received (``Content-Length`` may be absent or wrong), buffering at most
    ``max_bytes`` and replaying them to the app. An oversized body is read to its end and discarded
    before the 413 goes out, because a client still sending when the server answers and closes gets a
    connection reset instead of the answer; beyond ``drain_factor`` times the limit the connection is
    closed without reading further.
    """

    def __init__(self, app: Any, max_bytes: int, drain_factor: int = 16, timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = max_bytes * drain_factor
        self.timeout_s = timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                declared_size = int(declared)
            except ValueError:
                await self._reject(send, 400, "Content-Length is not a number", close=True)
                return
            if declared_size > self.drain_bytes:
                await self._reject(send, 413, f"request body over {self.max_bytes:,} bytes", close=True)
                return
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                await self._reject(send, 408, f"the request body did not arrive within {self.timeout_s:g} s",
                                   close=True)
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_bytes:
                chunks.append(chunk)
            elif size > self.drain_bytes:
                await self._reject(send, 413, f"request body over {self.max_bytes:,} bytes", close=True)
                return
            if not message.get("more_body", False):
                break
        if size > self.max_bytes:
            await self._reject(send, 413, f"request body over {self.max_bytes:,} bytes")
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(send: Callable, status: int, detail: str, close: bool = False) -> None:
        await reply(send, status, detail, close=close)


# ------------------------------------------------------------------------------------------------ schemas

Texts = StrictStr | Annotated[list[StrictStr], Field(min_length=1)]


class PredictRequest(BaseModel):
    """One text, or a list of texts, to classify; ``text_pair`` only for models trained on pairs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": "What is a computer?"},
                                                                             {"inputs": ["first text", "second"]}]})
    inputs: Texts
    text_pair: Texts | None = None


class LabelScore(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    predictions: list[LabelScore]


class FillMaskRequest(BaseModel):
    """Text(s) with one or more ``[MASK]`` tokens; ``top_k`` candidates are returned for each mask."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": "the [MASK] is red", "top_k": 5}]})
    inputs: Texts
    top_k: StrictInt = Field(5, ge=1, le=50)


class Candidate(BaseModel):
    token: str
    token_id: int
    score: float


class MaskResult(BaseModel):
    position: int
    candidates: list[Candidate]


class FillMaskResponse(BaseModel):
    results: list[list[MaskResult]]
    """Per input text, per [MASK] in it (in order), the top candidates."""


class Health(BaseModel):
    status: str
    kind: str
    model: str
    backend: str
    labels: list[str] | None = None
    requests: int
    texts: int
    batches: int
    largest_batch: int
    forward_passes: int
    waiting: int
    limits: dict[str, int | float]


# ---------------------------------------------------------------------------------------------------- app


@dataclass
class Engine:
    """What the app serves: a name for /health, the batch function, and the forward-pass counter."""

    kind: str  # "classifier" or "masked-lm"
    model: str
    backend: str
    run_batch: Callable[[list[Any]], Sequence[Any]]
    forward_passes: Callable[[], int]
    labels: list[str] | None = None
    pair_field: str | None = None
    encode_check: Callable[[list[str], int], list[str | None]] | None = None


def classifier_engine(clf: Classifier) -> Engine:
    """Serve a :class:`~gristmill.serve.classifier.Classifier`; items are ``(text, pair or None)``."""
    def run_batch(items: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
        texts = [t for t, _ in items]
        pairs = [p or "" for _, p in items] if clf.pair_field else None
        return clf.predict(texts, pairs)

    return Engine("classifier", clf.source, clf.backend.name, run_batch, lambda: clf.forward_passes,
                  labels=list(clf.labels), pair_field=clf.pair_field)


def fill_mask_engine(filler: Any) -> Engine:
    """Serve a :class:`~gristmill.serve.fill_mask.MaskFiller`; items are ``(text, top_k)``."""
    return Engine("masked-lm", filler.source, "torch", filler.run_batch, lambda: filler.forward_passes,
                  encode_check=filler.check)


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def create_app(engine: Engine, limits: Limits | None = None, access: Access | None = None) -> Guard:
    """The ASGI app for ``engine``: FastAPI inside the body limit, inside the Host and token checks."""
    limits = limits or Limits()
    batcher = MicroBatcher(engine.run_batch, limits.max_batch, limits.max_wait_ms / 1000.0, limits.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        log.info("serving %s (%s, %s backend)", engine.model, engine.kind, engine.backend)
        try:
            yield
        finally:
            await batcher.stop()
            log.info("stopped: %d requests, %d texts, %d forward passes", batcher.stats.requests,
                     batcher.stats.items, engine.forward_passes())

    app = FastAPI(title="gristmill", version="0.1.0", lifespan=lifespan,
                  description=f"gristmill {engine.kind} service for {engine.model}")
    app.state.batcher = batcher
    app.state.engine = engine

    def check_count(n: int) -> None:
        if n > limits.max_texts:
            raise HTTPException(413, f"{n} texts in one request; at most {limits.max_texts}")

    @app.get("/health", response_model=Health, summary="Model, counters and limits")
    async def health() -> Health:
        return Health(status="ok", kind=engine.kind, model=engine.model, backend=engine.backend, labels=engine.labels,
                      requests=batcher.stats.requests, texts=batcher.stats.items, batches=batcher.stats.batches,
                      largest_batch=batcher.stats.largest_batch, forward_passes=engine.forward_passes(),
                      waiting=batcher.waiting,
                      limits={"max_body_bytes": limits.max_body_bytes, "max_texts": limits.max_texts,
                              "max_batch": limits.max_batch, "max_wait_ms": limits.max_wait_ms})

    if engine.kind == "classifier":
        @app.post("/predict", response_model=PredictResponse, summary="Classify one text or a list of texts",
                  responses={413: {"description": "body too large or too many texts"}})
        async def predict(request: PredictRequest) -> PredictResponse:
            texts = _as_list(request.inputs)
            check_count(len(texts))
            pairs: list[str | None] = [None] * len(texts)
            if engine.pair_field is not None:
                if request.text_pair is None:
                    raise HTTPException(422, f"this model classifies text pairs; give text_pair ({engine.pair_field})")
                pairs = list(_as_list(request.text_pair))
                if len(pairs) != len(texts):
                    raise HTTPException(422, f"{len(texts)} inputs but {len(pairs)} text_pair values")
            elif request.text_pair is not None:
                raise HTTPException(422, "this model classifies single texts; remove text_pair")
            results = await batcher.submit(list(zip(texts, pairs, strict=True)))
            return PredictResponse(predictions=[LabelScore(**r) for r in results])
    elif engine.kind == "causal-lm":
        add_generate_route(app, engine, limits, batcher)
    else:
        @app.post("/fill-mask", response_model=FillMaskResponse, summary="Top candidates for each [MASK]",
                  responses={413: {"description": "body too large or too many texts"}})
        async def fill_mask(request: FillMaskRequest) -> FillMaskResponse:
            texts = _as_list(request.inputs)
            check_count(len(texts))
            assert engine.encode_check is not None
            problems = engine.encode_check(texts, limits.max_masks)
            for i, problem in enumerate(problems):
                if problem:
                    raise HTTPException(422, f"inputs[{i}]: {problem}")
            results = await batcher.submit([(t, request.top_k) for t in texts])
            return FillMaskResponse(results=results)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the input, which may hold NaN or a lone surrogate that JSON cannot
        # carry: the answer then fails to render and becomes a 500. Keep only where and what.
        return JSONResponse({"detail": [_clean_error(e) for e in exc.errors()]}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - bugs only
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    access = access or Access()
    return Guard(BodyLimit(app, limits.max_body_bytes, timeout_s=limits.read_timeout_s), access.allowed_hosts,
                 access.token)


def _clean_error(error: dict[str, Any]) -> dict[str, Any]:
    """A validation error as JSON can always carry it: no input, strings with surrogates escaped, short."""
    def clean(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return str(value).encode("utf-8", "backslashreplace").decode("utf-8")[:200]

    return {"loc": [clean(part) for part in error.get("loc", ())], "msg": clean(error.get("msg", "")),
            "type": clean(error.get("type", ""))}


# ------------------------------------------------------------------------- POST /generate (decoder runs)


class GenerateRequest(BaseModel):
    """Prompt(s) to continue; the sampling options of ``gristmill generate`` (temperature 0 = greedy)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": "The package",
                                                                             "max_new_tokens": 32}]})
    inputs: Texts
    max_new_tokens: StrictInt = Field(64, ge=0)
    temperature: float = Field(0.0, ge=0.0, le=100.0)
    top_k: StrictInt = Field(0, ge=0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=100.0)
    stop: list[Annotated[StrictStr, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=16)
    seed: StrictInt = 0


class GeneratedText(BaseModel):
    text: str
    prompt_tokens: int
    new_tokens: int
    finish_reason: str


class GenerateResponse(BaseModel):
    completions: list[GeneratedText]


def generate_engine(generator: TextGenerator) -> Engine:
    """Serve a :class:`~gristmill.serve.generate.TextGenerator`; items are ``(prompt, Sampling)``.

    Items of one micro-batch that ask for the same sampling are generated together (left-padded).
    """
    def run_batch(items: list[tuple[str, Sampling]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(items)
        groups: dict[str, list[int]] = {}
        for i, (_, sampling) in enumerate(items):
            groups.setdefault(repr(sampling), []).append(i)
        for indices in groups.values():
            completions = generator.generate([items[i][0] for i in indices], items[indices[0]][1])
            for i, completion in zip(indices, completions, strict=True):
                results[i] = completion.to_dict()
        return results  # type: ignore[return-value]

    def check(prompts: list[str], _limit: int) -> list[str | None]:
        problems: list[str | None] = []
        for prompt in prompts:
            try:
                generator.encode(prompt)
                problems.append(None)
            except ValueError as exc:
                problems.append(str(exc))
        return problems

    return Engine("causal-lm", generator.source, "torch", run_batch, lambda: generator.forward_passes,
                  encode_check=check)


def add_generate_route(app: FastAPI, engine: Engine, limits: Limits, batcher: MicroBatcher) -> None:
    from gristmill.serve.generate import Sampling

    @app.post("/generate", response_model=GenerateResponse, summary="Continue one prompt or a list of prompts",
              responses={413: {"description": "body too large or too many prompts"}})
    async def generate(request: GenerateRequest) -> GenerateResponse:
        prompts = _as_list(request.inputs)
        if len(prompts) > limits.max_texts:
            raise HTTPException(413, f"{len(prompts)} prompts in one request; at most {limits.max_texts}")
        if request.max_new_tokens > limits.max_new_tokens:
            raise HTTPException(422, f"max_new_tokens {request.max_new_tokens} is over this server's limit "
                                f"({limits.max_new_tokens})")
        assert engine.encode_check is not None
        for i, problem in enumerate(engine.encode_check(prompts, 0)):
            if problem:
                raise HTTPException(422, f"inputs[{i}]: {problem}")
        sampling = Sampling(max_new_tokens=request.max_new_tokens, temperature=request.temperature,
                            top_k=request.top_k, top_p=request.top_p, repetition_penalty=request.repetition_penalty,
                            stop=list(request.stop), seed=request.seed)
        results = await batcher.submit([(p, sampling) for p in prompts])
        return GenerateResponse(completions=[GeneratedText(**{k: r[k] for k in GeneratedText.model_fields})
                                             for r in results])


def run_server(engine: Engine, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
               log_level: str = "info", access: Access | None = None) -> None:
    """Serve until SIGTERM or SIGINT; uvicorn then stops accepting, finishes open requests and returns."""
    import signal

    import uvicorn

    limits = limits or Limits()
    access = access or Access(allowed_hosts=default_allowed_hosts(host))
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
    warning = access_warning(host, access.token)
    if warning:
        log.warning(warning)
    max_connections, backlog = connection_budget(limits.max_connections)
    logging.getLogger("asyncio").addFilter(AcceptErrorFilter())
    config = uvicorn.Config(create_app(engine, limits, access), host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=10, access_log=False, timeout_keep_alive=limits.keep_alive_s,
                            http=guarded_protocol(max_connections, limits.read_timeout_s), backlog=backlog)
    log.info("at most %d open connections (more are answered 503), %gs to send a request", max_connections,
             limits.read_timeout_s)
    # After its graceful shutdown uvicorn restores the handlers it found and raises the signal again.
    # With these no-op handlers that second delivery is ignored, so a requested stop exits with status 0
    # instead of dying of the signal (or printing a KeyboardInterrupt traceback).
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
