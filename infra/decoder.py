"""A batch-invariant forward pass for Llama-family checkpoints: a row's numbers never depend on its neighbours.

Why: with continuous batching, which rows share a step depends on timing. A plain batched forward
sums each row's products in an order that depends on how many rows there are (oneDNN and MKL pick
their kernels by shape, and attention reduces over the batch's padded length), so on a bf16 CPU a
seeded answer changed with whatever else was in flight. Here, as in vLLM's and SGLang's
batch-invariant modes:
- every matmul runs on tiles of a fixed row count (`Tiles`; the last tile zero-padded): a kernel of one
  fixed shape gives a row the same sums wherever it sits in the tile (tests/test_infra_decoder.py);
- attention is computed per row, over that row's own keys and no neighbour's (`_token_attention`);
- the rows' new tokens are packed into one sequence, so nobody is padded to the longest.
Prompt tokens and generated tokens use tiles of their own sizes, each always the same, so a token's
arithmetic depends only on its own row.

Each row keeps its own key/value cache (`RowCache`), grown in place: admitting or retiring a row never
copies another. The model's own modules supply the weights, norms, rotary embedding and activation;
only the wiring is ours, which is why only Llama-shaped decoders (Llama, SmolLM2, Mistral without a
sliding window, Qwen2, Qwen3) are taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Tiles:
    """Rows per matmul call: generated tokens, prompt tokens, and the output layer's rows.

    Any fixed size is invariant; these are the fastest measured (benchmarks/bench_decode_step.py).
    In bf16 a call streams the weights once and the arithmetic is cheap: all layers' matmuls cost
    about 26 ms for a tile of 16 rows and 30 ms for 32 on one core, so with speculative drafts (a step
    of 8 rows feeds 20-40 tokens) the 32-row tile ran 8 rows at the 16-row tile's speed and 32 rows
    1.4x faster. fp32 arithmetic makes a 64-row call cost ~3x a 16-row one, so fp32 keeps 16.
    """

    decode: int = 16
    prefill: int = 64
    head: int = 64


TILES = {torch.bfloat16: Tiles(decode=32), torch.float32: Tiles(head=16)}
"""The tiles for each weight dtype (any other dtype takes the fp32 ones)."""


class UnsupportedModel(ValueError):
    """The checkpoint is not a decoder this forward knows how to wire."""


class TiledLinear:
    """`x @ W.T + b` computed on tiles of a fixed number of rows, so each row meets one kernel shape.

    On a CPU the weight is prepacked for oneDNN once (what torch.compile's CPU freezing does): a packed
    call does not reorder the weight again, which made tiles as cheap as one plain call. Where oneDNN
    cannot take the weight (a CPU without bf16 instructions, a GPU) the plain `F.linear` runs the tiles.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, pack_rows: int) -> None:
        self.weight, self.bias, self.out_features = weight, bias, weight.shape[0]
        self.packed = _prepack(weight, bias, pack_rows)

    def __call__(self, x: torch.Tensor, tile_rows: int) -> torch.Tensor:
        rows = x.shape[0]
        spare = -rows % tile_rows
        if spare:
            x = torch.cat([x, x.new_zeros(spare, x.shape[1])])
        out = x.new_empty(rows + spare, self.out_features)
        for start in range(0, rows + spare, tile_rows):
            out[start:start + tile_rows] = self._tile(x[start:start + tile_rows])
        return out[:rows]

    def _tile(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


def _prepack(weight, bias, pack_rows: int):
    """The weight reordered for oneDNN, or None where that path does not run (checked on one tile)."""
    if weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return None
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, pack_rows)
        probe = torch.ops.mkldnn._linear_pointwise(
            weight.new_ones(pack_rows, weight.shape[1]), packed, bias, "none", [], "")
    except (RuntimeError, AttributeError):
        return None
    return packed if probe.shape == (pack_rows, weight.shape[0]) else None


KEY_BLOCK = 64
"""A generated token attends over its row's keys padded with masked ones to a multiple of this (see
`_token_attention`); a row's cache capacity is a multiple of it, and the room past its keys holds zeros."""


