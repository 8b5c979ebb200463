#!/usr/bin/env python3
"""Check the ollama-tuner Ollama simulator with the OFFICIAL `ollama` Python client.

    python scripts/check_sim_with_ollama_client.py --host http://127.0.0.1:11435 [--model NAME]

The simulator must answer like a real Ollama server: if the official client can list, show,
generate (streaming and not), load, unload and read /api/ps, and gets an
`ollama.ResponseError` with status 404 for an unknown model, the simulator speaks the
contract. `/api/version` is read with httpx because not every client release has a
`version()` call. Every check prints `ok:` or `FAIL:`; the exit status is 1 when any failed.
"""

import argparse
import sys
import time

import httpx
import ollama

FAILURES = []


def check(condition, what, detail=""):
    """Record one check; never raises, so every mismatch is reported in one run."""
    if condition:
        print(f"ok: {what}")
    else:
        FAILURES.append(what)
        print(f"FAIL: {what}" + (f" ({detail})" if detail else ""))


def nonce_prompt(text):
    """A unique prefix defeats Ollama's prompt cache, as the tuner does."""
    return f"[{time.time_ns()}] {text}"


def check_version(host):
    version = httpx.get(f"{host}/api/version", timeout=10).json().get("version", "")
    base = version.split("-")[0]
    check(
        version.endswith("-sim") and len(base.split(".")) == 3,
        "GET /api/version is parseable and says it is simulated",
        version,
    )


def check_list(client, model):
    models = client.list().models
    names = [m.model for m in models]
    check(model in names, f"list() contains {model}", names)
    entry = next((m for m in models if m.model == model), None)
    if entry is None:
        return
    check(entry.size and entry.size > 0, "list() size is a positive byte count", entry.size)
    check(entry.modified_at is not None, "list() modified_at parses as a datetime")
    check(len(entry.digest or "") == 64, "list() digest is 64 hex characters", entry.digest)
    d = entry.details
    check(
        d is not None and d.family and d.parameter_size and d.quantization_level,
        "list() details have family, parameter_size, quantization_level",
        d,
    )


def check_show(client, model):
    show = client.show(model)
    info = show.modelinfo or {}
    arch = info.get("general.architecture")
    blocks = info.get(f"{arch}.block_count")
    ctx = info.get(f"{arch}.context_length")
    check(isinstance(blocks, int) and blocks > 0, "show() model_info has <arch>.block_count", blocks)
    check(isinstance(ctx, int) and ctx >= 2048, "show() model_info has <arch>.context_length", ctx)
    check(info.get("general.simulated") is True, "show() model_info says general.simulated")
    check("completion" in (show.capabilities or []), "show() capabilities include completion")
    check(bool(show.template) and bool(show.parameters), "show() has template and parameters")
    check(show.details is not None and show.details.family == arch, "show() details.family")


def check_streaming(client, model):
    chunks = list(
        client.generate(
            model=model,
            prompt=nonce_prompt("Why is the sky blue?"),
            stream=True,
            options={"num_predict": 12, "temperature": 0.4},
        )
    )
    check(len(chunks) == 13, "streaming generate yields 12 token chunks and a final one", len(chunks))
    if not chunks:
        return
    body, last = chunks[:-1], chunks[-1]
    check(all(c.done is False for c in body), "streamed chunks before the last have done=False")
    check(all(c.response for c in body), "streamed chunks carry non-empty response text")
    check(last.done is True and last.done_reason == "length", "last chunk done, done_reason length", last.done_reason)
    check(last.eval_count == 12, "eval_count honours num_predict", last.eval_count)
    for field in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        value = getattr(last, field)
        check(isinstance(value, int) and value > 0, f"final chunk {field} is a positive integer", value)
    if last.eval_duration:
        tps = last.eval_count / last.eval_duration * 1e9
        check(1 < tps < 10_000, "eval_count / eval_duration * 1e9 is a plausible tok/s (ns units)", tps)
    check(last.prompt_eval_count and last.prompt_eval_count > 0, "prompt_eval_count > 0")


def check_non_streaming(client, model):
    r = client.generate(model=model, prompt=nonce_prompt("Hello"), stream=False, options={"num_predict": 5})
    check(r.done is True and r.eval_count == 5, "non-streaming generate returns one finished answer", r)
    check(bool(r.response), "non-streaming response text is not empty")


def check_load_ps_unload(client, model):
    r = client.generate(model=model, prompt="", options={"num_ctx": 2048})
    check(r.done is True and r.done_reason == "load", "empty prompt loads (done_reason load)", r.done_reason)
    check(r.eval_count is None, "load answer has no eval metrics", r.eval_count)
    running = client.ps().models
    check(len(running) == 1, "ps() lists the loaded model", running)
    if running:
        m = running[0]
        check(m.model == model, "ps() model name", m.model)
        check(m.context_length == 2048, "ps() context_length is the loaded num_ctx", m.context_length)
        check(m.size and m.size_vram is not None and m.size_vram <= m.size, "ps() size_vram <= size")
        check(m.expires_at is not None, "ps() expires_at parses as a datetime")
    r = client.generate(model=model, prompt="", keep_alive=0)
    check(r.done_reason == "unload", "keep_alive 0 with empty prompt unloads", r.done_reason)
    check(client.ps().models == [], "ps() is empty after unload")


def check_errors(client, model):
    try:
        client.generate(model="no-such-model:1b", prompt="hi")
        check(False, "unknown model raises ResponseError")
    except ollama.ResponseError as e:
        check(e.status_code == 404, "unknown model: ResponseError with status_code 404", e.status_code)
        check(e.error == "model 'no-such-model:1b' not found", "unknown model: Ollama's message", e.error)
    try:
        list(client.generate(model="no-such-model:1b", prompt="hi", stream=True))
        check(False, "unknown model (streaming) raises ResponseError")
    except ollama.ResponseError as e:
        check(e.status_code == 404, "unknown model (streaming): status_code 404", e.status_code)
    try:
        client.generate(model=model, prompt="hi", options={"num_ctx": "big"})
        check(False, "wrong option type raises ResponseError")
    except ollama.ResponseError as e:
        check(
            e.status_code == 500 and e.error == 'option "num_ctx" must be of type integer',
            "wrong option type: 500 with Ollama's message",
            f"{e.status_code} {e.error}",
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="http://127.0.0.1:11435")
    ap.add_argument("--model", default=None, help="default: the first model /api/tags lists")
    args = ap.parse_args()
    host = args.host.rstrip("/")
    client = ollama.Client(host=host, timeout=120)
    model = args.model or client.list().models[0].model
    print(f"checking {host} with ollama-python against model {model}")
    steps = [
        lambda: check_version(host),
        lambda: check_list(client, model),
        lambda: check_show(client, model),
        lambda: check_streaming(client, model),
        lambda: check_non_streaming(client, model),
        lambda: check_load_ps_unload(client, model),
        lambda: check_errors(client, model),
    ]
    for step in steps:
        try:
            step()
        except Exception as e:  # a crash in the client is a mismatch too
            check(False, f"no unexpected exception ({type(e).__name__})", e)
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) FAILED: the simulator does not match the ollama client:")
        for f in FAILURES:
            print(f"  - {f}")
        return 1
    print("\nall checks passed: the official ollama client accepts the simulator")
    return 0


if __name__ == "__main__":
    sys.exit(main())
