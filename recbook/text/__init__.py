"""Text for recommendation (notebook 04): a pretrained encoder read offline, the baselines it
must beat, a two-tower model that reads titles, and article 003's pre-train -> fine-tune.

* :mod:`.encoder` - the pretrained BERT (all-MiniLM-L6-v2 from its PyPI wheel, sha256-checked,
  safetensors only), title checks, pooling, one-scale standardisation, an embedding cache;
* :mod:`.baselines` - vectors that need no pretrained model: a bag of words and the category;
* :mod:`.two_tower` - title tokens and vectors (cached or encoded per batch), the two-tower
  click model, item-grouped batches and the labelled pairs it trains on;
* :mod:`.pretraining` - continued masked-LM pre-training with a head built in the open, and
  fine-tuning with warm-up and linear decay.

Layers: ``encoder`` imports nothing of this package; the other three import ``encoder`` only.
"""

from recbook.text.baselines import WEIGHTINGS, bag_of_words, one_hot, unknown_word_share
from recbook.text.encoder import (
    BUNDLE_PACKAGE,
    BUNDLE_PIP_NAME,
    CACHE_ENV,
    DEFAULT_MODEL,
    HUB_ID,
    MISSING_TITLE,
    TextEncoder,
    bundled_model_dir,
    cache_dir,
    cached_embeddings,
    centre_and_scale,
    check_titles,
    embedding_key,
    load_encoder,
    mean_pool,
    verify_files,
)
from recbook.text.pretraining import (
    adapted_encoder,
    continue_pretraining,
    fine_tune,
    freeze_below,
    masked_lm_from_encoder,
    masked_lm_loss,
    weights_sha256,
)
from recbook.text.two_tower import (
    CachedTitleVectors,
    EncodedTitleVectors,
    ItemGroupedBatches,
    TextTwoTower,
    TitleTokens,
    item_titles,
    labelled_pairs,
)

__all__ = [
    "BUNDLE_PACKAGE",
    "BUNDLE_PIP_NAME",
    "CACHE_ENV",
    "DEFAULT_MODEL",
    "HUB_ID",
    "MISSING_TITLE",
    "WEIGHTINGS",
    "CachedTitleVectors",
    "EncodedTitleVectors",
    "ItemGroupedBatches",
    "TextEncoder",
    "TextTwoTower",
    "TitleTokens",
    "adapted_encoder",
    "bag_of_words",
    "bundled_model_dir",
    "cache_dir",
    "cached_embeddings",
    "centre_and_scale",
    "check_titles",
    "continue_pretraining",
    "embedding_key",
    "fine_tune",
    "freeze_below",
    "item_titles",
    "labelled_pairs",
    "load_encoder",
    "masked_lm_from_encoder",
    "masked_lm_loss",
    "mean_pool",
    "one_hot",
    "unknown_word_share",
    "verify_files",
    "weights_sha256",
]