def _whole_blocks(length: int) -> int:
    """`length` rounded up to a multiple of `KEY_BLOCK`."""
    return -(-length // KEY_BLOCK) * KEY_BLOCK


class RowCache:
    """One request's keys and values for every layer, each [kv_heads, capacity, head_dim], grown in place.

    Growth copies this row only, `growth` positions at a time; nothing else in the batch moves.
    """

    growth = 256

    def __init__(self, layers: int) -> None:
        self.length = 0
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers

    def store(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write `keys`/`values` ([kv_heads, new, head_dim]) after this row's cached positions; return the
        row's keys and values up to and including them. `length` moves once the whole forward is done."""
        end = self.length + keys.shape[1]
        held = self.keys[layer]
        if held is None or held.shape[1] < end:
            capacity = _whole_blocks(end + self.growth)
            grown_k = keys.new_zeros(keys.shape[0], capacity, keys.shape[2])  # masked keys must be finite
            grown_v = values.new_zeros(values.shape[0], capacity, values.shape[2])
            if held is not None:
                grown_k[:, :self.length] = held[:, :self.length]
                grown_v[:, :self.length] = self.values[layer][:, :self.length]
            self.keys[layer], self.values[layer] = grown_k, grown_v
        self.keys[layer][:, self.length:end] = keys
        self.values[layer][:, self.length:end] = values
        return self.keys[layer][:, :end], self.values[layer][:, :end]

    def copy(self) -> RowCache:
        """An independent copy (requests with the same prompt share one prefill, then diverge)."""
        twin = RowCache(len(self.keys))
        twin.length = self.length
        twin.keys = [None if k is None else k.clone() for k in self.keys]
        twin.values = [None if v is None else v.clone() for v in self.values]
        return twin


class _Layer:
    """One decoder layer's modules, with its projections fused and tiled."""

    def __init__(self, layer, pack_rows: int) -> None:
        attention, mlp = layer.self_attn, layer.mlp
        projections = (attention.q_proj, attention.k_proj, attention.v_proj)
        biases = [p.bias for p in projections]
        qkv_bias = None if all(b is None for b in biases) else torch.cat(
            [b if b is not None else p.weight.new_zeros(p.out_features) for b, p in zip(biases, projections)])
        self.qkv = TiledLinear(torch.cat([p.weight for p in projections]), qkv_bias, pack_rows)
        self.split = [p.out_features for p in projections]
        self.o = TiledLinear(attention.o_proj.weight, attention.o_proj.bias, pack_rows)
        self.gate_up = TiledLinear(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), None, pack_rows)
        self.down = TiledLinear(mlp.down_proj.weight, mlp.down_proj.bias, pack_rows)
        self.act = mlp.act_fn
        self.input_norm, self.post_norm = layer.input_layernorm, layer.post_attention_layernorm
        self.q_norm, self.k_norm = getattr(attention, "q_norm", None), getattr(attention, "k_norm", None)
        self.scaling = attention.scaling


class InvariantDecoder:
    """Runs a Llama-shaped causal LM over rows of different lengths, each row's arithmetic its own.

    `forward(rows, prefill)` takes (RowCache, new token ids) per row, appends the new tokens to each
    cache, and returns float32 logits: the last new token's per row for a prefill, every new token's
    otherwise (one per row in a plain decode step).
    """

    def __init__(self, model) -> None:
        check_supported(model)
        inner, config = model.model, model.config
        self.embed, self.norm, self.rotary = inner.embed_tokens, inner.norm, inner.rotary_emb
        self.tiles = TILES.get(model.dtype, TILES[torch.float32])
        self.layers = [_Layer(layer, self.tiles.decode) for layer in inner.layers]
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        lm_head = model.get_output_embeddings()
        self.head = TiledLinear(lm_head.weight, lm_head.bias, self.tiles.head)
        self.apply_rotary = _rotary_function(model)

    def new_cache(self) -> RowCache:
        return RowCache(len(self.layers))

    @torch.inference_mode()
    def forward(self, rows: list[tuple[RowCache, list[int]]], prefill: bool) -> torch.Tensor:
        tile = self.tiles.prefill if prefill else self.tiles.decode
        device = self.embed.weight.device
        ids = torch.tensor([token for _, tokens in rows for token in tokens], device=device)
        positions = torch.cat([torch.arange(cache.length, cache.length + len(tokens), device=device)
                               for cache, tokens in rows])
        hidden = self.embed(ids)
        cos, sin = (part[0] for part in self.rotary(hidden, positions.unsqueeze(0)))
        group = self.heads // self.kv_heads
        pieces = None if prefill else [_token_pieces(cache.length, len(tokens), group, hidden.dtype, device)
                                       for cache, tokens in rows]
        for index, layer in enumerate(self.layers):
            attended = self._attend(index, layer, layer.input_norm(hidden), rows, cos, sin, tile, pieces)
            hidden = hidden + layer.o(attended, tile)
            gate, up = layer.gate_up(layer.post_norm(hidden), tile).chunk(2, dim=-1)
            hidden = hidden + layer.down(layer.act(gate) * up, tile)
        for cache, tokens in rows:
            cache.length += len(tokens)
        if prefill:
            ends = torch.tensor([len(tokens) for _, tokens in rows], device=device).cumsum(0) - 1
            hidden = hidden[ends]
        return self.head(self.norm(hidden), self.tiles.head).float()

    def _attend(self, index: int, layer: _Layer, x, rows, cos, sin, tile: int, pieces) -> torch.Tensor:
        """Self-attention of every row's new tokens over that row's own cache, one row at a time.

        `pieces` is None for a prefill, else each row's `_token_pieces`."""
        tokens = x.shape[0]
        q, k, v = layer.qkv(x, tile).split(layer.split, dim=-1)
        q = q.view(tokens, self.heads, self.head_dim)
        k = k.view(tokens, self.kv_heads, self.head_dim)
        if layer.q_norm is not None:
            q, k = layer.q_norm(q), layer.k_norm(k)
        q, k = self.apply_rotary(q, k, cos, sin, unsqueeze_dim=1)
        v = v.view(tokens, self.kv_heads, self.head_dim)
        if pieces is None:
            out = torch.empty_like(q)
        else:
            group = self.heads // self.kv_heads
            grouped, out = _grouped_queries(q, self.kv_heads), q.new_empty(self.kv_heads, tokens * group, self.head_dim)
        start = 0
        for row, (cache, new) in enumerate(rows):
            end = start + len(new)
            keys, values = cache.store(index, k[start:end].transpose(0, 1), v[start:end].transpose(0, 1))
            if pieces is None:
                out[start:end] = _row_attention(q[start:end].transpose(0, 1), keys, values, cache.length,
                                                layer.scaling).transpose(0, 1)
            else:
                for first, last, padded, mask in pieces[row]:
                    rows_from = (start + first) * group
                    out[:, rows_from:(start + last) * group] = _token_attention(
                        grouped[:, rows_from:rows_from + mask.shape[0]], cache.keys[index][:, :padded],
                        cache.values[index][:, :padded], mask, layer.scaling)[:, :(last - first) * group]
            start = end
        if pieces is not None:
            out = out.view(self.kv_heads, tokens, group, self.head_dim).transpose(0, 1)
        return out.reshape(tokens, self.heads * self.head_dim)


QUERY_ROWS = (8, 32)
"""Fewest and most query rows in one generated-token attention call (`_token_attention`). Measured: a
call of 1 or 2 rows takes another kernel path than one of 3 or more (other last bits), and torch's CPU
flash attention cuts a short query into blocks of 32 rows, so a call of 33 rows gives its last row a
block of its own. Every call within these bounds gives a row the same numbers."""


def _token_pieces(past: int, new: int, group: int, dtype, device) -> list[tuple[int, int, int, torch.Tensor]]:
    """A row's generated tokens cut into attention calls: (first, last, padded, mask) per call.

    Every token of a piece attends over `padded` keys (its own count rounded up to `KEY_BLOCK`), the
    keys after its own masked, so a token meets the same call shape whether it is decoded alone or
    verified with drafts after it; a piece ends where that padded length changes, and holds at most
    as many tokens as `QUERY_ROWS` allows rows (`group` query heads per key head, one row each). The
    mask is additive, one row per query row with the padding rows (`_token_attention`) last, built once
    per step for every layer (torch turned a boolean one into this on each of the 30 layers' calls: 12 %
    of a 32-row step).
    """
    pieces, first, most = [], 0, max(1, QUERY_ROWS[1] // group)
    while first < new:
        padded = _whole_blocks(past + first + 1)
        last = min(new, padded - past, first + most)
        seen = torch.arange(past + first + 1, past + last + 1, device=device).repeat_interleave(group)
        seen = torch.cat([seen, seen.new_ones(max(0, QUERY_ROWS[0] - len(seen)))])  # a padding row sees key 0
        hidden = torch.arange(padded, device=device) >= seen.unsqueeze(-1)
        mask = torch.zeros(hidden.shape, dtype=dtype, device=device).masked_fill_(hidden, -float("inf"))
        pieces.append((first, last, padded, mask))
        first = last
    return pieces


def _grouped_queries(q, kv_heads: int) -> torch.Tensor:
    """`q` [tokens, heads, dim] as [kv_heads, tokens * group + QUERY_ROWS[0], dim]: each query head a row of
    its key head, a token's `group` rows together, then rows of zeros, so that a piece's query rows, padded up
    to `QUERY_ROWS[0]`, are one view (`_token_attention`) and the layer moves its queries once, not per row."""
    tokens, heads, dim = q.shape
    grouped = q.new_zeros(kv_heads, tokens * (heads // kv_heads) + QUERY_ROWS[0], dim)
    grouped[:, :tokens * (heads // kv_heads)] = q.view(tokens, kv_heads, heads // kv_heads, dim).transpose(0, 1).flatten(1, 2)
    return grouped


def _token_attention(rows, keys, values, mask, scaling: float) -> torch.Tensor:
    """Generated tokens' attention in one call: query `rows` [kv_heads, mask rows, dim] (a piece's rows of
    `_grouped_queries`, the padding rows any finite values) over `keys`/`values` [kv_heads, padded, dim],
    with a `_token_pieces` mask; returns [kv_heads, mask rows, dim].

    Why it is exact: each query head is a query row of its key head (no repeated keys), a call has at least
    `QUERY_ROWS[0]` rows, the mask hides every key past a token's own, and masked keys add exact zeros, so a
    row's result depends neither on how many rows share the call nor on what the others hold (measured
    bitwise in fp32 and bf16, tests/test_infra_decoder.py). One call per piece replaced one per token: a row
    verifying 4 drafts made 5 calls of ~0.1 ms per layer at 1,000 keys.
    """
    return F.scaled_dot_product_attention(rows.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0),
                                          attn_mask=mask, scale=scaling)[0]


def _row_attention(q, keys, values, past: int, scaling: float) -> torch.Tensor:
    """One row's attention: `q` [heads, new, dim] over `keys`/`values` [kv_heads, past + new, dim].

    The new tokens see every cached position and, among themselves, the ones before them.
    """
    new = q.shape[1]
    mask = None
    if new > 1:
        mask = torch.ones(new, past + new, dtype=torch.bool, device=q.device).tril(diagonal=past)
    return F.scaled_dot_product_attention(q.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0), attn_mask=mask,
                                          scale=scaling, enable_gqa=keys.shape[0] != q.shape[0])[0]


def check_supported(model) -> None:
    """Refuse, in one line, a checkpoint whose decoder this forward cannot wire exactly."""
    config, name = model.config, type(model).__name__
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    needed = ("embed_tokens", "norm", "rotary_emb")
    if inner is None or layers is None or not all(hasattr(inner, part) for part in needed):
        raise UnsupportedModel(f"the in-process engine runs Llama-shaped decoders (Llama, SmolLM2, Mistral, Qwen2, "
                               f"Qwen3); {name} is not one: serve it with server.kind: vllm or transformers")
    for layer in layers:
        attention, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        parts = [getattr(attention, p, None) for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        parts += [getattr(mlp, p, None) for p in ("gate_proj", "up_proj", "down_proj")]
        if not all(isinstance(p, torch.nn.Linear) for p in parts) or not hasattr(mlp, "act_fn"):
            raise UnsupportedModel(f"the in-process engine runs Llama-shaped decoders; {name}'s layers are not "
                                   f"(serve it with server.kind: vllm or transformers)")
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        raise UnsupportedModel(f"the in-process engine has no sliding-window attention ({name} uses a window of "
                               f"{config.sliding_window}): serve it with server.kind: vllm or transformers")


def _rotary_function(model):
    """The model's own `apply_rotary_pos_emb` (from its modeling module), so a variant's rotary is its own."""
    import sys

    module = sys.modules[type(model.model.layers[0].self_attn).__module__]
    return module.apply_rotary_pos_emb
