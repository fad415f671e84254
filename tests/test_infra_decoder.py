"""The batch-invariant forward pass: a row's numbers are its own, in fp32 and in bf16, on any CPU."""

from __future__ import annotations

import pytest
import torch

from infra.decoder import (
    KEY_BLOCK,
    InvariantDecoder,
    RowCache,
    TiledLinear,
    Tiles,
    UnsupportedModel,
    _grouped_queries,
    _token_attention,
    _token_pieces,
)

DTYPES = [torch.float32, torch.bfloat16]


@pytest.fixture(scope="module", params=DTYPES, ids=["fp32", "bf16"])
def model(request, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=request.param).eval()


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_a_tile_gives_a_row_the_same_sums_wherever_it_sits_and_whoever_sits_beside_it(dtype):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(384, 576, generator=generator).to(dtype)
    linear = TiledLinear(weight, None, Tiles().decode)
    row = torch.randn(1, 576, generator=generator).to(dtype)
    alone = linear(row, Tiles().decode)
    for rows in (2, 7, 16, 17, 40):
        crowd = torch.randn(rows, 576, generator=generator).to(dtype)
        for position in (0, rows // 2, rows - 1):
            crowd[position] = row[0]
            assert torch.equal(linear(crowd, Tiles().decode)[position], alone[0]), (rows, position)


def steps_of_row_zero(decoder: InvariantDecoder, companions: int) -> list[torch.Tensor]:
    """Row 0's logits over a prefill and four decode steps, with `companions` other rows of other lengths."""
    prompts = [[1, 5, 9, 13, 17, 21]] + [[1] + [30 + (i * 7 + j) % 200 for j in range(3 + i % 11)]
                                          for i in range(companions)]
    caches = [decoder.new_cache() for _ in prompts]
    logits = [decoder.forward(list(zip(caches, prompts)), prefill=True)[0]]
    for step in range(4):
        tokens = [[int(logits[-1].argmax())]] + [[40 + step + i] for i in range(companions)]
        logits.append(decoder.forward(list(zip(caches, tokens)), prefill=False)[0])
    return logits


def test_a_rows_logits_are_bitwise_the_same_alone_and_beside_any_companions(model):
    decoder = InvariantDecoder(model)
    alone = steps_of_row_zero(decoder, 0)
    for companions in (1, 5, 16, 33):
        beside = steps_of_row_zero(decoder, companions)
        assert all(torch.equal(a, b) for a, b in zip(alone, beside)), companions


def test_tokens_fed_together_get_bitwise_the_logits_they_get_one_at_a_time(model):
    """What keeps speculative decoding exact: a step that verifies drafts gives each position the logits of
    one-token-at-a-time decoding, across a padded key length's boundary (KEY_BLOCK) too."""
    decoder = InvariantDecoder(model)
    prompt, fed = list(range(3, 3 + KEY_BLOCK - 6)), [7, 11, 7, 11, 7, 11, 13, 17, 7, 11, 7, 11]

    def logits_in_pieces(sizes: list[int]) -> torch.Tensor:
        cache, companion = decoder.new_cache(), decoder.new_cache()
        decoder.forward([(cache, prompt), (companion, prompt[:9])], prefill=True)
        out, start = [], 0
        for size in sizes:
            rows = [(cache, fed[start:start + size]), (companion, fed[:1 + size % 3])]
            out.append(decoder.forward(rows, prefill=False)[:size])
            start += size
        return torch.cat(out)

    one_at_a_time = logits_in_pieces([1] * len(fed))
    for sizes in ([len(fed)], [5, 5, 2], [2, 7, 3]):
        assert torch.equal(logits_in_pieces(sizes), one_at_a_time), sizes


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("group", [1, 2, 3, 8])
def test_a_generated_tokens_attention_is_the_same_in_any_piece_of_any_length(dtype, group):
    """The attention call itself at a real model's head size (the tiny model's heads are too small to
    show it): 1 to 40 tokens at once against one at a time. Measured before `QUERY_ROWS`: with 1 or 2
    query heads per key head a lone token took another kernel path, and a call of 33 rows (11 tokens of
    SmolLM2's 3) gave the last token other last bits. The rows that pad a call hold zeros alone and the next
    tokens' queries in a piece: what they hold changes nothing."""
    generator = torch.Generator().manual_seed(group)
    kv_heads, dim, length = 2, 64, 700
    keys, values = (torch.randn(kv_heads, length, dim, generator=generator).to(dtype) for _ in range(2))
    queries = torch.randn(length, kv_heads * group, dim, generator=generator).to(dtype)

    def attend(past: int, new: int, neighbours: int) -> torch.Tensor:
        """Tokens past..past+new attended with the next `neighbours` tokens' queries where a call pads its rows."""
        grouped = _grouped_queries(queries[past:past + new + neighbours], kv_heads)
        return torch.cat([_token_attention(grouped[:, first * group:first * group + mask.shape[0]], keys[:, :padded],
                                           values[:, :padded], mask, 0.125)[:, :(last - first) * group]
                          for first, last, padded, mask in _token_pieces(past, new, group, dtype, "cpu")], dim=1)

    for past, new in [(0, 40), (100, 11), (120, 22), (KEY_BLOCK * 3 - 5, 33), (590, 7), (600, 1)]:
        one_at_a_time = torch.cat([attend(past + offset, 1, 0) for offset in range(new)], dim=1)
        assert torch.equal(attend(past, new, 3), one_at_a_time), (past, new)


def test_the_decoder_computes_what_the_models_own_forward_computes(model):
    decoder = InvariantDecoder(model)
    ids = [1, 5, 9, 13, 17, 21, 25]
    cache = decoder.new_cache()
    prefill = decoder.forward([(cache, ids[:-1])], prefill=True)[0]
    step = decoder.forward([(cache, ids[-1:])], prefill=False)[0]
    with torch.no_grad():
        reference = model(torch.tensor([ids])).logits[0].float()
    tolerance = 1e-4 if model.dtype == torch.float32 else 0.1
    assert torch.allclose(prefill, reference[-2], atol=tolerance)
    assert torch.allclose(step, reference[-1], atol=tolerance)
    assert cache.length == len(ids)


def test_a_row_cache_grows_in_place_and_keeps_what_it_held():
    cache = RowCache(layers=1)
    keys = torch.randn(2, RowCache.growth + KEY_BLOCK + 10, 4)
    first, _ = cache.store(0, keys[:, :5], keys[:, :5])
    cache.length = 5
    held, _ = cache.store(0, keys[:, 5:], keys[:, 5:])
    assert torch.equal(held, keys) and first.data_ptr() != held.data_ptr()  # grown once, contents kept
    cache.length = keys.shape[1]
    twin = cache.copy()
    assert torch.equal(twin.keys[0][:, :cache.length], held) and twin.keys[0].data_ptr() != held.data_ptr()
    assert not twin.keys[0][:, cache.length:].any() and twin.keys[0].shape[1] % KEY_BLOCK == 0  # zeros: masked keys are finite


def test_a_checkpoint_that_is_not_llama_shaped_is_refused_in_one_line():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(UnsupportedModel, match=r"Llama-shaped decoders .* GPT2LMHeadModel is not one") as refused:
        InvariantDecoder(gpt2)
    assert "\n" not in str(refused.value)


def test_without_onednn_packing_the_plain_tiles_keep_a_row_its_own(model, monkeypatch):
    """The fallback where oneDNN cannot take the weights (a GPU, a CPU without bf16 instructions)."""
    import infra.decoder

    monkeypatch.setattr(infra.decoder, "_prepack", lambda *args: None)
    decoder = InvariantDecoder(model)
    assert decoder.head.packed is None and decoder.layers[0].qkv.packed is None
    alone = steps_of_row_zero(decoder, 0)
    for companions in (5, 33):
        assert all(torch.equal(a, b) for a, b in zip(alone, steps_of_row_zero(decoder, companions))), companions
