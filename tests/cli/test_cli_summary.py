"""softmax-fast fit --reference-class LABEL --summary: the inference table on the command line."""

import numpy as np
import pytest
from softmax_problems import survey_problem

from softmax_fast import cli


@pytest.fixture
def survey_csv(tmp_path):
    X, y = survey_problem(K=3)
    path = tmp_path / "survey.csv"
    names = np.array(["dem", "rep", "ind"])[y]
    with open(path, "w") as f:
        f.write("income,age,educ,d1,d2,party\n")
        for row, label in zip(X, names, strict=True):
            f.write(",".join(f"{v:.17g}" for v in row) + f",{label}\n")
    return path, X, names


def test_summary_prints_the_inference_table(survey_csv, tmp_path, capsys):
    from softmax_fast import SoftmaxRegression

    path, X, labels = survey_csv
    argv = ["fit", str(path), "--target", "party", "--model", str(tmp_path / "m.npz")]
    argv += ["--alpha", "0", "--reference-class", "dem", "--summary", "--test-size", "0"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "reference class: dem" in out
    blocks = [line.split()[0] for line in out.splitlines() if line.startswith("y=")]
    assert blocks == ["y=ind", "y=rep"]
    income = [line for line in out.splitlines() if line.startswith("income")]
    expected = (
        SoftmaxRegression(alpha=0.0, reference_class="dem", solver="newton", tol=1e-12)
        .fit(X, labels)
        .inference(X, labels)
    )
    assert [float(line.split()[1]) for line in income] == pytest.approx(
        expected.params[0], abs=1e-4
    )
    assert [float(line.split()[2]) for line in income] == pytest.approx(expected.bse[0], abs=1e-4)


def test_summary_needs_a_reference_class_and_no_penalty(survey_csv, tmp_path, capsys):
    path, _, _ = survey_csv
    base = ["fit", str(path), "--target", "party", "--model", str(tmp_path / "m.npz")]
    assert cli.main([*base, "--summary", "--reference-class", "dem"]) == 1
    assert "--alpha 0" in capsys.readouterr().err
    assert cli.main([*base, "--summary", "--alpha", "0"]) == 1
    assert "--reference-class" in capsys.readouterr().err
    assert cli.main([*base, "--alpha", "0", "--reference-class", "green", "--summary"]) == 1
    assert "'green' is not one of the labels" in capsys.readouterr().err
