#!/usr/bin/env python3
"""Writes a tiny random-weight llama-architecture model as GGUF, for llama-server in tests.

The text it generates is nonsense; the protocol around it is real. What matters:

* a SentencePiece-style ("llama") vocabulary built here: <unk>, <s>, </s>, the 256 byte tokens
  (so that any input, Chinese included, tokenizes through byte fallback), ChatML's
  <|im_start|> / <|im_end|> as control tokens, printable ASCII characters and ~150 English
  words;
* a ChatML chat template embedded in the file, so /v1/chat/completions works without flags;
* weights from a fixed seed (the file is reproducible), shaped so that the model can only
  *generate* normal (ASCII word) tokens: every embedding carries a large constant in dimension
  0, and the output rows of the byte, control and end-of-text tokens are strongly negative in
  that dimension. So the output is always valid UTF-8 and generation always runs to
  `max_tokens` (or the server's `--n-predict`): a test that asks for N tokens gets N tokens.

Usage: make_tiny_gguf.py OUT.gguf
"""

import sys

import numpy as np
import gguf

N_EMBD = 128
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 512
N_LAYER = 2
N_CTX_TRAIN = 4096
SEED = 20251205

CHATML = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

WORDS = """
the of and to in is you that it he was for on are as with his they at be this have from or one
had by word but not what all were we when your can said there use an each which she do how their
if will up other about out many then them these so some her would make like him into time has
look two more write go see number no way could people my than first water been call who oil its
now find long down day did get come made may part hello world server model token stream retry
fleet replica proxy answer question quick brown fox jumps over lazy dog rust tokio async block
ping pong yes ok done start stop light dark green blue red cloud rain sun moon star river stone
""".split()


def vocab():
    tokens, scores, types = [], [], []

    def add(text, score, ttype):
        tokens.append(text)
        scores.append(float(score))
        types.append(int(ttype))

    T = gguf.TokenType
    add("<unk>", 0.0, T.UNKNOWN)
    add("<s>", 0.0, T.CONTROL)
    add("</s>", 0.0, T.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, T.BYTE)
    add("<|im_start|>", 0.0, T.CONTROL)
    add("<|im_end|>", 0.0, T.CONTROL)
    add("\u2581", -1.0, T.NORMAL)  # the SentencePiece space
    for c in range(0x21, 0x7F):
        add(chr(c), -2.0, T.NORMAL)
    seen = set(tokens)
    for w in WORDS:
        piece = "\u2581" + w
        if piece not in seen:
            seen.add(piece)
            add(piece, -1.0 - len(w) / 100.0, T.NORMAL)
    return tokens, scores, types


def main(out):
    tokens, scores, types = vocab()
    n_vocab = len(tokens)
    generable = np.array([t == gguf.TokenType.NORMAL for t in types])
    rng = np.random.default_rng(SEED)
    head_dim = N_EMBD // N_HEAD

    def rand(*shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = gguf.GGUFWriter(out, "llama")
    w.add_name("vllm-client tiny test model")
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.add_chat_template(CHATML)

    emb = rand(n_vocab, N_EMBD, scale=1.0)
    emb[:, 0] = 8.0  # the constant the output layer keys on
    w.add_tensor("token_embd.weight", emb)
    for i in range(N_LAYER):
        p = f"blk.{i}"
        w.add_tensor(f"{p}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"{p}.attn_q.weight", rand(N_HEAD * head_dim, N_EMBD, scale=0.05))
        w.add_tensor(f"{p}.attn_k.weight", rand(N_HEAD_KV * head_dim, N_EMBD, scale=0.05))
        w.add_tensor(f"{p}.attn_v.weight", rand(N_HEAD_KV * head_dim, N_EMBD, scale=0.05))
        w.add_tensor(f"{p}.attn_output.weight", rand(N_EMBD, N_HEAD * head_dim, scale=0.05))
        w.add_tensor(f"{p}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"{p}.ffn_gate.weight", rand(N_FF, N_EMBD, scale=0.05))
        w.add_tensor(f"{p}.ffn_up.weight", rand(N_FF, N_EMBD, scale=0.05))
        w.add_tensor(f"{p}.ffn_down.weight", rand(N_EMBD, N_FF, scale=0.05))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    out_w = rand(n_vocab, N_EMBD, scale=1.0)
    out_w[generable, 0] = 0.0
    out_w[~generable, 0] = -40.0  # never generated: bytes, control and end-of-text tokens
    w.add_tensor("output.weight", out_w)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out}: vocab {n_vocab}, {N_LAYER} layers, n_embd {N_EMBD}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
