#!/usr/bin/env python3
"""Generate the golden reference checkpoints and dumps for backlens' Rust tests.

Builds tiny random GPT-2 and Llama checkpoints with transformers (hand-made byte-level BPE
tokenizer, fixed seeds), then dumps, for two fixed prompts per model, the forward inputs x_i,
the VJPs delta_i = dL/d(output) and the weight gradients dL/dW of every linear module, the
residual stream around every block with its VJP, the logits, the loss and the logit lens of
every block output at the last token. Everything is computed by transformers' own modules and
torch autograd in float64 (from the float32 checkpoint weights, which float64 holds exactly)
and stored as float32. See README.md beside this file.

Usage (from the repository root):
    python3 -m venv /tmp/golden-venv
    /tmp/golden-venv/bin/pip install -r tests/golden/requirements.txt
    /tmp/golden-venv/bin/python tests/golden/generate.py
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

HERE = Path(__file__).resolve().parent
REF_DTYPE = torch.float64  # reference precision; stored as float32
SPECIAL = "<|endoftext|>"

# ----------------------------------------------------------------------------------------------
# Tokenizer: GPT-2 style byte-level BPE built by hand, so that its merges are fixed by this file
# and not by a trainer's tie-breaking. Every word below becomes one token (with its leading
# space, written as "Ġ" in byte-level form) through a left-to-right chain of merges; all its
# prefixes are tokens too. Other text falls back to partial merges and single bytes.
# ----------------------------------------------------------------------------------------------
WORDS = [
    "The", " capital", " of", " France", " is", " Paris",
    " river", " that", " flows", " through", " Seine",
    " Lionel", " Messi", " plays", " for", " Barcelona",
    " Italy", " Rome", " Germany", " Berlin", " the", " city", " a", " and", " in",
]
PROMPTS = [
    # (text, target); the token counts are asserted to be 5 and 7
    ("The capital of France is", " Paris"),
    ("The river that flows through Paris is", " the"),
]


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode map (same order as GPT-2's vocabulary)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


def build_tokenizer():
    b2u = bytes_to_unicode()
    byte_map = dict(b2u)
    vocab = {}
    for _, ch in b2u:  # ids 0..255 in GPT-2's byte order
        vocab[ch] = len(vocab)
    merges = []
    for word in WORDS:
        chars = [byte_map[b] for b in word.encode("utf-8")]
        prefix = chars[0]
        for ch in chars[1:]:
            merged = prefix + ch
            if merged not in vocab:
                vocab[merged] = len(vocab)
                merges.append((prefix, ch))
            prefix = merged
    vocab[SPECIAL] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([SPECIAL])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, unk_token=SPECIAL
    )
    return tok, hf


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
def init_weights(model, seed):
    """Re-initialize every parameter with large, deterministic values so that VJPs are sizeable
    and every bias/gain matters (transformers' defaults are std 0.02 and gains of exactly 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if "norm" in name or ".ln_" in name or name.endswith("ln_f.weight") or name.endswith(
                "ln_f.bias"
            ):
                if name.endswith("weight"):  # LayerNorm / RMSNorm gain ~ 1
                    val = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
                else:  # LayerNorm bias
                    val = 0.2 * torch.randn(p.shape, generator=g)
            elif name.endswith("bias"):  # GPT-2 linear biases
                val = 0.1 * torch.randn(p.shape, generator=g)
            elif "wpe" in name:
                val = 0.3 * torch.randn(p.shape, generator=g)
            else:  # linear weights and token embeddings
                val = 0.2 * torch.randn(p.shape, generator=g)
            p.copy_(val.to(p.dtype))


def make_gpt2(vocab_size, eos_id):
    cfg = GPT2Config(
        n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=vocab_size,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=eos_id, eos_token_id=eos_id,
    )
    return GPT2LMHeadModel(cfg)


def make_llama(vocab_size, eos_id, tied):
    cfg = LlamaConfig(
        num_hidden_layers=2, hidden_size=32, intermediate_size=80, num_attention_heads=4,
        num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        rms_norm_eps=1e-5, max_position_embeddings=64, vocab_size=vocab_size,
        tie_word_embeddings=tied, hidden_act="silu", bos_token_id=eos_id, eos_token_id=eos_id,
    )
    return LlamaForCausalLM(cfg)


