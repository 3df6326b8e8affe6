"""LoRA training of any causal LM with peft + accelerate: one loop for 1 CPU, ``torchrun`` and ``accelerate launch``.

Every process builds the same batch plan from (seed, epoch); optimizer step ``s`` takes the next
``processes x accumulation`` micro-batches and process ``r`` trains on every ``processes``-th of them. The loss
is the mean over all response tokens of the step (summed per micro-batch, divided by the step's token count
across processes), so accumulation and the number of processes do not change what is optimised.

Checkpoints (adapter weights, optimizer, scheduler, every process's RNG, step) go through
``Accelerator.save_state`` into a temporary folder that is renamed when complete, so a kill leaves either the
previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import IGNORE, Tokenized, collate, fingerprint, load_records, plan_batches, split_eval, tokenize
from .recipe import Recipe, RecipeError, target_module_table

STATE_FILE = "trainer_state.json"


class TrainError(RuntimeError):
    """Training cannot start or continue; the message says why."""


@dataclass
class RunState:
    step: int = 0
    history: list[dict] = field(default_factory=list)  # logged points: step, loss, lr, tokens
    eval_history: list[dict] = field(default_factory=list)
    eval_loss_before: float | None = None
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process (all threads) spent in training steps
    tokens: int = 0  # non-padding tokens trained on
    padded_tokens: int = 0  # all positions fed to the model, padding included


def resolve_target_modules(model: Any, setting: str | list[str]) -> str | list[str]:
    """Module names for peft, checked against the model so a typo fails before any training."""
    if setting == "all-linear":
        return "all-linear"
    model_type = getattr(model.config, "model_type", "?")
    if isinstance(setting, str):
        table = target_module_table()
        if setting not in table:
            raise RecipeError(
                f"lora.target_modules: unknown keyword {setting!r}; use paper, attention, all-linear or a list of module names"
            )
        if model_type not in table[setting]:
            known = ", ".join(sorted(table[setting]))
            raise RecipeError(
                f"lora.target_modules: {setting!r} is not defined for architecture {model_type!r} (known: {known}); "
                "list the module names instead"
            )
        names = list(table[setting][model_type])
    else:
        names = list(setting)
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    absent = [n for n in names if n not in present]
    if absent:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ in ("Linear", "Conv1D")})
        raise RecipeError(
            f"lora.target_modules: {', '.join(absent)} not found in {model_type!r} model; its linear layers are: {', '.join(linear)}"
        )
    return names


def batch_loss(model: Any, batch: dict[str, Any], response_only_logits: bool) -> tuple[Any, int]:
    """(summed cross-entropy over response tokens, their count).

    With ``response_only_logits`` the LM head runs only where a label follows (transformers' boolean
    ``logits_to_keep``); with a 262K vocabulary that is most of the compute and memory of a step.
    """
    import torch.nn.functional as F

    labels = batch["labels"]
    targets_mask = labels[:, 1:] != IGNORE
    kwargs: dict[str, Any] = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
    if response_only_logits:
        kwargs["logits_to_keep"] = _pad_last_false(targets_mask)
    logits = model(**kwargs).logits
    if logits.dim() == 3:  # the model returned every position
        logits = logits[:, :-1][targets_mask]
    targets = labels[:, 1:][targets_mask]
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    return loss, int(targets.numel())


def _pad_last_false(mask: Any) -> Any:
    """Pad a (B, L-1) mask to (B, L) with False in the last column (the last position predicts nothing)."""
    import torch

    return torch.cat([mask, torch.zeros_like(mask[:, :1])], dim=1)


def supports_logits_mask(model: Any) -> bool:
    """Whether the model takes a boolean (batch, seq) ``logits_to_keep`` (transformers >= 5.2x has
    ``slice_logits_to_keep``; older 5.x only takes an int or 1D positions)."""
    import inspect

    import transformers.modeling_utils as mu

    return hasattr(mu, "slice_logits_to_keep") and "logits_to_keep" in inspect.signature(model.forward).parameters


class Trainer:
    """Holds one run: model, data, optimizer, accelerator. ``run()`` trains and returns the summary."""

    def __init__(self, recipe: Recipe, resume: bool = False, command: str = "", progress: bool = True):
        self.recipe = recipe
        self.resume = resume
        self.command = command
        self.progress = progress

    # ----- set-up: everything that can fail does so here, before the first step
    def setup(self) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from peft import LoraConfig, get_peft_model
        from transformers import get_scheduler

        from bactrian.models import load_base
        from bactrian.prompter import Prompter

        r, t = self.recipe, self.recipe.train
        # Without an accelerator device, cpu=True makes torchrun's processes one MULTI_CPU (gloo) group.
        has_device = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
        self.acc = Accelerator(mixed_precision=t.precision, cpu=not has_device)
        self.world = self.acc.num_processes
        self.accum = r.accumulation(self.world)
        set_seed(t.seed)
        data_stats: dict[str, int] = {}
        records = load_records(r.data, data_stats)  # bad data fails before the model loads
        self.skipped_empty = data_stats.get("skipped_empty", 0)
        self.languages = sorted({x.language for x in records if x.language})
        self.fingerprint = fingerprint(records)
        train_recs, eval_recs = split_eval(records, r.data.eval_fraction, r.data.eval_max, r.data.seed)

        base = load_base(r.base, dtype=t.dtype)
        self.base = base
        model, tok = base.model, base.tokenizer
        targets = resolve_target_modules(model, r.lora.target_modules)
        prompter = Prompter.load(r.data.template, tok)
        self.train_ex, dropped = tokenize(train_recs, tok, prompter, t.max_length)
        self.eval_ex, _ = tokenize(eval_recs, tok, prompter, t.max_length)
        if dropped:
            self.log(f"dropped {dropped} training examples whose prompt alone reaches max_length {t.max_length}")
        if self.skipped_empty:
            self.log(f"skipped {self.skipped_empty} rows with a blank instruction or output (data.skip_empty)")
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.steps_per_epoch = len(self.batches(0)) // (self.world * self.accum)
        if self.steps_per_epoch == 0:
            raise TrainError(
                f"{len(self.train_ex)} training examples cannot fill one optimizer step of batch_size {t.batch_size}; "
                "lower train.batch_size or add data"
            )
        self.total_steps = t.max_steps or max(1, math.ceil(t.epochs * self.steps_per_epoch))

        model.train()
        if t.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        cfg = LoraConfig(
            r=r.lora.r, lora_alpha=r.lora.alpha, lora_dropout=r.lora.dropout, target_modules=targets,
            bias="none", task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, cfg)
        peft_model.peft_config["default"].base_model_name_or_path = base.spec.hub_id or base.spec.name
        self.logits_mask = t.response_only_logits and supports_logits_mask(model)
        params = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
        scheduler = get_scheduler(t.scheduler, optimizer, num_warmup_steps=min(t.warmup_steps, self.total_steps),
                                  num_training_steps=self.total_steps)
        # The scheduler stays outside prepare(): accelerate would step it once per process, but our schedule
        # counts optimizer steps. register_for_checkpointing keeps it in save_state/load_state.
        self.model, self.optimizer = self.acc.prepare(peft_model, optimizer)
        self.scheduler = scheduler
        self.acc.register_for_checkpointing(self.scheduler)
        self.acc.register_save_state_pre_hook(_keep_trainable_only)
        self.state = RunState()
        if self.resume:
            self.load_last_checkpoint()

    def log(self, msg: str) -> None:
        if self.acc.is_main_process:
            from tqdm.auto import tqdm

            tqdm.write(f"[train {self.recipe.name}] {msg}", file=sys.stderr)

    def batches(self, epoch: int) -> list[list[int]]:
        lengths = [len(e.input_ids) for e in self.train_ex]
        t = self.recipe.train
        return plan_batches(lengths, t.micro_batch_size, t.seed, epoch, t.batching)

    def step_batches(self, step: int) -> list[list[Tokenized]]:
        """This process's micro-batches for optimizer step ``step``."""
        epoch, idx = divmod(step, self.steps_per_epoch)
        per_step = self.world * self.accum
        chunk = self.batches(epoch)[idx * per_step : (idx + 1) * per_step]
        mine = chunk[self.acc.process_index :: self.world]
        return [[self.train_ex[i] for i in b] for b in mine]

    # ----- checkpoints
    @property
    def ckpt_root(self) -> Path:
        return self.recipe.run_dir / "checkpoints"

    def checkpoints(self) -> list[Path]:
        found = [p for p in self.ckpt_root.glob("step-*") if (p / STATE_FILE).is_file()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def save_checkpoint(self) -> None:
        step = self.state.step
        final = self.ckpt_root / f"step-{step}"
        tmp = self.ckpt_root / f".tmp-step-{step}"
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        self.acc.save_state(str(tmp))
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            self.acc.unwrap_model(self.model).save_pretrained(tmp / "adapter")
            state = dict(self.state.__dict__, fingerprint=self.fingerprint, recipe=self.recipe.to_dict(),
                         total_steps=self.total_steps, processes=self.world)
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1), "utf-8")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)  # the checkpoint appears complete or not at all
            for old in self.checkpoints()[: -self.recipe.train.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()

    def load_last_checkpoint(self) -> None:
        found = self.checkpoints()
        if not found:
            self.log(f"--resume: no checkpoint in {self.ckpt_root}, starting from step 0")
            return
        last = found[-1]
        saved = json.loads((last / STATE_FILE).read_text("utf-8"))
        if saved.get("fingerprint") != self.fingerprint:
            raise TrainError(f"--resume: {last} was trained on different data ({saved.get('fingerprint')}); "
                             "use a new output.run_dir or the same data")
        if saved.get("processes") != self.world:
            raise TrainError(f"--resume: {last} was written by {saved.get('processes')} processes, this run has {self.world}")
        self.acc.load_state(str(last), strict=False)
        known = set(RunState.__dataclass_fields__)
        self.state = RunState(**{k: v for k, v in saved.items() if k in known})
        self.log(f"resumed from {last} (step {self.state.step} of {self.total_steps})")

    # ----- evaluation
    def evaluate(self) -> float | None:
        import torch

        if not self.eval_ex:
            return None
        self.model.eval()
        order = sorted(range(len(self.eval_ex)), key=lambda i: len(self.eval_ex[i].input_ids))
        micro = self.recipe.train.micro_batch_size
        batches = [order[s : s + micro] for s in range(0, len(order), micro)]
        total = torch.zeros(2, dtype=torch.float64, device=self.acc.device)
        with torch.no_grad():
            for b in batches[self.acc.process_index :: self.world]:
                batch = {k: v.to(self.acc.device) for k, v in collate([self.eval_ex[i] for i in b], self.pad_id).items()}
                loss, n = batch_loss(self.model, batch, self.logits_mask)
                total += torch.tensor([float(loss), n], dtype=torch.float64, device=self.acc.device)
        total = self.acc.reduce(total, reduction="sum")
        self.model.train()
        return float(total[0] / total[1])

    # ----- the loop
    def train_step(self, step: int) -> tuple[float, int, int]:
        import torch

        micro = [collate(b, self.pad_id) for b in self.step_batches(step)]
        local = sum(int((m["labels"][:, 1:] != IGNORE).sum()) for m in micro)
        count = self.acc.reduce(torch.tensor([float(local)], device=self.acc.device), reduction="sum")
        n_step = max(float(count[0]), 1.0)
        summed = torch.zeros((), dtype=torch.float64)
        for i, m in enumerate(micro):
            m = {k: v.to(self.acc.device) for k, v in m.items()}
            last = i == len(micro) - 1
            ctx = self.acc.no_sync(self.model) if not last else nullcontext()
            with ctx, self.acc.autocast():
                loss, _ = batch_loss(self.model, m, self.logits_mask)
                # DDP averages gradients over processes; scaling by the process count makes it a token mean.
                self.acc.backward(loss * self.world / n_step)
            summed += float(loss.detach())
        if self.recipe.train.max_grad_norm > 0:
            self.acc.clip_grad_norm_(self.model.parameters(), self.recipe.train.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = sum(int(m["attention_mask"].sum()) for m in micro)
        padded = sum(m["attention_mask"].numel() for m in micro)
        local_stats = torch.tensor([float(summed), tokens, padded], dtype=torch.float64, device=self.acc.device)
        total = self.acc.reduce(local_stats, reduction="sum")
        return float(total[0]) / n_step, int(total[1]), int(total[2])

    def run(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        self.setup()
        st, t = self.state, self.recipe.train
        self.log(
            f"{len(self.train_ex)} train / {len(self.eval_ex)} eval examples, {self.world} process(es) x "
            f"{self.accum} accumulation x {t.micro_batch_size} = batch {t.batch_size}; {self.total_steps} steps"
        )
        if st.step == 0 and st.eval_loss_before is None:
            st.eval_loss_before = self.evaluate()
            if st.eval_loss_before is not None:
                self.log(f"eval loss before training: {st.eval_loss_before:.4f}")
        bar = tqdm(total=self.total_steps, initial=st.step, desc=self.recipe.name, unit="step",
                   disable=not (self.progress and self.acc.is_main_process), file=sys.stderr)
        window: list[float] = []
        reset_peak_memory()  # the peak reported is that of training, not of loading the model
        while st.step < self.total_steps:
            t0, c0 = time.perf_counter(), time.process_time()
            loss, tokens, padded = self.train_step(st.step)
            st.train_seconds += time.perf_counter() - t0
            st.cpu_seconds += time.process_time() - c0
            st.tokens += tokens
            st.padded_tokens += padded
            st.step += 1
            window.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
            if st.step % t.log_every == 0 or st.step == self.total_steps:
                point = {"step": st.step, "loss": sum(window) / len(window), "lr": self.scheduler.get_last_lr()[0],
                         "tokens_per_s": st.tokens / max(st.train_seconds, 1e-9)}
                st.history.append(point)
                self.log(f"step {st.step}/{self.total_steps} loss {point['loss']:.4f} lr {point['lr']:.2e} "
                         f"{point['tokens_per_s']:.0f} tok/s")
                window = []
            if t.eval_every and st.step % t.eval_every == 0 and st.step < self.total_steps:
                ev = self.evaluate()
                st.eval_history.append({"step": st.step, "eval_loss": ev})
                self.log(f"step {st.step} eval loss {ev:.4f}")
            if st.step % t.save_every == 0 and st.step < self.total_steps:
                self.save_checkpoint()
        bar.close()
        self.train_peak_mb = peak_memory_mb()
        eval_after = self.evaluate()
        if eval_after is not None:
            st.eval_history.append({"step": st.step, "eval_loss": eval_after})
            self.log(f"eval loss after training: {eval_after:.4f}")
        self.save_checkpoint()
        return self.finish(eval_after)

    def finish(self, eval_after: float | None) -> dict[str, Any]:
        from .output import write_adapter

        st = self.state
        summary = {
            "steps": st.step,
            "train_loss": st.history[-1]["loss"] if st.history else None,
            "eval_loss": eval_after,
            "eval_loss_before": st.eval_loss_before,
            "train_examples": len(self.train_ex),
            "eval_examples": len(self.eval_ex),
            "tokens": st.tokens,
            "padded_tokens": st.padded_tokens,
            "train_seconds": round(st.train_seconds, 2),
            "tokens_per_second": round(st.tokens / max(st.train_seconds, 1e-9), 1),
            "train_cpu_seconds": round(st.cpu_seconds, 2),
            "tokens_per_cpu_second": round(st.tokens / max(st.cpu_seconds, 1e-9), 1),
            "peak_memory_mb": getattr(self, "train_peak_mb", None) or peak_memory_mb(),
            "processes": self.world,
            "skipped_empty_rows": self.skipped_empty,
            "data_fingerprint": self.fingerprint,
        }
        # Every process must end with the same weights; a mismatch means a broken launch, so it is an error.
        from accelerate.utils import gather_object

        digests = gather_object([adapter_digest(self.acc.unwrap_model(self.model))])
        if len(set(digests)) != 1:
            raise TrainError(f"processes ended with different adapter weights: {digests}")
        summary["weights_sha256"] = digests[0]
        summary["process_digests"] = digests
        if self.acc.is_main_process:
            folder = write_adapter(self.acc.unwrap_model(self.model), self.recipe, self.base, self.languages, summary,
                                   self.command)
            self.log(f"adapter written to {folder}")
            summary["adapter_dir"] = str(folder)
        self.acc.wait_for_everyone()
        return summary


def reset_peak_memory() -> None:
    """Start a new peak: GPU max-allocated, or on Linux the process's resident high-water mark (VmHWM)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM := current RSS
    except OSError:
        pass  # elsewhere the peak includes loading the model


def peak_memory_mb() -> float:
    """Peak accelerator memory when on GPU, else the process's peak resident memory since the last reset."""
    import torch

    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # KiB
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def adapter_digest(peft_model: Any) -> str:
    """A hash of the LoRA weights by name, the same for a training model and one loaded with plain peft."""
    import hashlib

    from peft import get_peft_model_state_dict

    sd = get_peft_model_state_dict(peft_model)
    h = hashlib.sha256()
    for name in sorted(sd):
        h.update(name.encode())
        h.update(sd[name].detach().to("cpu").float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _keep_trainable_only(models: list, weights: list, output_dir: str) -> None:
    """Checkpoints hold only the trainable (LoRA) weights, not another copy of the frozen base."""
    for model, sd in zip(models, weights):
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        for key in [k for k in sd if k not in trainable]:
            del sd[key]


def train(recipe: Recipe, resume: bool = False, command: str = "", progress: bool = True) -> dict[str, Any]:
    """Train one recipe to completion (or from its last checkpoint with ``resume``); returns the summary."""
    return Trainer(recipe, resume=resume, command=command, progress=progress).run()
