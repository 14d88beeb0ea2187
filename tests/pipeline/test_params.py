import copy

import pytest
import yaml

from experiments import config as P
from experiments.config import __main__ as config_cli


@pytest.fixture()
def params():
    return P.load()


def test_repository_params_are_valid(params):
    assert params["profile"] in P.PROFILES
    assert "suc" in params["experiments"]


def test_profiles_override(params):
    full = P.resolve(params, "suc", "full")
    smoke = P.resolve(params, "suc", "smoke")
    assert full["lr"] == 0.1 and full["batch_size"] == 32  # paper, Table 2
    assert full["epochs"] == 30 and len(full["seeds"]) >= 5
    assert smoke["epochs"] < full["epochs"]
    assert "profiles" not in smoke


def _suc(p):
    return p["experiments"]["suc"]


def _variant(p, exp, name, axis="rule"):
    return p["experiments"][exp]["grids"][0]["axes"][axis][name]


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda p: p.update(profil="x"), ["profil", "accepted keys"]),
        (lambda p: p.update(profile="fast"), ["profile", "'fast'", "full, quick, smoke"]),
        (lambda p: _suc(p).update(learning_rate=0.1),
         ["experiments.suc.learning_rate", "accepted keys"]),
        (lambda p: _suc(p).update(dataset="cifar"),
         ["experiments.suc.dataset", "'cifar'", "mnist"]),
        (lambda p: _suc(p).update(lr="fast"), ["experiments.suc.lr", "float"]),
        (lambda p: _suc(p)["profiles"].update(turbo={}), ["profiles.turbo", "full, quick, smoke"]),
        (lambda p: _variant(p, "suc", "standard").pop("backward"),
         ["configs.standard.backward", "missing"]),
        (lambda p: p["experiments"].update(nosuch={**_suc(p), "task": "nosuch"}),
         ["experiments.nosuch.task", "'nosuch'", "lenet5"]),
        (lambda p: p["data"]["ones"].update(k=3), ["data.ones.k", "accepted keys"]),
        (lambda p: p["experiments"]["lenet"]["profiles"]["smoke"].update(select=["nope"]),
         ["experiments.lenet.profiles.smoke.select", "'nope'", "standard"]),
        (lambda p: p["experiments"]["cnn"]["grids"][0].update(batch_size=0),
         ["experiments.cnn.configs.relu_true.batch_size", "positive"]),
        (lambda p: p["experiments"]["lenet"].update(train_limit=-1),
         ["experiments.lenet.train_limit", "positive"]),
        (lambda p: p["experiments"]["lenet"]["diagnostics"].update(often=3),
         ["experiments.lenet.diagnostics.often", "accepted keys"]),
        (lambda p: _variant(p, "bnn", "logistic", "unit").update(dd=8),
         ["experiments.bnn.configs.logistic_d8.dd", "accepted keys", "d,"]),
        (lambda p: _variant(p, "lenet", "constant").update(claims=["nosuch"]),
         ["experiments.lenet.configs.constant.claims", "'nosuch'", "shaped"]),
        (lambda p: p["experiments"]["cnn"]["grids"][1].update(name="{activation}_{rule}"),
         ["experiments.cnn.grids.1.name", "'relu_true'", "twice"]),
        (lambda p: p["experiments"]["cnn"]["grids"][0].update(name="{forwrd}_{rule}"),
         ["experiments.cnn.grids.0.name", "forwrd", "activation"]),
        (lambda p: p["experiments"]["cnn"]["figures"][0].update(rows="forward"),
         ["experiments.cnn.figures.0.rows", "'forward'", "activation"]),
        (lambda p: p["claims"].update(tol=0.1), ["claims.tol", "accepted keys"]),
    ],
)
def test_invalid_params_name_key_and_value(params, edit, words):
    bad = copy.deepcopy(params)
    edit(bad)
    with pytest.raises(P.ParamsError) as err:
        P.validate(bad)
    for w in words:
        assert w in str(err.value)


def test_unknown_experiment_is_a_clear_error(params):
    with pytest.raises(P.ParamsError, match="'nosuch' is not defined in params.yaml"):
        P.resolve(params, "nosuch")


