"""Privacy for recommenders (notebook 05; the mechanisms that notebook 06 shares): what the
article calls private and is not, what DP-SGD really guarantees, and how to check it.

* :mod:`.article` - the §4.3 "DP" loss of article 003, a deterministic re-weighting;
* :mod:`.deidentification` - quasi-identifiers and reversible pseudonyms;
* :mod:`.randomness` - OS randomness by default, seeded runs labelled as demos (shared with
  :mod:`recbook.federated`);
* :mod:`.accounting` - (ε, δ) for a mechanism, σ calibration, group privacy, the statement;
* :mod:`.sampling` - Poisson batches over examples or users, re-seeded every step;
* :mod:`.clipping` - per-example and per-user gradient clipping for embedding models;
* :mod:`.mechanisms` - the noise: σ for a DP-SGD schedule, the noising optimizer, a Laplace mean;
* :mod:`.dp_sgd` - ``make_private`` and its training run, tying the above into one guarantee;
* :mod:`.audit` - membership inference and the one-run ε audit.

Layers (which modules of this package each one may import; siblings by full module path,
never the package ``recbook.privacy`` itself, and none imports ``recbook.federated``):

* ``article``, ``deidentification``, ``randomness``, ``accounting``, ``clipping`` - none;
* ``sampling`` - ``randomness``;
* ``mechanisms`` - ``accounting``, ``randomness``;
* ``audit`` - ``randomness``;
* ``dp_sgd`` - ``accounting``, ``randomness``, ``sampling``, ``clipping``, ``mechanisms``.
"""

from recbook.privacy.accounting import (
    ACCOUNTANTS,
    DELTA_RATIO,
    NOT_COVERED,
    PrivacyStatement,
    accountant_crosscheck,
    check_budget,
    default_delta,
    epsilon_dp_accounting,
    epsilon_opacus,
    group_epsilon_rdp,
    group_privacy,
    noise_multiplier_for,
)
from recbook.privacy.article import article_dp_loss, article_gradient_weight
from recbook.privacy.audit import (
    AttackResult,
    OneRunAudit,
    loss_threshold_attack,
    max_attack_auc,
    membership_sample,
    one_run_audit,
    one_run_epsilon_lower_bound,
    one_run_max_epsilon,
    one_run_p_value,
    rating_canaries,
    rating_losses,
    row_shift_scores,
)
from recbook.privacy.clipping import ClippedLoss, EmbeddingRowClipping, refuse_batch_coupled_loss
from recbook.privacy.deidentification import (
    pseudonymise,
    quasi_identifier_report,
    reverse_pseudonyms,
)
from recbook.privacy.dp_sgd import CLIPPERS, UNITS, DPTraining, make_private
from recbook.privacy.mechanisms import calibrated_noise_multiplier, private_mean
from recbook.privacy.randomness import (
    NOISELESS_LABEL,
    SECURE_LABEL,
    SEEDED_LABEL,
    Randomness,
    discrete_laplace,
    mode_label,
    os_seed,
)
from recbook.privacy.sampling import PoissonBatches, ReseededEachStep, tensor_loader

__all__ = [
    "ACCOUNTANTS",
    "CLIPPERS",
    "DELTA_RATIO",
    "NOISELESS_LABEL",
    "NOT_COVERED",
    "SECURE_LABEL",
    "SEEDED_LABEL",
    "UNITS",
    "AttackResult",
    "ClippedLoss",
    "DPTraining",
    "EmbeddingRowClipping",
    "OneRunAudit",
    "PoissonBatches",
    "PrivacyStatement",
    "Randomness",
    "ReseededEachStep",
    "accountant_crosscheck",
    "article_dp_loss",
    "article_gradient_weight",
    "calibrated_noise_multiplier",
    "check_budget",
    "default_delta",
    "discrete_laplace",
    "epsilon_dp_accounting",
    "epsilon_opacus",
    "group_epsilon_rdp",
    "group_privacy",
    "loss_threshold_attack",
    "make_private",
    "max_attack_auc",
    "membership_sample",
    "mode_label",
    "noise_multiplier_for",
    "one_run_audit",
    "one_run_epsilon_lower_bound",
    "one_run_max_epsilon",
    "one_run_p_value",
    "os_seed",
    "private_mean",
    "pseudonymise",
    "quasi_identifier_report",
    "rating_canaries",
    "rating_losses",
    "row_shift_scores",
    "refuse_batch_coupled_loss",
    "reverse_pseudonyms",
    "tensor_loader",
]
