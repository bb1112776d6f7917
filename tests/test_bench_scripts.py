"""The benchmark scripts of issue 22 run end to end, as real processes, on a tiny model and tiny sizes."""

from __future__ import annotations

import json
import re

from tests.test_scripts import run_script


def test_bench_serve_measures_each_client_level_and_stance_predict_with_no_errors(trained_model, tmp_path):
    proc = run_script("bench_serve.py", "--model", trained_model, "--clients", "1,2", "--seconds", "1",
                      "--sentences", "5", "--predict-copies", "3", "--json", tmp_path / "b.json", timeout=300)
    result = json.loads((tmp_path / "b.json").read_text())
    assert [lv["clients"] for lv in result["levels"]] == [1, 2]
    assert all(lv["requests"] > 0 and lv["errors"] == 0 for lv in result["levels"]), result
    assert result["server_peak_rss_mib"] > 50 and result["predict_sentences_per_s"] > 0
    assert re.search(r"^ratio 2 clients / predict: [\d.]+x$", proc.stdout, re.M), proc.stdout


def test_batch_invariance_finds_no_int8_score_that_depends_on_the_batch(trained_model, tiny_data, tmp_path):
    import shutil

    from stance.export import export

    m = tmp_path / "model"
    shutil.copytree(trained_model, m)
    export(m, onnx=True, int8=True, data=tiny_data["test"])
    proc = run_script("batch_invariance.py", "--model", m, "--data", tiny_data["test"], "--json", tmp_path / "b.json",
                      timeout=300)
    result = json.loads((tmp_path / "b.json").read_text())["results"]
    assert set(result) == {"onnx", "onnx-int8", "onnx-cascade"}
    for backend, r in result.items():
        assert r["batch_1"]["labels_changed"] == 0 and r["batch_1"]["max_prob_change"] < 1e-5, (backend, r)
        assert r["batch_16"]["max_prob_change"] < 1e-5 and r["agreement_with_fp32"] > 0.9, (backend, r)
    assert "labels changed" in proc.stdout


def test_bench_report_measures_size_and_first_paint_in_chromium(tmp_path):
    proc = run_script("bench_report.py", "--articles", "30", "--sentences", "5", "--rounds", "1",
                      "--json", tmp_path / "r.json", timeout=300)
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["bytes"] > 30 * 5 * 50 and 0 < result["median"]["first_contentful_paint_ms"] < 60_000
    assert "first contentful paint" in proc.stdout