# ----------------------------------------------------------------------------------------------
# Architecture adapters: (hook module name) -> (torch module, column slice, is Conv1D)
# ----------------------------------------------------------------------------------------------
def gpt2_layout(model):
    d = model.config.n_embd
    layers = []
    for blk in model.transformer.h:
        layers.append({
            "block": blk,
            "linears": {
                "attn.q": (blk.attn.c_attn, slice(0, d), True),
                "attn.k": (blk.attn.c_attn, slice(d, 2 * d), True),
                "attn.v": (blk.attn.c_attn, slice(2 * d, 3 * d), True),
                "attn.o": (blk.attn.c_proj, None, True),
                "mlp.up": (blk.mlp.c_fc, None, True),
                "mlp.down": (blk.mlp.c_proj, None, True),
            },
        })
    return layers, model.transformer.ln_f, model.lm_head


def llama_layout(model):
    layers = []
    for blk in model.model.layers:
        layers.append({
            "block": blk,
            "linears": {
                "attn.q": (blk.self_attn.q_proj, None, False),
                "attn.k": (blk.self_attn.k_proj, None, False),
                "attn.v": (blk.self_attn.v_proj, None, False),
                "attn.o": (blk.self_attn.o_proj, None, False),
                "mlp.gate": (blk.mlp.gate_proj, None, False),
                "mlp.up": (blk.mlp.up_proj, None, False),
                "mlp.down": (blk.mlp.down_proj, None, False),
            },
        })
    return layers, model.model.norm, model.lm_head


def first_tensor(x):
    return x[0] if isinstance(x, (tuple, list)) else x


