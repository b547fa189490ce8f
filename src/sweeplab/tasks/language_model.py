"""One LightningModule for next-token prediction with any causal network (neural or count-based).

Vocabulary facts (the unknown-token id) come from the datamodule the Trainer drives: checkpoints keep the
vocabulary once, in the datamodule's state. ``artifacts`` returns samples.txt, embeddings.png and
temperature.png (tasks/lm_plots.py).

Truncated BPTT (``tbptt_steps``, the data set's ``data.tbptt_steps``): a recurrent network reads each batch in
chunks of that many positions, its hidden state carried from chunk to chunk but detached, each chunk's graph
freed after its backward pass; the chunks' gradients add up to one optimizer step per batch, so the memory
follows the chunk, not the sequence, and the LR schedule's step count stays the number of batches. The task
then steps its optimizer (and scheduler) itself: Lightning's manual optimisation.
"""

from __future__ import annotations

import math

import torch

from sweeplab.constants import IGNORE_INDEX
from sweeplab.models.base import sequence_nll
from sweeplab.models.recurrent import detach_state
from sweeplab.tasks.base import Task, WeightedMean
from sweeplab.tasks.generation import mean_logprobs, sample

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
        temperatures: list[float],
        plot_embeddings: bool,
        tbptt_steps: int | None,
    ):
        super().__init__(net=net, optimizer=optimizer, scheduler=scheduler, loss=loss, meta=meta)
        self.num_samples, self.sample_temperature = num_samples, sample_temperature
        self.sample_prefix, self.max_new_tokens = sample_prefix, max_new_tokens
        self.temperatures, self.plot_embeddings = [float(t) for t in temperatures], plot_embeddings
        self.counting = hasattr(net, "fit_batch")
        if tbptt_steps and not getattr(net, "stateful", False):
            raise ValueError(
                f"data.tbptt_steps={tbptt_steps} carries a recurrent network's state between chunks: "
                f"{type(net).__name__} has none"
            )
        self.tbptt_steps = None if self.counting else tbptt_steps
        # Counting needs no backward pass, truncated BPTT several: manual optimisation for both.
        self.automatic_optimization = not (self.counting or self.tbptt_steps)
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
        if self.tbptt_steps:
            total, count = self._tbptt_step(x, y, smoothing)
        else:
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

    def _tbptt_step(self, x, y, smoothing):
        """One optimizer step over the batch, chunk by chunk (see the module's docstring). Returns the batch's
        (summed NLL, token count), detached."""
        optimizer = self.optimizers()
        optimizer.zero_grad()
        count = (y != IGNORE_INDEX).sum()
        n = count.clamp(min=1)
        state, total = None, torch.zeros((), device=x.device)
        for start in range(0, x.shape[1], self.tbptt_steps):
            chunk = slice(start, start + self.tbptt_steps)
            part, _, state = self.net.nll_chunk(x[:, chunk], y[:, chunk], state, smoothing)
            self.manual_backward(part / n)  # the chunks' gradients add up to the batch mean's
            state = detach_state(state)
            total = total + part.detach()
        optimizer.step()  # Lightning's hooks run (the regularizer's gradient, then clipping: Task)
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        return total, count

    def on_train_epoch_start(self):
        # A fit that stopped mid-epoch (tune=lr_find's range test) must not leave its sums to this epoch.
        self._train_sum = self._train_count = None

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
    def artifacts(self, datamodule) -> dict:
        """samples.txt: ``num_samples`` continuations of ``sample_prefix``, one a line (seeded: the same model
        gives the same samples); temperature.png: as many at each of ``temperatures``, with how likely the model
        finds them; embeddings.png (``plot_embeddings``) for networks with a token embedding."""
        vocab = datamodule.vocab
        files: dict = {}
        was_training = self.net.training
        self.net.eval()
        if self.num_samples:
            texts = [text for text, _ in self._samples(datamodule, self.sample_temperature)]
            files["samples.txt"] = "\n".join(texts) + "\n"
        if self.num_samples and self.temperatures:
            from sweeplab.tasks.lm_plots import plot_temperatures

            results = []
            for t in self.temperatures:
                pairs = self._samples(datamodule, t, score=True)
                results.append((t, [p[0] for p in pairs], [p[1] for p in pairs]))
            files["temperature.png"] = plot_temperatures(results)
        embed = getattr(self.net, "embed", None)
        if self.plot_embeddings and isinstance(embed, torch.nn.Embedding):
            from sweeplab.tasks.lm_plots import plot_embeddings

            # A code vocabulary is ranked by frequency after its specials: its first ids are the ones labelled.
            files["embeddings.png"] = plot_embeddings(embed.weight, [_shown(t) for t in vocab.itos])
        self.net.train(was_training)
        return files

    def _samples(self, datamodule, temperature: float, score: bool = False) -> list[tuple[str, float | None]]:
        vocab = datamodule.vocab
        max_len = datamodule.model_kwargs()["max_len"]
        prefix = [vocab.bos_id] + vocab.encode(self.sample_prefix)
        gen = torch.Generator(device=self.device).manual_seed(0)
        outs = sample(
            self.net,
            prefix,
            vocab.eos_id,
            num_samples=self.num_samples,
            max_new_tokens=self.max_new_tokens,
            temperature=temperature,
            max_len=max_len,
            generator=gen,
            banned=[i for i in (vocab.pad_id, vocab.bos_id, vocab.unk_id) if i is not None and i != vocab.eos_id],
        )
        # A continuation that ended did so by sampling EOS: that choice is scored too.
        ended = [o + [vocab.eos_id] if len(o) < self.max_new_tokens else o for o in outs]
        scores = mean_logprobs(self.net, prefix, ended, max_len) if score else [None] * len(outs)
        start = vocab.lookup(vocab.tokens(self.sample_prefix))
        return [(vocab.decode(start + o), s) for o, s in zip(outs, scores)]


def _shown(token: str) -> str:
    return "·" if token.strip() == "" else token
