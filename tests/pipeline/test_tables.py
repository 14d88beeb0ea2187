"""The tables' cells and captions (experiments.analysis.tables), from runs and metrics files
made here: a huge number in scientific notation, a configuration diverged on every seed,
captions that say what the rows sweep and what they hold fixed.  No training, no TeX."""

from __future__ import annotations

import copy

import pytest

from experiments.analysis import claims, claims_tables, tables

STAT = {"mean": 0.9, "std": 0.01}


def _config(forward="Logistic", backward="d(Logistic)", lr=0.01, batch_size=64, **extra):
    return {"forward": forward, "backward": backward, "rule_params": {}, "provenance": "test",
            "batch_size": batch_size, "lr": lr, "chance_accuracy": 0.1, "diverged": 0,
            **extra}


def _metrics(**over):
    out = {k: dict(STAT) for k in ("final_test_acc", "best_test_acc", "final_train_loss",
                                   "final_test_loss")}
    out["epochs_to_target"] = {"mean": 3.0, "std": 0.5, "reached": 3}
    return out | over


def _details(configs: dict, **settings) -> dict:
    return {"experiment": "x", "stage": "train@x", "profile": "full", "title": "A grid",
            "dataset": "mnist",
            "settings": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.0, "batch_size": 128,
                         "epochs": 20, "seeds": [0, 1, 2], "target_accuracy": 0.9} | settings,
            "configs": configs}


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("value, digits, text", [
    (1178186134.2379, 4, "1.18×10⁹"),
    (12345.0, 2, "1.23×10⁴"),
    (-98765.4, 2, "-9.88×10⁴"),
    (9999.5, 2, "9999.50"),       # below 10^4: fixed decimals
    (0.00012, 4, "0.0001"),
])
def test_a_number_past_ten_thousand_is_scientific(value, digits, text):
    assert tables.num(value, digits=digits) == text


def test_no_cell_has_seven_integer_digits():
    cell = tables.pm(1178186134.2379, 1824813063.7443, digits=4)
    assert cell == "1.18×10⁹ ± 1.82×10⁹"
    assert tables.num(123456.0, signed=True) == "+1.23×10⁵"
    assert tables.num(1.0e6, 100, digits=2) == "1.00×10⁸"  # scaled first


def test_powers_hand_the_exponent_to_a_template():
    assert tables.powers("1.18×10⁹ ± 8.80×10¹²", "<{}>") == "1.18<9> ± 8.80<12>"
    assert tables.powers("no power here, 10 × 2", "<{}>") == "no power here, 10 × 2"


# ---------------------------------------------------------------- rows

def test_a_config_diverged_on_every_seed_says_so_in_every_metric_cell():
    details = _details({"ok": _config(), "gone": _config(backward="d(Linear)", diverged=3)})
    none = {"mean": None, "std": None}
    metrics = {"ok": _metrics(),
               "gone": _metrics(final_test_acc=none, best_test_acc=none, final_train_loss=none,
                                final_test_loss=none,
                                epochs_to_target={"mean": None, "std": None, "reached": 0})}
    header, rows = tables.experiment_table(metrics, details)
    gone = next(r for r in rows if r[0] == "gone")  # the name stays the name
    for col in ("Final test acc. (%)", "Best test acc. (%)", "Final train loss",
                "Final test loss", "Epochs to 90% test acc."):
        assert gone[header.index(col)] == "diverged (3/3 seeds)"
    assert not any("n/a" in cell for r in rows for cell in r)


def test_a_config_diverged_on_some_seeds_has_no_result_and_says_how_many():
    details = _details({"ok": _config(), "part": _config(backward="d(Linear)", diverged=1)})
    none = {"mean": None, "std": None}
    metrics = {"ok": _metrics(),
               "part": _metrics(final_test_acc=none, best_test_acc=none,
                                final_train_loss=none, final_test_loss=none,
                                epochs_to_target={"mean": None, "std": None, "reached": 0})}
    header, rows = tables.experiment_table(metrics, details)
    part = next(r for r in rows if r[0] == "part")
    assert part[header.index("Final test acc. (%)")] == "diverged (1/3 seeds)"
    assert part[header.index("Final test loss")] == "diverged (1/3 seeds)"
    assert not any("n/a" in cell for r in rows for cell in r)


def test_some_seeds_diverged_and_a_target_never_reached():
    details = _details({"half": _config(diverged=1), "slow": _config(backward="d(Linear)")})
    metrics = {"half": _metrics(epochs_to_target={"mean": 4.0, "std": 1.0, "reached": 2}),
               "slow": _metrics(epochs_to_target={"mean": None, "std": None, "reached": 0})}
    header, rows = tables.experiment_table(metrics, details)
    epochs = header.index("Epochs to 90% test acc.")
    assert rows[0][0] == "half (diverged: 1/3 seeds)"
    assert rows[0][epochs] == "4.0 ± 1.0 (2/3 seeds)"
    assert rows[1][epochs] == "not reached (0/3 seeds)"


def test_a_huge_loss_is_scientific_in_its_table():
    details = _details({"blows": _config()})
    metrics = {"blows": _metrics(final_train_loss={"mean": 1178186134.2379,
                                                   "std": 1824813063.7443})}
    header, rows = tables.experiment_table(metrics, details)
    assert rows[0][header.index("Final train loss")] == "1.18×10⁹ ± 1.82×10⁹"


