"""ClientApp: each SuperNode trains on its own partition (``partition-id``) only."""

from recbook.federated.flower import build_client_app

app = build_client_app()
