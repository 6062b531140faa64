"""ServerApp: Flower's FedAvg over the SuperNodes, with federated evaluation."""

from recbook.federated.flower import build_server_app

app = build_server_app()
