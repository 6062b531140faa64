"""DP-SGD for recommenders with Opacus: :func:`make_private` puts the pieces together and
:class:`DPTraining` trains with them and states what the model guarantees (notebook 05).

The pieces live in their own modules - Poisson batches in :mod:`.sampling`, clipping in
:mod:`.clipping`, noise and its calibration in :mod:`.mechanisms`, ε in :mod:`.accounting` -
and this module holds the choices that tie them into one (ε, δ) guarantee, checked before
anything trains.

**Randomness.** ``secure_mode=True`` (the default) is what makes the result private: the
noise and the Poisson batches come from torch generators re-seeded with 63 fresh bits from the
operating system's CSPRNG (:func:`recbook.privacy.randomness.os_seed`) before every step, and
the noise uses Opacus's secure-mode sampling (four Gaussians per coordinate, robust to the
floating-point attacks on Gaussian samplers). What this guarantees: no seed, no earlier run and
nothing in the code lets anyone predict or reproduce a step's noise or batch, and two runs never
share noise. What it does not: within one step the draws come from torch's generator (Mersenne
Twister on CPU, Philox on CUDA), which is not a cryptographic generator — an attacker who saw
raw draws of one step could in principle recover that step's seed; DP-SGD never publishes raw
draws, only their sum with the gradients. (Opacus's own secure mode depends on the separate
``torchcsprng`` package, which this project does not install.) ``secure_mode=False`` needs a
``seed``, reproduces every number, and says it is a reproducible demo, not private, in the
progress bar (:data:`~recbook.privacy.randomness.SEEDED_LABEL`) and in the privacy statement:
anyone with the seed can recompute the noise and subtract it.

**Clipping.** ``clipper="opacus"`` is Opacus's ``PrivacyEngine`` with ghost clipping: general
(any layer Opacus supports), two full backward passes and hooks on every layer.
``clipper="embedding_rows"`` (:class:`~recbook.privacy.clipping.EmbeddingRowClipping`) is for
models whose every trainable parameter is an embedding looked up once per example: one cheap
backward pass, the same clipped sum, with Opacus's noise, optimizer and accountant.
``benchmarks/dp.py`` measures what each costs against non-private training.

**Unit of privacy.** ``privacy_unit="example"`` protects one row of the dataset;
``privacy_unit="user"`` (embedding-row clipper) samples users (each user with probability q,
bringing all their rows), clips each user's *summed* gradient to ``max_grad_norm`` and accounts
over the n users: the guarantee covers everything one user contributed.

**Refused up front** (configuration time, before any training): ε ≤ 0, δ outside (0, 1/n), NaN
or non-positive clip norms or learning rates, sparse embeddings (Opacus's noise is dense),
a batch-coupled loss — one example's loss depending on other examples of the batch, as with
in-batch softmax — detected by evaluating the loss on the first 64 rows and on their first half
(:func:`~recbook.privacy.clipping.refuse_batch_coupled_loss`): per-example losses must not
change.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from recbook import checks, training
from recbook.privacy.accounting import (
    ACCOUNTANTS,
    NOT_COVERED,
    PrivacyStatement,
    accountant_crosscheck,
    check_budget,
)
from recbook.privacy.clipping import (
    EmbeddingRowClipping,
    _register_fast_embedding_norms,
    refuse_batch_coupled_loss,
)
from recbook.privacy.mechanisms import _noising_optimizer, calibrated_noise_multiplier
from recbook.privacy.randomness import NOISELESS_LABEL, SEEDED_LABEL, os_seed
from recbook.privacy.sampling import PoissonBatches, ReseededEachStep

CLIPPERS = ("opacus", "embedding_rows")
UNITS = ("example", "user")


@dataclass
class DPTraining:
    """What :func:`make_private` returns: train with :meth:`fit` (or any loop over ``module``,
    ``optimizer``, ``criterion`` and ``loader``), then read the spent ε and the statement."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    criterion: object
    loader: Iterable
    ledger: object  # the Opacus accountant that records every step
    target_epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    max_grad_norm: float
    accountant: str
    clipper: str
    secure_mode: bool
    seed: int | None
    privacy_unit: str
    n_units: int
    epochs: int
    sample_rate_from_rows: bool = False  # user level with q from the row count (not public)

    @property
    def noiseless(self) -> bool:
        """σ = 0: a positive control for audits, not a private run (its ε is infinite)."""
        return self.noise_multiplier == 0

    @property
    def steps(self) -> int:
        """Optimizer steps taken so far (from the accountant's history)."""
        return int(sum(s for _, _, s in self.ledger.history))

    @property
    def label(self) -> str:
        """ "private" in secure mode, else the seeded-demo or no-noise label."""
        if self.noiseless:
            return NOISELESS_LABEL
        return "private" if self.secure_mode else SEEDED_LABEL

    def epsilon(self) -> float:
        """ε spent so far, by the accountant the noise was calibrated with (0 before a step;
        infinite without noise)."""
        if not self.ledger.history:
            return 0.0
        if self.noiseless:
            return math.inf
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(self.ledger.get_epsilon(self.delta))

    def crosscheck(self) -> pd.DataFrame:
        """:func:`recbook.privacy.accounting.accountant_crosscheck` for the steps taken so far."""
        return accountant_crosscheck(
            self.noise_multiplier, self.sample_rate, self.steps, self.delta
        )

    def statement(
        self, model: str = "model", other_spends: Sequence[tuple[str, float]] = ()
    ) -> PrivacyStatement:
        """The closing privacy statement; ``other_spends`` lists ε paid from the same budget
        outside training (e.g. ``[("noisy mean rating", 0.05)]``), added to the total."""
        spends = tuple((str(w), checks.epsilon(e, w)) for w, e in other_spends)
        unit_description = (
            "one row (one rating)"
            if self.privacy_unit == "example"
            else "all rows of one user (every rating they gave)"
        )
        not_covered = NOT_COVERED
        if self.sample_rate_from_rows:
            not_covered += (
                "the sampling rate q, set from the number of rows, which one user changes "
                "(pass make_private(sample_rate=...) from the public number of users)",
            )
        return PrivacyStatement(
            model=f"{model}, DP-SGD ({self.privacy_unit} level, clipper {self.clipper})",
            unit=self.privacy_unit,
            unit_description=unit_description,
            n_units=self.n_units,
            epsilon_training=self.epsilon(),
            delta=self.delta,
            accountant=self.accountant,
            sample_rate=self.sample_rate,
            steps=self.steps,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            secure=self.secure_mode and not self.noiseless,
            other_spends=spends,
            not_covered=not_covered,
        )

    def fit(
        self,
        epochs: int | None = None,
        *,
        device: torch.device | str = "cpu",
        desc: str = "DP-SGD",
        progress: bool = True,
    ) -> training.History:
        """Train for ``epochs`` (default: the epochs ε was calibrated for) with
        :func:`recbook.training.fit`. The progress bar shows the loss and the ε spent so far
        (computed only when the bar is shown); a seeded run's bar says it is a demo. A private
        (secure-mode) run's history has no ``train_loss``: an exact mean over private rows is
        not part of what a private run returns."""
        epochs = self.epochs if epochs is None else epochs
        label = "" if self.label == "private" else f" [{self.label}]"
        history = training.fit(
            self.module,
            self.loader,
            self.criterion,
            optimizer=self.optimizer,
            epochs=epochs,
            device=device,
            desc=desc + label,
            progress=progress,
            postfix=lambda: {"ε": f"{self.epsilon():.3f}"},
            show_train_loss=self.label != "private",  # nor is it displayed
        )
        if self.label == "private":  # the exact mean loss of private rows is not released
            history.frame = history.frame.drop(columns=["train_loss"])
        return history