def run_case(model, layout_fn, ids, target):
    """One forward + backward with hooks. Returns {name: tensor (REF_DTYPE)} and the loss."""
    layers, final_norm, lm_head = layout_fn(model)
    # tolerances of the self-consistency checks: tight in float64, loose for the float32 twin run
    rtol = 1e-10 if model.dtype == torch.float64 else 1e-4
    model.zero_grad(set_to_none=True)
    saved = {}  # torch module -> dict(input=..., output=...)
    block_in, block_out = {}, {}
    handles = []

    def lin_hook(mod, args, out):
        out.retain_grad()
        saved[mod] = {"input": args[0], "output": out}

    def blk_pre(idx):
        def hook(mod, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            block_in[idx] = h.detach().clone()
        return hook

    def blk_post(idx):
        def hook(mod, args, kwargs, out):
            o = first_tensor(out)
            o.retain_grad()
            block_out[idx] = o
        return hook

    for l, layer in enumerate(layers):
        mods = {m for (m, _, _) in layer["linears"].values()}
        for m in mods:
            handles.append(m.register_forward_hook(lin_hook))
        handles.append(layer["block"].register_forward_pre_hook(blk_pre(l), with_kwargs=True))
        handles.append(layer["block"].register_forward_hook(blk_post(l), with_kwargs=True))

    input_ids = torch.tensor([ids], dtype=torch.long)
    out = model(input_ids=input_ids, use_cache=False)
    logits = out.logits[0]  # (T, V)
    loss = -torch.log_softmax(logits[-1], dim=-1)[target]
    loss.backward()
    for h in handles:
        h.remove()

    res = {"logits": logits[-1].detach(), "loss": loss.detach()}
    T = len(ids)
    for l, layer in enumerate(layers):
        for name, (mod, sl, conv) in layer["linears"].items():
            x = saved[mod]["input"][0].detach()  # (T, d_in)
            y = saved[mod]["output"]
            vjp = y.grad[0]  # (T, d_out_full)
            yv = y[0].detach()
            wg = mod.weight.grad
            if conv:
                wg = wg.t()  # Conv1D stores [in, out]; canonical is (out, in)
            if sl is not None:
                vjp, yv, wg = vjp[:, sl], yv[:, sl], wg[sl, :]
            assert x.shape[0] == T and vjp.shape[0] == T
            # self-consistency: dL/dW = sum_i delta_i x_i^T
            recon = vjp.t() @ x
            err = (recon - wg).abs().max().item()
            scale = wg.abs().max().item()
            assert err <= rtol * (1e-2 + scale), (l, name, err, scale)
            assert scale > 0, (l, name, "zero gradient")
            p = f"layers.{l}.{name}"
            res[f"{p}.input"] = x
            res[f"{p}.output"] = yv
            res[f"{p}.vjp"] = vjp.contiguous()
            res[f"{p}.weight_grad"] = wg.contiguous()
        bo = block_out[l]
        res[f"layers.{l}.block.input"] = block_in[l][0]
        res[f"layers.{l}.block.output"] = bo[0].detach()
        res[f"layers.{l}.block.vjp"] = bo.grad[0]
        # mlp.down's output is added straight to the residual stream
        assert torch.equal(res[f"layers.{l}.block.vjp"], res[f"layers.{l}.mlp.down.vjp"]), l
        if l > 0:
            assert torch.equal(res[f"layers.{l}.block.input"], res[f"layers.{l - 1}.block.output"])
    # logit lens of every block output at the last token, with the model's own final norm
    with torch.no_grad():
        hs = torch.stack([res[f"layers.{l}.block.output"][-1] for l in range(len(layers))])
        res["lens.block_output_last"] = lm_head(final_norm(hs))
    L = len(layers)
    lens_err = (res["lens.block_output_last"][L - 1] - res["logits"]).abs().max().item()
    assert lens_err <= rtol * (1.0 + res["logits"].abs().max().item()), lens_err
    # at the last layer only the last token reaches the loss (Appendix A of the paper)
    for name in layers[-1]["linears"]:
        v = res[f"layers.{L - 1}.{name}.vjp"]
        if name in ("attn.k", "attn.v"):  # the last query attends to every key/value
            assert torch.all(v[:-1].abs().amax(dim=1) > 0), name
        else:
            assert torch.all(v[:-1] == 0), name
    return res


# ----------------------------------------------------------------------------------------------
def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def generate(name, build, layout_fn, seed, tok, hf_tok, notes):
    folder = HERE / name
    if folder.exists():
        shutil.rmtree(folder)
    torch.manual_seed(seed)
    model = build()
    init_weights(model, seed)
    model.eval()
    model.save_pretrained(folder)
    hf_tok.save_pretrained(folder)
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()

    # Reload the checkpoint from disk: the reference is computed from what the Rust side reads.
    ref = type(model).from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    ref.eval()
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    f32 = ref
    ref = type(model).from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    ref = ref.to(REF_DTYPE).eval()

    tensors, cases = {}, []
    f32_diff = {}
    for c, (text, target_text) in enumerate(PROMPTS):
        ids = tok.encode(text).ids
        t_ids = tok.encode(target_text).ids
        assert len(t_ids) == 1, (target_text, t_ids)
        target = t_ids[0]
        assert hf_tok(text)["input_ids"] == ids
        res = run_case(ref, layout_fn, ids, target)
        res32 = run_case(f32, layout_fn, ids, target)
        worst = 0.0
        for k, v in res.items():
            tensors[f"case{c}.{k}"] = v.to(torch.float32).contiguous()
            d = (res32[k].to(REF_DTYPE) - v).abs().max().item()
            s = v.abs().max().item()
            worst = max(worst, d / max(s, 1e-30))
        f32_diff[f"case{c}"] = worst
        cases.append({
            "name": f"case{c}",
            "prompt": text,
            "token_ids": ids,
            "tokens": [tok.id_to_token(i) for i in ids],
            "target": target_text,
            "target_id": target,
            "loss": float(res["loss"]),
            "logits_argmax": int(res["logits"].argmax()),
        })
    dump_path = HERE / f"{name}.dump.safetensors"
    # one metadata key only: safetensors writes metadata from a hash map, in random order
    save_file(tensors, str(dump_path), metadata={"format": "pt"})

    cfg = ref.config
    info = {
        "model": name,
        "folder": name,
        "architecture": type(model).__name__,
        "dtype": "float32",
        "reference_dtype": "float64 (computed from the float32 weights, then cast to float32)",
        # max over tensors of max|f32 run - reference| / max|reference|: a scale for tolerances
        "max_rel_diff_float32_torch_vs_reference": f32_diff,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "seed": seed,
        "vocab_size": cfg.vocab_size,
        "num_layers": cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "loss": "L = -log_softmax(logits[last position])[target_id], natural log, last position only",
        "cases": cases,
        "tensors": {k: list(v.shape) for k, v in sorted(tensors.items())},
        "conventions": notes,
        "files_sha256": {
            f"{name}/{p.name}": sha256(p) for p in sorted(folder.iterdir())
        },
    }
    (HERE / f"{name}.dump.json").write_text(json.dumps(info, indent=1) + "\n")
    for path in [*folder.iterdir(), dump_path, HERE / f"{name}.dump.json"]:
        os.chmod(path, 0o644)  # save_file / save_pretrained may create 0600 files
    print(f"{name}: {len(tensors)} tensors, losses "
          + ", ".join(f"{cs['loss']:.4f}" for cs in cases)
          + f", f32-vs-f64 max rel diff {max(f32_diff.values()):.2e}")


COMMON_NOTES = {
    "tensor_names": "case{c}.{rest}; rest is 'logits' (V), 'loss' (scalar), "
                    "'lens.block_output_last' (L, V), or a backlens hook name "
                    "'layers.{l}.{module}.{kind}'",
    "kinds": "input: forward input x_i (T, d_in); output: forward output (T, d_out); "
             "vjp: dL/d(output) (T, d_out); weight_grad: dL/dW in the canonical (d_out, d_in) "
             "layout, equal to vjp^T @ input (asserted); block.input / block.output: residual "
             "stream before / after block l (T, d), from module hooks, never output_hidden_states "
             "(whose last entry has the final norm applied); block.vjp: dL/d(block.output), equal "
             "to mlp.down.vjp exactly (asserted)",
    "lens": "lens.block_output_last[l] = lm_head(final_norm(layers.{l}.block.output[T-1])) with the "
            "model's own final norm module (gain, and bias for GPT-2's ln_f); row L-1 equals logits",
    "tokens": "T = prompt length; row i is prompt token i; layers 0-based; case0 has T=5, case1 T=7",
    "tokenizer": "hand-made GPT-2 style byte-level BPE (tokenizer.json): ids 0..255 are the bytes in "
                 "GPT-2's byte order, then one merge per id, then <|endoftext|> last; ByteLevel "
                 "pre-tokenizer with add_prefix_space=false, no BOS/EOS added",
    "precision": "reference computed in float64 by transformers modules + torch autograd from the "
                 "float32 checkpoint weights, stored as float32",
}

GPT2_NOTES = dict(COMMON_NOTES, modules=(
    "attn.q/attn.k/attn.v = attn.c_attn (fused Conv1D) output columns [0:d], [d:2d], [2d:3d]; "
    "their input is c_attn's input (ln_1 output) and their weight_grad is the transposed slice "
    "c_attn.weight.grad[:, cols]; attn.o = attn.c_proj; mlp.up = mlp.c_fc (d -> 4d = 128); "
    "mlp.down = mlp.c_proj. Conv1D weights in model.safetensors stay in HF's [in, out] layout; "
    "all dumped weight_grad are (out, in). GPT-2 has biases on every Conv1D and LayerNorm; "
    "activation gelu_new (tanh approximation). lm_head is tied to transformer.wte "
    "(model.safetensors has no lm_head.weight)."))

LLAMA_NOTES = dict(COMMON_NOTES, precision=(
    "reference computed in float64 by transformers modules + torch autograd from the float32 "
    "checkpoint weights, stored as float32; transformers' Llama code itself runs three parts in "
    "float32 whatever the model dtype: the RMSNorm normalization (x * rsqrt(mean(x^2) + eps), "
    "before the gain), the attention softmax, and the RoPE cos/sin tables"), modules=(
    "attn.q/k/v/o = self_attn.q_proj/k_proj/v_proj/o_proj; mlp.gate/up/down = "
    "mlp.gate_proj/up_proj/down_proj (nn.Linear, stored (out, in)). 4 heads, 2 KV heads "
    "(grouped-query, head_dim 8: q is 32 wide, k and v 16). RoPE: Hugging Face half-split layout "
    "(rotate_half, pairs (j, j + head_dim/2)), theta 10000, unpermuted q_proj/k_proj weights "
    "(unlike GGUF's interleaved layout). RMSNorm eps 1e-5 with gain, no biases anywhere."))


def main():
    tok, hf_tok = build_tokenizer()
    V = tok.get_vocab_size()
    eos = tok.token_to_id(SPECIAL)
    assert [len(tok.encode(t).ids) for t, _ in PROMPTS] == [5, 7]
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    generate("gpt2-tiny", lambda: make_gpt2(V, eos), gpt2_layout, 1234, tok, hf_tok, GPT2_NOTES)
    generate("llama-tiny", lambda: make_llama(V, eos, False), llama_layout, 5678, tok, hf_tok,
             LLAMA_NOTES)
    generate("llama-tiny-tied", lambda: make_llama(V, eos, True), llama_layout, 9012, tok, hf_tok,
             dict(LLAMA_NOTES, tied="tie_word_embeddings=true: lm_head.weight is "
                  "model.embed_tokens.weight; model.safetensors has no lm_head.weight"))


if __name__ == "__main__":
    main()
