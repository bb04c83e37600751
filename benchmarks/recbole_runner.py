"""Runs RecBole 1.2.1's SASRec inside RecBole's own virtual environment (no genrec imports).

Called by benchmarks/recbole_sasrec.py:
    <recbole-venv>/bin/python benchmarks/recbole_runner.py WORKDIR SEED CONFIG_JSON OUT_JSON
CONFIG_JSON holds RecBole settings that override the shared ones below (hidden size, dropout,
learning rate, …). Training runs until RecBole's own early stopping (`stopping_step` epochs
without a gain in validation NDCG@10) or the epoch cap; the best checkpoint on validation is
the one tested. One intra-op thread (two runs side by side use two cores better than one run
on both: 132 vs 116 s per epoch at batch 256 on this host).
Reads WORKDIR/genrec-ml-100k/genrec-ml-100k.inter and WORKDIR/seen.json; writes OUT_JSON with
the validation curve and, per test user, the held-out item and its rank with and without the
user's seen items masked.
"""

import json
import os
import sys
import time

os.environ.setdefault(
    "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1"
)  # torch ≥ 2.6 refuses RecBole's checkpoints otherwise

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed

SHARED = {
    "USER_ID_FIELD": "user_id",
    "ITEM_ID_FIELD": "item_id",
    "TIME_FIELD": "timestamp",
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "MAX_ITEM_LIST_LENGTH": 50,
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": "full",
    },
    "train_neg_sample_args": None,
    "loss_type": "CE",
    "metrics": ["Recall", "NDCG"],
    "topk": [5, 10, 20],
    "valid_metric": "NDCG@10",
    "epochs": 300,
    "stopping_step": 10,
    "eval_batch_size": 4096,
    "reproducibility": True,
    "use_gpu": False,
    "show_progress": False,
}
REPORTED = (
    "hidden_size",
    "n_layers",
    "n_heads",
    "inner_size",
    "hidden_dropout_prob",
    "attn_dropout_prob",
    "learning_rate",
    "train_batch_size",
    "MAX_ITEM_LIST_LENGTH",
    "loss_type",
    "epochs",
    "stopping_step",
)


def main() -> None:
    workdir, seed, overrides, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    torch.set_num_threads(int(os.environ.get("RECBOLE_THREADS", "1")))
    config = Config(
        model="SASRec",
        dataset="genrec-ml-100k",
        config_dict={
            **SHARED,
            **json.loads(overrides),
            "data_path": workdir,
            "checkpoint_dir": out_path + ".ckpt",
            "seed": seed,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model_class = get_model(config["model"])
    torch.autograd.set_detect_anomaly(
        False
    )  # importing RecBole's SINE model turns it on globally (~2x slower)
    model = model_class(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    started = time.monotonic()
    curve = []
    valid_epoch = trainer._valid_epoch

    def recorded_valid_epoch(*args, **kwargs):  # RecBole keeps only the best score
        score, result = valid_epoch(*args, **kwargs)
        point = {"epoch": len(curve) + 1, "seconds": round(time.monotonic() - started, 1)}
        curve.append({**point, **{f"valid_{k}": float(v) for k, v in result.items()}})
        print(json.dumps(curve[-1]), flush=True)
        return score, result

    trainer._valid_epoch = recorded_valid_epoch
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    stopped_by = "early stopping" if trainer.cur_step >= config["stopping_step"] else "epochs"
    train_seconds = time.monotonic() - started
    native = trainer.evaluate(test_data, load_best_model=True, show_progress=False)

    # Re-score the best checkpoint: rank of the held-out item, unmasked (RecBole's protocol for
    # sequential models) and with the user's seen items masked (genrec's protocol).
    with open(os.path.join(workdir, "seen.json")) as f:
        seen = json.load(f)
    model = trainer.model.eval()
    users, targets, ranks, ranks_masked = [], [], [], []
    with torch.no_grad():
        for interaction, _, _, positive_i in test_data:
            scores = model.full_sort_predict(interaction).view(len(positive_i), -1)
            scores[:, 0] = float("-inf")  # padding id
            user_tokens = dataset.id2token("user_id", interaction["user_id"].numpy())
            target_scores = scores.gather(1, positive_i.view(-1, 1))
            ranks += (scores > target_scores).sum(1).tolist()
            for row, u in enumerate(user_tokens):
                ids = dataset.token2id("item_id", seen[u])
                scores[row, torch.as_tensor(ids, dtype=torch.long)] = float("-inf")
            ranks_masked += (scores > target_scores).sum(1).tolist()
            users += list(user_tokens)
            targets += list(dataset.id2token("item_id", positive_i.numpy()))
    out = {
        "seed": seed,
        "best_valid_ndcg@10": float(trainer.best_valid_score),
        "stopped_by": stopped_by,
        "train_seconds": train_seconds,
        "epochs_run": len(curve),
        "best_epoch": len(curve) - trainer.cur_step,
        "curve": curve,
        "native_test": {k: float(v) for k, v in native.items()},
        "users": users,
        "targets": targets,
        "ranks": ranks,
        "ranks_masked": ranks_masked,
        "config": {k: config[k] for k in REPORTED},
    }
    with open(out_path + ".part", "w") as f:
        json.dump(out, f)
    os.replace(out_path + ".part", out_path)


if __name__ == "__main__":
    main()
