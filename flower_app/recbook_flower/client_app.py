"""ClientApp: each SuperNode trains on its own partition (``partition-id``) only.

Local SGD is the same update as :func:`recbook.federated.local_update`; the node's user rows
stay in ``context.state`` between rounds, and its replies carry only the shared (item-side)
tensors and ``num-examples``. Nothing is a closure over other clients' data.
"""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

from recbook.federated import (
    init_model,
    load_state,
    local_update,
    private_state,
    round_seed,
    shared_state,
    squared_error,
)
from recbook.federated.flower import arrays_to_state, to_arrays
from recbook_flower.task import UNIT_WEIGHT, TaskConfig, load_partition, model_fn


def client_clipping(msg: Message, context: Context, call_next) -> Message:
    """Flower's ``fixedclipping_mod`` on train messages when the run clips on the clients."""
    if TaskConfig.from_run_config(context.run_config).dp == "client-clipping":
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def _setup(msg: Message, context: Context):
    """The run config, this node's partition and the model: the server's shared tensors over
    the node's own user rows from earlier rounds."""
    cfg = TaskConfig.from_run_config(context.run_config)
    _, client = load_partition(cfg, int(context.node_config["partition-id"]))
    model = init_model(model_fn(cfg), cfg.seed)
    if "private" in context.state:
        load_state(model, arrays_to_state(context.state["private"]))
    load_state(model, arrays_to_state(msg.content["arrays"]))
    return cfg, client, model


app = ClientApp()


@app.train(mods=[client_clipping])
def train(msg: Message, context: Context) -> Message:
    cfg, client, model = _setup(msg, context)
    server_round = int(msg.content["config"]["server-round"])
    n = local_update(
        model,
        client.train,
        epochs=cfg.local_epochs,
        batch_size=cfg.batch_size or None,
        lr=cfg.lr,
        seed=round_seed(cfg.seed, server_round, client.client_id),
        l2=cfg.l2,
    )
    context.state["private"] = to_arrays(private_state(model))
    reply = RecordDict(
        {
            "arrays": to_arrays(shared_state(model)),
            "metrics": MetricRecord({"num-examples": n, UNIT_WEIGHT: 1}),
        }
    )
    return Message(content=reply, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    _, client, model = _setup(msg, context)
    sse, n = squared_error(model, client.test)
    metrics = MetricRecord({"num-examples": n, "mse": sse / n if n else 0.0, UNIT_WEIGHT: 1})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
