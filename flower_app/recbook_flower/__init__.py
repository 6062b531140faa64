"""recbook's federated collaborative filtering as a Flower App.

``task`` (the typed run config, a node's partition, the model), ``strategy`` (FedAvg and
Flower's DP wrappers), ``client_app`` and ``server_app`` (the components ``flwr run`` loads).
The App imports recbook; recbook never imports the App.
"""
