import copy

import pytest

from experiments import params as P


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
        (lambda p: _suc(p)["configs"]["standard"].pop("backward"),
         ["configs.standard.backward", "missing"]),
        (lambda p: p["experiments"].update(nosuch=_suc(p)),
         ["experiments.nosuch", "experiments/nosuch.py"]),
        (lambda p: p["data"]["ones"].update(k=3), ["data.ones.k", "accepted keys"]),
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
    with pytest.raises(P.ParamsError, match="'lenet' is not defined in params.yaml"):
        P.resolve(params, "lenet")


def test_params_cli_check(capsys):
    assert P.main(["--check", "suc"]) == 0
    assert P.main(["--check", "bnn"]) == 2
    assert "bnn" in capsys.readouterr().err
