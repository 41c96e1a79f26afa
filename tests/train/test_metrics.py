"""Metrics: JSONL always, the same names in TensorBoard and offline Weights & Biases, and resume."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mathfirst.train.metrics import MetricsLog, read_metrics


def test_jsonl_and_tensorboard_carry_the_same_metrics_and_a_resume_drops_later_steps(tmp_path):
    stage = tmp_path / "run" / "sft"
    log = MetricsLog(stage / "metrics.jsonl", loggers=("tensorboard",))
    for step in (1, 2, 3):
        log.log(step, loss=1.0 / step, event="x", kept=2)
    log.close()
    board = EventAccumulator(str(stage / "tensorboard"))
    board.Reload()
    assert set(board.Tags()["scalars"]) == {"loss", "kept"}  # text values stay in the JSONL only
    assert [(e.step, round(e.value, 4)) for e in board.Scalars("loss")] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    MetricsLog(stage / "metrics.jsonl", resume_step=2)  # a resumed stage continues after step 2
    assert [r["step"] for r in read_metrics(stage / "metrics.jsonl")] == [1, 2]


def test_wandb_offline_run_holds_the_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    stage = tmp_path / "run" / "rl_math"
    log = MetricsLog(stage / "metrics.jsonl", loggers=("wandb",))
    log.log(1, reward=-0.5, acc=0.25)
    log.log(2, reward=0.5, acc=0.75)
    log.close()
    runs = list((stage / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1  # `wandb sync` uploads it later
    data = runs[0].read_bytes()
    for key, value in (("reward", "-0.5"), ("acc", "0.25"), ("reward", "0.5"), ("acc", "0.75")):
        # a history item as wandb writes it: the key, then its value as JSON (protobuf field 16)
        assert key.encode() + b"\x82\x01" + bytes([len(value)]) + value.encode() in data, (key, value)
