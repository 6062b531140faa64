"""recbook's federated collaborative filtering as a Flower App (see recbook.federated.flower)."""
