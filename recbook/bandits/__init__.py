"""Exploration vs exploitation (notebook 08): a slate simulator with exact regret, policies,
runs and the feedback loop, and off-policy evaluation of logged data.

* :mod:`.simulator` - the position-based click model on the shop's truth, slates, feedback,
  and the changing shop (items released mid-run, drifting tastes);
* :mod:`.policies` - fixed scores, ε-greedy, UCB, Thompson, linear Thompson / ε-greedy,
  LinUCB, ε-mixtures;
* :mod:`.experiments` - running a policy (regret, exposure), coverage and Gini, the click
  model trained on logs and the loop that retrains it on its own recommendations;
* :mod:`.off_policy` - IPS, SNIPS, doubly robust and replay estimates of a new policy.

Layers: ``simulator`` and ``off_policy`` import nothing of this package; ``policies`` imports
``simulator``; ``experiments`` imports both.
"""

from recbook.bandits.experiments import (
    Trajectory,
    coverage,
    embedding_features,
    feedback_loop,
    fit_click_model,
    gini,
    simulate,
)
from recbook.bandits.policies import (
    UCB,
    CountPolicy,
    EpsilonGreedy,
    EpsilonMixture,
    FixedScores,
    LinearThompson,
    LinUCB,
    Policy,
    Thompson,
)
from recbook.bandits.simulator import (
    CascadeEnvironment,
    ChangingEnvironment,
    Feedback,
    SlateEnvironment,
    check_propensities,
    check_slates,
    examination,
    random_slates,
    top_slates,
)

__all__ = [
    "UCB",
    "CascadeEnvironment",
    "ChangingEnvironment",
    "LinUCB",
    "CountPolicy",
    "EpsilonGreedy",
    "EpsilonMixture",
    "Feedback",
    "FixedScores",
    "LinearThompson",
    "Policy",
    "SlateEnvironment",
    "Thompson",
    "Trajectory",
    "check_propensities",
    "check_slates",
    "coverage",
    "embedding_features",
    "examination",
    "feedback_loop",
    "fit_click_model",
    "gini",
    "random_slates",
    "simulate",
    "top_slates",
]