def test_params_cli_check(capsys):
    for name in ("suc", "mlp", "mlp_sweep", "lenet", "cnn", "cnn_fashion", "bnn"):
        assert config_cli.main(["--check", name]) == 0
    assert config_cli.main(["--check", "nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err


EXPECTED_CONFIGS = {
    "mlp": {"standard", "constant"},
    "mlp_sweep": {f"bs{b}_lr{lr}_{r}" for b in (16, 32, 64, 128) for lr in (0.01, 0.05, 0.1)
                  for r in ("standard", "constant")},
    "lenet": {"standard", "constant", "rectangular", "triangular", "noise_0.01", "noise_0.1"},
    "cnn": {f"{f}_{r}" for f in ("relu", "linear", "logistic")
            for r in ("true", "full_jam", "positive_jam", "rectangular_jam")}
           | {"relu_full_jam_bs32", "relu_full_jam_bs128", "relu_full_jam_bs256"},
    "cnn_fashion": {f"{f}_{r}" for f in ("relu", "linear", "logistic")
                    for r in ("true", "full_jam", "positive_jam", "rectangular_jam")},
    "bnn": {f"{r}_d{d}" for r in ("step_constant", "step_rectangular", "logistic")
            for d in (8, 16, 32, 64, 128)},
}


# Ours beside the paper's: the readings the paper leaves open, and the true derivative at the
# batch sizes of full jamming (the reference of those rows).
OURS = {
    "lenet": {"noise_0.5"} | {f"noise_mult_{s}" for s in (0.01, 0.1, 0.5)},
    "cnn": {f"relu_true_bs{b}" for b in (32, 128, 256)}
           | {f"relu_{r}" for r in ("full_jam_sign", "positive_jam_sign", "rectangular_jam_sign",
                                    "positive_jam_grad", "rectangular_jam_grad")},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CONFIGS))
def test_full_profile_is_the_papers(params, name):
    full = P.resolve(params, name, "full")
    assert set(full["configs"]) == EXPECTED_CONFIGS[name] | OURS.get(name, set())
    for cname in OURS.get(name, ()):
        assert full["configs"][cname]["provenance"].startswith("our "), cname
    assert len(full["seeds"]) >= 5
    assert "train_limit" not in full and "select" not in full
    for cfg in full["configs"].values():
        assert cfg["provenance"]
    quick, smoke = P.resolve(params, name, "quick"), P.resolve(params, name, "smoke")
    assert smoke["epochs"] <= quick["epochs"] <= full["epochs"]
    assert 1 <= len(smoke["seeds"]) <= 2 and smoke["configs"]


def test_settings_of_the_issue(params):
    mlp, lenet = P.resolve(params, "mlp", "full"), P.resolve(params, "lenet", "full")
    assert (mlp["batch_size"], mlp["lr"], mlp["epochs"]) == (64, 0.05, 100)
    assert (lenet["batch_size"], lenet["lr"], lenet["momentum"], lenet["epochs"]) == (
        256, 0.01, 0.9, 30)
    assert lenet["configs"]["noise_0.01"]["rule_params"] == {"sigma": 0.01}
    cnn = P.resolve(params, "cnn", "full")
    assert (cnn["batch_size"], cnn["lr"], cnn["epochs"], cnn["dataset"]) == (64, 0.01, 20, "mnist")
    assert cnn["configs"]["relu_full_jam_bs256"]["batch_size"] == 256
    assert cnn["configs"]["linear_rectangular_jam"]["rule_params"] == {"a": -5.0, "b": 5.0}
    assert P.resolve(params, "cnn_fashion", "full")["dataset"] == "fashion_mnist"
    bnn = P.resolve(params, "bnn", "full")
    assert (bnn["batch_size"], bnn["lr"], bnn["epochs"]) == (64, 0.1, 20)
    assert params["data"]["ones_bnn"] | {} == {"d": [8, 16, 32, 64, 128], "n": 4096, "tau": 0.5,
                                               "test_fraction": 0.2, "seed": 0}
    sweep = P.resolve(params, "mlp_sweep", "full")["configs"]["bs16_lr0.05_constant"]
    assert (sweep["batch_size"], sweep["lr"], sweep["backward"]) == (16, 0.05, "d(Linear)")


def test_select_keeps_order_and_only_named(params):
    smoke = P.resolve(params, "lenet", "smoke")
    assert list(smoke["configs"]) == ["standard", "constant", "rectangular", "noise_0.1"]


def test_show_prints_the_expanded_configurations(capsys):
    assert config_cli.main(["--show", "cnn", "--profile", "full"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)["cnn"]
    assert list(shown) == [f"{f}_{r}" for f in ("relu", "linear", "logistic")
                           for r in ("true", "full_jam", "positive_jam", "rectangular_jam")] + [
        f"relu_{r}_bs{b}" for r in ("true", "full_jam") for b in (32, 128, 256)] + [
        f"relu_{r}" for r in ("full_jam_sign", "positive_jam_sign", "rectangular_jam_sign",
                              "positive_jam_grad", "rectangular_jam_grad")]
    assert shown["relu_full_jam_bs128"] == {
        "provenance": "paper, full jamming at BS 128", "forward": "ReLU",
        "backward": "full_jam", "batch_size": 128, "forward_params": {}, "rule_params": {},
        "scope": "activations", "axes": {"activation": "relu", "rule": "full_jam",
                                         "batch_size": 128},
        "baseline": "relu_true_bs128", "claims": ["jamming"]}
    assert shown["relu_true"]["baseline"] is None and shown["relu_true"]["claims"] == []


def test_grid_order_is_the_product_of_the_axes_first_outermost(params):
    sweep = list(P.resolve(params, "mlp_sweep", "full")["configs"])
    assert sweep[:4] == ["bs16_lr0.01_standard", "bs16_lr0.01_constant",
                         "bs16_lr0.05_standard", "bs16_lr0.05_constant"]
    bnn = list(P.resolve(params, "bnn", "full")["configs"])
    assert bnn[:4] == ["step_constant_d8", "step_rectangular_d8", "logistic_d8",
                       "step_constant_d16"]
