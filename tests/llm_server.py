"""A real OpenAI-compatible server for the LLM tests: llama.cpp's, with a tiny model made here.

There is no model hub on these machines, so the tests write their own GGUF file:
a llama-architecture model with random weights, a handful of layers and 64-wide
embeddings, whose vocabulary is the 256 byte tokens, letters and the prompts' words. It answers
nonsense, quickly, which is all the tests need: a real server process that
streams real chat-completion chunks over HTTP.

Two knobs make its behaviour certain rather than random. Every token embedding
carries a large constant in dimension 0 that no layer writes to, so after the
final norm that dimension is a positive constant and the output matrix's column
0 acts as a per-token bias:

- ``chatty``: letters, words and spaces get a positive bias, the end-of-text token and
  the byte tokens a large negative one, so the reply is plain ASCII text that
  never ends before ``max_tokens``;
- ``mute``: the end-of-text token wins every time, so the reply is empty.

The server is ``llama-cpp-python[server]`` (``python -m llama_cpp.server``),
installed by ``make llm`` / ``.ci/run``; tests skip with the reason when it is
missing (and fail under ``MAILCHAT_NO_SKIPS=1``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devtools.servers import free_port

EMBED = 64
LAYERS = 2
HEADS = 4
FFN = 128
CONTEXT = 8192
MODEL_NAME = "tiny-test-model"
_WORDS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,"
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}<|assistant|>\n"
)


def server_missing() -> str | None:
    """Why the llama.cpp server cannot run here, or None when it can."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "gguf"):
        if importlib.util.find_spec(module) is None:
            return (
                f"the Python module {module!r} is missing: `make llm` installs "
                "llama-cpp-python[server] and gguf (the optional 'llm' group)"
            )
    return None


def _word_pieces() -> set[str]:
    """Every prefix of the words the prompts use (its instructions, the demo mailbox's text).

    llama.cpp's SentencePiece tokenizer merges adjacent pieces whose join is in
    the vocabulary, so with each word's prefixes present a known word becomes
    one token: prompts are ~4x fewer tokens than one per byte, which keeps the
    tiny model's prompt time well under a second on a busy machine.
    """
    root = Path(__file__).resolve().parent.parent
    text = " ".join(
        (root / name).read_text("utf-8")
        for name in ("shared/assistant/llm_prompt.py", "devtools/demo_mailbox.py")
    )
    pieces: set[str] = set()
    for word in set(re.findall(r"[A-Za-z]{2,16}", text)):
        for variant in (word, word.lower(), word.capitalize()):
            spaced = "\u2581" + variant
            pieces.update(spaced[:end] for end in range(2, len(spaced) + 1))
            pieces.update(variant[:end] for end in range(2, len(variant) + 1))
    return pieces


def write_tiny_model(path: Path, behaviour: str = "chatty", seed: int = 7) -> Path:
    """Write a tiny random llama GGUF to ``path`` (see the module docstring)."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    tokens: list[bytes] = [b"<unk>", b"<s>", b"</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>".encode())
        types.append(gguf.TokenType.BYTE)
    first_word = len(tokens)
    tokens.append("\u2581".encode())  # SentencePiece's space
    types.append(gguf.TokenType.NORMAL)
    for char in _WORDS:
        tokens.append(char.encode())
        types.append(gguf.TokenType.NORMAL)
    scores = [0.0] * len(tokens)
    for piece in sorted(_word_pieces() - {t.decode() for t in tokens}):
        tokens.append(piece.encode())
        types.append(gguf.TokenType.NORMAL)
        scores.append(float(len(piece)))  # longer merges first
    vocab = len(tokens)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(MODEL_NAME)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBED)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(EMBED // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(_CHAT_TEMPLATE)

    def weights(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    embeddings = weights(vocab, EMBED)
    embeddings[:, 0] = 50.0  # the constant that becomes a bias after the final norm
    writer.add_tensor("token_embd.weight", embeddings)
    for layer in range(LAYERS):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(EMBED, dtype=np.float32))
        writer.add_tensor(f"{prefix}.attn_q.weight", weights(EMBED, EMBED))
        writer.add_tensor(f"{prefix}.attn_k.weight", weights(EMBED, EMBED))
        writer.add_tensor(f"{prefix}.attn_v.weight", weights(EMBED, EMBED))
        attn_out = weights(EMBED, EMBED)
        attn_out[0, :] = 0.0  # no layer writes to dimension 0
        writer.add_tensor(f"{prefix}.attn_output.weight", attn_out)
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(EMBED, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", weights(FFN, EMBED))
        writer.add_tensor(f"{prefix}.ffn_up.weight", weights(FFN, EMBED))
        down = weights(EMBED, FFN)
        down[0, :] = 0.0
        writer.add_tensor(f"{prefix}.ffn_down.weight", down)
    writer.add_tensor("output_norm.weight", np.ones(EMBED, dtype=np.float32))
    output = weights(vocab, EMBED, scale=3.0)
    bias = np.full(vocab, -5.0, dtype=np.float32)  # bytes and control tokens: never
    bias[first_word:] = 1.0  # letters, words, punctuation and spaces: always
    if behaviour == "mute":
        bias[2] = 50.0  # end of text first: an empty reply
    else:
        bias[2] = -10.0
    output[:, 0] = bias
    writer.add_tensor("output.weight", output)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@dataclass
class LlmServer:
    """A running ``llama_cpp.server`` process serving one model."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_llm_server(model: Path, log_path: Path, timeout: float = 60) -> LlmServer:
    """Start llama.cpp's OpenAI-compatible server on a free loopback port, once it answers."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(CONTEXT),
        "--n_threads",
        "1",
        "--n_threads_batch",
        "2",
        "--flash_attn",
        "true",
    ]
    with open(log_path, "ab") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    server = LlmServer(port, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"llama_cpp.server not ready:\n{log_path.read_text()[-3000:]}")