# ---------------------------------------------------------------- captions from the grid

def test_the_caption_of_a_sweep_of_both_names_both_and_fixes_neither():
    configs = {f"bs{b}_lr{lr}": _config(lr=lr, batch_size=b)
               for b in (16, 32) for lr in (0.01, 0.1)}
    cap = tables.caption(_details(configs))
    assert "Swept: batch size 16, 32; learning rate 0.01, 0.1." in cap
    fixed = cap.split("Fixed: ")[1].split(".")[0]
    assert "learning rate" not in fixed and "batch size" not in fixed
    assert "0.05" not in cap and "128" not in cap  # the experiment's defaults, unused
    assert "lr=" not in cap and "batch=" not in cap


def test_the_caption_holds_the_grids_rate_and_names_the_tuned_rates_apart():
    configs = {"a": _config(batch_size=32), "b": _config(), "c": _config(batch_size=256),
               "a_tuned": _config(lr=0.3, batch_size=32, tuned_from="a"),
               "b_tuned": _config(lr=1.0, tuned_from="b")}
    cap = tables.caption(_details(configs, momentum=0.9))
    assert "Swept: batch size 32, 64, 256." in cap
    assert "Fixed: SGD, learning rate 0.01, momentum 0.9, 20 epochs, 3 seeds (0–2)." in cap
    assert "Rows `*_tuned`: each arm at the learning rate its search chose on the " \
           "validation split (0.3, 1)." in cap
    header, rows = tables.experiment_table({k: _metrics() for k in configs}, _details(configs))
    assert header[2:4] == ["Batch", "LR"]  # both vary over the rows, so both are columns
    assert [r[3] for r in rows] == ["0.01", "0.01", "0.01", "0.3", "1"]


def test_a_task_axis_is_a_column_and_is_named_in_the_caption():
    configs = {f"step_d{d}": _config(forward="Heaviside", d=d) for d in (8, 16, 32)}
    cap = tables.caption(_details(configs))
    assert "Swept: input size d 8, 16, 32." in cap
    assert "Fixed: SGD, batch size 64, learning rate 0.01," in cap
    header, rows = tables.experiment_table({k: _metrics() for k in configs}, _details(configs))
    assert header[2] == "d" and [r[2] for r in rows] == ["8", "16", "32"]


def test_nothing_swept_says_nothing_swept():
    cap = tables.caption(_details({"a": _config(), "b": _config(backward="d(Linear)")},
                                  seeds=[0, 3]))
    assert "Swept" not in cap and "2 seeds (0, 3)" in cap


# ---------------------------------------------------------------- claims

def _row(experiment, config, reference, coincides=()):
    reading = {"config_lr": 0.01, "reference_lr": 0.01, "config_mean": 0.9, "config_std": 0.01,
               "reference_mean": 0.9, "reference_std": 0.01, "diff": 0.0, "low": -0.001,
               "high": 0.001, "n": [3, 3], "pairing": "paired by seed",
               "verdict": "supported"}
    tuned = copy.deepcopy(reading) | {"config_lr": 0.3}
    return {"kind": "row", "claim_id": "c", "id": f"{experiment}_{config}",
            "experiment": experiment, "config": config, "reference": reference,
            "coincides_with": [{"config": x} for x in coincides],
            "paper": reading, "tuned": tuned}


def test_claim_rows_are_grouped_by_experiment_with_their_reference_below():
    items = [_row("lenet", "constant", "standard", coincides=["twin"]),
             _row("lenet", "rectangular", "standard"), _row("mlp", "constant", "standard"),
             {"kind": "summary", "claim_id": "c"}]
    header, groups = claims_tables.claims_pair_lines(items)
    assert [b["experiment"] for b in groups["c"]] == ["lenet", "mlp"]
    lines = groups["c"][0]["lines"]
    assert [line[:2] for line in lines] == [
        ["`constant`", "paper"], ["vs `standard`", "tuned"], ["= `twin`", ""],
        ["`rectangular`", "paper"], ["vs `standard`", "tuned"]]
    assert lines[1][2] == "0.3 / 0.01" and len(header) == len(lines[0])
    seeds = header.index("Seeds")  # each verdict with its seeds and how they pair
    assert lines[0][seeds] == "3 paired" and lines[0][-1] == "supported"
    welch = _row("mlp", "constant", "standard")
    welch["tuned"] |= {"n": [3, 2], "pairing": "Welch"}
    _, only = claims_tables.claims_pair_lines([welch, {"kind": "summary", "claim_id": "c"}])
    assert only["c"][0]["lines"][1][seeds] == "3 / 2 Welch"


@pytest.mark.parametrize("delta, words", [(1.0, "1 point"), (2.0, "2 points"),
                                          (0.5, "0.5 points")])
def test_the_margin_has_its_noun_in_the_right_number(delta, words):
    assert claims.points(delta) == words
    text = claims.to_markdown([], {"metric": "final_test_acc", "delta": delta / 100}, {})
    assert f"≥ −{words} (" in text and f"< −{words}," in text
