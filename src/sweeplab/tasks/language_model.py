"""One LightningModule for next-token prediction with any causal network (neural or count-based).

Vocabulary facts (the unknown-token id) come from the datamodule the Trainer drives: checkpoints keep the
vocabulary once, in the datamodule's state. ``artifacts`` returns samples.txt.
"""

from __future__ import annotations

import math

import torch

from sweeplab.constants import IGNORE_INDEX
from sweeplab.models.base import sequence_nll
from sweeplab.tasks.base import Task, WeightedMean
from sweeplab.tasks.generation import sample

LN2 = math.log(2)


class LanguageModelTask(Task):
    def __init__(
        self,
        *,
        net,
        optimizer,
        scheduler,
        loss,
        meta,
        num_samples: int,
        sample_temperature: float,
        sample_prefix: str,
        max_new_tokens: int,
    ):
        super().__init__(net=net, optimizer=optimizer, scheduler=scheduler, loss=loss, meta=meta)
        self.num_samples, self.sample_temperature = num_samples, sample_temperature
        self.sample_prefix, self.max_new_tokens = sample_prefix, max_new_tokens
        self.counting = hasattr(net, "fit_batch")
        # Counting needs no backward pass: manual optimisation lets training_step return nothing.
        self.automatic_optimization = not self.counting
        self.unk_id: int | None = None  # from the datamodule's vocabulary, in setup()
        # Token-weighted means: the loss of a split is the mean NLL per predicted token, padding excluded.
        # (ModuleDict keys cannot be "train": that is nn.Module.train.)
        self.nll = torch.nn.ModuleDict({f"{s}_": WeightedMean(nan_strategy="disable") for s in ("val", "test")})
        # The train epoch mean is two running tensor sums: a metric update per step costs more than a tiny model.
        self._train_sum = self._train_count = None
        self.unk = torch.nn.ModuleDict({f"{s}_": WeightedMean(nan_strategy="disable") for s in ("val", "test")})

    def setup(self, stage: str) -> None:
        vocab = getattr(self.trainer.datamodule, "vocab", None)
        self.unk_id = vocab.unk_id if vocab is not None else None

    def forward(self, idx):
        return self.net(idx)

    def _nll(self, x, y, label_smoothing=0.0):
        if hasattr(self.net, "nll"):
            return self.net.nll(x, y, label_smoothing)
        return sequence_nll(self.net(x), y, label_smoothing)

    # -------------------------------------------------------------- training
    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.counting:  # n-grams: count this batch; nothing to optimise
            self.net.fit_batch(x, y)
            return None
        smoothing = self.current_label_smoothing()
        total, count = self._nll(x, y, smoothing)
        loss = total / count.clamp(min=1)
        # Lightning writes step metrics only after the steps where (global_step + 1) % log_every_n_steps == 0;
        # calling self.log on the other steps would only add its bookkeeping (~1 ms, as much as a small model's
        # whole step) and leave a stale value to be written later under a later step.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=x.shape[0])
        if not smoothing:
            self._train_sum = total.detach() + (0 if self._train_sum is None else self._train_sum)
            self._train_count = count + (0 if self._train_count is None else self._train_count)
        return loss

    def on_train_epoch_end(self):
        if self.counting:
            self.net.finalize()
            self.trainer.should_stop = True  # one pass over the data fits the counts
            return
        if self._train_sum is not None:
            self.log("train/epoch_loss", self._train_sum / self._train_count.clamp(min=1))
        self._train_sum = self._train_count = None

    # -------------------------------------------------------------- evaluation
    def _eval_step(self, batch, split):
        x, y = batch
        total, count = self._nll(x, y)
        self.nll[f"{split}_"].update(total / count.clamp(min=1), count)
        if self.unk_id is not None:
            keep = y != IGNORE_INDEX
            self.unk[f"{split}_"].update((y[keep] == self.unk_id).float().mean(), count)

    def _eval_epoch_end(self, split):
        metric = self.nll[f"{split}_"]
        if not metric.update_called:
            return
        loss = metric.compute()
        self.log_dict(
            {f"{split}/loss": loss, f"{split}/ppl": loss.exp(), f"{split}/bpc": loss / LN2}, prog_bar=(split == "val")
        )
        if self.unk_id is not None and self.unk[f"{split}_"].update_called:
            self.log(f"{split}/unk_rate", self.unk[f"{split}_"].compute())
            self.unk[f"{split}_"].reset()
        metric.reset()

    def on_validation_epoch_start(self):
        if self.counting:  # validation runs before on_train_epoch_end: turn the counts so far into probabilities
            self.net.finalize()

    # -------------------------------------------------------------- artifacts
    def artifacts(self, datamodule) -> dict[str, str]:
        """samples.txt: ``num_samples`` continuations of ``sample_prefix``, one a line (seeded: the same
        model gives the same samples)."""
        if not self.num_samples:
            return {}
        vocab = datamodule.vocab
        was_training = self.net.training
        self.net.eval()
        prefix = [vocab.bos_id] + vocab.encode(self.sample_prefix)
        gen = torch.Generator(device=self.device).manual_seed(0)
        outs = sample(
            self.net,
            prefix,
            vocab.eos_id,
            num_samples=self.num_samples,
            max_new_tokens=self.max_new_tokens,
            temperature=self.sample_temperature,
            max_len=datamodule.model_kwargs()["max_len"],
            generator=gen,
            banned=[i for i in (vocab.pad_id, vocab.bos_id, vocab.unk_id) if i is not None and i != vocab.eos_id],
        )
        self.net.train(was_training)
        texts = [vocab.decode(vocab.lookup(vocab.tokens(self.sample_prefix)) + o) for o in outs]
        return {"samples.txt": "\n".join(texts) + "\n"}
