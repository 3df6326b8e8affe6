"""ContinuationScoringHFLM gives lm-eval's HFLM results while projecting only the scored positions."""

from __future__ import annotations

import random

import pytest
import torch


def _requests(vocab: int, max_length: int) -> list:
    rng = random.Random(0)
    out = []
    for i in range(40):
        ctx = [rng.randrange(1, vocab) for _ in range(rng.randint(1, 30))]
        cont = [rng.randrange(1, vocab) for _ in range(rng.randint(1, 6))]
        out.append(((f"c{i}", f"x{i}"), ctx, cont))
    shared = out[0][1]
    out += [(("s", f"y{k}"), shared, [rng.randrange(1, vocab) for _ in range(k)]) for k in (1, 2, 5)]  # one context, three endings
    out.append((("z", "zeros"), [5, 0, 7], [0, 0, 9]))  # token 0 inside the real input, as HFLM's padding is
    out.append((("z", "zero-end"), [3, 4, 0], [0]))
    out.append((None, [1] + [rng.randrange(1, vocab) for _ in range(max_length + 20)], [2, 3]))  # truncated from the left
    return out


def test_same_loglikelihoods_as_hflm_with_fewer_positions(tiny_base):
    from lm_eval.models.huggingface import HFLM

    from bactrian.models import load_base
    from pipelines.bench.scoring_lm import ContinuationScoringHFLM

    base = load_base(str(tiny_base))
    plain = HFLM(pretrained=base.model, tokenizer=base.tokenizer, batch_size=4)
    fast = ContinuationScoringHFLM(pretrained=base.model, tokenizer=base.tokenizer, batch_size=4)
    assert fast._trim
    requests = _requests(base.model.config.vocab_size, fast.max_length)

    kept: list[tuple[int, int]] = []
    keep = fast._keep
    fast._keep = lambda inps: kept.append((r := keep(inps), inps.shape[1])) or r

    want = plain._loglikelihood_tokens(requests, disable_tqdm=True)
    got = fast._loglikelihood_tokens(requests, disable_tqdm=True)
    assert [g for _, g in got] == [g for _, g in want]
    assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in want], abs=1e-5)
    assert kept and all(0 <= k <= width for k, width in kept)
    assert any(0 < k < width for k, width in kept), "no batch was trimmed"
    assert fast._starts is None  # nothing left over for the next call

    # An input it was not told about is never trimmed.
    fast._starts = {(1, 2, 3): 1}
    assert keep(torch.tensor([[9, 9, 9, 0]])) == 0
    assert keep(torch.tensor([[1, 2, 3, 0]])) == 3  # positions 1..3 of 4
    fast._starts = None


def test_models_without_logits_to_keep_fall_back_to_hflm(tiny_base):
    from bactrian.models import load_base
    from pipelines.bench.scoring_lm import _accepts_logits_to_keep

    base = load_base(str(tiny_base))
    assert _accepts_logits_to_keep(base.model)

    class Plain(torch.nn.Module):
        def forward(self, input_ids):  # noqa: D401 - a model with the old signature
            return input_ids

    assert not _accepts_logits_to_keep(Plain())