def _dataset_rows(loader: DataLoader, k: int) -> list[torch.Tensor]:
    dataset = loader.dataset
    if isinstance(dataset, TensorDataset):
        return [t[:k] for t in dataset.tensors]
    return list(torch.utils.data.default_collate([dataset[i] for i in range(k)]))


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    criterion: nn.Module,
    *,
    target_epsilon: float,
    delta: float,
    epochs: int,
    max_grad_norm: float,
    accountant: str = "rdp",
    clipper: str = "opacus",
    secure_mode: bool = True,
    seed: int | None = None,
    privacy_unit: str = "example",
    unit_input: int = 0,
    sample_rate: float | None = None,
    noise_multiplier: float | None = None,
) -> DPTraining:
    """DP-SGD for ``model`` calibrated to spend (``target_epsilon``, ``delta``) in ``epochs``.

    Each step samples every unit (row, or user with ``privacy_unit="user"``, whose id is input
    number ``unit_input``) independently with probability ``q = 1 / len(loader)`` (Poisson),
    clips each unit's gradient to ``max_grad_norm`` and adds Gaussian noise of std
    ``noise_multiplier * max_grad_norm``; δ must be below 1/n for n units. ``secure_mode``
    (default) draws noise and batches from OS-seeded generators re-seeded every step (see the
    module docstring for exactly what that guarantees); ``secure_mode=False`` needs ``seed``
    and is a reproducible demo, not private. Move the model to its device first.

    ``sample_rate`` sets q directly. At the user level it should: the default ``1 /
    len(loader)`` counts rows, which one user changes (their whole history), so pass q from
    the public number of users, e.g. ``expected users per step / n_users``; without it the run
    warns and its statement lists q as not covered. ``noise_multiplier`` replaces the
    calibrated σ; ``0`` turns the noise off — a positive control for an audit, never a
    private model (its ε is infinite and every label says so).
    """
    from opacus import PrivacyEngine
    from opacus.accountants import create_accountant
    from opacus.data_loader import DPDataLoader

    checks.one_of(accountant, ACCOUNTANTS, "accountant")
    checks.one_of(clipper, CLIPPERS, "clipper (use one of privacy.CLIPPERS)")
    checks.one_of(privacy_unit, UNITS, "privacy_unit")
    if not isinstance(loader, DataLoader):
        raise TypeError("make_private needs a torch DataLoader; build one with tensor_loader()")
    if not hasattr(criterion, "reduction"):
        raise TypeError(
            f"criterion {type(criterion).__name__} has no `reduction`; pass a torch loss module"
        )
    epochs = checks.integer(epochs, "epochs", minimum=1)
    max_grad_norm = checks.number(max_grad_norm, "max_grad_norm", positive=True)
    for group in optimizer.param_groups:
        checks.number(float(group["lr"]), "the optimizer's learning rate", positive=True)
    if secure_mode and seed is not None:
        raise ValueError(
            "secure_mode=True draws its randomness from the OS; a seed would make the noise "
            "predictable. Pass secure_mode=False with the seed for a reproducible demo"
        )
    if not secure_mode:
        if seed is None:
            raise ValueError(f"secure_mode=False needs a seed: the run is then a {SEEDED_LABEL!r}")
        seed = checks.seed(seed)
    sparse = [n for n, m in model.named_modules() if isinstance(m, nn.Embedding) and m.sparse]
    if sparse:
        raise ValueError(
            f"embeddings {sparse} are sparse (sparse=True); DP-SGD adds dense noise to every "
            "row, which sparse gradients cannot hold. Build the model with sparse=False"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters: nothing to make private")
    tensor_data = isinstance(loader.dataset, TensorDataset)
    units = None
    if privacy_unit == "user":
        if clipper != "embedding_rows" or not tensor_data:
            raise ValueError(
                "privacy_unit='user' needs clipper='embedding_rows' and a tensor_loader() "
                "(per-user sums are taken over embedding lookups)"
            )
        unit_input = checks.integer(unit_input, "unit_input", minimum=0)
        if unit_input >= len(loader.dataset.tensors) - 1:
            raise ValueError(f"unit_input={unit_input} is not one of the model's inputs")
        units = loader.dataset.tensors[unit_input]
        n_units = int(torch.unique(units).numel())
    else:
        n_units = len(loader.dataset)
    target_epsilon, delta = check_budget(target_epsilon, delta, n_units)
    rows_rate = sample_rate is None and privacy_unit == "user"
    if sample_rate is None:
        sample_rate = 1 / len(loader)  # Opacus's rule: one expected batch per loader batch
        if rows_rate:
            warnings.warn(
                "privacy_unit='user' with q = 1/len(loader) sets the sampling rate from the "
                "number of rows, which one user changes; pass sample_rate = expected users per "
                f"step / {n_units} (the public number of users)",
                stacklevel=2,
            )
    else:
        sample_rate = checks.number(sample_rate, "sample_rate", positive=True)
        if sample_rate > 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
        if clipper == "opacus" and abs(sample_rate * len(loader) - 1) > 1e-12:
            raise ValueError(
                "clipper='opacus' samples at q = 1/len(loader); set the loader's batch_size "
                "instead of sample_rate, or use clipper='embedding_rows'"
            )
    if noise_multiplier is not None:
        noise_multiplier = checks.number(noise_multiplier, "noise_multiplier", non_negative=True)
    if clipper == "embedding_rows":  # refuses models it cannot clip before anything runs
        row_clipping = EmbeddingRowClipping(
            model, criterion, max_grad_norm, unit_input if units is not None else None
        )
    device = params[0].device
    refuse_batch_coupled_loss(
        model, criterion, _dataset_rows(loader, min(64, len(loader.dataset))), device
    )

    sampling = torch.Generator()
    noise = torch.Generator(device=device)
    if secure_mode:
        sampling.manual_seed(os_seed())
        noise.manual_seed(os_seed())
    else:
        sampling.manual_seed(seed)
        noise.manual_seed(seed + 1)
    if clipper == "opacus":
        # Ghost clipping's two backward passes trip a harmless torch notice on every model
        # whose inputs are ids (nothing upstream needs a gradient); silence only that message.
        warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        if noise_multiplier is None:
            sigma = calibrated_noise_multiplier(
                target_epsilon, delta, sample_rate, epochs, accountant
            )
        else:
            sigma = noise_multiplier
        if clipper == "opacus":
            # PrivacyEngine.make_private_with_epsilon is this call after its own σ search
            _register_fast_embedding_norms()
            engine = PrivacyEngine(accountant=accountant)
            module, dp_optimizer, dp_criterion, _ = engine.make_private(
                module=model,
                optimizer=optimizer,
                criterion=criterion,
                data_loader=loader,
                noise_multiplier=sigma,
                max_grad_norm=max_grad_norm,
                poisson_sampling=True,
                grad_sample_mode="ghost",
                noise_generator=noise,
            )
            dp_optimizer.secure_mode = secure_mode  # Opacus's floating-point-safe noise
            ledger = engine.accountant
        else:
            # the pieces PrivacyEngine assembles, with EmbeddingRowClipping doing the clipping
            module, dp_criterion = model, row_clipping
            dp_optimizer = _noising_optimizer()(
                optimizer,
                noise_multiplier=sigma,
                max_grad_norm=max_grad_norm,
                expected_batch_size=max(1, int(n_units * sample_rate)),  # as PrivacyEngine
                loss_reduction="mean",
                generator=noise,
                secure_mode=secure_mode,
            )
            ledger = create_accountant(mechanism=accountant)
            dp_optimizer.attach_step_hook(ledger.get_optimizer_hook_fn(sample_rate=sample_rate))
    if tensor_data:
        dp_loader = PoissonBatches(
            *loader.dataset.tensors, sample_rate=sample_rate, generator=sampling, units=units
        )
    else:
        dp_loader = DPDataLoader.from_data_loader(loader, generator=sampling)
    if secure_mode:
        dp_loader = ReseededEachStep(dp_loader, [sampling, noise])
    return DPTraining(
        module=module,
        optimizer=dp_optimizer,
        criterion=dp_criterion,
        loader=dp_loader,
        ledger=ledger,
        target_epsilon=target_epsilon,
        delta=delta,
        noise_multiplier=float(dp_optimizer.noise_multiplier),
        sample_rate=float(sample_rate),
        max_grad_norm=max_grad_norm,
        accountant=accountant,
        clipper=clipper,
        secure_mode=bool(secure_mode),
        seed=seed,
        privacy_unit=privacy_unit,
        n_units=n_units,
        epochs=epochs,
        sample_rate_from_rows=rows_rate,
    )
